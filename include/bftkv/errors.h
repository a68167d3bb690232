/* bftkv error codes.
 *
 * Every function of the project that can fail returns 0 on success or one of the
 * negative codes below; positive and negative results are never mixed in one int.
 * The list is an X-macro so that the enum, bftkv_strerror() and bftkv_errname()
 * come from one place and can never disagree. Codes are stable: they cross the
 * wire in REPLY messages and are documented exit reasons of the CLI, so new codes
 * are appended, never renumbered.
 */
#ifndef BFTKV_ERRORS_H
#define BFTKV_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, "message") */
#define BFTKV_ERROR_LIST(X)                                                        \
    X(OK,               0,  "success")                                             \
    X(INVAL,           -1,  "invalid argument")                                    \
    X(NOMEM,           -2,  "out of memory")                                       \
    X(NOT_FOUND,       -3,  "key not found")                                       \
    X(KEY_TOO_LARGE,   -4,  "key longer than BFTKV_KEY_MAX (1 KiB)")               \
    X(VALUE_TOO_LARGE, -5,  "value longer than BFTKV_VALUE_MAX")                   \
    X(KEY_EMPTY,       -6,  "key is empty")                                        \
    X(BUF_TOO_SMALL,   -7,  "caller's buffer too small for the value")             \
    X(FULL,            -8,  "queue or table is full")                              \
    X(CORRUPT,         -9,  "malformed or corrupt data")                           \
    X(VERSION,         -10, "unsupported format version")                          \
    X(AUTH,            -11, "authentication failed")                               \
    X(TIMEOUT,         -12, "timed out")                                           \
    X(IO,              -13, "input/output error")                                  \
    X(CONFIG,          -14, "bad configuration")                                   \
    X(UNAVAILABLE,     -15, "service unavailable: not enough replicas answered")   \
    X(RANGE,           -16, "value out of range")                                  \
    X(AGAIN,           -17, "resource temporarily unavailable, try again")         \
    X(UNSUPPORTED,     -18, "not supported here: kernel feature missing or off")   \
    X(CANCELLED,       -19, "operation cancelled: the client handle was closed")  \
    X(NO_STATE,        -20, "the group refuses to serve: fewer than a quorum of replicas hold its state") \
    X(SESSION_BUSY,    -21, "every session (lane) of this client identity is in use")

enum bftkv_error {
#define BFTKV_ERROR_ENUM(name, value, msg) BFTKV_E_##name = (value),
    BFTKV_ERROR_LIST(BFTKV_ERROR_ENUM)
#undef BFTKV_ERROR_ENUM
};

/* The message for an error code; never NULL ("unknown error" for codes not in the
 * list). The string is static. */
const char *bftkv_strerror(int err);

/* The symbolic name ("KEY_TOO_LARGE") of an error code, or "UNKNOWN". */
const char *bftkv_errname(int err);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ERRORS_H */
