/* Unit tests of catch-up (engine/catchup.c, engine/statetransfer.c,
 * engine/wire_catchup.c, store/store_swap.c): the store exchange the install
 * uses; the STATUS/FETCH/STATE codec and its drops; retransmission keeping a
 * group live under 10% loss of every message; a partitioned backup catching up
 * by state transfer; a lying state server caught by the signed digest (and not
 * caught with PBFT_BUG_SKIP_SNAPSHOT_DIGEST); a backup restarted empty rejoining;
 * a server that keeps executing while it serves chunks. The clusters run on
 * replica_harness.c under load (rh_init_loaded: loss, partitions, closed-loop
 * clients, simulated time in 1 ms ticks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "replica_harness.h"
#include "engine/catchup.h"
#include "store/store.h"

#define MS RH_MS

static struct rh_cluster C;
static bool g_up;

static int teardown(void **state)
{
    (void)state;
    if (g_up) {
        rh_dump(&C, "teardown");
        g_up = false;
        assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    }
    return 0;
}

/* Four replicas (f = 1) under load, seeded. */
static struct rh_cluster *cluster(const struct rh_tune *t, uint16_t clients, uint64_t seed)
{
    rh_init_loaded(&C, 4, 1, clients, seed, t);
    g_up = true;
    return &C;
}

static bool isolated(const struct rh_cluster *c, uint16_t i)
{
    return (c->net.isolated >> i) & 1u;
}

/* Every replica not cut off at the same seq with the same store. */
static void assert_converged(struct rh_cluster *c)
{
    uint8_t d0[32], d[32];
    int ref = -1;
    for (uint16_t i = 0; i < c->n; i++) {
        if (isolated(c, i))
            continue;
        if (ref < 0) {
            ref = i;
            store_digest_bytes(c->store[i], d0);
            continue;
        }
        assert_int_equal(rh_stats(c, i)->last_executed, rh_stats(c, (uint16_t)ref)->last_executed);
        store_digest_bytes(c->store[i], d);
        assert_memory_equal(d, d0, 32);
    }
    assert_true(rh_agree(c, 0xF));
}

/* ---- store_swap ------------------------------------------------------------------- */

static void test_store_swap(void **state)
{
    (void)state;
    struct store_config cfg = {.shards = 8, .initial_slots = 0};
    struct store *a = NULL, *b = NULL, *c = NULL, *odd = NULL;
    assert_int_equal(store_create(&cfg, &a), 0);
    assert_int_equal(store_create_like(a, &b), 0);
    assert_int_equal(store_shard_count(b), 8);
    for (int i = 0; i < 100; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "a%d", i);
        snprintf(v, sizeof v, "va%d", i);
        assert_int_equal(store_put(a, k, strlen(k), v, strlen(v)), 0);
    }
    assert_int_equal(store_put(b, "b", 1, "vb", 2), 0);
    uint8_t da[32], db[32], x[32];
    store_digest_bytes(a, da);
    store_digest_bytes(b, db);
    struct store_snapshot *snap = NULL;
    assert_int_equal(store_snapshot_take(a, &snap), 0);

    assert_int_equal(store_swap(a, b), 0);
    store_digest_bytes(a, x);
    assert_memory_equal(x, db, 32);
    store_digest_bytes(b, x);
    assert_memory_equal(x, da, 32);
    assert_int_equal(store_count(a), 1);
    assert_int_equal(store_count(b), 100);
    size_t vlen = 0;
    char buf[16];
    assert_int_equal(store_get(a, "b", 1, buf, sizeof buf, &vlen), 0);
    assert_int_equal(store_get(b, "a7", 2, buf, sizeof buf, &vlen), 0);
    assert_memory_equal(buf, "va7", 3);
    assert_int_equal(store_get(a, "a7", 2, buf, sizeof buf, &vlen), BFTKV_E_NOT_FOUND);
    /* Writes after the swap go to the new contents; the snapshot keeps a's old. */
    assert_int_equal(store_put(a, "n", 1, "1", 1), 0);
    assert_int_equal(store_count(a), 2);
    assert_int_equal(store_snapshot_count(snap), 100);
    store_snapshot_release(snap);

    /* A store made with another key and the same shard count swaps too, its
     * key travelling with its tables. */
    assert_int_equal(store_create(&cfg, &c), 0);
    assert_int_equal(store_put(c, "c", 1, "vc", 2), 0);
    assert_int_equal(store_swap(b, c), 0);
    assert_int_equal(store_get(b, "c", 1, buf, sizeof buf, &vlen), 0);
    assert_int_equal(store_get(c, "a7", 2, buf, sizeof buf, &vlen), 0);
    assert_int_equal(store_swap(c, c), 0);

    struct store_config cfg4 = {.shards = 4, .initial_slots = 0};
    assert_int_equal(store_create(&cfg4, &odd), 0);
    assert_int_equal(store_swap(a, odd), BFTKV_E_INVAL);
    assert_int_equal(store_swap(NULL, a), BFTKV_E_INVAL);
    assert_int_equal(store_create_like(NULL, &odd), BFTKV_E_INVAL);

    uint8_t key[STORE_HASH_KEY_SIZE] = {1, 2, 3};
    struct store *k1 = NULL, *k2 = NULL;
    assert_int_equal(store_create_keyed(&cfg, key, &k1), 0);
    assert_int_equal(store_create_keyed(&cfg, key, &k2), 0);
    assert_int_equal(store_create_keyed(&cfg, NULL, &k2), BFTKV_E_INVAL);
    store_destroy(k1);
    store_destroy(k2);
    store_destroy(a);
    store_destroy(b);
    store_destroy(c);
    store_destroy(odd);
}

/* ---- The codec ---------------------------------------------------------------------- */

#define NREP 4
static const struct wire_limits g_lim = {.group = 3, .n = NREP, .clients_max = 8};
static uint8_t g_buf[BFTKV_DATAGRAM_MAX];

static int decode(const uint8_t *b, size_t len, struct wire_msg *m, enum wire_drop *why)
{
    struct wire_drop_counters d;
    memset(&d, 0, sizeof d);
    size_t used = 0;
    int rc = wire_decode(b, len, &g_lim, m, &used, &d);
    *why = WIRE_DROP_COUNT;
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        if (d.count[i])
            *why = (enum wire_drop)i;
    }
    return rc;
}

static void test_codec(void **state)
{
    (void)state;
    struct wire_msg m;
    enum wire_drop why;
    size_t off = 0;
    /* STATUS */
    size_t n = wire_encode_status(g_buf, sizeof g_buf, 3, 1, NREP, 7, 40, 32, 45, 0, &off);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_STATUS_BODY + NREP * 16u);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(m.h.type, WIRE_STATUS);
    assert_int_equal(m.h.view, 7);
    assert_int_equal(m.h.seq, 40);
    assert_int_equal(m.u.status.low, 32);
    assert_int_equal(m.u.status.max_seq, 45);
    assert_int_equal(m.u.status.flags, 0);
    g_buf[WIRE_HEADER_SIZE] = 41; /* low 41 > last executed 40 */
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_FIELD);
    /* The no-state flag round-trips; an unknown flag bit or a pad byte is refused. */
    n = wire_encode_status(g_buf, sizeof g_buf, 3, 1, NREP, 7, 0, 0, 0, WIRE_STATUS_NO_STATE, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(m.u.status.flags, WIRE_STATUS_NO_STATE);
    g_buf[WIRE_HEADER_SIZE + 16] = 3;
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_FIELD);
    g_buf[WIRE_HEADER_SIZE + 16] = 1;
    g_buf[WIRE_HEADER_SIZE + 23] = 1;
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_FIELD);

    /* FETCH */
    uint8_t d[32];
    memset(d, 0xab, sizeof d);
    struct wire_state_pos pos = {.part = WIRE_PART_STORE, .shard = 5, .cursor = 77};
    n = wire_encode_fetch(g_buf, sizeof g_buf, 3, 2, NREP, 0, 64, d, &pos, 4, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(m.u.fetch.pos.part, WIRE_PART_STORE);
    assert_int_equal(m.u.fetch.pos.shard, 5);
    assert_int_equal(m.u.fetch.pos.cursor, 77);
    assert_int_equal(m.u.fetch.count, 4);
    assert_memory_equal(m.u.fetch.digest, d, 32);
    g_buf[WIRE_HEADER_SIZE + 32] = WIRE_PART_END; /* not a position with data */
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_FIELD);

    /* STATE: a store chunk of two records. */
    uint8_t data[64];
    size_t dl = 0;
    const char *recs[2][2] = {{"k1", "value1"}, {"key2", ""}};
    for (int i = 0; i < 2; i++) {
        size_t kl = strlen(recs[i][0]), vl = strlen(recs[i][1]);
        data[dl] = (uint8_t)kl;
        data[dl + 1] = 0;
        data[dl + 2] = (uint8_t)vl;
        data[dl + 3] = data[dl + 4] = data[dl + 5] = 0;
        memcpy(data + dl + 6, recs[i][0], kl);
        memcpy(data + dl + 6 + kl, recs[i][1], vl);
        dl += 6 + kl + vl;
    }
    struct wire_state st = {
        .digest = d,
        .kind = WIRE_STATE_CHUNK,
        .shards = 16,
        .from = {.part = WIRE_PART_STORE, .shard = 3, .cursor = 0},
        .next = {.part = WIRE_PART_STORE, .shard = 4, .cursor = 9},
        .data = data,
        .data_len = (uint32_t)dl,
    };
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(m.u.state.kind, WIRE_STATE_CHUNK);
    assert_int_equal(m.u.state.data_len, dl);
    assert_int_equal(m.u.state.next.shard, 4);
    assert_memory_equal(m.u.state.data, data, dl);
    /* Backwards, a truncated record, a shard beyond shards: dropped. */
    st.next = (struct wire_state_pos){.part = WIRE_PART_STORE, .shard = 3, .cursor = 0};
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_FIELD);
    st.next = (struct wire_state_pos){.part = WIRE_PART_RCACHE, .shard = 0, .cursor = 0};
    st.data_len = (uint32_t)dl - 1u;
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    st.next = (struct wire_state_pos){.part = WIRE_PART_STORE, .shard = 5, .cursor = 0};
    st.data_len = 0; /* an empty chunk that does not end its part */
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    st.next = (struct wire_state_pos){.part = WIRE_PART_RCACHE, .shard = 0, .cursor = 0};
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0); /* the store part's end may be empty */
    st.data_len = (uint32_t)dl;
    st.from.shard = 16;
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);

    /* An RCACHE chunk: entries in order, a cached result checked against its digest. */
    uint8_t rd[32], rdata[256];
    wire_result_digest(rd, 0, "xyz", 3);
    struct wire_rc_entry e = {.key = 2, .timestamp = 9, .status = 0, .op = WIRE_OP_GET, .result_len = 3,
                              .digest = rd, .result = (const uint8_t *)"xyz"};
    size_t rl = wire_rc_entry_put(rdata, sizeof rdata, &e);
    assert_int_equal(rl, WIRE_RC_ENTRY_FIXED + 3u);
    st.from = (struct wire_state_pos){.part = WIRE_PART_RCACHE, .shard = 0, .cursor = 1};
    st.next = (struct wire_state_pos){.part = WIRE_PART_END, .shard = 0, .cursor = 0};
    st.data = rdata;
    st.data_len = (uint32_t)rl;
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    uint32_t it = 0;
    struct wire_rc_entry got;
    assert_int_equal(wire_rc_entry_next(&m.u.state, &it, &got), 1);
    assert_int_equal(got.key, 2);
    assert_int_equal(got.timestamp, 9);
    assert_memory_equal(got.result, "xyz", 3);
    assert_int_equal(wire_rc_entry_next(&m.u.state, &it, &got), 0);
    rdata[WIRE_RC_ENTRY_FIXED] ^= 1; /* the result no longer matches its digest */
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_DIGEST);
    rdata[WIRE_RC_ENTRY_FIXED] ^= 1;
    st.from.cursor = 3; /* the entry's key 2 lies before the chunk's start */
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &st, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);

    /* MISSING and PROOF: no positions; a proof is whole CHECKPOINT messages. */
    struct wire_state ms = {.digest = d, .kind = WIRE_STATE_MISSING};
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &ms, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    uint8_t proof[2 * WIRE_CHECKPOINT_MSG_SIZE];
    memset(proof, 0, sizeof proof);
    ms.kind = WIRE_STATE_PROOF;
    ms.data = proof;
    ms.data_len = sizeof proof;
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &ms, &off);
    assert_int_equal(decode(g_buf, n, &m, &why), 0);
    ms.data_len = WIRE_CHECKPOINT_MSG_SIZE + 1u;
    n = wire_encode_state(g_buf, sizeof g_buf, 3, 0, NREP, 0, 64, &ms, &off);
    assert_int_not_equal(decode(g_buf, n, &m, &why), 0);
    assert_int_equal(why, WIRE_DROP_BAD_FIELD);
}

/* ---- Retransmission under loss -------------------------------------------------------- */

static void test_loss_retransmission(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 16, .l = 64, .w = 8};
    struct rh_cluster *c = cluster(&p, 8, 42);
    c->net.loss_pct = 10;
    rh_workload(c, 2000, 64, 16);
    assert_true(rh_advance(c, 60000 * MS, MS, rh_workload_done));
    assert_int_equal(c->ops_done, 2000);
    /* Stragglers catch up under the same loss: STATUS and its answers. */
    assert_true(rh_advance(c, c->now_ns + 5000 * MS, MS, rh_replicas_level));
    assert_converged(c);
    uint64_t retx = 0, status = 0;
    for (uint16_t i = 0; i < 4; i++) {
        retx += rh_stats(c, i)->retransmissions;
        status += rh_stats(c, i)->status_sent;
    }
    assert_true(retx > 0);
    assert_true(status > 0);
    assert_true(c->dropped > 0);
}

/* ---- State transfer ------------------------------------------------------------------- */

static uint64_t max_low(struct rh_cluster *c)
{
    uint64_t h = 0;
    for (uint16_t i = 0; i < c->n; i++) {
        if (!isolated(c, i) && rh_stats(c, i)->low_watermark > h)
            h = rh_stats(c, i)->low_watermark;
    }
    return h;
}

/* Replica 3 is cut off while the others pass two stable checkpoints and more,
 * then the partition heals. */
static struct rh_cluster *partitioned_run(const struct rh_tune *p, uint16_t clients, uint32_t ops, uint32_t value_len)
{
    struct rh_cluster *c = cluster(p, clients, 7);
    c->net.isolated |= 1u << 3;
    rh_workload(c, ops, 128, value_len);
    assert_true(rh_advance(c, 60000 * MS, MS, rh_workload_done));
    assert_true(max_low(c) >= 2u * p->k + p->l); /* beyond replica 3's whole window */
    assert_int_equal(rh_stats(c, 3)->last_executed, 0);
    c->net.isolated &= ~(1u << 3);
    return c;
}

static void test_partition_state_transfer(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 4, .l = 8, .w = 4};
    struct rh_cluster *c = partitioned_run(&p, 4, 200, 64);
    assert_true(rh_advance(c, c->now_ns + 5000 * MS, MS, rh_replicas_level));
    assert_converged(c);
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(s3->state_transfers >= 1);
    assert_true(s3->state_chunks_received >= 1);
    assert_int_equal(s3->state_transfer_bad_digest, 0);
    assert_int_equal(s3->low_watermark, rh_stats(c, 0)->low_watermark);
    /* The installed checkpoint's digest is the group's. */
    uint32_t agree = 0;
    for (size_t k = 0; k < c->ckpts[3].n; k++) {
        uint64_t seq = c->ckpts[3].e[k].seq;
        const uint8_t *d3 = rh_ckpt_digest(c, 3, seq), *d0 = rh_ckpt_digest(c, 0, seq);
        if (d0 != NULL) {
            assert_memory_equal(d3, d0, 32);
            agree++;
        }
    }
    assert_true(agree >= 1);
    /* It serves in turn: one more workload, everyone level again. */
    rh_workload(c, 40, 128, 64);
    assert_true(rh_advance(c, c->now_ns + 5000 * MS, MS, rh_settled));
    assert_converged(c);
}

/* A lying server, replica 1: flip the last byte of the first store record of
 * each STATE chunk it sends and re-MAC the message with its own keys, so only
 * the state digest can tell. */
static uint64_t g_corrupted;

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void chunk_corrupt(struct rh_cluster *c, const struct rh_msg *m)
{
    if (m->from != 1 || rh_msg_type(m) != WIRE_STATE)
        return;
    uint8_t *b = m->bytes + WIRE_HEADER_SIZE;
    struct wire_header h;
    wire_header_read(m->bytes, &h);
    if (b[32] != WIRE_STATE_CHUNK || b[33] != WIRE_PART_STORE)
        return;
    uint32_t data_len = le32(b + 64);
    uint8_t *data = b + WIRE_STATE_FIXED;
    if (data_len < STORE_RECORD_HEADER_SIZE + 1u)
        return;
    uint32_t klen = le16(data), vlen = le32(data + 2);
    data[STORE_RECORD_HEADER_SIZE + klen + vlen - 1u] ^= 0x5a;
    auth_authenticator_fill(&c->rauth[m->from], m->bytes, m->len, WIRE_HEADER_SIZE + (size_t)h.body_len);
    g_corrupted++;
}

/* Only replica 1's proof reaches replica 3, so replica 1 -- which lies -- is the
 * first server asked. */
static bool proofs_only_from_1(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    (void)arg;
    if (m->to != 3 || m->from == 1 || rh_msg_type(m) != WIRE_STATE || m->len < WIRE_HEADER_SIZE + 33u)
        return false;
    return m->bytes[WIRE_HEADER_SIZE + 32] == WIRE_STATE_PROOF;
}

static bool liar_1(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    chunk_corrupt(c, m);
    return proofs_only_from_1(c, m, arg);
}

static void test_lying_server_detected(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 4, .l = 8, .w = 4};
    struct rh_cluster *c = partitioned_run(&p, 4, 200, 64);
    g_corrupted = 0;
    c->filter = liar_1;
    assert_true(rh_advance(c, c->now_ns + 5000 * MS, MS, rh_replicas_level));
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(g_corrupted >= 1);
    assert_true(s3->state_transfer_bad_digest >= 1);
    assert_true(s3->state_transfers >= 1);
    assert_true(s3->state_transfer_restarts >= 1);
    assert_converged(c);
}

/* Replica 1 sends its proof but never a chunk: the FETCHes to it time out and
 * the next server is asked. */
static bool silent_server_1(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    if (m->from == 1 && m->to == 3 && rh_msg_type(m) == WIRE_STATE
        && m->bytes[WIRE_HEADER_SIZE + 32] != WIRE_STATE_PROOF)
        return true;
    return proofs_only_from_1(c, m, arg);
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 4, .l = 8, .w = 4};
    struct rh_cluster *c = partitioned_run(&p, 4, 200, 64);
    c->filter = silent_server_1;
    assert_true(rh_advance(c, c->now_ns + 5000 * MS, MS, rh_replicas_level));
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(s3->state_fetch_timeouts >= CATCHUP_FETCH_ATTEMPTS);
    assert_true(s3->state_transfers >= 1);
    assert_int_equal(s3->state_transfer_bad_digest, 0);
    assert_converged(c);
}

static void test_bug_skip_snapshot_digest(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 4, .l = 8, .w = 4};
    p.bugs[3] = PBFT_BUG_SKIP_SNAPSHOT_DIGEST;
    struct rh_cluster *c = partitioned_run(&p, 4, 200, 64);
    g_corrupted = 0;
    c->filter = liar_1;
    rh_advance(c, c->now_ns + 300 * MS, MS, NULL);
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(s3->state_transfers >= 1);
    assert_true(s3->state_transfer_bad_digest >= 1);
    /* The corrupted state was installed: its checkpoint digest is not the group's. */
    bool differs = false;
    for (size_t k = 0; k < c->ckpts[3].n; k++) {
        uint64_t seq = c->ckpts[3].e[k].seq;
        const uint8_t *d3 = rh_ckpt_digest(c, 3, seq), *d0 = rh_ckpt_digest(c, 0, seq);
        if (d0 != NULL && memcmp(d3, d0, 32) != 0)
            differs = true;
    }
    assert_true(differs);
    uint8_t d0[32], d3[32];
    store_digest_bytes(c->store[0], d0);
    store_digest_bytes(c->store[3], d3);
    assert_memory_not_equal(d0, d3, 32);
}

/* ---- Crash and restart ---------------------------------------------------------------- */

static void test_crash_restart(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 32, .l = 64, .w = 4};
    struct rh_cluster *c = cluster(&p, 4, 11);
    c->restart_at_ops = 150;
    c->restart_who = 2;
    rh_workload(c, 500, 128, 32);
    assert_true(rh_advance(c, 60000 * MS, MS, rh_settled));
    assert_int_equal(c->restart_at_ops, 0); /* it did crash */
    assert_true(c->restart_le > 0);
    assert_converged(c);
    const struct pbft_replica_stats *s2 = rh_stats(c, 2);
    assert_true(s2->state_transfers >= 1);
    assert_true(s2->status_sent >= 1);
    assert_true(s2->last_executed > c->restart_le);
    assert_true(s2->requests_executed > 0); /* it went on by the normal protocol too */
}

/* The workload is done and q replicas stand at the top seq with one store. */
static bool done_with_q_level(struct rh_cluster *c)
{
    if (!rh_workload_done(c))
        return false;
    uint64_t top = 0;
    for (uint16_t i = 0; i < c->n; i++)
        top = rh_stats(c, i)->last_executed > top ? rh_stats(c, i)->last_executed : top;
    uint8_t d0[32], d[32];
    uint32_t level = 0;
    for (uint16_t i = 0; i < c->n; i++) {
        if (rh_stats(c, i)->last_executed != top)
            continue;
        store_digest_bytes(c->store[i], level == 0 ? d0 : d);
        if (level > 0 && memcmp(d, d0, 32) != 0)
            return false;
        level++;
    }
    return level >= pbft_quorum(c->n, (uint16_t)((c->n - 1u) / 3u));
}

static bool restarted_once(struct rh_cluster *c)
{
    return c->restart_at_ops == 0;
}

/* The primary of view 0 is cut off, so the others move to view 1; then a
 * backup crashes and restarts in view 0. It learns view 1 from the STATUS of
 * the two left (f+1 of them), but with the primary cut off only two replicas
 * holding state answer, fewer than the q that must vouch for a replica that
 * lost its memory (catchup.c): it stays unsure, votes nothing and the group
 * waits. Once the cut heals, q peers vouch, and it fetches the state and takes
 * part again. */
static void test_restart_adopts_view(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 8, .l = 16, .w = 4};
    p.request_timeout_ns = 30 * MS;
    struct rh_cluster *c = cluster(&p, 4, 5);
    c->net.isolated |= 1u << 0;
    c->restart_at_ops = 120;
    c->restart_who = 2;
    rh_workload(c, 300, 64, 32);
    assert_true(rh_advance(c, 60000 * MS, MS, restarted_once));
    rh_advance(c, c->now_ns + 500 * MS, MS, NULL);
    uint64_t le1 = rh_stats(c, 1)->last_executed;
    rh_advance(c, c->now_ns + 2000 * MS, MS, NULL);
    const struct pbft_replica_stats *s2 = rh_stats(c, 2);
    assert_int_equal(s2->holds_state, 0); /* two holders answer: fewer than q */
    assert_true(s2->requests_refused_no_state > 0);
    assert_int_equal(rh_stats(c, 1)->last_executed, le1); /* no quorum without its votes */
    c->net.isolated &= ~(1u << 0);
    /* While the group waited, replica 3 may have timed out alone into a view
     * nobody joins (a backup that suspects the primary alone stays in its view
     * change, TOCS 2002 §4.5.2); the group serves with the q others. */
    assert_true(rh_advance(c, c->now_ns + 60000 * MS, MS, done_with_q_level));
    assert_int_equal(s2->holds_state, 1);
    assert_true(s2->views_adopted >= 1);
    assert_true(pbft_replica_view(c->r[2]) >= 1);
    assert_int_equal(pbft_replica_view(c->r[2]), pbft_replica_view(c->r[1]));
    assert_true(s2->state_transfers >= 1);
    assert_true(rh_agree(c, 0xF));
}

/* ---- Serving does not stop the server ------------------------------------------------- */

struct fetch_log {
    uint32_t count;
    uint64_t first_le[RH_REPLICAS_MAX], last_le[RH_REPLICAS_MAX];
    uint32_t per_server[RH_REPLICAS_MAX];
};

/* Notes each FETCH as it is delivered to its server. */
static bool on_fetch(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    struct fetch_log *log = arg;
    uint16_t server = m->to;
    if (rh_msg_type(m) != WIRE_FETCH)
        return false;
    uint64_t le = rh_stats(c, server)->last_executed;
    if (log->per_server[server]++ == 0)
        log->first_le[server] = le;
    log->last_le[server] = le;
    log->count++;
    return false;
}

static void test_server_keeps_executing(void **state)
{
    (void)state;
    /* About 200 keys of 2,000 bytes: a state of several chunks. */
    struct rh_tune p = {.k = 32, .l = 64, .w = 8};
    struct rh_cluster *c = partitioned_run(&p, 8, 600, 2000);
    rh_dump(c, "partitioned");
    static struct fetch_log log;
    memset(&log, 0, sizeof log);
    c->filter = on_fetch;
    c->filter_arg = &log;
    rh_workload(c, 600, 128, 2000); /* the group keeps working meanwhile */
    assert_true(rh_advance(c, c->now_ns + 60000 * MS, MS, rh_settled));
    assert_converged(c);
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(s3->state_transfers >= 1);
    /* It caught up during the load: after its install it executed batches by
     * the normal protocol while the others went on. */
    assert_true(s3->batches_executed > 0);
    assert_true(log.count >= 3);
    bool advanced = false;
    for (uint16_t i = 0; i < 3; i++)
        advanced = advanced || (log.per_server[i] >= 2 && log.last_le[i] > log.first_le[i]);
    assert_true(advanced);
    uint64_t served = 0;
    for (uint16_t i = 0; i < 3; i++)
        served += rh_stats(c, i)->state_chunks_served;
    assert_true(served >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_swap),
        cmocka_unit_test(test_codec),
        cmocka_unit_test_teardown(test_loss_retransmission, teardown),
        cmocka_unit_test_teardown(test_partition_state_transfer, teardown),
        cmocka_unit_test_teardown(test_lying_server_detected, teardown),
        cmocka_unit_test_teardown(test_silent_server_times_out, teardown),
        cmocka_unit_test_teardown(test_bug_skip_snapshot_digest, teardown),
        cmocka_unit_test_teardown(test_crash_restart, teardown),
        cmocka_unit_test_teardown(test_restart_adopts_view, teardown),
        cmocka_unit_test_teardown(test_server_keeps_executing, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
