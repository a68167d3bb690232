/* When a durable replica starts a snapshot (server/snapshot.c, snap_due): the
 * rule that decides it, case by case, without a disk or a replica. The case
 * that matters most: a state transfer installed a state that no record holds,
 * so a snapshot is due at once even though the log has barely grown (else a
 * whole-group crash would bring that replica back unsure; docs/design.md
 * §5.6.2). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "server/snapshot_internal.h"

#define MIB (1024u * 1024u)

/* A replica with a snapshot of checkpoint 256 kept (4 MiB), the last job
 * started at 256, checkpoint 384 stable, the log grown by 1 MiB since, and
 * no state transfer since: nothing is due (the floor is 16 MiB). */
static struct snap_due_in quiet(void)
{
    return (struct snap_due_in){
        .active = false,
        .ckpt_seq = 384,
        .started_seq = 256,
        .newest_kept = 256,
        .newest_bytes = 4u * MIB,
        .transfers_now = 3,
        .transfers_at_start = 3,
        .log_bytes_now = 101u * MIB,
        .log_at_start = 100u * MIB,
        .log_bytes_min = 16u * MIB,
    };
}

static void test_quiet_not_due(void **state)
{
    (void)state;
    struct snap_due_in in = quiet();
    assert_false(snap_due(&in));
}

static void test_state_transfer_makes_due(void **state)
{
    (void)state;
    struct snap_due_in in = quiet();
    in.transfers_now = 4; /* a state installed since the last job started */
    assert_true(snap_due(&in));
    in.active = true; /* but never two jobs at once */
    assert_false(snap_due(&in));
    in.active = false;
    in.ckpt_seq = 256; /* and never for a checkpoint already kept */
    assert_false(snap_due(&in));
}

static void test_first_snapshot_due(void **state)
{
    (void)state;
    struct snap_due_in in = quiet();
    in.newest_kept = 0;
    in.newest_bytes = 0;
    in.started_seq = 0;
    assert_true(snap_due(&in));
}

static void test_log_growth(void **state)
{
    (void)state;
    struct snap_due_in in = quiet();
    in.log_bytes_now = in.log_at_start + 16u * MIB - 1u;
    assert_false(snap_due(&in)); /* below the floor */
    in.log_bytes_now = in.log_at_start + 16u * MIB;
    assert_true(snap_due(&in)); /* the floor reached */
    in.newest_bytes = 32u * MIB; /* a larger snapshot sets the bar instead */
    assert_false(snap_due(&in));
    in.log_bytes_now = in.log_at_start + 32u * MIB;
    assert_true(snap_due(&in));
}

static void test_same_checkpoint_not_again(void **state)
{
    (void)state;
    struct snap_due_in in = quiet();
    in.log_bytes_now = in.log_at_start + 64u * MIB;
    in.started_seq = 384; /* the job for 384 already started */
    assert_false(snap_due(&in));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_not_due),
        cmocka_unit_test(test_state_transfer_makes_due),
        cmocka_unit_test(test_first_snapshot_due),
        cmocka_unit_test(test_log_growth),
        cmocka_unit_test(test_same_checkpoint_not_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
