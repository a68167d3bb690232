/* The in-memory cluster of the replica's unit tests (replica_harness.h): keys
 * from fixed seeds, one keyed store per replica, a FIFO pump over the outboxes
 * with the network's rules on the way, a client inbox that checks every
 * reply's MAC, the clock, the records of what each replica executed, and
 * crash-restart. The network is in replica_harness_net.c, the closed-loop
 * clients in replica_harness_client.c. */
#include "replica_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mix64.h"
#include "engine/invariants.h"
#include "keys_fixture.h"

static void die(const char *what)
{
    fprintf(stderr, "replica_harness: %s\n", what);
    abort();
}

uint64_t rh_rand(struct rh_cluster *c)
{
    return bftkv_splitmix64(&c->rng); /* fixed seed, reproducible runs */
}

/* ---- Records ------------------------------------------------------------------------ */

static void log_add(struct rh_log *l, uint64_t seq, const uint8_t d[32])
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2u * l->cap : 256u;
        l->e = realloc(l->e, l->cap * sizeof *l->e);
        if (l->e == NULL)
            die("realloc");
    }
    if (seq >= l->at_cap) {
        size_t cap = l->at_cap ? l->at_cap : 256u;
        while (cap <= seq)
            cap *= 2u;
        l->at = realloc(l->at, cap * sizeof *l->at);
        if (l->at == NULL)
            die("realloc");
        memset(l->at + l->at_cap, 0, (cap - l->at_cap) * sizeof *l->at);
        l->at_cap = cap;
    }
    l->e[l->n].seq = seq;
    memcpy(l->e[l->n].digest, d, 32);
    l->at[seq] = (uint32_t)++l->n;
}

static const uint8_t *log_at(const struct rh_log *l, uint64_t seq)
{
    if (seq >= l->at_cap || l->at[seq] == 0)
        return NULL;
    return l->e[l->at[seq] - 1u].digest;
}

static void log_free(struct rh_log *l)
{
    free(l->e);
    free(l->at);
    memset(l, 0, sizeof *l);
}

static void on_exec(void *arg, uint16_t replica, uint64_t seq, const uint8_t d[32])
{
    struct rh_cluster *c = arg;
    log_add(&c->execs[replica], seq, d);
}

static void on_checkpoint(void *arg, uint16_t replica, uint64_t seq, const uint8_t d[32])
{
    struct rh_cluster *c = arg;
    log_add(&c->ckpts[replica], seq, d);
}

/* ---- Life cycle --------------------------------------------------------------------- */

static void replica_make(struct rh_cluster *c, uint16_t i, bool restarted)
{
    struct pbft_replica_config cfg = c->cfg[i];
    cfg.restarted = restarted;
    if (pbft_replica_create(&cfg, &c->rauth[i], c->store[i], &c->r[i]) != 0)
        die("pbft_replica_create");
    pbft_replica_set_hooks(c->r[i], on_exec, on_checkpoint, c);
}

void rh_init(struct rh_cluster *c, uint16_t n, uint16_t f, uint16_t clients, uint64_t seed, rh_tune tune,
             void *arg)
{
    memset(c, 0, sizeof *c);
    if (n > RH_REPLICAS_MAX || clients > RH_CLIENTS_MAX)
        die("too many replicas or clients");
    c->n = n;
    c->f = f;
    c->group = 3;
    c->clients = clients;
    c->rng = seed;
    c->keep_replies = true;
    c->client_timeout_ns = 20u * RH_MS;
    c->lim.group = c->group;
    c->lim.n = n;
    c->lim.clients_max = clients;
    c->cl = calloc(clients > 0 ? clients : 1u, sizeof *c->cl);
    if (c->cl == NULL)
        die("calloc");
    keys_fixture_make(c->rkp, c->rpub, KEYS_FIXTURE_REPLICAS, n);
    keys_fixture_make(c->ckp, c->cpub, KEYS_FIXTURE_CLIENTS, clients);
    bool known[RH_CLIENTS_MAX];
    for (uint16_t k = 0; k < clients; k++) {
        known[k] = true;
        if (auth_init_client(&c->cauth[k], k, n, &c->ckp[k], c->rpub) != 0)
            die("auth_init_client");
    }
    for (uint16_t i = 0; i < n; i++) {
        if (auth_init_replica(&c->rauth[i], i, n, &c->rkp[i], c->rpub, c->cpub, known, clients) != 0)
            die("auth_init_replica");
        /* A fixed hash key: table order, hence state-transfer chunk
         * boundaries, follow the seed. */
        uint8_t key[STORE_HASH_KEY_SIZE];
        for (unsigned b = 0; b < sizeof key; b++)
            key[b] = (uint8_t)(seed * 131u + i * 17u + b);
        const struct store_config scfg = {.shards = 0, .initial_slots = 0};
        if (store_create_keyed(&scfg, key, &c->store[i]) != 0)
            die("store_create_keyed");
        struct pbft_replica_config *cfg = &c->cfg[i];
        memset(cfg, 0, sizeof *cfg);
        pbft_replica_config_defaults(cfg);
        cfg->group = c->group;
        cfg->id = i;
        cfg->n = n;
        cfg->f = f;
        cfg->clients = clients;
        if (tune != NULL)
            tune(cfg, arg);
        replica_make(c, i, false);
    }
    if (pbft_out_init(&c->out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS) != 0)
        die("pbft_out_init");
}

static void tune_loaded(struct pbft_replica_config *cfg, void *arg)
{
    rh_tune_apply(cfg, arg);
    const struct rh_tune *t = arg;
    cfg->retransmit_ns = t != NULL && t->retransmit_ns ? t->retransmit_ns : 5u * RH_MS;
    cfg->request_timeout_ns = t != NULL && t->request_timeout_ns ? t->request_timeout_ns : 10000u * RH_MS;
}

void rh_init_loaded(struct rh_cluster *c, uint16_t n, uint16_t f, uint16_t clients, uint64_t seed,
                    const struct rh_tune *t)
{
    rh_init(c, n, f, clients, seed, tune_loaded, (void *)t);
    c->burst = 200;
}

void rh_replies_clear(struct rh_cluster *c)
{
    for (size_t i = 0; i < c->nreplies; i++)
        free(c->replies[i].result);
    c->nreplies = 0;
}

uint64_t rh_fini(struct rh_cluster *c)
{
    uint64_t bad = c->bad_replies;
    for (size_t i = 0; i < c->q_len; i++)
        free(c->q[(c->q_head + i) % c->q_cap].bytes);
    free(c->q);
    rh_net_clear(c);
    rh_replies_clear(c);
    free(c->replies);
    free(c->cl);
    for (uint16_t i = 0; i < c->n; i++) {
        pbft_replica_destroy(c->r[i]);
        store_destroy(c->store[i]);
        auth_destroy(&c->rauth[i]);
        log_free(&c->execs[i]);
        log_free(&c->ckpts[i]);
    }
    for (uint16_t k = 0; k < c->clients; k++)
        auth_destroy(&c->cauth[k]);
    pbft_out_free(&c->out);
    rh_disk_free(c);
    return bad;
}

void rh_restart(struct rh_cluster *c, uint16_t i)
{
    pbft_replica_destroy(c->r[i]);
    store_clear(c->store[i]);
    replica_make(c, i, true);
}

void rh_tune_apply(struct pbft_replica_config *cfg, void *arg)
{
    const struct rh_tune *t = arg;
    if (t == NULL)
        return;
    if (t->k)
        cfg->checkpoint_interval = t->k;
    if (t->l)
        cfg->log_window = t->l;
    if (t->w)
        cfg->window = t->w;
    if (t->batch_requests)
        cfg->batch_max_requests = t->batch_requests;
    if (t->lanes)
        cfg->lanes = t->lanes;
    if (t->request_timeout_ns)
        cfg->request_timeout_ns = t->request_timeout_ns;
    if (t->retransmit_ns)
        cfg->retransmit_ns = t->retransmit_ns;
    cfg->durable = t->durable;
    cfg->bugs = t->bugs[cfg->id];
}

/* ---- Messages ------------------------------------------------------------------------ */

size_t rh_request(struct rh_cluster *c, uint8_t *buf, size_t cap, uint16_t client, uint16_t lane, uint64_t ts,
                  uint8_t op, const char *key, const void *value, size_t vlen, uint8_t rflags)
{
    struct wire_request rq;
    memset(&rq, 0, sizeof rq);
    rq.client = client;
    rq.lane = lane;
    rq.timestamp = ts;
    rq.op = op;
    rq.rflags = rflags;
    rq.klen = (uint16_t)strlen(key);
    rq.vlen = (uint32_t)vlen;
    rq.key = (const uint8_t *)key;
    rq.value = value;
    size_t auth_off = 0;
    size_t len = wire_encode_request(buf, cap, c->group, c->n, 0, &rq, &auth_off);
    if (len == 0)
        die("wire_encode_request");
    auth_authenticator_fill(&c->cauth[client], buf, len, auth_off);
    return len;
}

uint8_t rh_msg_type(const struct rh_msg *m)
{
    return m->len >= WIRE_HEADER_SIZE ? m->bytes[3] : 0;
}

void rh_decode(const struct rh_cluster *c, const uint8_t *buf, size_t len, struct wire_msg *m)
{
    size_t used = 0;
    if (wire_decode(buf, len, &c->lim, m, &used, NULL) != 0 || used != len)
        die("rh_decode");
}

static void q_push(struct rh_cluster *c, uint16_t from, uint16_t to, const uint8_t *msg, size_t len)
{
    if (c->q_len == c->q_cap) {
        size_t cap = c->q_cap ? 2 * c->q_cap : 1024;
        struct rh_msg *q = malloc(cap * sizeof *q);
        if (q == NULL)
            die("malloc");
        for (size_t i = 0; i < c->q_len; i++)
            q[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = q;
        c->q_cap = cap;
        c->q_head = 0;
    }
    struct rh_msg *m = &c->q[(c->q_head + c->q_len++) % c->q_cap];
    m->from = from;
    m->to = to;
    m->len = (uint32_t)len;
    m->bytes = malloc(len);
    if (m->bytes == NULL)
        die("malloc");
    memcpy(m->bytes, msg, len);
}

void rh_send(struct rh_cluster *c, uint16_t to, const uint8_t *msg, size_t len)
{
    if (to == UINT16_MAX) {
        for (uint16_t i = 0; i < c->n; i++)
            q_push(c, RH_FROM_CLIENT, i, msg, len);
    } else {
        q_push(c, RH_FROM_CLIENT, to, msg, len);
    }
}

void rh_submit(struct rh_cluster *c, uint16_t client, uint16_t lane, uint64_t ts, uint8_t op, const char *key,
               const void *value, size_t vlen, uint8_t rflags, uint16_t to)
{
    static uint8_t buf[BFTKV_DATAGRAM_MAX];
    size_t len = rh_request(c, buf, sizeof buf, client, lane, ts, op, key, value, vlen, rflags);
    rh_send(c, to, buf, len);
}

void rh_inject(struct rh_cluster *c, uint16_t from, uint16_t to, const uint8_t *msg, size_t len)
{
    q_push(c, from, to, msg, len);
}

/* ---- Replies ------------------------------------------------------------------------- */

static void inbox_add(struct rh_cluster *c, struct rh_reply *rp, const uint8_t *result)
{
    if (result != NULL) {
        rp->result = malloc(rp->result_len + 1u);
        if (rp->result == NULL)
            die("malloc");
        memcpy(rp->result, result, rp->result_len);
    }
    if (c->nreplies == c->replies_cap) {
        c->replies_cap = c->replies_cap ? 2 * c->replies_cap : 256;
        c->replies = realloc(c->replies, c->replies_cap * sizeof *c->replies);
        if (c->replies == NULL)
            die("realloc");
    }
    c->replies[c->nreplies++] = *rp;
}

static void reply_take(struct rh_cluster *c, uint16_t replica, uint16_t client, const uint8_t *msg, size_t len)
{
    struct wire_msg m;
    size_t used = 0;
    if (wire_decode(msg, len, &c->lim, &m, &used, NULL) != 0 || m.h.type != WIRE_REPLY
        || m.u.reply.client != client || m.h.sender != replica || !auth_reply_check(&c->cauth[client], &m)) {
        c->bad_replies++;
        return;
    }
    if (rh_net_loses_reply(c, replica))
        return;
    struct rh_reply rp;
    memset(&rp, 0, sizeof rp);
    rp.replica = replica;
    rp.client = client;
    rp.lane = m.u.reply.lane;
    rp.view = m.h.view;
    rp.timestamp = m.h.seq;
    rp.status = m.u.reply.status;
    rp.rflags = m.u.reply.rflags;
    rp.result_len = m.u.reply.result_len;
    memcpy(rp.digest, m.u.reply.result_digest, 32);
    rh_client_reply(c, &rp);
    if (c->on_reply != NULL) {
        rp.result = (uint8_t *)m.u.reply.result;
        c->on_reply(c, &rp, c->reply_arg);
    } else if (c->keep_replies) {
        inbox_add(c, &rp, m.u.reply.result);
    }
}

size_t rh_replies_for(const struct rh_cluster *c, uint16_t client, uint64_t ts, const struct rh_reply **out,
                      size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nreplies; i++) {
        const struct rh_reply *rp = &c->replies[i];
        if (rp->client == client && rp->timestamp == ts) {
            if (k < cap)
                out[k] = rp;
            k++;
        }
    }
    return k;
}

/* ---- The pump and the clock ------------------------------------------------------------- */

/* The replica's invariants after each step and resume (docs/design.md §5.9). */
static void invariants_hold(const struct rh_cluster *c, uint16_t i)
{
    uint64_t seq = 0;
    const char *what = replica_invariants_check(c->r[i], &seq);
    if (what != NULL) {
        fprintf(stderr, "replica %u, seq %llu: %s\n", i, (unsigned long long)seq, what);
        die("invariant broken");
    }
}

/* Move replica `from`'s outbox into the queue and the inbox, resuming the
 * replica while it says more. */
static void drain(struct rh_cluster *c, uint16_t from)
{
    for (;;) {
        invariants_hold(c, from);
        struct pbft_out *o = &c->out;
        rh_disk_outbox(c, from, o);
        for (uint32_t k = 0; k < o->nmsgs; k++) {
            const struct pbft_out_msg *om = &o->msgs[k];
            const uint8_t *bytes = o->buf + om->off;
            if (om->dest_kind == PBFT_DEST_PERSIST) {
                continue; /* rh_disk_outbox took it */
            } else if (om->dest_kind == PBFT_DEST_REPLICA) {
                q_push(c, from, om->dest_id, bytes, om->len);
            } else if (om->dest_kind == PBFT_DEST_ALL_REPLICAS) {
                for (uint16_t i = 0; i < c->n; i++) {
                    if (i != from)
                        q_push(c, from, i, bytes, om->len);
                }
            } else if (om->dest_kind == PBFT_DEST_CLIENT) {
                reply_take(c, from, om->dest_id, bytes, om->len);
            } else {
                die("bad dest kind");
            }
        }
        bool more = o->more;
        pbft_out_reset(o);
        if (!more)
            return;
        pbft_replica_resume(c->r[from], c->now_ns, o);
    }
}

/* What a server's auth stage verifies of a decoded message before it hands it
 * on marked authenticated (server/server.c, server_msg_authenticate), with the
 * receiver's keys. */
static bool verify_as_caller(const struct rh_cluster *c, uint16_t to, const struct wire_msg *m)
{
    const struct auth_ctx *a = &c->rauth[to];
    switch (m->h.type) {
    case WIRE_REQUEST:
        return auth_client_known(a, m->h.sender) && auth_authenticator_check(a, m);
    case WIRE_CHECKPOINT:
    case WIRE_VIEW_CHANGE:
    case WIRE_NEW_VIEW:
        return auth_signature_check(a, m);
    case WIRE_REPLY:
        return false;
    default:
        return auth_authenticator_check(a, m);
    }
}

void rh_deliver_decoded(struct rh_cluster *c, uint16_t to, const uint8_t *msg, size_t len, bool authenticated)
{
    struct wire_msg m;
    size_t used = 0;
    if (wire_decode(msg, len, &c->lim, &m, &used, NULL) != 0)
        die("rh_deliver_decoded: the message does not decode");
    struct pbft_event ev = { .kind = PBFT_EV_RECEIVE, .now_ns = c->now_ns, .decoded = &m,
                             .authenticated = authenticated };
    pbft_replica_step(c->r[to], &ev, &c->out);
    drain(c, to);
}

/* One message to its replica in the form c->deliver asks for. */
static void deliver(struct rh_cluster *c, const struct rh_msg *q)
{
    struct wire_msg m;
    size_t used = 0;
    struct pbft_event ev = { .kind = PBFT_EV_RECEIVE, .now_ns = c->now_ns, .msg = q->bytes, .len = q->len };
    if (c->deliver != RH_DELIVER_RAW && wire_decode(q->bytes, q->len, &c->lim, &m, &used, NULL) == 0) {
        ev.decoded = &m;
        ev.authenticated = c->deliver == RH_DELIVER_VERIFIED && verify_as_caller(c, q->to, &m);
        c->decoded++;
        c->verified += ev.authenticated ? 1u : 0u;
    }
    pbft_replica_step(c->r[q->to], &ev, &c->out);
    drain(c, q->to);
}

bool rh_step(struct rh_cluster *c)
{
    if (c->q_len == 0)
        return false;
    struct rh_msg m = c->q[c->q_head];
    c->q_head = (c->q_head + 1) % c->q_cap;
    c->q_len--;
    if (!rh_net_drops(c, &m)) {
        deliver(c, &m);
        c->delivered++;
    }
    free(m.bytes);
    return true;
}

bool rh_step_pick(struct rh_cluster *c, uint64_t pick)
{
    if (c->q_len == 0)
        return false;
    size_t i = (c->q_head + (size_t)(pick % c->q_len)) % c->q_cap;
    struct rh_msg tmp = c->q[i];
    c->q[i] = c->q[c->q_head];
    c->q[c->q_head] = tmp;
    return rh_step(c);
}

size_t rh_run(struct rh_cluster *c)
{
    size_t k = 0;
    while (rh_step(c))
        k++;
    return k;
}

void rh_tick(struct rh_cluster *c, uint64_t now_ns)
{
    c->now_ns = now_ns;
    for (uint16_t i = 0; i < c->n; i++) {
        struct pbft_event ev = { .kind = PBFT_EV_TICK, .now_ns = now_ns, .msg = NULL, .len = 0 };
        pbft_replica_step(c->r[i], &ev, &c->out);
        drain(c, i);
    }
    rh_clients_tick(c);
}

void rh_tick_run(struct rh_cluster *c, uint64_t t)
{
    rh_tick(c, t);
    rh_run(c);
}

bool rh_advance(struct rh_cluster *c, uint64_t until_ns, uint64_t step_ns, bool (*done)(struct rh_cluster *c))
{
    for (;;) {
        for (uint32_t k = 0; c->burst == 0 || k < c->burst; k++) {
            if (!rh_step(c))
                break;
        }
        if (done != NULL && done(c))
            return true;
        if (c->now_ns >= until_ns)
            return done == NULL;
        rh_tick(c, c->now_ns + step_ns < until_ns ? c->now_ns + step_ns : until_ns);
    }
}

/* ---- Checks --------------------------------------------------------------------------- */

const struct pbft_replica_stats *rh_stats(const struct rh_cluster *c, uint16_t i)
{
    return pbft_replica_stats(c->r[i]);
}

const uint8_t *rh_exec_digest(const struct rh_cluster *c, uint16_t i, uint64_t seq)
{
    return log_at(&c->execs[i], seq);
}

const uint8_t *rh_ckpt_digest(const struct rh_cluster *c, uint16_t i, uint64_t seq)
{
    return log_at(&c->ckpts[i], seq);
}

bool rh_agree(const struct rh_cluster *c, uint64_t who)
{
    for (uint16_t a = 0; a < c->n; a++) {
        for (uint16_t b = 0; b < c->n; b++) {
            if (a == b || !((who >> a) & 1u) || !((who >> b) & 1u))
                continue;
            for (size_t i = 0; i < c->execs[a].n; i++) {
                const struct rh_exec *e = &c->execs[a].e[i];
                const uint8_t *d = rh_exec_digest(c, b, e->seq);
                if (d != NULL && memcmp(d, e->digest, 32) != 0) {
                    fprintf(stderr, "rh_agree: replicas %u and %u differ at seq %llu\n", (unsigned)a, (unsigned)b,
                            (unsigned long long)e->seq);
                    return false;
                }
            }
        }
    }
    return true;
}

bool rh_logs_same(const struct rh_cluster *c, uint16_t a, uint16_t b)
{
    const struct rh_log *x = &c->execs[a], *y = &c->execs[b];
    if (x->n != y->n)
        return false;
    for (size_t i = 0; i < x->n; i++) {
        if (x->e[i].seq != y->e[i].seq || memcmp(x->e[i].digest, y->e[i].digest, 32) != 0)
            return false;
    }
    return true;
}

bool rh_replicas_level(struct rh_cluster *c)
{
    uint64_t le = UINT64_MAX;
    for (uint16_t i = 0; i < c->n; i++) {
        if ((c->net.isolated >> i) & 1u)
            continue;
        uint64_t x = rh_stats(c, i)->last_executed;
        if (le != UINT64_MAX && x != le)
            return false;
        le = x;
    }
    return true;
}

bool rh_settled(struct rh_cluster *c)
{
    return rh_workload_done(c) && rh_replicas_level(c);
}

void rh_dump(const struct rh_cluster *c, const char *what)
{
    if (getenv("RH_VERBOSE") == NULL)
        return;
    fprintf(stderr, "%s: t=%llums dropped=%llu ops=%u\n", what, (unsigned long long)(c->now_ns / RH_MS),
            (unsigned long long)c->dropped, c->ops_done);
    for (uint16_t i = 0; i < c->n; i++) {
        const struct pbft_replica_stats *s = rh_stats(c, i);
        fprintf(stderr,
                "  r%u le=%llu h=%llu batches=%llu retx=%llu status=%llu/%llu xfers=%llu bad=%llu restarts=%llu "
                "chunks in=%llu out=%llu timeouts=%llu snaps=%llu stale=%llu badauth=%llu view=%llu%s holds=%llu "
                "refused=%llu\n",
                (unsigned)i, (unsigned long long)s->last_executed, (unsigned long long)s->low_watermark,
                (unsigned long long)s->batches_executed, (unsigned long long)s->retransmissions,
                (unsigned long long)s->status_sent, (unsigned long long)s->status_answered,
                (unsigned long long)s->state_transfers, (unsigned long long)s->state_transfer_bad_digest,
                (unsigned long long)s->state_transfer_restarts, (unsigned long long)s->state_chunks_received,
                (unsigned long long)s->state_chunks_served, (unsigned long long)s->state_fetch_timeouts,
                (unsigned long long)s->snapshots_taken, (unsigned long long)s->dropped_stale,
                (unsigned long long)s->drops.count[WIRE_DROP_BAD_AUTH],
                (unsigned long long)pbft_replica_view(c->r[i]), pbft_replica_in_viewchange(c->r[i]) ? "(vc)" : "",
                (unsigned long long)s->holds_state, (unsigned long long)s->requests_refused_no_state);
    }
}
