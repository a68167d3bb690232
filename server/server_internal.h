/* Internals of the server runtime shared by server/server*.c: the server struct,
 * its counters and stage histograms, and the protocol-side helpers both thread
 * layouts use (server/server.h describes the runtime).
 *
 * Who writes what:
 *   - engine, store, out, book, admin guard, byz, json/admin buffers: the protocol
 *     thread only (in the single layout the one thread);
 *   - counters: relaxed atomics, any thread adds, the stats builder reads;
 *   - stage histograms: each owned by one thread, which records under the
 *     histogram's own mutex; the stats builder takes the mutex to merge it;
 *   - the UDP instance: receive half on the rx (or single) thread, send half on the
 *     tx (or single) thread (net/udp.h's contract).
 */
#ifndef BFTKV_SERVER_INTERNAL_H
#define BFTKV_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/hdr.h"
#include "common/log.h"
#include "engine/pbft.h"
#include "engine/wire_le.h"
#include "server/admin.h"
#include "server/byzantine.h"
#include "server/server.h"
#include "server/wal.h"
#include "common/log.h"
#include "net/udp.h"
#include "store/store.h"

/* Repeating warnings (failed state transfers, refused requests): one line per
 * this interval at most. */
#define SERVER_LOG_INTERVAL_NS (10ull * 1000u * 1000u * 1000u)

/* ---- Counters ---------------------------------------------------------------------- */

/* The runtime's own counters (the engine keeps its own, pbft_replica_stats). */
#define SERVER_COUNTER_LIST(X)                                                          \
    X(datagrams_received, "datagrams delivered by the transport")                       \
    X(messages_received, "messages handed to the engine")                               \
    X(messages_sent, "messages handed to the transport, per destination")               \
    X(admin_answered, "admin requests answered")                                        \
    X(rounds, "engine steps (receive and tick)")                                        \
    X(ticks, "PBFT_EV_TICK steps")                                                      \
    X(flushes, "transport flushes")                                                     \
    X(wal_early_commits, "durable: log commits before the end of a loop iteration (a full buffer)") \
    X(wal_hold_waits, "durable: waits for the oldest log commit with every hold slot or tx batch taken") \
    X(bad_datagram, "drop: framing broken (truncated, bad magic/version, trailing bytes)") \
    X(rx_ring_full, "drop: staged rx pool or ring full")                                \
    X(tx_ring_full, "drop: staged tx pool full for too long")                           \
    X(reply_no_address, "drop: reply to a client whose address is unknown")             \
    X(unknown_client, "drop: request or admin request from a client not allowed")       \
    X(auth_dropped, "drop: staged auth stage removed a message (any reason)")          \
    X(dgram_excess_replica, "drop: replica messages beyond BFTKV_DGRAM_REPLICA_MSGS_MAX in a datagram") \
    X(dgram_excess_client, "drop: client REQUESTs beyond BFTKV_DGRAM_CLIENT_MSGS_MAX in a datagram") \
    X(dgram_excess_admin, "drop: admin requests beyond BFTKV_DGRAM_ADMIN_MSGS_MAX in a datagram")

enum server_counter {
#define SERVER_COUNTER_ENUM(name, text) SERVER_CTR_##name,
    SERVER_COUNTER_LIST(SERVER_COUNTER_ENUM)
#undef SERVER_COUNTER_ENUM
    SERVER_CTR_COUNT
};

/* ---- Stage histograms ---------------------------------------------------------------- */

enum server_stage {
    SERVER_STAGE_RX_QUEUE = 0, /* staged: rx copy -> protocol dequeue (through auth) */
    SERVER_STAGE_AUTH,         /* staged: decode and authenticate one datagram's messages */
    SERVER_STAGE_STEP,         /* one engine step with the outbox drained */
    SERVER_STAGE_TX_QUEUE,     /* staged: protocol publish -> tx dequeue */
    SERVER_STAGE_FLUSH,        /* queue (staged) and flush of one round's datagrams */
    SERVER_STAGE_WAL,          /* durable: one commit of the write-ahead log, submitted to completed */
    SERVER_STAGE_COUNT
};

/* One histogram with one recording thread. */
struct server_hist {
    pthread_mutex_t mu;
    struct hdr_histogram *h;
};

/* ---- Address book ---------------------------------------------------------------------- */

/* Where the replies of one (client, lane) go: the source of the latest
 * admissible REQUEST on that lane (server/server.c, server_book_learn). Per lane,
 * because a client identity may have several sessions, each leasing its own
 * lanes from its own socket (include/bftkv/client.h, "Sessions"). */
struct server_peer {
    struct sockaddr_storage addr;
    socklen_t alen;   /* 0: unknown */
};

/* ---- Per-datagram message budget ---------------------------------------------------------- */

/* The kinds of sender a message comes from, each with its own budget per
 * datagram (include/bftkv/limits.h): an ADMIN is an admin client's, a REQUEST
 * whose datagram does not come from a replica's address is a client's, and
 * everything else (a REQUEST a replica relays included) a replica's. */
enum server_sender {
    SERVER_SENDER_REPLICA = 0,
    SERVER_SENDER_CLIENT,
    SERVER_SENDER_ADMIN,
    SERVER_SENDER_COUNT
};

struct server_budget {
    uint32_t left[SERVER_SENDER_COUNT];
    int8_t from_replica; /* the datagram's source is a replica's address: -1 not looked up yet */
};

/* Messages one datagram can bring past its budget, all sender kinds together. */
#define SERVER_DGRAM_MSGS_MAX (BFTKV_DGRAM_REPLICA_MSGS_MAX + BFTKV_DGRAM_CLIENT_MSGS_MAX + BFTKV_DGRAM_ADMIN_MSGS_MAX)

/* ---- One message, decoded once ----------------------------------------------------------- */

/* One message of a datagram as the runtime decoded it (docs/design.md §6: a
 * datagram is decoded once and authenticated once, and the engine receives
 * the decoded message). It points into the datagram's bytes, which must stay
 * where they are until the message is handled. */
struct server_msg {
    uint8_t type;       /* the header's: an engine type, or WIRE_ADMIN */
    bool authenticated; /* engine types: the message's own MAC for us or its
                           signature verified (pbft.h, struct pbft_event) */
    union {
        struct wire_msg wire;       /* engine types: what wire_decode gave */
        struct admin_request admin; /* WIRE_ADMIN: checked, MAC included */
    } u;
};

/* ---- The server ----------------------------------------------------------------------- */

struct server_staged; /* server/server_staged.c */
struct server_hold;   /* server/server_single.c */
struct server_snap;   /* server/snapshot_internal.h */
struct server_metrics; /* server/metrics_sample.c */

struct server {
    const struct bftkv_config *cfg;
    uint16_t id;
    uint16_t n;
    enum net_backend backend_asked;
    struct wire_limits lim;
    struct auth_ctx auth;
    bool auth_ready;
    struct store *store;
    struct pbft_replica *replica;
    struct pbft_out out;
    struct server_byz *byz;

    struct net_udp *udp;
    struct sockaddr_storage replica_addr[BFTKV_REPLICAS_MAX];
    socklen_t replica_alen[BFTKV_REPLICAS_MAX];
    char bind_host[NET_ADDR_STRLEN];
    uint16_t bind_port;
    struct server_peer *book; /* cfg->clients * lanes: reply address per (client, lane) */
    uint64_t *book_ts;        /* cfg->clients * lanes: last timestamp learnt per (client, lane) */
    uint16_t lanes;           /* cfg->client_lanes */

    struct admin_guard admin;
    uint8_t *admin_msg;       /* ADMIN_REPLY_MAX */
    char *json;               /* ADMIN_JSON_MAX + 1 */
    struct hdr_histogram *merge; /* scratch for merging a stage's histograms */

    _Atomic uint64_t ctr[SERVER_CTR_COUNT];
    _Atomic uint64_t rx_drops[WIRE_DROP_COUNT]; /* server_msg_decode's, by reason (the
                                                  engine counts what it drops itself) */
    _Atomic uint64_t admin_drops[ADMIN_DROP_COUNT];
    /* stage histograms: [stage][k], k < hist_per_stage[stage] (auth: one per worker) */
    struct server_hist *hist[SERVER_STAGE_COUNT];
    uint16_t hist_count[SERVER_STAGE_COUNT];

    uint64_t start_ns;
    uint64_t deadline_ns; /* the engine's next deadline (protocol thread) */
    /* The protocol thread's last clock read (server_clock_*): one read per
     * engine step, reused as the time of the next event until the thread waits. */
    uint64_t clock_ns;
    bool clock_fresh; /* false: the thread may have waited since clock_ns */
    /* Before every line logged about the engine: "" (a line's node, partition
     * and view fields come from log_ctx, which the protocol thread sets before it
     * steps this replica: server_msg_handle, server_timers_run). */
    char log_prefix[24];
    struct log_ctx log_ctx; /* node: the replica id, or a deployment's node id (server/node.c) */
    /* what the protocol thread last logged about the engine */
    uint64_t seen_view;
    bool seen_in_viewchange;
    uint64_t seen_transfers;
    uint64_t seen_holds_state;
    uint64_t seen_xfer_failed; /* failed state transfers last logged ... */
    uint64_t xfer_log_ns;      /* ... and the earliest next such line */
    uint64_t seen_refused;     /* NO_STATE refusals last logged ... */
    uint64_t refused_log_ns;   /* ... and the earliest next such line */
    atomic_bool stop;
    atomic_bool failed; /* a thread ended on a runtime failure */
    bool started;
    bool joined;
    pthread_t single_thread;
    struct server_staged *staged;
    struct server_hold *hold; /* single layout, durable: the iteration's messages until the commit */

    /* Durability (server/server_durable.c), protocol thread only. */
    struct wal *wal;          /* NULL: durability none */
    bool wal_sync;            /* sync: fdatasync in every commit */
    int wal_failed;           /* 0, or the code that stopped the replica: nothing is sent */
    uint32_t wal_pending;     /* records appended since the last commit submitted */
    /* Commits in flight, oldest first: the last lsn each covers and when it was
     * submitted (the WAL stage histogram). */
    uint64_t wal_q_end[WAL_INFLIGHT_MAX];
    uint64_t wal_q_t0[WAL_INFLIGHT_MAX];
    unsigned wal_q_first, wal_q_n;
    bool recovering;          /* records were replayed: recover_done before the first event */
    struct wal_recovery wal_rec;
    char wal_dir[BFTKV_CONFIG_PATH_MAX + 32];
    struct server_snap *snap; /* snapshot files and log cuts (server/snapshot.h); NULL: none */
    struct server_metrics *metrics; /* the metrics snapshot (server/metrics.h) */

    /* Where the protocol side's messages go (single: the transport; staged: a tx
     * batch). `replicas`: a bit per replica id. */
    void (*out_replicas)(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len);
    void (*out_addr)(struct server *s, const struct sockaddr_storage *addr, socklen_t alen, const uint8_t *msg,
                     size_t len);
};

static inline void server_count(struct server *s, enum server_counter c, uint64_t k)
{
    atomic_fetch_add_explicit(&s->ctr[c], k, memory_order_relaxed);
}

static inline uint64_t server_counter_get(const struct server *s, enum server_counter c)
{
    return atomic_load_explicit(&s->ctr[c], memory_order_relaxed);
}

/* CLOCK_MONOTONIC in ns. */
uint64_t server_now_ns(void);

/* The protocol thread's clock, read once per engine step instead of several
 * times per message (docs/design.md §6): server_clock_read reads it and keeps
 * the value; server_clock_now gives the kept value unless server_clock_stale
 * was called since (before the thread may block), and then reads. */
static inline uint64_t server_clock_read(struct server *s)
{
    s->clock_ns = server_now_ns();
    s->clock_fresh = true;
    return s->clock_ns;
}

static inline uint64_t server_clock_now(struct server *s)
{
    return s->clock_fresh ? s->clock_ns : server_clock_read(s);
}

static inline void server_clock_stale(struct server *s)
{
    s->clock_fresh = false;
}

/* Record value into the histogram k of a stage (its owner thread only). */
void server_hist_record(struct server *s, enum server_stage st, uint16_t k, int64_t value);

/* The size of the message that starts at msg, whose header is readable: header +
 * body_len + auth_len (engine/wire.h: body_len at offset 24, auth_len at 28). */
static inline size_t server_msg_size(const uint8_t *msg)
{
    return (size_t)WIRE_HEADER_SIZE + le32_load(msg + 24) + le16_load(msg + 28);
}

/* The framing of a datagram: true when it splits exactly into messages with the
 * right magic and version; *count gets their number. */
bool server_framing_ok(const uint8_t *data, size_t len, uint32_t *count);

/* Is src (srclen bytes) the address a (same family, address and port)? */
bool server_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *src, socklen_t srclen);

/* Is src the address of one of the group's replicas (its configured one)? */
bool server_src_is_replica(const struct server *s, const struct sockaddr_storage *src, socklen_t srclen);

/* A datagram's message budget, full (server_budget_take spends it). */
void server_budget_init(struct server_budget *b);

/* May the next message of a datagram from src, of this type, go on? false when
 * its sender kind has used up its budget for this datagram; the drop is counted
 * (dgram_excess_*). */
bool server_budget_take(struct server *s, struct server_budget *b, const struct sockaddr_storage *src,
                        socklen_t srclen, uint8_t type);

/* Decode the message msg (size bytes: one message of a datagram whose framing
 * server_framing_ok accepted) into *out: an ADMIN with wire_admin_request_check (its
 * MAC included), any other with wire_decode on the engine's limits. With
 * authenticate (the staged auth workers) the message's own authentication is
 * verified too, as the engine would (a REQUEST's client must be known, then
 * its MAC for us; CHECKPOINT, VIEW-CHANGE, NEW-VIEW their signature; the rest
 * their MAC for us), and out->authenticated tells the engine so. true when the
 * message goes on; false when it is dropped, its reason counted (rx_drops,
 * admin_drops or unknown_client). Reads the auth context and the limits only:
 * any thread may call it. */
bool server_msg_decode(struct server *s, const uint8_t *msg, size_t size, bool authenticate,
                       struct server_msg *out);

/* Protocol side: one decoded message from src (an admin request answered; a
 * REQUEST teaches the address book; the engine steps on every engine message
 * with the outbox drained). from_replica: the datagram's budget's look-up of
 * whether src is a replica's address (-1: not yet; filled when needed). */
void server_msg_handle(struct server *s, const struct sockaddr_storage *src, socklen_t srclen,
                       int8_t *from_replica, struct server_msg *m);

/* The single layout: one datagram from src, whole (framing, budget, then each
 * message decoded with server_msg_decode and handled with server_msg_handle). */
void server_datagram_step(struct server *s, const struct sockaddr_storage *src, socklen_t srclen,
                          const uint8_t *data, size_t len);

/* Protocol side: tick the engine if its deadline passed; returns the ms to wait
 * at most before the next one (0..SERVER_POLL_MS_MAX). */
int server_timers_run(struct server *s);

/* Durability (server/server_durable.c). server_durable_open, from server_create
 * with the engine and the outbox made (rcfg as the engine was created, holding
 * state): opens (founding: empties) the log, hands a restarted replica's records
 * to the engine, or creates the engine again unsure when there are none. 0, or
 * an error with a message in err (BFTKV_E_CORRUPT: a corrupt log or a record
 * the engine rejects). */
int server_durable_open(struct server *s, struct pbft_replica_config *rcfg, bool restarted, char *err,
                        size_t errlen);
void server_durable_close(struct server *s);
/* durability none: an earlier log in data_dir/replica-<id>/wal is removed. */
int server_durable_forget(struct server *s, char *err, size_t errlen);
/* The drain's: one record to the log (a failure stops the replica). */
void server_wal_append(struct server *s, uint16_t type, const uint8_t *bytes, uint32_t len);
/* The layouts' side of the pipelined commit (docs/design.md §5.6.2). A message
 * the drain hands over may leave the process once server_wal_covers(s, need)
 * holds for need = server_wal_need(s) read when it was handed over (the drain
 * appends an outbox's records before it hands over any of its messages).
 * server_wal_submit starts a commit of every record appended so far without
 * waiting (early: before the end of the iteration, counted); server_wal_reap
 * takes completions (timeout_us as wal_commit_reap: 0 looks, > 0 waits up to
 * that long, < 0 waits for the oldest commit). Both return 0, or the failure
 * that stops the replica (then send nothing more). Cheap when nothing was
 * appended; always 0 without a log. */
int server_wal_submit(struct server *s, bool early);
int server_wal_reap(struct server *s, int64_t timeout_us);
uint64_t server_wal_need(const struct server *s);
bool server_wal_covers(const struct server *s, uint64_t need);
bool server_wal_in_flight(const struct server *s);
/* Submit a commit of everything appended so far and wait until every commit
 * is complete: the records are durable (sync) or written (async) on return.
 * For the snapshot writer's segment starts and log cuts (server/snapshot.c),
 * which need nothing pending. 0, or the failure that stops the replica. */
int server_wal_commit(struct server *s, bool early);
/* The failure that stops the replica: logged once, every later send dropped. */
void server_wal_fail(struct server *s, const char *what, int rc);
/* The info line on what the recovery rebuilt (after recover_done). */
void server_durable_recovered(struct server *s);
/* Protocol thread, before its first event: a recovered replica's
 * pbft_replica_recover_done, its outbox drained like a step's. */
void server_recovery_finish(struct server *s);

/* The single layout's destinations: queued on s->udp, not flushed (a
 * deployment node's hosted replicas share its socket this way, server/node.c). */
void server_single_out_replicas(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len);
void server_single_out_addr(struct server *s, const struct sockaddr_storage *addr, socklen_t alen, const uint8_t *msg,
                            size_t len);

/* Layouts (server_single.c, server_staged.c). */
/* The outputs of a replica run by a single-layout loop (its own thread, or a
 * deployment node's, server/node.c): straight onto the transport, or -- durable --
 * into the hold slots, released once the log's commit covers them. */
int server_single_outputs(struct server *s);
/* A loop iteration's end for a durable replica: its log commit submitted, the
 * held messages whose commit completed queued; idle: nothing arrived, so it may
 * wait for a running commit a little. 0, or the log's failure. */
int server_single_hold_end(struct server *s, bool idle);
/* Messages held open or a commit running: the loop must not sleep. */
bool server_single_hold_busy(struct server *s);
int server_single_start(struct server *s);
void server_single_join(struct server *s);
void server_single_free(struct server *s);
int server_staged_start(struct server *s);
void server_staged_join(struct server *s);
void server_staged_free(struct server *s);

#endif /* BFTKV_SERVER_INTERNAL_H */
