/* Looking keys up ahead (store.h, docs/design.md §3.5): a caller that knows the
 * keys it is about to touch -- the engine, a committed batch -- hashes them and
 * asks the CPU for their home slots first, then for their entries, then runs the
 * operations, so that the cache misses of a batch overlap instead of being paid
 * one after the other inside each operation.
 *
 * On a store larger than the caches an operation otherwise waits for two
 * dependent misses: the slot (its hash and entry pointer) and then the entry
 * (key bytes to compare, the old value and seed). Both stages here only issue
 * prefetches; nothing they do is visible to any reader.
 *
 * The first stage takes no lock: it reads the shard's slot-array and mask
 * mirrors with relaxed atomic loads (shard_table_set writes them so) and only
 * computes an address from them, which may be stale by the time the prefetch
 * runs -- a prefetch of a stale or freed address does not fault and changes
 * nothing. The second stage reads slots, so it holds the shard's read lock.
 */
#include "store/store.h"

#include "bftkv/limits.h"
#include "store/store_internal.h"

/* Slots of a probe the second stage looks at: one cache line of them; at the
 * table's load factor a key is almost always among them (docs/design.md §3.1). */
#define STORE_PREFETCH_PROBES (STORE_CACHE_LINE / sizeof(struct slot))

void store_key_prefetch(const struct store *s, const void *key, size_t klen, struct store_key_hint *hint)
{
    hint->valid = key != NULL && klen > 0 && klen <= BFTKV_KEY_MAX;
    hint->key_tag = store_hash_key_tag(s);
    hint->hash = hint->valid ? store_key_hash(s, key, klen) : 0;
    if (!hint->valid) {
        return;
    }
    const struct shard *sh = store_shard_of(s, hint->hash);
    const struct slot *slots = __atomic_load_n(&sh->slots, __ATOMIC_RELAXED);
    const uint64_t mask = __atomic_load_n(&sh->mask, __ATOMIC_RELAXED);
    if (slots != NULL) {
        __builtin_prefetch(&slots[hint->hash & mask], 0, 3);
    }
}

void store_key_prefetch_entry(struct store *s, const struct store_key_hint *hint)
{
    if (!hint->valid || hint->key_tag != store_hash_key_tag(s)) {
        return;
    }
    struct shard *sh = store_shard_of(s, hint->hash);
    shard_read_lock(sh);
    if (sh->slots != NULL) {
        uint64_t i = hint->hash & sh->mask;
        for (unsigned n = 0; n < STORE_PREFETCH_PROBES; n++) {
            const struct slot *sl = &sh->slots[i];
            if (sl->e == NULL) {
                break; /* a new key: its entry is not there to load */
            }
            if (sl->hash == hint->hash) {
                /* The header, key and a short value span up to two lines. */
                __builtin_prefetch(sl->e, 0, 3);
                __builtin_prefetch((const uint8_t *)sl->e + STORE_CACHE_LINE, 0, 3);
                break;
            }
            i = (i + 1) & sh->mask;
        }
    }
    shard_read_unlock(sh);
}
