/* Sessions and failure messages of the client library (include/bftkv/client.h,
 * "Sessions" and bftkv_client_last_error) against the in-process fake cluster
 * (test_client_lib_fake.h): 4 replicas, f = 1, client_lanes 64.
 *
 *   - Handles of one client id lease disjoint lane runs, the range options
 *     confine them, and each one's requests complete while the others are open.
 *   - Every lane leased: open fails with BFTKV_E_SESSION_BUSY; a closed handle's
 *     lanes are leased again.
 *   - A call that times out against stopped replicas says how many replicas
 *     answered and names the silent ones; a successful call leaves no message.
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

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "tests/client/test_client_lib_fake.h"

static struct fake_cluster g_fc;

static int open_handle(uint16_t lanes, uint16_t first, uint16_t count, int timeout_ms, struct bftkv_client **c)
{
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.timeout_ms = timeout_ms;
    opt.lanes = lanes;
    opt.lane_first = first;
    opt.lane_count = count;
    opt.err = err;
    opt.errlen = sizeof err;
    *c = NULL;
    int rc = bftkv_client_open(g_fc.conf, 0, &opt, c);
    if (rc != 0) {
        printf("# open: %s (%s)\n", bftkv_errname(rc), err);
    }
    return rc;
}

static struct bftkv_client_stats stats_of(struct bftkv_client *c)
{
    struct bftkv_client_stats s = { .struct_size = sizeof s };
    assert_int_equal(bftkv_client_stats(c, &s), 0);
    return s;
}

static void test_handles_lease_disjoint_runs(void **state)
{
    (void)state;
    struct bftkv_client *a, *b, *rest, *none;
    assert_int_equal(open_handle(8, 0, 0, 5000, &a), 0);
    assert_int_equal(open_handle(8, 0, 0, 5000, &b), 0);
    struct bftkv_client_stats sa = stats_of(a), sb = stats_of(b);
    assert_int_equal(sa.lanes, 8);
    assert_int_equal(sb.lanes, 8);
    assert_true(sa.lane_base + sa.lanes <= sb.lane_base || sb.lane_base + sb.lanes <= sa.lane_base);
    /* every lane wanted: the longest free run, 48 lanes */
    assert_int_equal(open_handle(0, 0, 0, 5000, &rest), 0);
    struct bftkv_client_stats sr = stats_of(rest);
    assert_int_equal(sr.lanes, 48);
    assert_int_equal(open_handle(1, 0, 0, 5000, &none), BFTKV_E_SESSION_BUSY);
    assert_null(none);
    /* all three work side by side */
    for (int i = 0; i < 20; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "s-%d", i);
        snprintf(val, sizeof val, "v-%d", i);
        struct bftkv_client *c = i % 3 == 0 ? a : i % 3 == 1 ? b : rest;
        assert_int_equal(bftkv_put(c, key, strlen(key), val, strlen(val)), 0);
    }
    for (int i = 0; i < 20; i++) {
        char key[32], val[32], got[32];
        snprintf(key, sizeof key, "s-%d", i);
        snprintf(val, sizeof val, "v-%d", i);
        size_t vlen = 0;
        assert_int_equal(bftkv_get(i % 2 == 0 ? a : b, key, strlen(key), got, sizeof got, &vlen), 0);
        assert_int_equal(vlen, strlen(val));
        assert_memory_equal(got, val, vlen);
    }
    /* a closed handle's lanes are leased again */
    uint16_t base = sb.lane_base;
    bftkv_client_close(b);
    assert_int_equal(open_handle(8, 0, 0, 5000, &b), 0);
    assert_int_equal(stats_of(b).lane_base, base);
    assert_int_equal(bftkv_put(b, "again", 5, "1", 1), 0);
    bftkv_client_close(a);
    bftkv_client_close(b);
    bftkv_client_close(rest);
}

static void test_lane_range_options(void **state)
{
    (void)state;
    struct bftkv_client *a, *b;
    assert_int_equal(open_handle(0, 32, 32, 5000, &a), 0);
    struct bftkv_client_stats s = stats_of(a);
    assert_int_equal(s.lane_base, 32);
    assert_int_equal(s.lanes, 32);
    assert_int_equal(open_handle(0, 0, 32, 5000, &b), 0);
    s = stats_of(b);
    assert_int_equal(s.lane_base, 0);
    assert_int_equal(s.lanes, 32);
    assert_int_equal(bftkv_put(a, "hi", 2, "a", 1), 0);
    assert_int_equal(bftkv_put(b, "lo", 2, "b", 1), 0);
    bftkv_client_close(a);
    bftkv_client_close(b);
    assert_int_equal(open_handle(0, 60, 8, 5000, &a), BFTKV_E_INVAL); /* past client_lanes */
    assert_int_equal(open_handle(65, 0, 0, 5000, &a), BFTKV_E_INVAL);
}

static void test_timeout_message_names_silent_replicas(void **state)
{
    (void)state;
    struct bftkv_client *c;
    assert_int_equal(open_handle(1, 0, 0, 400, &c), 0);
    char msg[BFTKV_CLIENT_ERROR_MAX];
    assert_int_equal(bftkv_put(c, "m", 1, "1", 1), 0);
    assert_int_equal(bftkv_client_last_error(c, msg, sizeof msg), 0);
    assert_string_equal(msg, "");
    fake_stop(&g_fc); /* every replica stays silent, also to status probes */
    assert_int_equal(bftkv_put(c, "m", 1, "2", 1), BFTKV_E_TIMEOUT);
    assert_int_equal(bftkv_client_last_error(c, msg, sizeof msg), BFTKV_E_TIMEOUT);
    printf("# %s\n", msg);
    assert_non_null(strstr(msg, "put: no result within 400 ms"));
    assert_non_null(strstr(msg, "0 of 4 replicas answered"));
    assert_non_null(strstr(msg, "no answer at all from replicas 0, 1, 2, 3"));
    assert_non_null(strstr(msg, "allow-list"));
    /* truncated to the caller's buffer, NUL-terminated */
    char small[16];
    assert_int_equal(bftkv_client_last_error(c, small, sizeof small), BFTKV_E_TIMEOUT);
    assert_int_equal(strlen(small), sizeof small - 1u);
    fake_start(&g_fc);
    uint8_t buf[8];
    size_t vlen = 0;
    int rc = bftkv_get(c, "m", 1, buf, sizeof buf, &vlen);
    assert_true(rc == 0 || rc == BFTKV_E_TIMEOUT);
    if (rc == 0) {
        assert_int_equal(bftkv_client_last_error(c, msg, sizeof msg), 0);
        assert_string_equal(msg, "");
    }
    assert_int_equal(bftkv_client_last_error(NULL, msg, sizeof msg), BFTKV_E_INVAL);
    bftkv_client_close(c);
}

static int setup(void **state)
{
    (void)state;
    if (fake_create(&g_fc, 4, 1, 2, "client_lanes 64\nrequest_timeout_ms 2000\nretransmit_ms 100\n") != 0) {
        return -1;
    }
    fake_start(&g_fc);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_destroy(&g_fc);
    return 0;
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handles_lease_disjoint_runs),
        cmocka_unit_test(test_lane_range_options),
        cmocka_unit_test(test_timeout_message_names_silent_replicas),
    };
    return cmocka_run_group_tests_name("client_lib_sessions", tests, setup, teardown);
}
