/* The Byzantine rewriter: what a faulty replica does to the messages it sends.
 *
 * A faulty replica runs the real engine; each message its outbox holds passes,
 * per destination, through byz_filter(), which sends (through the caller's
 * send function) nothing, the message, a rewritten message, or more. One module
 * for both users:
 *
 *   - the simulator (tests/sim/faults.c): a send filter per faulty replica on
 *     the simulated network; it adds what only a simulator can do (the network
 *     adversary, knowledge of every replica's state);
 *   - bftkv-server --byzantine MODE (server/byzantine.c): between the engine's
 *     outbox and the UDP transport of a live replica.
 *
 * A Byzantine node holds its own keys, so its lies are well authenticated: a
 * rewritten PREPARE, COMMIT, CHECKPOINT or REPLY is re-MACed, a VIEW-CHANGE or
 * NEW-VIEW re-signed, with the faulty replica's own auth context. PBFT must
 * tolerate every one of these (TOCS 2002 §2: up to f replicas behave
 * arbitrarily). The modes (byz_mode_name() spells them):
 *
 *   silent          sends nothing
 *   drop            drops each message with a per-seed probability (10..90%)
 *   corrupt-mac     60% of messages: one byte of the authenticator / signature flipped
 *   corrupt-digest  PREPARE/COMMIT/CHECKPOINT carry a random digest, re-authenticated;
 *                   a PRE-PREPARE (primary only) goes out with a wrong D; a REPLY
 *                   carries a made-up result
 *   wrong-result    REPLYs carry a fabricated result (a value nobody wrote, or
 *                   NOT_FOUND), with a matching result digest and a valid MAC
 *   replay          behaves, and 1 time in 4 also re-sends a random earlier message
 *                   of its own (to its old destination or, half the time, a random
 *                   replica: an authenticator carries a MAC for every replica)
 *   mix             per message: ignore 50%, corrupt 30% (corrupt-mac or
 *                   corrupt-digest), behave 20% (the server called it `random`)
 *   stale-read      an attack on the read-only path (docs/design.md §5.3, "The
 *                   read-only path"): its PREPAREs/COMMITs go only to the coalition
 *                   and to f correct "accomplices" (the lowest-numbered backups not
 *                   in the coalition), and it answers read-only GETs with a stale
 *                   state (a Byzantine node can keep any past state)
 *   equivocate      (a primary) sends PRE-PREPAREs whose batch is reversed to a
 *                   fixed per-seed non-empty proper subset of the backups (the B
 *                   group), rewrites its PREPAREs/COMMITs to match what each backup
 *                   got, and its VIEW-CHANGEs claim the B batches prepared in the
 *                   view just below the new one
 *   slow            every message it sends to a replica is held back for a
 *                   per-seed delay just under the request timeout (60..95% of T):
 *                   a primary slow but not slow enough to be replaced
 *   bogus-view-change        behaves in the normal case; its VIEW-CHANGEs claim batches it
 *                   never saw prepared (every P and Q entry gets a random digest and
 *                   the view just below the new one) and, half the time, a wrong
 *                   latest checkpoint digest; half its NEW-VIEWs carry one wrong choice
 *   lying-state     behaves, but every STATE chunk it serves has one byte of a
 *                   stored value flipped (re-MACed): a fetcher that does not check
 *                   the installed state against the checkpoint digest installs a
 *                   state no correct replica has (TOCS 2002 §5.3.2)
 *
 * What the rewriter knows of the group comes from a context the caller fills
 * (struct byz_context):
 *
 *   n, f, self, auth, lim   from the replica's config: the rewriter re-encodes
 *                   with lim and re-authenticates with auth;
 *   request_timeout_ns  slow's delay is drawn from it;
 *   coalition       the replicas that collude (self included). The simulator
 *                   knows every faulty replica; a live replica knows only itself
 *                   (byz_context_live);
 *   accomplices     derived, never given: the f lowest-numbered backups (ids 1..)
 *                   outside the coalition (byz_accomplices);
 *   stale_value     the state a stale-read answer shows. The simulator looks the
 *                   key up in the most-lagging correct replica's store; a live
 *                   replica has no such view and passes NULL: it then answers
 *                   NOT_FOUND, the empty state every replica once had;
 *   slow            the rewriter does not hold messages itself (it has no clock):
 *                   byz_delay_ns() says how long the caller holds a message. The
 *                   simulator's network adversary adds it to the message's delay;
 *                   bftkv-server queues the message and sends it from its tick
 *                   (server/byzantine.h);
 *   the B group     (equivocate) drawn at creation from n and the seed.
 *
 * Every random choice comes from the rewriter's own PRNG (common/prng.h) seeded
 * by the caller, in a fixed order: so a simulator seed replays exactly, and a
 * live replica's choices replay given its seed and the same messages.
 *
 * Memory: byz_create allocates everything (about 200 KiB; 2 MiB more for replay,
 * 4 MiB more for equivocate); byz_filter allocates nothing. Messages passed to
 * the send function are valid during the call only.
 *
 * Threads: a rewriter belongs to the one thread that drains its replica's outbox.
 */
#ifndef BFTKV_ENGINE_BYZANTINE_H
#define BFTKV_ENGINE_BYZANTINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/auth.h"
#include "engine/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The order is part of the simulator's seeds (it draws modes by number). */
enum byz_mode {
    BYZ_NONE = 0,
    BYZ_SILENT,
    BYZ_DROP,
    BYZ_CORRUPT_MAC,
    BYZ_CORRUPT_DIGEST,
    BYZ_WRONG_RESULT,
    BYZ_REPLAY,
    BYZ_MIX,
    BYZ_STALE_READ,
    BYZ_EQUIVOCATE,
    BYZ_SLOW,
    BYZ_BOGUS_VIEW_CHANGE,
    BYZ_LYING_STATE,
    BYZ_MODE_COUNT
};

/* "silent", "drop", ... ("none" for BYZ_NONE, "?" out of range). */
const char *byz_mode_name(enum byz_mode m);
/* The mode named s ("none" included: BYZ_NONE), or -1. */
int byz_mode_parse(const char *s);

#define BYZ_REPLAY_RING 32u
#define BYZ_EQUIV_RING 64u
/* slow's delay when the caller gives no request timeout. */
#define BYZ_DEFAULT_TIMEOUT_NS 50000000u

/* Send one message to a destination: dest_kind PBFT_DEST_REPLICA or
 * PBFT_DEST_CLIENT (engine/pbft.h), dest_id the replica or client id. */
typedef void byz_send_fn(void *arg, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len);

/* stale-read: the state of key-less reply rp (a read-only GET's) to show
 * instead: 0 with the value in buf[0..*vlen), BFTKV_E_NOT_FOUND, BFTKV_E_NO_STATE
 * (no knowledge: the rewriter answers NOT_FOUND), or another negative code (the
 * reply goes out unchanged). */
typedef int byz_stale_fn(void *arg, const struct wire_reply *rp, uint8_t *buf, size_t cap, size_t *vlen);

struct byz_context {
    uint16_t n;
    uint16_t f;
    uint16_t self;
    const struct auth_ctx *auth; /* the replica's own context; outlives the rewriter */
    struct wire_limits lim;
    uint64_t request_timeout_ns;            /* 0: BYZ_DEFAULT_TIMEOUT_NS */
    bool coalition[BFTKV_REPLICAS_MAX];     /* colluding faulty replicas, self included */
    byz_stale_fn *stale_value;              /* NULL: NOT_FOUND */
    void *stale_arg;
};

/* A live replica's context: coalition {self}, no stale_value. */
void byz_context_live(struct byz_context *ctx, uint16_t n, uint16_t f, uint16_t self, const struct auth_ctx *auth,
                      const struct wire_limits *lim, uint64_t request_timeout_ns);

/* The stale-read accomplices: the f lowest-numbered backups outside coalition. */
void byz_accomplices(uint16_t n, uint16_t f, const bool coalition[BFTKV_REPLICAS_MAX],
                     bool accomplice[BFTKV_REPLICAS_MAX]);

struct byz_stats {
    uint64_t dropped;
    uint64_t corrupted;
    uint64_t replayed;
    uint64_t fabricated;  /* replies with a made-up result */
    uint64_t equivocated; /* PRE-PREPAREs sent in the B version */
};

struct byz;

/* A rewriter for mode (not BYZ_NONE) seeded with seed; ctx is copied.
 * 0, BFTKV_E_INVAL, BFTKV_E_NOMEM. */
int byz_create(enum byz_mode mode, uint64_t seed, const struct byz_context *ctx, struct byz **out);
void byz_destroy(struct byz *b);

/* Pass one outgoing message (msg, len: one complete message the engine encoded)
 * bound for one destination through the rewriter: it calls send zero or more
 * times. */
void byz_filter(struct byz *b, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len,
                byz_send_fn *send, void *arg);

/* How long a message to a destination of dest_kind is to be held back (slow: to
 * replicas; 0 otherwise). */
uint64_t byz_delay_ns(const struct byz *b, uint8_t dest_kind);
/* stale-read: the delay the simulator's network adversary imposes on the
 * accomplices' votes to the other correct replicas (drawn per seed, 1..10 ms;
 * a live cluster's network is not the test's to delay). */
uint64_t byz_stale_delay_ns(const struct byz *b);

enum byz_mode byz_mode_of(const struct byz *b);
const struct byz_stats *byz_stats_of(const struct byz *b);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_BYZANTINE_H */
