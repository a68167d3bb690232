/* Unit tests of the store's single-threaded behaviour (store/store.h): put, get,
 * del and count semantics, the limits at exactly max and max + 1, the state
 * digest's promises (order and shard-count independence, put-then-del returns to
 * where it was, any change moves it), growth from a tiny table, long put/del
 * churn, clear, and out-of-memory paths that must change nothing. After the
 * heavier scenarios store_test_verify() checks the tables' internal invariants. */
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
#include "common/mix64.h"

/* ---- Helpers ------------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *state)
{
    return bftkv_splitmix64(state);
}

static struct store *new_store(uint32_t shards, uint32_t initial_slots)
{
    struct store_config cfg = {shards, initial_slots};
    struct store *s = NULL;
    assert_int_equal(store_create(&cfg, &s), 0);
    assert_non_null(s);
    return s;
}

static size_t key_of(char *buf, size_t cap, uint64_t i)
{
    int n = snprintf(buf, cap, "key-%08llu", (unsigned long long)i);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static size_t value_of(char *buf, size_t cap, uint64_t i, uint64_t version)
{
    int n = snprintf(buf, cap, "value-%llu-v%llu", (unsigned long long)i, (unsigned long long)version);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

static void put_str(struct store *s, const char *k, const char *v)
{
    assert_int_equal(store_put(s, k, strlen(k), v, strlen(v)), 0);
}

static void assert_get_str(struct store *s, const char *k, const char *want)
{
    char buf[256];
    size_t vlen = 0;
    assert_int_equal(store_get(s, k, strlen(k), buf, sizeof buf, &vlen), 0);
    assert_int_equal(vlen, strlen(want));
    assert_memory_equal(buf, want, vlen);
}

static void assert_absent(struct store *s, const void *k, size_t klen)
{
    char buf[8];
    size_t vlen = 12345;
    assert_int_equal(store_get(s, k, klen, buf, sizeof buf, &vlen), BFTKV_E_NOT_FOUND);
}

static void assert_same_digest(const struct store *a, const struct store *b)
{
    struct lthash ha;
    struct lthash hb;
    store_digest(a, &ha);
    store_digest(b, &hb);
    assert_true(lthash_equal(&ha, &hb));
    uint8_t da[LTHASH_DIGEST_SIZE];
    uint8_t db[LTHASH_DIGEST_SIZE];
    store_digest_bytes(a, da);
    store_digest_bytes(b, db);
    assert_memory_equal(da, db, sizeof da);
}

static void assert_digest_is(const struct store *s, const struct lthash *want)
{
    struct lthash h;
    store_digest(s, &h);
    assert_true(lthash_equal(&h, want));
}

static void assert_verified(struct store *s)
{
    assert_int_equal(store_test_verify(s, NULL), 0);
}

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* ---- Life cycle ------------------------------------------------------------------- */

static void test_create_config(void **state)
{
    (void)state;
    struct store *s = NULL;
    assert_int_equal(store_create(NULL, &s), 0);
    assert_int_equal(store_shard_count(s), BFTKV_STORE_SHARDS_DEFAULT);
    assert_int_equal(store_count(s), 0);
    store_destroy(s);

    const uint32_t good[] = {1, 2, 64, BFTKV_STORE_SHARDS_MAX};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct store_config cfg = {good[i], 0};
        s = NULL;
        assert_int_equal(store_create(&cfg, &s), 0);
        assert_int_equal(store_shard_count(s), good[i]);
        put_str(s, "k", "v");
        assert_get_str(s, "k", "v");
        store_destroy(s);
    }
    const uint32_t bad[] = {3, 6, 100, BFTKV_STORE_SHARDS_MAX * 2, BFTKV_STORE_SHARDS_MAX + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct store_config cfg = {bad[i], 0};
        s = (struct store *)&cfg; /* must be overwritten with NULL */
        assert_int_equal(store_create(&cfg, &s), BFTKV_E_INVAL);
        assert_null(s);
    }
    struct store_config huge = {4, (1u << 30) + 1};
    assert_int_equal(store_create(&huge, &s), BFTKV_E_INVAL);
    store_destroy(NULL); /* allowed, like free() */
}

/* ---- Semantics -------------------------------------------------------------------- */

static void test_put_get_del_count(void **state)
{
    (void)state;
    struct store *s = new_store(4, 0);
    assert_absent(s, "a", 1);
    assert_int_equal(store_del(s, "a", 1), BFTKV_E_NOT_FOUND);

    put_str(s, "a", "1");
    put_str(s, "b", "22");
    put_str(s, "c", "333");
    assert_int_equal(store_count(s), 3);
    assert_get_str(s, "a", "1");
    assert_get_str(s, "b", "22");
    assert_get_str(s, "c", "333");
    assert_absent(s, "d", 1);

    assert_int_equal(store_del(s, "b", 1), 0);
    assert_int_equal(store_count(s), 2);
    assert_absent(s, "b", 1);
    assert_int_equal(store_del(s, "b", 1), BFTKV_E_NOT_FOUND);
    assert_int_equal(store_count(s), 2);
    assert_get_str(s, "a", "1");
    assert_get_str(s, "c", "333");

    put_str(s, "b", "back");
    assert_get_str(s, "b", "back");
    assert_int_equal(store_count(s), 3);
    assert_verified(s);
    store_destroy(s);
}

static void test_overwrite(void **state)
{
    (void)state;
    struct store *s = new_store(2, 0);
    put_str(s, "key", "first");
    put_str(s, "key", "second, and longer");
    assert_int_equal(store_count(s), 1);
    assert_get_str(s, "key", "second, and longer");
    put_str(s, "key", "3");
    assert_get_str(s, "key", "3");
    assert_int_equal(store_count(s), 1);
    assert_verified(s);
    store_destroy(s);
}

static void test_empty_value(void **state)
{
    (void)state;
    struct store *s = new_store(1, 0);
    assert_int_equal(store_put(s, "e", 1, NULL, 0), 0);
    assert_int_equal(store_put(s, "f", 1, "ignored", 0), 0);
    assert_int_equal(store_count(s), 2);

    size_t vlen = 99;
    assert_int_equal(store_get(s, "e", 1, NULL, 0, &vlen), 0);
    assert_int_equal(vlen, 0);
    char buf[4] = {'x', 'x', 'x', 'x'};
    vlen = 99;
    assert_int_equal(store_get(s, "f", 1, buf, sizeof buf, &vlen), 0);
    assert_int_equal(vlen, 0);
    assert_memory_equal(buf, "xxxx", 4);

    /* Empty and non-empty values of one key are different states. */
    struct lthash empty_val;
    store_digest(s, &empty_val);
    put_str(s, "e", "x");
    struct lthash h;
    store_digest(s, &h);
    assert_false(lthash_equal(&h, &empty_val));
    assert_int_equal(store_put(s, "e", 1, NULL, 0), 0);
    assert_digest_is(s, &empty_val);
    store_destroy(s);
}

static void test_binary_keys(void **state)
{
    (void)state;
    struct store *s = new_store(8, 0);
    const uint8_t k1[] = {'a', 0, 'b'};
    const uint8_t k2[] = {'a', 0, 'c'};
    const uint8_t k3[] = {'a'};
    const uint8_t k4[] = {'a', 0};
    const uint8_t k5[] = {0};
    const uint8_t v1[] = {0, 1, 0, 2};
    assert_int_equal(store_put(s, k1, sizeof k1, v1, sizeof v1), 0);
    assert_int_equal(store_put(s, k2, sizeof k2, "two", 3), 0);
    assert_int_equal(store_put(s, k3, sizeof k3, "three", 5), 0);
    assert_int_equal(store_put(s, k4, sizeof k4, "four", 4), 0);
    assert_int_equal(store_put(s, k5, sizeof k5, "five", 4), 0);
    assert_int_equal(store_count(s), 5);

    uint8_t buf[16];
    size_t vlen = 0;
    assert_int_equal(store_get(s, k1, sizeof k1, buf, sizeof buf, &vlen), 0);
    assert_int_equal(vlen, sizeof v1);
    assert_memory_equal(buf, v1, sizeof v1);
    assert_int_equal(store_get(s, k2, sizeof k2, buf, sizeof buf, &vlen), 0);
    assert_memory_equal(buf, "two", 3);
    assert_int_equal(store_get(s, k3, sizeof k3, buf, sizeof buf, &vlen), 0);
    assert_memory_equal(buf, "three", 5);
    assert_int_equal(store_get(s, k4, sizeof k4, buf, sizeof buf, &vlen), 0);
    assert_memory_equal(buf, "four", 4);
    assert_int_equal(store_get(s, k5, sizeof k5, buf, sizeof buf, &vlen), 0);
    assert_memory_equal(buf, "five", 4);

    assert_int_equal(store_del(s, k4, sizeof k4), 0);
    assert_absent(s, k4, sizeof k4);
    assert_int_equal(store_get(s, k1, sizeof k1, buf, sizeof buf, &vlen), 0);
    assert_int_equal(store_get(s, k3, sizeof k3, buf, sizeof buf, &vlen), 0);
    assert_int_equal(store_count(s), 4);
    store_destroy(s);
}

static void test_buf_too_small(void **state)
{
    (void)state;
    struct store *s = new_store(1, 0);
    put_str(s, "k", "0123456789");
    char buf[16];
    memset(buf, '#', sizeof buf);
    size_t vlen = 0;
    assert_int_equal(store_get(s, "k", 1, buf, 9, &vlen), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(vlen, 10);
    for (size_t i = 0; i < sizeof buf; i++) {
        assert_int_equal(buf[i], '#'); /* untouched */
    }
    vlen = 0;
    assert_int_equal(store_get(s, "k", 1, NULL, 0, &vlen), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(vlen, 10);
    vlen = 0;
    assert_int_equal(store_get(s, "k", 1, buf, 10, &vlen), 0);
    assert_int_equal(vlen, 10);
    assert_memory_equal(buf, "0123456789", 10);
    assert_int_equal(buf[10], '#');
    store_destroy(s);
}

static void test_bad_pointers(void **state)
{
    (void)state;
    struct store *s = new_store(1, 0);
    size_t vlen = 0;
    char buf[4];
    assert_int_equal(store_put(s, NULL, 3, "v", 1), BFTKV_E_INVAL);
    assert_int_equal(store_put(s, "k", 1, NULL, 3), BFTKV_E_INVAL);
    assert_int_equal(store_get(s, NULL, 3, buf, sizeof buf, &vlen), BFTKV_E_INVAL);
    assert_int_equal(store_get(s, "k", 1, NULL, 4, &vlen), BFTKV_E_INVAL);
    assert_int_equal(store_get(s, "k", 1, buf, sizeof buf, NULL), BFTKV_E_INVAL);
    assert_int_equal(store_del(s, NULL, 3), BFTKV_E_INVAL);
    /* NULL with length 0 is an empty key, whatever the pointer. */
    assert_int_equal(store_put(s, NULL, 0, "v", 1), BFTKV_E_KEY_EMPTY);
    assert_int_equal(store_get(s, NULL, 0, buf, sizeof buf, &vlen), BFTKV_E_KEY_EMPTY);
    assert_int_equal(store_del(s, NULL, 0), BFTKV_E_KEY_EMPTY);
    assert_int_equal(store_count(s), 0);
    store_destroy(s);
}

/* ---- Limits ---------------------------------------------------------------------- */

static void test_key_limits(void **state)
{
    (void)state;
    struct store *s = new_store(4, 0);
    put_str(s, "existing", "value");
    uint8_t *key = malloc(BFTKV_KEY_MAX + 1);
    assert_non_null(key);
    memset(key, 'K', BFTKV_KEY_MAX + 1);

    struct lthash before;
    store_digest(s, &before);
    assert_int_equal(store_put(s, key, BFTKV_KEY_MAX + 1, "v", 1), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(store_count(s), 1);
    assert_digest_is(s, &before);
    assert_int_equal(store_put(s, "", 0, "v", 1), BFTKV_E_KEY_EMPTY);
    assert_int_equal(store_count(s), 1);
    assert_digest_is(s, &before);

    char buf[4];
    size_t vlen = 0;
    assert_int_equal(store_get(s, key, BFTKV_KEY_MAX + 1, buf, sizeof buf, &vlen), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(store_del(s, key, BFTKV_KEY_MAX + 1), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(store_get(s, "", 0, buf, sizeof buf, &vlen), BFTKV_E_KEY_EMPTY);

    /* Exactly the maximum is accepted, and differs from its prefix. */
    assert_int_equal(store_put(s, key, BFTKV_KEY_MAX, "max", 3), 0);
    assert_int_equal(store_put(s, key, BFTKV_KEY_MAX - 1, "max-1", 5), 0);
    assert_int_equal(store_count(s), 3);
    assert_int_equal(store_get(s, key, BFTKV_KEY_MAX, buf, sizeof buf, &vlen), 0);
    assert_int_equal(vlen, 3);
    assert_memory_equal(buf, "max", 3);
    assert_int_equal(store_del(s, key, BFTKV_KEY_MAX), 0);
    assert_int_equal(store_count(s), 2);
    free(key);
    store_destroy(s);
}

static void test_value_limits(void **state)
{
    (void)state;
    struct store *s = new_store(4, 0);
    uint8_t *val = malloc(BFTKV_VALUE_MAX + 1);
    uint8_t *out = malloc(BFTKV_VALUE_MAX + 1);
    assert_non_null(val);
    assert_non_null(out);
    for (size_t i = 0; i <= BFTKV_VALUE_MAX; i++) {
        val[i] = (uint8_t)(i * 31 + 7);
    }
    put_str(s, "k", "small");
    struct lthash before;
    store_digest(s, &before);

    /* max + 1: refused for a new key and for an existing one, nothing changes. */
    assert_int_equal(store_put(s, "new", 3, val, BFTKV_VALUE_MAX + 1), BFTKV_E_VALUE_TOO_LARGE);
    assert_int_equal(store_put(s, "k", 1, val, BFTKV_VALUE_MAX + 1), BFTKV_E_VALUE_TOO_LARGE);
    assert_int_equal(store_count(s), 1);
    assert_digest_is(s, &before);
    assert_get_str(s, "k", "small");
    assert_absent(s, "new", 3);

    /* Exactly max: stored and read back whole. */
    assert_int_equal(store_put(s, "new", 3, val, BFTKV_VALUE_MAX), 0);
    size_t vlen = 0;
    assert_int_equal(store_get(s, "new", 3, out, BFTKV_VALUE_MAX + 1, &vlen), 0);
    assert_int_equal(vlen, BFTKV_VALUE_MAX);
    assert_memory_equal(out, val, BFTKV_VALUE_MAX);
    assert_int_equal(store_count(s), 2);

    /* Key checks come first: an empty key with an oversized value is KEY_EMPTY. */
    assert_int_equal(store_put(s, "", 0, val, BFTKV_VALUE_MAX + 1), BFTKV_E_KEY_EMPTY);
    free(val);
    free(out);
    store_destroy(s);
}

/* ---- Digest ------------------------------------------------------------------------ */

enum { DIGEST_KEYS = 2000 };

/* Build the same final contents three ways; see test_digest_order_independent. */
static void fill_forward(struct store *s)
{
    char k[32];
    char v[64];
    for (uint64_t i = 0; i < DIGEST_KEYS; i++) {
        size_t kl = key_of(k, sizeof k, i);
        size_t vl = value_of(v, sizeof v, i, 0);
        assert_int_equal(store_put(s, k, kl, v, vl), 0);
    }
    /* Final: keys with i % 3 != 0 at version 1 (for odd i) or 0; multiples of 3 deleted. */
    for (uint64_t i = 0; i < DIGEST_KEYS; i++) {
        size_t kl = key_of(k, sizeof k, i);
        if (i % 3 == 0) {
            assert_int_equal(store_del(s, k, kl), 0);
        } else if (i % 2 == 1) {
            size_t vl = value_of(v, sizeof v, i, 1);
            assert_int_equal(store_put(s, k, kl, v, vl), 0);
        }
    }
}

static void fill_backward_direct(struct store *s)
{
    char k[32];
    char v[64];
    for (uint64_t n = DIGEST_KEYS; n-- > 0;) {
        if (n % 3 == 0) {
            continue;
        }
        size_t kl = key_of(k, sizeof k, n);
        size_t vl = value_of(v, sizeof v, n, n % 2 == 1 ? 1 : 0);
        assert_int_equal(store_put(s, k, kl, v, vl), 0);
    }
}

static void fill_random_with_noise(struct store *s, uint64_t seed)
{
    char k[32];
    char v[64];
    uint64_t rng = seed;
    uint64_t perm[DIGEST_KEYS];
    for (uint64_t i = 0; i < DIGEST_KEYS; i++) {
        perm[i] = i;
    }
    for (uint64_t i = DIGEST_KEYS - 1; i > 0; i--) {
        uint64_t j = rng_next(&rng) % (i + 1);
        uint64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (uint64_t x = 0; x < DIGEST_KEYS; x++) {
        uint64_t i = perm[x];
        size_t kl = key_of(k, sizeof k, i);
        size_t vl = value_of(v, sizeof v, i, 7); /* a version that must not survive */
        assert_int_equal(store_put(s, k, kl, v, vl), 0);
        if (i % 3 == 0) {
            assert_int_equal(store_del(s, k, kl), 0);
        } else {
            vl = value_of(v, sizeof v, i, i % 2 == 1 ? 1 : 0);
            assert_int_equal(store_put(s, k, kl, v, vl), 0);
        }
    }
    /* A key that comes and goes leaves no trace. */
    assert_int_equal(store_put(s, "transient", 9, "x", 1), 0);
    assert_int_equal(store_del(s, "transient", 9), 0);
}

static void test_digest_order_independent(void **state)
{
    (void)state;
    struct store *a = new_store(1, 0);
    struct store *b = new_store(256, 0);
    struct store *c = new_store(16, 4);
    struct store *d = new_store(BFTKV_STORE_SHARDS_MAX, 0);
    fill_forward(a);
    fill_backward_direct(b);
    fill_random_with_noise(c, 99);
    fill_random_with_noise(d, 12345);

    uint64_t want = DIGEST_KEYS - (DIGEST_KEYS + 2) / 3;
    assert_int_equal(store_count(a), want);
    assert_int_equal(store_count(b), want);
    assert_int_equal(store_count(c), want);
    assert_int_equal(store_count(d), want);
    assert_same_digest(a, b);
    assert_same_digest(a, c);
    assert_same_digest(a, d);

    /* And it is the LtHash of exactly these entries. */
    struct lthash ref;
    lthash_zero(&ref);
    char k[32];
    char v[64];
    for (uint64_t i = 0; i < DIGEST_KEYS; i++) {
        if (i % 3 == 0) {
            continue;
        }
        size_t kl = key_of(k, sizeof k, i);
        size_t vl = value_of(v, sizeof v, i, i % 2 == 1 ? 1 : 0);
        uint8_t seed[LTHASH_SEED_SIZE];
        lthash_entry_seed(seed, k, kl, v, vl);
        lthash_add_seed(&ref, seed);
    }
    assert_digest_is(a, &ref);
    assert_verified(a);
    assert_verified(d);

    /* One differing value breaks equality. */
    put_str(b, "key-00000001", "different");
    struct lthash hb;
    store_digest(b, &hb);
    assert_false(lthash_equal(&hb, &ref));

    store_destroy(a);
    store_destroy(b);
    store_destroy(c);
    store_destroy(d);
}

static void test_digest_put_del_returns(void **state)
{
    (void)state;
    struct store *s = new_store(8, 0);
    struct lthash empty;
    lthash_zero(&empty);
    assert_digest_is(s, &empty);

    put_str(s, "x", "1");
    assert_int_equal(store_del(s, "x", 1), 0);
    assert_digest_is(s, &empty);

    for (int i = 0; i < 100; i++) {
        char k[32];
        size_t kl = key_of(k, sizeof k, (uint64_t)i);
        assert_int_equal(store_put(s, k, kl, "v", 1), 0);
    }
    struct lthash before;
    store_digest(s, &before);
    put_str(s, "new key", "new value");
    struct lthash mid;
    store_digest(s, &mid);
    assert_false(lthash_equal(&mid, &before));
    assert_int_equal(store_del(s, "new key", 7), 0);
    assert_digest_is(s, &before);

    /* A failed delete changes nothing either. */
    assert_int_equal(store_del(s, "new key", 7), BFTKV_E_NOT_FOUND);
    assert_digest_is(s, &before);
    store_destroy(s);
}

static void test_digest_overwrite(void **state)
{
    (void)state;
    struct store *s = new_store(4, 0);
    put_str(s, "a", "alpha");
    put_str(s, "b", "beta");
    struct lthash before;
    store_digest(s, &before);

    put_str(s, "a", "alpha"); /* same value */
    assert_digest_is(s, &before);
    assert_int_equal(store_count(s), 2);

    put_str(s, "a", "ALPHA");
    struct lthash changed;
    store_digest(s, &changed);
    assert_false(lthash_equal(&changed, &before));
    put_str(s, "a", "alpha");
    assert_digest_is(s, &before);
    store_destroy(s);
}

static void test_digest_any_change_moves(void **state)
{
    (void)state;
    struct store *s = new_store(4, 0);
    put_str(s, "key", "value");
    uint8_t base[LTHASH_DIGEST_SIZE];
    store_digest_bytes(s, base);

    /* Each variant replaces the one entry with something one step away. */
    const struct {
        const char *k;
        const char *v;
    } variants[] = {
        {"kex", "value"}, {"key", "valuf"}, {"key", "valu"}, {"key", "value "}, {"ke", "yvalue"},
        {"keyv", "alue"}, {"key", ""},
    };
    uint8_t seen[sizeof variants / sizeof variants[0]][LTHASH_DIGEST_SIZE];
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        assert_int_equal(store_del(s, "key", 3), 0);
        put_str(s, variants[i].k, variants[i].v);
        store_digest_bytes(s, seen[i]);
        assert_memory_not_equal(seen[i], base, LTHASH_DIGEST_SIZE);
        for (size_t j = 0; j < i; j++) {
            assert_memory_not_equal(seen[i], seen[j], LTHASH_DIGEST_SIZE);
        }
        assert_int_equal(store_del(s, variants[i].k, strlen(variants[i].k)), 0);
        put_str(s, "key", "value");
        uint8_t back[LTHASH_DIGEST_SIZE];
        store_digest_bytes(s, back);
        assert_memory_equal(back, base, LTHASH_DIGEST_SIZE);
    }
    /* Adding a second entry moves it too. */
    put_str(s, "other", "value");
    uint8_t two[LTHASH_DIGEST_SIZE];
    store_digest_bytes(s, two);
    assert_memory_not_equal(two, base, LTHASH_DIGEST_SIZE);
    store_destroy(s);
}

/* ---- Growth, churn, clear ------------------------------------------------------------- */

/* 100K keys (12.5K in sanitizer builds, tests/test_scale.h): from one slot per
 * shard, a dozen or more doublings either way. */
static void check_growth(uint32_t shards)
{
    const uint64_t growth_keys = test_iters(100000, 10000);
    struct store *s = new_store(shards, 1);
    char k[32];
    char v[64];
    for (uint64_t i = 0; i < growth_keys; i++) {
        size_t kl = key_of(k, sizeof k, i);
        size_t vl = value_of(v, sizeof v, i, 0);
        assert_int_equal(store_put(s, k, kl, v, vl), 0);
    }
    assert_int_equal(store_count(s), growth_keys);
    char buf[64];
    for (uint64_t i = 0; i < growth_keys; i++) {
        size_t kl = key_of(k, sizeof k, i);
        size_t vl = value_of(v, sizeof v, i, 0);
        size_t got = 0;
        assert_int_equal(store_get(s, k, kl, buf, sizeof buf, &got), 0);
        assert_int_equal(got, vl);
        assert_memory_equal(buf, v, vl);
    }
    for (uint64_t i = growth_keys; i < growth_keys + 1000; i++) {
        size_t kl = key_of(k, sizeof k, i);
        assert_absent(s, k, kl);
    }
    struct store_test_stats st;
    assert_int_equal(store_test_verify(s, &st), 0);
    /* Load factor at most 3/4, and no more than double what that needs (plus
     * the minimum table per shard). */
    assert_true(st.slots * 3 >= (uint64_t)growth_keys * 4);
    assert_true(st.slots <= (uint64_t)growth_keys * 8 / 3 * 2 + (uint64_t)shards * 8);
    store_destroy(s);
}

static void test_growth_from_tiny(void **state)
{
    (void)state;
    check_growth(1);
    check_growth(16);
}

enum { CHURN_KEYS = 1024 };

static void test_churn(void **state)
{
    (void)state;
    struct store *s = new_store(1, 4); /* one shard: all churn on one table */
    static uint32_t model[CHURN_KEYS]; /* 0: absent, else version */
    memset(model, 0, sizeof model);
    uint64_t rng = 7;
    uint64_t present = 0;
    char k[32];
    char v[64];
    /* 200K operations (25K in sanitizer builds: still ~24 per key) */
    const uint64_t churn_ops = test_iters(200000, 20000);
    for (uint64_t op = 0; op < churn_ops; op++) {
        uint64_t r = rng_next(&rng);
        uint64_t i = r % CHURN_KEYS;
        size_t kl = key_of(k, sizeof k, i);
        if ((r >> 32) % 2 == 0) {
            size_t vl = value_of(v, sizeof v, i, op + 1);
            assert_int_equal(store_put(s, k, kl, v, vl), 0);
            present += model[i] == 0;
            model[i] = (uint32_t)(op + 1);
        } else {
            assert_int_equal(store_del(s, k, kl), model[i] != 0 ? 0 : BFTKV_E_NOT_FOUND);
            present -= model[i] != 0;
            model[i] = 0;
        }
    }
    assert_int_equal(store_count(s), present);
    struct store *fresh = new_store(4, 0);
    char buf[64];
    for (uint64_t i = 0; i < CHURN_KEYS; i++) {
        size_t kl = key_of(k, sizeof k, i);
        if (model[i] == 0) {
            assert_absent(s, k, kl);
            continue;
        }
        size_t vl = value_of(v, sizeof v, i, model[i]);
        size_t got = 0;
        assert_int_equal(store_get(s, k, kl, buf, sizeof buf, &got), 0);
        assert_int_equal(got, vl);
        assert_memory_equal(buf, v, vl);
        assert_int_equal(store_put(fresh, k, kl, v, vl), 0);
    }
    assert_same_digest(s, fresh);

    /* No degradation: the table never grew past what 1024 keys need, and the
     * probing invariant holds after all those deletes and inserts. */
    struct store_test_stats st;
    assert_int_equal(store_test_verify(s, &st), 0);
    assert_true(st.slots <= 2048);
    assert_true(st.max_displacement < 64);

    /* Deleting everything leaves an empty, valid table. */
    for (uint64_t i = 0; i < CHURN_KEYS; i++) {
        size_t kl = key_of(k, sizeof k, i);
        assert_int_equal(store_del(s, k, kl), model[i] != 0 ? 0 : BFTKV_E_NOT_FOUND);
    }
    assert_int_equal(store_count(s), 0);
    assert_int_equal(store_test_verify(s, &st), 0);
    assert_int_equal(st.max_displacement, 0);
    struct lthash empty;
    lthash_zero(&empty);
    assert_digest_is(s, &empty);
    store_destroy(fresh);
    store_destroy(s);
}

static void test_clear(void **state)
{
    (void)state;
    struct store *s = new_store(16, 0);
    char k[32];
    for (uint64_t i = 0; i < 5000; i++) {
        size_t kl = key_of(k, sizeof k, i);
        assert_int_equal(store_put(s, k, kl, "v", 1), 0);
    }
    store_clear(s);
    assert_int_equal(store_count(s), 0);
    struct lthash empty;
    lthash_zero(&empty);
    assert_digest_is(s, &empty);
    for (uint64_t i = 0; i < 5000; i += 97) {
        size_t kl = key_of(k, sizeof k, i);
        assert_absent(s, k, kl);
        assert_int_equal(store_del(s, k, kl), BFTKV_E_NOT_FOUND);
    }
    store_clear(s); /* clearing an empty store is fine */

    put_str(s, "after", "clear");
    assert_get_str(s, "after", "clear");
    assert_int_equal(store_count(s), 1);
    struct store *fresh = new_store(2, 0);
    put_str(fresh, "after", "clear");
    assert_same_digest(s, fresh);
    assert_verified(s);
    store_destroy(fresh);
    store_destroy(s);
}

/* ---- Out of memory ---------------------------------------------------------------------- */

static void test_nomem_changes_nothing(void **state)
{
    (void)state;
    struct store *s = new_store(1, 4);
    put_str(s, "a", "1");
    put_str(s, "b", "2");
    put_str(s, "c", "3"); /* 3 of 4 slots: the next new key must grow the table */
    struct lthash before;
    store_digest(s, &before);

    store_test_fail_alloc_after(0); /* the entry itself cannot be allocated */
    assert_int_equal(store_put(s, "d", 1, "4", 1), BFTKV_E_NOMEM);
    assert_int_equal(store_put(s, "a", 1, "changed", 7), BFTKV_E_NOMEM);
    store_test_fail_alloc_after(1); /* the entry is, the grown slot array is not */
    assert_int_equal(store_put(s, "d", 1, "4", 1), BFTKV_E_NOMEM);
    store_test_fail_alloc_after(-1);
    assert_int_equal(store_count(s), 3);
    assert_digest_is(s, &before);
    assert_absent(s, "d", 1);
    assert_get_str(s, "a", "1");
    assert_verified(s);

    /* With a snapshot held, a write must first make room to record the slots it
     * changes for the snapshot; if it cannot, the store and the snapshot are both
     * unchanged. */
    struct store_snapshot *snap = NULL;
    store_test_fail_alloc_after(0);
    assert_int_equal(store_snapshot_take(s, &snap), BFTKV_E_NOMEM);
    store_test_fail_alloc_after(-1);
    assert_int_equal(store_snapshot_take(s, &snap), 0);
    store_test_fail_alloc_after(0);
    assert_int_equal(store_del(s, "a", 1), BFTKV_E_NOMEM);
    /* Room made before a failure stays with the snapshot: each put below gets
     * one step further, to the undo map's array. */
    store_test_fail_alloc_after(1); /* entry ok, the accumulator's room fails */
    assert_int_equal(store_put(s, "b", 1, "two", 3), BFTKV_E_NOMEM);
    store_test_fail_alloc_after(2); /* entry and accumulator ok, the retired block fails */
    assert_int_equal(store_put(s, "b", 1, "two", 3), BFTKV_E_NOMEM);
    store_test_fail_alloc_after(2); /* entry and retired block ok, the undo map's array fails */
    assert_int_equal(store_put(s, "b", 1, "two", 3), BFTKV_E_NOMEM);
    store_test_fail_alloc_after(-1);
    assert_int_equal(store_count(s), 3);
    assert_digest_is(s, &before);
    assert_get_str(s, "a", "1");
    assert_get_str(s, "b", "2");
    assert_verified(s);
    struct lthash sh;
    store_snapshot_digest(snap, &sh);
    assert_true(lthash_equal(&sh, &before));

    /* Once memory is back, the same writes succeed. */
    assert_int_equal(store_del(s, "a", 1), 0);
    put_str(s, "b", "two");
    assert_int_equal(store_count(s), 2);
    store_snapshot_digest(snap, &sh);
    assert_true(lthash_equal(&sh, &before));
    store_snapshot_release(snap);

    store_test_fail_alloc_after(0);
    struct store *t = (struct store *)s;
    assert_int_equal(store_create(NULL, &t), BFTKV_E_NOMEM);
    assert_null(t);
    store_test_fail_alloc_after(1);
    assert_int_equal(store_create(NULL, &t), BFTKV_E_NOMEM);
    assert_null(t);
    store_test_fail_alloc_after(-1);
    store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_config),
        cmocka_unit_test(test_put_get_del_count),
        cmocka_unit_test(test_overwrite),
        cmocka_unit_test(test_empty_value),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_buf_too_small),
        cmocka_unit_test(test_bad_pointers),
        cmocka_unit_test(test_key_limits),
        cmocka_unit_test(test_value_limits),
        cmocka_unit_test(test_digest_order_independent),
        cmocka_unit_test(test_digest_put_del_returns),
        cmocka_unit_test(test_digest_overwrite),
        cmocka_unit_test(test_digest_any_change_moves),
        cmocka_unit_test(test_growth_from_tiny),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_nomem_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
