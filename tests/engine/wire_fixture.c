/* Shared fixture of the wire codec tests: see wire_fixture.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/wire.h"
#include "wire_fixture.h"
#include "common/mix64.h"

const struct wire_limits lim = {.group = GROUP, .n = NREP, .clients_max = NCLIENTS};

uint8_t g_buf[BUF_CAP];
uint8_t g_ents[BUF_CAP];
uint8_t g_big[BUF_CAP];

void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

uint64_t rng_state;

uint64_t rng_next(void)
{
    return bftkv_splitmix64(&rng_state);
}

size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

size_t make_request(uint8_t *buf, size_t cap, uint16_t client, uint64_t ts, uint8_t op,
                           const char *key, const char *value, uint8_t rflags)
{
    struct wire_request rq = {
        .client = client,
        .lane = 3,
        .timestamp = ts,
        .op = op,
        .rflags = rflags,
        .klen = (uint16_t)strlen(key),
        .vlen = value != NULL ? (uint32_t)strlen(value) : 0u,
        .key = (const uint8_t *)key,
        .value = (const uint8_t *)value,
    };
    size_t auth_off = 0;
    size_t n = wire_encode_request(buf, cap, GROUP, NREP, 11, &rq, &auth_off);
    assert_true(n > 0);
    assert_int_equal(auth_off, n - NREP * BFTKV_MAC_SIZE);
    /* A recognisable authenticator, so tests can see it is carried along. */
    for (size_t i = auth_off; i < n; i++) {
        buf[i] = (uint8_t)(0xA0u + (i & 0xF));
    }
    return n;
}

/* A PRE-PREPARE with two inline requests and one digest entry. */
size_t make_preprepare(uint8_t *buf, size_t cap)
{
    uint8_t req[512];
    size_t off = 0;
    size_t rl = make_request(req, sizeof req, 2, 100, WIRE_OP_PUT, "alpha", "one", 0);
    off += wire_entry_inline(g_ents + off, sizeof g_ents - off, req, (uint32_t)rl);
    uint8_t d[32];
    memset(d, 0x5A, sizeof d);
    off += wire_entry_digest(g_ents + off, sizeof g_ents - off, d, 9, 4, 777);
    rl = make_request(req, sizeof req, 3, 101, WIRE_OP_GET, "beta", NULL, WIRE_REQ_READONLY);
    off += wire_entry_inline(g_ents + off, sizeof g_ents - off, req, (uint32_t)rl);
    size_t n = wire_encode_preprepare(buf, cap, GROUP, 1, NREP, 5, 42, g_ents, (uint32_t)off, 3, NULL);
    assert_true(n > 0);
    return n;
}

size_t make_digest_msg(uint8_t *buf, size_t cap, uint8_t type)
{
    uint8_t d[32];
    memset(d, 0x33, sizeof d);
    size_t n = wire_encode_digest_msg(buf, cap, type, GROUP, 2, NREP, 5, 42, d, NULL);
    assert_true(n > 0);
    return n;
}

size_t make_reply(uint8_t *buf, size_t cap, const char *result)
{
    uint8_t rd[32];
    size_t rlen = result != NULL ? strlen(result) : 0;
    wire_result_digest(rd, -3, result, rlen);
    struct wire_reply rp = {
        .client = 5,
        .lane = 1,
        .status = -3,
        .rflags = 0,
        .result_len = (uint32_t)rlen,
        .result_digest = rd,
        .result = (const uint8_t *)result,
    };
    size_t n = wire_encode_reply(buf, cap, GROUP, 3, 5, 100, &rp, NULL);
    assert_true(n > 0);
    return n;
}

/* Decode into a heap block of exactly len bytes (so ASan sees any over-read). */
int decode_exact(const uint8_t *bytes, size_t len, struct wire_msg *m, size_t *consumed,
                        struct wire_drop_counters *drops)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, len);
    int rc = wire_decode(copy, len, &lim, m, consumed, drops);
    free(copy);
    return rc;
}

uint64_t drops_total(const struct wire_drop_counters *d)
{
    uint64_t t = 0;
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        t += d->count[i];
    }
    return t;
}

/* Decode must fail with exactly one count, for reason. Returns consumed. */
size_t expect_drop(const uint8_t *bytes, size_t len, enum wire_drop reason)
{
    struct wire_drop_counters drops = {0};
    struct wire_msg m;
    size_t consumed = 99999;
    int rc = wire_decode(bytes, len, &lim, &m, &consumed, &drops);
    if (rc != BFTKV_E_CORRUPT || drops.count[reason] != 1 || drops_total(&drops) != 1) {
        for (int i = 0; i < WIRE_DROP_COUNT; i++) {
            if (drops.count[i] != 0) {
                fprintf(stderr, "  dropped as %s, wanted %s\n", wire_drop_name((enum wire_drop)i),
                        wire_drop_name(reason));
            }
        }
    }
    assert_int_equal(rc, BFTKV_E_CORRUPT);
    assert_int_equal(drops.count[reason], 1);
    assert_int_equal(drops_total(&drops), 1);
    assert_true(consumed <= len);
    return consumed;
}

void expect_ok(const uint8_t *bytes, size_t len, struct wire_msg *m)
{
    struct wire_drop_counters drops = {0};
    size_t consumed = 0;
    assert_int_equal(wire_decode(bytes, len, &lim, m, &consumed, &drops), 0);
    assert_int_equal(consumed, len);
    assert_int_equal(drops_total(&drops), 0);
}

/* Patch a header field through the header codec (keeps magic and version). */
void header_patch(uint8_t *buf, void (*patch)(struct wire_header *h, uint32_t arg), uint32_t arg)
{
    struct wire_header h;
    wire_header_read(buf, &h);
    patch(&h, arg);
    wire_header_write(buf, &h);
}

void set_type(struct wire_header *h, uint32_t v) { h->type = (uint8_t)v; }
void set_group(struct wire_header *h, uint32_t v) { h->group = (uint16_t)v; }
void set_sender(struct wire_header *h, uint32_t v) { h->sender = (uint16_t)v; }
void set_auth_len(struct wire_header *h, uint32_t v) { h->auth_len = (uint16_t)v; }
void set_body_len(struct wire_header *h, uint32_t v) { h->body_len = v; }
void set_flags(struct wire_header *h, uint32_t v) { h->flags = (uint16_t)v; }

/* A REQUEST written field by field, without the encoder's assertions. */
size_t raw_request(uint8_t *buf, uint8_t op, uint8_t rflags, uint16_t klen, uint32_t vlen,
                          uint32_t body_len)
{
    struct wire_header h = {
        .type = WIRE_REQUEST,
        .group = GROUP,
        .sender = 1,
        .view = 0,
        .seq = 1,
        .body_len = body_len,
        .auth_len = (uint16_t)(NREP * BFTKV_MAC_SIZE),
        .flags = 0,
    };
    wire_header_write(buf, &h);
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    memset(b, 'k', body_len);
    put16(b, 0);
    b[2] = op;
    b[3] = rflags;
    put16(b + 4, klen);
    put32(b + 6, vlen);
    size_t total = WIRE_HEADER_SIZE + body_len + NREP * BFTKV_MAC_SIZE;
    memset(buf + WIRE_HEADER_SIZE + body_len, 0, NREP * BFTKV_MAC_SIZE);
    return total;
}

/* Rewrite D of a PRE-PREPARE in buf after its entries were edited. */
void pp_fix_digest(uint8_t *buf)
{
    struct wire_header h;
    wire_header_read(buf, &h);
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    wire_digest(b, b + WIRE_PP_FIXED, h.body_len - WIRE_PP_FIXED);
}

/* Build a PRE-PREPARE whose entries region is given raw (count as stated). */
size_t pp_from_entries(uint8_t *buf, const uint8_t *ents, uint32_t elen, uint16_t count)
{
    size_t n = wire_encode_preprepare(buf, BUF_CAP, GROUP, 1, NREP, 5, 42, ents, elen, count, NULL);
    assert_true(n > 0);
    return n;
}

