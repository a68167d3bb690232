/* The simulated cluster (see cluster.h): creation of replicas, clients, stores
 * and keys; the event loop step (deliver or tick); outbox expansion by
 * destination; the send and network filters. */
#include "tests/sim/cluster.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/invariants.h"
#include "engine/wire.h"
#include "common/prng.h"
#include "tests/engine/persist_check.h"

#define CLUSTER_STORE_SHARDS 16u
/* After this many ticks of one node at the same instant without its deadline
 * moving, the node is considered stuck and its deadline pushed forward. */
#define CLUSTER_STUCK_TICKS 64u
#define CLUSTER_STUCK_PUSH_NS 1000000ull

struct cluster_node {
    bool is_client;
    uint16_t id;
    struct pbft_replica *replica;
    struct pbft_client *client;
    struct store *store;
    const struct auth_ctx *auth;
    uint64_t deadline_ns;
    uint64_t last_tick_ns;
    uint32_t same_tick;
    cluster_send_filter_fn send_filter;
    void *send_filter_arg;
    bool down;  /* a crashed replica: no replica, no store; messages to it are lost */
    bool paused; /* a stopped replica: kept, but no ticks; messages to it are lost */
    struct persist_disk *disk; /* cfg.durable: its records; it survives a crash */
};

struct cluster {
    struct cluster_config cfg;
    struct cluster_hooks hooks;
    void *net_filter_arg;
    struct cluster_keys *own_keys;
    const struct cluster_keys *keys;
    uint64_t now_ns;
    uint32_t nnodes;
    struct cluster_node *nodes;
    struct netsim net;
    struct pbft_out out;
    struct pbft_completion done[PBFT_LANES_MAX];
    uint8_t *scratch; /* copies of completed values */
    size_t scratch_cap;
    uint32_t *dests;  /* nnodes */
    struct cluster_stats stats;
    /* The earliest deadline of all nodes, kept current by node_set_deadline: a
     * scan of every node happens only when the earliest one moves later. */
    uint64_t min_deadline_ns;
    uint32_t min_node;
    FILE *trace;
    uint64_t trace_seq;
    struct wire_limits lim; /* the replicas' (persist_disk_outbox decodes with them) */
};

static void rescan_deadlines(struct cluster *cl);

/* ---- Keys ------------------------------------------------------------------------ */

static void key_seed_bytes(uint8_t out[32], uint64_t key_seed, uint32_t role, uint32_t id)
{
    struct prng p;
    prng_seed(&p, key_seed ^ prng_mix64(((uint64_t)role << 32) | id));
    for (int i = 0; i < 4; i++) {
        uint64_t x = prng_next(&p);
        memcpy(out + 8 * i, &x, 8);
    }
}

int cluster_keys_create(uint16_t n, uint16_t clients, uint64_t key_seed, struct cluster_keys **out)
{
    struct cluster_keys *k = calloc(1, sizeof(*k));
    struct auth_keypair *rkp = calloc(n, sizeof(*rkp));
    struct auth_keypair *ckp = calloc(clients, sizeof(*ckp));
    struct auth_public *rpub = calloc(n, sizeof(*rpub));
    struct auth_public *cpub = calloc(clients, sizeof(*cpub));
    bool *known = calloc(clients, sizeof(*known));
    int rc = BFTKV_E_NOMEM;
    if (!k || !rkp || !ckp || !rpub || !cpub || !known)
        goto out;
    k->n = n;
    k->clients = clients;
    k->key_seed = key_seed;
    k->replica_auth = calloc(n, sizeof(*k->replica_auth));
    k->client_auth = calloc(clients, sizeof(*k->client_auth));
    /* Signed messages per seed: a few per checkpoint and view change -- far fewer
     * than the slots, so a message is rarely verified twice. */
    k->sig_memo = auth_sig_memo_create(4096);
    if (!k->replica_auth || !k->client_auth || !k->sig_memo)
        goto out;
    for (uint16_t i = 0; i < n; i++) {
        uint8_t s[32];
        key_seed_bytes(s, key_seed, 0, i);
        auth_keypair_from_seed(&rkp[i], s);
        auth_public_of(&rpub[i], &rkp[i]);
    }
    for (uint16_t i = 0; i < clients; i++) {
        uint8_t s[32];
        key_seed_bytes(s, key_seed, 1, i);
        auth_keypair_from_seed(&ckp[i], s);
        auth_public_of(&cpub[i], &ckp[i]);
        known[i] = true;
    }
    for (uint16_t i = 0; i < n; i++) {
        rc = auth_init_replica(&k->replica_auth[i], i, n, &rkp[i], rpub, cpub, known, clients);
        if (rc != 0)
            goto out;
        k->replica_auth[i].sig_memo = k->sig_memo;
    }
    for (uint16_t i = 0; i < clients; i++) {
        rc = auth_init_client(&k->client_auth[i], i, n, &ckp[i], rpub);
        if (rc != 0)
            goto out;
    }
    rc = 0;
out:
    free(rkp);
    free(ckp);
    free(rpub);
    free(cpub);
    free(known);
    if (rc != 0 && k) {
        /* auth_destroy on a zeroed context frees nothing: safe for the ones not
         * initialised yet. */
        cluster_keys_destroy(k);
        k = NULL;
    }
    *out = k;
    return rc;
}

void cluster_keys_destroy(struct cluster_keys *k)
{
    if (!k)
        return;
    if (k->replica_auth)
        for (uint16_t i = 0; i < k->n; i++)
            auth_destroy(&k->replica_auth[i]);
    if (k->client_auth)
        for (uint16_t i = 0; i < k->clients; i++)
            auth_destroy(&k->client_auth[i]);
    free(k->replica_auth);
    free(k->client_auth);
    auth_sig_memo_destroy(k->sig_memo);
    free(k);
}

/* ---- Hooks from the engine -------------------------------------------------------- */

static void on_exec(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    struct cluster *cl = arg;
    if (cl->hooks.on_exec)
        cl->hooks.on_exec(cl->hooks.arg, replica, seq, digest);
}

static void on_checkpoint(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    struct cluster *cl = arg;
    if (cl->hooks.on_checkpoint)
        cl->hooks.on_checkpoint(cl->hooks.arg, replica, seq, digest);
}

/* ---- Creation ---------------------------------------------------------------------- */

/* Create replica i with a fresh, empty store (restarted: it lost its memory). */
static int replica_open(struct cluster *cl, uint16_t i, bool restarted)
{
    const struct cluster_config *cfg = &cl->cfg;
    struct cluster_node *nd = &cl->nodes[i];
    nd->id = i;
    nd->auth = &cl->keys->replica_auth[i];
    struct store_config scfg = {.shards = cfg->store_shards ? cfg->store_shards : CLUSTER_STORE_SHARDS};
    int rc = store_create(&scfg, &nd->store);
    if (rc != 0)
        return rc;
    struct pbft_replica_config rc_cfg;
    pbft_replica_config_defaults(&rc_cfg);
    rc_cfg.group = cfg->group;
    rc_cfg.id = i;
    rc_cfg.n = cfg->n;
    rc_cfg.f = cfg->f;
    rc_cfg.clients = cfg->clients;
    if (cfg->lanes)
        rc_cfg.lanes = cfg->lanes;
    if (cfg->checkpoint_interval)
        rc_cfg.checkpoint_interval = cfg->checkpoint_interval;
    if (cfg->log_window)
        rc_cfg.log_window = cfg->log_window;
    if (cfg->window)
        rc_cfg.window = cfg->window;
    if (cfg->batch_max_requests)
        rc_cfg.batch_max_requests = cfg->batch_max_requests;
    if (cfg->batch_max_bytes)
        rc_cfg.batch_max_bytes = cfg->batch_max_bytes;
    rc_cfg.bugs = cfg->bugs;
    rc_cfg.restarted = restarted;
    rc_cfg.durable = cfg->durable;
    if (cfg->durable && nd->disk == NULL && (nd->disk = persist_disk_new()) == NULL)
        return BFTKV_E_NOMEM;
    if (nd->disk != NULL)
        persist_disk_accept_torn(nd->disk, (cfg->bugs & PBFT_BUG_RECOVER_TORN) != 0);
    rc = pbft_replica_create(&rc_cfg, nd->auth, nd->store, &nd->replica);
    if (rc != 0)
        return rc;
    pbft_replica_set_hooks(nd->replica, on_exec, on_checkpoint, cl);
    nd->deadline_ns = pbft_replica_next_deadline(nd->replica);
    return 0;
}

int cluster_create(const struct cluster_config *cfg, const struct cluster_hooks *hooks, struct cluster **out)
{
    *out = NULL;
    if (cfg->n == 0 || cfg->n > BFTKV_REPLICAS_MAX || cfg->n < 3u * cfg->f + 1u || cfg->clients == 0 ||
        cfg->clients > BFTKV_CLIENTS_MAX)
        return BFTKV_E_INVAL;
    struct cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return BFTKV_E_NOMEM;
    cl->cfg = *cfg;
    if (cl->cfg.group == 0)
        cl->cfg.group = CLUSTER_GROUP;
    cl->lim = (struct wire_limits){.group = cl->cfg.group, .n = cfg->n, .clients_max = cfg->clients};
    if (hooks)
        cl->hooks = *hooks;
    cl->net_filter_arg = cl->hooks.arg;
    int rc;
    if (cfg->keys) {
        if (cfg->keys->n != cfg->n || cfg->keys->clients < cfg->clients) {
            free(cl);
            return BFTKV_E_INVAL;
        }
        cl->keys = cfg->keys;
    } else {
        rc = cluster_keys_create(cfg->n, cfg->clients, cfg->key_seed, &cl->own_keys);
        if (rc != 0) {
            free(cl);
            return rc;
        }
        cl->keys = cl->own_keys;
    }
    cl->cfg.keys = cl->keys;
    cl->nnodes = (uint32_t)cfg->n + cfg->clients;
    cl->nodes = calloc(cl->nnodes, sizeof(*cl->nodes));
    cl->dests = calloc(cl->nnodes, sizeof(*cl->dests));
    rc = BFTKV_E_NOMEM;
    if (!cl->nodes || !cl->dests)
        goto fail;
    rc = netsim_init(&cl->net, cl->nnodes, &cfg->net, cfg->net_seed);
    if (rc != 0)
        goto fail;
    rc = pbft_out_init(&cl->out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS);
    if (rc != 0)
        goto fail;

    for (uint16_t i = 0; i < cfg->n; i++) {
        rc = replica_open(cl, i, false);
        if (rc != 0)
            goto fail;
    }
    for (uint16_t i = 0; i < cfg->clients; i++) {
        struct cluster_node *nd = &cl->nodes[cfg->n + i];
        nd->is_client = true;
        nd->id = i;
        nd->auth = &cl->keys->client_auth[i];
        struct pbft_client_config cc;
        pbft_client_config_defaults(&cc);
        cc.group = cl->cfg.group;
        cc.id = i;
        cc.n = cfg->n;
        cc.f = cfg->f;
        if (cfg->lanes)
            cc.lanes = cfg->lanes;
        if (cfg->client_retransmit_ns)
            cc.retransmit_timeout_ns = cfg->client_retransmit_ns;
        cc.timestamp_base = 0;
        cc.readonly_fast_path = cfg->client_readonly ? cfg->client_readonly[i] : false;
        cc.bugs = cfg->bugs;
        rc = pbft_client_create(&cc, nd->auth, &nd->client);
        if (rc != 0)
            goto fail;
        nd->deadline_ns = pbft_client_next_deadline(nd->client);
    }
    rescan_deadlines(cl);
    cl->cfg.client_readonly = NULL; /* not kept: the caller's array may go away */
    *out = cl;
    return 0;
fail:
    cluster_destroy(cl);
    return rc;
}

void cluster_destroy(struct cluster *cl)
{
    if (!cl)
        return;
    if (cl->nodes) {
        for (uint32_t i = 0; i < cl->nnodes; i++) {
            struct cluster_node *nd = &cl->nodes[i];
            if (nd->replica)
                pbft_replica_destroy(nd->replica);
            if (nd->client)
                pbft_client_destroy(nd->client);
            if (nd->store)
                store_destroy(nd->store);
            persist_disk_free(nd->disk);
        }
    }
    if (cl->out.buf)
        pbft_out_free(&cl->out);
    if (cl->net.heap)
        netsim_destroy(&cl->net);
    cluster_keys_destroy(cl->own_keys);
    free(cl->nodes);
    free(cl->dests);
    free(cl->scratch);
    free(cl);
}

/* ---- Crash and restart ---------------------------------------------------------------- */

static void node_set_deadline(struct cluster *cl, uint32_t node, uint64_t t);

void cluster_replica_crash(struct cluster *cl, uint16_t id)
{
    struct cluster_node *nd = &cl->nodes[id];
    BFTKV_ASSERT(id < cl->cfg.n && !nd->down);
    pbft_replica_destroy(nd->replica);
    store_destroy(nd->store);
    nd->replica = NULL;
    nd->store = NULL;
    nd->down = true;
    if (nd->disk != NULL)
        persist_disk_tear(nd->disk); /* it crashed while writing */
    node_set_deadline(cl, id, UINT64_MAX);
}

static void dispatch(struct cluster *cl, uint32_t from);

struct recover_feed {
    struct pbft_replica *replica;
    struct pbft_out *scratch;
};

static int recover_one(void *arg, uint16_t kind, const uint8_t *rec, size_t len)
{
    struct recover_feed *f = arg;
    return pbft_replica_recover_record(f->replica, kind, rec, len, f->scratch);
}

/* A durable replica back from a crash: its records replayed, then its first
 * outbox persisted and sent like any other. The exec hooks are off during the
 * replay (it executes again what it executed before). */
static int replica_recover(struct cluster *cl, struct cluster_node *nd)
{
    pbft_replica_set_hooks(nd->replica, NULL, NULL, NULL);
    struct recover_feed feed = {.replica = nd->replica, .scratch = &cl->out};
    /* Every other recovery starts from the newest snapshot; the others replay
     * the records from the first one (records at or below the snapshot change
     * nothing then), so both paths run in every kind of seed. */
    bool snap = persist_disk_snapshot_seq(nd->disk) != 0 && (cl->stats.recoveries + nd->id) % 2u == 0;
    int rc = snap ? persist_disk_snapshot_restore(nd->disk, nd->replica) : 0;
    if (rc == 0 && snap)
        cl->stats.recoveries_from_snapshot++;
    if (rc == 0)
        rc = persist_disk_replay(nd->disk, recover_one, &feed);
    pbft_out_reset(&cl->out);
    pbft_replica_set_hooks(nd->replica, on_exec, on_checkpoint, cl);
    if (rc != 0) {
        const char *why = "a durable replica's recovery refused its own records";
        if (cl->hooks.on_invariant == NULL)
            bftkv_assert_fail(why, __FILE__, __LINE__, __func__);
        cl->hooks.on_invariant(cl->hooks.arg, nd->id, cl->stats.steps, why, 0);
        return 0; /* reported; the replica stays as the replay left it */
    }
    pbft_replica_recover_done(nd->replica, cl->now_ns, &cl->out);
    const struct pbft_recovery_stats *rs = pbft_replica_recovery_stats(nd->replica);
    cl->stats.recoveries++;
    cl->stats.recovered_batches += rs->executed;
    cl->stats.recovery_gaps += rs->gap_seq != 0;
    if (cl->hooks.on_recover != NULL)
        cl->hooks.on_recover(cl->hooks.arg, nd->id, pbft_replica_stats(nd->replica)->last_executed);
    return 0;
}

int cluster_replica_restart(struct cluster *cl, uint16_t id)
{
    struct cluster_node *nd = &cl->nodes[id];
    BFTKV_ASSERT(id < cl->cfg.n && nd->down);
    bool recover = cl->cfg.durable && nd->disk != NULL;
    int rc = replica_open(cl, id, !recover);
    if (rc == 0 && recover)
        rc = replica_recover(cl, nd);
    if (rc != 0)
        return rc;
    nd->down = false;
    while (recover) {
        bool more = cl->out.more;
        dispatch(cl, id);
        if (!more)
            break;
        pbft_replica_resume(nd->replica, cl->now_ns, &cl->out);
    }
    nd->last_tick_ns = 0;
    nd->same_tick = 0;
    node_set_deadline(cl, id, pbft_replica_next_deadline(nd->replica));
    return 0;
}

void cluster_replica_lose_disk(struct cluster *cl, uint16_t id)
{
    struct cluster_node *nd = &cl->nodes[id];
    BFTKV_ASSERT(nd->down);
    persist_disk_free(nd->disk);
    nd->disk = NULL; /* replica_open makes a new, empty one */
}

bool cluster_replica_down(const struct cluster *cl, uint16_t id)
{
    return cl->nodes[id].down;
}

void cluster_replica_pause(struct cluster *cl, uint16_t id)
{
    struct cluster_node *nd = &cl->nodes[id];
    BFTKV_ASSERT(id < cl->cfg.n && !nd->down && !nd->paused);
    nd->paused = true;
    node_set_deadline(cl, id, UINT64_MAX);
}

void cluster_replica_resume(struct cluster *cl, uint16_t id)
{
    struct cluster_node *nd = &cl->nodes[id];
    BFTKV_ASSERT(id < cl->cfg.n && nd->paused);
    nd->paused = false;
    nd->last_tick_ns = 0;
    nd->same_tick = 0;
    node_set_deadline(cl, id, pbft_replica_next_deadline(nd->replica));
}

bool cluster_replica_paused(const struct cluster *cl, uint16_t id)
{
    return cl->nodes[id].paused;
}

/* ---- Sending ------------------------------------------------------------------------ */

static void net_send(struct cluster *cl, uint32_t from, uint32_t to, struct netsim_msg *m)
{
    uint64_t delay = 0;
    if (cl->hooks.net_filter) {
        enum cluster_net_verdict v = cl->hooks.net_filter(cl->net_filter_arg, from, to, m->data, m->len, &delay);
        if (v == CLUSTER_NET_DROP)
            return;
        if (v == CLUSTER_NET_DUPLICATE)
            netsim_send(&cl->net, cl->now_ns, from, to, m, delay);
    }
    netsim_send(&cl->net, cl->now_ns, from, to, m, delay);
}

void cluster_send(struct cluster *cl, uint32_t from, uint32_t to, const uint8_t *msg, uint32_t len)
{
    BFTKV_ASSERT(from < cl->nnodes && to < cl->nnodes);
    struct netsim_msg *m = netsim_msg_new(&cl->net, msg, len);
    net_send(cl, from, to, m);
    netsim_msg_put(&cl->net, m);
}

/* A durable replica's records go to its disk, and its messages are checked
 * against them (persist_check.h): a violation is reported like a broken invariant. */
static void disk_take(struct cluster *cl, struct cluster_node *src)
{
    uint64_t view, seq;
    const char *why = persist_disk_outbox(src->disk, src->id, cl->cfg.n, &cl->lim, &cl->out,
                                          pbft_replica_stats(src->replica)->last_executed, cl->stats.records, &view,
                                          &seq);
    if (why == NULL) {
        /* A CHECKPOINT record: the runtime writes that checkpoint's snapshot
         * (here at once, between steps, as pbft_replica_state_chunk asks). */
        for (uint32_t i = 0; i < cl->out.nmsgs; i++) {
            const struct pbft_out_msg *om = &cl->out.msgs[i];
            if (om->dest_kind == PBFT_DEST_PERSIST && om->dest_id == PBFT_PERSIST_CHECKPOINT
                && persist_disk_snapshot(src->disk, src->replica, cl->cfg.n, pbft_out_bytes(&cl->out, om), om->len)
                       == 0)
                cl->stats.snapshots++;
        }
        return;
    }
    if (cl->hooks.on_invariant == NULL) {
        fprintf(stderr, "replica %u, view %llu, seq %llu: %s\n", src->id, (unsigned long long)view,
                (unsigned long long)seq, why);
        bftkv_assert_fail(why, __FILE__, __LINE__, __func__);
    }
    cl->hooks.on_invariant(cl->hooks.arg, src->id, cl->stats.steps, why, seq);
}

/* Expand the outbox of node `from` by destination and send it in order (a
 * durable replica's records first go to its disk: persist, then send). */
static void dispatch(struct cluster *cl, uint32_t from)
{
    struct pbft_out *o = &cl->out;
    struct cluster_node *src = &cl->nodes[from];
    if (src->disk != NULL && src->replica != NULL)
        disk_take(cl, src);
    for (uint32_t i = 0; i < o->nmsgs; i++) {
        const struct pbft_out_msg *om = &o->msgs[i];
        if (om->dest_kind == PBFT_DEST_PERSIST)
            continue; /* disk_take has it */
        BFTKV_ASSERT((size_t)om->off + om->len <= o->used);
        const uint8_t *bytes = o->buf + om->off;
        uint32_t nd = 0;
        switch (om->dest_kind) {
        case PBFT_DEST_REPLICA:
            BFTKV_ASSERT(om->dest_id < cl->cfg.n);
            cl->dests[nd++] = om->dest_id;
            break;
        case PBFT_DEST_ALL_REPLICAS:
            for (uint32_t r = 0; r < cl->cfg.n; r++)
                if (src->is_client || r != from)
                    cl->dests[nd++] = r;
            break;
        case PBFT_DEST_CLIENT:
            BFTKV_ASSERT(om->dest_id < cl->cfg.clients);
            cl->dests[nd++] = (uint32_t)cl->cfg.n + om->dest_id;
            break;
        default:
            BFTKV_ASSERT(!"unknown outbox destination kind");
        }
        if (src->send_filter) {
            for (uint32_t d = 0; d < nd; d++)
                src->send_filter(src->send_filter_arg, cl, from, cl->dests[d], bytes, om->len);
            continue;
        }
        struct netsim_msg *m = netsim_msg_new(&cl->net, bytes, om->len);
        for (uint32_t d = 0; d < nd; d++)
            net_send(cl, from, cl->dests[d], m);
        netsim_msg_put(&cl->net, m);
    }
    pbft_out_reset(o);
    o->more = false;
}

/* ---- Stepping ------------------------------------------------------------------------- */

static void rescan_deadlines(struct cluster *cl)
{
    uint64_t best = UINT64_MAX;
    uint32_t who = UINT32_MAX;
    for (uint32_t i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i].deadline_ns < best) {
            best = cl->nodes[i].deadline_ns;
            who = i;
        }
    }
    cl->min_deadline_ns = best;
    cl->min_node = who;
}

static void node_set_deadline(struct cluster *cl, uint32_t node, uint64_t t)
{
    cl->nodes[node].deadline_ns = t;
    if (t < cl->min_deadline_ns || (t == cl->min_deadline_ns && node < cl->min_node)) {
        cl->min_deadline_ns = t;
        cl->min_node = node;
    } else if (node == cl->min_node) {
        rescan_deadlines(cl); /* the earliest moved later: someone else may be first now */
    }
}

static void node_update_deadline(struct cluster *cl, uint32_t node)
{
    const struct cluster_node *nd = &cl->nodes[node];
    node_set_deadline(cl, node,
                      nd->is_client ? pbft_client_next_deadline(nd->client) : pbft_replica_next_deadline(nd->replica));
}

/* Every replica's invariants after each of its steps and resumes, in every
 * build type (docs/design.md §5.9): reported to the hook, or fatal without one. */
static void replica_check(struct cluster *cl, const struct cluster_node *nd)
{
    if (cl->hooks.invariants_every > 1 && cl->stats.steps % cl->hooks.invariants_every != 0)
        return;
    uint64_t seq = 0;
    const char *what = replica_invariants_check(nd->replica, &seq);
    if (what == NULL)
        return;
    if (cl->hooks.on_invariant == NULL) {
        fprintf(stderr, "replica %u, step %llu, seq %llu: invariant broken\n", nd->id,
                (unsigned long long)cl->stats.steps, (unsigned long long)seq);
        bftkv_assert_fail(what, __FILE__, __LINE__, __func__);
    }
    cl->hooks.on_invariant(cl->hooks.arg, nd->id, cl->stats.steps, what, seq);
}

static void replica_event(struct cluster *cl, uint32_t node, const struct pbft_event *ev)
{
    struct cluster_node *nd = &cl->nodes[node];
    pbft_replica_step(nd->replica, ev, &cl->out);
    replica_check(cl, nd);
    bool more = cl->out.more;
    dispatch(cl, node);
    while (more) {
        cl->out.more = false;
        pbft_replica_resume(nd->replica, cl->now_ns, &cl->out);
        replica_check(cl, nd);
        more = cl->out.more;
        dispatch(cl, node);
    }
    node_update_deadline(cl, node);
}

/* Copy the completions' values (valid only until the next client call) so the
 * completion hook may submit the next operation. */
static void report_completions(struct cluster *cl, uint16_t client, uint32_t k)
{
    size_t need = 0;
    for (uint32_t i = 0; i < k; i++)
        need += cl->done[i].vlen;
    if (need > cl->scratch_cap) {
        free(cl->scratch);
        cl->scratch_cap = need * 2;
        cl->scratch = malloc(cl->scratch_cap);
        BFTKV_ASSERT(cl->scratch != NULL);
    }
    size_t off = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (cl->done[i].vlen > 0 && cl->done[i].value) {
            memcpy(cl->scratch + off, cl->done[i].value, cl->done[i].vlen);
            cl->done[i].value = cl->scratch + off;
            off += cl->done[i].vlen;
        }
    }
    cl->stats.completions += k;
    if (cl->hooks.on_complete)
        for (uint32_t i = 0; i < k; i++)
            cl->hooks.on_complete(cl->hooks.arg, client, &cl->done[i]);
}

static void client_event(struct cluster *cl, uint32_t node, const struct pbft_event *ev)
{
    struct cluster_node *nd = &cl->nodes[node];
    uint32_t k = pbft_client_step(nd->client, ev, &cl->out, cl->done, PBFT_LANES_MAX);
    dispatch(cl, node);
    /* More completions than done[] holds stay in the client: fetch them with a
     * tick at the same instant. */
    struct pbft_event tick = {.kind = PBFT_EV_TICK, .now_ns = cl->now_ns};
    while (k > 0) {
        /* report_completions may call back into this client (submit), which
         * invalidates nothing we still need: the values are copied. */
        report_completions(cl, nd->id, k);
        if (k < PBFT_LANES_MAX)
            break;
        k = pbft_client_step(nd->client, &tick, &cl->out, cl->done, PBFT_LANES_MAX);
        dispatch(cl, node);
    }
    node_update_deadline(cl, node);
}

static uint32_t earliest_deadline(const struct cluster *cl, uint64_t *t)
{
    *t = cl->min_deadline_ns;
    return cl->min_node;
}

uint64_t cluster_next_event(const struct cluster *cl)
{
    uint64_t td;
    earliest_deadline(cl, &td);
    uint64_t tm = netsim_next_time(&cl->net);
    return td < tm ? td : tm;
}

static void tick_node(struct cluster *cl, uint32_t who)
{
    struct cluster_node *nd = &cl->nodes[who];
    struct pbft_event ev = {.kind = PBFT_EV_TICK, .now_ns = cl->now_ns};
    cl->stats.ticks++;
    if (nd->is_client)
        client_event(cl, who, &ev);
    else
        replica_event(cl, who, &ev);
    /* A node that keeps asking for a tick at or before now would spin the
     * simulation forever; push it forward and count it (the report shows it). */
    if (nd->deadline_ns <= cl->now_ns) {
        if (nd->last_tick_ns == cl->now_ns) {
            if (++nd->same_tick >= CLUSTER_STUCK_TICKS) {
                cl->stats.stuck_deadlines++;
                node_set_deadline(cl, who, cl->now_ns + CLUSTER_STUCK_PUSH_NS);
                nd->same_tick = 0;
            }
        } else {
            nd->same_tick = 0;
        }
    }
    nd->last_tick_ns = cl->now_ns;
}

static const char *type_name(uint8_t t)
{
    static const char *const names[] = {"?", "REQUEST", "PRE-PREPARE", "PREPARE", "COMMIT", "REPLY", "CHECKPOINT",
                                        "VIEW-CHANGE", "NEW-VIEW"};
    return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

static void trace_message(struct cluster *cl, const struct netsim_entry *e)
{
    if (e->msg->len < WIRE_HEADER_SIZE)
        return;
    struct wire_header h;
    wire_header_read(e->msg->data, &h);
    if (cl->trace_seq != 0 && h.seq != cl->trace_seq)
        return;
    char from[16], to[16];
    snprintf(from, sizeof from, "%s%u", e->from < cl->cfg.n ? "r" : "c",
             e->from < cl->cfg.n ? e->from : e->from - cl->cfg.n);
    snprintf(to, sizeof to, "%s%u", e->to < cl->cfg.n ? "r" : "c", e->to < cl->cfg.n ? e->to : e->to - cl->cfg.n);
    char extra[64] = "";
    if (h.type == WIRE_REPLY && e->msg->len >= WIRE_HEADER_SIZE + WIRE_REPLY_FIXED) {
        const uint8_t *b = e->msg->data + WIRE_HEADER_SIZE;
        snprintf(extra, sizeof extra, " lane=%u status=%d%s%s result=%02x%02x%02x%02x", b[2] | (b[3] << 8),
                 (int16_t)(b[4] | (b[5] << 8)), (b[6] & WIRE_REPLY_FULL) ? " full" : "",
                 (b[6] & WIRE_REPLY_READONLY) ? " ro" : "", b[12], b[13], b[14], b[15]);
    } else if (h.type == WIRE_REQUEST && e->msg->len >= WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED) {
        const uint8_t *b = e->msg->data + WIRE_HEADER_SIZE;
        unsigned klen = b[4] | (b[5] << 8);
        snprintf(extra, sizeof extra, " lane=%u op=%u%s key=%.*s", b[0] | (b[1] << 8), b[2],
                 (b[3] & WIRE_REQ_READONLY) ? " ro" : "", (int)(klen < 16 ? klen : 16),
                 (const char *)b + WIRE_REQUEST_FIXED);
    }
    fprintf(cl->trace, "%12.6fms %-4s -> %-4s %-11s v=%llu seq=%llu sender=%u len=%u%s\n", (double)cl->now_ns / 1e6,
            from, to, type_name(h.type), (unsigned long long)h.view, (unsigned long long)h.seq, h.sender,
            e->msg->len, extra);
}

void cluster_set_trace(struct cluster *cl, FILE *f, uint64_t seq_filter)
{
    cl->trace = f;
    cl->trace_seq = seq_filter;
}

bool cluster_step(struct cluster *cl)
{
    uint64_t td;
    uint32_t who = earliest_deadline(cl, &td);
    uint64_t tm = netsim_next_time(&cl->net);
    if (td == UINT64_MAX && tm == UINT64_MAX)
        return false;
    cl->stats.steps++;
    if (td <= tm) {
        if (td > cl->now_ns)
            cl->now_ns = td;
        tick_node(cl, who);
        return true;
    }
    if (tm > cl->now_ns)
        cl->now_ns = tm;
    struct netsim_entry e;
    if (!netsim_pop(&cl->net, &e))
        return true; /* postponed by a hold */
    cl->stats.deliveries++;
    if (cl->trace)
        trace_message(cl, &e);
    if (cl->nodes[e.to].down || cl->nodes[e.to].paused) { /* a crashed or stopped replica hears nothing */
        netsim_msg_put(&cl->net, e.msg);
        return true;
    }
    struct pbft_event ev = {.kind = PBFT_EV_RECEIVE, .now_ns = cl->now_ns, .msg = e.msg->data, .len = e.msg->len};
    if (cl->nodes[e.to].is_client)
        client_event(cl, e.to, &ev);
    else
        replica_event(cl, e.to, &ev);
    netsim_msg_put(&cl->net, e.msg);
    return true;
}

void cluster_run_until(struct cluster *cl, uint64_t t_ns)
{
    while (cluster_next_event(cl) <= t_ns)
        cluster_step(cl);
    cluster_advance_to(cl, t_ns);
}

uint64_t cluster_now(const struct cluster *cl)
{
    return cl->now_ns;
}

void cluster_advance_to(struct cluster *cl, uint64_t t_ns)
{
    if (t_ns > cl->now_ns)
        cl->now_ns = t_ns;
}

int cluster_client_submit(struct cluster *cl, uint16_t client, uint8_t op, const void *key, size_t klen,
                          const void *value, size_t vlen)
{
    BFTKV_ASSERT(client < cl->cfg.clients);
    uint32_t node = (uint32_t)cl->cfg.n + client;
    struct cluster_node *nd = &cl->nodes[node];
    BFTKV_ASSERT(cl->out.nmsgs == 0);
    int lane = pbft_client_submit(nd->client, cl->now_ns, op, key, klen, value, vlen, &cl->out);
    if (lane >= 0)
        cl->stats.submits++;
    dispatch(cl, node);
    node_update_deadline(cl, node);
    return lane;
}

int cluster_client_free_lane(const struct cluster *cl, uint16_t client)
{
    BFTKV_ASSERT(client < cl->cfg.clients);
    return pbft_client_free_lane(cl->nodes[cl->cfg.n + client].client);
}

void cluster_set_send_filter(struct cluster *cl, uint32_t node, cluster_send_filter_fn fn, void *arg)
{
    BFTKV_ASSERT(node < cl->nnodes);
    cl->nodes[node].send_filter = fn;
    cl->nodes[node].send_filter_arg = arg;
}

void cluster_set_net_filter(struct cluster *cl, cluster_net_filter_fn fn, void *arg)
{
    cl->hooks.net_filter = fn;
    cl->net_filter_arg = arg;
}

/* ---- Accessors -------------------------------------------------------------------------- */

uint32_t cluster_nodes(const struct cluster *cl)
{
    return cl->nnodes;
}

uint32_t cluster_client_node(const struct cluster *cl, uint16_t client)
{
    return (uint32_t)cl->cfg.n + client;
}

const struct cluster_config *cluster_config(const struct cluster *cl)
{
    return &cl->cfg;
}

struct pbft_replica *cluster_replica(struct cluster *cl, uint16_t id)
{
    BFTKV_ASSERT(id < cl->cfg.n);
    return cl->nodes[id].replica;
}

struct pbft_client *cluster_client(struct cluster *cl, uint16_t id)
{
    BFTKV_ASSERT(id < cl->cfg.clients);
    return cl->nodes[cl->cfg.n + id].client;
}

struct store *cluster_store(struct cluster *cl, uint16_t id)
{
    BFTKV_ASSERT(id < cl->cfg.n);
    return cl->nodes[id].store;
}

const struct auth_ctx *cluster_replica_auth(const struct cluster *cl, uint16_t id)
{
    BFTKV_ASSERT(id < cl->cfg.n);
    return cl->nodes[id].auth;
}

struct netsim *cluster_net(struct cluster *cl)
{
    return &cl->net;
}

const struct cluster_stats *cluster_stats(const struct cluster *cl)
{
    return &cl->stats;
}

struct wire_limits cluster_wire_limits(const struct cluster *cl)
{
    return (struct wire_limits){.group = cl->cfg.group, .n = cl->cfg.n, .clients_max = cl->cfg.clients};
}
