/* Unit tests of a PRE-PREPARE holding a request whose client MAC fails at a
 * backup (engine/preprepare.c, pp_vouched): the backup neither refuses the batch
 * for good nor takes it on the primary's word, but accepts it once f other
 * backups' PREPAREs match its digest.
 *
 * The live case it comes from: a faulty backup relayed a client's
 * retransmission to the primary with one byte of another backup's MAC flipped;
 * the primary, whose own MAC held, ordered it, and that backup refused the
 * PRE-PREPARE for good, so with the faulty replica silent the group of four
 * could commit nothing more (its backups, behind, never suspected the primary).
 *
 * Checked on the FIFO pump of replica_harness.c:
 *  - n = 4: a request whose MAC for replica 2 fails, sent to the primary only,
 *    executes at all four, in the same batch; replica 2 counts one unvouched
 *    PRE-PREPARE and blames no primary -- whether the PREPAREs that vouch come
 *    after the PRE-PREPARE or before it;
 *  - n = 7, f = 2: with MACs that hold at the primary and at two backups, the
 *    other four accept on those two PREPAREs (f) and everyone executes; with
 *    MACs that hold at the primary and one backup (a faulty primary and one
 *    accomplice, at most), nobody else accepts and nothing executes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "replica_harness.h"

static struct rh_cluster C;
static uint8_t g_msg[BFTKV_DATAGRAM_MAX];

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

static const struct pbft_replica_stats *st(uint16_t i)
{
    return rh_stats(&C, i);
}

/* A PUT by client 0 (lane 0, timestamp 1) whose authenticator's MAC for each
 * replica in `bad` (bits) has one byte flipped. */
static size_t request_with_bad_macs(uint64_t bad)
{
    size_t len = rh_request(&C, g_msg, sizeof g_msg, 0, 0, 1, WIRE_OP_PUT, "k", "v", 1, 0);
    struct wire_msg m;
    rh_decode(&C, g_msg, len, &m);
    size_t auth_off = (size_t)(m.auth - g_msg);
    for (uint16_t i = 0; i < C.n; i++) {
        if ((bad >> i) & 1u)
            g_msg[auth_off + (size_t)i * BFTKV_MAC_SIZE + 3u] ^= 0x5Au;
    }
    return len;
}

static void assert_all_executed(void)
{
    for (uint16_t i = 0; i < C.n; i++) {
        assert_int_equal(st(i)->last_executed, 1);
        assert_int_equal(st(i)->requests_executed, 1);
        assert_true(rh_logs_same(&C, 0, i));
    }
}

static void test_one_bad_mac_prepares_after(void **state)
{
    (void)state;
    rh_init(&C, 4, 1, 1, 0, rh_tune_apply, NULL);
    size_t len = request_with_bad_macs(1u << 2);
    rh_send(&C, 0, g_msg, len); /* to the primary alone, as a relaying backup does */
    rh_run(&C);
    assert_all_executed();
    assert_int_equal(st(2)->pp_unvouched, 1);
    assert_int_equal(st(2)->primary_misbehaviour_views, 0);
    for (uint16_t i = 0; i < 4; i++) {
        if (i != 2)
            assert_int_equal(st(i)->pp_unvouched, 0);
    }
}

static void test_one_bad_mac_prepares_before(void **state)
{
    (void)state;
    rh_init(&C, 4, 1, 1, 0, rh_tune_apply, NULL);
    C.net.hold_types = 1u << WIRE_PREPREPARE; /* replica 2 gets the PRE-PREPARE last */
    C.net.hold_to = 1u << 2;
    size_t len = request_with_bad_macs(1u << 2);
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(2)->last_executed, 0);
    rh_release(&C);
    rh_net_clear(&C);
    rh_run(&C);
    assert_all_executed();
    assert_int_equal(st(2)->pp_unvouched, 1);
    assert_int_equal(st(2)->primary_misbehaviour_views, 0);
}

static void test_f_backups_vouch(void **state)
{
    (void)state;
    rh_init(&C, 7, 2, 1, 0, rh_tune_apply, NULL);
    size_t len = request_with_bad_macs(0x78u); /* valid at 0, 1 and 2 only */
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_all_executed();
    for (uint16_t i = 0; i < 7; i++)
        assert_int_equal(st(i)->pp_unvouched, i >= 3 ? 1 : 0);
}

static void test_fewer_than_f_do_not(void **state)
{
    (void)state;
    rh_init(&C, 7, 2, 1, 0, rh_tune_apply, NULL);
    size_t len = request_with_bad_macs(0x7Cu); /* valid at 0 and 1 only */
    rh_send(&C, 0, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(1)->pp_unvouched, 0);
    for (uint16_t i = 0; i < 7; i++) {
        assert_int_equal(st(i)->last_executed, 0);
        if (i >= 2)
            assert_int_equal(st(i)->pp_unvouched, 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_one_bad_mac_prepares_after, teardown),
        cmocka_unit_test_teardown(test_one_bad_mac_prepares_before, teardown),
        cmocka_unit_test_teardown(test_f_backups_vouch, teardown),
        cmocka_unit_test_teardown(test_fewer_than_f_do_not, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
