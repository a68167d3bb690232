/* bftkv_strerror() and bftkv_errname(), generated from the one error list in
 * include/bftkv/errors.h so the messages can never drift from the codes. */
#include "bftkv/errors.h"

const char *bftkv_strerror(int err)
{
    switch (err) {
#define BFTKV_ERROR_MSG(name, value, msg) case (value): return (msg);
        BFTKV_ERROR_LIST(BFTKV_ERROR_MSG)
#undef BFTKV_ERROR_MSG
    default:
        return "unknown error";
    }
}

const char *bftkv_errname(int err)
{
    switch (err) {
#define BFTKV_ERROR_NAME(name, value, msg) case (value): return #name;
        BFTKV_ERROR_LIST(BFTKV_ERROR_NAME)
#undef BFTKV_ERROR_NAME
    default:
        return "UNKNOWN";
    }
}
