// LtHash micro benchmarks (docs/design.md §5.4): what the incremental state
// digest costs per write.
//
// The store keeps one 32-byte seed per entry, so a write pays:
//   insert:   lthash_entry_seed(new) + lthash_add_seed(new)
//   replace:  lthash_entry_seed(new) + lthash_sub_seed(old) + lthash_add_seed(new)
//   delete:   lthash_sub_seed(old)                      (no rehash of key/value)
// entry_seed is BLAKE2b-256 over the entry (grows with the value); add/sub_seed is
// the AES-256-CTR expansion of the seed to 2 KiB (BM_LtHashExpand alone) plus 1024
// 16-bit lane additions (independent of the value). BM_LtHashReplace is the whole per-overwrite cost;
// compare it with BM_StorePut (which includes it) to see the digest's share.
// lthash_add (merging shard digests) and lthash_digest (the 32-byte commitment a
// CHECKPOINT carries) run per checkpoint, not per write, and are here for scale.
#include <benchmark/benchmark.h>

#include <vector>

#include "bench_util.h"
#include "store/lthash_internal.h"

namespace {

void fill_key(uint8_t key[bench::kKeySize]) { bench::key_of(42, key); }

void BM_LtHashEntrySeed(benchmark::State &st) {
    const size_t value_size = static_cast<size_t>(st.range(0));
    uint8_t key[bench::kKeySize];
    fill_key(key);
    std::vector<uint8_t> value(value_size, 0x77);
    uint8_t seed[LTHASH_SEED_SIZE];
    uint64_t i = 0;
    for (auto _ : st) {
        std::memcpy(key, &i, sizeof i);  // a different entry each time
        i++;
        lthash_entry_seed(seed, key, sizeof key, value.data(), value.size());
        benchmark::DoNotOptimize(seed);
    }
    st.SetItemsProcessed(st.iterations());
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(sizeof key + value_size));
}

// Seeds differ per iteration so nothing could be memoised; their content does not
// change the cost of the expansion.
void next_seed(uint8_t seed[LTHASH_SEED_SIZE], uint64_t *i) {
    (*i)++;
    std::memcpy(seed, i, sizeof *i);
}

// The loop of the per-seed benchmarks: a fresh seed each iteration (from fill),
// op(seed), memory clobbered; one item per iteration.
template <typename Op>
void over_seeds(benchmark::State &st, uint8_t fill, Op op) {
    uint8_t seed[LTHASH_SEED_SIZE];
    std::memset(seed, fill, sizeof seed);
    uint64_t i = 0;
    for (auto _ : st) {
        next_seed(seed, &i);
        op(seed);
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed(st.iterations());
}

// The AES-256-CTR expansion of a seed to 2 KiB alone (add_seed minus the lane adds).
void BM_LtHashExpand(benchmark::State &st) {
    struct lthash v;
    over_seeds(st, 0x66, [&](const uint8_t *seed) {
        lthash_expand(&v, seed);
        benchmark::DoNotOptimize(v.lanes);
    });
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(sizeof v.lanes));
}

// One expansion with each implementation (store/lthash_internal.h): 0 EVP, 1
// AES-NI, 2 VAES. BM_LtHashExpand is whichever lthash_expand() picked.
void BM_LtHashExpandImpl(benchmark::State &st) {
    const auto impl = static_cast<enum lthash_impl>(st.range(0));
    if (!lthash_impl_available(impl)) {
        st.SkipWithError("not available on this CPU");
        return;
    }
    st.SetLabel(lthash_impl_name(impl));
    struct lthash v;
    over_seeds(st, 0x66, [&](const uint8_t *seed) {
        lthash_expand_impl(impl, &v, seed);
        benchmark::DoNotOptimize(v.lanes);
    });
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(sizeof v.lanes));
}

void BM_LtHashAddSeed(benchmark::State &st) {
    struct lthash h;
    lthash_zero(&h);
    over_seeds(st, 0x11, [&](const uint8_t *seed) { lthash_add_seed(&h, seed); });
    benchmark::DoNotOptimize(h.lanes);
}

void BM_LtHashSubSeed(benchmark::State &st) {
    struct lthash h;
    lthash_zero(&h);
    over_seeds(st, 0x22, [&](const uint8_t *seed) { lthash_sub_seed(&h, seed); });
    benchmark::DoNotOptimize(h.lanes);
}

// The digest work of one overwrite of a 16-byte key with a value of range(0)
// bytes: hash the new entry, subtract the old seed, add the new one.
void BM_LtHashReplace(benchmark::State &st) {
    const size_t value_size = static_cast<size_t>(st.range(0));
    uint8_t key[bench::kKeySize];
    fill_key(key);
    std::vector<uint8_t> value(value_size, 0x33);
    struct lthash h;
    lthash_zero(&h);
    uint8_t old_seed[LTHASH_SEED_SIZE];
    uint8_t new_seed[LTHASH_SEED_SIZE];
    lthash_entry_seed(old_seed, key, sizeof key, value.data(), value.size());
    lthash_add_seed(&h, old_seed);
    uint64_t i = 0;
    for (auto _ : st) {
        i++;
        std::memcpy(value.data(), &i, sizeof i < value_size ? sizeof i : value_size);
        lthash_entry_seed(new_seed, key, sizeof key, value.data(), value.size());
        lthash_sub_seed(&h, old_seed);
        lthash_add_seed(&h, new_seed);
        std::memcpy(old_seed, new_seed, sizeof old_seed);
        benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(h.lanes);
    st.SetItemsProcessed(st.iterations());
    st.SetLabel("item = seed(new) + sub_seed(old) + add_seed(new)");
}

// Merging two shard digests (2 KiB each): per checkpoint, S times.
void BM_LtHashAdd(benchmark::State &st) {
    struct lthash a;
    struct lthash b;
    lthash_zero(&a);
    lthash_zero(&b);
    uint8_t seed[LTHASH_SEED_SIZE];
    std::memset(seed, 0x44, sizeof seed);
    lthash_add_seed(&b, seed);
    for (auto _ : st) {
        lthash_add(&a, &b);
        benchmark::ClobberMemory();
    }
    benchmark::DoNotOptimize(a.lanes);
    st.SetItemsProcessed(st.iterations());
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(sizeof a.lanes));
}

// The 32-byte commitment of the 2 KiB vector: once per checkpoint.
void BM_LtHashDigest(benchmark::State &st) {
    struct lthash h;
    lthash_zero(&h);
    uint8_t seed[LTHASH_SEED_SIZE];
    std::memset(seed, 0x55, sizeof seed);
    lthash_add_seed(&h, seed);
    uint8_t out[LTHASH_DIGEST_SIZE];
    for (auto _ : st) {
        lthash_digest(&h, out);
        benchmark::DoNotOptimize(out);
        h.lanes[0]++;
    }
    st.SetItemsProcessed(st.iterations());
    st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(sizeof h.lanes));
}

BENCHMARK(BM_LtHashEntrySeed)->Arg(32)->Arg(1024);
BENCHMARK(BM_LtHashExpand);
BENCHMARK(BM_LtHashExpandImpl)->DenseRange(0, LTHASH_IMPL_COUNT - 1);
BENCHMARK(BM_LtHashAddSeed);
BENCHMARK(BM_LtHashSubSeed);
BENCHMARK(BM_LtHashReplace)->Arg(32)->Arg(1024);
BENCHMARK(BM_LtHashAdd);
BENCHMARK(BM_LtHashDigest);

}  // namespace
