/* common/log.c: each line is logfmt (ts, level, proc, the thread's node,
 * partition and view, msg quoted and escaped), one write per line, cut with
 * "..." at LOG_LINE_MAX, and the level filters before formatting. stderr is
 * redirected into a pipe and every line parsed strictly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static int pipe_rd = -1;
static int saved_stderr = -1;

static int setup(void **state)
{
    (void)state;
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    saved_stderr = dup(STDERR_FILENO);
    dup2(p[1], STDERR_FILENO);
    close(p[1]);
    pipe_rd = p[0];
    log_name_set("test-proc[3]");
    log_level_set(LOG_LEVEL_INFO);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(pipe_rd);
    return 0;
}

/* Everything logged since the last call. */
static size_t drain(char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(pipe_rd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

struct field {
    char key[16];
    char val[2048];
};

/* Parse one logfmt line strictly: key=value pairs separated by one space, a
 * value bare (no space, quote or '=') or quoted with \" \\ \n \t \xNN escapes.
 * Returns the number of fields; fails the test on anything else. */
static int parse(const char *line, struct field *f, int max)
{
    int n = 0;
    const char *p = line;
    while (*p != '\0' && *p != '\n') {
        assert_true(n < max);
        const char *eq = strchr(p, '=');
        assert_non_null(eq);
        size_t klen = (size_t)(eq - p);
        assert_true(klen > 0 && klen < sizeof f[n].key);
        memcpy(f[n].key, p, klen);
        f[n].key[klen] = '\0';
        for (size_t i = 0; i < klen; i++)
            assert_true((p[i] >= 'a' && p[i] <= 'z') || p[i] == '_');
        p = eq + 1;
        size_t v = 0;
        if (*p == '"') {
            p++;
            while (*p != '"') {
                assert_true(*p != '\0' && *p != '\n');
                char c = *p++;
                if (c == '\\') {
                    char e = *p++;
                    if (e == 'n')
                        c = '\n';
                    else if (e == 't')
                        c = '\t';
                    else if (e == '"' || e == '\\')
                        c = e;
                    else if (e == 'x') {
                        char hex[3] = {p[0], p[1], 0};
                        c = (char)strtol(hex, NULL, 16);
                        p += 2;
                    } else
                        fail_msg("bad escape \\%c", e);
                }
                assert_true(v + 1 < sizeof f[n].val);
                f[n].val[v++] = c;
            }
            p++;
        } else {
            while (*p != ' ' && *p != '\n' && *p != '\0') {
                assert_true(*p != '"' && *p != '=');
                f[n].val[v++] = *p++;
            }
            assert_true(v > 0);
        }
        f[n].val[v] = '\0';
        n++;
        if (*p == ' ')
            p++;
    }
    assert_int_equal(*p, '\n');
    return n;
}

static const char *get(const struct field *f, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].key, key) == 0)
            return f[i].val;
    return NULL;
}

static unsigned long long view_of(const void *arg)
{
    return *(const unsigned long long *)arg;
}

static void test_fields_and_context(void **state)
{
    (void)state;
    static char buf[8192];
    static struct field f[16];
    log_ctx_set(NULL);
    log_info("plain %d", 7);
    drain(buf, sizeof buf);
    int n = parse(buf, f, 16);
    assert_int_equal(n, 4);
    assert_string_equal(f[0].key, "ts");
    assert_int_equal(strlen(f[0].val), strlen("2026-12-07T17:37:32.123Z"));
    assert_int_equal(f[0].val[10], 'T');
    assert_int_equal(f[0].val[23], 'Z');
    assert_string_equal(get(f, n, "level"), "info");
    assert_string_equal(get(f, n, "proc"), "test-proc[3]");
    assert_string_equal(get(f, n, "msg"), "plain 7");
    assert_null(get(f, n, "node"));

    unsigned long long view = 41;
    struct log_ctx ctx = {.node = 5, .partition = 12, .view = view_of, .arg = &view};
    log_ctx_set(&ctx);
    view = 42; /* read when the line is written */
    log_warn("say \"hi\"\\ then\nnext\tcol %c", 1);
    drain(buf, sizeof buf);
    n = parse(buf, f, 16);
    assert_int_equal(n, 7);
    assert_string_equal(get(f, n, "level"), "warn");
    assert_string_equal(get(f, n, "node"), "5");
    assert_string_equal(get(f, n, "partition"), "12");
    assert_string_equal(get(f, n, "view"), "42");
    assert_string_equal(get(f, n, "msg"), "say \"hi\"\\ then\nnext\tcol \x01");
    assert_string_equal(f[n - 1].key, "msg"); /* last: everything before it is fixed-width-ish */

    struct log_ctx noview = {.node = 1, .partition = 0};
    log_ctx_set(&noview);
    log_error("x");
    drain(buf, sizeof buf);
    n = parse(buf, f, 16);
    assert_string_equal(get(f, n, "node"), "1");
    assert_null(get(f, n, "view"));
    log_ctx_set(NULL);
}

static void test_level_and_cut(void **state)
{
    (void)state;
    static char buf[8192];
    static struct field f[16];
    log_ctx_set(NULL);
    log_debug("hidden");
    log_info("shown");
    drain(buf, sizeof buf);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "msg=\"shown\""));
    log_level_set(LOG_LEVEL_DEBUG);
    log_debug("now %s", "shown");
    log_level_set(LOG_LEVEL_INFO);
    drain(buf, sizeof buf);
    assert_non_null(strstr(buf, "level=debug"));

    /* A message longer than a line, of quotes (each escaped to two bytes). */
    static char big[3000];
    memset(big, '"', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_info("%s", big);
    size_t len = drain(buf, sizeof buf);
    assert_true(len <= LOG_LINE_MAX);
    assert_int_equal(buf[len - 1], '\n');
    assert_int_equal(strchr(buf, '\n') - buf, (long)len - 1); /* one line */
    int n = parse(buf, f, 16);
    const char *msg = get(f, n, "msg");
    size_t ml = strlen(msg);
    assert_true(ml > 300);
    assert_string_equal(msg + ml - 3, "...");
    for (size_t i = 0; i + 3 < ml; i++)
        assert_int_equal(msg[i], '"'); /* no escape cut in half */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_context),
        cmocka_unit_test(test_level_and_cut),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
