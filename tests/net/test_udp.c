/* Unit tests of the UDP transport (net/udp.h) over loopback, for both backends.
 *
 * Every test runs once with io_uring forced and once with recvmmsg/sendmmsg
 * forced, or with one of them (`--backend uring|mmsg`: ctest's udp_test_uring
 * and udp_test). Where the kernel refuses io_uring, or there is no IPv6
 * loopback, that part is skipped and the binary exits 77 (udp_fixture.h). Messages
 * are real wire headers walked and checked byte by byte (udp_fixture.h). Each
 * wait is bounded by a deadline; the bulk tests pace themselves (bursts, then
 * drain) so that loopback never has reason to drop. Set-up, addresses and the
 * fallback are in test_udp_setup.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "net/udp.h"
#include "tests/net/udp_fixture.h"

/* ---- loopback -------------------------------------------------------------------- */

static void body_loopback_single(enum net_backend b)
{
    struct net_udp *x = open_backend(b), *y = open_backend(b);
    struct sockaddr_storage xa, ya;
    socklen_t xl, yl;
    addr_of(x, &xa, &xl);
    addr_of(y, &ya, &yl);
    struct rx_log *lx = log_new(), *ly = log_new();
    uint8_t m[256];

    for (uint32_t i = 0; i < 5; i++) {
        size_t n = msg_make(m, 100 + i, 7, 10 + i * 20);
        assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
        assert_int_equal(net_udp_pending(x), 1);
        assert_int_equal(net_udp_flush(x), 1);
        assert_int_equal(net_udp_pending(x), 0);
        poll_until(y, ly, i + 1);
        assert_int_equal(ly->datagrams, i + 1);
        assert_int_equal(ly->last_len, n);
        assert_int_equal(ly->seq[i], 100 + i);
        assert_int_equal(ly->sender[i], 7);
        assert_true(net_addr_equal(&ly->last_src, &xa)); /* the source is the sender's bound address */
        assert_int_equal(ly->last_srclen, sizeof(struct sockaddr_in));
    }
    /* and back */
    size_t n = msg_make(m, 9, 1, 3);
    assert_int_equal(net_udp_queue(y, &xa, xl, m, n), 0);
    assert_int_equal(net_udp_flush(y), 1);
    poll_until(x, lx, 1);
    assert_true(net_addr_equal(&lx->last_src, &ya));
    assert_int_equal(lx->bad + ly->bad, 0);

    struct net_udp_stats s;
    net_udp_stats(x, &s);
    assert_int_equal(s.messages_queued, 5);
    assert_int_equal(s.messages_coalesced, 0);
    assert_int_equal(s.datagrams_sent, 5);
    assert_int_equal(s.send_errors, 0);
    assert_int_equal(s.datagrams_received, 1);
    net_udp_stats(y, &s);
    assert_int_equal(s.datagrams_received, 5);
    assert_int_equal(s.rx_truncated, 0);

    /* Empty flush sends nothing. */
    assert_int_equal(net_udp_flush(x), 0);
    free(lx);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_loopback_single(void **state)
{
    (void)state;
    for_each_backend(body_loopback_single);
}

static void body_ipv6(enum net_backend b)
{
    struct net_udp_config c = cfg_make(b);
    c.host = "::1";
    struct net_udp *x = NULL;
    int rc = net_udp_open(&c, &x);
    if (rc != 0) {
        udp_fixture_skip("%s: no IPv6 loopback: %s", backend_label(b), bftkv_strerror(rc));
        return;
    }
    struct net_udp *y = open_cfg(&c);
    struct sockaddr_storage xa, ya, v4;
    socklen_t xl, yl, v4l;
    addr_of(x, &xa, &xl);
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t m[64];
    size_t n = msg_make(m, 1, 1, 8);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_flush(x), 1);
    poll_until(y, ly, 1);
    assert_true(net_addr_equal(&ly->last_src, &xa));
    /* An IPv4 destination on an IPv6 socket is a caller error, not a send error. */
    assert_int_equal(net_addr_parse("127.0.0.1:9", &v4, &v4l), 0);
    assert_int_equal(net_udp_queue(x, &v4, v4l, m, n), BFTKV_E_INVAL);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_ipv6(void **state)
{
    (void)state;
    for_each_backend(body_ipv6);
}

/* ---- coalescing ------------------------------------------------------------------- */

static void body_coalesce_one_destination(enum net_backend b)
{
    struct net_udp *x = open_backend(b), *y = open_backend(b);
    struct sockaddr_storage ya;
    socklen_t yl;
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t m[128];
    for (uint32_t i = 0; i < 100; i++) {
        size_t n = msg_make(m, i, 3, i % 50);
        assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    }
    assert_int_equal(net_udp_pending(x), 1);
    assert_int_equal(net_udp_flush(x), 1); /* 100 messages, one datagram */
    poll_until(y, ly, 100);
    assert_int_equal(ly->datagrams, 1);
    assert_int_equal(ly->bad, 0);
    for (uint32_t i = 0; i < 100; i++)
        assert_int_equal(ly->seq[i], i); /* in queue order */

    struct net_udp_stats s;
    net_udp_stats(x, &s);
    assert_int_equal(s.messages_queued, 100);
    assert_int_equal(s.messages_coalesced, 99);
    assert_int_equal(s.datagrams_sent, 1);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_coalesce_one_destination(void **state)
{
    (void)state;
    for_each_backend(body_coalesce_one_destination);
}

static void body_coalesce_two_destinations(enum net_backend b)
{
    struct net_udp *x = open_backend(b), *y = open_backend(b), *z = open_backend(b);
    struct sockaddr_storage ya, za;
    socklen_t yl, zl;
    addr_of(y, &ya, &yl);
    addr_of(z, &za, &zl);
    struct rx_log *ly = log_new(), *lz = log_new();
    uint8_t m[128];
    for (uint32_t i = 0; i < 40; i++) {
        size_t n = msg_make(m, i, (uint16_t)(i % 2), 16);
        if (i % 2 == 0)
            assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
        else
            assert_int_equal(net_udp_queue(x, &za, zl, m, n), 0);
    }
    assert_int_equal(net_udp_pending(x), 2);
    assert_int_equal(net_udp_flush(x), 2);
    poll_until(y, ly, 20);
    poll_until(z, lz, 20);
    assert_int_equal(ly->datagrams, 1);
    assert_int_equal(lz->datagrams, 1);
    for (uint32_t i = 0; i < 20; i++) {
        assert_int_equal(ly->seq[i], 2 * i);
        assert_int_equal(ly->sender[i], 0);
        assert_int_equal(lz->seq[i], 2 * i + 1);
        assert_int_equal(lz->sender[i], 1);
    }
    /* After a flush the next message starts a new datagram. */
    size_t n = msg_make(m, 77, 0, 4);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_flush(x), 1);
    poll_until(y, ly, 21);
    assert_int_equal(ly->datagrams, 2);
    assert_int_equal(ly->bad + lz->bad, 0);
    free(ly);
    free(lz);
    net_udp_close(x);
    net_udp_close(y);
    net_udp_close(z);
}

static void test_coalesce_two_destinations(void **state)
{
    (void)state;
    for_each_backend(body_coalesce_two_destinations);
}

static void body_large_messages(enum net_backend b)
{
    struct net_udp *x = open_backend(b), *y = open_backend(b);
    struct sockaddr_storage ya;
    socklen_t yl;
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t *m = malloc(BFTKV_DATAGRAM_MAX + 1);
    assert_non_null(m);

    /* A small message, then a near-64 KiB one that cannot join it: two datagrams,
     * the big one alone. Then one of exactly BFTKV_DATAGRAM_MAX bytes. */
    size_t n = msg_make(m, 1, 0, 100);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    n = msg_make(m, 2, 0, 65400); /* 132 + 65432 > BFTKV_DATAGRAM_MAX */
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_pending(x), 2);
    n = msg_make(m, 3, 0, BFTKV_DATAGRAM_MAX - WIRE_HEADER_SIZE);
    assert_int_equal(n, BFTKV_DATAGRAM_MAX);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_pending(x), 3);

    /* Too big for any datagram, or empty: rejected, nothing queued. */
    assert_int_equal(net_udp_queue(x, &ya, yl, m, BFTKV_DATAGRAM_MAX + 1), BFTKV_E_RANGE);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, 0), BFTKV_E_INVAL);
    assert_int_equal(net_udp_pending(x), 3);

    assert_int_equal(net_udp_flush(x), 3);
    poll_until(y, ly, 3);
    assert_int_equal(ly->datagrams, 3);
    assert_int_equal(ly->bad, 0);
    assert_int_equal(ly->datagram_of[0], 0);
    assert_int_equal(ly->datagram_of[1], 1);
    assert_int_equal(ly->datagram_of[2], 2);
    assert_int_equal(ly->last_len, BFTKV_DATAGRAM_MAX);

    struct net_udp_stats s;
    net_udp_stats(x, &s);
    assert_int_equal(s.messages_queued, 3);
    assert_int_equal(s.datagrams_sent, 3);
    assert_int_equal(s.bytes_sent, 132 + 65432 + BFTKV_DATAGRAM_MAX);
    free(m);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_large_messages(void **state)
{
    (void)state;
    for_each_backend(body_large_messages);
}

/* A small pool: queueing past it flushes by itself; a flush of many datagrams
 * goes out in one submission. */
static void body_pool_exhaustion(enum net_backend b)
{
    struct net_udp_config c = cfg_make(b);
    c.tx_datagrams = 4;
    struct net_udp *x = open_cfg(&c), *y = open_backend(b);
    struct sockaddr_storage ya;
    socklen_t yl;
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t *m = malloc(BFTKV_DATAGRAM_MAX);
    assert_non_null(m);
    /* 33000-byte messages: two never share a datagram. */
    for (uint32_t i = 0; i < 10; i++) {
        size_t n = msg_make(m, i, 0, 33000);
        assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
        assert_true(net_udp_pending(x) <= 4);
    }
    assert_int_equal(net_udp_flush(x), 2);
    poll_until(y, ly, 10);
    assert_int_equal(ly->datagrams, 10);
    for (uint32_t i = 0; i < 10; i++)
        assert_int_equal(ly->seq[i], i);
    struct net_udp_stats s;
    net_udp_stats(x, &s);
    assert_int_equal(s.pool_flushes, 2);
    assert_int_equal(s.datagrams_sent, 10);
    net_udp_close(x);

    /* 64 datagrams in one flush. */
    c.tx_datagrams = 64;
    x = open_cfg(&c);
    memset(ly, 0, sizeof(*ly));
    for (uint32_t i = 0; i < 64; i++) {
        size_t n = msg_make(m, i, 0, 33000);
        assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    }
    assert_int_equal(net_udp_pending(x), 64);
    assert_int_equal(net_udp_flush(x), 64);
    poll_until(y, ly, 64);
    assert_int_equal(ly->bad, 0);
    net_udp_stats(x, &s);
    assert_int_equal(s.pool_flushes, 0);
    free(m);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_pool_exhaustion(void **state)
{
    (void)state;
    for_each_backend(body_pool_exhaustion);
}

/* ---- volume ---------------------------------------------------------------------- */

/* 20,000 datagrams in bursts of 200, the receiver draining each burst: none lost. */
static void body_many_datagrams(enum net_backend b)
{
    enum { TOTAL = 20000, BURST = 200 };
    struct net_udp *x = open_backend(b), *y = open_backend(b);
    struct sockaddr_storage ya;
    socklen_t yl;
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t m[128];
    for (uint32_t sent = 0; sent < TOTAL; sent += BURST) {
        for (uint32_t i = 0; i < BURST; i++) {
            size_t n = msg_make(m, sent + i, 0, 32);
            assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
            assert_int_equal(net_udp_flush(x), 1); /* one message per datagram */
        }
        poll_until(y, ly, sent + BURST);
    }
    assert_int_equal(ly->datagrams, TOTAL);
    assert_int_equal(ly->bad, 0);
    /* Loopback keeps order for one sender and one receiver socket. */
    for (uint32_t i = 0; i < TOTAL; i++) {
        if (ly->seq[i] != i)
            fail_msg("message %u has seq %llu", i, (unsigned long long)ly->seq[i]);
    }
    struct net_udp_stats s;
    net_udp_stats(x, &s);
    assert_int_equal(s.datagrams_sent, TOTAL);
    assert_int_equal(s.send_errors, 0);
    net_udp_stats(y, &s);
    assert_int_equal(s.datagrams_received, TOTAL);
    assert_int_equal(s.bytes_received, (uint64_t)TOTAL * (WIRE_HEADER_SIZE + 32));
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_many_datagrams(void **state)
{
    (void)state;
    for_each_backend(body_many_datagrams);
}

/* More datagrams in one burst than the receiver has buffers: io_uring's multishot
 * runs dry (ENOBUFS), ends, and poll re-arms it; nothing is lost (the socket
 * buffer holds the rest) and the receiver keeps working. */
static void body_multishot_rearm(enum net_backend b)
{
    struct net_udp_config c = cfg_make(b);
    c.rx_buffers = 16;
    c.rx_buffer_bytes = 2048;
    struct net_udp *x = open_backend(b), *y = open_cfg(&c);
    struct sockaddr_storage ya;
    socklen_t yl;
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t m[128];
    uint32_t want = 0;
    for (uint32_t round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 100; i++) {
            size_t n = msg_make(m, want + i, 0, 40);
            assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
            assert_int_equal(net_udp_flush(x), 1);
        }
        want += 100;
        poll_until(y, ly, want);
    }
    assert_int_equal(ly->bad, 0);
    struct net_udp_stats s;
    net_udp_stats(y, &s);
    assert_int_equal(s.datagrams_received, 300);
    if (b == NET_BACKEND_URING) {
        print_message("  uring: rx_nobufs %llu, rx_rearms %llu\n", (unsigned long long)s.rx_nobufs,
                      (unsigned long long)s.rx_rearms);
        assert_true(s.rx_nobufs >= 1);
        assert_true(s.rx_rearms >= 1);
    }
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_multishot_rearm(void **state)
{
    (void)state;
    for_each_backend(body_multishot_rearm);
}

/* ---- receive edge cases ----------------------------------------------------------- */

static void body_poll_timeout(enum net_backend b)
{
    struct net_udp *y = open_backend(b);
    struct rx_log *ly = log_new();
    int64_t t0 = now_ms();
    assert_int_equal(net_udp_poll(y, 0, rx_record, ly), 0);
    int64_t t1 = now_ms();
    assert_int_equal(net_udp_poll(y, 60, rx_record, ly), 0);
    int64_t t2 = now_ms();
    /* A zero timeout does not block; how fast it returns, or how much longer
     * than 60 ms the second poll took, is not checked (no timing assertions: a
     * loaded machine may be late). */
    print_message("  %s: poll(0) %lld ms, poll(60) %lld ms\n", backend_label(b), (long long)(t1 - t0),
                  (long long)(t2 - t1));
    assert_true(t2 - t1 >= 50); /* it did wait (timer slack tolerated below 60) */
    assert_int_equal(ly->datagrams, 0);
    free(ly);
    net_udp_close(y);
}

static void test_poll_timeout(void **state)
{
    (void)state;
    for_each_backend(body_poll_timeout);
}

static void body_truncated(enum net_backend b)
{
    struct net_udp_config c = cfg_make(b);
    c.rx_buffer_bytes = NET_UDP_RX_BUFFER_BYTES_MIN;
    struct net_udp *x = open_backend(b), *y = open_cfg(&c);
    struct sockaddr_storage ya;
    socklen_t yl;
    addr_of(y, &ya, &yl);
    struct rx_log *ly = log_new();
    uint8_t m[4096];
    size_t n = msg_make(m, 1, 0, 3000);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_flush(x), 1);
    n = msg_make(m, 2, 0, 100);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_flush(x), 1);
    poll_until(y, ly, 1);
    assert_int_equal(ly->seq[0], 2); /* the long one was dropped, not delivered cut */
    struct net_udp_stats s;
    net_udp_stats(y, &s);
    assert_int_equal(s.rx_truncated, 1);
    assert_int_equal(s.datagrams_received, 1);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_truncated(void **state)
{
    (void)state;
    for_each_backend(body_truncated);
}

/* A datagram the kernel refuses (broadcast without SO_BROADCAST: EACCES) is counted
 * and dropped; the next one goes out. */
static void body_send_error(enum net_backend b)
{
    struct net_udp *x = open_backend(b), *y = open_backend(b);
    struct sockaddr_storage ya, bc;
    socklen_t yl, bcl;
    addr_of(y, &ya, &yl);
    assert_int_equal(net_addr_parse("255.255.255.255:9", &bc, &bcl), 0);
    struct rx_log *ly = log_new();
    uint8_t m[64];
    size_t n = msg_make(m, 5, 0, 8);
    assert_int_equal(net_udp_queue(x, &bc, bcl, m, n), 0);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_flush(x), 2);
    poll_until(y, ly, 1);
    assert_int_equal(net_udp_flush(x), 0); /* reaps any late completion */
    struct net_udp_stats s;
    net_udp_stats(x, &s);
    assert_int_equal(s.send_errors, 1);
    assert_int_equal(s.datagrams_sent, 1);
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_send_error(void **state)
{
    (void)state;
    for_each_backend(body_send_error);
}

/* ---- threads ------------------------------------------------------------------------ */

struct poller {
    struct net_udp *u;
    struct rx_log *log;
    uint32_t want;
    int rc;
};

static void *poller_main(void *arg)
{
    struct poller *p = arg;
    int64_t deadline = now_ms() + WAIT_MS;
    while (p->log->msgs < p->want && now_ms() < deadline) {
        int rc = net_udp_poll(p->u, 20, rx_record, p->log);
        if (rc < 0) {
            p->rc = rc;
            break;
        }
    }
    return NULL;
}

/* Open on one thread, receive on another while the first sends: the two halves
 * run concurrently, and io_uring's receive moves to the polling thread. Then the
 * first thread polls again. */
static void body_threads(enum net_backend b)
{
    struct net_udp *x = open_backend(b), *y = open_backend(b);
    struct sockaddr_storage ya, xa;
    socklen_t yl, xl;
    addr_of(y, &ya, &yl);
    addr_of(x, &xa, &xl);
    struct rx_log *ly = log_new();
    struct poller p = {.u = y, .log = ly, .want = 1000, .rc = 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, poller_main, &p), 0);
    uint8_t m[64];
    for (uint32_t i = 0; i < 1000; i++) {
        size_t n = msg_make(m, i, 0, 16);
        assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
        if (i % 10 == 9) {
            assert_int_equal(net_udp_flush(x), 1);
            usleep(200); /* pace: the receiver runs on a shared core */
        }
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.rc, 0);
    assert_int_equal(ly->msgs, 1000);
    assert_int_equal(ly->bad, 0);

    /* y's sender half on this thread, its receiver back on this thread too. */
    size_t n = msg_make(m, 4242, 0, 16);
    assert_int_equal(net_udp_queue(x, &ya, yl, m, n), 0);
    assert_int_equal(net_udp_flush(x), 1);
    poll_until(y, ly, 1001);
    assert_int_equal(ly->seq[1000], 4242);
    if (b == NET_BACKEND_URING) {
        /* The receive moved to the poller thread and back: two re-arms at least. */
        struct net_udp_stats s;
        net_udp_stats(y, &s);
        assert_true(s.rx_rearms >= 2);
        assert_int_equal(s.rx_errors, 0);
    }
    free(ly);
    net_udp_close(x);
    net_udp_close(y);
}

static void test_threads(void **state)
{
    (void)state;
    for_each_backend(body_threads);
}
/* ---- main ----------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int rc = udp_fixture_init(argc, argv);
    if (rc != 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_single),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_coalesce_one_destination),
        cmocka_unit_test(test_coalesce_two_destinations),
        cmocka_unit_test(test_large_messages),
        cmocka_unit_test(test_pool_exhaustion),
        cmocka_unit_test(test_many_datagrams),
        cmocka_unit_test(test_multishot_rearm),
        cmocka_unit_test(test_poll_timeout),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_send_error),
        cmocka_unit_test(test_threads),
    };
    return udp_fixture_result(cmocka_run_group_tests(tests, NULL, NULL));
}
