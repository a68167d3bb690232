/* Map discovery's messages (engine/wire_map.h): encoding and checking
 * MAP-REQUEST and MAP-REPLY for both sides. The node answers them
 * (server/node_map.c), the client library asks (client/client_discover.c).
 * The request's signature is libsodium's Ed25519, as on a CHECKPOINT
 * (engine/auth.c); the reply carries none (engine/wire_map.h says why).
 */
#include "engine/wire_map.h"

#include <string.h>

#include <sodium.h>

#include "common/assert.h"
#include "engine/wire_internal.h"
#include "engine/wire_le.h"

BFTKV_STATIC_ASSERT(WIRE_MAP_SIG_SIZE == crypto_sign_BYTES, "an Ed25519 signature");

/* Magic, version, type, flags 0 and the framing of one message. */
static bool map_frame_ok(const uint8_t *msg, size_t len, uint8_t type, struct wire_header *h)
{
    if (msg == NULL || len < WIRE_HEADER_SIZE)
        return false;
    uint16_t magic = (uint16_t)(msg[0] | (msg[1] << 8));
    if (magic != WIRE_MAGIC || msg[2] != WIRE_VERSION)
        return false;
    wire_header_read(msg, h);
    return h->type == type && h->flags == 0 && (uint64_t)WIRE_HEADER_SIZE + h->body_len + h->auth_len == len;
}

/* ... and group 0 (MAP-REQUEST, MAP-REPLY). */
static bool map_header_ok(const uint8_t *msg, size_t len, uint8_t type, struct wire_header *h)
{
    return map_frame_ok(msg, len, type, h) && h->group == 0;
}

size_t wire_map_request_encode(uint8_t *buf, size_t cap, const struct wire_map_request *rq,
                               const uint8_t sign_sk[64])
{
    BFTKV_ASSERT(rq != NULL);
    BFTKV_ASSERT(sign_sk != NULL);
    size_t auth_off = 0;
    size_t len = buf == NULL ? 0
                             : wire_frame(buf, cap, (uint8_t)WIRE_MAP_REQUEST, 0, rq->client, rq->epoch, rq->nonce,
                                          WIRE_MAP_REQUEST_BODY, (uint16_t)WIRE_MAP_SIG_SIZE, &auth_off);
    if (len == 0)
        return 0;
    BFTKV_ASSERT(len == WIRE_MAP_REQUEST_SIZE);
    le32_store(buf + WIRE_HEADER_SIZE, rq->offset);
    crypto_sign_detached(buf + auth_off, NULL, buf, auth_off, sign_sk);
    return len;
}

bool wire_map_request_check(const uint8_t *msg, size_t len, struct wire_map_request *out)
{
    struct wire_header h;
    if (!map_header_ok(msg, len, (uint8_t)WIRE_MAP_REQUEST, &h) || h.body_len != WIRE_MAP_REQUEST_BODY
        || h.auth_len != WIRE_MAP_SIG_SIZE)
        return false;
    out->client = h.sender;
    out->epoch = h.view;
    out->nonce = h.seq;
    out->offset = le32_load(msg + WIRE_HEADER_SIZE);
    return true;
}

bool wire_map_request_verify(const uint8_t *msg, size_t len, const uint8_t client_pk[32])
{
    BFTKV_ASSERT(len == WIRE_MAP_REQUEST_SIZE); /* wire_map_request_check passed */
    size_t signed_len = WIRE_HEADER_SIZE + WIRE_MAP_REQUEST_BODY;
    return crypto_sign_verify_detached(msg + signed_len, msg, signed_len, client_pk) == 0;
}

size_t wire_map_reply_encode(uint8_t *buf, size_t cap, uint64_t epoch, const struct wire_map_request *rq,
                             const uint8_t *signed_map, uint32_t total)
{
    BFTKV_ASSERT(rq != NULL);
    BFTKV_ASSERT(signed_map != NULL);
    if (buf == NULL || rq->offset >= total)
        return 0;
    uint32_t chunk = total - rq->offset;
    chunk = chunk < WIRE_MAP_CHUNK_MAX ? chunk : WIRE_MAP_CHUNK_MAX;
    size_t len = wire_frame(buf, cap, (uint8_t)WIRE_MAP_REPLY, 0, 0, epoch, rq->nonce,
                            (uint64_t)WIRE_MAP_REPLY_PREFIX + chunk, 0, NULL);
    if (len == 0)
        return 0;
    le32_store(buf + WIRE_HEADER_SIZE, total);
    le32_store(buf + WIRE_HEADER_SIZE + 4u, rq->offset);
    memcpy(buf + WIRE_HEADER_SIZE + WIRE_MAP_REPLY_PREFIX, signed_map + rq->offset, chunk);
    return len;
}

bool wire_map_reply_check(const uint8_t *msg, size_t len, uint32_t total_max, struct wire_map_reply *out)
{
    struct wire_header h;
    if (!map_header_ok(msg, len, (uint8_t)WIRE_MAP_REPLY, &h) || h.auth_len != 0 || h.sender != 0
        || h.body_len <= WIRE_MAP_REPLY_PREFIX || h.body_len > WIRE_MAP_REPLY_PREFIX + WIRE_MAP_CHUNK_MAX)
        return false;
    uint32_t total = le32_load(msg + WIRE_HEADER_SIZE);
    uint32_t offset = le32_load(msg + WIRE_HEADER_SIZE + 4u);
    uint32_t chunk = h.body_len - WIRE_MAP_REPLY_PREFIX;
    if (total > total_max || offset >= total || chunk > total - offset)
        return false;
    out->epoch = h.view;
    out->nonce = h.seq;
    out->total = total;
    out->offset = offset;
    out->chunk = msg + WIRE_HEADER_SIZE + WIRE_MAP_REPLY_PREFIX;
    out->chunk_len = chunk;
    return true;
}

size_t wire_map_notice_encode(uint8_t *buf, size_t cap, const struct wire_map_notice *n)
{
    BFTKV_ASSERT(n != NULL);
    if (buf == NULL)
        return 0;
    return wire_frame(buf, cap, (uint8_t)WIRE_MAP_NOTICE, n->group, 0, n->epoch, n->timestamp, 0, 0, NULL);
}

bool wire_map_notice_check(const uint8_t *msg, size_t len, struct wire_map_notice *out)
{
    struct wire_header h;
    if (!map_frame_ok(msg, len, (uint8_t)WIRE_MAP_NOTICE, &h) || h.body_len != 0 || h.auth_len != 0 || h.sender != 0
        || h.view == 0)
        return false;
    out->group = h.group;
    out->epoch = h.view;
    out->timestamp = h.seq;
    return true;
}
