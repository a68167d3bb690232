/* An in-process fake cluster for the client library's tests and measurements
 * (test_client_lib.c, test_client_lib_bench.c), standing in for real
 * bftkv-server processes: n engine replicas (pbft_replica_create with a store and
 * the authentication state built from real key files) each behind its own UDP
 * socket on 127.0.0.1, all pumped by one thread.
 *
 * fake_create writes a real cluster: a mkdtemp directory under /tmp holding
 * cluster.conf (the replicas' ephemeral ports, their public keys and `clients`
 * allowed clients, plus any extra config lines the test gives) and keys/ with a
 * key file per principal (bftkv_key_generate, mode 0600). A client handle opens
 * it with bftkv_client_open(fc->conf, ...) exactly as an application would.
 *
 * The pump thread polls the replicas' sockets (mmsg backend, so poll(2) on the
 * socket is meaningful), steps each replica with every message of every datagram,
 * ticks replicas whose deadline passed, and sends their outboxes: to replicas by
 * id, to clients at the address their latest REQUEST came from (like the server
 * runtime, each replica learns a client's endpoint from the requests it receives
 * itself). fake_stop stops the
 * pump (replicas keep their sockets and their memory but answer nothing), and
 * fake_start starts it again.
 */
#ifndef BFTKV_TESTS_NET_CLIENT_LIB_FAKE_H
#define BFTKV_TESTS_NET_CLIENT_LIB_FAKE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/auth.h"
#include "engine/pbft.h"
#include "cluster/cluster.h"
#include "net/udp.h"
#include "store/store.h"

#define FAKE_REPLICAS_MAX 7u
#define FAKE_CLIENTS_MAX 8u

struct fake_replica {
    struct auth_ctx auth;
    struct store *store;
    struct pbft_replica *r;
    struct net_udp *udp;
    struct pbft_out out;
};

struct fake_cluster {
    char dir[64];
    char conf[128];
    uint16_t n;
    uint16_t f;
    uint16_t clients;
    struct bftkv_config *cfg;
    struct fake_replica rep[FAKE_REPLICAS_MAX];
    struct sockaddr_storage addr[FAKE_REPLICAS_MAX];
    socklen_t alen[FAKE_REPLICAS_MAX];
    /* Per replica, like the server's address book: where client c's latest
     * REQUEST to this replica came from. */
    struct sockaddr_storage client_addr[FAKE_REPLICAS_MAX][FAKE_CLIENTS_MAX];
    socklen_t client_alen[FAKE_REPLICAS_MAX][FAKE_CLIENTS_MAX]; /* 0: not seen yet */
    pthread_t pump;
    bool running;
    atomic_bool stop;
    atomic_uint_least64_t steps; /* messages delivered to replicas */
};

/* Build the cluster (not started). extra: config lines appended verbatim (may be
 * NULL). Returns 0, or a BFTKV_E_* code after printing what failed to stderr. */
int fake_create(struct fake_cluster *fc, uint16_t n, uint16_t f, uint16_t clients, const char *extra);
void fake_start(struct fake_cluster *fc);
void fake_stop(struct fake_cluster *fc);
/* Stop, free everything and remove the directory. */
void fake_destroy(struct fake_cluster *fc);

#endif /* BFTKV_TESTS_NET_CLIENT_LIB_FAKE_H */
