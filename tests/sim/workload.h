/* The simulated clients' workload and its history.
 *
 * Each client runs a closed loop of R random operations (PUT, GET, DEL) over a
 * small key space, so that operations on one key overlap and conflict, with up to
 * `inflight` operations outstanding (the client's lanes). Every PUT writes a
 * value no other PUT writes -- its 8-byte id encodes (client + 1, counter + 1),
 * padded to value_bytes -- so a read pins the write it saw. Every invocation and
 * completion goes into the lincheck history with a logical timestamp (a counter
 * bumped at every invocation and completion, so real-time order between events at
 * the same simulated instant is kept).
 *
 * After every client has finished (and the network has stabilised), client 0
 * reads every key once more. Those final reads are part of the history, so a
 * write acknowledged earlier and then lost makes the history non-linearizable
 * ("no acknowledged write is lost", docs/design.md §5.7).
 *
 * BFTKV_E_NO_STATE (f+1 replicas restarted without their memory said the group
 * cannot serve, docs/design.md "Restarts") is an answer only once more than f
 * replicas lost their memory (workload_restart_down). Its operation stays
 * pending in the history: a GET that got it read nothing (it is not NOT_FOUND),
 * a PUT or DEL that got it may still take effect later. When the group must
 * refuse for good (at most f replicas kept their state), every operation invoked
 * from then on must get it: a value or NOT_FOUND would come from an empty store.
 * Otherwise it is no progress, and a final read that gets it is asked again.
 */
#ifndef BFTKV_SIM_WORKLOAD_H
#define BFTKV_SIM_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/pbft.h"
#include "tests/sim/checkers.h"
#include "tests/sim/cluster.h"
#include "tests/sim/lincheck.h"
#include "common/prng.h"

#define WORKLOAD_VALUE_MIN 8u
#define WORKLOAD_GARBAGE_ID UINT64_MAX

struct workload_config {
    uint16_t clients;
    uint32_t requests;      /* per client */
    uint32_t keys;          /* key space */
    uint32_t put_percent;   /* the rest after put and get are DELs */
    uint32_t get_percent;
    uint16_t inflight;      /* outstanding operations per client, <= lanes */
    uint32_t value_bytes;   /* >= WORKLOAD_VALUE_MIN */
    const uint32_t *key_names; /* [keys]: key i is named "k<key_names[i]>" (a deployment's
                                  partition: the names its placement routes to it, deploy.h);
                                  NULL: "k<i>". The caller's, kept for the run. */
    const uint8_t *key_ops;    /* [keys]: WORKLOAD_KEY_READ | WORKLOAD_KEY_WRITE, the operations
                                  this group serves on key i (a deployment whose clients route
                                  some keys' updates elsewhere, deploy.h); NULL: every one.
                                  A drawn GET of a key without READ becomes a PUT, a drawn
                                  PUT or DEL of a key without WRITE a GET; the final reads
                                  skip keys without READ. */
    uint64_t *clock_ns;        /* [clock_cap] or NULL: the simulated time of each tick of
                                  the history's logical clock (a deployment merges its
                                  partitions' histories by simulated time) */
    uint64_t clock_cap;
};

#define WORKLOAD_KEY_READ 1u
#define WORKLOAD_KEY_WRITE 2u

struct workload_client {
    struct prng rng;
    uint32_t issued;
    uint32_t completed;
    uint32_t inflight;
    uint32_t counter;
    uint32_t lane_op[PBFT_LANES_MAX]; /* lincheck id of the op on each lane */
    bool lane_busy[PBFT_LANES_MAX];
    bool lane_final[PBFT_LANES_MAX]; /* the op on the lane is a final read */
};

struct workload {
    struct workload_config cfg;
    struct cluster *cl;
    struct lincheck *lc;
    struct checkers *ck;          /* odd completions are reported here */
    struct workload_client *c;
    uint64_t clock;               /* logical time for the history */
    uint64_t regular_done;        /* completed operations of the R-loops */
    uint64_t regular_total;
    bool final_started;
    uint32_t final_next_key;
    uint32_t final_done;
    uint32_t final_total;         /* the keys the final reads read */
    uint64_t completed;           /* every completion, final reads included */
    uint64_t last_completion_ns;  /* simulated time of the latest completion */
    uint64_t submit_errors;
    bool no_state_ok;             /* > f replicas lost their memory: NO_STATE may come */
    bool refuse;                  /* <= f replicas hold state: the group must refuse */
    uint64_t refuse_clock;        /* ... every operation invoked after this logical time */
    uint64_t no_state;            /* completions with BFTKV_E_NO_STATE */
    uint8_t *vbuf;
};

int workload_init(struct workload *wl, const struct workload_config *cfg, struct cluster *cl,
                  struct lincheck *lc, struct checkers *ck, uint64_t seed);
void workload_destroy(struct workload *wl);

/* Submit each client's first operations. */
void workload_start(struct workload *wl);

/* The cluster's completion hook (arg = the workload). */
void workload_on_complete(void *arg, uint16_t client, const struct pbft_completion *c);

/* Replicas went down together (tests/sim/restarts.h): more than f of them lost
 * their memory (NO_STATE may answer from now on), and with refuse, at most f
 * replicas still hold state (only NO_STATE may answer what is invoked from now on). */
void workload_restart_down(struct workload *wl, bool no_state_ok, bool refuse);

bool workload_regular_done(const struct workload *wl);
/* Start the final reads through client 0. */
void workload_start_final(struct workload *wl);
bool workload_final_done(const struct workload *wl);

/* Value id of a value's bytes, or WORKLOAD_GARBAGE_ID when they are not a value
 * this workload wrote. */
uint64_t workload_value_id(const struct workload *wl, const uint8_t *v, uint32_t vlen);

/* The wire bytes of key name number `name` ("k<name>"). */
void workload_key_bytes(uint32_t name, char out[8], size_t *klen);

/* The key of the operation in flight on (client, lane) (a fault_key_fn). */
bool workload_key_of(void *arg, uint16_t client, uint16_t lane, char *key, size_t cap, size_t *klen);

#endif /* BFTKV_SIM_WORKLOAD_H */
