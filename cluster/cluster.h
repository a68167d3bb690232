/* cluster/: who is in the deployment, as the code of this tree reads it: the
 * server, the client library, the tools and the tests. One header for the room
 * (never installed; libbftkv.so exports none of its functions, client/libbftkv.map).
 *
 * The config (cluster/config*.c). include/bftkv/config.h, the public header,
 * declares struct bftkv_config without its members, so that applications hold a
 * pointer and read it through accessors: the fixed tables below (about 300 KB)
 * can then change size, and fields can come and go, without breaking an
 * application built against an older libbftkv.so.0. This header completes the
 * type for the code built with the library.
 *
 * Key files and a principal's identity (cluster/keys.c; docs/design.md §5.2). A
 * principal (replica or client) is one 32-byte secret seed: engine/auth.c derives
 * its X25519 and Ed25519 key pairs from it, and the config file carries the
 * public halves. The seed lives in its own file, key_dir/replica-<id>.key or
 * key_dir/client-<id>.key (include/bftkv/config.h):
 *
 *     # comment lines and blank lines are allowed anywhere
 *     <64 hex digits>
 *
 * Like ssh with its private keys, loading refuses a file that is not a regular
 * file, that group or others may read or write (mode & 077), or that belongs to
 * another user (root aside). Generating writes mode 0600 and never overwrites.
 * Every key function writes a one-line message into err (errlen bytes; err may be
 * NULL) when it fails and prints nothing. The caller must have called
 * sodium_init() (the key pairs come from libsodium).
 */
#ifndef BFTKV_CLUSTER_H
#define BFTKV_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bftkv/config.h"
#include "bftkv/limits.h"
#include "engine/auth.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The thread layout of a replica (docs/design.md §6); the runtime interprets it. */
enum bftkv_config_threads {
    BFTKV_CONFIG_THREADS_SINGLE = 0, /* every stage on one thread */
    BFTKV_CONFIG_THREADS_STAGED = 1, /* a thread per stage, auth_workers authenticators */
};

/* What a replica makes durable before the messages that depend on it (docs/
 * design.md §5.6.2): nothing (its state lives in memory only), its write-ahead
 * log written to the kernel (async: lost only when the machine loses power), or
 * written and synced (sync: survives a power cut of the whole group). */
enum bftkv_config_durability {
    BFTKV_CONFIG_DURABILITY_NONE = 0,
    BFTKV_CONFIG_DURABILITY_ASYNC = 1,
    BFTKV_CONFIG_DURABILITY_SYNC = 2,
};

enum bftkv_config_log_level {
    BFTKV_CONFIG_LOG_ERROR = 0,
    BFTKV_CONFIG_LOG_WARN = 1,
    BFTKV_CONFIG_LOG_INFO = 2,
    BFTKV_CONFIG_LOG_DEBUG = 3,
};

struct bftkv_config_replica {
    char host[BFTKV_CONFIG_HOST_MAX + 1]; /* name or address; IPv6 without its brackets */
    uint16_t port;                        /* 1..65535 */
    uint8_t x25519[32];                   /* public keys (engine/auth.h auth_public) */
    uint8_t ed25519[32];
    uint32_t line;                        /* where it was defined; 0 if built in code */
    /* Its metrics endpoint from a `metrics_listen ID HOST:PORT` line (port 0:
     * none; then the file-wide one applies, bftkv_config_metrics_address). */
    char metrics_host[BFTKV_CONFIG_HOST_MAX + 1];
    uint16_t metrics_port;
    uint32_t metrics_line;
};

struct bftkv_config_client {
    bool allowed; /* false: no client line has this id */
    uint8_t x25519[32];
    uint8_t ed25519[32];
    uint32_t line;
    uint32_t admin_line; /* its `admin_client ID` line, 0 if none: it may change a
                            replica's settings at run time (the log level) */
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
    /* The replica's write-ahead log lives in data_dir/replica-<id>/wal/. Default:
     * sync when the file names a data_dir, none otherwise; async and sync need a
     * data_dir. */
    enum bftkv_config_durability durability;

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
    uint32_t snapshot_log_bytes; /* durable: a snapshot file once the log grew by this much (or by
                                    the last snapshot's size if larger) since the last one */
    uint32_t socket_sndbuf;  /* SO_SNDBUF bytes */
    uint32_t store_shards;   /* power of two */
    bool test_modes;         /* the server accepts --byzantine */
    enum bftkv_config_log_level log_level;

    /* A partitioned deployment (docs/config.md "A deployment"; docs/design.md
     * §6.3): the signed map's file (absolute after loading; empty: the file is
     * the single group above) and the admin's Ed25519 public key that must have
     * signed it, given as 64 hex digits or as the path of an admin.pub file.
     * With a map the file has no group, f, replica or client line: the map
     * holds them, and cluster/deployment.c derives each partition's group. */
    char deployment_map[BFTKV_CONFIG_PATH_MAX + 1];
    char admin_pub_path[BFTKV_CONFIG_PATH_MAX + 1]; /* empty when given in hex */
    uint8_t admin_pub[32];
    bool admin_pub_set; /* admin_pub holds the key (hex given, or the file was read) */
    /* A node's protocol threads K (docs/design.md §6.3): partition p runs on
     * thread p mod K of each node, whose socket listens on the node's port
     * + (p mod K) * M. The same in every process of the deployment. */
    uint16_t protocol_threads;
    /* `metrics_listen HOST:PORT` without an id: every replica's metrics endpoint
     * (port 0: none). Off by default. */
    char metrics_host[BFTKV_CONFIG_HOST_MAX + 1];
    uint16_t metrics_port;
    uint32_t metrics_line;
    /* A discovering client's file (docs/config.md "A client that discovers"):
     * seed nodes' addresses (keys zero) to ask for the map instead of a map
     * file, and where the client keeps the last map it accepted (empty: none). */
    struct bftkv_config_replica seed[BFTKV_CONFIG_SEEDS_MAX];
    uint16_t seeds;
    char map_cache[BFTKV_CONFIG_PATH_MAX + 1];
    /* A partition's group of a deployment (cluster_deployment_group): the map's
     * epoch, which its replicas' REPLYs carry (docs/design.md §6.3). 0 for a
     * single group, whose REPLYs carry none. Never read from a file. */
    uint64_t map_epoch;
};

/* An empty group (no replica, no client) with every tuning field at its default,
 * for tools that build a config in code and write it. NULL when out of memory;
 * bftkv_config_free releases it. */
struct bftkv_config *bftkv_config_new(void);

/* Write cfg as a config file that bftkv_config_parse reads back to the same
 * values: every directive, defaults included. 0 or BFTKV_E_IO. Does not validate:
 * parse the result to check a config built in code. */
int bftkv_config_write(const struct bftkv_config *cfg, FILE *fp);

/* ---- Mapping onto the engine ---------------------------------------------------- */

struct pbft_replica_config;
struct pbft_client_config;

/* Fill the engine's configuration of replica id / client id from cfg (every field;
 * the client's timestamp_base is set to 0 for the caller to change).
 * BFTKV_E_INVAL: id is not a replica of the group / not an allowed client. */
int bftkv_config_fill_replica(const struct bftkv_config *cfg, uint16_t id, struct pbft_replica_config *out);
int bftkv_config_fill_client(const struct bftkv_config *cfg, uint16_t id, struct pbft_client_config *out);

/* Where replica id serves its metrics (docs/config.md `metrics_listen`): its
 * own line's address, else the file-wide one. false when it serves none. */
bool bftkv_config_metrics_address(const struct bftkv_config *cfg, uint16_t id, const char **host, uint16_t *port);

/* Names of the enumerations as the file spells them ("staged", "debug"). */
const char *bftkv_config_threads_name(enum bftkv_config_threads t);
const char *bftkv_config_log_level_name(enum bftkv_config_log_level l);
const char *bftkv_config_durability_name(enum bftkv_config_durability d);


/* ---- Key files (cluster/keys.c) ------------------------------------------------ */

#define BFTKV_KEY_SEED_SIZE 32u
#define BFTKV_KEY_FILE_MAX 4096u /* bytes: the seed line and a few comments */

/* Read the seed from a key file. 0; BFTKV_E_IO when the file cannot be opened or
 * read; BFTKV_E_CONFIG when its type, mode, owner or contents are wrong. seed is
 * written only on success. */
int bftkv_key_load(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err, size_t errlen);

/* Parse the text of a key file (len bytes, need not be terminated; at most
 * BFTKV_KEY_FILE_MAX): the rules of bftkv_key_load() on contents, without the
 * file's checks. name is used in messages. 0, BFTKV_E_CONFIG (bad contents) or
 * BFTKV_E_INVAL (NULL arguments); seed is written only on success. */
int bftkv_key_parse(const char *text, size_t len, const char *name, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err,
                    size_t errlen);

/* Draw a seed from the kernel (getrandom) and write it to a new file at path, mode
 * 0600 (O_EXCL: an existing file is never overwritten, even by a symlink). The
 * file's comments name the public keys. 0, or BFTKV_E_IO with nothing left behind. */
int bftkv_key_generate(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err, size_t errlen);

/* The public keys of a seed as the config file spells them (64 lower-case hex
 * digits and a terminator each). */
void bftkv_key_public(const uint8_t seed[BFTKV_KEY_SEED_SIZE], char x25519_hex[65], char ed25519_hex[65]);

/* Load the secret key of replica or client id from cfg's key_dir and derive its
 * key pairs into kp, after checking that their public halves are the ones cfg
 * lists for that id. 0; BFTKV_E_CONFIG (id not in the group or the allow-list,
 * keys that do not match, a bad file), BFTKV_E_IO. */
int bftkv_key_identity_load(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                            struct auth_keypair *kp, char *err, size_t errlen);

/* Initialise the authentication state of replica or client id (engine/auth.h)
 * from cfg's public keys and the principal's own key pairs (from
 * bftkv_key_identity_load). A replica gets every allowed client's key; ids
 * without a client line stay unknown. 0; BFTKV_E_CONFIG (a peer's X25519 key is a
 * low-order point: no secret can be shared with it; the message names the line),
 * BFTKV_E_NOMEM. The caller destroys it with auth_destroy. */
int bftkv_key_auth_init(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                        const struct auth_keypair *kp, struct auth_ctx *a, char *err, size_t errlen);

/* ---- Placement (cluster/placement.c; docs/design.md §6) ----------------------------
 * A key's partition: a fixed public hash of the key mod partitions (a power of
 * two). A partition's replica set: rf distinct nodes out of the m in nodes[]
 * (distinct ids), written as indexes into nodes[] at out[p * rf ..], best first,
 * for every p < partitions. Rendezvous hashing, or a ring of vnodes points per
 * node. 0, BFTKV_E_INVAL (rf > m, partitions not a power of two, repeated ids)
 * or BFTKV_E_NOMEM (the ring's points). */
uint32_t cluster_key_partition(const void *key, size_t len, uint32_t partitions);
int cluster_placement_rendezvous(const uint32_t *nodes, uint16_t m, uint32_t partitions, uint16_t rf, uint16_t *out);
int cluster_placement_ring(const uint32_t *nodes, uint16_t m, uint32_t partitions, uint16_t rf, uint32_t vnodes,
                           uint16_t *out);

/* ---- The deployment map (cluster/deploymap.c, deploymap_json.c; docs/design.md §6.2) --
 * Who is in a partitioned deployment, signed by its admin key: an epoch, f, the
 * replication factor R (>= 3f+1), P partitions (a power of two), the nodes (id,
 * address, X25519 and Ed25519 public keys; ids increasing), the client
 * allow-list (the config's client entries, by id), and how partitions are placed
 * (the algorithm and its parameter; the table itself is derived with
 * cluster/placement.c, so a client holding the map computes what every node
 * does). Its encoding is canonical (one byte string per map: docs/design.md
 * §6.2 has the layout) and the signed form is the encoding followed by a
 * 64-byte Ed25519 signature of it by the admin key.
 *
 * A map is allocated by build, decode, open, accept and from_config, owned by the
 * caller and released with cluster_map_free; it never changes after. Every
 * function writes a one-line message into err on failure and prints nothing. */

enum cluster_map_placement {
    CLUSTER_PLACEMENT_RENDEZVOUS = 1, /* cluster_placement_rendezvous; parameter 0 */
    CLUSTER_PLACEMENT_RING = 2,       /* cluster_placement_ring; parameter: points per node */
};

#define CLUSTER_MAP_VERSION 1u
#define CLUSTER_MAP_SIG_SIZE 64u      /* crypto_sign_BYTES */
#define CLUSTER_MAP_RING_VNODES_MAX 4096u
/* Bytes of an encoding at the limits: the header, each node's id, port, host
 * length, host and keys, each client's id and keys. */
#define CLUSTER_MAP_HEADER_SIZE 38u
#define CLUSTER_MAP_NODE_SIZE_MAX (4u + 2u + 1u + BFTKV_CONFIG_HOST_MAX + 64u)
#define CLUSTER_MAP_CLIENT_SIZE (2u + 64u)
#define CLUSTER_MAP_SIZE_MAX                                                                       \
    (CLUSTER_MAP_HEADER_SIZE + BFTKV_NODES_MAX * CLUSTER_MAP_NODE_SIZE_MAX +                     \
     BFTKV_CLIENTS_MAX * CLUSTER_MAP_CLIENT_SIZE)
#define CLUSTER_MAP_SIGNED_SIZE_MAX (CLUSTER_MAP_SIZE_MAX + CLUSTER_MAP_SIG_SIZE)

struct cluster_map_params {
    uint64_t epoch;
    uint16_t f;
    uint16_t rf;         /* R: replicas per partition */
    uint32_t partitions; /* P */
    enum cluster_map_placement placement;
    uint32_t vnodes;     /* ring: points per node (1..CLUSTER_MAP_RING_VNODES_MAX); rendezvous: 0 */
};

struct cluster_map {
    struct cluster_map_params params;
    uint16_t m;                           /* nodes */
    uint32_t *node_id;                    /* [m], strictly increasing */
    struct bftkv_config_replica *node;    /* [m]: address and public keys (line 0) */
    uint16_t clients;                     /* highest client id + 1 */
    uint16_t clients_allowed;             /* clients the map lists */
    struct bftkv_config_client *client;   /* [clients], allowed where listed (line 0) */
    uint16_t *replicas;                   /* [partitions * rf]: partition p's set at p * rf,
                                             indexes into node[], best first */
    uint8_t *body;                        /* the canonical encoding the map was read from */
    size_t body_len;
    uint8_t sig[64];                      /* the admin's signature of body (open and accept) */
    bool has_sig;                         /* false: built or decoded, never verified */
};

/* What cluster_map_accept decided. */
enum cluster_map_verdict {
    CLUSTER_MAP_NEWER,    /* a later epoch (or no current map): take it */
    CLUSTER_MAP_SAME,     /* the current map itself, byte for byte */
    CLUSTER_MAP_BAD,      /* no valid signature, or does not decode */
    CLUSTER_MAP_STALE,    /* signed, but an older epoch than the current map's */
    CLUSTER_MAP_CONFLICT, /* signed, same epoch, different bytes: the admin key signed two
                             maps for one epoch (compromised or misused): report it */
};

/* A map of m nodes (node_id[i] and node[i]: address and keys; node ids in any
 * order, sorted here) and the allow-list client[0..clients-1] (the config's
 * table: the ids with allowed set), under params. The result is exactly what
 * decoding its encoding gives. 0; BFTKV_E_INVAL (what the map cannot hold: R
 * below 3f+1 or above m, P not a power of two, repeated ids, addresses or
 * keys, a bad host, nothing allowed), BFTKV_E_NOMEM. */
int cluster_map_build(const struct cluster_map_params *params, const uint32_t *node_id,
                      const struct bftkv_config_replica *node, uint16_t m, const struct bftkv_config_client *client,
                      uint16_t clients, struct cluster_map **out, char *err, size_t errlen);

/* The single-group shorthand: the map of a config file's one group, M = R = n
 * nodes with ids 0..n-1 (the replicas' addresses and keys), the same f, P = 1,
 * rendezvous placement (partition 0 is every node) and the config's allow-list.
 * Errors of cluster_map_build. */
int cluster_map_from_config(const struct bftkv_config *cfg, uint64_t epoch, struct cluster_map **out, char *err,
                            size_t errlen);

/* Decode an unsigned encoding (len bytes, untrusted): every field checked as
 * build checks it, no byte left over, the placement derived. 0;
 * BFTKV_E_CORRUPT (malformed, truncated, trailing bytes, a value out of
 * range), BFTKV_E_VERSION (another format version), BFTKV_E_NOMEM. */
int cluster_map_decode(const uint8_t *body, size_t len, struct cluster_map **out, char *err, size_t errlen);

void cluster_map_free(struct cluster_map *map);

/* The admin's Ed25519 key pair from its key file's seed (the derivation of every
 * principal's, engine/auth.h auth_keypair_from_seed). */
void cluster_map_admin_keypair(const uint8_t seed[BFTKV_KEY_SEED_SIZE], uint8_t pk[32], uint8_t sk[64]);

/* The signed form of map: its encoding and the admin's signature of it, in a
 * new buffer (*out, *len bytes; the caller frees it). 0 or BFTKV_E_NOMEM. */
int cluster_map_sign(const struct cluster_map *map, const uint8_t admin_sk[64], uint8_t **out, size_t *len);

/* Does signed_map (len bytes) carry the admin's signature of its encoding? 0;
 * BFTKV_E_AUTH (a bad signature); BFTKV_E_CORRUPT (too short or too long to be
 * a signed map). Does not decode. */
int cluster_map_verify(const uint8_t *signed_map, size_t len, const uint8_t admin_pk[32]);

/* Verify, then decode: errors of both. */
int cluster_map_open(const uint8_t *signed_map, size_t len, const uint8_t admin_pk[32], struct cluster_map **out,
                     char *err, size_t errlen);

/* The acceptance rule (docs/design.md §6.2): a candidate map replaces current
 * (NULL: none held yet) only if the admin signature verifies and its epoch is
 * later; an equal epoch must be the same bytes. 0 with *verdict NEWER and *out
 * the candidate, decoded; 0 with SAME and *out NULL; BFTKV_E_AUTH, _CORRUPT or
 * _VERSION with BAD; BFTKV_E_RANGE with STALE; BFTKV_E_AUTH with CONFLICT;
 * BFTKV_E_NOMEM. verdict may be NULL. */
int cluster_map_accept(const struct cluster_map *current, const uint8_t *signed_map, size_t len,
                       const uint8_t admin_pk[32], struct cluster_map **out, enum cluster_map_verdict *verdict,
                       char *err, size_t errlen);

/* Lookups. A key's partition (cluster_key_partition under the map's P); a
 * partition's replica set (rf indexes into node[], best first; p < partitions);
 * a node id's index in node[], or BFTKV_E_NOT_FOUND. */
uint32_t cluster_map_key_partition(const struct cluster_map *map, const void *key, size_t len);
const uint16_t *cluster_map_partition_replicas(const struct cluster_map *map, uint32_t p);
int cluster_map_node_index(const struct cluster_map *map, uint32_t node_id);

/* The placement's name as the JSON form spells it ("rendezvous", "ring"). */
const char *cluster_map_placement_name(enum cluster_map_placement placement);

/* The map as JSON for operators (cluster/deploymap_json.c): every field, the
 * public keys in hex and each partition's replica set by node id. 0 or
 * BFTKV_E_IO. Nothing reads this form back: the signed encoding is the map. */
int cluster_map_json_write(const struct cluster_map *map, FILE *fp);

/* ---- A deployment's file (cluster/deployment.c; docs/design.md §6.3) ----------------
 * A config file with deployment_map and admin_pub lines names a partitioned
 * deployment instead of one group. cluster_deployment_is tells which.
 * cluster_deployment_open reads the admin key (hex or file) and the map file,
 * verifies the signature and decodes it: 0, or BFTKV_E_IO / _CONFIG / _AUTH /
 * _CORRUPT / _VERSION with a message (a map that does not verify is refused,
 * never used). cluster_deployment_group gives partition p's group as a
 * single-group config (a new one the caller frees with bftkv_config_free):
 * group p, n = R, the map's f, replica i the i-th node of p's set, the map's
 * clients, data_dir/partition-<p> when data_dir is set. cluster_deployment_slot
 * is node index node's replica index in partition p, or BFTKV_E_NOT_FOUND.
 * cluster_deployment_node_identity loads key_dir/node-<id>.key for node index
 * node and checks it against the map's public keys (BFTKV_E_CONFIG if not). */
bool cluster_deployment_is(const struct bftkv_config *cfg);
/* The admin public key a deployment's file names (hex, or its admin.pub file
 * read): 0, or BFTKV_E_IO / _CONFIG with a message. */
int cluster_deployment_admin_pub(const struct bftkv_config *cfg, uint8_t pk[32], char *err, size_t errlen);
/* A file of the regular kind of at most cap bytes, whole, in a new buffer the
 * caller frees: 0, BFTKV_E_IO (with errno's text), _CONFIG, _NOMEM. */
int cluster_file_read(const char *path, size_t cap, uint8_t **out, size_t *len, char *err, size_t errlen);
/* The signed form of a map that was verified (has_sig): body || sig in a new
 * buffer. 0, BFTKV_E_INVAL (never verified), BFTKV_E_NOMEM. */
int cluster_map_signed(const struct cluster_map *map, uint8_t **out, size_t *len);
int cluster_deployment_open(const struct bftkv_config *cfg, struct cluster_map **out, char *err, size_t errlen);
int cluster_deployment_group(const struct bftkv_config *cfg, const struct cluster_map *map, uint32_t p,
                             struct bftkv_config **out, char *err, size_t errlen);
int cluster_deployment_slot(const struct cluster_map *map, uint16_t node, uint32_t p);
int cluster_deployment_node_identity(const struct bftkv_config *cfg, const struct cluster_map *map, uint16_t node,
                                     struct auth_keypair *kp, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_CLUSTER_H */
