/* A scripted cluster for hand-written scenarios (cowsql/raft's
 * raft_fixture): the simulator's cluster on a deterministic network (fixed
 * latency, no loss, no jitter), plus the knobs a test needs to set up one
 * situation precisely:
 *
 *   - step one event, run for a duration, or step until a replica (or every
 *     replica that is not silenced) has executed a sequence number;
 *   - drop or duplicate the next message(s) matching (type, from, to);
 *   - delay a replica: hold every message sent to it for a while;
 *   - silence a replica: nothing it sends leaves it;
 *   - submit an operation from a client and run until it completes.
 *
 * Node ids are the cluster's: replicas 0..n-1, client c is node n+c
 * (fixture_client_node). FIXTURE_ANY matches any type or node. Every executed
 * batch digest and checkpoint is recorded per replica, so a test can compare
 * what the replicas executed.
 */
#ifndef BFTKV_SIM_FIXTURE_H
#define BFTKV_SIM_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pbft.h"
#include "tests/sim/cluster.h"

#define FIXTURE_ANY UINT32_MAX
#define FIXTURE_FOREVER UINT32_MAX
#define FIXTURE_VALUE_MAX 256u

struct fixture_config {
    uint16_t n;
    uint16_t f;
    uint16_t clients;
    uint16_t lanes;
    uint32_t checkpoint_interval; /* 0: engine default */
    uint32_t log_window;
    uint32_t window;
    uint32_t batch_max_requests;
    uint64_t latency_ns;
    uint64_t client_retransmit_ns;
    uint32_t bugs;
    bool readonly; /* clients send GETs on the read-only path */
};

void fixture_config_defaults(struct fixture_config *cfg);

struct fixture_result {
    uint16_t lane;
    uint8_t op;
    int status;
    uint64_t timestamp;
    uint32_t vlen;
    uint8_t value[FIXTURE_VALUE_MAX];
};

struct fixture;

int fixture_create(const struct fixture_config *cfg, struct fixture **out);
void fixture_destroy(struct fixture *fx);
struct cluster *fixture_cluster(struct fixture *fx);
uint32_t fixture_client_node(const struct fixture *fx, uint16_t client);
uint64_t fixture_now(const struct fixture *fx);

/* One event; false when nothing is left to happen. */
bool fixture_step(struct fixture *fx);
/* Run every event of the next duration_ns. */
void fixture_run_for(struct fixture *fx, uint64_t duration_ns);
/* Step until replica has executed seq (or beyond); false after max_steps. */
bool fixture_step_until_executed(struct fixture *fx, uint16_t replica, uint64_t seq, uint64_t max_steps);
/* Step until every replica that is not silenced has executed seq. */
bool fixture_step_until_committed(struct fixture *fx, uint64_t seq, uint64_t max_steps);

/* Highest sequence number replica executed (0: none). */
uint64_t fixture_executed(const struct fixture *fx, uint16_t replica);
/* The batch digest replica executed at seq; false if it did not. */
bool fixture_exec_digest(const struct fixture *fx, uint16_t replica, uint64_t seq, uint8_t out[32]);
/* Checkpoints replica took, and the highest one. */
uint64_t fixture_checkpoints(const struct fixture *fx, uint16_t replica, uint64_t *last_seq);

/* Drop the next `count` messages matching (type, from, to) (FIXTURE_FOREVER:
 * every one); duplicate the next matching one. Rules are checked in the order
 * they were added. */
void fixture_drop(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to, uint32_t count);
void fixture_drop_next(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to);
void fixture_duplicate_next(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to);
/* Let the next `pass` messages matching (type, from, to) through, then drop
 * every later one. */
void fixture_drop_after(struct fixture *fx, uint32_t type, uint32_t from, uint32_t to, uint32_t pass);
void fixture_clear_rules(struct fixture *fx);
/* Messages dropped / duplicated by the rules so far. */
uint64_t fixture_dropped(const struct fixture *fx);
uint64_t fixture_duplicated(const struct fixture *fx);

/* Messages of a wire type a replica sent so far (counted before the rules and
 * silencing apply). */
uint64_t fixture_sent(const struct fixture *fx, uint32_t type, uint16_t replica);

/* Hold every message sent to replica for duration_ns from now. */
void fixture_delay_replica(struct fixture *fx, uint16_t replica, uint64_t duration_ns);
/* Silence (or un-silence) a replica: nothing it sends leaves it. */
void fixture_silence(struct fixture *fx, uint16_t replica, bool silent);

/* Submit an operation (key and value as C strings; value NULL for GET/DEL).
 * Returns the lane or a negative error. */
int fixture_submit(struct fixture *fx, uint16_t client, uint8_t op, const char *key, const char *value);
/* Step until client completes an operation (the oldest not yet taken); false
 * after max_steps. */
bool fixture_run_until_complete(struct fixture *fx, uint16_t client, uint64_t max_steps,
                                struct fixture_result *res);
/* Submit and run until that client completes: the usual one-liner. */
bool fixture_do(struct fixture *fx, uint16_t client, uint8_t op, const char *key, const char *value,
                uint64_t max_steps, struct fixture_result *res);

#endif /* BFTKV_SIM_FIXTURE_H */
