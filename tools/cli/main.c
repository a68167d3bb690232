/* bftkv: the command line of a bftkv cluster, a thin layer over the public API
 * of the client library alone (include/bftkv/: client.h for the operations and
 * a replica's stats, config.h for the config and new key files); it is built
 * against libbftkv.a with only include/ on its include path. The deployment
 * admin's commands (`bftkv admin`, tools/cli/admin.c) are the one exception:
 * they make and sign deployment maps with the cluster room's own functions.
 *
 *   bftkv [--config FILE] [--client ID] [--timeout MS] COMMAND ARGS
 *
 * Options come before the command (so a VALUE may start with '-'). The config
 * file is --config, else $BFTKV_CONFIG, else ./cluster.conf; the client's secret
 * key is key_dir/client-ID.key of that config. `--help` lists the commands and
 * the exit codes, which scripts rely on; `bftkv COMMAND --help` (or `bftkv help
 * COMMAND`) describes one command and touches nothing; `--version` prints the
 * version:
 *
 *   0 ok, 1 key not found (get, del), 2 usage or config error (bad arguments,
 *   unreadable or bad config, refused key file, key or value too large),
 *   3 timeout or cluster unavailable (also: the group has no certified state,
 *   every lane of the client id stayed in use; status: fewer than a quorum of
 *   replicas healthy), 4 any other error, 5 status: some replica unhealthy.
 *
 * Every run opens one session of its client id (include/bftkv/client.h,
 * "Sessions") on one lane, so any number of runs with the same --client may go
 * on at once, up to the config's client_lanes; a run that finds every lane in
 * use waits up to its timeout for one. When a call fails the message says what
 * the replicas did (bftkv_client_last_error).
 *
 * `get` writes the value's bytes exactly as stored; it adds a newline only when
 * stdout is a terminal, so `bftkv get k > file` reproduces the value byte for
 * byte (--hex, --base64: encoded, on one line). Every message goes to stderr,
 * prefixed "bftkv: ". --json: each command's result as one JSON object on a line
 * of stdout (tools/cli/output.c: bytes that are not UTF-8 go base64-encoded);
 * errors before a command runs (usage, config) print nothing on stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bftkv/client.h"
#include "bftkv/config.h"
#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "cli.h"


#define CLI_DEFAULT_CONFIG "cluster.conf"
#define CLI_ERR_MAX 1024u
/* How long a run waits for a free lane when --timeout is not given. */
#define CLI_SESSION_WAIT_MS 5000

#ifndef BFTKV_VERSION
#error "BFTKV_VERSION comes from CMake's project version (tools/cli/CMakeLists.txt)"
#endif

enum cli_encoding { CLI_RAW = 0, CLI_HEX, CLI_BASE64 };

struct cli {
    const char *config;
    uint16_t client;
    int timeout_ms; /* 0: the config's client_timeout_ms */
    bool json;      /* --json: one JSON object per result on stdout */
    enum cli_encoding encoding; /* get's value: raw bytes, --hex or --base64 */
    bool stale;     /* get --stale: one replica's answer (BFTKV_CLIENT_STALE_READS) */
};

static void cli_help(FILE *fp)
{
    fprintf(fp,
            "usage: bftkv [OPTIONS] COMMAND [ARGS]\n"
            "\n"
            "The command line of a bftkv cluster: a Byzantine-fault-tolerant replicated\n"
            "key-value store.\n"
            "\n"
            "Commands:\n"
            "  put KEY VALUE     store VALUE under KEY\n"
            "  put KEY -         store what stdin holds (at most %u bytes) under KEY\n"
            "  get [--stale] KEY print KEY's value: its bytes exactly, followed by a newline\n"
            "                    only when stdout is a terminal; --stale: one replica's\n"
            "                    answer, possibly stale or wrong (bftkv get --help)\n"
            "  del KEY           remove KEY\n"
            "  stats REPLICA     print replica REPLICA's counters and latencies (JSON)\n"
            "  log-level REPLICA LEVEL\n"
            "                    set replica REPLICA's log level (error, warn, info, debug)\n"
            "                    at run time; the config must name --client in an\n"
            "                    admin_client line; prints the replica's answer (JSON)\n"
            "  status            one table of every replica's health; exit 0 healthy, 5 some\n"
            "                    replica unhealthy, 3 fewer than a quorum healthy\n"
            "  keygen PATH       write a new secret key file at PATH (mode 0600, never\n"
            "                    overwrites) and print its public keys as the config line\n"
            "                    fragment \"x25519=HEX ed25519=HEX\"\n"
            "  admin init ...    write a new partitioned deployment: the admin key, node and\n"
            "                    client keys, the signed deployment map (bftkv admin --help)\n"
            "  admin show-map FILE --admin-pub PUB\n"
            "                    verify a deployment map and print it as JSON\n"
            "  help [COMMAND]    this text, or COMMAND's (as `bftkv COMMAND --help`)\n"
            "\n"
            "Options (before the command):\n"
            "  --config FILE     the cluster config (default: $BFTKV_CONFIG, else ./%s)\n"
            "  --client ID       the client id of the config's allow-list (default 0); its\n"
            "                    secret key is key_dir/client-ID.key\n"
            "  --timeout MS      give up after MS milliseconds (default: the config's\n"
            "                    client_timeout_ms)\n"
            "  --json            print each result as one JSON object on a line of stdout\n"
            "                    (every command: put, get, del, stats, status, keygen,\n"
            "                    log-level, admin; messages still go to stderr); a key or\n"
            "                    value that is not UTF-8 is given as\n"
            "                    key_base64 / value_base64\n"
            "  --hex, --base64   get: print the value hex- or base64-encoded (one line), safe\n"
            "                    for binary values on a terminal; with --json: its encoding\n"
            "  -h, --help        this text\n"
            "  --version         print the version\n"
            "\n"
            "Keys are 1..%u bytes, values 0..%u bytes. `--` after the command ends its\n"
            "options: `bftkv get -- --help` reads the key \"--help\".\n"
            "\n"
            "Sessions: runs with the same --client may go on at once, each on its own\n"
            "lane of the client id (at most the config's client_lanes at a time); a run\n"
            "that finds every lane in use waits up to its timeout, then fails (exit 3).\n"
            "\n"
            "Exit codes:\n"
            "  0  ok\n"
            "  1  key not found (get, del)\n"
            "  2  usage or config error: bad arguments, unreadable or bad config file,\n"
            "     refused key file, key or value too large\n"
            "  3  timeout or cluster unavailable: not enough replicas answered in time,\n"
            "     the group holds no certified state, or every lane stayed in use\n"
            "     (status: fewer than a quorum of replicas healthy)\n"
            "  4  any other error\n"
            "  5  status: some replica unhealthy, a quorum healthy\n",
            BFTKV_VALUE_MAX, CLI_DEFAULT_CONFIG, BFTKV_KEY_MAX, BFTKV_VALUE_MAX);
}

static int cli_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "bftkv: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'bftkv --help'.\n");
    return EXIT_USAGE;
}

static bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* The exit code of a library error, with its message on stderr. detail: the
 * library's account of the failure (bftkv_client_last_error), or NULL. */
static int cli_fail_detail(const struct cli *cli, int rc, const char *what, const char *detail)
{
    switch (rc) {
    case BFTKV_E_NOT_FOUND:
        fprintf(stderr, "bftkv: key not found\n");
        return EXIT_NOT_FOUND;
    case BFTKV_E_KEY_EMPTY:
    case BFTKV_E_KEY_TOO_LARGE:
    case BFTKV_E_VALUE_TOO_LARGE:
    case BFTKV_E_INVAL:
    case BFTKV_E_CONFIG:
        fprintf(stderr, "bftkv: %s: %s\n", what, bftkv_strerror(rc));
        return EXIT_USAGE;
    case BFTKV_E_TIMEOUT:
    case BFTKV_E_UNAVAILABLE:
        if (detail != NULL && detail[0] != '\0') {
            fprintf(stderr, "bftkv: %s\n", detail);
        } else if (cli->timeout_ms > 0) {
            fprintf(stderr, "bftkv: %s: no answer from enough replicas within %d ms (%s)\n", what,
                    cli->timeout_ms, bftkv_strerror(rc));
        } else {
            fprintf(stderr, "bftkv: %s: no answer from enough replicas in time (%s)\n", what,
                    bftkv_strerror(rc));
        }
        return EXIT_UNAVAILABLE;
    case BFTKV_E_NO_STATE:
    case BFTKV_E_SESSION_BUSY:
        fprintf(stderr, "bftkv: %s: %s\n", what, bftkv_strerror(rc));
        return EXIT_UNAVAILABLE;
    default:
        fprintf(stderr, "bftkv: %s: %s\n", what, bftkv_strerror(rc));
        return EXIT_OTHER;
    }
}

static int cli_fail(const struct cli *cli, int rc, const char *what)
{
    return cli_fail_detail(cli, rc, what, NULL);
}

/* The result of a call on c (before c is closed): its exit code, and why it
 * failed as the library tells it. */
static int cli_result(const struct cli *cli, struct bftkv_client *c, int rc, const char *what)
{
    if (rc == 0) {
        return EXIT_OK;
    }
    char detail[BFTKV_CLIENT_ERROR_MAX];
    (void)bftkv_client_last_error(c, detail, sizeof detail);
    return cli_fail_detail(cli, rc, what, detail);
}

/* ---- put, get, del -------------------------------------------------------------------- */

static int cli_open(const struct cli *cli, struct bftkv_client **out)
{
    char err[CLI_ERR_MAX] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.timeout_ms = cli->timeout_ms;
    opt.lanes = 1;     /* one request per run: one lane of the client id's */
    opt.queue_max = 4;
    opt.session_wait_ms = cli->timeout_ms > 0 ? cli->timeout_ms : CLI_SESSION_WAIT_MS;
    opt.flags = cli->stale ? BFTKV_CLIENT_STALE_READS : 0u;
    opt.err = err;
    opt.errlen = sizeof err;
    int rc = bftkv_client_open(cli->config, cli->client, &opt, out);
    if (rc == 0) {
        return EXIT_OK;
    }
    if (rc == BFTKV_E_SESSION_BUSY) {
        fprintf(stderr,
                "bftkv: %s\nbftkv: every lane of client %u stayed in use for %d ms; retry later, use another "
                "--client, or raise client_lanes in the config (at most 64)\n",
                err, cli->client, opt.session_wait_ms);
        return EXIT_UNAVAILABLE;
    }
    fprintf(stderr, "bftkv: %s\n", err[0] != '\0' ? err : bftkv_strerror(rc));
    if (rc == BFTKV_E_TIMEOUT)
        return EXIT_UNAVAILABLE; /* no seed answered (deployment_seeds) */
    return rc == BFTKV_E_IO || rc == BFTKV_E_CONFIG || rc == BFTKV_E_INVAL ? EXIT_USAGE : EXIT_OTHER;
}

/* Read stdin into buf (cap bytes): its length, or -1 after printing why. */
static long cli_read_stdin(uint8_t *buf, size_t cap, int *code)
{
    size_t len = 0;
    for (;;) {
        size_t got = fread(buf + len, 1, cap - len, stdin);
        len += got;
        if (got == 0 || len == cap) {
            break;
        }
    }
    if (ferror(stdin)) {
        fprintf(stderr, "bftkv: reading the value from stdin: %s\n", strerror(errno));
        *code = EXIT_OTHER;
        return -1;
    }
    if (len == cap && fgetc(stdin) != EOF) {
        fprintf(stderr, "bftkv: the value on stdin is longer than the limit of %u bytes (BFTKV_VALUE_MAX)\n",
                BFTKV_VALUE_MAX);
        *code = EXIT_USAGE;
        return -1;
    }
    return (long)len;
}

/* One operation on a handle of its own: open, run, report (cli_result), close.
 * A PUT writes val (vlen bytes); a GET returns the value in *got, allocated (the
 * caller frees it with bftkv_free), and its length in *got_len. */
static int cli_op(const struct cli *cli, int op, const char *key, const void *val, size_t vlen, void **got,
                  size_t *got_len, int *rc_out)
{
    struct bftkv_client *c = NULL;
    int code = cli_open(cli, &c);
    *rc_out = code == EXIT_OK ? 0 : BFTKV_E_UNAVAILABLE;
    if (code != EXIT_OK) {
        return code;
    }
    size_t klen = strlen(key);
    int rc;
    const char *what;
    if (op == BFTKV_OP_PUT) {
        what = "put";
        rc = bftkv_put(c, key, klen, val, vlen);
    } else if (op == BFTKV_OP_GET) {
        what = "get";
        rc = bftkv_get_alloc(c, key, klen, got, got_len);
    } else {
        what = "del";
        rc = bftkv_del(c, key, klen);
    }
    *rc_out = rc;
    code = cli_result(cli, c, rc, what);
    bftkv_client_close(c);
    return code;
}

/* --json: the result of put, get or del on key, without a value (a GET that
 * found one prints its own). */
static int cli_json_op(const char *what, const char *key, int code, int rc)
{
    printf("{\"command\":\"%s\",", what);
    cli_json_bytes_field(stdout, "key", (const uint8_t *)key, strlen(key));
    bool put = strcmp(what, "put") == 0;
    if (code == EXIT_OK && put)
        printf(",\"ok\":true");
    else if (code == EXIT_OK || rc == BFTKV_E_NOT_FOUND)
        printf(",\"ok\":%s,\"found\":%s", code == EXIT_OK ? "true" : "false", code == EXIT_OK ? "true" : "false");
    else
        printf(",\"ok\":false,\"error\":\"%s\"", bftkv_strerror(rc));
    printf(",\"exit\":%d}\n", code);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "bftkv: writing the result: %s\n", strerror(errno));
        return EXIT_OTHER;
    }
    return code;
}

static int cli_put(const struct cli *cli, const char *key, const char *value)
{
    static uint8_t buf[BFTKV_VALUE_MAX];
    const void *val = value;
    size_t vlen = strlen(value);
    if (strcmp(value, "-") == 0) {
        int code = EXIT_OK;
        long n = cli_read_stdin(buf, sizeof buf, &code);
        if (n < 0) {
            return code;
        }
        val = buf;
        vlen = (size_t)n;
    }
    int rc = 0;
    int code = cli_op(cli, BFTKV_OP_PUT, key, val, vlen, NULL, NULL, &rc);
    return cli->json ? cli_json_op("put", key, code, rc) : code;
}

static int cli_get(const struct cli *cli, const char *key)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = 0;
    int code = cli_op(cli, BFTKV_OP_GET, key, NULL, 0, &val, &vlen, &rc);
    if (code != EXIT_OK) {
        return cli->json ? cli_json_op("get", key, code, rc) : code;
    }
    const uint8_t *v = val;
    bool ok = true;
    if (cli->json) {
        printf("{\"command\":\"get\",");
        cli_json_bytes_field(stdout, "key", (const uint8_t *)key, strlen(key));
        printf(",\"ok\":true,\"found\":true,\"length\":%zu,", vlen);
        if (cli->encoding == CLI_HEX) {
            printf("\"encoding\":\"hex\",\"value\":\"");
            cli_hex(stdout, v, vlen);
            printf("\"");
        } else if (cli->encoding == CLI_BASE64 || !cli_utf8_valid(v, vlen)) {
            printf("\"encoding\":\"base64\",\"value\":\"");
            cli_base64(stdout, v, vlen);
            printf("\"");
        } else {
            printf("\"encoding\":\"utf8\",\"value\":");
            cli_json_string(stdout, v, vlen);
        }
        printf(",\"exit\":0}\n");
    } else if (cli->encoding != CLI_RAW) {
        (cli->encoding == CLI_HEX ? cli_hex : cli_base64)(stdout, v, vlen);
        ok = fputc('\n', stdout) != EOF;
    } else {
        ok = fwrite(val, 1, vlen, stdout) == vlen;
        if (ok && isatty(STDOUT_FILENO)) {
            ok = fputc('\n', stdout) != EOF;
        }
    }
    ok = fflush(stdout) == 0 && !ferror(stdout) && ok;
    bftkv_free(val);
    if (!ok) {
        fprintf(stderr, "bftkv: writing the value: %s\n", strerror(errno));
        return EXIT_OTHER;
    }
    return EXIT_OK;
}

static int cli_del(const struct cli *cli, const char *key)
{
    int rc = 0;
    int code = cli_op(cli, BFTKV_OP_DEL, key, NULL, 0, NULL, NULL, &rc);
    return cli->json ? cli_json_op("del", key, code, rc) : code;
}

/* ---- stats ------------------------------------------------------------------------------- */

static int cli_stats(const struct cli *cli, const char *replica_arg)
{
    unsigned long replica;
    if (!cli_parse_uint(replica_arg, BFTKV_REPLICAS_MAX - 1u, &replica)) {
        return cli_usage("stats: '%s' is not a replica id", replica_arg);
    }
    char err[CLI_ERR_MAX];
    struct bftkv_config *cfg = NULL;
    int rc = bftkv_config_load(cli->config, &cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bftkv: %s\n", err);
        return EXIT_USAGE;
    }
    static char json[BFTKV_CLIENT_REPLICA_STATS_MAX];
    size_t len = 0;
    int timeout_ms = cli->timeout_ms > 0 ? cli->timeout_ms : (int)bftkv_config_client_timeout_ms(cfg);
    rc = bftkv_client_replica_stats(cfg, cli->client, (uint16_t)replica, timeout_ms, json, sizeof json, &len, err,
                                    sizeof err);
    bftkv_config_free(cfg);
    if (rc != 0 && err[0] != '\0') {
        /* the replica id, the key file or the client line: the caller's to fix */
        fprintf(stderr, "bftkv: %s\n", err);
        return EXIT_USAGE;
    }
    if (rc != 0) {
        struct cli timed = *cli;
        timed.timeout_ms = timeout_ms;
        int code = cli_fail(&timed, rc, "stats");
        if (cli->json) {
            printf("{\"command\":\"stats\",\"replica\":%lu,\"ok\":false,\"error\":\"%s\",\"exit\":%d}\n", replica,
                   bftkv_strerror(rc), code);
            fflush(stdout);
        }
        return code;
    }
    while (len > 0 && (json[len - 1] == '\n' || json[len - 1] == ' ')) {
        len--;
    }
    if (cli->json) {
        printf("{\"command\":\"stats\",\"replica\":%lu,\"ok\":true,\"stats\":", replica);
    }
    bool ok = fwrite(json, 1, len, stdout) == len;
    if (ok && cli->json) {
        ok = fputs(",\"exit\":0}", stdout) != EOF;
    }
    if (ok) {
        ok = fputc('\n', stdout) != EOF;
    }
    if (fflush(stdout) != 0 || !ok) {
        fprintf(stderr, "bftkv: writing the stats: %s\n", strerror(errno));
        return EXIT_OTHER;
    }
    return EXIT_OK;
}

/* ---- keygen ------------------------------------------------------------------------------ */

static int cli_keygen(const struct cli *cli, const char *path)
{
    if (path[0] == '-') {
        /* `bftkv keygen -x` would write a secret key file named like an option */
        fprintf(stderr,
                "bftkv: keygen: refusing the path '%s': it looks like an option (write ./%s to mean a file)\n",
                path, path);
        return EXIT_USAGE;
    }
    char err[CLI_ERR_MAX], x[65], ed[65];
    int rc = bftkv_config_keygen(path, x, ed, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bftkv: %s\n", err);
        return EXIT_OTHER;
    }
    if (cli->json) {
        printf("{\"command\":\"keygen\",");
        cli_json_bytes_field(stdout, "path", (const uint8_t *)path, strlen(path));
        printf(",\"ok\":true,\"x25519\":\"%s\",\"ed25519\":\"%s\",\"exit\":0}\n", x, ed);
    } else {
        printf("x25519=%s ed25519=%s\n", x, ed);
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "bftkv: writing the public keys: %s\n", strerror(errno));
        return EXIT_OTHER;
    }
    return EXIT_OK;
}

/* ---- main ------------------------------------------------------------------------------- */

struct cli_command {
    const char *name;
    int args; /* exact number of arguments (help: at most; admin: its own) */
    const char *usage;
    const char *help; /* what `bftkv COMMAND --help` adds below the usage line */
};

static const struct cli_command cli_commands[] = {
    { "put", 2, "put KEY VALUE|-",
      "Store VALUE under KEY; with VALUE '-', store what stdin holds (at most the value\n"
      "limit). Exit 0 when the replicas agreed the write, 3 when not enough of them\n"
      "answered in time (the write may still happen: read the key to find out).\n" },
    { "get", 1, "get [--stale] KEY",
      "Print KEY's value: its bytes exactly, followed by a newline only when stdout\n"
      "is a terminal. Exit 1 when the key does not exist.\n"
      "--stale: read ONE replica's current value, without ordering or a quorum (the\n"
      "next replica if it does not answer in time or holds no state). It answers\n"
      "while a single replica is up, but the value may be STALE (that replica may\n"
      "not have applied acknowledged writes yet) and WRONG if that replica is\n"
      "faulty: not linearizable, not Byzantine-fault-tolerant. Never the default.\n" },
    { "del", 1, "del KEY", "Remove KEY. Exit 1 when the key did not exist.\n" },
    { "log-level", 2, "log-level REPLICA LEVEL",
      "Set replica REPLICA's log level (error, warn, info or debug) while it runs,\n"
      "as client --client, which the config must name in an admin_client line; the\n"
      "replica logs the change. Prints the replica's answer as JSON\n"
      "({\"log_level\":\"debug\",\"was\":\"info\"}). Exit 0 when it obeyed, 4 when it\n"
      "refused (not an admin_client), 3 when it did not answer in time.\n" },
    { "stats", 1, "stats REPLICA",
      "Print replica REPLICA's counters and latencies as JSON (an authenticated admin\n"
      "request as client --client; it uses no lane of the client id).\n" },
    { "status", -1, "status [--json] [--max-behind N]",
      "Ask every replica for its stats at once and print one row each: address,\n"
      "partition, view and role, last executed and how far behind the most advanced\n"
      "replica, durability, whether it holds state, whether its state digest agrees\n"
      "with f+1 replicas at the same sequence number. Unhealthy: no answer (within\n"
      "--timeout, default 1500 ms), no state, another view than the quorum's, more\n"
      "than N behind (default 256), a differing digest. Exit 0 all healthy, 5 some\n"
      "unhealthy, 3 fewer than q = ceil((n+f+1)/2) healthy. --json: one object per\n"
      "replica and a summary object, one per line.\n" },
    { "keygen", 1, "keygen PATH",
      "Write a new secret key file at PATH (mode 0600, never overwrites; a PATH that\n"
      "starts with '-' is refused: write ./-name) and print its public keys as the\n"
      "config line fragment \"x25519=HEX ed25519=HEX\". Reads no config.\n" },
    { "admin", -1, "admin init|show-map ARGS", cli_admin_help },
    { "help", 1, "help [COMMAND]", "Print the usage of bftkv, or of COMMAND.\n" },
};

static const struct cli_command *cli_command_find(const char *name)
{
    for (size_t i = 0; i < sizeof cli_commands / sizeof cli_commands[0]; i++) {
        if (strcmp(name, cli_commands[i].name) == 0) {
            return &cli_commands[i];
        }
    }
    return NULL;
}

static void cli_command_help(const struct cli_command *cmd)
{
    printf("usage: bftkv [OPTIONS] %s\n\n%s\nOptions and exit codes: bftkv --help\n", cmd->usage, cmd->help);
}

static bool cli_is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

static int cli_parse_options(int argc, char **argv, struct cli *cli)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "client", required_argument, NULL, 'i' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "json", no_argument, NULL, 'j' },
        { "hex", no_argument, NULL, 'x' },
        { "base64", no_argument, NULL, 'b' },
        { NULL, 0, NULL, 0 },
    };
    const char *env = getenv("BFTKV_CONFIG");
    cli->config = env != NULL && env[0] != '\0' ? env : CLI_DEFAULT_CONFIG;
    opterr = 0;
    int ch;
    unsigned long v;
    while ((ch = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            cli->config = optarg;
            break;
        case 'i':
            if (!cli_parse_uint(optarg, BFTKV_CLIENTS_MAX - 1u, &v)) {
                return cli_usage("--client: '%s' is not a client id (0..4095)", optarg);
            }
            cli->client = (uint16_t)v;
            break;
        case 't':
            if (!cli_parse_uint(optarg, BFTKV_CONFIG_TIMEOUT_MS_MAX, &v) || v == 0) {
                return cli_usage("--timeout: '%s' is not a number of milliseconds (1..3600000)", optarg);
            }
            cli->timeout_ms = (int)v;
            break;
        case 'h':
            cli_help(stdout);
            return -1;
        case 'j':
            cli->json = true;
            break;
        case 'x':
        case 'b':
            if (cli->encoding != CLI_RAW) {
                return cli_usage("%s", "--hex and --base64 exclude each other");
            }
            cli->encoding = ch == 'x' ? CLI_HEX : CLI_BASE64;
            break;
        case 'V':
            printf("bftkv %s\n", BFTKV_VERSION);
            return -1;
        default:
            return cli_usage("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    return EXIT_OK;
}

/* `help`, `help COMMAND`. */
static int cli_help_command(char **args, int nargs)
{
    if (nargs == 0) {
        cli_help(stdout);
        return EXIT_OK;
    }
    const struct cli_command *cmd = cli_command_find(args[0]);
    if (cmd == NULL) {
        return cli_usage("help: unknown command '%s'", args[0]);
    }
    cli_command_help(cmd);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    struct cli cli = { .client = 0 };
    int code = cli_parse_options(argc, argv, &cli);
    if (code != EXIT_OK) {
        return code < 0 ? EXIT_OK : code;
    }
    if (optind >= argc) {
        return cli_usage("%s", "no command given");
    }
    const char *name = argv[optind];
    char **args = argv + optind + 1;
    int nargs = argc - optind - 1;
    const struct cli_command *cmd = cli_command_find(name);
    if (cmd == NULL) {
        return cli_usage("unknown command '%s'", name);
    }
    /* `bftkv COMMAND --help` describes COMMAND and touches nothing (no config, no
     * key file, no cluster); `--` ends the command's options. */
    if (nargs > 0 && cli_is_help(args[0])) {
        cli_command_help(cmd);
        return EXIT_OK;
    }
    if (strcmp(name, "get") == 0 && nargs > 0 && strcmp(args[0], "--stale") == 0) {
        cli.stale = true;
        args++;
        nargs--;
    }
    if (nargs > 0 && strcmp(args[0], "--") == 0) {
        args++;
        nargs--;
    }
    if (strcmp(name, "help") == 0) {
        return nargs <= 1 ? cli_help_command(args, nargs) : cli_usage("usage: bftkv [OPTIONS] %s", cmd->usage);
    }
    if (strcmp(name, "admin") == 0) {
        return cli_admin(args, nargs, cli.json);
    }
    if (strcmp(name, "status") == 0) {
        return cli_status(cli.config, cli.client, cli.timeout_ms, cli.json, args, nargs);
    }
    if (nargs != cmd->args) {
        return cli_usage("usage: bftkv [OPTIONS] %s", cmd->usage);
    }
    if (strcmp(name, "keygen") == 0) {
        return cli_keygen(&cli, args[0]);
    }
    if (strcmp(name, "stats") == 0) {
        return cli_stats(&cli, args[0]);
    }
    if (strcmp(name, "log-level") == 0) {
        return cli_log_level(cli.config, cli.client, cli.timeout_ms, cli.json, args[0], args[1]);
    }
    if (args[0][0] == '\0') {
        return cli_fail(&cli, BFTKV_E_KEY_EMPTY, name);
    }
    if (strcmp(name, "put") == 0) {
        return cli_put(&cli, args[0], args[1]);
    }
    if (strcmp(name, "get") == 0) {
        return cli_get(&cli, args[0]);
    }
    return cli_del(&cli, args[0]);
}
