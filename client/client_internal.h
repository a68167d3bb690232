/* What the files of the client library share (include/bftkv/client.h is the API):
 * the handle, its request slots and queue, and the functions the API half
 * (client_ops.c) and the I/O half (client_io.c) call in each other.
 * client_open.c opens and closes a handle. Not a public header.
 *
 * Design. A handle owns a pool of request slots (queue_max of them, allocated at
 * open), a FIFO of slot indices waiting for a lane, and is served by an I/O
 * thread (client_loop.c: a handle on one group has its own; the partition
 * handles of a routing handle share one thread and one socket, struct
 * client_io). An API
 * call takes a free slot, fills it, pushes it on the FIFO and wakes the I/O
 * thread; the I/O thread moves slots from the FIFO onto the engine client's lanes
 * (pbft_client_submit), sends the outbox, polls the socket, steps the engine with
 * each received message and hands completions back: a sync caller's result is
 * copied into its buffer and its slot's condition variable signalled; an async
 * callback is called. One mutex (mu) per handle guards the slots, the FIFO and
 * the lane map; the engine client, the outbox and the socket belong to the I/O
 * thread alone.
 *
 * Why a mutex and condition variables rather than a lock-free ring (ck_ring MPMC):
 * a sync caller has to sleep until its own result comes back, a timed-out caller
 * has to withdraw its slot without racing the I/O thread, and a full queue has to
 * be waited on; with a mutex each of those is a few lines that are obviously
 * right. The lock is held for tens of nanoseconds per submission and once per
 * batch of completions by the I/O thread, far below the cost of the datagram
 * every operation needs: in a profile of client_lib_bench (async PUTs from 4
 * threads, tests/client) no function of the library shows among the top entries;
 * the replicas' work does.
 *
 * Waking the I/O thread. The transport (net/udp.h) has no wake-up call and its
 * io_uring backend waits inside io_uring_enter, not in poll(2), so an eventfd
 * beside the socket would not wake it. Instead a submitter that finds the I/O
 * thread asleep (client_io.sleeping) with work for it sends a 1-byte datagram to
 * the loop's own socket from a private loopback socket; the I/O thread recognises
 * its source address and drops it. It works with both backends and costs one send(2) per wake-up,
 * only when the I/O thread is idle. A lost wake-up datagram (a full socket
 * buffer) cannot leave work stranded: a full buffer wakes the thread anyway, and
 * the poll timeout is capped (CLIENT_IDLE_POLL_MS).
 */
#ifndef BFTKV_CLIENT_INTERNAL_H
#define BFTKV_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bftkv/client.h"
#include "bftkv/limits.h"
#include "engine/auth.h"
#include "engine/pbft.h"
#include "engine/wire.h"
#include "cluster/cluster.h"
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

/* A lease of lanes (client_session.c): files locked with flock, one per lane. */
struct client_lease {
    char dir[256];        /* the session directory */
    char prefix[64];      /* "g<group>-c<client>-<fingerprint>" */
    uint16_t base;        /* first lane leased */
    uint16_t count;       /* lanes leased; 0: none */
    uint64_t ts_floor;    /* highest timestamp an earlier lessee may have used */
    uint64_t first_ts;    /* our timestamp base (the engine's first timestamp - 1) */
    int fds[PBFT_LANES_MAX]; /* by lane; -1 where not held */
};

/* What the handle has heard from one replica, for the message of a failed call
 * (client_diag.c). Times are CLOCK_MONOTONIC ns; 0: never. */
struct client_heard {
    uint64_t reply_ns;     /* an authenticated REPLY */
    int16_t reply_status;  /* ... and its status */
    uint64_t bad_auth_ns;  /* a REPLY or ADMIN-REPLY from its address that failed authentication */
    uint64_t probe_ns;     /* an authenticated answer to a status probe (engine/wire_admin.h) */
    uint64_t probe_sent_ns;
};

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

/* The I/O thread, its socket and its wake-up socket (client_loop.c). A handle on
 * one group has one of its own, serving it alone; a routing handle has one
 * serving all its partitions (part[p] is partition p, the wire's group). */
struct client_io {
    struct bftkv_client **part;
    uint32_t parts;
    struct net_udp *udp;
    struct sockaddr_storage wake_src; /* the wake socket's address, as seen in rx */
    int wake_fd;                      /* connected to the socket */
    pthread_t thread;
    bool started;
    _Atomic bool closing;
    /* The loop sleeps (or is about to) in net_udp_poll until sleep_until_ns at the
     * latest; a submitter that clears sleeping sends the wake-up datagram. */
    _Atomic bool sleeping;
    _Atomic uint64_t sleep_until_ns;
    _Atomic uint64_t wakeups;      /* wake-up datagrams received */
    _Atomic uint64_t *ready;       /* bit p: partition p has work for the loop now */
    uint32_t ready_words;
    /* The loop's alone. */
    uint32_t *touched;             /* partitions to visit in this iteration */
    uint32_t ntouched;
    uint32_t *heap;                /* partitions by io_key_ns, a binary min-heap */
    bool flush_now;                /* a reply was passed on: flush right after the poll */
    struct bftkv_client *one;      /* part's storage for a single group's handle */
    /* A newer map announced (client/client_epoch.c): written by the loop, read
     * by the API threads. The highest epoch an authenticated REPLY or a
     * node's MAP-NOTICE claimed, and who claimed it first (partition << 8 |
     * replica index; CLIENT_EPOCH_SRC_NONE). */
    _Atomic uint64_t epoch_hint;
    _Atomic uint32_t epoch_hint_src;
    _Atomic uint64_t notices;      /* MAP-NOTICEs taken (refusals naming an epoch) */
};

#define CLIENT_EPOCH_SRC_NONE UINT32_MAX
/* A newer map's fetch (client/client_epoch.c): at most one per this interval,
 * and after a fetch that found nothing newer than the claim, waits doubling
 * up to CLIENT_MAP_REFETCH_MS_MAX before the same claim is tried again. */
#define CLIENT_MAP_REFETCH_MS 1000u
#define CLIENT_MAP_REFETCH_MS_MAX 64000u

/* A routing handle's map state (client/client_epoch.c), guarded by mu. */
struct client_epoch {
    pthread_mutex_t mu;
    struct bftkv_config *cfg;      /* a copy of the file's config: seeds, key_dir, map_cache, timeouts */
    _Atomic uint64_t newest;       /* the newest accepted map's epoch (routed or pending): read unlocked */
    struct cluster_map **retired;  /* maps routed with before: freed at close (API threads may read them) */
    uint32_t nretired;
    struct cluster_map *pending;   /* the newest accepted map, when its placement differs from the
                                      routed one's (a handle does not re-open partitions yet) */
    uint64_t last_try_ns;          /* the last fetch (monotonic) */
    uint64_t tried_epoch;          /* the claim the last fetch answered */
    uint64_t backoff_ms;           /* before the same claim is tried again */
    uint64_t fetches;              /* fetches made */
    uint64_t fetch_failures;       /* ... that got no newer map */
};

struct bftkv_client {
    /* A deployment's routing handle (client/client_route.c): one handle per
     * partition, and the verified map that routes keys to them. NULL/0 for a
     * handle on one group, which is every other field's business. */
    struct bftkv_client **part;
    uint32_t parts;
    struct cluster_map *map;  /* read and swapped with __atomic builtins (client/client_epoch.c) */
    struct client_epoch *epoch;

    /* Fixed at open. */
    uint16_t id;
    uint16_t n;
    uint16_t f;
    uint16_t group;
    uint16_t lanes;
    uint16_t lane_base;    /* the leased lanes are lane_base .. lane_base + lanes - 1 */
    uint64_t serial;       /* distinct per handle opened by this process (client_diag.c) */
    uint64_t retransmit_ns;
    struct client_lease lease;
    uint32_t flags;
    uint64_t timeout_ns;
    struct sockaddr_storage replica_addr[BFTKV_REPLICAS_MAX];
    socklen_t replica_addrlen[BFTKV_REPLICAS_MAX];
    struct client_io *io;   /* the I/O thread and socket (shared by a routing handle's partitions) */
    struct client_io *own_io; /* the io this handle frees at close (not a partition's) */
    uint32_t pidx;          /* this handle's index among io's partitions */

    /* The I/O thread's: engine client, outbox, its place in the loop. */
    struct auth_ctx auth;
    bool auth_ready;
    struct pbft_client *engine;
    struct pbft_out out;
    bool out_ready;
    struct pbft_completion *done; /* lanes entries */
    struct client_call *close_calls; /* nslots entries: the callbacks close makes */
    bool announced;         /* a REQUEST went to every replica (client_io.c) */
    bool io_touched;        /* in the loop's list of partitions to visit (client_loop.c) */
    uint32_t heap_pos;      /* place in the loop's deadline heap */
    uint64_t forwarded;     /* replies passed on to the holder of their lane */
    uint64_t probes;        /* status probes sent */
    struct client_heard heard_io[BFTKV_REPLICAS_MAX];
    bool heard_dirty;       /* heard_io changed since it was mirrored into heard */
    uint64_t probe_nonce;   /* the last status probe's nonce */
    uint64_t probe_round_ns; /* when the last probe round went out */
    uint64_t retransmits_seen; /* the engine's retransmission count at the last look */
    uint8_t *probe_msg;     /* ADMIN_REQUEST_MAX bytes */

    /* Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t room;    /* a slot was freed, or closing */
    pthread_cond_t drained; /* closing and waiters reached 0 */
    bool closing;
    uint64_t io_key_ns;     /* when the loop visits this handle next at the latest (client_loop.c) */
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
    struct client_heard heard[BFTKV_REPLICAS_MAX]; /* heard_io, mirrored */
};

/* ---- client_ops.c (all with mu held) ---------------------------------------- */

/* Return a slot to the free list (releases its heap copy) and signal room. */
void client_ops_slot_free(struct bftkv_client *c, uint32_t idx);
/* Unlink an async slot from the deadline list. */
void client_ops_async_unlink(struct bftkv_client *c, uint32_t idx);
/* Take a QUEUED slot out of the FIFO (a timeout): O(queue length). */
void client_ops_fifo_remove(struct bftkv_client *c, uint32_t idx);

/* ---- client_session.c ------------------------------------------------------ */

/* The session directory (created 0700 if missing, checked) into out. */
int client_session_dir(char *out, size_t cap, char *err, size_t errlen);
/* Lease a run of lanes as opt asks (lanes, lane_first, lane_count,
 * session_wait_ms). 0; BFTKV_E_SESSION_BUSY (every lane of the range is leased),
 * BFTKV_E_INVAL (a range the config does not have), BFTKV_E_IO. */
int client_session_lease(struct client_lease *ls, const struct bftkv_config *cfg, uint16_t client_id,
                         const struct bftkv_client_options *opt, char *err, size_t errlen);
/* Record in the lease's files the handle's socket address and ls->first_ts (the
 * engine's timestamp base, set by the caller). */
void client_session_publish(struct client_lease *ls, const struct sockaddr_storage *addr);
/* Record the last timestamp sent and release the lanes. Safe on an empty lease. */
void client_session_release(struct client_lease *ls, uint64_t last_ts);
/* The socket address of the handle that holds `lane` of ls's client, from its
 * lane file: 0, or BFTKV_E_NOT_FOUND (free, or not published), BFTKV_E_IO. */
int client_session_owner(const struct client_lease *ls, uint16_t lane, struct sockaddr_storage *addr,
                         socklen_t *alen);

/* ---- client_diag.c --------------------------------------------------------- */

/* Record why the calling thread's sync call of op on c failed with rc (mu held:
 * reads c->heard). start_ns: when the call began. */
void client_diag_record(struct bftkv_client *c, uint8_t op, int rc, uint64_t start_ns);
/* Forget the calling thread's last failure (a sync call begins). */
void client_diag_clear(void);

/* ---- client_route.c and client_open.c ------------------------------------- */

/* A handle on one group for a routing handle's partition: everything but the
 * I/O loop (client_loop_open gives it one). *bind_host: the address its
 * replicas want the socket bound on. */
int client_open_part(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                     struct bftkv_client **out, const char **bind_host);
/* Close in two halves around stopping the loop: refuse new calls; then, with
 * the loop stopped, cancel what is left, wait for the API threads and free. */
void client_close_begin(struct bftkv_client *c);
void client_close_finish(struct bftkv_client *c);

/* A handle on one group (client_open.c), options taken and checked. */
int client_open_group(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                      struct bftkv_client **out);
/* A routing handle for a deployment's file (cfg: cluster_deployment_is). */
int client_route_open(const struct bftkv_config *cfg, uint16_t client_id, const struct bftkv_client_options *opt,
                      struct bftkv_client **out);
/* The deployment map of a discovering client's file (client_discover.c:
 * deployment_seeds asked in turn, the acceptance rule against map_cache's
 * map). 0 and *out, or the error of the last seed with every seed's reason in
 * err. */
int client_discover(const struct bftkv_config *cfg, uint16_t client_id, struct cluster_map **out, char *err,
                    size_t errlen);
/* The map a deployment's file gives a client: discovered (deployment_seeds)
 * or read from deployment_map (cluster_deployment_open). */
int client_map_get(const struct bftkv_config *cfg, uint16_t client_id, struct cluster_map **out, char *err,
                   size_t errlen);
/* The partition handle of key (r a routing handle). */
struct bftkv_client *client_route(struct bftkv_client *r, const void *key, size_t klen);
void client_route_close(struct bftkv_client *r);
/* bftkv_client_replica_stats for a deployment's file: `node` is a node id, and
 * the stats are those of its replica of the first partition it hosts. */
int client_route_node_stats(const struct bftkv_config *cfg, uint16_t client_id, uint16_t node, int timeout_ms,
                            char *json, size_t cap, size_t *len, char *err, size_t errlen);
/* The partitions' counters summed (lanes and lane_base: partition 0's). */
void client_route_stats(struct bftkv_client *r, struct bftkv_client_stats *sum);

/* ---- client_epoch.c: a newer map announced to a routing handle -------------- */

/* r's map state (r->map set), with a copy of cfg. 0 or BFTKV_E_NOMEM. */
int client_epoch_init(struct bftkv_client *r, const struct bftkv_config *cfg);
void client_epoch_free(struct bftkv_client *r);
/* The map r routes with (an acquire load: another API thread may swap it). */
struct cluster_map *client_epoch_map(struct bftkv_client *r);
/* Called before routing a call: when the loop heard of a newer epoch than the
 * routed map's, fetch the map (rate-limited), accept it only by the
 * acceptance rule and route with it when its groups are the routed ones. On
 * the calling API thread (never the loop's). */
void client_epoch_check(struct bftkv_client *r);
/* The loop's: an authenticated REPLY or a MAP-NOTICE from replica j of c's
 * group claimed `epoch`. */
void client_epoch_hint(struct bftkv_client *c, uint16_t replica, uint64_t epoch);
/* The rate rule of a fetch, apart so a test can drive it: is a fetch due at
 * now_ns for `claim` when the newest map held has held_epoch? And record one
 * made at now_ns (borne_out: it gave a map of the claimed epoch or later). */
bool client_epoch_due(const struct client_epoch *e, uint64_t claim, uint64_t held_epoch, uint64_t now_ns);
void client_epoch_tried(struct client_epoch *e, uint64_t claim, bool borne_out, uint64_t now_ns);
/* Fill sum's map fields. */
void client_epoch_stats(struct bftkv_client *r, struct bftkv_client_stats *sum);
/* Decide whether a newer map's groups are those a handle routes with: every
 * partition's replicas the same nodes at the same addresses with the same
 * keys, and the same P, R and f (then the handle takes it without re-opening
 * anything). */
bool client_epoch_same_groups(const struct cluster_map *a, const struct cluster_map *b);
/* client_discover.c: ask first (the node that claimed a newer epoch), then
 * the file's seeds, for a map NEWER than held (acceptance rule, §6.2); 0 and
 * *out the first such map (written to map_cache when the file names one), or
 * BFTKV_E_NOT_FOUND when none gave one, with every asked node's reason in
 * err. */
int client_map_refetch(const struct bftkv_config *cfg, uint16_t client_id, const struct cluster_map *held,
                       const struct sockaddr_storage *first, socklen_t firstlen, struct cluster_map **out,
                       char *err, size_t errlen);

/* ---- client_io.c: one partition's share of the loop (the loop's thread) ----- */

/* CLOCK_MONOTONIC in ns. */
uint64_t client_io_now_ns(void);
/* Expire async requests, move queued ones onto lanes, mirror the stats, make the
 * callbacks, probe after a retransmission and queue the outbox on the socket;
 * sets c->io_key_ns. Returns whether c has more to do at once. */
bool client_io_visit(struct bftkv_client *c, uint64_t now);
/* Step the engine with a tick if its deadline is due. */
void client_io_tick(struct bftkv_client *c, uint64_t now);
/* One message of a datagram from src, for c; h is its header when mlen allows. */
void client_io_on_message(struct bftkv_client *c, const struct sockaddr_storage *src, const struct wire_header *h,
                          const uint8_t *msg, size_t mlen);

/* ---- client_loop.c: the I/O thread, socket and wake-up ---------------------- */

/* Set up io for parts partitions (part[p]->io and pidx are set): the socket
 * bound on bind_host, the wake-up socket, each partition's lease published with
 * the socket's address. 0, or an error with opt->err filled. */
int client_loop_open(struct client_io *io, struct bftkv_client **part, uint32_t parts, const char *bind_host,
                     const struct bftkv_config *cfg, const struct bftkv_client_options *opt);
/* Start the thread. */
int client_loop_start(struct client_io *io);
/* Stop the thread (closing every partition is the caller's). */
void client_loop_stop(struct client_io *io);
/* Free what open set up; safe on a zeroed or partly opened io. */
void client_loop_destroy(struct client_io *io);
/* Partition c has work for the loop (mu held: a lane is free for a queued
 * request, or deadline_ns comes before c->io_key_ns). Returns whether the
 * caller must wake the loop (client_loop_wake, mu released). */
bool client_loop_ready(struct bftkv_client *c, bool lane_free, uint64_t deadline_ns);
/* Wake the I/O thread (any thread; mu not held). */
void client_loop_wake(struct client_io *io);
/* Whether the calling thread is io's. */
bool client_loop_on_thread(const struct client_io *io);
/* Datagrams sent and received on io's socket, wake-ups not counted. */
void client_loop_datagrams(struct client_io *io, uint64_t *sent, uint64_t *received);

#endif /* BFTKV_CLIENT_INTERNAL_H */
