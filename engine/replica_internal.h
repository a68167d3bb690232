/* The PBFT replica's internal state, shared by the files that implement it
 * (replica.c, request.c, request_pool.c, request_fetch.c, preprepare.c, prepare.c, commit.c, exec.c,
 * checkpoint.c, out.c; catch-up: catchup.c, statetransfer.c,
 * statetransfer_serve.c, with catchup.h).
 * Nothing outside engine/ includes this header: the contract with the simulator
 * and the server runtime is engine/pbft.h.
 *
 * Everything here is allocated once, in pbft_replica_create(), with the sizing
 * formula next to each pool; the step functions allocate only through the store
 * (engine/pbft.h says when). The log is a ring of L slots indexed by seq mod L and
 * keyed by (view, seq), which the view change (viewchange.c, newview.c) and state
 * transfer (statetransfer.c) use as it is (TOCS 2002 §4.4-§4.5, §5.3).
 */
#ifndef BFTKV_ENGINE_REPLICA_INTERNAL_H
#define BFTKV_ENGINE_REPLICA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/catchup.h"
#include "engine/out.h"
#include "engine/pbft.h"

/* Room the executor and the batcher leave in the outbox for the small protocol
 * messages (PREPARE, COMMIT, CHECKPOINT) that the same step may still emit: a
 * handful per step, each at most header + digest + a full authenticator (sized
 * for n = BFTKV_REPLICAS_MAX). A message that still finds no room (a caller that
 * did not reset the outbox) is counted in dropped_full, like a network loss. */
#define REPLICA_RESERVE_BYTES (8u * (WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + BFTKV_AUTHENTICATOR_MAX))
#define REPLICA_RESERVE_MSGS 16u

/* A result up to this size is kept in the reply cache; a larger one (a big GET)
 * keeps only its digest and is re-read on retransmission (exec.c). */
#define REPLICA_RC_RESULT_MAX 64u
/* The serialised form of one reply-cache entry inside its client's block hash:
 * lane, timestamp, status, result length, result digest. */
#define REPLICA_RC_ENTRY_WIRE (2u + 8u + 2u + 4u + BFTKV_DIGEST_SIZE)

/* Waits of watched requests kept for the view-change timeout (viewchange_timer.c). */
#define REPLICA_LAT_SAMPLES 64u

/* Statuses whose empty-result digest is cached (bftkv error codes are small). */
#define REPLICA_EMPTY_DIGESTS 32u

/* Smallest request that travels outside the PRE-PREPARE (header + body larger
 * than BFTKV_INLINE_REQUEST_MAX); sizes the large-request pool's index. */
#define REPLICA_LARGE_REQUEST_MIN (BFTKV_INLINE_REQUEST_MAX + 1u)

/* Largest REQUEST message: header, fixed body, key, value, authenticator. */
#define REPLICA_REQUEST_MAX                                                          \
    (WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED + BFTKV_KEY_MAX + BFTKV_VALUE_MAX + BFTKV_AUTHENTICATOR_MAX)

/* A FIFO byte ring: space is allocated at the newest end and released at the
 * oldest, in allocation order; a message never wraps (the end is skipped). */
struct replica_bytes {
    uint32_t cap;
    uint32_t start; /* first byte still in use */
    uint32_t end;   /* one past the newest allocation */
    uint32_t live;  /* allocations not yet released */
};

/* A (view, batch digest) pair of a slot's view-change memory. */
struct replica_viewchange_pq {
    uint64_t view;
    uint8_t digest[BFTKV_DIGEST_SIZE];
};

/* A VIEW-CHANGE kept by the replica (its own, or a peer's, signature checked). */
struct replica_view_change_msg {
    uint64_t view;
    uint32_t len;          /* 0: none */
    uint8_t digest[BFTKV_DIGEST_SIZE]; /* BLAKE2b-256 of the whole message */
    uint8_t *buf;          /* viewchange_cap bytes */
    struct wire_msg msg;   /* decoded, pointers into buf */
};

/* A watched request (TOCS 2002 §4.5.2): (client, lane) index, the timestamp
 * watched, and since when. */
struct replica_watch {
    uint64_t ts;
    uint64_t start_ns;
    uint32_t idx;
};

enum replica_nv_state {
    REPLICA_NV_NONE = 0,    /* no NEW-VIEW for `view` */
    REPLICA_NV_PENDING = 1, /* backup: a NEW-VIEW waits for VIEW-CHANGEs it names */
    REPLICA_NV_DONE = 2,    /* sent (primary) or accepted (backup): view active */
};

/* One slot of the log: everything the replica knows about sequence number seq in
 * view `view` (TOCS 2002 §4.2). PREPAREs and COMMITs that arrive before the
 * PRE-PREPARE are kept with their own digest and counted once D is known. */
struct replica_slot {
    uint64_t seq;        /* 0: never used; != the wanted seq: stale, reset on use */
    uint64_t view;
    uint8_t digest[BFTKV_DIGEST_SIZE]; /* D, valid when has_digest */
    bool has_digest;     /* a PRE-PREPARE (accepted or stalled) fixed D */
    bool has_pp;         /* pre-prepared: the PRE-PREPARE is accepted (or ours) */
    bool stalled;        /* the PRE-PREPARE waits for large requests (pool), or ... */
    bool unvouched;      /* ... for f matching PREPAREs: a client's MAC for us in it
                            fails (preprepare.c, pp_vouched) */
    bool prepared;
    bool committed;
    bool executed;
    bool sent_prepare;
    bool sent_commit;
    uint16_t prep_match;   /* PREPAREs matching D (bits in prep_bits) */
    uint16_t commit_match; /* COMMITs matching D, own included */
    uint16_t count;        /* requests in the batch */
    uint64_t prep_bits;    /* one bit per sender: n <= BFTKV_REPLICAS_MAX = 64 */
    uint64_t commit_bits;
    uint64_t repair_bits;  /* peers whose duplicate vote we answered (catchup.c) */
    uint8_t (*prep_digest)[BFTKV_DIGEST_SIZE];   /* n entries */
    uint8_t (*commit_digest)[BFTKV_DIGEST_SIZE]; /* n entries */
    uint8_t *pp;           /* the PRE-PREPARE message, pp_cap bytes */
    uint32_t pp_len;
    struct wire_msg pp_msg; /* its decoded form, pointers into pp */
    uint64_t retx_ns;      /* catch-up (catchup.c): next retransmission, 0 = unscheduled */
    uint8_t retx_shift;    /* its back-off (catchup.c, retransmit_scan) */
    /* View change (viewchange.c, newview.c; TOCS 2002 §4.5.1). What this seq was
     * prepared (P) and pre-prepared (Q) as in the views already left -- folded in
     * when a view is left, kept while the seq stays in the window, so P and Q
     * stay bounded -- and what the NEW-VIEW of the current view chose for it. */
    bool viewchange_p;             /* viewchange_pe: the latest view it prepared in, and D */
    uint8_t viewchange_nq;         /* entries of viewchange_q: distinct digests, latest view each */
    bool nv_fixed;         /* the current view's NEW-VIEW chose nv_digest here */
    bool nv_need;          /* primary: it lacks the chosen batch; backup: the
                              primary asked for it (WIRE_NV_NEED) */
    bool pool_refs;        /* the stored PRE-PREPARE holds references to its large
                              requests in the pool (released by execution) */
    bool nv_early;         /* pp holds a PRE-PREPARE of the view being moved to that
                              came before its NEW-VIEW (preprepare.c) */
    uint64_t persisted_pp_view;       /* durable (persist.c): view + 1 of the PRE-PREPARE
                                         recorded for this seq, 0 = none */
    uint64_t persisted_prepared_view; /* ... and of the PREPARED record */
    bool recover_commit;   /* recovery (recover.c): a COMMITTED record names this
                              batch; executed in order, then cleared */
    struct replica_viewchange_pq viewchange_pe;
    struct replica_viewchange_pq viewchange_q[WIRE_VIEW_CHANGE_Q_PER_SEQ];
    uint8_t nv_digest[BFTKV_DIGEST_SIZE];
};

/* Reply cache: the last reply per (client, lane) (TOCS 2002 §4.1: exactly-once
 * execution and retransmission of the last reply). */
struct replica_rc_entry {
    uint64_t timestamp;   /* last executed; 0: none */
    uint32_t result_len;
    int16_t status;
    uint8_t op;
    bool cached;          /* result[] holds the whole result */
    uint8_t digest[BFTKV_DIGEST_SIZE];
    uint8_t result[REPLICA_RC_RESULT_MAX];
};

/* A request waiting at the primary for a batch. */
struct replica_pending {
    uint64_t timestamp;
    uint32_t off;     /* INLINE: bytes in pend_buf */
    uint32_t len;
    uint32_t pool;    /* DIGEST: index of the pool entry that holds it */
    uint16_t client;
    uint16_t lane;
    uint8_t kind;     /* enum wire_entry_kind */
    bool dead;        /* a NEW-VIEW's batch holds it already: dropped, not batched */
};

/* The large-request pool stores requests in chunks of this many bytes, chained:
 * any free chunk serves any request, so whether a request fits depends only on
 * how many chunks are free or evictable, never on where the pinned ones lie. */
#define REPLICA_POOL_CHUNK 512u
/* Chunks of the largest request. */
#define REPLICA_POOL_REQUEST_CHUNKS ((REPLICA_REQUEST_MAX + REPLICA_POOL_CHUNK - 1u) / REPLICA_POOL_CHUNK)

/* Chunks a request of len bytes takes. */
static inline uint32_t replica_pool_chunks_of(uint32_t len)
{
    return (len + REPLICA_POOL_CHUNK - 1u) / REPLICA_POOL_CHUNK;
}

/* A large request (sent by the client to every replica; PRE-PREPAREs carry its
 * digest only). Pinned while refs > 0; otherwise on one of the unpinned lists:
 * held (executed in a batch above the last stable checkpoint: never evicted),
 * done (executed: evicted first) or the unpinned list proper, oldest first,
 * evictable (request_pool.c). */
struct replica_request_pool_entry {
    uint8_t digest[BFTKV_DIGEST_SIZE];
    uint64_t timestamp;
    uint64_t stored_ns; /* unpinned since: its age for eviction */
    uint32_t chunk;   /* first chunk in pool_buf; the rest follow pool_chunk_next */
    uint32_t len;
    uint32_t refs;    /* pending-queue entries and log slots that need it */
    uint32_t prev, next; /* unpinned list (live) or free list (next; not live) */
    uint16_t client;
    uint16_t lane;
    bool live;
    bool keep;        /* named by a stalled PRE-PREPARE in the window: not evictable
                         (set only during an eviction, replica_preprepare_stalled_keep) */
    bool done;        /* unpinned and executed (the reply cache has its timestamp):
                         on the held list while held_seq > h, else on the done
                         list, kept only to serve laggards (REQUEST fetch,
                         relays) and evicted before any other entry */
    bool held;        /* on the held list: part of the log above the last stable
                         checkpoint h, never evicted (request_pool.c) */
    uint64_t held_seq; /* the highest seq of an executed batch that names it (0: none) */
};

/* A read-only request parked until execution passes its target (docs/design.md §5). */
struct replica_ro {
    uint64_t target;
    uint64_t timestamp;
    uint16_t client;
    uint16_t lane;
    uint16_t klen;
    uint8_t rflags;
};

/* What the replica knows about one checkpoint seq in [h, h+L] (TOCS 2002 §4.3). */
struct replica_ckpt {
    uint64_t seq;        /* 0: unused */
    bool own_taken;
    bool stable;
    uint8_t own_digest[BFTKV_DIGEST_SIZE];
    uint64_t bits;       /* senders whose CHECKPOINT we hold (own included) */
    uint8_t (*digest)[BFTKV_DIGEST_SIZE]; /* n entries */
    uint8_t *msgs;       /* n signed messages of ckpt_msg_len bytes: the proof a
                            VIEW-CHANGE carries (viewchange.c) */
};

struct pbft_replica {
    struct pbft_replica_config cfg;
    const struct auth_ctx *auth;
    struct store *store;
    struct wire_limits limits;
    uint16_t quorum;     /* q = pbft_quorum(n, f) */
    uint32_t pp_cap;     /* bytes of one slot's PRE-PREPARE buffer */
    uint32_t ckpt_msg_len;

    uint64_t view;
    uint64_t next_seq;       /* primary: next sequence number to assign */
    uint64_t low;            /* h: last stable checkpoint */
    uint64_t last_executed;
    uint64_t max_prepared;   /* highest seq prepared here (read-only path) */
    uint64_t now_ns;

    /* The log: L slots, slot of seq = seq mod L. */
    struct replica_slot *slots;
    uint32_t stalled;        /* slots with a stalled PRE-PREPARE */
    uint64_t stall_retry_ns; /* next tick retry of stalled PRE-PREPAREs */

    /* Execution position, kept across pbft_replica_resume(). */
    bool exec_active;        /* inside the batch of seq last_executed + 1 */
    uint32_t exec_off;       /* wire_batch_next cursor */
    uint16_t exec_index;
    /* The hashes of the batch's keys, computed by the prefetch pass before its
     * first request executes (exec.c): BFTKV_BATCH_REQUESTS_MAX of them. */
    struct store_key_hint *exec_hints;
    bool resume_needed;      /* the last step stopped with out->more */
    /* The message being handled, while this step handles one whose own
     * authentication the caller verified (pbft.h, struct pbft_event); NULL
     * otherwise. Only replica_msg_authentic reads it. */
    const struct wire_msg *rx_authentic;

    /* Reply cache: clients * lanes entries, block hashes for the digest. */
    struct replica_rc_entry *rc;
    uint32_t rc_entries;
    uint32_t rc_blocks;                       /* one per client id (exec.c) */
    uint8_t *rc_dirty;                        /* rc_blocks flags */
    uint8_t *rc_used;                         /* rc_blocks flags: some lane executed */
    uint8_t (*rc_block_hash)[BFTKV_DIGEST_SIZE];
    uint8_t *rc_scratch;                      /* lanes * REPLICA_RC_ENTRY_WIRE */

    /* Highest timestamp per (client, lane) queued or ordered here: the primary's
     * dedupe of retransmissions, a backup's "already ordered, don't forward". */
    uint64_t *seen_ts;

    /* Primary: pending requests, FIFO; inline bytes in a byte ring. */
    struct replica_pending *pend;
    uint32_t pend_cap, pend_head, pend_count;
    uint32_t pend_inline_bytes; /* INLINE entries' bytes (the batch policy, preprepare.c) */
    uint8_t *pend_buf;
    struct replica_bytes pend_ring;

    /* Large requests (request_pool.c; sizes and invariant at replica_request_pool_create):
     * descriptors, chained chunks, a hash index by digest. Iterate the live
     * entries with replica_request_pool_next(). */
    struct replica_request_pool_entry *pool;
    uint32_t pool_cap;          /* descriptors */
    uint32_t pool_free;         /* free descriptors, chained by next */
    uint32_t pool_old, pool_new; /* unpinned live entries, oldest to newest */
    uint32_t pool_done_old, pool_done_new; /* the done entries, oldest to newest */
    uint32_t pool_held_old, pool_held_new; /* the held entries, by held_seq */
    uint8_t *pool_buf;          /* pool_chunks * REPLICA_POOL_CHUNK bytes */
    uint32_t *pool_chunk_next;  /* per chunk: the next of its request, or of the free list */
    uint32_t pool_chunks;       /* C = L*B + Q + R (replica_request_pool_create) */
    uint32_t pool_chunk_free;   /* first free chunk (once used) */
    uint32_t pool_chunk_fresh;  /* chunks from here on were never used: free too */
    uint32_t pool_fresh;        /* descriptors from here on were never used: free too */
    uint32_t pool_chunks_free;
    uint32_t pool_chunks_unpinned; /* chunks of unpinned live entries */
    uint32_t pool_chunks_held;  /* of those, the held ones' */
    uint32_t pool_slot_chunks;  /* sum over log-slot references of their entry's chunks */
    uint32_t pool_pend_chunks;  /* the same over pending-queue references */
    uint32_t pool_batch_chunks; /* B: chunks one batch may name (all its DIGEST entries) */
    uint32_t pool_window;       /* batches above last_executed that may hold references */
    uint32_t pool_queue_chunks; /* Q: most the primary's pending queue may pin */
    uint8_t *pool_scratch;      /* REPLICA_REQUEST_MAX: a chained request made contiguous */
    uint64_t pool_retry_exec;   /* last_executed when stalled PRE-PREPAREs were retried
                                   for the window (replica_progress) */
    uint64_t pool_relay_seq;    /* the last seq whose requests were relayed */
    uint32_t pool_relay_off;    /* resuming inside seq pool_relay_seq + 1: next entry */
    uint16_t pool_relay_to;     /* ... and next replica for it */
    uint32_t *pool_index;       /* open addressing: entry index + 1, 0 = empty */
    uint32_t pool_index_mask;
    uint32_t pool_index_used;   /* cells in use: one per live entry */

    /* Read-only requests parked until execution passes their target. */
    struct replica_ro *ro;
    uint8_t *ro_keys;        /* ro_cap * BFTKV_KEY_MAX */
    uint32_t ro_cap, ro_head, ro_count;

    /* Checkpoints for seq in [h, h+L]: L/K + 1 records. */
    struct replica_ckpt *ckpts;
    uint32_t ckpt_count;

    uint8_t *value_buf;      /* GET scratch: BFTKV_VALUE_MAX bytes */

    /* Digests of the empty result per status 0, -1, ..., -(REPLICA_EMPTY_DIGESTS-1),
     * computed on first use: every PUT and DEL reply carries one, and a BLAKE2b
     * call costs about as much as the rest of the reply. */
    uint8_t empty_digest[REPLICA_EMPTY_DIGESTS][BFTKV_DIGEST_SIZE];
    uint32_t empty_digest_known; /* bit per status */

    pbft_exec_hook on_exec;
    pbft_checkpoint_hook on_checkpoint;
    void *hook_arg;

    struct pbft_replica_stats stats;

    /* Catch-up: retransmission, STATUS, snapshots, state transfer (catchup.h). */
    struct replica_catchup cu;
    struct replica_xfer xfer;

    /* View change (viewchange.c, newview.c; TOCS 2002 §4.4-§4.5). */
    bool view_active;          /* in the normal case of `view`; false: moving to it */
    bool unsure;               /* restarted with empty memory and not yet vouched
                                  for: takes no part in ordering (catchup.c) */
    uint64_t viewchange_timeout_ns;    /* the current timeout: T, doubled per failed view
                                  change, halved (down to T) once a new view
                                  executes */
    bool viewchange_progress;          /* a batch executed since the view was entered */
    uint64_t viewchange_deadline_ns;   /* the running wait for a NEW-VIEW (0: not started) */
    uint64_t viewchange_resend_ns;     /* next retransmission of our VIEW-CHANGE */
    uint64_t view_start_ns;    /* request timers run from here at the earliest ... */
    uint64_t behind_ns;        /* ... and from the last tick that found us behind */
    uint32_t viewchange_cap;           /* bytes of one VIEW-CHANGE buffer */
    struct replica_view_change_msg *viewchange_cur;  /* n: each sender's VIEW-CHANGE for `view` */
    struct replica_view_change_msg *viewchange_next; /* n: each sender's highest one above `view` */
    uint64_t *viewchange_answer_ns;    /* n: next time a sender's retransmission is answered */
    uint64_t *rejoin_next_ns;  /* n: no step-down for this sender before (viewchange_rejoin.c) */
    uint8_t *rejoin_shift;     /* n: its back-off */
    struct wire_view_change_entry *viewchange_entries; /* encoder scratch: L/K + 1 + 3L entries */
    uint8_t *nv_buf;           /* the NEW-VIEW of `view`: sent, pending or accepted */
    uint32_t nv_cap, nv_len;
    uint8_t nv_state;          /* enum replica_nv_state */
    uint64_t nv_h;             /* the NEW-VIEW's checkpoint: choice i is seq nv_h+1+i */
    uint64_t nv_max;           /* highest seq the NEW-VIEW chose a batch for */
    uint64_t nv_marked;        /* chosen seqs up to here have nv_fixed in their slot
                                  (the rest were beyond the window) */
    uint64_t nv_cursor;        /* first chosen seq not yet proposed (primary) or
                                  offered to the primary (backup) */
    bool nv_work;              /* nv_cursor has work that may now succeed */
    uint8_t (*nv_choice)[BFTKV_DIGEST_SIZE]; /* L: the choice (scratch until the
                                                view is entered) */
    uint8_t *nv_xflags;        /* L: its WIRE_NV_NEED flags */
    const struct wire_msg **nv_set; /* n: the VIEW-CHANGEs of a selection */
    uint32_t *nv_pcur, *nv_qcur;    /* n: selection cursors into P and Q */
    /* Request timers: watched requests, FIFO by start time. */
    uint64_t *watch_ts;        /* clients * lanes: highest timestamp watched */
    struct replica_watch *watch;
    uint32_t watch_cap, watch_head, watch_count;
    uint64_t watch_exec;       /* last_executed when the watches were last trimmed */
    uint64_t persist_stable_seq; /* durable: a stable checkpoint not yet recorded (0: none) */
    bool persist_holds_pending;  /* durable: the HOLDS_STATE record of `unsure` is due */
    bool persist_nv_pending;     /* durable: the NEW-VIEW (nv_buf) of this view is not yet recorded */
    uint64_t persisted_vc_view;  /* durable: view + 1 of its own VIEW-CHANGE last recorded */
    uint64_t persisted_nv_view;  /* durable: view + 1 of the NEW-VIEW last recorded */
    /* Recovery from the records (recover.c): what it rebuilt, and whether it hit
     * a state it could not execute to (then it rejoins unsure). */
    struct pbft_recovery_stats recovery;
    bool recovery_gap;
    bool recovery_done;
    bool recovery_snapshot;      /* a snapshot is being restored (recover.c) */
    bool recovery_unsure;        /* the last HOLDS_STATE record said 0 (recover.c) */
    uint64_t watch_compact_at; /* stats.requests_executed before which a full FIFO is
                                  not compacted again (viewchange_timer.c) */
    uint64_t *watch_start_ns;  /* clients * lanes: 1 + since when its watch waits
                                  (0: none, or sampled) */
    /* The recent waits of watched requests (viewchange_timer.c). */
    uint64_t lat_ring[REPLICA_LAT_SAMPLES];
    uint32_t lat_next;
    uint64_t lat_max_ns;       /* the largest of lat_ring */
    uint64_t fit_off_view;     /* view + 1 of a view whose primary sent a message
                                  that fails its checks: no fitted timeout in it */

    /* Request fetch (request_fetch.c; TOCS 2002 §4.2: a backup that lacks a
     * request named by a PRE-PREPARE it holds asks a replica that has it). */
    uint64_t rf_ns;            /* next round of REQUEST fetches (0: none due) */
    uint64_t rf_seq;           /* the lowest stalled seq when the back-off began */
    uint8_t rf_shift;          /* back-off: a round every R << rf_shift */
    uint32_t rf_turn;          /* rounds so far: rotates the replica asked */
};

/* The high watermark H = h + L: the log holds the sequence numbers h < n <= H
 * (TOCS 2002 §4.2). */
static inline uint64_t replica_high(const struct pbft_replica *r)
{
    return r->low + r->cfg.log_window;
}

static inline bool replica_in_window(const struct pbft_replica *r, uint64_t seq)
{
    return seq > r->low && seq <= replica_high(r);
}

/* ---- replica.c ---------------------------------------------------------------- */
uint16_t replica_primary_of(const struct pbft_replica *r, uint64_t view);
bool replica_is_primary(const struct pbft_replica *r);
/* Does this replica vote? Not while it is unsure of its state: a replica
 * restarted with empty memory sends no PRE-PREPARE, PREPARE, COMMIT,
 * CHECKPOINT, VIEW-CHANGE or NEW-VIEW until q replicas holding state vouch
 * for what it holds (catchup.c, docs/design.md "Restarts"). */
static inline bool replica_votes(const struct pbft_replica *r)
{
    return !r->unsure;
}
/* A peer's STATUS said it holds state (or not), with its stable checkpoint:
 * the unsure replica becomes sure once q such peers are at or below it, and
 * then casts the votes it held back (replica_prepare_votes_resume). */
void replica_catchup_sure_check(struct pbft_replica *r, struct pbft_out *out);
/* The votes a replica held back while unsure, for the slots of its view that
 * it pre-prepared meanwhile: PREPARE, and COMMIT where prepared (prepare.c). */
void replica_prepare_votes_resume(struct pbft_replica *r, struct pbft_out *out);
void replica_prepare_own(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
/* Answer a request with BFTKV_E_NO_STATE (an unsure replica; exec.c). */
void replica_exec_reply_no_state(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* The slot for seq (h < seq <= h + L), reset when it held an older seq. */
struct replica_slot *replica_slot_get(struct pbft_replica *r, uint64_t seq);
/* The slot of seq if it holds seq, else NULL. */
struct replica_slot *replica_slot_find(struct pbft_replica *r, uint64_t seq);
/* The next entry of a slot's batch from *off that names its request by digest
 * (a large request, held in the pool); false at the end of the batch. */
bool replica_slot_digest_next(const struct replica_slot *s, uint32_t *off, const uint8_t **digest);
/* Release the pool references a slot's stored PRE-PREPARE holds (no-op without). */
void replica_slot_release(struct pbft_replica *r, struct replica_slot *s);
void replica_drop(struct pbft_replica *r, enum wire_drop reason);
/* The one check of a received message's own authentication, which every
 * handler makes after its cheaper filters (TOCS 2002 §4.2): the MAC for us in
 * its authenticator, or the sender's signature on CHECKPOINT, VIEW-CHANGE and
 * NEW-VIEW. true without checking when m is the message of this step and the
 * caller verified it (pbft.h, struct pbft_event); false with BAD_AUTH counted
 * when it does not verify. Messages carried inside m (inlined requests,
 * CHECKPOINTs of a proof) are checked by their handlers with auth.h. */
bool replica_msg_authentic(struct pbft_replica *r, const struct wire_msg *m);
/* The preamble of a message only a peer sends: from another replica (else
 * BAD_SENDER) and authentic (replica_msg_authentic, else BAD_AUTH). */
bool replica_msg_from_peer(struct pbft_replica *r, const struct wire_msg *m);
/* Work that follows any state change: execute, answer parked reads, batch. */
void replica_progress(struct pbft_replica *r, struct pbft_out *out);

/* ---- request.c: REQUEST receipt, pending queue ---- */
void replica_request_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Queue a small request (inline) without the primary's dedupe; false when full. */
bool replica_request_pending_store(struct pbft_replica *r, const struct wire_msg *m);
/* Queue a large request of the pool (referenced); false when full. */
bool replica_request_pending_store_pooled(struct pbft_replica *r, uint32_t idx);
/* Drop executed requests from the front of the queue. */
void replica_request_pending_trim(struct pbft_replica *r);
bool replica_request_pending_empty(const struct pbft_replica *r);
const struct replica_pending *replica_request_pending_front(const struct pbft_replica *r);
void replica_request_pending_pop(struct pbft_replica *r);
const uint8_t *replica_request_pending_bytes(const struct pbft_replica *r, const struct replica_pending *p);

/* ---- request_pool.c: the large-request pool ---- */
/* Allocation (pbft_replica_create / destroy). */
bool replica_request_pool_create(struct pbft_replica *r);
void replica_request_pool_destroy(struct pbft_replica *r);
/* Store a large request the pool lacks (its digest: wire_request_digest),
 * evicting by the rules at replica_request_pool_create; wanted: a stalled
 * PRE-PREPARE in the window names it. The entry, or UINT32_MAX when refused. */
uint32_t replica_request_pool_store(struct pbft_replica *r, const struct wire_msg *m,
                                    const uint8_t digest[BFTKV_DIGEST_SIZE], bool wanted);
/* A pending-queue entry's reference (the primary's queue; replica_request_pending_pop
 * hands it to whoever pops the entry, as a slot reference). */
void replica_request_pool_pend_ref(struct pbft_replica *r, uint32_t idx);
/* A large request a durable replica's record holds (recover.c): stored unpinned
 * unless the pool has it; its entry, or UINT32_MAX when there is no room. */
uint32_t replica_request_pool_restore(struct pbft_replica *r, const struct wire_msg *m);
/* Find by request digest (UINT32_MAX when absent). */
uint32_t replica_request_pool_find(const struct pbft_replica *r, const uint8_t digest[BFTKV_DIGEST_SIZE]);
/* The live entry after idx in index order (UINT32_MAX: none); start with UINT32_MAX. */
uint32_t replica_request_pool_next(const struct pbft_replica *r, uint32_t idx);
/* An entry's request, contiguous; valid until the next call (it may be copied
 * into pool_scratch). */
/* Are entry idx's bytes one run in the pool (replica_request_pool_bytes then points
 * into the pool, not into a scratch copy the next call overwrites)? */
bool replica_request_pool_contiguous(const struct pbft_replica *r, uint32_t idx);
const uint8_t *replica_request_pool_bytes(struct pbft_replica *r, uint32_t idx);
/* A log slot's reference to a request its batch names by digest, per DIGEST
 * entry: taken on acceptance (only within pool_window above last_executed, see
 * preprepare.c), released by execution or when the slot's PRE-PREPARE is
 * discarded. The last release moves an executed request to the held or done
 * list; an unexecuted one goes back to the unpinned list. */
void replica_request_pool_ref(struct pbft_replica *r, uint32_t idx);
void replica_request_pool_unref(struct pbft_replica *r, uint32_t idx);
/* The release by execution of the batch at seq: the request is held (never
 * evicted) until a stable checkpoint covers seq. */
void replica_request_pool_unref_executed(struct pbft_replica *r, uint32_t idx, uint64_t seq);
/* h moved (a stable checkpoint): the held requests it covers become evictable. */
void replica_request_pool_low_moved(struct pbft_replica *r);
/* Chunks the entry's request occupies (its charge against pool_batch_chunks). */
uint32_t replica_request_pool_entry_chunks(const struct pbft_replica *r, uint32_t idx);
/* Before execution: relay the large requests of the committed batches about to
 * execute to the replicas that neither prepared nor committed them. false when
 * it stopped for outbox room (the step resumes; execution must wait). */
bool replica_request_pool_relay(struct pbft_replica *r, struct pbft_out *out);
/* Relay the large requests of one slot the same way, best effort (false: no
 * room): for the primary's retransmission of an uncommitted PRE-PREPARE. */
bool replica_request_pool_relay_slot(struct pbft_replica *r, const struct replica_slot *s, struct pbft_out *out);

/* ---- request_fetch.c: REQUEST-FETCH ----------------------------------------------
 * A stalled backup asks replicas that should hold them for the
 * large requests its stalled PRE-PREPAREs lack (on the tick, backing off), and
 * any replica serves one from its pool (a FETCH with part WIRE_PART_REQUEST). */
void replica_request_fetch_tick(struct pbft_replica *r, struct pbft_out *out);
/* After every step: start the fetch timer when a stall began, stop it when none is left. */
void replica_request_fetch_arm(struct pbft_replica *r);
uint64_t replica_request_fetch_deadline(const struct pbft_replica *r);
void replica_request_fetch_serve(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);

/* ---- preprepare.c (TOCS 2002 §4.2) --------------------------------------------- */
void replica_preprepare_batch_try(struct pbft_replica *r, struct pbft_out *out);
/* Send the PRE-PREPARE of len bytes just encoded at the outbox tail and copied
 * into s->pp, after its records (a durable replica): committed in place, or
 * copied from s->pp when copied records took the tail. */
void replica_preprepare_send_own(struct pbft_replica *r, struct replica_slot *s, size_t len, struct pbft_out *out);
void replica_preprepare_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_preprepare_stalled_retry(struct pbft_replica *r, struct pbft_out *out);
/* A matching vote came for s: accept its unvouched PRE-PREPARE if it is vouched for now. */
void replica_preprepare_vouch(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
/* On entering a view by its NEW-VIEW: accept the PRE-PREPAREs of that view that
 * came before it (kept in their slots, nv_early). */
void replica_preprepare_early_accept(struct pbft_replica *r, struct pbft_out *out);
/* Every entry of a decoded PRE-PREPARE names a configured lane, a timestamp
 * above 0 and an allowed client (what execution relies on). */
bool replica_preprepare_fields_ok(const struct pbft_replica *r, const struct wire_msg *pp);
/* Does a stalled PRE-PREPARE within pool_window above last_executed name this
 * request digest (a large request the pool must make room for)? */
bool replica_preprepare_stalled_wants(const struct pbft_replica *r, const uint8_t digest[BFTKV_DIGEST_SIZE]);
/* Set (keep) or clear the keep flag of the pool entries that stalled PRE-PREPAREs
 * within the pool window name; returns the chunks newly set. */
uint32_t replica_preprepare_stalled_keep(struct pbft_replica *r, bool keep);

/* ---- prepare.c / commit.c (TOCS 2002 §4.2) ------------------------------------- */
void replica_prepare_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Recount PREPAREs/COMMITs against D and advance prepared/committed. */
void replica_prepare_recount(struct pbft_replica *r, struct replica_slot *s);
void replica_prepare_check(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
void replica_commit_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_commit_recount(struct pbft_replica *r, struct replica_slot *s);
void replica_commit_check(struct pbft_replica *r, struct replica_slot *s);
/* Multicast PREPARE or COMMIT(v, n, D, i) (not with n = 1: nobody to tell). */
void replica_prepare_vote_send(struct pbft_replica *r, uint8_t type, uint64_t seq, const uint8_t *digest,
                       struct pbft_out *out);
/* Record the first PREPARE or COMMIT (m) of its sender for slot s in that
 * phase's set (bits, digests, match): true when it is new and matches the slot's
 * D, so the phase's certificate may now be complete. A second vote of the same
 * sender is answered with ours (replica_catchup_repair_answer, catchup.c). */
bool replica_prepare_vote_record(struct pbft_replica *r, struct replica_slot *s, const struct wire_msg *m,
                                 uint64_t *bits, uint8_t (*digests)[BFTKV_DIGEST_SIZE], uint16_t *match,
                                 struct pbft_out *out);
/* Does a sender's digest count for D (PBFT_BUG_IGNORE_DIGEST counts any)? Inline:
 * the recounts and the invariant check (invariants.c) call it per vote bit. */
static inline bool replica_prepare_digest_counts(const struct pbft_replica *r, const uint8_t *d, const uint8_t *D)
{
    if (r->cfg.bugs & PBFT_BUG_IGNORE_DIGEST)
        return true;
    return memcmp(d, D, BFTKV_DIGEST_SIZE) == 0;
}

/* ---- exec.c: execution, reply cache, read-only path ----------------------------- */
/* Execute committed batches in order; false when it stopped for outbox room. */
bool replica_exec_run(struct pbft_replica *r, struct pbft_out *out);
/* Answer a retransmitted request from the reply cache (ts == last executed). */
void replica_exec_reply_resend(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_exec_readonly_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Answer parked read-only requests whose target is executed; false when out of room. */
bool replica_exec_readonly_drain(struct pbft_replica *r, struct pbft_out *out);
const struct replica_rc_entry *replica_exec_rc_lookup(const struct pbft_replica *r, uint16_t client, uint16_t lane);
/* The reply-cache part of the state digest (rehashes dirty blocks). */
void replica_exec_rc_digest(struct pbft_replica *r, uint8_t out[BFTKV_DIGEST_SIZE]);

/* ---- checkpoint.c (TOCS 2002 §4.3) ---------------------------------------------- */
void replica_checkpoint_take(struct pbft_replica *r, uint64_t seq, struct pbft_out *out);
void replica_checkpoint_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);

/* Catch-up hooks of checkpoint.c: the state of a checkpoint just taken is kept
 * for serving (statetransfer.c); stability releases the older ones. Adopting a
 * fetched checkpoint makes it stable with its proof (bits: senders in proof). */
void replica_checkpoint_adopt(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE],
                              const uint8_t *proof, uint64_t bits);
/* Our own checkpoint c (taken, at or below last_executed) is the one a NEW-VIEW
 * chose: stable by that choice (TOCS 2002 §4.4), h moves to it. No record: the
 * NEW-VIEW's is its proof (newview.c, recover.c). */
void replica_checkpoint_stable_by_view(struct pbft_replica *r, struct replica_ckpt *c);

/* ---- catchup.c: retransmission and STATUS (TOCS 2002 §5.2) ------------------------- */
void replica_status_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* A peer's duplicate vote for slot s, which we committed: answer it with ours. */
void replica_catchup_repair_answer(struct pbft_replica *r, struct replica_slot *s, uint16_t to, struct pbft_out *out);
/* A normal-case message of another view than ours: tell an older sender our
 * view, or ask everyone for theirs when the sender is ahead (rate-limited). */
void replica_catchup_view_mismatch(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Multicast STATUS(v, h, last_executed, max seq seen) now. */
void replica_catchup_status_send(struct pbft_replica *r, struct pbft_out *out);
/* The catch-up timers: retransmission, STATUS, state-transfer chunk timeout. */
void replica_catchup_tick(struct pbft_replica *r, struct pbft_out *out);
/* A correct replica provably executed beyond our last executed seq (catchup.c). */
bool replica_catchup_behind(const struct pbft_replica *r);
uint64_t replica_catchup_deadline(const struct pbft_replica *r);

/* ---- statetransfer.c: fetching a checkpoint's state (TOCS 2002 §5.3, §6.2) ------- */
bool replica_statetransfer_create(struct pbft_replica *r);
void replica_statetransfer_destroy(struct pbft_replica *r);
void replica_state_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Fetch the state of checkpoint (seq, digest), known to be stable (a NEW-VIEW's
 * chosen checkpoint above last_executed, TOCS 2002 §4.5.2): starts at once,
 * replacing a transfer of a lower checkpoint. No-op when seq <= last_executed. */
void replica_statetransfer_start(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE]);
/* Timers of the transfer and starting one for a proven checkpoint (catchup.c's tick). */
void replica_statetransfer_tick(struct pbft_replica *r, struct pbft_out *out);

/* A snapshot file's state (recover.c): begin with the checkpoint and its proof
 * (n slots of WIRE_CHECKPOINT_MSG_SIZE, bits: the senders in it), restore each
 * chunk (0, BFTKV_E_CORRUPT, BFTKV_E_NOMEM), then end: 0 once the state matches
 * the signed digest and is installed (h = last_executed = seq), else
 * BFTKV_E_CORRUPT with nothing changed. */
void replica_statetransfer_restore_begin(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE],
                                         uint64_t bits, const uint8_t *proof);
int replica_statetransfer_restore_chunk(struct pbft_replica *r, const struct wire_state *st);
int replica_statetransfer_restore_end(struct pbft_replica *r);

/* ---- statetransfer_serve.c: serving it (TOCS 2002 §5.3) ----------------------------- */
/* Keep / release the states of own checkpoints (called by checkpoint.c). */
void replica_statetransfer_snapshot_take(struct pbft_replica *r, uint64_t seq, const uint8_t digest[BFTKV_DIGEST_SIZE]);
void replica_statetransfer_snapshots_release_below(struct pbft_replica *r, uint64_t seq);
void replica_fetch_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* The stable checkpoint proof of h for a replica below h (catchup.c). */
void replica_statetransfer_proof_send(struct pbft_replica *r, uint16_t to, struct pbft_out *out);

/* ---- viewchange.c, newview.c: view change (TOCS 2002 §4.4-§4.5) ------------------
 * Normal-case messages are accepted only while view_active; a PRE-PREPARE for a
 * seq with nv_fixed must carry nv_digest. */
bool replica_viewchange_create(struct pbft_replica *r);
void replica_viewchange_destroy(struct pbft_replica *r);
void replica_view_change_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_new_view_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* A PRE-PREPARE of an older view: at the new primary, the batch of a chosen seq
 * it asked for (WIRE_NV_NEED); ignored otherwise (dropped_stale). */
void replica_newview_batch_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Request timer, NEW-VIEW timer, VIEW-CHANGE retransmission. */
void replica_viewchange_tick(struct pbft_replica *r, struct pbft_out *out);
uint64_t replica_viewchange_deadline(const struct pbft_replica *r);
/* A valid, not yet executed, non-read-only request reached a replica that is not
 * the active primary: watch it, and keep a small one for the next primary.
 * true when it was not watched before (a backup relays it to the primary then). */
bool replica_viewchange_watch_request(struct pbft_replica *r, const struct wire_msg *m);
/* Execution of (client, lane) index idx at timestamp ts: a watched request's
 * wait becomes a sample of the view-change timeout (viewchange_timer.c). */
void replica_viewchange_watch_executed(struct pbft_replica *r, uint32_t idx, uint64_t ts);
/* The primary of our view sent something a correct primary never sends (a bad
 * authenticator, a batch with a request that fails its client's MAC): no fitted
 * timeout for the rest of this view (viewchange_timer.c). */
void replica_viewchange_primary_misbehaved(struct pbft_replica *r);
/* The view-change timeout in force (viewchange_timer.c). */
uint64_t replica_viewchange_timeout(const struct pbft_replica *r);
/* In replica_progress, after execution: trim executed watches; the new primary's
 * PRE-PREPAREs of chosen batches; a backup's batches the primary asked for.
 * false when it stopped for outbox room (the step resumes). */
bool replica_viewchange_progress(struct pbft_replica *r, struct pbft_out *out);
/* Move to view v, learnt from f+1 peers (catch-up: a restarted replica finds
 * the group's view), by joining the view change to v: this replica's
 * VIEW-CHANGE(v) goes out at the next tick (the deadline is now). If v is active
 * at the others, v's primary answers it with the NEW-VIEW, the VIEW-CHANGEs that
 * NEW-VIEW names and its PRE-PREPAREs of v, and this replica checks and enters v
 * like any backup (so it knows the choice; a chosen checkpoint above its
 * execution starts state transfer). If v is still being changed to, its
 * VIEW-CHANGE helps. Returns false and changes nothing when v is not above the
 * current view (the one active, or being moved to) or when this replica is v's
 * primary (it would have to know v's NEW-VIEW: the others time out and it joins
 * the next view on their VIEW-CHANGEs). */
bool replica_viewchange_enter(struct pbft_replica *r, uint64_t v);

/* ---- Records of a durable replica (persist.c; pbft.h "Ordering contract") ---------------
 * Each lists what the next message depends on, once per slot and view; false when
 * the outbox had no entry free (counted in dropped_full): the message then waits. */
bool replica_persist_preprepare(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
bool replica_persist_prepared(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
bool replica_persist_committed(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
bool replica_persist_message(struct pbft_replica *r, enum pbft_persist kind, const uint8_t *msg, size_t len,
                             struct pbft_out *out);
/* The stable checkpoint persist_stable_seq names, if any (at the end of a step,
 * and before any other record); false while it waits for outbox room. */
bool replica_persist_stable(struct pbft_replica *r, struct pbft_out *out);
/* The records still pending (stable checkpoint, NEW-VIEW), if any; false while
 * one is. */
bool replica_persist_flush(struct pbft_replica *r, struct pbft_out *out);
/* Outbox entries a PRE-PREPARE's records may take (0 unless durable). */
uint32_t replica_persist_msgs(const struct pbft_replica *r);

#endif /* BFTKV_ENGINE_REPLICA_INTERNAL_H */
