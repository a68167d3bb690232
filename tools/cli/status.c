/* `bftkv status`: the health of the whole deployment in one table, from every
 * replica's stats (bftkv_client_replica_stats, asked of all replicas at once),
 * with an exit code a health check can use.
 *
 * One row per replica and partition it hosts (today one: the config's group):
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
 * are healthy; 3 fewer than q are healthy (the group cannot order requests).
 * --json: one JSON object per replica, then one summary object.
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

#define STATUS_TIMEOUT_MS_DEFAULT 1500
#define STATUS_MAX_BEHIND_DEFAULT 256u

struct status_row {
    /* asked */
    const struct bftkv_config *cfg;
    uint16_t client, id;
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

static void status_print_table(const struct status_row *rows, uint16_t n, const struct bftkv_config *cfg)
{
    printf("%-8s %-22s %-9s %-6s %-9s %-13s %-7s %-10s %-6s %-8s %s\n", "replica", "address", "partition", "view",
           "role", "last_exec", "behind", "durability", "state", "digest", "health");
    for (uint16_t i = 0; i < n; i++) {
        const struct status_row *r = &rows[i];
        char host[BFTKV_CONFIG_HOST_MAX + 1] = "?", addr[BFTKV_CONFIG_HOST_MAX + 16];
        uint16_t port = 0;
        bftkv_config_replica_address(cfg, i, host, sizeof host, &port);
        snprintf(addr, sizeof addr, "%s:%u", host, port);
        if (r->rc != 0) {
            printf("%-8u %-22s %-9u %-6s %-9s %-13s %-7s %-10s %-6s %-8s %s\n", i, addr, bftkv_config_group(cfg), "-",
                   "-", "-", "-", "-", "-", "-", r->problem);
            continue;
        }
        const char *role = r->in_viewchange ? "vchange" : r->primary ? "primary" : "backup";
        printf("%-8u %-22s %-9llu %-6llu %-9s %-13llu %-7llu %-10s %-6s %-8s %s\n", i, addr,
               (unsigned long long)r->group, (unsigned long long)r->view, role, (unsigned long long)r->last_executed,
               (unsigned long long)r->behind, r->durability, r->holds_state ? "yes" : "NO", r->digest_verdict,
               r->problem != NULL ? r->problem : "ok");
    }
}

static void status_print_json(const struct status_row *rows, uint16_t n, const struct bftkv_config *cfg,
                              unsigned healthy, unsigned q, int code)
{
    for (uint16_t i = 0; i < n; i++) {
        const struct status_row *r = &rows[i];
        char host[BFTKV_CONFIG_HOST_MAX + 1] = "?";
        uint16_t port = 0;
        bftkv_config_replica_address(cfg, i, host, sizeof host, &port);
        printf("{\"replica\":%u,\"address\":\"%s:%u\",\"partition\":%u,\"answered\":%s", i, host, port,
               bftkv_config_group(cfg), r->rc == 0 ? "true" : "false");
        if (r->rc == 0)
            printf(",\"view\":%llu,\"primary\":%s,\"in_viewchange\":%s,\"last_executed\":%llu,\"behind\":%llu,"
                   "\"durability\":\"%s\",\"holds_state\":%s,\"state_digest\":\"%s\",\"digest\":\"%s\"",
                   (unsigned long long)r->view, r->primary ? "true" : "false", r->in_viewchange ? "true" : "false",
                   (unsigned long long)r->last_executed, (unsigned long long)r->behind, r->durability,
                   r->holds_state ? "true" : "false", r->digest, r->digest_verdict);
        printf(",\"healthy\":%s,\"problem\":\"%s\"}\n", r->problem == NULL ? "true" : "false",
               r->problem != NULL ? r->problem : "");
    }
    printf("{\"summary\":true,\"replicas\":%u,\"healthy\":%u,\"quorum\":%u,\"exit\":%d}\n", n, healthy, q, code);
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
    uint16_t n = bftkv_config_replicas(cfg), f = bftkv_config_faults(cfg);
    struct status_row *rows = calloc(n, sizeof *rows);
    pthread_t *threads = calloc(n, sizeof *threads);
    if (rows == NULL || threads == NULL) {
        free(rows);
        free(threads);
        bftkv_config_free(cfg);
        fprintf(stderr, "bftkv: status: out of memory\n");
        return EXIT_OTHER;
    }
    bool started[BFTKV_REPLICAS_MAX] = {false};
    for (uint16_t i = 0; i < n; i++) {
        rows[i] = (struct status_row){.cfg = cfg, .client = client, .id = i,
                                      .timeout_ms = timeout_ms > 0 ? timeout_ms : STATUS_TIMEOUT_MS_DEFAULT};
        started[i] = pthread_create(&threads[i], NULL, status_ask, &rows[i]) == 0;
        if (!started[i])
            status_ask(&rows[i]); /* no thread: ask in turn */
    }
    for (uint16_t i = 0; i < n; i++)
        if (started[i])
            pthread_join(threads[i], NULL);
    status_judge(rows, n, f, max_behind);
    unsigned healthy = 0, q = (unsigned)(n + f + 2u) / 2u; /* ceil((n+f+1)/2) */
    for (uint16_t i = 0; i < n; i++)
        healthy += rows[i].problem == NULL;
    int code = healthy == n ? EXIT_OK : healthy >= q ? EXIT_UNHEALTHY : EXIT_UNAVAILABLE;
    if (json)
        status_print_json(rows, n, cfg, healthy, q, code);
    else {
        status_print_table(rows, n, cfg);
        printf("%u of %u replicas healthy (quorum %u): %s\n", healthy, n, q,
               code == EXIT_OK ? "ok" : code == EXIT_UNHEALTHY ? "DEGRADED" : "UNAVAILABLE");
    }
    fflush(stdout);
    free(rows);
    free(threads);
    bftkv_config_free(cfg);
    return code;
}
