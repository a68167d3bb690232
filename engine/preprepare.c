/* The pre-prepare phase (TOCS 2002 §4.2; docs/design.md §5.3).
 *
 * At the primary: when fewer than W batches are in flight (proposed, not yet
 * executed here), the next sequence number is inside the log window (h, h+L] and
 * requests are pending, a batch is cut -- at once when nothing is in flight,
 * else once the queue holds 1/W of a window's worth (batch_worth_proposing); no
 * timer: the queue grows while batches are in flight, so batches grow with the
 * load. Small
 * requests are inlined whole (with the client's authenticator, so each backup
 * checks the client's MAC itself); large ones are named by digest. The primary
 * multicasts PRE-PREPARE(v, n, D) and logs it; it does not send a PREPARE.
 *
 * At a backup: PRE-PREPARE(v, n, D) is accepted if it comes from the primary of
 * the current view v, n is in (h, h+L], no other D was accepted for (v, n), and
 * every inlined request authenticates; a request named by digest must be in the
 * large-request pool, else the pre-prepare waits ("stalled") until it arrives.
 * On acceptance the backup logs it and multicasts PREPARE(v, n, D, i).
 */
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"

#define POOL_NONE UINT32_MAX

/* ---- Primary: cutting batches ---------------------------------------------------- */

static void batch_cut(struct pbft_replica *r, struct pbft_out *out)
{
    /* The entries are built in place in the outbox, right where the encoder
     * puts them (it moves nothing then), and the finished message is copied
     * once into the log slot: one copy of the batch besides the queue's. */
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    BFTKV_ASSERT(cap >= r->pp_cap); /* replica_preprepare_batch_try checked the room */
    uint8_t *entries = dst + WIRE_HEADER_SIZE + WIRE_PP_FIXED;
    uint32_t used = 0;
    uint16_t count = 0;
    /* Each DIGEST entry is charged its whole request against the batch's share
     * of the backups' pool, B = pool_batch_chunks (the invariant at
     * replica_request_pool_create): its 44 bytes in the PRE-PREPARE are not what the
     * backups must hold. B covers the largest request, so an empty batch takes
     * any. */
    uint32_t large = 0;
    while (!replica_request_pending_empty(r) && count < r->cfg.batch_max_requests) {
        replica_request_pending_trim(r); /* what a view change left behind, executed since */
        if (replica_request_pending_empty(r))
            break;
        const struct replica_pending *p = replica_request_pending_front(r);
        size_t w;
        if (p->kind == WIRE_ENTRY_INLINE) {
            w = wire_entry_inline(entries + used, r->cfg.batch_max_bytes - used, replica_request_pending_bytes(r, p),
                                  p->len);
        } else {
            uint32_t c = replica_request_pool_entry_chunks(r, p->pool);
            if (large + c > r->pool_batch_chunks)
                break; /* the batch names all the large requests it may */
            w = wire_entry_digest(entries + used, r->cfg.batch_max_bytes - used, r->pool[p->pool].digest,
                                  p->client, p->lane, p->timestamp);
            if (w != 0)
                large += c;
        }
        if (w == 0)
            break; /* the batch is full in bytes */
        used += (uint32_t)w;
        count++;
        replica_request_pending_pop(r);
    }
    BFTKV_ASSERT(count > 0); /* config_valid: any single request fits an empty batch */

    uint64_t seq = r->next_seq++;
    struct replica_slot *s = replica_slot_get(r, seq);
    BFTKV_ASSERT(!s->has_digest);
    replica_slot_release(r, s); /* an earlier view's batch there (view change) */
    size_t len = wire_encode_preprepare(dst, cap, r->cfg.group, r->cfg.id, r->cfg.n, r->view, seq, entries, used,
                                        count, &auth_off);
    BFTKV_ASSERT(len > 0);
    BFTKV_ASSERT(len <= r->pp_cap);
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    memcpy(s->pp, dst, len);
    s->pp_len = (uint32_t)len;

    wire_preprepare_view(&s->pp_msg, s->pp, len);
    BFTKV_ASSERT(s->pp_msg.auth == s->pp + auth_off);
    BFTKV_ASSERT(s->pp_msg.u.batch.count == count);
    BFTKV_ASSERT(s->pp_msg.u.batch.entries_len == used);
    memcpy(s->digest, s->pp_msg.u.batch.digest, BFTKV_DIGEST_SIZE);
    s->view = r->view;
    s->count = count;
    s->has_digest = true;
    s->has_pp = true;
    s->pool_refs = true; /* the pending queue's references moved to the batch */
    r->stats.batches_proposed++;
    replica_preprepare_send_own(r, s, len, out);

    /* Only a faulty backup can have sent votes before our PRE-PREPARE; count
     * them against D like any others. */
    replica_prepare_recount(r, s);
    replica_commit_recount(r, s);
    replica_prepare_check(r, s, out);
}

/* The batch policy (docs/design.md §5.3, "Batching"). With nothing in flight a
 * batch goes out at once, so a lone request waits for nothing. With batches in
 * flight, another goes out only once the queue holds a share 1/W of what the
 * window carries: batch_max_requests / W requests, batch_max_bytes / W inlined
 * bytes, or B / W chunks of large requests. Until then the requests wait for the
 * next execution here, which comes back to this test. So the batch size follows
 * the load: a trickle of requests (an open loop) makes batches of what arrives
 * during one batch's round, where proposing on every free window place made W
 * batches of one or two requests, each paying a PRE-PREPARE and n PREPAREs and
 * COMMITs; under heavy load the window fills as before. The wait ends on a
 * count, never a clock. With batch_max_requests <= W every request is worth a
 * batch: the old policy. */
static bool batch_worth_proposing(const struct pbft_replica *r, uint64_t in_flight)
{
    if (in_flight == 0)
        return true;
    uint32_t w = r->cfg.window;
    return r->pend_count >= (r->cfg.batch_max_requests + w - 1u) / w || r->pend_inline_bytes >= r->cfg.batch_max_bytes / w
           || r->pool_pend_chunks >= r->pool_batch_chunks / w;
}

void replica_preprepare_send_own(struct pbft_replica *r, struct replica_slot *s, size_t len, struct pbft_out *out)
{
    BFTKV_ASSERT(s->pp_len == len);
    if (r->cfg.n == 1)
        return;
    /* Persist, then send: the batch before its PRE-PREPARE. Without room for
     * the records it is not sent now: the retransmission records and sends it
     * (catchup.c). */
    size_t tail = out->used;
    if (!replica_persist_preprepare(r, s, out))
        return;
    if (out->used == tail)
        pbft_out_commit(out, PBFT_DEST_ALL_REPLICAS, 0, len); /* still where it was encoded */
    else if (!pbft_out_copy(out, PBFT_DEST_ALL_REPLICAS, 0, s->pp, s->pp_len))
        r->stats.dropped_full++; /* copied records took the tail it was encoded in */
}

void replica_preprepare_batch_try(struct pbft_replica *r, struct pbft_out *out)
{
    if (!replica_is_primary(r) || !r->view_active || !replica_votes(r))
        return;
    /* The trim drops requests a view change left behind that executed since
     * (or that a chosen batch holds): batch_cut starts with a live one. */
    while ((replica_request_pending_trim(r), !replica_request_pending_empty(r))
           && r->next_seq - 1u - r->last_executed < r->cfg.window && r->next_seq <= replica_high(r)
           && batch_worth_proposing(r, r->next_seq - 1u - r->last_executed)) {
        if (!pbft_out_room(out, r->pp_cap + REPLICA_RESERVE_BYTES,
                           1u + REPLICA_RESERVE_MSGS + replica_persist_msgs(r))) {
            out->more = true;
            return;
        }
        batch_cut(r, out);
    }
}

/* ---- Backup: accepting PRE-PREPAREs ---------------------------------------------- */

enum pp_check {
    PP_OK = 0,
    PP_MISSING = 1, /* some large request is not in the pool yet */
    PP_BAD = 2,     /* reason in *why */
    PP_WAIT = 3,    /* all there, but seq is beyond the pool window: wait */
    PP_UNVOUCHED = 4, /* well formed, but a client's MAC for us fails: wait for f PREPAREs */
};

/* Check the entries of a PRE-PREPARE: inlined requests (when check_inline)
 * decode, use a configured lane and a timestamp above 0 (the rules
 * replica_request_receive applies) and carry a valid client authenticator for
 * us (else PP_UNVOUCHED, once every other check passed: pp_vouched); requests
 * named by digest are in the pool and agree with the entry.
 *
 * The large-request pool's rules (the invariant at replica_request_pool_create): the
 * requests a batch names by digest take at most B = pool_batch_chunks chunks (a
 * correct primary closes its batches so, batch_cut; more is a faulty primary's
 * doing and the PRE-PREPARE is refused), and a batch that names any may take its
 * pool references only at seq <= last_executed + pool_window; beyond, it waits
 * (PP_WAIT, stalled like PP_MISSING) until execution catches up. */
static enum pp_check pp_entries_check(struct pbft_replica *r, const struct wire_msg *pp, bool check_inline,
                                      enum wire_drop *why)
{
    enum pp_check res = PP_OK;
    bool named = false; /* some request by digest */
    bool unvouched = false; /* some inlined request's client MAC for us fails */
    uint32_t large = 0; /* chunks of those in the pool */
    uint32_t off = 0;
    struct wire_batch_entry e;
    while (wire_batch_next(pp, &off, &e)) {
        if (e.kind == WIRE_ENTRY_INLINE) {
            /* What execution relies on, even in a batch a NEW-VIEW chose (whose
             * clients' MACs are not checked again, check_inline false). */
            if (e.lane >= r->cfg.lanes || e.timestamp == 0 || !auth_client_known(r->auth, e.client)) {
                *why = WIRE_DROP_BAD_FIELD;
                return PP_BAD;
            }
            if (!check_inline)
                continue;
            struct wire_msg rq;
            size_t consumed = 0;
            if (wire_decode(e.bytes, e.len, &r->limits, &rq, &consumed, NULL) != 0 || rq.h.type != WIRE_REQUEST
                || consumed != e.len || rq.u.request.lane >= r->cfg.lanes || rq.u.request.timestamp == 0) {
                *why = WIRE_DROP_BAD_FIELD;
                return PP_BAD;
            }
            if (!auth_client_known(r->auth, rq.u.request.client)) {
                *why = WIRE_DROP_UNKNOWN_CLIENT;
                return PP_BAD;
            }
            if (!auth_authenticator_check(r->auth, &rq))
                unvouched = true; /* pp_vouched: not the primary's fault, necessarily */
        } else {
            if (e.lane >= r->cfg.lanes || e.timestamp == 0 || !auth_client_known(r->auth, e.client)) {
                *why = WIRE_DROP_BAD_FIELD;
                return PP_BAD;
            }
            named = true;
            uint32_t idx = replica_request_pool_find(r, e.request_digest);
            if (idx == POOL_NONE) {
                res = PP_MISSING;
                continue;
            }
            const struct replica_request_pool_entry *pe = &r->pool[idx];
            if (pe->client != e.client || pe->lane != e.lane || pe->timestamp != e.timestamp) {
                *why = WIRE_DROP_BAD_FIELD;
                return PP_BAD;
            }
            large += replica_request_pool_entry_chunks(r, idx);
            if (large > r->pool_batch_chunks) {
                *why = WIRE_DROP_BAD_LENGTH;
                return PP_BAD;
            }
        }
    }
    if (unvouched)
        return PP_UNVOUCHED;
    if (res == PP_OK && named && pp->h.seq > r->last_executed + r->pool_window)
        res = PP_WAIT;
    return res;
}

static void seen_raise(struct pbft_replica *r, uint16_t client, uint16_t lane, uint64_t ts)
{
    uint64_t *seen = &r->seen_ts[(uint32_t)client * r->cfg.lanes + lane];
    if (ts > *seen)
        *seen = ts;
}

bool replica_preprepare_fields_ok(const struct pbft_replica *r, const struct wire_msg *pp)
{
    uint32_t off = 0;
    struct wire_batch_entry e;
    while (wire_batch_next(pp, &off, &e)) {
        if (e.lane >= r->cfg.lanes || e.timestamp == 0 || !auth_client_known(r->auth, e.client))
            return false;
    }
    return true;
}

/* The slot's PRE-PREPARE passed every check: pre-prepared (TOCS 2002 §4.2). */
static void pp_accept(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    /* A batch executed here already (re-proposed by a NEW-VIEW) needs no pool;
     * one whose references an earlier view's PRE-PREPARE kept holds them. */
    bool ref = !s->pool_refs && !s->executed;
    uint32_t off = 0;
    struct wire_batch_entry e;
    while (wire_batch_next(&s->pp_msg, &off, &e)) {
        if (e.kind == WIRE_ENTRY_DIGEST && ref) {
            uint32_t idx = replica_request_pool_find(r, e.request_digest);
            BFTKV_ASSERT(idx != POOL_NONE); /* pp_entries_check said PP_OK */
            /* Its window rule: what bounds the pool's pinned chunks by w*B. */
            BFTKV_ASSERT(s->seq <= r->last_executed + r->pool_window);
            replica_request_pool_ref(r, idx);
        }
        seen_raise(r, e.client, e.lane, e.timestamp);
    }
    s->pool_refs = s->pool_refs || ref;
    s->has_pp = true;
    /* A backup multicasts PREPARE and counts its own; the primary taking back
     * its own relayed PRE-PREPARE sends none, and a replica without certified
     * state votes not at all (replica_prepare_own). */
    replica_prepare_own(r, s, out);
    replica_prepare_recount(r, s);
    replica_commit_recount(r, s);
    replica_prepare_check(r, s, out);
}

/* The checks a PRE-PREPARE in the window passes whatever the state of its view:
 * its sender is the view's primary (not us), its sizes are within the
 * configuration, and its authenticator has a valid MAC for us. */
static bool pp_sender_ok(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m->h.sender != replica_primary_of(r, m->h.view)) {
        replica_drop(r, WIRE_DROP_BAD_SENDER);
        return false;
    }
    /* Our own PRE-PREPARE can come back only relayed by a peer (catchup.c): we
     * were this view's primary, restarted, and lost the batches we proposed.
     * Its MAC for us is under the key only we hold, so it is ours; taking it
     * back is how a restarted primary catches up on an idle group. */
    if (m->raw_len > r->pp_cap || m->u.batch.count > r->cfg.batch_max_requests
        || m->u.batch.entries_len > r->cfg.batch_max_bytes) {
        replica_drop(r, WIRE_DROP_BAD_LENGTH);
        return false;
    }
    if (!replica_msg_authentic(r, m)) {
        if (m->h.view == r->view)
            replica_viewchange_primary_misbehaved(r);
        return false;
    }
    return true;
}

/* A PRE-PREPARE of the view this replica is moving to, before the NEW-VIEW that
 * starts it: the new primary multicasts the NEW-VIEW and then its PRE-PREPAREs
 * (newview.c), and the network may deliver them in another order. Dropping them
 * would leave the backup to wait for the primary's retransmissions (W slots per
 * interval, backing off) while its request timer runs -- after a view change
 * that re-proposes a whole window, long enough to time out the new view. So the
 * slot keeps it, if it holds no batch or the same one (a NEW-VIEW chooses among
 * the batches the slots hold, which must stay), and it is accepted like any
 * other once the NEW-VIEW is (replica_preprepare_early_accept). */
static void pp_early_keep(struct pbft_replica *r, const struct wire_msg *m)
{
    if (!pp_sender_ok(r, m))
        return;
    struct replica_slot *s = replica_slot_get(r, m->h.seq);
    if (s->has_digest
        || (s->pp_len > 0 && memcmp(s->pp_msg.u.batch.digest, m->u.batch.digest, BFTKV_DIGEST_SIZE) != 0)) {
        r->stats.dropped_stale++;
        return;
    }
    memcpy(s->pp, m->raw, m->raw_len);
    s->pp_len = (uint32_t)m->raw_len;
    wire_preprepare_view(&s->pp_msg, s->pp, m->raw_len);
    s->nv_early = true;
}

static bool ignore_preprepare(struct pbft_replica *r, const struct wire_msg *m)
{
    bool in_window = replica_in_window(r, m->h.seq);
    if (m->h.view == r->view && !r->view_active && in_window) {
        pp_early_keep(r, m);
        return true;
    }
    if (m->h.view != r->view || !r->view_active || !in_window) {
        r->stats.dropped_stale++;
        return true;
    }
    if (!pp_sender_ok(r, m))
        return true;
    struct replica_slot *s = replica_slot_get(r, m->h.seq);
    if (s->has_digest) {
        /* One digest per (v, n): a different one is the primary equivocating. */
        if (memcmp(s->digest, m->u.batch.digest, BFTKV_DIGEST_SIZE) != 0)
            r->stats.dropped_conflict++;
        return true;
    }
    return false;
}

/* A PRE-PREPARE whose inlined request carries a client authenticator with a
 * MAC for us that fails is not proof against the primary: a faulty client can
 * send MACs that hold for the primary alone, and a faulty backup that relays a
 * client's retransmission to the primary (request.c) can flip a byte of another
 * replica's MAC in it. A backup that refused the batch for good would stay
 * unable to prepare that seq -- and with one more faulty replica, the group
 * could no longer commit anything (n = 4: a live test found it, its backups
 * behind and so never suspecting the primary). So the slot waits, stalled,
 * until f backups' PREPAREs match its digest: with the primary that makes f + 1
 * replicas that accepted the batch, so a correct one among them checked the
 * client's MAC for itself (or, waiting so too, relied on f + 1 that had). f + 1
 * matching COMMITs say as much (a correct replica commits only what prepared at
 * it). A faulty primary's made-up request gathers at most f - 1 such PREPAREs,
 * and that slot waits until the request timers change the view. */
static bool pp_vouched(const struct pbft_replica *r, const struct replica_slot *s)
{
    BFTKV_ASSERT(!s->sent_prepare); /* our own vote is not among them */
    return s->prep_match >= r->cfg.f || s->commit_match >= r->cfg.f + 1u;
}

/* A stalled slot: accept its PRE-PREPARE once its requests are vouched for,
 * in the pool and within the pool window. */
static void stalled_try(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    BFTKV_ASSERT(s->stalled);
    if (s->unvouched) {
        if (!pp_vouched(r, s))
            return;
        s->unvouched = false;
    }
    enum wire_drop why = WIRE_DROP_BAD_FIELD;
    enum pp_check res = pp_entries_check(r, &s->pp_msg, false, &why);
    if (res == PP_MISSING || res == PP_WAIT)
        return;
    s->stalled = false;
    r->stalled--;
    if (res == PP_BAD) {
        /* The pool now holds a request that contradicts the entry: the
         * primary lied. Forget the pre-prepare (its digest too). */
        replica_drop(r, why);
        if (s->view == r->view)
            replica_viewchange_primary_misbehaved(r);
        s->has_digest = false;
        s->prep_match = 0;
        s->commit_match = 0;
        return;
    }
    pp_accept(r, s, out);
}

/* A PRE-PREPARE for the current view that passed ignore_preprepare (or was
 * kept early and authenticated then): m may be the slot's own copy. */
static void pp_take(struct pbft_replica *r, struct replica_slot *s, const struct wire_msg *m, struct pbft_out *out)
{
    enum wire_drop why = WIRE_DROP_BAD_FIELD;
    enum pp_check res;
    if (s->nv_fixed) {
        /* The NEW-VIEW chose this seq's batch (TOCS 2002 §4.4): only that digest
         * is accepted. The choice certifies it, so the clients' MACs are not
         * checked again (they were, by the replicas that pre-prepared it
         * first), and a batch executed here already needs nothing more. */
        if (memcmp(m->u.batch.digest, s->nv_digest, BFTKV_DIGEST_SIZE) != 0) {
            r->stats.dropped_conflict++;
            return;
        }
        res = s->executed ? PP_OK : pp_entries_check(r, m, false, &why);
    } else {
        res = pp_entries_check(r, m, true, &why);
    }
    if (res == PP_BAD) {
        replica_drop(r, why); /* authenticated, so the primary's own content */
        if (m->h.view == r->view)
            replica_viewchange_primary_misbehaved(r);
        return;
    }
    /* An earlier view's batch kept its pool references in the slot (newview.c);
     * another batch takes its own. */
    if (s->pool_refs && (s->pp_len == 0 || memcmp(s->pp_msg.u.batch.digest, m->u.batch.digest, BFTKV_DIGEST_SIZE) != 0))
        replica_slot_release(r, s);
    if (m->raw != s->pp) {
        memcpy(s->pp, m->raw, m->raw_len);
        s->pp_len = (uint32_t)m->raw_len;
        wire_preprepare_view(&s->pp_msg, s->pp, m->raw_len);
    }
    memcpy(s->digest, m->u.batch.digest, BFTKV_DIGEST_SIZE);
    s->view = m->h.view;
    s->count = m->u.batch.count;
    s->has_digest = true;
    if (res == PP_MISSING || res == PP_WAIT || res == PP_UNVOUCHED) {
        /* Votes that arrive meanwhile are counted against D already. */
        if (res == PP_WAIT)
            r->stats.pool_waits++;
        s->stalled = true;
        r->stalled++;
        replica_prepare_recount(r, s);
        replica_commit_recount(r, s);
        if (res == PP_UNVOUCHED) {
            r->stats.pp_unvouched++;
            s->unvouched = true;
            stalled_try(r, s, out); /* the PREPAREs that vouch may have come first */
        }
        return;
    }
    pp_accept(r, s, out);
}

void replica_preprepare_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_preprepare(r, m))
        return;
    pp_take(r, replica_slot_get(r, m->h.seq), m, out);
}

void replica_preprepare_early_accept(struct pbft_replica *r, struct pbft_out *out)
{
    for (uint64_t seq = r->low + 1u; seq <= replica_high(r); seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL || !s->nv_early)
            continue;
        s->nv_early = false;
        /* Kept for this view (not one that timed out before its NEW-VIEW), and
         * not superseded meanwhile. */
        if (s->pp_len == 0 || s->pp_msg.h.view != r->view || s->has_digest || replica_is_primary(r))
            continue;
        struct wire_msg m = s->pp_msg;
        pp_take(r, s, &m, out);
    }
}

/* The stalled slots that may be accepted now: above last_executed (only those
 * can be stalled) and within the pool window (beyond, they would wait). */
static uint64_t stalled_last(const struct pbft_replica *r)
{
    uint64_t hi = replica_high(r), w = r->last_executed + r->pool_window;
    return w < hi ? w : hi;
}

void replica_preprepare_stalled_retry(struct pbft_replica *r, struct pbft_out *out)
{
    uint64_t last = stalled_last(r);
    for (uint64_t seq = r->last_executed + 1u; r->stalled > 0 && seq <= last; seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s != NULL && s->stalled)
            stalled_try(r, s, out);
    }
}

void replica_preprepare_vouch(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    if (s->unvouched)
        stalled_try(r, s, out);
}

/* The next large request named by digest in a stalled batch: *seq and *off are
 * the walk's position (start with *seq = 0); false at the end. */
static bool stalled_digest_next(const struct pbft_replica *r, uint64_t *seq, uint32_t *off, const uint8_t **d)
{
    uint64_t last = stalled_last(r);
    if (*seq == 0) {
        *seq = r->last_executed + 1u;
        *off = 0;
    }
    for (; *seq <= last; (*seq)++, *off = 0) {
        const struct replica_slot *s = &r->slots[*seq % r->cfg.log_window];
        if (s->seq == *seq && s->stalled && replica_slot_digest_next(s, off, d))
            return true;
    }
    return false;
}

bool replica_preprepare_stalled_wants(const struct pbft_replica *r, const uint8_t digest[BFTKV_DIGEST_SIZE])
{
    uint64_t seq = 0;
    uint32_t off = 0;
    const uint8_t *d;
    while (stalled_digest_next(r, &seq, &off, &d)) {
        if (memcmp(d, digest, BFTKV_DIGEST_SIZE) == 0)
            return true;
    }
    return false;
}

uint32_t replica_preprepare_stalled_keep(struct pbft_replica *r, bool keep)
{
    uint32_t chunks = 0;
    uint64_t seq = 0;
    uint32_t off = 0;
    const uint8_t *d;
    while (stalled_digest_next(r, &seq, &off, &d)) {
        uint32_t idx = replica_request_pool_find(r, d);
        if (idx == POOL_NONE || r->pool[idx].keep == keep)
            continue;
        r->pool[idx].keep = keep;
        if (keep)
            chunks += replica_request_pool_entry_chunks(r, idx);
    }
    return chunks;
}
