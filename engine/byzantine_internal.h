/* The Byzantine rewriter's state, shared by its two files: byzantine.c (modes,
 * creation, the per-message filter, the normal-case rewrites) and
 * byzantine_rewrite.c (equivocation, bogus VIEW-CHANGE / NEW-VIEW, lying STATE).
 * Not for use outside engine/byzantine*.c (engine/byzantine.h is the API).
 */
#ifndef BFTKV_ENGINE_BYZANTINE_INTERNAL_H
#define BFTKV_ENGINE_BYZANTINE_INTERNAL_H

#include "common/prng.h"
#include "engine/byzantine.h"

struct byz_replay_slot {
    uint8_t *buf; /* BFTKV_DATAGRAM_MAX bytes, in byz->replay_mem */
    uint32_t len;
    uint8_t dest_kind;
    uint16_t dest_id;
};

/* equivocate: one sequence number's two batches. */
struct byz_equiv_slot {
    bool valid;
    uint64_t view;
    uint64_t seq;
    uint8_t da[BFTKV_DIGEST_SIZE]; /* the batch the A group got (the engine's) */
    uint8_t db[BFTKV_DIGEST_SIZE]; /* the reversed batch the B group got */
    uint32_t len;                  /* 0: no B version (fewer than two entries) */
    uint8_t *msg;                  /* BFTKV_DATAGRAM_MAX bytes: the B PRE-PREPARE */
};

struct byz {
    enum byz_mode mode;
    struct byz_context ctx;
    bool accomplice[BFTKV_REPLICAS_MAX];
    struct prng rng;
    double drop_percent;
    uint64_t stale_delay_ns;
    uint64_t slow_delay_ns;
    struct byz_stats stats;
    uint8_t *scratch;              /* BFTKV_DATAGRAM_MAX: a rewritten message */
    uint8_t *entries;              /* BFTKV_DATAGRAM_MAX: a rebuilt batch, a stale value */
    struct wire_batch_entry *list; /* BFTKV_BATCH_REQUESTS_MAX */
    /* 3 * (BFTKV_LOG_WINDOW_MAX + 1): a rebuilt VIEW-CHANGE's C, P, Q */
    struct wire_view_change_entry *view_change_entries;
    /* replay */
    uint8_t *replay_mem;
    struct byz_replay_slot ring[BYZ_REPLAY_RING];
    uint32_t ring_len;
    uint32_t ring_next;
    /* equivocate */
    uint8_t *equiv_mem;
    bool b_group[BFTKV_REPLICAS_MAX];
    struct byz_equiv_slot eq[BYZ_EQUIV_RING];
};

/* The header of a message whose framing the engine produced; false if the sizes
 * do not add up. */
bool byz_header(const uint8_t *msg, size_t len, struct wire_header *h);

/* Authenticate again the altered copy of a message (header h, len bytes) in
 * b->scratch: sign the signed types (CHECKPOINT, VIEW-CHANGE, NEW-VIEW), fill the
 * authenticator of the others. */
void byz_reauth(struct byz *b, size_t len, const struct wire_header *h);

/* byz_reauth, count the lie, send b->scratch; true. */
bool byz_send_altered(struct byz *b, uint8_t kind, uint16_t id, size_t len, const struct wire_header *h,
                      byz_send_fn *send, void *arg);

/* PREPARE, COMMIT or CHECKPOINT with digest d instead of its own, re-authenticated. */
void byz_send_with_digest(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                          const struct wire_header *h, const uint8_t d[BFTKV_DIGEST_SIZE], byz_send_fn *send,
                          void *arg);

/* byzantine_rewrite.c: each returns false when it left the message alone (the
 * caller then sends it as it is). */
void byz_equivocate(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len, byz_send_fn *send,
                    void *arg);
bool byz_bogus_view_change(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                           byz_send_fn *send, void *arg);
bool byz_bogus_new_view(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len,
                        byz_send_fn *send, void *arg);
bool byz_lying_state(struct byz *b, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len, byz_send_fn *send,
                     void *arg);

#endif /* BFTKV_ENGINE_BYZANTINE_INTERNAL_H */
