/* Fuzzing the wire decoder (engine/wire.c, wire_catchup.c, wire_viewchange.c),
 * the first code to touch network bytes.
 *
 * LLVMFuzzerTestOneInput() treats its input as one datagram and decodes it the
 * way a receiver does: message after message, following *consumed, and checks
 * the decoder's promises: accepted messages lie inside the datagram, every
 * rejection counts exactly one drop reason, and every accessor of an accepted
 * message (PRE-PREPARE entries and their inline requests, VIEW-CHANGE and
 * NEW-VIEW sets, a STATE chunk's store records and reply-cache entries, a
 * proof's CHECKPOINTs) stays inside it and returns what the layout in
 * engine/wire.h says. A PRE-PREPARE's batch digest and a cached reply's result
 * digest are walls no fuzzer climbs, so each input is decoded twice: as given,
 * and with those digests recomputed, which lets mutations reach the paths
 * behind them. tests/fuzz/fuzz.h says how it is built and run.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/auth.h"
#include "engine/wire.h"
#include "engine/wire_le.h"
#include "store/store.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "wire";

#define FUZZ_GROUP 1u
#define FUZZ_N 4u
#define FUZZ_CLIENTS 16u

static const struct wire_limits fuzz_lim = {.group = FUZZ_GROUP, .n = FUZZ_N, .clients_max = FUZZ_CLIENTS};

/* Replica 1 and client 3 of a group built from fixed seeds: accepted messages are
 * also run through the MAC checks (which must stay inside the message). */
static struct auth_ctx fuzz_replica, fuzz_client;

static uint64_t drops_total(const struct wire_drop_counters *d)
{
    uint64_t t = 0;
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        t += d->count[i];
    }
    return t;
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

/* A STATE chunk's store records: le16 klen | le32 vlen | key | value, exactly
 * filling the data, each within the limits (what store_restore_chunk applies). */
static void store_records_check(const struct wire_state *st)
{
    uint32_t off = 0;
    while (off < st->data_len) {
        FUZZ_CHECK(st->data_len - off >= STORE_RECORD_HEADER_SIZE);
        uint32_t klen = le16_load(st->data + off), vlen = le32_load(st->data + off + 2);
        FUZZ_CHECK(klen >= 1 && klen <= BFTKV_KEY_MAX && vlen <= BFTKV_VALUE_MAX);
        off += STORE_RECORD_HEADER_SIZE;
        FUZZ_CHECK(klen + vlen <= st->data_len - off);
        off += klen + vlen;
    }
}

/* A STATE chunk's reply-cache entries through the accessor: inside the data,
 * indexes increasing within [from, next), a result carried iff it is short,
 * and then matching its digest; together exactly the data. */
static void rc_entries_check(const struct wire_state *st, const uint8_t *buf, size_t len)
{
    uint64_t lo = st->from.cursor;
    uint64_t hi = st->next.part == WIRE_PART_RCACHE ? st->next.cursor : (uint64_t)UINT32_MAX + 1u;
    uint32_t off = 0, prev = 0;
    struct wire_rc_entry e;
    while (wire_rc_entry_next(st, &off, &e)) {
        FUZZ_CHECK(off > prev && off <= st->data_len);
        FUZZ_CHECK(e.key >= lo && e.key < hi);
        FUZZ_CHECK(e.timestamp > 0 && e.op >= WIRE_OP_PUT && e.op <= WIRE_OP_DEL);
        FUZZ_CHECK(e.result_len <= BFTKV_VALUE_MAX && inside(e.digest, BFTKV_DIGEST_SIZE, buf, len));
        FUZZ_CHECK((e.result != NULL) == (e.result_len <= WIRE_RC_RESULT_MAX));
        if (e.result != NULL) {
            FUZZ_CHECK(inside(e.result, e.result_len, buf, len));
            FUZZ_CHECK(off - prev == WIRE_RC_ENTRY_FIXED + e.result_len);
            uint8_t d[BFTKV_DIGEST_SIZE];
            wire_result_digest(d, e.status, e.result, e.result_len);
            FUZZ_CHECK(memcmp(d, e.digest, sizeof d) == 0);
        } else {
            FUZZ_CHECK(off - prev == WIRE_RC_ENTRY_FIXED);
        }
        lo = (uint64_t)e.key + 1u;
        prev = off;
    }
    FUZZ_CHECK(off == st->data_len);
}

static void state_check(const struct wire_msg *m, const uint8_t *buf, size_t len)
{
    const struct wire_state *st = &m->u.state;
    FUZZ_CHECK(m->h.seq > 0 && inside(st->digest, BFTKV_DIGEST_SIZE, buf, len));
    FUZZ_CHECK(st->data_len <= WIRE_STATE_DATA_MAX && m->h.body_len == WIRE_STATE_FIXED + st->data_len);
    FUZZ_CHECK(inside(st->data, st->data_len, buf, len));
    switch (st->kind) {
    case WIRE_STATE_CHUNK:
        FUZZ_CHECK(st->shards >= 1 && st->shards <= BFTKV_STORE_SHARDS_MAX);
        FUZZ_CHECK((st->flags & ~(unsigned)WIRE_STATE_LAST) == 0);
        FUZZ_CHECK(wire_state_pos_cmp(&st->from, &st->next) < 0);
        FUZZ_CHECK(st->data_len > 0 || st->next.part != st->from.part);
        if (st->from.part == WIRE_PART_STORE) {
            FUZZ_CHECK(st->from.shard < st->shards);
            FUZZ_CHECK(st->next.part == WIRE_PART_STORE || st->next.part == WIRE_PART_RCACHE);
            store_records_check(st);
        } else {
            FUZZ_CHECK(st->from.part == WIRE_PART_RCACHE && st->from.shard == 0);
            FUZZ_CHECK(st->next.part == WIRE_PART_RCACHE || st->next.part == WIRE_PART_END);
            rc_entries_check(st, buf, len);
        }
        break;
    case WIRE_STATE_MISSING:
        FUZZ_CHECK(st->data_len == 0 && st->shards == 0 && st->from.part == 0 && st->next.part == 0);
        break;
    case WIRE_STATE_PROOF:
        FUZZ_CHECK(st->data_len > 0 && st->data_len % WIRE_CHECKPOINT_MSG_SIZE == 0);
        FUZZ_CHECK(st->data_len / WIRE_CHECKPOINT_MSG_SIZE <= FUZZ_N);
        for (uint32_t off = 0; off < st->data_len; off += WIRE_CHECKPOINT_MSG_SIZE) {
            /* The receiver decodes and verifies each CHECKPOINT of the proof. */
            struct wire_msg ck;
            size_t used = 0;
            if (wire_decode(st->data + off, WIRE_CHECKPOINT_MSG_SIZE, &fuzz_lim, &ck, &used, NULL) == 0)
                FUZZ_CHECK(used <= WIRE_CHECKPOINT_MSG_SIZE && ck.raw == st->data + off);
        }
        break;
    default:
        FUZZ_CHECK(!"a STATE of an unknown kind was accepted");
    }
}

/* What an accepted message promises; touches every byte it points at. */
static void accepted_check(const struct wire_msg *m, const uint8_t *buf, size_t len, size_t consumed)
{
    FUZZ_CHECK(m->raw == buf && m->raw_len == consumed && consumed <= len);
    FUZZ_CHECK(consumed == WIRE_HEADER_SIZE + (size_t)m->h.body_len + m->h.auth_len);
    FUZZ_CHECK(m->h.auth_len == wire_auth_len(m->h.type, FUZZ_N));
    uint8_t d[32];
    wire_digest(d, m->raw, m->raw_len);
    if (m->h.type == WIRE_REPLY) {
        (void)auth_reply_check(&fuzz_client, m);
    } else if (m->h.type != WIRE_CHECKPOINT && m->h.type != WIRE_VIEW_CHANGE
               && m->h.type != WIRE_NEW_VIEW) { /* Ed25519 verify: too slow to fuzz here */
        (void)auth_authenticator_check(&fuzz_replica, m);
    }
    switch (m->h.type) {
    case WIRE_REQUEST:
        FUZZ_CHECK(m->h.sender < FUZZ_CLIENTS);
        FUZZ_CHECK(inside(m->u.request.key, m->u.request.klen, buf, consumed));
        FUZZ_CHECK(m->u.request.vlen == 0 || inside(m->u.request.value, m->u.request.vlen, buf, consumed));
        wire_request_digest(d, m);
        break;
    case WIRE_REPLY:
        FUZZ_CHECK(m->u.reply.client < FUZZ_CLIENTS);
        FUZZ_CHECK(((m->u.reply.rflags & WIRE_REPLY_EPOCH) != 0) == (m->u.reply.epoch != 0));
        if (m->u.reply.result != NULL) {
            FUZZ_CHECK(inside(m->u.reply.result, m->u.reply.result_len, buf, consumed));
        }
        break;
    case WIRE_PREPREPARE: {
        uint32_t off = 0;
        uint32_t n = 0;
        struct wire_batch_entry e;
        while (wire_batch_next(m, &off, &e)) {
            n++;
            FUZZ_CHECK(inside(e.bytes, e.len, buf, consumed));
            if (e.kind == WIRE_ENTRY_INLINE) {
                struct wire_msg inner;
                size_t used = 0;
                FUZZ_CHECK(wire_decode(e.bytes, e.len, &fuzz_lim, &inner, &used, NULL) == 0);
                FUZZ_CHECK(used == e.len && inner.h.type == WIRE_REQUEST);
                FUZZ_CHECK(inner.h.sender == e.client && inner.h.seq == e.timestamp);
                (void)auth_authenticator_check(&fuzz_replica, &inner);
            } else {
                FUZZ_CHECK(e.kind == WIRE_ENTRY_DIGEST && e.len == WIRE_PP_DIGEST_ENTRY);
                FUZZ_CHECK(e.client < FUZZ_CLIENTS);
            }
        }
        FUZZ_CHECK(n == m->u.batch.count && off == m->u.batch.entries_len);
        break;
    }
    case WIRE_VIEW_CHANGE: {
        struct wire_view_change_entry e;
        size_t sets = (size_t)m->u.view_change.ncp * WIRE_VIEW_CHANGE_CKPT_ENTRY
                      + ((size_t)m->u.view_change.np + m->u.view_change.nq) * WIRE_VIEW_CHANGE_PQ_ENTRY;
        FUZZ_CHECK(inside(m->u.view_change.cp, sets, buf, consumed));
        for (uint32_t i = 0; i < m->u.view_change.ncp; i++) {
            wire_view_change_checkpoint(m, i, &e);
            FUZZ_CHECK(e.seq >= m->h.seq);
        }
        for (uint32_t i = 0; i < m->u.view_change.np; i++) {
            wire_view_change_prepared(m, i, &e);
            FUZZ_CHECK(e.seq > m->h.seq && e.view < m->h.view);
        }
        for (uint32_t i = 0; i < m->u.view_change.nq; i++) {
            wire_view_change_preprepared(m, i, &e);
            FUZZ_CHECK(e.seq > m->h.seq && e.view < m->h.view);
        }
        break;
    }
    case WIRE_NEW_VIEW: {
        uint16_t id;
        const uint8_t *dp;
        uint8_t xf;
        FUZZ_CHECK(inside(m->u.nv.ckpt_digest, 32, buf, consumed));
        for (uint32_t i = 0; i < m->u.nv.nvc; i++) {
            wire_nv_view_change(m, i, &id, &dp);
            FUZZ_CHECK(id < FUZZ_N && inside(dp, 32, buf, consumed));
        }
        for (uint32_t i = 0; i < m->u.nv.nch; i++) {
            wire_nv_choice(m, i, &dp, &xf);
            FUZZ_CHECK((xf & ~(unsigned)WIRE_NV_NEED) == 0 && inside(dp, 32, buf, consumed));
        }
        break;
    }
    case WIRE_FETCH: /* a state FETCH, or a REQUEST-FETCH (part REQUEST) */
        FUZZ_CHECK(m->h.body_len == WIRE_FETCH_BODY && m->h.seq > 0 && inside(m->u.fetch.digest, 32, buf, consumed));
        FUZZ_CHECK(m->u.fetch.count >= 1 && m->u.fetch.count <= WIRE_FETCH_CHUNKS_MAX);
        if (m->u.fetch.pos.part == WIRE_PART_REQUEST)
            FUZZ_CHECK(m->u.fetch.count == 1 && m->u.fetch.pos.shard == 0 && m->u.fetch.pos.cursor == 0);
        else
            FUZZ_CHECK(m->u.fetch.pos.part == WIRE_PART_STORE || m->u.fetch.pos.part == WIRE_PART_RCACHE);
        break;
    case WIRE_STATUS:
        FUZZ_CHECK(m->h.body_len == WIRE_STATUS_BODY);
        FUZZ_CHECK(m->u.status.low <= m->h.seq && m->h.seq <= m->u.status.max_seq);
        break;
    case WIRE_STATE:
        state_check(m, buf, consumed);
        break;
    default:
        FUZZ_CHECK(m->h.type == WIRE_PREPARE || m->h.type == WIRE_COMMIT || m->h.type == WIRE_CHECKPOINT);
        FUZZ_CHECK(m->h.body_len == 32);
        break;
    }
}

static void pp_digest_fix(uint8_t *buf, size_t len)
{
    if (len < WIRE_HEADER_SIZE) {
        return;
    }
    struct wire_header h;
    wire_header_read(buf, &h);
    if (h.type != WIRE_PREPREPARE || h.body_len < WIRE_PP_FIXED
        || (uint64_t)WIRE_HEADER_SIZE + h.body_len > len) {
        return;
    }
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    wire_digest(b, b + WIRE_PP_FIXED, h.body_len - WIRE_PP_FIXED);
}

/* Offsets in a STATE body and in one of its reply-cache entries (the layouts
 * in engine/wire.h: digest[32] | kind u8 | from_part u8 | ...; index u32 |
 * timestamp u64 | status i16 | op u8 | result_len u32 | result digest[32]). */
enum {
    STATE_KIND_AT = 32,
    STATE_FROM_PART_AT = 33,
    RC_STATUS_AT = 12,
    RC_RESULT_LEN_AT = 15,
    RC_DIGEST_AT = 19,
};

/* The result digest of every reply-cache entry with a carried result, in a
 * STATE chunk of part RCACHE (as far as the entries parse). */
static void rc_digest_fix(uint8_t *buf, size_t len)
{
    if (len < WIRE_HEADER_SIZE)
        return;
    struct wire_header h;
    wire_header_read(buf, &h);
    if (h.type != WIRE_STATE || h.body_len < WIRE_STATE_FIXED || (uint64_t)WIRE_HEADER_SIZE + h.body_len > len)
        return;
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    if (b[STATE_KIND_AT] != WIRE_STATE_CHUNK || b[STATE_FROM_PART_AT] != WIRE_PART_RCACHE)
        return;
    uint8_t *p = b + WIRE_STATE_FIXED, *end = b + h.body_len;
    while ((size_t)(end - p) >= WIRE_RC_ENTRY_FIXED) {
        uint32_t rlen = le32_load(p + RC_RESULT_LEN_AT);
        size_t size = WIRE_RC_ENTRY_FIXED + (rlen <= WIRE_RC_RESULT_MAX ? rlen : 0u);
        if (size > (size_t)(end - p))
            return;
        if (rlen <= WIRE_RC_RESULT_MAX)
            wire_result_digest(p + RC_DIGEST_AT, (int16_t)le16_load(p + RC_STATUS_AT), p + WIRE_RC_ENTRY_FIXED, rlen);
        p += size;
    }
}

static void datagram_walk(uint8_t *buf, size_t len, bool fix_digests)
{
    struct wire_drop_counters drops = {0};
    size_t pos = 0;
    while (pos < len) {
        if (fix_digests) {
            pp_digest_fix(buf + pos, len - pos);
            rc_digest_fix(buf + pos, len - pos);
        }
        struct wire_msg m;
        size_t consumed = 0;
        uint64_t before = drops_total(&drops);
        int rc = wire_decode(buf + pos, len - pos, &fuzz_lim, &m, &consumed, &drops);
        FUZZ_CHECK(consumed <= len - pos);
        if (rc == 0) {
            FUZZ_CHECK(drops_total(&drops) == before);
            accepted_check(&m, buf + pos, len - pos, consumed);
        } else {
            FUZZ_CHECK(rc == BFTKV_E_CORRUPT);
            FUZZ_CHECK(drops_total(&drops) == before + 1);
        }
        if (consumed == 0) {
            break;
        }
        pos += consumed;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) {
        abort();
    }
    struct auth_keypair kp[FUZZ_N + FUZZ_CLIENTS];
    struct auth_public pub[FUZZ_N + FUZZ_CLIENTS];
    for (unsigned i = 0; i < FUZZ_N + FUZZ_CLIENTS; i++) {
        uint8_t seed[32] = {(uint8_t)i, 0xF0};
        auth_keypair_from_seed(&kp[i], seed);
        auth_public_of(&pub[i], &kp[i]);
    }
    FUZZ_CHECK(auth_init_replica(&fuzz_replica, 1, FUZZ_N, &kp[1], pub, pub + FUZZ_N, NULL, FUZZ_CLIENTS) == 0);
    FUZZ_CHECK(auth_init_client(&fuzz_client, 3, FUZZ_N, &kp[FUZZ_N + 3], pub) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Heap copies of exactly size bytes: an over-read is an ASan report. */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    datagram_walk(copy, size, false);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    datagram_walk(copy, size, true);
    free(copy);
    return 0;
}


/* ---- Seeds ---------------------------------------------------------------------------- */

#define SEED_CAP 4096u

static size_t seed_request(uint8_t *buf, size_t cap, uint16_t client, uint8_t op, const char *key,
                           const char *value, uint8_t rflags)
{
    struct wire_request rq = {
        .client = client, .lane = 2, .timestamp = 1000u + client, .op = op, .rflags = rflags,
        .klen = (uint16_t)strlen(key), .vlen = value != NULL ? (uint32_t)strlen(value) : 0u,
        .key = (const uint8_t *)key, .value = (const uint8_t *)value,
    };
    size_t auth_off = 0;
    size_t n = wire_encode_request(buf, cap, FUZZ_GROUP, FUZZ_N, 3, &rq, &auth_off);
    FUZZ_CHECK(n > 0);
    return n;
}

/* One STATE message around st (data in place afterwards). */
static size_t seed_state(uint8_t *buf, size_t cap, struct wire_state *st)
{
    size_t n = wire_encode_state(buf, cap, FUZZ_GROUP, 2, FUZZ_N, 1, 256, st, NULL);
    FUZZ_CHECK(n > 0);
    return n;
}

static size_t seed_rc_entry(uint8_t *buf, size_t cap, uint32_t index, uint64_t ts, uint8_t op, const char *result,
                            uint32_t result_len)
{
    struct wire_rc_entry e = {.key = index, .timestamp = ts, .status = 0, .op = op, .result_len = result_len,
                              .result = (const uint8_t *)result};
    uint8_t d[BFTKV_DIGEST_SIZE];
    wire_result_digest(d, 0, result, result != NULL ? result_len : 0u);
    e.digest = d;
    size_t n = wire_rc_entry_put(buf, cap, &e);
    FUZZ_CHECK(n > 0);
    return n;
}

static void seeds_catchup(fuzz_seed_add_fn add, const uint8_t d[32])
{
    uint8_t b[SEED_CAP], data[1024];
    size_t n = wire_encode_status(b, sizeof b, FUZZ_GROUP, 2, FUZZ_N, 3, 100, 64, 120, 0, NULL);
    add(b, n);
    struct wire_state_pos pos = {.part = WIRE_PART_STORE, .shard = 1, .cursor = 5};
    n = wire_encode_fetch(b, sizeof b, FUZZ_GROUP, 1, FUZZ_N, 3, 128, d, &pos, 4, NULL);
    add(b, n);

    /* A STORE chunk: two records (le16 klen | le32 vlen | key | value). */
    static const uint8_t recs[] = {3, 0, 5, 0, 0, 0, 'k', 'e', 'y', 'v', 'a', 'l', 'u', 'e',
                                   1, 0, 0, 0, 0, 0, 'z'};
    struct wire_state st = {.digest = d, .kind = WIRE_STATE_CHUNK, .flags = 0, .shards = 4,
                            .from = {.part = WIRE_PART_STORE, .shard = 1, .cursor = 0},
                            .next = {.part = WIRE_PART_STORE, .shard = 2, .cursor = 0},
                            .data = recs, .data_len = sizeof recs};
    add(b, seed_state(b, sizeof b, &st));

    /* An RCACHE chunk: an empty result, a short one, a long one (digest only). */
    size_t dl = seed_rc_entry(data, sizeof data, 3, 1000, WIRE_OP_PUT, "", 0);
    dl += seed_rc_entry(data + dl, sizeof data - dl, 7, 2000, WIRE_OP_GET, "hello", 5);
    dl += seed_rc_entry(data + dl, sizeof data - dl, 9, 3000, WIRE_OP_GET, NULL, 100);
    st = (struct wire_state){.digest = d, .kind = WIRE_STATE_CHUNK, .flags = WIRE_STATE_LAST, .shards = 4,
                             .from = {.part = WIRE_PART_RCACHE, .shard = 0, .cursor = 2},
                             .next = {.part = WIRE_PART_END, .shard = 0, .cursor = 0},
                             .data = data, .data_len = (uint32_t)dl};
    add(b, seed_state(b, sizeof b, &st));

    st = (struct wire_state){.digest = d, .kind = WIRE_STATE_MISSING};
    add(b, seed_state(b, sizeof b, &st));

    /* A PROOF of two CHECKPOINTs (signature areas left zero). */
    size_t pl = wire_encode_digest_msg(data, sizeof data, WIRE_CHECKPOINT, FUZZ_GROUP, 0, FUZZ_N, 0, 256, d, NULL);
    pl += wire_encode_digest_msg(data + pl, sizeof data - pl, WIRE_CHECKPOINT, FUZZ_GROUP, 1, FUZZ_N, 0, 256, d, NULL);
    FUZZ_CHECK(pl == 2u * WIRE_CHECKPOINT_MSG_SIZE);
    st = (struct wire_state){.digest = d, .kind = WIRE_STATE_PROOF, .data = data, .data_len = (uint32_t)pl};
    add(b, seed_state(b, sizeof b, &st));
}

void fuzz_seeds(fuzz_seed_add_fn add)
{
    uint8_t b[SEED_CAP], multi[SEED_CAP];
    size_t n, mlen = 0;
    uint8_t d[32];
    memset(d, 0x42, sizeof d);

    n = seed_request(b, sizeof b, 1, WIRE_OP_PUT, "key", "value", 0);
    add(b, n);
    memcpy(multi + mlen, b, n);
    mlen += n;
    n = seed_request(b, sizeof b, 15, WIRE_OP_GET, "k", NULL, WIRE_REQ_READONLY);
    add(b, n);
    n = seed_request(b, sizeof b, 0, WIRE_OP_DEL, "gone", NULL, WIRE_REQ_FULL_ALL);
    add(b, n);

    /* PRE-PREPARE: two inline requests and a digest entry; and a null batch. */
    uint8_t ents[2048];
    uint8_t req[512];
    size_t off = 0;
    size_t rl = seed_request(req, sizeof req, 4, WIRE_OP_PUT, "alpha", "one", 0);
    off += wire_entry_inline(ents + off, sizeof ents - off, req, (uint32_t)rl);
    off += wire_entry_digest(ents + off, sizeof ents - off, d, 7, 1, 99);
    rl = seed_request(req, sizeof req, 5, WIRE_OP_GET, "beta", NULL, 0);
    off += wire_entry_inline(ents + off, sizeof ents - off, req, (uint32_t)rl);
    n = wire_encode_preprepare(b, sizeof b, FUZZ_GROUP, 1, FUZZ_N, 2, 10, ents, (uint32_t)off, 3, NULL);
    add(b, n);
    memcpy(multi + mlen, b, n);
    mlen += n;
    n = wire_encode_preprepare(b, sizeof b, FUZZ_GROUP, 0, FUZZ_N, 2, 11, NULL, 0, 0, NULL);
    add(b, n);

    const uint8_t types[] = {WIRE_PREPARE, WIRE_COMMIT, WIRE_CHECKPOINT};
    for (size_t t = 0; t < sizeof types; t++) {
        n = wire_encode_digest_msg(b, sizeof b, types[t], FUZZ_GROUP, 2, FUZZ_N, 2, 10, d, NULL);
        add(b, n);
    }
    memcpy(multi + mlen, b, n);
    mlen += n;

    uint8_t rd[32];
    wire_result_digest(rd, 0, "result", 6);
    struct wire_reply rp = {.client = 3, .lane = 2, .status = 0, .rflags = 0, .result_len = 6,
                            .result_digest = rd, .result = (const uint8_t *)"result"};
    add(b, wire_encode_reply(b, sizeof b, FUZZ_GROUP, 1, 2, 1003, &rp, NULL));
    rp.result = NULL;
    add(b, wire_encode_reply(b, sizeof b, FUZZ_GROUP, 1, 2, 1003, &rp, NULL));

    /* VIEW-CHANGE (C, P, Q) and NEW-VIEW (signature areas left zero). */
    struct wire_view_change_entry cp[2] = {{.seq = 128}, {.seq = 256}};
    struct wire_view_change_entry pq[3] = {{.seq = 130, .view = 1}, {.seq = 130, .view = 0}, {.seq = 131, .view = 1}};
    memset(pq[1].digest, 7, 32);
    add(b, wire_encode_view_change(b, sizeof b, FUZZ_GROUP, 2, 3, 128, cp, 2, pq, 1, pq, 3, NULL));
    uint16_t ids[3] = {0, 1, 3};
    uint8_t vd[3][32], ch[2][32], xf[2] = {0, WIRE_NV_NEED};
    memset(vd, 5, sizeof vd);
    memset(ch, 6, sizeof ch);
    add(b, wire_encode_new_view(b, sizeof b, FUZZ_GROUP, 3, 3, 256, d, ids, (const uint8_t(*)[32])vd, 3,
                                (const uint8_t(*)[32])ch, xf, 2, NULL));

    /* REQUEST-FETCH: a large request by digest (FETCH, part REQUEST). */
    add(b, wire_encode_request_fetch(b, sizeof b, FUZZ_GROUP, 1, FUZZ_N, 2, 10, d, NULL));

    seeds_catchup(add, d);

    /* A datagram of several messages. */
    add(multi, mlen);

    /* A deployment's REPLYs: the map epoch after the fixed part (docs/design.md §6.3). */
    rp.epoch = 2;
    add(b, wire_encode_reply(b, sizeof b, FUZZ_GROUP, 1, 2, 1003, &rp, NULL));
    rp.result = (const uint8_t *)"result";
    add(b, wire_encode_reply(b, sizeof b, FUZZ_GROUP, 1, 2, 1003, &rp, NULL));
}
