/* Shared state of the view-change tests (test_viewchange.c,
 * test_viewchange_liveness.c, test_viewchange_select.c): the one cluster C the
 * files drive (its network is C.net), a message buffer, the null batch's
 * digest, up() to start a cluster and the teardown every test runs under, and
 * the one thing the replica harness has no use for elsewhere: VIEW-CHANGE
 * messages built and signed by hand (a Byzantine replica's, or a primary's
 * altered NEW-VIEW re-signed). The selection-rule, codec and liveness tests
 * are declared here so test_viewchange.c's main() runs every test in one
 * cmocka group. Test code: globals are fine here.
 */
#ifndef BFTKV_TESTS_VIEWCHANGE_FIXTURE_H
#define BFTKV_TESTS_VIEWCHANGE_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "replica_harness.h"

extern struct rh_cluster C;
extern uint8_t g_msg[BFTKV_DATAGRAM_MAX];
extern uint8_t g_null[32];

#define MS RH_MS
#define T (50ull * MS) /* request_timeout_ns's default */

void up(uint16_t n, uint16_t f, struct rh_tune *t);
int teardown(void **state);

/* Replica i's counters; a PUT of key (value = key) from client at ts to replica
 * `to` (UINT16_MAX: every replica); replica i is in view v, changing or not. */
const struct pbft_replica_stats *st(uint16_t i);
void put(uint16_t client, uint64_t ts, const char *key, uint16_t to);
void view_is(uint16_t i, uint64_t v, bool changing);

/* Build and sign (with replica `from`'s key) a VIEW-CHANGE; returns its size. */
size_t view_change_build(uint8_t *buf, size_t cap, uint16_t from, uint64_t view, uint64_t h,
                         const struct wire_view_change_entry *cp, uint16_t ncp, const struct wire_view_change_entry *p,
                         uint16_t np, const struct wire_view_change_entry *q, uint16_t nq);
/* Into g_msg: replica `from`'s VIEW-CHANGE for `view` that holds only the
 * initial checkpoint (h = 0, no P, no Q), signed; returns its size. */
size_t view_change_bare(uint16_t from, uint64_t view);
/* Re-sign a message in place with replica `from`'s key (after editing it). */
void view_change_resign(uint16_t from, uint8_t *msg, size_t len);

/* The selection rule on hand-made VIEW-CHANGEs, and the codec
 * (test_viewchange_select.c). */
void test_selection_rules(void **state);
void test_codec(void **state);

/* Liveness: fitted timeouts, the duplicate-vote answer, the step-down for a
 * replica alone in a higher view, a full FIFO of watched requests
 * (test_viewchange_liveness.c). */
void test_timeout_fits_waits(void **state);
void test_fitted_timeout_off_for_faulty_primary(void **state);
void test_duplicate_vote_answered(void **state);
void test_lone_backup_rejoins(void **state);
void test_lone_backup_rejoins_n7(void **state);
void test_stepdown_rate_limited(void **state);
void test_stepdown_from_dead_view(void **state);
void test_stepdown_view_span(void **state);
void test_full_watch_fifo_not_rescanned(void **state);

#endif
