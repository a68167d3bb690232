/* The cluster configuration file (docs/operations.md "Deploying a group on
 * several machines", docs/design.md §5.2; docs/config.md is the reference of every directive).
 *
 * One text file describes a group: its replicas with their addresses and public
 * keys, the clients allowed to talk to it (the allow-list), where the secret key
 * files live, and the tuning of the engine and the runtime. Every process of a
 * deployment — each replica, the CLI, an application through the client library —
 * reads the same file; each then loads its own secret key from key_dir
 * (net/keys.h).
 *
 * Grammar (one directive per line):
 *
 *     line      = [ directive ] [ "#" comment ]
 *     directive = word { blank word }          words separated by spaces or tabs
 *
 *     group ID                                  optional; opens the group's block
 *     f F                                       faults tolerated; n >= 3f+1
 *     replica ID HOST:PORT x25519=HEX ed25519=HEX
 *     client ID x25519=HEX ed25519=HEX
 *     key_dir PATH                              relative to the file's directory
 *     data_dir PATH                             likewise; replicas only
 *     NAME VALUE                                tuning (see docs/config.md)
 *
 * n is the number of replica lines; replica ids are 0..n-1, each exactly once.
 * Client ids are 0..BFTKV_CLIENTS_MAX-1 and may have gaps: the tables of a replica
 * are sized by the highest id + 1 (the `clients` field), and an id without a line
 * is refused like any stranger. HEX is 64 hex digits (32 bytes). Every directive
 * but replica and client appears at most once; unknown directives are errors.
 *
 * Room for scale-out (partitions, each its own group): `group ID` opens a block and the group's f and
 * replica lines follow it; a file without a group line has one group, id 0.
 * This version accepts one group per file; a later one will accept several
 * blocks, each with its own f and replicas, while clients, key_dir and tuning stay
 * file-wide.
 *
 * Errors: the parser stops at the first error and returns BFTKV_E_CONFIG with one
 * line of text in the caller's buffer, "NAME:LINE: message" (or "NAME: message"
 * for what no single line is to blame for, like a missing replica). Nothing is
 * printed. Every number is range-checked against include/bftkv/limits.h.
 *
 * Ownership: bftkv_config_load/parse/new allocate the config; the caller frees it
 * with bftkv_config_free. The struct is plain data: read its fields directly.
 */
#ifndef BFTKV_CONFIG_H
#define BFTKV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "bftkv/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Limits of the file ---------------------------------------------------- */

#define BFTKV_CONFIG_FILE_MAX (4u * 1024u * 1024u) /* bytes; 4,160 principals take ~0.7 MB */
#define BFTKV_CONFIG_LINE_MAX 4096u                /* bytes per line, without the newline */
#define BFTKV_CONFIG_HOST_MAX 253u                 /* a DNS name's longest text form */
#define BFTKV_CONFIG_PATH_MAX 4095u                /* key_dir and file names (PATH_MAX - 1) */
#define BFTKV_CONFIG_ERR_MAX 512u                  /* an error buffer of this size never truncates a
                                                      message about a reasonably short file name */

/* Tuning ranges that limits.h does not already hold. */
#define BFTKV_CONFIG_TIMEOUT_MS_MAX 3600000u          /* one hour */
#define BFTKV_CONFIG_AUTH_WORKERS_MAX 64u
#define BFTKV_CONFIG_SOCKET_BUFFER_MIN 4096u
#define BFTKV_CONFIG_SOCKET_BUFFER_MAX (1024u * 1024u * 1024u)
#define BFTKV_CONFIG_SOCKET_BUFFER_DEFAULT (4u * 1024u * 1024u)
#define BFTKV_CONFIG_CLIENT_TIMEOUT_MS_DEFAULT 5000u
/* client_lanes without the directive: the most (PBFT_LANES_MAX). A handle then
 * pipelines up to 64 requests, which is what makes batches (docs/benchmarks.md
 * "Defaults"); each client id costs the replicas 64 reply-cache entries. */
#define BFTKV_CONFIG_CLIENT_LANES_DEFAULT 64u

/* The thread layout of a replica (docs/design.md §6); the runtime interprets it. */
enum bftkv_config_threads {
    BFTKV_CONFIG_THREADS_SINGLE = 0, /* every stage on one thread */
    BFTKV_CONFIG_THREADS_STAGED = 1, /* a thread per stage, auth_workers authenticators */
};

enum bftkv_config_log_level {
    BFTKV_CONFIG_LOG_ERROR = 0,
    BFTKV_CONFIG_LOG_WARN = 1,
    BFTKV_CONFIG_LOG_INFO = 2,
    BFTKV_CONFIG_LOG_DEBUG = 3,
};

/* Who a key or identity belongs to. */
enum bftkv_config_role {
    BFTKV_CONFIG_REPLICA = 1,
    BFTKV_CONFIG_CLIENT = 2,
};

struct bftkv_config_replica {
    char host[BFTKV_CONFIG_HOST_MAX + 1]; /* name or address; IPv6 without its brackets */
    uint16_t port;                        /* 1..65535 */
    uint8_t x25519[32];                   /* public keys (engine/auth.h auth_public) */
    uint8_t ed25519[32];
    uint32_t line;                        /* where it was defined; 0 if built in code */
};

struct bftkv_config_client {
    bool allowed; /* false: no client line has this id */
    uint8_t x25519[32];
    uint8_t ed25519[32];
    uint32_t line;
};

struct bftkv_config {
    char name[BFTKV_CONFIG_PATH_MAX + 1]; /* the file as the caller named it, for messages */

    /* The group. */
    uint16_t group;
    uint16_t n; /* replicas: replica[0..n-1] */
    uint16_t f;
    struct bftkv_config_replica replica[BFTKV_REPLICAS_MAX];

    /* The allow-list: client[0..clients-1], allowed where a line named the id. */
    uint16_t clients;         /* highest client id + 1 */
    uint16_t clients_allowed; /* number of client lines */
    struct bftkv_config_client client[BFTKV_CLIENTS_MAX];

    /* Secret keys: key_dir/replica-<id>.key and key_dir/client-<id>.key. After
     * bftkv_config_load the path is absolute. */
    char key_dir[BFTKV_CONFIG_PATH_MAX + 1];
    /* Where a replica keeps what outlives its process: data_dir/replica-<id>/
     * (its group marker, docs/operations.md "Restarts"). Empty when the file
     * has no data_dir line (clients need none); absolute after loading. */
    char data_dir[BFTKV_CONFIG_PATH_MAX + 1];

    /* Engine tuning (engine/pbft.h; defaults from pbft_*_config_defaults). */
    uint32_t batch_max_requests;
    uint32_t batch_max_bytes;
    uint32_t window;
    uint32_t checkpoint_interval;
    uint32_t log_window;
    uint32_t request_timeout_ms; /* view-change timer */
    uint32_t retransmit_ms;      /* a client's first retransmission */
    uint16_t client_lanes;       /* requests in flight per client */
    bool readonly_fast_path;

    /* Runtime and client library tuning. */
    uint32_t client_timeout_ms; /* an operation fails with BFTKV_E_TIMEOUT after this */
    enum bftkv_config_threads threads;
    uint16_t auth_workers;   /* staged layout: authentication threads (1 for single) */
    uint32_t socket_rcvbuf;  /* SO_RCVBUF bytes */
    uint32_t socket_sndbuf;  /* SO_SNDBUF bytes */
    uint32_t store_shards;   /* power of two */
    bool test_modes;         /* the server accepts --byzantine */
    enum bftkv_config_log_level log_level;
};

/* Read and parse the file at path. Relative key_dir paths are resolved against
 * the file's directory and made absolute. 0; BFTKV_E_IO (the file cannot be
 * read), BFTKV_E_CONFIG (bad contents) or BFTKV_E_NOMEM, with a message in err
 * (errlen bytes, always terminated when errlen > 0; err may be NULL); *out is
 * NULL after a failure. */
int bftkv_config_load(const char *path, struct bftkv_config **out, char *err, size_t errlen);

/* Parse len bytes of text (need not be terminated); name is used in messages, and
 * a relative key_dir is resolved textually against name's directory part. Same
 * errors as bftkv_config_load, IO aside. */
int bftkv_config_parse(const char *text, size_t len, const char *name, struct bftkv_config **out, char *err,
                       size_t errlen);

/* An empty group (no replica, no client) with every tuning field at its default,
 * for tools that build a config in code and write it. NULL when out of memory. */
struct bftkv_config *bftkv_config_new(void);

void bftkv_config_free(struct bftkv_config *cfg);

/* Write cfg as a config file that bftkv_config_parse reads back to the same
 * values: every directive, defaults included. 0 or BFTKV_E_IO. Does not validate:
 * parse the result to check a config built in code. */
int bftkv_config_write(const struct bftkv_config *cfg, FILE *fp);

/* ---- Mapping onto the engine and the network ------------------------------- */

struct pbft_replica_config;
struct pbft_client_config;

/* Fill the engine's configuration of replica id / client id from cfg (every field;
 * the client's timestamp_base is set to 0 for the caller to change).
 * BFTKV_E_INVAL: id is not a replica of the group / not an allowed client. */
int bftkv_config_fill_replica(const struct bftkv_config *cfg, uint16_t id, struct pbft_replica_config *out);
int bftkv_config_fill_client(const struct bftkv_config *cfg, uint16_t id, struct pbft_client_config *out);

/* The path of a secret key file: key_dir/replica-<id>.key or key_dir/client-<id>.key.
 * 0, or BFTKV_E_RANGE when it does not fit buf. */
int bftkv_config_key_path(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id, char *buf,
                          size_t buflen);

/* Resolve replica id's address (getaddrinfo: may query DNS for a host name, so
 * call it at start-up, not on the fast path). The first UDP address found wins.
 * 0; BFTKV_E_INVAL for a bad id; BFTKV_E_CONFIG when the name does not resolve,
 * with a message in err. */
int bftkv_config_replica_sockaddr(const struct bftkv_config *cfg, uint16_t id, struct sockaddr_storage *addr,
                                  socklen_t *addrlen, char *err, size_t errlen);

/* Names of the enumerations as the file spells them ("staged", "debug"). */
const char *bftkv_config_threads_name(enum bftkv_config_threads t);
const char *bftkv_config_log_level_name(enum bftkv_config_log_level l);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_CONFIG_H */
