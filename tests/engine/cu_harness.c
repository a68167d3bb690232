/* The catch-up tests' cluster (cu_harness.h): replica_harness.c's cluster with
 * loss, partitions, a lying state server, retransmitting closed-loop clients,
 * idle-driven simulated time, and records of what every replica executed. */
#include "cu_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/mix64.h"

#define CU_STEP_NS (1000u * 1000u)
/* Deliveries per millisecond of simulated time: time passes while messages are
 * in flight, so timers fire under load too. */
#define CU_BURST 200u

static void die(const char *what)
{
    fprintf(stderr, "cu_harness: %s\n", what);
    abort();
}

static uint64_t rng_next(struct cu_cluster *cu)
{
    return bftkv_splitmix64(&cu->rng); /* fixed seed, reproducible runs */
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- Hooks -------------------------------------------------------------------------- */

static void on_exec(void *arg, uint16_t replica, uint64_t seq, const uint8_t d[32])
{
    struct cu_cluster *cu = arg;
    if (seq >= CU_SEQ_MAX)
        die("seq beyond CU_SEQ_MAX");
    memcpy(cu->exec[replica][seq], d, 32);
    cu->executed[replica][seq] = true;
}

static void on_checkpoint(void *arg, uint16_t replica, uint64_t seq, const uint8_t d[32])
{
    struct cu_cluster *cu = arg;
    if (seq >= CU_SEQ_MAX)
        die("seq beyond CU_SEQ_MAX");
    memcpy(cu->ckpt[replica][seq], d, 32);
    cu->ckpt_seen[replica][seq] = true;
}

static void tune(struct pbft_replica_config *cfg, void *arg)
{
    const struct cu_cluster *cu = arg;
    const struct cu_params *p = &cu->p;
    if (p->k)
        cfg->checkpoint_interval = p->k;
    if (p->l)
        cfg->log_window = p->l;
    if (p->w)
        cfg->window = p->w;
    cfg->retransmit_ns = p->retransmit_ns ? p->retransmit_ns : 5u * CU_STEP_NS;
    cfg->request_timeout_ns = p->request_timeout_ns ? p->request_timeout_ns : 10000u * CU_STEP_NS;
    cfg->bugs = p->bugs[cfg->id];
}

/* ---- The network ------------------------------------------------------------------- */

/* A lying server: flip the last byte of the first store record of a chunk and
 * re-MAC the message with the server's own keys, so only the state digest can
 * tell. */
static void chunk_corrupt(struct cu_cluster *cu, const struct rh_msg *m)
{
    uint8_t *b = m->bytes + WIRE_HEADER_SIZE;
    struct wire_header h;
    wire_header_read(m->bytes, &h);
    if (b[32] != WIRE_STATE_CHUNK || b[33] != WIRE_PART_STORE)
        return;
    uint32_t data_len = le32(b + 64);
    uint8_t *data = b + WIRE_STATE_FIXED;
    if (data_len < STORE_RECORD_HEADER_SIZE + 1u)
        return;
    uint32_t klen = le16(data), vlen = le32(data + 2);
    data[STORE_RECORD_HEADER_SIZE + klen + vlen - 1u] ^= 0x5a;
    auth_authenticator_fill(&cu->rh.rauth[m->from], m->bytes, m->len, WIRE_HEADER_SIZE + (size_t)h.body_len);
    cu->corrupted++;
}

static bool net_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    struct cu_cluster *cu = arg;
    (void)c;
    bool from_replica = m->from != RH_FROM_CLIENT;
    if (cu->cut[m->to] || (from_replica && cu->cut[m->from]) || rng_next(cu) % 100u < cu->loss_pct) {
        cu->dropped++;
        return true;
    }
    if (cu->restart_at_ops != 0 && cu->ops_done >= cu->restart_at_ops && m->to != cu->restart_who) {
        cu->restart_at_ops = 0;
        cu->restart_le = cu_stats(cu, cu->restart_who)->last_executed;
        cu_restart(cu, cu->restart_who);
    }
    uint8_t type = rh_msg_type(m);
    if (from_replica && type == WIRE_STATE && (int)m->from == cu->corrupt_from)
        chunk_corrupt(cu, m);
    if (cu->filter != NULL && cu->filter(cu, m, cu->filter_arg))
        return true;
    if (type == WIRE_FETCH && cu->on_fetch != NULL)
        cu->on_fetch(cu, m->to, cu->fetch_arg);
    return false;
}

/* ---- Clients ------------------------------------------------------------------------ */

static uint16_t primary_now(struct cu_cluster *cu)
{
    uint64_t v = 0;
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        if (!cu->cut[i] && pbft_replica_view(cu->rh.r[i]) > v)
            v = pbft_replica_view(cu->rh.r[i]);
    }
    return (uint16_t)(v % cu->rh.n);
}

static void client_submit(struct cu_cluster *cu, uint16_t k)
{
    struct cu_client *cl = &cu->cl[k];
    static uint8_t value[CU_VALUE_MAX];
    char key[16];
    cl->ts++;
    snprintf(key, sizeof key, "key-%u", (unsigned)(rng_next(cu) % cu->keys));
    for (uint32_t i = 0; i < cu->value_len; i++)
        value[i] = (uint8_t)(k * 31u + cl->ts * 7u + i);
    cl->len = rh_request(&cu->rh, cl->buf, sizeof cl->buf, k, 0, cl->ts, WIRE_OP_PUT, key, value, cu->value_len, 0);
    cl->busy = true;
    cl->voted = 0;
    cl->sent_ns = cu->rh.now_ns;
    cu->ops_issued++;
    /* A large request goes to every replica (docs/design.md §5.3). */
    bool large = cl->len - (size_t)cu->rh.n * BFTKV_MAC_SIZE > BFTKV_INLINE_REQUEST_MAX;
    rh_send(&cu->rh, large ? UINT16_MAX : primary_now(cu), cl->buf, cl->len);
}

static void on_reply(struct rh_cluster *c, const struct rh_reply *rp, void *arg)
{
    struct cu_cluster *cu = arg;
    (void)c;
    if (cu->cut[rp->replica] || rng_next(cu) % 100u < cu->loss_pct) {
        cu->dropped++;
        return;
    }
    struct cu_client *cl = &cu->cl[rp->client];
    if (!cl->busy || rp->timestamp != cl->ts)
        return;
    cl->voted |= 1ull << rp->replica;
    cl->status[rp->replica] = rp->status;
    memcpy(cl->digest[rp->replica], rp->digest, 32);
    uint32_t same = 0;
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        if ((cl->voted >> i & 1u) && cl->status[i] == rp->status && memcmp(cl->digest[i], rp->digest, 32) == 0)
            same++;
    }
    if (same < (uint32_t)cu->rh.f + 1u)
        return;
    if (rp->status != 0)
        die("a PUT failed");
    cl->busy = false;
    cu->ops_done++;
    if (cu->ops_issued < cu->ops_target)
        client_submit(cu, rp->client);
}

static void clients_tick(struct cu_cluster *cu)
{
    for (uint16_t k = 0; k < cu->rh.clients; k++) {
        struct cu_client *cl = &cu->cl[k];
        if (cl->busy && cu->rh.now_ns - cl->sent_ns >= cu->client_timeout_ns) {
            rh_send(&cu->rh, UINT16_MAX, cl->buf, cl->len); /* to everyone (TOCS 2002 §4.1) */
            cl->sent_ns = cu->rh.now_ns;
        }
    }
}

void cu_workload(struct cu_cluster *cu, uint32_t ops, uint32_t keys, uint32_t value_len)
{
    if (value_len > CU_VALUE_MAX)
        die("value too large");
    cu->ops_target = cu->ops_issued + ops;
    cu->keys = keys;
    cu->value_len = value_len;
    for (uint16_t k = 0; k < cu->rh.clients && cu->ops_issued < cu->ops_target; k++) {
        if (!cu->cl[k].busy)
            client_submit(cu, k);
    }
}

bool cu_workload_done(struct cu_cluster *cu)
{
    return cu->ops_done >= cu->ops_target;
}

/* ---- Life cycle and time -------------------------------------------------------------- */

static void hooks_set(struct cu_cluster *cu, uint16_t i)
{
    pbft_replica_set_hooks(cu->rh.r[i], on_exec, on_checkpoint, cu);
}

void cu_init(struct cu_cluster *cu, const struct cu_params *p, uint64_t seed)
{
    memset(cu, 0, sizeof *cu);
    cu->p = *p;
    cu->rng = seed;
    cu->corrupt_from = -1;
    cu->client_timeout_ns = 20u * CU_STEP_NS;
    cu->burst = CU_BURST;
    rh_init(&cu->rh, p->n, p->f, p->clients, tune, cu);
    cu->rh.filter = net_filter;
    cu->rh.filter_arg = cu;
    cu->rh.on_reply = on_reply;
    cu->rh.reply_arg = cu;
    for (uint16_t i = 0; i < p->n; i++) {
        /* Stores with fixed hash keys, so a run replays exactly (table order,
         * hence chunk boundaries, follow the key): swap a keyed twin's contents
         * (empty, and its key) in, then create the replica again so its staging
         * store is made like the keyed one. */
        uint8_t key[STORE_HASH_KEY_SIZE];
        for (unsigned b = 0; b < sizeof key; b++)
            key[b] = (uint8_t)(seed * 131u + i * 17u + b);
        struct store *keyed = NULL;
        struct store_config scfg = {.shards = store_shard_count(cu->rh.store[i]), .initial_slots = 0};
        if (store_create_keyed(&scfg, key, &keyed) != 0 || store_swap(cu->rh.store[i], keyed) != 0)
            die("store_create_keyed");
        store_destroy(keyed);
        pbft_replica_destroy(cu->rh.r[i]);
        if (pbft_replica_create(&cu->rh.cfg[i], &cu->rh.rauth[i], cu->rh.store[i], &cu->rh.r[i]) != 0)
            die("pbft_replica_create");
        cu->exec[i] = calloc(CU_SEQ_MAX, 32);
        cu->executed[i] = calloc(CU_SEQ_MAX, sizeof(bool));
        cu->ckpt[i] = calloc(CU_SEQ_MAX, 32);
        cu->ckpt_seen[i] = calloc(CU_SEQ_MAX, sizeof(bool));
        if (!cu->exec[i] || !cu->executed[i] || !cu->ckpt[i] || !cu->ckpt_seen[i])
            die("calloc");
        hooks_set(cu, i);
    }
}

void cu_fini(struct cu_cluster *cu)
{
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        free(cu->exec[i]);
        free(cu->executed[i]);
        free(cu->ckpt[i]);
        free(cu->ckpt_seen[i]);
    }
    rh_fini(&cu->rh);
}

bool cu_run(struct cu_cluster *cu, bool (*done)(struct cu_cluster *cu), uint64_t until_ns)
{
    for (;;) {
        for (uint32_t k = 0; cu->burst == 0 || k < cu->burst; k++) {
            if (!rh_step(&cu->rh))
                break;
        }
        if (done != NULL && done(cu))
            return true;
        if (cu->rh.now_ns >= until_ns)
            return done == NULL;
        rh_tick(&cu->rh, cu->rh.now_ns + CU_STEP_NS);
        clients_tick(cu);
    }
}

bool cu_replicas_level(struct cu_cluster *cu)
{
    uint64_t le = UINT64_MAX;
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        if (cu->cut[i])
            continue;
        uint64_t x = cu_stats(cu, i)->last_executed;
        if (le != UINT64_MAX && x != le)
            return false;
        le = x;
    }
    return true;
}

void cu_restart(struct cu_cluster *cu, uint16_t i)
{
    pbft_replica_destroy(cu->rh.r[i]);
    store_clear(cu->rh.store[i]);
    struct pbft_replica_config cfg = cu->rh.cfg[i];
    cfg.restarted = true;
    if (pbft_replica_create(&cfg, &cu->rh.rauth[i], cu->rh.store[i], &cu->rh.r[i]) != 0)
        die("pbft_replica_create");
    hooks_set(cu, i);
}

/* ---- Checks -------------------------------------------------------------------------- */

void cu_store_digest(struct cu_cluster *cu, uint16_t i, uint8_t out[32])
{
    store_digest_bytes(cu->rh.store[i], out);
}

bool cu_agree(const struct cu_cluster *cu)
{
    for (uint32_t seq = 1; seq < CU_SEQ_MAX; seq++) {
        int first = -1;
        for (uint16_t i = 0; i < cu->rh.n; i++) {
            if (!cu->executed[i][seq])
                continue;
            if (first < 0) {
                first = i;
            } else if (memcmp(cu->exec[first][seq], cu->exec[i][seq], 32) != 0) {
                fprintf(stderr, "cu_agree: replicas %d and %u differ at seq %u\n", first, (unsigned)i, seq);
                return false;
            }
        }
    }
    return true;
}

const struct pbft_replica_stats *cu_stats(const struct cu_cluster *cu, uint16_t i)
{
    return pbft_replica_stats(cu->rh.r[i]);
}

void cu_dump(const struct cu_cluster *cu, const char *what)
{
    if (getenv("CU_VERBOSE") == NULL)
        return;
    fprintf(stderr, "%s: t=%llums dropped=%llu corrupted=%llu ops=%u\n", what,
            (unsigned long long)(cu->rh.now_ns / 1000000u), (unsigned long long)cu->dropped,
            (unsigned long long)cu->corrupted, cu->ops_done);
    for (uint16_t i = 0; i < cu->rh.n; i++) {
        const struct pbft_replica_stats *s = cu_stats(cu, i);
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
                (unsigned long long)pbft_replica_view(cu->rh.r[i]), pbft_replica_in_view_change(cu->rh.r[i]) ? "(vc)" : "",
                (unsigned long long)s->holds_state, (unsigned long long)s->requests_refused_no_state);
    }
}
