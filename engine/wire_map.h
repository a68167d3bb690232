/* Map discovery's messages: a client that knows only seed addresses and the
 * admin's public key asks a node for the deployment map it serves
 * (docs/design.md §6.4). Two message types outside the engine's range, like
 * the admin protocol's (engine/wire_admin.h), with the engine's 32-byte
 * header; the engine never sees them (a node takes them out of a datagram
 * before any group's replica does).
 *
 *   MAP-REQUEST (14)  client -> node
 *     header: type 14, group 0, sender = client id, view = the epoch of the map
 *             the client holds (0: none), seq = nonce, body_len = 4,
 *             auth_len = 64, flags 0
 *     body:   offset u32: the first byte of the signed map wanted
 *     auth:   the client's Ed25519 signature of header || body
 *   MAP-REPLY (15)    node -> client
 *     header: type 15, group 0, sender 0, view = the epoch of the node's map,
 *             seq = the request's nonce, body_len = 8 + chunk, auth_len 0,
 *             flags 0
 *     body:   total u32 (the signed map's length), offset u32, then the bytes
 *             offset .. offset + chunk of the signed map (chunk at most
 *             WIRE_MAP_CHUNK_MAX; the last chunk ends at total)
 *
 * Why the request is signed and the reply is not: the reply is self-
 * authenticating once whole (the admin's signature over the map, checked by
 * the acceptance rule, docs/design.md §6.2), so a MAC on it would add nothing
 * a forger could not already fail at. The request is signed because a reply
 * is up to ~48 KiB against a ~100-byte request: a node answering anyone would
 * be an amplifier for spoofed source addresses. A client that knows no node
 * key cannot make the pairwise MAC of §5.2 (it needs the node's X25519 key,
 * which is in the map it is asking for), but the node knows every allowed
 * client's Ed25519 key from its own map, so it answers only allowed clients,
 * once per nonce (a replayed request from a spoofed address gets nothing).
 *
 *   MAP-NOTICE (16)   node -> client: "not mine, my map's epoch is E"
 *     header: type 16, group = the group the refused REQUEST named, sender 0,
 *             view = the epoch of the node's map, seq = the REQUEST's
 *             timestamp, body_len 0, auth_len 0, flags 0
 *
 * A node sends it instead of dropping in silence a client's REQUEST for a
 * group it does not host (server/node_map.h). It is not authenticated: the
 * node does not host the group, so it holds no pairwise key the REQUEST's
 * authenticator was made with for it, and a client acts on the notice only by
 * fetching the map, which must verify (docs/design.md §6.3). It is 32 bytes,
 * smaller than any REQUEST (at least 32 + 11 + 4 * 16 bytes), so it cannot
 * amplify a spoofed flood, and the node sends few (server/node_map.h).
 */
#ifndef BFTKV_ENGINE_WIRE_MAP_H
#define BFTKV_ENGINE_WIRE_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/wire.h"
#include "engine/wire_admin.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WIRE_MAP_REQUEST 14u
#define WIRE_MAP_REPLY 15u
#define WIRE_MAP_NOTICE 16u
BFTKV_STATIC_ASSERT(WIRE_MAP_REQUEST > WIRE_ADMIN_REPLY, "map types follow the admin protocol's");

#define WIRE_MAP_SIG_SIZE 64u /* crypto_sign_BYTES */
#define WIRE_MAP_REQUEST_BODY 4u
#define WIRE_MAP_REQUEST_SIZE (WIRE_HEADER_SIZE + WIRE_MAP_REQUEST_BODY + WIRE_MAP_SIG_SIZE)
#define WIRE_MAP_REPLY_PREFIX 8u
/* Bytes of the signed map per reply: one datagram each. */
#define WIRE_MAP_CHUNK_MAX (48u * 1024u)
#define WIRE_MAP_REPLY_MAX (WIRE_HEADER_SIZE + WIRE_MAP_REPLY_PREFIX + WIRE_MAP_CHUNK_MAX)
BFTKV_STATIC_ASSERT(WIRE_MAP_REPLY_MAX <= BFTKV_DATAGRAM_MAX, "a map chunk fits one datagram");

struct wire_map_request {
    uint16_t client;
    uint64_t epoch; /* the map the client holds; 0 none */
    uint64_t nonce;
    uint32_t offset;
};

struct wire_map_reply {
    uint64_t epoch; /* the node's map */
    uint64_t nonce;
    uint32_t total;
    uint32_t offset;
    const uint8_t *chunk; /* into the message */
    uint32_t chunk_len;
};

/* Client: a MAP-REQUEST signed with the client's Ed25519 secret key. Returns
 * its size (WIRE_MAP_REQUEST_SIZE), or 0 when cap is too small. */
size_t wire_map_request_encode(uint8_t *buf, size_t cap, const struct wire_map_request *rq,
                               const uint8_t sign_sk[64]);

/* Node: the form of a MAP-REQUEST (msg: one framed message, len its size);
 * true and *out when well formed. Checks no signature: the caller looks the
 * client up first, then calls wire_map_request_verify with its key. */
bool wire_map_request_check(const uint8_t *msg, size_t len, struct wire_map_request *out);

/* Node: does the checked MAP-REQUEST carry client_pk's signature? */
bool wire_map_request_verify(const uint8_t *msg, size_t len, const uint8_t client_pk[32]);

/* Node: the reply to rq carrying signed_map (total bytes) from rq->offset on:
 * its size, or 0 when rq->offset is not below total or cap is too small. */
size_t wire_map_reply_encode(uint8_t *buf, size_t cap, uint64_t epoch, const struct wire_map_request *rq,
                             const uint8_t *signed_map, uint32_t total);

/* Client: the form of a MAP-REPLY: true and *out when well formed, its total at
 * most total_max and its chunk inside it (non-empty). Nothing in it is trusted
 * until the whole map verifies. */
bool wire_map_reply_check(const uint8_t *msg, size_t len, uint32_t total_max, struct wire_map_reply *out);

struct wire_map_notice {
    uint16_t group;     /* the group the refused REQUEST named */
    uint64_t epoch;     /* the node's map */
    uint64_t timestamp; /* the refused REQUEST's */
};

#define WIRE_MAP_NOTICE_SIZE WIRE_HEADER_SIZE
BFTKV_STATIC_ASSERT(WIRE_MAP_NOTICE_SIZE < WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED + 1u + 4u * BFTKV_MAC_SIZE,
                    "a MAP-NOTICE is smaller than the smallest REQUEST it answers");

/* Node: a MAP-NOTICE: its size (WIRE_MAP_NOTICE_SIZE), or 0 when cap is too
 * small. */
size_t wire_map_notice_encode(uint8_t *buf, size_t cap, const struct wire_map_notice *n);

/* Client: the form of a MAP-NOTICE: true and *out when well formed. Nothing
 * in it is authenticated: its epoch is a reason to fetch the map, no more. */
bool wire_map_notice_check(const uint8_t *msg, size_t len, struct wire_map_notice *out);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_WIRE_MAP_H */
