/* Unit tests of the HDR histogram (common/hdr.c).
 *
 * Accuracy is checked against an exact reference: the same values sorted in an
 * array, so every percentile has one right answer (the highest value equivalent to
 * the reference value at that rank). Values come from a fixed-seed splitmix64 so a
 * failure reproduces. The decoder is fed every prefix and many single-byte
 * corruptions of real encodings plus hand-built malformed inputs; it must reject
 * them or produce a histogram whose invariants hold (run under ASan+UBSan too).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/hdr.h"

/* bftkv's configuration: 1 ns .. 60 s at 3 significant figures. */
#define NS_LOWEST 1
#define NS_HIGHEST INT64_C(60000000000)
#define NS_SIGFIGS 3

/* At 3 sigfigs a bucket has 2^ceil(log2(2000)) = 2048 sub-buckets, of which the
 * upper 1024 are used beyond bucket 0: a slot starting at L >= 1024 * w has width
 * w, so reporting a slot's highest value overstates by less than 1/1024 and its
 * midpoint is off by at most 1/2048. */
#define HALF_COUNT_3SF 1024.0
/* At 2 sigfigs: 2^ceil(log2(200)) = 256 sub-buckets, half 128. */
#define HALF_COUNT_2SF 128.0

#define CHECK(cond, ...)                                                           \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fail_msg("check failed: %s: " __VA_ARGS__);                            \
        }                                                                          \
    } while (0)

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1p-53;
}

/* Log-uniform integer in [lo, hi]. */
static int64_t log_uniform(uint64_t *state, int64_t lo, int64_t hi)
{
    double l = log((double)lo);
    double v = exp(l + uniform01(state) * (log((double)hi) - l));
    if (!(v < 0x1p63)) { /* (double)INT64_MAX rounds up to 2^63 */
        return hi;
    }
    int64_t x = (int64_t)v;
    return x < lo ? lo : (x > hi ? hi : x);
}

static int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static struct hdr_histogram *new_hist(int64_t lowest, int64_t highest, int sigfigs)
{
    struct hdr_histogram *h = NULL;
    int rc = hdr_init(lowest, highest, sigfigs, &h);
    assert_int_equal(rc, 0);
    assert_non_null(h);
    return h;
}

static struct hdr_histogram *new_ns_hist(void)
{
    return new_hist(NS_LOWEST, NS_HIGHEST, NS_SIGFIGS);
}

/* Every (value, count) hdr_foreach reports. */
struct buckets {
    size_t n;
    size_t cap;
    int64_t *value;
    int64_t *count;
    bool increasing;
};

static void buckets_collect(void *arg, int64_t value, int64_t count)
{
    struct buckets *b = arg;
    if (b->n > 0 && value <= b->value[b->n - 1]) {
        b->increasing = false;
    }
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->value = realloc(b->value, b->cap * sizeof *b->value);
        b->count = realloc(b->count, b->cap * sizeof *b->count);
        assert_non_null(b->value);
        assert_non_null(b->count);
    }
    b->value[b->n] = value;
    b->count[b->n] = count;
    b->n++;
}

static struct buckets buckets_of(const struct hdr_histogram *h)
{
    struct buckets b = {.increasing = true};
    hdr_foreach(h, buckets_collect, &b);
    return b;
}

static void buckets_free(struct buckets *b)
{
    free(b->value);
    free(b->count);
}

static int64_t buckets_sum(const struct buckets *b)
{
    int64_t sum = 0;
    for (size_t i = 0; i < b->n; i++) {
        sum += b->count[i];
    }
    return sum;
}

/* Two histograms hold the same data: same buckets, totals and extremes. */
static void assert_same_hist(const struct hdr_histogram *a, const struct hdr_histogram *b)
{
    assert_int_equal(hdr_total_count(a), hdr_total_count(b));
    assert_int_equal(hdr_min(a), hdr_min(b));
    assert_int_equal(hdr_max(a), hdr_max(b));
    assert_int_equal(hdr_overflow_count(a), hdr_overflow_count(b));
    struct buckets ba = buckets_of(a);
    struct buckets bb = buckets_of(b);
    assert_int_equal(ba.n, bb.n);
    for (size_t i = 0; i < ba.n; i++) {
        CHECK(ba.value[i] == bb.value[i] && ba.count[i] == bb.count[i],
              "bucket %zu: %lld x%lld vs %lld x%lld", "same bucket", i, (long long)ba.value[i], (long long)ba.count[i], (long long)bb.value[i],
              (long long)bb.count[i]);
    }
    for (int p2 = 0; p2 <= 200; p2++) {
        double p = p2 / 2.0;
        assert_int_equal(hdr_value_at_percentile(a, p), hdr_value_at_percentile(b, p));
    }
    assert_true(hdr_mean(a) == hdr_mean(b));
    buckets_free(&ba);
    buckets_free(&bb);
}

/* The invariants any histogram, decoded from anything, must satisfy. */
static void assert_consistent(const struct hdr_histogram *h)
{
    struct buckets b = buckets_of(h);
    assert_true(b.increasing);
    assert_int_equal(buckets_sum(&b), hdr_total_count(h));
    if (hdr_total_count(h) == 0) {
        assert_int_equal(b.n, 0);
        assert_int_equal(hdr_min(h), 0);
        assert_int_equal(hdr_max(h), 0);
    } else {
        assert_true(hdr_min(h) <= hdr_max(h));
        assert_true(hdr_lowest_equivalent(h, hdr_min(h)) <= b.value[0]);
        assert_true(hdr_highest_equivalent(h, hdr_min(h)) == b.value[0]);
        assert_true(hdr_highest_equivalent(h, hdr_max(h)) == b.value[b.n - 1]);
        assert_int_equal(hdr_value_at_percentile(h, 100.0), hdr_max(h));
        assert_true(hdr_value_at_percentile(h, 0.0) >= hdr_min(h));
    }
    buckets_free(&b);
}

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

/* ---- serialisation ------------------------------------------------------------ */

static uint8_t *encode_alloc(const struct hdr_histogram *h, size_t *len)
{
    assert_int_equal(hdr_encode(h, NULL, 0, len), BFTKV_E_BUF_TOO_SMALL);
    uint8_t *buf = malloc(*len);
    assert_non_null(buf);
    size_t written = 0;
    assert_int_equal(hdr_encode(h, buf, *len, &written), 0);
    assert_int_equal(written, *len);
    return buf;
}

static void assert_round_trip(const struct hdr_histogram *h)
{
    size_t len;
    uint8_t *buf = encode_alloc(h, &len);
    struct hdr_histogram *back = NULL;
    assert_int_equal(hdr_decode(buf, len, &back), 0);
    assert_same_hist(h, back);
    assert_consistent(back);
    /* Same configuration: the slot boundaries agree. */
    uint64_t seed = 3;
    for (int i = 0; i < 1000; i++) {
        int64_t v = log_uniform(&seed, 1, hdr_max(h) > 2 ? hdr_max(h) : 2);
        assert_int_equal(hdr_lowest_equivalent(h, v), hdr_lowest_equivalent(back, v));
    }
    /* Re-encoding is byte-identical. */
    size_t len2;
    uint8_t *buf2 = encode_alloc(back, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf2);
    hdr_destroy(back);

    size_t text_len;
    assert_int_equal(hdr_encode_base64(h, NULL, 0, &text_len), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(text_len, (len + 2) / 3 * 4);
    char *text = malloc(text_len + 1);
    assert_non_null(text);
    size_t short_len;
    assert_int_equal(hdr_encode_base64(h, text, text_len, &short_len), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(short_len, text_len);
    size_t got_len;
    assert_int_equal(hdr_encode_base64(h, text, text_len + 1, &got_len), 0);
    assert_int_equal(got_len, text_len);
    assert_int_equal(strlen(text), text_len);
    assert_int_equal(hdr_decode_base64(text, &back), 0);
    assert_same_hist(h, back);
    hdr_destroy(back);
    free(text);
    free(buf);
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    assert_round_trip(h); /* empty */

    uint64_t seed = 0x5eed0006;
    for (int i = 0; i < 100000; i++) {
        assert_true(hdr_record_value(h, log_uniform(&seed, 1, NS_HIGHEST)));
    }
    assert_false(hdr_record_value(h, NS_HIGHEST + 1));
    assert_round_trip(h);

    /* Large counts, value 0, extreme values: long varints. */
    assert_true(hdr_record_values(h, 0, INT64_C(1) << 40));
    assert_true(hdr_record_values(h, NS_HIGHEST, INT64_MAX / 4));
    assert_round_trip(h);
    hdr_destroy(h);

    /* Other configurations. */
    h = new_hist(1000, 1000000000, 2);
    assert_true(hdr_record_value(h, 3));
    assert_true(hdr_record_value(h, 123456789));
    assert_round_trip(h);
    hdr_destroy(h);
    h = new_hist(1, INT64_MAX, 3);
    assert_true(hdr_record_value(h, INT64_MAX));
    assert_true(hdr_record_value(h, 1));
    assert_round_trip(h);
    hdr_destroy(h);
    h = new_hist(1, 1000000, 5);
    assert_true(hdr_record_value(h, 999999));
    assert_true(hdr_record_value(h, 123457));
    assert_round_trip(h);
    hdr_destroy(h);

    /* A short buffer is refused without a byte written past it. */
    h = new_ns_hist();
    assert_true(hdr_record_value(h, 12345));
    size_t len;
    assert_int_equal(hdr_encode(h, NULL, 0, &len), BFTKV_E_BUF_TOO_SMALL);
    uint8_t buf[64];
    assert_true(len < sizeof buf);
    memset(buf, 0xAB, sizeof buf);
    size_t need = 0;
    assert_int_equal(hdr_encode(h, buf, len - 1, &need), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(need, len);
    for (size_t i = len - 1; i < sizeof buf; i++) {
        assert_int_equal(buf[i], 0xAB);
    }
    hdr_destroy(h);
}

/* A typical bftkv latency histogram: a log-normal body around 150 us (sigma 0.4 in
 * log space) with 2% of a tail spread log-uniformly up to 10 ms, all inside
 * 10 us .. 10 ms, 1e5 samples. Encodes in about 1.3 bytes per non-empty slot. */
static void test_encoding_is_compact(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    uint64_t seed = 0x5eed0007;
    for (int i = 0; i < 100000; i++) {
        int64_t v;
        if (uniform01(&seed) < 0.02) {
            v = log_uniform(&seed, 10000, 10000000);
        } else {
            double u1 = uniform01(&seed);
            double u2 = uniform01(&seed);
            double z = sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * M_PI * u2);
            v = (int64_t)(150000.0 * exp(0.4 * z));
            v = v < 10000 ? 10000 : (v > 10000000 ? 10000000 : v);
        }
        assert_true(hdr_record_value(h, v));
    }
    size_t len;
    assert_int_equal(hdr_encode(h, NULL, 0, &len), BFTKV_E_BUF_TOO_SMALL);
    struct buckets b = buckets_of(h);
    print_message("hdr: 1e5 latencies, %zu non-empty slots, encoded in %zu bytes\n", b.n, len);
    /* The raw counts are 27648 slots * 8 bytes = 216 KiB. A varint costs at least a
     * byte, so the size follows the number of non-empty slots (~4700 here: the
     * body spans ~3.5 doublings of 1024 slots, the tail adds sparse ones); 4 KiB
     * would need a distribution about half as wide (sigma 0.25 without a tail). */
    CHECK(len < 8192, "%zu bytes", "typical histogram encodes in < 8 KiB", len);
    CHECK(len <= 64 + b.n * 3 / 2, "%zu bytes for %zu slots", "at most 1.5 bytes per non-empty slot",
          len, b.n);
    CHECK(b.n > 3000, "%zu slots", "the distribution is as wide as intended", b.n);
    buckets_free(&b);
    hdr_destroy(h);
}

/* Decodes untrusted bytes: either an error with *out NULL, or a sound histogram. */
static void decode_untrusted(const uint8_t *buf, size_t len)
{
    struct hdr_histogram *h = (struct hdr_histogram *)&h;
    int rc = hdr_decode(buf, len, &h);
    if (rc != 0) {
        CHECK(rc == BFTKV_E_CORRUPT || rc == BFTKV_E_VERSION || rc == BFTKV_E_NOMEM, "rc %d",
              "documented error", rc);
        assert_null(h);
        return;
    }
    assert_non_null(h);
    assert_consistent(h);
    assert_round_trip(h);
    hdr_destroy(h);
}

static void test_decode_never_trusts_input(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    uint64_t seed = 0x5eed0008;
    for (int i = 0; i < 3000; i++) {
        assert_true(hdr_record_value(h, log_uniform(&seed, 1, 100000000)));
    }
    assert_true(hdr_record_values(h, 5000, 1000000)); /* a multi-byte count */
    size_t len;
    uint8_t *enc = encode_alloc(h, &len);
    uint8_t *buf = malloc(len);
    assert_non_null(buf);

    /* Every strict prefix lacks counts that the total promises: always refused. */
    for (size_t n = 0; n < len; n++) {
        memcpy(buf, enc, n);
        struct hdr_histogram *out = (struct hdr_histogram *)&out;
        int rc = hdr_decode(n == 0 ? NULL : buf, n, &out);
        CHECK(rc == BFTKV_E_CORRUPT, "prefix %zu of %zu: rc %d", "prefix refused", n, len, rc);
        assert_null(out);
    }
    /* Single-byte corruptions: refused or sound. */
    static const uint8_t flips[] = {0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x7f, 0x80, 0xff};
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            memcpy(buf, enc, len);
            buf[pos] ^= flips[f];
            decode_untrusted(buf, len);
        }
    }
    free(buf);
    free(enc);
    hdr_destroy(h);

    /* Random tails after a valid magic and version. */
    uint8_t junk[80];
    for (int i = 0; i < 20000; i++) {
        memcpy(junk, "bkHd\x01", 5);
        size_t n = 5 + (size_t)(splitmix64(&seed) % (sizeof junk - 5));
        for (size_t k = 5; k < n; k++) {
            /* Mostly small bytes so the header often parses and counts get tried. */
            uint64_t r = splitmix64(&seed);
            junk[k] = (uint8_t)((r & 3) == 0 ? r >> 8 : (r >> 8) % 24);
        }
        decode_untrusted(junk, n);
    }
}

/* A hand-written encoder, independent of hdr.c, to build malformed inputs. */
struct wire {
    uint8_t b[128];
    size_t n;
};

static void wire_byte(struct wire *w, uint8_t v)
{
    assert_true(w->n < sizeof w->b);
    w->b[w->n++] = v;
}

static void wire_varint(struct wire *w, uint64_t v)
{
    for (; v >= 0x80; v >>= 7) {
        wire_byte(w, (uint8_t)(0x80 | (v & 0x7f)));
    }
    wire_byte(w, (uint8_t)v);
}

static void wire_count(struct wire *w, int64_t v) /* zigzag */
{
    wire_varint(w, v < 0 ? 2 * (uint64_t)(-(v + 1)) + 1 : 2 * (uint64_t)v);
}

static void wire_header(struct wire *w, int64_t lowest, int64_t highest, int64_t sigfigs, int64_t total,
                        int64_t min, int64_t max)
{
    w->n = 0;
    for (size_t i = 0; i < 4; i++) {
        wire_byte(w, (uint8_t)"bkHd"[i]);
    }
    wire_byte(w, 1);
    wire_varint(w, (uint64_t)lowest);
    wire_varint(w, (uint64_t)highest);
    wire_varint(w, (uint64_t)sigfigs);
    wire_varint(w, (uint64_t)total);
    wire_varint(w, (uint64_t)min);
    wire_varint(w, (uint64_t)max);
    wire_varint(w, 0); /* overflow */
}

static int wire_decode(const struct wire *w)
{
    struct hdr_histogram *h = NULL;
    int rc = hdr_decode(w->b, w->n, &h);
    if (rc == 0) {
        assert_consistent(h);
        hdr_destroy(h);
    } else {
        assert_null(h);
    }
    return rc;
}

static void test_decode_malformed_inputs(void **state)
{
    (void)state;
    struct wire w;
    /* Well-formed: values 5 (x2) and 7 (x1) in the ns configuration. */
    wire_header(&w, 1, NS_HIGHEST, 3, 3, 5, 7);
    wire_count(&w, -5);
    wire_count(&w, 2);
    wire_count(&w, -1);
    wire_count(&w, 1);
    assert_int_equal(wire_decode(&w), 0);
    struct hdr_histogram *h = NULL;
    assert_int_equal(hdr_decode(w.b, w.n, &h), 0);
    assert_int_equal(hdr_total_count(h), 3);
    assert_int_equal(hdr_value_at_percentile(h, 50), 5);
    assert_int_equal(hdr_value_at_percentile(h, 100), 7);
    hdr_destroy(h);

    w.b[0] = 'X';
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT); /* magic */
    w.b[0] = 'b';
    w.b[4] = 2;
    assert_int_equal(wire_decode(&w), BFTKV_E_VERSION);
    w.b[4] = 0;
    assert_int_equal(wire_decode(&w), BFTKV_E_VERSION);

    wire_header(&w, 1, NS_HIGHEST, 3, 4, 5, 7); /* total says 4, counts 3 */
    wire_count(&w, -5);
    wire_count(&w, 2);
    wire_count(&w, -1);
    wire_count(&w, 1);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    wire_header(&w, 1, NS_HIGHEST, 3, 3, 4, 7); /* min not in the first slot */
    wire_count(&w, -5);
    wire_count(&w, 2);
    wire_count(&w, -1);
    wire_count(&w, 1);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    wire_header(&w, 1, NS_HIGHEST, 3, 3, 5, 8); /* max not in the last slot */
    wire_count(&w, -5);
    wire_count(&w, 2);
    wire_count(&w, -1);
    wire_count(&w, 1);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    wire_header(&w, 1, NS_HIGHEST, 3, 2, 5, 5); /* a literal zero count */
    wire_count(&w, -5);
    wire_count(&w, 2);
    wire_count(&w, 0);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    wire_header(&w, 1, NS_HIGHEST, 3, INT64_MAX, 5, 6); /* counts overflow int64 */
    wire_count(&w, -5);
    wire_count(&w, INT64_MAX);
    wire_count(&w, INT64_MAX);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    wire_header(&w, 1, NS_HIGHEST, 3, 1, 5, 5); /* zero run past the last slot */
    wire_count(&w, -INT64_MAX);
    wire_count(&w, 1);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    wire_header(&w, 1, NS_HIGHEST, 3, 1, 5, 5);
    wire_count(&w, -27648); /* exactly all slots, then one more count */
    wire_count(&w, 1);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    wire_header(&w, 1, NS_HIGHEST, 3, 0, 0, 0); /* empty but claims a max */
    w.n -= 2;
    wire_varint(&w, 9);
    wire_varint(&w, 0);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    wire_header(&w, 1, NS_HIGHEST, 3, 0, 0, 0); /* empty, fine */
    assert_int_equal(wire_decode(&w), 0);

    /* Configurations hdr_init would reject. */
    wire_header(&w, 0, NS_HIGHEST, 3, 0, 0, 0);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    wire_header(&w, 10, 19, 3, 0, 0, 0);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    wire_header(&w, 1, NS_HIGHEST, 9, 0, 0, 0);
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    wire_header(&w, 1, NS_HIGHEST, (int64_t)1 << 40, 0, 0, 0); /* would truncate to int */
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    /* Varints: values above INT64_MAX, over-long, truncated. */
    wire_header(&w, 1, NS_HIGHEST, 3, 0, 0, 0);
    w.n = 5;
    wire_varint(&w, UINT64_MAX); /* lowest = 2^64 - 1 */
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    w.n = 5;
    for (int i = 0; i < 10; i++) {
        wire_byte(&w, 0x81);
    }
    wire_byte(&w, 0x01); /* 11-byte varint */
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    w.n = 5;
    for (int i = 0; i < 9; i++) {
        wire_byte(&w, 0xff);
    }
    wire_byte(&w, 0x02); /* 10th byte carries bit 64 */
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);
    w.n = 5;
    wire_byte(&w, 0x80); /* ends mid-varint */
    assert_int_equal(wire_decode(&w), BFTKV_E_CORRUPT);

    /* Base64 text that is not base64, or bytes that are not an encoding. */
    assert_int_equal(hdr_decode_base64("", &h), BFTKV_E_CORRUPT);
    assert_int_equal(hdr_decode_base64("!!!!", &h), BFTKV_E_CORRUPT);
    assert_int_equal(hdr_decode_base64("YmtIZA", &h), BFTKV_E_CORRUPT); /* unpadded */
    assert_int_equal(hdr_decode_base64("aGVsbG8gd29ybGQ=", &h), BFTKV_E_CORRUPT);
    assert_int_equal(hdr_decode_base64("YmtIZAI=", &h), BFTKV_E_VERSION); /* "bkHd\x02" */
    assert_null(h);
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
