/* What the files of the client library share (include/bftkv/client.h is the API):
 * the handle, its request slots and queue, and the functions the API half
 * (client_lib_ops.c) and the I/O half (client_lib_io.c) call in each other.
 * client_lib.c opens and closes a handle. Not a public header.
 *
 * Design. A handle owns a pool of request slots (queue_max of them, allocated at
 * open), a FIFO of slot indices waiting for a lane, and one I/O thread. An API
 * call takes a free slot, fills it, pushes it on the FIFO and wakes the I/O
 * thread; the I/O thread moves slots from the FIFO onto the engine client's lanes
 * (pbft_client_submit), sends the outbox, polls the socket, steps the engine with
 * each received message and hands completions back: a sync caller's result is
 * copied into its buffer and its slot's condition variable signalled; an async
 * callback is called. One mutex (mu) guards the slots, the FIFO and the lane map;
 * the engine client, the outbox and the socket belong to the I/O thread alone.
 *
 * Why a mutex and condition variables rather than a lock-free ring (ck_ring MPMC):
 * a sync caller has to sleep until its own result comes back, a timed-out caller
 * has to withdraw its slot without racing the I/O thread, and a full queue has to
 * be waited on; with a mutex each of those is a few lines that are obviously
 * right. The lock is held for tens of nanoseconds per submission and once per
 * batch of completions by the I/O thread, far below the cost of the datagram
 * every operation needs: in a profile of client_lib_bench (async PUTs from 4
 * threads, tests/net) no function of the library shows among the top entries;
 * the replicas' work does.
 *
 * Waking the I/O thread. The transport (net/udp.h) has no wake-up call and its
 * io_uring backend waits inside io_uring_enter, not in poll(2), so an eventfd
 * beside the socket would not wake it. Instead a submitter that finds the I/O
 * thread asleep (io_sleeping) with work for it sends a 1-byte datagram to the
 * handle's own socket from a private loopback socket; the I/O thread recognises
 * its source address and drops it. It works with both backends and costs one send(2) per wake-up,
 * only when the I/O thread is idle. A lost wake-up datagram (a full socket
 * buffer) cannot leave work stranded: a full buffer wakes the thread anyway, and
 * the poll timeout is capped (CLIENT_IDLE_POLL_MS).
 */
#ifndef BFTKV_NET_CLIENT_LIB_INTERNAL_H
#define BFTKV_NET_CLIENT_LIB_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bftkv/client.h"
#include "bftkv/limits.h"
#include "engine/auth.h"
#include "engine/pbft.h"
#include "net/udp.h"

#define CLIENT_NONE UINT32_MAX
/* Key and value bytes of an async submission copied into its slot; more go to a
 * heap copy. Room for any key and a 1 KiB value. */
#define CLIENT_SLOT_INLINE (BFTKV_KEY_MAX + 1024u)
/* Upper bound of an idle wait, a safety net only: wake-ups are explicit. */
#define CLIENT_IDLE_POLL_MS 1000
/* Completions handed to callbacks per batch (stack array of the I/O thread). */
#define CLIENT_BATCH_MAX PBFT_LANES_MAX
/* Transport pools of a client: replies of 64 lanes from every replica. */
#define CLIENT_RX_BUFFERS 32u
#define CLIENT_TX_DATAGRAMS 16u

enum client_slot_state {
    SLOT_FREE = 0,
    SLOT_QUEUED = 1,    /* in the FIFO, waiting for a lane */
    SLOT_ACTIVE = 2,    /* on lane `lane` */
    SLOT_DONE = 3,      /* sync: result written, the caller has not collected it yet */
    SLOT_ABANDONED = 4, /* given up while on a lane: freed when the lane's late result comes
                           (given up while queued, a slot leaves the queue at once) */
};

enum client_slot_kind {
    KIND_SYNC_BUF = 1,   /* bftkv_put/get/del: result into the caller's buffer */
    KIND_SYNC_ALLOC = 2, /* bftkv_get_alloc: result into a malloc'd copy */
    KIND_ASYNC = 3,      /* bftkv_submit: callback */
};

struct client_slot {
    uint8_t state; /* enum client_slot_state */
    uint8_t kind;  /* enum client_slot_kind */
    uint8_t op;    /* enum bftkv_op */
    uint16_t lane;
    uint32_t next; /* free list, or the async deadline list */
    uint32_t prev; /* async deadline list */
    uint64_t deadline_ns;
    /* The request: borrowed from a sync caller (who waits), or copied (async). */
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    uint8_t *heap; /* async: copy of key and value when they pass CLIENT_SLOT_INLINE */
    /* Sync result. */
    int status;
    void *buf;
    size_t cap;
    size_t rlen;
    void *alloc;
    pthread_cond_t cond; /* the sync caller waits here for SLOT_DONE */
    /* Async. */
    bftkv_callback *cb;
    void *arg;
    uint8_t data[CLIENT_SLOT_INLINE];
};

/* A callback to make once mu is released. */
struct client_call {
    bftkv_callback *cb;
    void *arg;
    int status;
    const void *val;
    size_t vlen;
};

struct bftkv_client {
    /* Fixed at open. */
    uint16_t id;
    uint16_t n;
    uint16_t lanes;
    uint32_t flags;
    uint64_t timeout_ns;
    struct sockaddr_storage replica_addr[BFTKV_REPLICAS_MAX];
    socklen_t replica_addrlen[BFTKV_REPLICAS_MAX];
    struct sockaddr_storage wake_src; /* the wake socket's address, as seen in rx */
    int wake_fd;                      /* connected to the handle's own socket */

    /* The I/O thread's: engine client, outbox, socket. */
    struct auth_ctx auth;
    bool auth_ready;
    struct pbft_client *engine;
    struct pbft_out out;
    bool out_ready;
    struct pbft_completion *done; /* lanes entries */
    struct client_call *close_calls; /* nslots entries: the callbacks close makes */
    struct net_udp *udp;
    bool announced;         /* a REQUEST went to every replica (client_lib_io.c) */
    pthread_t io;
    bool io_started;
    uint64_t io_wakeups;    /* wake-up datagrams received */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t room;    /* a slot was freed, or closing */
    pthread_cond_t drained; /* closing and waiters reached 0 */
    bool closing;
    bool io_sleeping;       /* the I/O thread sleeps (or is about to) in net_udp_poll... */
    uint64_t sleep_until_ns; /* ... until this deadline at the latest (capped further) */
    uint32_t waiters;       /* API threads inside the handle (sync calls, blocked submits) */
    struct client_slot *slots;
    uint32_t nslots;
    uint32_t free_head;
    uint32_t *fifo;         /* nslots entries */
    uint32_t fifo_head;
    uint32_t fifo_len;
    uint32_t async_head;    /* async slots QUEUED or ACTIVE, by deadline (= submission order) */
    uint32_t async_tail;
    uint32_t *lane_slot;    /* lanes entries: the slot on each lane, or CLIENT_NONE */
    uint32_t in_flight;     /* lanes in use, abandoned ones included */
    struct bftkv_client_stats stats; /* counters kept under mu; engine ones mirrored by the I/O thread */
    uint64_t wakeups_seen;  /* io_wakeups, mirrored */
};

/* ---- client_lib_ops.c (all with mu held) ---------------------------------------- */

/* Return a slot to the free list (releases its heap copy) and signal room. */
void client_lib_slot_free(struct bftkv_client *c, uint32_t idx);
/* Unlink an async slot from the deadline list. */
void client_lib_async_unlink(struct bftkv_client *c, uint32_t idx);
/* Take a QUEUED slot out of the FIFO (a timeout): O(queue length). */
void client_lib_fifo_remove(struct bftkv_client *c, uint32_t idx);

/* ---- client_lib_io.c ---------------------------------------------------------- */

/* The I/O thread's body; arg is the handle. */
void *client_lib_io_main(void *arg);
/* Wake the I/O thread (any thread; mu not held). */
void client_lib_wake(struct bftkv_client *c);
/* CLOCK_MONOTONIC in ns. */
uint64_t client_lib_now_ns(void);

#endif /* BFTKV_NET_CLIENT_LIB_INTERNAL_H */
