/* The metrics_listen directive (cluster/config_metrics.c, docs/config.md): the
 * file-wide and per-replica forms, their errors, and the round trip through
 * bftkv_config_write. The group is built in code (keys are distinct byte
 * patterns: the parser checks distinctness, not that they are points). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"

#define NAME "metrics.conf"

/* A group of four and two clients, written as a config text, then extra. */
static char *group_text(const char *extra)
{
    struct bftkv_config *cfg = bftkv_config_new();
    assert_non_null(cfg);
    cfg->n = 4;
    cfg->f = 1;
    for (unsigned i = 0; i < 4; i++) {
        snprintf(cfg->replica[i].host, sizeof cfg->replica[i].host, "127.0.0.1");
        cfg->replica[i].port = (uint16_t)(7000 + i);
        memset(cfg->replica[i].x25519, (int)(1 + i), 32);
        memset(cfg->replica[i].ed25519, (int)(11 + i), 32);
    }
    cfg->clients = 2;
    cfg->clients_allowed = 2;
    for (unsigned c = 0; c < 2; c++) {
        cfg->client[c].allowed = true;
        memset(cfg->client[c].x25519, (int)(21 + c), 32);
        memset(cfg->client[c].ed25519, (int)(31 + c), 32);
    }
    snprintf(cfg->key_dir, sizeof cfg->key_dir, "keys");
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    assert_int_equal(bftkv_config_write(cfg, fp), 0);
    fputs(extra, fp);
    fclose(fp);
    bftkv_config_free(cfg);
    return buf;
}

static struct bftkv_config *parse_ok(const char *extra)
{
    char *text = group_text(extra);
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = bftkv_config_parse(text, strlen(text), NAME, &cfg, err, sizeof err);
    free(text);
    if (rc != 0)
        print_error("unexpected error: %s\n", err);
    assert_int_equal(rc, 0);
    return cfg;
}

static void expect_error(const char *extra, const char *substring)
{
    char *text = group_text(extra);
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = bftkv_config_parse(text, strlen(text), NAME, &cfg, err, sizeof err);
    free(text);
    if (rc != BFTKV_E_CONFIG || strstr(err, substring) == NULL)
        print_error("rc %d, message \"%s\", expected \"%s\"\n", rc, err, substring);
    assert_int_equal(rc, BFTKV_E_CONFIG);
    assert_non_null(strstr(err, substring));
    assert_null(cfg);
}

static void expect_address(const struct bftkv_config *cfg, uint16_t id, const char *host, uint16_t port)
{
    const char *h = NULL;
    uint16_t p = 0;
    assert_true(bftkv_config_metrics_address(cfg, id, &h, &p));
    assert_string_equal(h, host);
    assert_int_equal(p, port);
}

static void test_off_by_default(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok("");
    const char *h = NULL;
    uint16_t p = 0;
    for (uint16_t id = 0; id < 4; id++)
        assert_false(bftkv_config_metrics_address(cfg, id, &h, &p));
    assert_false(bftkv_config_metrics_address(cfg, 4, &h, &p)); /* not in the group */
    bftkv_config_free(cfg);
}

static void test_forms(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok("metrics_listen 127.0.0.1:9100\n");
    for (uint16_t id = 0; id < 4; id++)
        expect_address(cfg, id, "127.0.0.1", 9100);
    bftkv_config_free(cfg);

    /* Per replica, overriding the file-wide line in either order. */
    cfg = parse_ok("metrics_listen 2 [::1]:9200\nmetrics_listen 0.0.0.0:9100\nmetrics_listen 3 localhost:9203\n");
    expect_address(cfg, 0, "0.0.0.0", 9100);
    expect_address(cfg, 1, "0.0.0.0", 9100);
    expect_address(cfg, 2, "::1", 9200);
    expect_address(cfg, 3, "localhost", 9203);
    bftkv_config_free(cfg);

    /* Only some replicas: the others serve none. */
    cfg = parse_ok("metrics_listen 1 127.0.0.1:9101\n");
    const char *h = NULL;
    uint16_t p = 0;
    assert_false(bftkv_config_metrics_address(cfg, 0, &h, &p));
    expect_address(cfg, 1, "127.0.0.1", 9101);
    bftkv_config_free(cfg);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("metrics_listen\n", "expected: metrics_listen HOST:PORT, or metrics_listen REPLICA_ID HOST:PORT");
    expect_error("metrics_listen 1 2 3\n", "expected: metrics_listen HOST:PORT");
    expect_error("metrics_listen 127.0.0.1\n", "bad address '127.0.0.1' (expected HOST:PORT)");
    expect_error("metrics_listen 127.0.0.1:0\n", "bad port '0' (expected 1..65535)");
    expect_error("metrics_listen 127.0.0.1:1\nmetrics_listen 127.0.0.1:2\n",
                 "'metrics_listen HOST:PORT' given twice");
    expect_error("metrics_listen 1 127.0.0.1:1\nmetrics_listen 1 127.0.0.1:2\n",
                 "metrics_listen for replica 1 given twice");
    expect_error("metrics_listen x 127.0.0.1:1\n", "bad replica id 'x' in metrics_listen (expected 0..63)");
    expect_error("metrics_listen 64 127.0.0.1:1\n", "bad replica id '64' in metrics_listen (expected 0..63)");
    expect_error("metrics_listen 4 127.0.0.1:1\n", "metrics_listen for replica 4, which is not in the group (n = 4)");
}

static void test_round_trip(void **state)
{
    (void)state;
    struct bftkv_config *cfg = parse_ok("metrics_listen [::1]:9100\nmetrics_listen 3 127.0.0.1:9203\n");
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    assert_non_null(fp);
    assert_int_equal(bftkv_config_write(cfg, fp), 0);
    fclose(fp);
    struct bftkv_config *back = NULL;
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    int rc = bftkv_config_parse(buf, len, NAME, &back, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    free(buf);
    for (uint16_t id = 0; id < 4; id++) {
        const char *h1, *h2;
        uint16_t p1, p2;
        assert_true(bftkv_config_metrics_address(cfg, id, &h1, &p1));
        assert_true(bftkv_config_metrics_address(back, id, &h2, &p2));
        assert_string_equal(h1, h2);
        assert_int_equal(p1, p2);
    }
    expect_address(back, 0, "::1", 9100);
    expect_address(back, 3, "127.0.0.1", 9203);
    bftkv_config_free(back);
    bftkv_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
