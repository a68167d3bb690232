/* The write-ahead log (server/wal.h; docs/design.md §9): recovery, appends,
 * segments, and the failed state; the group commit through io_uring is
 * server/wal_commit.c. The on-disk layout and the torn-tail rule are in wal.h.
 */
#include "server/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "engine/wire_le.h"
#include "server/wal_internal.h"

#define WAL_MAGIC "BFTKVWAL"
#define WAL_VERSION 1u
#define WAL_SUM_BYTES 16u
#define WAL_BUFFER_DEFAULT (8u << 20)
#define WAL_SEGMENT_DEFAULT (64ull << 20)
#define WAL_SEGMENTS_MAX 4096u

_Static_assert(WAL_SUM_BYTES == crypto_generichash_BYTES_MIN, "the record checksum is BLAKE2b's shortest output");
_Static_assert(WAL_RECORD_HEADER == 16 + WAL_SUM_BYTES, "record header: len, type, flags, lsn, checksum");
_Static_assert(WAL_SEGMENT_HEADER % 8 == 0 && WAL_RECORD_HEADER % 8 == 0, "records stay 8-byte aligned");


static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

static bool all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != 0)
            return false;
    return true;
}

static void record_sum(const uint8_t *hdr16, const uint8_t *payload, uint32_t len, uint8_t out[WAL_SUM_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, WAL_SUM_BYTES);
    crypto_generichash_update(&st, hdr16, 16);
    crypto_generichash_update(&st, payload, len);
    crypto_generichash_final(&st, out, WAL_SUM_BYTES);
}

int wal_fail(struct wal *w, int code, const char *what, int err)
{
    if (w->failed == 0) {
        w->failed = code;
        snprintf(w->errmsg, sizeof w->errmsg, "%.200s: log: %s: %s", w->dir, what, strerror(err));
    }
    return w->failed;
}

int wal_code_of(int err)
{
    return err == ENOSPC || err == EDQUOT ? BFTKV_E_FULL : BFTKV_E_IO;
}

static void seg_name(char *out, size_t cap, uint64_t first)
{
    snprintf(out, cap, "wal-%016" PRIx64 ".log", first);
}

static int dir_sync(struct wal *w)
{
    if (fsync(w->dirfd) != 0)
        return wal_fail(w, wal_code_of(errno), "fsync of the directory", errno);
    return 0;
}

/* Creates segment wal-<first>.log, preallocated (so that fdatasync need not write
 * the file's size), and writes its header. */
static int seg_create(struct wal *w, uint64_t first)
{
    char name[64];
    seg_name(name, sizeof name, first);
    int fd = openat(w->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (w->direct ? O_DIRECT : 0), 0600);
    if (fd < 0)
        return wal_fail(w, wal_code_of(errno), "create a segment", errno);
    int rc = posix_fallocate(fd, 0, (off_t)w->seg_bytes);
    if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        close(fd);
        unlinkat(w->dirfd, name, 0);
        return wal_fail(w, wal_code_of(rc), "preallocate a segment", rc);
    }
    if (w->nsegs == WAL_SEGMENTS_MAX) {
        close(fd);
        unlinkat(w->dirfd, name, 0);
        return wal_fail(w, BFTKV_E_FULL, "too many segments (checkpoints not dropping the log?)", ENOSPC);
    }
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    w->seg_first = first;
    w->segs[w->nsegs++] = first;
    w->st.segments++;
    memset(w->buf, 0, w->len > w->head ? w->len : w->head);
    uint8_t *h = w->buf;
    memcpy(h, WAL_MAGIC, 8);
    le32_store(h + 8, WAL_VERSION);
    le32_store(h + 12, WAL_SEGMENT_HEADER);
    le64_store(h + 16, first);
    crypto_generichash(h + 48, WAL_SUM_BYTES, h, 48, NULL, 0);
    w->file_off = 0;
    w->head = 0;
    w->len = WAL_SEGMENT_HEADER;
    /* The header is synced before the directory; a crash before it leaves a
     * blank last segment, which recovery removes (drop_blank_last). */
    rc = wal_flush_sync(w);
    return rc != 0 ? rc : dir_sync(w);
}

static bool seg_header_ok(const uint8_t *h, size_t len, uint64_t first)
{
    uint8_t sum[WAL_SUM_BYTES];
    if (len < WAL_SEGMENT_HEADER || memcmp(h, WAL_MAGIC, 8) != 0)
        return false;
    crypto_generichash(sum, WAL_SUM_BYTES, h, 48, NULL, 0);
    return sodium_memcmp(sum, h + 48, WAL_SUM_BYTES) == 0 && le32_load(h + 8) == WAL_VERSION &&
           le32_load(h + 12) == WAL_SEGMENT_HEADER && le64_load(h + 16) == first;
}

/* The record at p (avail bytes on), if whole and valid with the given lsn (0: any). */
static bool record_ok(const uint8_t *p, size_t avail, uint64_t lsn, uint32_t *len_out)
{
    if (avail < WAL_RECORD_HEADER)
        return false;
    uint32_t len = le32_load(p);
    if (len > WAL_PAYLOAD_MAX || pad8(len) > avail - WAL_RECORD_HEADER || le16_load(p + 6) != 0)
        return false;
    if (lsn != 0 && le64_load(p + 8) != lsn)
        return false;
    uint8_t sum[WAL_SUM_BYTES];
    record_sum(p, p + WAL_RECORD_HEADER, len, sum);
    if (sodium_memcmp(sum, p + 16, WAL_SUM_BYTES) != 0)
        return false;
    *len_out = len;
    return true;
}

static int read_all(int fd, uint8_t **out, size_t *len_out)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return -errno;
    size_t size = (size_t)sb.st_size;
    uint8_t *p = malloc(size > 0 ? size : 1);
    if (p == NULL)
        return -ENOMEM;
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, p + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(p);
            return -e;
        }
        got += (size_t)n;
    }
    *out = p;
    *len_out = size;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int list_segments(struct wal *w, char *err, size_t errlen)
{
    DIR *d = opendir(w->dir);
    if (d == NULL) {
        errbuf_put(err, errlen, "%s: %s", w->dir, strerror(errno));
        return BFTKV_E_IO;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strlen(n) != 24 || strncmp(n, "wal-", 4) != 0 || strcmp(n + 20, ".log") != 0 ||
            strspn(n + 4, "0123456789abcdef") != 16)
            continue;
        uint64_t first = strtoull(n + 4, NULL, 16);
        if (w->nsegs == WAL_SEGMENTS_MAX) {
            closedir(d);
            errbuf_put(err, errlen, "%s: more than %u log segments", w->dir, WAL_SEGMENTS_MAX);
            return BFTKV_E_CORRUPT;
        }
        w->segs[w->nsegs++] = first;
    }
    closedir(d);
    qsort(w->segs, w->nsegs, sizeof w->segs[0], cmp_u64);
    return 0;
}

/* Replays segment i (its bytes in p[0, size)); on return *end is the offset where
 * the valid records stop. A bad record with a valid one after it is corruption. */
static int replay_segment(struct wal *w, size_t i, const uint8_t *p, size_t size, wal_replay_fn fn, void *arg,
                          struct wal_recovery *rec, size_t *end, char *err, size_t errlen)
{
    char name[64];
    seg_name(name, sizeof name, w->segs[i]);
    if (!seg_header_ok(p, size, w->segs[i])) {
        errbuf_put(err, errlen, "%s/%s: bad segment header", w->dir, name);
        return BFTKV_E_CORRUPT;
    }
    if (w->segs[i] != w->next_lsn && !(rec->records == 0 && i == 0)) {
        errbuf_put(err, errlen, "%s/%s: starts at lsn %" PRIu64 ", the log before it ends at %" PRIu64, w->dir, name,
                   w->segs[i], w->next_lsn - 1);
        return BFTKV_E_CORRUPT;
    }
    w->next_lsn = w->segs[i];
    size_t off = WAL_SEGMENT_HEADER;
    uint32_t len;
    while (record_ok(p + off, size - off, w->next_lsn, &len)) {
        if (fn != NULL) {
            int rc = fn(arg, w->next_lsn, le16_load(p + off + 4), p + off + WAL_RECORD_HEADER, len);
            if (rc != 0)
                return rc;
        }
        rec->records++;
        rec->last_lsn = w->next_lsn++;
        off += WAL_RECORD_HEADER + pad8(len);
    }
    *end = off;
    if (all_zero(p + off, size - off))
        return 0;
    for (size_t k = off + 8; k + WAL_RECORD_HEADER <= size; k += 8) {
        if (le64_load(p + k + 8) >= w->next_lsn && record_ok(p + k, size - k, 0, &len)) {
            errbuf_put(err, errlen, "%s/%s: bad record at offset %zu (lsn %" PRIu64 ") before a valid one at %zu",
                       w->dir, name, off, w->next_lsn, k);
            return BFTKV_E_CORRUPT;
        }
    }
    if (i + 1 < w->nsegs)
        return 0; /* the next segment's first lsn says whether anything was lost */
    rec->torn = true;
    size_t last_nonzero = size;
    while (last_nonzero > off && p[last_nonzero - 1] == 0)
        last_nonzero--;
    rec->torn_bytes = last_nonzero - off;
    return 0;
}

/* Writes len zero bytes at off of file name and syncs them, through a buffered
 * descriptor (an O_DIRECT one cannot write an unaligned range). -1 with errno. */
static int zero_range(int dirfd, const char *name, size_t off, size_t len)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    uint8_t *z = calloc(1, len > 0 ? len : 1);
    ssize_t n = fd >= 0 && z != NULL ? pwrite(fd, z, len, (off_t)off) : -1;
    int rc = n == (ssize_t)len && fdatasync(fd) == 0 ? 0 : -1;
    int e = n >= 0 && n != (ssize_t)len ? EIO : errno;
    free(z);
    if (fd >= 0)
        close(fd);
    errno = e;
    return rc;
}

/* Opens the last segment for appending at end, zeroing a cut tail so that no
 * stale bytes can look like records later. */
static int resume_segment(struct wal *w, const uint8_t *p, size_t size, size_t end, bool torn, char *err,
                          size_t errlen)
{
    char name[64];
    seg_name(name, sizeof name, w->seg_first);
    w->fd = openat(w->dirfd, name, O_WRONLY | O_CLOEXEC | (w->direct ? O_DIRECT : 0));
    if (w->fd < 0) {
        errbuf_put(err, errlen, "%s/%s: %s", w->dir, name, strerror(errno));
        return BFTKV_E_IO;
    }
    w->file_off = end / w->align * w->align;
    w->head = w->len = end - w->file_off;
    memcpy(w->buf, p + w->file_off, w->len);
    if (torn && zero_range(w->dirfd, name, end, size - end) != 0) {
        errbuf_put(err, errlen, "%s/%s: zeroing the cut tail: %s", w->dir, name, strerror(errno));
        return BFTKV_E_IO;
    }
    return 0;
}

/* A crash between creating the last segment and writing its header leaves a
 * segment of zeros that holds nothing: it is removed (and made anew, header
 * first, when it was the only one, so the lsns go on where they were). */
static int drop_blank_last(struct wal *w, struct wal_recovery *rec, char *err, size_t errlen)
{
    char name[64];
    uint64_t first = w->segs[w->nsegs - 1];
    seg_name(name, sizeof name, first);
    int fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC);
    uint8_t *p = NULL;
    size_t size = 0;
    int rc = fd < 0 ? -errno : read_all(fd, &p, &size);
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        errbuf_put(err, errlen, "%s/%s: %s", w->dir, name, strerror(-rc));
        return rc == -ENOMEM ? BFTKV_E_NOMEM : BFTKV_E_IO;
    }
    bool blank = all_zero(p, size);
    free(p);
    if (!blank)
        return 0;
    if (unlinkat(w->dirfd, name, 0) != 0) {
        errbuf_put(err, errlen, "%s/%s: %s", w->dir, name, strerror(errno));
        return BFTKV_E_IO;
    }
    rec->torn = true;
    w->nsegs--;
    if (w->nsegs > 0)
        return 0;
    w->next_lsn = first;
    if (seg_create(w, first) != 0) {
        errbuf_put(err, errlen, "%s", w->errmsg);
        return w->failed;
    }
    w->durable_lsn = w->committed_lsn = first - 1;
    return 0;
}

static int recover(struct wal *w, wal_replay_fn fn, void *arg, struct wal_recovery *rec, char *err, size_t errlen)
{
    int rc = list_segments(w, err, errlen);
    if (rc != 0 || w->nsegs == 0)
        return rc;
    rc = drop_blank_last(w, rec, err, errlen);
    if (rc != 0 || w->fd >= 0)
        return rc; /* error, or the only segment was blank and is made anew */
    for (size_t i = 0; i < w->nsegs; i++) {
        char name[64];
        seg_name(name, sizeof name, w->segs[i]);
        int fd = openat(w->dirfd, name, O_RDONLY | O_CLOEXEC);
        uint8_t *p = NULL;
        size_t size = 0, end = 0;
        rc = fd < 0 ? -errno : read_all(fd, &p, &size);
        if (fd >= 0)
            close(fd);
        if (rc != 0) {
            errbuf_put(err, errlen, "%s/%s: %s", w->dir, name, strerror(-rc));
            return rc == -ENOMEM ? BFTKV_E_NOMEM : BFTKV_E_IO;
        }
        rec->segments++;
        rc = replay_segment(w, i, p, size, fn, arg, rec, &end, err, errlen);
        if (rc == 0 && i + 1 == w->nsegs) {
            w->seg_first = w->segs[i];
            rc = resume_segment(w, p, size, end, rec->torn, err, errlen);
        }
        free(p);
        if (rc != 0)
            return rc;
    }
    w->durable_lsn = w->committed_lsn = w->next_lsn - 1;
    return 0;
}

int wal_open(struct wal **out, const struct wal_options *opt, wal_replay_fn fn, void *arg,
             struct wal_recovery *rec, char *err, size_t errlen)
{
    BFTKV_ASSERT(out != NULL);
    BFTKV_ASSERT(opt != NULL && opt->dir != NULL);
    *out = NULL;
    struct wal_recovery scratch;
    rec = rec != NULL ? rec : &scratch;
    memset(rec, 0, sizeof *rec);
    if (sodium_init() < 0) {
        errbuf_put(err, errlen, "libsodium failed to initialise");
        return BFTKV_E_IO;
    }
    struct wal *w = calloc(1, sizeof *w);
    if (w == NULL)
        return BFTKV_E_NOMEM;
    w->fd = -1;
    w->dirfd = -1;
    w->direct = opt->direct;
    w->align = opt->direct ? WAL_ALIGN_DIRECT : 1;
    w->cap = opt->buffer_bytes != 0 ? opt->buffer_bytes : WAL_BUFFER_DEFAULT;
    w->cap = (w->cap + WAL_ALIGN_DIRECT - 1) / WAL_ALIGN_DIRECT * WAL_ALIGN_DIRECT;
    w->seg_bytes = opt->segment_bytes != 0 ? opt->segment_bytes : WAL_SEGMENT_DEFAULT;
    w->next_lsn = 1;
    int rc = BFTKV_E_NOMEM;
    if (snprintf(w->dir, sizeof w->dir, "%s", opt->dir) >= (int)sizeof w->dir) {
        errbuf_put(err, errlen, "%s: path too long", opt->dir);
        rc = BFTKV_E_INVAL;
        goto fail;
    }
    w->segs = calloc(WAL_SEGMENTS_MAX, sizeof w->segs[0]);
    /* O_DIRECT rewrites the partial last block with each commit: two commits in
     * flight would write the same block in either order, so it keeps one. */
    w->inflight_max = opt->inflight != 0 ? opt->inflight : WAL_INFLIGHT_DEFAULT;
    if (w->inflight_max > WAL_INFLIGHT_MAX)
        w->inflight_max = WAL_INFLIGHT_MAX;
    if (w->direct)
        w->inflight_max = 1;
    w->next_id = 1;
    if (w->segs == NULL)
        goto fail;
    for (unsigned i = 0; i <= w->inflight_max; i++)
        if (posix_memalign((void **)&w->bufs[i], WAL_ALIGN_DIRECT, w->cap + WAL_ALIGN_DIRECT) != 0)
            goto fail;
    w->buf = w->bufs[0];
    memset(w->buf, 0, w->cap + WAL_ALIGN_DIRECT);
    w->dirfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd < 0) {
        errbuf_put(err, errlen, "%s: %s", w->dir, strerror(errno));
        rc = BFTKV_E_IO;
        goto fail;
    }
    rc = io_uring_queue_init(WAL_RING_ENTRIES, &w->ring, 0);
    if (rc < 0) {
        errbuf_put(err, errlen, "io_uring for the log: %s", strerror(-rc));
        rc = BFTKV_E_UNSUPPORTED;
        goto fail;
    }
    w->ring_ok = true;
    rc = recover(w, fn, arg, rec, err, errlen);
    if (rc == 0 && w->nsegs == 0 && seg_create(w, 1) != 0) {
        errbuf_put(err, errlen, "%s", w->errmsg);
        rc = w->failed;
    }
    if (rc != 0)
        goto fail;
    *out = w;
    return 0;
fail:
    wal_close(w);
    return rc;
}

void wal_close(struct wal *w)
{
    if (w == NULL)
        return;
    if (w->ring_ok) {
        wal_drain(w); /* no write may still read a buffer freed below */
        io_uring_queue_exit(&w->ring);
    }
    if (w->fd >= 0)
        close(w->fd);
    if (w->dirfd >= 0)
        close(w->dirfd);
    for (unsigned i = 0; i < WAL_BUFFERS; i++)
        free(w->bufs[i]);
    free(w->segs);
    free(w);
}

int64_t wal_append(struct wal *w, uint16_t type, const void *payload, uint32_t len)
{
    BFTKV_ASSERT(payload != NULL || len == 0);
    if (w->failed != 0)
        return w->failed;
    if (len > WAL_PAYLOAD_MAX)
        return BFTKV_E_RANGE;
    size_t need = WAL_RECORD_HEADER + pad8(len);
    if (w->len + need > w->cap)
        return BFTKV_E_FULL;
    uint8_t *h = w->buf + w->len;
    le32_store(h, len);
    le16_store(h + 4, type);
    le16_store(h + 6, 0);
    le64_store(h + 8, w->next_lsn);
    memcpy(h + WAL_RECORD_HEADER, payload, len);
    memset(h + WAL_RECORD_HEADER + len, 0, pad8(len) - len);
    record_sum(h, h + WAL_RECORD_HEADER, len, h + 16);
    w->len += need;
    w->st.records++;
    return (int64_t)w->next_lsn++;
}

int wal_segment_start(struct wal *w)
{
    if (w->failed != 0)
        return w->failed;
    if (w->seg_first == w->next_lsn)
        return 0; /* the current segment is still empty */
    int rc = wal_drain(w);
    if (rc != 0)
        return rc;
    BFTKV_ASSERT(w->len == w->head); /* after a commit: nothing pending */
    return seg_create(w, w->next_lsn);
}

int wal_drop_before(struct wal *w, uint64_t lsn)
{
    if (w->failed != 0)
        return w->failed;
    size_t drop = 0;
    while (drop + 1 < w->nsegs && w->segs[drop + 1] <= lsn)
        drop++;
    for (size_t i = 0; i < drop; i++) {
        char name[64];
        seg_name(name, sizeof name, w->segs[i]);
        if (unlinkat(w->dirfd, name, 0) != 0 && errno != ENOENT)
            return wal_fail(w, BFTKV_E_IO, "remove a segment", errno);
        w->st.removed++;
    }
    if (drop == 0)
        return 0;
    memmove(w->segs, w->segs + drop, (w->nsegs - drop) * sizeof w->segs[0]);
    w->nsegs -= drop;
    return dir_sync(w);
}

uint64_t wal_last_lsn(const struct wal *w)
{
    return w->next_lsn - 1;
}

uint64_t wal_committed_lsn(const struct wal *w)
{
    return w->committed_lsn;
}

unsigned wal_commits_in_flight(const struct wal *w)
{
    return w->nslots;
}

uint64_t wal_durable_lsn(const struct wal *w)
{
    return w->durable_lsn;
}

int wal_failed(const struct wal *w)
{
    return w->failed;
}

const char *wal_error(const struct wal *w)
{
    return w->errmsg;
}

void wal_stats_get(const struct wal *w, struct wal_stats *out)
{
    *out = w->st;
}
