/* The server's side of the metrics (server/metrics.h): the protocol thread
 * samples every value of server/metrics_table.h into the shared snapshot when a
 * scrape asked for one, and the HTTP thread copies it out.
 *
 * The hand-over: `asked` is a counter the reader raises (release); the protocol
 * thread compares it with the last request it answered, and when they differ
 * it tries the mutex: it never blocks on it (pthread_mutex_trylock), so a reader
 * copying the previous snapshot out only delays the sample to the next loop
 * iteration. `published` (release) tells the reader which request the snapshot
 * answers. The mutex is held by the protocol thread only while it samples, by
 * the reader only while it copies; the protocol thread holds no other lock
 * meanwhile except a stage histogram's, exactly as the admin stats do
 * (server/server_stats.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "server/metrics.h"
#include "server/server_internal.h"
#include "server/snapshot.h"

_Static_assert(SERVER_STAGE_COUNT <= METRICS_STAGE_MAX, "every stage has a summary");
_Static_assert(SERVER_STAGE_RX_QUEUE == 0 && SERVER_STAGE_AUTH == 1 && SERVER_STAGE_STEP == 2 &&
                   SERVER_STAGE_TX_QUEUE == 3 && SERVER_STAGE_FLUSH == 4 && SERVER_STAGE_WAL == 5,
               "the stage order server/metrics.c names them in");

struct server_metrics {
    pthread_mutex_t mu;
    struct metrics_snapshot snap; /* under mu */
    _Atomic uint64_t asked;       /* raised by readers */
    _Atomic uint64_t published;   /* the request snap answers */
    uint64_t answered;            /* protocol thread only */
    uint64_t taken_ns;            /* protocol thread only: when snap was last sampled */
};

int server_metrics_create(struct server *s)
{
    struct server_metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return BFTKV_E_NOMEM;
    pthread_mutex_init(&m->mu, NULL);
    atomic_init(&m->asked, 0);
    atomic_init(&m->published, 0);
    s->metrics = m;
    return 0;
}

void server_metrics_destroy(struct server *s)
{
    if (s->metrics == NULL)
        return;
    pthread_mutex_destroy(&s->metrics->mu);
    free(s->metrics);
    s->metrics = NULL;
}

/* Merge a stage's histograms (each under its owner's mutex, as the stats JSON
 * does) into the snapshot's summary, in seconds. */
static void sample_stage(struct server *s, enum server_stage st, struct metrics_stage *g)
{
    hdr_reset(s->merge);
    for (uint16_t k = 0; k < s->hist_count[st]; k++) {
        pthread_mutex_lock(&s->hist[st][k].mu);
        hdr_add(s->merge, s->hist[st][k].h);
        pthread_mutex_unlock(&s->hist[st][k].mu);
    }
    g->present = true;
    g->count = (uint64_t)hdr_total_count(s->merge);
    g->sum_s = hdr_mean(s->merge) * (double)g->count / 1e9;
    for (unsigned q = 0; q < METRICS_QUANTILE_COUNT; q++)
        g->quantile_s[q] = (double)hdr_value_at_percentile(s->merge, 100.0 * metrics_quantiles[q]) / 1e9;
    g->max_s = (double)hdr_max(s->merge) / 1e9;
}

static void sample(struct server *s, struct metrics_snapshot *m)
{
    const struct pbft_replica_stats *es = pbft_replica_stats(s->replica);
    struct net_udp_stats uss;
    struct wal_stats wss;
    struct server_snap_stats sss;
    struct server_byz_stats bss;
    memset(&uss, 0, sizeof uss);
    memset(&wss, 0, sizeof wss);
    memset(&sss, 0, sizeof sss);
    memset(&bss, 0, sizeof bss);
    if (s->udp != NULL)
        net_udp_stats(s->udp, &uss);
    if (s->wal != NULL)
        wal_stats_get(s->wal, &wss);
    if (s->snap != NULL)
        server_snap_stats_get(s, &sss);
    if (s->byz != NULL)
        server_byz_stats_get(s->byz, &bss);
    const struct net_udp_stats *us = &uss;
    const struct wal_stats *ws = &wss;
    const struct server_snap_stats *ss = &sss;
    const struct server_byz_stats *bs = &bss;
    uint64_t now_ns = server_now_ns();

    m->taken_ns = now_ns;
    m->replica = (uint16_t)s->log_ctx.node; /* the replica id; a deployment node's id */
    m->partition = s->cfg->group;
    m->has_wal = s->wal != NULL;
    m->has_snap = s->snap != NULL;
    m->has_byz = s->byz != NULL;
    /* The table's expressions; a WAL or SNAP one reads zeros without a log. */
#define METRICS_SCALAR_SAMPLE(id, name, type, scope, when, help, value)                                        \
    m->scalar[METRICS_##id] = (METRICS_WHEN_OK_##when) ? (double)(value) : 0.0;
#define METRICS_WHEN_OK_ALWAYS true
#define METRICS_WHEN_OK_WAL (s->wal != NULL)
#define METRICS_WHEN_OK_SNAP (s->snap != NULL)
    METRICS_SCALARS(METRICS_SCALAR_SAMPLE)
#undef METRICS_SCALAR_SAMPLE
#undef METRICS_WHEN_OK_ALWAYS
#undef METRICS_WHEN_OK_WAL
#undef METRICS_WHEN_OK_SNAP

    unsigned r = 0;
    for (; r < WIRE_DROP_COUNT; r++) {
        m->drops[r] = es->drops.count[r] + atomic_load_explicit(&s->rx_drops[r], memory_order_relaxed);
        if (r == WIRE_DROP_UNKNOWN_CLIENT)
            m->drops[r] += server_counter_get(s, SERVER_CTR_unknown_client) +
                           atomic_load_explicit(&s->admin_drops[ADMIN_DROP_UNKNOWN_CLIENT], memory_order_relaxed);
    }
#define METRICS_DROP_SAMPLE(name, value) m->drops[r++] = (value);
    METRICS_DROP_REASONS(METRICS_DROP_SAMPLE)
#undef METRICS_DROP_SAMPLE
    for (int d = ADMIN_DROP_MALFORMED; d < ADMIN_DROP_COUNT; d++)
        if (d != ADMIN_DROP_UNKNOWN_CLIENT)
            m->drops[r++] = atomic_load_explicit(&s->admin_drops[d], memory_order_relaxed);
    BFTKV_ASSERT(r == METRICS_DROP_COUNT);

    unsigned a = 0;
#define METRICS_BYZ_SAMPLE(name, value) m->byz[a++] = (value);
    METRICS_BYZ_ACTIONS(METRICS_BYZ_SAMPLE)
#undef METRICS_BYZ_SAMPLE
    BFTKV_ASSERT(a == METRICS_BYZ_COUNT);

    bool staged = s->cfg->threads == BFTKV_CONFIG_THREADS_STAGED;
    memset(m->stage, 0, sizeof m->stage);
    for (int st = 0; st < SERVER_STAGE_COUNT; st++) {
        bool only_staged = st == SERVER_STAGE_RX_QUEUE || st == SERVER_STAGE_AUTH || st == SERVER_STAGE_TX_QUEUE;
        if ((only_staged && !staged) || (st == SERVER_STAGE_WAL && s->wal == NULL) || s->hist[st] == NULL)
            continue;
        sample_stage(s, (enum server_stage)st, &m->stage[st]);
    }
    snprintf(m->backend, sizeof m->backend, "%s", s->udp ? net_udp_backend_name(s->udp) : "none");
    snprintf(m->threads, sizeof m->threads, "%s", staged ? "staged" : "single");
    snprintf(m->durability, sizeof m->durability, "%s", bftkv_config_durability_name(s->cfg->durability));
    snprintf(m->byzantine, sizeof m->byzantine, "%s", s->byz ? byz_mode_name(server_byz_mode(s->byz)) : "none");
}

void server_metrics_poll(struct server *s)
{
    struct server_metrics *mm = s->metrics;
    if (mm == NULL)
        return;
    /* acquire: pairs with the reader's release of its request */
    uint64_t asked = atomic_load_explicit(&mm->asked, memory_order_acquire);
    if (asked == mm->answered)
        return;
    /* A flood of scrapes costs the protocol thread one sample per interval at
     * most: within it, the last snapshot answers (its age says how old). */
    uint64_t now = server_clock_now(s);
    if (mm->taken_ns == 0 || now - mm->taken_ns >= METRICS_SAMPLE_INTERVAL_NS) {
        if (pthread_mutex_trylock(&mm->mu) != 0)
            return; /* a reader is copying the last one out: sample next time */
        sample(s, &mm->snap);
        mm->snap.gen = asked;
        mm->taken_ns = now;
        pthread_mutex_unlock(&mm->mu);
    }
    mm->answered = asked;
    /* release: the snapshot answering `asked` is in place (the mutex also orders it) */
    atomic_store_explicit(&mm->published, asked, memory_order_release);
}

int server_metrics_read(struct server *s, struct metrics_snapshot *out, int wait_ms)
{
    struct server_metrics *mm = s->metrics;
    if (mm == NULL)
        return BFTKV_E_NO_STATE;
    uint64_t want = atomic_fetch_add_explicit(&mm->asked, 1, memory_order_acq_rel) + 1u;
    uint64_t deadline = server_now_ns() + (uint64_t)(wait_ms > 0 ? wait_ms : 0) * 1000000u;
    while (atomic_load_explicit(&mm->published, memory_order_acquire) < want && server_now_ns() < deadline) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 500000L};
        nanosleep(&ts, NULL);
    }
    bool answered = atomic_load_explicit(&mm->published, memory_order_acquire) >= want;
    pthread_mutex_lock(&mm->mu);
    *out = mm->snap;
    pthread_mutex_unlock(&mm->mu);
    if (out->gen == 0)
        return BFTKV_E_NO_STATE;
    return answered ? 0 : BFTKV_E_TIMEOUT;
}
