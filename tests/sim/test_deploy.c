/* The deployment's mapping from nodes to a partition's replicas (deploy.h):
 * faults, crashes and the restart shape follow the node into every partition
 * it hosts and nowhere else, a network cut between nodes cuts exactly the
 * groups that span it, and a run routes keys and checks per partition.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "cluster/cluster.h"
#include "engine/byzantine.h"
#include "tests/sim/deploy.h"
#include "tests/sim/scenario.h"

#define MS 1000000ull
#define M 7u
#define R 4u
#define CLIENTS 2u

static void test_faults_follow_the_node(void **state)
{
    (void)state;
    struct scenario *nodes = calloc(1, sizeof *nodes), *s = calloc(1, sizeof *s);
    assert_non_null(nodes);
    assert_non_null(s);
    nodes->faulty[2] = true;
    nodes->behaviour[2] = BYZ_EQUIVOCATE;
    nodes->excluded[2] = true;
    nodes->crash[5] = true;
    nodes->crash_at[5] = 3 * MS;
    nodes->restart_at[5] = 9 * MS;
    nodes->excluded[5] = true;
    nodes->restart.on = true;
    nodes->restart.k = 3;
    nodes->restart.wiped = 2;
    nodes->restart.member[1] = nodes->restart.member[3] = nodes->restart.member[4] = true;
    nodes->restart.wipe[1] = nodes->restart.wipe[4] = true;
    nodes->restart.down_ns[1] = 7 * MS;
    nodes->restart.down_ns[3] = 8 * MS;

    /* Nodes 3, 2, 6, 1: node 2 is replica 1, node 3 paused (replica 0), node 1
     * wiped (replica 3); node 5's crash and node 4's wipe are elsewhere. One
     * wiped of four keeps q = 3 holding state: the partition recovers. */
    const uint16_t set[R] = {3, 2, 6, 1};
    deploy_partition_scenario(nodes, set, R, 1, false, s);
    assert_true(s->faulty[1]);
    assert_int_equal(s->behaviour[1], BYZ_EQUIVOCATE);
    assert_true(s->excluded[1]);
    assert_false(s->faulty[0] || s->faulty[2] || s->faulty[3] || s->faulty[5]);
    for (uint16_t j = 0; j < BFTKV_REPLICAS_MAX; j++)
        assert_false(s->crash[j]);
    assert_true(s->restart.on);
    assert_int_equal(s->restart.k, 2);
    assert_int_equal(s->restart.wiped, 1);
    assert_true(s->restart.member[0] && !s->restart.wipe[0]);
    assert_int_equal(s->restart.down_ns[0], 8 * MS);
    assert_true(s->restart.member[3] && s->restart.wipe[3]);
    assert_int_equal(s->restart.down_ns[3], 7 * MS);
    assert_false(s->restart.refuse);

    /* Nodes 5, 4, 1, 0: node 5 crashes there at the same instants; nodes 4 and
     * 1 wiped leave two of four holding state: the partition must refuse. */
    const uint16_t set2[R] = {5, 4, 1, 0};
    deploy_partition_scenario(nodes, set2, R, 1, false, s);
    assert_true(s->crash[0]);
    assert_int_equal(s->crash_at[0], 3 * MS);
    assert_int_equal(s->restart_at[0], 9 * MS);
    assert_true(s->excluded[0]);
    assert_false(s->faulty[0] || s->faulty[1] || s->faulty[2] || s->faulty[3]);
    assert_int_equal(s->restart.k, 2);
    assert_int_equal(s->restart.wiped, 2);
    assert_true(s->restart.refuse);

    /* Nodes 0, 5, 6, 2 host no member of the restart: no restart there. */
    const uint16_t set3[R] = {0, 5, 6, 2};
    deploy_partition_scenario(nodes, set3, R, 1, false, s);
    assert_false(s->restart.on);
    assert_false(s->restart.refuse);
    free(nodes);
    free(s);
}

static void net_make(struct netsim *ns, uint32_t nodes)
{
    struct netsim_config cfg = {.latency_ns = 100000u, .gst_ns = 1000u * MS};
    assert_int_equal(netsim_init(ns, nodes, &cfg, 1), 0);
}

static void test_cuts_span_the_groups_that_cross_them(void **state)
{
    (void)state;
    struct netsim nodes_net, a, b;
    net_make(&nodes_net, M + CLIENTS);
    /* Node 4 alone with client 1 for 10..20 ms; the link 2-6 cut for 0..50 ms. */
    uint8_t *cut = netsim_partition_add(&nodes_net, 10 * MS, 20 * MS);
    cut[4] = 1;
    cut[M + 1] = 1;
    cut = netsim_partition_add_kind(&nodes_net, NETSIM_CUT_LINK, 0, 50 * MS, 0, 0);
    cut[2] = 1;
    cut[6] = 2;

    const uint16_t set_a[R] = {6, 4, 1, 2}; /* spans both cuts */
    const uint16_t set_b[R] = {0, 1, 3, 5}; /* spans neither */
    net_make(&a, R + CLIENTS);
    net_make(&b, R + CLIENTS);
    deploy_partition_net(&nodes_net, set_a, R, M, CLIENTS, &a);
    deploy_partition_net(&nodes_net, set_b, R, M, CLIENTS, &b);

    /* Node 4 is replica 1 of a: cut from the others and from client 0, not
     * from client 1 (same side), only while the split lasts. */
    assert_true(netsim_cut(&a, 15 * MS, 1, 0));
    assert_true(netsim_cut(&a, 15 * MS, R + 0, 1));
    assert_false(netsim_cut(&a, 15 * MS, R + 1, 1));
    assert_false(netsim_cut(&a, 25 * MS, 1, 0));
    /* Nodes 6 and 2 are replicas 0 and 3 of a: their link is cut both ways. */
    assert_true(netsim_cut(&a, 30 * MS, 0, 3));
    assert_true(netsim_cut(&a, 30 * MS, 3, 0));
    assert_false(netsim_cut(&a, 30 * MS, 0, 2));
    /* b has none of nodes 2, 4 and 6: the split leaves it whole (client 1 is
     * on the other side, and so cut from its replicas), the link is not there. */
    for (uint32_t x = 0; x < R; x++)
        for (uint32_t y = 0; y < R; y++)
            assert_false(netsim_cut(&b, 15 * MS, x, y));
    assert_true(netsim_cut(&b, 15 * MS, R + 1, 0));
    assert_false(netsim_cut(&b, 15 * MS, R + 0, 0));
    netsim_destroy(&a);
    netsim_destroy(&b);
    netsim_destroy(&nodes_net);
}

/* A whole seed: the deployment runs and checks every partition; with a bug the
 * checkers find, its failure names the partition. */
static void test_a_run_checks_every_partition(void **state)
{
    (void)state;
    struct sim_options o;
    sim_options_defaults(&o);
    o.deploy_nodes = 5;
    o.n = 4;
    o.f = 1;
    o.deploy_partitions = 4;
    o.clients = 3;
    o.requests = 10;
    struct sim_context ctx;
    sim_context_init(&ctx);
    struct sim_result res;
    assert_int_equal(simrun_one(&o, &ctx, 7, &res), 0);
    assert_int_equal(res.verdict, SIM_OK);
    /* Every (client, partition) ran its 10 operations, and client 0 read every
     * key of each partition at the end. */
    assert_true(res.committed > 4u * 3u * 10u);
    assert_non_null(strstr(res.scenario, "deploy: M=5 R=4 P=4 f=1"));

    /* Node 0 equivocating in the partitions it leads, with backups that ignore
     * the digest: agreement breaks in one of them. */
    o.faults = SIM_FAULTS_BYZANTINE;
    o.faulty_count = 1;
    o.faulty[0] = 0;
    o.behaviour = BYZ_EQUIVOCATE;
    o.check_liveness = false;
    o.bugs = PBFT_BUG_IGNORE_DIGEST;
    bool found = false;
    for (uint64_t seed = 1; seed <= 20 && !found; seed++) {
        assert_int_equal(simrun_one(&o, &ctx, seed, &res), 0);
        found = res.verdict == SIM_SAFETY;
    }
    assert_true(found);
    assert_non_null(strstr(res.what, "partition "));
    sim_context_destroy(&ctx);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_follow_the_node),
        cmocka_unit_test(test_cuts_span_the_groups_that_cross_them),
        cmocka_unit_test(test_a_run_checks_every_partition),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
