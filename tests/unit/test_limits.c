/* Limits and errors: every documented limit is enforced at its boundary with its
 * named error and changes nothing, and the error list generates distinct, stable
 * names and messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "store/store.h"

static void test_error_list_distinct(void **state)
{
    (void)state;
    static const int codes[] = {
#define CODE(name, value, msg) BFTKV_E_##name,
        BFTKV_ERROR_LIST(CODE)
#undef CODE
    };
    size_t n = sizeof codes / sizeof codes[0];
    assert_true(n >= 10);
    for (size_t i = 0; i < n; i++) {
        assert_true(codes[i] <= 0);
        assert_string_not_equal(bftkv_strerror(codes[i]), "unknown error");
        assert_string_not_equal(bftkv_errname(codes[i]), "UNKNOWN");
        for (size_t j = i + 1; j < n; j++) {
            assert_int_not_equal(codes[i], codes[j]);
            assert_string_not_equal(bftkv_strerror(codes[i]), bftkv_strerror(codes[j]));
            assert_string_not_equal(bftkv_errname(codes[i]), bftkv_errname(codes[j]));
        }
    }
}

static void test_error_names_stable(void **state)
{
    (void)state;
    /* Codes cross the wire and are CLI exit reasons: they must never be renumbered. */
    assert_int_equal(BFTKV_E_OK, 0);
    assert_int_equal(BFTKV_E_NOT_FOUND, -3);
    assert_int_equal(BFTKV_E_KEY_TOO_LARGE, -4);
    assert_int_equal(BFTKV_E_VALUE_TOO_LARGE, -5);
    assert_string_equal(bftkv_errname(BFTKV_E_KEY_TOO_LARGE), "KEY_TOO_LARGE");
    assert_string_equal(bftkv_strerror(0), "success");
    assert_string_equal(bftkv_strerror(-9999), "unknown error");
    assert_string_equal(bftkv_strerror(1), "unknown error");
    assert_string_equal(bftkv_errname(-9999), "UNKNOWN");
}

static void test_limit_values(void **state)
{
    (void)state;
    assert_int_equal(BFTKV_KEY_MAX, 1024);
    assert_true(BFTKV_VALUE_MAX >= 32u * 1024u);
    /* One maximal PUT fits a datagram with header and full authenticator. */
    assert_true(BFTKV_HEADER_RESERVE + BFTKV_AUTHENTICATOR_MAX + BFTKV_KEY_MAX + BFTKV_VALUE_MAX
                <= BFTKV_DATAGRAM_MAX);
    assert_true(BFTKV_REPLICAS_MAX >= 3u * BFTKV_FAULTS_MAX + 1u);
}

/* A limit error must leave count and digest exactly as they were. */
static void expect_rejected(struct store *s, const void *k, size_t kl, const void *v, size_t vl, int err)
{
    uint8_t before[LTHASH_DIGEST_SIZE], after[LTHASH_DIGEST_SIZE];
    uint64_t count = store_count(s);
    store_digest_bytes(s, before);
    assert_int_equal(store_put(s, k, kl, v, vl), err);
    store_digest_bytes(s, after);
    assert_int_equal(store_count(s), count);
    assert_memory_equal(before, after, sizeof before);
}

static void test_store_key_limits(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(store_create(NULL, &s), 0);
    uint8_t *key = calloc(1, BFTKV_KEY_MAX + 1);
    assert_non_null(key);
    memset(key, 'k', BFTKV_KEY_MAX + 1);

    assert_int_equal(store_put(s, "seed", 4, "x", 1), 0);
    expect_rejected(s, key, BFTKV_KEY_MAX + 1, "v", 1, BFTKV_E_KEY_TOO_LARGE);
    expect_rejected(s, key, 0, "v", 1, BFTKV_E_KEY_EMPTY);
    assert_int_equal(store_put(s, key, BFTKV_KEY_MAX, "v", 1), 0);
    assert_int_equal(store_count(s), 2);

    char out[4];
    size_t vlen = 0;
    assert_int_equal(store_get(s, key, BFTKV_KEY_MAX + 1, out, sizeof out, &vlen), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(store_del(s, key, BFTKV_KEY_MAX + 1), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(store_get(s, key, BFTKV_KEY_MAX, out, sizeof out, &vlen), 0);
    assert_int_equal(vlen, 1);
    free(key);
    store_destroy(s);
}

static void test_store_value_limits(void **state)
{
    (void)state;
    struct store *s;
    assert_int_equal(store_create(NULL, &s), 0);
    uint8_t *val = malloc(BFTKV_VALUE_MAX + 1);
    assert_non_null(val);
    memset(val, 'v', BFTKV_VALUE_MAX + 1);

    assert_int_equal(store_put(s, "a", 1, "old", 3), 0);
    /* Replacing an existing key with an oversized value keeps the old value. */
    expect_rejected(s, "a", 1, val, BFTKV_VALUE_MAX + 1, BFTKV_E_VALUE_TOO_LARGE);
    char out[8];
    size_t vlen = 0;
    assert_int_equal(store_get(s, "a", 1, out, sizeof out, &vlen), 0);
    assert_int_equal(vlen, 3);
    assert_memory_equal(out, "old", 3);

    assert_int_equal(store_put(s, "b", 1, val, BFTKV_VALUE_MAX), 0);
    uint8_t *back = malloc(BFTKV_VALUE_MAX);
    assert_non_null(back);
    assert_int_equal(store_get(s, "b", 1, back, BFTKV_VALUE_MAX, &vlen), 0);
    assert_int_equal(vlen, BFTKV_VALUE_MAX);
    assert_memory_equal(back, val, BFTKV_VALUE_MAX);
    free(back);
    free(val);
    store_destroy(s);
}

static void test_store_shard_config_limits(void **state)
{
    (void)state;
    struct store *s = NULL;
    struct store_config bad = {.shards = 3, .initial_slots = 0};
    assert_int_equal(store_create(&bad, &s), BFTKV_E_INVAL);
    struct store_config too_many = {.shards = BFTKV_STORE_SHARDS_MAX * 2u, .initial_slots = 0};
    assert_int_equal(store_create(&too_many, &s), BFTKV_E_INVAL);
    struct store_config one = {.shards = 1, .initial_slots = 0};
    assert_int_equal(store_create(&one, &s), 0);
    assert_int_equal(store_shard_count(s), 1);
    store_destroy(s);
    assert_int_equal(store_create(NULL, &s), 0);
    assert_int_equal(store_shard_count(s), BFTKV_STORE_SHARDS_DEFAULT);
    store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_list_distinct),
        cmocka_unit_test(test_error_names_stable),
        cmocka_unit_test(test_limit_values),
        cmocka_unit_test(test_store_key_limits),
        cmocka_unit_test(test_store_value_limits),
        cmocka_unit_test(test_store_shard_config_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
