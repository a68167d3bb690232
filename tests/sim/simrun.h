/* One simulator run: a seed in, a verdict out.
 *
 * simrun_one() derives the whole scenario from the seed -- network parameters and
 * partitions, which backups are faulty and how, the workload's shape -- builds the
 * cluster, runs the workload to completion (or to the liveness bound), drains,
 * and applies every checker:
 *
 *   safety    agreement on batch digests, checkpoint digests, store digests of
 *             correct replicas at the same point, linearizability of the history
 *             including the final reads (so no acknowledged write is lost), and
 *             well-formed client completions;
 *   liveness  after GST the clients keep completing operations -- never
 *             liveness_ns of simulated time without a completion while some are
 *             pending -- until all R per client and the final reads are done;
 *             and every correct replica holding state rejoins the group's view
 *             within the rejoin bound (rejoin.h).
 *
 * Options left at their "random" value (negative / zero, see struct sim_options)
 * are drawn per seed; explicit ones are used as given, so a failing seed replays
 * with the same command line.
 */
#ifndef BFTKV_SIM_SIMRUN_H
#define BFTKV_SIM_SIMRUN_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "tests/sim/cluster.h"
#include "tests/sim/lincheck.h"

enum sim_fault_mode {
    SIM_FAULTS_NONE = 0,
    SIM_FAULTS_NET = 1,
    SIM_FAULTS_BYZANTINE = 2,
    SIM_FAULTS_RESTART = 4, /* k <= q replicas down at once, with or without memory (restarts.h) */
    SIM_FAULTS_ALL = 7,     /* NET | BYZANTINE | RESTART (the restart shape in one seed in four,
                             * the link shapes in one seed in four) */
    SIM_FAULTS_LINKS = 8,   /* the link shapes of link_kinds in every seed (links.h) */
};

/* Partitions of --partitions at most; the link shapes have room beside them. */
#define SIM_PARTITIONS_MAX 8u

struct sim_options {
    uint16_t n;
    uint16_t f;
    uint16_t clients;
    uint32_t requests;        /* per client */
    int faults;               /* enum sim_fault_mode */
    uint32_t link_kinds;      /* SIM_FAULTS_LINKS: enum link_kind mask */
    double loss_percent;      /* < 0: drawn per seed in [0, 30] (net mode) */
    double dup_percent;       /* < 0: drawn per seed in [0, 10] (net mode) */
    int partitions;           /* < 0: drawn (0..2) in net mode; else that many */
    uint64_t latency_ns;      /* base one-way latency */
    int64_t jitter_ns;        /* < 0: drawn per seed (net mode) */
    int64_t gst_ns;           /* < 0: drawn per seed (net mode); none mode: 0 */
    uint64_t liveness_ns;     /* after GST, some operation completes at least this often */
    /* Byzantine: explicit faulty set (faulty_count > 0) and behaviour (>= 0). */
    uint16_t faulty_count;
    uint16_t faulty[BFTKV_REPLICAS_MAX];
    int behaviour;            /* enum byz_mode (engine/byzantine.h), < 0: drawn per faulty replica */
    uint32_t bugs;            /* enum pbft_bug */
    bool durable;             /* durable replicas: persist-before-send checked on every outbox */
    uint32_t checkpoint_interval; /* 0: drawn / engine default (see simrun.c) */
    uint32_t log_window;
    uint32_t window;
    uint32_t batch;
    uint32_t batch_bytes;     /* 0: drawn per seed */
    uint16_t lanes;           /* client lanes; 0: drawn */
    uint32_t keys;            /* key space; 0: drawn in [8, 32] */
    int put_percent;          /* < 0: drawn per seed (see simrun.c) */
    int get_percent;          /* < 0: drawn per seed; DEL gets the rest */
    uint32_t value_bytes;     /* 0: drawn per seed */
    int readonly_percent;     /* clients on the read-only path; < 0: 50 */
    uint64_t client_retransmit_ns;
    int swarm;                /* all mode's swarm draw (swarm.h): < 0 on unless --faulty or
                                 --behaviour is given, 0 off (--no-swarm: the draw before it) */
    bool check_liveness;
    bool check_rejoin;        /* every correct replica rejoins the group's view (rejoin.h) */
    uint64_t rejoin_slack_ns; /* the rejoin bound's slack; 0: T, the request timeout */
    uint32_t invariants_every; /* check replica invariants after every k-th cluster
                                  step (0, 1: every step; read-only, so k changes
                                  no run, only how soon a broken one is caught) */
    /* A partitioned deployment (deploy.h): deploy_nodes nodes and
     * deploy_partitions partitions, each a group of n replicas tolerating f;
     * 0 partitions: one group of n replicas. */
    uint16_t deploy_nodes;
    uint32_t deploy_partitions;
    bool trace;               /* print deliveries (stderr) */
    uint64_t trace_seq;       /* only those with this header seq (0: all) */
    bool verbose;
};

void sim_options_defaults(struct sim_options *o);

enum sim_verdict {
    SIM_OK = 0,
    SIM_SAFETY = 1,
    SIM_LIVENESS = 2,
};

struct sim_result {
    int verdict;               /* enum sim_verdict */
    char what[768];            /* the first violation, when there is one */
    char scenario[512];        /* the scenario drawn from the seed, one line */
    uint64_t committed;        /* client operations completed */
    uint64_t batches;          /* batches executed (a correct replica that went furthest) */
    uint64_t batch_requests;   /* requests in those batches */
    uint64_t sim_ns;           /* simulated time at the end */
    uint64_t steps;
    uint64_t lincheck_unknown; /* keys beyond lincheck's budget */
    uint64_t lagging;          /* correct replicas behind the furthest one at the end */
    uint64_t viewchanges;     /* views entered through a NEW-VIEW, summed over correct replicas */
    uint64_t state_transfers;  /* fetched states installed, summed over correct replicas */
    uint64_t request_timeouts; /* request timers that expired, summed over correct replicas */
    int restart;               /* the restart shape: 0 none, 1 the group recovers, 2 it refuses */
    bool restart_went_down;    /* the restart shape's replicas went down ... */
    uint64_t restart_down_ns;  /* ... at this simulated time */
    uint64_t no_state;         /* client operations refused with BFTKV_E_NO_STATE */
    uint64_t recoveries;       /* --durable: replicas rebuilt from their disks ... */
    uint64_t recovered_batches; /* ... the batches they executed again ... */
    uint64_t recovery_gaps;    /* ... and those that came back unsure */
    uint64_t recoveries_from_snapshot; /* ... and those that started from a snapshot */
    bool whole_group;          /* --durable: every replica crashed at once */
    bool rejoin_failed;        /* the liveness failure is a replica left outside (rejoin.h) */
    uint64_t rejoin_bound_ns;  /* the largest rejoin bound of the run */
    uint64_t rejoin_outside_ns; /* the longest a checked replica stayed outside */
    bool links;                /* the seed has link shapes */
};

/* Scratch shared by the runs of one process. */
struct sim_context {
    struct cluster_keys *keys;
    struct lincheck *lc;
    uint32_t lc_cap;
};

void sim_context_init(struct sim_context *ctx);
void sim_context_destroy(struct sim_context *ctx);

/* Run one seed. 0, or a negative error for an internal failure (bad options). */
int simrun_one(const struct sim_options *o, struct sim_context *ctx, uint64_t seed, struct sim_result *res);

#endif /* BFTKV_SIM_SIMRUN_H */
