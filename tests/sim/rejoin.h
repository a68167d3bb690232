/* The liveness check "every correct replica rejoins" (tests/sim/README.md
 * "What every run checks").
 *
 * PBFT's liveness is the group's: clients keep getting answers once the network
 * is synchronous (TOCS 2002 §4.5.2). A replica can still be left behind -- alone
 * in a view change nobody joined, following the group by state transfer but
 * voting in no quorum -- and the group then runs with one of its f tolerated
 * faults used up. This check fails such a seed.
 *
 * The heal H: GST, with every crashed or paused replica back. From H on, the
 * group's view is the view in which q replicas holding state are active (not in
 * a view change); there is at most one, as 2q > n. Byzantine replicas count
 * toward q by their engine's view (the group may well run with one) but are not
 * checked. A correct replica holding state is inside when it is active in the
 * group's view, outside otherwise (in a view change, active in another view, or
 * there is no group's view). While the group's view has a Byzantine primary
 * every replica counts as inside: such a primary need not step down for a
 * replica it keeps out, and PBFT's liveness then rests on the others timing it
 * out once it stops cooperating.
 *
 * The seed fails when a replica stays outside longer than the bound
 *
 *     B = 2 x the view-change timeout + T
 *
 * where the view-change timeout is the largest current one among the correct
 * replicas holding state (pbft_replica_viewchange_timeout_ns: it starts at T and grows
 * after failed view changes), and T, the request timeout, is the slack for the
 * messages a rejoin needs after the timeouts: a VIEW-CHANGE retransmitted every
 * T/4, the VIEW-CHANGEs of a new view, its NEW-VIEW, a state transfer; after GST
 * a message takes at most latency + 20 us. A replica is outside since H, or
 * since the moment it was last seen leaving the group's view (or starting to
 * hold state) after H. A replica that leaves the group's view and comes back
 * within B -- a view change of the whole group -- passes.
 *
 * After the workload ends the run goes on for one bound more and until every
 * correct replica holding state is inside, so a replica that leaves once the
 * load stops, or never came back, is caught too.
 */
#ifndef BFTKV_SIM_REJOIN_H
#define BFTKV_SIM_REJOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "tests/sim/cluster.h"

#define REJOIN_INSIDE UINT64_MAX

struct rejoin {
    uint16_t n;
    uint16_t q;
    bool byzantine[BFTKV_REPLICAS_MAX];
    uint64_t slack_ns;                        /* T */
    bool started;
    uint64_t heal_ns;
    uint64_t out_since[BFTKV_REPLICAS_MAX];   /* REJOIN_INSIDE, or since when outside */
    uint64_t group_view;                      /* UINT64_MAX: no view has q active */
    uint64_t viewchange_timeout_ns;                   /* the largest current view-change timeout */
    uint64_t bound_ns;                        /* B, as of the last observation */
    uint64_t max_bound_ns;                    /* the largest B of the run */
    uint64_t max_outside_ns;                  /* the longest time a replica was outside */
    bool failed;
    char what[480];
};

void rejoin_init(struct rejoin *rj, uint16_t n, uint16_t f, const bool *byzantine, uint64_t request_timeout_ns);

/* The heal: the check starts at now (every replica is inside or outside since now). */
void rejoin_start(struct rejoin *rj, struct cluster *cl, uint64_t now_ns);

/* Look at the replicas after a step at now_ns. */
void rejoin_observe(struct rejoin *rj, struct cluster *cl, uint64_t now_ns);

/* When the first outside replica's bound runs out if nothing changes first;
 * UINT64_MAX when every replica is inside (or the check has not started). */
uint64_t rejoin_deadline(const struct rejoin *rj);

/* The time is at_ns >= rejoin_deadline(): the seed fails; the message names the
 * replica, its view, the group's view, since when, and the bound. */
void rejoin_fail(struct rejoin *rj, struct cluster *cl, uint64_t at_ns);

/* After the workload: run one bound more, and until every replica is inside
 * (starting the check now if it has not started). false when a bound ran out
 * (rejoin_fail has recorded it); true also when steps_max is reached. */
bool rejoin_settle(struct rejoin *rj, struct cluster *cl, uint64_t steps_max);

#endif /* BFTKV_SIM_REJOIN_H */
