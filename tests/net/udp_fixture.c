/* Helpers shared by the UDP transport tests (udp_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bftkv/errors.h"
#include "tests/net/udp_fixture.h"

bool g_uring_ok;
char g_uring_why[128];
static int g_only = -1; /* the one backend of this run, or -1: both */
static unsigned g_skips;

bool udp_fixture_wants(enum net_backend b)
{
    return g_only < 0 || g_only == (int)b;
}

void udp_fixture_skip(const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    g_skips++;
    print_message("  [ SKIP ] %s\n", why);
}

int udp_fixture_result(int cmocka_failed)
{
    if (cmocka_failed != 0)
        return cmocka_failed;
    if (g_skips != 0) {
        fprintf(stderr, "%u check(s) skipped on this machine: reporting the test as skipped (77)\n", g_skips);
        return 77;
    }
    return 0;
}

int udp_fixture_init(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--backend") == 0 && strcmp(argv[2], "mmsg") == 0) {
        g_only = NET_BACKEND_MMSG;
    } else if (argc == 3 && strcmp(argv[1], "--backend") == 0 && strcmp(argv[2], "uring") == 0) {
        g_only = NET_BACKEND_URING;
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [--backend mmsg|uring]\n", argv[0]);
        return 2;
    }
    /* Can this machine open a loopback socket at all? If not, skip (77). */
    struct net_udp_config c = cfg_make(NET_BACKEND_MMSG);
    struct net_udp *u = NULL;
    int rc = net_udp_open(&c, &u);
    if (rc != 0) {
        fprintf(stderr, "cannot open a loopback UDP socket (%s): skipped\n", bftkv_strerror(rc));
        return 77;
    }
    net_udp_close(u);
    c.backend = NET_BACKEND_URING;
    rc = net_udp_open(&c, &u);
    g_uring_ok = rc == 0;
    snprintf(g_uring_why, sizeof(g_uring_why), "%s", bftkv_strerror(rc));
    net_udp_close(u);
    if (g_only == NET_BACKEND_URING && !g_uring_ok) {
        fprintf(stderr, "io_uring unavailable here (%s): skipped\n", g_uring_why);
        return 77;
    }
    return 0;
}

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint8_t body_byte(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 31u + i * 7u + 1u);
}

size_t msg_make(uint8_t *buf, uint64_t seq, uint16_t sender, uint32_t body_len)
{
    struct wire_header h = {.type = WIRE_PREPARE, .group = 1, .sender = sender, .view = 0, .seq = seq,
                            .body_len = body_len, .auth_len = 0, .flags = 0};
    wire_header_write(buf, &h);
    for (size_t i = 0; i < body_len; i++)
        buf[WIRE_HEADER_SIZE + i] = body_byte(seq, i);
    return WIRE_HEADER_SIZE + body_len;
}

void rx_record(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
               size_t len)
{
    struct rx_log *log = arg;
    log->last_len = len;
    memcpy(&log->last_src, src, srclen <= sizeof(log->last_src) ? srclen : sizeof(log->last_src));
    log->last_srclen = srclen;
    size_t off = 0;
    while (off < len) {
        if (len - off < WIRE_HEADER_SIZE || data[off] != (WIRE_MAGIC & 0xFFu)
            || data[off + 1] != (WIRE_MAGIC >> 8)) {
            log->bad++;
            break;
        }
        struct wire_header h;
        wire_header_read(data + off, &h);
        size_t mlen = WIRE_HEADER_SIZE + (size_t)h.body_len + h.auth_len;
        if (mlen > len - off) {
            log->bad++;
            break;
        }
        for (size_t i = 0; i < h.body_len; i++) {
            if (data[off + WIRE_HEADER_SIZE + i] != body_byte(h.seq, i)) {
                log->bad++;
                break;
            }
        }
        if (log->msgs < LOG_MSGS_MAX) {
            log->seq[log->msgs] = h.seq;
            log->sender[log->msgs] = h.sender;
            log->datagram_of[log->msgs] = log->datagrams;
            log->msgs++;
        }
        off += mlen;
    }
    log->datagrams++;
}

struct rx_log *log_new(void)
{
    struct rx_log *log = calloc(1, sizeof(*log));
    assert_non_null(log);
    return log;
}

void poll_until(struct net_udp *u, struct rx_log *log, uint32_t want)
{
    int64_t deadline = now_ms() + WAIT_MS;
    while (log->msgs < want && now_ms() < deadline) {
        int rc = net_udp_poll(u, 50, rx_record, log);
        assert_true(rc >= 0);
    }
    if (log->msgs != want)
        fail_msg("received %u messages, wanted %u", log->msgs, want);
}

struct net_udp_config cfg_make(enum net_backend b)
{
    struct net_udp_config c = {.host = "127.0.0.1", .port = 0, .backend = b, .rcvbuf_bytes = RCVBUF_BYTES,
                               .sndbuf_bytes = RCVBUF_BYTES};
    return c;
}

struct net_udp *open_cfg(const struct net_udp_config *c)
{
    struct net_udp *u = NULL;
    int rc = net_udp_open(c, &u);
    if (rc != 0)
        fail_msg("net_udp_open: %s", bftkv_strerror(rc));
    return u;
}

struct net_udp *open_backend(enum net_backend b)
{
    struct net_udp_config c = cfg_make(b);
    return open_cfg(&c);
}

void addr_of(const struct net_udp *u, struct sockaddr_storage *a, socklen_t *len)
{
    assert_int_equal(net_udp_local_addr(u, a, len), 0);
}

const char *backend_label(enum net_backend b)
{
    return b == NET_BACKEND_URING ? "uring" : "mmsg";
}

void for_each_backend(void (*body)(enum net_backend))
{
    static const enum net_backend all[] = {NET_BACKEND_URING, NET_BACKEND_MMSG};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (!udp_fixture_wants(all[i]))
            continue;
        if (all[i] == NET_BACKEND_URING && !g_uring_ok) {
            udp_fixture_skip("uring: io_uring unavailable: %s", g_uring_why);
            continue;
        }
        body(all[i]);
    }
}
