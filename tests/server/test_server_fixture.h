/* An in-process cluster for the server runtime's tests (test_server.c): N
 * replicas as N server/server.h instances (each with its own threads and UDP
 * socket on 127.0.0.1), a config and key files written to a fresh temporary
 * directory, and a client that drives the engine's pbft_client over its own
 * net_udp socket. Everything listens on 127.0.0.1 only; every wait is bounded.
 */
#ifndef BFTKV_TESTS_NET_TEST_SERVER_FIXTURE_H
#define BFTKV_TESTS_NET_TEST_SERVER_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pbft.h"
#include "server/byzantine.h"
#include "cluster/cluster.h"
#include "server/server.h"
#include "net/udp.h"

#define FX_CLIENTS 4u          /* client lines 0, 1 and 3: id 2 is a gap (not allowed) */
#define FX_UNKNOWN_CLIENT 2u
#define FX_OP_TIMEOUT_MS 5000u /* one operation */

struct fx_cluster {
    char dir[64];
    char conf[128];
    uint16_t n;
    struct bftkv_config *cfg;
    struct server *srv[BFTKV_REPLICAS_MAX];
};

/* Write keys and a config for n replicas tolerating f faults on free loopback
 * ports. threads: "single" or "staged auth_workers=2"; extra: more config
 * lines (may be NULL). */
void fx_cluster_write(struct fx_cluster *c, uint16_t n, uint16_t f, const char *threads, const char *extra);
/* Start replica i (byz: BYZ_NONE or a mode, seeded). */
void fx_replica_start(struct fx_cluster *c, uint16_t i, enum byz_mode byz);
void fx_cluster_start(struct fx_cluster *c);
/* Stop and free every replica, the config, and delete the directory. */
void fx_cluster_destroy(struct fx_cluster *c);

/* A client of the cluster. */
struct fx_client {
    struct fx_cluster *c;
    uint16_t id;
    struct auth_ctx auth;
    struct pbft_client *pc;
    struct pbft_out out;
    struct net_udp *udp;
    struct sockaddr_storage raddr[BFTKV_REPLICAS_MAX];
    socklen_t ralen[BFTKV_REPLICAS_MAX];
    struct pbft_completion done[PBFT_LANES_MAX];
    /* results of the completions gathered by fx_client_run, by lane */
    bool lane_done[PBFT_LANES_MAX];
    int lane_status[PBFT_LANES_MAX];
    uint8_t *lane_value[PBFT_LANES_MAX];
    uint32_t lane_vlen[PBFT_LANES_MAX];
    uint64_t completed;
};

/* Open client id with lanes lanes; stranger: use a freshly generated key pair
 * that the config does not know (for the unknown-client test). */
void fx_client_open(struct fx_client *cl, struct fx_cluster *c, uint16_t id, uint16_t lanes, bool stranger);
void fx_client_close(struct fx_client *cl);

/* Submit one operation (a free lane must exist): returns the lane. */
int fx_client_submit(struct fx_client *cl, uint8_t op, const void *key, size_t klen, const void *val,
                     size_t vlen);
/* Send, receive and tick for up to wait_ms (or until some lane completes when
 * until_any). Returns the number of completions gathered. */
uint32_t fx_client_run(struct fx_client *cl, uint32_t wait_ms, bool until_any);
/* One synchronous operation: 0 and *status (the replicas' answer) with the value
 * copied into val_out (cap bytes, *vlen its length) for a GET, or
 * BFTKV_E_TIMEOUT. */
int fx_client_op(struct fx_client *cl, uint8_t op, const char *key, const char *val, int *status, char *val_out,
                 size_t cap, size_t *vlen);

/* Ask replica r for its stats JSON as client 0 (bftkv_admin_stats). Writes into
 * buf (cap bytes); 0 or the error. */
int fx_stats(struct fx_cluster *c, uint16_t r, char *buf, size_t cap);
/* The unsigned number after "key": in json (nested keys are found too: the first
 * occurrence wins); UINT64_MAX when absent. */
uint64_t fx_json_u64(const char *json, const char *key);

uint64_t fx_now_ms(void);

#endif /* BFTKV_TESTS_NET_TEST_SERVER_FIXTURE_H */
