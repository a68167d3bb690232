/* Unit tests of authentication (engine/auth.c): deterministic keys, symmetric
 * pairwise MAC keys, authenticators that every replica accepts and that break on
 * any single-byte change to what they cover, the allow-list of clients, the REPLY
 * MAC, and Ed25519 signatures. A group of NREP replicas and NCLIENTS clients is
 * built once from fixed seeds; client UNKNOWN_C is left out of the allow-list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/auth.h"
#include "engine/wire.h"

#define GROUP 3u
#define NREP 4u
#define NCLIENTS 4u
#define UNKNOWN_C 2u

static const struct wire_limits lim = {.group = GROUP, .n = NREP, .clients_max = NCLIENTS};

static struct auth_keypair rkp[NREP], ckp[NCLIENTS];
static struct auth_public rpub[NREP], cpub[NCLIENTS];
static struct auth_ctx rctx[NREP], cctx[NCLIENTS];
static uint8_t g_buf[8192];
static uint8_t g_ents[8192];

static void seed_of(uint8_t seed[32], uint8_t who, uint8_t id)
{
    for (int i = 0; i < 32; i++) {
        seed[i] = (uint8_t)(who * 31u + id * 7u + (unsigned)i);
    }
}

static int group_setup(void **state)
{
    (void)state;
    uint8_t seed[32];
    for (uint8_t i = 0; i < NREP; i++) {
        seed_of(seed, 1, i);
        auth_keypair_from_seed(&rkp[i], seed);
        auth_public_of(&rpub[i], &rkp[i]);
    }
    for (uint8_t c = 0; c < NCLIENTS; c++) {
        seed_of(seed, 2, c);
        auth_keypair_from_seed(&ckp[c], seed);
        auth_public_of(&cpub[c], &ckp[c]);
    }
    bool known[NCLIENTS];
    for (unsigned c = 0; c < NCLIENTS; c++) {
        known[c] = c != UNKNOWN_C;
    }
    /* The unknown client's published key may be garbage: it is never used. */
    memset(&cpub[UNKNOWN_C], 0, sizeof cpub[UNKNOWN_C]);
    for (uint16_t i = 0; i < NREP; i++) {
        if (auth_init_replica(&rctx[i], i, NREP, &rkp[i], rpub, cpub, known, NCLIENTS) != 0) {
            return -1;
        }
    }
    for (uint16_t c = 0; c < NCLIENTS; c++) {
        if (auth_init_client(&cctx[c], c, NREP, &ckp[c], rpub) != 0) {
            return -1;
        }
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < NREP; i++) {
        auth_destroy(&rctx[i]);
    }
    for (unsigned c = 0; c < NCLIENTS; c++) {
        auth_destroy(&cctx[c]);
    }
    return 0;
}

static size_t make_request(uint8_t *buf, size_t cap, uint16_t client, const char *key, const char *value,
                           size_t *auth_off)
{
    struct wire_request rq = {
        .client = client, .lane = 1, .timestamp = 77, .op = WIRE_OP_PUT, .rflags = 0,
        .klen = (uint16_t)strlen(key), .vlen = (uint32_t)strlen(value),
        .key = (const uint8_t *)key, .value = (const uint8_t *)value,
    };
    size_t n = wire_encode_request(buf, cap, GROUP, NREP, 0, &rq, auth_off);
    assert_true(n > 0);
    return n;
}

static void decode_ok(const uint8_t *buf, size_t len, struct wire_msg *m)
{
    size_t consumed = 0;
    assert_int_equal(wire_decode(buf, len, &lim, m, &consumed, NULL), 0);
    assert_int_equal(consumed, len);
}

/* ---- Keys ------------------------------------------------------------------------ */

static void test_keypair_deterministic(void **state)
{
    (void)state;
    uint8_t seed[32];
    seed_of(seed, 1, 0);
    struct auth_keypair a, b, c;
    auth_keypair_from_seed(&a, seed);
    auth_keypair_from_seed(&b, seed);
    assert_memory_equal(&a, &b, sizeof a);
    seed[31] ^= 1;
    auth_keypair_from_seed(&c, seed);
    assert_memory_not_equal(a.x_pk, c.x_pk, 32);
    assert_memory_not_equal(a.sign_pk, c.sign_pk, 32);
    /* The two key pairs are consistent and independent of each other. */
    uint8_t pk[32];
    assert_int_equal(crypto_scalarmult_base(pk, a.x_sk), 0);
    assert_memory_equal(pk, a.x_pk, 32);
    assert_int_equal(crypto_sign_ed25519_sk_to_pk(pk, a.sign_sk), 0);
    assert_memory_equal(pk, a.sign_pk, 32);
    assert_memory_not_equal(a.x_sk, a.sign_sk, 32);
    struct auth_public pub;
    auth_public_of(&pub, &a);
    assert_memory_equal(pub.x_pk, a.x_pk, 32);
    assert_memory_equal(pub.sign_pk, a.sign_pk, 32);
}

static void test_pairwise_symmetric(void **state)
{
    (void)state;
    static const uint8_t zero[AUTH_KEY_SIZE];
    for (unsigned a = 0; a < NREP; a++) {
        for (unsigned b = 0; b < NREP; b++) {
            assert_memory_equal(rctx[a].replica_keys[b], rctx[b].replica_keys[a], AUTH_KEY_SIZE);
            assert_memory_not_equal(rctx[a].replica_keys[b], zero, AUTH_KEY_SIZE);
            if (a != b) {
                assert_memory_not_equal(rctx[a].replica_keys[b], rctx[a].replica_keys[a], AUTH_KEY_SIZE);
            }
        }
        for (unsigned c = 0; c < NCLIENTS; c++) {
            if (c == UNKNOWN_C) {
                assert_false(auth_client_known(&rctx[a], (uint16_t)c));
                continue;
            }
            assert_true(auth_client_known(&rctx[a], (uint16_t)c));
            assert_memory_equal(rctx[a].client_keys[c], cctx[c].replica_keys[a], AUTH_KEY_SIZE);
        }
        assert_false(auth_client_known(&rctx[a], NCLIENTS));
    }
    assert_false(auth_client_known(&cctx[0], 0));
}

static void test_init_rejects(void **state)
{
    (void)state;
    struct auth_ctx a;
    assert_int_equal(auth_init_client(&a, 0, 0, &ckp[0], rpub), BFTKV_E_INVAL);
    assert_int_equal(auth_init_client(&a, 0, BFTKV_REPLICAS_MAX + 1, &ckp[0], rpub), BFTKV_E_INVAL);
    assert_int_equal(auth_init_replica(&a, NREP, NREP, &rkp[0], rpub, cpub, NULL, NCLIENTS), BFTKV_E_INVAL);
    assert_int_equal(auth_init_replica(&a, 0, NREP, &rkp[0], rpub, NULL, NULL, NCLIENTS), BFTKV_E_INVAL);
    /* A low-order public key (all zero) gives an all-zero shared secret. */
    struct auth_public bad[NREP];
    memcpy(bad, rpub, sizeof bad);
    memset(bad[1].x_pk, 0, 32);
    assert_int_equal(auth_init_client(&a, 0, NREP, &ckp[0], bad), BFTKV_E_INVAL);
    assert_int_equal(auth_init_replica(&a, 0, NREP, &rkp[0], rpub, cpub, NULL, NCLIENTS), BFTKV_E_INVAL);
    /* known == NULL allows every id when the keys are valid; zero clients is fine. */
    struct auth_public cp[NCLIENTS];
    memcpy(cp, cpub, sizeof cp);
    cp[UNKNOWN_C] = cpub[0];
    assert_int_equal(auth_init_replica(&a, 0, NREP, &rkp[0], rpub, cp, NULL, NCLIENTS), 0);
    assert_true(auth_client_known(&a, UNKNOWN_C));
    auth_destroy(&a);
    assert_int_equal(auth_init_replica(&a, 0, NREP, &rkp[0], rpub, NULL, NULL, 0), 0);
    assert_false(auth_client_known(&a, 0));
    auth_destroy(&a);
}

/* ---- Authenticators ---------------------------------------------------------------- */

static void check_all_replicas(const struct wire_msg *m, bool want)
{
    for (unsigned r = 0; r < NREP; r++) {
        assert_int_equal(auth_authenticator_check(&rctx[r], m), want);
    }
}

static void test_authenticator_replica_msgs(void **state)
{
    (void)state;
    const uint8_t types[] = {WIRE_PREPARE, WIRE_COMMIT};
    for (size_t t = 0; t < sizeof types; t++) {
        for (uint16_t s = 0; s < NREP; s++) {
            uint8_t d[32];
            memset(d, (int)(s + 1), sizeof d);
            size_t auth_off = 0;
            size_t n = wire_encode_digest_msg(g_buf, sizeof g_buf, types[t], GROUP, s, NREP, 2, 9, d, &auth_off);
            auth_authenticator_fill(&rctx[s], g_buf, n, auth_off);
            struct wire_msg m;
            decode_ok(g_buf, n, &m);
            check_all_replicas(&m, true);
            /* Clients never accept an authenticator. */
            assert_false(auth_authenticator_check(&cctx[0], &m));
        }
    }
}

static void test_authenticator_request_and_batch(void **state)
{
    (void)state;
    uint8_t req[512];
    size_t auth_off = 0;
    size_t rl = make_request(req, sizeof req, 1, "key", "value", &auth_off);
    auth_authenticator_fill(&cctx[1], req, rl, auth_off);
    struct wire_msg m;
    decode_ok(req, rl, &m);
    check_all_replicas(&m, true);

    /* The primary inlines it; each backup checks the batch and the client's MAC. */
    size_t el = wire_entry_inline(g_ents, sizeof g_ents, req, (uint32_t)rl);
    size_t n = wire_encode_preprepare(g_buf, sizeof g_buf, GROUP, 0, NREP, 0, 1, g_ents, (uint32_t)el, 1,
                                      &auth_off);
    auth_authenticator_fill(&rctx[0], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    check_all_replicas(&m, true);
    uint32_t off = 0;
    struct wire_batch_entry e;
    assert_int_equal(wire_batch_next(&m, &off, &e), 1);
    struct wire_msg inner;
    decode_ok(e.bytes, e.len, &inner);
    check_all_replicas(&inner, true);

    /* A PRE-PREPARE claiming to come from replica 1 but MACed by replica 0. */
    struct wire_header h;
    wire_header_read(g_buf, &h);
    h.sender = 1;
    wire_header_write(g_buf, &h);
    auth_authenticator_fill(&rctx[0], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    for (unsigned r = 0; r < NREP; r++) {
        /* k(0, r) differs from k(1, r) except where r's own pair coincides: never. */
        assert_false(auth_authenticator_check(&rctx[r], &m));
    }
}

/* Flip every byte of header, body and replica j's MAC in turn: replica j's check
 * must fail each time. The message is checked both with its stale decoding (so
 * the key and lengths stay the same and only MAC coverage is tested) and, when the
 * flipped bytes still decode, with the fresh decoding. */
static void tamper_each_byte(uint8_t *buf, size_t n, const struct wire_msg *orig)
{
    size_t covered = orig->raw_len - orig->h.auth_len;
    for (unsigned j = 0; j < NREP; j++) {
        size_t mac_lo = covered + j * BFTKV_MAC_SIZE;
        for (size_t pos = 0; pos < mac_lo + BFTKV_MAC_SIZE; pos++) {
            if (pos >= covered && pos < mac_lo) {
                continue; /* other replicas' MACs */
            }
            for (unsigned bit = 0; bit < 8; bit += 7) {
                buf[pos] ^= (uint8_t)(1u << bit);
                assert_false(auth_authenticator_check(&rctx[j], orig));
                struct wire_msg fresh;
                size_t consumed;
                if (wire_decode(buf, n, &lim, &fresh, &consumed, NULL) == 0) {
                    assert_false(auth_authenticator_check(&rctx[j], &fresh));
                }
                buf[pos] ^= (uint8_t)(1u << bit);
            }
        }
        assert_true(auth_authenticator_check(&rctx[j], orig));
    }
}

static void test_authenticator_tamper(void **state)
{
    (void)state;
    uint8_t d[32] = {9, 8, 7};
    size_t auth_off = 0;
    size_t n = wire_encode_digest_msg(g_buf, sizeof g_buf, WIRE_COMMIT, GROUP, 3, NREP, 4, 5, d, &auth_off);
    auth_authenticator_fill(&rctx[3], g_buf, n, auth_off);
    struct wire_msg m;
    decode_ok(g_buf, n, &m);
    tamper_each_byte(g_buf, n, &m);

    n = make_request(g_buf, sizeof g_buf, 3, "some-key", "some-value", &auth_off);
    auth_authenticator_fill(&cctx[3], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    tamper_each_byte(g_buf, n, &m);
}

static void test_authenticator_own_entry(void **state)
{
    (void)state;
    uint8_t d[32] = {1};
    size_t auth_off = 0;
    size_t n = wire_encode_digest_msg(g_buf, sizeof g_buf, WIRE_PREPARE, GROUP, 0, NREP, 1, 1, d, &auth_off);
    auth_authenticator_fill(&rctx[0], g_buf, n, auth_off);
    struct wire_msg m;
    decode_ok(g_buf, n, &m);
    /* Break replica 1's entry only: replica 2 (and 0, 3) still accept. */
    g_buf[auth_off + 1 * BFTKV_MAC_SIZE + 5] ^= 0x10;
    assert_false(auth_authenticator_check(&rctx[1], &m));
    assert_true(auth_authenticator_check(&rctx[0], &m));
    assert_true(auth_authenticator_check(&rctx[2], &m));
    assert_true(auth_authenticator_check(&rctx[3], &m));
    /* Swapping two entries breaks both. */
    g_buf[auth_off + 1 * BFTKV_MAC_SIZE + 5] ^= 0x10;
    uint8_t tmp[BFTKV_MAC_SIZE];
    memcpy(tmp, g_buf + auth_off + 2 * BFTKV_MAC_SIZE, BFTKV_MAC_SIZE);
    memcpy(g_buf + auth_off + 2 * BFTKV_MAC_SIZE, g_buf + auth_off + 3 * BFTKV_MAC_SIZE, BFTKV_MAC_SIZE);
    memcpy(g_buf + auth_off + 3 * BFTKV_MAC_SIZE, tmp, BFTKV_MAC_SIZE);
    assert_true(auth_authenticator_check(&rctx[1], &m));
    assert_false(auth_authenticator_check(&rctx[2], &m));
    assert_false(auth_authenticator_check(&rctx[3], &m));
}

static void test_unknown_client(void **state)
{
    (void)state;
    size_t auth_off = 0;
    size_t n = make_request(g_buf, sizeof g_buf, UNKNOWN_C, "k", "v", &auth_off);
    auth_authenticator_fill(&cctx[UNKNOWN_C], g_buf, n, auth_off);
    struct wire_msg m;
    decode_ok(g_buf, n, &m);
    check_all_replicas(&m, false);

    /* A known client's request re-labelled as another known client's fails too. */
    n = make_request(g_buf, sizeof g_buf, 0, "k", "v", &auth_off);
    auth_authenticator_fill(&cctx[1], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    check_all_replicas(&m, false);
}

/* What a receiver does: decode, then check. */
static bool authenticator_accepted(const struct auth_ctx *a, const uint8_t *buf, size_t n)
{
    struct wire_msg m;
    size_t consumed;
    return wire_decode(buf, n, &lim, &m, &consumed, NULL) == 0 && auth_authenticator_check(a, &m);
}

static bool reply_accepted(const struct auth_ctx *a, const uint8_t *buf, size_t n)
{
    struct wire_msg m;
    size_t consumed;
    return wire_decode(buf, n, &lim, &m, &consumed, NULL) == 0 && auth_reply_check(a, &m);
}

/* A PRE-PREPARE's MAC covers header, D and count; the entries are bound by D,
 * which the decoder checks. Every single-byte change is refused by one or the
 * other, at every replica. */
static void test_preprepare_tamper(void **state)
{
    (void)state;
    uint8_t req[512];
    size_t auth_off = 0;
    size_t rl = make_request(req, sizeof req, 0, "key", "value", &auth_off);
    auth_authenticator_fill(&cctx[0], req, rl, auth_off);
    size_t el = wire_entry_inline(g_ents, sizeof g_ents, req, (uint32_t)rl);
    uint8_t d[32] = {7};
    el += wire_entry_digest(g_ents + el, sizeof g_ents - el, d, 1, 0, 9);
    size_t n = wire_encode_preprepare(g_buf, sizeof g_buf, GROUP, 0, NREP, 0, 1, g_ents, (uint32_t)el, 2,
                                      &auth_off);
    auth_authenticator_fill(&rctx[0], g_buf, n, auth_off);
    struct wire_msg m;
    decode_ok(g_buf, n, &m);
    check_all_replicas(&m, true);
    for (unsigned r = 0; r < NREP; r++) {
        size_t mac_lo = auth_off + r * BFTKV_MAC_SIZE;
        for (size_t pos = 0; pos < n; pos++) {
            if (pos >= auth_off && (pos < mac_lo || pos >= mac_lo + BFTKV_MAC_SIZE)) {
                continue; /* other replicas' MACs */
            }
            g_buf[pos] ^= 0x04;
            assert_false(authenticator_accepted(&rctx[r], g_buf, n));
            if (pos < WIRE_HEADER_SIZE + WIRE_PP_FIXED || pos >= auth_off) {
                assert_false(auth_authenticator_check(&rctx[r], &m));
            }
            g_buf[pos] ^= 0x04;
        }
        assert_true(authenticator_accepted(&rctx[r], g_buf, n));
    }
}

/* The MAC input rule of auth.h, recomputed here with libsodium directly: a MACed
 * body of at most 64 bytes is MACed in place (SipHash-2-4-128 over header ||
 * body), a longer one through its BLAKE2b-256 (header || digest). Checked at the
 * boundary, 63/64/65 bytes of REQUEST body, for every replica's entry. */
static void expect_mac(const uint8_t *mac, const uint8_t *msg, size_t span, const uint8_t key[AUTH_KEY_SIZE])
{
    uint8_t in[WIRE_HEADER_SIZE + 64];
    size_t len;
    if (span <= 64) {
        memcpy(in, msg, WIRE_HEADER_SIZE + span);
        len = WIRE_HEADER_SIZE + span;
    } else {
        memcpy(in, msg, WIRE_HEADER_SIZE);
        crypto_generichash(in + WIRE_HEADER_SIZE, 32, msg + WIRE_HEADER_SIZE, span, NULL, 0);
        len = WIRE_HEADER_SIZE + 32;
    }
    uint8_t want[BFTKV_MAC_SIZE];
    crypto_shorthash_siphashx24(want, in, len, key);
    assert_memory_equal(mac, want, sizeof want);
}

static void test_mac_input_rule(void **state)
{
    (void)state;
    static const char value[] = "0123456789012345678901234567890123456789012345678901234567890123";
    for (size_t vlen = 52; vlen <= 54; vlen++) {
        char v[64];
        memcpy(v, value, vlen);
        v[vlen] = 0;
        size_t auth_off = 0;
        size_t n = make_request(g_buf, sizeof g_buf, 1, "k", v, &auth_off);
        size_t body = auth_off - WIRE_HEADER_SIZE;
        assert_int_equal(body, WIRE_REQUEST_FIXED + 1 + vlen); /* 63, 64, 65 */
        auth_authenticator_fill(&cctx[1], g_buf, n, auth_off);
        for (unsigned r = 0; r < NREP; r++) {
            expect_mac(g_buf + auth_off + r * BFTKV_MAC_SIZE, g_buf, body, rctx[r].client_keys[1]);
        }
        struct wire_msg m;
        decode_ok(g_buf, n, &m);
        check_all_replicas(&m, true);
    }
    /* PREPARE: the 32-byte digest body, in place. */
    uint8_t d[32] = {1, 2, 3};
    size_t auth_off = 0;
    size_t n = wire_encode_digest_msg(g_buf, sizeof g_buf, WIRE_PREPARE, GROUP, 1, NREP, 5, 9, d, &auth_off);
    assert_true(n > 0);
    auth_authenticator_fill(&rctx[1], g_buf, n, auth_off);
    for (unsigned r = 0; r < NREP; r++) {
        expect_mac(g_buf + auth_off + r * BFTKV_MAC_SIZE, g_buf, 32, rctx[1].replica_keys[r]);
    }
    /* REPLY with a 100-byte result: only the fixed part (44 bytes), in place. */
    uint8_t result[100];
    memset(result, 0x5a, sizeof result);
    uint8_t rd[32];
    wire_result_digest(rd, 0, result, sizeof result);
    struct wire_reply rp = {.client = 0, .lane = 0, .status = 0, .rflags = WIRE_REPLY_FULL,
                            .result_len = sizeof result, .result_digest = rd, .result = result};
    n = wire_encode_reply(g_buf, sizeof g_buf, GROUP, 2, 0, 77, &rp, &auth_off);
    assert_true(n > 0);
    auth_reply_fill(&rctx[2], g_buf, n, auth_off, 0);
    expect_mac(g_buf + auth_off, g_buf, WIRE_REPLY_FIXED, rctx[2].client_keys[0]);
}

/* ---- REPLY ------------------------------------------------------------------------- */

static void test_reply_mac(void **state)
{
    (void)state;
    uint8_t rd[32];
    wire_result_digest(rd, 0, "ok", 2);
    for (uint16_t c = 0; c < NCLIENTS; c++) {
        if (c == UNKNOWN_C) {
            continue;
        }
        struct wire_reply rp = {.client = c, .lane = 0, .status = 0, .rflags = 0, .result_len = 2,
                                .result_digest = rd, .result = (const uint8_t *)"ok"};
        size_t auth_off = 0;
        size_t n = wire_encode_reply(g_buf, sizeof g_buf, GROUP, 2, 0, 77, &rp, &auth_off);
        auth_reply_fill(&rctx[2], g_buf, n, auth_off, c);
        struct wire_msg m;
        decode_ok(g_buf, n, &m);
        for (uint16_t k = 0; k < NCLIENTS; k++) {
            assert_int_equal(auth_reply_check(&cctx[k], &m), k == c);
        }
        /* Replicas do not accept replies. */
        assert_false(auth_reply_check(&rctx[2], &m));
        /* Any single flipped byte fails: in the header, the fixed body part or the
         * MAC the check catches it; in the result, the decoder (result digest). */
        for (size_t pos = 0; pos < n; pos++) {
            g_buf[pos] ^= 0x01;
            bool in_result = pos >= WIRE_HEADER_SIZE + WIRE_REPLY_FIXED && pos < n - BFTKV_MAC_SIZE;
            if (!in_result) {
                assert_false(auth_reply_check(&cctx[c], &m));
            }
            assert_false(reply_accepted(&cctx[c], g_buf, n));
            g_buf[pos] ^= 0x01;
        }
        assert_true(reply_accepted(&cctx[c], g_buf, n));
        /* Another replica's name on it fails. */
        struct wire_header h;
        wire_header_read(g_buf, &h);
        h.sender = 1;
        wire_header_write(g_buf, &h);
        decode_ok(g_buf, n, &m);
        assert_false(auth_reply_check(&cctx[c], &m));
    }
}

/* A deployment's REPLY: the map epoch is MACed with the fixed part, so a
 * client acts only on an epoch its replica sent (docs/design.md §6.3). */
static void test_reply_epoch_mac(void **state)
{
    (void)state;
    uint8_t rd[32];
    wire_result_digest(rd, 0, "ok", 2);
    struct wire_reply rp = {.client = 1, .lane = 0, .status = 0, .result_len = 2, .result_digest = rd,
                            .result = (const uint8_t *)"ok", .epoch = 7};
    size_t auth_off = 0;
    size_t n = wire_encode_reply(g_buf, sizeof g_buf, GROUP, 2, 0, 77, &rp, &auth_off);
    assert_int_equal(auth_off, WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + WIRE_REPLY_EPOCH_SIZE + 2);
    auth_reply_fill(&rctx[2], g_buf, n, auth_off, 1);
    expect_mac(g_buf + auth_off, g_buf, WIRE_REPLY_FIXED + WIRE_REPLY_EPOCH_SIZE, rctx[2].client_keys[1]);
    assert_true(reply_accepted(&cctx[1], g_buf, n));
    for (size_t pos = WIRE_HEADER_SIZE + WIRE_REPLY_FIXED; pos < WIRE_HEADER_SIZE + WIRE_REPLY_FIXED + 8u; pos++) {
        g_buf[pos] ^= 0x01; /* another epoch (never 0 here): decodes, fails the MAC */
        struct wire_msg m;
        decode_ok(g_buf, n, &m);
        assert_false(auth_reply_check(&cctx[1], &m));
        g_buf[pos] ^= 0x01;
    }
    assert_true(reply_accepted(&cctx[1], g_buf, n));
}

/* ---- Signatures -------------------------------------------------------------------- */

static void test_signature(void **state)
{
    (void)state;
    uint8_t d[32];
    memset(d, 0xC4, sizeof d);
    size_t auth_off = 0;
    size_t n = wire_encode_digest_msg(g_buf, sizeof g_buf, WIRE_CHECKPOINT, GROUP, 1, NREP, 0, 128, d, &auth_off);
    assert_int_equal(n - auth_off, WIRE_SIG_SIZE);
    auth_sign(&rctx[1], g_buf, n, auth_off);
    struct wire_msg m;
    decode_ok(g_buf, n, &m);
    for (unsigned r = 0; r < NREP; r++) {
        assert_true(auth_signature_check(&rctx[r], &m));
    }
    for (unsigned c = 0; c < NCLIENTS; c++) {
        assert_true(auth_signature_check(&cctx[c], &m)); /* third parties can check */
    }
    /* Tampering with any byte fails. */
    for (size_t pos = 0; pos < n; pos++) {
        g_buf[pos] ^= 0x40;
        assert_false(auth_signature_check(&rctx[0], &m));
        g_buf[pos] ^= 0x40;
    }
    assert_true(auth_signature_check(&rctx[0], &m));
    /* The wrong signer: replica 2 signs a CHECKPOINT that names replica 1. */
    auth_sign(&rctx[2], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    assert_false(auth_signature_check(&rctx[0], &m));
    /* An authenticated type is not a signed one. */
    n = wire_encode_digest_msg(g_buf, sizeof g_buf, WIRE_COMMIT, GROUP, 1, NREP, 0, 128, d, &auth_off);
    auth_authenticator_fill(&rctx[1], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    assert_false(auth_signature_check(&rctx[0], &m));
    /* And a signed one has no authenticator. */
    n = wire_encode_digest_msg(g_buf, sizeof g_buf, WIRE_CHECKPOINT, GROUP, 1, NREP, 0, 128, d, &auth_off);
    auth_sign(&rctx[1], g_buf, n, auth_off);
    decode_ok(g_buf, n, &m);
    assert_false(auth_authenticator_check(&rctx[0], &m));
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keypair_deterministic),
        cmocka_unit_test(test_pairwise_symmetric),
        cmocka_unit_test(test_init_rejects),
        cmocka_unit_test(test_authenticator_replica_msgs),
        cmocka_unit_test(test_authenticator_request_and_batch),
        cmocka_unit_test(test_authenticator_tamper),
        cmocka_unit_test(test_authenticator_own_entry),
        cmocka_unit_test(test_preprepare_tamper),
        cmocka_unit_test(test_unknown_client),
        cmocka_unit_test(test_mac_input_rule),
        cmocka_unit_test(test_reply_mac),
        cmocka_unit_test(test_reply_epoch_mac),
        cmocka_unit_test(test_signature),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
