/* Internals of the store, not part of its API (store.h): the test hooks, and the
 * definitions its source files share.
 *
 * Out-of-memory paths are the ones a test cannot reach by ordinary means, yet the
 * store promises that a failed put, delete, snapshot or restore changes nothing.
 * store_test_fail_alloc_after() makes the store's own allocations fail on demand
 * so the unit tests can walk those paths; it is process-wide and meant for
 * single-threaded tests only. store_test_verify() checks the tables' internal
 * invariants, which is how the tests see that deletion keeps probing intact.
 *
 * The second half holds what store.c (tables and operations), store_snapshot.c
 * (taking and releasing snapshots, what writes record for them),
 * store_encode.c (reading a snapshot, its encoding, restore), store_swap.c and
 * store_testhooks.c (the invariant check) all need: the entry, table, shard,
 * snapshot and store layouts, the shard locks, and the key hash. The layout is
 * described at the top of store.c, the snapshots' at the top of store_snapshot.c. C only: the
 * structures use C11 atomics and _Alignas.
 */
#ifndef BFTKV_STORE_STORE_INTERNAL_H
#define BFTKV_STORE_STORE_INTERNAL_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <ck_pr.h>
#include <ck_rwlock.h>
#include <sodium.h>

#include "bftkv/limits.h"
#include "store/store.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Let the next `n` allocations of the store succeed and fail every one after that,
 * until called again. A negative n (the initial state) turns failures off. */
void store_test_fail_alloc_after(long n);

struct store_test_stats {
    uint64_t slots;            /* total capacity of all shard tables */
    uint64_t entries;          /* entries of all shard tables */
    uint64_t max_displacement; /* longest distance of an entry from its home slot */
    uint64_t sum_displacement; /* over all entries: mean = sum / entries (docs/design.md §3.1) */
    uint64_t live_snapshots;   /* snapshots taken and not released */
    uint64_t undo_records;     /* slot values the live snapshots keep (docs/design.md §3.4) */
    uint64_t retired_entries;  /* superseded entries the live snapshots keep */
    uint64_t frozen_layouts;   /* slot arrays a resize or clear left to a snapshot */
};

/* Check every shard table: the count matches the occupied slots, every entry is
 * in its own shard and reachable from its home slot without crossing an empty
 * slot (the linear-probing invariant that deletion must keep), each entry's seed
 * matches its bytes, and the shard's LtHash accumulator is the sum of its
 * entries, and the shard's lookup mirrors equal its table's slots and mask;
 * every entry's generation is below the store's epoch, and every entry a
 * snapshot keeps is one that snapshot's predecessor can still see. 0 when all
 * hold, else BFTKV_E_CORRUPT. Fills *stats when not NULL. Takes the snapshot
 * mutex and each shard's read lock; O(entries) LtHash expansions. */
int store_test_verify(struct store *s, struct store_test_stats *stats);

/* Allocations the store made in the calling thread since it started, and their
 * bytes: a test measures what one operation allocates by the difference. */
struct store_test_allocs {
    uint64_t calls;
    uint64_t bytes;
};
void store_test_allocs_get(struct store_test_allocs *out);

/* ---- Shared by the store's source files ------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
#define STORE_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#define STORE_TSAN_RELEASE(addr) __tsan_release(addr)
#else
#define STORE_TSAN_ACQUIRE(addr) ((void)(addr))
#define STORE_TSAN_RELEASE(addr) ((void)(addr))
#endif

#define STORE_CACHE_LINE 64u
/* pause instructions before a waiting thread starts yielding its time slice */
#define STORE_SPINS_BEFORE_YIELD 128u
/* The shard is picked by the top bits of the hash; BFTKV_STORE_SHARDS_MAX of them. */
#define STORE_SHARD_SHIFT 48u

_Static_assert(BFTKV_STORE_SHARDS_MAX <= (1ull << (64u - STORE_SHARD_SHIFT)), "shard bits fit the hash");
_Static_assert(BFTKV_KEY_MAX <= UINT16_MAX, "klen is stored in 16 bits");
_Static_assert(crypto_shorthash_BYTES == sizeof(uint64_t), "SipHash-2-4 gives 64 bits");

/* An entry: immutable once in a table. gen is the store's epoch when it was
 * written; a snapshot of id k sees the entries of gen <= k that were not yet
 * superseded when it was taken (docs/design.md §3.4). */
struct entry {
    uint64_t gen;
    uint32_t vlen;
    uint16_t klen;
    uint8_t seed[LTHASH_SEED_SIZE];
    uint8_t bytes[]; /* klen key bytes, then vlen value bytes */
};

struct slot {
    uint64_t hash;
    struct entry *e; /* NULL: empty slot */
};

/* A shard's table; only the shard's writer, under the write lock, changes it. The
 * small fields come first, in one cache line; the 2 KiB accumulator, which only
 * writes and digests touch, after them. */
struct table {
    uint64_t mask;  /* capacity - 1; capacity is a power of two */
    uint64_t count; /* entries; always < capacity, so every probe meets an empty slot */
    struct slot *slots;
    struct table *dropped_next; /* in a snapshot's list of tables store_clear dropped */
    struct lthash acc; /* sum of the vectors of the entries in slots */
};

/* What one snapshot keeps of one shard (store_snapshot.c): the slot values at
 * the snapshot of the slots changed while it was the newest snapshot (an undo
 * map keyed by slot index), the slot array a resize or clear replaced while it
 * was the newest (its layout from then on), the accumulator before the first
 * change, and the superseded entries that it or an older snapshot can see.
 *
 * The undo map is open addressing with the records inline (linear probing from
 * a Fibonacci hash of the index): a lookup reads one or two cache lines of one
 * array, a record costs no allocation of its own, and freeing the map is one
 * free. A record keeps only the entry: a snapshot reads entries, never hashes.
 * Capacity: a map with an array has at least twice the records of its own
 * snapshot and of all older live ones of the shard (undo_older), so every
 * probe meets an empty record, and a release can merge two neighbours' maps
 * into the larger array without allocating (docs/design.md §3.4). */
struct undo_rec {
    uint64_t index1;  /* slot index + 1; 0: an empty record */
    struct entry *e;  /* what the slot held when the snapshot was taken (NULL: empty) */
};

_Static_assert(sizeof(struct undo_rec) == 16u, "four records per cache line");

struct undo_map {
    struct undo_rec *recs; /* mask + 1 records, a power of two; NULL: none */
    uint64_t mask;
    uint64_t count;
};

/* Superseded entries a snapshot keeps, in blocks that move between snapshots
 * whole (a release allocates nothing) and whose gen is read without touching
 * the entry (a release walks no cold entries). */
#define STORE_RETIRED_BLOCK 62u

struct retired {
    struct entry *e;
    uint64_t gen;
};

struct retired_block {
    struct retired_block *next;
    uint64_t n;
    struct retired r[STORE_RETIRED_BLOCK];
};

_Static_assert(sizeof(struct retired_block) == 1008u, "a block fits a 1 KiB allocation");

/* The first cache line holds what a write reads and changes (snap_reserve,
 * snap_save_slot, snap_retire); the second what it touches once per snapshot,
 * and what a release or reader needs. */
struct snap_shard {
    _Alignas(STORE_CACHE_LINE) uint64_t id; /* the snapshot's epoch: it sees entries of gen <= id */
    struct undo_map undo;
    uint64_t undo_older;  /* records the older live snapshots keep of the shard */
    struct retired_block *retired; /* the first has room for the next entry */
    uint64_t retired_room; /* pairs free in the first block (0 without one): its n, mirrored */
    bool frozen;          /* base/base_cap hold its layout, not the live table */
    bool acc_saved;       /* *acc holds the accumulator when taken */
    struct lthash *acc;   /* the accumulator when taken: in acc_mem or a dropped table */
    struct lthash *acc_mem; /* a block of its own (NULL when none) */
    uint64_t count;       /* entries of the shard when taken */
    uint64_t cap;         /* slots of its layout when taken (0 without a table) */
    struct slot *base;    /* the replaced slot array (NULL with base_cap 0) */
    uint64_t base_cap;
    bool base_owned;      /* base is its own, not a dropped table's slots */
    struct table *dropped; /* tables store_clear let go, with the entries it sees */
};

_Static_assert(offsetof(struct snap_shard, acc) == STORE_CACHE_LINE, "a write's fields share one line");
_Static_assert(sizeof(struct snap_shard) == 2u * STORE_CACHE_LINE, "two lines per shard");

/* A snapshot: a list node of its store's live snapshots, oldest to newest, and
 * its part of every shard. store changes only in store_swap (the list moves with
 * the tables); all of it under the snapshot mutex, sh[] also under shard locks. */
struct store_snapshot {
    struct store *store;
    struct store_snapshot *older;
    struct store_snapshot *newer;
    uint64_t id;
    uint32_t nshards;
    struct snap_shard sh[];
};

/* slots and mask mirror table->slots and table->mask (NULL and 0 without a
 * table), kept by every writer that changes either, under the write lock
 * (shard_table_set). A lookup reads them from the line it already holds for the
 * lock instead of the table's header: one dependent cache miss less per
 * operation on a store larger than the caches (docs/benchmarks.md). snap is the
 * newest live snapshot's part of this shard (NULL without a snapshot): what a
 * writer records the old state into, under the write lock. A put asks for the
 * line of snap and for its record of the slot through undo_recs and undo_mask
 * before it computes the new entry's seed and vector, reading the three
 * without the lock (relaxed atomics, shard_snap_refresh): by the time it holds
 * the write lock they are in the cache. */
struct shard {
    _Alignas(STORE_CACHE_LINE) struct ck_rwlock lock;
    struct table *table; /* NULL: empty shard without slots */
    struct slot *slots;
    uint64_t mask;
    atomic_uint_fast64_t count; /* mirror of table->count, read without the lock */
    struct snap_shard *snap;
    struct undo_rec *undo_recs; /* mirror of snap->undo's array while snap records, else NULL */
    uint64_t undo_mask;         /* and its mask */
};

_Static_assert(sizeof(struct shard) == STORE_CACHE_LINE, "a shard is one cache line of its own");

/* epoch, newest, oldest and destroyed belong to the snapshot bookkeeping
 * (store_snapshot.c): changed under the store-wide snapshot mutex, and epoch and
 * every shard's snap also under that shard's lock, so a writer may read them. */
struct store {
    struct shard *shards;
    uint32_t nshards;
    uint32_t shard_mask;
    uint64_t initial_slots;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    uint64_t epoch;                  /* gen of the entries written now; starts at 1 */
    struct store_snapshot *newest;   /* live snapshots, a list by age */
    struct store_snapshot *oldest;
    bool destroyed;                  /* freed by the release of its last snapshot */
};

/* malloc(n) and calloc(n, size), or NULL when store_test_fail_alloc_after() says
 * this one fails. They count allocations for store_test_allocs_get(). */
void *store_malloc(size_t n);
void *store_calloc(size_t n, size_t size);
/* aligned_alloc(STORE_CACHE_LINE, size), size a multiple of it; the same hook. */
void *store_aligned_alloc(size_t size);

/* Free a table's entries, slot array and the table (NULL is ignored). */
void store_table_free(struct table *t);

/* ---- The snapshot side of a write (store_snapshot.c), under the shard write lock --- */

/* Room to record `slots` more slot values, the accumulator and one superseded
 * entry for the shard's newest snapshot, so the change that follows cannot fail
 * half way. What it allocates stays with the snapshot (used or not), so there is
 * nothing to undo after a failure. 0 or BFTKV_E_NOMEM. */
int snap_reserve(struct shard *sh, uint64_t slots);
/* Before slot i of the live table changes: record its value for the newest
 * snapshot, unless that one recorded it already or no longer uses this layout. */
void snap_save_slot(struct shard *sh, uint64_t i);
/* Before the shard's accumulator changes for the first time since the newest
 * snapshot: keep its value (in the room snap_reserve made). */
void snap_save_acc(struct shard *sh);
/* store_clear drops table t: true when the newest snapshot keeps it (its slots
 * as the layout, its accumulator, the entries it can see; the others are freed
 * now), false when the caller frees it whole. */
bool snap_drop_table(struct shard *sh, struct table *t);
/* A superseded entry: true when a live snapshot can see it and keeps it (the
 * snapshot now owns it), false when the caller frees it. */
bool snap_retire(struct shard *sh, struct entry *e);
/* The live slot array (cap slots, NULL with 0) is being replaced: true when the
 * newest snapshot keeps it as its layout, false when the caller frees it. */
bool snap_freeze(struct shard *sh, struct slot *slots, uint64_t cap);

/* The store-wide snapshot mutex (take, release, swap, destroy, reading a
 * snapshot); taken before any shard lock. */
void store_snap_mutex_lock(void);
void store_snap_mutex_unlock(void);
/* Free the store and everything its tables hold; no snapshot may be live. */
void store_free(struct store *s);
/* Repoint each snapshot of s's list at s (after store_swap moved the lists). */
void store_snapshots_adopt(struct store *s);

/* Install t as the shard's table (NULL for none), or refresh the mirrors after
 * t's slots changed. Under the shard write lock. */
static inline void shard_table_set(struct shard *sh, struct table *t)
{
    sh->table = t;
    /* Relaxed atomic stores: store_key_prefetch() reads the two mirrors without
     * the lock, only to compute an address to prefetch (store_prefetch.c). */
    __atomic_store_n(&sh->slots, t != NULL ? t->slots : NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->mask, t != NULL ? t->mask : 0, __ATOMIC_RELAXED);
}

/* Install ss as the shard's newest snapshot part (NULL for none), or refresh
 * the undo mirrors after its undo array or frozen flag changed. Under the shard
 * write lock, or every shard's read lock with the snapshot mutex (a take).
 * Relaxed atomic stores: store_put_hinted reads the three without the lock,
 * only to compute addresses to prefetch (store.c). */
static inline void shard_snap_set(struct shard *sh, struct snap_shard *ss)
{
    bool records = ss != NULL && !ss->frozen && ss->undo.recs != NULL;
    __atomic_store_n(&sh->snap, ss, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->undo_recs, records ? ss->undo.recs : NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&sh->undo_mask, records ? ss->undo.mask : 0, __ATOMIC_RELAXED);
}

/* The home record of index1 (slot index + 1) in an undo array of mask + 1
 * records: Fibonacci hashing, the top bits of the product, as many as the
 * array needs, so that a delete's runs of neighbouring slots spread. */
static inline uint64_t undo_home(uint64_t mask, uint64_t index1)
{
    unsigned bits = (unsigned)__builtin_popcountll(mask);
    return bits == 0 ? 0 : (index1 * 0x9E3779B97F4A7C15ull) >> (64u - bits);
}

/* ---- Locks ---------------------------------------------------------------------- */

static inline void store_backoff(unsigned *spins)
{
    if (*spins < STORE_SPINS_BEFORE_YIELD) {
        (*spins)++;
        ck_pr_stall();
    } else {
        sched_yield();
    }
}

static inline void shard_read_lock(struct shard *sh)
{
    unsigned spins = 0;
    while (!ck_rwlock_read_trylock(&sh->lock)) {
        store_backoff(&spins);
    }
    STORE_TSAN_ACQUIRE(&sh->lock);
}

static inline void shard_read_unlock(struct shard *sh)
{
    STORE_TSAN_RELEASE(&sh->lock);
    ck_rwlock_read_unlock(&sh->lock);
}

/* ck_rwlock_write_lock() with back-off: claim the writer flag (new readers now
 * stay out), then wait for the readers inside to leave. */
static inline void shard_write_lock(struct shard *sh)
{
    unsigned spins = 0;
    while (ck_pr_fas_uint(&sh->lock.writer, 1) != 0) {
        store_backoff(&spins);
    }
    /* Order the flag store before the reader-count load (pairs with the readers'
     * increment-then-check in ck_rwlock_read_trylock). */
    ck_pr_fence_atomic_load();
    spins = 0;
    while (ck_pr_load_uint(&sh->lock.n_readers) != 0) {
        store_backoff(&spins);
    }
    /* Acquire: nothing of the critical section moves above the lock. */
    ck_pr_fence_lock();
    STORE_TSAN_ACQUIRE(&sh->lock);
}

static inline void shard_write_unlock(struct shard *sh)
{
    STORE_TSAN_RELEASE(&sh->lock);
    ck_rwlock_write_unlock(&sh->lock);
}

/* ---- Entries and hashing ------------------------------------------------------------ */

/* The record of slot `index` in m, or NULL (store_snapshot.c). */
const struct undo_rec *undo_find(const struct undo_map *m, uint64_t index);

static inline const uint8_t *entry_key(const struct entry *e)
{
    return e->bytes;
}

static inline const uint8_t *entry_value(const struct entry *e)
{
    return e->bytes + e->klen;
}

static inline uint64_t store_key_hash(const struct store *s, const void *key, size_t klen)
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, klen, s->hash_key);
    uint64_t h = 0;
    for (unsigned i = 0; i < sizeof out; i++) {
        h |= (uint64_t)out[i] << (8u * i);
    }
    return h;
}

/* The shard a hash picks (its top bits). */
static inline struct shard *store_shard_of(const struct store *s, uint64_t hash)
{
    return &s->shards[(uint32_t)(hash >> STORE_SHARD_SHIFT) & s->shard_mask];
}

/* Which hash key a store_key_hint was computed under: the key's first 8 bytes.
 * store_swap() may exchange the keys of two stores; a hint from before then no
 * longer matches and the operation hashes again. */
static inline uint64_t store_hash_key_tag(const struct store *s)
{
    uint64_t tag;
    memcpy(&tag, s->hash_key, sizeof tag);
    return tag;
}

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_STORE_STORE_INTERNAL_H */
