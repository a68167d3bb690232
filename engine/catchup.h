/* Catch-up state of a replica: retransmission and STATUS (engine/catchup.c), and
 * state transfer (engine/statetransfer.c) with the checkpoint snapshots it
 * serves from (engine/statetransfer_serve.c). Internal to engine/: replica_internal.h includes it
 * and embeds these structs in struct pbft_replica; the functions are declared
 * there, with the rest of the replica's internal interface.
 *
 * Everything is allocated in pbft_replica_create (replica_statetransfer_create), with
 * the sizing formula next to each buffer; nothing grows afterwards. The one
 * allocation a step may cause is the store's own: store_snapshot_take (one array
 * per checkpoint, ~110 bytes per shard), the records later writes keep for a
 * live snapshot, and the puts of a restored chunk into the staging store,
 * like any execution's puts (TOCS 2002 §5.3: the state is as large as it is).
 */
#ifndef BFTKV_ENGINE_CATCHUP_H
#define BFTKV_ENGINE_CATCHUP_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/wire.h"
#include "store/store.h"

struct replica_rc_entry;

/* Retransmission and STATUS timing, all multiples of cfg.retransmit_ns (R). */
#define CATCHUP_RETRANSMIT_DEFAULT_NS (20u * 1000u * 1000u)
#define CATCHUP_BACKOFF_SHIFT_MAX 5u   /* a slot's retransmission interval grows R/2, R, ..., 16R */
#define CATCHUP_FLAT_RETRIES 2u        /* ... after this many at R/2 */
#define CATCHUP_HEARTBEAT_INTERVALS 10u /* STATUS every 10 R even when not behind */
#define CATCHUP_FETCH_ATTEMPTS 2u      /* chunk timeouts before another server */
/* Chunks one FETCH asks for: a few round trips fetch a whole checkpoint interval's
 * worth of changes, and the server's work per FETCH stays bounded (each chunk is
 * at most one datagram; a server sends fewer when its outbox is full). */
#define CATCHUP_CHUNKS_PER_FETCH 4u
/* A server answers one peer with at most this many chunks per interval R (a
 * Byzantine asker cannot make it encode at line rate). */
#define CATCHUP_SERVE_CHUNKS_PER_R 64u
/* A peer answers a lagging replica's STATUS with its log from the asker's next
 * seq on: at most this many bytes of PRE-PREPAREs and votes per answer, and at
 * most one answer per R/4 per asker. A replica behind a group that orders
 * thousands of small batches a second needs many seqs per round trip (W per
 * answer let it fall a checkpoint behind and fetch state over and over), and
 * the budget bounds what a Byzantine asker can make a peer send. */
#define CATCHUP_RELAY_BYTES_MAX (64u * 1024u)
/* A whole transfer from one server gets 100 R (2 s by default), doubled after
 * each server that did not finish in time, up to 2^10 times that: a server
 * that trickles chunks (or cursors that barely move) cannot hold the replica
 * forever, and a large state still gets the time it needs. */
#define CATCHUP_XFER_BUDGET_INTERVALS 100u
#define CATCHUP_XFER_BUDGET_SHIFT_MAX 10u
/* A restarted replica's next_seq until a view change makes it primary: above any
 * window, so replica_preprepare_batch_try proposes nothing (pbft.h "restarted"). */
#define CATCHUP_NEXT_SEQ_PARKED (UINT64_MAX / 2u)

/* A checkpoint's state kept for serving (TOCS 2002 §5.3: a replica serves the
 * state of its checkpoints): a copy-on-write store snapshot, O(shards) to take,
 * and a copy of the reply cache at the same instant. */
struct replica_snap {
    uint64_t seq; /* 0: free */
    uint8_t digest[BFTKV_DIGEST_SIZE];
    struct store_snapshot *snap;
    struct replica_rc_entry *rc; /* rc_entries entries */
};

struct replica_catchup {
    uint64_t scan_ns;      /* next retransmission scan and STATUS check */
    uint64_t status_ns;    /* earliest next idle-behind (or lagging) STATUS */
    uint64_t heartbeat_ns; /* next heartbeat STATUS */
    uint64_t progress_le;  /* last_executed when progress was last seen ... */
    uint64_t progress_ns;  /* ... and when */
    uint64_t max_seen;     /* highest seq this replica knows was assigned */
    uint64_t answer_ns[BFTKV_REPLICAS_MAX]; /* per peer: next STATUS we answer */
    uint64_t view_hint_ns[BFTKV_REPLICAS_MAX]; /* per peer: next STATUS telling it our view */
    uint64_t repair_ns[BFTKV_REPLICAS_MAX]; /* per peer: its repair budget renews then */
    uint32_t repair_left[BFTKV_REPLICAS_MAX]; /* ... and what is left of it */
    uint64_t ask_view_ns;     /* next STATUS multicast on a message of a higher view */
    uint64_t serve_ns[BFTKV_REPLICAS_MAX];  /* per peer: start of its serving window */
    uint32_t served[BFTKV_REPLICAS_MAX];    /* ... and the chunks sent in it */
    uint64_t peer_view[BFTKV_REPLICAS_MAX]; /* per peer: view of its last STATUS */
    bool peer_view_known[BFTKV_REPLICAS_MAX];
    uint64_t peer_le[BFTKV_REPLICAS_MAX];    /* per peer: last executed of its last STATUS */
    uint64_t peer_low[BFTKV_REPLICAS_MAX];   /* per peer: h of its last STATUS ... */
    bool peer_holds[BFTKV_REPLICAS_MAX];     /* ... which said it holds state */
    uint64_t unsure_answer_ns[BFTKV_REPLICAS_MAX]; /* next STATUS to an unsure peer */
    /* Snapshots of own checkpoints in [h', h+L], h' the stable checkpoint
     * before h: a ring of L/K + 2 (slot of seq = seq / K mod count). */
    struct replica_snap *snaps;
    uint32_t nsnaps;
    uint64_t prev_low;     /* h' */
};

/* A checkpoint proven stable: q signed CHECKPOINTs, or a NEW-VIEW's choice. */
struct replica_target {
    uint64_t seq; /* 0: none */
    uint8_t digest[BFTKV_DIGEST_SIZE];
    uint64_t bits;  /* senders whose CHECKPOINT is in proof */
    uint8_t *proof; /* n * WIRE_CHECKPOINT_MSG_SIZE bytes, slot per sender */
    uint16_t from;  /* a replica that holds it: the first server to ask */
};

/* The state transfer in flight, at most one (TOCS 2002 §5.3.2). */
struct replica_xfer {
    bool active;
    struct replica_target target; /* what is being fetched */
    struct replica_target cand;   /* the best proven checkpoint not yet fetched */
    uint16_t server;              /* the replica asked */
    uint16_t misses;              /* servers without the snapshot, in a row */
    uint32_t attempts;            /* timeouts of the current chunk */
    uint32_t shards;              /* the server's snapshot shard count; 0: unknown */
    struct wire_state_pos pos;    /* next position wanted */
    uint64_t deadline_ns;         /* chunk timeout, or the wait before the next FETCH */
    uint64_t give_up_ns;          /* the current server's whole-transfer budget ends */
    uint32_t budget_shift;        /* that budget is 100 R << budget_shift */
    uint32_t failures;            /* fetched states that failed a check, in a row */
    bool waiting;                 /* no FETCH outstanding: send one at deadline_ns */
    struct store *staging;        /* store_create_like(r->store) */
    struct replica_rc_entry *rc;  /* staging reply cache, rc_entries entries */
};

#endif /* BFTKV_ENGINE_CATCHUP_H */
