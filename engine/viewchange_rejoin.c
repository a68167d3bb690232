/* A replica alone in a higher view comes back (docs/design.md §5.5.1).
 *
 * A backup that loses its link to the primary while the others keep working
 * times out and moves to view v+1 (viewchange.c). Nobody joins it: the others
 * see one VIEW-CHANGE, and f+1 are needed (TOCS 2002 §4.5.2, rule 3). PBFT gives
 * it no way back to v: its VIEW-CHANGE(v+1) reported what it had prepared when
 * it left v, and a new primary may still build NEW-VIEW(v+1) from that message;
 * had it gone back and prepared more in v, a request committed there could miss
 * from that NEW-VIEW when the f others that vouch for it are faulty. So after the
 * network heals it stays in v+1 -- it follows the data by state transfer, votes
 * in no quorum, and the group runs with one of its f faults used up.
 *
 * Moving up is always safe, so the group comes to it. The primary of the active
 * view v, once v has executed a batch (so q replicas are in it with the primary:
 * a new primary whose NEW-VIEW reached nobody is the lone one itself, and the
 * others' timers move it) or once v has proven not to work (rejoin_view_stuck:
 * a whole timeout with batches proposed and none executed -- with a faulty
 * backup silent and the lone replica gone, v has fewer than q voters), on a
 * VIEW-CHANGE(w > v) from a replica alone in w, steps down: it sends its own
 * VIEW-CHANGE(w). A backup follows the view change
 * its own primary asks for (its primary giving up is no one else's vote: a
 * faulty primary can stop the group in any case, so obeying it adds nothing to
 * its power). At n = 3f+1 with f = 1 the primary and the lone replica are f+1
 * anyway; from f = 2 on the backups' rule is what brings them along. The new
 * primary of w then has q VIEW-CHANGEs, and w starts with every replica in it.
 *
 * A faulty replica could pretend to be stuck, to make the group change views at
 * will (Aardvark, NSDI 2009, measures what such view changes cost). So a step-down
 * for a given sender is rate-limited per primary: after one, none for that sender
 * for G = 8 T (400 ms at the default T = 50 ms); G doubles each time the sender
 * causes another within its back-off, up to 64 G, and returns to 8 T after a
 * quiet period of the current G. A faulty replica thus costs at most one view
 * change per primary per G, and the back-off makes a sustained attack cost one per
 * primary every 25.6 s. And w may be at most REJOIN_VIEW_SPAN above v: a correct
 * replica alone moves no further than one view past the group (it waits for q
 * VIEW-CHANGEs before its NEW-VIEW timer runs), and view numbers must not be a
 * resource a faulty replica can spend.
 *
 * Bound: the lone replica retransmits its VIEW-CHANGE every T/4, so the primary
 * hears it within T/4 of the heal, and the new view is entered two message
 * delays after the step-down: every correct replica votes again within about
 * T/4 + 3 delays, well inside 2 T. The budget is per sender, so a faulty replica
 * that spent its own delays only its own return, never a correct one's.
 */
#include <stdlib.h>

#include "engine/replica_internal.h"
#include "engine/viewchange.h"

/* A step-down for a sender, then none for it during G = this many T. */
#define REJOIN_GAP_T 8u
/* G doubles per repeated step-down, up to G << this (64 G). */
#define REJOIN_SHIFT_MAX 6u
/* The highest view above ours a lone replica may make us move to. */
#define REJOIN_VIEW_SPAN 64u

bool replica_viewchange_rejoin_create(struct pbft_replica *r)
{
    r->rejoin_next_ns = calloc(r->cfg.n, sizeof *r->rejoin_next_ns);
    r->rejoin_shift = calloc(r->cfg.n, sizeof *r->rejoin_shift);
    return r->rejoin_next_ns != NULL && r->rejoin_shift != NULL;
}

void replica_viewchange_rejoin_destroy(struct pbft_replica *r)
{
    free(r->rejoin_next_ns);
    free(r->rejoin_shift);
}

/* May `from` make this primary step down now? Arms its back-off if so. */
static bool rejoin_allowed(struct pbft_replica *r, uint16_t from)
{
    uint64_t gap = REJOIN_GAP_T * r->cfg.request_timeout_ns;
    uint64_t next = r->rejoin_next_ns[from];
    if (r->now_ns < next)
        return false;
    if (next != 0 && r->now_ns - next >= gap << r->rejoin_shift[from])
        r->rejoin_shift[from] = 0; /* quiet for a whole back-off: forgiven */
    r->rejoin_next_ns[from] = r->now_ns + (gap << r->rejoin_shift[from]);
    if (r->rejoin_shift[from] < REJOIN_SHIFT_MAX)
        r->rejoin_shift[from]++;
    return true;
}

/* A view that does not work: active for a whole timeout, batches proposed,
 * none executed -- too few of the replicas in it vote (a faulty one silent,
 * the others gone ahead). Whether we are the lone one or not, moving up costs
 * nothing then, and waiting for a backup's request timer to move the group
 * can take as long as the clients' retransmission back-off. */
static bool rejoin_view_stuck(const struct pbft_replica *r)
{
    return r->next_seq > r->last_executed + 1u && r->now_ns - r->view_start_ns >= replica_viewchange_timeout(r);
}

void replica_viewchange_rejoin_check(struct pbft_replica *r, uint16_t from, struct pbft_out *out)
{
    if (!r->view_active || !replica_votes(r) || from == r->cfg.id)
        return;
    const struct replica_view_change_msg *x = &r->viewchange_next[from];
    if (x->len == 0 || x->view <= r->view || x->view - r->view > REJOIN_VIEW_SPAN)
        return;
    uint16_t primary = replica_primary_of(r, r->view);
    if (r->cfg.id == primary) {
        if (!r->viewchange_progress && !rejoin_view_stuck(r))
            return; /* nothing executed in this view yet: perhaps we are the lone one */
        if (!rejoin_allowed(r, from)) {
            r->stats.stepdowns_deferred++;
            return;
        }
        r->stats.stepdowns++;
        replica_viewchange_start(r, x->view, out);
    } else if (from == primary) {
        r->stats.stepdown_joins++;
        replica_viewchange_start(r, x->view, out);
    }
}
