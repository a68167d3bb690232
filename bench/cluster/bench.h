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
#define BENCH_LOAD_POINTS_MAX 8u /* --load-points: fractions of the measured peak */
#define BENCH_PHASES_MAX (1u + BENCH_LOAD_POINTS_MAX)
#define BENCH_NAME_MAX 256

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
    /* Per replica, when it answered: its view and last executed batch. */
    bool answered[BENCH_REPLICAS_MAX];
    uint64_t view[BENCH_REPLICAS_MAX], last_executed[BENCH_REPLICAS_MAX];
};

/* One measured phase: the whole run, or with --load-points the closed-loop peak
 * and then each open-loop point. Everything the report needs, copied out of the
 * run state before the next phase resets it. */
struct bench_result {
    char name[BENCH_NAME_MAX];
    bool open;       /* open loop (--rate or a load point) */
    double rate;     /* offered ops/s when open */
    double fraction; /* load point: rate / measured peak; 0 otherwise */
    double measured_s;
    uint64_t retransmissions, readonly_fallbacks, bench_dgrams_tx;
    uint64_t ops, errors, timeouts, backlog;
    double tput, mean_ns;
    int64_t p50, p90, p99, p999, max;
    double cpu_per_op_us, replica_cpu_per_op_us, bench_cpu_per_op_us; /* < 0: unknown */
    double dgrams_per_op, replica_dgrams_per_op;                       /* < 0: unknown */
    double avg_batch;
    struct hdr_histogram *all; /* the handles' histograms merged */
};

struct bench {
    /* Options. */
    const char *config_path, *format, *out_path, *history_path, *cluster_dir, *label;
    double duration, warmup, rate, read_ratio, zipf;
    uint32_t clients, outstanding, threads, client_base;
    uint64_t keys;
    size_t key_size, value_size;
    bool readonly;
    double load_point[BENCH_LOAD_POINTS_MAX]; /* --load-points, in the order given */
    uint32_t load_points;
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

    /* Results, one per phase. */
    struct bench_result phase[BENCH_PHASES_MAX];
    uint32_t phases;
};

uint64_t bench_now_ns(void);
uint64_t bench_fnv1a(const void *p, size_t n);
void bench_key_format(const struct bench *b, uint64_t k, uint8_t *out);
int bench_context_load(struct bench *b);
void bench_sample(struct bench *b, struct bench_sample *out);
/* Fill the next phase's result from the run just finished (the handles still
 * open); suffix (may be NULL) is appended to the phase's name. 0 or an error. */
int bench_phase_collect(struct bench *b, const char *suffix, double fraction);
int bench_report(struct bench *b);
/* Warn on stderr about replicas that, at the end of a phase, did not answer
 * stats, sit in another view than the others, or lag them by more than a few
 * checkpoints: such a replica slows the clients down (docs/benchmarks.md). */
void bench_lag_warn(const struct bench *b, const char *phase);

#endif /* BFTKV_BENCH_CLUSTER_BENCH_H */
