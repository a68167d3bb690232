/* wal_bench: what one group commit of the write-ahead log costs (server/wal.c),
 * buffered + fdatasync against O_DIRECT + fdatasync, on the file system of a
 * given directory (default: the working directory). The measurement behind the
 * choice in docs/design.md §9; not a test (server_bench's rule: the smoke test
 * only checks that it runs).
 *
 *   wal_bench [--dir D] [--commits N] [--records R] [--size B] [--direct] [--async]
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/wal.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *parent = ".";
    unsigned commits = 2000, records = 37, size = 64;
    bool direct = false, sync = true;
    static const struct option opts[] = {{"dir", 1, 0, 'd'},    {"commits", 1, 0, 'n'}, {"records", 1, 0, 'r'},
                                         {"size", 1, 0, 's'},   {"direct", 0, 0, 'D'},  {"async", 0, 0, 'a'},
                                         {NULL, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': parent = optarg; break;
        case 'n': commits = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': records = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': size = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'D': direct = true; break;
        case 'a': sync = false; break;
        default:
            fprintf(stderr, "usage: wal_bench [--dir D] [--commits N] [--records R] [--size B] [--direct] [--async]\n");
            return 2;
        }
    }
    if (commits == 0 || records == 0 || size > 65536) {
        fprintf(stderr, "wal_bench: --commits and --records must be > 0, --size at most 65536\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/wal_bench.%d", parent, (int)getpid());
    if (mkdir(dir, 0700) != 0) {
        perror(dir);
        return 1;
    }
    struct wal_options o = {.dir = dir, .direct = direct};
    struct wal *w = NULL;
    char err[256];
    if (wal_open(&w, &o, NULL, NULL, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "wal_bench: %s\n", err);
        return 1;
    }
    uint8_t *rec = calloc(1, size > 0 ? size : 1);
    uint64_t *lat = calloc(commits, sizeof *lat);
    if (rec == NULL || lat == NULL)
        return 1;
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < commits; i++) {
        uint64_t t = now_ns();
        for (unsigned k = 0; k < records; k++) {
            rec[0] = (uint8_t)k;
            if (wal_append(w, 1, rec, size) < 0) {
                fprintf(stderr, "wal_bench: append failed\n");
                return 1;
            }
        }
        if (wal_commit(w, sync) != 0) {
            fprintf(stderr, "wal_bench: %s\n", wal_error(w));
            return 1;
        }
        lat[i] = now_ns() - t;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    qsort(lat, commits, sizeof *lat, cmp_u64);
    struct wal_stats st;
    wal_stats_get(w, &st);
    printf("wal_bench %s%s: %u commits of %u x %u B: %.0f commits/s, %.0f records/s, %.1f MB/s; commit p50 %.1f us, "
           "p99 %.1f us, max %.1f us\n",
           direct ? "direct" : "buffered", sync ? "+fdatasync" : " (no sync)", commits, records, size,
           commits / secs, (double)commits * records / secs, (double)st.bytes / secs / 1e6,
           (double)lat[commits / 2] / 1e3, (double)lat[commits * 99 / 100] / 1e3, (double)lat[commits - 1] / 1e3);
    wal_close(w);
    free(rec);
    free(lat);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
