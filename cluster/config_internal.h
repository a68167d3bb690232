/* Inside the config module: what its files share (not installed, not for callers).
 *
 *   cluster/config.c        the grammar: lines, words, directives, values
 *   cluster/config_check.c  what needs the whole file: every replica present, f
 *                       against n, distinct addresses and keys, window sizes
 *   cluster/config_io.c     reading a file, writing one, mapping a config onto the
 *                       engine's configurations and socket addresses
 *   cluster/config_metrics.c the metrics_listen directive and its accessor
 *   cluster/keys.c          secret key files (uses the hex and message helpers)
 */
#ifndef BFTKV_CLUSTER_CONFIG_INTERNAL_H
#define BFTKV_CLUSTER_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

/* The directives, by their index in cluster/config.c's table. */
enum config_directive {
    D_GROUP, D_F, D_REPLICA, D_CLIENT, D_KEY_DIR, D_BATCH_MAX_REQUESTS, D_BATCH_MAX_BYTES, D_WINDOW,
    D_CHECKPOINT_INTERVAL, D_LOG_WINDOW, D_REQUEST_TIMEOUT_MS, D_RETRANSMIT_MS, D_CLIENT_LANES,
    D_READONLY_FAST_PATH, D_CLIENT_TIMEOUT_MS, D_THREADS, D_SOCKET_RCVBUF, D_SOCKET_SNDBUF, D_STORE_SHARDS,
    D_TEST_MODES, D_LOG_LEVEL, D_DATA_DIR, D_DURABILITY, D_DEPLOYMENT_MAP, D_ADMIN_PUB, D_PROTOCOL_THREADS,
    D_METRICS_LISTEN, D_ADMIN_CLIENT, D_DEPLOYMENT_SEEDS, D_MAP_CACHE, D_SNAPSHOT_LOG_BYTES, D_COUNT
};

/* One parse in progress. */
struct config_parser {
    struct bftkv_config *cfg;
    const char *name;     /* the file as the caller named it */
    const char *base_dir; /* for a relative key_dir; "" for none */
    uint32_t line;        /* the line being read, from 1 */
    char *err;
    size_t errlen;
    uint32_t seen[D_COUNT]; /* the line of each directive met so far, 0 if none */
    uint32_t block_line;    /* the first f or replica line (a group line must precede it) */
};

/* Write "NAME:LINE: message" (or "NAME: message" for line 0) to p's error buffer
 * and return BFTKV_E_CONFIG. */
__attribute__((format(printf, 3, 4))) int config_fail(struct config_parser *p, uint32_t line, const char *fmt,
                                                      ...);

/* 32 bytes <-> 64 hex digits (decoding takes either case; false unless len is
 * 64 and every character a hex digit). */
void config_hex_encode(char out[65], const uint8_t in[32]);
bool config_hex_decode(const char *s, size_t len, uint8_t out[32]);

/* HOST:PORT or [IPV6]:PORT as a replica line spells it, into host_out (without
 * brackets) and *port_out (1..65535). 0, or BFTKV_E_CONFIG with p's message. */
int config_address_parse(struct config_parser *p, const char *s, char host_out[BFTKV_CONFIG_HOST_MAX + 1],
                         uint16_t *port_out);

/* metrics_listen [ID] HOST:PORT (cluster/config_metrics.c); tok[0] is the
 * directive. Its whole-file check (an ID names a replica of the group) is
 * config_metrics_check, from config_check. */
int config_metrics_listen(struct config_parser *p, char **tok, unsigned ntok);
int config_metrics_check(struct config_parser *p);

/* A host as a replica line spells it, without the port: an IPv4 address, an
 * IPv6 address (without brackets) or a host name (letters, digits, '.', '-',
 * '_'; not starting with '.' or '-'), 1..BFTKV_CONFIG_HOST_MAX bytes. */
bool config_host_valid(const char *host);

/* Read fd (path, for the message) into buf until end of file or cap bytes;
 * *len is what was read (cap: the file may be longer). 0, or BFTKV_E_IO with a
 * message in err. Retries when a signal interrupts a read. */
int config_fd_read(int fd, char *buf, size_t cap, size_t *len, const char *path, char *err, size_t errlen);

/* The engine's tuning a config file sets (batch sizes, window, checkpoint
 * interval, log window, request timeout), from r into cfg: the defaults. */
void config_tuning_from_engine(struct bftkv_config *cfg, const struct pbft_replica_config *r);

/* "replica" or "client". */
const char *config_role_name(enum bftkv_config_role role);

/* The whole-file checks (cluster/config_check.c), after the last line was read; also
 * fills the defaults that depend on other directives (log_window). */
int config_check(struct config_parser *p);

/* Parse text under name; a relative key_dir is joined to base_dir. */
int config_parse_text(const char *text, size_t len, const char *name, const char *base_dir,
                      struct bftkv_config **out, char *err, size_t errlen);

#endif /* BFTKV_CLUSTER_CONFIG_INTERNAL_H */
