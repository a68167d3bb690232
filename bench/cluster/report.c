/* bftkv-bench's context and results: loads the cluster config and the admin
 * client's keys, finds the replica PIDs (--cluster-dir), samples the replicas'
 * CPU (/proc/PID/stat) and datagram counters (bftkv_client_replica_stats), and writes the
 * result as a console table, JSON in Google Benchmark's layout
 * ({"context": {...}, "benchmarks": [{...}]}) or CSV, plus the history file.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/pbft.h"
#include "cluster/cluster.h"


int bench_context_load(struct bench *b)
{
    char err[512];
    if (sodium_init() < 0) {
        fprintf(stderr, "bftkv-bench: libsodium cannot initialise\n");
        return 1;
    }
    int rc = bftkv_config_load(b->config_path, &b->cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bftkv-bench: %s\n", err);
        return rc;
    }
    if (cluster_deployment_is(b->cfg)) {
        /* A deployment (the handles route by key, client/client_route.c): the
         * figures count nodes as the replicas (run/replica-I.pid is node I's),
         * and the allow-list is the map's. */
        struct cluster_map *map = NULL;
        rc = cluster_deployment_open(b->cfg, &map, err, sizeof err);
        if (rc != 0) {
            fprintf(stderr, "bftkv-bench: %s\n", err);
            return rc;
        }
        b->cfg->n = map->m;
        b->cfg->f = map->params.f;
        b->cfg->clients = map->clients;
        b->cfg->clients_allowed = map->clients_allowed;
        for (uint16_t c = 0; c < map->clients; c++)
            b->cfg->client[c] = map->client[c];
        fprintf(stderr, "bftkv-bench: deployment of %u nodes, R = %u, P = %u partitions (N below: nodes)\n", map->m,
                map->params.rf, map->params.partitions);
        b->partitions = map->params.partitions;
        b->map = map; /* each key's partition, for the per-partition throughput */
    }
    for (uint32_t i = 0; i < BENCH_REPLICAS_MAX; i++) {
        b->replica_pid[i] = 0;
    }
    if (b->cluster_dir != NULL) {
        for (uint32_t i = 0; i < b->cfg->n && i < BENCH_REPLICAS_MAX; i++) {
            char path[1024];
            snprintf(path, sizeof path, "%s/run/replica-%u.pid", b->cluster_dir, i);
            FILE *fp = fopen(path, "r");
            if (fp == NULL) {
                fprintf(stderr, "bftkv-bench: %s: cannot read; no replica CPU figures\n", path);
                continue;
            }
            int pid = 0;
            if (fscanf(fp, "%d", &pid) == 1) {
                b->replica_pid[i] = pid;
            }
            fclose(fp);
        }
    }
    return 0;
}

int bench_admin_load(struct bench *b)
{
    char err[512];
    /* The admin client: the id after the load's handles, when the config has it.
     * Its key is loaded here once to report a problem before the run; the stats
     * go through the public bftkv_client_replica_stats, like any application's. */
    uint32_t id = b->client_base + b->threads;
    if (b->threads > 0 && id < b->cfg->clients && b->cfg->client[id].allowed) {
        struct auth_keypair kp;
        int rc = bftkv_key_identity_load(b->cfg, BFTKV_CONFIG_CLIENT, (uint16_t)id, &kp, err, sizeof err);
        sodium_memzero(&kp, sizeof kp);
        if (rc == 0) {
            b->admin_ok = true;
            b->admin_id = (uint16_t)id;
        } else {
            fprintf(stderr, "bftkv-bench: admin client %u: %s; no datagram figures\n", id, err);
        }
    } else {
        fprintf(stderr, "bftkv-bench: no client id %u in the config for stats; no replica datagram figures\n", id);
    }
    return 0;
}

static bool bench_proc_cpu(int pid, double *out)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return false;
    }
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (p == NULL) {
        return false;
    }
    unsigned long long ut = 0, st = 0;
    /* After ")": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15) */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) {
        return false;
    }
    *out = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    return true;
}

static uint64_t bench_json_u64(const char *json, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p == NULL) {
        return 0;
    }
    p += strlen(pat);
    while (*p == ' ') {
        p++;
    }
    return strtoull(p, NULL, 10);
}

/* Every CPU's busy and total time since boot, in seconds (/proc/stat's "cpu" line:
 * user nice system idle iowait irq softirq steal ...; idle and iowait are idle). */
static bool bench_machine_cpu(double *busy_s, double *all_s)
{
    FILE *fp = fopen("/proc/stat", "r");
    if (fp == NULL) {
        return false;
    }
    unsigned long long v[8] = {0};
    int n = fscanf(fp, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
    fclose(fp);
    if (n < 5) {
        return false;
    }
    unsigned long long all = 0;
    for (int i = 0; i < 8; i++) {
        all += v[i];
    }
    double tck = (double)sysconf(_SC_CLK_TCK);
    *busy_s = (double)(all - v[3] - v[4]) / tck;
    *all_s = (double)all / tck;
    return true;
}

void bench_sample(struct bench *b, struct bench_sample *out)
{
    memset(out, 0, sizeof *out);
    out->machine_ok = bench_machine_cpu(&out->machine_busy_s, &out->machine_all_s);
    out->cpu_ok = b->cluster_dir != NULL;
    for (uint32_t i = 0; i < b->cfg->n && i < BENCH_REPLICAS_MAX; i++) {
        double s = 0;
        if (b->replica_pid[i] > 0 && bench_proc_cpu(b->replica_pid[i], &s)) {
            out->replica_cpu_s += s;
        } else {
            out->cpu_ok = false;
        }
    }
    out->stats_ok = b->admin_ok;
    if (!b->admin_ok) {
        return;
    }
    static char json[BFTKV_CLIENT_REPLICA_STATS_MAX];
    for (uint32_t i = 0; i < b->cfg->n; i++) {
        size_t len = 0;
        if (bftkv_client_replica_stats(b->cfg, b->admin_id, (uint16_t)i, 1000, json, sizeof json, &len, NULL, 0)
            != 0) {
            out->stats_ok = false;
            continue;
        }
        if (i < BENCH_REPLICAS_MAX) {
            out->answered[i] = true;
            out->view[i] = bench_json_u64(json, "view");
            out->last_executed[i] = bench_json_u64(json, "last_executed");
        }
        out->dgram_rx += bench_json_u64(json, "datagrams_received");
        out->dgram_tx += bench_json_u64(json, "datagrams_sent");
        if (i == 0) {
            out->requests_executed = bench_json_u64(json, "requests_executed");
            out->batches_executed = bench_json_u64(json, "batches_executed");
        }
    }
}

/* Batches a replica may trail the others by before it counts as lagging: two
 * checkpoint intervals of the default configuration, or half the batches the
 * group executed during the phase, since the replicas are asked one after the
 * other while the load runs (and a silent one delays the next by a second). */
#define BENCH_LAG_BATCHES 256u

void bench_lag_warn(struct bench *b, const char *phase)
{
    const struct bench_sample *s = &b->after;
    uint32_t n = b->cfg->n < BENCH_REPLICAS_MAX ? b->cfg->n : BENCH_REPLICAS_MAX;
    b->lagging = 0;
    b->first_lagging = -1;
    if (!b->admin_ok || n < 2) {
        return;
    }
    uint64_t top = 0;
    uint64_t view_votes = 0, view = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!s->answered[i]) {
            continue;
        }
        top = s->last_executed[i] > top ? s->last_executed[i] : top;
        uint64_t same = 0;
        for (uint32_t j = 0; j < n; j++) {
            same += s->answered[j] && s->view[j] == s->view[i];
        }
        if (same > view_votes) {
            view_votes = same;
            view = s->view[i];
        }
    }
    uint64_t top_before = 0;
    for (uint32_t i = 0; i < n; i++) {
        top_before = b->before.last_executed[i] > top_before ? b->before.last_executed[i] : top_before;
    }
    uint64_t slack = top > top_before ? (top - top_before) / 2 : 0;
    slack = slack > BENCH_LAG_BATCHES ? slack : BENCH_LAG_BATCHES;
    for (uint32_t i = 0; i < n; i++) {
        bool lags = !s->answered[i] || s->view[i] != view || s->last_executed[i] + slack < top;
        if (lags && b->lagging++ == 0) {
            b->first_lagging = (int)i;
        }
        if (!s->answered[i]) {
            fprintf(stderr, "bftkv-bench: %s: replica %u did not answer stats within 1 s (overloaded or down)\n",
                    phase, i);
        } else if (lags) {
            fprintf(stderr,
                    "bftkv-bench: %s: replica %u lags: view %" PRIu64 " (others %" PRIu64 "), last executed %" PRIu64
                    " (highest %" PRIu64 "); GETs it is to answer in full wait for the clients' retransmissions\n",
                    phase, i, s->view[i], view, s->last_executed[i], top);
        }
    }
}

/* Machine busy at least this fraction of its CPUs: the run was CPU-bound. */
#define BENCH_LIMIT_CPU_BUSY 0.9
/* The bench's threads busy at least this fraction of a core per handle: more
 * handles (--threads) would help. */
#define BENCH_LIMIT_HANDLE_BUSY 0.8
/* Fewer requests in flight than this keep batches small: worth naming. */
#define BENCH_LIMIT_FEW 64u
/* An open loop that completed this fraction of its offered rate kept up with it. */
#define BENCH_LIMIT_RATE_MET 0.95

static void bench_limit_add(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void bench_limit_add(char *out, size_t cap, const char *fmt, ...)
{
    size_t len = strlen(out);
    if (len > 0 && len + 7 < cap) {
        memcpy(out + len, "; also ", 8);
        len += 7;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + len, cap - len, fmt, ap);
    va_end(ap);
}

/* What limited the phase, from what the bench measured: the machine's CPUs, the
 * handles' lanes, the handles' own threads, a replica that fell behind, the open
 * loop's rate; else the requests outstanding (latency-bound). */
static void bench_limit(const struct bench *b, struct bench_result *r)
{
    char *out = r->limit;
    size_t cap = sizeof r->limit;
    out[0] = '\0';
    double secs = r->measured_s > 0 ? r->measured_s : 1;
    double bench_cores = (b->cpu_self_after - b->cpu_self_before) / secs;
    if (r->ops == 0) {
        snprintf(out, cap, "nothing completed: no operation finished in the window (is the cluster up?)");
        return;
    }
    if (r->open && r->backlog == 0 && r->tput >= BENCH_LIMIT_RATE_MET * r->rate) {
        bench_limit_add(out, cap, "the offered rate: %.0f ops/s asked, %.0f done (open loop)", r->rate, r->tput);
    }
    if (r->timeouts > 0) {
        bench_limit_add(out, cap, "timeouts: %" PRIu64 " requests timed out (client_timeout_ms %u): replicas down "
                        "or far behind?", r->timeouts, b->cfg->client_timeout_ms);
    }
    uint32_t lanes = b->handle[0].lanes;
    uint32_t total = b->clients * b->outstanding;
    uint32_t per = (total + b->threads - 1) / b->threads;
    if (!r->open && per > lanes) {
        bench_limit_add(out, cap,
                        "client lanes: %u requests per handle over %u lanes (%" PRIu64 " queued in a handle at the "
                        "end): raise client_lanes (at most 64) or --threads",
                        per, lanes, b->queued_max);
    } else if (!r->open && !b->clients_given && b->cfg->client_lanes < PBFT_LANES_MAX) {
        bench_limit_add(out, cap,
                        "client lanes: the config's client_lanes %u allows %u handles x %u = %u requests in "
                        "flight: raise client_lanes (at most 64)",
                        b->cfg->client_lanes, b->threads, b->cfg->client_lanes, total);
    }
    if (!r->open && total < BENCH_LIMIT_FEW) {
        bench_limit_add(out, cap, "requests outstanding: only %u in flight, p50 %.2f ms (throughput = outstanding "
                        "/ latency)", total, (double)r->p50 / 1e6);
    }
    if (b->before.machine_ok && b->after.machine_ok && b->after.machine_all_s > b->before.machine_all_s) {
        double cpus = (double)sysconf(_SC_NPROCESSORS_ONLN);
        double busy = (b->after.machine_busy_s - b->before.machine_busy_s) /
                      (b->after.machine_all_s - b->before.machine_all_s);
        if (busy >= BENCH_LIMIT_CPU_BUSY) {
            double replicas = r->replica_cpu_per_op_us >= 0 ? r->replica_cpu_per_op_us * r->tput / 1e6 : -1;
            if (replicas >= 0) {
                double other = busy * cpus - replicas - bench_cores;
                bench_limit_add(out, cap,
                                "CPU: the machine's %.0f CPUs were %.0f%% busy (replicas %.2f, bench %.2f, other "
                                "processes %.2f cores)",
                                cpus, busy * 100, replicas, bench_cores, other > 0 ? other : 0);
            } else {
                bench_limit_add(out, cap, "CPU: the machine's %.0f CPUs were %.0f%% busy (bench %.2f cores)", cpus,
                                busy * 100, bench_cores);
            }
        }
    }
    if (bench_cores >= BENCH_LIMIT_HANDLE_BUSY * b->threads) {
        bench_limit_add(out, cap, "handles: the bench used %.2f cores for %u handles (one I/O thread each): add "
                        "--threads", bench_cores, b->threads);
    }
    if (b->lagging > 0) {
        bench_limit_add(out, cap, "a lagging replica: %u replica(s) behind or silent at the end, replica %d first "
                        "(see the warning above)", b->lagging, b->first_lagging);
    }
    if (r->open) {
        if (r->backlog > 0) {
            bench_limit_add(out, cap, "the open loop's slots: %" PRIu64 " requests waited for a free slot (%u per "
                            "handle); the cluster did not keep up with %.0f ops/s", r->backlog, BENCH_OPEN_SLOTS,
                            r->rate);
        } else if (out[0] == '\0') {
            bench_limit_add(out, cap, "the cluster: %.0f of the %.0f ops/s offered done (open loop)", r->tput,
                            r->rate);
        }
    } else if (out[0] == '\0') {
        bench_limit_add(out, cap, "requests outstanding: %u in flight, p50 %.2f ms (throughput = outstanding / "
                        "latency); the CPUs had room: more --clients may go faster", total, (double)r->p50 / 1e6);
    }
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return a < c ? -1 : a > c;
}

/* A deployment: each partition's measured ops/s, summed over the handles, and
 * the least, median and largest of them. */
static void bench_result_partitions(struct bench *b, struct bench_result *r)
{
    uint32_t parts = b->partitions;
    if (parts <= 1 || b->handle[0].part_ops == NULL) {
        return;
    }
    r->part_tput = calloc(parts, sizeof *r->part_tput);
    double *sorted = calloc(parts, sizeof *sorted);
    if (r->part_tput == NULL || sorted == NULL) {
        free(r->part_tput);
        free(sorted);
        r->part_tput = NULL;
        return;
    }
    for (uint32_t p = 0; p < parts; p++) {
        uint64_t ops = 0;
        for (uint32_t t = 0; t < b->threads; t++) {
            ops += b->handle[t].part_ops[p];
        }
        r->part_tput[p] = b->measured_s > 0 ? (double)ops / b->measured_s : 0;
        sorted[p] = r->part_tput[p];
    }
    qsort(sorted, parts, sizeof *sorted, cmp_double);
    r->part_min = sorted[0];
    r->part_median = parts % 2 ? sorted[parts / 2] : (sorted[parts / 2 - 1] + sorted[parts / 2]) / 2;
    r->part_max = sorted[parts - 1];
    free(sorted);
}

static void bench_result_fill(struct bench *b, struct hdr_histogram *all, struct bench_result *r)
{
    memset(r, 0, sizeof *r);
    r->all = all;
    r->open = b->rate > 0;
    r->rate = b->rate;
    r->measured_s = b->measured_s;
    r->retransmissions = b->retransmissions;
    r->readonly_fallbacks = b->readonly_fallbacks;
    r->readonly_timeouts = b->readonly_timeouts;
    r->bench_dgrams_tx = b->bench_dgrams_tx;
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        hdr_add(all, h->hist);
        r->ops += h->ops;
        r->errors += h->errors;
        r->timeouts += h->timeouts;
        r->backlog += h->backlog;
    }
    r->tput = b->measured_s > 0 ? (double)r->ops / b->measured_s : 0;
    bench_result_partitions(b, r);
    r->mean_ns = hdr_mean(all);
    r->p50 = hdr_value_at_percentile(all, 50);
    r->p90 = hdr_value_at_percentile(all, 90);
    r->p99 = hdr_value_at_percentile(all, 99);
    r->p999 = hdr_value_at_percentile(all, 99.9);
    r->max = hdr_max(all);
    double ops = r->ops > 0 ? (double)r->ops : 1;
    r->bench_cpu_per_op_us = (b->cpu_self_after - b->cpu_self_before) * 1e6 / ops;
    if (b->before.cpu_ok && b->after.cpu_ok) {
        r->replica_cpu_per_op_us = (b->after.replica_cpu_s - b->before.replica_cpu_s) * 1e6 / ops;
        r->cpu_per_op_us = r->replica_cpu_per_op_us + r->bench_cpu_per_op_us;
    } else {
        r->replica_cpu_per_op_us = -1;
        r->cpu_per_op_us = -1;
    }
    if (b->before.stats_ok && b->after.stats_ok) {
        /* Datagrams on the wire: each is sent once (by a replica or the bench). */
        r->replica_dgrams_per_op = (double)(b->after.dgram_tx - b->before.dgram_tx) / ops;
        r->dgrams_per_op = r->replica_dgrams_per_op + (double)b->bench_dgrams_tx / ops;
        uint64_t batches = b->after.batches_executed - b->before.batches_executed;
        r->avg_batch = batches > 0 ? (double)(b->after.requests_executed - b->before.requests_executed) /
                                         (double)batches
                                   : 0;
    } else {
        r->replica_dgrams_per_op = -1;
        r->dgrams_per_op = -1;
    }
    bench_limit(b, r);
    char del[32] = "";
    if (b->del_ratio > 0) {
        snprintf(del, sizeof del, "/del:%.2f", b->del_ratio);
    }
    if (b->label != NULL) {
        snprintf(r->name, sizeof r->name, "%s", b->label);
    } else {
        snprintf(r->name, sizeof r->name,
                 "bftkv/put_get/N:%u/clients:%u/outstanding:%u/key:%zu/value:%zu/read:%.2f%s%s/%s", b->cfg->n,
                 b->clients, b->outstanding, b->key_size, b->value_len, b->read_ratio, del,
                 b->readonly && b->read_ratio > 0 ? "/ro" : b->stale_reads && b->read_ratio > 0 ? "/stale" : "",
                 b->rate > 0 ? "open" : "closed");
    }
}

/* What the PUTs wrote, for every output: fresh values, or the 0/0 workload that
 * overstates what a store with data sees (docs/benchmarks.md). kind is the
 * short form ("fresh", "short", "0/0"). */
static const char *bench_values_label(const struct bench *b, const char **kind)
{
    if (b->value_len == 0) {
        *kind = "0/0";
        return "0/0: empty values, overwrites that change nothing once a key exists";
    }
    if (b->value_len < BENCH_VALUE_UNIQUE_LEN) {
        *kind = "short";
        return "short: hash bytes of a write id, a PUT may repeat its key's value (probability 256^-bytes)";
    }
    *kind = "fresh";
    return "fresh: every PUT writes a value its key did not hold";
}

static double bench_prefill_s(const struct bench *b)
{
    const struct bench_pass *p = &b->prefill_pass;
    return p->end_ns > p->start_ns ? (double)(p->end_ns - p->start_ns) / 1e9 : 0;
}

static void bench_write_table(struct bench *b, const struct bench_result *r, FILE *fp)
{
    fprintf(fp, "%s\n", r->name);
    char offered[96] = "";
    if (r->fraction > 0) {
        snprintf(offered, sizeof offered, ", offered %.0f ops/s (%.0f%% of the peak)", r->rate, r->fraction * 100);
    }
    fprintf(fp, "  %-22s %u replicas (f=%u), %u handles, %s loop%s\n", "cluster", b->cfg->n, b->cfg->f,
            b->threads, r->open ? "open" : "closed", offered);
    const char *kind;
    fprintf(fp, "  %-22s %zu-byte keys, %zu-byte values (%s)\n", "values", b->key_size, b->value_len,
            bench_values_label(b, &kind));
    if (b->prefill) {
        const struct bench_pass *p = &b->prefill_pass;
        fprintf(fp, "  %-22s %" PRIu64 " keys written once in %.1f s before the run (%" PRIu64
                    " failed or unknown)%s\n",
                "prefill", p->count, bench_prefill_s(b), atomic_load(&p->failed),
                p->complete ? "" : "; INCOMPLETE: cut short by its time bound");
    } else {
        fprintf(fp, "  %-22s none: keys the run did not write yet are absent (--prefill)\n", "prefill");
    }
    fprintf(fp, "  %-22s %.0f ops/s (%" PRIu64 " ops in %.2f s)\n", "throughput", r->tput, r->ops, r->measured_s);
    if (r->part_tput != NULL) {
        fprintf(fp, "  %-22s %u partitions: least %.0f, median %.0f, most %.0f ops/s\n", "per partition",
                b->partitions, r->part_min, r->part_median, r->part_max);
    }
    fprintf(fp, "  %-22s p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f\n", "latency (us)",
            (double)r->p50 / 1e3, (double)r->p90 / 1e3, (double)r->p99 / 1e3, (double)r->p999 / 1e3,
            (double)r->max / 1e3, r->mean_ns / 1e3);
    fprintf(fp, "  %-22s %" PRIu64 " (timeouts %" PRIu64 "); client retransmissions %" PRIu64
                ", read-only fallbacks %" PRIu64 " (%" PRIu64 " after the retransmission timeout)\n",
            "errors", r->errors, r->timeouts, r->retransmissions, r->readonly_fallbacks, r->readonly_timeouts);
    if (r->cpu_per_op_us >= 0) {
        fprintf(fp, "  %-22s %.2f (replicas %.2f, bench %.2f)\n", "cpu us/op", r->cpu_per_op_us,
                r->replica_cpu_per_op_us, r->bench_cpu_per_op_us);
    } else {
        fprintf(fp, "  %-22s bench %.2f (replicas unknown: give --cluster-dir)\n", "cpu us/op",
                r->bench_cpu_per_op_us);
    }
    if (r->dgrams_per_op >= 0) {
        fprintf(fp, "  %-22s %.2f sent (replicas %.2f), avg batch %.1f\n", "datagrams/op", r->dgrams_per_op,
                r->replica_dgrams_per_op, r->avg_batch);
    }
    fprintf(fp, "  %-22s %s\n", "limited by", r->limit);
}

static void bench_write_json_context(struct bench *b, FILE *fp)
{
    const struct bench_result *r = &b->phase[0];
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    fprintf(fp, "{\n  \"context\": {\n");
    fprintf(fp, "    \"date\": \"%s\",\n    \"host_name\": \"%s\",\n    \"executable\": \"bftkv-bench\",\n", date,
            host);
    fprintf(fp, "    \"num_cpus\": %ld,\n    \"library_build_type\": \"%s\",\n", sysconf(_SC_NPROCESSORS_ONLN),
            BFTKV_BUILD_TYPE);
    fprintf(fp, "    \"config\": \"%s\",\n    \"N\": %u,\n    \"f\": %u,\n", b->config_path, b->cfg->n, b->cfg->f);
    fprintf(fp, "    \"batch_max_requests\": %u,\n    \"client_lanes\": %u,\n    \"readonly_fast_path\": %s,\n",
            b->cfg->batch_max_requests, b->cfg->client_lanes, b->cfg->readonly_fast_path ? "true" : "false");
    fprintf(fp, "    \"stale_reads\": %s,\n", b->stale_reads ? "true" : "false");
    fprintf(fp,
            "    \"clients\": %u,\n    \"outstanding\": %u,\n    \"threads\": %u,\n    \"mode\": \"%s\",\n"
            "    \"rate\": %.0f,\n    \"keys\": %" PRIu64 ",\n    \"key_size\": %zu,\n    \"value_size\": %zu,\n"
            "    \"read_ratio\": %.4f,\n    \"zipf\": %.3f,\n    \"duration_s\": %.3f,\n    \"warmup_s\": %.3f",
            b->clients, b->outstanding, b->threads, r->open ? "open" : "closed", r->rate, b->keys, b->key_size,
            b->value_len, b->read_ratio, b->zipf, r->measured_s, b->warmup);
    fprintf(fp, ",\n    \"seed\": %" PRIu64 ",\n    \"del_ratio\": %.4f", b->seed, b->del_ratio);
    const char *kind;
    const char *label = bench_values_label(b, &kind);
    fprintf(fp, ",\n    \"values\": \"%s\",\n    \"workload\": \"%s\"", kind, label);
    fprintf(fp, ",\n    \"prefill\": %s", b->prefill ? "true" : "false");
    if (b->prefill) {
        const struct bench_pass *p = &b->prefill_pass;
        fprintf(fp, ",\n    \"prefill_keys\": %" PRIu64 ",\n    \"prefill_failed\": %" PRIu64
                    ",\n    \"prefill_s\": %.3f,\n    \"prefill_complete\": %s",
                p->count, atomic_load(&p->failed), bench_prefill_s(b), p->complete ? "true" : "false");
    }
    if (b->history_path != NULL) {
        fprintf(fp, ",\n    \"history\": \"%s\",\n    \"final_read\": %s", b->history_path,
                b->final_read ? "true" : "false");
    }
    if (b->load_points > 0) { /* the peak's context; the points are entries of their own */
        fprintf(fp, ",\n    \"load_points\": [");
        for (uint32_t i = 0; i < b->load_points; i++) {
            fprintf(fp, "%s%g", i ? ", " : "", b->load_point[i]);
        }
        fprintf(fp, "]");
    }
    fprintf(fp, "\n");
    fprintf(fp, "  },\n  \"benchmarks\": [\n");
}

/* One member of a benchmark entry: "name": value with prec decimals, or null
 * when the value was not measured (known false). */
static void json_number(FILE *fp, const char *name, bool known, double value, int prec)
{
    if (known) {
        fprintf(fp, "      \"%s\": %.*f,\n", name, prec, value);
    } else {
        fprintf(fp, "      \"%s\": null,\n", name);
    }
}

static void bench_write_json_entry(struct bench *b, const struct bench_result *r, bool last, FILE *fp)
{
    fprintf(fp, "    {\n");
    fprintf(fp, "      \"name\": \"%s\",\n      \"run_name\": \"%s\",\n      \"run_type\": \"iteration\",\n", r->name,
            r->name);
    fprintf(fp, "      \"repetitions\": 1,\n      \"repetition_index\": 0,\n      \"threads\": %u,\n", b->threads);
    fprintf(fp, "      \"iterations\": %" PRIu64 ",\n      \"real_time\": %.1f,\n      \"cpu_time\": %.1f,\n", r->ops,
            r->mean_ns, r->cpu_per_op_us >= 0 ? r->cpu_per_op_us * 1e3 : r->bench_cpu_per_op_us * 1e3);
    fprintf(fp, "      \"time_unit\": \"ns\",\n      \"items_per_second\": %.1f,\n", r->tput);
    fprintf(fp,
            "      \"p50\": %" PRId64 ",\n      \"p90\": %" PRId64 ",\n      \"p99\": %" PRId64
            ",\n      \"p999\": %" PRId64 ",\n      \"max\": %" PRId64 ",\n",
            r->p50, r->p90, r->p99, r->p999, r->max);
    fprintf(fp, "      \"errors\": %" PRIu64 ",\n      \"timeouts\": %" PRIu64 ",\n", r->errors, r->timeouts);
    fprintf(fp, "      \"retransmissions\": %" PRIu64 ",\n      \"readonly_fallbacks\": %" PRIu64 ",\n",
            r->retransmissions, r->readonly_fallbacks);
    fprintf(fp, "      \"readonly_timeouts\": %" PRIu64 ",\n", r->readonly_timeouts);
    if (r->part_tput != NULL) {
        fprintf(fp, "      \"partitions\": %u,\n      \"partition_items_per_second\": [", b->partitions);
        for (uint32_t p = 0; p < b->partitions; p++) {
            fprintf(fp, "%s%.1f", p > 0 ? ", " : "", r->part_tput[p]);
        }
        fprintf(fp, "],\n");
    }
    if (b->load_points > 0) {
        fprintf(fp, "      \"mode\": \"%s\",\n      \"offered_rate\": %.0f,\n      \"peak_fraction\": %g,\n",
                r->open ? "open" : "closed", r->rate, r->fraction);
    }
    /* The replicas' CPU and datagrams are unknown (negative) without their stats. */
    bool cpu = r->cpu_per_op_us >= 0, dgrams = r->dgrams_per_op >= 0;
    json_number(fp, "cpu_per_op_us", cpu, r->cpu_per_op_us, 3);
    json_number(fp, "replica_cpu_per_op_us", cpu, r->replica_cpu_per_op_us, 3);
    json_number(fp, "bench_cpu_per_op_us", true, r->bench_cpu_per_op_us, 3);
    json_number(fp, "datagrams_per_op", dgrams, r->dgrams_per_op, 3);
    json_number(fp, "avg_batch", dgrams, r->avg_batch, 2);
    fprintf(fp, "      \"limit\": \"%s\",\n", r->limit);
    fprintf(fp, "      \"bench_datagrams_per_op\": %.3f,\n",
            r->ops > 0 ? (double)r->bench_dgrams_tx / (double)r->ops : 0.0);
    /* The latency distribution for CDF plots: [percentile, ns] pairs. */
    static const double pct[] = {0,  1,  5,  10, 20, 30,   40,   50,    60,    70,     75,  80,
                                 85, 90, 95, 97, 99, 99.5, 99.9, 99.95, 99.99, 99.999, 100};
    fprintf(fp, "      \"latency_percentiles_ns\": [");
    for (size_t i = 0; i < sizeof pct / sizeof pct[0]; i++) {
        fprintf(fp, "%s[%g, %" PRId64 "]", i ? ", " : "", pct[i], hdr_value_at_percentile(r->all, pct[i]));
    }
    fprintf(fp, "]\n    }%s\n", last ? "" : ",");
}

static void bench_write_json(struct bench *b, FILE *fp)
{
    bench_write_json_context(b, fp);
    for (uint32_t i = 0; i < b->phases; i++) {
        bench_write_json_entry(b, &b->phase[i], i + 1 == b->phases, fp);
    }
    fprintf(fp, "  ]\n}\n");
}

static void bench_write_csv_header(FILE *fp)
{
    fprintf(fp, "name,N,f,clients,outstanding,threads,mode,key_size,value_size,read_ratio,ops,seconds,ops_per_s,"
                "mean_ns,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,errors,cpu_per_op_us,replica_cpu_per_op_us,"
                "bench_cpu_per_op_us,datagrams_per_op,values,prefill\n");
}

static void bench_write_csv(struct bench *b, const struct bench_result *r, FILE *fp)
{
    const char *kind;
    bench_values_label(b, &kind);
    fprintf(fp, "%s,%u,%u,%u,%u,%u,%s,%zu,%zu,%.4f,%" PRIu64 ",%.3f,%.1f,%.1f,%" PRId64 ",%" PRId64 ",%" PRId64
                ",%" PRId64 ",%" PRId64 ",%" PRIu64 ",%.3f,%.3f,%.3f,%.3f,%s,%s\n",
            r->name, b->cfg->n, b->cfg->f, b->clients, b->outstanding, b->threads, r->open ? "open" : "closed",
            b->key_size, b->value_len, b->read_ratio, r->ops, r->measured_s, r->tput, r->mean_ns, r->p50, r->p90,
            r->p99, r->p999, r->max, r->errors, r->cpu_per_op_us, r->replica_cpu_per_op_us, r->bench_cpu_per_op_us,
            r->dgrams_per_op, kind, b->prefill ? "true" : "false");
}

int bench_phase_collect(struct bench *b, const char *suffix, double fraction)
{
    if (b->phases >= BENCH_PHASES_MAX) {
        return 1;
    }
    struct hdr_histogram *all = NULL;
    if (hdr_init(1, 60000000000ll, 3, &all) != 0) {
        return 1;
    }
    struct bench_result *r = &b->phase[b->phases++];
    bench_result_fill(b, all, r);
    r->fraction = fraction;
    if (suffix != NULL) {
        size_t len = strlen(r->name);
        snprintf(r->name + len, sizeof r->name - len, "%s", suffix);
    }
    return 0;
}

int bench_report(struct bench *b)
{
    FILE *fp = stdout;
    if (b->out_path != NULL) {
        fp = fopen(b->out_path, "w");
        if (fp == NULL) {
            fprintf(stderr, "bftkv-bench: %s: cannot write\n", b->out_path);
            return 1;
        }
    }
    if (strcmp(b->format, "json") == 0) {
        bench_write_json(b, fp);
    } else if (strcmp(b->format, "csv") == 0) {
        bench_write_csv_header(fp);
        for (uint32_t i = 0; i < b->phases; i++) {
            bench_write_csv(b, &b->phase[i], fp);
        }
    } else {
        for (uint32_t i = 0; i < b->phases; i++) {
            bench_write_table(b, &b->phase[i], fp);
        }
    }
    int rc = 0;
    if (fp != stdout && fclose(fp) != 0) {
        rc = 1;
    }
    bool no_ops = false;
    for (uint32_t i = 0; i < b->phases; i++) {
        if (fp != stdout) { /* the short table on the console too */
            bench_write_table(b, &b->phase[i], stderr);
        }
        no_ops = no_ops || b->phase[i].ops == 0;
        hdr_destroy(b->phase[i].all);
        b->phase[i].all = NULL;
        free(b->phase[i].part_tput);
        b->phase[i].part_tput = NULL;
    }
    cluster_map_free(b->map);
    b->map = NULL;
    if (b->history_path != NULL && bench_history_write(b) != 0) {
        rc = 1;
    }
    /* The last line: what limited the (last) phase. */
    fflush(stdout);
    for (uint32_t i = 0; i < b->phases; i++) {
        fprintf(stderr, "bftkv-bench: %s%slimited by %s\n", b->phases > 1 ? b->phase[i].name : "",
                b->phases > 1 ? ": " : "", b->phase[i].limit);
    }
    return rc != 0 ? rc : (no_ops || b->phases == 0 ? 1 : 0);
}
