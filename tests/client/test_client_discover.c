/* Map discovery through the client's open path (client/client_discover.c,
 * docs/design.md §6.4): a config text with deployment_seeds, admin_pub (hex),
 * key_dir and map_cache, opened with bftkv_client_open_text against a fake
 * seed, a thread on 127.0.0.1 that answers MAP-REQUESTs (engine/wire_map.h)
 * with whatever signed bytes and header epoch the test sets, and answers only
 * requests that carry client 0's signature.
 *
 * The acceptance rule as a discovering client applies it: a map signed by
 * another key is refused; an older epoch than map_cache's is refused, both
 * when the seed says so in its first reply and when it lies there and the map
 * itself is older; the same bytes are taken; a newer map is taken and replaces
 * the cache; two maps for one epoch are refused; a map of several chunks is
 * assembled; a seed that does not answer is passed over for the next.
 *
 * The refetch of an open routing handle told of a newer epoch
 * (client/client_epoch.c, docs/design.md §6.3): the node that claimed it is
 * asked first, then the seeds; only a NEWER map by the acceptance rule is
 * taken (and cached), whether its groups are the held map's is decided, and
 * the rate rule bounds what a lying claim costs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/client.h"
#include "bftkv/config.h"
#include "bftkv/errors.h"
#include "client/client_internal.h"
#include "cluster/cluster.h"
#include "engine/auth.h"
#include "engine/wire_map.h"

#define M 4u
#define NODE_PORT 30990u /* the map's nodes: nothing listens, nothing is sent to them at open */

static char dir[64];
static uint8_t admin_pk[32], admin_sk[64], other_pk[32], other_sk[64];
static struct bftkv_config_client clients[1100];
static uint8_t client_pk[32];

/* ---- The fake seed ----------------------------------------------------------------- */

static struct {
    int fd;
    uint16_t port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    uint8_t *bytes; /* what it serves */
    uint32_t len;
    uint64_t epoch; /* what its replies' headers say */
    atomic_uint answered;
} seed;

static void *seed_main(void *arg)
{
    (void)arg;
    static uint8_t rx[2048], tx[WIRE_MAP_REPLY_MAX];
    while (!atomic_load(&seed.stop)) {
        struct pollfd pfd = {.fd = seed.fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        struct sockaddr_storage from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(seed.fd, rx, sizeof rx, 0, (struct sockaddr *)&from, &flen);
        struct wire_map_request rq;
        if (n <= 0 || !wire_map_request_check(rx, (size_t)n, &rq) || rq.client != 0
            || !wire_map_request_verify(rx, (size_t)n, client_pk))
            continue;
        pthread_mutex_lock(&seed.mu);
        size_t r = wire_map_reply_encode(tx, sizeof tx, seed.epoch, &rq, seed.bytes, seed.len);
        pthread_mutex_unlock(&seed.mu);
        if (r == 0)
            continue;
        atomic_fetch_add(&seed.answered, 1); /* before the client can see the answer */
        (void)sendto(seed.fd, tx, r, 0, (struct sockaddr *)&from, flen);
    }
    return NULL;
}

/* The seed serves map (epoch at `epoch` in its replies' headers), signed by sk. */
static void seed_serve(const struct cluster_map *map, const uint8_t sk[64], uint64_t epoch)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_int_equal(cluster_map_sign(map, sk, &bytes, &len), 0);
    pthread_mutex_lock(&seed.mu);
    free(seed.bytes);
    seed.bytes = bytes;
    seed.len = (uint32_t)len;
    seed.epoch = epoch;
    pthread_mutex_unlock(&seed.mu);
    atomic_store(&seed.answered, 0);
}

/* ---- Maps -------------------------------------------------------------------------- */

/* M nodes on 127.0.0.1 from port, R = 4, P = 4, `nclients` allowed clients (0 is ours). */
static struct cluster_map *map_make(uint64_t epoch, uint16_t port, uint16_t nclients)
{
    uint32_t ids[M];
    struct bftkv_config_replica node[M];
    memset(node, 0, sizeof node);
    for (uint32_t i = 0; i < M; i++) {
        ids[i] = i;
        strcpy(node[i].host, "127.0.0.1");
        node[i].port = (uint16_t)(port + i);
        struct auth_keypair kp;
        uint8_t s[BFTKV_KEY_SEED_SIZE];
        memset(s, (int)(i + 1u), sizeof s);
        auth_keypair_from_seed(&kp, s);
        memcpy(node[i].x25519, kp.x_pk, 32);
        memcpy(node[i].ed25519, kp.sign_pk, 32);
    }
    struct cluster_map_params pa = {
        .epoch = epoch, .f = 1, .rf = 4, .partitions = 4, .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
    struct cluster_map *map = NULL;
    char err[512] = "";
    if (cluster_map_build(&pa, ids, node, M, clients, nclients, &map, err, sizeof err) != 0)
        fail_msg("map: %s", err);
    return map;
}

/* ---- Opening ----------------------------------------------------------------------- */

static char cache_path[128];

/* Open client 0 through the seeds line given (NULL: the fake seed alone). 0 or
 * the open's error, its message in err. */
static int open_discover(const char *seeds, char *err, size_t errlen)
{
    char hex[65], text[1024], line[128];
    sodium_bin2hex(hex, sizeof hex, admin_pk, 32);
    if (seeds == NULL) {
        snprintf(line, sizeof line, "127.0.0.1:%u", seed.port);
        seeds = line;
    }
    int n = snprintf(text, sizeof text,
                     "deployment_seeds %s\nadmin_pub %s\nkey_dir %s/keys\nmap_cache %s\n"
                     "client_timeout_ms 600\nretransmit_ms 50\n",
                     seeds, hex, dir, cache_path);
    assert_true(n > 0 && (size_t)n < sizeof text);
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = errlen;
    opt.lanes = 1;
    err[0] = '\0';
    struct bftkv_client *c = NULL;
    int rc = bftkv_client_open_text(text, (size_t)n, "discover.conf", 0, &opt, &c);
    if (rc == 0) {
        assert_non_null(c);
        bftkv_client_close(c);
    } else {
        assert_null(c);
    }
    return rc;
}

static void expect_refused(int want, const char *needle)
{
    char err[2048];
    int rc = open_discover(NULL, err, sizeof err);
    if (rc != want || strstr(err, needle) == NULL)
        fail_msg("open: %d (%s), expected %d with '%s'", rc, err, want, needle);
}

static void expect_open(void)
{
    char err[2048];
    int rc = open_discover(NULL, err, sizeof err);
    if (rc != 0)
        fail_msg("open: %d: %s", rc, err);
}

/* Does the cache hold map signed by admin_sk, byte for byte? */
static bool cache_holds(const struct cluster_map *map)
{
    uint8_t *want = NULL, got[200000];
    size_t wlen = 0;
    assert_int_equal(cluster_map_sign(map, admin_sk, &want, &wlen), 0);
    FILE *fp = fopen(cache_path, "rb");
    size_t glen = fp != NULL ? fread(got, 1, sizeof got, fp) : 0;
    if (fp != NULL)
        fclose(fp);
    bool same = glen == wlen && memcmp(got, want, wlen) == 0;
    free(want);
    return same;
}

/* ---- Tests ------------------------------------------------------------------------- */

static void test_acceptance(void **state)
{
    (void)state;
    struct cluster_map *e1 = map_make(1, NODE_PORT, 2), *e2 = map_make(2, NODE_PORT, 2);
    struct cluster_map *e2b = map_make(2, NODE_PORT + 4u, 2), *e3 = map_make(3, NODE_PORT, 2);

    /* Nothing held: a map of another admin key is refused, nothing cached. */
    seed_serve(e1, other_sk, 1);
    expect_refused(BFTKV_E_AUTH, "does not verify with the admin public key");
    assert_int_equal(access(cache_path, F_OK), -1);
    assert_true(atomic_load(&seed.answered) >= 1);

    /* Nothing held: the admin's map is taken and cached. */
    seed_serve(e1, admin_sk, 1);
    expect_open();
    assert_true(cache_holds(e1));
    /* The same bytes again: taken, the cache unchanged. */
    expect_open();
    assert_true(cache_holds(e1));

    /* Newer: taken, cached. */
    seed_serve(e2, admin_sk, 2);
    expect_open();
    assert_true(cache_holds(e2));

    /* Older than the cache's epoch 2: refused from the first reply's epoch... */
    seed_serve(e1, admin_sk, 1);
    expect_refused(BFTKV_E_RANGE, "serves epoch 1, older than the held epoch 2");
    /* ...and when the seed lies in its header, by the map's own epoch. */
    seed_serve(e1, admin_sk, 2);
    expect_refused(BFTKV_E_RANGE, "epoch 1 is older than the current epoch 2");
    assert_true(cache_holds(e2));

    /* Another map for epoch 2 signed by the admin key: refused as a conflict. */
    seed_serve(e2b, admin_sk, 2);
    expect_refused(BFTKV_E_AUTH, "two different maps signed for epoch 2");
    /* A newer map signed by another key: refused; the cache keeps epoch 2. */
    seed_serve(e3, other_sk, 3);
    expect_refused(BFTKV_E_AUTH, "does not verify");
    assert_true(cache_holds(e2));
    seed_serve(e3, admin_sk, 3);
    expect_open();
    assert_true(cache_holds(e3));

    cluster_map_free(e1);
    cluster_map_free(e2);
    cluster_map_free(e2b);
    cluster_map_free(e3);
}

/* A map larger than one reply (1,100 clients: ~74 KB, two chunks). */
static void test_chunks(void **state)
{
    (void)state;
    struct cluster_map *big = map_make(10, NODE_PORT, 1100);
    seed_serve(big, admin_sk, 10);
    expect_open();
    assert_true(cache_holds(big));
    assert_true(atomic_load(&seed.answered) >= 2);
    assert_true(big->body_len + 64u > WIRE_MAP_CHUNK_MAX);
    cluster_map_free(big);
}

/* A seed that never answers (a closed port) is passed over for the next; with
 * no seed left the open fails, naming each seed. */
static void test_seeds_in_turn(void **state)
{
    (void)state;
    struct cluster_map *m = map_make(20, NODE_PORT, 2);
    seed_serve(m, admin_sk, 20);
    char seeds[128], err[2048];
    snprintf(seeds, sizeof seeds, "127.0.0.1:%u,127.0.0.1:%u", NODE_PORT + 9u, seed.port);
    assert_int_equal(open_discover(seeds, err, sizeof err), 0);
    assert_true(cache_holds(m));
    snprintf(seeds, sizeof seeds, "127.0.0.1:%u", NODE_PORT + 9u);
    assert_int_equal(open_discover(seeds, err, sizeof err), BFTKV_E_TIMEOUT);
    assert_non_null(strstr(err, "no answer"));
    cluster_map_free(m);
}

/* The refetch a newer claimed epoch starts: first the node that claimed it
 * (the fake seed), then the file's seeds (one that never answers). */
static int refetch(const struct cluster_map *held, bool first, const char *seeds, struct cluster_map **out,
                   char *err, size_t errlen)
{
    char hex[65], text[1024];
    sodium_bin2hex(hex, sizeof hex, admin_pk, 32);
    int n = snprintf(text, sizeof text,
                     "deployment_seeds %s\nadmin_pub %s\nkey_dir %s/keys\nmap_cache %s\n"
                     "client_timeout_ms 300\nretransmit_ms 50\n",
                     seeds, hex, dir, cache_path);
    assert_true(n > 0 && (size_t)n < sizeof text);
    struct bftkv_config *cfg = NULL;
    assert_int_equal(bftkv_config_parse(text, (size_t)n, "refetch.conf", &cfg, err, errlen), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons(seed.port)};
    struct sockaddr_storage to;
    memset(&to, 0, sizeof to);
    memcpy(&to, &a, sizeof a);
    err[0] = '\0';
    int rc = client_map_refetch(cfg, 0, held, first ? &to : NULL, sizeof a, out, err, errlen);
    bftkv_config_free(cfg);
    return rc;
}

static void test_refetch(void **state)
{
    (void)state;
    struct cluster_map *held = map_make(30, NODE_PORT, 2);
    struct cluster_map *same = map_make(30, NODE_PORT, 2), *older = map_make(29, NODE_PORT, 2);
    struct cluster_map *e31 = map_make(31, NODE_PORT, 3); /* one more client: the groups are the same */
    struct cluster_map *e32 = map_make(32, NODE_PORT, 2), *moved = map_make(33, NODE_PORT + 4u, 2);
    char dead[64], err[2048];
    snprintf(dead, sizeof dead, "127.0.0.1:%u", NODE_PORT + 9u);
    struct cluster_map *got = NULL;

    /* The claimer serves a newer map of the admin's: taken and cached, and its
     * groups are the held map's. */
    seed_serve(e31, admin_sk, 31);
    assert_int_equal(refetch(held, true, dead, &got, err, sizeof err), 0);
    assert_non_null(got);
    assert_int_equal(got->params.epoch, 31);
    assert_true(cache_holds(e31));
    assert_true(client_epoch_same_groups(held, got));
    cluster_map_free(got);
    got = NULL;

    /* Nothing newer anywhere: the held map, an older one (said in the header
     * or not), another key's: none is taken, each named, the cache unchanged. */
    seed_serve(same, admin_sk, 30);
    assert_int_equal(refetch(held, true, dead, &got, err, sizeof err), BFTKV_E_NOT_FOUND);
    assert_null(got);
    assert_non_null(strstr(err, "the node that claimed it: it serves the held map (epoch 30)"));
    assert_non_null(strstr(err, "no answer"));
    seed_serve(older, admin_sk, 29);
    assert_int_equal(refetch(held, true, dead, &got, err, sizeof err), BFTKV_E_NOT_FOUND);
    assert_non_null(strstr(err, "serves epoch 29, older than the held epoch 30"));
    seed_serve(older, admin_sk, 40); /* a lying header: the map's own epoch decides */
    assert_int_equal(refetch(held, true, dead, &got, err, sizeof err), BFTKV_E_NOT_FOUND);
    assert_non_null(strstr(err, "older than the current epoch 30"));
    seed_serve(e32, other_sk, 32);
    assert_int_equal(refetch(held, true, dead, &got, err, sizeof err), BFTKV_E_NOT_FOUND);
    assert_non_null(strstr(err, "does not verify"));
    assert_null(got);
    assert_true(cache_holds(e31));

    /* Without a claimer's address, the seeds: a newer map whose partitions
     * moved (other ports) is taken, and is not the held map's groups. */
    char seeds[128];
    snprintf(seeds, sizeof seeds, "%s,127.0.0.1:%u", dead, seed.port);
    seed_serve(moved, admin_sk, 33);
    assert_int_equal(refetch(held, false, seeds, &got, err, sizeof err), 0);
    assert_int_equal(got->params.epoch, 33);
    assert_false(client_epoch_same_groups(held, got));
    assert_true(cache_holds(moved));
    cluster_map_free(got);

    cluster_map_free(held);
    cluster_map_free(same);
    cluster_map_free(older);
    cluster_map_free(e31);
    cluster_map_free(e32);
    cluster_map_free(moved);
}

#define SEC 1000000000ull

/* The rate rule: a claim at or below the held epoch starts nothing; at most
 * one fetch a second; a claim a fetch did not bear out is believed again only
 * after a wait that doubles up to CLIENT_MAP_REFETCH_MS_MAX; a higher claim
 * is new. So a lying node costs one fetch a second while it raises its claim
 * and one per 64 s while it repeats it. */
static void test_refetch_rate(void **state)
{
    (void)state;
    struct client_epoch e;
    memset(&e, 0, sizeof e);
    e.backoff_ms = CLIENT_MAP_REFETCH_MS;
    uint64_t t = 100 * SEC;
    assert_false(client_epoch_due(&e, 5, 5, t));
    assert_false(client_epoch_due(&e, 4, 5, t));
    assert_true(client_epoch_due(&e, 6, 5, t));
    client_epoch_tried(&e, 6, false, t);
    assert_false(client_epoch_due(&e, 6, 5, t + SEC / 2));
    assert_false(client_epoch_due(&e, 7, 5, t + SEC / 2)); /* one a second, whatever the claim */
    assert_true(client_epoch_due(&e, 6, 5, t + SEC));
    /* The same claim failing again: 2 s, 4 s, ... up to 64 s. */
    uint64_t wait_ms = CLIENT_MAP_REFETCH_MS;
    for (int i = 0; i < 10; i++) {
        t += wait_ms * 1000000u;
        assert_true(client_epoch_due(&e, 6, 5, t));
        client_epoch_tried(&e, 6, false, t);
        wait_ms = wait_ms * 2u < CLIENT_MAP_REFETCH_MS_MAX ? wait_ms * 2u : CLIENT_MAP_REFETCH_MS_MAX;
        assert_int_equal(e.backoff_ms, wait_ms);
        assert_false(client_epoch_due(&e, 6, 5, t + wait_ms * 1000000u - 1u));
    }
    assert_int_equal(e.backoff_ms, CLIENT_MAP_REFETCH_MS_MAX);
    assert_int_equal(e.fetches, 11);
    assert_int_equal(e.fetch_failures, 11);
    /* A higher claim is a new one: due after the one-second floor. */
    assert_false(client_epoch_due(&e, 7, 5, t + SEC - 1u));
    assert_true(client_epoch_due(&e, 7, 5, t + SEC));
    client_epoch_tried(&e, 7, false, t + SEC);
    assert_int_equal(e.backoff_ms, CLIENT_MAP_REFETCH_MS);
    /* A fetch that bore out its claim resets the wait. */
    t += 10 * SEC;
    client_epoch_tried(&e, 8, true, t);
    assert_int_equal(e.backoff_ms, CLIENT_MAP_REFETCH_MS);
    assert_int_equal(e.fetch_failures, 12);
    assert_false(client_epoch_due(&e, 8, 8, t + 5 * SEC));
    assert_true(client_epoch_due(&e, 9, 8, t + SEC));
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    strcpy(dir, "/tmp/bftkv-discover-test.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    char path[160];
    snprintf(path, sizeof path, "%s/keys", dir);
    if (mkdir(path, 0700) != 0)
        return -1;
    snprintf(cache_path, sizeof cache_path, "%s/cache.bin", dir);
    uint8_t s[BFTKV_KEY_SEED_SIZE];
    randombytes_buf(s, sizeof s);
    cluster_map_admin_keypair(s, admin_pk, admin_sk);
    randombytes_buf(s, sizeof s);
    cluster_map_admin_keypair(s, other_pk, other_sk);
    char err[256];
    snprintf(path, sizeof path, "%s/keys/client-0.key", dir);
    if (bftkv_key_generate(path, s, err, sizeof err) != 0)
        return -1;
    struct auth_keypair kp;
    auth_keypair_from_seed(&kp, s);
    memcpy(client_pk, kp.sign_pk, 32);
    for (size_t c = 0; c < sizeof clients / sizeof clients[0]; c++) {
        clients[c].allowed = true;
        if (c == 0) {
            memcpy(clients[c].x25519, kp.x_pk, 32);
            memcpy(clients[c].ed25519, kp.sign_pk, 32);
        } else {
            randombytes_buf(clients[c].x25519, 32);
            randombytes_buf(clients[c].ed25519, 32);
        }
    }
    seed.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t alen = sizeof a;
    if (seed.fd < 0 || bind(seed.fd, (struct sockaddr *)&a, sizeof a) != 0
        || getsockname(seed.fd, (struct sockaddr *)&a, &alen) != 0)
        return -1;
    seed.port = ntohs(a.sin_port);
    pthread_mutex_init(&seed.mu, NULL);
    atomic_init(&seed.stop, false);
    return pthread_create(&seed.thread, NULL, seed_main, NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    atomic_store(&seed.stop, true);
    pthread_join(seed.thread, NULL);
    close(seed.fd);
    free(seed.bytes);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acceptance),
        cmocka_unit_test(test_chunks),
        cmocka_unit_test(test_seeds_in_turn),
        cmocka_unit_test(test_refetch),
        cmocka_unit_test(test_refetch_rate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
