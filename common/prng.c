/* xoshiro256** and splitmix64: seeded deterministic randomness for the simulator
 * and the Byzantine rewriter (see prng.h). Small and branch-free on the hot path:
 * the simulator's network model draws a few numbers per simulated message. */
#include "common/prng.h"

#include <math.h>

#include "common/assert.h"
#include "common/mix64.h"

__extension__ typedef unsigned __int128 u128;

uint64_t prng_mix64(uint64_t x)
{
    return bftkv_mix64(x);
}

void prng_seed(struct prng *p, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += BFTKV_GOLDEN_GAMMA;
        p->s[i] = prng_mix64(x);
    }
    if ((p->s[0] | p->s[1] | p->s[2] | p->s[3]) == 0)
        p->s[0] = 1; /* the one state xoshiro cannot leave */
}

void prng_fork(struct prng *child, struct prng *parent, uint64_t tag)
{
    prng_seed(child, prng_next(parent) ^ prng_mix64(tag));
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t prng_next(struct prng *p)
{
    uint64_t *s = p->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t prng_below(struct prng *p, uint64_t bound)
{
    BFTKV_ASSERT(bound > 0);
    /* Lemire's multiply-shift with rejection: unbiased, one multiply usually. */
    u128 m = (u128)prng_next(p) * bound;
    uint64_t low = (uint64_t)m;
    if (low < bound) {
        uint64_t threshold = (0 - bound) % bound;
        while (low < threshold) {
            m = (u128)prng_next(p) * bound;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

uint64_t prng_range(struct prng *p, uint64_t lo, uint64_t hi)
{
    BFTKV_ASSERT(lo <= hi);
    if (hi - lo == UINT64_MAX)
        return prng_next(p);
    return lo + prng_below(p, hi - lo + 1);
}

double prng_unit(struct prng *p)
{
    return (double)(prng_next(p) >> 11) * 0x1.0p-53;
}

bool prng_percent(struct prng *p, double percent)
{
    if (percent <= 0.0)
        return false;
    if (percent >= 100.0)
        return true;
    return prng_unit(p) * 100.0 < percent;
}

uint64_t prng_exp(struct prng *p, uint64_t mean)
{
    if (mean == 0)
        return 0;
    double u = prng_unit(p);
    double x = -log1p(-u) * (double)mean; /* u < 1, so log1p(-u) is finite */
    if (x > 1e18)
        x = 1e18;
    return (uint64_t)x;
}
