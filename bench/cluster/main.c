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
 * the replicas' stats (bftkv_admin_stats as client id client-base+T, when the
 * config allows it) before and after, plus the bench's own handle counters. The
 * last line says what limited the run (report.c).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

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
            "         [--read-ratio F] [--del-ratio F] [--readonly] [--zipf THETA] [--seed N]\n"
            "         [--format table|json|csv] [--out FILE] [--history FILE [--final-read]]\n"
            "         [--client-base ID] [--label TEXT] [--load-points F,F...]\n"
            "Closed loop unless --rate (open loop, ops/s). Without --clients/--threads: every lane of the\n"
            "config's client ids busy (T = spare ids - 1, at most 8; C = T x client_lanes, at most 512).\n"
            "GETs are ordered unless --readonly (the read-only fast path; a client-side setting). Ops:\n"
            "--read-ratio GETs, --del-ratio DELs, the rest PUTs. --history FILE: every operation, one JSON\n"
            "line each (docs/benchmarks.md); values then carry a write id (at least 16 bytes);\n"
            "--final-read: then GET every key touched. --load-points 0.5,0.9: the closed-loop peak, then an\n"
            "open loop at each fraction of it, all reported (<name>/peak, <name>/load50, ...). Handles use\n"
            "client ids client-base..client-base+T-1, stats client-base+T. Exit 0 ok, 1 run failed,\n"
            "2 usage/config.\n");
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

static int bench_options(struct bench *b, int argc, char **argv)
{
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
        {"load-points", required_argument, 0, 'p'}, {"del-ratio", required_argument, 0, 'x'},
        {"seed", required_argument, 0, 's'},        {"final-read", no_argument, 0, 'F'},
        {0, 0, 0, 0}};
    int c;
    double v = 0;
    bool ok = true, seeded = false;
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
            b->clients_given = true;
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
            b->threads_given = true;
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
        case 'x':
            ok = bench_parse_num(optarg, 0, 1, &b->del_ratio);
            bad = "--del-ratio: 0..1";
            break;
        case 's':
            ok = bench_parse_u64(optarg, &b->seed);
            bad = "--seed: an unsigned 64-bit number";
            seeded = true;
            break;
        case 'F':
            b->final_read = true;
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
    if (b->final_read && b->history_path == NULL) {
        return bench_usage("--final-read is part of a --history");
    }
    if (b->history_path != NULL && b->load_points > 0) {
        return bench_usage("--history records one phase: not with --load-points");
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
