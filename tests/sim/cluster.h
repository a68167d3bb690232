/* A simulated cluster: N replicas and C clients of the real engine, each with its
 * store, keys and outbox, connected by the simulated network (netsim.h) and driven
 * by one simulated clock in nanoseconds.
 *
 * Node numbering: replicas are nodes 0..N-1 (node = replica id), clients are
 * nodes N..N+C-1 (node = N + client id). One step is either the delivery of the
 * next message in flight or a tick to the node whose deadline
 * (pbft_*_next_deadline) comes first, whichever is earlier; the clock jumps to
 * that time. Messages a step produced are expanded by destination
 * (PBFT_DEST_*) and sent in outbox order.
 *
 * Two interposition points, both per message and per destination:
 *   - a node's send filter (faults.c makes a Byzantine replica with it): the
 *     filter receives what the engine wanted to send and calls cluster_send()
 *     with whatever it decides to send instead;
 *   - the network filter (the scripted fixture uses it, and the simulator's
 *     adversarial scheduler): drop, duplicate, delay or pass a message just
 *     before it enters the network.
 * Hooks report executed batches, checkpoints and client completions to the
 * simulator's checkers and workload; a completion hook may submit the client's
 * next operation (the cluster has dispatched the step's outbox by then).
 */
#ifndef BFTKV_SIM_CLUSTER_H
#define BFTKV_SIM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/auth.h"
#include "engine/pbft.h"
#include "tests/sim/netsim.h"

#define CLUSTER_GROUP 1u

/* Key material for a group of n replicas and c clients, derived from key_seed
 * with auth_keypair_from_seed. Deriving the pairwise keys costs (n-1+c) X25519
 * operations per replica, so the simulator derives them once per process and
 * shares them (read-only) between the runs of all its seeds. */
struct cluster_keys {
    uint16_t n;
    uint16_t clients;
    uint64_t key_seed;
    struct auth_ctx *replica_auth; /* n */
    struct auth_ctx *client_auth;  /* clients */
    /* Shared by the replicas' contexts: each signed message is verified once per
     * process, not once per receiver (auth_sig_memo_create; outcomes unchanged). */
    struct auth_sig_memo *sig_memo;
};

int cluster_keys_create(uint16_t n, uint16_t clients, uint64_t key_seed, struct cluster_keys **out);
void cluster_keys_destroy(struct cluster_keys *k);

struct cluster_config {
    uint16_t group;                /* the wire's group field; 0: CLUSTER_GROUP (a deployment's
                                      partition p runs as group p + 1, deploy.h) */
    uint16_t n;
    uint16_t f;
    uint16_t clients;
    uint16_t lanes;                /* client lanes (in-flight requests) */
    uint32_t checkpoint_interval;  /* 0: engine default (likewise below) */
    uint32_t log_window;
    uint32_t window;
    uint32_t batch_max_requests;
    uint32_t batch_max_bytes;
    uint64_t client_retransmit_ns;
    uint32_t bugs;                 /* enum pbft_bug, on every replica and client */
    bool durable;                  /* replicas list records; each drained outbox is
                                      checked persist-before-send (persist_check.h),
                                      a violation reported as a broken invariant */
    const bool *client_readonly;   /* per client: use the read-only fast path; NULL: none */
    uint32_t store_shards;         /* 0: 16 (small stores build fast) */
    const struct cluster_keys *keys; /* NULL: derive from key_seed, owned by the cluster */
    uint64_t key_seed;
    struct netsim_config net;
    uint64_t net_seed;
};

struct cluster;

typedef void (*cluster_exec_fn)(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32]);
/* A durable replica was rebuilt from its disk after a crash: it executed up to
 * last_executed again (without exec hooks) and goes on from there. */
typedef void (*cluster_recover_fn)(void *arg, uint16_t replica, uint64_t last_executed);
typedef void (*cluster_checkpoint_fn)(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32]);
/* c->value is a copy owned by the cluster, valid during the call. */
typedef void (*cluster_complete_fn)(void *arg, uint16_t client, const struct pbft_completion *c);

/* A replica broke one of its invariants (engine/invariants.h) in the cluster's
 * step `step`: what names the rule, seq the slot or checkpoint (0: none). */
typedef void (*cluster_invariant_fn)(void *arg, uint16_t replica, uint64_t step, const char *what, uint64_t seq);

/* A node's send filter: called instead of sending msg from -> to. */
typedef void (*cluster_send_filter_fn)(void *arg, struct cluster *cl, uint32_t from, uint32_t to,
                                       const uint8_t *msg, uint32_t len);

enum cluster_net_verdict {
    CLUSTER_NET_PASS = 0,
    CLUSTER_NET_DROP = 1,
    CLUSTER_NET_DUPLICATE = 2,
};
/* *delay_ns (0 on entry) may be raised to hold the message back that long
 * beyond the network's own delay. */
typedef enum cluster_net_verdict (*cluster_net_filter_fn)(void *arg, uint32_t from, uint32_t to,
                                                          const uint8_t *msg, uint32_t len, uint64_t *delay_ns);

struct cluster_hooks {
    cluster_exec_fn on_exec;
    cluster_checkpoint_fn on_checkpoint;
    cluster_complete_fn on_complete;
    cluster_net_filter_fn net_filter;
    cluster_invariant_fn on_invariant; /* NULL: a violation aborts, with its description */
    cluster_recover_fn on_recover;     /* NULL: none */
    uint32_t invariants_every;         /* check after every k-th step (0, 1: every one) */
    void *arg;
};

struct cluster_stats {
    uint64_t steps;
    uint64_t deliveries;
    uint64_t ticks;
    uint64_t submits;
    uint64_t completions;
    uint64_t stuck_deadlines; /* a node asked for a tick at or before now, again */
    uint64_t records[9];      /* cfg.durable: records listed, by enum pbft_persist (PERSIST_KINDS) */
    uint64_t recoveries;      /* durable replicas rebuilt from their disks */
    uint64_t recovered_batches; /* batches they executed again */
    uint64_t recovery_gaps;   /* of the recoveries, those that came back unsure */
    uint64_t recoveries_from_snapshot; /* ... those that started from a snapshot */
    uint64_t snapshots;       /* snapshots the durable replicas' disks took */
};

/* 0, BFTKV_E_INVAL or BFTKV_E_NOMEM. */
int cluster_create(const struct cluster_config *cfg, const struct cluster_hooks *hooks, struct cluster **out);
void cluster_destroy(struct cluster *cl);

/* One step: deliver the next message or tick the earliest deadline. false when
 * nothing is in flight and no node has a deadline. */
bool cluster_step(struct cluster *cl);

/* Step while the next event is at or before t_ns; then the clock reads t_ns. */
void cluster_run_until(struct cluster *cl, uint64_t t_ns);

/* Time of the next event (UINT64_MAX: none). */
uint64_t cluster_next_event(const struct cluster *cl);

uint64_t cluster_now(const struct cluster *cl);
void cluster_advance_to(struct cluster *cl, uint64_t t_ns);

/* Submit an operation from client id; returns the lane or a negative error. */
int cluster_client_submit(struct cluster *cl, uint16_t client, uint8_t op, const void *key, size_t klen,
                          const void *value, size_t vlen);
int cluster_client_free_lane(const struct cluster *cl, uint16_t client);

/* Send bytes from -> to through the network filter and the network (used by
 * send filters; also to inject messages). */
void cluster_send(struct cluster *cl, uint32_t from, uint32_t to, const uint8_t *msg, uint32_t len);

void cluster_set_send_filter(struct cluster *cl, uint32_t node, cluster_send_filter_fn fn, void *arg);
/* Print every message delivered (and every tick) to f, only those with header
 * seq == seq_filter unless seq_filter is 0 (debugging: bftkv-sim --trace). */
void cluster_set_trace(struct cluster *cl, FILE *f, uint64_t seq_filter);

/* Replace the network filter of the hooks (fn may be NULL). */
void cluster_set_net_filter(struct cluster *cl, cluster_net_filter_fn fn, void *arg);

/* Crash replica id: its replica and store are destroyed (it loses all memory)
 * and messages to it are lost until cluster_replica_restart() recreates it with
 * an empty store and pbft_replica_config.restarted set -- or, durable, rebuilt
 * from the records of its disk (pbft_replica_recover_record), which a crash
 * keeps. While it is down,
 * cluster_replica() and cluster_store() return NULL. */
void cluster_replica_crash(struct cluster *cl, uint16_t id);
int cluster_replica_restart(struct cluster *cl, uint16_t id);
/* A crashed durable replica loses its disk too: it restarts empty (restarted). */
void cluster_replica_lose_disk(struct cluster *cl, uint16_t id);
bool cluster_replica_down(const struct cluster *cl, uint16_t id);

/* Pause replica id: a process stopped (SIGSTOP) and later continued. Its replica
 * and store are kept, it gets no ticks and so sends nothing, and messages to it
 * are lost (what it sent before the pause is already on the wire); resume gives
 * it its overdue ticks at the current time. cluster_replica() and
 * cluster_store() still return it while paused. */
void cluster_replica_pause(struct cluster *cl, uint16_t id);
void cluster_replica_resume(struct cluster *cl, uint16_t id);
bool cluster_replica_paused(const struct cluster *cl, uint16_t id);

/* Accessors. */
uint32_t cluster_nodes(const struct cluster *cl);
uint32_t cluster_client_node(const struct cluster *cl, uint16_t client);
const struct cluster_config *cluster_config(const struct cluster *cl);
struct pbft_replica *cluster_replica(struct cluster *cl, uint16_t id);
struct pbft_client *cluster_client(struct cluster *cl, uint16_t id);
struct store *cluster_store(struct cluster *cl, uint16_t id);
const struct auth_ctx *cluster_replica_auth(const struct cluster *cl, uint16_t id);
struct netsim *cluster_net(struct cluster *cl);
const struct cluster_stats *cluster_stats(const struct cluster *cl);
struct wire_limits cluster_wire_limits(const struct cluster *cl);

#endif /* BFTKV_SIM_CLUSTER_H */
