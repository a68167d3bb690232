/* The linearizability checker: accepts what a register per key allows, rejects the
 * classic anomalies (stale read, read of a value never written, new-old inversion,
 * lost update, DEL status lies), and survives randomized histories built from a
 * known linearization — widened in real time they must pass, with one read
 * falsified they must fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "tests/sim/lincheck.h"

#define NF BFTKV_E_NOT_FOUND
#define P LINCHECK_PENDING

static struct lincheck *h_new(void)
{
    struct lincheck *lc = lincheck_create(64);
    assert_non_null(lc);
    return lc;
}

static void put(struct lincheck *lc, uint64_t key, uint64_t v, uint64_t inv, uint64_t ret)
{
    struct lincheck_op op = { .key = key, .kind = LINCHECK_PUT, .value = v, .invoke_time = inv, .return_time = ret };
    assert_int_equal(lincheck_add(lc, &op), 0);
}

/* v = 0: NOT_FOUND */
static void get(struct lincheck *lc, uint64_t key, uint64_t v, uint64_t inv, uint64_t ret)
{
    struct lincheck_op op = { .key = key, .kind = LINCHECK_GET, .value = v, .status = v == 0 ? NF : 0,
                              .invoke_time = inv, .return_time = ret };
    assert_int_equal(lincheck_add(lc, &op), 0);
}

static void del(struct lincheck *lc, uint64_t key, int status, uint64_t inv, uint64_t ret)
{
    struct lincheck_op op = { .key = key, .kind = LINCHECK_DEL, .status = status, .invoke_time = inv,
                              .return_time = ret };
    assert_int_equal(lincheck_add(lc, &op), 0);
}

static int verdict(struct lincheck *lc)
{
    struct lincheck_result r;
    int v = lincheck_check(lc, &r);
    assert_int_equal(v, r.verdict);
    return v;
}

static void expect_ok(struct lincheck *lc)
{
    assert_int_equal(verdict(lc), LINCHECK_OK);
    lincheck_destroy(lc);
}

static void expect_violation(struct lincheck *lc)
{
    assert_int_equal(verdict(lc), LINCHECK_VIOLATION);
    lincheck_destroy(lc);
}

/* ---- Accepted ------------------------------------------------------------------- */

static void test_sequential(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    get(lc, 1, 0, 0, 1);
    put(lc, 1, 10, 2, 3);
    get(lc, 1, 10, 4, 5);
    put(lc, 1, 11, 6, 7);
    get(lc, 1, 11, 8, 9);
    del(lc, 1, 0, 10, 11);
    get(lc, 1, 0, 12, 13);
    del(lc, 1, NF, 14, 15);
    put(lc, 1, 12, 16, 17);
    get(lc, 1, 12, 18, 19);
    expect_ok(lc);
}

static void test_empty(void **state)
{
    (void)state;
    expect_ok(h_new());
}

static void test_concurrent_writes_either(void **state)
{
    (void)state;
    for (uint64_t seen = 1; seen <= 2; seen++) {
        struct lincheck *lc = h_new();
        put(lc, 1, 1, 0, 10);
        put(lc, 1, 2, 1, 11);
        get(lc, 1, seen, 12, 13);
        get(lc, 1, seen, 14, 15);
        expect_ok(lc);
    }
    /* A read overlapping both writes may see absent, either, or both in turn. */
    for (uint64_t seen = 0; seen <= 2; seen++) {
        struct lincheck *lc = h_new();
        put(lc, 1, 1, 0, 10);
        put(lc, 1, 2, 1, 11);
        get(lc, 1, seen, 2, 9);
        expect_ok(lc);
    }
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 10);
    put(lc, 1, 2, 1, 11);
    get(lc, 1, 2, 2, 3);
    get(lc, 1, 1, 4, 5); /* 2 then 1: PUT 1 linearized after PUT 2, still inside both */
    expect_ok(lc);
    lc = h_new();
    put(lc, 1, 1, 0, 10);
    put(lc, 1, 2, 1, 11);
    get(lc, 1, 1, 2, 3);
    get(lc, 1, 2, 4, 5);
    get(lc, 1, 1, 6, 7); /* 1, 2, 1: PUT 1 would have to take effect twice */
    expect_violation(lc);
}

static void test_pending_write(void **state)
{
    (void)state;
    for (uint64_t seen = 1; seen <= 2; seen++) {
        struct lincheck *lc = h_new();
        put(lc, 1, 1, 0, 2);
        put(lc, 1, 2, 3, P); /* the client never learned the outcome */
        get(lc, 1, seen, 5, 6);
        get(lc, 1, seen, 7, 8);
        expect_ok(lc);
    }
    /* Seen, then unseen: once it took effect it cannot be undone. */
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 2);
    put(lc, 1, 2, 3, P);
    get(lc, 1, 2, 5, 6);
    get(lc, 1, 1, 7, 8);
    expect_violation(lc);
    /* Not visible before its invocation. */
    lc = h_new();
    get(lc, 1, 2, 0, 1);
    put(lc, 1, 2, 3, P);
    expect_violation(lc);
    /* Pending DEL: may or may not have deleted; pending GETs constrain nothing. */
    lc = h_new();
    put(lc, 1, 1, 0, 1);
    del(lc, 1, 0, 2, P);
    get(lc, 1, 1, 3, 4);
    get(lc, 1, 77, 3, P);
    get(lc, 1, 0, 5, 6);
    expect_ok(lc);
}

static void test_equal_times_overlap(void **state)
{
    (void)state;
    /* return == invoke counts as overlapping: both orders allowed. */
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 5);
    get(lc, 1, 0, 5, 6);
    expect_ok(lc);
    lc = h_new();
    put(lc, 1, 1, 0, 5);
    get(lc, 1, 0, 6, 7);
    expect_violation(lc);
}

/* ---- Rejected ------------------------------------------------------------------- */

static void test_stale_read(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 1);
    put(lc, 1, 2, 2, 3);
    get(lc, 1, 1, 4, 5);
    expect_violation(lc);
}

static void test_read_never_written(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 10);
    get(lc, 1, 99, 1, 9);
    expect_violation(lc);
    lc = h_new();
    get(lc, 2, UINT64_MAX, 0, 1);
    expect_violation(lc);
}

static void test_new_old_inversion(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 1);
    put(lc, 1, 2, 2, 20); /* slow write */
    get(lc, 1, 2, 3, 4);  /* sees the new value */
    get(lc, 1, 1, 5, 6);  /* later read sees the old one */
    expect_violation(lc);
}

static void test_del_status(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    del(lc, 1, 0, 0, 1); /* OK on an absent key */
    expect_violation(lc);
    lc = h_new();
    put(lc, 1, 1, 0, 1);
    del(lc, 1, NF, 2, 3); /* NOT_FOUND on a present key */
    expect_violation(lc);
    lc = h_new();
    put(lc, 1, 1, 0, 1);
    del(lc, 1, 0, 2, 3);
    del(lc, 1, 0, 4, 5); /* two successful deletes, nothing in between */
    expect_violation(lc);
    lc = h_new();
    put(lc, 1, 1, 0, 1);
    del(lc, 1, 0, 2, 10);
    del(lc, 1, NF, 3, 9); /* concurrent deletes: one wins */
    expect_ok(lc);
}

static void test_lost_update(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 1);
    get(lc, 1, 1, 2, 3);
    put(lc, 1, 2, 4, 5);
    get(lc, 1, 1, 6, 7); /* PUT 2 completed, yet the old value stays */
    expect_violation(lc);
}

static void test_absent_after_put(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 1);
    get(lc, 1, 0, 2, 3);
    expect_violation(lc);
}

static void test_keys_independent_and_report(void **state)
{
    (void)state;
    struct lincheck *lc = h_new();
    put(lc, 1, 1, 0, 1);
    get(lc, 1, 1, 2, 3);
    put(lc, 7, 2, 0, 1); /* op 2 */
    get(lc, 7, 0, 2, 3); /* op 3: violation on key 7 */
    get(lc, 9, 0, 2, 3);
    put(lc, 1, 3, 0, 1); /* key 1 again: concurrent with the first PUT */
    struct lincheck_result r;
    assert_int_equal(lincheck_check(lc, &r), LINCHECK_VIOLATION);
    assert_int_equal(r.key, 7);
    assert_int_equal(r.key_ops, 2);
    assert_int_equal(r.stuck_op, 3);
    assert_int_equal(r.keys_checked, 3);
    assert_int_equal(r.keys_violating, 1);
    assert_non_null(r.reason);
    assert_int_equal(lincheck_check_key(lc, 1, &r), LINCHECK_OK);
    assert_int_equal(lincheck_check_key(lc, 9, NULL), LINCHECK_OK);
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    lincheck_print_key(lc, 7, 3, devnull);
    fclose(devnull);
    lincheck_destroy(lc);
}

static void test_validation_and_two_step(void **state)
{
    (void)state;
    struct lincheck *lc = lincheck_create(3);
    assert_non_null(lc);
    struct lincheck_op bad = { .key = 1, .kind = LINCHECK_PUT, .value = 0, .invoke_time = 0, .return_time = 1 };
    assert_int_equal(lincheck_add(lc, &bad), BFTKV_E_INVAL); /* PUT of "absent" */
    bad.value = 1;
    bad.invoke_time = 5;
    assert_int_equal(lincheck_add(lc, &bad), BFTKV_E_INVAL); /* returns before invoked */
    bad.invoke_time = 0;
    bad.kind = 9;
    assert_int_equal(lincheck_add(lc, &bad), BFTKV_E_INVAL);
    bad.kind = LINCHECK_GET;
    bad.status = NF; /* NOT_FOUND with a value */
    assert_int_equal(lincheck_add(lc, &bad), BFTKV_E_INVAL);
    bad.status = BFTKV_E_TIMEOUT;
    assert_int_equal(lincheck_add(lc, &bad), BFTKV_E_INVAL);

    uint32_t a, b, c;
    assert_int_equal(lincheck_invoke(lc, 1, LINCHECK_PUT, 5, 0, 0, &a), 0);
    assert_int_equal(lincheck_invoke(lc, 1, LINCHECK_GET, 0, 1, 1, &b), 0);
    assert_int_equal(lincheck_invoke(lc, 1, LINCHECK_DEL, 0, 1, 2, &c), 0);
    assert_int_equal(lincheck_invoke(lc, 1, LINCHECK_GET, 0, 1, 1, NULL), BFTKV_E_FULL);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(c, 2);
    assert_int_equal(lincheck_complete(lc, b, 0, 5, 4), 0);
    assert_int_equal(lincheck_complete(lc, b, 0, 5, 4), BFTKV_E_INVAL); /* twice */
    assert_int_equal(lincheck_complete(lc, a, 0, 0, 2), 0);
    /* c stays pending: a DEL that may or may not have happened */
    assert_int_equal(lincheck_get(lc, b)->value, 5);
    assert_int_equal(verdict(lc), LINCHECK_OK);

    lincheck_reset(lc);
    assert_int_equal(lincheck_count(lc), 0);
    assert_int_equal(lincheck_invoke(lc, 1, LINCHECK_GET, 0, 0, 0, &a), 0);
    assert_int_equal(lincheck_complete(lc, a, 0, 0, 1), BFTKV_E_INVAL); /* OK needs a value */
    assert_int_equal(lincheck_complete(lc, a, NF, 0, 1), 0);
    assert_int_equal(verdict(lc), LINCHECK_OK);
    lincheck_destroy(lc);
}

static void test_budget_unknown(void **state)
{
    (void)state;
    /* 20 mutually concurrent writes and a read of a value none wrote: refuting it
     * means visiting every subset of the writes, far beyond a budget of 500. */
    struct lincheck *lc = h_new();
    for (uint64_t i = 0; i < 20; i++) {
        put(lc, 1, i + 1, i, 100 + i);
    }
    get(lc, 1, 1000, 50, 60);
    lincheck_set_budget(lc, 500, 1u << 20);
    struct lincheck_result r;
    assert_int_equal(lincheck_check(lc, &r), LINCHECK_UNKNOWN);
    assert_int_equal(r.keys_unknown, 1);
    assert_int_equal(r.key, 1);
    lincheck_set_budget(lc, 1u << 20, 200);
    assert_int_equal(lincheck_check(lc, &r), LINCHECK_UNKNOWN);
    lincheck_destroy(lc);
}

/* ---- Randomized ------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return rng_next(s) % n;
}

#define RKEYS 4u

/* Ops executed one at a time in order, op i linearized at time 100*i + 50. */
static void random_sequential(struct lincheck *lc, uint64_t *rng, uint32_t nops)
{
    uint64_t reg[RKEYS] = { 0 };
    uint64_t next_value = 1;
    for (uint32_t i = 0; i < nops; i++) {
        uint64_t key = rng_below(rng, RKEYS);
        struct lincheck_op op = { .key = key, .invoke_time = 100u * i + 40u, .return_time = 100u * i + 60u };
        uint64_t r = rng_below(rng, 10);
        if (r < 4) {
            op.kind = LINCHECK_PUT;
            op.value = next_value++;
            reg[key] = op.value;
        } else if (r < 8) {
            op.kind = LINCHECK_GET;
            op.value = reg[key];
            op.status = reg[key] != 0 ? 0 : NF;
        } else {
            op.kind = LINCHECK_DEL;
            op.status = reg[key] != 0 ? 0 : NF;
            reg[key] = 0;
        }
        assert_int_equal(lincheck_add(lc, &op), 0);
    }
}

/* Widening intervals around the true linearization points keeps the history
 * linearizable; so does forgetting the outcome of an op that took effect. */
static void widen(struct lincheck *lc, uint64_t *rng)
{
    for (uint32_t i = 0; i < lincheck_count(lc); i++) {
        struct lincheck_op *op = (struct lincheck_op *)lincheck_get(lc, i);
        uint64_t lo = rng_below(rng, 4) == 0 ? rng_below(rng, 800) : rng_below(rng, 40);
        uint64_t hi = rng_below(rng, 4) == 0 ? rng_below(rng, 800) : rng_below(rng, 40);
        op->invoke_time = op->invoke_time > lo ? op->invoke_time - lo : 0;
        op->return_time += hi;
        if (rng_below(rng, 50) == 0) {
            op->return_time = LINCHECK_PENDING;
        }
    }
}

static int find_completed_get(struct lincheck *lc, uint64_t *rng)
{
    uint32_t n = lincheck_count(lc);
    uint32_t start = (uint32_t)rng_below(rng, n);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (start + k) % n;
        const struct lincheck_op *op = lincheck_get(lc, i);
        if (op->kind == LINCHECK_GET && op->return_time != LINCHECK_PENDING) {
            return (int)i;
        }
    }
    return -1;
}

static void test_random_sequential_and_widened(void **state)
{
    (void)state;
    struct lincheck *lc = lincheck_create(400);
    assert_non_null(lc);
    for (uint64_t seed = 1; seed <= 300; seed++) {
        uint64_t rng = seed * 0x9E3779B97F4A7C15ull;
        lincheck_reset(lc);
        random_sequential(lc, &rng, 40u + (uint32_t)rng_below(&rng, 300));
        assert_int_equal(verdict(lc), LINCHECK_OK);

        /* Strictly sequential: any other answer to a read is impossible. */
        int g = find_completed_get(lc, &rng);
        if (g >= 0) {
            struct lincheck_op *op = (struct lincheck_op *)lincheck_get(lc, (uint32_t)g);
            struct lincheck_op saved = *op;
            op->value = op->value != 0 ? (rng_below(&rng, 2) == 0 ? 0 : op->value + 1) : 1;
            op->status = op->value != 0 ? 0 : NF;
            /* value+1 or 1 may have been written, but never as the current value:
             * values are unique and the history is sequential. */
            assert_int_equal(verdict(lc), LINCHECK_VIOLATION);
            *op = saved;
        }

        widen(lc, &rng);
        struct lincheck_result r;
        int v = lincheck_check(lc, &r);
        if (v != LINCHECK_OK) {
            lincheck_print_key(lc, r.key, r.stuck_op, stderr);
        }
        assert_int_equal(v, LINCHECK_OK);

        g = find_completed_get(lc, &rng);
        if (g >= 0) {
            struct lincheck_op *op = (struct lincheck_op *)lincheck_get(lc, (uint32_t)g);
            op->value = 1000000u + seed; /* never written */
            op->status = 0;
            assert_int_equal(lincheck_check(lc, &r), LINCHECK_VIOLATION);
            assert_int_equal(r.key, op->key);
        }
    }
    lincheck_destroy(lc);
}

/* A simulator-sized concurrent history: C clients, each running ops back to back
 * with random durations; each op takes effect at a random instant inside its
 * interval, and its result comes from applying the ops in that order. */
struct gen_op {
    struct lincheck_op op;
    uint64_t point;
};

static int gen_cmp(const void *a, const void *b)
{
    const struct gen_op *x = a, *y = b;
    return x->point < y->point ? -1 : (x->point > y->point ? 1 : 0);
}

static void test_random_concurrent_large(void **state)
{
    (void)state;
    enum { CLIENTS = 16, PER_CLIENT = 250, KEYS = 8, TOTAL = CLIENTS * PER_CLIENT };
    struct gen_op *g = calloc(TOTAL, sizeof *g);
    assert_non_null(g);
    struct lincheck *lc = lincheck_create(TOTAL);
    assert_non_null(lc);
    for (uint64_t seed = 1; seed <= 6; seed++) {
        uint64_t rng = seed * 0xD1B54A32D192ED03ull;
        uint32_t k = 0;
        for (uint32_t c = 0; c < CLIENTS; c++) {
            uint64_t t = rng_below(&rng, 100);
            for (uint32_t i = 0; i < PER_CLIENT; i++) {
                struct gen_op *o = &g[k++];
                memset(o, 0, sizeof *o);
                uint64_t dur = 1 + rng_below(&rng, rng_below(&rng, 10) == 0 ? 2000 : 200);
                o->op.key = rng_below(&rng, KEYS);
                o->op.client = c;
                o->op.invoke_time = t;
                o->op.return_time = t + dur;
                o->point = t + rng_below(&rng, dur + 1);
                uint64_t r = rng_below(&rng, 10);
                o->op.kind = r < 4 ? LINCHECK_PUT : (r < 9 ? LINCHECK_GET : LINCHECK_DEL);
                t += dur + 1 + rng_below(&rng, 50);
            }
        }
        qsort(g, TOTAL, sizeof *g, gen_cmp);
        uint64_t reg[KEYS] = { 0 };
        uint64_t next_value = 1;
        for (uint32_t i = 0; i < TOTAL; i++) {
            struct lincheck_op *op = &g[i].op;
            if (op->kind == LINCHECK_PUT) {
                op->value = next_value++;
                reg[op->key] = op->value;
            } else if (op->kind == LINCHECK_GET) {
                op->value = reg[op->key];
                op->status = op->value != 0 ? 0 : NF;
            } else {
                op->status = reg[op->key] != 0 ? 0 : NF;
                reg[op->key] = 0;
            }
        }
        /* The last op of a few clients never returns. */
        lincheck_reset(lc);
        for (uint32_t i = 0; i < TOTAL; i++) {
            struct lincheck_op op = g[i].op;
            if (op.client % 5 == 0 && i + 200 > TOTAL) {
                op.return_time = LINCHECK_PENDING;
            }
            assert_int_equal(lincheck_add(lc, &op), 0);
        }
        struct lincheck_result r;
        assert_int_equal(lincheck_check(lc, &r), LINCHECK_OK);
        assert_int_equal(r.keys_checked, KEYS);

        int gi = find_completed_get(lc, &rng);
        assert_true(gi >= 0);
        struct lincheck_op *op = (struct lincheck_op *)lincheck_get(lc, (uint32_t)gi);
        op->value = UINT64_MAX; /* never written */
        op->status = 0;
        assert_int_equal(lincheck_check(lc, &r), LINCHECK_VIOLATION);
        assert_int_equal(r.key, op->key);
        assert_int_equal(r.keys_violating, 1);
    }
    lincheck_destroy(lc);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_sequential),
        cmocka_unit_test(test_concurrent_writes_either),
        cmocka_unit_test(test_pending_write),
        cmocka_unit_test(test_equal_times_overlap),
        cmocka_unit_test(test_stale_read),
        cmocka_unit_test(test_read_never_written),
        cmocka_unit_test(test_new_old_inversion),
        cmocka_unit_test(test_del_status),
        cmocka_unit_test(test_lost_update),
        cmocka_unit_test(test_absent_after_put),
        cmocka_unit_test(test_keys_independent_and_report),
        cmocka_unit_test(test_validation_and_two_step),
        cmocka_unit_test(test_budget_unknown),
        cmocka_unit_test(test_random_sequential_and_widened),
        cmocka_unit_test(test_random_concurrent_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
