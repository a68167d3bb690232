/* The one in-memory cluster of the replica's unit tests. It owns each job once:
 *
 *  - n replicas with keys from fixed seeds and stores with fixed hash keys, so
 *    a run replays exactly (rh_init);
 *  - a FIFO pump that delivers every outbox message to its destination, in
 *    order or by a picked index, checking the replica's invariants after every
 *    step and resume (rh_step, rh_run);
 *  - one network model on the way (struct rh_net, replica_harness_net.c):
 *    partitions, silence, deafness, type drops, link cuts, seeded loss and
 *    duplication, holding and recording, crash-restart at a point of a
 *    workload; then an optional test filter for what only one test does;
 *  - one simulated clock: rh_tick ticks every replica and the clients,
 *    rh_advance delivers and ticks in steps until a time or a condition;
 *  - clients: requests encoded by hand (rh_request, rh_submit), every reply
 *    decoded, MAC-checked and kept in an inbox; and closed-loop clients that
 *    retransmit to every replica on a timeout (rh_workload,
 *    replica_harness_client.c);
 *  - one record per replica of the batches it executed and the checkpoints it
 *    took, in order and by seq (rh_agree, rh_logs_same, rh_exec_digest);
 *  - crash-restart: a replica destroyed and created again, empty (rh_restart).
 *
 * Test code: it allocates freely and aborts on its own misuse. */
#ifndef BFTKV_TESTS_REPLICA_HARNESS_H
#define BFTKV_TESTS_REPLICA_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/auth.h"
#include "engine/pbft.h"
#include "engine/wire.h"
#include "store/store.h"

#define RH_REPLICAS_MAX 7u
#define RH_CLIENTS_MAX 64u
#define RH_FROM_CLIENT 0xFFFFu /* rh_msg.from for messages a client sent */
#define RH_VALUE_MAX 4096u     /* values of the closed-loop clients' PUTs */
#define RH_MS (1000ull * 1000ull)

struct rh_msg {
    uint16_t from; /* replica id or RH_FROM_CLIENT */
    uint16_t to;   /* replica id */
    uint32_t len;
    uint8_t *bytes;
};

/* A reply a client received, decoded and MAC-checked. */
struct rh_reply {
    uint16_t replica;
    uint16_t client;
    uint16_t lane;
    uint64_t view;
    uint64_t timestamp;
    int16_t status;
    uint8_t rflags;
    uint32_t result_len;
    uint8_t digest[32];
    uint8_t *result; /* NULL unless WIRE_REPLY_FULL */
};

struct rh_exec {
    uint64_t seq;
    uint8_t digest[32];
};

/* What a replica reported through one hook, in order (e[0..n)), and by seq:
 * at[seq] is 1 + the index of the last entry for seq (0: none). */
struct rh_log {
    struct rh_exec *e;
    size_t n, cap;
    uint32_t *at;
    size_t at_cap;
};

/* The network between the replicas, and between replicas and clients. A
 * message to a replica is dropped when a rule matches (no roll is drawn
 * then); else one roll of the cluster's generator decides loss and
 * duplication. Replies are lost when their replica is isolated or by a roll
 * (unless spare_replies). Zero everywhere is a perfect network. */
struct rh_net {
    uint64_t isolated;           /* bit per replica: partitioned, nothing to or from it, replies included */
    uint64_t silent;             /* bit per replica: everything it sends to replicas */
    uint64_t deaf;               /* bit per replica: everything sent to it (clients' too) */
    uint32_t drop_types;         /* bit per wire type (1u << WIRE_COMMIT, ...), from any replica */
    uint32_t keep_to_mask_types; /* types dropped unless `to` is in keep_to */
    uint64_t keep_to;
    uint64_t drop_pp_seq;        /* PRE-PREPAREs of this seq (0: none) */
    uint64_t cut[RH_REPLICAS_MAX]; /* cut[a] bit b: replica a's messages to replica b (one way) ... */
    uint32_t cut_types;          /* ... of these wire types only (0: all) */
    uint32_t loss_pct;           /* roll < loss_pct: lost */
    uint32_t dup_pct;            /* roll >= 100 - dup_pct: delivered twice */
    bool spare_replies;          /* replies draw no roll and are never lost to one */
    /* Messages from replicas of these types to the replicas in hold_to (0:
     * every replica) wait in held[] until rh_release. */
    uint32_t hold_types;
    uint64_t hold_to;
    struct rh_msg *held;
    size_t nheld, held_cap;
    /* A copy of the last message of record_type sent by record_from (0: none). */
    uint8_t record_type;
    uint16_t record_from;
    uint8_t *recorded;
    size_t recorded_len;
};

/* A closed-loop client: one PUT outstanding, done on f+1 matching replies. */
struct rh_client {
    bool busy;
    uint64_t ts;
    uint64_t sent_ns;
    uint64_t voted; /* replicas that replied to ts */
    int16_t status[RH_REPLICAS_MAX];
    uint8_t digest[RH_REPLICAS_MAX][32];
    size_t len;
    uint8_t buf[RH_VALUE_MAX + 256u];
};

/* How rh_step hands a message to its replica (engine/pbft.h, struct pbft_event). */
enum rh_deliver {
    RH_DELIVER_RAW = 0,  /* msg/len: the replica decodes and authenticates */
    RH_DELIVER_DECODED,  /* decoded here; the replica authenticates */
    RH_DELIVER_VERIFIED, /* decoded and, when it verifies, authenticated here as a
                            server's auth stage does; the replica is told so */
};

struct rh_cluster;
struct persist_disk;
#define RH_DISK_KINDS 9u /* = PERSIST_KINDS (persist_check.h) */
/* A test's own filter, after the network's rules: return true to drop. */
typedef bool (*rh_filter)(struct rh_cluster *c, const struct rh_msg *m, void *arg);

struct rh_cluster {
    uint16_t n, f, group, clients;
    struct auth_keypair rkp[RH_REPLICAS_MAX], ckp[RH_CLIENTS_MAX];
    struct auth_public rpub[RH_REPLICAS_MAX], cpub[RH_CLIENTS_MAX];
    struct auth_ctx rauth[RH_REPLICAS_MAX], cauth[RH_CLIENTS_MAX];
    struct store *store[RH_REPLICAS_MAX];
    struct pbft_replica *r[RH_REPLICAS_MAX];
    struct pbft_replica_config cfg[RH_REPLICAS_MAX];
    struct pbft_out out;
    struct wire_limits lim;
    uint64_t rng; /* the seeded generator of the rolls and the workload */

    /* The clock: rh_advance delivers up to `burst` messages (0: until the
     * queue is empty) between two ticks. */
    uint64_t now_ns;
    uint32_t burst;

    /* FIFO of messages to replicas. */
    struct rh_msg *q;
    size_t q_head, q_len, q_cap;

    struct rh_net net;
    rh_filter filter;
    void *filter_arg;
    uint64_t dropped; /* by the network's rules and rolls, replies included */
    uint64_t delivered;
    uint8_t deliver;   /* enum rh_deliver (rh_init: RAW); a message that does
                          not decode always goes raw */
    uint64_t decoded;  /* messages delivered decoded ... */
    uint64_t verified; /* ... and of those, marked authenticated */

    /* Crash-restart replica restart_who once ops_done reaches restart_at_ops
     * (0: never), between two deliveries to others; restart_le is its
     * last_executed when it crashed. */
    uint32_t restart_at_ops;
    uint16_t restart_who;
    uint64_t restart_le;

    /* Replies: the closed-loop clients see each first; then on_reply if set,
     * else the inbox (if keep_replies). */
    bool keep_replies;
    struct rh_reply *replies;
    size_t nreplies, replies_cap;
    void (*on_reply)(struct rh_cluster *c, const struct rh_reply *rp, void *arg);
    void *reply_arg;
    uint64_t bad_replies; /* failed decode or MAC: must stay 0 */

    /* The closed-loop clients: PUTs of value_len bytes over `keys` keys. */
    struct rh_client *cl;
    uint32_t ops_target, ops_issued, ops_done;
    uint32_t keys, value_len;
    uint64_t client_timeout_ns;

    /* What every replica executed and the checkpoints it took. */
    struct rh_log execs[RH_REPLICAS_MAX], ckpts[RH_REPLICAS_MAX];

    /* Durable replicas (rh_tune.durable): their disks (replica_harness_disk.c)
     * and the records listed, by enum pbft_persist. */
    struct persist_disk *disk[RH_REPLICAS_MAX];
    uint64_t disk_records[RH_DISK_KINDS];
};

/* tune may adjust each replica's config (after defaults) before creation. */
typedef void (*rh_tune)(struct pbft_replica_config *cfg, void *arg);

/* A ready-made tune: non-zero fields replace the defaults; bugs per replica. */
struct rh_tune {
    uint32_t k, l, w, batch_requests;
    uint16_t lanes;
    uint32_t bugs[RH_REPLICAS_MAX];
    uint64_t request_timeout_ns; /* the view-change timer T */
    uint64_t retransmit_ns;
    bool durable; /* every replica lists records; the harness checks persist-before-send */
};
void rh_tune_apply(struct pbft_replica_config *cfg, void *arg); /* arg: struct rh_tune * or NULL */
/* seed keys the stores and starts the generator. */
void rh_init(struct rh_cluster *c, uint16_t n, uint16_t f, uint16_t clients, uint64_t seed, rh_tune tune,
             void *arg);
/* A cluster under load in 1 ms ticks: rh_init, then replicas retransmit after 5
 * ms and suspect the primary after 10 s unless t sets either, and 200
 * messages are delivered per tick so timers fire under load too. */
void rh_init_loaded(struct rh_cluster *c, uint16_t n, uint16_t f, uint16_t clients, uint64_t seed,
                    const struct rh_tune *t);
/* A durable replica's outbox: apply its records to its disk, then check that each
 * message it sends depends only on records listed (persist_check.h); aborts on a
 * violation. Called for every outbox drained. */
void rh_disk_outbox(struct rh_cluster *c, uint16_t who, const struct pbft_out *o);
void rh_disk_free(struct rh_cluster *c);

/* Free everything; returns bad_replies (a test expects 0). */
uint64_t rh_fini(struct rh_cluster *c);

/* Crash and restart replica i: destroyed, its store cleared, created again
 * with the restarted flag. Its records go on. */
void rh_restart(struct rh_cluster *c, uint16_t i);

/* The next number of the cluster's generator. */
uint64_t rh_rand(struct rh_cluster *c);

/* Encode a client request (MACed for every replica) into buf; returns its size. */
size_t rh_request(struct rh_cluster *c, uint8_t *buf, size_t cap, uint16_t client, uint16_t lane, uint64_t ts,
                  uint8_t op, const char *key, const void *value, size_t vlen, uint8_t rflags);
/* Encode a request (rh_request) and queue it for `to` (rh_send). */
void rh_submit(struct rh_cluster *c, uint16_t client, uint16_t lane, uint64_t ts, uint8_t op, const char *key,
               const void *value, size_t vlen, uint8_t rflags, uint16_t to);
/* The type byte of a queued message (0 if shorter than a header). */
uint8_t rh_msg_type(const struct rh_msg *m);
/* Decode a message with the cluster's limits (aborts unless it decodes whole). */
void rh_decode(const struct rh_cluster *c, const uint8_t *buf, size_t len, struct wire_msg *m);
/* Queue a client message for replica `to`, or for all (to = UINT16_MAX). */
void rh_send(struct rh_cluster *c, uint16_t to, const uint8_t *msg, size_t len);
/* Queue a message as if replica `from` had sent it to `to`. */
void rh_inject(struct rh_cluster *c, uint16_t from, uint16_t to, const uint8_t *msg, size_t len);

/* Hand msg to replica `to` decoded (it must decode) with the given
 * authenticated flag, now, bypassing the queue and the network; its outbox is
 * drained into the queue. */
void rh_deliver_decoded(struct rh_cluster *c, uint16_t to, const uint8_t *msg, size_t len, bool authenticated);
/* Deliver one queued message (false when the queue is empty). */
bool rh_step(struct rh_cluster *c);
/* Deliver a queued message chosen by pick % queue length (reordering). */
bool rh_step_pick(struct rh_cluster *c, uint64_t pick);
/* Deliver until the queue is empty; returns the number delivered. */
size_t rh_run(struct rh_cluster *c);

/* A tick at every replica at time now_ns, then the clients' timers. */
void rh_tick(struct rh_cluster *c, uint64_t now_ns);
/* rh_tick at t, then deliver everything. */
void rh_tick_run(struct rh_cluster *c, uint64_t t);
/* Deliver (c->burst at a time), then tick at now + step (not beyond until),
 * and again, until done(c) or time reaches until. Returns done(c) (true
 * without one). */
bool rh_advance(struct rh_cluster *c, uint64_t until_ns, uint64_t step_ns, bool (*done)(struct rh_cluster *c));

/* The network (replica_harness_net.c). True when m is dropped or held. */
bool rh_net_drops(struct rh_cluster *c, struct rh_msg *m);
/* True when the reply of `replica` is lost on its way to its client. */
bool rh_net_loses_reply(struct rh_cluster *c, uint16_t replica);
/* Queue the held messages again, in the order they were sent (no delivery). */
void rh_release(struct rh_cluster *c);
/* Forget every rule, held message and record: a perfect network again. */
void rh_net_clear(struct rh_cluster *c);

/* The closed-loop clients (replica_harness_client.c): start `ops` PUTs, spread
 * over the clients; rh_client_reply takes a reply first; rh_clients_tick
 * retransmits what timed out, to every replica (TOCS 2002 §4.1). */
void rh_workload(struct rh_cluster *c, uint32_t ops, uint32_t keys, uint32_t value_len);
bool rh_workload_done(struct rh_cluster *c);
void rh_client_reply(struct rh_cluster *c, const struct rh_reply *rp);
void rh_clients_tick(struct rh_cluster *c);

/* Replies of one request (client, ts), by replica; returns how many. */
size_t rh_replies_for(const struct rh_cluster *c, uint16_t client, uint64_t ts, const struct rh_reply **out,
                      size_t cap);
void rh_replies_clear(struct rh_cluster *c);

/* ---- Checks over the records -------------------------------------------------------- */

const struct pbft_replica_stats *rh_stats(const struct rh_cluster *c, uint16_t i);
/* The last batch digest replica i executed at seq, or checkpoint digest it
 * took at seq (NULL: none). */
const uint8_t *rh_exec_digest(const struct rh_cluster *c, uint16_t i, uint64_t seq);
const uint8_t *rh_ckpt_digest(const struct rh_cluster *c, uint16_t i, uint64_t seq);
/* The replicas in `who` (bits) executed the same batch at every seq two of
 * them executed (prints the first difference). */
bool rh_agree(const struct rh_cluster *c, uint64_t who);
/* Replicas a and b executed the same batches at the same seqs, in order. */
bool rh_logs_same(const struct rh_cluster *c, uint16_t a, uint16_t b);
/* Every replica not isolated has the same last_executed. */
bool rh_replicas_level(struct rh_cluster *c);
/* The workload is done and the replicas are level. */
bool rh_settled(struct rh_cluster *c);
/* With RH_VERBOSE set in the environment: the replicas' catch-up counters. */
void rh_dump(const struct rh_cluster *c, const char *what);

#endif /* BFTKV_TESTS_REPLICA_HARNESS_H */
