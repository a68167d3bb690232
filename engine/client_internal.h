/* The PBFT client's internal state, shared by the two files that implement it:
 * client.c (lanes, submission, the ordered path, replies, the step) and
 * client_readonly.c (the read-only fast path: when to wait, re-ask, retry or
 * fall back, and which replicas answer stale; docs/design.md §5.3, "The
 * read-only path"). Nothing outside engine/ includes this header: the contract
 * with the runtime is engine/pbft.h.
 *
 * Everything is allocated once, in pbft_client_create(); the step never allocates.
 */
#ifndef BFTKV_ENGINE_CLIENT_INTERNAL_H
#define BFTKV_ENGINE_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/out.h"
#include "engine/pbft.h"

/* Largest REQUEST: header, fixed body, key, value, authenticator for n <= 64. */
#define CLIENT_REQUEST_MAX                                                             \
    (WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED + BFTKV_KEY_MAX + BFTKV_VALUE_MAX + BFTKV_AUTHENTICATOR_MAX)
/* Retransmission backoff doubles up to this multiple of retransmit_timeout_ns. */
#define CLIENT_BACKOFF_MAX 8u
/* Cached digests of empty results: statuses 0 .. -(CLIENT_EMPTY_DIGESTS-1). */
#define CLIENT_EMPTY_DIGESTS 32u

/* ---- Read-only path limits (client_readonly.c; docs/design.md §5.3) ---------- */

/* The read-only path never waits the whole retransmission timeout for the
 * last f replicas: once n - f have answered without q agreeing, the rest get as
 * long again as the answers took so far, and at least this fraction of the
 * timeout: 6.25 ms at the default 100 ms. The same floor bounds the wait for
 * any read-only round from below. */
#define CLIENT_RO_GRACE_MIN_SHIFT 4u
/* A read-only round waits this many smoothed read-only answer times (at least
 * the floor above, at most the retransmission timeout) before it re-asks. */
#define CLIENT_RO_WAIT_RTTS 4u
/* Per round: re-asks, with the same timestamp, of the replicas that have not
 * answered. */
#define CLIENT_RO_RESENDS_MAX 1u
/* Read-only rounds per GET (each with a fresh timestamp) before ordering. */
#define CLIENT_RO_ROUNDS_MAX 2u
/* A replica whose read-only answer disagreed with the accepted value in this
 * many consecutive accepted reads is marked stale ... */
#define CLIENT_RO_STALE_STRIKES 2u
/* ... until it agrees once, or this many retransmission timeouts pass after
 * its last disagreement. */
#define CLIENT_RO_STALE_DECAY_TIMEOUTS 32u

BFTKV_STATIC_ASSERT(CLIENT_RO_ROUNDS_MAX >= 1 && CLIENT_RO_ROUNDS_MAX <= UINT8_MAX, "rounds fit a u8");
BFTKV_STATIC_ASSERT(CLIENT_RO_RESENDS_MAX <= UINT8_MAX, "re-asks fit a u8");
BFTKV_STATIC_ASSERT(CLIENT_RO_STALE_STRIKES >= 1 && CLIENT_RO_STALE_STRIKES < UINT8_MAX, "strikes fit a u8");
BFTKV_STATIC_ASSERT(CLIENT_RO_STALE_DECAY_TIMEOUTS <= 4u * CLIENT_BACKOFF_MAX,
                    "config_valid bounds the timeout by UINT64_MAX / (4 * CLIENT_BACKOFF_MAX)");

enum client_lane_state {
    LANE_IDLE = 0,
    LANE_ORDERED = 1,  /* waiting for f+1 matching replies */
    LANE_READONLY = 2, /* waiting for q matching read-only replies */
    LANE_DONE = 3,     /* accepted, waiting to be reported to the caller */
    LANE_STALE = 4,    /* a stale read: waiting for the one replica asked */
};

/* One replica's reply for the lane's current timestamp: on the ordered path the
 * latest, on the read-only path the first (a replica votes once per round). */
struct client_vote {
    bool valid;
    int16_t status;
    uint64_t view;
    uint8_t digest[BFTKV_DIGEST_SIZE];
};

struct client_lane {
    uint8_t state;     /* enum client_lane_state */
    uint8_t op;
    uint16_t klen;
    uint32_t vlen;
    uint64_t timestamp;
    uint64_t sent_ns;     /* when the current read-only round, or the ordered
                             request, went out */
    uint64_t deadline_ns;
    uint64_t timeout_ns; /* current retransmission interval (backoff) */
    uint32_t retransmits;
    bool full_asked;     /* the full result was asked of everyone before the timeout */
    bool ro_grace;       /* read-only: the deadline is client_readonly_grace's */
    uint8_t ro_round;    /* read-only rounds started for this GET, 1.. */
    uint8_t ro_resends;  /* re-asks in the current round */
    uint16_t stale_target; /* a stale read: the replica asked last ... */
    uint64_t stale_asked;  /* ... and every one asked (bit per replica): the answers it takes */
    uint8_t *req;        /* CLIENT_REQUEST_MAX bytes: the encoded REQUEST */
    size_t req_len;
    struct client_vote *votes; /* n entries */
    /* The one full result kept, verified against its digest. */
    uint8_t *result;     /* BFTKV_VALUE_MAX bytes */
    bool have_result;
    int16_t result_status;
    uint32_t result_len;
    uint8_t result_digest[BFTKV_DIGEST_SIZE];
};

/* What the client learnt of one replica on the read-only path. */
struct client_replica {
    uint8_t strikes;    /* consecutive accepted reads it answered differently */
    uint64_t strike_ns; /* time of the last of them */
};

struct pbft_client {
    struct pbft_client_config cfg;
    const struct auth_ctx *auth;
    uint64_t epoch_seen;      /* the highest map epoch an authenticated REPLY carried */
    uint16_t epoch_from;      /* the replica that first sent it */
    struct wire_limits lim;
    uint16_t quorum;          /* q, read-only path */
    uint16_t need_ordered;    /* f+1 (f with PBFT_BUG_CLIENT_F_REPLIES) */
    uint64_t view;            /* the view we believe current: primary = view mod n */
    uint64_t last_timestamp;
    uint64_t ro_answer_ns;    /* smoothed time from a read-only round to its q-th answer; 0: none yet */
    uint64_t rtt_ns;          /* smoothed time from an ordered request to its
                                 result, from requests never retransmitted; 0:
                                 none yet (client_first_timeout) */
    uint64_t rttvar_ns;       /* smoothed deviation of those times from rtt_ns */
    uint32_t loss_score;      /* smoothed share of ordered requests that needed a
                                 retransmission, in 1/1024 (client_hedging) */
    bool hedging;             /* send ordered requests to every replica at once */
    struct client_lane *lanes;
    uint8_t *scratch;         /* CLIENT_REQUEST_MAX: re-encoding */
    uint16_t *done;           /* FIFO of accepted lanes not yet reported, lanes entries */
    uint32_t done_head;
    uint32_t done_count;
    struct pbft_client_stats stats;
    struct client_replica replicas[BFTKV_REPLICAS_MAX];
    /* Digests of the empty result per status 0, -1, ..., -(CLIENT_EMPTY_DIGESTS-1),
     * computed on first use: most digest-only replies carry one of these. */
    uint8_t empty_digest[CLIENT_EMPTY_DIGESTS][BFTKV_DIGEST_SIZE];
    uint32_t empty_digest_known; /* bit per status */
    /* one allocation each, freed by destroy */
    uint8_t *req_pool;
    uint8_t *result_pool;
    struct client_vote *vote_pool;
};

/* ---- client.c, used by client_readonly.c --------------------------------------- */

/* Re-encode the lane's stored request with these flags (and the timestamp now
 * in l), fresh authenticator and current view hint. */
void client_lane_reencode(struct pbft_client *c, struct client_lane *l, uint16_t lane, uint8_t rflags);
/* Append the lane's request for one replica; false (out->more) when full. */
bool client_lane_send_to(const struct pbft_client *c, const struct client_lane *l, uint16_t replica,
                         struct pbft_out *out);
bool client_lane_send(const struct pbft_client *c, const struct client_lane *l, bool to_all, struct pbft_out *out);
void client_lane_votes_clear(const struct pbft_client *c, struct client_lane *l);
bool client_vote_matches(const struct client_vote *v, int16_t status, const uint8_t *digest);
uint16_t client_class_count(const struct pbft_client *c, const struct client_lane *l, int16_t status,
                            const uint8_t *digest);
/* The read-only path gave up: order the GET with a new timestamp. */
void client_lane_fallback(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out);

/* ---- client_readonly.c ---------------------------------------------------------- */

/* The next timestamp for the lane: one above the last, moved up (by less than
 * n) so that the replica that sends the result in full is not marked stale. */
uint64_t client_readonly_timestamp_pick(struct pbft_client *c, uint16_t lane, uint64_t now_ns);
/* The first wait of a read-only round. */
uint64_t client_readonly_wait_ns(const struct pbft_client *c);
/* A read-only reply was recorded and did not complete the lane: decide. */
void client_readonly_on_reply(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out);
/* The read-only lane's deadline passed: re-ask, retry, or fall back. */
void client_readonly_on_deadline(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out);
/* A read-only lane was accepted: learn which replicas answered stale and how
 * long answers take. */
void client_readonly_on_accept(struct pbft_client *c, const struct client_lane *l, uint64_t now_ns);

#endif /* BFTKV_ENGINE_CLIENT_INTERNAL_H */
