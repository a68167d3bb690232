/* The config file on disk and in use: reading one (relative key_dir made
 * absolute), writing one (tools that build a cluster in code), and mapping a
 * parsed config onto the engine's replica and client configurations, key file
 * paths and socket addresses (include/bftkv/config.h, cluster/cluster.h); and a new
 * key file for a config line (bftkv_config_keygen).
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "engine/pbft.h"
#include "cluster/config_internal.h"

/* ---- Reading ------------------------------------------------------------------------------ */

int bftkv_config_load(const char *path, struct bftkv_config **out, char *err, size_t errlen)
{
    if (path == NULL || out == NULL) {
        errbuf_put(err, errlen, "config: invalid argument");
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    if (strlen(path) > BFTKV_CONFIG_PATH_MAX) {
        errbuf_put(err, errlen, "%.64s...: path too long", path);
        return BFTKV_E_CONFIG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang us */
    if (fd < 0) {
        errbuf_put(err, errlen, "%s: %s", path, strerror(errno));
        return BFTKV_E_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errbuf_put(err, errlen, "%s: not a regular file", path);
        close(fd);
        return BFTKV_E_CONFIG;
    }
    if (st.st_size > (off_t)BFTKV_CONFIG_FILE_MAX) {
        errbuf_put(err, errlen, "%s: file larger than %u bytes", path, BFTKV_CONFIG_FILE_MAX);
        close(fd);
        return BFTKV_E_CONFIG;
    }
    size_t cap = (size_t)st.st_size + 1u, len = 0;
    char *text = malloc(cap);
    if (text == NULL) {
        close(fd);
        errbuf_put(err, errlen, "%s: out of memory", path);
        return BFTKV_E_NOMEM;
    }
    /* Read to EOF (bounded by the size fstat saw, plus one byte to see growth). */
    int rc = config_fd_read(fd, text, cap, &len, path, err, errlen);
    close(fd);
    if (rc == 0 && len == cap) {
        errbuf_put(err, errlen, "%s: file changed while being read", path);
        rc = BFTKV_E_IO;
    }

    /* Relative key_dir: against the file's directory, made absolute so a later
     * chdir does not move the keys. */
    char *real = rc == 0 ? realpath(path, NULL) : NULL;
    if (rc == 0 && real == NULL) {
        errbuf_put(err, errlen, "%s: %s", path, strerror(errno));
        rc = BFTKV_E_IO;
    }
    if (rc == 0) {
        char *slash = strrchr(real, '/');
        BFTKV_ASSERT(slash != NULL); /* realpath returns an absolute path */
        if (slash == real)
            slash[1] = '\0';
        else
            *slash = '\0';
        rc = config_parse_text(text, len, path, real, out, err, errlen);
    }
    free(real);
    free(text);
    return rc;
}

int config_fd_read(int fd, char *buf, size_t cap, size_t *len, const char *path, char *err, size_t errlen)
{
    *len = 0;
    while (*len < cap) {
        ssize_t got = read(fd, buf + *len, cap - *len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            errbuf_put(err, errlen, "%s: %s", path, strerror(errno));
            return BFTKV_E_IO;
        }
        if (got == 0)
            break;
        *len += (size_t)got;
    }
    return 0;
}

/* ---- Writing ------------------------------------------------------------------------------ */

static void keys_write(FILE *fp, const uint8_t x25519[32], const uint8_t ed25519[32])
{
    char x[65], ed[65];
    config_hex_encode(x, x25519);
    config_hex_encode(ed, ed25519);
    fprintf(fp, " x25519=%s ed25519=%s\n", x, ed);
}

/* A group's lines: group, f, every replica, the allow-list. */
static void config_group_write(const struct bftkv_config *cfg, FILE *fp)
{
    fprintf(fp, "group %u\nf %u\n", cfg->group, cfg->f);
    for (uint16_t i = 0; i < cfg->n && i < BFTKV_REPLICAS_MAX; i++) {
        const struct bftkv_config_replica *r = &cfg->replica[i];
        bool v6 = strchr(r->host, ':') != NULL;
        fprintf(fp, "replica %u %s%s%s:%u", i, v6 ? "[" : "", r->host, v6 ? "]" : "", r->port);
        keys_write(fp, r->x25519, r->ed25519);
    }
    fprintf(fp, "\n");
    for (uint16_t i = 0; i < cfg->clients && i < BFTKV_CLIENTS_MAX; i++) {
        if (cfg->client[i].allowed) {
            fprintf(fp, "client %u", i);
            keys_write(fp, cfg->client[i].x25519, cfg->client[i].ed25519);
        }
    }
    for (uint16_t i = 0; i < cfg->clients && i < BFTKV_CLIENTS_MAX; i++)
        if (cfg->client[i].allowed && cfg->client[i].admin_line != 0)
            fprintf(fp, "admin_client %u\n", i);
}

/* Every directive, defaults included, so the file says what the group runs with
 * (the round-trip test checks that parsing it gives back every field). */
int bftkv_config_write(const struct bftkv_config *cfg, FILE *fp)
{
    if (cfg == NULL || fp == NULL)
        return BFTKV_E_INVAL;
    fprintf(fp, "# bftkv cluster configuration (docs/config.md)\n\n");
    if (cfg->deployment_map[0] != '\0' || cfg->seeds > 0) {
        /* A deployment's file: the map holds the group lines. */
        char hex[65];
        config_hex_encode(hex, cfg->admin_pub);
        if (cfg->deployment_map[0] != '\0')
            fprintf(fp, "deployment_map %s\n", cfg->deployment_map);
        for (uint16_t i = 0; i < cfg->seeds; i++) {
            bool v6 = strchr(cfg->seed[i].host, ':') != NULL;
            fprintf(fp, "%s%s%s%s:%u", i == 0 ? "deployment_seeds " : ",", v6 ? "[" : "", cfg->seed[i].host,
                    v6 ? "]" : "", cfg->seed[i].port);
        }
        fprintf(fp, "%sadmin_pub %s\n", cfg->seeds > 0 ? "\n" : "", cfg->admin_pub_set ? hex : cfg->admin_pub_path);
        if (cfg->map_cache[0] != '\0')
            fprintf(fp, "map_cache %s\n", cfg->map_cache);
    } else {
        config_group_write(cfg, fp);
    }
    fprintf(fp, "\nkey_dir %s\n", cfg->key_dir);
    if (cfg->data_dir[0] != '\0')
        fprintf(fp, "data_dir %s\n", cfg->data_dir);
    fprintf(fp, "durability %s\n", bftkv_config_durability_name(cfg->durability));
    fprintf(fp, "snapshot_log_bytes %u\n", cfg->snapshot_log_bytes);
    fprintf(fp, "\n");
    fprintf(fp, "batch_max_requests %u\n", cfg->batch_max_requests);
    fprintf(fp, "batch_max_bytes %u\n", cfg->batch_max_bytes);
    fprintf(fp, "window %u\n", cfg->window);
    fprintf(fp, "checkpoint_interval %u\n", cfg->checkpoint_interval);
    fprintf(fp, "log_window %u\n", cfg->log_window);
    fprintf(fp, "request_timeout_ms %u\n", cfg->request_timeout_ms);
    fprintf(fp, "retransmit_ms %u\n", cfg->retransmit_ms);
    fprintf(fp, "client_lanes %u\n", cfg->client_lanes);
    fprintf(fp, "readonly_fast_path %s\n", cfg->readonly_fast_path ? "on" : "off");
    fprintf(fp, "client_timeout_ms %u\n", cfg->client_timeout_ms);
    if (cfg->threads == BFTKV_CONFIG_THREADS_STAGED)
        fprintf(fp, "threads staged auth_workers=%u\n", cfg->auth_workers);
    else
        fprintf(fp, "threads single\n");
    fprintf(fp, "socket_rcvbuf %u\n", cfg->socket_rcvbuf);
    fprintf(fp, "socket_sndbuf %u\n", cfg->socket_sndbuf);
    fprintf(fp, "store_shards %u\n", cfg->store_shards);
    fprintf(fp, "test_modes %s\n", cfg->test_modes ? "on" : "off");
    fprintf(fp, "log_level %s\n", bftkv_config_log_level_name(cfg->log_level));
    if (cfg->protocol_threads != 1)
        fprintf(fp, "protocol_threads %u\n", cfg->protocol_threads);
    /* metrics_listen: off unless set (no default line to write) */
    if (cfg->metrics_port != 0) {
        bool v6 = strchr(cfg->metrics_host, ':') != NULL;
        fprintf(fp, "metrics_listen %s%s%s:%u\n", v6 ? "[" : "", cfg->metrics_host, v6 ? "]" : "", cfg->metrics_port);
    }
    for (uint16_t i = 0; i < cfg->n && i < BFTKV_REPLICAS_MAX; i++) {
        const struct bftkv_config_replica *r = &cfg->replica[i];
        if (r->metrics_port == 0)
            continue;
        bool v6 = strchr(r->metrics_host, ':') != NULL;
        fprintf(fp, "metrics_listen %u %s%s%s:%u\n", i, v6 ? "[" : "", r->metrics_host, v6 ? "]" : "", r->metrics_port);
    }
    return fflush(fp) != 0 || ferror(fp) ? BFTKV_E_IO : 0;
}

/* ---- Mapping onto the engine and the network ---------------------------------------------- */

/* The engine's tuning that a config file sets, field for field (all uint32_t on
 * both sides): config_defaults takes them from the engine, filling gives them
 * back, so the two directions cannot drift apart. */
#define TUNING(f) {offsetof(struct bftkv_config, f), offsetof(struct pbft_replica_config, f)}
static const struct {
    size_t config;
    size_t engine;
} tuning[] = {
    TUNING(batch_max_requests), TUNING(batch_max_bytes), TUNING(window), TUNING(checkpoint_interval),
    TUNING(log_window),
};
#undef TUNING
#define TUNING_U32(f) (sizeof(((struct bftkv_config *)0)->f) == 4 && sizeof(((struct pbft_replica_config *)0)->f) == 4)
_Static_assert(TUNING_U32(batch_max_requests) && TUNING_U32(batch_max_bytes) && TUNING_U32(window) &&
                   TUNING_U32(checkpoint_interval) && TUNING_U32(log_window),
               "the tuning table copies uint32_t fields");
#undef TUNING_U32

void config_tuning_from_engine(struct bftkv_config *cfg, const struct pbft_replica_config *r)
{
    for (size_t i = 0; i < sizeof tuning / sizeof tuning[0]; i++)
        memcpy((uint8_t *)cfg + tuning[i].config, (const uint8_t *)r + tuning[i].engine, sizeof(uint32_t));
    cfg->request_timeout_ms = (uint32_t)(r->request_timeout_ns / 1000000u);
}

static void tuning_to_engine(const struct bftkv_config *cfg, struct pbft_replica_config *r)
{
    for (size_t i = 0; i < sizeof tuning / sizeof tuning[0]; i++)
        memcpy((uint8_t *)r + tuning[i].engine, (const uint8_t *)cfg + tuning[i].config, sizeof(uint32_t));
    r->request_timeout_ns = (uint64_t)cfg->request_timeout_ms * 1000000u;
}

/* The fields both engine configurations carry: the group and the member's place
 * in it (a macro: the two structs are different types). */
#define FILL_MEMBER(out, cfg, member)                                                                             \
    do {                                                                                                          \
        (out)->group = (cfg)->group;                                                                              \
        (out)->id = (member);                                                                                     \
        (out)->n = (cfg)->n;                                                                                      \
        (out)->f = (cfg)->f;                                                                                      \
        (out)->lanes = (cfg)->client_lanes;                                                                       \
    } while (0)

int bftkv_config_fill_replica(const struct bftkv_config *cfg, uint16_t id, struct pbft_replica_config *out)
{
    if (cfg == NULL || out == NULL || id >= cfg->n)
        return BFTKV_E_INVAL;
    memset(out, 0, sizeof *out);
    pbft_replica_config_defaults(out); /* retransmit_ns; restarted and bugs off */
    FILL_MEMBER(out, cfg, id);
    out->clients = cfg->clients;
    out->map_epoch = cfg->map_epoch;
    tuning_to_engine(cfg, out);
    return 0;
}

int bftkv_config_fill_client(const struct bftkv_config *cfg, uint16_t id, struct pbft_client_config *out)
{
    if (cfg == NULL || out == NULL || id >= cfg->clients || !cfg->client[id].allowed)
        return BFTKV_E_INVAL;
    memset(out, 0, sizeof *out);
    pbft_client_config_defaults(out); /* timestamp_base and bugs 0 */
    FILL_MEMBER(out, cfg, id);
    out->retransmit_timeout_ns = (uint64_t)cfg->retransmit_ms * 1000000u;
    out->readonly_fast_path = cfg->readonly_fast_path;
    return 0;
}

int bftkv_config_key_path(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id, char *buf,
                          size_t buflen)
{
    if (cfg == NULL || buf == NULL || (role != BFTKV_CONFIG_REPLICA && role != BFTKV_CONFIG_CLIENT))
        return BFTKV_E_INVAL;
    int len = snprintf(buf, buflen, "%s/%s-%u.key", cfg->key_dir, config_role_name(role), id);
    return len < 0 || (size_t)len >= buflen ? BFTKV_E_RANGE : 0;
}

int bftkv_config_replica_sockaddr(const struct bftkv_config *cfg, uint16_t id, struct sockaddr_storage *addr,
                                  socklen_t *addrlen, char *err, size_t errlen)
{
    if (cfg == NULL || addr == NULL || addrlen == NULL || id >= cfg->n)
        return BFTKV_E_INVAL;
    const struct bftkv_config_replica *r = &cfg->replica[id];
    char port[8];
    snprintf(port, sizeof port, "%u", r->port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    int g = getaddrinfo(r->host, port, &hints, &res);
    if (g != 0 || res == NULL) {
        errbuf_put(err, errlen, "%s:%u: replica %u: cannot resolve '%s': %s", cfg->name, r->line, id, r->host,
                g != 0 ? gai_strerror(g) : "no address");
        if (res != NULL)
            freeaddrinfo(res);
        return BFTKV_E_CONFIG;
    }
    BFTKV_ASSERT(res->ai_addrlen <= sizeof *addr);
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int bftkv_config_keygen(const char *path, char x25519_hex[65], char ed25519_hex[65], char *err, size_t errlen)
{
    if (path == NULL) {
        errbuf_put(err, errlen, "keygen: no path given");
        return BFTKV_E_INVAL;
    }
    if (sodium_init() < 0) {
        errbuf_put(err, errlen, "keygen: libsodium cannot initialise");
        return BFTKV_E_IO;
    }
    uint8_t seed[BFTKV_KEY_SEED_SIZE];
    int rc = bftkv_key_generate(path, seed, err, errlen);
    if (rc != 0)
        return rc;
    char x[65], ed[65];
    bftkv_key_public(seed, x, ed);
    sodium_memzero(seed, sizeof seed);
    if (x25519_hex != NULL)
        memcpy(x25519_hex, x, sizeof x);
    if (ed25519_hex != NULL)
        memcpy(ed25519_hex, ed, sizeof ed);
    return 0;
}
