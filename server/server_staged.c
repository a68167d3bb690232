/* The staged layout (config `threads staged auth_workers=N`, docs/design.md §6):
 *
 *   rx thread ──in[w]──> auth worker w (N of them) ──out[w]──> protocol thread
 *        ^                      │                                │      │
 *        └──── free[w] ─────────┘            proto_free ─────────┘      │
 *        └──────────────────────────────────────────────────────────────┘
 *   protocol thread ──tx_ring──> tx thread ──tx_free──> protocol thread
 *
 * rx: net_udp_poll; copies each datagram into a slot of a fixed pool
 *     (STAGED_RX_SLOTS slots of one maximal datagram each) and hands it to the
 *     worker chosen by a hash of the source address, so one peer's datagrams stay
 *     in order. No free slot: the datagram is dropped, "rx_ring_full".
 * auth worker: checks the framing, spends the datagram's message budget, and
 *     decodes and authenticates every message once (server_msg_decode: wire
 *     decode, then the MAC for us or the signature, on the engine's auth
 *     context, read-only); the messages that pass are listed in the slot,
 *     decoded, where they lie in its bytes (nothing is moved), and the slot
 *     goes on, or back to rx when none passed. What fails is counted by
 *     reason.
 * protocol: hands each listed message, decoded and marked authenticated, to
 *     server_msg_handle (admin answer, address book, engine step with
 *     execution inside the engine: the engine neither decodes it again nor
 *     checks its MAC or signature again), timers; everything a round of datagrams
 *     produced is copied into one tx batch (a 512 KiB buffer from a pool of
 *     STAGED_TX_BATCHES) and published to the tx thread; a durable replica
 *     submits one commit of its write-ahead log per round (and one when a
 *     batch fills up) and keeps each closed batch until a commit covering it
 *     completed, publishing batches in order, so no message leaves before the
 *     records it depends on (server/server_durable.c); rounds go on meanwhile.
 * tx: queues each batch's messages on the transport (coalescing per destination)
 *     and flushes once per set of batches drained; gives the batches back.
 *
 * Every ring is a ck_ring SPSC ring of pointers, larger than the pool it carries,
 * so a push never fails. Each handoff says what it publishes to whom. A thread
 * with nothing to do spins briefly, then parks on a futex word (an event count)
 * that its producers bump (staged_signal_*: no lost wake-up), and every park is
 * bounded (SERVER_POLL_MS_MAX) so the stop flag is seen within ~10 ms.
 */
#include <ck_pr.h>
#include <ck_ring.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/log.h"
#include "server/server_internal.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
/* ck_pr's loads and stores are inline assembly that TSan does not see: tell it
 * that a push publishes and a pop acquires. */
#define STAGED_TSAN_RELEASE(addr) __tsan_release(addr)
#define STAGED_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
/* The ring's own slot array is written and read with memcpy inside ck_ring.h,
 * ordered by ck_pr fences TSan cannot see either; those two accesses are the
 * ring's business, and everything the pointers lead to is ordered by the
 * annotations above. TSan asks the program for default suppressions through
 * this hook (TSAN_OPTIONS=suppressions=... still adds to it). */
const char *__tsan_default_suppressions(void);
const char *__tsan_default_suppressions(void)
{
    return "race:_ck_ring_enqueue_sp\nrace:_ck_ring_dequeue_sc\n";
}
#else
#define STAGED_TSAN_RELEASE(addr) ((void)(addr))
#define STAGED_TSAN_ACQUIRE(addr) ((void)(addr))
#endif

/* Pools. Slots: 256 x 64 KiB of address space (16 MiB) for the bytes, touched
 * only as far as datagrams fill them, and per slot room for the decoded form of
 * every message a datagram's budget lets through, SERVER_DGRAM_MSGS_MAX = 577
 * server_msgs of 136 bytes on x86-64 (77 KiB a slot, 19 MiB of address space):
 * zeroed at allocation, so a page of it is touched only once a datagram has had
 * that many messages (a client's REQUEST uses one entry, a replica's coalesced
 * datagram a few dozen). Tx: 16 x 512 KiB; one batch holds a round's messages. */
#define STAGED_RX_SLOTS 256u
#define STAGED_RING_SIZE 512u /* a power of two above every pool a ring carries */
#define STAGED_TX_BATCHES 16u
#define STAGED_TX_BATCH_BYTES (512u * 1024u)
#define STAGED_PROTO_BATCH 64u /* datagrams taken from one worker per turn */
#define STAGED_SPIN 200u       /* polls of a ring before parking */
#define STAGED_TX_WAIT_NS (200u * 1000000u) /* protocol waits this long for a tx batch */
#define STAGED_CACHE_LINE 64u
/* While a commit runs and the workers have nothing, the protocol thread waits
 * for the log this long before it looks at their rings again. */
#define STAGED_WAL_WAIT_US 100

BFTKV_STATIC_ASSERT((STAGED_RING_SIZE & (STAGED_RING_SIZE - 1u)) == 0, "ck_ring size is a power of two");
BFTKV_STATIC_ASSERT(STAGED_RING_SIZE > STAGED_RX_SLOTS && STAGED_RING_SIZE > STAGED_TX_BATCHES,
                    "a ring holds its whole pool (capacity is size - 1): a push never fails");

struct staged_slot {
    uint64_t t_rx_ns;
    struct sockaddr_storage src;
    socklen_t srclen;
    uint32_t len;
    uint32_t nmsgs;            /* messages that passed the auth worker ... */
    struct server_msg *msgs;   /* ... decoded, pointing into data (SERVER_DGRAM_MSGS_MAX) */
    int8_t from_replica;       /* the budget's look-up of src (server_budget) */
    uint8_t data[BFTKV_DATAGRAM_MAX];
};

struct staged_ring {
    _Alignas(STAGED_CACHE_LINE) struct ck_ring ring;
    struct ck_ring_buffer buf[STAGED_RING_SIZE];
};

/* A futex word its consumer parks on; producers bump it when the consumer says
 * it may be parked. */
struct staged_signal {
    _Alignas(STAGED_CACHE_LINE) uint32_t seq;
    uint32_t waiting;
};

struct staged_worker {
    struct server *s;
    struct server_staged *st;
    uint16_t index;
    bool running;
    pthread_t thread;
    struct staged_ring in;   /* rx -> worker: slots to check */
    struct staged_ring out;  /* worker -> protocol: checked slots */
    struct staged_ring free; /* worker -> rx: slots the check emptied */
    struct staged_signal wake;
};

/* One message in a tx batch: to the replicas of the mask and/or one address. */
struct staged_tx_entry {
    uint64_t replicas;
    uint32_t len;
    uint32_t size; /* of the entry, message included, a multiple of 8 */
    socklen_t alen;
    struct sockaddr_storage addr;
};

struct staged_tx_batch {
    uint64_t t_pub_ns;
    uint64_t need_lsn; /* durable: published once the log committed this far */
    uint32_t used;
    uint32_t count;
    uint8_t *bytes; /* STAGED_TX_BATCH_BYTES */
};

struct server_staged {
    struct server *s;
    uint16_t nworkers;
    struct staged_worker *workers;
    struct staged_slot *slots;
    struct server_msg *msgs;       /* every slot's decoded messages: one allocation */
    /* rx thread's own */
    struct staged_slot **free_stack;
    uint32_t free_top;
    bool *wake_pending;
    /* protocol */
    struct staged_ring proto_free; /* protocol -> rx: handled slots */
    struct staged_signal proto_wake;
    struct staged_tx_batch *cur;   /* the open batch (protocol thread) */
    /* durable: closed batches waiting for their commit, oldest first (protocol thread) */
    struct staged_tx_batch *waiting[STAGED_TX_BATCHES];
    uint32_t wait_first, wait_n;
    /* tx */
    struct staged_ring tx_ring;    /* protocol -> tx: filled batches */
    struct staged_ring tx_free;    /* tx -> protocol: sent batches */
    struct staged_signal tx_wake;
    struct staged_tx_batch batches[STAGED_TX_BATCHES];
    pthread_t rx_thread, proto_thread, tx_thread;
    bool rx_running, proto_running, tx_running;
};

/* ---- Rings and signals ------------------------------------------------------------------ */

static void staged_ring_init(struct staged_ring *r)
{
    ck_ring_init(&r->ring, STAGED_RING_SIZE);
}

/* Publish p (and every write to what it points to) to the ring's consumer. */
static void staged_ring_push(struct staged_ring *r, void *p)
{
    STAGED_TSAN_RELEASE(r);
    bool ok = ck_ring_enqueue_spsc(&r->ring, r->buf, p);
    BFTKV_ASSERT(ok); /* the ring is larger than its pool */
}

/* Take the oldest pointer, with everything its producer wrote before pushing it. */
static void *staged_ring_pop(struct staged_ring *r)
{
    void *p = NULL;
    if (!ck_ring_dequeue_spsc(&r->ring, r->buf, &p))
        return NULL;
    STAGED_TSAN_ACQUIRE(r);
    return p;
}

static bool staged_ring_empty(struct staged_ring *r)
{
    return ck_ring_size(&r->ring) == 0;
}

/* The futex word is an event count: every raise bumps it, and a consumer parks
 * only while it still holds the value it read before its last look at the rings.
 *
 * Producer side, after its pushes: bump the count (a locked RMW, so the pushes
 * are visible before it), then wake the consumer if it said it may be parked. */
static void staged_signal_raise(struct staged_signal *g)
{
    __atomic_fetch_add(&g->seq, 1u, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&g->waiting, __ATOMIC_SEQ_CST) != 0)
        syscall(SYS_futex, &g->seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Consumer side: park up to timeout_ms unless ready(arg) turns true. The count
 * is read before the last look at the rings: a push that look missed bumps the
 * count afterwards, and then either the kernel sees the new count (FUTEX_WAIT
 * returns at once) or the producer sees `waiting` (set by a locked exchange,
 * before the kernel reads the count) and wakes us. */
static void staged_signal_wait(struct staged_signal *g, bool (*ready)(void *), void *arg, int timeout_ms)
{
    for (uint32_t i = 0; i < STAGED_SPIN; i++) {
        if (ready(arg))
            return;
        ck_pr_stall();
    }
    uint32_t seq = __atomic_load_n(&g->seq, __ATOMIC_SEQ_CST);
    if (ready(arg) || timeout_ms <= 0)
        return;
    __atomic_exchange_n(&g->waiting, 1u, __ATOMIC_SEQ_CST);
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
    syscall(SYS_futex, &g->seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
    __atomic_store_n(&g->waiting, 0u, __ATOMIC_SEQ_CST);
}

static bool staged_stopping(const struct server *s)
{
    return atomic_load_explicit(&s->stop, memory_order_acquire);
}

/* ---- rx ----------------------------------------------------------------------------------- */

/* Take back the slots the workers and the protocol thread are done with. */
static void staged_rx_reclaim(struct server_staged *st)
{
    struct staged_slot *slot;
    for (uint16_t w = 0; w < st->nworkers; w++)
        while ((slot = staged_ring_pop(&st->workers[w].free)) != NULL)
            st->free_stack[st->free_top++] = slot;
    while ((slot = staged_ring_pop(&st->proto_free)) != NULL)
        st->free_stack[st->free_top++] = slot;
    BFTKV_ASSERT(st->free_top <= STAGED_RX_SLOTS);
}

/* FNV-1a of the source address: the worker that keeps this peer's order. */
static uint32_t staged_src_hash(const struct sockaddr_storage *a, socklen_t len)
{
    const uint8_t *p = (const uint8_t *)a;
    uint32_t h = 2166136261u;
    for (socklen_t i = 0; i < len && i < (socklen_t)sizeof *a; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void staged_rx(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                      size_t len)
{
    struct server_staged *st = arg;
    struct server *s = st->s;
    server_count(s, SERVER_CTR_datagrams_received, 1);
    if (st->free_top == 0)
        staged_rx_reclaim(st);
    if (st->free_top == 0 || len > BFTKV_DATAGRAM_MAX || srclen > (socklen_t)sizeof *src) {
        server_count(s, SERVER_CTR_rx_ring_full, 1);
        return;
    }
    struct staged_slot *slot = st->free_stack[--st->free_top];
    slot->t_rx_ns = server_now_ns();
    memcpy(&slot->src, src, srclen);
    slot->srclen = srclen;
    slot->len = (uint32_t)len;
    memcpy(slot->data, data, len);
    uint16_t w = (uint16_t)(staged_src_hash(src, srclen) % st->nworkers);
    /* rx -> worker w: the slot with the datagram and its source. */
    staged_ring_push(&st->workers[w].in, slot);
    st->wake_pending[w] = true;
}

static void *staged_rx_main(void *arg)
{
    struct server_staged *st = arg;
    struct server *s = st->s;
    while (!staged_stopping(s)) {
        staged_rx_reclaim(st);
        int got = net_udp_poll(s->udp, SERVER_POLL_MS_MAX, staged_rx, st);
        if (got < 0) {
            log_error("receive failed: %s", bftkv_strerror(got));
            atomic_store_explicit(&s->failed, true, memory_order_release);
            break;
        }
        for (uint16_t w = 0; w < st->nworkers; w++) {
            if (st->wake_pending[w]) {
                st->wake_pending[w] = false;
                staged_signal_raise(&st->workers[w].wake);
            }
        }
    }
    return NULL;
}

/* ---- auth workers ------------------------------------------------------------------------- */

/* Check the framing, spend the datagram's budget, and list the messages that
 * decode and authenticate (server_msg_decode), decoded, in the slot. */
static void staged_decode(struct server *s, struct staged_slot *slot)
{
    slot->nmsgs = 0;
    uint32_t count = 0;
    if (!server_framing_ok(slot->data, slot->len, &count)) {
        server_count(s, SERVER_CTR_bad_datagram, 1);
        return;
    }
    struct server_budget budget;
    server_budget_init(&budget);
    size_t off = 0;
    while (off < slot->len) {
        const uint8_t *msg = slot->data + off;
        size_t size = server_msg_size(msg);
        off += size;
        if (!server_budget_take(s, &budget, &slot->src, slot->srclen, msg[3]))
            continue;
        BFTKV_ASSERT(slot->nmsgs < SERVER_DGRAM_MSGS_MAX); /* each taken from a budget */
        if (server_msg_decode(s, msg, size, true, &slot->msgs[slot->nmsgs]))
            slot->nmsgs++;
        else
            server_count(s, SERVER_CTR_auth_dropped, 1);
    }
    slot->from_replica = budget.from_replica;
}

static bool staged_worker_ready(void *arg)
{
    struct staged_worker *w = arg;
    return !staged_ring_empty(&w->in) || staged_stopping(w->s);
}

static void *staged_worker_main(void *arg)
{
    struct staged_worker *w = arg;
    struct server *s = w->s;
    while (!staged_stopping(s)) {
        uint32_t handled = 0;
        struct staged_slot *slot;
        while ((slot = staged_ring_pop(&w->in)) != NULL) {
            uint64_t t0 = server_now_ns();
            staged_decode(s, slot);
            server_hist_record(s, SERVER_STAGE_AUTH, w->index, (int64_t)(server_now_ns() - t0));
            if (slot->nmsgs == 0) {
                /* worker -> rx: an empty slot, reusable. */
                staged_ring_push(&w->free, slot);
                continue;
            }
            /* worker -> protocol: the slot with its list of decoded messages that passed. */
            staged_ring_push(&w->out, slot);
            if (++handled % 32u == 0)
                staged_signal_raise(&w->st->proto_wake);
        }
        if (handled > 0) {
            staged_signal_raise(&w->st->proto_wake);
            continue;
        }
        staged_signal_wait(&w->wake, staged_worker_ready, w, SERVER_POLL_MS_MAX);
    }
    return NULL;
}

/* ---- protocol ------------------------------------------------------------------------------ */

static size_t staged_align8(size_t x)
{
    return (x + 7u) & ~(size_t)7u;
}

/* A free tx batch, waiting (bounded) for the tx thread to give one back. */
static void staged_tx_release(struct server_staged *st);

static struct staged_tx_batch *staged_tx_batch_get(struct server_staged *st)
{
    uint64_t until = 0;
    bool counted = false;
    for (;;) {
        struct staged_tx_batch *b = staged_ring_pop(&st->tx_free);
        if (b != NULL) {
            b->used = 0;
            b->count = 0;
            return b;
        }
        if (st->wait_n > 0) {
            /* Batches wait for a commit: the oldest frees one (or more). */
            if (!counted)
                server_count(st->s, SERVER_CTR_wal_hold_waits, 1);
            counted = true;
            if (server_wal_reap(st->s, -1) != 0)
                return NULL;
            staged_tx_release(st);
            continue;
        }
        uint64_t now = server_now_ns();
        if (until == 0)
            until = now + STAGED_TX_WAIT_NS;
        if (now >= until || staged_stopping(st->s))
            return NULL;
        staged_signal_raise(&st->tx_wake);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 20000};
        nanosleep(&ts, NULL);
    }
}

static void staged_tx_push(struct server_staged *st, struct staged_tx_batch *b)
{
    b->t_pub_ns = server_now_ns();
    /* protocol -> tx: a batch of messages with their destinations. */
    staged_ring_push(&st->tx_ring, b);
    staged_signal_raise(&st->tx_wake);
}

/* The waiting batches whose commit completed go to the tx thread, in order. */
static void staged_tx_release(struct server_staged *st)
{
    while (st->wait_n > 0) {
        struct staged_tx_batch *b = st->waiting[st->wait_first];
        if (!server_wal_covers(st->s, b->need_lsn))
            return;
        st->wait_first = (st->wait_first + 1) % STAGED_TX_BATCHES;
        st->wait_n--;
        staged_tx_push(st, b);
    }
}

/* Closes the open batch. Without a log it goes to the tx thread; a durable
 * replica's waits for a commit of every record appended so far, which is
 * submitted here (early: before the end of the round) without waiting. 0, or
 * the log's failure. */
static int staged_tx_publish(struct server_staged *st, bool early)
{
    struct staged_tx_batch *b = st->cur;
    if (b != NULL && b->count > 0) {
        st->cur = NULL;
        if (st->s->wal == NULL) {
            staged_tx_push(st, b);
            return 0;
        }
        BFTKV_ASSERT(st->wait_n < STAGED_TX_BATCHES); /* each from the pool */
        b->need_lsn = server_wal_need(st->s);
        st->waiting[(st->wait_first + st->wait_n++) % STAGED_TX_BATCHES] = b;
    }
    int rc = server_wal_submit(st->s, early);
    if (rc == 0)
        staged_tx_release(st); /* e.g. nothing new to commit */
    return rc;
}

/* Room for one message in the open batch (opening or publishing batches). */
static struct staged_tx_entry *staged_tx_reserve(struct server_staged *st, size_t len)
{
    size_t need = staged_align8(sizeof(struct staged_tx_entry) + len);
    BFTKV_ASSERT(need <= STAGED_TX_BATCH_BYTES);
    if (st->cur != NULL && st->cur->used + need > STAGED_TX_BATCH_BYTES) {
        if (staged_tx_publish(st, true) != 0)
            return NULL; /* the log failed */
    }
    if (st->cur == NULL)
        st->cur = staged_tx_batch_get(st);
    if (st->cur == NULL) {
        server_count(st->s, SERVER_CTR_tx_ring_full, 1);
        return NULL;
    }
    struct staged_tx_entry *e = (struct staged_tx_entry *)(void *)(st->cur->bytes + st->cur->used);
    st->cur->used += (uint32_t)need;
    st->cur->count++;
    e->size = (uint32_t)need;
    e->len = (uint32_t)len;
    return e;
}

static void staged_out_replicas(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len)
{
    struct staged_tx_entry *e = staged_tx_reserve(s->staged, len);
    if (e == NULL)
        return;
    e->replicas = replicas;
    e->alen = 0;
    memcpy(e + 1, msg, len);
}

static void staged_out_addr(struct server *s, const struct sockaddr_storage *addr, socklen_t alen,
                            const uint8_t *msg, size_t len)
{
    struct staged_tx_entry *e = staged_tx_reserve(s->staged, len);
    if (e == NULL)
        return;
    e->replicas = 0;
    e->alen = alen;
    memcpy(&e->addr, addr, alen);
    memcpy(e + 1, msg, len);
}

static bool staged_proto_ready(void *arg)
{
    struct server_staged *st = arg;
    for (uint16_t w = 0; w < st->nworkers; w++)
        if (!staged_ring_empty(&st->workers[w].out))
            return true;
    return staged_stopping(st->s);
}

static void *staged_proto_main(void *arg)
{
    struct server_staged *st = arg;
    struct server *s = st->s;
    server_recovery_finish(s);
    while (!staged_stopping(s)) {
        uint32_t got = 0;
        for (uint16_t w = 0; w < st->nworkers; w++) {
            struct staged_slot *slot;
            for (uint32_t k = 0; k < STAGED_PROTO_BATCH && (slot = staged_ring_pop(&st->workers[w].out)) != NULL;
                 k++) {
                /* One clock read per datagram: also the time of its first message. */
                server_hist_record(s, SERVER_STAGE_RX_QUEUE, 0, (int64_t)(server_clock_read(s) - slot->t_rx_ns));
                for (uint32_t i = 0; i < slot->nmsgs; i++)
                    server_msg_handle(s, &slot->src, slot->srclen, &slot->from_replica, &slot->msgs[i]);
                /* protocol -> rx: the slot is free again. */
                staged_ring_push(&st->proto_free, slot);
                got++;
            }
        }
        int wait_ms = server_timers_run(s);
        /* One commit of the log for the whole round, submitted; the round's
         * batch reaches the tx thread once it completed. */
        if (staged_tx_publish(st, false) != 0)
            break; /* the log failed: nothing it covers leaves */
        if (server_wal_in_flight(s)) {
            /* A commit runs: wait for it a little when idle, then look again. */
            if (got == 0)
                server_clock_stale(s);
            if (server_wal_reap(s, got == 0 ? STAGED_WAL_WAIT_US : 0) != 0)
                break;
            staged_tx_release(st);
            continue;
        }
        if (got == 0) {
            server_clock_stale(s);
            staged_signal_wait(&st->proto_wake, staged_proto_ready, st, wait_ms);
        }
    }
    return NULL;
}

/* ---- tx ------------------------------------------------------------------------------------- */

static void staged_tx_send(struct server *s, const struct staged_tx_batch *b)
{
    uint32_t off = 0;
    for (uint32_t i = 0; i < b->count; i++) {
        const struct staged_tx_entry *e = (const struct staged_tx_entry *)(const void *)(b->bytes + off);
        const uint8_t *msg = (const uint8_t *)(e + 1);
        uint64_t replicas = e->replicas;
        while (replicas != 0) {
            unsigned r = (unsigned)__builtin_ctzll(replicas);
            replicas &= replicas - 1u;
            int rc = net_udp_queue(s->udp, &s->replica_addr[r], s->replica_alen[r], msg, e->len);
            if (rc != 0)
                log_debug("send to replica %u: %s", r, bftkv_strerror(rc));
        }
        if (e->alen != 0) {
            int rc = net_udp_queue(s->udp, &e->addr, e->alen, msg, e->len);
            if (rc != 0)
                log_debug("send to a client: %s", bftkv_strerror(rc));
        }
        off += e->size;
    }
}

static bool staged_tx_ready(void *arg)
{
    struct server_staged *st = arg;
    return !staged_ring_empty(&st->tx_ring) || staged_stopping(st->s);
}

static void *staged_tx_main(void *arg)
{
    struct server_staged *st = arg;
    struct server *s = st->s;
    struct staged_tx_batch *held[STAGED_TX_BATCHES];
    while (!staged_stopping(s)) {
        uint32_t nheld = 0;
        uint64_t t0 = 0;
        struct staged_tx_batch *b;
        while (nheld < STAGED_TX_BATCHES && (b = staged_ring_pop(&st->tx_ring)) != NULL) {
            uint64_t now = server_now_ns();
            if (nheld == 0)
                t0 = now;
            server_hist_record(s, SERVER_STAGE_TX_QUEUE, 0, (int64_t)(now - b->t_pub_ns));
            staged_tx_send(s, b);
            held[nheld++] = b;
        }
        if (nheld == 0) {
            staged_signal_wait(&st->tx_wake, staged_tx_ready, st, SERVER_POLL_MS_MAX);
            continue;
        }
        int rc = net_udp_flush(s->udp);
        if (rc < 0)
            log_warn("flush failed: %s", bftkv_strerror(rc));
        server_count(s, SERVER_CTR_flushes, 1);
        server_hist_record(s, SERVER_STAGE_FLUSH, 0, (int64_t)(server_now_ns() - t0));
        for (uint32_t i = 0; i < nheld; i++)
            staged_ring_push(&st->tx_free, held[i]); /* tx -> protocol: the batch is free again */
    }
    return NULL;
}

/* ---- Lifecycle ------------------------------------------------------------------------------- */

/* aligned_alloc wants a size that is a multiple of the alignment. */
static void *staged_aligned_alloc(size_t size)
{
    size_t rounded = (size + STAGED_CACHE_LINE - 1u) & ~(size_t)(STAGED_CACHE_LINE - 1u);
    void *p = aligned_alloc(STAGED_CACHE_LINE, rounded);
    if (p != NULL)
        memset(p, 0, rounded);
    return p;
}

static int staged_alloc(struct server *s)
{
    struct server_staged *st = staged_aligned_alloc(sizeof *st);
    if (st == NULL)
        return BFTKV_E_NOMEM;
    s->staged = st;
    st->s = s;
    st->nworkers = s->hist_count[SERVER_STAGE_AUTH];
    st->workers = staged_aligned_alloc(sizeof *st->workers * st->nworkers);
    st->slots = calloc(STAGED_RX_SLOTS, sizeof *st->slots);
    st->msgs = calloc((size_t)STAGED_RX_SLOTS * SERVER_DGRAM_MSGS_MAX, sizeof *st->msgs);
    st->free_stack = calloc(STAGED_RX_SLOTS, sizeof *st->free_stack);
    st->wake_pending = calloc(st->nworkers, sizeof *st->wake_pending);
    if (st->workers == NULL || st->slots == NULL || st->msgs == NULL || st->free_stack == NULL
        || st->wake_pending == NULL)
        return BFTKV_E_NOMEM;
    for (uint32_t i = 0; i < STAGED_RX_SLOTS; i++) {
        st->slots[i].msgs = st->msgs + (size_t)i * SERVER_DGRAM_MSGS_MAX;
        st->free_stack[i] = &st->slots[i];
    }
    st->free_top = STAGED_RX_SLOTS;
    staged_ring_init(&st->proto_free);
    staged_ring_init(&st->tx_ring);
    staged_ring_init(&st->tx_free);
    for (uint32_t i = 0; i < STAGED_TX_BATCHES; i++) {
        st->batches[i].bytes = malloc(STAGED_TX_BATCH_BYTES);
        if (st->batches[i].bytes == NULL)
            return BFTKV_E_NOMEM;
        staged_ring_push(&st->tx_free, &st->batches[i]);
    }
    for (uint16_t w = 0; w < st->nworkers; w++) {
        st->workers[w].s = s;
        st->workers[w].st = st;
        st->workers[w].index = w;
        staged_ring_init(&st->workers[w].in);
        staged_ring_init(&st->workers[w].out);
        staged_ring_init(&st->workers[w].free);
    }
    return 0;
}

static bool staged_thread_start(pthread_t *t, void *(*fn)(void *), void *arg, const char *name)
{
    if (pthread_create(t, NULL, fn, arg) != 0)
        return false;
    pthread_setname_np(*t, name);
    return true;
}

int server_staged_start(struct server *s)
{
    int rc = staged_alloc(s);
    if (rc != 0)
        return rc;
    struct server_staged *st = s->staged;
    s->out_replicas = staged_out_replicas;
    s->out_addr = staged_out_addr;
    bool ok = (st->tx_running = staged_thread_start(&st->tx_thread, staged_tx_main, st, "bftkv-tx"));
    ok = ok && (st->proto_running = staged_thread_start(&st->proto_thread, staged_proto_main, st, "bftkv-proto"));
    for (uint16_t w = 0; ok && w < st->nworkers; w++)
        ok = (st->workers[w].running =
                  staged_thread_start(&st->workers[w].thread, staged_worker_main, &st->workers[w], "bftkv-auth"));
    ok = ok && (st->rx_running = staged_thread_start(&st->rx_thread, staged_rx_main, st, "bftkv-rx"));
    if (!ok) {
        atomic_store_explicit(&s->stop, true, memory_order_release);
        server_staged_join(s);
        return BFTKV_E_IO;
    }
    return 0;
}

void server_staged_join(struct server *s)
{
    struct server_staged *st = s->staged;
    if (st == NULL)
        return;
    /* Wake every parked thread: each sees the stop flag at once. */
    for (uint16_t w = 0; w < st->nworkers; w++)
        staged_signal_raise(&st->workers[w].wake);
    staged_signal_raise(&st->proto_wake);
    staged_signal_raise(&st->tx_wake);
    if (st->rx_running)
        pthread_join(st->rx_thread, NULL);
    for (uint16_t w = 0; w < st->nworkers; w++)
        if (st->workers[w].running)
            pthread_join(st->workers[w].thread, NULL);
    if (st->proto_running)
        pthread_join(st->proto_thread, NULL);
    if (st->tx_running)
        pthread_join(st->tx_thread, NULL);
    st->rx_running = st->proto_running = st->tx_running = false;
    for (uint16_t w = 0; w < st->nworkers; w++)
        st->workers[w].running = false;
}

void server_staged_free(struct server *s)
{
    struct server_staged *st = s->staged;
    if (st == NULL)
        return;
    for (uint32_t i = 0; i < STAGED_TX_BATCHES; i++)
        free(st->batches[i].bytes);
    free(st->wake_pending);
    free(st->free_stack);
    free(st->msgs);
    free(st->slots);
    free(st->workers);
    free(st);
    s->staged = NULL;
}
