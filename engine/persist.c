/* What a durable replica lists for its disk (engine/pbft.h "Ordering contract";
 * docs/design.md §9): the records each message it sends depends on, in the outbox
 * before or with that message, so that the caller persists them first.
 *
 *   PREPREPARE   the PRE-PREPARE (the message bytes; with PREPARE below, the
 *                batch and its Q-set entry): before the primary's PRE-PREPARE
 *                and before a backup's PREPARE for it
 *   REQUEST      each large request that PRE-PREPARE names by digest (its bytes)
 *   PREPARED     le64 view | le64 seq | digest: before the COMMIT (the P-set entry)
 *   COMMITTED    le64 seq | digest: committed here, before the batch's first
 *                reply (a recovery executes it again from the PRE-PREPARE)
 *   VIEW_CHANGE  its own VIEW-CHANGE (the message): before it is sent
 *   NEW_VIEW     the NEW-VIEW it sent or accepted (the message): before any
 *                message of that view
 *   HOLDS_STATE  u8 0 / 1: a replica restarted empty starts unsure (0), and is
 *                vouched for (1): before any other record after it
 *   CHECKPOINT   a stable checkpoint: le64 seq | le64 senders (bit j: replica
 *                j's CHECKPOINT is in) | n signed CHECKPOINTs of ckpt_msg_len
 *                bytes each, zero where none, q of which match: before any
 *                record of the window it opens (replica_persist_flush)
 *
 * Messages are recorded by reference (pbft_out_ref: the slot's, the pool's or the
 * view-change buffers stay unchanged until the next step); the two short records
 * are copied. Each slot remembers what was recorded for it in its current view, so
 * a retransmission records nothing again. Nothing here runs unless cfg.durable.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"
#include "engine/wire_le.h"

#define PERSIST_PREPARED_LEN (16u + BFTKV_DIGEST_SIZE)
#define PERSIST_COMMITTED_LEN (8u + BFTKV_DIGEST_SIZE)

#define PERSIST_CHECKPOINT_HEAD 16u

/* One record, by reference or copied; false (nothing listed, counted) when the
 * outbox has no room for it. */
static bool persist_add(struct pbft_replica *r, struct pbft_out *out, enum pbft_persist kind, const uint8_t *p,
                        size_t len, bool copy)
{
    bool ok = copy ? pbft_out_copy(out, PBFT_DEST_PERSIST, (uint16_t)kind, p, len)
                   : pbft_out_ref(out, PBFT_DEST_PERSIST, (uint16_t)kind, p, len);
    if (!ok)
        r->stats.dropped_full++;
    return ok;
}

static bool persist_ref(struct pbft_replica *r, struct pbft_out *out, enum pbft_persist kind, const uint8_t *p,
                        size_t len)
{
    return persist_add(r, out, kind, p, len, false);
}

static bool persist_copy(struct pbft_replica *r, struct pbft_out *out, enum pbft_persist kind, const uint8_t *p,
                         size_t len)
{
    return persist_add(r, out, kind, p, len, true);
}

uint32_t replica_persist_msgs(const struct pbft_replica *r)
{
    /* The pending NEW-VIEW, the PRE-PREPARE, and one per large request it names. */
    return r->cfg.durable ? 2u + r->cfg.batch_max_requests : 0u;
}

/* HOLDS_STATE: whether the replica is unsure (engine/catchup.c), once it changes. */
static bool persist_holds(struct pbft_replica *r, struct pbft_out *out)
{
    if (!r->persist_holds_pending)
        return true;
    uint8_t holds = r->unsure ? (uint8_t)0 : (uint8_t)1;
    if (!persist_copy(r, out, PBFT_PERSIST_HOLDS_STATE, &holds, 1))
        return false;
    r->persist_holds_pending = false;
    return true;
}

bool replica_persist_flush(struct pbft_replica *r, struct pbft_out *out)
{
    if (!persist_holds(r, out) || !replica_persist_stable(r, out))
        return false;
    if (!r->persist_nv_pending)
        return true;
    BFTKV_ASSERT(r->cfg.durable);
    BFTKV_ASSERT(r->nv_len > 0);
    if (!persist_ref(r, out, PBFT_PERSIST_NEW_VIEW, r->nv_buf, r->nv_len))
        return false;
    r->persist_nv_pending = false;
    r->persisted_nv_view = r->view + 1u;
    return true;
}

bool replica_persist_preprepare(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    if (!r->cfg.durable)
        return true;
    if (!replica_persist_flush(r, out))
        return false;
    if (s->persisted_pp_view == s->view + 1u)
        return true;
    BFTKV_ASSERT(s->has_pp);
    BFTKV_ASSERT(s->pp_len > 0);
    /* The large requests first: the PRE-PREPARE names them. One stored in pieces
     * is copied (its assembled bytes live in a scratch buffer the next read
     * overwrites); the others are listed by reference. */
    uint32_t off = 0, need = 1;
    size_t copy_bytes = 0;
    const uint8_t *d;
    while (replica_slot_digest_next(s, &off, &d)) {
        uint32_t idx = replica_request_pool_find(r, d);
        need++;
        if (idx != UINT32_MAX && !replica_request_pool_contiguous(r, idx))
            copy_bytes += r->pool[idx].len;
    }
    if (!pbft_out_room(out, copy_bytes, need)) {
        r->stats.dropped_full++;
        return false;
    }
    off = 0;
    while (replica_slot_digest_next(s, &off, &d)) {
        uint32_t idx = replica_request_pool_find(r, d);
        if (idx == UINT32_MAX) {
            /* Only an executed batch lets its large requests go, and one executed
             * here was recorded with them before it committed (a NEW-VIEW that
             * re-proposes it is what makes it recorded again). */
            BFTKV_ASSERT(s->executed);
            continue;
        }
        bool whole = replica_request_pool_contiguous(r, idx);
        persist_add(r, out, PBFT_PERSIST_REQUEST, replica_request_pool_bytes(r, idx), r->pool[idx].len, !whole);
    }
    persist_ref(r, out, PBFT_PERSIST_PREPREPARE, s->pp, s->pp_len);
    s->persisted_pp_view = s->view + 1u;
    return true;
}

bool replica_persist_prepared(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    if (!r->cfg.durable || s->persisted_prepared_view == s->view + 1u)
        return true;
    if (r->cfg.bugs & PBFT_BUG_PERSIST_SKIP)
        return true; /* injected bug (tests only) */
    if (!replica_persist_flush(r, out))
        return false;
    BFTKV_ASSERT(s->prepared);
    uint8_t rec[PERSIST_PREPARED_LEN];
    le64_store(rec, s->view);
    le64_store(rec + 8, s->seq);
    memcpy(rec + 16, s->digest, BFTKV_DIGEST_SIZE);
    if (!persist_copy(r, out, PBFT_PERSIST_PREPARED, rec, sizeof rec))
        return false;
    s->persisted_prepared_view = s->view + 1u;
    return true;
}

bool replica_persist_committed(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    if (!r->cfg.durable)
        return true;
    BFTKV_ASSERT(s->committed);
    /* The batch itself first: a recovery executes it from its PRE-PREPARE record
     * (one this replica did not vote for, unsure, has none yet). */
    if (!replica_persist_preprepare(r, s, out))
        return false;
    uint8_t rec[PERSIST_COMMITTED_LEN];
    le64_store(rec, s->seq);
    memcpy(rec + 8, s->digest, BFTKV_DIGEST_SIZE);
    return persist_copy(r, out, PBFT_PERSIST_COMMITTED, rec, sizeof rec);
}

bool replica_persist_message(struct pbft_replica *r, enum pbft_persist kind, const uint8_t *msg, size_t len,
                             struct pbft_out *out)
{
    BFTKV_ASSERT(kind == PBFT_PERSIST_VIEW_CHANGE || kind == PBFT_PERSIST_NEW_VIEW);
    return !r->cfg.durable || persist_ref(r, out, kind, msg, len);
}

bool replica_persist_stable(struct pbft_replica *r, struct pbft_out *out)
{
    if (!r->cfg.durable || r->persist_stable_seq == 0)
        return true;
    const struct replica_ckpt *c = NULL;
    for (uint32_t i = 0; i < r->ckpt_count; i++)
        if (r->ckpts[i].seq == r->persist_stable_seq && r->ckpts[i].stable)
            c = &r->ckpts[i];
    if (c == NULL) {
        r->persist_stable_seq = 0; /* a newer one replaced it: that one is listed */
        return true;
    }
    /* Copied: the ring slot's messages of senders not in bits are an older
     * checkpoint's, which a recovery must not mistake for this one's. */
    size_t len = PERSIST_CHECKPOINT_HEAD + (size_t)r->cfg.n * r->ckpt_msg_len, cap = 0;
    if (!pbft_out_room(out, len, 1)) {
        r->stats.dropped_full++;
        return false;
    }
    uint8_t *p = pbft_out_tail(out, &cap);
    BFTKV_ASSERT(cap >= len);
    le64_store(p, c->seq);
    le64_store(p + 8, c->bits);
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        uint8_t *dst = p + PERSIST_CHECKPOINT_HEAD + (size_t)j * r->ckpt_msg_len;
        if (c->bits & (1ull << j))
            memcpy(dst, c->msgs + (size_t)j * r->ckpt_msg_len, r->ckpt_msg_len);
        else
            memset(dst, 0, r->ckpt_msg_len);
    }
    pbft_out_commit(out, PBFT_DEST_PERSIST, PBFT_PERSIST_CHECKPOINT, len);
    r->persist_stable_seq = 0;
    return true;
}
