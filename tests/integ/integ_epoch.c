/* integ_epoch: one open routing handle through a change of the deployment's
 * map epoch (client/client_epoch.c, docs/design.md §6.3), driven by
 * test_deployment_epoch.py.
 *
 *   integ_epoch --config FILE --client C
 *   integ_epoch --remap MAP --admin-key KEY --partitions P --epoch E --out OUT
 *
 * Opens the handle once, then reads commands from stdin, one a line:
 *   round TAG   PUT a fresh value to two keys of every partition (chosen by
 *               the routed map's key hash), GET each back and compare; print
 *               one line "epoch {json}": the operations that succeeded and
 *               failed, and the handle's map counters (bftkv_client_stats:
 *               map_epoch, map_epoch_claimed, map_fetches,
 *               map_fetch_failures, map_notices, map_epoch_pending)
 *   quit        close the handle and exit
 * Exit 0 after quit, 2 on bad arguments or an open that fails. Bounded: at
 * most EPOCH_ROUNDS_MAX rounds, each operation within the handle's timeout.
 *
 * --remap writes MAP (a signed map, not verified here) with P partitions at
 * epoch E, signed with the admin key file KEY: the same nodes and clients,
 * partitions placed anew -- a map `bftkv admin` cannot make yet, for a test
 * of a map that moves partitions. Exit 0, or 2 with a message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "client/client_internal.h"
#include "cluster/cluster.h"

#define EPOCH_ROUNDS_MAX 100u
#define EPOCH_KEY_CAP 48u
#define EPOCH_KEY_TRIES 1000000u

/* Two keys of each partition of the routed map: key[2p] and key[2p + 1]. */
static int pick_keys(struct bftkv_client *r, char (*key)[EPOCH_KEY_CAP])
{
    uint32_t *have = calloc(r->parts, sizeof *have);
    if (have == NULL)
        return -1;
    uint32_t missing = 2u * r->parts;
    for (uint32_t i = 0; i < EPOCH_KEY_TRIES && missing > 0; i++) {
        char k[EPOCH_KEY_CAP];
        int len = snprintf(k, sizeof k, "epoch-%" PRIu32, i);
        uint32_t p = cluster_map_key_partition(client_epoch_map(r), k, (size_t)len);
        if (have[p] < 2u) {
            memcpy(key[2u * p + have[p]], k, (size_t)len + 1u);
            have[p]++;
            missing--;
        }
    }
    free(have);
    return missing == 0 ? 0 : -1;
}

static void round_run(struct bftkv_client *r, char (*key)[EPOCH_KEY_CAP], const char *tag)
{
    unsigned ok = 0, failed = 0;
    char val[96], got[96];
    for (uint32_t i = 0; i < 2u * r->parts; i++) {
        int len = snprintf(val, sizeof val, "%s-%s", tag, key[i]);
        int rc = bftkv_put(r, key[i], strlen(key[i]), val, (size_t)len);
        size_t glen = 0;
        if (rc == 0)
            rc = bftkv_get(r, key[i], strlen(key[i]), got, sizeof got, &glen);
        if (rc == 0 && (glen != (size_t)len || memcmp(got, val, glen) != 0))
            rc = BFTKV_E_CORRUPT;
        if (rc == 0) {
            ok++;
        } else {
            failed++;
            fprintf(stderr, "integ_epoch: %s: key %s: %s\n", tag, key[i], bftkv_strerror(rc));
        }
    }
    struct bftkv_client_stats st = {.struct_size = sizeof st};
    if (bftkv_client_stats(r, &st) != 0)
        failed++;
    printf("epoch {\"round\":\"%s\",\"ok\":%u,\"failed\":%u,\"map_epoch\":%" PRIu64 ",\"claimed\":%" PRIu64
           ",\"fetches\":%" PRIu64 ",\"fetch_failures\":%" PRIu64 ",\"notices\":%" PRIu64 ",\"pending\":%" PRIu64
           "}\n",
           tag, ok, failed, st.map_epoch, st.map_epoch_claimed, st.map_fetches, st.map_fetch_failures,
           st.map_notices, st.map_epoch_pending);
    fflush(stdout);
}

static int remap(const char *in, const char *key, unsigned long partitions, unsigned long long epoch,
                 const char *out)
{
    char err[512] = "";
    uint8_t *bytes = NULL, seed[BFTKV_KEY_SEED_SIZE], pk[32], sk[64];
    size_t len = 0;
    struct cluster_map *map = NULL, *built = NULL;
    int rc = cluster_file_read(in, CLUSTER_MAP_SIGNED_SIZE_MAX, &bytes, &len, err, sizeof err);
    rc = rc != 0 ? rc : bftkv_key_load(key, seed, err, sizeof err);
    if (rc == 0)
        cluster_map_admin_keypair(seed, pk, sk);
    rc = rc != 0 ? rc : cluster_map_open(bytes, len, pk, &map, err, sizeof err);
    if (rc == 0) {
        struct cluster_map_params pa = map->params;
        pa.partitions = (uint32_t)partitions;
        pa.epoch = epoch;
        rc = cluster_map_build(&pa, map->node_id, map->node, map->m, map->client, map->clients, &built, err,
                               sizeof err);
    }
    free(bytes);
    bytes = NULL;
    rc = rc != 0 ? rc : cluster_map_sign(built, sk, &bytes, &len);
    FILE *fp = rc == 0 ? fopen(out, "wb") : NULL;
    if (rc == 0 && (fp == NULL || fwrite(bytes, 1, len, fp) != len))
        rc = BFTKV_E_IO;
    if (fp != NULL && fclose(fp) != 0)
        rc = BFTKV_E_IO;
    if (rc != 0)
        fprintf(stderr, "integ_epoch --remap: %s: %s\n", bftkv_strerror(rc), err);
    free(bytes);
    cluster_map_free(map);
    cluster_map_free(built);
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *remap_in = NULL, *admin_key = NULL, *out = NULL;
    long client = -1;
    unsigned long partitions = 0;
    unsigned long long epoch = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0)
            config = argv[i + 1];
        else if (strcmp(argv[i], "--client") == 0)
            client = strtol(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--remap") == 0)
            remap_in = argv[i + 1];
        else if (strcmp(argv[i], "--admin-key") == 0)
            admin_key = argv[i + 1];
        else if (strcmp(argv[i], "--partitions") == 0)
            partitions = strtoul(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--epoch") == 0)
            epoch = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
    }
    if (remap_in != NULL) {
        if (admin_key == NULL || out == NULL || partitions == 0 || epoch == 0) {
            fprintf(stderr, "usage: integ_epoch --remap MAP --admin-key KEY --partitions P --epoch E --out OUT\n");
            return 2;
        }
        return remap(remap_in, admin_key, partitions, epoch, out);
    }
    if (config == NULL || client < 0 || client > UINT16_MAX) {
        fprintf(stderr, "usage: integ_epoch --config FILE --client C\n");
        return 2;
    }
    char err[1024] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    struct bftkv_client *r = NULL;
    int rc = bftkv_client_open(config, (uint16_t)client, &opt, &r);
    if (rc != 0 || r->part == NULL) {
        fprintf(stderr, "integ_epoch: open %s: %s: %s\n", config, bftkv_strerror(rc), err);
        return 2;
    }
    char (*key)[EPOCH_KEY_CAP] = calloc(2u * r->parts, sizeof *key);
    if (key == NULL || pick_keys(r, key) != 0) {
        fprintf(stderr, "integ_epoch: no keys for every partition\n");
        bftkv_client_close(r);
        return 2;
    }
    char line[128];
    unsigned rounds = 0;
    while (fgets(line, sizeof line, stdin) != NULL && rounds < EPOCH_ROUNDS_MAX) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "round ", 6) == 0) {
            round_run(r, key, line + 6);
            rounds++;
        } else if (strcmp(line, "quit") == 0) {
            break;
        }
    }
    free(key);
    bftkv_client_close(r);
    return 0;
}
