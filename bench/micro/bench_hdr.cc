// HDR histogram micro benchmarks (common/hdr.h; docs/design.md §4): every pipeline
// stage records one latency per message, so hdr_record_value is on the fast path;
// percentile queries and merges (hdr_add) run on the stats path.
//
// All histograms are configured as bftkv configures them: 1 ns .. 60 s, 3
// significant figures. Recorded values are spread log-uniformly over 1 us .. 10 ms
// (a realistic latency range that touches many buckets, so the cost is not that of
// one hot counter).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench_util.h"

namespace {

constexpr int64_t kLowest = 1;
constexpr int64_t kHighest = 60'000'000'000;  // 60 s in ns
constexpr int kSigfigs = 3;
constexpr size_t kValueCount = 4096;  // a power of two: index by mask

const std::vector<int64_t> &latency_values() {
    static const std::vector<int64_t> values = [] {
        std::vector<int64_t> v(kValueCount);
        bench::Xorshift rng(7);
        const double lo = std::log(1e3), hi = std::log(1e7);  // 1 us .. 10 ms
        for (auto &x : v) {
            const double u = static_cast<double>(rng.next() >> 11) / 9007199254740992.0;  // [0, 1)
            x = static_cast<int64_t>(std::exp(lo + u * (hi - lo)));
        }
        return v;
    }();
    return values;
}

struct hdr_histogram *new_histogram() {
    struct hdr_histogram *h = nullptr;
    const int rc = hdr_init(kLowest, kHighest, kSigfigs, &h);
    if (rc != 0) {
        std::fprintf(stderr, "bench_hdr: hdr_init: %s\n", bftkv_strerror(rc));
        std::abort();
    }
    return h;
}

// A histogram holding 1M values from latency_values().
struct hdr_histogram *filled_histogram() {
    struct hdr_histogram *h = new_histogram();
    const auto &values = latency_values();
    for (size_t i = 0; i < (1u << 20); i++) hdr_record_value(h, values[i & (kValueCount - 1)]);
    return h;
}

void BM_HdrRecordValue(benchmark::State &st) {
    struct hdr_histogram *h = new_histogram();
    const auto &values = latency_values();
    size_t i = 0;
    int64_t rejected = 0;
    for (auto _ : st) {
        rejected += !hdr_record_value(h, values[i++ & (kValueCount - 1)]);
    }
    if (rejected != 0) st.SkipWithError("hdr_record_value rejected an in-range value");
    hdr_destroy(h);
    st.SetItemsProcessed(st.iterations());
}

void BM_HdrValueAtPercentile(benchmark::State &st) {
    struct hdr_histogram *h = filled_histogram();
    static const double percentiles[] = {50.0, 90.0, 99.0, 99.9, 99.99, 100.0, 25.0, 75.0};
    size_t i = 0;
    for (auto _ : st) {
        int64_t v = hdr_value_at_percentile(h, percentiles[i++ & 7]);
        benchmark::DoNotOptimize(v);
    }
    hdr_destroy(h);
    st.SetItemsProcessed(st.iterations());
}

// Merging a filled per-stage histogram into the stats total.
void BM_HdrAdd(benchmark::State &st) {
    struct hdr_histogram *src = filled_histogram();
    struct hdr_histogram *dst = new_histogram();
    int64_t overflow = 0;
    for (auto _ : st) {
        overflow += hdr_add(dst, src);
        benchmark::ClobberMemory();
    }
    if (overflow != 0) st.SkipWithError("hdr_add overflowed");
    hdr_destroy(dst);
    hdr_destroy(src);
    st.SetItemsProcessed(st.iterations());
}

BENCHMARK(BM_HdrRecordValue);
BENCHMARK(BM_HdrValueAtPercentile);
BENCHMARK(BM_HdrAdd);

}  // namespace
