/* The write-ahead log on a full disk (server/wal.c): a 256 KiB tmpfs mounted in a
 * private mount namespace fills up; the log then fails with BFTKV_E_FULL and stays
 * failed (every later append and commit says so, nothing more becomes durable),
 * and a reopening recovers exactly the records that commits made durable. Needs
 * root for the mount namespace: exits 77 (skipped) without it.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "server/wal.h"

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "wal_full_test: %s:%d: check failed: %s\n", __FILE__,   \
                    __LINE__, #cond);                                                 \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static int count_record(void *arg, uint64_t lsn, uint16_t type, const uint8_t *payload, uint32_t len)
{
    (void)type;
    uint64_t *n = arg;
    if (lsn != *n + 1 || len != 1000 || payload[0] != (uint8_t)lsn)
        return BFTKV_E_CORRUPT;
    (*n)++;
    return 0;
}

int main(void)
{
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        fprintf(stderr, "wal_full_test: skipped: no private mount namespace (%s); needs root\n", strerror(errno));
        return 77;
    }
    char dir[] = "/tmp/bftkv-wal-full.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    CHECK(mount("tmpfs", dir, "tmpfs", 0, "size=256k") == 0);

    struct wal_options o = {.dir = dir, .buffer_bytes = 64u << 10, .segment_bytes = 64u << 10};
    struct wal *w = NULL;
    char err[256] = "";
    CHECK(wal_open(&w, &o, NULL, NULL, NULL, err, sizeof err) == 0);
    uint8_t rec[1000];
    int rc = 0;
    for (uint64_t i = 1; i < 10000 && rc == 0; i++) {
        memset(rec, (int)(uint8_t)i, sizeof rec);
        int64_t lsn = wal_append(w, 1, rec, sizeof rec);
        CHECK(lsn == (int64_t)i);
        rc = wal_commit(w, true);
    }
    CHECK(rc == BFTKV_E_FULL);
    CHECK(wal_failed(w) == BFTKV_E_FULL);
    CHECK(strstr(wal_error(w), strerror(ENOSPC)) != NULL);
    uint64_t durable = wal_durable_lsn(w);
    CHECK(durable > 0);
    CHECK(wal_append(w, 1, rec, sizeof rec) == BFTKV_E_FULL); /* failed for good */
    CHECK(wal_commit(w, true) == BFTKV_E_FULL);
    CHECK(wal_durable_lsn(w) == durable);
    fprintf(stderr, "wal_full_test: full after %llu durable records: %s\n", (unsigned long long)durable,
            wal_error(w));
    wal_close(w);

    uint64_t n = 0;
    struct wal_recovery r;
    rc = wal_open(&w, &o, count_record, &n, &r, err, sizeof err);
    CHECK(rc == 0 || rc == BFTKV_E_FULL);
    CHECK(n >= durable); /* nothing a commit made durable is lost */
    CHECK(n <= durable + 1); /* at most the record whose commit failed was written */
    if (w != NULL)
        wal_close(w);
    CHECK(umount(dir) == 0);
    rmdir(dir);
    return 0;
}
