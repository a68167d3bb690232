/* Unit tests of the write-ahead log (server/wal.c) on the real file system of the
 * build directory, buffered and O_DIRECT: records come back whole and in order
 * across commits, reopenings and segments; a torn tail is cut and the log goes on
 * after it; a bad record before a valid one, a missing segment and a bad segment
 * header are corruption; dropped segments stay dropped; an asynchronous commit is
 * made durable by the next synchronous one; pipelined commits (submit, reap)
 * complete in order and come back whole, the slots bound how many run at once,
 * and a write that fails in flight (the segment's descriptor swapped for a
 * read-only one) fails the log without moving the committed lsn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "server/wal.h"
#include "server/wal_internal.h" /* the failure injection swaps the segment descriptor */

#define RECORDS 600u
#define PAYLOAD_MAX 3000u

struct seen {
    uint64_t count;
    uint64_t bad;      /* records whose bytes, type or lsn were not the ones written */
    uint64_t first_lsn;
};

/* Record lsn's payload: a length and bytes derived from the lsn alone. */
static uint32_t rec_len(uint64_t lsn)
{
    return (uint32_t)((lsn * 7919u) % PAYLOAD_MAX);
}

static void rec_fill(uint8_t *p, uint64_t lsn)
{
    for (uint32_t i = 0; i < rec_len(lsn); i++)
        p[i] = (uint8_t)(lsn * 31u + i);
}

static int on_record(void *arg, uint64_t lsn, uint16_t type, const uint8_t *payload, uint32_t len)
{
    struct seen *s = arg;
    uint8_t want[PAYLOAD_MAX];
    rec_fill(want, lsn);
    if (s->count == 0)
        s->first_lsn = lsn;
    else if (lsn != s->first_lsn + s->count)
        s->bad++;
    if (type != (uint16_t)(lsn % 5u) || len != rec_len(lsn) || memcmp(want, payload, len) != 0)
        s->bad++;
    s->count++;
    return 0;
}

static char dir_path[256];

static void dir_empty(void)
{
    DIR *d = opendir(dir_path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir_path, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    closedir(d);
    rmdir(dir_path);
}

static void dir_fresh(const char *tag, bool direct)
{
    snprintf(dir_path, sizeof dir_path, "wal_test.%d.%s.%s", (int)getpid(), tag, direct ? "direct" : "buffered");
    dir_empty();
    assert_int_equal(mkdir(dir_path, 0700), 0);
}

static void dir_remove(void)
{
    dir_empty();
}

static struct wal *open_log(bool direct, uint64_t seg_bytes, struct seen *s, struct wal_recovery *rec, int *rc)
{
    struct wal_options o = {.dir = dir_path, .direct = direct, .buffer_bytes = 1u << 20, .segment_bytes = seg_bytes};
    struct wal *w = NULL;
    char err[256] = "";
    memset(s, 0, sizeof *s);
    *rc = wal_open(&w, &o, on_record, s, rec, err, sizeof err);
    if (*rc != 0)
        print_message("wal_open: %s\n", err);
    return w;
}

static void append_range(struct wal *w, uint64_t from, uint64_t to, uint32_t per_commit)
{
    uint8_t p[PAYLOAD_MAX];
    for (uint64_t lsn = from; lsn <= to; lsn++) {
        rec_fill(p, lsn);
        assert_int_equal(wal_append(w, (uint16_t)(lsn % 5u), p, rec_len(lsn)), (int64_t)lsn);
        if (lsn % per_commit == 0 || lsn == to)
            assert_int_equal(wal_commit(w, true), 0);
    }
    assert_int_equal(wal_durable_lsn(w), to);
}

/* The newest segment's file name. */
static void last_segment(char *out, size_t cap)
{
    DIR *d = opendir(dir_path);
    assert_non_null(d);
    char best[300] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "wal-", 4) == 0 && strcmp(e->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", e->d_name);
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(out, cap, "%s/%s", dir_path, best);
}

static int count_segments(void)
{
    DIR *d = opendir(dir_path);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "wal-", 4) == 0;
    closedir(d);
    return n;
}

/* Offset of record lsn in a segment that starts at lsn first. */
static off_t record_offset(uint64_t first, uint64_t lsn)
{
    off_t off = WAL_SEGMENT_HEADER;
    for (uint64_t l = first; l < lsn; l++)
        off += WAL_RECORD_HEADER + ((rec_len(l) + 7u) & ~7u);
    return off;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void roundtrip(bool direct)
{
    dir_fresh("roundtrip", direct);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(direct, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(rec.records, 0);
    append_range(w, 1, RECORDS / 2, 7);
    wal_close(w);
    w = open_log(direct, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.count, RECORDS / 2);
    assert_int_equal(s.bad, 0);
    assert_false(rec.torn);
    assert_int_equal(wal_last_lsn(w), RECORDS / 2);
    append_range(w, RECORDS / 2 + 1, RECORDS, 13); /* appends after a reopening continue the lsns */
    wal_close(w);
    w = open_log(direct, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.count, RECORDS);
    assert_int_equal(s.first_lsn, 1);
    assert_int_equal(s.bad, 0);
    wal_close(w);
    dir_remove();
}

static void test_roundtrip_buffered(void **state)
{
    (void)state;
    roundtrip(false);
}

static void test_roundtrip_direct(void **state)
{
    (void)state;
    roundtrip(true);
}

/* A record cut in the middle (its checksum fails, nothing valid after it) is a
 * torn tail: cut, and the log goes on from there; a second reopening finds no tear. */
static void torn(bool direct)
{
    dir_fresh("torn", direct);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(direct, 0, &s, &rec, &rc);
    append_range(w, 1, 100, 10);
    wal_close(w);
    char seg[512];
    last_segment(seg, sizeof seg);
    flip_byte(seg, record_offset(1, 100) + WAL_RECORD_HEADER + 1); /* the last record's payload */
    w = open_log(direct, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.count, 99);
    assert_int_equal(s.bad, 0);
    assert_true(rec.torn);
    assert_true(rec.torn_bytes > 0);
    assert_int_equal(wal_last_lsn(w), 99);
    append_range(w, 100, 150, 4);
    wal_close(w);
    w = open_log(direct, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.count, 150);
    assert_int_equal(s.bad, 0);
    assert_false(rec.torn);
    wal_close(w);

    /* A record whose length runs past the end of the file. */
    last_segment(seg, sizeof seg);
    assert_int_equal(truncate(seg, record_offset(1, 150) + WAL_RECORD_HEADER + 3), 0);
    w = open_log(direct, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.count, 149);
    assert_int_equal(s.bad, 0);
    wal_close(w);
    dir_remove();
}

static void test_torn_buffered(void **state)
{
    (void)state;
    torn(false);
}

static void test_torn_direct(void **state)
{
    (void)state;
    torn(true);
}

/* A bad record with a valid one after it is not a tear: wal_open refuses. */
static void test_corrupt_middle(void **state)
{
    (void)state;
    dir_fresh("corrupt", false);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(false, 0, &s, &rec, &rc);
    append_range(w, 1, 50, 50);
    wal_close(w);
    char seg[512];
    last_segment(seg, sizeof seg);
    flip_byte(seg, record_offset(1, 20) + 20); /* record 20's checksum */
    w = open_log(false, 0, &s, &rec, &rc);
    assert_null(w);
    assert_int_equal(rc, BFTKV_E_CORRUPT);
    assert_int_equal(s.count, 19); /* what came before was handed over, nothing after */

    flip_byte(seg, record_offset(1, 20) + 20); /* repaired */
    flip_byte(seg, 3);                         /* the segment's magic */
    w = open_log(false, 0, &s, &rec, &rc);
    assert_null(w);
    assert_int_equal(rc, BFTKV_E_CORRUPT);
    dir_remove();
}

/* Segments: a small segment size makes many; dropping the old ones leaves a log
 * that starts later and reopens; removing a middle one is corruption (a gap). */
static void test_segments(void **state)
{
    (void)state;
    dir_fresh("segments", false);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(false, 64u << 10, &s, &rec, &rc);
    append_range(w, 1, RECORDS, 20);
    int n = count_segments();
    assert_true(n >= 5);
    struct wal_stats st;
    wal_stats_get(w, &st);
    assert_int_equal(st.segments, (uint64_t)n);
    assert_int_equal(wal_segment_start(w), 0);
    append_range(w, RECORDS + 1, RECORDS + 10, 5);
    assert_int_equal(wal_drop_before(w, RECORDS + 1), 0);
    assert_int_equal(count_segments(), 1);
    wal_close(w);
    w = open_log(false, 64u << 10, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.first_lsn, RECORDS + 1);
    assert_int_equal(s.count, 10);
    assert_int_equal(s.bad, 0);
    append_range(w, RECORDS + 11, 2 * RECORDS, 20);
    wal_close(w);

    /* Remove a middle segment by hand. */
    DIR *d = opendir(dir_path);
    char names[64][300];
    int k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && k < 64)
        if (strncmp(e->d_name, "wal-", 4) == 0)
            snprintf(names[k++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    assert_true(k >= 3);
    qsort(names, (size_t)k, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir_path, names[1]);
    assert_int_equal(unlink(p), 0);
    w = open_log(false, 64u << 10, &s, &rec, &rc);
    assert_null(w);
    assert_int_equal(rc, BFTKV_E_CORRUPT);
    dir_remove();
}

/* An asynchronous commit writes without syncing; a synchronous commit with nothing
 * new still syncs it, and only then is it durable. */
static void test_async_then_sync(void **state)
{
    (void)state;
    dir_fresh("async", false);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(false, 0, &s, &rec, &rc);
    struct wal_stats st;
    wal_stats_get(w, &st);
    uint64_t syncs0 = st.syncs; /* the new segment's header was synced */
    uint8_t p[PAYLOAD_MAX];
    rec_fill(p, 1);
    assert_int_equal(wal_append(w, 1, p, rec_len(1)), 1);
    assert_int_equal(wal_commit(w, false), 0);
    assert_int_equal(wal_durable_lsn(w), 0);
    wal_stats_get(w, &st);
    assert_int_equal(st.syncs, syncs0);
    assert_int_equal(wal_commit(w, true), 0);
    assert_int_equal(wal_durable_lsn(w), 1);
    wal_stats_get(w, &st);
    assert_int_equal(st.syncs, syncs0 + 1);
    assert_int_equal(wal_commit(w, true), 0); /* nothing new, nothing to sync */
    wal_stats_get(w, &st);
    assert_int_equal(st.syncs, syncs0 + 1);
    wal_close(w);
    dir_remove();
}

/* Commits submitted without waiting: the committed lsn only moves over whole
 * commits in order, never past the last lsn; a third submit with two in flight
 * waits for the oldest (slot_waits); everything comes back on reopening. */
static void test_pipelined(void **state)
{
    (void)state;
    dir_fresh("pipelined", false);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(false, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    uint8_t p[PAYLOAD_MAX];
    int64_t last_id = 0;
    uint64_t committed = 0;
    for (uint64_t lsn = 1; lsn <= RECORDS; lsn++) {
        rec_fill(p, lsn);
        assert_int_equal(wal_append(w, (uint16_t)(lsn % 5u), p, rec_len(lsn)), (int64_t)lsn);
        if (lsn % 5 != 0)
            continue;
        int64_t id = wal_commit_submit(w, true);
        assert_true(id > last_id); /* increasing (a segment header takes one too) */
        last_id = id;
        assert_true(wal_commits_in_flight(w) >= 1);
        assert_true(wal_commits_in_flight(w) <= WAL_INFLIGHT_DEFAULT);
        assert_int_equal(wal_commit_reap(w, 0), 0);
        assert_true(wal_committed_lsn(w) >= committed);
        assert_true(wal_committed_lsn(w) <= lsn);
        assert_int_equal(wal_committed_lsn(w) % 5, 0); /* whole commits only */
        assert_int_equal(wal_durable_lsn(w), wal_committed_lsn(w));
        committed = wal_committed_lsn(w);
    }
    assert_int_equal(wal_commit_submit(w, true), 0); /* nothing new */
    while (wal_commits_in_flight(w) > 0)
        assert_int_equal(wal_commit_reap(w, -1), 0);
    assert_int_equal(wal_committed_lsn(w), RECORDS);
    assert_int_equal(wal_durable_lsn(w), RECORDS);
    /* Three submits without a reap: the third waits for the first. */
    struct wal_stats st;
    wal_stats_get(w, &st);
    uint64_t waits0 = st.slot_waits;
    for (uint64_t lsn = RECORDS + 1; lsn <= RECORDS + 3; lsn++) {
        rec_fill(p, lsn);
        assert_int_equal(wal_append(w, (uint16_t)(lsn % 5u), p, rec_len(lsn)), (int64_t)lsn);
        assert_true(wal_commit_submit(w, true) > 0);
    }
    wal_stats_get(w, &st);
    assert_int_equal(st.slot_waits, waits0 + 1);
    assert_true(wal_committed_lsn(w) >= RECORDS + 1);
    wal_close(w); /* waits for what is in flight */
    w = open_log(false, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(s.count, RECORDS + 3);
    assert_int_equal(s.bad, 0);
    wal_close(w);
    dir_remove();
}

/* A write that fails in flight: the reap reports it, the committed lsn stays
 * where the completed commits left it, and the log is failed for good. */
static void test_pipelined_write_fails(void **state)
{
    (void)state;
    dir_fresh("writefail", false);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(false, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    append_range(w, 1, 10, 5);
    char seg[600];
    last_segment(seg, sizeof seg);
    int ro = open(seg, O_RDONLY);
    assert_true(ro >= 0);
    assert_true(dup2(ro, w->fd) == w->fd); /* the segment's descriptor, read-only now */
    close(ro);
    uint8_t p[PAYLOAD_MAX];
    rec_fill(p, 11);
    assert_int_equal(wal_append(w, 1, p, rec_len(11)), 11);
    assert_true(wal_commit_submit(w, true) > 0);
    assert_int_equal(wal_commit_reap(w, -1), BFTKV_E_IO);
    assert_int_equal(wal_failed(w), BFTKV_E_IO);
    assert_int_equal(wal_committed_lsn(w), 10);
    assert_int_equal(wal_durable_lsn(w), 10);
    assert_non_null(strstr(wal_error(w), "write"));
    assert_int_equal(wal_commit_submit(w, true), BFTKV_E_IO);
    assert_int_equal(wal_append(w, 1, p, 1), BFTKV_E_IO);
    assert_int_equal(wal_committed_lsn(w), 10);
    wal_close(w);
    dir_remove();
}

/* Asynchronous pipelined commits: written, not synced; a sync commit then
 * covers them. */
static void test_pipelined_async(void **state)
{
    (void)state;
    dir_fresh("pipeasync", false);
    struct seen s;
    struct wal_recovery rec;
    int rc;
    struct wal *w = open_log(false, 0, &s, &rec, &rc);
    assert_int_equal(rc, 0);
    uint8_t p[PAYLOAD_MAX];
    for (uint64_t lsn = 1; lsn <= 20; lsn++) {
        rec_fill(p, lsn);
        assert_int_equal(wal_append(w, (uint16_t)(lsn % 5u), p, rec_len(lsn)), (int64_t)lsn);
        assert_true(wal_commit_submit(w, false) > 0);
    }
    while (wal_commits_in_flight(w) > 0)
        assert_int_equal(wal_commit_reap(w, -1), 0);
    assert_int_equal(wal_committed_lsn(w), 20);
    assert_int_equal(wal_durable_lsn(w), 0);
    assert_true(wal_commit_submit(w, true) > 0); /* a sync alone */
    while (wal_commits_in_flight(w) > 0)
        assert_int_equal(wal_commit_reap(w, -1), 0);
    assert_int_equal(wal_durable_lsn(w), 20);
    wal_close(w);
    dir_remove();
}

/* Bounds: a payload over the limit, and a buffer that cannot hold the next record. */
static void test_limits(void **state)
{
    (void)state;
    dir_fresh("limits", false);
    struct wal_options o = {.dir = dir_path, .buffer_bytes = 4096};
    struct wal *w = NULL;
    char err[256];
    assert_int_equal(wal_open(&w, &o, NULL, NULL, NULL, err, sizeof err), 0);
    static uint8_t big[8192];
    assert_int_equal(wal_append(w, 0, big, WAL_PAYLOAD_MAX + 1), BFTKV_E_RANGE);
    assert_int_equal(wal_append(w, 0, big, 8192), BFTKV_E_FULL);
    assert_int_equal(wal_append(w, 0, big, 1000), 1);
    assert_int_equal(wal_append(w, 0, big, 1000), 2);
    assert_int_equal(wal_append(w, 0, big, 2100), BFTKV_E_FULL); /* 2 x 1032 + 2132 > 4096 */
    assert_int_equal(wal_commit(w, true), 0);
    assert_int_equal(wal_append(w, 0, big, 2100), 3);
    wal_close(w);
    o.dir = "/nonexistent/bftkv-wal";
    assert_int_equal(wal_open(&w, &o, NULL, NULL, NULL, err, sizeof err), BFTKV_E_IO);
    assert_non_null(strstr(err, "/nonexistent/bftkv-wal"));
    dir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_buffered), cmocka_unit_test(test_roundtrip_direct),
        cmocka_unit_test(test_torn_buffered),      cmocka_unit_test(test_torn_direct),
        cmocka_unit_test(test_corrupt_middle),     cmocka_unit_test(test_segments),
        cmocka_unit_test(test_async_then_sync),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pipelined),          cmocka_unit_test(test_pipelined_write_fails),
        cmocka_unit_test(test_pipelined_async),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
