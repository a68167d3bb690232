/* Unit tests of the Byzantine rewriter (engine/byzantine.c): the name table the
 * server's --help and the simulator share, the stale-read accomplices, the
 * refusals of byz_create, that a seed fixes every choice, and that the lies are
 * well authenticated (a corrupted digest still passes every replica's MAC check;
 * a corrupted MAC does not). The simulator's byzantine ranges run every mode
 * against the real engine; these pin the module's own contract.
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
#include "engine/byzantine.h"
#include "engine/pbft.h"
#include "engine/wire.h"

#define GROUP 3u
#define NREP 4u
#define NCLIENTS 2u
#define LIAR 3u

static const struct wire_limits lim = {.group = GROUP, .n = NREP, .clients_max = NCLIENTS};
static struct auth_keypair rkp[NREP];
static struct auth_public rpub[NREP], cpub[NCLIENTS];
static struct auth_ctx rctx[NREP];

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    uint8_t seed[32];
    for (uint8_t i = 0; i < NREP + NCLIENTS; i++) {
        for (int k = 0; k < 32; k++)
            seed[k] = (uint8_t)(i * 13u + (unsigned)k);
        struct auth_keypair kp;
        auth_keypair_from_seed(&kp, seed);
        if (i < NREP) {
            rkp[i] = kp;
            auth_public_of(&rpub[i], &kp);
        } else {
            auth_public_of(&cpub[i - NREP], &kp);
        }
    }
    bool known[NCLIENTS] = {true, true};
    for (uint16_t i = 0; i < NREP; i++)
        if (auth_init_replica(&rctx[i], i, NREP, &rkp[i], rpub, cpub, known, NCLIENTS) != 0)
            return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (uint16_t i = 0; i < NREP; i++)
        auth_destroy(&rctx[i]);
    return 0;
}

/* What a rewriter sent, in order. */
#define SENT_MAX 8
struct sent {
    uint32_t count;
    uint8_t kind[SENT_MAX];
    uint16_t id[SENT_MAX];
    size_t len[SENT_MAX];
    uint8_t msg[SENT_MAX][256];
};

static void sent_record(void *arg, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    struct sent *s = arg;
    assert_true(s->count < SENT_MAX);
    assert_true(len <= sizeof s->msg[0]);
    s->kind[s->count] = kind;
    s->id[s->count] = id;
    s->len[s->count] = len;
    memcpy(s->msg[s->count], msg, len);
    s->count++;
}

static struct byz *liar(enum byz_mode mode, uint64_t seed)
{
    struct byz_context ctx;
    byz_context_live(&ctx, NREP, 1, LIAR, &rctx[LIAR], &lim, 100000000u);
    struct byz *b = NULL;
    assert_int_equal(byz_create(mode, seed, &ctx, &b), 0);
    return b;
}

/* A PREPARE from the liar for (view 2, seq 9), authenticated as the engine would. */
static size_t prepare_of_liar(uint8_t *buf, size_t cap, uint8_t fill)
{
    uint8_t d[32];
    memset(d, fill, sizeof d);
    size_t auth_off = 0;
    size_t n = wire_encode_digest_msg(buf, cap, WIRE_PREPARE, GROUP, LIAR, NREP, 2, 9, d, &auth_off);
    assert_true(n > 0);
    auth_authenticator_fill(&rctx[LIAR], buf, n, auth_off);
    return n;
}

static bool replica_accepts(uint16_t r, const uint8_t *msg, size_t len)
{
    struct wire_msg m;
    size_t used = 0;
    return wire_decode(msg, len, &lim, &m, &used, NULL) == 0 && used == len && auth_authenticator_check(&rctx[r], &m);
}

static bool every_replica_accepts(const uint8_t *msg, size_t len)
{
    for (uint16_t r = 0; r < NREP; r++)
        if (r != LIAR && !replica_accepts(r, msg, len))
            return false;
    return true;
}

static void test_names(void **state)
{
    (void)state;
    for (int m = 0; m < BYZ_MODE_COUNT; m++) {
        const char *name = byz_mode_name((enum byz_mode)m);
        assert_string_not_equal(name, "?");
        assert_int_equal(byz_mode_parse(name), m);
    }
    assert_int_equal(byz_mode_parse("none"), BYZ_NONE);
    assert_int_equal(byz_mode_parse("random"), -1); /* the server's old name for mix */
    assert_int_equal(byz_mode_parse(""), -1);
    assert_string_equal(byz_mode_name(BYZ_MODE_COUNT), "?");
    /* The simulator draws modes by number: the order is fixed. */
    assert_int_equal(byz_mode_parse("silent"), 1);
    assert_int_equal(byz_mode_parse("stale-read"), 8);
    assert_int_equal(byz_mode_parse("lying-state"), 12);
}

static void test_accomplices(void **state)
{
    (void)state;
    bool coal[BFTKV_REPLICAS_MAX] = {false}, acc[BFTKV_REPLICAS_MAX];
    coal[3] = true;
    byz_accomplices(4, 1, coal, acc);
    assert_true(acc[1] && !acc[0] && !acc[2] && !acc[3]);
    coal[1] = true; /* a faulty replica is never an accomplice */
    byz_accomplices(4, 1, coal, acc);
    assert_true(acc[2] && !acc[1] && !acc[0]);
    memset(coal, 0, sizeof coal);
    coal[0] = coal[2] = true;
    byz_accomplices(7, 2, coal, acc);
    assert_true(acc[1] && acc[3] && !acc[0] && !acc[2] && !acc[4] && !acc[5] && !acc[6]);
}

static void test_create_refuses(void **state)
{
    (void)state;
    struct byz_context ctx;
    byz_context_live(&ctx, NREP, 1, LIAR, &rctx[LIAR], &lim, 0);
    struct byz *b = NULL;
    assert_int_equal(byz_create(BYZ_NONE, 1, &ctx, &b), BFTKV_E_INVAL);
    assert_int_equal(byz_create(BYZ_MODE_COUNT, 1, &ctx, &b), BFTKV_E_INVAL);
    ctx.self = NREP;
    assert_int_equal(byz_create(BYZ_DROP, 1, &ctx, &b), BFTKV_E_INVAL);
    byz_context_live(&ctx, 2, 0, 1, &rctx[1], &lim, 0);
    assert_int_equal(byz_create(BYZ_EQUIVOCATE, 1, &ctx, &b), BFTKV_E_INVAL); /* no two groups of backups */
    assert_null(b);
}

/* drop: the choices are the seed's, and the rate is the seed's 10..90%. */
static void test_seed_fixes_choices(void **state)
{
    (void)state;
    uint8_t msg[256];
    size_t len = prepare_of_liar(msg, sizeof msg, 0x11);
    uint32_t kept[3] = {0};
    bool same = true, differs = false;
    struct byz *a = liar(BYZ_DROP, 42), *a2 = liar(BYZ_DROP, 42), *other = liar(BYZ_DROP, 43);
    for (int i = 0; i < 1000; i++) {
        struct sent sa = {0}, sa2 = {0}, so = {0};
        byz_filter(a, PBFT_DEST_REPLICA, 0, msg, len, sent_record, &sa);
        byz_filter(a2, PBFT_DEST_REPLICA, 0, msg, len, sent_record, &sa2);
        byz_filter(other, PBFT_DEST_REPLICA, 0, msg, len, sent_record, &so);
        same = same && sa.count == sa2.count;
        differs = differs || sa.count != so.count;
        kept[0] += sa.count;
        kept[2] += so.count;
        if (sa.count == 1) {
            assert_int_equal(sa.len[0], len);
            assert_memory_equal(sa.msg[0], msg, len); /* drop never rewrites */
        }
    }
    assert_true(same);
    assert_true(differs);
    assert_true(kept[0] >= 50 && kept[0] <= 950);
    assert_int_equal(byz_stats_of(a)->dropped, 1000u - kept[0]);
    byz_destroy(a);
    byz_destroy(a2);
    byz_destroy(other);
}

/* corrupt-digest: another digest, still a valid authenticator for every replica. */
static void test_corrupt_digest_is_authenticated(void **state)
{
    (void)state;
    uint8_t msg[256];
    size_t len = prepare_of_liar(msg, sizeof msg, 0x22);
    assert_true(every_replica_accepts(msg, len));
    struct byz *b = liar(BYZ_CORRUPT_DIGEST, 7);
    struct sent s = {0};
    byz_filter(b, PBFT_DEST_REPLICA, 1, msg, len, sent_record, &s);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.kind[0], PBFT_DEST_REPLICA);
    assert_int_equal(s.id[0], 1);
    assert_int_equal(s.len[0], len);
    assert_memory_not_equal(s.msg[0] + WIRE_HEADER_SIZE, msg + WIRE_HEADER_SIZE, 32);
    assert_true(every_replica_accepts(s.msg[0], s.len[0]));
    assert_int_equal(byz_stats_of(b)->corrupted, 1);
    byz_destroy(b);
}

/* corrupt-mac: it changes 60% of messages, one byte of the authenticator each;
 * the replica whose MAC that byte is in rejects the message (a byte of the
 * liar's own MAC, which nobody checks, harms no one). */
static void test_corrupt_mac_is_caught(void **state)
{
    (void)state;
    uint8_t msg[256];
    size_t len = prepare_of_liar(msg, sizeof msg, 0x33);
    struct byz *b = liar(BYZ_CORRUPT_MAC, 9);
    uint32_t changed = 0;
    for (int i = 0; i < 100; i++) {
        struct sent s = {0};
        byz_filter(b, PBFT_DEST_REPLICA, 2, msg, len, sent_record, &s);
        assert_int_equal(s.count, 1);
        if (memcmp(s.msg[0], msg, len) == 0)
            continue;
        changed++;
        size_t auth_off = len - NREP * BFTKV_MAC_SIZE;
        assert_memory_equal(s.msg[0], msg, auth_off); /* only the authenticator */
        size_t at = auth_off;
        while (s.msg[0][at] == msg[at])
            at++;
        uint16_t victim = (uint16_t)((at - auth_off) / BFTKV_MAC_SIZE);
        for (uint16_t r = 0; r < NREP; r++)
            if (r != LIAR)
                assert_int_equal(replica_accepts(r, s.msg[0], s.len[0]), r != victim);
    }
    assert_true(changed > 30 && changed < 90);
    assert_int_equal(byz_stats_of(b)->corrupted, changed);
    byz_destroy(b);
}

/* slow: the message goes out unchanged, to be held 60..95% of T by the caller,
 * and only towards replicas; silent sends nothing at all. */
static void test_slow_and_silent(void **state)
{
    (void)state;
    uint8_t msg[256];
    size_t len = prepare_of_liar(msg, sizeof msg, 0x44);
    struct byz *b = liar(BYZ_SLOW, 5);
    uint64_t d = byz_delay_ns(b, PBFT_DEST_REPLICA);
    assert_true(d >= 60000000u && d <= 95000000u);
    assert_int_equal(byz_delay_ns(b, PBFT_DEST_CLIENT), 0);
    struct sent s = {0};
    byz_filter(b, PBFT_DEST_REPLICA, 0, msg, len, sent_record, &s);
    assert_int_equal(s.count, 1);
    assert_memory_equal(s.msg[0], msg, len);
    byz_destroy(b);
    struct byz *q = liar(BYZ_SILENT, 5);
    assert_int_equal(byz_delay_ns(q, PBFT_DEST_REPLICA), 0);
    struct sent none = {0};
    byz_filter(q, PBFT_DEST_REPLICA, 0, msg, len, sent_record, &none);
    assert_int_equal(none.count, 0);
    assert_int_equal(byz_stats_of(q)->dropped, 1);
    byz_destroy(q);
}

/* stale-read (live context: coalition {3}, accomplice {1}): votes reach the
 * accomplice only. */
static void test_stale_read_votes(void **state)
{
    (void)state;
    uint8_t msg[256];
    size_t len = prepare_of_liar(msg, sizeof msg, 0x55);
    struct byz *b = liar(BYZ_STALE_READ, 3);
    for (uint16_t r = 0; r < NREP - 1; r++) {
        struct sent s = {0};
        byz_filter(b, PBFT_DEST_REPLICA, r, msg, len, sent_record, &s);
        assert_int_equal(s.count, r == 1 ? 1u : 0u);
    }
    assert_int_equal(byz_stats_of(b)->dropped, 2);
    byz_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_accomplices),
        cmocka_unit_test(test_create_refuses),
        cmocka_unit_test(test_seed_fixes_choices),
        cmocka_unit_test(test_corrupt_digest_is_authenticated),
        cmocka_unit_test(test_corrupt_mac_is_caught),
        cmocka_unit_test(test_slow_and_silent),
        cmocka_unit_test(test_stale_read_votes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
