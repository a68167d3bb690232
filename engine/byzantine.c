/* The Byzantine rewriter (engine/byzantine.h): its modes, its creation, the
 * per-message filter, and the rewrites of the normal case -- corrupt MACs and
 * digests, made-up and stale replies, replays. The rewrites of the view change
 * and of state transfer, and equivocation, are in byzantine_rewrite.c.
 *
 * The order of the random draws is fixed (a simulator seed replays exactly
 * only if it does not change): creation draws the drop probability, the
 * stale-read and slow delays, then equivocate's B group; each message then draws
 * only what its mode needs, in the order below.
 */
#include "engine/byzantine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/pbft.h"

/* A fabricated value: 8 bytes no client of the tests ever writes. */
static const uint8_t byz_evil[8] = {0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE};

static const char *const byz_mode_names[BYZ_MODE_COUNT] = {
    [BYZ_NONE] = "none",
    [BYZ_SILENT] = "silent",
    [BYZ_DROP] = "drop",
    [BYZ_CORRUPT_MAC] = "corrupt-mac",
    [BYZ_CORRUPT_DIGEST] = "corrupt-digest",
    [BYZ_WRONG_RESULT] = "wrong-result",
    [BYZ_REPLAY] = "replay",
    [BYZ_MIX] = "mix",
    [BYZ_STALE_READ] = "stale-read",
    [BYZ_EQUIVOCATE] = "equivocate",
    [BYZ_SLOW] = "slow",
    [BYZ_BOGUS_VIEW_CHANGE] = "bogus-view-change",
    [BYZ_LYING_STATE] = "lying-state",
};

const char *byz_mode_name(enum byz_mode m)
{
    return (unsigned)m < BYZ_MODE_COUNT ? byz_mode_names[m] : "?";
}

int byz_mode_parse(const char *s)
{
    for (int i = 0; i < BYZ_MODE_COUNT; i++)
        if (strcmp(s, byz_mode_names[i]) == 0)
            return i;
    return -1;
}

/* ---- Context and creation ----------------------------------------------------------- */

void byz_context_live(struct byz_context *ctx, uint16_t n, uint16_t f, uint16_t self, const struct auth_ctx *auth,
                      const struct wire_limits *lim, uint64_t request_timeout_ns)
{
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    BFTKV_ASSERT(self < n);
    memset(ctx, 0, sizeof *ctx);
    ctx->n = n;
    ctx->f = f;
    ctx->self = self;
    ctx->auth = auth;
    ctx->lim = *lim;
    ctx->request_timeout_ns = request_timeout_ns;
    ctx->coalition[self] = true;
}

/* Accomplices and liars together outvote the f+1 lagging correct replicas of a
 * read quorum (docs/design.md §5.3, "The read-only path"). */
void byz_accomplices(uint16_t n, uint16_t f, const bool coalition[BFTKV_REPLICAS_MAX],
                     bool accomplice[BFTKV_REPLICAS_MAX])
{
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    memset(accomplice, 0, BFTKV_REPLICAS_MAX * sizeof accomplice[0]);
    uint16_t chosen = 0;
    for (uint16_t r = 1; r < n && chosen < f; r++) {
        if (!coalition[r]) {
            accomplice[r] = true;
            chosen++;
        }
    }
}

/* equivocate: a non-empty proper subset of the backups gets the B version. */
static void byz_b_group_draw(struct byz *b)
{
    uint16_t n = b->ctx.n;
    uint16_t backups = (uint16_t)(n - 1);
    uint64_t bits;
    for (;;) {
        bits = prng_next(&b->rng);
        uint16_t count = 0;
        for (uint16_t r = 1; r < n; r++)
            count = (uint16_t)(count + ((bits >> (r % 64)) & 1u));
        if (count > 0 && count < backups)
            break;
    }
    for (uint16_t r = 1; r < n; r++)
        b->b_group[r] = ((bits >> (r % 64)) & 1u) != 0;
}

int byz_create(enum byz_mode mode, uint64_t seed, const struct byz_context *ctx, struct byz **out)
{
    if (out == NULL || ctx == NULL || ctx->auth == NULL || mode <= BYZ_NONE || mode >= BYZ_MODE_COUNT ||
        ctx->auth->is_client || ctx->n == 0 || ctx->n > BFTKV_REPLICAS_MAX || ctx->self >= ctx->n)
        return BFTKV_E_INVAL;
    /* equivocate needs a backup in each group. */
    if (mode == BYZ_EQUIVOCATE && ctx->n < 3)
        return BFTKV_E_INVAL;
    struct byz *b = calloc(1, sizeof *b);
    if (b == NULL)
        return BFTKV_E_NOMEM;
    b->mode = mode;
    b->ctx = *ctx;
    byz_accomplices(ctx->n, ctx->f, ctx->coalition, b->accomplice);
    b->scratch = malloc(BFTKV_DATAGRAM_MAX);
    b->entries = malloc(BFTKV_DATAGRAM_MAX);
    b->list = malloc(BFTKV_BATCH_REQUESTS_MAX * sizeof *b->list);
    b->view_change_entries = malloc(3u * (BFTKV_LOG_WINDOW_MAX + 1u) * sizeof *b->view_change_entries);
    bool ok = b->scratch && b->entries && b->list && b->view_change_entries;
    if (ok && mode == BYZ_REPLAY) {
        b->replay_mem = malloc((size_t)BYZ_REPLAY_RING * BFTKV_DATAGRAM_MAX);
        ok = b->replay_mem != NULL;
        for (uint32_t i = 0; ok && i < BYZ_REPLAY_RING; i++)
            b->ring[i].buf = b->replay_mem + (size_t)i * BFTKV_DATAGRAM_MAX;
    }
    if (ok && mode == BYZ_EQUIVOCATE) {
        b->equiv_mem = malloc((size_t)BYZ_EQUIV_RING * BFTKV_DATAGRAM_MAX);
        ok = b->equiv_mem != NULL;
        for (uint32_t i = 0; ok && i < BYZ_EQUIV_RING; i++)
            b->eq[i].msg = b->equiv_mem + (size_t)i * BFTKV_DATAGRAM_MAX;
    }
    if (!ok) {
        byz_destroy(b);
        return BFTKV_E_NOMEM;
    }
    prng_seed(&b->rng, seed);
    b->drop_percent = (double)prng_range(&b->rng, 10, 90);
    b->stale_delay_ns = prng_range(&b->rng, 1000000, 10000000);
    uint64_t t = ctx->request_timeout_ns ? ctx->request_timeout_ns : BYZ_DEFAULT_TIMEOUT_NS;
    b->slow_delay_ns = t / 100u * prng_range(&b->rng, 60, 95);
    if (mode == BYZ_EQUIVOCATE)
        byz_b_group_draw(b);
    *out = b;
    return 0;
}

void byz_destroy(struct byz *b)
{
    if (b == NULL)
        return;
    free(b->scratch);
    free(b->entries);
    free(b->list);
    free(b->view_change_entries);
    free(b->replay_mem);
    free(b->equiv_mem);
    free(b);
}

enum byz_mode byz_mode_of(const struct byz *b)
{
    return b->mode;
}

const struct byz_stats *byz_stats_of(const struct byz *b)
{
    return &b->stats;
}

uint64_t byz_delay_ns(const struct byz *b, uint8_t dest_kind)
{
    return b->mode == BYZ_SLOW && dest_kind == PBFT_DEST_REPLICA ? b->slow_delay_ns : 0;
}

uint64_t byz_stale_delay_ns(const struct byz *b)
{
    return b->stale_delay_ns;
}

/* ---- Rewrites of the normal case ------------------------------------------------------ */

bool byz_header(const uint8_t *msg, size_t len, struct wire_header *h)
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
    uint8_t *s = b->scratch;
    memcpy(s, msg, len);
    size_t at = len - h.auth_len + (size_t)prng_below(&b->rng, h.auth_len);
    s[at] ^= (uint8_t)(1u + prng_below(&b->rng, 255));
    b->stats.corrupted++;
    send(arg, kind, id, s, len);
    return true;
}

/* Send REPLY m with the result of rp (its digest computed here), MACed for its
 * client: a fabricated answer. */
static bool byz_reply_send(struct byz *b, uint8_t kind, uint16_t id, const struct wire_msg *m,
                           struct wire_reply *rp, byz_send_fn *send, void *arg)
{
    uint8_t digest[BFTKV_DIGEST_SIZE];
    wire_result_digest(digest, rp->status, rp->result, rp->result_len);
    rp->result_digest = digest;
    size_t auth_off;
    size_t n = wire_encode_reply(b->scratch, BFTKV_DATAGRAM_MAX, m->h.group, m->h.sender, m->h.view, m->h.seq, rp,
                                 &auth_off);
    BFTKV_ASSERT(n > 0);
    auth_reply_fill(b->ctx.auth, b->scratch, n, auth_off, rp->client);
    b->stats.fabricated++;
    send(arg, kind, id, b->scratch, n);
    return true;
}

/* A REPLY with a made-up result, correctly digested and MACed for its client:
 * either a value no client ever wrote or NOT_FOUND. */
static bool byz_fabricate_reply(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                                bool not_found, byz_send_fn *send, void *arg)
{
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &b->ctx.lim, &m, &used, NULL) != 0 || m.h.type != WIRE_REPLY ||
        !auth_client_known(b->ctx.auth, m.u.reply.client))
        return false;
    struct wire_reply rp = m.u.reply;
    rp.status = not_found ? (int16_t)BFTKV_E_NOT_FOUND : 0;
    rp.result = byz_evil; /* non-NULL, also with length 0: a full result */
    rp.result_len = not_found ? 0 : (uint32_t)sizeof byz_evil;
    return byz_reply_send(b, kind, id, &m, &rp, send, arg);
}

/* stale-read: answer a read-only GET with the state the context shows (the
 * simulator's most-lagging correct replica; NOT_FOUND without one), correctly
 * digested and MACed. */
static bool byz_stale_reply(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                            byz_send_fn *send, void *arg)
{
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &b->ctx.lim, &m, &used, NULL) != 0 || m.h.type != WIRE_REPLY)
        return false;
    if (b->ctx.stale_value == NULL)
        return byz_fabricate_reply(b, kind, id, msg, len, true, send, arg);
    size_t vlen = 0;
    int rc = b->ctx.stale_value(b->ctx.stale_arg, &m.u.reply, b->entries, BFTKV_DATAGRAM_MAX, &vlen);
    if (rc == BFTKV_E_NO_STATE)
        return byz_fabricate_reply(b, kind, id, msg, len, true, send, arg);
    if (rc != 0 && rc != BFTKV_E_NOT_FOUND)
        return false;
    if (!auth_client_known(b->ctx.auth, m.u.reply.client))
        return false;
    struct wire_reply rp = m.u.reply;
    rp.status = (int16_t)rc;
    rp.result = b->entries; /* non-NULL: a full result (empty for NOT_FOUND) */
    rp.result_len = rc == 0 ? (uint32_t)vlen : 0;
    return byz_reply_send(b, kind, id, &m, &rp, send, arg);
}

void byz_reauth(struct byz *b, size_t len, const struct wire_header *h)
{
    size_t auth_off = WIRE_HEADER_SIZE + h->body_len;
    BFTKV_ASSERT(auth_off + h->auth_len == len);
    memset(b->scratch + auth_off, 0, h->auth_len);
    bool is_signed = h->type == WIRE_CHECKPOINT || h->type == WIRE_VIEW_CHANGE || h->type == WIRE_NEW_VIEW;
    if (is_signed)
        auth_sign(b->ctx.auth, b->scratch, len, auth_off);
    else
        auth_authenticator_fill(b->ctx.auth, b->scratch, len, auth_off);
}

bool byz_send_altered(struct byz *b, uint8_t kind, uint16_t id, size_t len, const struct wire_header *h,
                      byz_send_fn *send, void *arg)
{
    byz_reauth(b, len, h);
    b->stats.corrupted++;
    send(arg, kind, id, b->scratch, len);
    return true;
}

void byz_send_with_digest(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                          const struct wire_header *h, const uint8_t d[BFTKV_DIGEST_SIZE], byz_send_fn *send,
                          void *arg)
{
    uint8_t *s = b->scratch;
    memcpy(s, msg, len);
    memcpy(s + WIRE_HEADER_SIZE, d, BFTKV_DIGEST_SIZE);
    byz_reauth(b, len, h);
    send(arg, kind, id, s, len);
}

static bool byz_corrupt_digest(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                               byz_send_fn *send, void *arg)
{
    struct wire_header h;
    if (!byz_header(msg, len, &h))
        return false;
    switch (h.type) {
    case WIRE_PREPARE:
    case WIRE_COMMIT:
    case WIRE_CHECKPOINT: {
        if (h.body_len < BFTKV_DIGEST_SIZE)
            return false;
        uint8_t d[BFTKV_DIGEST_SIZE];
        for (int i = 0; i < 4; i++) {
            uint64_t x = prng_next(&b->rng);
            memcpy(d + 8 * i, &x, 8);
        }
        b->stats.corrupted++;
        byz_send_with_digest(b, kind, id, msg, len, &h, d, send, arg);
        return true;
    }
    case WIRE_PREPREPARE: {
        /* The wrong D, authenticated: a decoder must notice D is not the digest
         * of the entries (TOCS 2002 §4.2). */
        if (h.body_len < BFTKV_DIGEST_SIZE)
            return false;
        uint8_t *s = b->scratch;
        memcpy(s, msg, len);
        s[WIRE_HEADER_SIZE + prng_below(&b->rng, BFTKV_DIGEST_SIZE)] ^= 0x5A;
        byz_reauth(b, len, &h);
        b->stats.corrupted++;
        send(arg, kind, id, s, len);
        return true;
    }
    case WIRE_REPLY:
        return byz_fabricate_reply(b, kind, id, msg, len, prng_below(&b->rng, 2) == 0, send, arg);
    default:
        return false;
    }
}

/* ---- Replay --------------------------------------------------------------------------- */

static void byz_replay_record(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    BFTKV_ASSERT(len <= BFTKV_DATAGRAM_MAX);
    struct byz_replay_slot *s = &b->ring[b->ring_next];
    b->ring_next = (b->ring_next + 1u) % BYZ_REPLAY_RING;
    if (b->ring_len < BYZ_REPLAY_RING)
        b->ring_len++;
    memcpy(s->buf, msg, len);
    s->len = (uint32_t)len;
    s->dest_kind = kind;
    s->dest_id = id;
}

/* 1 time in 4, re-send a random earlier message; half of those to a random
 * replica (an authenticator carries a MAC for every replica, so an old broadcast
 * verifies anywhere) -- never to itself. */
static void byz_replay_some(struct byz *b, byz_send_fn *send, void *arg)
{
    if (b->ring_len == 0 || !prng_percent(&b->rng, 25.0))
        return;
    const struct byz_replay_slot *s = &b->ring[prng_below(&b->rng, b->ring_len)];
    uint8_t kind = s->dest_kind;
    uint16_t id = s->dest_id;
    if (prng_below(&b->rng, 2) == 0) {
        uint16_t to = (uint16_t)prng_below(&b->rng, b->ctx.n);
        if (to != b->ctx.self) {
            kind = PBFT_DEST_REPLICA;
            id = to;
        }
    }
    b->stats.replayed++;
    send(arg, kind, id, s->buf, s->len);
}

/* ---- The filter ------------------------------------------------------------------------ */

/* stale-read: votes go to the accomplices and to the coalition only. */
static bool byz_stale_vote_withheld(const struct byz *b, uint8_t type, uint8_t kind, uint16_t id)
{
    return (type == WIRE_PREPARE || type == WIRE_COMMIT) && kind == PBFT_DEST_REPLICA && id < b->ctx.n &&
           !b->accomplice[id] && !b->ctx.coalition[id];
}

void byz_filter(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len, byz_send_fn *send,
                void *arg)
{
    BFTKV_ASSERT(kind == PBFT_DEST_REPLICA || kind == PBFT_DEST_CLIENT);
    uint8_t type = len > 3 ? msg[3] : 0;
    switch (b->mode) {
    case BYZ_SILENT:
        b->stats.dropped++;
        return;
    case BYZ_DROP:
        if (prng_percent(&b->rng, b->drop_percent)) {
            b->stats.dropped++;
            return;
        }
        break;
    case BYZ_CORRUPT_MAC:
        if (prng_percent(&b->rng, 60.0) && byz_corrupt_mac(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_CORRUPT_DIGEST:
        if (byz_corrupt_digest(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_WRONG_RESULT:
        if (type == WIRE_REPLY &&
            byz_fabricate_reply(b, kind, id, msg, len, prng_below(&b->rng, 4) == 0, send, arg))
            return;
        break;
    case BYZ_REPLAY:
        send(arg, kind, id, msg, len);
        byz_replay_some(b, send, arg);
        byz_replay_record(b, kind, id, msg, len);
        return;
    case BYZ_MIX: {
        uint64_t roll = prng_below(&b->rng, 100);
        if (roll < 50) {
            b->stats.dropped++;
            return;
        }
        if (roll < 80) {
            bool done = prng_below(&b->rng, 2) == 0 ? byz_corrupt_mac(b, kind, id, msg, len, send, arg)
                                                    : byz_corrupt_digest(b, kind, id, msg, len, send, arg);
            if (done)
                return;
        }
        break;
    }
    case BYZ_STALE_READ:
        if (byz_stale_vote_withheld(b, type, kind, id)) {
            b->stats.dropped++;
            return;
        }
        if (type == WIRE_REPLY && len >= WIRE_HEADER_SIZE + WIRE_REPLY_FIXED &&
            (msg[WIRE_HEADER_SIZE + 6] & WIRE_REPLY_READONLY) != 0 &&
            byz_stale_reply(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_EQUIVOCATE:
        byz_equivocate(b, kind, id, msg, len, send, arg);
        return;
    case BYZ_LYING_STATE:
        if (type == WIRE_STATE && byz_lying_state(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_BOGUS_VIEW_CHANGE:
        if (type == WIRE_VIEW_CHANGE && byz_bogus_view_change(b, kind, id, msg, len, send, arg))
            return;
        if (type == WIRE_NEW_VIEW && prng_below(&b->rng, 2) == 0 &&
            byz_bogus_new_view(b, kind, id, msg, len, send, arg))
            return;
        break;
    case BYZ_SLOW: /* the caller holds it (byz_delay_ns) */
    case BYZ_NONE:
    case BYZ_MODE_COUNT:
        break;
    }
    send(arg, kind, id, msg, len);
}
