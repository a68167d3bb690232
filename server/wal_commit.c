/* The write-ahead log's group commit (server/wal.h; docs/design.md §5.6.2): a
 * commit is one write of the commit buffer and, in sync mode, one fdatasync
 * linked after it, both through io_uring. wal_commit_submit returns once they are
 * in the ring; up to inflight_max commits run at once, each writing from its own
 * buffer while the appends fill another; wal_commit_reap takes their
 * completions and moves committed_lsn (and durable_lsn for syncing commits)
 * over the longest prefix of complete commits, in submission order.
 *
 * Why in order, and why each commit syncs itself: SQEs of different
 * submissions are not ordered by the ring. A write still queued in the kernel's
 * worker when a later commit's fdatasync starts is not covered by that sync, so
 * a completed later sync says nothing about an earlier commit; only the sync
 * linked after a commit's own write does. Completions are therefore taken as
 * they come and applied only once every earlier commit is complete.
 *
 * Faults: a write or sync that fails puts the log in the failed state and its
 * commit never completes, so nothing it (or any later commit) covers is ever
 * reported committed; the sync is not retried. A short write is finished by a
 * new write (the sync linked after it was cancelled) and a new sync.
 */
#include <errno.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "server/wal_internal.h"

#define WAL_UD_WRITE 1u
#define WAL_UD_SYNC 2u

static struct wal_commit_slot *slot_at(struct wal *w, unsigned i)
{
    return &w->slots[(w->first + i) % WAL_INFLIGHT_MAX];
}

/* Puts the slot's remaining write (if any) and its sync (if asked) in the ring. */
static int slot_queue(struct wal *w, struct wal_commit_slot *c)
{
    uint64_t index = (uint64_t)(c - w->slots);
    /* The file is written in order: this commit's write starts only once every
     * earlier commit's write and sync finished (IOSQE_IO_DRAIN). Otherwise a
     * crash -- a killed process whose queued write the kernel cancels, or a
     * power cut after a later commit's sync -- could leave a later commit's
     * records after a hole where an earlier one's never landed, which recovery
     * must call corruption (wal.h). The loop still does not wait: only the disk
     * work is ordered, and the appends meanwhile grow the next commit. */
    bool after_others = w->nslots > 1;
    if (c->left > 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
        BFTKV_ASSERT(sqe != NULL); /* WAL_RING_ENTRIES: two per slot */
        io_uring_prep_write(sqe, w->fd, c->p, (unsigned)c->left, c->off);
        sqe->user_data = index << 8 | WAL_UD_WRITE;
        if (c->sync)
            sqe->flags |= IOSQE_IO_LINK; /* the sync starts after the write finished */
        if (after_others)
            sqe->flags |= IOSQE_IO_DRAIN;
        after_others = false;
        c->pending++;
    }
    if (c->sync) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
        BFTKV_ASSERT(sqe != NULL);
        io_uring_prep_fsync(sqe, w->fd, IORING_FSYNC_DATASYNC);
        sqe->user_data = index << 8 | WAL_UD_SYNC;
        if (after_others)
            sqe->flags |= IOSQE_IO_DRAIN; /* a sync alone: after the earlier commits too */
        c->pending++;
    }
    int rc = io_uring_submit(&w->ring);
    if (rc < 0)
        return wal_fail(w, BFTKV_E_IO, "io_uring submit", -rc);
    return 0;
}

static bool slot_complete(const struct wal_commit_slot *c)
{
    return c->pending == 0 && c->left == 0 && (!c->sync || c->synced);
}

static void cqe_apply(struct wal *w, const struct io_uring_cqe *cqe)
{
    unsigned index = (unsigned)(cqe->user_data >> 8);
    BFTKV_ASSERT(index < WAL_INFLIGHT_MAX);
    struct wal_commit_slot *c = &w->slots[index];
    BFTKV_ASSERT(c->pending > 0);
    c->pending--;
    int res = cqe->res;
    if ((cqe->user_data & 0xffu) == WAL_UD_WRITE) {
        if (res < 0)
            wal_fail(w, wal_code_of(-res), "write", -res);
        else if (res == 0)
            wal_fail(w, BFTKV_E_IO, "write", EIO);
        else {
            BFTKV_ASSERT((size_t)res <= c->left);
            c->p += res;
            c->off += (uint64_t)res;
            c->left -= (size_t)res;
        }
        return;
    }
    if (res == -ECANCELED && c->left > 0)
        return; /* its write was short (or failed): queued again below, or failed */
    if (res < 0) /* never retried: the kernel may have dropped the pages */
        wal_fail(w, wal_code_of(-res), "fdatasync", -res);
    else {
        c->synced = true;
        w->st.syncs++;
    }
}

/* Applies every completion the ring holds, finishes short writes, and moves the
 * lsns over the complete prefix. */
static int reap_ready(struct wal *w)
{
    struct io_uring_cqe *cqe;
    unsigned head, seen = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        cqe_apply(w, cqe);
        seen++;
    }
    io_uring_cq_advance(&w->ring, seen);
    for (unsigned i = 0; i < w->nslots && w->failed == 0; i++) {
        struct wal_commit_slot *c = slot_at(w, i);
        if (c->pending == 0 && c->left > 0) {
            int rc = slot_queue(w, c);
            if (rc != 0)
                return rc;
        }
    }
    while (w->failed == 0 && w->nslots > 0 && slot_complete(slot_at(w, 0))) {
        struct wal_commit_slot *c = slot_at(w, 0);
        w->committed_lsn = c->end_lsn;
        if (c->sync)
            w->durable_lsn = c->end_lsn;
        w->first = (w->first + 1) % WAL_INFLIGHT_MAX;
        w->nslots--;
    }
    return w->failed;
}

/* Any slot's SQEs still in the ring (even after a failure: their buffers). */
static bool ring_busy(struct wal *w)
{
    for (unsigned i = 0; i < w->nslots; i++)
        if (slot_at(w, i)->pending > 0)
            return true;
    return false;
}

/* Waits for one completion (up to timeout_us; < 0: no limit) and applies it. */
static int reap_wait(struct wal *w, int64_t timeout_us)
{
    struct io_uring_cqe *cqe;
    int rc;
    if (timeout_us < 0) {
        rc = io_uring_wait_cqe(&w->ring, &cqe);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout_us / 1000000, .tv_nsec = (timeout_us % 1000000) * 1000};
        rc = io_uring_wait_cqe_timeout(&w->ring, &cqe, &ts);
        if (rc == -ETIME)
            rc = 0;
    }
    if (rc < 0 && rc != -EINTR)
        return wal_fail(w, BFTKV_E_IO, "io_uring wait", -rc);
    return reap_ready(w);
}

int wal_commit_reap(struct wal *w, int64_t timeout_us)
{
    int rc = reap_ready(w);
    if (rc != 0 || w->nslots == 0 || timeout_us == 0)
        return rc;
    if (timeout_us > 0)
        return reap_wait(w, timeout_us);
    uint64_t id = slot_at(w, 0)->id;
    while (rc == 0 && w->nslots > 0 && slot_at(w, 0)->id == id)
        rc = reap_wait(w, -1);
    return rc;
}

int wal_drain(struct wal *w)
{
    while (w->failed == 0 && w->nslots > 0)
        if (reap_wait(w, -1) != 0)
            break;
    /* A failed log stops reaping in order, but its writes still read their
     * buffers until the kernel is done with them. */
    while (w->failed != 0 && ring_busy(w)) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&w->ring, &cqe) < 0)
            break;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&w->ring, head, cqe)
        {
            cqe_apply(w, cqe);
            seen++;
        }
        io_uring_cq_advance(&w->ring, seen);
    }
    return w->failed;
}

/* Hands buf[0, len) (rounded up to the alignment, padding zeroed) to a new slot
 * and moves the appends to a free buffer, carrying the partial last block
 * (direct mode) to its start. */
static int submit(struct wal *w, bool sync)
{
    if (w->nslots == w->inflight_max) {
        w->st.slot_waits++;
        int rc = wal_commit_reap(w, -1);
        if (rc != 0)
            return rc;
    }
    BFTKV_ASSERT(w->nslots < w->inflight_max);
    struct wal_commit_slot *c = slot_at(w, w->nslots);
    memset(c, 0, sizeof *c);
    c->id = w->next_id;
    c->end_lsn = w->next_lsn - 1;
    c->sync = sync;
    c->buf = -1;
    if (w->len > w->head) {
        size_t wlen = (w->len + w->align - 1) / w->align * w->align;
        memset(w->buf + w->len, 0, wlen - w->len);
        c->p = w->buf;
        c->left = wlen;
        c->off = w->file_off;
        c->buf = (int)w->cur;
        /* The next buffer: one no commit in flight writes from. */
        unsigned next = w->cur;
        for (unsigned k = 1; k <= w->inflight_max; k++) {
            unsigned b = (w->cur + k) % (w->inflight_max + 1);
            bool used = false;
            for (unsigned i = 0; i < w->nslots; i++)
                used = used || slot_at(w, i)->buf == (int)b;
            if (!used) {
                next = b;
                break;
            }
        }
        BFTKV_ASSERT(next != w->cur); /* inflight_max + 1 buffers, at most inflight_max in flight */
        size_t whole = w->len / w->align * w->align;
        size_t tail = w->len - whole;
        memcpy(w->bufs[next], w->buf + whole, tail);
        w->st.bytes += w->len - w->head;
        w->st.commits++;
        w->cur = next;
        w->buf = w->bufs[next];
        w->file_off += whole;
        w->head = w->len = tail;
    }
    w->nslots++;
    w->next_id++;
    int rc = slot_queue(w, c);
    return rc != 0 ? rc : (int)0;
}

int64_t wal_commit_submit(struct wal *w, bool sync)
{
    if (w->failed != 0)
        return w->failed;
    bool data = w->len > w->head;
    if (!data) {
        /* What earlier commits that did not sync wrote, once they completed. */
        if (!sync || w->durable_lsn == w->next_lsn - 1)
            return 0;
    }
    bool unsynced_ahead = false;
    for (unsigned i = 0; i < w->nslots; i++)
        unsynced_ahead = unsynced_ahead || !slot_at(w, i)->sync;
    if (sync && (unsynced_ahead || !data)) {
        int rc = wal_drain(w); /* the rule of wal.h: a sync covers only writes that finished */
        if (rc != 0)
            return rc;
        if (!data && w->durable_lsn == w->next_lsn - 1)
            return 0;
    }
    uint64_t id = w->next_id;
    int rc = submit(w, sync);
    if (rc != 0)
        return rc;
    if (w->file_off + w->len >= w->seg_bytes) {
        rc = wal_segment_start(w); /* drains first */
        if (rc != 0)
            return rc;
    }
    return (int64_t)id;
}

int wal_commit(struct wal *w, bool sync)
{
    int64_t id = wal_commit_submit(w, sync);
    if (id < 0)
        return (int)id;
    return wal_drain(w);
}

int wal_flush_sync(struct wal *w)
{
    BFTKV_ASSERT(w->nslots == 0);
    int rc = submit(w, true);
    return rc != 0 ? rc : wal_drain(w);
}
