/* Unit tests of the placement (cluster/placement.c): a key's partition and each
 * partition's replica set, by rendezvous hashing and by a ring of virtual points,
 * with the numbers docs/design.md §6 quotes (printed):
 *
 *  - every set holds rf distinct nodes; the same inputs give the same sets;
 *  - balance: the most loaded node's partition replicas over the mean, at
 *    M in {4, 10, 50}, P in {64, 256, 1024}, R in {4, 7};
 *  - movement: adding a node moves about R*P/(M+1) replicas (the ideal: the new
 *    node's fair share); removing one moves exactly the replicas it held, and no
 *    set without it changes;
 *  - keys spread over the partitions, and bad arguments are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"

#define VNODES 128u

enum method { RENDEZVOUS, RING };

static int place(enum method how, const uint32_t *ids, uint16_t m, uint32_t p, uint16_t r, uint16_t *out)
{
    return how == RENDEZVOUS ? cluster_placement_rendezvous(ids, m, p, r, out)
                             : cluster_placement_ring(ids, m, p, r, VNODES, out);
}

static void ids_make(uint32_t *ids, uint16_t m)
{
    for (uint16_t i = 0; i < m; i++)
        ids[i] = 1000u + 7u * i; /* not 0..m-1: ids are names, not positions */
}

static bool in_set(const uint16_t *set, uint16_t r, uint32_t id, const uint32_t *ids)
{
    for (uint16_t j = 0; j < r; j++)
        if (ids[set[j]] == id)
            return true;
    return false;
}

/* Replicas that moved between two placements (by node id): per partition, the
 * ids in the new set that were not in the old one. */
static uint64_t moves(const uint16_t *a, const uint32_t *ida, const uint16_t *b, const uint32_t *idb, uint32_t p,
                      uint16_t r)
{
    uint64_t n = 0;
    for (uint32_t q = 0; q < p; q++)
        for (uint16_t j = 0; j < r; j++)
            n += !in_set(a + (size_t)q * r, r, idb[b[(size_t)q * r + j]], ida);
    return n;
}

static void test_sets_valid_and_stable(void **state)
{
    (void)state;
    uint32_t ids[10];
    ids_make(ids, 10);
    static uint16_t a[256 * 7], b[256 * 7];
    for (int how = RENDEZVOUS; how <= RING; how++) {
        assert_int_equal(place((enum method)how, ids, 10, 256, 7, a), 0);
        assert_int_equal(place((enum method)how, ids, 10, 256, 7, b), 0);
        assert_memory_equal(a, b, sizeof a);
        for (uint32_t q = 0; q < 256; q++)
            for (uint16_t j = 0; j < 7; j++) {
                assert_true(a[q * 7 + j] < 10);
                for (uint16_t k = 0; k < j; k++)
                    assert_int_not_equal(a[q * 7 + j], a[q * 7 + k]);
            }
    }
}

static void test_balance_and_movement(void **state)
{
    (void)state;
    static const uint16_t ms[] = {4, 10, 50};
    static const uint32_t ps[] = {64, 256, 1024};
    static const uint16_t rs[] = {4, 7};
    uint32_t ids[51], ids_less[50];
    static uint16_t a[1024 * 7], b[1024 * 7];
    print_message("method      M     P  R   mean  max/mean  add: moved/ideal  remove: moved = held\n");
    for (int how = RENDEZVOUS; how <= RING; how++) {
        for (size_t mi = 0; mi < 3; mi++) {
            for (size_t pi = 0; pi < 3; pi++) {
                for (size_t ri = 0; ri < 2; ri++) {
                    uint16_t m = ms[mi], r = rs[ri];
                    uint32_t p = ps[pi];
                    if (r > m)
                        continue;
                    ids_make(ids, (uint16_t)(m + 1u));
                    assert_int_equal(place((enum method)how, ids, m, p, r, a), 0);
                    uint32_t load[51] = {0};
                    for (size_t k = 0; k < (size_t)p * r; k++)
                        load[a[k]]++;
                    uint32_t max = 0;
                    for (uint16_t i = 0; i < m; i++)
                        max = load[i] > max ? load[i] : max;
                    double mean = (double)p * r / m, ratio = max / mean;
                    /* Adding node m (ids[m]). */
                    assert_int_equal(place((enum method)how, ids, (uint16_t)(m + 1u), p, r, b), 0);
                    double ideal = (double)r * p / (m + 1u);
                    uint64_t added = moves(a, ids, b, ids, p, r);
                    /* Removing node 0: ids[1..m-1]. */
                    memcpy(ids_less, ids + 1, (size_t)(m - 1u) * sizeof ids[0]);
                    uint64_t removed = 0, unchanged_broken = 0;
                    if (m - 1u >= r) {
                        assert_int_equal(place((enum method)how, ids_less, (uint16_t)(m - 1u), p, r, b), 0);
                        removed = moves(a, ids, b, ids_less, p, r);
                        for (uint32_t q = 0; q < p; q++) {
                            if (in_set(a + (size_t)q * r, r, ids[0], ids))
                                continue;
                            for (uint16_t j = 0; j < r; j++) /* a set without node 0 stays as it was */
                                unchanged_broken += ids_less[b[(size_t)q * r + j]] != ids[a[(size_t)q * r + j]];
                        }
                        assert_int_equal(unchanged_broken, 0);
                        assert_int_equal(removed, load[0]); /* exactly what node 0 held */
                    }
                    print_message(m - 1u >= r ? "%-10s %2u %5u %2u %6.1f %9.2f %8.2f (%llu/%.0f) %8llu = %u\n"
                                              : "%-10s %2u %5u %2u %6.1f %9.2f %8.2f (%llu/%.0f)   (m-1 < R)\n",
                                  how == RENDEZVOUS ? "rendezvous" : "ring", m, p, r, mean, ratio, (double)added / ideal,
                                  (unsigned long long)added, ideal, (unsigned long long)removed, load[0]);
                    /* Bounds that a placement piling partitions on a few nodes, or
                     * reshuffling on a join, breaks: the most loaded node within
                     * 1 + 4/sqrt(mean) of the mean (plus, for the ring, the
                     * unevenness of V points per node, which more partitions do
                     * not smooth: 3/sqrt(V)), a join moving at most 1.6x its fair
                     * share (and at least half of it). */
                    double slack = how == RING ? 3.0 / sqrt((double)VNODES) : 0.0;
                    assert_true(ratio <= 1.0 + 4.0 / sqrt(mean) + slack);
                    assert_true((double)added <= 1.6 * ideal);
                    assert_true((double)added >= 0.5 * ideal);
                }
            }
        }
    }
}

static void test_key_partitions(void **state)
{
    (void)state;
    uint32_t count[256] = {0};
    char key[32];
    for (int i = 0; i < 256 * 200; i++) {
        int n = snprintf(key, sizeof key, "key-%d", i);
        uint32_t p = cluster_key_partition(key, (size_t)n, 256);
        assert_true(p < 256);
        assert_int_equal(cluster_key_partition(key, (size_t)n, 256), p);
        count[p]++;
    }
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int p = 0; p < 256; p++) {
        lo = count[p] < lo ? count[p] : lo;
        hi = count[p] > hi ? count[p] : hi;
    }
    print_message("keys: 51,200 over 256 partitions: min %u, max %u (mean 200)\n", lo, hi);
    assert_true(lo >= 140 && hi <= 260); /* about +-4 standard deviations */
    /* One partition: everything in it. */
    assert_int_equal(cluster_key_partition("x", 1, 1), 0);
}

static void test_refused(void **state)
{
    (void)state;
    uint32_t ids[4] = {1, 2, 3, 4}, dup[4] = {1, 2, 2, 4};
    uint16_t out[64 * 4];
    assert_int_equal(cluster_placement_rendezvous(ids, 4, 64, 5, out), BFTKV_E_INVAL); /* rf > m */
    assert_int_equal(cluster_placement_rendezvous(ids, 4, 48, 4, out), BFTKV_E_INVAL); /* not a power of two */
    assert_int_equal(cluster_placement_rendezvous(dup, 4, 64, 4, out), BFTKV_E_INVAL); /* repeated id */
    assert_int_equal(cluster_placement_ring(ids, 4, 64, 4, 0, out), BFTKV_E_INVAL);     /* no points */
    assert_int_equal(cluster_placement_ring(dup, 4, 64, 4, 8, out), BFTKV_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets_valid_and_stable),
        cmocka_unit_test(test_balance_and_movement),
        cmocka_unit_test(test_key_partitions),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
