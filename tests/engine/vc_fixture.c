/* The cluster and set-up shared by the view-change tests (see vc_fixture.h):
 * up() starts a cluster with the drop filter installed; teardown() checks no
 * client saw a bad reply and frees it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "replica_harness.h"
#include "vc_harness.h"
#include "vc_fixture.h"

struct rh_cluster C;
struct vh_filter F;
uint8_t g_msg[BFTKV_DATAGRAM_MAX];
uint8_t g_null[32];

void up(uint16_t n, uint16_t f, struct rh_tune *t)
{
    rh_init(&C, n, f, 8, rh_tune_apply, t);
    memset(&F, 0, sizeof F);
    vh_filter_install(&C, &F);
    wire_null_batch_digest(g_null);
}

int teardown(void **state)
{
    (void)state;
    assert_int_equal(C.bad_replies, 0);
    vh_filter_fini(&F);
    rh_fini(&C);
    return 0;
}

/* ---- Helpers of the view-change tests ------------------------------------------------- */

const struct pbft_replica_stats *st(uint16_t i)
{
    return pbft_replica_stats(C.r[i]);
}

void put(uint16_t client, uint64_t ts, const char *key, uint16_t to)
{
    rh_submit(&C, client, 0, ts, WIRE_OP_PUT, key, key, strlen(key), 0, to);
}

/* Correct replicas (bit set in who) executed the same batch at every seq that
 * both executed. */
void agree(uint64_t who)
{
    for (uint16_t a = 0; a < C.n; a++) {
        for (uint16_t b = (uint16_t)(a + 1u); b < C.n; b++) {
            if (!((who >> a) & 1u) || !((who >> b) & 1u))
                continue;
            for (size_t i = 0; i < C.nexecs[a]; i++) {
                const uint8_t *d = vh_exec_digest(&C, b, C.execs[a][i].seq);
                if (d != NULL)
                    assert_memory_equal(d, C.execs[a][i].digest, 32);
            }
        }
    }
}

void view_is(uint16_t i, uint64_t v, bool changing)
{
    assert_int_equal(pbft_replica_view(C.r[i]), v);
    assert_int_equal(pbft_replica_in_view_change(C.r[i]), changing);
}
