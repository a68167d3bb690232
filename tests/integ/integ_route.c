/* integ_route: one I/O thread and one socket serve every partition of a routing
 * handle (client/client_route.c, client/client_loop.c), and the replies of every
 * partition arrive through them.
 *
 *   integ_route --config FILE --client C [--rounds R] [--backend mmsg|uring]
 *
 * Counts this process's threads (/proc/self/task) and sockets (/proc/self/fd
 * links "socket:[...]") before the open of the deployment's config, after it
 * and after the close: the open must add exactly one thread and two sockets
 * (the socket and its wake-up socket) whatever the number of partitions P, and
 * the close must take them away again. Then picks two keys of every partition
 * (by the map's key hash) and, R rounds, PUTs a fresh value to each (sync),
 * submits an async PUT of the second key of each partition, waits for all the
 * callbacks, and GETs every key back, comparing the values; finally every
 * partition's handle must have completed requests and none may have timed out.
 *
 * Prints "route {json}" with the counts. Exit 0 on success, 1 on a failed
 * check, 2 on bad arguments or an open that fails. Bounded: R <= 100 rounds,
 * 4 operations per partition per round, each with the handle's timeout.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "client/client_internal.h"

#define ROUTE_ROUNDS_MAX 100u
#define ROUTE_KEY_CAP 48u
#define ROUTE_KEY_TRIES 1000000u

static int failures;

#define ROUTE_CHECK(cond, ...)                                                                                   \
    do {                                                                                                         \
        if (!(cond)) {                                                                                           \
            fprintf(stderr, "integ_route: FAIL: " __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                                                 \
            failures++;                                                                                          \
        }                                                                                                        \
    } while (0)

/* Entries of /proc/self/task, or of /proc/self/fd whose link names a socket. */
static int count_entries(const char *dir, bool sockets)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (!sockets) {
            n++;
            continue;
        }
        char path[300], link[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, link, sizeof link - 1u);
        if (len > 0) {
            link[len] = 0;
            n += strncmp(link, "socket:", 7) == 0;
        }
    }
    closedir(d);
    return n;
}

struct async_wait {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint32_t pending;
    uint32_t failed;
};

static void on_done(void *arg, int status, const void *val, size_t vlen)
{
    struct async_wait *w = arg;
    (void)val;
    (void)vlen;
    pthread_mutex_lock(&w->mu);
    w->failed += status != 0;
    w->pending--;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* Two keys of each partition: key[2p] and key[2p + 1]. */
static int pick_keys(struct bftkv_client *r, char (*key)[ROUTE_KEY_CAP])
{
    uint32_t *have = calloc(r->parts, sizeof *have);
    if (have == NULL) {
        return -1;
    }
    uint32_t missing = 2u * r->parts;
    for (uint32_t i = 0; i < ROUTE_KEY_TRIES && missing > 0; i++) {
        char k[ROUTE_KEY_CAP];
        int len = snprintf(k, sizeof k, "route-%" PRIu32, i);
        uint32_t p = cluster_map_key_partition(r->map, k, (size_t)len);
        if (have[p] < 2u) {
            memcpy(key[2u * p + have[p]], k, (size_t)len + 1u);
            have[p]++;
            missing--;
        }
    }
    free(have);
    return missing == 0 ? 0 : -1;
}

static void round_run(struct bftkv_client *r, char (*key)[ROUTE_KEY_CAP], uint32_t round, struct async_wait *w)
{
    char val[64], got[64];
    for (uint32_t p = 0; p < r->parts; p++) {
        int len = snprintf(val, sizeof val, "r%u-%s", round, key[2u * p]);
        int rc = bftkv_put(r, key[2u * p], strlen(key[2u * p]), val, (size_t)len);
        ROUTE_CHECK(rc == 0, "put %s (partition %u): %s", key[2u * p], p, bftkv_strerror(rc));
    }
    w->pending = r->parts;
    for (uint32_t p = 0; p < r->parts; p++) {
        int len = snprintf(val, sizeof val, "a%u-%s", round, key[2u * p + 1u]);
        int rc = bftkv_submit(r, BFTKV_OP_PUT, key[2u * p + 1u], strlen(key[2u * p + 1u]), val, (size_t)len,
                              on_done, w);
        ROUTE_CHECK(rc == 0, "submit %s (partition %u): %s", key[2u * p + 1u], p, bftkv_strerror(rc));
        if (rc != 0) {
            pthread_mutex_lock(&w->mu);
            w->pending--;
            pthread_mutex_unlock(&w->mu);
        }
    }
    pthread_mutex_lock(&w->mu);
    while (w->pending > 0) {
        pthread_cond_wait(&w->cond, &w->mu); /* each callback comes by the handle's timeout */
    }
    ROUTE_CHECK(w->failed == 0, "%u async puts failed", w->failed);
    w->failed = 0;
    pthread_mutex_unlock(&w->mu);
    for (uint32_t i = 0; i < 2u * r->parts; i++) {
        int len = snprintf(val, sizeof val, "%c%u-%s", i % 2u ? 'a' : 'r', round, key[i]);
        size_t glen = 0;
        int rc = bftkv_get(r, key[i], strlen(key[i]), got, sizeof got, &glen);
        ROUTE_CHECK(rc == 0 && glen == (size_t)len && memcmp(got, val, glen) == 0, "get %s (partition %u): %s",
                    key[i], i / 2u, rc == 0 ? "a wrong value" : bftkv_strerror(rc));
    }
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    long client = -1, rounds = 3;
    const char *backend = "mmsg";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0) {
            config = argv[i + 1];
        } else if (strcmp(argv[i], "--client") == 0) {
            client = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--rounds") == 0) {
            rounds = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--backend") == 0) {
            backend = argv[i + 1];
        }
    }
    bool uring = strcmp(backend, "uring") == 0;
    if (config == NULL || client < 0 || client > UINT16_MAX || rounds < 1 || rounds > (long)ROUTE_ROUNDS_MAX
        || (!uring && strcmp(backend, "mmsg") != 0)) {
        fprintf(stderr, "usage: integ_route --config FILE --client C [--rounds 1..%u] [--backend mmsg|uring]\n",
                ROUTE_ROUNDS_MAX);
        return 2;
    }
    int threads0 = count_entries("/proc/self/task", false);
    int sockets0 = count_entries("/proc/self/fd", true);
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    opt.backend = uring ? BFTKV_BACKEND_URING : BFTKV_BACKEND_MMSG;
    struct bftkv_client *r = NULL;
    int rc = bftkv_client_open(config, (uint16_t)client, &opt, &r);
    if (rc != 0 || r->part == NULL) {
        fprintf(stderr, "integ_route: open %s: %s %s\n", config, bftkv_strerror(rc), err);
        return 2;
    }
    int threads1 = count_entries("/proc/self/task", false);
    int sockets1 = count_entries("/proc/self/fd", true);
    uint32_t parts = r->parts;
    ROUTE_CHECK(parts >= 2u, "the config has %u partitions: nothing to share", parts);
    ROUTE_CHECK(threads1 - threads0 == 1, "open added %d threads for %u partitions (want 1)", threads1 - threads0,
                parts);
    ROUTE_CHECK(sockets1 - sockets0 == 2, "open added %d sockets for %u partitions (want 2)", sockets1 - sockets0,
                parts);

    char (*key)[ROUTE_KEY_CAP] = calloc(2u * parts, sizeof *key);
    struct async_wait w = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
    if (key == NULL || pick_keys(r, key) != 0) {
        fprintf(stderr, "integ_route: cannot pick two keys of each of %u partitions\n", parts);
        bftkv_client_close(r);
        free(key);
        return 2;
    }
    for (uint32_t round = 0; round < (uint32_t)rounds; round++) {
        round_run(r, key, round, &w);
    }
    uint32_t served = 0;
    for (uint32_t p = 0; p < parts; p++) {
        struct bftkv_client_stats s = { .struct_size = sizeof s };
        rc = bftkv_client_stats(r->part[p], &s);
        ROUTE_CHECK(rc == 0 && s.completed == 4u * (uint64_t)rounds && s.timeouts == 0,
                    "partition %u: completed %" PRIu64 " (want %ld), timeouts %" PRIu64, p, s.completed,
                    4 * rounds, s.timeouts);
        served += rc == 0 && s.completed > 0;
    }
    struct bftkv_client_stats sum = { .struct_size = sizeof sum };
    rc = bftkv_client_stats(r, &sum);
    ROUTE_CHECK(rc == 0 && sum.completed == 4u * (uint64_t)rounds * parts, "the routing handle's stats: completed "
                "%" PRIu64, sum.completed);
    bftkv_client_close(r);
    int threads2 = count_entries("/proc/self/task", false);
    int sockets2 = count_entries("/proc/self/fd", true);
    ROUTE_CHECK(threads2 == threads0 && sockets2 == sockets0, "after close: %d threads, %d sockets (before open: %d, "
                "%d)", threads2, sockets2, threads0, sockets0);
    printf("route {\"partitions\": %u, \"threads_added\": %d, \"sockets_added\": %d, \"partitions_served\": %u, "
           "\"completed\": %" PRIu64 ", \"datagrams_sent\": %" PRIu64 ", \"datagrams_received\": %" PRIu64
           ", \"failures\": %d}\n",
           parts, threads1 - threads0, sockets1 - sockets0, served, sum.completed, sum.datagrams_sent,
           sum.datagrams_received, failures);
    free(key);
    return failures == 0 ? 0 : 1;
}
