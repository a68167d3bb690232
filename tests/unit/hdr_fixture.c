/* Helpers shared by the HDR histogram tests (see hdr_fixture.h): value
 * generation from a fixed seed so a failure reproduces, construction, bucket
 * collection via hdr_foreach, and the assertions that two histograms are equal or
 * that one's invariants hold.
 */
#include "hdr_fixture.h"
#include "common/mix64.h"

uint64_t splitmix64(uint64_t *state)
{
    return bftkv_splitmix64(state);
}

double uniform01(uint64_t *state)
{
    return (double)(splitmix64(state) >> 11) * 0x1p-53;
}

/* Log-uniform integer in [lo, hi]. */
int64_t log_uniform(uint64_t *state, int64_t lo, int64_t hi)
{
    double l = log((double)lo);
    double v = exp(l + uniform01(state) * (log((double)hi) - l));
    if (!(v < 0x1p63)) { /* (double)INT64_MAX rounds up to 2^63 */
        return hi;
    }
    int64_t x = (int64_t)v;
    return x < lo ? lo : (x > hi ? hi : x);
}

int cmp_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

struct hdr_histogram *new_hist(int64_t lowest, int64_t highest, int sigfigs)
{
    struct hdr_histogram *h = NULL;
    int rc = hdr_init(lowest, highest, sigfigs, &h);
    assert_int_equal(rc, 0);
    assert_non_null(h);
    return h;
}

struct hdr_histogram *new_ns_hist(void)
{
    return new_hist(NS_LOWEST, NS_HIGHEST, NS_SIGFIGS);
}

void buckets_collect(void *arg, int64_t value, int64_t count)
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

struct buckets buckets_of(const struct hdr_histogram *h)
{
    struct buckets b = {.increasing = true};
    hdr_foreach(h, buckets_collect, &b);
    return b;
}

void buckets_free(struct buckets *b)
{
    free(b->value);
    free(b->count);
}

int64_t buckets_sum(const struct buckets *b)
{
    int64_t sum = 0;
    for (size_t i = 0; i < b->n; i++) {
        sum += b->count[i];
    }
    return sum;
}

/* Two histograms hold the same data: same buckets, totals and extremes. */
void assert_same_hist(const struct hdr_histogram *a, const struct hdr_histogram *b)
{
    assert_int_equal(hdr_total_count(a), hdr_total_count(b));
    assert_int_equal(hdr_min(a), hdr_min(b));
    assert_int_equal(hdr_max(a), hdr_max(b));
    assert_int_equal(hdr_overflow_count(a), hdr_overflow_count(b));
    struct buckets ba = buckets_of(a);
    struct buckets bb = buckets_of(b);
    assert_int_equal(ba.n, bb.n);
    for (size_t i = 0; i < ba.n; i++) {
        CHECK(ba.value[i] == bb.value[i] && ba.count[i] == bb.count[i], "bucket %zu: %lld x%lld vs %lld x%lld",
              "same bucket", i, (long long)ba.value[i], (long long)ba.count[i], (long long)bb.value[i],
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
void assert_consistent(const struct hdr_histogram *h)
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
