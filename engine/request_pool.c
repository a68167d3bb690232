/* The pool of large requests (TOCS 2002 §4.2; docs/design.md §5.3, "Batching
 * and pipelining"): requests larger than BFTKV_INLINE_REQUEST_MAX travel from
 * the client to every replica and PRE-PREPAREs name them by digest, so each
 * replica holds them here, keyed by request digest, from arrival until a stable
 * checkpoint covers the batch that executed them. Receipt is request.c; pulling
 * a missing one from a peer is request_fetch.c.
 *
 * Allocated at creation: descriptors, an open-addressing index by digest, and
 * the bytes in chained fixed-size chunks; its size, what it may evict and the
 * invariant that keeps backups live are stated at replica_request_pool_create,
 * and the relays that push a batch's requests to replicas that did not vote for
 * it at replica_request_pool_relay.
 */
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"

#define POOL_NONE UINT32_MAX

/* Sizing and the invariant that keeps backups live (docs/design.md §5.3;
 * TOCS 2002 §4.2: a backup accepts a PRE-PREPARE only with every
 * request it names, so one that names a request the pool cannot take stalls).
 *
 * The pool holds C = L*B + Q + R chunks of REPLICA_POOL_CHUNK bytes, where
 *   B = pool_batch_chunks = max(2 * batch_max_bytes, largest request) in chunks:
 *       the most one batch may name by digest, each DIGEST entry charged the
 *       chunks of its whole request (the primary closes a batch before it would
 *       name more, preprepare.c; a backup refuses a PRE-PREPARE that does -- a
 *       correct primary never sends one);
 *   L = log_window: the log holds the seqs (h, h + L] above the last stable
 *       checkpoint h (TOCS 2002 §4.3). A replica takes references for a batch
 *       only if its seq is also at most last_executed + w, w = pool_window =
 *       min(2W, L) (a PRE-PREPARE beyond waits, stalled, until execution catches
 *       up): a correct primary runs at most W batches ahead of its own
 *       execution, and the second W lets a backup lag W batches behind it
 *       without waiting;
 *   Q = pool_queue_chunks = W*B: the most the primary's pending queue may pin
 *       (enough for the next W batches; beyond, it refuses large requests and
 *       the clients retransmit). A backup holds what is in flight (about W*B)
 *       and everything else that arrives, so it has room to spare beyond what
 *       the primary queued: for the requests the primary refused while it keeps
 *       the ones the primary took, though they arrive in another order (below);
 *   R = REPLICA_POOL_REQUEST_CHUNKS: one request of the largest size.
 * Each seq of the log holds at most B chunks: pinned (its PRE-PREPARE was
 * accepted), kept (it is stalled: the requests it has already must not be
 * evicted while it waits for the rest) or held (it executed: below); and the
 * pending queue pins at most Q (only a primary's is not empty, or a former
 * primary's). So a replica always has room for one more request once the
 * evictable ones are gone:
 *
 *     free + evictable = C - pinned - kept - held >= C - L*B - Q = R.
 *
 * Any free chunk serves any request (they are chained), so pinned requests never
 * stand in the way of eviction wherever they lie.
 *
 * Held requests. A replica that has not executed a batch needs its requests to
 * accept it, and the clients, answered by others, send them no more; until a
 * checkpoint above the batch is stable there is no state to fetch instead, and
 * none becomes stable while fewer than q replicas have executed that far. So an
 * executed request stays, never evicted, until a stable checkpoint covers the
 * highest seq of a batch here that names it (held_seq), as the log keeps that
 * batch's PRE-PREPARE; then it moves to the done list, evicted before any other.
 * (When executed requests went to the done list at once, a pool sized for the
 * window alone -- w*B + Q + R, 3B + R chunks at W = 1 -- dropped them a
 * few batches later, and a group with fewer than q replicas up to date stalled
 * for good: the laggards found nobody to fetch the requests from;
 * tests/sim/README.md, "Restart: what it found".)
 *
 * Who gets evicted. A request that a stalled PRE-PREPARE inside the window names
 * ("wanted") is always stored, evicting the done requests and then unpinned,
 * unkept ones, oldest first; by the invariant it fits. Any other arrival --
 * normally a request comes before the PRE-PREPARE that names it -- evicts done
 * requests and those unpinned for longer than the request timeout T, else it is
 * refused (dropped_full): a correct primary orders what it
 * queued well within T (backups would move to the next view otherwise), so
 * older ones are requests the primary never took (it was full too: the client
 * retransmits) or a faulty client's. Under overload, backups thus keep the same
 * first-come requests the primary queued (it refuses newcomers when full)
 * rather than evicting exactly the ones it orders next; a client that floods the
 * pool delays others' requests by at most T and never touches the pinned or
 * held ones; and the pool stays within its C chunks.
 *
 * How a missing request comes back. Arrival orders differ, so a backup may still
 * lack a request the primary ordered. If the batch cannot commit without it, the
 * client is still waiting and retransmits to every replica (with the same
 * digest: wire_request_digest); if it commits without it, the replicas that
 * execute it relay the request to it first (replica_request_pool_relay), and a
 * replica that is further behind pulls it from one that holds it
 * (request_fetch.c). Either way it arrives wanted, is stored, and the
 * PRE-PREPARE is accepted then (replica_preprepare_stalled_retry: on the
 * arrival, after every execution step, and on the tick).
 */

static uint32_t pow2_at_least(uint32_t x)
{
    uint32_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

bool replica_request_pool_create(struct pbft_replica *r)
{
    const struct pbft_replica_config *c = &r->cfg;
    uint32_t batch = replica_pool_chunks_of(2u * c->batch_max_bytes);
    r->pool_batch_chunks = batch > REPLICA_POOL_REQUEST_CHUNKS ? batch : REPLICA_POOL_REQUEST_CHUNKS;
    r->pool_window = 2u * c->window < c->log_window ? 2u * c->window : c->log_window;
    r->pool_queue_chunks = c->window * r->pool_batch_chunks;
    /* C = L*B + Q + R. The defaults (W = 8, L = 256, 56 KiB batches) give
     * 256 * 224 + 8 * 224 + 125 = 59,261 chunks, 30 MB; at most (W = 64)
     * 256 * 224 + 64 * 224 + 125 chunks, 37 MB. Like the log's PRE-PREPARE
     * buffers (replica.c) it is touched only as it is used: chunks and
     * descriptors are taken from the free lists first, never-used ones after,
     * and done requests give their chunks back first (pool_recycle_done). */
    r->pool_chunks = c->log_window * r->pool_batch_chunks + r->pool_queue_chunks + REPLICA_POOL_REQUEST_CHUNKS;
    /* Every large request takes at least replica_pool_chunks_of(REPLICA_LARGE_REQUEST_MIN)
     * chunks, so the descriptors never run out before the chunks do. The hash
     * index has at least twice as many cells as descriptors. */
    r->pool_cap = r->pool_chunks / replica_pool_chunks_of(REPLICA_LARGE_REQUEST_MIN) + 1u;
    uint32_t cells = pow2_at_least(2u * r->pool_cap);
    r->pool_index_mask = cells - 1u;
    /* Descriptors are zeroed as they are first taken (pool_fresh), not here:
     * a simulator creating thousands of replicas would clear them all each time. */
    r->pool = malloc((size_t)r->pool_cap * sizeof *r->pool);
    r->pool_buf = malloc((size_t)r->pool_chunks * REPLICA_POOL_CHUNK);
    r->pool_chunk_next = malloc((size_t)r->pool_chunks * sizeof *r->pool_chunk_next);
    r->pool_index = calloc(cells, sizeof *r->pool_index);
    r->pool_scratch = malloc(REPLICA_REQUEST_MAX);
    if (r->pool == NULL || r->pool_buf == NULL || r->pool_chunk_next == NULL || r->pool_index == NULL
        || r->pool_scratch == NULL)
        return false;
    r->pool_chunk_free = POOL_NONE;
    r->pool_chunk_fresh = 0;
    r->pool_chunks_free = r->pool_chunks;
    r->pool_free = POOL_NONE;
    r->pool_fresh = 0;
    r->pool_old = POOL_NONE;
    r->pool_new = POOL_NONE;
    r->pool_done_old = POOL_NONE;
    r->pool_done_new = POOL_NONE;
    r->pool_held_old = POOL_NONE;
    r->pool_held_new = POOL_NONE;
    return true;
}

void replica_request_pool_destroy(struct pbft_replica *r)
{
    free(r->pool);
    free(r->pool_buf);
    free(r->pool_chunk_next);
    free(r->pool_index);
    free(r->pool_scratch);
}

static uint32_t pool_home(const struct pbft_replica *r, const uint8_t *digest)
{
    uint32_t x;
    memcpy(&x, digest, sizeof x);
    return x & r->pool_index_mask;
}

uint32_t replica_request_pool_find(const struct pbft_replica *r, const uint8_t digest[BFTKV_DIGEST_SIZE])
{
    for (uint32_t i = pool_home(r, digest);; i = (i + 1u) & r->pool_index_mask) {
        uint32_t v = r->pool_index[i];
        if (v == 0)
            return POOL_NONE;
        if (memcmp(r->pool[v - 1u].digest, digest, BFTKV_DIGEST_SIZE) == 0)
            return v - 1u;
    }
}

static void pool_index_insert(struct pbft_replica *r, uint32_t idx)
{
    uint32_t i = pool_home(r, r->pool[idx].digest);
    while (r->pool_index[i] != 0)
        i = (i + 1u) & r->pool_index_mask;
    r->pool_index[i] = idx + 1u;
    r->pool_index_used++;
}

/* Linear probing with backward-shift deletion: no tombstones, so lookups stay
 * short however long the replica runs. */
static void pool_index_remove(struct pbft_replica *r, uint32_t idx)
{
    uint32_t mask = r->pool_index_mask;
    uint32_t i = pool_home(r, r->pool[idx].digest);
    while (r->pool_index[i] != idx + 1u) {
        BFTKV_ASSERT(r->pool_index[i] != 0);
        i = (i + 1u) & mask;
    }
    uint32_t j = i;
    for (;;) {
        j = (j + 1u) & mask;
        uint32_t v = r->pool_index[j];
        if (v == 0)
            break;
        uint32_t k = pool_home(r, r->pool[v - 1u].digest);
        /* Move v back to i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (k > i && k <= j) : (k > i || k <= j);
        if (!stays) {
            r->pool_index[i] = v;
            i = j;
        }
    }
    r->pool_index[i] = 0;
    r->pool_index_used--;
}

/* The unpinned lists: live entries with no reference. Entries whose request
 * executed here (e->done) go on the held list while a batch above the last
 * stable checkpoint names them (e->held), ordered by held_seq; the other done
 * ones on the done list, and the rest on the unpinned list proper, both in the
 * order they became unpinned (arrival, or the release of their last
 * reference). All three count in pool_chunks_unpinned. */
static void list_of(struct pbft_replica *r, const struct replica_request_pool_entry *e, uint32_t **oldest,
                    uint32_t **newest)
{
    *oldest = e->held ? &r->pool_held_old : e->done ? &r->pool_done_old : &r->pool_old;
    *newest = e->held ? &r->pool_held_new : e->done ? &r->pool_done_new : &r->pool_new;
}

static void unpinned_push(struct pbft_replica *r, uint32_t idx)
{
    struct replica_request_pool_entry *e = &r->pool[idx];
    uint32_t *oldest, *newest;
    list_of(r, e, &oldest, &newest);
    e->stored_ns = r->now_ns;
    /* After the newest entry not above it: execution is in seq order, so
     * that is the newest but for a request released again after a re-pin. */
    uint32_t after = *newest;
    while (e->held && after != POOL_NONE && r->pool[after].held_seq > e->held_seq)
        after = r->pool[after].prev;
    e->prev = after;
    e->next = after != POOL_NONE ? r->pool[after].next : *oldest;
    if (after != POOL_NONE)
        r->pool[after].next = idx;
    else
        *oldest = idx;
    if (e->next != POOL_NONE)
        r->pool[e->next].prev = idx;
    else
        *newest = idx;
    r->pool_chunks_unpinned += replica_pool_chunks_of(e->len);
    if (e->held)
        r->pool_chunks_held += replica_pool_chunks_of(e->len);
}

static void unpinned_unlink(struct pbft_replica *r, uint32_t idx)
{
    struct replica_request_pool_entry *e = &r->pool[idx];
    uint32_t *oldest, *newest;
    list_of(r, e, &oldest, &newest);
    if (e->prev != POOL_NONE)
        r->pool[e->prev].next = e->next;
    else
        *oldest = e->next;
    if (e->next != POOL_NONE)
        r->pool[e->next].prev = e->prev;
    else
        *newest = e->prev;
    uint32_t c = replica_pool_chunks_of(e->len);
    BFTKV_ASSERT(r->pool_chunks_unpinned >= c);
    r->pool_chunks_unpinned -= c;
    if (e->held) {
        BFTKV_ASSERT(r->pool_chunks_held >= c);
        r->pool_chunks_held -= c;
    }
}

/* Accounting that every change keeps: each chunk is free, in an unpinned
 * request or in a pinned one, the pinned requests are at most what the
 * references charge (a request two batches name is charged twice), and the
 * held ones at most B per batch executed above h. */
static void pool_check(const struct pbft_replica *r)
{
    BFTKV_ASSERT(r->pool_chunks_free + r->pool_chunks_unpinned <= r->pool_chunks);
    uint32_t pinned = r->pool_chunks - r->pool_chunks_free - r->pool_chunks_unpinned;
    BFTKV_ASSERT(pinned <= r->pool_slot_chunks + r->pool_pend_chunks);
    BFTKV_ASSERT(r->pool_chunks_held <= r->pool_chunks_unpinned);
    uint64_t executed = r->last_executed + (r->exec_active ? 1u : 0u); /* the batch executing counts */
    BFTKV_ASSERT(r->pool_chunks_held <= (executed - r->low) * r->pool_batch_chunks);
}

/* Drop an unpinned entry: its chunks go back to the free list, chained as they
 * were, so the next request of that size gets them contiguous again. */
static void pool_kill(struct pbft_replica *r, uint32_t idx)
{
    struct replica_request_pool_entry *e = &r->pool[idx];
    BFTKV_ASSERT(e->live);
    BFTKV_ASSERT(e->refs == 0);
    BFTKV_ASSERT(!e->held);
    unpinned_unlink(r, idx);
    uint32_t c = replica_pool_chunks_of(e->len), last = e->chunk;
    for (uint32_t k = 1; k < c; k++)
        last = r->pool_chunk_next[last];
    BFTKV_ASSERT(r->pool_chunk_next[last] == POOL_NONE);
    r->pool_chunk_next[last] = r->pool_chunk_free;
    r->pool_chunk_free = e->chunk;
    r->pool_chunks_free += c;
    pool_index_remove(r, idx);
    e->live = false;
    e->next = r->pool_free;
    r->pool_free = idx;
    pool_check(r);
}

/* Make room for `need` chunks: first drop executed requests that a stable
 * checkpoint covers (the done list, oldest first: a laggard that lacks one
 * fetches the state of that checkpoint instead), then evict unpinned requests
 * oldest first: any of them when `wanted`, else only those unpinned for longer
 * than the request timeout; never one that a stalled PRE-PREPARE inside the
 * window names (it waits for the rest of its batch), nor a held one. False
 * when the rules leave too little. */
static bool pool_evict(struct pbft_replica *r, uint32_t need, bool wanted)
{
    uint32_t old = r->pool_old;
    if (!wanted && r->pool_done_old == POOL_NONE
        && (old == POOL_NONE || r->now_ns - r->pool[old].stored_ns < r->cfg.request_timeout_ns))
        return false; /* nothing old enough: spare the scan of the stalled slots */
    uint32_t kept = r->stalled > 0 ? replica_preprepare_stalled_keep(r, true) : 0;
    for (uint32_t i = r->pool_done_old; i != POOL_NONE && r->pool_chunks_free < need;) {
        uint32_t next = r->pool[i].next;
        if (!r->pool[i].keep)
            pool_kill(r, i);
        i = next;
    }
    for (uint32_t i = r->pool_old; i != POOL_NONE && r->pool_chunks_free < need;) {
        struct replica_request_pool_entry *e = &r->pool[i];
        uint32_t next = e->next;
        if (!wanted && r->now_ns - e->stored_ns < r->cfg.request_timeout_ns)
            break; /* the list is in age order: the rest are younger still */
        if (!e->keep) {
            pool_kill(r, i);
            r->stats.pool_evicted++;
        }
        i = next;
    }
    if (r->stalled > 0)
        replica_preprepare_stalled_keep(r, false);
    /* The invariant: the seqs of the log pin, keep or hold at most L*B chunks
     * and the pending queue at most Q, so a wanted request fails to fit only
     * when references were taken outside the window (a new primary's
     * re-proposals, newview.c). */
    BFTKV_ASSERT(r->pool_pend_chunks <= r->pool_queue_chunks);
    BFTKV_ASSERT(!wanted || r->pool_chunks_free >= need
                 || r->pool_slot_chunks + kept + r->pool_chunks_held > r->cfg.log_window * r->pool_batch_chunks);
    return r->pool_chunks_free >= need;
}

/* Done requests give their chunks back before a never-used chunk is taken: the
 * pool then touches memory only as far as what it must keep (pinned, kept,
 * held and unordered requests) ever reached, not all of C -- 30 MB per replica
 * at the defaults, which a stream of large values otherwise filled with done
 * requests nobody needs (a laggard below a stable checkpoint fetches its state).
 * Not while a PRE-PREPARE is stalled: it may name a done request (a batch
 * re-proposed by a new view), which pool_evict keeps. */
static void pool_recycle_done(struct pbft_replica *r, uint32_t need)
{
    while (r->stalled == 0 && r->pool_done_old != POOL_NONE
           && r->pool_chunks_free - (r->pool_chunks - r->pool_chunk_fresh) < need)
        pool_kill(r, r->pool_done_old);
}

uint32_t replica_request_pool_store(struct pbft_replica *r, const struct wire_msg *m, const uint8_t digest[BFTKV_DIGEST_SIZE],
                           bool wanted)
{
    uint32_t len = (uint32_t)m->raw_len, need = replica_pool_chunks_of(len);
    /* Large (above BFTKV_INLINE_REQUEST_MAX) and decoded (at most REPLICA_REQUEST_MAX). */
    BFTKV_ASSERT(len >= REPLICA_LARGE_REQUEST_MIN);
    BFTKV_ASSERT(need <= REPLICA_POOL_REQUEST_CHUNKS);
    pool_recycle_done(r, need);
    if (r->pool_chunks_free < need && !pool_evict(r, need, wanted))
        return POOL_NONE;
    uint32_t idx = r->pool_free;
    if (idx != POOL_NONE) {
        r->pool_free = r->pool[idx].next;
    } else {
        BFTKV_ASSERT(r->pool_fresh < r->pool_cap); /* pool_cap: descriptors outlast chunks */
        idx = r->pool_fresh++;
        memset(&r->pool[idx], 0, sizeof r->pool[idx]);
    }
    struct replica_request_pool_entry *e = &r->pool[idx];
    memcpy(e->digest, digest, BFTKV_DIGEST_SIZE);
    e->timestamp = m->u.request.timestamp;
    e->client = m->u.request.client;
    e->lane = m->u.request.lane;
    e->len = len;
    e->refs = 0;
    e->live = true;
    e->keep = false;
    e->done = false;
    e->held = false;
    e->held_seq = 0;
    uint32_t last = POOL_NONE;
    for (uint32_t done = 0; done < len; done += REPLICA_POOL_CHUNK) {
        uint32_t k = r->pool_chunk_free;
        if (k != POOL_NONE)
            r->pool_chunk_free = r->pool_chunk_next[k];
        else
            k = r->pool_chunk_fresh++; /* free: within pool_chunks */
        if (last == POOL_NONE)
            e->chunk = k;
        else
            r->pool_chunk_next[last] = k;
        uint32_t n = len - done < REPLICA_POOL_CHUNK ? len - done : REPLICA_POOL_CHUNK;
        memcpy(r->pool_buf + (size_t)k * REPLICA_POOL_CHUNK, m->raw + done, n);
        last = k;
    }
    r->pool_chunk_next[last] = POOL_NONE;
    r->pool_chunks_free -= need;
    unpinned_push(r, idx);
    pool_index_insert(r, idx);
    pool_check(r);
    return idx;
}

uint32_t replica_request_pool_restore(struct pbft_replica *r, const struct wire_msg *m)
{
    uint8_t digest[BFTKV_DIGEST_SIZE];
    wire_request_digest(digest, m);
    uint32_t idx = replica_request_pool_find(r, digest);
    return idx != POOL_NONE ? idx : replica_request_pool_store(r, m, digest, true);
}

uint32_t replica_request_pool_next(const struct pbft_replica *r, uint32_t idx)
{
    for (uint32_t i = idx == POOL_NONE ? 0 : idx + 1u; i < r->pool_fresh; i++) {
        if (r->pool[i].live)
            return i;
    }
    return POOL_NONE;
}

uint32_t replica_request_pool_entry_chunks(const struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(r->pool[idx].live);
    return replica_pool_chunks_of(r->pool[idx].len);
}

bool replica_request_pool_contiguous(const struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(r->pool[idx].live);
    const struct replica_request_pool_entry *e = &r->pool[idx];
    uint32_t c = replica_pool_chunks_of(e->len), k = e->chunk;
    for (uint32_t i = 1; i < c; i++, k++)
        if (r->pool_chunk_next[k] != k + 1u)
            return false;
    return true;
}

const uint8_t *replica_request_pool_bytes(struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(r->pool[idx].live);
    const struct replica_request_pool_entry *e = &r->pool[idx];
    uint32_t c = replica_pool_chunks_of(e->len), k = e->chunk;
    bool contiguous = true;
    for (uint32_t i = 1; i < c && contiguous; i++) {
        contiguous = r->pool_chunk_next[k] == k + 1u;
        k++;
    }
    if (contiguous)
        return r->pool_buf + (size_t)e->chunk * REPLICA_POOL_CHUNK;
    k = e->chunk;
    for (uint32_t done = 0; done < e->len; done += REPLICA_POOL_CHUNK) {
        uint32_t n = e->len - done < REPLICA_POOL_CHUNK ? e->len - done : REPLICA_POOL_CHUNK;
        memcpy(r->pool_scratch + done, r->pool_buf + (size_t)k * REPLICA_POOL_CHUNK, n);
        k = r->pool_chunk_next[k];
    }
    return r->pool_scratch;
}

/* done says which unpinned list an entry is on; a pinned entry is on neither, and
 * pool_unpin decides again when its last reference goes. */
static void pool_pin(struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(r->pool[idx].live);
    if (r->pool[idx].refs++ == 0) {
        unpinned_unlink(r, idx);
        r->pool[idx].done = false;
    }
}

/* The last reference gone: an executed request goes to the held list while a
 * batch above the last stable checkpoint names it, else to the done list (its
 * reply is in the reply cache from then on; it stays only for replicas that
 * lack it, below); one that did not execute (its PRE-PREPARE was discarded by a
 * view change or a state transfer) becomes evictable. */
static void pool_unpin(struct pbft_replica *r, uint32_t idx)
{
    struct replica_request_pool_entry *e = &r->pool[idx];
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(e->live);
    BFTKV_ASSERT(e->refs > 0);
    if (--e->refs > 0)
        return;
    e->done = replica_exec_rc_lookup(r, e->client, e->lane)->timestamp >= e->timestamp;
    e->held = e->done && e->held_seq > r->low;
    unpinned_push(r, idx);
    pool_check(r);
}

void replica_request_pool_ref(struct pbft_replica *r, uint32_t idx)
{
    pool_pin(r, idx);
    r->pool_slot_chunks += replica_pool_chunks_of(r->pool[idx].len);
}

void replica_request_pool_unref(struct pbft_replica *r, uint32_t idx)
{
    uint32_t c = replica_request_pool_entry_chunks(r, idx);
    BFTKV_ASSERT(r->pool_slot_chunks >= c);
    r->pool_slot_chunks -= c;
    pool_unpin(r, idx);
}

/* Held: a replica that has not executed seq yet needs the request to accept
 * the batch (TOCS 2002 §4.2), and while fewer than q replicas have executed
 * past seq nothing else brings it there -- no checkpoint above seq becomes
 * stable, so there is no state to fetch instead. So, like the PRE-PREPARE in
 * the log, the request stays until a stable checkpoint covers seq (TOCS 2002
 * §4.3, garbage collection). The held requests are named by the batches in
 * (h, last executed], at most B chunks each: within the L*B of
 * replica_request_pool_create. */
void replica_request_pool_unref_executed(struct pbft_replica *r, uint32_t idx, uint64_t seq)
{
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(r->exec_active && seq == r->last_executed + 1u && seq > r->low);
    if (r->pool[idx].held_seq < seq)
        r->pool[idx].held_seq = seq;
    replica_request_pool_unref(r, idx);
}

void replica_request_pool_low_moved(struct pbft_replica *r)
{
    while (r->pool_held_old != POOL_NONE && r->pool[r->pool_held_old].held_seq <= r->low) {
        uint32_t idx = r->pool_held_old;
        unpinned_unlink(r, idx);
        r->pool[idx].held = false;
        unpinned_push(r, idx); /* onto the done list */
    }
    pool_check(r);
}

/* A backup accepts a batch only with every request it names (TOCS 2002 §4.2).
 * One that lacks a large request of a batch q others committed without it would
 * wait for good: the client has its f+1 replies and retransmits no more. So
 * every replica, about to execute a committed batch -- its requests still pinned
 * here -- sends them to each replica it has neither a PREPARE nor a COMMIT from
 * for that seq, except the batch's primary (it has them). After GST that is a
 * replica that stalled on the request (the copy comes three message delays
 * after the PRE-PREPARE, so it is wanted on arrival) or a faulty one (a silent
 * replica costs each correct one a copy of the large requests it executes: the
 * price of needing no fetch message); a correct one that merely is slow drops
 * the copy at once (the digest is in its pool). The request travels as the
 * client sent it, with its authenticator for every replica (large requests go to
 * all, so are MACed for all): the receiver checks the client's MAC itself.
 *
 * Nobody pushes to a peer whose last STATUS put it more than the pool window w
 * behind the batch (relay_skip): it could take no reference to the copy, which
 * would only push out of its pool the requests it needs first (a laggard at
 * n = 4 received three copies of every large PUT it was behind on;
 * docs/benchmarks.md, "Large values"); it pulls what it lacks when it gets there
 * (request_fetch.c). Pushing from one designated replica instead of all n-1 was
 * tried and lost liveness in the simulator (a restarted designated relayer
 * relays nothing). */
_Static_assert(REPLICA_REQUEST_MAX + REPLICA_RESERVE_BYTES <= PBFT_OUT_MIN_BYTES,
               "an empty outbox takes one relayed request");

/* The replicas that need no copy of slot s's large requests: those we have a
 * PREPARE or a COMMIT from for it, the batch's primary, and us. */
static uint64_t relay_have(const struct pbft_replica *r, const struct replica_slot *s)
{
    return s->prep_bits | s->commit_bits | 1ull << r->cfg.id | 1ull << replica_primary_of(r, s->view);
}

/* The peers that need no push of slot s's large requests because their last
 * STATUS put them more than the pool window behind s. */
static uint64_t relay_skip(const struct pbft_replica *r, const struct replica_slot *s)
{
    uint64_t skip = 0;
    for (uint16_t b = 0; b < r->cfg.n; b++) {
        if (r->cu.peer_view_known[b] && s->seq > r->cu.peer_le[b] + r->pool_window)
            skip |= 1ull << b;
    }
    return skip;
}

static uint64_t relay_all(const struct pbft_replica *r)
{
    return r->cfg.n == 64u ? UINT64_MAX : (1ull << r->cfg.n) - 1u;
}

bool replica_request_pool_relay(struct pbft_replica *r, struct pbft_out *out)
{
    if (r->cfg.n == 1)
        return true;
    if (r->pool_relay_seq < r->last_executed)
        r->pool_relay_seq = r->last_executed;
    uint64_t all = relay_all(r);
    for (;;) {
        struct replica_slot *s = replica_slot_find(r, r->pool_relay_seq + 1u);
        if (s == NULL || !s->committed || s->executed)
            return true;
        /* A batch of inlined requests only has nothing to relay: not walked
         * (at N=10 a batch commits before all nine peers voted, and walking
         * its entries, cold by now, cost ~1 us per batch). */
        uint64_t have = s->pp_msg.u.batch.named == 0 ? all : relay_have(r, s) | relay_skip(r, s);
        for (;;) {
            uint32_t off = r->pool_relay_off;
            struct wire_batch_entry e;
            if (have == all || !wire_batch_next(&s->pp_msg, &off, &e))
                break;
            uint32_t idx = e.kind == WIRE_ENTRY_DIGEST ? replica_request_pool_find(r, e.request_digest) : POOL_NONE;
            for (uint16_t b = r->pool_relay_to; idx != POOL_NONE && b < r->cfg.n; b++) {
                if ((have >> b) & 1u)
                    continue;
                uint32_t len = r->pool[idx].len;
                if (!pbft_out_room(out, len + REPLICA_RESERVE_BYTES, 1u + REPLICA_RESERVE_MSGS)) {
                    /* The step resumes here (pbft.h: nothing else comes in
                     * meanwhile, so the cursor still fits the slot) before the
                     * batch executes. */
                    r->pool_relay_to = b;
                    return false;
                }
                pbft_out_copy(out, PBFT_DEST_REPLICA, b, replica_request_pool_bytes(r, idx), len);
                r->stats.pool_relayed++;
            }
            r->pool_relay_to = 0;
            r->pool_relay_off = off;
        }
        r->pool_relay_off = 0;
        r->pool_relay_seq++;
    }
}

/* The same for one slot, best effort: for the primary's retransmission of a
 * PRE-PREPARE that has not committed (catchup.c). Backups receive the requests
 * in another order than the primary, so all of them may have refused one it
 * queued; without a quorum nobody executes, nothing is relayed above, and the
 * batch would wait for the client's next retransmission, which backs off past
 * the view-change timer. false when the outbox had no room (what went out is
 * harmless to send again). */
bool replica_request_pool_relay_slot(struct pbft_replica *r, const struct replica_slot *s, struct pbft_out *out)
{
    uint64_t all = relay_all(r), have = relay_have(r, s);
    uint32_t off = 0;
    struct wire_batch_entry e;
    while (have != all && s->pp_msg.u.batch.named > 0 && wire_batch_next(&s->pp_msg, &off, &e)) {
        uint32_t idx = e.kind == WIRE_ENTRY_DIGEST ? replica_request_pool_find(r, e.request_digest) : POOL_NONE;
        for (uint16_t b = 0; idx != POOL_NONE && b < r->cfg.n; b++) {
            if ((have >> b) & 1u)
                continue;
            uint32_t len = r->pool[idx].len;
            if (!pbft_out_room(out, len + REPLICA_RESERVE_BYTES, 1u + REPLICA_RESERVE_MSGS))
                return false;
            pbft_out_copy(out, PBFT_DEST_REPLICA, b, replica_request_pool_bytes(r, idx), len);
            r->stats.pool_relayed++;
        }
    }
    return true;
}

void replica_request_pool_pend_ref(struct pbft_replica *r, uint32_t idx)
{
    pool_pin(r, idx);
    r->pool_pend_chunks += replica_pool_chunks_of(r->pool[idx].len);
}
