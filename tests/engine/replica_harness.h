/* A tiny in-memory cluster for the replica's unit tests: n replicas with their
 * keys and stores, hand-rolled clients (wire_encode_request + the client's
 * authenticator), and a FIFO message pump that delivers every outbox message to
 * its destination replicas in order. A filter can drop (or record) any message
 * on its way; replies to clients are checked (decode + MAC) and kept in an inbox.
 * Test code: it allocates freely. */
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

/* How rh_step hands a message to its replica (engine/pbft.h, struct pbft_event). */
enum rh_deliver {
    RH_DELIVER_RAW = 0,  /* msg/len: the replica decodes and authenticates */
    RH_DELIVER_DECODED,  /* decoded here; the replica authenticates */
    RH_DELIVER_VERIFIED, /* decoded and, when it verifies, authenticated here as a
                            server's auth stage does; the replica is told so */
};

struct rh_cluster;
/* Return true to drop the message. */
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
    uint64_t now_ns;

    /* FIFO of messages to replicas. */
    struct rh_msg *q;
    size_t q_head, q_len, q_cap;

    rh_filter filter;
    void *filter_arg;

    /* Replies, unless on_reply is set (then it gets them instead). */
    bool keep_replies;
    struct rh_reply *replies;
    size_t nreplies, replies_cap;
    void (*on_reply)(struct rh_cluster *c, const struct rh_reply *rp, void *arg);
    void *reply_arg;
    uint64_t bad_replies; /* failed decode or MAC: must stay 0 */

    /* Exec and checkpoint hooks, per replica. */
    struct rh_exec *execs[RH_REPLICAS_MAX];
    size_t nexecs[RH_REPLICAS_MAX], execs_cap;
    struct rh_exec ckpts[RH_REPLICAS_MAX][64];
    size_t nckpts[RH_REPLICAS_MAX];

    uint64_t delivered;
    uint8_t deliver;   /* enum rh_deliver (rh_init: RAW); a message that does
                          not decode always goes raw */
    uint64_t decoded;  /* messages delivered decoded ... */
    uint64_t verified; /* ... and of those, marked authenticated */
};

/* tune may adjust each replica's config (after defaults) before creation. */
typedef void (*rh_tune)(struct pbft_replica_config *cfg, void *arg);

/* A ready-made tune: non-zero fields replace the defaults; bugs per replica. */
struct rh_tune {
    uint32_t k, l, w, batch_requests;
    uint16_t lanes;
    uint32_t bugs[RH_REPLICAS_MAX];
    uint64_t request_timeout_ns; /* the view-change timer T */
};
void rh_tune_apply(struct pbft_replica_config *cfg, void *arg); /* arg: struct rh_tune * or NULL */
void rh_init(struct rh_cluster *c, uint16_t n, uint16_t f, uint16_t clients, rh_tune tune, void *arg);
void rh_fini(struct rh_cluster *c);

/* Encode a client request (MACed for every replica) into buf; returns its size. */
size_t rh_request(struct rh_cluster *c, uint8_t *buf, size_t cap, uint16_t client, uint16_t lane, uint64_t ts,
                  uint8_t op, const char *key, const void *value, size_t vlen, uint8_t rflags);
/* Encode a request (rh_request) and queue it for `to` (rh_send). */
void rh_submit(struct rh_cluster *c, uint16_t client, uint16_t lane, uint64_t ts, uint8_t op, const char *key,
               const void *value, size_t vlen, uint8_t rflags, uint16_t to);
/* The type byte of a queued message (0 if shorter than a header). */
uint8_t rh_msg_type(const struct rh_msg *m);
/* Queue a client message for replica `to`, or for all (to = UINT16_MAX). */
void rh_send(struct rh_cluster *c, uint16_t to, const uint8_t *msg, size_t len);
/* Queue a message as if replica `from` had sent it to `to`. */
void rh_inject(struct rh_cluster *c, uint16_t from, uint16_t to, const uint8_t *msg, size_t len);

/* Hand msg to replica `to` decoded (it must decode) with the given
 * authenticated flag, now, bypassing the queue and the filter; its outbox is
 * drained into the queue. */
void rh_deliver_decoded(struct rh_cluster *c, uint16_t to, const uint8_t *msg, size_t len, bool authenticated);
/* Deliver one queued message (false when the queue is empty). */
bool rh_step(struct rh_cluster *c);
/* Deliver a queued message chosen by pick % queue length (reordering). */
bool rh_step_pick(struct rh_cluster *c, uint64_t pick);
/* Deliver until the queue is empty; returns the number delivered. */
size_t rh_run(struct rh_cluster *c);
/* A tick at every replica at time now_ns. */
void rh_tick(struct rh_cluster *c, uint64_t now_ns);

/* Replies of one request (client, ts), by replica; returns how many. */
size_t rh_replies_for(const struct rh_cluster *c, uint16_t client, uint64_t ts, const struct rh_reply **out,
                      size_t cap);
void rh_replies_clear(struct rh_cluster *c);

#endif /* BFTKV_TESTS_REPLICA_HARNESS_H */
