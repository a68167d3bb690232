/* bftkv-bench: drives a running bftkv cluster through the client library and
 * measures throughput, latency, CPU per operation and datagrams per operation
 * (docs/benchmarks.md "Cluster benchmarks").
 *
 * Closed loop (default): C logical clients each keep up to P requests
 * outstanding; the C·P request slots are spread over T libbftkv handles (one
 * client id each: client-base .. client-base+T-1, lanes = ceil(C·P/T), at most the
 * config's client_lanes). Without --clients and --threads the bench fills the
 * lanes the config offers: T = the client ids to spare (one stays for stats), at
 * most 8, and C = T × client_lanes, at most 512. Open loop (--rate R): each of T
 * threads submits at R/T ops/s on a fixed schedule (load.c).
 *
 * Every latency goes into an HDR histogram per handle (touched only by that
 * handle's I/O thread), merged at the end. CPU: user+sys of every replica
 * (/proc/PID/stat, PIDs from --cluster-dir's run/replica-I.pid) and of the bench
 * (getrusage) over the measured window, and the machine's (/proc/stat). Datagrams:
 * the replicas' stats (bftkv_client_replica_stats as client id client-base+T, when the
 * config allows it) before and after, plus the bench's own handle counters. The
 * last line says what limited the run (report.c).
 *
 * Values: every PUT writes --value-size bytes (16 by default) that no earlier PUT
 * of the run wrote (a write id, history.c), so each PUT changes the store;
 * --value-size 0 is the "0/0" workload, labelled so in every output: once a key
 * exists, an empty value over an empty value changes nothing. --prefill writes
 * every key once before the warm-up (not measured), so GETs find values and PUTs
 * overwrite rather than insert.
 *
 * --load-points F1,F2,...: first the closed loop above (the "peak" phase), then
 * an open loop at each fraction Fi of the throughput that phase measured, each
 * with its own warm-up; every phase is reported (JSON: one "benchmarks" entry
 * each, named <name>/peak, <name>/load50, ...). Handles are reopened per phase.
 *
 * Output: a console table, JSON in Google Benchmark's layout or CSV (--format,
 * --out). --history FILE: every operation invoked, for a linearizability checker
 * (history.c). --seed fixes each slot's sequence of keys and operations (default
 * random, printed). Everything stops by itself: duration <= 3600 s, drains and
 * final reads bounded by the client timeout.
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/assert.h"

static struct bench g_bench;

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
    if (b->prefill && bench_prefill(b) != 0) {
        bench_handles_close(b);
        return 1;
    }
    int run_rc = bench_run(b); /* 1: the final reads did not all finish */
    bench_lag_warn(b, b->load_points > 0 ? "peak" : "run");
    int rc = bench_phase_collect(b, b->load_points > 0 ? "/peak" : NULL, 0);
    bench_handles_close(b);
    if (rc != 0 || b->load_points == 0) {
        return rc != 0 ? rc : run_rc;
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
            "usage: bftkv-bench --config FILE [--cluster-dir DIR] [--duration S] [--warmup S] [--clients C]\n"
            "         [--outstanding P] [--threads T] [--rate R] [--keys K] [--key-size B] [--value-size B]\n"
            "         [--read-ratio F] [--del-ratio F] [--readonly | --stale-reads] [--zipf THETA] [--seed N]\n"
            "         [--format table|json|csv] [--out FILE] [--history FILE [--final-read]]\n"
            "         [--client-base ID] [--label TEXT] [--load-points F,F...] [--prefill]\n"
            "Closed loop unless --rate (open loop, ops/s). Without --clients/--threads: every lane of the\n"
            "config's client ids busy (T = spare ids - 1, at most 8; C = T x client_lanes, at most 512).\n"
            "GETs are ordered unless --readonly (the read-only fast path; a client-side setting) or\n"
            "--stale-reads (one replica's answer, no quorum: possibly stale or wrong; not with --history). Ops:\n"
            "--read-ratio GETs, --del-ratio DELs, the rest PUTs. Every PUT writes a fresh value of\n"
            "--value-size bytes (default 16); --value-size 0 is the 0/0 workload (empty values: once a key\n"
            "exists a PUT changes nothing), labelled so. --prefill: write every key of --keys once first\n"
            "(not measured). --history FILE: every operation, one JSON line each (docs/benchmarks.md);\n"
            "values then carry a write id (at least 16 bytes); --final-read: then GET every key touched.\n"
            "--load-points 0.5,0.9: the closed-loop peak, then an open loop at each fraction of it, all\n"
            "reported (<name>/peak, <name>/load50, ...). Handles use client ids client-base..client-base+T-1,\n"
            "stats client-base+T. Exit 0 ok, 1 run failed, 2 usage/config.\n");
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

static bool bench_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-') {
        return false;
    }
    *out = v;
    return true;
}

/* Handles and clients not given: see the file's opening comment. */
static void bench_pick_shape(struct bench *b)
{
    uint32_t lanes = b->cfg->client_lanes;
    uint32_t spare = b->cfg->clients > b->client_base ? b->cfg->clients - b->client_base : 0;
    uint32_t ids = spare >= 2 ? spare - 1 : 1; /* one id stays for the stats client */
    if (ids > BENCH_THREADS_MAX) {
        ids = BENCH_THREADS_MAX;
    }
    if (!b->threads_given && !b->clients_given) {
        b->threads = ids < BENCH_HANDLES_DEFAULT ? ids : BENCH_HANDLES_DEFAULT;
        uint32_t c = b->threads * lanes / b->outstanding;
        b->clients = c < 1 ? 1 : c > BENCH_CLIENTS_DEFAULT ? BENCH_CLIENTS_DEFAULT : c;
    } else if (!b->threads_given) {
        uint32_t total = b->clients * b->outstanding;
        b->threads = (total + lanes - 1) / lanes;
        b->threads = b->threads < 1 ? 1 : b->threads > ids ? ids : b->threads;
    } else if (!b->clients_given) {
        uint32_t c = b->threads * lanes / b->outstanding;
        b->clients = c < 1 ? 1 : c > BENCH_CLIENTS_DEFAULT ? BENCH_CLIENTS_DEFAULT : c;
    }
    if (b->rate <= 0 && b->threads > b->clients * b->outstanding) {
        b->threads = b->clients * b->outstanding;
    }
}

/* The read path is the client's choice (readonly_fast_path is read by the client
 * only): the handles open a copy of the config saying what --readonly asks for.
 * Returns the path to open, tmp (a mkstemp template) when a copy was made. */
static const char *bench_handle_config(struct bench *b, char *tmp, bool *made)
{
    *made = false;
    if (b->cfg->readonly_fast_path == b->readonly) {
        return b->config_path;
    }
    b->cfg->readonly_fast_path = b->readonly;
    int fd = mkstemp(tmp);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fp == NULL || bftkv_config_write(b->cfg, fp) != 0 || fclose(fp) != 0) {
        fprintf(stderr, "bftkv-bench: cannot write a config copy in /tmp\n");
        return NULL;
    }
    *made = true;
    return tmp;
}

/* Every option, once. Most only set a field of struct bench: a text (the
 * argument), a flag (true), or a number in [lo, hi] -- a double, or an unsigned
 * integer of the field's width; bad is the message when the number is not one.
 * OPT_CALL options take an argument bench_options handles itself, OPT_HELP none. */
enum bench_opt_kind { OPT_TEXT, OPT_FLAG, OPT_REAL, OPT_UINT, OPT_CALL, OPT_HELP };

struct bench_opt {
    const char *name;
    int c;
    enum bench_opt_kind kind;
    size_t offset;
    size_t width;
    double lo, hi;
    const char *bad;
};

#define BENCH_FIELD(f) offsetof(struct bench, f), sizeof(((struct bench *)0)->f)
#define OPT_NUM(name, c, f, lo, hi, bad)                                                                          \
    {name, c, _Generic(((struct bench *)0)->f, double: OPT_REAL, default: OPT_UINT), BENCH_FIELD(f), lo, hi, bad}

static const struct bench_opt bench_opts[] = {
    {"config", 'c', OPT_TEXT, BENCH_FIELD(config_path), 0, 0, NULL},
    {"format", 'f', OPT_TEXT, BENCH_FIELD(format), 0, 0, NULL},
    {"out", 'O', OPT_TEXT, BENCH_FIELD(out_path), 0, 0, NULL},
    {"history", 'H', OPT_TEXT, BENCH_FIELD(history_path), 0, 0, NULL},
    {"cluster-dir", 'D', OPT_TEXT, BENCH_FIELD(cluster_dir), 0, 0, NULL},
    {"label", 'L', OPT_TEXT, BENCH_FIELD(label), 0, 0, NULL},
    {"final-read", 'F', OPT_FLAG, BENCH_FIELD(final_read), 0, 0, NULL},
    {"readonly", 'o', OPT_FLAG, BENCH_FIELD(readonly), 0, 0, NULL},
    {"stale-reads", 'S', OPT_FLAG, BENCH_FIELD(stale_reads), 0, 0, NULL},
    {"prefill", 'I', OPT_FLAG, BENCH_FIELD(prefill), 0, 0, NULL},
    OPT_NUM("duration", 'd', duration, 0.1, 3600, "--duration: 0.1..3600"),
    OPT_NUM("warmup", 'w', warmup, 0, 600, "--warmup: 0..600"),
    OPT_NUM("clients", 'C', clients, 1, 65536, "--clients: 1..65536"),
    OPT_NUM("outstanding", 'P', outstanding, 1, 1024, "--outstanding: 1..1024"),
    OPT_NUM("threads", 'T', threads, 1, BENCH_THREADS_MAX, "--threads: 1..64"),
    OPT_NUM("rate", 'r', rate, 1, 1e8, "--rate: 1..1e8"),
    OPT_NUM("keys", 'k', keys, 1, 1e8, "--keys: 1..1e8"),
    OPT_NUM("key-size", 'K', key_size, 8, BFTKV_KEY_MAX, "--key-size: 8..key max"),
    OPT_NUM("value-size", 'V', value_size, 0, BFTKV_VALUE_MAX, "--value-size: 0..value max"),
    OPT_NUM("read-ratio", 'R', read_ratio, 0, 1, "--read-ratio: 0..1"),
    OPT_NUM("del-ratio", 'x', del_ratio, 0, 1, "--del-ratio: 0..1"),
    OPT_NUM("zipf", 'z', zipf, 0, 0.999, "--zipf: 0..0.999"),
    OPT_NUM("client-base", 'b', client_base, 0, BFTKV_CLIENTS_MAX - 1, "--client-base"),
    {"seed", 's', OPT_CALL, 0, 0, 0, 0, "--seed: an unsigned 64-bit number"},
    {"load-points", 'p', OPT_CALL, 0, 0, 0, 0, "--load-points: up to 8 fractions in (0, 2], comma-separated"},
    {"help", 'h', OPT_HELP, 0, 0, 0, 0, NULL},
};

#undef OPT_NUM
#undef BENCH_FIELD

/* Apply option o with argument arg to b; false (o->bad says why) for a bad number. */
static bool bench_opt_set(struct bench *b, const struct bench_opt *o, const char *arg)
{
    uint8_t *at = (uint8_t *)b + o->offset;
    double v;
    switch (o->kind) {
    case OPT_TEXT:
        BFTKV_ASSERT(o->width == sizeof arg);
        memcpy(at, &arg, sizeof arg);
        return true;
    case OPT_FLAG:
        BFTKV_ASSERT(o->width == sizeof(bool));
        *(bool *)(void *)at = true;
        return true;
    case OPT_REAL:
        BFTKV_ASSERT(o->width == sizeof v);
        if (!bench_parse_num(arg, o->lo, o->hi, &v))
            return false;
        memcpy(at, &v, sizeof v);
        return true;
    case OPT_UINT:
        if (!bench_parse_num(arg, o->lo, o->hi, &v))
            return false;
        if (o->width == sizeof(uint32_t)) {
            uint32_t u = (uint32_t)v;
            memcpy(at, &u, sizeof u);
        } else {
            BFTKV_ASSERT(o->width == sizeof(uint64_t));
            uint64_t u = (uint64_t)v;
            memcpy(at, &u, sizeof u);
        }
        return true;
    case OPT_CALL:
    case OPT_HELP:
        break;
    }
    BFTKV_ASSERT(0); /* bench_options handles these */
    return false;
}

#define BENCH_OPTS (sizeof bench_opts / sizeof bench_opts[0])

static int bench_options(struct bench *b, int argc, char **argv)
{
    struct option opts[BENCH_OPTS + 1];
    memset(opts, 0, sizeof opts);
    for (size_t i = 0; i < BENCH_OPTS; i++) {
        bool arg = bench_opts[i].kind != OPT_FLAG && bench_opts[i].kind != OPT_HELP;
        opts[i] = (struct option){bench_opts[i].name, arg ? required_argument : no_argument, NULL, bench_opts[i].c};
    }
    int c;
    bool ok = true, seeded = false;
    const char *bad = NULL;
    while (ok && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const struct bench_opt *o = NULL;
        for (size_t i = 0; i < BENCH_OPTS && o == NULL; i++) {
            o = bench_opts[i].c == c ? &bench_opts[i] : NULL;
        }
        if (o != NULL && o->kind != OPT_CALL && o->kind != OPT_HELP) {
            ok = bench_opt_set(b, o, optarg);
            bad = o->bad;
            b->clients_given |= c == 'C';
            b->threads_given |= c == 'T';
            continue;
        }
        bad = o != NULL ? o->bad : NULL;
        switch (c) {
        case 's':
            ok = bench_parse_u64(optarg, &b->seed);
            seeded = true;
            break;
        case 'p':
            ok = bench_parse_load_points(b, optarg);
            break;
        case 'h':
            bench_usage(NULL);
            return 1;
        default:
            return bench_usage(NULL);
        }
    }
    if (!ok) {
        return bench_usage(bad);
    }
    if (optind < argc) {
        return bench_usage("unexpected arguments");
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
    if (b->read_ratio + b->del_ratio > 1.0 + 1e-9) {
        return bench_usage("--read-ratio + --del-ratio: at most 1");
    }
    if (b->stale_reads && b->history_path != NULL) {
        return bench_usage("--stale-reads are not linearizable by design: a --history of them is no check");
    }
    if (b->stale_reads && b->readonly) {
        return bench_usage("--stale-reads or --readonly: one read path");
    }
    if (b->final_read && b->history_path == NULL) {
        return bench_usage("--final-read is part of a --history");
    }
    if (b->history_path != NULL && b->load_points > 0) {
        return bench_usage("--history records one phase: not with --load-points");
    }
    if (b->history_path != NULL && b->prefill && b->keys > BENCH_HISTORY_MAX) {
        return bench_usage("--prefill with --history: at most 4194304 --keys");
    }
    if (!seeded && getrandom(&b->seed, sizeof b->seed, 0) != (ssize_t)sizeof b->seed) {
        b->seed = bench_mix64(bench_now_ns() ^ ((uint64_t)getpid() << 32));
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench *b = &g_bench;
    b->duration = 5;
    b->warmup = 1;
    b->clients = 16;
    b->outstanding = 1;
    b->keys = 100000;
    b->key_size = 16;
    b->value_size = BENCH_VALUE_SIZE_DEFAULT;
    b->format = "table";
    int rc = bench_options(b, argc, argv);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    fprintf(stderr, "bftkv-bench: seed %" PRIu64 "\n", b->seed);
    if (b->zipf > 0) {
        bench_zipf_init(b);
    }
    if (bench_context_load(b) != 0) {
        return 2;
    }
    bench_pick_shape(b);
    if (b->client_base + b->threads > b->cfg->clients) {
        fprintf(stderr, "bftkv-bench: needs client ids %u..%u; %s allows 0..%u (tools/cluster create --clients)\n",
                b->client_base, b->client_base + b->threads - 1, b->config_path, b->cfg->clients - 1u);
        return 2;
    }
    bench_admin_load(b);
    if (bench_history_init(b) != 0) {
        fprintf(stderr, "bftkv-bench: no memory for the history\n");
        return 1;
    }
    char tmp_config[] = "/tmp/bftkv-bench-XXXXXX";
    bool tmp_made = false;
    const char *handle_config = bench_handle_config(b, tmp_config, &tmp_made);
    if (handle_config == NULL) {
        return 1;
    }
    rc = bench_phases_run(b, handle_config);
    if (tmp_made) {
        unlink(tmp_config);
    }
    if (rc == 2 && b->phases == 0) {
        return 2;
    }
    int rrc = bench_report(b);
    bench_history_free(b);
    return rc == 0 && rrc == 0 ? 0 : 1;
}
