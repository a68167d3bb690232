/* The cluster and set-up shared by the view-change tests (see vc_fixture.h):
 * up() starts a cluster with the drop filter installed; teardown() checks no
 * client saw a bad reply and frees it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

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
