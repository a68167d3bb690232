/* The admin protocol's messages (engine/wire_admin.h): encoding and checking
 * ADMIN and ADMIN-REPLY, for both sides. The server answers them
 * (server/admin.c), the client library asks (client/client_admin.c).
 *
 * The MACs are the engine's (engine/auth.c): SipHash-2-4-128 keyed by the
 * pairwise key of the client and the replica, over header || body when the body
 * is at most 64 bytes, else over header || BLAKE2b-256(body). The sending side
 * uses the engine's fill functions (auth_authenticator_fill and auth_reply_fill
 * work for any type), the checking side auth_encoded_mac_check (the engine's
 * other checks take decoded engine types only).
 */
#include "engine/wire_admin.h"

#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/wire_internal.h"

static const char *const admin_drop_names[ADMIN_DROP_COUNT] = {
    [ADMIN_OK] = "ok",
    [ADMIN_DROP_MALFORMED] = "admin_malformed",
    [ADMIN_DROP_UNKNOWN_CLIENT] = "unknown_client",
    [ADMIN_DROP_BAD_AUTH] = "admin_bad_auth",
    [ADMIN_DROP_REPLAY] = "admin_replay",
    [ADMIN_DROP_RATE] = "admin_rate_limited",
};

const char *wire_admin_drop_name(enum admin_drop d)
{
    return (unsigned)d < ADMIN_DROP_COUNT ? admin_drop_names[d] : "?";
}

size_t wire_admin_request_encode(uint8_t *buf, size_t cap, const struct auth_ctx *client, uint16_t group,
                            uint8_t command, uint64_t nonce)
{
    BFTKV_ASSERT(client != NULL);
    BFTKV_ASSERT(client->is_client);
    size_t auth_off = 0;
    size_t len = buf == NULL ? 0
                             : wire_frame(buf, cap, (uint8_t)WIRE_ADMIN, group, client->self, 0, nonce,
                                          ADMIN_REQUEST_BODY, (uint16_t)(client->n * BFTKV_MAC_SIZE), &auth_off);
    if (len == 0)
        return 0;
    buf[WIRE_HEADER_SIZE] = command;
    auth_authenticator_fill(client, buf, len, auth_off);
    return len;
}

/* Magic, version, type, group, flags and framing of one message of len bytes. */
static bool admin_header_ok(const uint8_t *msg, size_t len, uint8_t type, uint16_t group, struct wire_header *h)
{
    if (len < WIRE_HEADER_SIZE)
        return false;
    uint16_t magic = (uint16_t)(msg[0] | (msg[1] << 8));
    if (magic != WIRE_MAGIC || msg[2] != WIRE_VERSION)
        return false;
    wire_header_read(msg, h);
    return h->type == type && h->group == group && h->flags == 0
           && (uint64_t)WIRE_HEADER_SIZE + h->body_len + h->auth_len == len;
}

enum admin_drop wire_admin_request_check(const struct auth_ctx *replica, uint16_t group, const uint8_t *msg,
                                    size_t len, struct admin_request *out)
{
    BFTKV_ASSERT(replica != NULL);
    BFTKV_ASSERT(!replica->is_client);
    struct wire_header h;
    if (!admin_header_ok(msg, len, (uint8_t)WIRE_ADMIN, group, &h) || h.body_len != ADMIN_REQUEST_BODY
        || h.auth_len != (size_t)replica->n * BFTKV_MAC_SIZE
        || (msg[WIRE_HEADER_SIZE] != ADMIN_CMD_STATS
            && (msg[WIRE_HEADER_SIZE] < ADMIN_CMD_LOG_LEVEL
                || msg[WIRE_HEADER_SIZE] >= ADMIN_CMD_LOG_LEVEL + ADMIN_LOG_LEVELS)))
        return ADMIN_DROP_MALFORMED;
    if (!auth_client_known(replica, h.sender))
        return ADMIN_DROP_UNKNOWN_CLIENT;
    size_t auth_off = WIRE_HEADER_SIZE + h.body_len;
    const uint8_t *mac = msg + auth_off + (size_t)replica->self * BFTKV_MAC_SIZE;
    if (!auth_encoded_mac_check(msg, auth_off, mac, replica->client_keys[h.sender]))
        return ADMIN_DROP_BAD_AUTH;
    out->client = h.sender;
    out->nonce = h.seq;
    out->command = msg[WIRE_HEADER_SIZE];
    return ADMIN_OK;
}

size_t wire_admin_reply_encode(uint8_t *buf, size_t cap, const struct auth_ctx *replica, uint16_t group, uint64_t view,
                          const struct admin_request *rq, const char *json, size_t json_len)
{
    BFTKV_ASSERT(replica != NULL);
    BFTKV_ASSERT(!replica->is_client);
    BFTKV_ASSERT(rq != NULL);
    if (buf == NULL || json_len > ADMIN_JSON_MAX)
        return 0;
    size_t len = wire_frame(buf, cap, (uint8_t)WIRE_ADMIN_REPLY, group, replica->self, view, rq->nonce, json_len,
                            BFTKV_MAC_SIZE, NULL);
    if (len == 0)
        return 0;
    memcpy(buf + WIRE_HEADER_SIZE, json, json_len);
    auth_reply_fill(replica, buf, len, WIRE_HEADER_SIZE + json_len, rq->client);
    return len;
}

bool wire_admin_reply_check(const struct auth_ctx *client, uint16_t group, const uint8_t *msg, size_t len,
                       uint16_t *sender, uint64_t *nonce, const uint8_t **json, size_t *json_len)
{
    BFTKV_ASSERT(client != NULL);
    BFTKV_ASSERT(client->is_client);
    struct wire_header h;
    if (!admin_header_ok(msg, len, (uint8_t)WIRE_ADMIN_REPLY, group, &h) || h.auth_len != BFTKV_MAC_SIZE
        || h.body_len > ADMIN_JSON_MAX || h.sender >= client->n)
        return false;
    size_t auth_off = WIRE_HEADER_SIZE + h.body_len;
    if (!auth_encoded_mac_check(msg, auth_off, msg + auth_off, client->replica_keys[h.sender]))
        return false;
    *sender = h.sender;
    *nonce = h.seq;
    *json = msg + WIRE_HEADER_SIZE;
    *json_len = h.body_len;
    return true;
}
