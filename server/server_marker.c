/* The group marker (server/server_marker.h): reading, checking and writing
 * data_dir/replica-<id>/marker. */
#include "server/server_marker.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/errbuf.h"

#define MARKER_MAGIC "bftkv-marker 1"
#define MARKER_TEXT_MAX 512u

struct marker {
    uint64_t group, replica, n, f;
    bool started;
    char initialised[40];
};

static int marker_fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    errbuf_vput(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static int path_of(char *buf, size_t cap, const struct bftkv_config *cfg, uint16_t id, const char *name)
{
    int len = name != NULL ? snprintf(buf, cap, "%s/replica-%u/%s", cfg->data_dir, id, name)
                           : snprintf(buf, cap, "%s/replica-%u", cfg->data_dir, id);
    return len > 0 && (size_t)len < cap ? 0 : -1;
}

/* mkdir -p of data_dir and data_dir/replica-<id>, mode 0700 for what it creates. */
static int dirs_make(const struct bftkv_config *cfg, uint16_t id, char *err, size_t errlen)
{
    char path[BFTKV_CONFIG_PATH_MAX + 32];
    if (path_of(path, sizeof path, cfg, id, NULL) != 0)
        return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s: data_dir path too long", cfg->name);
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return marker_fail(err, errlen, BFTKV_E_IO, "cannot create %.*s: %s", (int)(p - path), path,
                               strerror(errno));
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return marker_fail(err, errlen, BFTKV_E_IO, "cannot create %s: %s", path, strerror(errno));
    return 0;
}

static int marker_parse(const char *path, char *text, struct marker *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    unsigned line = 0, seen = 0;
    bool state_seen = false;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL; l = strtok_r(NULL, "\n", &save)) {
        line++;
        if (line == 1) {
            if (strcmp(l, MARKER_MAGIC) != 0)
                return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s:1: not a bftkv marker (expected '%s')", path,
                                   MARKER_MAGIC);
            continue;
        }
        char key[16], val[40];
        if (sscanf(l, "%15s %39s", key, val) != 2)
            return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s:%u: malformed line", path, line);
        uint64_t *num = strcmp(key, "group") == 0     ? &m->group
                        : strcmp(key, "replica") == 0 ? &m->replica
                        : strcmp(key, "n") == 0       ? &m->n
                        : strcmp(key, "f") == 0       ? &m->f
                                                      : NULL;
        if (num != NULL) {
            char *end = NULL;
            errno = 0;
            *num = strtoull(val, &end, 10);
            if (errno != 0 || *end != '\0' || val[0] == '-')
                return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s:%u: '%s' is not a number", path, line, val);
            seen++;
        } else if (strcmp(key, "state") == 0) {
            if (strcmp(val, "started") != 0 && strcmp(val, "fresh") != 0)
                return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s:%u: state '%s' is not fresh or started", path,
                                   line, val);
            m->started = strcmp(val, "started") == 0;
            state_seen = true;
        } else if (strcmp(key, "initialised") == 0) {
            snprintf(m->initialised, sizeof m->initialised, "%s", val);
        } else {
            return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s:%u: unknown field '%s'", path, line, key);
        }
    }
    if (line == 0 || seen != 4 || !state_seen)
        return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s: incomplete marker (group, replica, n, f, state)", path);
    return 0;
}

/* 0 and *found, or an error. A missing file is found = false. */
static int marker_read(const char *path, struct marker *m, bool *found, char *err, size_t errlen)
{
    *found = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return marker_fail(err, errlen, BFTKV_E_IO, "cannot read %s: %s", path, strerror(errno));
    }
    char text[MARKER_TEXT_MAX + 1];
    ssize_t got = read(fd, text, MARKER_TEXT_MAX);
    int saved = errno;
    close(fd);
    if (got < 0)
        return marker_fail(err, errlen, BFTKV_E_IO, "cannot read %s: %s", path, strerror(saved));
    text[got] = '\0';
    *found = true;
    return marker_parse(path, text, m, err, errlen);
}

/* Write the marker atomically: temporary file, fsync, rename, fsync the directory. */
static int marker_write(const struct bftkv_config *cfg, uint16_t id, const struct marker *m, char *err, size_t errlen)
{
    char dir[BFTKV_CONFIG_PATH_MAX + 32], tmp[BFTKV_CONFIG_PATH_MAX + 32], path[BFTKV_CONFIG_PATH_MAX + 32];
    if (path_of(dir, sizeof dir, cfg, id, NULL) != 0 || path_of(tmp, sizeof tmp, cfg, id, "marker.tmp") != 0
        || path_of(path, sizeof path, cfg, id, "marker") != 0)
        return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s: data_dir path too long", cfg->name);
    char text[MARKER_TEXT_MAX];
    int len = snprintf(text, sizeof text,
                       MARKER_MAGIC "\ngroup %" PRIu64 "\nreplica %" PRIu64 "\nn %" PRIu64 "\nf %" PRIu64
                                    "\nstate %s\ninitialised %s\n",
                       m->group, m->replica, m->n, m->f, m->started ? "started" : "fresh", m->initialised);
    if (len < 0 || (size_t)len >= sizeof text)
        return marker_fail(err, errlen, BFTKV_E_IO, "%s: marker text too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return marker_fail(err, errlen, BFTKV_E_IO, "cannot create %s: %s", tmp, strerror(errno));
    bool ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok || rename(tmp, path) != 0) {
        saved = ok ? errno : saved;
        unlink(tmp);
        return marker_fail(err, errlen, BFTKV_E_IO, "cannot write %s: %s", path, strerror(saved));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        saved = errno;
        if (dfd >= 0)
            close(dfd);
        return marker_fail(err, errlen, BFTKV_E_IO, "cannot sync %s: %s", dir, strerror(saved));
    }
    close(dfd);
    return 0;
}

static void marker_new(struct marker *m, const struct bftkv_config *cfg, uint16_t id, bool started)
{
    memset(m, 0, sizeof *m);
    m->group = cfg->group;
    m->replica = id;
    m->n = cfg->n;
    m->f = cfg->f;
    m->started = started;
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(m->initialised, sizeof m->initialised, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int server_marker_open(const struct bftkv_config *cfg, uint16_t id, enum server_start_mode mode, bool *restarted,
                       char *err, size_t errlen)
{
    *restarted = false;
    if (cfg->data_dir[0] == '\0')
        return marker_fail(err, errlen, BFTKV_E_CONFIG,
                           "%s: no 'data_dir' line: a replica needs a data directory for its group marker "
                           "(docs/config.md)",
                           cfg->name);
    char path[BFTKV_CONFIG_PATH_MAX + 32];
    if (path_of(path, sizeof path, cfg, id, "marker") != 0)
        return marker_fail(err, errlen, BFTKV_E_CONFIG, "%s: data_dir path too long", cfg->name);
    int rc = dirs_make(cfg, id, err, errlen);
    if (rc != 0)
        return rc;
    struct marker m;
    bool found = false;
    rc = marker_read(path, &m, &found, err, errlen);
    if (rc != 0)
        return rc;
    if (found && (mode == SERVER_START_INIT || mode == SERVER_START_INIT_ONLY))
        return marker_fail(err, errlen, BFTKV_E_CONFIG,
                           "%s exists (initialised %s): this replica already belongs to a group; --init would "
                           "found a new, empty one. Start it without --init to rejoin",
                           path, m.initialised);
    if (found && (m.group != cfg->group || m.replica != id || m.n != cfg->n || m.f != cfg->f))
        return marker_fail(err, errlen, BFTKV_E_CONFIG,
                           "%s belongs to replica %" PRIu64 " of group %" PRIu64 " (n=%" PRIu64 " f=%" PRIu64
                           "), but %s makes this replica %u of group %u (n=%u f=%u): changing n or f means a new "
                           "group",
                           path, m.replica, m.group, m.n, m.f, cfg->name, id, cfg->group, cfg->n, cfg->f);
    switch (mode) {
    case SERVER_START_INIT:
    case SERVER_START_INIT_ONLY:
        marker_new(&m, cfg, id, mode == SERVER_START_INIT);
        return marker_write(cfg, id, &m, err, errlen);
    case SERVER_START_JOIN:
        *restarted = true;
        if (found && m.started)
            return 0;
        marker_new(&m, cfg, id, true);
        return marker_write(cfg, id, &m, err, errlen);
    case SERVER_START_REJOIN:
    default:
        if (!found)
            return marker_fail(err, errlen, BFTKV_E_CONFIG,
                               "%s: no marker: this replica never founded or joined a group here. Start it with "
                               "--init to found a new group (every replica of it), or --join to join an existing "
                               "group with empty memory",
                               path);
        if (m.started) {
            *restarted = true;
            return 0;
        }
        m.started = true; /* a fresh marker founds once */
        return marker_write(cfg, id, &m, err, errlen);
    }
}
