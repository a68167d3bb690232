/* Shared fixture of the HDR histogram tests (test_hdr.c, test_hdr_codec.c): the
 * fixed-seed splitmix64 value generator, histogram constructors for bftkv's
 * configuration, the hdr_foreach bucket collector, and the equality and invariant
 * checks both the recording tests and the decode tests apply. The serialisation
 * tests in test_hdr_codec.c are declared here so test_hdr.c's main() runs every
 * test in one cmocka group.
 */
#ifndef BFTKV_TESTS_HDR_FIXTURE_H
#define BFTKV_TESTS_HDR_FIXTURE_H

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

/* Every (value, count) hdr_foreach reports. */
struct buckets {
    size_t n;
    size_t cap;
    int64_t *value;
    int64_t *count;
    bool increasing;
};

uint64_t splitmix64(uint64_t *state);
double uniform01(uint64_t *state);
int64_t log_uniform(uint64_t *state, int64_t lo, int64_t hi);
int cmp_int64(const void *a, const void *b);
struct hdr_histogram *new_hist(int64_t lowest, int64_t highest, int sigfigs);
struct hdr_histogram *new_ns_hist(void);
void buckets_collect(void *arg, int64_t value, int64_t count);
struct buckets buckets_of(const struct hdr_histogram *h);
void buckets_free(struct buckets *b);
int64_t buckets_sum(const struct buckets *b);
void assert_same_hist(const struct hdr_histogram *a, const struct hdr_histogram *b);
void assert_consistent(const struct hdr_histogram *h);

/* Serialisation and decode tests (test_hdr_codec.c). */
void test_encode_round_trip(void **state);
void test_encoding_is_compact(void **state);
void test_decode_never_trusts_input(void **state);
void test_decode_malformed_inputs(void **state);

#endif
