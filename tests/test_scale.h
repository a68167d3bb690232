/* Iteration counts of the heavier randomised tests, scaled down in sanitizer
 * builds.
 *
 * Under ASan+UBSan or TSan an operation costs several times what it costs in
 * Release, and what those builds look for -- a bad access, undefined behaviour,
 * a data race -- shows the first time the faulty code path runs, not the
 * ten-thousandth time. So in sanitizer builds (tests/CMakeLists.txt defines
 * BFTKV_TEST_SANITIZED for every test there) a test runs the same checks over an
 * eighth of its iterations; the Release build runs them all. BFTKV_TEST_SCALE=N
 * in the environment divides the counts by N instead (1: the full counts).
 */
#ifndef BFTKV_TESTS_TEST_SCALE_H
#define BFTKV_TESTS_TEST_SCALE_H

#include <stdint.h>
#include <stdlib.h>

#ifdef BFTKV_TEST_SANITIZED
#define TEST_SCALE_DEFAULT 8u
#else
#define TEST_SCALE_DEFAULT 1u
#endif

/* n iterations divided by the scale, never below min (nor above n). */
static inline uint64_t test_iters(uint64_t n, uint64_t min)
{
    const char *env = getenv("BFTKV_TEST_SCALE");
    uint64_t div = env != NULL && strtoull(env, NULL, 10) > 0 ? strtoull(env, NULL, 10) : TEST_SCALE_DEFAULT;
    uint64_t k = n / div;
    if (k < min)
        k = min;
    return k < n ? k : n;
}

#endif /* BFTKV_TESTS_TEST_SCALE_H */
