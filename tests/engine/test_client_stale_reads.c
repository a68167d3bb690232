/* Unit tests of the client's stale reads (pbft_client_config.stale_reads;
 * engine/client.c "Stale reads", docs/design.md §5.3): one client of NREP = 4
 * replicas (f = 1), scripted replies. Checked:
 *
 *   - a GET asks ONE replica, read-only with WIRE_REQ_FULL_ALL, and completes on
 *     that replica's first authenticated answer, whatever it says (a stale or a
 *     lying replica's value is taken: what the option promises, and why it is
 *     never the default); the lanes of a handle start at different replicas;
 *   - a reply with a bad MAC, from a replica not asked, or a digest without the
 *     value completes nothing;
 *   - no answer in time moves the ask to the next replica, with backoff; an
 *     answer "holds no state" (BFTKV_E_NO_STATE) moves it at once;
 *   - PUTs and DELs still go through ordering and need f+1 matching replies;
 *   - a stale read's answer does not move the client's view (one replica
 *     vouches for nothing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "bftkv/errors.h"
#include "client_fixture.h"

#define MS (1000u * 1000u)
#define T_NS (100u * MS)

static struct pbft_client *stale_client(void)
{
    struct pbft_client_config cfg = cfg_default();
    cfg.readonly_fast_path = true;
    cfg.stale_reads = true;
    cfg.retransmit_timeout_ns = T_NS;
    return client_new(&cfg);
}

/* The outbox holds exactly one message, a read-only GET with FULL_ALL for one
 * replica: which. */
static uint16_t asked(struct wire_msg *rq)
{
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA);
    *rq = out_request(0);
    assert_int_equal(rq->u.request.op, WIRE_OP_GET);
    assert_int_equal(rq->u.request.rflags, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    return out.msgs[0].dest_id;
}

static struct reply_spec ro_reply(uint16_t r, const struct wire_msg *rq, const char *value)
{
    struct reply_spec s = spec(r, rq->u.request.lane, rq->h.seq, value, true);
    s.readonly = true;
    return s;
}

static void test_one_replica_one_answer(void **state)
{
    (void)state;
    struct pbft_client *c = stale_client();
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    int lane = pbft_client_submit(c, 1 * MS, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    assert_true(lane >= 0);
    struct wire_msg rq;
    uint16_t r = asked(&rq);
    pbft_out_reset(&out);
    /* A replica not asked, a bad MAC, a digest alone: nothing completes. */
    struct reply_spec other = ro_reply((uint16_t)((r + 1u) % NREP), &rq, "v-other");
    assert_int_equal(reply_deliver(c, &other, 2 * MS, done, 4), 0);
    struct reply_spec bad = ro_reply(r, &rq, "v1");
    bad.bad_mac = true;
    assert_int_equal(reply_deliver(c, &bad, 4 * MS, done, 4), 0);
    struct reply_spec digest_only = ro_reply(r, &rq, "v1");
    digest_only.full = false;
    assert_int_equal(reply_deliver(c, &digest_only, 4 * MS, done, 4), 0);
    /* The asked replica's digest-only answer moved the ask on (it cannot be used). */
    struct wire_msg rq2;
    assert_int_equal(asked(&rq2), (r + 1u) % NREP);
    struct reply_spec lie = ro_reply((uint16_t)((r + 1u) % NREP), &rq2, "a lie");
    assert_int_equal(reply_deliver(c, &lie, 5 * MS, done, 4), 1);
    assert_int_equal(done[0].lane, lane);
    assert_int_equal(done[0].vlen, 5);
    assert_memory_equal(done[0].value, "a lie", 5); /* one replica: possibly wrong */
    const struct pbft_client_stats *st = pbft_client_stats(c);
    assert_int_equal(st->stale_submitted, 1);
    assert_int_equal(st->stale_moves, 1);
    assert_int_equal(st->readonly_submitted, 0);
    assert_int_equal(st->completed, 1);
    /* The first replica's late answer, after the move, would have been taken as
     * well: both were asked. Here the lane is done and it is ignored. */
    assert_int_equal(reply_deliver(c, &other, 6 * MS, done, 4), 0);
    pbft_client_destroy(c);
}

static void test_lanes_spread(void **state)
{
    (void)state;
    struct pbft_client *c = stale_client();
    bool seen[NREP] = {false};
    pbft_out_reset(&out);
    for (int i = 0; i < (int)NREP; i++) {
        pbft_out_reset(&out);
        assert_true(pbft_client_submit(c, 1 * MS, WIRE_OP_GET, "k", 1, NULL, 0, &out) >= 0);
        struct wire_msg rq;
        seen[asked(&rq)] = true;
    }
    for (unsigned r = 0; r < NREP; r++)
        assert_true(seen[r]);
    pbft_client_destroy(c);
}

static void test_silence_and_no_state_move_on(void **state)
{
    (void)state;
    struct pbft_client *c = stale_client();
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    assert_true(pbft_client_submit(c, 1 * MS, WIRE_OP_GET, "k", 1, NULL, 0, &out) >= 0);
    struct wire_msg rq;
    uint16_t r0 = asked(&rq);
    /* Silence: at the deadline the next replica is asked, and the wait doubles. */
    uint64_t d1 = pbft_client_next_deadline(c);
    assert_true(d1 > 1 * MS && d1 <= 1 * MS + 2 * T_NS);
    pbft_out_reset(&out);
    assert_int_equal(tick(c, d1, done, 4), 0);
    uint16_t r1 = asked(&rq);
    assert_int_equal(r1, (r0 + 1u) % NREP);
    uint64_t d2 = pbft_client_next_deadline(c);
    assert_int_equal(d2 - d1, 2u * (d1 - 1 * MS));
    /* "Holds no state": the next one at once. */
    struct reply_spec ns = ro_reply(r1, &rq, "");
    ns.status = (int16_t)BFTKV_E_NO_STATE;
    ns.rlen = 0;
    pbft_out_reset(&out);
    assert_int_equal(reply_deliver(c, &ns, d1 + 1 * MS, done, 4), 0);
    uint16_t r2 = asked(&rq);
    assert_int_equal(r2, (r1 + 1u) % NREP);
    struct reply_spec nf = ro_reply(r2, &rq, "");
    nf.status = (int16_t)BFTKV_E_NOT_FOUND;
    nf.rlen = 0;
    assert_int_equal(reply_deliver(c, &nf, d1 + 2 * MS, done, 4), 1);
    assert_int_equal(done[0].status, BFTKV_E_NOT_FOUND);
    assert_int_equal(pbft_client_stats(c)->stale_moves, 2);
    pbft_client_destroy(c);
}

static void test_writes_still_ordered(void **state)
{
    (void)state;
    struct pbft_client *c = stale_client();
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    int lane = pbft_client_submit(c, 1 * MS, WIRE_OP_PUT, "k", 1, "v", 1, &out);
    assert_true(lane >= 0);
    assert_int_equal(out.nmsgs, 1);
    struct wire_msg rq = out_request(0);
    assert_int_equal(rq.u.request.rflags & WIRE_REQ_READONLY, 0);
    /* One reply is not enough for a write: f+1 = 2 are. */
    struct reply_spec s0 = spec(0, (uint16_t)lane, rq.h.seq, "", true);
    assert_int_equal(reply_deliver(c, &s0, 2 * MS, done, 4), 0);
    struct reply_spec s1 = spec(1, (uint16_t)lane, rq.h.seq, "", false);
    assert_int_equal(reply_deliver(c, &s1, 2 * MS, done, 4), 1);
    assert_int_equal(done[0].status, 0);
    pbft_client_destroy(c);
}

/* A stale read's answer carries the replica's view; one replica must not move
 * the view the client sends ordered requests to. */
static void test_view_not_learnt(void **state)
{
    (void)state;
    struct pbft_client *c = stale_client();
    struct pbft_completion done[4];
    pbft_out_reset(&out);
    assert_true(pbft_client_submit(c, 1 * MS, WIRE_OP_GET, "k", 1, NULL, 0, &out) >= 0);
    struct wire_msg rq;
    uint16_t r = asked(&rq);
    struct reply_spec s = ro_reply(r, &rq, "v");
    s.view = 1000001; /* primary (1000001 mod 4) = 1, not 0 */
    assert_int_equal(reply_deliver(c, &s, 2 * MS, done, 4), 1);
    pbft_out_reset(&out);
    assert_true(pbft_client_submit(c, 3 * MS, WIRE_OP_PUT, "k", 1, "v", 1, &out) >= 0);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA);
    assert_int_equal(out.msgs[0].dest_id, 0); /* view 0's primary */
    pbft_client_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_replica_one_answer),
        cmocka_unit_test(test_lanes_spread),
        cmocka_unit_test(test_silence_and_no_state_move_on),
        cmocka_unit_test(test_writes_still_ordered),
        cmocka_unit_test(test_view_not_learnt),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
