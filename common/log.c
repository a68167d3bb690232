/* Leveled logging (common/log.h): format on the stack, one write(2) per line. */
#include "common/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int log_level_now = LOG_LEVEL_INFO;
static char log_name[LOG_NAME_MAX] = "bftkv";

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
static const char *const log_level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};

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

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
    if (!log_level_enabled(level))
        return;
    char line[LOG_LINE_MAX];
    const char *tag = (unsigned)level <= LOG_LEVEL_DEBUG ? log_level_tags[level] : "?";
    int head = snprintf(line, sizeof line, "%s %s: ", tag, log_name);
    size_t used = head > 0 ? (size_t)head : 0;
    if (used >= sizeof line - 1)
        used = sizeof line - 2;
    int body = vsnprintf(line + used, sizeof line - used - 1, fmt, ap);
    size_t room = sizeof line - used - 2; /* the body's characters that fit before the newline */
    if (body > 0 && (size_t)body > room) {
        used = sizeof line - 2;
        memcpy(line + used - 3, "...", 3); /* cut: say so */
    } else if (body > 0) {
        used += (size_t)body;
    }
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
