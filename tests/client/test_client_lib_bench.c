/* client_lib_bench: latency and throughput of the client library, a measurement
 * tool (not a timed test; the smoke test only checks that it runs).
 *
 *   client_lib_bench [--mode sync|async] [--ops N] [--threads T] [--value BYTES]
 *                    [--backend mmsg|uring] [--n N] [--config FILE --client ID]
 *
 * sync: T threads, each N/T sequential PUTs (distinct keys); prints the latency
 * percentiles of all of them. async: N PUTs submitted at once from T threads
 * (bftkv_submit with BFTKV_CLIENT_SUBMIT_BLOCK: as many in flight as there are
 * lanes, the rest queued); prints operations per second and datagrams per
 * operation. submit: the cost of bftkv_submit alone: the cluster is not started,
 * N GETs are queued from T threads (queue_max N) and cancelled by close; prints
 * ns per submission. Without --config it runs against the in-process fake cluster
 * (test_client_lib_fake.h: n engine replicas pumped by one thread of this process,
 * so the replicas share the machine with the client); with --config, against a
 * running cluster (e.g. tools/cluster start).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bftkv/client.h"
#include "tests/client/test_client_lib_fake.h"

struct bench {
    struct bftkv_client *c;
    const char *mode;
    uint32_t ops;
    uint32_t threads;
    uint32_t value;
    uint64_t *lat_ns; /* sync: ops entries */
    atomic_uint_least32_t done;
    atomic_uint_least32_t failed;
};

struct worker {
    struct bench *b;
    uint32_t t;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void async_cb(void *arg, int status, const void *val, size_t vlen)
{
    struct bench *b = arg;
    (void)val, (void)vlen;
    if (status != 0) {
        atomic_fetch_add(&b->failed, 1);
    }
    atomic_fetch_add(&b->done, 1);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    static const uint8_t zeros[BFTKV_VALUE_MAX];
    uint32_t per = b->ops / b->threads;
    for (uint32_t i = 0; i < per; i++) {
        char key[48];
        int klen = snprintf(key, sizeof key, "bench-%u-%u-%llu", w->t, i, (unsigned long long)now_ns() % 1000u);
        if (strcmp(b->mode, "sync") == 0) {
            uint64_t t0 = now_ns();
            int rc = bftkv_put(b->c, key, (size_t)klen, zeros, b->value);
            b->lat_ns[w->t * per + i] = now_ns() - t0;
            if (rc != 0) {
                atomic_fetch_add(&b->failed, 1);
            }
            atomic_fetch_add(&b->done, 1);
        } else if (strcmp(b->mode, "submit") == 0) {
            if (bftkv_submit(b->c, BFTKV_OP_GET, key, (size_t)klen, NULL, 0, async_cb, b) != 0) {
                atomic_fetch_add(&b->failed, 1);
            }
        } else if (bftkv_submit(b->c, BFTKV_OP_PUT, key, (size_t)klen, zeros, b->value, async_cb, b) != 0) {
            atomic_fetch_add(&b->failed, 1);
            atomic_fetch_add(&b->done, 1);
        }
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    struct bench b = { .mode = "sync", .ops = 1000, .threads = 1, .value = 16 };
    const char *config = NULL, *backend = "mmsg";
    unsigned long n = 4, client = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--mode") == 0) {
            b.mode = v;
        } else if (strcmp(k, "--ops") == 0) {
            b.ops = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--threads") == 0) {
            b.threads = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--value") == 0) {
            b.value = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(k, "--backend") == 0) {
            backend = v;
        } else if (strcmp(k, "--n") == 0) {
            n = strtoul(v, NULL, 10);
        } else if (strcmp(k, "--config") == 0) {
            config = v;
        } else if (strcmp(k, "--client") == 0) {
            client = strtoul(v, NULL, 10);
        }
    }
    if (b.ops == 0 || b.ops > 10000000u || b.threads == 0 || b.threads > 64 || b.value > BFTKV_VALUE_MAX
        || n == 0 || n > FAKE_REPLICAS_MAX) {
        fprintf(stderr, "client_lib_bench: bad arguments\n");
        return 2;
    }
    b.ops -= b.ops % b.threads;
    if (sodium_init() < 0) {
        return 1;
    }
    static struct fake_cluster fc;
    if (config == NULL) {
        if (fake_create(&fc, (uint16_t)n, (uint16_t)((n - 1) / 3), 2, "client_lanes 64\nrequest_timeout_ms 2000\n")
            != 0) {
            fake_destroy(&fc);
            return 1;
        }
        if (strcmp(b.mode, "submit") != 0) {
            fake_start(&fc);
        }
        config = fc.conf;
    }
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.flags = BFTKV_CLIENT_SUBMIT_BLOCK;
    opt.queue_max = strcmp(b.mode, "submit") == 0 ? BFTKV_CLIENT_QUEUE_MAX : 4096;
    opt.timeout_ms = 30000;
    opt.backend = strcmp(backend, "uring") == 0 ? BFTKV_BACKEND_URING : BFTKV_BACKEND_MMSG;
    opt.err = err;
    opt.errlen = sizeof err;
    int rc = bftkv_client_open(config, (uint16_t)client, &opt, &b.c);
    if (rc != 0) {
        fprintf(stderr, "open: %s: %s\n", bftkv_strerror(rc), err);
        return 1;
    }
    b.lat_ns = calloc(b.ops, sizeof *b.lat_ns);
    pthread_t th[64];
    struct worker w[64];
    uint64_t t0 = now_ns();
    for (uint32_t t = 0; t < b.threads; t++) {
        w[t] = (struct worker){ .b = &b, .t = t };
        pthread_create(&th[t], NULL, worker_main, &w[t]);
    }
    for (uint32_t t = 0; t < b.threads; t++) {
        pthread_join(th[t], NULL);
    }
    if (strcmp(b.mode, "submit") == 0) {
        double ns = (double)(now_ns() - t0);
        printf("submit: %u GETs queued from %u threads: %.0f ns per bftkv_submit (wall), failed %u\n", b.ops,
               b.threads, ns / b.ops, atomic_load(&b.failed));
        bftkv_client_close(b.c);
        free(b.lat_ns);
        fake_destroy(&fc);
        return 0;
    }
    uint64_t limit = now_ns() + 120ull * 1000000000u;
    while (atomic_load(&b.done) < b.ops && now_ns() < limit) {
        struct timespec ts = { 0, 200000 };
        nanosleep(&ts, NULL);
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    struct bftkv_client_stats s = { .struct_size = sizeof s };
    bftkv_client_stats(b.c, &s);
    printf("%s: %u PUTs of %u bytes, %u threads, n=%lu%s, client backend %s, %u lanes\n", b.mode, b.ops, b.value,
           b.threads, n, config == fc.conf ? " (in-process fake)" : "", backend, s.lanes);
    printf("  %.0f ops/s, %.3f s, failed %u, datagrams sent/op %.3f, received/op %.3f, retransmissions %llu\n",
           (double)b.ops / secs, secs, atomic_load(&b.failed), (double)s.datagrams_sent / b.ops,
           (double)s.datagrams_received / b.ops, (unsigned long long)s.retransmissions);
    if (strcmp(b.mode, "sync") == 0) {
        qsort(b.lat_ns, b.ops, sizeof *b.lat_ns, cmp_u64);
        printf("  latency us: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", (double)b.lat_ns[b.ops / 2] / 1e3,
               (double)b.lat_ns[b.ops * 9 / 10] / 1e3, (double)b.lat_ns[b.ops * 99 / 100] / 1e3,
               (double)b.lat_ns[b.ops - 1] / 1e3);
    }
    bftkv_client_close(b.c);
    free(b.lat_ns);
    if (config == fc.conf) {
        fake_destroy(&fc);
    }
    return atomic_load(&b.failed) == 0 ? 0 : 1;
}
