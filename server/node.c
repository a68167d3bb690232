/* A node of a partitioned deployment (server/node.h): the hosted replicas,
 * and the loops that drive them: one per protocol thread, each with its own
 * socket and the partitions p with p mod K = its index (server/node.h). */
#include "server/node.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "common/log.h"
#include "server/metrics_http.h"
#include "server/node_map.h"
#include "server/server_internal.h"

/* One protocol thread: its socket, its groups, the nodes it hears from. */
struct node_loop {
    struct server_node *node;
    uint16_t index;               /* t: partitions p with p mod K = t */
    uint32_t groups;
    uint32_t *group;              /* [groups]: indexes into the node's g[] */
    /* The nodes sharing one of this loop's groups, by node index (alen 0:
     * none), at the port of their thread t: a datagram from one of them is a
     * replica's (server_budget_take). */
    struct sockaddr_storage *node_addr;
    socklen_t *node_alen;
    struct net_udp *udp;
    struct node_map_server maps; /* map discovery's answers (server/node_map.h) */
    pthread_t thread;
    bool running;
};

struct server_node {
    const struct bftkv_config *cfg;
    const struct cluster_map *map;
    uint16_t node;
    enum net_backend backend;
    uint32_t groups;              /* partitions hosted */
    uint32_t *partition;          /* [groups], increasing */
    struct bftkv_config **gcfg;   /* [groups]: each partition's group */
    struct server **g;            /* [groups] */
    struct server **by_partition; /* [P]: the hosted replica, NULL where none */
    uint16_t threads;             /* K, the config's protocol_threads */
    struct node_loop *loop;       /* [K] */
    atomic_bool stop;
    atomic_bool failed;
    bool started, joined;
};

/* ---- Creation ---------------------------------------------------------------------- */

static int node_group_add(struct server_node *n, const struct server_node_options *opt, uint32_t p, uint16_t slot,
                          char *err, size_t errlen)
{
    uint32_t k = n->groups;
    int rc = cluster_deployment_group(opt->cfg, opt->map, p, &n->gcfg[k], err, errlen);
    if (rc != 0)
        return rc;
    n->partition[k] = p;
    n->groups++;
    bool restarted = false;
    rc = server_marker_open(n->gcfg[k], slot, opt->start, &restarted, err, errlen);
    if (rc != 0 || opt->start == SERVER_START_INIT_ONLY)
        return rc;
    struct server_options so = {
        .cfg = n->gcfg[k],
        .id = slot,
        .backend = opt->backend,
        .keys = opt->keys,
        .byzantine = opt->byzantine,
        .byzantine_seed = opt->byzantine_seed + p, /* independent choices per partition */
        .restarted = restarted,
    };
    rc = server_create(&so, &n->g[k], err, errlen);
    if (rc != 0)
        return rc;
    n->by_partition[p] = n->g[k];
    struct node_loop *l = &n->loop[p % n->threads];
    l->group[l->groups++] = k;
    n->g[k]->log_ctx.node = opt->map->node_id[opt->node]; /* its lines: node=N partition=P view=V */
    const uint16_t *set = cluster_map_partition_replicas(opt->map, p);
    for (uint16_t i = 0; i < n->g[k]->n; i++) {
        l->node_addr[set[i]] = n->g[k]->replica_addr[i];
        l->node_alen[set[i]] = n->g[k]->replica_alen[i];
    }
    return 0;
}

int server_node_create(const struct server_node_options *opt, struct server_node **out, char *err, size_t errlen)
{
    if (opt == NULL || opt->cfg == NULL || opt->map == NULL || opt->keys == NULL || out == NULL ||
        opt->node >= opt->map->m)
        return BFTKV_E_INVAL;
    *out = NULL;
    const struct bftkv_config *cfg = opt->cfg;
    const struct cluster_map *map = opt->map;
    if (cfg->threads != BFTKV_CONFIG_THREADS_SINGLE) {
        errbuf_put(err, errlen, "%s: a deployment node runs 'threads single' for now (the staged layout hosts "
                   "one group only)", cfg->name);
        return BFTKV_E_CONFIG;
    }
    struct server_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        return BFTKV_E_NOMEM;
    n->cfg = cfg;
    n->map = map;
    n->node = opt->node;
    n->backend = opt->backend;
    atomic_init(&n->stop, false);
    atomic_init(&n->failed, false);
    uint32_t parts = map->params.partitions;
    n->partition = calloc(parts, sizeof *n->partition);
    n->gcfg = calloc(parts, sizeof *n->gcfg);
    n->g = calloc(parts, sizeof *n->g);
    n->by_partition = calloc(parts, sizeof *n->by_partition);
    n->threads = cfg->protocol_threads > 0 ? cfg->protocol_threads : 1u;
    n->loop = calloc(n->threads, sizeof *n->loop);
    int rc = 0;
    if (n->partition == NULL || n->gcfg == NULL || n->g == NULL || n->by_partition == NULL || n->loop == NULL)
        rc = BFTKV_E_NOMEM;
    for (uint16_t t = 0; rc == 0 && t < n->threads; t++) {
        struct node_loop *l = &n->loop[t];
        l->node = n;
        l->index = t;
        l->group = calloc(parts, sizeof *l->group);
        l->node_addr = calloc(map->m, sizeof *l->node_addr);
        l->node_alen = calloc(map->m, sizeof *l->node_alen);
        if (l->group == NULL || l->node_addr == NULL || l->node_alen == NULL)
            rc = BFTKV_E_NOMEM;
        if (rc == 0)
            rc = node_map_server_init(&l->maps, map);
    }
    for (uint32_t p = 0; rc == 0 && p < parts; p++) {
        int slot = cluster_deployment_slot(map, opt->node, p);
        if (slot >= 0)
            rc = node_group_add(n, opt, p, (uint16_t)slot, err, errlen);
    }
    if (rc == 0 && n->groups == 0) {
        errbuf_put(err, errlen, "%s: node %u holds no partition of the map (M = %u, R = %u, P = %u)", cfg->name,
                   map->node_id[opt->node], map->m, map->params.rf, parts);
        rc = BFTKV_E_CONFIG;
    }
    if (rc != 0 || opt->start == SERVER_START_INIT_ONLY) {
        server_node_destroy(n);
        return rc;
    }
    *out = n;
    return 0;
}

/* ---- The loop -------------------------------------------------------------------------- */

static bool node_src_known(const struct node_loop *l, const struct sockaddr_storage *src, socklen_t srclen)
{
    for (uint16_t i = 0; i < l->node->map->m; i++)
        if (l->node_alen[i] != 0 && server_addr_same(&l->node_addr[i], src, srclen))
            return true;
    return false;
}

/* One datagram: the framing, then each message to the replica of its group
 * with one message budget for the whole datagram (server_budget_take: the
 * budgets bound what one datagram can cost, whatever groups it carries). A
 * group of another loop is dropped like one the node does not host: the
 * sender addressed the wrong thread's port. */
static void node_rx(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                    size_t len)
{
    struct node_loop *l = arg;
    struct server_node *n = l->node;
    struct server *first = n->g[l->group[0]];
    uint32_t count = 0;
    if (!server_framing_ok(data, len, &count)) {
        server_count(first, SERVER_CTR_bad_datagram, 1);
        return;
    }
    struct server_budget budget;
    server_budget_init(&budget);
    budget.from_replica = node_src_known(l, src, srclen) ? 1 : 0;
    bool counted = false;
    size_t off = 0;
    while (off < len) {
        const uint8_t *msg = data + off;
        size_t size = server_msg_size(msg);
        off += size;
        if (msg[3] == WIRE_MAP_REQUEST) {
            /* Not a group's: the node answers with the map it serves. */
            size_t r = node_map_answer(&l->maps, msg, size, count == 1, server_now_ns());
            if (r > 0)
                first->out_addr(first, src, srclen, l->maps.reply, r);
            continue;
        }
        uint16_t group = le16_load(msg + 4);
        struct server *s = group < n->map->params.partitions && group % n->threads == l->index
                               ? n->by_partition[group]
                               : NULL;
        if (s == NULL) {
            atomic_fetch_add_explicit(&first->rx_drops[WIRE_DROP_BAD_GROUP], 1, memory_order_relaxed);
            /* A client's request for a group this node does not host: tell it
             * this node's map epoch (docs/design.md §6.3), within the rates of
             * server/node_map.h. A group of another thread is not refused: the
             * node hosts it, the client only addressed the wrong port. */
            bool hosted = group < n->map->params.partitions && n->by_partition[group] != NULL;
            size_t r = hosted ? 0 : node_map_refuse(&l->maps, msg, size, server_now_ns());
            if (r > 0)
                first->out_addr(first, src, srclen, l->maps.notice, r);
            continue;
        }
        if (!counted) {
            server_count(s, SERVER_CTR_datagrams_received, 1);
            counted = true;
        }
        if (!server_budget_take(s, &budget, src, srclen, msg[3]))
            continue;
        struct server_msg m;
        if (server_msg_decode(s, msg, size, false, &m))
            server_msg_handle(s, src, srclen, &budget.from_replica, &m);
    }
}

static void *node_main(void *arg)
{
    struct node_loop *l = arg;
    struct server_node *n = l->node;
    for (uint32_t j = 0; j < l->groups; j++)
        server_recovery_finish(n->g[l->group[j]]);
    while (!atomic_load_explicit(&n->stop, memory_order_acquire)) {
        int wait_ms = SERVER_POLL_MS_MAX;
        for (uint32_t j = 0; j < l->groups; j++) {
            int w = server_timers_run(n->g[l->group[j]]);
            wait_ms = w < wait_ms ? w : wait_ms;
        }
        if (net_udp_pending(l->udp) > 0)
            wait_ms = 0; /* a tick produced messages: send them first */
        for (uint32_t j = 0; wait_ms > 0 && j < l->groups; j++)
            if (server_single_hold_busy(n->g[l->group[j]]))
                wait_ms = 0; /* a durable replica's messages wait for its log: see to them first */
        for (uint32_t j = 0; wait_ms > 0 && j < l->groups; j++)
            server_clock_stale(n->g[l->group[j]]); /* the poll may wait: the first message reads the clock */
        int got = net_udp_poll(l->udp, wait_ms, node_rx, l);
        if (got < 0) {
            log_error("receive failed: %s", bftkv_strerror(got));
            atomic_store_explicit(&n->failed, true, memory_order_release);
            break;
        }
        /* Durable replicas (server_single.c's hold slots, one log each): each
         * commits what this iteration appended and queues what its log covers.
         * At most one of them waits for a running commit when nothing arrived. */
        bool idle = got == 0, log_failed = false;
        for (uint32_t j = 0; j < l->groups; j++) {
            struct server *g = n->g[l->group[j]];
            if (g->hold == NULL)
                continue;
            bool waits = idle && server_wal_in_flight(g);
            if (server_single_hold_end(g, waits) != 0) {
                log_error("partition %u: the log failed: the node stops", (unsigned)g->cfg->group);
                log_failed = true;
                break;
            }
            idle = idle && !waits;
        }
        if (log_failed) {
            atomic_store_explicit(&n->failed, true, memory_order_release);
            break; /* nothing the failed log covers leaves */
        }
        if (net_udp_pending(l->udp) > 0) {
            int rc = net_udp_flush(l->udp);
            if (rc < 0)
                log_warn("flush failed: %s", bftkv_strerror(rc));
            server_count(n->g[l->group[0]], SERVER_CTR_flushes, 1);
        }
    }
    return NULL;
}

/* Bind loop l's socket (its groups' address: the node's, shifted to thread
 * l's port) and point its replicas at it. */
static int node_loop_open(struct server_node *n, struct node_loop *l, uint64_t now)
{
    struct server *first = n->g[l->group[0]];
    struct net_udp_config uc = {
        .host = first->bind_host,
        .port = first->bind_port,
        .backend = n->backend,
        .sndbuf_bytes = (int)n->cfg->socket_sndbuf,
        .rcvbuf_bytes = (int)n->cfg->socket_rcvbuf,
    };
    int rc = net_udp_open(&uc, &l->udp);
    if (rc != 0) {
        log_error("cannot open the UDP socket on %s:%u: %s", first->bind_host, first->bind_port, bftkv_strerror(rc));
        return rc;
    }
    for (uint32_t j = 0; j < l->groups; j++) {
        struct server *s = n->g[l->group[j]];
        BFTKV_ASSERT(s->bind_port == first->bind_port);
        s->udp = l->udp; /* shared; the node closes it */
        s->start_ns = now;
        s->deadline_ns = 0;
        rc = server_single_outputs(s); /* durable: the hold slots in front of the shared socket */
        if (rc != 0)
            return rc;
    }
    return 0;
}

int server_node_start(struct server_node *n)
{
    BFTKV_ASSERT(!n->started);
    BFTKV_ASSERT(n->groups > 0);
    uint64_t now = server_now_ns();
    n->started = true;
    int rc = 0;
    uint16_t loops = 0;
    for (uint16_t t = 0; rc == 0 && t < n->threads; t++) {
        struct node_loop *l = &n->loop[t];
        if (l->groups == 0)
            continue; /* no partition of this thread here */
        rc = node_loop_open(n, l, now);
        if (rc == 0 && pthread_create(&l->thread, NULL, node_main, l) != 0) {
            log_error("cannot start protocol thread %u", t);
            rc = BFTKV_E_IO;
        }
        if (rc == 0) {
            l->running = true;
            loops++;
            char name[24]; /* t < BFTKV_CONFIG_PROTOCOL_THREADS_MAX: at most 13 characters */
            snprintf(name, sizeof name, "bftkv-node-%u", t);
            pthread_setname_np(l->thread, name);
        }
    }
    if (rc != 0) {
        server_node_stop(n);
        return rc;
    }
    const struct server *first = n->g[0];
    log_info("started: node %u of M=%u (R=%u f=%u P=%u, map epoch %llu), %u partitions hosted, %s:%u, backend %s, "
             "threads single, %u protocol thread%s",
             n->map->node_id[n->node], n->map->m, n->map->params.rf, n->map->params.f, n->map->params.partitions,
             (unsigned long long)n->map->params.epoch,
             n->groups, first->bind_host, n->map->node[n->node].port, server_backend_name(first), loops,
             loops == 1 ? "" : "s (thread t on port + t*M)");
    return 0;
}

void server_node_stop(struct server_node *n)
{
    if (n == NULL || !n->started || n->joined)
        return;
    atomic_store_explicit(&n->stop, true, memory_order_release);
    for (uint16_t t = 0; t < n->threads; t++) {
        if (n->loop[t].running)
            pthread_join(n->loop[t].thread, NULL);
        n->loop[t].running = false;
    }
    n->joined = true;
    uint64_t executed = 0;
    for (uint32_t k = 0; k < n->groups; k++)
        executed += pbft_replica_stats(n->g[k]->replica)->requests_executed;
    log_info("stopped: node %u, %u partitions, %llu requests executed", n->map->node_id[n->node], n->groups,
             (unsigned long long)executed);
}

int server_node_metrics_start(struct server_node *n, const char *host, uint16_t port, struct metrics_http **out,
                              char *err, size_t errlen)
{
    return metrics_http_start_set(n->g, n->groups, host, port, out, err, errlen);
}

bool server_node_failed(const struct server_node *n)
{
    return atomic_load_explicit(&n->failed, memory_order_acquire);
}

void server_node_destroy(struct server_node *n)
{
    if (n == NULL)
        return;
    server_node_stop(n);
    for (uint32_t k = 0; k < n->groups; k++) {
        if (n->g != NULL && n->g[k] != NULL) {
            n->g[k]->udp = NULL; /* the node's, closed below */
            server_destroy(n->g[k]);
        }
        bftkv_config_free(n->gcfg[k]);
    }
    for (uint16_t t = 0; n->loop != NULL && t < n->threads; t++) {
        net_udp_close(n->loop[t].udp);
        free(n->loop[t].group);
        free(n->loop[t].node_addr);
        free(n->loop[t].node_alen);
        if (n->loop[t].maps.map != NULL && n->loop[t].maps.answered > 0)
            log_info("map discovery (thread %u): %llu answered", t, (unsigned long long)n->loop[t].maps.answered);
        if (n->loop[t].maps.map != NULL && n->loop[t].maps.notices + n->loop[t].maps.notices_limited > 0)
            log_info("requests for groups not hosted (thread %u): %llu answered with the map epoch, %llu not "
                     "(rate or unknown client)", t, (unsigned long long)n->loop[t].maps.notices,
                     (unsigned long long)n->loop[t].maps.notices_limited);
        node_map_server_free(&n->loop[t].maps);
    }
    free(n->loop);
    free(n->partition);
    free(n->gcfg);
    free(n->g);
    free(n->by_partition);
    free(n);
}
