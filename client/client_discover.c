/* Map discovery (docs/design.md §6.4, docs/config.md "A client that
 * discovers"): a client whose file has deployment_seeds, admin_pub and its
 * key_dir, but no map and no node key, asks the seeds in turn for the
 * deployment map (engine/wire_map.h), takes it only by the acceptance rule
 * (cluster_map_accept: the admin's signature verifies and the epoch is not
 * older than the map held), and routes with it (client/client_route.c).
 *
 * The map held at the start is the one in map_cache, when the file names one
 * and it exists (verified like any candidate: a cache that does not verify
 * is refused). A request carries the held epoch and a reply the seed's
 * (engine/wire_map.h): a seed whose first reply says it serves an older
 * epoch is refused before the rest is fetched. A seed's map must then be the same or newer: a seed that serves
 * an older epoch, a map of another admin key, or two maps for one epoch is
 * refused with the reason, and the next seed is asked. When no seed gives an
 * acceptable map the open fails with every seed's reason: a client never falls
 * back to what a lying or lagging node would have it use. A newer map is
 * written to map_cache (a new file renamed over the old), so a later open
 * refuses what is older than it.
 *
 * Bounds: DISCOVER_TRIES sends per chunk per seed, each waiting twice as long
 * as the one before from retransmit_ms (capped at DISCOVER_WAIT_MS_MAX); the
 * whole fetch from one seed at most client_timeout_ms. This runs once, at open,
 * on the opening thread, with its own socket: not on any handle's I/O path.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "client/client_internal.h"
#include "common/errbuf.h"
#include "engine/wire_map.h"

#define DISCOVER_TRIES 4u
#define DISCOVER_WAIT_MS_MAX 1000u

struct discover {
    const struct bftkv_config *cfg;
    uint16_t client;
    uint8_t sign_sk[64];
    uint8_t admin_pk[32];
    uint64_t held_epoch;
    uint64_t seed_epoch; /* what a seed's first reply said, when it was older */
    uint64_t last_nonce;
    uint8_t *buf; /* the map being assembled, CLUSTER_MAP_SIGNED_SIZE_MAX bytes */
    uint8_t rx[WIRE_MAP_REPLY_MAX + 1];
};

static uint64_t discover_now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Nonces from the wall clock, strictly increasing in this process: a node
 * answers a client's nonce only above the last it answered (server/admin.h). */
static uint64_t discover_nonce(struct discover *d)
{
    uint64_t now = discover_now_ns(CLOCK_REALTIME);
    d->last_nonce = now > d->last_nonce ? now : d->last_nonce + 1u;
    return d->last_nonce;
}

static int discover_resolve(const struct bftkv_config_replica *seed, struct sockaddr_storage *addr,
                            socklen_t *alen)
{
    char port[8];
    snprintf(port, sizeof port, "%u", seed->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(seed->host, port, &hints, &res) != 0 || res == NULL || res->ai_addrlen > sizeof *addr) {
        if (res != NULL)
            freeaddrinfo(res);
        return BFTKV_E_CONFIG;
    }
    memset(addr, 0, sizeof *addr);
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *alen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* One chunk from offset: send, wait, resend up to DISCOVER_TRIES times. The
 * reply must come from the seed's address and carry one of the nonces sent
 * for this chunk (a late answer to an earlier send is as good). */
static int discover_chunk(struct discover *d, int fd, const struct sockaddr_storage *to, socklen_t tolen,
                          uint32_t offset, uint64_t deadline_ns, struct wire_map_reply *out)
{
    uint32_t wait_ms = d->cfg->retransmit_ms < DISCOVER_WAIT_MS_MAX ? d->cfg->retransmit_ms : DISCOVER_WAIT_MS_MAX;
    uint64_t first_nonce = 0;
    for (unsigned t = 0; t < DISCOVER_TRIES; t++) {
        struct wire_map_request rq = {
            .client = d->client, .epoch = d->held_epoch, .nonce = discover_nonce(d), .offset = offset};
        uint8_t msg[WIRE_MAP_REQUEST_SIZE];
        first_nonce = t == 0 ? rq.nonce : first_nonce;
        size_t n = wire_map_request_encode(msg, sizeof msg, &rq, d->sign_sk);
        if (n == 0 || sendto(fd, msg, n, 0, (const struct sockaddr *)to, tolen) != (ssize_t)n)
            return BFTKV_E_IO;
        uint64_t until = discover_now_ns(CLOCK_MONOTONIC) + (uint64_t)wait_ms * 1000000u;
        until = until < deadline_ns ? until : deadline_ns;
        for (;;) {
            uint64_t now = discover_now_ns(CLOCK_MONOTONIC);
            if (now >= until)
                break;
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, (int)((until - now + 999999u) / 1000000u)) <= 0)
                continue;
            struct sockaddr_storage from;
            socklen_t flen = sizeof from;
            ssize_t got = recvfrom(fd, d->rx, sizeof d->rx, 0, (struct sockaddr *)&from, &flen);
            if (got <= 0 || flen != tolen || memcmp(&from, to, tolen) != 0)
                continue;
            if (wire_map_reply_check(d->rx, (size_t)got, CLUSTER_MAP_SIGNED_SIZE_MAX, out) && out->nonce >= first_nonce
                && out->nonce <= rq.nonce && out->offset == offset)
                return 0;
        }
        if (discover_now_ns(CLOCK_MONOTONIC) >= deadline_ns)
            break;
        wait_ms = wait_ms * 2u < DISCOVER_WAIT_MS_MAX ? wait_ms * 2u : DISCOVER_WAIT_MS_MAX;
    }
    return BFTKV_E_TIMEOUT;
}

/* The whole signed map from one seed into d->buf: its length, or an error. */
static int discover_fetch(struct discover *d, const struct sockaddr_storage *to, socklen_t tolen, size_t *len)
{
    int fd = socket(to->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return BFTKV_E_IO;
    uint64_t deadline = discover_now_ns(CLOCK_MONOTONIC) + (uint64_t)d->cfg->client_timeout_ms * 1000000u;
    uint32_t offset = 0, total = 0;
    uint64_t epoch = 0;
    int rc = 0;
    do {
        struct wire_map_reply r;
        rc = discover_chunk(d, fd, to, tolen, offset, deadline, &r);
        if (rc == 0 && offset > 0 && (r.total != total || r.epoch != epoch))
            rc = BFTKV_E_CORRUPT; /* the seed changed its map mid-way: ask the next one */
        if (rc == 0 && offset == 0 && r.epoch < d->held_epoch) {
            /* The seed says its map is older than the one held: refused without
             * fetching the rest (a refusal needs no proof; a lie here only
             * costs the liar its answer). */
            *len = 0;
            close(fd);
            d->seed_epoch = r.epoch;
            return BFTKV_E_RANGE;
        }
        if (rc == 0) {
            total = r.total;
            epoch = r.epoch;
            memcpy(d->buf + offset, r.chunk, r.chunk_len);
            offset += r.chunk_len;
        }
    } while (rc == 0 && offset < total);
    close(fd);
    *len = offset;
    return rc;
}

/* The client's Ed25519 secret key (key_dir/client-C.key). */
static int discover_key(struct discover *d, char *err, size_t errlen)
{
    char path[BFTKV_CONFIG_PATH_MAX + 32];
    int n = snprintf(path, sizeof path, "%s/client-%u.key", d->cfg->key_dir, d->client);
    if (n < 0 || (size_t)n >= sizeof path) {
        errbuf_put(err, errlen, "%s: key_dir too long", d->cfg->name);
        return BFTKV_E_CONFIG;
    }
    uint8_t seed[BFTKV_KEY_SEED_SIZE];
    int rc = bftkv_key_load(path, seed, err, errlen);
    if (rc != 0)
        return rc;
    struct auth_keypair kp;
    auth_keypair_from_seed(&kp, seed);
    memcpy(d->sign_sk, kp.sign_sk, sizeof d->sign_sk);
    sodium_memzero(&kp, sizeof kp);
    sodium_memzero(seed, sizeof seed);
    return 0;
}

/* The map held before asking: map_cache's, verified, or none. */
static int discover_held(struct discover *d, struct cluster_map **held, char *err, size_t errlen)
{
    *held = NULL;
    if (d->cfg->map_cache[0] == '\0' || access(d->cfg->map_cache, F_OK) != 0)
        return 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = cluster_file_read(d->cfg->map_cache, CLUSTER_MAP_SIGNED_SIZE_MAX, &bytes, &len, err, errlen);
    if (rc != 0)
        return rc;
    char why[BFTKV_CONFIG_ERR_MAX];
    rc = cluster_map_open(bytes, len, d->admin_pk, held, why, sizeof why);
    free(bytes);
    if (rc != 0)
        errbuf_put(err, errlen, "%s: map_cache %s: %s; refusing it", d->cfg->name, d->cfg->map_cache, why);
    return rc;
}

/* The accepted map into map_cache: a new file renamed over the old one. */
static int discover_cache_write(const struct discover *d, size_t len, char *err, size_t errlen)
{
    char tmp[BFTKV_CONFIG_PATH_MAX + 32];
    int n = snprintf(tmp, sizeof tmp, "%s.%ld.tmp", d->cfg->map_cache, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return BFTKV_E_CONFIG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && write(fd, d->buf, len) == (ssize_t)len && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, d->cfg->map_cache) != 0) {
        errbuf_put(err, errlen, "%s: map_cache %s: %s", d->cfg->name, d->cfg->map_cache, strerror(errno));
        unlink(tmp);
        return BFTKV_E_IO;
    }
    return 0;
}

/* Ask one node for its map and judge it against held (NULL: none): 0 with
 * *cand (NEWER: a new map; SAME: NULL) and *v, or the error with the reason. */
static int discover_ask(struct discover *d, const struct cluster_map *held, const struct sockaddr_storage *to,
                        socklen_t tolen, size_t *len, struct cluster_map **cand, enum cluster_map_verdict *v,
                        char *reason, size_t rlen)
{
    *cand = NULL;
    int rc = discover_fetch(d, to, tolen, len);
    if (rc == BFTKV_E_RANGE) {
        snprintf(reason, rlen, "it serves epoch %llu, older than the held epoch %llu",
                 (unsigned long long)d->seed_epoch, (unsigned long long)d->held_epoch);
        return rc;
    }
    if (rc != 0) {
        snprintf(reason, rlen, "%s", rc == BFTKV_E_TIMEOUT ? "no answer" : bftkv_strerror(rc));
        return rc;
    }
    struct cluster_map *got = NULL;
    rc = cluster_map_accept(held, d->buf, *len, d->admin_pk, &got, v, reason, rlen);
    if (rc == 0 && *v == CLUSTER_MAP_NEWER)
        *cand = got;
    else
        cluster_map_free(got);
    return rc;
}

/* Append "seed HOST:PORT: reason; refusing it" to why. */
static void discover_why(char *why, size_t whylen, size_t *used, const char *what, const char *reason)
{
    int n = snprintf(why + *used, whylen - *used, "%s%s: %s; refusing it", *used > 0 ? "; " : "", what, reason);
    *used = n > 0 && (size_t)n < whylen - *used ? *used + (size_t)n : *used;
}

/* Ask each seed in turn; *out the first acceptable map. why collects every
 * refused seed's reason. */
static int discover_seeds(struct discover *d, struct cluster_map *held, struct cluster_map **out, char *why,
                          size_t whylen)
{
    int last = BFTKV_E_TIMEOUT;
    size_t used = 0;
    why[0] = '\0';
    for (uint16_t i = 0; i < d->cfg->seeds; i++) {
        const struct bftkv_config_replica *seed = &d->cfg->seed[i];
        char reason[BFTKV_CONFIG_ERR_MAX] = "";
        struct sockaddr_storage to;
        socklen_t tolen = 0;
        size_t len = 0;
        struct cluster_map *cand = NULL;
        enum cluster_map_verdict v = CLUSTER_MAP_BAD;
        int rc = discover_resolve(seed, &to, &tolen);
        if (rc != 0)
            snprintf(reason, sizeof reason, "cannot resolve the address");
        else
            rc = discover_ask(d, held, &to, tolen, &len, &cand, &v, reason, sizeof reason);
        if (rc == 0) {
            if (v == CLUSTER_MAP_NEWER && d->cfg->map_cache[0] != '\0')
                rc = discover_cache_write(d, len, why, whylen);
            if (rc != 0) {
                cluster_map_free(cand);
                return rc;
            }
            *out = v == CLUSTER_MAP_NEWER ? cand : held;
            return 0;
        }
        last = rc;
        char what[BFTKV_CONFIG_HOST_MAX + 16];
        snprintf(what, sizeof what, "seed %s:%u", seed->host, seed->port);
        discover_why(why, whylen, &used, what, reason);
    }
    return last;
}

/* A discovery's state (its key and the map buffer), or NULL without memory. */
static struct discover *discover_new(const struct bftkv_config *cfg, uint16_t client_id)
{
    struct discover *d = calloc(1, sizeof *d);
    uint8_t *buf = malloc(CLUSTER_MAP_SIGNED_SIZE_MAX);
    if (d == NULL || buf == NULL) {
        free(d);
        free(buf);
        return NULL;
    }
    d->cfg = cfg;
    d->client = client_id;
    d->buf = buf;
    return d;
}

static void discover_free(struct discover *d)
{
    uint8_t *buf = d->buf;
    sodium_memzero(d, sizeof *d);
    free(d);
    free(buf);
}

int client_discover(const struct bftkv_config *cfg, uint16_t client_id, struct cluster_map **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    struct discover *d = discover_new(cfg, client_id);
    if (d == NULL)
        return BFTKV_E_NOMEM;
    struct cluster_map *held = NULL;
    int rc = cluster_deployment_admin_pub(cfg, d->admin_pk, err, errlen);
    rc = rc != 0 ? rc : discover_key(d, err, errlen);
    rc = rc != 0 ? rc : discover_held(d, &held, err, errlen);
    if (rc == 0) {
        d->held_epoch = held != NULL ? held->params.epoch : 0;
        char why[BFTKV_CONFIG_ERR_MAX * 2];
        rc = discover_seeds(d, held, out, why, sizeof why);
        if (rc != 0)
            errbuf_put(err, errlen, "%s: deployment_seeds: no acceptable map (%s)", cfg->name, why);
        if (*out != held)
            cluster_map_free(held);
    }
    discover_free(d);
    return rc;
}

/* The node a refetch asks first, then the seeds: the first NEWER map. */
static int discover_newer(struct discover *d, const struct cluster_map *held, const struct sockaddr_storage *first,
                          socklen_t firstlen, struct cluster_map **out, char *why, size_t whylen)
{
    size_t used = 0;
    why[0] = '\0';
    for (int i = first != NULL ? -1 : 0; i < (int)d->cfg->seeds; i++) {
        char reason[BFTKV_CONFIG_ERR_MAX] = "";
        char what[BFTKV_CONFIG_HOST_MAX + 16] = "the node that claimed it";
        struct sockaddr_storage to;
        socklen_t tolen = firstlen;
        int rc = 0;
        if (i < 0) {
            memcpy(&to, first, sizeof to);
        } else {
            snprintf(what, sizeof what, "seed %s:%u", d->cfg->seed[i].host, d->cfg->seed[i].port);
            rc = discover_resolve(&d->cfg->seed[i], &to, &tolen);
            if (rc != 0)
                snprintf(reason, sizeof reason, "cannot resolve the address");
        }
        size_t len = 0;
        struct cluster_map *cand = NULL;
        enum cluster_map_verdict v = CLUSTER_MAP_BAD;
        if (rc == 0)
            rc = discover_ask(d, held, &to, tolen, &len, &cand, &v, reason, sizeof reason);
        if (rc == 0 && v == CLUSTER_MAP_NEWER) {
            if (d->cfg->map_cache[0] != '\0')
                (void)discover_cache_write(d, len, reason, sizeof reason); /* the map is good either way */
            *out = cand;
            return 0;
        }
        if (rc == 0)
            snprintf(reason, sizeof reason, "it serves the held map (epoch %llu)", (unsigned long long)d->held_epoch);
        discover_why(why, whylen, &used, what, reason);
    }
    return BFTKV_E_NOT_FOUND;
}

int client_map_refetch(const struct bftkv_config *cfg, uint16_t client_id, const struct cluster_map *held,
                       const struct sockaddr_storage *first, socklen_t firstlen, struct cluster_map **out,
                       char *err, size_t errlen)
{
    *out = NULL;
    struct discover *d = discover_new(cfg, client_id);
    if (d == NULL)
        return BFTKV_E_NOMEM;
    d->held_epoch = held->params.epoch;
    int rc = cluster_deployment_admin_pub(cfg, d->admin_pk, err, errlen);
    rc = rc != 0 ? rc : discover_key(d, err, errlen);
    if (rc == 0)
        rc = discover_newer(d, held, first, firstlen, out, err, errlen);
    discover_free(d);
    return rc;
}

int client_map_get(const struct bftkv_config *cfg, uint16_t client_id, struct cluster_map **out, char *err,
                   size_t errlen)
{
    return cfg->seeds > 0 ? client_discover(cfg, client_id, out, err, errlen)
                          : cluster_deployment_open(cfg, out, err, errlen);
}
