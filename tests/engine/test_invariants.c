/* Unit tests of the whole-replica invariant check (engine/invariants.c,
 * docs/design.md §5.9): four replicas (n = 4, f = 1, K = 4, L = 8) on the FIFO
 * pump of replica_harness.c, which itself runs the check after every step and
 * resume. Once the group has executed some batches, small and large requests,
 * each test breaks one field of one replica by hand -- the corruption a bug in
 * a handler would leave -- and expects the check to name that rule, without
 * aborting; then puts the field back and expects the check to pass again (so
 * a test cannot pass on a replica that was already broken).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "engine/invariants.h"
#include "engine/replica_internal.h"
#include "replica_harness.h"

#define LARGE_VALUE 3000u /* beyond BFTKV_INLINE_REQUEST_MAX: a pool request */

static struct rh_cluster C;
static uint8_t g_val[LARGE_VALUE];

/* The group after 10 requests (every third one large): h moved at least once,
 * the pool holds the executed large requests (seq 9's held, above h). */
static int setup(void **state)
{
    (void)state;
    struct rh_tune t = {.k = 4, .l = 8};
    rh_init(&C, 4, 1, 1, 0, rh_tune_apply, &t);
    memset(g_val, 0x5a, sizeof g_val);
    for (uint64_t ts = 1; ts <= 10; ts++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", (unsigned)ts);
        size_t vlen = ts % 3u == 0 ? LARGE_VALUE : 8u;
        rh_submit(&C, 0, 0, ts, WIRE_OP_PUT, key, g_val, vlen, 0, UINT16_MAX);
        rh_run(&C);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

/* Replica 1 (a backup) holds; the group got where setup meant it to. */
static struct pbft_replica *healthy(void)
{
    struct pbft_replica *r = C.r[1];
    assert_int_equal(r->last_executed, 10);
    assert_true(r->low >= 4);
    assert_true(r->pool_chunks_free < r->pool_chunks);
    uint64_t seq = 1;
    assert_null(replica_invariants_check(r, &seq));
    assert_int_equal(seq, 0);
    return r;
}

static void expect_broken(const struct pbft_replica *r, const char *what)
{
    uint64_t seq = 0;
    const char *got = replica_invariants_check(r, &seq);
    assert_non_null(got);
    assert_string_equal(got, what);
}

/* The executed slot of last_executed, in the window. */
static struct replica_slot *last_slot(struct pbft_replica *r)
{
    struct replica_slot *s = replica_slot_find(r, r->last_executed);
    assert_non_null(s);
    assert_true(s->executed && s->committed && s->prepared);
    return s;
}

static void test_healthy_group(void **state)
{
    (void)state;
    for (uint16_t i = 0; i < C.n; i++)
        assert_null(replica_invariants_check(C.r[i], NULL));
    (void)healthy();
}

static void test_low_off_boundary(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    r->low++;
    expect_broken(r, "low watermark h is not a multiple of the checkpoint interval K");
    r->low--;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_executed_beyond_window(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    uint64_t le = r->last_executed;
    r->last_executed = r->low + r->cfg.log_window + 1u;
    expect_broken(r, "last executed above h + L");
    r->last_executed = le;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_committed_not_prepared(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    struct replica_slot *s = last_slot(r);
    s->prepared = false;
    uint64_t seq = 0;
    assert_string_equal(replica_invariants_check(r, &seq), "slot committed but not prepared");
    assert_int_equal(seq, r->last_executed); /* names the slot */
    s->prepared = true;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_vote_count_above_bits(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    struct replica_slot *s = last_slot(r);
    uint64_t bits = s->prep_bits;
    s->prep_bits = 0;
    expect_broken(r, "prep_match above the PREPARE bits");
    s->prep_bits = bits;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_commit_quorum(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    struct replica_slot *s = last_slot(r);
    uint16_t match = s->commit_match;
    s->commit_match = (uint16_t)(r->quorum - 1u);
    expect_broken(r, "slot committed with fewer than q matching COMMITs");
    s->commit_match = match;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_stalled_count(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    r->stalled++;
    expect_broken(r, "stalled count differs from the stalled slots in the window");
    r->stalled--;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_pool_accounting(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    r->pool_chunks_free--;
    expect_broken(r, "pool chunks: free + in live requests != total");
    r->pool_chunks_free++;
    r->pool_chunks_unpinned++;
    expect_broken(r, "pool chunks of unpinned requests differ from their count");
    r->pool_chunks_unpinned--;
    r->pool_slot_chunks++;
    expect_broken(r, "pool references' chunks differ from the slot and queue charges");
    r->pool_slot_chunks--;
    assert_null(replica_invariants_check(r, NULL));
}

/* The held requests (executed above h, kept for laggards until a stable
 * checkpoint covers them) and the index that reaches every live entry. */
static void test_pool_held_and_index(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    uint32_t held = r->pool_held_old;
    assert_true(held != UINT32_MAX); /* seq 9's request, above h = 8 */
    assert_true(r->pool[held].held_seq > r->low);
    r->pool_chunks_held++;
    expect_broken(r, "pool chunks of held requests differ from their count");
    r->pool_chunks_held--;
    uint64_t seq = r->pool[held].held_seq;
    r->pool[held].held_seq = r->low; /* covered by h, yet held */
    expect_broken(r, "unpinned lists differ from the unreferenced live entries");
    r->pool[held].held_seq = seq;
    uint32_t b = r->pool_batch_chunks;
    r->pool_batch_chunks = 0;
    expect_broken(r, "pool holds more than B chunks per batch above h");
    r->pool_batch_chunks = b;
    r->pool_index_used++;
    expect_broken(r, "pool index cells differ from the live entries");
    r->pool_index_used--;
    r->pool[held].digest[0] ^= 1u; /* its cell is at the other digest's place */
    expect_broken(r, "pool entry not reached through the index");
    r->pool[held].digest[0] ^= 1u;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_checkpoint_outside_window(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    struct replica_ckpt *c = &r->ckpts[(r->low / r->cfg.checkpoint_interval) % r->ckpt_count];
    assert_int_equal(c->seq, r->low);
    assert_true(c->stable);
    /* The same ring place, one turn of the ring later: beyond h + L. */
    c->seq = r->low + (uint64_t)r->cfg.checkpoint_interval * r->ckpt_count;
    expect_broken(r, "checkpoint record outside [h, h + L]");
    c->seq = r->low;
    assert_null(replica_invariants_check(r, NULL));
}

static void test_viewchange_state(void **state)
{
    (void)state;
    struct pbft_replica *r = healthy();
    r->view_active = false; /* between views, but no VIEW-CHANGE of ours */
    expect_broken(r, "moving to a view without our own VIEW-CHANGE for it");
    r->view_active = true;
    r->unsure = true;
    expect_broken(r, "unsure replica says it holds state");
    r->unsure = false;
    assert_null(replica_invariants_check(r, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_healthy_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_low_off_boundary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_executed_beyond_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committed_not_prepared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_vote_count_above_bits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_quorum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_accounting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pool_held_and_index, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_outside_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_viewchange_state, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
