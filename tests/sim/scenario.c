/* One seed's scenario (scenario.h): the protocol tuning, the network, the link
 * shapes, the Byzantine and crashed replicas, the restart shape and the workload,
 * drawn from the seed -- in all mode within the classes the swarm draw turned on
 * (swarm.h) -- and the network partitions the run applies. */
#include "tests/sim/scenario.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/prng.h"
#include "engine/byzantine.h"
#include "engine/wire.h"
#include "tests/sim/faults.h"
#include "tests/sim/links.h"
#include "tests/sim/restarts.h"
#include "tests/sim/swarm.h"

#define MS 1000000ull
#define US 1000ull
/* The restart shape draws from its own stream, so that the seeds of all mode
 * that do not get it replay as they did before it existed. */
#define SIM_RESTART_STREAM 0x5E57A27ull
/* The link shapes too (links.h); all mode has them in one seed in four. */
#define SIM_LINKS_STREAM 0x117C5ull

/* Faulty primaries of view 0 (and 1): silent, dropping (10..90%), equivocating
 * or slow (just under the request timeout). */
static const uint8_t primary_faults[] = {BYZ_SILENT, BYZ_DROP, BYZ_EQUIVOCATE, BYZ_SLOW};

static size_t appendf(char *buf, size_t cap, size_t at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static size_t appendf(char *buf, size_t cap, size_t at, const char *fmt, ...)
{
    if (at >= cap)
        return at;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + at, cap - at, fmt, ap);
    va_end(ap);
    if (k < 0)
        return at;
    return at + (size_t)k >= cap ? cap - 1 : at + (size_t)k;
}

static uint8_t draw_behaviour(const struct sim_options *o, struct prng *rng)
{
    if (o->behaviour >= 0)
        return (uint8_t)o->behaviour;
    uint64_t b = prng_range(rng, FAULT_RANDOM_FIRST, FAULT_RANDOM_LAST + 2u);
    return (uint8_t)(b == FAULT_RANDOM_LAST + 1u   ? BYZ_BOGUS_VIEW_CHANGE
                     : b == FAULT_RANDOM_LAST + 2u ? BYZ_LYING_STATE
                                                   : b);
}

/* Byzantine replicas beside the restart shape (all mode): outside the restart
 * set, and only while wiped + Byzantine <= f (restarts.h). */
/* ncrash distinct replicas (not Byzantine ones when skip_faulty) crash at a drawn
 * moment in the first half before GST and restart 1-60 ms later, before GST. */
static void draw_crashes(struct scenario *s, struct prng *rng, uint16_t n, uint16_t ncrash, bool skip_faulty)
{
    for (uint16_t c = 0; c < ncrash;) {
        uint16_t r = (uint16_t)prng_range(rng, 0, n - 1u);
        if (s->crash[r] || (skip_faulty && s->faulty[r]))
            continue;
        s->crash[r] = true;
        s->crash_at[r] = prng_below(rng, s->gst_ns / 2);
        uint64_t back = s->crash_at[r] + prng_range(rng, 1 * MS, 60 * MS);
        s->restart_at[r] = back < s->gst_ns ? back : s->gst_ns - 1;
        c++;
    }
}

static void draw_restart_byzantine(const struct sim_options *o, struct scenario *s, struct prng *rng)
{
    const struct restart_plan *p = &s->restart;
    uint16_t lost = p->durable ? p->disks_lost : p->wiped; /* durable: only with the disk */
    if (lost >= o->f)
        return;
    uint16_t count = (uint16_t)prng_range(rng, 0, o->f - lost);
    uint16_t free_ids[BFTKV_REPLICAS_MAX], nfree = 0;
    for (uint16_t r = 0; r < o->n; r++)
        if (!p->member[r])
            free_ids[nfree++] = r;
    for (uint16_t c = 0; c < count && nfree > 0; c++) {
        uint16_t i = (uint16_t)prng_below(rng, nfree);
        uint16_t r = free_ids[i];
        free_ids[i] = free_ids[--nfree];
        s->faulty[r] = true;
        if (o->behaviour >= 0)
            s->behaviour[r] = (uint8_t)o->behaviour;
        else if (s->swarm.on)
            s->behaviour[r] = swarm_behaviour(&s->swarm, rng, r == 0);
        else if (r == 0)
            s->behaviour[r] = primary_faults[prng_below(rng, sizeof(primary_faults))];
        else
            s->behaviour[r] = draw_behaviour(o, rng);
    }
}

int simrun_draw(const struct sim_options *o, uint64_t seed, struct scenario *s, char *desc, size_t desc_cap)
{
    struct prng root, rng;
    prng_seed(&root, seed);
    prng_fork(&rng, &root, 1);
    memset(s, 0, sizeof(*s));
    struct cluster_config *cc = &s->cc;
    cc->n = o->n;
    cc->f = o->f;
    cc->clients = o->clients;
    cc->bugs = o->bugs;
    cc->durable = o->durable;
    cc->client_retransmit_ns = o->client_retransmit_ns;
    bool net = (o->faults & SIM_FAULTS_NET) != 0;
    bool byz = (o->faults & SIM_FAULTS_BYZANTINE) != 0;
    size_t at = 0;
    /* All mode draws its fault classes first (swarm.h), from their own stream. */
    struct swarm *sw = &s->swarm;
    if (o->swarm != 0 && (o->faults & SIM_FAULTS_ALL) == SIM_FAULTS_ALL && o->faulty_count == 0 && o->behaviour < 0) {
        struct pbft_replica_config defaults;
        pbft_replica_config_defaults(&defaults);
        swarm_draw(sw, seed, o->n, o->f, defaults.request_timeout_ns);
        net = sw->net;
        byz = sw->byz;
    }
    if ((o->faults & SIM_FAULTS_RESTART) != 0 && o->faulty_count == 0) {
        struct prng rr;
        prng_seed(&rr, seed ^ prng_mix64(SIM_RESTART_STREAM));
        if (sw->on ? sw->restart : !byz || prng_below(&rr, 4) == 0)
            restart_plan_draw(&s->restart, &rr, o->n, o->f, (uint64_t)o->clients * o->requests, o->durable);
    }

    /* Protocol tuning. Checkpoint intervals small enough that a run of a few
     * hundred batches crosses checkpoints and moves the watermarks, large enough
     * that Ed25519 (about 22 us to sign, 59 us to verify) stays a small share of
     * the run. Mostly short pipelines, so batches grow with load; sometimes deep
     * ones. Batch byte limits: mostly 16 KiB (the log's PRE-PREPARE buffers are
     * sized by it, so it sets the cost of creating a replica), sometimes barely
     * above one inlined request (closing batches by bytes), sometimes the engine's
     * default. */
    static const uint32_t ks[10] = {32, 64, 64, 128, 128, 128, 128, 256, 256, 256};
    cc->checkpoint_interval = o->checkpoint_interval ? o->checkpoint_interval : ks[prng_below(&rng, 10)];
    if (sw->on && sw->short_log && !o->checkpoint_interval)
        cc->checkpoint_interval = prng_below(&rng, 2) == 0 ? 16u : 32u;
    if (cc->checkpoint_interval > BFTKV_CHECKPOINT_INTERVAL_MAX) /* limits.h: bounded by the VIEW-CHANGE size */
        cc->checkpoint_interval = BFTKV_CHECKPOINT_INTERVAL_MAX;
    if (o->log_window) {
        cc->log_window = o->log_window;
    } else {
        uint64_t lroll = prng_below(&rng, 10);
        uint32_t mult = lroll < 6 || (sw->on && sw->short_log) ? 2u : lroll < 8 ? 3u : 4u;
        cc->log_window = cc->checkpoint_interval * mult;
        while (cc->log_window > BFTKV_LOG_WINDOW_MAX)
            cc->log_window -= cc->checkpoint_interval;
    }
    uint32_t wmax = cc->log_window / 2 < 16 ? cc->log_window / 2 : 16;
    uint64_t wroll = prng_below(&rng, 20);
    if (o->window)
        cc->window = o->window;
    else if (wroll < 12)
        cc->window = (uint32_t)prng_range(&rng, 1, 2);
    else if (wroll < 17)
        cc->window = (uint32_t)prng_range(&rng, 3, 4);
    else
        cc->window = (uint32_t)prng_range(&rng, 5, wmax);
    if (sw->on && sw->window_one && !o->window)
        cc->window = 1;
    cc->batch_max_requests = o->batch ? o->batch : (prng_below(&rng, 5) == 0 ? (uint32_t)prng_range(&rng, 1, 4) : 0);
    uint32_t inline_max = WIRE_PP_ENTRY_FIXED + BFTKV_INLINE_REQUEST_MAX + (uint32_t)o->n * BFTKV_MAC_SIZE;
    uint64_t roll = prng_below(&rng, 10);
    cc->batch_max_bytes = roll < 2   ? (uint32_t)prng_range(&rng, inline_max, inline_max + 2048)
                          : roll < 3 ? 0 /* engine default */
                                     : 16u * 1024u;
    if (o->batch_bytes)
        cc->batch_max_bytes = o->batch_bytes;
    cc->lanes = o->lanes ? o->lanes : (uint16_t)prng_range(&rng, 2, 8);
    at = appendf(desc, desc_cap, at, "K=%u L=%u W=%u B=%u/%uB lanes=%u", cc->checkpoint_interval, cc->log_window,
                 cc->window, cc->batch_max_requests, cc->batch_max_bytes, cc->lanes);

    /* Network. */
    struct netsim_config *nc = &cc->net;
    nc->latency_ns = o->latency_ns;
    nc->stable_jitter_ns = 20 * US;
    if (net) {
        nc->loss_percent = o->loss_percent >= 0 ? o->loss_percent : (double)prng_below(&rng, (sw->on ? sw->loss_max_tenths : 300u) + 1u) / 10.0;
        nc->dup_percent = o->dup_percent >= 0 ? o->dup_percent : (double)prng_below(&rng, (sw->on ? sw->dup_max_tenths : 100u) + 1u) / 10.0;
        nc->jitter_uniform = prng_below(&rng, 2) == 0;
        nc->jitter_ns = o->jitter_ns >= 0 ? (uint64_t)o->jitter_ns : prng_range(&rng, 0, 2 * MS);
        s->gst_ns = o->gst_ns >= 0 ? (uint64_t)o->gst_ns : prng_range(&rng, 10 * MS, 100 * MS);
        s->nparts = o->partitions >= 0 ? (uint32_t)o->partitions : (uint32_t)prng_below(&rng, (sw->on ? sw->partitions_max : 2u) + 1u);
        if (s->nparts > SIM_PARTITIONS_MAX)
            s->nparts = SIM_PARTITIONS_MAX;
        for (uint32_t i = 0; i < s->nparts; i++) {
            uint64_t start = s->gst_ns > 0 ? prng_below(&rng, s->gst_ns) : 0;
            uint64_t end = start + prng_range(&rng, 1 * MS, 30 * MS);
            s->part_start[i] = start;
            s->part_end[i] = end < s->gst_ns ? end : s->gst_ns;
        }
        s->part_seed = prng_next(&rng);
        at = appendf(desc, desc_cap, at, " net: loss=%.1f%% dup=%.1f%% jitter=%s:%lluus partitions=%u gst=%llums",
                     nc->loss_percent, nc->dup_percent, nc->jitter_uniform ? "uniform" : "exp",
                     (unsigned long long)(nc->jitter_ns / US), s->nparts, (unsigned long long)(s->gst_ns / MS));
    } else {
        /* A reliable network still reorders a little. */
        nc->jitter_uniform = true;
        nc->jitter_ns = o->jitter_ns >= 0 ? (uint64_t)o->jitter_ns : prng_range(&rng, 0, 100 * US);
        s->gst_ns = 0;
    }
    /* The link shapes, from their own stream; they end before GST (it moves
     * to their end unless --gst-ms is given: then GST cuts them short). */
    struct prng lr;
    prng_seed(&lr, seed ^ prng_mix64(SIM_LINKS_STREAM));
    uint32_t link_kinds = (o->faults & SIM_FAULTS_LINKS) != 0 ? o->link_kinds : 0;
    if (link_kinds == 0 && (o->faults & SIM_FAULTS_ALL) == SIM_FAULTS_ALL && (sw->on ? sw->links : prng_below(&lr, 4) == 0))
        link_kinds = LINK_ANY;
    if (link_kinds != 0 && o->n >= 2) {
        link_plan_draw(&s->links, &lr, o->n, link_kinds);
        if (o->gst_ns < 0 && s->links.end_ns > s->gst_ns)
            s->gst_ns = s->links.end_ns;
        at = link_plan_describe(&s->links, desc, desc_cap, at);
        at = appendf(desc, desc_cap, at, " gst=%llums", (unsigned long long)(s->gst_ns / MS));
    }
    if (sw->on) {
        /* The isolating partition ends before GST, as the link shapes do; crashes
         * need a GST to come back before. */
        if (sw->isolate && o->gst_ns < 0 && sw->iso_end_ns > s->gst_ns)
            s->gst_ns = sw->iso_end_ns;
        if (sw->isolate && sw->iso_end_ns > s->gst_ns)
            sw->iso_end_ns = s->gst_ns > sw->iso_start_ns ? s->gst_ns : sw->iso_start_ns;
        if (sw->crash && s->gst_ns <= 2 * MS && o->gst_ns < 0)
            s->gst_ns = prng_range(&rng, 10 * MS, 100 * MS);
        at = swarm_describe(sw, desc, desc_cap, at);
        at = appendf(desc, desc_cap, at, " gst=%llums", (unsigned long long)(s->gst_ns / MS));
    }
    nc->gst_ns = s->gst_ns;
    cc->net_seed = prng_next(&root);

    /* Byzantine replicas: explicit, or up to f backups drawn per seed. */
    if (o->faulty_count > 0) {
        for (uint16_t i = 0; i < o->faulty_count; i++) {
            uint16_t r = o->faulty[i];
            if (r >= o->n)
                return BFTKV_E_INVAL;
            s->faulty[r] = true;
            s->behaviour[r] = draw_behaviour(o, &rng);
        }
        /* In all mode, every other seed also crashes 1..f-|faulty| correct replicas. */
        if (net && byz && s->gst_ns > 2 * MS && o->f > o->faulty_count && prng_below(&rng, 2) == 0) {
            uint16_t ncrash = (uint16_t)prng_range(&rng, 1, o->f - o->faulty_count);
            draw_crashes(s, &rng, o->n, ncrash, true);
        }
    } else if (s->restart.on) {
        if (byz)
            draw_restart_byzantine(o, s, &rng);
    } else if (sw->on) {
        swarm_place(sw, s, &rng, o->n, o->f);
    } else if (byz && o->f > 0) {
        /* In all mode, one seed in three crashes 1..f replicas (any, the primary
         * included) before GST; they count toward f. */
        uint16_t ncrash = net && s->gst_ns > 2 * MS && prng_below(&rng, 3) == 0 ? (uint16_t)prng_range(&rng, 1, o->f)
                                                                                 : 0;
        uint16_t count = ncrash ? (uint16_t)prng_range(&rng, 0, o->f - ncrash) : (uint16_t)prng_range(&rng, 1, o->f);
        draw_crashes(s, &rng, o->n, ncrash, false);
        uint16_t k = 0;
        /* Two seeds in three, the primary of view 0 is faulty (primary_faults);
         * with f >= 2, half of those also make the primary of view 1 faulty
         * (consecutive faulty primaries: the first view change must fail too). */
        if (count > 0 && prng_below(&rng, 3) != 0) {
            uint16_t primaries = count >= 2 && prng_below(&rng, 2) == 0 ? 2 : 1;
            for (uint16_t r = 0; r < primaries; r++) {
                if (s->crash[r])
                    continue;
                s->faulty[r] = true;
                s->behaviour[r] = o->behaviour >= 0 ? (uint8_t)o->behaviour
                                                    : primary_faults[prng_below(&rng, sizeof(primary_faults))];
                k++;
            }
        }
        for (; k < count;) {
            uint16_t r = (uint16_t)prng_range(&rng, 1, o->n - 1u);
            if (s->faulty[r] || s->crash[r])
                continue;
            s->faulty[r] = true;
            s->behaviour[r] = draw_behaviour(o, &rng);
            k++;
        }
    }
    bool any = false;
    for (uint16_t r = 0; r < o->n; r++) {
        if (!s->faulty[r])
            continue;
        at = appendf(desc, desc_cap, at, "%s%u=%s", any ? "," : " byz: ", r,
                     byz_mode_name((enum byz_mode)s->behaviour[r]));
        any = true;
    }
    any = false;
    for (uint16_t r = 0; r < o->n; r++) {
        /* A durable replica that crashed is rebuilt from its disk: correct, and checked. */
        s->excluded[r] = s->faulty[r] || s->restart.lose_disk[r] || (!o->durable && (s->crash[r] || s->restart.wipe[r]));
        if (!s->crash[r])
            continue;
        at = appendf(desc, desc_cap, at, "%s%u@%llu-%llums", any ? "," : " crash: ", r,
                     (unsigned long long)(s->crash_at[r] / MS), (unsigned long long)(s->restart_at[r] / MS));
        any = true;
    }

    if (s->restart.on) {
        const struct restart_plan *p = &s->restart;
        at = appendf(desc, desc_cap, at, " restart: k=%u wiped=%u at op %llu%s:", p->k, p->wiped,
                     (unsigned long long)p->trigger_ops, p->refuse ? " (refuse)" : "");
        for (uint16_t r = 0; r < o->n; r++)
            if (p->member[r])
                at = appendf(desc, desc_cap, at, " %u=%s+%llums", r,
                             p->lose_disk[r] ? "wipe+disk" : p->wipe[r] ? "wipe" : "pause",
                             (unsigned long long)(p->down_ns[r] / MS));
    }

    /* Workload. */
    struct workload_config *wc = &s->wc;
    wc->clients = o->clients;
    wc->requests = o->requests;
    /* Keys: few enough that operations on one key overlap, enough that the
     * linearizability search (exponential in the overlap) stays cheap: on
     * average two to four operations in flight per key. */
    uint32_t inflight = (uint32_t)o->clients * cc->lanes;
    uint32_t kmin = inflight / 4 > 8 ? inflight / 4 : 8;
    uint32_t kmax = inflight / 2 > 32 ? inflight / 2 : 32;
    wc->keys = o->keys ? o->keys : (uint32_t)prng_range(&rng, kmin, kmax);
    /* Mostly reads, as in most key-value workloads (and a PUT costs each replica
     * two LtHash updates); enough writes and deletes that every key changes
     * many times. */
    wc->put_percent = o->put_percent >= 0 ? (uint32_t)o->put_percent : (uint32_t)prng_range(&rng, 20, 40);
    uint32_t rest = 100 - wc->put_percent;
    wc->get_percent = o->get_percent >= 0 ? (uint32_t)o->get_percent
                                          : (uint32_t)prng_range(&rng, rest * 2 / 3, rest - 5);
    if (wc->put_percent + wc->get_percent > 100)
        return BFTKV_E_INVAL;
    wc->inflight = cc->lanes;
    /* Values: mostly small; sometimes large enough to make big inlined batches;
     * sometimes larger than BFTKV_INLINE_REQUEST_MAX, so requests travel from the
     * client to every replica and PRE-PREPAREs carry their digests. */
    if (o->value_bytes) {
        wc->value_bytes = o->value_bytes < WORKLOAD_VALUE_MIN ? WORKLOAD_VALUE_MIN : o->value_bytes;
    } else {
        uint64_t vroll = prng_below(&rng, 10);
        wc->value_bytes = vroll < 8   ? 16u
                          : vroll < 9 ? (uint32_t)prng_range(&rng, WORKLOAD_VALUE_MIN, 900)
                                      : (uint32_t)prng_range(&rng, BFTKV_INLINE_REQUEST_MAX + 100, 4000);
    }
    int ro = o->readonly_percent >= 0 ? o->readonly_percent : sw->on ? (int)sw->readonly_percent : 50;
    uint32_t nro = 0;
    for (uint16_t i = 0; i < o->clients; i++) {
        s->readonly[i] = prng_percent(&rng, (double)ro);
        nro += s->readonly[i];
    }
    at = appendf(desc, desc_cap, at, " wl: keys=%u put=%u%% get=%u%% value=%uB ro-clients=%u/%u", wc->keys,
                 wc->put_percent, wc->get_percent, wc->value_bytes, nro, o->clients);
    (void)at;
    return 0;
}

void scenario_net_apply(const struct scenario *s, struct netsim *ns, uint16_t n, uint32_t nodes)
{
    if (s->nparts > 0) {
        struct prng pr;
        prng_seed(&pr, s->part_seed);
        for (uint32_t i = 0; i < s->nparts; i++) {
            uint8_t *cut = netsim_partition_add(ns, s->part_start[i], s->part_end[i]);
            for (uint32_t nd = 0; nd < nodes; nd++)
                cut[nd] = prng_below(&pr, 3) == 0;
        }
    }
    if (s->swarm.isolate && s->swarm.iso_end_ns > s->swarm.iso_start_ns) {
        /* The clients stay on the side of the replicas not cut off. */
        uint8_t *cut = netsim_partition_add(ns, s->swarm.iso_start_ns, s->swarm.iso_end_ns);
        BFTKV_ASSERT(cut != NULL);
        for (uint16_t r = 0; r < n; r++)
            cut[r] = s->swarm.iso_cut[r];
    }
    if (s->links.count > 0) {
        bool room = link_plan_apply(&s->links, ns, n, nodes);
        BFTKV_ASSERT(room);
    }
}
