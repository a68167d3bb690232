/* One simulator run (see simrun.h): the scenario drawn from the seed, the run
 * loop with GST and the liveness bound, and the final checks. */
#include "tests/sim/simrun.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/wire.h"
#include "tests/sim/checkers.h"
#include "tests/sim/deploy.h"
#include "tests/sim/faults.h"
#include "tests/sim/links.h"
#include "common/prng.h"
#include "tests/sim/rejoin.h"
#include "tests/sim/restarts.h"
#include "tests/sim/scenario.h"
#include "tests/sim/swarm.h"
#include "tests/sim/workload.h"

#define MS 1000000ull
#define US 1000ull

/* After the last completion the cluster runs this much longer, so that every
 * replica's last batches and checkpoints reach the checkers. */
#define SIM_DRAIN_NS (20ull * MS)
/* Steps per run before the driver gives up (an engine that livelocks). */
#define SIM_STEPS_MAX (200ull * 1000ull * 1000ull)
/* The restart shape draws from its own stream, so that the seeds of all mode
 * that do not get it replay as they did before it existed. */
#define SIM_RESTART_STREAM 0x5E57A27ull
/* The link shapes too (links.h); all mode has them in one seed in four. */
#define SIM_LINKS_STREAM 0x117C5ull

void sim_options_defaults(struct sim_options *o)
{
    memset(o, 0, sizeof(*o));
    o->n = 4;
    o->f = 1;
    o->clients = 8;
    o->requests = 100;
    o->faults = SIM_FAULTS_NONE;
    o->loss_percent = -1;
    o->dup_percent = -1;
    o->partitions = -1;
    o->latency_ns = 100 * US;
    o->jitter_ns = -1;
    o->gst_ns = -1;
    o->liveness_ns = 5000 * MS;
    o->behaviour = -1;
    o->swarm = -1;
    o->value_bytes = 0;
    o->readonly_percent = -1;
    o->put_percent = -1;
    o->get_percent = -1;
    o->client_retransmit_ns = 20 * MS;
    o->check_liveness = true;
    o->check_rejoin = true;
}

void sim_context_init(struct sim_context *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
}

void sim_context_destroy(struct sim_context *ctx)
{
    cluster_keys_destroy(ctx->keys);
    if (ctx->lc)
        lincheck_destroy(ctx->lc);
    memset(ctx, 0, sizeof(*ctx));
}

/* ---- Hooks: the checkers and the workload ---------------------------------------- */

struct run_state {
    struct checkers ck;
    struct workload wl;
};

static void hook_exec(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    struct run_state *rs = arg;
    checkers_on_exec(&rs->ck, replica, seq, digest);
}

/* A durable replica rebuilt from its disk goes on from its last executed seq,
 * which is below what it executed before only if it had fetched a state it has
 * no records of: the order check restarts there, the agreement check stays. */
static void hook_recover(void *arg, uint16_t replica, uint64_t last_executed)
{
    struct run_state *rs = arg;
    rs->ck.last_exec[replica] = last_executed;
}

static void hook_checkpoint(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    struct run_state *rs = arg;
    checkers_on_checkpoint(&rs->ck, replica, seq, digest);
}

static void hook_invariant(void *arg, uint16_t replica, uint64_t step, const char *what, uint64_t seq)
{
    struct run_state *rs = arg;
    checkers_violation(&rs->ck, "replica %u broke an invariant at step %" PRIu64 " (seq %" PRIu64 "): %s", replica,
                       step, seq, what);
}

static void hook_complete(void *arg, uint16_t client, const struct pbft_completion *c)
{
    struct run_state *rs = arg;
    workload_on_complete(&rs->wl, client, c);
}

/* ---- Scenario (scenario.h) ---------------------------------------------------------- */

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
            for (uint16_t c = 0; c < ncrash;) {
                uint16_t r = (uint16_t)prng_range(&rng, 0, o->n - 1u);
                if (s->crash[r] || s->faulty[r])
                    continue;
                s->crash[r] = true;
                s->crash_at[r] = prng_below(&rng, s->gst_ns / 2);
                uint64_t back = s->crash_at[r] + prng_range(&rng, 1 * MS, 60 * MS);
                s->restart_at[r] = back < s->gst_ns ? back : s->gst_ns - 1;
                c++;
            }
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
        for (uint16_t c = 0; c < ncrash;) {
            uint16_t r = (uint16_t)prng_range(&rng, 0, o->n - 1u);
            if (s->crash[r])
                continue;
            s->crash[r] = true;
            s->crash_at[r] = prng_below(&rng, s->gst_ns / 2);
            uint64_t back = s->crash_at[r] + prng_range(&rng, 1 * MS, 60 * MS);
            s->restart_at[r] = back < s->gst_ns ? back : s->gst_ns - 1;
            c++;
        }
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

/* ---- The run ------------------------------------------------------------------------- */

static void lincheck_report(struct lincheck *lc, const struct lincheck_result *lr, struct checkers *ck)
{
    const struct lincheck_op *stuck = lr->stuck_op != UINT32_MAX ? lincheck_get(lc, lr->stuck_op) : NULL;
    checkers_violation(ck,
                       "linearizability: key k%llu (%u ops): %s; at most %u ops linearize; stuck at op %u "
                       "(client %u, %s)",
                       (unsigned long long)lr->key, lr->key_ops, lr->reason ? lr->reason : "", lr->deepest,
                       lr->stuck_op, stuck ? stuck->client : 0,
                       !stuck                             ? "-"
                       : stuck->kind == LINCHECK_PUT      ? "PUT"
                       : stuck->kind == LINCHECK_GET      ? "GET"
                                                          : "DEL");
}

static void compare_states(struct cluster *cl, struct checkers *ck, uint64_t *lagging)
{
    uint64_t top = checkers_max_executed(ck);
    uint8_t ref[32];
    int ref_by = -1;
    *lagging = 0;
    for (uint16_t r = 0; r < ck->n; r++) {
        if (ck->faulty[r])
            continue;
        if (ck->last_exec[r] != top) {
            (*lagging)++;
            continue;
        }
        uint8_t d[32];
        store_digest_bytes(cluster_store(cl, r), d);
        if (ref_by < 0) {
            memcpy(ref, d, 32);
            ref_by = r;
        } else if (memcmp(ref, d, 32) != 0) {
            checkers_violation(ck, "state: replicas %d and %u executed up to seq %llu but their stores differ", ref_by,
                               r, (unsigned long long)top);
        }
    }
}

/* What a stuck run looks like: every replica's progress, every client's
 * pending operations (--verbose). */
static void dump_state(struct cluster *cl, struct workload *wl, uint16_t n, uint16_t clients)
{
    for (uint16_t r = 0; r < n; r++) {
        if (!cluster_replica(cl, r))
            continue;
        const struct pbft_replica_stats *st = pbft_replica_stats(cluster_replica(cl, r));
        fprintf(stderr,
                "  replica %u: view=%llu last_executed=%llu low=%llu proposed=%llu executed_batches=%llu "
                "requests=%llu/%llu dup=%llu ro=%llu stale=%llu conflict=%llu full=%llu bad_auth=%llu holds_state=%llu "
                "in_viewchange=%d pool_evicted=%llu pool_waits=%llu pool_relayed=%llu\n",
                r, (unsigned long long)pbft_replica_view(cluster_replica(cl, r)),
                (unsigned long long)st->last_executed, (unsigned long long)st->low_watermark,
                (unsigned long long)st->batches_proposed, (unsigned long long)st->batches_executed,
                (unsigned long long)st->requests_executed, (unsigned long long)st->requests_received,
                (unsigned long long)st->requests_duplicate, (unsigned long long)st->readonly_answered,
                (unsigned long long)st->dropped_stale, (unsigned long long)st->dropped_conflict,
                (unsigned long long)st->dropped_full, (unsigned long long)st->drops.count[WIRE_DROP_BAD_AUTH],
                (unsigned long long)st->holds_state, pbft_replica_in_viewchange(cluster_replica(cl, r)),
                (unsigned long long)st->pool_evicted, (unsigned long long)st->pool_waits,
                (unsigned long long)st->pool_relayed);
    }
    for (uint16_t c = 0; c < clients; c++) {
        const struct pbft_client_stats *cs = pbft_client_stats(cluster_client(cl, c));
        const struct workload_client *wc = &wl->c[c];
        fprintf(stderr, "  client %u: done %u/%u inflight=%u retransmissions=%llu ro_fallbacks=%llu mismatched=%llu:",
                c, wc->completed, wl->cfg.requests, wc->inflight, (unsigned long long)cs->retransmissions,
                (unsigned long long)cs->readonly_fallbacks, (unsigned long long)cs->replies_mismatched);
        for (uint32_t l = 0; l < PBFT_LANES_MAX; l++) {
            if (!wc->lane_busy[l])
                continue;
            const struct lincheck_op *op = lincheck_get(wl->lc, wc->lane_op[l]);
            fprintf(stderr, " lane%u:%s(k%llu)", l,
                    op->kind == LINCHECK_PUT ? "PUT" : op->kind == LINCHECK_GET ? "GET" : "DEL",
                    (unsigned long long)op->key);
        }
        fprintf(stderr, "\n");
    }
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

int simrun_one(const struct sim_options *o, struct sim_context *ctx, uint64_t seed, struct sim_result *res)
{
    memset(res, 0, sizeof(*res));
    if (o->deploy_partitions != 0)
        return deploy_run_one(o, ctx, seed, res);
    if (o->n < 3u * o->f + 1u || o->n > BFTKV_REPLICAS_MAX || o->clients == 0 || o->clients > BFTKV_CLIENTS_MAX)
        return BFTKV_E_INVAL;
    struct scenario *s = calloc(1, sizeof(*s));
    if (!s)
        return BFTKV_E_NOMEM;
    int rc = simrun_draw(o, seed, s, res->scenario, sizeof(res->scenario));
    if (rc == 0)
        rc = simrun_scenario(o, ctx, s, seed, res);
    free(s);
    return rc;
}

int simrun_scenario(const struct sim_options *o, struct sim_context *ctx, struct scenario *s, uint64_t seed,
                    struct sim_result *res)
{
    int rc;
    if (!ctx->keys || ctx->keys->n != o->n || ctx->keys->clients < o->clients) {
        cluster_keys_destroy(ctx->keys);
        ctx->keys = NULL;
        rc = cluster_keys_create(o->n, o->clients, 1, &ctx->keys);
        if (rc != 0)
            return rc;
    }
    uint32_t ops = o->clients * o->requests + (s->wc.keys + 1);
    if (!ctx->lc || ctx->lc_cap < ops) {
        if (ctx->lc)
            lincheck_destroy(ctx->lc);
        ctx->lc = lincheck_create(ops);
        ctx->lc_cap = ops;
        if (!ctx->lc)
            return BFTKV_E_NOMEM;
    }
    lincheck_reset(ctx->lc);

    struct run_state *rs = calloc(1, sizeof(*rs));
    BFTKV_ASSERT(rs != NULL);
    rc = checkers_init(&rs->ck, o->n, s->excluded);
    BFTKV_ASSERT(rc == 0);

    s->cc.keys = ctx->keys;
    s->cc.client_readonly = s->readonly;
    struct cluster_hooks hooks = {
        .on_exec = hook_exec, .on_checkpoint = hook_checkpoint, .on_complete = hook_complete,
        .on_invariant = hook_invariant, .on_recover = hook_recover, .invariants_every = o->invariants_every,
        .arg = rs};
    struct cluster *cl;
    rc = cluster_create(&s->cc, &hooks, &cl);
    if (rc != 0) {
        checkers_destroy(&rs->ck);
        free(rs);
        return rc;
    }
    if (o->trace)
        cluster_set_trace(cl, stderr, o->trace_seq);
    struct netsim *ns = cluster_net(cl);
    if (s->net_apply != NULL)
        s->net_apply(s->net_apply_arg, ns);
    else
        scenario_net_apply(s, ns, o->n, cluster_nodes(cl));
    struct faults *fs = calloc(1, sizeof(*fs));
    BFTKV_ASSERT(fs != NULL);
    rc = faults_init(fs, o->n, o->f);
    BFTKV_ASSERT(rc == 0);
    struct prng fr;
    prng_seed(&fr, seed ^ 0xFA17FA17FA17FA17ull);
    for (uint16_t r = 0; r < o->n; r++)
        if (s->faulty[r])
            faults_set(fs, r, (enum byz_mode)s->behaviour[r], prng_next(&fr));
    faults_attach(fs, cl);

    rc = workload_init(&rs->wl, &s->wc, cl, ctx->lc, &rs->ck, prng_mix64(seed ^ 0x3017u));
    BFTKV_ASSERT(rc == 0);
    faults_set_key_lookup(fs, workload_key_of, &rs->wl);
    if (faults_any(fs, BYZ_STALE_READ) || faults_any(fs, BYZ_SLOW))
        cluster_set_net_filter(cl, faults_net_adversary, fs);
    workload_start(&rs->wl);

    /* Run: until every operation and the final reads complete, or -- after GST --
     * no operation has completed for liveness_ns while some are pending, or
     * nothing is left to happen at all. */
    bool live = true;
    const char *why = NULL;
    struct restart_run rr;
    restart_run_init(&rr, &s->restart, o->n, o->f);
    /* Every correct replica rejoins: checked from the heal (GST, every replica
     * back), except in a group that must refuse (no view needs q). */
    struct pbft_replica_config defaults;
    pbft_replica_config_defaults(&defaults);
    struct rejoin *rj = calloc(1, sizeof(*rj));
    BFTKV_ASSERT(rj != NULL);
    rejoin_init(rj, o->n, o->f, s->faulty, o->rejoin_slack_ns ? o->rejoin_slack_ns : defaults.request_timeout_ns);
    bool check_rejoin = o->check_rejoin && !(s->restart.on && s->restart.refuse);
    for (;;) {
        if (check_rejoin && !rj->started && cluster_now(cl) >= s->gst_ns && restart_run_settled(&rr)) {
            bool back = true;
            for (uint16_t r = 0; r < o->n; r++)
                back = back && !cluster_replica_down(cl, r);
            if (back)
                rejoin_start(rj, cl, cluster_now(cl));
        }
        rejoin_observe(rj, cl, cluster_now(cl));
        if (restart_run_poll(&rr, cl, &rs->wl))
            continue;
        /* Crash-restart events, in time order, before GST. */
        uint64_t next_ev = UINT64_MAX;
        uint16_t ev_r = 0;
        bool ev_crash = false;
        for (uint16_t r = 0; r < o->n; r++) {
            if (!s->crash[r])
                continue;
            bool down = cluster_replica_down(cl, r);
            if (!down && !s->crashed_once[r] && s->crash_at[r] < next_ev) {
                next_ev = s->crash_at[r];
                ev_r = r;
                ev_crash = true;
            } else if (down && s->restart_at[r] < next_ev) {
                next_ev = s->restart_at[r];
                ev_r = r;
                ev_crash = false;
            }
        }
        if (next_ev != UINT64_MAX && next_ev <= cluster_next_event(cl)) {
            cluster_advance_to(cl, next_ev);
            if (ev_crash) {
                cluster_replica_crash(cl, ev_r);
                s->crashed_once[ev_r] = true;
            } else {
                rc = cluster_replica_restart(cl, ev_r);
                BFTKV_ASSERT(rc == 0);
            }
            continue;
        }
        if (workload_final_done(&rs->wl))
            break;
        if (workload_regular_done(&rs->wl) && !rs->wl.final_started && restart_run_settled(&rr)) {
            /* The final reads run after GST, on a network that delivers, and
             * after every replica of the restart shape came back. */
            if (cluster_now(cl) < s->gst_ns && cluster_next_event(cl) > s->gst_ns)
                cluster_advance_to(cl, s->gst_ns);
            if (cluster_now(cl) >= s->gst_ns)
                workload_start_final(&rs->wl);
        }
        uint64_t t = cluster_next_event(cl);
        if (t == UINT64_MAX) {
            if (workload_regular_done(&rs->wl) && !rs->wl.final_started) {
                cluster_advance_to(cl, s->gst_ns);
                continue;
            }
            live = false;
            why = "nothing left to happen (no message in flight, no timer) with operations pending";
            break;
        }
        uint64_t since = rs->wl.last_completion_ns > s->gst_ns ? rs->wl.last_completion_ns : s->gst_ns;
        if (rr.all_back_ns > since)
            since = rr.all_back_ns;
        if (!rr.went_down && s->restart.on && s->restart.trigger_ns > since)
            since = s->restart.trigger_ns; /* idle until the instant is no stall */
        if (t > since + o->liveness_ns) {
            live = false;
            why = "no operation completed for the liveness bound after GST";
            break;
        }
        if (t > rejoin_deadline(rj)) {
            rejoin_fail(rj, cl, rejoin_deadline(rj));
            live = false;
            break;
        }
        if (cluster_stats(cl)->steps >= SIM_STEPS_MAX) {
            live = false;
            why = "step limit reached";
            break;
        }
        cluster_step(cl);
    }
    if (live && s->restart.on && !s->restart.refuse) {
        /* q replicas kept their state: every one that lost it must hold
         * state again (vouched for by f+1 of them) within the liveness bound. */
        uint64_t limit = cluster_now(cl) + o->liveness_ns;
        while (restart_unsure_count(cl, o->n, s->faulty) > 0 && cluster_next_event(cl) <= limit) {
            cluster_step(cl);
            rejoin_observe(rj, cl, cluster_now(cl));
        }
        if (restart_unsure_count(cl, o->n, s->faulty) > 0) {
            live = false;
            why = "a replica that lost its memory never held state again, with f+1 replicas holding it";
        }
    }
    if (live && check_rejoin && !rejoin_settle(rj, cl, SIM_STEPS_MAX))
        live = false;
    if (live)
        cluster_run_until(cl, cluster_now(cl) + SIM_DRAIN_NS);
    if (s->restart.on && s->restart.refuse)
        restart_run_check_refused(&rr, cl, &rs->ck);

    /* Safety checks. A NEW-VIEW that chose another batch (or checkpoint) than
     * one a checked replica executed is agreement broken, even when no client
     * saw it yet: the engine counts it (newview_conflicts), the run fails. */
    for (uint16_t r = 0; r < o->n; r++) {
        struct pbft_replica *rep = cluster_replica(cl, r);
        if (rep != NULL && !s->excluded[r] && pbft_replica_stats(rep)->newview_conflicts != 0)
            checkers_violation(&rs->ck, "agreement: replica %u met %llu NEW-VIEWs that chose against what it executed",
                               r, (unsigned long long)pbft_replica_stats(rep)->newview_conflicts);
    }
    struct lincheck_result lr;
    int v = lincheck_check(ctx->lc, &lr);
    if (v == LINCHECK_VIOLATION) {
        lincheck_report(ctx->lc, &lr, &rs->ck);
        if (o->verbose)
            lincheck_print_key(ctx->lc, lr.key, lr.stuck_op, stderr);
    } else if (v == LINCHECK_UNKNOWN) {
        res->lincheck_unknown = lr.keys_unknown;
    } else if (v < 0) {
        checkers_violation(&rs->ck, "lincheck failed: %s", bftkv_strerror(v));
    }
    compare_states(cl, &rs->ck, &res->lagging);
    if (cluster_stats(cl)->stuck_deadlines > 0 && o->verbose)
        fprintf(stderr, "sim: seed %llu: %llu ticks pushed forward (a node kept asking for a tick in the past)\n",
                (unsigned long long)seed, (unsigned long long)cluster_stats(cl)->stuck_deadlines);

    struct fault_stats fst;
    faults_stats(fs, &fst);
    if (o->verbose && (fst.dropped | fst.corrupted | fst.replayed | fst.fabricated | fst.equivocated) != 0)
        fprintf(stderr,
                "  seed %llu faults: dropped=%llu corrupted=%llu replayed=%llu fabricated=%llu equivocated=%llu\n",
                (unsigned long long)seed, (unsigned long long)fst.dropped, (unsigned long long)fst.corrupted,
                (unsigned long long)fst.replayed, (unsigned long long)fst.fabricated,
                (unsigned long long)fst.equivocated);
    if (!live && o->verbose)
        dump_state(cl, &rs->wl, o->n, o->clients);
    if (rs->ck.safety > 0) {
        res->verdict = SIM_SAFETY;
        snprintf(res->what, sizeof(res->what), "safety: %s", rs->ck.first);
    } else if (!live && rj->failed) {
        res->verdict = o->check_liveness ? SIM_LIVENESS : SIM_OK;
        res->rejoin_failed = true;
        snprintf(res->what, sizeof(res->what), "liveness (rejoin): %s", rj->what);
    } else if (!live) {
        res->verdict = o->check_liveness ? SIM_LIVENESS : SIM_OK;
        snprintf(res->what, sizeof(res->what),
                 "liveness: %s: %llu/%llu operations and %u/%u final reads done at t=%llums (GST %llums, last "
                 "completion %llums, bound %llums)",
                 why, (unsigned long long)rs->wl.regular_done, (unsigned long long)rs->wl.regular_total,
                 rs->wl.final_done, s->wc.keys, (unsigned long long)(cluster_now(cl) / MS),
                 (unsigned long long)(s->gst_ns / MS), (unsigned long long)(rs->wl.last_completion_ns / MS),
                 (unsigned long long)(o->liveness_ns / MS));
    }

    /* Figures. */
    res->committed = rs->wl.completed;
    uint64_t best = 0;
    for (uint16_t r = 0; r < o->n; r++) {
        if (s->faulty[r] || !cluster_replica(cl, r))
            continue;
        const struct pbft_replica_stats *st = pbft_replica_stats(cluster_replica(cl, r));
        res->viewchanges += st->viewchanges;
        res->state_transfers += st->state_transfers;
        res->request_timeouts += st->request_timeouts;
        if (st->batches_executed >= best) {
            best = st->batches_executed;
            res->batches = st->batches_executed;
            res->batch_requests = st->batch_requests_total;
        }
    }
    res->restart = !s->restart.on ? 0 : s->restart.refuse ? 2 : 1;
    res->restart_went_down = rr.went_down;
    res->restart_down_ns = rr.down_at_ns;
    res->recoveries = cluster_stats(cl)->recoveries;
    res->recovered_batches = cluster_stats(cl)->recovered_batches;
    res->recovery_gaps = cluster_stats(cl)->recovery_gaps;
    res->recoveries_from_snapshot = cluster_stats(cl)->recoveries_from_snapshot;
    res->whole_group = s->restart.on && s->restart.wiped == o->n;
    res->no_state = rs->wl.no_state;
    res->sim_ns = cluster_now(cl);
    res->rejoin_bound_ns = rj->max_bound_ns;
    res->rejoin_outside_ns = rj->max_outside_ns;
    res->links = s->links.count > 0;
    res->steps = cluster_stats(cl)->steps;

    workload_destroy(&rs->wl);
    faults_destroy(fs);
    free(fs);
    cluster_destroy(cl);
    checkers_destroy(&rs->ck);
    free(rs);
    free(rj);
    return 0;
}
