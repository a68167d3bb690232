/* Test hooks of the store, not part of its API (store.h).
 *
 * Out-of-memory paths are the ones a test cannot reach by ordinary means, yet the
 * store promises that a failed put, delete, snapshot or restore changes nothing.
 * store_test_fail_alloc_after() makes the store's own allocations fail on demand
 * so the unit tests can walk those paths; it is process-wide and meant for
 * single-threaded tests only. store_test_verify() checks the tables' internal
 * invariants, which is how the tests see that deletion keeps probing intact.
 */
#ifndef BFTKV_STORE_STORE_INTERNAL_H
#define BFTKV_STORE_STORE_INTERNAL_H

#include <stdint.h>

#include "store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Let the next `n` allocations of the store succeed and fail every one after that,
 * until called again. A negative n (the initial state) turns failures off. */
void store_test_fail_alloc_after(long n);

struct store_test_stats {
    uint64_t slots;            /* total capacity of all shard tables */
    uint64_t max_displacement; /* longest distance of an entry from its home slot */
    uint64_t shared_tables;    /* shard tables also held by a snapshot */
};

/* Check every shard table: the count matches the occupied slots, every entry is
 * in its own shard and reachable from its home slot without crossing an empty
 * slot (the linear-probing invariant that deletion must keep), each entry's seed
 * matches its bytes, and the shard's LtHash accumulator is the sum of its
 * entries. 0 when all hold, else BFTKV_E_CORRUPT. Fills *stats when not NULL.
 * Takes each shard's read lock; O(entries) LtHash expansions. */
int store_test_verify(struct store *s, struct store_test_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_STORE_STORE_INTERNAL_H */
