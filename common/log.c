/* Leveled logging (common/log.h): format on the stack, one write(2) per line. */
#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level_now = LOG_LEVEL_INFO;
static char log_name[LOG_NAME_MAX] = "bftkv";

static _Thread_local const struct log_ctx *log_ctx_now;

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

void log_ctx_set(const struct log_ctx *ctx)
{
    log_ctx_now = ctx;
}

const struct log_ctx *log_ctx_get(void)
{
    return log_ctx_now;
}

void log_level_set(enum log_level level)
{
    if ((int)level < LOG_LEVEL_ERROR)
        level = LOG_LEVEL_ERROR;
    if ((int)level > LOG_LEVEL_DEBUG)
        level = LOG_LEVEL_DEBUG;
    atomic_store_explicit(&log_level_now, (int)level, memory_order_relaxed);
}

enum log_level log_level_get(void)
{
    return (enum log_level)atomic_load_explicit(&log_level_now, memory_order_relaxed);
}

int log_level_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level_now, memory_order_relaxed);
}

void log_name_set(const char *name)
{
    snprintf(log_name, sizeof log_name, "%s", name ? name : "bftkv");
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof log_level_names / sizeof log_level_names[0]); i++)
        if (strcmp(s, log_level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (unsigned)level <= LOG_LEVEL_DEBUG ? log_level_names[level] : "?";
}

/* Append msg to line[*used, cap) quoted and escaped (logfmt); when it does not
 * fit, cut it and end it in "...". Leaves room for the newline. */
static void log_quote(char *line, size_t cap, size_t *used, const char *msg)
{
    static const char hex[] = "0123456789abcdef";
    size_t u = *used, end = cap - 2; /* the closing quote and the newline */
    line[u++] = '"';
    for (const unsigned char *p = (const unsigned char *)msg; *p != '\0'; p++) {
        char esc[4];
        size_t k = 0;
        if (*p == '"' || *p == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)*p;
        } else if (*p == '\n' || *p == '\t') {
            esc[k++] = '\\';
            esc[k++] = *p == '\n' ? 'n' : 't';
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[*p >> 4];
            esc[3] = hex[*p & 15];
            k = 4;
        } else {
            esc[k++] = (char)*p;
        }
        if (u + k > end - 3) { /* no room for this and "...": cut */
            memcpy(line + u, "...", 3);
            u += 3;
            break;
        }
        memcpy(line + u, esc, k);
        u += k;
    }
    line[u++] = '"';
    *used = u;
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    if (!log_level_enabled(level))
        return;
    char msg[LOG_LINE_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[LOG_LINE_MAX];
    const char *name = (unsigned)level <= LOG_LEVEL_DEBUG ? log_level_names[level] : "?";
    int head = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s proc=%s", when, ts.tv_nsec / 1000000L, name,
                        log_name);
    size_t used = head > 0 ? (size_t)head : 0;
    const struct log_ctx *ctx = log_ctx_now;
    if (ctx != NULL && used < sizeof line / 2) {
        head = snprintf(line + used, sizeof line - used, " node=%u partition=%u", ctx->node, ctx->partition);
        used += head > 0 ? (size_t)head : 0;
        if (ctx->view != NULL) {
            head = snprintf(line + used, sizeof line - used, " view=%llu", ctx->view(ctx->arg));
            used += head > 0 ? (size_t)head : 0;
        }
    }
    if (used > sizeof line / 2)
        used = sizeof line / 2;
    memcpy(line + used, " msg=", 5);
    used += 5;
    log_quote(line, sizeof line, &used, msg);
    line[used++] = '\n';
    /* One write: concurrent lines stay whole. A short write or EINTR is retried;
     * any other failure is ignored (there is nowhere left to report it). */
    size_t off = 0;
    while (off < used) {
        ssize_t w = write(STDERR_FILENO, line + off, used - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void log_write(enum log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
