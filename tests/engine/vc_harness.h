/* View-change additions to the replica test cluster (replica_harness.h): a
 * filter that silences replicas and drops message types, simulated time that
 * advances with a tick at every replica, and hand-built VIEW-CHANGE and NEW-VIEW
 * messages signed with a replica's key (a Byzantine replica's, or a primary's
 * altered choice). Test code: it allocates freely. */
#ifndef BFTKV_TESTS_VC_HARNESS_H
#define BFTKV_TESTS_VC_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replica_harness.h"

/* What the filter drops. A message is dropped when any rule matches. */
struct vh_filter {
    uint64_t silent;      /* bit per replica: everything it sends */
    uint64_t deaf;        /* bit per replica: everything sent to it (clients' too) */
    uint32_t drop_types;  /* bit per wire type (1u << WIRE_COMMIT, ...), from anyone */
    uint32_t keep_to_mask_types; /* types dropped unless `to` is in keep_to */
    uint64_t keep_to;
    uint64_t drop_pp_seq; /* PRE-PREPAREs of this seq (0: none) */
    uint64_t cut[64];     /* cut[a] bit b: replica a's messages to replica b (a link
                             cut one way; set both bits for both ways) ... */
    uint32_t cut_types;   /* ... of these wire types only (0: all) */
    /* A copy of the last message of record_type sent by record_from (0: none). */
    uint8_t record_type;
    uint16_t record_from;
    uint8_t *recorded;
    size_t recorded_len;
    uint64_t dropped;
    /* Messages of these types are held instead of delivered, until
     * vh_release() delivers them (a delay the test controls exactly). */
    uint32_t hold_types;
    struct rh_msg *held;
    size_t nheld, held_cap;
};

/* Deliver the held messages now (in the order they were sent) and run. */
void vh_release(struct rh_cluster *c, struct vh_filter *f);

/* Install f as c's filter (f stays owned by the caller). */
void vh_filter_install(struct rh_cluster *c, struct vh_filter *f);
void vh_filter_fini(struct vh_filter *f);

/* Deliver everything, then tick every replica at now + step, deliver, ... until
 * now reaches `until`. Returns the final time. */
uint64_t vh_advance(struct rh_cluster *c, uint64_t until, uint64_t step);
/* Tick every replica at time t and deliver everything. */
void vh_tick_run(struct rh_cluster *c, uint64_t t);

/* Build and sign (with replica `from`'s key) a VIEW-CHANGE; returns its size. */
size_t vh_view_change(struct rh_cluster *c, uint8_t *buf, size_t cap, uint16_t from, uint64_t view, uint64_t h,
                      const struct wire_vc_entry *cp, uint16_t ncp, const struct wire_vc_entry *p, uint16_t np,
                      const struct wire_vc_entry *q, uint16_t nq);
/* Re-sign a message in place with replica `from`'s key (after editing it). */
void vh_resign(struct rh_cluster *c, uint16_t from, uint8_t *msg, size_t len);
/* Decode a message with the cluster's limits (asserts it decodes). */
void vh_decode(const struct rh_cluster *c, const uint8_t *buf, size_t len, struct wire_msg *m);

/* The batch digest a replica executed at seq (NULL: it did not). */
const uint8_t *vh_exec_digest(const struct rh_cluster *c, uint16_t replica, uint64_t seq);

#endif /* BFTKV_TESTS_VC_HARNESS_H */
