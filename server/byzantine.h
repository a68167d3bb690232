/* Runtime Byzantine modes (`bftkv-server --byzantine MODE`, allowed only with
 * `test_modes on`): a thin adapter over the engine's rewriter
 * (engine/byzantine.h, which lists and defines every mode -- the same ones the
 * simulator runs). The replica runs the real engine; what its outbox holds goes
 * through the rewriter, per message and destination, before the transport sees
 * it.
 *
 * What a live replica knows of the group is its config (byz_context_live): n, f,
 * its id and keys, the request timeout T; its coalition is itself alone; the
 * stale-read accomplices are the f lowest-numbered other backups; stale-read
 * answers a read-only GET with NOT_FOUND (the empty state every replica once
 * had: it has no view of a lagging replica's store).
 *
 * This adapter adds the one thing the rewriter cannot do without a clock: slow's
 * delay queue. A message the rewriter says to hold (byz_delay_ns: 60..95% of T,
 * to replicas) is copied into a FIFO with its due time and sent by
 * server_byz_flush(), which the server's timer pass calls; the delay is the same
 * for every message, so the FIFO is in due order. A full queue (SERVER_BYZ_HELD_MAX
 * messages or SERVER_BYZ_HELD_BYTES bytes) drops the message, counted: a slow
 * replica that also loses messages is still only faulty.
 *
 * Threads: an adapter belongs to the one thread that drains the engine's outbox
 * and runs its timers.
 */
#ifndef BFTKV_SERVER_BYZANTINE_H
#define BFTKV_SERVER_BYZANTINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/byzantine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_BYZ_HELD_MAX 4096u
#define SERVER_BYZ_HELD_BYTES (8u << 20)

struct server_byz_stats {
    struct byz_stats rewriter;
    uint64_t held;      /* messages held back (slow) */
    uint64_t held_full; /* messages dropped: the queue was full */
};

struct server_byz;

/* An adapter for mode (not BYZ_NONE) seeded with seed over ctx (copied; its
 * auth must outlive the adapter). 0, BFTKV_E_INVAL, BFTKV_E_NOMEM. */
int server_byz_create(enum byz_mode mode, uint64_t seed, const struct byz_context *ctx, struct server_byz **out);
void server_byz_destroy(struct server_byz *sb);

/* Pass one outgoing message bound for one destination through the rewriter at
 * time now_ns: send is called zero or more times now, and later from
 * server_byz_flush for what is held. */
void server_byz_filter(struct server_byz *sb, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len,
                       uint64_t now_ns, byz_send_fn *send, void *arg);

/* Send the held messages due at now_ns, in order; returns the due time of the
 * next one (UINT64_MAX: none held). */
uint64_t server_byz_flush(struct server_byz *sb, uint64_t now_ns, byz_send_fn *send, void *arg);

enum byz_mode server_byz_mode(const struct server_byz *sb);
void server_byz_stats_get(const struct server_byz *sb, struct server_byz_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_SERVER_BYZANTINE_H */
