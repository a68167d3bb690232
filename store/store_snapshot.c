/* Snapshots of the store and their wire form, the source side and the sink side
 * of state transfer (store.h, docs/design.md §5.6 and §3).
 *
 * A snapshot holds one reference to each shard's table, taken while every shard's
 * read lock is held, so it is one point in time and costs O(shards); the writers
 * copy a shared table before changing it (store.c, shard_make_writable). Nothing
 * here takes a write lock or changes a table. store_snapshot_shard_encode() turns
 * one shard of a snapshot into whole records (le16 klen | le32 vlen | key | value)
 * a chunk at a time; store_restore_chunk() validates such a chunk completely,
 * since it came from another replica, and then applies it with store_put().
 */
#include "store/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "common/assert.h"
#include "store/store_internal.h"

/* A snapshot record: le16 klen | le32 vlen | key | value. */
#define STORE_RECORD_HEADER 6u
_Static_assert(STORE_RECORD_HEADER == STORE_RECORD_HEADER_SIZE, "store.h documents the record header");

struct store_snapshot {
    uint32_t nshards;
    struct table *tables[]; /* one reference per shard; NULL for an empty shard */
};

/* ---- Snapshots ------------------------------------------------------------------------ */

int store_snapshot_take(struct store *s, struct store_snapshot **out)
{
    struct store_snapshot *snap =
        store_malloc(sizeof *snap + (size_t)s->nshards * sizeof snap->tables[0]);
    if (snap == NULL) {
        return BFTKV_E_NOMEM;
    }
    snap->nshards = s->nshards;
    /* Hold every shard's read lock at once, so the snapshot is one point in time
     * even with concurrent writers: at the moment the last lock is taken no shard
     * can change. Locks go in index order and a writer holds one lock at a time,
     * so this cannot deadlock. Readers are never blocked. */
    for (uint32_t i = 0; i < s->nshards; i++) {
        struct shard *sh = &s->shards[i];
        shard_read_lock(sh);
        snap->tables[i] = sh->table;
        if (sh->table != NULL) {
            /* Relaxed: the shard lock orders this before any writer's check of refs. */
            atomic_fetch_add_explicit(&sh->table->refs, 1u, memory_order_relaxed);
        }
    }
    for (uint32_t i = 0; i < s->nshards; i++) {
        shard_read_unlock(&s->shards[i]);
    }
    *out = snap;
    return 0;
}

void store_snapshot_release(struct store_snapshot *snap)
{
    if (snap == NULL) {
        return;
    }
    for (uint32_t i = 0; i < snap->nshards; i++) {
        store_table_unref(snap->tables[i]);
    }
    free(snap);
}

uint32_t store_snapshot_shard_count(const struct store_snapshot *snap)
{
    return snap->nshards;
}

uint64_t store_snapshot_count(const struct store_snapshot *snap)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < snap->nshards; i++) {
        n += snap->tables[i] != NULL ? snap->tables[i]->count : 0;
    }
    return n;
}

void store_snapshot_digest(const struct store_snapshot *snap, struct lthash *out)
{
    lthash_zero(out);
    for (uint32_t i = 0; i < snap->nshards; i++) {
        if (snap->tables[i] != NULL) {
            lthash_add(out, &snap->tables[i]->acc);
        }
    }
}

int store_snapshot_shard_foreach(const struct store_snapshot *snap, uint32_t shard, store_visit_fn fn,
                                 void *arg)
{
    BFTKV_ASSERT(shard < snap->nshards);
    const struct table *t = snap->tables[shard];
    if (t == NULL) {
        return 0;
    }
    for (uint64_t i = 0; i <= t->mask; i++) {
        const struct entry *e = t->slots[i].e;
        if (e == NULL) {
            continue;
        }
        int rc = fn(arg, entry_key(e), e->klen, entry_value(e), e->vlen);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
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
    if (shard >= snap->nshards) {
        return false;
    }
    const struct table *t = snap->tables[shard];
    return cursor <= (t != NULL ? t->mask + 1 : 0);
}

int store_snapshot_shard_encode(const struct store_snapshot *snap, uint32_t shard, uint64_t *cursor,
                                uint8_t *buf, size_t cap, size_t *len, bool *done)
{
    BFTKV_ASSERT(shard < snap->nshards);
    const struct table *t = snap->tables[shard];
    uint64_t end = t != NULL ? t->mask + 1 : 0;
    uint64_t pos = *cursor;
    BFTKV_ASSERT(pos <= end); /* a cursor comes from an earlier call on this shard */
    size_t used = 0;
    *len = 0;
    *done = false;

    for (; pos < end; pos++) {
        const struct entry *e = t->slots[pos].e;
        if (e == NULL) {
            continue;
        }
        size_t need = STORE_RECORD_HEADER + e->klen + e->vlen;
        if (need > cap - used) {
            if (used == 0) {
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
    while (pos < end && t->slots[pos].e == NULL) {
        pos++;
    }
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
