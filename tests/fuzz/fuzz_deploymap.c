/* Fuzzing the deployment map's decoder (cluster/deploymap.c; docs/design.md §6.2).
 *
 * The input is a map's encoding (any bytes). cluster_map_decode() must either
 * refuse it (CORRUPT, VERSION or NOMEM, with a terminated message and no map)
 * or accept it; an accepted map must then
 *   - hold what the checks promise: 1..BFTKV_NODES_MAX nodes with increasing
 *     ids, 3f+1 <= R <= M, P a power of two, an allow-list;
 *   - have a placement of R distinct node indexes per partition, the one
 *     cluster_placement_rendezvous / _ring computes;
 *   - be canonical: building a map from its fields gives the input back, byte
 *     for byte (one map, one encoding, which acceptance relies on);
 *   - render as JSON.
 * The same bytes are also opened as a signed map under a fixed admin key:
 * refused unless they carry that key's signature, and then they decode as
 * their first len - 64 bytes do. tests/fuzz/fuzz.h says how it is built and run.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "deploymap";

static uint8_t admin_pk[32], admin_sk[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0);
    uint8_t seed[BFTKV_KEY_SEED_SIZE];
    memset(seed, 0x42, sizeof seed);
    cluster_map_admin_keypair(seed, admin_pk, admin_sk);
    return 0;
}

static void accepted_check(const struct cluster_map *map, const uint8_t *data, size_t size)
{
    const struct cluster_map_params *pa = &map->params;
    FUZZ_CHECK(map->m >= 1 && map->m <= BFTKV_NODES_MAX);
    FUZZ_CHECK(pa->rf >= 3u * pa->f + 1u && pa->rf <= map->m && pa->rf <= BFTKV_REPLICAS_MAX);
    FUZZ_CHECK(pa->partitions >= 1 && pa->partitions <= BFTKV_PARTITIONS_MAX);
    FUZZ_CHECK((pa->partitions & (pa->partitions - 1u)) == 0);
    FUZZ_CHECK(map->clients_allowed >= 1 && map->clients >= 1 && map->client[map->clients - 1u].allowed);
    for (uint16_t i = 1; i < map->m; i++)
        FUZZ_CHECK(map->node_id[i - 1] < map->node_id[i]);
    FUZZ_CHECK(map->body_len == size && memcmp(map->body, data, size) == 0);

    uint16_t *want = malloc((size_t)pa->partitions * pa->rf * sizeof *want);
    FUZZ_CHECK(want != NULL);
    int rc = pa->placement == CLUSTER_PLACEMENT_RING
                 ? cluster_placement_ring(map->node_id, map->m, pa->partitions, pa->rf, pa->vnodes, want)
                 : cluster_placement_rendezvous(map->node_id, map->m, pa->partitions, pa->rf, want);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(memcmp(want, map->replicas, (size_t)pa->partitions * pa->rf * sizeof *want) == 0);
    free(want);
    for (uint32_t p = 0; p < pa->partitions; p++) {
        const uint16_t *set = cluster_map_partition_replicas(map, p);
        for (uint16_t k = 0; k < pa->rf; k++) {
            FUZZ_CHECK(set[k] < map->m);
            for (uint16_t j = 0; j < k; j++)
                FUZZ_CHECK(set[j] != set[k]);
        }
    }

    struct cluster_map *again = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    rc = cluster_map_build(pa, map->node_id, map->node, map->m, map->client, map->clients, &again, err, sizeof err);
    FUZZ_CHECK(rc == 0 && again != NULL);
    FUZZ_CHECK(again->body_len == size && memcmp(again->body, data, size) == 0);
    cluster_map_free(again);

    char *text = NULL;
    size_t tlen = 0;
    FILE *fp = open_memstream(&text, &tlen);
    FUZZ_CHECK(fp != NULL);
    FUZZ_CHECK(cluster_map_json_write(map, fp) == 0);
    FUZZ_CHECK(fclose(fp) == 0);
    FUZZ_CHECK(tlen > 0 && text[tlen - 1] == '\n');
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cluster_map *map = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    memset(err, 'x', sizeof err);
    int rc = cluster_map_decode(data, size, &map, err, sizeof err);
    if (rc != 0) {
        FUZZ_CHECK(rc == BFTKV_E_CORRUPT || rc == BFTKV_E_VERSION || rc == BFTKV_E_NOMEM);
        FUZZ_CHECK(map == NULL);
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
    } else {
        FUZZ_CHECK(map != NULL);
        accepted_check(map, data, size);
        cluster_map_free(map);
    }

    map = NULL;
    rc = cluster_map_open(data, size, admin_pk, &map, err, sizeof err);
    if (rc == 0) {
        FUZZ_CHECK(map != NULL);
        FUZZ_CHECK(cluster_map_verify(data, size, admin_pk) == 0);
        accepted_check(map, data, size - CLUSTER_MAP_SIG_SIZE);
        cluster_map_free(map);
    } else {
        FUZZ_CHECK(map == NULL);
        FUZZ_CHECK(rc == BFTKV_E_AUTH || rc == BFTKV_E_CORRUPT || rc == BFTKV_E_VERSION || rc == BFTKV_E_NOMEM);
    }
    return 0;
}

/* ---- Seeds ------------------------------------------------------------------------------ */

/* A map of m nodes and clients ids 0, 3, 6, ... below clients, keys made of
 * distinct byte patterns, hosts of every kind. */
static struct cluster_map *seed_map(const struct cluster_map_params *pa, uint16_t m, uint16_t clients)
{
    static const char *const hosts[] = {"127.0.0.1", "::1", "node-a.example", "10.1.2.3"};
    uint32_t ids[16];
    struct bftkv_config_replica node[16];
    struct bftkv_config_client client[16];
    FUZZ_CHECK(m <= 16 && clients <= 16);
    memset(node, 0, sizeof node);
    memset(client, 0, sizeof client);
    for (uint16_t i = 0; i < m; i++) {
        ids[i] = 3u * i + 1u;
        strcpy(node[i].host, hosts[i % 4u]);
        node[i].port = (uint16_t)(7000u + i);
        memset(node[i].x25519, 0x10 + i, 32);
        memset(node[i].ed25519, 0x30 + i, 32);
    }
    for (uint16_t c = 0; c < clients; c += 3) {
        client[c].allowed = true;
        memset(client[c].x25519, 0x50 + c, 32);
        memset(client[c].ed25519, 0x70 + c, 32);
    }
    struct cluster_map *map = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    int rc = cluster_map_build(pa, ids, node, m, client, clients, &map, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "fuzz_deploymap: seed: %s\n", err);
    FUZZ_CHECK(rc == 0);
    return map;
}

void fuzz_seeds(fuzz_seed_add_fn add)
{
    struct cluster_map_params single = {.epoch = 1, .f = 1, .rf = 4, .partitions = 1,
                                        .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
    struct cluster_map_params spread = {.epoch = 9, .f = 1, .rf = 4, .partitions = 16,
                                        .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
    struct cluster_map_params ring = {.epoch = 1u << 20, .f = 2, .rf = 7, .partitions = 8,
                                      .placement = CLUSTER_PLACEMENT_RING, .vnodes = 16};
    struct cluster_map *maps[3] = {seed_map(&single, 4, 1), seed_map(&spread, 7, 7), seed_map(&ring, 9, 4)};
    for (int i = 0; i < 3; i++)
        add(maps[i]->body, maps[i]->body_len);
    uint8_t *signed_map = NULL;
    size_t len = 0;
    FUZZ_CHECK(cluster_map_sign(maps[1], admin_sk, &signed_map, &len) == 0);
    add(signed_map, len);
    free(signed_map);
    for (int i = 0; i < 3; i++)
        cluster_map_free(maps[i]);
}
