/* The commit phase (TOCS 2002 §4.2).
 *
 * A prepared replica multicasts COMMIT(v, n, D, i). committed-local(m, v, n, i)
 * holds when it is prepared and has q = pbft_quorum(n, f) matching COMMITs from
 * distinct replicas, its own included (2f+1 when n = 3f+1). Then at least f+1
 * correct replicas are prepared at (v, n), which is what makes the request
 * survive a view change (TOCS 2002 §4.5). Committed batches execute strictly in
 * sequence order (exec.c).
 *
 * As with PREPAREs, the first COMMIT of each sender per (v, n) is kept with its
 * digest and counted once D is known. The injected bugs PBFT_BUG_COMMIT_QUORUM_2F
 * (q - 1 COMMITs suffice) and PBFT_BUG_EXECUTE_UNCOMMITTED (prepared suffices)
 * break exactly this rule, for the simulator's checkers to catch.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"

void replica_commit_recount(struct pbft_replica *r, struct replica_slot *s)
{
    BFTKV_ASSERT(s->has_digest);
    uint16_t match = 0;
    for (uint64_t bits = s->commit_bits; bits != 0; bits &= bits - 1u) {
        unsigned j = (unsigned)__builtin_ctzll(bits);
        if (replica_prepare_digest_counts(r, s->commit_digest[j], s->digest))
            match++;
    }
    s->commit_match = match;
    BFTKV_ASSERT(s->commit_match <= r->cfg.n);
}

void replica_commit_check(struct pbft_replica *r, struct replica_slot *s)
{
    if (s->committed || !s->prepared)
        return;
    uint32_t need = r->quorum;
    if (r->cfg.bugs & PBFT_BUG_COMMIT_QUORUM_2F)
        need = r->quorum - 1u;
    if (s->commit_match >= need || (r->cfg.bugs & PBFT_BUG_EXECUTE_UNCOMMITTED))
        s->committed = true;
    /* committed-local implies prepared, and a batch of this slot's digest. */
    BFTKV_ASSERT(!s->committed || s->has_digest);
}

static bool ignore_commit(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m->h.view != r->view || !r->view_active || !replica_in_window(r, m->h.seq)) {
        r->stats.dropped_stale++;
        return true;
    }
    if (!replica_msg_from_peer(r, m)) {
        /* Our own COMMIT is BAD_SENDER; a primary's that fails its MAC is
         * one no correct primary sends. */
        if (m->h.sender != r->cfg.id && m->h.sender == replica_primary_of(r, r->view))
            replica_viewchange_primary_misbehaved(r);
        return true;
    }
    return false;
}

void replica_commit_receive(struct pbft_replica *r, const struct wire_msg *m, struct pbft_out *out)
{
    if (ignore_commit(r, m))
        return;
    BFTKV_ASSERT(m->h.type == WIRE_COMMIT);
    BFTKV_ASSERT(m->h.sender < r->cfg.n);
    BFTKV_ASSERT(m->h.sender != r->cfg.id);
    struct replica_slot *s = replica_slot_get(r, m->h.seq);
    if (replica_prepare_vote_record(r, s, m, &s->commit_bits, s->commit_digest, &s->commit_match, out)) {
        replica_preprepare_vouch(r, s, out); /* accepted: prepare_check sends our COMMIT */
        replica_commit_check(r, s);
    }
}
