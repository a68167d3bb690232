/* The rejoin check (see rejoin.h): who is in the group's view, since when the
 * others are outside, and the bound they must come back within. */
#include "tests/sim/rejoin.h"

#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "engine/pbft.h"

#define MS 1000000ull

void rejoin_init(struct rejoin *rj, uint16_t n, uint16_t f, const bool *byzantine, uint64_t request_timeout_ns)
{
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    memset(rj, 0, sizeof(*rj));
    rj->n = n;
    rj->q = pbft_quorum(n, f);
    memcpy(rj->byzantine, byzantine, n * sizeof(*byzantine));
    rj->slack_ns = request_timeout_ns;
    rj->group_view = UINT64_MAX;
    for (uint16_t r = 0; r < BFTKV_REPLICAS_MAX; r++)
        rj->out_since[r] = REJOIN_INSIDE;
}

/* A replica that is up and holds state: counted toward the group's view, and
 * checked unless Byzantine. */
static struct pbft_replica *counted(struct cluster *cl, uint16_t r)
{
    if (cluster_replica_down(cl, r) || cluster_replica_paused(cl, r))
        return NULL;
    struct pbft_replica *rep = cluster_replica(cl, r);
    if (rep == NULL || pbft_replica_stats(rep)->holds_state == 0)
        return NULL;
    return rep;
}

void rejoin_observe(struct rejoin *rj, struct cluster *cl, uint64_t now_ns)
{
    if (!rj->started)
        return;
    /* Each replica read once per observation (it runs after every step): who
     * counts, and whether and in which view it is active. */
    bool in[BFTKV_REPLICAS_MAX], active[BFTKV_REPLICAS_MAX];
    uint64_t view[BFTKV_REPLICAS_MAX];
    rj->viewchange_timeout_ns = 0;
    for (uint16_t r = 0; r < rj->n; r++) {
        struct pbft_replica *rep = counted(cl, r);
        in[r] = rep != NULL;
        if (rep == NULL)
            continue;
        uint64_t t = pbft_replica_viewchange_timeout_ns(rep);
        if (!rj->byzantine[r] && t > rj->viewchange_timeout_ns)
            rj->viewchange_timeout_ns = t;
        active[r] = !pbft_replica_in_viewchange(rep);
        view[r] = pbft_replica_view(rep);
    }
    /* The group's view: the one with q active replicas (there is at most one). */
    rj->group_view = UINT64_MAX;
    for (uint16_t r = 0; r < rj->n && rj->group_view == UINT64_MAX; r++) {
        if (!in[r] || !active[r])
            continue;
        uint16_t count = 0;
        for (uint16_t s = 0; s < rj->n; s++)
            count = (uint16_t)(count + (in[s] && active[s] && view[s] == view[r]));
        if (count >= rj->q)
            rj->group_view = view[r];
    }
    rj->bound_ns = 2u * rj->viewchange_timeout_ns + rj->slack_ns;
    if (rj->bound_ns > rj->max_bound_ns)
        rj->max_bound_ns = rj->bound_ns;
    /* A Byzantine primary of the group's view may keep a correct replica out
     * (nothing makes it step down); the clock starts once the group's view has
     * a correct primary. */
    bool byzantine_primary = rj->group_view != UINT64_MAX && rj->byzantine[rj->group_view % rj->n];
    for (uint16_t r = 0; r < rj->n; r++) {
        bool inside = rj->byzantine[r] || !in[r] || byzantine_primary
                      || (rj->group_view != UINT64_MAX && active[r] && view[r] == rj->group_view);
        if (inside) {
            if (rj->out_since[r] != REJOIN_INSIDE && now_ns - rj->out_since[r] > rj->max_outside_ns)
                rj->max_outside_ns = now_ns - rj->out_since[r];
            rj->out_since[r] = REJOIN_INSIDE;
        } else if (rj->out_since[r] == REJOIN_INSIDE) {
            rj->out_since[r] = now_ns;
        }
    }
}

void rejoin_start(struct rejoin *rj, struct cluster *cl, uint64_t now_ns)
{
    rj->started = true;
    rj->heal_ns = now_ns;
    rejoin_observe(rj, cl, now_ns);
}

uint64_t rejoin_deadline(const struct rejoin *rj)
{
    uint64_t first = REJOIN_INSIDE;
    for (uint16_t r = 0; r < rj->n; r++)
        if (rj->out_since[r] < first)
            first = rj->out_since[r];
    return first == REJOIN_INSIDE ? UINT64_MAX : first + rj->bound_ns;
}

void rejoin_fail(struct rejoin *rj, struct cluster *cl, uint64_t at_ns)
{
    uint16_t who = 0;
    for (uint16_t r = 1; r < rj->n; r++)
        if (rj->out_since[r] < rj->out_since[who])
            who = r;
    BFTKV_ASSERT(rj->out_since[who] != REJOIN_INSIDE);
    rj->failed = true;
    if (at_ns - rj->out_since[who] > rj->max_outside_ns)
        rj->max_outside_ns = at_ns - rj->out_since[who];
    const struct pbft_replica *rep = cluster_replica(cl, who);
    char group[48];
    if (rj->group_view == UINT64_MAX)
        snprintf(group, sizeof(group), "none (no view has q=%u active)", rj->q);
    else
        snprintf(group, sizeof(group), "%llu", (unsigned long long)rj->group_view);
    /* Every replica: vN active in view N, vcN in a view change to N, - down or
     * without state; b: Byzantine. */
    char all[160];
    size_t at = 0;
    for (uint16_t r = 0; r < rj->n && at < sizeof(all); r++) {
        const struct pbft_replica *x = counted(cl, r);
        int k = x == NULL ? snprintf(all + at, sizeof(all) - at, " %u%s=-", r, rj->byzantine[r] ? "b" : "")
                          : snprintf(all + at, sizeof(all) - at, " %u%s=%s%llu", r, rj->byzantine[r] ? "b" : "",
                                     pbft_replica_in_viewchange(x) ? "vc" : "v",
                                     (unsigned long long)pbft_replica_view(x));
        if (k < 0)
            break;
        at += (size_t)k;
    }
    snprintf(rj->what, sizeof(rj->what),
             "replica %u is outside the group's view since t=%llums (heal at %llums): %s view %llu, group's view %s, "
             "still at t=%llums; bound %llums = 2 x view-change timeout %llums + T %llums; replicas:%s",
             who, (unsigned long long)(rj->out_since[who] / MS), (unsigned long long)(rj->heal_ns / MS),
             pbft_replica_in_viewchange(rep) ? "in a view change to" : "active in",
             (unsigned long long)pbft_replica_view(rep), group, (unsigned long long)(at_ns / MS),
             (unsigned long long)(rj->bound_ns / MS), (unsigned long long)(rj->viewchange_timeout_ns / MS),
             (unsigned long long)(rj->slack_ns / MS), all);
}

bool rejoin_settle(struct rejoin *rj, struct cluster *cl, uint64_t steps_max)
{
    if (!rj->started)
        rejoin_start(rj, cl, cluster_now(cl));
    uint64_t until = cluster_now(cl) + rj->bound_ns;
    for (;;) {
        rejoin_observe(rj, cl, cluster_now(cl));
        uint64_t t = cluster_next_event(cl);
        uint64_t dl = rejoin_deadline(rj);
        if (dl != UINT64_MAX && t > dl) {
            rejoin_fail(rj, cl, dl);
            return false;
        }
        if (dl == UINT64_MAX && t > until)
            return true;
        if (cluster_stats(cl)->steps >= steps_max)
            return true; /* the run's own step limit, not this check's verdict */
        cluster_step(cl);
    }
}
