/* Byzantine replicas in the simulator: which replicas are faulty, and what only
 * a simulator can add to their lies.
 *
 * A faulty replica runs the real engine; its outbox passes through a send filter
 * (cluster.h) that hands each message and destination to the engine's Byzantine
 * rewriter (engine/byzantine.h: the behaviours, one list shared with
 * bftkv-server --byzantine). This file keeps what is the simulator's own:
 *
 *   - the faulty replicas and their behaviours and seeds (simrun.c chooses them);
 *   - the rewriter's context: the coalition is every faulty replica, and
 *     stale-read answers a read-only GET with what the most-lagging correct
 *     replica (other than the accomplices) holds for the key -- the simulator
 *     knows every store and, from the workload, the key a client has in flight;
 *   - the network adversary: it holds a slow replica's messages to replicas for
 *     the rewriter's delay (byz_delay_ns), and for stale-read delays the
 *     accomplices' PREPAREs/COMMITs to the other correct replicas (asynchrony:
 *     allowed by PBFT's safety model). The accomplices alone form certificates
 *     early; with correct quorums nothing becomes visible before q replicas
 *     prepared, but a replica that executes with fewer lets a write be
 *     acknowledged that a read quorum of lagging replicas plus the liar does not
 *     see (exposes the commit-quorum and execute-before-commit bugs without a
 *     view change).
 *
 * With state_delay_ns (the swarm draw's, swarm.h) it also holds the correct
 * replicas' STATE messages, so a lying state server answers a fetch first.
 *
 * Every random choice comes from the behaviour's own PRNG stream (seeded by the
 * run), so a seed replays exactly.
 */
#ifndef BFTKV_SIM_FAULTS_H
#define BFTKV_SIM_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/byzantine.h"
#include "engine/wire.h"
#include "tests/sim/cluster.h"

/* Behaviours the random Byzantine mode draws from (equivocate needs a faulty
 * primary, which a random mode's replica need not be); simrun.c adds
 * bogus-view-change and lying-state. */
#define FAULT_RANDOM_FIRST BYZ_SILENT
#define FAULT_RANDOM_LAST BYZ_STALE_READ

struct faults;

struct fault_replica {
    struct faults *fs;
    uint16_t id;
    uint8_t behaviour; /* enum byz_mode */
    uint64_t seed;
    struct byz *byz;   /* created by faults_attach */
};

/* Summed over the faulty replicas' rewriters. */
struct fault_stats {
    uint64_t dropped;
    uint64_t corrupted;
    uint64_t replayed;
    uint64_t fabricated;
    uint64_t equivocated;
};

/* The key of the operation a client has in flight on a lane (the simulator's
 * workload knows it): stale-read needs it to look the key up in a lagging
 * replica's store. false when unknown. */
typedef bool (*fault_key_fn)(void *arg, uint16_t client, uint16_t lane, char *key, size_t cap, size_t *klen);

struct faults {
    uint16_t n;
    uint16_t f;
    /* stale-read accomplices: the f lowest-numbered correct backups (f of them
     * plus f liars outvote the f+1 lagging correct replicas in a read quorum) */
    bool accomplice[BFTKV_REPLICAS_MAX];
    struct cluster *cl;
    fault_key_fn key_of;
    void *key_arg;
    bool faulty[BFTKV_REPLICAS_MAX];
    struct fault_replica *rep[BFTKV_REPLICAS_MAX]; /* allocated for faulty replicas only */
    uint64_t request_timeout_ns; /* 0: the rewriter's default (slow draws its delay from it) */
    /* > 0: the network adversary holds every STATE message (proofs, chunks) a
     * correct replica sends to a replica this long, so that a lying state
     * server's answer is the one a fetching replica takes first (asynchrony;
     * bounded, so also after GST) */
    uint64_t state_delay_ns;
};

int faults_init(struct faults *fs, uint16_t n, uint16_t f);
void faults_destroy(struct faults *fs);

/* Make replica id faulty with behaviour b; seed seeds its rewriter's PRNG. */
void faults_set(struct faults *fs, uint16_t id, enum byz_mode b, uint64_t seed);

void faults_set_key_lookup(struct faults *fs, fault_key_fn fn, void *arg);

/* Create every faulty replica's rewriter (the coalition is now known) and
 * install its send filter on the cluster. */
void faults_attach(struct faults *fs, struct cluster *cl);

/* The network adversary (install as the cluster's net filter, arg = fs): holds
 * a slow replica's messages to replicas, and delays the stale-read accomplices'
 * PREPAREs and COMMITs to the other correct replicas. */
enum cluster_net_verdict faults_net_adversary(void *arg, uint32_t from, uint32_t to, const uint8_t *msg,
                                              uint32_t len, uint64_t *delay_ns);

/* The request timeout T the replicas run with (slow draws its delay from it). */
void faults_set_request_timeout(struct faults *fs, uint64_t timeout_ns);

/* Is any faulty replica's behaviour b? */
bool faults_any(const struct faults *fs, enum byz_mode b);

/* The rewriters' counters, summed. */
void faults_stats(const struct faults *fs, struct fault_stats *out);

#endif /* BFTKV_SIM_FAULTS_H */
