/* The codec of the view-change messages, VIEW-CHANGE and NEW-VIEW (TOCS 2002
 * §4.4-§4.5; engine/wire.h has the byte layout): encoders, the body validator
 * that wire.c's decoder calls for these two types, and accessors for the
 * entries of a decoded message.
 *
 * The validator checks everything the format alone implies -- counts against
 * the maxima and body_len, sequence numbers inside the window above the
 * message's checkpoint, the order of the entries, views below the message's
 * view, the NEW-VIEW's replica ids and flags -- so the replica's code that reads
 * the sets can rely on their shape. What depends on the group's configuration
 * (L, K, the quorum) is the replica's check (viewchange.c, newview.c).
 * Signatures are checked by auth.c, after decoding, like every other type.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/wire.h"
#include "engine/wire_internal.h"

#define LMAX ((uint64_t)BFTKV_LOG_WINDOW_MAX)

/* Offsets inside the fixed parts and the entries (wire.h has the layouts). */
enum {
    VIEW_CHANGE_OFF_NCP = 0,
    VIEW_CHANGE_OFF_NP = 2,
    VIEW_CHANGE_OFF_NQ = 4,
    VIEW_CHANGE_OFF_PAD = 6,

    CE_OFF_SEQ = 0,
    CE_OFF_DIGEST = 8,

    PE_OFF_SEQ = 0,
    PE_OFF_VIEW = 8,
    PE_OFF_DIGEST = 16,

    NV_OFF_DIGEST = 0,
    NV_OFF_NVC = 32,
    NV_OFF_NCH = 34,
    NV_OFF_PAD = 36,

    NVE_OFF_REPLICA = 0,
    NVE_OFF_DIGEST = 2,

    NXE_OFF_DIGEST = 0,
    NXE_OFF_FLAGS = 32,
};
_Static_assert(VIEW_CHANGE_OFF_PAD + 2 == WIRE_VIEW_CHANGE_FIXED, "view-change fixed part");
_Static_assert(CE_OFF_DIGEST + BFTKV_DIGEST_SIZE == WIRE_VIEW_CHANGE_CKPT_ENTRY, "checkpoint entry");
_Static_assert(PE_OFF_DIGEST + BFTKV_DIGEST_SIZE == WIRE_VIEW_CHANGE_PQ_ENTRY, "P/Q entry");
_Static_assert(NV_OFF_PAD + 4 == WIRE_NV_FIXED, "new-view fixed part");
_Static_assert(NVE_OFF_DIGEST + BFTKV_DIGEST_SIZE == WIRE_NV_VIEW_CHANGE_ENTRY, "new-view VIEW-CHANGE entry");
_Static_assert(NXE_OFF_FLAGS + 1 == WIRE_NV_CHOICE_ENTRY, "new-view choice entry");
_Static_assert(WIRE_VIEW_CHANGE_Q_PER_SEQ == 2u, "the Q validator compares each entry with the one before");
_Static_assert(BFTKV_LOG_WINDOW_MAX * WIRE_VIEW_CHANGE_Q_PER_SEQ <= UINT16_MAX, "counts fit u16");

/* ---- Decoding -------------------------------------------------------------------- */

static uint64_t pq_seq(const uint8_t *e)
{
    return le64_load(e + PE_OFF_SEQ);
}

/* A P or Q entry of a VIEW-CHANGE(v) with low watermark h: h < seq <= h + LMAX,
 * prepared in a view below v. */
static bool pq_entry_in_range(const uint8_t *e, uint64_t h, uint64_t v)
{
    uint64_t seq = pq_seq(e);
    return seq > h && seq <= h + LMAX && le64_load(e + PE_OFF_VIEW) < v;
}

static enum wire_drop decode_view_change(struct wire_msg *m)
{
    const uint8_t *b = m->body;
    if (m->h.body_len < WIRE_VIEW_CHANGE_FIXED)
        return WIRE_DROP_BAD_LENGTH;
    uint16_t ncp = le16_load(b + VIEW_CHANGE_OFF_NCP), np = le16_load(b + VIEW_CHANGE_OFF_NP),
             nq = le16_load(b + VIEW_CHANGE_OFF_NQ);
    if (le16_load(b + VIEW_CHANGE_OFF_PAD) != 0 || ncp > LMAX + 1u || np > LMAX
        || nq > WIRE_VIEW_CHANGE_Q_PER_SEQ * LMAX)
        return WIRE_DROP_BAD_FIELD;
    uint64_t want = (uint64_t)WIRE_VIEW_CHANGE_FIXED + (uint64_t)ncp * WIRE_VIEW_CHANGE_CKPT_ENTRY
                    + ((uint64_t)np + nq) * WIRE_VIEW_CHANGE_PQ_ENTRY;
    if (want != m->h.body_len)
        return WIRE_DROP_BAD_LENGTH;
    uint64_t v = m->h.view, h = m->h.seq;
    if (v == 0 || h > UINT64_MAX - LMAX)
        return WIRE_DROP_BAD_FIELD;
    m->u.view_change.ncp = ncp;
    m->u.view_change.np = np;
    m->u.view_change.nq = nq;
    m->u.view_change.cp = b + WIRE_VIEW_CHANGE_FIXED;
    m->u.view_change.p = m->u.view_change.cp + (size_t)ncp * WIRE_VIEW_CHANGE_CKPT_ENTRY;
    m->u.view_change.q = m->u.view_change.p + (size_t)np * WIRE_VIEW_CHANGE_PQ_ENTRY;

    /* C: [h, h+LMAX], strictly increasing. */
    for (uint32_t i = 0; i < ncp; i++) {
        uint64_t seq = le64_load(m->u.view_change.cp + (size_t)i * WIRE_VIEW_CHANGE_CKPT_ENTRY + CE_OFF_SEQ);
        if (seq < h || seq > h + LMAX)
            return WIRE_DROP_BAD_FIELD;
        if (i > 0
            && seq <= le64_load(m->u.view_change.cp + (size_t)(i - 1u) * WIRE_VIEW_CHANGE_CKPT_ENTRY + CE_OFF_SEQ))
            return WIRE_DROP_BAD_FIELD;
    }
    /* P: (h, h+LMAX], strictly increasing (one entry per seq), view < v. */
    for (uint32_t i = 0; i < np; i++) {
        const uint8_t *e = m->u.view_change.p + (size_t)i * WIRE_VIEW_CHANGE_PQ_ENTRY;
        if (!pq_entry_in_range(e, h, v) || (i > 0 && pq_seq(e) <= pq_seq(e - WIRE_VIEW_CHANGE_PQ_ENTRY)))
            return WIRE_DROP_BAD_FIELD;
    }
    /* Q: (h, h+LMAX], non-decreasing, at most two per seq with distinct digests,
     * view < v. */
    for (uint32_t i = 0; i < nq; i++) {
        const uint8_t *e = m->u.view_change.q + (size_t)i * WIRE_VIEW_CHANGE_PQ_ENTRY;
        if (!pq_entry_in_range(e, h, v))
            return WIRE_DROP_BAD_FIELD;
        if (i == 0)
            continue;
        uint64_t seq = pq_seq(e);
        const uint8_t *prev = e - WIRE_VIEW_CHANGE_PQ_ENTRY;
        uint64_t pseq = pq_seq(prev);
        if (seq < pseq)
            return WIRE_DROP_BAD_FIELD;
        if (seq == pseq) {
            bool third = i >= 2 && pq_seq(prev - WIRE_VIEW_CHANGE_PQ_ENTRY) == seq;
            if (third || memcmp(e + PE_OFF_DIGEST, prev + PE_OFF_DIGEST, BFTKV_DIGEST_SIZE) == 0)
                return WIRE_DROP_BAD_FIELD;
        }
    }
    return WIRE_DROP_COUNT;
}

static enum wire_drop decode_new_view(struct wire_msg *m, const struct wire_limits *lim)
{
    const uint8_t *b = m->body;
    if (m->h.body_len < WIRE_NV_FIXED)
        return WIRE_DROP_BAD_LENGTH;
    uint16_t nvc = le16_load(b + NV_OFF_NVC), nch = le16_load(b + NV_OFF_NCH);
    if (le32_load(b + NV_OFF_PAD) != 0 || nvc == 0 || nvc > lim->n || nch > LMAX)
        return WIRE_DROP_BAD_FIELD;
    uint64_t want =
        (uint64_t)WIRE_NV_FIXED + (uint64_t)nvc * WIRE_NV_VIEW_CHANGE_ENTRY + (uint64_t)nch * WIRE_NV_CHOICE_ENTRY;
    if (want != m->h.body_len)
        return WIRE_DROP_BAD_LENGTH;
    if (m->h.view == 0 || m->h.seq > UINT64_MAX - LMAX)
        return WIRE_DROP_BAD_FIELD;
    m->u.nv.ckpt_digest = b + NV_OFF_DIGEST;
    m->u.nv.nvc = nvc;
    m->u.nv.nch = nch;
    m->u.nv.vcs = b + WIRE_NV_FIXED;
    m->u.nv.choices = m->u.nv.vcs + (size_t)nvc * WIRE_NV_VIEW_CHANGE_ENTRY;
    for (uint32_t i = 0; i < nvc; i++) {
        uint16_t id = le16_load(m->u.nv.vcs + (size_t)i * WIRE_NV_VIEW_CHANGE_ENTRY + NVE_OFF_REPLICA);
        if (id >= lim->n)
            return WIRE_DROP_BAD_FIELD;
        if (i > 0 && id <= le16_load(m->u.nv.vcs + (size_t)(i - 1u) * WIRE_NV_VIEW_CHANGE_ENTRY + NVE_OFF_REPLICA))
            return WIRE_DROP_BAD_FIELD;
    }
    for (uint32_t i = 0; i < nch; i++) {
        uint8_t fl = m->u.nv.choices[(size_t)i * WIRE_NV_CHOICE_ENTRY + NXE_OFF_FLAGS];
        if ((fl & ~(unsigned)WIRE_NV_NEED) != 0)
            return WIRE_DROP_BAD_FIELD;
    }
    return WIRE_DROP_COUNT;
}

enum wire_drop wire_viewchange_decode_body(struct wire_msg *msg, const struct wire_limits *lim)
{
    BFTKV_ASSERT(msg->h.type == WIRE_VIEW_CHANGE || msg->h.type == WIRE_NEW_VIEW);
    if (msg->h.type == WIRE_VIEW_CHANGE)
        return decode_view_change(msg);
    return decode_new_view(msg, lim);
}

/* ---- Accessors ------------------------------------------------------------------- */

void wire_view_change_checkpoint(const struct wire_msg *m, uint32_t i, struct wire_view_change_entry *e)
{
    BFTKV_ASSERT(m->h.type == WIRE_VIEW_CHANGE);
    BFTKV_ASSERT(i < m->u.view_change.ncp);
    const uint8_t *p = m->u.view_change.cp + (size_t)i * WIRE_VIEW_CHANGE_CKPT_ENTRY;
    e->seq = le64_load(p + CE_OFF_SEQ);
    e->view = 0;
    memcpy(e->digest, p + CE_OFF_DIGEST, BFTKV_DIGEST_SIZE);
}

static void pq_entry(const uint8_t *p, struct wire_view_change_entry *e)
{
    e->seq = le64_load(p + PE_OFF_SEQ);
    e->view = le64_load(p + PE_OFF_VIEW);
    memcpy(e->digest, p + PE_OFF_DIGEST, BFTKV_DIGEST_SIZE);
}

void wire_view_change_prepared(const struct wire_msg *m, uint32_t i, struct wire_view_change_entry *e)
{
    BFTKV_ASSERT(m->h.type == WIRE_VIEW_CHANGE);
    BFTKV_ASSERT(i < m->u.view_change.np);
    pq_entry(m->u.view_change.p + (size_t)i * WIRE_VIEW_CHANGE_PQ_ENTRY, e);
}

void wire_view_change_preprepared(const struct wire_msg *m, uint32_t i, struct wire_view_change_entry *e)
{
    BFTKV_ASSERT(m->h.type == WIRE_VIEW_CHANGE);
    BFTKV_ASSERT(i < m->u.view_change.nq);
    pq_entry(m->u.view_change.q + (size_t)i * WIRE_VIEW_CHANGE_PQ_ENTRY, e);
}

void wire_nv_view_change(const struct wire_msg *m, uint32_t i, uint16_t *replica, const uint8_t **digest)
{
    BFTKV_ASSERT(m->h.type == WIRE_NEW_VIEW);
    BFTKV_ASSERT(i < m->u.nv.nvc);
    const uint8_t *p = m->u.nv.vcs + (size_t)i * WIRE_NV_VIEW_CHANGE_ENTRY;
    *replica = le16_load(p + NVE_OFF_REPLICA);
    *digest = p + NVE_OFF_DIGEST;
}

void wire_nv_choice(const struct wire_msg *m, uint32_t i, const uint8_t **digest, uint8_t *xflags)
{
    BFTKV_ASSERT(m->h.type == WIRE_NEW_VIEW);
    BFTKV_ASSERT(i < m->u.nv.nch);
    const uint8_t *p = m->u.nv.choices + (size_t)i * WIRE_NV_CHOICE_ENTRY;
    *digest = p + NXE_OFF_DIGEST;
    *xflags = p[NXE_OFF_FLAGS];
}

void wire_null_batch_digest(uint8_t out[32])
{
    wire_digest(out, NULL, 0);
}

/* ---- Encoding -------------------------------------------------------------------- */

/* Header, zeroed signature area, *auth_off; 0 when cap is too small. */
static size_t frame(uint8_t *buf, size_t cap, uint8_t type, uint16_t group, uint16_t sender, uint64_t view,
                    uint64_t seq, uint64_t body_len, size_t *auth_off)
{
    return wire_frame(buf, cap, type, group, sender, view, seq, body_len, (uint16_t)WIRE_SIG_SIZE, auth_off);
}

static uint8_t *pq_put(uint8_t *p, const struct wire_view_change_entry *e)
{
    le64_store(p + PE_OFF_SEQ, e->seq);
    le64_store(p + PE_OFF_VIEW, e->view);
    memcpy(p + PE_OFF_DIGEST, e->digest, BFTKV_DIGEST_SIZE);
    return p + WIRE_VIEW_CHANGE_PQ_ENTRY;
}

size_t wire_encode_view_change(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view, uint64_t h,
                               const struct wire_view_change_entry *cp, uint16_t ncp,
                               const struct wire_view_change_entry *p, uint16_t np,
                               const struct wire_view_change_entry *q, uint16_t nq, size_t *auth_off)
{
    BFTKV_ASSERT(view > 0);
    BFTKV_ASSERT(h <= UINT64_MAX - LMAX);
    BFTKV_ASSERT(ncp <= LMAX + 1u);
    BFTKV_ASSERT(np <= LMAX);
    BFTKV_ASSERT(nq <= WIRE_VIEW_CHANGE_Q_PER_SEQ * LMAX);
    uint64_t body = (uint64_t)WIRE_VIEW_CHANGE_FIXED + (uint64_t)ncp * WIRE_VIEW_CHANGE_CKPT_ENTRY
                    + ((uint64_t)np + nq) * WIRE_VIEW_CHANGE_PQ_ENTRY;
    size_t total = frame(buf, cap, WIRE_VIEW_CHANGE, group, sender, view, h, body, auth_off);
    if (total == 0)
        return 0;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    le16_store(b + VIEW_CHANGE_OFF_NCP, ncp);
    le16_store(b + VIEW_CHANGE_OFF_NP, np);
    le16_store(b + VIEW_CHANGE_OFF_NQ, nq);
    le16_store(b + VIEW_CHANGE_OFF_PAD, 0);
    uint8_t *w = b + WIRE_VIEW_CHANGE_FIXED;
    for (uint32_t i = 0; i < ncp; i++) {
        BFTKV_ASSERT(cp[i].seq >= h);
        BFTKV_ASSERT(cp[i].seq <= h + LMAX);
        BFTKV_ASSERT((i == 0 || cp[i].seq > cp[i - 1u].seq));
        le64_store(w + CE_OFF_SEQ, cp[i].seq);
        memcpy(w + CE_OFF_DIGEST, cp[i].digest, BFTKV_DIGEST_SIZE);
        w += WIRE_VIEW_CHANGE_CKPT_ENTRY;
    }
    for (uint32_t i = 0; i < np; i++) {
        BFTKV_ASSERT(p[i].seq > h);
        BFTKV_ASSERT(p[i].view < view);
        BFTKV_ASSERT((i == 0 || p[i].seq > p[i - 1u].seq));
        w = pq_put(w, &p[i]);
    }
    for (uint32_t i = 0; i < nq; i++) {
        BFTKV_ASSERT(q[i].seq > h);
        BFTKV_ASSERT(q[i].view < view);
        BFTKV_ASSERT((i == 0 || q[i].seq >= q[i - 1u].seq));
        w = pq_put(w, &q[i]);
    }
    BFTKV_ASSERT(w == b + body);
    return total;
}

size_t wire_encode_new_view(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view, uint64_t h,
                            const uint8_t ckpt_digest[32], const uint16_t *viewchange_ids,
                            const uint8_t (*viewchange_digests)[32], uint16_t nvc, const uint8_t (*choices)[32],
                            const uint8_t *xflags, uint16_t nch, size_t *auth_off)
{
    BFTKV_ASSERT(view > 0);
    BFTKV_ASSERT(h <= UINT64_MAX - LMAX);
    BFTKV_ASSERT(nvc >= 1);
    BFTKV_ASSERT(nvc <= BFTKV_REPLICAS_MAX);
    BFTKV_ASSERT(nch <= LMAX);
    uint64_t body =
        (uint64_t)WIRE_NV_FIXED + (uint64_t)nvc * WIRE_NV_VIEW_CHANGE_ENTRY + (uint64_t)nch * WIRE_NV_CHOICE_ENTRY;
    size_t total = frame(buf, cap, WIRE_NEW_VIEW, group, sender, view, h, body, auth_off);
    if (total == 0)
        return 0;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    memcpy(b + NV_OFF_DIGEST, ckpt_digest, BFTKV_DIGEST_SIZE);
    le16_store(b + NV_OFF_NVC, nvc);
    le16_store(b + NV_OFF_NCH, nch);
    le32_store(b + NV_OFF_PAD, 0);
    uint8_t *w = b + WIRE_NV_FIXED;
    for (uint32_t i = 0; i < nvc; i++) {
        BFTKV_ASSERT(i == 0 || viewchange_ids[i] > viewchange_ids[i - 1u]);
        le16_store(w + NVE_OFF_REPLICA, viewchange_ids[i]);
        memcpy(w + NVE_OFF_DIGEST, viewchange_digests[i], BFTKV_DIGEST_SIZE);
        w += WIRE_NV_VIEW_CHANGE_ENTRY;
    }
    for (uint32_t i = 0; i < nch; i++) {
        BFTKV_ASSERT((xflags[i] & ~(unsigned)WIRE_NV_NEED) == 0);
        memcpy(w + NXE_OFF_DIGEST, choices[i], BFTKV_DIGEST_SIZE);
        w[NXE_OFF_FLAGS] = xflags[i];
        w += WIRE_NV_CHOICE_ENTRY;
    }
    BFTKV_ASSERT(w == b + body);
    return total;
}
