/* Unit tests of LtHash16 (store/lthash.h): the algebra the state digest relies
 * on (add/sub inverse, order independence, lanes modulo 2^16), unambiguous entry
 * encoding, and known answers. The known answers for non-empty sets were computed
 * once outside this code base: seeds and digests with Python's hashlib BLAKE2b,
 * the AES-256-CTR keystreams with the openssl command line,
 *
 *     head -c 2048 /dev/zero | openssl enc -aes-256-ctr -K <seed hex> -iv 00000000000000000000000000000000
 *
 * (OpenSSL 3.0), lanes read little-endian and summed modulo 2^16 in Python. So
 * they pin the exact construction of lthash.h: a change of seed encoding, cipher,
 * key, IV, lane byte order or digest would turn them red. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "store/lthash.h"
#include "store/lthash_internal.h"
#include "common/mix64.h"

/* splitmix64: a small deterministic generator, so every run checks the same sets. */
static uint64_t rng_next(uint64_t *state)
{
    return bftkv_splitmix64(state);
}

static void hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void seed_of_str(uint8_t seed[LTHASH_SEED_SIZE], const char *k, const char *v)
{
    lthash_entry_seed(seed, k, strlen(k), v, strlen(v));
}

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void test_empty_set_digest(void **state)
{
    (void)state;
    struct lthash h;
    memset(&h, 0xa5, sizeof h);
    lthash_zero(&h);
    for (unsigned i = 0; i < LTHASH_LANES; i++) {
        assert_int_equal(h.lanes[i], 0);
    }
    uint8_t got[LTHASH_DIGEST_SIZE];
    lthash_digest(&h, got);

    static const uint8_t zeros[LTHASH_LANES * 2];
    uint8_t want[LTHASH_DIGEST_SIZE];
    assert_int_equal(crypto_generichash(want, sizeof want, zeros, sizeof zeros, NULL, 0), 0);
    assert_memory_equal(got, want, sizeof want);

    uint8_t kat[LTHASH_DIGEST_SIZE];
    hex_to_bytes("200823e5158b3774c11b5c61850ada762f8264144a9bebec3ebac5a2adde67b8", kat, sizeof kat);
    assert_memory_equal(got, kat, sizeof kat);
}

static void test_seed_is_blake2b_of_len_key_value(void **state)
{
    (void)state;
    uint8_t seed[LTHASH_SEED_SIZE];
    lthash_entry_seed(seed, "bftkv", 5, "lthash", 6);

    const uint8_t msg[] = {5, 0, 0, 0, 'b', 'f', 't', 'k', 'v', 'l', 't', 'h', 'a', 's', 'h'};
    uint8_t want[LTHASH_SEED_SIZE];
    crypto_generichash(want, sizeof want, msg, sizeof msg, NULL, 0);
    assert_memory_equal(seed, want, sizeof want);

    uint8_t kat[LTHASH_SEED_SIZE];
    hex_to_bytes("2648d53203a70f315910d5a8832bc9e85b88191ffd6c78ec6893a9d3e15f3d16", kat, sizeof kat);
    assert_memory_equal(seed, kat, sizeof kat);
}

/* The keystream by OpenSSL's one-shot use of a fresh context: independent of
 * lthash.c's per-thread context that only swaps keys. */
static void aes256ctr_keystream(const uint8_t key[32], uint8_t *out, int len)
{
    static const uint8_t iv[16];
    static const uint8_t zeros[LTHASH_LANES * 2];
    assert_true(len <= (int)sizeof zeros);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    assert_non_null(ctx);
    int n = 0;
    int fin = 0;
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_ctr(), NULL, key, iv), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out, &n, zeros, len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + n, &fin), 1);
    assert_int_equal(n + fin, len);
    EVP_CIPHER_CTX_free(ctx);
}

static void test_expand_is_aes256ctr_le_lanes(void **state)
{
    (void)state;
    uint8_t seed[LTHASH_SEED_SIZE];
    seed_of_str(seed, "bftkv", "lthash");
    struct lthash v;
    lthash_expand(&v, seed);

    uint8_t ks[LTHASH_LANES * 2];
    aes256ctr_keystream(seed, ks, (int)sizeof ks);
    for (unsigned i = 0; i < LTHASH_LANES; i++) {
        assert_int_equal(v.lanes[i], (uint16_t)(ks[2 * i] | (ks[2 * i + 1] << 8)));
    }
    /* From `openssl enc` (see the top of the file): the keystream starts
     * d05bbcca36898359..., its BLAKE2b-256 is 370915b4... */
    assert_int_equal(v.lanes[0], 23504);
    assert_int_equal(v.lanes[1], 51900);
    assert_int_equal(v.lanes[2], 35126);
    assert_int_equal(v.lanes[3], 22915);
    assert_int_equal(v.lanes[LTHASH_LANES - 1], 45922);
    uint8_t kat[32];
    uint8_t got[32];
    hex_to_bytes("370915b4c3b609026bb67f31d0d51cc64037bd090013b8e2c5b9184da7c2e257", kat, sizeof kat);
    lthash_digest(&v, got); /* the digest of {entry}: BLAKE2b-256 of its lanes */
    assert_memory_equal(got, kat, sizeof kat);

    /* Expanding another seed and then this one again gives the same lanes: the
     * reused per-thread context carries nothing from one expansion to the next. */
    uint8_t other[LTHASH_SEED_SIZE];
    lthash_entry_seed(other, "\0key\0", 5, "", 0);
    struct lthash w;
    lthash_expand(&w, other);
    lthash_expand(&w, seed);
    assert_true(lthash_equal(&v, &w));

    /* add_seed is exactly "expand, then add". */
    struct lthash a;
    struct lthash b;
    lthash_zero(&a);
    lthash_add_seed(&a, seed);
    lthash_zero(&b);
    lthash_add(&b, &v);
    assert_true(lthash_equal(&a, &b));
}

/* Each thread has its own cipher context (lthash.c): threads that expand at the
 * same time get the same lanes as the main thread, and their contexts are freed
 * when they exit (the ASan build's leak checker would report them otherwise). */
struct expand_job {
    uint8_t seed[LTHASH_SEED_SIZE];
    struct lthash out;
};

static void *expand_thread(void *arg)
{
    struct expand_job *job = arg;
    for (int i = 0; i < 100; i++) {
        lthash_expand(&job->out, job->seed);
    }
    return NULL;
}

static void test_expand_threads(void **state)
{
    (void)state;
    struct expand_job jobs[4];
    pthread_t th[4];
    for (unsigned t = 0; t < 4; t++) {
        char v[8];
        snprintf(v, sizeof v, "v%u", t);
        seed_of_str(jobs[t].seed, "k", v);
        assert_int_equal(pthread_create(&th[t], NULL, expand_thread, &jobs[t]), 0);
    }
    for (unsigned t = 0; t < 4; t++) {
        assert_int_equal(pthread_join(th[t], NULL), 0);
        struct lthash want;
        lthash_expand(&want, jobs[t].seed);
        assert_true(lthash_equal(&jobs[t].out, &want));
    }
}

/* Every expansion this CPU offers (store/lthash_internal.h) gives EVP's bytes, on
 * seeds that vary every key byte and word, and the known answers above. */
static void test_expand_implementations_agree(void **state)
{
    (void)state;
    uint64_t rng = 99;
    uint8_t seed[LTHASH_SEED_SIZE];
    seed_of_str(seed, "bftkv", "lthash");
    for (int impl = 0; impl < LTHASH_IMPL_COUNT; impl++) {
        if (!lthash_impl_available((enum lthash_impl)impl)) {
            printf("# lthash expansion %s: not on this CPU\n", lthash_impl_name((enum lthash_impl)impl));
            continue;
        }
        struct lthash v;
        lthash_expand_impl((enum lthash_impl)impl, &v, seed);
        assert_int_equal(v.lanes[0], 23504);
        assert_int_equal(v.lanes[3], 22915);
        assert_int_equal(v.lanes[LTHASH_LANES - 1], 45922);
    }
    assert_true(lthash_impl_available(lthash_impl_current()));
    for (int round = 0; round < 2000; round++) {
        for (unsigned i = 0; i < LTHASH_SEED_SIZE; i += 8) {
            uint64_t x = rng_next(&rng);
            if (round < 256) { /* all-zero and all-ones bytes in turn, then random */
                x = (round & 1) ? ~0ull : 0;
                x ^= (uint64_t)round << (8 * (i / 8));
            }
            memcpy(seed + i, &x, sizeof x);
        }
        uint8_t ks[LTHASH_LANES * 2];
        aes256ctr_keystream(seed, ks, (int)sizeof ks);
        for (int impl = 0; impl < LTHASH_IMPL_COUNT; impl++) {
            if (!lthash_impl_available((enum lthash_impl)impl)) {
                continue;
            }
            struct lthash v;
            lthash_expand_impl((enum lthash_impl)impl, &v, seed);
            for (unsigned i = 0; i < LTHASH_LANES; i++) {
                assert_int_equal(v.lanes[i], (uint16_t)(ks[2 * i] | (ks[2 * i + 1] << 8)));
            }
        }
    }
}

static void test_known_answers(void **state)
{
    (void)state;
    uint8_t s1[LTHASH_SEED_SIZE];
    uint8_t s2[LTHASH_SEED_SIZE];
    seed_of_str(s1, "bftkv", "lthash");
    lthash_entry_seed(s2, "\0key\0", 5, "", 0);

    struct lthash h;
    uint8_t got[LTHASH_DIGEST_SIZE];
    uint8_t kat[LTHASH_DIGEST_SIZE];

    lthash_zero(&h);
    lthash_add_seed(&h, s1);
    lthash_digest(&h, got);
    hex_to_bytes("370915b4c3b609026bb67f31d0d51cc64037bd090013b8e2c5b9184da7c2e257", kat, sizeof kat);
    assert_memory_equal(got, kat, sizeof kat);

    lthash_add_seed(&h, s2);
    lthash_digest(&h, got);
    hex_to_bytes("9a06f03cc603f8de8b8a540201ebc949a9afc06536e8f7e7d46a9c24adaaaddc", kat, sizeof kat);
    assert_memory_equal(got, kat, sizeof kat);
}

static void test_add_sub_inverse(void **state)
{
    (void)state;
    uint64_t rng = 1;
    struct lthash h;
    lthash_zero(&h);
    uint8_t seed[LTHASH_SEED_SIZE];
    for (int i = 0; i < 50; i++) {
        uint64_t k = rng_next(&rng);
        lthash_entry_seed(seed, &k, sizeof k, "v", 1);
        lthash_add_seed(&h, seed);
    }
    struct lthash before = h;

    lthash_entry_seed(seed, "x", 1, "y", 1);
    lthash_add_seed(&h, seed);
    assert_false(lthash_equal(&h, &before));
    lthash_sub_seed(&h, seed);
    assert_true(lthash_equal(&h, &before));

    /* Removing an entry that was never added, then adding it back. */
    lthash_sub_seed(&h, seed);
    assert_false(lthash_equal(&h, &before));
    lthash_add_seed(&h, seed);
    assert_true(lthash_equal(&h, &before));

    /* Vector add/sub are inverses too, and sub(h, h') of a copy gives zero. */
    struct lthash o;
    lthash_zero(&o);
    lthash_add_seed(&o, seed);
    lthash_add(&h, &o);
    lthash_sub(&h, &o);
    assert_true(lthash_equal(&h, &before));
    struct lthash copy = h;
    struct lthash zero;
    lthash_zero(&zero);
    lthash_sub(&h, &copy);
    assert_true(lthash_equal(&h, &zero));
}

/* lthash_replace_seed is lthash_sub_seed then lthash_add, lane for lane,
 * from an accumulator whose lanes are near the wrap, over many seeds. */
static void test_replace_is_sub_then_add(void **state)
{
    (void)state;
    struct lthash a;
    for (size_t i = 0; i < LTHASH_LANES; i++) {
        a.lanes[i] = (uint16_t)(0xFFF0u + i);
    }
    struct lthash b = a;
    for (uint8_t k = 0; k < 64; k++) {
        uint8_t old_seed[LTHASH_SEED_SIZE];
        uint8_t new_seed[LTHASH_SEED_SIZE];
        memset(old_seed, k, sizeof old_seed);
        memset(new_seed, (uint8_t)(k + 101u), sizeof new_seed);
        struct lthash add;
        lthash_expand(&add, new_seed);
        lthash_replace_seed(&a, old_seed, &add);
        lthash_sub_seed(&b, old_seed);
        lthash_add(&b, &add);
        assert_true(lthash_equal(&a, &b));
    }
    struct lthash zero;
    lthash_zero(&zero);
    assert_false(lthash_equal(&a, &zero));
}

static void test_lanes_wrap_mod_2_16(void **state)
{
    (void)state;
    struct lthash a;
    struct lthash b;
    for (unsigned i = 0; i < LTHASH_LANES; i++) {
        a.lanes[i] = (uint16_t)(0xffffu - i);
        b.lanes[i] = (uint16_t)(i + 1);
    }
    lthash_add(&a, &b);
    for (unsigned i = 0; i < LTHASH_LANES; i++) {
        assert_int_equal(a.lanes[i], 0);
    }
    lthash_sub(&a, &b);
    for (unsigned i = 0; i < LTHASH_LANES; i++) {
        assert_int_equal(a.lanes[i], (uint16_t)(0xffffu - i));
    }
}

#define ORDER_ENTRIES 64

static void test_order_independence(void **state)
{
    (void)state;
    uint8_t seeds[ORDER_ENTRIES][LTHASH_SEED_SIZE];
    for (unsigned i = 0; i < ORDER_ENTRIES; i++) {
        char k[16];
        char v[16];
        snprintf(k, sizeof k, "key-%u", i);
        snprintf(v, sizeof v, "val-%u", i * 7);
        seed_of_str(seeds[i], k, v);
    }
    struct lthash ref;
    lthash_zero(&ref);
    for (unsigned i = 0; i < ORDER_ENTRIES; i++) {
        lthash_add_seed(&ref, seeds[i]);
    }

    uint64_t rng = 42;
    unsigned perm[ORDER_ENTRIES];
    for (int round = 0; round < 20; round++) {
        for (unsigned i = 0; i < ORDER_ENTRIES; i++) {
            perm[i] = i;
        }
        for (unsigned i = ORDER_ENTRIES - 1; i > 0; i--) { /* Fisher-Yates */
            unsigned j = (unsigned)(rng_next(&rng) % (i + 1));
            unsigned t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        struct lthash h;
        lthash_zero(&h);
        for (unsigned i = 0; i < ORDER_ENTRIES; i++) {
            lthash_add_seed(&h, seeds[perm[i]]);
        }
        assert_true(lthash_equal(&h, &ref));

        /* Interleave adds and removes of extra entries: same final set. */
        lthash_zero(&h);
        for (unsigned i = 0; i < ORDER_ENTRIES; i++) {
            lthash_add_seed(&h, seeds[perm[i]]);
            lthash_add_seed(&h, seeds[perm[(i + 1) % ORDER_ENTRIES]]);
            lthash_sub_seed(&h, seeds[perm[(i + 1) % ORDER_ENTRIES]]);
        }
        assert_true(lthash_equal(&h, &ref));
    }

    /* A set differs from the same set without one element, and from a multiset
     * with one element twice. */
    struct lthash h = ref;
    lthash_sub_seed(&h, seeds[5]);
    assert_false(lthash_equal(&h, &ref));
    lthash_add_seed(&h, seeds[6]);
    assert_false(lthash_equal(&h, &ref));
}

static void test_distinct_entries_distinct_digests(void **state)
{
    (void)state;
    enum { N = 200 };
    static uint8_t digests[N][LTHASH_DIGEST_SIZE];
    for (unsigned i = 0; i < N; i++) {
        /* Pairs that differ in key only, value only, or one byte of length. */
        char k[16];
        snprintf(k, sizeof k, "k%u", i / 2);
        uint8_t seed[LTHASH_SEED_SIZE];
        lthash_entry_seed(seed, k, strlen(k), "value", (i % 2) ? 5 : 4);
        struct lthash h;
        lthash_zero(&h);
        lthash_add_seed(&h, seed);
        lthash_digest(&h, digests[i]);
    }
    for (unsigned i = 0; i < N; i++) {
        for (unsigned j = i + 1; j < N; j++) {
            assert_memory_not_equal(digests[i], digests[j], LTHASH_DIGEST_SIZE);
        }
    }
}

static void test_key_value_boundary_is_unambiguous(void **state)
{
    (void)state;
    uint8_t s1[LTHASH_SEED_SIZE];
    uint8_t s2[LTHASH_SEED_SIZE];
    seed_of_str(s1, "ab", "c");
    seed_of_str(s2, "a", "bc");
    assert_memory_not_equal(s1, s2, sizeof s1);

    struct lthash h1;
    struct lthash h2;
    lthash_zero(&h1);
    lthash_zero(&h2);
    lthash_add_seed(&h1, s1);
    lthash_add_seed(&h2, s2);
    assert_false(lthash_equal(&h1, &h2));
    uint8_t d1[LTHASH_DIGEST_SIZE];
    uint8_t d2[LTHASH_DIGEST_SIZE];
    lthash_digest(&h1, d1);
    lthash_digest(&h2, d2);
    assert_memory_not_equal(d1, d2, sizeof d1);

    /* Empty value vs the same bytes all in the key. */
    seed_of_str(s1, "abc", "");
    seed_of_str(s2, "ab", "c");
    assert_memory_not_equal(s1, s2, sizeof s1);
}

static void test_equal_detects_one_lane(void **state)
{
    (void)state;
    struct lthash a;
    struct lthash b;
    lthash_zero(&a);
    lthash_zero(&b);
    assert_true(lthash_equal(&a, &b));
    b.lanes[LTHASH_LANES - 1] = 1;
    assert_false(lthash_equal(&a, &b));
    uint8_t da[LTHASH_DIGEST_SIZE];
    uint8_t db[LTHASH_DIGEST_SIZE];
    lthash_digest(&a, da);
    lthash_digest(&b, db);
    assert_memory_not_equal(da, db, sizeof da);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_set_digest),
        cmocka_unit_test(test_seed_is_blake2b_of_len_key_value),
        cmocka_unit_test(test_expand_is_aes256ctr_le_lanes),
        cmocka_unit_test(test_expand_threads),
        cmocka_unit_test(test_expand_implementations_agree),
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_add_sub_inverse),
        cmocka_unit_test(test_replace_is_sub_then_add),
        cmocka_unit_test(test_lanes_wrap_mod_2_16),
        cmocka_unit_test(test_order_independence),
        cmocka_unit_test(test_distinct_entries_distinct_digests),
        cmocka_unit_test(test_key_value_boundary_is_unambiguous),
        cmocka_unit_test(test_equal_detects_one_lane),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
