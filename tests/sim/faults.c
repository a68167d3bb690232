/* Byzantine replicas in the simulator (see faults.h): each faulty replica's send
 * filter hands its messages to the engine's rewriter (engine/byzantine.h) with
 * the simulator's knowledge of the cluster; the network adversary holds what the
 * lies need held. */
#include "tests/sim/faults.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "store/store.h"

int faults_init(struct faults *fs, uint16_t n, uint16_t f)
{
    memset(fs, 0, sizeof(*fs));
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    fs->n = n;
    fs->f = f;
    return 0;
}

void faults_destroy(struct faults *fs)
{
    for (uint16_t i = 0; i < BFTKV_REPLICAS_MAX; i++) {
        struct fault_replica *fr = fs->rep[i];
        if (!fr)
            continue;
        byz_destroy(fr->byz);
        free(fr);
    }
    memset(fs, 0, sizeof(*fs));
}

void faults_set(struct faults *fs, uint16_t id, enum byz_mode b, uint64_t seed)
{
    BFTKV_ASSERT(id < fs->n && b > BYZ_NONE && b < BYZ_MODE_COUNT && fs->rep[id] == NULL && fs->cl == NULL);
    struct fault_replica *fr = calloc(1, sizeof(*fr));
    BFTKV_ASSERT(fr != NULL);
    fs->rep[id] = fr;
    fs->faulty[id] = true;
    fr->fs = fs;
    fr->id = id;
    fr->behaviour = (uint8_t)b;
    fr->seed = seed;
}

/* The most-lagging correct replica other than the accomplices: the state a
 * stale answer must match. */
static int lagging_victim(const struct faults *fs, struct cluster *cl)
{
    int best = -1;
    uint64_t best_exec = UINT64_MAX;
    for (uint16_t r = 0; r < fs->n; r++) {
        if (fs->faulty[r] || fs->accomplice[r] || !cluster_replica(cl, r))
            continue;
        uint64_t e = pbft_replica_stats(cluster_replica(cl, r))->last_executed;
        if (e < best_exec) {
            best_exec = e;
            best = r;
        }
    }
    return best;
}

/* stale-read's state (a byz_stale_fn): what the most-lagging correct replica
 * holds for the key the client has in flight on the reply's lane. */
static int fault_stale_value(void *arg, const struct wire_reply *rp, uint8_t *buf, size_t cap, size_t *vlen)
{
    struct faults *fs = arg;
    char key[BFTKV_KEY_MAX];
    size_t klen = 0;
    int victim = lagging_victim(fs, fs->cl);
    if (!fs->key_of || victim < 0 || !fs->key_of(fs->key_arg, rp->client, rp->lane, key, sizeof key, &klen))
        return BFTKV_E_NO_STATE;
    return store_get(cluster_store(fs->cl, (uint16_t)victim), key, klen, buf, cap, vlen);
}

/* The rewriter's send function: destinations back to cluster nodes. */
static void fault_send(void *arg, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len)
{
    struct fault_replica *fr = arg;
    struct cluster *cl = fr->fs->cl;
    uint32_t to = dest_kind == PBFT_DEST_REPLICA ? dest_id : cluster_client_node(cl, dest_id);
    cluster_send(cl, fr->id, to, msg, (uint32_t)len);
}

static void fault_filter(void *arg, struct cluster *cl, uint32_t from, uint32_t to, const uint8_t *msg,
                         uint32_t len)
{
    struct fault_replica *fr = arg;
    BFTKV_ASSERT(from == fr->id && cl == fr->fs->cl);
    uint16_t n = fr->fs->n;
    if (to < n)
        byz_filter(fr->byz, PBFT_DEST_REPLICA, (uint16_t)to, msg, len, fault_send, fr);
    else
        byz_filter(fr->byz, PBFT_DEST_CLIENT, (uint16_t)(to - n), msg, len, fault_send, fr);
}

void faults_set_key_lookup(struct faults *fs, fault_key_fn fn, void *arg)
{
    fs->key_of = fn;
    fs->key_arg = arg;
}

void faults_set_request_timeout(struct faults *fs, uint64_t timeout_ns)
{
    fs->request_timeout_ns = timeout_ns;
}

bool faults_any(const struct faults *fs, enum byz_mode b)
{
    for (uint16_t r = 0; r < fs->n; r++)
        if (fs->rep[r] && fs->rep[r]->behaviour == b)
            return true;
    return false;
}

void faults_stats(const struct faults *fs, struct fault_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (uint16_t r = 0; r < fs->n; r++) {
        if (!fs->rep[r] || !fs->rep[r]->byz)
            continue;
        const struct byz_stats *s = byz_stats_of(fs->rep[r]->byz);
        out->dropped += s->dropped;
        out->corrupted += s->corrupted;
        out->replayed += s->replayed;
        out->fabricated += s->fabricated;
        out->equivocated += s->equivocated;
    }
}

enum cluster_net_verdict faults_net_adversary(void *arg, uint32_t from, uint32_t to, const uint8_t *msg,
                                              uint32_t len, uint64_t *delay_ns)
{
    struct faults *fs = arg;
    if (from < fs->n && to < fs->n && fs->rep[from] && fs->rep[from]->behaviour == BYZ_SLOW) {
        *delay_ns = byz_delay_ns(fs->rep[from]->byz, PBFT_DEST_REPLICA);
        return CLUSTER_NET_PASS;
    }
    if (fs->state_delay_ns > 0 && from < fs->n && to < fs->n && !fs->faulty[from] && len > 3 && msg[3] == WIRE_STATE) {
        if (*delay_ns < fs->state_delay_ns)
            *delay_ns = fs->state_delay_ns;
        return CLUSTER_NET_PASS;
    }
    if (from >= fs->n || to >= fs->n || len <= 3 || (msg[3] != WIRE_PREPARE && msg[3] != WIRE_COMMIT) ||
        !fs->accomplice[from] || fs->accomplice[to] || fs->faulty[to])
        return CLUSTER_NET_PASS;
    for (uint16_t r = 0; r < fs->n; r++) {
        const struct fault_replica *fr = fs->rep[r];
        if (fr && fr->behaviour == BYZ_STALE_READ && *delay_ns < byz_stale_delay_ns(fr->byz))
            *delay_ns = byz_stale_delay_ns(fr->byz);
    }
    return CLUSTER_NET_PASS;
}

void faults_attach(struct faults *fs, struct cluster *cl)
{
    fs->cl = cl;
    byz_accomplices(fs->n, fs->f, fs->faulty, fs->accomplice);
    struct wire_limits lim = cluster_wire_limits(cl);
    for (uint16_t r = 0; r < fs->n; r++) {
        struct fault_replica *fr = fs->rep[r];
        if (!fr)
            continue;
        struct byz_context ctx;
        byz_context_live(&ctx, fs->n, fs->f, r, cluster_replica_auth(cl, r), &lim, fs->request_timeout_ns);
        memcpy(ctx.coalition, fs->faulty, sizeof ctx.coalition);
        ctx.stale_value = fault_stale_value;
        ctx.stale_arg = fs;
        int rc = byz_create((enum byz_mode)fr->behaviour, fr->seed, &ctx, &fr->byz);
        BFTKV_ASSERT(rc == 0);
        cluster_set_send_filter(cl, r, fault_filter, fr);
    }
}
