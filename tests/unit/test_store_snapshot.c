/* Unit tests of the store's copy-on-write snapshots and of state transfer's
 * chunk format (store/store.h): a 100K-key round trip (12.5K in sanitizer
 * builds) through encode and restore (into stores of other shard counts), isolation from later writes,
 * snapshots that outlive their store, chunking edge cases, and restore's
 * all-or-nothing rejection of malformed chunks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

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

#define CHUNK_CAP (64u * 1024u)
#define RECORD_HEADER 6u

_Static_assert(CHUNK_CAP >= BFTKV_KEY_MAX + BFTKV_VALUE_MAX + RECORD_HEADER, "a chunk holds any record");

/* ---- Helpers ---------------------------------------------------------------------- */

static struct store *new_store(uint32_t shards)
{
    struct store_config cfg = {shards, 0};
    struct store *s = NULL;
    assert_int_equal(store_create(&cfg, &s), 0);
    return s;
}

static size_t key_of(char *buf, size_t cap, uint64_t i)
{
    int n = snprintf(buf, cap, "snap-key-%llu", (unsigned long long)i);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* Values of varied length (0..~300 bytes, and a few near BFTKV_VALUE_MAX so that
 * chunks fill unevenly), filled from (i, version) so any mix-up shows. */
static size_t value_len(uint64_t i)
{
    if (i % 25013 == 17) {
        return BFTKV_VALUE_MAX - (size_t)(i % 7);
    }
    return (size_t)((i * 2654435761u) % 301u);
}

static void value_fill(uint8_t *buf, uint64_t i, uint64_t version, size_t len)
{
    for (size_t j = 0; j < len; j++) {
        buf[j] = (uint8_t)(i * 131 + version * 17 + j * 7);
    }
}

static void put_numbered(struct store *s, uint64_t i, uint64_t version, uint8_t *scratch)
{
    char k[32];
    size_t kl = key_of(k, sizeof k, i);
    size_t vl = value_len(i + version);
    value_fill(scratch, i, version, vl);
    assert_int_equal(store_put(s, k, kl, scratch, vl), 0);
}

static void assert_numbered(struct store *s, uint64_t i, uint64_t version, uint8_t *want, uint8_t *got)
{
    char k[32];
    size_t kl = key_of(k, sizeof k, i);
    size_t vl = value_len(i + version);
    value_fill(want, i, version, vl);
    size_t n = 0;
    assert_int_equal(store_get(s, k, kl, got, BFTKV_VALUE_MAX, &n), 0);
    assert_int_equal(n, vl);
    assert_memory_equal(got, want, vl);
}

static void assert_same_state(const struct store *s, const struct store_snapshot *snap)
{
    struct lthash a;
    struct lthash b;
    store_digest(s, &a);
    store_snapshot_digest(snap, &b);
    assert_true(lthash_equal(&a, &b));
    assert_int_equal(store_count(s), store_snapshot_count(snap));
}

/* Encode every shard of snap in CHUNK_CAP chunks and restore each chunk into dst.
 * Returns the number of records seen; *chunks counts the chunks. */
static uint64_t transfer(const struct store_snapshot *snap, struct store *dst, uint64_t *chunks)
{
    uint8_t *buf = malloc(CHUNK_CAP);
    assert_non_null(buf);
    uint64_t records = 0;
    *chunks = 0;
    for (uint32_t sh = 0; sh < store_snapshot_shard_count(snap); sh++) {
        uint64_t cursor = 0;
        bool done = false;
        while (!done) {
            size_t len = 0;
            assert_int_equal(store_snapshot_shard_encode(snap, sh, &cursor, buf, CHUNK_CAP, &len, &done), 0);
            assert_true(len <= CHUNK_CAP);
            /* Walk the records: they must be well formed and whole. */
            size_t off = 0;
            while (off < len) {
                assert_true(len - off >= RECORD_HEADER);
                size_t kl = (size_t)buf[off] | ((size_t)buf[off + 1] << 8);
                size_t vl = (size_t)buf[off + 2] | ((size_t)buf[off + 3] << 8) | ((size_t)buf[off + 4] << 16) |
                            ((size_t)buf[off + 5] << 24);
                assert_true(kl >= 1 && kl <= BFTKV_KEY_MAX && vl <= BFTKV_VALUE_MAX);
                off += RECORD_HEADER + kl + vl;
                records++;
            }
            assert_int_equal(off, len);
            assert_true(len > 0 || done); /* no empty chunk unless the shard is over */
            assert_int_equal(store_restore_chunk(dst, buf, len), 0);
            (*chunks)++;
        }
    }
    free(buf);
    return records;
}

struct visit_ctx {
    uint64_t entries;
    uint64_t bytes;
    int stop_after;
};

static int count_visit(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct visit_ctx *c = arg;
    assert_non_null(key);
    assert_true(klen >= 1);
    assert_true(val != NULL || vlen == 0);
    c->entries++;
    c->bytes += klen + vlen;
    if (c->stop_after > 0 && c->entries == (uint64_t)c->stop_after) {
        return 77;
    }
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- Tests ---------------------------------------------------------------------------- */

/* 100K keys (12.5K in sanitizer builds, tests/test_scale.h): either way every
 * one of the 256 shards holds dozens and travels in its own chunks. */
static void test_round_trip_100k(void **state)
{
    (void)state;
    const uint64_t round_trip_keys = test_iters(100000, 10000);
    uint8_t *want = malloc(BFTKV_VALUE_MAX);
    uint8_t *got = malloc(BFTKV_VALUE_MAX);
    assert_non_null(want);
    assert_non_null(got);
    struct store *src = new_store(256);
    for (uint64_t i = 0; i < round_trip_keys; i++) {
        put_numbered(src, i, 0, want);
    }
    struct store_snapshot *snap = NULL;
    assert_int_equal(store_snapshot_take(src, &snap), 0);
    assert_int_equal(store_snapshot_shard_count(snap), 256);
    assert_int_equal(store_snapshot_count(snap), round_trip_keys);
    assert_same_state(src, snap);

    uint64_t visited = 0;
    for (uint32_t sh = 0; sh < 256; sh++) {
        struct visit_ctx c = {0, 0, 0};
        assert_int_equal(store_snapshot_shard_foreach(snap, sh, count_visit, &c), 0);
        visited += c.entries;
    }
    assert_int_equal(visited, round_trip_keys);

    /* Into a store with fewer shards, and into one that had other contents and
     * was cleared. */
    struct store *dst = new_store(16);
    uint64_t chunks = 0;
    assert_int_equal(transfer(snap, dst, &chunks), round_trip_keys);
    assert_true(chunks >= 256);
    struct store *dst2 = new_store(1);
    for (uint64_t i = 0; i < 100; i++) {
        put_numbered(dst2, round_trip_keys + i, 3, want);
    }
    store_clear(dst2);
    assert_int_equal(transfer(snap, dst2, &chunks), round_trip_keys);

    assert_same_state(dst, snap);
    assert_same_state(dst2, snap);
    uint8_t d1[LTHASH_DIGEST_SIZE];
    uint8_t d2[LTHASH_DIGEST_SIZE];
    store_digest_bytes(src, d1);
    store_digest_bytes(dst, d2);
    assert_memory_equal(d1, d2, sizeof d1);
    for (uint64_t i = 0; i < round_trip_keys; i++) {
        assert_numbered(dst, i, 0, want, got);
        if (i % 10 == 0) {
            assert_numbered(dst2, i, 0, want, got);
        }
    }
    assert_int_equal(store_test_verify(dst, NULL), 0);

    store_snapshot_release(snap);
    store_destroy(src);
    store_destroy(dst);
    store_destroy(dst2);
    free(want);
    free(got);
}

enum { ISO_KEYS = 3000 };

static void test_isolation(void **state)
{
    (void)state;
    uint8_t *want = malloc(BFTKV_VALUE_MAX);
    uint8_t *got = malloc(BFTKV_VALUE_MAX);
    assert_non_null(want);
    assert_non_null(got);
    struct store *s = new_store(8);
    for (uint64_t i = 0; i < ISO_KEYS; i++) {
        put_numbered(s, i, 0, want);
    }
    struct lthash v0;
    store_digest(s, &v0);
    struct store_snapshot *snap0 = NULL;
    assert_int_equal(store_snapshot_take(s, &snap0), 0);

    /* Change everything a write can change: overwrite, delete, insert (enough
     * inserts to grow the tables). */
    for (uint64_t i = 0; i < ISO_KEYS; i += 2) {
        put_numbered(s, i, 1, want);
    }
    for (uint64_t i = 1; i < ISO_KEYS; i += 4) {
        char k[32];
        size_t kl = key_of(k, sizeof k, i);
        assert_int_equal(store_del(s, k, kl), 0);
    }
    for (uint64_t i = ISO_KEYS; i < 3 * ISO_KEYS; i++) {
        put_numbered(s, i, 0, want);
    }
    struct lthash v1;
    store_digest(s, &v1);
    assert_false(lthash_equal(&v0, &v1));

    struct store_snapshot *snap1 = NULL;
    assert_int_equal(store_snapshot_take(s, &snap1), 0);
    store_clear(s);
    struct store_snapshot *snap2 = NULL;
    assert_int_equal(store_snapshot_take(s, &snap2), 0);
    put_numbered(s, 5, 9, want);

    /* Each snapshot still shows its own moment. */
    struct lthash h;
    store_snapshot_digest(snap0, &h);
    assert_true(lthash_equal(&h, &v0));
    assert_int_equal(store_snapshot_count(snap0), ISO_KEYS);
    store_snapshot_digest(snap1, &h);
    assert_true(lthash_equal(&h, &v1));
    assert_int_equal(store_snapshot_count(snap1), 3 * ISO_KEYS - ISO_KEYS / 4);
    store_snapshot_digest(snap2, &h);
    struct lthash empty;
    lthash_zero(&empty);
    assert_true(lthash_equal(&h, &empty));
    assert_int_equal(store_snapshot_count(snap2), 0);

    /* Contents of snap0, key by key, through a restore. */
    struct store *r0 = new_store(4);
    uint64_t chunks = 0;
    assert_int_equal(transfer(snap0, r0, &chunks), ISO_KEYS);
    for (uint64_t i = 0; i < ISO_KEYS; i++) {
        assert_numbered(r0, i, 0, want, got);
    }
    assert_same_state(r0, snap0);
    char k[32];
    size_t kl = key_of(k, sizeof k, ISO_KEYS);
    size_t n = 0;
    assert_int_equal(store_get(r0, k, kl, got, BFTKV_VALUE_MAX, &n), BFTKV_E_NOT_FOUND);

    struct store *r2 = new_store(4);
    assert_int_equal(transfer(snap2, r2, &chunks), 0);
    assert_int_equal(store_count(r2), 0);

    /* Releasing out of order leaves the others intact. */
    store_snapshot_release(snap1);
    store_snapshot_digest(snap0, &h);
    assert_true(lthash_equal(&h, &v0));
    store_snapshot_release(snap0);
    store_snapshot_release(snap2);
    assert_int_equal(store_test_verify(s, NULL), 0);
    assert_int_equal(store_count(s), 1);
    assert_numbered(s, 5, 9, want, got);

    store_destroy(r0);
    store_destroy(r2);
    store_destroy(s);
    free(want);
    free(got);
}

static void test_snapshot_outlives_store(void **state)
{
    (void)state;
    uint8_t *want = malloc(BFTKV_VALUE_MAX);
    uint8_t *got = malloc(BFTKV_VALUE_MAX);
    assert_non_null(want);
    assert_non_null(got);
    struct store *s = new_store(32);
    for (uint64_t i = 0; i < 2000; i++) {
        put_numbered(s, i, 0, want);
    }
    struct lthash before;
    store_digest(s, &before);
    struct store_snapshot *snap = NULL;
    assert_int_equal(store_snapshot_take(s, &snap), 0);
    /* Some shards copied after the snapshot, some not, then the store goes. */
    put_numbered(s, 0, 1, want);
    put_numbered(s, 1, 1, want);
    store_destroy(s);

    struct lthash h;
    store_snapshot_digest(snap, &h);
    assert_true(lthash_equal(&h, &before));
    struct store *r = new_store(64);
    uint64_t chunks = 0;
    assert_int_equal(transfer(snap, r, &chunks), 2000);
    for (uint64_t i = 0; i < 2000; i++) {
        assert_numbered(r, i, 0, want, got);
    }
    store_snapshot_release(snap);
    store_digest(r, &h);
    assert_true(lthash_equal(&h, &before));
    store_destroy(r);
    free(want);
    free(got);
}

static void test_encode_chunking(void **state)
{
    (void)state;
    struct store *s = new_store(1);
    /* Four records of 6 + 2 + 10 = 18 bytes each. */
    for (int i = 0; i < 4; i++) {
        char k[3] = {'k', (char)('0' + i), 0};
        assert_int_equal(store_put(s, k, 2, "0123456789", 10), 0);
    }
    struct store_snapshot *snap = NULL;
    assert_int_equal(store_snapshot_take(s, &snap), 0);
    uint8_t buf[64];
    uint64_t cursor = 0;
    size_t len = 99;
    bool done = true;

    /* Smaller than one record: refused, cursor unchanged. */
    assert_int_equal(store_snapshot_shard_encode(snap, 0, &cursor, buf, 17, &len, &done), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(cursor, 0);
    assert_int_equal(len, 0);
    assert_false(done);

    /* Exactly one record per call (35 bytes fit one, not two). */
    struct store *r = new_store(2);
    for (int call = 0; call < 4; call++) {
        assert_int_equal(store_snapshot_shard_encode(snap, 0, &cursor, buf, 35, &len, &done), 0);
        assert_int_equal(len, 18);
        assert_int_equal(done, call == 3);
        assert_int_equal(buf[0], 2);
        assert_int_equal(buf[1], 0);
        assert_int_equal(buf[2], 10);
        assert_int_equal(buf[3] | buf[4] | buf[5], 0);
        assert_memory_equal(buf + 8, "0123456789", 10);
        assert_int_equal(store_restore_chunk(r, buf, len), 0);
    }
    assert_same_state(r, snap);

    /* Two per call with 36 bytes; all four with plenty. */
    cursor = 0;
    assert_int_equal(store_snapshot_shard_encode(snap, 0, &cursor, buf, 36, &len, &done), 0);
    assert_int_equal(len, 36);
    assert_false(done);
    assert_int_equal(store_snapshot_shard_encode(snap, 0, &cursor, buf, 36, &len, &done), 0);
    assert_int_equal(len, 36);
    assert_true(done);
    cursor = 0;
    assert_int_equal(store_snapshot_shard_encode(snap, 0, &cursor, buf, sizeof buf, &len, &done), BFTKV_E_OK);
    assert_int_equal(len, 54); /* 3 of 4 fit 64 bytes */
    assert_false(done);
    store_snapshot_release(snap);

    /* An empty shard is done at once. */
    struct store *e = new_store(4);
    assert_int_equal(store_snapshot_take(e, &snap), 0);
    for (uint32_t sh = 0; sh < 4; sh++) {
        cursor = 0;
        done = false;
        assert_int_equal(store_snapshot_shard_encode(snap, sh, &cursor, buf, sizeof buf, &len, &done), 0);
        assert_int_equal(len, 0);
        assert_true(done);
        struct visit_ctx c = {0, 0, 0};
        assert_int_equal(store_snapshot_shard_foreach(snap, sh, count_visit, &c), 0);
        assert_int_equal(c.entries, 0);
    }
    store_snapshot_release(snap);
    store_destroy(e);
    store_destroy(r);
    store_destroy(s);
}

static void test_foreach_stops(void **state)
{
    (void)state;
    struct store *s = new_store(1);
    for (int i = 0; i < 10; i++) {
        char k[4] = {'k', (char)('0' + i), 0, 0};
        assert_int_equal(store_put(s, k, 2, "v", 1), 0);
    }
    struct store_snapshot *snap = NULL;
    assert_int_equal(store_snapshot_take(s, &snap), 0);
    struct visit_ctx c = {0, 0, 3};
    assert_int_equal(store_snapshot_shard_foreach(snap, 0, count_visit, &c), 77);
    assert_int_equal(c.entries, 3);
    c = (struct visit_ctx){0, 0, 0};
    assert_int_equal(store_snapshot_shard_foreach(snap, 0, count_visit, &c), 0);
    assert_int_equal(c.entries, 10);
    assert_int_equal(c.bytes, 30);
    store_snapshot_release(snap);
    store_destroy(s);
}

/* Restore must validate the whole chunk before applying any of it. */
static void assert_rejected(struct store *s, const uint8_t *chunk, size_t len, const struct lthash *before,
                            uint64_t count)
{
    assert_int_equal(store_restore_chunk(s, chunk, len), BFTKV_E_CORRUPT);
    struct lthash h;
    store_digest(s, &h);
    assert_true(lthash_equal(&h, before));
    assert_int_equal(store_count(s), count);
}

static size_t put_record(uint8_t *p, uint32_t klen, uint32_t vlen, uint8_t fill)
{
    p[0] = (uint8_t)klen;
    p[1] = (uint8_t)(klen >> 8);
    p[2] = (uint8_t)vlen;
    p[3] = (uint8_t)(vlen >> 8);
    p[4] = (uint8_t)(vlen >> 16);
    p[5] = (uint8_t)(vlen >> 24);
    memset(p + RECORD_HEADER, fill, (size_t)klen + vlen);
    return RECORD_HEADER + klen + vlen;
}

static void test_restore_rejects_corrupt(void **state)
{
    (void)state;
    struct store *s = new_store(4);
    assert_int_equal(store_put(s, "keep", 4, "me", 2), 0);
    struct lthash before;
    store_digest(s, &before);
    const uint64_t count = 1;

    uint8_t *chunk = calloc(1, 4 * (BFTKV_KEY_MAX + BFTKV_VALUE_MAX + RECORD_HEADER));
    assert_non_null(chunk);
    /* A valid chunk: two small records and a maximal one; the bad ones below
     * follow the good ones, so a restore that applied as it parsed would show. */
    size_t good = 0;
    good += put_record(chunk + good, 3, 5, 'a');
    good += put_record(chunk + good, 1, 0, 'b');
    good += put_record(chunk + good, BFTKV_KEY_MAX, BFTKV_VALUE_MAX, 'c');

    /* Every truncation of the valid chunk. */
    for (size_t cut = 1; cut < good; cut++) {
        if (cut == 14 || cut == 21) {
            continue; /* record boundaries: a shorter but valid chunk */
        }
        assert_rejected(s, chunk, cut, &before, count);
    }
    /* Trailing garbage: 1..5 bytes (a partial header) and a full header whose
     * body is missing. */
    for (size_t extra = 1; extra <= 5; extra++) {
        memset(chunk + good, 0xee, extra);
        assert_rejected(s, chunk, good + extra, &before, count);
    }
    put_record(chunk + good, 2, 2, 'z');
    assert_rejected(s, chunk, good + RECORD_HEADER + 3, &before, count);

    /* Bad lengths after valid records. */
    size_t bad = good;
    put_record(chunk + bad, 0, 1, 'x'); /* empty key */
    assert_rejected(s, chunk, bad + RECORD_HEADER + 1, &before, count);
    put_record(chunk + bad, BFTKV_KEY_MAX + 1, 0, 'x'); /* key too long */
    assert_rejected(s, chunk, bad + RECORD_HEADER + BFTKV_KEY_MAX + 1, &before, count);
    put_record(chunk + bad, 1, BFTKV_VALUE_MAX + 1, 'x'); /* value too long */
    assert_rejected(s, chunk, bad + RECORD_HEADER + 1 + BFTKV_VALUE_MAX + 1, &before, count);
    put_record(chunk + bad, 1, 0, 'x');
    chunk[bad] = 0xff; /* klen 65535 */
    chunk[bad + 1] = 0xff;
    assert_rejected(s, chunk, bad + RECORD_HEADER + 1, &before, count);
    put_record(chunk + bad, 1, 1, 'x');
    chunk[bad + 5] = 0x80; /* vlen 2^31 + 1: would overflow a careless bounds check */
    assert_rejected(s, chunk, bad + RECORD_HEADER + 2, &before, count);
    assert_int_equal(store_restore_chunk(s, NULL, 5), BFTKV_E_INVAL);

    /* Nothing to do is fine; the valid chunk applies whole. */
    assert_int_equal(store_restore_chunk(s, chunk, 0), 0);
    assert_int_equal(store_restore_chunk(s, NULL, 0), 0);
    assert_int_equal(store_count(s), count);
    assert_int_equal(store_restore_chunk(s, chunk, good), 0);
    assert_int_equal(store_count(s), count + 3);
    size_t vlen = 0;
    uint8_t val[8];
    assert_int_equal(store_get(s, "aaa", 3, val, sizeof val, &vlen), 0);
    assert_int_equal(vlen, 5);
    assert_memory_equal(val, "aaaaa", 5);
    assert_int_equal(store_get(s, "b", 1, val, sizeof val, &vlen), 0);
    assert_int_equal(vlen, 0);
    /* Applying it twice is idempotent. */
    struct lthash once;
    store_digest(s, &once);
    assert_int_equal(store_restore_chunk(s, chunk, good), 0);
    struct lthash twice;
    store_digest(s, &twice);
    assert_true(lthash_equal(&once, &twice));
    free(chunk);
    store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_100k),
        cmocka_unit_test(test_isolation),
        cmocka_unit_test(test_snapshot_outlives_store),
        cmocka_unit_test(test_encode_chunking),
        cmocka_unit_test(test_foreach_stops),
        cmocka_unit_test(test_restore_rejects_corrupt),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
