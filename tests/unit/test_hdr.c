/* Unit tests of the HDR histogram (common/hdr.c): configuration, recording and
 * reading back.
 *
 * Accuracy is checked against an exact reference: the same values sorted in an
 * array, so every percentile has one right answer (the highest value equivalent to
 * the reference value at that rank). Values come from a fixed-seed splitmix64 so a
 * failure reproduces. Edge values, the corrected-value call, merge, reset and
 * hdr_foreach are covered here; the serialisation and decode tests live in
 * test_hdr_codec.c and the shared helpers in hdr_fixture.c. main() runs all of
 * them as one cmocka group.
 */
#include "hdr_fixture.h"

/* ---- configuration ------------------------------------------------------------ */

static void test_init_rejects_bad_configuration(void **state)
{
    (void)state;
    struct hdr_histogram *h = (struct hdr_histogram *)&h; /* must be reset to NULL */
    assert_int_equal(hdr_init(0, 1000, 3, &h), BFTKV_E_INVAL);
    assert_null(h);
    assert_int_equal(hdr_init(-5, 1000, 3, &h), BFTKV_E_INVAL);
    assert_int_equal(hdr_init(10, 19, 3, &h), BFTKV_E_INVAL); /* highest < 2 * lowest */
    assert_int_equal(hdr_init(1, 1000, 0, &h), BFTKV_E_INVAL);
    assert_int_equal(hdr_init(1, 1000, 6, &h), BFTKV_E_INVAL);
    assert_int_equal(hdr_init(INT64_MAX / 2 + 1, INT64_MAX, 3, &h), BFTKV_E_INVAL);
    assert_null(h);

    assert_int_equal(hdr_init(10, 20, 3, &h), 0);
    hdr_destroy(h);
    assert_int_equal(hdr_init(1, INT64_MAX, 3, &h), 0);
    assert_true(hdr_record_value(h, INT64_MAX));
    assert_int_equal(hdr_max(h), INT64_MAX);
    assert_int_equal(hdr_value_at_percentile(h, 50), INT64_MAX);
    assert_int_equal(hdr_highest_equivalent(h, INT64_MAX), INT64_MAX);
    hdr_destroy(h);
    /* A large lowest at 5 sigfigs: slots of 2^33 at 2^50, i.e. 1/2^17 relative. */
    assert_int_equal(hdr_init(INT64_C(1) << 50, INT64_MAX, 5, &h), 0);
    int64_t v = (INT64_C(1) << 50) + 12345;
    assert_true(hdr_record_value(h, v));
    assert_int_equal(hdr_highest_equivalent(h, v) - hdr_lowest_equivalent(h, v) + 1, INT64_C(1) << 33);
    assert_int_equal(hdr_value_at_percentile(h, 50), v);
    hdr_destroy(h);
    assert_int_equal(hdr_init(INT64_MAX / 2, INT64_MAX, 5, &h), 0);
    assert_true(hdr_record_value(h, INT64_MAX));
    assert_int_equal(hdr_value_at_percentile(h, 50), INT64_MAX);
    hdr_destroy(h);
    hdr_destroy(NULL);
}

/* ---- accuracy ----------------------------------------------------------------- */

static void test_accuracy_against_sorted_reference(void **state)
{
    (void)state;
    enum { N = 1000000 };
    int64_t *values = malloc(N * sizeof *values);
    assert_non_null(values);
    struct hdr_histogram *h = new_ns_hist();
    uint64_t seed = 0x5eed0001;
    double sum = 0.0;
    for (size_t i = 0; i < N; i++) {
        values[i] = log_uniform(&seed, 1, NS_HIGHEST);
        sum += (double)values[i];
        assert_true(hdr_record_value(h, values[i]));
    }
    qsort(values, N, sizeof *values, cmp_int64);
    assert_int_equal(hdr_total_count(h), N);
    assert_int_equal(hdr_overflow_count(h), 0);
    /* min and max are tracked exactly, not just to resolution. */
    assert_int_equal(hdr_min(h), values[0]);
    assert_int_equal(hdr_max(h), values[N - 1]);

    /* Percentiles in hundredths of a percent so the reference rank is exact integer
     * arithmetic: rank = ceil(pp * N / 10000), at least 1. */
    static const int64_t pp[] = {0, 100, 1000, 2500, 5000, 7500, 9000, 9900, 9990, 9999, 10000};
    for (size_t i = 0; i < sizeof pp / sizeof pp[0]; i++) {
        int64_t rank = (pp[i] * N + 9999) / 10000;
        rank = rank < 1 ? 1 : rank;
        int64_t exact = values[rank - 1];
        int64_t got = hdr_value_at_percentile(h, (double)pp[i] / 100.0);
        double rel = (double)(got - exact) / (double)exact;
        CHECK(rel <= 0.01, "p%g: %lld vs exact %lld", "relative error <= 1%", (double)pp[i] / 100.0,
              (long long)got, (long long)exact);
        CHECK(got >= exact && rel < 1.0 / HALF_COUNT_3SF, "p%g: %lld vs exact %lld",
              "0 <= relative error < 1/1024", (double)pp[i] / 100.0, (long long)got, (long long)exact);
        /* The precise contract: the highest value equivalent to the exact one,
         * capped at the recorded max. */
        int64_t want = hdr_highest_equivalent(h, exact);
        want = want < values[N - 1] ? want : values[N - 1];
        CHECK(got == want, "p%g: %lld, want %lld", "contract", (double)pp[i] / 100.0, (long long)got,
              (long long)want);
    }
    assert_int_equal(hdr_value_at_percentile(h, 100.0), values[N - 1]);
    assert_int_equal(hdr_value_at_percentile(h, 250.0), values[N - 1]); /* clamped */
    assert_int_equal(hdr_value_at_percentile(h, -3.0), hdr_value_at_percentile(h, 0.0));
    assert_int_equal(hdr_value_at_percentile(h, 0.0), hdr_highest_equivalent(h, values[0]));

    double mean = sum / N;
    double var = 0.0;
    for (size_t i = 0; i < N; i++) {
        double d = (double)values[i] - mean;
        var += d * d;
    }
    double stddev = sqrt(var / N);
    double mean_err = fabs(hdr_mean(h) - mean) / mean;
    CHECK(mean_err <= 0.001, "mean %f vs %f", "mean within 0.1%", hdr_mean(h), mean);
    /* Midpoints are off by at most half a slot: 1/2048 of the value. */
    CHECK(mean_err <= 0.5 / HALF_COUNT_3SF, "mean %f vs %f", "mean within 1/2048", hdr_mean(h), mean);
    double sd_err = fabs(hdr_stddev(h) - stddev) / stddev;
    CHECK(sd_err <= 0.001, "stddev %f vs %f", "stddev within 0.1%", hdr_stddev(h), stddev);

    hdr_destroy(h);
    free(values);
}

/* ---- edge values -------------------------------------------------------------- */

static void test_edge_values(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    assert_int_equal(hdr_value_at_percentile(h, 50), 0);
    assert_int_equal(hdr_min(h), 0);
    assert_int_equal(hdr_max(h), 0);
    assert_true(hdr_mean(h) == 0.0);
    assert_true(hdr_stddev(h) == 0.0);

    assert_true(hdr_record_value(h, 1));
    assert_true(hdr_record_value(h, NS_HIGHEST));
    assert_int_equal(hdr_min(h), 1);
    assert_int_equal(hdr_max(h), NS_HIGHEST);
    assert_int_equal(hdr_value_at_percentile(h, 0), 1);
    assert_int_equal(hdr_value_at_percentile(h, 50), 1);
    assert_int_equal(hdr_value_at_percentile(h, 50.0001), NS_HIGHEST);
    assert_int_equal(hdr_value_at_percentile(h, 100), NS_HIGHEST);

    assert_false(hdr_record_value(h, NS_HIGHEST + 1));
    assert_int_equal(hdr_overflow_count(h), 1);
    assert_false(hdr_record_value(h, -1));
    assert_int_equal(hdr_overflow_count(h), 2);
    assert_false(hdr_record_value(h, INT64_MIN));
    assert_false(hdr_record_values(h, INT64_MAX, 5));
    assert_int_equal(hdr_overflow_count(h), 8);
    assert_int_equal(hdr_total_count(h), 2);
    assert_int_equal(hdr_max(h), NS_HIGHEST);

    assert_true(hdr_record_value(h, 0)); /* 0 is a valid value below lowest */
    assert_int_equal(hdr_min(h), 0);
    assert_true(hdr_record_values(h, 7, 0)); /* zero copies change nothing */
    assert_int_equal(hdr_total_count(h), 3);
    assert_true(hdr_record_values(h, 7, 4));
    assert_int_equal(hdr_total_count(h), 7);
    assert_int_equal(hdr_value_at_percentile(h, 50), 7);

    /* Mean and stddev use slot midpoints: 4096 sits in [4096, 4099] (midpoint
     * 4098), 8192 in [8192, 8199] (midpoint 8196). */
    struct hdr_histogram *m = new_ns_hist();
    assert_true(hdr_record_value(m, 4096));
    assert_true(hdr_mean(m) == 4098.0);
    assert_true(hdr_stddev(m) == 0.0);
    assert_true(hdr_record_value(m, 8192));
    assert_true(hdr_mean(m) == 6147.0);
    assert_true(hdr_stddev(m) == 2049.0);
    hdr_destroy(m);

    /* Below 2048 ns every value has its own slot; above, slots are powers of two
     * wide, adjacent, and narrower than 1/1024 of their start. */
    for (int64_t v = 0; v < 2048; v++) {
        assert_int_equal(hdr_lowest_equivalent(h, v), v);
        assert_int_equal(hdr_highest_equivalent(h, v), v);
    }
    uint64_t seed = 7;
    for (int i = 0; i < 10000; i++) {
        int64_t v = log_uniform(&seed, 2048, NS_HIGHEST);
        int64_t lo = hdr_lowest_equivalent(h, v);
        int64_t hi = hdr_highest_equivalent(h, v);
        int64_t width = hi - lo + 1;
        assert_true(lo <= v && v <= hi);
        assert_true(width > 1 && (width & (width - 1)) == 0);
        assert_true((double)width / (double)lo <= 1.0 / HALF_COUNT_3SF);
        assert_int_equal(hdr_lowest_equivalent(h, hi + 1), hi + 1);
        assert_int_equal(hdr_highest_equivalent(h, lo - 1), lo - 1);
        assert_int_equal(hdr_lowest_equivalent(h, hi), lo);
    }
    hdr_destroy(h);

    /* lowest 1000 at 2 sigfigs: full precision (slot < 1/128 of the value) from
     * 1000 on, so the narrowest slot is 4 wide and smaller values share them. */
    h = new_hist(1000, 1000000000, 2);
    assert_true(hdr_record_value(h, 5));
    assert_int_equal(hdr_lowest_equivalent(h, 5), 4);
    assert_int_equal(hdr_highest_equivalent(h, 5), 7);
    assert_int_equal(hdr_lowest_equivalent(h, 3), 0);
    assert_int_equal(hdr_value_at_percentile(h, 50), 5); /* capped at max */
    for (int i = 0; i < 10000; i++) {
        int64_t v = i == 0 ? 1000 : log_uniform(&seed, 1000, 1000000000);
        int64_t width = hdr_highest_equivalent(h, v) - hdr_lowest_equivalent(h, v) + 1;
        CHECK((double)width / (double)v < 1.0 / HALF_COUNT_2SF, "value %lld width %lld",
              "2 sigfigs from lowest on", (long long)v, (long long)width);
    }
    assert_true(hdr_record_value(h, 1000000000));
    assert_false(hdr_record_value(h, 1000000001));
    hdr_destroy(h);
}

/* ---- coordinated-omission correction ------------------------------------------ */

static void test_corrected_value(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    assert_true(hdr_record_corrected_value(h, 1000, 100));
    assert_int_equal(hdr_total_count(h), 10); /* 1000, 900, ..., 100 */
    assert_int_equal(hdr_min(h), 100);
    assert_int_equal(hdr_max(h), 1000);
    for (int k = 1; k <= 10; k++) {
        assert_int_equal(hdr_value_at_percentile(h, 10.0 * k), 100 * k);
    }
    struct buckets b = buckets_of(h);
    assert_int_equal(b.n, 10);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.value[i], 100 * (int64_t)(i + 1));
        assert_int_equal(b.count[i], 1);
    }
    buckets_free(&b);

    /* No correction without a positive interval or below two intervals. */
    hdr_reset(h);
    assert_true(hdr_record_corrected_value(h, 1000, 0));
    assert_true(hdr_record_corrected_value(h, 1000, -5));
    assert_true(hdr_record_corrected_value(h, 150, 100));
    assert_int_equal(hdr_total_count(h), 3);
    assert_true(hdr_record_corrected_value(h, 200, 100)); /* 200 and 100 */
    assert_int_equal(hdr_total_count(h), 5);
    assert_int_equal(hdr_min(h), 100);

    /* A refused value is not back-filled. */
    assert_false(hdr_record_corrected_value(h, NS_HIGHEST + 1, 1000));
    assert_int_equal(hdr_total_count(h), 5);
    assert_int_equal(hdr_overflow_count(h), 1);
    hdr_destroy(h);

    /* The slot-at-a-time back-fill equals recording every term one by one. */
    struct hdr_histogram *fast = new_ns_hist();
    struct hdr_histogram *slow = new_ns_hist();
    static const int64_t cases[][2] = {{1234567, 37}, {98765432, 1000}, {5000, 3}, {3000000, 2999}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t value = cases[c][0];
        int64_t interval = cases[c][1];
        assert_true(hdr_record_corrected_value(fast, value, interval));
        assert_true(hdr_record_value(slow, value));
        for (int64_t v = value - interval; v >= interval; v -= interval) {
            assert_true(hdr_record_value(slow, v));
        }
    }
    assert_same_hist(fast, slow);
    hdr_destroy(slow);

    /* 60 s at 1 ns expected interval: 6e10 values, recorded per slot. */
    hdr_reset(fast);
    assert_true(hdr_record_corrected_value(fast, NS_HIGHEST, 1));
    assert_int_equal(hdr_total_count(fast), NS_HIGHEST);
    assert_int_equal(hdr_min(fast), 1);
    assert_int_equal(hdr_max(fast), NS_HIGHEST);
    int64_t median = hdr_value_at_percentile(fast, 50);
    assert_true(median >= NS_HIGHEST / 2);
    assert_true((double)median <= (double)NS_HIGHEST / 2 * (1 + 1 / HALF_COUNT_3SF));
    hdr_destroy(fast);
}

/* ---- merge -------------------------------------------------------------------- */

static void test_merge_same_configuration(void **state)
{
    (void)state;
    struct hdr_histogram *a = new_ns_hist();
    struct hdr_histogram *b = new_ns_hist();
    struct hdr_histogram *all = new_ns_hist();
    uint64_t seed = 0x5eed0002;
    for (int i = 0; i < 200000; i++) {
        int64_t v = log_uniform(&seed, 1, NS_HIGHEST);
        assert_true(hdr_record_value(i % 3 == 0 ? a : b, v));
        assert_true(hdr_record_value(all, v));
    }
    /* src's own overflow travels with it, but is not counted as refused by dst. */
    assert_false(hdr_record_value(b, -1));
    assert_false(hdr_record_value(all, -1));
    assert_int_equal(hdr_add(a, b), 0);
    assert_same_hist(a, all);

    /* Merging into an empty histogram copies; merging an empty one is a no-op. */
    struct hdr_histogram *empty = new_ns_hist();
    struct hdr_histogram *copy = new_ns_hist();
    assert_int_equal(hdr_add(copy, all), 0);
    assert_same_hist(copy, all);
    assert_int_equal(hdr_add(copy, empty), 0);
    assert_same_hist(copy, all);
    hdr_destroy(empty);
    hdr_destroy(copy);
    hdr_destroy(a);
    hdr_destroy(b);
    hdr_destroy(all);
}

static void test_merge_different_configuration(void **state)
{
    (void)state;
    enum { N = 100000 };
    int64_t *values = malloc(N * sizeof *values);
    assert_non_null(values);
    struct hdr_histogram *src = new_hist(1000, 1000000000, 2);
    struct hdr_histogram *dst = new_ns_hist();
    uint64_t seed = 0x5eed0003;
    for (size_t i = 0; i < N; i++) {
        values[i] = log_uniform(&seed, 1000, 1000000000);
        assert_true(hdr_record_value(src, values[i]));
    }
    qsort(values, N, sizeof *values, cmp_int64);
    assert_int_equal(hdr_add(dst, src), 0);
    assert_int_equal(hdr_total_count(dst), N);
    assert_int_equal(hdr_min(dst), values[0]);
    assert_int_equal(hdr_max(dst), values[N - 1]);
    assert_consistent(dst);
    /* src keeps 1/128 resolution; dst then adds at most 1/1024 on top. */
    double bound = (1 + 1 / HALF_COUNT_2SF) * (1 + 1 / HALF_COUNT_3SF) - 1;
    for (int64_t pp = 0; pp <= 10000; pp += 25) {
        int64_t rank = (pp * N + 9999) / 10000;
        rank = rank < 1 ? 1 : rank;
        int64_t exact = values[rank - 1];
        int64_t got = hdr_value_at_percentile(dst, (double)pp / 100.0);
        double rel = fabs((double)(got - exact)) / (double)exact;
        CHECK(rel <= bound && rel <= 0.01, "p%g: %lld vs exact %lld", "merged resolution",
              (double)pp / 100.0, (long long)got, (long long)exact);
    }
    hdr_destroy(src);
    hdr_destroy(dst);

    /* A narrower dst refuses what it cannot hold and says how many. */
    src = new_ns_hist();
    dst = new_hist(1, 1000000, 3);
    seed = 0x5eed0004;
    for (int i = 0; i < 1000; i++) {
        assert_true(hdr_record_value(src, log_uniform(&seed, 1, 500000)));
    }
    for (int i = 0; i < 250; i++) {
        assert_true(hdr_record_value(src, log_uniform(&seed, 2000000, NS_HIGHEST)));
    }
    assert_false(hdr_record_value(src, NS_HIGHEST + 1));
    assert_int_equal(hdr_add(dst, src), 250);
    assert_int_equal(hdr_total_count(dst), 1000);
    assert_int_equal(hdr_overflow_count(dst), 251);
    assert_true(hdr_max(dst) <= 500000);
    assert_consistent(dst);
    hdr_destroy(src);
    hdr_destroy(dst);
    free(values);
}

/* ---- reset and iteration ------------------------------------------------------ */

static void test_reset(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    uint64_t seed = 11;
    for (int i = 0; i < 1000; i++) {
        assert_true(hdr_record_value(h, log_uniform(&seed, 1, NS_HIGHEST)));
    }
    assert_false(hdr_record_value(h, -1));
    hdr_reset(h);
    assert_int_equal(hdr_total_count(h), 0);
    assert_int_equal(hdr_overflow_count(h), 0);
    assert_int_equal(hdr_min(h), 0);
    assert_int_equal(hdr_max(h), 0);
    assert_int_equal(hdr_value_at_percentile(h, 99), 0);
    assert_true(hdr_mean(h) == 0.0);
    struct buckets b = buckets_of(h);
    assert_int_equal(b.n, 0);
    buckets_free(&b);

    assert_true(hdr_record_value(h, 42));
    assert_int_equal(hdr_min(h), 42);
    assert_int_equal(hdr_max(h), 42);
    assert_int_equal(hdr_value_at_percentile(h, 50), 42);
    assert_int_equal(hdr_total_count(h), 1);
    hdr_destroy(h);
}

static void test_foreach_order_and_sum(void **state)
{
    (void)state;
    enum { N = 50000 };
    int64_t *values = malloc(N * sizeof *values);
    assert_non_null(values);
    struct hdr_histogram *h = new_ns_hist();
    uint64_t seed = 0x5eed0005;
    for (size_t i = 0; i < N; i++) {
        values[i] = log_uniform(&seed, 1, NS_HIGHEST);
        assert_true(hdr_record_values(h, values[i], 3));
    }
    qsort(values, N, sizeof *values, cmp_int64);
    size_t distinct = 0;
    for (size_t i = 0; i < N; i++) {
        if (i == 0 || hdr_lowest_equivalent(h, values[i]) != hdr_lowest_equivalent(h, values[i - 1])) {
            distinct++;
        }
    }
    struct buckets b = buckets_of(h);
    assert_true(b.increasing);
    assert_int_equal(b.n, distinct);
    assert_int_equal(buckets_sum(&b), 3 * N);
    assert_int_equal(buckets_sum(&b), hdr_total_count(h));
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(b.value[i], hdr_highest_equivalent(h, b.value[i]));
        assert_true(b.count[i] > 0 && b.count[i] % 3 == 0);
    }
    assert_int_equal(b.value[0], hdr_highest_equivalent(h, values[0]));
    assert_int_equal(b.value[b.n - 1], hdr_highest_equivalent(h, values[N - 1]));
    buckets_free(&b);
    hdr_destroy(h);
    free(values);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_rejects_bad_configuration),
        cmocka_unit_test(test_accuracy_against_sorted_reference),
        cmocka_unit_test(test_edge_values),
        cmocka_unit_test(test_corrected_value),
        cmocka_unit_test(test_merge_same_configuration),
        cmocka_unit_test(test_merge_different_configuration),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_foreach_order_and_sum),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_encoding_is_compact),
        cmocka_unit_test(test_decode_never_trusts_input),
        cmocka_unit_test(test_decode_malformed_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
