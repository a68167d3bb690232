/* Unit tests of the wire decoder's drop reasons (part of wire_test; main is in
 * test_wire.c): one crafted input per reason, each counted exactly once, and every
 * truncation of a valid message refused without reading past its end.
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


static void truncations_of(const uint8_t *msg, size_t len)
{
    for (size_t cut = 0; cut < len; cut++) {
        struct wire_drop_counters drops = {0};
        struct wire_msg m;
        size_t consumed = 1;
        assert_int_equal(decode_exact(msg, cut, &m, &consumed, &drops), BFTKV_E_CORRUPT);
        assert_int_equal(drops.count[WIRE_DROP_TRUNCATED], 1);
        assert_int_equal(drops_total(&drops), 1);
        assert_int_equal(consumed, 0);
    }
}

void test_drop_truncated(void **state)
{
    (void)state;
    size_t n = make_request(g_buf, BUF_CAP, 1, 1, WIRE_OP_PUT, "key", "value", 0);
    truncations_of(g_buf, n);
    n = make_preprepare(g_buf, BUF_CAP);
    truncations_of(g_buf, n);
    n = make_digest_msg(g_buf, BUF_CAP, WIRE_PREPARE);
    truncations_of(g_buf, n);
    n = make_digest_msg(g_buf, BUF_CAP, WIRE_CHECKPOINT);
    truncations_of(g_buf, n);
    n = make_reply(g_buf, BUF_CAP, "r");
    truncations_of(g_buf, n);
    expect_drop(g_buf, 0, WIRE_DROP_TRUNCATED);

    /* A body_len near 2^32 must not wrap the length arithmetic. */
    n = make_digest_msg(g_buf, BUF_CAP, WIRE_COMMIT);
    header_patch(g_buf, set_body_len, UINT32_MAX);
    assert_int_equal(expect_drop(g_buf, n, WIRE_DROP_TRUNCATED), 0);
}

void test_drop_header(void **state)
{
    (void)state;
    size_t n = make_digest_msg(g_buf, BUF_CAP, WIRE_PREPARE);
    memcpy(g_big, g_buf, n);

    g_big[0] ^= 1;
    assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_MAGIC), 0);
    memcpy(g_big, g_buf, n);
    g_big[2] = 2;
    assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_VERSION), 0);
    g_big[2] = 0;
    expect_drop(g_big, n, WIRE_DROP_BAD_VERSION);

    /* Unknown types; the framing is still known, so consumed = n. */
    const uint32_t bad_types[] = {0, WIRE_TYPE_MAX + 1, 255};
    for (size_t i = 0; i < sizeof bad_types / sizeof bad_types[0]; i++) {
        memcpy(g_big, g_buf, n);
        header_patch(g_big, set_type, bad_types[i]);
        assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_TYPE), n);
    }

    memcpy(g_big, g_buf, n);
    header_patch(g_big, set_group, GROUP + 1);
    assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_GROUP), n);

    memcpy(g_big, g_buf, n);
    header_patch(g_big, set_sender, NREP);
    assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_SENDER), n);
    header_patch(g_big, set_sender, NREP - 1);
    expect_ok(g_big, n, &(struct wire_msg){0});

    /* A client id is checked against clients_max, a replica id against n. */
    size_t rn = make_request(g_big, BUF_CAP, NCLIENTS - 1, 1, WIRE_OP_GET, "k", NULL, 0);
    expect_ok(g_big, rn, &(struct wire_msg){0});
    header_patch(g_big, set_sender, NCLIENTS);
    expect_drop(g_big, rn, WIRE_DROP_BAD_SENDER);
    size_t pn = make_reply(g_big, BUF_CAP, NULL);
    header_patch(g_big, set_sender, NREP);
    expect_drop(g_big, pn, WIRE_DROP_BAD_SENDER);

    /* Wrong auth_len, with the bytes present so it is not a truncation. */
    memcpy(g_big, g_buf, n);
    header_patch(g_big, set_auth_len, NREP * 16 - 16);
    assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_LENGTH), n - 16);
    memcpy(g_big, g_buf, n);
    header_patch(g_big, set_auth_len, NREP * 16 + 16);
    g_big[n + 15] = 0;
    expect_drop(g_big, n + 16, WIRE_DROP_BAD_LENGTH);
    /* A CHECKPOINT with an authenticator instead of a signature. */
    size_t cn = make_digest_msg(g_big, BUF_CAP, WIRE_CHECKPOINT);
    header_patch(g_big, set_auth_len, 0);
    expect_drop(g_big, cn - 64, WIRE_DROP_BAD_LENGTH);

    /* Any header flag. */
    memcpy(g_big, g_buf, n);
    header_patch(g_big, set_flags, 1);
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
    header_patch(g_big, set_flags, 0x8000);
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
}

void test_drop_digest_msg_length(void **state)
{
    (void)state;
    size_t n = make_digest_msg(g_buf, BUF_CAP, WIRE_COMMIT);
    /* body_len 33: one byte more before the authenticator. */
    memcpy(g_big, g_buf, WIRE_HEADER_SIZE + 32);
    g_big[WIRE_HEADER_SIZE + 32] = 0;
    memcpy(g_big + WIRE_HEADER_SIZE + 33, g_buf + WIRE_HEADER_SIZE + 32, n - WIRE_HEADER_SIZE - 32);
    header_patch(g_big, set_body_len, 33);
    assert_int_equal(expect_drop(g_big, n + 1, WIRE_DROP_BAD_LENGTH), n + 1);
    memcpy(g_big, g_buf, n);
    header_patch(g_big, set_body_len, 31);
    expect_drop(g_big, n - 1, WIRE_DROP_BAD_LENGTH);
}

void test_drop_request_fields(void **state)
{
    (void)state;
    size_t n;
    /* Shorter than the fixed part. */
    n = raw_request(g_buf, WIRE_OP_GET, 0, 1, 0, WIRE_REQUEST_FIXED - 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    /* klen 0, klen > max. */
    n = raw_request(g_buf, WIRE_OP_GET, 0, 0, 0, WIRE_REQUEST_FIXED);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_GET, 0, BFTKV_KEY_MAX + 1, 0, WIRE_REQUEST_FIXED + BFTKV_KEY_MAX + 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_GET, 0, BFTKV_KEY_MAX, 0, WIRE_REQUEST_FIXED + BFTKV_KEY_MAX);
    expect_ok(g_buf, n, &(struct wire_msg){0});
    /* vlen > max; vlen huge (no overflow in the length sum). */
    n = raw_request(g_buf, WIRE_OP_PUT, 0, 1, BFTKV_VALUE_MAX + 1, WIRE_REQUEST_FIXED + 1 + BFTKV_VALUE_MAX + 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_PUT, 0, 1, UINT32_MAX, WIRE_REQUEST_FIXED + 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* body_len disagreeing with klen + vlen, both ways. */
    n = raw_request(g_buf, WIRE_OP_PUT, 0, 3, 4, WIRE_REQUEST_FIXED + 3 + 4 + 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    n = raw_request(g_buf, WIRE_OP_PUT, 0, 3, 4, WIRE_REQUEST_FIXED + 3 + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    n = raw_request(g_buf, WIRE_OP_PUT, 0, 3, 4, WIRE_REQUEST_FIXED + 3 + 4);
    expect_ok(g_buf, n, &(struct wire_msg){0});
    /* GET or DEL with a value. */
    n = raw_request(g_buf, WIRE_OP_GET, 0, 3, 4, WIRE_REQUEST_FIXED + 3 + 4);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_DEL, 0, 3, 1, WIRE_REQUEST_FIXED + 3 + 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* Unknown op. */
    n = raw_request(g_buf, 0, 0, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_DEL + 1, 0, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* Unknown rflags bits; READONLY on anything but GET. */
    n = raw_request(g_buf, WIRE_OP_GET, 1u << 2, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_GET, 0x80, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_PUT, WIRE_REQ_READONLY, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_DEL, WIRE_REQ_READONLY, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    n = raw_request(g_buf, WIRE_OP_GET, WIRE_REQ_READONLY | WIRE_REQ_FULL_ALL, 3, 0, WIRE_REQUEST_FIXED + 3);
    expect_ok(g_buf, n, &(struct wire_msg){0});
}

void test_drop_reply_fields(void **state)
{
    (void)state;
    size_t n = make_reply(g_buf, BUF_CAP, "abc");
    uint8_t *b = g_big + WIRE_HEADER_SIZE;

    memcpy(g_big, g_buf, n);
    put16(b, NCLIENTS); /* client out of range */
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
    memcpy(g_big, g_buf, n);
    b[7] = 1; /* pad */
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
    memcpy(g_big, g_buf, n);
    b[6] |= 1u << 3; /* unknown rflags bit */
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
    memcpy(g_big, g_buf, n);
    b[6] |= WIRE_REPLY_EPOCH; /* an epoch flagged but absent: the body is 8 bytes short */
    expect_drop(g_big, n, WIRE_DROP_BAD_LENGTH);
    memcpy(g_big, g_buf, n);
    put32(b + 8, BFTKV_VALUE_MAX + 1);
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
    memcpy(g_big, g_buf, n);
    put32(b + 8, 2); /* result_len disagrees with body_len */
    expect_drop(g_big, n, WIRE_DROP_BAD_LENGTH);
    memcpy(g_big, g_buf, n);
    b[6] = 0; /* FULL cleared: body longer than the fixed part */
    expect_drop(g_big, n, WIRE_DROP_BAD_LENGTH);
    memcpy(g_big, g_buf, n);
    b[WIRE_REPLY_FIXED] ^= 1; /* result does not match its digest */
    expect_drop(g_big, n, WIRE_DROP_BAD_DIGEST);
    memcpy(g_big, g_buf, n);
    put16(b + 4, 7); /* status is covered by the result digest too */
    expect_drop(g_big, n, WIRE_DROP_BAD_DIGEST);
    /* Shorter than the fixed part. */
    memcpy(g_big, g_buf, WIRE_HEADER_SIZE + 20);
    header_patch(g_big, set_body_len, 20);
    memset(g_big + WIRE_HEADER_SIZE + 20, 0, 16);
    expect_drop(g_big, WIRE_HEADER_SIZE + 20 + 16, WIRE_DROP_BAD_LENGTH);
}

void test_drop_preprepare(void **state)
{
    (void)state;
    size_t n = make_preprepare(g_buf, BUF_CAP);
    uint8_t *b = g_big + WIRE_HEADER_SIZE;
    struct wire_header h;
    wire_header_read(g_buf, &h);
    uint32_t elen = h.body_len - WIRE_PP_FIXED;
    memcpy(g_ents, g_buf + WIRE_HEADER_SIZE + WIRE_PP_FIXED, elen); /* the valid entries */

    /* Wrong D. */
    memcpy(g_big, g_buf, n);
    b[0] ^= 0x80;
    assert_int_equal(expect_drop(g_big, n, WIRE_DROP_BAD_DIGEST), n);
    /* An entry byte changed without updating D. */
    memcpy(g_big, g_buf, n);
    b[WIRE_PP_FIXED + elen - 1] ^= 1;
    expect_drop(g_big, n, WIRE_DROP_BAD_DIGEST);

    /* count says more, or fewer, entries than the region holds. */
    memcpy(g_big, g_buf, n);
    put16(b + 32, 4);
    expect_drop(g_big, n, WIRE_DROP_BAD_LENGTH);
    memcpy(g_big, g_buf, n);
    put16(b + 32, 2);
    expect_drop(g_big, n, WIRE_DROP_BAD_LENGTH);
    memcpy(g_big, g_buf, n);
    put16(b + 32, BFTKV_BATCH_REQUESTS_MAX + 1);
    expect_drop(g_big, n, WIRE_DROP_BAD_FIELD);
    /* Body shorter than D and count. */
    memcpy(g_big, g_buf, WIRE_HEADER_SIZE + 10);
    header_patch(g_big, set_body_len, 10);
    memset(g_big + WIRE_HEADER_SIZE + 10, 0, NREP * 16);
    expect_drop(g_big, WIRE_HEADER_SIZE + 10 + NREP * 16, WIRE_DROP_BAD_LENGTH);

    /* Entries built by hand; D is always made right so the entry check is what fails. */
    uint8_t req[2048];
    size_t rl = make_request(req, sizeof req, 2, 100, WIRE_OP_PUT, "alpha", "one", 0);
    uint8_t e[4096];
    size_t el;

    /* Inline entry that is not a valid request: corrupt op. */
    memcpy(g_big, req, rl);
    g_big[WIRE_HEADER_SIZE + 2] = 9;
    el = wire_entry_inline(e, sizeof e, g_big, (uint32_t)rl);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* ... of another group. */
    memcpy(g_big, req, rl);
    header_patch(g_big, set_group, GROUP + 1);
    el = wire_entry_inline(e, sizeof e, g_big, (uint32_t)rl);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* ... not a REQUEST at all. */
    size_t pl = make_digest_msg(g_big, BUF_CAP, WIRE_PREPARE);
    el = wire_entry_inline(e, sizeof e, g_big, (uint32_t)pl);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* ... with trailing bytes after the request. */
    memcpy(g_big, req, rl);
    g_big[rl] = 0;
    el = wire_entry_inline(e, sizeof e, g_big, (uint32_t)rl + 1);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* ... cut short. */
    el = wire_entry_inline(e, sizeof e, req, (uint32_t)rl - 1);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    el = wire_entry_inline(e, sizeof e, req, 3);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);

    /* Inline size limit: header + body <= BFTKV_INLINE_REQUEST_MAX. */
    static char value[BFTKV_INLINE_REQUEST_MAX];
    size_t vlen = BFTKV_INLINE_REQUEST_MAX - WIRE_HEADER_SIZE - WIRE_REQUEST_FIXED - 1;
    memset(value, 'v', vlen);
    value[vlen] = '\0';
    rl = make_request(req, sizeof req, 2, 100, WIRE_OP_PUT, "k", value, 0);
    assert_int_equal(rl, BFTKV_INLINE_REQUEST_MAX + NREP * 16);
    el = wire_entry_inline(e, sizeof e, req, (uint32_t)rl);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_ok(g_buf, n, &(struct wire_msg){0});
    value[vlen] = 'v';
    value[vlen + 1] = '\0';
    rl = make_request(req, sizeof req, 2, 100, WIRE_OP_PUT, "k", value, 0);
    el = wire_entry_inline(e, sizeof e, req, (uint32_t)rl);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);

    /* Digest entry of the wrong length (43 and 45 bytes). */
    uint8_t d[32] = {1};
    el = wire_entry_digest(e, sizeof e, d, 1, 0, 5);
    put32(e + 1, WIRE_PP_DIGEST_ENTRY - 1);
    n = pp_from_entries(g_buf, e, (uint32_t)el - 1, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    el = wire_entry_digest(e, sizeof e, d, 1, 0, 5);
    put32(e + 1, WIRE_PP_DIGEST_ENTRY + 1);
    e[el] = 0;
    n = pp_from_entries(g_buf, e, (uint32_t)el + 1, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    /* Digest entry naming a client out of range. */
    el = wire_entry_digest(e, sizeof e, d, NCLIENTS, 0, 5);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* Unknown kind. */
    el = wire_entry_digest(e, sizeof e, d, 1, 0, 5);
    e[0] = 3;
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_FIELD);
    /* Entry length past the region; entry header cut. */
    el = wire_entry_digest(e, sizeof e, d, 1, 0, 5);
    put32(e + 1, UINT32_MAX);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    n = pp_from_entries(g_buf, e, 3, 1);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    /* A null batch with stray bytes. */
    n = pp_from_entries(g_buf, e, 1, 0);
    expect_drop(g_buf, n, WIRE_DROP_BAD_LENGTH);
    /* And the well-formed ones still pass after pp_fix_digest. */
    el = wire_entry_digest(e, sizeof e, d, 1, 0, 5);
    n = pp_from_entries(g_buf, e, (uint32_t)el, 1);
    g_buf[WIRE_HEADER_SIZE] ^= 1;
    expect_drop(g_buf, n, WIRE_DROP_BAD_DIGEST);
    pp_fix_digest(g_buf);
    expect_ok(g_buf, n, &(struct wire_msg){0});
}

