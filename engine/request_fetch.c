/* REQUEST-FETCH: a backup asks for a large request its batch names (TOCS 2002
 * §4.2: a backup accepts a PRE-PREPARE only with the requests it names; docs/design.md §5.3).
 * The pool itself is engine/request_pool.c.
 *
 * The push paths of request_pool.c (the relay before execution and with the primary's
 * retransmission, and catchup.c's answer to a laggard) send a request to the
 * replicas that did not vote for its batch. A replica that did vote and lost
 * its state (crash-restart), whose copy was refused as `full` while it had
 * room for nothing but wanted requests, or whose copy the network dropped
 * before GST, stalls on the PRE-PREPARE with nothing to push it the request:
 * the client, answered by others, sends it no more. So a stalled backup pulls:
 * for each request a stalled PRE-PREPARE in the pool window names and the pool
 * lacks, it sends FETCH(part REQUEST, seq, request digest) to one replica that
 * should hold it -- one that sent a PREPARE or COMMIT for that batch, or its
 * primary -- rotating on every round, first R/2 after the stall and then backing
 * off (R, 2R, ... 32R) until the lowest stalled seq moves. Any replica that
 * holds the request answers with the REQUEST as its client sent it (its
 * authenticator has a MAC for every replica): the asker checks the client's
 * MAC and the batch's digest binds it, so whoever serves it cannot lie.
 * Executed requests stay in the pool, held until a stable checkpoint covers
 * their batch (request_pool.c), so that replicas that executed a batch can
 * serve it for as long as a laggard has no state to fetch instead; after that
 * they are evicted first, and a laggard below the stable checkpoint fetches
 * its state.
 */

#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"

#define POOL_NONE UINT32_MAX

/* The replicas that should hold the requests of slot s: those whose PREPARE or
 * COMMIT matched its digest (they accepted the PRE-PREPARE, so had them) and
 * the primary of its view; never this replica. All others when none. */
static uint64_t fetch_holders(const struct pbft_replica *r, const struct replica_slot *s)
{
    uint64_t bits = 1ull << replica_primary_of(r, s->view);
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        bool prep = (s->prep_bits >> j) & 1u, commit = (s->commit_bits >> j) & 1u;
        if ((prep && memcmp(s->prep_digest[j], s->digest, BFTKV_DIGEST_SIZE) == 0)
            || (commit && memcmp(s->commit_digest[j], s->digest, BFTKV_DIGEST_SIZE) == 0))
            bits |= 1ull << j;
    }
    bits &= ~(1ull << r->cfg.id);
    uint64_t all = r->cfg.n == 64u ? UINT64_MAX : (1ull << r->cfg.n) - 1u;
    return bits != 0 ? bits : all & ~(1ull << r->cfg.id);
}

/* The k-th set bit of bits (k below the count), cyclically. */
static uint16_t fetch_pick(uint64_t bits, uint32_t k)
{
    uint32_t nbits = (uint32_t)__builtin_popcountll(bits);
    k %= nbits;
    while (k-- > 0)
        bits &= bits - 1u;
    return (uint16_t)__builtin_ctzll(bits);
}

static bool fetch_send(struct pbft_replica *r, uint16_t to, uint64_t seq, const uint8_t *digest,
                       struct pbft_out *out)
{
    size_t bound = WIRE_HEADER_SIZE + WIRE_FETCH_BODY + (size_t)r->cfg.n * BFTKV_MAC_SIZE;
    if (!pbft_out_room(out, bound, 1))
        return false;
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_request_fetch(dst, cap, r->cfg.group, r->cfg.id, r->cfg.n, r->view, seq, digest,
                                           &auth_off);
    BFTKV_ASSERT(len > 0);
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    pbft_out_commit(out, PBFT_DEST_REPLICA, to, len);
    return true;
}

/* One round: up to W fetches, the lowest seqs first. */
static void fetch_round(struct pbft_replica *r, struct pbft_out *out)
{
    uint64_t hi = replica_high(r), w = r->last_executed + r->pool_window;
    uint64_t last = w < hi ? w : hi, lowest = 0;
    uint32_t budget = r->cfg.window, k = 0;
    for (uint64_t seq = r->last_executed + 1u; seq <= last && budget > 0; seq++) {
        const struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL || !s->stalled)
            continue;
        if (lowest == 0)
            lowest = seq;
        uint64_t holders = fetch_holders(r, s);
        uint32_t off = 0;
        struct wire_batch_entry e;
        while (budget > 0 && wire_batch_next(&s->pp_msg, &off, &e)) {
            if (e.kind != WIRE_ENTRY_DIGEST || replica_request_pool_find(r, e.request_digest) != POOL_NONE)
                continue;
            if (!fetch_send(r, fetch_pick(holders, r->rf_turn + k++), seq, e.request_digest, out))
                return;
            budget--;
        }
    }
    if (lowest != r->rf_seq) {
        r->rf_seq = lowest; /* progress: start the back-off again */
        r->rf_shift = 0;
    }
}

void replica_request_fetch_arm(struct pbft_replica *r)
{
    if (r->stalled == 0 || r->cfg.n == 1) {
        r->rf_ns = 0;
        r->rf_shift = 0;
        r->rf_seq = 0;
    } else if (r->rf_ns == 0) {
        /* The client's own copy may still be on its way. */
        r->rf_ns = r->now_ns + r->cfg.retransmit_ns / 2u + 1u;
    }
}

void replica_request_fetch_tick(struct pbft_replica *r, struct pbft_out *out)
{
    if (r->stalled == 0 || r->rf_ns == 0 || r->now_ns < r->rf_ns)
        return;
    fetch_round(r, out);
    r->rf_turn++;
    r->rf_ns = r->now_ns + (r->cfg.retransmit_ns << r->rf_shift);
    if (r->rf_shift < CATCHUP_BACKOFF_SHIFT_MAX)
        r->rf_shift++;
}

uint64_t replica_request_fetch_deadline(const struct pbft_replica *r)
{
    return r->stalled > 0 && r->rf_ns != 0 ? r->rf_ns : UINT64_MAX;
}

void replica_request_fetch_serve(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    uint32_t idx = replica_request_pool_find(r, m->u.fetch.digest);
    if (idx == POOL_NONE) {
        r->stats.dropped_stale++; /* never had it, or evicted: the asker asks another */
        return;
    }
    /* The asker's share of serving, counted like state chunks (one datagram
     * each): a faulty replica cannot make this one send at line rate. */
    uint16_t j = m->h.sender;
    if (r->now_ns >= r->cu.serve_ns[j] + r->cfg.retransmit_ns) {
        r->cu.serve_ns[j] = r->now_ns;
        r->cu.served[j] = 0;
    }
    uint32_t len = r->pool[idx].len;
    if (r->cu.served[j] >= CATCHUP_SERVE_CHUNKS_PER_R
        || !pbft_out_room(out, len + REPLICA_RESERVE_BYTES, 1u + REPLICA_RESERVE_MSGS)) {
        r->stats.dropped_full++;
        return;
    }
    r->cu.served[j]++;
    pbft_out_copy(out, PBFT_DEST_REPLICA, j, replica_request_pool_bytes(r, idx), len);
    r->stats.pool_relayed++;
}
