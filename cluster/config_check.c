/* The checks that need the whole config file (cluster/config.c reads it line by
 * line first): every replica id 0..n-1 present, n >= 3f+1, an allow-list, one
 * replica per address, one principal per public key, batch and log windows the
 * engine accepts (engine/replica.c config_valid). A message still names the line
 * to blame: the later of two that conflict, or the directive whose value is wrong.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "engine/wire.h"
#include "cluster/config_internal.h"

struct key_ref {
    uint8_t key[32];
    uint8_t role;
    uint16_t id;
    uint32_t line;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = memcmp(x->key, y->key, sizeof x->key);
    if (c != 0)
        return c;
    return (x->line > y->line) - (x->line < y->line);
}

/* No two principals share a public key: one would speak for the other. Sorting
 * keeps this O(P log P) for the 4,160 principals of a full file. */
static int check_keys_distinct(struct config_parser *p)
{
    const struct bftkv_config *cfg = p->cfg;
    size_t cap = (size_t)cfg->n + cfg->clients_allowed;
    struct key_ref *refs = malloc(cap * sizeof *refs);
    if (refs == NULL) {
        errbuf_put(p->err, p->errlen, "%s: out of memory", p->name);
        return BFTKV_E_NOMEM;
    }
    int rc = 0;
    for (int kind = 0; kind < 2 && rc == 0; kind++) {
        const char *kname = kind == 0 ? "x25519" : "ed25519";
        size_t k = 0;
        for (uint16_t i = 0; i < cfg->n; i++) {
            const struct bftkv_config_replica *r = &cfg->replica[i];
            memcpy(refs[k].key, kind == 0 ? r->x25519 : r->ed25519, 32);
            refs[k].role = BFTKV_CONFIG_REPLICA, refs[k].id = i, refs[k].line = r->line;
            k++;
        }
        for (uint16_t i = 0; i < cfg->clients; i++) {
            const struct bftkv_config_client *c = &cfg->client[i];
            if (!c->allowed)
                continue;
            memcpy(refs[k].key, kind == 0 ? c->x25519 : c->ed25519, 32);
            refs[k].role = BFTKV_CONFIG_CLIENT, refs[k].id = i, refs[k].line = c->line;
            k++;
        }
        BFTKV_ASSERT(k == cap);
        qsort(refs, k, sizeof *refs, key_ref_cmp);
        for (size_t i = 1; i < k && rc == 0; i++) {
            const struct key_ref *a = &refs[i - 1], *b = &refs[i];
            if (memcmp(a->key, b->key, 32) == 0)
                rc = config_fail(p, b->line,
                          "%s key of %s %u is also the key of %s %u (line %u): each replica and client needs "
                          "its own key pair",
                          kname, config_role_name((enum bftkv_config_role)b->role), b->id,
                          config_role_name((enum bftkv_config_role)a->role), a->id, a->line);
        }
    }
    free(refs);
    return rc;
}

static int check_group(struct config_parser *p)
{
    struct bftkv_config *cfg = p->cfg;
    if (cfg->n == 0)
        return config_fail(p, 0, "no replica lines (a group needs at least one replica)");
    for (uint16_t i = 0; i < cfg->n; i++) {
        if (cfg->replica[i].line == 0)
            return config_fail(p, 0, "replica %u missing (ids must be 0..n-1, and there are %u replica lines)", i,
                        cfg->n);
    }
    if (p->seen[D_F] == 0)
        return config_fail(p, 0, "missing 'f' (the number of faulty replicas tolerated; n >= 3f+1)");
    uint32_t need = 3u * cfg->f + 1u;
    if (cfg->n < need)
        return config_fail(p, p->seen[D_F], "f=%u needs n >= %u replicas, have %u", cfg->f, need, cfg->n);
    for (uint16_t i = 0; i < cfg->n; i++) {
        for (uint16_t j = 0; j < i; j++) {
            const struct bftkv_config_replica *a = &cfg->replica[j], *b = &cfg->replica[i];
            if (a->port == b->port && strcasecmp(a->host, b->host) == 0) {
                /* Blame the line that comes later in the file. */
                bool a_later = a->line > b->line;
                const struct bftkv_config_replica *later = a_later ? a : b, *first = a_later ? b : a;
                return config_fail(p, later->line, "address %s:%u already used by replica %u (line %u)", later->host,
                            later->port, a_later ? i : j, first->line);
            }
        }
    }
    if (cfg->clients_allowed == 0)
        return config_fail(p, 0, "no client lines (the allow-list is empty: nobody could use the group)");
    return 0;
}

static int check_tuning(struct config_parser *p)
{
    struct bftkv_config *cfg = p->cfg;
    /* The engine's rule (engine/replica.c): an empty batch takes the largest
     * inlined request with its framing and an authenticator for n replicas. */
    uint32_t inline_max = WIRE_PP_ENTRY_FIXED + BFTKV_INLINE_REQUEST_MAX + (uint32_t)cfg->n * BFTKV_MAC_SIZE;
    if (cfg->batch_max_bytes < inline_max)
        return config_fail(p, p->seen[D_BATCH_MAX_BYTES],
                    "batch_max_bytes %u too small: a batch must hold one inlined request, %u bytes at n=%u",
                    cfg->batch_max_bytes, inline_max, cfg->n);

    uint32_t k = cfg->checkpoint_interval;
    if (p->seen[D_LOG_WINDOW] == 0) {
        /* Default: the engine's log window, raised to 2K and rounded up to a
         * multiple of K; past the maximum, the largest multiple of K within it
         * (still >= 2K, since limits.h makes BFTKV_LOG_WINDOW_MAX >= 2K). */
        uint32_t l = cfg->log_window > 2u * k ? cfg->log_window : 2u * k;
        cfg->log_window = (l + k - 1u) / k * k;
        if (cfg->log_window > BFTKV_LOG_WINDOW_MAX)
            cfg->log_window = BFTKV_LOG_WINDOW_MAX / k * k;
    }
    uint32_t l = cfg->log_window;
    uint32_t at = p->seen[D_LOG_WINDOW] ? p->seen[D_LOG_WINDOW] : p->seen[D_CHECKPOINT_INTERVAL];
    if (l < 2u * k || l % k != 0)
        return config_fail(p, at, "log_window %u must be a multiple of checkpoint_interval %u and at least twice it", l,
                    k);
    if (cfg->window > l)
        return config_fail(p, p->seen[D_WINDOW] ? p->seen[D_WINDOW] : at, "window %u larger than log_window %u",
                    cfg->window, l);
    return 0;
}

/* durability defaults to sync when a group's config names a data_dir (a replica
 * with a disk keeps what it acknowledged, docs/design.md §5.6.2), to none
 * without one and in a deployment's file (its nodes keep partitions in memory
 * for now, §6.3); a log needs a directory to live in. */
static int check_durability(struct config_parser *p, bool deployment)
{
    struct bftkv_config *cfg = p->cfg;
    bool have_dir = cfg->data_dir[0] != '\0';
    if (p->seen[D_DURABILITY] == 0) {
        cfg->durability = have_dir && !deployment ? BFTKV_CONFIG_DURABILITY_SYNC : BFTKV_CONFIG_DURABILITY_NONE;
        return 0;
    }
    if (cfg->durability != BFTKV_CONFIG_DURABILITY_NONE && !have_dir)
        return config_fail(p, p->seen[D_DURABILITY],
                           "durability %s needs a data_dir line (the write-ahead log lives in "
                           "data_dir/replica-<id>/wal)",
                           bftkv_config_durability_name(cfg->durability));
    return 0;
}

/* A deployment's file (docs/config.md "A deployment"): the map replaces the
 * group's lines, and it is only of use with the key that signed it. */
static int check_deployment(struct config_parser *p)
{
    uint32_t map = p->seen[D_DEPLOYMENT_MAP], seeds = p->seen[D_DEPLOYMENT_SEEDS];
    if (map != 0 && seeds != 0)
        return config_fail(p, seeds,
                           "deployment_seeds does not go with deployment_map (line %u): a node serves the map of "
                           "its file, a client either reads one or asks the seeds",
                           map);
    if (map == 0 && seeds == 0 && p->seen[D_ADMIN_PUB] != 0)
        return config_fail(p, p->seen[D_ADMIN_PUB],
                           "admin_pub without deployment_map or deployment_seeds (the key verifies a map)");
    if (seeds == 0 && p->seen[D_MAP_CACHE] != 0)
        return config_fail(p, p->seen[D_MAP_CACHE],
                           "map_cache without deployment_seeds (a discovering client's last accepted map)");
    if (p->seen[D_ADMIN_PUB] == 0)
        return config_fail(p, map != 0 ? map : seeds,
                           "%s needs admin_pub (the admin's public key, hex or an admin.pub file): "
                           "an unverified map is never used",
                           map != 0 ? "deployment_map" : "deployment_seeds");
    static const enum config_directive group_lines[] = {D_GROUP, D_F, D_REPLICA, D_CLIENT};
    for (size_t i = 0; i < sizeof group_lines / sizeof group_lines[0]; i++) {
        if (p->seen[group_lines[i]] != 0)
            return config_fail(p, p->seen[group_lines[i]],
                               "group, f, replica and client lines do not go with %s (line %u): the "
                               "map lists the nodes, the partitions' groups and the clients",
                               map != 0 ? "deployment_map" : "deployment_seeds", map != 0 ? map : seeds);
    }
    return 0;
}

/* Every admin_client names a client of the file (a deployment's clients are the
 * map's: admin_client does not go with deployment_map yet). */
static int check_admin_clients(struct config_parser *p, bool deployment)
{
    for (unsigned id = 0; id < BFTKV_CLIENTS_MAX; id++) {
        const struct bftkv_config_client *c = &p->cfg->client[id];
        if (c->admin_line == 0)
            continue;
        if (deployment)
            return config_fail(p, c->admin_line, "admin_client does not go with deployment_map yet");
        if (!c->allowed)
            return config_fail(p, c->admin_line, "admin_client %u: no client line has id %u", id, id);
    }
    return 0;
}

int config_check(struct config_parser *p)
{
    if (p->seen[D_KEY_DIR] == 0)
        return config_fail(p, 0, "missing 'key_dir' (the directory of the secret key files)");
    bool deployment = p->seen[D_DEPLOYMENT_MAP] != 0 || p->seen[D_ADMIN_PUB] != 0 || p->seen[D_DEPLOYMENT_SEEDS] != 0
                      || p->seen[D_MAP_CACHE] != 0;
    if (!deployment && p->seen[D_PROTOCOL_THREADS] != 0 && p->cfg->protocol_threads != 1)
        return config_fail(p, p->seen[D_PROTOCOL_THREADS],
                           "protocol_threads is for a deployment's nodes (a file with deployment_map); one group "
                           "uses 'threads'");
    int rc = deployment ? check_deployment(p) : check_group(p);
    rc = rc ? rc : check_durability(p, deployment);
    rc = rc ? rc : check_tuning(p);
    rc = rc || deployment ? rc : check_keys_distinct(p);
    rc = rc || deployment ? rc : config_metrics_check(p);
    rc = rc ? rc : check_admin_clients(p, deployment);
    return rc;
}
