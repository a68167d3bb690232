/* Runtime Byzantine modes (`bftkv-server --byzantine MODE`, allowed only with
 * `test_modes on`): the replica runs the real engine and a filter rewrites what
 * it sends, per message and destination, before the transport sees it. It holds
 * its own keys, so its lies are well authenticated: a rewritten PREPARE, COMMIT,
 * CHECKPOINT or REPLY is re-MACed / re-signed with the replica's auth context.
 *
 *   silent          sends nothing
 *   drop            drops each message with probability 1/2
 *   corrupt-mac     flips one byte of the authenticator / signature
 *   corrupt-digest  PREPARE / COMMIT / CHECKPOINT carry a random digest,
 *                   re-authenticated (re-signed); other types unchanged
 *   wrong-result    REPLYs carry a made-up result (a value nobody wrote, or
 *                   NOT_FOUND) with a consistent result digest and a valid MAC
 *   replay          sends everything, and with probability 1/4 per message also
 *                   re-sends a random earlier message (to its old destination or
 *                   another replica)
 *   random          per message: ignore 50%, corrupt 30% (corrupt-mac or
 *                   corrupt-digest), behave 20%
 *
 * The same behaviours exist in the simulator (tests/sim/faults.c) as send
 * filters on a simulated network; this is the runtime's version, over the
 * runtime's destinations. Every random choice comes from one PRNG seeded at
 * creation (the server logs the seed), so a run's choices are reproducible given
 * the same sequence of messages.
 *
 * Threads: a filter belongs to the one thread that drains the engine's outbox.
 */
#ifndef BFTKV_SERVER_BYZANTINE_H
#define BFTKV_SERVER_BYZANTINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/auth.h"
#include "engine/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

enum byz_mode {
    BYZ_NONE = 0,
    BYZ_SILENT,
    BYZ_DROP,
    BYZ_CORRUPT_MAC,
    BYZ_CORRUPT_DIGEST,
    BYZ_WRONG_RESULT,
    BYZ_REPLAY,
    BYZ_RANDOM,
    BYZ_MODE_COUNT
};

/* "silent", "drop", ... ("none" for BYZ_NONE). */
const char *byz_mode_name(enum byz_mode m);
/* The mode named s (not "none"), or -1. */
int byz_mode_parse(const char *s);

/* Messages up to this size are kept for replay; 32 of them. */
#define BYZ_REPLAY_SLOTS 32u
#define BYZ_REPLAY_MSG_MAX 4096u

/* Send one message to a destination: dest_kind PBFT_DEST_REPLICA or
 * PBFT_DEST_CLIENT (engine/pbft.h), dest_id the replica or client id. The bytes
 * are valid during the call only. */
typedef void byz_send_fn(void *arg, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len);

struct byz_stats {
    uint64_t dropped;
    uint64_t corrupted;
    uint64_t fabricated; /* replies with a made-up result */
    uint64_t replayed;
};

struct byz;

/* A filter for mode (not BYZ_NONE) seeded with seed, re-authenticating with auth
 * (the replica's own context, which must outlive the filter) and decoding with
 * lim. Allocates its buffers here (~200 KiB). 0, BFTKV_E_INVAL, BFTKV_E_NOMEM. */
int byz_create(enum byz_mode mode, uint64_t seed, const struct auth_ctx *auth, const struct wire_limits *lim,
               struct byz **out);
void byz_destroy(struct byz *b);

/* Pass one outgoing message (msg, len: one complete message) bound for one
 * destination through the filter: it calls send zero or more times. */
void byz_filter(struct byz *b, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len,
                byz_send_fn *send, void *arg);

enum byz_mode byz_mode_of(const struct byz *b);
void byz_stats_get(const struct byz *b, struct byz_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_SERVER_BYZANTINE_H */
