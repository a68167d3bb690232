/* Execution, the reply cache and the read-only path (TOCS 2002 §4.1, §4.2,
 * §5.1.3; docs/design.md §5.3).
 *
 * Committed batches execute strictly in sequence order, last_executed + 1 first;
 * within a batch, requests execute in batch order. The reply cache keeps, per
 * (client, lane), the last executed timestamp and its reply: a request whose
 * timestamp is not newer is not executed again (exactly-once), and a
 * retransmission of the last one is answered from the cache. Only one replica --
 * the designated full replier, (client + lane + timestamp) mod n -- sends a
 * result in full; the others send its digest (wire_result_digest), unless the
 * request asks every replica for the full result (WIRE_REQ_FULL_ALL).
 *
 * When the outbox has no room for the worst-case next reply, execution stops
 * with out->more set and continues from the same request in
 * pbft_replica_resume(): the position (exec_off, exec_index) lives in the
 * replica.
 *
 * Read-only requests (GET with WIRE_REQ_READONLY) reach every replica directly.
 * A replica answers one after it has executed every batch it had *prepared*
 * when the request arrived (target = the highest prepared seq then): a write
 * whose reply the client saw before it sent the GET was prepared by q replicas,
 * and any q replicas that answer the GET share a correct one with them. Parked
 * reads wait in a FIFO (targets only grow) and never touch the reply cache.
 */
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"

#define POOL_NONE UINT32_MAX

static struct replica_rc_entry *rc_entry(struct pbft_replica *r, uint16_t client, uint16_t lane)
{
    uint32_t i = (uint32_t)client * r->cfg.lanes + lane;
    BFTKV_ASSERT(i < r->rc_entries);
    return &r->rc[i];
}

const struct replica_rc_entry *replica_exec_rc_lookup(const struct pbft_replica *r, uint16_t client, uint16_t lane)
{
    uint32_t i = (uint32_t)client * r->cfg.lanes + lane;
    BFTKV_ASSERT(i < r->rc_entries);
    return &r->rc[i];
}

/* The one replica that sends this request's result in full. The sum wraps in
 * 64 bits; clients compute the same (engine/client.c). */
static bool full_replier(const struct pbft_replica *r, uint16_t client, uint16_t lane, uint64_t ts, uint8_t rflags)
{
    if (rflags & WIRE_REQ_FULL_ALL)
        return true;
    return ((uint64_t)client + lane + ts) % r->cfg.n == r->cfg.id;
}

/* Bytes the REPLY to a request of type op can take: results of PUT and DEL are
 * empty; a GET's is up to BFTKV_VALUE_MAX when sent in full. */
static size_t reply_bound(const struct pbft_replica *r, bool full, uint8_t op)
{
    size_t b = WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + BFTKV_MAC_SIZE;
    if (r->cfg.map_epoch != 0)
        b += WIRE_REPLY_EPOCH_SIZE;
    if (full && op == WIRE_OP_GET)
        b += BFTKV_VALUE_MAX;
    return b;
}

static bool room_for(const struct pbft_out *out, size_t bytes)
{
    return pbft_out_room(out, bytes + REPLICA_RESERVE_BYTES, 1u + REPLICA_RESERVE_MSGS);
}

/* REPLY(view, timestamp, client, lane, status, digest[, result]) to the client,
 * MACed for it alone. result NULL: digest only. */
static void reply_send(struct pbft_replica *r, const struct wire_request *rq, int16_t status, uint8_t rflags,
                       const uint8_t *digest, const uint8_t *result, uint32_t result_len, struct pbft_out *out)
{
    struct wire_reply rp;
    memset(&rp, 0, sizeof rp);
    rp.client = rq->client;
    rp.lane = rq->lane;
    rp.status = status;
    rp.rflags = (uint8_t)(rflags | (result != NULL ? WIRE_REPLY_FULL : 0));
    rp.result_len = result_len;
    rp.result_digest = digest;
    rp.result = result;
    rp.epoch = r->cfg.map_epoch;
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_reply(dst, cap, r->cfg.group, r->cfg.id, r->view, rq->timestamp, &rp, &auth_off);
    if (len == 0) {
        r->stats.dropped_full++; /* only when the caller did not drain: a loss */
        return;
    }
    auth_reply_fill(r->auth, dst, len, auth_off, rq->client);
    pbft_out_commit(out, PBFT_DEST_CLIENT, rq->client, len);
}

/* wire_result_digest(status, result, len), with the empty results of PUT and
 * DEL (and of failed GETs) served from a small per-status cache. */
static void result_digest(struct pbft_replica *r, uint8_t out[BFTKV_DIGEST_SIZE], int16_t status,
                          const uint8_t *result, uint32_t len)
{
    uint32_t k = (uint32_t)-(int32_t)status;
    if (len > 0 || status > 0 || k >= REPLICA_EMPTY_DIGESTS) {
        wire_result_digest(out, status, result, len);
        return;
    }
    if ((r->empty_digest_known & (1u << k)) == 0) {
        wire_result_digest(r->empty_digest[k], status, NULL, 0);
        r->empty_digest_known |= 1u << k;
    }
    memcpy(out, r->empty_digest[k], BFTKV_DIGEST_SIZE);
}

/* A GET against the current state, into value_buf; hint from the batch's
 * prefetch pass, or NULL. */
static int16_t read_hinted(struct pbft_replica *r, const struct wire_request *rq, const struct store_key_hint *hint,
                           uint32_t *len)
{
    size_t vlen = 0;
    int status = store_get_hinted(r->store, hint, rq->key, rq->klen, r->value_buf, BFTKV_VALUE_MAX, &vlen);
    *len = status == 0 ? (uint32_t)vlen : 0;
    return (int16_t)status;
}

static int16_t read_now(struct pbft_replica *r, const struct wire_request *rq, uint32_t *len)
{
    return read_hinted(r, rq, NULL, len);
}

/* ---- Retransmissions ------------------------------------------------------------- */

void replica_exec_reply_resend(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    const struct wire_request *rq = &m->u.request;
    const struct replica_rc_entry *e = replica_exec_rc_lookup(r, rq->client, rq->lane);
    BFTKV_ASSERT(e->timestamp == rq->timestamp);
    BFTKV_ASSERT(e->timestamp != 0);
    r->stats.requests_duplicate++;
    bool full = full_replier(r, rq->client, rq->lane, rq->timestamp, rq->rflags);
    if (!full || e->cached || e->op != WIRE_OP_GET || rq->op != WIRE_OP_GET) {
        reply_send(r, rq, e->status, 0, e->digest, full && e->cached ? e->result : NULL, e->result_len, out);
        return;
    }
    /* The result of this GET was too large to keep in the cache: read again.
     * Reads are idempotent, and the client's operation is still pending (it
     * retransmits because it has no f+1 matching replies yet), so the current
     * state is one the GET may legally observe -- its linearization point moves
     * to now, inside its pending interval. The reply carries the digest of what
     * was read now; if a write intervened it differs from the cached digest the
     * others send, and the client waits for f+1 matching replies as always. */
    uint32_t len = 0;
    int16_t status = read_now(r, rq, &len);
    uint8_t digest[BFTKV_DIGEST_SIZE];
    result_digest(r, digest, status, r->value_buf, len);
    reply_send(r, rq, status, 0, digest, r->value_buf, len, out);
}

/* ---- Ordered execution ----------------------------------------------------------- */

static void exec_request(struct pbft_replica *r, const struct wire_msg *m, const struct store_key_hint *hint,
                         struct pbft_out *out)
{
    const struct wire_request *rq = &m->u.request;
    struct replica_rc_entry *e = rc_entry(r, rq->client, rq->lane);
    if (rq->timestamp <= e->timestamp) {
        /* Ordered twice (a retransmission the primary batched again, or a faulty
         * primary): executed once, answered from the cache (TOCS 2002 §4.1). */
        if (rq->timestamp == e->timestamp && e->timestamp != 0)
            replica_exec_reply_resend(r, m, out);
        else
            r->stats.requests_duplicate++;
        return;
    }
    /* The store's status is the reply's status. Every outcome is a function of
     * the state and the request, except BFTKV_E_NOMEM, which a correct replica
     * out of memory reports and the client outvotes like any minority answer. */
    int status;
    uint32_t rlen = 0;
    const uint8_t *result = NULL;
    switch (rq->op) {
    case WIRE_OP_PUT:
        status = store_put_hinted(r->store, hint, rq->key, rq->klen, rq->value, rq->vlen);
        break;
    case WIRE_OP_GET:
        status = read_hinted(r, rq, hint, &rlen);
        if (status == 0)
            result = r->value_buf;
        break;
    case WIRE_OP_DEL:
        status = store_del_hinted(r->store, hint, rq->key, rq->klen);
        break;
    default:
        status = BFTKV_E_INVAL; /* the decoder admits no other op */
        break;
    }
    e->timestamp = rq->timestamp;
    replica_viewchange_watch_executed(r, (uint32_t)rq->client * r->cfg.lanes + rq->lane, rq->timestamp);
    e->status = (int16_t)status;
    e->op = rq->op;
    e->result_len = rlen;
    e->cached = rlen <= REPLICA_RC_RESULT_MAX;
    if (e->cached && rlen > 0)
        memcpy(e->result, result, rlen);
    result_digest(r, e->digest, e->status, result != NULL ? result : e->result, rlen);
    r->rc_dirty[rq->client] = 1;
    r->stats.requests_executed++;

    bool full = full_replier(r, rq->client, rq->lane, rq->timestamp, rq->rflags);
    const uint8_t *sent = full ? (result != NULL ? result : e->result) : NULL;
    reply_send(r, rq, e->status, 0, e->digest, sent, rlen, out);
}

static void exec_finish(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    s->executed = true;
    r->last_executed = s->seq;
    r->exec_active = false;
    r->stats.batches_executed++;
    r->stats.batch_requests_total += s->count;
    if (r->on_exec != NULL)
        r->on_exec(r->hook_arg, r->cfg.id, s->seq, s->digest);
    /* TOCS 2002 §4.3: a checkpoint every K sequence numbers. */
    if (s->seq % r->cfg.checkpoint_interval == 0)
        replica_checkpoint_take(r, s->seq, out);
}

/* The request at cursor *off of batch s (advanced past it), decoded into *m;
 * *pool is its pool entry when the batch carries only its digest, else
 * POOL_NONE. Bytes validated when the request or its PRE-PREPARE arrived. */
static void exec_decode(struct pbft_replica *r, const struct replica_slot *s, uint32_t *off, struct wire_msg *m,
                        uint32_t *pool)
{
    struct wire_batch_entry e;
    int have = wire_batch_next(&s->pp_msg, off, &e);
    BFTKV_ASSERT(have == 1);
    const uint8_t *bytes = e.bytes;
    size_t len = e.len;
    *pool = POOL_NONE;
    if (e.kind == WIRE_ENTRY_DIGEST) {
        /* Referenced since acceptance, so still in the pool. */
        *pool = replica_request_pool_find(r, e.request_digest);
        BFTKV_ASSERT(*pool != POOL_NONE);
        bytes = replica_request_pool_bytes(r, *pool);
        len = r->pool[*pool].len;
    }
    size_t consumed = 0;
    int rc = wire_decode(bytes, len, &r->limits, m, &consumed, NULL);
    BFTKV_ASSERT(rc == 0);
    BFTKV_ASSERT(m->h.type == WIRE_REQUEST);
}

/* Before a batch's first request executes: hash every key of the batch and ask
 * the CPU for its home slot, then for its entry, so the cache misses of the
 * whole batch overlap instead of stalling each request in turn (docs/design.md
 * §3.5). The hashes are kept for the execution. Changes no state. */
static void exec_prefetch(struct pbft_replica *r, const struct replica_slot *s)
{
    BFTKV_ASSERT(s->count <= BFTKV_BATCH_REQUESTS_MAX);
    uint32_t off = 0;
    for (uint16_t i = 0; i < s->count; i++) {
        struct wire_msg m;
        uint32_t pool;
        exec_decode(r, s, &off, &m, &pool);
        store_key_prefetch(r->store, m.u.request.key, m.u.request.klen, &r->exec_hints[i]);
    }
    for (uint16_t i = 0; i < s->count; i++)
        store_key_prefetch_entry(r->store, &r->exec_hints[i]);
}

bool replica_exec_run(struct pbft_replica *r, struct pbft_out *out)
{
    for (;;) {
        struct replica_slot *s = replica_slot_find(r, r->last_executed + 1u);
        if (s == NULL || !s->committed) {
            BFTKV_ASSERT(!r->exec_active);
            return true;
        }
        BFTKV_ASSERT(s->has_pp);
        BFTKV_ASSERT(!s->executed);
        if (!r->exec_active) {
            /* Persist, then send: committed before the batch's first reply. */
            if (!replica_persist_committed(r, s, out))
                return false;
            r->exec_active = true;
            r->exec_off = 0;
            r->exec_index = 0;
            exec_prefetch(r, s);
        }
        while (r->exec_index < s->count) {
            uint32_t off = r->exec_off;
            struct wire_msg m;
            uint32_t pool;
            exec_decode(r, s, &off, &m, &pool);
            const struct wire_request *rq = &m.u.request;
            bool full = full_replier(r, rq->client, rq->lane, rq->timestamp, rq->rflags);
            if (!room_for(out, reply_bound(r, full, rq->op)))
                return false;
            /* The hint stays good across a resume: the batch's bytes are the
             * same, and a hash key that changed meanwhile (store_swap) is
             * noticed by the store, which then hashes again. */
            exec_request(r, &m, &r->exec_hints[r->exec_index], out);
            if (pool != POOL_NONE)
                replica_request_pool_unref_executed(r, pool, s->seq);
            r->exec_off = off;
            r->exec_index++;
        }
        exec_finish(r, s, out);
    }
}

/* An unsure replica's answer to every request: it holds no certified state to
 * read from or to order with. The client sees BFTKV_E_NO_STATE only when f+1
 * replicas say it (engine/client.c). */
void replica_exec_reply_no_state(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    const struct wire_request *rq = &m->u.request;
    if (!room_for(out, reply_bound(r, false, rq->op))) {
        r->stats.dropped_full++; /* the client retransmits */
        return;
    }
    uint8_t digest[BFTKV_DIGEST_SIZE];
    result_digest(r, digest, BFTKV_E_NO_STATE, NULL, 0);
    uint8_t rflags = (rq->rflags & WIRE_REQ_READONLY) ? WIRE_REPLY_READONLY : 0;
    reply_send(r, rq, BFTKV_E_NO_STATE, rflags, digest, NULL, 0, out);
    r->stats.requests_refused_no_state++;
}

/* ---- Read-only path -------------------------------------------------------------- */

static void readonly_answer(struct pbft_replica *r, const struct wire_request *rq, struct pbft_out *out)
{
    uint32_t len = 0;
    int16_t status = read_now(r, rq, &len);
    uint8_t digest[BFTKV_DIGEST_SIZE];
    result_digest(r, digest, status, r->value_buf, len);
    bool full = full_replier(r, rq->client, rq->lane, rq->timestamp, rq->rflags);
    reply_send(r, rq, status, WIRE_REPLY_READONLY, digest, full ? r->value_buf : NULL, len, out);
    r->stats.readonly_answered++;
}

void replica_exec_readonly_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    const struct wire_request *rq = &m->u.request;
    uint64_t target = r->max_prepared;
    if (r->cfg.bugs & PBFT_BUG_READONLY_NO_WAIT)
        target = r->last_executed; /* injected bug, tests only */
    bool full = full_replier(r, rq->client, rq->lane, rq->timestamp, rq->rflags);
    if (r->last_executed >= target && room_for(out, reply_bound(r, full, WIRE_OP_GET))) {
        readonly_answer(r, rq, out);
        return;
    }
    if (r->ro_count == r->ro_cap) {
        r->stats.dropped_full++; /* the client retries */
        return;
    }
    uint32_t i = (r->ro_head + r->ro_count++) % r->ro_cap;
    struct replica_ro *q = &r->ro[i];
    q->target = target;
    q->timestamp = rq->timestamp;
    q->client = rq->client;
    q->lane = rq->lane;
    q->klen = rq->klen;
    q->rflags = rq->rflags;
    memcpy(r->ro_keys + (size_t)i * BFTKV_KEY_MAX, rq->key, rq->klen);
}

bool replica_exec_readonly_drain(struct pbft_replica *r, struct pbft_out *out)
{
    while (r->ro_count > 0) {
        const struct replica_ro *q = &r->ro[r->ro_head];
        if (q->target > r->last_executed)
            return true;
        bool full = full_replier(r, q->client, q->lane, q->timestamp, q->rflags);
        if (!room_for(out, reply_bound(r, full, WIRE_OP_GET)))
            return false;
        struct wire_request rq;
        memset(&rq, 0, sizeof rq);
        rq.client = q->client;
        rq.lane = q->lane;
        rq.timestamp = q->timestamp;
        rq.op = WIRE_OP_GET;
        rq.rflags = q->rflags;
        rq.klen = q->klen;
        rq.key = r->ro_keys + (size_t)r->ro_head * BFTKV_KEY_MAX;
        readonly_answer(r, &rq, out);
        r->ro_head = (r->ro_head + 1u) % r->ro_cap;
        r->ro_count--;
    }
    return true;
}

/* ---- The reply cache's part of the state digest ---------------------------------- */

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8u * i));
}

/* Checkpoints must agree on the reply cache too (TOCS 2002 §4.3: the state
 * includes the last reply per client). The digest covers exactly the entries
 * ever written, each named by its (client, lane), and nothing of this replica's
 * configuration: replicas whose allow-lists or lane counts differ (a rolling
 * change of the config, docs/operations.md) hash the same state alike. A block
 * is one client's lanes; only blocks written since the last checkpoint are
 * rehashed, then the used blocks' hashes are hashed with their client ids:
 * O(changes + clients). */
void replica_exec_rc_digest(struct pbft_replica *r, uint8_t out[BFTKV_DIGEST_SIZE])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, BFTKV_DIGEST_SIZE);
    for (uint32_t b = 0; b < r->rc_blocks; b++) {
        if (r->rc_dirty[b]) {
            uint8_t *p = r->rc_scratch;
            for (uint32_t lane = 0; lane < r->cfg.lanes; lane++) {
                const struct replica_rc_entry *e = &r->rc[b * r->cfg.lanes + lane];
                if (e->timestamp == 0)
                    continue;
                put_le(p, lane, 2);
                put_le(p + 2, e->timestamp, 8);
                put_le(p + 10, (uint16_t)e->status, 2);
                put_le(p + 12, e->result_len, 4);
                memcpy(p + 16, e->digest, BFTKV_DIGEST_SIZE);
                p += REPLICA_RC_ENTRY_WIRE;
            }
            r->rc_used[b] = p != r->rc_scratch;
            wire_digest(r->rc_block_hash[b], r->rc_scratch, (size_t)(p - r->rc_scratch));
            r->rc_dirty[b] = 0;
        }
        if (!r->rc_used[b])
            continue;
        uint8_t id[2];
        put_le(id, b, 2);
        crypto_generichash_update(&st, id, sizeof id);
        crypto_generichash_update(&st, r->rc_block_hash[b], BFTKV_DIGEST_SIZE);
    }
    crypto_generichash_final(&st, out, BFTKV_DIGEST_SIZE);
}
