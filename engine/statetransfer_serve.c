/* Serving state transfer: the snapshots of own checkpoints, the chunks a FETCH
 * asks for, and the proof a replica below h needs (TOCS 2002 §5.3; docs/design.md §5.6:
 * serving a snapshot must not stop the server).
 * statetransfer.c is the fetching side.
 *
 * After executing a checkpoint seq n (n mod K = 0) a replica keeps the state of
 * n: a store snapshot (store_snapshot_take, O(shards); later writes record only
 * what they change for it, docs/design.md §3.4) and a copy of the reply cache. It
 * keeps them for the checkpoints in [h', h+L], h' the stable checkpoint before
 * h, and releases older ones when a newer checkpoint becomes stable (a transfer
 * of h that started just before h moved can still finish). A FETCH(n, d,
 * position, count) is answered with up to count consecutive STATE chunks (one
 * datagram each) encoded from the snapshot of (n, d), at most
 * CATCHUP_SERVE_CHUNKS_PER_R per asker and interval; so serving costs a bounded
 * encode per request and never holds up execution, which goes on in the live
 * store meanwhile. Without such a snapshot the answer is MISSING. A position is
 * the server's own (its snapshot's shard layout and slot indexes): it comes back
 * from the asker, untrusted, and is checked before use.
 */
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/replica_internal.h"

_Static_assert(WIRE_RC_RESULT_MAX == REPLICA_RC_RESULT_MAX, "an RCACHE entry carries what the cache keeps");

static size_t rc_bytes(const struct pbft_replica *r)
{
    return (size_t)r->rc_entries * sizeof(struct replica_rc_entry);
}

/* ---- Snapshots of own checkpoints ----------------------------------------------- */

static void snap_release(struct replica_snap *s)
{
    store_snapshot_release(s->snap);
    s->snap = NULL;
    s->seq = 0;
}

void replica_statetransfer_snapshot_take(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE])
{
    BFTKV_ASSERT(seq % r->cfg.checkpoint_interval == 0);
    /* A ring over [h', h+L]: a slot's previous holder is below h' by now, or
     * h' itself when h jumped more than one interval. */
    struct replica_snap *s = &r->cu.snaps[(seq / r->cfg.checkpoint_interval) % r->cu.nsnaps];
    if (s->seq != 0)
        snap_release(s);
    if (store_snapshot_take(r->store, &s->snap) != 0) {
        s->snap = NULL;
        r->stats.snapshot_failures++; /* peers serve this one; nothing else changes */
        return;
    }
    memcpy(s->rc, r->rc, rc_bytes(r));
    memcpy(s->digest, digest, BFTKV_DIGEST_SIZE);
    s->seq = seq;
    r->stats.snapshots_taken++;
}

/* h moved to seq: keep the snapshots from the previous stable checkpoint on. A
 * replica that learnt of that one just before h moved is likely fetching it;
 * keeping it one interval longer spares it a restart, for the price of the
 * store tables one more interval's writes copied. */
void replica_statetransfer_snapshots_release_below(struct pbft_replica *r, uint64_t seq)
{
    uint64_t keep = r->cu.prev_low < seq ? r->cu.prev_low : seq;
    for (uint32_t i = 0; i < r->cu.nsnaps; i++) {
        if (r->cu.snaps[i].seq != 0 && r->cu.snaps[i].seq < keep)
            snap_release(&r->cu.snaps[i]);
    }
    r->cu.prev_low = seq;
}

static const struct replica_snap *snap_find(const struct pbft_replica *r, uint64_t seq, const uint8_t *digest)
{
    if (seq == 0 || seq % r->cfg.checkpoint_interval != 0)
        return NULL;
    const struct replica_snap *s = &r->cu.snaps[(seq / r->cfg.checkpoint_interval) % r->cu.nsnaps];
    if (s->seq != seq || memcmp(s->digest, digest, BFTKV_DIGEST_SIZE) != 0)
        return NULL;
    return s;
}

/* ---- Serving ------------------------------------------------------------------- */

static size_t state_bound(const struct pbft_replica *r, uint32_t data_len)
{
    return WIRE_HEADER_SIZE + WIRE_STATE_FIXED + (size_t)data_len + (size_t)r->cfg.n * BFTKV_MAC_SIZE;
}

/* Encode st (its data already in place or elsewhere) as a STATE to `to`. */
static void state_send(struct pbft_replica *r, uint16_t to, uint64_t seq, const struct wire_state *st,
                       struct pbft_out *out)
{
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_state(dst, cap, r->cfg.group, r->cfg.id, r->cfg.n, r->view, seq, st, &auth_off);
    BFTKV_ASSERT(len > 0); /* the caller checked the room */
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    pbft_out_commit(out, PBFT_DEST_REPLICA, to, len);
}

/* Store records from (shard, cursor) on, shard after shard, while they fit. */
static void chunk_fill_store(const struct replica_snap *s, struct wire_state *st, uint8_t *data)
{
    const struct store_snapshot *snap = s->snap;
    uint32_t nshards = store_snapshot_shard_count(snap);
    uint32_t shard = st->from.shard;
    uint64_t cursor = st->from.cursor;
    size_t used = 0;
    while (shard < nshards) {
        size_t len = 0;
        bool done = false;
        int rc = store_snapshot_shard_encode(snap, shard, &cursor, data + used, WIRE_STATE_DATA_MAX - used, &len,
                                             &done);
        if (rc != 0) {
            /* The next record needs more room than is left; one always fits an
             * empty chunk (WIRE_STATE_DATA_MAX is one maximal record). */
            BFTKV_ASSERT(rc == BFTKV_E_BUF_TOO_SMALL);
            BFTKV_ASSERT(used > 0);
            break;
        }
        used += len;
        if (!done)
            break;
        shard++;
        cursor = 0;
    }
    st->shards = nshards;
    st->data_len = (uint32_t)used;
    if (shard < nshards) {
        st->next = (struct wire_state_pos){.part = WIRE_PART_STORE, .shard = shard, .cursor = cursor};
    } else {
        st->next = (struct wire_state_pos){.part = WIRE_PART_RCACHE, .shard = 0, .cursor = 0};
    }
}

/* The wire key of reply-cache entry i (wire.h, STATE). */
static uint32_t rc_key(const struct pbft_replica *r, uint64_t i)
{
    return (uint32_t)((i / r->cfg.lanes) << 16 | (i % r->cfg.lanes));
}

/* Reply-cache entries (those ever written) from key cursor on, while they fit.
 * Keys are client << 16 | lane, so positions mean the same to a fetcher whose
 * client or lane counts differ from ours (a rolling change of the config). */
static void chunk_fill_rcache(const struct pbft_replica *r, const struct replica_snap *s, struct wire_state *st,
                              uint8_t *data)
{
    uint32_t lanes = r->cfg.lanes;
    uint64_t client = st->from.cursor >> 16, lane = st->from.cursor & 0xffffu;
    uint64_t i = lane < lanes ? client * lanes + lane : (client + 1u) * lanes;
    size_t used = 0;
    for (; i < r->rc_entries; i++) {
        const struct replica_rc_entry *e = &s->rc[i];
        if (e->timestamp == 0)
            continue;
        struct wire_rc_entry we = {
            .key = rc_key(r, i),
            .timestamp = e->timestamp,
            .status = e->status,
            .op = e->op,
            .result_len = e->result_len,
            .digest = e->digest,
            .result = e->result,
        };
        size_t w = wire_rc_entry_put(data + used, WIRE_STATE_DATA_MAX - used, &we);
        if (w == 0)
            break;
        used += w;
    }
    BFTKV_ASSERT(i >= r->rc_entries || used > 0); /* an entry always fits an empty chunk */
    st->shards = store_snapshot_shard_count(s->snap);
    st->data_len = (uint32_t)used;
    if (i < r->rc_entries) {
        st->next = (struct wire_state_pos){.part = WIRE_PART_RCACHE, .shard = 0, .cursor = rc_key(r, i)};
    } else {
        st->next = (struct wire_state_pos){.part = WIRE_PART_END, .shard = 0, .cursor = 0};
    }
}

static bool ignore_fetch(struct pbft_replica *r, const struct wire_msg *m)
{
    return !replica_msg_from_peer(r, m);
}

void replica_fetch_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_fetch(r, m))
        return;
    if (m->u.fetch.pos.part == WIRE_PART_REQUEST) {
        replica_request_fetch_serve(r, m, out); /* a large request, not state */
        return;
    }
    const struct wire_fetch *f = &m->u.fetch;
    const struct replica_snap *s = snap_find(r, m->h.seq, f->digest);
    struct wire_state st;
    memset(&st, 0, sizeof st);
    st.digest = f->digest;
    if (s == NULL) {
        /* Released (a newer checkpoint is stable here), never taken, or another
         * digest: say so, and the asker tries elsewhere at once. */
        st.kind = WIRE_STATE_MISSING;
        if (!pbft_out_room(out, state_bound(r, 0), 1)) {
            r->stats.dropped_full++;
            return;
        }
        state_send(r, m->h.sender, m->h.seq, &st, out);
        return;
    }
    /* The position came off the wire: the encoder asserts on one it did not
     * hand out, so check it against this snapshot first. */
    bool valid = f->pos.part == WIRE_PART_STORE ? store_snapshot_cursor_valid(s->snap, f->pos.shard, f->pos.cursor)
                                                : f->pos.cursor <= r->rc_entries;
    if (!valid) {
        replica_drop(r, WIRE_DROP_BAD_FIELD);
        return;
    }
    /* Up to count consecutive chunks, each encoded in place at the outbox tail;
     * the last one says so, and a chunk is the last whenever the outbox could
     * not take another or the asker's share of this interval is used up (it
     * asks again from where the answer ends). */
    uint16_t j = m->h.sender;
    if (r->now_ns >= r->cu.serve_ns[j] + r->cfg.retransmit_ns) {
        r->cu.serve_ns[j] = r->now_ns;
        r->cu.served[j] = 0;
    }
    size_t bound = state_bound(r, WIRE_STATE_DATA_MAX);
    if (!pbft_out_room(out, bound, 1) || r->cu.served[j] >= CATCHUP_SERVE_CHUNKS_PER_R) {
        r->stats.dropped_full++; /* the asker asks again */
        return;
    }
    st.kind = WIRE_STATE_CHUNK;
    st.next = f->pos;
    for (uint32_t i = 0; i < f->count; i++) {
        r->cu.served[j]++;
        bool last = i + 1u == f->count || !pbft_out_room(out, 2u * bound, 2)
                    || r->cu.served[j] >= CATCHUP_SERVE_CHUNKS_PER_R;
        size_t cap = 0;
        uint8_t *data = wire_state_data_at(pbft_out_tail(out, &cap));
        st.from = st.next;
        st.data = data;
        if (st.from.part == WIRE_PART_STORE)
            chunk_fill_store(s, &st, data);
        else
            chunk_fill_rcache(r, s, &st, data);
        last = last || st.next.part == WIRE_PART_END;
        st.flags = last ? WIRE_STATE_LAST : 0;
        state_send(r, j, m->h.seq, &st, out);
        r->stats.state_chunks_served++;
        if (last)
            break;
    }
}

int pbft_replica_state_chunk(const struct pbft_replica *r, uint64_t seq, const struct wire_state_pos *pos,
                             uint8_t *data, struct wire_state *st)
{
    BFTKV_ASSERT(r != NULL && pos != NULL && data != NULL && st != NULL);
    const struct replica_snap *s = NULL;
    if (seq != 0 && seq % r->cfg.checkpoint_interval == 0) {
        s = &r->cu.snaps[(seq / r->cfg.checkpoint_interval) % r->cu.nsnaps];
        s = s->seq == seq && s->snap != NULL ? s : NULL;
    }
    if (s == NULL)
        return BFTKV_E_NOT_FOUND;
    bool valid = pos->part == WIRE_PART_STORE    ? store_snapshot_cursor_valid(s->snap, pos->shard, pos->cursor)
                 : pos->part == WIRE_PART_RCACHE ? pos->cursor <= UINT32_MAX
                                                 : false;
    if (!valid)
        return BFTKV_E_INVAL;
    memset(st, 0, sizeof *st);
    st->kind = WIRE_STATE_CHUNK;
    st->digest = s->digest;
    st->from = *pos;
    st->data = data;
    if (pos->part == WIRE_PART_STORE)
        chunk_fill_store(s, st, data);
    else
        chunk_fill_rcache(r, s, st, data);
    st->flags = st->next.part == WIRE_PART_END ? WIRE_STATE_LAST : 0;
    return 0;
}

void replica_statetransfer_proof_send(struct pbft_replica *r, uint16_t to, struct pbft_out *out)
{
    if (r->low == 0)
        return;
    const struct replica_ckpt *c = &r->ckpts[(r->low / r->cfg.checkpoint_interval) % r->ckpt_count];
    if (c->seq != r->low || !c->stable)
        return;
    uint8_t data[BFTKV_REPLICAS_MAX * WIRE_CHECKPOINT_MSG_SIZE];
    uint32_t len = 0;
    for (uint64_t b = c->bits; b != 0; b &= b - 1u) {
        unsigned j = (unsigned)__builtin_ctzll(b);
        if (memcmp(c->digest[j], c->own_digest, BFTKV_DIGEST_SIZE) != 0)
            continue;
        memcpy(data + len, c->msgs + (size_t)j * r->ckpt_msg_len, r->ckpt_msg_len);
        len += r->ckpt_msg_len;
    }
    struct wire_state st;
    memset(&st, 0, sizeof st);
    st.kind = WIRE_STATE_PROOF;
    st.digest = c->own_digest;
    st.data = data;
    st.data_len = len;
    if (!pbft_out_room(out, state_bound(r, len), 1)) {
        r->stats.dropped_full++;
        return;
    }
    state_send(r, to, r->low, &st, out);
}
