/* The single-thread layout (config `threads single`, server/server.h): one thread
 * runs every stage in turn,
 *
 *     timers -> poll (each datagram: framing, admin, address book, engine step,
 *     outbox queued on the transport) -> one flush for the whole batch
 *
 * so everything the engine produced while handling one batch of received
 * datagrams leaves in as few datagrams as coalescing allows. Right for a small
 * machine, where threads would only contend for the same cores.
 *
 * A durable replica (server/server_durable.c) cannot queue on the transport as
 * it goes: net_udp_queue sends whatever is queued as soon as its datagram pool
 * runs out (net/udp.h), which at a few hundred clients happens within one
 * iteration. So its messages wait in a hold buffer, copied with their
 * destination, and the iteration ends with
 *
 *     one log commit -> the held messages queued on the transport -> one flush
 *
 * A hold buffer that fills up before the end commits early and lets its
 * messages go.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/log.h"
#include "server/server_internal.h"

static void single_queue(struct server *s, uint64_t replicas, const struct sockaddr_storage *addr, socklen_t alen,
                         const uint8_t *msg, size_t len)
{
    while (replicas != 0) {
        unsigned r = (unsigned)__builtin_ctzll(replicas);
        replicas &= replicas - 1u;
        int rc = net_udp_queue(s->udp, &s->replica_addr[r], s->replica_alen[r], msg, len);
        if (rc != 0)
            log_debug("send to replica %u: %s", r, bftkv_strerror(rc));
    }
    if (addr != NULL) {
        int rc = net_udp_queue(s->udp, addr, alen, msg, len);
        if (rc != 0)
            log_debug("send to a client: %s", bftkv_strerror(rc));
    }
}

static void single_out_replicas(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len)
{
    single_queue(s, replicas, NULL, 0, msg, len);
}

static void single_out_addr(struct server *s, const struct sockaddr_storage *addr, socklen_t alen,
                            const uint8_t *msg, size_t len)
{
    single_queue(s, 0, addr, alen, msg, len);
}

/* ---- The hold buffer of a durable replica ------------------------------------------- */

/* Room for what one iteration makes at peak load (a poll delivers at most the
 * transport's rx_buffers datagrams); more commits early. */
#define SINGLE_HOLD_BYTES (8u << 20)
#define SINGLE_HOLD_MSGS 32768u

struct single_held {
    uint64_t replicas; /* a bit per replica id; 0: to addr */
    uint32_t off;      /* into bytes */
    uint32_t len;
    socklen_t alen;
    struct sockaddr_storage addr;
};

struct server_hold {
    uint8_t *bytes;
    size_t used;
    struct single_held *msgs;
    uint32_t count;
};

/* The commit, then the held messages on the transport (not flushed). 0, or the
 * log's failure: the held messages are dropped, the replica stops. */
static int single_hold_release(struct server *s, bool early)
{
    struct server_hold *h = s->hold;
    int rc = server_wal_commit(s, early);
    if (rc == 0) {
        for (uint32_t i = 0; i < h->count; i++) {
            const struct single_held *m = &h->msgs[i];
            single_queue(s, m->replicas, m->alen != 0 ? &m->addr : NULL, m->alen, h->bytes + m->off, m->len);
        }
    }
    h->count = 0;
    h->used = 0;
    return rc;
}

static void single_hold_put(struct server *s, uint64_t replicas, const struct sockaddr_storage *addr,
                            socklen_t alen, const uint8_t *msg, size_t len)
{
    struct server_hold *h = s->hold;
    BFTKV_ASSERT(len <= SINGLE_HOLD_BYTES);
    if (h->count == SINGLE_HOLD_MSGS || h->used + len > SINGLE_HOLD_BYTES) {
        if (single_hold_release(s, true) != 0)
            return;
    }
    struct single_held *m = &h->msgs[h->count++];
    m->replicas = replicas;
    m->off = (uint32_t)h->used;
    m->len = (uint32_t)len;
    m->alen = addr != NULL ? alen : 0;
    if (addr != NULL)
        memcpy(&m->addr, addr, alen);
    memcpy(h->bytes + h->used, msg, len);
    h->used += len;
}

static void single_hold_replicas(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len)
{
    single_hold_put(s, replicas, NULL, 0, msg, len);
}

static void single_hold_addr(struct server *s, const struct sockaddr_storage *addr, socklen_t alen,
                             const uint8_t *msg, size_t len)
{
    if (alen == 0 || alen > (socklen_t)sizeof(struct sockaddr_storage))
        return;
    single_hold_put(s, 0, addr, alen, msg, len);
}

/* ---- The loop -------------------------------------------------------------------------- */

static void single_rx(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                      size_t len)
{
    struct server *s = arg;
    server_count(s, SERVER_CTR_datagrams_received, 1);
    server_datagram_step(s, src, srclen, data, len);
}

static void *single_main(void *arg)
{
    struct server *s = arg;
    server_recovery_finish(s);
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        int wait_ms = server_timers_run(s);
        if (net_udp_pending(s->udp) > 0 || (s->hold != NULL && s->hold->count > 0))
            wait_ms = 0; /* a tick produced messages: send them first */
        if (wait_ms > 0)
            server_clock_stale(s); /* the poll may wait: the first message reads the clock */
        int got = net_udp_poll(s->udp, wait_ms, single_rx, s);
        if (got < 0) {
            log_error("receive failed: %s", bftkv_strerror(got));
            atomic_store_explicit(&s->failed, true, memory_order_release);
            break;
        }
        if (s->hold != NULL && single_hold_release(s, false) != 0)
            break; /* the log failed: nothing of this iteration leaves */
        if (net_udp_pending(s->udp) > 0) {
            /* Nothing ran since the last step's clock read but the poll's
             * return: that read starts the flush. */
            uint64_t t0 = server_clock_now(s);
            int rc = net_udp_flush(s->udp);
            if (rc < 0)
                log_warn("flush failed: %s", bftkv_strerror(rc));
            server_count(s, SERVER_CTR_flushes, 1);
            server_hist_record(s, SERVER_STAGE_FLUSH, 0, (int64_t)(server_clock_read(s) - t0));
        }
    }
    return NULL;
}

int server_single_start(struct server *s)
{
    s->out_replicas = single_out_replicas;
    s->out_addr = single_out_addr;
    if (s->wal != NULL) {
        s->hold = calloc(1, sizeof *s->hold);
        if (s->hold == NULL)
            return BFTKV_E_NOMEM;
        s->hold->bytes = malloc(SINGLE_HOLD_BYTES);
        s->hold->msgs = malloc(SINGLE_HOLD_MSGS * sizeof *s->hold->msgs);
        if (s->hold->bytes == NULL || s->hold->msgs == NULL)
            return BFTKV_E_NOMEM;
        s->out_replicas = single_hold_replicas;
        s->out_addr = single_hold_addr;
    }
    if (pthread_create(&s->single_thread, NULL, single_main, s) != 0)
        return BFTKV_E_IO;
    pthread_setname_np(s->single_thread, "bftkv-replica");
    return 0;
}

void server_single_join(struct server *s)
{
    pthread_join(s->single_thread, NULL);
}

void server_single_free(struct server *s)
{
    if (s->hold == NULL)
        return;
    free(s->hold->bytes);
    free(s->hold->msgs);
    free(s->hold);
    s->hold = NULL;
}
