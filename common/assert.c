/* The one place an assertion failure is reported. Kept out of line so the
 * assertion itself is a compare and a cold branch on the hot path. */
#include "common/assert.h"

#include <stdio.h>
#include <stdlib.h>

void bftkv_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "bftkv: assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
    fflush(stderr);
    abort();
}
