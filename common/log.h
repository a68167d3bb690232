/* Leveled logging for the server and the tools: error, warn, info, debug, one
 * line per call on stderr.
 *
 * A line reads `LEVEL NAME: message`, e.g. `INFO bftkv-server[2]: started`, where
 * NAME is what the process set with log_name_set() (default "bftkv"). Each line is
 * formatted into a buffer on the caller's stack (at most LOG_LINE_MAX bytes, longer
 * messages are cut and end in "...") and handed to the kernel with one write(2),
 * so lines from several threads never interleave (a pipe write of at most
 * PIPE_BUF = 4096 bytes is atomic) and logging never calls malloc.
 *
 * Thread safety: every function may be called from any thread. The level and the
 * name are set at start-up (log_name_set before any thread logs); the level may
 * change later (relaxed atomic). The level test happens before any formatting, so
 * a disabled log_debug() costs one load and a branch.
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
