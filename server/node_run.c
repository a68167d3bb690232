/* bftkv-server's start of a deployment node (server/node.h): what main.c does
 * for a single-group replica, for a config file with a deployment_map line.
 * The map is verified with the admin key before anything else reads it; the
 * node's key must be the one the map lists for it. Exit codes as main.c's. */
#include "server/node.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/log.h"
#include "server/metrics_http.h"

#define NODE_EXIT_USAGE 2
#define NODE_EXIT_RUNTIME 1

int server_node_run(const struct bftkv_config *cfg, const struct server_node_args *a)
{
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    struct cluster_map *map = NULL;
    int rc = cluster_deployment_open(cfg, &map, err, sizeof err);
    if (rc != 0) {
        log_error("%s", err);
        return NODE_EXIT_USAGE;
    }
    int idx = a->node_id <= UINT32_MAX ? cluster_map_node_index(map, (uint32_t)a->node_id) : BFTKV_E_NOT_FOUND;
    if (idx < 0) {
        log_error("%s: node %" PRIu64 " is not in the deployment map (M = %u, epoch %" PRIu64 ")", cfg->name,
                  a->node_id, map->m, map->params.epoch);
        cluster_map_free(map);
        return NODE_EXIT_USAGE;
    }
    if (a->byzantine != BYZ_NONE && !cfg->test_modes) {
        log_error("--byzantine %s refused: %s does not say 'test_modes on' (never in production)",
                  byz_mode_name(a->byzantine), cfg->name);
        cluster_map_free(map);
        return NODE_EXIT_USAGE;
    }
    struct auth_keypair kp;
    rc = cluster_deployment_node_identity(cfg, map, (uint16_t)idx, &kp, err, sizeof err);
    if (rc != 0) {
        log_error("%s", err);
        cluster_map_free(map);
        return NODE_EXIT_USAGE;
    }
    if (a->byzantine != BYZ_NONE)
        log_warn("Byzantine mode %s, seed %" PRIu64 ": this node misbehaves on purpose in every partition it hosts",
                 byz_mode_name(a->byzantine), a->byzantine_seed);

    /* The stop signals blocked before any thread exists (main.c's reason). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct server_node_options opt = {
        .cfg = cfg,
        .map = map,
        .node = (uint16_t)idx,
        .backend = a->backend,
        .keys = &kp,
        .byzantine = a->byzantine,
        .byzantine_seed = a->byzantine_seed,
        .start = a->start,
    };
    struct server_node *n = NULL;
    rc = server_node_create(&opt, &n, err, sizeof err);
    sodium_memzero(&kp, sizeof kp);
    if (rc != 0 || n == NULL) {
        if (rc != 0)
            log_error("%s", err[0] != '\0' ? err : bftkv_strerror(rc));
        else
            log_info("markers written: the first start without flags founds the node's groups");
        cluster_map_free(map);
        return rc == 0 ? 0 : rc == BFTKV_E_CONFIG || rc == BFTKV_E_INVAL ? NODE_EXIT_USAGE : NODE_EXIT_RUNTIME;
    }
    int code = 0;
    struct metrics_http *mh = NULL;
    const char *mhost = NULL;
    uint16_t mport = 0;
    if (server_node_start(n) != 0) {
        code = NODE_EXIT_RUNTIME;
    } else if (a->node_id < BFTKV_REPLICAS_MAX && bftkv_config_metrics_address(cfg, (uint16_t)a->node_id, &mhost, &mport)
               && server_node_metrics_start(n, mhost, mport, &mh, err, sizeof err) != 0) {
        log_error("%s", err);
        code = NODE_EXIT_RUNTIME;
    } else {
        if (mh != NULL)
            log_info("metrics on http://%s:%u/metrics (every hosted partition)", mhost, (unsigned)metrics_http_port(mh));
        for (;;) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000000L};
            int sig = sigtimedwait(&set, NULL, &ts);
            if (sig == SIGTERM || sig == SIGINT) {
                log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
                break;
            }
            if (server_node_failed(n)) {
                log_error("the runtime failed: stopping");
                code = NODE_EXIT_RUNTIME;
                break;
            }
        }
    }
    metrics_http_stop(mh);
    server_node_destroy(n);
    cluster_map_free(map);
    return code;
}
