/* Sessions: the lanes a client handle leases (include/bftkv/client.h, "Sessions").
 *
 * The replicas keep one reply-cache slot and one "last timestamp" per (client,
 * lane) (docs/design.md §5.3) and drop a request whose timestamp is not newer.
 * Two handles that send on the same lane of one client id therefore disturb each
 * other: the one with the older timestamps loses its requests. So a handle leases
 * the lanes it uses, a contiguous run [base, base + count) of the config's
 * client_lanes, and no other handle on this machine uses them meanwhile.
 *
 * A lease is a set of flock(2) locks, one per lane, on files of a per-user runtime
 * directory ($BFTKV_RUNTIME_DIR, else $XDG_RUNTIME_DIR/bftkv, else
 * /tmp/bftkv-<uid>; created 0700, refused unless owned by this user and closed to
 * others' writes). A lane's file is named by the group id, the client id, a
 * fingerprint of the client's public keys (different clusters never share a file)
 * and the lane number. flock locks belong to the open file description, so they
 * also separate two handles of one process, and the kernel drops them when the
 * process dies: a crashed process's lanes are free at once.
 *
 * Choosing the run is serialised by one more lock file per client identity (the
 * "lease" file), held for the few microseconds of a scan: inside it a handle tries
 * each lane of its range in order, stops at the first free run of the length it
 * wants, else keeps the longest free run it saw; with no free lane it fails with
 * BFTKV_E_SESSION_BUSY or, when asked to, sleeps and scans again until its wait
 * is over.
 *
 * What a lane's file holds: one text line, "pid=P addr=A port=N first_ts=T
 * last_ts=U", written by its holder. addr/port is the holder's UDP socket (the
 * replicas route every reply of a client id to the address of its newest request,
 * server/server.h "address book", so a handle forwards a reply for a lane it does not
 * hold to that lane's holder: client_io.c). first_ts/last_ts bound the
 * timestamps the holder used; a clean release drops addr and port and records the
 * last timestamp it sent.
 *
 * Timestamps of a new lessee exceed every earlier lessee's on its lanes. A handle
 * starts its timestamps at max(wall-clock ns, the largest first_ts/last_ts found
 * in its lanes' files) + 1, and then counts up by one per request. An earlier
 * lessee that released cleanly wrote its last timestamp; one that crashed started
 * at its own wall-clock time and sent fewer requests than nanoseconds passed
 * until it died, so its timestamps stay below the wall clock of any later lessee
 * (unless the clock was stepped back meanwhile, which the recorded first_ts also
 * covers up to the crashed holder's start).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "client/client_internal.h"

#define SESSION_LINE_MAX 256u
/* How long the scan lock may be waited for: its holders keep it for microseconds. */
#define SESSION_SCAN_LOCK_WAIT_MS 2000u
/* Sleeps between scans while waiting for a free lane. */
#define SESSION_POLL_MIN_MS 2u
#define SESSION_POLL_MAX_MS 50u

static void session_sleep_ms(uint32_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Create dir (mode 0700) if missing, then insist that it is a real directory of
 * this user that nobody else may write: its lock files decide who may send on
 * which lane. */
static int session_dir_check(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        errbuf_put(err, errlen, "bftkv client: cannot create the session directory %s: %s (set BFTKV_RUNTIME_DIR)",
                    dir, strerror(errno));
        return BFTKV_E_IO;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        errbuf_put(err, errlen, "bftkv client: session directory %s: %s", dir, strerror(errno));
        return BFTKV_E_IO;
    }
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
        errbuf_put(err, errlen,
                    "bftkv client: session directory %s is not a directory of this user closed to others' "
                    "writes (set BFTKV_RUNTIME_DIR)",
                    dir);
        return BFTKV_E_IO;
    }
    return 0;
}

int client_session_dir(char *out, size_t cap, char *err, size_t errlen)
{
    const char *env = getenv("BFTKV_RUNTIME_DIR");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int len;
    if (env != NULL && env[0] != '\0') {
        len = snprintf(out, cap, "%s", env);
    } else if (xdg != NULL && xdg[0] != '\0') {
        len = snprintf(out, cap, "%s/bftkv", xdg);
    } else {
        len = snprintf(out, cap, "/tmp/bftkv-%u", (unsigned)geteuid());
    }
    if (len < 0 || (size_t)len >= cap) {
        errbuf_put(err, errlen, "bftkv client: the session directory's path is too long");
        return BFTKV_E_IO;
    }
    return session_dir_check(out, err, errlen);
}

/* "g<group>-c<client>-<fingerprint>": the fingerprint is BLAKE2b-64 of the
 * client's public keys, so a cluster created anew (new keys) never meets the old
 * one's files. */
static void session_prefix(char *out, size_t cap, const struct bftkv_config *cfg, uint16_t client_id)
{
    uint8_t fp[8];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof fp);
    crypto_generichash_update(&st, cfg->client[client_id].x25519, sizeof cfg->client[client_id].x25519);
    crypto_generichash_update(&st, cfg->client[client_id].ed25519, sizeof cfg->client[client_id].ed25519);
    crypto_generichash_final(&st, fp, sizeof fp);
    char hex[2 * sizeof fp + 1];
    sodium_bin2hex(hex, sizeof hex, fp, sizeof fp);
    snprintf(out, cap, "g%u-c%u-%s", cfg->group, client_id, hex);
}

static int session_path(const struct client_lease *ls, char *out, size_t cap, const char *what)
{
    int len = snprintf(out, cap, "%s/%s-%s", ls->dir, ls->prefix, what);
    return len > 0 && (size_t)len < cap ? 0 : BFTKV_E_IO;
}

static int session_lane_path(const struct client_lease *ls, uint16_t lane, char *out, size_t cap)
{
    char what[16];
    snprintf(what, sizeof what, "lane%02u", lane);
    return session_path(ls, out, cap, what);
}

static int session_open(const char *path)
{
    return open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
}

/* The lease file serialises scans: a handle scans with it held. */
static int session_scan_lock(const struct client_lease *ls, char *err, size_t errlen)
{
    char path[PATH_MAX];
    if (session_path(ls, path, sizeof path, "lease") != 0) {
        errbuf_put(err, errlen, "bftkv client: the session directory's path is too long");
        return -1;
    }
    int fd = session_open(path);
    if (fd < 0) {
        errbuf_put(err, errlen, "bftkv client: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    for (uint32_t waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited++) {
        if ((errno != EWOULDBLOCK && errno != EINTR) || waited >= SESSION_SCAN_LOCK_WAIT_MS) {
            errbuf_put(err, errlen, "bftkv client: cannot lock %s: %s", path,
                        errno == EWOULDBLOCK ? "held too long by another process" : strerror(errno));
            close(fd);
            return -1;
        }
        session_sleep_ms(1);
    }
    return fd;
}

/* Parse "key=value" fields of a lane file's line. */
static bool session_field(const char *line, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += klen) {
        if ((p == line || p[-1] == ' ') && p[klen] == '=') {
            p += klen + 1;
            size_t n = strcspn(p, " \n");
            if (n == 0 || n >= cap) {
                return false;
            }
            memcpy(out, p, n);
            out[n] = '\0';
            return true;
        }
    }
    return false;
}

static uint64_t session_field_u64(const char *line, const char *key)
{
    char v[32];
    if (!session_field(line, key, v, sizeof v)) {
        return 0;
    }
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    return end != NULL && *end == '\0' ? (uint64_t)x : 0;
}

static ssize_t session_read_line(int fd, char *line, size_t cap)
{
    ssize_t got = pread(fd, line, cap - 1u, 0);
    line[got > 0 ? got : 0] = '\0';
    return got;
}

/* The highest timestamp an earlier lessee of this lane may have used. */
static uint64_t session_lane_floor(int fd)
{
    char line[SESSION_LINE_MAX];
    if (session_read_line(fd, line, sizeof line) <= 0) {
        return 0;
    }
    uint64_t a = session_field_u64(line, "first_ts");
    uint64_t b = session_field_u64(line, "last_ts");
    return a > b ? a : b;
}

static void session_write_line(int fd, const char *line)
{
    size_t len = strlen(line);
    if (pwrite(fd, line, len, 0) == (ssize_t)len) {
        (void)ftruncate(fd, (off_t)len);
    }
}

static void session_close_run(int *fds, uint16_t from, uint16_t to)
{
    for (uint16_t i = from; i < to; i++) {
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
}

/* One scan of lanes [first, end) with the lease file held: the first free run of
 * `want` lanes, else the longest free run. fds[lane] holds the locked file of
 * every lane of the chosen run, -1 elsewhere. Returns the run's length (0: every
 * lane busy) and its first lane in *base. */
static int session_scan(struct client_lease *ls, uint16_t first, uint16_t end, uint16_t want, int *fds,
                        uint16_t *base, char *err, size_t errlen)
{
    uint16_t best = 0, best_base = first, run = 0, run_base = first;
    for (uint16_t lane = first; lane < end && best < want; lane++) {
        char path[PATH_MAX];
        int fd = session_lane_path(ls, lane, path, sizeof path) == 0 ? session_open(path) : -1;
        if (fd < 0) {
            errbuf_put(err, errlen, "bftkv client: cannot open the lane file %s/%s-lane%02u: %s", ls->dir,
                        ls->prefix, lane, strerror(errno));
            session_close_run(fds, first, end);
            return BFTKV_E_IO;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            fds[lane] = fd;
            run_base = run == 0 ? lane : run_base;
            run++;
        } else {
            close(fd);
            run = 0;
        }
        if (run > best) {
            best = run;
            best_base = run_base;
        }
    }
    /* release whatever is locked outside the best run */
    for (uint16_t i = first; i < end; i++) {
        if (fds[i] >= 0 && (i < best_base || i >= best_base + best)) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    *base = best_base;
    return best;
}

int client_session_lease(struct client_lease *ls, const struct bftkv_config *cfg, uint16_t client_id,
                         const struct bftkv_client_options *opt, char *err, size_t errlen)
{
    memset(ls, 0, sizeof *ls);
    for (uint32_t i = 0; i < PBFT_LANES_MAX; i++) {
        ls->fds[i] = -1;
    }
    uint16_t first = opt->lane_first;
    uint32_t lanes_total = cfg->client_lanes;
    uint32_t span = opt->lane_count;
    if (span == 0) {
        span = first < lanes_total ? lanes_total - first : 0u;
    }
    if (span == 0 || (uint32_t)first + span > lanes_total) {
        errbuf_put(err, errlen,
                    "bftkv client: lanes from %u (lane_first), %u of them (lane_count) asked; the config has "
                    "client_lanes %u",
                    first, (unsigned)opt->lane_count, (unsigned)lanes_total);
        return BFTKV_E_INVAL;
    }
    uint16_t want = opt->lanes != 0 ? opt->lanes : (uint16_t)span;
    if (want > span) {
        errbuf_put(err, errlen, "bftkv client: %u lanes asked, the range allows %u (client_lanes %u)", want,
                    (unsigned)span, cfg->client_lanes);
        return BFTKV_E_INVAL;
    }
    int rc = client_session_dir(ls->dir, sizeof ls->dir, err, errlen);
    if (rc != 0) {
        return rc;
    }
    session_prefix(ls->prefix, sizeof ls->prefix, cfg, client_id);
    uint16_t end = (uint16_t)(first + span);
    uint64_t wait_ms = opt->session_wait_ms > 0 ? (uint64_t)opt->session_wait_ms : 0u;
    uint64_t deadline = client_io_now_ns() + wait_ms * 1000000u;
    uint32_t pause_ms = SESSION_POLL_MIN_MS;
    for (;;) {
        int scan_fd = session_scan_lock(ls, err, errlen);
        if (scan_fd < 0) {
            return BFTKV_E_IO;
        }
        uint16_t base = first;
        int got = session_scan(ls, first, end, want, ls->fds, &base, err, errlen);
        close(scan_fd);
        if (got < 0) {
            return got;
        }
        if (got > 0) {
            ls->base = base;
            ls->count = (uint16_t)got;
            break;
        }
        if (client_io_now_ns() >= deadline) {
            errbuf_put(err, errlen,
                        "bftkv client: every lane %u..%u of client %u is leased by another handle or process "
                        "(lock files %s/%s-lane*)%s",
                        first, end - 1u, client_id, ls->dir, ls->prefix,
                        opt->session_wait_ms > 0 ? "; waited in vain" : "");
            return BFTKV_E_SESSION_BUSY;
        }
        session_sleep_ms(pause_ms);
        pause_ms = pause_ms * 2u > SESSION_POLL_MAX_MS ? SESSION_POLL_MAX_MS : pause_ms * 2u;
    }
    for (uint16_t i = 0; i < ls->count; i++) {
        uint64_t f = session_lane_floor(ls->fds[ls->base + i]);
        ls->ts_floor = f > ls->ts_floor ? f : ls->ts_floor;
    }
    BFTKV_ASSERT(ls->count >= 1);
    BFTKV_ASSERT(ls->base + ls->count <= end);
    return 0;
}

void client_session_publish(struct client_lease *ls, const struct sockaddr_storage *addr)
{
    char host[INET6_ADDRSTRLEN] = "";
    uint16_t port = 0;
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
    } else if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
    }
    uint64_t first_ts = ls->first_ts;
    char line[SESSION_LINE_MAX];
    snprintf(line, sizeof line, "pid=%ld addr=%s port=%u first_ts=%" PRIu64 " last_ts=%" PRIu64 "\n",
             (long)getpid(), host, port, first_ts, first_ts);
    for (uint16_t i = 0; i < ls->count; i++) {
        session_write_line(ls->fds[ls->base + i], line);
    }
}

void client_session_release(struct client_lease *ls, uint64_t last_ts)
{
    char line[SESSION_LINE_MAX];
    snprintf(line, sizeof line, "pid=0 first_ts=%" PRIu64 " last_ts=%" PRIu64 "\n", ls->first_ts, last_ts);
    for (uint16_t i = 0; i < ls->count; i++) {
        int fd = ls->fds[ls->base + i];
        if (fd >= 0) {
            if (ls->first_ts != 0) {
                session_write_line(fd, line);
            }
            close(fd);
            ls->fds[ls->base + i] = -1;
        }
    }
    ls->count = 0;
}

int client_session_owner(const struct client_lease *ls, uint16_t lane, struct sockaddr_storage *addr,
                         socklen_t *alen)
{
    char path[PATH_MAX];
    if (session_lane_path(ls, lane, path, sizeof path) != 0) {
        return BFTKV_E_IO;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return BFTKV_E_NOT_FOUND;
    }
    char line[SESSION_LINE_MAX], host[INET6_ADDRSTRLEN + 1];
    ssize_t got = session_read_line(fd, line, sizeof line);
    close(fd);
    uint64_t port = got > 0 ? session_field_u64(line, "port") : 0;
    if (port == 0 || port > UINT16_MAX || !session_field(line, "addr", host, sizeof host)) {
        return BFTKV_E_NOT_FOUND;
    }
    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *s4 = (struct sockaddr_in *)addr;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)addr;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        *alen = sizeof *s4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        *alen = sizeof *s6;
        return 0;
    }
    return BFTKV_E_NOT_FOUND;
}
