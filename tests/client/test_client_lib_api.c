/* The client library's public interface and how it grows (include/bftkv/client.h
 * "ABI", include/bftkv/config.h "ABI"), against the in-process fake cluster
 * (test_client_lib_fake.h): 4 replicas, f = 1.
 *
 *   - A handle opens from a config held in memory (bftkv_client_open_text, with
 *     an absolute key_dir and with one relative to the name given) and from a
 *     parsed config freed right after (bftkv_client_open_config), and works;
 *     bad text fails with the parser's "NAME:LINE: message".
 *   - The config accessors read what the file says.
 *   - Options: a struct without struct_size is refused; an older program's
 *     (the first version's size) opens with defaults; a newer program's opens
 *     when its unknown fields are zero and is refused when one is set.
 *   - Stats: filled up to the caller's struct_size; a newer program's unknown
 *     fields read zero and struct_size tells how much was filled; too small is
 *     refused.
 *   - bftkv_client_replica_stats refuses a replica or a client the config lacks,
 *     with a message (answers of real replicas: server_test's fx_stats).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/client.h"
#include "bftkv/config.h"
#include "bftkv/errors.h"
#include "tests/client/test_client_lib_fake.h"

static struct fake_cluster g_fc;

/* The first version of each struct ends with these fields (a program built
 * against that version's header declares exactly this much). */
#define OPTIONS_SIZE_0 (offsetof(struct bftkv_client_options, session_wait_ms) + sizeof(int))
#define STATS_SIZE_0 (offsetof(struct bftkv_client_stats, readonly_retries) + sizeof(uint64_t))

/* What a program built against a later header with one more field would pass. */
struct options_newer {
    struct bftkv_client_options base;
    uint64_t future;
};
struct stats_newer {
    struct bftkv_client_stats base;
    uint64_t future;
};

/* The fake cluster's config file, as text (malloc'd, *len bytes). */
static char *conf_text(size_t *len)
{
    FILE *fp = fopen(g_fc.conf, "r");
    assert_non_null(fp);
    char *text = malloc(64 * 1024);
    assert_non_null(text);
    *len = fread(text, 1, 64 * 1024 - 1, fp);
    text[*len] = '\0';
    fclose(fp);
    return text;
}

/* A put then a get of the same key on c, then close. */
static void roundtrip_and_close(struct bftkv_client *c, const char *key, const char *val)
{
    assert_int_equal(bftkv_put(c, key, strlen(key), val, strlen(val)), 0);
    char buf[64];
    size_t vlen = 0;
    assert_int_equal(bftkv_get(c, key, strlen(key), buf, sizeof buf, &vlen), 0);
    assert_int_equal(vlen, strlen(val));
    assert_memory_equal(buf, val, vlen);
    bftkv_client_close(c);
}

static void test_open_text(void **state)
{
    (void)state;
    size_t len = 0;
    char *text = conf_text(&len);
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    struct bftkv_client *c = NULL;

    /* key_dir relative to the name's directory: the file's own name works. */
    int rc = bftkv_client_open_text(text, len, g_fc.conf, 0, &opt, &c);
    if (rc != 0) {
        fprintf(stderr, "open_text: %s\n", err);
    }
    assert_int_equal(rc, 0);
    roundtrip_and_close(c, "text-1", "from memory");

    /* A config that never was a file: key_dir made absolute, any name. */
    const char *rel = "key_dir keys\n";
    char *at = strstr(text, rel);
    assert_non_null(at);
    size_t cap = len + 256;
    char *mem = malloc(cap);
    assert_non_null(mem);
    int n = snprintf(mem, cap, "%.*skey_dir %s/keys\n%s", (int)(at - text), text, g_fc.dir, at + strlen(rel));
    assert_true(n > 0 && (size_t)n < cap);
    c = NULL;
    rc = bftkv_client_open_text(mem, (size_t)n, "in-memory", 1, &opt, &c);
    if (rc != 0) {
        fprintf(stderr, "open_text: %s\n", err);
    }
    assert_int_equal(rc, 0);
    roundtrip_and_close(c, "text-2", "never a file");

    /* Without the absolute key_dir and without a path for a name: the key file
     * is looked for relative to the working directory, not found. */
    c = (struct bftkv_client *)&opt;
    assert_int_not_equal(bftkv_client_open_text(text, len, "in-memory", 0, &opt, &c), 0);
    assert_null(c);

    /* Bad text: the parser's message, under the name given. */
    const char bad[] = "f 1\nno_such_directive 3\n";
    assert_int_equal(bftkv_client_open_text(bad, sizeof bad - 1, "inline.conf", 0, &opt, &c), BFTKV_E_CONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "inline.conf:2:"));
    assert_int_equal(bftkv_client_open_text(NULL, 0, "x", 0, &opt, &c), BFTKV_E_INVAL);
    free(mem);
    free(text);
}

static void test_open_config_and_accessors(void **state)
{
    (void)state;
    char err[512] = "";
    struct bftkv_config *cfg = NULL;
    assert_int_equal(bftkv_config_load(g_fc.conf, &cfg, err, sizeof err), 0);
    assert_string_equal(bftkv_config_name(cfg), g_fc.conf);
    assert_int_equal(bftkv_config_group(cfg), 0);
    assert_int_equal(bftkv_config_replicas(cfg), 4);
    assert_int_equal(bftkv_config_faults(cfg), 1);
    assert_true(bftkv_config_client_allowed(cfg, 3));
    assert_false(bftkv_config_client_allowed(cfg, 4));
    assert_int_equal(bftkv_config_client_lanes(cfg), 64);
    assert_int_equal(bftkv_config_client_timeout_ms(cfg), BFTKV_CONFIG_CLIENT_TIMEOUT_MS_DEFAULT);
    char host[BFTKV_CONFIG_HOST_MAX + 1];
    uint16_t port = 0;
    assert_int_equal(bftkv_config_replica_address(cfg, 2, host, sizeof host, &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, g_fc.cfg->replica[2].port);
    assert_int_equal(bftkv_config_replica_address(cfg, 2, host, 9, &port), BFTKV_E_RANGE); /* "127.0.0.1" + NUL */
    assert_int_equal(bftkv_config_replica_address(cfg, 4, host, sizeof host, &port), BFTKV_E_INVAL);

    struct bftkv_client *c = NULL;
    assert_int_equal(bftkv_client_open_config(cfg, 2, NULL, &c), 0);
    bftkv_config_free(cfg); /* the handle keeps nothing of it */
    roundtrip_and_close(c, "cfg-1", "parsed first");
    assert_int_equal(bftkv_client_open_config(NULL, 2, NULL, &c), BFTKV_E_INVAL);
    assert_null(c);
}

static void test_options_struct_size(void **state)
{
    (void)state;
    char err[512] = "";
    struct bftkv_client *c = NULL;

    /* Zero-initialised: no struct_size, refused without touching err. */
    struct bftkv_client_options zero;
    memset(&zero, 0, sizeof zero);
    zero.err = err;
    zero.errlen = sizeof err;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &zero, &c), BFTKV_E_INVAL);
    assert_null(c);
    assert_string_equal(err, "");
    zero.struct_size = OPTIONS_SIZE_0 - 1u;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &zero, &c), BFTKV_E_INVAL);
    zero.struct_size = 1u << 20; /* garbage, not a header from the future */
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &zero, &c), BFTKV_E_INVAL);

    /* The static initialiser. */
    struct bftkv_client_options lit = BFTKV_CLIENT_OPTIONS_INIT;
    lit.lanes = 1;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &lit, &c), 0);
    roundtrip_and_close(c, "opt-lit", "1");

    /* An older program: the first version's size; what follows is not read. */
    struct options_newer older;
    memset(&older, 0xa5, sizeof older); /* bytes past struct_size are not its */
    memset(&older.base, 0, OPTIONS_SIZE_0);
    older.base.struct_size = OPTIONS_SIZE_0;
    older.base.lanes = 2;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &older.base, &c), 0);
    struct bftkv_client_stats s = { .struct_size = sizeof s };
    assert_int_equal(bftkv_client_stats(c, &s), 0);
    assert_int_equal(s.lanes, 2);
    roundtrip_and_close(c, "opt-old", "2");

    /* A newer program: its unknown field zero is fine, set is refused. */
    struct options_newer newer;
    memset(&newer, 0, sizeof newer);
    bftkv_client_options_init(&newer.base);
    newer.base.struct_size = sizeof newer;
    newer.base.err = err;
    newer.base.errlen = sizeof err;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &newer.base, &c), 0);
    roundtrip_and_close(c, "opt-new", "3");
    newer.future = 1;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &newer.base, &c), BFTKV_E_UNSUPPORTED);
    assert_null(c);
    assert_non_null(strstr(err, "newer include/bftkv/client.h"));
}

static void test_stats_struct_size(void **state)
{
    (void)state;
    struct bftkv_client *c = NULL;
    assert_int_equal(bftkv_client_open(g_fc.conf, 1, NULL, &c), 0);
    assert_int_equal(bftkv_put(c, "st", 2, "v", 1), 0);

    struct bftkv_client_stats s;
    memset(&s, 0, sizeof s);
    assert_int_equal(bftkv_client_stats(c, &s), BFTKV_E_INVAL); /* struct_size 0 */
    s.struct_size = STATS_SIZE_0 - 1u;
    assert_int_equal(bftkv_client_stats(c, &s), BFTKV_E_INVAL);

    /* A newer program: its field beyond this library's struct reads 0. */
    struct stats_newer newer;
    memset(&newer, 0xff, sizeof newer);
    newer.base.struct_size = sizeof newer;
    assert_int_equal(bftkv_client_stats(c, &newer.base), 0);
    assert_int_equal(newer.base.struct_size, sizeof(struct bftkv_client_stats));
    assert_int_equal(newer.future, 0);
    assert_int_equal(newer.base.completed, 1);

    /* An older program: the first version's fields, nothing past them written. */
    struct stats_newer older;
    memset(&older, 0xee, sizeof older);
    older.base.struct_size = STATS_SIZE_0;
    assert_int_equal(bftkv_client_stats(c, &older.base), 0);
    assert_int_equal(older.base.struct_size, STATS_SIZE_0);
    assert_int_equal(older.base.submitted, 1);
    const unsigned char *raw = (const unsigned char *)&older;
    for (size_t i = STATS_SIZE_0; i < sizeof older; i++) {
        assert_int_equal(raw[i], 0xee);
    }
    bftkv_client_close(c);
}

static void test_replica_stats_refusals(void **state)
{
    (void)state;
    char err[512] = "", json[64];
    size_t len = 0;
    struct bftkv_config *cfg = NULL;
    assert_int_equal(bftkv_config_load(g_fc.conf, &cfg, err, sizeof err), 0);
    assert_int_equal(bftkv_client_replica_stats(cfg, 0, 4, 100, json, sizeof json, &len, err, sizeof err),
                     BFTKV_E_INVAL);
    assert_non_null(strstr(err, "no replica 4"));
    err[0] = '\0';
    assert_int_equal(bftkv_client_replica_stats(cfg, 6, 0, 100, json, sizeof json, &len, err, sizeof err),
                     BFTKV_E_CONFIG); /* no client 6 line */
    assert_true(err[0] != '\0');
    bftkv_config_free(cfg);
}

static int setup(void **state)
{
    (void)state;
    if (fake_create(&g_fc, 4, 1, 4, "client_lanes 64\nretransmit_ms 100\n") != 0) {
        return -1;
    }
    fake_start(&g_fc);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_destroy(&g_fc);
    return 0;
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_text),
        cmocka_unit_test(test_open_config_and_accessors),
        cmocka_unit_test(test_options_struct_size),
        cmocka_unit_test(test_stats_struct_size),
        cmocka_unit_test(test_replica_stats_refusals),
    };
    return cmocka_run_group_tests_name("client_lib_api", tests, setup, teardown);
}
