/* Fuzzing the config file parser (cluster/config.c, config_check.c, config_io.c).
 *
 * The input is a config file's text (any bytes). bftkv_config_parse() must
 * either refuse it with BFTKV_E_CONFIG (or NOMEM), a terminated message and no
 * config, or accept it; an accepted config must then
 *   - map onto the engine for every replica and every allowed client
 *     (bftkv_config_fill_replica / _fill_client succeed),
 *   - give a key path for each of them or say it does not fit (RANGE),
 *   - survive its own write-back: bftkv_config_write()'s text parses again,
 *     and writing that gives the same text (nothing lost, nothing invented).
 * Nothing is resolved or opened: parsing does no I/O. tests/fuzz/fuzz.h says
 * how it is built and run.
 */
#include <stdbool.h>
#include <string.h>

#include "bftkv/errors.h"
#include "engine/pbft.h"
#include "cluster/cluster.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "config";

/* The input is parsed as a file in a directory (a relative key_dir is resolved
 * against it), its write-back as one without (key_dir then stays as written). */
#define FUZZ_CONFIG_NAME "fuzz/cluster.conf"
#define FUZZ_CONFIG_NAME_AGAIN "cluster.conf"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* The text bftkv_config_write() gives for cfg (malloc'd, *len bytes). */
static char *config_text(const struct bftkv_config *cfg, size_t *len)
{
    char *buf = NULL;
    FILE *fp = open_memstream(&buf, len);
    FUZZ_CHECK(fp != NULL);
    FUZZ_CHECK(bftkv_config_write(cfg, fp) == 0);
    FUZZ_CHECK(fclose(fp) == 0);
    return buf;
}

static void accepted_check(const struct bftkv_config *cfg)
{
    FUZZ_CHECK(cfg->n >= 1 && cfg->n <= BFTKV_REPLICAS_MAX && cfg->n >= 3u * cfg->f + 1u);
    FUZZ_CHECK(cfg->clients >= 1 && cfg->clients <= BFTKV_CLIENTS_MAX && cfg->clients_allowed >= 1);
    char path[BFTKV_CONFIG_PATH_MAX + 64];
    for (uint16_t i = 0; i < cfg->n; i++) {
        struct pbft_replica_config rc;
        FUZZ_CHECK(bftkv_config_fill_replica(cfg, i, &rc) == 0);
        FUZZ_CHECK(rc.id == i && rc.n == cfg->n && rc.f == cfg->f && rc.clients == cfg->clients);
        FUZZ_CHECK(rc.lanes >= 1 && rc.lanes <= PBFT_LANES_MAX);
        FUZZ_CHECK(cfg->replica[i].port != 0);
        int k = bftkv_config_key_path(cfg, BFTKV_CONFIG_REPLICA, i, path, sizeof path);
        FUZZ_CHECK(k == 0 || k == BFTKV_E_RANGE);
    }
    FUZZ_CHECK(bftkv_config_fill_replica(cfg, cfg->n, &(struct pbft_replica_config){0}) == BFTKV_E_INVAL);
    uint32_t allowed = 0;
    for (uint16_t c = 0; c < cfg->clients; c++) {
        struct pbft_client_config cc;
        int rc = bftkv_config_fill_client(cfg, c, &cc);
        FUZZ_CHECK(rc == (cfg->client[c].allowed ? 0 : BFTKV_E_INVAL));
        allowed += cfg->client[c].allowed ? 1u : 0u;
    }
    FUZZ_CHECK(allowed == cfg->clients_allowed && cfg->client[cfg->clients - 1u].allowed);

    size_t len1 = 0, len2 = 0;
    char *t1 = config_text(cfg, &len1);
    struct bftkv_config *again = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    int rc = bftkv_config_parse(t1, len1, FUZZ_CONFIG_NAME_AGAIN, &again, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "fuzz_config: the write-back does not parse: %s\n", err);
    FUZZ_CHECK(rc == 0 && again != NULL);
    char *t2 = config_text(again, &len2);
    FUZZ_CHECK(len1 == len2 && memcmp(t1, t2, len1) == 0);
    free(t1);
    free(t2);
    bftkv_config_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bftkv_config *cfg = NULL;
    char err[BFTKV_CONFIG_ERR_MAX];
    memset(err, 'x', sizeof err);
    int rc = bftkv_config_parse((const char *)data, size, FUZZ_CONFIG_NAME, &cfg, err, sizeof err);
    if (rc != 0) {
        FUZZ_CHECK(rc == BFTKV_E_CONFIG || rc == BFTKV_E_NOMEM);
        FUZZ_CHECK(cfg == NULL);
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(cfg != NULL);
    accepted_check(cfg);
    bftkv_config_free(cfg);
    return 0;
}

/* ---- Seeds ------------------------------------------------------------------------------ */

static const char *const fuzz_config_seeds[] = {
    /* n = 4, every directive */
    "# a group of four\n"
    "group 7\nf 1\n"
    "replica 0 127.0.0.1:7000 x25519=0101010101010101010101010101010101010101010101010101010101010101"
    " ed25519=0202020202020202020202020202020202020202020202020202020202020202\n"
    "replica 1 localhost:7001 x25519=0303030303030303030303030303030303030303030303030303030303030303"
    " ed25519=0404040404040404040404040404040404040404040404040404040404040404\n"
    "replica 2 [::1]:7002 x25519=0505050505050505050505050505050505050505050505050505050505050505"
    " ed25519=0606060606060606060606060606060606060606060606060606060606060606\n"
    "replica 3 10.0.0.4:7003 x25519=0707070707070707070707070707070707070707070707070707070707070707"
    " ed25519=0808080808080808080808080808080808080808080808080808080808080808\n"
    "client 0 x25519=0909090909090909090909090909090909090909090909090909090909090909"
    " ed25519=0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a\n"
    "client 5 x25519=0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b"
    " ed25519=0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c\n"
    "key_dir keys\n"
    "batch_max_requests 256\nbatch_max_bytes 32768\nwindow 8\ncheckpoint_interval 64\nlog_window 128\n"
    "request_timeout_ms 50\nretransmit_ms 100\nclient_lanes 16\nreadonly_fast_path on\n"
    "client_timeout_ms 5000\nthreads staged auth_workers=2\nsocket_rcvbuf 4194304\nsocket_sndbuf 4194304\n"
    "store_shards 256\ntest_modes off\nlog_level info\n",
    /* n = 1, the least a config needs */
    "f 0\n"
    "replica 0 127.0.0.1:9000 x25519=1111111111111111111111111111111111111111111111111111111111111111"
    " ed25519=2222222222222222222222222222222222222222222222222222222222222222\n"
    "client 0 x25519=3333333333333333333333333333333333333333333333333333333333333333"
    " ed25519=4444444444444444444444444444444444444444444444444444444444444444\r\n"
    "threads single\n",
};

void fuzz_seeds(fuzz_seed_add_fn add)
{
    for (size_t i = 0; i < sizeof fuzz_config_seeds / sizeof fuzz_config_seeds[0]; i++)
        add((const uint8_t *)fuzz_config_seeds[i], strlen(fuzz_config_seeds[i]));
}
