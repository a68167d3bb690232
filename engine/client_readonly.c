/* The client's read-only fast path (TOCS 2002 §5.1.3; docs/design.md §5.3, "The
 * read-only path"): when a GET sent to every replica has its answer, when to wait
 * for more, when to ask again, and when to give up and order it.
 *
 * A read-only GET is accepted only with q = ⌈(n+f+1)/2⌉ matching answers from
 * distinct replicas (client.c, client_on_reply) and the full result of that class
 * in hand; nothing here changes that rule. What this file decides is the timing:
 *
 *   - rounds: a GET gets up to CLIENT_RO_ROUNDS_MAX read-only rounds, each with a
 *     fresh timestamp (so each replica votes once per round), before it is
 *     ordered. A round that cannot reach q any more -- typically a write racing
 *     the read, so that correct replicas disagree -- starts the next round at
 *     once instead of falling back.
 *   - re-asks: a round whose wait passed, q still reachable, asks the replicas
 *     that have not answered once more, same timestamp (their request or reply
 *     was lost, or they were busy); when q agree on a digest but nobody sent that
 *     result in full (the replica chosen to send it is stale), it asks every
 *     replica for the full result.
 *   - waits: a round waits CLIENT_RO_WAIT_RTTS smoothed answer times (between
 *     1/16 of the retransmission timeout and the timeout), and once n - f
 *     answered, the slowest f get a grace as long as the answers took.
 *   - stale replicas: a replica whose answer disagreed with the accepted value in
 *     CLIENT_RO_STALE_STRIKES consecutive reads is marked stale until it agrees
 *     once or stays quiet for the decay time. A marked replica is never the one
 *     chosen to send the full result: the client picks its timestamps so. Its
 *     answers still count like any other's.
 *
 * Everything is counted in pbft_client_stats. No I/O, no clock: time comes in the
 * events.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/client_internal.h"
#include "engine/pbft.h"

/* ---- Stale replicas ---------------------------------------------------------------- */

static uint64_t stale_decay_ns(const struct pbft_client *c)
{
    return CLIENT_RO_STALE_DECAY_TIMEOUTS * c->cfg.retransmit_timeout_ns;
}

/* Are replica j's strikes recent: its last one less than the decay time ago? */
static bool strikes_recent(const struct pbft_client *c, uint16_t j, uint64_t now_ns)
{
    const struct client_replica *r = &c->replicas[j];
    return now_ns < r->strike_ns || now_ns - r->strike_ns < stale_decay_ns(c);
}

static bool replica_stale(const struct pbft_client *c, uint16_t j, uint64_t now_ns)
{
    return c->replicas[j].strikes >= CLIENT_RO_STALE_STRIKES && strikes_recent(c, j, now_ns);
}

bool pbft_client_replica_stale(const struct pbft_client *c, uint16_t replica, uint64_t now_ns)
{
    BFTKV_ASSERT(c != NULL);
    return replica < c->cfg.n && replica_stale(c, replica, now_ns);
}

/* The replica that answers (client, lane, timestamp) with the full result; the
 * others send its digest. The replicas compute the same (engine/exec.c), the
 * sum wrapping in 64 bits. */
static uint16_t full_replier(const struct pbft_client *c, uint16_t lane, uint64_t ts)
{
    uint64_t wire_lane = (uint64_t)c->cfg.lane_base + lane;
    return (uint16_t)(((uint64_t)c->cfg.id + wire_lane + ts) % c->cfg.n);
}

/* Timestamps only need to increase (TOCS 2002 §4.1), so skipping a few costs
 * nothing: a full result from a stale replica would be of the wrong class and the
 * round would need another round trip to fetch the right one. */
uint64_t client_readonly_timestamp_pick(struct pbft_client *c, uint16_t lane, uint64_t now_ns)
{
    BFTKV_ASSERT(c->last_timestamp < UINT64_MAX - 1u - BFTKV_REPLICAS_MAX);
    uint64_t ts = c->last_timestamp + 1u;
    for (uint16_t k = 1; k < c->cfg.n && replica_stale(c, full_replier(c, lane, ts), now_ns); k++) {
        ts++;
    }
    c->last_timestamp = ts;
    c->stats.timestamps_issued = ts - c->cfg.timestamp_base;
    return ts;
}

/* A read was accepted with q matching answers, so its value is one a correct
 * replica held (at least f+1 of the q are correct): a replica that answered
 * otherwise was behind, ahead of a racing write, or faulty. Agreement clears its
 * strikes; strikes older than the decay time are forgotten first. Replicas that
 * did not answer are left as they were. */
void client_readonly_on_accept(struct pbft_client *c, const struct client_lane *l, uint64_t now_ns)
{
    BFTKV_ASSERT(l->state == LANE_READONLY);
    BFTKV_ASSERT(l->have_result);
    for (uint16_t j = 0; j < c->cfg.n; j++) {
        const struct client_vote *v = &l->votes[j];
        struct client_replica *r = &c->replicas[j];
        if (!v->valid) {
            continue;
        }
        if (client_vote_matches(v, l->result_status, l->result_digest)) {
            r->strikes = 0;
            continue;
        }
        bool was = replica_stale(c, j, now_ns);
        if (!strikes_recent(c, j, now_ns)) {
            r->strikes = 0;
        }
        r->strikes = (uint8_t)(r->strikes < UINT8_MAX ? r->strikes + 1u : r->strikes);
        r->strike_ns = now_ns;
        if (!was && replica_stale(c, j, now_ns)) {
            c->stats.readonly_stale_marks++;
        }
    }
    /* The answer time, from rounds that needed no second request. */
    if (l->ro_resends == 0 && !l->full_asked && now_ns > l->sent_ns) {
        uint64_t sample = now_ns - l->sent_ns;
        c->ro_answer_ns = c->ro_answer_ns == 0 ? sample : c->ro_answer_ns - c->ro_answer_ns / 8u + sample / 8u;
        c->ro_answer_ns = c->ro_answer_ns == 0 ? 1u : c->ro_answer_ns;
    }
}

/* ---- Waiting ------------------------------------------------------------------------ */

uint64_t client_readonly_wait_ns(const struct pbft_client *c)
{
    uint64_t timeout = c->cfg.retransmit_timeout_ns;
    if (c->ro_answer_ns == 0) {
        return timeout; /* nothing measured yet */
    }
    uint64_t floor = timeout >> CLIENT_RO_GRACE_MIN_SHIFT;
    uint64_t wait = c->ro_answer_ns > timeout / CLIENT_RO_WAIT_RTTS ? timeout : c->ro_answer_ns * CLIENT_RO_WAIT_RTTS;
    wait = wait < floor ? floor : wait;
    return wait > 0 ? wait : 1u;
}

struct ro_tally {
    uint16_t answered;
    uint16_t best; /* the largest class of matching answers */
};

static struct ro_tally ro_tally(const struct pbft_client *c, const struct client_lane *l)
{
    struct ro_tally t = { 0, 0 };
    for (uint16_t j = 0; j < c->cfg.n; j++) {
        const struct client_vote *v = &l->votes[j];
        if (!v->valid) {
            continue;
        }
        t.answered++;
        uint16_t k = client_class_count(c, l, v->status, v->digest);
        t.best = k > t.best ? k : t.best;
    }
    return t;
}

/* Can q matching answers still come? Every replica that has not answered might
 * still join the largest class. */
static bool ro_hopeless(const struct pbft_client *c, struct ro_tally t)
{
    return (uint32_t)t.best + (uint32_t)(c->cfg.n - t.answered) < c->quorum;
}

/* Not hopeless yet: n - f replicas answered and no q of them agree, so the read
 * waits for the slowest f -- which may be faulty, behind, or their reply lost.
 * Waiting the retransmission timeout for them (100 ms by default, against a round
 * trip of a few hundred microseconds) made most of the fast path's time on a
 * loaded cluster with one replica behind. Give them as long again as the answers
 * took so far (at least 1/16 of the timeout); the deadline never moves later. */
static void ro_grace(const struct pbft_client *c, struct client_lane *l, struct ro_tally t, uint64_t now_ns)
{
    if ((uint32_t)t.answered + c->cfg.f < c->cfg.n) {
        return;
    }
    uint64_t grace = now_ns - l->sent_ns;
    uint64_t grace_min = c->cfg.retransmit_timeout_ns >> CLIENT_RO_GRACE_MIN_SHIFT;
    grace = grace < grace_min ? grace_min : grace;
    if (now_ns + grace < l->deadline_ns) {
        l->deadline_ns = now_ns + grace;
        l->ro_grace = true;
    }
}

/* ---- Asking again ----------------------------------------------------------------- */

/* Same timestamp, to each replica that has not answered, each asked for the full
 * result: a lost request or reply costs this instead of ordering the GET. If the
 * outbox fills, the lane stays due and the next tick sends it again. */
static void ro_resend(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    client_lane_reencode(c, l, lane, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    for (uint16_t j = 0; j < c->cfg.n; j++) {
        if (!l->votes[j].valid && !client_lane_send_to(c, l, j, out)) {
            l->deadline_ns = now_ns;
            return;
        }
    }
    l->ro_resends++;
    l->ro_grace = false;
    l->deadline_ns = now_ns + client_readonly_wait_ns(c);
    c->stats.readonly_resends++;
}

/* q answers agree on a digest but the full result of that class has not come:
 * the replica chosen to send it answered otherwise (stale, or faulty) or its reply
 * was lost. Ask every replica for the full result, once per round; their second
 * answers bring bytes, not votes (client_on_reply). */
static void ro_ask_full(struct pbft_client *c, uint16_t lane, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(!l->full_asked);
    client_lane_reencode(c, l, lane, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL);
    if (!client_lane_send(c, l, true, out)) {
        return; /* the next reply or the deadline tries again */
    }
    l->full_asked = true;
    c->stats.full_result_requests++;
}

/* A fresh round: new timestamp, every replica, no votes. */
static void ro_round_start(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(l->ro_round < CLIENT_RO_ROUNDS_MAX);
    l->timestamp = client_readonly_timestamp_pick(c, lane, now_ns);
    client_lane_reencode(c, l, lane, WIRE_REQ_READONLY);
    client_lane_votes_clear(c, l);
    l->ro_round++;
    l->ro_resends = 0;
    l->full_asked = false;
    l->ro_grace = false;
    l->sent_ns = now_ns;
    c->stats.readonly_retries++;
    /* If the outbox is full, the next tick re-asks every replica (ro_resend). */
    l->deadline_ns = client_lane_send(c, l, true, out) ? now_ns + client_readonly_wait_ns(c) : now_ns;
}

/* The round failed: another round while the GET has one left, else ordering
 * (always safe, TOCS 2002 §5.1.3). */
static void ro_give_up(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    if (c->lanes[lane].ro_round < CLIENT_RO_ROUNDS_MAX) {
        ro_round_start(c, lane, now_ns, out);
    } else {
        client_lane_fallback(c, lane, now_ns, out);
    }
}

/* ---- Decisions ---------------------------------------------------------------------- */

void client_readonly_on_reply(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(l->state == LANE_READONLY);
    struct ro_tally t = ro_tally(c, l);
    BFTKV_ASSERT(t.answered > 0);
    if (ro_hopeless(c, t)) {
        ro_give_up(c, lane, now_ns, out);
    } else if (t.best >= c->quorum && !l->full_asked) {
        ro_ask_full(c, lane, out);
    } else {
        ro_grace(c, l, t, now_ns);
    }
}

void client_readonly_on_deadline(struct pbft_client *c, uint16_t lane, uint64_t now_ns, struct pbft_out *out)
{
    struct client_lane *l = &c->lanes[lane];
    BFTKV_ASSERT(l->state == LANE_READONLY);
    BFTKV_ASSERT(l->deadline_ns <= now_ns);
    struct ro_tally t = ro_tally(c, l);
    if (!ro_hopeless(c, t) && t.answered < c->cfg.n && l->ro_resends < CLIENT_RO_RESENDS_MAX) {
        ro_resend(c, lane, now_ns, out);
        return;
    }
    if (l->ro_round >= CLIENT_RO_ROUNDS_MAX && !l->ro_grace) {
        c->stats.readonly_timeouts++;
    }
    ro_give_up(c, lane, now_ns, out);
}
