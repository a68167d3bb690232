/* A routing handle learns of a newer deployment map (docs/design.md §6.3).
 *
 * Nodes say which map they run: every REPLY of a deployment's replica carries
 * its node's map epoch under the reply's MAC (engine/wire.h), and a node that
 * does not host the group a REQUEST named answers with a MAP-NOTICE carrying
 * it (engine/wire_map.h, unauthenticated). The loop keeps the highest epoch
 * claimed and who claimed it (client_epoch_hint); an API thread about to route
 * a call sees a claim above the routed map's epoch (client_epoch_check) and
 * fetches the map: from the node that claimed it first, then from the file's
 * seeds (client_map_refetch). The map is taken only by the acceptance rule
 * (cluster_map_accept: the admin's signature verifies and the epoch is later
 * than the newest map held), so a claim is only ever a reason to ask: a lying
 * node can make the client fetch, never make it take an unsigned or older
 * map, and the fetches are bounded -- at most one per CLIENT_MAP_REFETCH_MS,
 * and a claim that a fetch did not bear out is tried again only after a wait
 * that doubles up to CLIENT_MAP_REFETCH_MS_MAX (a higher claim is tried at
 * the next interval).
 *
 * A newer map whose groups are the routed ones (client_epoch_same_groups:
 * the same P, R, f and, for every partition, the same nodes at the same
 * addresses with the same keys -- an allow-list change, a re-signing) is
 * routed with from the next call on: the partition handles stay as they are.
 * A newer map that moves a partition is kept as pending and written to
 * map_cache, but not routed with: re-opening partition handles while calls
 * are in flight is not built (the next open takes the map from map_cache).
 * Maps routed with before stay allocated until close, because an API thread
 * may be reading one while another swaps it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bftkv/errors.h"
#include "client/client_internal.h"
#include "common/assert.h"

static uint64_t epoch_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int client_epoch_init(struct bftkv_client *r, const struct bftkv_config *cfg)
{
    struct client_epoch *e = calloc(1, sizeof *e);
    struct bftkv_config *copy = malloc(sizeof *copy);
    if (e == NULL || copy == NULL) {
        free(e);
        free(copy);
        return BFTKV_E_NOMEM;
    }
    memcpy(copy, cfg, sizeof *copy); /* a flat struct (cluster/cluster.h) */
    e->cfg = copy;
    e->backoff_ms = CLIENT_MAP_REFETCH_MS;
    atomic_init(&e->newest, r->map->params.epoch);
    pthread_mutex_init(&e->mu, NULL);
    r->epoch = e;
    return 0;
}

void client_epoch_free(struct bftkv_client *r)
{
    struct client_epoch *e = r->epoch;
    if (e == NULL)
        return;
    for (uint32_t i = 0; i < e->nretired; i++)
        cluster_map_free(e->retired[i]);
    free(e->retired);
    cluster_map_free(e->pending);
    free(e->cfg);
    pthread_mutex_destroy(&e->mu);
    free(e);
    r->epoch = NULL;
}

struct cluster_map *client_epoch_map(struct bftkv_client *r)
{
    return __atomic_load_n(&r->map, __ATOMIC_ACQUIRE);
}

void client_epoch_hint(struct bftkv_client *c, uint16_t replica, uint64_t epoch)
{
    struct client_io *io = c->io;
    /* The loop alone writes: a plain compare is enough. Source first, then the
     * epoch (release): a reader that sees the epoch sees its source. */
    if (epoch <= atomic_load_explicit(&io->epoch_hint, memory_order_relaxed))
        return;
    atomic_store_explicit(&io->epoch_hint_src, c->pidx << 8 | replica, memory_order_relaxed);
    atomic_store_explicit(&io->epoch_hint, epoch, memory_order_release);
}

static bool epoch_node_same(const struct bftkv_config_replica *a, const struct bftkv_config_replica *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0 && memcmp(a->x25519, b->x25519, 32) == 0
           && memcmp(a->ed25519, b->ed25519, 32) == 0;
}

bool client_epoch_same_groups(const struct cluster_map *a, const struct cluster_map *b)
{
    if (a->params.partitions != b->params.partitions || a->params.rf != b->params.rf || a->params.f != b->params.f)
        return false;
    for (uint32_t p = 0; p < a->params.partitions; p++) {
        const uint16_t *sa = cluster_map_partition_replicas(a, p);
        const uint16_t *sb = cluster_map_partition_replicas(b, p);
        for (uint16_t i = 0; i < a->params.rf; i++)
            if (a->node_id[sa[i]] != b->node_id[sb[i]] || !epoch_node_same(&a->node[sa[i]], &b->node[sb[i]]))
                return false;
    }
    return true;
}

/* Route with m from now on; the old map stays allocated until close. */
static void epoch_adopt(struct bftkv_client *r, struct cluster_map *m)
{
    struct client_epoch *e = r->epoch;
    struct cluster_map **grown = realloc(e->retired, (e->nretired + 1u) * sizeof *grown);
    if (grown == NULL) {
        cluster_map_free(e->pending); /* out of memory: kept as pending, routed with at the next open */
        e->pending = m;
        return;
    }
    e->retired = grown;
    e->retired[e->nretired++] = client_epoch_map(r);
    __atomic_store_n(&r->map, m, __ATOMIC_RELEASE);
    if (e->pending != NULL && e->pending->params.epoch <= m->params.epoch) {
        cluster_map_free(e->pending);
        e->pending = NULL;
    }
}

bool client_epoch_due(const struct client_epoch *e, uint64_t claim, uint64_t held_epoch, uint64_t now_ns)
{
    if (claim <= held_epoch)
        return false; /* nothing newer claimed, or already fetched by another thread */
    if (e->last_try_ns != 0 && now_ns - e->last_try_ns < (uint64_t)CLIENT_MAP_REFETCH_MS * 1000000u)
        return false;
    if (claim <= e->tried_epoch && now_ns - e->last_try_ns < e->backoff_ms * 1000000u)
        return false; /* a claim not borne out: wait longer before believing it again */
    return true;
}

void client_epoch_tried(struct client_epoch *e, uint64_t claim, bool borne_out, uint64_t now_ns)
{
    e->last_try_ns = now_ns != 0 ? now_ns : 1u;
    e->fetches++;
    if (borne_out) {
        e->backoff_ms = CLIENT_MAP_REFETCH_MS;
        return;
    }
    /* The same claim (or a lower one) again waits twice as long; a higher one
     * is a new claim. */
    e->fetch_failures++;
    uint64_t doubled = e->backoff_ms * 2u < CLIENT_MAP_REFETCH_MS_MAX ? e->backoff_ms * 2u : CLIENT_MAP_REFETCH_MS_MAX;
    e->backoff_ms = claim <= e->tried_epoch ? doubled : CLIENT_MAP_REFETCH_MS;
    e->tried_epoch = claim > e->tried_epoch ? claim : e->tried_epoch;
}

/* With e->mu held: fetch once, if the rates allow. */
static void epoch_fetch(struct bftkv_client *r, uint64_t claim, uint64_t now)
{
    struct client_epoch *e = r->epoch;
    struct cluster_map *routed = client_epoch_map(r);
    const struct cluster_map *held = e->pending != NULL ? e->pending : routed;
    if (!client_epoch_due(e, claim, held->params.epoch, now))
        return;
    /* The node that claimed it first is asked first: it says it serves that map. */
    uint32_t src = atomic_load_explicit(&r->io->epoch_hint_src, memory_order_relaxed);
    const struct sockaddr_storage *first = NULL;
    socklen_t firstlen = 0;
    if (src != CLIENT_EPOCH_SRC_NONE && (src >> 8) < r->parts && (src & 0xffu) < r->part[src >> 8]->n) {
        const struct bftkv_client *c = r->part[src >> 8];
        first = &c->replica_addr[src & 0xffu];
        firstlen = c->replica_addrlen[src & 0xffu];
    }
    char err[BFTKV_CONFIG_ERR_MAX * 2];
    struct cluster_map *got = NULL;
    int rc = client_map_refetch(e->cfg, r->id, held, first, firstlen, &got, err, sizeof err);
    client_epoch_tried(e, claim, rc == 0 && got->params.epoch >= claim, now);
    if (rc != 0)
        return; /* counted in map_fetch_failures; the library prints nothing */
    atomic_store_explicit(&e->newest, got->params.epoch, memory_order_release);
    if (client_epoch_same_groups(routed, got)) {
        epoch_adopt(r, got);
        return;
    }
    cluster_map_free(e->pending); /* map_epoch_pending says so */
    e->pending = got;
}

void client_epoch_check(struct bftkv_client *r)
{
    BFTKV_ASSERT(r->part != NULL);
    struct client_epoch *e = r->epoch;
    uint64_t claim = atomic_load_explicit(&r->io->epoch_hint, memory_order_acquire);
    if (e == NULL || claim <= atomic_load_explicit(&e->newest, memory_order_acquire) || client_loop_on_thread(r->io))
        return; /* the common case: two loads and a compare */
    uint64_t now = epoch_now_ns();
    pthread_mutex_lock(&e->mu);
    epoch_fetch(r, claim, now);
    pthread_mutex_unlock(&e->mu);
}

void client_epoch_stats(struct bftkv_client *r, struct bftkv_client_stats *sum)
{
    sum->map_epoch = client_epoch_map(r)->params.epoch;
    sum->map_epoch_claimed = atomic_load_explicit(&r->io->epoch_hint, memory_order_acquire);
    sum->map_notices = atomic_load_explicit(&r->io->notices, memory_order_relaxed);
    if (r->epoch == NULL)
        return;
    pthread_mutex_lock(&r->epoch->mu);
    sum->map_fetches = r->epoch->fetches;
    sum->map_fetch_failures = r->epoch->fetch_failures;
    sum->map_epoch_pending = r->epoch->pending != NULL ? r->epoch->pending->params.epoch : 0;
    pthread_mutex_unlock(&r->epoch->mu);
}
