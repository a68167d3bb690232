/* The disk of a durable replica, for tests (engine/pbft.h, "Ordering contract";
 * docs/design.md §9): the records its outboxes list, and the check, outbox by
 * outbox, that every message it sends itself depends only on records listed in
 * that outbox or an earlier one:
 *
 *   its PRE-PREPARE(v, n, D) or PREPARE(v, n, D)   a PREPREPARE record of (v, n, D)
 *   its COMMIT(v, n, D)                            a PREPARED record of (v, n, D)
 *   its VIEW-CHANGE(v)                             a VIEW_CHANGE record of v or later
 *   its NEW-VIEW(v)                                a NEW_VIEW record of v
 *   replies                                        last_executed covered by a
 *                                                  COMMITTED or CHECKPOINT record
 *   any message                                    decodes (an entry whose bytes a
 *                                                  record's copy overwrote does not)
 *
 * Used by the replica harness (tests/engine) and the simulator (tests/sim). A disk
 * outlives its replica's crash: it is the disk.
 */
#ifndef BFTKV_TESTS_PERSIST_CHECK_H
#define BFTKV_TESTS_PERSIST_CHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/pbft.h"
#include "engine/wire.h"

#define PERSIST_KINDS 9u /* enum pbft_persist values are below it */

struct persist_disk;

struct persist_disk *persist_disk_new(void); /* NULL: out of memory */
void persist_disk_free(struct persist_disk *d);

/* Replica `who` of n drained outbox o and has executed up to last_executed: the
 * records go to its disk (counted by kind in counts[PERSIST_KINDS]), then its
 * messages are checked. NULL, or the first violation (a static description; *view
 * and *seq name the message). */
const char *persist_disk_outbox(struct persist_disk *d, uint16_t who, uint16_t n, const struct wire_limits *lim,
                                const struct pbft_out *o, uint64_t last_executed, uint64_t counts[PERSIST_KINDS],
                                uint64_t *view, uint64_t *seq);

/* The disk's records, in the order they were listed: fn(arg, kind, bytes, len)
 * for each, stopping at the first non-zero return, which is returned
 * (BFTKV_E_NOMEM: the disk could not keep them all). A crashed durable replica
 * is rebuilt from them (pbft_replica_recover_record). */
typedef int (*persist_record_fn)(void *arg, uint16_t kind, const uint8_t *rec, size_t len);
int persist_disk_replay(const struct persist_disk *d, persist_record_fn fn, void *arg);
uint64_t persist_disk_records(const struct persist_disk *d);

/* A crash during a write (docs/design.md §5.6.2: a crash leaves at most one torn
 * write at the end): the disk ends with a torn record, the header of a record
 * and half of its payload (the last record's kind, length and bytes stand for
 * the record being written), its messages never sent. A replay stops before it
 * and the next append writes over it, as the write-ahead log cuts a torn tail
 * (server/wal.h); with accept set (PBFT_BUG_RECOVER_TORN, tests only) the
 * replay takes it as whole, the missing bytes read as zeros, and it stays. */
void persist_disk_tear(struct persist_disk *d);
void persist_disk_accept_torn(struct persist_disk *d, bool accept);

/* The snapshot a durable replica's runtime writes for a CHECKPOINT record rec it
 * persisted: every chunk pbft_replica_state_chunk hands out for its seq, taken at
 * once (the disk keeps the two newest). 0 (also when rec names no newer seq), or
 * the chunk call's error. */
int persist_disk_snapshot(struct persist_disk *d, const struct pbft_replica *r, uint16_t n, const uint8_t *rec,
                          size_t len);
uint64_t persist_disk_snapshot_seq(const struct persist_disk *d); /* the newest (0: none) */
/* Start a recovery from the newest snapshot (pbft_replica_recover_snapshot and
 * its chunks, then _end): 0, BFTKV_E_NOT_FOUND without one, or the engine's error. */
int persist_disk_snapshot_restore(const struct persist_disk *d, struct pbft_replica *r);

#endif
