/* The PBFT client as a step function (TOCS 2002 §4.1; docs/design.md §5.3,
 * "The read-only path"; API in engine/pbft.h).
 *
 * A client has `lanes` slots, each holding at most one operation in flight. A lane
 * keeps the encoded REQUEST (for retransmission), its timestamp, a deadline, and
 * a reply collector: per replica its authenticated reply for the lane's
 * timestamp (the latest on the ordered path, the first of a read-only round),
 * and at most one full result whose digest verified. An operation
 * completes when enough distinct replicas sent matching replies — f+1 on the
 * ordered path (at least one of them is correct, TOCS 2002 §4.1), q = ⌈(n+f+1)/2⌉
 * on the read-only path (§5.1.3: the answer of a quorum that intersects every
 * commit quorum in a correct replica) — and the full result with that digest is
 * in hand. Replicas send one full result and digests otherwise (docs/design.md §5); a
 * retransmission asks every replica for the full result (WIRE_REQ_FULL_ALL).
 *
 * On the wire the lanes are lane_base .. lane_base + lanes - 1: handles sharing a
 * client id lease disjoint runs of the replicas' client_lanes (client/client_session.c).
 *
 * Timestamps are timestamp_base + a counter, strictly increasing across all lanes,
 * so a replica's "last timestamp per client" rule and its per-lane reply cache are
 * both satisfied. The client learns the current view from the replies it accepts
 * and sends the next small request to that view's primary.
 *
 * The read-only path's decisions (wait, re-ask, retry, fall back) and what the
 * client learns of stale replicas live in client_readonly.c; the state both
 * files share is in client_internal.h.
 *
 * Memory, all allocated by pbft_client_create (sizing below); no I/O, no clock.
 */
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/client_internal.h"
#include "engine/pbft.h"

BFTKV_STATIC_ASSERT(CLIENT_REQUEST_MAX <= BFTKV_DATAGRAM_MAX, "a request must fit one datagram");
BFTKV_STATIC_ASSERT(PBFT_LANES_MAX <= UINT16_MAX, "lane ids are 16 bits on the wire");

/* ---- Configuration ------------------------------------------------------------- */

void pbft_client_config_defaults(struct pbft_client_config *cfg)
{
    cfg->lanes = 1;
    cfg->lane_base = 0;
    cfg->retransmit_timeout_ns = 100u * 1000u * 1000u; /* 100 ms */
    cfg->timestamp_base = 0;
    cfg->readonly_fast_path = true;
    cfg->stale_reads = false;
    cfg->bugs = 0;
}

static bool config_valid(const struct pbft_client_config *cfg, const struct auth_ctx *auth)
{
    if (cfg->n < 1 || cfg->n > BFTKV_REPLICAS_MAX || (uint32_t)cfg->n < 3u * cfg->f + 1u) {
        return false;
    }
    if (cfg->lanes < 1 || cfg->lanes > PBFT_LANES_MAX || cfg->retransmit_timeout_ns == 0
        || (uint32_t)cfg->lane_base + cfg->lanes > PBFT_LANES_MAX) {
        return false;
    }
    if (cfg->id >= BFTKV_CLIENTS_MAX || cfg->retransmit_timeout_ns > UINT64_MAX / (4u * CLIENT_BACKOFF_MAX)) {
        return false;
    }
    return auth->is_client && auth->self == cfg->id && auth->n == cfg->n;
}

/* Memory: lanes * (CLIENT_REQUEST_MAX + BFTKV_VALUE_MAX + n * sizeof(struct client_vote))
 * + CLIENT_REQUEST_MAX, about 8 MiB at 64 lanes. */
int pbft_client_create(const struct pbft_client_config *cfg, const struct auth_ctx *auth,
                       struct pbft_client **out)
{
    if (cfg == NULL || auth == NULL || out == NULL || !config_valid(cfg, auth)) {
        return BFTKV_E_INVAL;
    }
    struct pbft_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return BFTKV_E_NOMEM;
    }
    size_t lanes = cfg->lanes;
    c->lanes = calloc(lanes, sizeof *c->lanes);
    c->done = calloc(lanes, sizeof *c->done);
    c->scratch = malloc(CLIENT_REQUEST_MAX);
    c->req_pool = malloc(lanes * CLIENT_REQUEST_MAX);
    c->result_pool = malloc(lanes * BFTKV_VALUE_MAX);
    c->vote_pool = calloc(lanes * cfg->n, sizeof *c->vote_pool);
    if (c->lanes == NULL || c->done == NULL || c->scratch == NULL || c->req_pool == NULL
        || c->result_pool == NULL || c->vote_pool == NULL) {
        pbft_client_destroy(c);
        return BFTKV_E_NOMEM;
    }
    c->cfg = *cfg;
    c->auth = auth;
    c->lim = (struct wire_limits){ .group = cfg->group, .n = cfg->n, .clients_max = BFTKV_CLIENTS_MAX };
    c->quorum = pbft_quorum(cfg->n, cfg->f);
    c->need_ordered = (uint16_t)(cfg->f + 1u);
    if ((cfg->bugs & PBFT_BUG_CLIENT_F_REPLIES) != 0) {
        c->need_ordered = cfg->f > 0 ? cfg->f : 1u; /* injected bug: one lying replica suffices */
    }
    if ((cfg->bugs & PBFT_BUG_READONLY_QUORUM_2F) != 0 && c->quorum > c->need_ordered) {
        c->quorum--; /* injected bug: a read-only answer vouched for by q - 1 replicas */
    }
    BFTKV_ASSERT(c->quorum >= c->need_ordered);
    BFTKV_ASSERT(c->quorum <= cfg->n);
    c->view = 0;
    c->last_timestamp = cfg->timestamp_base;
    for (size_t i = 0; i < lanes; i++) {
        struct client_lane *l = &c->lanes[i];
        l->state = LANE_IDLE;
        l->req = c->req_pool + i * CLIENT_REQUEST_MAX;
        l->result = c->result_pool + i * BFTKV_VALUE_MAX;
        l->votes = c->vote_pool + i * cfg->n;
    }
    *out = c;
    return 0;
}

void pbft_client_destroy(struct pbft_client *c)
{
    if (c == NULL) {
        return;
    }
    free(c->lanes);
    free(c->done);
    free(c->scratch);
    free(c->req_pool);
    free(c->result_pool);
    free(c->vote_pool);
    free(c);
}

uint64_t pbft_client_epoch_seen(const struct pbft_client *c, uint16_t *replica)
{
    if (replica != NULL)
        *replica = c->epoch_from;
    return c->epoch_seen;
}

const struct pbft_client_stats *pbft_client_stats(const struct pbft_client *c)
{
    return &c->stats;
}

int pbft_client_free_lane(const struct pbft_client *c)
{
    for (uint16_t i = 0; i < c->cfg.lanes; i++) {
        if (c->lanes[i].state == LANE_IDLE) {
            return i;
        }
    }
    return -1;
}

/* ---- Sending --------------------------------------------------------------------- */

/* Copy one finished message into the outbox; false (and out->more) when full. */
static bool client_out_push(struct pbft_out *out, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg,
                            size_t len)
{
    if (pbft_out_copy(out, dest_kind, dest_id, msg, len))
        return true;
    out->more = true;
    return false;
}

static uint16_t client_primary(const struct pbft_client *c)
{
    return (uint16_t)(c->view % c->cfg.n);
}

/* Encode the lane's request into dst (CLIENT_REQUEST_MAX bytes) with a fresh
 * authenticator; the view hint is the view we believe current. */
static size_t lane_encode(const struct pbft_client *c, const struct client_lane *l, uint16_t lane, uint8_t rflags,
                          const uint8_t *key, const uint8_t *value, uint8_t *dst)
{
    struct wire_request rq = {
        .client = c->cfg.id,
        .lane = (uint16_t)(c->cfg.lane_base + lane),
        .timestamp = l->timestamp,
        .op = l->op,
        .rflags = rflags,
        .klen = l->klen,
        .vlen = l->vlen,
        .key = key,
        .value = value,
    };
    size_t auth_off = 0;
    size_t len = wire_encode_request(dst, CLIENT_REQUEST_MAX, c->cfg.group, c->cfg.n, c->view, &rq, &auth_off);
    BFTKV_ASSERT(len > 0);
    auth_authenticator_fill(c->auth, dst, len, auth_off);
    return len;
}

/* Re-encode the stored request with other flags (and, for a fallback, a new
 * timestamp already set in l): key and value are read back from the stored copy. */
void client_lane_reencode(struct pbft_client *c, struct client_lane *l, uint16_t lane, uint8_t rflags)
{
    const uint8_t *key = l->req + WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED;
    size_t len = lane_encode(c, l, lane, rflags, key, key + l->klen, c->scratch);
    memcpy(l->req, c->scratch, len);
    l->req_len = len;
}

/* A large request (header + body above BFTKV_INLINE_REQUEST_MAX) goes to every
 * replica: the primary batches only its digest (docs/design.md §5.3). */
static bool lane_is_large(const struct pbft_client *c, const struct client_lane *l)
{
    return l->req_len - (size_t)c->cfg.n * BFTKV_MAC_SIZE > BFTKV_INLINE_REQUEST_MAX;
}

bool client_lane_send_to(const struct pbft_client *c, const struct client_lane *l, uint16_t replica,
                         struct pbft_out *out)
{
    BFTKV_ASSERT(replica < c->cfg.n);
    return client_out_push(out, PBFT_DEST_REPLICA, replica, l->req, l->req_len);
}

bool client_lane_send(const struct pbft_client *c, const struct client_lane *l, bool to_all, struct pbft_out *out)
{
    if (to_all) {
        return client_out_push(out, PBFT_DEST_ALL_REPLICAS, 0, l->req, l->req_len);
    }
    return client_out_push(out, PBFT_DEST_REPLICA, client_primary(c), l->req, l->req_len);
}

void client_lane_votes_clear(const struct pbft_client *c, struct client_lane *l)
{
    memset(l->votes, 0, (size_t)c->cfg.n * sizeof *l->votes);
    l->have_result = false;
    l->result_len = 0;
}

/* ---- Submit ------------------------------------------------------------------------ */

int pbft_request_check(uint8_t op, const void *key, size_t klen, const void *value, size_t vlen)
{
    if (op != WIRE_OP_PUT && op != WIRE_OP_GET && op != WIRE_OP_DEL) {
        return BFTKV_E_INVAL;
    }
    if (klen == 0) {
        return BFTKV_E_KEY_EMPTY;
    }
    if (klen > BFTKV_KEY_MAX) {
        return BFTKV_E_KEY_TOO_LARGE;
    }
    if (vlen > BFTKV_VALUE_MAX) {
        return BFTKV_E_VALUE_TOO_LARGE;
    }
    if (op != WIRE_OP_PUT && vlen != 0) {
        return BFTKV_E_INVAL; /* GET and DEL carry no value */
    }
    if (key == NULL || (vlen > 0 && value == NULL)) {
        return BFTKV_E_INVAL;
    }
    return 0;
}

/* The first wait of an ordered request before it goes to every replica: twice
 * the smoothed time ordered requests took, or that time plus four smoothed
 * deviations if more (RFC 6298's retransmission timeout; Karn's rule: only
 * requests never retransmitted count), kept between a quarter of the configured
 * timeout and the timeout itself (docs/design.md §5.5.2). On a fast network the
 * floor keeps spikes of the servers from turning into retransmissions to every
 * replica; under loss a lost request costs two round trips instead of the whole
 * timeout; under a load whose latency varies (an open loop near the peak) the
 * deviation keeps slow answers from being taken for losses, which made clients
 * hedge and multiply the datagrams of a group already short of CPU. */
static uint64_t client_first_timeout(const struct pbft_client *c)
{
    uint64_t t = c->cfg.retransmit_timeout_ns, floor = t / 4u;
    if (c->rtt_ns == 0)
        return t;
    uint64_t fit = 2u * c->rtt_ns, rfc = c->rtt_ns + 4u * c->rttvar_ns;
    fit = fit < rfc ? rfc : fit;
    fit = fit < floor ? floor : fit;
    return fit < t ? fit : t;
}

/* Hedging under loss. When more than 1 in 8 recent ordered requests needed a
 * retransmission, the network loses them (or the primary is slow): the client
 * then sends each ordered request to every replica at once, as it does a large
 * one, so a request lost on its way to the primary still reaches it through a
 * backup's relay one hop later, instead of after a timeout. It stops once fewer
 * than 1 in 64 do. Every completed ordered request is a sample, weight 1/16. */
#define CLIENT_HEDGE_ON 128u  /* 1/8 in 1/1024 */
#define CLIENT_HEDGE_OFF 16u  /* 1/64 */

static void client_loss_sample(struct pbft_client *c, bool retransmitted)
{
    uint32_t x = retransmitted ? 1024u : 0u;
    c->loss_score = c->loss_score - c->loss_score / 16u + x / 16u;
    if (!c->hedging && c->loss_score > CLIENT_HEDGE_ON)
        c->hedging = true;
    else if (c->hedging && c->loss_score < CLIENT_HEDGE_OFF)
        c->hedging = false;
}

/* ---- Stale reads (docs/design.md §5.3, "Stale reads") ----------------------------------
 * A GET of a client with stale_reads asks ONE replica for its current value
 * (a read-only request with WIRE_REQ_FULL_ALL, so that replica sends the value in
 * full) and takes its first authenticated answer: no ordering, no quorum. Each
 * lane starts at its own replica, so a handle's reads spread over the group. No
 * answer within the retransmission interval (which backs off), or an answer that
 * says the replica holds no state, moves the ask on to the next replica. */
static int lane_stale_submit(struct pbft_client *c, uint16_t lane, const void *key, uint64_t now_ns,
                                  struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    l->req_len = lane_encode(c, l, lane, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL, key, NULL, l->req);
    l->stale_target = (uint16_t)(((uint32_t)c->cfg.id + lane + c->cfg.lane_base) % c->cfg.n);
    l->stale_asked = 1ull << l->stale_target;
    if (!client_lane_send_to(c, l, l->stale_target, out)) {
        return BFTKV_E_AGAIN;
    }
    client_lane_votes_clear(c, l);
    l->state = LANE_STALE;
    l->timeout_ns = client_first_timeout(c);
    l->sent_ns = now_ns;
    l->deadline_ns = now_ns + l->timeout_ns;
    l->retransmits = 0;
    c->stats.submitted++;
    c->stats.stale_submitted++;
    return lane;
}

/* Ask the next replica (fresh authenticator, same timestamp). */
static void lane_stale_move(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(l->state == LANE_STALE);
    uint16_t next = (uint16_t)((l->stale_target + 1u) % c->cfg.n);
    client_lane_reencode(c, l, lane, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    if (!client_lane_send_to(c, l, next, out)) {
        l->deadline_ns = now_ns; /* still due: the caller drains the outbox and ticks again */
        return;
    }
    l->stale_target = next;
    l->stale_asked |= 1ull << next;
    c->stats.stale_moves++;
    l->retransmits++;
    uint64_t cap = CLIENT_BACKOFF_MAX * c->cfg.retransmit_timeout_ns;
    l->timeout_ns = l->timeout_ns * 2u > cap ? cap : l->timeout_ns * 2u;
    l->deadline_ns = now_ns + l->timeout_ns;
}

int pbft_client_submit(struct pbft_client *c, uint64_t now_ns, uint8_t op, const void *key, size_t klen,
                       const void *value, size_t vlen, struct pbft_out *out)
{
    BFTKV_ASSERT(c != NULL);
    BFTKV_ASSERT(out != NULL);
    int rc = pbft_request_check(op, key, klen, value, vlen);
    if (rc != 0) {
        return rc;
    }
    int lane = pbft_client_free_lane(c);
    if (lane < 0) {
        return BFTKV_E_FULL;
    }
    struct client_lane *l = &c->lanes[lane];
    bool stale = op == WIRE_OP_GET && c->cfg.stale_reads;
    bool readonly = op == WIRE_OP_GET && c->cfg.readonly_fast_path;
    l->op = op;
    l->klen = (uint16_t)klen;
    l->vlen = (uint32_t)vlen;
    l->timestamp = client_readonly_timestamp_pick(c, (uint16_t)lane, now_ns);
    if (stale) {
        return lane_stale_submit(c, (uint16_t)lane, key, now_ns, out);
    }
    l->req_len = lane_encode(c, l, (uint16_t)lane, readonly ? WIRE_REQ_READONLY : 0u, key, value, l->req);
    /* Read-only requests go to every replica (TOCS 2002 §5.1.3), so do large ones;
     * the rest to the primary of the view we believe current (§4.1). */
    bool hedge = !readonly && !lane_is_large(c, l) && c->hedging;
    if (!client_lane_send(c, l, readonly || hedge || lane_is_large(c, l), out)) {
        return BFTKV_E_AGAIN; /* the outbox is full: drain it and submit again */
    }
    client_lane_votes_clear(c, l);
    l->state = readonly ? LANE_READONLY : LANE_ORDERED;
    l->timeout_ns = client_first_timeout(c);
    l->sent_ns = now_ns;
    l->deadline_ns = now_ns + (readonly ? client_readonly_wait_ns(c) : l->timeout_ns);
    l->retransmits = 0;
    l->full_asked = false;
    l->ro_grace = false;
    l->ro_round = 1;
    l->ro_resends = 0;
    c->stats.submitted++;
    c->stats.readonly_submitted += readonly ? 1u : 0u;
    c->stats.requests_hedged += hedge ? 1u : 0u;
    return lane;
}

/* ---- Timers -------------------------------------------------------------------------- */


/* The read-only path failed (its rounds disagreed or went unanswered,
 * client_readonly.c): the GET goes through ordering with a new timestamp (TOCS
 * 2002 §5.1.3). If the outbox is full the lane stays due and the next tick
 * retransmits it. */
void client_lane_fallback(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(l->state == LANE_READONLY);
    c->stats.readonly_fallbacks++;
    l->timestamp = client_readonly_timestamp_pick(c, lane, now_ns);
    client_lane_reencode(c, l, lane, 0);
    client_lane_votes_clear(c, l);
    l->state = LANE_ORDERED;
    l->full_asked = false;
    l->retransmits = 0;
    l->sent_ns = now_ns;
    l->timeout_ns = client_first_timeout(c);
    l->deadline_ns = client_lane_send(c, l, lane_is_large(c, l) || c->hedging, out) ? now_ns + l->timeout_ns : now_ns;
}

/* The deadline passed: send the request again to every replica, asking each for
 * the full result (TOCS 2002 §4.1: a client that times out multicasts the request,
 * which also lets backups notice a faulty primary). Same timestamp, fresh
 * authenticator, current view hint; the interval doubles up to 8x. */
static void lane_retransmit(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(l->state == LANE_ORDERED);
    client_lane_reencode(c, l, lane, WIRE_REQ_FULL_ALL);
    if (!client_lane_send(c, l, true, out)) {
        return; /* still due: the caller drains the outbox and ticks again */
    }
    c->stats.retransmissions++;
    l->retransmits++;
    uint64_t cap = CLIENT_BACKOFF_MAX * c->cfg.retransmit_timeout_ns;
    l->timeout_ns = l->timeout_ns * 2u > cap ? cap : l->timeout_ns * 2u;
    l->deadline_ns = now_ns + l->timeout_ns;
}

/* f+1 replies agree on a result, so it is settled (one of them is correct), but
 * the replica chosen to send it in full has not: it lags, is faulty, or its reply
 * was lost. Waiting for the retransmission timeout would add its whole length to
 * this operation (on a loaded 2-core cluster, ~100 ms for the quarter of GETs a
 * lagging backup was to answer); instead ask every replica for the full result at
 * once -- those that executed the request answer from their reply cache. Once per
 * request; the timer keeps running. If the outbox is full, the next reply tries
 * again. */
static void lane_ask_full(struct pbft_client *c, struct client_lane *l, uint16_t lane, struct pbft_out *out)
{
    BFTKV_ASSERT(l->state == LANE_ORDERED);
    BFTKV_ASSERT(!l->full_asked);
    client_lane_reencode(c, l, lane, WIRE_REQ_FULL_ALL);
    if (!client_lane_send(c, l, true, out)) {
        return;
    }
    l->full_asked = true;
    c->stats.full_result_requests++;
}

static void client_on_tick(struct pbft_client *c, uint64_t now_ns, struct pbft_out *out)
{
    for (uint16_t i = 0; i < c->cfg.lanes; i++) {
        struct client_lane *l = &c->lanes[i];
        if (l->deadline_ns > now_ns) {
            continue;
        }
        if (l->state == LANE_READONLY) {
            client_readonly_on_deadline(c, i, now_ns, out);
        } else if (l->state == LANE_ORDERED) {
            lane_retransmit(c, i, now_ns, out);
        } else if (l->state == LANE_STALE) {
            lane_stale_move(c, i, now_ns, out);
        }
    }
}

uint64_t pbft_client_next_deadline(const struct pbft_client *c)
{
    if (c->done_count > 0) {
        return 0; /* completions wait to be collected */
    }
    uint64_t t = UINT64_MAX;
    for (uint16_t i = 0; i < c->cfg.lanes; i++) {
        const struct client_lane *l = &c->lanes[i];
        if ((l->state == LANE_ORDERED || l->state == LANE_READONLY || l->state == LANE_STALE) && l->deadline_ns < t) {
            t = l->deadline_ns;
        }
    }
    return t;
}

/* ---- Replies ------------------------------------------------------------------------ */

bool client_vote_matches(const struct client_vote *v, int16_t status, const uint8_t *digest)
{
    return v->valid && v->status == status && memcmp(v->digest, digest, BFTKV_DIGEST_SIZE) == 0;
}

uint16_t client_class_count(const struct pbft_client *c, const struct client_lane *l, int16_t status,
                            const uint8_t *digest)
{
    uint16_t k = 0;
    for (uint16_t j = 0; j < c->cfg.n; j++) {
        k = (uint16_t)(k + (client_vote_matches(&l->votes[j], status, digest) ? 1u : 0u));
    }
    return k;
}

/* A reply this lane cannot use: another client's, a lane outside this client's
 * run (another handle's of the same client id), an idle lane, an older (or
 * newer) timestamp, or the other path's answer. */
static bool ignore_reply(const struct pbft_client *c, const struct wire_msg *m)
{
    const struct wire_reply *rp = &m->u.reply;
    if (rp->client != c->cfg.id || rp->lane < c->cfg.lane_base || rp->lane - c->cfg.lane_base >= c->cfg.lanes
        || m->h.sender >= c->cfg.n) {
        return true;
    }
    const struct client_lane *l = &c->lanes[rp->lane - c->cfg.lane_base];
    if (l->state != LANE_ORDERED && l->state != LANE_READONLY && l->state != LANE_STALE) {
        return true;
    }
    if (m->h.seq != l->timestamp) {
        return true;
    }
    bool ro_reply = (rp->rflags & WIRE_REPLY_READONLY) != 0;
    return ro_reply != (l->state == LANE_READONLY || l->state == LANE_STALE);
}

/* Keep a verified full result if we have none, or if this one's answer now has at
 * least as many supporters as the kept one's: a faulty replica cannot pin a wrong
 * result that the others outvote. If it displaces a correct result on a tie, the
 * retransmission (WIRE_REQ_FULL_ALL) brings the correct one back from every
 * correct replica. */
static void lane_result_offer(const struct pbft_client *c, struct client_lane *l, int16_t status,
                              const uint8_t *digest, const uint8_t *result, uint32_t len)
{
    if (l->have_result) {
        if (l->result_status == status && memcmp(l->result_digest, digest, BFTKV_DIGEST_SIZE) == 0) {
            return;
        }
        if (client_class_count(c, l, status, digest)
            < client_class_count(c, l, l->result_status, l->result_digest)) {
            return;
        }
    }
    BFTKV_ASSERT(len <= BFTKV_VALUE_MAX);
    if (len > 0) {
        memcpy(l->result, result, len);
    }
    l->result_len = len;
    l->result_status = status;
    memcpy(l->result_digest, digest, BFTKV_DIGEST_SIZE);
    l->have_result = true;
}

/* The view to adopt: the (f+1)-th highest view among the accepted replies, which
 * at least one correct replica has reached; with fewer replies (the injected
 * f-replies bug) the lowest. Never goes back. */
static void lane_learn_view(struct pbft_client *c, const struct client_lane *l, int16_t status,
                            const uint8_t *digest)
{
    uint64_t views[BFTKV_REPLICAS_MAX];
    uint16_t k = 0;
    for (uint16_t j = 0; j < c->cfg.n; j++) {
        if (client_vote_matches(&l->votes[j], status, digest)) {
            views[k++] = l->votes[j].view;
        }
    }
    BFTKV_ASSERT(k > 0);
    /* partial selection sort, descending: k <= 64 */
    uint16_t pick = k > c->cfg.f ? c->cfg.f : (uint16_t)(k - 1u);
    for (uint16_t i = 0; i <= pick; i++) {
        for (uint16_t j = (uint16_t)(i + 1u); j < k; j++) {
            if (views[j] > views[i]) {
                uint64_t t = views[i];
                views[i] = views[j];
                views[j] = t;
            }
        }
    }
    if (views[pick] > c->view) {
        c->view = views[pick];
    }
}

static void lane_accept(struct pbft_client *c, uint16_t lane, uint64_t now_ns)
{
    struct client_lane *l = &c->lanes[lane];
    if (l->state != LANE_STALE) {
        lane_learn_view(c, l, l->result_status, l->result_digest); /* one answer vouches for no view */
    }
    if (l->state == LANE_READONLY) {
        client_readonly_on_accept(c, l, now_ns);
    } else if (l->state == LANE_ORDERED) {
        client_loss_sample(c, l->retransmits > 0);
    }
    if (l->state == LANE_ORDERED && l->retransmits == 0 && now_ns > l->sent_ns) {
        uint64_t sample = now_ns - l->sent_ns;
        if (c->rtt_ns == 0) {
            c->rtt_ns = sample;
            c->rttvar_ns = sample / 2u; /* RFC 6298 §2.2 */
        } else {
            uint64_t dev = sample > c->rtt_ns ? sample - c->rtt_ns : c->rtt_ns - sample;
            c->rttvar_ns = c->rttvar_ns - c->rttvar_ns / 4u + dev / 4u;
            c->rtt_ns = c->rtt_ns - c->rtt_ns / 8u + sample / 8u;
        }
        c->rtt_ns = c->rtt_ns == 0 ? 1u : c->rtt_ns;
    }
    for (uint16_t j = 0; j < c->cfg.n; j++) {
        if (l->votes[j].valid && !client_vote_matches(&l->votes[j], l->result_status, l->result_digest)) {
            c->stats.replies_mismatched++;
        }
    }
    l->state = LANE_DONE;
    BFTKV_ASSERT(c->done_count < c->cfg.lanes);
    c->done[(c->done_head + c->done_count) % c->cfg.lanes] = lane;
    c->done_count++;
    c->stats.completed++;
}

/* out = wire_result_digest(status, empty result), from the per-status cache when
 * the status is 0 or a small negative error code. */
static void empty_result_digest(struct pbft_client *c, int16_t status, uint8_t out[BFTKV_DIGEST_SIZE])
{
    uint32_t k = (uint32_t)-(int32_t)status;
    if (status > 0 || k >= CLIENT_EMPTY_DIGESTS) {
        wire_result_digest(out, status, NULL, 0);
        return;
    }
    if ((c->empty_digest_known & (1u << k)) == 0) {
        wire_result_digest(c->empty_digest[k], status, NULL, 0);
        c->empty_digest_known |= 1u << k;
    }
    memcpy(out, c->empty_digest[k], BFTKV_DIGEST_SIZE);
}

static void client_on_reply(struct pbft_client *c, const struct wire_msg *m, uint64_t now_ns, struct pbft_out *out)
{
    if (ignore_reply(c, m)) {
        c->stats.replies_ignored++;
        return;
    }
    if (!auth_reply_check(c->auth, m)) {
        c->stats.drops.count[WIRE_DROP_BAD_AUTH]++;
        return;
    }
    const struct wire_reply *rp = &m->u.reply;
    if (rp->epoch > c->epoch_seen) {
        /* One replica's word: the caller refetches the map and trusts only
         * the admin's signature on it (docs/design.md §6.3). */
        c->epoch_seen = rp->epoch;
        c->epoch_from = m->h.sender;
    }
    uint16_t lane = (uint16_t)(rp->lane - c->cfg.lane_base); /* ignore_reply checked the run */
    struct client_lane *l = &c->lanes[lane];
    /* A full result was checked against its digest by wire_decode() (it drops the
     * reply otherwise, BAD_DIGEST), and m comes from wire_decode() in
     * client_on_receive(): the client never trusts a result that was not verified,
     * and does not hash it a second time. */
    bool full = (rp->rflags & WIRE_REPLY_FULL) != 0;
    if (!full && rp->result_len == 0) {
        /* An empty result (PUT, DEL, errors) is known from its digest alone. */
        uint8_t check[BFTKV_DIGEST_SIZE];
        empty_result_digest(c, rp->status, check);
        full = memcmp(check, rp->result_digest, BFTKV_DIGEST_SIZE) == 0;
    }

    if (l->state == LANE_STALE) {
        /* One replica's answer is the result, if it was asked (it holds no
         * state, or sent no value: ask the next). */
        if ((l->stale_asked >> m->h.sender & 1u) == 0) {
            c->stats.replies_ignored++;
            return;
        }
        if (rp->status == BFTKV_E_NO_STATE || !full) {
            if (m->h.sender == l->stale_target)
                lane_stale_move(c, lane, now_ns, out);
            return;
        }
        l->votes[m->h.sender] = (struct client_vote){.valid = true, .status = rp->status, .view = m->h.view};
        memcpy(l->votes[m->h.sender].digest, rp->result_digest, BFTKV_DIGEST_SIZE);
        lane_result_offer(c, l, rp->status, rp->result_digest, rp->result, rp->result_len);
        lane_accept(c, lane, now_ns);
        return;
    }

    /* On the read-only path a replica votes once per round: a second answer (to
     * a re-ask, or duplicated) may bring the full result of a class, never a
     * second vote (docs/design.md §5.3, "The read-only path"). */
    struct client_vote *v = &l->votes[m->h.sender];
    if (!v->valid || l->state == LANE_ORDERED) {
        v->valid = true;
        v->status = rp->status;
        v->view = m->h.view;
        memcpy(v->digest, rp->result_digest, BFTKV_DIGEST_SIZE);
    }
    if (full) {
        lane_result_offer(c, l, rp->status, rp->result_digest, rp->result, rp->result_len);
    }

    uint16_t need = l->state == LANE_READONLY ? c->quorum : c->need_ordered;
    if (l->have_result && client_class_count(c, l, l->result_status, l->result_digest) >= need) {
        lane_accept(c, lane, now_ns);
        return;
    }
    if (l->state == LANE_READONLY) {
        client_readonly_on_reply(c, lane, now_ns, out);
    } else if (l->state == LANE_ORDERED && !l->full_asked
               && client_class_count(c, l, rp->status, rp->result_digest) >= need) {
        lane_ask_full(c, l, lane, out);
    }
}

static void client_on_receive(struct pbft_client *c, const struct pbft_event *ev, struct pbft_out *out)
{
    size_t off = 0;
    while (ev->msg != NULL && off < ev->len) {
        struct wire_msg m;
        size_t used = 0;
        if (wire_decode(ev->msg + off, ev->len - off, &c->lim, &m, &used, &c->stats.drops) == 0) {
            if (m.h.type == WIRE_REPLY) {
                client_on_reply(c, &m, ev->now_ns, out);
            } else {
                c->stats.drops.count[WIRE_DROP_BAD_TYPE]++; /* clients receive only REPLY */
            }
        }
        if (used == 0) {
            break;
        }
        off += used;
    }
}

/* ---- Step ----------------------------------------------------------------------------- */

/* Report accepted lanes, oldest first, and free them. The value points into the
 * lane's result buffer, which nothing touches until the caller's next call. */
static uint32_t client_drain(struct pbft_client *c, struct pbft_completion *done, uint32_t done_cap, uint32_t k)
{
    while (k < done_cap && c->done_count > 0) {
        uint16_t lane = c->done[c->done_head];
        c->done_head = (c->done_head + 1u) % c->cfg.lanes;
        c->done_count--;
        struct client_lane *l = &c->lanes[lane];
        BFTKV_ASSERT(l->state == LANE_DONE);
        bool has_value = l->op == WIRE_OP_GET && l->result_status == 0;
        done[k++] = (struct pbft_completion){
            .lane = lane,
            .op = l->op,
            .status = l->result_status,
            .value = has_value ? l->result : NULL,
            .vlen = has_value ? l->result_len : 0,
            .timestamp = l->timestamp,
        };
        l->state = LANE_IDLE;
    }
    return k;
}

uint32_t pbft_client_step(struct pbft_client *c, const struct pbft_event *ev, struct pbft_out *out,
                          struct pbft_completion *done, uint32_t done_cap)
{
    BFTKV_ASSERT(c != NULL);
    BFTKV_ASSERT(ev != NULL);
    BFTKV_ASSERT(out != NULL);
    BFTKV_ASSERT(done != NULL || done_cap == 0);
    BFTKV_ASSERT(ev->decoded == NULL);
    BFTKV_ASSERT(!ev->authenticated); /* pbft.h: raw bytes only */
    uint32_t k = client_drain(c, done, done_cap, 0);
    switch (ev->kind) {
    case PBFT_EV_RECEIVE:
        client_on_receive(c, ev, out);
        break;
    case PBFT_EV_TICK:
        client_on_tick(c, ev->now_ns, out);
        break;
    default:
        break;
    }
    return client_drain(c, done, done_cap, k);
}
