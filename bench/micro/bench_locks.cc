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

// The candidates, one line each: name, whether the critical section writes
// (a read lock only reads), the lock's type, the calls that take and release it,
// and its initialiser (last: it may hold commas).
#ifdef CK_F_SPINLOCK_TICKET
#define LOCK_TICKET(X)                                                                                          \
    X(CkSpinlockTicket, true, ck_spinlock_ticket_t, ck_spinlock_ticket_lock, ck_spinlock_ticket_unlock,        \
      CK_SPINLOCK_TICKET_INITIALIZER)
#else
#define LOCK_TICKET(X)
#endif
#define LOCK_CANDIDATES(X)                                                                                      \
    X(CkRwlockRead, false, ck_rwlock_t, ck_rwlock_read_lock, ck_rwlock_read_unlock, CK_RWLOCK_INITIALIZER)      \
    X(CkRwlockWrite, true, ck_rwlock_t, ck_rwlock_write_lock, ck_rwlock_write_unlock, CK_RWLOCK_INITIALIZER)    \
    X(PthreadRwlockRead, false, pthread_rwlock_t, pthread_rwlock_rdlock, pthread_rwlock_unlock,                \
      PTHREAD_RWLOCK_INITIALIZER)                                                                               \
    X(PthreadRwlockWrite, true, pthread_rwlock_t, pthread_rwlock_wrlock, pthread_rwlock_unlock,                \
      PTHREAD_RWLOCK_INITIALIZER)                                                                               \
    X(PthreadMutex, true, pthread_mutex_t, pthread_mutex_lock, pthread_mutex_unlock, PTHREAD_MUTEX_INITIALIZER) \
    X(CkSpinlockFas, true, ck_spinlock_fas_t, ck_spinlock_fas_lock, ck_spinlock_fas_unlock,                    \
      CK_SPINLOCK_FAS_INITIALIZER)                                                                              \
    LOCK_TICKET(X)

#define LOCK_POLICY(Name, writes, T, take, release, ...)                                                        \
    struct Name {                                                                                               \
        static constexpr bool kWrites = writes;                                                                 \
        T l = __VA_ARGS__;                                                                                      \
        void lock() { take(&l); }                                                                               \
        void unlock() { release(&l); }                                                                          \
    };
LOCK_CANDIDATES(LOCK_POLICY)
#undef LOCK_POLICY

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
#define LOCK_REGISTER(Name, ...) register_lock<Name>(#Name);
    LOCK_CANDIDATES(LOCK_REGISTER)
#undef LOCK_REGISTER
    return 0;
}

[[maybe_unused]] const int g_registered = register_lock_benchmarks();

}  // namespace
