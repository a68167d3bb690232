/* The catch-up tests' cluster (test_catchup.c): replica_harness.h's in-memory
 * cluster, plus what catch-up needs to be exercised -- message loss from a
 * fixed-seed PRNG on every message (replies included), partitions, a Byzantine
 * state server (its STATE chunks corrupted and re-MACed with its own keys),
 * closed-loop clients that retransmit to every replica on a timeout, simulated
 * time that advances when the network is idle (every replica is ticked), per
 * replica records of executed batches and checkpoint digests, and crash-restart
 * (a replica destroyed and created again, empty). Test code: allocates freely. */
#ifndef BFTKV_TESTS_CU_HARNESS_H
#define BFTKV_TESTS_CU_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replica_harness.h"

#define CU_SEQ_MAX (1u << 15)     /* executed seqs recorded per replica */
#define CU_VALUE_MAX 4096u

struct cu_client {
    bool busy;
    uint64_t ts;
    uint64_t sent_ns;
    uint64_t voted;                        /* replicas that replied to ts */
    int16_t status[RH_REPLICAS_MAX];
    uint8_t digest[RH_REPLICAS_MAX][32];
    size_t len;
    uint8_t buf[CU_VALUE_MAX + 256u];
};

struct cu_cluster;
/* Extra filter (after loss and partitions): true drops. */
typedef bool (*cu_filter)(struct cu_cluster *cu, const struct rh_msg *m, void *arg);
/* Called when a FETCH is about to be delivered to its server. */
typedef void (*cu_fetch_hook)(struct cu_cluster *cu, uint16_t server, void *arg);

struct cu_params {
    uint16_t n, f, clients;
    uint32_t k, l, w;
    uint64_t retransmit_ns;     /* 0: 5 ms */
    uint64_t request_timeout_ns;/* 0: 10 s (no view change in these tests) */
    uint32_t bugs[RH_REPLICAS_MAX];
};

struct cu_cluster {
    struct rh_cluster rh;
    struct cu_params p;
    uint64_t rng;
    uint32_t loss_pct;          /* of every message, replies included */
    bool cut[RH_REPLICAS_MAX];  /* partitioned: nothing to or from it */
    int corrupt_from;           /* replica whose STATE chunks lie; -1: none */
    uint64_t corrupted;
    uint64_t dropped;
    cu_filter filter;
    void *filter_arg;
    cu_fetch_hook on_fetch;
    void *fetch_arg;
    /* Crash-restart replica restart_who once ops_done reaches restart_at_ops (0:
     * never), in the middle of the run: between two deliveries to others. */
    uint32_t restart_at_ops;
    uint16_t restart_who;
    uint64_t restart_le; /* its last_executed when it crashed */

    /* Clients: closed loop, PUTs of value_len bytes over `keys` keys. */
    struct cu_client cl[RH_CLIENTS_MAX];
    uint32_t ops_target, ops_issued, ops_done;
    uint32_t keys, value_len;
    uint64_t client_timeout_ns;
    uint32_t burst;             /* deliveries per simulated ms; 0: until idle */

    /* Per replica: digest of the batch executed at each seq (0s: none), and
     * the checkpoint digests it reported. */
    uint8_t (*exec[RH_REPLICAS_MAX])[32];
    bool *executed[RH_REPLICAS_MAX];
    uint8_t (*ckpt[RH_REPLICAS_MAX])[32];
    bool *ckpt_seen[RH_REPLICAS_MAX];
};

void cu_init(struct cu_cluster *cu, const struct cu_params *p, uint64_t seed);
void cu_fini(struct cu_cluster *cu);

/* Start `ops` PUTs, spread over the clients (closed loop). */
void cu_workload(struct cu_cluster *cu, uint32_t ops, uint32_t keys, uint32_t value_len);
/* Deliver up to `burst` messages (or until the network is idle), then advance
 * time by 1 ms and tick everyone (replicas and client timers); repeat until
 * done(cu) or until time passes until_ns. Returns done(cu) (true without one). */
bool cu_run(struct cu_cluster *cu, bool (*done)(struct cu_cluster *cu), uint64_t until_ns);
bool cu_workload_done(struct cu_cluster *cu);
/* Every replica not cut has the same last_executed as replica `ref`. */
bool cu_replicas_level(struct cu_cluster *cu);

/* Crash and restart replica i: destroyed, its store cleared, created again with
 * the restarted flag. */
void cu_restart(struct cu_cluster *cu, uint16_t i);

/* The state digest of replica i's store, and checks over the records. */
void cu_store_digest(struct cu_cluster *cu, uint16_t i, uint8_t out[32]);
/* No two replicas executed different batches at the same seq. */
bool cu_agree(const struct cu_cluster *cu);
const struct pbft_replica_stats *cu_stats(const struct cu_cluster *cu, uint16_t i);
/* With CU_VERBOSE set in the environment: the replicas' catch-up counters. */
void cu_dump(const struct cu_cluster *cu, const char *what);

#endif /* BFTKV_TESTS_CU_HARNESS_H */
