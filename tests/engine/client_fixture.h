/* The client tests' fixture (test_client.c, test_client_readonly.c): one client
 * of a group of NREP = 4 replicas (f = 1, q = 3), keys for every principal,
 * REPLY messages built here with the replicas' own keys, and helpers to submit,
 * tick and read the outbox. Test code. */
#ifndef BFTKV_TESTS_CLIENT_FIXTURE_H
#define BFTKV_TESTS_CLIENT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/auth.h"
#include "engine/pbft.h"
#include "engine/wire.h"

#define GROUP 7u
#define NREP 4u
#define F 1u
#define NCLIENTS 3u
#define ME 1u    /* the client under test */
#define OTHER 2u /* another allowed client */
#define TIMEOUT_NS 1000u
#define BASE_TS 5000u

extern const struct wire_limits lim;
extern struct auth_keypair rkp[NREP], ckp[NCLIENTS];
extern struct auth_public rpub[NREP], cpub[NCLIENTS];
extern struct auth_ctx rctx[NREP], cctx[NCLIENTS];
extern struct pbft_out out;
extern uint8_t g_msg[BFTKV_DATAGRAM_MAX];
extern uint8_t g_big[BFTKV_VALUE_MAX + 1];

struct reply_spec {
    uint16_t replica;
    uint16_t client;
    uint16_t lane;
    uint64_t ts;
    uint64_t view;
    int16_t status;
    const void *result; /* the result the digest is computed over */
    uint32_t rlen;
    bool full;          /* send the result bytes */
    bool readonly;
    const void *sent;   /* bytes actually sent when full (default: result) */
    bool bad_mac;
    uint64_t epoch;     /* the replying node's map epoch (0: none, a single group's reply) */
};

int group_setup(void **state);
int group_teardown(void **state);
struct pbft_client_config cfg_default(void);
struct pbft_client *client_new(const struct pbft_client_config *cfg);
/* The i-th message of the outbox, decoded as a REQUEST and checked by every
 * replica's authenticator entry. */
struct wire_msg out_request(uint32_t i);
uint32_t reply_deliver(struct pbft_client *c, const struct reply_spec *s, uint64_t now,
                       struct pbft_completion *done, uint32_t cap);
uint32_t tick(struct pbft_client *c, uint64_t now, struct pbft_completion *done, uint32_t cap);
struct reply_spec spec(uint16_t replica, uint16_t lane, uint64_t ts, const char *result, bool full);
int submit(struct pbft_client *c, uint8_t op, const char *key, const char *value);

#endif /* BFTKV_TESTS_CLIENT_FIXTURE_H */
