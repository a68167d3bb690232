/* Retransmission and STATUS: liveness when messages are lost (TOCS 2002 §5.2,
 * §5.3.1; docs/design.md §5.6).
 *
 * PBFT's normal case assumes the network eventually delivers; over UDP it drops.
 * Two mechanisms recover, both driven by the tick (time comes in the event):
 *
 *  - Retransmission. Every R/4 the replica looks at the log slots above
 *    last_executed that are not committed-local and re-multicasts what it
 *    contributed there: the primary its PRE-PREPARE, a backup its PREPARE,
 *    everyone its COMMIT. A slot waits R/2 after it is first seen, is sent again
 *    every R/2 twice, then backs off exponentially (R, 2R, ... 16R), and at most
 *    W slots go per scan, so a long stall does not flood the network (docs/
 *    design.md §5.5.2 measures the intervals under loss). Duplicates are
 *    harmless: each sender's first vote per (v, n) is the one kept (prepare.c,
 *    commit.c) -- and a duplicate for a slot this replica committed is answered
 *    with its own votes (replica_catchup_repair_answer), since it retransmits no more.
 *
 *  - STATUS. A replica that knows of work above last_executed (a seq some message
 *    named, a checkpoint, a peer's STATUS) and has executed nothing for R/2
 *    multicasts STATUS(v, h, last_executed, max seq seen), authenticated; a
 *    lagging one (catchup_lagging: missing more than the normal case has in
 *    flight) asks every R/2 even while answers make it progress; and every
 *    replica sends one every 10 R anyway (a heartbeat: a replica that missed
 *    the last batches before the group went idle learns it is behind, a
 *    restarted one announces that it is at 0). A peer that is ahead answers
 *    point-to-point, at most once per R/4 per asker, with its own STATUS and:
 *    if the asker's next seq is still in its log, the logged PRE-PREPAREs (the
 *    primary's authenticator has a MAC for every replica, so anyone may relay
 *    them) and its own PREPAREs and COMMITs from that seq on, up to
 *    CATCHUP_RELAY_BYTES_MAX, with which the asker completes the normal
 *    protocol; if the asker is below its stable checkpoint, the checkpoint's
 *    proof (the q signed CHECKPOINTs), from which the asker starts state
 *    transfer (statetransfer.c). This is TOCS 2002 §5.2's status message,
 *    simplified: the paper's bit maps of what the asker holds are replaced by
 *    "everything from last_executed + 1", which costs a little bandwidth and no
 *    state. (Answers of W seqs each, one per R without progress, caught a
 *    replica up at a few hundred batches a second: behind a busy group it fell
 *    past the group's next stable checkpoint and fetched state over and over,
 *    docs/design.md 5.6.)
 *
 * STATUS also carries the sender's view. A replica that sees f+1 distinct
 * replicas report the same view v above its own -- one of them correct -- joins
 * v: this is how a replica restarted empty (view 0) finds the group's view.
 * Otherwise a view mismatch is left to the view change (viewchange.c).
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"
#include "engine/viewchange.h"

/* ---- Sending ----------------------------------------------------------------- */

static size_t vote_bound(const struct pbft_replica *r)
{
    return WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + (size_t)r->cfg.n * BFTKV_MAC_SIZE;
}

/* PREPARE or COMMIT(v, n, D, i) to one replica or to all. */
static bool vote_send(struct pbft_replica *r, uint8_t type, struct replica_slot *s, uint8_t dest_kind,
                      uint16_t to, struct pbft_out *out)
{
    if (!pbft_out_room(out, vote_bound(r), 1))
        return false;
    /* Recorded when first sent, unless the outbox was full then (pbft.h). */
    if (!replica_persist_preprepare(r, s, out) || (type == WIRE_COMMIT && !replica_persist_prepared(r, s, out)))
        return false;
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_digest_msg(dst, cap, type, r->cfg.group, r->cfg.id, r->cfg.n, s->view, s->seq,
                                        s->digest, &auth_off);
    BFTKV_ASSERT(len > 0);
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    pbft_out_commit(out, dest_kind, to, len);
    return true;
}

/* STATUS to every replica (a heartbeat, a request for help) or to one (with an
 * answer: the asker learns how far we are, replica_catchup_behind). */
static void status_send_to(struct pbft_replica *r, uint8_t dest_kind, uint16_t to, struct pbft_out *out)
{
    if (r->cfg.n == 1)
        return;
    size_t bound = WIRE_HEADER_SIZE + WIRE_STATUS_BODY + (size_t)r->cfg.n * BFTKV_MAC_SIZE;
    if (!pbft_out_room(out, bound, 1)) {
        r->stats.dropped_full++;
        return;
    }
    uint64_t max_seq = r->cu.max_seen > r->last_executed ? r->cu.max_seen : r->last_executed;
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_status(dst, cap, r->cfg.group, r->cfg.id, r->cfg.n, r->view, r->last_executed, r->low,
                                    max_seq, r->unsure ? WIRE_STATUS_NO_STATE : 0u, &auth_off);
    BFTKV_ASSERT(len > 0);
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    pbft_out_commit(out, dest_kind, to, len);
    r->stats.status_sent++;
}

void replica_catchup_status_send(struct pbft_replica *r, struct pbft_out *out)
{
    status_send_to(r, PBFT_DEST_ALL_REPLICAS, 0, out);
}

/* ---- Retransmission (the tick) ------------------------------------------------- */

/* Does the slot carry anything we contributed that a peer may still need? */
static bool slot_has_own(const struct pbft_replica *r, const struct replica_slot *s)
{
    bool own_pp = s->has_pp && replica_is_primary(r) && s->pp_len > 0;
    return own_pp || s->sent_prepare || s->sent_commit;
}

/* Re-multicast one slot's messages; false when the outbox had no room. */
static bool slot_retransmit(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    if (s->has_pp && replica_is_primary(r) && s->pp_len > 0) {
        if (!replica_persist_preprepare(r, s, out) || !pbft_out_copy(out, PBFT_DEST_ALL_REPLICAS, 0, s->pp, s->pp_len))
            return false;
        /* Backups may all have refused a large request this batch names (they
         * saw the requests in another order): relay it with the PRE-PREPARE. */
        if (!replica_request_pool_relay_slot(r, s, out))
            return false;
    }
    if (s->sent_prepare && !vote_send(r, WIRE_PREPARE, s, PBFT_DEST_ALL_REPLICAS, 0, out))
        return false;
    if (s->sent_commit && !vote_send(r, WIRE_COMMIT, s, PBFT_DEST_ALL_REPLICAS, 0, out))
        return false;
    return true;
}

/* A peer sent again a PREPARE or COMMIT we already hold, for a slot we
 * committed: it is retransmitting, so it has not committed and may lack our
 * votes -- which we, committed, no longer retransmit. Answer it alone, at once,
 * with our PREPARE and COMMIT for the slot. Without this a replica that lost one
 * correct peer's COMMIT, in a group with a faulty member whose votes do not
 * match, waited for ever: the others had committed and fallen silent, and STATUS
 * answers come only from replicas that executed further than the asker. Once
 * per peer and slot (two committed replicas never echo each other), and at most
 * W answers per peer per R/2, so a faulty peer's duplicates buy it no more. */
void replica_catchup_repair_answer(struct pbft_replica *r, struct replica_slot *s, uint16_t to, struct pbft_out *out)
{
    BFTKV_ASSERT(to < r->cfg.n);
    BFTKV_ASSERT(to != r->cfg.id);
    BFTKV_ASSERT(s->seq > r->low);
    uint64_t bit = 1ull << to;
    if (!s->committed || (s->repair_bits & bit) || s->view != r->view || !r->view_active
        || !(s->sent_prepare || s->sent_commit))
        return;
    struct replica_catchup *cu = &r->cu;
    if (r->now_ns >= cu->repair_ns[to]) {
        cu->repair_ns[to] = r->now_ns + r->cfg.retransmit_ns / 2u;
        cu->repair_left[to] = r->cfg.window;
    }
    if (cu->repair_left[to] == 0)
        return;
    /* Committed in this view: prepared, so our votes exist (TOCS 2002 §4.2). */
    BFTKV_ASSERT(s->prepared);
    BFTKV_ASSERT(s->has_digest);
    cu->repair_left[to]--;
    s->repair_bits |= bit;
    r->stats.repairs_sent++;
    if (s->sent_prepare && !vote_send(r, WIRE_PREPARE, s, PBFT_DEST_REPLICA, to, out))
        r->stats.dropped_full++;
    if (s->sent_commit && !vote_send(r, WIRE_COMMIT, s, PBFT_DEST_REPLICA, to, out))
        r->stats.dropped_full++;
}

/* Walk (last_executed, min(h + L, max seen)] and re-multicast our part of the
 * unfinished slots whose time has come. No slot lies above max seen
 * (replica_slot_get raises it for every seq it hands out; it never falls), so
 * the walk covers the seqs in use, not the whole window: a node hosting many
 * partitions scans each one's few slots every R/4, not L of them. */
static void retransmit_scan(struct pbft_replica *r, struct pbft_out *out)
{
    uint64_t iv = r->cfg.retransmit_ns / 2u; /* a slot's interval: R/2, scanned every R/4 */
    uint32_t budget = r->view_active ? r->cfg.window : 0; /* none during a view change */
    uint64_t hi = r->cu.max_seen < replica_high(r) ? r->cu.max_seen : replica_high(r);
    for (uint64_t seq = r->last_executed + 1u; seq <= hi; seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL)
            continue;
        if (s->committed || s->view != r->view || r->cfg.n == 1 || !slot_has_own(r, s))
            continue;
        if (s->retx_ns == 0) {
            s->retx_ns = r->now_ns + iv; /* first seen: give the normal case one interval */
            continue;
        }
        if (r->now_ns < s->retx_ns || budget == 0)
            continue;
        BFTKV_ASSERT(s->seq == seq);
        BFTKV_ASSERT(r->view_active); /* the budget is 0 otherwise */
        BFTKV_ASSERT(replica_votes(r) || !(s->sent_prepare || s->sent_commit));
        if (!slot_retransmit(r, s, out))
            return; /* no room: the next scan goes on */
        budget--;
        r->stats.retransmissions++;
        /* R/2 for the first CATCHUP_FLAT_RETRIES (a loss costs one interval,
         * not a growing one), then doubling up to 16 R. */
        if (s->retx_shift < CATCHUP_BACKOFF_SHIFT_MAX + CATCHUP_FLAT_RETRIES)
            s->retx_shift++;
        uint8_t shift = s->retx_shift > CATCHUP_FLAT_RETRIES ? (uint8_t)(s->retx_shift - CATCHUP_FLAT_RETRIES) : 0u;
        s->retx_ns = r->now_ns + (iv << shift);
    }
}

/* Checkpoints above last_executed that peers have signed name work too. */
static void ckpts_scan(struct pbft_replica *r)
{
    for (uint32_t i = 0; i < r->ckpt_count; i++) {
        const struct replica_ckpt *c = &r->ckpts[i];
        if (c->seq > r->cu.max_seen && (c->bits & ~(1ull << r->cfg.id)) != 0)
            r->cu.max_seen = c->seq;
    }
}

/* Catch-up has work while something above last_executed is known: a slot
 * (max_seen follows every slot the log creates, replica_slot_get), a proven
 * checkpoint, a transfer. Otherwise only the slow heartbeat asks for a tick. */
static bool catchup_busy(const struct pbft_replica *r)
{
    return r->xfer.active || r->xfer.cand.seq > r->last_executed || r->cu.max_seen > r->last_executed;
}

/* Has a correct replica executed beyond our last executed seq? Either q
 * replicas signed a checkpoint above it (a proven candidate, or a transfer under
 * way), or f+1 peers in our view said so in their latest STATUS: one of them is
 * correct. f faulty replicas can fake neither. The view change asks this before
 * suspecting the primary (viewchange.c): a replica that is behind a group that
 * works has no reason to, it has catching up to do. A peer whose VIEW-CHANGE
 * for a later view we hold has left our view since its STATUS, so it does not
 * count: else a backup one batch behind the primary, with the only other
 * correct replica gone to a view change, counted that one as ahead in our view
 * for good, never suspected the primary of a view that could not commit
 * (fewer than q active in it), and the group stayed without a working view
 * past the rejoin bound (deployment seed 1248, tests/sim/README.md). */
bool replica_catchup_behind(const struct pbft_replica *r)
{
    if (r->xfer.active || r->xfer.cand.seq > r->last_executed)
        return true;
    uint32_t ahead = 0;
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        if (j != r->cfg.id && r->cu.peer_view_known[j] && r->cu.peer_view[j] == r->view
            && r->cu.peer_le[j] > r->last_executed
            && !(r->viewchange_next[j].len != 0 && r->viewchange_next[j].view > r->view))
            ahead++;
    }
    return ahead >= (uint32_t)r->cfg.f + 1u;
}

/* Lagging: missing more than the normal case has in flight -- a seq above
 * last_executed + 2W is known (a primary proposes at most W past what it
 * executed), or we are provably behind -- and no transfer is under way. Such a
 * replica asks again every R/2 while answers make it progress, instead of
 * waiting R without progress each time: at one answer per R, a replica a few
 * hundred small batches behind a busy group never caught up and fell behind the
 * group's next stable checkpoint, to fetch the state again and again. */
static bool catchup_lagging(const struct pbft_replica *r)
{
    if (r->xfer.active)
        return false;
    return r->cu.max_seen > r->last_executed + 2u * (uint64_t)r->cfg.window || replica_catchup_behind(r);
}

void replica_catchup_tick(struct pbft_replica *r, struct pbft_out *out)
{
    struct replica_catchup *cu = &r->cu;
    uint64_t R = r->cfg.retransmit_ns, now = r->now_ns;
    if (r->unsure)
        replica_catchup_sure_check(r, out); /* it may have executed up to a vouching peer's h */
    if (r->last_executed != cu->progress_le) {
        cu->progress_le = r->last_executed;
        cu->progress_ns = now;
    }
    if (now >= cu->scan_ns && catchup_busy(r)) {
        cu->scan_ns = now + R / 4u + 1u;
        retransmit_scan(r, out);
        ckpts_scan(r);
        bool behind = cu->max_seen > r->last_executed || r->xfer.cand.seq > r->last_executed || r->xfer.active;
        bool idle = now - cu->progress_ns >= R / 2u;
        bool lag = catchup_lagging(r);
        if (behind && (idle || lag) && now >= cu->status_ns) {
            replica_catchup_status_send(r, out);
            cu->status_ns = now + (lag ? R / 2u : R);
            cu->heartbeat_ns = now + CATCHUP_HEARTBEAT_INTERVALS * R;
        }
    }
    if (now >= cu->heartbeat_ns) {
        replica_catchup_status_send(r, out);
        cu->heartbeat_ns = now + CATCHUP_HEARTBEAT_INTERVALS * R;
    }
    replica_statetransfer_tick(r, out);
}

uint64_t replica_catchup_deadline(const struct pbft_replica *r)
{
    uint64_t d = r->cu.heartbeat_ns;
    if (catchup_busy(r) && r->cu.scan_ns < d)
        d = r->cu.scan_ns;
    if (r->xfer.active && r->xfer.deadline_ns < d)
        d = r->xfer.deadline_ns;
    if (r->xfer.active && r->xfer.give_up_ns < d)
        d = r->xfer.give_up_ns;
    return d;
}

/* ---- Joining the view f+1 peers report ----------------------------------------- */

/* Tell peer j our view with a STATUS, at most once per R/4: it is in an older
 * one (docs/design.md §5.5.1: a replica left behind in an old view -- an old
 * primary cut off while the others changed views -- hears nothing else from a
 * group in the new view until the next heartbeat). */
static void view_tell(struct pbft_replica *r, uint16_t j, struct pbft_out *out)
{
    if (!r->view_active || r->unsure || r->now_ns < r->cu.view_hint_ns[j])
        return;
    r->cu.view_hint_ns[j] = r->now_ns + r->cfg.retransmit_ns / 4u;
    status_send_to(r, PBFT_DEST_REPLICA, j, out);
}

void replica_catchup_view_mismatch(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    BFTKV_ASSERT(m->h.view != r->view);
    uint16_t j = m->h.sender;
    if (j >= r->cfg.n || j == r->cfg.id)
        return;
    if (m->h.view < r->view) {
        view_tell(r, j, out);
    } else if (m->h.view > r->view && r->now_ns >= r->cu.ask_view_ns) {
        /* Peers work in a view above ours: ask everyone where they are (their
         * STATUS answers bring f+1 views, view_adopt_check). */
        r->cu.ask_view_ns = r->now_ns + r->cfg.retransmit_ns / 4u;
        replica_catchup_status_send(r, out);
    }
}

/* f+1 distinct replicas said (in authenticated STATUS) that they are in view v >
 * ours: at least one correct replica is, so v is the group's view or below it. */
static void view_adopt_check(struct pbft_replica *r)
{
    uint64_t best = r->view;
    for (uint16_t i = 0; i < r->cfg.n; i++) {
        if (!r->cu.peer_view_known[i] || r->cu.peer_view[i] <= best)
            continue;
        uint32_t same = 0;
        for (uint16_t j = 0; j < r->cfg.n; j++)
            same += r->cu.peer_view_known[j] && r->cu.peer_view[j] == r->cu.peer_view[i];
        if (same >= (uint32_t)r->cfg.f + 1u)
            best = r->cu.peer_view[i];
    }
    /* The view change's entry for a replica without the NEW-VIEW (viewchange.c):
     * it refuses when this replica would be v's primary and is not parked --
     * then the others time out and this one joins the next view with them. */
    BFTKV_ASSERT(best >= r->view);
    if (best > r->view && replica_viewchange_enter(r, best))
        r->stats.views_adopted++;
}

/* ---- Restarted with empty memory: unsure until vouched for ----------------------- *
 *
 * A replica restarted without its memory cannot tell a group that never wrote
 * anything from one whose state it lost: if it voted, q such replicas would
 * agree on an empty store and serve it. So it takes no part in ordering
 * (replica_votes) and answers every request with BFTKV_E_NO_STATE, until q
 * peers that hold state report a stable checkpoint at or below its own last
 * executed seq: it then holds a state certified by q replicas (genesis, when
 * their h is 0; else a checkpoint it installed by state transfer on q signed
 * CHECKPOINTs), and q replicas that never forgot anything are in the group, so
 * every batch committed before the restart is prepared at f+1 correct ones of
 * them and survives any view change (TOCS 2002 §4.5's argument, with this
 * replica counted among the f faulty while it catches up). With f+1 .. q-1
 * replicas holding state that argument fails -- a view change could then drop
 * a batch that only forgetful replicas and one correct holder prepared, which
 * the simulator found (tests/sim/README.md) -- so the group stops, and every
 * client that asks hears why (docs/design.md "Restarts"). */
void replica_catchup_sure_check(struct pbft_replica *r, struct pbft_out *out)
{
    BFTKV_ASSERT(r->unsure);
    uint32_t vouch = 0;
    bool early = (r->cfg.bugs & PBFT_BUG_RESTART_VOUCH_EARLY) != 0; /* injected bug, tests only */
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        if (j != r->cfg.id && r->cu.peer_holds[j] && r->cu.peer_view_known[j] &&
            (r->cu.peer_low[j] <= r->last_executed || early))
            vouch++;
    }
    uint32_t need = (r->cfg.bugs & PBFT_BUG_RESTART_VOUCH_F1) != 0 ? r->cfg.f + 1u : r->quorum; /* bug: tests only */
    if (vouch < need)
        return;
    BFTKV_ASSERT(vouch < r->cfg.n); /* peers only: q of the n - 1 others */
    r->unsure = false;
    r->persist_holds_pending = r->cfg.durable; /* before the votes it now casts (persist.c) */
    r->stats.holds_state = 1;
    replica_prepare_votes_resume(r, out);
}

/* ---- Receiving STATUS ---------------------------------------------------------- */

static bool ignore_status(struct pbft_replica *r, const struct wire_msg *m)
{
    return !replica_msg_from_peer(r, m);
}

/* The large requests a PRE-PREPARE names by digest, those still in our pool:
 * a replica that lost one stalls on the batch (preprepare.c), and the client,
 * answered by others, does not send it again. The client's authenticator
 * travels with it, so the asker checks it as if it came from the client. */
static bool pool_relay(struct pbft_replica *r, const struct replica_slot *s, uint16_t to, struct pbft_out *out)
{
    uint32_t off = 0;
    const uint8_t *d;
    while (replica_slot_digest_next(s, &off, &d)) {
        uint32_t idx = replica_request_pool_find(r, d);
        if (idx == UINT32_MAX)
            continue;
        if (!pbft_out_copy(out, PBFT_DEST_REPLICA, to, replica_request_pool_bytes(r, idx), r->pool[idx].len))
            return false;
    }
    return true;
}

/* The asker's next seqs are still in our log: relay the PRE-PREPAREs we hold
 * (and the large requests they name, when we still have them) and our own
 * votes, from its next seq on, up to CATCHUP_RELAY_BYTES_MAX (one seq at
 * least) and not beyond the asker's window. */
static void log_relay(struct pbft_replica *r, uint16_t to, uint64_t from_seq, uint64_t asker_low,
                      struct pbft_out *out)
{
    BFTKV_ASSERT(to < r->cfg.n);
    BFTKV_ASSERT(to != r->cfg.id);
    BFTKV_ASSERT(from_seq > r->low); /* still in our log */
    BFTKV_ASSERT(r->view_active);
    uint64_t last = r->last_executed;
    if (last > asker_low + r->cfg.log_window)
        last = asker_low + r->cfg.log_window;
    size_t start = out->used;
    for (uint64_t seq = from_seq; seq <= last && out->used - start < CATCHUP_RELAY_BYTES_MAX; seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL || !s->has_pp || s->view != r->view || s->pp_len == 0)
            continue;
        if (!pool_relay(r, s, to, out) || !replica_persist_preprepare(r, s, out)
            || !pbft_out_copy(out, PBFT_DEST_REPLICA, to, s->pp, s->pp_len))
            return;
        if (s->sent_prepare && !vote_send(r, WIRE_PREPARE, s, PBFT_DEST_REPLICA, to, out))
            return;
        if (s->sent_commit && !vote_send(r, WIRE_COMMIT, s, PBFT_DEST_REPLICA, to, out))
            return;
    }
}

void replica_status_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_status(r, m))
        return;
    uint16_t j = m->h.sender;
    BFTKV_ASSERT(j < r->cfg.n); /* wire_decode: a replica's message */
    BFTKV_ASSERT(j != r->cfg.id);
    uint64_t j_le = m->h.seq, j_low = m->u.status.low;
    r->cu.peer_view[j] = m->h.view;
    r->cu.peer_view_known[j] = true;
    r->cu.peer_le[j] = j_le;
    r->cu.peer_low[j] = j_low;
    r->cu.peer_holds[j] = (m->u.status.flags & WIRE_STATUS_NO_STATE) == 0;
    if (r->unsure)
        replica_catchup_sure_check(r, out);
    if (!r->cu.peer_holds[j] && !r->unsure && r->now_ns >= r->cu.unsure_answer_ns[j]) {
        /* A peer restarted empty waits for q replicas holding state to say
         * so: answer at once rather than at the next heartbeat. It sends no
         * VIEW-CHANGE (replica_votes), so if it is moving to our view, the
         * NEW-VIEW goes to it from here (replica_newview_answer). */
        r->cu.unsure_answer_ns[j] = r->now_ns + r->cfg.retransmit_ns / 2u;
        replica_catchup_status_send(r, out);
        if (m->h.view == r->view && r->view_active)
            replica_newview_answer(r, j, out);
    }
    if (m->h.view > r->view)
        view_adopt_check(r);
    else if (m->h.view < r->view)
        view_tell(r, j, out);
    bool same_view = m->h.view == r->view && r->view_active;
    if (same_view && j_le > r->cu.max_seen)
        r->cu.max_seen = j_le;
    if (j_le >= r->last_executed || r->now_ns < r->cu.answer_ns[j])
        return;
    if (j_le < r->low) {
        /* We discarded the log it needs: it must fetch the state of h. A
         * checkpoint belongs to no view, so this goes whatever the views. */
        r->cu.answer_ns[j] = r->now_ns + r->cfg.retransmit_ns / 4u;
        r->stats.status_answered++;
        replica_statetransfer_proof_send(r, j, out);
        if (same_view)
            status_send_to(r, PBFT_DEST_REPLICA, j, out); /* how far we are */
        return;
    }
    if (!same_view)
        return; /* views differ: the view change's business */
    BFTKV_ASSERT(j_le >= r->low);
    BFTKV_ASSERT(j_le < r->last_executed);
    r->cu.answer_ns[j] = r->now_ns + r->cfg.retransmit_ns / 4u;
    r->stats.status_answered++;
    status_send_to(r, PBFT_DEST_REPLICA, j, out);
    log_relay(r, j, j_le + 1u, j_low, out);
}
