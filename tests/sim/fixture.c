/* The scripted cluster fixture (see fixture.h): the cluster's network filter
 * implements the drop/duplicate rules and silencing; its hooks record executed
 * batches, checkpoints and completions per node. */
#include "tests/sim/fixture.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/wire.h"

#define FIXTURE_RULES_MAX 64u
#define FIXTURE_DONE_RING 64u
#define FIXTURE_TYPES 16u /* message types counted (wire types are below) */

struct fixture_rule {
    uint32_t type;
    uint32_t from;
    uint32_t to;
    uint32_t remaining;
    uint32_t pass; /* matching messages still let through before the rule acts */
    bool duplicate;
};

struct fixture_replica_log {
    uint64_t last;
    uint8_t (*digest)[32];
    bool *have;
    size_t cap;
    uint64_t checkpoints;
    uint64_t last_checkpoint;
};

struct fixture_client_log {
    struct fixture_result ring[FIXTURE_DONE_RING];
    uint32_t head;
    uint32_t len;
};

struct fixture {
    struct fixture_config cfg;
    struct cluster *cl;
    struct fixture_rule rules[FIXTURE_RULES_MAX];
    uint32_t nrules;
    bool silent[BFTKV_REPLICAS_MAX];
    uint64_t dropped;
    uint64_t duplicated;
    uint64_t sent[FIXTURE_TYPES][BFTKV_REPLICAS_MAX]; /* per type and sending replica */
    struct fixture_replica_log *rlog;
    struct fixture_client_log *clog;
};

void fixture_config_defaults(struct fixture_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->n = 4;
    cfg->f = 1;
    cfg->clients = 1;
    cfg->lanes = 1;
    cfg->latency_ns = 100000;           /* 100 us */
    cfg->client_retransmit_ns = 20000000; /* 20 ms */
}

/* ---- Hooks ------------------------------------------------------------------------ */

static void on_exec(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    struct fixture *fx = arg;
    BFTKV_ASSERT(replica < fx->cfg.n);
    struct fixture_replica_log *lg = &fx->rlog[replica];
    if (seq >= lg->cap) {
        size_t cap = lg->cap ? lg->cap : 256;
        while (cap <= seq)
            cap *= 2;
        lg->digest = realloc(lg->digest, cap * 32);
        lg->have = realloc(lg->have, cap * sizeof(bool));
        BFTKV_ASSERT(lg->digest && lg->have);
        memset(lg->have + lg->cap, 0, (cap - lg->cap) * sizeof(bool));
        lg->cap = cap;
    }
    memcpy(lg->digest[seq], digest, 32);
    lg->have[seq] = true;
    if (seq > lg->last)
        lg->last = seq;
}

static void on_checkpoint(void *arg, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    struct fixture *fx = arg;
    (void)digest;
    BFTKV_ASSERT(replica < fx->cfg.n);
    fx->rlog[replica].checkpoints++;
    if (seq > fx->rlog[replica].last_checkpoint)
        fx->rlog[replica].last_checkpoint = seq;
}

static void on_complete(void *arg, uint16_t client, const struct pbft_completion *c)
{
    struct fixture *fx = arg;
    struct fixture_client_log *lg = &fx->clog[client];
    BFTKV_ASSERT(lg->len < FIXTURE_DONE_RING);
    struct fixture_result *r = &lg->ring[(lg->head + lg->len) % FIXTURE_DONE_RING];
    lg->len++;
    memset(r, 0, sizeof(*r));
    r->lane = c->lane;
    r->op = c->op;
    r->status = c->status;
    r->timestamp = c->timestamp;
    r->vlen = c->vlen;
    if (c->value && c->vlen > 0)
        memcpy(r->value, c->value, c->vlen < FIXTURE_VALUE_MAX ? c->vlen : FIXTURE_VALUE_MAX);
}

static bool rule_matches(const struct fixture_rule *r, uint32_t type, uint32_t from, uint32_t to)
{
    return r->remaining > 0 && (r->type == FIXTURE_ANY || r->type == type) &&
           (r->from == FIXTURE_ANY || r->from == from) && (r->to == FIXTURE_ANY || r->to == to);
}

static enum cluster_net_verdict net_filter(void *arg, uint32_t from, uint32_t to, const uint8_t *msg,
                                           uint32_t len, uint64_t *delay_ns)
{
    struct fixture *fx = arg;
    (void)delay_ns;
    if (from < fx->cfg.n && fx->silent[from]) {
        fx->dropped++;
        return CLUSTER_NET_DROP;
    }
    uint32_t type = len > 3 ? msg[3] : 0;
    if (type < FIXTURE_TYPES && from < fx->cfg.n)
        fx->sent[type][from]++;
    for (uint32_t i = 0; i < fx->nrules; i++) {
        struct fixture_rule *r = &fx->rules[i];
        if (!rule_matches(r, type, from, to))
            continue;
        if (r->pass > 0) {
            r->pass--;
            return CLUSTER_NET_PASS;
        }
        if (r->remaining != FIXTURE_FOREVER)
            r->remaining--;
        if (r->duplicate) {
            fx->duplicated++;
            return CLUSTER_NET_DUPLICATE;
        }
        fx->dropped++;
        return CLUSTER_NET_DROP;
    }
    return CLUSTER_NET_PASS;
}

/* ---- Life cycle ---------------------------------------------------------------------- */

int fixture_create(const struct fixture_config *cfg, struct fixture **out)
{
    *out = NULL;
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return BFTKV_E_NOMEM;
    fx->cfg = *cfg;
    fx->rlog = calloc(cfg->n, sizeof(*fx->rlog));
    fx->clog = calloc(cfg->clients, sizeof(*fx->clog));
    bool *ro = calloc(cfg->clients, sizeof(bool));
    if (!fx->rlog || !fx->clog || !ro) {
        free(ro);
        fixture_destroy(fx);
        return BFTKV_E_NOMEM;
    }
    for (uint16_t i = 0; i < cfg->clients; i++)
        ro[i] = cfg->readonly;
    struct cluster_config cc = {
        .n = cfg->n,
        .f = cfg->f,
        .clients = cfg->clients,
        .lanes = cfg->lanes,
        .checkpoint_interval = cfg->checkpoint_interval,
        .log_window = cfg->log_window,
        .window = cfg->window,
        .batch_max_requests = cfg->batch_max_requests,
        .client_retransmit_ns = cfg->client_retransmit_ns,
        .bugs = cfg->bugs,
        .client_readonly = ro,
        .key_seed = 1,
        .net = {.latency_ns = cfg->latency_ns, .gst_ns = 0, .stable_jitter_ns = 0},
        .net_seed = 1,
    };
    struct cluster_hooks hooks = {
        .on_exec = on_exec, .on_checkpoint = on_checkpoint, .on_complete = on_complete, .net_filter = net_filter,
        .arg = fx};
    int rc = cluster_create(&cc, &hooks, &fx->cl);
    free(ro);
    if (rc != 0) {
        fixture_destroy(fx);
        return rc;
    }
    *out = fx;
    return 0;
}

void fixture_destroy(struct fixture *fx)
{
    if (!fx)
        return;
    cluster_destroy(fx->cl);
    if (fx->rlog) {
        for (uint16_t i = 0; i < fx->cfg.n; i++) {
            free(fx->rlog[i].digest);
            free(fx->rlog[i].have);
        }
    }
    free(fx->rlog);
    free(fx->clog);
    free(fx);
}

struct cluster *fixture_cluster(struct fixture *fx)
{
    return fx->cl;
}

uint32_t fixture_client_node(const struct fixture *fx, uint16_t client)
{
    return (uint32_t)fx->cfg.n + client;
}

uint64_t fixture_now(const struct fixture *fx)
{
    return cluster_now(fx->cl);
}

/* ---- Stepping ---------------------------------------------------------------------------- */

bool fixture_step(struct fixture *fx)
{
    return cluster_step(fx->cl);
}

void fixture_run_for(struct fixture *fx, uint64_t duration_ns)
{
    cluster_run_until(fx->cl, cluster_now(fx->cl) + duration_ns);
}

bool fixture_step_until_executed(struct fixture *fx, uint16_t replica, uint64_t seq, uint64_t max_steps)
{
    BFTKV_ASSERT(replica < fx->cfg.n);
    for (uint64_t i = 0; i < max_steps; i++) {
        if (fx->rlog[replica].last >= seq)
            return true;
        if (!cluster_step(fx->cl))
            break;
    }
    return fx->rlog[replica].last >= seq;
}

static bool all_executed(const struct fixture *fx, uint64_t seq)
{
    for (uint16_t r = 0; r < fx->cfg.n; r++)
        if (!fx->silent[r] && fx->rlog[r].last < seq)
            return false;
    return true;
}

bool fixture_step_until_committed(struct fixture *fx, uint64_t seq, uint64_t max_steps)
{
    for (uint64_t i = 0; i < max_steps; i++) {
        if (all_executed(fx, seq))
            return true;
        if (!cluster_step(fx->cl))
            break;
    }
    return all_executed(fx, seq);
}

uint64_t fixture_executed(const struct fixture *fx, uint16_t replica)
{
    BFTKV_ASSERT(replica < fx->cfg.n);
    return fx->rlog[replica].last;
}

bool fixture_exec_digest(const struct fixture *fx, uint16_t replica, uint64_t seq, uint8_t out[32])
{
    BFTKV_ASSERT(replica < fx->cfg.n);
    const struct fixture_replica_log *lg = &fx->rlog[replica];
    if (seq >= lg->cap || !lg->have[seq])
        return false;
    memcpy(out, lg->digest[seq], 32);
    return true;
}

uint64_t fixture_checkpoints(const struct fixture *fx, uint16_t replica, uint64_t *last_seq)
{
    BFTKV_ASSERT(replica < fx->cfg.n);
    if (last_seq)
        *last_seq = fx->rlog[replica].last_checkpoint;
    return fx->rlog[replica].checkpoints;
}

/* ---- Rules -------------------------------------------------------------------------------- */

static void add_rule(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to, uint32_t count, bool dup)
{
    BFTKV_ASSERT(fx->nrules < FIXTURE_RULES_MAX);
    fx->rules[fx->nrules++] =
        (struct fixture_rule){.type = type, .from = from, .to = to, .remaining = count, .duplicate = dup};
}

void fixture_drop_after(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to, uint32_t pass)
{
    add_rule(fx, type, from, to, FIXTURE_FOREVER, false);
    fx->rules[fx->nrules - 1u].pass = pass;
}

void fixture_drop(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to, uint32_t count)
{
    add_rule(fx, type, from, to, count, false);
}

void fixture_drop_next(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to)
{
    add_rule(fx, type, from, to, 1, false);
}

void fixture_duplicate_next(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to)
{
    add_rule(fx, type, from, to, 1, true);
}

void fixture_clear_rules(struct fixture *fx)
{
    fx->nrules = 0;
}

uint64_t fixture_dropped(const struct fixture *fx)
{
    return fx->dropped;
}

uint64_t fixture_duplicated(const struct fixture *fx)
{
    return fx->duplicated;
}

void fixture_delay_replica(struct fixture *fx, uint16_t replica, uint64_t duration_ns)
{
    BFTKV_ASSERT(replica < fx->cfg.n);
    netsim_hold(cluster_net(fx->cl), replica, cluster_now(fx->cl) + duration_ns);
}

void fixture_silence(struct fixture *fx, uint16_t replica, bool silent)
{
    BFTKV_ASSERT(replica < fx->cfg.n);
    fx->silent[replica] = silent;
}

/* ---- Clients --------------------------------------------------------------------------------- */

int fixture_submit(struct fixture *fx, uint16_t client, uint8_t op, const char *key, const char *value)
{
    BFTKV_ASSERT(client < fx->cfg.clients && key != NULL);
    return cluster_client_submit(fx->cl, client, op, key, strlen(key), value, value ? strlen(value) : 0);
}

bool fixture_run_until_complete(struct fixture *fx, uint16_t client, uint64_t max_steps,
                                struct fixture_result *res)
{
    BFTKV_ASSERT(client < fx->cfg.clients);
    struct fixture_client_log *lg = &fx->clog[client];
    for (uint64_t i = 0; lg->len == 0 && i < max_steps; i++)
        if (!cluster_step(fx->cl))
            break;
    if (lg->len == 0)
        return false;
    if (res)
        *res = lg->ring[lg->head];
    lg->head = (lg->head + 1) % FIXTURE_DONE_RING;
    lg->len--;
    return true;
}

bool fixture_do(struct fixture *fx, uint16_t client, uint8_t op, const char *key, const char *value,
                uint64_t max_steps, struct fixture_result *res)
{
    if (fixture_submit(fx, client, op, key, value) < 0)
        return false;
    return fixture_run_until_complete(fx, client, max_steps, res);
}

uint64_t fixture_sent(const struct fixture *fx, uint32_t type, uint16_t replica)
{
    BFTKV_ASSERT(type < FIXTURE_TYPES && replica < fx->cfg.n);
    return fx->sent[type][replica];
}
