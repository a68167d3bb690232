/* The server runtime: one replica of a group, the engine driven by the UDP
 * transport (docs/design.md "The runtime"; `bftkv-server` is a thin main around it).
 *
 * What it does per received datagram: check its framing (every message says its
 * length, engine/wire.h; a datagram that does not split exactly into messages is
 * dropped and counted "bad_datagram"), take out the admin requests (engine/wire_admin.h),
 * learn the source address of every REQUEST the engine admits (the address book:
 * (client id, lane) -> the address of the latest such request on that lane, not
 * from a replica's relay), hand each
 * message to the engine (pbft_replica_step, PBFT_EV_RECEIVE), and send what the
 * engine's outbox holds: to a replica's configured address, to every other
 * replica, or to a client's address from the book (a reply to a client without
 * one is dropped and counted "reply_no_address"; the client's retransmission to
 * every replica teaches the address). All messages produced while one batch of
 * received datagrams is handled are flushed together, so messages to one
 * endpoint share datagrams (net/udp.h coalescing). Timers: the runtime reads
 * CLOCK_MONOTONIC and delivers PBFT_EV_TICK when pbft_replica_next_deadline()
 * passes; it never waits longer than SERVER_POLL_MS_MAX.
 *
 * Thread layouts (config `threads`):
 *   single  one thread: poll -> step -> flush (server/server_single.c)
 *   staged  rx thread -> auth workers -> protocol thread -> tx thread, joined by
 *           ck_ring SPSC rings, buffers from fixed pools (server/server_staged.c)
 *
 * Lifecycle: server_create (config, keys, store, engine; no socket yet),
 * server_start (bind, threads), server_stop (threads end within ~10 ms; joined),
 * server_destroy. Stats come out through the admin protocol (engine/wire_admin.h); the
 * JSON is built by server/server_stats.c, which lists its keys.
 */
#ifndef BFTKV_SERVER_H
#define BFTKV_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/auth.h"
#include "server/byzantine.h"
#include "cluster/cluster.h"
#include "net/udp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SERVER_POLL_MS_MAX 10

struct server_options {
    const struct bftkv_config *cfg; /* must outlive the server */
    uint16_t id;                    /* the replica this process runs */
    enum net_backend backend;
    /* The replica's key pairs (bftkv_key_identity_load, cluster/cluster.h); copied. */
    const struct auth_keypair *keys;
    enum byz_mode byzantine; /* BYZ_NONE normally; anything else needs cfg->test_modes */
    uint64_t byzantine_seed; /* the filter's PRNG seed (the caller draws or fixes it) */
    bool restarted;          /* this replica ran before and lost its memory: it
                                takes no part in ordering until f+1 replicas
                                holding state vouch for it (engine/catchup.c) */
};

struct server;

/* Build the replica: auth context from cfg and opt->keys, the store (cfg's
 * store_shards), the engine (bftkv_config_fill_replica), the address table (host
 * names resolved here), pools. Binds nothing. 0; BFTKV_E_CONFIG (with a message in
 * err: id not in the group, a name that does not resolve, --byzantine without
 * test_modes, a key the engine refuses), BFTKV_E_INVAL, BFTKV_E_NOMEM. */
int server_create(const struct server_options *opt, struct server **out, char *err, size_t errlen);

/* Bind the replica's configured address and start the threads of the layout.
 * 0, or the transport's error (net_udp_open: BFTKV_E_CONFIG for an address in use
 * or not local, BFTKV_E_UNSUPPORTED, BFTKV_E_IO, BFTKV_E_NOMEM), or BFTKV_E_IO
 * when a thread cannot start. Call once. */
int server_start(struct server *s);

/* Ask the threads to stop and join them. Idempotent; not from a signal handler
 * (the caller waits for signals with sigwait and then calls this). */
void server_stop(struct server *s);

/* Did a thread end on a runtime failure (the transport failing)? The server is
 * then no longer serving; the caller should stop it and exit non-zero. */
bool server_failed(const struct server *s);

/* Stop if needed and free everything. NULL is a no-op. */
void server_destroy(struct server *s);

/* After server_start: the bound port and the backend in use ("uring"/"mmsg"). */
uint16_t server_port(const struct server *s);
const char *server_backend_name(const struct server *s);

/* Build the stats JSON (the admin reply's body) into buf. Only from the thread
 * that steps the engine, or while the server is stopped; the runtime calls it for
 * admin requests. Returns the length, or 0 when cap was too small. */
size_t server_stats_json(struct server *s, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_SERVER_H */
