/* integ_load: a bounded write load through the client library that remembers
 * every acknowledged write and checks what it reads back (for the integration
 * tests: primary killed under load, catch-up, a Byzantine replica).
 *
 * K writer threads share one handle (include/bftkv/client.h: thread-safe, up to
 * client_lanes requests in flight). Writer w owns the keys "w<w>-k<j>", j < M, and
 * alone writes them, so for each key the last acknowledged PUT defines what a
 * read must return. Each writer cycles over its keys for T seconds: PUT a fresh
 * value (every 16th one 2000 bytes, so it travels by digest rather than inlined in
 * the PRE-PREPARE), then with --verify-gets a GET of one of its keys, compared with
 * the last acknowledged value (absent if none). At the end every writer reads all
 * its keys back and compares them the same way.
 *
 * A timed-out PUT has an unknown outcome (client.h): the key then holds either
 * its last acknowledged value or the timed-out one, possibly later. The writer
 * stops writing such a key and accepts either value for it.
 *
 * SIGUSR1 sets a mark (the test sends it right after killing a replica): the
 * writes acknowledged after it are counted apart, to show progress resumed.
 *
 *   integ_load --config FILE --client C [--writers K] [--keys M] [--seconds T]
 *              [--verify-gets] [--prefix P]
 *
 * Prints a progress line per second and, last, one line "result {json}" with the
 * counts. Exit 0 when no read was wrong, no acknowledged write was lost and no
 * unexpected error happened; 1 otherwise; 2 on bad arguments or when the handle
 * cannot be opened. Everything stops by itself: T is at most 600 s and the final
 * read-back is one GET per key.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"

#define LOAD_WRITERS_MAX 64u
#define LOAD_KEYS_MAX 4096u
#define LOAD_SECONDS_MAX 600u
#define LOAD_VALUE_MAX 2000u
#define LOAD_BIG_EVERY 16u
#define LOAD_KEY_CAP 64u
#define LOAD_REPORT_WRONG_MAX 10

/* What a writer knows about one of its keys. */
struct load_key {
    bool acked;                  /* some PUT of it was acknowledged */
    bool uncertain;              /* a PUT timed out: no more writes to this key */
    uint32_t len;                /* last acknowledged value */
    uint32_t pending_len;        /* the timed-out value */
    uint8_t value[LOAD_VALUE_MAX];
    uint8_t pending[LOAD_VALUE_MAX];
};

struct load_writer {
    pthread_t thread;
    unsigned id;
    struct load_key *keys;
    uint64_t counter;
    /* results */
    uint64_t acks, acks_after_mark, gets, wrong, lost, timeouts, errors;
};

static struct {
    struct bftkv_client *client;
    const char *prefix;
    unsigned writers, keys;
    double seconds;
    bool verify_gets;
    struct timespec start;
    atomic_uint_fast64_t acks_total;
    atomic_int reported_wrong;
} load;

/* Set by SIGUSR1; a lock-free atomic, so the handler may store it. */
static atomic_int load_mark;

static void load_on_usr1(int sig)
{
    (void)sig;
    atomic_store(&load_mark, 1);
}

static double load_elapsed_s(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - load.start.tv_sec) + (double)(now.tv_nsec - load.start.tv_nsec) / 1e9;
}

static size_t load_key_name(char *buf, unsigned w, unsigned j)
{
    int n = snprintf(buf, LOAD_KEY_CAP, "%sw%u-k%u", load.prefix, w, j);
    return (size_t)n;
}

/* A fresh value for key j: text naming writer, key and counter, padded to 2000
 * bytes every LOAD_BIG_EVERY writes. */
static uint32_t load_value_make(struct load_writer *w, unsigned j, uint8_t *out)
{
    w->counter++;
    int n = snprintf((char *)out, LOAD_VALUE_MAX, "w%u-k%u-c%" PRIu64, w->id, j, w->counter);
    uint32_t len = (uint32_t)n;
    if (w->counter % LOAD_BIG_EVERY == 0) {
        for (; len < LOAD_VALUE_MAX; len++) {
            out[len] = (uint8_t)('a' + (len + w->counter) % 26u);
        }
    }
    return len;
}

static void load_report_wrong(const char *when, const char *key, const struct load_key *k, int rc,
                              const uint8_t *got, size_t glen)
{
    if (atomic_fetch_add(&load.reported_wrong, 1) >= LOAD_REPORT_WRONG_MAX) {
        return;
    }
    fprintf(stderr, "WRONG (%s) key %s: status %d (%s), got %zu bytes '%.40s', expected %s%.*s%s\n", when, key, rc,
            bftkv_errname(rc), rc == 0 ? glen : 0, rc == 0 ? (const char *)got : "",
            k->acked ? "'" : "absent", k->acked ? (int)(k->len < 40 ? k->len : 40) : 0, (const char *)k->value,
            k->uncertain ? "' or the timed-out value" : (k->acked ? "'" : ""));
}

/* Is (rc, got) what key k may hold? */
static bool load_read_ok(const struct load_key *k, int rc, const uint8_t *got, size_t glen)
{
    if (rc == BFTKV_E_NOT_FOUND) {
        return !k->acked;
    }
    if (rc != 0) {
        return false;
    }
    if (k->acked && glen == k->len && memcmp(got, k->value, glen) == 0) {
        return true;
    }
    return k->uncertain && glen == k->pending_len && memcmp(got, k->pending, glen) == 0;
}

/* One checked GET of key j. A timeout under load is counted, not judged; in the
 * final read-back an acknowledged key that cannot be read counts as lost. */
static void load_get_check(struct load_writer *w, unsigned j, const char *when, bool final)
{
    char key[LOAD_KEY_CAP];
    size_t klen = load_key_name(key, w->id, j);
    static _Thread_local uint8_t got[LOAD_VALUE_MAX + 1];
    size_t glen = 0;
    int rc = bftkv_get(load.client, key, klen, got, sizeof got - 1, &glen);
    if (rc == BFTKV_E_TIMEOUT) {
        w->timeouts++;
        if (final) {
            if (w->keys[j].acked) {
                w->lost++;
            } else {
                w->errors++;
            }
            fprintf(stderr, "final read of %s timed out\n", key);
        }
        return;
    }
    w->gets++;
    const struct load_key *k = &w->keys[j];
    if (rc != 0 && rc != BFTKV_E_NOT_FOUND) {
        w->errors++;
        fprintf(stderr, "get %s: %s\n", key, bftkv_strerror(rc));
        return;
    }
    got[rc == 0 ? glen : 0] = 0;
    if (!load_read_ok(k, rc, got, glen)) {
        if (final && rc == BFTKV_E_NOT_FOUND) {
            w->lost++;
        } else {
            w->wrong++;
        }
        load_report_wrong(when, key, k, rc, got, glen);
    }
}

static void *load_writer_main(void *arg)
{
    struct load_writer *w = arg;
    static _Thread_local uint8_t val[LOAD_VALUE_MAX];
    unsigned j = 0;
    unsigned skipped = 0;
    while (load_elapsed_s() < load.seconds) {
        struct load_key *k = &w->keys[j];
        if (k->uncertain) {
            j = (j + 1) % load.keys;
            if (++skipped >= load.keys) {
                break; /* every key is uncertain: nothing more to write */
            }
            continue;
        }
        skipped = 0;
        char key[LOAD_KEY_CAP];
        size_t klen = load_key_name(key, w->id, j);
        uint32_t vlen = load_value_make(w, j, val);
        bool marked = atomic_load(&load_mark) != 0;
        int rc = bftkv_put(load.client, key, klen, val, vlen);
        if (rc == 0) {
            k->acked = true;
            k->len = vlen;
            memcpy(k->value, val, vlen);
            w->acks++;
            if (marked) {
                w->acks_after_mark++;
            }
            atomic_fetch_add(&load.acks_total, 1);
        } else if (rc == BFTKV_E_TIMEOUT) {
            w->timeouts++;
            k->uncertain = true;
            k->pending_len = vlen;
            memcpy(k->pending, val, vlen);
        } else {
            w->errors++;
            fprintf(stderr, "put %s: %s\n", key, bftkv_strerror(rc));
        }
        if (load.verify_gets) {
            load_get_check(w, (unsigned)((j * 7u + w->counter) % load.keys), "under load", false);
        }
        j = (j + 1) % load.keys;
    }
    for (unsigned i = 0; i < load.keys; i++) {
        load_get_check(w, i, "final read-back", true);
    }
    return NULL;
}

static int load_usage(void)
{
    fprintf(stderr, "usage: integ_load --config FILE --client C [--writers K] [--keys M] [--seconds T]\n"
                    "                  [--verify-gets] [--prefix P]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    long client = -1, writers = 4, keys = 32;
    double seconds = 5.0;
    load.prefix = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--verify-gets") == 0) {
            load.verify_gets = true;
            continue;
        }
        if (i + 1 >= argc) {
            return load_usage();
        }
        const char *v = argv[++i];
        if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--client") == 0) {
            client = strtol(v, NULL, 10);
        } else if (strcmp(a, "--writers") == 0) {
            writers = strtol(v, NULL, 10);
        } else if (strcmp(a, "--keys") == 0) {
            keys = strtol(v, NULL, 10);
        } else if (strcmp(a, "--seconds") == 0) {
            seconds = strtod(v, NULL);
        } else if (strcmp(a, "--prefix") == 0) {
            load.prefix = v;
        } else {
            return load_usage();
        }
    }
    if (config == NULL || client < 0 || client >= (long)BFTKV_CLIENTS_MAX || writers < 1
        || writers > (long)LOAD_WRITERS_MAX || keys < 1 || keys > (long)LOAD_KEYS_MAX || !(seconds > 0)
        || seconds > LOAD_SECONDS_MAX || strlen(load.prefix) > 16) {
        return load_usage();
    }
    load.writers = (unsigned)writers;
    load.keys = (unsigned)keys;
    load.seconds = seconds;

    struct sigaction sa = {.sa_handler = load_on_usr1};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);

    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    int rc = bftkv_client_open(config, (uint16_t)client, &opt, &load.client);
    if (rc != 0) {
        fprintf(stderr, "integ_load: %s: %s\n", bftkv_strerror(rc), err);
        return 2;
    }

    static struct load_writer ws[LOAD_WRITERS_MAX];
    clock_gettime(CLOCK_MONOTONIC, &load.start);
    for (unsigned i = 0; i < load.writers; i++) {
        ws[i].id = i;
        ws[i].keys = calloc(load.keys, sizeof *ws[i].keys);
        if (ws[i].keys == NULL || pthread_create(&ws[i].thread, NULL, load_writer_main, &ws[i]) != 0) {
            fprintf(stderr, "integ_load: cannot start writer %u\n", i);
            return 2; /* exiting ends the other threads too */
        }
    }
    /* Progress, once a second, until the writers are done writing. */
    uint64_t prev = 0;
    for (unsigned s = 1; (double)s <= seconds; s++) {
        struct timespec one = {.tv_sec = 1};
        nanosleep(&one, NULL);
        uint64_t now = atomic_load(&load.acks_total);
        printf("progress t=%us acks=%" PRIu64 " (+%" PRIu64 ")%s\n", s, now, now - prev,
               atomic_load(&load_mark) ? " after mark" : "");
        fflush(stdout);
        prev = now;
    }
    struct load_writer sum = {0};
    for (unsigned i = 0; i < load.writers; i++) {
        pthread_join(ws[i].thread, NULL);
        sum.acks += ws[i].acks;
        sum.acks_after_mark += ws[i].acks_after_mark;
        sum.gets += ws[i].gets;
        sum.wrong += ws[i].wrong;
        sum.lost += ws[i].lost;
        sum.timeouts += ws[i].timeouts;
        sum.errors += ws[i].errors;
        free(ws[i].keys);
    }
    struct bftkv_client_stats cs = { .struct_size = sizeof cs };
    bftkv_client_stats(load.client, &cs);
    bftkv_client_close(load.client);
    printf("result {\"acks\": %" PRIu64 ", \"acks_after_mark\": %" PRIu64 ", \"gets\": %" PRIu64
           ", \"wrong\": %" PRIu64 ", \"lost\": %" PRIu64 ", \"timeouts\": %" PRIu64 ", \"errors\": %" PRIu64
           ", \"seconds\": %.2f, \"retransmissions\": %" PRIu64 ", \"readonly_fallbacks\": %" PRIu64
           ", \"replies_dropped\": %" PRIu64 "}\n",
           sum.acks, sum.acks_after_mark, sum.gets, sum.wrong, sum.lost, sum.timeouts, sum.errors, load_elapsed_s(),
           cs.retransmissions, cs.readonly_fallbacks, cs.replies_dropped);
    fflush(stdout);
    return sum.wrong == 0 && sum.lost == 0 && sum.errors == 0 ? 0 : 1;
}
