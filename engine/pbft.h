/* The PBFT engine: replica and client as pure step functions (docs/design.md §5).
 *
 *     event in  ->  state change  ->  outbox out
 *
 * An event is a received message (raw bytes, decoded and authenticated inside,
 * or a message the caller decoded and perhaps authenticated: struct
 * pbft_event), a tick carrying the current time, or for the client a local
 * submit. The engine
 * does no I/O, reads no clock and draws no random numbers: time arrives in every
 * event (now_ns). Its own structures are allocated by pbft_*_create(); what a
 * step may still allocate is the store's: a PUT's entry, the copy-on-write of a
 * shard after a checkpoint's snapshot (store/store.h), and the entries a state
 * transfer restores into its staging store. Out of memory there is a counted
 * failure, never a crash (snapshot_failures, state transfer retries). The caller (the
 * simulator or the server runtime) sends what the outbox holds, in order, then
 * clears it (pbft_out_reset) before the next step.
 *
 * The replica executes committed batches itself, in sequence order, against its
 * store (engine/exec.c): execution is deterministic and touches only memory, and
 * keeping it inside the step keeps the checkpoint digest and the read-only path
 * exact. REPLY messages come out in the outbox like any other message.
 *
 * Ordering contract of the outbox (etcd's Ready order: persist, then send, then
 * apply -- the engine applies itself, inside the step): messages are listed in
 * the order they must be sent. A durable replica (cfg.durable) also lists
 * records (dest_kind PBFT_DEST_PERSIST, dest_id an enum pbft_persist): the caller
 * makes every record of an outbox durable, in order, before it sends any message
 * of that outbox. A record always sits in the same outbox as the first message
 * that depends on it, or in an earlier one (docs/design.md §9 lists what depends
 * on what). If a step produced more than the outbox can hold, out->more is set;
 * the caller persists and sends what is there, resets the outbox and calls
 * pbft_replica_resume(), until more is false, before delivering the next event.
 */
#ifndef BFTKV_ENGINE_PBFT_H
#define BFTKV_ENGINE_PBFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/auth.h"
#include "engine/wire.h"
#include "store/store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Outbox ----------------------------------------------------------------- */

/* Destinations. */
enum pbft_dest_kind {
    PBFT_DEST_REPLICA = 1,      /* id = replica id */
    PBFT_DEST_ALL_REPLICAS = 2, /* every replica except the sender itself */
    PBFT_DEST_CLIENT = 3,       /* id = client id */
    PBFT_DEST_PERSIST = 4,      /* not a message: a record to make durable first; id = enum pbft_persist */
};

/* What a durable replica's records say (payload layouts in engine/persist.c). */
enum pbft_persist {
    PBFT_PERSIST_PREPREPARE = 1, /* a PRE-PREPARE this replica sent or accepted (the message):
                                    before its PREPARE for it, or the PRE-PREPARE itself */
    PBFT_PERSIST_REQUEST = 2,    /* a large request a persisted PRE-PREPARE names by digest */
    PBFT_PERSIST_PREPARED = 3,   /* prepared (view, seq, digest): before its COMMIT */
    PBFT_PERSIST_COMMITTED = 4,  /* batch seq committed here (seq, digest): before its first
                                    reply; a recovery executes it again */
    PBFT_PERSIST_VIEW_CHANGE = 5, /* its own VIEW-CHANGE (the message): before it is sent */
    PBFT_PERSIST_NEW_VIEW = 6,   /* a NEW-VIEW it sent or accepted (the message): before
                                    any message of that view */
    PBFT_PERSIST_CHECKPOINT = 7, /* a stable checkpoint: seq, digest and the q signed
                                    CHECKPOINTs that prove it */
    PBFT_PERSIST_HOLDS_STATE = 8, /* one byte: 0 when a replica restarted with empty
                                    memory (cfg.restarted) starts, 1 once q replicas
                                    vouched for it: before any other record. A
                                    recovery whose last such record is 0 comes back
                                    unsure: what it voted before it lost its memory
                                    is in no record */
};

struct pbft_out_msg {
    uint8_t dest_kind;
    uint16_t dest_id;
    uint32_t off; /* into pbft_out.buf */
    uint32_t len; /* one complete message */
    const uint8_t *ext; /* non-NULL: the bytes are here instead (the engine's own memory,
                           unchanged until its next step call); records only */
};


/* Caller-owned outbox; create with pbft_out_init (the only allocation). */
struct pbft_out {
    uint8_t *buf;
    size_t cap;
    size_t used;
    struct pbft_out_msg *msgs;
    uint32_t msgs_cap;
    uint32_t nmsgs;
    bool more; /* the step stopped early for lack of room: resume after draining */
};

/* The bytes of an outbox entry. */
static inline const uint8_t *pbft_out_bytes(const struct pbft_out *o, const struct pbft_out_msg *m)
{
    return m->ext != NULL ? m->ext : o->buf + m->off;
}

/* buf_bytes >= PBFT_OUT_MIN_BYTES; msgs_cap >= PBFT_OUT_MIN_MSGS. */
#define PBFT_OUT_MIN_BYTES (4u * BFTKV_DATAGRAM_MAX)
#define PBFT_OUT_MIN_MSGS 4096u
int pbft_out_init(struct pbft_out *o, size_t buf_bytes, uint32_t msgs_cap);
void pbft_out_free(struct pbft_out *o);
void pbft_out_reset(struct pbft_out *o);

/* ---- Injected bugs (tests only) --------------------------------------------------
 * Each switch breaks one rule on purpose, so a test can show that the simulator's
 * checkers catch it (tests/sim/README.md). Never set outside tests. */
enum pbft_bug {
    PBFT_BUG_COMMIT_QUORUM_2F = 1u << 0,     /* committed-local with 2f commits, not 2f+1 */
    PBFT_BUG_EXECUTE_UNCOMMITTED = 1u << 1,  /* execute as soon as prepared */
    PBFT_BUG_IGNORE_DIGEST = 1u << 2,        /* accept PREPARE/COMMIT whatever their digest */
    PBFT_BUG_CLIENT_F_REPLIES = 1u << 3,     /* client accepts f matching replies, not f+1 */
    PBFT_BUG_NEWVIEW_IGNORE_A2 = 1u << 4,    /* NEW-VIEW choice (computed and checked) skips A2 */
    PBFT_BUG_FORGET_P = 1u << 5,             /* VIEW-CHANGE sent with an empty P set */
    PBFT_BUG_SKIP_SNAPSHOT_DIGEST = 1u << 6, /* install a fetched state without checking its digest */
    PBFT_BUG_RESTART_SURE = 1u << 7,         /* a restarted replica is never unsure: it votes at
                                                once, as if it held the group's state */
    PBFT_BUG_PERSIST_SKIP = 1u << 8,         /* durable: COMMIT sent without its PREPARED record */
    PBFT_BUG_RECOVER_FORGET_P = 1u << 9,     /* recovery skips the PREPARED records: its
                                                VIEW-CHANGE reports no P set */
    PBFT_BUG_ROUTE_OFF_BY_ONE = 1u << 10,    /* simulator, deployment: the clients route a PUT or
                                                DEL of a key of 4 or more bytes by a hash of
                                                its first len - 1 bytes; GETs route right */
    PBFT_BUG_RECOVER_TORN = 1u << 11,        /* simulator, durable: the disk's replay takes a
                                                torn last record as whole, its missing bytes
                                                read as zeros (no torn-tail cut) */
    PBFT_BUG_READONLY_QUORUM_2F = 1u << 12,  /* client accepts a read-only GET with q - 1 (2f at
                                                n = 3f+1) matching answers, not q */
    PBFT_BUG_READONLY_NO_WAIT = 1u << 13,    /* a replica answers a read-only GET at once, not
                                                after executing what it had prepared */
    PBFT_BUG_RESTART_VOUCH_EARLY = 1u << 14, /* a restarted replica is sure once q peers hold
                                                state, before it installed a state they vouch
                                                for (their stable checkpoint above its own) */
    PBFT_BUG_RESTART_VOUCH_F1 = 1u << 15,    /* a restarted replica is sure on f+1 vouchers,
                                                not q */
};

/* ---- Replica ---------------------------------------------------------------- */

struct pbft_replica_config {
    uint16_t group;
    uint16_t id;
    uint16_t n;                     /* replicas, n >= 3f+1 */
    uint16_t f;                     /* faults tolerated */
    uint16_t clients;               /* client ids 0..clients-1 */
    uint16_t lanes;                 /* pipelined slots per client, 1..PBFT_LANES_MAX */
    uint32_t checkpoint_interval;   /* K */
    uint32_t log_window;            /* L, a multiple of K, >= 2K */
    uint32_t window;                /* W: batches in flight at the primary */
    uint32_t batch_max_requests;
    uint32_t batch_max_bytes;
    uint64_t request_timeout_ns;    /* T, the view-change timeout (engine/viewchange.c):
                                       a backup starts a view change when a request it
                                       watches waits longer than the current timeout,
                                       which is also the wait for a NEW-VIEW; it starts
                                       at T, doubles per failed view change (up to 64 T)
                                       and halves, down to T, when a new view executes */
    uint64_t retransmit_ns;         /* catch-up (engine/catchup.c): retransmission of
                                       unfinished slots, STATUS when idle behind (and a
                                       heartbeat every 10), state-transfer chunk timeout */
    uint32_t bugs;                  /* enum pbft_bug, tests only */
    bool restarted;                 /* this replica lost its memory (crash-restart) and
                                       its store was cleared: it announces itself with a
                                       STATUS at its first tick, fetches the group's
                                       state and joins the view f+1 peers report; it
                                       proposes nothing as the primary of its old view
                                       (engine/catchup.c) */
    bool durable;                   /* list PBFT_DEST_PERSIST records in the outbox
                                       (the Ordering contract above) */
    uint64_t map_epoch;             /* a deployment's partition: the epoch of the map
                                       the node runs, carried by every REPLY so a
                                       client learns of a newer map (docs/design.md
                                       §6.3); 0: a single group, REPLYs carry none */
};

#define PBFT_LANES_MAX 64u

/* Defaults for the tuning fields of cfg (group, id, n, f, clients set by caller). */
void pbft_replica_config_defaults(struct pbft_replica_config *cfg);

/* q = ceil((n + f + 1) / 2): the certificate quorum; 2f+1 when n = 3f+1. */
uint16_t pbft_quorum(uint16_t n, uint16_t f);

enum pbft_event_kind {
    PBFT_EV_RECEIVE = 1, /* one message (not a whole datagram): msg/len or decoded */
    PBFT_EV_TICK = 2,    /* time passes: timers */
};

/* A received message reaches the replica in one of two forms:
 *
 *   raw      msg/len, decoded == NULL: the replica decodes it (wire_decode,
 *            each failure counted in its drops) and checks its authentication
 *            itself. The simulator and the unit tests use this form.
 *   decoded  decoded != NULL (msg/len ignored): a message the caller already
 *            decoded with wire_decode and the replica's limits (group, n and
 *            clients of its config). decoded and the bytes it points into
 *            stay valid for the whole step; the replica copies what it keeps,
 *            as it does of raw bytes. A server runtime decodes each datagram's
 *            messages once and hands them on (docs/design.md §6).
 *
 * authenticated (decoded form only; the replica asserts it is false with raw
 * bytes) says the caller verified the message's own authentication with the
 * replica's auth context:
 *   - REQUEST, PRE-PREPARE, PREPARE, COMMIT, STATUS, FETCH, STATE: the MAC
 *     for this replica in the message's authenticator (auth_authenticator_check;
 *     for a REQUEST, pbft_replica_request_admissible with check_mac does it);
 *   - CHECKPOINT, VIEW-CHANGE, NEW-VIEW: the sender's signature
 *     (auth_signature_check).
 * With it set, the replica skips exactly that check and nothing else. It still
 * applies every other filter and counts the same drop reasons: sender, view,
 * watermarks, sizes, digests, the client filters of a REQUEST, equivocation
 * (TOCS 2002 §4.2: a well-authenticated message can still lie). It still
 * verifies the authentication of what a message carries inside it: the clients'
 * MACs of a PRE-PREPARE's inlined requests, the signed CHECKPOINTs of a STATE
 * proof. A caller that is not sure leaves authenticated false: the check then
 * runs once more, which costs time and changes nothing else. */
struct pbft_event {
    uint8_t kind;
    uint64_t now_ns;
    const uint8_t *msg;
    size_t len;
    const struct wire_msg *decoded;
    bool authenticated;
};

/* Counters a replica keeps (the stats command prints them). */
struct pbft_replica_stats {
    struct wire_drop_counters drops;
    uint64_t dropped_stale;        /* outside the watermarks or an old view */
    uint64_t dropped_conflict;     /* second PRE-PREPARE for (v, n) with another digest */
    uint64_t dropped_full;         /* a bounded queue was full */
    uint64_t requests_received;
    uint64_t requests_executed;
    uint64_t requests_duplicate;   /* answered from the reply cache */
    uint64_t batches_proposed;
    uint64_t batches_executed;
    uint64_t batch_requests_total; /* sum of batch sizes, for the average */
    uint64_t readonly_answered;
    uint64_t checkpoints_stable;
    uint64_t last_executed;
    uint64_t low_watermark;
    /* Large-request pool (engine/request_pool.c). */
    uint64_t pool_evicted;         /* unpinned large requests evicted for room */
    uint64_t pool_waits;           /* PRE-PREPAREs that waited for the pool window */
    uint64_t pool_relayed;         /* large requests relayed to a replica that lacked them */
    uint64_t pp_unvouched;         /* PRE-PREPAREs holding a request whose client MAC for us
                                      failed: accepted only once f PREPAREs matched */
    /* Catch-up (engine/catchup.c, engine/statetransfer.c). */
    uint64_t retransmissions;       /* PRE-PREPARE/PREPARE/COMMIT re-multicast by the tick */
    uint64_t status_sent;
    uint64_t status_answered;       /* STATUS answered with log messages or a proof */
    uint64_t state_transfers;       /* fetched states installed */
    uint64_t state_transfer_bad_digest; /* fetched states whose digest did not match */
    uint64_t state_transfer_restarts;   /* transfers restarted: another server or target */
    uint64_t state_transfer_bad_chunks; /* chunks no correct server sends (a liar's) */
    uint64_t state_transfer_unknown_client; /* fetched states naming a client our config lacks */
    uint64_t state_transfer_failure;    /* enum pbft_xfer_failure of the last failed
                                           transfer (0: none yet) ... */
    uint64_t state_transfer_failure_seq;    /* ... the checkpoint it fetched ... */
    uint64_t state_transfer_failure_server; /* ... and the replica that served it */
    uint64_t holds_state;           /* 1: this replica's state is certified (it
                                       founded the group, or a restarted one
                                       installed state q peers holding state
                                       vouch for); 0: it takes no part in ordering */
    uint64_t requests_refused_no_state; /* requests answered BFTKV_E_NO_STATE */
    uint64_t state_chunks_received;
    uint64_t state_chunks_served;
    uint64_t state_fetch_timeouts;
    uint64_t snapshots_taken;
    uint64_t snapshot_failures;     /* store_snapshot_take out of memory */
    uint64_t views_adopted;         /* a restarted replica joined the view f+1 report */
    /* View change (engine/viewchange.c, engine/newview.c). */
    uint64_t viewchanges;          /* views entered through a NEW-VIEW */
    uint64_t request_timeouts;      /* a watched request waited longer than T */
    uint64_t watch_compactions;     /* scans of a full FIFO of watched requests */
    uint64_t viewchange_timeouts;  /* no valid NEW-VIEW in time: on to the next view */
    uint64_t viewchange_joins;     /* joined a higher view on f+1 VIEW-CHANGEs */
    uint64_t viewchange_sent;       /* own VIEW-CHANGEs, retransmissions included */
    uint64_t newview_rejected;      /* NEW-VIEWs whose choices differ from ours */
    uint64_t newview_conflicts;     /* a NEW-VIEW chose another batch than the one
                                       executed here (or another checkpoint digest):
                                       a safety violation, counted, never asserted */
    /* A replica alone in a higher view (engine/viewchange_rejoin.c). */
    uint64_t stepdowns;             /* primary: stepped down to the view of a replica
                                       that was alone in it */
    uint64_t stepdowns_deferred;    /* ... not yet: that replica caused one too recently */
    uint64_t stepdown_joins;        /* backup: joined the view change its primary asked for */
    uint64_t viewchange_timeout_ns;         /* the view-change timeout now (it adapts) */
    uint64_t repairs_sent;          /* our votes sent again to a peer that retransmitted
                                       one we held, for a slot we committed (catchup.c) */
    uint64_t primary_misbehaviour_views; /* views whose primary sent us a message no
                                       correct primary sends (no fitted timeout then) */
    uint64_t view_active_since_ns;  /* now_ns (the caller's clock) when this replica
                                       entered its current view; 0 while it is moving
                                       to one */
};

/* Why a state transfer failed (pbft_replica_stats.state_transfer_failure). */
enum pbft_xfer_failure {
    PBFT_XFER_OK = 0,
    PBFT_XFER_BAD_DIGEST = 1,     /* the fetched state does not hash to what q replicas signed */
    PBFT_XFER_BAD_CHUNK = 2,      /* the server sent a chunk no correct server sends */
    PBFT_XFER_UNKNOWN_CLIENT = 3, /* the state holds replies of a client our config lacks */
};
const char *pbft_xfer_failure_name(uint64_t failure);

struct pbft_replica;

/* Create a replica. The store is owned by the caller and must outlive the replica;
 * the replica is its only writer. auth must be initialised (auth_init_replica) and
 * outlives the replica too. 0, BFTKV_E_INVAL or BFTKV_E_NOMEM. */
int pbft_replica_create(const struct pbft_replica_config *cfg, const struct auth_ctx *auth,
                        struct store *store, struct pbft_replica **out);
void pbft_replica_destroy(struct pbft_replica *r);

/* One step. Appends to out. */
void pbft_replica_step(struct pbft_replica *r, const struct pbft_event *ev, struct pbft_out *out);

/* Continue a step that stopped with out->more. */
void pbft_replica_resume(struct pbft_replica *r, uint64_t now_ns, struct pbft_out *out);

/* Does a decoded REQUEST (wire_decode accepted it) pass the filters the
 * replica's receipt applies before anything else: a known client, a lane below
 * cfg.lanes, a timestamp in 1..UINT64_MAX-1, the read-only flag on GETs only,
 * and, when check_mac, the client's MAC for this replica? Reads only, counts
 * nothing. The server runtime learns a client's reply address only from such a
 * request (server/server.c). */
bool pbft_replica_request_admissible(const struct pbft_replica *r, const struct wire_msg *m, bool check_mac);

const struct pbft_replica_stats *pbft_replica_stats(const struct pbft_replica *r);
uint64_t pbft_replica_view(const struct pbft_replica *r);
bool pbft_replica_is_primary(const struct pbft_replica *r);
/* A view change is under way: pbft_replica_view() is the view being moved to, and
 * no normal-case message is accepted until its NEW-VIEW is (TOCS 2002 §4.4). */
bool pbft_replica_in_viewchange(const struct pbft_replica *r);
/* The view-change timeout the replica uses now (it adapts, docs/design.md §5.5.2);
 * the simulator's rejoin bound is read from it. */
uint64_t pbft_replica_viewchange_timeout_ns(const struct pbft_replica *r);

/* The state of checkpoint seq as this replica keeps it for state transfer (its
 * store snapshot and reply cache), one STATE chunk at a time: st gets kind CHUNK,
 * the state digest (the one CHECKPOINTs sign), from = *pos, next, the store's
 * shard count and data_len bytes written at data (room for WIRE_STATE_DATA_MAX);
 * flags WIRE_STATE_LAST on the last. Start at {WIRE_PART_STORE, 0, 0}, then pass
 * st->next. The store's records come first, then the reply cache's: what a peer
 * fetching the state receives, for a durable replica's snapshot file (docs/
 * design.md §9). Reads only; call between steps. 0, BFTKV_E_NOT_FOUND when the
 * replica keeps no state of seq (a newer stable checkpoint released it: start
 * over with that one) or BFTKV_E_INVAL for a position it did not hand out. */
int pbft_replica_state_chunk(const struct pbft_replica *r, uint64_t seq, const struct wire_state_pos *pos,
                             uint8_t *data, struct wire_state *st);

/* ---- Recovery of a durable replica (engine/recover.c; docs/design.md §9) ----------
 *
 * A durable replica that restarts with its records is rebuilt from them, and is
 * then a replica that holds state (it never forgot what it voted): create it
 * with the config it had (cfg.durable set, cfg.restarted false) and an empty
 * store; before its first step, hand it every record it listed, in the order
 * they were made durable (pbft_replica_recover_record); then call
 * pbft_replica_recover_done once, and persist and send its outbox as after any
 * step. The replay executes every batch its records show committed, from
 * genesis, makes stable the checkpoints they prove, and rebuilds what it
 * prepared and pre-prepared in every view; done then moves it to the view
 * after the highest it took part in, with a VIEW-CHANGE that reports all of it
 * (TOCS 2002 §4.5): it never resumes a view in which it may have voted.
 *
 * A record that does not decode, a checkpoint proof without q valid matching
 * signatures, or one that disagrees with the state the replay computed, is
 * BFTKV_E_CORRUPT: the caller must stop and say so (the replica's disk is not
 * what it wrote; wiping its data directory makes it rejoin empty, cfg.restarted).
 * scratch is an outbox the replay uses for the messages re-execution makes and
 * resets itself; nothing in it is to be sent. */
int pbft_replica_recover_record(struct pbft_replica *r, uint16_t kind, const uint8_t *rec, size_t len,
                                struct pbft_out *scratch);
/* What the replay rebuilt (0 before done): */
struct pbft_recovery_stats {
    uint64_t snapshot_seq;      /* the snapshot it started from (0: none) */
    uint64_t records;           /* records handed in */
    uint64_t executed;          /* batches executed again */
    uint64_t checkpoints;       /* stable checkpoints proven by their records */
    uint64_t highest_view;      /* the highest view it took part in */
    uint64_t prepared;          /* seqs above the stable checkpoint it reports prepared */
    uint64_t gap_seq;           /* a stable checkpoint above what it could execute (it
                                   got that state by state transfer): fetched again
                                   from its peers; 0: none */
    uint64_t unsure_restart;    /* 1: its records start with a restart with empty
                                   memory that no one vouched for yet: unsure */
};
void pbft_replica_recover_done(struct pbft_replica *r, uint64_t now_ns, struct pbft_out *out);

/* A snapshot: the state of a stable checkpoint, kept so that the records below
 * it can go (docs/design.md §5.6.2). For a CHECKPOINT record it persisted, the
 * runtime writes that record (the proof) and the chunks pbft_replica_state_chunk
 * hands out for its seq to a file. A recovery may start from such a file, before
 * any record: _snapshot with the CHECKPOINT record (its q signatures are
 * checked), then every chunk in the order they were handed out (a struct
 * wire_state with from.part, shards, flags, data and data_len as given; the
 * other fields are not read), then _snapshot_end, which checks the state
 * against the signed digest and installs it: the replica has then executed up
 * to that seq, which is its stable checkpoint. The records that follow are
 * replayed as usual (those at or below the snapshot's seq change nothing). 0 or
 * BFTKV_E_CORRUPT (a proof without q valid matching signatures, a chunk that
 * does not restore, a state whose digest differs): the caller may start over
 * with an older snapshot, or rejoin empty. BFTKV_E_NOMEM: out of memory. */
int pbft_replica_recover_snapshot(struct pbft_replica *r, const uint8_t *checkpoint_record, size_t len);
int pbft_replica_recover_snapshot_chunk(struct pbft_replica *r, const struct wire_state *st);
int pbft_replica_recover_snapshot_end(struct pbft_replica *r);
/* The seq a CHECKPOINT record names (0 when len is not that of a CHECKPOINT
 * record of this group's n): for the runtime, which starts a snapshot file there. */
uint64_t pbft_persist_checkpoint_seq(uint16_t n, const uint8_t *rec, size_t len);
const struct pbft_recovery_stats *pbft_replica_recovery_stats(const struct pbft_replica *r);

/* For the simulator's checkers: called after each executed batch. */
typedef void (*pbft_exec_hook)(void *arg, uint16_t replica, uint64_t seq, const uint8_t batch_digest[32]);
typedef void (*pbft_checkpoint_hook)(void *arg, uint16_t replica, uint64_t seq, const uint8_t state_digest[32]);
void pbft_replica_set_hooks(struct pbft_replica *r, pbft_exec_hook on_exec, pbft_checkpoint_hook on_checkpoint,
                            void *arg);

/* ---- Client ----------------------------------------------------------------- */

struct pbft_client_config {
    uint16_t group;
    uint16_t id;
    uint16_t n;
    uint16_t f;
    uint16_t lanes;                 /* requests in flight, 1..PBFT_LANES_MAX */
    uint16_t lane_base;             /* the client's lanes on the wire are lane_base ..
                                       lane_base + lanes - 1 (lane_base + lanes <=
                                       PBFT_LANES_MAX): several handles of one client
                                       id use disjoint runs (include/bftkv/client.h,
                                       "Sessions"); completions report lane - lane_base */
    uint64_t retransmit_timeout_ns; /* first retransmission; doubles up to 8x */
    uint64_t timestamp_base;        /* first timestamp - 1; the server runtime passes
                                       wall-clock ns so a restarted client keeps
                                       increasing timestamps */
    bool readonly_fast_path;        /* GETs try the read-only path first */
    bool stale_reads;               /* GETs read ONE replica's state, no ordering, no
                                       quorum: possibly stale, and wrong if that replica
                                       is faulty (docs/design.md §5.3, "Stale reads");
                                       never the default */
    uint32_t bugs;                  /* enum pbft_bug, tests only */
};

void pbft_client_config_defaults(struct pbft_client_config *cfg);

/* A completed operation, reported by pbft_client_step / pbft_client_submit. */
struct pbft_completion {
    uint16_t lane;
    uint8_t op;
    int status;           /* 0, BFTKV_E_NOT_FOUND, ... (the replicas' answer) */
    const uint8_t *value; /* GET: the value, valid until the next client call */
    uint32_t vlen;
    uint64_t timestamp;
};

struct pbft_client_stats {
    struct wire_drop_counters drops;
    uint64_t submitted;
    uint64_t completed;
    uint64_t retransmissions;
    uint64_t readonly_fallbacks;   /* fast path failed, retried through ordering ... */
    uint64_t readonly_timeouts;    /* ... of which after waiting the retransmission timeout */
    uint64_t replies_mismatched;   /* replies that disagreed with the accepted result */
    uint64_t replies_ignored;      /* for another client, an idle lane, another timestamp */
    uint64_t full_result_requests; /* f+1 (read-only: q) matching digests but no full result: asked everyone */
    /* The read-only path (docs/design.md §5.3, "The read-only path"): */
    uint64_t readonly_submitted;   /* GETs sent on the read-only path */
    uint64_t readonly_resends;     /* rounds that re-asked the replicas yet to answer */
    uint64_t readonly_retries;     /* new read-only rounds (fresh timestamp) instead of ordering */
    uint64_t readonly_stale_marks; /* replicas marked stale (consecutive disagreements) */
    uint64_t timestamps_issued;    /* last timestamp - timestamp_base (gaps included) */
    uint64_t requests_hedged;      /* ordered requests sent to every replica at once
                                      because many recent ones needed retransmission
                                      (a lossy network, docs/design.md §5.5.2) */
    uint64_t stale_submitted;      /* GETs sent as stale reads (stale_reads) ... */
    uint64_t stale_moves;          /* ... asks moved on to the next replica (no answer in
                                      time, or one that holds no state) */
};

struct pbft_client;

int pbft_client_create(const struct pbft_client_config *cfg, const struct auth_ctx *auth,
                       struct pbft_client **out);
void pbft_client_destroy(struct pbft_client *c);

/* A free lane id, or -1 when every lane has an operation in flight. */
int pbft_client_free_lane(const struct pbft_client *c);

/* Is (op, key, value) an operation a client may submit? 0, or BFTKV_E_INVAL (an
 * op that is not WIRE_OP_PUT/GET/DEL, a value on a GET or DEL, a NULL key or
 * value), BFTKV_E_KEY_EMPTY, BFTKV_E_KEY_TOO_LARGE or BFTKV_E_VALUE_TOO_LARGE.
 * pbft_client_submit checks it first; the client library checks it before it
 * queues an operation for its I/O thread. */
int pbft_request_check(uint8_t op, const void *key, size_t klen, const void *value, size_t vlen);

/* Start an operation on a free lane. Validates limits (BFTKV_E_KEY_TOO_LARGE,
 * BFTKV_E_VALUE_TOO_LARGE, BFTKV_E_KEY_EMPTY, BFTKV_E_FULL when no lane is free,
 * BFTKV_E_INVAL for a bad op); on success returns the lane and appends the REQUEST
 * to out (to the primary, or to every replica for read-only and large requests).
 * BFTKV_E_AGAIN: the outbox had no room; drain it and submit again. */
int pbft_client_submit(struct pbft_client *c, uint64_t now_ns, uint8_t op, const void *key, size_t klen,
                       const void *value, size_t vlen, struct pbft_out *out);

/* Deliver a message (raw bytes only: the client decodes and authenticates its
 * replies itself; decoded and authenticated stay NULL and false) or a tick.
 * Completed operations are written to done[] (at
 * most done_cap of them, the rest stay for the next call, and next_deadline is then
 * 0) and their number is returned; a completion's value points into the client and
 * stays valid until the next pbft_client_* call that is not const. Retransmissions
 * (and a read-only GET falling back to ordering) go to out; if out fills, the rest
 * are postponed, out->more is set and next_deadline is already due: drain the
 * outbox and tick again. */
uint32_t pbft_client_step(struct pbft_client *c, const struct pbft_event *ev, struct pbft_out *out,
                          struct pbft_completion *done, uint32_t done_cap);

/* The earliest time at which the client wants a tick (UINT64_MAX: none). */
uint64_t pbft_client_next_deadline(const struct pbft_client *c);
/* Same for a replica. */
uint64_t pbft_replica_next_deadline(const struct pbft_replica *r);

const struct pbft_client_stats *pbft_client_stats(const struct pbft_client *c);

/* The highest map epoch an authenticated REPLY to this client carried (0:
 * none; a single group's replies carry none), and in *replica (may be NULL)
 * the replica that sent it first. One replica's claim, never proof: a client
 * that acts on it fetches the map and checks the admin's signature
 * (docs/design.md §6.3). */
uint64_t pbft_client_epoch_seen(const struct pbft_client *c, uint16_t *replica);

/* Is replica marked stale at now_ns: its read-only answers disagreed with the
 * accepted value in consecutive reads, and it has neither agreed since nor been
 * quiet for the decay time (docs/design.md §5.3, "The read-only path")? */
bool pbft_client_replica_stale(const struct pbft_client *c, uint16_t replica, uint64_t now_ns);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_PBFT_H */
