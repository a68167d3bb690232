/* Scripted and random scenarios of the view change (engine/viewchange.c,
 * engine/newview.c; TOCS 2002 §4.4-§4.5) on the in-memory cluster of
 * replica_harness.c (its network rules and clock). Checked: a
 * silent primary is replaced and its pending request completes in view 1; a
 * batch prepared in view 0 keeps its seq in view 1 (A1/A2) and a gap becomes a
 * null batch (B); two faulty primaries in a row (n = 7, f = 2); the wait for a
 * NEW-VIEW doubles per failure; a NEW-VIEW whose choice differs from the
 * recomputation is rejected; f+1 VIEW-CHANGEs make a replica join, one does
 * not; the timeout follows the waits the backups measure; a replica alone in view 1 after a partition heals is brought
 * back by the primary's step-down (n = 4 and 7), which a feigning replica can cause only at a bounded rate; P survives
 * two view changes and the injected PBFT_BUG_FORGET_P and early-execution bugs are caught; and a random schedule with
 * primary faults that must keep agreement. The selection rule on hand-made VIEW-CHANGEs and the codec's checks are in
 * test_viewchange_select.c, the shared cluster in viewchange_fixture.c; main() here runs all of them as one cmocka
 * group.
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
#include "engine/viewchange.h"
#include "replica_harness.h"
#include "viewchange_fixture.h"

/* ---- Helpers ------------------------------------------------------------------------ */

/* Replies to (client, ts) from replicas the filter does not silence (the
 * harness hands every reply to the client directly). */
static size_t replies(uint16_t client, uint64_t ts)
{
    const struct rh_reply *rp[64];
    size_t k = rh_replies_for(&C, client, ts, rp, 64), heard = 0;
    for (size_t i = 0; i < k && i < 64; i++)
        heard += (C.net.silent >> rp[i]->replica) & 1u ? 0u : 1u;
    return heard;
}

/* The batch digest of the last recorded PRE-PREPARE. */
static void recorded_digest(uint8_t d[32])
{
    assert_non_null(C.net.recorded);
    memcpy(d, C.net.recorded + WIRE_HEADER_SIZE, 32);
}

/* ---- A silent primary ---------------------------------------------------------------- */

static void test_silent_primary(void **state)
{
    (void)state;
    up(4, 1, NULL);
    C.net.silent = 1u << 0;
    put(0, 1, "a", 0);
    rh_run(&C);
    assert_int_equal(replies(0, 1), 0);
    /* The client retransmits to everyone; the backups watch and relay it. */
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    for (uint16_t i = 1; i < 4; i++)
        assert_true(pbft_replica_next_deadline(C.r[i]) <= T);
    rh_tick_run(&C, T - 1u);
    for (uint16_t i = 1; i < 4; i++)
        view_is(i, 0, false);
    rh_tick_run(&C, T);
    for (uint16_t i = 1; i < 4; i++) {
        view_is(i, 1, false);
        assert_int_equal(st(i)->request_timeouts, 1);
        assert_int_equal(st(i)->viewchanges, 1);
        assert_int_equal(st(i)->requests_executed, 1);
        assert_int_equal(st(i)->last_executed, 1);
    }
    assert_true(pbft_replica_is_primary(C.r[1]));
    assert_int_equal(replies(0, 1), 3);
    for (size_t i = 0; i < C.nreplies; i++)
        assert_int_equal(C.replies[i].view, 1);
    /* The new view works as normal: straight to its primary. */
    put(1, 1, "b", 1);
    rh_run(&C);
    assert_int_equal(replies(1, 1), 3);
    for (uint16_t i = 1; i < 4; i++)
        assert_int_equal(st(i)->last_executed, 2);
    assert_true(rh_agree(&C, 0xE));
}

/* ---- What survives a view change (TOCS 2002 §4.5.1) ----------------------------------- */

static void test_prepared_survives_gap_is_null(void **state)
{
    (void)state;
    /* One batch per request as it arrives, even with batches in flight: a batch
     * limit of W requests keeps the primary from holding the next one back
     * (engine/preprepare.c, batch_worth_proposing). */
    struct rh_tune t = {.batch_requests = 8, .w = 8};
    up(4, 1, &t);
    /* View 0: nothing commits; seq 2's PRE-PREPARE reaches nobody. */
    C.net.drop_types = 1u << WIRE_COMMIT;
    C.net.drop_pp_seq = 2;
    C.net.record_type = WIRE_PREPREPARE;
    C.net.record_from = 0;
    uint8_t d1[32], d3[32];
    put(0, 1, "a", 0);
    rh_run(&C);
    recorded_digest(d1);
    put(1, 1, "b", 0);
    rh_run(&C);
    put(2, 1, "c", 0);
    rh_run(&C);
    recorded_digest(d3);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->last_executed, 0);
    /* The primary falls silent; the clients retransmit to everyone. */
    rh_net_clear(&C);
    C.net.silent = 1u << 0;
    put(0, 1, "a", UINT16_MAX);
    put(1, 1, "b", UINT16_MAX);
    put(2, 1, "c", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T);
    for (uint16_t i = 1; i < 4; i++) {
        view_is(i, 1, false);
        const uint8_t *e1 = rh_exec_digest(&C, i, 1), *e2 = rh_exec_digest(&C, i, 2), *e3 = rh_exec_digest(&C, i, 3);
        assert_non_null(e1);
        assert_non_null(e2);
        assert_non_null(e3);
        assert_memory_equal(e1, d1, 32);     /* A1, A2: prepared at q */
        assert_memory_equal(e2, g_null, 32); /* B: a gap */
        assert_memory_equal(e3, d3, 32);
        /* b was never pre-prepared at a backup: the new primary's next batch. */
        assert_int_equal(st(i)->last_executed, 4);
        assert_int_equal(st(i)->requests_executed, 3);
    }
    assert_int_equal(replies(0, 1), 3);
    assert_int_equal(replies(1, 1), 3);
    assert_int_equal(replies(2, 1), 3);
    assert_true(rh_agree(&C, 0xE));
}

/* ---- Two faulty primaries in a row (n = 7, f = 2) -------------------------------------- */

static void test_consecutive_faulty_primaries(void **state)
{
    (void)state;
    up(7, 2, NULL);
    C.net.silent = (1u << 0) | (1u << 1);
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T);
    for (uint16_t i = 2; i < 7; i++)
        view_is(i, 1, true);
    rh_tick_run(&C, 2u * T - 1u);
    for (uint16_t i = 2; i < 7; i++)
        view_is(i, 1, true);
    rh_tick_run(&C, 2u * T);
    for (uint16_t i = 2; i < 7; i++) {
        view_is(i, 2, false);
        assert_int_equal(st(i)->request_timeouts, 1);
        assert_int_equal(st(i)->viewchange_timeouts, 1);
        assert_int_equal(st(i)->viewchanges, 1);
        assert_int_equal(st(i)->requests_executed, 1);
    }
    assert_true(pbft_replica_is_primary(C.r[2]));
    assert_int_equal(replies(0, 1), 5);
    assert_true(rh_agree(&C, 0x7C));
}

/* ---- The wait for NEW-VIEW doubles (TOCS 2002 §4.5.2, rule 1) --------------------------- */

static void test_timer_doubles(void **state)
{
    (void)state;
    up(4, 1, NULL);
    C.net.silent = 1u << 0;
    C.net.drop_types = 1u << WIRE_NEW_VIEW; /* no view change completes at replica 3 */
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T); /* q VIEW-CHANGEs for view 1 at once: wait T */
    view_is(3, 1, true);
    rh_tick_run(&C, 2u * T - 1u);
    view_is(3, 1, true);
    rh_tick_run(&C, 2u * T); /* view 2, wait 2T */
    view_is(3, 2, true);
    assert_int_equal(st(3)->viewchange_timeouts, 1);
    rh_tick_run(&C, 4u * T - 1u);
    view_is(3, 2, true);
    rh_tick_run(&C, 4u * T); /* view 3, of which replica 3 is the primary */
    assert_int_equal(pbft_replica_view(C.r[3]), 3);
    assert_int_equal(st(3)->viewchange_timeouts, 2);
    /* Let NEW-VIEWs through: the others' VIEW-CHANGE retransmissions fetch it. */
    C.net.drop_types = 0;
    rh_advance(&C, 6u * T, T / 8u, NULL);
    for (uint16_t i = 1; i < 4; i++) {
        view_is(i, 3, false);
        assert_int_equal(st(i)->requests_executed, 1);
    }
    assert_true(pbft_replica_is_primary(C.r[3]));
    assert_true(rh_agree(&C, 0xE));
}

/* ---- A NEW-VIEW that is not the recomputed choice -------------------------------------- */

static void test_newview_wrong_choice_rejected(void **state)
{
    (void)state;
    up(4, 1, NULL);
    C.net.drop_types = 1u << WIRE_COMMIT;
    C.net.record_type = WIRE_PREPREPARE;
    put(0, 1, "a", 0);
    rh_run(&C);
    uint8_t d1[32];
    recorded_digest(d1);
    rh_net_clear(&C);
    C.net.silent = 1u << 0;
    C.net.drop_types = 1u << WIRE_NEW_VIEW;
    C.net.record_type = WIRE_NEW_VIEW;
    C.net.record_from = 1;
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T);
    assert_non_null(C.net.recorded);
    size_t len = C.net.recorded_len;
    uint8_t *good = malloc(len), *bad = malloc(len);
    assert_non_null(good);
    assert_non_null(bad);
    memcpy(good, C.net.recorded, len);
    struct wire_msg nv;
    rh_decode(&C, good, len, &nv);
    assert_int_equal(nv.h.type, WIRE_NEW_VIEW);
    assert_int_equal(nv.h.view, 1);
    assert_int_equal(nv.h.seq, 0);
    assert_int_equal(nv.u.nv.nvc, 3);
    assert_int_equal(nv.u.nv.nch, 1);
    const uint8_t *c0;
    uint8_t xf;
    wire_nv_choice(&nv, 0, &c0, &xf);
    assert_memory_equal(c0, d1, 32);
    assert_int_equal(xf, 0);
    size_t choice_off = (size_t)(c0 - good);
    C.net.drop_types = 0;

    /* The primary claims a null batch at seq 1, re-signed with its own key. */
    memcpy(bad, good, len);
    memcpy(bad + choice_off, g_null, 32);
    view_change_resign(1, bad, len);
    rh_inject(&C, 1, 2, bad, len);
    rh_inject(&C, 1, 3, bad, len);
    rh_run(&C);
    for (uint16_t i = 2; i < 4; i++) {
        view_is(i, 1, true);
        assert_int_equal(st(i)->newview_rejected, 1);
    }
    /* Another checkpoint digest. */
    memcpy(bad, good, len);
    bad[WIRE_HEADER_SIZE] ^= 1;
    view_change_resign(1, bad, len);
    rh_inject(&C, 1, 2, bad, len);
    rh_run(&C);
    assert_int_equal(st(2)->newview_rejected, 2);
    /* A NEW-VIEW from a replica that is not view 1's primary. */
    memcpy(bad, good, len);
    bad[6] = 3; /* sender */
    view_change_resign(3, bad, len);
    rh_inject(&C, 3, 2, bad, len);
    rh_run(&C);
    assert_int_equal(st(2)->drops.count[WIRE_DROP_BAD_SENDER], 1);
    view_is(2, 1, true);
    /* A bad signature. */
    memcpy(bad, good, len);
    bad[len - 1] ^= 1;
    rh_inject(&C, 1, 2, bad, len);
    rh_run(&C);
    assert_int_equal(st(2)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    view_is(2, 1, true);
    /* The real one is accepted. */
    rh_inject(&C, 1, 2, good, len);
    rh_inject(&C, 1, 3, good, len);
    rh_run(&C);
    for (uint16_t i = 2; i < 4; i++) {
        view_is(i, 1, false);
        assert_int_equal(st(i)->viewchanges, 1);
        assert_int_equal(st(i)->newview_rejected, i == 2 ? 2 : 1);
    }
    free(good);
    free(bad);
}

/* ---- Joining on f+1 VIEW-CHANGEs, not on fewer (TOCS 2002 §4.5.2, rules 2, 3) ---------- */

static void test_f_plus_1_join(void **state)
{
    (void)state;
    up(4, 1, NULL);
    C.net.deaf = 1u << 0; /* the primary never hears of the request */
    put(0, 1, "a", 1);
    put(0, 1, "a", 2);
    rh_run(&C);
    rh_tick_run(&C, T);
    for (uint16_t i = 1; i < 4; i++)
        view_is(i, 1, false);
    assert_int_equal(st(1)->request_timeouts, 1);
    assert_int_equal(st(2)->request_timeouts, 1);
    assert_int_equal(st(3)->request_timeouts, 0);
    assert_int_equal(st(3)->viewchange_joins, 1);
    assert_int_equal(st(3)->requests_executed, 1);
    assert_int_equal(replies(0, 1), 3);
}

/* Rule 3 at the backups: one replica's VIEW-CHANGEs, for any view, move no backup. */
static void test_one_view_change_ignored(void **state)
{
    (void)state;
    up(4, 1, NULL);
    size_t len = view_change_bare(3, 1);
    for (uint16_t i = 1; i < 3; i++) {
        rh_inject(&C, 3, i, g_msg, len);
        rh_inject(&C, 3, i, g_msg, len); /* a duplicate */
    }
    len = view_change_bare(3, 9);
    for (uint16_t i = 1; i < 3; i++)
        rh_inject(&C, 3, i, g_msg, len);
    /* And one whose signature fails. */
    len = view_change_bare(3, 10);
    g_msg[len - 3] ^= 1;
    rh_inject(&C, 3, 0, g_msg, len);
    rh_run(&C);
    for (uint16_t i = 0; i < 3; i++) {
        view_is(i, 0, false);
        assert_int_equal(st(i)->viewchange_joins, 0);
        assert_int_equal(st(i)->stepdown_joins, 0);
    }
    assert_int_equal(st(0)->drops.count[WIRE_DROP_BAD_AUTH], 1);
    assert_int_equal(st(0)->stepdowns, 0);
    rh_advance(&C, 3u * T, T / 4u, NULL);
    for (uint16_t i = 0; i < 3; i++)
        view_is(i, 0, false);
    put(0, 1, "a", 0);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->requests_executed, 1);
}

/* ---- P survives two view changes; PBFT_BUG_FORGET_P ------------------------------------ */

/* Prepared everywhere in view 0 but committed nowhere; view 1 fails (its
 * NEW-VIEW is lost); view 2 must still re-propose the batch at seq 1. */
static void p_retained(uint32_t bugs, uint16_t *nch)
{
    struct rh_tune t;
    memset(&t, 0, sizeof t);
    for (uint16_t i = 0; i < 4; i++)
        t.bugs[i] = bugs;
    up(4, 1, &t);
    C.net.drop_types = 1u << WIRE_COMMIT;
    C.net.record_type = WIRE_PREPREPARE;
    put(0, 1, "a", 0);
    rh_run(&C);
    uint8_t d1[32];
    recorded_digest(d1);
    rh_net_clear(&C);
    C.net.silent = 1u << 0;
    C.net.drop_types = 1u << WIRE_NEW_VIEW;
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T);
    view_is(2, 1, true);
    view_is(3, 1, true);
    C.net.drop_types = 0;
    C.net.record_type = WIRE_NEW_VIEW;
    C.net.record_from = 2;
    rh_tick_run(&C, 2u * T);
    for (uint16_t i = 1; i < 4; i++) {
        view_is(i, 2, false);
        assert_int_equal(st(i)->requests_executed, 1);
        assert_memory_equal(rh_exec_digest(&C, i, 1), d1, 32);
    }
    struct wire_msg nv;
    rh_decode(&C, C.net.recorded, C.net.recorded_len, &nv);
    assert_int_equal(nv.h.view, 2);
    *nch = nv.u.nv.nch;
    assert_true(rh_agree(&C, 0xE));
}

static void test_p_retained_across_two_viewchanges(void **state)
{
    (void)state;
    uint16_t nch = 0;
    p_retained(0, &nch);
    assert_int_equal(nch, 1); /* seq 1 re-proposed by the choice */
}

static void test_bug_forget_p_selection(void **state)
{
    (void)state;
    uint16_t nch = 0;
    p_retained(PBFT_BUG_FORGET_P, &nch);
    /* No P anywhere: nothing is chosen; the request is ordered anew. */
    assert_int_equal(nch, 0);
}

/* Replica 3 executed seq 1 (only it got the COMMITs); the others prepared it. A
 * correct view change keeps the batch at seq 1; with every VIEW-CHANGE's P
 * forgotten, the new view puts another batch there: the violation. */
static void forget_p_run(uint32_t bugs)
{
    struct rh_tune t;
    memset(&t, 0, sizeof t);
    for (uint16_t i = 0; i < 4; i++)
        t.bugs[i] = bugs;
    up(4, 1, &t);
    C.net.keep_to_mask_types = 1u << WIRE_COMMIT;
    C.net.keep_to = 1u << 3;
    put(0, 1, "a", 0);
    rh_run(&C);
    assert_int_equal(st(3)->last_executed, 1);
    assert_int_equal(st(1)->last_executed, 0);
    rh_net_clear(&C);
    C.net.silent = 1u << 0;
    put(1, 1, "b", UINT16_MAX);
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    rh_tick_run(&C, T);
    for (uint16_t i = 1; i < 4; i++)
        view_is(i, 1, false);
}

static void test_bug_forget_p_violation(void **state)
{
    (void)state;
    forget_p_run(0);
    for (uint16_t i = 1; i < 4; i++)
        assert_int_equal(st(i)->newview_conflicts, 0);
    assert_true(rh_agree(&C, 0xE));
    assert_int_equal(replies(1, 1), 3);
    teardown(NULL);

    forget_p_run(PBFT_BUG_FORGET_P);
    assert_true(st(3)->newview_conflicts > 0);
    const uint8_t *d3 = rh_exec_digest(&C, 3, 1), *d1 = rh_exec_digest(&C, 1, 1);
    assert_non_null(d3);
    assert_non_null(d1);
    assert_memory_not_equal(d1, d3, 32); /* correct replicas disagree at seq 1 */
}

/* ---- PBFT_BUG_COMMIT_QUORUM_2F and _EXECUTE_UNCOMMITTED across a view change ----------- *
 * Within one view prepared certificates are unique, so executing early shows
 * nothing. Across a view change it does: replica 3 executes seq 1 having seen
 * only q-1 COMMITs (or none), while the only other correct replica that saw the
 * batch (1) pre-prepared but never prepared it. A faulty replica 0 then sends
 * a VIEW-CHANGE without it, replica 3's VIEW-CHANGE is slow to reach the new
 * primary, and view 1 legally puts another batch at seq 1. */

static int g_phase;

static bool early_exec_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    (void)arg;
    uint8_t type = rh_msg_type(m);
    if (m->from == RH_FROM_CLIENT)
        return false;
    if (g_phase == 1) {
        if (type == WIRE_PREPREPARE && m->to == 2)
            return true;
        if (type == WIRE_PREPARE && m->from == 3 && m->to == 1)
            return true;
        if (type == WIRE_COMMIT)
            return !(m->from == 0 && m->to == 3);
        return false;
    }
    if (m->from == 0 && type != WIRE_VIEW_CHANGE)
        return true; /* faulty, silent but for its VIEW-CHANGE */
    return type == WIRE_VIEW_CHANGE && m->from == 3 && m->to == 1;
}

static void early_exec_run(uint32_t bug)
{
    struct rh_tune t;
    memset(&t, 0, sizeof t);
    for (uint16_t i = 0; i < 4; i++)
        t.bugs[i] = bug;
    up(4, 1, &t);
    C.filter = early_exec_filter;
    g_phase = 1;
    put(0, 1, "a", 0);
    rh_run(&C);
    assert_int_equal(st(1)->last_executed, 0);
    assert_int_equal(st(2)->last_executed, 0);
    assert_int_equal(st(3)->last_executed, bug != 0 ? 1 : 0);
    /* Replica 0's VIEW-CHANGE for view 1: its P and Q "forgotten". */
    g_phase = 2;
    size_t len = view_change_bare(0, 1);
    for (uint16_t i = 1; i < 4; i++)
        rh_inject(&C, 0, i, g_msg, len);
    put(1, 1, "b", UINT16_MAX);
    put(0, 1, "a", UINT16_MAX);
    rh_run(&C);
    /* The backups follow the VIEW-CHANGE of their primary at once
     * (viewchange_rejoin.c). Replica 3, which executed early with the bug,
     * cannot execute view 1's seq 1, and its timer moves it on at T. */
    for (uint16_t i = 1; i < 4; i++)
        assert_int_equal(st(i)->stepdown_joins, 1);
    rh_tick_run(&C, T - 1u);
    for (uint16_t i = 1; i < 4; i++)
        view_is(i, 1, false);
    assert_int_equal(st(1)->requests_executed, 2);
}

static void test_bug_early_execution_caught(void **state)
{
    (void)state;
    early_exec_run(0);
    for (uint16_t i = 1; i < 4; i++)
        assert_int_equal(st(i)->newview_conflicts, 0);
    assert_true(rh_agree(&C, 0xE));
    teardown(NULL);

    uint32_t bugs[2] = { PBFT_BUG_COMMIT_QUORUM_2F, PBFT_BUG_EXECUTE_UNCOMMITTED };
    for (int k = 0; k < 2; k++) {
        early_exec_run(bugs[k]);
        assert_int_equal(st(3)->newview_conflicts, 1);
        const uint8_t *d3 = rh_exec_digest(&C, 3, 1), *d1 = rh_exec_digest(&C, 1, 1);
        assert_non_null(d3);
        assert_non_null(d1);
        assert_memory_not_equal(d1, d3, 32); /* correct replicas disagree at seq 1 */
        if (k == 0)
            teardown(NULL);
    }
}

/* ---- A random schedule with primary faults ---------------------------------------------- */

static void test_random_primary_faults(void **state)
{
    (void)state;
    uint64_t completed = 0, views = 0;
    /* BFTKV_VIEWCHANGE_SEEDS=N runs N seeds instead of 6 (a longer hunt), from
     * BFTKV_VIEWCHANGE_FIRST (default 1). */
    const char *env = getenv("BFTKV_VIEWCHANGE_SEEDS"), *first_env = getenv("BFTKV_VIEWCHANGE_FIRST");
    uint64_t seeds = env != NULL ? strtoull(env, NULL, 10) : 6u;
    uint64_t first = first_env != NULL ? strtoull(first_env, NULL, 10) : 1u;
    for (uint64_t seed = first; seed < first + seeds; seed++) {
        struct rh_tune t = { .k = 4, .l = 8, .w = 3, .batch_requests = 4 };
        up(4, 1, &t);
        /* Silence (C.net.silent), loss (10% at times) and 3% duplication of
         * the messages to replicas, from the generator the schedule draws on;
         * replies are never lost. */
        C.rng = seed * 7919u;
        C.net.dup_pct = 3;
        C.net.spare_replies = true;
        uint64_t ts[8] = { 0 };
        bool busy[8] = { false };
        static uint8_t last[8][256];
        size_t last_len[8] = { 0 };
        for (int step = 0; step < 3000; step++) {
            uint64_t roll = rh_rand(&C) % 1000u;
            if (roll < 60) {
                uint16_t cl = (uint16_t)(rh_rand(&C) % 8u);
                if (busy[cl]) {
                    if (rh_replies_for(&C, cl, ts[cl], NULL, 0) >= 2) {
                        busy[cl] = false;
                        completed++;
                    } else if (rh_rand(&C) % 3u == 0) {
                        rh_send(&C, UINT16_MAX, last[cl], last_len[cl]);
                    }
                    continue;
                }
                char key[8];
                snprintf(key, sizeof key, "k%u", (unsigned)(rh_rand(&C) % 4u));
                last_len[cl] = rh_request(&C, last[cl], sizeof last[cl], cl, 0, ++ts[cl], WIRE_OP_PUT, key, key, 2, 0);
                busy[cl] = true;
                uint16_t primary = (uint16_t)(pbft_replica_view(C.r[1]) % 4u);
                rh_send(&C, primary, last[cl], last_len[cl]);
            } else if (roll < 75) {
                rh_tick_run(&C, C.now_ns + T / 5u);
            } else if (roll < 78) {
                /* Silence the current primary of replica 1's view (one at a time), or heal. */
                uint16_t primary = (uint16_t)(pbft_replica_view(C.r[1]) % 4u);
                C.net.silent = C.net.silent != 0 ? 0 : 1ull << primary;
            } else if (roll < 80) {
                C.net.loss_pct = C.net.loss_pct != 0 ? 0 : 10u;
            } else {
                rh_step_pick(&C, rh_rand(&C));
            }
        }
        /* Heal and let everything finish. */
        C.net.silent = 0;
        C.net.loss_pct = 0;
        for (int i = 0; i < 8; i++) {
            if (busy[i])
                rh_send(&C, UINT16_MAX, last[i], last_len[i]);
        }
        rh_advance(&C, C.now_ns + 40u * T, T / 4u, NULL);
        for (int i = 0; i < 8; i++) {
            if (busy[i] && rh_replies_for(&C, (uint16_t)i, ts[i], NULL, 0) >= 2) {
                busy[i] = false;
                completed++;
            }
        }
        assert_true(rh_agree(&C, 0xF));
        for (uint16_t i = 0; i < 4; i++) {
            assert_int_equal(st(i)->newview_conflicts, 0);
            views += st(i)->viewchanges;
        }
        teardown(NULL);
    }
    up(4, 1, NULL); /* for the teardown */
    assert_true(completed > seeds * 8u);
    assert_true(views > 0);
    print_message("random: %lu operations completed, %lu view changes entered\n", (unsigned long)completed,
                  (unsigned long)views);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_silent_primary, teardown),
        cmocka_unit_test_teardown(test_prepared_survives_gap_is_null, teardown),
        cmocka_unit_test_teardown(test_consecutive_faulty_primaries, teardown),
        cmocka_unit_test_teardown(test_timer_doubles, teardown),
        cmocka_unit_test_teardown(test_newview_wrong_choice_rejected, teardown),
        cmocka_unit_test_teardown(test_f_plus_1_join, teardown),
        cmocka_unit_test_teardown(test_one_view_change_ignored, teardown),
        cmocka_unit_test_teardown(test_timeout_fits_waits, teardown),
        cmocka_unit_test_teardown(test_full_watch_fifo_not_rescanned, teardown),
        cmocka_unit_test_teardown(test_duplicate_vote_answered, teardown),
        cmocka_unit_test_teardown(test_fitted_timeout_off_for_faulty_primary, teardown),
        cmocka_unit_test_teardown(test_lone_backup_rejoins, teardown),
        cmocka_unit_test_teardown(test_lone_backup_rejoins_n7, teardown),
        cmocka_unit_test_teardown(test_stepdown_from_dead_view, teardown),
        cmocka_unit_test_teardown(test_stepdown_rate_limited, teardown),
        cmocka_unit_test_teardown(test_stepdown_view_span, teardown),
        cmocka_unit_test_teardown(test_p_retained_across_two_viewchanges, teardown),
        cmocka_unit_test_teardown(test_bug_forget_p_selection, teardown),
        cmocka_unit_test_teardown(test_bug_forget_p_violation, teardown),
        cmocka_unit_test_teardown(test_bug_early_execution_caught, teardown),
        cmocka_unit_test_teardown(test_selection_rules, teardown),
        cmocka_unit_test_teardown(test_codec, teardown),
        cmocka_unit_test_teardown(test_random_primary_faults, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
