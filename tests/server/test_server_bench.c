/* server_bench: latency and throughput of an in-process cluster on loopback (a
 * measurement tool, not a timed test; numbers belong in docs/benchmarks.md with
 * the machine they came from). Every replica, the client and the kernel's
 * loopback share the machine's cores.
 *
 *   server_bench [--n N] [--threads single|staged] [--workers W] [--ops K]
 *                [--lanes L] [--value BYTES]
 *
 * Runs K PUTs (distinct keys modulo 1000) with L requests in flight from one
 * client handle and prints ops/s and latency percentiles. The ctest smoke run
 * only checks that it works (--ops 200).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "common/hdr.h"
#include "common/log.h"
#include "engine/wire_admin.h"
#include "tests/server/test_server_fixture.h"

static uint16_t g_n = 4;
static const char *g_threads = "single";
static unsigned g_workers = 1;
static uint32_t g_ops = 1000;
static uint16_t g_lanes = 1;
static uint32_t g_value = 16;

static uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void bench_run(void **state)
{
    (void)state;
    char threads[64], extra[64];
    if (strcmp(g_threads, "staged") == 0)
        snprintf(threads, sizeof threads, "staged auth_workers=%u", g_workers);
    else
        snprintf(threads, sizeof threads, "single");
    snprintf(extra, sizeof extra, "client_lanes %u\nrequest_timeout_ms 1000", g_lanes);
    struct fx_cluster c;
    fx_cluster_write(&c, g_n, (uint16_t)((g_n - 1) / 3), threads, extra);
    fx_cluster_start(&c);
    struct fx_client cl;
    fx_client_open(&cl, &c, 0, g_lanes, false);
    /* Warm-up: teach every replica the client's address (a GET goes to all). */
    int status;
    char got[64];
    assert_int_equal(fx_client_op(&cl, WIRE_OP_GET, "warm", NULL, &status, got, sizeof got, NULL), 0);
    assert_int_equal(fx_client_op(&cl, WIRE_OP_PUT, "warm", "up", &status, NULL, 0, NULL), 0);

    struct hdr_histogram *h;
    assert_int_equal(hdr_init(1, 60000000000LL, 3, &h), 0);
    char *val = malloc(g_value + 1u);
    assert_non_null(val);
    memset(val, 'v', g_value);
    uint64_t start_ns[PBFT_LANES_MAX] = {0};
    bool busy[PBFT_LANES_MAX] = {false};
    uint32_t submitted = 0, completed = 0;
    uint64_t t0 = bench_now_ns();
    uint64_t deadline = t0 + 60000000000ull;
    while (completed < g_ops && bench_now_ns() < deadline) {
        while (submitted < g_ops) {
            char key[32];
            snprintf(key, sizeof key, "key-%u", submitted % 1000u);
            int lane = fx_client_submit(&cl, WIRE_OP_PUT, key, strlen(key), val, g_value);
            if (lane < 0)
                break;
            start_ns[lane] = bench_now_ns();
            busy[lane] = true;
            submitted++;
        }
        fx_client_run(&cl, 10, true);
        for (uint16_t l = 0; l < g_lanes; l++) {
            if (busy[l] && cl.lane_done[l]) {
                assert_int_equal(cl.lane_status[l], 0);
                hdr_record_value(h, (int64_t)(bench_now_ns() - start_ns[l]));
                busy[l] = false;
                completed++;
            }
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    printf("bench n=%u threads=%s lanes=%u value=%u: %u PUTs in %.3f s = %.0f ops/s; latency p50 %.1f us, "
           "p99 %.1f us, max %.1f us\n",
           g_n, threads, g_lanes, g_value, completed, secs, completed / secs,
           (double)hdr_value_at_percentile(h, 50.0) / 1e3, (double)hdr_value_at_percentile(h, 99.0) / 1e3,
           (double)hdr_max(h) / 1e3);
    char *json = malloc(ADMIN_JSON_MAX + 1u);
    assert_non_null(json);
    assert_int_equal(fx_stats(&c, 0, json, ADMIN_JSON_MAX + 1u), 0);
    const char *ab = strstr(json, "\"avg_batch\":");
    const char *dp = strstr(json, "\"datagrams_per_request\":");
    printf("primary: avg_batch %.2f, datagrams_per_request %.3f (sent + received by the primary)\n",
           ab ? strtod(ab + strlen("\"avg_batch\":"), NULL) : -1.0,
           dp ? strtod(dp + strlen("\"datagrams_per_request\":"), NULL) : -1.0);
    printf("primary stats: %s\n", json);
    free(json);
    assert_int_equal(completed, g_ops);
    free(val);
    hdr_destroy(h);
    fx_client_close(&cl);
    fx_cluster_destroy(&c);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--n") == 0)
            g_n = (uint16_t)atoi(v);
        else if (strcmp(k, "--threads") == 0)
            g_threads = v;
        else if (strcmp(k, "--workers") == 0)
            g_workers = (unsigned)atoi(v);
        else if (strcmp(k, "--ops") == 0)
            g_ops = (uint32_t)atoi(v);
        else if (strcmp(k, "--lanes") == 0)
            g_lanes = (uint16_t)atoi(v);
        else if (strcmp(k, "--value") == 0)
            g_value = (uint32_t)atoi(v);
        else {
            fprintf(stderr, "server_bench: unknown option %s\n", k);
            return 2;
        }
    }
    if (g_n < 1 || g_n > 64 || g_lanes < 1 || g_lanes > PBFT_LANES_MAX || g_ops < 1 || g_value > 60000) {
        fprintf(stderr, "server_bench: bad option value\n");
        return 2;
    }
    log_level_set(LOG_LEVEL_WARN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(bench_run)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
