/* The simulated network's partition kinds and the link shapes built on them
 * (netsim.h, links.h): which links each cuts, in which direction, and when --
 * flapping included -- and that a drawn plan replays from its seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tests/sim/links.h"
#include "tests/sim/netsim.h"

#define MS 1000000ull
#define NODES 6u /* 4 replicas, 2 clients */

static void net_make(struct netsim *ns)
{
    struct netsim_config cfg = {.latency_ns = 100000u, .gst_ns = 1000u * MS};
    assert_int_equal(netsim_init(ns, NODES, &cfg, 1), 0);
}

static void test_split_cuts_both_ways_between_sides(void **state)
{
    (void)state;
    struct netsim ns;
    net_make(&ns);
    uint8_t *cut = netsim_partition_add(&ns, 10 * MS, 20 * MS);
    cut[0] = 1;
    cut[4] = 1;
    assert_true(netsim_cut(&ns, 10 * MS, 0, 1));
    assert_true(netsim_cut(&ns, 15 * MS, 1, 0));
    assert_false(netsim_cut(&ns, 15 * MS, 0, 4)); /* same side */
    assert_false(netsim_cut(&ns, 15 * MS, 2, 3));
    assert_false(netsim_cut(&ns, 9 * MS, 0, 1));  /* before */
    assert_false(netsim_cut(&ns, 20 * MS, 0, 1)); /* healed */
    netsim_destroy(&ns);
}

static void test_oneway_cuts_one_direction(void **state)
{
    (void)state;
    struct netsim ns;
    net_make(&ns);
    uint8_t *cut = netsim_partition_add_kind(&ns, NETSIM_CUT_ONEWAY, 0, 50 * MS, 0, 0);
    memset(cut, 1, NODES); /* replica 0 deaf: everyone sends, it hears nothing */
    cut[0] = 2;
    for (uint32_t from = 1; from < NODES; from++) {
        assert_true(netsim_cut(&ns, MS, from, 0));
        assert_false(netsim_cut(&ns, MS, 0, from));
    }
    assert_false(netsim_cut(&ns, MS, 1, 2));
    netsim_destroy(&ns);
}

static void test_link_cuts_only_that_link(void **state)
{
    (void)state;
    struct netsim ns;
    net_make(&ns);
    uint8_t *cut = netsim_partition_add_kind(&ns, NETSIM_CUT_LINK, 0, 50 * MS, 0, 0);
    cut[0] = 1;
    cut[1] = 2;
    assert_true(netsim_cut(&ns, MS, 0, 1));
    assert_true(netsim_cut(&ns, MS, 1, 0));
    for (uint32_t other = 2; other < NODES; other++) {
        assert_false(netsim_cut(&ns, MS, 0, other));
        assert_false(netsim_cut(&ns, MS, other, 1));
    }
    netsim_destroy(&ns);
}

static void test_flapping_comes_and_goes(void **state)
{
    (void)state;
    struct netsim ns;
    net_make(&ns);
    /* In force 10 ms, healed 5 ms, from 100 ms to 145 ms: 100-110, 115-125, 130-140. */
    uint8_t *cut = netsim_partition_add_kind(&ns, NETSIM_CUT_SPLIT, 100 * MS, 145 * MS, 10 * MS, 5 * MS);
    cut[2] = 1;
    assert_true(netsim_cut(&ns, 100 * MS, 2, 0));
    assert_true(netsim_cut(&ns, 109 * MS, 0, 2));
    assert_false(netsim_cut(&ns, 110 * MS, 2, 0));
    assert_false(netsim_cut(&ns, 114 * MS, 2, 0));
    assert_true(netsim_cut(&ns, 115 * MS, 2, 0));
    assert_false(netsim_cut(&ns, 127 * MS, 2, 0));
    assert_true(netsim_cut(&ns, 139 * MS, 2, 0));
    assert_false(netsim_cut(&ns, 144 * MS, 2, 0));
    assert_false(netsim_cut(&ns, 145 * MS, 2, 0));
    netsim_destroy(&ns);
}

/* A drawn cut-link plan cuts exactly the link it names, and the same seed
 * draws the same plan. */
static void test_cut_link_plan(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct prng a, b;
        prng_seed(&a, seed);
        prng_seed(&b, seed);
        struct link_plan p, q;
        link_plan_draw(&p, &a, 4, LINK_CUT);
        link_plan_draw(&q, &b, 4, LINK_CUT);
        assert_memory_equal(&p, &q, sizeof(p));
        assert_true(p.count >= 1 && p.count <= LINKS_MAX);
        struct netsim ns;
        net_make(&ns);
        assert_true(link_plan_apply(&p, &ns, 4, NODES));
        const struct link_fault *lf = &p.f[0];
        assert_int_equal(lf->kind, LINK_CUT);
        assert_int_not_equal(lf->a, lf->b);
        assert_true(lf->end_ns <= p.end_ns);
        uint64_t mid = (lf->start_ns + lf->end_ns) / 2u;
        assert_true(netsim_cut(&ns, mid, lf->a, lf->b));
        assert_true(netsim_cut(&ns, mid, lf->b, lf->a));
        assert_false(netsim_cut(&ns, p.end_ns, lf->a, lf->b)); /* healed at the plan's end */
        if (p.count == 1) {
            for (uint32_t x = 0; x < NODES; x++)
                for (uint32_t y = 0; y < NODES; y++)
                    if (!((x == lf->a && y == lf->b) || (x == lf->b && y == lf->a)))
                        assert_false(netsim_cut(&ns, mid, x, y));
        }
        netsim_destroy(&ns);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_cuts_both_ways_between_sides),
        cmocka_unit_test(test_oneway_cuts_one_direction),
        cmocka_unit_test(test_link_cuts_only_that_link),
        cmocka_unit_test(test_flapping_comes_and_goes),
        cmocka_unit_test(test_cut_link_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
