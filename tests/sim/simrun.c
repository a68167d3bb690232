/* One simulator run (see simrun.h): the run loop with GST and the liveness
 * bound, and the final checks; the scenario drawn from the seed is scenario.c's. */
#include "tests/sim/simrun.h"

#include <inttypes.h>
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
    /* The swarm draw's state race (swarm.h): a lying state server's STATE
     * messages reach a fetching replica before the correct servers' do. */
    if (s->swarm.on && faults_any(fs, BYZ_LYING_STATE))
        fs->state_delay_ns = SWARM_STATE_DELAY_NS;
    if (faults_any(fs, BYZ_STALE_READ) || faults_any(fs, BYZ_SLOW) || fs->state_delay_ns > 0)
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
                 rs->wl.final_done, rs->wl.final_total, (unsigned long long)(cluster_now(cl) / MS),
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
