/* The wire form of catch-up: STATUS, FETCH and STATE (engine/wire.h has the
 * layouts; engine/catchup.c and engine/statetransfer.c use them; TOCS 2002
 * §5.2-§5.3 and §6.2 describe the paper's status and state-transfer messages).
 *
 * wire.c's decoder checks the header, the type's auth_len and the group, then
 * hands the body here. Nothing in a catch-up message is trusted: every length,
 * position and pad byte is checked, a STATE's store records and reply-cache
 * entries are walked to their last byte, and a cached reply result must match
 * its digest. What a well-formed message cannot show -- that its state really is
 * the checkpoint's -- the receiver learns from the state digest that q replicas
 * signed, once the whole state is in (statetransfer.c).
 */
#include <string.h>

#include "common/assert.h"
#include "engine/wire.h"
#include "engine/wire_internal.h"
#include "store/store.h"

/* Body field offsets (wire.h has the layouts). */
enum {
    ST_OFF_LOW = 0,
    ST_OFF_MAX_SEQ = 8,
    ST_OFF_FLAGS = 16,
    ST_OFF_PAD = 20,

    FE_OFF_DIGEST = 0,
    FE_OFF_PART = 32,
    FE_OFF_COUNT = 33,
    FE_OFF_PAD2 = 34,
    FE_OFF_SHARD = 36,
    FE_OFF_CURSOR = 40,

    SA_OFF_DIGEST = 0,
    SA_OFF_KIND = 32,
    SA_OFF_FROM_PART = 33,
    SA_OFF_NEXT_PART = 34,
    SA_OFF_FLAGS = 35,
    SA_OFF_SHARDS = 36,
    SA_OFF_FROM_SHARD = 40,
    SA_OFF_NEXT_SHARD = 44,
    SA_OFF_FROM_CURSOR = 48,
    SA_OFF_NEXT_CURSOR = 56,
    SA_OFF_DATA_LEN = 64,

    RC_OFF_KEY = 0,
    RC_OFF_TIMESTAMP = 4,
    RC_OFF_STATUS = 12,
    RC_OFF_OP = 14,
    RC_OFF_RESULT_LEN = 15,
    RC_OFF_DIGEST = 19,
};
_Static_assert(ST_OFF_PAD + 4 == WIRE_STATUS_BODY, "status body");
_Static_assert(FE_OFF_CURSOR + 8 == WIRE_FETCH_BODY, "fetch body");
_Static_assert(SA_OFF_DATA_LEN + 4 == WIRE_STATE_FIXED, "state fixed part");
_Static_assert(RC_OFF_DIGEST + BFTKV_DIGEST_SIZE == WIRE_RC_ENTRY_FIXED, "reply-cache entry");
_Static_assert(WIRE_STATE_DATA_MAX == STORE_RECORD_HEADER_SIZE + BFTKV_KEY_MAX + BFTKV_VALUE_MAX,
               "a STATE chunk holds one maximal store record");
_Static_assert(WIRE_HEADER_SIZE + WIRE_STATE_FIXED + WIRE_STATE_DATA_MAX + BFTKV_AUTHENTICATOR_MAX
                   <= BFTKV_DATAGRAM_MAX,
               "a full STATE fits one datagram");
_Static_assert(WIRE_CHECKPOINT_MSG_SIZE == WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + WIRE_SIG_SIZE,
               "a CHECKPOINT message");
_Static_assert(BFTKV_REPLICAS_MAX * WIRE_CHECKPOINT_MSG_SIZE <= WIRE_STATE_DATA_MAX, "a full proof fits");

/* ---- Positions --------------------------------------------------------------- */

int wire_state_pos_cmp(const struct wire_state_pos *a, const struct wire_state_pos *b)
{
    if (a->part != b->part)
        return a->part < b->part ? -1 : 1;
    if (a->shard != b->shard)
        return a->shard < b->shard ? -1 : 1;
    if (a->cursor != b->cursor)
        return a->cursor < b->cursor ? -1 : 1;
    return 0;
}

/* A position inside a part that has data (STORE, RCACHE). */
static bool pos_data_valid(const struct wire_state_pos *p, uint32_t shards)
{
    if (p->part == WIRE_PART_STORE)
        return p->shard < shards;
    if (p->part == WIRE_PART_RCACHE)
        return p->shard == 0 && p->cursor <= UINT32_MAX;
    return false;
}

/* ---- Decoding ---------------------------------------------------------------- */

#define DECODE_OK WIRE_DROP_COUNT

static enum wire_drop status_decode(struct wire_msg *m)
{
    if (m->h.body_len != WIRE_STATUS_BODY)
        return WIRE_DROP_BAD_LENGTH;
    struct wire_status *s = &m->u.status;
    s->low = le64_load(m->body + ST_OFF_LOW);
    s->max_seq = le64_load(m->body + ST_OFF_MAX_SEQ);
    s->flags = le32_load(m->body + ST_OFF_FLAGS);
    if ((s->flags & ~WIRE_STATUS_NO_STATE) != 0 || le32_load(m->body + ST_OFF_PAD) != 0)
        return WIRE_DROP_BAD_FIELD;
    /* h <= last executed <= highest seen. */
    if (s->low > m->h.seq || m->h.seq > s->max_seq)
        return WIRE_DROP_BAD_FIELD;
    return DECODE_OK;
}

static enum wire_drop fetch_decode(struct wire_msg *m)
{
    if (m->h.body_len != WIRE_FETCH_BODY)
        return WIRE_DROP_BAD_LENGTH;
    const uint8_t *b = m->body;
    struct wire_fetch *f = &m->u.fetch;
    f->digest = b + FE_OFF_DIGEST;
    f->pos.part = b[FE_OFF_PART];
    f->count = b[FE_OFF_COUNT];
    f->pos.shard = le32_load(b + FE_OFF_SHARD);
    f->pos.cursor = le64_load(b + FE_OFF_CURSOR);
    if (f->count == 0 || f->count > WIRE_FETCH_CHUNKS_MAX || le16_load(b + FE_OFF_PAD2) != 0 || m->h.seq == 0)
        return WIRE_DROP_BAD_FIELD;
    if (f->pos.part == WIRE_PART_REQUEST) /* a REQUEST-FETCH: one request, no position */
        return f->count == 1 && f->pos.shard == 0 && f->pos.cursor == 0 ? DECODE_OK : WIRE_DROP_BAD_FIELD;
    if (!pos_data_valid(&f->pos, BFTKV_STORE_SHARDS_MAX))
        return WIRE_DROP_BAD_FIELD;
    return DECODE_OK;
}

/* Store records: le16 klen | le32 vlen | key | value, exactly filling the data. */
static bool store_records_valid(const uint8_t *p, uint32_t len)
{
    uint32_t off = 0;
    while (off < len) {
        if (len - off < STORE_RECORD_HEADER_SIZE)
            return false;
        uint32_t klen = le16_load(p + off), vlen = le32_load(p + off + 2);
        if (klen == 0 || klen > BFTKV_KEY_MAX || vlen > BFTKV_VALUE_MAX)
            return false;
        off += STORE_RECORD_HEADER_SIZE;
        if (klen + vlen > len - off)
            return false;
        off += klen + vlen;
    }
    return true;
}

static bool rc_entry_read(const uint8_t *p, uint32_t avail, struct wire_rc_entry *e, uint32_t *size)
{
    if (avail < WIRE_RC_ENTRY_FIXED)
        return false;
    e->key = le32_load(p + RC_OFF_KEY);
    e->timestamp = le64_load(p + RC_OFF_TIMESTAMP);
    e->status = (int16_t)le16_load(p + RC_OFF_STATUS);
    e->op = p[RC_OFF_OP];
    e->result_len = le32_load(p + RC_OFF_RESULT_LEN);
    e->digest = p + RC_OFF_DIGEST;
    e->result = NULL;
    uint32_t sz = WIRE_RC_ENTRY_FIXED;
    if (e->result_len <= WIRE_RC_RESULT_MAX) {
        if (avail - sz < e->result_len)
            return false;
        e->result = p + sz;
        sz += e->result_len;
    }
    *size = sz;
    return true;
}

/* Reply-cache entries with increasing keys in [from, next), each well formed:
 * a timestamp, a known op, a result length within limits, and a result that is
 * carried in full (the reply cache keeps results up to WIRE_RC_RESULT_MAX) must
 * match its digest, which is the part of the entry the state digest covers. */
static enum wire_drop rc_entries_valid(const struct wire_state *st)
{
    uint64_t lo = st->from.cursor;
    uint64_t hi = st->next.part == WIRE_PART_RCACHE ? st->next.cursor : (uint64_t)UINT32_MAX + 1u;
    uint32_t off = 0;
    while (off < st->data_len) {
        struct wire_rc_entry e;
        uint32_t size = 0;
        if (!rc_entry_read(st->data + off, st->data_len - off, &e, &size))
            return WIRE_DROP_BAD_LENGTH;
        if (e.key < lo || e.key >= hi || e.timestamp == 0 || e.op < WIRE_OP_PUT || e.op > WIRE_OP_DEL
            || e.result_len > BFTKV_VALUE_MAX)
            return WIRE_DROP_BAD_FIELD;
        if (e.result != NULL) {
            uint8_t d[BFTKV_DIGEST_SIZE];
            wire_result_digest(d, e.status, e.result, e.result_len);
            if (memcmp(d, e.digest, sizeof d) != 0)
                return WIRE_DROP_BAD_DIGEST;
        }
        lo = (uint64_t)e.key + 1u;
        off += size;
    }
    return DECODE_OK;
}

static enum wire_drop chunk_decode(struct wire_state *st)
{
    if (st->shards == 0 || st->shards > BFTKV_STORE_SHARDS_MAX || !pos_data_valid(&st->from, st->shards))
        return WIRE_DROP_BAD_FIELD;
    /* A chunk stays inside one part and moves forward: from STORE it ends in
     * STORE or at the start of RCACHE; from RCACHE, in RCACHE or at END. */
    bool next_ok;
    if (st->from.part == WIRE_PART_STORE) {
        next_ok = pos_data_valid(&st->next, st->shards)
                  || (st->next.part == WIRE_PART_RCACHE && st->next.shard == 0 && st->next.cursor == 0);
    } else {
        next_ok = (st->next.part == WIRE_PART_RCACHE && pos_data_valid(&st->next, st->shards))
                  || (st->next.part == WIRE_PART_END && st->next.shard == 0 && st->next.cursor == 0);
    }
    if (!next_ok || wire_state_pos_cmp(&st->next, &st->from) <= 0)
        return WIRE_DROP_BAD_FIELD;
    /* A server fills a chunk while the next record or entry fits, and one
     * always fits an empty chunk: only a chunk that ends its part may be empty
     * (STORE's last shards empty; no reply-cache entry left). */
    if (st->data_len == 0 && st->next.part == st->from.part)
        return WIRE_DROP_BAD_FIELD;
    if (st->from.part == WIRE_PART_STORE)
        return store_records_valid(st->data, st->data_len) ? DECODE_OK : WIRE_DROP_BAD_FIELD;
    return rc_entries_valid(st);
}

static enum wire_drop state_decode(struct wire_msg *m, const struct wire_limits *lim)
{
    if (m->h.body_len < WIRE_STATE_FIXED)
        return WIRE_DROP_BAD_LENGTH;
    const uint8_t *b = m->body;
    struct wire_state *st = &m->u.state;
    st->digest = b + SA_OFF_DIGEST;
    st->kind = b[SA_OFF_KIND];
    st->flags = b[SA_OFF_FLAGS];
    st->from.part = b[SA_OFF_FROM_PART];
    st->next.part = b[SA_OFF_NEXT_PART];
    st->shards = le32_load(b + SA_OFF_SHARDS);
    st->from.shard = le32_load(b + SA_OFF_FROM_SHARD);
    st->next.shard = le32_load(b + SA_OFF_NEXT_SHARD);
    st->from.cursor = le64_load(b + SA_OFF_FROM_CURSOR);
    st->next.cursor = le64_load(b + SA_OFF_NEXT_CURSOR);
    st->data_len = le32_load(b + SA_OFF_DATA_LEN);
    st->data = b + WIRE_STATE_FIXED;
    if ((uint64_t)st->data_len + WIRE_STATE_FIXED != m->h.body_len || st->data_len > WIRE_STATE_DATA_MAX)
        return WIRE_DROP_BAD_LENGTH;
    if ((st->flags & ~WIRE_STATE_LAST) != 0 || m->h.seq == 0)
        return WIRE_DROP_BAD_FIELD;
    bool no_pos = st->flags == 0 && st->from.part == 0 && st->next.part == 0 && st->shards == 0 && st->from.shard == 0
                  && st->next.shard == 0 && st->from.cursor == 0 && st->next.cursor == 0;
    switch (st->kind) {
    case WIRE_STATE_CHUNK:
        return chunk_decode(st);
    case WIRE_STATE_MISSING:
        if (!no_pos || st->data_len != 0)
            return WIRE_DROP_BAD_FIELD;
        return DECODE_OK;
    case WIRE_STATE_PROOF:
        /* 1..n whole CHECKPOINT messages; the receiver decodes and verifies each. */
        if (!no_pos || st->data_len == 0 || st->data_len % WIRE_CHECKPOINT_MSG_SIZE != 0
            || st->data_len / WIRE_CHECKPOINT_MSG_SIZE > lim->n)
            return WIRE_DROP_BAD_FIELD;
        return DECODE_OK;
    default:
        return WIRE_DROP_BAD_FIELD;
    }
}

enum wire_drop wire_catchup_decode_body(struct wire_msg *msg, const struct wire_limits *lim)
{
    switch (msg->h.type) {
    case WIRE_STATUS:
        return status_decode(msg);
    case WIRE_FETCH:
        return fetch_decode(msg);
    case WIRE_STATE:
        return state_decode(msg, lim);
    default:
        BFTKV_ASSERT(false); /* wire.c dispatches only these three here */
        return WIRE_DROP_BAD_TYPE;
    }
}

int wire_rc_entry_next(const struct wire_state *st, uint32_t *off, struct wire_rc_entry *e)
{
    BFTKV_ASSERT(st->kind == WIRE_STATE_CHUNK);
    BFTKV_ASSERT(st->from.part == WIRE_PART_RCACHE);
    if (*off >= st->data_len)
        return 0;
    uint32_t size = 0;
    bool ok = rc_entry_read(st->data + *off, st->data_len - *off, e, &size);
    BFTKV_ASSERT(ok); /* the decoder walked these entries */
    *off += size;
    return 1;
}

/* ---- Encoding ---------------------------------------------------------------- */

static size_t frame(uint8_t *buf, size_t cap, uint8_t type, uint16_t group, uint16_t sender, uint16_t n,
                    uint64_t view, uint64_t seq, uint32_t body_len, size_t *auth_off)
{
    return wire_frame(buf, cap, type, group, sender, view, seq, body_len, wire_auth_len(type, n), auth_off);
}

size_t wire_encode_status(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n, uint64_t view,
                          uint64_t last_executed, uint64_t low, uint64_t max_seq, uint32_t flags,
                          size_t *auth_off)
{
    BFTKV_ASSERT(low <= last_executed);
    BFTKV_ASSERT(last_executed <= max_seq);
    BFTKV_ASSERT((flags & ~WIRE_STATUS_NO_STATE) == 0);
    size_t len = frame(buf, cap, WIRE_STATUS, group, sender, n, view, last_executed, WIRE_STATUS_BODY, auth_off);
    if (len == 0)
        return 0;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    le64_store(b + ST_OFF_LOW, low);
    le64_store(b + ST_OFF_MAX_SEQ, max_seq);
    le32_store(b + ST_OFF_FLAGS, flags);
    le32_store(b + ST_OFF_PAD, 0);
    return len;
}

size_t wire_encode_fetch(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n, uint64_t view,
                         uint64_t seq, const uint8_t digest[32], const struct wire_state_pos *pos, uint8_t count,
                         size_t *auth_off)
{
    BFTKV_ASSERT(seq > 0);
    BFTKV_ASSERT(pos_data_valid(pos, BFTKV_STORE_SHARDS_MAX));
    BFTKV_ASSERT(count >= 1);
    BFTKV_ASSERT(count <= WIRE_FETCH_CHUNKS_MAX);
    size_t len = frame(buf, cap, WIRE_FETCH, group, sender, n, view, seq, WIRE_FETCH_BODY, auth_off);
    if (len == 0)
        return 0;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    memcpy(b + FE_OFF_DIGEST, digest, BFTKV_DIGEST_SIZE);
    b[FE_OFF_PART] = pos->part;
    b[FE_OFF_COUNT] = count;
    le16_store(b + FE_OFF_PAD2, 0);
    le32_store(b + FE_OFF_SHARD, pos->shard);
    le64_store(b + FE_OFF_CURSOR, pos->cursor);
    return len;
}

size_t wire_encode_request_fetch(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n,
                                 uint64_t view, uint64_t seq, const uint8_t digest[32], size_t *auth_off)
{
    BFTKV_ASSERT(seq > 0);
    size_t len = frame(buf, cap, WIRE_FETCH, group, sender, n, view, seq, WIRE_FETCH_BODY, auth_off);
    if (len == 0)
        return 0;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    memcpy(b + FE_OFF_DIGEST, digest, BFTKV_DIGEST_SIZE);
    b[FE_OFF_PART] = WIRE_PART_REQUEST;
    b[FE_OFF_COUNT] = 1;
    le16_store(b + FE_OFF_PAD2, 0);
    le32_store(b + FE_OFF_SHARD, 0);
    le64_store(b + FE_OFF_CURSOR, 0);
    return len;
}

uint8_t *wire_state_data_at(uint8_t *buf)
{
    return buf + WIRE_HEADER_SIZE + WIRE_STATE_FIXED;
}

size_t wire_encode_state(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n, uint64_t view,
                         uint64_t seq, const struct wire_state *st, size_t *auth_off)
{
    BFTKV_ASSERT(seq > 0);
    BFTKV_ASSERT(st->data_len <= WIRE_STATE_DATA_MAX);
    BFTKV_ASSERT(st->kind >= WIRE_STATE_CHUNK);
    BFTKV_ASSERT(st->kind <= WIRE_STATE_PROOF);
    BFTKV_ASSERT((st->flags & ~WIRE_STATE_LAST) == 0);
    size_t len = frame(buf, cap, WIRE_STATE, group, sender, n, view, seq, WIRE_STATE_FIXED + st->data_len, auth_off);
    if (len == 0)
        return 0;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    /* The data first: it may sit in place already, or anywhere in buf. */
    if (st->data_len > 0)
        memmove(b + WIRE_STATE_FIXED, st->data, st->data_len);
    memmove(b + SA_OFF_DIGEST, st->digest, BFTKV_DIGEST_SIZE);
    b[SA_OFF_KIND] = st->kind;
    b[SA_OFF_FROM_PART] = st->from.part;
    b[SA_OFF_NEXT_PART] = st->next.part;
    b[SA_OFF_FLAGS] = st->flags;
    le32_store(b + SA_OFF_SHARDS, st->shards);
    le32_store(b + SA_OFF_FROM_SHARD, st->from.shard);
    le32_store(b + SA_OFF_NEXT_SHARD, st->next.shard);
    le64_store(b + SA_OFF_FROM_CURSOR, st->from.cursor);
    le64_store(b + SA_OFF_NEXT_CURSOR, st->next.cursor);
    le32_store(b + SA_OFF_DATA_LEN, st->data_len);
    return len;
}

size_t wire_rc_entry_put(uint8_t *buf, size_t cap, const struct wire_rc_entry *e)
{
    bool with_result = e->result_len <= WIRE_RC_RESULT_MAX;
    size_t size = WIRE_RC_ENTRY_FIXED + (with_result ? e->result_len : 0u);
    if (size > cap)
        return 0;
    le32_store(buf + RC_OFF_KEY, e->key);
    le64_store(buf + RC_OFF_TIMESTAMP, e->timestamp);
    le16_store(buf + RC_OFF_STATUS, (uint16_t)e->status);
    buf[RC_OFF_OP] = e->op;
    le32_store(buf + RC_OFF_RESULT_LEN, e->result_len);
    memcpy(buf + RC_OFF_DIGEST, e->digest, BFTKV_DIGEST_SIZE);
    if (with_result && e->result_len > 0)
        memcpy(buf + WIRE_RC_ENTRY_FIXED, e->result, e->result_len);
    return size;
}
