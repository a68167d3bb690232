/* Unit tests of the wire codec (engine/wire.c): every message type round-trips
 * through encode and decode; every decoder drop reason is reached by one crafted
 * input and counted exactly once; datagrams of several messages decode message by
 * message; and ~100k randomly corrupted datagrams (fixed-seed PRNG, so any failure
 * replays) never crash the decoder nor make it read outside the datagram (run this
 * under ASan: every datagram sits in a heap block of exactly its size).
 *
 * The drop-reason tests live in test_wire_drop.c and the shared builders in
 * wire_fixture.c; this file has main(). BAD_AUTH and UNKNOWN_CLIENT are counted by
 * the authentication step, not by the decoder; test_auth.c covers the checks that
 * produce them.
 */
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

/* ---- Round trips ------------------------------------------------------------------ */

static void test_request_roundtrip(void **state)
{
    (void)state;
    struct wire_msg m;
    size_t n = make_request(g_buf, BUF_CAP, 9, 1234, WIRE_OP_PUT, "key-1", "value-1", WIRE_REQ_FULL_ALL);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.h.type, WIRE_REQUEST);
    assert_int_equal(m.h.group, GROUP);
    assert_int_equal(m.h.sender, 9);
    assert_int_equal(m.h.view, 11);
    assert_int_equal(m.h.seq, 1234);
    assert_int_equal(m.h.auth_len, NREP * 16);
    assert_int_equal(m.h.flags, 0);
    assert_ptr_equal(m.raw, g_buf);
    assert_int_equal(m.raw_len, n);
    assert_ptr_equal(m.auth, g_buf + n - NREP * 16);
    assert_int_equal(m.u.request.client, 9);
    assert_int_equal(m.u.request.lane, 3);
    assert_int_equal(m.u.request.timestamp, 1234);
    assert_int_equal(m.u.request.op, WIRE_OP_PUT);
    assert_int_equal(m.u.request.rflags, WIRE_REQ_FULL_ALL);
    assert_int_equal(m.u.request.klen, 5);
    assert_int_equal(m.u.request.vlen, 7);
    assert_memory_equal(m.u.request.key, "key-1", 5);
    assert_memory_equal(m.u.request.value, "value-1", 7);

    n = make_request(g_buf, BUF_CAP, 0, 1, WIRE_OP_GET, "k", NULL, WIRE_REQ_READONLY);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.request.op, WIRE_OP_GET);
    assert_int_equal(m.u.request.vlen, 0);
    assert_null(m.u.request.value);
    assert_int_equal(m.u.request.rflags, WIRE_REQ_READONLY);

    n = make_request(g_buf, BUF_CAP, NCLIENTS - 1, 2, WIRE_OP_DEL, "gone", NULL, 0);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.request.op, WIRE_OP_DEL);
    assert_int_equal(m.u.request.client, NCLIENTS - 1);

    /* PUT of an empty value is allowed. */
    n = make_request(g_buf, BUF_CAP, 1, 3, WIRE_OP_PUT, "empty", "", 0);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.request.vlen, 0);
}

static void test_request_max_sizes(void **state)
{
    (void)state;
    static uint8_t key[BFTKV_KEY_MAX];
    static uint8_t value[BFTKV_VALUE_MAX];
    for (size_t i = 0; i < sizeof key; i++) {
        key[i] = (uint8_t)i;
    }
    for (size_t i = 0; i < sizeof value; i++) {
        value[i] = (uint8_t)(i * 7);
    }
    struct wire_request rq = {
        .client = 1, .lane = 0, .timestamp = 5, .op = WIRE_OP_PUT, .rflags = 0,
        .klen = BFTKV_KEY_MAX, .vlen = BFTKV_VALUE_MAX, .key = key, .value = value,
    };
    size_t n = wire_encode_request(g_buf, BUF_CAP, GROUP, BFTKV_REPLICAS_MAX, 0, &rq, NULL);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_REQUEST_FIXED + BFTKV_KEY_MAX + BFTKV_VALUE_MAX
                            + BFTKV_AUTHENTICATOR_MAX);
    assert_true(n <= BFTKV_DATAGRAM_MAX);
    struct wire_limits big = {.group = GROUP, .n = BFTKV_REPLICAS_MAX, .clients_max = NCLIENTS};
    struct wire_msg m;
    size_t consumed = 0;
    assert_int_equal(wire_decode(g_buf, n, &big, &m, &consumed, NULL), 0);
    assert_int_equal(consumed, n);
    assert_int_equal(m.u.request.klen, BFTKV_KEY_MAX);
    assert_int_equal(m.u.request.vlen, BFTKV_VALUE_MAX);
    assert_memory_equal(m.u.request.key, key, sizeof key);
    assert_memory_equal(m.u.request.value, value, sizeof value);

    /* Encoders refuse a buffer one byte short. */
    assert_int_equal(wire_encode_request(g_buf, n - 1, GROUP, BFTKV_REPLICAS_MAX, 0, &rq, NULL), 0);

    /* A maximal REPLY. */
    uint8_t rd[32];
    wire_result_digest(rd, 0, value, sizeof value);
    struct wire_reply rp = {.client = 2, .lane = 0, .status = 0, .rflags = WIRE_REPLY_READONLY,
                            .result_len = BFTKV_VALUE_MAX, .result_digest = rd, .result = value};
    n = wire_encode_reply(g_buf, BUF_CAP, GROUP, 1, 0, 5, &rp, NULL);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + BFTKV_VALUE_MAX + BFTKV_MAC_SIZE);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.reply.rflags, WIRE_REPLY_FULL | WIRE_REPLY_READONLY);
    assert_memory_equal(m.u.reply.result, value, sizeof value);
    assert_int_equal(wire_encode_reply(g_buf, n - 1, GROUP, 1, 0, 5, &rp, NULL), 0);
}

/* A deployment's REPLY carries its node's map epoch after the fixed part
 * (docs/design.md §6.3); a single group's has none and is the bytes it was. */
static void test_reply_epoch(void **state)
{
    (void)state;
    uint8_t rd[32];
    wire_result_digest(rd, 0, "value", 5);
    struct wire_reply rp = {.client = 2, .lane = 1, .status = 0, .rflags = WIRE_REPLY_EPOCH, /* ignored: epoch 0 */
                            .result_len = 5, .result_digest = rd, .result = (const uint8_t *)"value"};
    struct wire_msg m;
    size_t plain = wire_encode_reply(g_buf, BUF_CAP, GROUP, 1, 3, 9, &rp, NULL);
    assert_int_equal(plain, WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + 5 + BFTKV_MAC_SIZE);
    expect_ok(g_buf, plain, &m);
    assert_int_equal(m.u.reply.rflags, WIRE_REPLY_FULL);
    assert_int_equal(m.u.reply.epoch, 0);

    rp.epoch = 0x0102030405060708ull;
    size_t n = wire_encode_reply(g_buf, BUF_CAP, GROUP, 1, 3, 9, &rp, NULL);
    assert_int_equal(n, plain + WIRE_REPLY_EPOCH_SIZE);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.reply.rflags, WIRE_REPLY_FULL | WIRE_REPLY_EPOCH);
    assert_int_equal(m.u.reply.epoch, 0x0102030405060708ull);
    assert_memory_equal(m.u.reply.result, "value", 5);
    assert_int_equal(g_buf[WIRE_HEADER_SIZE + WIRE_REPLY_FIXED], 0x08); /* little-endian, after the fixed part */
    assert_int_equal(wire_encode_reply(g_buf, n - 1, GROUP, 1, 3, 9, &rp, NULL), 0);

    /* Digest only: the epoch is the body's tail. */
    rp.result = NULL;
    n = wire_encode_reply(g_buf, BUF_CAP, GROUP, 1, 3, 9, &rp, NULL);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + WIRE_REPLY_EPOCH_SIZE + BFTKV_MAC_SIZE);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.reply.epoch, 0x0102030405060708ull);
    assert_null(m.u.reply.result);

    /* One encoding: the flag with an epoch of 0 is refused. */
    memset(g_buf + WIRE_HEADER_SIZE + WIRE_REPLY_FIXED, 0, WIRE_REPLY_EPOCH_SIZE);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
}

static void test_preprepare_roundtrip(void **state)
{
    (void)state;
    struct wire_msg m;
    size_t n = make_preprepare(g_buf, BUF_CAP);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.h.type, WIRE_PREPREPARE);
    assert_int_equal(m.h.sender, 1);
    assert_int_equal(m.h.view, 5);
    assert_int_equal(m.h.seq, 42);
    assert_int_equal(m.u.batch.count, 3);
    assert_int_equal(m.u.batch.named, 1); /* one DIGEST entry, two INLINE */
    struct wire_msg v;
    wire_preprepare_view(&v, g_buf, n);
    assert_int_equal(v.u.batch.named, 1);
    uint8_t d[32];
    wire_digest(d, m.u.batch.entries, m.u.batch.entries_len);
    assert_memory_equal(d, m.u.batch.digest, 32);

    uint32_t off = 0;
    struct wire_batch_entry e;
    struct wire_msg inner;
    size_t used;

    assert_int_equal(wire_batch_next(&m, &off, &e), 1);
    assert_int_equal(e.kind, WIRE_ENTRY_INLINE);
    assert_null(e.request_digest);
    assert_int_equal(e.client, 2);
    assert_int_equal(e.timestamp, 100);
    assert_int_equal(e.lane, 3);
    assert_int_equal(wire_decode(e.bytes, e.len, &lim, &inner, &used, NULL), 0);
    assert_int_equal(used, e.len);
    assert_memory_equal(inner.u.request.key, "alpha", 5);
    assert_memory_equal(inner.u.request.value, "one", 3);

    assert_int_equal(wire_batch_next(&m, &off, &e), 1);
    assert_int_equal(e.kind, WIRE_ENTRY_DIGEST);
    assert_int_equal(e.len, WIRE_PP_DIGEST_ENTRY);
    assert_int_equal(e.client, 9);
    assert_int_equal(e.lane, 4);
    assert_int_equal(e.timestamp, 777);
    for (int i = 0; i < 32; i++) {
        assert_int_equal(e.request_digest[i], 0x5A);
    }

    assert_int_equal(wire_batch_next(&m, &off, &e), 1);
    assert_int_equal(e.kind, WIRE_ENTRY_INLINE);
    assert_int_equal(wire_decode(e.bytes, e.len, &lim, &inner, &used, NULL), 0);
    assert_int_equal(inner.u.request.op, WIRE_OP_GET);
    assert_int_equal(inner.h.sender, 3);

    assert_int_equal(wire_batch_next(&m, &off, &e), 0);
    assert_int_equal(off, m.u.batch.entries_len);

    /* The encoder accepts entries built in place, right where they go. */
    size_t n2 = wire_encode_preprepare(g_big, BUF_CAP, GROUP, 1, NREP, 5, 42, g_ents,
                                       m.u.batch.entries_len, 3, NULL);
    memcpy(g_big + WIRE_HEADER_SIZE + WIRE_PP_FIXED, m.u.batch.entries, m.u.batch.entries_len);
    size_t n3 = wire_encode_preprepare(g_big, BUF_CAP, GROUP, 1, NREP, 5, 42,
                                       g_big + WIRE_HEADER_SIZE + WIRE_PP_FIXED, m.u.batch.entries_len, 3,
                                       NULL);
    assert_int_equal(n2, n);
    assert_int_equal(n3, n);
    assert_memory_equal(g_big, g_buf, n);
    assert_int_equal(wire_encode_preprepare(g_big, n - 1, GROUP, 1, NREP, 5, 42, g_ents,
                                            m.u.batch.entries_len, 3, NULL),
                     0);
}

/* REQUEST-FETCH (a FETCH with part REQUEST, engine/wire.h): round trip, and
 * each field a state FETCH would use must be zero (count 1), else BAD_FIELD;
 * seq 0 and a short body are dropped too. */
static void test_request_fetch_roundtrip(void **state)
{
    (void)state;
    uint8_t d[32];
    for (int i = 0; i < 32; i++)
        d[i] = (uint8_t)(0xc0 + i);
    size_t auth_off = 0;
    size_t n = wire_encode_request_fetch(g_buf, BUF_CAP, GROUP, 2, NREP, 9, 77, d, &auth_off);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_FETCH_BODY + NREP * 16);
    assert_int_equal(auth_off, WIRE_HEADER_SIZE + WIRE_FETCH_BODY);
    struct wire_msg m;
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.h.type, WIRE_FETCH);
    assert_int_equal(m.h.sender, 2);
    assert_int_equal(m.h.view, 9);
    assert_int_equal(m.h.seq, 77);
    assert_int_equal(m.u.fetch.pos.part, WIRE_PART_REQUEST);
    assert_int_equal(m.u.fetch.count, 1);
    assert_int_equal(m.u.fetch.pos.shard, 0);
    assert_int_equal(m.u.fetch.pos.cursor, 0);
    assert_memory_equal(m.u.fetch.digest, d, 32);
    assert_int_equal(wire_encode_request_fetch(g_buf, n - 1, GROUP, 2, NREP, 9, 77, d, NULL), 0);

    /* Body: digest[32] | part | count | pad u16 | shard u32 | cursor u64. */
    const size_t body = WIRE_HEADER_SIZE;
    const size_t offs[] = {body + 33, body + 34, body + 36, body + 40};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        n = wire_encode_request_fetch(g_buf, BUF_CAP, GROUP, 2, NREP, 9, 77, d, NULL);
        g_buf[offs[i]] = 2; /* count 2, a pad bit, shard 2, cursor 2 */
        expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    }
    n = wire_encode_request_fetch(g_buf, BUF_CAP, GROUP, 2, NREP, 9, 77, d, NULL);
    memset(g_buf + 16, 0, 8); /* header seq 0 */
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = wire_encode_request_fetch(g_buf, BUF_CAP, GROUP, 2, NREP, 9, 77, d, NULL);
    g_buf[32 + 32] = WIRE_PART_REQUEST + 1u; /* no such part */
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = wire_encode_request_fetch(g_buf, BUF_CAP, GROUP, 2, NREP, 9, 77, d, NULL);
    g_buf[24] = (uint8_t)(WIRE_FETCH_BODY - 1u); /* body_len */
    expect_drop(g_buf, n - 1u, WIRE_DROP_BAD_LENGTH);
}

static void test_null_batch(void **state)
{
    (void)state;
    size_t auth_off = 0;
    size_t n = wire_encode_preprepare(g_buf, BUF_CAP, GROUP, 0, NREP, 1, 7, NULL, 0, 0, &auth_off);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_PP_FIXED + NREP * 16);
    assert_int_equal(auth_off, WIRE_HEADER_SIZE + WIRE_PP_FIXED);
    struct wire_msg m;
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.batch.count, 0);
    assert_int_equal(m.u.batch.entries_len, 0);
    uint32_t off = 0;
    struct wire_batch_entry e;
    assert_int_equal(wire_batch_next(&m, &off, &e), 0);
}

static void test_digest_msgs_roundtrip(void **state)
{
    (void)state;
    const uint8_t types[] = {WIRE_PREPARE, WIRE_COMMIT, WIRE_CHECKPOINT};
    for (size_t t = 0; t < sizeof types; t++) {
        size_t auth_off = 0;
        uint8_t d[32];
        for (int i = 0; i < 32; i++) {
            d[i] = (uint8_t)(i + (int)t);
        }
        size_t n = wire_encode_digest_msg(g_buf, BUF_CAP, types[t], GROUP, 3, NREP, 9, 1000 + t, d, &auth_off);
        uint16_t alen = wire_auth_len(types[t], NREP);
        assert_int_equal(n, WIRE_HEADER_SIZE + 32 + alen);
        assert_int_equal(auth_off, WIRE_HEADER_SIZE + 32);
        struct wire_msg m;
        expect_ok(g_buf, n, &m);
        assert_int_equal(m.h.type, types[t]);
        assert_int_equal(m.h.sender, 3);
        assert_int_equal(m.h.view, 9);
        assert_int_equal(m.h.seq, 1000 + t);
        assert_int_equal(m.h.auth_len, alen);
        assert_memory_equal(m.u.batch.digest, d, 32);
        assert_int_equal(wire_encode_digest_msg(g_buf, n - 1, types[t], GROUP, 3, NREP, 9, 1, d, NULL), 0);
    }
}

static void test_reply_roundtrip(void **state)
{
    (void)state;
    struct wire_msg m;
    size_t auth_off = 0;
    size_t n = make_reply(g_buf, BUF_CAP, "the result");
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.h.type, WIRE_REPLY);
    assert_int_equal(m.h.sender, 3);
    assert_int_equal(m.h.seq, 100);
    assert_int_equal(m.h.auth_len, 16);
    assert_int_equal(m.u.reply.client, 5);
    assert_int_equal(m.u.reply.lane, 1);
    assert_int_equal(m.u.reply.status, -3);
    assert_int_equal(m.u.reply.rflags, WIRE_REPLY_FULL);
    assert_int_equal(m.u.reply.result_len, 10);
    assert_memory_equal(m.u.reply.result, "the result", 10);
    uint8_t rd[32];
    wire_result_digest(rd, -3, "the result", 10);
    assert_memory_equal(m.u.reply.result_digest, rd, 32);

    /* Digest-only: result_len still says how long the result is. */
    struct wire_reply rp = {.client = 4, .lane = 2, .status = 0, .rflags = WIRE_REPLY_FULL,
                            .result_len = 10, .result_digest = rd, .result = NULL};
    n = wire_encode_reply(g_buf, BUF_CAP, GROUP, 2, 1, 7, &rp, &auth_off);
    assert_int_equal(n, WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + 16);
    assert_int_equal(auth_off, WIRE_HEADER_SIZE + WIRE_REPLY_FIXED);
    expect_ok(g_buf, n, &m);
    assert_int_equal(m.u.reply.rflags, 0); /* FULL follows result, not rflags */
    assert_int_equal(m.u.reply.result_len, 10);
    assert_null(m.u.reply.result);
    assert_memory_equal(m.u.reply.result_digest, rd, 32);

    /* The result digest depends on the status. */
    uint8_t rd2[32];
    wire_result_digest(rd2, -2, "the result", 10);
    assert_memory_not_equal(rd, rd2, 32);
}

static void test_names_and_sizes(void **state)
{
    (void)state;
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        const char *s = wire_drop_name((enum wire_drop)i);
        assert_non_null(s);
        assert_string_not_equal(s, "UNKNOWN");
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(s, wire_drop_name((enum wire_drop)j));
        }
    }
    assert_string_equal(wire_drop_name(WIRE_DROP_BAD_DIGEST), "BAD_DIGEST");
    assert_string_equal(wire_drop_name(WIRE_DROP_COUNT), "UNKNOWN");
    assert_int_equal(wire_auth_len(WIRE_REQUEST, 4), 64);
    assert_int_equal(wire_auth_len(WIRE_PREPREPARE, 7), 112);
    assert_int_equal(wire_auth_len(WIRE_PREPARE, 4), 64);
    assert_int_equal(wire_auth_len(WIRE_COMMIT, 13), 208);
    assert_int_equal(wire_auth_len(WIRE_REPLY, 13), 16);
    assert_int_equal(wire_auth_len(WIRE_CHECKPOINT, 4), 64);
    assert_int_equal(wire_auth_len(WIRE_VIEW_CHANGE, 4), 64);
    assert_int_equal(wire_auth_len(WIRE_NEW_VIEW, 4), 64);
}

static void test_request_digest(void **state)
{
    (void)state;
    struct wire_msg m;
    uint8_t d1[32], d2[32];
    size_t n = make_request(g_buf, BUF_CAP, 1, 5, WIRE_OP_PUT, "k", "v", 0);
    expect_ok(g_buf, n, &m);
    wire_request_digest(d1, &m);

    /* Another authenticator and another view hint: same request, same digest. */
    memset(g_buf + n - NREP * 16, 0xEE, NREP * 16);
    struct wire_header h;
    wire_header_read(g_buf, &h);
    h.view = 999;
    wire_header_write(g_buf, &h);
    expect_ok(g_buf, n, &m);
    wire_request_digest(d2, &m);
    assert_memory_equal(d1, d2, 32);

    /* Another timestamp or value: another digest. */
    n = make_request(g_buf, BUF_CAP, 1, 6, WIRE_OP_PUT, "k", "v", 0);
    expect_ok(g_buf, n, &m);
    wire_request_digest(d2, &m);
    assert_memory_not_equal(d1, d2, 32);
    n = make_request(g_buf, BUF_CAP, 1, 5, WIRE_OP_PUT, "k", "w", 0);
    expect_ok(g_buf, n, &m);
    wire_request_digest(d2, &m);
    assert_memory_not_equal(d1, d2, 32);
}

/* ---- Datagrams -------------------------------------------------------------------- */

static size_t make_datagram(uint8_t *dg, size_t cap)
{
    size_t off = 0;
    off += make_request(dg + off, cap - off, 1, 10, WIRE_OP_PUT, "k1", "v1", 0);
    off += make_preprepare(dg + off, cap - off);
    off += make_digest_msg(dg + off, cap - off, WIRE_COMMIT);
    off += make_reply(dg + off, cap - off, "res");
    return off;
}

static void test_datagram_three(void **state)
{
    (void)state;
    size_t off = 0;
    off += make_request(g_buf + off, BUF_CAP - off, 1, 10, WIRE_OP_PUT, "k1", "v1", 0);
    off += make_digest_msg(g_buf + off, BUF_CAP - off, WIRE_PREPARE);
    off += make_reply(g_buf + off, BUF_CAP - off, "res");
    const uint8_t want[] = {WIRE_REQUEST, WIRE_PREPARE, WIRE_REPLY};

    size_t pos = 0;
    int k = 0;
    while (pos < off) {
        struct wire_msg m;
        size_t consumed = 0;
        assert_int_equal(wire_decode(g_buf + pos, off - pos, &lim, &m, &consumed, NULL), 0);
        assert_int_equal(m.h.type, want[k]);
        pos += consumed;
        k++;
    }
    assert_int_equal(k, 3);
    assert_int_equal(pos, off);

    /* A bad middle message (another group) is skipped; the third still decodes. */
    size_t first = make_request(g_buf, BUF_CAP, 1, 10, WIRE_OP_PUT, "k1", "v1", 0);
    header_patch(g_buf + first, set_group, GROUP + 1);
    struct wire_drop_counters drops = {0};
    pos = 0;
    int ok = 0;
    while (pos < off) {
        struct wire_msg m;
        size_t consumed = 0;
        if (wire_decode(g_buf + pos, off - pos, &lim, &m, &consumed, &drops) == 0) {
            ok++;
        }
        if (consumed == 0) {
            break;
        }
        pos += consumed;
    }
    assert_int_equal(ok, 2);
    assert_int_equal(drops.count[WIRE_DROP_BAD_GROUP], 1);
    assert_int_equal(drops_total(&drops), 1);
}

/* Decode a whole datagram the way a receiver does; returns messages accepted. */
static int datagram_walk(const uint8_t *dg, size_t len, struct wire_drop_counters *drops)
{
    size_t pos = 0;
    int ok = 0;
    while (pos < len) {
        struct wire_msg m;
        size_t consumed = 0;
        uint64_t before = drops_total(drops);
        int rc = wire_decode(dg + pos, len - pos, &lim, &m, &consumed, drops);
        assert_true(consumed <= len - pos);
        if (rc == 0) {
            assert_int_equal(drops_total(drops), before);
            assert_true(consumed >= WIRE_HEADER_SIZE);
            ok++;
            if (m.h.type == WIRE_PREPREPARE) {
                uint32_t off = 0;
                struct wire_batch_entry e;
                uint32_t entries = 0;
                while (wire_batch_next(&m, &off, &e)) {
                    entries++;
                    if (e.kind == WIRE_ENTRY_INLINE) {
                        struct wire_msg inner;
                        size_t used = 0;
                        assert_int_equal(wire_decode(e.bytes, e.len, &lim, &inner, &used, NULL), 0);
                        assert_int_equal(used, e.len);
                    }
                }
                assert_int_equal(entries, m.u.batch.count);
            }
        } else {
            assert_int_equal(rc, BFTKV_E_CORRUPT);
            assert_int_equal(drops_total(drops), before + 1);
        }
        if (consumed == 0) {
            break;
        }
        pos += consumed;
    }
    return ok;
}

static void test_corruption_never_crashes(void **state)
{
    (void)state;
    size_t len = make_datagram(g_buf, BUF_CAP);
    struct wire_drop_counters drops = {0};
    assert_int_equal(datagram_walk(g_buf, len, &drops), 4);

    rng_state = 0x5EEDull;
    uint8_t *dg = malloc(len);
    assert_non_null(dg);
    const int trials = 100000;
    int accepted = 0;
    for (int t = 0; t < trials; t++) {
        memcpy(dg, g_buf, len);
        size_t flips = 1 + rng_below(4);
        for (size_t i = 0; i < flips; i++) {
            size_t pos = rng_below(len);
            switch (rng_below(3)) {
            case 0:
                dg[pos] ^= (uint8_t)(1u << rng_below(8));
                break;
            case 1:
                dg[pos] = (uint8_t)rng_next();
                break;
            default:
                dg[pos] = (uint8_t)(rng_below(2) ? 0x00 : 0xFF);
                break;
            }
        }
        /* Sometimes also cut the datagram short, into a block of exactly that size. */
        size_t dlen = rng_below(8) == 0 ? rng_below(len + 1) : len;
        uint8_t *cut = malloc(dlen > 0 ? dlen : 1);
        assert_non_null(cut);
        memcpy(cut, dg, dlen);
        accepted += datagram_walk(cut, dlen, &drops);
        free(cut);
    }
    free(dg);
    /* Corruption of the authenticator bytes goes unnoticed by the decoder (auth.c's
     * job), so some messages survive; most are dropped. */
    assert_true(accepted > 0);
    assert_true(drops_total(&drops) > (uint64_t)trials / 2);
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        if (drops.count[i] != 0) {
            printf("  corruption: %-14s %llu\n", wire_drop_name((enum wire_drop)i),
                   (unsigned long long)drops.count[i]);
        }
    }
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_roundtrip),
        cmocka_unit_test(test_request_max_sizes),
        cmocka_unit_test(test_preprepare_roundtrip),
        cmocka_unit_test(test_null_batch),
        cmocka_unit_test(test_digest_msgs_roundtrip),
        cmocka_unit_test(test_reply_roundtrip),
        cmocka_unit_test(test_names_and_sizes),
        cmocka_unit_test(test_request_digest),
        cmocka_unit_test(test_drop_truncated),
        cmocka_unit_test(test_drop_header),
        cmocka_unit_test(test_drop_digest_msg_length),
        cmocka_unit_test(test_drop_request_fields),
        cmocka_unit_test(test_drop_reply_fields),
        cmocka_unit_test(test_reply_epoch),
        cmocka_unit_test(test_drop_preprepare),
        cmocka_unit_test(test_request_fetch_roundtrip),
        cmocka_unit_test(test_datagram_three),
        cmocka_unit_test(test_corruption_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
