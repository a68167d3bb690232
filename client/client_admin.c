/* The client side of the admin protocol (client/client_admin.h).
 *
 * bftkv_admin_stats: one blocking exchange on a socket of its own: send,
 * retransmit with a fresh nonce, accept the first authenticated answer of the
 * asked replica to any nonce of this call.
 *
 * bftkv_client_replica_stats (include/bftkv/client.h): a replica's stats for an
 * application or the CLI, without a handle. The client's secret key is loaded
 * from the config's key_dir and checked against its client line
 * (cluster/cluster.h), then bftkv_admin_stats runs. No lane is leased: an admin
 * request carries no timestamp, so it cannot disturb the requests of the handles
 * of the same client id.
 */
#include "client/client_admin.h"
#include "client/client_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "net/udp.h"

BFTKV_STATIC_ASSERT(BFTKV_CLIENT_REPLICA_STATS_MAX >= ADMIN_JSON_MAX + 1u, "the public room holds any stats");

struct admin_wait {
    const struct auth_ctx *auth;
    uint16_t group;
    uint16_t replica;
    uint64_t nonce_first; /* nonces of this call: [first, last] */
    uint64_t nonce_last;
    char *buf;
    size_t cap;
    size_t len;
    int result; /* 1: answered; BFTKV_E_BUF_TOO_SMALL; 0: not yet */
};

static uint64_t admin_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Walk the datagram message by message; take the first valid answer. */
static void admin_wait_rx(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                          size_t len)
{
    (void)src;
    (void)srclen;
    struct admin_wait *w = arg;
    size_t off = 0;
    while (w->result == 0 && len - off >= WIRE_HEADER_SIZE) {
        struct wire_header h;
        wire_header_read(data + off, &h);
        uint64_t size = (uint64_t)WIRE_HEADER_SIZE + h.body_len + h.auth_len;
        if (size > len - off)
            return;
        uint16_t sender;
        uint64_t nonce;
        const uint8_t *json;
        size_t json_len;
        if (h.type == WIRE_ADMIN_REPLY
            && wire_admin_reply_check(w->auth, w->group, data + off, (size_t)size, &sender, &nonce, &json, &json_len)
            && sender == w->replica && nonce >= w->nonce_first && nonce <= w->nonce_last) {
            w->len = json_len;
            if (json_len + 1 > w->cap) {
                w->result = BFTKV_E_BUF_TOO_SMALL;
                return;
            }
            memcpy(w->buf, json, json_len);
            w->buf[json_len] = '\0';
            w->result = 1;
            return;
        }
        off += (size_t)size;
    }
}

/* Bind the loopback address for a loopback replica (tests stay on 127.0.0.1),
 * else the wildcard of the replica's family. */
static const char *admin_bind_host(const struct sockaddr_storage *dst)
{
    if (dst->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)dst;
        return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ? "::1" : "::";
    }
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)dst;
    return (ntohl(a4->sin_addr.s_addr) >> 24) == 127u ? "127.0.0.1" : "0.0.0.0";
}

int bftkv_admin_stats(const struct bftkv_config *cfg, const struct auth_ctx *client, uint16_t replica,
                      uint32_t timeout_ms, char *buf, size_t cap, size_t *len)
{
    return bftkv_admin_exchange(cfg, client, replica, ADMIN_CMD_STATS, timeout_ms, buf, cap, len);
}

int bftkv_admin_exchange(const struct bftkv_config *cfg, const struct auth_ctx *client, uint16_t replica,
                         uint8_t command, uint32_t timeout_ms, char *buf, size_t cap, size_t *len)
{
    if (cfg == NULL || client == NULL || !client->is_client || client->n != cfg->n || replica >= cfg->n
        || buf == NULL || len == NULL)
        return BFTKV_E_INVAL;
    struct sockaddr_storage dst;
    socklen_t dlen;
    int rc = bftkv_config_replica_sockaddr(cfg, replica, &dst, &dlen, NULL, 0);
    if (rc != 0)
        return rc;
    struct net_udp_config uc = {
        .host = admin_bind_host(&dst),
        .port = 0,
        .backend = NET_BACKEND_MMSG,
        .rx_buffers = 4,
        .rx_buffer_bytes = 0, /* BFTKV_DATAGRAM_MAX: a reply is up to 60 KiB */
        .tx_datagrams = 2,
    };
    struct net_udp *u = NULL;
    rc = net_udp_open(&uc, &u);
    if (rc != 0)
        return rc;

    struct admin_wait w = {
        .auth = client,
        .group = cfg->group,
        .replica = replica,
        .buf = buf,
        .cap = cap,
    };
    uint8_t req[ADMIN_REQUEST_MAX];
    uint64_t start = admin_clock_ns(CLOCK_MONOTONIC);
    uint64_t end = start + (uint64_t)timeout_ms * 1000000u;
    uint64_t next_send = start;
    rc = BFTKV_E_TIMEOUT;
    for (;;) {
        uint64_t now = admin_clock_ns(CLOCK_MONOTONIC);
        if (now >= end)
            break;
        if (now >= next_send) {
            /* A fresh nonce per send, above every earlier one (engine/wire_admin.h). */
            uint64_t nonce = admin_clock_ns(CLOCK_REALTIME);
            if (nonce <= w.nonce_last)
                nonce = w.nonce_last + 1u;
            if (w.nonce_first == 0)
                w.nonce_first = nonce;
            w.nonce_last = nonce;
            size_t n = wire_admin_request_encode(req, sizeof req, client, cfg->group, command, nonce);
            BFTKV_ASSERT(n > 0);
            int q = net_udp_queue(u, &dst, dlen, req, n);
            if (q == 0)
                q = net_udp_flush(u);
            if (q < 0) {
                rc = q;
                break;
            }
            next_send = now + (uint64_t)ADMIN_RETRANSMIT_MS * 1000000u;
        }
        uint64_t until = next_send < end ? next_send : end;
        int wait_ms = (int)((until - now + 999999u) / 1000000u);
        int p = net_udp_poll(u, wait_ms, admin_wait_rx, &w);
        if (p < 0) {
            rc = p;
            break;
        }
        if (w.result != 0) {
            rc = w.result == 1 ? 0 : w.result;
            *len = w.len;
            break;
        }
    }
    net_udp_close(u);
    return rc;
}

/* Load the client's key, then one admin exchange of command with the replica. */
static int client_replica_admin(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica, uint8_t command,
                                int timeout_ms, char *json, size_t cap, size_t *len, char *err, size_t errlen);

int bftkv_client_replica_stats(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica,
                               int timeout_ms, char *json, size_t cap, size_t *len, char *err, size_t errlen)
{
    return client_replica_admin(cfg, client_id, replica, ADMIN_CMD_STATS, timeout_ms, json, cap, len, err, errlen);
}

int bftkv_client_replica_log_level(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica,
                                   const char *level, int timeout_ms, char *json, size_t cap, size_t *len, char *err,
                                   size_t errlen)
{
    static const char *const names[ADMIN_LOG_LEVELS] = {"error", "warn", "info", "debug"};
    for (unsigned l = 0; level != NULL && l < ADMIN_LOG_LEVELS; l++)
        if (strcmp(level, names[l]) == 0)
            return client_replica_admin(cfg, client_id, replica, (uint8_t)(ADMIN_CMD_LOG_LEVEL + l), timeout_ms,
                                        json, cap, len, err, errlen);
    errbuf_put(err, errlen, "log level '%s': expected error, warn, info or debug", level ? level : "(null)");
    return BFTKV_E_INVAL;
}

static int client_replica_admin(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica, uint8_t command,
                                int timeout_ms, char *json, size_t cap, size_t *len, char *err, size_t errlen)
{
    errbuf_put(err, errlen, "%s", "");
    if (cfg == NULL || json == NULL || len == NULL || timeout_ms < 0
        || (uint32_t)timeout_ms > BFTKV_CONFIG_TIMEOUT_MS_MAX) {
        errbuf_put(err, errlen, "replica stats: bad arguments");
        return BFTKV_E_INVAL;
    }
    if (cluster_deployment_is(cfg)) {
        if (command != ADMIN_CMD_STATS) {
            errbuf_put(err, errlen, "%s: a deployment's nodes take no admin command but stats yet", cfg->name);
            return BFTKV_E_UNSUPPORTED;
        }
        return client_route_node_stats(cfg, client_id, replica, timeout_ms, json, cap, len, err, errlen);
    }
    if (replica >= cfg->n) {
        errbuf_put(err, errlen, "stats: no replica %u in %s (replicas 0..%u)", replica, cfg->name, cfg->n - 1u);
        return BFTKV_E_INVAL;
    }
    if (sodium_init() < 0) {
        errbuf_put(err, errlen, "replica stats: libsodium cannot initialise");
        return BFTKV_E_IO;
    }
    struct auth_keypair kp;
    struct auth_ctx auth;
    int rc = bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, client_id, &kp, err, errlen);
    if (rc == 0) {
        rc = bftkv_key_auth_init(cfg, BFTKV_CONFIG_CLIENT, client_id, &kp, &auth, err, errlen);
    }
    sodium_memzero(&kp, sizeof kp);
    if (rc != 0) {
        return rc;
    }
    uint32_t wait_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : cfg->client_timeout_ms;
    rc = bftkv_admin_exchange(cfg, &auth, replica, command, wait_ms, json, cap, len);
    auth_destroy(&auth);
    return rc;
}
