/* bftkv-sim: the deterministic simulator's command line (docs/design.md §5.7).
 *
 * Runs a range of seeds, each a complete cluster run (simrun.h), and prints one
 * line per failing seed with the exact command that replays it. The last line is
 * always
 *
 *     sim: seeds=S violations=V committed=C avg_batch=B sim_rps=R
 *
 * where R is committed client operations per wall-clock second over the whole
 * invocation. Seeds are independent, so --jobs J (default: the online CPUs) forks
 * J workers that take every J-th seed and stream their results back through a
 * pipe; the parent consumes them strictly in seed order, so the output -- which
 * seeds fail, in which order, the totals -- is the same for any J. Exit codes: 0 every seed passed; 1 a safety
 * violation; 2 a liveness violation (and no safety violation), progress or rejoin (counted apart on the summary line);
 * 3 a usage or internal error. With
 * --expect-violation the sense is inverted for safety: exit 0 as soon as a seed
 * violates safety, 1 if none of the seeds did (that is how the injected-bug
 * tests prove the checkers can fail).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engine/pbft.h"
#include "tests/sim/deploy.h"
#include "tests/sim/faults.h"
#include "tests/sim/links.h"
#include "tests/sim/simrun.h"

#define EXIT_SAFETY 1
#define EXIT_LIVENESS 2
#define EXIT_USAGE 3
#define FAILURES_PRINTED_MAX 20u
#define JOBS_MAX 64u

static const struct {
    const char *name;
    uint32_t bit;
} bug_names[] = {
    {"commit_quorum_2f", PBFT_BUG_COMMIT_QUORUM_2F},
    {"execute_uncommitted", PBFT_BUG_EXECUTE_UNCOMMITTED},
    {"ignore_digest", PBFT_BUG_IGNORE_DIGEST},
    {"client_f_replies", PBFT_BUG_CLIENT_F_REPLIES},
    {"newview_ignore_a2", PBFT_BUG_NEWVIEW_IGNORE_A2},
    {"forget_p", PBFT_BUG_FORGET_P},
    {"skip_snapshot_digest", PBFT_BUG_SKIP_SNAPSHOT_DIGEST},
    {"restart_sure", PBFT_BUG_RESTART_SURE},
    {"persist_skip", PBFT_BUG_PERSIST_SKIP},
    {"recover_forget_p", PBFT_BUG_RECOVER_FORGET_P},
    {"route_off_by_one", PBFT_BUG_ROUTE_OFF_BY_ONE},
    {"recover_torn", PBFT_BUG_RECOVER_TORN},
    {"readonly_quorum_2f", PBFT_BUG_READONLY_QUORUM_2F},
    {"readonly_no_wait", PBFT_BUG_READONLY_NO_WAIT},
    {"restart_vouch_early", PBFT_BUG_RESTART_VOUCH_EARLY},
    {"restart_vouch_f1", PBFT_BUG_RESTART_VOUCH_F1},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bftkv-sim [options]\n"
            "\n"
            "Runs N replicas and C clients of the bftkv engine on a simulated network and\n"
            "clock, once per seed; everything in a run derives from its 64-bit seed.\n"
            "\n"
            "  --seeds A..B | A     seeds to run (default 1..100)\n"
            "  --n N --f F          replicas and faults tolerated, N >= 3f+1 (default 4, 1)\n"
            "  --clients C          clients (default 8)\n"
            "  --requests R         operations per client (default 100)\n"
            "  --faults MODE[,MODE] none | net | byzantine | restart | links | cut-link |\n"
            "                       one-way | flap | all (default none);\n"
            "                       a list combines modes, e.g. net,restart\n"
            "                         net: loss, duplication, reordering, delays, partitions\n"
            "                              until GST, then a reliable network\n"
            "                         byzantine: 1..f faulty replicas, each with a behaviour;\n"
            "                              two seeds in three the primary of view 0 (and with\n"
            "                              f >= 2 sometimes that of view 1) is among them\n"
            "                         restart: at one moment k = 1..q replicas go down\n"
            "                              together and come back, each without its memory\n"
            "                              (restarted empty) or with it (paused); with fewer\n"
            "                              than q holding state the group must refuse\n"
            "                              (NO_STATE), with q or more it must recover\n"
            "                         all: net + byzantine, and one seed in three crashes\n"
            "                              1..f replicas before GST (they restart empty and\n"
            "                              count toward f); one seed in four instead has the\n"
            "                              restart shape (Byzantine only while\n"
            "                              wiped + faulty <= f); one seed in four also has\n"
            "                              link shapes (see --no-swarm)\n"
            "                         links: 1 or 2 link shapes before GST (GST moves to\n"
            "                              their end): cut-link (one link between two\n"
            "                              replicas cut both ways), one-way (a replica\n"
            "                              deaf, or mute, or one link cut one way), flap\n"
            "                              (a replica alone, or two halves without a\n"
            "                              quorum, partitioned 3..6 times); cut-link,\n"
            "                              one-way and flap draw only that shape\n"
            "  --loss P --dup P     network loss / duplication percent before GST (default:\n"
            "                       drawn per seed, loss 0..30, dup 0..10)\n"
            "  --partitions K       partitions before GST (default: drawn, 0..2)\n"
            "  --latency-us U       base one-way latency (default 100)\n"
            "  --jitter-us U        jitter before GST (default: drawn)\n"
            "  --gst-ms T           global stabilisation time (default: drawn, 10..100 ms)\n"
            "  --liveness-ms T      liveness bound: after GST, some pending operation must\n"
            "                       complete at least every T ms of simulated time (default 5000)\n"
            "  --no-liveness        do not count liveness failures\n"
            "  --no-rejoin          do not check that every correct replica holding state\n"
            "                       is back in the group's view within the rejoin bound\n"
            "                       2 x view-change timeout + T after the heal (rejoin.h)\n"
            "  --rejoin-slack-ms S  the rejoin bound's slack instead of T (default 50)\n"
            "  --invariants-every K check every replica's invariants after every K-th step\n"
            "                       (default 1: every step; the check reads only, so K\n"
            "                       changes no run, only its cost)\n"
            "  --faulty LIST        explicit faulty replicas, e.g. 0,3 (at most f; replica 0 is\n"
            "                       the primary of view 0); in all mode every other seed also\n"
            "                       crashes 1..f-|LIST| other replicas before GST\n"
            "  --behaviour NAME     silent | drop | corrupt-mac | corrupt-digest | wrong-result |\n"
            "                       replay | mix | stale-read | equivocate | slow | bogus-view-change |\n"
            "                       lying-state (default: drawn per faulty replica)\n");
    fprintf(f,
            "  --no-swarm           all mode as it was: without --faulty or --behaviour, each\n"
            "                       seed of all mode first draws which fault classes are on and\n"
            "                       how strong (the swarm draw, swarm.h: net, links, byz, crash,\n"
            "                       restart, a long isolating partition, the read-only share,\n"
            "                       W = 1); this turns it off\n"
            "  --deployment M:R:P   a partitioned deployment instead of one group: M nodes, P\n"
            "                       partitions (a power of two), each a group of R replicas\n"
            "                       with f = (R-1)/3 placed by rendezvous hashing; faults are\n"
            "                       per node (at most f faulty nodes); --requests is per\n"
            "                       client and partition; --faulty lists nodes (deploy.h)\n"
            "  --bug NAME           set an injected bug on every replica and client (repeatable):\n"
            "                       commit_quorum_2f | execute_uncommitted | ignore_digest |\n"
            "                       client_f_replies | newview_ignore_a2 | forget_p |\n"
            "                       skip_snapshot_digest | restart_sure | persist_skip,\n"
            "                       recover_forget_p, recover_torn (these with --durable) |\n"
            "                       route_off_by_one (with --deployment) | readonly_quorum_2f |\n"
            "                       readonly_no_wait | restart_vouch_early | restart_vouch_f1\n"
            "  --durable            durable replicas: every outbox's records go to the replica's\n"
            "                       disk, and a message sent before a record it depends on is\n"
            "                       a violation (the records are not yet used at restart)\n"
            "  --expect-violation   succeed iff some seed violates safety (stops at the first)\n"
            "  --k K --log-window L --window W --batch B\n"
            "                       checkpoint interval, log window, batches in flight,\n"
            "                       requests per batch (default: drawn per seed)\n"
            "  --batch-bytes B      inlined bytes per batch (default: drawn per seed: mostly 16 KiB,\n"
            "                       sometimes one request's worth, sometimes the engine's 56 KiB)\n"
            "  --lanes L            requests in flight per client (default: drawn, 2..8)\n"
            "  --keys K             key space (default: drawn, from max(8, C*L/4) to\n"
            "                       max(32, C*L/2))\n"
            "  --put-percent P --get-percent G\n"
            "                       operation mix, DEL gets the rest (default: drawn per seed,\n"
            "                       PUT 20..40%%, GET about two thirds or more of the rest)\n"
            "  --value-bytes V      PUT value size (default: drawn per seed: 16 bytes mostly,\n"
            "                       sometimes up to 900, sometimes 1.1-4 KB: large requests)\n"
            "  --readonly-percent P clients that use the read-only path for GETs (default 50)\n"
            "  --retransmit-ms T    client retransmission timeout (default 20)\n"
            "  --jobs J             worker processes running seeds in parallel (default: the\n"
            "                       online CPUs; 1 with --verbose or --trace); the output is\n"
            "                       the same for any J\n"
            "  --verbose, -v        one line per seed; the failing key's history; a stuck run's\n"
            "                       replicas and pending operations\n"
            "  --trace              print every message delivered (stderr)\n"
            "  --trace-seq N        only messages whose header carries seq / timestamp N\n"
            "  --help\n"
            "\n"
            "Exit status: 0 all seeds passed; 1 safety violation (with --expect-violation: no\n"
            "violation found); 2 liveness violation only; 3 usage or internal error.\n"
            "Last line: sim: seeds=S violations=V committed=C avg_batch=B sim_rps=R\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != 0 || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    double v = strtod(s, &end);
    if (*end != 0)
        return false;
    *out = v;
    return true;
}

static bool parse_seeds(const char *s, uint64_t *lo, uint64_t *hi)
{
    const char *dots = strstr(s, "..");
    if (!dots)
        return parse_u64(s, lo) && (*hi = *lo, true);
    char a[32];
    size_t n = (size_t)(dots - s);
    if (n == 0 || n >= sizeof(a))
        return false;
    memcpy(a, s, n);
    a[n] = 0;
    return parse_u64(a, lo) && parse_u64(dots + 2, hi) && *lo <= *hi;
}

static bool parse_list(const char *s, struct sim_options *o)
{
    o->faulty_count = 0;
    char buf[256];
    if (strlen(s) >= sizeof(buf))
        return false;
    strcpy(buf, s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        uint64_t v;
        if (!parse_u64(tok, &v) || v >= BFTKV_REPLICAS_MAX || o->faulty_count >= BFTKV_REPLICAS_MAX)
            return false;
        o->faulty[o->faulty_count++] = (uint16_t)v;
    }
    return o->faulty_count > 0;
}

/* MODE[,MODE...]: the modes' fault sets together. */
static bool parse_faults(const char *s, int *faults, uint32_t *link_kinds)
{
    static const struct {
        const char *name;
        int bits;
    } modes[] = {{"none", SIM_FAULTS_NONE},         {"net", SIM_FAULTS_NET},
                 {"byzantine", SIM_FAULTS_BYZANTINE}, {"byz", SIM_FAULTS_BYZANTINE},
                 {"restart", SIM_FAULTS_RESTART},   {"all", SIM_FAULTS_ALL}};
    int bits = 0;
    *link_kinds = 0;
    while (*s != '\0') {
        size_t len = strcspn(s, ",");
        uint32_t kinds = link_kinds_parse(s, len);
        bool known = kinds != 0;
        if (known) {
            bits |= SIM_FAULTS_LINKS;
            *link_kinds |= kinds;
        }
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
            if (strlen(modes[i].name) == len && strncmp(s, modes[i].name, len) == 0) {
                bits |= modes[i].bits;
                known = true;
            }
        }
        if (!known)
            return false;
        s += len;
        if (*s == ',' && *++s == '\0')
            return false;
    }
    *faults = bits;
    return true;
}

/* M:R:P of --deployment. */
static bool parse_deployment(const char *s, struct sim_options *o)
{
    unsigned m, r, p;
    char end;
    if (!s || sscanf(s, "%u:%u:%u%c", &m, &r, &p, &end) != 3 || r < 1 || m < r || m > BFTKV_REPLICAS_MAX || p < 1 ||
        p > DEPLOY_PARTITIONS_MAX || (p & (p - 1u)) != 0)
        return false;
    o->deploy_nodes = (uint16_t)m;
    o->n = (uint16_t)r;
    o->f = (uint16_t)((r - 1u) / 3u);
    o->deploy_partitions = p;
    return true;
}

static bool parse_bug(const char *s, uint32_t *bugs)
{
    for (size_t i = 0; i < sizeof(bug_names) / sizeof(bug_names[0]); i++) {
        if (strcmp(s, bug_names[i].name) == 0) {
            *bugs |= bug_names[i].bit;
            return true;
        }
    }
    return false;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The command that replays one seed: this invocation's arguments with the seed
 * range replaced. */
static void print_replay(FILE *f, int argc, char **argv, uint64_t seed)
{
    fprintf(f, "  replay: %s", argv[0]);
    bool seen = false, verbose = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            fprintf(f, " --seeds %" PRIu64 "..%" PRIu64, seed, seed);
            i++;
            seen = true;
        } else if (strncmp(argv[i], "--seeds=", 8) == 0) {
            fprintf(f, " --seeds %" PRIu64 "..%" PRIu64, seed, seed);
            seen = true;
        } else if (strcmp(argv[i], "--expect-violation") == 0) {
            continue;
        } else {
            if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0)
                verbose = true;
            fprintf(f, " %s", argv[i]);
        }
    }
    if (!seen)
        fprintf(f, " --seeds %" PRIu64 "..%" PRIu64, seed, seed);
    fprintf(f, "%s\n", verbose ? "" : " --verbose");
}

/* ---- Parallel seeds ----------------------------------------------------------------------- */

/* One seed's outcome as a worker sends it to the parent. */
struct seed_record {
    uint64_t seed;
    int rc;
    struct sim_result r;
};

struct workers {
    unsigned count; /* 0: run the seeds in this process */
    pid_t pid[JOBS_MAX];
    int fd[JOBS_MAX]; /* read end of worker k's pipe */
};

static bool write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false; /* the worker died (or exited early) */
        p += (size_t)n;
        len -= (size_t)n;
    }
    return true;
}

/* Worker k of J: seeds lo+k, lo+k+J, ... up to hi, one record each, in order. It
 * stops after an internal error (the parent stops at that seed too); if the
 * parent has gone, the write fails (SIGPIPE) and so does the worker. */
static void worker_run(const struct sim_options *o, struct sim_context *ctx, uint64_t lo, uint64_t hi, unsigned k,
                       unsigned jobs, int fd)
{
    for (uint64_t seed = lo + k;; seed += jobs) {
        struct seed_record rec;
        memset(&rec, 0, sizeof rec);
        rec.seed = seed;
        rec.rc = simrun_one(o, ctx, seed, &rec.r);
        if (!write_all(fd, &rec, sizeof rec) || rec.rc != 0 || hi - seed < jobs)
            return;
    }
}

static bool workers_start(struct workers *w, unsigned jobs, const struct sim_options *o, struct sim_context *ctx,
                          uint64_t lo, uint64_t hi)
{
    w->count = 0;
    fflush(stdout); /* nothing buffered may be written twice */
    fflush(stderr);
    for (unsigned k = 0; k < jobs; k++) {
        int p[2];
        if (pipe(p) != 0) {
            perror("bftkv-sim: pipe");
            return false;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("bftkv-sim: fork");
            close(p[0]);
            close(p[1]);
            return false;
        }
        if (pid == 0) {
            for (unsigned i = 0; i < w->count; i++)
                close(w->fd[i]);
            close(p[0]);
            worker_run(o, ctx, lo, hi, k, jobs, p[1]);
            fflush(stdout);
            fflush(stderr);
            _exit(0);
        }
        close(p[1]);
        w->pid[k] = pid;
        w->fd[k] = p[0];
        w->count = k + 1u;
    }
    return true;
}

/* The record of `seed`: worker (seed - lo) mod J sends its seeds in order, so
 * reading the workers round-robin yields the seeds in order. */
static bool workers_next(struct workers *w, uint64_t lo, uint64_t seed, struct seed_record *rec)
{
    unsigned k = (unsigned)((seed - lo) % w->count);
    return read_all(w->fd[k], rec, sizeof *rec) && rec->seed == seed;
}

/* Stop the workers (early: they are killed; ours, by PID) and reap them. */
static void workers_stop(struct workers *w, bool early)
{
    for (unsigned k = 0; k < w->count; k++) {
        close(w->fd[k]);
        if (early)
            kill(w->pid[k], SIGTERM);
        int status;
        while (waitpid(w->pid[k], &status, 0) < 0 && errno == EINTR) {
        }
    }
    w->count = 0;
}

static unsigned jobs_default(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1)
        return 1;
    return cpus > (long)JOBS_MAX ? JOBS_MAX : (unsigned)cpus;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "bftkv-sim: sodium_init failed\n");
        return EXIT_USAGE;
    }
    struct sim_options o;
    sim_options_defaults(&o);
    uint64_t lo = 1, hi = 100;
    bool expect = false;
    unsigned jobs = 0; /* 0: the default */
    bool nf_given = false; /* --n or --f: not with --deployment, which sets both */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) == 0 && eq && (size_t)(eq - a) < sizeof(name)) {
            memcpy(name, a, (size_t)(eq - a));
            name[eq - a] = 0;
            val = eq + 1;
            a = name;
        }
#define NEXT() (val ? val : (i + 1 < argc ? argv[++i] : NULL))
        uint64_t u;
        double d;
        bool ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--seeds") == 0) {
            const char *m = NEXT();
            ok = m && parse_seeds(m, &lo, &hi);
        } else if (strcmp(a, "--n") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= BFTKV_REPLICAS_MAX;
            o.n = (uint16_t)u;
            nf_given = true;
        } else if (strcmp(a, "--f") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= BFTKV_FAULTS_MAX;
            o.f = (uint16_t)u;
            nf_given = true;
        } else if (strcmp(a, "--deployment") == 0) {
            ok = parse_deployment(NEXT(), &o);
        } else if (strcmp(a, "--clients") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= BFTKV_CLIENTS_MAX;
            o.clients = (uint16_t)u;
        } else if (strcmp(a, "--requests") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 10000000;
            o.requests = (uint32_t)u;
        } else if (strcmp(a, "--faults") == 0) {
            const char *m = NEXT();
            ok = m && parse_faults(m, &o.faults, &o.link_kinds);
        } else if (strcmp(a, "--loss") == 0) {
            ok = parse_double(NEXT(), &d) && d >= 0 && d <= 100;
            o.loss_percent = d;
        } else if (strcmp(a, "--dup") == 0) {
            ok = parse_double(NEXT(), &d) && d >= 0 && d <= 100;
            o.dup_percent = d;
        } else if (strcmp(a, "--partitions") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= SIM_PARTITIONS_MAX;
            o.partitions = (int)u;
        } else if (strcmp(a, "--latency-us") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 10000000;
            o.latency_ns = u * 1000;
        } else if (strcmp(a, "--jitter-us") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 10000000;
            o.jitter_ns = (int64_t)u * 1000;
        } else if (strcmp(a, "--gst-ms") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 10000000;
            o.gst_ns = (int64_t)u * 1000000;
        } else if (strcmp(a, "--liveness-ms") == 0) {
            ok = parse_u64(NEXT(), &u) && u > 0 && u <= 100000000;
            o.liveness_ns = u * 1000000;
        } else if (strcmp(a, "--no-liveness") == 0) {
            o.check_liveness = false;
        } else if (strcmp(a, "--durable") == 0) {
            o.durable = true;
        } else if (strcmp(a, "--no-swarm") == 0) {
            o.swarm = 0;
        } else if (strcmp(a, "--no-rejoin") == 0) {
            o.check_rejoin = false;
        } else if (strcmp(a, "--rejoin-slack-ms") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= 100000;
            o.rejoin_slack_ns = u * 1000000;
        } else if (strcmp(a, "--invariants-every") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= 1000000;
            o.invariants_every = (uint32_t)u;
        } else if (strcmp(a, "--faulty") == 0) {
            const char *m = NEXT();
            ok = m && parse_list(m, &o);
        } else if (strcmp(a, "--behaviour") == 0 || strcmp(a, "--behavior") == 0) {
            const char *m = NEXT();
            int b = m ? byz_mode_parse(m) : -1;
            ok = b > BYZ_NONE;
            o.behaviour = b;
        } else if (strcmp(a, "--bug") == 0) {
            const char *m = NEXT();
            ok = m && parse_bug(m, &o.bugs);
        } else if (strcmp(a, "--expect-violation") == 0) {
            expect = true;
        } else if (strcmp(a, "--k") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= BFTKV_CHECKPOINT_INTERVAL_MAX;
            o.checkpoint_interval = (uint32_t)u;
        } else if (strcmp(a, "--log-window") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 2 && u <= BFTKV_LOG_WINDOW_MAX;
            o.log_window = (uint32_t)u;
        } else if (strcmp(a, "--window") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= BFTKV_WINDOW_MAX;
            o.window = (uint32_t)u;
        } else if (strcmp(a, "--batch") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= BFTKV_BATCH_REQUESTS_MAX;
            o.batch = (uint32_t)u;
        } else if (strcmp(a, "--batch-bytes") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= BFTKV_BATCH_BYTES_MAX;
            o.batch_bytes = (uint32_t)u;
        } else if (strcmp(a, "--lanes") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= PBFT_LANES_MAX;
            o.lanes = (uint16_t)u;
        } else if (strcmp(a, "--keys") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= 100000;
            o.keys = (uint32_t)u;
        } else if (strcmp(a, "--put-percent") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 100;
            o.put_percent = (int)u;
        } else if (strcmp(a, "--get-percent") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 100;
            o.get_percent = (int)u;
        } else if (strcmp(a, "--value-bytes") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 8 && u <= BFTKV_VALUE_MAX;
            o.value_bytes = (uint32_t)u;
        } else if (strcmp(a, "--readonly-percent") == 0) {
            ok = parse_u64(NEXT(), &u) && u <= 100;
            o.readonly_percent = (int)u;
        } else if (strcmp(a, "--retransmit-ms") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= 100000;
            o.client_retransmit_ns = u * 1000000;
        } else if (strcmp(a, "--trace") == 0) {
            o.trace = true;
        } else if (strcmp(a, "--trace-seq") == 0) {
            ok = parse_u64(NEXT(), &u);
            o.trace = true;
            o.trace_seq = u;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            o.verbose = true;
        } else if (strcmp(a, "--jobs") == 0 || strcmp(a, "-j") == 0) {
            ok = parse_u64(NEXT(), &u) && u >= 1 && u <= JOBS_MAX;
            jobs = (unsigned)u;
        } else {
            fprintf(stderr, "bftkv-sim: unknown option %s (see --help)\n", argv[i]);
            return EXIT_USAGE;
        }
#undef NEXT
        if (!ok) {
            fprintf(stderr, "bftkv-sim: bad value for %s (see --help)\n", a);
            return EXIT_USAGE;
        }
    }
    if (o.deploy_partitions && nf_given) {
        fprintf(stderr, "bftkv-sim: --deployment M:R:P sets n = R and f = (R-1)/3; drop --n and --f\n");
        return EXIT_USAGE;
    }
    if (o.n < 3u * o.f + 1u) {
        fprintf(stderr, "bftkv-sim: need n >= 3f+1 (n=%u f=%u)\n", o.n, o.f);
        return EXIT_USAGE;
    }
    if (o.faulty_count > o.f) {
        fprintf(stderr, "bftkv-sim: --faulty lists %u replicas, more than f=%u\n", o.faulty_count, o.f);
        return EXIT_USAGE;
    }
    bool primary_faulty = false;
    uint16_t members = o.deploy_partitions ? o.deploy_nodes : o.n; /* a deployment lists nodes */
    for (uint16_t i = 0; i < o.faulty_count; i++) {
        if (o.faulty[i] >= members) {
            fprintf(stderr, "bftkv-sim: --faulty: replica %u is out of range (n=%u)\n", o.faulty[i], members);
            return EXIT_USAGE;
        }
        primary_faulty |= o.faulty[i] == 0;
    }
    if (o.behaviour == BYZ_EQUIVOCATE && !primary_faulty && o.deploy_partitions == 0) {
        fprintf(stderr, "bftkv-sim: --behaviour equivocate needs the primary in --faulty (only it proposes)\n");
        return EXIT_USAGE;
    }

    if (jobs == 0)
        jobs = jobs_default();
    if (o.verbose || o.trace)
        jobs = 1; /* per-seed output stays in order */
    if (hi - lo < (uint64_t)jobs)
        jobs = (unsigned)(hi - lo + 1u);

    struct sim_context ctx;
    sim_context_init(&ctx);
    uint64_t seeds = 0, safety = 0, liveness = 0, committed = 0, batches = 0, batch_requests = 0, unknown = 0;
    uint64_t viewchanges = 0, state_transfers = 0, timeouts = 0, viewchange_seeds = 0, st_seeds = 0;
    uint64_t restart_seeds = 0, refuse_seeds = 0, no_state = 0;
    uint64_t recoveries = 0, recovered_batches = 0, recovery_gaps = 0, whole_group_seeds = 0, from_snapshot = 0;
    uint64_t rejoin_failures = 0, rejoin_bound = 0, rejoin_outside = 0, link_seeds = 0;
    uint64_t printed = 0;
    int exit_code = 0;
    bool found = false;
    double t0 = wall_seconds();
    struct workers w = {.count = 0};
    if (jobs > 1 && !workers_start(&w, jobs, &o, &ctx, lo, hi)) {
        workers_stop(&w, true);
        sim_context_destroy(&ctx);
        return EXIT_USAGE;
    }
    bool early = false;
    for (uint64_t seed = lo;; seed++) {
        struct seed_record rec;
        int rc;
        if (w.count == 0) {
            rc = simrun_one(&o, &ctx, seed, &rec.r);
        } else if (!workers_next(&w, lo, seed, &rec)) {
            fprintf(stderr, "bftkv-sim: seed %" PRIu64 ": the worker running it died\n", seed);
            print_replay(stderr, argc, argv, seed);
            exit_code = EXIT_USAGE;
            early = true;
            break;
        } else {
            rc = rec.rc;
        }
        const struct sim_result r = rec.r;
        if (rc != 0) {
            early = true;
            fprintf(stderr, "bftkv-sim: seed %" PRIu64 ": internal error %d\n", seed, rc);
            exit_code = EXIT_USAGE;
            break;
        }
        seeds++;
        committed += r.committed;
        batches += r.batches;
        batch_requests += r.batch_requests;
        unknown += r.lincheck_unknown;
        viewchanges += r.viewchanges;
        state_transfers += r.state_transfers;
        timeouts += r.request_timeouts;
        viewchange_seeds += r.viewchanges > 0;
        st_seeds += r.state_transfers > 0;
        restart_seeds += r.restart != 0;
        refuse_seeds += r.restart == 2;
        no_state += r.no_state;
        recoveries += r.recoveries;
        recovered_batches += r.recovered_batches;
        recovery_gaps += r.recovery_gaps;
        from_snapshot += r.recoveries_from_snapshot;
        whole_group_seeds += r.whole_group;
        link_seeds += r.links;
        rejoin_failures += r.rejoin_failed;
        rejoin_bound = r.rejoin_bound_ns > rejoin_bound ? r.rejoin_bound_ns : rejoin_bound;
        rejoin_outside = r.rejoin_outside_ns > rejoin_outside ? r.rejoin_outside_ns : rejoin_outside;
        if (o.verbose)
            printf("seed %" PRIu64 ": %s committed=%" PRIu64 " batches=%" PRIu64 " sim=%.1fms steps=%" PRIu64
                   " lagging=%" PRIu64 " no_state=%" PRIu64 " outside=%.1fms [%s]\n",
                   seed, r.verdict == SIM_OK ? "ok" : r.verdict == SIM_SAFETY ? "SAFETY" : "LIVENESS", r.committed,
                   r.batches, (double)r.sim_ns / 1e6, r.steps, r.lagging, r.no_state,
                   (double)r.rejoin_outside_ns / 1e6, r.scenario);
        if (r.verdict != SIM_OK) {
            if (r.verdict == SIM_SAFETY)
                safety++;
            else
                liveness++;
            if (printed++ < FAILURES_PRINTED_MAX) {
                FILE *f = expect ? stdout : stderr;
                fprintf(f, "sim: %s seed=%" PRIu64 ": %s\n  scenario: %s\n",
                        expect && r.verdict == SIM_SAFETY ? "found violation" : "FAIL", seed, r.what, r.scenario);
                print_replay(f, argc, argv, seed);
            }
            if (expect && r.verdict == SIM_SAFETY) {
                found = true;
                early = seed != hi;
                break;
            }
        }
        if (seed == hi)
            break;
    }
    workers_stop(&w, early);
    double wall = wall_seconds() - t0;
    if (wall <= 0)
        wall = 1e-9;
    sim_context_destroy(&ctx);

    /* The rejoin bound: 2 x the current view-change timeout + a slack (T unless
     * --rejoin-slack-ms); the largest one any run reached. */
    struct pbft_replica_config defaults;
    pbft_replica_config_defaults(&defaults);
    uint64_t slack_ms = (o.rejoin_slack_ns ? o.rejoin_slack_ns : defaults.request_timeout_ns) / 1000000u;
    printf("sim: safety=%" PRIu64 " liveness=%" PRIu64 " (rejoin %" PRIu64 ") lincheck_unknown_keys=%" PRIu64
           " viewchanges=%" PRIu64 " (in %" PRIu64 " seeds) state_transfers=%" PRIu64 " (in %" PRIu64
           " seeds) request_timeouts=%" PRIu64 " restarts=%" PRIu64 " (refusing %" PRIu64 ") no_state=%" PRIu64
           " links=%" PRIu64 " liveness_bound=%s%" PRIu64 "ms rejoin_bound=%s2xVC+%" PRIu64 "ms(max %" PRIu64
           "ms) rejoin_max_outside=%" PRIu64 "ms wall=%.2fs\n",
           safety, liveness, rejoin_failures, unknown, viewchanges, viewchange_seeds, state_transfers, st_seeds,
           timeouts, restart_seeds, refuse_seeds, no_state, link_seeds,
           o.check_liveness ? "" : "off:", o.liveness_ns / 1000000u,
           o.check_liveness && o.check_rejoin ? "" : "off:", slack_ms, rejoin_bound / 1000000u,
           rejoin_outside / 1000000u, wall);
    if (o.durable)
        printf("sim: durable recoveries=%" PRIu64 " (from a snapshot %" PRIu64 ", unsure %" PRIu64
               ") batches_executed_again=%" PRIu64 " whole_group_crash_seeds=%" PRIu64 "\n",
               recoveries, from_snapshot, recovery_gaps, recovered_batches, whole_group_seeds);
    if (o.deploy_partitions)
        deploy_describe(&o, stdout, o.verbose);
    if (exit_code == 0) {
        if (expect)
            exit_code = found ? 0 : EXIT_SAFETY;
        else if (safety > 0)
            exit_code = EXIT_SAFETY;
        else if (liveness > 0)
            exit_code = EXIT_LIVENESS;
    }
    if (expect && !found && exit_code == EXIT_SAFETY)
        fprintf(stderr, "bftkv-sim: expected a safety violation in seeds %" PRIu64 "..%" PRIu64 ", found none\n",
                lo, hi);
    printf("sim: seeds=%" PRIu64 " violations=%" PRIu64 " committed=%" PRIu64 " avg_batch=%.1f sim_rps=%" PRIu64 "\n",
           seeds, safety + liveness, committed, batches ? (double)batch_requests / (double)batches : 0.0,
           (uint64_t)((double)committed / wall));
    return exit_code;
}
