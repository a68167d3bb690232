/* The backend-independent half of the UDP transport (net/udp.h): opening and
 * binding the socket, the pools, coalescing of messages into datagrams per
 * destination, and the choice between io_uring and recvmmsg/sendmmsg.
 *
 * Coalescing keeps one open datagram per destination in a small open-addressing
 * map (capacity at least twice the send pool, so it is at most half full and
 * needs no deletion: it is emptied slot by slot at every flush). A message that
 * does not fit its destination's open datagram seals it and starts another;
 * tx_order remembers the order datagrams were started so a flush sends them in
 * that order.
 */
#include "net/udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "net/udp_internal.h"

BFTKV_STATIC_ASSERT(NET_UDP_TX_DATAGRAMS_MAX <= (UINT32_MAX >> 2), "map capacity fits 32 bits");
BFTKV_STATIC_ASSERT(BFTKV_DATAGRAM_MAX <= 65535u, "a datagram length fits a UDP length");

static const char *const net_backend_names[] = {"auto", "uring", "mmsg"};

static void net_udp_log(const char *what, const char *detail)
{
    /* One line, written whole: the server's operator reads it. */
    fprintf(stderr, "bftkv: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

int net_udp_errno_code(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return BFTKV_E_OK;
    case ENOMEM:
    case ENOBUFS:
        return BFTKV_E_NOMEM;
    case EAGAIN:
    case EINTR:
        return BFTKV_E_AGAIN;
    case EINVAL:
    case EAFNOSUPPORT:
        return BFTKV_E_INVAL;
    case EADDRINUSE:
    case EADDRNOTAVAIL:
    case EACCES:
        return BFTKV_E_CONFIG;
    case ENOSYS:
    case EOPNOTSUPP:
    case EPERM:
        return BFTKV_E_UNSUPPORTED;
    case ETIME:
    case ETIMEDOUT:
        return BFTKV_E_TIMEOUT;
    default:
        return BFTKV_E_IO;
    }
}

/* Anonymous, page-aligned memory for the big pools: the kernel pins or copies
 * into it, and untouched pages cost nothing. */
static void *net_udp_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void net_udp_unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

/* ---- destination map ------------------------------------------------------------ */

static int net_udp_key_make(int family, const struct sockaddr_storage *a, socklen_t len,
                            struct net_udp_key *k)
{
    memset(k, 0, sizeof(*k));
    socklen_t need = family == AF_INET    ? (socklen_t)sizeof(struct sockaddr_in)
                     : family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                          : 0;
    if (need == 0 || a->ss_family != family || len < need)
        return BFTKV_E_INVAL;
    k->family = (uint16_t)family;
    if (family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        k->port = s->sin_port;
        memcpy(k->addr, &s->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
        k->port = s->sin6_port;
        k->scope = s->sin6_scope_id;
        memcpy(k->addr, &s->sin6_addr, 16);
    }
    return 0;
}

static uint32_t net_udp_key_hash(const struct net_udp_key *k)
{
    uint64_t w[3];
    BFTKV_STATIC_ASSERT(sizeof(struct net_udp_key) == sizeof(w), "key is three words");
    memcpy(w, k, sizeof(w));
    uint64_t h = w[0] * UINT64_C(0x9e3779b97f4a7c15);
    h ^= w[1] + UINT64_C(0xbf58476d1ce4e5b9) + (h << 6) + (h >> 2);
    h ^= w[2] + UINT64_C(0x94d049bb133111eb) + (h << 6) + (h >> 2);
    h ^= h >> 31;
    h *= UINT64_C(0xd6e8feb86659fd93);
    h ^= h >> 32;
    return (uint32_t)h;
}

/* The slot holding key, or the empty slot where it would go. The map is never
 * more than half full, so the probe ends. */
static uint32_t net_udp_map_find(const struct net_udp *u, const struct net_udp_key *k)
{
    uint32_t i = net_udp_key_hash(k) & u->map_mask;
    for (uint32_t probes = 0; probes <= u->map_mask; probes++) {
        const struct net_udp_slot *s = &u->map[i];
        if (s->tx == NET_UDP_NONE || memcmp(&s->key, k, sizeof(*k)) == 0)
            return i;
        i = (i + 1) & u->map_mask;
    }
    BFTKV_ASSERT(!"destination map full"); /* impossible: at most tx_count of 2*tx_count slots used */
    return 0;
}

/* ---- open and close ------------------------------------------------------------- */

static int net_udp_config_check(const struct net_udp_config *c)
{
    if (c->backend != NET_BACKEND_AUTO && c->backend != NET_BACKEND_URING && c->backend != NET_BACKEND_MMSG)
        return BFTKV_E_INVAL;
    if (c->rx_buffers > NET_UDP_RX_BUFFERS_MAX || c->tx_datagrams > NET_UDP_TX_DATAGRAMS_MAX)
        return BFTKV_E_INVAL;
    if (c->rx_buffer_bytes != 0
        && (c->rx_buffer_bytes < NET_UDP_RX_BUFFER_BYTES_MIN || c->rx_buffer_bytes > 65535u))
        return BFTKV_E_INVAL;
    if (c->sndbuf_bytes < 0 || c->rcvbuf_bytes < 0)
        return BFTKV_E_INVAL;
    return 0;
}

static int net_udp_pools_alloc(struct net_udp *u)
{
    u->rx_stride = (uint32_t)((NET_UDP_RX_HEADROOM + u->rx_payload + 63u) & ~(size_t)63u);
    u->rx_payload = u->rx_stride - (uint32_t)NET_UDP_RX_HEADROOM; /* what the rounding gave */
    u->rx_mem_bytes = (size_t)u->rx_count * u->rx_stride;
    u->rx_mem = net_udp_map(u->rx_mem_bytes);
    u->tx_mem_bytes = (size_t)u->tx_count * BFTKV_DATAGRAM_MAX;
    u->tx_mem = net_udp_map(u->tx_mem_bytes);
    u->tx = calloc(u->tx_count, sizeof(*u->tx));
    u->tx_free = calloc(u->tx_count, sizeof(*u->tx_free));
    u->tx_order = calloc(u->tx_count, sizeof(*u->tx_order));
    uint32_t map_cap = net_udp_pow2_at_least(2u * u->tx_count);
    u->map = calloc(map_cap, sizeof(*u->map));
    u->map_mask = map_cap - 1u;
    if (!u->rx_mem || !u->tx_mem || !u->tx || !u->tx_free || !u->tx_order || !u->map)
        return BFTKV_E_NOMEM;
    for (uint32_t i = 0; i < map_cap; i++)
        u->map[i].tx = NET_UDP_NONE;
    for (uint32_t i = 0; i < u->tx_count; i++) {
        struct net_udp_tx *t = &u->tx[i];
        t->buf = u->tx_mem + (size_t)i * BFTKV_DATAGRAM_MAX;
        t->slot = NET_UDP_NONE;
        /* Pushed in reverse so buffer 0 is used first (only matters for reading traces). */
        u->tx_free[i] = u->tx_count - 1u - i;
    }
    u->tx_free_count = u->tx_count;
    return 0;
}

static int net_udp_socket_open(struct net_udp *u, const struct net_udp_config *cfg)
{
    const char *host = cfg->host ? cfg->host : "127.0.0.1";
    struct sockaddr_storage addr;
    socklen_t alen;
    int rc = net_addr_from_host(host, cfg->port, &addr, &alen);
    if (rc != 0)
        return rc;
    char where[NET_ADDR_STRLEN];
    if (net_addr_format(&addr, alen, where, sizeof(where)) != 0)
        snprintf(where, sizeof(where), "%s", host);

    u->family = addr.ss_family;
    u->fd = socket(u->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        rc = net_udp_errno_code(errno);
        net_udp_log("udp socket", strerror(errno));
        return rc;
    }
    if (cfg->sndbuf_bytes > 0
        && setsockopt(u->fd, SOL_SOCKET, SO_SNDBUF, &cfg->sndbuf_bytes, sizeof(cfg->sndbuf_bytes)) != 0)
        return net_udp_errno_code(errno);
    if (cfg->rcvbuf_bytes > 0
        && setsockopt(u->fd, SOL_SOCKET, SO_RCVBUF, &cfg->rcvbuf_bytes, sizeof(cfg->rcvbuf_bytes)) != 0)
        return net_udp_errno_code(errno);
    /* A blocking sendmmsg waits at most this long for socket buffer space (the
     * mmsg backend's sends block; the socket is otherwise blocking). */
    struct timeval tv = {.tv_sec = NET_UDP_TX_WAIT_MS / 1000, .tv_usec = (NET_UDP_TX_WAIT_MS % 1000) * 1000};
    if (setsockopt(u->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
        return net_udp_errno_code(errno);
    if (bind(u->fd, (const struct sockaddr *)&addr, alen) != 0) {
        int err = errno;
        char line[NET_ADDR_STRLEN + 64];
        snprintf(line, sizeof(line), "udp bind %s", where);
        net_udp_log(line, strerror(err));
        return net_udp_errno_code(err);
    }
    u->local_len = sizeof(u->local);
    if (getsockname(u->fd, (struct sockaddr *)&u->local, &u->local_len) != 0)
        return net_udp_errno_code(errno);
    u->port = u->family == AF_INET ? ntohs(((const struct sockaddr_in *)&u->local)->sin_port)
                                   : ntohs(((const struct sockaddr_in6 *)&u->local)->sin6_port);
    return 0;
}

static int net_udp_backend_open(struct net_udp *u, enum net_backend want)
{
    if (want == NET_BACKEND_MMSG) {
        u->backend = NET_BACKEND_MMSG;
        return net_udp_mmsg_open(u);
    }
    char why[160] = "";
    int rc = net_udp_uring_open(u, why, sizeof(why));
    if (rc == 0) {
        u->backend = NET_BACKEND_URING;
        return 0;
    }
    net_udp_uring_close(u); /* whatever part of it came up */
    /* AUTO falls back on any failure of io_uring (also, say, ENOMEM from a locked
     * memory limit on old kernels): the transport works either way. */
    char line[240];
    if (want == NET_BACKEND_URING) {
        snprintf(line, sizeof(line), "io_uring unavailable (%s) and the io_uring backend was forced", why);
        net_udp_log(line, NULL);
        return rc;
    }
    snprintf(line, sizeof(line), "io_uring unavailable (%s): using recvmmsg/sendmmsg", why);
    net_udp_log(line, NULL);
    u->backend = NET_BACKEND_MMSG;
    return net_udp_mmsg_open(u);
}

int net_udp_open(const struct net_udp_config *cfg, struct net_udp **out)
{
    BFTKV_ASSERT(cfg != NULL);
    BFTKV_ASSERT(out != NULL);
    *out = NULL;
    int rc = net_udp_config_check(cfg);
    if (rc != 0)
        return rc;
    struct net_udp *u = calloc(1, sizeof(*u));
    if (!u)
        return BFTKV_E_NOMEM;
    u->fd = -1;
    u->backend = NET_BACKEND_MMSG; /* until the backend is up: close() then frees only mmsg state */
    u->rx_count = cfg->rx_buffers ? cfg->rx_buffers : NET_UDP_RX_BUFFERS_DEFAULT;
    u->rx_payload = cfg->rx_buffer_bytes ? cfg->rx_buffer_bytes : BFTKV_DATAGRAM_MAX;
    u->tx_count = cfg->tx_datagrams ? cfg->tx_datagrams : NET_UDP_TX_DATAGRAMS_DEFAULT;

    rc = net_udp_socket_open(u, cfg);
    if (rc == 0)
        rc = net_udp_pools_alloc(u);
    if (rc == 0)
        rc = net_udp_backend_open(u, cfg->backend);
    if (rc != 0) {
        net_udp_close(u);
        return rc;
    }
    *out = u;
    return 0;
}

void net_udp_close(struct net_udp *u)
{
    if (!u)
        return;
    if (u->backend == NET_BACKEND_URING)
        net_udp_uring_close(u);
    net_udp_mmsg_close(u); /* frees only what the mmsg backend allocated */
    if (u->fd >= 0)
        close(u->fd);
    net_udp_unmap(u->rx_mem, u->rx_mem_bytes);
    net_udp_unmap(u->tx_mem, u->tx_mem_bytes);
    free(u->tx);
    free(u->tx_free);
    free(u->tx_order);
    free(u->map);
    free(u);
}

/* ---- accessors ------------------------------------------------------------------ */

const char *net_udp_backend_name(const struct net_udp *u)
{
    return net_backend_names[u->backend];
}

enum net_backend net_udp_backend(const struct net_udp *u)
{
    return u->backend;
}

uint16_t net_udp_local_port(const struct net_udp *u)
{
    return u->port;
}

int net_udp_local_addr(const struct net_udp *u, struct sockaddr_storage *out, socklen_t *len)
{
    *out = u->local;
    *len = u->local_len;
    return 0;
}

int net_udp_fd(const struct net_udp *u)
{
    return u->fd;
}

uint32_t net_udp_pending(const struct net_udp *u)
{
    return u->tx_pending;
}

void net_udp_stats(const struct net_udp *u, struct net_udp_stats *out)
{
    const uint64_t *src = (const uint64_t *)&u->stats;
    uint64_t *dst = (uint64_t *)out;
    BFTKV_STATIC_ASSERT(sizeof(struct net_udp_stats) % sizeof(uint64_t) == 0, "stats are all counters");
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

/* ---- send half ------------------------------------------------------------------ */

void net_udp_tx_complete(struct net_udp *u, uint32_t idx, int res)
{
    BFTKV_ASSERT(idx < u->tx_count);
    BFTKV_ASSERT(u->tx_free_count < u->tx_count);
    struct net_udp_tx *t = &u->tx[idx];
    if (res >= 0 && (uint32_t)res == t->len) {
        net_udp_count(&u->stats.datagrams_sent, 1);
        net_udp_count(&u->stats.bytes_sent, (uint64_t)res);
    } else {
        net_udp_count(&u->stats.send_errors, 1); /* UDP: count and drop */
    }
    t->len = 0;
    u->tx_free[u->tx_free_count++] = idx;
}

int net_udp_flush(struct net_udp *u)
{
    if (u->tx_pending == 0) {
        if (u->backend == NET_BACKEND_URING)
            (void)net_udp_uring_reclaim(u, 0);
        return 0;
    }
    /* Every open datagram leaves the map: the next message to any destination
     * starts a fresh datagram. */
    for (uint32_t i = 0; i < u->tx_pending; i++) {
        struct net_udp_tx *t = &u->tx[u->tx_order[i]];
        if (t->slot != NET_UDP_NONE) {
            u->map[t->slot].tx = NET_UDP_NONE;
            t->slot = NET_UDP_NONE;
        }
    }
    int rc = u->backend == NET_BACKEND_URING ? net_udp_uring_send(u) : net_udp_mmsg_send(u);
    u->tx_pending = 0;
    return rc;
}

/* A free datagram buffer, flushing and then waiting for the kernel when the pool
 * is exhausted. */
static int net_udp_tx_take(struct net_udp *u, uint32_t *idx)
{
    if (BFTKV_UNLIKELY(u->tx_free_count == 0)) {
        net_udp_count(&u->stats.pool_flushes, 1);
        int rc = net_udp_flush(u);
        if (rc < 0)
            return rc;
        if (u->tx_free_count == 0 && u->backend == NET_BACKEND_URING)
            (void)net_udp_uring_reclaim(u, NET_UDP_TX_WAIT_MS);
        if (u->tx_free_count == 0)
            return BFTKV_E_AGAIN;
    }
    *idx = u->tx_free[--u->tx_free_count];
    return 0;
}

int net_udp_queue(struct net_udp *u, const struct sockaddr_storage *dst, socklen_t dlen, const void *msg,
                  size_t len)
{
    if (len == 0)
        return BFTKV_E_INVAL;
    if (len > BFTKV_DATAGRAM_MAX)
        return BFTKV_E_RANGE;
    struct net_udp_key key;
    int rc = net_udp_key_make(u->family, dst, dlen, &key);
    if (rc != 0)
        return rc;

    uint32_t slot = net_udp_map_find(u, &key);
    uint32_t open = u->map[slot].tx;
    if (open != NET_UDP_NONE && u->tx[open].len + len <= BFTKV_DATAGRAM_MAX) {
        struct net_udp_tx *t = &u->tx[open];
        memcpy(t->buf + t->len, msg, len);
        t->len += (uint32_t)len;
        net_udp_count(&u->stats.messages_queued, 1);
        net_udp_count(&u->stats.messages_coalesced, 1);
        return 0;
    }

    uint32_t idx;
    rc = net_udp_tx_take(u, &idx);
    if (rc != 0)
        return rc;
    if (u->tx_pending == 0) {
        /* The take may have flushed: the map is empty again and the first free
         * slot on key's probe path may now come before slot. */
        slot = net_udp_map_find(u, &key);
        open = u->map[slot].tx;
    }
    if (open != NET_UDP_NONE)
        u->tx[open].slot = NET_UDP_NONE; /* sealed: it stays in tx_order until the flush */
    struct net_udp_tx *t = &u->tx[idx];
    memcpy(t->buf, msg, len);
    t->len = (uint32_t)len;
    t->slot = slot;
    /* key_make checked dlen covers the family's sockaddr; send exactly that. */
    t->dlen = (socklen_t)(u->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    memcpy(&t->dst, dst, (size_t)t->dlen);
    u->map[slot].key = key;
    u->map[slot].tx = idx;
    BFTKV_ASSERT(u->tx_pending < u->tx_count);
    u->tx_order[u->tx_pending++] = idx;
    net_udp_count(&u->stats.messages_queued, 1);
    return 0;
}

/* ---- receive half --------------------------------------------------------------- */

void net_udp_rx_deliver(struct net_udp *u, const struct sockaddr_storage *src, socklen_t srclen,
                        const uint8_t *data, size_t len, net_rx_fn *fn, void *arg)
{
    net_udp_count(&u->stats.datagrams_received, 1);
    net_udp_count(&u->stats.bytes_received, len);
    fn(arg, src, srclen, data, len);
}

int net_udp_poll(struct net_udp *u, int timeout_ms, net_rx_fn *fn, void *arg)
{
    BFTKV_ASSERT(fn != NULL);
    BFTKV_ASSERT(!u->in_poll); /* a callback must not poll its own instance */
    u->in_poll = true;
    int rc = u->backend == NET_BACKEND_URING ? net_udp_uring_poll(u, timeout_ms, fn, arg)
                                             : net_udp_mmsg_poll(u, timeout_ms, fn, arg);
    u->in_poll = false;
    return rc;
}
