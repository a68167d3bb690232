/* The cluster and set-up shared by the view-change tests (see viewchange_fixture.h):
 * up() starts a cluster on a perfect network; teardown() checks no client saw
 * a bad reply and frees it; and the hand-built, signed VIEW-CHANGE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "replica_harness.h"
#include "viewchange_fixture.h"

struct rh_cluster C;
uint8_t g_msg[BFTKV_DATAGRAM_MAX];
uint8_t g_null[32];

void up(uint16_t n, uint16_t f, struct rh_tune *t)
{
    rh_init(&C, n, f, 8, 0, rh_tune_apply, t);
    wire_null_batch_digest(g_null);
}

int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

/* ---- Helpers of the view-change tests ------------------------------------------------- */

const struct pbft_replica_stats *st(uint16_t i)
{
    return rh_stats(&C, i);
}

void put(uint16_t client, uint64_t ts, const char *key, uint16_t to)
{
    rh_submit(&C, client, 0, ts, WIRE_OP_PUT, key, key, strlen(key), 0, to);
}

void view_is(uint16_t i, uint64_t v, bool changing)
{
    assert_int_equal(pbft_replica_view(C.r[i]), v);
    assert_int_equal(pbft_replica_in_viewchange(C.r[i]), changing);
}

/* ---- Hand-built VIEW-CHANGEs (TOCS 2002 §4.4) ------------------------------------------ */

size_t view_change_build(uint8_t *buf, size_t cap, uint16_t from, uint64_t view, uint64_t h,
                         const struct wire_view_change_entry *cp, uint16_t ncp, const struct wire_view_change_entry *p,
                         uint16_t np, const struct wire_view_change_entry *q, uint16_t nq)
{
    size_t auth_off = 0;
    size_t len = wire_encode_view_change(buf, cap, C.group, from, view, h, cp, ncp, p, np, q, nq, &auth_off);
    assert_true(len > 0);
    auth_sign(&C.rauth[from], buf, len, auth_off);
    return len;
}

size_t view_change_bare(uint16_t from, uint64_t view)
{
    const struct wire_view_change_entry cp = { .seq = 0, .view = 0, .digest = { 0 } };
    return view_change_build(g_msg, sizeof g_msg, from, view, 0, &cp, 1, NULL, 0, NULL, 0);
}

void view_change_resign(uint16_t from, uint8_t *msg, size_t len)
{
    struct wire_header h;
    wire_header_read(msg, &h);
    size_t auth_off = WIRE_HEADER_SIZE + (size_t)h.body_len;
    assert_int_equal(auth_off + WIRE_SIG_SIZE, len); /* a signed message */
    auth_sign(&C.rauth[from], msg, len, auth_off);
}
