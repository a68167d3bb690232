/* Unit tests of the deployment map (cluster/deploymap.c, deploymap_json.c;
 * docs/design.md §6.2):
 *
 *  - build, sign, open and decode give back every field, and building the
 *    decoded map again gives the same bytes (one map, one encoding);
 *  - every single-byte change of a signed map, and every truncation or
 *    extension, is refused by decode or verify; decode alone refuses malformed
 *    headers, other versions, unsorted ids and trailing bytes;
 *  - a map signed by another key is refused (BFTKV_E_AUTH);
 *  - acceptance: no current map or a newer epoch is taken, an older one is
 *    STALE, the same bytes are SAME, another map of the same epoch is CONFLICT;
 *  - the single-group shorthand of a config: M = R = n, P = 1, partition 0 is
 *    every node, the allow-list is the config's;
 *  - lookups agree with cluster_placement_rendezvous / _ring and
 *    cluster_key_partition; build refuses what a map cannot hold;
 *  - the JSON rendering names every node, client and partition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "engine/auth.h"

#define M 7u
#define R 4u
#define P 16u
#define CLIENTS 5u /* ids 0, 2, 4 allowed: a gap is kept */

struct world {
    uint32_t ids[M];
    struct bftkv_config_replica node[M];
    struct bftkv_config_client client[CLIENTS];
    uint8_t admin_pk[32], admin_sk[64];
    uint8_t other_pk[32], other_sk[64];
};

static void seed_of(uint8_t seed[32], uint32_t who)
{
    memset(seed, 0, 32);
    memcpy(seed, &who, sizeof who);
    seed[31] = 0x5a;
}

static void world_make(struct world *w)
{
    memset(w, 0, sizeof *w);
    uint8_t seed[32];
    for (uint16_t i = 0; i < M; i++) {
        w->ids[i] = 100u + 13u * (M - i); /* not 0..m-1, and given in decreasing order */
        snprintf(w->node[i].host, sizeof w->node[i].host, "127.0.0.%u", 1u + i % 3u);
        w->node[i].port = (uint16_t)(32100u + i);
        struct auth_keypair kp;
        seed_of(seed, w->ids[i]);
        auth_keypair_from_seed(&kp, seed);
        memcpy(w->node[i].x25519, kp.x_pk, 32);
        memcpy(w->node[i].ed25519, kp.sign_pk, 32);
    }
    for (uint16_t c = 0; c < CLIENTS; c += 2) {
        struct auth_keypair kp;
        seed_of(seed, 9000u + c);
        auth_keypair_from_seed(&kp, seed);
        w->client[c].allowed = true;
        memcpy(w->client[c].x25519, kp.x_pk, 32);
        memcpy(w->client[c].ed25519, kp.sign_pk, 32);
    }
    seed_of(seed, 77777u);
    cluster_map_admin_keypair(seed, w->admin_pk, w->admin_sk);
    seed_of(seed, 88888u);
    cluster_map_admin_keypair(seed, w->other_pk, w->other_sk);
}

static struct cluster_map_params params_of(uint64_t epoch)
{
    return (struct cluster_map_params){
        .epoch = epoch, .f = 1, .rf = R, .partitions = P, .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
}

static struct cluster_map *map_build(const struct world *w, const struct cluster_map_params *pa)
{
    struct cluster_map *map = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = cluster_map_build(pa, w->ids, w->node, M, w->client, CLIENTS, &map, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "build: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(map);
    return map;
}

static int build_rc(const struct world *w, const struct cluster_map_params *pa, uint16_t m)
{
    struct cluster_map *map = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = cluster_map_build(pa, w->ids, w->node, m, w->client, CLIENTS, &map, err, sizeof err);
    if (rc == 0) {
        cluster_map_free(map);
    } else {
        assert_null(map);
        assert_true(err[0] != '\0');
    }
    return rc;
}

/* ---- Round trip -------------------------------------------------------------------- */

static void test_round_trip(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    struct cluster_map_params pa = params_of(42);
    struct cluster_map *map = map_build(&w, &pa);
    assert_int_equal(map->m, M);
    assert_int_equal(map->clients, CLIENTS);
    assert_int_equal(map->clients_allowed, 3);
    for (uint16_t i = 1; i < M; i++)
        assert_true(map->node_id[i - 1] < map->node_id[i]);

    uint8_t *signed_map = NULL;
    size_t len = 0;
    assert_int_equal(cluster_map_sign(map, w.admin_sk, &signed_map, &len), 0);
    assert_int_equal(len, map->body_len + CLUSTER_MAP_SIG_SIZE);
    assert_int_equal(cluster_map_verify(signed_map, len, w.admin_pk), 0);

    struct cluster_map *back = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    assert_int_equal(cluster_map_open(signed_map, len, w.admin_pk, &back, err, sizeof err), 0);
    assert_int_equal(back->params.epoch, 42);
    assert_int_equal(back->params.f, 1);
    assert_int_equal(back->params.rf, R);
    assert_int_equal(back->params.partitions, P);
    assert_int_equal(back->params.placement, CLUSTER_PLACEMENT_RENDEZVOUS);
    assert_int_equal(back->params.vnodes, 0);
    assert_int_equal(back->m, M);
    for (uint16_t i = 0; i < M; i++) {
        int at = -1; /* the caller's node with this id */
        for (uint16_t j = 0; j < M; j++)
            if (w.ids[j] == back->node_id[i])
                at = j;
        assert_true(at >= 0);
        assert_string_equal(back->node[i].host, w.node[at].host);
        assert_int_equal(back->node[i].port, w.node[at].port);
        assert_memory_equal(back->node[i].x25519, w.node[at].x25519, 32);
        assert_memory_equal(back->node[i].ed25519, w.node[at].ed25519, 32);
    }
    assert_int_equal(back->clients, CLIENTS);
    for (uint16_t c = 0; c < CLIENTS; c++) {
        assert_int_equal(back->client[c].allowed, w.client[c].allowed);
        if (w.client[c].allowed) {
            assert_memory_equal(back->client[c].x25519, w.client[c].x25519, 32);
            assert_memory_equal(back->client[c].ed25519, w.client[c].ed25519, 32);
        }
    }
    assert_memory_equal(back->replicas, map->replicas, (size_t)P * R * sizeof *map->replicas);

    /* One map, one encoding: building what was decoded gives the same bytes. */
    struct cluster_map *again = NULL;
    assert_int_equal(cluster_map_build(&back->params, back->node_id, back->node, back->m, back->client,
                                       back->clients, &again, err, sizeof err),
                     0);
    assert_int_equal(again->body_len, map->body_len);
    assert_memory_equal(again->body, map->body, map->body_len);
    cluster_map_free(again);
    cluster_map_free(back);
    free(signed_map);
    cluster_map_free(map);
}

/* ---- Corruption ------------------------------------------------------------------------ */

static void test_every_byte_corruption_refused(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    struct cluster_map_params pa = params_of(3);
    struct cluster_map *map = map_build(&w, &pa);
    uint8_t *good = NULL;
    size_t len = 0;
    assert_int_equal(cluster_map_sign(map, w.admin_sk, &good, &len), 0);
    uint8_t *bad = malloc(len + 1);
    assert_non_null(bad);
    static const uint8_t flips[] = {0x01, 0x80, 0xff};
    unsigned by_decode = 0, by_verify = 0;
    char err[BFTKV_CONFIG_ERR_MAX];
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            memcpy(bad, good, len);
            bad[i] ^= flips[k];
            struct cluster_map *got = NULL;
            int rc = cluster_map_open(bad, len, w.admin_pk, &got, err, sizeof err);
            if (rc == 0)
                fail_msg("byte %zu ^ 0x%02x accepted", i, flips[k]);
            assert_null(got);
            assert_true(rc == BFTKV_E_AUTH);
            /* Which layer would have caught it without the signature? */
            if (i < map->body_len) {
                int d = cluster_map_decode(bad, map->body_len, &got, err, sizeof err);
                if (d == 0)
                    cluster_map_free(got);
                if (d != 0)
                    by_decode++;
                else
                    by_verify++;
            } else {
                by_verify++;
            }
        }
    }
    printf("corruptions of a %zu-byte signed map: %u refused by decode alone, %u only by the signature\n", len,
           by_decode, by_verify);
    assert_true(by_decode > 0 && by_verify > 0);
    /* Every truncation and an extra byte. */
    for (size_t cut = 0; cut < len; cut++) {
        struct cluster_map *got = NULL;
        assert_int_not_equal(cluster_map_open(good, cut, w.admin_pk, &got, err, sizeof err), 0);
        assert_null(got);
    }
    memcpy(bad, good, len);
    bad[len] = 0;
    struct cluster_map *got = NULL;
    assert_int_equal(cluster_map_open(bad, len + 1, w.admin_pk, &got, err, sizeof err), BFTKV_E_AUTH);
    free(bad);
    free(good);
    cluster_map_free(map);
}

/* Decode alone, on unsigned bytes: each malformation has its own refusal. */
static void test_decode_refusals(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    struct cluster_map_params pa = params_of(3);
    struct cluster_map *map = map_build(&w, &pa);
    size_t len = map->body_len;
    uint8_t *b = malloc(len + 1);
    assert_non_null(b);
    char err[BFTKV_CONFIG_ERR_MAX];
    struct cluster_map *got = NULL;
#define DECODE_EXPECT(want, what)                                                         \
    do {                                                                                  \
        err[0] = '\0';                                                                    \
        assert_int_equal(cluster_map_decode(b, len, &got, err, sizeof err), (want));      \
        assert_null(got);                                                                 \
        assert_non_null(strstr(err, (what)));                                             \
    } while (0)

    memcpy(b, map->body, len);
    b[0] = 'X';
    DECODE_EXPECT(BFTKV_E_CORRUPT, "magic");
    memcpy(b, map->body, len);
    b[8] = 2; /* version 2 */
    DECODE_EXPECT(BFTKV_E_VERSION, "version 2");
    memcpy(b, map->body, len);
    b[10] = 1;
    DECODE_EXPECT(BFTKV_E_CORRUPT, "reserved");
    memcpy(b, map->body, len);
    b[22] = 3; /* rf 3 < 3f+1 = 4 */
    DECODE_EXPECT(BFTKV_E_CORRUPT, "3f+1");
    memcpy(b, map->body, len);
    b[24] = 3; /* 3 partitions */
    DECODE_EXPECT(BFTKV_E_CORRUPT, "power of two");
    memcpy(b, map->body, len);
    b[28] = 9;
    DECODE_EXPECT(BFTKV_E_CORRUPT, "placement");
    memcpy(b, map->body, len);
    b[30] = 1; /* rendezvous with a parameter */
    DECODE_EXPECT(BFTKV_E_CORRUPT, "rendezvous");
    /* The second node's id: below the first's. */
    memcpy(b, map->body, len);
    size_t second = CLUSTER_MAP_HEADER_SIZE + 7u + b[CLUSTER_MAP_HEADER_SIZE + 6u] + 64u;
    memset(b + second, 0, 4);
    DECODE_EXPECT(BFTKV_E_CORRUPT, "must increase");
    /* The first node's host: a space in it. */
    memcpy(b, map->body, len);
    b[CLUSTER_MAP_HEADER_SIZE + 7u] = ' ';
    DECODE_EXPECT(BFTKV_E_CORRUPT, "host");
    /* Two nodes with one address (the second's port made the first's). */
    memcpy(b, map->body, len);
    memcpy(b + CLUSTER_MAP_HEADER_SIZE + 7u, "127.0.0.1", 9);
    memcpy(b + second + 7u, "127.0.0.1", 9);
    memcpy(b + second + 4u, b + CLUSTER_MAP_HEADER_SIZE + 4u, 2);
    DECODE_EXPECT(BFTKV_E_CORRUPT, "share the address");
    /* The last client's key made the first node's. */
    memcpy(b, map->body, len);
    memcpy(b + len - 64u, b + CLUSTER_MAP_HEADER_SIZE + 7u + b[CLUSTER_MAP_HEADER_SIZE + 6u], 32);
    DECODE_EXPECT(BFTKV_E_CORRUPT, "x25519 key");
    /* A byte too many; one too few. */
    memcpy(b, map->body, len);
    b[len] = 0;
    len++;
    DECODE_EXPECT(BFTKV_E_CORRUPT, "after the last client");
    len -= 2;
    DECODE_EXPECT(BFTKV_E_CORRUPT, "truncated");
#undef DECODE_EXPECT
    free(b);
    cluster_map_free(map);
}

static void test_other_key_refused(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    struct cluster_map_params pa = params_of(3);
    struct cluster_map *map = map_build(&w, &pa);
    uint8_t *signed_map = NULL;
    size_t len = 0;
    assert_int_equal(cluster_map_sign(map, w.other_sk, &signed_map, &len), 0);
    assert_int_equal(cluster_map_verify(signed_map, len, w.other_pk), 0);
    assert_int_equal(cluster_map_verify(signed_map, len, w.admin_pk), BFTKV_E_AUTH);
    struct cluster_map *got = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    assert_int_equal(cluster_map_open(signed_map, len, w.admin_pk, &got, err, sizeof err), BFTKV_E_AUTH);
    assert_null(got);
    assert_non_null(strstr(err, "signature"));
    enum cluster_map_verdict v = CLUSTER_MAP_NEWER;
    assert_int_equal(cluster_map_accept(NULL, signed_map, len, w.admin_pk, &got, &v, err, sizeof err), BFTKV_E_AUTH);
    assert_int_equal(v, CLUSTER_MAP_BAD);
    assert_null(got);
    free(signed_map);
    cluster_map_free(map);
}

/* ---- Acceptance ------------------------------------------------------------------------- */

static uint8_t *signed_of(const struct world *w, const struct cluster_map_params *pa, size_t *len)
{
    struct cluster_map *map = map_build(w, pa);
    uint8_t *out = NULL;
    assert_int_equal(cluster_map_sign(map, w->admin_sk, &out, len), 0);
    cluster_map_free(map);
    return out;
}

static void test_accept_epochs(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    enum cluster_map_verdict v;
    struct cluster_map_params pa = params_of(5);
    size_t len5 = 0;
    uint8_t *m5 = signed_of(&w, &pa, &len5);

    /* Nothing held yet: taken. */
    struct cluster_map *cur = NULL;
    assert_int_equal(cluster_map_accept(NULL, m5, len5, w.admin_pk, &cur, &v, err, sizeof err), 0);
    assert_int_equal(v, CLUSTER_MAP_NEWER);
    assert_non_null(cur);
    assert_int_equal(cur->params.epoch, 5);

    /* Older: refused. */
    pa = params_of(4);
    size_t len4 = 0;
    uint8_t *m4 = signed_of(&w, &pa, &len4);
    struct cluster_map *got = NULL;
    assert_int_equal(cluster_map_accept(cur, m4, len4, w.admin_pk, &got, &v, err, sizeof err), BFTKV_E_RANGE);
    assert_int_equal(v, CLUSTER_MAP_STALE);
    assert_null(got);
    assert_non_null(strstr(err, "older"));

    /* The same map again: nothing to change. */
    assert_int_equal(cluster_map_accept(cur, m5, len5, w.admin_pk, &got, &v, err, sizeof err), 0);
    assert_int_equal(v, CLUSTER_MAP_SAME);
    assert_null(got);

    /* Same epoch, other contents (a client revoked): a conflict. */
    struct world w2 = w;
    w2.client[2].allowed = false;
    pa = params_of(5);
    size_t len5b = 0;
    uint8_t *m5b = signed_of(&w2, &pa, &len5b);
    assert_int_equal(cluster_map_accept(cur, m5b, len5b, w.admin_pk, &got, &v, err, sizeof err), BFTKV_E_AUTH);
    assert_int_equal(v, CLUSTER_MAP_CONFLICT);
    assert_null(got);
    assert_non_null(strstr(err, "epoch 5"));

    /* Newer: taken, with the candidate's contents. */
    pa = params_of(6);
    size_t len6 = 0;
    uint8_t *m6 = signed_of(&w2, &pa, &len6);
    assert_int_equal(cluster_map_accept(cur, m6, len6, w.admin_pk, &got, &v, err, sizeof err), 0);
    assert_int_equal(v, CLUSTER_MAP_NEWER);
    assert_non_null(got);
    assert_int_equal(got->params.epoch, 6);
    assert_false(got->client[2].allowed);

    /* A newer epoch under another key: refused like any bad signature. */
    struct world w3 = w;
    memcpy(w3.admin_sk, w.other_sk, sizeof w3.admin_sk);
    pa = params_of(7);
    size_t len7 = 0;
    uint8_t *m7 = signed_of(&w3, &pa, &len7);
    struct cluster_map *none = NULL;
    assert_int_equal(cluster_map_accept(got, m7, len7, w.admin_pk, &none, &v, err, sizeof err), BFTKV_E_AUTH);
    assert_int_equal(v, CLUSTER_MAP_BAD);
    assert_null(none);

    free(m4);
    free(m5);
    free(m5b);
    free(m6);
    free(m7);
    cluster_map_free(got);
    cluster_map_free(cur);
}

/* ---- The single-group shorthand --------------------------------------------------------- */

static void test_single_group_shorthand(void **state)
{
    (void)state;
    enum { N = 4 };
    char text[4096];
    size_t at = 0;
    at += (size_t)snprintf(text + at, sizeof text - at, "f 1\nkey_dir keys\n");
    uint8_t seed[32];
    for (uint32_t i = 0; i < N + 2; i++) {
        struct auth_keypair kp;
        seed_of(seed, 500u + i);
        auth_keypair_from_seed(&kp, seed);
        char x[65], ed[65];
        sodium_bin2hex(x, sizeof x, kp.x_pk, 32);
        sodium_bin2hex(ed, sizeof ed, kp.sign_pk, 32);
        if (i < N)
            at += (size_t)snprintf(text + at, sizeof text - at, "replica %u 127.0.0.1:%u x25519=%s ed25519=%s\n", i,
                                   32200u + i, x, ed);
        else
            at += (size_t)snprintf(text + at, sizeof text - at, "client %u x25519=%s ed25519=%s\n", (i - N) * 3u, x,
                                   ed);
    }
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = bftkv_config_parse(text, at, "shorthand.conf", &cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("config: %s", err);
    struct cluster_map *map = NULL;
    assert_int_equal(cluster_map_from_config(cfg, 1, &map, err, sizeof err), 0);
    assert_int_equal(map->m, N);
    assert_int_equal(map->params.rf, N);
    assert_int_equal(map->params.partitions, 1);
    assert_int_equal(map->params.f, 1);
    bool seen[N] = {false};
    const uint16_t *set = cluster_map_partition_replicas(map, 0);
    for (uint16_t k = 0; k < N; k++) {
        uint32_t id = map->node_id[set[k]];
        assert_true(id < N);
        assert_false(seen[id]);
        seen[id] = true;
    }
    for (uint16_t i = 0; i < N; i++) {
        assert_int_equal(map->node_id[i], i);
        assert_string_equal(map->node[i].host, cfg->replica[i].host);
        assert_int_equal(map->node[i].port, cfg->replica[i].port);
        assert_memory_equal(map->node[i].ed25519, cfg->replica[i].ed25519, 32);
    }
    assert_int_equal(map->clients, cfg->clients);
    assert_int_equal(map->clients_allowed, 2);
    assert_true(map->client[0].allowed && map->client[3].allowed && !map->client[1].allowed);
    assert_memory_equal(map->client[3].x25519, cfg->client[3].x25519, 32);
    /* Every key is partition 0. */
    assert_int_equal(cluster_map_key_partition(map, "some key", 8), 0);
    cluster_map_free(map);
    bftkv_config_free(cfg);
}

/* ---- Lookups ------------------------------------------------------------------------------ */

static void test_lookups_agree_with_placement(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    for (int ring = 0; ring < 2; ring++) {
        struct cluster_map_params pa = params_of(9);
        if (ring) {
            pa.placement = CLUSTER_PLACEMENT_RING;
            pa.vnodes = 64;
        }
        struct cluster_map *map = map_build(&w, &pa);
        uint32_t sorted[M];
        memcpy(sorted, map->node_id, sizeof sorted);
        uint16_t want[P * R];
        int rc = ring ? cluster_placement_ring(sorted, M, P, R, 64, want)
                      : cluster_placement_rendezvous(sorted, M, P, R, want);
        assert_int_equal(rc, 0);
        for (uint32_t p = 0; p < P; p++)
            assert_memory_equal(cluster_map_partition_replicas(map, p), want + p * R, R * sizeof want[0]);
        for (uint16_t i = 0; i < M; i++)
            assert_int_equal(cluster_map_node_index(map, w.ids[i]), (int)(M - 1u - i)); /* given decreasing */
        assert_int_equal(cluster_map_node_index(map, 1), BFTKV_E_NOT_FOUND);
        assert_int_equal(cluster_map_node_index(map, 0xffffffffu), BFTKV_E_NOT_FOUND);
        unsigned hits[P] = {0};
        for (unsigned k = 0; k < 4096; k++) {
            char key[32];
            int n = snprintf(key, sizeof key, "key-%u", k);
            uint32_t part = cluster_map_key_partition(map, key, (size_t)n);
            assert_int_equal(part, cluster_key_partition(key, (size_t)n, P));
            hits[part]++;
        }
        for (uint32_t p = 0; p < P; p++)
            assert_true(hits[p] > 0);
        cluster_map_free(map);
    }
}

static void test_build_refusals(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    struct cluster_map_params pa = params_of(1);
    pa.rf = 3; /* < 3f+1 */
    assert_int_equal(build_rc(&w, &pa, M), BFTKV_E_INVAL);
    pa = params_of(1);
    pa.rf = M + 1u;
    assert_int_equal(build_rc(&w, &pa, M), BFTKV_E_INVAL);
    assert_int_equal(build_rc(&w, &pa, 3), BFTKV_E_INVAL); /* rf 4 over 3 nodes */
    pa = params_of(1);
    pa.partitions = 12;
    assert_int_equal(build_rc(&w, &pa, M), BFTKV_E_INVAL);
    pa.partitions = BFTKV_PARTITIONS_MAX * 2u;
    assert_int_equal(build_rc(&w, &pa, M), BFTKV_E_INVAL);
    pa = params_of(1);
    pa.placement = CLUSTER_PLACEMENT_RING; /* without points */
    assert_int_equal(build_rc(&w, &pa, M), BFTKV_E_INVAL);
    pa = params_of(1);
    assert_int_equal(build_rc(&w, &pa, M), 0);

    struct world bad = w;
    bad.ids[3] = bad.ids[1];
    assert_int_equal(build_rc(&bad, &pa, M), BFTKV_E_INVAL);
    bad = w;
    bad.node[4].port = bad.node[1].port;
    strcpy(bad.node[4].host, bad.node[1].host);
    assert_int_equal(build_rc(&bad, &pa, M), BFTKV_E_INVAL);
    bad = w;
    memcpy(bad.client[4].ed25519, bad.node[0].ed25519, 32);
    assert_int_equal(build_rc(&bad, &pa, M), BFTKV_E_INVAL);
    bad = w;
    strcpy(bad.node[2].host, "no spaces please");
    assert_int_equal(build_rc(&bad, &pa, M), BFTKV_E_INVAL);
    bad = w;
    strcpy(bad.node[2].host, "::1"); /* IPv6, unbracketed as the config holds it */
    assert_int_equal(build_rc(&bad, &pa, M), 0);
    bad = w;
    for (uint16_t c = 0; c < CLIENTS; c++)
        bad.client[c].allowed = false;
    assert_int_equal(build_rc(&bad, &pa, M), BFTKV_E_INVAL);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void test_json(void **state)
{
    (void)state;
    struct world w;
    world_make(&w);
    struct cluster_map_params pa = params_of(12);
    struct cluster_map *map = map_build(&w, &pa);
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    assert_int_equal(cluster_map_json_write(map, fp), 0);
    assert_int_equal(fclose(fp), 0);
    assert_non_null(strstr(buf, "\"epoch\": 12,"));
    assert_non_null(strstr(buf, "\"partitions\": 16,"));
    assert_non_null(strstr(buf, "\"algorithm\": \"rendezvous\""));
    char hex[65], want[512];
    sodium_bin2hex(hex, sizeof hex, w.node[0].ed25519, 32);
    snprintf(want, sizeof want, "\"ed25519\": \"%s\"", hex);
    assert_non_null(strstr(buf, want));
    snprintf(want, sizeof want, "{\"id\": %u, \"host\": \"%s\", \"port\": %u,", w.ids[0], w.node[0].host,
             w.node[0].port);
    assert_non_null(strstr(buf, want));
    assert_null(strstr(buf, "{\"id\": 1, \"x25519\"")); /* client 1 is not allowed */
    assert_non_null(strstr(buf, "{\"id\": 4, \"x25519\""));
    const uint16_t *set = cluster_map_partition_replicas(map, P - 1u);
    snprintf(want, sizeof want, "[%u, %u, %u, %u]\n  ]", map->node_id[set[0]], map->node_id[set[1]],
             map->node_id[set[2]], map->node_id[set[3]]);
    assert_non_null(strstr(buf, want));
    free(buf);
    cluster_map_free(map);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_byte_corruption_refused),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_other_key_refused),
        cmocka_unit_test(test_accept_epochs),
        cmocka_unit_test(test_single_group_shorthand),
        cmocka_unit_test(test_lookups_agree_with_placement),
        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
