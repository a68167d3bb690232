/* bftkv-server: runs one replica of a group in the foreground (server/server.h).
 *
 *   bftkv-server --config FILE --id I [--init | --init-only | --join]
 *                [--byzantine MODE] [--byzantine-seed N]
 *                [--log-level error|warn|info|debug] [--backend auto|uring|mmsg]
 *
 * Founding or rejoining (server/server_marker.h): --init founds a new group (every
 * replica of it starts with --init once; a durable replica's old write-ahead log
 * is removed); a start without it rejoins the group its marker in data_dir
 * names: rebuilt from its write-ahead log when it is durable and the log holds
 * records (server/server_durable.c), otherwise with empty memory, taking no part
 * in ordering until q replicas holding state vouch for it.
 *
 * Logs to stderr as `LEVEL bftkv-server[I]: message` and writes nothing else.
 * Exit codes: 0 after a clean stop on SIGTERM or SIGINT; 2 for bad arguments, a
 * bad config file (the message names the file and line), a bad or mismatched key
 * file, or --byzantine without `test_modes on`; 1 for a runtime failure (the
 * address or the metrics_listen address cannot be bound, the transport fails,
 * the write-ahead log cannot be opened, is corrupt, or fails to append or sync).
 *
 * Signals: SIGTERM and SIGINT are blocked in every thread before any starts and
 * taken synchronously by the main thread (sigtimedwait), which then stops the
 * server; no signal handler runs, so nothing async-signal-unsafe can happen.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <sodium.h>

#include "cluster/cluster.h"
#include "bftkv/errors.h"
#include "common/log.h"
#include "server/byzantine.h"
#include "server/node.h"
#include "server/metrics_http.h"
#include "server/server.h"
#include "server/server_marker.h"
#include "engine/pbft.h"

#define EXIT_USAGE 2
#define EXIT_RUNTIME 1

/* The Byzantine modes from the engine's name table, space-separated, on lines
 * that each start with indent (tools/cluster's list is checked against them). */
static void modes_print(FILE *fp, const char *indent)
{
    size_t col = 0;
    for (int m = BYZ_NONE + 1; m < BYZ_MODE_COUNT; m++) {
        const char *name = byz_mode_name((enum byz_mode)m);
        if (col > 0 && col + 1 + strlen(name) > 78) {
            fputc('\n', fp);
            col = 0;
        }
        col += (size_t)fprintf(fp, "%s%s", col == 0 ? indent : " ", name);
    }
    fputc('\n', fp);
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: bftkv-server --config FILE --id I [options]\n"
            "\n"
            "Runs replica I of the group described by FILE in the foreground.\n"
            "\n"
            "  --config FILE        the cluster config (docs/config.md)\n"
            "  --id I               the replica id, 0..n-1\n"
            "  --init               found a new group: write this replica's marker in data_dir\n"
            "                       (refused if one exists) and start with an empty store\n"
            "  --init-only          write a fresh marker as --init does and exit: the first start\n"
            "                       without flags (a service manager's) then founds the group\n"
            "  --join               join an existing group with empty memory (a new or replaced\n"
            "                       machine): writes a marker if none exists\n"
            "                       (no flag: rejoin the group the marker names; exit 2 without one)\n"
            "  --log-level L        error, warn, info or debug (default: the config's log_level)\n"
            "  --backend B          auto (default), uring or mmsg\n"
            "  --byzantine MODE     misbehave on purpose (tests only; needs 'test_modes on');\n"
            "                       MODE is one of (engine/byzantine.h):\n");
    modes_print(fp, "                         ");
    fprintf(fp,
            "  --byzantine-seed N   seed of the Byzantine choices (default: drawn at random, logged)\n"
            "  --help               this text\n"
            "\n"
            "Metrics: with a metrics_listen line in the config, GET /metrics on that address\n"
            "serves the Prometheus text format (docs/operations.md, \"Monitoring\").\n"
            "\n"
            "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 runtime failure, 2 bad arguments,\n"
            "config or keys.\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    if (s == NULL || *s == '\0' || *s == '-')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

struct args {
    const char *config;
    uint64_t id;
    bool have_id;
    int log_level; /* -1: the config's */
    enum net_backend backend;
    enum byz_mode byzantine;
    uint64_t seed;
    bool have_seed;
    enum server_start_mode start;
};

/* 0, 1 (--help printed), or EXIT_USAGE with a message. */
static int args_parse(int argc, char **argv, struct args *a)
{
    enum { OPT_CONFIG = 1, OPT_ID, OPT_BYZ, OPT_SEED, OPT_LOG, OPT_BACKEND, OPT_HELP, OPT_INIT, OPT_INIT_ONLY,
           OPT_JOIN };
    static const struct option opts[] = {
        {"config", required_argument, NULL, OPT_CONFIG},   {"id", required_argument, NULL, OPT_ID},
        {"byzantine", required_argument, NULL, OPT_BYZ},   {"byzantine-seed", required_argument, NULL, OPT_SEED},
        {"log-level", required_argument, NULL, OPT_LOG},   {"backend", required_argument, NULL, OPT_BACKEND},
        {"help", no_argument, NULL, OPT_HELP},             {"init", no_argument, NULL, OPT_INIT},
        {"init-only", no_argument, NULL, OPT_INIT_ONLY},   {"join", no_argument, NULL, OPT_JOIN},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->log_level = -1;
    a->backend = NET_BACKEND_AUTO;
    a->byzantine = BYZ_NONE;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONFIG:
            a->config = optarg;
            break;
        case OPT_ID:
            if (parse_u64(optarg, UINT32_MAX, &a->id) != 0) {
                log_error("--id: '%s' is not a replica or node id", optarg);
                return EXIT_USAGE;
            }
            a->have_id = true;
            {
                char name[LOG_NAME_MAX];
                snprintf(name, sizeof name, "bftkv-server[%" PRIu64 "]", a->id);
                log_name_set(name); /* later messages name the replica */
            }
            break;
        case OPT_BYZ: {
            int m = byz_mode_parse(optarg);
            if (m <= BYZ_NONE) {
                char list[256];
                size_t at = 0;
                for (int i = BYZ_NONE + 1; i < BYZ_MODE_COUNT && at < sizeof list; i++)
                    at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i > BYZ_NONE + 1 ? ", " : "",
                                           byz_mode_name((enum byz_mode)i));
                log_error("--byzantine: unknown mode '%s' (%s)", optarg, list);
                return EXIT_USAGE;
            }
            a->byzantine = (enum byz_mode)m;
            break;
        }
        case OPT_SEED:
            if (parse_u64(optarg, UINT64_MAX, &a->seed) != 0) {
                log_error("--byzantine-seed: '%s' is not a number", optarg);
                return EXIT_USAGE;
            }
            a->have_seed = true;
            break;
        case OPT_LOG:
            a->log_level = log_level_parse(optarg);
            if (a->log_level < 0) {
                log_error("--log-level: '%s' is not error, warn, info or debug", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_BACKEND:
            if (strcmp(optarg, "auto") == 0)
                a->backend = NET_BACKEND_AUTO;
            else if (strcmp(optarg, "uring") == 0)
                a->backend = NET_BACKEND_URING;
            else if (strcmp(optarg, "mmsg") == 0)
                a->backend = NET_BACKEND_MMSG;
            else {
                log_error("--backend: '%s' is not auto, uring or mmsg", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_HELP:
            usage(stdout);
            return 1;
        case OPT_INIT:
        case OPT_INIT_ONLY:
        case OPT_JOIN:
            if (a->start != SERVER_START_REJOIN) {
                log_error("--init, --init-only and --join exclude each other");
                return EXIT_USAGE;
            }
            a->start = c == OPT_INIT ? SERVER_START_INIT : c == OPT_JOIN ? SERVER_START_JOIN : SERVER_START_INIT_ONLY;
            break;
        default:
            log_error("unknown or incomplete option '%s' (see --help)", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument '%s' (see --help)", argv[optind]);
        return EXIT_USAGE;
    }
    if (a->config == NULL || !a->have_id) {
        log_error("--config FILE and --id I are required (see --help)");
        return EXIT_USAGE;
    }
    return 0;
}

/* Wait for SIGTERM/SIGINT (blocked in every thread) or a server failure. */
static int wait_for_stop(struct server *s, const sigset_t *set)
{
    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 200000000L};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT) {
            log_info("%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return 0;
        }
        if (server_failed(s)) {
            log_error("the runtime failed: stopping");
            return EXIT_RUNTIME;
        }
    }
}

int main(int argc, char **argv)
{
    struct args a;
    log_name_set("bftkv-server");
    int rc = args_parse(argc, argv, &a);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    if (sodium_init() < 0) {
        log_error("libsodium cannot initialise");
        return EXIT_RUNTIME;
    }

    char err[BFTKV_CONFIG_ERR_MAX] = "";
    struct bftkv_config *cfg = NULL;
    rc = bftkv_config_load(a.config, &cfg, err, sizeof err);
    if (rc != 0) {
        log_error("%s", err);
        return EXIT_USAGE;
    }
    log_level_set(a.log_level >= 0 ? (enum log_level)a.log_level : (enum log_level)cfg->log_level);
    if (cluster_deployment_is(cfg)) {
        /* A deployment's file: --id is a node, hosting a replica per partition. */
        if (a.byzantine != BYZ_NONE && !a.have_seed && getrandom(&a.seed, sizeof a.seed, 0) != (ssize_t)sizeof a.seed)
            a.seed = 1;
        struct server_node_args na = {a.id, a.backend, a.byzantine, a.seed, a.start};
        rc = server_node_run(cfg, &na);
        bftkv_config_free(cfg);
        return rc;
    }
    if (a.id >= cfg->n) {
        log_error("%s: replica %" PRIu64 " is not in the group (n = %u)", cfg->name, a.id, cfg->n);
        bftkv_config_free(cfg);
        return EXIT_USAGE;
    }
    uint16_t id = (uint16_t)a.id;
    /* This thread's lines name the replica too (no view: the engine is the
     * protocol thread's, common/log.h). */
    static struct log_ctx main_ctx;
    main_ctx = (struct log_ctx){.node = id, .partition = cfg->group};
    log_ctx_set(&main_ctx);
    if (a.byzantine != BYZ_NONE && !cfg->test_modes) {
        log_error("--byzantine %s refused: %s does not say 'test_modes on' (never in production)",
                  byz_mode_name(a.byzantine), cfg->name);
        bftkv_config_free(cfg);
        return EXIT_USAGE;
    }
    struct auth_keypair kp;
    rc = bftkv_key_identity_load(cfg, BFTKV_CONFIG_REPLICA, id, &kp, err, sizeof err);
    if (rc != 0) {
        log_error("%s", err);
        bftkv_config_free(cfg);
        return EXIT_USAGE;
    }
    bool restarted = false;
    rc = server_marker_open(cfg, id, a.start, &restarted, err, sizeof err);
    if (rc != 0 || a.start == SERVER_START_INIT_ONLY) {
        sodium_memzero(&kp, sizeof kp);
        if (rc != 0)
            log_error("%s", err);
        else
            log_info("marker written: the first start without flags founds the group");
        bftkv_config_free(cfg);
        return rc == 0 ? 0 : rc == BFTKV_E_CONFIG ? EXIT_USAGE : EXIT_RUNTIME;
    }
    if (restarted && cfg->durability == BFTKV_CONFIG_DURABILITY_NONE)
        log_info("rejoining group %u with empty memory: no part in ordering until q = %u replicas holding state "
                 "vouch for this one",
                 cfg->group, (unsigned)pbft_quorum(cfg->n, cfg->f));
    if (a.byzantine != BYZ_NONE && !a.have_seed && getrandom(&a.seed, sizeof a.seed, 0) != (ssize_t)sizeof a.seed)
        a.seed = 1;
    if (a.byzantine != BYZ_NONE)
        log_warn("Byzantine mode %s, seed %" PRIu64 ": this replica misbehaves on purpose",
                 byz_mode_name(a.byzantine), a.seed);

    /* Block the stop signals before any thread exists: every thread inherits the
     * mask, and only sigtimedwait below takes them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct server_options opt = {
        .cfg = cfg,
        .id = id,
        .backend = a.backend,
        .keys = &kp,
        .byzantine = a.byzantine,
        .byzantine_seed = a.seed,
        .restarted = restarted,
    };
    struct server *s = NULL;
    rc = server_create(&opt, &s, err, sizeof err);
    sodium_memzero(&kp, sizeof kp);
    if (rc != 0) {
        if (err[0] != '\0')
            log_error("%s", err);
        else
            log_error("cannot create the replica: %s", bftkv_strerror(rc));
        bftkv_config_free(cfg);
        return rc == BFTKV_E_CONFIG || rc == BFTKV_E_INVAL ? EXIT_USAGE : EXIT_RUNTIME;
    }
    int code = 0;
    struct metrics_http *mh = NULL;
    const char *mhost = NULL;
    uint16_t mport = 0;
    rc = server_start(s);
    if (rc != 0) {
        code = EXIT_RUNTIME; /* server_start logged why */
    } else if (bftkv_config_metrics_address(cfg, id, &mhost, &mport) &&
               (rc = metrics_http_start(s, mhost, mport, &mh, err, sizeof err)) != 0) {
        log_error("%s", err);
        code = EXIT_RUNTIME;
    } else {
        if (mh != NULL)
            log_info("metrics on http://%s:%u/metrics", mhost, mport);
        code = wait_for_stop(s, &set);
    }
    metrics_http_stop(mh);
    server_destroy(s);
    bftkv_config_free(cfg);
    return code;
}
