/* HDR histogram: latency recording with bounded relative error (docs/design.md §4).
 *
 * Written here because Debian packages no HdrHistogram_c; the API follows it
 * (hdr_init / hdr_record_value / hdr_value_at_percentile / hdr_add) so readers who
 * know that library know this one. Values are int64 in the caller's unit (bftkv
 * records nanoseconds). The layout is the classic one: buckets of doubling ranges,
 * each split into 2 * 10^sigfigs linear sub-buckets, so any value in
 * [lowest, highest] is recorded with relative error below 10^-sigfigs.
 *
 * Thread safety: none. Each thread or stage owns its histogram and the stats path
 * merges them with hdr_add(). Memory is allocated once in hdr_init(); recording
 * never allocates.
 */
#ifndef BFTKV_COMMON_HDR_H
#define BFTKV_COMMON_HDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hdr_histogram;

/* Create a histogram tracking [lowest, highest] (lowest >= 1, highest >= 2 *
 * lowest) with 1..5 significant figures. Returns 0 or BFTKV_E_INVAL /
 * BFTKV_E_NOMEM. bftkv uses hdr_init(1, 60e9, 3, &h): 1 ns .. 60 s at 0.1%.
 * Unlike HdrHistogram_c, `lowest` is the smallest value kept at full relative
 * precision, not the smallest discernible one: values in [0, lowest) are still
 * recorded, with an absolute resolution of at most lowest / 10^sigfigs. */
int hdr_init(int64_t lowest, int64_t highest, int sigfigs, struct hdr_histogram **out);
void hdr_destroy(struct hdr_histogram *h);

/* Forget every recorded value; keeps the configuration and the memory. */
void hdr_reset(struct hdr_histogram *h);

/* Record one value, or `count` copies of it. A value above `highest` or below 0 is
 * not recorded: the call returns false and the value is counted in
 * hdr_overflow_count(). */
bool hdr_record_value(struct hdr_histogram *h, int64_t value);
bool hdr_record_values(struct hdr_histogram *h, int64_t value, int64_t count);

/* Coordinated-omission correction (open-loop load): besides `value`, record the
 * values a load generator would have seen had it kept issuing every
 * `expected_interval`: value - k * expected_interval for k = 1.. while that stays
 * >= expected_interval. expected_interval <= 0 records only `value`. */
bool hdr_record_corrected_value(struct hdr_histogram *h, int64_t value, int64_t expected_interval);

/* The value at percentile p in [0, 100]: the smallest recorded value (to the
 * histogram's resolution, reported as the highest value equivalent to it) such
 * that at least p% of recorded values are <= it. 0 for an empty histogram. */
int64_t hdr_value_at_percentile(const struct hdr_histogram *h, double p);

int64_t hdr_min(const struct hdr_histogram *h);  /* 0 when empty */
int64_t hdr_max(const struct hdr_histogram *h);  /* 0 when empty */
double hdr_mean(const struct hdr_histogram *h);  /* 0 when empty */
double hdr_stddev(const struct hdr_histogram *h);
int64_t hdr_total_count(const struct hdr_histogram *h);
int64_t hdr_overflow_count(const struct hdr_histogram *h);

/* Add every value of src into dst. Values of src that dst cannot hold are counted
 * as overflow in dst; returns how many that was (0 normally). src's own overflow
 * count is added to dst's as well (it is not part of the return value). Each src
 * bucket is re-recorded at its highest equivalent value (clamped to src's max) and
 * src's exact min once, so with equal configurations the merge is exact; with
 * different ones the values keep src's resolution. dst != src. */
int64_t hdr_add(struct hdr_histogram *dst, const struct hdr_histogram *src);

/* The bounds of the bucket holding `value` (>= 0): two values v, w with
 * hdr_lowest_equivalent(v) == hdr_lowest_equivalent(w) are indistinguishable. */
int64_t hdr_lowest_equivalent(const struct hdr_histogram *h, int64_t value);
int64_t hdr_highest_equivalent(const struct hdr_histogram *h, int64_t value);

/* Compact serialisation for result files: a versioned binary header (lowest,
 * highest, sigfigs, totals) followed by the counts, run-length and varint encoded
 * (zero runs collapse). The format is described in hdr.c. hdr_encode writes into
 * buf (at most cap bytes) and sets *len; BFTKV_E_BUF_TOO_SMALL when cap is short
 * (with *len the size needed; buf may be NULL with cap 0 to ask for the size).
 * hdr_decode builds a new histogram from bytes (the caller owns it and frees it
 * with hdr_destroy) and rejects malformed input, never asserting on it:
 * BFTKV_E_CORRUPT for a wrong magic or any inconsistency, BFTKV_E_VERSION for a
 * format version it does not know.
 * hdr_encode_base64 / hdr_decode_base64 wrap the same bytes as a NUL-terminated
 * base64 string (standard alphabet, padded) for JSON and CSV. hdr_encode_base64
 * sets *len to the string length without the NUL, also when it returns
 * BFTKV_E_BUF_TOO_SMALL: the buffer needs *len + 1 bytes. Encoding allocates a
 * temporary buffer (BFTKV_E_NOMEM possible); recording never does. */
int hdr_encode(const struct hdr_histogram *h, uint8_t *buf, size_t cap, size_t *len);
int hdr_decode(const uint8_t *buf, size_t len, struct hdr_histogram **out);
int hdr_encode_base64(const struct hdr_histogram *h, char *buf, size_t cap, size_t *len);
int hdr_decode_base64(const char *text, struct hdr_histogram **out);

/* Iterate recorded values: calls fn(arg, value, count) for each non-empty bucket in
 * increasing order, value being the bucket's highest equivalent value. For CDF
 * plots. */
void hdr_foreach(const struct hdr_histogram *h, void (*fn)(void *arg, int64_t value, int64_t count),
                 void *arg);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_COMMON_HDR_H */
