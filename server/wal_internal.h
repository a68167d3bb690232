/* The write-ahead log's state, shared by its two files: server/wal.c (on-disk
 * layout, recovery, segments) and server/wal_commit.c (the group commit through
 * io_uring, pipelined). Nothing outside server/wal*.c includes it.
 */
#ifndef BFTKV_SERVER_WAL_INTERNAL_H
#define BFTKV_SERVER_WAL_INTERNAL_H

#include <liburing.h>
#include <limits.h>

#include "server/wal.h"

#define WAL_ALIGN_DIRECT 4096u
/* Each commit in flight (at most WAL_INFLIGHT_MAX, wal.h) holds one commit
 * buffer, and one more takes the appends meanwhile. */
#define WAL_BUFFERS (WAL_INFLIGHT_MAX + 1u)
/* Two SQEs (write, fdatasync) per commit in flight, and room to spare. */
#define WAL_RING_ENTRIES 16u
_Static_assert(WAL_RING_ENTRIES >= 2u * WAL_INFLIGHT_MAX, "every commit in flight has its write and its sync");

/* One commit submitted to the ring and not yet reaped in order. */
struct wal_commit_slot {
    uint64_t id;
    uint64_t end_lsn;   /* the last lsn it carries (the log's last at submission) */
    const uint8_t *p;   /* what is still to be written ... */
    size_t left;        /* ... and how much (a short write is finished by a new SQE) */
    uint64_t off;       /* file offset of p */
    int buf;            /* the commit buffer it writes from; -1: a sync alone */
    bool sync;          /* an fdatasync linked after the write */
    bool synced;
    unsigned pending;   /* its SQEs still in the ring */
};

struct wal {
    char dir[PATH_MAX];
    int dirfd;
    bool direct;
    size_t align;         /* 1 buffered, 4096 direct */
    size_t cap;           /* bytes of one commit buffer */
    uint64_t seg_bytes;
    struct io_uring ring;
    bool ring_ok;
    int fd;               /* the current segment */
    uint64_t seg_first;   /* its first lsn */
    uint64_t file_off;    /* file offset of buf[0] (aligned in direct mode) */
    uint8_t *bufs[WAL_BUFFERS]; /* commit buffers: cap + one block each */
    unsigned cur;         /* bufs[cur] takes the appends */
    uint8_t *buf;         /* = bufs[cur] */
    size_t head;          /* buf[0, head) is already on disk (direct mode's partial block) */
    size_t len;           /* buf[0, len) is what the next commit writes */
    uint64_t next_lsn;
    uint64_t durable_lsn;   /* the end of the completed commits that synced, in order */
    uint64_t committed_lsn; /* the end of the completed commits, in order */
    /* Commits in flight, oldest first: slots[(first + i) % WAL_INFLIGHT_MAX]. */
    struct wal_commit_slot slots[WAL_INFLIGHT_MAX];
    unsigned first, nslots, inflight_max;
    uint64_t next_id;       /* of the next commit submitted (1, 2, ...) */
    uint64_t *segs;       /* first lsn of every segment on disk, ascending */
    size_t nsegs;
    int failed;
    char errmsg[512];
    struct wal_stats st;
};

/* The failed state (wal.h "Faults"): the first failure sticks. Returns its code. */
int wal_fail(struct wal *w, int code, const char *what, int err);
int wal_code_of(int err); /* an errno as BFTKV_E_FULL or BFTKV_E_IO */
/* Writes what was appended (a segment header included) and syncs it, waiting:
 * the path of segment creation. Nothing may be in flight. */
int wal_flush_sync(struct wal *w);
/* Waits for every commit in flight. 0, or the failed state's code. */
int wal_drain(struct wal *w);

#endif /* BFTKV_SERVER_WAL_INTERNAL_H */
