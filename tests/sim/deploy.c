/* A partitioned deployment in the simulator (see deploy.h): the nodes' scenario,
 * its mapping to each partition's replicas, and the runs of the partitions. */
#include "tests/sim/deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "common/assert.h"
#include "common/prng.h"
#include "tests/sim/lincheck.h"
#include "tests/sim/netsim.h"
#include "tests/sim/scenario.h"

/* The streams of partition p (its network, faults and workload) derive from the
 * seed and this salt + p, so partitions differ while the nodes' plan is one. */
#define DEPLOY_STREAM 0xDE9107ull

/* A partition's view of the nodes' network plan. */
struct deploy_net {
    const struct netsim *nodes_net; /* the plan's partitions over M nodes, then the clients */
    const uint16_t *set;            /* the partition's replica set: node of replica j */
    uint16_t r;
    uint16_t m;
    uint16_t clients;
};

void deploy_partition_net(const struct netsim *nodes_net, const uint16_t *set, uint16_t r, uint16_t m,
                          uint16_t clients, struct netsim *ns)
{
    for (uint32_t i = 0; i < nodes_net->nparts; i++) {
        const struct netsim_partition *np = &nodes_net->parts[i];
        uint8_t *cut = netsim_partition_add_kind(ns, (enum netsim_cut_kind)np->kind, np->start_ns, np->end_ns,
                                                 np->on_ns, np->off_ns);
        BFTKV_ASSERT(cut != NULL); /* as many as the nodes' network holds */
        for (uint16_t j = 0; j < r; j++)
            cut[j] = np->cut[set[j]];
        for (uint16_t c = 0; c < clients; c++)
            cut[r + c] = np->cut[m + c];
    }
}

static void deploy_net_apply(const void *arg, struct netsim *ns)
{
    const struct deploy_net *d = arg;
    deploy_partition_net(d->nodes_net, d->set, d->r, d->m, d->clients, ns);
}

/* Where a client sends an update (PUT, DEL) of key b: its partition, or under
 * PBFT_BUG_ROUTE_OFF_BY_ONE, for a key of 4 or more bytes, the partition of its
 * first len - 1 bytes (an off-by-one in the length hashed). */
static uint32_t deploy_update_route(const char *b, size_t len, uint32_t partitions, bool misroute)
{
    return cluster_key_partition(b, misroute && len >= 4 ? len - 1 : len, partitions);
}

/* The names of the first `keys` keys that partition p of P serves; false when
 * they do not fit the workload's names ("k" and at most 6 digits). With
 * misroute, a key whose updates the clients send to another partition than its
 * GETs is served by both, with ops[k] saying what each serves (workload.h);
 * without it ops stays untouched. */
static bool deploy_key_names(uint32_t *names, uint8_t *ops, uint32_t keys, uint32_t p, uint32_t partitions,
                             bool misroute)
{
    uint32_t name = 0;
    for (uint32_t k = 0; k < keys; name++) {
        if (name > 999999u)
            return false;
        char b[8];
        size_t len;
        workload_key_bytes(name, b, &len);
        bool reads = cluster_key_partition(b, len, partitions) == p;
        if (!misroute) {
            if (reads)
                names[k++] = name;
            continue;
        }
        bool writes = deploy_update_route(b, len, partitions, true) == p;
        if (reads || writes) {
            ops[k] = (uint8_t)((reads ? WORKLOAD_KEY_READ : 0u) | (writes ? WORKLOAD_KEY_WRITE : 0u));
            names[k++] = name;
        }
    }
    return true;
}

/* The keys that two partitions serve (misrouted: GETs in one, updates in the
 * other) have their operations checked together, per key across partitions,
 * by simulated time: the partitions run one after another, each from t = 0,
 * and stand for groups running side by side (docs/design.md §6.5: each key's
 * operations are linearizable). No other key is in two partitions. */
struct deploy_cross {
    struct lincheck *lc;
    uint64_t *clock_ns; /* the partition run's logical clock -> simulated time */
    uint64_t clock_cap;
};

static int deploy_cross_add(struct deploy_cross *x, const struct lincheck *lc, const uint32_t *names,
                            const uint8_t *ops)
{
    for (uint32_t i = 0; i < lincheck_count(lc); i++) {
        const struct lincheck_op *op = lincheck_get(lc, i);
        if (ops[op->key] == (WORKLOAD_KEY_READ | WORKLOAD_KEY_WRITE))
            continue;
        struct lincheck_op m = *op;
        m.key = names[op->key];
        BFTKV_ASSERT(op->invoke_time < x->clock_cap &&
                     (op->return_time == LINCHECK_PENDING || op->return_time < x->clock_cap));
        m.invoke_time = x->clock_ns[op->invoke_time];
        if (op->return_time != LINCHECK_PENDING)
            m.return_time = x->clock_ns[op->return_time];
        int rc = lincheck_add(x->lc, &m);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void deploy_cross_check(struct deploy_cross *x, const struct sim_options *o, struct sim_result *res)
{
    struct lincheck_result lr;
    int v = lincheck_check(x->lc, &lr);
    if (v == LINCHECK_UNKNOWN)
        res->lincheck_unknown += lr.keys_unknown;
    if (v != LINCHECK_VIOLATION && v >= 0)
        return;
    res->verdict = SIM_SAFETY;
    if (v < 0) {
        snprintf(res->what, sizeof res->what, "across partitions: lincheck failed: %s", bftkv_strerror(v));
        return;
    }
    snprintf(res->what, sizeof res->what,
             "across partitions: linearizability: key k%llu (%u ops, GETs and updates in two partitions): %s",
             (unsigned long long)lr.key, lr.key_ops, lr.reason ? lr.reason : "");
    if (o->verbose)
        lincheck_print_key(x->lc, lr.key, lr.stuck_op, stderr);
}

void deploy_partition_scenario(const struct scenario *nodes, const uint16_t *set, uint16_t r, uint16_t f,
                               bool durable, struct scenario *s)
{
    *s = *nodes;
    memset(s->faulty, 0, sizeof s->faulty);
    memset(s->behaviour, 0, sizeof s->behaviour);
    memset(s->crash, 0, sizeof s->crash);
    memset(s->crash_at, 0, sizeof s->crash_at);
    memset(s->restart_at, 0, sizeof s->restart_at);
    memset(s->excluded, 0, sizeof s->excluded);
    memset(s->crashed_once, 0, sizeof s->crashed_once);
    const struct restart_plan *np = &nodes->restart;
    struct restart_plan *p = &s->restart;
    memset(p->member, 0, sizeof p->member);
    memset(p->wipe, 0, sizeof p->wipe);
    memset(p->down_ns, 0, sizeof p->down_ns);
    memset(p->lose_disk, 0, sizeof p->lose_disk);
    p->k = p->wiped = p->disks_lost = 0;
    for (uint16_t j = 0; j < r; j++) {
        uint16_t nd = set[j];
        s->faulty[j] = nodes->faulty[nd];
        s->behaviour[j] = nodes->behaviour[nd];
        s->crash[j] = nodes->crash[nd];
        s->crash_at[j] = nodes->crash_at[nd];
        s->restart_at[j] = nodes->restart_at[nd];
        s->excluded[j] = nodes->excluded[nd];
        p->member[j] = np->member[nd];
        p->wipe[j] = np->wipe[nd];
        p->down_ns[j] = np->down_ns[nd];
        p->lose_disk[j] = np->lose_disk[nd];
        p->k += p->member[j];
        p->wiped += p->wipe[j];
        p->disks_lost += p->lose_disk[j];
    }
    p->on = np->on && p->k > 0;
    uint16_t lost = durable ? p->disks_lost : p->wiped;
    p->refuse = p->on && (uint16_t)(r - lost) < pbft_quorum(r, f);
}

/* Partition p's figures into the seed's. */
static void deploy_add(struct sim_result *res, const struct sim_result *rp)
{
    res->committed += rp->committed;
    res->batches += rp->batches;
    res->batch_requests += rp->batch_requests;
    res->sim_ns = rp->sim_ns > res->sim_ns ? rp->sim_ns : res->sim_ns;
    res->steps += rp->steps;
    res->lincheck_unknown += rp->lincheck_unknown;
    res->lagging += rp->lagging;
    res->viewchanges += rp->viewchanges;
    res->state_transfers += rp->state_transfers;
    res->request_timeouts += rp->request_timeouts;
    res->restart = rp->restart > res->restart ? rp->restart : res->restart;
    res->no_state += rp->no_state;
    res->recoveries += rp->recoveries;
    res->recovered_batches += rp->recovered_batches;
    res->recovery_gaps += rp->recovery_gaps;
    res->recoveries_from_snapshot += rp->recoveries_from_snapshot;
    res->whole_group |= rp->whole_group;
    res->rejoin_bound_ns = rp->rejoin_bound_ns > res->rejoin_bound_ns ? rp->rejoin_bound_ns : res->rejoin_bound_ns;
    res->rejoin_outside_ns =
        rp->rejoin_outside_ns > res->rejoin_outside_ns ? rp->rejoin_outside_ns : res->rejoin_outside_ns;
}

int deploy_run_one(const struct sim_options *o, struct sim_context *ctx, uint64_t seed, struct sim_result *res)
{
    uint16_t m = o->deploy_nodes, r = o->n;
    uint32_t partitions = o->deploy_partitions;
    if (r < 3u * o->f + 1u || m < r || m > BFTKV_REPLICAS_MAX || partitions == 0 ||
        partitions > DEPLOY_PARTITIONS_MAX || (partitions & (partitions - 1u)) != 0 || o->clients == 0 ||
        o->clients > BFTKV_CLIENTS_MAX || (uint32_t)m + o->clients > BFTKV_NODES_MAX)
        return BFTKV_E_INVAL;
    uint32_t ids[BFTKV_REPLICAS_MAX];
    for (uint16_t i = 0; i < m; i++)
        ids[i] = i + 1u;
    uint16_t *sets = calloc((size_t)partitions * r, sizeof *sets);
    struct scenario *nodes = calloc(1, sizeof *nodes);
    struct scenario *s = calloc(1, sizeof *s);
    int rc = sets && nodes && s ? cluster_placement_rendezvous(ids, m, partitions, r, sets) : BFTKV_E_NOMEM;

    /* The nodes' scenario: drawn as for a group of M replicas. */
    struct sim_options on = *o;
    on.n = m;
    on.deploy_partitions = 0;
    on.swarm = 0; /* the deployment maps only the partitions and link shapes */
    if (rc == 0)
        rc = simrun_draw(&on, seed, nodes, res->scenario, sizeof res->scenario);
    uint32_t *names = rc == 0 ? calloc(nodes->wc.keys, sizeof *names) : NULL;
    struct netsim net;
    memset(&net, 0, sizeof net);
    if (rc == 0 && names == NULL)
        rc = BFTKV_E_NOMEM;
    bool misroute = (o->bugs & PBFT_BUG_ROUTE_OFF_BY_ONE) != 0;
    uint8_t *key_ops = NULL;
    struct deploy_cross cross = {0};
    if (rc == 0 && misroute) {
        /* a partition's run has at most this many history entries, 2 ticks each (simrun.c) */
        uint32_t run_ops = (uint32_t)o->clients * o->requests + nodes->wc.keys + 1u;
        cross.clock_cap = 2u * (uint64_t)run_ops + 2u;
        key_ops = calloc(nodes->wc.keys, 1);
        cross.clock_ns = calloc(cross.clock_cap, sizeof *cross.clock_ns);
        cross.lc = lincheck_create(run_ops * partitions);
        if (key_ops == NULL || cross.clock_ns == NULL || cross.lc == NULL)
            rc = BFTKV_E_NOMEM;
    }
    if (rc == 0)
        rc = netsim_init(&net, (uint32_t)m + o->clients, &nodes->cc.net, 0);
    if (rc == 0) {
        scenario_net_apply(nodes, &net, m, (uint32_t)m + o->clients);
        size_t at = strlen(res->scenario);
        snprintf(res->scenario + at, sizeof res->scenario - at, " deploy: M=%u R=%u P=%u f=%u", m, r, partitions,
                 o->f);
    }

    struct sim_options op = *o;
    op.deploy_partitions = 0;
    /* The restart shape's nodes go down at one instant: when the first
     * partition holding one of them completed the plan's operations. */
    bool down = false;
    uint64_t down_ns = 0;
    for (uint32_t p = 0; rc == 0 && p < partitions; p++) {
        const uint16_t *set = sets + (size_t)p * r;
        deploy_partition_scenario(nodes, set, r, o->f, o->durable, s);
        s->cc.n = r;
        s->cc.group = (uint16_t)(p + 1u);
        s->cc.net_seed = nodes->cc.net_seed ^ prng_mix64(DEPLOY_STREAM + p);
        if (!deploy_key_names(names, key_ops, nodes->wc.keys, p, partitions, misroute)) {
            rc = BFTKV_E_INVAL; /* --keys too many for P partitions */
            break;
        }
        s->wc.key_names = names;
        s->wc.key_ops = key_ops;
        s->wc.clock_ns = cross.clock_ns;
        s->wc.clock_cap = cross.clock_cap;
        struct deploy_net dn = {.nodes_net = &net, .set = set, .r = r, .m = m, .clients = o->clients};
        s->net_apply = deploy_net_apply;
        s->net_apply_arg = &dn;
        if (s->restart.on && down)
            s->restart.trigger_ns = down_ns > 0 ? down_ns : 1u;
        struct sim_result rp;
        memset(&rp, 0, sizeof rp);
        rc = simrun_scenario(&op, ctx, s, seed ^ prng_mix64(DEPLOY_STREAM + p), &rp);
        if (rc != 0)
            break;
        deploy_add(res, &rp);
        if (rp.verdict == SIM_OK && s->restart.on) {
            BFTKV_ASSERT(rp.restart_went_down && (!down || rp.restart_down_ns == s->restart.trigger_ns));
            down = true;
            down_ns = rp.restart_down_ns;
        }
        if (rp.verdict == SIM_OK && misroute)
            rc = deploy_cross_add(&cross, ctx->lc, names, key_ops);
        if (rp.verdict == SIM_OK)
            continue;
        /* The first failing partition names the seed's failure. */
        res->verdict = rp.verdict;
        res->rejoin_failed = rp.rejoin_failed;
        int k = snprintf(res->what, sizeof res->what, "partition %u (group %u, nodes", p, p + 1u);
        for (uint16_t j = 0; j < r && k > 0 && (size_t)k < sizeof res->what; j++)
            k += snprintf(res->what + k, sizeof res->what - (size_t)k, "%s%u", j ? "," : " ", set[j]);
        if (k > 0 && (size_t)k < sizeof res->what)
            snprintf(res->what + k, sizeof res->what - (size_t)k, "): %.640s", rp.what);
        break;
    }
    if (rc == 0 && misroute && res->verdict == SIM_OK)
        deploy_cross_check(&cross, o, res);
    res->links = nodes != NULL && nodes->links.count > 0;
    if (cross.lc != NULL)
        lincheck_destroy(cross.lc);
    free(cross.clock_ns);
    free(key_ops);
    if (net.heap != NULL)
        netsim_destroy(&net);
    free(names);
    free(s);
    free(nodes);
    free(sets);
    return rc;
}

void deploy_describe(const struct sim_options *o, FILE *f, bool sets)
{
    uint16_t m = o->deploy_nodes, r = o->n;
    uint32_t partitions = o->deploy_partitions;
    uint32_t ids[BFTKV_REPLICAS_MAX];
    for (uint16_t i = 0; i < m; i++)
        ids[i] = i + 1u;
    uint16_t *set = calloc((size_t)partitions * r, sizeof *set);
    if (set == NULL || cluster_placement_rendezvous(ids, m, partitions, r, set) != 0) {
        free(set);
        return;
    }
    uint32_t hosted[BFTKV_REPLICAS_MAX] = {0}, primary[BFTKV_REPLICAS_MAX] = {0};
    for (uint32_t p = 0; p < partitions; p++) {
        primary[set[(size_t)p * r]]++;
        for (uint16_t j = 0; j < r; j++)
            hosted[set[(size_t)p * r + j]]++;
    }
    fprintf(f, "sim: deployment nodes=%u R=%u f=%u partitions=%u (rendezvous) node:replicas/primaries", m, r, o->f,
            partitions);
    for (uint16_t i = 0; i < m; i++)
        fprintf(f, " %u:%u/%u", i, hosted[i], primary[i]);
    fprintf(f, "\n");
    for (uint32_t p = 0; sets && p < partitions; p++) {
        fprintf(f, "  partition %u (group %u): nodes", p, p + 1u);
        for (uint16_t j = 0; j < r; j++)
            fprintf(f, "%s%u", j ? "," : " ", set[(size_t)p * r + j]);
        fprintf(f, "\n");
    }
    free(set);
}
