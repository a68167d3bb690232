/* The write-ahead log of a durable replica (docs/design.md §9): records the
 * engine asks to persist, appended in memory during one loop iteration and made
 * durable together by one commit (one write and, in sync mode, one fdatasync, both
 * through io_uring: a linked write → fdatasync pair), before the iteration's
 * messages are sent ("persist, then send, then apply").
 *
 * Pipelined commits (docs/design.md §5.6.2): wal_commit_submit hands a commit to
 * the ring and returns at once; appends go on into another buffer for the next
 * commit; wal_commit_reap takes the completions. A commit is complete when its own
 * write finished and, if it syncs, its own fdatasync (linked after that write, so
 * started only once the write was in the page cache) succeeded. Completions may
 * arrive in any order, but committed_lsn and durable_lsn advance only over the
 * longest prefix of complete commits, in submission order: a later commit's
 * fdatasync is never taken to cover an earlier commit whose write may not have
 * finished when that sync started. A sync commit waits for every earlier commit
 * that does not sync (mixing modes in flight would break that rule).
 *
 * On disk: segment files DIR/wal-<first lsn, 16 hex digits>.log, each a 64-byte
 * header (magic, version, first lsn) followed by records. A record is a 32-byte
 * header (payload length, type, lsn, BLAKE2b-128 over the header's first 16 bytes
 * and the payload) and the payload padded to 8 bytes. Record sequence numbers
 * (lsn) run 1, 2, 3... without gaps across segments.
 *
 * Recovery (wal_open) reads every segment in order and hands each valid record to
 * the caller. The log ends at the first record that is not whole and valid:
 *   - a torn tail (the record runs past the end of the file, or everything from it
 *     to the end of the last segment is zero or garbage that no valid record
 *     follows) is cut: appends continue at that offset;
 *   - anything else (a bad record followed by a valid one, a gap in the lsns, a bad
 *     segment header) is corruption: wal_open reports BFTKV_E_CORRUPT with the file
 *     and offset; the caller must not trust the log past it.
 *
 * Faults: a failed write or sync puts the log in a failed state that every later
 * call reports (the kernel may have dropped the dirty pages: retrying fsync and
 * going on would acknowledge what is not on disk). A full disk is BFTKV_E_FULL;
 * anything else BFTKV_E_IO. wal_error() has the message.
 *
 * Ownership: the log owns its buffer and its ring; wal_append copies the payload.
 * One thread uses a log at a time.
 */
#ifndef BFTKV_SERVER_WAL_H
#define BFTKV_SERVER_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_RECORD_HEADER 32u
#define WAL_SEGMENT_HEADER 64u
#define WAL_PAYLOAD_MAX (16u << 20) /* one record; a checkpoint's certificate or a batch fits */

struct wal;

struct wal_options {
    const char *dir;        /* must exist; the log's files are created in it */
    bool direct;            /* O_DIRECT (4 KiB-aligned writes) instead of buffered writes */
    size_t buffer_bytes;    /* what one commit can hold (appends past it: BFTKV_E_FULL); 0 = 8 MiB */
    uint64_t segment_bytes; /* start a new segment once one is this long; 0 = 64 MiB */
    unsigned inflight;      /* commits in flight at once, 1..WAL_INFLIGHT_MAX; 0 = default; O_DIRECT: 1 */
};

#define WAL_INFLIGHT_DEFAULT 2u
#define WAL_INFLIGHT_MAX 4u

/* One recovered record; return 0 to go on, anything else stops recovery with that code. */
typedef int (*wal_replay_fn)(void *arg, uint64_t lsn, uint16_t type, const uint8_t *payload, uint32_t len);

struct wal_recovery {
    uint64_t records;        /* handed to the callback */
    uint64_t last_lsn;       /* of the last valid record (0: none) */
    uint64_t segments;       /* files read */
    uint64_t torn_bytes;     /* cut from the tail */
    bool torn;               /* a torn tail was cut */
};

struct wal_stats {
    uint64_t records;    /* appended since open */
    uint64_t bytes;      /* written to the files since open (padding included) */
    uint64_t commits;    /* wal_commit calls that wrote something */
    uint64_t syncs;      /* fdatasync calls */
    uint64_t segments;   /* segments created since open */
    uint64_t removed;    /* segments removed by wal_drop_before */
    uint64_t slot_waits; /* wal_commit_submit calls that waited for the oldest commit (all slots in flight) */
};

/* Opens (creating when empty) the log in opt->dir, handing every recovered record
 * to fn (may be NULL). 0, or BFTKV_E_CORRUPT / BFTKV_E_IO / BFTKV_E_NOMEM /
 * BFTKV_E_UNSUPPORTED (no io_uring) with a message in err. */
int wal_open(struct wal **out, const struct wal_options *opt, wal_replay_fn fn, void *arg,
             struct wal_recovery *rec, char *err, size_t errlen);
void wal_close(struct wal *w);

/* Queues a record for the next commit; returns its lsn (> 0), or BFTKV_E_FULL when
 * the buffer cannot hold it (commit first), BFTKV_E_RANGE when len exceeds
 * WAL_PAYLOAD_MAX, or the failed state's code. */
int64_t wal_append(struct wal *w, uint16_t type, const void *payload, uint32_t len);

/* Writes everything appended since the last commit in one write, then (sync) one
 * fdatasync, and waits for both (and for every commit in flight before it). 0 once
 * durable (sync) or handed to the kernel (!sync). On failure the log is failed
 * for good. */
int wal_commit(struct wal *w, bool sync);

/* Submits everything appended since the last submission as one commit (write,
 * then a linked fdatasync when sync) and returns without waiting: its id (> 0,
 * increasing), 0 when there was nothing to commit, or the failed state's
 * code. With every slot in flight it first waits for the oldest (counted:
 * slot_waits). The commit buffer is the log's until the commit completes; appends
 * go on into another. A segment that has grown past segment_bytes is closed
 * here, after every commit in flight completed (rare, and waits). */
int64_t wal_commit_submit(struct wal *w, bool sync);

/* Takes the ring's completions: timeout_us 0 only looks, > 0 waits up to that
 * long for one completion, < 0 waits until the oldest commit in flight (if any)
 * completed. Advances committed_lsn / durable_lsn over the completed prefix. 0,
 * or the failed state's code (a failed write or sync: never retried). */
int wal_commit_reap(struct wal *w, int64_t timeout_us);

/* Starts a new segment at the next lsn (after a commit; e.g. at a stable
 * checkpoint), so that the segments before it can be dropped later. */
int wal_segment_start(struct wal *w);

/* Removes every segment all of whose records have lsn < lsn (never the current one). */
int wal_drop_before(struct wal *w, uint64_t lsn);

uint64_t wal_last_lsn(const struct wal *w); /* the last lsn appended (committed or not) */
uint64_t wal_durable_lsn(const struct wal *w); /* the last lsn a commit made durable (synced) */
uint64_t wal_committed_lsn(const struct wal *w); /* the last lsn of the completed commits (written; synced if asked) */
unsigned wal_commits_in_flight(const struct wal *w);
int wal_failed(const struct wal *w);        /* 0, or the code of the failure */
const char *wal_error(const struct wal *w); /* the last failure's message ("" if none) */
void wal_stats_get(const struct wal *w, struct wal_stats *out);

#endif /* BFTKV_SERVER_WAL_H */
