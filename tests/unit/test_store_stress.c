/* Multi-threaded stress test of the store (store/store.h): two writers, two
 * readers and a snapshotter run a fixed number of operations each over shared
 * shards (writers own disjoint key ranges). Every value encodes its key id and a
 * version, so a reader can tell a torn or misplaced value from a good one, and
 * per key a reader must never see the version go backwards. The snapshotter
 * checks that each snapshot is internally consistent (its digest is the LtHash
 * of exactly the entries it yields, every entry valid) and, now and then, that it
 * survives an encode/restore round trip. At the end the store must hold exactly
 * each writer's last writes, with the digest of a freshly built store.
 *
 * Bounded by operation counts, not time; built to run clean under TSan and ASan,
 * where the counts are an eighth (tests/test_scale.h): the same code paths and
 * overlaps, fewer repetitions.
 * Threads record failures in a counter (cmocka's asserts belong to the main
 * thread); the main thread asserts it is zero. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "tests/test_scale.h"
#include "common/mix64.h"

enum {
    WRITERS = 2,
    READERS = 2,
    KEYS_PER_WRITER = 2000,
    KEYS = WRITERS * KEYS_PER_WRITER,
    RESTORE_EVERY = 8, /* every n-th snapshot also goes through encode/restore */
    VALUE_HEADER = 16, /* le64 key id | le64 version */
    VALUE_CAP = VALUE_HEADER + 64,
    CHUNK_CAP = 64 * 1024,
};

/* Operations per writer and per reader, snapshots taken: 150K, 300K and 60 in
 * Release; set once by test_stress() before the threads start. */
static uint64_t g_writer_ops, g_reader_ops, g_snapshots;

/* ---- Failure reporting from any thread ------------------------------------------ */

static atomic_uint failures;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            if (atomic_fetch_add(&failures, 1u) < 10u) {                                  \
                fprintf(stderr, "stress: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            }                                                                             \
        }                                                                                 \
    } while (0)

/* ---- Keys and values ---------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *state)
{
    return bftkv_splitmix64(state);
}

static size_t key_of(char *buf, size_t cap, uint64_t id)
{
    int n = snprintf(buf, cap, "stress-%llu", (unsigned long long)id);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* The id a key names, or UINT64_MAX if it is not a key of this test. */
static uint64_t key_id(const void *key, size_t klen)
{
    char buf[32];
    if (klen <= 7 || klen >= sizeof buf || memcmp(key, "stress-", 7) != 0) {
        return UINT64_MAX;
    }
    memcpy(buf, key, klen);
    buf[klen] = '\0';
    char *end = NULL;
    unsigned long long id = strtoull(buf + 7, &end, 10);
    return end == buf + klen && id < KEYS ? (uint64_t)id : UINT64_MAX;
}

static size_t filler_len(uint64_t id, uint64_t version)
{
    return (size_t)((version * 7 + id) % (VALUE_CAP - VALUE_HEADER + 1));
}

static uint8_t filler_byte(uint64_t id, uint64_t version, size_t j)
{
    return (uint8_t)(id * 31 + version * 17 + j);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static size_t value_of(uint8_t *buf, uint64_t id, uint64_t version)
{
    put_le64(buf, id);
    put_le64(buf + 8, version);
    size_t n = filler_len(id, version);
    for (size_t j = 0; j < n; j++) {
        buf[VALUE_HEADER + j] = filler_byte(id, version, j);
    }
    return VALUE_HEADER + n;
}

/* 0 if val is not a value this test could have written for key `id`, else its
 * version (versions start at 1). */
static uint64_t value_version(uint64_t id, const uint8_t *val, size_t vlen)
{
    if (vlen < VALUE_HEADER || get_le64(val) != id) {
        return 0;
    }
    uint64_t version = get_le64(val + 8);
    if (version == 0 || vlen != VALUE_HEADER + filler_len(id, version)) {
        return 0;
    }
    for (size_t j = 0; j < vlen - VALUE_HEADER; j++) {
        if (val[VALUE_HEADER + j] != filler_byte(id, version, j)) {
            return 0;
        }
    }
    return version;
}

/* ---- Threads ---------------------------------------------------------------------------- */

struct shared {
    struct store *s;
    pthread_barrier_t start;
    atomic_uint_fast64_t writes_done; /* operations finished by all writers */
};

/* Readers and the snapshotter pace themselves on the writers' progress, so that
 * they overlap the writes however the threads are scheduled: step i of n waits
 * until a matching share of all writes is done. */
static void wait_for_writers(struct shared *sh, uint64_t step, uint64_t steps)
{
    uint64_t target = (uint64_t)WRITERS * g_writer_ops * step / steps;
    while (atomic_load_explicit(&sh->writes_done, memory_order_relaxed) < target) {
        sched_yield();
    }
}

struct writer {
    struct shared *sh;
    unsigned index;
    uint64_t version[KEYS_PER_WRITER]; /* last version written; 0 = deleted/never */
};

struct reader {
    struct shared *sh;
    unsigned index;
    uint64_t found;
};

struct snapshotter {
    struct shared *sh;
    uint64_t entries_checked;
    uint64_t restores;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    struct store *s = w->sh->s;
    uint64_t rng = 1000 + w->index;
    uint64_t next_version = 1;
    uint8_t val[VALUE_CAP];
    char key[32];
    pthread_barrier_wait(&w->sh->start);
    for (uint64_t op = 0; op < g_writer_ops; op++) {
        uint64_t r = rng_next(&rng);
        uint64_t local = r % KEYS_PER_WRITER;
        uint64_t id = (uint64_t)w->index * KEYS_PER_WRITER + local;
        size_t kl = key_of(key, sizeof key, id);
        if ((r >> 40) % 8 == 0) {
            int rc = store_del(s, key, kl);
            CHECK(rc == (w->version[local] != 0 ? 0 : BFTKV_E_NOT_FOUND));
            w->version[local] = 0;
        } else {
            uint64_t version = next_version++;
            size_t vl = value_of(val, id, version);
            CHECK(store_put(s, key, kl, val, vl) == 0);
            w->version[local] = version;
        }
        atomic_fetch_add_explicit(&w->sh->writes_done, 1, memory_order_relaxed);
    }
    return NULL;
}

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    struct store *s = rd->sh->s;
    uint64_t rng = 2000 + rd->index;
    uint64_t *seen = calloc(KEYS, sizeof *seen); /* highest version seen per key */
    CHECK(seen != NULL);
    uint8_t val[VALUE_CAP];
    char key[32];
    pthread_barrier_wait(&rd->sh->start);
    for (uint64_t op = 0; op < g_reader_ops && seen != NULL; op++) {
        wait_for_writers(rd->sh, op, g_reader_ops);
        uint64_t id = rng_next(&rng) % KEYS;
        size_t kl = key_of(key, sizeof key, id);
        size_t vlen = 0;
        int rc = store_get(s, key, kl, val, sizeof val, &vlen);
        if (rc == BFTKV_E_NOT_FOUND) {
            continue;
        }
        CHECK(rc == 0);
        uint64_t version = value_version(id, val, vlen);
        CHECK(version != 0);
        /* One writer per key, increasing versions: reads never go back in time. */
        CHECK(version >= seen[id]);
        seen[id] = version;
        rd->found++;
    }
    free(seen);
    return NULL;
}

struct snap_check {
    struct lthash sum;
    uint64_t entries;
};

static int snap_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct snap_check *c = arg;
    uint64_t id = key_id(key, klen);
    CHECK(id != UINT64_MAX);
    if (id != UINT64_MAX) {
        CHECK(value_version(id, val, vlen) != 0);
    }
    uint8_t seed[LTHASH_SEED_SIZE];
    lthash_entry_seed(seed, key, klen, val, vlen);
    lthash_add_seed(&c->sum, seed);
    c->entries++;
    return 0;
}

static void snapshot_restore_check(const struct store_snapshot *snap, const struct lthash *want)
{
    struct store_config cfg = {8, 0};
    struct store *r = NULL;
    uint8_t *buf = malloc(CHUNK_CAP);
    CHECK(buf != NULL && store_create(&cfg, &r) == 0);
    if (buf == NULL || r == NULL) {
        free(buf);
        store_destroy(r);
        return;
    }
    for (uint32_t i = 0; i < store_snapshot_shard_count(snap); i++) {
        uint64_t cursor = 0;
        bool done = false;
        while (!done) {
            size_t len = 0;
            int rc = store_snapshot_shard_encode(snap, i, &cursor, buf, CHUNK_CAP, &len, &done);
            CHECK(rc == 0);
            CHECK(store_restore_chunk(r, buf, len) == 0);
            if (rc != 0) {
                break;
            }
        }
    }
    struct lthash got;
    store_digest(r, &got);
    CHECK(lthash_equal(&got, want));
    CHECK(store_count(r) == store_snapshot_count(snap));
    store_destroy(r);
    free(buf);
}

static void *snapshotter_main(void *arg)
{
    struct snapshotter *sn = arg;
    struct store *s = sn->sh->s;
    pthread_barrier_wait(&sn->sh->start);
    /* Two snapshots live at once: each is released after the next is taken and
     * checked, alternately the older and the newer first (docs/design.md §3.4). */
    struct store_snapshot *prev = NULL;
    for (uint64_t n = 0; n < g_snapshots; n++) {
        wait_for_writers(sn->sh, n + 1, g_snapshots + 1);
        struct store_snapshot *snap = NULL;
        CHECK(store_snapshot_take(s, &snap) == 0);
        if (snap == NULL) {
            continue;
        }
        struct snap_check c;
        lthash_zero(&c.sum);
        c.entries = 0;
        for (uint32_t i = 0; i < store_snapshot_shard_count(snap); i++) {
            CHECK(store_snapshot_shard_foreach(snap, i, snap_visit, &c) == 0);
        }
        struct lthash d;
        store_snapshot_digest(snap, &d);
        CHECK(lthash_equal(&d, &c.sum));
        CHECK(c.entries == store_snapshot_count(snap));
        CHECK(c.entries <= KEYS);
        sn->entries_checked += c.entries;
        if (n % RESTORE_EVERY == 0) {
            snapshot_restore_check(snap, &d);
            sn->restores++;
        }
        /* Exercise the lock-taking readers of the whole store too. */
        uint8_t bytes[LTHASH_DIGEST_SIZE];
        store_digest_bytes(s, bytes);
        CHECK(store_count(s) <= KEYS);
        if (n % 2 == 0) {
            store_snapshot_release(prev);
            prev = snap;
        } else {
            store_snapshot_release(snap);
        }
    }
    store_snapshot_release(prev);
    return NULL;
}

/* ---- The test ------------------------------------------------------------------------------ */

static void test_stress(void **state)
{
    (void)state;
    g_writer_ops = test_iters(150000, 15000);
    g_reader_ops = test_iters(300000, 30000);
    g_snapshots = test_iters(60, 16); /* at least two go through encode/restore */
    struct shared sh;
    /* Few shards and tiny tables: more contention, growth and copying under load. */
    struct store_config cfg = {16, 4};
    assert_int_equal(store_create(&cfg, &sh.s), 0);
    assert_int_equal(pthread_barrier_init(&sh.start, NULL, WRITERS + READERS + 1), 0);
    atomic_init(&sh.writes_done, 0);

    static struct writer writers[WRITERS];
    static struct reader readers[READERS];
    static struct snapshotter snapper;
    pthread_t threads[WRITERS + READERS + 1];
    unsigned nt = 0;
    for (unsigned i = 0; i < WRITERS; i++) {
        memset(&writers[i], 0, sizeof writers[i]);
        writers[i].sh = &sh;
        writers[i].index = i;
        assert_int_equal(pthread_create(&threads[nt++], NULL, writer_main, &writers[i]), 0);
    }
    for (unsigned i = 0; i < READERS; i++) {
        readers[i] = (struct reader){&sh, i, 0};
        assert_int_equal(pthread_create(&threads[nt++], NULL, reader_main, &readers[i]), 0);
    }
    snapper = (struct snapshotter){&sh, 0, 0};
    assert_int_equal(pthread_create(&threads[nt++], NULL, snapshotter_main, &snapper), 0);
    for (unsigned i = 0; i < nt; i++) {
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    }
    pthread_barrier_destroy(&sh.start);
    assert_int_equal(atomic_load(&failures), 0);
    /* The readers and the snapshotter did see data (not a vacuous pass). */
    assert_true(readers[0].found + readers[1].found > 0);
    assert_true(snapper.entries_checked > 0);
    assert_int_equal(snapper.restores, (g_snapshots + RESTORE_EVERY - 1) / RESTORE_EVERY);
    print_message("stress: %llu reads found a value, %llu snapshot entries checked, %llu restores\n",
                  (unsigned long long)(readers[0].found + readers[1].found),
                  (unsigned long long)snapper.entries_checked, (unsigned long long)snapper.restores);

    /* Single-threaded: exactly the writers' last writes, and the digest of a
     * store built from them directly. */
    struct store_config fresh_cfg = {4, 0};
    struct store *fresh = NULL;
    assert_int_equal(store_create(&fresh_cfg, &fresh), 0);
    uint64_t present = 0;
    char key[32];
    uint8_t want[VALUE_CAP];
    uint8_t got[VALUE_CAP];
    for (unsigned w = 0; w < WRITERS; w++) {
        for (uint64_t local = 0; local < KEYS_PER_WRITER; local++) {
            uint64_t id = (uint64_t)w * KEYS_PER_WRITER + local;
            size_t kl = key_of(key, sizeof key, id);
            size_t vlen = 0;
            int rc = store_get(sh.s, key, kl, got, sizeof got, &vlen);
            if (writers[w].version[local] == 0) {
                assert_int_equal(rc, BFTKV_E_NOT_FOUND);
                continue;
            }
            assert_int_equal(rc, 0);
            size_t wl = value_of(want, id, writers[w].version[local]);
            assert_int_equal(vlen, wl);
            assert_memory_equal(got, want, wl);
            assert_int_equal(store_put(fresh, key, kl, want, wl), 0);
            present++;
        }
    }
    assert_int_equal(store_count(sh.s), present);
    struct lthash a;
    struct lthash b;
    store_digest(sh.s, &a);
    store_digest(fresh, &b);
    assert_true(lthash_equal(&a, &b));
    struct store_test_stats st;
    assert_int_equal(store_test_verify(sh.s, &st), 0);
    assert_int_equal(st.live_snapshots, 0); /* every snapshot was released */
    assert_int_equal(st.undo_records + st.retired_entries + st.frozen_layouts, 0);

    store_destroy(fresh);
    store_destroy(sh.s);
}

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
