/* bftkv-bench's shared state: options, per-handle load state (slots, histogram,
 * counters) and the before/after samples of the cluster (CPU, datagrams). main.c
 * drives the load; report.c loads the context, samples the replicas and writes
 * the table, JSON, CSV and history.
 */
#ifndef BFTKV_BENCH_CLUSTER_BENCH_H
#define BFTKV_BENCH_CLUSTER_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/client.h"
#include "bftkv/config.h"
#include "common/hdr.h"
#include "engine/auth.h"

#define BENCH_THREADS_MAX 64u
#define BENCH_OPEN_SLOTS 4096u
#define BENCH_OPEN_TICK_NS 200000ull /* open loop: submissions are released in bursts this far apart */
#define BENCH_HISTORY_MAX (4u * 1024u * 1024u)
#define BENCH_REPLICAS_MAX 64u

struct bench_handle;

/* One outstanding request: the state of a logical client's request. */
struct bench_slot {
    struct bench_handle *handle;
    uint32_t client;
    int op;
    uint64_t rng;
    uint64_t key_index;
    uint64_t start_ns;
    uint8_t *key;
    uint8_t *value;
};

struct bench_handle {
    struct bench *bench;
    uint32_t index;
    struct bftkv_client *client;
    struct hdr_histogram *hist; /* the I/O thread's only */
    uint64_t ops, errors, timeouts, backlog;
    uint64_t dgrams_tx_before, retrans_before, fallbacks_before;
    atomic_uint active;
    pthread_mutex_t lock; /* open loop: the free slot stack */
    struct bench_slot *slots;
    struct bench_slot **free_slots;
    uint32_t nslots, free_count;
};

struct bench_history {
    uint32_t client;
    uint8_t op;
    int status;
    uint64_t key_index;
    uint64_t digest;
    uint64_t invoke_ns, return_ns;
};

/* The cluster at one instant. */
struct bench_sample {
    bool cpu_ok;           /* every replica's /proc stat was read */
    double replica_cpu_s;  /* user+sys of every replica, summed */
    bool stats_ok;         /* every replica answered stats */
    uint64_t dgram_rx, dgram_tx;
    uint64_t requests_executed, batches_executed;
};

struct bench {
    /* Options. */
    const char *config_path, *format, *out_path, *history_path, *cluster_dir, *label;
    double duration, warmup, rate, read_ratio, zipf;
    uint32_t clients, outstanding, threads, client_base;
    uint64_t keys;
    size_t key_size, value_size;
    bool readonly;
    double zipf_zetan, zipf_alpha, zipf_eta;

    /* Context. */
    struct bftkv_config *cfg;
    bool admin_ok;
    struct auth_ctx admin_auth;
    uint16_t admin_id;
    int replica_pid[BENCH_REPLICAS_MAX];

    /* Run. */
    struct bench_handle handle[BENCH_THREADS_MAX];
    uint64_t run_start_ns, measure_end_ns;
    atomic_uint_least64_t measure_start_ns;
    atomic_bool stop;
    double measured_s;
    double cpu_self_before, cpu_self_after;
    struct bench_sample before, after;
    uint64_t retransmissions, readonly_fallbacks; /* the handles', from the window's start to the close */
    uint64_t bench_dgrams_tx; /* the handles' datagrams sent (includes the drain after the window) */
    struct bench_history *history;
    uint64_t history_cap;
    atomic_uint_least64_t history_used;
};

uint64_t bench_now_ns(void);
uint64_t bench_fnv1a(const void *p, size_t n);
void bench_key_format(const struct bench *b, uint64_t k, uint8_t *out);
int bench_context_load(struct bench *b);
void bench_sample(struct bench *b, struct bench_sample *out);
int bench_report(struct bench *b);

#endif /* BFTKV_BENCH_CLUSTER_BENCH_H */
