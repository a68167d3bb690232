/* Messages into a caller's error buffer (common/errbuf.h). */
#include "common/errbuf.h"

#include <stdio.h>

void errbuf_vput(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err == NULL || errlen == 0)
        return;
    vsnprintf(err, errlen, fmt, ap);
}

void errbuf_put(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vput(err, errlen, fmt, ap);
    va_end(ap);
}
