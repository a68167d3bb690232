/* Unit tests of the PBFT client state machine (engine/client.c): one client of a
 * group of NREP = 4 replicas (f = 1, q = 3) is driven with REPLY messages built
 * here with the replicas' own keys (client_fixture.c). Checked: acceptance
 * exactly at f+1 matching replies and only with a verified full result;
 * mismatching digests and bad MACs are not counted; the injected f-replies bug;
 * retransmission to all replicas
 * with FULL_ALL and the same timestamp, with bounded backoff; submit limits; lanes;
 * routing of small and large requests; learning the view from replies. The
 * read-only path is tested in test_client_readonly.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "client_fixture.h"

/* ---- Lane base --------------------------------------------------------------------- */

/* A client whose lanes start at lane_base (a session's leased run) sends on
 * lane_base + i, completes replies for its run only, and reports local lanes. */
static void test_lane_base(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    cfg.lane_base = 10;
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = submit(c, WIRE_OP_PUT, "k", "v");
    assert_int_equal(lane, 0);
    struct wire_msg m = out_request(0);
    assert_int_equal(m.u.request.lane, 10);
    /* replies for wire lane 0 (another handle's) are ignored; lane 10 completes local lane 0 */
    struct reply_spec s = spec(1, 0, m.h.seq, NULL, false);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 2;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->replies_ignored, 2);
    s.lane = 10;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 0);
    s.replica = 3;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 1);
    assert_int_equal(done[0].lane, 0);
    pbft_client_destroy(c);
    /* the run must fit PBFT_LANES_MAX */
    cfg.lane_base = (uint16_t)(PBFT_LANES_MAX - cfg.lanes + 1u);
    struct pbft_client *bad = NULL;
    assert_int_equal(pbft_client_create(&cfg, &cctx[cfg.id], &bad), BFTKV_E_INVAL);
}

/* ---- Ordered path ------------------------------------------------------------------ */

/* The map epoch a deployment's replies carry (docs/design.md §6.3): the
 * highest one of an authenticated reply to this client's request is kept with
 * its replica; a reply with a bad MAC, or one for no lane of ours, claims
 * nothing; the completion is unaffected. */
static void test_epoch_seen(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    uint16_t from = 99;
    assert_int_equal(pbft_client_epoch_seen(c, &from), 0);
    int lane = submit(c, WIRE_OP_PUT, "k", "v");
    struct wire_msg m = out_request(0);
    struct reply_spec s = spec(2, (uint16_t)lane, m.h.seq, NULL, false);
    s.epoch = 9;
    s.bad_mac = true;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    assert_int_equal(pbft_client_epoch_seen(c, NULL), 0);
    s.bad_mac = false;
    s.lane = (uint16_t)(lane + 1); /* an idle lane: ignored before its MAC */
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    assert_int_equal(pbft_client_epoch_seen(c, NULL), 0);
    s.lane = (uint16_t)lane;
    s.epoch = 5;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    assert_int_equal(pbft_client_epoch_seen(c, &from), 5);
    assert_int_equal(from, 2);
    s.replica = 3;
    s.epoch = 9;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 1); /* f+1 matching: done, whatever the epochs */
    assert_int_equal(pbft_client_epoch_seen(c, &from), 9);
    assert_int_equal(from, 3);
    /* A lower epoch later does not lower it. */
    lane = submit(c, WIRE_OP_PUT, "k2", "v");
    m = out_request(0);
    s = spec(0, (uint16_t)lane, m.h.seq, NULL, false);
    s.epoch = 4;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    assert_int_equal(pbft_client_epoch_seen(c, &from), 9);
    assert_int_equal(from, 3);
    pbft_client_destroy(c);
}

static void test_accept_at_f_plus_one(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];

    int lane = submit(c, WIRE_OP_PUT, "k", "v");
    assert_true(lane >= 0);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA);
    assert_int_equal(out.msgs[0].dest_id, 0); /* primary of view 0 */
    struct wire_msg m = out_request(0);
    assert_int_equal(m.h.seq, BASE_TS + 1u);
    assert_int_equal(m.u.request.rflags, 0);
    assert_int_equal(m.u.request.client, ME);
    assert_int_equal(m.u.request.lane, (uint16_t)lane);

    /* f = 1 reply is not enough. An empty result is known from its digest alone. */
    struct reply_spec s = spec(2, (uint16_t)lane, BASE_TS + 1u, NULL, false);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    /* A repeat from the same replica does not count twice. */
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 3;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 1);
    assert_int_equal(done[0].lane, lane);
    assert_int_equal(done[0].op, WIRE_OP_PUT);
    assert_int_equal(done[0].status, 0);
    assert_int_equal(done[0].timestamp, BASE_TS + 1u);
    assert_null(done[0].value);
    assert_int_equal(pbft_client_stats(c)->completed, 1);
    assert_int_equal(pbft_client_stats(c)->submitted, 1);
    assert_int_equal(pbft_client_free_lane(c), 0);
    assert_int_equal(pbft_client_next_deadline(c), UINT64_MAX);

    /* A late reply for a completed request is ignored. */
    s.replica = 0;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->replies_ignored, 1);
    pbft_client_destroy(c);
}

static void test_needs_verified_full_result(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];

    int lane = submit(c, WIRE_OP_GET, "k", NULL);
    assert_true(lane >= 0);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA); /* fast path off */
    uint64_t ts = out_request(0).h.seq;

    /* f+1 digest-only replies: the digest is agreed but the value is not in hand. */
    struct reply_spec s = spec(1, (uint16_t)lane, ts, "value-A", false);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 2;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    /* A full reply whose bytes do not match its digest is rejected. */
    uint64_t drops_before = pbft_client_stats(c)->drops.count[WIRE_DROP_BAD_DIGEST];
    s.replica = 0;
    s.full = true;
    s.sent = "value-B";
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->drops.count[WIRE_DROP_BAD_DIGEST] - drops_before
                         + pbft_client_stats(c)->replies_mismatched,
                     1);
    /* The genuine full result completes it. */
    s.replica = 3;
    s.sent = NULL;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 1);
    assert_int_equal(done[0].status, 0);
    assert_int_equal(done[0].vlen, 7);
    assert_memory_equal(done[0].value, "value-A", 7);
    pbft_client_destroy(c);
}

/* f+1 digest-only replies settle the result, but the replica chosen to send it in
 * full is silent: the client asks everyone for it at once, not after the timeout,
 * and only once. */
static void test_agreed_digest_asks_full_at_once(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];

    int lane = submit(c, WIRE_OP_GET, "k", NULL);
    assert_true(lane >= 0);
    uint64_t ts = out_request(0).h.seq;
    uint64_t deadline = pbft_client_next_deadline(c);
    pbft_out_reset(&out);

    struct reply_spec s = spec(1, (uint16_t)lane, ts, "value-A", false);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    assert_int_equal(out.nmsgs, 0); /* one digest settles nothing */
    s.replica = 2;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 0);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
    struct wire_msg m = out_request(0);
    assert_int_equal(m.h.seq, ts); /* the same request, same timestamp */
    assert_int_equal(m.u.request.rflags, WIRE_REQ_FULL_ALL);
    assert_int_equal(pbft_client_stats(c)->full_result_requests, 1);
    assert_int_equal(pbft_client_stats(c)->retransmissions, 0);
    assert_int_equal(pbft_client_next_deadline(c), deadline); /* the timer keeps running */

    /* A third matching digest does not ask again. */
    s.replica = 0;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(pbft_client_stats(c)->full_result_requests, 1);

    /* The full result, sent in answer, completes it. */
    s.replica = 3;
    s.full = true;
    assert_int_equal(reply_deliver(c, &s, 4, done, 4), 1);
    assert_int_equal(done[0].vlen, 7);
    assert_memory_equal(done[0].value, "value-A", 7);
    pbft_client_destroy(c);
}

static void test_mismatching_digest_and_bad_mac(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];

    int lane = submit(c, WIRE_OP_GET, "k", NULL);
    uint64_t ts = out_request(0).h.seq;
    /* Replica 0 lies with a full (self-consistent) result. */
    struct reply_spec lie = spec(0, (uint16_t)lane, ts, "evil", true);
    assert_int_equal(reply_deliver(c, &lie, 1, done, 4), 0);
    /* Replica 1's honest full result: 1 vs 1, not accepted yet. */
    struct reply_spec s = spec(1, (uint16_t)lane, ts, "good", true);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    /* Replica 2 agrees with 1, but its MAC is broken: not counted. */
    s.replica = 2;
    s.full = false;
    s.bad_mac = true;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    /* A reply addressed to another client, and one with an old timestamp: ignored. */
    struct reply_spec other = spec(3, (uint16_t)lane, ts, "good", false);
    other.client = OTHER;
    assert_int_equal(reply_deliver(c, &other, 2, done, 4), 0);
    other.client = ME;
    other.ts = ts - 1u;
    assert_int_equal(reply_deliver(c, &other, 2, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->replies_ignored, 2);
    /* Replica 2 again, properly authenticated: f+1 = 2 agree on "good". */
    s.bad_mac = false;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 1);
    assert_int_equal(done[0].vlen, 4);
    assert_memory_equal(done[0].value, "good", 4);
    assert_int_equal(pbft_client_stats(c)->replies_mismatched, 1); /* replica 0 */
    pbft_client_destroy(c);
}

/* A faulty replica's full result arrives last and displaces the correct one: the
 * agreed digest has no result in hand until the retransmission (FULL_ALL) brings
 * full results from every replica. */
static void test_displaced_result_recovers_by_retransmission(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = pbft_client_submit(c, 0, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    uint64_t ts = out_request(0).h.seq;
    struct reply_spec s = spec(1, (uint16_t)lane, ts, "good", true);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    struct reply_spec lie = spec(0, (uint16_t)lane, ts, "evil", true);
    assert_int_equal(reply_deliver(c, &lie, 1, done, 4), 0);
    s.replica = 2;
    s.full = false;
    pbft_out_reset(&out);
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0); /* "good" agreed, bytes not kept */
    assert_int_equal(out_request(0).u.request.rflags, WIRE_REQ_FULL_ALL); /* asked at once */
    pbft_out_reset(&out);
    assert_int_equal(tick(c, TIMEOUT_NS, done, 4), 0);
    assert_int_equal(out_request(0).u.request.rflags, WIRE_REQ_FULL_ALL);
    assert_int_equal(reply_deliver(c, &lie, TIMEOUT_NS, done, 4), 0);
    s.replica = 3;
    s.full = true;
    assert_int_equal(reply_deliver(c, &s, TIMEOUT_NS, done, 4), 1);
    assert_memory_equal(done[0].value, "good", 4);
    pbft_client_destroy(c);
}

static void test_bug_accepts_f_replies(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    cfg.bugs = PBFT_BUG_CLIENT_F_REPLIES;
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = submit(c, WIRE_OP_GET, "k", NULL);
    uint64_t ts = out_request(0).h.seq;
    struct reply_spec lie = spec(3, (uint16_t)lane, ts, "evil", true);
    assert_int_equal(reply_deliver(c, &lie, 1, done, 4), 1); /* one faulty replica suffices */
    assert_memory_equal(done[0].value, "evil", 4);
    pbft_client_destroy(c);
}

static void test_not_found_status(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = submit(c, WIRE_OP_DEL, "k", NULL);
    uint64_t ts = out_request(0).h.seq;
    struct reply_spec s = spec(0, (uint16_t)lane, ts, NULL, false);
    s.status = BFTKV_E_NOT_FOUND;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 1;
    s.status = 0; /* disagrees on the status */
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 2;
    s.status = BFTKV_E_NOT_FOUND;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 1);
    assert_int_equal(done[0].status, BFTKV_E_NOT_FOUND);
    assert_int_equal(done[0].op, WIRE_OP_DEL);
    pbft_client_destroy(c);
}

/* ---- Read-only path ------------------------------------------------------------------ */

/* ---- Retransmission -------------------------------------------------------------------- */

static void test_retransmit_full_all_same_timestamp(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = pbft_client_submit(c, 0, WIRE_OP_PUT, "key", 3, "value", 5, &out);
    assert_true(lane >= 0);
    uint64_t ts = out_request(0).h.seq;
    uint8_t d0[32];
    struct wire_msg m0 = out_request(0);
    wire_request_digest(d0, &m0);
    (void)d0;

    uint64_t now = 0, interval = TIMEOUT_NS;
    uint64_t expect_interval[] = { 2, 4, 8, 8, 8 };
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(pbft_client_next_deadline(c), now + interval);
        pbft_out_reset(&out);
        assert_int_equal(tick(c, now + interval - 1, done, 4), 0);
        assert_int_equal(out.nmsgs, 0);
        now += interval;
        assert_int_equal(tick(c, now, done, 4), 0);
        assert_int_equal(out.nmsgs, 1);
        assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
        struct wire_msg m = out_request(0); /* fresh, valid authenticator for every replica */
        assert_int_equal(m.h.seq, ts);
        assert_int_equal(m.u.request.rflags, WIRE_REQ_FULL_ALL);
        assert_int_equal(m.u.request.lane, (uint16_t)lane);
        assert_int_equal(m.u.request.klen, 3);
        assert_memory_equal(m.u.request.key, "key", 3);
        assert_int_equal(m.u.request.vlen, 5);
        assert_memory_equal(m.u.request.value, "value", 5);
        assert_int_equal(pbft_client_stats(c)->retransmissions, i + 1u);
        interval = expect_interval[i] * TIMEOUT_NS;
    }
    /* Replies to the retransmission complete the original request. */
    struct reply_spec s = spec(1, (uint16_t)lane, ts, NULL, true);
    assert_int_equal(reply_deliver(c, &s, now, done, 4), 0);
    s.replica = 2;
    assert_int_equal(reply_deliver(c, &s, now, done, 4), 1);
    assert_int_equal(pbft_client_next_deadline(c), UINT64_MAX);
    pbft_client_destroy(c);
}

/* ---- Timeouts that fit the network (docs/design.md §5.5.2) ------------------------------ */

/* A PUT on a fresh lane at `now`, answered by replicas 1 and 2 at `at` (after
 * `retx` retransmissions, forced by ticking at the deadlines). Returns the
 * deadline its first transmission had. */
static uint64_t put_answered(struct pbft_client *c, uint64_t now, uint64_t at, unsigned retx, uint8_t *dest_kind)
{
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    int lane = pbft_client_submit(c, now, WIRE_OP_PUT, "key", 3, "v", 1, &out);
    assert_true(lane >= 0);
    assert_int_equal(out.nmsgs, 1);
    *dest_kind = out.msgs[0].dest_kind;
    uint64_t ts = out_request(0).h.seq, first = pbft_client_next_deadline(c);
    for (unsigned i = 0; i < retx; i++)
        assert_int_equal(tick(c, pbft_client_next_deadline(c), done, 4), 0);
    assert_true(at >= now);
    struct reply_spec sp = spec(1, (uint16_t)lane, ts, NULL, true);
    assert_int_equal(reply_deliver(c, &sp, at, done, 4), 0);
    sp.replica = 2;
    assert_int_equal(reply_deliver(c, &sp, at, done, 4), 1);
    return first;
}

static void test_first_timeout_fits(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    uint8_t kind = 0;
    /* Nothing measured: the configured timeout (T = 1000 here, T/4 = 250). */
    assert_int_equal(put_answered(c, 0, 200, 0, &kind), TIMEOUT_NS);
    assert_int_equal(kind, PBFT_DEST_REPLICA);
    /* Answered in 200: the time plus four deviations (the first is half the
     * sample, RFC 6298), 200 + 4 * 100 = 600, more than twice the time (400). */
    assert_int_equal(put_answered(c, 1000, 1100, 0, &kind), 1000 + 600);
    /* Then in 100. Smoothed (1/8 per sample): 200 - 25 + 12 = 187; the deviation
     * (1/4 per sample): 100 - 25 + 100 / 4 = 100: 187 + 400 = 587. */
    assert_int_equal(put_answered(c, 2000, 2000, 0, &kind), 2000 + 187 + 4 * 100);
    /* Samples that do not vary: the deviation decays and twice the time rules,
     * but never below T/4. */
    for (uint64_t t = 3000; t < 3000 + 40 * 1000; t += 1000)
        (void)put_answered(c, t, t + 1, 0, &kind);
    assert_int_equal(put_answered(c, 50000, 50001, 0, &kind), 50000 + TIMEOUT_NS / 4);
    /* Karn's rule: a retransmitted request's time is no sample. */
    (void)put_answered(c, 60000, 69000, 1, &kind);
    assert_int_equal(put_answered(c, 70000, 70001, 0, &kind), 70000 + TIMEOUT_NS / 4);
    pbft_client_destroy(c);
}

static void test_hedging_under_loss(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    uint8_t kind = 0;
    uint64_t t = 0;
    /* Two retransmitted requests in a row are not yet a lossy network ... */
    for (int i = 0; i < 2; i++, t += 100000)
        (void)put_answered(c, t, t + 5000, 1, &kind);
    (void)put_answered(c, t, t + 1, 0, &kind);
    assert_int_equal(kind, PBFT_DEST_REPLICA);
    t += 100000;
    /* ... a third is (over 1 in 8 of the smoothed share): every replica at once. */
    (void)put_answered(c, t, t + 5000, 1, &kind);
    t += 100000;
    (void)put_answered(c, t, t + 1, 0, &kind);
    assert_int_equal(kind, PBFT_DEST_ALL_REPLICAS);
    assert_int_equal(pbft_client_stats(c)->requests_hedged, 1);
    /* Quiet again: back to the primary alone once under 1 in 64. */
    unsigned k = 0;
    do {
        t += 100000;
        (void)put_answered(c, t, t + 1, 0, &kind);
        k++;
    } while (kind == PBFT_DEST_ALL_REPLICAS && k < 100);
    assert_true(k > 10 && k < 100);
    assert_int_equal(pbft_client_stats(c)->requests_hedged, k);
    pbft_client_destroy(c);
}

/* ---- Submit limits, lanes, routing ------------------------------------------------------ */

static void test_submit_limits(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    cfg.lanes = 1;
    struct pbft_client *c = client_new(&cfg);
    static char key[BFTKV_KEY_MAX + 1];
    memset(key, 'k', sizeof key);
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_GET, key, 0, NULL, 0, &out), BFTKV_E_KEY_EMPTY);
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_GET, key, BFTKV_KEY_MAX + 1, NULL, 0, &out),
                     BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_PUT, key, 1, g_big, BFTKV_VALUE_MAX + 1, &out),
                     BFTKV_E_VALUE_TOO_LARGE);
    assert_int_equal(pbft_client_submit(c, 0, 9, key, 1, NULL, 0, &out), BFTKV_E_INVAL);
    assert_int_equal(pbft_client_submit(c, 0, 0, key, 1, NULL, 0, &out), BFTKV_E_INVAL);
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_GET, key, 1, "v", 1, &out), BFTKV_E_INVAL);
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_DEL, key, 1, "v", 1, &out), BFTKV_E_INVAL);
    assert_int_equal(out.nmsgs, 0);
    assert_int_equal(pbft_client_stats(c)->submitted, 0);
    /* The largest key and value are accepted; then the only lane is busy. */
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_PUT, key, BFTKV_KEY_MAX, g_big, BFTKV_VALUE_MAX, &out), 0);
    assert_int_equal(pbft_client_free_lane(c), -1);
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_GET, key, 1, NULL, 0, &out), BFTKV_E_FULL);
    struct wire_msg m = out_request(0);
    assert_int_equal(m.u.request.klen, BFTKV_KEY_MAX);
    assert_int_equal(m.u.request.vlen, BFTKV_VALUE_MAX);
    assert_memory_equal(m.u.request.value, g_big, BFTKV_VALUE_MAX);
    pbft_client_destroy(c);

    /* Bad configurations. */
    struct pbft_client *bad = NULL;
    cfg = cfg_default();
    cfg.lanes = 0;
    assert_int_equal(pbft_client_create(&cfg, &cctx[ME], &bad), BFTKV_E_INVAL);
    cfg.lanes = PBFT_LANES_MAX + 1u;
    assert_int_equal(pbft_client_create(&cfg, &cctx[ME], &bad), BFTKV_E_INVAL);
    cfg = cfg_default();
    cfg.f = 2; /* n = 4 < 3f+1 */
    assert_int_equal(pbft_client_create(&cfg, &cctx[ME], &bad), BFTKV_E_INVAL);
    cfg = cfg_default();
    assert_int_equal(pbft_client_create(&cfg, &cctx[OTHER], &bad), BFTKV_E_INVAL); /* not our keys */
    assert_null(bad);
}

static void test_outbox_full(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_out small;
    assert_int_equal(pbft_out_init(&small, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS), 0);
    /* Fill the outbox almost completely. */
    small.used = small.cap - 100;
    assert_int_equal(pbft_client_submit(c, 0, WIRE_OP_PUT, "k", 1, g_big, 1000, &small), BFTKV_E_AGAIN);
    assert_true(small.more);
    assert_int_equal(pbft_client_free_lane(c), 0);
    pbft_out_reset(&small);
    int lane = pbft_client_submit(c, 0, WIRE_OP_PUT, "k", 1, g_big, 1000, &small);
    assert_true(lane >= 0);
    /* A retransmission that does not fit stays due. */
    small.used = small.cap - 100;
    struct pbft_event ev = { .kind = PBFT_EV_TICK, .now_ns = TIMEOUT_NS };
    struct pbft_completion done[4];
    assert_int_equal(pbft_client_step(c, &ev, &small, done, 4), 0);
    assert_true(small.more);
    assert_int_equal(pbft_client_stats(c)->retransmissions, 0);
    assert_true(pbft_client_next_deadline(c) <= TIMEOUT_NS);
    pbft_out_reset(&small);
    assert_int_equal(pbft_client_step(c, &ev, &small, done, 4), 0);
    assert_int_equal(small.nmsgs, 1);
    assert_int_equal(pbft_client_stats(c)->retransmissions, 1);
    pbft_out_free(&small);
    pbft_client_destroy(c);
}

static void test_lanes_independent(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lanes[4];
    uint64_t ts[4];
    const char *vals[4] = { "zero", "one", "two", "three" };
    for (int i = 0; i < 4; i++) {
        char key[8];
        key[0] = (char)('a' + i);
        key[1] = 0;
        lanes[i] = submit(c, WIRE_OP_GET, key, NULL);
        assert_true(lanes[i] >= 0);
        struct wire_msg m = out_request((uint32_t)i);
        ts[i] = m.h.seq;
        assert_int_equal(m.u.request.lane, (uint16_t)lanes[i]);
        if (i > 0) {
            assert_true(ts[i] > ts[i - 1]); /* strictly increasing across lanes */
            assert_int_not_equal(lanes[i], lanes[i - 1]);
        }
    }
    assert_int_equal(pbft_client_free_lane(c), -1);
    assert_int_equal(submit(c, WIRE_OP_GET, "x", NULL), BFTKV_E_FULL);

    /* Complete them in reverse order; replies for one lane never complete another. */
    for (int i = 3; i >= 0; i--) {
        struct reply_spec s = spec(0, (uint16_t)lanes[i], ts[i], vals[i], true);
        assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
        /* A reply carrying another lane's timestamp is ignored. */
        struct reply_spec wrong = spec(1, (uint16_t)lanes[i], ts[(i + 1) % 4], vals[i], false);
        assert_int_equal(reply_deliver(c, &wrong, 1, done, 4), 0);
        s.replica = 2;
        s.full = false;
        assert_int_equal(reply_deliver(c, &s, 1, done, 4), 1);
        assert_int_equal(done[0].lane, lanes[i]);
        assert_int_equal(done[0].timestamp, ts[i]);
        assert_int_equal(done[0].vlen, strlen(vals[i]));
        assert_memory_equal(done[0].value, vals[i], strlen(vals[i]));
        assert_true(pbft_client_free_lane(c) >= 0);
    }
    assert_int_equal(pbft_client_stats(c)->completed, 4);

    /* Completions beyond done_cap wait for the next call. */
    int a = submit(c, WIRE_OP_GET, "a", NULL);
    int b = submit(c, WIRE_OP_GET, "b", NULL);
    uint64_t ta = out_request(out.nmsgs - 2).h.seq, tb = out_request(out.nmsgs - 1).h.seq;
    struct reply_spec s = spec(0, (uint16_t)a, ta, "A", true);
    assert_int_equal(reply_deliver(c, &s, 1, done, 0), 0);
    s.replica = 1;
    assert_int_equal(reply_deliver(c, &s, 1, done, 0), 0); /* accepted, not reported */
    assert_int_equal(pbft_client_next_deadline(c), 0);
    assert_int_equal(pbft_client_free_lane(c) == a, false);
    s = spec(0, (uint16_t)b, tb, "B", true);
    assert_int_equal(reply_deliver(c, &s, 1, done, 1), 1); /* a's completion */
    assert_int_equal(done[0].lane, a);
    assert_memory_equal(done[0].value, "A", 1);
    s.replica = 3;
    assert_int_equal(reply_deliver(c, &s, 1, done, 1), 1);
    assert_int_equal(done[0].lane, b);
    assert_memory_equal(done[0].value, "B", 1);
    pbft_client_destroy(c);
}

static void test_routing_and_view(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];

    /* Small: to the primary of view 0. Large: to every replica. */
    int small_lane = submit(c, WIRE_OP_PUT, "s", "small");
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA);
    assert_int_equal(out.msgs[0].dest_id, 0);
    int big_lane = pbft_client_submit(c, 0, WIRE_OP_PUT, "b", 1, g_big, 2000, &out);
    assert_int_equal(out.nmsgs, 2);
    assert_int_equal(out.msgs[1].dest_kind, PBFT_DEST_ALL_REPLICAS);
    /* The boundary: header + body = BFTKV_INLINE_REQUEST_MAX stays inline. */
    uint32_t fixed = WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED + 1u;
    int edge = pbft_client_submit(c, 0, WIRE_OP_PUT, "e", 1, g_big, BFTKV_INLINE_REQUEST_MAX - fixed, &out);
    assert_int_equal(out.msgs[2].dest_kind, PBFT_DEST_REPLICA);
    int over = pbft_client_submit(c, 0, WIRE_OP_PUT, "o", 1, g_big, BFTKV_INLINE_REQUEST_MAX - fixed + 1u, &out);
    assert_int_equal(out.msgs[3].dest_kind, PBFT_DEST_ALL_REPLICAS);
    uint64_t ts_small = out_request(0).h.seq;
    uint64_t ts_big = out_request(1).h.seq;
    assert_int_equal(out_request(0).h.view, 0);

    /* The group moved to view 5; a faulty replica claims view 100. The client
     * adopts the (f+1)-th highest view among the accepted replies: 5. */
    struct reply_spec s = spec(0, (uint16_t)small_lane, ts_small, NULL, false);
    s.view = 100;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 1;
    s.view = 5;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 1);
    /* An older view in later replies never moves it back. */
    s = spec(2, (uint16_t)big_lane, ts_big, NULL, false);
    s.view = 1;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 3;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 1);

    pbft_out_reset(&out);
    int lane = submit(c, WIRE_OP_PUT, "s2", "small");
    assert_true(lane >= 0);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA);
    assert_int_equal(out.msgs[0].dest_id, 5u % NREP);
    assert_int_equal(out_request(0).h.view, 5); /* the view hint */
    (void)edge;
    (void)over;
    pbft_client_destroy(c);
}

static void test_garbage_and_other_types(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = submit(c, WIRE_OP_PUT, "k", "v");
    assert_true(lane >= 0);
    uint8_t junk[64];
    memset(junk, 0xAB, sizeof junk);
    struct pbft_event ev = { .kind = PBFT_EV_RECEIVE, .now_ns = 1, .msg = junk, .len = sizeof junk };
    assert_int_equal(pbft_client_step(c, &ev, &out, done, 4), 0);
    ev.len = 0;
    assert_int_equal(pbft_client_step(c, &ev, &out, done, 4), 0);
    /* A well-formed PREPARE is not for clients. */
    uint8_t d[32] = { 0 };
    size_t auth_off;
    size_t len = wire_encode_digest_msg(g_msg, sizeof g_msg, WIRE_PREPARE, GROUP, 1, NREP, 0, 1, d, &auth_off);
    ev.msg = g_msg;
    ev.len = len;
    assert_int_equal(pbft_client_step(c, &ev, &out, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->drops.count[WIRE_DROP_BAD_TYPE], 1);
    uint64_t total = 0;
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        total += pbft_client_stats(c)->drops.count[i];
    }
    assert_true(total >= 2);
    assert_int_equal(pbft_client_stats(c)->completed, 0);
    pbft_client_destroy(c);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lane_base),
        cmocka_unit_test(test_epoch_seen),
        cmocka_unit_test(test_accept_at_f_plus_one),
        cmocka_unit_test(test_needs_verified_full_result),
        cmocka_unit_test(test_agreed_digest_asks_full_at_once),
        cmocka_unit_test(test_mismatching_digest_and_bad_mac),
        cmocka_unit_test(test_displaced_result_recovers_by_retransmission),
        cmocka_unit_test(test_bug_accepts_f_replies),
        cmocka_unit_test(test_not_found_status),
        cmocka_unit_test(test_retransmit_full_all_same_timestamp),
        cmocka_unit_test(test_first_timeout_fits),
        cmocka_unit_test(test_hedging_under_loss),
        cmocka_unit_test(test_submit_limits),
        cmocka_unit_test(test_outbox_full),
        cmocka_unit_test(test_lanes_independent),
        cmocka_unit_test(test_routing_and_view),
        cmocka_unit_test(test_garbage_and_other_types),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
