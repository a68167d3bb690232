/* Request timers and the view-change timeout (TOCS 2002 §4.5.2; docs/design.md
 * §5.5.2), for viewchange.c. A replica that is not the active primary
 * watches every request a client sent it directly -- a small one is a
 * retransmission the client sent to every replica, a large one travels to every
 * replica from the start -- until it executes. The watches form a FIFO by start
 * time: when the oldest one still waiting has waited the current timeout
 * (counted from the start of the view at the earliest), the backup suspects the
 * primary (docs/design.md §5.5: a backup whose oldest pending request has waited longer
 * than its timer). Not while it is provably behind (replica_catchup_behind: a
 * correct peer executed more): the primary works, the request waits for the
 * backup's own catching up, and a view change nobody else wants would leave it
 * alone in view v+1, following the group by state transfer only. Its timers
 * count from the last moment it was behind. A backup also keeps the small requests it watches in its
 * pending queue, so the next primary can order them without waiting for the
 * clients' next retransmission.
 *
 * The timeout starts at T (request_timeout_ns). It doubles whenever a view
 * change fails: no valid NEW-VIEW in time, or a new view that times out before
 * it executes anything. It halves (down to T) when a view entered by a view
 * change executes a batch. So when messages take longer than T for a while, the
 * timeouts grow until a view lasts long enough to make progress, and settle
 * near what the network needs instead of swinging back to T at once (TOCS 2002
 * §4.5.2 doubles the wait for NEW-VIEW; a request timer that stayed at T would
 * change views forever while delays exceed it).
 *
 * The timeout fits the network (docs/design.md §5.5.2). A backup measures how
 * long the requests it watches wait until they execute here -- exactly what its
 * timer compares with the timeout -- and keeps the last LAT_SAMPLES waits. The
 * timeout it uses is the larger of the doubling timeout above and
 * LAT_MULTIPLE times the largest recent wait (a high quantile: the 98th
 * percentile of 64), capped at LAT_CEILING_T x T. So when requests take longer
 * than T because of queueing at the primary, loss or delay, the timeout follows
 * them instead of firing on every slow request and halving back to T after each
 * view change; and when they speed up again, the estimate falls as new waits
 * replace the old. A faulty primary can at most delay requests to just under
 * the cap (1 s at T = 50 ms), the price of not suspecting a merely slow network
 * -- unless it shows itself: once the primary of our view sends a message no
 * correct primary sends (a bad authenticator, a batch naming a large request
 * its pool holds otherwise -- not a client MAC that fails for us alone, which a
 * faulty client or relay can cause: preprepare.c, pp_vouched), the fitted timeout is off for the rest of that view and the
 * doubling timeout alone applies (replica_viewchange_primary_misbehaved). Measured: a
 * primary in the `random` Byzantine mode kept groups at 300-400 ops/s for whole
 * runs with the fitted timeout, and was replaced at once without it. A faulty
 * backup that forges the primary's sender id can turn fitting off too; that
 * costs only the view changes a lossy network then makes, as before fitting.
 */
#include <string.h>

#include "common/assert.h"
#include "engine/replica_internal.h"
#include "engine/viewchange.h"

/* The timeout doubles per failed view change, up to T << this (64 T: 3.2 s at
 * the default T = 50 ms). */
#define VIEWCHANGE_TIMEOUT_SHIFT_MAX 6u
/* The fitted timeout: this multiple of the largest of the last LAT_SAMPLES
 * waits, at most LAT_CEILING_T x T. */
#define LAT_MULTIPLE 4u
#define LAT_CEILING_T 20u

/* ---- The timeout -------------------------------------------------------------------- */

uint64_t replica_viewchange_timeout(const struct pbft_replica *r)
{
    if (r->fit_off_view == r->view + 1u)
        return r->viewchange_timeout_ns; /* this view's primary showed itself faulty */
    uint64_t fit = LAT_MULTIPLE * r->lat_max_ns, cap = LAT_CEILING_T * r->cfg.request_timeout_ns;
    if (fit > cap)
        fit = cap;
    return fit > r->viewchange_timeout_ns ? fit : r->viewchange_timeout_ns;
}

void replica_viewchange_primary_misbehaved(struct pbft_replica *r)
{
    if (r->fit_off_view != r->view + 1u)
        r->stats.primary_misbehaviour_views++;
    r->fit_off_view = r->view + 1u;
}

void replica_viewchange_timeout_halve(struct pbft_replica *r)
{
    r->viewchange_timeout_ns /= 2u;
    if (r->viewchange_timeout_ns < r->cfg.request_timeout_ns)
        r->viewchange_timeout_ns = r->cfg.request_timeout_ns;
}

/* A watched request executed after waiting `wait`: one more sample. */
static void lat_sample(struct pbft_replica *r, uint64_t wait)
{
    uint64_t old = r->lat_ring[r->lat_next];
    r->lat_ring[r->lat_next] = wait;
    r->lat_next = (r->lat_next + 1u) % REPLICA_LAT_SAMPLES;
    if (wait >= r->lat_max_ns) {
        r->lat_max_ns = wait;
    } else if (old == r->lat_max_ns) {
        uint64_t m = 0; /* the maximum left: rescan the few samples */
        for (uint32_t i = 0; i < REPLICA_LAT_SAMPLES; i++)
            m = r->lat_ring[i] > m ? r->lat_ring[i] : m;
        r->lat_max_ns = m;
    }
}

void replica_viewchange_watch_executed(struct pbft_replica *r, uint32_t idx, uint64_t ts)
{
    if (r->watch_start_ns[idx] == 0 || r->watch_ts[idx] != ts)
        return;
    uint64_t start = r->watch_start_ns[idx] - 1u;
    r->watch_start_ns[idx] = 0;
    if (start < r->view_start_ns)
        start = r->view_start_ns; /* what the timer counted */
    lat_sample(r, r->now_ns > start ? r->now_ns - start : 0);
}

/* ---- Request timers (TOCS 2002 §4.5.2) --------------------------------------------- */

static bool request_is_large(const struct wire_msg *m)
{
    return m->raw_len - m->h.auth_len > BFTKV_INLINE_REQUEST_MAX;
}

static bool watch_live(const struct pbft_replica *r, const struct replica_watch *w)
{
    return r->rc[w->idx].timestamp < w->ts;
}

/* Drop the watches whose requests executed, keeping the order of the rest.
 *
 * O(watch_cap). A replica far behind the clients keeps a full FIFO of live
 * watches, and compacting it for every new request made each request cost a scan
 * of the whole FIFO (74% of a lagging backup's CPU with 70 x 64 lanes), which
 * only deepened the lag. So when a compaction frees less than an eighth of the
 * FIFO, the next waits until an eighth of it more requests executed: at most
 * eight entries scanned per executed request. */
static void watch_compact(struct pbft_replica *r)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < r->watch_count; i++) {
        const struct replica_watch *w = &r->watch[(r->watch_head + i) % r->watch_cap];
        if (watch_live(r, w))
            r->watch[(r->watch_head + kept++) % r->watch_cap] = *w;
    }
    uint32_t freed = r->watch_count - kept;
    r->watch_count = kept;
    r->stats.watch_compactions++;
    if (freed < r->watch_cap / 8u)
        r->watch_compact_at = r->stats.requests_executed + r->watch_cap / 8u;
}

/* Pop executed watches from the front: the front is the oldest still waiting. */
void replica_viewchange_watch_trim(struct pbft_replica *r)
{
    while (r->watch_count > 0 && !watch_live(r, &r->watch[r->watch_head])) {
        r->watch_head = (r->watch_head + 1u) % r->watch_cap;
        r->watch_count--;
    }
}

bool replica_viewchange_watch_request(struct pbft_replica *r, const struct wire_msg *m)
{
    const struct wire_request *rq = &m->u.request;
    if (r->view_active && replica_is_primary(r))
        return false; /* the primary orders; it does not suspect itself */
    uint32_t idx = (uint32_t)rq->client * r->cfg.lanes + rq->lane;
    BFTKV_ASSERT(idx < r->rc_entries);
    if (rq->timestamp <= r->watch_ts[idx] || rq->timestamp <= r->rc[idx].timestamp)
        return false; /* watched already, or executed */
    if (r->watch_count == r->watch_cap && r->stats.requests_executed >= r->watch_compact_at)
        watch_compact(r);
    if (r->watch_count == r->watch_cap) {
        /* Full of live watches: a replica far behind the clients. Not
         * recorded, so the client's next retransmission tries again. */
        r->stats.dropped_full++;
        return true;
    }
    r->watch_ts[idx] = rq->timestamp;
    /* Keep a small one for the next primary (large ones are in the pool). */
    if (!request_is_large(m) && !replica_request_pending_store(r, m))
        r->stats.dropped_full++;
    struct replica_watch *w = &r->watch[(r->watch_head + r->watch_count++) % r->watch_cap];
    w->idx = idx;
    w->ts = rq->timestamp;
    w->start_ns = r->now_ns;
    r->watch_start_ns[idx] = r->now_ns + 1u; /* 0: none */
    return true;
}

/* When the oldest watched request will have waited T; UINT64_MAX: no timer. */
uint64_t replica_viewchange_watch_deadline(const struct pbft_replica *r)
{
    if (!r->view_active || replica_is_primary(r) || r->watch_count == 0)
        return UINT64_MAX;
    uint64_t start = r->watch[r->watch_head].start_ns;
    if (start < r->view_start_ns)
        start = r->view_start_ns;
    if (start < r->behind_ns)
        start = r->behind_ns;
    return start + replica_viewchange_timeout(r);
}

/* A failed view change: wait twice as long next time (up to T << 6). */
void replica_viewchange_timeout_double(struct pbft_replica *r)
{
    if (r->viewchange_timeout_ns <= (r->cfg.request_timeout_ns << VIEWCHANGE_TIMEOUT_SHIFT_MAX) / 2u)
        r->viewchange_timeout_ns *= 2u;
}

