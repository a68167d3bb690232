/* Hand-written scenarios of the normal case on the scripted cluster fixture
 * (fixture.h): one situation per test, set up precisely -- a message dropped, a
 * replica delayed or silenced -- and the outcome checked on every replica.
 *
 * Where the engine has no mechanism yet for a situation (a replica that lost
 * protocol messages has no way to recover them in this issue: no retransmission
 * of PRE-PREPARE/PREPARE/COMMIT, no state transfer), the test checks what must
 * hold regardless (the others commit, nobody diverges) and reports the gap with
 * cmocka's skip() instead of passing silently.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/pbft.h"
#include "engine/wire.h"
#include "store/store.h"
#include "tests/sim/fixture.h"

#define STEPS 200000u
#define MS 1000000ull

static struct fixture *make(uint16_t n, uint16_t f, uint16_t clients, void (*tweak)(struct fixture_config *))
{
    struct fixture_config cfg;
    fixture_config_defaults(&cfg);
    cfg.n = n;
    cfg.f = f;
    cfg.clients = clients;
    if (tweak)
        tweak(&cfg);
    struct fixture *fx = NULL;
    assert_int_equal(fixture_create(&cfg, &fx), 0);
    return fx;
}

static void put_ok(struct fixture *fx, uint16_t client, const char *key, const char *value)
{
    struct fixture_result res;
    assert_true(fixture_do(fx, client, WIRE_OP_PUT, key, value, STEPS, &res));
    assert_int_equal(res.op, WIRE_OP_PUT);
    assert_int_equal(res.status, 0);
}

static void assert_store_has(struct fixture *fx, uint16_t replica, const char *key, const char *value)
{
    char buf[64];
    size_t vlen = 0;
    int rc = store_get(cluster_store(fixture_cluster(fx), replica), key, strlen(key), buf, sizeof buf, &vlen);
    assert_int_equal(rc, 0);
    assert_int_equal(vlen, strlen(value));
    assert_memory_equal(buf, value, vlen);
}

/* Every replica in [0, n) except `skip` executed the same digest at 1..upto. */
static void assert_same_batches(struct fixture *fx, uint16_t n, uint64_t upto, int skip)
{
    for (uint64_t s = 1; s <= upto; s++) {
        uint8_t ref[32], d[32];
        int ref_by = -1;
        for (uint16_t r = 0; r < n; r++) {
            if ((int)r == skip)
                continue;
            assert_true(fixture_exec_digest(fx, r, s, d));
            if (ref_by < 0) {
                memcpy(ref, d, 32);
                ref_by = r;
            } else {
                assert_memory_equal(ref, d, 32);
            }
        }
    }
}

/* ---- Scenarios ------------------------------------------------------------------ */

/* A PUT commits and every replica executes it, at the same sequence number, with
 * the same batch, and applies it to its store. */
static void test_put_commits_everywhere(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    put_ok(fx, 0, "a", "1");
    assert_true(fixture_step_until_committed(fx, 1, STEPS));
    assert_same_batches(fx, 4, 1, -1);
    for (uint16_t r = 0; r < 4; r++) {
        assert_store_has(fx, r, "a", "1");
        assert_int_equal(pbft_replica_stats(cluster_replica(fixture_cluster(fx), r))->requests_executed, 1);
    }
    struct fixture_result res;
    assert_true(fixture_do(fx, 0, WIRE_OP_GET, "a", NULL, STEPS, &res));
    assert_int_equal(res.status, 0);
    assert_int_equal(res.vlen, 1);
    assert_memory_equal(res.value, "1", 1);
    assert_true(fixture_do(fx, 0, WIRE_OP_DEL, "a", NULL, STEPS, &res));
    assert_int_equal(res.status, 0);
    assert_true(fixture_do(fx, 0, WIRE_OP_GET, "a", NULL, STEPS, &res));
    assert_int_equal(res.status, BFTKV_E_NOT_FOUND);
    fixture_destroy(fx);
}

/* The PRE-PREPARE to one backup is lost: the primary and the other two backups
 * are a quorum (q = 3 of 4), so the request still commits and the client gets
 * its f+1 replies. The backup that missed it can only catch up through a
 * retransmission or state transfer; the test reports whether it did. */
static void test_dropped_preprepare_still_commits(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_drop_next(fx, WIRE_PREPREPARE, 0, 3);
    put_ok(fx, 0, "k", "v");
    assert_int_equal(fixture_dropped(fx), 1);
    for (uint16_t r = 0; r < 3; r++) {
        assert_true(fixture_step_until_executed(fx, r, 1, STEPS));
        assert_store_has(fx, r, "k", "v");
    }
    assert_same_batches(fx, 3, 1, -1);
    /* More work keeps committing without replica 3. */
    put_ok(fx, 0, "k2", "v2");
    for (uint16_t r = 0; r < 3; r++)
        assert_true(fixture_step_until_executed(fx, r, 2, STEPS));
    fixture_run_for(fx, 1000 * MS);
    bool caught_up = fixture_executed(fx, 3) >= 2;
    if (caught_up)
        assert_same_batches(fx, 4, 2, -1);
    else
        assert_int_equal(fixture_executed(fx, 3), 0); /* stalled at seq 1, executed nothing out of order */
    fixture_destroy(fx);
    if (!caught_up) {
        fprintf(stderr, "GAP: a backup that missed a PRE-PREPARE never recovers it (no retransmission of "
                        "protocol messages, no state transfer yet)\n");
        skip();
    }
}

/* A silent backup (f = 1) does not stop progress. */
static void test_silent_backup_does_not_stop_progress(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_silence(fx, 2, true);
    char k[16], v[16];
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "k%d", i % 5);
        snprintf(v, sizeof v, "v%d", i);
        put_ok(fx, 0, k, v);
    }
    assert_true(fixture_step_until_committed(fx, 20, STEPS)); /* every replica but the silent one */
    assert_same_batches(fx, 4, 20, 2);
    for (uint16_t r = 0; r < 4; r++)
        if (r != 2)
            assert_store_has(fx, r, "k4", "v19");
    fixture_destroy(fx);
}

/* Two silent backups at n = 7, f = 2: still live. */
static void test_two_silent_backups_n7(void **state)
{
    (void)state;
    struct fixture *fx = make(7, 2, 2, NULL);
    fixture_silence(fx, 3, true);
    fixture_silence(fx, 6, true);
    put_ok(fx, 0, "x", "1");
    put_ok(fx, 1, "y", "2");
    put_ok(fx, 0, "x", "3");
    assert_true(fixture_step_until_committed(fx, 3, STEPS));
    for (uint16_t r = 0; r < 7; r++) {
        if (r == 3 || r == 6)
            continue;
        assert_store_has(fx, r, "x", "3");
        assert_store_has(fx, r, "y", "2");
    }
    fixture_destroy(fx);
}

/* A backup whose inbound messages are held for 50 ms catches up when they are
 * released, and executes the same batches as the others. */
static void test_delayed_backup_catches_up(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_delay_replica(fx, 1, 50 * MS);
    char k[16], v[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i % 3);
        snprintf(v, sizeof v, "v%d", i);
        put_ok(fx, 0, k, v);
    }
    assert_true(fixture_now(fx) < 50 * MS); /* the others committed without it */
    assert_int_equal(fixture_executed(fx, 1), 0);
    assert_true(fixture_step_until_executed(fx, 1, 10, STEPS));
    assert_true(fixture_now(fx) >= 50 * MS);
    assert_same_batches(fx, 4, 10, -1);
    assert_store_has(fx, 1, "k0", "v9");
    fixture_destroy(fx);
}

/* Replica 2 loses the COMMITs of replicas 1 and 3 for the first batch: it has
 * its own and the primary's, 2 < q = 3. The client still completes (three
 * replicas committed). Replica 2 can recover only by a retransmission. */
static void test_lost_commits_recovered(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_drop_next(fx, WIRE_COMMIT, 1, 2);
    fixture_drop_next(fx, WIRE_COMMIT, 3, 2);
    put_ok(fx, 0, "c", "1");
    assert_int_equal(fixture_dropped(fx), 2);
    for (uint16_t r = 0; r < 4; r++)
        if (r != 2)
            assert_true(fixture_step_until_executed(fx, r, 1, STEPS));
    fixture_run_for(fx, 1000 * MS); /* client and replica timers, if any */
    bool recovered = fixture_executed(fx, 2) >= 1;
    if (recovered)
        assert_same_batches(fx, 4, 1, -1);
    fixture_destroy(fx);
    if (!recovered) {
        fprintf(stderr, "GAP: a replica that lost COMMITs stays uncommitted at that slot forever (no "
                        "retransmission of protocol messages)\n");
        skip();
    }
}

static void small_checkpoints(struct fixture_config *cfg)
{
    cfg->checkpoint_interval = 4;
    cfg->log_window = 8;
    cfg->window = 2;
}

/* With K = 4, twelve batches make three checkpoints; each becomes stable on
 * every replica (q matching signed CHECKPOINTs) and the low watermark moves. */
static void test_checkpoint_stable_and_watermark_advances(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, small_checkpoints);
    char k[16], v[16];
    for (int i = 0; i < 12; i++) { /* one lane: one request per batch */
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        put_ok(fx, 0, k, v);
    }
    assert_true(fixture_step_until_committed(fx, 12, STEPS));
    fixture_run_for(fx, 10 * MS);
    for (uint16_t r = 0; r < 4; r++) {
        uint64_t last = 0;
        assert_true(fixture_checkpoints(fx, r, &last) >= 3);
        assert_int_equal(last, 12);
        const struct pbft_replica_stats *st = pbft_replica_stats(cluster_replica(fixture_cluster(fx), r));
        assert_true(st->checkpoints_stable >= 3);
        assert_int_equal(st->low_watermark, 12);
    }
    /* Past the first log window (L = 8): only possible because h moved. */
    for (int i = 12; i < 30; i++) {
        snprintf(k, sizeof k, "k%d", i);
        put_ok(fx, 0, k, "w");
    }
    assert_true(fixture_step_until_committed(fx, 30, STEPS));
    assert_same_batches(fx, 4, 30, -1);
    fixture_destroy(fx);
}

static void readonly_clients(struct fixture_config *cfg)
{
    cfg->readonly = true;
}

/* A read-only GET completes on the fast path: q matching replies, no ordering. */
static void test_readonly_get_completes(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, readonly_clients);
    put_ok(fx, 0, "r", "42");
    assert_true(fixture_step_until_committed(fx, 1, STEPS));
    uint64_t before = fixture_executed(fx, 0);
    struct fixture_result res;
    assert_true(fixture_do(fx, 0, WIRE_OP_GET, "r", NULL, STEPS, &res));
    assert_int_equal(res.status, 0);
    assert_int_equal(res.vlen, 2);
    assert_memory_equal(res.value, "42", 2);
    assert_int_equal(pbft_client_stats(cluster_client(fixture_cluster(fx), 0))->readonly_fallbacks, 0);
    uint16_t answered = 0;
    for (uint16_t r = 0; r < 4; r++)
        answered = (uint16_t)(answered +
                              (pbft_replica_stats(cluster_replica(fixture_cluster(fx), r))->readonly_answered > 0));
    assert_true(answered >= pbft_quorum(4, 1));
    assert_int_equal(fixture_executed(fx, 0), before); /* no batch was ordered for it */
    /* An absent key reads NOT_FOUND on the fast path too. */
    assert_true(fixture_do(fx, 0, WIRE_OP_GET, "nope", NULL, STEPS, &res));
    assert_int_equal(res.status, BFTKV_E_NOT_FOUND);
    fixture_destroy(fx);
}

/* A read-only GET when one replica is silent: q = 3 of the 4 still answer. */
static void test_readonly_get_with_silent_backup(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, readonly_clients);
    put_ok(fx, 0, "r", "7");
    fixture_silence(fx, 3, true);
    struct fixture_result res;
    assert_true(fixture_do(fx, 0, WIRE_OP_GET, "r", NULL, STEPS, &res));
    assert_int_equal(res.status, 0);
    assert_memory_equal(res.value, "7", 1);
    fixture_destroy(fx);
}

/* The network duplicates the client's REQUEST to the primary: it is ordered and
 * executed once; the replicas' reply caches answer any retransmission. */
static void test_duplicate_request_executed_once(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_duplicate_next(fx, WIRE_REQUEST, fixture_client_node(fx, 0), 0);
    put_ok(fx, 0, "d", "1");
    assert_int_equal(fixture_duplicated(fx), 1);
    fixture_run_for(fx, 10 * MS);
    /* Duplicate it again after execution: the reply cache answers. */
    fixture_duplicate_next(fx, WIRE_REQUEST, fixture_client_node(fx, 0), 0);
    put_ok(fx, 0, "d", "2");
    fixture_run_for(fx, 10 * MS);
    for (uint16_t r = 0; r < 4; r++) {
        const struct pbft_replica_stats *st = pbft_replica_stats(cluster_replica(fixture_cluster(fx), r));
        assert_int_equal(st->requests_executed, 2);
        assert_store_has(fx, r, "d", "2");
    }
    fixture_destroy(fx);
}

/* A client whose REQUEST to the primary is lost retransmits to every replica;
 * the backups relay it to the primary and it commits. */
static void test_lost_request_retransmitted(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_drop_next(fx, WIRE_REQUEST, fixture_client_node(fx, 0), 0);
    put_ok(fx, 0, "lost", "found");
    assert_true(fixture_now(fx) >= 20 * MS); /* after the client's retransmission timeout */
    assert_true(pbft_client_stats(cluster_client(fixture_cluster(fx), 0))->retransmissions >= 1);
    assert_true(fixture_step_until_committed(fx, 1, STEPS));
    for (uint16_t r = 0; r < 4; r++)
        assert_store_has(fx, r, "lost", "found");
    fixture_destroy(fx);
}

/* A backup that lacks a large request of a batch the others commit --
 * the client's copy and the relays before execution lost, and it sends no
 * STATUS -- stalls on the PRE-PREPARE; the client has its replies and sends
 * nothing more. The backup fetches the request by digest (FETCH, part REQUEST)
 * from a replica that voted for the batch, which still holds it on its done
 * list though it executed it, and executes the batch like the others. */
static void test_stalled_backup_fetches_large_request(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    fixture_drop(fx, WIRE_REQUEST, fixture_client_node(fx, 0), 3, FIXTURE_FOREVER);
    for (uint32_t r = 0; r < 3; r++)
        fixture_drop_next(fx, WIRE_REQUEST, r, 3); /* the relay before execution */
    fixture_drop(fx, WIRE_STATUS, 3, FIXTURE_ANY, FIXTURE_FOREVER);
    static char big[2001];
    memset(big, 'v', sizeof big - 1u); /* header + body above BFTKV_INLINE_REQUEST_MAX */
    put_ok(fx, 0, "big", big);
    assert_true(fixture_step_until_executed(fx, 3, 1, STEPS));
    assert_same_batches(fx, 4, 1, -1);
    assert_true(fixture_sent(fx, WIRE_FETCH, 3) >= 1);
    static char got[sizeof big];
    for (uint16_t r = 0; r < 4; r++) {
        size_t vlen = 0;
        assert_int_equal(store_get(cluster_store(fixture_cluster(fx), r), "big", 3, got, sizeof got, &vlen), 0);
        assert_int_equal(vlen, sizeof big - 1u);
        assert_memory_equal(got, big, vlen);
    }
    fixture_destroy(fx);
}

/* A PRE-PREPARE of a new view that reaches a backup before the NEW-VIEW (here:
 * the first NEW-VIEW to replica 3 is lost, it gets the primary's answer to its
 * VIEW-CHANGE retransmission later) is kept and accepted on entering the view;
 * the primary's retransmissions of it never arrive, so without the kept copy
 * replica 3 could not prepare and, with replica 0 silent, nothing commits. */
static void test_preprepare_before_new_view_kept(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 1, NULL);
    put_ok(fx, 0, "a", "1");
    fixture_silence(fx, 0, true);
    fixture_drop_next(fx, WIRE_NEW_VIEW, 1, 3);
    /* The new primary's first two PRE-PREPAREs (seq 1 re-proposed: no stable
     * checkpoint yet; seq 2, "b") reach replica 3; none after them. */
    fixture_drop_after(fx, WIRE_PREPREPARE, 1, 3, 2);
    put_ok(fx, 0, "b", "2");
    assert_true(fixture_step_until_executed(fx, 3, 2, STEPS));
    assert_same_batches(fx, 4, 2, 0);
    for (uint16_t r = 1; r < 4; r++)
        assert_store_has(fx, r, "b", "2");
    for (uint16_t r = 1; r < 4; r++) /* no second view change was needed */
        assert_int_equal(pbft_replica_view(cluster_replica(fixture_cluster(fx), r)), 1);
    fixture_destroy(fx);
}

static void pipelined(struct fixture_config *cfg)
{
    cfg->lanes = 8;
    cfg->window = 2;
}

/* Eight lanes of three clients: requests queue at the primary while batches are
 * in flight, so batches hold several requests, and all replicas agree. */
static void test_batches_grow_under_load(void **state)
{
    (void)state;
    struct fixture *fx = make(4, 1, 3, pipelined);
    char k[16], v[16];
    for (uint16_t c = 0; c < 3; c++) {
        for (int i = 0; i < 8; i++) {
            snprintf(k, sizeof k, "c%uk%d", c, i);
            snprintf(v, sizeof v, "%d", i);
            assert_true(fixture_submit(fx, c, WIRE_OP_PUT, k, v) >= 0);
        }
    }
    for (uint16_t c = 0; c < 3; c++)
        for (int i = 0; i < 8; i++)
            assert_true(fixture_run_until_complete(fx, c, STEPS, NULL));
    fixture_run_for(fx, 10 * MS);
    const struct pbft_replica_stats *st = pbft_replica_stats(cluster_replica(fixture_cluster(fx), 0));
    assert_int_equal(st->requests_executed, 24);
    assert_true(st->batches_executed < 24);
    assert_same_batches(fx, 4, fixture_executed(fx, 0), -1);
    fixture_destroy(fx);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_commits_everywhere),
        cmocka_unit_test(test_dropped_preprepare_still_commits),
        cmocka_unit_test(test_silent_backup_does_not_stop_progress),
        cmocka_unit_test(test_two_silent_backups_n7),
        cmocka_unit_test(test_delayed_backup_catches_up),
        cmocka_unit_test(test_lost_commits_recovered),
        cmocka_unit_test(test_checkpoint_stable_and_watermark_advances),
        cmocka_unit_test(test_readonly_get_completes),
        cmocka_unit_test(test_readonly_get_with_silent_backup),
        cmocka_unit_test(test_duplicate_request_executed_once),
        cmocka_unit_test(test_lost_request_retransmitted),
        cmocka_unit_test(test_stalled_backup_fetches_large_request),
        cmocka_unit_test(test_preprepare_before_new_view_kept),
        cmocka_unit_test(test_batches_grow_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
