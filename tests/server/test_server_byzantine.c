/* Unit tests of slow's delay queue in the server's Byzantine adapter
 * (server/byzantine.c): a held message leaves at its due time, not before, in
 * order and intact, also when its bytes wrap around the ring; messages to
 * clients are not held; a full queue drops and counts. No sockets: the send
 * function records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "engine/pbft.h"
#include "server/byzantine.h"

#define NREP 4u
#define T_NS 100000000u

struct rec {
    uint32_t count;
    uint32_t bad; /* messages whose bytes did not match their number */
    uint32_t last_no;
    uint8_t last_kind;
};

/* Message no: len bytes, each (no + i) & 0xFF, its number in the first 4. */
static void msg_fill(uint8_t *buf, size_t len, uint32_t no)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(no + i);
    memcpy(buf, &no, sizeof no);
}

static void rec_send(void *arg, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    (void)id;
    struct rec *r = arg;
    uint32_t no;
    memcpy(&no, msg, sizeof no);
    for (size_t i = sizeof no; i < len; i++)
        if (msg[i] != (uint8_t)(no + i))
            r->bad++;
    if (r->count > 0 && no <= r->last_no)
        r->bad++; /* out of order */
    r->count++;
    r->last_no = no;
    r->last_kind = kind;
}

static struct server_byz *slow_adapter(struct auth_ctx *auth, uint64_t *delay)
{
    memset(auth, 0, sizeof *auth);
    struct wire_limits lim = {.group = 1, .n = NREP, .clients_max = 1};
    struct byz_context ctx;
    byz_context_live(&ctx, NREP, 1, 2, auth, &lim, T_NS);
    struct server_byz *sb = NULL;
    assert_int_equal(server_byz_create(BYZ_SLOW, 11, &ctx, &sb), 0);
    assert_int_equal(server_byz_mode(sb), BYZ_SLOW);
    /* The delay is the rewriter's: 60..95% of T. Find it from a held message. */
    uint8_t m[64];
    msg_fill(m, sizeof m, 0);
    struct rec r = {0};
    server_byz_filter(sb, PBFT_DEST_REPLICA, 0, m, sizeof m, 0, rec_send, &r);
    assert_int_equal(r.count, 0);
    uint64_t due = server_byz_flush(sb, 0, rec_send, &r);
    assert_true(due >= T_NS / 100u * 60u && due <= T_NS / 100u * 95u);
    assert_int_equal(server_byz_flush(sb, due, rec_send, &r), UINT64_MAX);
    assert_int_equal(r.count, 1);
    *delay = due;
    return sb;
}

static void test_held_until_due(void **state)
{
    (void)state;
    struct auth_ctx auth;
    uint64_t d = 0;
    struct server_byz *sb = slow_adapter(&auth, &d);
    uint8_t m[300];
    struct rec r = {0};
    for (uint32_t i = 1; i <= 10; i++) {
        msg_fill(m, sizeof m, i);
        server_byz_filter(sb, PBFT_DEST_REPLICA, 1, m, sizeof m, i * 1000u, rec_send, &r);
    }
    /* A REPLY to a client is not held. */
    msg_fill(m, 40, 100);
    server_byz_filter(sb, PBFT_DEST_CLIENT, 0, m, 40, 0, rec_send, &r);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.last_kind, PBFT_DEST_CLIENT);
    struct rec h = {0};
    assert_int_equal(server_byz_flush(sb, d, rec_send, &h), d + 1000u);
    assert_int_equal(h.count, 0);
    assert_int_equal(server_byz_flush(sb, d + 5000u, rec_send, &h), d + 6000u);
    assert_int_equal(h.count, 5);
    assert_int_equal(server_byz_flush(sb, d + 10000u, rec_send, &h), UINT64_MAX);
    assert_int_equal(h.count, 10);
    assert_int_equal(h.bad, 0);
    assert_int_equal(h.last_kind, PBFT_DEST_REPLICA);
    struct server_byz_stats st;
    server_byz_stats_get(sb, &st);
    assert_int_equal(st.held, 11); /* with slow_adapter's probe */
    assert_int_equal(st.held_full, 0);
    server_byz_destroy(sb);
}

/* Large messages, flushed in steps: the bytes wrap around the ring many times. */
static void test_ring_wraps(void **state)
{
    (void)state;
    struct auth_ctx auth;
    uint64_t d = 0;
    struct server_byz *sb = slow_adapter(&auth, &d);
    size_t big = 60000;
    uint8_t *m = malloc(big);
    assert_non_null(m);
    struct rec r = {0};
    uint32_t no = 1;
    uint64_t now = 1000;
    /* Each round holds ~3 MB while the previous round's ~3 MB is still held,
     * then sends the previous round: the 8 MiB ring wraps every few rounds. */
    for (int round = 0; round < 40; round++) {
        for (int k = 0; k < 50; k++, no++) {
            msg_fill(m, big - (size_t)(no % 7u), no);
            server_byz_filter(sb, PBFT_DEST_REPLICA, 0, m, big - (no % 7u), now, rec_send, &r);
        }
        assert_int_equal(r.count, round == 0 ? 0u : (uint32_t)round * 50u - 50u);
        assert_int_equal(server_byz_flush(sb, now - 1 + d, rec_send, &r), now + d);
        assert_int_equal(r.count, (uint32_t)round * 50u);
        now += 1000;
    }
    assert_int_equal(server_byz_flush(sb, now + d, rec_send, &r), UINT64_MAX);
    struct server_byz_stats st;
    server_byz_stats_get(sb, &st);
    assert_int_equal(st.held_full, 0);
    assert_int_equal(r.count, no - 1u);
    assert_int_equal(r.bad, 0);
    free(m);
    server_byz_destroy(sb);
}

/* A full queue drops, counted: by count, then by bytes. */
static void test_full(void **state)
{
    (void)state;
    struct auth_ctx auth;
    uint64_t d = 0;
    struct server_byz *sb = slow_adapter(&auth, &d);
    uint8_t m[64];
    struct rec r = {0};
    for (uint32_t i = 1; i <= SERVER_BYZ_HELD_MAX + 5u; i++) {
        msg_fill(m, sizeof m, i);
        server_byz_filter(sb, PBFT_DEST_REPLICA, 0, m, sizeof m, 0, rec_send, &r);
    }
    struct server_byz_stats st;
    server_byz_stats_get(sb, &st);
    assert_int_equal(st.held_full, 5);
    server_byz_flush(sb, d, rec_send, &r);
    assert_int_equal(r.count, SERVER_BYZ_HELD_MAX);
    assert_int_equal(r.bad, 0);
    size_t big = 65000;
    uint8_t *b = malloc(big);
    assert_non_null(b);
    uint32_t fit = SERVER_BYZ_HELD_BYTES / (uint32_t)big;
    for (uint32_t i = 0; i < fit + 3u; i++) {
        msg_fill(b, big, 100000u + i);
        server_byz_filter(sb, PBFT_DEST_REPLICA, 0, b, big, 0, rec_send, &r);
    }
    server_byz_stats_get(sb, &st);
    assert_int_equal(st.held_full, 5u + 3u);
    free(b);
    server_byz_destroy(sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_until_due),
        cmocka_unit_test(test_ring_wraps),
        cmocka_unit_test(test_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
