/* The admin protocol's messages and checks (net/admin.h): encoding and checking
 * ADMIN and ADMIN-REPLY, and the replica's replay and rate guard.
 *
 * The MACs are the engine's (engine/auth.c): SipHash-2-4-128 keyed by the
 * pairwise key of the client and the replica, over header || body when the body
 * is at most 64 bytes, else over header || BLAKE2b-256(body). The sending side
 * uses the engine's own fill functions (auth_authenticator_fill and
 * auth_reply_fill work for any type); the checking side is here because the
 * engine's checks accept engine types only, and must compute the MAC input
 * exactly as engine/auth.c does (admin_mac_input).
 */
#include "net/admin.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"

/* engine/auth.c: bodies up to this size are MACed in place, longer ones hashed. */
#define ADMIN_MAC_DIRECT_MAX 64u

static const char *const admin_drop_names[ADMIN_DROP_COUNT] = {
    [ADMIN_OK] = "ok",
    [ADMIN_DROP_MALFORMED] = "admin_malformed",
    [ADMIN_DROP_UNKNOWN_CLIENT] = "unknown_client",
    [ADMIN_DROP_BAD_AUTH] = "admin_bad_auth",
    [ADMIN_DROP_REPLAY] = "admin_replay",
    [ADMIN_DROP_RATE] = "admin_rate_limited",
};

const char *admin_drop_name(enum admin_drop d)
{
    return (unsigned)d < ADMIN_DROP_COUNT ? admin_drop_names[d] : "?";
}

/* What one MAC covers (engine/auth.c mac_input_build, whole body). */
struct admin_mac_input {
    const uint8_t *p;
    size_t len;
    uint8_t buf[WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE];
};

static void admin_mac_input(struct admin_mac_input *in, const uint8_t *msg, size_t body_len)
{
    if (body_len <= ADMIN_MAC_DIRECT_MAX) {
        in->p = msg;
        in->len = WIRE_HEADER_SIZE + body_len;
        return;
    }
    memcpy(in->buf, msg, WIRE_HEADER_SIZE);
    wire_digest(in->buf + WIRE_HEADER_SIZE, msg + WIRE_HEADER_SIZE, body_len);
    in->p = in->buf;
    in->len = sizeof in->buf;
}

static bool admin_mac_verify(const uint8_t *mac, const struct admin_mac_input *in, const uint8_t key[AUTH_KEY_SIZE])
{
    uint8_t want[BFTKV_MAC_SIZE];
    crypto_shorthash_siphashx24(want, in->p, in->len, key);
    return sodium_memcmp(want, mac, sizeof want) == 0;
}

size_t admin_request_encode(uint8_t *buf, size_t cap, const struct auth_ctx *client, uint16_t group,
                            uint8_t command, uint64_t nonce)
{
    BFTKV_ASSERT(client != NULL && client->is_client);
    size_t auth_len = (size_t)client->n * BFTKV_MAC_SIZE;
    size_t len = WIRE_HEADER_SIZE + ADMIN_REQUEST_BODY + auth_len;
    if (buf == NULL || cap < len)
        return 0;
    struct wire_header h = {
        .type = (uint8_t)WIRE_ADMIN,
        .group = group,
        .sender = client->self,
        .view = 0,
        .seq = nonce,
        .body_len = ADMIN_REQUEST_BODY,
        .auth_len = (uint16_t)auth_len,
        .flags = 0,
    };
    memset(buf, 0, len);
    wire_header_write(buf, &h);
    buf[WIRE_HEADER_SIZE] = command;
    auth_authenticator_fill(client, buf, len, WIRE_HEADER_SIZE + ADMIN_REQUEST_BODY);
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

enum admin_drop admin_request_check(const struct auth_ctx *replica, uint16_t group, const uint8_t *msg,
                                    size_t len, struct admin_request *out)
{
    BFTKV_ASSERT(replica != NULL && !replica->is_client);
    struct wire_header h;
    if (!admin_header_ok(msg, len, (uint8_t)WIRE_ADMIN, group, &h) || h.body_len != ADMIN_REQUEST_BODY
        || h.auth_len != (size_t)replica->n * BFTKV_MAC_SIZE || msg[WIRE_HEADER_SIZE] != ADMIN_CMD_STATS)
        return ADMIN_DROP_MALFORMED;
    if (!auth_client_known(replica, h.sender))
        return ADMIN_DROP_UNKNOWN_CLIENT;
    struct admin_mac_input in;
    admin_mac_input(&in, msg, h.body_len);
    const uint8_t *mac = msg + WIRE_HEADER_SIZE + h.body_len + (size_t)replica->self * BFTKV_MAC_SIZE;
    if (!admin_mac_verify(mac, &in, replica->client_keys[h.sender]))
        return ADMIN_DROP_BAD_AUTH;
    out->client = h.sender;
    out->nonce = h.seq;
    out->command = msg[WIRE_HEADER_SIZE];
    return ADMIN_OK;
}

size_t admin_reply_encode(uint8_t *buf, size_t cap, const struct auth_ctx *replica, uint16_t group, uint64_t view,
                          const struct admin_request *rq, const char *json, size_t json_len)
{
    BFTKV_ASSERT(replica != NULL && !replica->is_client && rq != NULL);
    size_t len = WIRE_HEADER_SIZE + json_len + BFTKV_MAC_SIZE;
    if (buf == NULL || json_len > ADMIN_JSON_MAX || cap < len)
        return 0;
    struct wire_header h = {
        .type = (uint8_t)WIRE_ADMIN_REPLY,
        .group = group,
        .sender = replica->self,
        .view = view,
        .seq = rq->nonce,
        .body_len = (uint32_t)json_len,
        .auth_len = BFTKV_MAC_SIZE,
        .flags = 0,
    };
    wire_header_write(buf, &h);
    memcpy(buf + WIRE_HEADER_SIZE, json, json_len);
    memset(buf + WIRE_HEADER_SIZE + json_len, 0, BFTKV_MAC_SIZE);
    auth_reply_fill(replica, buf, len, WIRE_HEADER_SIZE + json_len, rq->client);
    return len;
}

bool admin_reply_check(const struct auth_ctx *client, uint16_t group, const uint8_t *msg, size_t len,
                       uint16_t *sender, uint64_t *nonce, const uint8_t **json, size_t *json_len)
{
    BFTKV_ASSERT(client != NULL && client->is_client);
    struct wire_header h;
    if (!admin_header_ok(msg, len, (uint8_t)WIRE_ADMIN_REPLY, group, &h) || h.auth_len != BFTKV_MAC_SIZE
        || h.body_len > ADMIN_JSON_MAX || h.sender >= client->n)
        return false;
    struct admin_mac_input in;
    admin_mac_input(&in, msg, h.body_len);
    if (!admin_mac_verify(msg + WIRE_HEADER_SIZE + h.body_len, &in, client->replica_keys[h.sender]))
        return false;
    *sender = h.sender;
    *nonce = h.seq;
    *json = msg + WIRE_HEADER_SIZE;
    *json_len = h.body_len;
    return true;
}

/* ---- Replay and rate guard ---------------------------------------------------------- */

int admin_guard_init(struct admin_guard *g, uint16_t clients)
{
    memset(g, 0, sizeof *g);
    g->last_nonce = calloc(clients ? clients : 1u, sizeof *g->last_nonce);
    if (g->last_nonce == NULL)
        return BFTKV_E_NOMEM;
    g->clients = clients;
    return 0;
}

void admin_guard_free(struct admin_guard *g)
{
    free(g->last_nonce);
    memset(g, 0, sizeof *g);
}

enum admin_drop admin_guard_admit(struct admin_guard *g, const struct admin_request *rq, uint64_t now_ns)
{
    if (rq->client >= g->clients || rq->nonce <= g->last_nonce[rq->client])
        return ADMIN_DROP_REPLAY;
    if (now_ns - g->window_start_ns >= 1000000000u || now_ns < g->window_start_ns) {
        g->window_start_ns = now_ns;
        g->window_replies = 0;
    }
    if (g->window_replies >= ADMIN_REPLIES_PER_SEC)
        return ADMIN_DROP_RATE;
    g->window_replies++;
    g->last_nonce[rq->client] = rq->nonce;
    return ADMIN_OK;
}
