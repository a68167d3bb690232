/* The view change, second half: the new primary's choice, NEW-VIEW, its check at
 * the backups, and the start of the new view (TOCS 2002 §4.4-§4.5; docs/design.md §5.5).
 * viewchange.c has the timers and VIEW-CHANGE messages.
 *
 * The choice (TOCS 2002 §4.5.1), over a set S of VIEW-CHANGEs for view v from
 * distinct replicas, at least q of them. The checkpoint: the highest (h, d) that
 * f+1 messages hold in C while q messages have their stable checkpoint at or
 * below h. Then for each n in (h, h+L]: the batch d if some message has
 * <n, d, v'> in P with
 *   A1: q messages have their checkpoint below n and no P entry for n with a
 *       view above v', or with view v' and another digest, and
 *   A2: f+1 messages have <n, d, v''> in Q with v'' >= v';
 * else the null batch if
 *   B:  q messages have their checkpoint below n and no P entry for n;
 * else no choice is possible yet: wait for more VIEW-CHANGEs. When several
 * batches pass A1 and A2 (possible only without a commit), the one of the latest
 * view wins, then the smaller digest, so every replica computing over the same
 * set gets the same answer. The choices end at the last n decided by A (even if
 * that batch is a null one): B after it is the empty tail.
 *
 * Where this differs from the paper, and why. DESIGN's hybrid: VIEW-CHANGE and
 * NEW-VIEW are signed, so there is no VIEW-CHANGE-ACK round (§4.5.2 of the MAC
 * version). The NEW-VIEW names its VIEW-CHANGEs by digest instead of carrying
 * them (q of them do not fit one datagram): every replica received the
 * multicast VIEW-CHANGEs itself, and one that lacks one waits for its
 * retransmission -- the primary answers a replica still sending VIEW-CHANGEs for
 * the view it is in with the NEW-VIEW and the VIEW-CHANGEs it names. Condition
 * A3 (the primary holds the batch) is not part of the choice: a primary that
 * lacks a chosen batch says so in the NEW-VIEW (WIRE_NV_NEED) and any replica
 * that holds a PRE-PREPARE of an older view with that digest sends it; the
 * batch bytes are bound by the digest, so whoever sends them cannot lie.
 *
 * A backup accepts NEW-VIEW(v) only from v's primary, signed, and only if the
 * choice recomputed over the VIEW-CHANGEs it names (all of which it must hold,
 * with matching digests) is exactly the one announced; otherwise it rejects it
 * (newview_rejected) and its timer runs on. Entering v: the checkpoint is
 * adopted (state transfer when it is beyond execution), each chosen seq expects
 * its chosen digest from the primary (preprepare.c), and replicas that executed
 * a seq do not execute it again -- a choice that differs from what executed is
 * counted (newview_conflicts), never asserted: it is a safety violation that
 * the simulator reports, not a programmer's bug here.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"
#include "engine/viewchange.h"

/* ---- The choice (TOCS 2002 §4.5.1) ------------------------------------------------ */

/* Does m hold (seq, d) in C? C is sorted by seq. */
static bool viewchange_has_checkpoint(const struct wire_msg *m, uint64_t seq, const uint8_t *d)
{
    uint32_t lo = 0, hi = m->u.view_change.ncp;
    struct wire_view_change_entry e;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2u;
        wire_view_change_checkpoint(m, mid, &e);
        if (e.seq < seq)
            lo = mid + 1u;
        else
            hi = mid;
    }
    if (lo == m->u.view_change.ncp)
        return false;
    wire_view_change_checkpoint(m, lo, &e);
    return e.seq == seq && memcmp(e.digest, d, BFTKV_DIGEST_SIZE) == 0;
}

static bool select_checkpoint(const struct pbft_replica *r, const struct wire_msg *const *set, uint16_t nset,
                              struct replica_nv_result *res)
{
    bool found = false;
    struct wire_view_change_entry e;
    for (uint16_t i = 0; i < nset; i++) {
        for (uint32_t j = 0; j < set[i]->u.view_change.ncp; j++) {
            wire_view_change_checkpoint(set[i], j, &e);
            if (found && e.seq <= res->h)
                continue;
            uint32_t hold = 0, below = 0;
            for (uint16_t k = 0; k < nset; k++) {
                hold += viewchange_has_checkpoint(set[k], e.seq, e.digest) ? 1u : 0u;
                below += set[k]->h.seq <= e.seq ? 1u : 0u;
            }
            if (hold < (uint32_t)r->cfg.f + 1u || below < r->quorum)
                continue;
            found = true;
            res->h = e.seq;
            memcpy(res->h_digest, e.digest, BFTKV_DIGEST_SIZE);
        }
    }
    return found;
}

/* Per message: its P entry for seq (NULL: none) and the range of its Q entries
 * for seq, found by cursors that only move forward as seq grows. */
struct sel_msg {
    bool has_p;
    struct wire_view_change_entry p;
    uint32_t q_from, q_to;
};

static void sel_advance(struct pbft_replica *r, const struct wire_msg *const *set, uint16_t nset, uint64_t seq,
                        struct sel_msg *sm)
{
    struct wire_view_change_entry e;
    for (uint16_t i = 0; i < nset; i++) {
        const struct wire_msg *m = set[i];
        sm[i].has_p = false;
        while (r->nv_pcur[i] < m->u.view_change.np) {
            wire_view_change_prepared(m, r->nv_pcur[i], &e);
            if (e.seq > seq)
                break;
            if (e.seq == seq) {
                sm[i].has_p = true;
                sm[i].p = e;
            }
            r->nv_pcur[i]++;
        }
        while (r->nv_qcur[i] < m->u.view_change.nq) {
            wire_view_change_preprepared(m, r->nv_qcur[i], &e);
            if (e.seq >= seq)
                break;
            r->nv_qcur[i]++;
        }
        sm[i].q_from = r->nv_qcur[i];
        sm[i].q_to = sm[i].q_from;
        while (sm[i].q_to < m->u.view_change.nq) {
            wire_view_change_preprepared(m, sm[i].q_to, &e);
            if (e.seq != seq)
                break;
            sm[i].q_to++;
        }
    }
}

/* A1 and A2 for the candidate <seq, d, v>. */
static bool candidate_ok(const struct pbft_replica *r, const struct wire_msg *const *set, uint16_t nset,
                         const struct sel_msg *sm, uint64_t seq, const struct wire_view_change_entry *c)
{
    uint32_t a1 = 0, a2 = 0;
    struct wire_view_change_entry e;
    for (uint16_t j = 0; j < nset; j++) {
        if (set[j]->h.seq < seq
            && (!sm[j].has_p || sm[j].p.view < c->view
                || (sm[j].p.view == c->view && memcmp(sm[j].p.digest, c->digest, BFTKV_DIGEST_SIZE) == 0)))
            a1++;
        for (uint32_t k = sm[j].q_from; k < sm[j].q_to; k++) {
            wire_view_change_preprepared(set[j], k, &e);
            if (e.view >= c->view && memcmp(e.digest, c->digest, BFTKV_DIGEST_SIZE) == 0) {
                a2++;
                break;
            }
        }
    }
    if (a1 < r->quorum)
        return false;
    return (r->cfg.bugs & PBFT_BUG_NEWVIEW_IGNORE_A2) != 0 || a2 >= (uint32_t)r->cfg.f + 1u;
}

bool replica_newview_select(struct pbft_replica *r, const struct wire_msg *const *set, uint16_t nset,
                            struct replica_nv_result *res, uint8_t (*choices)[BFTKV_DIGEST_SIZE])
{
    BFTKV_ASSERT(nset <= r->cfg.n);
    memset(res, 0, sizeof *res);
    if (nset < r->quorum || !select_checkpoint(r, set, nset, res))
        return false;
    /* Nothing above the highest P entry can pass A; B holds there, since q
     * messages have their checkpoint at or below h. */
    uint64_t maxp = res->h;
    struct wire_view_change_entry e;
    for (uint16_t i = 0; i < nset; i++) {
        r->nv_pcur[i] = 0;
        r->nv_qcur[i] = 0;
        if (set[i]->u.view_change.np > 0) {
            wire_view_change_prepared(set[i], set[i]->u.view_change.np - 1u, &e);
            if (e.seq > maxp)
                maxp = e.seq;
        }
    }
    if (maxp > res->h + r->cfg.log_window)
        maxp = res->h + r->cfg.log_window;
    uint8_t null_digest[BFTKV_DIGEST_SIZE];
    wire_null_batch_digest(null_digest);
    struct sel_msg sm[BFTKV_REPLICAS_MAX];
    for (uint64_t seq = res->h + 1u; seq <= maxp; seq++) {
        sel_advance(r, set, nset, seq, sm);
        const struct wire_view_change_entry *best = NULL;
        for (uint16_t i = 0; i < nset; i++) {
            const struct wire_view_change_entry *c = &sm[i].p;
            if (!sm[i].has_p)
                continue;
            if (best != NULL
                && (c->view < best->view
                    || (c->view == best->view && memcmp(c->digest, best->digest, BFTKV_DIGEST_SIZE) >= 0)))
                continue;
            if (candidate_ok(r, set, nset, sm, seq, c))
                best = c;
        }
        uint16_t off = (uint16_t)(seq - res->h - 1u);
        if (best != NULL) {
            memcpy(choices[off], best->digest, BFTKV_DIGEST_SIZE);
            res->nch = (uint16_t)(off + 1u);
            continue;
        }
        uint32_t b = 0;
        for (uint16_t j = 0; j < nset; j++)
            b += set[j]->h.seq < seq && !sm[j].has_p ? 1u : 0u;
        if (b < r->quorum)
            return false; /* wait for more VIEW-CHANGEs */
        memcpy(choices[off], null_digest, BFTKV_DIGEST_SIZE);
    }
    return true;
}

/* ---- Slots ------------------------------------------------------------------------- */

/* Does the slot hold a PRE-PREPARE (of any view) whose batch has digest d? */
static bool slot_has_batch(const struct replica_slot *s, const uint8_t *d)
{
    return s->pp_len > 0 && memcmp(s->pp_msg.u.batch.digest, d, BFTKV_DIGEST_SIZE) == 0;
}

/* Point the slot's decoded PRE-PREPARE at its buffer; the message was validated
 * already. */
static void slot_pp_bind(struct replica_slot *s, uint32_t len)
{
    wire_preprepare_view(&s->pp_msg, s->pp, len);
    s->pp_len = len;
}

/* Can the new primary take the pool references of a chosen batch at seq now?
 * Every large request it names must be in the pool (clients retransmit them to
 * everyone), and a batch naming any may pin them only within pool_window above
 * last_executed (the pool's invariant, preprepare.c). */
static bool batch_refs_ready(const struct pbft_replica *r, const struct wire_msg *pp, uint64_t seq)
{
    bool named = false;
    uint32_t off = 0;
    struct wire_batch_entry e;
    while (wire_batch_next(pp, &off, &e)) {
        if (e.kind != WIRE_ENTRY_DIGEST)
            continue;
        named = true;
        if (replica_request_pool_find(r, e.request_digest) == UINT32_MAX)
            return false;
    }
    return !named || seq <= r->last_executed + r->pool_window;
}

/* ---- The checkpoint of the new view ------------------------------------------------- */

/* h moves up to the chosen checkpoint (TOCS 2002 §4.4: the new view starts from
 * it). Beyond execution the state is fetched (statetransfer.c), which moves h
 * itself once installed; at or below it, our own checkpoint of h must be the
 * chosen one. */
static void checkpoint_adopt(struct pbft_replica *r, uint64_t h, const uint8_t *d)
{
    if (h <= r->low)
        return;
    if (h > r->last_executed) {
        replica_statetransfer_start(r, h, d);
        return;
    }
    struct replica_ckpt *c = &r->ckpts[(h / r->cfg.checkpoint_interval) % r->ckpt_count];
    if (c->seq != h || !c->own_taken || memcmp(c->own_digest, d, BFTKV_DIGEST_SIZE) != 0) {
        r->stats.newview_conflicts++; /* we executed another state: not ours to fix */
        return;
    }
    replica_checkpoint_stable_by_view(r, c);
}

/* ---- Entering the new view ----------------------------------------------------------- */

/* Backups relay the requests they kept to the new primary (it may hold them
 * already: its queue drops duplicates by timestamp). */
static void queue_forward(struct pbft_replica *r, struct pbft_out *out)
{
    uint16_t primary = replica_primary_of(r, r->view);
    for (uint32_t k = 0; k < r->pend_count; k++) {
        const struct replica_pending *p = &r->pend[(r->pend_head + k) % r->pend_cap];
        if (p->dead || p->kind != WIRE_ENTRY_INLINE
            || p->timestamp <= replica_exec_rc_lookup(r, p->client, p->lane)->timestamp)
            continue;
        if (!pbft_out_room(out, p->len + REPLICA_RESERVE_BYTES, 1u + REPLICA_RESERVE_MSGS)) {
            r->stats.dropped_full++; /* the rest wait for the clients' retransmissions */
            return;
        }
        pbft_out_copy(out, PBFT_DEST_REPLICA, primary, replica_request_pending_bytes(r, p), p->len);
    }
}

/* The new primary queues the large requests of its pool that nothing holds. */
static void pool_requeue(struct pbft_replica *r)
{
    for (uint32_t i = replica_request_pool_next(r, UINT32_MAX); i != UINT32_MAX; i = replica_request_pool_next(r, i)) {
        const struct replica_request_pool_entry *e = &r->pool[i];
        if (e->lane >= r->cfg.lanes || e->done)
            continue; /* done: executed here, kept for laggards only */
        uint64_t *seen = &r->seen_ts[(uint32_t)e->client * r->cfg.lanes + e->lane];
        if (e->timestamp <= *seen)
            continue;
        if (!replica_request_pending_store_pooled(r, i)) {
            r->stats.dropped_full++;
            return;
        }
        *seen = e->timestamp;
    }
}

/* Give the chosen seqs that are inside the window their choice: the digest a
 * PRE-PREPARE must carry. Seqs beyond it (a replica that is behind by more than
 * a window, fetching the checkpoint's state) get theirs when the window moves. */
static void choices_mark(struct pbft_replica *r)
{
    uint64_t top = replica_high(r);
    uint64_t first = (r->nv_marked > r->low ? r->nv_marked : r->low) + 1u;
    uint64_t last = r->nv_max < top ? r->nv_max : top;
    for (uint64_t seq = first; seq <= last; seq++) {
        struct replica_slot *s = replica_slot_get(r, seq);
        uint64_t i = seq - r->nv_h - 1u;
        const uint8_t *d = r->nv_choice[i];
        s->view = r->view;
        s->nv_fixed = true;
        memcpy(s->nv_digest, d, BFTKV_DIGEST_SIZE);
        s->nv_need = (r->nv_xflags[i] & WIRE_NV_NEED) != 0;
        if (s->executed && memcmp(s->digest, d, BFTKV_DIGEST_SIZE) != 0)
            r->stats.newview_conflicts++;
        if (!slot_has_batch(s, d))
            replica_slot_release(r, s); /* its batch is not this view's */
    }
    if (last > r->nv_marked) {
        r->nv_marked = last;
        r->nv_work = true;
    }
}

/* choices and xflags are r->nv_choice and r->nv_xflags: they stay as the view's
 * choice until the next view change. */
static void view_install(struct pbft_replica *r, const struct replica_nv_result *res, struct pbft_out *out)
{
    BFTKV_ASSERT(!r->view_active);
    BFTKV_ASSERT(!r->exec_active);
    /* The NEW-VIEW is recorded before any message of its view (pbft.h): those
     * wait for the record while the outbox has no entry for it. */
    if (r->cfg.durable && r->persisted_nv_view != r->view + 1u)
        r->persist_nv_pending = true;
    replica_persist_flush(r, out);
    checkpoint_adopt(r, res->h, res->h_digest);
    uint64_t top = res->h + res->nch;
    r->nv_h = res->h;
    r->nv_max = top;
    r->nv_marked = res->h;
    r->nv_cursor = (res->h > r->low ? res->h : r->low) + 1u;
    choices_mark(r);
    /* Above the choices the new view assigns new batches: nothing executed
     * there may stay (only a bug gets here), and old batches let go of the pool. */
    for (uint64_t seq = (top > r->low ? top : r->low) + 1u; seq <= replica_high(r); seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL)
            continue;
        s->view = r->view;
        if (s->executed)
            r->stats.newview_conflicts++;
        replica_slot_release(r, s);
    }
    r->nv_state = REPLICA_NV_DONE;
    r->nv_work = true;
    r->stats.viewchanges++;
    replica_viewchange_activate(r);
    replica_preprepare_early_accept(r, out); /* PRE-PREPAREs that overtook the NEW-VIEW */
    if (replica_is_primary(r)) {
        /* New batches follow the choices (TOCS 2002 §4.4): what it assigned
         * above them in an earlier view committed nowhere, or it would have been
         * chosen. This also ends a restarted replica's parked next_seq. */
        r->next_seq = (top > r->low ? top : r->low) + 1u;
        pool_requeue(r);
    } else {
        queue_forward(r, out);
    }
}

/* ---- The new primary ------------------------------------------------------------------ */

void replica_newview_try(struct pbft_replica *r, struct pbft_out *out)
{
    if (r->view_active || replica_primary_of(r, r->view) != r->cfg.id || r->nv_state == REPLICA_NV_DONE
        || !replica_votes(r))
        return;
    uint16_t ids[BFTKV_REPLICAS_MAX];
    uint8_t digests[BFTKV_REPLICAS_MAX][BFTKV_DIGEST_SIZE];
    uint16_t ns = 0;
    for (uint16_t i = 0; i < r->cfg.n; i++) {
        const struct replica_view_change_msg *x = &r->viewchange_cur[i];
        if (x->len == 0 || x->view != r->view)
            continue;
        r->nv_set[ns] = &x->msg;
        ids[ns] = i;
        memcpy(digests[ns], x->digest, BFTKV_DIGEST_SIZE);
        ns++;
    }
    struct replica_nv_result res;
    if (ns < r->quorum || !replica_newview_select(r, r->nv_set, ns, &res, r->nv_choice))
        return;
    /* Which chosen batches we lack (TOCS 2002 §4.4: the primary must have them). */
    uint8_t null_digest[BFTKV_DIGEST_SIZE];
    wire_null_batch_digest(null_digest);
    for (uint16_t i = 0; i < res.nch; i++) {
        uint64_t seq = res.h + 1u + i;
        const struct replica_slot *s = replica_slot_find(r, seq);
        bool have = memcmp(r->nv_choice[i], null_digest, BFTKV_DIGEST_SIZE) == 0 || seq <= r->low
                    || (s != NULL && slot_has_batch(s, r->nv_choice[i]));
        r->nv_xflags[i] = (uint8_t)(have ? 0u : WIRE_NV_NEED);
    }
    size_t auth_off = 0;
    size_t len = wire_encode_new_view(r->nv_buf, r->nv_cap, r->cfg.group, r->cfg.id, r->view, res.h, res.h_digest,
                                      ids, (const uint8_t(*)[32])digests, ns,
                                      (const uint8_t(*)[32])r->nv_choice, r->nv_xflags, res.nch, &auth_off);
    BFTKV_ASSERT(len > 0); /* nv_cap is the largest size */
    auth_sign(r->auth, r->nv_buf, len, auth_off);
    r->nv_len = (uint32_t)len;
    /* Persist, then send (pbft.h). */
    r->persist_nv_pending = r->cfg.durable;
    if (r->cfg.n > 1
        && (!replica_persist_flush(r, out) || !pbft_out_copy(out, PBFT_DEST_ALL_REPLICAS, 0, r->nv_buf, len)))
        r->stats.dropped_full++; /* the backups' VIEW-CHANGE retransmissions fetch it */
    view_install(r, &res, out);
}

void replica_newview_answer(struct pbft_replica *r, uint16_t to, struct pbft_out *out)
{
    if (r->nv_state != REPLICA_NV_DONE || r->nv_len == 0 || r->now_ns < r->viewchange_answer_ns[to])
        return;
    r->viewchange_answer_ns[to] = r->now_ns + replica_viewchange_resend_interval(r);
    if (!pbft_out_copy(out, PBFT_DEST_REPLICA, to, r->nv_buf, r->nv_len)) {
        r->stats.dropped_full++;
        return;
    }
    struct wire_msg nv;
    size_t used = 0;
    int rc = wire_decode(r->nv_buf, r->nv_len, &r->limits, &nv, &used, NULL);
    BFTKV_ASSERT(rc == 0);
    BFTKV_ASSERT(nv.h.type == WIRE_NEW_VIEW);
    for (uint32_t i = 0; i < nv.u.nv.nvc; i++) {
        uint16_t id;
        const uint8_t *d;
        wire_nv_view_change(&nv, i, &id, &d);
        const struct replica_view_change_msg *x = &r->viewchange_cur[id];
        if (x->len == 0 || x->view != r->view)
            continue; /* its own too: a restarted replica lost the one named */
        /* A durable replica sends its own VIEW-CHANGE only as recorded: one that
         * restarted on a wiped disk may hold its earlier self's, relayed to it. */
        if (id == r->cfg.id && r->cfg.durable && r->persisted_vc_view != x->view + 1u)
            continue;
        if (!pbft_out_copy(out, PBFT_DEST_REPLICA, to, x->buf, x->len)) {
            r->stats.dropped_full++;
            return;
        }
    }
    /* It dropped this view's PRE-PREPAREs while it was not in the view yet
     * (the primary's, relayed by a backup as they are: their authenticator has
     * a MAC for every replica). */
    uint64_t from = r->nv_h > r->low ? r->nv_h : r->low;
    uint64_t end = replica_is_primary(r) ? r->next_seq : r->last_executed + 1u;
    for (uint64_t seq = from + 1u; seq < end && seq <= replica_high(r); seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL || !s->has_pp || s->view != r->view)
            continue;
        if (!replica_persist_preprepare(r, s, out) || !pbft_out_copy(out, PBFT_DEST_REPLICA, to, s->pp, s->pp_len)) {
            r->stats.dropped_full++;
            return;
        }
    }
}

/* ---- Backups: NEW-VIEW ------------------------------------------------------------------ */

static bool nv_pending_decode(const struct pbft_replica *r, struct wire_msg *nv)
{
    if (r->nv_state != REPLICA_NV_PENDING)
        return false;
    size_t used = 0;
    int rc = wire_decode(r->nv_buf, r->nv_len, &r->limits, nv, &used, NULL);
    BFTKV_ASSERT(rc == 0);
    BFTKV_ASSERT(nv->h.type == WIRE_NEW_VIEW); /* stored after decoding */
    return true;
}

bool replica_newview_names(const struct pbft_replica *r, uint16_t replica, const uint8_t digest[BFTKV_DIGEST_SIZE])
{
    struct wire_msg nv;
    if (!nv_pending_decode(r, &nv))
        return false;
    for (uint32_t i = 0; i < nv.u.nv.nvc; i++) {
        uint16_t id;
        const uint8_t *d;
        wire_nv_view_change(&nv, i, &id, &d);
        if (id == replica)
            return memcmp(d, digest, BFTKV_DIGEST_SIZE) == 0;
    }
    return false;
}

static void newview_reject(struct pbft_replica *r)
{
    r->stats.newview_rejected++;
    r->nv_state = REPLICA_NV_NONE;
    r->nv_len = 0;
}

void replica_newview_retry(struct pbft_replica *r, struct pbft_out *out)
{
    struct wire_msg nv;
    if (r->view_active || !nv_pending_decode(r, &nv))
        return;
    uint16_t ns = 0;
    for (uint32_t i = 0; i < nv.u.nv.nvc; i++) {
        uint16_t id;
        const uint8_t *d;
        wire_nv_view_change(&nv, i, &id, &d);
        const struct replica_view_change_msg *x = &r->viewchange_cur[id];
        if (x->len == 0 || x->view != r->view || memcmp(x->digest, d, BFTKV_DIGEST_SIZE) != 0)
            return; /* wait for it: its retransmission, or the primary's answer */
        r->nv_set[ns++] = &x->msg;
    }
    /* Recompute the choice over exactly those VIEW-CHANGEs (TOCS 2002 §4.5.2). */
    struct replica_nv_result res;
    if (!replica_newview_select(r, r->nv_set, ns, &res, r->nv_choice) || res.h != nv.h.seq
        || memcmp(res.h_digest, nv.u.nv.ckpt_digest, BFTKV_DIGEST_SIZE) != 0 || res.nch != nv.u.nv.nch) {
        newview_reject(r);
        return;
    }
    for (uint32_t i = 0; i < res.nch; i++) {
        const uint8_t *d;
        wire_nv_choice(&nv, i, &d, &r->nv_xflags[i]);
        if (memcmp(d, r->nv_choice[i], BFTKV_DIGEST_SIZE) != 0) {
            newview_reject(r);
            return;
        }
    }
    view_install(r, &res, out);
}

static bool ignore_new_view(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m->h.view == r->view && r->view_active)
        return true; /* entered already: a retransmission */
    if (m->h.view != r->view) {
        r->stats.dropped_stale++; /* an older view, or one we have not joined */
        return true;
    }
    if (m->h.sender != replica_primary_of(r, m->h.view) || m->h.sender == r->cfg.id) {
        replica_drop(r, WIRE_DROP_BAD_SENDER);
        return true;
    }
    if (m->raw_len > r->nv_cap) {
        replica_drop(r, WIRE_DROP_BAD_LENGTH);
        return true;
    }
    if (m->h.seq % r->cfg.checkpoint_interval != 0 || m->u.nv.nch > r->cfg.log_window
        || m->u.nv.nvc < r->quorum) {
        replica_drop(r, WIRE_DROP_BAD_FIELD);
        return true;
    }
    if (r->nv_state == REPLICA_NV_PENDING && r->nv_len == m->raw_len && memcmp(r->nv_buf, m->raw, m->raw_len) == 0)
        return true; /* pending already */
    return !replica_msg_authentic(r, m);
}

void replica_new_view_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_new_view(r, m))
        return;
    memcpy(r->nv_buf, m->raw, m->raw_len);
    r->nv_len = (uint32_t)m->raw_len;
    r->nv_state = REPLICA_NV_PENDING;
    replica_newview_retry(r, out);
}

/* ---- The first PRE-PREPAREs of the new view ---------------------------------------- */

/* PRE-PREPARE(v, seq, chosen batch) from the primary, like batch_cut's. false:
 * not yet (the batch, or one of its large requests, is missing here). */
static bool propose_chosen(struct pbft_replica *r, struct replica_slot *s, const uint8_t *null_digest,
                           struct pbft_out *out)
{
    const uint8_t *entries = NULL;
    uint32_t elen = 0;
    uint16_t count = 0;
    if (memcmp(s->nv_digest, null_digest, BFTKV_DIGEST_SIZE) != 0) {
        if (!slot_has_batch(s, s->nv_digest)) {
            s->nv_need = true;
            return false;
        }
        if (!s->executed && !s->pool_refs && !batch_refs_ready(r, &s->pp_msg, s->seq))
            return false; /* retried on the tick and as execution moves on */
        entries = s->pp_msg.u.batch.entries;
        elen = s->pp_msg.u.batch.entries_len;
        count = s->pp_msg.u.batch.count;
    }
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_preprepare(dst, cap, r->cfg.group, r->cfg.id, r->cfg.n, r->view, s->seq, entries, elen,
                                        count, &auth_off);
    BFTKV_ASSERT(len > 0);
    BFTKV_ASSERT(len <= r->pp_cap); /* room checked by the caller */
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    memcpy(s->pp, dst, len);
    slot_pp_bind(s, (uint32_t)len);
    BFTKV_ASSERT(memcmp(s->pp_msg.u.batch.digest, s->nv_digest, BFTKV_DIGEST_SIZE) == 0);
    if (!s->pool_refs && !s->executed) {
        uint32_t off = 0;
        struct wire_batch_entry e;
        while (wire_batch_next(&s->pp_msg, &off, &e)) {
            if (e.kind == WIRE_ENTRY_DIGEST)
                replica_request_pool_ref(r, replica_request_pool_find(r, e.request_digest));
        }
        s->pool_refs = true;
    }
    memcpy(s->digest, s->nv_digest, BFTKV_DIGEST_SIZE);
    s->view = r->view;
    s->count = count;
    s->has_digest = true;
    s->has_pp = true;
    s->nv_need = false;
    replica_preprepare_send_own(r, s, len, out);
    replica_prepare_recount(r, s);
    replica_commit_recount(r, s);
    replica_prepare_check(r, s, out);
    return true;
}

bool replica_newview_progress(struct pbft_replica *r, struct pbft_out *out)
{
    if (!r->view_active || r->nv_state != REPLICA_NV_DONE)
        return true;
    if (r->nv_marked < r->nv_max)
        choices_mark(r); /* the window moved (state transfer) */
    if (!r->nv_work)
        return true;
    bool primary = replica_is_primary(r);
    uint8_t null_digest[BFTKV_DIGEST_SIZE];
    wire_null_batch_digest(null_digest);
    bool prefix = true; /* everything before seq is done */
    for (uint64_t seq = r->nv_cursor; seq <= r->nv_marked; seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        bool done = true;
        if (s != NULL && primary && !s->has_pp) {
            if (!pbft_out_room(out, r->pp_cap + REPLICA_RESERVE_BYTES,
                               1u + REPLICA_RESERVE_MSGS + replica_persist_msgs(r)))
                return false;
            done = propose_chosen(r, s, null_digest, out);
        } else if (s != NULL && !primary && s->nv_need && slot_has_batch(s, s->nv_digest)) {
            /* The primary asked for this batch: send the PRE-PREPARE we hold. */
            if (!pbft_out_copy(out, PBFT_DEST_REPLICA, replica_primary_of(r, r->view), s->pp, s->pp_len))
                return false;
            s->nv_need = false;
        }
        prefix = prefix && done;
        if (prefix)
            r->nv_cursor = seq + 1u;
    }
    r->nv_work = false;
    return true;
}

void replica_newview_batch_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    (void)out;
    struct replica_slot *s = NULL;
    if (r->view_active && replica_is_primary(r) && m->h.seq <= r->nv_max)
        s = replica_slot_find(r, m->h.seq);
    if (s == NULL || !s->nv_fixed || !s->nv_need || s->has_pp
        || memcmp(m->u.batch.digest, s->nv_digest, BFTKV_DIGEST_SIZE) != 0) {
        r->stats.dropped_stale++; /* an old view's, not asked for */
        return;
    }
    if (m->raw_len > r->pp_cap) {
        replica_drop(r, WIRE_DROP_BAD_LENGTH);
        return;
    }
    if (!replica_preprepare_fields_ok(r, m)) {
        replica_drop(r, WIRE_DROP_BAD_FIELD); /* chosen on a faulty replica's word */
        return;
    }
    /* The decoder checked that D is the digest of these entries: whoever sent
     * them, they are the chosen batch. */
    BFTKV_ASSERT(!s->pool_refs || s->executed); /* released: it held another batch */
    memcpy(s->pp, m->raw, m->raw_len);
    slot_pp_bind(s, (uint32_t)m->raw_len);
    s->nv_need = false;
    r->nv_work = true;
}
