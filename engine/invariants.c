/* The whole-replica invariant check (docs/design.md §5.9): the relations between
 * the replica's fields that every handler keeps, checked between steps instead of
 * trusted. Each rule reads; none repairs. A violation names the first rule
 * broken and the sequence number it concerns; the simulator reports it as a
 * safety failure with the replica and the step (tests/sim/cluster.c).
 *
 * What is checked, in the order of the calls below:
 *   watermarks  h on a checkpoint boundary, h <= last executed <= h + L, nothing
 *               executed or prepared beyond the highest seq seen (TOCS 2002 §4.3)
 *   log slots   for the seqs of the window seen so far: committed => prepared =>
 *               pre-prepared => digest known, digests of this view only, the
 *               counts of matching votes equal to what the vote bits hold (above
 *               last executed; bounded by them below), the certificates' quorums
 *               (TOCS 2002 §4.2), nothing executed out of order, the stalled count
 *   checkpoints records inside [h, h + L] in their ring place; only h stable; our
 *               own taken only for what we executed
 *   view change an active view entered by a NEW-VIEW (or the first view, or a
 *               parked restarted primary's direct entry); one being moved to has
 *               our own VIEW-CHANGE for it (TOCS 2002 §4.4); unsure <=> the
 *               holds_state counter says 0
 *   queues      the pending, read-only and watch rings within their capacity
 *   pool        every chunk free or in a live request; unpinned chunks, the
 *               unpinned lists and the references' charges equal to the sums over
 *               the live entries, the log slots and the pending queue; the held
 *               requests in seq order within (h, last executed], at most B
 *               chunks per batch there
 *
 * The cost is O(window seen + pool descriptors used + the entries of the batches that
 * hold pool references) per call: docs/design.md §5.9 gives what it adds to a
 * simulator run.
 */

#include "common/assert.h"
#include "engine/invariants.h"
#include "engine/replica_internal.h"

#define NO_ENTRY UINT32_MAX

struct inv {
    const char *what;
    uint64_t seq;
};

/* Record the first violation; false so callers can `return fail(...)`. */
static bool fail(struct inv *v, const char *what, uint64_t seq)
{
    v->what = what;
    v->seq = seq;
    return false;
}

static bool watermarks_ok(const struct pbft_replica *r, struct inv *v)
{
    if (r->low % r->cfg.checkpoint_interval != 0)
        return fail(v, "low watermark h is not a multiple of the checkpoint interval K", r->low);
    if (r->low > r->last_executed)
        return fail(v, "low watermark h above last executed", r->low);
    if (r->last_executed > replica_high(r))
        return fail(v, "last executed above h + L", r->last_executed);
    if (r->last_executed > r->cu.max_seen)
        return fail(v, "last executed above the highest seq seen", r->last_executed);
    if (r->max_prepared > r->cu.max_seen)
        return fail(v, "max prepared above the highest seq seen", r->max_prepared);
    return true;
}

/* PREPAREs or COMMITs in bits whose digest counts for D (prepare.c's recount). */
static uint16_t votes_matching(const struct pbft_replica *r, uint64_t bits, uint8_t (*digests)[BFTKV_DIGEST_SIZE],
                               const uint8_t *d)
{
    uint16_t match = 0;
    for (; bits != 0; bits &= bits - 1u) {
        unsigned j = (unsigned)__builtin_ctzll(bits);
        if (replica_prepare_digest_counts(r, digests[j], d))
            match++;
    }
    return match;
}

/* Set bits, without a loop or a popcount instruction (SWAR: sums of 2, 4, 8
 * bits, then of the eight bytes). */
static uint32_t bits_count(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (uint32_t)((x * 0x0101010101010101ull) >> 56);
}

/* The certificate rules of one slot in the window (TOCS 2002 §4.2). The counts
 * are recounted against the vote digests only above last executed, where they
 * still decide something; below, they are bounded by the vote bits. */
static bool slot_certificates_ok(const struct pbft_replica *r, const struct replica_slot *s, struct inv *v)
{
    if (s->committed && !s->prepared)
        return fail(v, "slot committed but not prepared", s->seq);
    if (s->prepared && !s->has_pp)
        return fail(v, "slot prepared without an accepted PRE-PREPARE", s->seq);
    if (s->has_pp && !s->has_digest)
        return fail(v, "slot pre-prepared without a digest", s->seq);
    if (s->stalled && (s->has_pp || !s->has_digest))
        return fail(v, "stalled slot not waiting with a digest", s->seq);
    if (s->unvouched && (!s->stalled || s->sent_prepare))
        return fail(v, "unvouched slot not stalled, or voted for", s->seq);
    if (s->sent_commit && !s->prepared)
        return fail(v, "COMMIT sent for a slot not prepared", s->seq);
    if (s->has_digest && s->view != r->view)
        return fail(v, "slot's digest is of another view", s->seq);
    if (!s->has_digest && (s->prep_match != 0 || s->commit_match != 0))
        return fail(v, "votes counted for a slot without a digest", s->seq);
    if (s->seq > r->last_executed) {
        if (s->has_digest && s->prep_match != votes_matching(r, s->prep_bits, s->prep_digest, s->digest))
            return fail(v, "prep_match differs from the matching PREPARE bits", s->seq);
        if (s->has_digest && s->commit_match != votes_matching(r, s->commit_bits, s->commit_digest, s->digest))
            return fail(v, "commit_match differs from the matching COMMIT bits", s->seq);
    } else {
        if (s->prep_match > bits_count(s->prep_bits))
            return fail(v, "prep_match above the PREPARE bits", s->seq);
        if (s->commit_match > bits_count(s->commit_bits))
            return fail(v, "commit_match above the COMMIT bits", s->seq);
    }
    /* prepared: the PRE-PREPARE and q - 1 PREPAREs; committed-local: q COMMITs
     * (the injected quorum bugs lower exactly this). */
    if (s->prepared && s->prep_match + 1u < r->quorum)
        return fail(v, "slot prepared with fewer than q - 1 matching PREPAREs", s->seq);
    uint32_t need = r->quorum;
    if (r->cfg.bugs & PBFT_BUG_COMMIT_QUORUM_2F)
        need = r->quorum - 1u;
    if (r->cfg.bugs & PBFT_BUG_EXECUTE_UNCOMMITTED)
        need = 0;
    if (s->committed && s->commit_match < need)
        return fail(v, "slot committed with fewer than q matching COMMITs", s->seq);
    return true;
}

/* Chunks charged to the pool references one log slot holds: each DIGEST entry
 * of a stored, unexecuted batch with pool_refs, and of the batch being executed
 * only the entries not yet executed (exec.c releases each as it goes). */
static bool slot_ref_chunks(const struct pbft_replica *r, const struct replica_slot *s, uint64_t *sum, struct inv *v)
{
    if (!s->pool_refs || s->executed || s->pp_len == 0 || r->pool_chunks_free == r->pool_chunks)
        return true; /* an empty pool: pool_empty_ok wants no charge at all */
    uint32_t off = 0;
    if (r->exec_active && s->seq == r->last_executed + 1u)
        off = r->exec_off;
    const uint8_t *d;
    while (replica_slot_digest_next(s, &off, &d)) {
        uint32_t idx = replica_request_pool_find(r, d);
        if (idx == NO_ENTRY)
            return fail(v, "slot references a request the pool lacks", s->seq);
        *sum += replica_request_pool_entry_chunks(r, idx);
    }
    return true;
}

/* One pass over the slots that can hold a seq: those of (h, min(h + L, max
 * seen)] -- replica_slot_get raises max seen for every seq it hands out, so the
 * slots above hold older seqs, unused. *ref_chunks receives what their pool
 * references are charged. */
static bool slots_ok(const struct pbft_replica *r, uint64_t *ref_chunks, struct inv *v)
{
    uint32_t l = r->cfg.log_window, stalled = 0;
    uint64_t sender_mask = r->cfg.n < 64u ? (1ull << r->cfg.n) - 1u : UINT64_MAX;
    uint64_t top = r->cu.max_seen < replica_high(r) ? r->cu.max_seen : replica_high(r);
    uint32_t i = (uint32_t)((r->low + 1u) % l);
    *ref_chunks = 0;
    for (uint64_t seq = r->low + 1u; seq <= top; seq++, i = i + 1u == l ? 0 : i + 1u) {
        const struct replica_slot *s = &r->slots[i];
        if (s->seq > seq)
            return fail(v, "slot holds a seq above its place in the window", s->seq);
        if (s->seq != seq)
            continue; /* unused since an older seq, or never */
        if (s->stalled)
            stalled++;
        if (((s->prep_bits | s->commit_bits | s->repair_bits) & ~sender_mask) != 0)
            return fail(v, "slot holds a vote of a sender beyond n", s->seq);
        if (s->pp_len > r->pp_cap)
            return fail(v, "slot's PRE-PREPARE longer than its buffer", s->seq);
        if (s->executed && s->seq > r->last_executed)
            return fail(v, "slot executed above last executed", s->seq);
        if (s->stalled && s->seq <= r->last_executed)
            return fail(v, "stalled slot at or below last executed", s->seq);
        if (!slot_certificates_ok(r, s, v) || !slot_ref_chunks(r, s, ref_chunks, v))
            return false;
    }
    if (stalled != r->stalled)
        return fail(v, "stalled count differs from the stalled slots in the window", 0);
    if (r->exec_active) {
        const struct replica_slot *s = &r->slots[(r->last_executed + 1u) % l];
        if (s->seq != r->last_executed + 1u || !s->committed || s->executed)
            return fail(v, "executing a batch that is not the next committed one", r->last_executed + 1u);
    }
    return true;
}

/* Chunks charged to the pending queue's references (its DIGEST entries). */
static uint64_t pending_ref_chunks(const struct pbft_replica *r, struct inv *v)
{
    uint64_t sum = 0;
    for (uint32_t k = 0; k < r->pend_count; k++) {
        const struct replica_pending *p = &r->pend[(r->pend_head + k) % r->pend_cap];
        if (p->kind != WIRE_ENTRY_DIGEST)
            continue;
        if (p->pool >= r->pool_cap || !r->pool[p->pool].live) {
            fail(v, "pending request names a pool entry that is not live", 0);
            return 0;
        }
        sum += replica_pool_chunks_of(r->pool[p->pool].len);
    }
    return sum;
}

/* Entries on an unpinned list (oldest to newest), at most pool_cap steps. The
 * done and held flags are checked here only: they say which list an
 * unreferenced entry is on, and a re-pinned entry keeps its old values until
 * its last release recomputes them (request_pool.c reads them on the lists only).
 * The held list is in held_seq order, every one above h and at most the last
 * executed seq (or the executing one's); *chunks receives the list's chunks. */
static uint32_t list_length(const struct pbft_replica *r, uint32_t first, bool done, bool held, uint64_t *chunks)
{
    uint32_t len = 0;
    uint64_t prev_seq = 0, executed = r->last_executed + (r->exec_active ? 1u : 0u); /* a batch executing counts */
    *chunks = 0;
    for (uint32_t i = first; i != NO_ENTRY && len <= r->pool_cap; i = r->pool[i].next) {
        const struct replica_request_pool_entry *e = &r->pool[i];
        if (i >= r->pool_cap || !e->live || e->refs != 0 || e->done != done || e->held != held)
            return UINT32_MAX;
        if (held && (e->held_seq < prev_seq || e->held_seq <= r->low || e->held_seq > executed))
            return UINT32_MAX;
        prev_seq = e->held_seq;
        *chunks += replica_pool_chunks_of(e->len);
        len++;
    }
    return len;
}

/* An empty pool: nothing charged, nothing listed. */
static bool pool_empty_ok(const struct pbft_replica *r, uint64_t slot_chunks, struct inv *v)
{
    if (r->pool_chunks_unpinned != 0 || r->pool_slot_chunks != 0 || r->pool_pend_chunks != 0 || slot_chunks != 0)
        return fail(v, "empty pool with chunks charged", 0);
    if (r->pool_old != NO_ENTRY || r->pool_done_old != NO_ENTRY || r->pool_held_old != NO_ENTRY
        || r->pool_chunks_held != 0 || r->pool_index_used != 0)
        return fail(v, "empty pool with entries listed", 0);
    return true;
}

/* The live entries are among the descriptors ever used (below pool_fresh): each
 * is reached through the hash index by its digest, and the index holds as many
 * cells as there are live entries, so no cell names anything else. (The index
 * has two cells per descriptor, 2 * L*B/3 and more: walking it on every call
 * made the simulator 40% slower once the pool was sized for the log.) An entry
 * known live gives its chunks by replica_pool_chunks_of directly, without the
 * out-of-line replica_request_pool_entry_chunks (the check runs every step). */
static bool pool_ok(const struct pbft_replica *r, uint64_t slot_chunks, struct inv *v)
{
    if (r->pool_fresh > r->pool_cap || r->pool_chunk_fresh > r->pool_chunks)
        return fail(v, "pool: more descriptors or chunks used than allocated", 0);
    if (r->pool_chunks_free == r->pool_chunks)
        return pool_empty_ok(r, slot_chunks, v);
    uint64_t used = 0, unpinned = 0, charged = 0;
    uint32_t on_lists = 0, live = 0;
    for (uint32_t i = 0; i < r->pool_fresh; i++) {
        const struct replica_request_pool_entry *e = &r->pool[i];
        if (!e->live)
            continue;
        if (replica_request_pool_find(r, e->digest) != i)
            return fail(v, "pool entry not reached through the index", 0);
        live++;
        uint32_t c = replica_pool_chunks_of(e->len);
        used += c;
        charged += (uint64_t)e->refs * c;
        if (e->refs == 0) {
            unpinned += c;
            on_lists++;
        }
        if (e->keep)
            return fail(v, "pool entry kept outside an eviction", 0);
    }
    if (live != r->pool_index_used)
        return fail(v, "pool index cells differ from the live entries", 0);
    if (used + r->pool_chunks_free != r->pool_chunks)
        return fail(v, "pool chunks: free + in live requests != total", 0);
    if (unpinned != r->pool_chunks_unpinned)
        return fail(v, "pool chunks of unpinned requests differ from their count", 0);
    if (charged != (uint64_t)r->pool_slot_chunks + r->pool_pend_chunks)
        return fail(v, "pool references' chunks differ from the slot and queue charges", 0);
    uint64_t c_listed = 0, c_done = 0, c_held = 0;
    uint32_t listed = list_length(r, r->pool_old, false, false, &c_listed);
    uint32_t done = list_length(r, r->pool_done_old, true, false, &c_done);
    uint32_t held = list_length(r, r->pool_held_old, true, true, &c_held);
    if (listed == UINT32_MAX || done == UINT32_MAX || held == UINT32_MAX || listed + done + held != on_lists)
        return fail(v, "unpinned lists differ from the unreferenced live entries", 0);
    if (c_held != r->pool_chunks_held)
        return fail(v, "pool chunks of held requests differ from their count", 0);
    /* Held: named by a batch in (h, last executed] (or the one executing), at
     * most B chunks each. */
    if (c_held > (r->last_executed + (r->exec_active ? 1u : 0u) - r->low) * r->pool_batch_chunks)
        return fail(v, "pool holds more than B chunks per batch above h", 0);
    uint64_t pend = pending_ref_chunks(r, v);
    if (v->what != NULL)
        return false;
    if (pend != r->pool_pend_chunks)
        return fail(v, "pending queue's pool chunks differ from its charge", 0);
    if (slot_chunks != r->pool_slot_chunks)
        return fail(v, "log slots' pool chunks differ from their charge", 0);
    return true;
}

static bool checkpoints_ok(const struct pbft_replica *r, struct inv *v)
{
    uint32_t k = r->cfg.checkpoint_interval;
    for (uint32_t i = 0; i < r->ckpt_count; i++) {
        const struct replica_ckpt *c = &r->ckpts[i];
        if (c->seq == 0)
            continue;
        if (c->seq % k != 0 || (c->seq / k) % r->ckpt_count != i)
            return fail(v, "checkpoint record not at its ring place", c->seq);
        if (c->seq < r->low || c->seq > replica_high(r))
            return fail(v, "checkpoint record outside [h, h + L]", c->seq);
        if (c->stable && c->seq != r->low)
            return fail(v, "stable checkpoint record other than h", c->seq);
        if (c->own_taken && c->seq > r->last_executed)
            return fail(v, "own checkpoint taken above last executed", c->seq);
        /* Our own CHECKPOINT is recorded only with our digest (an unsure
         * replica takes its checkpoint but signs none: checkpoint.c). */
        if ((c->bits & (1ull << r->cfg.id)) != 0 && !c->own_taken)
            return fail(v, "own CHECKPOINT recorded without our checkpoint", c->seq);
    }
    return true;
}

static bool viewchange_ok(const struct pbft_replica *r, struct inv *v)
{
    if (r->nv_state > REPLICA_NV_DONE)
        return fail(v, "NEW-VIEW state out of range", 0);
    bool parked = r->next_seq == CATCHUP_NEXT_SEQ_PARKED;
    if (r->view_active && r->nv_state != REPLICA_NV_DONE && r->view != 0 && !parked)
        return fail(v, "view active without its NEW-VIEW", 0);
    if (!r->view_active && r->nv_state == REPLICA_NV_DONE)
        return fail(v, "NEW-VIEW done but the view is not active", 0);
    const struct replica_view_change_msg *own = &r->viewchange_cur[r->cfg.id];
    if (!r->view_active && (own->len == 0 || own->view != r->view))
        return fail(v, "moving to a view without our own VIEW-CHANGE for it", 0);
    if (!r->view_active && r->exec_active)
        return fail(v, "executing while between views", 0);
    if (r->unsure && r->stats.holds_state != 0)
        return fail(v, "unsure replica says it holds state", 0);
    if (!r->unsure && r->stats.holds_state != 1)
        return fail(v, "sure replica says it holds no state", 0);
    return true;
}

static bool queues_ok(const struct pbft_replica *r, struct inv *v)
{
    if (r->pend_count > r->pend_cap || (r->pend_cap > 0 && r->pend_head >= r->pend_cap))
        return fail(v, "pending queue beyond its capacity", 0);
    if (r->ro_count > r->ro_cap || r->ro_head >= r->ro_cap)
        return fail(v, "read-only queue beyond its capacity", 0);
    if (r->watch_count > r->watch_cap || (r->watch_cap > 0 && r->watch_head >= r->watch_cap))
        return fail(v, "watch queue beyond its capacity", 0);
    return true;
}

const char *replica_invariants_check(const struct pbft_replica *r, uint64_t *seq)
{
    struct inv v = {NULL, 0};
    uint64_t slot_chunks = 0;
    bool ok = watermarks_ok(r, &v) && slots_ok(r, &slot_chunks, &v) && checkpoints_ok(r, &v)
              && viewchange_ok(r, &v) && queues_ok(r, &v) && pool_ok(r, slot_chunks, &v);
    BFTKV_ASSERT(ok == (v.what == NULL));
    if (seq != NULL)
        *seq = v.seq;
    return v.what;
}

void replica_invariants_assert(const struct pbft_replica *r)
{
    uint64_t seq = 0;
    const char *what = replica_invariants_check(r, &seq);
    if (what != NULL)
        bftkv_assert_fail(what, __FILE__, __LINE__, __func__);
}
