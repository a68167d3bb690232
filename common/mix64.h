/* splitmix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", OOPSLA 2014): the one copy of the generator and of its mixing
 * function that the tree uses for seeded choices (common/prng.c's seeding, for
 * the simulator and the Byzantine rewriter; the bench's keys and tags; the
 * tests' fixed-seed data).
 * Not for secrets: keys come from libsodium. Header-only, no state of its own.
 */
#ifndef BFTKV_COMMON_MIX64_H
#define BFTKV_COMMON_MIX64_H

#include <stdint.h>

#define BFTKV_GOLDEN_GAMMA UINT64_C(0x9e3779b97f4a7c15)

/* splitmix64's output for state x: the finaliser of x + the golden gamma. A
 * fixed, well-mixed function of x (hashing a seed, a tag, a counter). */
static inline uint64_t bftkv_mix64(uint64_t x)
{
    x += BFTKV_GOLDEN_GAMMA;
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

/* The generator: the next value, advancing *state. */
static inline uint64_t bftkv_splitmix64(uint64_t *state)
{
    uint64_t x = *state;
    *state += BFTKV_GOLDEN_GAMMA;
    return bftkv_mix64(x);
}

#endif /* BFTKV_COMMON_MIX64_H */
