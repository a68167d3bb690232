/* REQUEST receipt at a replica (TOCS 2002 §4.1, §4.2; docs/design.md §5.3,
 * "Batching and pipelining") and the primary's queue of pending requests; the
 * pool of large requests is request_pool.c.
 *
 * A request first meets the reply cache: an old timestamp is answered from the
 * cache (exactly-once execution). Read-only requests go to the read-only path
 * (exec.c). Otherwise the primary queues the request for the next batch, while a
 * backup forwards a small request to the primary (the client sent it to the
 * primary and retransmitted it to everyone) and keeps a large one: large requests
 * travel from the client to every replica and the PRE-PREPARE carries only their
 * digests, so each replica holds them in a bounded pool keyed by request digest
 * (request_pool.c).
 *
 * Both stores are allocated at creation. The pending queue is a FIFO ring
 * (request descriptors plus the inlined requests' bytes); the pool's size and
 * what it may evict are stated at replica_request_pool_create. A full store
 * says so (dropped_full); the client retransmits.
 */
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"

#define POOL_NONE UINT32_MAX

/* ---- FIFO byte ring (the pending queue's inlined requests) -------------------- */

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


/* ---- The pending queue (primary) ------------------------------------------------ */

bool replica_request_pending_empty(const struct pbft_replica *r)
{
    return r->pend_count == 0;
}

const struct replica_pending *replica_request_pending_front(const struct pbft_replica *r)
{
    BFTKV_ASSERT(r->pend_count > 0);
    return &r->pend[r->pend_head];
}

const uint8_t *replica_request_pending_bytes(const struct pbft_replica *r, const struct replica_pending *p)
{
    BFTKV_ASSERT(p->kind == WIRE_ENTRY_INLINE);
    return r->pend_buf + p->off;
}

/* Remove the front; a DIGEST entry's pool reference moves to the batch (to the
 * caller, who releases it with replica_request_pool_unref like a log slot's). */
void replica_request_pending_pop(struct pbft_replica *r)
{
    BFTKV_ASSERT(r->pend_count > 0);
    struct replica_pending *p = &r->pend[r->pend_head];
    if (p->kind == WIRE_ENTRY_INLINE) {
        bytes_release_oldest(&r->pend_ring, p->off, p->len);
        BFTKV_ASSERT(r->pend_inline_bytes >= p->len);
        r->pend_inline_bytes -= p->len;
    } else {
        uint32_t c = replica_request_pool_entry_chunks(r, p->pool);
        BFTKV_ASSERT(r->pool_pend_chunks >= c);
        r->pool_pend_chunks -= c;
        r->pool_slot_chunks += c;
    }
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

/* The filters a REQUEST passes before anything looks at its contents; the
 * reason it fails, or WIRE_DROP_COUNT. Lanes and timestamps: a client numbers
 * its requests from 1, strictly increasing across its lanes, and never reaches
 * UINT64_MAX (engine/client.c asserts it); a request stamped UINT64_MAX would
 * leave its lane unusable for good, so it is refused like one stamped 0. The
 * read-only path serves GETs only. */
static enum wire_drop request_filter(const struct pbft_replica *r, const struct wire_msg *m, bool check_mac)
{
    const struct wire_request *rq = &m->u.request;
    if (!auth_client_known(r->auth, rq->client))
        return WIRE_DROP_UNKNOWN_CLIENT;
    if (rq->lane >= r->cfg.lanes || rq->timestamp == 0 || rq->timestamp == UINT64_MAX
        || ((rq->rflags & WIRE_REQ_READONLY) != 0 && rq->op != WIRE_OP_GET))
        return WIRE_DROP_BAD_FIELD;
    if (check_mac && !auth_authenticator_check(r->auth, m))
        return WIRE_DROP_BAD_AUTH;
    return WIRE_DROP_COUNT;
}

static bool ignore_request(struct pbft_replica *r, const struct wire_msg *m)
{
    enum wire_drop d = request_filter(r, m, false);
    if (d != WIRE_DROP_COUNT) {
        replica_drop(r, d);
        return true;
    }
    return !replica_msg_authentic(r, m); /* the client's MAC, last as in request_filter */
}

bool pbft_replica_request_admissible(const struct pbft_replica *r, const struct wire_msg *m, bool check_mac)
{
    BFTKV_ASSERT(m->h.type == WIRE_REQUEST);
    return request_filter(r, m, check_mac) == WIRE_DROP_COUNT;
}

static bool request_is_large(const struct wire_msg *m)
{
    return m->raw_len - m->h.auth_len > BFTKV_INLINE_REQUEST_MAX;
}

bool replica_request_pending_store(struct pbft_replica *r, const struct wire_msg *m)
{
    uint32_t len = (uint32_t)m->raw_len, off = 0;
    if (r->pend_count == r->pend_cap || !bytes_alloc(&r->pend_ring, len, &off))
        return false;
    struct replica_pending *p = pending_push(r, &m->u.request, WIRE_ENTRY_INLINE);
    p->off = off;
    p->len = len;
    memcpy(r->pend_buf + off, m->raw, len);
    r->pend_inline_bytes += len;
    pending_commit(r);
    return true;
}

bool replica_request_pending_store_pooled(struct pbft_replica *r, uint32_t idx)
{
    const struct replica_request_pool_entry *e = &r->pool[idx];
    BFTKV_ASSERT(idx < r->pool_cap);
    BFTKV_ASSERT(e->live);
    if (r->pool_pend_chunks + replica_pool_chunks_of(e->len) > r->pool_queue_chunks)
        return false; /* at most Q chunks queued (replica_request_pool_create) */
    struct wire_request rq;
    memset(&rq, 0, sizeof rq);
    rq.client = e->client;
    rq.lane = e->lane;
    rq.timestamp = e->timestamp;
    struct replica_pending *p = pending_push(r, &rq, WIRE_ENTRY_DIGEST);
    if (p == NULL)
        return false;
    p->pool = idx;
    replica_request_pool_pend_ref(r, idx);
    pending_commit(r);
    return true;
}

/* A request a view change left in the queue (a backup keeps the requests it
 * watches for the next primary, viewchange.c) may have executed since, or be in
 * a batch the NEW-VIEW chose (dead). */
void replica_request_pending_trim(struct pbft_replica *r)
{
    while (r->pend_count > 0) {
        struct replica_pending *p = &r->pend[r->pend_head];
        if (!p->dead && p->timestamp > replica_exec_rc_lookup(r, p->client, p->lane)->timestamp)
            return;
        uint32_t pool = p->kind == WIRE_ENTRY_DIGEST ? p->pool : POOL_NONE;
        replica_request_pending_pop(r);
        if (pool != POOL_NONE)
            replica_request_pool_unref(r, pool);
    }
}

static void primary_queue(struct pbft_replica *r, const struct wire_msg *m, uint64_t *seen)
{
    const struct wire_request *rq = &m->u.request;
    if (rq->timestamp <= *seen)
        return; /* queued or ordered already: a retransmission (TOCS 2002 §4.1) */
    if (request_is_large(m)) {
        uint8_t digest[BFTKV_DIGEST_SIZE];
        wire_request_digest(digest, m);
        /* At most Q chunks queued (the sizing at replica_request_pool_create). */
        uint32_t idx = POOL_NONE;
        if (r->pool_pend_chunks + replica_pool_chunks_of((uint32_t)m->raw_len) <= r->pool_queue_chunks) {
            idx = replica_request_pool_find(r, digest);
            if (idx == POOL_NONE)
                idx = replica_request_pool_store(r, m, digest, false);
        }
        struct replica_pending *p = idx == POOL_NONE ? NULL : pending_push(r, rq, WIRE_ENTRY_DIGEST);
        if (p == NULL) {
            r->stats.dropped_full++;
            return;
        }
        p->pool = idx;
        replica_request_pool_pend_ref(r, idx);
        pending_commit(r);
    } else if (!replica_request_pending_store(r, m)) {
        r->stats.dropped_full++;
        return;
    }
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
        if (replica_request_pool_find(r, digest) != POOL_NONE) {
            replica_viewchange_watch_request(r, m); /* TOCS 2002 §4.5.2: a request we wait for */
            return;
        }
        /* A request a stalled PRE-PREPARE waits for always gets room (see the
         * invariant at replica_request_pool_create). */
        uint32_t idx = replica_request_pool_store(r, m, digest, false);
        if (idx == POOL_NONE && r->stalled > 0 && replica_preprepare_stalled_wants(r, digest))
            idx = replica_request_pool_store(r, m, digest, true);
        if (idx == POOL_NONE) {
            r->stats.dropped_full++;
            return;
        }
        replica_viewchange_watch_request(r, m);
        if (r->stalled > 0)
            replica_preprepare_stalled_retry(r, out);
        return;
    }
    /* A small request reaching a backup is a retransmission: the client waits
     * for it, so the backup watches it until it executes (TOCS 2002 §4.5.2),
     * even when a PRE-PREPARE holds it (that batch may never commit) ... */
    if (!replica_viewchange_watch_request(r, m) || rq->timestamp <= seen || !r->view_active)
        return; /* relayed once already; a PRE-PREPARE holds it; no primary yet */
    /* ... and relays it to the primary unchanged, authenticator included
     * (TOCS 2002 §4.1), once: the client's own retransmissions reach the
     * primary too, and replicas in different views would relay it back and
     * forth. A new view relays what is still waiting (newview.c). */
    if (!pbft_out_copy(out, PBFT_DEST_REPLICA, replica_primary_of(r, r->view), m->raw, m->raw_len))
        r->stats.dropped_full++;
}

void replica_request_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_request(r, m))
        return;
    const struct wire_request *rq = &m->u.request;
    r->stats.requests_received++;
    if (!replica_votes(r)) {
        replica_exec_reply_no_state(r, m, out); /* it neither executes nor reads */
        return;
    }
    if (rq->rflags & WIRE_REQ_READONLY) {
        replica_exec_readonly_receive(r, m, out);
        return;
    }
    const struct replica_rc_entry *e = replica_exec_rc_lookup(r, rq->client, rq->lane);
    if (rq->timestamp <= e->timestamp) {
        /* Executed already: resend the last reply; an older request gets none. */
        if (rq->timestamp == e->timestamp)
            replica_exec_reply_resend(r, m, out);
        else
            r->stats.dropped_stale++;
        return;
    }
    uint64_t *seen = &r->seen_ts[(uint32_t)rq->client * r->cfg.lanes + rq->lane];
    if (replica_is_primary(r) && r->view_active)
        primary_queue(r, m, seen);
    else
        backup_handle(r, m, *seen, out);
}
