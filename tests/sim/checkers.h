/* The simulator's invariant checkers (docs/design.md §5.7), fed by the cluster's hooks:
 *
 *   agreement    every correct replica that executes sequence number n executes
 *                the same batch digest there (TOCS 2002 §4.2, the safety property
 *                of the normal case), and executes in increasing order;
 *   checkpoints  correct replicas' checkpoint state digests agree per sequence
 *                number;
 *   state        at the end, correct replicas that executed the same prefix hold
 *                stores with the same digest.
 *
 * Linearizability and "no acknowledged write lost" are checked by lincheck over
 * the workload's history (workload.h); liveness by the run driver (simrun.c).
 * Faulty replicas are excluded: they may run any code. The first violation is
 * kept as a message for the failure report.
 */
#ifndef BFTKV_SIM_CHECKERS_H
#define BFTKV_SIM_CHECKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"

#define CHECKERS_MSG_MAX 512u

struct checkers {
    uint16_t n;
    bool faulty[BFTKV_REPLICAS_MAX];
    /* agreement: digest of the batch executed at seq (index seq), first writer wins */
    uint8_t (*exec_digest)[32];
    uint16_t *exec_by;        /* which replica recorded it, +1 (0: none yet) */
    size_t exec_cap;
    uint64_t last_exec[BFTKV_REPLICAS_MAX];
    uint64_t executed_batches[BFTKV_REPLICAS_MAX];
    /* checkpoints: index seq / interval would need the interval; keep a small
     * open table keyed by seq instead. */
    uint64_t *cp_seq;
    uint8_t (*cp_digest)[32];
    uint16_t *cp_by;
    size_t cp_cap;            /* power of two */
    size_t cp_len;
    uint64_t checkpoints;     /* hook calls from correct replicas */
    /* outcome */
    uint32_t safety;          /* violations found (all kinds) */
    char first[CHECKERS_MSG_MAX];
};

int checkers_init(struct checkers *ck, uint16_t n, const bool *faulty);
void checkers_destroy(struct checkers *ck);

void checkers_on_exec(struct checkers *ck, uint16_t replica, uint64_t seq, const uint8_t digest[32]);
void checkers_on_checkpoint(struct checkers *ck, uint16_t replica, uint64_t seq, const uint8_t digest[32]);

/* Record a violation found elsewhere (lincheck, the state comparison). */
void checkers_violation(struct checkers *ck, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Highest sequence number executed by any correct replica. */
uint64_t checkers_max_executed(const struct checkers *ck);

#endif /* BFTKV_SIM_CHECKERS_H */
