/* The restart shape: k replicas go down together and come back, with or
 * without their memory (docs/design.md "Restarts", tests/sim/README.md).
 *
 * At one moment -- once a drawn number of the workload's regular operations
 * completed, so there are acknowledged writes to lose -- k replicas, 1 <= k <= q
 * with q = ceil((n + f + 1) / 2), go down at once. Each either
 *
 *   - loses its memory: crashed (replica and store destroyed) and, later,
 *     recreated with an empty store and pbft_replica_config.restarted, so it
 *     is unsure until q replicas holding state vouch for it; or
 *   - keeps it: paused, as a process stopped and continued (cluster_replica_pause):
 *     it hears and sends nothing while down, then goes on where it was.
 *
 * Each comes back after its own drawn delay. A paused replica is correct (it was
 * only slow), so the checkers keep watching it; one that lost its memory is
 * excluded from the replica checks, like any crash-restarted replica.
 *
 * What must happen next depends on how many replicas kept their state, h = n -
 * wiped (paused replicas included):
 *
 *   h >= q    the group recovers: after the faults end, liveness as usual, and
 *             every replica that is not Byzantine holds state again;
 *   h < q     the group must refuse for good: every operation invoked after the
 *             moment gets BFTKV_E_NO_STATE (never a value or NOT_FOUND, which
 *             would come from an empty store), the refusals themselves arrive
 *             within the liveness bound, and no wiped replica holds state.
 *
 * (An earlier engine let f+1 holders vouch; this shape found that a group with
 * f+1 .. q-1 of them lost committed batches, tests/sim/README.md.) Byzantine
 * replicas are drawn outside the restart set,
 * and only while wiped + Byzantine <= f (a replica that lost its memory counts against f until the
 * views move past what it may have voted for); with more than f wiped there are
 * none.
 */
/* Durable replicas (bftkv-sim --durable) keep their disks: a crash-restart
 * rebuilds the replica from its records (engine/recover.c), so it is correct and
 * holds state again, and the group never has to refuse. The set that goes down
 * is then drawn from 1..n: one plan in four crashes every replica at once (a
 * power cut), and the checkers keep watching all of them. One durable plan in
 * four also takes the disks of 1..wiped of the crashed replicas (a wiped data
 * directory): those restart empty and unsure, count against f, and the group
 * must refuse when fewer than q replicas kept a memory (in RAM or on disk). */
#ifndef BFTKV_SIM_RESTARTS_H
#define BFTKV_SIM_RESTARTS_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "tests/sim/checkers.h"
#include "tests/sim/cluster.h"
#include "common/prng.h"
#include "tests/sim/workload.h"

/* How long a replica stays down: 1..60 ms, like the crash-restarts of all mode. */
#define RESTART_DOWN_MIN_NS 1000000ull
#define RESTART_DOWN_MAX_NS 60000000ull

struct restart_plan {
    bool on;
    uint16_t k;                                 /* replicas that go down together */
    uint16_t wiped;                             /* of them, those that lose their memory */
    bool member[BFTKV_REPLICAS_MAX];
    bool wipe[BFTKV_REPLICAS_MAX];              /* member: crash-restart (else pause) */
    uint64_t down_ns[BFTKV_REPLICAS_MAX];       /* member: how long it stays down */
    uint64_t trigger_ops;                       /* down once this many regular ops completed */
    uint64_t trigger_ns;                        /* non-zero: down at this simulated time
                                                   instead (a deployment's partitions go
                                                   down when its first one did, deploy.h) */
    bool refuse;                                /* n - wiped < q: the group must refuse */
    bool durable;                               /* crash-restarts keep the disk ... */
    uint16_t disks_lost;                        /* ... except these (durable): the
                                                   replica restarts empty (a wiped
                                                   data directory) */
    bool lose_disk[BFTKV_REPLICAS_MAX];
};

/* Draw a plan for n replicas tolerating f, whose workload completes
 * regular_total operations (the trigger is drawn in [total/10, total]). */
void restart_plan_draw(struct restart_plan *p, struct prng *rng, uint16_t n, uint16_t f, uint64_t regular_total,
                       bool durable);

/* The plan carried out during one run. */
struct restart_run {
    const struct restart_plan *plan;
    uint16_t n;
    uint16_t f;
    bool went_down;
    bool is_down[BFTKV_REPLICAS_MAX];
    uint64_t back_ns[BFTKV_REPLICAS_MAX];
    uint16_t down_now;
    uint64_t down_at_ns;
    uint64_t all_back_ns;                       /* when the last one came back */
};

void restart_run_init(struct restart_run *rr, const struct restart_plan *p, uint16_t n, uint16_t f);

/* Call before every step of the run loop: takes the set down when the trigger is
 * reached (and tells the workload what answers may come), and brings a replica
 * back once its time comes before anything else in the cluster. true when it
 * acted: the caller looks again before stepping. */
bool restart_run_poll(struct restart_run *rr, struct cluster *cl, struct workload *wl);

/* Nothing is left to happen: no plan, or every member is back. */
bool restart_run_settled(const struct restart_run *rr);

/* Replicas that are up, not Byzantine, and say they hold no state. */
uint16_t restart_unsure_count(struct cluster *cl, uint16_t n, const bool *byzantine);

/* The end of a refusing run: no replica that lost its memory may hold state
 * (a safety violation otherwise: it would serve an uncertified state). */
void restart_run_check_refused(const struct restart_run *rr, struct cluster *cl, struct checkers *ck);

#endif /* BFTKV_SIM_RESTARTS_H */
