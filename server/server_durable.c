/* A durable replica in the runtime (docs/design.md §5.6.2, config `durability
 * async | sync`): the write-ahead log (server/wal.h) in data_dir/replica-<id>/wal/,
 * the records of every outbox appended to it, one group commit per loop
 * iteration, and the rebuilding of a restarted replica from its log.
 *
 * The order (engine/pbft.h, "Ordering contract"): the outbox drain
 * (server/server.c) appends every PBFT_DEST_PERSIST record of an outbox before it
 * hands any of its messages to the layout, which keeps each message inside the
 * process (single: a hold slot, server_single.c; staged: a tx batch not yet
 * published, server_staged.c) until a commit that covers every record appended
 * before it completed: write + fdatasync (sync) or the write (async). Commits
 * are pipelined (docs/design.md §5.6.2): the loop submits one per iteration
 * (server_wal_submit) and goes on receiving and stepping the engine while it
 * runs; its completion (server_wal_reap) releases the messages it covers, in
 * order. A full hold buffer, tx batch or commit buffer submits a commit early
 * (counted: wal_early_commits); with every hold slot or tx batch waiting for a
 * commit, the loop waits for the oldest (counted: wal_hold_waits). Committing
 * early is never wrong, sending early would be.
 *
 * Async: the messages still wait for the write's completion (a cheap wait: the
 * write lands in the page cache, usually within the submit call), so a replica
 * process that crashes has at least handed to the kernel everything it sent.
 *
 * Faults: a record that cannot be appended or a commit that fails stops the
 * replica at once (its messages of the iteration are dropped, the runtime is
 * marked failed and bftkv-server exits 1); a sync is never retried, since the
 * kernel may have dropped the pages it could not write (server/wal.h). A full
 * disk stops it too: it refuses to acknowledge what it cannot persist.
 *
 * Start-up: founding (not restarted) removes any old log and starts an empty
 * one. A replica run with durability none removes an old log too
 * (server_durable_forget): what it votes is not in it, so a later durable start
 * must not rebuild the replica from it. A restart reads the log: with records, each goes to the engine
 * (pbft_replica_recover_record) and the replica is one that holds state; the
 * protocol thread then calls pbft_replica_recover_done before its first
 * event, and that outbox is persisted and sent like any step's. Without records
 * (a first run that never wrote, or a wiped data directory) the replica rejoins
 * empty, exactly as with durability none (docs/design.md §5.6.1). A corrupt log
 * or a record the engine rejects stops start-up: the disk is not what the
 * replica wrote, and only wiping data_dir/replica-<id> (rejoining empty) is safe.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "common/log.h"
#include "server/server_internal.h"
#include "server/snapshot.h"
#include "server/wal.h"

/* A segment starts after each CHECKPOINT record (server/snapshot.h), so one
 * holds about a checkpoint interval's records; each is preallocated to this. */
#define DURABLE_SEGMENT_BYTES (4ull << 20)

/* Each path component of dir that is missing, created with mode 0700. */
static int durable_mkdirs(char *dir, char *err, size_t errlen)
{
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(dir, 0700);
        int e = errno;
        *p = c;
        if (rc != 0 && e != EEXIST) {
            errbuf_put(err, errlen, "cannot create %.*s: %s", (int)(p - dir), dir, strerror(e));
            return BFTKV_E_IO;
        }
        if (c == '\0')
            return 0;
    }
}

/* Founding: the segments of an earlier group's log go (server/wal.h names them
 * wal-<lsn>.log), and the directory is synced so the removal outlives a crash. */
static int durable_log_remove(const char *dir, unsigned *removed, char *err, size_t errlen)
{
    *removed = 0;
    DIR *d = opendir(dir);
    if (d == NULL) {
        errbuf_put(err, errlen, "cannot read %s: %s", dir, strerror(errno));
        return BFTKV_E_IO;
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "wal-", 4) != 0 || l < 8 || strcmp(e->d_name + l - 4, ".log") != 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0) {
            errbuf_put(err, errlen, "cannot remove %s/%s: %s", dir, e->d_name, strerror(errno));
            rc = BFTKV_E_IO;
        } else {
            (*removed)++;
        }
    }
    if (rc == 0 && *removed > 0 && fsync(dirfd(d)) != 0) {
        errbuf_put(err, errlen, "cannot sync %s: %s", dir, strerror(errno));
        rc = BFTKV_E_IO;
    }
    closedir(d);
    return rc;
}

/* What the replay met when the engine refused a record. */
struct durable_replay {
    struct server *s;
    uint64_t bad_lsn; /* 0: none */
    uint16_t bad_type;
    int bad_rc;
};

static int durable_replay_record(void *arg, uint64_t lsn, uint16_t type, const uint8_t *payload, uint32_t len)
{
    struct durable_replay *r = arg;
    int rc = pbft_replica_recover_record(r->s->replica, type, payload, len, &r->s->out);
    if (rc != 0) {
        r->bad_lsn = lsn;
        r->bad_type = type;
        r->bad_rc = rc;
        return rc;
    }
    server_snap_record(r->s, lsn, type, payload, (uint32_t)len, true);
    return 0;
}

static int durable_empty_member(struct server *s, struct pbft_replica_config *rcfg, char *err, size_t errlen);

/* No usable snapshot, and the log was cut below one: the records left cannot
 * rebuild the replica (its state below the cut is gone). It rejoins as an
 * empty member (docs/design.md §5.6.1) with a new log: never a partial state. */
static int durable_rejoin_cut(struct server *s, struct pbft_replica_config *rcfg, uint64_t first, char *err,
                              size_t errlen)
{
    log_error("replica %u cannot rebuild itself from its disk: the write-ahead log in %s starts at lsn %" PRIu64
              " (it was cut below a snapshot) and no snapshot in %s/replica-%u/snap is usable. It rejoins as an "
              "EMPTY member: it takes no part in ordering until q replicas holding state vouch for the state it "
              "fetches from them; its old log is removed",
              s->id, s->wal_dir, first, s->cfg->data_dir, s->id);
    unsigned removed = 0;
    int rc = durable_log_remove(s->wal_dir, &removed, err, errlen);
    if (rc != 0)
        return rc;
    return durable_empty_member(s, rcfg, err, errlen);
}

/* The engine made again, empty and unsure, over an empty store, with a new log:
 * a replica that rejoins with empty memory (docs/design.md §5.6.1). */
static int durable_empty_member(struct server *s, struct pbft_replica_config *rcfg, char *err, size_t errlen)
{
    int rc;
    pbft_replica_destroy(s->replica);
    s->replica = NULL;
    store_clear(s->store);
    rcfg->restarted = true;
    rc = pbft_replica_create(rcfg, &s->auth, s->store, &s->replica);
    if (rc != 0) {
        errbuf_put(err, errlen, "%s: the engine refused the configuration of replica %u", s->cfg->name, s->id);
        return rc;
    }
    struct wal_options o = {.dir = s->wal_dir, .segment_bytes = DURABLE_SEGMENT_BYTES};
    char werr[256] = "";
    rc = wal_open(&s->wal, &o, NULL, NULL, &s->wal_rec, werr, sizeof werr);
    if (rc != 0)
        errbuf_put(err, errlen, "replica %u: cannot open a new write-ahead log in %s: %s (%s)", s->id, s->wal_dir,
                   werr[0] ? werr : "no detail", bftkv_strerror(rc));
    return rc;
}

/* The log is corrupt, or the engine refused one of its records: the disk is not
 * what this replica wrote, and nothing on it is to be trusted. It is set aside
 * (wal.corrupt, for inspection; the snapshots go) and the replica rejoins as
 * an empty member: it takes no part in ordering until q replicas holding state
 * vouch for the state it fetches from them, so it serves no partial state and
 * forgets nothing it could be held to. */
static int durable_rejoin_corrupt(struct server *s, struct pbft_replica_config *rcfg, const char *why, char *err,
                                  size_t errlen)
{
    char aside[sizeof s->wal_dir + 16];
    snprintf(aside, sizeof aside, "%s.corrupt", s->wal_dir);
    wal_close(s->wal);
    s->wal = NULL;
    struct stat st;
    unsigned removed = 0;
    if (stat(aside, &st) == 0 && (durable_log_remove(aside, &removed, err, errlen) != 0 || rmdir(aside) != 0)) {
        errbuf_put(err, errlen, "cannot remove the earlier %s: %s", aside, strerror(errno));
        return BFTKV_E_IO;
    }
    if (rename(s->wal_dir, aside) != 0 || mkdir(s->wal_dir, 0700) != 0) {
        errbuf_put(err, errlen, "cannot set the corrupt log %s aside: %s", s->wal_dir, strerror(errno));
        return BFTKV_E_IO;
    }
    log_error("replica %u: %s. It rejoins as an EMPTY member: it takes no part in ordering until q replicas "
              "holding state vouch for the state it fetches from them; the log is kept in %s for inspection, its "
              "snapshots are removed",
              s->id, why, aside);
    server_snap_close(s);
    int rc = server_snap_open(s, false, err, errlen);
    return rc != 0 ? rc : durable_empty_member(s, rcfg, err, errlen);
}

int server_durable_open(struct server *s, struct pbft_replica_config *rcfg, bool restarted, char *err,
                        size_t errlen)
{
    const struct bftkv_config *cfg = s->cfg;
    BFTKV_ASSERT(cfg->durability != BFTKV_CONFIG_DURABILITY_NONE);
    BFTKV_ASSERT(rcfg->durable && !rcfg->restarted); /* created as a replica that holds state */
    s->wal_sync = cfg->durability == BFTKV_CONFIG_DURABILITY_SYNC;
    int len = snprintf(s->wal_dir, sizeof s->wal_dir, "%s/replica-%u/wal", cfg->data_dir, s->id);
    if (len < 0 || (size_t)len >= sizeof s->wal_dir) {
        errbuf_put(err, errlen, "%s: data_dir path too long for the write-ahead log", cfg->name);
        return BFTKV_E_CONFIG;
    }
    char dir[sizeof s->wal_dir];
    memcpy(dir, s->wal_dir, sizeof dir);
    int rc = durable_mkdirs(dir, err, errlen);
    if (rc != 0)
        return rc;
    if (!restarted) {
        unsigned removed = 0;
        rc = durable_log_remove(s->wal_dir, &removed, err, errlen);
        if (rc != 0)
            return rc;
        if (removed > 0)
            log_info("founding: removed the %u segment(s) of an earlier write-ahead log in %s", removed,
                     s->wal_dir);
    }
    rc = server_snap_open(s, restarted, err, errlen);
    if (rc != 0)
        return rc;
    uint64_t snap_seq = 0;
    if (restarted) {
        rc = server_snap_recover(s, rcfg, &snap_seq, err, errlen);
        if (rc != 0)
            return rc;
        uint64_t first = server_snap_log_first_lsn(s->wal_dir);
        if (snap_seq == 0 && first > 1)
            return durable_rejoin_cut(s, rcfg, first, err, errlen);
    }
    struct durable_replay rp = {.s = s};
    struct wal_options o = {.dir = s->wal_dir, .segment_bytes = DURABLE_SEGMENT_BYTES};
    char werr[256] = "";
    rc = wal_open(&s->wal, &o, restarted ? durable_replay_record : NULL, &rp, &s->wal_rec, werr, sizeof werr);
    pbft_out_reset(&s->out); /* the replay's scratch: nothing in it is sent */
    if (rc != 0 && rp.bad_lsn != 0) {
        char why[sizeof s->wal_dir + 512];
        snprintf(why, sizeof why,
                 "record lsn %" PRIu64 " (type %u) of the write-ahead log in %s does not recover (%s): the disk "
                 "does not hold what this replica wrote",
                 rp.bad_lsn, (unsigned)rp.bad_type, s->wal_dir, bftkv_strerror(rp.bad_rc));
        return durable_rejoin_corrupt(s, rcfg, why, err, errlen);
    }
    if (rc == BFTKV_E_CORRUPT) {
        char why[sizeof s->wal_dir + 512];
        snprintf(why, sizeof why, "the write-ahead log is corrupt: %s (after %" PRIu64 " valid records)", werr,
                 s->wal_rec.records);
        return durable_rejoin_corrupt(s, rcfg, why, err, errlen);
    }
    if (rc != 0) {
        errbuf_put(err, errlen, "replica %u: cannot open the write-ahead log in %s: %s (%s)", s->id, s->wal_dir,
                   werr[0] ? werr : "no detail", bftkv_strerror(rc));
        return rc;
    }
    if (!restarted)
        return 0;
    if (s->wal_rec.records > 0 || snap_seq > 0) {
        s->recovering = true; /* pbft_replica_recover_done on the protocol thread */
        return 0;
    }
    /* Nothing to rebuild from: rejoin with empty memory (docs/design.md §5.6.1).
     * No record reached the engine, so it is created again, unsure. */
    log_info("the write-ahead log in %s holds no record (%" PRIu64 " segment(s) read): rejoining with empty memory",
             s->wal_dir, s->wal_rec.segments);
    pbft_replica_destroy(s->replica);
    s->replica = NULL;
    rcfg->restarted = true;
    rc = pbft_replica_create(rcfg, &s->auth, s->store, &s->replica);
    if (rc != 0)
        errbuf_put(err, errlen, "%s: the engine refused the configuration of replica %u", cfg->name, s->id);
    return rc;
}

int server_durable_forget(struct server *s, char *err, size_t errlen)
{
    const struct bftkv_config *cfg = s->cfg;
    char dir[sizeof s->wal_dir];
    int len = snprintf(dir, sizeof dir, "%s/replica-%u/wal", cfg->data_dir, s->id);
    struct stat st;
    if (cfg->data_dir[0] == '\0' || len < 0 || (size_t)len >= sizeof dir || stat(dir, &st) != 0)
        return 0;
    unsigned removed = 0;
    int rc = durable_log_remove(dir, &removed, err, errlen);
    if (rc == 0 && removed > 0)
        log_warn("durability none: removed the %u segment(s) of an earlier write-ahead log in %s (this replica's "
                 "memory is not in it)",
                 removed, dir);
    return rc != 0 ? rc : server_snap_forget(cfg->data_dir, s->id, err, errlen);
}

void server_durable_close(struct server *s)
{
    server_snap_close(s);
    wal_close(s->wal);
    s->wal = NULL;
}

void server_wal_fail(struct server *s, const char *what, int rc)
{
    if (s->wal_failed != 0)
        return;
    s->wal_failed = rc;
    const char *why = s->wal != NULL && wal_error(s->wal)[0] != '\0' ? wal_error(s->wal) : bftkv_strerror(rc);
    if (rc == BFTKV_E_FULL)
        log_error("write-ahead log %s failed: the disk is full (%s): replica %u stops rather than acknowledge "
                  "what it cannot persist",
                  what, why, s->id);
    else
        log_error("write-ahead log %s failed: %s (%s): replica %u stops, nothing of this round is sent", what, why,
                  bftkv_strerror(rc), s->id);
    atomic_store_explicit(&s->failed, true, memory_order_release);
    atomic_store_explicit(&s->stop, true, memory_order_release);
}

/* The commits in flight, as the log reports them done: each one's submit-to-
 * completion time goes to the WAL stage histogram. */
static void server_wal_q_pop(struct server *s)
{
    uint64_t done = wal_committed_lsn(s->wal);
    uint64_t now = 0;
    while (s->wal_q_n > 0 && (s->wal_q_end[s->wal_q_first] <= done || s->wal_q_n > wal_commits_in_flight(s->wal))) {
        now = now != 0 ? now : server_now_ns();
        server_hist_record(s, SERVER_STAGE_WAL, 0, (int64_t)(now - s->wal_q_t0[s->wal_q_first]));
        s->wal_q_first = (s->wal_q_first + 1) % WAL_INFLIGHT_MAX;
        s->wal_q_n--;
    }
}

int server_wal_submit(struct server *s, bool early)
{
    if (s->wal_failed != 0)
        return s->wal_failed;
    if (s->wal == NULL || s->wal_pending == 0)
        return 0;
    uint64_t t0 = server_now_ns();
    int64_t id = wal_commit_submit(s->wal, s->wal_sync);
    if (id < 0) {
        server_wal_fail(s, s->wal_sync ? "commit (write + fdatasync)" : "commit (write)", (int)id);
        return (int)id;
    }
    s->wal_pending = 0;
    if (early)
        server_count(s, SERVER_CTR_wal_early_commits, 1);
    server_wal_q_pop(s); /* a submit may have waited for the oldest */
    if (id > 0) {
        BFTKV_ASSERT(s->wal_q_n < WAL_INFLIGHT_MAX);
        unsigned i = (s->wal_q_first + s->wal_q_n++) % WAL_INFLIGHT_MAX;
        s->wal_q_end[i] = wal_last_lsn(s->wal);
        s->wal_q_t0[i] = t0;
    }
    return 0;
}

int server_wal_reap(struct server *s, int64_t timeout_us)
{
    if (s->wal_failed != 0)
        return s->wal_failed;
    if (s->wal == NULL || wal_commits_in_flight(s->wal) == 0)
        return 0;
    int rc = wal_commit_reap(s->wal, timeout_us);
    if (rc != 0) {
        server_wal_fail(s, s->wal_sync ? "commit (write + fdatasync)" : "commit (write)", rc);
        return rc;
    }
    server_wal_q_pop(s);
    return 0;
}

int server_wal_commit(struct server *s, bool early)
{
    int rc = server_wal_submit(s, early);
    while (rc == 0 && server_wal_in_flight(s))
        rc = server_wal_reap(s, -1);
    return rc;
}

uint64_t server_wal_need(const struct server *s)
{
    return s->wal != NULL ? wal_last_lsn(s->wal) : 0;
}

bool server_wal_covers(const struct server *s, uint64_t need)
{
    return s->wal_failed == 0 && (s->wal == NULL || wal_committed_lsn(s->wal) >= need);
}

bool server_wal_in_flight(const struct server *s)
{
    return s->wal != NULL && wal_commits_in_flight(s->wal) > 0;
}

void server_wal_append(struct server *s, uint16_t type, const uint8_t *bytes, uint32_t len)
{
    if (s->wal_failed != 0)
        return;
    BFTKV_ASSERT(s->wal != NULL); /* only a durable engine lists records */
    int64_t lsn = wal_append(s->wal, type, bytes, len);
    if (lsn == BFTKV_E_FULL && wal_failed(s->wal) == 0 && s->wal_pending > 0) {
        /* The commit buffer is full, not the disk: submit what it holds now
         * (the appends go on into another buffer; no message waits less). */
        if (server_wal_submit(s, true) != 0)
            return;
        lsn = wal_append(s->wal, type, bytes, len);
    }
    if (lsn < 0) {
        server_wal_fail(s, "append", (int)lsn);
        return;
    }
    s->wal_pending++;
    server_snap_record(s, (uint64_t)lsn, type, bytes, len, false);
}

void server_durable_recovered(struct server *s)
{
    const struct pbft_recovery_stats *rs = pbft_replica_recovery_stats(s->replica);
    const struct wal_recovery *wr = &s->wal_rec;
    struct server_snap_stats ss = {0};
    if (s->snap != NULL)
        server_snap_stats_get(s, &ss);
    char above[64] = "";
    if (ss.recovered_seq != 0)
        snprintf(above, sizeof above, " above the snapshot of checkpoint %" PRIu64, ss.recovered_seq);
    if (wr->torn)
        log_warn("the write-ahead log in %s ended in a torn record: its tail (%" PRIu64 " byte(s) after lsn %" PRIu64
                 ") was cut; what it held was never acknowledged",
                 s->wal_dir, wr->torn_bytes, wr->last_lsn);
    log_info("recovered from the write-ahead log in %s%s: %" PRIu64 " segment(s), %" PRIu64 " record(s) up to lsn %"
             PRIu64 ", %" PRIu64 " torn byte(s) cut; rebuilt: %" PRIu64 " record(s), %" PRIu64
             " batch(es) executed, %" PRIu64 " stable checkpoint(s), highest view %" PRIu64 ", %" PRIu64
             " prepared, gap_seq %" PRIu64 "; %s, last executed %" PRIu64,
             s->wal_dir, above, wr->segments, wr->records, wr->last_lsn, wr->torn_bytes, rs->records, rs->executed,
             rs->checkpoints, rs->highest_view, rs->prepared, rs->gap_seq,
             pbft_replica_stats(s->replica)->holds_state
                 ? "holds state"
                 : "unsure: takes no part in ordering until q replicas holding state vouch for it",
             pbft_replica_stats(s->replica)->last_executed);
}
