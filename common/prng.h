/* Seeded randomness: xoshiro256** seeded through splitmix64 from a 64-bit seed
 * (Blackman and Vigna, "Scrambled linear pseudorandom number generators", 2021).
 * Pure (no clock, no system entropy): the caller chooses the seed. Two users:
 *
 *   - the simulator (tests/sim/), whose only source of randomness it is;
 *   - the Byzantine rewriter (engine/byzantine.h), seeded by its caller (the
 *     simulator per faulty replica, bftkv-server from --byzantine-seed), so a
 *     faulty replica's choices are the same in both.
 *
 * In the simulator every random choice of a simulator run -- network delays, losses, faulty
 * replicas and what they do, the workload -- is drawn from a generator derived
 * from the run's one seed, so a seed replays exactly. No rand(), no clock. Each
 * concern draws from its own stream (prng_fork), so adding a draw in, say, the
 * workload does not shift every network delay of the run.
 */
#ifndef BFTKV_COMMON_PRNG_H
#define BFTKV_COMMON_PRNG_H

#include <stdbool.h>
#include <stdint.h>

struct prng {
    uint64_t s[4];
};

/* Seed the state from a 64-bit seed through splitmix64 (never all zero). */
void prng_seed(struct prng *p, uint64_t seed);

/* An independent stream: seeded from the parent's next output and a stream tag. */
void prng_fork(struct prng *child, struct prng *parent, uint64_t tag);

uint64_t prng_next(struct prng *p);

/* Uniform in [0, bound) without modulo bias; bound > 0. */
uint64_t prng_below(struct prng *p, uint64_t bound);

/* Uniform in [lo, hi] (inclusive). */
uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi);

/* Uniform double in [0, 1). */
double prng_unit(struct prng *p);

/* True with probability percent/100 (percent may be fractional). */
bool prng_percent(struct prng *p, double percent);

/* Exponentially distributed with the given mean (rounded down to an integer). */
uint64_t prng_exp(struct prng *p, uint64_t mean);

/* splitmix64 as a pure mixing function (used to derive key seeds). */
uint64_t prng_mix64(uint64_t x);

#endif /* BFTKV_COMMON_PRNG_H */
