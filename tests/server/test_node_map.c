/* A node's answers to map discovery (server/node_map.c), without sockets: what
 * is answered and what each drop counts. A request is answered only alone in
 * its datagram, from an allowed client, with that client's signature, once per
 * nonce, within the verification and reply rates; the answer is the node's
 * signed map from the offset asked, with its epoch in the header.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "cluster/cluster.h"
#include "engine/auth.h"
#include "server/node_map.h"

static struct auth_keypair client0, client1, stranger;
static uint8_t admin_sk[64];

/* A verified map (has_sig): M = 4, P = 4, clients 0 and 1 allowed (and, with
 * extra > 0, as many more with random keys), epoch 7. */
static struct cluster_map *map_with_clients(uint16_t extra);

static struct cluster_map *map_verified(void)
{
    return map_with_clients(0);
}

static struct cluster_map *map_with_clients(uint16_t extra)
{
    uint32_t ids[4] = {0, 1, 2, 3};
    struct bftkv_config_replica node[4];
    memset(node, 0, sizeof node);
    for (unsigned i = 0; i < 4; i++) {
        strcpy(node[i].host, "127.0.0.1");
        node[i].port = (uint16_t)(30980u + i);
        randombytes_buf(node[i].x25519, 32);
        randombytes_buf(node[i].ed25519, 32);
    }
    static struct bftkv_config_client cl[2 + 200];
    BFTKV_ASSERT(extra <= 200);
    memset(cl, 0, sizeof cl);
    cl[0].allowed = cl[1].allowed = true;
    for (uint16_t c = 2; c < 2 + extra; c++) {
        cl[c].allowed = true;
        randombytes_buf(cl[c].x25519, 32);
        randombytes_buf(cl[c].ed25519, 32);
    }
    memcpy(cl[0].x25519, client0.x_pk, 32);
    memcpy(cl[0].ed25519, client0.sign_pk, 32);
    memcpy(cl[1].x25519, client1.x_pk, 32);
    memcpy(cl[1].ed25519, client1.sign_pk, 32);
    struct cluster_map_params pa = {.epoch = 7, .f = 1, .rf = 4, .partitions = 4,
                                    .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
    struct cluster_map *built = NULL, *map = NULL;
    char err[256];
    assert_int_equal(cluster_map_build(&pa, ids, node, 4, cl, (uint16_t)(2 + extra), &built, err, sizeof err), 0);
    uint8_t admin_pk[32], *bytes = NULL;
    size_t len = 0;
    crypto_sign_ed25519_sk_to_pk(admin_pk, admin_sk);
    assert_int_equal(cluster_map_sign(built, admin_sk, &bytes, &len), 0);
    assert_int_equal(cluster_map_open(bytes, len, admin_pk, &map, err, sizeof err), 0);
    free(bytes);
    cluster_map_free(built);
    return map;
}

static size_t request_at(uint8_t *buf, uint16_t client, uint64_t epoch, uint64_t nonce, uint32_t offset,
                         const uint8_t sk[64])
{
    struct wire_map_request rq = {.client = client, .epoch = epoch, .nonce = nonce, .offset = offset};
    return wire_map_request_encode(buf, WIRE_MAP_REQUEST_SIZE, &rq, sk);
}

static size_t request(uint8_t *buf, uint16_t client, uint64_t nonce, uint32_t offset, const uint8_t sk[64])
{
    return request_at(buf, client, 0, nonce, offset, sk);
}

static void test_answers_and_drops(void **state)
{
    (void)state;
    struct cluster_map *map = map_verified();
    struct node_map_server m;
    assert_int_equal(node_map_server_init(&m, map), 0);
    uint8_t rq[WIRE_MAP_REQUEST_SIZE];
    uint64_t now = 5000000000u;

    size_t n = request(rq, 0, 100, 0, client0.sign_sk);
    size_t r = node_map_answer(&m, rq, n, true, now);
    assert_true(r > 0);
    struct wire_map_reply rep;
    assert_true(wire_map_reply_check(m.reply, r, CLUSTER_MAP_SIGNED_SIZE_MAX, &rep));
    assert_int_equal(rep.epoch, 7);
    assert_int_equal(rep.nonce, 100);
    assert_int_equal(rep.total, map->body_len + 64u);
    assert_memory_equal(rep.chunk, map->body, map->body_len);
    assert_memory_equal(rep.chunk + map->body_len, map->sig, 64);

    /* The same nonce again (a replay, maybe from a spoofed address): nothing. */
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    assert_int_equal(m.dropped[NODE_MAP_DROP_REPLAY], 1);
    /* Not alone in its datagram. */
    n = request(rq, 0, 101, 0, client0.sign_sk);
    assert_int_equal(node_map_answer(&m, rq, n, false, now), 0);
    assert_int_equal(m.dropped[NODE_MAP_DROP_MALFORMED], 1);
    /* Client 0's id signed by another key; client 1's request by client 0's key. */
    n = request(rq, 0, 102, 0, stranger.sign_sk);
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    n = request(rq, 1, 102, 0, client0.sign_sk);
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    assert_int_equal(m.dropped[NODE_MAP_DROP_BAD_SIGNATURE], 2);
    /* A client the map does not list. */
    n = request(rq, 2, 103, 0, stranger.sign_sk);
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    assert_int_equal(m.dropped[NODE_MAP_DROP_UNKNOWN_CLIENT], 1);
    /* An offset at or past the end; one inside: the rest from there. */
    n = request(rq, 1, 104, (uint32_t)(map->body_len + 64u), client1.sign_sk);
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    assert_int_equal(m.dropped[NODE_MAP_DROP_MALFORMED], 2);
    n = request(rq, 1, 105, 10, client1.sign_sk);
    r = node_map_answer(&m, rq, n, true, now);
    assert_true(wire_map_reply_check(m.reply, r, CLUSTER_MAP_SIGNED_SIZE_MAX, &rep));
    assert_int_equal(rep.offset, 10);
    assert_int_equal(rep.chunk_len, map->body_len + 64u - 10u);
    /* A flipped byte of a request: its signature fails. */
    n = request(rq, 1, 106, 0, client1.sign_sk);
    rq[WIRE_HEADER_SIZE] ^= 1u;
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    assert_int_equal(m.dropped[NODE_MAP_DROP_BAD_SIGNATURE], 3);
    assert_int_equal(m.answered, 2);
    node_map_server_free(&m);
    cluster_map_free(map);
}

/* Within one second: at most ADMIN_REPLIES_PER_SEC answers and
 * NODE_MAP_VERIFIES_PER_SEC signature checks; the next second answers again. */
static void test_rates(void **state)
{
    (void)state;
    struct cluster_map *map = map_verified();
    struct node_map_server m;
    assert_int_equal(node_map_server_init(&m, map), 0);
    uint8_t rq[WIRE_MAP_REQUEST_SIZE];
    uint64_t now = 9000000000u, nonce = 1;
    for (unsigned i = 0; i < NODE_MAP_VERIFIES_PER_SEC + 10u; i++) {
        size_t n = request(rq, 0, nonce++, 0, client0.sign_sk);
        node_map_answer(&m, rq, n, true, now + i);
    }
    assert_int_equal(m.answered, ADMIN_REPLIES_PER_SEC);
    assert_int_equal(m.dropped[NODE_MAP_DROP_RATE], NODE_MAP_VERIFIES_PER_SEC - ADMIN_REPLIES_PER_SEC);
    assert_int_equal(m.dropped[NODE_MAP_DROP_VERIFY_RATE], 10);
    size_t n = request(rq, 0, nonce++, 0, client0.sign_sk);
    assert_true(node_map_answer(&m, rq, n, true, now + 1000000000u) > 0);
    node_map_server_free(&m);
    cluster_map_free(map);
}

/* A client holding a newer epoch than the node's map: noted (newest_seen) only
 * from a verified request, and the node still serves its own map. */
static void test_newer_epoch_noted(void **state)
{
    (void)state;
    struct cluster_map *map = map_verified();
    struct node_map_server m;
    assert_int_equal(node_map_server_init(&m, map), 0);
    uint8_t rq[WIRE_MAP_REQUEST_SIZE];
    uint64_t now = 1000000000u;
    size_t n = request_at(rq, 0, 7, 1, 0, client0.sign_sk); /* the node's own epoch */
    assert_true(node_map_answer(&m, rq, n, true, now) > 0);
    assert_int_equal(m.newest_seen, 0);
    n = request_at(rq, 0, 12, 2, 0, stranger.sign_sk); /* forged: not noted */
    assert_int_equal(node_map_answer(&m, rq, n, true, now), 0);
    assert_int_equal(m.newest_seen, 0);
    n = request_at(rq, 1, 9, 3, 0, client1.sign_sk);
    size_t r = node_map_answer(&m, rq, n, true, now);
    assert_int_equal(m.newest_seen, 9);
    struct wire_map_reply rep;
    assert_true(wire_map_reply_check(m.reply, r, CLUSTER_MAP_SIGNED_SIZE_MAX, &rep));
    assert_int_equal(rep.epoch, 7);
    node_map_server_free(&m);
    cluster_map_free(map);
}

/* A map that was built, not verified, has no signature to serve. */
static void test_unverified_refused(void **state)
{
    (void)state;
    struct cluster_map *map = map_verified();
    map->has_sig = false;
    struct node_map_server m;
    assert_int_equal(node_map_server_init(&m, map), BFTKV_E_INVAL);
    cluster_map_free(map);
}

/* A REQUEST of client for group (its authenticator zero: a node that does not
 * host the group checks none, docs/design.md §6.3). */
static size_t request_for_group(uint8_t *buf, size_t cap, uint16_t group, uint16_t client, uint64_t ts)
{
    struct wire_request rq = {.client = client, .lane = 0, .timestamp = ts, .op = WIRE_OP_PUT, .klen = 1,
                              .vlen = 1, .key = (const uint8_t *)"k", .value = (const uint8_t *)"v"};
    return wire_encode_request(buf, cap, group, 4, 0, &rq, NULL);
}

/* A request for a group the node does not host: a MAP-NOTICE with the node's
 * epoch, the group and the request's timestamp, smaller than the request; at
 * most one per client per NODE_MAP_NOTICE_INTERVAL_MS; none for a client
 * outside the allow-list or for a message that is not a client's REQUEST. */
static void test_refusals(void **state)
{
    (void)state;
    struct cluster_map *map = map_verified();
    struct node_map_server m;
    assert_int_equal(node_map_server_init(&m, map), 0);
    uint8_t msg[256];
    uint64_t now = 9000000000u;
    size_t n = request_for_group(msg, sizeof msg, 3, 1, 555);
    assert_true(n > WIRE_MAP_NOTICE_SIZE);
    size_t r = node_map_refuse(&m, msg, n, now);
    assert_int_equal(r, WIRE_MAP_NOTICE_SIZE);
    struct wire_map_notice notice;
    assert_true(wire_map_notice_check(m.notice, r, &notice));
    assert_int_equal(notice.epoch, 7);
    assert_int_equal(notice.group, 3);
    assert_int_equal(notice.timestamp, 555);
    assert_int_equal(m.notices, 1);

    /* The same client within the interval: nothing; another client: answered. */
    assert_int_equal(node_map_refuse(&m, msg, n, now + 1000000u), 0);
    assert_int_equal(m.notices_limited, 1);
    size_t n0 = request_for_group(msg, sizeof msg, 3, 0, 556);
    assert_int_equal(node_map_refuse(&m, msg, n0, now + 2000000u), WIRE_MAP_NOTICE_SIZE);
    n = request_for_group(msg, sizeof msg, 3, 1, 557);
    assert_int_equal(node_map_refuse(&m, msg, n, now + (uint64_t)NODE_MAP_NOTICE_INTERVAL_MS * 1000000u), WIRE_MAP_NOTICE_SIZE);
    assert_int_equal(m.notices, 3);

    /* Client 2 is not in the allow-list; a COMMIT is a replica's. */
    n = request_for_group(msg, sizeof msg, 3, 2, 1);
    assert_int_equal(node_map_refuse(&m, msg, n, now + 5000000000u), 0);
    assert_int_equal(m.notices_limited, 2);
    uint8_t d[32] = {0};
    n = wire_encode_digest_msg(msg, sizeof msg, WIRE_COMMIT, 3, 1, 4, 0, 1, d, NULL);
    assert_int_equal(node_map_refuse(&m, msg, n, now + 6000000000u), 0);
    assert_int_equal(m.notices, 3);

    /* The notice's form: a tampered one is refused by the client's check. */
    n = request_for_group(msg, sizeof msg, 2, 0, 9);
    r = node_map_refuse(&m, msg, n, now + 7000000000u);
    assert_int_equal(r, WIRE_MAP_NOTICE_SIZE);
    assert_false(wire_map_notice_check(m.notice, r - 1, &notice));
    m.notice[3] = WIRE_MAP_REPLY;
    assert_false(wire_map_notice_check(m.notice, r, &notice));
    node_map_server_free(&m);
    cluster_map_free(map);
}

/* Refusals across clients: at most NODE_MAP_NOTICES_PER_SEC a second in all,
 * whatever the number of clients asking; the next second opens again. */
static void test_refusal_rate(void **state)
{
    (void)state;
    struct cluster_map *map = map_with_clients(150);
    struct node_map_server m;
    assert_int_equal(node_map_server_init(&m, map), 0);
    uint8_t msg[256];
    uint64_t now = 20000000000u;
    unsigned sent = 0;
    for (uint16_t c = 0; c < 152; c++) {
        size_t n = request_for_group(msg, sizeof msg, 9, c, 1000u + c);
        sent += node_map_refuse(&m, msg, n, now + c) > 0;
    }
    assert_int_equal(sent, NODE_MAP_NOTICES_PER_SEC);
    assert_int_equal(m.notices_limited, 152 - NODE_MAP_NOTICES_PER_SEC);
    /* A second later: the clients that got none are answered. */
    size_t n = request_for_group(msg, sizeof msg, 9, 151, 5000);
    assert_int_equal(node_map_refuse(&m, msg, n, now + 1000000000u + 200u), WIRE_MAP_NOTICE_SIZE);
    node_map_server_free(&m);
    cluster_map_free(map);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    uint8_t s[32], pk[32];
    randombytes_buf(s, sizeof s);
    auth_keypair_from_seed(&client0, s);
    randombytes_buf(s, sizeof s);
    auth_keypair_from_seed(&client1, s);
    randombytes_buf(s, sizeof s);
    auth_keypair_from_seed(&stranger, s);
    randombytes_buf(s, sizeof s);
    cluster_map_admin_keypair(s, pk, admin_sk);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_and_drops),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_newer_epoch_noted),
        cmocka_unit_test(test_unverified_refused),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refusal_rate),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
