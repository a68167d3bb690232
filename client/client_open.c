/* Opening and closing a client handle (include/bftkv/client.h).
 *
 * Open reads the config file, loads and checks the client's secret key, resolves
 * every replica's address (all of one address family), leases a run of the
 * client's lanes (client_session.c), creates the engine client
 * (engine/pbft.h) on those lanes with the config's retransmission interval and
 * read-only fast path and allocates every slot, so that nothing on the request
 * path allocates except the heap copy of a large async value and the result of
 * bftkv_get_alloc; then the I/O loop (client_loop.c) binds the UDP socket
 * (net/udp.h), records its address in the lease, sets up the wake-up socket and
 * starts the thread -- one loop for this handle alone, or for all the
 * partitions of a routing handle (client_route.c). The engine's timestamps start at the
 * wall-clock time in ns, or above the last timestamp an earlier holder of the
 * lanes recorded: a later handle on the same lanes keeps sending increasing
 * timestamps, which the replicas require (TOCS 2002 §4.1).
 *
 * Close stops the I/O thread first, so that it alone decides what is finished,
 * then cancels every slot still queued or on a lane and waits for the API threads
 * still inside the handle to leave before freeing it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "engine/wire_admin.h"
#include "client/client_internal.h"
#include "cluster/cluster.h"

#define CLIENT_ERR(opt, ...) errbuf_put((opt)->err, (opt)->errlen, __VA_ARGS__)

void bftkv_client_options_init(struct bftkv_client_options *opt)
{
    if (opt != NULL) {
        memset(opt, 0, sizeof *opt);
        opt->struct_size = sizeof *opt;
    }
}

/* The options of the first version of the struct end with session_wait_ms: a
 * program can know no fewer (include/bftkv/client.h, "ABI"). */
#define CLIENT_OPTIONS_SIZE_0 (offsetof(struct bftkv_client_options, session_wait_ms) + sizeof(int))
/* A struct_size beyond this is garbage, not a newer header. */
#define CLIENT_OPTIONS_SIZE_LIMIT 4096u
BFTKV_STATIC_ASSERT(CLIENT_OPTIONS_SIZE_0 <= sizeof(struct bftkv_client_options), "fields are only appended");

/* The caller's options (in may be NULL: the defaults) as this library's struct:
 * the fields an older program does not know stay zero (their defaults); a newer
 * program's fields this library does not know must be zero. */
static int client_options_take(const struct bftkv_client_options *in, struct bftkv_client_options *opt)
{
    bftkv_client_options_init(opt);
    if (in == NULL) {
        return 0;
    }
    if (in->struct_size < CLIENT_OPTIONS_SIZE_0 || in->struct_size > CLIENT_OPTIONS_SIZE_LIMIT) {
        return BFTKV_E_INVAL; /* not initialised: err cannot be trusted either */
    }
    size_t known = in->struct_size < sizeof *opt ? in->struct_size : sizeof *opt;
    memcpy(opt, in, known);
    opt->struct_size = sizeof *opt;
    const unsigned char *tail = (const unsigned char *)in;
    for (size_t i = sizeof *opt; i < in->struct_size; i++) {
        if (tail[i] != 0) {
            CLIENT_ERR(opt, "bftkv client: an option this libbftkv does not know is set (byte %zu of %zu; the "
                       "program was built with a newer include/bftkv/client.h)", i, in->struct_size);
            return BFTKV_E_UNSUPPORTED;
        }
    }
    return 0;
}

/* ---- Addresses --------------------------------------------------------------------- */

static bool addr_is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)a;
        return (ntohl(s->sin_addr.s_addr) >> 24) == 127u;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)a;
        return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
    }
    return false;
}

/* Resolve every replica; they must share replica 0's family. Picks the address to
 * bind: loopback when every replica is on loopback, else the wildcard address. */
static int client_resolve(struct bftkv_client *c, const struct bftkv_config *cfg,
                          const struct bftkv_client_options *opt, const char **bind_host)
{
    char err[BFTKV_CONFIG_ERR_MAX];
    bool all_loopback = true;
    for (uint16_t i = 0; i < cfg->n; i++) {
        int rc = bftkv_config_replica_sockaddr(cfg, i, &c->replica_addr[i], &c->replica_addrlen[i], err,
                                               sizeof err);
        if (rc != 0) {
            CLIENT_ERR(opt, "%s", err);
            return rc;
        }
        if (c->replica_addr[i].ss_family != c->replica_addr[0].ss_family) {
            CLIENT_ERR(opt, "%s:%u: replica %u is not of replica 0's address family (IPv4 and IPv6 mixed)",
                       cfg->name, cfg->replica[i].line, i);
            return BFTKV_E_CONFIG;
        }
        all_loopback = all_loopback && addr_is_loopback(&c->replica_addr[i]);
    }
    bool v6 = c->replica_addr[0].ss_family == AF_INET6;
    if (opt->bind_host != NULL) {
        *bind_host = opt->bind_host;
    } else if (all_loopback) {
        *bind_host = v6 ? "::1" : "127.0.0.1";
    } else {
        *bind_host = v6 ? "::" : "0.0.0.0";
    }
    return 0;
}

/* ---- Memory ------------------------------------------------------------------------- */

static int client_slots_init(struct bftkv_client *c, uint32_t nslots)
{
    c->slots = calloc(nslots, sizeof *c->slots);
    if (c->slots != NULL) {
        /* Touch every page now, at open, so the first submissions do not pay the
         * page faults of the slots' data areas (calloc maps them lazily). */
        volatile uint8_t *p = (volatile uint8_t *)c->slots;
        for (size_t off = 0; off < (size_t)nslots * sizeof *c->slots; off += 4096u) {
            p[off] = 0;
        }
    }
    c->fifo = calloc(nslots, sizeof *c->fifo);
    c->lane_slot = calloc(c->lanes, sizeof *c->lane_slot);
    c->done = calloc(c->lanes, sizeof *c->done);
    c->close_calls = calloc(nslots, sizeof *c->close_calls);
    c->probe_msg = malloc(ADMIN_REQUEST_MAX);
    if (c->slots == NULL || c->fifo == NULL || c->lane_slot == NULL || c->done == NULL
        || c->close_calls == NULL || c->probe_msg == NULL) {
        return BFTKV_E_NOMEM;
    }
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return BFTKV_E_NOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    c->nslots = 0;
    for (uint32_t i = 0; i < nslots; i++) {
        if (pthread_cond_init(&c->slots[i].cond, &ca) != 0) {
            pthread_condattr_destroy(&ca);
            return BFTKV_E_NOMEM;
        }
        c->slots[i].state = SLOT_FREE;
        c->slots[i].next = i + 1 < nslots ? i + 1 : CLIENT_NONE;
        c->nslots++; /* conds 0..nslots-1 exist: destroy knows what to release */
    }
    pthread_condattr_destroy(&ca);
    c->free_head = 0;
    c->async_head = c->async_tail = CLIENT_NONE;
    for (uint32_t i = 0; i < c->lanes; i++) {
        c->lane_slot[i] = CLIENT_NONE;
    }
    return 0;
}

static int client_sync_init(struct bftkv_client *c)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return BFTKV_E_NOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = 0;
    if (pthread_mutex_init(&c->mu, NULL) != 0) {
        rc = BFTKV_E_NOMEM;
    } else if (pthread_cond_init(&c->room, &ca) != 0) {
        pthread_mutex_destroy(&c->mu);
        rc = BFTKV_E_NOMEM;
    } else if (pthread_cond_init(&c->drained, &ca) != 0) {
        pthread_cond_destroy(&c->room);
        pthread_mutex_destroy(&c->mu);
        rc = BFTKV_E_NOMEM;
    }
    pthread_condattr_destroy(&ca);
    return rc;
}

/* Free everything open allocated; safe on a partly opened handle (sync_ready
 * says whether mu and the handle's conds exist). */
static void client_destroy(struct bftkv_client *c, bool sync_ready)
{
    if (c->slots != NULL) {
        for (uint32_t i = 0; i < c->nslots; i++) {
            free(c->slots[i].heap);
            pthread_cond_destroy(&c->slots[i].cond);
        }
    }
    free(c->slots);
    free(c->fifo);
    free(c->lane_slot);
    free(c->done);
    free(c->close_calls);
    free(c->probe_msg);
    if (c->own_io != NULL) {
        client_loop_destroy(c->own_io);
        free(c->own_io);
    }
    if (c->out_ready) {
        pbft_out_free(&c->out);
    }
    uint64_t last_ts = 0;
    if (c->engine != NULL) {
        /* The engine's timestamps are its base + those it issued, gaps included
         * (engine/client_readonly.c skips some): the last one it sent. */
        const struct pbft_client_stats *es = pbft_client_stats(c->engine);
        last_ts = c->lease.first_ts + es->timestamps_issued;
    }
    client_session_release(&c->lease, last_ts);
    pbft_client_destroy(c->engine);
    if (c->auth_ready) {
        auth_destroy(&c->auth);
    }
    if (sync_ready) {
        pthread_cond_destroy(&c->drained);
        pthread_cond_destroy(&c->room);
        pthread_mutex_destroy(&c->mu);
    }
    sodium_memzero(c, sizeof *c);
    free(c);
}

/* ---- Open ------------------------------------------------------------------------- */

static int client_options_check(const struct bftkv_client_options *opt)
{
    if (opt->timeout_ms < 0 || (uint32_t)opt->timeout_ms > BFTKV_CONFIG_TIMEOUT_MS_MAX) {
        CLIENT_ERR(opt, "bftkv client: timeout_ms %d out of range 0..%u", opt->timeout_ms,
                   BFTKV_CONFIG_TIMEOUT_MS_MAX);
        return BFTKV_E_INVAL;
    }
    if (opt->queue_max > BFTKV_CLIENT_QUEUE_MAX || opt->lanes > PBFT_LANES_MAX) {
        CLIENT_ERR(opt, "bftkv client: queue_max (at most %u) or lanes (at most %u) out of range",
                   BFTKV_CLIENT_QUEUE_MAX, PBFT_LANES_MAX);
        return BFTKV_E_INVAL;
    }
    if (opt->session_wait_ms < 0 || (uint32_t)opt->session_wait_ms > BFTKV_CONFIG_TIMEOUT_MS_MAX) {
        CLIENT_ERR(opt, "bftkv client: session_wait_ms %d out of range 0..%u", opt->session_wait_ms,
                   BFTKV_CONFIG_TIMEOUT_MS_MAX);
        return BFTKV_E_INVAL;
    }
    if (opt->backend != BFTKV_BACKEND_MMSG && opt->backend != BFTKV_BACKEND_URING
        && opt->backend != BFTKV_BACKEND_AUTO) {
        CLIENT_ERR(opt, "bftkv client: unknown backend %d", opt->backend);
        return BFTKV_E_INVAL;
    }
    if ((opt->flags & ~(uint32_t)(BFTKV_CLIENT_SUBMIT_BLOCK | BFTKV_CLIENT_STALE_READS)) != 0) {
        CLIENT_ERR(opt, "bftkv client: unknown flags 0x%x", opt->flags);
        return BFTKV_E_INVAL;
    }
    return 0;
}

static uint64_t client_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Keys, the engine client and its outbox. */
static int client_engine_init(struct bftkv_client *c, const struct bftkv_config *cfg,
                              const struct bftkv_client_options *opt)
{
    char err[BFTKV_CONFIG_ERR_MAX];
    struct auth_keypair kp;
    int rc = bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, c->id, &kp, err, sizeof err);
    if (rc == 0) {
        rc = bftkv_key_auth_init(cfg, BFTKV_CONFIG_CLIENT, c->id, &kp, &c->auth, err, sizeof err);
    }
    sodium_memzero(&kp, sizeof kp);
    if (rc != 0) {
        CLIENT_ERR(opt, "%s", err);
        return rc;
    }
    c->auth_ready = true;
    struct pbft_client_config pc;
    if (bftkv_config_fill_client(cfg, c->id, &pc) != 0) {
        return BFTKV_E_CONFIG; /* checked by the caller already */
    }
    pc.lanes = c->lanes;
    pc.lane_base = c->lane_base;
    pc.stale_reads = (c->flags & BFTKV_CLIENT_STALE_READS) != 0;
    uint64_t wall = client_wall_ns();
    pc.timestamp_base = wall > c->lease.ts_floor ? wall : c->lease.ts_floor;
    c->lease.first_ts = pc.timestamp_base;
    rc = pbft_client_create(&pc, &c->auth, &c->engine);
    if (rc != 0) {
        CLIENT_ERR(opt, "bftkv client: cannot create the protocol client: %s", bftkv_strerror(rc));
        return rc;
    }
    rc = pbft_out_init(&c->out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS);
    if (rc != 0) {
        return rc;
    }
    c->out_ready = true;
    return 0;
}

static int client_open_with(const struct bftkv_config *cfg, uint16_t client_id,
                            const struct bftkv_client_options *opt, struct bftkv_client *c, const char **bind_host)
{
    if (client_id >= cfg->clients || !cfg->client[client_id].allowed) {
        CLIENT_ERR(opt, "%s: client %u is not in the allow-list (no 'client %u' line)", cfg->name, client_id,
                   client_id);
        return BFTKV_E_CONFIG;
    }
    c->id = client_id;
    c->n = cfg->n;
    c->f = cfg->f;
    c->group = cfg->group;
    c->retransmit_ns = (uint64_t)cfg->retransmit_ms * 1000000u;
    int rc = client_session_lease(&c->lease, cfg, client_id, opt, opt->err, opt->errlen);
    if (rc != 0) {
        return rc;
    }
    c->lanes = c->lease.count;
    c->lane_base = c->lease.base;
    c->flags = opt->flags;
    uint32_t timeout_ms = opt->timeout_ms != 0 ? (uint32_t)opt->timeout_ms : cfg->client_timeout_ms;
    c->timeout_ns = (uint64_t)timeout_ms * 1000000u;
    rc = client_resolve(c, cfg, opt, bind_host);
    if (rc == 0) {
        rc = client_engine_init(c, cfg, opt);
    }
    if (rc == 0) {
        rc = client_slots_init(c, opt->queue_max != 0 ? opt->queue_max : BFTKV_CLIENT_QUEUE_DEFAULT);
    }
    c->stats.lanes = c->lanes;
    c->stats.lane_base = c->lane_base;
    return rc;
}

int client_open_part(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                     struct bftkv_client **out, const char **bind_host)
{
    struct bftkv_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return BFTKV_E_NOMEM;
    }
    for (uint32_t i = 0; i < PBFT_LANES_MAX; i++) {
        c->lease.fds[i] = -1;
    }
    static _Atomic uint64_t serials;
    c->serial = ++serials;
    int rc = client_sync_init(c);
    if (rc != 0) {
        free(c);
        return rc;
    }
    rc = client_open_with(cfg, client_id, opt, c, bind_host);
    if (rc != 0) {
        client_destroy(c, true);
        return rc;
    }
    *out = c;
    return 0;
}

/* A handle for client_id of cfg, with options already taken (client_options_take)
 * and checked, libsodium initialised: a partition's handle with an I/O loop of
 * its own. */
int client_open_group(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                      struct bftkv_client **out)
{
    struct bftkv_client *c = NULL;
    const char *bind_host = NULL;
    int rc = client_open_part(cfg, client_id, opt, &c, &bind_host);
    if (rc != 0) {
        return rc;
    }
    c->own_io = calloc(1, sizeof *c->own_io);
    if (c->own_io == NULL) {
        rc = BFTKV_E_NOMEM;
    } else {
        c->own_io->one = c;
        rc = client_loop_open(c->own_io, &c->own_io->one, 1, bind_host, cfg, opt);
    }
    if (rc == 0) {
        rc = client_loop_start(c->own_io);
    }
    if (rc != 0) {
        client_destroy(c, true);
        return rc;
    }
    *out = c;
    return 0;
}

/* A deployment's file opens a routing handle (client/client_route.c). */
static int client_open_cfg(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                           struct bftkv_client **out)
{
    if (cluster_deployment_is(cfg))
        return client_route_open(cfg, client_id, opt, out);
    return client_open_group(cfg, client_id, opt, out);
}

/* What every open does first: *out cleared, the options taken and checked,
 * libsodium ready; then BFTKV_E_INVAL with "bftkv client: missing" when the
 * caller left out its config (missing not NULL). */
static int client_open_begin(const struct bftkv_client_options *in, struct bftkv_client_options *opt,
                             struct bftkv_client **out, const char *missing)
{
    if (out == NULL) {
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    int rc = client_options_take(in, opt);
    if (rc == 0) {
        rc = client_options_check(opt);
    }
    if (rc == 0 && sodium_init() < 0) {
        CLIENT_ERR(opt, "bftkv client: libsodium cannot initialise");
        rc = BFTKV_E_IO;
    }
    if (rc == 0 && missing != NULL) {
        CLIENT_ERR(opt, "bftkv client: %s", missing);
        rc = BFTKV_E_INVAL;
    }
    return rc;
}

/* An open from a config file (file: src is its path) or from a config's text
 * (src, len bytes, named name in messages). */
static int client_open_source(bool file, const char *src, size_t len, const char *name, uint16_t client_id,
                              const struct bftkv_client_options *opt_in, struct bftkv_client **out)
{
    const char *missing = NULL;
    if (file && src == NULL) {
        missing = "no config file given";
    } else if (!file && (src == NULL || name == NULL)) {
        missing = "no config text or no name for it given";
    }
    struct bftkv_client_options opt;
    int rc = client_open_begin(opt_in, &opt, out, missing);
    if (rc != 0) {
        return rc;
    }
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    rc = file ? bftkv_config_load(src, &cfg, err, sizeof err)
              : bftkv_config_parse(src, len, name, &cfg, err, sizeof err);
    if (rc != 0) {
        CLIENT_ERR(&opt, "%s", err);
        return rc;
    }
    rc = client_open_cfg(cfg, client_id, &opt, out);
    bftkv_config_free(cfg);
    return rc;
}

int bftkv_client_open(const char *config_path, uint16_t client_id, const struct bftkv_client_options *opt_in,
                      struct bftkv_client **out)
{
    return client_open_source(true, config_path, 0, NULL, client_id, opt_in, out);
}

int bftkv_client_open_config(const struct bftkv_config *cfg, uint16_t client_id,
                             const struct bftkv_client_options *opt_in, struct bftkv_client **out)
{
    struct bftkv_client_options opt;
    int rc = client_open_begin(opt_in, &opt, out, cfg == NULL ? "no config given" : NULL);
    return rc != 0 ? rc : client_open_cfg(cfg, client_id, &opt, out);
}

int bftkv_client_open_text(const char *text, size_t len, const char *name, uint16_t client_id,
                           const struct bftkv_client_options *opt_in, struct bftkv_client **out)
{
    return client_open_source(false, text, len, name, client_id, opt_in, out);
}

/* ---- Close --------------------------------------------------------------------------- */

/* With mu held and the I/O thread gone: finish every slot with BFTKV_E_CANCELLED.
 * Sync callers are signalled; async callbacks are collected into calls (nslots
 * entries) for the caller to make without mu. Returns their number. */
static uint32_t client_cancel_all(struct bftkv_client *c, struct client_call *calls)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->nslots; i++) {
        struct client_slot *s = &c->slots[i];
        switch (s->state) {
        case SLOT_QUEUED:
        case SLOT_ACTIVE:
            if (s->kind == KIND_ASYNC) {
                calls[k++] = (struct client_call){ .cb = s->cb, .arg = s->arg, .status = BFTKV_E_CANCELLED };
                client_ops_async_unlink(c, i);
                client_ops_slot_free(c, i);
            } else {
                s->status = BFTKV_E_CANCELLED;
                s->state = SLOT_DONE;
                pthread_cond_signal(&s->cond);
            }
            break;
        case SLOT_ABANDONED:
            client_ops_slot_free(c, i);
            break;
        default:
            break;
        }
    }
    c->fifo_len = 0;
    c->in_flight = 0;
    return k;
}

void client_close_begin(struct bftkv_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_cond_broadcast(&c->room);
    pthread_mutex_unlock(&c->mu);
}

void client_close_finish(struct bftkv_client *c)
{
    pthread_mutex_lock(&c->mu);
    uint32_t k = client_cancel_all(c, c->close_calls);
    while (c->waiters > 0) {
        pthread_cond_wait(&c->drained, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    for (uint32_t i = 0; i < k; i++) {
        c->close_calls[i].cb(c->close_calls[i].arg, c->close_calls[i].status, NULL, 0);
    }
    client_destroy(c, true);
}

void bftkv_client_close(struct bftkv_client *c)
{
    if (c == NULL) {
        return;
    }
    if (c->part != NULL) {
        client_route_close(c);
        return;
    }
    client_close_begin(c);
    client_loop_stop(c->io);
    client_close_finish(c);
}
