// bftkv-microbench: the micro benchmark suite (docs/benchmarks.md). The benchmarks register
// themselves from bench_*.cc; this file initialises libsodium and Google Benchmark,
// records the context a result must be read with (allocator, library versions,
// build), runs, and frees what the store benchmarks kept.
//
//   build/bftkv-microbench                                  # every benchmark
//   build/bftkv-microbench --benchmark_filter=BM_Mac        # one group
//   build/bftkv-microbench --benchmark_min_time=0.05 --benchmark_out=micro.json
//       --benchmark_out_format=json
//   tools/microbench-summary micro.json                     # the short table
#include <benchmark/benchmark.h>

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <sodium.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench_util.h"
#include "store/lthash_internal.h"

#ifndef BFTKV_BUILD_TYPE
#define BFTKV_BUILD_TYPE "unknown"
#endif

namespace {

// "yes (5.3.0-...)" when jemalloc is linked and answers mallctl, else "no". The
// symbol is looked up at run time so this file needs no jemalloc header.
std::string jemalloc_context() {
#ifdef BFTKV_WITH_JEMALLOC
    using mallctl_fn = int (*)(const char *, void *, size_t *, void *, size_t);
    auto mallctl = reinterpret_cast<mallctl_fn>(dlsym(RTLD_DEFAULT, "mallctl"));
    const char *version = nullptr;
    size_t len = sizeof version;
    if (mallctl != nullptr && mallctl("version", &version, &len, nullptr, 0) == 0 && version != nullptr) {
        return std::string("yes (") + version + ")";
    }
    return "yes (linked, but mallctl not found)";
#else
    return "no";
#endif
}

// The shard count a default store gets (what the store benchmarks run with).
std::string store_shards_context() {
    struct store *s = nullptr;
    if (store_create(nullptr, &s) != 0) return "unknown";
    const uint32_t shards = store_shard_count(s);
    store_destroy(s);
    return std::to_string(shards);
}

}  // namespace

int main(int argc, char **argv) {
    if (sodium_init() < 0) {
        std::fprintf(stderr, "bftkv-microbench: sodium_init failed\n");
        return 1;
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    // BFTKV_LTHASH_IMPL=evp|aesni|vaes: the LtHash expansion every benchmark
    // uses (default: the fastest this CPU has), for before/after comparisons.
    if (const char *want = std::getenv("BFTKV_LTHASH_IMPL")) {
        bool known = false;
        for (int i = 0; i < LTHASH_IMPL_COUNT; i++) {
            const auto impl = static_cast<enum lthash_impl>(i);
            if (std::string(want) == lthash_impl_name(impl) && lthash_impl_available(impl)) {
                lthash_impl_set(impl);
                known = true;
            }
        }
        if (!known) {
            std::fprintf(stderr, "bftkv-microbench: BFTKV_LTHASH_IMPL=%s: not one of this CPU's evp, aesni, vaes\n",
                         want);
            return 1;
        }
    }

    benchmark::AddCustomContext("bftkv_build_type", BFTKV_BUILD_TYPE);
    benchmark::AddCustomContext("jemalloc", jemalloc_context());
    benchmark::AddCustomContext("libsodium", sodium_version_string());
    benchmark::AddCustomContext("openssl", OpenSSL_version(OPENSSL_VERSION));
    benchmark::AddCustomContext("store_shards", store_shards_context());
    benchmark::AddCustomContext("lthash_expansion", lthash_impl_name(lthash_impl_current()));
    benchmark::AddCustomContext("key_bytes", std::to_string(bench::kKeySize));

    benchmark::RunSpecifiedBenchmarks();
    bench::prefilled_store_release();
    benchmark::Shutdown();
    return 0;
}
