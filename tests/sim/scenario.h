/* One seed's scenario as simrun.c draws it (simrun.h), and the two halves of a
 * run: draw the scenario, run it. A deployment (deploy.h) draws one scenario for
 * its nodes and runs, per partition, a scenario mapped from it.
 */
#ifndef BFTKV_SIM_SCENARIO_H
#define BFTKV_SIM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "tests/sim/cluster.h"
#include "tests/sim/links.h"
#include "tests/sim/netsim.h"
#include "tests/sim/restarts.h"
#include "tests/sim/simrun.h"
#include "tests/sim/swarm.h"
#include "tests/sim/workload.h"

/* Adds the run's network partitions to its network, instead of the drawn ones. */
typedef void (*scenario_net_fn)(const void *arg, struct netsim *ns);

struct scenario {
    struct cluster_config cc;
    struct workload_config wc;
    bool readonly[BFTKV_CLIENTS_MAX];
    bool faulty[BFTKV_REPLICAS_MAX];
    uint8_t behaviour[BFTKV_REPLICAS_MAX];
    uint32_t nparts;
    uint64_t part_start[SIM_PARTITIONS_MAX];
    uint64_t part_end[SIM_PARTITIONS_MAX];
    uint64_t part_seed;
    uint64_t gst_ns;
    /* crash-restart (all mode): replicas that lose all memory at crash_at and
     * come back, empty, at restart_at (before GST) */
    bool crash[BFTKV_REPLICAS_MAX];
    uint64_t crash_at[BFTKV_REPLICAS_MAX];
    uint64_t restart_at[BFTKV_REPLICAS_MAX];
    bool excluded[BFTKV_REPLICAS_MAX]; /* faulty or crashed: not checked */
    bool crashed_once[BFTKV_REPLICAS_MAX];
    /* the restart shape (restart mode; one seed in four of all mode) */
    struct restart_plan restart;
    /* the link shapes (links mode; one seed in four of all mode) */
    struct link_plan links;
    /* all mode: the classes the seed turned on (swarm.h); its isolating
     * partition goes into the network with the others */
    struct swarm swarm;
    /* NULL: the partitions and link shapes above go into the network
     * (scenario_net_apply); else this adds the network's partitions (a
     * deployment's partition: the nodes' plan mapped to its replicas). */
    scenario_net_fn net_apply;
    const void *net_apply_arg;
};

/* Draw the scenario of seed for o (n replicas, or a deployment's n nodes). 0 or
 * BFTKV_E_INVAL. */
int simrun_draw(const struct sim_options *o, uint64_t seed, struct scenario *s, char *desc, size_t desc_cap);

/* Add the scenario's partitions and link shapes to ns, whose nodes are n
 * replicas and then clients. */
void scenario_net_apply(const struct scenario *s, struct netsim *ns, uint16_t n, uint32_t nodes);

/* Run s (drawn for o; s->cc.keys and client_readonly are set here) with the
 * seed's streams of faults and workload derived from seed, and check it; the
 * figures and verdict go to res, whose scenario line the caller wrote. */
int simrun_scenario(const struct sim_options *o, struct sim_context *ctx, struct scenario *s, uint64_t seed,
                    struct sim_result *res);

#endif /* BFTKV_SIM_SCENARIO_H */
