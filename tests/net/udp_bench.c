/* udp_bench: one-way datagram rate of the UDP transport (net/udp.h) on loopback,
 * for measurements (docs/benchmarks.md), not a pass/fail test.
 *
 * A receiver thread opens --dests instances and busy-polls them; the main thread
 * opens one sender and, per round, queues --batch messages of --payload bytes
 * round-robin over the destinations and flushes once. With batch <= dests every
 * message is its own datagram, so a round is `batch` datagrams in one submission
 * (io_uring_enter or sendmmsg). With --coalesce every message of a round goes to
 * the first destination instead, so the round packs into as few datagrams as
 * fit: messages/s is then the number that matters. The sender keeps at most
 * --window datagrams unreceived so loopback is not driven into dropping; losses
 * are still counted and printed.
 *
 *   udp_bench --backend uring --payload 64 --seconds 3 --dests 8 --batch 8
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "net/udp.h"

#define DESTS_MAX 64

struct bench {
    enum net_backend backend;
    uint32_t payload;
    double seconds;
    uint32_t dests;
    uint32_t batch;
    uint32_t window;
    int coalesce;

    struct net_udp *rx[DESTS_MAX];
    struct sockaddr_storage rx_addr[DESTS_MAX];
    socklen_t rx_len[DESTS_MAX];
    atomic_int ready;       /* receiver: instances open (1) or failed (-1) */
    atomic_int stop;
    atomic_uint_fast64_t datagrams_received;
    atomic_uint_fast64_t messages_received;
    double rx_cpu_s;        /* receiver thread CPU time (user + system) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds (user + system) of the calling thread: with other processes on the
 * machine, CPU per datagram is steadier than datagrams per wall second. */
static double thread_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec
           + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void on_datagram(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                        size_t len)
{
    (void)src;
    (void)srclen;
    (void)data;
    struct bench *b = arg;
    atomic_fetch_add_explicit(&b->datagrams_received, 1, memory_order_relaxed);
    /* Each message is `payload` bytes, so a coalesced datagram carries len / payload. */
    atomic_fetch_add_explicit(&b->messages_received, len / b->payload, memory_order_relaxed);
}

static void *receiver_main(void *arg)
{
    struct bench *b = arg;
    struct net_udp_config c = {.host = "127.0.0.1", .backend = b->backend, .rcvbuf_bytes = 4 << 20};
    for (uint32_t i = 0; i < b->dests; i++) {
        int rc = net_udp_open(&c, &b->rx[i]);
        if (rc != 0) {
            fprintf(stderr, "udp_bench: open receiver: %s\n", bftkv_strerror(rc));
            atomic_store(&b->ready, -1);
            return NULL;
        }
        net_udp_local_addr(b->rx[i], &b->rx_addr[i], &b->rx_len[i]);
    }
    atomic_store(&b->ready, 1);
    double cpu0 = thread_cpu_s();
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        int got = 0;
        for (uint32_t i = 0; i < b->dests; i++) {
            /* One destination waits briefly; several are busy-polled. */
            int rc = net_udp_poll(b->rx[i], b->dests == 1 ? 10 : 0, on_datagram, b);
            if (rc < 0) {
                fprintf(stderr, "udp_bench: poll: %s\n", bftkv_strerror(rc));
                return NULL;
            }
            got += rc;
        }
        if (got == 0 && b->dests > 1)
            sched_yield();
    }
    b->rx_cpu_s = thread_cpu_s() - cpu0;
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: udp_bench [--backend uring|mmsg] [--payload BYTES] [--seconds S] [--dests D]\n"
                    "                 [--batch B] [--window W] [--coalesce]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct bench *b = calloc(1, sizeof(*b));
    if (!b)
        return 1;
    b->backend = NET_BACKEND_URING;
    b->payload = 64;
    b->seconds = 2.0;
    b->dests = 8;
    b->batch = 8;
    b->window = 2048;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--coalesce") == 0) {
            b->coalesce = 1;
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (strcmp(a, "--backend") == 0)
            b->backend = strcmp(v, "mmsg") == 0 ? NET_BACKEND_MMSG
                         : strcmp(v, "auto") == 0 ? NET_BACKEND_AUTO : NET_BACKEND_URING;
        else if (strcmp(a, "--payload") == 0)
            b->payload = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--seconds") == 0)
            b->seconds = strtod(v, NULL);
        else if (strcmp(a, "--dests") == 0)
            b->dests = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--batch") == 0)
            b->batch = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--window") == 0)
            b->window = (uint32_t)strtoul(v, NULL, 10);
        else
            return usage();
    }
    if (b->payload == 0 || b->payload > BFTKV_DATAGRAM_MAX || b->dests == 0 || b->dests > DESTS_MAX
        || b->batch == 0 || b->batch > 4096 || b->seconds <= 0 || b->seconds > 600)
        return usage();

    pthread_t t;
    if (pthread_create(&t, NULL, receiver_main, b) != 0)
        return 1;
    for (int spins = 0; atomic_load(&b->ready) == 0 && spins < 5000; spins++) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    if (atomic_load(&b->ready) != 1)
        return 1;

    struct net_udp_config c = {.host = "127.0.0.1", .backend = b->backend, .sndbuf_bytes = 4 << 20};
    struct net_udp *tx;
    int rc = net_udp_open(&c, &tx);
    if (rc != 0) {
        fprintf(stderr, "udp_bench: open sender: %s\n", bftkv_strerror(rc));
        return 1;
    }
    uint8_t *msg = calloc(1, b->payload);
    if (!msg)
        return 1;

    uint64_t rounds = 0, stalls = 0;
    double cpu0 = thread_cpu_s();
    double t0 = now_s(), end = t0 + b->seconds;
    while (now_s() < end) {
        /* Window: never more than `window` datagrams sent and not yet received. */
        struct net_udp_stats s;
        net_udp_stats(tx, &s);
        uint64_t got = atomic_load_explicit(&b->datagrams_received, memory_order_relaxed);
        if (s.datagrams_sent > got + b->window) {
            stalls++;
            sched_yield();
            continue;
        }
        for (uint32_t i = 0; i < b->batch; i++) {
            uint32_t d = b->coalesce ? 0 : i % b->dests;
            rc = net_udp_queue(tx, &b->rx_addr[d], b->rx_len[d], msg, b->payload);
            if (rc != 0) {
                fprintf(stderr, "udp_bench: queue: %s\n", bftkv_strerror(rc));
                return 1;
            }
        }
        if (net_udp_flush(tx) < 0)
            return 1;
        rounds++;
    }
    double t1 = now_s();
    double tx_cpu = thread_cpu_s() - cpu0;
    uint64_t dg_t1 = atomic_load(&b->datagrams_received);
    uint64_t msgs_t1 = atomic_load(&b->messages_received);
    /* Let the receiver drain what is in flight (bounded). */
    struct net_udp_stats s;
    net_udp_stats(tx, &s);
    for (int i = 0; i < 200 && atomic_load(&b->datagrams_received) < s.datagrams_sent; i++) {
        struct timespec ms = {0, 5000000};
        nanosleep(&ms, NULL);
    }
    atomic_store(&b->stop, 1);
    pthread_join(t, NULL);
    double el = t1 - t0;
    uint64_t dg = atomic_load(&b->datagrams_received);
    printf("backend=%s payload=%u dests=%u batch=%u coalesce=%d seconds=%.2f rounds=%llu "
           "sent=%llu received=%llu lost=%lld datagrams/s=%.0f messages/s=%.0f MB/s=%.1f send_errors=%llu "
           "window_stalls=%llu tx_cpu_us/dgram=%.2f rx_cpu_us/dgram=%.2f%s\n",
           net_udp_backend_name(tx), b->payload, b->dests, b->batch, b->coalesce, el,
           (unsigned long long)rounds, (unsigned long long)s.datagrams_sent, (unsigned long long)dg,
           (long long)s.datagrams_sent - (long long)dg, (double)dg_t1 / el, (double)msgs_t1 / el,
           (double)s.bytes_sent / el / 1e6, (unsigned long long)s.send_errors, (unsigned long long)stalls,
           s.datagrams_sent ? tx_cpu * 1e6 / (double)s.datagrams_sent : 0.0, dg ? b->rx_cpu_s * 1e6 / (double)dg : 0.0,
           b->dests > 1 ? " (receiver busy-polls: its CPU includes spinning)" : "");
    net_udp_close(tx);
    for (uint32_t i = 0; i < b->dests; i++)
        net_udp_close(b->rx[i]);
    free(msg);
    free(b);
    return 0;
}
