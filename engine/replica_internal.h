/* The PBFT replica's internal state, shared by the files that implement it
 * (replica.c, replica_request.c, preprepare.c, prepare.c, commit.c, exec.c,
 * checkpoint.c, out.c). Nothing outside engine/ includes this header: the
 * contract with the simulator and the server runtime is engine/pbft.h.
 *
 * Everything here is allocated once, in pbft_replica_create(), with the sizing
 * formula next to each pool; the step functions never allocate. The log is a ring
 * of L slots indexed by seq mod L and keyed by (view, seq), so the view change and
 * state transfer of the next issue can reuse it as it is (TOCS 2002 §4.4-§4.5).
 */
#ifndef BFTKV_ENGINE_REPLICA_INTERNAL_H
#define BFTKV_ENGINE_REPLICA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pbft.h"

/* Room the executor and the batcher leave in the outbox for the small protocol
 * messages (PREPARE, COMMIT, CHECKPOINT) that the same step may still emit: a
 * handful per step, each at most header + digest + a full authenticator (sized
 * for n = BFTKV_REPLICAS_MAX). A message that still finds no room (a caller that
 * did not reset the outbox) is counted in dropped_full, like a network loss. */
#define REPLICA_RESERVE_BYTES (8u * (WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + BFTKV_AUTHENTICATOR_MAX))
#define REPLICA_RESERVE_MSGS 16u

/* Reply-cache entries hashed together into one block hash (DESIGN §3: the state
 * digest costs O(changes)): a checkpoint rehashes only the dirty blocks. */
#define REPLICA_RC_BLOCK 64u
/* A result up to this size is kept in the reply cache; a larger one (a big GET)
 * keeps only its digest and is re-read on retransmission (exec.c). */
#define REPLICA_RC_RESULT_MAX 64u
/* The serialised form of one reply-cache entry inside a block hash. */
#define REPLICA_RC_ENTRY_WIRE (8u + 2u + 4u + BFTKV_DIGEST_SIZE)

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

/* One slot of the log: everything the replica knows about sequence number seq in
 * view `view` (TOCS 2002 §4.2). PREPAREs and COMMITs that arrive before the
 * PRE-PREPARE are kept with their own digest and counted once D is known. */
struct replica_slot {
    uint64_t seq;        /* 0: never used; != the wanted seq: stale, reset on use */
    uint64_t view;
    uint8_t digest[BFTKV_DIGEST_SIZE]; /* D, valid when has_digest */
    bool has_digest;     /* a PRE-PREPARE (accepted or stalled) fixed D */
    bool has_pp;         /* pre-prepared: the PRE-PREPARE is accepted (or ours) */
    bool stalled;        /* the PRE-PREPARE waits for large requests (pool) */
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
    uint8_t (*prep_digest)[BFTKV_DIGEST_SIZE];   /* n entries */
    uint8_t (*commit_digest)[BFTKV_DIGEST_SIZE]; /* n entries */
    uint8_t *pp;           /* the PRE-PREPARE message, pp_cap bytes */
    uint32_t pp_len;
    struct wire_msg pp_msg; /* its decoded form, pointers into pp */
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
};

/* A large request (sent by the client to every replica; PRE-PREPAREs carry its
 * digest only). */
struct replica_pool_entry {
    uint8_t digest[BFTKV_DIGEST_SIZE];
    uint64_t timestamp;
    uint32_t off;     /* in pool_buf */
    uint32_t len;
    uint32_t refs;    /* pending-queue entries and log slots that need it */
    uint16_t client;
    uint16_t lane;
    bool live;
};

/* A read-only request parked until execution passes its target (DESIGN §3). */
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
    uint8_t *msgs;       /* n signed messages of ckpt_msg_len bytes: the proof the
                            view change of the next issue sends along */
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
    bool resume_needed;      /* the last step stopped with out->more */

    /* Reply cache: clients * lanes entries, block hashes for the digest. */
    struct replica_rc_entry *rc;
    uint32_t rc_entries;
    uint32_t rc_blocks;
    uint8_t *rc_dirty;                        /* rc_blocks flags */
    uint8_t (*rc_block_hash)[BFTKV_DIGEST_SIZE];
    uint8_t *rc_scratch;                      /* REPLICA_RC_BLOCK * ENTRY_WIRE */

    /* Highest timestamp per (client, lane) queued or ordered here: the primary's
     * dedupe of retransmissions, a backup's "already ordered, don't forward". */
    uint64_t *seen_ts;

    /* Primary: pending requests, FIFO; inline bytes in a byte ring. */
    struct replica_pending *pend;
    uint32_t pend_cap, pend_head, pend_count;
    uint8_t *pend_buf;
    struct replica_bytes pend_ring;

    /* Large requests: FIFO descriptor ring + byte ring + hash index. */
    struct replica_pool_entry *pool;
    uint32_t pool_cap, pool_head, pool_count;
    uint8_t *pool_buf;
    struct replica_bytes pool_ring;
    uint32_t *pool_index;    /* open addressing: entry index + 1, 0 = empty */
    uint32_t pool_index_mask;

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
};

/* ---- replica.c ---------------------------------------------------------------- */
uint16_t replica_primary_of(const struct pbft_replica *r, uint64_t view);
bool replica_is_primary(const struct pbft_replica *r);
/* The slot for seq (h < seq <= h + L), reset when it held an older seq. */
struct replica_slot *replica_slot_get(struct pbft_replica *r, uint64_t seq);
/* The slot of seq if it holds seq, else NULL. */
struct replica_slot *replica_slot_find(struct pbft_replica *r, uint64_t seq);
void replica_drop(struct pbft_replica *r, enum wire_drop reason);
/* Work that follows any state change: execute, answer parked reads, batch. */
void replica_progress(struct pbft_replica *r, struct pbft_out *out);

/* ---- replica_request.c: REQUEST receipt, pending queue, large-request pool ---- */
void replica_request_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
bool replica_pending_empty(const struct pbft_replica *r);
const struct replica_pending *replica_pending_front(const struct pbft_replica *r);
void replica_pending_pop(struct pbft_replica *r);
const uint8_t *replica_pending_bytes(const struct pbft_replica *r, const struct replica_pending *p);
/* Pool: find by request digest (UINT32_MAX when absent); bytes of an entry. */
uint32_t replica_pool_find(const struct pbft_replica *r, const uint8_t digest[BFTKV_DIGEST_SIZE]);
const uint8_t *replica_pool_bytes(const struct pbft_replica *r, uint32_t idx);
void replica_pool_ref(struct pbft_replica *r, uint32_t idx);
void replica_pool_unref(struct pbft_replica *r, uint32_t idx);

/* ---- preprepare.c (TOCS 2002 §4.2) --------------------------------------------- */
void replica_batch_try(struct pbft_replica *r, struct pbft_out *out);
void replica_preprepare_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_stalled_retry(struct pbft_replica *r, struct pbft_out *out);

/* ---- prepare.c / commit.c (TOCS 2002 §4.2) ------------------------------------- */
void replica_prepare_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Recount PREPAREs/COMMITs against D and advance prepared/committed. */
void replica_prepare_recount(struct pbft_replica *r, struct replica_slot *s);
void replica_prepared_check(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out);
void replica_commit_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_commit_recount(struct pbft_replica *r, struct replica_slot *s);
void replica_committed_check(struct pbft_replica *r, struct replica_slot *s);
/* Multicast PREPARE or COMMIT(v, n, D, i) (not with n = 1: nobody to tell). */
void replica_vote_send(struct pbft_replica *r, uint8_t type, uint64_t seq, const uint8_t *digest,
                       struct pbft_out *out);
/* Does a sender's digest count for D (PBFT_BUG_IGNORE_DIGEST counts any)? */
bool replica_digest_counts(const struct pbft_replica *r, const uint8_t *d, const uint8_t *D);

/* ---- exec.c: execution, reply cache, read-only path ----------------------------- */
/* Execute committed batches in order; false when it stopped for outbox room. */
bool replica_exec_run(struct pbft_replica *r, struct pbft_out *out);
/* Answer a retransmitted request from the reply cache (ts == last executed). */
void replica_reply_resend(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
void replica_readonly_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);
/* Answer parked read-only requests whose target is executed; false when out of room. */
bool replica_readonly_drain(struct pbft_replica *r, struct pbft_out *out);
const struct replica_rc_entry *replica_rc_lookup(const struct pbft_replica *r, uint16_t client, uint16_t lane);
/* The reply-cache part of the state digest (rehashes dirty blocks). */
void replica_rc_digest(struct pbft_replica *r, uint8_t out[BFTKV_DIGEST_SIZE]);

/* ---- checkpoint.c (TOCS 2002 §4.3) ---------------------------------------------- */
void replica_checkpoint_take(struct pbft_replica *r, uint64_t seq, struct pbft_out *out);
void replica_checkpoint_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out);

/* ---- out.c: appending to the outbox --------------------------------------------- */
bool pbft_out_room(const struct pbft_out *o, size_t bytes, uint32_t msgs);
/* Where the next message is encoded; *cap receives the bytes available. */
uint8_t *pbft_out_tail(struct pbft_out *o, size_t *cap);
/* Record the len bytes just encoded at the tail as one message. */
void pbft_out_commit(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, size_t len);
/* Copy a complete message in; false (nothing appended) when it does not fit. */
bool pbft_out_copy(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len);

#endif /* BFTKV_ENGINE_REPLICA_INTERNAL_H */
