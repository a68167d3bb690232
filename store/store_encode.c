/* Reading a snapshot -- its count, digest, entries and wire form -- and restoring
 * that wire form: the source side and the sink side of state transfer (store.h,
 * docs/design.md §3.4 and §5.6).
 *
 * A snapshot's view of a shard is the live table seen through the records the
 * writers made since it was taken (store_snapshot.c): slot i reads as the first
 * record of i from this snapshot towards newer ones, else the first frozen slot
 * array on that way, else the live table. Its layout (the slot count, which
 * bounds the cursor) is the first frozen array's, else the live table's; no
 * resize can change it, since a resize freezes the array it replaces for the
 * newest snapshot. Each read holds the snapshot mutex and the shard's read lock;
 * the entries found stay valid while the snapshot lives, so visitors run
 * unlocked. store_snapshot_shard_encode() turns one shard into whole records
 * (le16 klen | le32 vlen | key | value) a chunk at a time; store_restore_chunk()
 * validates such a chunk completely, since it came from another replica, and
 * then applies it with store_put().
 */
#include "store/store.h"

#include <string.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "common/assert.h"
#include "store/store_internal.h"

/* A snapshot record: le16 klen | le32 vlen | key | value. */
#define STORE_RECORD_HEADER 6u
_Static_assert(STORE_RECORD_HEADER == STORE_RECORD_HEADER_SIZE, "store.h documents the record header");

/* Entries a visitor gets per locked pass over a shard. */
#define STORE_VISIT_BATCH 64u

/* One shard of a snapshot, resolved for reading: locked on open, unlocked on close. */
struct snap_view {
    const struct store_snapshot *snap;
    uint32_t shard;
    struct shard *sh;
    const struct store_snapshot *frozen; /* whose base array is the layout; NULL: live */
    uint64_t cap;
};

static void view_open(struct snap_view *v, const struct store_snapshot *snap, uint32_t shard)
{
    BFTKV_ASSERT(shard < snap->nshards);
    store_snap_mutex_lock();
    v->snap = snap;
    v->shard = shard;
    v->sh = &snap->store->shards[shard];
    shard_read_lock(v->sh);
    v->frozen = NULL;
    for (const struct store_snapshot *p = snap; p != NULL; p = p->newer) {
        if (p->sh[shard].frozen) {
            v->frozen = p;
            break;
        }
    }
    v->cap = v->frozen != NULL ? v->frozen->sh[shard].base_cap : (v->sh->slots != NULL ? v->sh->mask + 1 : 0);
    /* The layout is the one the snapshot was taken with: a resize froze it. */
    BFTKV_ASSERT(v->cap == snap->sh[shard].cap);
}

static void view_close(struct snap_view *v)
{
    shard_read_unlock(v->sh);
    store_snap_mutex_unlock();
}

/* The entry in slot i (< cap) of the snapshot's view, or NULL for an empty slot. */
static const struct entry *view_entry(const struct snap_view *v, uint64_t i)
{
    for (const struct store_snapshot *p = v->snap;; p = p->newer) {
        const struct snap_shard *ss = &p->sh[v->shard];
        const struct undo_rec *r = undo_find(&ss->undo, i);
        if (r != NULL) {
            return r->e;
        }
        if (p == v->frozen) {
            return ss->base[i].e;
        }
        if (p->newer == NULL) {
            return v->sh->slots[i].e;
        }
    }
}

uint32_t store_snapshot_shard_count(const struct store_snapshot *snap)
{
    return snap->nshards;
}

uint64_t store_snapshot_count(const struct store_snapshot *snap)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < snap->nshards; i++) {
        n += snap->sh[i].count; /* set when taken, never changed */
    }
    return n;
}

/* A shard's accumulator as taken: the first one saved from this snapshot towards
 * newer ones (saved before the first change after each), else the live one. */
void store_snapshot_digest(const struct store_snapshot *snap, struct lthash *out)
{
    lthash_zero(out);
    store_snap_mutex_lock();
    for (uint32_t i = 0; i < snap->nshards; i++) {
        struct shard *sh = &snap->store->shards[i];
        shard_read_lock(sh);
        const struct lthash *acc = sh->table != NULL ? &sh->table->acc : NULL;
        for (const struct store_snapshot *p = snap; p != NULL; p = p->newer) {
            if (p->sh[i].acc_saved) {
                acc = p->sh[i].acc;
                break;
            }
        }
        if (acc != NULL) {
            lthash_add(out, acc);
        }
        shard_read_unlock(sh);
    }
    store_snap_mutex_unlock();
}

int store_snapshot_shard_foreach(const struct store_snapshot *snap, uint32_t shard, store_visit_fn fn,
                                 void *arg)
{
    BFTKV_ASSERT(shard < snap->nshards);
    const struct entry *batch[STORE_VISIT_BATCH];
    uint64_t pos = 0;
    for (;;) {
        struct snap_view v;
        view_open(&v, snap, shard);
        uint64_t end = v.cap;
        unsigned n = 0;
        for (; pos < end && n < STORE_VISIT_BATCH; pos++) {
            const struct entry *e = view_entry(&v, pos);
            if (e != NULL) {
                batch[n++] = e;
            }
        }
        view_close(&v);
        /* Unlocked: fn may use the store; the entries live as long as snap. */
        for (unsigned k = 0; k < n; k++) {
            int rc = fn(arg, entry_key(batch[k]), batch[k]->klen, entry_value(batch[k]), batch[k]->vlen);
            if (rc != 0) {
                return rc;
            }
        }
        if (pos >= end) {
            return 0;
        }
    }
}

/* ---- Encoding and restore ---------------------------------------------------------- */

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

bool store_snapshot_cursor_valid(const struct store_snapshot *snap, uint32_t shard, uint64_t cursor)
{
    return shard < snap->nshards && cursor <= snap->sh[shard].cap;
}

int store_snapshot_shard_encode(const struct store_snapshot *snap, uint32_t shard, uint64_t *cursor,
                                uint8_t *buf, size_t cap, size_t *len, bool *done)
{
    struct snap_view v;
    view_open(&v, snap, shard);
    uint64_t end = v.cap;
    uint64_t pos = *cursor;
    BFTKV_ASSERT(pos <= end); /* a cursor comes from an earlier call on this shard */
    size_t used = 0;
    *len = 0;
    *done = false;

    for (; pos < end; pos++) {
        const struct entry *e = view_entry(&v, pos);
        if (e == NULL) {
            continue;
        }
        size_t need = STORE_RECORD_HEADER + e->klen + e->vlen;
        if (need > cap - used) {
            if (used == 0) {
                view_close(&v);
                return BFTKV_E_BUF_TOO_SMALL; /* *cursor unchanged */
            }
            break;
        }
        uint8_t *p = buf + used;
        put_le16(p, e->klen);
        put_le32(p + 2, e->vlen);
        memcpy(p + STORE_RECORD_HEADER, e->bytes, (size_t)e->klen + e->vlen);
        used += need;
    }
    /* Skip the empty tail so *done is exact as soon as the last record is out. */
    while (pos < end && view_entry(&v, pos) == NULL) {
        pos++;
    }
    view_close(&v);
    *cursor = pos;
    *len = used;
    *done = pos == end;
    return 0;
}

int store_restore_chunk(struct store *s, const uint8_t *buf, size_t len)
{
    if (buf == NULL && len > 0) {
        return BFTKV_E_INVAL;
    }
    /* Pass 1: validate every record; these bytes came from another replica. */
    size_t off = 0;
    while (off < len) {
        if (len - off < STORE_RECORD_HEADER) {
            return BFTKV_E_CORRUPT;
        }
        size_t klen = get_le16(buf + off);
        size_t vlen = get_le32(buf + off + 2);
        if (klen == 0 || klen > BFTKV_KEY_MAX || vlen > BFTKV_VALUE_MAX) {
            return BFTKV_E_CORRUPT;
        }
        if (len - off - STORE_RECORD_HEADER < klen + vlen) {
            return BFTKV_E_CORRUPT;
        }
        off += STORE_RECORD_HEADER + klen + vlen;
    }
    /* Pass 2: apply. Only BFTKV_E_NOMEM can stop it, after a prefix of the chunk;
     * puts are idempotent, so applying the chunk again is safe. */
    off = 0;
    while (off < len) {
        size_t klen = get_le16(buf + off);
        size_t vlen = get_le32(buf + off + 2);
        const uint8_t *key = buf + off + STORE_RECORD_HEADER;
        int rc = store_put(s, key, klen, key + klen, vlen);
        if (rc != 0) {
            BFTKV_ASSERT(rc == BFTKV_E_NOMEM);
            return rc;
        }
        off += STORE_RECORD_HEADER + klen + vlen;
    }
    return 0;
}
