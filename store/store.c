/* The store: S shards, each an open-addressing hash table under its own
 * reader-writer lock, with an LtHash accumulator per shard and snapshots that
 * cost O(changes) (store.h, docs/design.md §3 and §5.6).
 *
 * Layout
 *   - A key's 64-bit hash is SipHash-2-4 (libsodium crypto_shorthash) under a
 *     random per-store key, so a client that picks keys cannot aim them all at one
 *     shard or one probe run (hash flooding). Nothing observable depends on the
 *     key: digests and snapshot contents are the same on every replica; only the
 *     table order differs. The top 16 bits pick the shard, the low bits the slot.
 *   - A shard's table is linear probing over slots {hash, entry}. Deletion shifts
 *     the following run back (no tombstones), so long put/del churn never degrades
 *     probing. The table doubles when it would pass 3/4 full.
 *   - Entries are immutable: {generation, klen, vlen, LtHash seed, key bytes,
 *     value bytes}. A put builds the entry and its LtHash vector before taking
 *     the lock and only swaps a pointer and adds lanes under it.
 *   - Snapshots (store_snapshot.c, docs/design.md §3.4) cost O(changes): a write
 *     records, for the newest snapshot only, the old value of each slot it
 *     changes (once per slot), the accumulator before the first change, and the
 *     entry it supersedes when a snapshot can still see it; a resize or clear
 *     hands the old slot array to that snapshot instead of freeing it. Nothing
 *     is cloned and no other entry is touched.
 *   - An empty shard may have no table at all (after store_clear, or before its
 *     first put); it is created on the first put.
 *
 * Locks: ck_rwlock per shard. Readers spin briefly and then yield; the writer path
 * follows ck_rwlock_write_lock() (writer preference) with the same back-off, since
 * on a small box a spinning thread can otherwise burn the time slice of the thread
 * it is waiting for. Under ThreadSanitizer the lock is annotated, because ck's
 * inline assembly is invisible to it.
 *
 * This file holds the tables and the operations on them. The rest of the store:
 * store_snapshot.c (snapshots and what a write records for them),
 * store_encode.c (reading a snapshot, its encoding, restore), store_testhooks.c (the
 * invariant check) and store_internal.h (the layouts above, the shard locks and
 * the key hash, which all of them use).
 */
#include "store/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ck_rwlock.h>
#include <sodium.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "common/assert.h"
#include "store/store_internal.h"

#define STORE_INITIAL_SLOTS_DEFAULT 16u
#define STORE_INITIAL_SLOTS_MAX (1u << 30)
#define STORE_SLOTS_MIN 4u

/* ---- Allocation (with the test hook of store_internal.h) ---------------------- */

static atomic_long store_alloc_budget = -1;
/* Per thread: counting costs no atomic operation, and a test measures its own
 * thread's operations. */
static _Thread_local uint64_t store_alloc_calls;
static _Thread_local uint64_t store_alloc_bytes;

void store_test_fail_alloc_after(long n)
{
    atomic_store_explicit(&store_alloc_budget, n, memory_order_relaxed);
}

void store_test_allocs_get(struct store_test_allocs *out)
{
    out->calls = store_alloc_calls;
    out->bytes = store_alloc_bytes;
}

static bool store_alloc_allowed(size_t bytes)
{
    store_alloc_calls++;
    store_alloc_bytes += bytes;
    long budget = atomic_load_explicit(&store_alloc_budget, memory_order_relaxed);
    if (BFTKV_LIKELY(budget < 0)) {
        return true;
    }
    if (budget == 0) {
        return false;
    }
    atomic_store_explicit(&store_alloc_budget, budget - 1, memory_order_relaxed);
    return true;
}

void *store_malloc(size_t n)
{
    return store_alloc_allowed(n) ? malloc(n) : NULL;
}

void *store_calloc(size_t n, size_t size)
{
    return store_alloc_allowed(n * size) ? calloc(n, size) : NULL;
}

void *store_aligned_alloc(size_t size)
{
    BFTKV_ASSERT(size % STORE_CACHE_LINE == 0);
    return store_alloc_allowed(size) ? aligned_alloc(STORE_CACHE_LINE, size) : NULL;
}

/* ---- Entries -------------------------------------------------------------------- */

/* Built outside any lock, in two steps so that the new block's cache lines
 * arrive while the seed and its LtHash vector are computed: entry_alloc asks
 * for them (a block the allocator hands out is often cold: while snapshots
 * keep superseded entries, the one just freed is not what comes back), and
 * entry_fill writes the bytes and the BLAKE2b seed. gen is set under the write
 * lock, where the store's epoch is stable. */
static struct entry *entry_alloc(size_t klen, size_t vlen)
{
    size_t bytes = sizeof(struct entry) + klen + vlen;
    struct entry *e = store_malloc(bytes);
    if (e != NULL) {
        __builtin_prefetch(e, 1);
        __builtin_prefetch((const char *)e + bytes - 1, 1);
    }
    return e;
}

static void entry_fill(struct entry *e, const void *key, size_t klen, const void *val, size_t vlen,
                       const uint8_t seed[LTHASH_SEED_SIZE])
{
    e->gen = 0;
    e->klen = (uint16_t)klen;
    e->vlen = (uint32_t)vlen;
    memcpy(e->seed, seed, LTHASH_SEED_SIZE);
    memcpy(e->bytes, key, klen);
    if (vlen > 0) {
        memcpy(e->bytes + klen, val, vlen);
    }
}

/* Ask for what a write to slot i will read of the shard's newest snapshot: the
 * hot line of its part and its undo record of the slot (store_internal.h).
 * Relaxed reads without the lock: a stale or torn value gives a useless
 * address, never a fault (a prefetch does not fault). */
static void shard_snap_prefetch(const struct shard *sh, uint64_t i)
{
    const struct snap_shard *ss = __atomic_load_n(&sh->snap, __ATOMIC_RELAXED);
    if (ss == NULL) {
        return;
    }
    __builtin_prefetch(ss, 1);
    const struct undo_rec *recs = __atomic_load_n(&sh->undo_recs, __ATOMIC_RELAXED);
    uint64_t mask = __atomic_load_n(&sh->undo_mask, __ATOMIC_RELAXED);
    if (recs != NULL) {
        __builtin_prefetch(&recs[undo_home(mask, i + 1)], 1);
    }
}

static bool value_equal(const struct entry *e, const void *val, size_t vlen)
{
    return e->vlen == vlen && (vlen == 0 || memcmp(entry_value(e), val, vlen) == 0);
}

static bool entry_matches(const struct slot *sl, uint64_t hash, const void *key, size_t klen)
{
    return sl->hash == hash && sl->e->klen == klen && memcmp(entry_key(sl->e), key, klen) == 0;
}

/* ---- Tables ----------------------------------------------------------------------- */

static struct table *table_new(uint64_t capacity)
{
    BFTKV_ASSERT(capacity >= STORE_SLOTS_MIN);
    BFTKV_ASSERT((capacity & (capacity - 1)) == 0);
    struct table *t = store_aligned_alloc(sizeof *t);
    if (t == NULL) {
        return NULL;
    }
    t->slots = store_calloc(capacity, sizeof *t->slots);
    if (t->slots == NULL) {
        free(t);
        return NULL;
    }
    lthash_zero(&t->acc);
    t->mask = capacity - 1;
    t->count = 0;
    t->dropped_next = NULL;
    return t;
}

void store_table_free(struct table *t)
{
    if (t == NULL) {
        return;
    }
    uint64_t seen = 0;
    for (uint64_t i = 0; i <= t->mask; i++) {
        if (t->slots[i].e != NULL) {
            free(t->slots[i].e);
            seen++;
        }
    }
    BFTKV_ASSERT(seen == t->count);
    free(t->slots);
    free(t);
}

/* The slot of the shard's table holding key, or the empty slot where it would
 * go; the shard must have a table. Reads the shard's mirrors of the table's slots
 * and mask (store_internal.h), not the table. Every probe ends at an empty slot:
 * count < capacity, asserted by every insert. */
static uint64_t shard_find(const struct shard *sh, uint64_t hash, const void *key, size_t klen, bool *found)
{
    const struct slot *slots = sh->slots;
    const uint64_t mask = sh->mask;
    uint64_t i = hash & mask;
    for (;;) {
        const struct slot *sl = &slots[i];
        if (sl->e == NULL) {
            *found = false;
            return i;
        }
        if (entry_matches(sl, hash, key, klen)) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* shard_find for a shard that may have no table yet (it then holds nothing):
 * whether key is there, and its slot or the empty one in *at (0 without a table). */
static bool shard_lookup(const struct shard *sh, uint64_t hash, const void *key, size_t klen, uint64_t *at)
{
    bool found = false;
    *at = sh->slots != NULL ? shard_find(sh, hash, key, klen, &found) : 0;
    return found;
}

/* Rehash: place a slot known to be absent into slots of capacity mask + 1. */
static void slots_place(struct slot *slots, uint64_t mask, struct slot sl)
{
    uint64_t i = sl.hash & mask;
    while (slots[i].e != NULL) {
        i = (i + 1) & mask;
    }
    slots[i] = sl;
}

/* Whether the entry in slot j (of the run after a hole) moves back into the
 * hole: unless its home position lies cyclically in (hole, j]. */
static bool slot_fills_hole(const struct table *t, uint64_t j, uint64_t hole)
{
    uint64_t home = t->slots[j].hash & t->mask;
    return ((j - home) & t->mask) >= ((j - hole) & t->mask);
}

/* The slots that removing slot i writes (shard_remove_at): the moves and the
 * final hole. A delete makes room to record exactly these, not its whole run. */
static uint64_t table_remove_writes(const struct table *t, uint64_t i)
{
    uint64_t writes = 1;
    uint64_t hole = i;
    for (uint64_t j = (i + 1) & t->mask; t->slots[j].e != NULL; j = (j + 1) & t->mask) {
        if (slot_fills_hole(t, j, hole)) {
            writes++;
            hole = j;
        }
    }
    return writes;
}

/* Remove slot i by shifting the rest of its run back: each later slot moves into
 * the hole unless its home position lies cyclically in (hole, slot]. Every slot
 * written is first recorded for the newest snapshot (snap_save_slot). */
static void shard_remove_at(struct shard *sh, uint64_t i)
{
    struct table *t = sh->table;
    BFTKV_ASSERT(t->slots[i].e != NULL);
    BFTKV_ASSERT(t->count > 0);
    uint64_t hole = i;
    for (uint64_t j = (i + 1) & t->mask; t->slots[j].e != NULL; j = (j + 1) & t->mask) {
        if (slot_fills_hole(t, j, hole)) {
            snap_save_slot(sh, hole);
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    snap_save_slot(sh, hole);
    t->slots[hole] = (struct slot){0, NULL};
    t->count--;
}

static bool table_needs_room(const struct table *t)
{
    return (t->count + 1) * 4 > (t->mask + 1) * 3;
}

/* Give the shard room for one more entry under the 3/4 load factor: a table
 * when it has none, or a slot array twice as large. The old array goes to the
 * newest snapshot when it still reads that layout (snap_freeze), else it is
 * freed. Positions change: callers re-probe. Under the shard write lock. 0 or
 * BFTKV_E_NOMEM, and then nothing changed. */
static int shard_grow(const struct store *s, struct shard *sh)
{
    struct table *t = sh->table;
    if (t == NULL) {
        t = table_new(s->initial_slots);
        if (t == NULL) {
            return BFTKV_E_NOMEM;
        }
        (void)snap_freeze(sh, NULL, 0); /* the snapshot saw no table: nothing to keep */
        shard_table_set(sh, t);
        return 0;
    }
    uint64_t old_cap = t->mask + 1;
    uint64_t cap = old_cap * 2;
    struct slot *slots = store_calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return BFTKV_E_NOMEM;
    }
    for (uint64_t i = 0; i < old_cap; i++) {
        if (t->slots[i].e != NULL) {
            slots_place(slots, cap - 1, t->slots[i]);
        }
    }
    if (!snap_freeze(sh, t->slots, old_cap)) {
        free(t->slots);
    }
    t->slots = slots;
    t->mask = cap - 1;
    shard_table_set(sh, t);
    return 0;
}

static void shard_publish_count(struct shard *sh)
{
    uint64_t n = sh->table != NULL ? sh->table->count : 0;
    atomic_store_explicit(&sh->count, n, memory_order_relaxed);
}

/* ---- Hashing and input checks ----------------------------------------------------- */
/* The shard that holds key, and the key's hash for the lookup in it: the hash
 * store_key_prefetch() computed when hint holds one under this store's hash key,
 * else computed now. */
static struct shard *store_shard_for(const struct store *s, const struct store_key_hint *hint, const void *key,
                                     size_t klen, uint64_t *hash)
{
    if (hint != NULL && hint->valid && hint->key_tag == store_hash_key_tag(s)) {
        *hash = hint->hash;
    } else {
        *hash = store_key_hash(s, key, klen);
    }
    return store_shard_of(s, *hash);
}

static int store_check_key(const void *key, size_t klen)
{
    if (klen == 0) {
        return BFTKV_E_KEY_EMPTY;
    }
    if (klen > BFTKV_KEY_MAX) {
        return BFTKV_E_KEY_TOO_LARGE;
    }
    if (key == NULL) {
        return BFTKV_E_INVAL;
    }
    return 0;
}

/* ---- Life cycle ------------------------------------------------------------------- */

int store_create(const struct store_config *cfg, struct store **out)
{
    if (out == NULL) {
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    uint32_t shards = cfg != NULL && cfg->shards != 0 ? cfg->shards : BFTKV_STORE_SHARDS_DEFAULT;
    uint64_t slots = cfg != NULL && cfg->initial_slots != 0 ? cfg->initial_slots : STORE_INITIAL_SLOTS_DEFAULT;
    if (shards > BFTKV_STORE_SHARDS_MAX || (shards & (shards - 1)) != 0) {
        return BFTKV_E_INVAL;
    }
    if (slots > STORE_INITIAL_SLOTS_MAX) {
        return BFTKV_E_INVAL;
    }
    uint64_t capacity = STORE_SLOTS_MIN;
    while (capacity < slots) {
        capacity *= 2;
    }
    if (sodium_init() < 0) {
        return BFTKV_E_IO;
    }

    struct store *s = store_malloc(sizeof *s);
    if (s == NULL) {
        return BFTKV_E_NOMEM;
    }
    s->shards = store_aligned_alloc((size_t)shards * sizeof *s->shards);
    if (s->shards == NULL) {
        free(s);
        return BFTKV_E_NOMEM;
    }
    for (uint32_t i = 0; i < shards; i++) {
        ck_rwlock_init(&s->shards[i].lock);
        shard_table_set(&s->shards[i], NULL); /* created by the first put */
        atomic_init(&s->shards[i].count, 0u);
        shard_snap_set(&s->shards[i], NULL);
    }
    s->epoch = 1;
    s->newest = NULL;
    s->oldest = NULL;
    s->destroyed = false;
    s->nshards = shards;
    s->shard_mask = shards - 1;
    s->initial_slots = capacity;
    /* Random per store: defends against hash flooding (see the top of the file). */
    randombytes_buf(s->hash_key, sizeof s->hash_key);
    *out = s;
    return 0;
}

/* A store with live snapshots stays allocated (they read its tables) until the
 * last of them is released (store_snapshot.c). */
void store_destroy(struct store *s)
{
    if (s == NULL) {
        return;
    }
    store_snap_mutex_lock();
    bool keep = s->oldest != NULL;
    s->destroyed = keep;
    store_snap_mutex_unlock();
    if (!keep) {
        store_free(s);
    }
}

void store_free(struct store *s)
{
    for (uint32_t i = 0; i < s->nshards; i++) {
        BFTKV_ASSERT(s->shards[i].snap == NULL);
        store_table_free(s->shards[i].table);
    }
    free(s->shards);
    free(s);
}

uint32_t store_shard_count(const struct store *s)
{
    return s->nshards;
}

/* ---- Operations --------------------------------------------------------------------- */

int store_put(struct store *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    return store_put_hinted(s, NULL, key, klen, val, vlen);
}

int store_put_hinted(struct store *s, const struct store_key_hint *hint, const void *key, size_t klen,
                     const void *val, size_t vlen)
{
    int rc = store_check_key(key, klen);
    if (rc != 0) {
        return rc;
    }
    if (vlen > BFTKV_VALUE_MAX) {
        return BFTKV_E_VALUE_TOO_LARGE;
    }
    if (val == NULL && vlen > 0) {
        return BFTKV_E_INVAL;
    }

    uint64_t hash;
    struct shard *sh = store_shard_for(s, hint, key, klen, &hash);

    /* A put of the value the key already holds changes nothing (and copies no
     * shared table). Found out first, under the read lock, before paying for the
     * entry (allocation, BLAKE2b seed, LtHash expansion): a repeated put is then a
     * lookup. Otherwise the lookup has brought the slot and the old entry into the
     * cache for the locked lookup below. */
    uint64_t i;
    shard_read_lock(sh);
    bool found = shard_lookup(sh, hash, key, klen, &i);
    bool same = found && value_equal(sh->slots[i].e, val, vlen);
    const struct table *t_ahead = sh->table;
    shard_read_unlock(sh);
    if (same) {
        return 0;
    }
    /* The write below reads the table's header (the lookups read the shard's
     * mirrors instead) and the newest snapshot's lines: asked for now, they
     * arrive while the entry is computed. */
    __builtin_prefetch(t_ahead, 1);
    shard_snap_prefetch(sh, i);

    /* Everything expensive happens before the write lock: seed, expansion, copy. */
    struct entry *e = entry_alloc(klen, vlen);
    if (e == NULL) {
        return BFTKV_E_NOMEM;
    }
    uint8_t seed[LTHASH_SEED_SIZE];
    lthash_entry_seed(seed, key, klen, val, vlen);
    struct lthash vec;
    lthash_expand(&vec, seed);
    entry_fill(e, key, klen, val, vlen, seed);

    struct entry *old = NULL;
    shard_write_lock(sh);
    found = shard_lookup(sh, hash, key, klen, &i);
    if (found && value_equal(sh->slots[i].e, val, vlen)) {
        /* Written by another thread since the read above. */
        shard_write_unlock(sh);
        free(e);
        return 0;
    }
    /* What can fail comes first: room to record the one slot that changes, then
     * room for a new key. */
    rc = snap_reserve(sh, 1);
    if (rc == 0 && !found && (sh->table == NULL || table_needs_room(sh->table))) {
        rc = shard_grow(s, sh);
        if (rc == 0) {
            i = shard_find(sh, hash, key, klen, &found);
        }
    }
    if (rc != 0) {
        shard_write_unlock(sh);
        free(e);
        return rc;
    }
    struct table *t = sh->table;
    e->gen = s->epoch;
    snap_save_acc(sh);
    snap_save_slot(sh, i);
    if (found) {
        old = t->slots[i].e;
        t->slots[i].e = e;
        lthash_replace_seed(&t->acc, old->seed, &vec); /* one pass: - old + new */
        if (snap_retire(sh, old)) {
            old = NULL; /* a snapshot keeps it */
        }
    } else {
        BFTKV_ASSERT(t->slots[i].e == NULL);
        BFTKV_ASSERT(!table_needs_room(t));
        t->slots[i] = (struct slot){hash, e};
        t->count++;
        lthash_add(&t->acc, &vec);
    }
    BFTKV_ASSERT(t->count <= t->mask);
    shard_publish_count(sh);
    shard_write_unlock(sh);

    free(old); /* outside the lock */
    return 0;
}

int store_get(struct store *s, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
    return store_get_hinted(s, NULL, key, klen, buf, cap, vlen);
}

int store_get_hinted(struct store *s, const struct store_key_hint *hint, const void *key, size_t klen, void *buf,
                     size_t cap, size_t *vlen)
{
    int rc = store_check_key(key, klen);
    if (rc != 0) {
        return rc;
    }
    if (vlen == NULL || (buf == NULL && cap > 0)) {
        return BFTKV_E_INVAL;
    }
    uint64_t hash;
    struct shard *sh = store_shard_for(s, hint, key, klen, &hash);

    shard_read_lock(sh);
    uint64_t i;
    if (!shard_lookup(sh, hash, key, klen, &i)) {
        rc = BFTKV_E_NOT_FOUND;
    } else {
        const struct entry *e = sh->slots[i].e;
        *vlen = e->vlen;
        if (cap < e->vlen) {
            rc = BFTKV_E_BUF_TOO_SMALL;
        } else if (e->vlen > 0) {
            memcpy(buf, entry_value(e), e->vlen);
        }
    }
    shard_read_unlock(sh);
    return rc;
}

int store_del(struct store *s, const void *key, size_t klen)
{
    return store_del_hinted(s, NULL, key, klen);
}

int store_del_hinted(struct store *s, const struct store_key_hint *hint, const void *key, size_t klen)
{
    int rc = store_check_key(key, klen);
    if (rc != 0) {
        return rc;
    }
    uint64_t hash;
    struct shard *sh = store_shard_for(s, hint, key, klen, &hash);

    shard_write_lock(sh);
    uint64_t i;
    if (!shard_lookup(sh, hash, key, klen, &i)) {
        shard_write_unlock(sh);
        return BFTKV_E_NOT_FOUND;
    }
    struct table *t = sh->table;
    rc = snap_reserve(sh, table_remove_writes(t, i));
    if (rc != 0) {
        shard_write_unlock(sh);
        return rc;
    }
    struct entry *old = t->slots[i].e;
    BFTKV_ASSERT(entry_matches(&t->slots[i], hash, key, klen));
    snap_save_acc(sh);
    shard_remove_at(sh, i);
    lthash_sub_seed(&t->acc, old->seed);
    if (snap_retire(sh, old)) {
        old = NULL; /* a snapshot keeps it */
    }
    shard_publish_count(sh);
    shard_write_unlock(sh);

    free(old);
    return 0;
}

uint64_t store_count(const struct store *s)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < s->nshards; i++) {
        n += atomic_load_explicit(&s->shards[i].count, memory_order_relaxed);
    }
    return n;
}

void store_digest(const struct store *s, struct lthash *out)
{
    lthash_zero(out);
    for (uint32_t i = 0; i < s->nshards; i++) {
        struct shard *sh = &s->shards[i];
        shard_read_lock(sh);
        if (sh->table != NULL) {
            lthash_add(out, &sh->table->acc);
        }
        shard_read_unlock(sh);
    }
}

void store_digest_bytes(const struct store *s, uint8_t out[LTHASH_DIGEST_SIZE])
{
    struct lthash h;
    store_digest(s, &h);
    lthash_digest(&h, out);
}

/* The live table goes; a snapshot that still reads it keeps the table with the
 * entries it can see (snap_drop_table), the rest is freed. */
void store_clear(struct store *s)
{
    for (uint32_t i = 0; i < s->nshards; i++) {
        struct shard *sh = &s->shards[i];
        shard_write_lock(sh);
        struct table *t = sh->table;
        if (t != NULL && !snap_drop_table(sh, t)) {
            store_table_free(t);
        }
        shard_table_set(sh, NULL); /* memory goes back; the next put starts small again */
        shard_publish_count(sh);
        shard_write_unlock(sh);
    }
}
