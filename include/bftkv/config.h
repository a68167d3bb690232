/* The cluster configuration file (docs/operations.md "Deploying a group on
 * several machines", docs/design.md §5.2; docs/config.md is the reference of every directive).
 *
 * One text file describes a group: its replicas with their addresses and public
 * keys, the clients allowed to talk to it (the allow-list), where the secret key
 * files live, and the tuning of the engine and the runtime. Every process of a
 * deployment — each replica, the CLI, an application through the client library —
 * reads the same file; each then loads its own secret key from key_dir
 * (cluster/cluster.h).
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
 * Ownership: bftkv_config_load/parse allocate the config; the caller frees it
 * with bftkv_config_free.
 *
 * ABI. struct bftkv_config is opaque: an application holds a pointer and reads
 * what it needs through the accessors below. Its members (fixed tables of
 * about 300 KB, every tuning field) are the library's business (cluster/cluster.h
 * in the source tree), so they can change, and tuning directives can be added,
 * without breaking a program built against an older libbftkv.so.0. Accessors
 * are only ever added. This header compiles on its own (a ctest proves it) and
 * names no type of the library's internals.
 */
#ifndef BFTKV_CONFIG_H
#define BFTKV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
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
#define BFTKV_CONFIG_PROTOCOL_THREADS_MAX 64u /* a deployment node's protocol threads */
#define BFTKV_CONFIG_SEEDS_MAX 16u            /* deployment_seeds: addresses a client asks for the map */
#define BFTKV_CONFIG_SOCKET_BUFFER_MIN 4096u
/* snapshot_log_bytes: default 16 MiB, 64 KiB .. 1 GiB. */
#define BFTKV_CONFIG_SNAPSHOT_LOG_DEFAULT (16u << 20)
#define BFTKV_CONFIG_SNAPSHOT_LOG_MIN (64u << 10)
#define BFTKV_CONFIG_SNAPSHOT_LOG_MAX (1u << 30)
#define BFTKV_CONFIG_SOCKET_BUFFER_MAX (1024u * 1024u * 1024u)
#define BFTKV_CONFIG_SOCKET_BUFFER_DEFAULT (4u * 1024u * 1024u)
#define BFTKV_CONFIG_CLIENT_TIMEOUT_MS_DEFAULT 5000u
/* client_lanes without the directive: the most (PBFT_LANES_MAX). A handle then
 * pipelines up to 64 requests, which is what makes batches (docs/benchmarks.md
 * "Defaults"); each client id costs the replicas 64 reply-cache entries. */
#define BFTKV_CONFIG_CLIENT_LANES_DEFAULT 64u

/* Who a key or identity belongs to. */
enum bftkv_config_role {
    BFTKV_CONFIG_REPLICA = 1,
    BFTKV_CONFIG_CLIENT = 2,
};

/* A parsed config (opaque: see "ABI" above). */
struct bftkv_config;

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

void bftkv_config_free(struct bftkv_config *cfg);

/* ---- Reading a config -------------------------------------------------------------- */

/* The file's name as the caller gave it to bftkv_config_load (or the name given
 * to bftkv_config_parse), for messages. Valid while cfg is. */
const char *bftkv_config_name(const struct bftkv_config *cfg);

/* The group's id (0 without a group line), its replicas n (ids 0..n-1) and the
 * faults it tolerates f (n >= 3f+1). */
uint16_t bftkv_config_group(const struct bftkv_config *cfg);
uint16_t bftkv_config_replicas(const struct bftkv_config *cfg);
uint16_t bftkv_config_faults(const struct bftkv_config *cfg);

/* Whether a client line names id (the allow-list). */
bool bftkv_config_client_allowed(const struct bftkv_config *cfg, uint16_t id);

/* Replica id's address as the file spells it: the host (a name or an address,
 * IPv6 without its brackets) into host (hostlen bytes, room for
 * BFTKV_CONFIG_HOST_MAX + 1 is always enough) and the port. 0; BFTKV_E_INVAL
 * for a bad id; BFTKV_E_RANGE when the host does not fit. */
int bftkv_config_replica_address(const struct bftkv_config *cfg, uint16_t id, char *host, size_t hostlen,
                                 uint16_t *port);

/* The tuning a client handle uses: how long an operation may take
 * (client_timeout_ms) and how many requests a client id may have in flight
 * (client_lanes). */
uint32_t bftkv_config_client_timeout_ms(const struct bftkv_config *cfg);
uint16_t bftkv_config_client_lanes(const struct bftkv_config *cfg);

/* ---- Secret keys and addresses ------------------------------------------------------ */

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

/* Create a new secret key file at path (mode 0600; an existing file is never
 * overwritten) and give its public halves as the 64 hex digits a config line
 * takes: "x25519=X ed25519=ED". 0; BFTKV_E_IO (the file exists or cannot be
 * written) or BFTKV_E_NOMEM, with a message in err. x25519_hex and ed25519_hex
 * may be NULL. */
int bftkv_config_keygen(const char *path, char x25519_hex[65], char ed25519_hex[65], char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_CONFIG_H */
