/* The simulated network: every message in flight, in one priority queue ordered
 * by (delivery time, insertion counter), so two runs of a seed deliver the same
 * messages in the same order.
 *
 * Sending draws the message's fate from the network's PRNG stream: lost, cut by
 * a partition, duplicated, and a delay of base latency plus jitter (exponential
 * or uniform). Jitter is what reorders messages. All of that happens only before
 * the global stabilisation time (GST): from then on the network is reliable, its
 * jitter small and bounded, and partitions have healed -- the partial-synchrony
 * model under which PBFT promises liveness (TOCS 2002 §2). Safety must hold
 * whatever happens before.
 *
 * Nodes are numbered 0..nodes-1 (the cluster maps replicas first, then clients).
 * A message's bytes live in a reference-counted buffer shared by every copy in
 * flight (a broadcast is one buffer); the receiver gets a pointer valid until it
 * calls netsim_msg_put(). A node can be held (netsim_hold): what arrives for it
 * before the hold ends waits until then, in order.
 *
 * A partition cuts links by the marks its nodes carry (cut[node]):
 *
 *   NETSIM_CUT_SPLIT   two sides, 0 and 1: every message between them is lost;
 *   NETSIM_CUT_ONEWAY  messages from a node marked 1 to a node marked 2 are
 *                      lost, those the other way arrive (a replica that can send
 *                      but not receive, or a single one-way link);
 *   NETSIM_CUT_LINK    messages between a node marked 1 and a node marked 2
 *                      are lost both ways, every other link works (one cut link).
 *
 * A partition with on_ns > 0 flaps: from start_ns it is in force for on_ns, then
 * healed for off_ns, and so on until end_ns.
 */
#ifndef BFTKV_SIM_NETSIM_H
#define BFTKV_SIM_NETSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/prng.h"

#define NETSIM_PARTITIONS_MAX 16u

enum netsim_cut_kind {
    NETSIM_CUT_SPLIT = 0,
    NETSIM_CUT_ONEWAY = 1,
    NETSIM_CUT_LINK = 2,
};

/* One partition (see above), during [start_ns, end_ns). */
struct netsim_partition {
    uint64_t start_ns;
    uint64_t end_ns;
    uint64_t on_ns;  /* 0: in force throughout; else flapping, on_ns in force */
    uint64_t off_ns; /* then off_ns healed */
    uint8_t kind;    /* enum netsim_cut_kind */
    uint8_t *cut;    /* nodes entries, owned by the netsim */
};

struct netsim_config {
    uint64_t latency_ns;        /* base one-way latency */
    uint64_t jitter_ns;         /* before GST: mean (exponential) or max (uniform) */
    bool jitter_uniform;
    double loss_percent;        /* before GST, 0..100 */
    double dup_percent;         /* before GST, 0..100 */
    uint64_t gst_ns;            /* network faults stop here */
    uint64_t stable_jitter_ns;  /* after GST: uniform in [0, stable_jitter_ns] */
};

struct netsim_msg {
    uint32_t refs;
    uint32_t len;
    uint8_t data[];
};

struct netsim_entry {
    uint64_t at_ns;
    uint64_t counter;
    struct netsim_msg *msg;
    uint32_t from;
    uint32_t to;
};

struct netsim_stats {
    uint64_t sent;        /* send calls */
    uint64_t delivered;
    uint64_t lost;
    uint64_t partitioned;
    uint64_t duplicated;
    uint64_t held;        /* deliveries postponed by a hold */
};

struct netsim {
    struct netsim_config cfg;
    struct prng rng;
    uint32_t nodes;
    struct netsim_entry *heap;
    size_t heap_len;
    size_t heap_cap;
    uint64_t counter;
    uint64_t *hold_until_ns; /* per node */
    struct netsim_partition parts[NETSIM_PARTITIONS_MAX];
    uint32_t nparts;
    struct netsim_stats stats;
    /* Free lists of message buffers by size class, so the hot path mostly
     * recycles instead of calling malloc. */
    struct netsim_msg *free_small;
    struct netsim_msg *free_large;
};

/* 0 or BFTKV_E_NOMEM. */
int netsim_init(struct netsim *ns, uint32_t nodes, const struct netsim_config *cfg, uint64_t seed);
void netsim_destroy(struct netsim *ns);

/* Add a split partition; returns the array of nodes flags to fill (cut side =
 * 1), or NULL when NETSIM_PARTITIONS_MAX are there already. */
uint8_t *netsim_partition_add(struct netsim *ns, uint64_t start_ns, uint64_t end_ns);

/* Add a partition of any kind, flapping when on_ns > 0; returns the marks to
 * fill (all 0), or NULL when NETSIM_PARTITIONS_MAX are there already. */
uint8_t *netsim_partition_add_kind(struct netsim *ns, enum netsim_cut_kind kind, uint64_t start_ns,
                                   uint64_t end_ns, uint64_t on_ns, uint64_t off_ns);

/* A buffer of len bytes with one reference owned by the caller. */
struct netsim_msg *netsim_msg_new(struct netsim *ns, const void *data, uint32_t len);
void netsim_msg_get(struct netsim_msg *m);
void netsim_msg_put(struct netsim *ns, struct netsim_msg *m);

/* Send m from -> to at now_ns, extra_ns later than the network alone would
 * deliver it (an adversarial scheduler's delay): the network takes its own
 * references (none if the message is lost); the caller keeps its reference. */
void netsim_send(struct netsim *ns, uint64_t now_ns, uint32_t from, uint32_t to, struct netsim_msg *m,
                 uint64_t extra_ns);

/* Enqueue with an exact delivery time, bypassing every fault (the fixture and
 * replays use it). */
void netsim_push(struct netsim *ns, uint64_t at_ns, uint32_t from, uint32_t to, struct netsim_msg *m);

/* Delivery time of the next message, or UINT64_MAX when none is in flight. */
uint64_t netsim_next_time(const struct netsim *ns);

/* Take the next message: the caller owns the entry's reference. Messages for a
 * held node are re-queued at the end of the hold, so check the time again after
 * a false return. false when the queue is empty or the head was postponed. */
bool netsim_pop(struct netsim *ns, struct netsim_entry *e);

/* Hold what arrives for node until until_ns. */
void netsim_hold(struct netsim *ns, uint32_t node, uint64_t until_ns);

/* Is the link from -> to cut by a partition at now_ns? */
bool netsim_cut(const struct netsim *ns, uint64_t now_ns, uint32_t from, uint32_t to);

size_t netsim_in_flight(const struct netsim *ns);

#endif /* BFTKV_SIM_NETSIM_H */
