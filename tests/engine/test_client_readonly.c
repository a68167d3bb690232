/* Unit tests of the client's read-only path (engine/client.c,
 * engine/client_readonly.c; TOCS 2002 §5.1.3; docs/design.md §5.3): one client of
 * a group of NREP = 4 replicas (f = 1, q = 3), driven with REPLY messages built
 * with the replicas' keys (client_fixture.c). Checked: q matching read-only
 * answers complete a GET and an ordered answer does not count; disagreement that
 * makes q unreachable starts a second round with a fresh timestamp at once, and
 * falls back to ordering when that one disagrees too; silence costs a re-ask of
 * the silent, a second round, its re-ask, then ordering; and once n - f replicas
 * answered without q agreeing, the slowest f get a grace as long as the answers
 * took (at least 1/16 of the timeout), then a re-ask, not ordering.
 * Stale replicas and Byzantine answers: test_client_stale.c.
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

static void test_readonly_quorum(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    cfg.readonly_fast_path = true;
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = submit(c, WIRE_OP_GET, "k", NULL);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
    struct wire_msg m = out_request(0);
    assert_int_equal(m.u.request.rflags, WIRE_REQ_READONLY);
    uint64_t ts = m.h.seq;

    struct reply_spec s = spec(0, (uint16_t)lane, ts, "val", true);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.replica = 1;
    s.full = false;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0); /* f+1 is not q */
    /* An ordered-path reply with the same timestamp is not a read-only answer. */
    s.replica = 2;
    s.readonly = false;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 1);
    assert_memory_equal(done[0].value, "val", 3);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    pbft_client_destroy(c);
}

static void test_readonly_disagreement_falls_back(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    cfg.readonly_fast_path = true;
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    int lane = submit(c, WIRE_OP_GET, "k", NULL);
    uint64_t ts = out_request(0).h.seq;
    pbft_out_reset(&out);

    struct reply_spec s = spec(0, (uint16_t)lane, ts, "old", true);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    s = spec(1, (uint16_t)lane, ts, "new", true);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 1, done, 4), 0);
    assert_int_equal(out.nmsgs, 0); /* 1 + 1 + 2 unanswered can still make q = 3 */
    s.replica = 2;
    s.result = "newer";
    s.rlen = 5;
    assert_int_equal(reply_deliver(c, &s, 2, done, 4), 0);
    /* Best class 1, one replica left: q is out of reach. A second read-only round,
     * fresh timestamp, to every replica -- a write racing the read may be done. */
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    assert_int_equal(pbft_client_stats(c)->readonly_retries, 1);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
    struct wire_msg m1 = out_request(0);
    assert_int_equal(m1.u.request.rflags, WIRE_REQ_READONLY);
    assert_true(m1.h.seq > ts);
    uint64_t ts1 = m1.h.seq;
    pbft_out_reset(&out);
    /* It disagrees again: the GET is ordered. */
    s = spec(0, (uint16_t)lane, ts1, "old", true);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    s = spec(1, (uint16_t)lane, ts1, "new", true);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    s.replica = 2;
    s.result = "newer";
    s.rlen = 5;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 1);
    assert_int_equal(pbft_client_stats(c)->readonly_retries, 1);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_REPLICA);
    assert_int_equal(out.msgs[0].dest_id, 0);
    struct wire_msg m = out_request(0);
    assert_int_equal(m.u.request.rflags, 0);
    assert_int_equal(m.u.request.op, WIRE_OP_GET);
    assert_int_equal(m.u.request.lane, (uint16_t)lane);
    assert_true(m.h.seq > ts1);
    uint64_t ts2 = m.h.seq;

    /* Late read-only answers for an old timestamp are ignored. */
    s = spec(3, (uint16_t)lane, ts, "old", true);
    s.readonly = true;
    assert_int_equal(reply_deliver(c, &s, 3, done, 4), 0);
    assert_true(pbft_client_stats(c)->replies_ignored >= 1);
    /* The ordered answers complete it. */
    s = spec(0, (uint16_t)lane, ts2, "new", true);
    assert_int_equal(reply_deliver(c, &s, 4, done, 4), 0);
    s.replica = 3;
    s.full = false;
    assert_int_equal(reply_deliver(c, &s, 4, done, 4), 1);
    assert_memory_equal(done[0].value, "new", 3);
    assert_int_equal(done[0].timestamp, ts2);
    pbft_client_destroy(c);
}

/* Each replica of the request's re-ask, in order, for the silent ones only. */
static void assert_reask(uint64_t ts, const uint16_t *to, uint32_t k)
{
    assert_int_equal(out.nmsgs, k);
    for (uint32_t i = 0; i < k; i++) {
        assert_int_equal(out.msgs[i].dest_kind, PBFT_DEST_REPLICA);
        assert_int_equal(out.msgs[i].dest_id, to[i]);
        struct wire_msg m = out_request(i);
        assert_int_equal(m.h.seq, ts);
        assert_int_equal(m.u.request.rflags, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    }
}

/* Nobody answers: after the wait (the whole timeout while no answer time is
 * known) every replica is asked again, same timestamp; then a second round with
 * a fresh one, its re-ask, and only then ordering. */
static void test_readonly_timeout_falls_back(void **state)
{
    (void)state;
    struct pbft_client_config cfg = cfg_default();
    cfg.readonly_fast_path = true;
    struct pbft_client *c = client_new(&cfg);
    struct pbft_completion done[4];
    const uint16_t all[NREP] = { 0, 1, 2, 3 };
    int lane = pbft_client_submit(c, 100, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    assert_true(lane >= 0);
    uint64_t ts = out_request(0).h.seq;
    assert_int_equal(pbft_client_next_deadline(c), 100 + TIMEOUT_NS);
    pbft_out_reset(&out);
    assert_int_equal(tick(c, 100 + TIMEOUT_NS - 1, done, 4), 0);
    assert_int_equal(out.nmsgs, 0);
    assert_int_equal(tick(c, 100 + TIMEOUT_NS, done, 4), 0);
    assert_reask(ts, all, NREP);
    assert_int_equal(pbft_client_stats(c)->readonly_resends, 1);
    assert_int_equal(pbft_client_next_deadline(c), 100 + 2u * TIMEOUT_NS);
    pbft_out_reset(&out);
    assert_int_equal(tick(c, 100 + 2u * TIMEOUT_NS, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->readonly_retries, 1);
    assert_int_equal(out.nmsgs, 1);
    assert_int_equal(out.msgs[0].dest_kind, PBFT_DEST_ALL_REPLICAS);
    uint64_t ts1 = out_request(0).h.seq;
    assert_true(ts1 > ts);
    assert_int_equal(out_request(0).u.request.rflags, WIRE_REQ_READONLY);
    pbft_out_reset(&out);
    assert_int_equal(tick(c, 100 + 3u * TIMEOUT_NS, done, 4), 0);
    assert_reask(ts1, all, NREP);
    pbft_out_reset(&out);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    assert_int_equal(tick(c, 100 + 4u * TIMEOUT_NS, done, 4), 0);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 1);
    assert_int_equal(pbft_client_stats(c)->readonly_timeouts, 1);
    assert_int_equal(out.nmsgs, 1);
    struct wire_msg m = out_request(0);
    assert_int_equal(m.u.request.rflags, 0);
    assert_true(m.h.seq > ts1);
    assert_int_equal(pbft_client_next_deadline(c), 100 + 5u * TIMEOUT_NS);
    pbft_client_destroy(c);
}

/* ---- The grace for the slowest f ------------------------------------- */

static struct pbft_client *ro_client(uint64_t timeout_ns)
{
    struct pbft_client_config cfg = cfg_default();
    cfg.readonly_fast_path = true;
    cfg.retransmit_timeout_ns = timeout_ns;
    return client_new(&cfg);
}

static struct reply_spec ro_spec(uint16_t replica, uint16_t lane, uint64_t ts, const char *result)
{
    struct reply_spec s = spec(replica, lane, ts, result, true);
    s.readonly = true;
    return s;
}

/* Three of four answered, two agree, the fourth is silent (behind, or its
 * reply lost). The client waits for it as long again as the three took -- not
 * the whole retransmission timeout -- then asks it again instead of ordering the
 * GET; its answer to the re-ask completes the read. */
static void test_readonly_slowest_f_get_a_grace(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client(100 * MS);
    struct pbft_completion done[4];
    int lane = pbft_client_submit(c, 0, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    uint64_t ts = out_request(0).h.seq;
    assert_int_equal(pbft_client_next_deadline(c), 100 * MS);
    pbft_out_reset(&out);
    struct reply_spec s = ro_spec(0, (uint16_t)lane, ts, "new");
    assert_int_equal(reply_deliver(c, &s, 1 * MS, done, 4), 0);
    s = ro_spec(1, (uint16_t)lane, ts, "new");
    assert_int_equal(reply_deliver(c, &s, 2 * MS, done, 4), 0);
    assert_int_equal(pbft_client_next_deadline(c), 100 * MS); /* n - f not in yet */
    s = ro_spec(2, (uint16_t)lane, ts, "old");
    assert_int_equal(reply_deliver(c, &s, 3 * MS, done, 4), 0);
    assert_int_equal(out.nmsgs, 0); /* replica 3 may still make "new" q */
    assert_int_equal(pbft_client_next_deadline(c), 3 * MS + 100 * MS / 16u); /* as long again, at least 1/16 */
    assert_int_equal(tick(c, 3 * MS + 100 * MS / 16u - 1u, done, 4), 0);
    assert_int_equal(out.nmsgs, 0);
    assert_int_equal(tick(c, 3 * MS + 100 * MS / 16u, done, 4), 0);
    const uint16_t silent[1] = { 3 };
    assert_reask(ts, silent, 1);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    assert_int_equal(pbft_client_stats(c)->readonly_resends, 1);
    s = ro_spec(3, (uint16_t)lane, ts, "new");
    assert_int_equal(reply_deliver(c, &s, 5 * MS, done, 4), 1);
    assert_memory_equal(done[0].value, "new", 3);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    assert_int_equal(pbft_client_stats(c)->readonly_timeouts, 0);
    pbft_client_destroy(c);
}

/* The grace never lengthens the wait, and a late fourth answer that makes q
 * within it completes the read. */
static void test_readonly_grace_then_answer(void **state)
{
    (void)state;
    struct pbft_client *c = ro_client(100 * MS);
    struct pbft_completion done[4];
    int lane = pbft_client_submit(c, 0, WIRE_OP_GET, "k", 1, NULL, 0, &out);
    uint64_t ts = out_request(0).h.seq;
    pbft_out_reset(&out);
    struct reply_spec s = ro_spec(0, (uint16_t)lane, ts, "new");
    assert_int_equal(reply_deliver(c, &s, 60 * MS, done, 4), 0);
    s = ro_spec(1, (uint16_t)lane, ts, "old");
    assert_int_equal(reply_deliver(c, &s, 60 * MS, done, 4), 0);
    s = ro_spec(2, (uint16_t)lane, ts, "new");
    assert_int_equal(reply_deliver(c, &s, 60 * MS, done, 4), 0);
    assert_int_equal(pbft_client_next_deadline(c), 100 * MS); /* 60 ms more would pass it */
    s = ro_spec(3, (uint16_t)lane, ts, "new");
    assert_int_equal(reply_deliver(c, &s, 61 * MS, done, 4), 1);
    assert_memory_equal(done[0].value, "new", 3);
    assert_int_equal(pbft_client_stats(c)->readonly_fallbacks, 0);
    pbft_client_destroy(c);
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readonly_quorum),
        cmocka_unit_test(test_readonly_disagreement_falls_back),
        cmocka_unit_test(test_readonly_timeout_falls_back),
        cmocka_unit_test(test_readonly_slowest_f_get_a_grace),
        cmocka_unit_test(test_readonly_grace_then_answer),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
