/* A partitioned deployment in the simulator (bftkv-sim --deployment M:R:P;
 * docs/design.md §6): M nodes, the key space cut into P partitions, each
 * partition a PBFT group of R replicas tolerating f = (R-1)/3, placed on the
 * nodes by cluster_placement_rendezvous (cluster/placement.c, the function the
 * runtime routes with; node i has id i + 1). Replica j of partition p is the
 * j-th node of its replica set; it runs as an engine pbft_replica with
 * cfg.group = p + 1 and id = j, and the wire's group field carries p + 1.
 *
 * Faults belong to nodes. One scenario is drawn per seed for the M nodes (the
 * same draws as a group of M replicas: network, partitions and link shapes over
 * the nodes and the clients, Byzantine and crashed nodes, the restart shape),
 * and each partition runs that scenario mapped to its replicas: a Byzantine
 * node misbehaves, with its one behaviour, in every partition it hosts; a
 * crashed, paused or wiped node is so in all of them at the same instants; a
 * network partition or a cut link between nodes cuts every group whose
 * replicas sit on both sides. Since at most f nodes are faulty (Byzantine or
 * crashed) in the whole deployment, no partition has more than f; the restart
 * shape takes down up to q(M) nodes, and a partition left with fewer than
 * q(R) replicas holding state must refuse, as a single group does.
 *
 * Each partition runs on its own instance of the simulated network, all of them
 * built from the nodes' plan: the same loss, duplication and jitter, the same
 * GST, the same partitions and link shapes (an instance per partition rather
 * than one network carrying every group's messages: no message crosses groups,
 * so the runs are independent and each checks as a group of its own). Client c
 * has one engine client per partition (pbft_client, group p + 1), and that
 * client's closed loop runs R operations (--requests) over keys that route to p
 * (cluster_key_partition). Every checker of a single group runs per partition:
 * agreement and order, checkpoints, states, per-key linearizability with the
 * final reads (no acknowledged write lost), completions, liveness and rejoin.
 */
#ifndef BFTKV_SIM_DEPLOY_H
#define BFTKV_SIM_DEPLOY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tests/sim/simrun.h"

/* Partitions of a deployment at most (a power of two). */
#define DEPLOY_PARTITIONS_MAX 1024u

/* Run one seed of the deployment o->deploy_nodes : o->n : o->deploy_partitions
 * (f = o->f). 0, or a negative error for bad options. */
int deploy_run_one(const struct sim_options *o, struct sim_context *ctx, uint64_t seed, struct sim_result *res);

struct scenario;
struct netsim;

/* Partition p's scenario from the nodes' one, its replica set being set[0..r):
 * who is faulty and how, who crashes when, the restart shape (the partition
 * refuses when fewer than q(R) of its replicas keep their state); the rest is
 * the nodes' scenario as drawn. */
void deploy_partition_scenario(const struct scenario *nodes, const uint16_t *set, uint16_t r, uint16_t f,
                               bool durable, struct scenario *s);

/* Add every partition of nodes_net (m nodes, then the clients) to ns (r
 * replicas, then the clients) with the marks of set's nodes and the clients. */
void deploy_partition_net(const struct netsim *nodes_net, const uint16_t *set, uint16_t r, uint16_t m,
                          uint16_t clients, struct netsim *ns);

/* One line: the deployment, and per node how many partitions' replicas it
 * hosts and of how many it is the primary of view 0 (replica 0); with sets,
 * every partition's replica set too. */
void deploy_describe(const struct sim_options *o, FILE *f, bool sets);

#endif /* BFTKV_SIM_DEPLOY_H */
