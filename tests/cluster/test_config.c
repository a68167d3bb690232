/* Unit tests of the config file grammar (cluster/config.c): valid files, errors,
 * the writer and the loader.
 *
 * Config texts are written inline with placeholders for the long hex keys: @R2
 * stands for "x25519=<hex> ed25519=<hex>" of replica 2's fixed test seed, @C5 for
 * client 5's, so every test shows its lines (and line numbers) as the parser sees
 * them. Each error case asserts the code BFTKV_E_CONFIG and a substring of the
 * message that includes "cluster.conf:LINE:". Files go to a fresh mkdtemp
 * directory under /tmp (config_fixture.c), removed at the end of each test. The
 * key-file tests (cluster/keys.c) are in test_config_keys.c; main() here runs all of
 * them as one cmocka group.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

#include "cluster/cluster.h"
#include "bftkv/errors.h"
#include "engine/pbft.h"
#include "store/store.h"
#include "config_fixture.h"

#define NAME "cluster.conf"

/* ---- Fixture ----------------------------------------------------------------------- */

static void seed_of(uint8_t seed[32], char role, unsigned id)
{
    for (unsigned i = 0; i < 32; i++)
        seed[i] = (uint8_t)((unsigned)role * 13u + i);
    seed[30] = (uint8_t)id; /* unique for every id below 65536 */
    seed[31] = (uint8_t)(id >> 8);
}

/* "x25519=.. ed25519=.." of a test principal ('R' replica, 'C' client). */
static void keys_attr(char out[160], char role, unsigned id)
{
    uint8_t seed[32];
    char x[65], ed[65];
    seed_of(seed, role, id);
    bftkv_key_public(seed, x, ed);
    snprintf(out, 160, "x25519=%s ed25519=%s", x, ed);
}

/* Expand @R<id> and @C<id> in tmpl. The result is freed by the caller. */
static char *expand(const char *tmpl)
{
    size_t cap = strlen(tmpl) * 40u + 1024u, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    for (const char *s = tmpl; *s != '\0';) {
        if (s[0] == '@' && (s[1] == 'R' || s[1] == 'C')) {
            char *end;
            unsigned long id = strtoul(s + 2, &end, 10);
            char attr[160];
            keys_attr(attr, s[1], (unsigned)id);
            size_t alen = strlen(attr);
            assert_true(len + alen < cap);
            memcpy(out + len, attr, alen);
            len += alen;
            s = end;
        } else {
            assert_true(len + 1 < cap);
            out[len++] = *s++;
        }
    }
    out[len] = '\0';
    return out;
}

static int parse_tmpl(const char *tmpl, struct bftkv_config **cfg, char *err, size_t errlen)
{
    char *text = expand(tmpl);
    int rc = bftkv_config_parse(text, strlen(text), NAME, cfg, err, errlen);
    free(text);
    return rc;
}

static struct bftkv_config *parse_ok(const char *tmpl)
{
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    int rc = parse_tmpl(tmpl, &cfg, err, sizeof err);
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(cfg);
    return cfg;
}

#define expect_error(tmpl, substring) expect_error_at(tmpl, substring, __LINE__)
static void expect_error_at(const char *tmpl, const char *substring, int at)
{
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = parse_tmpl(tmpl, &cfg, err, sizeof err);
    if (rc != BFTKV_E_CONFIG || strstr(err, substring) == NULL)
        print_error("test line %d: rc %d, message \"%s\", expected \"%s\"\n", at, rc, err, substring);
    assert_int_equal(rc, BFTKV_E_CONFIG);
    assert_non_null(strstr(err, substring));
    assert_null(cfg);
}

/* A minimal valid group of four; lines 1-8. */
#define GROUP4                                                                                                  \
    "f 1\n"                                     /* 1 */                                                         \
    "replica 0 127.0.0.1:7000 @R0\n"            /* 2 */                                                         \
    "replica 1 127.0.0.1:7001 @R1\n"            /* 3 */                                                         \
    "replica 2 127.0.0.1:7002 @R2\n"            /* 4 */                                                         \
    "replica 3 127.0.0.1:7003 @R3\n"            /* 5 */                                                         \
    "client 0 @C0\n"                            /* 6 */                                                         \
    "client 1 @C1\n"                            /* 7 */                                                         \
    "key_dir keys\n"                            /* 8 */

/* Every directive, none at its default; lines 1-29. */
#define FULL_TEXT \
    "# a full file\n" \
    "group 7\n" \
    "f 1\n" \
    "replica 0 127.0.0.1:7000 @R0\n" \
    "replica 1 127.0.0.1:7001 @R1\n" \
    "replica 2 10.0.0.2:7000 @R2\n" \
    "replica 3 [::1]:7000 @R3\n" \
    "replica 4 host-4.example:7000 @R4\n" \
    "client 0 @C0\n" \
    "client 5 @C5\n" \
    "key_dir keys/\n" \
    "batch_max_requests 256\n" \
    "batch_max_bytes 32K\n" \
    "window 16\n" \
    "checkpoint_interval 64\n" \
    "log_window 192\n" \
    "request_timeout_ms 200\n" \
    "retransmit_ms 20\n" \
    "client_lanes 8\n" \
    "readonly_fast_path off\n" \
    "client_timeout_ms 3000\n" \
    "threads staged auth_workers=3\n" \
    "socket_rcvbuf 8M\n" \
    "socket_sndbuf 65536\n" \
    "store_shards 1024\n" \
    "test_modes on\n" \
    "log_level debug\n" \
    "data_dir data\n" \
    "durability async\n"

/* ---- Valid files ----------------------------------------------------------------------- */

static void test_valid_full(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok(FULL_TEXT);
    assert_int_equal(cfg->group, 7);
    assert_int_equal(cfg->n, 5);
    assert_int_equal(cfg->f, 1);
    assert_string_equal(cfg->replica[1].host, "127.0.0.1");
    assert_int_equal(cfg->replica[1].port, 7001);
    assert_int_equal(cfg->replica[1].line, 5);
    assert_string_equal(cfg->replica[3].host, "::1");
    assert_string_equal(cfg->replica[4].host, "host-4.example");
    uint8_t seed[32];
    struct auth_keypair kp;
    seed_of(seed, 'R', 2);
    auth_keypair_from_seed(&kp, seed);
    assert_memory_equal(cfg->replica[2].x25519, kp.x_pk, 32);
    assert_memory_equal(cfg->replica[2].ed25519, kp.sign_pk, 32);
    assert_int_equal(cfg->clients, 6);
    assert_int_equal(cfg->clients_allowed, 2);
    assert_true(cfg->client[0].allowed && cfg->client[5].allowed);
    assert_false(cfg->client[3].allowed);
    seed_of(seed, 'C', 5);
    auth_keypair_from_seed(&kp, seed);
    assert_memory_equal(cfg->client[5].ed25519, kp.sign_pk, 32);
    assert_string_equal(cfg->key_dir, "keys");
    assert_int_equal(cfg->batch_max_requests, 256);
    assert_int_equal(cfg->batch_max_bytes, 32 * 1024);
    assert_int_equal(cfg->window, 16);
    assert_int_equal(cfg->checkpoint_interval, 64);
    assert_int_equal(cfg->log_window, 192);
    assert_int_equal(cfg->request_timeout_ms, 200);
    assert_int_equal(cfg->retransmit_ms, 20);
    assert_int_equal(cfg->client_lanes, 8);
    assert_false(cfg->readonly_fast_path);
    assert_int_equal(cfg->client_timeout_ms, 3000);
    assert_int_equal(cfg->threads, BFTKV_CONFIG_THREADS_STAGED);
    assert_int_equal(cfg->auth_workers, 3);
    assert_int_equal(cfg->socket_rcvbuf, 8u << 20);
    assert_int_equal(cfg->socket_sndbuf, 65536);
    assert_int_equal(cfg->store_shards, 1024);
    assert_true(cfg->test_modes);
    assert_int_equal(cfg->log_level, BFTKV_CONFIG_LOG_DEBUG);
    assert_string_equal(cfg->data_dir, "data");
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_ASYNC);

    struct pbft_replica_config rc;
    assert_int_equal(bftkv_config_fill_replica(cfg, 4, &rc), 0);
    assert_int_equal(rc.group, 7);
    assert_int_equal(rc.id, 4);
    assert_int_equal(rc.n, 5);
    assert_int_equal(rc.f, 1);
    assert_int_equal(rc.clients, 6);
    assert_int_equal(rc.lanes, 8);
    assert_int_equal(rc.checkpoint_interval, 64);
    assert_int_equal(rc.log_window, 192);
    assert_int_equal(rc.window, 16);
    assert_int_equal(rc.batch_max_requests, 256);
    assert_int_equal(rc.batch_max_bytes, 32 * 1024);
    assert_int_equal(rc.request_timeout_ns, 200u * 1000000u);
    assert_int_equal(rc.bugs, 0);
    assert_int_equal(bftkv_config_fill_replica(cfg, 5, &rc), BFTKV_E_INVAL);

    struct pbft_client_config cc;
    assert_int_equal(bftkv_config_fill_client(cfg, 5, &cc), 0);
    assert_int_equal(cc.group, 7);
    assert_int_equal(cc.id, 5);
    assert_int_equal(cc.n, 5);
    assert_int_equal(cc.f, 1);
    assert_int_equal(cc.lanes, 8);
    assert_int_equal(cc.retransmit_timeout_ns, 20u * 1000000u);
    assert_false(cc.readonly_fast_path);
    assert_int_equal(bftkv_config_fill_client(cfg, 3, &cc), BFTKV_E_INVAL); /* a gap */
    assert_int_equal(bftkv_config_fill_client(cfg, 6, &cc), BFTKV_E_INVAL);

    char path[256];
    assert_int_equal(bftkv_config_key_path(cfg, BFTKV_CONFIG_REPLICA, 3, path, sizeof path), 0);
    assert_string_equal(path, "keys/replica-3.key");
    assert_int_equal(bftkv_config_key_path(cfg, BFTKV_CONFIG_CLIENT, 5, path, sizeof path), 0);
    assert_string_equal(path, "keys/client-5.key");
    assert_int_equal(bftkv_config_key_path(cfg, BFTKV_CONFIG_CLIENT, 5, path, 8), BFTKV_E_RANGE);

    struct sockaddr_storage ss;
    socklen_t sl;
    char err[BFTKV_CONFIG_ERR_MAX];
    assert_int_equal(bftkv_config_replica_sockaddr(cfg, 1, &ss, &sl, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 7001);
    assert_int_equal(ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr), INADDR_LOOPBACK);
    assert_int_equal(bftkv_config_replica_sockaddr(cfg, 3, &ss, &sl, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(sl, sizeof(struct sockaddr_in6));
    assert_int_equal(bftkv_config_replica_sockaddr(cfg, 5, &ss, &sl, err, sizeof err), BFTKV_E_INVAL);
    bftkv_config_free(cfg);
}

/* Defaults are the engine's; the filled configs create a real replica and client. */
static void test_defaults_and_engine(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok(GROUP4);
    struct pbft_replica_config def;
    memset(&def, 0, sizeof def);
    pbft_replica_config_defaults(&def);
    struct pbft_client_config cdef;
    memset(&cdef, 0, sizeof cdef);
    pbft_client_config_defaults(&cdef);
    assert_int_equal(cfg->group, 0);
    assert_int_equal(cfg->batch_max_requests, def.batch_max_requests);
    assert_int_equal(cfg->batch_max_bytes, def.batch_max_bytes);
    assert_int_equal(cfg->window, def.window);
    assert_int_equal(cfg->checkpoint_interval, def.checkpoint_interval);
    assert_int_equal(cfg->log_window, def.log_window);
    assert_int_equal((uint64_t)cfg->request_timeout_ms * 1000000u, def.request_timeout_ns);
    assert_int_equal((uint64_t)cfg->retransmit_ms * 1000000u, cdef.retransmit_timeout_ns);
    assert_int_equal(cfg->client_lanes, BFTKV_CONFIG_CLIENT_LANES_DEFAULT);
    assert_int_equal(cfg->readonly_fast_path, cdef.readonly_fast_path);
    assert_int_equal(cfg->threads, BFTKV_CONFIG_THREADS_SINGLE);
    assert_int_equal(cfg->auth_workers, 1);
    assert_int_equal(cfg->store_shards, BFTKV_STORE_SHARDS_DEFAULT);
    assert_int_equal(cfg->socket_rcvbuf, BFTKV_CONFIG_SOCKET_BUFFER_DEFAULT);
    assert_false(cfg->test_modes);
    assert_int_equal(cfg->log_level, BFTKV_CONFIG_LOG_INFO);

    /* The engine accepts what fill produced. */
    uint8_t seed[32];
    struct auth_keypair kp;
    struct auth_ctx actx;
    char err[BFTKV_CONFIG_ERR_MAX];
    seed_of(seed, 'R', 2);
    auth_keypair_from_seed(&kp, seed);
    assert_int_equal(bftkv_key_auth_init(cfg, BFTKV_CONFIG_REPLICA, 2, &kp, &actx, err, sizeof err), 0);
    assert_true(auth_client_known(&actx, 1));
    struct pbft_replica_config rc;
    assert_int_equal(bftkv_config_fill_replica(cfg, 2, &rc), 0);
    struct store *st;
    assert_int_equal(store_create(NULL, &st), 0);
    struct pbft_replica *r;
    assert_int_equal(pbft_replica_create(&rc, &actx, st, &r), 0);
    pbft_replica_destroy(r);
    store_destroy(st);
    auth_destroy(&actx);

    seed_of(seed, 'C', 1);
    auth_keypair_from_seed(&kp, seed);
    assert_int_equal(bftkv_key_auth_init(cfg, BFTKV_CONFIG_CLIENT, 1, &kp, &actx, err, sizeof err), 0);
    struct pbft_client_config cc;
    assert_int_equal(bftkv_config_fill_client(cfg, 1, &cc), 0);
    struct pbft_client *c;
    assert_int_equal(pbft_client_create(&cc, &actx, &c), 0);
    pbft_client_destroy(c);
    auth_destroy(&actx);
    bftkv_config_free(cfg);

    /* checkpoint_interval alone: the log window follows: the engine's default
     * rounded to a multiple of K, at least 2K, at most BFTKV_LOG_WINDOW_MAX. */
    char text[512];
    for (uint32_t k = 1; k <= BFTKV_CHECKPOINT_INTERVAL_MAX; k++) {
        snprintf(text, sizeof text, GROUP4 "checkpoint_interval %u\n", k);
        cfg = parse_ok(text);
        assert_int_equal(cfg->log_window % k, 0);
        assert_true(cfg->log_window >= 2u * k && cfg->log_window <= BFTKV_LOG_WINDOW_MAX);
        if (def.log_window % k == 0 && def.log_window >= 2u * k)
            assert_int_equal(cfg->log_window, def.log_window);
        bftkv_config_free(cfg);
    }
    cfg = parse_ok(GROUP4 "checkpoint_interval 64\n");
    assert_int_equal(cfg->log_window, def.log_window);
    bftkv_config_free(cfg);
}

static void test_single_server(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok("f 0\nreplica 0 127.0.0.1:7000 @R0\nclient 0 @C0\nkey_dir /k\n");
    assert_int_equal(cfg->n, 1);
    assert_int_equal(cfg->f, 0);
    assert_string_equal(cfg->key_dir, "/k");
    bftkv_config_free(cfg);
    expect_error("f 1\nreplica 0 127.0.0.1:7000 @R0\nclient 0 @C0\nkey_dir /k\n",
                 NAME ":1: f=1 needs n >= 4 replicas, have 1");
}

/* f below the most N replicas tolerate is a valid group (tools/sweep --nf runs
 * N=7 at f = 0, 1, 2): only n >= 3f+1 is required (TOCS 2002 §2), and the engine
 * gets the f of the file, whose quorums still intersect in f+1 replicas. */
#define GROUP7_BODY                                                                                             \
    "replica 0 127.0.0.1:7000 @R0\nreplica 1 127.0.0.1:7001 @R1\nreplica 2 127.0.0.1:7002 @R2\n"              \
    "replica 3 127.0.0.1:7003 @R3\nreplica 4 127.0.0.1:7004 @R4\nreplica 5 127.0.0.1:7005 @R5\n"              \
    "replica 6 127.0.0.1:7006 @R6\nclient 0 @C0\nkey_dir k\n"

static void test_f_below_most(void **state)
{
    (void)state;
    static const uint16_t quorum[] = {4, 5, 5}; /* ceil((7 + f + 1) / 2) */
    for (uint16_t f = 0; f <= 2; f++) {
        char text[64];
        snprintf(text, sizeof text, "f %u\n", f);
        char *tmpl = malloc(strlen(text) + sizeof GROUP7_BODY);
        assert_non_null(tmpl);
        strcpy(tmpl, text);
        strcat(tmpl, GROUP7_BODY);
        struct bftkv_config *cfg = parse_ok(tmpl);
        free(tmpl);
        assert_int_equal(cfg->n, 7);
        assert_int_equal(cfg->f, f);
        struct pbft_replica_config rc;
        assert_int_equal(bftkv_config_fill_replica(cfg, 6, &rc), 0);
        assert_int_equal(rc.n, 7);
        assert_int_equal(rc.f, f);
        uint16_t q = pbft_quorum(rc.n, rc.f);
        assert_int_equal(q, quorum[f]);
        assert_true(2u * q >= (uint32_t)rc.n + rc.f + 1u);
        bftkv_config_free(cfg);
    }
    expect_error("f 3\n" GROUP7_BODY, NAME ":1: f=3 needs n >= 10 replicas, have 7");
}

static void test_whitespace_and_comments(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok("\n"
                                        "   # indented comment\n"
                                        "\t\tf\t1   # trailing comment\r\n"
                                        "replica 0    127.0.0.1:7000\t@R0\n"
                                        "replica 3 127.0.0.1:7003 @R3   \n"
                                        "\n\n"
                                        "replica 2 127.0.0.1:7002 @R2\r\n"
                                        "replica 1 127.0.0.1:7001 @R1#comment right after\n"
                                        "client 9 @C9\n"
                                        "#\n"
                                        "key_dir /etc/bftkv/keys\n"
                                        "window 4"); /* no final newline */
    assert_int_equal(cfg->n, 4);
    assert_int_equal(cfg->replica[1].line, 9);
    assert_int_equal(cfg->window, 4);
    assert_int_equal(cfg->clients, 10);
    assert_int_equal(cfg->clients_allowed, 1);
    assert_string_equal(cfg->key_dir, "/etc/bftkv/keys");
    bftkv_config_free(cfg);

    /* Upper-case hex is accepted. */
    char attr[160];
    keys_attr(attr, 'C', 0);
    for (char *c = attr, *eq = NULL; *c != '\0'; c++) {
        if (*c == '=' || *c == ' ')
            eq = *c == '=' ? c : NULL;
        else if (eq != NULL && *c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A'); /* the hex digits, not the attribute names */
    }
    char text[1024];
    snprintf(text, sizeof text, "f 0\nreplica 0 localhost:1 @R0\nclient 0 %s\nkey_dir k\n", attr);
    cfg = parse_ok(text);
    bftkv_config_free(cfg);

    /* The key directory is relative to the file's directory. */
    char *t = expand(GROUP4);
    char err[BFTKV_CONFIG_ERR_MAX];
    assert_int_equal(bftkv_config_parse(t, strlen(t), "/etc/bftkv/cluster.conf", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg->key_dir, "/etc/bftkv/keys");
    bftkv_config_free(cfg);
    assert_int_equal(bftkv_config_parse(t, strlen(t), "/cluster.conf", &cfg, err, sizeof err), 0);
    assert_string_equal(cfg->key_dir, "/keys");
    bftkv_config_free(cfg);
    free(t);
}

/* ---- Errors, each naming its line ------------------------------------------------------ */

static void test_errors_directives(void **state)
{
    (void)state;
    expect_error(GROUP4 "window 4\n" "foo 1\n", NAME ":10: unknown directive 'foo'");
    expect_error(GROUP4 "window 4\n" "window 5\n", NAME ":10: 'window' given twice (first at line 9)");
    expect_error(GROUP4 "key_dir other\n", NAME ":9: 'key_dir' given twice (first at line 8)");
    expect_error("f 1\n" GROUP4, NAME ":2: 'f' given twice (first at line 1)");
    expect_error(GROUP4 "window\n", NAME ":9: 'window' takes one value, got 0");
    expect_error(GROUP4 "window 4 5\n", NAME ":9: 'window' takes one value, got 2");
    expect_error(GROUP4 "window 0\n", NAME ":9: window 0 out of range (1..64)");
    expect_error(GROUP4 "window 65\n", NAME ":9: window 65 out of range (1..64)");
    expect_error(GROUP4 "window -1\n", NAME ":9: bad number '-1' for window");
    expect_error(GROUP4 "window 4x\n", NAME ":9: bad number '4x'");
    expect_error(GROUP4 "window 99999999999999999999999\n", NAME ":9: bad number");
    expect_error(GROUP4 "batch_max_requests 1025\n", NAME ":9: batch_max_requests 1025 out of range (1..1024)");
    expect_error(GROUP4 "batch_max_bytes 1M\n", NAME ":9: batch_max_bytes 1M out of range");
    expect_error(GROUP4 "batch_max_bytes 1000\n", NAME ":9: batch_max_bytes 1000 too small");
    expect_error(GROUP4 "batch_max_bytes 12Q\n", NAME ":9: bad number '12Q' for batch_max_bytes");
    char tmpl[512], want[128];
    snprintf(tmpl, sizeof tmpl, GROUP4 "checkpoint_interval %u\n", BFTKV_CHECKPOINT_INTERVAL_MAX + 1u);
    snprintf(want, sizeof want, NAME ":9: checkpoint_interval %u out of range (1..%u)",
             BFTKV_CHECKPOINT_INTERVAL_MAX + 1u, BFTKV_CHECKPOINT_INTERVAL_MAX);
    expect_error(tmpl, want);
    expect_error(GROUP4 "checkpoint_interval 100\nlog_window 250\n",
                 NAME ":10: log_window 250 must be a multiple of checkpoint_interval 100");
    expect_error(GROUP4 "checkpoint_interval 100\nlog_window 100\n", NAME ":10: log_window 100 must be");
    snprintf(tmpl, sizeof tmpl, GROUP4 "log_window %u\n", BFTKV_LOG_WINDOW_MAX + 1u);
    snprintf(want, sizeof want, NAME ":9: log_window %u out of range (2..%u)", BFTKV_LOG_WINDOW_MAX + 1u,
             BFTKV_LOG_WINDOW_MAX);
    expect_error(tmpl, want);
    expect_error(GROUP4 "window 64\ncheckpoint_interval 4\nlog_window 8\n",
                 NAME ":9: window 64 larger than log_window 8");
    expect_error(GROUP4 "request_timeout_ms 0\n", NAME ":9: request_timeout_ms 0 out of range");
    expect_error(GROUP4 "client_lanes 65\n", NAME ":9: client_lanes 65 out of range (1..64)");
    expect_error(GROUP4 "readonly_fast_path yes\n", NAME ":9: readonly_fast_path takes 'on' or 'off', not 'yes'");
    expect_error(GROUP4 "test_modes\n", NAME ":9: 'test_modes' takes one value");
    expect_error(GROUP4 "threads many\n", NAME ":9: unknown thread layout 'many'");
    expect_error(GROUP4 "threads\n", NAME ":9: expected: threads single");
    expect_error(GROUP4 "threads single auth_workers=2\n", NAME ":9: threads single takes no options");
    expect_error(GROUP4 "threads staged auth_workers=0\n", NAME ":9: bad auth_workers '0' (expected 1..64)");
    expect_error(GROUP4 "threads staged auth_workers=65\n", NAME ":9: bad auth_workers '65'");
    expect_error(GROUP4 "threads staged workers=2\n", NAME ":9: unknown option 'workers=2'");
    expect_error(GROUP4 "socket_rcvbuf 1024\n", NAME ":9: socket_rcvbuf 1024 out of range (4096..1073741824)");
    expect_error(GROUP4 "socket_sndbuf 2G\n", NAME ":9: socket_sndbuf 2G out of range");
    expect_error(GROUP4 "store_shards 100\n", NAME ":9: store_shards 100 is not a power of two");
    expect_error(GROUP4 "store_shards 131072\n", NAME ":9: store_shards 131072 out of range");
    expect_error(GROUP4 "log_level loud\n", NAME ":9: unknown log_level 'loud'");
    expect_error(GROUP4 "a b c d e f g h i\n", NAME ":9: too many words");
    expect_error(GROUP4 "group 1\n", NAME ":9: 'group' must come before the group's f and replica lines (line 1)");
    expect_error("group 1\ngroup 2\n" GROUP4, NAME ":2: 'group' given twice (first at line 1)");
    expect_error("group 65536\n" GROUP4, NAME ":1: group 65536 out of range (0..65535)");
    expect_error(GROUP4 "x\001y 1\n", NAME ":9: unknown directive");

    /* A line longer than the limit, and a NUL byte. */
    size_t big = BFTKV_CONFIG_LINE_MAX + 10;
    char *text = malloc(big + 64);
    assert_non_null(text);
    memset(text, '#', big);
    text[big] = '\n';
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    assert_int_equal(bftkv_config_parse(text, big + 1, NAME, &cfg, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, NAME ":1: line longer than 4096 bytes"));
    memcpy(text, "f 1\nwin\0dow 4\n", 14);
    assert_int_equal(bftkv_config_parse(text, 14, NAME, &cfg, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, NAME ":2: NUL byte"));
    free(text);
}

/* durability: sync by default with a data_dir, none without one, unless a line
 * says otherwise; a log needs a data_dir. */
static void test_durability(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok(GROUP4);
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_NONE);
    bftkv_config_free(cfg);
    cfg = parse_ok(GROUP4 "data_dir data\n");
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_SYNC);
    bftkv_config_free(cfg);
    cfg = parse_ok(GROUP4 "durability none\ndata_dir data\n");
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_NONE);
    bftkv_config_free(cfg);
    cfg = parse_ok(GROUP4 "data_dir data\ndurability async\n");
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_ASYNC);
    bftkv_config_free(cfg);
    cfg = parse_ok(GROUP4 "durability sync\ndata_dir /var/lib/bftkv\n");
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_SYNC);
    assert_string_equal(bftkv_config_durability_name(cfg->durability), "sync");
    bftkv_config_free(cfg);
    cfg = parse_ok(GROUP4 "durability none\n");
    assert_int_equal(cfg->durability, BFTKV_CONFIG_DURABILITY_NONE);
    bftkv_config_free(cfg);

    expect_error(GROUP4 "durability fast\ndata_dir data\n",
                 NAME ":9: unknown durability 'fast' (expected none, async or sync)");
    expect_error(GROUP4 "durability\n", NAME ":9: 'durability' takes one value, got 0");
    expect_error(GROUP4 "durability sync sync\n", NAME ":9: 'durability' takes one value, got 2");
    expect_error(GROUP4 "data_dir d\ndurability sync\ndurability none\n",
                 NAME ":11: 'durability' given twice (first at line 10)");
    expect_error(GROUP4 "durability sync\n", NAME ":9: durability sync needs a data_dir line");
    expect_error(GROUP4 "window 4\ndurability async\n", NAME ":10: durability async needs a data_dir line");
}

static void test_errors_group(void **state)
{
    (void)state;
    /* Replica ids, duplicates and the implied n. */
    expect_error("f 1\n"
                 "replica 0 127.0.0.1:7000 @R0\n"
                 "replica 1 127.0.0.1:7001 @R1\n"
                 "replica 3 127.0.0.1:7003 @R3\n"
                 "replica 2 127.0.0.1:7002 @R2\n"
                 "client 0 @C0\n"
                 "replica 2 127.0.0.1:7009 @R5\n",
                 NAME ":7: replica 2 defined twice (first at line 5)");
    expect_error("f 1\n"
                 "replica 0 127.0.0.1:7000 @R0\n"
                 "replica 1 127.0.0.1:7001 @R1\n"
                 "replica 2 127.0.0.1:7002 @R2\n"
                 "replica 4 127.0.0.1:7004 @R4\n"
                 "client 0 @C0\nkey_dir k\n",
                 NAME ": replica 3 missing (ids must be 0..n-1");
    expect_error("f 0\nreplica 64 127.0.0.1:7000 @R0\n", NAME ":2: bad replica id '64' (expected 0..63)");
    expect_error("f 0\nreplica x 127.0.0.1:7000 @R0\n", NAME ":2: bad replica id 'x'");
    expect_error("f 22\n", NAME ":1: f 22 out of range (0..21)");
    expect_error("f 2\n"
                 "replica 0 127.0.0.1:7000 @R0\n"
                 "replica 1 127.0.0.1:7001 @R1\n"
                 "replica 2 127.0.0.1:7002 @R2\n"
                 "replica 3 127.0.0.1:7003 @R3\n"
                 "client 0 @C0\nkey_dir k\n",
                 NAME ":1: f=2 needs n >= 7 replicas, have 4");
    expect_error("replica 0 127.0.0.1:7000 @R0\nclient 0 @C0\nkey_dir k\n", NAME ": missing 'f'");
    expect_error("f 0\nclient 0 @C0\nkey_dir k\n", NAME ": no replica lines");
    expect_error("f 0\nreplica 0 127.0.0.1:7000 @R0\nkey_dir k\n", NAME ": no client lines");
    expect_error("f 0\nreplica 0 127.0.0.1:7000 @R0\nclient 0 @C0\n", NAME ": missing 'key_dir'");
    expect_error("", NAME ": missing 'key_dir'");

    /* Addresses. */
    expect_error("f 0\nreplica 0 127.0.0.1:0 @R0\n", NAME ":2: bad port '0' (expected 1..65535)");
    expect_error("f 0\nreplica 0 127.0.0.1:65536 @R0\n", NAME ":2: bad port '65536' (expected 1..65535)");
    expect_error("f 0\nreplica 0 127.0.0.1: @R0\n", NAME ":2: bad port ''");
    expect_error("f 0\nreplica 0 127.0.0.1 @R0\n", NAME ":2: bad address '127.0.0.1' (expected HOST:PORT)");
    expect_error("f 0\nreplica 0 :7000 @R0\n", NAME ":2: bad address ':7000'");
    expect_error("f 0\nreplica 0 ::1:7000 @R0\n", NAME ":2: bad address '::1:7000' (an IPv6 address goes in brackets");
    expect_error("f 0\nreplica 0 [::1]7000 @R0\n", NAME ":2: bad address '[::1]7000'");
    expect_error("f 0\nreplica 0 [::g]:7000 @R0\n", NAME ":2: bad IPv6 address '::g'");
    expect_error("f 0\nreplica 0 300.1.1.1:7000 @R0\n", NAME ":2: bad IPv4 address '300.1.1.1'");
    expect_error("f 0\nreplica 0 bad/host:7000 @R0\n", NAME ":2: bad host name 'bad/host'");
    expect_error("f 1\n"
                 "replica 0 127.0.0.1:7000 @R0\n"
                 "replica 1 127.0.0.1:7001 @R1\n"
                 "replica 2 127.0.0.2:7001 @R2\n"
                 "replica 3 127.0.0.1:7001 @R3\n"
                 "client 0 @C0\nkey_dir k\n",
                 NAME ":5: address 127.0.0.1:7001 already used by replica 1 (line 3)");
    expect_error("f 1\n"
                 "replica 3 Host.Example:7000 @R3\n"
                 "replica 1 127.0.0.1:7001 @R1\n"
                 "replica 2 127.0.0.1:7002 @R2\n"
                 "replica 0 host.example:7000 @R0\n"
                 "client 0 @C0\nkey_dir k\n",
                 NAME ":5: address host.example:7000 already used by replica 3 (line 2)");

    /* Keys. */
    char text[1024];
    char attr[160];
    keys_attr(attr, 'R', 0);
    snprintf(text, sizeof text, "f 0\n\nreplica 0 127.0.0.1:7000 %.70s %s\n", attr, strchr(attr, ' ') + 1);
    expect_error(text, NAME ":3: bad hex key for x25519 (expected 64 hex digits, got 63 characters)");
    memcpy(strstr(attr, "ed25519=") + 8, "zz", 2);
    snprintf(text, sizeof text, "f 0\n\nreplica 0 127.0.0.1:7000 %s\n", attr);
    expect_error(text, NAME ":3: bad hex key for ed25519 (expected 64 hex digits");
    keys_attr(attr, 'R', 0);
    snprintf(text, sizeof text, "f 0\nreplica 0 127.0.0.1:7000 %s %s\n", attr, "x=1");
    expect_error(text, NAME ":2: expected: replica ID HOST:PORT x25519=HEX ed25519=HEX");
    *strchr(attr, ' ') = '\0';
    snprintf(text, sizeof text, "f 0\nreplica 0 127.0.0.1:7000 %s %s\n", attr, attr);
    expect_error(text, NAME ":2: x25519 given twice");
    snprintf(text, sizeof text, "f 0\nreplica 0 127.0.0.1:7000 %s rsa=00\n", attr);
    expect_error(text, NAME ":2: unknown attribute 'rsa=00'");
    snprintf(text, sizeof text, "client 0 %s\n", attr);
    expect_error(text, NAME ":1: expected: client ID x25519=HEX ed25519=HEX");

    /* Clients. */
    expect_error(GROUP4 "client 1 @C9\n", NAME ":9: client 1 defined twice (first at line 7)");
    expect_error(GROUP4 "client 4096 @C9\n", NAME ":9: bad client id '4096' (expected 0..4095)");
    expect_error(GROUP4 "client 3 @C0\n", NAME ":9: x25519 key of client 3 is also the key of client 0 (line 6)");
    expect_error(GROUP4 "client 3 @R2\n", NAME ":9: x25519 key of client 3 is also the key of replica 2 (line 4)");
}

static void test_error_buffers(void **state)
{
    (void)state;
    char *t = expand(GROUP4 "foo\n");
    struct bftkv_config *cfg = NULL;
    assert_int_equal(bftkv_config_parse(t, strlen(t), NAME, &cfg, NULL, 0), BFTKV_E_CONFIG);
    char small[8];
    assert_int_equal(bftkv_config_parse(t, strlen(t), NAME, &cfg, small, sizeof small), BFTKV_E_CONFIG);
    assert_string_equal(small, "cluster");
    assert_null(cfg);
    assert_int_equal(bftkv_config_parse(t, strlen(t), NAME, NULL, small, sizeof small), BFTKV_E_INVAL);
    free(t);
    /* A big allow-list: every client id. */
    size_t cap = (size_t)BFTKV_CLIENTS_MAX * 200u + 4096u, len = 0;
    char *big = malloc(cap);
    assert_non_null(big);
    char *g = expand(GROUP4);
    len += (size_t)snprintf(big, cap, "%s", g);
    free(g);
    for (unsigned c = 2; c < BFTKV_CLIENTS_MAX; c++) {
        char attr[160];
        keys_attr(attr, 'C', c);
        len += (size_t)snprintf(big + len, cap - len, "client %u %s\n", c, attr);
    }
    char err[BFTKV_CONFIG_ERR_MAX];
    int rc = bftkv_config_parse(big, len, NAME, &cfg, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(cfg->clients, BFTKV_CLIENTS_MAX);
    assert_int_equal(cfg->clients_allowed, BFTKV_CLIENTS_MAX);
    bftkv_config_free(cfg);
    free(big);
}

/* ---- Writer and loader -------------------------------------------------------------- */

static void normalise(struct bftkv_config *cfg)
{
    for (unsigned i = 0; i < BFTKV_REPLICAS_MAX; i++)
        cfg->replica[i].line = 0;
    for (unsigned i = 0; i < BFTKV_CLIENTS_MAX; i++)
        cfg->client[i].line = 0;
}

static struct bftkv_config *write_and_parse(const struct bftkv_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    assert_non_null(fp);
    assert_int_equal(bftkv_config_write(cfg, fp), 0);
    fclose(fp);
    struct bftkv_config *back = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    int rc = bftkv_config_parse(text, len, NAME, &back, err, sizeof err);
    if (rc != 0)
        print_error("%s\n--\n%s", err, text);
    assert_int_equal(rc, 0);
    free(text);
    return back;
}

static void test_write_round_trip(void **state)
{
    (void)state;
    /* key_dir is joined to the name's directory: use a name without one, so the
     * written key_dir reads back the same. */
    struct bftkv_config *cfg = parse_ok(FULL_TEXT);
    struct bftkv_config *back = write_and_parse(cfg);
    normalise(cfg);
    normalise(back);
    assert_memory_equal(cfg, back, sizeof *cfg);
    bftkv_config_free(back);
    bftkv_config_free(cfg);

    /* Built in code, then written. */
    cfg = bftkv_config_new();
    assert_non_null(cfg);
    cfg->n = 1;
    snprintf(cfg->replica[0].host, sizeof cfg->replica[0].host, "127.0.0.1");
    cfg->replica[0].port = 9000;
    memset(cfg->replica[0].x25519, 1, 32);
    memset(cfg->replica[0].ed25519, 2, 32);
    cfg->clients = 1;
    cfg->clients_allowed = 1;
    cfg->client[0].allowed = true;
    memset(cfg->client[0].x25519, 3, 32);
    memset(cfg->client[0].ed25519, 4, 32);
    snprintf(cfg->key_dir, sizeof cfg->key_dir, "keys");
    back = write_and_parse(cfg);
    normalise(back);
    memcpy(back->name, cfg->name, sizeof back->name);
    assert_memory_equal(cfg, back, sizeof *cfg);
    bftkv_config_free(back);
    bftkv_config_free(cfg);
}

static void test_load(void **state)
{
    (void)state;
    dir_make();
    char path[PATH_MAX], err[BFTKV_CONFIG_ERR_MAX];
    struct bftkv_config *cfg = NULL;

    snprintf(path, sizeof path, "%s/cluster.conf", g_dir);
    assert_int_equal(bftkv_config_load(path, &cfg, err, sizeof err), BFTKV_E_IO);
    assert_non_null(strstr(err, "No such file"));
    char *t = expand(GROUP4);
    file_write(path, t, 0644);
    free(t);
    assert_int_equal(bftkv_config_load(path, &cfg, err, sizeof err), 0);
    char want[PATH_MAX + 8], real[PATH_MAX];
    assert_non_null(realpath(g_dir, real));
    snprintf(want, sizeof want, "%s/keys", real);
    assert_string_equal(cfg->key_dir, want);
    assert_string_equal(cfg->name, path);
    bftkv_config_free(cfg);

    /* Errors carry the path as given. */
    t = expand(GROUP4 "bogus on\n");
    file_write(path, t, 0644);
    free(t);
    assert_int_equal(bftkv_config_load(path, &cfg, err, sizeof err), BFTKV_E_CONFIG);
    char want_err[PATH_MAX + 64];
    snprintf(want_err, sizeof want_err, "%s:9: unknown directive 'bogus'", path);
    assert_string_equal(err, want_err);

    assert_int_equal(bftkv_config_load(g_dir, &cfg, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "not a regular file"));
    dir_remove_tree(g_dir);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_full),
        cmocka_unit_test(test_defaults_and_engine),
        cmocka_unit_test(test_single_server),
        cmocka_unit_test(test_f_below_most),
        cmocka_unit_test(test_whitespace_and_comments),
        cmocka_unit_test(test_errors_directives),
        cmocka_unit_test(test_durability),
        cmocka_unit_test(test_errors_group),
        cmocka_unit_test(test_error_buffers),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
