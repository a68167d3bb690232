/* Unit tests of a deployment's file (cluster/deployment.c, the deployment_map
 * and admin_pub directives; docs/config.md "A deployment"):
 *
 *  - a deployment of M = 7 nodes, R = 4, P = 16 written to a temporary
 *    directory (key files, signed map, admin.pub, the file) loads, and the map
 *    opens with the admin key given as a file or as hex;
 *  - each partition's group is the map's: group p, n = R, f, replica i = the
 *    i-th node of p's set, the map's allow-list, data_dir/partition-<p>; the
 *    node's slot in it is its index there; each node key loads and matches;
 *  - protocol_threads K moves partition p's addresses to port + (p mod K) * M;
 *  - refused: a map signed by another key, a map with one byte changed, a
 *    deployment_map without admin_pub (and the reverse), group lines beside a
 *    map, a node key that is another node's.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "engine/auth.h"

#define M 7u
#define R 4u
#define P 16u

static char dir[64];
static uint8_t admin_pk[32], admin_sk[64], other_sk[64];
static struct cluster_map *built;

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void file_put(const char *name, const void *bytes, size_t len)
{
    char path[128];
    path_of(path, sizeof path, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void map_write(const uint8_t sk[64], int flip_at)
{
    uint8_t *signed_map = NULL;
    size_t len = 0;
    assert_int_equal(cluster_map_sign(built, sk, &signed_map, &len), 0);
    if (flip_at >= 0)
        signed_map[flip_at] ^= 0x01;
    file_put("map.bin", signed_map, len);
    free(signed_map);
}

/* The deployment on disk: keys/node-<id>.key, keys/client-0.key, map.bin, admin.pub. */
static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/bftkv-deployment-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[128], err[256];
    path_of(path, sizeof path, "keys");
    assert_int_equal(mkdir(path, 0700), 0);
    uint32_t ids[M];
    struct bftkv_config_replica node[M];
    memset(node, 0, sizeof node);
    uint8_t seed[32];
    for (uint32_t i = 0; i < M; i++) {
        ids[i] = i;
        char name[64];
        snprintf(name, sizeof name, "keys/node-%u.key", i);
        path_of(path, sizeof path, name);
        assert_int_equal(bftkv_key_generate(path, seed, err, sizeof err), 0);
        struct auth_keypair kp;
        auth_keypair_from_seed(&kp, seed);
        memcpy(node[i].x25519, kp.x_pk, 32);
        memcpy(node[i].ed25519, kp.sign_pk, 32);
        snprintf(node[i].host, sizeof node[i].host, "127.0.0.1");
        node[i].port = (uint16_t)(28900u + i);
    }
    struct bftkv_config_client client[1];
    memset(client, 0, sizeof client);
    path_of(path, sizeof path, "keys/client-0.key");
    assert_int_equal(bftkv_key_generate(path, seed, err, sizeof err), 0);
    struct auth_keypair kp;
    auth_keypair_from_seed(&kp, seed);
    client[0].allowed = true;
    memcpy(client[0].x25519, kp.x_pk, 32);
    memcpy(client[0].ed25519, kp.sign_pk, 32);
    struct cluster_map_params params = {.epoch = 3, .f = 1, .rf = R, .partitions = P,
                                        .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
    assert_int_equal(cluster_map_build(&params, ids, node, M, client, 1, &built, err, sizeof err), 0);
    randombytes_buf(seed, sizeof seed);
    cluster_map_admin_keypair(seed, admin_pk, admin_sk);
    randombytes_buf(seed, sizeof seed);
    uint8_t other_pk[32];
    cluster_map_admin_keypair(seed, other_pk, other_sk);
    char hex[65], pub[128];
    sodium_bin2hex(hex, sizeof hex, admin_pk, 32);
    int n = snprintf(pub, sizeof pub, "# admin public key\n%s\n", hex);
    file_put("admin.pub", pub, (size_t)n);
    map_write(admin_sk, -1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cluster_map_free(built);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Load the file whose text is text (written as deploy.conf); the parse's code. */
static int load(const char *text, struct bftkv_config **cfg, char *err, size_t errlen)
{
    file_put("deploy.conf", text, strlen(text));
    char path[128];
    path_of(path, sizeof path, "deploy.conf");
    return bftkv_config_load(path, cfg, err, errlen);
}

static void test_open_and_groups(void **state)
{
    (void)state;
    char err[512] = "";
    struct bftkv_config *cfg = NULL;
    int rc = load("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\ndata_dir data\n", &cfg, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_true(cluster_deployment_is(cfg));
    struct cluster_map *map = NULL;
    rc = cluster_deployment_open(cfg, &map, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_int_equal(map->params.epoch, 3);
    assert_int_equal(map->body_len, built->body_len);
    assert_memory_equal(map->body, built->body, map->body_len);
    uint32_t held[M] = {0};
    for (uint32_t p = 0; p < P; p++) {
        struct bftkv_config *g = NULL;
        assert_int_equal(cluster_deployment_group(cfg, map, p, &g, err, sizeof err), 0);
        assert_false(cluster_deployment_is(g));
        assert_int_equal(g->group, p);
        assert_int_equal(g->n, R);
        assert_int_equal(g->f, 1);
        assert_int_equal(g->clients, 1);
        assert_true(g->client[0].allowed);
        char want[160];
        snprintf(want, sizeof want, "%s/data/partition-%u", dir, p);
        assert_true(strstr(g->data_dir, "/data/partition-") != NULL);
        assert_string_equal(strrchr(g->data_dir, '/'), strrchr(want, '/'));
        const uint16_t *set = cluster_map_partition_replicas(map, p);
        for (uint16_t i = 0; i < R; i++) {
            assert_int_equal(g->replica[i].port, map->node[set[i]].port);
            assert_memory_equal(g->replica[i].x25519, map->node[set[i]].x25519, 32);
            assert_int_equal(cluster_deployment_slot(map, set[i], p), i);
            held[set[i]]++;
        }
        uint32_t outside = 0;
        for (uint16_t node = 0; node < M; node++)
            outside += cluster_deployment_slot(map, node, p) == BFTKV_E_NOT_FOUND;
        assert_int_equal(outside, M - R);
        bftkv_config_free(g);
    }
    uint32_t total = 0;
    for (uint16_t node = 0; node < M; node++) {
        total += held[node];
        struct auth_keypair kp;
        rc = cluster_deployment_node_identity(cfg, map, node, &kp, err, sizeof err);
        if (rc != 0)
            fail_msg("node %u: %s", node, err);
        assert_memory_equal(kp.x_pk, map->node[node].x25519, 32);
    }
    assert_int_equal(total, R * P);
    cluster_map_free(map);
    bftkv_config_free(cfg);

    /* The key in hex works the same. */
    char hex[65], text[256];
    sodium_bin2hex(hex, sizeof hex, admin_pk, 32);
    snprintf(text, sizeof text, "deployment_map map.bin\nadmin_pub %s\nkey_dir keys\n", hex);
    assert_int_equal(load(text, &cfg, err, sizeof err), 0);
    assert_int_equal(cluster_deployment_open(cfg, &map, err, sizeof err), 0);
    cluster_map_free(map);
    bftkv_config_free(cfg);
}

static void test_protocol_threads_ports(void **state)
{
    (void)state;
    char err[512] = "";
    struct bftkv_config *cfg = NULL;
    assert_int_equal(load("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\nprotocol_threads 3\n", &cfg,
                          err, sizeof err), 0);
    struct cluster_map *map = NULL;
    assert_int_equal(cluster_deployment_open(cfg, &map, err, sizeof err), 0);
    for (uint32_t p = 0; p < P; p++) {
        struct bftkv_config *g = NULL;
        assert_int_equal(cluster_deployment_group(cfg, map, p, &g, err, sizeof err), 0);
        const uint16_t *set = cluster_map_partition_replicas(map, p);
        for (uint16_t i = 0; i < R; i++)
            assert_int_equal(g->replica[i].port, map->node[set[i]].port + (p % 3u) * M);
        bftkv_config_free(g);
    }
    cluster_map_free(map);
    bftkv_config_free(cfg);
}

static void expect_open_refused(int want, const char *needle)
{
    char err[512] = "";
    struct bftkv_config *cfg = NULL;
    assert_int_equal(load("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\n", &cfg, err, sizeof err), 0);
    struct cluster_map *map = NULL;
    assert_int_equal(cluster_deployment_open(cfg, &map, err, sizeof err), want);
    assert_null(map);
    if (strstr(err, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err, needle);
    bftkv_config_free(cfg);
}

static void test_bad_maps_refused(void **state)
{
    (void)state;
    map_write(other_sk, -1);
    expect_open_refused(BFTKV_E_AUTH, "does not verify");
    map_write(admin_sk, 40); /* a byte of the first node's entry */
    expect_open_refused(BFTKV_E_AUTH, "refusing");
    map_write(admin_sk, -1); /* the later tests' map */
}

static void expect_load_refused(const char *text, const char *needle)
{
    char err[512] = "";
    struct bftkv_config *cfg = NULL;
    assert_int_equal(load(text, &cfg, err, sizeof err), BFTKV_E_CONFIG);
    assert_null(cfg);
    if (strstr(err, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", err, needle);
}

static void test_file_refusals(void **state)
{
    (void)state;
    expect_load_refused("deployment_map map.bin\nkey_dir keys\n", "needs admin_pub");
    expect_load_refused("f 0\nreplica 0 127.0.0.1:1 x25519=0000000000000000000000000000000000000000000000000000000000000000 "
                        "ed25519=0000000000000000000000000000000000000000000000000000000000000000\nkey_dir keys\n"
                        "protocol_threads 2\n",
                        "protocol_threads is for a deployment");
    expect_load_refused("admin_pub admin.pub\nkey_dir keys\n", "without deployment_map");
    expect_load_refused("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\nf 1\n", "do not go with");
    expect_load_refused("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\nadmin_client 0\n",
                        "admin_client does not go with deployment_map");
    /* A deployment's file defaults to durability none (its nodes take nothing
     * else yet), data_dir or not; metrics_listen ID names a node. */
    struct bftkv_config *cfg = NULL;
    char err[512] = "";
    assert_int_equal(load("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\ndata_dir data\n"
                          "metrics_listen 3 127.0.0.1:9103\n",
                          &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_NONE);
    const char *host = NULL;
    uint16_t port = 0;
    assert_true(bftkv_config_metrics_address(cfg, 3, &host, &port));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9103);
    assert_false(bftkv_config_metrics_address(cfg, 2, &host, &port));
    bftkv_config_free(cfg);
    expect_load_refused("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\n"
                        "client 0 x25519=0000000000000000000000000000000000000000000000000000000000000000 "
                        "ed25519=0000000000000000000000000000000000000000000000000000000000000000\n",
                        "do not go with");
    /* A discovering client's file (docs/config.md "A client that discovers"). */
    expect_load_refused("deployment_seeds 127.0.0.1:1\nkey_dir keys\n", "deployment_seeds needs admin_pub");
    expect_load_refused("deployment_map map.bin\ndeployment_seeds 127.0.0.1:1\nadmin_pub admin.pub\nkey_dir keys\n",
                        "does not go with deployment_map");
    expect_load_refused("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\nmap_cache m.bin\n",
                        "map_cache without deployment_seeds");
    expect_load_refused("deployment_seeds 127.0.0.1:1,nohost\nadmin_pub admin.pub\nkey_dir keys\n", "bad address");
    expect_load_refused("deployment_seeds 127.0.0.1:1\nadmin_pub admin.pub\nkey_dir keys\nf 1\n", "do not go with");
}

/* deployment_seeds and map_cache: parsed in order, written back by
 * bftkv_config_write to the same values; the file is a deployment's, and a
 * node refuses it (it serves the map of its own file). */
static void test_seeds_file(void **state)
{
    (void)state;
    char err[512] = "";
    struct bftkv_config *cfg = NULL;
    assert_int_equal(load("deployment_seeds 127.0.0.1:30000,[::1]:30001,seed.example:7\nadmin_pub admin.pub\n"
                          "key_dir keys\nmap_cache cache/map.bin\n",
                          &cfg, err, sizeof err),
                     0);
    assert_true(cluster_deployment_is(cfg));
    assert_int_equal(cfg->seeds, 3);
    assert_string_equal(cfg->seed[0].host, "127.0.0.1");
    assert_int_equal(cfg->seed[0].port, 30000);
    assert_string_equal(cfg->seed[1].host, "::1");
    assert_int_equal(cfg->seed[2].port, 7);
    assert_non_null(strstr(cfg->map_cache, "/cache/map.bin"));
    struct cluster_map *map = NULL;
    assert_int_equal(cluster_deployment_open(cfg, &map, err, sizeof err), BFTKV_E_INVAL);
    assert_non_null(strstr(err, "deployment_seeds is for clients"));
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    assert_non_null(fp);
    assert_int_equal(bftkv_config_write(cfg, fp), 0);
    fclose(fp);
    struct bftkv_config *back = NULL;
    assert_int_equal(bftkv_config_parse(text, len, "written", &back, err, sizeof err), 0);
    assert_int_equal(back->seeds, 3);
    for (uint16_t i = 0; i < 3; i++) {
        assert_string_equal(back->seed[i].host, cfg->seed[i].host);
        assert_int_equal(back->seed[i].port, cfg->seed[i].port);
    }
    assert_string_equal(back->map_cache, cfg->map_cache);
    free(text);
    bftkv_config_free(back);
    bftkv_config_free(cfg);
}

static void test_wrong_node_key_refused(void **state)
{
    (void)state;
    char err[512] = "", a[128], b[128];
    struct bftkv_config *cfg = NULL;
    assert_int_equal(load("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\n", &cfg, err, sizeof err), 0);
    struct cluster_map *map = NULL;
    assert_int_equal(cluster_deployment_open(cfg, &map, err, sizeof err), 0);
    /* node-1.key swapped in as node-0.key */
    path_of(a, sizeof a, "keys/node-0.key");
    path_of(b, sizeof b, "keys/node-1.key");
    char c[128];
    path_of(c, sizeof c, "keys/node-0.saved");
    assert_int_equal(rename(a, c), 0);
    assert_int_equal(link(b, a), 0);
    struct auth_keypair kp;
    assert_int_equal(cluster_deployment_node_identity(cfg, map, 0, &kp, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "does not match node 0"));
    assert_int_equal(rename(c, a), 0);
    assert_int_equal(cluster_deployment_node_identity(cfg, map, 0, &kp, err, sizeof err), 0);
    cluster_map_free(map);
    bftkv_config_free(cfg);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_groups),
        cmocka_unit_test(test_protocol_threads_ports),
        cmocka_unit_test(test_bad_maps_refused),
        cmocka_unit_test(test_file_refusals),
        cmocka_unit_test(test_seeds_file),
        cmocka_unit_test(test_wrong_node_key_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
