// Store micro benchmarks (docs/design.md §3; docs/benchmarks.md): get, put, put of the same value and
// del+put on a prefilled store
// at 1K, 100K and 1M keys of 16 bytes, with 32-byte and 1 KiB values, from 1 and 2
// threads on the same store (2 threads measure shard lock contention); and puts
// with checkpoint snapshots taken and released as the engine does.
//
// Prefilling is the expensive part (1M x 1 KiB is about 1 GiB and a few seconds of
// puts with digest maintenance), so one prefilled store per (keys, value size) is
// kept in a cache and shared by every benchmark of that configuration: they are
// registered grouped by configuration, and the cache destroys the previous store
// when a benchmark asks for a different one. The prefill time and the resident set
// after it are reported as counters (prefill_s, rss_MiB).
//
// Keys are drawn uniformly from the key set by a per-thread xorshift generator.
// put overwrites an existing key (steady state: count and memory stay flat). A
// delete must not shrink the store, so BM_StoreDelPut deletes a key and puts it
// back: one iteration (one "item") is a del+put pair, not a single operation.
//
// Times are real (wall-clock) time. With 2 threads Google Benchmark reports
// wall time / total iterations of both threads, i.e. the inverse of the aggregate
// throughput; the per-operation latency each thread sees is twice that.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

#include "bench_util.h"

namespace {

// One prefilled store, reused by every benchmark of its (keys, value size).
struct PrefilledStore {
    struct store *s = nullptr;
    int64_t keys = 0;
    int64_t value_size = 0;
    double prefill_s = 0;
    double rss_mib = 0;

    ~PrefilledStore() { release(); }

    void release() {
        if (s != nullptr) store_destroy(s);
        s = nullptr;
        keys = 0;
        value_size = 0;
    }
};

PrefilledStore g_prefilled;

double rss_mib() {
    long pages = 0, resident = 0;
    FILE *f = std::fopen("/proc/self/statm", "r");
    if (f == nullptr) return 0;
    const int n = std::fscanf(f, "%ld %ld", &pages, &resident);
    std::fclose(f);
    if (n != 2) return 0;
    return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Benchmark Setup callback: runs once per run, in the main thread, before the
// benchmark threads start (so they all see the store without further sync).
void store_setup(const benchmark::State &st) {
    const int64_t keys = st.range(0);
    const int64_t value_size = st.range(1);
    if (g_prefilled.s != nullptr && g_prefilled.keys == keys && g_prefilled.value_size == value_size) return;

    g_prefilled.release();
    struct store *s = nullptr;
    int rc = store_create(nullptr, &s);
    if (rc != 0) {
        std::fprintf(stderr, "bench_store: store_create: %s\n", bftkv_strerror(rc));
        std::abort();
    }
    std::vector<uint8_t> value(static_cast<size_t>(value_size), 0xA5);
    uint8_t key[bench::kKeySize];
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < keys; i++) {
        bench::key_of(static_cast<uint64_t>(i), key);
        std::memcpy(value.data(), &i, sizeof i < value.size() ? sizeof i : value.size());
        rc = store_put(s, key, sizeof key, value.data(), value.size());
        if (rc != 0) {
            std::fprintf(stderr, "bench_store: prefill put %lld: %s\n", static_cast<long long>(i), bftkv_strerror(rc));
            std::abort();
        }
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (store_count(s) != static_cast<uint64_t>(keys)) {
        std::fprintf(stderr, "bench_store: prefill count %llu != %lld\n",
                     static_cast<unsigned long long>(store_count(s)), static_cast<long long>(keys));
        std::abort();
    }
    g_prefilled.s = s;
    g_prefilled.keys = keys;
    g_prefilled.value_size = value_size;
    g_prefilled.prefill_s = std::chrono::duration<double>(t1 - t0).count();
    g_prefilled.rss_mib = rss_mib();
}

void report_prefill(benchmark::State &st) {
    // Counters are summed over threads: only thread 0 reports the shared store's.
    if (st.thread_index() != 0) return;
    st.counters["prefill_s"] = g_prefilled.prefill_s;
    st.counters["rss_MiB"] = g_prefilled.rss_mib;
}

// What every store benchmark has: the prefilled store, the key count and value
// size of its configuration (range 0 and 1), a key stream of its own per thread
// (seeded with rng_base), a key buffer and a value buffer of value_size bytes.
struct StoreRun {
    StoreRun(benchmark::State &st, uint64_t rng_base, uint8_t fill)
        : s(g_prefilled.s),
          keys(static_cast<uint64_t>(st.range(0))),
          value_size(static_cast<size_t>(st.range(1))),
          rng(static_cast<uint64_t>(st.thread_index()) + rng_base),
          value(value_size, fill) {}

    // A random prefilled key into key; returns its index.
    uint64_t next_key() {
        const uint64_t i = rng.below(keys);
        bench::key_of(i, key);
        return i;
    }

    // The value's first bytes (up to 8) set to x: a value of its own.
    void value_stamp(uint64_t x) {
        std::memcpy(value.data(), &x, sizeof x < value_size ? sizeof x : value_size);
    }

    // store_put of key and value; true when it failed.
    bool put_failed() { return store_put(s, key, sizeof key, value.data(), value.size()) != 0; }

    // One item per iteration (and value_size bytes with bytes), the prefill's counters.
    void report(benchmark::State &st, bool bytes) const {
        st.SetItemsProcessed(st.iterations());
        if (bytes) st.SetBytesProcessed(st.iterations() * static_cast<int64_t>(value_size));
        report_prefill(st);
    }

    struct store *s;
    uint64_t keys;
    size_t value_size;
    bench::Xorshift rng;
    std::vector<uint8_t> value;
    uint8_t key[bench::kKeySize];
};

void BM_StoreGet(benchmark::State &st) {
    StoreRun r(st, 1, 0);
    uint64_t misses = 0;
    for (auto _ : st) {
        r.next_key();
        size_t vlen = 0;
        const int rc = store_get(r.s, r.key, sizeof r.key, r.value.data(), r.value.size(), &vlen);
        misses += (rc != 0);
        benchmark::DoNotOptimize(r.value.data());
    }
    if (misses != 0) st.SkipWithError("store_get missed a prefilled key");
    r.report(st, true);
}

void BM_StorePut(benchmark::State &st) {
    StoreRun r(st, 101, 0x5A);
    uint64_t stamp = static_cast<uint64_t>(st.thread_index()) << 56;
    uint64_t failures = 0;
    for (auto _ : st) {
        r.next_key();
        // A fresh value each time, as a real overwrite would bring (and the digest
        // sees a real replace, not a no-op).
        r.value_stamp(++stamp);
        failures += r.put_failed();
    }
    if (failures != 0) st.SkipWithError("store_put failed");
    r.report(st, true);
}

// A put of the value the key already holds (what the cluster benchmark's 0/0
// workload does once every key exists): the store finds it under the read lock
// and returns before building an entry.
void BM_StorePutSame(benchmark::State &st) {
    StoreRun r(st, 501, 0xA5);
    uint64_t failures = 0;
    for (auto _ : st) {
        r.value_stamp(r.next_key());  // as store_setup wrote it
        failures += r.put_failed();
    }
    if (failures != 0) st.SkipWithError("store_put failed");
    r.report(st, false);
}

void BM_StoreDelPut(benchmark::State &st) {
    StoreRun r(st, 1001, 0x3C);
    uint64_t del_misses = 0;
    uint64_t put_failures = 0;
    for (auto _ : st) {
        r.next_key();
        // With 2 threads the other one may have just deleted the same key: a miss is
        // legitimate there, and the put that follows restores the key either way.
        del_misses += (store_del(r.s, r.key, sizeof r.key) != 0);
        put_failures += r.put_failed();
    }
    if (put_failures != 0) st.SkipWithError("store_put failed");
    if (st.threads() == 1 && del_misses != 0) st.SkipWithError("store_del missed a prefilled key");
    st.SetLabel("item = del+put pair");
    r.report(st, false);
}

// Fresh-value puts to random existing keys while the store keeps checkpoint
// snapshots (docs/design.md §3.4): one is taken every range(2) puts and
// the oldest released once more than kLiveSnapshots are held, as the engine keeps
// the last few checkpoints for replicas that fall behind. The take and the release
// are inside the timed loop: ns/put includes every cost a checkpoint brings.
constexpr uint64_t kPutsPerCheckpoint = 1000;
constexpr size_t kLiveSnapshots = 3;
// A fixed count, so every run covers the same 20 checkpoints whatever the speed.
constexpr int64_t kCheckpointIterations = 20000;

void BM_StorePutWithCheckpoints(benchmark::State &st) {
    StoreRun r(st, 2001, 0x77);
    const uint64_t period = static_cast<uint64_t>(st.range(2));
    // Values never repeat across runs on the same prefilled store: each put
    // really replaces (a put of the value already there is a lookup only).
    static uint64_t runs = 0;
    const uint64_t stamp_base = ++runs << 40;
    uint64_t stamp = 0;
    uint64_t failures = 0;
    uint64_t taken = 0;
    std::vector<struct store_snapshot *> live;
    for (auto _ : st) {
        r.next_key();
        r.value_stamp(stamp_base + ++stamp);
        failures += r.put_failed();
        if (period != 0 && stamp % period == 0) {
            struct store_snapshot *snap = nullptr;
            failures += store_snapshot_take(r.s, &snap) != 0;
            if (snap != nullptr) {
                live.push_back(snap);
                taken++;
            }
            if (live.size() > kLiveSnapshots) {
                store_snapshot_release(live.front());
                live.erase(live.begin());
            }
        }
    }
    for (struct store_snapshot *snap : live) store_snapshot_release(snap);
    if (failures != 0) st.SkipWithError("store_put or store_snapshot_take failed");
    st.counters["snapshots"] = static_cast<double>(taken);
    r.report(st, false);
}

// Fresh-value puts in batches of range(2) keys, as the engine executes a
// committed batch; range(3) = 1 first runs the two prefetch stages over the
// batch (store_key_prefetch, then store_key_prefetch_entry) and puts with the
// hints, as engine/exec.c does; 0 puts one key after the other (the control).
// One item is one put.
void BM_StorePutBatch(benchmark::State &st) {
    StoreRun r(st, 3001, 0x42);
    const size_t batch = static_cast<size_t>(st.range(2));
    const bool prefetch = st.range(3) != 0;
    static uint64_t runs = 0;
    const uint64_t stamp_base = ++runs << 40;
    uint64_t stamp = 0;
    uint64_t failures = 0;
    std::vector<uint8_t> keys(batch * bench::kKeySize);
    std::vector<struct store_key_hint> hints(batch);
    for (auto _ : st) {
        for (size_t k = 0; k < batch; k++) {
            bench::key_of(r.rng.below(r.keys), &keys[k * bench::kKeySize]);
        }
        if (prefetch) {
            for (size_t k = 0; k < batch; k++) {
                store_key_prefetch(r.s, &keys[k * bench::kKeySize], bench::kKeySize, &hints[k]);
            }
            for (size_t k = 0; k < batch; k++) {
                store_key_prefetch_entry(r.s, &hints[k]);
            }
        }
        for (size_t k = 0; k < batch; k++) {
            r.value_stamp(stamp_base + ++stamp);
            failures += store_put_hinted(r.s, prefetch ? &hints[k] : nullptr, &keys[k * bench::kKeySize],
                                         bench::kKeySize, r.value.data(), r.value.size()) != 0;
        }
    }
    if (failures != 0) st.SkipWithError("store_put failed");
    st.SetItemsProcessed(st.iterations() * static_cast<int64_t>(batch));
    report_prefill(st);
}

const int64_t kKeyCounts[] = {1000, 100000, 1000000};
const int64_t kValueSizes[] = {32, 1024};

// Registered by configuration (outer loops) so each prefill is used by all six
// benchmarks of that configuration before the next one replaces it.
int register_store_benchmarks() {
    for (const int64_t keys : kKeyCounts) {
        for (const int64_t value_size : kValueSizes) {
            struct {
                const char *name;
                void (*fn)(benchmark::State &);
            } const ops[] = {
                {"BM_StoreGet", BM_StoreGet},
                {"BM_StorePut", BM_StorePut},
                {"BM_StorePutSame", BM_StorePutSame},
                {"BM_StoreDelPut", BM_StoreDelPut},
            };
            for (const auto &op : ops) {
                benchmark::RegisterBenchmark(op.name, op.fn)
                    ->Args({keys, value_size})
                    ->Setup(store_setup)
                    ->Threads(1)
                    ->Threads(2)
                    ->UseRealTime();
            }
        }
    }
    // Checkpoints: 16-byte values, fresh each time, at growing store sizes; the
    // third argument is the puts per checkpoint, 0 for none (the same puts
    // without snapshots, the control).
    for (const int64_t keys : {int64_t{10000}, int64_t{100000}, int64_t{1000000}}) {
        benchmark::RegisterBenchmark("BM_StorePutWithCheckpoints", BM_StorePutWithCheckpoints)
            ->Args({keys, 16, static_cast<int64_t>(kPutsPerCheckpoint)})
            ->Args({keys, 16, 0})
            ->Setup(store_setup)
            ->Iterations(kCheckpointIterations)
            ->UseRealTime();
    }
    // Batches of 37 keys (the cluster's average batch at 512 clients,
    // docs/benchmarks.md), prefetched or not.
    for (const int64_t keys : {int64_t{100000}, int64_t{1000000}}) {
        benchmark::RegisterBenchmark("BM_StorePutBatch", BM_StorePutBatch)
            ->Args({keys, 16, 37, 0})
            ->Args({keys, 16, 37, 1})
            ->Setup(store_setup)
            ->UseRealTime();
    }
    return 0;
}

[[maybe_unused]] const int g_registered = register_store_benchmarks();

}  // namespace

namespace bench {

// Called by main once every benchmark has run: frees the last prefilled store.
void prefilled_store_release() { g_prefilled.release(); }

}  // namespace bench
