/* Shared state of the view-change tests (test_viewchange.c,
 * test_viewchange_select.c): the one cluster C both files drive, its filter F,
 * a message buffer, the null batch's digest, up() to start a cluster and the
 * teardown every test runs under. The selection-rule and codec tests are
 * declared here so test_viewchange.c's main() runs every test in one cmocka
 * group. Test code: globals are fine here.
 */
#ifndef BFTKV_TESTS_VC_FIXTURE_H
#define BFTKV_TESTS_VC_FIXTURE_H

#include <stdint.h>

#include "bftkv/limits.h"
#include "replica_harness.h"
#include "vc_harness.h"

extern struct rh_cluster C;
extern struct vh_filter F;
extern uint8_t g_msg[BFTKV_DATAGRAM_MAX];
extern uint8_t g_null[32];

void up(uint16_t n, uint16_t f, struct rh_tune *t);
int teardown(void **state);

/* The selection rule on hand-made VIEW-CHANGEs, and the codec
 * (test_viewchange_select.c). */
void test_selection_rules(void **state);
void test_codec(void **state);

#endif
