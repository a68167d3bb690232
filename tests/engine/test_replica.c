/* Unit tests of the PBFT replica in the normal case (engine/replica.c and the
 * files of its phases): four replicas (n = 4, f = 1) and hand-rolled clients on
 * the in-memory FIFO pump of replica_harness.c. Checked: a PUT commits and
 * executes everywhere with identical exec-hook digests and one full reply; GET
 * after PUT; DEL then GET; batching and the pipeline window W; exactly-once
 * execution and the reply cache; PREPAREs with a wrong digest are not counted;
 * corrupted MACs are dropped and counted; a PRE-PREPARE from a non-primary is
 * ignored; large requests (by digest, stalled until they arrive); checkpoints move
 * the low watermark and agree; the read-only path, parked until execution passes
 * its target; an outbox too small for a step (resume); the three injected bugs.
 * Random faults and the throughput pump are in test_replica_random.c.
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
#include "replica_harness.h"

static struct rh_cluster C;
static uint8_t g_msg[BFTKV_DATAGRAM_MAX];
static uint8_t g_big[BFTKV_VALUE_MAX];

/* ---- Helpers --------------------------------------------------------------------- */

static void cluster_up(uint16_t clients, struct rh_tune *t)
{
    rh_init(&C, 4, 1, clients, 0, rh_tune_apply, t);
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

/* Send a request from a client to `to` (UINT16_MAX: every replica). */
static void submit(uint16_t client, uint16_t lane, uint64_t ts, uint8_t op, const char *key, const void *val,
                   size_t vlen, uint8_t rflags, uint16_t to)
{
    rh_submit(&C, client, lane, ts, op, key, val, vlen, rflags, to);
}

static const struct pbft_replica_stats *st(uint16_t i)
{
    return rh_stats(&C, i);
}

/* The replies to (client, ts): all must agree on status and digest; exactly
 * `want_full` carry the result. Returns the number of replies; *full gets one. */
static size_t replies_check(uint16_t client, uint64_t ts, size_t want, size_t want_full, int16_t status,
                            const struct rh_reply **full)
{
    const struct rh_reply *rp[32];
    size_t k = rh_replies_for(&C, client, ts, rp, 32);
    assert_int_equal(k, want);
    size_t nfull = 0;
    *full = NULL;
    for (size_t i = 0; i < k; i++) {
        assert_int_equal(rp[i]->status, status);
        assert_memory_equal(rp[i]->digest, rp[0]->digest, 32);
        if (rp[i]->rflags & WIRE_REPLY_FULL) {
            nfull++;
            *full = rp[i];
        }
    }
    assert_int_equal(nfull, want_full);
    return k;
}

/* ---- Basic operations ------------------------------------------------------------- */

static void test_put_commits_everywhere(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    assert_true(pbft_replica_is_primary(C.r[0]));
    assert_false(pbft_replica_is_primary(C.r[1]));
    submit(0, 0, 1, WIRE_OP_PUT, "k1", "v1", 2, 0, 0);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->requests_executed, 1);
        assert_int_equal(st(i)->batches_executed, 1);
        assert_int_equal(st(i)->last_executed, 1);
        assert_int_equal(C.execs[i].n, 1);
        assert_int_equal(C.execs[i].e[0].seq, 1);
        assert_true(rh_logs_same(&C, 0, i));
    }
    const struct rh_reply *full;
    replies_check(0, 1, 4, 1, 0, &full);
    /* The designated replier: (client + lane + timestamp) mod n = 1. */
    assert_int_equal(full->replica, 1);
    assert_int_equal(full->result_len, 0);
    assert_int_equal(st(0)->batches_proposed, 1);
    /* No stall retry, no request timer: only the slow catch-up heartbeat (catchup.c). */
    assert_true(pbft_replica_next_deadline(C.r[1]) > C.cfg[1].request_timeout_ns);
}

static void test_get_after_put(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    submit(2, 0, 10, WIRE_OP_PUT, "alpha", "beta", 4, 0, 0);
    rh_run(&C);
    submit(2, 0, 11, WIRE_OP_GET, "alpha", NULL, 0, 0, 0);
    rh_run(&C);
    const struct rh_reply *full;
    replies_check(2, 11, 4, 1, 0, &full);
    assert_int_equal(full->replica, (2 + 0 + 11) % 4);
    assert_int_equal(full->result_len, 4);
    assert_memory_equal(full->result, "beta", 4);
    uint8_t d[32];
    wire_result_digest(d, 0, "beta", 4);
    assert_memory_equal(full->digest, d, 32);
}

static void test_del_then_get(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    const struct rh_reply *full;
    submit(1, 0, 1, WIRE_OP_PUT, "gone", "soon", 4, 0, 0);
    rh_run(&C);
    submit(1, 0, 2, WIRE_OP_DEL, "gone", NULL, 0, 0, 0);
    rh_run(&C);
    replies_check(1, 2, 4, 1, 0, &full);
    submit(1, 0, 3, WIRE_OP_GET, "gone", NULL, 0, 0, 0);
    rh_run(&C);
    replies_check(1, 3, 4, 1, BFTKV_E_NOT_FOUND, &full);
    submit(1, 0, 4, WIRE_OP_DEL, "gone", NULL, 0, 0, 0);
    rh_run(&C);
    replies_check(1, 4, 4, 1, BFTKV_E_NOT_FOUND, &full);
    for (uint16_t i = 0; i < 4; i++)
        assert_true(rh_logs_same(&C, 0, i));
}

/* ---- Batching and the window ------------------------------------------------------ */

struct window_watch {
    uint64_t max_seq_sent;
    uint64_t max_in_flight;
};

static bool watch_window(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    struct window_watch *w = arg;
    if (m->from == 0 && rh_msg_type(m) == WIRE_PREPREPARE) {
        struct wire_header h;
        wire_header_read(m->bytes, &h);
        if (h.seq > w->max_seq_sent)
            w->max_seq_sent = h.seq;
        uint64_t in_flight = h.seq - pbft_replica_stats(c->r[0])->last_executed;
        if (in_flight > w->max_in_flight)
            w->max_in_flight = in_flight;
    }
    return false;
}

/* Submit `count` PUTs of fresh keys, two lanes per client from client 0, all
 * at timestamp ts, queued at the primary before anything runs (FIFO pump). */
static void submit_burst(uint16_t count, uint64_t ts, const char *prefix)
{
    for (uint16_t k = 0; k < count; k++) {
        char key[16];
        snprintf(key, sizeof key, "%s%u", prefix, k);
        submit((uint16_t)(k / 2), (uint16_t)(k % 2), ts, WIRE_OP_PUT, key, key, strlen(key), 0, 0);
    }
}

static void test_batching_and_window(void **state)
{
    (void)state;
    /* W = 4, batch_max_requests 64: with batches in flight a new one waits for
     * 64 / 4 = 16 requests (preprepare.c, batch_worth_proposing). */
    struct rh_tune t = { .w = 4, .lanes = 2, .batch_requests = 64 };
    cluster_up(50, &t);
    struct window_watch w = { 0, 0 };
    C.filter = watch_window;
    C.filter_arg = &w;

    /* A trickle below the threshold: the first request goes out alone (nothing
     * in flight), the other 9 wait for it to execute and go out together. */
    submit_burst(10, 1, "a");
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->requests_executed, 10);
        assert_int_equal(st(i)->batches_executed, 2);
        assert_int_equal(st(i)->batch_requests_total, 10);
    }
    assert_int_equal(w.max_in_flight, 1);

    /* A burst: once 16 requests wait, batches go out while others are in flight,
     * up to W; no batch but a first one alone is below 16 while the queue holds
     * 16 (the last ones take what is left). */
    submit_burst(100, 2, "b");
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->requests_executed, 110);
        assert_int_equal(st(i)->batch_requests_total, 110);
        assert_true(rh_logs_same(&C, 0, i));
    }
    uint64_t burst_batches = st(0)->batches_executed - 2u;
    assert_true(burst_batches >= 100 / 64 + 1);
    assert_true(burst_batches <= 1 + (100 - 1) / 16 + 1);
    assert_int_equal(w.max_in_flight, 4);
    for (uint16_t client = 0; client < 50; client++) {
        const struct rh_reply *full;
        replies_check(client, 2, 8, 2, 0, &full); /* both lanes use timestamp 2 */
    }
}

/* batch_max_requests <= W: every request is worth a batch, W go out alone and
 * the rest queue (the policy before the threshold). */
static void test_batching_one_per_request_share(void **state)
{
    (void)state;
    struct rh_tune t = { .w = 4, .lanes = 2, .batch_requests = 4 };
    cluster_up(50, &t);
    struct window_watch w = { 0, 0 };
    C.filter = watch_window;
    C.filter_arg = &w;
    submit_burst(100, 1, "c");
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->requests_executed, 100);
        assert_true(rh_logs_same(&C, 0, i));
    }
    assert_true(st(0)->batches_executed >= 100 / 4);
    assert_int_equal(w.max_in_flight, 4);
}

/* ---- Reply cache ------------------------------------------------------------------- */

static void test_duplicate_executes_once(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    /* Twice before anything runs: the primary queues it once. */
    submit(3, 0, 7, WIRE_OP_PUT, "x", "1", 1, 0, 0);
    submit(3, 0, 7, WIRE_OP_PUT, "x", "1", 1, 0, 0);
    rh_run(&C);
    const struct rh_reply *full;
    replies_check(3, 7, 4, 1, 0, &full);
    /* A retransmission to everyone after execution: answered from the cache,
     * with the full result from every replica (FULL_ALL). */
    submit(3, 0, 7, WIRE_OP_PUT, "x", "1", 1, WIRE_REQ_FULL_ALL, UINT16_MAX);
    rh_run(&C);
    replies_check(3, 7, 8, 5, 0, &full);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->requests_executed, 1);
        assert_true(st(i)->requests_duplicate >= 1);
        assert_int_equal(st(i)->batches_executed, 1);
    }
    /* An older timestamp gets no answer and no execution. */
    rh_replies_clear(&C);
    submit(3, 0, 6, WIRE_OP_PUT, "x", "0", 1, 0, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(C.nreplies, 0);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->requests_executed, 1);

    /* A large GET result is not cached: a FULL_ALL retransmission re-reads it. */
    memset(g_big, 'z', 900); /* still inlined, but above REPLICA_RC_RESULT_MAX */
    submit(3, 0, 8, WIRE_OP_PUT, "big", g_big, 900, 0, 0);
    rh_run(&C);
    submit(3, 0, 9, WIRE_OP_GET, "big", NULL, 0, 0, 0);
    rh_run(&C);
    rh_replies_clear(&C);
    submit(3, 0, 9, WIRE_OP_GET, "big", NULL, 0, WIRE_REQ_FULL_ALL, UINT16_MAX);
    rh_run(&C);
    replies_check(3, 9, 4, 4, 0, &full);
    assert_int_equal(full->result_len, 900);
    assert_memory_equal(full->result, g_big, 900);
}

/* ---- Digests, MACs, senders ------------------------------------------------------- */

struct prep_ctl {
    bool drop_prepares_to_1;   /* from 2 and 3 */
    bool corrupt_prepare_2_to_1;
    uint32_t commits_from_1;
};

static bool prepares_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    struct prep_ctl *p = arg;
    uint8_t t = rh_msg_type(m);
    if (t == WIRE_COMMIT && m->from == 1)
        p->commits_from_1++;
    if (t == WIRE_PREPARE && m->to == 1 && (m->from == 2 || m->from == 3)) {
        if (p->drop_prepares_to_1)
            return true;
        if (p->corrupt_prepare_2_to_1 && m->from == 2)
            m->bytes[m->len - 3u * BFTKV_MAC_SIZE + 5u] ^= 0x40; /* the MAC for replica 1 */
    }
    return false;
}

/* Forged PREPARE(v=0, n=1, wrong D) from replicas 2 and 3 to replica 1. */
static void inject_wrong_prepares(void)
{
    uint8_t wrong[32];
    memset(wrong, 0xAB, sizeof wrong);
    for (uint16_t from = 2; from <= 3; from++) {
        size_t auth_off = 0;
        size_t len = wire_encode_digest_msg(g_msg, sizeof g_msg, WIRE_PREPARE, C.group, from, C.n, 0, 1, wrong,
                                            &auth_off);
        assert_true(len > 0);
        auth_authenticator_fill(&C.rauth[from], g_msg, len, auth_off);
        rh_inject(&C, from, 1, g_msg, len);
    }
}

static void wrong_digest_run(uint32_t bug, struct prep_ctl *p)
{
    struct rh_tune t = { 0 };
    t.bugs[1] = bug;
    cluster_up(4, &t);
    inject_wrong_prepares(); /* they wait in replica 1's log for the PRE-PREPARE */
    rh_run(&C);
    p->drop_prepares_to_1 = true;
    C.filter = prepares_filter;
    C.filter_arg = p;
    submit(0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0, 0);
    rh_run(&C);
}

static void test_prepare_wrong_digest_not_counted(void **state)
{
    (void)state;
    struct prep_ctl p = { 0 };
    wrong_digest_run(0, &p);
    /* Replica 1 has the pre-prepare, its own PREPARE and two with another D: not
     * prepared, so no COMMIT from it and nothing executed there. */
    assert_int_equal(p.commits_from_1, 0);
    assert_int_equal(st(1)->last_executed, 0);
    for (uint16_t i = 0; i < 4; i++) {
        if (i != 1)
            assert_int_equal(st(i)->last_executed, 1);
    }
}

static void test_bug_ignore_digest(void **state)
{
    (void)state;
    struct prep_ctl p = { 0 };
    wrong_digest_run(PBFT_BUG_IGNORE_DIGEST, &p);
    /* The same run, but replica 1 counts the wrong-digest PREPAREs. */
    assert_true(p.commits_from_1 > 0);
    assert_int_equal(st(1)->last_executed, 1);
}

static void test_corrupted_mac_dropped(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    size_t len = rh_request(&C, g_msg, sizeof g_msg, 0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0);
    g_msg[len - 4u * BFTKV_MAC_SIZE + 3] ^= 1; /* replica 0's MAC */
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    assert_int_equal(st(0)->requests_received, 0);
    assert_int_equal(st(0)->batches_proposed, 0);

    /* A PREPARE whose MAC for replica 1 was damaged in flight. */
    struct prep_ctl p = { .corrupt_prepare_2_to_1 = true };
    C.filter = prepares_filter;
    C.filter_arg = &p;
    submit(0, 0, 2, WIRE_OP_PUT, "k", "v", 1, 0, 0);
    rh_run(&C);
    assert_int_equal(st(1)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->last_executed, 1); /* 2f PREPAREs still arrive */

    /* A lane beyond the configured ones. */
    struct wire_request rq = { .client = 3, .lane = 0, .timestamp = 1, .op = WIRE_OP_GET, .klen = 1,
                               .key = (const uint8_t *)"k" };
    size_t auth_off = 0;
    len = wire_encode_request(g_msg, sizeof g_msg, C.group, C.n, 0, &rq, &auth_off);
    /* Client 3 exists but lane 5 does not (lanes = 1). */
    g_msg[WIRE_HEADER_SIZE] = 5;
    auth_authenticator_fill(&C.cauth[3], g_msg, len, auth_off);
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->drops.count[WIRE_DROP_BAD_FIELD], 1);
}

static void test_preprepare_from_non_primary(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    /* Replica 1 builds a well-formed, well-MACed PRE-PREPARE for seq 1. */
    uint8_t req[256];
    size_t rlen = rh_request(&C, req, sizeof req, 0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0);
    uint8_t entries[512];
    size_t elen = wire_entry_inline(entries, sizeof entries, req, (uint32_t)rlen);
    size_t auth_off = 0;
    size_t len = wire_encode_preprepare(g_msg, sizeof g_msg, C.group, 1, C.n, 0, 1, entries, (uint32_t)elen, 1,
                                        &auth_off);
    auth_authenticator_fill(&C.rauth[1], g_msg, len, auth_off);
    rh_inject(&C, 1, 2, g_msg, len);
    rh_inject(&C, 1, 3, g_msg, len);
    size_t delivered = rh_run(&C);
    assert_int_equal(delivered, 2); /* nothing came of it: no PREPARE */
    assert_int_equal(st(2)->drops.count[WIRE_DROP_BAD_SENDER], 1);
    assert_int_equal(st(3)->drops.count[WIRE_DROP_BAD_SENDER], 1);
    assert_int_equal(st(2)->last_executed, 0);

    /* The primary's own PRE-PREPARE for seq 1 then goes through normally. */
    submit(0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0, 0);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->last_executed, 1);

    /* A second PRE-PREPARE for (0, 1) with another digest is a conflict. */
    submit(2, 0, 1, WIRE_OP_PUT, "k", "x", 1, 0, 0); /* the primary's seq 2 */
    rh_run(&C);
    rlen = rh_request(&C, req, sizeof req, 1, 0, 1, WIRE_OP_PUT, "k", "w", 1, 0);
    elen = wire_entry_inline(entries, sizeof entries, req, (uint32_t)rlen);
    len = wire_encode_preprepare(g_msg, sizeof g_msg, C.group, 0, C.n, 0, 2, entries, (uint32_t)elen, 1, &auth_off);
    auth_authenticator_fill(&C.rauth[0], g_msg, len, auth_off);
    rh_inject(&C, 0, 2, g_msg, len); /* equivocation for seq 2 */
    rh_run(&C);
    assert_int_equal(st(2)->dropped_conflict, 1);
    assert_int_equal(st(2)->last_executed, 2);

    /* A primary's batch with a request a replica would never accept itself
     * (timestamp 0, MACed by its client) is refused whole, and nothing breaks. */
    rlen = rh_request(&C, req, sizeof req, 3, 0, 0, WIRE_OP_PUT, "k", "z", 1, 0);
    elen = wire_entry_inline(entries, sizeof entries, req, (uint32_t)rlen);
    len = wire_encode_preprepare(g_msg, sizeof g_msg, C.group, 0, C.n, 0, 3, entries, (uint32_t)elen, 1, &auth_off);
    auth_authenticator_fill(&C.rauth[0], g_msg, len, auth_off);
    uint64_t bad_field = st(3)->drops.count[WIRE_DROP_BAD_FIELD];
    rh_inject(&C, 0, 3, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(3)->drops.count[WIRE_DROP_BAD_FIELD], bad_field + 1);
    assert_int_equal(st(3)->last_executed, 2);
}

/* ---- Large requests --------------------------------------------------------------- */

static void test_large_requests(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    for (size_t i = 0; i < 5000; i++)
        g_big[i] = (uint8_t)(i * 7u);
    /* Sent to everyone: the PRE-PREPARE carries its digest only. */
    submit(0, 0, 1, WIRE_OP_PUT, "large", g_big, 5000, 0, UINT16_MAX);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->last_executed, 1);
        assert_true(rh_logs_same(&C, 0, i));
    }
    /* Sent to the primary first: the backups stall until it reaches them. */
    g_big[0] ^= 1;
    size_t len = rh_request(&C, g_msg, sizeof g_msg, 1, 0, 1, WIRE_OP_PUT, "large", g_big, 5000, 0);
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->last_executed, 1);
    assert_true(pbft_replica_next_deadline(C.r[1]) != UINT64_MAX);
    for (uint16_t i = 1; i < 4; i++)
        rh_send(&C, i, g_msg, len);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->last_executed, 2);
        assert_true(pbft_replica_next_deadline(C.r[i]) > C.cfg[i].request_timeout_ns); /* heartbeat only */
        assert_true(rh_logs_same(&C, 0, i));
    }
    submit(2, 0, 1, WIRE_OP_GET, "large", NULL, 0, 0, 0);
    rh_run(&C);
    const struct rh_reply *full;
    replies_check(2, 1, 4, 1, 0, &full);
    assert_int_equal(full->result_len, 5000);
    assert_memory_equal(full->result, g_big, 5000);
}

/* ---- Checkpoints ------------------------------------------------------------------ */

static void test_checkpoints(void **state)
{
    (void)state;
    /* One request per batch, K = 4, L = 8, W = 8: 100 batches need the window
     * to slide through many stable checkpoints. */
    struct rh_tune t = { .k = 4, .l = 8, .w = 8, .batch_requests = 1, .lanes = 2 };
    cluster_up(50, &t);
    for (uint16_t k = 0; k < 100; k++) {
        char key[16];
        snprintf(key, sizeof key, "c%u", k % 7);
        submit((uint16_t)(k / 2), (uint16_t)(k % 2), 1, WIRE_OP_PUT, key, key, strlen(key), 0, 0);
    }
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->last_executed, 100);
        assert_int_equal(st(i)->requests_executed, 100);
        assert_int_equal(st(i)->dropped_full, 0);
        assert_true(st(i)->low_watermark >= 96);
        assert_true(st(i)->checkpoints_stable >= 20);
        assert_true(rh_logs_same(&C, 0, i));
        assert_int_equal(C.ckpts[i].n, 25);
        for (size_t j = 0; j < C.ckpts[i].n; j++) {
            assert_int_equal(C.ckpts[i].e[j].seq, 4 * (j + 1));
            assert_memory_equal(C.ckpts[i].e[j].digest, C.ckpts[0].e[j].digest, 32);
        }
    }
    /* Different states give different digests. */
    assert_memory_not_equal(C.ckpts[0].e[0].digest, C.ckpts[0].e[1].digest, 32);
}

/* ---- Read-only path --------------------------------------------------------------- */

static void test_readonly(void **state)
{
    (void)state;
    cluster_up(4, NULL);
    submit(0, 0, 1, WIRE_OP_PUT, "ro", "one", 3, 0, 0);
    rh_run(&C);
    submit(1, 0, 5, WIRE_OP_GET, "ro", NULL, 0, WIRE_REQ_READONLY, UINT16_MAX);
    rh_run(&C);
    const struct rh_reply *full;
    replies_check(1, 5, 4, 1, 0, &full);
    assert_true(full->rflags & WIRE_REPLY_READONLY);
    assert_memory_equal(full->result, "one", 3);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->readonly_answered, 1);
        assert_int_equal(st(i)->batches_executed, 1); /* not ordered */
    }
    /* A read-only DEL is refused. */
    size_t len = rh_request(&C, g_msg, sizeof g_msg, 1, 0, 6, WIRE_OP_GET, "ro", NULL, 0, WIRE_REQ_READONLY);
    g_msg[WIRE_HEADER_SIZE + 2] = WIRE_OP_DEL; /* re-MAC after the edit */
    auth_authenticator_fill(&C.cauth[1], g_msg, len, len - 4u * BFTKV_MAC_SIZE);
    rh_send(&C, 2, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(2)->drops.count[WIRE_DROP_BAD_FIELD], 1);

    /* Replica 2 prepares seq 2 but its COMMITs are held: a read that arrives
     * then waits until seq 2 executes, and sees its write. */
    C.net.hold_types = 1u << WIRE_COMMIT;
    C.net.hold_to = 1u << 2;
    submit(0, 0, 2, WIRE_OP_PUT, "ro", "two", 3, 0, 0);
    rh_run(&C);
    assert_int_equal(st(2)->last_executed, 1);
    assert_int_equal(st(0)->last_executed, 2);
    rh_replies_clear(&C);
    submit(3, 0, 9, WIRE_OP_GET, "ro", NULL, 0, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL, 2);
    rh_run(&C);
    assert_int_equal(C.nreplies, 0); /* parked */
    C.net.hold_types = 0;
    rh_release(&C);
    rh_run(&C);
    replies_check(3, 9, 1, 1, 0, &full);
    assert_int_equal(full->replica, 2);
    assert_memory_equal(full->result, "two", 3);
}

/* ---- Outbox overflow and resume ---------------------------------------------------- */

static void test_resume_large_replies(void **state)
{
    (void)state;
    struct rh_tune t = { .lanes = 1 };
    cluster_up(40, &t);
    memset(g_big, 'q', 30000);
    submit(0, 0, 1, WIRE_OP_PUT, "huge", g_big, 30000, 0, UINT16_MAX);
    rh_run(&C);
    /* 39 GETs asking every replica for the full 30 KB result: the replies of one
     * batch cannot fit one outbox, so execution stops and resumes. */
    for (uint16_t k = 1; k < 40; k++)
        submit(k, 0, 1, WIRE_OP_GET, "huge", NULL, 0, WIRE_REQ_FULL_ALL, 0);
    rh_run(&C);
    for (uint16_t k = 1; k < 40; k++) {
        const struct rh_reply *full;
        replies_check(k, 1, 4, 4, 0, &full);
        assert_int_equal(full->result_len, 30000);
    }
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->requests_executed, 40);
}

/* ---- Injected bugs --------------------------------------------------------------- */

static void test_bug_commit_quorum_2f(void **state)
{
    (void)state;
    struct rh_tune t = { 0 };
    t.bugs[1] = PBFT_BUG_COMMIT_QUORUM_2F;
    cluster_up(4, &t);
    /* Replica 3 is silent and replica 2's COMMITs are lost: replicas 0 and 1 see
     * 2f = 2 COMMITs (replica 2 sees three). Replica 1, buggy, executes;
     * replica 0, correct, does not. */
    C.net.isolated = 1u << 3;
    C.net.cut[2] = 0xF;
    C.net.cut_types = 1u << WIRE_COMMIT;
    submit(0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0, 0);
    rh_run(&C);
    assert_int_equal(st(1)->last_executed, 1);
    assert_int_equal(st(0)->last_executed, 0);
    assert_int_equal(st(2)->last_executed, 1);
}

static void test_bug_execute_uncommitted(void **state)
{
    (void)state;
    struct rh_tune t = { 0 };
    t.bugs[2] = PBFT_BUG_EXECUTE_UNCOMMITTED;
    cluster_up(4, &t);
    C.net.drop_types = 1u << WIRE_COMMIT;
    submit(0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0, 0);
    rh_run(&C);
    assert_int_equal(st(2)->last_executed, 1);
    assert_int_equal(st(0)->last_executed, 0);
    assert_int_equal(st(1)->last_executed, 0);
    assert_int_equal(st(3)->last_executed, 0);
}

/* ---- Config and the unreplicated baseline ----------------------------------------- */

static void test_config_and_baseline(void **state)
{
    (void)state;
    struct pbft_replica_config cfg;
    memset(&cfg, 0, sizeof cfg);
    pbft_replica_config_defaults(&cfg);
    assert_int_equal(cfg.checkpoint_interval, 128);
    assert_int_equal(cfg.log_window, 256);
    assert_int_equal(cfg.window, 8);
    assert_int_equal(pbft_quorum(4, 1), 3);
    assert_int_equal(pbft_quorum(7, 2), 5);
    assert_int_equal(pbft_quorum(5, 1), 4);
    assert_int_equal(pbft_quorum(1, 0), 1);

    /* n = 1, f = 0: every batch commits at once. */
    rh_init(&C, 1, 0, 2, 0, NULL, NULL);
    struct pbft_replica *bad = NULL;
    struct pbft_replica_config c2 = C.cfg[0];
    c2.log_window = 100; /* not a multiple of K */
    assert_int_equal(pbft_replica_create(&c2, &C.rauth[0], C.store[0], &bad), BFTKV_E_INVAL);
    c2 = C.cfg[0];
    c2.id = 1;
    assert_int_equal(pbft_replica_create(&c2, &C.rauth[0], C.store[0], &bad), BFTKV_E_INVAL);
    for (uint64_t ts = 1; ts <= 300; ts++)
        submit(0, 0, ts, WIRE_OP_PUT, "solo", "x", 1, 0, 0);
    rh_run(&C);
    assert_int_equal(st(0)->requests_executed, 300);
    assert_true(st(0)->low_watermark >= 128);
    assert_int_equal(C.nreplies, 300);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_put_commits_everywhere, teardown),
        cmocka_unit_test_teardown(test_get_after_put, teardown),
        cmocka_unit_test_teardown(test_del_then_get, teardown),
        cmocka_unit_test_teardown(test_batching_and_window, teardown),
        cmocka_unit_test_teardown(test_batching_one_per_request_share, teardown),
        cmocka_unit_test_teardown(test_duplicate_executes_once, teardown),
        cmocka_unit_test_teardown(test_prepare_wrong_digest_not_counted, teardown),
        cmocka_unit_test_teardown(test_bug_ignore_digest, teardown),
        cmocka_unit_test_teardown(test_corrupted_mac_dropped, teardown),
        cmocka_unit_test_teardown(test_preprepare_from_non_primary, teardown),
        cmocka_unit_test_teardown(test_large_requests, teardown),
        cmocka_unit_test_teardown(test_checkpoints, teardown),
        cmocka_unit_test_teardown(test_readonly, teardown),
        cmocka_unit_test_teardown(test_resume_large_replies, teardown),
        cmocka_unit_test_teardown(test_bug_commit_quorum_2f, teardown),
        cmocka_unit_test_teardown(test_bug_execute_uncommitted, teardown),
        cmocka_unit_test_teardown(test_config_and_baseline, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
