/* Unit tests of the decoded form of a received message (engine/pbft.h, struct
 * pbft_event: decoded, authenticated), on the in-memory pump of
 * replica_harness.c. Checked:
 *   - a whole run (requests, a large request, read-only GETs, checkpoints, a
 *     corrupted MAC, a view change after the primary goes silent) gives the
 *     same executions, checkpoints, replies and counters whether every message
 *     goes raw, decoded, or decoded and authenticated by the caller;
 *   - authenticated skips the message's own MAC check and nothing else: a
 *     PREPARE with a broken MAC marked authenticated counts (raw or unmarked it
 *     is dropped as BAD_AUTH), while a marked PREPARE of another view or from
 *     the primary is still refused and one with another digest not counted; a marked PRE-PREPARE
 *     still has its inlined requests' client MACs checked; a marked REQUEST
 *     still passes the client filters (a lane beyond the configured ones).
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

static struct rh_cluster C;
static uint8_t g_msg[BFTKV_DATAGRAM_MAX];
static uint8_t g_big[4000];

static const struct pbft_replica_stats *st(uint16_t i)
{
    return pbft_replica_stats(C.r[i]);
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(C.bad_replies, 0);
    rh_fini(&C);
    return 0;
}

/* ---- The same run in every form ------------------------------------------------------ */

#define RUN_T_NS (50u * 1000u * 1000u) /* the replicas' request timeout (rh_tune) */

/* What a run leaves behind, per replica, to compare across delivery forms. */
struct run_result {
    size_t nexecs[4], nckpts[4], nreplies;
    struct rh_exec execs[4][64], ckpts[4][16];
    struct pbft_replica_stats stats[4];
    uint64_t view[4];
    uint64_t decoded, verified;
};

struct run_filter {
    bool isolate0; /* replica 0 (view 0's primary) neither sends nor receives */
};

static bool run_filter_fn(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    const struct run_filter *f = arg;
    return f->isolate0 && (m->from == 0 || m->to == 0);
}

static void run_scenario(uint8_t form, struct run_result *res)
{
    struct rh_tune t = { .k = 4, .l = 16, .w = 4, .request_timeout_ns = RUN_T_NS };
    rh_init(&C, 4, 1, 8, 0, rh_tune_apply, &t);
    C.deliver = form;
    struct run_filter f = { 0 };
    C.filter = run_filter_fn;
    C.filter_arg = &f;
    char key[16];
    uint64_t ts = 1;
    for (; ts <= 6; ts++) {
        for (uint16_t cl = 0; cl < 4; cl++) {
            snprintf(key, sizeof key, "k%u", (unsigned)cl);
            rh_submit(&C, cl, 0, ts, WIRE_OP_PUT, key, key, strlen(key), 0, 0);
        }
        rh_run(&C);
    }
    /* A large request (by digest in the batch) and read-only GETs. */
    memset(g_big, 'b', sizeof g_big);
    rh_submit(&C, 5, 0, 1, WIRE_OP_PUT, "big", g_big, sizeof g_big, 0, UINT16_MAX);
    rh_run(&C);
    rh_submit(&C, 6, 0, 1, WIRE_OP_GET, "k1", NULL, 0, WIRE_REQ_READONLY, UINT16_MAX);
    rh_run(&C);
    /* A request whose MAC for replica 0 was damaged: BAD_AUTH there. */
    size_t len = rh_request(&C, g_msg, sizeof g_msg, 7, 0, 1, WIRE_OP_PUT, "m", "v", 1, 0);
    g_msg[len - 4u * BFTKV_MAC_SIZE + 3u] ^= 1u;
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    /* The primary goes silent; the clients retransmit to every replica and the
     * backups change view (VIEW-CHANGE, NEW-VIEW, signed). */
    f.isolate0 = true;
    for (uint16_t cl = 0; cl < 4; cl++) {
        snprintf(key, sizeof key, "k%u", (unsigned)cl);
        rh_submit(&C, cl, 0, ts, WIRE_OP_PUT, key, "after", 5, 0, UINT16_MAX);
    }
    rh_run(&C);
    for (uint64_t k = 1; k <= 4; k++) {
        rh_tick(&C, k * RUN_T_NS);
        rh_run(&C);
    }
    ts++;
    rh_submit(&C, 1, 0, ts, WIRE_OP_PUT, "k1", "new", 3, 0, 1);
    rh_run(&C);

    memset(res, 0, sizeof *res);
    for (uint16_t i = 0; i < 4; i++) {
        res->nexecs[i] = C.execs[i].n;
        assert_true(C.execs[i].n <= 64);
        memcpy(res->execs[i], C.execs[i].e, C.execs[i].n * sizeof(struct rh_exec));
        res->nckpts[i] = C.ckpts[i].n < 16 ? C.ckpts[i].n : 16;
        memcpy(res->ckpts[i], C.ckpts[i].e, res->nckpts[i] * sizeof(struct rh_exec));
        res->stats[i] = *st(i);
        res->view[i] = pbft_replica_view(C.r[i]);
    }
    res->nreplies = C.nreplies;
    res->decoded = C.decoded;
    res->verified = C.verified;
    assert_int_equal(C.bad_replies, 0);
    rh_fini(&C);
}

static void results_equal(const struct run_result *a, const struct run_result *b)
{
    assert_int_equal(a->nreplies, b->nreplies);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(a->nexecs[i], b->nexecs[i]);
        assert_memory_equal(a->execs[i], b->execs[i], a->nexecs[i] * sizeof(struct rh_exec));
        assert_int_equal(a->nckpts[i], b->nckpts[i]);
        assert_memory_equal(a->ckpts[i], b->ckpts[i], a->nckpts[i] * sizeof(struct rh_exec));
        assert_int_equal(a->view[i], b->view[i]);
        /* Every counter, the drops by reason included. */
        assert_memory_equal(&a->stats[i], &b->stats[i], sizeof a->stats[i]);
    }
}

static void test_decoded_runs_like_raw(void **state)
{
    (void)state;
    static struct run_result raw, decoded, verified;
    run_scenario(RH_DELIVER_RAW, &raw);
    run_scenario(RH_DELIVER_DECODED, &decoded);
    run_scenario(RH_DELIVER_VERIFIED, &verified);
    /* The run did what it is meant to compare. */
    for (uint16_t i = 1; i < 4; i++) {
        assert_true(raw.nexecs[i] >= 8);
        assert_int_equal(raw.view[i], 1);
        assert_true(raw.stats[i].checkpoints_stable >= 2);
    }
    assert_int_equal(raw.stats[0].drops.count[WIRE_DROP_BAD_AUTH], 1);
    assert_int_equal(raw.decoded, 0);
    assert_true(decoded.decoded > 100);
    assert_int_equal(decoded.verified, 0);
    assert_true(verified.verified > 100);
    assert_true(verified.verified < verified.decoded); /* the damaged MAC went unmarked */
    results_equal(&raw, &decoded);
    results_equal(&raw, &verified);
}

/* ---- authenticated skips the message's own MAC, and nothing else -------------------------- */

struct prep_watch {
    uint32_t commits_from_1;
};

/* Replica 1 gets no PREPARE from the queue (the test hands them over itself);
 * its COMMITs are counted. */
static bool prep_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    struct prep_watch *w = arg;
    uint8_t t = rh_msg_type(m);
    if (t == WIRE_COMMIT && m->from == 1)
        w->commits_from_1++;
    return t == WIRE_PREPARE && m->to == 1;
}

static size_t prepare_make(uint16_t from, uint64_t view, uint64_t seq, const uint8_t digest[32])
{
    size_t auth_off = 0;
    size_t len = wire_encode_digest_msg(g_msg, sizeof g_msg, WIRE_PREPARE, C.group, from, C.n, view, seq, digest,
                                        &auth_off);
    assert_true(len > 0);
    auth_authenticator_fill(&C.rauth[from], g_msg, len, auth_off);
    return len;
}

static void test_authenticated_prepare(void **state)
{
    (void)state;
    rh_init(&C, 4, 1, 4, 0, NULL, NULL);
    struct prep_watch w = { 0 };
    C.filter = prep_filter;
    C.filter_arg = &w;
    rh_submit(&C, 0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0, 0);
    rh_run(&C);
    /* Replica 1 pre-prepared seq 1 and holds its own PREPARE only. */
    assert_int_equal(w.commits_from_1, 0);
    assert_int_equal(st(1)->last_executed, 0);
    uint8_t d[32], wrong[32];
    memset(wrong, 0xAB, sizeof wrong);
    /* The batch digest of seq 1: what replicas 0, 2 and 3 executed. */
    const struct rh_exec *e = NULL;
    for (size_t i = 0; i < C.execs[2].n; i++)
        if (C.execs[2].e[i].seq == 1)
            e = &C.execs[2].e[i];
    assert_non_null(e);
    memcpy(d, e->digest, 32);

    const struct pbft_replica_stats *s1 = st(1);
    uint64_t bad_auth = s1->drops.count[WIRE_DROP_BAD_AUTH];
    uint64_t bad_sender = s1->drops.count[WIRE_DROP_BAD_SENDER];
    uint64_t stale = s1->dropped_stale;

    /* Replica 3's PREPARE with another digest, marked authenticated: it does
     * not match, so with replica 1's own that is no 2f, and no COMMIT. */
    size_t len = prepare_make(3, 0, 1, wrong);
    rh_deliver_decoded(&C, 1, g_msg, len, true);
    rh_run(&C);
    assert_int_equal(w.commits_from_1, 0);

    /* Another view, marked authenticated: stale. */
    len = prepare_make(2, 5, 1, d);
    rh_deliver_decoded(&C, 1, g_msg, len, true);
    rh_run(&C);
    assert_int_equal(s1->dropped_stale, stale + 1u);
    assert_int_equal(w.commits_from_1, 0);

    /* From the primary, which sends no PREPARE, marked authenticated. */
    len = prepare_make(0, 0, 1, d);
    rh_deliver_decoded(&C, 1, g_msg, len, true);
    rh_run(&C);
    assert_int_equal(s1->drops.count[WIRE_DROP_BAD_SENDER], bad_sender + 1u);
    assert_int_equal(w.commits_from_1, 0);

    /* The right PREPARE from replica 2 with its MAC for replica 1 broken: raw
     * and decoded-unmarked it is BAD_AUTH, counted once each ... */
    len = prepare_make(2, 0, 1, d);
    g_msg[len - 3u * BFTKV_MAC_SIZE + 5u] ^= 0x40u; /* the MAC for replica 1 */
    struct pbft_event ev = { .kind = PBFT_EV_RECEIVE, .now_ns = C.now_ns, .msg = g_msg, .len = len };
    pbft_replica_step(C.r[1], &ev, &C.out);
    assert_int_equal(s1->drops.count[WIRE_DROP_BAD_AUTH], bad_auth + 1u);
    rh_deliver_decoded(&C, 1, g_msg, len, false);
    assert_int_equal(s1->drops.count[WIRE_DROP_BAD_AUTH], bad_auth + 2u);
    rh_run(&C);
    assert_int_equal(w.commits_from_1, 0);
    /* ... and marked authenticated, the replica takes the caller's word for the
     * MAC: with its own PREPARE that is 2f, prepared, and it commits. */
    rh_deliver_decoded(&C, 1, g_msg, len, true);
    assert_int_equal(s1->drops.count[WIRE_DROP_BAD_AUTH], bad_auth + 2u);
    rh_run(&C);
    assert_true(w.commits_from_1 > 0);
    assert_int_equal(st(1)->last_executed, 1);
}

static void test_authenticated_preprepare_inline_macs(void **state)
{
    (void)state;
    rh_init(&C, 4, 1, 4, 0, NULL, NULL);
    /* The primary's PRE-PREPARE for seq 1 whose inlined request's client MAC
     * for replica 2 is broken; the PRE-PREPARE's own MAC is good. */
    uint8_t req[256], entries[512];
    size_t rlen = rh_request(&C, req, sizeof req, 1, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0);
    req[rlen - 4u * BFTKV_MAC_SIZE + 2u * BFTKV_MAC_SIZE + 1u] ^= 1u; /* the MAC for replica 2 */
    size_t elen = wire_entry_inline(entries, sizeof entries, req, (uint32_t)rlen);
    size_t auth_off = 0;
    size_t len = wire_encode_preprepare(g_msg, sizeof g_msg, C.group, 0, C.n, 0, 1, entries, (uint32_t)elen, 1,
                                        &auth_off);
    auth_authenticator_fill(&C.rauth[0], g_msg, len, auth_off);
    uint64_t bad_auth = st(2)->drops.count[WIRE_DROP_BAD_AUTH];
    rh_deliver_decoded(&C, 2, g_msg, len, true);
    /* authenticated covers the PRE-PREPARE's MAC, not its clients': not taken
     * on the primary's word -- it waits for f PREPAREs to vouch (preprepare.c,
     * pp_vouched; test_vouch.c). */
    assert_int_equal(st(2)->drops.count[WIRE_DROP_BAD_AUTH], bad_auth);
    assert_int_equal(st(2)->pp_unvouched, 1);
    assert_int_equal(C.q_len, 0); /* no PREPARE */

    /* The same batch with the client's MAC intact is accepted: a PREPARE. */
    rlen = rh_request(&C, req, sizeof req, 1, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0);
    elen = wire_entry_inline(entries, sizeof entries, req, (uint32_t)rlen);
    len = wire_encode_preprepare(g_msg, sizeof g_msg, C.group, 0, C.n, 0, 1, entries, (uint32_t)elen, 1, &auth_off);
    auth_authenticator_fill(&C.rauth[0], g_msg, len, auth_off);
    rh_deliver_decoded(&C, 3, g_msg, len, true);
    assert_int_equal(st(3)->drops.count[WIRE_DROP_BAD_AUTH], 0);
    assert_true(C.q_len > 0);
    assert_int_equal(rh_msg_type(&C.q[C.q_head]), WIRE_PREPARE);
}

static void test_authenticated_request(void **state)
{
    (void)state;
    rh_init(&C, 4, 1, 4, 0, NULL, NULL);
    /* A lane beyond the configured ones (lanes = 1), marked authenticated:
     * the client filters still refuse it. */
    struct wire_request rq = { .client = 3, .lane = 5, .timestamp = 1, .op = WIRE_OP_GET, .klen = 1,
                               .key = (const uint8_t *)"k" };
    size_t auth_off = 0;
    size_t len = wire_encode_request(g_msg, sizeof g_msg, C.group, C.n, 0, &rq, &auth_off);
    auth_authenticator_fill(&C.cauth[3], g_msg, len, auth_off);
    rh_deliver_decoded(&C, 0, g_msg, len, true);
    assert_int_equal(st(0)->drops.count[WIRE_DROP_BAD_FIELD], 1);
    assert_int_equal(st(0)->requests_received, 0);

    /* A request whose MAC for replica 0 is broken: raw it is BAD_AUTH; marked
     * authenticated (an address book that checked it, in its eyes) it is taken. */
    len = rh_request(&C, g_msg, sizeof g_msg, 2, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0);
    g_msg[len - 4u * BFTKV_MAC_SIZE + 3u] ^= 1u;
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    assert_int_equal(st(0)->requests_received, 0);
    rh_deliver_decoded(&C, 0, g_msg, len, true);
    assert_int_equal(st(0)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    assert_int_equal(st(0)->requests_received, 1);
    assert_int_equal(st(0)->batches_proposed, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoded_runs_like_raw),
        cmocka_unit_test_teardown(test_authenticated_prepare, teardown),
        cmocka_unit_test_teardown(test_authenticated_preprepare_inline_macs, teardown),
        cmocka_unit_test_teardown(test_authenticated_request, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
