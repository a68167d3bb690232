/* The prepare phase (TOCS 2002 §4.2).
 *
 * A backup that accepted PRE-PREPARE(v, n, D) multicasts PREPARE(v, n, D, i).
 * prepared(m, v, n, i) holds when replica i has the pre-prepare and 2f PREPAREs
 * from distinct backups that match it (own included; the primary sends none). The
 * quorum generalises to q - 1 PREPAREs with q = pbft_quorum(n, f) = ceil((n+f+1)/2),
 * which is 2f when n = 3f+1: with the pre-prepare that makes q replicas that vouch
 * for D at (v, n), and two such sets share a correct replica, so no two digests
 * can be prepared at the same (v, n) (TOCS 2002 §4.2, invariant of prepared).
 *
 * Each sender gets one PREPARE per (v, n): the first is kept with its own digest,
 * and counted as soon as D is known, so PREPAREs that overtake the PRE-PREPARE
 * still count. Once prepared the replica multicasts COMMIT (commit.c).
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"

void replica_prepare_vote_send(struct pbft_replica *r, uint8_t type, uint64_t seq, const uint8_t *digest,
                       struct pbft_out *out)
{
    BFTKV_ASSERT(type == WIRE_PREPARE || type == WIRE_COMMIT);
    BFTKV_ASSERT(replica_votes(r)); /* an unsure replica holds its votes back */
    BFTKV_ASSERT(seq > r->low);
    BFTKV_ASSERT(seq <= replica_high(r));
    if (r->cfg.n == 1)
        return;
    /* Persist, then send (pbft.h): the batch before the PREPARE for it, and that
     * it prepared before the COMMIT. */
    struct replica_slot *s = replica_slot_find(r, seq);
    BFTKV_ASSERT(s != NULL);
    if (!replica_persist_preprepare(r, s, out) || (type == WIRE_COMMIT && !replica_persist_prepared(r, s, out)))
        return; /* counted; a retransmission records and sends it */
    size_t cap = 0, auth_off = 0;
    uint8_t *dst = pbft_out_tail(out, &cap);
    size_t len = wire_encode_digest_msg(dst, cap, type, r->cfg.group, r->cfg.id, r->cfg.n, r->view, seq, digest,
                                        &auth_off);
    if (len == 0) {
        r->stats.dropped_full++; /* a caller that did not drain the outbox: a loss */
        return;
    }
    auth_authenticator_fill(r->auth, dst, len, auth_off);
    pbft_out_commit(out, PBFT_DEST_ALL_REPLICAS, 0, len);
}

void replica_prepare_recount(struct pbft_replica *r, struct replica_slot *s)
{
    BFTKV_ASSERT(s->has_digest);
    uint16_t match = 0;
    for (uint64_t bits = s->prep_bits; bits != 0; bits &= bits - 1u) {
        unsigned j = (unsigned)__builtin_ctzll(bits);
        BFTKV_ASSERT(j < r->cfg.n);
        if (replica_prepare_digest_counts(r, s->prep_digest[j], s->digest))
            match++;
    }
    s->prep_match = match;
    /* A prepared slot stays prepared: PREPAREs are only ever added. */
    BFTKV_ASSERT(!s->prepared || match + 1u >= r->quorum);
}

/* Our own vote for the slot's digest among the senders' (bits, digests); true
 * if it was not counted yet. */
static bool own_vote_mark(const struct pbft_replica *r, const struct replica_slot *s, uint64_t *bits,
                          uint8_t (*digests)[BFTKV_DIGEST_SIZE])
{
    uint64_t bit = 1ull << r->cfg.id;
    if ((*bits & bit) != 0)
        return false;
    *bits |= bit;
    memcpy(digests[r->cfg.id], s->digest, BFTKV_DIGEST_SIZE);
    return true;
}

/* A backup's PREPARE for the slot's PRE-PREPARE, multicast and counted (TOCS
 * 2002 §4.2) -- once, and never by the primary (its PRE-PREPARE is its vote)
 * or by a replica without certified state (replica_votes). */
void replica_prepare_own(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    BFTKV_ASSERT(s->has_pp);
    if (replica_is_primary(r) || !replica_votes(r) || s->sent_prepare)
        return;
    BFTKV_ASSERT(s->has_digest);
    BFTKV_ASSERT(s->view == r->view);
    s->sent_prepare = true;
    replica_prepare_vote_send(r, WIRE_PREPARE, s->seq, s->digest, out);
    own_vote_mark(r, s, &s->prep_bits, s->prep_digest);
    BFTKV_ASSERT((s->prep_bits >> r->cfg.id) & 1u);
}

void replica_prepare_check(struct pbft_replica *r, struct replica_slot *s, struct pbft_out *out)
{
    if (!s->prepared) {
        if (!s->has_pp || s->prep_match + 1u < r->quorum)
            return;
        /* prepared(m, v, n, i): the PRE-PREPARE and q - 1 matching PREPAREs
         * of this view (TOCS 2002 §4.2). */
        BFTKV_ASSERT(s->has_digest);
        BFTKV_ASSERT(s->view == r->view);
        BFTKV_ASSERT(r->view_active);
        s->prepared = true;
        if (s->seq > r->max_prepared)
            r->max_prepared = s->seq;
    }
    /* Prepared: multicast COMMIT(v, n, D, i) and count our own (TOCS 2002 §4.2),
     * once; a replica without certified state counts only the others' commits
     * until it becomes sure (replica_prepare_votes_resume). */
    if (s->sent_commit || !replica_votes(r)) {
        replica_commit_check(r, s);
        return;
    }
    BFTKV_ASSERT(s->prepared);
    s->sent_commit = true;
    replica_prepare_vote_send(r, WIRE_COMMIT, s->seq, s->digest, out);
    if (own_vote_mark(r, s, &s->commit_bits, s->commit_digest))
        s->commit_match++;
    BFTKV_ASSERT((s->commit_bits >> r->cfg.id) & 1u);
    replica_commit_check(r, s);
}

static bool ignore_prepare(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m->h.view != r->view || !r->view_active || !replica_in_window(r, m->h.seq)) {
        r->stats.dropped_stale++;
        return true;
    }
    /* The primary's PRE-PREPARE stands for its vote: it sends no PREPARE. */
    if (m->h.sender == replica_primary_of(r, m->h.view) || m->h.sender == r->cfg.id) {
        replica_drop(r, WIRE_DROP_BAD_SENDER);
        return true;
    }
    return !replica_msg_authentic(r, m);
}

void replica_prepare_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_prepare(r, m))
        return;
    /* What the filter guarantees. */
    BFTKV_ASSERT(r->view_active);
    BFTKV_ASSERT(m->h.view == r->view);
    BFTKV_ASSERT(m->h.seq > r->low);
    BFTKV_ASSERT(m->h.seq <= replica_high(r));
    BFTKV_ASSERT(m->h.sender < r->cfg.n);
    BFTKV_ASSERT(m->h.sender != r->cfg.id);
    BFTKV_ASSERT(m->h.sender != replica_primary_of(r, r->view));
    struct replica_slot *s = replica_slot_get(r, m->h.seq);
    if (replica_prepare_vote_record(r, s, m, &s->prep_bits, s->prep_digest, &s->prep_match, out)) {
        replica_preprepare_vouch(r, s, out);
        replica_prepare_check(r, s, out);
    }
}

bool replica_prepare_vote_record(struct pbft_replica *r, struct replica_slot *s, const struct wire_msg *m,
                                 uint64_t *bits, uint8_t (*digests)[BFTKV_DIGEST_SIZE], uint16_t *match,
                                 struct pbft_out *out)
{
    BFTKV_ASSERT(s->seq == m->h.seq);
    BFTKV_ASSERT(m->h.sender < r->cfg.n);
    uint64_t bit = 1ull << m->h.sender;
    if (*bits & bit) {
        replica_catchup_repair_answer(r, s, m->h.sender, out); /* one per sender per (v, n) */
        return false;
    }
    *bits |= bit;
    memcpy(digests[m->h.sender], m->u.batch.digest, BFTKV_DIGEST_SIZE);
    if (!s->has_digest || !replica_prepare_digest_counts(r, m->u.batch.digest, s->digest))
        return false;
    (*match)++;
    BFTKV_ASSERT(*match <= r->cfg.n);
    return true;
}

void replica_prepare_votes_resume(struct pbft_replica *r, struct pbft_out *out)
{
    BFTKV_ASSERT(replica_votes(r));
    if (!r->view_active)
        return; /* the NEW-VIEW that activates the view re-proposes */
    for (uint64_t seq = r->last_executed + 1u; seq <= replica_high(r); seq++) {
        struct replica_slot *s = replica_slot_find(r, seq);
        if (s == NULL || !s->has_pp || s->view != r->view || s->executed)
            continue;
        BFTKV_ASSERT(s->has_digest);
        BFTKV_ASSERT(!s->committed || s->prepared);
        replica_prepare_own(r, s, out);
        replica_prepare_recount(r, s);
        replica_commit_recount(r, s);
        replica_prepare_check(r, s, out);
    }
}
