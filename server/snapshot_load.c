/* Snapshot files at start-up (server/snapshot.h, docs/design.md §5.6.2): the
 * newest file whose checksum holds and which the engine accepts
 * (pbft_replica_recover_snapshot, _chunk, _end) goes into the replica before
 * the log is replayed. A refused file is renamed *.bad (kept for the operator,
 * never read again) and the next older one is tried, with the engine and the
 * store made anew. Also the file names, listing and pruning both sides share.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "common/log.h"
#include "engine/wire_le.h"
#include "server/server_internal.h"
#include "server/snapshot_internal.h"

#define SNAP_LIST_MAX 64u

static size_t pad8(size_t n)
{
    return (n + 7u) & ~(size_t)7u;
}

void snap_file_name(char *out, size_t cap, uint64_t seq, const char *ext)
{
    snprintf(out, cap, "snapshot-%016" PRIx64 ".%s", seq, ext);
}

/* seq of "snapshot-<16 hex>.<ext>", 0 when name is not one. */
static uint64_t snap_name_seq(const char *name, const char *ext)
{
    size_t el = strlen(ext);
    if (strncmp(name, "snapshot-", 9) != 0 || strlen(name) != 9 + 16 + 1 + el || name[25] != '.' ||
        strcmp(name + 26, ext) != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 9; i < 25; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return 0;
        v = v << 4 | (uint64_t)d;
    }
    return v;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t snap_list(int dirfd, const char *ext, uint64_t *seqs, size_t cap)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    rewinddir(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        uint64_t seq = snap_name_seq(e->d_name, ext);
        if (seq != 0)
            seqs[n++] = seq;
    }
    closedir(d);
    qsort(seqs, n, sizeof seqs[0], cmp_desc);
    return n;
}

void snap_prune(int dirfd, uint64_t keep_tmp)
{
    uint64_t seqs[SNAP_LIST_MAX];
    bool removed = false;
    size_t n = snap_list(dirfd, "bin", seqs, SNAP_LIST_MAX);
    for (size_t i = SNAP_KEEP; i < n; i++) {
        char name[64];
        snap_file_name(name, sizeof name, seqs[i], "bin");
        removed |= unlinkat(dirfd, name, 0) == 0;
    }
    n = snap_list(dirfd, "tmp", seqs, SNAP_LIST_MAX);
    for (size_t i = 0; i < n; i++) {
        if (seqs[i] == keep_tmp)
            continue;
        char name[64];
        snap_file_name(name, sizeof name, seqs[i], "tmp");
        removed |= unlinkat(dirfd, name, 0) == 0;
    }
    if (removed)
        fsync(dirfd);
}

int server_snap_forget(const char *data_dir, uint16_t id, char *err, size_t errlen)
{
    char dir[PATH_MAX];
    int len = snprintf(dir, sizeof dir, "%s/replica-%u/snap", data_dir, id);
    if (data_dir[0] == '\0' || len < 0 || (size_t)len >= sizeof dir)
        return 0;
    int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return 0;
    uint64_t seqs[SNAP_LIST_MAX];
    unsigned removed = 0;
    int rc = 0;
    static const char *const exts[] = {"bin", "tmp", "bad"};
    for (size_t k = 0; k < sizeof exts / sizeof exts[0] && rc == 0; k++) {
        size_t n = snap_list(dirfd, exts[k], seqs, SNAP_LIST_MAX);
        for (size_t i = 0; i < n; i++) {
            char name[64];
            snap_file_name(name, sizeof name, seqs[i], exts[k]);
            if (unlinkat(dirfd, name, 0) != 0) {
                errbuf_put(err, errlen, "cannot remove %s/%s: %s", dir, name, strerror(errno));
                rc = BFTKV_E_IO;
                break;
            }
            removed++;
        }
    }
    if (rc == 0 && removed > 0 && fsync(dirfd) != 0) {
        errbuf_put(err, errlen, "cannot sync %s: %s", dir, strerror(errno));
        rc = BFTKV_E_IO;
    }
    close(dirfd);
    if (rc == 0 && removed > 0)
        log_info("removed %u earlier snapshot file(s) in %s (not this run's memory)", removed, dir);
    return rc;
}

/* ---- Loading one file ------------------------------------------------------------------ */

struct snap_file {
    const uint8_t *p;
    size_t size;
    uint64_t chunks;
    uint32_t rec_len;
};

/* The trailer and the checksum over everything before it; the header. */
static bool file_check(const struct server *s, uint64_t seq, struct snap_file *f, char *why, size_t wl)
{
    const uint8_t *p = f->p;
    if (f->size < SNAP_HEADER_BYTES + SNAP_TRAILER_BYTES) {
        errbuf_put(why, wl, "too short (%zu bytes)", f->size);
        return false;
    }
    const uint8_t *t = p + f->size - SNAP_TRAILER_BYTES;
    if (memcmp(t, SNAP_TRAILER_MAGIC, 8) != 0 || le64_load(t + 16) != f->size - SNAP_TRAILER_BYTES) {
        errbuf_put(why, wl, "no trailer (the file does not end where it was written)");
        return false;
    }
    uint8_t sum[SNAP_HASH_BYTES];
    crypto_generichash(sum, sizeof sum, p, f->size - SNAP_HASH_BYTES, NULL, 0);
    if (sodium_memcmp(sum, t + 24, SNAP_HASH_BYTES) != 0) {
        errbuf_put(why, wl, "checksum mismatch (BLAKE2b over the file differs from its trailer's)");
        return false;
    }
    f->chunks = le64_load(t + 8);
    f->rec_len = le32_load(p + 32);
    if (memcmp(p, SNAP_MAGIC, 8) != 0 || le32_load(p + 8) != SNAP_VERSION || le64_load(p + 16) != seq) {
        errbuf_put(why, wl, "bad header (magic, version or seq)");
        return false;
    }
    if (le16_load(p + 24) != s->cfg->group || le16_load(p + 28) != s->n) {
        errbuf_put(why, wl, "written for group %u with n = %u, not this one", le16_load(p + 24), le16_load(p + 28));
        return false;
    }
    if (SNAP_HEADER_BYTES + pad8(f->rec_len) > f->size - SNAP_TRAILER_BYTES) {
        errbuf_put(why, wl, "bad record length %u", f->rec_len);
        return false;
    }
    return true;
}

/* The proof, every chunk, then the end into the engine. *touched: the engine
 * was handed something (it must be made anew after a refusal). */
static bool file_load(struct server *s, const struct snap_file *f, bool *touched, char *why, size_t wl)
{
    const uint8_t *p = f->p;
    *touched = true;
    int rc = pbft_replica_recover_snapshot(s->replica, p + SNAP_HEADER_BYTES, f->rec_len);
    if (rc != 0) {
        errbuf_put(why, wl, "the engine refused its checkpoint proof (%s)", bftkv_strerror(rc));
        return false;
    }
    size_t off = SNAP_HEADER_BYTES + pad8(f->rec_len), end = f->size - SNAP_TRAILER_BYTES;
    uint64_t chunks = 0;
    bool last = false;
    while (off < end && !last) {
        const uint8_t *h = p + off;
        uint32_t dl = end - off >= SNAP_CHUNK_HEADER_BYTES ? le32_load(h + 12) : UINT32_MAX;
        if (dl > WIRE_STATE_DATA_MAX || SNAP_CHUNK_HEADER_BYTES + pad8(dl) > end - off) {
            errbuf_put(why, wl, "chunk %" PRIu64 " at offset %zu runs past the end", chunks, off);
            return false;
        }
        struct wire_state st = {
            .kind = WIRE_STATE_CHUNK,
            .flags = h[1],
            .shards = le32_load(h + 4),
            .from = {.part = h[0], .shard = le32_load(h + 8), .cursor = le64_load(h + 16)},
            .data = h + SNAP_CHUNK_HEADER_BYTES,
            .data_len = dl,
        };
        rc = pbft_replica_recover_snapshot_chunk(s->replica, &st);
        if (rc != 0) {
            errbuf_put(why, wl, "the engine refused chunk %" PRIu64 " (%s)", chunks, bftkv_strerror(rc));
            return false;
        }
        last = (st.flags & WIRE_STATE_LAST) != 0;
        off += SNAP_CHUNK_HEADER_BYTES + pad8(dl);
        chunks++;
    }
    if (!last || off != end || chunks != f->chunks) {
        errbuf_put(why, wl, "%" PRIu64 " chunk(s) up to offset %zu, the trailer says %" PRIu64 " (last %s)", chunks,
                   off, f->chunks, last ? "seen" : "missing");
        return false;
    }
    rc = pbft_replica_recover_snapshot_end(s->replica);
    if (rc != 0) {
        errbuf_put(why, wl, "the engine refused the state (%s: its digest is not the signed one)",
                   bftkv_strerror(rc));
        return false;
    }
    return true;
}

static bool snap_try(struct server *s, uint64_t seq, size_t *size, bool *touched, char *why, size_t wl)
{
    struct server_snap *sn = s->snap;
    char name[64];
    snap_file_name(name, sizeof name, seq, "bin");
    *touched = false;
    int fd = openat(sn->dirfd, name, O_RDONLY | O_CLOEXEC);
    struct stat stt;
    if (fd < 0 || fstat(fd, &stt) != 0) {
        errbuf_put(why, wl, "cannot read it: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return false;
    }
    struct snap_file f = {.size = (size_t)stt.st_size};
    void *m = f.size > 0 ? mmap(NULL, f.size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    if (m == MAP_FAILED) {
        errbuf_put(why, wl, "cannot map it (%zu bytes): %s", f.size, f.size > 0 ? strerror(errno) : "empty");
        return false;
    }
    f.p = m;
    bool ok = file_check(s, seq, &f, why, wl) && file_load(s, &f, touched, why, wl);
    munmap(m, f.size);
    *size = f.size;
    return ok;
}

int server_snap_recover(struct server *s, struct pbft_replica_config *rcfg, uint64_t *seq_out, char *err,
                        size_t errlen)
{
    struct server_snap *sn = s->snap;
    *seq_out = 0;
    snap_prune(sn->dirfd, 0); /* a temporary file is a snapshot that never finished */
    uint64_t seqs[SNAP_LIST_MAX];
    size_t n = snap_list(sn->dirfd, "bin", seqs, SNAP_LIST_MAX);
    for (size_t i = 0; i < n; i++) {
        char why[256] = "", name[64];
        size_t size = 0;
        bool touched = false;
        uint64_t t0 = server_now_ns();
        snap_file_name(name, sizeof name, seqs[i], "bin");
        if (snap_try(s, seqs[i], &size, &touched, why, sizeof why)) {
            log_info("recovering from snapshot %s/%s (checkpoint %" PRIu64 ", %zu bytes, loaded in %.1f ms)%s",
                     sn->dir, name, seqs[i], size, (double)(server_now_ns() - t0) / 1e6,
                     i > 0 ? ": the newer one(s) were refused" : "");
            *seq_out = seqs[i];
            sn->st.recovered_seq = seqs[i];
            sn->kept[1] = seqs[i];
            sn->kept[0] = i + 1 < n ? seqs[i + 1] : 0;
            sn->kept_bytes = size;
            sn->started_seq = seqs[i];
            sn->ckpt_seq = seqs[i];
            return 0;
        }
        sn->st.refused++;
        char bad[64];
        snap_file_name(bad, sizeof bad, seqs[i], "bad");
        bool moved = renameat(sn->dirfd, name, sn->dirfd, bad) == 0 && fsync(sn->dirfd) == 0;
        log_warn("snapshot %s/%s refused: %s; %s; %s", sn->dir, name, why,
                 moved ? "renamed *.bad (kept for inspection, never read again)" : "could not rename it",
                 i + 1 < n ? "trying the next older one" : "no older snapshot");
        if (!touched)
            continue;
        /* The engine took part of it: start again from an empty replica. */
        pbft_replica_destroy(s->replica);
        s->replica = NULL;
        store_clear(s->store);
        int rc = pbft_replica_create(rcfg, &s->auth, s->store, &s->replica);
        if (rc != 0) {
            errbuf_put(err, errlen, "%s: the engine refused the configuration of replica %u", s->cfg->name, s->id);
            return rc;
        }
    }
    return 0;
}

uint64_t server_snap_log_first_lsn(const char *wal_dir)
{
    DIR *d = opendir(wal_dir);
    if (d == NULL)
        return 0;
    uint64_t first = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strncmp(nm, "wal-", 4) != 0 || strlen(nm) != 4 + 16 + 4 || strcmp(nm + 20, ".log") != 0)
            continue;
        uint64_t v = strtoull(nm + 4, NULL, 16);
        if (v != 0 && (first == 0 || v < first))
            first = v;
    }
    closedir(d);
    return first;
}
