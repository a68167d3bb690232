/* A handle on a partitioned deployment (docs/design.md §6.3): a config file
 * with deployment_map and admin_pub lines opens a routing handle, which holds
 * the map (verified with the admin key at open; a map that does not verify is
 * refused) and one ordinary handle per partition, each opened on that
 * partition's group (cluster_deployment_group: its R nodes, the partition as
 * the wire's group). Every call takes the handle of its key's partition
 * (cluster_map_key_partition, the fixed public hash every node computes too),
 * so a request goes to its partition's primary and a read-only GET to the
 * partition's replicas, as in a single group. The API stays the same for the
 * caller: the routing handle is a struct bftkv_client whose `part` is set.
 * A file with deployment_seeds instead of a map discovers it first
 * (client/client_discover.c).
 *
 * Each partition's handle keeps what is per group: its engine client, its own
 * leased lanes (its session files carry the group, client/client_session.c),
 * slots, FIFO and mutex, replica addresses and auth context. The routing handle
 * runs ONE I/O thread and ONE socket for all of them (client/client_loop.c):
 * each received message goes to the partition its header's group names, so a
 * node's replies of different partitions, which share datagrams, are served in
 * one wake-up; every partition's lease publishes that socket's address. With
 * P partitions a routing handle costs one thread and two sockets (the socket
 * and its wake-up socket), as a handle on one group does.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "bftkv/errors.h"
#include "client/client_internal.h"
#include "common/assert.h"
#include "common/errbuf.h"

int client_route_open(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                      struct bftkv_client **out)
{
    char err[BFTKV_CONFIG_ERR_MAX];
    struct cluster_map *map = NULL;
    int rc = client_map_get(cfg, client_id, &map, err, sizeof err);
    if (rc != 0) {
        errbuf_put(opt->err, opt->errlen, "%s", err);
        return rc;
    }
    if (client_id >= map->clients || !map->client[client_id].allowed) {
        errbuf_put(opt->err, opt->errlen, "%s: client %u is not in the deployment map's allow-list", cfg->name,
                   client_id);
        cluster_map_free(map);
        return BFTKV_E_CONFIG;
    }
    struct bftkv_client *r = calloc(1, sizeof *r);
    uint32_t parts = map->params.partitions;
    struct bftkv_client **part = calloc(parts, sizeof *part);
    if (r == NULL || part == NULL) {
        free(r);
        free(part);
        cluster_map_free(map);
        return BFTKV_E_NOMEM;
    }
    r->id = client_id;
    r->map = map;
    r->part = part;
    r->parts = parts;
    rc = client_epoch_init(r, cfg);
    const char *bind_host = NULL;
    struct bftkv_config *g0 = NULL; /* partition 0's: the socket's buffer sizes */
    for (uint32_t p = 0; rc == 0 && p < parts; p++) {
        struct bftkv_config *g = NULL;
        const char *host = NULL;
        rc = cluster_deployment_group(cfg, map, p, &g, opt->err, opt->errlen);
        if (rc == 0)
            rc = client_open_part(g, client_id, opt, &part[p], &host);
        if (rc == 0 && p > 0 && part[p]->replica_addr[0].ss_family != part[0]->replica_addr[0].ss_family) {
            errbuf_put(opt->err, opt->errlen, "%s: partition %u's nodes are not of partition 0's address family",
                       cfg->name, p);
            rc = BFTKV_E_CONFIG;
        }
        if (rc == 0 && bind_host != NULL && strcmp(host, bind_host) != 0)
            host = part[0]->replica_addr[0].ss_family == AF_INET6 ? "::" : "0.0.0.0"; /* loopback and not */
        if (rc == 0)
            bind_host = host;
        if (p == 0)
            g0 = g;
        else
            bftkv_config_free(g);
    }
    if (rc == 0) {
        r->own_io = calloc(1, sizeof *r->own_io);
        r->io = r->own_io;
        rc = r->io == NULL ? BFTKV_E_NOMEM : client_loop_open(r->io, part, parts, bind_host, g0, opt);
    }
    bftkv_config_free(g0);
    if (rc == 0)
        rc = client_loop_start(r->io);
    if (rc != 0) {
        client_route_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

struct bftkv_client *client_route(struct bftkv_client *r, const void *key, size_t klen)
{
    BFTKV_ASSERT(r->part != NULL);
    if (key == NULL && klen > 0)
        return r->part[0]; /* the handle refuses the arguments */
    client_epoch_check(r); /* a node said a newer map exists: fetch it first (client/client_epoch.c) */
    return r->part[cluster_map_key_partition(client_epoch_map(r), key, klen)];
}

void client_route_close(struct bftkv_client *r)
{
    for (uint32_t p = 0; p < r->parts; p++)
        if (r->part[p] != NULL)
            client_close_begin(r->part[p]);
    if (r->io != NULL)
        client_loop_stop(r->io);
    for (uint32_t p = 0; p < r->parts; p++)
        if (r->part[p] != NULL)
            client_close_finish(r->part[p]);
    if (r->own_io != NULL) {
        client_loop_destroy(r->own_io);
        free(r->own_io);
    }
    free(r->part);
    cluster_map_free(r->map);
    client_epoch_free(r);
    free(r);
}

void client_route_stats(struct bftkv_client *r, struct bftkv_client_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (uint32_t p = 0; p < r->parts; p++) {
        struct bftkv_client_stats s = {.struct_size = sizeof s};
        if (bftkv_client_stats(r->part[p], &s) != 0)
            continue;
        sum->submitted += s.submitted;
        sum->completed += s.completed;
        sum->timeouts += s.timeouts;
        sum->late_results += s.late_results;
        sum->queue_full += s.queue_full;
        sum->retransmissions += s.retransmissions;
        sum->readonly_fallbacks += s.readonly_fallbacks;
        sum->replies_dropped += s.replies_dropped;
        sum->in_flight += s.in_flight;
        sum->queued += s.queued;
        sum->replies_forwarded += s.replies_forwarded;
        sum->probes_sent += s.probes_sent;
        sum->readonly_timeouts += s.readonly_timeouts;
        sum->readonly_resends += s.readonly_resends;
        sum->readonly_retries += s.readonly_retries;
        sum->stale_reads += s.stale_reads;
        sum->stale_moves += s.stale_moves;
        if (p == 0) {
            sum->lanes = s.lanes; /* per partition: every partition's handle leases alike */
            sum->lane_base = s.lane_base;
        }
    }
    if (r->io != NULL) { /* one socket for every partition: counted once */
        client_loop_datagrams(r->io, &sum->datagrams_sent, &sum->datagrams_received);
        client_epoch_stats(r, sum);
    }
}

int client_route_node_stats(const struct bftkv_config *cfg, uint16_t client_id, uint16_t node, int timeout_ms,
                            char *json, size_t cap, size_t *len, char *err, size_t errlen)
{
    struct cluster_map *map = NULL;
    int rc = client_map_get(cfg, client_id, &map, err, errlen);
    if (rc != 0)
        return rc;
    int idx = cluster_map_node_index(map, node);
    int slot = BFTKV_E_NOT_FOUND;
    uint32_t p = 0;
    for (; idx >= 0 && p < map->params.partitions && slot < 0; p++)
        slot = cluster_deployment_slot(map, (uint16_t)idx, p);
    if (slot < 0) {
        errbuf_put(err, errlen, "stats: node %u is not in %s's map, or hosts no partition", node, cfg->name);
        cluster_map_free(map);
        return BFTKV_E_INVAL;
    }
    struct bftkv_config *g = NULL;
    rc = cluster_deployment_group(cfg, map, p - 1u, &g, err, errlen);
    cluster_map_free(map);
    if (rc != 0)
        return rc;
    rc = bftkv_client_replica_stats(g, client_id, (uint16_t)slot, timeout_ms, json, cap, len, err, errlen);
    bftkv_config_free(g);
    return rc;
}
