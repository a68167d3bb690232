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
 * iteration. So its messages wait in a hold slot, copied with their
 * destination, and the iteration ends with
 *
 *     one log commit submitted -> the slots whose commit completed queued on
 *     the transport -> one flush
 *
 * without waiting for the commit it submitted: the next iterations go on
 * receiving and stepping the engine into the next slots (the pipelined commit,
 * docs/design.md §5.6.2).
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

void server_single_out_replicas(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len)
{
    single_queue(s, replicas, NULL, 0, msg, len);
}

void server_single_out_addr(struct server *s, const struct sockaddr_storage *addr, socklen_t alen,
                            const uint8_t *msg, size_t len)
{
    single_queue(s, 0, addr, alen, msg, len);
}

/* ---- The hold slots of a durable replica -------------------------------------------- */

/* The messages of a loop iteration go into one hold slot; the slot is closed at
 * the end of the iteration with the log's last lsn (every record its messages
 * depend on: the drain appends an outbox's records first) and a commit covering
 * it is submitted. Slots are released in order once the log's committed lsn
 * reaches theirs, so while one commit runs the next iterations fill the next
 * slots. A slot that fills up is closed early (a commit submitted early); with
 * every slot closed and waiting, the loop waits for the oldest commit (counted:
 * wal_hold_waits). Room: 4 x (2 MiB + 8192 messages), touched as used; one slot
 * holds an iteration at peak load (a poll delivers at most the transport's
 * rx_buffers datagrams), more spills into the next. */
#define SINGLE_HOLD_SLOTS 4u
#define SINGLE_HOLD_BYTES (2u << 20)
#define SINGLE_HOLD_MSGS 8192u
/* While a commit runs and no datagram came, the loop waits for the log this
 * long before it looks at the transport again (the two rings have no common
 * wait; a datagram that arrives meanwhile waits at most this long). */
#define SINGLE_WAL_WAIT_US 100

struct single_held {
    uint64_t replicas; /* a bit per replica id; 0: to addr */
    uint32_t off;      /* into bytes */
    uint32_t len;
    socklen_t alen;
    struct sockaddr_storage addr;
};

struct single_slot {
    uint8_t *bytes;
    size_t used;
    struct single_held *msgs;
    uint32_t count;
    uint64_t need_lsn; /* closed: leaves once the log committed this far */
};

struct server_hold {
    struct single_slot slots[SINGLE_HOLD_SLOTS];
    unsigned first, n; /* slots in use, oldest first; the newest is open if `open` */
    bool open;
};

static struct single_slot *single_slot_at(struct server_hold *h, unsigned i)
{
    return &h->slots[(h->first + i) % SINGLE_HOLD_SLOTS];
}

/* The closed slots at the front whose commit completed, onto the transport (not
 * flushed), in order. Nothing once the log failed. */
static void single_hold_release(struct server *s)
{
    struct server_hold *h = s->hold;
    while (h->n > 0 && !(h->open && h->n == 1)) {
        struct single_slot *g = single_slot_at(h, 0);
        if (!server_wal_covers(s, g->need_lsn))
            return;
        for (uint32_t i = 0; i < g->count; i++) {
            const struct single_held *m = &g->msgs[i];
            single_queue(s, m->replicas, m->alen != 0 ? &m->addr : NULL, m->alen, g->bytes + m->off, m->len);
        }
        g->count = 0;
        g->used = 0;
        h->first = (h->first + 1) % SINGLE_HOLD_SLOTS;
        h->n--;
    }
}

/* Closes the open slot (if any) and submits a commit of everything appended. 0,
 * or the log's failure: the replica stops. */
static int single_hold_close(struct server *s, bool early)
{
    struct server_hold *h = s->hold;
    if (h->open) {
        single_slot_at(h, h->n - 1)->need_lsn = server_wal_need(s);
        h->open = false;
    }
    return server_wal_submit(s, early);
}

/* An open slot, waiting for the oldest commit while every slot waits. */
static struct single_slot *single_hold_open(struct server *s)
{
    struct server_hold *h = s->hold;
    if (h->open)
        return single_slot_at(h, h->n - 1);
    if (h->n == SINGLE_HOLD_SLOTS)
        server_count(s, SERVER_CTR_wal_hold_waits, 1);
    while (h->n == SINGLE_HOLD_SLOTS) {
        if (server_wal_reap(s, -1) != 0)
            return NULL;
        single_hold_release(s);
    }
    h->n++;
    h->open = true;
    return single_slot_at(h, h->n - 1);
}

static void single_hold_put(struct server *s, uint64_t replicas, const struct sockaddr_storage *addr,
                            socklen_t alen, const uint8_t *msg, size_t len)
{
    BFTKV_ASSERT(len <= SINGLE_HOLD_BYTES);
    struct single_slot *g = single_hold_open(s);
    if (g != NULL && (g->count == SINGLE_HOLD_MSGS || g->used + len > SINGLE_HOLD_BYTES)) {
        if (single_hold_close(s, true) != 0)
            return;
        g = single_hold_open(s);
    }
    if (g == NULL)
        return; /* the log failed */
    struct single_held *m = &g->msgs[g->count++];
    m->replicas = replicas;
    m->off = (uint32_t)g->used;
    m->len = (uint32_t)len;
    m->alen = addr != NULL ? alen : 0;
    if (addr != NULL)
        memcpy(&m->addr, addr, alen);
    memcpy(g->bytes + g->used, msg, len);
    g->used += len;
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

/* The end of an iteration: the commit submitted, what completed released. When
 * nothing arrived and a commit runs, waits for it a little (SINGLE_WAL_WAIT_US). */
int server_single_hold_end(struct server *s, bool idle)
{
    if (single_hold_close(s, false) != 0)
        return s->wal_failed;
    bool wait = idle && net_udp_pending(s->udp) == 0 && server_wal_in_flight(s);
    if (wait)
        server_clock_stale(s); /* the wait may block: the next message reads the clock */
    int rc = server_wal_reap(s, wait ? SINGLE_WAL_WAIT_US : 0);
    if (rc != 0)
        return rc;
    single_hold_release(s);
    return 0;
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
        if (net_udp_pending(s->udp) > 0 || (s->hold != NULL && (s->hold->open || server_wal_in_flight(s))))
            wait_ms = 0; /* a tick produced messages, or a commit runs: see to them first */
        if (wait_ms > 0)
            server_clock_stale(s); /* the poll may wait: the first message reads the clock */
        int got = net_udp_poll(s->udp, wait_ms, single_rx, s);
        if (got < 0) {
            log_error("receive failed: %s", bftkv_strerror(got));
            atomic_store_explicit(&s->failed, true, memory_order_release);
            break;
        }
        if (s->hold != NULL && server_single_hold_end(s, got == 0) != 0)
            break; /* the log failed: nothing it covers leaves */
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

bool server_single_hold_busy(struct server *s)
{
    return s->hold != NULL && (s->hold->open || server_wal_in_flight(s));
}

int server_single_outputs(struct server *s)
{
    s->out_replicas = server_single_out_replicas;
    s->out_addr = server_single_out_addr;
    if (s->wal == NULL)
        return 0;
    s->hold = calloc(1, sizeof *s->hold);
    if (s->hold == NULL)
        return BFTKV_E_NOMEM;
    for (unsigned i = 0; i < SINGLE_HOLD_SLOTS; i++) {
        s->hold->slots[i].bytes = malloc(SINGLE_HOLD_BYTES);
        s->hold->slots[i].msgs = malloc(SINGLE_HOLD_MSGS * sizeof *s->hold->slots[i].msgs);
        if (s->hold->slots[i].bytes == NULL || s->hold->slots[i].msgs == NULL)
            return BFTKV_E_NOMEM;
    }
    s->out_replicas = single_hold_replicas;
    s->out_addr = single_hold_addr;
    return 0;
}

int server_single_start(struct server *s)
{
    int rc = server_single_outputs(s);
    if (rc != 0)
        return rc;
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
    for (unsigned i = 0; i < SINGLE_HOLD_SLOTS; i++) {
        free(s->hold->slots[i].bytes);
        free(s->hold->slots[i].msgs);
    }
    free(s->hold);
    s->hold = NULL;
}
