/* Runtime Byzantine modes (server/byzantine.h): a filter between the engine's
 * outbox and the transport. Each behaviour sees one message and one destination
 * and calls send() for whatever it chooses to send.
 */
#include "server/byzantine.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/pbft.h"
#include "common/mix64.h"

/* A fabricated value: bytes no test client writes. */
static const uint8_t byz_evil[8] = {0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE};

static const char *const byz_mode_names[BYZ_MODE_COUNT] = {
    [BYZ_NONE] = "none",
    [BYZ_SILENT] = "silent",
    [BYZ_DROP] = "drop",
    [BYZ_CORRUPT_MAC] = "corrupt-mac",
    [BYZ_CORRUPT_DIGEST] = "corrupt-digest",
    [BYZ_WRONG_RESULT] = "wrong-result",
    [BYZ_REPLAY] = "replay",
    [BYZ_RANDOM] = "random",
};

struct byz_replay_slot {
    uint8_t dest_kind;
    uint16_t dest_id;
    uint32_t len;
    uint8_t *buf; /* BYZ_REPLAY_MSG_MAX bytes */
};

struct byz {
    enum byz_mode mode;
    uint64_t rng; /* splitmix64 state */
    const struct auth_ctx *auth;
    struct wire_limits lim;
    uint8_t *scratch; /* BFTKV_DATAGRAM_MAX: a rewritten message */
    struct byz_replay_slot ring[BYZ_REPLAY_SLOTS];
    uint32_t ring_len;
    uint32_t ring_next;
    struct byz_stats stats;
};

const char *byz_mode_name(enum byz_mode m)
{
    return (unsigned)m < BYZ_MODE_COUNT ? byz_mode_names[m] : "?";
}

int byz_mode_parse(const char *s)
{
    for (int i = BYZ_NONE + 1; i < BYZ_MODE_COUNT; i++)
        if (strcmp(s, byz_mode_names[i]) == 0)
            return i;
    return -1;
}

/* splitmix64 (common/mix64.h): small, fast, good enough for choices. */
static uint64_t byz_next(struct byz *b)
{
    return bftkv_splitmix64(&b->rng);
}

/* Uniform in [0, n), n > 0 (the modulo bias is irrelevant here). */
static uint32_t byz_below(struct byz *b, uint32_t n)
{
    return (uint32_t)(byz_next(b) % n);
}

int byz_create(enum byz_mode mode, uint64_t seed, const struct auth_ctx *auth, const struct wire_limits *lim,
               struct byz **out)
{
    if (out == NULL || auth == NULL || lim == NULL || mode <= BYZ_NONE || mode >= BYZ_MODE_COUNT || auth->is_client)
        return BFTKV_E_INVAL;
    struct byz *b = calloc(1, sizeof *b);
    if (b == NULL)
        return BFTKV_E_NOMEM;
    b->mode = mode;
    b->rng = seed;
    b->auth = auth;
    b->lim = *lim;
    b->scratch = malloc(BFTKV_DATAGRAM_MAX);
    bool ok = b->scratch != NULL;
    if (mode == BYZ_REPLAY)
        for (uint32_t i = 0; i < BYZ_REPLAY_SLOTS && ok; i++)
            ok = (b->ring[i].buf = malloc(BYZ_REPLAY_MSG_MAX)) != NULL;
    if (!ok) {
        byz_destroy(b);
        return BFTKV_E_NOMEM;
    }
    *out = b;
    return 0;
}

void byz_destroy(struct byz *b)
{
    if (b == NULL)
        return;
    for (uint32_t i = 0; i < BYZ_REPLAY_SLOTS; i++)
        free(b->ring[i].buf);
    free(b->scratch);
    free(b);
}

enum byz_mode byz_mode_of(const struct byz *b)
{
    return b->mode;
}

void byz_stats_get(const struct byz *b, struct byz_stats *out)
{
    *out = b->stats;
}

/* The header of a message whose framing the engine produced (so it is whole). */
static bool byz_header(const uint8_t *msg, size_t len, struct wire_header *h)
{
    if (len < WIRE_HEADER_SIZE)
        return false;
    wire_header_read(msg, h);
    return (uint64_t)WIRE_HEADER_SIZE + h->body_len + h->auth_len == len;
}

/* Flip one byte of the authenticator or signature. */
static bool byz_corrupt_mac(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                            byz_send_fn *send, void *arg)
{
    struct wire_header h;
    if (!byz_header(msg, len, &h) || h.auth_len == 0)
        return false;
    memcpy(b->scratch, msg, len);
    size_t at = len - h.auth_len + byz_below(b, h.auth_len);
    b->scratch[at] ^= (uint8_t)(1u + byz_below(b, 255));
    b->stats.corrupted++;
    send(arg, kind, id, b->scratch, len);
    return true;
}

/* PREPARE / COMMIT / CHECKPOINT with a random digest, authenticated again. */
static bool byz_corrupt_digest(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                               byz_send_fn *send, void *arg)
{
    struct wire_header h;
    if (!byz_header(msg, len, &h) || h.body_len < BFTKV_DIGEST_SIZE
        || (h.type != WIRE_PREPARE && h.type != WIRE_COMMIT && h.type != WIRE_CHECKPOINT))
        return false;
    uint8_t *s = b->scratch;
    memcpy(s, msg, len);
    for (uint32_t i = 0; i < BFTKV_DIGEST_SIZE; i += 8) {
        uint64_t x = byz_next(b);
        memcpy(s + WIRE_HEADER_SIZE + i, &x, 8);
    }
    size_t auth_off = WIRE_HEADER_SIZE + h.body_len;
    memset(s + auth_off, 0, h.auth_len);
    if (h.type == WIRE_CHECKPOINT)
        auth_sign(b->auth, s, len, auth_off);
    else
        auth_authenticator_fill(b->auth, s, len, auth_off);
    b->stats.corrupted++;
    send(arg, kind, id, s, len);
    return true;
}

/* A REPLY with a made-up result (3 in 4: a value nobody wrote; else NOT_FOUND),
 * its result digest consistent and MACed for its client, so the client sees a
 * well-formed reply that is wrong. A digest-only reply keeps being digest-only. */
static bool byz_fabricate_reply(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                                byz_send_fn *send, void *arg)
{
    struct wire_msg m;
    size_t used = 0;
    if (wire_decode(msg, len, &b->lim, &m, &used, NULL) != 0 || m.h.type != WIRE_REPLY
        || !auth_client_known(b->auth, m.u.reply.client))
        return false;
    bool not_found = byz_below(b, 4) == 0;
    bool full = m.u.reply.result != NULL;
    struct wire_reply rp = m.u.reply;
    rp.status = not_found ? (int16_t)BFTKV_E_NOT_FOUND : 0;
    rp.result_len = not_found ? 0 : (uint32_t)sizeof byz_evil;
    rp.result = full ? byz_evil : NULL; /* non-NULL with length 0: a full, empty result */
    uint8_t digest[BFTKV_DIGEST_SIZE];
    wire_result_digest(digest, rp.status, byz_evil, rp.result_len);
    rp.result_digest = digest;
    size_t auth_off = 0;
    size_t n = wire_encode_reply(b->scratch, BFTKV_DATAGRAM_MAX, m.h.group, m.h.sender, m.h.view, m.h.seq, &rp,
                                 &auth_off);
    if (n == 0)
        return false;
    auth_reply_fill(b->auth, b->scratch, n, auth_off, rp.client);
    b->stats.fabricated++;
    send(arg, kind, id, b->scratch, n);
    return true;
}

static void byz_replay_record(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    if (len > BYZ_REPLAY_MSG_MAX)
        return;
    struct byz_replay_slot *s = &b->ring[b->ring_next];
    b->ring_next = (b->ring_next + 1u) % BYZ_REPLAY_SLOTS;
    if (b->ring_len < BYZ_REPLAY_SLOTS)
        b->ring_len++;
    memcpy(s->buf, msg, len);
    s->len = (uint32_t)len;
    s->dest_kind = kind;
    s->dest_id = id;
}

/* Re-send a random earlier message, 1 time in 4. A message to a replica may go to
 * another replica: authenticators carry a MAC for every replica. */
static void byz_replay_some(struct byz *b, byz_send_fn *send, void *arg)
{
    if (b->ring_len == 0 || byz_below(b, 4) != 0)
        return;
    const struct byz_replay_slot *s = &b->ring[byz_below(b, b->ring_len)];
    uint16_t id = s->dest_id;
    if (s->dest_kind == PBFT_DEST_REPLICA && byz_below(b, 2) == 0) {
        uint16_t to = (uint16_t)byz_below(b, b->lim.n);
        if (to != b->auth->self)
            id = to;
    }
    b->stats.replayed++;
    send(arg, s->dest_kind, id, s->buf, s->len);
}

void byz_filter(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len, byz_send_fn *send,
                void *arg)
{
    switch (b->mode) {
    case BYZ_SILENT:
        b->stats.dropped++;
        return;
    case BYZ_DROP:
        if (byz_below(b, 2) == 0) {
            b->stats.dropped++;
            return;
        }
        break;
    case BYZ_CORRUPT_MAC:
        if (byz_corrupt_mac(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_CORRUPT_DIGEST:
        if (byz_corrupt_digest(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_WRONG_RESULT:
        if (len > 3 && msg[3] == WIRE_REPLY && byz_fabricate_reply(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_REPLAY:
        send(arg, kind, id, msg, len);
        byz_replay_some(b, send, arg);
        byz_replay_record(b, kind, id, msg, len);
        return;
    case BYZ_RANDOM: {
        uint32_t roll = byz_below(b, 100);
        if (roll < 50) {
            b->stats.dropped++;
            return;
        }
        if (roll < 80) {
            bool digest_first = byz_below(b, 2) == 0;
            if (digest_first && byz_corrupt_digest(b, kind, id, msg, len, send, arg))
                return;
            if (byz_corrupt_mac(b, kind, id, msg, len, send, arg))
                return;
        }
        break;
    }
    case BYZ_NONE:
    case BYZ_MODE_COUNT:
        break;
    }
    send(arg, kind, id, msg, len);
}
