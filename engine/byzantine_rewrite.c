/* The Byzantine rewriter's larger lies (engine/byzantine.h): an equivocating
 * primary's second batch, VIEW-CHANGEs and NEW-VIEWs that claim what never
 * happened, and STATE chunks with a wrong value. Each decodes the engine's
 * message, rebuilds it with the lie, and re-authenticates it with the faulty
 * replica's own keys: the correct replicas must catch the lie by the protocol's
 * rules, not by a bad MAC.
 */
#include "engine/byzantine_internal.h"

#include <string.h>

#include "common/assert.h"
#include "engine/pbft.h"
#include "engine/wire_le.h"

/* ---- Equivocation (TOCS 2002 §4.2: a faulty primary's two PRE-PREPAREs) ------------ */

/* The B version of a PRE-PREPARE: the same entries in reverse order, so the same
 * requests execute in another order (a different batch digest, and a different
 * state whenever two of them touch one key). NULL when the batch has fewer than
 * two entries (nothing to reorder). The first call for a (view, seq) builds it;
 * later calls (other B destinations, retransmissions) return the same bytes. */
static const uint8_t *byz_equivocal_preprepare(struct byz *b, const uint8_t *msg, size_t len, uint32_t *out_len)
{
    struct wire_header h;
    if (!byz_header(msg, len, &h))
        return NULL;
    struct byz_equiv_slot *e = &b->eq[h.seq % BYZ_EQUIV_RING];
    if (e->valid && e->seq == h.seq && e->view == h.view) {
        *out_len = e->len;
        return e->len ? e->msg : NULL;
    }
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &b->ctx.lim, &m, &used, NULL) != 0)
        return NULL;
    e->valid = true;
    e->seq = h.seq;
    e->view = h.view;
    e->len = 0;
    memcpy(e->da, m.u.batch.digest, BFTKV_DIGEST_SIZE);
    if (m.u.batch.count < 2)
        return NULL;
    uint32_t off = 0;
    uint32_t k = 0;
    struct wire_batch_entry x;
    while (k < BFTKV_BATCH_REQUESTS_MAX && wire_batch_next(&m, &off, &x) == 1)
        b->list[k++] = x;
    size_t at = 0;
    for (uint32_t i = k; i-- > 0;) {
        const struct wire_batch_entry *y = &b->list[i];
        size_t w = y->kind == WIRE_ENTRY_INLINE
                       ? wire_entry_inline(b->entries + at, BFTKV_DATAGRAM_MAX - at, y->bytes, y->len)
                       : wire_entry_digest(b->entries + at, BFTKV_DATAGRAM_MAX - at, y->request_digest, y->client,
                                           y->lane, y->timestamp);
        BFTKV_ASSERT(w > 0);
        at += w;
    }
    size_t auth_off;
    size_t n = wire_encode_preprepare(b->scratch, BFTKV_DATAGRAM_MAX, h.group, h.sender, b->ctx.lim.n, h.view,
                                      h.seq, b->entries, (uint32_t)at, (uint16_t)k, &auth_off);
    BFTKV_ASSERT(n > 0);
    BFTKV_ASSERT(n <= BFTKV_DATAGRAM_MAX);
    auth_authenticator_fill(b->ctx.auth, b->scratch, n, auth_off);
    memcpy(e->msg, b->scratch, n);
    e->len = (uint32_t)n;
    memcpy(e->db, b->scratch + WIRE_HEADER_SIZE, BFTKV_DIGEST_SIZE);
    *out_len = (uint32_t)n;
    return e->msg;
}

/* ---- Bogus VIEW-CHANGE and NEW-VIEW (TOCS 2002 §4.4) -------------------------------- */

static void byz_random_digest(struct byz *b, uint8_t d[BFTKV_DIGEST_SIZE])
{
    for (int i = 0; i < 4; i++) {
        uint64_t x = prng_next(&b->rng);
        memcpy(d + 8 * i, &x, 8);
    }
}

/* The digest a lying VIEW-CHANGE claims for seq: an equivocating primary's B
 * batch when it has one (a real batch some backups pre-prepared), else random
 * (bogus-view-change); false to leave the entry alone. */
static bool byz_claimed_digest(struct byz *b, uint64_t seq, uint8_t d[BFTKV_DIGEST_SIZE])
{
    if (b->mode == BYZ_EQUIVOCATE) {
        const struct byz_equiv_slot *e = &b->eq[seq % BYZ_EQUIV_RING];
        if (!e->valid || e->seq != seq || e->len == 0)
            return false;
        memcpy(d, e->db, BFTKV_DIGEST_SIZE);
        return true;
    }
    byz_random_digest(b, d);
    return true;
}

bool byz_bogus_view_change(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                           byz_send_fn *send, void *arg)
{
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &b->ctx.lim, &m, &used, NULL) != 0 || m.h.type != WIRE_VIEW_CHANGE || m.h.view == 0)
        return false;
    uint32_t cap = BFTKV_LOG_WINDOW_MAX + 1u;
    if (m.u.view_change.ncp > cap || m.u.view_change.np > cap || m.u.view_change.nq > cap)
        return false;
    struct wire_view_change_entry *cp = b->view_change_entries;
    struct wire_view_change_entry *p = cp + cap, *q = cp + 2u * cap;
    for (uint32_t i = 0; i < m.u.view_change.ncp; i++)
        wire_view_change_checkpoint(&m, i, &cp[i]);
    for (uint32_t i = 0; i < m.u.view_change.np; i++) {
        wire_view_change_prepared(&m, i, &p[i]);
        uint8_t d[BFTKV_DIGEST_SIZE];
        if (byz_claimed_digest(b, p[i].seq, d)) {
            memcpy(p[i].digest, d, BFTKV_DIGEST_SIZE);
            p[i].view = m.h.view - 1u;
        }
    }
    for (uint32_t i = 0; i < m.u.view_change.nq; i++) {
        wire_view_change_preprepared(&m, i, &q[i]);
        if (i > 0 && q[i - 1].seq == q[i].seq)
            continue; /* the first Q entry of a seq carries the claim */
        for (uint32_t j = 0; j < m.u.view_change.np; j++) {
            if (p[j].seq == q[i].seq) {
                memcpy(q[i].digest, p[j].digest, BFTKV_DIGEST_SIZE);
                q[i].view = p[j].view;
                break;
            }
        }
    }
    if (b->mode == BYZ_BOGUS_VIEW_CHANGE && m.u.view_change.ncp > 0 && cp[m.u.view_change.ncp - 1].seq > 0
        && prng_below(&b->rng, 2) == 0)
        byz_random_digest(b, cp[m.u.view_change.ncp - 1].digest);
    /* Q's digests must stay distinct within a seq (the encoder asserts the
     * wire's rules): give up on a rewrite that breaks that. */
    for (uint32_t i = 1; i < m.u.view_change.nq; i++)
        for (uint32_t j = i; j-- > 0 && q[j].seq == q[i].seq;)
            if (memcmp(q[j].digest, q[i].digest, BFTKV_DIGEST_SIZE) == 0)
                return false;
    size_t auth_off;
    size_t n = wire_encode_view_change(b->scratch, BFTKV_DATAGRAM_MAX, m.h.group, m.h.sender, m.h.view, m.h.seq, cp,
                                       m.u.view_change.ncp, p, m.u.view_change.np, q, m.u.view_change.nq, &auth_off);
    if (n == 0)
        return false;
    auth_sign(b->ctx.auth, b->scratch, n, auth_off);
    b->stats.corrupted++;
    send(arg, kind, id, b->scratch, n);
    return true;
}

/* A NEW-VIEW with one choice replaced by a random digest, re-signed. */
bool byz_bogus_new_view(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                        byz_send_fn *send, void *arg)
{
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &b->ctx.lim, &m, &used, NULL) != 0 || m.h.type != WIRE_NEW_VIEW || m.u.nv.nch == 0)
        return false;
    const uint8_t *d;
    uint8_t xf;
    wire_nv_choice(&m, (uint32_t)prng_below(&b->rng, m.u.nv.nch), &d, &xf);
    size_t off = (size_t)(d - msg);
    memcpy(b->scratch, msg, len);
    byz_random_digest(b, b->scratch + off);
    return byz_send_altered(b, kind, id, len, &m.h, send, arg);
}

/* ---- Lying STATE (TOCS 2002 §5.3) ----------------------------------------------------- */

/* A STATE chunk of store records with one value byte flipped, re-MACed. */
bool byz_lying_state(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len, byz_send_fn *send,
                     void *arg)
{
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &b->ctx.lim, &m, &used, NULL) != 0 || m.h.type != WIRE_STATE || m.u.state.data_len == 0)
        return false;
    /* Walk the data as store records (le16 klen | le32 vlen | key | value); lie
     * only when it parses exactly, in the last byte of the first value. */
    const uint8_t *d = m.u.state.data;
    uint32_t dl = m.u.state.data_len, at = 0;
    int64_t target = -1;
    while (at < dl) {
        if (dl - at < 6)
            return false;
        uint32_t klen = le16_load(d + at), vlen = le32_load(d + at + 2);
        if (klen == 0 || (uint64_t)klen + vlen > dl - at - 6)
            return false;
        if (vlen > 0 && target < 0)
            target = (int64_t)(at + 6 + klen + vlen - 1);
        at += 6 + klen + vlen;
    }
    if (target < 0)
        return false;
    size_t off = (size_t)(d - msg) + (size_t)target;
    memcpy(b->scratch, msg, len);
    b->scratch[off] ^= 0x01;
    return byz_send_altered(b, kind, id, len, &m.h, send, arg);
}

/* ---- equivocate's filter ---------------------------------------------------------------- */

void byz_equivocate(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len, byz_send_fn *send,
                    void *arg)
{
    struct wire_header h;
    if (len > 3 && msg[3] == WIRE_VIEW_CHANGE && byz_bogus_view_change(b, kind, id, msg, len, send, arg))
        return;
    if (kind != PBFT_DEST_REPLICA || id >= b->ctx.n || !b->b_group[id] || !byz_header(msg, len, &h)) {
        send(arg, kind, id, msg, len);
        return;
    }
    if (h.type == WIRE_PREPREPARE) {
        uint32_t blen;
        const uint8_t *bv = byz_equivocal_preprepare(b, msg, len, &blen);
        if (bv) {
            b->stats.equivocated++;
            send(arg, kind, id, bv, blen);
            return;
        }
    } else if ((h.type == WIRE_PREPARE || h.type == WIRE_COMMIT) && h.body_len >= BFTKV_DIGEST_SIZE) {
        const struct byz_equiv_slot *e = &b->eq[h.seq % BYZ_EQUIV_RING];
        if (e->valid && e->seq == h.seq && e->view == h.view && e->len > 0 &&
            memcmp(msg + WIRE_HEADER_SIZE, e->da, BFTKV_DIGEST_SIZE) == 0) {
            byz_send_with_digest(b, kind, id, msg, len, &h, e->db, send, arg);
            return;
        }
    }
    send(arg, kind, id, msg, len);
}
