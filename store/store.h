/* The store: a sharded, striped-lock hash table of byte-string keys and values,
 * with an incremental state digest and point-in-time snapshots that cost
 * O(changes) (docs/design.md §3).
 *
 * Concurrency contract
 *   - Every call may be made from any thread at any time, except store_destroy()
 *     which must not race with anything.
 *   - Each of the S shards (S a power of two) has its own reader-writer lock;
 *     operations on different shards never wait for each other. A shard grows
 *     (rehashes) under its own write lock without stopping the other shards.
 *   - In bftkv, writes come from the one executor thread in sequence order and
 *     reads may come from several threads; the store does not rely on that.
 *
 * Ownership
 *   - put copies key and value in; the caller keeps its buffers.
 *   - get copies the value out into the caller's buffer under the shard lock; no
 *     pointer into the store ever leaves it, so nothing the caller holds can be
 *     freed by another thread.
 *   - A snapshot is an immutable point-in-time view. It reads the live tables
 *     through what later writes recorded for it (old slot values, superseded
 *     entries, the old slot array after a resize or clear): each write pays O(1)
 *     for it, and nothing is copied when it is taken (docs/design.md §3.4). It
 *     stays valid until store_snapshot_release(), even after the store changes
 *     or is destroyed (a destroyed store's memory then stays until its last
 *     snapshot is released). Reading a snapshot takes a process-wide snapshot
 *     mutex and one shard read lock at a time; a foreach visitor runs unlocked.
 *
 * Limits: keys 1..BFTKV_KEY_MAX bytes, values 0..BFTKV_VALUE_MAX bytes. A longer
 * key or value returns BFTKV_E_KEY_TOO_LARGE / BFTKV_E_VALUE_TOO_LARGE, an empty
 * key BFTKV_E_KEY_EMPTY, and changes nothing.
 */
#ifndef BFTKV_STORE_STORE_H
#define BFTKV_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/lthash.h"

#ifdef __cplusplus
extern "C" {
#endif

struct store;
struct store_snapshot;

struct store_config {
    uint32_t shards;          /* power of two, 1..BFTKV_STORE_SHARDS_MAX; 0 = default */
    uint32_t initial_slots;   /* per shard, rounded up to a power of two; 0 = default */
};

/* Create an empty store. cfg may be NULL for defaults. 0, BFTKV_E_INVAL (bad
 * shard count, or initial_slots above 2^30), BFTKV_E_NOMEM, or BFTKV_E_IO when
 * libsodium cannot initialise. */
int store_create(const struct store_config *cfg, struct store **out);
void store_destroy(struct store *s);

/* Insert or replace. 0 or a limit error / BFTKV_E_NOMEM (and then nothing changed).
 * BFTKV_E_INVAL for a NULL key or value pointer with a non-zero length. The limit
 * errors on keys apply to get and del too. */
int store_put(struct store *s, const void *key, size_t klen, const void *val, size_t vlen);

/* Copy the value of `key` into buf (cap bytes). On success *vlen is the value's
 * length. BFTKV_E_NOT_FOUND when absent; BFTKV_E_BUF_TOO_SMALL when cap < length,
 * with *vlen set to the length needed and buf untouched. buf may be NULL when cap
 * is 0 (asks for the length); vlen must not be NULL (else BFTKV_E_INVAL). */
int store_get(struct store *s, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen);

/* Remove. 0 when it was there, BFTKV_E_NOT_FOUND when not. */
int store_del(struct store *s, const void *key, size_t klen);

/* ---- Looking a key up ahead (docs/design.md §3.5; store_prefetch.c) ------------------- */

/* A key's hash, computed once by store_key_prefetch() and reused by the _hinted
 * operations. Filled only by store_key_prefetch(); the fields are the store's. */
struct store_key_hint {
    uint64_t hash;
    uint64_t key_tag; /* the hash key it was computed under */
    bool valid;       /* false: the key was not a valid key */
};

/* Hash key into *hint and ask the CPU to start loading the key's home slot, so
 * that an operation on it a little later does not wait for memory. Takes no
 * lock, changes nothing, never fails: a key that breaks the limits leaves an
 * invalid hint, and the operation then reports the error. */
void store_key_prefetch(const struct store *s, const void *key, size_t klen, struct store_key_hint *hint);

/* The second stage, best after the home slots of a whole batch were asked for:
 * under the shard's read lock, find the hinted key among the first slots of its
 * probe (by hash alone) and ask the CPU to load its entry. Changes nothing. */
void store_key_prefetch_entry(struct store *s, const struct store_key_hint *hint);

/* store_put, store_get and store_del with the hash from hint (NULL: hash now).
 * A hint from before a store_swap() that changed the hash key is detected and
 * the key hashed again; same results and errors as the plain calls. */
int store_put_hinted(struct store *s, const struct store_key_hint *hint, const void *key, size_t klen,
                     const void *val, size_t vlen);
int store_get_hinted(struct store *s, const struct store_key_hint *hint, const void *key, size_t klen, void *buf,
                     size_t cap, size_t *vlen);
int store_del_hinted(struct store *s, const struct store_key_hint *hint, const void *key, size_t klen);

/* Number of keys. Exact when no write runs concurrently. */
uint64_t store_count(const struct store *s);

/* The state digest: the LtHash of every (key, value) entry, equal for equal
 * contents whatever the order of operations that produced them. store_digest
 * gives the full vector; store_digest_bytes its 32-byte commitment. */
void store_digest(const struct store *s, struct lthash *out);
void store_digest_bytes(const struct store *s, uint8_t out[LTHASH_DIGEST_SIZE]);

/* Remove every entry (the digest returns to that of the empty set). */
void store_clear(struct store *s);

uint32_t store_shard_count(const struct store *s);

/* ---- Snapshots and restore (state transfer, docs/design.md §5) ------------------------ */

/* Take a point-in-time snapshot: O(shards), no entry is copied. Writes after this
 * call do not show in the snapshot. 0 or BFTKV_E_NOMEM. Several may be live;
 * they may be released in any order, each release costing O(shards + what was
 * written while it was the newest), and what no live snapshot can see any more
 * is freed then. */
int store_snapshot_take(struct store *s, struct store_snapshot **out);
void store_snapshot_release(struct store_snapshot *snap);

uint32_t store_snapshot_shard_count(const struct store_snapshot *snap);
uint64_t store_snapshot_count(const struct store_snapshot *snap);
void store_snapshot_digest(const struct store_snapshot *snap, struct lthash *out);

/* Visit every entry of one shard of the snapshot, in table order. The pointers are
 * valid during the callback only. A non-zero return from fn stops the walk and is
 * returned. */
typedef int (*store_visit_fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
int store_snapshot_shard_foreach(const struct store_snapshot *snap, uint32_t shard, store_visit_fn fn,
                                 void *arg);

/* Serialise the entries of one snapshot shard as records
 *   le16 klen | le32 vlen | key | value
 * starting at entry *cursor of that shard (0 for the first call), writing whole
 * records into buf while they fit. The cursor is an opaque position in the shard
 * (its slot index): pass back what the previous call left. Advances *cursor;
 * *len is the bytes written;
 * *done is set when the shard is exhausted. A record larger than cap returns
 * BFTKV_E_BUF_TOO_SMALL (cap must be at least BFTKV_KEY_MAX + BFTKV_VALUE_MAX + 6).
 * This is the chunking unit of state transfer. */
int store_snapshot_shard_encode(const struct store_snapshot *snap, uint32_t shard, uint64_t *cursor,
                                uint8_t *buf, size_t cap, size_t *len, bool *done);

/* Is (shard, cursor) a position store_snapshot_shard_encode() accepts for this
 * snapshot? A position that came from another replica must pass this first:
 * the encoder asserts on a cursor it did not hand out. */
bool store_snapshot_cursor_valid(const struct store_snapshot *snap, uint32_t shard, uint64_t cursor);

/* Apply a chunk of records made by store_snapshot_shard_encode() to the store
 * (as puts). The chunk is validated completely before anything is applied:
 * truncated or malformed bytes, or limits exceeded, give BFTKV_E_CORRUPT and
 * change nothing. Restoring a whole snapshot into a cleared store gives the same
 * contents and the same digest. BFTKV_E_NOMEM may come after a prefix of a valid
 * chunk was applied; records are puts, so applying the chunk again is safe. */
int store_restore_chunk(struct store *s, const uint8_t *buf, size_t len);

/* ---- Staging stores (state transfer, docs/design.md §5; store_swap.c) ------------------- */

/* Bytes of the key of the per-store key hash (SipHash-2-4). */
#define STORE_HASH_KEY_SIZE 16u
/* Bytes of one record of store_snapshot_shard_encode(): le16 klen | le32 vlen. */
#define STORE_RECORD_HEADER_SIZE 6u

/* store_create() with a given hash key instead of a random one: two stores with
 * the same key and shard count place every key in the same shard, and a caller
 * that must be reproducible (the simulator) passes a key derived from its seed.
 * The key only defends against hash flooding; contents and digests never depend
 * on it. Same errors as store_create(), and BFTKV_E_INVAL for a NULL key. */
int store_create_keyed(const struct store_config *cfg, const uint8_t key[STORE_HASH_KEY_SIZE], struct store **out);

/* An empty store with model's shard count, initial size and hash key: the
 * staging store that store_swap() exchanges with model. Draws no randomness. */
int store_create_like(const struct store *model, struct store **out);

/* Exchange the whole contents of a and b -- entries, digests, and the hash key
 * the tables were built with -- in O(shards), under every shard's write lock of
 * both. They must have the same shard count (else BFTKV_E_INVAL and nothing
 * changes). Snapshots taken before keep their point-in-time contents. Readers
 * may run concurrently; with stores of different keys (not store_create_like
 * twins) a read racing the swap may miss a present key. 0 or BFTKV_E_INVAL. */
int store_swap(struct store *a, struct store *b);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_STORE_STORE_H */
