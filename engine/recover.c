/* Recovery of a durable replica from its records (engine/pbft.h, "Recovery";
 * docs/design.md §9; the records: engine/persist.c).
 *
 * The records are replayed in the order they were made durable, and each is the
 * trace of something the replica did, so the replay walks the same path:
 *
 *   PREPREPARE   the batch goes into its slot, and (view, digest) into the slot's
 *                Q memory: the replica pre-prepared it in that view
 *   REQUEST      a large request goes into the pool, where the batch that names it
 *                finds it at execution
 *   PREPARED     (view, digest) into the slot's P memory (the latest view wins)
 *   COMMITTED    the batch executes again, in sequence order, exactly as it did:
 *                the store, the reply cache and each checkpoint's digest come out
 *                the same (execution is deterministic, docs/design.md §5.2)
 *   CHECKPOINT   the proof makes the checkpoint stable (its signatures are checked
 *                like any CHECKPOINT's) and the window moves, as it did
 *   VIEW_CHANGE,
 *   NEW_VIEW     the views it took part in; a NEW-VIEW's checkpoint becomes stable
 *                as it did when the NEW-VIEW was accepted
 *
 * P and Q are rebuilt from the records themselves, not from the VIEW-CHANGEs
 * recorded, so they hold everything prepared or pre-prepared above the stable
 * checkpoint in any view -- what TOCS 2002 §4.5.1 asks a VIEW-CHANGE to report.
 * Whatever the replica voted for was recorded before the vote left (the
 * Ordering contract), so nothing it said is missing; something it pre-prepared
 * or prepared without saying so may be missing, which no quorum relied on.
 *
 * pbft_replica_recover_done then moves the replica to the view after the highest
 * it took part in, with a VIEW-CHANGE from that memory: it never resumes a view
 * in which it may have voted (its votes there are not rebuilt one by one), and
 * proposes nothing as a primary until a NEW-VIEW makes it one (its next_seq is
 * parked, as a restarted replica's is, engine/catchup.c).
 *
 * A state it cannot rebuild -- a stable checkpoint above what it can execute (a
 * state it fetched by state transfer and has no snapshot of), a batch whose large
 * request is gone -- ends the replay of data there: it rejoins unsure, like a
 * replica restarted with empty memory (engine/catchup.c) but holding the state of
 * its last executed batch, and it votes again only once q replicas holding
 * state vouch for it. Anything contradictory is BFTKV_E_CORRUPT.
 */
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"
#include "engine/viewchange.h"
#include "engine/wire_le.h"

#define PREPARED_LEN (16u + BFTKV_DIGEST_SIZE)
#define COMMITTED_LEN (8u + BFTKV_DIGEST_SIZE)
#define CHECKPOINT_HEAD 16u

static void view_seen(struct pbft_replica *r, uint64_t v)
{
    if (v > r->recovery.highest_view)
        r->recovery.highest_view = v;
}

/* The data stops here: the rest of the records still give the views. */
static void gap(struct pbft_replica *r, uint64_t seq)
{
    if (!r->recovery_gap)
        r->recovery.gap_seq = seq;
    r->recovery_gap = true;
}

static bool decode_one(struct pbft_replica *r, const uint8_t *p, size_t len, uint8_t type, struct wire_msg *m)
{
    size_t used = 0;
    return wire_decode(p, len, &r->limits, m, &used, NULL) == 0 && used == len && m->h.type == type;
}

/* A seq the replay keeps a slot for: inside the window. Above it, only after a
 * gap (the window moved with a state this replay does not have). */
static int slot_of(struct pbft_replica *r, uint64_t seq, struct replica_slot **s)
{
    *s = NULL;
    if (seq <= r->low)
        return 0; /* below the stable checkpoint: done with */
    if (!replica_in_window(r, seq))
        return r->recovery_gap ? 0 : BFTKV_E_CORRUPT;
    *s = replica_slot_get(r, seq);
    return 0;
}

/* ---- Execution ------------------------------------------------------------------- */

/* Take the pool references of a batch about to execute; false when a large
 * request it names is not in the pool. */
static bool refs_take(struct pbft_replica *r, struct replica_slot *s)
{
    uint32_t off = 0;
    const uint8_t *d;
    while (replica_slot_digest_next(s, &off, &d)) {
        if (replica_request_pool_find(r, d) == UINT32_MAX)
            return false;
    }
    off = 0;
    while (replica_slot_digest_next(s, &off, &d))
        replica_request_pool_ref(r, replica_request_pool_find(r, d));
    s->pool_refs = true;
    return true;
}

/* Execute the batches COMMITTED records named, in order, as far as they go. */
static void execute(struct pbft_replica *r, struct pbft_out *scratch)
{
    for (;;) {
        struct replica_slot *s = replica_slot_find(r, r->last_executed + 1u);
        if (s == NULL || !s->recover_commit || r->recovery_gap)
            return;
        if (!refs_take(r, s)) {
            gap(r, s->seq);
            return;
        }
        s->recover_commit = false;
        s->prepared = true; /* committed-local implies prepared, in the slot's view */
        s->committed = true;
        while (!replica_exec_run(r, scratch))
            pbft_out_reset(scratch); /* nothing of it is sent */
        pbft_out_reset(scratch);
        BFTKV_ASSERT(s->executed);
        /* Executed: what is left of it is the batch (s->pp, s->digest), as after
         * a view change (viewchange.c, slot_view_clear); no view's votes. */
        s->has_pp = false;
        s->has_digest = false;
        s->prepared = false;
        s->committed = false;
        r->recovery.executed++;
    }
}

/* ---- The records ------------------------------------------------------------------ */

static int rec_preprepare(struct pbft_replica *r, const uint8_t *p, size_t len)
{
    struct wire_msg m;
    if (len > r->pp_cap || !decode_one(r, p, len, WIRE_PREPREPARE, &m))
        return BFTKV_E_CORRUPT;
    view_seen(r, m.h.view);
    struct replica_slot *s;
    int rc = slot_of(r, m.h.seq, &s);
    if (rc != 0 || s == NULL)
        return rc;
    const uint8_t *d = m.u.batch.digest;
    replica_viewchange_slot_q_add(s, m.h.view, d);
    s->persisted_pp_view = m.h.view + 1u;
    if (s->executed) {
        if (memcmp(s->digest, d, BFTKV_DIGEST_SIZE) != 0)
            return BFTKV_E_CORRUPT; /* a view re-proposed another batch than the one executed */
        return 0;
    }
    if (s->pp_len == 0 || memcmp(s->pp_msg.u.batch.digest, d, BFTKV_DIGEST_SIZE) != 0) {
        memcpy(s->pp, p, len);
        s->pp_len = (uint32_t)len;
        wire_preprepare_view(&s->pp_msg, s->pp, len);
        s->recover_commit = false;
    }
    memcpy(s->digest, d, BFTKV_DIGEST_SIZE);
    s->view = m.h.view;
    s->count = m.u.batch.count;
    s->has_digest = true;
    s->has_pp = true;
    return 0;
}

static int rec_request(struct pbft_replica *r, const uint8_t *p, size_t len)
{
    struct wire_msg m;
    if (!decode_one(r, p, len, WIRE_REQUEST, &m) || len < REPLICA_LARGE_REQUEST_MIN)
        return BFTKV_E_CORRUPT;
    if (!r->recovery_gap && replica_request_pool_restore(r, &m) == UINT32_MAX)
        gap(r, r->last_executed + 1u); /* no room: the batch that names it cannot run */
    return 0;
}

static int rec_prepared(struct pbft_replica *r, const uint8_t *p, size_t len)
{
    if (len != PREPARED_LEN)
        return BFTKV_E_CORRUPT;
    uint64_t v = le64_load(p), seq = le64_load(p + 8);
    view_seen(r, v);
    struct replica_slot *s;
    int rc = slot_of(r, seq, &s);
    if (rc != 0 || s == NULL || (r->cfg.bugs & PBFT_BUG_RECOVER_FORGET_P))
        return rc; /* the bug: injected, tests only */
    if (!s->viewchange_p || v >= s->viewchange_pe.view) {
        s->viewchange_p = true;
        s->viewchange_pe.view = v;
        memcpy(s->viewchange_pe.digest, p + 16, BFTKV_DIGEST_SIZE);
    }
    s->persisted_prepared_view = v + 1u;
    return 0;
}

static int rec_committed(struct pbft_replica *r, const uint8_t *p, size_t len, struct pbft_out *scratch)
{
    if (len != COMMITTED_LEN)
        return BFTKV_E_CORRUPT;
    uint64_t seq = le64_load(p);
    if (r->recovery_gap || seq <= r->low)
        return 0;
    struct replica_slot *s = replica_slot_find(r, seq);
    /* Its PRE-PREPARE record comes first (replica_persist_committed). */
    if (s == NULL || s->pp_len == 0 || s->executed || memcmp(s->pp_msg.u.batch.digest, p + 8, BFTKV_DIGEST_SIZE) != 0)
        return BFTKV_E_CORRUPT;
    s->recover_commit = true;
    execute(r, scratch);
    return 0;
}

/* The window moves to a stable checkpoint seq whose state the replay computed. */
static int stable_check(struct pbft_replica *r, uint64_t seq)
{
    if (r->low != seq)
        return BFTKV_E_CORRUPT; /* the proof does not match the state executed here */
    r->recovery.checkpoints++;
    return 0;
}

static int rec_checkpoint(struct pbft_replica *r, const uint8_t *p, size_t len, struct pbft_out *scratch)
{
    uint64_t seq = pbft_persist_checkpoint_seq(r->cfg.n, p, len);
    if (seq == 0 || seq % r->cfg.checkpoint_interval != 0)
        return BFTKV_E_CORRUPT;
    uint64_t bits = le64_load(p + 8);
    if (r->recovery_gap || seq <= r->low)
        return 0;
    if (seq > r->last_executed) {
        gap(r, seq); /* installed by state transfer: that state is not in the records */
        return 0;
    }
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        if ((bits & (1ull << j)) == 0 || j == r->cfg.id)
            continue;
        struct wire_msg m;
        const uint8_t *one = p + CHECKPOINT_HEAD + (size_t)j * r->ckpt_msg_len;
        if (!decode_one(r, one, r->ckpt_msg_len, WIRE_CHECKPOINT, &m) || m.h.sender != j || m.h.seq != seq)
            return BFTKV_E_CORRUPT;
        replica_checkpoint_receive(r, &m, scratch); /* checks the signature */
    }
    pbft_out_reset(scratch);
    return stable_check(r, seq);
}

static int rec_view_change(struct pbft_replica *r, const uint8_t *p, size_t len)
{
    struct wire_msg m;
    if (!decode_one(r, p, len, WIRE_VIEW_CHANGE, &m) || m.h.sender != r->cfg.id)
        return BFTKV_E_CORRUPT;
    view_seen(r, m.h.view);
    return 0;
}

/* A NEW-VIEW it accepted or sent: its view, and its checkpoint, which became
 * stable here then if this replica had executed it (newview.c). */
static int rec_new_view(struct pbft_replica *r, const uint8_t *p, size_t len)
{
    struct wire_msg m;
    if (!decode_one(r, p, len, WIRE_NEW_VIEW, &m))
        return BFTKV_E_CORRUPT;
    view_seen(r, m.h.view);
    uint64_t h = m.h.seq;
    if (r->recovery_gap || h <= r->low || h > r->last_executed)
        return 0; /* beyond execution: a state transfer followed, or never finished */
    struct replica_ckpt *c = &r->ckpts[(h / r->cfg.checkpoint_interval) % r->ckpt_count];
    if (c->seq != h || !c->own_taken || memcmp(c->own_digest, m.u.nv.ckpt_digest, BFTKV_DIGEST_SIZE) != 0)
        return BFTKV_E_CORRUPT;
    replica_checkpoint_stable_by_view(r, c);
    return stable_check(r, h);
}

int pbft_replica_recover_record(struct pbft_replica *r, uint16_t kind, const uint8_t *rec, size_t len,
                                struct pbft_out *scratch)
{
    BFTKV_ASSERT(r->cfg.durable);
    BFTKV_ASSERT(!r->cfg.restarted);
    BFTKV_ASSERT(!r->recovery_done);
    BFTKV_ASSERT(!r->recovery_snapshot); /* _snapshot_end first */
    r->recovery.records++;
    pbft_out_reset(scratch);
    int rc;
    switch (kind) {
    case PBFT_PERSIST_PREPREPARE:
        rc = rec_preprepare(r, rec, len);
        break;
    case PBFT_PERSIST_REQUEST:
        rc = rec_request(r, rec, len);
        break;
    case PBFT_PERSIST_PREPARED:
        rc = rec_prepared(r, rec, len);
        break;
    case PBFT_PERSIST_COMMITTED:
        rc = rec_committed(r, rec, len, scratch);
        break;
    case PBFT_PERSIST_CHECKPOINT:
        rc = rec_checkpoint(r, rec, len, scratch);
        break;
    case PBFT_PERSIST_VIEW_CHANGE:
        rc = rec_view_change(r, rec, len);
        break;
    case PBFT_PERSIST_NEW_VIEW:
        rc = rec_new_view(r, rec, len);
        break;
    case PBFT_PERSIST_HOLDS_STATE:
        rc = len == 1 && rec[0] <= 1 ? 0 : BFTKV_E_CORRUPT;
        if (rc == 0)
            r->recovery_unsure = rec[0] == 0;
        break;
    default:
        rc = BFTKV_E_CORRUPT;
    }
    pbft_out_reset(scratch);
    return rc;
}

/* ---- A snapshot file ---------------------------------------------------------------- */

uint64_t pbft_persist_checkpoint_seq(uint16_t n, const uint8_t *rec, size_t len)
{
    if (n == 0 || len != CHECKPOINT_HEAD + (size_t)n * WIRE_CHECKPOINT_MSG_SIZE)
        return 0;
    return le64_load(rec);
}

/* The proof of a CHECKPOINT record: q senders whose signed CHECKPOINT names its
 * seq and one digest. Their messages go into proof (n slots), their bits into
 * *bits, the digest into d. */
static int proof_check(struct pbft_replica *r, const uint8_t *rec, size_t len, uint64_t *seq,
                       uint8_t d[BFTKV_DIGEST_SIZE], uint64_t *bits, uint8_t *proof)
{
    if (pbft_persist_checkpoint_seq(r->cfg.n, rec, len) == 0)
        return BFTKV_E_CORRUPT;
    *seq = le64_load(rec);
    uint64_t listed = le64_load(rec + 8);
    if (*seq % r->cfg.checkpoint_interval != 0)
        return BFTKV_E_CORRUPT;
    *bits = 0;
    bool have_digest = false;
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        if ((listed & (1ull << j)) == 0)
            continue;
        const uint8_t *one = rec + CHECKPOINT_HEAD + (size_t)j * r->ckpt_msg_len;
        struct wire_msg m;
        if (!decode_one(r, one, r->ckpt_msg_len, WIRE_CHECKPOINT, &m) || m.h.sender != j || m.h.seq != *seq)
            return BFTKV_E_CORRUPT;
        if (!have_digest) {
            memcpy(d, m.u.batch.digest, BFTKV_DIGEST_SIZE);
            have_digest = true;
        }
        /* A faulty sender's CHECKPOINT for another digest may sit in the record;
         * the proof is the q that match the first valid one's (or none). */
        if (memcmp(d, m.u.batch.digest, BFTKV_DIGEST_SIZE) != 0 || !auth_signature_check(r->auth, &m))
            continue;
        memcpy(proof + (size_t)j * r->ckpt_msg_len, one, r->ckpt_msg_len);
        *bits |= 1ull << j;
    }
    return (uint32_t)__builtin_popcountll(*bits) >= r->quorum ? 0 : BFTKV_E_CORRUPT;
}

int pbft_replica_recover_snapshot(struct pbft_replica *r, const uint8_t *checkpoint_record, size_t len)
{
    BFTKV_ASSERT(r->cfg.durable);
    BFTKV_ASSERT(!r->recovery_done);
    /* Before any record; a snapshot that failed half-way may be started over. */
    BFTKV_ASSERT(r->recovery.records == 0 && r->recovery.snapshot_seq == 0);
    uint64_t seq, bits;
    uint8_t d[BFTKV_DIGEST_SIZE];
    size_t proof_len = (size_t)r->cfg.n * WIRE_CHECKPOINT_MSG_SIZE;
    uint8_t *proof = r->xfer.cand.proof; /* scratch of the right size; no candidate yet */
    BFTKV_ASSERT(r->xfer.cand.seq == 0);
    memset(proof, 0, proof_len);
    int rc = proof_check(r, checkpoint_record, len, &seq, d, &bits, proof);
    if (rc == 0 && seq == 0)
        rc = BFTKV_E_CORRUPT;
    if (rc != 0)
        return rc;
    replica_statetransfer_restore_begin(r, seq, d, bits, proof);
    memset(proof, 0, proof_len);
    r->recovery_snapshot = true;
    return 0;
}

int pbft_replica_recover_snapshot_chunk(struct pbft_replica *r, const struct wire_state *st)
{
    BFTKV_ASSERT(r->recovery_snapshot);
    return replica_statetransfer_restore_chunk(r, st);
}

int pbft_replica_recover_snapshot_end(struct pbft_replica *r)
{
    BFTKV_ASSERT(r->recovery_snapshot);
    r->recovery_snapshot = false;
    uint64_t seq = r->xfer.target.seq;
    int rc = replica_statetransfer_restore_end(r);
    if (rc != 0)
        return rc;
    r->recovery.snapshot_seq = seq;
    r->recovery.checkpoints++;
    return 0;
}

/* ---- Rejoining ------------------------------------------------------------------------ */

void pbft_replica_recover_done(struct pbft_replica *r, uint64_t now_ns, struct pbft_out *out)
{
    BFTKV_ASSERT(r->cfg.durable);
    BFTKV_ASSERT(!r->recovery_done);
    BFTKV_ASSERT(!r->exec_active);
    r->recovery_done = true;
    if (now_ns > r->now_ns)
        r->now_ns = now_ns;
    if (r->recovery_unsure && !r->recovery_gap) {
        /* Its records begin after a restart with empty memory and no one vouched
         * for it since: what it voted before is in none of them. */
        gap(r, r->last_executed + 1u);
        r->recovery.unsure_restart = 1;
    }
    /* What the replay left in the slots beyond execution is memory (P, Q and the
     * batches a new primary may re-propose), not votes of a view to resume. */
    uint64_t count = 0;
    for (uint64_t seq = r->low + 1u; seq <= replica_high(r); seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL)
            continue;
        s->recover_commit = false;
        count += s->viewchange_p && !r->recovery_gap;
        if (r->recovery_gap) {
            /* Unsure in view 0: no batch or memory of a later view binds it
             * (it sends no VIEW-CHANGE until vouched for, and then reports
             * what it prepares from there, like a replica restarted empty). */
            s->viewchange_p = false;
            s->viewchange_nq = 0;
            if (!s->executed) {
                s->has_pp = false;
                s->has_digest = false;
            }
        }
    }
    r->recovery.prepared = count;
    r->next_seq = CATCHUP_NEXT_SEQ_PARKED;
    r->cu.heartbeat_ns = 0; /* announce itself at the first tick */
    r->stats.last_executed = r->last_executed;
    r->stats.low_watermark = r->low;
    if (r->recovery_gap) {
        /* Unsure, as after a restart with empty memory (catchup.c), with the
         * state it has: view 0, joining the view f+1 peers report. */
        r->unsure = true;
        r->stats.holds_state = 0;
        return;
    }
    r->view = r->recovery.highest_view;
    replica_viewchange_start(r, r->view + 1u, out);
}

const struct pbft_recovery_stats *pbft_replica_recovery_stats(const struct pbft_replica *r)
{
    return &r->recovery;
}
