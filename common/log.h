/* Leveled logging for the server and the tools: error, warn, info, debug, one
 * line per event on stderr, in key=value fields (logfmt):
 *
 *   ts=2026-12-07T17:37:32.123Z level=info proc=bftkv-server[2] node=2 partition=0 view=5 msg="view 5 active, primary 1"
 *
 * ts is UTC with milliseconds; proc is what the process set with log_name_set()
 * (default "bftkv"); node, partition and view come from the calling thread's
 * context (log_ctx_set: the runtime sets its replica's before it steps it, so a
 * node hosting many partitions says which one spoke; absent on a thread without
 * one); msg is the message, quoted, with '"' and '\' escaped and control
 * characters written as \n, \t or \xNN. Each line is formatted into a buffer on
 * the caller's stack (at most LOG_LINE_MAX bytes, a longer message is cut and
 * ends in "...") and handed to the kernel with one write(2), so lines from
 * several threads never interleave (a pipe write of at most PIPE_BUF = 4096
 * bytes is atomic) and logging never calls malloc.
 *
 * Thread safety: every function may be called from any thread. The name is set
 * at start-up (log_name_set before any thread logs); the level may change at any
 * time (relaxed atomic: the admin channel's log-level command does, server/admin.c).
 * The level test happens before any formatting, so a disabled log_debug() costs
 * one load and a branch.
 */
#ifndef BFTKV_COMMON_LOG_H
#define BFTKV_COMMON_LOG_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARN = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

#define LOG_LINE_MAX 1024u  /* bytes per line, newline included */
#define LOG_NAME_MAX 64u    /* bytes of the process name, terminator included */

/* Lines above this level are skipped. Default LOG_LEVEL_INFO. */
void log_level_set(enum log_level level);
enum log_level log_level_get(void);
/* Would a line at this level be written? */
int log_level_enabled(enum log_level level);

/* The NAME of every line (copied; cut to LOG_NAME_MAX - 1 bytes). Call before
 * other threads log. */
void log_name_set(const char *name);

/* The calling thread's fields (thread-local; NULL: none). The struct is read
 * when a line is written, so it must outlive its use; view(arg) is called then. */
struct log_ctx {
    unsigned node;
    unsigned partition;
    unsigned long long (*view)(const void *arg); /* NULL: no view field */
    const void *arg;
};
void log_ctx_set(const struct log_ctx *ctx);
const struct log_ctx *log_ctx_get(void);

/* "error", "warn", "info", "debug" -> the level, or -1. */
int log_level_parse(const char *s);
const char *log_level_name(enum log_level level);

/* Write one line at level (if enabled). The message needs no trailing newline. */
void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                             \
    (log_level_enabled(LOG_LEVEL_DEBUG) ? log_write(LOG_LEVEL_DEBUG, __VA_ARGS__) : (void)0)

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_COMMON_LOG_H */
