/* Whole-store operations for state transfer (store.h, docs/design.md §5.6):
 * an empty twin of a store, and the exchange of two stores' contents.
 *
 * A replica that fetches a checkpoint's state from its peers restores it into a
 * staging store, not into the store it serves from: the state is only known to be
 * right once all of it is in and its digest matches the one q replicas signed
 * (TOCS 2002 §5.3.2). Then the staging store's contents become the live store's
 * in one O(shards) exchange of shard tables, and the old contents go to the
 * staging store, to be cleared. The staging store is made by store_create_like()
 * with the live store's shard count and hash key, so the exchange moves tables
 * that were built for exactly that key and shard mapping, and no random key is
 * drawn afterwards (the engine that calls this draws no randomness).
 */
#include "store/store.h"

#include <stdatomic.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "store/store_internal.h"

_Static_assert(STORE_HASH_KEY_SIZE == crypto_shorthash_KEYBYTES, "the SipHash key of store.c");

int store_create_keyed(const struct store_config *cfg, const uint8_t key[STORE_HASH_KEY_SIZE], struct store **out)
{
    if (key == NULL) {
        return BFTKV_E_INVAL;
    }
    int rc = store_create(cfg, out);
    if (rc != 0) {
        return rc;
    }
    /* The store is empty and not shared yet: no table depends on the key. */
    memcpy((*out)->hash_key, key, STORE_HASH_KEY_SIZE);
    return 0;
}

int store_create_like(const struct store *model, struct store **out)
{
    if (model == NULL) {
        return BFTKV_E_INVAL;
    }
    BFTKV_ASSERT(model->initial_slots <= UINT32_MAX);
    struct store_config cfg = {.shards = model->nshards, .initial_slots = (uint32_t)model->initial_slots};
    return store_create_keyed(&cfg, model->hash_key, out);
}

static void shards_write_lock(struct store *s)
{
    for (uint32_t i = 0; i < s->nshards; i++) {
        shard_write_lock(&s->shards[i]);
    }
}

static void shards_write_unlock(struct store *s)
{
    for (uint32_t i = 0; i < s->nshards; i++) {
        shard_write_unlock(&s->shards[i]);
    }
}

int store_swap(struct store *a, struct store *b)
{
    if (a == NULL || b == NULL || a->nshards != b->nshards) {
        return BFTKV_E_INVAL;
    }
    if (a == b) {
        return 0;
    }
    /* Every shard of both stores, write-locked in one global order (by address)
     * so two concurrent swaps cannot deadlock. A writer holds one shard lock at a
     * time, and snapshots take the snapshot mutex first, as this does. */
    struct store *first = (uintptr_t)a < (uintptr_t)b ? a : b;
    struct store *second = first == a ? b : a;
    store_snap_mutex_lock();
    shards_write_lock(first);
    shards_write_lock(second);
    for (uint32_t i = 0; i < a->nshards; i++) {
        struct shard *sa = &a->shards[i];
        struct shard *sb = &b->shards[i];
        struct table *t = sa->table;
        shard_table_set(sa, sb->table);
        shard_table_set(sb, t);
        uint64_t ca = atomic_load_explicit(&sa->count, memory_order_relaxed);
        uint64_t cb = atomic_load_explicit(&sb->count, memory_order_relaxed);
        atomic_store_explicit(&sa->count, cb, memory_order_relaxed);
        atomic_store_explicit(&sb->count, ca, memory_order_relaxed);
        struct snap_shard *snap = sa->snap;
        shard_snap_set(sa, sb->snap);
        shard_snap_set(sb, snap);
    }
    /* The snapshots read the tables they were taken of (docs/design.md §3.4), and
     * the entries in them carry generations of that store's epoch: the list of
     * live snapshots and the epoch move with the tables. */
    struct store_snapshot *newest = a->newest;
    struct store_snapshot *oldest = a->oldest;
    uint64_t epoch = a->epoch;
    a->newest = b->newest;
    a->oldest = b->oldest;
    a->epoch = b->epoch;
    b->newest = newest;
    b->oldest = oldest;
    b->epoch = epoch;
    store_snapshots_adopt(a);
    store_snapshots_adopt(b);
    /* The tables were built under their store's key: it moves with them. A reader
     * that hashed its key before the swap and reads after it may then miss an
     * entry; stores made by store_create_like() share the key, so theirs cannot. */
    uint8_t key[STORE_HASH_KEY_SIZE];
    memcpy(key, a->hash_key, sizeof key);
    memcpy(a->hash_key, b->hash_key, sizeof key);
    memcpy(b->hash_key, key, sizeof key);
    shards_write_unlock(second);
    shards_write_unlock(first);
    store_snap_mutex_unlock();
    return 0;
}
