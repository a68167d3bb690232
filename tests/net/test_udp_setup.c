/* Unit tests of the UDP transport's set-up (net/udp.h): address parsing and
 * formatting, configuration checks, the choice of backend, and the fallback to
 * recvmmsg/sendmmsg for real: a child process installs a seccomp filter that
 * makes io_uring_setup fail with EPERM, as a hardened container would, and the
 * one log line is checked word for word. `--backend mmsg` runs what needs no
 * io_uring, `--backend uring` what does (exit 77 where the kernel refuses it);
 * anything skipped makes the exit code 77 (udp_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "net/udp.h"
#include "tests/net/udp_fixture.h"

/* ---- addresses ------------------------------------------------------------------- */

static void test_addr_parse_format(void **state)
{
    (void)state;
    struct sockaddr_storage a;
    socklen_t len;
    char buf[NET_ADDR_STRLEN];

    assert_int_equal(net_addr_parse("127.0.0.1:7000", &a, &len), 0);
    assert_int_equal(a.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    assert_int_equal(ntohs(((struct sockaddr_in *)&a)->sin_port), 7000);
    assert_int_equal(net_addr_format(&a, len, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "127.0.0.1:7000");

    assert_int_equal(net_addr_parse("[::1]:65535", &a, &len), 0);
    assert_int_equal(a.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    assert_int_equal(net_addr_format(&a, len, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "[::1]:65535");

    assert_int_equal(net_addr_parse("[fe80::1%3]:9", &a, &len), 0);
    assert_int_equal(((struct sockaddr_in6 *)&a)->sin6_scope_id, 3);
    assert_int_equal(net_addr_format(&a, len, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "[fe80::1%3]:9");

    assert_int_equal(net_addr_parse("0.0.0.0:0", &a, &len), 0);

    static const char *const bad[] = {"",          "127.0.0.1",       "127.0.0.1:",  ":7000",
                                      "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:7x", "::1:7000",
                                      "[::1]7000", "[::1]:",          "[127.0.0.1]:7", "localhost:7000",
                                      "[::1:7000", "1.2.3:7000",      "[fe80::1%]:9", "127.0.0.1:000007"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (net_addr_parse(bad[i], &a, &len) != BFTKV_E_INVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }

    assert_int_equal(net_addr_parse("10.1.2.3:80", &a, &len), 0);
    assert_int_equal(net_addr_format(&a, len, buf, 8), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(net_addr_format(&a, 4, buf, sizeof(buf)), BFTKV_E_INVAL);

    struct sockaddr_storage b;
    socklen_t blen;
    assert_int_equal(net_addr_from_host("10.1.2.3", 80, &b, &blen), 0);
    assert_true(net_addr_equal(&a, &b));
    assert_int_equal(net_addr_from_host("10.1.2.3", 81, &b, &blen), 0);
    assert_false(net_addr_equal(&a, &b));
}

/* ---- open, config, backend choice ------------------------------------------------ */

static void test_open_rejects_bad_config(void **state)
{
    (void)state;
    struct net_udp *u = (struct net_udp *)1;
    struct net_udp_config c = cfg_make(NET_BACKEND_MMSG);
    c.rx_buffers = NET_UDP_RX_BUFFERS_MAX + 1;
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_INVAL);
    assert_null(u);
    c = cfg_make(NET_BACKEND_MMSG);
    c.tx_datagrams = NET_UDP_TX_DATAGRAMS_MAX + 1;
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_INVAL);
    c = cfg_make(NET_BACKEND_MMSG);
    c.rx_buffer_bytes = 16;
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_INVAL);
    c = cfg_make((enum net_backend)7);
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_INVAL);
    c = cfg_make(NET_BACKEND_MMSG);
    c.host = "localhost";
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_INVAL);
    c = cfg_make(NET_BACKEND_MMSG);
    c.sndbuf_bytes = -1;
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_INVAL);

    /* A port in use is a configuration error (and logged with the address). */
    struct net_udp *a = open_backend(NET_BACKEND_MMSG);
    c = cfg_make(NET_BACKEND_MMSG);
    c.port = net_udp_local_port(a);
    assert_int_equal(net_udp_open(&c, &u), BFTKV_E_CONFIG);
    net_udp_close(a);
    net_udp_close(NULL);
}

static void test_backend_choice(void **state)
{
    (void)state;
    struct net_udp *u = open_backend(NET_BACKEND_MMSG);
    assert_string_equal(net_udp_backend_name(u), "mmsg");
    assert_int_equal(net_udp_backend(u), NET_BACKEND_MMSG);
    assert_true(net_udp_local_port(u) != 0);
    assert_true(net_udp_fd(u) >= 0);
    net_udp_close(u);

    /* AUTO picks io_uring where the kernel allows it, else recvmmsg/sendmmsg. */
    u = open_backend(NET_BACKEND_AUTO);
    if (!g_uring_ok)
        print_message("  io_uring unavailable (%s): AUTO chose %s\n", g_uring_why, net_udp_backend_name(u));
    assert_string_equal(net_udp_backend_name(u), g_uring_ok ? "uring" : "mmsg");
    net_udp_close(u);
}

/* Forcing io_uring where the kernel allows it (udp_fixture_init found out). */
static void test_backend_uring_forced(void **state)
{
    (void)state;
    if (!g_uring_ok) {
        udp_fixture_skip("uring: io_uring unavailable: %s", g_uring_why);
        return;
    }
    struct net_udp *u = open_backend(NET_BACKEND_URING);
    assert_string_equal(net_udp_backend_name(u), "uring");
    assert_int_equal(net_udp_backend(u), NET_BACKEND_URING);
    net_udp_close(u);
}

/* ---- the fallback under seccomp ------------------------------------------------------ */

/* In the child: make system call nr fail with EPERM, like a container's seccomp
 * profile, then check AUTO falls back (and works) and URING refuses. Exit codes:
 * 0 ok, 2 the filter could not be installed (skip), others: which check failed. */
static int seccomp_child(long nr)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = (unsigned short)(sizeof(f) / sizeof(f[0])), .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        return 2;
    struct net_udp_config c = cfg_make(NET_BACKEND_AUTO);
    struct net_udp *x = NULL, *y = NULL;
    if (net_udp_open(&c, &x) != 0)
        return 10;
    if (strcmp(net_udp_backend_name(x), "mmsg") != 0)
        return 11;
    c.backend = NET_BACKEND_URING;
    if (net_udp_open(&c, &y) != BFTKV_E_UNSUPPORTED)
        return 12;
    c.backend = NET_BACKEND_AUTO;
    if (net_udp_open(&c, &y) != 0)
        return 13;
    struct sockaddr_storage ya;
    socklen_t yl;
    net_udp_local_addr(y, &ya, &yl);
    uint8_t m[64];
    size_t n = msg_make(m, 1, 0, 8);
    if (net_udp_queue(x, &ya, yl, m, n) != 0 || net_udp_flush(x) != 1)
        return 14;
    struct rx_log *ly = calloc(1, sizeof(*ly));
    int64_t deadline = now_ms() + WAIT_MS;
    while (ly && ly->msgs < 1 && now_ms() < deadline)
        (void)net_udp_poll(y, 50, rx_record, ly);
    int ok = ly && ly->msgs == 1;
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
    return ok ? 0 : 15;
}

/* Run seccomp_child(nr) in a child process with its stderr captured into out.
 * Returns false when seccomp is unavailable here (the caller skips). */
static bool run_seccomp_child(long nr, char *out, size_t cap)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        alarm(20); /* bounded even if something hangs */
        _exit(seccomp_child(nr));
    }
    close(fds[1]);
    size_t got = 0;
    while (got < cap - 1) {
        ssize_t r = read(fds[0], out + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 2) {
        udp_fixture_skip("seccomp filters unavailable here");
        return false;
    }
    if (WEXITSTATUS(status) != 0)
        fail_msg("child failed check %d; stderr:\n%s", WEXITSTATUS(status), out);
    print_message("  child stderr:\n%s", out);
    return true;
}

/* io_uring_setup refused, as by a container profile or kernel.io_uring_disabled. */
static void test_fallback_setup_refused(void **state)
{
    (void)state;
    char out[4096];
    if (!run_seccomp_child(__NR_io_uring_setup, out, sizeof(out)))
        return;
    /* Two AUTO opens: two fallback lines, word for word; the forced URING open: a refusal. */
    const char *line = "bftkv: io_uring unavailable (io_uring_setup: Operation not permitted, sysctl "
                       "kernel.io_uring_disabled or a seccomp filter): using recvmmsg/sendmmsg\n";
    const char *first = strstr(out, line);
    assert_non_null(first);
    assert_non_null(strstr(first + 1, line));
    assert_non_null(strstr(out, "and the io_uring backend was forced"));
}

/* Rings come up, but registering the provided-buffer ring is refused: the
 * half-built backend is torn down and AUTO falls back all the same. Needs a
 * kernel that lets the rings come up. */
static void test_fallback_register_refused(void **state)
{
    (void)state;
    if (!g_uring_ok) {
        udp_fixture_skip("uring: io_uring unavailable (%s): no ring to refuse the registration of", g_uring_why);
        return;
    }
    char out[4096];
    if (!run_seccomp_child(__NR_io_uring_register, out, sizeof(out)))
        return;
    assert_non_null(strstr(out, "bftkv: io_uring unavailable (provided-buffer ring: Operation not permitted"));
    assert_non_null(strstr(out, "): using recvmmsg/sendmmsg\n"));
}

int main(int argc, char **argv)
{
    int rc = udp_fixture_init(argc, argv);
    if (rc != 0)
        return rc;
    /* What needs no io_uring (ctest udp_setup_test, --backend mmsg), and what does
     * (udp_setup_test_uring, --backend uring); both without --backend. */
    const struct CMUnitTest any[] = {
        cmocka_unit_test(test_addr_parse_format),
        cmocka_unit_test(test_open_rejects_bad_config),
        cmocka_unit_test(test_backend_choice),
        cmocka_unit_test(test_fallback_setup_refused),
    };
    const struct CMUnitTest uring[] = {
        cmocka_unit_test(test_backend_uring_forced),
        cmocka_unit_test(test_fallback_register_refused),
    };
    int failed = 0;
    if (udp_fixture_wants(NET_BACKEND_MMSG))
        failed += cmocka_run_group_tests_name("udp_setup", any, NULL, NULL);
    if (udp_fixture_wants(NET_BACKEND_URING))
        failed += cmocka_run_group_tests_name("udp_setup_uring", uring, NULL, NULL);
    return udp_fixture_result(failed);
}
