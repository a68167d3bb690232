/* Unit tests of a durable replica's records (engine/persist.c; engine/pbft.h,
 * "Ordering contract"; docs/design.md §9) on the replica harness, whose disk
 * (replica_harness_disk.c) checks every outbox: no PRE-PREPARE, PREPARE, COMMIT,
 * VIEW-CHANGE, NEW-VIEW or reply leaves before the record it depends on.
 *
 *  - Under load, through a view change (the primary silenced) and a checkpoint
 *    every 16 batches, every kind of record is listed and the check holds.
 *  - Large requests (named by digest in the batches) are recorded too.
 *  - A replica that is not durable lists nothing.
 *  - The check can fail: with PBFT_BUG_PERSIST_SKIP a replica sends COMMITs
 *    without their PREPARED records, and the harness aborts (in a child).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "replica_harness.h"

#define MS RH_MS

static struct rh_cluster C;

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

/* Replica 0, the primary of view 0, is silent from op 300 to op 600 of the load. */
static bool primary_silenced(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)arg;
    return m->from == 0 && c->ops_done >= 300 && c->ops_done < 600 && m->from < c->n;
}

static void run_loaded_values(bool durable, uint32_t bug_on_1, uint32_t ops, uint32_t value_len)
{
    struct rh_tune t = {.k = 16, .l = 32, .w = 4, .durable = durable};
    t.request_timeout_ns = 30 * MS;
    t.bugs[1] = bug_on_1;
    rh_init_loaded(&C, 4, 1, 8, 7, &t);
    C.filter = primary_silenced;
    rh_workload(&C, ops, 64, value_len);
    assert_true(rh_advance(&C, 60000 * MS, MS, rh_workload_done));
    assert_true(rh_agree(&C, 0xF));
}

static void run_loaded(bool durable, uint32_t bug_on_1)
{
    run_loaded_values(durable, bug_on_1, 2000, 16);
}

static void test_records_before_sends(void **state)
{
    (void)state;
    run_loaded(true, 0);
    print_message("records: preprepare %llu request %llu prepared %llu committed %llu view_change %llu "
                  "new_view %llu checkpoint %llu; view %llu\n",
                  (unsigned long long)C.disk_records[PBFT_PERSIST_PREPREPARE],
                  (unsigned long long)C.disk_records[PBFT_PERSIST_REQUEST],
                  (unsigned long long)C.disk_records[PBFT_PERSIST_PREPARED],
                  (unsigned long long)C.disk_records[PBFT_PERSIST_COMMITTED],
                  (unsigned long long)C.disk_records[PBFT_PERSIST_VIEW_CHANGE],
                  (unsigned long long)C.disk_records[PBFT_PERSIST_NEW_VIEW],
                  (unsigned long long)C.disk_records[PBFT_PERSIST_CHECKPOINT],
                  (unsigned long long)pbft_replica_view(C.r[1]));
    for (uint16_t i = 0; i < 4; i++)
        assert_true(pbft_replica_view(C.r[i]) >= 1); /* the view changed */
    assert_true(C.disk_records[PBFT_PERSIST_PREPREPARE] > 0);
    assert_true(C.disk_records[PBFT_PERSIST_PREPARED] > 0);
    assert_true(C.disk_records[PBFT_PERSIST_COMMITTED] >= 4u * 2000u / 64u); /* batches, by 4 */
    assert_true(C.disk_records[PBFT_PERSIST_VIEW_CHANGE] >= 3);
    assert_true(C.disk_records[PBFT_PERSIST_NEW_VIEW] >= 3);
    assert_true(C.disk_records[PBFT_PERSIST_CHECKPOINT] > 0);
}

/* Values over 1 KiB: the batches name their requests by digest, and the requests
 * themselves are recorded with the PRE-PREPAREs. */
static void test_large_requests_recorded(void **state)
{
    (void)state;
    run_loaded_values(true, 0, 600, 1100);
    assert_true(C.disk_records[PBFT_PERSIST_REQUEST] >= 600u);
    assert_true(C.disk_records[PBFT_PERSIST_PREPREPARE] > 0);
}

static void test_not_durable_lists_nothing(void **state)
{
    (void)state;
    run_loaded(false, 0);
    for (uint32_t k = 0; k < RH_DISK_KINDS; k++)
        assert_int_equal(C.disk_records[k], 0);
}

/* The check itself can fail: a replica that skips its PREPARED records. */
static void test_check_catches_skip(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The harness prints the violation and aborts; its stderr is the test's. */
        run_loaded(true, PBFT_BUG_PERSIST_SKIP);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_records_before_sends, teardown),
        cmocka_unit_test_teardown(test_large_requests_recorded, teardown),
        cmocka_unit_test_teardown(test_not_durable_lists_nothing, teardown),
        cmocka_unit_test(test_check_catches_skip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
