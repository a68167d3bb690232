/* REQUEST receipt at a replica (TOCS 2002 §4.1, §4.2; DESIGN §3 "Requests",
 * "Batching and pipelining"), the primary's queue of pending requests, and the
 * pool of large requests.
 *
 * A request first meets the reply cache: an old timestamp is answered from the
 * cache (exactly-once execution). Read-only requests go to the read-only path
 * (exec.c). Otherwise the primary queues the request for the next batch, while a
 * backup forwards a small request to the primary (the client sent it to the
 * primary and retransmitted it to everyone) and keeps a large one: large requests
 * travel from the client to every replica and the PRE-PREPARE carries only their
 * digests, so each replica holds them in a bounded pool keyed by request digest
 * until the batch that names them executes.
 *
 * Both stores are FIFO rings allocated at creation: the pending queue (request
 * descriptors plus the inlined requests' bytes) and the pool (descriptors, bytes,
 * and an open-addressing index by digest). A full ring says so (dropped_full);
 * the client retransmits.
 */
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"

#define POOL_NONE UINT32_MAX

/* ---- FIFO byte rings ------------------------------------------------------------ */

static bool bytes_alloc(struct replica_bytes *b, uint32_t len, uint32_t *off)
{
    if (len == 0 || len > b->cap)
        return false;
    if (b->live == 0) {
        b->start = 0;
        b->end = 0;
    }
    if (b->live == 0 || b->end > b->start) {
        /* Contiguous [start, end): room after end, else from 0 up to start. */
        if (b->cap - b->end >= len) {
            *off = b->end;
        } else if (len <= b->start) {
            *off = 0;
        } else {
            return false;
        }
    } else {
        /* Wrapped: free space is [end, start). */
        if (b->start - b->end < len)
            return false;
        *off = b->end;
    }
    b->end = *off + len;
    b->live++;
    return true;
}

/* Release the oldest allocation, [off, off + len). Its bytes may be followed by
 * a skipped tail of the ring: start then stays past it until the next release,
 * which only makes the ring look fuller than it is for a while. */
static void bytes_release_oldest(struct replica_bytes *b, uint32_t off, uint32_t len)
{
    BFTKV_ASSERT(b->live > 0);
    b->live--;
    b->start = off + len;
    if (b->live == 0) {
        b->start = 0;
        b->end = 0;
    }
}

/* ---- The large-request pool ----------------------------------------------------- */

static uint32_t pool_home(const struct pbft_replica *r, const uint8_t *digest)
{
    uint32_t x;
    memcpy(&x, digest, sizeof x);
    return x & r->pool_index_mask;
}

uint32_t replica_pool_find(const struct pbft_replica *r, const uint8_t digest[BFTKV_DIGEST_SIZE])
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
}

/* Pop dead descriptors from the oldest end, releasing their bytes. */
static void pool_pop_dead(struct pbft_replica *r)
{
    while (r->pool_count > 0 && !r->pool[r->pool_head].live) {
        struct replica_pool_entry *e = &r->pool[r->pool_head];
        bytes_release_oldest(&r->pool_ring, e->off, e->len);
        r->pool_head = (r->pool_head + 1u) % r->pool_cap;
        r->pool_count--;
    }
}

static void pool_kill(struct pbft_replica *r, uint32_t idx)
{
    struct replica_pool_entry *e = &r->pool[idx];
    BFTKV_ASSERT(e->live && e->refs == 0);
    pool_index_remove(r, idx);
    e->live = false;
    pool_pop_dead(r);
}

/* Store a large request; evicts the oldest unreferenced requests when full.
 * Returns the entry or POOL_NONE (full of requests that batches still need). */
static uint32_t pool_store(struct pbft_replica *r, const struct wire_msg *m, const uint8_t digest[32])
{
    uint32_t len = (uint32_t)m->raw_len, off = 0;
    for (;;) {
        if (r->pool_count < r->pool_cap && bytes_alloc(&r->pool_ring, len, &off))
            break;
        if (r->pool_count == 0)
            return POOL_NONE;
        struct replica_pool_entry *old = &r->pool[r->pool_head];
        BFTKV_ASSERT(old->live); /* pool_pop_dead keeps the oldest live */
        if (old->refs > 0)
            return POOL_NONE;
        pool_kill(r, r->pool_head);
    }
    uint32_t idx = (r->pool_head + r->pool_count) % r->pool_cap;
    r->pool_count++;
    struct replica_pool_entry *e = &r->pool[idx];
    memcpy(e->digest, digest, BFTKV_DIGEST_SIZE);
    e->timestamp = m->u.request.timestamp;
    e->client = m->u.request.client;
    e->lane = m->u.request.lane;
    e->off = off;
    e->len = len;
    e->refs = 0;
    e->live = true;
    memcpy(r->pool_buf + off, m->raw, len);
    pool_index_insert(r, idx);
    return idx;
}

const uint8_t *replica_pool_bytes(const struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap && r->pool[idx].live);
    return r->pool_buf + r->pool[idx].off;
}

void replica_pool_ref(struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap && r->pool[idx].live);
    r->pool[idx].refs++;
}

/* A request is dropped from the pool once the last batch that named it has
 * executed: its reply is in the reply cache from then on. */
void replica_pool_unref(struct pbft_replica *r, uint32_t idx)
{
    BFTKV_ASSERT(idx < r->pool_cap && r->pool[idx].live && r->pool[idx].refs > 0);
    if (--r->pool[idx].refs == 0)
        pool_kill(r, idx);
}

/* ---- The pending queue (primary) ------------------------------------------------ */

bool replica_pending_empty(const struct pbft_replica *r)
{
    return r->pend_count == 0;
}

const struct replica_pending *replica_pending_front(const struct pbft_replica *r)
{
    BFTKV_ASSERT(r->pend_count > 0);
    return &r->pend[r->pend_head];
}

const uint8_t *replica_pending_bytes(const struct pbft_replica *r, const struct replica_pending *p)
{
    BFTKV_ASSERT(p->kind == WIRE_ENTRY_INLINE);
    return r->pend_buf + p->off;
}

/* Remove the front; a DIGEST entry's pool reference moves to the batch. */
void replica_pending_pop(struct pbft_replica *r)
{
    BFTKV_ASSERT(r->pend_count > 0);
    struct replica_pending *p = &r->pend[r->pend_head];
    if (p->kind == WIRE_ENTRY_INLINE)
        bytes_release_oldest(&r->pend_ring, p->off, p->len);
    r->pend_head = (r->pend_head + 1u) % r->pend_cap;
    r->pend_count--;
}

static struct replica_pending *pending_push(struct pbft_replica *r, const struct wire_request *rq, uint8_t kind)
{
    if (r->pend_count == r->pend_cap)
        return NULL;
    struct replica_pending *p = &r->pend[(r->pend_head + r->pend_count) % r->pend_cap];
    memset(p, 0, sizeof *p);
    p->timestamp = rq->timestamp;
    p->client = rq->client;
    p->lane = rq->lane;
    p->kind = kind;
    p->pool = POOL_NONE;
    return p;
}

static void pending_commit(struct pbft_replica *r)
{
    r->pend_count++;
}

/* ---- Receipt -------------------------------------------------------------------- */

static bool ignore_request(struct pbft_replica *r, const struct wire_msg *m)
{
    const struct wire_request *rq = &m->u.request;
    if (!auth_client_known(r->auth, rq->client)) {
        replica_drop(r, WIRE_DROP_UNKNOWN_CLIENT);
        return true;
    }
    /* Lanes and timestamps: a client numbers its requests from 1 per lane. The
     * read-only path serves GETs only. */
    if (rq->lane >= r->cfg.lanes || rq->timestamp == 0
        || ((rq->rflags & WIRE_REQ_READONLY) != 0 && rq->op != WIRE_OP_GET)) {
        replica_drop(r, WIRE_DROP_BAD_FIELD);
        return true;
    }
    if (!auth_authenticator_check(r->auth, m)) {
        replica_drop(r, WIRE_DROP_BAD_AUTH);
        return true;
    }
    return false;
}

static bool request_is_large(const struct wire_msg *m)
{
    return m->raw_len - m->h.auth_len > BFTKV_INLINE_REQUEST_MAX;
}

static void primary_queue(struct pbft_replica *r, const struct wire_msg *m, uint64_t *seen)
{
    const struct wire_request *rq = &m->u.request;
    if (rq->timestamp <= *seen)
        return; /* queued or ordered already: a retransmission (TOCS 2002 §4.1) */
    if (request_is_large(m)) {
        uint8_t digest[BFTKV_DIGEST_SIZE];
        wire_request_digest(digest, m);
        uint32_t idx = replica_pool_find(r, digest);
        if (idx == POOL_NONE)
            idx = pool_store(r, m, digest);
        struct replica_pending *p = idx == POOL_NONE ? NULL : pending_push(r, rq, WIRE_ENTRY_DIGEST);
        if (p == NULL) {
            r->stats.dropped_full++;
            return;
        }
        p->pool = idx;
        replica_pool_ref(r, idx);
    } else {
        uint32_t len = (uint32_t)m->raw_len, off = 0;
        if (r->pend_count == r->pend_cap || !bytes_alloc(&r->pend_ring, len, &off)) {
            r->stats.dropped_full++;
            return;
        }
        struct replica_pending *p = pending_push(r, rq, WIRE_ENTRY_INLINE);
        p->off = off;
        p->len = len;
        memcpy(r->pend_buf + off, m->raw, len);
    }
    pending_commit(r);
    *seen = rq->timestamp;
}

static void backup_handle(struct pbft_replica *r, const struct wire_msg *m, uint64_t seen,
                          struct pbft_out *out)
{
    const struct wire_request *rq = &m->u.request;
    if (request_is_large(m)) {
        /* The client sent it to every replica; keep it for the PRE-PREPARE that
         * will name it by digest, and retry PRE-PREPAREs that wait for it. */
        uint8_t digest[BFTKV_DIGEST_SIZE];
        wire_request_digest(digest, m);
        if (replica_pool_find(r, digest) != POOL_NONE)
            return;
        if (pool_store(r, m, digest) == POOL_NONE) {
            r->stats.dropped_full++;
            return;
        }
        if (r->stalled > 0)
            replica_stalled_retry(r, out);
        return;
    }
    if (rq->timestamp <= seen)
        return; /* a PRE-PREPARE we accepted holds it already */
    /* A small request reaching a backup is a retransmission: relay it to the
     * primary unchanged, authenticator included (TOCS 2002 §4.1). The
     * view-change timer of the next issue starts here. */
    if (!pbft_out_copy(out, PBFT_DEST_REPLICA, replica_primary_of(r, r->view), m->raw, m->raw_len))
        r->stats.dropped_full++;
}

void replica_request_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_request(r, m))
        return;
    const struct wire_request *rq = &m->u.request;
    r->stats.requests_received++;
    if (rq->rflags & WIRE_REQ_READONLY) {
        replica_readonly_receive(r, m, out);
        return;
    }
    const struct replica_rc_entry *e = replica_rc_lookup(r, rq->client, rq->lane);
    if (rq->timestamp <= e->timestamp) {
        /* Executed already: resend the last reply; an older request gets none. */
        if (rq->timestamp == e->timestamp)
            replica_reply_resend(r, m, out);
        else
            r->stats.dropped_stale++;
        return;
    }
    uint64_t *seen = &r->seen_ts[(uint32_t)rq->client * r->cfg.lanes + rq->lane];
    if (replica_is_primary(r))
        primary_queue(r, m, seen);
    else
        backup_handle(r, m, *seen, out);
}
