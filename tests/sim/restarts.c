/* The restart shape (see restarts.h): drawing the plan, carrying it out in the
 * run loop, and the end check of a group that must refuse. */
#include "tests/sim/restarts.h"

#include <string.h>

#include "common/assert.h"
#include "engine/pbft.h"

/* How many of the k lose their memory: all of them one plan in four (the edge
 * that empties the most), else uniform in 0..k. */
static uint16_t wiped_draw(struct prng *rng, uint16_t k)
{
    bool all = prng_below(rng, 4) == 0;
    return all ? k : (uint16_t)prng_range(rng, 0, k);
}

void restart_plan_draw(struct restart_plan *p, struct prng *rng, uint16_t n, uint16_t f, uint64_t regular_total,
                       bool durable)
{
    memset(p, 0, sizeof(*p));
    uint16_t q = pbft_quorum(n, f);
    BFTKV_ASSERT(q >= 1 && q <= n);
    p->on = true;
    /* The edges matter most: all q down, all of them wiped (the group left with
     * the fewest holders). One seed in four each takes the edge; the rest are
     * uniform. */
    uint16_t most = durable ? n : q;
    p->k = prng_below(rng, 4) == 0 ? most : (uint16_t)prng_range(rng, 1, most);
    p->wiped = wiped_draw(rng, p->k);
    for (uint16_t c = 0; c < p->k;) {
        uint16_t r = (uint16_t)prng_below(rng, n);
        if (p->member[r])
            continue;
        p->member[r] = true;
        p->wipe[r] = c < p->wiped;
        p->down_ns[r] = prng_range(rng, RESTART_DOWN_MIN_NS, RESTART_DOWN_MAX_NS);
        c++;
    }
    uint64_t lo = regular_total / 10u;
    p->trigger_ops = prng_range(rng, lo, regular_total > lo ? regular_total : lo);
    p->durable = durable;
    if (durable && p->wiped > 0 && prng_below(rng, 4) == 0) {
        p->disks_lost = (uint16_t)prng_range(rng, 1, p->wiped);
        for (uint16_t r = 0, c = 0; r < n && c < p->disks_lost; r++) {
            if (p->wipe[r]) {
                p->lose_disk[r] = true;
                c++;
            }
        }
    }
    /* Fewer than q hold state (engine/catchup.c); durable ones lose it only
     * with their disk. */
    uint16_t lost = durable ? p->disks_lost : p->wiped;
    p->refuse = (uint16_t)(n - lost) < q;
}

void restart_run_init(struct restart_run *rr, const struct restart_plan *p, uint16_t n, uint16_t f)
{
    memset(rr, 0, sizeof(*rr));
    rr->plan = p;
    rr->n = n;
    rr->f = f;
}

static void go_down(struct restart_run *rr, struct cluster *cl, struct workload *wl)
{
    const struct restart_plan *p = rr->plan;
    uint64_t now = cluster_now(cl);
    for (uint16_t r = 0; r < rr->n; r++) {
        if (!p->member[r])
            continue;
        if (p->wipe[r])
            cluster_replica_crash(cl, r);
        else
            cluster_replica_pause(cl, r);
        if (p->lose_disk[r])
            cluster_replica_lose_disk(cl, r);
        rr->is_down[r] = true;
        rr->back_ns[r] = now + p->down_ns[r];
        rr->down_now++;
    }
    rr->went_down = true;
    rr->down_at_ns = now;
    /* f+1 matching NO_STATE answers need f+1 unsure replicas: only possible
     * once more than f lost their memory (Byzantine ones are then excluded). */
    workload_restart_down(wl, (p->durable ? p->disks_lost : p->wiped) > rr->f, p->refuse);
}

bool restart_run_poll(struct restart_run *rr, struct cluster *cl, struct workload *wl)
{
    const struct restart_plan *p = rr->plan;
    if (!p->on)
        return false;
    if (!rr->went_down) {
        if (p->trigger_ns != 0) {
            if (cluster_next_event(cl) < p->trigger_ns)
                return false; /* what comes before the instant happens first */
            cluster_advance_to(cl, p->trigger_ns);
        } else if (wl->regular_done < p->trigger_ops) {
            return false;
        }
        go_down(rr, cl, wl);
        return true;
    }
    if (rr->down_now == 0)
        return false;
    uint64_t t = UINT64_MAX;
    uint16_t who = 0;
    for (uint16_t r = 0; r < rr->n; r++) {
        if (rr->is_down[r] && rr->back_ns[r] < t) {
            t = rr->back_ns[r];
            who = r;
        }
    }
    if (t > cluster_next_event(cl))
        return false;
    cluster_advance_to(cl, t);
    if (p->wipe[who]) {
        int rc = cluster_replica_restart(cl, who);
        BFTKV_ASSERT(rc == 0);
    } else {
        cluster_replica_resume(cl, who);
    }
    rr->is_down[who] = false;
    if (--rr->down_now == 0)
        rr->all_back_ns = cluster_now(cl);
    return true;
}

bool restart_run_settled(const struct restart_run *rr)
{
    return !rr->plan->on || (rr->went_down && rr->down_now == 0);
}

uint16_t restart_unsure_count(struct cluster *cl, uint16_t n, const bool *byzantine)
{
    uint16_t unsure = 0;
    for (uint16_t r = 0; r < n; r++) {
        struct pbft_replica *rep = cluster_replica(cl, r);
        if (byzantine[r] || rep == NULL)
            continue;
        unsure = (uint16_t)(unsure + (pbft_replica_stats(rep)->holds_state == 0));
    }
    return unsure;
}

void restart_run_check_refused(const struct restart_run *rr, struct cluster *cl, struct checkers *ck)
{
    const struct restart_plan *p = rr->plan;
    BFTKV_ASSERT(p->on && p->refuse);
    for (uint16_t r = 0; r < rr->n; r++) {
        struct pbft_replica *rep = cluster_replica(cl, r);
        if (!(p->durable ? p->lose_disk[r] : p->wipe[r]) || rep == NULL)
            continue;
        if (pbft_replica_stats(rep)->holds_state != 0)
            checkers_violation(ck,
                               "replica %u lost its memory and holds state again, though only %u replicas kept "
                               "theirs (at most f = %u: nobody can vouch)",
                               r, (unsigned)(rr->n - p->wiped), (unsigned)rr->f);
    }
}
