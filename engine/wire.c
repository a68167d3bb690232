/* The wire codec: encoders for every message type and the validating, zero-copy
 * decoder (engine/wire.h has the byte layout).
 *
 * The decoder is the first code that touches bytes from the network, so it trusts
 * none of them: it checks the header, then the lengths the type implies,
 * then every body field, and for a PRE-PREPARE it walks the whole entries region,
 * decodes every inline REQUEST with the same rules, and recomputes the batch digest
 * D (TOCS 2002 §4.2: a backup accepts a pre-prepare only if D is the digest of the
 * batch it carries). A message that fails is counted under exactly one reason of
 * enum wire_drop and dropped. Authentication is a separate step (engine/auth.c).
 *
 * Integers are little-endian on the wire; loads and stores go through memcpy so
 * no pointer into a datagram is ever dereferenced at a misaligned type.
 */
#include "engine/wire.h"
#include "engine/wire_internal.h"

#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"

_Static_assert(WIRE_HEADER_SIZE == 32u, "header layout below is 32 bytes");
_Static_assert(WIRE_REQUEST_FIXED == 2u + 1u + 1u + 2u + 4u, "lane, op, rflags, klen, vlen");
_Static_assert(WIRE_REPLY_FIXED == 2u + 2u + 2u + 1u + 1u + 4u + BFTKV_DIGEST_SIZE,
               "client, lane, status, rflags, pad, result_len, result digest");
_Static_assert(WIRE_PP_FIXED == BFTKV_DIGEST_SIZE + 2u, "D, count");
_Static_assert(WIRE_PP_ENTRY_FIXED == 1u + 4u, "kind, len");
_Static_assert(WIRE_PP_DIGEST_ENTRY == BFTKV_DIGEST_SIZE + 2u + 2u + 8u, "digest, client, lane, ts");
_Static_assert(BFTKV_DIGEST_SIZE == crypto_generichash_BYTES, "BLAKE2b-256");
_Static_assert(BFTKV_REPLICAS_MAX * BFTKV_MAC_SIZE <= UINT16_MAX, "auth_len fits u16");
_Static_assert(BFTKV_BATCH_REQUESTS_MAX <= UINT16_MAX, "count fits u16");
_Static_assert(WIRE_SIG_SIZE == crypto_sign_BYTES, "Ed25519 signature");

/* Header field offsets. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 2,
    OFF_TYPE = 3,
    OFF_GROUP = 4,
    OFF_SENDER = 6,
    OFF_VIEW = 8,
    OFF_SEQ = 16,
    OFF_BODY_LEN = 24,
    OFF_AUTH_LEN = 28,
    OFF_FLAGS = 30,
};

/* Body field offsets, per type (wire.h has the layouts). */
enum {
    RQ_OFF_LANE = 0,
    RQ_OFF_OP = 2,
    RQ_OFF_RFLAGS = 3,
    RQ_OFF_KLEN = 4,
    RQ_OFF_VLEN = 6,

    RP_OFF_CLIENT = 0,
    RP_OFF_LANE = 2,
    RP_OFF_STATUS = 4,
    RP_OFF_RFLAGS = 6,
    RP_OFF_PAD = 7,
    RP_OFF_RESULT_LEN = 8,
    RP_OFF_RESULT_DIGEST = 12,

    PP_OFF_DIGEST = 0,
    PP_OFF_COUNT = 32,

    ENT_OFF_KIND = 0,
    ENT_OFF_LEN = 1,

    DENT_OFF_DIGEST = 0,
    DENT_OFF_CLIENT = 32,
    DENT_OFF_LANE = 34,
    DENT_OFF_TIMESTAMP = 36,
};
_Static_assert(RQ_OFF_VLEN + 4 == WIRE_REQUEST_FIXED, "request fixed part");
_Static_assert(RP_OFF_RESULT_DIGEST + BFTKV_DIGEST_SIZE == WIRE_REPLY_FIXED, "reply fixed part");
_Static_assert(RP_OFF_RFLAGS == WIRE_REPLY_RFLAGS_OFF, "reply rflags offset");
_Static_assert(PP_OFF_COUNT + 2 == WIRE_PP_FIXED, "pre-prepare fixed part");
_Static_assert(DENT_OFF_TIMESTAMP + 8 == WIRE_PP_DIGEST_ENTRY, "digest entry");

/* memmove that tolerates (NULL, 0): a zero-length key or value may come as NULL,
 * and a caller may have built a field in place inside the output buffer. */
static void bytes_copy(uint8_t *dst, const void *src, size_t len)
{
    if (len > 0) {
        memmove(dst, src, len);
    }
}

/* ---- Names, sizes, digests -------------------------------------------------------- */

const char *wire_drop_name(enum wire_drop reason)
{
    switch (reason) {
#define WIRE_DROP_NAME(name, text) case WIRE_DROP_##name: return #name;
        WIRE_DROP_LIST(WIRE_DROP_NAME)
#undef WIRE_DROP_NAME
    case WIRE_DROP_COUNT:
        break;
    }
    return "UNKNOWN";
}

uint16_t wire_auth_len(uint8_t type, uint16_t n)
{
    BFTKV_ASSERT(n >= 1);
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    switch (type) {
    case WIRE_REQUEST:
    case WIRE_PREPREPARE:
    case WIRE_PREPARE:
    case WIRE_COMMIT:
    case WIRE_STATUS: /* catch-up: the state digest q replicas signed is the real check */
    case WIRE_FETCH:
    case WIRE_STATE:
        return (uint16_t)(n * BFTKV_MAC_SIZE); /* one MAC per replica (TOCS 2002 §3.2) */
    case WIRE_REPLY:
        return (uint16_t)BFTKV_MAC_SIZE; /* one MAC, for the client */
    case WIRE_CHECKPOINT:
    case WIRE_VIEW_CHANGE:
    case WIRE_NEW_VIEW:
        return (uint16_t)WIRE_SIG_SIZE; /* Ed25519: shown to third parties */
    default:
        return 0;
    }
}

void wire_digest(uint8_t out[32], const void *data, size_t len)
{
    crypto_generichash(out, BFTKV_DIGEST_SIZE, data, len, NULL, 0);
}

void wire_request_digest(uint8_t out[32], const struct wire_msg *request)
{
    BFTKV_ASSERT(request->h.type == WIRE_REQUEST);
    /* The view hint is read as zero and WIRE_REQ_FULL_ALL as clear: a client that
     * learns of a new view retransmits with a new hint, and every retransmission
     * asks all replicas for the full result. Neither changes what is executed, and
     * the retransmission must keep the request's identity: a large request is
     * ordered by this digest, and a backup that missed the first copy takes the
     * retransmitted one for it (request.c). */
    uint8_t hdr[WIRE_HEADER_SIZE];
    memcpy(hdr, request->raw, WIRE_HEADER_SIZE);
    memset(hdr + OFF_VIEW, 0, 8);
    uint8_t fixed[WIRE_REQUEST_FIXED];
    BFTKV_ASSERT(request->h.body_len >= WIRE_REQUEST_FIXED); /* wire_decode checked it */
    memcpy(fixed, request->body, WIRE_REQUEST_FIXED);
    fixed[RQ_OFF_RFLAGS] &= (uint8_t)~WIRE_REQ_FULL_ALL;
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, BFTKV_DIGEST_SIZE);
    crypto_generichash_update(&st, hdr, sizeof hdr);
    crypto_generichash_update(&st, fixed, sizeof fixed);
    crypto_generichash_update(&st, request->body + WIRE_REQUEST_FIXED, request->h.body_len - WIRE_REQUEST_FIXED);
    crypto_generichash_final(&st, out, BFTKV_DIGEST_SIZE);
}

void wire_result_digest(uint8_t out[32], int16_t status, const void *result, size_t len)
{
    uint8_t st16[2];
    le16_store(st16, (uint16_t)status);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, BFTKV_DIGEST_SIZE);
    crypto_generichash_update(&st, st16, sizeof st16);
    if (len > 0) {
        crypto_generichash_update(&st, result, len);
    }
    crypto_generichash_final(&st, out, BFTKV_DIGEST_SIZE);
}

/* ---- Header ------------------------------------------------------------------------ */

void wire_header_write(uint8_t *buf, const struct wire_header *h)
{
    le16_store(buf + OFF_MAGIC, (uint16_t)WIRE_MAGIC);
    buf[OFF_VERSION] = (uint8_t)WIRE_VERSION;
    buf[OFF_TYPE] = h->type;
    le16_store(buf + OFF_GROUP, h->group);
    le16_store(buf + OFF_SENDER, h->sender);
    le64_store(buf + OFF_VIEW, h->view);
    le64_store(buf + OFF_SEQ, h->seq);
    le32_store(buf + OFF_BODY_LEN, h->body_len);
    le16_store(buf + OFF_AUTH_LEN, h->auth_len);
    le16_store(buf + OFF_FLAGS, h->flags);
}

void wire_header_read(const uint8_t *buf, struct wire_header *h)
{
    h->type = buf[OFF_TYPE];
    h->group = le16_load(buf + OFF_GROUP);
    h->sender = le16_load(buf + OFF_SENDER);
    h->view = le64_load(buf + OFF_VIEW);
    h->seq = le64_load(buf + OFF_SEQ);
    h->body_len = le32_load(buf + OFF_BODY_LEN);
    h->auth_len = le16_load(buf + OFF_AUTH_LEN);
    h->flags = le16_load(buf + OFF_FLAGS);
}

/* ---- Decoder ------------------------------------------------------------------------ */

/* A decode step's verdict: WIRE_DROP_COUNT means "accepted". */
#define DECODE_OK WIRE_DROP_COUNT

static enum wire_drop decode_request_body(const struct wire_msg *m, struct wire_request *rq)
{
    const uint8_t *b = m->body;
    if (m->h.body_len < WIRE_REQUEST_FIXED) {
        return WIRE_DROP_BAD_LENGTH;
    }
    rq->client = m->h.sender;
    rq->timestamp = m->h.seq;
    rq->lane = le16_load(b + RQ_OFF_LANE);
    rq->op = b[RQ_OFF_OP];
    rq->rflags = b[RQ_OFF_RFLAGS];
    rq->klen = le16_load(b + RQ_OFF_KLEN);
    rq->vlen = le32_load(b + RQ_OFF_VLEN);
    if (rq->klen == 0 || rq->klen > BFTKV_KEY_MAX || rq->vlen > BFTKV_VALUE_MAX) {
        return WIRE_DROP_BAD_FIELD;
    }
    /* klen and vlen are bounded above, so this sum cannot wrap. */
    if ((uint64_t)m->h.body_len != (uint64_t)WIRE_REQUEST_FIXED + rq->klen + rq->vlen) {
        return WIRE_DROP_BAD_LENGTH;
    }
    if (rq->op != WIRE_OP_PUT && rq->op != WIRE_OP_GET && rq->op != WIRE_OP_DEL) {
        return WIRE_DROP_BAD_FIELD;
    }
    if (rq->op != WIRE_OP_PUT && rq->vlen != 0) {
        return WIRE_DROP_BAD_FIELD; /* GET and DEL carry no value */
    }
    if ((rq->rflags & ~(unsigned)(WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL)) != 0) {
        return WIRE_DROP_BAD_FIELD;
    }
    if ((rq->rflags & WIRE_REQ_READONLY) != 0 && rq->op != WIRE_OP_GET) {
        return WIRE_DROP_BAD_FIELD; /* only a GET may take the read-only path */
    }
    rq->key = b + WIRE_REQUEST_FIXED;
    rq->value = rq->vlen > 0 ? rq->key + rq->klen : NULL;
    return DECODE_OK;
}

static enum wire_drop decode_reply_body(const struct wire_msg *m, const struct wire_limits *lim,
                                        struct wire_reply *rp)
{
    const uint8_t *b = m->body;
    if (m->h.body_len < WIRE_REPLY_FIXED) {
        return WIRE_DROP_BAD_LENGTH;
    }
    rp->client = le16_load(b + RP_OFF_CLIENT);
    rp->lane = le16_load(b + RP_OFF_LANE);
    rp->status = (int16_t)le16_load(b + RP_OFF_STATUS);
    rp->rflags = b[RP_OFF_RFLAGS];
    uint8_t pad = b[RP_OFF_PAD];
    rp->result_len = le32_load(b + RP_OFF_RESULT_LEN);
    rp->result_digest = b + RP_OFF_RESULT_DIGEST;
    if (rp->client >= lim->clients_max || pad != 0 || rp->result_len > BFTKV_VALUE_MAX
        || (rp->rflags & ~(unsigned)(WIRE_REPLY_FULL | WIRE_REPLY_READONLY | WIRE_REPLY_EPOCH)) != 0) {
        return WIRE_DROP_BAD_FIELD;
    }
    bool full = (rp->rflags & WIRE_REPLY_FULL) != 0;
    uint32_t ext = (rp->rflags & WIRE_REPLY_EPOCH) != 0 ? WIRE_REPLY_EPOCH_SIZE : 0u;
    uint64_t want = (uint64_t)WIRE_REPLY_FIXED + ext + (full ? rp->result_len : 0u);
    if ((uint64_t)m->h.body_len != want) {
        return WIRE_DROP_BAD_LENGTH;
    }
    rp->epoch = ext > 0 ? le64_load(b + WIRE_REPLY_FIXED) : 0u;
    if (ext > 0 && rp->epoch == 0) {
        return WIRE_DROP_BAD_FIELD; /* one encoding: no epoch is no flag */
    }
    rp->result = NULL;
    if (full) {
        /* The full result must be the one its digest names, so a client can match
         * replies by digest alone (TOCS 2002 §4.1: f+1 matching replies). */
        rp->result = b + WIRE_REPLY_FIXED + ext;
        uint8_t d[BFTKV_DIGEST_SIZE];
        wire_result_digest(d, rp->status, rp->result, rp->result_len);
        if (memcmp(d, rp->result_digest, sizeof d) != 0) {
            return WIRE_DROP_BAD_DIGEST;
        }
    }
    return DECODE_OK;
}

static enum wire_drop decode_message(const uint8_t *buf, size_t len, const struct wire_limits *lim,
                                     struct wire_msg *msg, size_t *consumed, bool request_only);

/* An INLINE entry: exactly one well-formed REQUEST of this group whose header and
 * body fit BFTKV_INLINE_REQUEST_MAX (its authenticator is not counted). */
static bool inline_entry_valid(const uint8_t *bytes, uint32_t len, const struct wire_limits *lim)
{
    if (len < WIRE_HEADER_SIZE) {
        return false;
    }
    struct wire_msg inner;
    size_t used = 0;
    if (decode_message(bytes, len, lim, &inner, &used, true) != DECODE_OK) {
        return false;
    }
    return used == len && WIRE_HEADER_SIZE + (size_t)inner.h.body_len <= BFTKV_INLINE_REQUEST_MAX;
}

static enum wire_drop decode_preprepare_body(struct wire_msg *m, const struct wire_limits *lim)
{
    const uint8_t *b = m->body;
    if (m->h.body_len < WIRE_PP_FIXED) {
        return WIRE_DROP_BAD_LENGTH;
    }
    m->u.batch.digest = b + PP_OFF_DIGEST;
    m->u.batch.count = le16_load(b + PP_OFF_COUNT);
    m->u.batch.entries = b + WIRE_PP_FIXED;
    m->u.batch.entries_len = m->h.body_len - WIRE_PP_FIXED;
    if (m->u.batch.count > BFTKV_BATCH_REQUESTS_MAX) {
        return WIRE_DROP_BAD_FIELD;
    }
    /* Walk the entries: exactly count of them must fill the region. */
    const uint8_t *e = m->u.batch.entries;
    uint32_t region = m->u.batch.entries_len;
    uint32_t off = 0;
    m->u.batch.named = 0;
    for (uint32_t i = 0; i < m->u.batch.count; i++) {
        if (region - off < WIRE_PP_ENTRY_FIXED) {
            return WIRE_DROP_BAD_LENGTH;
        }
        uint8_t kind = e[off + ENT_OFF_KIND];
        uint32_t elen = le32_load(e + off + ENT_OFF_LEN);
        off += WIRE_PP_ENTRY_FIXED;
        if (elen > region - off) {
            return WIRE_DROP_BAD_LENGTH;
        }
        if (kind == WIRE_ENTRY_INLINE) {
            if (!inline_entry_valid(e + off, elen, lim)) {
                return WIRE_DROP_BAD_FIELD;
            }
        } else if (kind == WIRE_ENTRY_DIGEST) {
            if (elen != WIRE_PP_DIGEST_ENTRY) {
                return WIRE_DROP_BAD_LENGTH;
            }
            if (le16_load(e + off + DENT_OFF_CLIENT) >= lim->clients_max) {
                return WIRE_DROP_BAD_FIELD;
            }
            m->u.batch.named++;
        } else {
            return WIRE_DROP_BAD_FIELD;
        }
        off += elen;
    }
    if (off != region) {
        return WIRE_DROP_BAD_LENGTH; /* bytes after the last of count entries */
    }
    /* Last, because it is the only costly check (TOCS 2002 §4.2). */
    uint8_t d[BFTKV_DIGEST_SIZE];
    wire_digest(d, m->u.batch.entries, region);
    if (memcmp(d, m->u.batch.digest, sizeof d) != 0) {
        return WIRE_DROP_BAD_DIGEST;
    }
    return DECODE_OK;
}

static enum wire_drop decode_message(const uint8_t *buf, size_t len, const struct wire_limits *lim,
                                     struct wire_msg *msg, size_t *consumed, bool request_only)
{
    *consumed = 0;
    if (len < WIRE_HEADER_SIZE) {
        return WIRE_DROP_TRUNCATED;
    }
    if (le16_load(buf + OFF_MAGIC) != WIRE_MAGIC) {
        return WIRE_DROP_BAD_MAGIC; /* framing unknown: stop */
    }
    if (buf[OFF_VERSION] != WIRE_VERSION) {
        return WIRE_DROP_BAD_VERSION; /* framing unknown: stop */
    }
    struct wire_header *h = &msg->h;
    wire_header_read(buf, h);
    uint64_t total = (uint64_t)WIRE_HEADER_SIZE + h->body_len + h->auth_len;
    if (total > len) {
        return WIRE_DROP_TRUNCATED;
    }
    /* From here the message's extent is known: the caller may skip it. */
    *consumed = (size_t)total;
    msg->raw = buf;
    msg->raw_len = (size_t)total;
    msg->body = buf + WIRE_HEADER_SIZE;
    msg->auth = msg->body + h->body_len;

    bool catchup = h->type >= WIRE_STATUS && h->type <= WIRE_STATE;
    bool viewchange = h->type == WIRE_VIEW_CHANGE || h->type == WIRE_NEW_VIEW;
    if ((!catchup && !viewchange && (h->type < WIRE_REQUEST || h->type > WIRE_CHECKPOINT))
        || (request_only && h->type != WIRE_REQUEST)) {
        return WIRE_DROP_BAD_TYPE;
    }
    if (h->group != lim->group) {
        return WIRE_DROP_BAD_GROUP;
    }
    uint16_t senders = h->type == WIRE_REQUEST ? lim->clients_max : lim->n;
    if (h->sender >= senders) {
        return WIRE_DROP_BAD_SENDER;
    }
    if (h->auth_len != wire_auth_len(h->type, lim->n)) {
        return WIRE_DROP_BAD_LENGTH;
    }
    if (h->flags != 0) {
        return WIRE_DROP_BAD_FIELD; /* no header flag is defined in version 1 */
    }
    switch (h->type) {
    case WIRE_REQUEST:
        return decode_request_body(msg, &msg->u.request);
    case WIRE_REPLY:
        return decode_reply_body(msg, lim, &msg->u.reply);
    case WIRE_PREPREPARE:
        return decode_preprepare_body(msg, lim);
    case WIRE_STATUS:
    case WIRE_FETCH:
    case WIRE_STATE:
        return wire_catchup_decode_body(msg, lim); /* engine/wire_catchup.c */
    case WIRE_VIEW_CHANGE:
    case WIRE_NEW_VIEW:
        return wire_viewchange_decode_body(msg, lim); /* engine/wire_viewchange.c */
    default: /* PREPARE, COMMIT, CHECKPOINT: one digest */
        if (h->body_len != BFTKV_DIGEST_SIZE) {
            return WIRE_DROP_BAD_LENGTH;
        }
        msg->u.batch.digest = msg->body;
        msg->u.batch.count = 0;
        msg->u.batch.named = 0;
        msg->u.batch.entries = NULL;
        msg->u.batch.entries_len = 0;
        return DECODE_OK;
    }
}

int wire_decode(const uint8_t *buf, size_t len, const struct wire_limits *lim, struct wire_msg *msg,
                size_t *consumed, struct wire_drop_counters *drops)
{
    BFTKV_ASSERT(lim->n >= 1);
    BFTKV_ASSERT(lim->n <= BFTKV_REPLICAS_MAX);
    BFTKV_ASSERT(lim->clients_max <= BFTKV_CLIENTS_MAX);
    BFTKV_ASSERT(buf != NULL || len == 0);
    enum wire_drop why = decode_message(buf, len, lim, msg, consumed, false);
    BFTKV_ASSERT(*consumed <= len);
    if (why == DECODE_OK) {
        BFTKV_ASSERT(*consumed >= WIRE_HEADER_SIZE);
        return 0;
    }
    if (drops != NULL) {
        drops->count[why]++;
    }
    return BFTKV_E_CORRUPT;
}

int wire_batch_next(const struct wire_msg *pp, uint32_t *off, struct wire_batch_entry *e)
{
    BFTKV_ASSERT(pp->h.type == WIRE_PREPREPARE);
    const uint8_t *region = pp->u.batch.entries;
    uint32_t rlen = pp->u.batch.entries_len;
    if (*off >= rlen) {
        return 0;
    }
    /* wire_decode() validated the walk; these guard against misuse, not input. */
    BFTKV_ASSERT(rlen - *off >= WIRE_PP_ENTRY_FIXED);
    const uint8_t *p = region + *off;
    memset(e, 0, sizeof *e);
    e->kind = p[ENT_OFF_KIND];
    e->len = le32_load(p + ENT_OFF_LEN);
    e->bytes = p + WIRE_PP_ENTRY_FIXED;
    BFTKV_ASSERT(e->len <= rlen - *off - WIRE_PP_ENTRY_FIXED);
    if (e->kind == WIRE_ENTRY_DIGEST) {
        e->request_digest = e->bytes + DENT_OFF_DIGEST;
        e->client = le16_load(e->bytes + DENT_OFF_CLIENT);
        e->lane = le16_load(e->bytes + DENT_OFF_LANE);
        e->timestamp = le64_load(e->bytes + DENT_OFF_TIMESTAMP);
    } else {
        BFTKV_ASSERT(e->kind == WIRE_ENTRY_INLINE);
        /* Convenience copies from the inner REQUEST (validated by the decoder). */
        e->client = le16_load(e->bytes + OFF_SENDER);
        e->timestamp = le64_load(e->bytes + OFF_SEQ);
        e->lane = le16_load(e->bytes + WIRE_HEADER_SIZE + RQ_OFF_LANE);
    }
    *off += WIRE_PP_ENTRY_FIXED + e->len;
    return 1;
}

/* ---- Encoders ------------------------------------------------------------------------ */

size_t wire_frame(uint8_t *buf, size_t cap, uint8_t type, uint16_t group, uint16_t sender, uint64_t view,
                  uint64_t seq, uint64_t body_len, uint16_t auth_len, size_t *auth_off)
{
    uint64_t total = (uint64_t)WIRE_HEADER_SIZE + body_len + auth_len;
    if (body_len > UINT32_MAX || total > cap)
        return 0;
    struct wire_header h = {
        .type = type,
        .group = group,
        .sender = sender,
        .view = view,
        .seq = seq,
        .body_len = (uint32_t)body_len,
        .auth_len = auth_len,
        .flags = 0,
    };
    wire_header_write(buf, &h);
    size_t aoff = WIRE_HEADER_SIZE + (size_t)body_len;
    memset(buf + aoff, 0, auth_len);
    if (auth_off != NULL)
        *auth_off = aoff;
    return (size_t)total;
}

size_t wire_encode_request(uint8_t *buf, size_t cap, uint16_t group, uint16_t n, uint64_t view_hint,
                           const struct wire_request *rq, size_t *auth_off)
{
    BFTKV_ASSERT(rq->klen >= 1);
    BFTKV_ASSERT(rq->klen <= BFTKV_KEY_MAX);
    BFTKV_ASSERT(rq->vlen <= BFTKV_VALUE_MAX);
    BFTKV_ASSERT(rq->op == WIRE_OP_PUT || rq->vlen == 0);
    size_t total = wire_frame(buf, cap, WIRE_REQUEST, group, rq->client, view_hint, rq->timestamp,
                              WIRE_REQUEST_FIXED + (uint64_t)rq->klen + rq->vlen, wire_auth_len(WIRE_REQUEST, n),
                              auth_off);
    if (total == 0) {
        return 0;
    }
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    le16_store(b + RQ_OFF_LANE, rq->lane);
    b[RQ_OFF_OP] = rq->op;
    b[RQ_OFF_RFLAGS] = rq->rflags;
    le16_store(b + RQ_OFF_KLEN, rq->klen);
    le32_store(b + RQ_OFF_VLEN, rq->vlen);
    bytes_copy(b + WIRE_REQUEST_FIXED, rq->key, rq->klen);
    bytes_copy(b + WIRE_REQUEST_FIXED + rq->klen, rq->value, rq->vlen);
    return total;
}

void wire_preprepare_view(struct wire_msg *m, const uint8_t *buf, size_t len)
{
    memset(m, 0, sizeof *m);
    wire_header_read(buf, &m->h);
    BFTKV_ASSERT(m->h.type == WIRE_PREPREPARE);
    BFTKV_ASSERT((uint64_t)WIRE_HEADER_SIZE + m->h.body_len + m->h.auth_len == len);
    BFTKV_ASSERT(m->h.body_len >= WIRE_PP_FIXED);
    m->raw = buf;
    m->raw_len = len;
    m->body = buf + WIRE_HEADER_SIZE;
    m->auth = m->body + m->h.body_len;
    m->u.batch.digest = m->body;
    m->u.batch.count = le16_load(m->body + BFTKV_DIGEST_SIZE);
    m->u.batch.entries = m->body + WIRE_PP_FIXED;
    m->u.batch.entries_len = m->h.body_len - WIRE_PP_FIXED;
    /* Counted now, while the bytes are warm: the relays of large requests
     * (request_pool.c) skip a batch that names none without walking it again. */
    uint32_t off = 0;
    struct wire_batch_entry e;
    while (wire_batch_next(m, &off, &e)) {
        if (e.kind == WIRE_ENTRY_DIGEST)
            m->u.batch.named++;
    }
    BFTKV_ASSERT(off == m->u.batch.entries_len);
}

size_t wire_encode_preprepare(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n,
                              uint64_t view, uint64_t seq, const uint8_t *entries, uint32_t entries_len,
                              uint16_t count, size_t *auth_off)
{
    BFTKV_ASSERT(count <= BFTKV_BATCH_REQUESTS_MAX);
    BFTKV_ASSERT(entries_len <= UINT32_MAX - WIRE_PP_FIXED);
    size_t total = wire_frame(buf, cap, WIRE_PREPREPARE, group, sender, view, seq,
                              (uint64_t)WIRE_PP_FIXED + entries_len, wire_auth_len(WIRE_PREPREPARE, n), auth_off);
    if (total == 0) {
        return 0;
    }
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    /* memmove: the caller may have built the entries in place, right where they go. */
    if (entries_len > 0) {
        memmove(b + WIRE_PP_FIXED, entries, entries_len);
    }
    wire_digest(b + PP_OFF_DIGEST, b + WIRE_PP_FIXED, entries_len);
    le16_store(b + PP_OFF_COUNT, count);
    return total;
}

size_t wire_entry_inline(uint8_t *buf, size_t cap, const uint8_t *request_msg, uint32_t len)
{
    if ((uint64_t)WIRE_PP_ENTRY_FIXED + len > cap) {
        return 0;
    }
    buf[ENT_OFF_KIND] = WIRE_ENTRY_INLINE;
    le32_store(buf + ENT_OFF_LEN, len);
    memmove(buf + WIRE_PP_ENTRY_FIXED, request_msg, len);
    return WIRE_PP_ENTRY_FIXED + (size_t)len;
}

size_t wire_entry_digest(uint8_t *buf, size_t cap, const uint8_t digest[32], uint16_t client, uint16_t lane,
                         uint64_t timestamp)
{
    if (WIRE_PP_ENTRY_FIXED + WIRE_PP_DIGEST_ENTRY > cap) {
        return 0;
    }
    buf[ENT_OFF_KIND] = WIRE_ENTRY_DIGEST;
    le32_store(buf + ENT_OFF_LEN, WIRE_PP_DIGEST_ENTRY);
    uint8_t *p = buf + WIRE_PP_ENTRY_FIXED;
    memcpy(p + DENT_OFF_DIGEST, digest, BFTKV_DIGEST_SIZE);
    le16_store(p + DENT_OFF_CLIENT, client);
    le16_store(p + DENT_OFF_LANE, lane);
    le64_store(p + DENT_OFF_TIMESTAMP, timestamp);
    return WIRE_PP_ENTRY_FIXED + WIRE_PP_DIGEST_ENTRY;
}

size_t wire_encode_digest_msg(uint8_t *buf, size_t cap, uint8_t type, uint16_t group, uint16_t sender,
                              uint16_t n, uint64_t view, uint64_t seq, const uint8_t digest[32],
                              size_t *auth_off)
{
    BFTKV_ASSERT(type == WIRE_PREPARE || type == WIRE_COMMIT || type == WIRE_CHECKPOINT);
    size_t total = wire_frame(buf, cap, type, group, sender, view, seq, BFTKV_DIGEST_SIZE, wire_auth_len(type, n),
                              auth_off);
    if (total == 0) {
        return 0;
    }
    memcpy(buf + WIRE_HEADER_SIZE, digest, BFTKV_DIGEST_SIZE);
    return total;
}

uint16_t wire_reply_lane(const uint8_t *msg, size_t len)
{
    if (len < (size_t)WIRE_HEADER_SIZE + RP_OFF_LANE + 2u)
        return UINT16_MAX;
    return le16_load(msg + WIRE_HEADER_SIZE + RP_OFF_LANE);
}

size_t wire_encode_reply(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view,
                         uint64_t timestamp, const struct wire_reply *rp, size_t *auth_off)
{
    BFTKV_ASSERT(rp->result_len <= BFTKV_VALUE_MAX);
    BFTKV_ASSERT(rp->result_digest != NULL);
    /* WIRE_REPLY_FULL follows rp->result, whatever rp->rflags says. */
    bool full = rp->result != NULL;
    uint32_t ext = rp->epoch != 0 ? WIRE_REPLY_EPOCH_SIZE : 0u;
    uint8_t rflags = (uint8_t)((rp->rflags & ~(unsigned)(WIRE_REPLY_FULL | WIRE_REPLY_EPOCH))
                               | (full ? WIRE_REPLY_FULL : 0u) | (ext > 0 ? WIRE_REPLY_EPOCH : 0u));
    size_t total = wire_frame(buf, cap, WIRE_REPLY, group, sender, view, timestamp,
                              WIRE_REPLY_FIXED + ext + (full ? (uint64_t)rp->result_len : 0u),
                              (uint16_t)BFTKV_MAC_SIZE, auth_off);
    if (total == 0) {
        return 0;
    }
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    le16_store(b + RP_OFF_CLIENT, rp->client);
    le16_store(b + RP_OFF_LANE, rp->lane);
    le16_store(b + RP_OFF_STATUS, (uint16_t)rp->status);
    b[RP_OFF_RFLAGS] = rflags;
    b[RP_OFF_PAD] = 0;
    le32_store(b + RP_OFF_RESULT_LEN, rp->result_len);
    memmove(b + RP_OFF_RESULT_DIGEST, rp->result_digest, BFTKV_DIGEST_SIZE);
    if (ext > 0) {
        le64_store(b + WIRE_REPLY_FIXED, rp->epoch);
    }
    if (full) {
        bytes_copy(b + WIRE_REPLY_FIXED + ext, rp->result, rp->result_len);
    }
    return total;
}
