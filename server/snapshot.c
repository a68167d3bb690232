/* Snapshot files and the cutting of the write-ahead log (server/snapshot.h,
 * docs/design.md §5.6.2): the writer thread, the protocol thread's side of a
 * snapshot (a bounded number of chunks per loop iteration), the log's segments
 * started after CHECKPOINT records and dropped below the older kept snapshot.
 *
 * Why a thread and not io_uring: the file is written sequentially in 1 MiB
 * pieces and ends with fsync, rename and a directory fsync, which io_uring
 * would also have to chain and wait for; a thread with a four-buffer queue
 * keeps every system call of the file off the protocol thread, and the
 * protocol thread's share (encoding chunks into a buffer) is counted in
 * step_ns (docs/benchmarks.md has the numbers).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "common/log.h"
#include "engine/wire_le.h"
#include "server/server_internal.h"
#include "server/snapshot_internal.h"

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

/* ---- The writer thread ------------------------------------------------------------ */

struct snap_writer {
    int fd;
    uint64_t seq;
    int err;
    uint64_t bytes;
    crypto_generichash_state h;
};

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return errno;
        if (k == 0)
            return EIO;
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static void writer_drop(struct server_snap *sn, struct snap_writer *w)
{
    if (w->fd < 0)
        return;
    close(w->fd);
    w->fd = -1;
    char name[64];
    snap_file_name(name, sizeof name, w->seq, "tmp");
    unlinkat(sn->dirfd, name, 0);
}

/* The trailer, then the file and its name made durable. */
static int writer_finish(struct server_snap *sn, struct snap_writer *w, uint64_t chunks)
{
    uint8_t t[SNAP_TRAILER_BYTES];
    memcpy(t, SNAP_TRAILER_MAGIC, 8);
    le64_store(t + 8, chunks);
    le64_store(t + 16, w->bytes);
    crypto_generichash_update(&w->h, t, 24);
    crypto_generichash_final(&w->h, t + 24, SNAP_HASH_BYTES);
    int err = write_all(w->fd, t, sizeof t);
    if (err == 0 && fsync(w->fd) != 0)
        err = errno;
    if (err != 0)
        return err;
    close(w->fd);
    w->fd = -1;
    char tmp[64], fin[64];
    snap_file_name(tmp, sizeof tmp, w->seq, "tmp");
    snap_file_name(fin, sizeof fin, w->seq, "bin");
    if (renameat(sn->dirfd, tmp, sn->dirfd, fin) != 0 || fsync(sn->dirfd) != 0)
        return errno;
    w->bytes += sizeof t;
    snap_prune(sn->dirfd, 0);
    return 0;
}

static void writer_result(struct server_snap *sn, uint64_t seq, int err, uint64_t bytes)
{
    pthread_mutex_lock(&sn->mu);
    sn->res_seq = seq;
    sn->res_err = err;
    sn->res_bytes = bytes;
    sn->res_gen++;
    pthread_mutex_unlock(&sn->mu);
}

static void writer_take(struct server_snap *sn, struct snap_writer *w, const struct snap_buf *b)
{
    if (b->flags & SNAP_BUF_BEGIN) {
        writer_drop(sn, w);
        char name[64];
        snap_file_name(name, sizeof name, b->seq, "tmp");
        w->seq = b->seq;
        w->bytes = 0;
        w->err = 0;
        w->fd = openat(sn->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w->fd < 0)
            w->err = errno;
        crypto_generichash_init(&w->h, NULL, 0, SNAP_HASH_BYTES);
    }
    if (b->seq != w->seq)
        return; /* the rest of a job whose start was not seen */
    if (b->flags & SNAP_BUF_ABORT) {
        writer_drop(sn, w);
        w->err = ECANCELED;
        return;
    }
    if (w->fd >= 0 && w->err == 0 && b->len > 0) {
        crypto_generichash_update(&w->h, b->p, b->len);
        w->err = write_all(w->fd, b->p, b->len);
        w->bytes += b->len;
    }
    if (b->flags & SNAP_BUF_END) {
        if (w->err == 0 && w->fd >= 0)
            w->err = writer_finish(sn, w, b->chunks);
        int err = w->err != 0 ? w->err : (w->fd >= 0 ? EIO : 0);
        if (err != 0)
            writer_drop(sn, w);
        writer_result(sn, w->seq, err, w->bytes);
        w->seq = 0;
    }
}

static void *writer_main(void *arg)
{
    struct server_snap *sn = arg;
    struct snap_writer w = {.fd = -1};
    pthread_mutex_lock(&sn->mu);
    for (;;) {
        while (sn->qlen == 0 && !sn->stop)
            pthread_cond_wait(&sn->cv, &sn->mu);
        if (sn->qlen == 0)
            break;
        uint32_t idx = sn->queue[sn->qhead];
        sn->qhead = (sn->qhead + 1u) % SNAP_BUFS;
        sn->qlen--;
        pthread_mutex_unlock(&sn->mu);
        writer_take(sn, &w, &sn->bufs[idx]);
        pthread_mutex_lock(&sn->mu);
        sn->free_idx[sn->nfree++] = idx;
    }
    pthread_mutex_unlock(&sn->mu);
    writer_drop(sn, &w);
    return NULL;
}

/* ---- Buffers (protocol thread) ----------------------------------------------------- */

static int buf_get(struct server_snap *sn)
{
    pthread_mutex_lock(&sn->mu);
    int idx = sn->nfree > 0 ? (int)sn->free_idx[--sn->nfree] : -1;
    pthread_mutex_unlock(&sn->mu);
    if (idx >= 0) {
        sn->bufs[idx].len = 0;
        sn->bufs[idx].flags = 0;
        sn->bufs[idx].seq = sn->seq;
        sn->bufs[idx].chunks = 0;
    }
    return idx;
}

static void buf_put(struct server_snap *sn, int idx)
{
    pthread_mutex_lock(&sn->mu);
    BFTKV_ASSERT(sn->qlen < SNAP_BUFS);
    sn->queue[(sn->qhead + sn->qlen) % SNAP_BUFS] = (uint32_t)idx;
    sn->qlen++;
    pthread_cond_signal(&sn->cv);
    pthread_mutex_unlock(&sn->mu);
}

/* ---- Open, close ----------------------------------------------------------------- */

int server_snap_open(struct server *s, bool keep, char *err, size_t errlen)
{
    struct server_snap *sn = calloc(1, sizeof *sn);
    if (sn == NULL)
        return BFTKV_E_NOMEM;
    sn->dirfd = -1;
    sn->cur = -1;
    sn->holds = -1;
    sn->n = s->n;
    int len = snprintf(sn->dir, sizeof sn->dir, "%s/replica-%u/snap", s->cfg->data_dir, s->id);
    if (len < 0 || (size_t)len >= sizeof sn->dir) {
        free(sn);
        errbuf_put(err, errlen, "data_dir path too long for the snapshots");
        return BFTKV_E_CONFIG;
    }
    if (mkdir(sn->dir, 0700) != 0 && errno != EEXIST) {
        errbuf_put(err, errlen, "cannot create %s: %s", sn->dir, strerror(errno));
        free(sn);
        return BFTKV_E_IO;
    }
    sn->dirfd = open(sn->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sn->dirfd < 0) {
        errbuf_put(err, errlen, "cannot open %s: %s", sn->dir, strerror(errno));
        free(sn);
        return BFTKV_E_IO;
    }
    s->snap = sn;
    if (!keep) {
        int rc = server_snap_forget(s->cfg->data_dir, s->id, err, errlen);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; i < SNAP_BUFS; i++) {
        sn->bufs[i].p = malloc(SNAP_BUF_BYTES);
        if (sn->bufs[i].p == NULL)
            return BFTKV_E_NOMEM;
        sn->free_idx[sn->nfree++] = i;
    }
    sn->iv[0].first_lsn = 1;
    sn->niv = 1;
    pthread_mutex_init(&sn->mu, NULL);
    pthread_cond_init(&sn->cv, NULL);
    if (pthread_create(&sn->thread, NULL, writer_main, sn) != 0) {
        errbuf_put(err, errlen, "cannot start the snapshot writer thread");
        return BFTKV_E_IO;
    }
    pthread_setname_np(sn->thread, "bftkv-snap");
    sn->thread_ok = true;
    return 0;
}

void server_snap_close(struct server *s)
{
    struct server_snap *sn = s->snap;
    if (sn == NULL)
        return;
    if (sn->thread_ok) {
        if (sn->active) {
            /* An unfinished file goes; the writer ends after the queue. */
            int idx = sn->cur >= 0 ? sn->cur : buf_get(sn);
            if (idx >= 0) {
                sn->bufs[idx].flags |= SNAP_BUF_ABORT;
                buf_put(sn, idx);
            }
        }
        pthread_mutex_lock(&sn->mu);
        sn->stop = true;
        pthread_cond_signal(&sn->cv);
        pthread_mutex_unlock(&sn->mu);
        pthread_join(sn->thread, NULL);
        pthread_mutex_destroy(&sn->mu);
        pthread_cond_destroy(&sn->cv);
    }
    for (uint32_t i = 0; i < SNAP_BUFS; i++)
        free(sn->bufs[i].p);
    if (sn->dirfd >= 0)
        close(sn->dirfd);
    free(sn->ckpt);
    free(sn->vc);
    free(sn->nv);
    free(sn);
    s->snap = NULL;
}

void server_snap_stats_get(const struct server *s, struct server_snap_stats *out)
{
    *out = s->snap->st;
    out->in_progress_seq = s->snap->active ? s->snap->seq : 0;
}

/* ---- What the log holds ------------------------------------------------------------ */

/* A copy of a record kept in memory (grown as needed; rare: checkpoints, views). */
static bool keep_copy(uint8_t **p, uint32_t *cap, uint32_t *lenp, const uint8_t *bytes, uint32_t len)
{
    if (*p == bytes)
        return true; /* appended again from the copy itself */
    if (len > *cap) {
        uint8_t *q = realloc(*p, len);
        if (q == NULL)
            return false;
        *p = q;
        *cap = len;
    }
    memcpy(*p, bytes, len);
    *lenp = len;
    return true;
}

/* The seq a record names (docs/design.md §5.6.2): 0 for none. */
static uint64_t record_seq(uint16_t type, const uint8_t *b, uint32_t len)
{
    switch (type) {
    case PBFT_PERSIST_PREPREPARE:
    case PBFT_PERSIST_NEW_VIEW:
        return len >= WIRE_HEADER_SIZE ? le64_load(b + 16) : 0;
    case PBFT_PERSIST_PREPARED:
        return len >= 16 ? le64_load(b + 8) : 0;
    case PBFT_PERSIST_COMMITTED:
    case PBFT_PERSIST_CHECKPOINT:
        return len >= 8 ? le64_load(b) : 0;
    default:
        return 0;
    }
}

static void ival_start(struct server_snap *sn, uint64_t lsn)
{
    struct snap_ival *last = &sn->iv[sn->niv - 1];
    if (last->first_lsn == lsn)
        return;
    if (sn->niv == SNAP_IVALS_MAX)
        return; /* one longer stretch: cut later */
    sn->iv[sn->niv++] = (struct snap_ival){.first_lsn = lsn};
}

void server_snap_record(struct server *s, uint64_t lsn, uint16_t type, const uint8_t *bytes, uint32_t len,
                        bool replayed)
{
    struct server_snap *sn = s->snap;
    if (sn == NULL)
        return;
    if (replayed && sn->niv == 1 && sn->iv[0].max_seq == 0 && !sn->iv[0].open_request)
        sn->iv[0].first_lsn = lsn; /* the log may start above 1 (cut) */
    struct snap_ival *iv = &sn->iv[sn->niv - 1];
    uint64_t seq = record_seq(type, bytes, len);
    if (seq > iv->max_seq)
        iv->max_seq = seq;
    if (type == PBFT_PERSIST_REQUEST)
        iv->open_request = true;
    else if (type == PBFT_PERSIST_PREPREPARE)
        iv->open_request = false;
    if (type == PBFT_PERSIST_VIEW_CHANGE && keep_copy(&sn->vc, &sn->vc_cap, &sn->vc_len, bytes, len))
        sn->vc_lsn = lsn;
    if (type == PBFT_PERSIST_NEW_VIEW && keep_copy(&sn->nv, &sn->nv_cap, &sn->nv_len, bytes, len))
        sn->nv_lsn = lsn;
    if (type == PBFT_PERSIST_HOLDS_STATE && len == 1) {
        sn->holds = bytes[0];
        sn->holds_lsn = lsn;
    }
    if (type != PBFT_PERSIST_CHECKPOINT)
        return;
    if (replayed)
        ival_start(sn, lsn + 1u); /* a stretch boundary; the segments are what they are */
    uint64_t cs = pbft_persist_checkpoint_seq(sn->n, bytes, len);
    if (cs == 0 || cs <= sn->ckpt_seq || !keep_copy(&sn->ckpt, &sn->ckpt_cap, &sn->ckpt_len, bytes, len))
        return;
    sn->ckpt_seq = cs;
}

/* ---- The snapshot being written (protocol thread) ------------------------------------ */

static bool job_start(struct server *s)
{
    struct server_snap *sn = s->snap;
    BFTKV_ASSERT(!sn->active);
    size_t need = SNAP_HEADER_BYTES + pad8(sn->ckpt_len);
    if (need > SNAP_BUF_BYTES)
        return false;
    sn->seq = sn->ckpt_seq;
    int idx = buf_get(sn);
    if (idx < 0)
        return false;
    uint8_t *h = sn->bufs[idx].p;
    memset(h, 0, need);
    memcpy(h, SNAP_MAGIC, 8);
    le32_store(h + 8, SNAP_VERSION);
    le64_store(h + 16, sn->seq);
    le16_store(h + 24, s->cfg->group);
    le16_store(h + 26, s->id);
    le16_store(h + 28, s->n);
    le32_store(h + 32, sn->ckpt_len);
    memcpy(h + SNAP_HEADER_BYTES, sn->ckpt, sn->ckpt_len);
    sn->bufs[idx].len = (uint32_t)need;
    sn->bufs[idx].flags = SNAP_BUF_BEGIN;
    sn->cur = idx;
    sn->active = true;
    sn->finishing = false;
    sn->pos = (struct wire_state_pos){.part = WIRE_PART_STORE};
    sn->chunks = 0;
    sn->t0_ns = server_now_ns();
    sn->started_seq = sn->seq;
    struct wal_stats ws;
    wal_stats_get(s->wal, &ws);
    sn->log_at_start = ws.bytes;
    sn->xfers_at_start = pbft_replica_stats(s->replica)->state_transfers;
    return true;
}

static void job_abandon(struct server_snap *sn)
{
    int idx = sn->cur >= 0 ? sn->cur : buf_get(sn);
    if (idx >= 0) {
        sn->bufs[idx].flags |= SNAP_BUF_ABORT;
        buf_put(sn, idx);
    }
    sn->cur = -1;
    sn->active = false;
    sn->st.abandoned++;
}

/* Up to SNAP_CHUNKS_PER_STEP chunks into the writer's buffers; false when
 * the writer's queue is full (call again soon). */
static bool job_advance(struct server *s)
{
    struct server_snap *sn = s->snap;
    for (uint32_t k = 0; k < SNAP_CHUNKS_PER_STEP && sn->active && !sn->finishing; k++) {
        if (sn->cur >= 0 && sn->bufs[sn->cur].len + SNAP_CHUNK_HEADER_BYTES + WIRE_STATE_DATA_MAX + 8u >
                                SNAP_BUF_BYTES) {
            buf_put(sn, sn->cur);
            sn->cur = -1;
        }
        if (sn->cur < 0 && (sn->cur = buf_get(sn)) < 0)
            return false;
        struct snap_buf *b = &sn->bufs[sn->cur];
        uint8_t *h = b->p + b->len;
        struct wire_state st;
        int rc = pbft_replica_state_chunk(s->replica, sn->seq, &sn->pos, h + SNAP_CHUNK_HEADER_BYTES, &st);
        if (rc == BFTKV_E_NOT_FOUND) {
            log_info("snapshot of checkpoint %" PRIu64 " abandoned: a newer stable checkpoint released its state",
                     sn->seq);
            job_abandon(sn);
            return true;
        }
        BFTKV_ASSERT(rc == 0); /* the positions are the engine's own */
        BFTKV_ASSERT(st.data_len <= WIRE_STATE_DATA_MAX);
        memset(h, 0, SNAP_CHUNK_HEADER_BYTES);
        h[0] = st.from.part;
        h[1] = st.flags;
        le32_store(h + 4, st.shards);
        le32_store(h + 8, st.from.shard);
        le32_store(h + 12, st.data_len);
        le64_store(h + 16, st.from.cursor);
        memset(h + SNAP_CHUNK_HEADER_BYTES + st.data_len, 0, pad8(st.data_len) - st.data_len);
        b->len += SNAP_CHUNK_HEADER_BYTES + (uint32_t)pad8(st.data_len);
        sn->chunks++;
        sn->st.chunks++;
        sn->pos = st.next;
        if (st.next.part == WIRE_PART_END) {
            b->flags |= SNAP_BUF_END;
            b->chunks = sn->chunks;
            buf_put(sn, sn->cur);
            sn->cur = -1;
            sn->finishing = true;
        }
    }
    return true;
}

/* ---- Cutting the log ---------------------------------------------------------------- */

/* The newest views go into the log again above the cut, so that the view
 * number a recovery rebuilds never goes back (engine/recover.c, view_seen);
 * and so does the newest HOLDS_STATE record, so that a replica that restarted
 * empty and was not vouched for yet stays unsure through a recovery. */
static void cut_views_again(struct server *s, uint64_t below)
{
    struct server_snap *sn = s->snap;
    if (sn->holds >= 0 && sn->holds_lsn < below) {
        uint8_t b = (uint8_t)sn->holds;
        server_wal_append(s, PBFT_PERSIST_HOLDS_STATE, &b, 1);
        sn->st.records_again++;
    }
    if (sn->vc_len > 0 && sn->vc_lsn < below) {
        server_wal_append(s, PBFT_PERSIST_VIEW_CHANGE, sn->vc, sn->vc_len);
        sn->st.records_again++;
    }
    if (sn->nv_len > 0 && sn->nv_lsn < below) {
        server_wal_append(s, PBFT_PERSIST_NEW_VIEW, sn->nv, sn->nv_len);
        sn->st.records_again++;
    }
}

/* Drops the stretches of the log whose records all name seqs <= seq. */
static void cut_below(struct server *s, uint64_t seq)
{
    struct server_snap *sn = s->snap;
    uint32_t k = 0;
    while (k + 1 < sn->niv && sn->iv[k].max_seq <= seq && !sn->iv[k].open_request)
        k++;
    if (k == 0)
        return;
    uint64_t below = sn->iv[k].first_lsn;
    cut_views_again(s, below);
    /* The copies durable (a sync even under async: the segments' removal is
     * made durable by a directory sync) before anything is removed. */
    if (server_wal_commit(s, true) != 0)
        return;
    int rc = wal_commit(s->wal, true);
    if (rc != 0) {
        server_wal_fail(s, "sync before a cut", rc);
        return;
    }
    struct wal_stats before, after;
    wal_stats_get(s->wal, &before);
    rc = wal_drop_before(s->wal, below);
    if (rc != 0) {
        server_wal_fail(s, "cut below a snapshot", rc);
        return;
    }
    wal_stats_get(s->wal, &after);
    memmove(sn->iv, sn->iv + k, (sn->niv - k) * sizeof sn->iv[0]);
    sn->niv -= k;
    if (after.removed > before.removed) {
        sn->st.log_cuts++;
        log_debug("log cut below lsn %" PRIu64 " (snapshot %" PRIu64 "): %" PRIu64 " segment(s) removed", below, seq,
                  after.removed - before.removed);
    }
}

/* A segment starts here (a snapshot is about to start), after a commit of
 * everything appended. */
static void boundary(struct server *s)
{
    struct server_snap *sn = s->snap;
    if (sn->niv == SNAP_IVALS_MAX || server_wal_commit(s, true) != 0)
        return;
    int rc = wal_segment_start(s->wal);
    if (rc != 0) {
        server_wal_fail(s, "start of a segment", rc);
        return;
    }
    ival_start(sn, wal_last_lsn(s->wal) + 1u);
}

static void job_result(struct server *s)
{
    struct server_snap *sn = s->snap;
    pthread_mutex_lock(&sn->mu);
    uint64_t gen = sn->res_gen, seq = sn->res_seq, bytes = sn->res_bytes;
    int err = sn->res_err;
    pthread_mutex_unlock(&sn->mu);
    if (gen == sn->seen_gen)
        return;
    sn->seen_gen = gen;
    if (!sn->active || !sn->finishing || seq != sn->seq)
        return;
    sn->active = false;
    sn->finishing = false;
    if (err != 0) {
        sn->st.failures++;
        uint64_t now = server_now_ns();
        if (now >= sn->warn_ns) {
            log_warn("snapshot of checkpoint %" PRIu64 " not written to %s: %s (%" PRIu64 " failed so far); the "
                     "log is not cut until one is",
                     seq, sn->dir, strerror(err), sn->st.failures);
            sn->warn_ns = now + SERVER_LOG_INTERVAL_NS;
        }
        return;
    }
    uint64_t dt = server_now_ns() - sn->t0_ns;
    sn->st.written++;
    sn->st.bytes += bytes;
    sn->st.last_seq = seq;
    sn->st.last_bytes = bytes;
    sn->st.last_duration_ns = dt;
    sn->kept_bytes = bytes;
    sn->kept[0] = sn->kept[1];
    sn->kept[1] = seq;
    log_debug("snapshot of checkpoint %" PRIu64 " written: %" PRIu64 " bytes, %" PRIu64 " chunks, %.1f ms", seq,
              bytes, sn->chunks, (double)dt / 1e6);
    if (sn->kept[0] != 0)
        cut_below(s, sn->kept[0]);
}

/* Start one now? Once the log grew by the newest snapshot's size (at least
 * the config's snapshot_log_bytes) since the last one started -- or at once
 * when a state transfer installed a state since then. That state is in no
 * record: until a snapshot holds it, a crash rebuilds the replica only as
 * unsure (engine/recover.c, its gap), and after a whole-group crash q replicas
 * unsure would leave the group refusing for good (integ_durability_crash_load
 * --staged found it with the 16 MiB floor: three backups that had fetched
 * state under load came back unsure, and the group never served again). */
bool snap_due(const struct snap_due_in *in)
{
    if (in->active || in->ckpt_seq <= in->started_seq || in->ckpt_seq <= in->newest_kept)
        return false;
    if (in->newest_kept == 0 || in->transfers_now != in->transfers_at_start)
        return true;
    uint64_t want = in->newest_bytes > in->log_bytes_min ? in->newest_bytes : in->log_bytes_min;
    return in->log_bytes_now - in->log_at_start >= want;
}

static bool job_due(struct server *s)
{
    struct server_snap *sn = s->snap;
    struct wal_stats ws;
    wal_stats_get(s->wal, &ws);
    struct snap_due_in in = {
        .active = sn->active,
        .ckpt_seq = sn->ckpt_seq,
        .started_seq = sn->started_seq,
        .newest_kept = sn->kept[1],
        .newest_bytes = sn->kept_bytes,
        .transfers_now = pbft_replica_stats(s->replica)->state_transfers,
        .transfers_at_start = sn->xfers_at_start,
        .log_bytes_now = ws.bytes,
        .log_at_start = sn->log_at_start,
        .log_bytes_min = s->cfg->snapshot_log_bytes,
    };
    return snap_due(&in);
}

int server_snap_step(struct server *s)
{
    struct server_snap *sn = s->snap;
    if (sn == NULL || s->wal_failed != 0)
        return INT32_MAX;
    uint64_t t0 = server_now_ns();
    job_result(s);
    /* A segment starts where a snapshot starts (job_due: the log grew enough
     * since the last one), so a later cut drops whole segments; between
     * snapshots the segments just fill up (wal.c rolls them when full). */
    bool due = job_due(s);
    if (due)
        boundary(s);
    uint64_t t1 = server_now_ns();
    sn->st.log_ns += t1 - t0;
    if (due && s->wal_failed == 0)
        job_start(s);
    bool room = true;
    if (sn->active && !sn->finishing) {
        uint64_t before = sn->st.abandoned;
        room = job_advance(s);
        if (sn->st.abandoned != before && sn->ckpt_seq > sn->seq)
            job_start(s); /* on to the newest stable checkpoint */
    }
    sn->st.step_ns += server_now_ns() - t1;
    if (!sn->active || sn->finishing)
        return sn->finishing ? 5 : INT32_MAX;
    return room ? 0 : 1;
}
