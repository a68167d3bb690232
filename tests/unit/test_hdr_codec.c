/* Unit tests of the HDR histogram's serialisation (hdr_encode / hdr_decode in
 * common/hdr.c).
 *
 * Round trips must reproduce the histogram exactly and the encoding must stay
 * compact. The decoder is fed every prefix and many single-byte corruptions of real
 * encodings plus hand-built malformed inputs (from an encoder written here,
 * independent of hdr.c); it must reject them or produce a histogram whose
 * invariants hold (run under ASan+UBSan too, over fewer samples and random inputs:
 * tests/test_scale.h). The tests are run by test_hdr.c's
 * main(); shared helpers are in hdr_fixture.c.
 */
#include "hdr_fixture.h"
#include "tests/test_scale.h"

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

void test_encode_round_trip(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    assert_round_trip(h); /* empty */

    uint64_t seed = 0x5eed0006;
    const uint64_t samples = test_iters(100000, 5000);
    for (uint64_t i = 0; i < samples; i++) {
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
void test_encoding_is_compact(void **state)
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

void test_decode_never_trusts_input(void **state)
{
    (void)state;
    struct hdr_histogram *h = new_ns_hist();
    uint64_t seed = 0x5eed0008;
    const uint64_t samples = test_iters(3000, 300); /* the encoding's length: prefixes and flips */
    for (uint64_t i = 0; i < samples; i++) {
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
    const uint64_t tails = test_iters(20000, 2000);
    for (uint64_t i = 0; i < tails; i++) {
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

void test_decode_malformed_inputs(void **state)
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
