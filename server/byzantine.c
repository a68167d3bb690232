/* Runtime Byzantine modes (server/byzantine.h): the engine's rewriter between
 * the outbox and the transport, plus slow's delay queue.
 */
#include "server/byzantine.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "common/assert.h"

struct server_byz_held {
    uint64_t due_ns;
    uint32_t off;
    uint32_t len;
    uint8_t dest_kind;
    uint16_t dest_id;
};

struct server_byz {
    struct byz *rw;
    /* The current server_byz_filter call: where rewritten messages go. */
    byz_send_fn *send;
    void *send_arg;
    uint64_t now_ns;
    /* slow: entries in due order, head first; their bytes in a ring */
    struct server_byz_held *held;
    uint32_t head;
    uint32_t count;
    uint8_t *bytes;
    uint32_t wr; /* where the next message's bytes go */
    struct server_byz_stats stats;
};

int server_byz_create(enum byz_mode mode, uint64_t seed, const struct byz_context *ctx, struct server_byz **out)
{
    if (out == NULL)
        return BFTKV_E_INVAL;
    struct server_byz *sb = calloc(1, sizeof *sb);
    if (sb == NULL)
        return BFTKV_E_NOMEM;
    int rc = byz_create(mode, seed, ctx, &sb->rw);
    if (rc == 0 && mode == BYZ_SLOW) {
        sb->held = calloc(SERVER_BYZ_HELD_MAX, sizeof *sb->held);
        sb->bytes = malloc(SERVER_BYZ_HELD_BYTES);
        if (sb->held == NULL || sb->bytes == NULL)
            rc = BFTKV_E_NOMEM;
    }
    if (rc != 0) {
        server_byz_destroy(sb);
        return rc;
    }
    *out = sb;
    return 0;
}

void server_byz_destroy(struct server_byz *sb)
{
    if (sb == NULL)
        return;
    byz_destroy(sb->rw);
    free(sb->held);
    free(sb->bytes);
    free(sb);
}

enum byz_mode server_byz_mode(const struct server_byz *sb)
{
    return byz_mode_of(sb->rw);
}

void server_byz_stats_get(const struct server_byz *sb, struct server_byz_stats *out)
{
    *out = sb->stats;
    out->rewriter = *byz_stats_of(sb->rw);
}

/* Room for len bytes in the ring: at wr if it fits before the end or before the
 * oldest held message, else at 0 if that fits before the oldest. The oldest
 * message's bytes start at held[head].off. */
static bool server_byz_room(struct server_byz *sb, uint32_t len, uint32_t *at)
{
    if (sb->count == 0) {
        sb->wr = 0;
        *at = 0;
        return len <= SERVER_BYZ_HELD_BYTES;
    }
    uint32_t rd = sb->held[sb->head].off;
    if (sb->wr >= rd) {
        if (len <= SERVER_BYZ_HELD_BYTES - sb->wr) {
            *at = sb->wr;
            return true;
        }
        if (len < rd) {
            *at = 0;
            return true;
        }
        return false;
    }
    if (len < rd - sb->wr) {
        *at = sb->wr;
        return true;
    }
    return false;
}

static void server_byz_hold(struct server_byz *sb, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                            uint64_t due_ns)
{
    uint32_t at = 0;
    if (sb->count == SERVER_BYZ_HELD_MAX || len > UINT32_MAX || !server_byz_room(sb, (uint32_t)len, &at)) {
        sb->stats.held_full++;
        return;
    }
    struct server_byz_held *e = &sb->held[(sb->head + sb->count) % SERVER_BYZ_HELD_MAX];
    memcpy(sb->bytes + at, msg, len);
    *e = (struct server_byz_held){.due_ns = due_ns, .off = at, .len = (uint32_t)len, .dest_kind = kind, .dest_id = id};
    sb->wr = at + (uint32_t)len;
    sb->count++;
    sb->stats.held++;
}

/* The rewriter's send function: now, or into the queue. */
static void server_byz_out(void *arg, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    struct server_byz *sb = arg;
    uint64_t delay = byz_delay_ns(sb->rw, kind);
    if (delay == 0)
        sb->send(sb->send_arg, kind, id, msg, len);
    else
        server_byz_hold(sb, kind, id, msg, len, sb->now_ns + delay);
}

void server_byz_filter(struct server_byz *sb, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                       uint64_t now_ns, byz_send_fn *send, void *arg)
{
    sb->send = send;
    sb->send_arg = arg;
    sb->now_ns = now_ns;
    byz_filter(sb->rw, kind, id, msg, len, server_byz_out, sb);
    sb->send = NULL;
    sb->send_arg = NULL;
}

uint64_t server_byz_flush(struct server_byz *sb, uint64_t now_ns, byz_send_fn *send, void *arg)
{
    while (sb->count > 0) {
        const struct server_byz_held *e = &sb->held[sb->head];
        if (e->due_ns > now_ns)
            return e->due_ns;
        send(arg, e->dest_kind, e->dest_id, sb->bytes + e->off, e->len);
        sb->head = (sb->head + 1u) % SERVER_BYZ_HELD_MAX;
        sb->count--;
    }
    return UINT64_MAX;
}
