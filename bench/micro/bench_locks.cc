// Lock micro benchmarks (docs/design.md §3.3: ck_spinlock / ck_rwlock or striped
// pthread locks, chosen by benchmark). Each candidate guards a tiny critical section (read
// or increment a counter that shares the lock's cache line, as a shard header
// would), from 1 and 2 threads:
//   BM_Lock<Kind>/shared    every thread takes the same lock (contended)
//   BM_Lock<Kind>/sharded   each thread its own lock on its own cache line
//                           (uncontended, as with the store's shards; 2 threads only)
// BM_LockNone is the same loop without a lock: the floor to subtract.
//
// Reported times are real time per lock/unlock pair; with 2 threads that is wall
// time over both threads' iterations (inverse aggregate throughput).
#include <benchmark/benchmark.h>

#include <pthread.h>

#include <string>
#include <type_traits>

// ck_spinlock.h pulls in every spinlock flavour, some of which (clh, mcs) do not
// compile as C++; include only the two we measure.
#include <ck_pr.h>
#include <ck_rwlock.h>
#include <spinlock/fas.h>
#include <spinlock/ticket.h>

#include "bench_util.h"

namespace {

// ---- Lock policies: one per candidate -----------------------------------------

struct NoLock {
    static constexpr bool kWrites = true;
    void lock() {}
    void unlock() {}
};

struct CkRwlockRead {
    static constexpr bool kWrites = false;
    ck_rwlock_t l = CK_RWLOCK_INITIALIZER;
    void lock() { ck_rwlock_read_lock(&l); }
    void unlock() { ck_rwlock_read_unlock(&l); }
};

struct CkRwlockWrite {
    static constexpr bool kWrites = true;
    ck_rwlock_t l = CK_RWLOCK_INITIALIZER;
    void lock() { ck_rwlock_write_lock(&l); }
    void unlock() { ck_rwlock_write_unlock(&l); }
};

struct PthreadRwlockRead {
    static constexpr bool kWrites = false;
    pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
    void lock() { pthread_rwlock_rdlock(&l); }
    void unlock() { pthread_rwlock_unlock(&l); }
};

struct PthreadRwlockWrite {
    static constexpr bool kWrites = true;
    pthread_rwlock_t l = PTHREAD_RWLOCK_INITIALIZER;
    void lock() { pthread_rwlock_wrlock(&l); }
    void unlock() { pthread_rwlock_unlock(&l); }
};

struct PthreadMutex {
    static constexpr bool kWrites = true;
    pthread_mutex_t l = PTHREAD_MUTEX_INITIALIZER;
    void lock() { pthread_mutex_lock(&l); }
    void unlock() { pthread_mutex_unlock(&l); }
};

struct CkSpinlockFas {
    static constexpr bool kWrites = true;
    ck_spinlock_fas_t l = CK_SPINLOCK_FAS_INITIALIZER;
    void lock() { ck_spinlock_fas_lock(&l); }
    void unlock() { ck_spinlock_fas_unlock(&l); }
};

#ifdef CK_F_SPINLOCK_TICKET
struct CkSpinlockTicket {
    static constexpr bool kWrites = true;
    ck_spinlock_ticket_t l = CK_SPINLOCK_TICKET_INITIALIZER;
    void lock() { ck_spinlock_ticket_lock(&l); }
    void unlock() { ck_spinlock_ticket_unlock(&l); }
};
#endif

// A lock and the data it guards on one cache line; neighbours never share it.
template <class L>
struct alignas(bench::kCacheLine) Guarded {
    L lock;
    uint64_t counter = 0;
};

template <class L>
Guarded<L> g_guarded[2];

// sharded: thread i takes lock i; otherwise every thread takes lock 0.
template <class L>
void BM_Lock(benchmark::State &st, bool sharded) {
    Guarded<L> &g = g_guarded<L>[sharded ? st.thread_index() : 0];
    for (auto _ : st) {
        g.lock.lock();
        if constexpr (L::kWrites) {
            g.counter++;
            benchmark::ClobberMemory();
        } else {
            uint64_t v = g.counter;
            benchmark::DoNotOptimize(v);
        }
        g.lock.unlock();
    }
    st.SetItemsProcessed(st.iterations());
}

template <class L>
void register_lock(const char *kind) {
    const std::string name = std::string("BM_Lock") + kind;
    auto *shared = benchmark::RegisterBenchmark((name + "/shared").c_str(), BM_Lock<L>, false);
    shared->Threads(1)->UseRealTime();
    // Two threads incrementing one counter without a lock would be a data race.
    if (!std::is_same<L, NoLock>::value) shared->Threads(2);
    benchmark::RegisterBenchmark((name + "/sharded").c_str(), BM_Lock<L>, true)->Threads(2)->UseRealTime();
}

int register_lock_benchmarks() {
    register_lock<NoLock>("None");
    register_lock<CkRwlockRead>("CkRwlockRead");
    register_lock<CkRwlockWrite>("CkRwlockWrite");
    register_lock<PthreadRwlockRead>("PthreadRwlockRead");
    register_lock<PthreadRwlockWrite>("PthreadRwlockWrite");
    register_lock<PthreadMutex>("PthreadMutex");
    register_lock<CkSpinlockFas>("CkSpinlockFas");
#ifdef CK_F_SPINLOCK_TICKET
    register_lock<CkSpinlockTicket>("CkSpinlockTicket");
#endif
    return 0;
}

[[maybe_unused]] const int g_registered = register_lock_benchmarks();

}  // namespace
