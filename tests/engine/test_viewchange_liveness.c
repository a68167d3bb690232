/* The view change's liveness additions (docs/design.md §5.5.1-5.5.2) on the
 * cluster of viewchange_fixture.c: the view-change timeout follows the waits the backups
 * measure and is off for a primary that shows itself faulty; a committed
 * replica answers a peer's duplicate vote; a replica alone in view 1 after a
 * partition heals is brought back by the primary's step-down (n = 4 and 7;
 * also from a view that executed nothing but proved dead),
 * which a feigning replica can cause only at a bounded rate and never beyond 64
 * views. test_viewchange.c's main() runs these with the rest.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "replica_harness.h"
#include "viewchange_fixture.h"

/* ---- The timeout fits the network (engine/viewchange_timer.c) ------------------------- */

/* A request sent to every replica whose PRE-PREPARE is held back for `hold`;
 * returns when every replica executed it. */
static void slow_request(uint16_t client, uint64_t ts, uint64_t hold)
{
    uint64_t t0 = C.now_ns;
    C.net.hold_types = 1u << WIRE_PREPREPARE;
    put(client, ts, "k", UINT16_MAX);
    rh_run(&C);
    rh_advance(&C, t0 + hold, MS, NULL);
    C.net.hold_types = 0;
    rh_release(&C);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->last_executed, ts);
}

void test_timeout_fits_waits(void **state)
{
    (void)state;
    up(4, 1, NULL);
    assert_int_equal(st(1)->viewchange_timeout_ns, T);
    /* Requests that wait 40 ms (under T) teach the backups their waits. */
    slow_request(0, 1, 40u * MS);
    for (uint16_t i = 1; i < 4; i++)
        assert_int_equal(st(i)->viewchange_timeout_ns, 4u * 40u * MS);
    /* So a request that waits 100 ms, twice T, is no reason to suspect. */
    slow_request(0, 2, 100u * MS);
    for (uint16_t i = 1; i < 4; i++) {
        assert_int_equal(st(i)->request_timeouts, 0);
        assert_int_equal(st(i)->viewchange_timeout_ns, 4u * 100u * MS);
        view_is(i, 0, false);
    }
    /* Never above 20 T however slow: 300 ms teaches 1 s. */
    slow_request(0, 3, 300u * MS);
    assert_int_equal(st(1)->request_timeouts, 0);
    assert_int_equal(st(1)->viewchange_timeout_ns, 20u * T);
    /* Fast requests replace the slow samples: back to T. */
    for (uint64_t ts = 4; ts < 4u + 64u; ts++) {
        put(0, ts, "k", UINT16_MAX);
        rh_run(&C);
    }
    for (uint16_t i = 1; i < 4; i++)
        assert_int_equal(st(i)->viewchange_timeout_ns, T);
    /* And then a wait of 100 ms does make the backups suspect the primary. */
    C.net.hold_types = 1u << WIRE_PREPREPARE;
    put(0, 80, "k", UINT16_MAX);
    rh_run(&C);
    rh_advance(&C, C.now_ns + T, MS, NULL);
    for (uint16_t i = 1; i < 4; i++) {
        assert_int_equal(st(i)->request_timeouts, 1);
        assert_int_equal(pbft_replica_view(C.r[i]), 1);
    }
}

/* A primary that shows itself faulty loses the fitted timeout for its view: a
 * PRE-PREPARE whose authenticator fails is something no correct primary sends. */
void test_fitted_timeout_off_for_faulty_primary(void **state)
{
    (void)state;
    up(4, 1, NULL);
    slow_request(0, 1, 40u * MS);
    assert_int_equal(st(1)->viewchange_timeout_ns, 4u * 40u * MS);
    C.net.record_type = WIRE_PREPREPARE;
    C.net.record_from = 0;
    put(0, 2, "k", 0);
    rh_run(&C);
    assert_non_null(C.net.recorded);
    uint8_t bad[BFTKV_DATAGRAM_MAX];
    memcpy(bad, C.net.recorded, C.net.recorded_len);
    bad[C.net.recorded_len - 1] ^= 1; /* the last MAC of the authenticator: replica 3's */
    rh_inject(&C, 0, 3, bad, C.net.recorded_len);
    rh_run(&C);
    assert_int_equal(st(3)->primary_misbehaviour_views, 1);
    assert_int_equal(st(3)->viewchange_timeout_ns, T);
    assert_int_equal(st(1)->viewchange_timeout_ns, 4u * 40u * MS); /* its copy was fine */
    /* A new view fits again. */
    C.net.silent = 1u << 0;
    put(0, 3, "k", UINT16_MAX);
    rh_run(&C);
    rh_advance(&C, C.now_ns + 2u * T, MS, NULL);
    assert_int_equal(pbft_replica_view(C.r[3]), 1);
    assert_int_equal(st(3)->viewchange_timeout_ns, 4u * 40u * MS);
}

/* A replica that lost one correct peer's COMMIT, beside a silent one: the
 * peers that committed have stopped retransmitting, so its own retransmission
 * must bring the missing vote back (engine/catchup.c, replica_catchup_repair_answer). */
void test_duplicate_vote_answered(void **state)
{
    (void)state;
    up(4, 1, NULL);
    C.net.silent = 1u << 2;
    C.net.cut[0] = 1u << 3;
    C.net.cut_types = 1u << WIRE_COMMIT;
    put(0, 1, "a", 0);
    rh_run(&C);
    assert_int_equal(st(0)->last_executed, 1);
    assert_int_equal(st(1)->last_executed, 1);
    assert_int_equal(st(3)->last_executed, 0); /* COMMITs of 1 and 3: not q */
    C.net.cut[0] = 0;
    rh_advance(&C, T, MS, NULL);
    assert_int_equal(st(3)->last_executed, 1);
    assert_true(st(0)->repairs_sent + st(1)->repairs_sent >= 1);
    assert_int_equal(st(0)->repairs_sent, 1); /* once per peer and slot */
    assert_true(rh_agree(&C, 0xB));
}

/* ---- A replica alone in a higher view (engine/viewchange_rejoin.c) --------------------- */

/* Cut replica `lone` off from every other replica (clients still reach it) and
 * let one request time out there: it moves alone to view 1. */
static void strand(uint16_t n, uint16_t lone)
{
    for (uint16_t i = 0; i < n; i++) {
        if (i == lone)
            continue;
        C.net.cut[i] |= 1ull << lone;
        C.net.cut[lone] |= 1ull << i;
    }
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T);
    view_is(lone, 1, true);
    for (uint16_t i = 0; i < n; i++) {
        if (i != lone)
            view_is(i, 0, false);
    }
    /* The group goes on without it; it stays alone in view 1. */
    rh_advance(&C, 4u * T, T / 4u, NULL);
    view_is(lone, 1, true);
    assert_int_equal(st(0)->stepdowns, 0);
}

/* Heal at time t; within 2 T every replica is active in the same view, with
 * the lone one back, and a new request executes at every replica. */
static void heal_and_check(uint16_t n, uint16_t lone, uint64_t t)
{
    memset(C.net.cut, 0, sizeof C.net.cut);
    rh_advance(&C, t + 2u * T, T / 8u, NULL);
    uint64_t v = pbft_replica_view(C.r[0]);
    assert_true(v >= 1);
    for (uint16_t i = 0; i < n; i++)
        view_is(i, v, false);
    uint64_t done = st(lone)->requests_executed;
    put(1, 1, "b", (uint16_t)(v % n));
    rh_run(&C);
    for (uint16_t i = 0; i < n; i++)
        assert_int_equal(st(i)->last_executed, st(0)->last_executed);
    assert_int_equal(st(lone)->requests_executed, done + 1u);
}

void test_lone_backup_rejoins(void **state)
{
    (void)state;
    up(4, 1, NULL);
    strand(4, 1);
    heal_and_check(4, 1, 4u * T);
    assert_int_equal(st(0)->stepdowns, 1);
    assert_true(rh_agree(&C, 0xF));
}

/* n = 7, f = 2: the primary and the lone replica are two, not f+1 = 3: the
 * backups follow their primary's step-down. */
void test_lone_backup_rejoins_n7(void **state)
{
    (void)state;
    up(7, 2, NULL);
    strand(7, 3);
    heal_and_check(7, 3, 4u * T);
    assert_int_equal(st(0)->stepdowns, 1);
    uint64_t joins = 0;
    for (uint16_t i = 1; i < 7; i++)
        joins += st(i)->stepdown_joins;
    assert_true(joins >= 4);
    assert_true(rh_agree(&C, 0x7F));
}

static bool correct_in_view_1(struct rh_cluster *c)
{
    for (uint16_t i = 0; i < 3; i++) {
        if (pbft_replica_view(c->r[i]) != 1 || pbft_replica_in_viewchange(c->r[i]))
            return false;
    }
    return true;
}

/* A view that cannot work: view 1, entered by a view change and executing
 * nothing, with replica 3 silent (faulty), replica 2 cut off and a batch
 * proposed. The backup left (0) never suspects -- the client sent only to the
 * primary -- so a VIEW-CHANGE(2) from the lone replica must make the primary
 * step down once view 1 has been active for a timeout, though it never
 * executed a batch; and not before. */
void test_stepdown_from_dead_view(void **state)
{
    (void)state;
    up(4, 1, NULL);
    size_t len = view_change_bare(3, 1); /* the group moves to view 1 (primary 1) */
    rh_inject(&C, 3, 0, g_msg, len);
    rh_run(&C);
    assert_true(rh_advance(&C, C.now_ns + T, MS, correct_in_view_1));
    C.net.silent = 1u << 3;
    for (uint16_t i = 0; i < 4; i++) {
        if (i != 2) {
            C.net.cut[i] |= 1ull << 2;
            C.net.cut[2] |= 1ull << i;
        }
    }
    put(0, 1, "a", 1);
    rh_run(&C);
    assert_int_equal(st(1)->last_executed, 0);
    len = view_change_bare(2, 2);
    rh_inject(&C, 2, 1, g_msg, len);
    C.net.cut[2] = 0; /* this one VIEW-CHANGE gets through */
    rh_run(&C);
    assert_int_equal(st(1)->stepdowns, 0); /* view 1 active for less than a timeout */
    rh_advance(&C, C.now_ns + T + MS, MS, NULL);
    view_is(0, 1, false);
    view_is(1, 1, false);
    memset(C.net.cut, 0, sizeof C.net.cut);
    rh_inject(&C, 2, 1, g_msg, len); /* the lone replica's retransmission */
    rh_run(&C);
    assert_int_equal(st(1)->stepdowns, 1);
    rh_advance(&C, C.now_ns + 2u * T, T / 8u, NULL);
    for (uint16_t i = 0; i < 3; i++)
        view_is(i, 2, false);
    /* View 2 works: a request executes at the three correct replicas. */
    put(1, 1, "b", 2);
    rh_run(&C);
    for (uint16_t i = 0; i < 3; i++) {
        assert_true(st(i)->requests_executed >= 1);
        assert_int_equal(st(i)->last_executed, st(2)->last_executed);
        assert_int_equal(st(i)->requests_executed, st(2)->requests_executed);
    }
    assert_true(rh_agree(&C, 0x7));
}

/* A faulty replica feigning to be alone in a higher view: one step-down per
 * primary per back-off, then none until it has passed. */
void test_stepdown_rate_limited(void **state)
{
    (void)state;
    up(4, 1, NULL);
    size_t len = view_change_bare(3, 1);
    rh_inject(&C, 3, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->stepdowns, 1);
    rh_advance(&C, T, T / 4u, NULL);
    for (uint16_t i = 0; i < 3; i++)
        view_is(i, 1, false);
    /* Only a primary whose view has executed a batch steps down. */
    len = view_change_bare(3, 5);
    rh_inject(&C, 3, 1, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(1)->stepdowns, 0);
    put(0, 1, "a", 1);
    rh_run(&C);
    /* Now at view 1's primary: a jump to 5 (primary 1 again), then to 9 at once. */
    rh_inject(&C, 3, 1, g_msg, len);
    rh_run(&C);
    rh_advance(&C, 2u * T, T / 4u, NULL);
    for (uint16_t i = 0; i < 3; i++)
        view_is(i, 5, false);
    put(0, 2, "b", 1);
    rh_run(&C);
    len = view_change_bare(3, 9);
    rh_inject(&C, 3, 1, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(1)->stepdowns, 1);
    assert_int_equal(st(1)->stepdowns_deferred, 1);
    view_is(1, 5, false);
    /* After the back-off (8 T from the step-down) the retransmission is heard. */
    rh_advance(&C, 12u * T, T / 4u, NULL);
    len = view_change_bare(3, 9);
    rh_inject(&C, 3, 1, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(1)->stepdowns, 2);
    rh_advance(&C, 14u * T, T / 4u, NULL);
    for (uint16_t i = 0; i < 3; i++)
        view_is(i, 9, false);
    put(0, 3, "c", 1);
    rh_run(&C);
    for (uint16_t i = 0; i < 3; i++)
        assert_int_equal(st(i)->requests_executed, 3);
}

/* A view too far above ours never makes the primary step down: view numbers
 * are not a resource a faulty replica may spend. */
void test_stepdown_view_span(void **state)
{
    (void)state;
    up(4, 1, NULL);
    put(0, 1, "a", 0);
    rh_run(&C);
    size_t len = view_change_bare(3, 65);
    rh_inject(&C, 3, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->stepdowns, 0);
    assert_int_equal(st(0)->stepdowns_deferred, 0);
    view_is(0, 0, false);
    len = view_change_bare(2, 64);
    rh_inject(&C, 2, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(0)->stepdowns, 0); /* f+1 = 2 above: rule 2 moves it to 64 */
    assert_int_equal(st(0)->viewchange_joins, 1);
    assert_int_equal(pbft_replica_view(C.r[0]), 64);
}

/* ---- A full FIFO of watched requests (engine/viewchange_timer.c) ---------------------- */

/* Replica 3 hears only clients: it executes nothing, so every request it watches
 * stays live and its FIFO of watches fills. */
static bool only_requests_to_3(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    (void)arg;
    return m->to == 3 && rh_msg_type(m) != WIRE_REQUEST;
}

void test_full_watch_fifo_not_rescanned(void **state)
{
    (void)state;
    struct rh_tune t = {.lanes = 4}; /* 8 clients x 4 lanes: a FIFO of 64 watches */
    up(4, 1, &t);
    C.filter = only_requests_to_3;
    uint32_t sent = 0;
    for (uint64_t ts = 1; ts <= 40; ts++) {
        for (uint16_t client = 0; client < 8; client++) {
            for (uint16_t lane = 0; lane < 4; lane++) {
                char key[16];
                snprintf(key, sizeof key, "k%u.%u", client, lane);
                rh_submit(&C, client, lane, ts, WIRE_OP_PUT, key, key, strlen(key), 0, 3);
                sent++;
            }
        }
        rh_run(&C);
    }
    assert_int_equal(st(3)->last_executed, 0);
    assert_true(st(0)->last_executed > 0); /* the others ordered what 3 relayed */
    /* 1,280 new requests, 64 watches: the FIFO was full for more than 1,200 of
     * them. One scan found nothing to free; the next waits for executions. */
    assert_true(st(3)->dropped_full >= sent - 64u);
    assert_int_equal(st(3)->watch_compactions, 1);
    /* The watches it holds still time out. */
    rh_advance(&C, C.now_ns + 3u * T, MS, NULL);
    assert_true(st(3)->request_timeouts >= 1);
}
