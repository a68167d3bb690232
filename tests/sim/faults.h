/* Byzantine replicas: behaviours applied to what a faulty replica sends.
 *
 * A faulty replica runs the real engine; its outbox passes through a send filter
 * (cluster.h) that applies its behaviour per message and destination before
 * anything reaches the network. A Byzantine node holds its own keys, so its lies
 * are well authenticated: a rewritten PREPARE, COMMIT, CHECKPOINT or REPLY is
 * re-MACed / re-signed with the faulty replica's own auth context. Behaviours:
 *
 *   silent          sends nothing
 *   drop            drops each message with a per-seed probability (10..90%)
 *   corrupt-mac     flips a byte in the authenticator / signature of most messages
 *   corrupt-digest  PREPARE/COMMIT/CHECKPOINT carry a random digest, re-authenticated;
 *                   a PRE-PREPARE (primary only) goes out with a wrong D
 *   wrong-result    REPLYs carry a fabricated result (a value nobody wrote, or
 *                   NOT_FOUND), with a matching result digest and a valid MAC
 *   replay          behaves, and also re-sends random earlier messages of its own
 *   mix             per message: ignore 50%, corrupt 30%, behave 20%
 *   stale-read      a coordinated attack on the read-only path, with the network
 *                   adversary's help: the faulty backups send their PREPAREs/COMMITs
 *                   only to f correct "accomplices" (the lowest-numbered correct
 *                   backups); the network delays the accomplices' PREPAREs/COMMITs
 *                   to the other correct replicas
 *                   (asynchrony: allowed by PBFT's safety model); and the faulty
 *                   replica answers read-only GETs with the state of the
 *                   most-lagging correct replica (a Byzantine node can keep any
 *                   past state). The accomplices alone form certificates early;
 *                   with correct quorums nothing it does becomes visible before q
 *                   replicas prepared, but a replica that executes with fewer lets
 *                   a write be acknowledged that a read quorum of lagging replicas
 *                   plus the liar does not see (exposes the commit-quorum and
 *                   execute-before-commit bugs without a view change)
 *   equivocate      (a primary) sends PRE-PREPAREs whose batch is reversed to a
 *                   subset of the backups, and rewrites its COMMITs to match what
 *                   each backup got
 *   slow            every message it sends to a replica is held back by the network
 *                   adversary for a per-seed delay just under the request timeout
 *                   (60..95% of T): a primary that is slow but not slow enough to be
 *                   replaced
 *   bogus-vc        behaves in the normal case; its VIEW-CHANGEs claim batches it
 *                   never saw prepared (every P and Q entry gets a random digest and
 *                   the view just below the new one) and a wrong checkpoint (the
 *                   digest of its latest C entry is random); its NEW-VIEWs (when it
 *                   is the new primary) carry a wrong choice; all re-signed with its
 *                   own key. An equivocating primary's VIEW-CHANGEs likewise claim
 *                   its B batches prepared in the view just below the new one.
 *   lying-state     behaves, but every STATE chunk it serves has one byte of a
 *                   stored value flipped (re-MACed): a fetcher that does not check
 *                   the installed state against the signed checkpoint digest
 *                   installs a state no correct replica has
 *
 * Every random choice comes from the behaviour's own PRNG stream (seeded by the
 * run), so a seed replays exactly.
 */
#ifndef BFTKV_SIM_FAULTS_H
#define BFTKV_SIM_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/wire.h"
#include "tests/sim/cluster.h"
#include "common/prng.h"

enum fault_behaviour {
    FAULT_NONE = 0,
    FAULT_SILENT,
    FAULT_DROP,
    FAULT_CORRUPT_MAC,
    FAULT_CORRUPT_DIGEST,
    FAULT_WRONG_RESULT,
    FAULT_REPLAY,
    FAULT_MIX,
    FAULT_STALE_READ,
    FAULT_EQUIVOCATE,
    FAULT_SLOW,
    FAULT_BOGUS_VC,
    FAULT_LYING_STATE,
    FAULT_COUNT
};

/* Behaviours the random Byzantine mode draws from (equivocate needs a faulty
 * primary, which this issue does not have). */
#define FAULT_RANDOM_FIRST FAULT_SILENT
#define FAULT_RANDOM_LAST FAULT_STALE_READ

const char *fault_name(enum fault_behaviour b);
/* The behaviour named s, or -1. */
int fault_parse(const char *s);

#define FAULT_REPLAY_RING 32u
#define FAULT_EQUIV_RING 64u

struct faults;

struct fault_replica {
    struct faults *fs;
    uint16_t id;
    uint8_t behaviour;
    double drop_percent;
    uint64_t stale_delay_ns;  /* stale-read: the network's delay of the accomplices */
    uint64_t slow_delay_ns;   /* slow: the network's delay of everything it sends */
    struct prng rng;
    /* replay */
    struct {
        uint8_t *buf;
        uint32_t cap;
        uint32_t len;
        uint32_t to;
    } ring[FAULT_REPLAY_RING];
    uint32_t ring_len;
    uint32_t ring_next;
    /* equivocate */
    bool b_group[BFTKV_REPLICAS_MAX];
    struct {
        bool valid;
        uint64_t view;
        uint64_t seq;
        uint8_t da[32];
        uint8_t db[32];
        uint32_t len;
        uint8_t *msg; /* the B version of the PRE-PREPARE */
        uint32_t cap;
    } eq[FAULT_EQUIV_RING];
};

struct fault_stats {
    uint64_t dropped;
    uint64_t corrupted;
    uint64_t replayed;
    uint64_t fabricated;   /* replies with a made-up result */
    uint64_t equivocated;  /* PRE-PREPAREs sent in the B version */
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
    struct fault_stats stats;
    uint64_t request_timeout_ns;
    uint8_t *scratch;  /* BFTKV_DATAGRAM_MAX: a rewritten message */
    uint8_t *entries;  /* BFTKV_DATAGRAM_MAX: a rebuilt batch */
    struct wire_batch_entry *list; /* BFTKV_BATCH_REQUESTS_MAX */
    struct wire_vc_entry *vc;      /* 3 * (BFTKV_LOG_WINDOW_MAX + 1): a rebuilt VIEW-CHANGE's C, P, Q */
};

int faults_init(struct faults *fs, uint16_t n, uint16_t f);
void faults_destroy(struct faults *fs);

/* Make replica id faulty with behaviour b; seed seeds its PRNG stream. */
void faults_set(struct faults *fs, uint16_t id, enum fault_behaviour b, uint64_t seed);

void faults_set_key_lookup(struct faults *fs, fault_key_fn fn, void *arg);

/* Install the send filters of every faulty replica on the cluster. */
void faults_attach(struct faults *fs, struct cluster *cl);

/* The network adversary (install as the cluster's net filter, arg = fs): delays
 * the stale-read accomplices' PREPAREs and COMMITs to the other correct
 * replicas. */
enum cluster_net_verdict faults_net_adversary(void *arg, uint32_t from, uint32_t to, const uint8_t *msg,
                                              uint32_t len, uint64_t *delay_ns);

/* The request timeout T the replicas run with (slow draws its delay from it). */
void faults_set_request_timeout(struct faults *fs, uint64_t timeout_ns);

/* Is any faulty replica's behaviour b? */
bool faults_any(const struct faults *fs, enum fault_behaviour b);

#endif /* BFTKV_SIM_FAULTS_H */
