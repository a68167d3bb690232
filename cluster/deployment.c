/* A deployment's file as a node or a client uses it (docs/design.md §6.3,
 * docs/config.md "A deployment"): the signed map it names, verified with the
 * admin key before anything reads it, and the single-group view of one
 * partition that the server runtime and the client library run unchanged.
 *
 * A partition's group is the file's tuning, key_dir and data_dir with the
 * group fields filled from the map: group = the partition, n = R, f from the
 * map, replica i = the i-th node of the partition's replica set (best first,
 * cluster/placement.c; replica 0 is the primary of view 0, so the placement
 * spreads the primaries too), and the map's client allow-list. Two nodes'
 * pairwise MAC key derives from their X25519 keys alone (docs/design.md §5.2),
 * so it is the same in every group they share: one node key serves every
 * partition it holds.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "cluster/config_internal.h"

bool cluster_deployment_is(const struct bftkv_config *cfg)
{
    return cfg != NULL && (cfg->deployment_map[0] != '\0' || cfg->seeds > 0);
}

/* The whole of a regular file of at most cap bytes, in a new buffer. */
int cluster_file_read(const char *path, size_t cap, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        errbuf_put(err, errlen, "%s: %s", path, strerror(errno));
        return BFTKV_E_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > cap) {
        errbuf_put(err, errlen, "%s: not a regular file of at most %zu bytes", path, cap);
        close(fd);
        return BFTKV_E_CONFIG;
    }
    uint8_t *buf = malloc(cap + 1u);
    if (buf == NULL) {
        close(fd);
        return BFTKV_E_NOMEM;
    }
    int rc = config_fd_read(fd, (char *)buf, cap + 1u, len, path, err, errlen);
    close(fd);
    if (rc == 0 && *len > cap) {
        errbuf_put(err, errlen, "%s: larger than %zu bytes", path, cap);
        rc = BFTKV_E_CONFIG;
    }
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

int cluster_deployment_admin_pub(const struct bftkv_config *cfg, uint8_t pk[32], char *err, size_t errlen)
{
    memcpy(pk, cfg->admin_pub, 32);
    if (cfg->admin_pub_set)
        return 0;
    uint8_t *text = NULL;
    size_t len = 0;
    int rc = cluster_file_read(cfg->admin_pub_path, BFTKV_KEY_FILE_MAX, &text, &len, err, errlen);
    if (rc == 0) {
        /* An admin.pub has the layout of a key file: comments and one line of hex. */
        rc = bftkv_key_parse((const char *)text, len, cfg->admin_pub_path, pk, err, errlen);
        free(text);
    }
    return rc == 0 || rc == BFTKV_E_IO ? rc : BFTKV_E_CONFIG;
}

int cluster_deployment_open(const struct bftkv_config *cfg, struct cluster_map **out, char *err, size_t errlen)
{
    if (cfg == NULL || cfg->deployment_map[0] == '\0' || out == NULL) {
        errbuf_put(err, errlen, "%s: no deployment_map line%s", cfg != NULL ? cfg->name : "config",
                   cfg != NULL && cfg->seeds > 0 ? " (deployment_seeds is for clients: a node serves the map of its file)"
                                                 : "");
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    uint8_t pk[32];
    int rc = cluster_deployment_admin_pub(cfg, pk, err, errlen);
    if (rc != 0)
        return rc;
    uint8_t *bytes = NULL;
    size_t len = 0;
    rc = cluster_file_read(cfg->deployment_map, CLUSTER_MAP_SIGNED_SIZE_MAX, &bytes, &len, err, errlen);
    if (rc != 0)
        return rc;
    char why[BFTKV_CONFIG_ERR_MAX];
    rc = cluster_map_open(bytes, len, pk, out, why, sizeof why);
    free(bytes);
    if (rc != 0) {
        errbuf_put(err, errlen, "%s: %s: %s; refusing it", cfg->name, cfg->deployment_map, why);
        return rc;
    }
    return 0;
}

int cluster_deployment_slot(const struct cluster_map *map, uint16_t node, uint32_t p)
{
    BFTKV_ASSERT(p < map->params.partitions);
    const uint16_t *set = cluster_map_partition_replicas(map, p);
    for (uint16_t i = 0; i < map->params.rf; i++)
        if (set[i] == node)
            return i;
    return BFTKV_E_NOT_FOUND;
}

int cluster_deployment_group(const struct bftkv_config *cfg, const struct cluster_map *map, uint32_t p,
                             struct bftkv_config **out, char *err, size_t errlen)
{
    if (!cluster_deployment_is(cfg) || map == NULL || out == NULL || p >= map->params.partitions)
        return BFTKV_E_INVAL;
    BFTKV_ASSERT(map->params.rf <= BFTKV_REPLICAS_MAX);
    BFTKV_ASSERT(map->clients <= BFTKV_CLIENTS_MAX);
    BFTKV_ASSERT(p <= UINT16_MAX); /* BFTKV_PARTITIONS_MAX: the wire's group field holds it */
    struct bftkv_config *g = malloc(sizeof *g);
    if (g == NULL) {
        errbuf_put(err, errlen, "%s: out of memory", cfg->name);
        return BFTKV_E_NOMEM;
    }
    memcpy(g, cfg, sizeof *g);
    snprintf(g->name, sizeof g->name, "%.*s (partition %u)", (int)(sizeof g->name - 24u), cfg->name, p);
    g->deployment_map[0] = '\0';
    g->seeds = 0;
    g->map_cache[0] = '\0';
    g->map_epoch = map->params.epoch;
    g->group = (uint16_t)p;
    g->n = map->params.rf;
    g->f = map->params.f;
    const uint16_t *set = cluster_map_partition_replicas(map, p);
    memset(g->replica, 0, sizeof g->replica);
    /* Partition p is served by thread p mod K of each node, on its own port. */
    uint32_t shift = (p % cfg->protocol_threads) * (uint32_t)map->m;
    for (uint16_t i = 0; i < g->n; i++) {
        g->replica[i] = map->node[set[i]];
        if (g->replica[i].port + shift > 65535u) {
            errbuf_put(err, errlen, "%s: protocol_threads %u: node %u's thread %u would listen on port %u + %u > 65535",
                       cfg->name, cfg->protocol_threads, map->node_id[set[i]], p % cfg->protocol_threads,
                       g->replica[i].port, shift);
            free(g);
            return BFTKV_E_CONFIG;
        }
        g->replica[i].port = (uint16_t)(g->replica[i].port + shift);
    }
    memset(g->client, 0, sizeof g->client);
    g->clients = map->clients;
    g->clients_allowed = map->clients_allowed;
    for (uint16_t c = 0; c < map->clients; c++)
        g->client[c] = map->client[c];
    if (cfg->data_dir[0] != '\0') {
        int n = snprintf(g->data_dir, sizeof g->data_dir, "%s/partition-%u", cfg->data_dir, p);
        if (n < 0 || (size_t)n >= sizeof g->data_dir) {
            errbuf_put(err, errlen, "%s: data_dir too long", cfg->name);
            free(g);
            return BFTKV_E_CONFIG;
        }
    }
    *out = g;
    return 0;
}

int cluster_deployment_node_identity(const struct bftkv_config *cfg, const struct cluster_map *map, uint16_t node,
                                     struct auth_keypair *kp, char *err, size_t errlen)
{
    if (map == NULL || kp == NULL || node >= map->m)
        return BFTKV_E_INVAL;
    char path[BFTKV_CONFIG_PATH_MAX + 32];
    int n = snprintf(path, sizeof path, "%s/node-%u.key", cfg->key_dir, map->node_id[node]);
    if (n < 0 || (size_t)n >= sizeof path) {
        errbuf_put(err, errlen, "%s: key_dir too long", cfg->name);
        return BFTKV_E_CONFIG;
    }
    uint8_t seed[BFTKV_KEY_SEED_SIZE];
    int rc = bftkv_key_load(path, seed, err, errlen);
    if (rc != 0)
        return rc;
    auth_keypair_from_seed(kp, seed);
    sodium_memzero(seed, sizeof seed);
    if (sodium_memcmp(kp->x_pk, map->node[node].x25519, 32) != 0 ||
        sodium_memcmp(kp->sign_pk, map->node[node].ed25519, 32) != 0) {
        errbuf_put(err, errlen,
                   "%s: the key does not match node %u of the deployment map %s: wrong key file, or a map of "
                   "another deployment",
                   path, map->node_id[node], cfg->deployment_map);
        sodium_memzero(kp, sizeof *kp);
        return BFTKV_E_CONFIG;
    }
    return 0;
}
