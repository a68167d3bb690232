/* HDR histogram: the latency recorder behind every bftkv percentile (docs/design.md §4).
 *
 * Layout. A value v >= 0 is shifted right by unit_magnitude, the largest shift
 * that still resolves `lowest` to sigfigs (see hdr_layout). The shifted range is
 * split into buckets of doubling width; every bucket holds sub_bucket_count =
 * 2^ceil(log2(2 * 10^sigfigs)) linear sub-buckets, but only bucket 0 uses its lower
 * half: for bucket b >= 1 the lower half would duplicate bucket b - 1 at coarser
 * resolution, so counts[] stores (bucket_count + 1) * sub_bucket_half_count slots.
 * In bucket b a sub-bucket spans 2^(b + unit_magnitude) values and starts at or
 * above sub_bucket_half_count * 2^(b + unit_magnitude), so the relative width of
 * any slot is below 1 / sub_bucket_half_count <= 10^-sigfigs. The slot of a value
 * is found with one count-leading-zeros, two shifts and an add: recording is O(1)
 * and touches one counter.
 *
 * Exact min, max, total and an overflow counter (values the histogram refused) are
 * kept beside the counts. The serialised form (see the encode section below) is
 * ours, versioned, and decoded defensively: it comes from files, never asserted on.
 */
#include "common/hdr.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"

enum {
    HDR_SIGFIGS_MIN = 1,
    HDR_SIGFIGS_MAX = 5,
    /* unit_magnitude + sub_bucket_half_count_magnitude above this would push the
     * sub-bucket mask or a slot's lowest value past bit 62 of an int64. */
    HDR_MAGNITUDE_MAX = 61,
};

struct hdr_histogram {
    int64_t lowest;
    int64_t highest;
    int sigfigs;
    int unit_magnitude;                  /* log2 of the narrowest slot */
    int sub_bucket_half_count_magnitude; /* log2(sub_bucket_count) - 1 */
    int bucket_count;
    int64_t sub_bucket_count;
    int64_t sub_bucket_half_count;
    int64_t sub_bucket_mask; /* (sub_bucket_count - 1) << unit_magnitude */
    size_t counts_len;       /* (bucket_count + 1) * sub_bucket_half_count */
    int64_t total_count;
    int64_t min; /* INT64_MAX while empty */
    int64_t max; /* 0 while empty */
    int64_t overflow_count;
    int64_t counts[];
};

/* ---- index arithmetic ------------------------------------------------------ */

static int hdr_bucket_index(const struct hdr_histogram *h, int64_t value)
{
    /* value | mask keeps the leading-one position at or above the top of bucket 0,
     * so every value below sub_bucket_count << unit_magnitude lands in bucket 0. */
    int pow2ceiling = 64 - __builtin_clzll((unsigned long long)(value | h->sub_bucket_mask));
    return pow2ceiling - h->unit_magnitude - (h->sub_bucket_half_count_magnitude + 1);
}

static int64_t hdr_sub_bucket_index(const struct hdr_histogram *h, int64_t value, int bucket)
{
    return value >> (bucket + h->unit_magnitude);
}

static size_t hdr_index_of(const struct hdr_histogram *h, int64_t value)
{
    int bucket = hdr_bucket_index(h, value);
    int64_t sub = hdr_sub_bucket_index(h, value, bucket);
    /* Bucket b >= 1 only uses sub-buckets [half, count); they follow bucket b-1. */
    int64_t base = (int64_t)(bucket + 1) << h->sub_bucket_half_count_magnitude;
    return (size_t)(base + (sub - h->sub_bucket_half_count));
}

/* The lowest value of slot `index` and the log2 of its width. */
static int64_t hdr_value_at_index(const struct hdr_histogram *h, size_t index, int *shift)
{
    int bucket = (int)(index >> h->sub_bucket_half_count_magnitude) - 1;
    int64_t sub = (int64_t)(index & (size_t)(h->sub_bucket_half_count - 1)) + h->sub_bucket_half_count;
    if (bucket < 0) {
        sub -= h->sub_bucket_half_count;
        bucket = 0;
    }
    *shift = bucket + h->unit_magnitude;
    return sub << *shift;
}

static int64_t hdr_slot_lowest(const struct hdr_histogram *h, size_t index)
{
    int shift;
    return hdr_value_at_index(h, index, &shift);
}

static int64_t hdr_slot_highest(const struct hdr_histogram *h, size_t index)
{
    int shift;
    int64_t lo = hdr_value_at_index(h, index, &shift);
    return lo + (((int64_t)1 << shift) - 1); /* never overflows: lo + width <= 2^63 */
}

static int64_t hdr_slot_median(const struct hdr_histogram *h, size_t index)
{
    int shift;
    int64_t lo = hdr_value_at_index(h, index, &shift);
    return lo + (((int64_t)1 << shift) >> 1);
}

/* ---- life cycle ------------------------------------------------------------ */

/* Fills the configuration fields; returns the counts length, 0 when invalid. */
static size_t hdr_layout(struct hdr_histogram *h, int64_t lowest, int64_t highest, int sigfigs)
{
    if (lowest < 1 || sigfigs < HDR_SIGFIGS_MIN || sigfigs > HDR_SIGFIGS_MAX) {
        return 0;
    }
    if (highest / 2 < lowest) { /* highest >= 2 * lowest without overflowing */
        return 0;
    }
    int64_t single_unit_max = 2;
    for (int i = 0; i < sigfigs; i++) {
        single_unit_max *= 10;
    }
    int count_magnitude = 0;
    while (((int64_t)1 << count_magnitude) < single_unit_max) {
        count_magnitude++;
    }
    int half_magnitude = count_magnitude - 1;
    /* The header promises sigfigs for every value >= lowest. A slot of width 2^u in
     * bucket 0 holds values as small as lowest, so 2^u <= lowest / half_count:
     * u = floor(log2(lowest)) - half_magnitude. (HdrHistogram_c instead takes
     * u = floor(log2(lowest)), "lowest discernible value", which loses precision
     * between lowest and lowest * half_count. For lowest = 1 both give u = 0.) */
    int unit_magnitude = 63 - __builtin_clzll((unsigned long long)lowest) - half_magnitude;
    unit_magnitude = unit_magnitude < 0 ? 0 : unit_magnitude;
    /* lowest <= highest / 2 < 2^62 bounds unit + half by floor(log2(lowest)) <= 61
     * (or by half <= 17 when unit is 0). */
    BFTKV_ASSERT(unit_magnitude + half_magnitude <= HDR_MAGNITUDE_MAX);
    h->lowest = lowest;
    h->highest = highest;
    h->sigfigs = sigfigs;
    h->unit_magnitude = unit_magnitude;
    h->sub_bucket_half_count_magnitude = half_magnitude;
    h->sub_bucket_count = (int64_t)1 << count_magnitude;
    h->sub_bucket_half_count = h->sub_bucket_count / 2;
    h->sub_bucket_mask = (h->sub_bucket_count - 1) << unit_magnitude;

    /* Buckets until the first value that cannot be tracked exceeds highest. */
    int64_t untrackable = h->sub_bucket_count << unit_magnitude;
    int buckets = 1;
    while (untrackable <= highest) {
        if (untrackable > INT64_MAX / 2) {
            buckets++;
            break;
        }
        untrackable <<= 1;
        buckets++;
    }
    h->bucket_count = buckets;
    h->counts_len = (size_t)(buckets + 1) * (size_t)h->sub_bucket_half_count;
    return h->counts_len;
}

int hdr_init(int64_t lowest, int64_t highest, int sigfigs, struct hdr_histogram **out)
{
    BFTKV_ASSERT(out != NULL);
    *out = NULL;
    struct hdr_histogram cfg;
    memset(&cfg, 0, sizeof cfg);
    size_t len = hdr_layout(&cfg, lowest, highest, sigfigs);
    if (len == 0) {
        return BFTKV_E_INVAL;
    }
    /* The highest tracked value must have a slot. */
    BFTKV_ASSERT(hdr_index_of(&cfg, highest) < len);
    struct hdr_histogram *h = calloc(1, sizeof *h + len * sizeof h->counts[0]);
    if (h == NULL) {
        return BFTKV_E_NOMEM;
    }
    memcpy(h, &cfg, sizeof cfg);
    h->min = INT64_MAX;
    *out = h;
    return 0;
}

void hdr_destroy(struct hdr_histogram *h)
{
    free(h);
}

void hdr_reset(struct hdr_histogram *h)
{
    BFTKV_ASSERT(h != NULL);
    memset(h->counts, 0, h->counts_len * sizeof h->counts[0]);
    h->total_count = 0;
    h->min = INT64_MAX;
    h->max = 0;
    h->overflow_count = 0;
}

/* ---- recording ------------------------------------------------------------- */

static void hdr_overflow_add(struct hdr_histogram *h, int64_t count)
{
    h->overflow_count = (INT64_MAX - h->overflow_count < count) ? INT64_MAX : h->overflow_count + count;
}

/* Adds `count` values, all in slot `index`, the smallest vmin and the largest vmax. */
static bool hdr_record_slot(struct hdr_histogram *h, size_t index, int64_t count, int64_t vmin,
                            int64_t vmax)
{
    int64_t slot;
    int64_t total;
    if (BFTKV_UNLIKELY(__builtin_add_overflow(h->counts[index], count, &slot) ||
                       __builtin_add_overflow(h->total_count, count, &total))) {
        hdr_overflow_add(h, count);
        return false;
    }
    h->counts[index] = slot;
    h->total_count = total;
    if (vmin < h->min) {
        h->min = vmin;
    }
    if (vmax > h->max) {
        h->max = vmax;
    }
    return true;
}

bool hdr_record_values(struct hdr_histogram *h, int64_t value, int64_t count)
{
    BFTKV_ASSERT(count >= 0);
    if (BFTKV_UNLIKELY(value < 0 || value > h->highest)) {
        hdr_overflow_add(h, count);
        return false;
    }
    if (count == 0) {
        return true;
    }
    size_t index = hdr_index_of(h, value);
    BFTKV_ASSERT(index < h->counts_len);
    return hdr_record_slot(h, index, count, value, value);
}

bool hdr_record_value(struct hdr_histogram *h, int64_t value)
{
    return hdr_record_values(h, value, 1);
}

bool hdr_record_corrected_value(struct hdr_histogram *h, int64_t value, int64_t expected_interval)
{
    if (!hdr_record_value(h, value)) {
        return false;
    }
    if (expected_interval <= 0) {
        return true;
    }
    /* The missing values form an arithmetic progression; all terms inside one slot
     * are recorded with one add, so the loop runs at most once per slot, not once
     * per term (value / interval can be 6e10). */
    bool ok = true;
    int64_t next = value - expected_interval;
    while (next >= expected_interval) {
        size_t index = hdr_index_of(h, next);
        int64_t floor_value = hdr_slot_lowest(h, index);
        if (floor_value < expected_interval) {
            floor_value = expected_interval;
        }
        int64_t n = (next - floor_value) / expected_interval + 1;
        int64_t smallest = next - (n - 1) * expected_interval;
        BFTKV_ASSERT(n >= 1);
        BFTKV_ASSERT(smallest >= floor_value);
        ok = hdr_record_slot(h, index, n, smallest, next) && ok;
        next = smallest - expected_interval;
    }
    return ok;
}

/* ---- queries --------------------------------------------------------------- */

int64_t hdr_min(const struct hdr_histogram *h)
{
    return h->total_count == 0 ? 0 : h->min;
}

int64_t hdr_max(const struct hdr_histogram *h)
{
    return h->total_count == 0 ? 0 : h->max;
}

int64_t hdr_total_count(const struct hdr_histogram *h)
{
    return h->total_count;
}

int64_t hdr_overflow_count(const struct hdr_histogram *h)
{
    return h->overflow_count;
}

int64_t hdr_lowest_equivalent(const struct hdr_histogram *h, int64_t value)
{
    BFTKV_ASSERT(value >= 0);
    int bucket = hdr_bucket_index(h, value);
    return hdr_sub_bucket_index(h, value, bucket) << (bucket + h->unit_magnitude);
}

int64_t hdr_highest_equivalent(const struct hdr_histogram *h, int64_t value)
{
    BFTKV_ASSERT(value >= 0);
    int bucket = hdr_bucket_index(h, value);
    int shift = bucket + h->unit_magnitude;
    int64_t lo = hdr_sub_bucket_index(h, value, bucket) << shift;
    return lo + (((int64_t)1 << shift) - 1);
}

/* The rank (1-based) of the value at percentile p: ceil(p / 100 * total). The
 * product is formed before the division so that decimal percentiles of round
 * totals (99.9 of 1e6) come out exact, and a relative slack of 2^-40 keeps a
 * product that lands a rounding error above an integer from skipping a rank. */
static int64_t hdr_rank_at_percentile(double p, int64_t total)
{
    if (!(p > 0.0)) { /* also NaN */
        p = 0.0;
    }
    if (p > 100.0) {
        p = 100.0;
    }
    double exact = p * (double)total / 100.0;
    double rank = ceil(exact - exact * 0x1p-40);
    if (rank < 1.0) {
        return 1;
    }
    if (rank >= (double)total) {
        return total;
    }
    return (int64_t)rank;
}

int64_t hdr_value_at_percentile(const struct hdr_histogram *h, double p)
{
    if (h->total_count == 0) {
        return 0;
    }
    int64_t rank = hdr_rank_at_percentile(p, h->total_count);
    int64_t seen = 0;
    for (size_t i = 0; i < h->counts_len; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            int64_t v = hdr_slot_highest(h, i);
            return v < h->max ? v : h->max;
        }
    }
    BFTKV_ASSERT(!"counts sum below total_count");
    return h->max;
}

double hdr_mean(const struct hdr_histogram *h)
{
    if (h->total_count == 0) {
        return 0.0;
    }
    double sum = 0.0;
    for (size_t i = 0; i < h->counts_len; i++) {
        if (h->counts[i] != 0) {
            sum += (double)h->counts[i] * (double)hdr_slot_median(h, i);
        }
    }
    return sum / (double)h->total_count;
}

double hdr_stddev(const struct hdr_histogram *h)
{
    if (h->total_count == 0) {
        return 0.0;
    }
    double mean = hdr_mean(h);
    double sum = 0.0;
    for (size_t i = 0; i < h->counts_len; i++) {
        if (h->counts[i] != 0) {
            double d = (double)hdr_slot_median(h, i) - mean;
            sum += (double)h->counts[i] * d * d;
        }
    }
    return sqrt(sum / (double)h->total_count);
}

void hdr_foreach(const struct hdr_histogram *h, void (*fn)(void *arg, int64_t value, int64_t count),
                 void *arg)
{
    BFTKV_ASSERT(fn != NULL);
    for (size_t i = 0; i < h->counts_len; i++) {
        if (h->counts[i] != 0) {
            fn(arg, hdr_slot_highest(h, i), h->counts[i]);
        }
    }
}

int64_t hdr_add(struct hdr_histogram *dst, const struct hdr_histogram *src)
{
    BFTKV_ASSERT(dst != NULL);
    BFTKV_ASSERT(src != NULL);
    BFTKV_ASSERT(dst != src);
    int64_t before = dst->overflow_count;
    bool first = true;
    /* Each slot is re-recorded at its highest equivalent value clamped to src's
     * [min, max]: the last slot then carries src's exact max. The first slot also
     * records src's exact min once, so both extremes survive the merge exactly. */
    for (size_t i = 0; i < src->counts_len; i++) {
        int64_t count = src->counts[i];
        if (count == 0) {
            continue;
        }
        if (first) {
            first = false;
            hdr_record_value(dst, src->min);
            count--;
        }
        int64_t v = hdr_slot_highest(src, i);
        v = v < src->min ? src->min : v;
        v = v > src->max ? src->max : v;
        hdr_record_values(dst, v, count);
    }
    int64_t refused = dst->overflow_count - before;
    hdr_overflow_add(dst, src->overflow_count);
    return refused;
}

/* ---- serialisation -----------------------------------------------------------
 *
 * Format version 1, all integers LEB128 varints (7 bits a byte, low first):
 *
 *   "bkHd"          4 bytes magic       (other bytes: BFTKV_E_CORRUPT)
 *   0x01            version byte        (other values: BFTKV_E_VERSION)
 *   lowest, highest, sigfigs            (must form a valid hdr_init configuration)
 *   total, min, max, overflow           (empty: min = max = 0)
 *   counts...       zigzag varints up to the end of the buffer: n > 0 is one slot
 *                   holding n, n < 0 is a run of -n empty slots. Trailing empty
 *                   slots are omitted; a literal 0 is never written.
 *
 * The decoder checks every varint for length and range, the counts for the slot
 * bound and for summing (without overflow) to total, and min / max for lying in
 * the first / last non-empty slot, so a decoded histogram satisfies every
 * invariant a recorded one does.
 */

static const uint8_t hdr_magic[4] = {'b', 'k', 'H', 'd'};
enum { HDR_VERSION = 1, HDR_VARINT_MAX = 10 };

struct hdr_writer {
    uint8_t *buf;
    size_t cap;
    size_t pos; /* keeps counting past cap so the caller learns the size needed */
};

static void hdr_put_byte(struct hdr_writer *w, uint8_t b)
{
    if (w->pos < w->cap) {
        w->buf[w->pos] = b;
    }
    w->pos++;
}

static void hdr_put_varint(struct hdr_writer *w, uint64_t v)
{
    while (v >= 0x80) {
        hdr_put_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    hdr_put_byte(w, (uint8_t)v);
}

static void hdr_put_zigzag(struct hdr_writer *w, int64_t v)
{
    hdr_put_varint(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

struct hdr_reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
};

/* False on truncation or on a value that does not fit 64 bits. */
static bool hdr_get_varint(struct hdr_reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < HDR_VARINT_MAX; i++) {
        if (r->pos >= r->len) {
            return false;
        }
        uint8_t b = r->buf[r->pos++];
        if (i == HDR_VARINT_MAX - 1 && b > 1) {
            return false; /* bits beyond 64 */
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool hdr_get_int64(struct hdr_reader *r, int64_t *out)
{
    uint64_t v;
    if (!hdr_get_varint(r, &v) || v > (uint64_t)INT64_MAX) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

int hdr_encode(const struct hdr_histogram *h, uint8_t *buf, size_t cap, size_t *len)
{
    BFTKV_ASSERT(h != NULL);
    BFTKV_ASSERT(len != NULL);
    BFTKV_ASSERT((buf != NULL || cap == 0));
    struct hdr_writer w = {.buf = buf, .cap = cap, .pos = 0};
    for (size_t i = 0; i < sizeof hdr_magic; i++) {
        hdr_put_byte(&w, hdr_magic[i]);
    }
    hdr_put_byte(&w, HDR_VERSION);
    hdr_put_varint(&w, (uint64_t)h->lowest);
    hdr_put_varint(&w, (uint64_t)h->highest);
    hdr_put_varint(&w, (uint64_t)h->sigfigs);
    hdr_put_varint(&w, (uint64_t)h->total_count);
    hdr_put_varint(&w, (uint64_t)hdr_min(h));
    hdr_put_varint(&w, (uint64_t)hdr_max(h));
    hdr_put_varint(&w, (uint64_t)h->overflow_count);
    int64_t zeros = 0;
    for (size_t i = 0; i < h->counts_len; i++) {
        BFTKV_ASSERT(h->counts[i] >= 0);
        if (h->counts[i] == 0) {
            zeros++;
            continue;
        }
        if (zeros > 0) {
            hdr_put_zigzag(&w, -zeros);
            zeros = 0;
        }
        hdr_put_zigzag(&w, h->counts[i]);
    }
    *len = w.pos;
    return w.pos > cap ? BFTKV_E_BUF_TOO_SMALL : 0;
}

/* Reads the counts section into a fresh histogram and checks its invariants. */
static int hdr_decode_counts(struct hdr_reader *r, struct hdr_histogram *h, int64_t total)
{
    size_t index = 0;
    int64_t sum = 0;
    size_t first = SIZE_MAX;
    size_t last = 0;
    while (r->pos < r->len) {
        uint64_t z;
        if (!hdr_get_varint(r, &z)) {
            return BFTKV_E_CORRUPT;
        }
        /* un-zigzag: even -> z / 2, odd -> -(z + 1) / 2, both without overflow */
        if ((z & 1) != 0) {
            uint64_t run = (z >> 1) + 1;
            if (run > h->counts_len - index) {
                return BFTKV_E_CORRUPT;
            }
            index += (size_t)run;
            continue;
        }
        int64_t count = (int64_t)(z >> 1);
        if (count == 0 || index >= h->counts_len || __builtin_add_overflow(sum, count, &sum)) {
            return BFTKV_E_CORRUPT;
        }
        h->counts[index] = count;
        first = first == SIZE_MAX ? index : first;
        last = index;
        index++;
    }
    if (sum != total) {
        return BFTKV_E_CORRUPT;
    }
    h->total_count = total;
    if (total == 0) {
        return (h->min == 0 && h->max == 0) ? 0 : BFTKV_E_CORRUPT;
    }
    if (h->min > h->max || h->max > h->highest || hdr_index_of(h, h->min) != first ||
        hdr_index_of(h, h->max) != last) {
        return BFTKV_E_CORRUPT;
    }
    return 0;
}

int hdr_decode(const uint8_t *buf, size_t len, struct hdr_histogram **out)
{
    BFTKV_ASSERT(out != NULL);
    BFTKV_ASSERT((buf != NULL || len == 0));
    *out = NULL;
    struct hdr_reader r = {.buf = buf, .len = len, .pos = 0};
    if (len < sizeof hdr_magic + 1 || memcmp(buf, hdr_magic, sizeof hdr_magic) != 0) {
        return BFTKV_E_CORRUPT;
    }
    r.pos = sizeof hdr_magic;
    if (buf[r.pos++] != HDR_VERSION) {
        return BFTKV_E_VERSION;
    }
    int64_t lowest, highest, sigfigs, total, min, max, overflow;
    if (!hdr_get_int64(&r, &lowest) || !hdr_get_int64(&r, &highest) || !hdr_get_int64(&r, &sigfigs) ||
        !hdr_get_int64(&r, &total) || !hdr_get_int64(&r, &min) || !hdr_get_int64(&r, &max) ||
        !hdr_get_int64(&r, &overflow)) {
        return BFTKV_E_CORRUPT;
    }
    if (sigfigs < HDR_SIGFIGS_MIN || sigfigs > HDR_SIGFIGS_MAX) {
        return BFTKV_E_CORRUPT;
    }
    struct hdr_histogram *h;
    int rc = hdr_init(lowest, highest, (int)sigfigs, &h);
    if (rc == BFTKV_E_INVAL) {
        return BFTKV_E_CORRUPT;
    }
    if (rc != 0) {
        return rc;
    }
    h->min = min;
    h->max = max;
    h->overflow_count = overflow;
    rc = hdr_decode_counts(&r, h, total);
    if (rc != 0) {
        hdr_destroy(h);
        return rc;
    }
    if (total == 0) {
        h->min = INT64_MAX; /* the empty-state sentinel */
    }
    *out = h;
    return 0;
}

int hdr_encode_base64(const struct hdr_histogram *h, char *buf, size_t cap, size_t *len)
{
    BFTKV_ASSERT(h != NULL);
    BFTKV_ASSERT(len != NULL);
    BFTKV_ASSERT((buf != NULL || cap == 0));
    size_t bin_len;
    int rc = hdr_encode(h, NULL, 0, &bin_len);
    BFTKV_ASSERT(rc == BFTKV_E_BUF_TOO_SMALL);
    size_t text_cap = sodium_base64_ENCODED_LEN(bin_len, sodium_base64_VARIANT_ORIGINAL);
    *len = text_cap - 1; /* without the NUL */
    if (cap < text_cap) {
        return BFTKV_E_BUF_TOO_SMALL;
    }
    uint8_t *bin = malloc(bin_len);
    if (bin == NULL) {
        return BFTKV_E_NOMEM;
    }
    size_t written;
    rc = hdr_encode(h, bin, bin_len, &written);
    BFTKV_ASSERT(rc == 0);
    BFTKV_ASSERT(written == bin_len);
    sodium_bin2base64(buf, cap, bin, bin_len, sodium_base64_VARIANT_ORIGINAL);
    free(bin);
    BFTKV_ASSERT(strlen(buf) == *len);
    return 0;
}

int hdr_decode_base64(const char *text, struct hdr_histogram **out)
{
    BFTKV_ASSERT(text != NULL);
    BFTKV_ASSERT(out != NULL);
    *out = NULL;
    size_t text_len = strlen(text);
    size_t bin_cap = text_len / 4 * 3 + 3;
    uint8_t *bin = malloc(bin_cap);
    if (bin == NULL) {
        return BFTKV_E_NOMEM;
    }
    size_t bin_len;
    int rc = BFTKV_E_CORRUPT;
    /* No ignore set and no end pointer: any non-base64 character or bad padding
     * makes libsodium fail instead of stopping early. */
    if (sodium_base642bin(bin, bin_cap, text, text_len, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0) {
        rc = hdr_decode(bin, bin_len, out);
    }
    free(bin);
    return rc;
}
