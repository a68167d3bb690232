/* bftkv-bench: drives a running bftkv cluster through the client library and
 * measures throughput, latency, CPU per operation and datagrams per operation
 * (issue 6, DESIGN §8).
 *
 * Closed loop (default): C logical clients each keep up to P requests
 * outstanding; the C·P request slots are spread over T libbftkv handles (one
 * client id each: client-base .. client-base+T-1, lanes = ceil(C·P/T), at most the
 * config's client_lanes). Each slot lives in bftkv_submit callbacks: a result is
 * recorded and the slot's next request submitted from the handle's I/O thread.
 * Open loop (--rate R): each of T threads submits at R/T ops/s on a fixed
 * schedule; a latency runs from the intended start to the result, so a stall is
 * charged to every request it delayed (no coordinated omission).
 *
 * Every latency goes into an HDR histogram per handle (touched only by that
 * handle's I/O thread), merged at the end. CPU: user+sys of every replica
 * (/proc/PID/stat, PIDs from --cluster-dir's run/replica-I.pid) and of the bench
 * (getrusage) over the measured window. Datagrams: the replicas' stats
 * (bftkv_admin_stats as client id client-base+T, when the config allows it)
 * before and after, plus the bench's own handle counters.
 *
 * --load-points F1,F2,...: first the closed loop above (the "peak" phase), then
 * an open loop at each fraction Fi of the throughput that phase measured, each
 * with its own warm-up; every phase is reported (JSON: one "benchmarks" entry
 * each, named <name>/peak, <name>/load50, ...). Handles are reopened per phase.
 *
 * Output: a console table, JSON in Google Benchmark's layout or CSV (--format,
 * --out). --history FILE: one JSON line per measured operation (bounded by
 * BENCH_HISTORY_MAX) for an outside linearizability checker; values are written as
 * a 64-bit FNV-1a digest. Everything stops by itself: duration ≤ 3600 s.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static struct bench g_bench;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
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
static void bench_zipf_init(struct bench *b)
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

/* Fill the slot's next request: op, key and (for a PUT) value. */
static void bench_slot_prepare(struct bench_slot *s)
{
    const struct bench *b = s->handle->bench;
    uint64_t k = bench_key_pick(b, &s->rng);
    s->key_index = k;
    bench_key_format(b, k, s->key);
    s->op = bench_rng_unit(&s->rng) < b->read_ratio ? BFTKV_OP_GET : BFTKV_OP_PUT;
    if (s->op == BFTKV_OP_PUT && b->value_size > 0) {
        uint64_t v = bench_rng_next(&s->rng);
        for (size_t i = 0; i + 8 <= b->value_size; i += 8) {
            memcpy(s->value + i, &v, 8);
            v += 0x9e3779b97f4a7c15ull;
        }
        for (size_t i = b->value_size & ~(size_t)7; i < b->value_size; i++) {
            s->value[i] = (uint8_t)(v >> (8 * (i & 7)));
        }
    }
}

static void bench_callback(void *arg, int status, const void *val, size_t vlen);

static int bench_slot_submit(struct bench_slot *s)
{
    const struct bench *b = s->handle->bench;
    size_t vlen = s->op == BFTKV_OP_PUT ? b->value_size : 0;
    return bftkv_submit(s->handle->client, s->op, s->key, b->key_size, s->op == BFTKV_OP_PUT ? s->value : NULL,
                        vlen, bench_callback, s);
}

static void bench_history_add(struct bench_handle *h, const struct bench_slot *s, int status, const void *val,
                              size_t vlen, uint64_t end)
{
    struct bench *b = h->bench;
    uint64_t i = atomic_fetch_add(&b->history_used, 1);
    if (i >= b->history_cap) {
        return;
    }
    struct bench_history *r = &b->history[i];
    r->client = s->client;
    r->op = (uint8_t)s->op;
    r->key_index = s->key_index;
    if (s->op == BFTKV_OP_PUT) {
        r->digest = bench_fnv1a(s->value, b->value_size);
    } else {
        r->digest = status == 0 ? bench_fnv1a(val, vlen) : 0;
    }
    r->invoke_ns = s->start_ns;
    r->return_ns = end;
    r->status = status;
}

static void bench_callback(void *arg, int status, const void *val, size_t vlen)
{
    struct bench_slot *s = arg;
    struct bench_handle *h = s->handle;
    struct bench *b = h->bench;
    uint64_t end = bench_now_ns();
    uint64_t measure_start = atomic_load(&b->measure_start_ns);
    bool measured = measure_start != 0 && s->start_ns >= measure_start && end <= b->measure_end_ns;
    if (measured) {
        int64_t lat = (int64_t)(end - s->start_ns);
        hdr_record_value(h->hist, lat > 0 ? lat : 1);
        if (status == 0 || status == BFTKV_E_NOT_FOUND) {
            h->ops++;
        } else {
            h->errors++;
            if (status == BFTKV_E_TIMEOUT) {
                h->timeouts++;
            }
        }
        if (b->history != NULL) {
            bench_history_add(h, s, status, val, vlen, end);
        }
    }
    if (b->rate > 0) { /* open loop: give the slot back */
        pthread_mutex_lock(&h->lock);
        h->free_slots[h->free_count++] = s;
        pthread_mutex_unlock(&h->lock);
        return;
    }
    if (atomic_load(&b->stop)) {
        atomic_fetch_sub(&h->active, 1);
        return;
    }
    bench_slot_prepare(s);
    s->start_ns = bench_now_ns();
    if (bench_slot_submit(s) != 0) {
        h->errors++;
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
        s->client = (uint32_t)(h->index + b->threads * (i % (b->clients > 0 ? b->clients : 1)));
        bench_slot_prepare(s);
        s->start_ns = due; /* intended start: corrects for coordinated omission */
        if (bench_slot_submit(s) != 0) {
            pthread_mutex_lock(&h->lock);
            h->free_slots[h->free_count++] = s;
            pthread_mutex_unlock(&h->lock);
            h->errors++;
        }
    }
    return NULL;
}

static int bench_handles_open(struct bench *b, const char *config_path)
{
    uint32_t total = b->clients * b->outstanding;
    uint32_t per = (total + b->threads - 1) / b->threads;
    uint32_t lanes = per;
    if (b->rate > 0) {
        lanes = b->cfg->client_lanes;
    }
    if (lanes > b->cfg->client_lanes) {
        fprintf(stderr,
                "bftkv-bench: %u requests outstanding per handle but %s allows client_lanes %u: the rest wait in "
                "the handle's queue; raise client_lanes (at most 64) or --threads\n",
                lanes, b->config_path, b->cfg->client_lanes);
        lanes = b->cfg->client_lanes;
    }
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        h->bench = b;
        h->index = t;
        pthread_mutex_init(&h->lock, NULL);
        if (hdr_init(1, 60000000000ll, 3, &h->hist) != 0) {
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
            s->client = t * per + i;
            s->rng = 0x2545f4914f6cdd1dull ^ ((uint64_t)(t + 1) << 32) ^ (i + 1);
            s->key = calloc(1, b->key_size);
            s->value = calloc(1, b->value_size + 1);
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
        opt.err = err;
        opt.errlen = sizeof err;
        uint16_t id = (uint16_t)(b->client_base + t);
        int rc = bftkv_client_open(config_path, id, &opt, &h->client);
        if (rc != 0) {
            fprintf(stderr, "bftkv-bench: client %u: %s\n", id, err[0] ? err : bftkv_strerror(rc));
            return rc;
        }
    }
    return 0;
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

static int bench_run(struct bench *b)
{
    atomic_store(&b->stop, false);
    atomic_store(&b->measure_start_ns, 0);
    b->retransmissions = 0;
    b->readonly_fallbacks = 0;
    b->bench_dgrams_tx = 0;
    b->run_start_ns = bench_now_ns();
    uint64_t warm = (uint64_t)(b->warmup * 1e9);
    uint64_t dur = (uint64_t)(b->duration * 1e9);
    b->measure_end_ns = b->run_start_ns + warm + dur;
    pthread_t threads[BENCH_THREADS_MAX];
    if (b->rate > 0) {
        for (uint32_t t = 0; t < b->threads; t++) {
            pthread_create(&threads[t], NULL, bench_open_thread, &b->handle[t]);
        }
    } else {
        for (uint32_t t = 0; t < b->threads; t++) {
            struct bench_handle *h = &b->handle[t];
            for (uint32_t i = 0; i < h->nslots; i++) {
                struct bench_slot *s = &h->slots[i];
                atomic_fetch_add(&h->active, 1);
                bench_slot_prepare(s);
                s->start_ns = bench_now_ns();
                if (bench_slot_submit(s) != 0) {
                    atomic_fetch_sub(&h->active, 1);
                    h->errors++;
                }
            }
        }
    }
    bench_sleep_until(b->run_start_ns + warm);
    bench_sample(b, &b->before);
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bftkv_client_stats st;
        if (bftkv_client_stats(b->handle[t].client, &st) == 0) {
            b->handle[t].dgrams_tx_before = st.datagrams_sent;
            b->handle[t].retrans_before = st.retransmissions;
            b->handle[t].fallbacks_before = st.readonly_fallbacks;
        }
    }
    b->cpu_self_before = bench_self_cpu();
    uint64_t ms = bench_now_ns();
    atomic_store(&b->measure_start_ns, ms);
    b->measure_end_ns = ms + dur;
    bench_sleep_until(b->measure_end_ns);
    b->measured_s = (double)(bench_now_ns() - ms) / 1e9;
    b->cpu_self_after = bench_self_cpu();
    bench_sample(b, &b->after);
    atomic_store(&b->stop, true);
    if (b->rate > 0) {
        for (uint32_t t = 0; t < b->threads; t++) {
            pthread_join(threads[t], NULL);
        }
    }
    /* Let outstanding requests finish (bounded), then close. */
    uint64_t drain_end = bench_now_ns() + 2000000000ull;
    for (uint32_t t = 0; t < b->threads; t++) {
        while (b->rate <= 0 && atomic_load(&b->handle[t].active) > 0 && bench_now_ns() < drain_end) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bftkv_client_stats st;
        if (bftkv_client_stats(b->handle[t].client, &st) == 0) {
            b->bench_dgrams_tx += st.datagrams_sent - b->handle[t].dgrams_tx_before;
            b->retransmissions += st.retransmissions - b->handle[t].retrans_before;
            b->readonly_fallbacks += st.readonly_fallbacks - b->handle[t].fallbacks_before;
        }
    }
    return 0;
}

/* Close the handles and free what bench_handles_open made, so a next phase opens
 * fresh ones (a closed-loop and an open-loop handle differ in lanes and slots). */
static void bench_handles_close(struct bench *b)
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
        pthread_mutex_destroy(&h->lock);
        memset(h, 0, sizeof *h);
    }
}

/* "0.5,0.9" into b->load_point; each in (0, 2]. */
static bool bench_parse_load_points(struct bench *b, const char *arg)
{
    b->load_points = 0;
    const char *p = arg;
    while (*p != '\0') {
        char *end = NULL;
        errno = 0;
        double v = strtod(p, &end);
        if (errno != 0 || end == p || !(v > 0 && v <= 2) || b->load_points >= BENCH_LOAD_POINTS_MAX) {
            return false;
        }
        b->load_point[b->load_points++] = v;
        if (*end == ',') {
            end++;
        } else if (*end != '\0') {
            return false;
        }
        p = end;
    }
    return b->load_points > 0;
}

/* The phases: one run, or the peak and then each load point. */
static int bench_phases_run(struct bench *b, const char *handle_config)
{
    if (bench_handles_open(b, handle_config) != 0) {
        return 2;
    }
    bench_run(b);
    bench_lag_warn(b, b->load_points > 0 ? "peak" : "run");
    int rc = bench_phase_collect(b, b->load_points > 0 ? "/peak" : NULL, 0);
    bench_handles_close(b);
    if (rc != 0 || b->load_points == 0) {
        return rc;
    }
    double peak = b->phase[0].tput;
    if (peak < 1) {
        fprintf(stderr, "bftkv-bench: the peak phase completed no operations; no load points\n");
        return 1;
    }
    for (uint32_t i = 0; i < b->load_points; i++) {
        b->rate = b->load_point[i] * peak;
        fprintf(stderr, "bftkv-bench: load point %g of the peak %.0f ops/s: open loop at %.0f ops/s\n",
                b->load_point[i], peak, b->rate);
        if (bench_handles_open(b, handle_config) != 0) {
            return 2;
        }
        bench_run(b);
        char suffix[32];
        snprintf(suffix, sizeof suffix, "/load%g", b->load_point[i] * 100);
        bench_lag_warn(b, suffix + 1);
        rc = bench_phase_collect(b, suffix, b->load_point[i]);
        bench_handles_close(b);
        if (rc != 0) {
            return rc;
        }
    }
    b->rate = 0;
    return 0;
}

static int bench_usage(const char *msg)
{
    if (msg != NULL) {
        fprintf(stderr, "bftkv-bench: %s\n", msg);
    }
    fprintf(stderr,
            "usage: bftkv-bench --config FILE [--duration S] [--warmup S] [--clients C] [--outstanding P]\n"
            "         [--threads T] [--rate R] [--keys K] [--key-size B] [--value-size B] [--read-ratio F]\n"
            "         [--readonly] [--zipf THETA] [--format table|json|csv] [--out FILE] [--history FILE]\n"
            "         [--client-base ID] [--cluster-dir DIR] [--label TEXT] [--load-points F,F...]\n"
            "Closed loop unless --rate (open loop, ops/s). GETs are ordered unless --readonly (the read-only\n"
            "fast path; a client-side setting). --load-points 0.5,0.9: the closed-loop peak, then an open loop\n"
            "at each fraction of it, all reported (<name>/peak, <name>/load50, ...). Handles use client ids\n"
            "client-base..client-base+T-1, stats client-base+T. Exit 0 ok, 1 run failed, 2 usage/config.\n");
    return 2;
}

static bool bench_parse_num(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    struct bench *b = &g_bench;
    b->duration = 5;
    b->warmup = 1;
    b->clients = 16;
    b->outstanding = 1;
    b->threads = 0;
    b->keys = 100000;
    b->key_size = 16;
    b->value_size = 0;
    b->read_ratio = 0.0;
    b->format = "table";
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'},      {"duration", required_argument, 0, 'd'},
        {"warmup", required_argument, 0, 'w'},      {"clients", required_argument, 0, 'C'},
        {"outstanding", required_argument, 0, 'P'}, {"threads", required_argument, 0, 'T'},
        {"rate", required_argument, 0, 'r'},        {"keys", required_argument, 0, 'k'},
        {"key-size", required_argument, 0, 'K'},    {"value-size", required_argument, 0, 'V'},
        {"read-ratio", required_argument, 0, 'R'},  {"readonly", no_argument, 0, 'o'},
        {"zipf", required_argument, 0, 'z'},        {"format", required_argument, 0, 'f'},
        {"out", required_argument, 0, 'O'},         {"history", required_argument, 0, 'H'},
        {"client-base", required_argument, 0, 'b'}, {"cluster-dir", required_argument, 0, 'D'},
        {"label", required_argument, 0, 'L'},       {"help", no_argument, 0, 'h'},
        {"load-points", required_argument, 0, 'p'},
        {0, 0, 0, 0}};
    int c;
    double v = 0;
    bool ok = true;
    const char *bad = NULL;
    while (ok && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            b->config_path = optarg;
            break;
        case 'd':
            ok = bench_parse_num(optarg, 0.1, 3600, &b->duration);
            bad = "--duration: 0.1..3600";
            break;
        case 'w':
            ok = bench_parse_num(optarg, 0, 600, &b->warmup);
            bad = "--warmup: 0..600";
            break;
        case 'C':
            ok = bench_parse_num(optarg, 1, 65536, &v);
            bad = "--clients: 1..65536";
            b->clients = (uint32_t)v;
            break;
        case 'P':
            ok = bench_parse_num(optarg, 1, 1024, &v);
            bad = "--outstanding: 1..1024";
            b->outstanding = (uint32_t)v;
            break;
        case 'T':
            ok = bench_parse_num(optarg, 1, BENCH_THREADS_MAX, &v);
            bad = "--threads: 1..64";
            b->threads = (uint32_t)v;
            break;
        case 'r':
            ok = bench_parse_num(optarg, 1, 1e8, &b->rate);
            bad = "--rate: 1..1e8";
            break;
        case 'k':
            ok = bench_parse_num(optarg, 1, 1e8, &v);
            bad = "--keys: 1..1e8";
            b->keys = (uint64_t)v;
            break;
        case 'K':
            ok = bench_parse_num(optarg, 8, BFTKV_KEY_MAX, &v);
            bad = "--key-size: 8..key max";
            b->key_size = (size_t)v;
            break;
        case 'V':
            ok = bench_parse_num(optarg, 0, BFTKV_VALUE_MAX, &v);
            bad = "--value-size: 0..value max";
            b->value_size = (size_t)v;
            break;
        case 'R':
            ok = bench_parse_num(optarg, 0, 1, &b->read_ratio);
            bad = "--read-ratio: 0..1";
            break;
        case 'o':
            b->readonly = true;
            break;
        case 'z':
            ok = bench_parse_num(optarg, 0, 0.999, &b->zipf);
            bad = "--zipf: 0..0.999";
            break;
        case 'f':
            b->format = optarg;
            break;
        case 'O':
            b->out_path = optarg;
            break;
        case 'H':
            b->history_path = optarg;
            break;
        case 'b':
            ok = bench_parse_num(optarg, 0, BFTKV_CLIENTS_MAX - 1, &v);
            bad = "--client-base";
            b->client_base = (uint32_t)v;
            break;
        case 'D':
            b->cluster_dir = optarg;
            break;
        case 'L':
            b->label = optarg;
            break;
        case 'p':
            ok = bench_parse_load_points(b, optarg);
            bad = "--load-points: up to 8 fractions in (0, 2], comma-separated";
            break;
        case 'h':
            bench_usage(NULL);
            return 0;
        default:
            return bench_usage(NULL);
        }
    }
    if (!ok) {
        return bench_usage(bad);
    }
    if (b->config_path == NULL) {
        return bench_usage("--config FILE is required");
    }
    if (strcmp(b->format, "table") != 0 && strcmp(b->format, "json") != 0 && strcmp(b->format, "csv") != 0) {
        return bench_usage("--format: table, json or csv");
    }
    if (b->load_points > 0 && b->rate > 0) {
        return bench_usage("--load-points measures the peak in a closed loop: no --rate");
    }
    if (b->threads == 0) {
        uint32_t total = b->clients * b->outstanding;
        b->threads = total <= 64 ? 1 : (total + 63) / 64;
        if (b->threads > BENCH_THREADS_MAX) {
            b->threads = BENCH_THREADS_MAX;
        }
    }
    if (b->rate <= 0 && b->threads > b->clients * b->outstanding) {
        b->threads = b->clients * b->outstanding;
    }
    if (b->zipf > 0) {
        bench_zipf_init(b);
    }
    int rc = bench_context_load(b);
    if (rc != 0) {
        return 2;
    }
    /* The read path is the client's choice (readonly_fast_path is read by the
     * client only): the handles open a copy of the config saying what --readonly
     * asks for. */
    const char *handle_config = b->config_path;
    char tmp_config[] = "/tmp/bftkv-bench-XXXXXX";
    bool tmp_made = false;
    if (b->cfg->readonly_fast_path != b->readonly) {
        b->cfg->readonly_fast_path = b->readonly;
        int fd = mkstemp(tmp_config);
        FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (fp == NULL || bftkv_config_write(b->cfg, fp) != 0 || fclose(fp) != 0) {
            fprintf(stderr, "bftkv-bench: cannot write a config copy in /tmp\n");
            return 1;
        }
        tmp_made = true;
        handle_config = tmp_config;
    }
    if (b->client_base + b->threads > b->cfg->clients) {
        fprintf(stderr, "bftkv-bench: needs client ids %u..%u; %s allows 0..%u (tools/cluster create --clients)\n",
                b->client_base, b->client_base + b->threads - 1, b->config_path, b->cfg->clients - 1u);
        return 2;
    }
    if (b->history_path != NULL) {
        b->history_cap = BENCH_HISTORY_MAX;
        b->history = calloc(b->history_cap, sizeof *b->history);
        if (b->history == NULL) {
            fprintf(stderr, "bftkv-bench: no memory for the history\n");
            return 1;
        }
    }
    rc = bench_phases_run(b, handle_config);
    if (tmp_made) {
        unlink(tmp_config);
    }
    if (rc == 2 && b->phases == 0) {
        return 2;
    }
    int rrc = bench_report(b);
    return rc == 0 && rrc == 0 ? 0 : 1;
}
