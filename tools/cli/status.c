/* `bftkv status`: the health of the whole deployment in one table, from every
 * replica's stats (bftkv_client_replica_stats, asked of all replicas at once),
 * with an exit code a health check can use.
 *
 * One row per replica and partition it hosts (one group: each replica; a
 * partitioned deployment's file: each node's replica of each partition, the
 * partitions' groups derived from the verified map):
 * its address, view and role, last executed sequence number and how far behind
 * the most advanced replica it is, durability, whether it holds certified
 * state, and whether its state digest agrees with the quorum's. Digests are
 * comparable only between replicas that executed the same sequence number:
 * "agrees" when at least f+1 replicas at that number (itself included) report
 * its digest, "DIFFERS" when f+1 report another one, "-" when too few are at
 * its number to say (under load replicas pass each other; run it again).
 *
 * A replica is unhealthy when it does not answer, holds no state, is in
 * another view than the quorum's (outside a view change), is more than
 * --max-behind sequence numbers behind (default 256, the default log window:
 * beyond it a replica catches up by state transfer), or its digest differs.
 * Exit 0 all healthy; 5 some replica unhealthy while at least q = ceil((n+f+1)/2)
 * are healthy in every group (partition); 3 fewer than q are healthy in some
 * group (it cannot order requests). --json: one JSON object per replica, then
 * one summary object.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/client.h"
#include "bftkv/config.h"
#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "cli.h"
#include "cluster/cluster.h"

#define STATUS_TIMEOUT_MS_DEFAULT 1500
#define STATUS_MAX_BEHIND_DEFAULT 256u

struct status_row {
    /* asked */
    const struct bftkv_config *cfg; /* its group's */
    uint16_t client, id;            /* id: the replica's index in its group */
    uint32_t node;                  /* the replica id, or a deployment's node id */
    int timeout_ms;
    /* answered */
    int rc;
    char json[BFTKV_CLIENT_REPLICA_STATS_MAX];
    uint64_t view, last_executed, group;
    bool primary, in_viewchange, holds_state;
    char digest[65];
    char durability[8];
    /* judged */
    uint64_t behind;
    const char *digest_verdict;
    const char *problem; /* NULL: healthy */
};

/* The value after "key": at the top level of a stats object (the first
 * occurrence: the stats JSON puts its top-level keys first). */
static const char *json_find(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p != NULL ? p + strlen(pat) : NULL;
}

static uint64_t json_u64(const char *json, const char *key)
{
    const char *p = json_find(json, key);
    return p != NULL ? strtoull(p, NULL, 10) : 0;
}

static bool json_bool(const char *json, const char *key)
{
    const char *p = json_find(json, key);
    return p != NULL && strncmp(p, "true", 4) == 0;
}

static void json_str(const char *json, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    const char *p = json_find(json, key);
    if (p == NULL || *p != '"')
        return;
    p++;
    size_t n = strcspn(p, "\"");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

static void *status_ask(void *arg)
{
    struct status_row *r = arg;
    char err[256];
    size_t len = 0;
    r->rc = bftkv_client_replica_stats(r->cfg, r->client, r->id, r->timeout_ms, r->json, sizeof r->json, &len, err,
                                       sizeof err);
    if (r->rc != 0)
        return NULL;
    r->view = json_u64(r->json, "view");
    r->last_executed = json_u64(r->json, "last_executed");
    r->group = json_u64(r->json, "group");
    r->primary = json_bool(r->json, "primary");
    r->in_viewchange = json_bool(r->json, "in_viewchange");
    r->holds_state = json_bool(r->json, "holds_state");
    json_str(r->json, "state_digest", r->digest, sizeof r->digest);
    json_str(r->json, "durability", r->durability, sizeof r->durability);
    return NULL;
}

/* The quorum's view (the most common among answers) and the verdicts. */
static void status_judge(struct status_row *rows, uint16_t n, uint16_t f, uint64_t max_behind)
{
    uint64_t top = 0, view = 0;
    unsigned view_votes = 0;
    for (uint16_t i = 0; i < n; i++) {
        if (rows[i].rc != 0)
            continue;
        top = rows[i].last_executed > top ? rows[i].last_executed : top;
        unsigned votes = 0;
        for (uint16_t j = 0; j < n; j++)
            votes += rows[j].rc == 0 && rows[j].view == rows[i].view;
        if (votes > view_votes)
            view = rows[i].view, view_votes = votes;
    }
    for (uint16_t i = 0; i < n; i++) {
        struct status_row *r = &rows[i];
        r->digest_verdict = "-";
        if (r->rc != 0) {
            r->problem = r->rc == BFTKV_E_TIMEOUT ? "no answer" : bftkv_strerror(r->rc);
            continue;
        }
        r->behind = top - r->last_executed;
        unsigned same = 0, other = 0;
        for (uint16_t j = 0; j < n; j++) {
            if (rows[j].rc != 0 || rows[j].last_executed != r->last_executed)
                continue;
            if (strcmp(rows[j].digest, r->digest) == 0)
                same++;
            else
                other++;
        }
        if (same >= f + 1u)
            r->digest_verdict = "agrees";
        else if (other >= f + 1u)
            r->digest_verdict = "DIFFERS";
        if (!r->holds_state)
            r->problem = "holds no state";
        else if (strcmp(r->digest_verdict, "DIFFERS") == 0)
            r->problem = "state digest differs from f+1 others";
        else if (!r->in_viewchange && r->view != view)
            r->problem = "not in the quorum's view";
        else if (r->behind > max_behind)
            r->problem = "too far behind";
    }
}

/* One group (a single group, or one partition of a deployment). */
struct status_group {
    struct bftkv_config *cfg;
    uint16_t n, f;
    struct status_row *rows; /* [n] */
    unsigned healthy, q;
};

static void status_print_table(const struct status_group *gs, uint32_t ngroups, bool deployment)
{
    printf("%-8s %-22s %-9s %-6s %-9s %-13s %-7s %-10s %-6s %-8s %s\n", deployment ? "node" : "replica", "address",
           "partition", "view", "role", "last_exec", "behind", "durability", "state", "digest", "health");
    for (uint32_t g = 0; g < ngroups; g++) {
        for (uint16_t i = 0; i < gs[g].n; i++) {
            const struct status_row *r = &gs[g].rows[i];
            char host[BFTKV_CONFIG_HOST_MAX + 1] = "?", addr[BFTKV_CONFIG_HOST_MAX + 16];
            uint16_t port = 0;
            bftkv_config_replica_address(gs[g].cfg, i, host, sizeof host, &port);
            snprintf(addr, sizeof addr, "%s:%u", host, port);
            if (r->rc != 0) {
                printf("%-8u %-22s %-9u %-6s %-9s %-13s %-7s %-10s %-6s %-8s %s\n", r->node, addr,
                       bftkv_config_group(gs[g].cfg), "-", "-", "-", "-", "-", "-", "-", r->problem);
                continue;
            }
            const char *role = r->in_viewchange ? "vchange" : r->primary ? "primary" : "backup";
            printf("%-8u %-22s %-9llu %-6llu %-9s %-13llu %-7llu %-10s %-6s %-8s %s\n", r->node, addr,
                   (unsigned long long)r->group, (unsigned long long)r->view, role,
                   (unsigned long long)r->last_executed, (unsigned long long)r->behind, r->durability,
                   r->holds_state ? "yes" : "NO", r->digest_verdict, r->problem != NULL ? r->problem : "ok");
        }
    }
}

static void status_print_json(const struct status_group *gs, uint32_t ngroups, bool deployment, unsigned healthy,
                              unsigned total, uint32_t below, int code)
{
    for (uint32_t g = 0; g < ngroups; g++) {
        for (uint16_t i = 0; i < gs[g].n; i++) {
            const struct status_row *r = &gs[g].rows[i];
            char host[BFTKV_CONFIG_HOST_MAX + 1] = "?";
            uint16_t port = 0;
            bftkv_config_replica_address(gs[g].cfg, i, host, sizeof host, &port);
            printf("{\"replica\":%u,", i);
            if (deployment)
                printf("\"node\":%u,", r->node);
            printf("\"address\":\"%s:%u\",\"partition\":%u,\"answered\":%s", host, port,
                   bftkv_config_group(gs[g].cfg), r->rc == 0 ? "true" : "false");
            if (r->rc == 0)
                printf(",\"view\":%llu,\"primary\":%s,\"in_viewchange\":%s,\"last_executed\":%llu,\"behind\":%llu,"
                       "\"durability\":\"%s\",\"holds_state\":%s,\"state_digest\":\"%s\",\"digest\":\"%s\"",
                       (unsigned long long)r->view, r->primary ? "true" : "false", r->in_viewchange ? "true" : "false",
                       (unsigned long long)r->last_executed, (unsigned long long)r->behind, r->durability,
                       r->holds_state ? "true" : "false", r->digest, r->digest_verdict);
            printf(",\"healthy\":%s,\"problem\":\"%s\"}\n", r->problem == NULL ? "true" : "false",
                   r->problem != NULL ? r->problem : "");
        }
    }
    printf("{\"summary\":true,\"replicas\":%u,\"healthy\":%u,\"quorum\":%u,\"partitions\":%u,"
           "\"partitions_below_quorum\":%u,\"exit\":%d}\n",
           total, healthy, gs[0].q, ngroups, below, code);
}

/* The groups to ask: cfg's own, or each partition's of a deployment's file
 * (the map verified with its admin key first). */
static int status_groups(struct bftkv_config *cfg, struct status_group **out, uint32_t *count, bool *deployment)
{
    *deployment = cluster_deployment_is(cfg);
    if (!*deployment) {
        struct status_group *g = calloc(1, sizeof *g);
        if (g == NULL)
            return BFTKV_E_NOMEM;
        g->cfg = cfg;
        *out = g;
        *count = 1;
        return 0;
    }
    char err[BFTKV_CONFIG_ERR_MAX];
    struct cluster_map *map = NULL;
    int rc = cluster_deployment_open(cfg, &map, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bftkv: %s\n", err);
        return rc;
    }
    uint32_t parts = map->params.partitions;
    struct status_group *gs = calloc(parts, sizeof *gs);
    for (uint32_t p = 0; gs != NULL && rc == 0 && p < parts; p++) {
        rc = cluster_deployment_group(cfg, map, p, &gs[p].cfg, err, sizeof err);
        if (rc != 0)
            fprintf(stderr, "bftkv: %s\n", err);
    }
    if (gs != NULL && rc == 0) {
        /* each replica's node id, for the rows */
        for (uint32_t p = 0; p < parts; p++) {
            const uint16_t *set = cluster_map_partition_replicas(map, p);
            uint16_t n = bftkv_config_replicas(gs[p].cfg);
            gs[p].rows = calloc(n, sizeof *gs[p].rows);
            if (gs[p].rows == NULL) {
                rc = BFTKV_E_NOMEM;
                break;
            }
            for (uint16_t i = 0; i < n; i++)
                gs[p].rows[i].node = map->node_id[set[i]];
        }
    }
    cluster_map_free(map);
    if (gs == NULL)
        return BFTKV_E_NOMEM;
    *out = gs;
    *count = parts;
    return rc;
}

static void status_groups_free(struct status_group *gs, uint32_t count, bool deployment)
{
    for (uint32_t g = 0; gs != NULL && g < count; g++) {
        free(gs[g].rows);
        if (deployment)
            bftkv_config_free(gs[g].cfg);
    }
    free(gs);
}

int cli_status(const char *config, uint16_t client, int timeout_ms, bool json, char **args, int nargs)
{
    unsigned long max_behind = STATUS_MAX_BEHIND_DEFAULT;
    for (int i = 0; i < nargs; i++) {
        char *end = NULL;
        if (strcmp(args[i], "--json") == 0) {
            json = true;
        } else if (strcmp(args[i], "--max-behind") == 0 && i + 1 < nargs &&
                   (max_behind = strtoul(args[i + 1], &end, 10), end != args[i + 1] && *end == '\0')) {
            i++;
        } else {
            fprintf(stderr, "bftkv: usage: bftkv [OPTIONS] status [--json] [--max-behind N]\n");
            return EXIT_USAGE;
        }
    }
    char err[1024];
    struct bftkv_config *cfg = NULL;
    if (bftkv_config_load(config, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "bftkv: %s\n", err);
        return EXIT_USAGE;
    }
    struct status_group *gs = NULL;
    uint32_t ngroups = 0;
    bool deployment = false;
    int rc = status_groups(cfg, &gs, &ngroups, &deployment);
    unsigned total = 0;
    for (uint32_t g = 0; rc == 0 && g < ngroups; g++) {
        gs[g].n = bftkv_config_replicas(gs[g].cfg);
        gs[g].f = bftkv_config_faults(gs[g].cfg);
        gs[g].q = (unsigned)(gs[g].n + gs[g].f + 2u) / 2u; /* ceil((n+f+1)/2) */
        if (gs[g].rows == NULL && (gs[g].rows = calloc(gs[g].n, sizeof *gs[g].rows)) == NULL)
            rc = BFTKV_E_NOMEM;
        for (uint16_t i = 0; rc == 0 && i < gs[g].n; i++) {
            uint32_t node = deployment ? gs[g].rows[i].node : i;
            gs[g].rows[i] = (struct status_row){.cfg = gs[g].cfg, .client = client, .id = i, .node = node,
                                                .timeout_ms = timeout_ms > 0 ? timeout_ms : STATUS_TIMEOUT_MS_DEFAULT};
        }
        total += gs[g].n;
    }
    pthread_t *threads = rc == 0 ? calloc(total, sizeof *threads) : NULL;
    bool *started = rc == 0 ? calloc(total, sizeof *started) : NULL;
    if (rc != 0 || threads == NULL || started == NULL) {
        if (rc != BFTKV_E_CONFIG && rc != BFTKV_E_AUTH && rc != BFTKV_E_IO)
            fprintf(stderr, "bftkv: status: %s\n", rc != 0 ? bftkv_strerror(rc) : "out of memory");
        free(threads);
        free(started);
        status_groups_free(gs, ngroups, deployment);
        bftkv_config_free(cfg);
        return rc == BFTKV_E_NOMEM || rc == 0 ? EXIT_OTHER : EXIT_USAGE;
    }
    /* Every replica asked at once: one thread each. */
    unsigned k = 0;
    for (uint32_t g = 0; g < ngroups; g++) {
        for (uint16_t i = 0; i < gs[g].n; i++, k++) {
            started[k] = pthread_create(&threads[k], NULL, status_ask, &gs[g].rows[i]) == 0;
            if (!started[k])
                status_ask(&gs[g].rows[i]); /* no thread: ask in turn */
        }
    }
    for (k = 0; k < total; k++)
        if (started[k])
            pthread_join(threads[k], NULL);
    unsigned healthy = 0;
    uint32_t below = 0, degraded = 0;
    for (uint32_t g = 0; g < ngroups; g++) {
        status_judge(gs[g].rows, gs[g].n, gs[g].f, max_behind);
        for (uint16_t i = 0; i < gs[g].n; i++)
            gs[g].healthy += gs[g].rows[i].problem == NULL;
        healthy += gs[g].healthy;
        below += gs[g].healthy < gs[g].q;
        degraded += gs[g].healthy < gs[g].n;
    }
    int code = degraded == 0 ? EXIT_OK : below == 0 ? EXIT_UNHEALTHY : EXIT_UNAVAILABLE;
    if (json) {
        status_print_json(gs, ngroups, deployment, healthy, total, below, code);
    } else {
        status_print_table(gs, ngroups, deployment);
        if (deployment)
            printf("%u of %u replicas healthy in %u partitions (quorum %u each), %u below quorum: %s\n", healthy,
                   total, ngroups, gs[0].q, below,
                   code == EXIT_OK ? "ok" : code == EXIT_UNHEALTHY ? "DEGRADED" : "UNAVAILABLE");
        else
            printf("%u of %u replicas healthy (quorum %u): %s\n", healthy, total, gs[0].q,
                   code == EXIT_OK ? "ok" : code == EXIT_UNHEALTHY ? "DEGRADED" : "UNAVAILABLE");
    }
    fflush(stdout);
    free(threads);
    free(started);
    status_groups_free(gs, ngroups, deployment);
    bftkv_config_free(cfg);
    return code;
}
