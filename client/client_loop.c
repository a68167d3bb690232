/* The I/O loop of a client: one thread and one UDP socket, serving a handle on
 * one group, or every partition of a routing handle (client/client_route.c)
 * (client_internal.h has the design; client_io.c does one handle's share).
 *
 * Each handle keeps what is per group -- engine client, lanes and their lease,
 * slots, FIFO and mutex, replica addresses, auth context -- and the loop only
 * decides which handles to visit. One iteration, like Redis's ae: tick the
 * handles whose deadline is due, visit (client_io_visit) every handle that was
 * touched -- it received a message, ticked, or a submitter marked it ready --
 * flush the socket once, and sleep in net_udp_poll until a datagram arrives, a
 * submitter wakes us, or the earliest handle deadline is due. Each received
 * datagram is split into its messages (engine/wire.h: back to back) and each
 * message goes to the handle of its header's group: a node's replies of
 * different partitions may share a datagram (server/node.h), and an iteration
 * serves them all with one wake-up.
 *
 * The work of an iteration is proportional to the handles that have something
 * to do, not to their number: submitters set a bit of the `ready` bitmap
 * (atomically, with no lock of the loop's); the handles' next deadlines (their
 * engine's pbft_client_next_deadline, or their first async timeout) sit in a
 * binary min-heap, re-keyed after each visit; the sleep lasts until the heap's
 * top. With P = 4096 partitions the per-iteration scan is 64 bitmap words.
 *
 * Sleeping without losing a wake-up: the loop sets `sleeping`, then looks at
 * the bitmap once more; a submitter sets its bit, then looks at `sleeping` (both
 * sequentially consistent, so one of the two sees the other). A submitter that
 * finds the loop asleep and its work urgent (a lane free, or a deadline before
 * sleep_until_ns) clears `sleeping` and sends the 1-byte wake-up datagram
 * (client_internal.h says why a datagram), once per sleep.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "client/client_internal.h"

/* The due-deadline walk's stack (loop_due): 2 x the heap's depth is ample. */
#define LOOP_DUE_STACK 32u
BFTKV_STATIC_ASSERT(BFTKV_PARTITIONS_MAX <= (1u << (LOOP_DUE_STACK / 2u)), "a deeper heap needs a larger stack");

/* ---- Ready bitmap (any thread) ----------------------------------------------------- */

bool client_loop_ready(struct bftkv_client *c, bool lane_free, uint64_t deadline_ns)
{
    struct client_io *io = c->io;
    /* Sequentially consistent, paired with the loop's store of `sleeping` and
     * its second look at the bitmap (loop_main): either the loop sees this bit
     * before it sleeps, or we see it asleep. */
    atomic_fetch_or(&io->ready[c->pidx / 64u], (uint64_t)1 << (c->pidx % 64u));
    if (!atomic_load(&io->sleeping)) {
        return false; /* awake: it looks at the bitmap before it sleeps */
    }
    if (!lane_free && deadline_ns >= atomic_load(&io->sleep_until_ns)) {
        return false; /* it wakes in time by itself */
    }
    return atomic_exchange(&io->sleeping, false); /* one wake-up per sleep */
}

void client_loop_wake(struct client_io *io)
{
    static const uint8_t byte = 0;
    /* Failure (a full socket buffer) is harmless: the thread has datagrams to read. */
    (void)send(io->wake_fd, &byte, sizeof byte, MSG_DONTWAIT | MSG_NOSIGNAL);
}

bool client_loop_on_thread(const struct client_io *io)
{
    return io->started && pthread_equal(pthread_self(), io->thread);
}

void client_loop_datagrams(struct client_io *io, uint64_t *sent, uint64_t *received)
{
    uint64_t wakeups = atomic_load(&io->wakeups); /* before the socket's count, which includes them */
    struct net_udp_stats us;
    net_udp_stats(io->udp, &us);
    *sent = us.datagrams_sent;
    *received = us.datagrams_received > wakeups ? us.datagrams_received - wakeups : 0;
}

/* ---- Deadline heap (the loop's) ------------------------------------------------------ */

static uint64_t heap_key(const struct client_io *io, uint32_t i)
{
    return io->part[io->heap[i]]->io_key_ns; /* written by the loop only: read without mu */
}

static void heap_set(struct client_io *io, uint32_t i, uint32_t p)
{
    io->heap[i] = p;
    io->part[p]->heap_pos = i;
}

/* Restore the heap order around position i after its key changed. */
static void heap_fix(struct client_io *io, uint32_t i)
{
    uint32_t p = io->heap[i];
    uint64_t key = io->part[p]->io_key_ns;
    while (i > 0 && heap_key(io, (i - 1u) / 2u) > key) {
        heap_set(io, i, io->heap[(i - 1u) / 2u]);
        i = (i - 1u) / 2u;
    }
    for (;;) {
        uint32_t l = 2u * i + 1u;
        if (l >= io->parts) {
            break;
        }
        uint32_t m = l + 1u < io->parts && heap_key(io, l + 1u) < heap_key(io, l) ? l + 1u : l;
        if (heap_key(io, m) >= key) {
            break;
        }
        heap_set(io, i, io->heap[m]);
        i = m;
    }
    heap_set(io, i, p);
}

/* ---- The loop -------------------------------------------------------------------------- */

static void loop_touch(struct client_io *io, struct bftkv_client *c)
{
    if (!c->io_touched) {
        c->io_touched = true;
        io->touched[io->ntouched++] = c->pidx;
    }
}

/* The partitions submitters marked ready since the last look. */
static void loop_take_ready(struct client_io *io)
{
    for (uint32_t w = 0; w < io->ready_words; w++) {
        if (atomic_load_explicit(&io->ready[w], memory_order_relaxed) == 0) {
            continue;
        }
        uint64_t bits = atomic_exchange(&io->ready[w], 0);
        while (bits != 0) {
            uint32_t b = (uint32_t)__builtin_ctzll(bits);
            bits &= bits - 1u;
            loop_touch(io, io->part[w * 64u + b]);
        }
    }
}

static bool loop_any_ready(struct client_io *io)
{
    for (uint32_t w = 0; w < io->ready_words; w++) {
        if (atomic_load(&io->ready[w]) != 0) {
            return true;
        }
    }
    return false;
}

/* Tick the engines whose deadline is due; each gets visited. */
static void loop_due(struct client_io *io, uint64_t now)
{
    /* The heap is re-keyed only by visits: walk the due part of it (a subtree
     * of keys <= now rooted at the top) without popping. Depth first, the stack
     * holds at most one waiting sibling per level: log2(BFTKV_PARTITIONS_MAX) + 1. */
    uint32_t stack[LOOP_DUE_STACK];
    uint32_t sp = 0;
    if (io->parts > 0 && heap_key(io, 0) <= now) {
        stack[sp++] = 0;
    }
    while (sp > 0) {
        uint32_t i = stack[--sp];
        struct bftkv_client *c = io->part[io->heap[i]];
        client_io_tick(c, now);
        loop_touch(io, c);
        for (uint32_t ch = 2u * i + 1u; ch <= 2u * i + 2u && ch < io->parts; ch++) {
            if (heap_key(io, ch) <= now) {
                BFTKV_ASSERT(sp < LOOP_DUE_STACK);
                stack[sp++] = ch;
            }
        }
    }
}

/* One datagram: a wake-up (from our own wake socket), or messages back to back,
 * each to the handle of its group. A message whose declared length runs past
 * the datagram goes on as it is: the engine drops and counts it. So does one of
 * a group this client does not serve (the wire's BAD_GROUP, counted by the
 * first handle's engine). */
static void loop_on_datagram(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                             size_t len)
{
    struct client_io *io = arg;
    (void)srclen;
    if (net_addr_equal(src, &io->wake_src)) {
        atomic_fetch_add_explicit(&io->wakeups, 1u, memory_order_relaxed);
        return;
    }
    size_t off = 0;
    while (off < len) {
        size_t mlen = len - off;
        struct wire_header h = { 0 };
        uint32_t p = 0;
        if (mlen >= WIRE_HEADER_SIZE) {
            wire_header_read(data + off, &h);
            size_t want = WIRE_HEADER_SIZE + (size_t)h.body_len + h.auth_len;
            mlen = want < mlen ? want : mlen;
            /* A single group's handle takes every message: its engine checks the group. */
            p = io->parts > 1 && h.group < io->parts ? h.group : 0;
        }
        struct bftkv_client *c = io->part[p];
        client_io_on_message(c, src, &h, data + off, mlen);
        loop_touch(io, c);
        off += mlen;
    }
}

static int loop_timeout_ms(uint64_t deadline_ns, uint64_t now)
{
    if (deadline_ns <= now) {
        return 0;
    }
    uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
    return ms > CLIENT_IDLE_POLL_MS ? CLIENT_IDLE_POLL_MS : (int)ms;
}

static void *loop_main(void *arg)
{
    struct client_io *io = arg;
    for (uint32_t p = 0; p < io->parts; p++) {
        loop_touch(io, io->part[p]);
    }
    while (!atomic_load(&io->closing)) {
        uint64_t now = client_io_now_ns();
        loop_take_ready(io);
        loop_due(io, now);
        bool busy = false;
        for (uint32_t i = 0; i < io->ntouched; i++) {
            struct bftkv_client *c = io->part[io->touched[i]];
            c->io_touched = false;
            if (client_io_visit(c, now)) {
                /* more than one batch, or room on its lanes again: next iteration */
                atomic_fetch_or(&io->ready[c->pidx / 64u], (uint64_t)1 << (c->pidx % 64u));
                busy = true;
            }
            heap_fix(io, c->heap_pos);
        }
        io->ntouched = 0;
        (void)net_udp_flush(io->udp);

        /* Sleep until a datagram, a wake-up or the earliest deadline. Submitters
         * wake us only when we could start their request (a lane is free) or must
         * fail it sooner than we would wake anyway; with every lane busy the next
         * completion arrives as a datagram. */
        uint64_t deadline = heap_key(io, 0);
        atomic_store(&io->sleep_until_ns, deadline); /* before `sleeping`: a submitter reads them in turn */
        atomic_store(&io->sleeping, !busy);          /* then the bitmap again (client_loop_ready's pairing) */
        if (!busy && (loop_any_ready(io) || atomic_load(&io->closing))) {
            busy = true;
            atomic_store(&io->sleeping, false);
        }
        int timeout_ms = busy ? 0 : loop_timeout_ms(deadline, client_io_now_ns());
        io->flush_now = false;
        if (net_udp_poll(io->udp, timeout_ms, loop_on_datagram, io) < 0) {
            struct timespec pause = { .tv_sec = 0, .tv_nsec = 1000000 }; /* do not spin on a broken socket */
            nanosleep(&pause, NULL);
        }
        atomic_store(&io->sleeping, false);
        if (io->flush_now) {
            /* Passed-on replies go now: the reply that came with them may have
             * completed the call this handle was open for, and close follows. */
            (void)net_udp_flush(io->udp);
        }
    }
    return NULL;
}

/* ---- Open and close ------------------------------------------------------------------ */

/* The socket's address as seen from this machine: its loopback address when
 * bound to the wildcard. */
static int loop_self_addr(struct client_io *io, struct sockaddr_storage *self, socklen_t *self_len)
{
    *self_len = sizeof *self;
    if (net_udp_local_addr(io->udp, self, self_len) != 0) {
        return BFTKV_E_IO;
    }
    if (self->ss_family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)self;
        if (s->sin_addr.s_addr == htonl(INADDR_ANY)) {
            s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        }
    } else {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)self;
        if (IN6_IS_ADDR_UNSPECIFIED(&s->sin6_addr)) {
            s->sin6_addr = in6addr_loopback;
        }
    }
    return 0;
}

/* The wake-up socket: a loopback UDP socket connected to the loop's socket. */
static int loop_wake_open(struct client_io *io, const struct sockaddr_storage *self, socklen_t self_len,
                          const struct bftkv_client_options *opt)
{
    io->wake_fd = socket(self->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (io->wake_fd < 0) {
        errbuf_put(opt->err, opt->errlen, "bftkv client: wake-up socket: %s", strerror(errno));
        return BFTKV_E_IO;
    }
    socklen_t len = sizeof io->wake_src;
    if (connect(io->wake_fd, (const struct sockaddr *)self, self_len) != 0
        || getsockname(io->wake_fd, (struct sockaddr *)&io->wake_src, &len) != 0) {
        errbuf_put(opt->err, opt->errlen, "bftkv client: wake-up socket: %s", strerror(errno));
        return BFTKV_E_IO;
    }
    return 0;
}

int client_loop_open(struct client_io *io, struct bftkv_client **part, uint32_t parts, const char *bind_host,
                     const struct bftkv_config *cfg, const struct bftkv_client_options *opt)
{
    io->part = part;
    io->parts = parts;
    io->wake_fd = -1;
    atomic_init(&io->epoch_hint, 0);
    atomic_init(&io->epoch_hint_src, CLIENT_EPOCH_SRC_NONE);
    atomic_init(&io->notices, 0);
    io->ready_words = (parts + 63u) / 64u;
    io->ready = calloc(io->ready_words, sizeof *io->ready);
    io->touched = calloc(parts, sizeof *io->touched);
    io->heap = calloc(parts, sizeof *io->heap);
    if (io->ready == NULL || io->touched == NULL || io->heap == NULL) {
        return BFTKV_E_NOMEM;
    }
    for (uint32_t p = 0; p < parts; p++) {
        part[p]->io = io;
        part[p]->pidx = p;
        part[p]->io_key_ns = UINT64_MAX; /* not visited yet: the loop visits every handle first */
        heap_set(io, p, p);
    }
    struct net_udp_config uc = {
        .host = bind_host,
        .port = 0,
        .backend = opt->backend == BFTKV_BACKEND_URING  ? NET_BACKEND_URING
                   : opt->backend == BFTKV_BACKEND_AUTO ? NET_BACKEND_AUTO
                                                        : NET_BACKEND_MMSG,
        .rx_buffers = CLIENT_RX_BUFFERS,
        .rx_buffer_bytes = 0,
        .tx_datagrams = CLIENT_TX_DATAGRAMS,
        .sndbuf_bytes = (int)cfg->socket_sndbuf,
        .rcvbuf_bytes = (int)cfg->socket_rcvbuf,
    };
    int rc = net_udp_open(&uc, &io->udp);
    if (rc != 0) {
        errbuf_put(opt->err, opt->errlen, "bftkv client: cannot bind a UDP socket on %s (%s)", bind_host,
                   bftkv_strerror(rc));
        return rc;
    }
    struct sockaddr_storage self;
    socklen_t self_len;
    if (loop_self_addr(io, &self, &self_len) != 0) {
        errbuf_put(opt->err, opt->errlen, "bftkv client: the UDP socket has no address");
        return BFTKV_E_IO;
    }
    rc = loop_wake_open(io, &self, self_len, opt);
    if (rc != 0) {
        return rc;
    }
    /* Lane files name the holder's address (replies are passed on to it) and
     * first timestamp: every partition's lease names the one socket. */
    for (uint32_t p = 0; p < parts; p++) {
        client_session_publish(&part[p]->lease, &self);
    }
    return 0;
}

/* The thread runs with every signal blocked: signals belong to the application's threads. */
int client_loop_start(struct client_io *io)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&io->thread, NULL, loop_main, io);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        return BFTKV_E_NOMEM;
    }
    io->started = true;
    return 0;
}

void client_loop_stop(struct client_io *io)
{
    BFTKV_ASSERT(!client_loop_on_thread(io)); /* never from a callback */
    atomic_store(&io->closing, true);
    if (io->started) {
        client_loop_wake(io);
        pthread_join(io->thread, NULL);
        io->started = false;
    }
}

void client_loop_destroy(struct client_io *io)
{
    if (io->wake_fd >= 0) {
        close(io->wake_fd);
        io->wake_fd = -1;
    }
    net_udp_close(io->udp);
    io->udp = NULL;
    free(io->ready);
    free(io->touched);
    free(io->heap);
    io->ready = NULL;
    io->touched = NULL;
    io->heap = NULL;
}
