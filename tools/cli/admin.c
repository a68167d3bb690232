/* `bftkv admin`: the deployment admin's commands (docs/design.md §6.2,
 * docs/operations.md "A deployment map").
 *
 *   bftkv admin init --nodes M --rf R --partitions P --dir DIR [--f F]
 *                    [--base-port PORT] [--host H] [--clients C] [--epoch E]
 *   bftkv admin show-map FILE --admin-pub PUB
 *   bftkv admin resign FILE --admin-key KEY --epoch E --out OUT
 *
 * init writes a new deployment into DIR: the admin key (admin.key, a key file
 * like every principal's, mode 0600; its Ed25519 public key in admin.pub), a
 * key per node (keys/node-<id>.key) and per client (keys/client-<id>.key),
 * and the signed map (map.bin) with its JSON rendering (map.json). Node I
 * listens on H:PORT+I. Nothing is overwritten: init refuses a DIR that holds
 * an admin key or a map already. show-map verifies FILE's signature with PUB
 * and prints the map as JSON; a map that does not verify or decode prints
 * nothing and exits 4. resign writes OUT: FILE's map (verified with KEY's
 * public key) at epoch E, signed by KEY; nothing else changes.
 *
 * Unlike main.c this file reads the cluster room's own header (cluster/
 * cluster.h): making and signing maps is the operator's business, not an
 * application's, and stays out of the installed API. It still links libbftkv.a
 * alone (the map and key code is in it; tools/cli/CMakeLists.txt).
 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"

#define ADMIN_ERR_MAX 1024u
#define ADMIN_PATH_MAX 4096u
#define ADMIN_BASE_PORT_DEFAULT 7000u
#define ADMIN_HOST_DEFAULT "127.0.0.1"

const char cli_admin_help[] =
    "Make and read the signed deployment map of a partitioned deployment (M nodes,\n"
    "P partitions, each a group of R replicas; docs/design.md \"The deployment map\").\n"
    "Reads no config.\n"
    "\n"
    "  admin init --nodes M --rf R --partitions P --dir DIR [--f F] [--base-port PORT]\n"
    "             [--host H] [--clients C] [--epoch E]\n"
    "      write a new deployment into DIR: admin.key (the admin's secret key, mode\n"
    "      0600) and admin.pub, keys/node-I.key for I < M and keys/client-I.key for\n"
    "      I < C (mode 0600), the signed map map.bin and its JSON form map.json. Node\n"
    "      I is H:PORT+I. Defaults: F = (R-1)/3 (R >= 3F+1), PORT 7000, H 127.0.0.1,\n"
    "      C 1, E 1. Overwrites nothing: exit 4 when DIR holds a deployment already.\n"
    "  admin show-map FILE --admin-pub PUB\n"
    "      verify FILE's signature with the admin public key in PUB and print the\n"
    "      map as JSON; exit 4 (and print nothing) when it does not verify or decode.\n"
    "  admin resign FILE --admin-key KEY --epoch E --out OUT\n"
    "      write OUT: the map of FILE (which must verify with KEY's public key) at\n"
    "      epoch E, signed by KEY (the admin.key of init). Overwrites nothing.\n";

static bool admin_json; /* bftkv --json admin ...: one JSON object per result (cli_admin) */

static int admin_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "bftkv: admin: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'bftkv admin --help'.\n");
    return EXIT_USAGE;
}

static bool admin_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* "--name VALUE" or "--name=VALUE" at args[*i]: VALUE, advancing *i past it, or
 * NULL when args[*i] is not that option. */
static const char *admin_opt(char **args, int nargs, int *i, const char *name, bool *missing)
{
    size_t n = strlen(name);
    const char *a = args[*i];
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= nargs) {
        *missing = true;
        return NULL;
    }
    *i += 1;
    return args[*i];
}

/* ---- Files ------------------------------------------------------------------------ */

/* Write len bytes to a new file at path (mode; never over an existing one). */
static int admin_file_write(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        fprintf(stderr, "bftkv: admin: %s: %s\n", path, strerror(errno));
        return BFTKV_E_IO;
    }
    const uint8_t *p = data;
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, p + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "bftkv: admin: writing %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            return BFTKV_E_IO;
        }
        done += (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        fprintf(stderr, "bftkv: admin: writing %s: %s\n", path, strerror(errno));
        unlink(path);
        return BFTKV_E_IO;
    }
    return 0;
}

/* Read the whole file at path into a new buffer (at most cap bytes). */
static int admin_file_read(const char *path, size_t cap, uint8_t **out, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        fprintf(stderr, "bftkv: admin: %s: %s\n", path, strerror(errno));
        return BFTKV_E_IO;
    }
    uint8_t *buf = malloc(cap + 1u);
    if (buf == NULL) {
        fclose(fp);
        fprintf(stderr, "bftkv: admin: out of memory\n");
        return BFTKV_E_NOMEM;
    }
    size_t n = fread(buf, 1, cap + 1u, fp);
    bool bad = ferror(fp) != 0;
    fclose(fp);
    if (bad || n > cap) {
        if (bad)
            fprintf(stderr, "bftkv: admin: reading %s: %s\n", path, strerror(errno));
        else
            fprintf(stderr, "bftkv: admin: %s: larger than %zu bytes\n", path, cap);
        free(buf);
        return bad ? BFTKV_E_IO : BFTKV_E_CORRUPT;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int admin_path(char *buf, const char *dir, const char *fmt, unsigned id)
{
    char name[64];
    snprintf(name, sizeof name, fmt, id);
    int n = snprintf(buf, ADMIN_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= ADMIN_PATH_MAX) {
        fprintf(stderr, "bftkv: admin: the path %s/%s is too long\n", dir, name);
        return BFTKV_E_RANGE;
    }
    return 0;
}

/* A new key file at path; its public halves into x25519 and ed25519. */
static int admin_key_new(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], uint8_t x25519[32],
                         uint8_t ed25519[32])
{
    char err[ADMIN_ERR_MAX];
    if (bftkv_key_generate(path, seed, err, sizeof err) != 0) {
        fprintf(stderr, "bftkv: admin: %s\n", err);
        return BFTKV_E_IO;
    }
    struct auth_keypair kp;
    auth_keypair_from_seed(&kp, seed);
    memcpy(x25519, kp.x_pk, 32);
    memcpy(ed25519, kp.sign_pk, 32);
    sodium_memzero(&kp, sizeof kp);
    return 0;
}

/* ---- init ---------------------------------------------------------------------------- */

struct admin_init {
    unsigned long nodes, rf, partitions, f, base_port, clients, epoch;
    bool have_f;
    const char *dir;
    const char *host;
};

static int admin_init_args(char **args, int nargs, struct admin_init *a)
{
    bool have[3] = {false, false, false};
    a->base_port = ADMIN_BASE_PORT_DEFAULT;
    a->host = ADMIN_HOST_DEFAULT;
    a->clients = 1;
    a->epoch = 1;
    for (int i = 0; i < nargs; i++) {
        bool missing = false;
        const char *v;
        if ((v = admin_opt(args, nargs, &i, "--nodes", &missing)) != NULL) {
            if (!admin_uint(v, 1, BFTKV_NODES_MAX, &a->nodes))
                return admin_usage("init: --nodes '%s' is not a number of nodes (1..1024)", v);
            have[0] = true;
        } else if ((v = admin_opt(args, nargs, &i, "--rf", &missing)) != NULL) {
            if (!admin_uint(v, 1, BFTKV_REPLICAS_MAX, &a->rf))
                return admin_usage("init: --rf '%s' is not a replication factor (1..64)", v);
            have[1] = true;
        } else if ((v = admin_opt(args, nargs, &i, "--partitions", &missing)) != NULL) {
            if (!admin_uint(v, 1, BFTKV_PARTITIONS_MAX, &a->partitions) || (a->partitions & (a->partitions - 1u)))
                return admin_usage("init: --partitions '%s' is not a power of two (1..4096)", v);
            have[2] = true;
        } else if ((v = admin_opt(args, nargs, &i, "--f", &missing)) != NULL) {
            if (!admin_uint(v, 0, BFTKV_FAULTS_MAX, &a->f))
                return admin_usage("init: --f '%s' is not a number of faults (0..21)", v);
            a->have_f = true;
        } else if ((v = admin_opt(args, nargs, &i, "--base-port", &missing)) != NULL) {
            if (!admin_uint(v, 1, 65535, &a->base_port))
                return admin_usage("init: --base-port '%s' is not a port (1..65535)", v);
        } else if ((v = admin_opt(args, nargs, &i, "--host", &missing)) != NULL) {
            a->host = v;
        } else if ((v = admin_opt(args, nargs, &i, "--clients", &missing)) != NULL) {
            if (!admin_uint(v, 1, BFTKV_CLIENTS_MAX, &a->clients))
                return admin_usage("init: --clients '%s' is not a number of clients (1..4096)", v);
        } else if ((v = admin_opt(args, nargs, &i, "--epoch", &missing)) != NULL) {
            if (!admin_uint(v, 0, ULONG_MAX, &a->epoch))
                return admin_usage("init: --epoch '%s' is not a number", v);
        } else if ((v = admin_opt(args, nargs, &i, "--dir", &missing)) != NULL) {
            a->dir = v;
        } else {
            return admin_usage(missing ? "init: option '%s' needs a value" : "init: unknown argument '%s'",
                               args[i]);
        }
    }
    if (!have[0] || !have[1] || !have[2] || a->dir == NULL)
        return admin_usage("%s", "init: --nodes, --rf, --partitions and --dir are required");
    if (!a->have_f)
        a->f = (a->rf - 1u) / 3u;
    if (a->rf < 3u * a->f + 1u || a->rf > a->nodes) {
        fprintf(stderr, "bftkv: admin: init: R = %lu replicas per partition needs 3f+1 = %lu <= R <= M = %lu\n",
                a->rf, 3u * a->f + 1u, a->nodes);
        return EXIT_USAGE;
    }
    if (a->base_port + a->nodes - 1u > 65535u) {
        fprintf(stderr, "bftkv: admin: init: ports %lu..%lu out of range\n", a->base_port,
                a->base_port + a->nodes - 1u);
        return EXIT_USAGE;
    }
    if (strlen(a->host) == 0 || strlen(a->host) > BFTKV_CONFIG_HOST_MAX)
        return admin_usage("init: --host '%s' is empty or too long", a->host);
    return EXIT_OK;
}

/* Nodes, clients and the map, once the admin key exists: everything but it. */
static int admin_init_write(const struct admin_init *a, const uint8_t admin_sk[64], char *path)
{
    uint32_t *ids = calloc(a->nodes, sizeof *ids);
    struct bftkv_config_replica *node = calloc(a->nodes, sizeof *node);
    struct bftkv_config_client *client = calloc(a->clients, sizeof *client);
    struct cluster_map *map = NULL;
    uint8_t *signed_map = NULL, seed[BFTKV_KEY_SEED_SIZE];
    size_t len = 0;
    int rc = ids != NULL && node != NULL && client != NULL ? 0 : BFTKV_E_NOMEM;
    for (unsigned long i = 0; rc == 0 && i < a->nodes; i++) {
        ids[i] = (uint32_t)i;
        strcpy(node[i].host, a->host);
        node[i].port = (uint16_t)(a->base_port + i);
        rc = admin_path(path, a->dir, "keys/node-%u.key", (unsigned)i);
        rc = rc != 0 ? rc : admin_key_new(path, seed, node[i].x25519, node[i].ed25519);
    }
    for (unsigned long c = 0; rc == 0 && c < a->clients; c++) {
        client[c].allowed = true;
        rc = admin_path(path, a->dir, "keys/client-%u.key", (unsigned)c);
        rc = rc != 0 ? rc : admin_key_new(path, seed, client[c].x25519, client[c].ed25519);
    }
    sodium_memzero(seed, sizeof seed);
    if (rc == 0) {
        struct cluster_map_params pa = {
            .epoch = a->epoch,
            .f = (uint16_t)a->f,
            .rf = (uint16_t)a->rf,
            .partitions = (uint32_t)a->partitions,
            .placement = CLUSTER_PLACEMENT_RENDEZVOUS,
        };
        char err[ADMIN_ERR_MAX];
        rc = cluster_map_build(&pa, ids, node, (uint16_t)a->nodes, client, (uint16_t)a->clients, &map, err,
                               sizeof err);
        if (rc != 0)
            fprintf(stderr, "bftkv: admin: init: %s\n", err);
    }
    rc = rc != 0 ? rc : cluster_map_sign(map, admin_sk, &signed_map, &len);
    rc = rc != 0 ? rc : admin_path(path, a->dir, "map.bin", 0);
    rc = rc != 0 ? rc : admin_file_write(path, signed_map, len, 0644);
    if (rc == 0) {
        char *json = NULL;
        size_t jlen = 0;
        FILE *fp = open_memstream(&json, &jlen);
        rc = fp != NULL ? cluster_map_json_write(map, fp) : BFTKV_E_NOMEM;
        if (fp != NULL && fclose(fp) != 0)
            rc = BFTKV_E_NOMEM;
        rc = rc != 0 ? rc : admin_path(path, a->dir, "map.json", 0);
        rc = rc != 0 ? rc : admin_file_write(path, json, jlen, 0644);
        free(json);
    }
    if (rc == BFTKV_E_NOMEM)
        fprintf(stderr, "bftkv: admin: init: out of memory\n");
    free(signed_map);
    cluster_map_free(map);
    free(client);
    free(node);
    free(ids);
    return rc;
}

static int admin_init(char **args, int nargs)
{
    struct admin_init a = {0};
    int code = admin_init_args(args, nargs, &a);
    if (code != EXIT_OK)
        return code;
    static char path[ADMIN_PATH_MAX];
    /* Nothing of an existing deployment is touched: refuse before writing. */
    static const char *const mine[] = {"admin.key", "admin.pub", "map.bin", "map.json"};
    for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) {
        struct stat st;
        if (admin_path(path, a.dir, mine[i], 0) != 0)
            return EXIT_USAGE;
        if (lstat(path, &st) == 0) {
            fprintf(stderr, "bftkv: admin: init: %s exists: %s holds a deployment already\n", path, a.dir);
            return EXIT_OTHER;
        }
    }
    if ((mkdir(a.dir, 0700) != 0 && errno != EEXIST) || admin_path(path, a.dir, "keys", 0) != 0 ||
        (mkdir(path, 0700) != 0 && errno != EEXIST)) {
        fprintf(stderr, "bftkv: admin: init: creating %s: %s\n", errno != 0 ? path : a.dir, strerror(errno));
        return EXIT_OTHER;
    }

    uint8_t seed[BFTKV_KEY_SEED_SIZE], pk[32], sk[64];
    char err[ADMIN_ERR_MAX], hex[65];
    if (admin_path(path, a.dir, "admin.key", 0) != 0 || bftkv_key_generate(path, seed, err, sizeof err) != 0) {
        fprintf(stderr, "bftkv: admin: %s\n", err);
        return EXIT_OTHER;
    }
    cluster_map_admin_keypair(seed, pk, sk);
    sodium_memzero(seed, sizeof seed);
    sodium_bin2hex(hex, sizeof hex, pk, sizeof pk);
    char pub[256];
    int plen = snprintf(pub, sizeof pub,
                        "# bftkv deployment admin public key (Ed25519): nodes and clients verify maps with it\n"
                        "%s\n",
                        hex);
    int rc = admin_path(path, a.dir, "admin.pub", 0);
    rc = rc != 0 ? rc : admin_file_write(path, pub, (size_t)plen, 0644);
    rc = rc != 0 ? rc : admin_init_write(&a, sk, path);
    sodium_memzero(sk, sizeof sk);
    if (rc != 0)
        return EXIT_OTHER;
    if (admin_json) {
        printf("{\"command\":\"admin init\",\"ok\":true,\"dir\":");
        cli_json_string(stdout, (const uint8_t *)a.dir, strlen(a.dir));
        printf(",\"nodes\":%lu,\"rf\":%lu,\"f\":%lu,\"partitions\":%lu,\"clients\":%lu,\"epoch\":%lu,"
               "\"admin_pub\":\"%s\",\"exit\":0}\n",
               a.nodes, a.rf, a.f, a.partitions, a.clients, a.epoch, hex);
    } else {
        printf("wrote %s: %lu nodes, R = %lu, f = %lu, %lu partitions, %lu clients, epoch %lu; admin key %s\n", a.dir,
               a.nodes, a.rf, a.f, a.partitions, a.clients, a.epoch, hex);
    }
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OTHER;
}

/* ---- show-map ------------------------------------------------------------------------- */

static int admin_show_map(char **args, int nargs)
{
    const char *file = NULL, *pub_path = NULL;
    for (int i = 0; i < nargs; i++) {
        bool missing = false;
        const char *v = admin_opt(args, nargs, &i, "--admin-pub", &missing);
        if (v != NULL)
            pub_path = v;
        else if (missing || args[i][0] == '-' || file != NULL)
            return admin_usage(missing ? "show-map: option '%s' needs a value" : "show-map: unexpected argument '%s'",
                               args[i]);
        else
            file = args[i];
    }
    if (file == NULL || pub_path == NULL)
        return admin_usage("%s", "usage: bftkv admin show-map FILE --admin-pub PUB");

    uint8_t *text = NULL, *map_bytes = NULL, pk[32];
    size_t tlen = 0, mlen = 0;
    char err[ADMIN_ERR_MAX];
    if (admin_file_read(pub_path, BFTKV_KEY_FILE_MAX, &text, &tlen) != 0)
        return EXIT_USAGE;
    int rc = bftkv_key_parse((const char *)text, tlen, pub_path, pk, err, sizeof err);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "bftkv: admin: %s (an admin.pub holds one line of 64 hex digits)\n", err);
        return EXIT_USAGE;
    }
    if (admin_file_read(file, CLUSTER_MAP_SIGNED_SIZE_MAX, &map_bytes, &mlen) != 0)
        return EXIT_OTHER;
    struct cluster_map *map = NULL;
    rc = cluster_map_open(map_bytes, mlen, pk, &map, err, sizeof err);
    free(map_bytes);
    if (rc != 0) {
        fprintf(stderr, "bftkv: admin: %s: %s\n", file, err);
        return EXIT_OTHER;
    }
    if (admin_json) {
        /* One line: the map's JSON without its line breaks (none sits inside
         * a string of it: ids, hosts, hex keys). */
        char *jtext = NULL;
        size_t jlen = 0;
        FILE *mem = open_memstream(&jtext, &jlen);
        rc = mem == NULL ? -1 : cluster_map_json_write(map, mem);
        if (mem != NULL && fclose(mem) != 0)
            rc = -1;
        if (rc == 0) {
            printf("{\"command\":\"admin show-map\",\"ok\":true,\"map\":");
            for (size_t i = 0; i < jlen; i++)
                if (jtext[i] != '\n')
                    putchar(jtext[i]);
            printf(",\"exit\":0}\n");
        }
        free(jtext);
    } else {
        rc = cluster_map_json_write(map, stdout);
    }
    cluster_map_free(map);
    if (rc != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "bftkv: admin: writing the map: %s\n", strerror(errno));
        return EXIT_OTHER;
    }
    return EXIT_OK;
}

/* ---- resign ---------------------------------------------------------------------------- */

static int admin_resign(char **args, int nargs)
{
    const char *file = NULL, *key = NULL, *out = NULL, *epoch_s = NULL;
    for (int i = 0; i < nargs; i++) {
        bool missing = false;
        const char *v;
        if ((v = admin_opt(args, nargs, &i, "--admin-key", &missing)) != NULL)
            key = v;
        else if ((v = admin_opt(args, nargs, &i, "--epoch", &missing)) != NULL)
            epoch_s = v;
        else if ((v = admin_opt(args, nargs, &i, "--out", &missing)) != NULL)
            out = v;
        else if (missing || args[i][0] == '-' || file != NULL)
            return admin_usage(missing ? "resign: option '%s' needs a value" : "resign: unexpected argument '%s'",
                               args[i]);
        else
            file = args[i];
    }
    unsigned long epoch = 0;
    if (file == NULL || key == NULL || out == NULL || epoch_s == NULL)
        return admin_usage("%s", "usage: bftkv admin resign FILE --admin-key KEY --epoch E --out OUT");
    if (!admin_uint(epoch_s, 0, ULONG_MAX, &epoch))
        return admin_usage("resign: --epoch '%s' is not a number", epoch_s);
    uint8_t seed[BFTKV_KEY_SEED_SIZE], pk[32], sk[64], *bytes = NULL, *signed_map = NULL;
    size_t blen = 0, slen = 0;
    char err[ADMIN_ERR_MAX] = "";
    if (bftkv_key_load(key, seed, err, sizeof err) != 0) {
        fprintf(stderr, "bftkv: admin: resign: %s\n", err);
        return EXIT_USAGE;
    }
    cluster_map_admin_keypair(seed, pk, sk);
    sodium_memzero(seed, sizeof seed);
    struct cluster_map *map = NULL, *next = NULL;
    int rc = admin_file_read(file, CLUSTER_MAP_SIGNED_SIZE_MAX, &bytes, &blen);
    rc = rc != 0 ? rc : cluster_map_open(bytes, blen, pk, &map, err, sizeof err);
    if (rc == 0) {
        struct cluster_map_params pa = map->params;
        pa.epoch = epoch;
        rc = cluster_map_build(&pa, map->node_id, map->node, map->m, map->client, map->clients, &next, err,
                               sizeof err);
    }
    rc = rc != 0 ? rc : cluster_map_sign(next, sk, &signed_map, &slen);
    sodium_memzero(sk, sizeof sk);
    if (rc == 0)
        rc = admin_file_write(out, signed_map, slen, 0644);
    else if (err[0] != '\0')
        fprintf(stderr, "bftkv: admin: resign: %s: %s\n", file, err);
    free(bytes);
    free(signed_map);
    cluster_map_free(map);
    cluster_map_free(next);
    if (rc != 0)
        return EXIT_OTHER;
    if (admin_json) {
        printf("{\"command\":\"admin resign\",\"ok\":true,\"out\":");
        cli_json_string(stdout, (const uint8_t *)out, strlen(out));
        printf(",\"epoch\":%lu,\"exit\":0}\n", epoch);
    } else {
        printf("wrote %s: the map of %s at epoch %lu\n", out, file, epoch);
    }
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_OTHER;
}

/* The admin command itself; cli_admin adds --json's failure object. */
static int admin_run(char **args, int nargs)
{
    if (nargs == 0)
        return admin_usage("%s", "no admin command given (init, show-map, resign)");
    /* --help anywhere describes the commands and touches nothing. */
    for (int i = 0; i < nargs; i++) {
        if (strcmp(args[i], "--help") == 0 || strcmp(args[i], "-h") == 0) {
            printf("usage: bftkv [OPTIONS] admin init|show-map|resign ARGS\n\n%s", cli_admin_help);
            return EXIT_OK;
        }
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "bftkv: admin: libsodium failed to initialise\n");
        return EXIT_OTHER;
    }
    if (strcmp(args[0], "init") == 0)
        return admin_init(args + 1, nargs - 1);
    if (strcmp(args[0], "show-map") == 0)
        return admin_show_map(args + 1, nargs - 1);
    if (strcmp(args[0], "resign") == 0)
        return admin_resign(args + 1, nargs - 1);
    return admin_usage("unknown admin command '%s' (init, show-map, resign)", args[0]);
}

int cli_admin(char **args, int nargs, bool json)
{
    admin_json = json;
    int code = admin_run(args, nargs);
    /* --json: a failure is a result too (usage errors print nothing on stdout,
     * as for every command); the message is on stderr. */
    if (json && code != EXIT_OK && code != EXIT_USAGE && nargs > 0) {
        char what[64];
        snprintf(what, sizeof what, "admin %s", args[0]);
        printf("{\"command\":");
        cli_json_string(stdout, (const uint8_t *)what, strlen(what));
        printf(",\"ok\":false,\"exit\":%d}\n", code);
        fflush(stdout);
    }
    return code;
}
