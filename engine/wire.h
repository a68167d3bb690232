/* The wire format of bftkv: message layout, encoders, and the validating decoder.
 *
 * A datagram carries one or more messages back to back (the transport coalesces
 * messages bound for the same destination, DESIGN §5 "The datagram budget"). Every
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
 *                result_len u32 | result digest[32] | result (result_len bytes,
 *                present only with WIRE_REPLY_FULL; then the decoder checks it
 *                against the result digest, BAD_DIGEST). pad is 0. Without FULL,
 *                result_len still gives the result's length.
 *                auth: one MAC, for the client (16)
 *   CHECKPOINT   state digest[32]            auth: Ed25519 signature (64)
 *   (VIEW-CHANGE, NEW-VIEW and state-transfer types are reserved for the next issue;
 *   until then the decoder drops them as BAD_TYPE.)
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
#define WIRE_PP_FIXED 34u       /* D, count */
#define WIRE_PP_ENTRY_FIXED 5u  /* kind, len */
#define WIRE_PP_DIGEST_ENTRY 44u

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
};

enum wire_entry_kind {
    WIRE_ENTRY_INLINE = 1,
    WIRE_ENTRY_DIGEST = 2,
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
        struct {
            const uint8_t *digest;  /* PRE-PREPARE, PREPARE, COMMIT: D; CHECKPOINT: state */
            uint16_t count;         /* PRE-PREPARE: entries */
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

/* REPLY: result may be NULL (digest-only reply); result_digest is always sent.
 * WIRE_REPLY_FULL is set iff result != NULL, whatever rp->rflags says. */
size_t wire_encode_reply(uint8_t *buf, size_t cap, uint16_t group, uint16_t sender, uint64_t view,
                         uint64_t timestamp, const struct wire_reply *rp, size_t *auth_off);

/* Digests (BLAKE2b-256). The request digest covers header and body, not the
 * authenticator, and reads the header's view hint as 0, so the same request
 * retransmitted with a new authenticator or view hint keeps its digest. The result
 * digest covers le16 status || result. */
void wire_digest(uint8_t out[32], const void *data, size_t len);
void wire_request_digest(uint8_t out[32], const struct wire_msg *request);
void wire_result_digest(uint8_t out[32], int16_t status, const void *result, size_t len);

/* The authenticator size for a type in a group of n replicas. */
uint16_t wire_auth_len(uint8_t type, uint16_t n);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_WIRE_H */
