/* The read-only path with one replica cut off from the others but not from the
 * clients (docs/design.md §5.3, "The read-only path"), on the scripted fixture
 * (fixture.h): the cut-off replica keeps answering read-only GETs at once with
 * the state it had when the cut came, while a writer keeps changing the keys the
 * reader reads.
 *
 * Two shapes: a backup cut off (the group goes on in view 0), and the primary of
 * view 0 cut off (the others change view without it; it stays in view 0 and
 * answers reads from its stale store). The reader's GETs must all complete with
 * none ordered (readonly_fallbacks = 0): a stale replica costs a read at most a
 * second request -- for the full result, or a second round -- never the
 * fallback. The test prints the reader's counters and its GETs' mean simulated
 * latency (docs/benchmarks.md quotes them); it asserts counts, never times.
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
#include "tests/sim/fixture.h"

#define KEYS 8u
#define LANES 3u
#define GETS 800u
#define STEPS_MAX 20000000u
#define WARMUP_PUTS 16u

enum { WRITER = 0, READER = 1 };

struct run {
    uint32_t gets_done;
    uint32_t puts_done;
    uint64_t get_ns_total;
    uint64_t submitted_ns[LANES];
};

/* Cut replica x off from the other replicas, both ways; clients still reach it. */
static void cut_off(struct fixture *fx, uint16_t x, uint16_t n)
{
    for (uint16_t r = 0; r < n; r++) {
        if (r != x) {
            fixture_drop(fx, FIXTURE_ANY, x, r, FIXTURE_FOREVER);
            fixture_drop(fx, FIXTURE_ANY, r, x, FIXTURE_FOREVER);
        }
    }
}

static void keep_busy(struct fixture *fx, struct run *rn, uint32_t *put_seq, uint32_t *get_seq, bool reads)
{
    char key[16], val[32];
    for (;;) {
        snprintf(key, sizeof key, "k%u", *put_seq % KEYS);
        snprintf(val, sizeof val, "v%u", *put_seq);
        if (fixture_submit(fx, WRITER, WIRE_OP_PUT, key, val) < 0)
            break;
        (*put_seq)++;
    }
    while (reads && *get_seq < GETS) {
        snprintf(key, sizeof key, "k%u", (*get_seq * 3u) % KEYS);
        int lane = fixture_submit(fx, READER, WIRE_OP_GET, key, NULL);
        if (lane < 0)
            break;
        assert_true((uint32_t)lane < LANES);
        rn->submitted_ns[lane] = fixture_now(fx);
        (*get_seq)++;
    }
}

static void collect(struct fixture *fx, struct run *rn)
{
    struct fixture_result res;
    while (fixture_run_until_complete(fx, WRITER, 0, &res)) {
        assert_int_equal(res.status, 0);
        rn->puts_done++;
    }
    while (fixture_run_until_complete(fx, READER, 0, &res)) {
        assert_int_equal(res.op, WIRE_OP_GET);
        assert_true(res.status == 0 || res.status == BFTKV_E_NOT_FOUND);
        rn->get_ns_total += fixture_now(fx) - rn->submitted_ns[res.lane];
        rn->gets_done++;
    }
}

static void run_shape(uint16_t cut, const char *name)
{
    struct fixture_config cfg;
    fixture_config_defaults(&cfg);
    cfg.clients = 2;
    cfg.lanes = LANES;
    cfg.readonly = true; /* the writer only PUTs: the setting matters to the reader */
    struct fixture *fx = NULL;
    assert_int_equal(fixture_create(&cfg, &fx), 0);
    struct fixture_result res;
    char key[16];
    for (uint32_t k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "k%u", k);
        assert_true(fixture_do(fx, WRITER, WIRE_OP_PUT, key, "init", STEPS_MAX, &res));
    }
    cut_off(fx, cut, cfg.n);

    struct run rn;
    memset(&rn, 0, sizeof rn);
    uint32_t put_seq = 0, get_seq = 0;
    /* Reads start once writes complete again: with the primary cut off, after
     * the others changed view. */
    for (uint64_t i = 0; i < STEPS_MAX && rn.puts_done < WARMUP_PUTS; i++) {
        keep_busy(fx, &rn, &put_seq, &get_seq, false);
        assert_true(fixture_step(fx));
        collect(fx, &rn);
    }
    assert_true(rn.puts_done >= WARMUP_PUTS);
    uint32_t puts_before = rn.puts_done;
    uint64_t start = fixture_now(fx);
    for (uint64_t i = 0; i < STEPS_MAX && rn.gets_done < GETS; i++) {
        keep_busy(fx, &rn, &put_seq, &get_seq, true);
        assert_true(fixture_step(fx));
        collect(fx, &rn);
    }
    assert_int_equal(rn.gets_done, GETS);

    const struct pbft_client_stats *st = pbft_client_stats(cluster_client(fixture_cluster(fx), READER));
    printf("readonly_stale %s: gets=%u puts=%u sim=%.1fms get_mean=%.3fms ro_submitted=%llu fallbacks=%llu "
           "(%.2f%%) retries=%llu resends=%llu full_requests=%llu stale_marks=%llu replica%u_stale=%d\n",
           name, rn.gets_done, rn.puts_done - puts_before, (double)(fixture_now(fx) - start) / 1e6,
           (double)rn.get_ns_total / rn.gets_done / 1e6, (unsigned long long)st->readonly_submitted,
           (unsigned long long)st->readonly_fallbacks, 100.0 * (double)st->readonly_fallbacks / GETS,
           (unsigned long long)st->readonly_retries, (unsigned long long)st->readonly_resends,
           (unsigned long long)st->full_result_requests, (unsigned long long)st->readonly_stale_marks, cut,
           pbft_client_replica_stale(cluster_client(fixture_cluster(fx), READER), cut, fixture_now(fx)));
    assert_true(rn.puts_done > puts_before); /* the writer kept the keys moving */
    assert_int_equal(st->readonly_submitted, GETS);
    assert_int_equal(st->readonly_fallbacks, 0);
    assert_true(pbft_client_replica_stale(cluster_client(fixture_cluster(fx), READER), cut, fixture_now(fx)));
    fixture_destroy(fx);
}

static void test_stale_backup(void **state)
{
    (void)state;
    run_shape(3, "backup-3-cut");
}

static void test_stale_primary(void **state)
{
    (void)state;
    run_shape(0, "primary-0-cut");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stale_backup),
        cmocka_unit_test(test_stale_primary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
