/* Helpers shared by the UDP transport tests (test_udp.c, test_udp_setup.c).
 *
 * Messages are real wire headers (engine/wire.h) with a patterned body, so the
 * receiver walks each datagram message by message exactly as the server will and
 * checks every byte. Every wait is bounded by UDP_WAIT_MS. Tests that run on both
 * backends go through for_each_backend(). A binary runs both backends, or one
 * with `--backend mmsg|uring` (ctest runs each as its own test). A check that
 * cannot run here (io_uring refused by the kernel, no IPv6 loopback, no seccomp)
 * is skipped with udp_fixture_skip(), and a binary that skipped anything exits
 * 77 instead of 0 (udp_fixture_result): ctest reports it skipped, never passed.
 */
#ifndef BFTKV_TESTS_NET_UDP_FIXTURE_H
#define BFTKV_TESTS_NET_UDP_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/wire.h"
#include "net/udp.h"

#define WAIT_MS 5000      /* bound on any wait for datagrams that must arrive */
#define LOG_MSGS_MAX 25000u
#define RCVBUF_BYTES (4 * 1024 * 1024)

extern bool g_uring_ok;       /* a forced io_uring instance opens here */
extern char g_uring_why[128]; /* else why not */

/* Parse the arguments ([--backend mmsg|uring]) and probe the machine. Returns 0;
 * 77 when no loopback socket opens at all, or when only io_uring was asked for
 * and the kernel refuses it (the reason on stderr); 2 on a usage error. */
int udp_fixture_init(int argc, char **argv);

/* Whether this run covers the backend (both, unless --backend chose one). */
bool udp_fixture_wants(enum net_backend b);

/* Record that a check was skipped here, with the reason (printed). */
void udp_fixture_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The binary's exit code from cmocka's result: failures first, else 77 if
 * anything was skipped, else 0. */
int udp_fixture_result(int cmocka_failed);

int64_t now_ms(void);
uint8_t body_byte(uint64_t seq, size_t i);

/* One message: a wire header (type PREPARE, seq, sender) and body_len patterned
 * bytes; no authenticator. Returns its size. */
size_t msg_make(uint8_t *buf, uint64_t seq, uint16_t sender, uint32_t body_len);

/* What a receiver saw: every message of every datagram, in arrival order. */
struct rx_log {
    uint32_t datagrams;
    uint32_t msgs;
    uint32_t bad;                  /* messages that failed to walk or verify */
    uint64_t seq[LOG_MSGS_MAX];
    uint16_t sender[LOG_MSGS_MAX];
    uint32_t datagram_of[LOG_MSGS_MAX];
    size_t last_len;
    struct sockaddr_storage last_src;
    socklen_t last_srclen;
};

/* A net_rx_fn: walk and check the datagram's messages into the rx_log arg. */
void rx_record(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
               size_t len);
struct rx_log *log_new(void);

/* Poll until the log holds want messages; fails the test after WAIT_MS. */
void poll_until(struct net_udp *u, struct rx_log *log, uint32_t want);

/* Loopback, ephemeral port, 4 MiB socket buffers. */
struct net_udp_config cfg_make(enum net_backend b);
struct net_udp *open_cfg(const struct net_udp_config *c);
struct net_udp *open_backend(enum net_backend b);
void addr_of(const struct net_udp *u, struct sockaddr_storage *a, socklen_t *len);
const char *backend_label(enum net_backend b);

/* Run body once per backend of this run; where the kernel refuses io_uring its
 * pass is skipped (udp_fixture_skip). */
void for_each_backend(void (*body)(enum net_backend));

#endif /* BFTKV_TESTS_NET_UDP_FIXTURE_H */
