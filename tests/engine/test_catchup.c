/* Unit tests of catch-up (engine/status.c, engine/statetransfer.c,
 * engine/wire_catchup.c, store/store_swap.c): the store exchange the install
 * uses; the STATUS/FETCH/STATE codec and its drops; retransmission keeping a
 * group live under 10% loss of every message; a partitioned backup catching up
 * by state transfer; a lying state server caught by the signed digest (and not
 * caught with PBFT_BUG_SKIP_SNAPSHOT_DIGEST); a backup restarted empty rejoining;
 * a server that keeps executing while it serves chunks. The clusters run on
 * cu_harness.c (replica_harness.c plus loss, partitions and simulated time).
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
#include "cu_harness.h"
#include "engine/catchup.h"
#include "store/store.h"

#define MS (1000ull * 1000ull)

static struct cu_cluster *g_cu;

static int teardown(void **state)
{
    (void)state;
    if (g_cu != NULL) {
        cu_dump(g_cu, "teardown");
        assert_int_equal(g_cu->rh.bad_replies, 0);
        cu_fini(g_cu);
        free(g_cu);
        g_cu = NULL;
    }
    return 0;
}

static struct cu_cluster *cluster(const struct cu_params *p, uint64_t seed)
{
    g_cu = calloc(1, sizeof *g_cu);
    assert_non_null(g_cu);
    cu_init(g_cu, p, seed);
    return g_cu;
}

static bool level_and_done(struct cu_cluster *cu)
{
    return cu_workload_done(cu) && cu_replicas_level(cu);
}

/* Every replica not cut off at the same seq with the same store. */
static void assert_converged(struct cu_cluster *cu)
{
    uint8_t d0[32], d[32];
    int ref = -1;
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        if (cu->cut[i])
            continue;
        if (ref < 0) {
            ref = i;
            cu_store_digest(cu, i, d0);
            continue;
        }
        assert_int_equal(cu_stats(cu, i)->last_executed, cu_stats(cu, (uint16_t)ref)->last_executed);
        cu_store_digest(cu, i, d);
        assert_memory_equal(d, d0, 32);
    }
    assert_true(cu_agree(cu));
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
    struct cu_params p = {.n = 4, .f = 1, .clients = 8, .k = 16, .l = 64, .w = 8};
    struct cu_cluster *cu = cluster(&p, 42);
    cu->loss_pct = 10;
    cu_workload(cu, 2000, 64, 16);
    assert_true(cu_run(cu, cu_workload_done, 60000 * MS));
    assert_int_equal(cu->ops_done, 2000);
    /* Stragglers catch up under the same loss: STATUS and its answers. */
    assert_true(cu_run(cu, cu_replicas_level, cu->rh.now_ns + 5000 * MS));
    assert_converged(cu);
    uint64_t retx = 0, status = 0;
    for (uint16_t i = 0; i < 4; i++) {
        retx += cu_stats(cu, i)->retransmissions;
        status += cu_stats(cu, i)->status_sent;
    }
    assert_true(retx > 0);
    assert_true(status > 0);
    assert_true(cu->dropped > 0);
}

/* ---- State transfer ------------------------------------------------------------------- */

static uint64_t max_low(struct cu_cluster *cu)
{
    uint64_t h = 0;
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        if (!cu->cut[i] && cu_stats(cu, i)->low_watermark > h)
            h = cu_stats(cu, i)->low_watermark;
    }
    return h;
}

/* Replica 3 is cut off while the others pass two stable checkpoints and more,
 * then the partition heals. */
static struct cu_cluster *partitioned_run(const struct cu_params *p, uint32_t ops, uint32_t value_len)
{
    struct cu_cluster *cu = cluster(p, 7);
    cu->cut[3] = true;
    cu_workload(cu, ops, 128, value_len);
    assert_true(cu_run(cu, cu_workload_done, 60000 * MS));
    assert_true(max_low(cu) >= 2u * p->k + p->l); /* beyond replica 3's whole window */
    assert_int_equal(cu_stats(cu, 3)->last_executed, 0);
    cu->cut[3] = false;
    return cu;
}

static void test_partition_state_transfer(void **state)
{
    (void)state;
    struct cu_params p = {.n = 4, .f = 1, .clients = 4, .k = 4, .l = 8, .w = 4};
    struct cu_cluster *cu = partitioned_run(&p, 200, 64);
    assert_true(cu_run(cu, cu_replicas_level, cu->rh.now_ns + 5000 * MS));
    assert_converged(cu);
    const struct pbft_replica_stats *s3 = cu_stats(cu, 3);
    assert_true(s3->state_transfers >= 1);
    assert_true(s3->state_chunks_received >= 1);
    assert_int_equal(s3->state_transfer_bad_digest, 0);
    assert_int_equal(s3->low_watermark, cu_stats(cu, 0)->low_watermark);
    /* The installed checkpoint's digest is the group's. */
    uint32_t agree = 0;
    for (uint32_t seq = 1; seq < CU_SEQ_MAX; seq++) {
        if (cu->ckpt_seen[3][seq] && cu->ckpt_seen[0][seq]) {
            assert_memory_equal(cu->ckpt[3][seq], cu->ckpt[0][seq], 32);
            agree++;
        }
    }
    assert_true(agree >= 1);
    /* It serves in turn: one more workload, everyone level again. */
    cu_workload(cu, 40, 128, 64);
    assert_true(cu_run(cu, level_and_done, cu->rh.now_ns + 5000 * MS));
    assert_converged(cu);
}

/* Only replica 1's proof reaches replica 3, so replica 1 -- which lies -- is the
 * first server asked. */
static bool proofs_only_from_1(struct cu_cluster *cu, const struct rh_msg *m, void *arg)
{
    (void)cu;
    (void)arg;
    if (m->to != 3 || m->from == 1 || rh_msg_type(m) != WIRE_STATE || m->len < WIRE_HEADER_SIZE + 33u)
        return false;
    return m->bytes[WIRE_HEADER_SIZE + 32] == WIRE_STATE_PROOF;
}

static void test_lying_server_detected(void **state)
{
    (void)state;
    struct cu_params p = {.n = 4, .f = 1, .clients = 4, .k = 4, .l = 8, .w = 4};
    struct cu_cluster *cu = partitioned_run(&p, 200, 64);
    cu->corrupt_from = 1;
    cu->filter = proofs_only_from_1;
    assert_true(cu_run(cu, cu_replicas_level, cu->rh.now_ns + 5000 * MS));
    const struct pbft_replica_stats *s3 = cu_stats(cu, 3);
    assert_true(cu->corrupted >= 1);
    assert_true(s3->state_transfer_bad_digest >= 1);
    assert_true(s3->state_transfers >= 1);
    assert_true(s3->state_transfer_restarts >= 1);
    assert_converged(cu);
}

/* Replica 1 sends its proof but never a chunk: the FETCHes to it time out and
 * the next server is asked. */
static bool silent_server_1(struct cu_cluster *cu, const struct rh_msg *m, void *arg)
{
    if (m->from == 1 && m->to == 3 && rh_msg_type(m) == WIRE_STATE && m->bytes[WIRE_HEADER_SIZE + 32] != WIRE_STATE_PROOF)
        return true;
    return proofs_only_from_1(cu, m, arg);
}

static void test_silent_server_times_out(void **state)
{
    (void)state;
    struct cu_params p = {.n = 4, .f = 1, .clients = 4, .k = 4, .l = 8, .w = 4};
    struct cu_cluster *cu = partitioned_run(&p, 200, 64);
    cu->filter = silent_server_1;
    assert_true(cu_run(cu, cu_replicas_level, cu->rh.now_ns + 5000 * MS));
    const struct pbft_replica_stats *s3 = cu_stats(cu, 3);
    assert_true(s3->state_fetch_timeouts >= CATCHUP_FETCH_ATTEMPTS);
    assert_true(s3->state_transfers >= 1);
    assert_int_equal(s3->state_transfer_bad_digest, 0);
    assert_converged(cu);
}

static void test_bug_skip_snapshot_digest(void **state)
{
    (void)state;
    struct cu_params p = {.n = 4, .f = 1, .clients = 4, .k = 4, .l = 8, .w = 4};
    p.bugs[3] = PBFT_BUG_SKIP_SNAPSHOT_DIGEST;
    struct cu_cluster *cu = partitioned_run(&p, 200, 64);
    cu->corrupt_from = 1;
    cu->filter = proofs_only_from_1;
    cu_run(cu, NULL, cu->rh.now_ns + 300 * MS);
    const struct pbft_replica_stats *s3 = cu_stats(cu, 3);
    assert_true(s3->state_transfers >= 1);
    assert_true(s3->state_transfer_bad_digest >= 1);
    /* The corrupted state was installed: its checkpoint digest is not the group's. */
    bool differs = false;
    for (uint32_t seq = 1; seq < CU_SEQ_MAX; seq++) {
        if (cu->ckpt_seen[3][seq] && cu->ckpt_seen[0][seq] && memcmp(cu->ckpt[3][seq], cu->ckpt[0][seq], 32) != 0)
            differs = true;
    }
    assert_true(differs);
    uint8_t d0[32], d3[32];
    cu_store_digest(cu, 0, d0);
    cu_store_digest(cu, 3, d3);
    assert_memory_not_equal(d0, d3, 32);
}

/* ---- Crash and restart ---------------------------------------------------------------- */

static void test_crash_restart(void **state)
{
    (void)state;
    struct cu_params p = {.n = 4, .f = 1, .clients = 4, .k = 32, .l = 64, .w = 4};
    struct cu_cluster *cu = cluster(&p, 11);
    cu->restart_at_ops = 150;
    cu->restart_who = 2;
    cu_workload(cu, 500, 128, 32);
    assert_true(cu_run(cu, level_and_done, 60000 * MS));
    assert_int_equal(cu->restart_at_ops, 0); /* it did crash */
    assert_true(cu->restart_le > 0);
    assert_converged(cu);
    const struct pbft_replica_stats *s2 = cu_stats(cu, 2);
    assert_true(s2->state_transfers >= 1);
    assert_true(s2->status_sent >= 1);
    assert_true(s2->last_executed > cu->restart_le);
    assert_true(s2->requests_executed > 0); /* it went on by the normal protocol too */
}

/* The workload is done and q replicas stand at the top seq with one store. */
static bool done_with_q_level(struct cu_cluster *cu)
{
    if (!cu_workload_done(cu))
        return false;
    uint64_t top = 0;
    for (uint16_t i = 0; i < cu->rh.n; i++)
        top = cu_stats(cu, i)->last_executed > top ? cu_stats(cu, i)->last_executed : top;
    uint8_t d0[32], d[32];
    uint32_t level = 0;
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        if (cu_stats(cu, i)->last_executed != top)
            continue;
        cu_store_digest(cu, i, level == 0 ? d0 : d);
        if (level > 0 && memcmp(d, d0, 32) != 0)
            return false;
        level++;
    }
    return level >= pbft_quorum(cu->rh.n, (uint16_t)((cu->rh.n - 1u) / 3u));
}

static bool restarted_once(struct cu_cluster *cu)
{
    return cu->restart_at_ops == 0;
}

/* The primary of view 0 is cut off, so the others move to view 1; then a
 * backup crashes and restarts in view 0. It learns view 1 from the STATUS of
 * the two left (f+1 of them), but with the primary cut off only two replicas
 * holding state answer, fewer than the q that must vouch for a replica that
 * lost its memory (status.c): it stays unsure, votes nothing and the group
 * waits. Once the cut heals, q peers vouch, and it fetches the state and takes
 * part again. */
static void test_restart_adopts_view(void **state)
{
    (void)state;
    struct cu_params p = {.n = 4, .f = 1, .clients = 4, .k = 8, .l = 16, .w = 4};
    p.request_timeout_ns = 30 * MS;
    struct cu_cluster *cu = cluster(&p, 5);
    cu->cut[0] = true;
    cu->restart_at_ops = 120;
    cu->restart_who = 2;
    cu_workload(cu, 300, 64, 32);
    assert_true(cu_run(cu, restarted_once, 60000 * MS));
    cu_run(cu, NULL, cu->rh.now_ns + 500 * MS);
    uint64_t le1 = cu_stats(cu, 1)->last_executed;
    cu_run(cu, NULL, cu->rh.now_ns + 2000 * MS);
    const struct pbft_replica_stats *s2 = cu_stats(cu, 2);
    assert_int_equal(s2->holds_state, 0); /* two holders answer: fewer than q */
    assert_true(s2->requests_refused_no_state > 0);
    assert_int_equal(cu_stats(cu, 1)->last_executed, le1); /* no quorum without its votes */
    cu->cut[0] = false;
    /* While the group waited, replica 3 may have timed out alone into a view
     * nobody joins (a backup that suspects the primary alone stays in its view
     * change, TOCS 2002 §4.5.2); the group serves with the q others. */
    assert_true(cu_run(cu, done_with_q_level, cu->rh.now_ns + 60000 * MS));
    assert_int_equal(s2->holds_state, 1);
    assert_true(s2->views_adopted >= 1);
    assert_true(pbft_replica_view(cu->rh.r[2]) >= 1);
    assert_int_equal(pbft_replica_view(cu->rh.r[2]), pbft_replica_view(cu->rh.r[1]));
    assert_true(s2->state_transfers >= 1);
    assert_true(cu_agree(cu));
}

/* ---- Serving does not stop the server ------------------------------------------------- */

struct fetch_log {
    uint32_t count;
    uint64_t first_le[RH_REPLICAS_MAX], last_le[RH_REPLICAS_MAX];
    uint32_t per_server[RH_REPLICAS_MAX];
};

static void on_fetch(struct cu_cluster *cu, uint16_t server, void *arg)
{
    struct fetch_log *log = arg;
    uint64_t le = cu_stats(cu, server)->last_executed;
    if (log->per_server[server]++ == 0)
        log->first_le[server] = le;
    log->last_le[server] = le;
    log->count++;
}

static void test_server_keeps_executing(void **state)
{
    (void)state;
    /* About 200 keys of 2,000 bytes: a state of several chunks. */
    struct cu_params p = {.n = 4, .f = 1, .clients = 8, .k = 32, .l = 64, .w = 8};
    struct cu_cluster *cu = partitioned_run(&p, 600, 2000);
    cu_dump(cu, "partitioned");
    static struct fetch_log log;
    memset(&log, 0, sizeof log);
    cu->on_fetch = on_fetch;
    cu->fetch_arg = &log;
    cu_workload(cu, 600, 128, 2000); /* the group keeps working meanwhile */
    assert_true(cu_run(cu, level_and_done, cu->rh.now_ns + 60000 * MS));
    assert_converged(cu);
    const struct pbft_replica_stats *s3 = cu_stats(cu, 3);
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
        served += cu_stats(cu, i)->state_chunks_served;
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
