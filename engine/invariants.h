/* The whole-replica invariant check (docs/design.md "Invariant checks"): what
 * must hold between any two steps, whatever messages arrived. The simulator runs
 * it on every replica after every step and resume; a build with PBFT_INVARIANTS
 * defined (Debug and sanitizer builds) runs it at the end of pbft_replica_step
 * and pbft_replica_resume and aborts on a violation. Release servers never pay.
 *
 * The check only reads: no state change, no allocation, no clock. It is for
 * tests and debug builds, not the server runtime (which includes pbft.h only).
 */
#ifndef BFTKV_ENGINE_INVARIANTS_H
#define BFTKV_ENGINE_INVARIANTS_H

#include <stdint.h>

struct pbft_replica;

/* NULL when every invariant holds; otherwise a fixed description of the first
 * one broken, and *seq the sequence number it concerns (a slot or checkpoint;
 * 0 when it is about the replica as a whole). */
const char *replica_invariants_check(const struct pbft_replica *r, uint64_t *seq);

/* replica_invariants_check, aborting with the description on a violation. */
void replica_invariants_assert(const struct pbft_replica *r);

#endif /* BFTKV_ENGINE_INVARIANTS_H */
