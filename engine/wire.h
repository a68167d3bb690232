/* The wire format of bftkv: message layout, encoders, and the validating decoder.
 *
 * A datagram carries one or more messages back to back (the transport coalesces
 * messages bound for the same destination, docs/design.md §5.1). Every
 * message is
 *
 *     header (WIRE_HEADER_SIZE bytes) | body (body_len bytes) | auth (auth_len bytes)
 *
 * all integers little-endian. The header:
 *
 *     off size field
 *       0    2 magic      WIRE_MAGIC
 *       2    1 version    WIRE_VERSION
 *       3    1 type       enum wire_type
 *       4    2 group      replica group id
 *       6    2 sender     replica id (0..N-1) or client id, by type
 *       8    8 view       view number (REQUEST: the client's view hint)
 *      16    8 seq        sequence number (REQUEST/REPLY: the client's timestamp)
 *      24    4 body_len
 *      28    2 auth_len
 *      30    2 flags      reserved: must be 0 in version 1 (else BAD_FIELD)
 *
 * Bodies, per type (all lengths validated against body_len on decode):
 *
 *   REQUEST      lane u16 | op u8 | rflags u8 | klen u16 | vlen u32 | key | value
 *                1 <= klen <= BFTKV_KEY_MAX, vlen <= BFTKV_VALUE_MAX, GET/DEL have
 *                vlen 0, READONLY only on a GET, no unknown rflags bit
 *                auth: authenticator, one MAC per replica (N * 16 bytes)
 *   PRE-PREPARE  batch digest D[32] | count u16 | entries...
 *                entry: kind u8 | len u32 | bytes
 *                  kind INLINE: bytes = a complete REQUEST message (header, body,
 *                               the client's authenticator), so every backup can
 *                               check the client's MAC itself (TOCS 2002 §4.2)
 *                  kind DIGEST: bytes = request digest[32] | client u16 | lane u16 |
 *                               timestamp u64; the request itself travelled from
 *                               the client to every replica (large requests)
 *                A request is inlined iff its header + body is at most
 *                BFTKV_INLINE_REQUEST_MAX bytes (its authenticator not counted);
 *                the decoder rejects a larger INLINE entry (BAD_FIELD).
 *                D = BLAKE2b-256 over the entries region. count = 0 is a null batch.
 *                auth: authenticator (N * 16)
 *   PREPARE      D[32]                       auth: authenticator
 *   COMMIT       D[32]                       auth: authenticator
 *   REPLY        client u16 | lane u16 | status i16 | rflags u8 | pad u8 |
 *                result_len u32 | result digest[32] | [epoch u64] | result
 *                (result_len bytes, present only with WIRE_REPLY_FULL; then the
 *                decoder checks it against the result digest, BAD_DIGEST). pad
 *                is 0. Without FULL, result_len still gives the result's length.
 *                epoch: present iff WIRE_REPLY_EPOCH, then > 0: the map epoch of
 *                the replying node of a deployment (docs/design.md §6.3); a
 *                single group's replies never carry it.
 *                auth: one MAC, for the client (16), over the header, the fixed
 *                part and the epoch (the result is bound by its digest)
 *   CHECKPOINT   state digest[32]            auth: Ed25519 signature (64)
 *
 *   Catch-up (engine/wire_catchup.c; TOCS 2002 §5.2-§5.3, §6.2). Every integer
 *   little-endian, every pad byte 0; auth: authenticator (N * 16) on all three.
 *   STATUS       header view = the sender's view, seq = its last executed seq.
 *                low u64 (its stable checkpoint h) | max_seq u64 (the highest
 *                seq it has seen) | flags u32 | pad u32; low <= seq <= max_seq;
 *                flags: WIRE_STATUS_NO_STATE (the sender restarted with empty
 *                memory and holds no certified state yet), other bits 0.
 *   FETCH        header seq = the checkpoint n whose state is wanted.
 *                state digest[32] (what q replicas signed for n) | part u8 |
 *                count u8 | pad u16 | shard u32 | cursor u64
 *                Asks for up to count (1..WIRE_FETCH_CHUNKS_MAX) consecutive
 *                chunks of n's state from position (part, shard, cursor): part
 *                STORE walks the server's snapshot shard by shard (cursor:
 *                store_snapshot_shard_encode's), part RCACHE the reply cache
 *                (shard 0, cursor: entry key, client << 16 | lane).
 *                Part REQUEST (a REQUEST-FETCH, not a state position): header
 *                seq = the seq of the batch that names the request, digest = its
 *                request digest (wire_request_digest), count 1, shard 0, cursor
 *                0. Asks for a large request by digest; the answer is the
 *                REQUEST itself, as its client sent it (request_fetch.c).
 *   STATE        header seq = n.
 *                state digest[32] | kind u8 | from_part u8 | next_part u8 | flags u8 |
 *                shards u32 | from_shard u32 | next_shard u32 | from_cursor u64 |
 *                next_cursor u64 | data_len u32 | data (data_len bytes)
 *                kind CHUNK: the data from position `from` (the FETCH's) up to
 *                  position `next` (> from; next_part END: nothing follows); a
 *                  STORE part's data is store records (le16 klen | le32 vlen |
 *                  key | value), an RCACHE part's data is reply-cache entries
 *                  (key u32 | timestamp u64 | status i16 | op u8 |
 *                  result_len u32 | result digest[32] | result, present iff
 *                  result_len <= 64; keys = client << 16 | lane, increasing,
 *                  within [from, next));
 *                  shards = the snapshot's shard count; a chunk stays in one
 *                  part and is empty only if it ends it; flags: WIRE_STATE_LAST
 *                  on the last chunk of one FETCH's answer.
 *                kind MISSING: the sender holds no snapshot of (n, digest);
 *                  positions, shards and flags 0, no data.
 *                kind PROOF: data = 1..N CHECKPOINT messages (each header | digest |
 *                  signature, WIRE_CHECKPOINT_MSG_SIZE bytes) for (n, digest),
 *                  the proof that n is stable; positions, shards and flags 0.
 *                STATE data is at most WIRE_STATE_DATA_MAX bytes.
 *
 *   View change (engine/wire_viewchange.c; TOCS 2002 §4.4-§4.5). Both signed:
 *   auth: Ed25519 signature (64) over header || body. LMAX = BFTKV_LOG_WINDOW_MAX.
 *   VIEW-CHANGE  header view = v (the view the sender moves to, >= 1), seq = h
 *                (its stable checkpoint), h <= UINT64_MAX - LMAX.
 *                ncp u16 | np u16 | nq u16 | pad u16 | C | P | Q
 *                C: ncp x (seq u64 | state digest[32]): the checkpoints the sender
 *                   holds, seq in [h, h+LMAX], strictly increasing; ncp <= LMAX+1
 *                   (the initial state is checkpoint 0 with an all-zero digest)
 *                P: np x (seq u64 | view u64 | batch digest[32]): per seq prepared
 *                   at the sender, the latest view it prepared in; seq in
 *                   (h, h+LMAX], strictly increasing, view < v; np <= LMAX
 *                Q: nq x (seq u64 | view u64 | batch digest[32]): per seq
 *                   pre-prepared at the sender, up to WIRE_VIEW_CHANGE_Q_PER_SEQ digests
 *                   with the latest view each; seq in (h, h+LMAX], non-decreasing,
 *                   distinct digests within a seq, view < v; nq <= 2 LMAX
 *   NEW-VIEW     header view = v (>= 1), seq = h* (the chosen checkpoint),
 *                h* <= UINT64_MAX - LMAX.
 *                checkpoint digest[32] | nvc u16 | nch u16 | pad u32 | V | X
 *                V: nvc x (replica u16 | digest[32]): the VIEW-CHANGEs the choice
 *                   was computed from, each named by the BLAKE2b-256 of the whole
 *                   message (signature included); replicas strictly increasing,
 *                   < N; 1 <= nvc <= N
 *                X: nch x (batch digest[32] | xflags u8): entry i is the batch
 *                   chosen for seq h*+1+i (a null batch: the digest of the empty
 *                   entries region, wire_null_batch_digest()); nch <= LMAX. xflags:
 *                   WIRE_NV_NEED (the primary lacks the batch: replicas that hold
 *                   a PRE-PREPARE with this digest at that seq send it to the
 *                   primary); no other bit.
 *
 * Decoding never trusts a byte: every field is range-checked and a message that
 * fails is dropped with one counted reason (enum wire_drop). Decoding is zero-copy:
 * the decoded structs point into the caller's buffer and live as long as it.
 */
#ifndef BFTKV_ENGINE_WIRE_H
#define BFTKV_ENGINE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WIRE_MAGIC 0xB7F1u
#define WIRE_VERSION 1u
#define WIRE_HEADER_SIZE 32u
#define WIRE_SIG_SIZE 64u
#define WIRE_REQUEST_FIXED 10u  /* lane, op, rflags, klen, vlen */
#define WIRE_REPLY_FIXED 44u    /* client .. result digest */
#define WIRE_REPLY_RFLAGS_OFF 6u /* rflags within the REPLY body */
#define WIRE_REPLY_EPOCH_SIZE 8u /* the epoch after the fixed part (WIRE_REPLY_EPOCH) */
BFTKV_STATIC_ASSERT(WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + WIRE_REPLY_EPOCH_SIZE + BFTKV_VALUE_MAX + BFTKV_MAC_SIZE
                        <= BFTKV_DATAGRAM_MAX,
                    "the largest REPLY, with an epoch, fits one datagram");
#define WIRE_PP_FIXED 34u       /* D, count */
#define WIRE_PP_ENTRY_FIXED 5u  /* kind, len */
#define WIRE_PP_DIGEST_ENTRY 44u
#define WIRE_CHECKPOINT_MSG_SIZE (32u + 32u + 64u) /* header, digest, signature */
#define WIRE_STATUS_BODY 24u   /* low, max_seq, flags, pad */
#define WIRE_STATUS_NO_STATE 1u
#define WIRE_FETCH_BODY 48u    /* digest, part, pads, shard, cursor */
#define WIRE_STATE_FIXED 68u   /* digest .. data_len */
/* Largest STATE data: one maximal store record (store_snapshot_shard_encode needs
 * room for one: record header 6 + key + value); the message then still fits a
 * datagram with a full authenticator. */
#define WIRE_STATE_DATA_MAX (6u + BFTKV_KEY_MAX + BFTKV_VALUE_MAX)
/* One reply-cache entry of an RCACHE chunk without its result bytes. */
#define WIRE_RC_ENTRY_FIXED 51u
#define WIRE_RC_RESULT_MAX 64u /* result bytes travel iff result_len <= this */
/* View change (engine/wire_viewchange.c). */
#define WIRE_VIEW_CHANGE_FIXED 8u        /* ncp, np, nq, pad */
#define WIRE_VIEW_CHANGE_CKPT_ENTRY 40u  /* seq, digest */
#define WIRE_VIEW_CHANGE_PQ_ENTRY 48u    /* seq, view, digest */
#define WIRE_VIEW_CHANGE_Q_PER_SEQ 2u    /* pre-prepared digests kept per seq (TOCS 2002 §4.5.1) */
#define WIRE_NV_FIXED 40u       /* checkpoint digest, nvc, nch, pad */
#define WIRE_NV_VIEW_CHANGE_ENTRY 34u    /* replica, digest */
#define WIRE_NV_CHOICE_ENTRY 33u /* digest, xflags */
#define WIRE_NV_NEED 0x01u      /* NEW-VIEW xflags: the primary lacks this batch */
/* The largest VIEW-CHANGE and NEW-VIEW for a log window of l and checkpoint
 * interval k (the replica sizes its buffers with these), and at the maxima. */
#define WIRE_VIEW_CHANGE_SIZE(l, k)                                                     \
    (WIRE_HEADER_SIZE + WIRE_VIEW_CHANGE_FIXED + ((l) / (k) + 1u) * WIRE_VIEW_CHANGE_CKPT_ENTRY            \
     + (l) * (1u + WIRE_VIEW_CHANGE_Q_PER_SEQ) * WIRE_VIEW_CHANGE_PQ_ENTRY + WIRE_SIG_SIZE)
#define WIRE_NEW_VIEW_SIZE(l, n)                                                        \
    (WIRE_HEADER_SIZE + WIRE_NV_FIXED + (n) * WIRE_NV_VIEW_CHANGE_ENTRY + (l) * WIRE_NV_CHOICE_ENTRY + WIRE_SIG_SIZE)
#define WIRE_VIEW_CHANGE_MAX WIRE_VIEW_CHANGE_SIZE(BFTKV_LOG_WINDOW_MAX, 1u)
BFTKV_STATIC_ASSERT(WIRE_VIEW_CHANGE_MAX <= BFTKV_DATAGRAM_MAX,
                    "a VIEW-CHANGE for the largest log window (K = 1) must fit one datagram");
BFTKV_STATIC_ASSERT(WIRE_NEW_VIEW_SIZE(BFTKV_LOG_WINDOW_MAX, BFTKV_REPLICAS_MAX) <= BFTKV_DATAGRAM_MAX,
                    "a NEW-VIEW must fit one datagram");

enum wire_type {
    WIRE_REQUEST = 1,
    WIRE_PREPREPARE = 2,
    WIRE_PREPARE = 3,
    WIRE_COMMIT = 4,
    WIRE_REPLY = 5,
    WIRE_CHECKPOINT = 6,
    WIRE_VIEW_CHANGE = 7, /* signed; engine/wire_viewchange.c */
    WIRE_NEW_VIEW = 8,    /* signed; engine/wire_viewchange.c */
    WIRE_STATUS = 9,      /* catch-up: a replica's progress; engine/wire_catchup.c */
    WIRE_FETCH = 10,      /* state transfer request; engine/wire_catchup.c */
    WIRE_STATE = 11,      /* state transfer chunk; engine/wire_catchup.c */
    WIRE_TYPE_MAX = 11,
};

enum wire_op {
    WIRE_OP_PUT = 1,
    WIRE_OP_GET = 2,
    WIRE_OP_DEL = 3,
};

/* REQUEST rflags */
enum wire_request_flag {
    WIRE_REQ_READONLY = 1u << 0,  /* read-only fast path: send to all, 2f+1 replies */
    WIRE_REQ_FULL_ALL = 1u << 1,  /* retransmission: every replica sends the full result */
};

/* REPLY rflags */
enum wire_reply_flag {
    WIRE_REPLY_FULL = 1u << 0,     /* the result bytes are present */
    WIRE_REPLY_READONLY = 1u << 1, /* answer of the read-only fast path */
    WIRE_REPLY_EPOCH = 1u << 2,    /* the sender's map epoch follows the fixed part */
};

enum wire_entry_kind {
    WIRE_ENTRY_INLINE = 1,
    WIRE_ENTRY_DIGEST = 2,
};

/* STATE kinds and state-transfer positions (catch-up, engine/wire_catchup.c). */
enum wire_state_kind {
    WIRE_STATE_CHUNK = 1,
    WIRE_STATE_MISSING = 2,
    WIRE_STATE_PROOF = 3,
};

#define WIRE_FETCH_CHUNKS_MAX 16u /* chunks one FETCH may ask for */
#define WIRE_STATE_LAST 1u        /* STATE flags: the answer to a FETCH ends here */

enum wire_state_part {
    WIRE_PART_STORE = 1,  /* store records, shard by shard */
    WIRE_PART_RCACHE = 2, /* reply-cache entries */
    WIRE_PART_END = 3,    /* next position after the last chunk */
    WIRE_PART_REQUEST = 4, /* FETCH only: a large request by digest (not a position) */
};

/* Why a message was dropped by the decoder. X-macro so the stats command can print
 * every counter by name. */
#define WIRE_DROP_LIST(X)                                                          \
    X(TRUNCATED, "shorter than its header or its declared lengths")                \
    X(BAD_MAGIC, "wrong magic")                                                    \
    X(BAD_VERSION, "unsupported version")                                          \
    X(BAD_TYPE, "unknown message type")                                            \
    X(BAD_GROUP, "another group's message")                                        \
    X(BAD_SENDER, "sender out of range for the type")                              \
    X(BAD_LENGTH, "body or auth length inconsistent with the type")                \
    X(BAD_FIELD, "a body field out of range (op, key or value length, kind)")      \
    X(BAD_DIGEST, "batch digest does not match the batch")                         \
    X(BAD_AUTH, "MAC or signature does not verify")                                \
    X(UNKNOWN_CLIENT, "client not in the configured set")

enum wire_drop {
#define WIRE_DROP_ENUM(name, text) WIRE_DROP_##name,
    WIRE_DROP_LIST(WIRE_DROP_ENUM)
#undef WIRE_DROP_ENUM
    WIRE_DROP_COUNT
};

struct wire_drop_counters {
    uint64_t count[WIRE_DROP_COUNT];
};

const char *wire_drop_name(enum wire_drop reason);

struct wire_header {
    uint8_t type;
    uint16_t group;
    uint16_t sender;
    uint64_t view;
    uint64_t seq;
    uint32_t body_len;
    uint16_t auth_len;
    uint16_t flags;
};

struct wire_request {
    uint16_t client;   /* = header.sender */
    uint16_t lane;
    uint64_t timestamp;/* = header.seq */
    uint8_t op;
    uint8_t rflags;
    uint16_t klen;
    uint32_t vlen;
    const uint8_t *key;
    const uint8_t *value;
};

struct wire_reply {
    uint16_t client;
    uint16_t lane;
    int16_t status;
    uint8_t rflags;
    uint32_t result_len;
    const uint8_t *result_digest; /* 32 bytes */
    const uint8_t *result;        /* result_len bytes, or NULL without WIRE_REPLY_FULL */
    uint64_t epoch;               /* the sender's map epoch (WIRE_REPLY_EPOCH); 0: none */
};

/* One PRE-PREPARE entry, as iterated by wire_batch_next(). */
struct wire_batch_entry {
    uint8_t kind;
    const uint8_t *bytes;   /* INLINE: the REQUEST message; DIGEST: 44 bytes */
    uint32_t len;
    /* DIGEST entries, decoded: */
    const uint8_t *request_digest;
    uint16_t client;
    uint16_t lane;
    uint64_t timestamp;
};

/* Catch-up bodies (decoded by wire_catchup_decode_body). */
struct wire_status {
    uint64_t low;     /* the sender's stable checkpoint h */
    uint64_t max_seq; /* highest seq it has seen; last executed is header.seq */
    uint32_t flags;   /* WIRE_STATUS_NO_STATE or 0 */
};

/* A position in a checkpoint's state (FETCH asks from one; STATE spans two). */
struct wire_state_pos {
    uint8_t part;     /* enum wire_state_part */
    uint32_t shard;
    uint64_t cursor;
};

struct wire_fetch {
    const uint8_t *digest; /* 32 bytes: the signed state digest of header.seq */
    uint8_t count;         /* chunks wanted, 1..WIRE_FETCH_CHUNKS_MAX */
    struct wire_state_pos pos;
};

/* One reply-cache entry of an RCACHE chunk (wire_rc_entry_next / _put). */
struct wire_rc_entry {
    uint32_t key;          /* client << 16 | lane: no replica's configuration in it */
    uint64_t timestamp;    /* > 0 */
    int16_t status;
    uint8_t op;            /* enum wire_op */
    uint32_t result_len;
    const uint8_t *digest; /* 32 bytes: wire_result_digest(status, result) */
    const uint8_t *result; /* result_len bytes when result_len <= WIRE_RC_RESULT_MAX, else NULL */
};

struct wire_state {
    const uint8_t *digest; /* 32 bytes */
    uint8_t kind;          /* enum wire_state_kind */
    uint8_t flags;         /* CHUNK: WIRE_STATE_LAST or 0 */
    uint32_t shards;       /* CHUNK: the snapshot's store shard count */
    struct wire_state_pos from, next;
    const uint8_t *data;
    uint32_t data_len;
};

/* A decoded message: the header plus pointers into the caller's buffer. */
struct wire_msg {
    struct wire_header h;
    const uint8_t *raw;      /* start of the header */
    size_t raw_len;          /* header + body + auth */
    const uint8_t *body;
    const uint8_t *auth;
    union {
        struct wire_request request;
        struct wire_reply reply;
        struct wire_status status;
        struct wire_fetch fetch;
        struct wire_state state;
        struct {                    /* VIEW-CHANGE: read with wire_view_change_* below */
            uint16_t ncp, np, nq;
            const uint8_t *cp, *p, *q;
        } view_change;
        struct {                    /* NEW-VIEW: read with wire_nv_* below */
            const uint8_t *ckpt_digest;
            uint16_t nvc, nch;
            const uint8_t *vcs, *choices;
        } nv;
        struct {
            const uint8_t *digest;  /* PRE-PREPARE, PREPARE, COMMIT: D; CHECKPOINT: state */
            uint16_t count;         /* PRE-PREPARE: entries */
            uint16_t named;         /* PRE-PREPARE: of those, DIGEST entries (large
                                       requests named by digest) */
            const uint8_t *entries; /* PRE-PREPARE: the entries region */
            uint32_t entries_len;
        } batch;
    } u;
};

/* What the decoder needs to know about the group: limits that depend on the
 * configuration rather than the format. */
struct wire_limits {
    uint16_t group;
    uint16_t n;           /* replicas */
    uint16_t clients_max; /* client ids are 0..clients_max-1 */
};

/* Decode the message that starts at buf (len bytes available). On success returns
 * 0, fills *msg, and sets *consumed to the message's size so the caller can go on
 * to the next message of the datagram. On failure returns BFTKV_E_CORRUPT,
 * increments drops->count[reason] (drops may be NULL) and, when the header was
 * readable, still sets *consumed so the rest of the datagram can be tried;
 * *consumed = 0 means stop. Precisely: *consumed is the message's size whenever
 * magic and version are right and header + body_len + auth_len fit in len, else
 * 0 (TRUNCATED, BAD_MAGIC, BAD_VERSION). The client ids in a REPLY and in DIGEST
 * entries must be < lim->clients_max too. Validates the header, lengths per type, every body
 * field, and for PRE-PREPARE that D is the digest of its entries and every entry
 * is well formed (INLINE entries decode as REQUESTs of the same group). Does not
 * check authentication: see auth.h. */
int wire_decode(const uint8_t *buf, size_t len, const struct wire_limits *lim, struct wire_msg *msg,
                size_t *consumed, struct wire_drop_counters *drops);

/* Iterate the entries of a decoded PRE-PREPARE: *off starts at 0. Returns 1 and
 * fills *e while there is an entry, 0 at the end. For INLINE entries client, lane
 * and timestamp are copied from the inner REQUEST too (request_digest is NULL). Only valid on a message that
 * wire_decode() accepted (it validated every entry already). */
int wire_batch_next(const struct wire_msg *pp, uint32_t *off, struct wire_batch_entry *e);

/* ---- Encoders --------------------------------------------------------------
 * Each writes one complete message into buf (cap bytes) and returns its size, or
 * 0 when cap is too small. The authenticator/signature area is reserved (auth_len
 * bytes, zeroed) and filled afterwards by auth.h; *auth_off (may be NULL) receives
 * its offset. */

void wire_header_write(uint8_t *buf, const struct wire_header *h);
void wire_header_read(const uint8_t *buf, struct wire_header *h);

size_t wire_encode_request(uint8_t *buf, size_t cap, uint16_t group, uint16_t n, uint64_t view_hint,
                           const struct wire_request *rq, size_t *auth_off);

/* The decoded view of a PRE-PREPARE held at buf (len bytes) that wire_decode
 * accepted before, or that we encoded: the struct wire_decode gives, pointing
 * into buf. A replica keeps such copies in its log slots. */
void wire_preprepare_view(struct wire_msg *m, const uint8_t *buf, size_t len);

/* PRE-PREPARE from an already-built entries region (see wire_entry_* below). */
size_t wire_encode_preprepare(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n,
                              uint64_t view, uint64_t seq, const uint8_t *entries, uint32_t entries_len,
                              uint16_t count, size_t *auth_off);

/* Append one entry to an entries region under construction; returns bytes written
 * or 0 when it does not fit. */
size_t wire_entry_inline(uint8_t *buf, size_t cap, const uint8_t *request_msg, uint32_t len);
size_t wire_entry_digest(uint8_t *buf, size_t cap, const uint8_t digest[32], uint16_t client, uint16_t lane,
                         uint64_t timestamp);

/* PREPARE, COMMIT (authenticator) and CHECKPOINT (signature): body is one digest. */
size_t wire_encode_digest_msg(uint8_t *buf, size_t cap, uint8_t type, uint16_t group, uint16_t sender,
                              uint16_t n, uint64_t view, uint64_t seq, const uint8_t digest[32],
                              size_t *auth_off);

/* The lane an encoded REPLY (msg, len bytes, one message) answers, read from its
 * fixed part without decoding; UINT16_MAX when len is too short to hold it. */
uint16_t wire_reply_lane(const uint8_t *msg, size_t len);

/* REPLY: result may be NULL (digest-only reply); result_digest is always sent.
 * WIRE_REPLY_FULL is set iff result != NULL, and WIRE_REPLY_EPOCH iff
 * rp->epoch != 0, whatever rp->rflags says. */
size_t wire_encode_reply(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view,
                         uint64_t timestamp, const struct wire_reply *rp, size_t *auth_off);

/* Digests (BLAKE2b-256). The request digest covers header and body, not the
 * authenticator, and reads the header's view hint as 0, so the same request
 * retransmitted with a new authenticator or view hint keeps its digest. The result
 * digest covers le16 status || result. */
void wire_digest(uint8_t out[32], const void *data, size_t len);
void wire_request_digest(uint8_t out[32], const struct wire_msg *request);
void wire_result_digest(uint8_t out[32], int16_t status, const void *result, size_t len);

/* ---- Catch-up messages (engine/wire_catchup.c) ---------------------------------
 * Encoders as above (authenticator area reserved, *auth_off its offset). */
size_t wire_encode_status(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n, uint64_t view,
                          uint64_t last_executed, uint64_t low, uint64_t max_seq, uint32_t flags,
                          size_t *auth_off);
size_t wire_encode_fetch(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n, uint64_t view,
                         uint64_t seq, const uint8_t digest[32], const struct wire_state_pos *pos, uint8_t count,
                         size_t *auth_off);
/* FETCH part REQUEST: the large request with request digest `digest`, named by
 * the batch at seq (> 0). */
size_t wire_encode_request_fetch(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n,
                                 uint64_t view, uint64_t seq, const uint8_t digest[32], size_t *auth_off);
/* STATE: st->data (st->data_len bytes) may already sit in place at
 * buf + WIRE_HEADER_SIZE + WIRE_STATE_FIXED (then nothing is moved);
 * wire_state_data_at() says where that is. */
size_t wire_encode_state(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint16_t n, uint64_t view,
                         uint64_t seq, const struct wire_state *st, size_t *auth_off);
uint8_t *wire_state_data_at(uint8_t *buf);
/* Append one reply-cache entry to RCACHE data under construction; bytes written
 * or 0 when it does not fit. e->result must hold result_len bytes when
 * result_len <= WIRE_RC_RESULT_MAX. */
size_t wire_rc_entry_put(uint8_t *buf, size_t cap, const struct wire_rc_entry *e);
/* Iterate the entries of a decoded RCACHE chunk (*off from 0): 1 and *e while
 * there is one, 0 at the end. Only on a STATE that wire_decode() accepted. */
int wire_rc_entry_next(const struct wire_state *st, uint32_t *off, struct wire_rc_entry *e);
/* -1, 0, 1 as a is before, at, after b in the order of a state's positions. */
int wire_state_pos_cmp(const struct wire_state_pos *a, const struct wire_state_pos *b);
/* For wire.c's decoder: validate the body of a STATUS, FETCH or STATE whose
 * header, lengths and auth_len were checked; fills msg->u. Returns
 * WIRE_DROP_COUNT when the body is well formed, else the reason. */
enum wire_drop wire_catchup_decode_body(struct wire_msg *msg, const struct wire_limits *lim);

/* ---- View change (engine/wire_viewchange.c) -------------------------------------
 * One entry of a VIEW-CHANGE's C (view 0), P or Q set. */
struct wire_view_change_entry {
    uint64_t seq;
    uint64_t view;
    uint8_t digest[BFTKV_DIGEST_SIZE];
};

/* VIEW-CHANGE(view, h, C, P, Q) from arrays already in the wire's order (see the
 * layout above; the encoder asserts it). Signature area reserved at *auth_off. */
size_t wire_encode_view_change(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view, uint64_t h,
                               const struct wire_view_change_entry *cp, uint16_t ncp,
                               const struct wire_view_change_entry *p, uint16_t np,
                               const struct wire_view_change_entry *q, uint16_t nq, size_t *auth_off);
/* NEW-VIEW(view, h*, checkpoint digest, V, X). viewchange_digests[i] names the
 * VIEW-CHANGE of replica viewchange_ids[i]; choices[i] is the batch for seq h*+1+i. */
size_t wire_encode_new_view(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view, uint64_t h,
                            const uint8_t ckpt_digest[32], const uint16_t *viewchange_ids,
                            const uint8_t (*viewchange_digests)[32], uint16_t nvc, const uint8_t (*choices)[32],
                            const uint8_t *xflags, uint16_t nch, size_t *auth_off);
/* Entry i of a decoded VIEW-CHANGE's C, P or Q set (i below ncp, np, nq). */
void wire_view_change_checkpoint(const struct wire_msg *m, uint32_t i, struct wire_view_change_entry *e);
void wire_view_change_prepared(const struct wire_msg *m, uint32_t i, struct wire_view_change_entry *e);
void wire_view_change_preprepared(const struct wire_msg *m, uint32_t i, struct wire_view_change_entry *e);
/* Entry i of a decoded NEW-VIEW's V and X lists. */
void wire_nv_view_change(const struct wire_msg *m, uint32_t i, uint16_t *replica, const uint8_t **digest);
void wire_nv_choice(const struct wire_msg *m, uint32_t i, const uint8_t **digest, uint8_t *xflags);
/* The digest of a null batch (count 0, empty entries region): the D of a
 * PRE-PREPARE that fills a gap (TOCS 2002 §4.4). */
void wire_null_batch_digest(uint8_t out[32]);
/* For wire.c's decoder: validate the body of a VIEW-CHANGE or NEW-VIEW whose
 * header, lengths and auth_len were checked; fills msg->u. Returns
 * WIRE_DROP_COUNT when the body is well formed, else the reason. */
enum wire_drop wire_viewchange_decode_body(struct wire_msg *msg, const struct wire_limits *lim);

/* The authenticator size for a type in a group of n replicas. */
uint16_t wire_auth_len(uint8_t type, uint16_t n);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_WIRE_H */
