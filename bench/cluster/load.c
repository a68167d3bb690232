/* bftkv-bench's load: request slots, the closed and the open loop, the handles,
 * and one timed run (warm-up, measured window, drain).
 *
 * Closed loop: every slot keeps one request outstanding: its callback (on the
 * handle's I/O thread) records the result and submits the slot's next request.
 * Open loop (--rate): one thread per handle takes a free slot on a fixed schedule;
 * a latency runs from the intended start, so a stall is charged to every request
 * it delayed (no coordinated omission). Either way a slot is one logical client
 * of the history (history.c): at most one request outstanding.
 */
#include "bench.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include "common/mix64.h"

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bench_mix64(uint64_t x)
{
    return bftkv_mix64(x);
}

static uint64_t bench_rng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static double bench_rng_unit(uint64_t *s)
{
    return (double)(bench_rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* Zipfian keys (Gray et al., "Quickly generating billion-record synthetic
 * databases", as in YCSB): zeta computed once at start-up. */
void bench_zipf_init(struct bench *b)
{
    double zetan = 0.0;
    for (uint64_t i = 1; i <= b->keys; i++) {
        zetan += 1.0 / pow((double)i, b->zipf);
    }
    double zeta2 = 1.0 + 1.0 / pow(2.0, b->zipf);
    b->zipf_zetan = zetan;
    b->zipf_alpha = 1.0 / (1.0 - b->zipf);
    b->zipf_eta = (1.0 - pow(2.0 / (double)b->keys, 1.0 - b->zipf)) / (1.0 - zeta2 / zetan);
}

static uint64_t bench_key_pick(const struct bench *b, uint64_t *rng)
{
    if (b->zipf <= 0.0) {
        return bench_rng_next(rng) % b->keys;
    }
    double u = bench_rng_unit(rng);
    double uz = u * b->zipf_zetan;
    if (uz < 1.0) {
        return 0;
    }
    if (uz < 1.0 + pow(0.5, b->zipf)) {
        return b->keys > 1 ? 1 : 0;
    }
    uint64_t k = (uint64_t)((double)b->keys * pow(b->zipf_eta * u - b->zipf_eta + 1.0, b->zipf_alpha));
    return k < b->keys ? k : b->keys - 1;
}

uint64_t bench_fnv1a(const void *p, size_t n)
{
    const uint8_t *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Key number k as key_size bytes: "k<k>" right-aligned in '0' padding. */
void bench_key_format(const struct bench *b, uint64_t k, uint8_t *out)
{
    size_t len = b->key_size;
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "k%" PRIu64, k);
    memset(out, '0', len);
    size_t copy = (size_t)n < len ? (size_t)n : len;
    memcpy(out + len - copy, tmp + (size_t)n - copy, copy);
}

void bench_slot_set(struct bench_slot *s, int op, uint64_t k)
{
    struct bench *b = s->handle->bench;
    s->key_index = k;
    bench_key_format(b, k, s->key);
    s->part = b->map != NULL ? cluster_map_key_partition(b->map, s->key, b->key_size) : 0;
    s->op = op;
    s->write_id = 0;
    if (op == BFTKV_OP_PUT) {
        s->write_id = bench_write_id(b, s->handle->index);
        bench_value_fill(b, s->write_id, s->value);
    }
}

/* Fill the slot's next request: op (--read-ratio GETs, --del-ratio DELs, the rest
 * PUTs), key and, for a PUT, a value carrying a fresh write id. */
static void bench_slot_prepare(struct bench_slot *s)
{
    struct bench *b = s->handle->bench;
    uint64_t k = bench_key_pick(b, &s->rng);
    double u = bench_rng_unit(&s->rng);
    int op = u < b->read_ratio ? BFTKV_OP_GET : u < b->read_ratio + b->del_ratio ? BFTKV_OP_DEL : BFTKV_OP_PUT;
    bench_slot_set(s, op, k);
}

static void bench_callback(void *arg, int status, const void *val, size_t vlen);

int bench_slot_submit(struct bench_slot *s)
{
    struct bench *b = s->handle->bench;
    if (b->history != NULL && !bench_history_invoke(b, s, bench_now_ns())) {
        atomic_store(&s->busy, false);
        return BFTKV_E_FULL;
    }
    if (b->touched != NULL) {
        atomic_fetch_or_explicit(&b->touched[s->key_index / 64u], 1ull << (s->key_index % 64u),
                                 memory_order_relaxed);
    }
    atomic_store(&s->busy, true);
    bool put = s->op == BFTKV_OP_PUT;
    /* After a 0 return the callback may already have run and reused the slot:
     * nothing below touches s then. */
    int rc = bftkv_submit(s->handle->client, s->op, s->key, b->key_size, put ? s->value : NULL,
                          put ? b->value_len : 0, bench_callback, s);
    if (rc != 0) {
        atomic_store(&s->busy, false);
        if (b->history != NULL) {
            bench_history_return(b, s, rc, NULL, 0, bench_now_ns(), true);
        }
    }
    return rc;
}

/* An error outside a callback's measured count (a refused submission). */
static void bench_count_error(struct bench_handle *h)
{
    if (h->part_ops != NULL) {
        pthread_mutex_lock(&h->stat_lock);
    }
    h->errors++;
    if (h->part_ops != NULL) {
        pthread_mutex_unlock(&h->stat_lock);
    }
}

static void bench_callback(void *arg, int status, const void *val, size_t vlen)
{
    struct bench_slot *s = arg;
    struct bench_handle *h = s->handle;
    struct bench *b = h->bench;
    uint64_t end = bench_now_ns();
    if (b->history != NULL && bench_history_return(b, s, status, val, vlen, end, false)) {
        /* An unknown outcome ends the logical client (it cannot know what it did):
         * the slot goes on as a new one, so every client's history stays sequential. */
        s->client = atomic_fetch_add(&b->next_client, 1);
    }
    if (s->pass != NULL) { /* --prefill or --final-read: not measured */
        bench_pass_next(s, status);
        return;
    }
    uint64_t measure_start = atomic_load(&b->measure_start_ns);
    bool measured = measure_start != 0 && s->start_ns >= measure_start && end <= b->measure_end_ns;
    if (measured) {
        int64_t lat = (int64_t)(end - s->start_ns);
        if (h->part_ops != NULL) {
            pthread_mutex_lock(&h->stat_lock);
        }
        hdr_record_value(h->hist, lat > 0 ? lat : 1);
        if (status == 0 || status == BFTKV_E_NOT_FOUND) {
            h->ops++;
            if (h->part_ops != NULL) {
                h->part_ops[s->part]++;
            }
        } else {
            h->errors++;
            if (status == BFTKV_E_TIMEOUT) {
                h->timeouts++;
            }
        }
        if (h->part_ops != NULL) {
            pthread_mutex_unlock(&h->stat_lock);
        }
    }
    if (b->rate > 0) { /* open loop: give the slot back */
        atomic_store(&s->busy, false);
        pthread_mutex_lock(&h->lock);
        h->free_slots[h->free_count++] = s;
        pthread_mutex_unlock(&h->lock);
        return;
    }
    if (atomic_load(&b->stop)) {
        atomic_store(&s->busy, false);
        atomic_fetch_sub(&h->active, 1);
        return;
    }
    bench_slot_prepare(s);
    s->start_ns = bench_now_ns();
    int rc = bench_slot_submit(s);
    if (rc != 0) {
        if (rc != BFTKV_E_FULL || b->history == NULL || !atomic_load(&b->history_full)) {
            bench_count_error(h);
        }
        atomic_fetch_sub(&h->active, 1);
    }
}

/* Open loop: one thread per handle submits on a fixed schedule. */
static void *bench_open_thread(void *arg)
{
    struct bench_handle *h = arg;
    struct bench *b = h->bench;
    double interval = 1e9 * (double)b->threads / b->rate;
    uint64_t t0 = b->run_start_ns;
    for (uint64_t i = 0;; i++) {
        uint64_t due = t0 + (uint64_t)((double)i * interval);
        if (due >= b->measure_end_ns || atomic_load(&b->stop)) {
            break;
        }
        uint64_t now = bench_now_ns();
        if (due > now) {
            /* Sleep at least a tick and then submit everything due in one burst: a
             * wake-up per request would cost more CPU than the request itself on a
             * small machine. The tick shows in the latencies (they run from the
             * intended start), at most BENCH_OPEN_TICK_NS. */
            uint64_t d = due - now < BENCH_OPEN_TICK_NS ? BENCH_OPEN_TICK_NS : due - now;
            struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
        pthread_mutex_lock(&h->lock);
        struct bench_slot *s = h->free_count > 0 ? h->free_slots[--h->free_count] : NULL;
        pthread_mutex_unlock(&h->lock);
        if (s == NULL) { /* every slot in flight: the request is late, charged when a slot frees */
            h->backlog++;
            i--;
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
            continue;
        }
        bench_slot_prepare(s);
        s->start_ns = due; /* intended start: corrects for coordinated omission */
        int rc = bench_slot_submit(s);
        if (rc != 0) {
            pthread_mutex_lock(&h->lock);
            h->free_slots[h->free_count++] = s;
            pthread_mutex_unlock(&h->lock);
            if (rc == BFTKV_E_FULL && b->history != NULL && atomic_load(&b->history_full)) {
                break;
            }
            bench_count_error(h);
        }
    }
    return NULL;
}

int bench_handles_open(struct bench *b, const char *config_path)
{
    uint32_t total = b->clients * b->outstanding;
    uint32_t per = (total + b->threads - 1) / b->threads;
    uint32_t lanes = b->rate > 0 ? b->cfg->client_lanes : per;
    if (lanes > b->cfg->client_lanes) {
        fprintf(stderr,
                "bftkv-bench: %u requests outstanding per handle but %s allows client_lanes %u: the rest wait in "
                "the handle's queue; raise client_lanes (at most 64) or --threads\n",
                lanes, b->config_path, b->cfg->client_lanes);
        lanes = b->cfg->client_lanes;
    }
    uint32_t client_ids = 0;
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        h->bench = b;
        h->index = t;
        h->lanes = (uint16_t)lanes;
        pthread_mutex_init(&h->lock, NULL);
        pthread_mutex_init(&h->stat_lock, NULL);
        if (hdr_init(1, 60000000000ll, 3, &h->hist) != 0) {
            return BFTKV_E_NOMEM;
        }
        if (b->partitions > 1 && (h->part_ops = calloc(b->partitions, sizeof *h->part_ops)) == NULL) {
            return BFTKV_E_NOMEM;
        }
        uint32_t nslots = b->rate > 0 ? BENCH_OPEN_SLOTS : per;
        h->nslots = nslots;
        h->slots = calloc(nslots, sizeof *h->slots);
        h->free_slots = calloc(nslots, sizeof *h->free_slots);
        if (h->slots == NULL || h->free_slots == NULL) {
            return BFTKV_E_NOMEM;
        }
        for (uint32_t i = 0; i < nslots; i++) {
            struct bench_slot *s = &h->slots[i];
            s->handle = h;
            s->client = client_ids++;
            s->record = BENCH_NO_RECORD;
            s->rng = bench_mix64(b->seed ^ bench_mix64(((uint64_t)(t + 1) << 32) | (i + 1))) | 1u;
            s->key = calloc(1, b->key_size);
            s->value = calloc(1, b->value_len + 1);
            if (s->key == NULL || s->value == NULL) {
                return BFTKV_E_NOMEM;
            }
            h->free_slots[h->free_count++] = s;
        }
        struct bftkv_client_options opt;
        bftkv_client_options_init(&opt);
        char err[512] = "";
        opt.lanes = (uint16_t)lanes;
        opt.queue_max = nslots + 16u > BFTKV_CLIENT_QUEUE_MAX ? BFTKV_CLIENT_QUEUE_MAX : nslots + 16u;
        opt.flags = b->stale_reads ? BFTKV_CLIENT_STALE_READS : 0u;
        opt.err = err;
        opt.errlen = sizeof err;
        uint16_t id = (uint16_t)(b->client_base + t);
        int rc = bftkv_client_open(config_path, id, &opt, &h->client);
        if (rc != 0) {
            fprintf(stderr, "bftkv-bench: client %u: %s\n", id, err[0] ? err : bftkv_strerror(rc));
            return rc;
        }
    }
    atomic_store(&b->next_client, client_ids);
    return 0;
}

/* Close the handles and free what bench_handles_open made, so a next phase opens
 * fresh ones (a closed-loop and an open-loop handle differ in lanes and slots). */
void bench_handles_close(struct bench *b)
{
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        if (h->client != NULL) {
            bftkv_client_close(h->client); /* in-flight callbacks end before it returns */
        }
        if (h->slots != NULL) {
            for (uint32_t i = 0; i < h->nslots; i++) {
                free(h->slots[i].key);
                free(h->slots[i].value);
            }
        }
        free(h->slots);
        free(h->free_slots);
        if (h->hist != NULL) {
            hdr_destroy(h->hist);
        }
        free(h->part_ops);
        pthread_mutex_destroy(&h->lock);
        pthread_mutex_destroy(&h->stat_lock);
        memset(h, 0, sizeof *h);
    }
}

static void bench_sleep_until(uint64_t t)
{
    for (;;) {
        uint64_t now = bench_now_ns();
        if (now >= t) {
            return;
        }
        uint64_t d = t - now;
        struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

static double bench_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

/* The window starts: sample the cluster and the handles. */
static void bench_window_open(struct bench *b, uint64_t dur)
{
    bench_sample(b, &b->before);
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bftkv_client_stats st = { .struct_size = sizeof st };
        if (bftkv_client_stats(b->handle[t].client, &st) == 0) {
            b->handle[t].dgrams_tx_before = st.datagrams_sent;
            b->handle[t].retrans_before = st.retransmissions;
            b->handle[t].fallbacks_before = st.readonly_fallbacks;
            b->handle[t].ro_timeouts_before = st.readonly_timeouts;
        }
    }
    b->cpu_self_before = bench_self_cpu();
    uint64_t ms = bench_now_ns();
    b->measure_end_ns = ms + dur;
    atomic_store(&b->measure_start_ns, ms);
}

/* Every request called back (closed loop: no slot active; open loop: every slot
 * free), or the deadline. */
static bool bench_drained(struct bench *b)
{
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        if (b->rate > 0) {
            pthread_mutex_lock(&h->lock);
            bool all = h->free_count == h->nslots;
            pthread_mutex_unlock(&h->lock);
            if (!all) {
                return false;
            }
        } else if (atomic_load(&h->active) > 0) {
            return false;
        }
    }
    return true;
}

int bench_run(struct bench *b)
{
    atomic_store(&b->stop, false);
    atomic_store(&b->measure_start_ns, 0);
    b->retransmissions = 0;
    b->readonly_fallbacks = 0;
    b->readonly_timeouts = 0;
    b->bench_dgrams_tx = 0;
    b->queued_max = 0;
    uint64_t warm = (uint64_t)(b->warmup * 1e9);
    uint64_t dur = (uint64_t)(b->duration * 1e9);
    b->run_start_ns = bench_now_ns();
    b->measure_end_ns = b->run_start_ns + warm + dur;
    if (warm == 0) { /* no warm-up: the window opens before the first request */
        bench_window_open(b, dur);
        b->run_start_ns = atomic_load(&b->measure_start_ns);
    }
    pthread_t threads[BENCH_THREADS_MAX];
    if (b->rate > 0) {
        for (uint32_t t = 0; t < b->threads; t++) {
            pthread_create(&threads[t], NULL, bench_open_thread, &b->handle[t]);
        }
    } else {
        for (uint32_t t = 0; t < b->threads; t++) {
            struct bench_handle *h = &b->handle[t];
            h->free_count = 0; /* the closed loop keeps every slot busy */
            for (uint32_t i = 0; i < h->nslots; i++) {
                struct bench_slot *s = &h->slots[i];
                atomic_fetch_add(&h->active, 1);
                bench_slot_prepare(s);
                s->start_ns = bench_now_ns();
                if (bench_slot_submit(s) != 0) {
                    atomic_fetch_sub(&h->active, 1);
                    bench_count_error(h);
                }
            }
        }
    }
    if (warm > 0) {
        bench_sleep_until(b->run_start_ns + warm);
        bench_window_open(b, dur);
    }
    uint64_t ms = atomic_load(&b->measure_start_ns);
    bench_sleep_until(b->measure_end_ns);
    b->measured_s = (double)(bench_now_ns() - ms) / 1e9;
    b->cpu_self_after = bench_self_cpu();
    bench_sample(b, &b->after);
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bftkv_client_stats st = { .struct_size = sizeof st };
        if (bftkv_client_stats(b->handle[t].client, &st) == 0 && st.queued > b->queued_max) {
            b->queued_max = st.queued;
        }
    }
    atomic_store(&b->stop, true);
    if (b->rate > 0) {
        for (uint32_t t = 0; t < b->threads; t++) {
            pthread_join(threads[t], NULL);
        }
    }
    /* Let outstanding requests finish: each is called back by the handle's timeout. */
    uint64_t drain_end = bench_now_ns() + (uint64_t)b->cfg->client_timeout_ms * 1000000ull + 1000000000ull;
    while (!bench_drained(b) && bench_now_ns() < drain_end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bftkv_client_stats st = { .struct_size = sizeof st };
        if (bftkv_client_stats(b->handle[t].client, &st) == 0) {
            b->bench_dgrams_tx += st.datagrams_sent - b->handle[t].dgrams_tx_before;
            b->retransmissions += st.retransmissions - b->handle[t].retrans_before;
            b->readonly_fallbacks += st.readonly_fallbacks - b->handle[t].fallbacks_before;
            b->readonly_timeouts += st.readonly_timeouts - b->handle[t].ro_timeouts_before;
        }
    }
    return b->final_read ? bench_final_read(b) : 0;
}
