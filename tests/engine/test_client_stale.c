/* Unit tests of the client's read-only path under a stale or lying replica
 * (engine/client_readonly.c; docs/design.md §5.3, "The read-only path"): one
 * client of NREP = 4 replicas (f = 1, q = 3), scripted replies as the replicas
 * would send them -- the replica chosen by (client + lane + timestamp) mod n, or
 * every replica when the request asks it (WIRE_REQ_FULL_ALL), sends the result in
 * full, the others its digest. Checked:
 *
 *   - one replica answering stale on every read: each read completes on the fast
 *     path, never ordered; the replica is marked after two reads, and from then
 *     on the client's timestamps never make it the full replier;
 *   - a mark is cleared by one agreeing answer, or by the decay time, after which
 *     one disagreement does not mark again;
 *   - a Byzantine replica (one, f = 1) cannot get its value accepted: not by
 *     repeating it, not by answering a re-ask differently, not by answering
 *     first; and its lies mark only itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "client_fixture.h"

#define MS (1000u * 1000u)
#define T_NS (100u * MS) /* the retransmission timeout of these tests */

static struct pbft_client *ro_client(void)
{
    struct pbft_client_config cfg = cfg_default();
    cfg.readonly_fast_path = true;
    cfg.retransmit_timeout_ns = T_NS;
    return client_new(&cfg);
}

static uint16_t full_replier_of(uint16_t lane, uint64_t ts)
{
    return (uint16_t)(((uint64_t)ME + lane + ts) % NREP);
}

/* Replica r answers the request in the outbox's message i with value, as a
 * correct replica holding that value would. */
static uint32_t answer(struct pbft_client *c, const struct wire_msg *rq, uint16_t r, const char *value, uint64_t now,
                       struct pbft_completion *done)
{
    struct reply_spec s = spec(r, rq->u.request.lane, rq->h.seq, value, false);
    s.readonly = true;
    s.full = (rq->u.request.rflags & WIRE_REQ_FULL_ALL) != 0 || full_replier_of(rq->u.request.lane, rq->h.seq) == r;
    return reply_deliver(c, &s, now, done, 4);
}

/* One GET; every replica answers what vals[r] says (NULL: silent); a re-ask or
 * a second round is answered the same way. Returns after completion (asserted
 * within a few rounds of messages) with the value read. */
static void read_with(struct pbft_client *c, const char *const vals[NREP], uint64_t *now, char got[16])
{
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    int lane = pbft_client_submit(c, *now, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    assert_true(lane >= 0);
    for (int round = 0; round < 6; round++) {
        assert_true(out.nmsgs >= 1);
        struct wire_msg rq = out_request(out.nmsgs - 1u);
        assert_true((rq.u.request.rflags & WIRE_REQ_READONLY) != 0); /* never ordered */
        pbft_out_reset(&out);
        for (uint16_t r = 0; r < NREP; r++) {
            if (vals[r] == NULL) {
                continue;
            }
            *now += 10u * 1000u; /* 10 us apart */
            if (answer(c, &rq, r, vals[r], *now, done) == 1) {
                assert_int_equal(done[0].status, 0);
                assert_true(done[0].vlen < 16);
                memcpy(got, done[0].value, done[0].vlen);
                got[done[0].vlen] = 0;
                *now += 1 * MS;
                return;
            }
        }
        if (out.nmsgs == 0) {
            *now = pbft_client_next_deadline(c);
            assert_int_equal(tick(c, *now, done, 4), 0);
        }
    }
    fail_msg("the read did not complete");
}

/* Replica 0 (say, a primary cut off from the others) answers every read with
 * the value it held before the partition. */
static void test_stale_replica_reads_stay_fast(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client();
    const char *const vals[NREP] = { "old", "new", "new", "new" };
    uint64_t now = 1 * MS;
    char got[16];
    for (int i = 0; i < 12; i++) {
        read_with(c, vals, &now, got);
        assert_string_equal(got, "new");
        assert_int_equal(pbft_client_replica_stale(c, 0, now), i >= 1);
        for (uint16_t r = 1; r < NREP; r++) {
            assert_false(pbft_client_replica_stale(c, r, now));
        }
    }
    const struct pbft_client_stats *st = pbft_client_stats(c);
    assert_int_equal(st->readonly_submitted, 12);
    assert_int_equal(st->completed, 12);
    assert_int_equal(st->readonly_fallbacks, 0);
    assert_int_equal(st->readonly_retries, 0);
    assert_int_equal(st->readonly_stale_marks, 1);
    assert_int_equal(st->replies_mismatched, 12);
    /* Marked: the next requests never name it the full replier. */
    for (int i = 0; i < 8; i++) {
        pbft_out_reset(&out);
        int lane = pbft_client_submit(c, now, WIRE_OP_GET, "k", 1, NULL, 0, &out);
        assert_true(lane >= 0);
        struct wire_msg rq = out_request(0);
        assert_int_not_equal(full_replier_of(rq.u.request.lane, rq.h.seq), 0);
        struct pbft_completion done[4];
        for (uint16_t r = 1; r < NREP; r++) {
            (void)answer(c, &rq, r, "new", now, done);
        }
    }
    assert_int_equal(st->completed, 20);
    assert_true(st->timestamps_issued > st->submitted); /* some were skipped */
    pbft_client_destroy(c);
}

/* Before it is marked, a stale replica chosen to send the full result costs one
 * request for the full result -- not the fallback to ordering. */
static void test_stale_full_replier_asks_full(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client();
    struct pbft_completion done[4];
    int lane = pbft_client_submit(c, 0, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    struct wire_msg rq = out_request(0);
    uint16_t stale = full_replier_of(rq.u.request.lane, rq.h.seq);
    pbft_out_reset(&out);
    assert_int_equal(answer(c, &rq, stale, "old", 1 * MS, done), 0);
    uint32_t k = 0;
    for (uint16_t r = 0; r < NREP; r++) {
        if (r != stale) {
            assert_int_equal(answer(c, &rq, r, "new", 1 * MS, done), 0);
            k++;
        }
    }
    assert_int_equal(k, 3);
    /* q = 3 digests of "new", its bytes from nobody: ask everyone. */
    assert_int_equal(pbft_client_stats(c)->full_result_requests, 1);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
    struct wire_msg again = out_request(0);
    assert_int_equal(again.h.seq, rq.h.seq);
    assert_int_equal(again.u.request.rflags, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    /* The stale one's second answer is no second vote; a correct one's bytes finish it. */
    assert_int_equal(answer(c, &again, stale, "old", 2 * MS, done), 0);
    uint16_t other = (uint16_t)((stale + 1u) % NREP);
    assert_int_equal(answer(c, &again, other, "new", 2 * MS, done), 1);
    assert_int_equal(done[0].lane, lane);
    assert_memory_equal(done[0].value, "new", 3);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    pbft_client_destroy(c);
}

/* A marked replica that agrees once is unmarked; one that stays quiet is
 * unmarked by the decay time, and its old strikes are forgotten with it. */
static void test_stale_mark_cleared(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client();
    const char *const stale0[NREP] = { "old", "new", "new", "new" };
    const char *const agree[NREP] = { "new", "new", "new", "new" };
    const char *const quiet0[NREP] = { NULL, "new", "new", "new" };
    uint64_t now = 1 * MS;
    char got[16];
    read_with(c, stale0, &now, got);
    read_with(c, stale0, &now, got);
    assert_true(pbft_client_replica_stale(c, 0, now));
    /* It caught up: the next read that hears it agree clears the mark. */
    read_with(c, agree, &now, got);
    assert_false(pbft_client_replica_stale(c, 0, now));
    assert_int_equal(pbft_client_stats(c)->readonly_stale_marks, 1);
    /* One disagreement is not enough to mark again. */
    read_with(c, stale0, &now, got);
    assert_false(pbft_client_replica_stale(c, 0, now));
    read_with(c, stale0, &now, got);
    assert_true(pbft_client_replica_stale(c, 0, now));
    assert_int_equal(pbft_client_stats(c)->readonly_stale_marks, 2);
    /* Silent reads do not touch the mark; the decay time does. */
    read_with(c, quiet0, &now, got);
    assert_true(pbft_client_replica_stale(c, 0, now));
    now += 32u * T_NS - 5u * MS; /* the last strike was less than 5 ms ago */
    assert_true(pbft_client_replica_stale(c, 0, now));
    now += 5u * MS;
    assert_false(pbft_client_replica_stale(c, 0, now));
    read_with(c, stale0, &now, got);
    assert_false(pbft_client_replica_stale(c, 0, now)); /* the old strikes are gone */
    read_with(c, stale0, &now, got);
    assert_true(pbft_client_replica_stale(c, 0, now));
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    pbft_client_destroy(c);
}

/* Replica 3 is Byzantine. It answers first with a well-formed, correctly MACed
 * full result "evil", repeats it, answers the re-ask differently and the request
 * for full results with its value again: nothing of it becomes a second vote,
 * the read takes q = 3 matching answers of distinct replicas. */
static void test_byzantine_minority_cannot_win(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client();
    struct pbft_completion done[4];
    int lane = pbft_client_submit(c, 0, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    uint64_t ts = out_request(0).h.seq;
    pbft_out_reset(&out);
    struct reply_spec evil = spec(3, (uint16_t)lane, ts, "evil", true);
    evil.readonly = true;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(reply_deliver(c, &evil, 1 * MS, done, 4), 0);
    }
    struct reply_spec good = spec(0, (uint16_t)lane, ts, "good", true);
    good.readonly = true;
    assert_int_equal(reply_deliver(c, &good, 2 * MS, done, 4), 0);
    /* Its vote stays "evil" even when it now says "good": no second vote. */
    struct reply_spec flip = spec(3, (uint16_t)lane, ts, "good", true);
    flip.readonly = true;
    assert_int_equal(reply_deliver(c, &flip, 2 * MS, done, 4), 0);
    assert_int_equal(out.nmsgs, 0);
    /* Replicas 1 and 2 are slow: the wait passes, only they are asked again. */
    uint64_t t = pbft_client_next_deadline(c);
    assert_int_equal(tick(c, t, done, 4), 0);
    assert_int_equal(out.nmsgs, 2);
    assert_int_equal(out.msgs[0].dest_id, 1);
    assert_int_equal(out.msgs[1].dest_id, 2);
    pbft_out_reset(&out);
    /* Its replay ties "good" (one vote each) and displaces the kept full result. */
    assert_int_equal(reply_deliver(c, &evil, t + 1, done, 4), 0);
    good.replica = 1;
    good.full = false;
    assert_int_equal(reply_deliver(c, &good, t + 2, done, 4), 0); /* "good" has 2 of q = 3 */
    good.replica = 2;
    assert_int_equal(reply_deliver(c, &good, t + 3, done, 4), 0);
    /* q = 3 for "good", the bytes kept are "evil"'s: ask every replica for the
     * full result. */
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
    assert_int_equal(out_request(0).u.request.rflags, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    assert_int_equal(reply_deliver(c, &evil, t + 4, done, 4), 0);
    good.replica = 1;
    good.full = true;
    assert_int_equal(reply_deliver(c, &good, t + 5, done, 4), 1);
    assert_memory_equal(done[0].value, "good", 4);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    pbft_client_destroy(c);
}

/* A Byzantine replica's answers cannot mark a correct replica, and the marks it
 * earns itself do not stop reads: each keeps completing on the fast path. */
static void test_byzantine_marks_only_itself(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client();
    const char *const vals[NREP] = { "v", "v", "v", "lie" };
    uint64_t now = 1 * MS;
    char got[16];
    for (int i = 0; i < 6; i++) {
        read_with(c, vals, &now, got);
        assert_string_equal(got, "v");
    }
    assert_true(pbft_client_replica_stale(c, 3, now));
    for (uint16_t r = 0; r < 3; r++) {
        assert_false(pbft_client_replica_stale(c, r, now));
    }
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    /* With the liar and a correct replica split, the read is ordered only after a
     * second round fails too; the liar's "lie" is never accepted. */
    const char *const split[NREP] = { "v", "v", "w", "lie" };
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    int lane = pbft_client_submit(c, now, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    for (int round = 0; round < 2; round++) {
        struct wire_msg rq = out_request(out.nmsgs - 1u);
        assert_true((rq.u.request.rflags & WIRE_REQ_READONLY) != 0);
        pbft_out_reset(&out);
        for (uint16_t r = 0; r < NREP; r++) {
            assert_int_equal(answer(c, &rq, r, split[r], now, done), 0);
        }
    }
    assert_int_equal(pbft_client_stats(c)->readonly_retries, 1);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 1);
    struct wire_msg ordered = out_request(0);
    assert_int_equal(ordered.u.request.lane, (uint16_t)lane);
    assert_int_equal(ordered.u.request.rflags, 0);
    pbft_client_destroy(c);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_replica_reads_stay_fast),
        cmocka_unit_test(test_stale_full_replier_asks_full),
        cmocka_unit_test(test_stale_mark_cleared),
        cmocka_unit_test(test_byzantine_minority_cannot_win),
        cmocka_unit_test(test_byzantine_marks_only_itself),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
