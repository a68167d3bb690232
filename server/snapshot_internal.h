/* Internals of the snapshot files (server/snapshot.h), shared by
 * server/snapshot.c (writing, cutting the log) and server/snapshot_load.c
 * (start-up, file names).
 */
#ifndef BFTKV_SERVER_SNAPSHOT_INTERNAL_H
#define BFTKV_SERVER_SNAPSHOT_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/wire.h"
#include "server/snapshot.h"

/* The writer's buffers: one holds a header with its CHECKPOINT record, or at
 * least one whole chunk; SNAP_BUFS of them bound what waits for the disk. */
#define SNAP_BUF_BYTES (1u << 20)
#define SNAP_BUFS 4u
_Static_assert(SNAP_BUF_BYTES >= SNAP_CHUNK_HEADER_BYTES + WIRE_STATE_DATA_MAX + 8u, "a buffer holds a chunk");
/* Chunks the protocol thread encodes per loop iteration (each at most
 * WIRE_STATE_DATA_MAX bytes): the bound on what a snapshot adds to one iteration. */
#define SNAP_CHUNKS_PER_STEP 4u
/* The stretches of the log between CHECKPOINT records that are tracked; past
 * it no new segment is started until a cut frees some. */
#define SNAP_IVALS_MAX 1024u
#define SNAP_KEEP 2u

enum snap_buf_flag {
    SNAP_BUF_BEGIN = 1u, /* opens the job's temporary file */
    SNAP_BUF_END = 2u,   /* the last: trailer, sync, rename */
    SNAP_BUF_ABORT = 4u, /* the job is abandoned: its temporary file goes */
};

struct snap_buf {
    uint8_t *p;
    uint32_t len;
    uint32_t flags;
    uint64_t seq;
    uint64_t chunks; /* END: the job's chunk count */
};

/* A stretch of the log from first_lsn up to the next one's: the highest seq
 * its records name, and whether a REQUEST in it waits for its PRE-PREPARE. */
struct snap_ival {
    uint64_t first_lsn;
    uint64_t max_seq;
    bool open_request;
};

struct server_snap {
    char dir[PATH_MAX];
    int dirfd;
    uint16_t n;

    /* The writer thread and its queue (mu guards everything in this block). */
    pthread_t thread;
    bool thread_ok;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct snap_buf bufs[SNAP_BUFS];
    uint32_t free_idx[SNAP_BUFS], nfree;
    uint32_t queue[SNAP_BUFS], qhead, qlen;
    bool stop;
    uint64_t res_gen;  /* bumped at each finished or failed job */
    uint64_t res_seq;
    int res_err;       /* 0: renamed and synced; else errno */
    uint64_t res_bytes;

    /* Protocol thread. */
    uint64_t seen_gen;
    bool active, finishing;
    uint64_t seq;
    struct wire_state_pos pos;
    int cur;           /* buffer being filled, -1: none */
    uint64_t t0_ns;
    uint64_t chunks;
    uint8_t *ckpt;     /* the newest CHECKPOINT record */
    uint32_t ckpt_len, ckpt_cap;
    uint64_t ckpt_seq;
    uint64_t started_seq;   /* the last job's seq */
    uint64_t log_at_start;  /* wal bytes written when the last job started */
    uint64_t xfers_at_start; /* the engine's state_transfers then */
    uint64_t kept[SNAP_KEEP]; /* complete snapshots, ascending (0: none) */
    uint64_t kept_bytes;    /* the newest's size */
    struct snap_ival iv[SNAP_IVALS_MAX];
    uint32_t niv;
    uint8_t *vc, *nv;       /* the newest VIEW_CHANGE and NEW_VIEW records */
    uint32_t vc_len, nv_len, vc_cap, nv_cap;
    uint64_t vc_lsn, nv_lsn;
    int holds;              /* the newest HOLDS_STATE record's byte (-1: none) ... */
    uint64_t holds_lsn;     /* ... and its lsn */
    uint64_t warn_ns;
    struct server_snap_stats st;
};

/* "snapshot-<seq>.<ext>" */
void snap_file_name(char *out, size_t cap, uint64_t seq, const char *ext);
/* The seqs of dir's snapshot-*.<ext> files, descending, at most cap; returns the count. */
size_t snap_list(int dirfd, const char *ext, uint64_t *seqs, size_t cap);
/* Keeps the SNAP_KEEP newest complete files, removes the older ones and any
 * temporary file but keep_tmp's; syncs the directory when it removed one. */
void snap_prune(int dirfd, uint64_t keep_tmp);

/* What decides whether a snapshot job starts now (snapshot.c, job_due): a pure
 * function of these, so the rule has a deterministic test (tests/server). */
struct snap_due_in {
    bool active;                 /* a job runs */
    uint64_t ckpt_seq;           /* the newest stable checkpoint */
    uint64_t started_seq;        /* the checkpoint the last job started from */
    uint64_t newest_kept;        /* the newest complete snapshot's checkpoint (0: none) */
    uint64_t newest_bytes;       /* its size */
    uint64_t transfers_now;      /* the engine's state transfers installed */
    uint64_t transfers_at_start; /* ... when the last job started */
    uint64_t log_bytes_now;      /* the log's bytes written */
    uint64_t log_at_start;       /* ... when the last job started */
    uint64_t log_bytes_min;      /* the config's snapshot_log_bytes */
};

/* Start one now? Never while one runs or for a checkpoint already started or
 * kept; at once when none is kept or a state transfer installed a state since
 * the last start; else once the log grew by the newest snapshot's size, at
 * least log_bytes_min. */
bool snap_due(const struct snap_due_in *in);

#endif /* BFTKV_SERVER_SNAPSHOT_INTERNAL_H */
