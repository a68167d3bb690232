/* netq: loss and delay for the network-fault tests (tests/integ/test_netfault.py),
 * where the kernel has no netem. Packets reach it through an NFQUEUE rule of the
 * network namespace it runs in (iptables ... -j NFQUEUE --queue-num N
 * --queue-bypass, set by tests/integ/netns.py); each one is dropped with
 * probability --loss, or handed back to the kernel (an NF_ACCEPT verdict) after
 * a delay drawn uniformly from [delay - jitter, delay + jitter] milliseconds.
 * Verdicts go out in release order, not arrival order, so the delay reorders
 * packets as a real jittery link does.
 *
 *   netq --queue N --seconds S [--loss PCT] [--delay-ms D] [--jitter-ms J]
 *        [--max-pending P] [--seed X]
 *
 * Bounded: it exits after S seconds (at most 3600) or on SIGTERM/SIGINT, first
 * accepting every packet it still holds; at most P packets wait at once (default
 * 4096), a packet arriving when P wait is dropped and counted as "overflow". The
 * draws come from a splitmix64 generator seeded with X (default 1), so a run's
 * sequence of decisions depends only on the order packets arrive in.
 *
 * Prints one JSON line when it is bound to the queue ("ready") and one at the
 * end with the counts. Exit 0 on a normal end, 1 when the queue cannot be
 * bound (not root, no nfnetlink_queue), 2 on bad arguments.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include "common/mix64.h"

#define NETQ_PENDING_MAX 65536u   /* the largest --max-pending */
#define NETQ_SECONDS_MAX 3600.0   /* the longest --seconds */
#define NETQ_DELAY_MAX_MS 10000.0 /* the largest delay + jitter */
#define NETQ_RX_BYTES 65536       /* one netlink read: metadata only, many packets */
#define NETQ_SOCKET_BUFFER (4u << 20)

struct netq_pending {
    uint64_t release_ns;
    uint32_t id;
};

struct netq {
    struct nfq_q_handle *qh;
    uint64_t rng;
    uint32_t loss_per_million;
    uint64_t delay_lo_ns;
    uint64_t delay_span_ns; /* release = arrival + lo + uniform [0, span] */
    /* A binary min-heap on release_ns: the next verdict is at heap[0]. */
    struct netq_pending *heap;
    uint32_t pending;
    uint32_t pending_max;
    uint64_t packets, dropped, delayed, overflow, verdict_errors, rx_errors;
};

static volatile sig_atomic_t netq_stop;

static void netq_on_signal(int sig)
{
    (void)sig;
    netq_stop = 1;
}

static uint64_t netq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t netq_rand(struct netq *q)
{
    return bftkv_splitmix64(&q->rng);
}

static void netq_heap_push(struct netq *q, uint64_t release_ns, uint32_t id)
{
    uint32_t i = q->pending++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (q->heap[parent].release_ns <= release_ns)
            break;
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = (struct netq_pending){.release_ns = release_ns, .id = id};
}

static struct netq_pending netq_heap_pop(struct netq *q)
{
    struct netq_pending top = q->heap[0];
    struct netq_pending last = q->heap[--q->pending];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= q->pending)
            break;
        if (c + 1 < q->pending && q->heap[c + 1].release_ns < q->heap[c].release_ns)
            c++;
        if (last.release_ns <= q->heap[c].release_ns)
            break;
        q->heap[i] = q->heap[c];
        i = c;
    }
    if (q->pending > 0)
        q->heap[i] = last;
    return top;
}

static void netq_verdict(struct netq *q, uint32_t id, uint32_t verdict)
{
    if (nfq_set_verdict(q->qh, id, verdict, 0, NULL) < 0)
        q->verdict_errors++;
}

/* One queued packet: drop it, keep it until its release time, or (no delay
 * configured) accept it at once. */
static int netq_on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *arg)
{
    (void)qh;
    (void)msg;
    struct netq *q = arg;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL)
        return 0;
    uint32_t id = ntohl(ph->packet_id);
    q->packets++;
    if (netq_rand(q) % 1000000u < q->loss_per_million) {
        q->dropped++;
        netq_verdict(q, id, NF_DROP);
        return 0;
    }
    uint64_t delay_ns = q->delay_lo_ns + (q->delay_span_ns ? netq_rand(q) % (q->delay_span_ns + 1) : 0);
    if (delay_ns == 0) {
        netq_verdict(q, id, NF_ACCEPT);
        return 0;
    }
    if (q->pending >= q->pending_max) {
        q->overflow++;
        netq_verdict(q, id, NF_DROP);
        return 0;
    }
    q->delayed++;
    netq_heap_push(q, netq_now_ns() + delay_ns, id);
    return 0;
}

/* Accept every packet whose time has come (all of them when flush). */
static void netq_release(struct netq *q, uint64_t now_ns, bool flush)
{
    while (q->pending > 0 && (flush || q->heap[0].release_ns <= now_ns)) {
        struct netq_pending p = netq_heap_pop(q);
        netq_verdict(q, p.id, NF_ACCEPT);
    }
}

static int netq_usage(const char *msg)
{
    if (msg != NULL)
        fprintf(stderr, "netq: %s\n", msg);
    fprintf(stderr, "usage: netq --queue N --seconds S [--loss PCT] [--delay-ms D] [--jitter-ms J]\n"
                    "            [--max-pending P] [--seed X]\n");
    return 2;
}

static bool netq_parse(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    double queue = -1, seconds = -1, loss = 0, delay_ms = 0, jitter_ms = 0, max_pending = 4096, seed = 1;
    static const struct option opts[] = {
        {"queue", required_argument, 0, 'q'},    {"seconds", required_argument, 0, 's'},
        {"loss", required_argument, 0, 'l'},     {"delay-ms", required_argument, 0, 'd'},
        {"jitter-ms", required_argument, 0, 'j'}, {"max-pending", required_argument, 0, 'p'},
        {"seed", required_argument, 0, 'S'},     {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        bool ok = false;
        switch (c) {
        case 'q': ok = netq_parse(optarg, 0, 65535, &queue); break;
        case 's': ok = netq_parse(optarg, 0.001, NETQ_SECONDS_MAX, &seconds); break;
        case 'l': ok = netq_parse(optarg, 0, 100, &loss); break;
        case 'd': ok = netq_parse(optarg, 0, NETQ_DELAY_MAX_MS, &delay_ms); break;
        case 'j': ok = netq_parse(optarg, 0, NETQ_DELAY_MAX_MS, &jitter_ms); break;
        case 'p': ok = netq_parse(optarg, 1, NETQ_PENDING_MAX, &max_pending); break;
        case 'S': ok = netq_parse(optarg, 0, 9007199254740992.0, &seed); break;
        default: return netq_usage(NULL);
        }
        if (!ok)
            return netq_usage("bad option value");
    }
    if (optind != argc || queue < 0 || seconds < 0)
        return netq_usage("--queue and --seconds are required");
    if (jitter_ms > delay_ms || delay_ms + jitter_ms > NETQ_DELAY_MAX_MS)
        return netq_usage("--jitter-ms must be at most --delay-ms, and their sum at most 10000");

    struct netq q = {
        .rng = (uint64_t)seed,
        .loss_per_million = (uint32_t)(loss * 10000.0 + 0.5),
        .delay_lo_ns = (uint64_t)((delay_ms - jitter_ms) * 1e6),
        .delay_span_ns = (uint64_t)(2.0 * jitter_ms * 1e6),
        .pending_max = (uint32_t)max_pending,
    };
    q.heap = calloc(q.pending_max, sizeof *q.heap);
    if (q.heap == NULL) {
        fprintf(stderr, "netq: out of memory\n");
        return 1;
    }
    struct nfq_handle *h = nfq_open();
    if (h == NULL) {
        fprintf(stderr, "netq: nfq_open: %s (root? nfnetlink_queue?)\n", strerror(errno));
        return 1;
    }
    q.qh = nfq_create_queue(h, (uint16_t)queue, netq_on_packet, &q);
    if (q.qh == NULL) {
        fprintf(stderr, "netq: cannot bind queue %u: %s\n", (unsigned)queue, strerror(errno));
        nfq_close(h);
        return 1;
    }
    /* Metadata only: the verdict needs the packet id, never the bytes. */
    if (nfq_set_mode(q.qh, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(q.qh, 2 * q.pending_max) < 0) {
        fprintf(stderr, "netq: cannot configure queue %u: %s\n", (unsigned)queue, strerror(errno));
        nfq_destroy_queue(q.qh);
        nfq_close(h);
        return 1;
    }
    int fd = nfq_fd(h);
    int rcvbuf = (int)NETQ_SOCKET_BUFFER;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);

    struct sigaction sa = {.sa_handler = netq_on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    printf("{\"netq\":\"ready\",\"queue\":%u,\"loss\":%.2f,\"delay_ms\":%.2f,\"jitter_ms\":%.2f}\n",
           (unsigned)queue, loss, delay_ms, jitter_ms);
    fflush(stdout);

    static char buf[NETQ_RX_BYTES];
    uint64_t deadline_ns = netq_now_ns() + (uint64_t)(seconds * 1e9);
    for (;;) {
        uint64_t now = netq_now_ns();
        netq_release(&q, now, false);
        if (netq_stop || now >= deadline_ns)
            break;
        uint64_t wait_ns = deadline_ns - now;
        if (q.pending > 0 && q.heap[0].release_ns - now < wait_ns)
            wait_ns = q.heap[0].release_ns - now;
        struct timespec ts = {.tv_sec = (time_t)(wait_ns / 1000000000u), .tv_nsec = (long)(wait_ns % 1000000000u)};
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = ppoll(&pfd, 1, &ts, NULL);
        if (pr <= 0)
            continue; /* a timeout, or EINTR from a stop signal: the loop head decides */
        for (int burst = 0; burst < 64; burst++) {
            ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (got < 0) {
                if (errno == ENOBUFS)
                    q.rx_errors++; /* the kernel dropped queue messages: packets lost */
                break;
            }
            nfq_handle_packet(h, buf, (int)got);
        }
    }
    netq_release(&q, 0, true);
    printf("{\"netq\":\"done\",\"queue\":%u,\"packets\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"delayed\":%" PRIu64
           ",\"overflow\":%" PRIu64 ",\"verdict_errors\":%" PRIu64 ",\"rx_errors\":%" PRIu64 "}\n",
           (unsigned)queue, q.packets, q.dropped, q.delayed, q.overflow, q.verdict_errors, q.rx_errors);
    fflush(stdout);
    nfq_destroy_queue(q.qh);
    nfq_close(h);
    free(q.heap);
    return 0;
}
