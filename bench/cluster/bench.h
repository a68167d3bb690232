/* bftkv-bench's shared state: options, per-handle load state (slots, histogram,
 * counters), the operation history and the before/after samples of the cluster
 * (CPU, datagrams). main.c parses the options and runs the phases; load.c drives
 * the load (closed and open loop); history.c records every operation, makes and
 * recognises the values, runs the unmeasured passes over keys (--prefill before
 * the load, --final-read after it) and writes the history file; report.c loads
 * the context, samples the replicas and the machine and writes the table, JSON
 * and CSV and the line saying what limited the run.
 */
#ifndef BFTKV_BENCH_CLUSTER_BENCH_H
#define BFTKV_BENCH_CLUSTER_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/client.h"
#include "common/hdr.h"
#include "engine/auth.h"
#include "cluster/cluster.h"

#define BENCH_THREADS_MAX 64u
#define BENCH_OPEN_SLOTS 4096u
#define BENCH_OPEN_TICK_NS 200000ull /* open loop: submissions are released in bursts this far apart */
#define BENCH_HISTORY_MAX (4u * 1024u * 1024u) /* operations of the load; prefill and final reads come on top */
#define BENCH_REPLICAS_MAX 64u
#define BENCH_LOAD_POINTS_MAX 8u /* --load-points: fractions of the measured peak */
#define BENCH_PHASES_MAX (1u + BENCH_LOAD_POINTS_MAX)
#define BENCH_NAME_MAX 256
#define BENCH_LIMIT_MAX 320

/* Defaults when --clients and --threads are not given: as many handles as the
 * config has client ids to spare (one more id is the stats client), at most
 * BENCH_HANDLES_DEFAULT, each with every lane busy (client_lanes requests), at
 * most BENCH_CLIENTS_DEFAULT requests outstanding in all: the tuned peak's shape
 * (docs/benchmarks.md "Defaults"). On the CPU-bound 2-core machine 512 requests
 * in flight make batches of ~37 at N = 4 against ~15 with 192, and bigger
 * batches cost less CPU per operation. */
#define BENCH_HANDLES_DEFAULT 8u
#define BENCH_CLIENTS_DEFAULT 512u

/* Bytes of each written value unless --value-size says otherwise: one write id
 * (history.c), so every PUT writes a value no earlier PUT of the run wrote and
 * the store really changes. --value-size 0 is the "0/0" workload: once a key
 * exists, a PUT of an empty value over an empty value changes nothing. */
#define BENCH_VALUE_SIZE_DEFAULT 16u
/* A written value of at least this many bytes starts with its write id as 16 hex
 * digits (history.c). */
#define BENCH_TOKEN_LEN 16u
/* Shorter values are hash bytes of the write id: unique within a run from this
 * many bytes on (a bijective hash word), below it a PUT may repeat a value. */
#define BENCH_VALUE_UNIQUE_LEN 8u
_Static_assert(BENCH_VALUE_SIZE_DEFAULT >= BENCH_TOKEN_LEN, "a default value names its write");
#define BENCH_NO_RECORD UINT64_MAX

struct bench_handle;
struct bench_pass;

/* One request slot: a logical client with at most one request outstanding. */
struct bench_slot {
    struct bench_handle *handle;
    uint32_t client;     /* the history's client id (a fresh one after an unknown outcome) */
    int op;
    struct bench_pass *pass; /* the pass (history.c) it serves, or NULL: the load */
    atomic_bool busy;    /* submitted and not yet called back */
    uint64_t rng;
    uint64_t key_index;
    uint32_t part;       /* the key's partition (0 on one group) */
    uint64_t write_id;   /* PUT: the id its value carries */
    uint64_t start_ns;   /* latency start: the submission, or the intended start (open loop) */
    uint64_t record;     /* its history record, or BENCH_NO_RECORD */
    uint8_t *key;
    uint8_t *value;
};

struct bench_handle {
    struct bench *bench;
    uint32_t index;
    struct bftkv_client *client;
    uint16_t lanes;                /* the lanes this handle was opened with */
    struct hdr_histogram *hist;    /* the I/O thread's only (a deployment's: under stat_lock) */
    uint64_t ops, errors, timeouts, backlog;
    /* A deployment's routing handle calls back from one I/O thread per
     * partition (client/client_route.c): the counters, the histogram and
     * part_ops (measured ops per partition) are then counted under stat_lock. */
    pthread_mutex_t stat_lock;
    uint64_t *part_ops;
    uint64_t dgrams_tx_before, retrans_before, fallbacks_before, ro_timeouts_before;
    atomic_uint active;
    pthread_mutex_t lock; /* open loop: the free slot stack */
    struct bench_slot *slots;
    struct bench_slot **free_slots;
    uint32_t nslots, free_count;
};

/* Flags of a history record. */
enum bench_record_flag {
    BENCH_REC_RETURNED = 1u << 0, /* its callback came (or bftkv_submit refused it) */
    BENCH_REC_REFUSED = 1u << 1,  /* bftkv_submit returned an error: nothing was sent */
    BENCH_REC_FINAL = 1u << 2,    /* a --final-read GET */
    BENCH_REC_INVALID = 1u << 3,  /* a GET returned bytes that are no value of this run's
                                     format: value holds their FNV-1a digest */
    BENCH_REC_PREFILL = 1u << 4,  /* a --prefill PUT */
};

/* An unmeasured pass over keys through the handles' free slots (history.c): each
 * slot takes the next key when its previous request is called back, until every
 * key was issued or the time bound passed. */
struct bench_pass {
    const char *name;           /* for messages: "prefill", "final read" */
    int op;                     /* BFTKV_OP_PUT or BFTKV_OP_GET */
    uint8_t record_flag;        /* BENCH_REC_PREFILL or BENCH_REC_FINAL */
    uint32_t limit_s;           /* seconds to issue keys in (the last requests then have the client timeout) */
    const uint64_t *keys;       /* the key indexes, or NULL: 0..count-1 */
    uint64_t count;
    atomic_uint_least64_t next; /* keys issued (and refused) so far */
    atomic_uint active;         /* slots still serving the pass */
    atomic_uint_least64_t failed; /* results other than ok and not_found, and refusals */
    uint64_t start_ns, end_ns;
    bool complete;              /* every key issued and every request called back */
};

/* One invoked operation (history.c). */
struct bench_record {
    uint64_t key_index;
    uint64_t value; /* PUT: the write id; GET returning a value: the id it carries */
    uint64_t invoke_ns, return_ns;
    uint32_t client;
    int16_t status;
    uint8_t op, flags;
};

/* The cluster and the machine at one instant. */
struct bench_sample {
    bool cpu_ok;           /* every replica's /proc stat was read */
    double replica_cpu_s;  /* user+sys of every replica, summed */
    bool machine_ok;       /* /proc/stat was read */
    double machine_busy_s, machine_all_s; /* every CPU's non-idle and total time */
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
    char limit[BENCH_LIMIT_MAX]; /* what limited it, one line */
    bool open;       /* open loop (--rate or a load point) */
    double rate;     /* offered ops/s when open */
    double fraction; /* load point: rate / measured peak; 0 otherwise */
    double measured_s;
    uint64_t retransmissions, readonly_fallbacks, readonly_timeouts, bench_dgrams_tx;
    uint64_t ops, errors, timeouts, backlog;
    double tput, mean_ns;
    int64_t p50, p90, p99, p999, max;
    double cpu_per_op_us, replica_cpu_per_op_us, bench_cpu_per_op_us; /* < 0: unknown */
    double dgrams_per_op, replica_dgrams_per_op;                       /* < 0: unknown */
    double avg_batch;
    struct hdr_histogram *all; /* the handles' histograms merged */
    /* A deployment: measured ops/s of each partition, and their least, median
     * and largest (partitions > 1 only; part_tput is the result's own). */
    double *part_tput;
    double part_min, part_median, part_max;
};

struct bench {
    /* Options. */
    const char *config_path, *format, *out_path, *history_path, *cluster_dir, *label;
    double duration, warmup, rate, read_ratio, del_ratio, zipf;
    uint32_t clients, outstanding, threads, client_base;
    bool clients_given, threads_given;
    uint64_t keys;
    size_t key_size, value_size;
    size_t value_len; /* bytes of each written value: value_size, at least BENCH_TOKEN_LEN with --history */
    bool readonly, final_read, prefill;
    bool stale_reads; /* --stale-reads: GETs read one replica (BFTKV_CLIENT_STALE_READS) */
    uint64_t seed;
    double load_point[BENCH_LOAD_POINTS_MAX]; /* --load-points, in the order given */
    uint32_t load_points;
    double zipf_zetan, zipf_alpha, zipf_eta;

    /* Context. */
    struct bftkv_config *cfg;
    struct cluster_map *map; /* a deployment's (verified) map: key -> partition; NULL on one group */
    uint32_t partitions;     /* P, 1 on one group */
    bool admin_ok;
    uint16_t admin_id;
    int replica_pid[BENCH_REPLICAS_MAX];
    uint64_t run_tag; /* 20 bits of the seed in every write id: values of other runs are foreign */

    /* Run. */
    struct bench_handle handle[BENCH_THREADS_MAX];
    uint64_t run_start_ns, measure_end_ns;
    atomic_uint_least64_t measure_start_ns;
    atomic_bool stop;
    double measured_s;
    double cpu_self_before, cpu_self_after;
    struct bench_sample before, after;
    uint64_t retransmissions, readonly_fallbacks; /* the handles', from the window's start to the close */
    uint64_t readonly_timeouts;                   /* fallbacks after the whole retransmission timeout */
    uint64_t bench_dgrams_tx; /* the handles' datagrams sent (includes the drain after the window) */
    uint64_t queued_max;      /* most requests seen waiting for a lane in one handle at the window's end */
    uint32_t lagging;         /* replicas that lagged or did not answer at the end of the phase */
    int first_lagging;
    atomic_uint_least64_t write_seq[BENCH_THREADS_MAX]; /* per handle, never reset: write ids stay unique */

    /* History (history.c). */
    struct bench_record *history;
    uint64_t history_cap, history_load_cap;
    atomic_uint_least64_t history_used;
    atomic_bool history_full;
    atomic_uint next_client;          /* fresh history client ids */
    atomic_uint_least64_t *touched;   /* --final-read: bit per key index */
    uint64_t *final_keys;             /* the final read's keys (the touched ones) */

    /* The passes over keys (history.c): --prefill before the load, --final-read after. */
    struct bench_pass prefill_pass, final_pass;

    /* Results, one per phase. */
    struct bench_result phase[BENCH_PHASES_MAX];
    uint32_t phases;
};

/* load.c */
uint64_t bench_now_ns(void);
uint64_t bench_mix64(uint64_t x);
uint64_t bench_fnv1a(const void *p, size_t n);
void bench_key_format(const struct bench *b, uint64_t k, uint8_t *out);
/* Set the slot's request: op on key index k; a PUT gets a fresh write id and
 * the value carrying it. */
void bench_slot_set(struct bench_slot *s, int op, uint64_t k);
void bench_zipf_init(struct bench *b);
int bench_handles_open(struct bench *b, const char *config_path);
void bench_handles_close(struct bench *b);
int bench_run(struct bench *b);
/* Submit the slot's prepared request, recording it in the history first. 0, or
 * the error of bftkv_submit (recorded as refused), or BFTKV_E_FULL when the
 * history is full (nothing invoked). */
int bench_slot_submit(struct bench_slot *s);

/* history.c */
int bench_history_init(struct bench *b);
void bench_history_free(struct bench *b);
/* Reserve the slot's record and fill its invocation; false when the history is full. */
bool bench_history_invoke(struct bench *b, struct bench_slot *s, uint64_t invoke_ns);
/* Fill the slot's record with its outcome: the callback's status and value, or
 * (refused) the error bftkv_submit returned. Returns true when the outcome is
 * unknown (the operation may or may not take effect). */
bool bench_history_return(struct bench *b, const struct bench_slot *s, int status, const void *val, size_t vlen,
                          uint64_t return_ns, bool refused);
/* The write id of a fresh PUT of handle h, and the value bytes carrying it. */
uint64_t bench_write_id(struct bench *b, uint32_t h);
void bench_value_fill(const struct bench *b, uint64_t id, uint8_t *out);
int bench_history_write(struct bench *b);
/* ok, fail or unknown: what a record's outcome means for a checker. */
const char *bench_record_outcome(const struct bench_record *r);

/* The callback of a slot serving a pass: count the result, then the slot's
 * next key, or the slot leaves the pass. */
void bench_pass_next(struct bench_slot *s, int status);
/* --prefill, on freshly opened handles before the load: PUT every key once
 * (not measured; recorded in the history as phase "prefill"). 0, also when the
 * time bound cut it short (b->prefill_pass.complete says); 1 when a request
 * was still outstanding at the end, so the slots cannot carry the load. */
int bench_prefill(struct bench *b);
/* --final-read, after the load drained: GET every key the run touched. 0, or 1
 * when some keys could not be read within the time bound. */
int bench_final_read(struct bench *b);

/* report.c */
/* The config and the replicas' PIDs; then, once the handles are counted, the
 * stats client (the id after the handles'). */
int bench_context_load(struct bench *b);
int bench_admin_load(struct bench *b);
void bench_sample(struct bench *b, struct bench_sample *out);
/* Fill the next phase's result from the run just finished (the handles still
 * open); suffix (may be NULL) is appended to the phase's name. 0 or an error. */
int bench_phase_collect(struct bench *b, const char *suffix, double fraction);
int bench_report(struct bench *b);
/* Warn on stderr about replicas that, at the end of a phase, did not answer
 * stats, sit in another view than the others, or lag them by more than a few
 * checkpoints: such a replica slows the clients down (docs/benchmarks.md).
 * Sets b->lagging and b->first_lagging. */
void bench_lag_warn(struct bench *b, const char *phase);

#endif /* BFTKV_BENCH_CLUSTER_BENCH_H */
