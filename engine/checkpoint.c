/* Checkpoints, stable checkpoints and the log watermarks (TOCS 2002 §4.3; DESIGN
 * §3 "Checkpoints and watermarks").
 *
 * After executing seq n with n mod K = 0 a replica computes the state digest
 *
 *     BLAKE2b-256( store_digest_bytes(store) || reply-cache digest )
 *
 * -- both parts maintained incrementally, so a checkpoint costs O(changes) --
 * signs CHECKPOINT(n, digest) with Ed25519 and multicasts it. A checkpoint with
 * q matching CHECKPOINTs from distinct replicas, its own included, is stable:
 * the low watermark h moves to n, the log at and below n is discarded (slots are
 * reused lazily, see replica_slot_get) and so are older checkpoint records.
 *
 * Records exist for seq in [h, h+L] only: L/K + 1 of them in a ring, each with
 * one digest and the signed message of every sender. The record of h keeps the
 * q signed messages that prove h stable: a VIEW-CHANGE carries them
 * (viewchange.c; TOCS 2002 §4.5). Signatures are checked last, after the cheap
 * checks, as they cost ~60 us each.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"

static struct replica_ckpt *ckpt_get(struct pbft_replica *r, uint64_t seq)
{
    BFTKV_ASSERT(seq % r->cfg.checkpoint_interval == 0);
    struct replica_ckpt *c = &r->ckpts[(seq / r->cfg.checkpoint_interval) % r->ckpt_count];
    if (c->seq != seq) {
        BFTKV_ASSERT(c->seq < seq); /* records only exist for [h, h+L] */
        c->seq = seq;
        c->own_taken = false;
        c->stable = false;
        c->bits = 0;
    }
    return c;
}

static void ckpt_record(struct pbft_replica *r, struct replica_ckpt *c, uint16_t sender, const uint8_t *digest,
                        const uint8_t *msg, size_t len)
{
    BFTKV_ASSERT(len == r->ckpt_msg_len);
    BFTKV_ASSERT(sender < r->cfg.n);
    c->bits |= 1ull << sender;
    memcpy(c->digest[sender], digest, BFTKV_DIGEST_SIZE);
    memcpy(c->msgs + (size_t)sender * r->ckpt_msg_len, msg, len);
}

/* c is stable: h moves to it, the records below it go, and so do the states
 * kept for serving, all but those of the previous stable checkpoint and above
 * (statetransfer_serve.c); the slots at and below h are reused when
 * replica_slot_get meets them again. */
static void ckpt_stable_set(struct pbft_replica *r, struct replica_ckpt *c)
{
    BFTKV_ASSERT(c->seq <= r->last_executed);
    BFTKV_ASSERT(c->seq <= replica_high(r));
    c->stable = true;
    r->low = c->seq;
    r->stats.checkpoints_stable++;
    r->stats.low_watermark = r->low;
    for (uint32_t i = 0; i < r->ckpt_count; i++) {
        if (r->ckpts[i].seq < r->low)
            r->ckpts[i].seq = 0;
    }
    replica_statetransfer_snapshots_release_below(r, r->low);
    replica_request_pool_low_moved(r);
}

/* Stable by q CHECKPOINTs: its proof is recorded at the end of the step (persist.c). */
static void ckpt_make_stable(struct pbft_replica *r, struct replica_ckpt *c)
{
    ckpt_stable_set(r, c);
    r->persist_stable_seq = c->seq;
}

static void ckpt_stable_check(struct pbft_replica *r, struct replica_ckpt *c)
{
    if (!c->own_taken || c->stable || c->seq <= r->low)
        return;
    uint32_t match = 0;
    for (uint64_t bits = c->bits; bits != 0; bits &= bits - 1u) {
        unsigned j = (unsigned)__builtin_ctzll(bits);
        if (memcmp(c->digest[j], c->own_digest, BFTKV_DIGEST_SIZE) == 0)
            match++;
    }
    if (match >= r->quorum)
        ckpt_make_stable(r, c);
}

#define CKPT_MSG_MAX (WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + WIRE_SIG_SIZE)

/* Our signed CHECKPOINT for (seq, digest), written into msg; its length. */
static size_t ckpt_sign(const struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE],
                        uint8_t msg[CKPT_MSG_MAX])
{
    size_t auth_off = 0;
    size_t len = wire_encode_digest_msg(msg, CKPT_MSG_MAX, WIRE_CHECKPOINT, r->cfg.group, r->cfg.id, r->cfg.n,
                                        r->view, seq, digest, &auth_off);
    BFTKV_ASSERT(len == r->ckpt_msg_len);
    auth_sign(r->auth, msg, len, auth_off);
    return len;
}

void replica_checkpoint_take(struct pbft_replica *r, uint64_t seq, struct pbft_out *out)
{
    uint8_t parts[2u * BFTKV_DIGEST_SIZE];
    uint8_t digest[BFTKV_DIGEST_SIZE];
    store_digest_bytes(r->store, parts);
    replica_exec_rc_digest(r, parts + BFTKV_DIGEST_SIZE);
    wire_digest(digest, parts, sizeof parts);

    struct replica_ckpt *c = ckpt_get(r, seq);
    c->own_taken = true;
    memcpy(c->own_digest, digest, BFTKV_DIGEST_SIZE);
    if (!replica_votes(r)) {
        /* Unsure of its state: it signs nothing, and the checkpoint becomes
         * stable here only on q CHECKPOINTs of others. */
        replica_statetransfer_snapshot_take(r, seq, digest);
        ckpt_stable_check(r, c);
        return;
    }
    uint8_t msg[CKPT_MSG_MAX];
    size_t len = ckpt_sign(r, seq, digest, msg);
    ckpt_record(r, c, r->cfg.id, digest, msg, len);
    if (r->cfg.n > 1 && !pbft_out_copy(out, PBFT_DEST_ALL_REPLICAS, 0, msg, len))
        r->stats.dropped_full++;
    if (r->on_checkpoint != NULL)
        r->on_checkpoint(r->hook_arg, r->cfg.id, seq, digest);
    /* Keep this state for replicas that fall behind (TOCS 2002 §5.3). */
    replica_statetransfer_snapshot_take(r, seq, digest);
    ckpt_stable_check(r, c);
}

/* A checkpoint whose state was fetched and installed (statetransfer.c): it is
 * stable by proof -- q signed CHECKPOINTs, or a NEW-VIEW that chose it -- and the
 * state is now ours, so our own signed CHECKPOINT joins the proof. h moves to it
 * (TOCS 2002 §5.3.2). The caller set last_executed = seq first. */
void replica_checkpoint_adopt(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE],
                              const uint8_t *proof, uint64_t bits)
{
    BFTKV_ASSERT(seq > r->low);
    BFTKV_ASSERT(seq == r->last_executed);
    uint8_t msg[CKPT_MSG_MAX];
    size_t len = ckpt_sign(r, seq, digest, msg);

    struct replica_ckpt *c = ckpt_get(r, seq);
    c->own_taken = true;
    memcpy(c->own_digest, digest, BFTKV_DIGEST_SIZE);
    ckpt_record(r, c, r->cfg.id, digest, msg, len);
    for (uint64_t b = bits & ~(1ull << r->cfg.id); b != 0; b &= b - 1u) {
        unsigned j = (unsigned)__builtin_ctzll(b);
        ckpt_record(r, c, (uint16_t)j, digest, proof + (size_t)j * r->ckpt_msg_len, r->ckpt_msg_len);
    }
    /* The window jumps: h = seq first, so seq is inside it for ckpt_make_stable. */
    r->low = seq;
    ckpt_make_stable(r, c);
}

void replica_checkpoint_stable_by_view(struct pbft_replica *r, struct replica_ckpt *c)
{
    BFTKV_ASSERT(c->own_taken);
    BFTKV_ASSERT(c->seq > r->low);
    ckpt_stable_set(r, c);
}

static bool ignore_checkpoint(struct pbft_replica *r, const struct wire_msg *m)
{
    uint64_t seq = m->h.seq;
    if (m->h.sender == r->cfg.id) {
        replica_drop(r, WIRE_DROP_BAD_SENDER);
        return true;
    }
    if (seq == 0 || seq % r->cfg.checkpoint_interval != 0 || m->raw_len != r->ckpt_msg_len) {
        replica_drop(r, WIRE_DROP_BAD_FIELD);
        return true;
    }
    if (!replica_in_window(r, seq)) {
        r->stats.dropped_stale++;
        return true;
    }
    const struct replica_ckpt *c = ckpt_get(r, seq);
    if (c->bits & (1ull << m->h.sender))
        return true; /* one CHECKPOINT per sender per seq */
    return !replica_msg_authentic(r, m);
}

void replica_checkpoint_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    (void)out;
    if (ignore_checkpoint(r, m))
        return;
    struct replica_ckpt *c = ckpt_get(r, m->h.seq);
    ckpt_record(r, c, m->h.sender, m->u.batch.digest, m->raw, m->raw_len);
    if (m->h.seq > r->cu.max_seen)
        r->cu.max_seen = m->h.seq; /* catch-up (catchup.c): a peer got this far */
    ckpt_stable_check(r, c);
}
