// Helpers shared by the micro benchmarks: the project's C headers made usable from
// C++, a cheap per-thread PRNG, the benchmark key format, and cache-line padding.
//
// Nothing here is timed; it only keeps the benchmark files short and identical in
// how they pick keys.
#ifndef BFTKV_BENCH_MICRO_BENCH_UTIL_H
#define BFTKV_BENCH_MICRO_BENCH_UTIL_H

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "store/lthash.h"
#include "store/store.h"

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "common/hdr.h"

namespace bench {

constexpr std::size_t kCacheLine = 64;

// The key size every store and digest benchmark uses (docs/benchmarks.md: 16-byte keys).
constexpr std::size_t kKeySize = 16;

// xorshift64* (Vigna 2016): a few cycles per draw, good enough to spread keys
// uniformly; each thread owns one, seeded from its thread index so runs repeat.
struct Xorshift {
    uint64_t s;

    explicit Xorshift(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
        if (s == 0) s = 1;
    }

    uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }

    // Uniform in [0, n) by multiply-high (Lemire), no division on the hot path.
    uint64_t below(uint64_t n) {
        return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
    }
};

// splitmix64 finaliser: a bijection, so distinct indices give distinct keys.
inline uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

// Key number i of a benchmark key set: 16 bytes, the index and a scrambled copy of
// it, so keys are unique and look random to the store's hash.
inline void key_of(uint64_t i, uint8_t out[kKeySize]) {
    const uint64_t hi = mix64(i);
    std::memcpy(out, &hi, sizeof hi);
    std::memcpy(out + 8, &i, sizeof i);
}

// Frees the prefilled store bench_store.cc keeps between its benchmarks.
void prefilled_store_release();

}  // namespace bench

#endif  // BFTKV_BENCH_MICRO_BENCH_UTIL_H
