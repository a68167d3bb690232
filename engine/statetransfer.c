/* State transfer, the fetching side (TOCS 2002 §5.3, §6.2; docs/design.md §5.6).
 * statetransfer_serve.c keeps the checkpoint
 * snapshots and answers FETCH; this file also creates and destroys the
 * catch-up state of both.
 *
 * Fetching. A replica learns that a checkpoint (n, d) above its last executed
 * seq is stable from q signed CHECKPOINTs -- collected one by one in its
 * checkpoint records, or as the proof a peer sends in answer to its STATUS
 * (catchup.c) -- or from a NEW-VIEW that chose it (replica_statetransfer_start).
 * With a proof of a checkpoint beyond its window, or after one retransmit
 * interval without progress, it fetches the state of n: chunk by chunk from one
 * server (the replica that sent the proof first, then round robin over the
 * others), each chunk restored into a staging store made like the live one and
 * a staging reply cache. Positions are the server's (its snapshot's shard
 * layout), so changing server starts over. One transfer is in flight; a FETCH
 * asks for CATCHUP_CHUNKS_PER_FETCH chunks at once; a chunk that does not come
 * within 2R is asked for again, then from the next server; a server gets a
 * budget for the whole transfer (100 R, doubled after each server that fails
 * to finish in it), so one that trickles cannot hold the replica forever.
 *
 * When the last chunk is in, the staging state's digest is computed exactly as
 * checkpoint.c computes a checkpoint's -- BLAKE2b(store digest || reply-cache
 * digest) -- and compared with d, which q replicas signed: a server that lied
 * anywhere is caught here (TOCS 2002 §5.3.2), the staging state is discarded,
 * and the next server is asked. On a match the state is installed: the stores
 * swap contents (store_swap, O(shards)), the reply caches swap, last_executed =
 * h = n, the log at and below n is dropped, and the checkpoint becomes stable
 * with its proof (replica_checkpoint_adopt). Seqs after n then arrive by the
 * normal protocol, helped by retransmission and STATUS (catchup.c).
 *
 * Differences from the paper: TOCS 2002 §6.2 fetches a tree of partitions and
 * only the out-of-date ones, checking each by its digest; here the LtHash digest
 * is one sum, so the whole state is fetched and checked once at the end (cheap
 * for a checkpoint interval's worth of lag, the common case, and simple). The
 * PBFT_BUG_SKIP_SNAPSHOT_DIGEST test switch installs without the check.
 */
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"

_Static_assert(WIRE_CHECKPOINT_MSG_SIZE == WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + WIRE_SIG_SIZE,
               "ckpt_msg_len");

static size_t rc_bytes(const struct pbft_replica *r)
{
    return (size_t)r->rc_entries * sizeof(struct replica_rc_entry);
}

/* ---- Creation ------------------------------------------------------------------ */

bool replica_statetransfer_create(struct pbft_replica *r)
{
    if (r->cfg.retransmit_ns == 0)
        r->cfg.retransmit_ns = CATCHUP_RETRANSMIT_DEFAULT_NS;
    /* The first heartbeat: at once for a restarted replica (it announces that it
     * is at 0, and its peers answer with their stable checkpoint's proof), after
     * one heartbeat interval otherwise. */
    r->cu.heartbeat_ns = r->cfg.restarted ? 0 : CATCHUP_HEARTBEAT_INTERVALS * r->cfg.retransmit_ns;
    r->unsure = r->cfg.restarted && (r->cfg.bugs & PBFT_BUG_RESTART_SURE) == 0;
    r->persist_holds_pending = r->cfg.durable && r->unsure; /* recorded before anything else (persist.c) */
    r->stats.holds_state = r->unsure ? 0u : 1u;
    if (r->cfg.restarted) {
        /* Before the crash it may have assigned seqs in its view as primary; the
         * same seqs with other batches would be equivocation. It proposes nothing
         * until a view change makes it primary and sets next_seq anew. */
        r->next_seq = CATCHUP_NEXT_SEQ_PARKED;
    }
    BFTKV_ASSERT(r->ckpt_msg_len == WIRE_CHECKPOINT_MSG_SIZE);
    /* Snapshots: one per checkpoint of [h', h+L] with h' the previous stable
     * checkpoint (L/K + 2; when h jumps further the oldest goes early), each
     * with a reply-cache copy of clients * lanes entries (~112 bytes each: 4,096
     * clients with one lane and the default L/K + 2 = 4 make 1.8 MB). Two proofs of n signed
     * CHECKPOINTs (n * 128 bytes each), a staging reply cache, and a staging
     * store, empty except during a transfer (then as large as the state). */
    struct replica_catchup *cu = &r->cu;
    cu->nsnaps = r->ckpt_count + 1u;
    cu->snaps = calloc(cu->nsnaps, sizeof *cu->snaps);
    if (cu->snaps == NULL)
        return false;
    for (uint32_t i = 0; i < cu->nsnaps; i++) {
        cu->snaps[i].rc = calloc(r->rc_entries, sizeof *cu->snaps[i].rc);
        if (cu->snaps[i].rc == NULL)
            return false;
    }
    struct replica_xfer *x = &r->xfer;
    x->target.proof = calloc(r->cfg.n, WIRE_CHECKPOINT_MSG_SIZE);
    x->cand.proof = calloc(r->cfg.n, WIRE_CHECKPOINT_MSG_SIZE);
    x->rc = calloc(r->rc_entries, sizeof *x->rc);
    if (x->target.proof == NULL || x->cand.proof == NULL || x->rc == NULL)
        return false;
    return store_create_like(r->store, &x->staging) == 0;
}

void replica_statetransfer_destroy(struct pbft_replica *r)
{
    struct replica_catchup *cu = &r->cu;
    for (uint32_t i = 0; cu->snaps != NULL && i < cu->nsnaps; i++) {
        store_snapshot_release(cu->snaps[i].snap);
        free(cu->snaps[i].rc);
    }
    free(cu->snaps);
    free(r->xfer.target.proof);
    free(r->xfer.cand.proof);
    free(r->xfer.rc);
    store_destroy(r->xfer.staging);
}

/* ---- Fetching: the transfer's life ------------------------------------------------ */

static uint16_t server_next(const struct pbft_replica *r, uint16_t s)
{
    do {
        s = (uint16_t)((s + 1u) % r->cfg.n);
    } while (s == r->cfg.id);
    return s;
}

static void target_copy(const struct pbft_replica *r, struct replica_target *dst, const struct replica_target *src)
{
    dst->seq = src->seq;
    memcpy(dst->digest, src->digest, BFTKV_DIGEST_SIZE);
    dst->bits = src->bits;
    dst->from = src->from;
    memcpy(dst->proof, src->proof, (size_t)r->cfg.n * WIRE_CHECKPOINT_MSG_SIZE);
}

/* Empty the staging state and go back to the first position; the server now
 * asked has the current budget for the whole transfer. */
static void xfer_reset(struct pbft_replica *r)
{
    struct replica_xfer *x = &r->xfer;
    store_clear(x->staging);
    memset(x->rc, 0, rc_bytes(r));
    x->pos = (struct wire_state_pos){.part = WIRE_PART_STORE, .shard = 0, .cursor = 0};
    x->shards = 0;
    x->attempts = 0;
    x->give_up_ns = r->now_ns + ((CATCHUP_XFER_BUDGET_INTERVALS * r->cfg.retransmit_ns) << x->budget_shift);
}

static void xfer_stop(struct pbft_replica *r)
{
    r->xfer.active = false;
    r->xfer.waiting = false;
    store_clear(r->xfer.staging); /* its memory goes back now */
}

/* Ask the server for the chunk at x->pos. */
static void fetch_send(struct pbft_replica *r, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    size_t bound = WIRE_HEADER_SIZE + WIRE_FETCH_BODY + (size_t)r->cfg.n * BFTKV_MAC_SIZE;
    if (!pbft_out_room(out, bound, 1)) {
        x->waiting = true; /* the next tick sends it */
        x->deadline_ns = r->now_ns + 1u;
        return;
    }
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_fetch(dst, cap, r->cfg.group, r->cfg.id, r->cfg.n, r->view, x->target.seq,
                                   x->target.digest, &x->pos, (uint8_t)CATCHUP_CHUNKS_PER_FETCH, &auth_off);
    BFTKV_ASSERT(len > 0);
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    pbft_out_commit(out, PBFT_DEST_REPLICA, x->server, len);
    x->waiting = false;
    x->deadline_ns = r->now_ns + 2u * r->cfg.retransmit_ns;
}

/* Fetch tgt from the start; the first FETCH goes now (out) or at the next tick. */
static void xfer_begin(struct pbft_replica *r, const struct replica_target *tgt, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    BFTKV_ASSERT(tgt->seq > r->last_executed);
    if (x->active)
        r->stats.state_transfer_restarts++;
    if (&x->target != tgt)
        target_copy(r, &x->target, tgt);
    if (x->cand.seq <= x->target.seq)
        x->cand.seq = 0;
    x->active = true;
    x->misses = 0;
    x->server = x->target.from < r->cfg.n && x->target.from != r->cfg.id ? x->target.from
                                                                          : server_next(r, r->cfg.id);
    xfer_reset(r);
    if (out != NULL) {
        fetch_send(r, out);
    } else {
        x->waiting = true;
        x->deadline_ns = r->now_ns;
    }
}

/* The current server failed us (lied, timed out, lacks the snapshot): a better
 * target if one is known, else the next server, from the start either way. */
static void xfer_next_server(struct pbft_replica *r, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    if (x->cand.seq > x->target.seq && x->cand.seq > r->last_executed) {
        xfer_begin(r, &x->cand, out);
        return;
    }
    r->stats.state_transfer_restarts++;
    x->server = server_next(r, x->server);
    xfer_reset(r);
    if (x->misses + 1u >= r->cfg.n) {
        /* Every other replica said MISSING: wait an interval (a newer proof may
         * arrive meanwhile) rather than cycling at message speed. */
        x->misses = 0;
        x->waiting = true;
        x->deadline_ns = r->now_ns + 2u * r->cfg.retransmit_ns;
        return;
    }
    if (out != NULL) {
        fetch_send(r, out);
    } else {
        x->waiting = true;
        x->deadline_ns = r->now_ns;
    }
}

/* The current server's state failed a check: record why (the server runtime
 * logs it), and try the next server -- at once the first time, then after an
 * interval that doubles with each further failure in a row (up to 32 R), so a
 * state that keeps failing (a configuration that differs from the group's, a
 * liar) costs a fetch now and then, never a loop at message speed. */
static void xfer_failed(struct pbft_replica *r, enum pbft_xfer_failure why, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    r->stats.state_transfer_failure = why;
    r->stats.state_transfer_failure_seq = x->target.seq;
    r->stats.state_transfer_failure_server = x->server;
    uint32_t shift = x->failures < CATCHUP_BACKOFF_SHIFT_MAX ? x->failures : CATCHUP_BACKOFF_SHIFT_MAX;
    x->failures++;
    if (shift == 0) {
        xfer_next_server(r, out);
        return;
    }
    xfer_next_server(r, NULL);
    x->waiting = true;
    x->deadline_ns = r->now_ns + (r->cfg.retransmit_ns << shift);
}

const char *pbft_xfer_failure_name(uint64_t failure)
{
    switch (failure) {
    case PBFT_XFER_OK:
        return "none";
    case PBFT_XFER_BAD_DIGEST:
        return "the fetched state does not match the digest q replicas signed";
    case PBFT_XFER_BAD_CHUNK:
        return "the server sent a malformed chunk";
    case PBFT_XFER_UNKNOWN_CLIENT:
        return "the state holds replies of a client this replica's config lacks (is its config older than the "
               "group's?)";
    default:
        return "unknown";
    }
}

void replica_statetransfer_start(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE])
{
    struct replica_xfer *x = &r->xfer;
    if (seq <= r->last_executed || (x->active && x->target.seq >= seq))
        return;
    /* Chosen by a NEW-VIEW that q VIEW-CHANGEs support: no CHECKPOINT proof
     * travels with it; our own CHECKPOINT joins once the state is installed. */
    struct replica_target *c = &x->cand;
    c->seq = seq;
    memcpy(c->digest, digest, BFTKV_DIGEST_SIZE);
    c->bits = 0;
    c->from = server_next(r, r->cfg.id);
    xfer_begin(r, c, NULL);
}

/* ---- Fetching: learning a stable checkpoint ---------------------------------------- */

/* A checkpoint record above last_executed with q matching signed CHECKPOINTs
 * (checkpoint.c collected and verified them) becomes the candidate. */
static void cand_from_records(struct pbft_replica *r)
{
    struct replica_xfer *x = &r->xfer;
    for (uint32_t i = 0; i < r->ckpt_count; i++) {
        const struct replica_ckpt *c = &r->ckpts[i];
        if (c->seq <= r->last_executed || c->seq <= x->cand.seq || (x->active && c->seq <= x->target.seq))
            continue;
        for (uint64_t b = c->bits; b != 0; b &= b - 1u) {
            unsigned j = (unsigned)__builtin_ctzll(b);
            uint64_t same = 0;
            for (uint64_t b2 = c->bits; b2 != 0; b2 &= b2 - 1u) {
                unsigned k = (unsigned)__builtin_ctzll(b2);
                if (memcmp(c->digest[k], c->digest[j], BFTKV_DIGEST_SIZE) == 0)
                    same |= 1ull << k;
            }
            if ((uint32_t)__builtin_popcountll(same) < r->quorum)
                continue;
            struct replica_target *t = &x->cand;
            t->seq = c->seq;
            memcpy(t->digest, c->digest[j], BFTKV_DIGEST_SIZE);
            t->bits = same;
            uint64_t others = same & ~(1ull << r->cfg.id);
            t->from = others != 0 ? (uint16_t)__builtin_ctzll(others) : server_next(r, r->cfg.id);
            for (uint64_t b3 = same; b3 != 0; b3 &= b3 - 1u) {
                unsigned k = (unsigned)__builtin_ctzll(b3);
                memcpy(t->proof + (size_t)k * WIRE_CHECKPOINT_MSG_SIZE, c->msgs + (size_t)k * r->ckpt_msg_len,
                       r->ckpt_msg_len);
            }
            break;
        }
    }
}

/* Is this message of a PROOF a CHECKPOINT for (seq, digest)? (Its signature is
 * checked by the caller, once.) */
static bool proof_msg_valid(struct pbft_replica *r, const uint8_t *p, uint64_t seq, const uint8_t *digest,
                            struct wire_msg *cm)
{
    size_t used = 0;
    return wire_decode(p, WIRE_CHECKPOINT_MSG_SIZE, &r->limits, cm, &used, NULL) == 0
           && used == WIRE_CHECKPOINT_MSG_SIZE && cm->h.type == WIRE_CHECKPOINT && cm->h.seq == seq
           && memcmp(cm->u.batch.digest, digest, BFTKV_DIGEST_SIZE) == 0;
}

/* A peer's proof that (n, d) is stable: q valid signatures from distinct
 * replicas. The first proof of a new n becomes the candidate and, as the peer
 * has discarded the log below n, the transfer starts at once. */
static void proof_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    const struct wire_state *st = &m->u.state;
    uint64_t seq = m->h.seq;
    if (seq <= r->last_executed || seq <= x->cand.seq || (x->active && seq <= x->target.seq)
        || seq % r->cfg.checkpoint_interval != 0) {
        r->stats.dropped_stale++;
        return;
    }
    uint32_t count = st->data_len / WIRE_CHECKPOINT_MSG_SIZE;
    uint64_t bits = 0;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_msg cm;
        const uint8_t *p = st->data + (size_t)i * WIRE_CHECKPOINT_MSG_SIZE;
        if (!proof_msg_valid(r, p, seq, st->digest, &cm) || (bits & (1ull << cm.h.sender)) != 0
            || !auth_signature_check(r->auth, &cm))
            continue;
        bits |= 1ull << cm.h.sender;
    }
    if ((uint32_t)__builtin_popcountll(bits) < r->quorum) {
        replica_drop(r, WIRE_DROP_BAD_AUTH);
        return;
    }
    struct replica_target *t = &x->cand;
    t->seq = seq;
    memcpy(t->digest, st->digest, BFTKV_DIGEST_SIZE);
    t->bits = bits;
    t->from = m->h.sender;
    for (uint32_t i = 0; i < count; i++) {
        struct wire_msg cm;
        const uint8_t *p = st->data + (size_t)i * WIRE_CHECKPOINT_MSG_SIZE;
        if (proof_msg_valid(r, p, seq, st->digest, &cm) && (bits & (1ull << cm.h.sender)) != 0)
            memcpy(t->proof + (size_t)cm.h.sender * WIRE_CHECKPOINT_MSG_SIZE, p, WIRE_CHECKPOINT_MSG_SIZE);
    }
    if (!x->active)
        xfer_begin(r, t, out);
}

/* ---- Fetching: installing ------------------------------------------------------------ */

/* Drop the log slots at and below n: their batches are inside the fetched
 * state. Accepted batches give back their large-request references (exec.c
 * would have at execution), stalled ones their count. */
static void log_discard_through(struct pbft_replica *r, uint64_t n)
{
    uint64_t hi = replica_high(r);
    if (hi > n)
        hi = n;
    for (uint64_t seq = r->low + 1u; seq <= hi; seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL)
            continue;
        if (s->stalled) {
            BFTKV_ASSERT(r->stalled > 0);
            r->stalled--;
            s->stalled = false;
            s->unvouched = false;
        }
        replica_slot_release(r, s);
        s->seq = 0; /* reset on reuse (replica_slot_get) */
    }
}

/* The staging state's digest, exactly as checkpoint.c computes a checkpoint's:
 * the reply-cache part is replica_exec_rc_digest's on the staging table, so the
 * tables are swapped in (staging_rc_back undoes it) and every block rehashed. */
static void staging_digest(struct pbft_replica *r, uint8_t actual[BFTKV_DIGEST_SIZE])
{
    struct replica_xfer *x = &r->xfer;
    uint8_t parts[2u * BFTKV_DIGEST_SIZE];
    store_digest_bytes(x->staging, parts);
    struct replica_rc_entry *t = r->rc;
    r->rc = x->rc;
    x->rc = t;
    memset(r->rc_dirty, 1, r->rc_blocks);
    replica_exec_rc_digest(r, parts + BFTKV_DIGEST_SIZE);
    wire_digest(actual, parts, sizeof parts);
}

static void staging_rc_back(struct pbft_replica *r)
{
    struct replica_rc_entry *t = r->rc;
    r->rc = r->xfer.rc;
    r->xfer.rc = t;
    memset(r->rc_dirty, 1, r->rc_blocks);
}

/* The checked staging state becomes the replica's at checkpoint n: store and
 * reply cache, execution, and the checkpoint stable with its proof (and our own
 * signature), kept for serving in turn. */
static void state_take(struct pbft_replica *r, uint64_t n)
{
    struct replica_xfer *x = &r->xfer;
    BFTKV_ASSERT(!r->exec_active);
    BFTKV_ASSERT(n > r->last_executed);
    int rc = store_swap(r->store, x->staging);
    BFTKV_ASSERT(rc == 0); /* created alike */
    for (uint32_t i = 0; i < r->rc_entries; i++) {
        if (r->rc[i].timestamp > r->seen_ts[i])
            r->seen_ts[i] = r->rc[i].timestamp;
    }
    r->last_executed = n;
    if (r->max_prepared < n)
        r->max_prepared = n;
    if (r->cu.max_seen < n)
        r->cu.max_seen = n;
    replica_checkpoint_adopt(r, n, x->target.digest, x->target.proof, x->target.bits);
    replica_statetransfer_snapshot_take(r, n, x->target.digest);
}

static void install(struct pbft_replica *r, const uint8_t actual[BFTKV_DIGEST_SIZE], struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    uint64_t n = x->target.seq;
    log_discard_through(r, n);
    state_take(r, n);
    if (r->next_seq <= n)
        r->next_seq = n + 1u;
    r->cu.progress_le = n;
    r->cu.progress_ns = r->now_ns;
    if (r->unsure)
        replica_catchup_sure_check(r, out);
    if (r->on_checkpoint != NULL)
        r->on_checkpoint(r->hook_arg, r->cfg.id, n, actual);
    r->stats.state_transfers++;
    x->budget_shift = 0;
    x->failures = 0;
    xfer_stop(r); /* clears the old state, now in staging */
    if (x->cand.seq <= n)
        x->cand.seq = 0;
    /* Tell the group at once: peers relay the batches after n from their logs,
     * or -- if a newer checkpoint became stable meanwhile -- its proof. A peer
     * that answered our last STATUS less than R/4 ago ignores this one, so the
     * next goes at the lagging pace (catchup.c), not after R. */
    replica_catchup_status_send(r, out);
    r->cu.status_ns = r->now_ns + r->cfg.retransmit_ns / 2u;
}

/* The whole state is in: check it against the signed digest (TOCS 2002
 * §5.3.2), exactly as checkpoint.c computes a checkpoint's digest. */
static void xfer_finish(struct pbft_replica *r, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    uint8_t actual[BFTKV_DIGEST_SIZE];
    staging_digest(r, actual);
    if (memcmp(actual, x->target.digest, BFTKV_DIGEST_SIZE) != 0) {
        r->stats.state_transfer_bad_digest++;
        if ((r->cfg.bugs & PBFT_BUG_SKIP_SNAPSHOT_DIGEST) == 0) {
            staging_rc_back(r);
            xfer_failed(r, PBFT_XFER_BAD_DIGEST, out);
            return;
        }
    }
    install(r, actual, out);
}

/* ---- A snapshot file's state (recover.c) ------------------------------------------- *
 *
 * The same staging store and reply cache as a fetch, filled from the chunks a
 * durable replica wrote to its disk instead of from a peer, checked against the
 * same signed digest, and installed the same way -- but nothing is sent: the
 * replica is still replaying its records. */

static bool chunk_apply(struct pbft_replica *r, const struct wire_state *st, bool *retry, bool *unknown);

void replica_statetransfer_restore_begin(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE],
                                         uint64_t bits, const uint8_t *proof)
{
    struct replica_xfer *x = &r->xfer;
    BFTKV_ASSERT(!x->active);
    x->target.seq = seq;
    memcpy(x->target.digest, digest, BFTKV_DIGEST_SIZE);
    x->target.bits = bits;
    x->target.from = r->cfg.id;
    memcpy(x->target.proof, proof, (size_t)r->cfg.n * WIRE_CHECKPOINT_MSG_SIZE);
    xfer_reset(r);
}

int replica_statetransfer_restore_chunk(struct pbft_replica *r, const struct wire_state *st)
{
    bool retry = false, unknown = false;
    if (!chunk_apply(r, st, &retry, &unknown))
        return BFTKV_E_CORRUPT;
    if (retry)
        return BFTKV_E_NOMEM;
    r->xfer.shards = st->shards;
    return 0;
}

int replica_statetransfer_restore_end(struct pbft_replica *r)
{
    struct replica_xfer *x = &r->xfer;
    uint8_t actual[BFTKV_DIGEST_SIZE];
    staging_digest(r, actual);
    if (memcmp(actual, x->target.digest, BFTKV_DIGEST_SIZE) != 0) {
        staging_rc_back(r);
        store_clear(x->staging);
        return BFTKV_E_CORRUPT;
    }
    state_take(r, x->target.seq);
    r->persist_stable_seq = 0; /* its record is the snapshot's own proof */
    store_clear(x->staging);
    return 0;
}

/* ---- Fetching: chunks -------------------------------------------------------------- */

static bool ignore_state(struct pbft_replica *r, const struct wire_msg *m)
{
    return !replica_msg_from_peer(r, m);
}

/* A chunk or MISSING of the transfer in flight, at the position we asked for? */
static bool state_expected(const struct pbft_replica *r, const struct wire_msg *m)
{
    const struct replica_xfer *x = &r->xfer;
    const struct wire_state *st = &m->u.state;
    if (!x->active || x->waiting || m->h.sender != x->server || m->h.seq != x->target.seq
        || memcmp(st->digest, x->target.digest, BFTKV_DIGEST_SIZE) != 0)
        return false;
    return st->kind == WIRE_STATE_MISSING || wire_state_pos_cmp(&st->from, &x->pos) == 0;
}

/* Restore one chunk into the staging state; false if the server sent what no
 * correct server would (then it is dropped as a liar). */
static bool chunk_apply(struct pbft_replica *r, const struct wire_state *st, bool *retry, bool *unknown)
{
    struct replica_xfer *x = &r->xfer;
    *retry = false;
    *unknown = false;
    if (x->shards != 0 && st->shards != x->shards)
        return false;
    if (st->from.part == WIRE_PART_STORE) {
        int rc = store_restore_chunk(x->staging, st->data, st->data_len);
        if (rc == BFTKV_E_NOMEM) {
            *retry = true; /* puts are idempotent: ask for the same chunk again */
            return true;
        }
        return rc == 0;
    }
    uint32_t off = 0;
    struct wire_rc_entry e;
    while (wire_rc_entry_next(st, &off, &e)) {
        if ((e.key >> 16) >= r->cfg.clients || (e.key & 0xffffu) >= r->cfg.lanes) {
            *unknown = true; /* a client (or lane) our configuration lacks */
            return false;
        }
    }
    off = 0;
    while (wire_rc_entry_next(st, &off, &e)) {
        struct replica_rc_entry *d = &x->rc[(e.key >> 16) * r->cfg.lanes + (e.key & 0xffffu)];
        d->timestamp = e.timestamp;
        d->status = e.status;
        d->op = e.op;
        d->result_len = e.result_len;
        d->cached = e.result != NULL;
        memcpy(d->digest, e.digest, BFTKV_DIGEST_SIZE);
        if (e.result != NULL && e.result_len > 0)
            memcpy(d->result, e.result, e.result_len);
    }
    return true;
}

static void chunk_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    const struct wire_state *st = &m->u.state;
    bool retry = false, unknown = false;
    if (!chunk_apply(r, st, &retry, &unknown)) {
        if (unknown) {
            r->stats.state_transfer_unknown_client++;
            xfer_failed(r, PBFT_XFER_UNKNOWN_CLIENT, out);
        } else {
            replica_drop(r, WIRE_DROP_BAD_FIELD);
            r->stats.state_transfer_bad_chunks++;
            xfer_failed(r, PBFT_XFER_BAD_CHUNK, out);
        }
        return;
    }
    if (retry) {
        x->waiting = true;
        x->deadline_ns = r->now_ns + 2u * r->cfg.retransmit_ns;
        return;
    }
    r->stats.state_chunks_received++;
    x->shards = st->shards;
    x->attempts = 0;
    x->misses = 0;
    x->pos = st->next;
    if (x->pos.part == WIRE_PART_END) {
        xfer_finish(r, out);
    } else if (st->flags & WIRE_STATE_LAST) {
        fetch_send(r, out);
    } else {
        x->deadline_ns = r->now_ns + 2u * r->cfg.retransmit_ns; /* more of this answer comes */
    }
}

void replica_state_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_state(r, m))
        return;
    if (m->u.state.kind == WIRE_STATE_PROOF) {
        proof_receive(r, m, out);
        return;
    }
    if (r->xfer.active && r->xfer.target.seq <= r->last_executed)
        xfer_stop(r); /* the normal protocol got there first */
    if (!state_expected(r, m)) {
        r->stats.dropped_stale++; /* a late answer, a duplicate, another transfer's */
        return;
    }
    if (m->u.state.kind == WIRE_STATE_MISSING) {
        r->xfer.misses++;
        xfer_next_server(r, out);
        return;
    }
    chunk_receive(r, m, out);
}

/* ---- Fetching: the tick --------------------------------------------------------------- */

void replica_statetransfer_tick(struct pbft_replica *r, struct pbft_out *out)
{
    struct replica_xfer *x = &r->xfer;
    if (x->active && x->target.seq <= r->last_executed)
        xfer_stop(r); /* the normal protocol got there first */
    if (!x->active) {
        cand_from_records(r);
        bool idle = r->now_ns - r->cu.progress_ns >= r->cfg.retransmit_ns;
        if (x->cand.seq > r->last_executed && (idle || x->cand.seq > replica_high(r)))
            xfer_begin(r, &x->cand, out);
        return;
    }
    if (r->now_ns >= x->give_up_ns) {
        /* This server has had its budget: the next one gets twice as much. */
        if (x->budget_shift < CATCHUP_XFER_BUDGET_SHIFT_MAX)
            x->budget_shift++;
        x->misses = 0;
        xfer_next_server(r, out);
        return;
    }
    if (r->now_ns < x->deadline_ns)
        return;
    if (x->waiting) {
        fetch_send(r, out);
        return;
    }
    r->stats.state_fetch_timeouts++;
    if (++x->attempts < CATCHUP_FETCH_ATTEMPTS) {
        fetch_send(r, out); /* the same chunk again */
        return;
    }
    x->misses = 0;
    xfer_next_server(r, out);
}
