/* Where partitions live (docs/design.md §6; DESIGN's "Scale-out"): the key space is
 * cut into P partitions (P a power of two), a key belongs to partition
 * H(key) mod P, and partition p is replicated on R distinct nodes chosen by one of
 * two consistent placements over the M nodes:
 *
 *   - rendezvous (highest random weight): the R nodes with the highest H(p, node);
 *   - ring: V virtual points per node on a 64-bit ring, the first R distinct nodes
 *     clockwise from H(p).
 *
 * Both move only the partitions that must move when a node joins or leaves; they
 * differ in balance and cost (tests/cluster/test_placement.c measures both, and
 * docs/design.md §6 records the choice). H is SipHash-2-4 under a fixed, public
 * key: a client computes the same placement as every node, from the map alone.
 * Pure functions: no allocation beyond the caller's buffers and the ring's
 * sorted points, which the caller frees.
 */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "common/assert.h"
#include "engine/wire_le.h"

/* The public key of the placement hash: a constant, not a secret (routing must be
 * computable by anyone holding the map). */
static const uint8_t placement_key[crypto_shorthash_siphash24_KEYBYTES] = "bftkv-placement";

static uint64_t h64(const uint8_t *p, size_t len)
{
    uint8_t out[crypto_shorthash_siphash24_BYTES];
    crypto_shorthash_siphash24(out, p, len, placement_key);
    return le64_load(out);
}

/* H(tag, a, b): tag separates the uses (key, partition, node point, weight). */
static uint64_t h3(uint8_t tag, uint64_t a, uint64_t b)
{
    uint8_t in[17];
    in[0] = tag;
    le64_store(in + 1, a);
    le64_store(in + 9, b);
    return h64(in, sizeof in);
}

uint32_t cluster_key_partition(const void *key, size_t len, uint32_t partitions)
{
    BFTKV_ASSERT(partitions > 0 && (partitions & (partitions - 1u)) == 0);
    uint8_t buf[1 + BFTKV_KEY_MAX];
    BFTKV_ASSERT(len <= BFTKV_KEY_MAX);
    buf[0] = 'k';
    memcpy(buf + 1, key, len);
    return (uint32_t)(h64(buf, len + 1u) & (partitions - 1u));
}

static int placement_check(const uint32_t *nodes, uint16_t m, uint32_t partitions, uint16_t rf)
{
    if (nodes == NULL || m == 0 || rf == 0 || rf > m || partitions == 0 || (partitions & (partitions - 1u)) != 0)
        return BFTKV_E_INVAL;
    for (uint16_t i = 1; i < m; i++)
        for (uint16_t j = 0; j < i; j++)
            if (nodes[i] == nodes[j])
                return BFTKV_E_INVAL; /* node ids are distinct */
    return 0;
}

/* ---- Rendezvous ------------------------------------------------------------------ */

int cluster_placement_rendezvous(const uint32_t *nodes, uint16_t m, uint32_t partitions, uint16_t rf, uint16_t *out)
{
    int rc = placement_check(nodes, m, partitions, rf);
    if (rc != 0)
        return rc;
    BFTKV_ASSERT(out != NULL);
    for (uint32_t p = 0; p < partitions; p++) {
        /* The rf highest weights by insertion into a sorted prefix: rf is small. */
        uint64_t best_w[BFTKV_REPLICAS_MAX];
        uint16_t *best = out + (size_t)p * rf;
        uint16_t have = 0;
        for (uint16_t i = 0; i < m; i++) {
            uint64_t w = h3('w', p, nodes[i]);
            uint16_t at = have < rf ? have : rf;
            while (at > 0 && best_w[at - 1] < w)
                at--;
            if (at >= rf)
                continue;
            uint16_t last = have < rf ? have : (uint16_t)(rf - 1u);
            for (uint16_t k = last; k > at; k--) {
                best_w[k] = best_w[k - 1];
                best[k] = best[k - 1];
            }
            best_w[at] = w;
            best[at] = i;
            if (have < rf)
                have++;
        }
        BFTKV_ASSERT(have == rf);
    }
    return 0;
}

/* ---- Ring -------------------------------------------------------------------------- */

struct ring_point {
    uint64_t pos;
    uint16_t node; /* index into nodes[] */
};

static int point_cmp(const void *a, const void *b)
{
    const struct ring_point *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    return (int)x->node - (int)y->node;
}

int cluster_placement_ring(const uint32_t *nodes, uint16_t m, uint32_t partitions, uint16_t rf, uint32_t vnodes,
                           uint16_t *out)
{
    int rc = placement_check(nodes, m, partitions, rf);
    if (rc != 0 || vnodes == 0 || vnodes > 4096u)
        return rc != 0 ? rc : BFTKV_E_INVAL;
    BFTKV_ASSERT(out != NULL);
    size_t npoints = (size_t)m * vnodes;
    struct ring_point *pts = malloc(npoints * sizeof *pts);
    if (pts == NULL)
        return BFTKV_E_NOMEM;
    for (uint16_t i = 0; i < m; i++)
        for (uint32_t v = 0; v < vnodes; v++)
            pts[(size_t)i * vnodes + v] = (struct ring_point){.pos = h3('v', nodes[i], v), .node = i};
    qsort(pts, npoints, sizeof *pts, point_cmp);
    for (uint32_t p = 0; p < partitions; p++) {
        uint64_t at = h3('p', p, 0);
        size_t lo = 0, hi = npoints; /* first point >= at, wrapping */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2u;
            if (pts[mid].pos < at)
                lo = mid + 1u;
            else
                hi = mid;
        }
        uint16_t *set = out + (size_t)p * rf;
        uint16_t have = 0;
        for (size_t k = 0; k < npoints && have < rf; k++) {
            uint16_t node = pts[(lo + k) % npoints].node;
            bool dup = false;
            for (uint16_t j = 0; j < have && !dup; j++)
                dup = set[j] == node;
            if (!dup)
                set[have++] = node;
        }
        BFTKV_ASSERT(have == rf);
    }
    free(pts);
    return 0;
}
