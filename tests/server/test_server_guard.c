/* The server runtime against crafted datagrams (server/server.c): the reply
 * address book and the per-datagram message budget, in both thread layouts.
 *
 *   - Reply-address pinning. A REQUEST with the client's valid MAC, sent from
 *     another socket, that the engine refuses (a lane >= client_lanes, a
 *     timestamp of UINT64_MAX) must not move where the client's replies go;
 *     nor may one the engine accepts with an absurd timestamp (UINT64_MAX - 1
 *     on another lane) hold the address beyond that lane: the client's next
 *     request, on its own lane, from its own socket, completes.
 *   - A REQUEST that comes from a replica's address (a relay) teaches nothing:
 *     with replica 3 down and its port ours, a valid request of the client
 *     sent from there executes, and its reply does not come back there.
 *   - Budget. One datagram of 2,047 minimal replica messages, of 100 client
 *     REQUESTs, of 10 admin requests: the messages beyond
 *     BFTKV_DGRAM_{REPLICA,CLIENT,ADMIN}_MSGS_MAX are dropped before they reach
 *     the engine and counted, exactly, under datagram_excess_*.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "engine/wire_admin.h"
#include "tests/server/test_server_fixture.h"

#define JSON_CAP (ADMIN_JSON_MAX + 1u)
#define GUARD_LANES 4u  /* client_lanes of the test clusters */
#define GUARD_WAIT_MS 5000u

static const char *const layouts[] = {"single", "staged auth_workers=2"};

static uint64_t stats_u64(struct fx_cluster *c, uint16_t r, const char *key)
{
    char *json = malloc(JSON_CAP);
    assert_non_null(json);
    assert_int_equal(fx_stats(c, r, json, JSON_CAP), 0);
    uint64_t v = fx_json_u64(json, key);
    free(json);
    if (v == UINT64_MAX)
        fail_msg("replica %u: no \"%s\" in the stats", r, key);
    return v;
}

/* Wait (bounded) until replica r's counter `key` is at least want; returns it. */
static uint64_t stats_wait(struct fx_cluster *c, uint16_t r, const char *key, uint64_t want)
{
    uint64_t end = fx_now_ms() + GUARD_WAIT_MS;
    uint64_t v = stats_u64(c, r, key);
    while (v < want && fx_now_ms() < end) {
        usleep(10000);
        v = stats_u64(c, r, key);
    }
    return v;
}

static int raw_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void raw_send(int fd, struct fx_cluster *c, uint16_t r, const void *buf, size_t len)
{
    struct sockaddr_storage dst;
    socklen_t dlen;
    assert_int_equal(bftkv_config_replica_sockaddr(c->cfg, r, &dst, &dlen, NULL, 0), 0);
    assert_true(sendto(fd, buf, len, 0, (struct sockaddr *)&dst, dlen) == (ssize_t)len);
}

/* A PUT of client cl->id on `lane` stamped `ts`, with cl's valid authenticator
 * (mac = false: an all-zero one). */
static size_t craft_request(uint8_t *buf, size_t cap, struct fx_client *cl, uint16_t lane, uint64_t ts, bool mac)
{
    static const char key[] = "pinned", val[] = "elsewhere";
    struct wire_request rq = {
        .client = cl->id, .lane = lane, .timestamp = ts, .op = WIRE_OP_PUT, .rflags = 0,
        .klen = (uint16_t)(sizeof key - 1), .vlen = (uint32_t)(sizeof val - 1),
        .key = (const uint8_t *)key, .value = (const uint8_t *)val,
    };
    size_t auth_off = 0;
    size_t n = wire_encode_request(buf, cap, cl->c->cfg->group, cl->c->n, 0, &rq, &auth_off);
    assert_true(n > 0);
    if (mac)
        auth_authenticator_fill(&cl->auth, buf, n, auth_off);
    return n;
}

static void cluster_up(struct fx_cluster *c, const char *threads)
{
    char extra[64];
    snprintf(extra, sizeof extra, "client_lanes %u", GUARD_LANES);
    fx_cluster_write(c, 4, 1, threads, extra);
    fx_cluster_start(c);
}

static void put_ok(struct fx_client *cl, const char *key, const char *val)
{
    int status = 1;
    int rc = fx_client_op(cl, WIRE_OP_PUT, key, val, &status, NULL, 0, NULL);
    if (rc != 0)
        fail_msg("PUT %s: %s (the replies went elsewhere)", key, bftkv_strerror(rc));
    assert_int_equal(status, 0);
}

/* ---- Reply-address pinning ---------------------------------------------------------------- */

/* The client works; one crafted request of it (lane, ts) arrives at every
 * replica from another socket; the client, on lane 0 of its own socket, must
 * still get its replies. */
static void pin_case(const char *threads, uint16_t lane, uint64_t ts)
{
    struct fx_cluster c;
    cluster_up(&c, threads);
    struct fx_client cl;
    fx_client_open(&cl, &c, 0, 1, false); /* one lane: its requests go on lane 0 */
    put_ok(&cl, "before", "1");

    uint64_t seen[BFTKV_REPLICAS_MAX];
    for (uint16_t r = 0; r < c.n; r++)
        seen[r] = stats_u64(&c, r, "bad_field") + stats_u64(&c, r, "requests_received");
    int fd = raw_socket();
    uint8_t msg[1024];
    size_t len = craft_request(msg, sizeof msg, &cl, lane, ts, true);
    for (uint16_t r = 0; r < c.n; r++)
        raw_send(fd, &c, r, msg, len);
    /* Each replica either refuses it (bad_field) or receives it. */
    for (uint16_t r = 0; r < c.n; r++) {
        uint64_t end = fx_now_ms() + GUARD_WAIT_MS;
        while (stats_u64(&c, r, "bad_field") + stats_u64(&c, r, "requests_received") <= seen[r]
               && fx_now_ms() < end)
            usleep(10000);
    }

    put_ok(&cl, "after", "2");
    char got[16];
    int status = 1;
    assert_int_equal(fx_client_op(&cl, WIRE_OP_GET, "after", NULL, &status, got, sizeof got, NULL), 0);
    assert_int_equal(status, 0);
    assert_string_equal(got, "2");
    close(fd);
    fx_client_close(&cl);
    fx_cluster_destroy(&c);
}

static void test_pin_bad_lane(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        pin_case(layouts[i], GUARD_LANES, UINT64_MAX - 1u);
}

static void test_pin_max_timestamp(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        pin_case(layouts[i], 1, UINT64_MAX);
}

/* Admissible: the engine executes it and its lane is done for; lane 0 is not. */
static void test_pin_huge_timestamp_other_lane(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        pin_case(layouts[i], 2, UINT64_MAX - 1u);
}

/* Replica 3 is not started; its port sends the client's valid request to the
 * primary, which executes it and must not send the reply to replica 3. */
static void relay_case(const char *threads)
{
    struct fx_cluster c;
    char extra[64];
    snprintf(extra, sizeof extra, "client_lanes %u", GUARD_LANES);
    fx_cluster_write(&c, 4, 1, threads, extra);
    for (uint16_t r = 0; r < 3; r++)
        fx_replica_start(&c, r, BYZ_NONE);
    struct fx_client cl;
    fx_client_open(&cl, &c, 0, 1, false);
    put_ok(&cl, "before", "1");

    struct sockaddr_storage a3;
    socklen_t a3len;
    assert_int_equal(bftkv_config_replica_sockaddr(c.cfg, 3, &a3, &a3len, NULL, 0), 0);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a3, a3len), 0);
    uint64_t executed = stats_u64(&c, 0, "requests_executed");
    uint8_t msg[1024];
    size_t len = craft_request(msg, sizeof msg, &cl, 1, (uint64_t)1 << 62, true);
    raw_send(fd, &c, 0, msg, len);
    assert_true(stats_wait(&c, 0, "requests_executed", executed + 1u) >= executed + 1u);
    /* Executed: its reply has gone out. Anything that reached replica 3's port
     * within the wait is a REPLY that followed the relay's source. */
    uint64_t end = fx_now_ms() + 500u;
    uint8_t got[2048];
    while (fx_now_ms() < end) {
        ssize_t n = recv(fd, got, sizeof got, 0);
        if (n >= (ssize_t)WIRE_HEADER_SIZE) {
            struct wire_header h;
            wire_header_read(got, &h);
            if (h.type == WIRE_REPLY)
                fail_msg("the reply went to replica 3's address, the source of a relayed-looking request");
        }
        usleep(5000);
    }
    put_ok(&cl, "after", "2");
    close(fd);
    fx_client_close(&cl);
    fx_cluster_destroy(&c);
}

static void test_relay_source_not_learned(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        relay_case(layouts[i]);
}

/* ---- Per-datagram budget ------------------------------------------------------------------- */

static void budget_case(const char *threads)
{
    struct fx_cluster c;
    cluster_up(&c, threads);
    struct fx_client cl;
    fx_client_open(&cl, &c, 1, 1, false);
    int fd = raw_socket();
    uint8_t *dgram = calloc(1, BFTKV_DATAGRAM_MAX);
    assert_non_null(dgram);
    const uint16_t r = 1;

    /* Replica kind: 2,047 bare PREPARE headers (each dropped by the decoder as
     * BAD_LENGTH if it gets that far). */
    uint32_t k = BFTKV_DATAGRAM_MAX / WIRE_HEADER_SIZE;
    for (uint32_t i = 0; i < k; i++) {
        struct wire_header h = {.type = WIRE_PREPARE, .group = c.cfg->group, .sender = 2, .view = 0, .seq = i + 1u};
        wire_header_write(dgram + (size_t)i * WIRE_HEADER_SIZE, &h);
    }
    uint64_t bad_length = stats_u64(&c, r, "bad_length");
    raw_send(fd, &c, r, dgram, (size_t)k * WIRE_HEADER_SIZE);
    assert_int_equal(stats_wait(&c, r, "datagram_excess_replica", k - BFTKV_DGRAM_REPLICA_MSGS_MAX),
                     k - BFTKV_DGRAM_REPLICA_MSGS_MAX);
    assert_int_equal(stats_wait(&c, r, "bad_length", bad_length + BFTKV_DGRAM_REPLICA_MSGS_MAX),
                     bad_length + BFTKV_DGRAM_REPLICA_MSGS_MAX);

    /* Client kind: 100 REQUESTs of client 1 with a zero authenticator. */
    size_t off = 0;
    uint32_t nreq = 100;
    uint64_t bad_auth = stats_u64(&c, r, "bad_auth");
    for (uint32_t i = 0; i < nreq; i++)
        off += craft_request(dgram + off, BFTKV_DATAGRAM_MAX - off, &cl, 0, 1000u + i, false);
    raw_send(fd, &c, r, dgram, off);
    assert_int_equal(stats_wait(&c, r, "datagram_excess_client", nreq - BFTKV_DGRAM_CLIENT_MSGS_MAX),
                     nreq - BFTKV_DGRAM_CLIENT_MSGS_MAX);
    assert_int_equal(stats_wait(&c, r, "bad_auth", bad_auth + BFTKV_DGRAM_CLIENT_MSGS_MAX),
                     bad_auth + BFTKV_DGRAM_CLIENT_MSGS_MAX);

    /* Admin kind: 10 stats requests of client 1 (small nonces: at most the
     * first is answered, and fx_stats's wall-clock nonces stay above them). */
    off = 0;
    uint32_t nadm = 10;
    for (uint32_t i = 0; i < nadm; i++)
        off += wire_admin_request_encode(dgram + off, BFTKV_DATAGRAM_MAX - off, &cl.auth, c.cfg->group, ADMIN_CMD_STATS,
                                    1u + i);
    raw_send(fd, &c, r, dgram, off);
    assert_int_equal(stats_wait(&c, r, "datagram_excess_admin", nadm - BFTKV_DGRAM_ADMIN_MSGS_MAX),
                     nadm - BFTKV_DGRAM_ADMIN_MSGS_MAX);

    /* Nothing of it touched another replica, and the group still serves. */
    assert_int_equal(stats_u64(&c, 0, "datagram_excess_replica"), 0);
    assert_int_equal(stats_u64(&c, 0, "datagram_excess_client"), 0);
    assert_int_equal(stats_u64(&c, 0, "datagram_excess_admin"), 0);
    put_ok(&cl, "still", "serving");
    free(dgram);
    close(fd);
    fx_client_close(&cl);
    fx_cluster_destroy(&c);
}

static void test_budget(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        budget_case(layouts[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pin_bad_lane),
        cmocka_unit_test(test_pin_max_timestamp),
        cmocka_unit_test(test_pin_huge_timestamp_other_lane),
        cmocka_unit_test(test_relay_source_not_learned),
        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
