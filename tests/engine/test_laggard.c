/* Unit tests of a backup that falls behind a working group (engine/catchup.c,
 * engine/viewchange.c; docs/design.md 5.6): on a loaded machine one replica of
 * four gets less CPU than the others, its socket buffer overflows and it misses
 * a stretch of batches while the group, which needs only 2f+1 of them, goes on.
 *
 *  - A stretch shorter than the peers' logs: it must catch up from those logs
 *    (STATUS answered with PRE-PREPAREs and votes) while the load goes on, not
 *    by a state transfer per checkpoint that is old when it is installed.
 *  - A replica that can follow only by state transfer (it hears no normal-case
 *    message) while clients send it requests directly: it knows it is behind
 *    (peers that executed more told it so), so it must not suspect the primary
 *    and sit alone in a view change that nobody joins.
 *
 * The clusters run on replica_harness.c under load (rh_init_loaded: simulated
 * time, fixed seeds, closed-loop clients). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "replica_harness.h"

#define MS RH_MS

static struct rh_cluster C;

static int teardown(void **state)
{
    (void)state;
    rh_dump(&C, "teardown");
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

static void assert_converged(struct rh_cluster *c)
{
    assert_true(rh_replicas_level(c));
    uint8_t d0[32], d[32];
    store_digest_bytes(c->store[0], d0);
    for (uint16_t i = 1; i < c->n; i++) {
        store_digest_bytes(c->store[i], d);
        assert_memory_equal(d, d0, 32);
    }
    assert_true(rh_agree(c, 0xF));
}

/* ---- A short stretch missed: catch up from the logs ------------------------------ */

struct deaf {
    uint16_t who;
    uint64_t from_low;   /* deaf once replica 0's stable checkpoint reached this ... */
    uint64_t for_ns;     /* ... for this long */
    uint64_t until_ns;   /* 0: not yet */
    uint64_t level_ops;  /* operations done when it was level again (0: not yet) */
};

static bool deaf_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    struct deaf *d = arg;
    if (d->until_ns == 0 && rh_stats(c, 0)->low_watermark >= d->from_low)
        d->until_ns = c->now_ns + d->for_ns;
    return m->to == d->who && d->until_ns != 0 && c->now_ns < d->until_ns;
}

static bool level_again(struct rh_cluster *c)
{
    struct deaf *d = c->filter_arg;
    if (d->until_ns != 0 && c->now_ns >= d->until_ns && d->level_ops == 0 && rh_replicas_level(c)
        && rh_stats(c, d->who)->last_executed > 0)
        d->level_ops = c->ops_done;
    return rh_settled(c);
}

static void test_short_gap_caught_up_from_logs(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 64, .l = 128, .w = 4};
    struct rh_cluster *c = &C;
    rh_init_loaded(c, 4, 1, 8, 3, &p);
    static struct deaf d;
    /* Deaf right after a checkpoint became stable, for fewer seqs than the
     * next one is away: the peers' logs hold all it misses. */
    d = (struct deaf){.who = 3, .from_low = 2u * p.k, .for_ns = 3 * MS};
    c->filter = deaf_filter;
    c->filter_arg = &d;
    rh_workload(c, 6000, 64, 16);
    assert_true(rh_advance(c, 60000 * MS, MS, level_again));
    rh_dump(c, "short gap");
    assert_converged(c);
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(s3->status_sent > 0);
    /* It missed batches the others' logs still held: no state was fetched, and
     * it was level with the group while the load still ran. */
    assert_int_equal(s3->state_transfers, 0);
    assert_true(d.level_ops != 0);
    assert_true(d.level_ops < 6000u);
}

/* ---- Behind for good: no lonely view change ----------------------------------------- */

/* Replica 3 hears no PRE-PREPARE, PREPARE or COMMIT: it follows the group by
 * state transfer only, always a checkpoint or so behind. */
static bool no_normal_case_to_3(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    (void)arg;
    uint8_t t = rh_msg_type(m);
    return m->to == 3 && (t == WIRE_PREPREPARE || t == WIRE_PREPARE || t == WIRE_COMMIT);
}

static void test_behind_does_not_suspect(void **state)
{
    (void)state;
    struct rh_tune p = {.k = 8, .l = 16, .w = 4};
    p.request_timeout_ns = 30 * MS;
    struct rh_cluster *c = &C;
    rh_init_loaded(c, 4, 1, 4, 9, &p);
    c->filter = no_normal_case_to_3;
    /* Values over 1 KiB: every request goes to every replica, so replica 3
     * watches each one until it executes it (TOCS 2002 §4.5.2). */
    rh_workload(c, 600, 32, 1100);
    assert_true(rh_advance(c, 60000 * MS, MS, rh_workload_done));
    rh_dump(c, "behind");
    const struct pbft_replica_stats *s3 = rh_stats(c, 3);
    assert_true(s3->state_transfers >= 2);
    assert_int_equal(s3->request_timeouts, 0);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(pbft_replica_view(c->r[i]), 0);
        assert_false(pbft_replica_in_viewchange(c->r[i]));
    }
    assert_true(rh_agree(c, 0xF));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_short_gap_caught_up_from_logs, teardown),
        cmocka_unit_test_teardown(test_behind_does_not_suspect, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
