/* The view change, first half: VIEW-CHANGE messages, and moving between
 * views (TOCS 2002 §4.4-§4.5; docs/design.md §5.5). newview.c has the second
 * half: the new primary's choice, NEW-VIEW, and the first PRE-PREPAREs.
 *
 * Request timers and the timeout they use: viewchange_timer.c. A primary of a
 * working view that hears a replica alone in a higher view steps down to it:
 * viewchange_rejoin.c.
 *
 * Moving to view v+1: the replica folds what it prepared and pre-prepared in
 * view v into each slot's P and Q memory (kept across views while the seq is in
 * the window, TOCS 2002 §4.5.1: "the replica keeps only the information for the
 * latest view per digest"; Q keeps the WIRE_VIEW_CHANGE_Q_PER_SEQ digests of the latest
 * views), stops accepting normal-case messages, and multicasts a signed
 * VIEW-CHANGE(v+1, h, C, P, Q). It retransmits it every T/4 until the view
 * starts. Once q replicas (itself included) have sent VIEW-CHANGEs for v+1 or
 * a later view it starts a timer of the current timeout; if no valid NEW-VIEW
 * comes within it, it moves on to v+2 and the timeout doubles (TOCS 2002
 * §4.5.2, liveness rule 1). A replica that holds VIEW-CHANGEs for views above
 * its own from f+1 others moves to the smallest view that f+1 of them reached
 * (rule 2); fewer do nothing, so f faulty replicas cannot force a view change
 * (rule 3).
 *
 * Each replica keeps, per sender, the VIEW-CHANGE for the view it is moving to
 * (or is in) and the one for the highest view above: enough to check a NEW-VIEW,
 * to count f+1 for rule 2, and bounded by 2n messages.
 */
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"
#include "engine/viewchange.h"

/* ---- Creation --------------------------------------------------------------------- */

static bool viewchange_msgs_alloc(struct replica_view_change_msg **v, uint32_t n, uint32_t cap)
{
    *v = calloc(n, sizeof **v);
    if (*v == NULL)
        return false;
    for (uint32_t i = 0; i < n; i++) {
        (*v)[i].buf = malloc(cap);
        if ((*v)[i].buf == NULL)
            return false;
    }
    return true;
}

static void viewchange_msgs_free(struct replica_view_change_msg *v, uint32_t n)
{
    if (v == NULL)
        return;
    for (uint32_t i = 0; i < n; i++)
        free(v[i].buf);
    free(v);
}

bool replica_viewchange_create(struct pbft_replica *r)
{
    uint32_t n = r->cfg.n, l = r->cfg.log_window, k = r->cfg.checkpoint_interval;
    r->view_active = true;
    r->viewchange_timeout_ns = r->cfg.request_timeout_ns;
    r->stats.viewchange_timeout_ns = r->viewchange_timeout_ns;
    r->viewchange_progress = true;
    /* Stored VIEW-CHANGEs: two per sender, each of the largest size for this L
     * and K, WIRE_VIEW_CHANGE_SIZE(L, K) bytes (37,088 at L = 256, K = 128):
     * 2n of them, 297 KB at n = 4. */
    r->viewchange_cap = (uint32_t)WIRE_VIEW_CHANGE_SIZE(l, k);
    BFTKV_ASSERT(r->viewchange_cap <= BFTKV_DATAGRAM_MAX);
    bool ok = viewchange_msgs_alloc(&r->viewchange_cur, n, r->viewchange_cap)
              && viewchange_msgs_alloc(&r->viewchange_next, n, r->viewchange_cap);
    r->viewchange_answer_ns = ok ? calloc(n, sizeof *r->viewchange_answer_ns) : NULL;
    /* Encoder scratch: C, P and Q of one VIEW-CHANGE, L/K + 1 + 3L entries. */
    r->viewchange_entries =
        ok ? calloc(l / k + 1u + (1u + WIRE_VIEW_CHANGE_Q_PER_SEQ) * l, sizeof *r->viewchange_entries) : NULL;
    /* The NEW-VIEW of the current view: WIRE_NEW_VIEW_SIZE(L, n) bytes; the
     * selection's scratch: L choices and flags, n set entries and cursors. */
    r->nv_cap = (uint32_t)WIRE_NEW_VIEW_SIZE(l, n);
    r->nv_buf = ok ? malloc(r->nv_cap) : NULL;
    r->nv_choice = ok ? calloc(l, BFTKV_DIGEST_SIZE) : NULL;
    r->nv_xflags = ok ? calloc(l, 1) : NULL;
    r->nv_set = ok ? calloc(n, sizeof *r->nv_set) : NULL;
    r->nv_pcur = ok ? calloc(n, sizeof *r->nv_pcur) : NULL;
    r->nv_qcur = ok ? calloc(n, sizeof *r->nv_qcur) : NULL;
    /* Watched requests: a timestamp per (client, lane), and a FIFO with room
     * for one watch per (client, lane) twice over (an executed watch leaves the
     * FIFO when it reaches the front; a full FIFO is compacted). */
    r->watch_cap = 2u * r->rc_entries;
    r->watch_ts = ok ? calloc(r->rc_entries, sizeof *r->watch_ts) : NULL;
    r->watch = ok ? calloc(r->watch_cap, sizeof *r->watch) : NULL;
    r->watch_start_ns = ok ? calloc(r->rc_entries, sizeof *r->watch_start_ns) : NULL;
    ok = ok && replica_viewchange_rejoin_create(r);
    return ok && r->viewchange_answer_ns && r->viewchange_entries && r->nv_buf && r->nv_choice && r->nv_xflags
           && r->nv_set && r->nv_pcur && r->nv_qcur && r->watch_ts && r->watch && r->watch_start_ns;
}

void replica_viewchange_destroy(struct pbft_replica *r)
{
    viewchange_msgs_free(r->viewchange_cur, r->cfg.n);
    viewchange_msgs_free(r->viewchange_next, r->cfg.n);
    free(r->viewchange_answer_ns);
    free(r->viewchange_entries);
    free(r->nv_buf);
    free(r->nv_choice);
    free(r->nv_xflags);
    free(r->nv_set);
    free(r->nv_pcur);
    free(r->nv_qcur);
    free(r->watch_ts);
    free(r->watch);
    free(r->watch_start_ns);
    replica_viewchange_rejoin_destroy(r);
}

uint64_t replica_viewchange_resend_interval(const struct pbft_replica *r)
{
    return r->cfg.request_timeout_ns / 4u + 1u;
}

/* ---- The slots' P and Q memory (TOCS 2002 §4.5.1) ----------------------------------- */

/* Record that the slot was pre-prepared with d in view v: the latest view per
 * digest, and only the WIRE_VIEW_CHANGE_Q_PER_SEQ digests of the latest views. */
void replica_viewchange_slot_q_add(struct replica_slot *s, uint64_t v, const uint8_t *d)
{
    for (uint8_t i = 0; i < s->viewchange_nq; i++) {
        if (memcmp(s->viewchange_q[i].digest, d, BFTKV_DIGEST_SIZE) == 0) {
            if (v > s->viewchange_q[i].view)
                s->viewchange_q[i].view = v;
            return;
        }
    }
    uint8_t at = s->viewchange_nq;
    if (at == WIRE_VIEW_CHANGE_Q_PER_SEQ) {
        at = 0;
        for (uint8_t i = 1; i < s->viewchange_nq; i++) {
            if (s->viewchange_q[i].view < s->viewchange_q[at].view)
                at = i;
        }
        if (s->viewchange_q[at].view >= v)
            return;
    } else {
        s->viewchange_nq++;
    }
    s->viewchange_q[at].view = v;
    memcpy(s->viewchange_q[at].digest, d, BFTKV_DIGEST_SIZE);
}

/* Forget the slot's normal-case state of the view being left; keep the stored
 * PRE-PREPARE (a new primary may re-propose it), execution, pool references,
 * and the P and Q memory. */
static void slot_view_clear(struct pbft_replica *r, struct replica_slot *s)
{
    if (s->stalled) {
        BFTKV_ASSERT(r->stalled > 0);
        r->stalled--;
        s->stalled = false;
        s->unvouched = false;
    }
    s->has_digest = false;
    s->has_pp = false;
    s->prepared = false;
    s->committed = false;
    s->sent_prepare = false;
    s->sent_commit = false;
    s->prep_match = 0;
    s->commit_match = 0;
    s->prep_bits = 0;
    s->commit_bits = 0;
    s->repair_bits = 0;
    s->nv_fixed = false;
    s->nv_need = false;
    s->retx_ns = 0; /* catchup.c: nothing of the old view to retransmit */
    s->retx_shift = 0;
}

/* Leaving the active view: fold what it prepared and pre-prepared into P and Q. */
static void view_leave(struct pbft_replica *r)
{
    BFTKV_ASSERT(r->view_active);
    BFTKV_ASSERT(!r->exec_active);
    for (uint64_t seq = r->low + 1u; seq <= replica_high(r); seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL)
            continue;
        if (s->has_pp && s->has_digest)
            replica_viewchange_slot_q_add(s, s->view, s->digest);
        if (s->prepared) {
            s->viewchange_p = true;
            s->viewchange_pe.view = s->view;
            memcpy(s->viewchange_pe.digest, s->digest, BFTKV_DIGEST_SIZE);
        }
        slot_view_clear(r, s);
    }
    r->view_active = false;
    r->nv_state = REPLICA_NV_NONE;
    r->nv_len = 0;
    r->nv_max = 0;
    r->nv_work = false;
}

/* ---- Stored VIEW-CHANGEs ------------------------------------------------------------- */

static void viewchange_store(struct pbft_replica *r, struct replica_view_change_msg *x, const uint8_t *raw, size_t len)
{
    BFTKV_ASSERT(len <= r->viewchange_cap);
    if (raw != x->buf)
        memcpy(x->buf, raw, len); /* our own is encoded in place */
    x->len = (uint32_t)len;
    wire_digest(x->digest, x->buf, len);
    size_t used = 0;
    int rc = wire_decode(x->buf, len, &r->limits, &x->msg, &used, NULL);
    BFTKV_ASSERT(rc == 0);
    BFTKV_ASSERT(used == len);
    BFTKV_ASSERT(x->msg.h.type == WIRE_VIEW_CHANGE);
    x->view = x->msg.h.view;
}

/* `view` became w: each sender's VIEW-CHANGE for w moves to viewchange_cur; the others
 * at or below w go. */
static void viewchange_shift(struct pbft_replica *r, uint64_t w)
{
    for (uint16_t i = 0; i < r->cfg.n; i++) {
        struct replica_view_change_msg *c = &r->viewchange_cur[i], *x = &r->viewchange_next[i];
        if (c->view != w)
            c->len = 0;
        if (x->len != 0 && x->view == w) {
            struct replica_view_change_msg t = *c;
            *c = *x;
            *x = t;
            x->len = 0;
        } else if (x->view <= w) {
            x->len = 0;
        }
        if (c->len == 0)
            c->view = 0;
        if (x->len == 0)
            x->view = 0;
        BFTKV_ASSERT(c->len == 0 || c->view == w);
        BFTKV_ASSERT(x->len == 0 || x->view > w);
    }
}

/* Replicas that left `view - 1`: a VIEW-CHANGE for `view` or above. */
static uint16_t viewchange_count_moving(const struct pbft_replica *r)
{
    uint16_t k = 0;
    for (uint16_t i = 0; i < r->cfg.n; i++) {
        if ((r->viewchange_cur[i].len != 0 && r->viewchange_cur[i].view == r->view)
            || (r->viewchange_next[i].len != 0 && r->viewchange_next[i].view > r->view))
            k++;
    }
    BFTKV_ASSERT(k <= r->cfg.n);
    return k;
}

/* Liveness rule 1: the wait for NEW-VIEW starts once q replicas are changing
 * views -- for this view, or already for a later one: one that gave up on this
 * view before its VIEW-CHANGE for it reached us (lost) never sends it again,
 * and waiting for it would wait forever. */
static void viewchange_quorum_check(struct pbft_replica *r)
{
    if (!r->view_active && r->viewchange_deadline_ns == 0 && viewchange_count_moving(r) >= r->quorum)
        r->viewchange_deadline_ns = r->now_ns + replica_viewchange_timeout(r);
    /* A NEW-VIEW timer runs only while the view is being changed to. */
    BFTKV_ASSERT(!r->view_active || r->viewchange_deadline_ns == 0);
}

/* ---- Own VIEW-CHANGE ------------------------------------------------------------------ */

static void entry_set(struct wire_view_change_entry *e, uint64_t seq, uint64_t view, const uint8_t *d)
{
    e->seq = seq;
    e->view = view;
    memcpy(e->digest, d, BFTKV_DIGEST_SIZE);
}

/* VIEW-CHANGE(view, h, C, P, Q) from the checkpoint records and the slots'
 * memory, signed and kept in viewchange_cur[self] (TOCS 2002 §4.5.1). */
static void viewchange_own_build(struct pbft_replica *r)
{
    BFTKV_ASSERT(!r->view_active); /* only a replica that left its view signs one */
    uint64_t h = r->low, top = replica_high(r);
    struct wire_view_change_entry *cp = r->viewchange_entries;
    uint16_t ncp = 0;
    if (h == 0) {
        static const uint8_t zero[BFTKV_DIGEST_SIZE];
        entry_set(&cp[ncp++], 0, 0, zero); /* the initial state */
    }
    for (uint32_t i = 0; i < r->ckpt_count; i++) {
        const struct replica_ckpt *c = &r->ckpts[i];
        if (c->seq == 0 || !c->own_taken || c->seq < h || c->seq > top)
            continue;
        /* Insertion in seq order: at most L/K + 1 records. */
        uint16_t at = ncp++;
        while (at > 0 && cp[at - 1u].seq > c->seq) {
            cp[at] = cp[at - 1u];
            at--;
        }
        entry_set(&cp[at], c->seq, 0, c->own_digest);
    }
    struct wire_view_change_entry *p = cp + ncp, *q;
    uint16_t np = 0, nq = 0;
    bool forget = (r->cfg.bugs & PBFT_BUG_FORGET_P) != 0;
    for (uint64_t seq = h + 1u; seq <= top; seq++) {
        const struct replica_slot *s = replica_slot_find(r, seq);
        if (s != NULL && s->viewchange_p && !forget)
            entry_set(&p[np++], seq, s->viewchange_pe.view, s->viewchange_pe.digest);
    }
    q = p + np;
    for (uint64_t seq = h + 1u; seq <= top; seq++) {
        const struct replica_slot *s = replica_slot_find(r, seq);
        for (uint8_t i = 0; s != NULL && i < s->viewchange_nq; i++)
            entry_set(&q[nq++], seq, s->viewchange_q[i].view, s->viewchange_q[i].digest);
    }
    struct replica_view_change_msg *x = &r->viewchange_cur[r->cfg.id];
    size_t auth_off = 0;
    size_t len = wire_encode_view_change(x->buf, r->viewchange_cap, r->cfg.group, r->cfg.id, r->view, h, cp, ncp, p, np,
                                         q, nq, &auth_off);
    BFTKV_ASSERT(len > 0); /* viewchange_cap is the largest size */
    BFTKV_ASSERT(ncp >= 1); /* C always holds the checkpoint at h */
    auth_sign(r->auth, x->buf, len, auth_off);
    viewchange_store(r, x, x->buf, len);
    BFTKV_ASSERT(x->view == r->view);
}

static void viewchange_own_send(struct pbft_replica *r, struct pbft_out *out)
{
    const struct replica_view_change_msg *x = &r->viewchange_cur[r->cfg.id];
    BFTKV_ASSERT(x->len != 0);
    BFTKV_ASSERT(x->view == r->view);
    if (r->cfg.n == 1 || !replica_votes(r))
        return;
    r->stats.viewchange_sent++;
    /* Persist, then send: once per view (retransmissions send the same bytes). */
    if (r->cfg.durable && r->persisted_vc_view != x->view + 1u) {
        if (!replica_persist_message(r, PBFT_PERSIST_VIEW_CHANGE, x->buf, x->len, out))
            return; /* retransmitted at the next interval */
        r->persisted_vc_view = x->view + 1u;
    }
    if (!pbft_out_copy(out, PBFT_DEST_ALL_REPLICAS, 0, x->buf, x->len))
        r->stats.dropped_full++; /* retransmitted at the next interval */
}

static void viewchange_join_check(struct pbft_replica *r, struct pbft_out *out);

/* Move to view w > view: stop the normal case, sign our VIEW-CHANGE(w). */
static void viewchange_begin(struct pbft_replica *r, uint64_t w)
{
    BFTKV_ASSERT(w > r->view);
    if (r->view_active)
        view_leave(r);
    r->view = w;
    r->nv_state = REPLICA_NV_NONE;
    r->nv_len = 0;
    r->viewchange_deadline_ns = 0;
    viewchange_shift(r, w);
    viewchange_own_build(r);
    r->viewchange_resend_ns = r->now_ns; /* the next tick sends it (viewchange_start at once) */
    BFTKV_ASSERT(r->view == w);
    BFTKV_ASSERT(!r->view_active);
    BFTKV_ASSERT(r->viewchange_cur[r->cfg.id].len != 0);
}

void replica_viewchange_start(struct pbft_replica *r, uint64_t w, struct pbft_out *out)
{
    viewchange_begin(r, w);
    viewchange_own_send(r, out);
    r->viewchange_resend_ns = r->now_ns + replica_viewchange_resend_interval(r);
    viewchange_quorum_check(r);
    if (replica_primary_of(r, w) == r->cfg.id)
        replica_newview_try(r, out);
    viewchange_join_check(r, out);
}

/* Liveness rule 2: VIEW-CHANGEs for views above ours from f+1 others: move to
 * the highest view that f+1 of them reached (the smallest of the f+1 highest). */
static void viewchange_join_check(struct pbft_replica *r, struct pbft_out *out)
{
    if (!replica_votes(r))
        return; /* unsure: it enters the view the group reaches (catchup.c) */
    uint64_t views[BFTKV_REPLICAS_MAX];
    uint32_t k = 0;
    for (uint16_t i = 0; i < r->cfg.n; i++) {
        const struct replica_view_change_msg *x = &r->viewchange_next[i];
        if (i != r->cfg.id && x->len != 0 && x->view > r->view)
            views[k++] = x->view;
    }
    if (k < (uint32_t)r->cfg.f + 1u)
        return;
    for (uint32_t i = 0; i <= r->cfg.f; i++) {
        for (uint32_t j = i + 1u; j < k; j++) {
            if (views[j] > views[i]) {
                uint64_t t = views[i];
                views[i] = views[j];
                views[j] = t;
            }
        }
    }
    r->stats.viewchange_joins++;
    replica_viewchange_start(r, views[r->cfg.f], out);
}

/* ---- Entering a view ------------------------------------------------------------------ */

/* seen_ts says what is queued or ordered here: the primary does not queue a
 * request twice, a backup does not relay what a PRE-PREPARE holds. A view change
 * drops the old view's PRE-PREPAREs that were not chosen, so recompute it from
 * what was executed, what the NEW-VIEW chose (when the batch is known here),
 * and, at the primary, what it queued. */
static void seen_recompute(struct pbft_replica *r)
{
    for (uint32_t i = 0; i < r->rc_entries; i++)
        r->seen_ts[i] = r->rc[i].timestamp;
    for (uint64_t seq = r->low + 1u; seq <= r->nv_max; seq++) {
        const struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL || !s->nv_fixed || s->pp_len == 0
            || memcmp(s->pp_msg.u.batch.digest, s->nv_digest, BFTKV_DIGEST_SIZE) != 0)
            continue;
        uint32_t off = 0;
        struct wire_batch_entry e;
        while (wire_batch_next(&s->pp_msg, &off, &e)) {
            if (e.lane >= r->cfg.lanes)
                continue; /* refused when it comes (preprepare.c) */
            uint64_t *seen = &r->seen_ts[(uint32_t)e.client * r->cfg.lanes + e.lane];
            if (e.timestamp > *seen)
                *seen = e.timestamp;
        }
    }
    if (!replica_is_primary(r))
        return;
    /* The new primary's queue: what a chosen batch holds goes (not batched
     * twice); the rest counts as queued. */
    for (uint32_t k = 0; k < r->pend_count; k++) {
        struct replica_pending *p = &r->pend[(r->pend_head + k) % r->pend_cap];
        uint64_t *seen = &r->seen_ts[(uint32_t)p->client * r->cfg.lanes + p->lane];
        if (p->timestamp <= *seen)
            p->dead = true;
        else
            *seen = p->timestamp;
    }
    replica_request_pending_trim(r);
}

void replica_viewchange_activate(struct pbft_replica *r)
{
    BFTKV_ASSERT(!r->view_active);
    r->view_active = true;
    r->viewchange_deadline_ns = 0;
    r->viewchange_progress = false; /* the timeout returns to T once this view executes */
    r->view_start_ns = r->now_ns;
    replica_request_pending_trim(r);
    seen_recompute(r);
    /* The read-only path's target: nothing above the chosen batches (or what
     * executed) is prepared in this view yet. */
    uint64_t top = r->nv_max > r->last_executed ? r->nv_max : r->last_executed;
    if (r->max_prepared > top)
        r->max_prepared = top;
    BFTKV_ASSERT(r->max_prepared <= top);
}

/* Join the view change to v: the VIEW-CHANGE goes at the next tick. If v is
 * active at the others, its primary answers with the NEW-VIEW, the VIEW-CHANGEs
 * it names and its PRE-PREPAREs (replica_newview_answer), and this replica
 * enters v like any backup -- with the choice, which blind entry would lack; if
 * v is still being changed to, its VIEW-CHANGE counts there. */
bool replica_viewchange_enter(struct pbft_replica *r, uint64_t v)
{
    if (v <= r->view)
        return false;
    if (replica_primary_of(r, v) == r->cfg.id) {
        /* v's primary itself, restarted: the NEW-VIEW it sent is lost with its
         * memory and nobody else can send it. While it is parked (it proposes
         * nothing until a view change makes it primary anew, statetransfer.c)
         * it may enter v directly: peers then relay v's batches to it, its own
         * PRE-PREPAREs included (catchup.c), and the group's next request times
         * out into v + 1 with it. A primary that is not parked waits for the
         * others' view change instead. */
        if (r->next_seq != CATCHUP_NEXT_SEQ_PARKED || r->exec_active)
            return false;
        if (r->view_active)
            view_leave(r);
        r->view = v;
        r->viewchange_deadline_ns = 0;
        viewchange_shift(r, v);
        replica_viewchange_activate(r);
        return true;
    }
    viewchange_begin(r, v);
    viewchange_quorum_check(r);
    return true;
}

/* ---- Receiving VIEW-CHANGE ------------------------------------------------------------- */

/* What the format cannot check: h and C on checkpoint boundaries, every seq
 * inside this group's window above h. */
static bool viewchange_fits_config(const struct pbft_replica *r, const struct wire_msg *m)
{
    uint64_t h = m->h.seq, k = r->cfg.checkpoint_interval, top = h + r->cfg.log_window;
    if (h % k != 0)
        return false;
    struct wire_view_change_entry e;
    for (uint32_t i = 0; i < m->u.view_change.ncp; i++) {
        wire_view_change_checkpoint(m, i, &e);
        if (e.seq % k != 0 || e.seq > top)
            return false;
    }
    if (m->u.view_change.np > 0) {
        wire_view_change_prepared(m, m->u.view_change.np - 1u, &e); /* seqs increase */
        if (e.seq > top)
            return false;
    }
    if (m->u.view_change.nq > 0) {
        wire_view_change_preprepared(m, m->u.view_change.nq - 1u, &e);
        if (e.seq > top)
            return false;
    }
    return true;
}

static bool ignore_view_change(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m->h.sender == r->cfg.id) {
        /* Our own, from the primary's answer: one we signed before a restart,
         * which the pending NEW-VIEW names (it replaces the one we hold). */
        uint8_t d[BFTKV_DIGEST_SIZE];
        wire_digest(d, m->raw, m->raw_len);
        if (m->h.view != r->view || !replica_newview_names(r, r->cfg.id, d)) {
            replica_drop(r, WIRE_DROP_BAD_SENDER);
            return true;
        }
    }
    if (m->h.view < r->view) {
        r->stats.dropped_stale++;
        return true;
    }
    if (m->raw_len > r->viewchange_cap) {
        replica_drop(r, WIRE_DROP_BAD_LENGTH);
        return true;
    }
    if (!viewchange_fits_config(r, m)) {
        replica_drop(r, WIRE_DROP_BAD_FIELD);
        return true;
    }
    return false;
}

void replica_view_change_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    BFTKV_ASSERT(m->h.type == WIRE_VIEW_CHANGE);
    if (ignore_view_change(r, m))
        return;
    BFTKV_ASSERT(m->h.view >= r->view);
    BFTKV_ASSERT(m->h.sender < r->cfg.n);
    uint16_t from = m->h.sender;
    bool current = m->h.view == r->view;
    if (current && r->view_active) {
        /* The sender is still moving to the view we are in (it missed the
         * NEW-VIEW, or restarted): whoever holds the NEW-VIEW answers -- the
         * primary, or a backup that accepted it, since the primary may be the
         * one that restarted -- at most once per retransmission interval.
         * Nothing to store: the view's set is fixed. */
        if (r->nv_state == REPLICA_NV_DONE && r->nv_len > 0 && r->now_ns >= r->viewchange_answer_ns[from]) {
            if (!replica_msg_authentic(r, m))
                return;
            replica_newview_answer(r, from, out);
        }
        return;
    }
    struct replica_view_change_msg *x = current ? &r->viewchange_cur[from] : &r->viewchange_next[from];
    bool dup = x->len == m->raw_len && x->view == m->h.view && memcmp(x->buf, m->raw, m->raw_len) == 0;
    if (!dup) {
        if (x->len != 0 && x->view > m->h.view) {
            r->stats.dropped_stale++; /* we keep its highest */
            return;
        }
        if (x->len != 0 && x->view == m->h.view) {
            /* A second, different VIEW-CHANGE for one view: the sender is
             * faulty. Keep the first, unless the pending NEW-VIEW names this
             * one (the primary got it, and forwards it to us). */
            uint8_t d[BFTKV_DIGEST_SIZE];
            wire_digest(d, m->raw, m->raw_len);
            if (!current || !replica_newview_names(r, from, d)) {
                r->stats.dropped_conflict++;
                return;
            }
        }
        if (!replica_msg_authentic(r, m))
            return;
        viewchange_store(r, x, m->raw, m->raw_len);
        BFTKV_ASSERT(x->view == m->h.view);
    }
    if (!current) {
        if (!dup) {
            viewchange_quorum_check(r);
            viewchange_join_check(r, out);
        }
        replica_viewchange_rejoin_check(r, from, out); /* retransmissions too: a deferred step-down */
        return;
    }
    if (dup)
        return;
    viewchange_quorum_check(r);
    if (replica_primary_of(r, r->view) == r->cfg.id)
        replica_newview_try(r, out);
    else
        replica_newview_retry(r, out);
}

/* ---- Tick -------------------------------------------------------------------------------- */

void replica_viewchange_tick(struct pbft_replica *r, struct pbft_out *out)
{
    if (r->view == UINT64_MAX)
        return; /* no view after it (2^64 view changes: not reached) */
    if (!replica_votes(r))
        return; /* it follows the group's NEW-VIEWs and STATUS, starts nothing */
    if (r->view_active) {
        replica_viewchange_watch_trim(r);
        if (replica_catchup_behind(r))
            r->behind_ns = r->now_ns; /* catching up is our business, not the primary's */
        if (r->now_ns >= replica_viewchange_watch_deadline(r)) {
            r->stats.request_timeouts++;
            if (!r->viewchange_progress)
                replica_viewchange_timeout_double(r); /* the last view change got nowhere */
            replica_viewchange_start(r, r->view + 1u, out);
            return;
        }
        if (r->nv_state == REPLICA_NV_DONE && r->nv_cursor <= r->nv_max && r->now_ns >= r->viewchange_resend_ns) {
            /* The new primary still waits for a batch or its large requests. */
            r->nv_work = true;
            r->viewchange_resend_ns = r->now_ns + replica_viewchange_resend_interval(r);
        }
        return;
    }
    if (r->viewchange_deadline_ns != 0 && r->now_ns >= r->viewchange_deadline_ns) {
        /* No valid NEW-VIEW in time: the next view, waiting twice as long. */
        r->stats.viewchange_timeouts++;
        replica_viewchange_timeout_double(r);
        replica_viewchange_start(r, r->view + 1u, out);
        return;
    }
    if (r->now_ns >= r->viewchange_resend_ns) {
        viewchange_own_send(r, out);
        r->viewchange_resend_ns = r->now_ns + replica_viewchange_resend_interval(r);
    }
}

uint64_t replica_viewchange_deadline(const struct pbft_replica *r)
{
    if (r->view_active) {
        uint64_t d = replica_viewchange_watch_deadline(r);
        if (r->nv_state == REPLICA_NV_DONE && r->nv_cursor <= r->nv_max && replica_is_primary(r)
            && r->viewchange_resend_ns < d)
            d = r->viewchange_resend_ns;
        return d;
    }
    uint64_t d = r->viewchange_resend_ns;
    if (r->viewchange_deadline_ns != 0 && r->viewchange_deadline_ns < d)
        d = r->viewchange_deadline_ns;
    return d;
}

bool replica_viewchange_progress(struct pbft_replica *r, struct pbft_out *out)
{
    if (r->last_executed != r->watch_exec) {
        r->watch_exec = r->last_executed;
        r->nv_work = r->nv_work || r->nv_cursor <= r->nv_max; /* the pool window moved */
        if (!r->viewchange_progress && r->view_active) {
            r->viewchange_progress = true; /* the view works: halve, down to T */
            replica_viewchange_timeout_halve(r);
        }
        replica_viewchange_watch_trim(r);
        if (!replica_is_primary(r) || !r->view_active)
            replica_request_pending_trim(r); /* a backup's kept requests */
    }
    return replica_newview_progress(r, out);
}
