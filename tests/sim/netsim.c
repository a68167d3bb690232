/* The simulated network (see netsim.h): a binary min-heap of in-flight messages
 * keyed by (delivery time, insertion counter), the fault draws made at send time,
 * and recycled reference-counted message buffers. */
#include "tests/sim/netsim.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "common/assert.h"

/* Buffers up to this size go to the small free list; larger ones (PRE-PREPAREs
 * with big batches) are sized to a datagram and go to the large list. */
#define NETSIM_SMALL_BYTES 2048u
#define NETSIM_LARGE_BYTES BFTKV_DATAGRAM_MAX
#define NETSIM_HEAP_INITIAL 1024u

int netsim_init(struct netsim *ns, uint32_t nodes, const struct netsim_config *cfg, uint64_t seed)
{
    memset(ns, 0, sizeof(*ns));
    ns->cfg = *cfg;
    ns->nodes = nodes;
    prng_seed(&ns->rng, seed);
    ns->heap_cap = NETSIM_HEAP_INITIAL;
    ns->heap = malloc(ns->heap_cap * sizeof(*ns->heap));
    ns->hold_until_ns = calloc(nodes, sizeof(*ns->hold_until_ns));
    if (!ns->heap || !ns->hold_until_ns) {
        netsim_destroy(ns);
        return BFTKV_E_NOMEM;
    }
    return 0;
}

static void free_list(struct netsim_msg *m)
{
    while (m) {
        struct netsim_msg *next;
        memcpy(&next, m->data, sizeof(next));
        free(m);
        m = next;
    }
}

void netsim_destroy(struct netsim *ns)
{
    for (size_t i = 0; i < ns->heap_len; i++)
        netsim_msg_put(ns, ns->heap[i].msg);
    free(ns->heap);
    free(ns->hold_until_ns);
    for (uint32_t i = 0; i < ns->nparts; i++)
        free(ns->parts[i].cut);
    free_list(ns->free_small);
    free_list(ns->free_large);
    memset(ns, 0, sizeof(*ns));
}

uint8_t *netsim_partition_add_kind(struct netsim *ns, enum netsim_cut_kind kind, uint64_t start_ns,
                                   uint64_t end_ns, uint64_t on_ns, uint64_t off_ns)
{
    if (ns->nparts == NETSIM_PARTITIONS_MAX)
        return NULL;
    BFTKV_ASSERT(on_ns == 0 || off_ns > 0);
    uint8_t *cut = calloc(ns->nodes, 1);
    BFTKV_ASSERT(cut != NULL);
    ns->parts[ns->nparts++] = (struct netsim_partition){
        .start_ns = start_ns, .end_ns = end_ns, .on_ns = on_ns, .off_ns = off_ns, .kind = (uint8_t)kind, .cut = cut};
    return cut;
}

uint8_t *netsim_partition_add(struct netsim *ns, uint64_t start_ns, uint64_t end_ns)
{
    return netsim_partition_add_kind(ns, NETSIM_CUT_SPLIT, start_ns, end_ns, 0, 0);
}

/* ---- Message buffers ---------------------------------------------------------- */

struct netsim_msg *netsim_msg_new(struct netsim *ns, const void *data, uint32_t len)
{
    struct netsim_msg **list;
    size_t cap;
    if (len <= NETSIM_SMALL_BYTES) {
        list = &ns->free_small;
        cap = NETSIM_SMALL_BYTES;
    } else {
        BFTKV_ASSERT(len <= NETSIM_LARGE_BYTES);
        list = &ns->free_large;
        cap = NETSIM_LARGE_BYTES;
    }
    struct netsim_msg *m = *list;
    if (m) {
        memcpy(list, m->data, sizeof(*list));
    } else {
        m = malloc(sizeof(*m) + cap);
        BFTKV_ASSERT(m != NULL);
    }
    m->refs = 1;
    m->len = len;
    memcpy(m->data, data, len);
    return m;
}

void netsim_msg_get(struct netsim_msg *m)
{
    m->refs++;
}

void netsim_msg_put(struct netsim *ns, struct netsim_msg *m)
{
    BFTKV_ASSERT(m->refs > 0);
    if (--m->refs > 0)
        return;
    struct netsim_msg **list = m->len <= NETSIM_SMALL_BYTES ? &ns->free_small : &ns->free_large;
    memcpy(m->data, list, sizeof(*list));
    *list = m;
}

/* ---- Heap --------------------------------------------------------------------- */

static inline bool entry_less(const struct netsim_entry *a, const struct netsim_entry *b)
{
    return a->at_ns < b->at_ns || (a->at_ns == b->at_ns && a->counter < b->counter);
}

static void heap_push(struct netsim *ns, struct netsim_entry e)
{
    if (ns->heap_len == ns->heap_cap) {
        ns->heap_cap *= 2;
        ns->heap = realloc(ns->heap, ns->heap_cap * sizeof(*ns->heap));
        BFTKV_ASSERT(ns->heap != NULL);
    }
    size_t i = ns->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_less(&e, &ns->heap[parent]))
            break;
        ns->heap[i] = ns->heap[parent];
        i = parent;
    }
    ns->heap[i] = e;
}

/* Bottom-up (Floyd): the hole left by the top goes down to a leaf along the
 * smaller children, one comparison a level, and the last entry rises from
 * there (it came from the bottom, so rarely far). Keys are unique (the
 * insertion counter), so any valid heap pops the same order. */
static struct netsim_entry heap_pop(struct netsim *ns)
{
    BFTKV_ASSERT(ns->heap_len > 0);
    struct netsim_entry top = ns->heap[0];
    size_t n = --ns->heap_len;
    if (n == 0)
        return top;
    struct netsim_entry last = ns->heap[n];
    size_t i = 0;
    for (size_t child = 1; child < n; child = 2 * i + 1) {
        if (child + 1 < n && entry_less(&ns->heap[child + 1], &ns->heap[child]))
            child++;
        ns->heap[i] = ns->heap[child];
        i = child;
    }
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!entry_less(&last, &ns->heap[parent]))
            break;
        ns->heap[i] = ns->heap[parent];
        i = parent;
    }
    ns->heap[i] = last;
    return top;
}

/* ---- Sending ------------------------------------------------------------------ */

static bool partition_cuts(const struct netsim_partition *p, uint64_t now_ns, uint32_t from, uint32_t to)
{
    if (now_ns < p->start_ns || now_ns >= p->end_ns)
        return false;
    if (p->on_ns > 0 && (now_ns - p->start_ns) % (p->on_ns + p->off_ns) >= p->on_ns)
        return false; /* a flapping partition, healed for now */
    uint8_t a = p->cut[from], b = p->cut[to];
    switch (p->kind) {
    case NETSIM_CUT_ONEWAY:
        return a == 1 && b == 2;
    case NETSIM_CUT_LINK:
        return (a == 1 && b == 2) || (a == 2 && b == 1);
    default:
        return a != b;
    }
}

bool netsim_cut(const struct netsim *ns, uint64_t now_ns, uint32_t from, uint32_t to)
{
    for (uint32_t i = 0; i < ns->nparts; i++)
        if (partition_cuts(&ns->parts[i], now_ns, from, to))
            return true;
    return false;
}

static uint64_t draw_delay(struct netsim *ns, bool faulty)
{
    uint64_t d = ns->cfg.latency_ns;
    if (faulty) {
        if (ns->cfg.jitter_uniform)
            d += prng_range(&ns->rng, 0, ns->cfg.jitter_ns);
        else
            d += prng_exp(&ns->rng, ns->cfg.jitter_ns);
    } else if (ns->cfg.stable_jitter_ns > 0) {
        d += prng_range(&ns->rng, 0, ns->cfg.stable_jitter_ns);
    }
    return d > 0 ? d : 1;
}

void netsim_push(struct netsim *ns, uint64_t at_ns, uint32_t from, uint32_t to, struct netsim_msg *m)
{
    BFTKV_ASSERT(from < ns->nodes && to < ns->nodes);
    netsim_msg_get(m);
    heap_push(ns, (struct netsim_entry){.at_ns = at_ns, .counter = ns->counter++, .msg = m, .from = from, .to = to});
}

void netsim_send(struct netsim *ns, uint64_t now_ns, uint32_t from, uint32_t to, struct netsim_msg *m,
                 uint64_t extra_ns)
{
    ns->stats.sent++;
    bool faulty = now_ns < ns->cfg.gst_ns;
    if (faulty) {
        if (ns->nparts > 0 && netsim_cut(ns, now_ns, from, to)) {
            ns->stats.partitioned++;
            return;
        }
        if (ns->cfg.loss_percent > 0 && prng_percent(&ns->rng, ns->cfg.loss_percent)) {
            ns->stats.lost++;
            return;
        }
        if (ns->cfg.dup_percent > 0 && prng_percent(&ns->rng, ns->cfg.dup_percent)) {
            ns->stats.duplicated++;
            netsim_push(ns, now_ns + extra_ns + draw_delay(ns, true), from, to, m);
        }
    }
    netsim_push(ns, now_ns + extra_ns + draw_delay(ns, faulty), from, to, m);
}

uint64_t netsim_next_time(const struct netsim *ns)
{
    return ns->heap_len > 0 ? ns->heap[0].at_ns : UINT64_MAX;
}

bool netsim_pop(struct netsim *ns, struct netsim_entry *e)
{
    if (ns->heap_len == 0)
        return false;
    struct netsim_entry top = heap_pop(ns);
    uint64_t hold = ns->hold_until_ns[top.to];
    if (hold > top.at_ns) {
        /* Re-queue at the end of the hold; a new counter keeps arrival order
         * among the held messages. */
        ns->stats.held++;
        top.at_ns = hold;
        top.counter = ns->counter++;
        heap_push(ns, top);
        return false;
    }
    ns->stats.delivered++;
    *e = top;
    return true;
}

void netsim_hold(struct netsim *ns, uint32_t node, uint64_t until_ns)
{
    BFTKV_ASSERT(node < ns->nodes);
    ns->hold_until_ns[node] = until_ns;
}

size_t netsim_in_flight(const struct netsim *ns)
{
    return ns->heap_len;
}
