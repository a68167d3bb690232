/* The outbox: the step functions' only output (engine/pbft.h "Outbox"). Messages
 * are encoded in place at the tail of one caller-owned byte buffer and listed in
 * send order; the caller sends them and resets the outbox before the next step.
 * This file allocates the outbox (the caller's one allocation) and gives the
 * engine its append primitives: encode at the tail, then commit; or copy a
 * finished message in. Nothing here ever grows: a full outbox says so. */
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/out.h"

int pbft_out_init(struct pbft_out *o, size_t buf_bytes, uint32_t msgs_cap)
{
    if (o == NULL || buf_bytes < PBFT_OUT_MIN_BYTES || msgs_cap < PBFT_OUT_MIN_MSGS || buf_bytes > UINT32_MAX)
        return BFTKV_E_INVAL;
    memset(o, 0, sizeof *o);
    o->buf = malloc(buf_bytes);
    o->msgs = calloc(msgs_cap, sizeof *o->msgs);
    if (o->buf == NULL || o->msgs == NULL) {
        free(o->buf);
        free(o->msgs);
        memset(o, 0, sizeof *o);
        return BFTKV_E_NOMEM;
    }
    o->cap = buf_bytes;
    o->msgs_cap = msgs_cap;
    return 0;
}

void pbft_out_free(struct pbft_out *o)
{
    if (o == NULL)
        return;
    free(o->buf);
    free(o->msgs);
    memset(o, 0, sizeof *o);
}

void pbft_out_reset(struct pbft_out *o)
{
    o->used = 0;
    o->nmsgs = 0;
    o->more = false;
}

bool pbft_out_room(const struct pbft_out *o, size_t bytes, uint32_t msgs)
{
    return o->cap - o->used >= bytes && o->msgs_cap - o->nmsgs >= msgs;
}

uint8_t *pbft_out_tail(struct pbft_out *o, size_t *cap)
{
    BFTKV_ASSERT(o->used <= o->cap);
    *cap = o->nmsgs < o->msgs_cap ? o->cap - o->used : 0;
    return o->buf + o->used;
}

/* One more entry: len bytes at buf + used (ext NULL) or at ext. */
static void out_entry(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, size_t len, const uint8_t *ext)
{
    BFTKV_ASSERT(o->nmsgs < o->msgs_cap);
    BFTKV_ASSERT(len > 0 && len <= UINT32_MAX);
    o->msgs[o->nmsgs++] = (struct pbft_out_msg){
        .dest_kind = dest_kind, .dest_id = dest_id, .off = (uint32_t)o->used, .len = (uint32_t)len, .ext = ext};
}

void pbft_out_commit(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, size_t len)
{
    BFTKV_ASSERT(len <= o->cap - o->used);
    out_entry(o, dest_kind, dest_id, len, NULL);
    o->used += len;
}

bool pbft_out_ref(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, const uint8_t *p, size_t len)
{
    BFTKV_ASSERT(p != NULL);
    if (o->nmsgs == o->msgs_cap)
        return false;
    out_entry(o, dest_kind, dest_id, len, p);
    return true;
}

bool pbft_out_copy(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len)
{
    if (!pbft_out_room(o, len, 1))
        return false;
    memcpy(o->buf + o->used, msg, len);
    pbft_out_commit(o, dest_kind, dest_id, len);
    return true;
}
