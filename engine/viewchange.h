/* The interface between the two halves of the view change: viewchange.c (the
 * timers, VIEW-CHANGE messages, joining a view, entering it) and newview.c (the
 * new primary's choice of checkpoint and batches, NEW-VIEW, its check at the
 * backups, and the first PRE-PREPAREs of the new view). TOCS 2002 §4.4-§4.5.
 *
 * Internal to engine/, like replica_internal.h; the unit tests include it to
 * drive the selection rule (replica_newview_select) directly.
 */
#ifndef BFTKV_ENGINE_VIEWCHANGE_H
#define BFTKV_ENGINE_VIEWCHANGE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/pbft.h"
#include "engine/wire.h"

struct pbft_replica;
struct replica_slot;

/* What a NEW-VIEW chooses (TOCS 2002 §4.5.1): the checkpoint (h, h_digest) the new
 * view starts from, and the batches for seqs h+1 .. h+nch (written to a caller's
 * array of L digests; a null batch is the digest wire_null_batch_digest()
 * gives). */
struct replica_nv_result {
    uint64_t h;
    uint8_t h_digest[BFTKV_DIGEST_SIZE];
    uint16_t nch;
};

/* Run the selection over a set of decoded, validated VIEW-CHANGEs for one view,
 * from distinct replicas (the set of a NEW-VIEW). true and *res, choices[0 ..
 * nch-1] when it succeeds; false when it cannot decide yet (more VIEW-CHANGEs
 * are needed -- at a backup: the NEW-VIEW is wrong). Uses r's configuration
 * (n, f, L), its PBFT_BUG_NEWVIEW_IGNORE_A2 switch and its scratch cursors. */
bool replica_newview_select(struct pbft_replica *r, const struct wire_msg *const *set, uint16_t nset,
                            struct replica_nv_result *res, uint8_t (*choices)[BFTKV_DIGEST_SIZE]);

/* ---- viewchange.c, for newview.c ------------------------------------------------ */
/* The retransmission interval of VIEW-CHANGEs and of answers to them. */
uint64_t replica_viewchange_resend_interval(const struct pbft_replica *r);
/* The view is entered (a NEW-VIEW accepted or sent, or replica_viewchange_enter):
 * normal case from now on; timers reset; the primary's and backups' records of
 * what is queued or ordered are recomputed. */
void replica_viewchange_activate(struct pbft_replica *r);
/* Move to view w > view and ask for it: leave the view, sign and multicast our
 * VIEW-CHANGE(w) (TOCS 2002 §4.4). */
void replica_viewchange_start(struct pbft_replica *r, uint64_t w, struct pbft_out *out);
/* The slot's Q memory: it was pre-prepared with d in view v (TOCS 2002 §4.5.1;
 * also recover.c, which rebuilds it from a durable replica's records). */
void replica_viewchange_slot_q_add(struct replica_slot *s, uint64_t v, const uint8_t *d);

/* ---- viewchange_timer.c, for viewchange.c ---------------------------------------- */
/* A failed view change: double (up to 64 T). A view that works: halve (to T). */
void replica_viewchange_timeout_double(struct pbft_replica *r);
void replica_viewchange_timeout_halve(struct pbft_replica *r);
/* Pop executed watches from the front of the FIFO. */
void replica_viewchange_watch_trim(struct pbft_replica *r);
/* When the oldest watched request will have waited the timeout (UINT64_MAX: none). */
uint64_t replica_viewchange_watch_deadline(const struct pbft_replica *r);

/* ---- viewchange_rejoin.c, for viewchange.c ------------------------------------- */
/* Per-sender state of the step-down's rate limit. */
bool replica_viewchange_rejoin_create(struct pbft_replica *r);
void replica_viewchange_rejoin_destroy(struct pbft_replica *r);
/* A VIEW-CHANGE for a view above our active one is stored as `from`'s highest
 * (received now, or a retransmission of it): a replica alone in a higher view?
 * The primary steps down to it; a backup follows its primary's step-down. */
void replica_viewchange_rejoin_check(struct pbft_replica *r, uint16_t from, struct pbft_out *out);

/* ---- newview.c, for viewchange.c ------------------------------------------------ */
/* The new primary: send NEW-VIEW once the VIEW-CHANGEs it holds for `view`
 * allow a choice. */
void replica_newview_try(struct pbft_replica *r, struct pbft_out *out);
/* A backup: check the pending NEW-VIEW once it holds every VIEW-CHANGE it names. */
void replica_newview_retry(struct pbft_replica *r, struct pbft_out *out);
/* Does the pending NEW-VIEW name this VIEW-CHANGE (replica, digest)? */
bool replica_newview_names(const struct pbft_replica *r, uint16_t replica, const uint8_t digest[BFTKV_DIGEST_SIZE]);
/* The primary of the active view answers a replica still sending VIEW-CHANGEs
 * for it: the NEW-VIEW again, and the VIEW-CHANGEs it names. */
void replica_newview_answer(struct pbft_replica *r, uint16_t to, struct pbft_out *out);
/* The new primary's PRE-PREPAREs of chosen batches; a backup's batches the
 * primary asked for. false when out of outbox room. */
bool replica_newview_progress(struct pbft_replica *r, struct pbft_out *out);

#endif /* BFTKV_ENGINE_VIEWCHANGE_H */
