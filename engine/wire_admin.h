/* The admin protocol: a client of the allow-list asks a replica for its stats
 * over the same UDP socket and with the same keys as its requests
 * (`bftkv stats REPLICA`, `tools/cluster status`).
 *
 * Two message types outside the engine's range (engine/wire.h stops at
 * WIRE_TYPE_MAX = 11; the engine never sees them: the server runtime takes them
 * out of a datagram before stepping the engine), with the engine's 32-byte header:
 *
 *   ADMIN (12)        client -> replica
 *     header: type 12, group, sender = client id, view 0, seq = nonce,
 *             body_len = 1, auth_len = n * 16, flags 0
 *     body:   command u8 (ADMIN_CMD_STATS = 1; ADMIN_CMD_LOG_LEVEL + level)
 *     auth:   an authenticator as on a REQUEST (engine/auth.h): one SipHash MAC
 *             per replica over header || body, keyed by the client-replica key
 *   ADMIN-REPLY (13)  replica -> client
 *     header: type 13, group, sender = replica id, view = the replica's view,
 *             seq = the request's nonce, body_len = JSON bytes, auth_len = 16
 *     body:   UTF-8 JSON text, no terminator, at most ADMIN_JSON_MAX bytes
 *     auth:   one MAC for the client, as on a REPLY (auth_reply_fill): over
 *             header || BLAKE2b-256(body) (or header || body when the body is at
 *             most 64 bytes)
 *
 * Nonces. The client draws nonces from the wall clock (ns since the epoch) and
 * sends a new, larger one with every retransmission; a replica answers a nonce
 * only if it is larger than the last one it answered for that client, so a
 * replayed request (possibly with a spoofed source address) gets no answer. The
 * replica also caps its admin replies per second (ADMIN_REPLIES_PER_SEC): a reply
 * is up to 60 KiB against a request of ~100 bytes, and must not become an
 * amplifier.
 *
 * Only the messages are here, a codec for both sides like engine/wire.h: the
 * replica's replay and rate guard is server/admin.h, the client's exchange
 * client/client_admin.h.
 */
#ifndef BFTKV_ENGINE_WIRE_ADMIN_H
#define BFTKV_ENGINE_WIRE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/auth.h"
#include "engine/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WIRE_ADMIN 12u
#define WIRE_ADMIN_REPLY 13u
BFTKV_STATIC_ASSERT(WIRE_ADMIN > WIRE_TYPE_MAX, "admin types are outside the engine's");

enum admin_command {
    ADMIN_CMD_STATS = 1, /* the stats JSON (server/server_stats.c documents the keys) */
    /* ADMIN_CMD_LOG_LEVEL + L (L: 0 error, 1 warn, 2 info, 3 debug): set the
     * replica process's log level; only a client its config names in an
     * admin_client line may (server/server.c), answered {"log_level":..,"was":..}
     * or {"error":..}. */
    ADMIN_CMD_LOG_LEVEL = 16,
};
#define ADMIN_LOG_LEVELS 4u

#define ADMIN_REQUEST_BODY 1u
/* JSON of a reply: less than 60 KiB (the interface promise). */
#define ADMIN_JSON_MAX (60u * 1024u - 1u)
#define ADMIN_REPLY_MAX (WIRE_HEADER_SIZE + ADMIN_JSON_MAX + BFTKV_MAC_SIZE)
#define ADMIN_REQUEST_MAX (WIRE_HEADER_SIZE + ADMIN_REQUEST_BODY + BFTKV_AUTHENTICATOR_MAX)
BFTKV_STATIC_ASSERT(ADMIN_REPLY_MAX <= BFTKV_DATAGRAM_MAX, "an admin reply fits one datagram");
/* Admin replies a replica sends per second at most, all clients together. */
#define ADMIN_REPLIES_PER_SEC 200u

/* Why an admin message was not answered (the stats name them). */
enum admin_drop {
    ADMIN_OK = 0,
    ADMIN_DROP_MALFORMED,      /* lengths, group, flags or command wrong */
    ADMIN_DROP_UNKNOWN_CLIENT, /* sender not in the allow-list */
    ADMIN_DROP_BAD_AUTH,       /* the MAC for this replica does not verify */
    ADMIN_DROP_REPLAY,         /* nonce not above the last one answered */
    ADMIN_DROP_RATE,           /* over ADMIN_REPLIES_PER_SEC */
    ADMIN_DROP_COUNT
};

/* "admin_malformed", ... ("unknown_client" for ADMIN_DROP_UNKNOWN_CLIENT). */
const char *wire_admin_drop_name(enum admin_drop d);

struct admin_request {
    uint16_t client;
    uint64_t nonce;
    uint8_t command;
};

/* Client: encode an ADMIN request for a group of auth->n replicas, authenticated
 * with the client's context. Returns its size, or 0 when cap is too small. */
size_t wire_admin_request_encode(uint8_t *buf, size_t cap, const struct auth_ctx *client, uint16_t group,
                            uint8_t command, uint64_t nonce);

/* Replica: check the ADMIN message msg (len = exactly its header + body + auth,
 * as framed in the datagram) with the replica's context. ADMIN_OK and *out, or
 * the reason (MALFORMED, UNKNOWN_CLIENT, BAD_AUTH). Reads only; safe to call
 * from several threads on one context. */
enum admin_drop wire_admin_request_check(const struct auth_ctx *replica, uint16_t group, const uint8_t *msg,
                                    size_t len, struct admin_request *out);

/* Replica: encode an ADMIN-REPLY carrying json (json_len <= ADMIN_JSON_MAX
 * bytes) for rq->client. Returns its size, or 0 when cap is too small or the
 * JSON too long. */
size_t wire_admin_reply_encode(uint8_t *buf, size_t cap, const struct auth_ctx *replica, uint16_t group, uint64_t view,
                          const struct admin_request *rq, const char *json, size_t json_len);

/* Client: check an ADMIN-REPLY (msg: one framed message, len its size) with the
 * client's context. true when well formed, of this group and MACed by replica
 * *sender for this client; then *nonce, *json and *json_len point into msg. */
bool wire_admin_reply_check(const struct auth_ctx *client, uint16_t group, const uint8_t *msg, size_t len,
                       uint16_t *sender, uint64_t *nonce, const uint8_t **json, size_t *json_len);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_WIRE_ADMIN_H */
