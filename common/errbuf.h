/* A one-line message into a caller's error buffer: the convention of the
 * functions that take (char *err, size_t errlen) and print nothing themselves
 * (cluster/cluster.h, the server's start-up). err may be NULL or
 * errlen 0: the message is then dropped. A message longer than the buffer is cut
 * (vsnprintf's rule); nothing is allocated.
 */
#ifndef BFTKV_COMMON_ERRBUF_H
#define BFTKV_COMMON_ERRBUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

__attribute__((format(printf, 3, 4))) void errbuf_put(char *err, size_t errlen, const char *fmt, ...);
void errbuf_vput(char *err, size_t errlen, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_COMMON_ERRBUF_H */
