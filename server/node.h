/* A node of a partitioned deployment (docs/design.md §6.3): one process that
 * hosts one replica (a struct server, server/server.h) per partition the
 * deployment map places on it, behind one UDP socket on the node's address
 * per protocol thread.
 *
 * Each hosted replica is the single-group runtime unchanged, built from the
 * partition's group (cluster_deployment_group: group = partition, n = R, the
 * node's index in the partition's replica set as its id) with the node's one
 * key pair: its own engine, store, auth context, address book, counters and
 * timers. The node adds the demultiplexing: a datagram's messages each go to
 * the replica of the wire header's group field (a message for a partition the
 * node does not hold is dropped and counted as the wire's BAD_GROUP), and every
 * replica queues what it sends on the shared socket, so messages of different
 * groups bound for the same node share datagrams (net/udp.h coalescing) and
 * leave in one flush per loop iteration.
 *
 * Layout: `protocol_threads K` threads (default 1). Partition p runs on thread
 * p mod K of every node, and thread t's socket listens on the node's port
 * + t * M (cluster_deployment_group gives every process the same addresses),
 * so each thread receives only its own partitions' messages and no datagram is
 * handed between threads. Each thread runs the single layout's loop
 * (server/server_single.c) over its replicas: timers of each, one poll, each
 * message to its replica, one flush; messages of its partitions bound for the
 * same node share datagrams. The staged layout and durability other than none
 * are refused for a deployment for now (server_node_create says so).
 */
#ifndef BFTKV_SERVER_NODE_H
#define BFTKV_SERVER_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "engine/auth.h"
#include "net/udp.h"
#include "server/byzantine.h"
#include "server/server_marker.h"

struct server_node_options {
    const struct bftkv_config *cfg; /* the deployment's file; must outlive the node */
    const struct cluster_map *map;  /* verified (cluster_deployment_open); must outlive the node */
    uint16_t node;                  /* this node: an index into map->node[] */
    enum net_backend backend;
    const struct auth_keypair *keys; /* the node's (cluster_deployment_node_identity); copied */
    enum byz_mode byzantine;         /* faulty in every partition it hosts */
    uint64_t byzantine_seed;
    enum server_start_mode start;    /* each hosted replica's marker (server/server_marker.h) */
};

struct server_node;

/* Build every hosted replica (markers in data_dir/partition-<p>/replica-<i>).
 * Binds nothing. 0; BFTKV_E_CONFIG with a message (staged layout, durability,
 * a node that holds no partition, what server_create refuses), BFTKV_E_NOMEM.
 * INIT_ONLY writes the markers and leaves *out NULL. */
int server_node_create(const struct server_node_options *opt, struct server_node **out, char *err, size_t errlen);

/* Bind the node's address and start its thread: 0 or the transport's error. */
int server_node_start(struct server_node *n);
void server_node_stop(struct server_node *n);
bool server_node_failed(const struct server_node *n);
/* Serve the node's metrics on host:port (server/metrics_http.h): one endpoint,
 * every hosted replica's series labelled with its partition. After start. */
struct metrics_http;
int server_node_metrics_start(struct server_node *n, const char *host, uint16_t port, struct metrics_http **out,
                              char *err, size_t errlen);
void server_node_destroy(struct server_node *n);

/* bftkv-server for a deployment's file (server/node_run.c): --id is the node
 * id in the map. Verifies the map, loads the node's key, runs the node until
 * SIGTERM/SIGINT. Returns the process's exit code (0, 1 runtime, 2 config). */
struct server_node_args {
    uint64_t node_id;
    enum net_backend backend;
    enum byz_mode byzantine;
    uint64_t byzantine_seed;
    enum server_start_mode start;
};
int server_node_run(const struct bftkv_config *cfg, const struct server_node_args *a);

#endif /* BFTKV_SERVER_NODE_H */
