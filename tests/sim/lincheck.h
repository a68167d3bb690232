/* A per-key linearizability checker for key-value histories (docs/design.md §5.7).
 *
 * The simulator records every client operation — its invocation time, its return
 * time (or none: the client never learned the outcome) and what it returned — and
 * asks whether some total order of the operations, consistent with real time,
 * explains every result under the sequential semantics of a register per key:
 *
 *     every key starts absent;  PUT v   -> the key holds v          (status OK)
 *                               GET     -> the current value, or NOT_FOUND if absent
 *                               DEL     -> the key becomes absent; the status is OK
 *                                          iff the key was present, else NOT_FOUND
 *
 * Linearizability is local (Herlihy & Wing 1990), so each key is checked on its
 * own ("P-compositionality", Lowe 2017). Per key the search is Wing & Gong's (1993)
 * depth-first search for a linearization, with Lowe's memoization of visited
 * configurations (set of linearized operations, register value): a configuration
 * seen once is never expanded again. The number of stored configurations and of
 * search steps per key is bounded; a key that exceeds the bound is reported as
 * LINCHECK_UNKNOWN ("too complex") rather than hanging the simulator.
 *
 * Values are opaque 64-bit ids chosen by the caller: every PUT should write a value
 * id that no other PUT writes (the checker then pins each read to its write), id 0
 * means "absent" and may not be written. A GET that returned bytes the caller cannot
 * map to any id should be recorded with an id that was never written (for example
 * UINT64_MAX): the checker will reject it.
 *
 * Times are any monotonic 64-bit clock (simulated ns, or better a global event
 * counter). Operation a precedes b in real time iff a.return_time < b.invoke_time:
 * equal times count as overlapping, so the checker never reports a violation that
 * depends on the order of two events stamped with the same time. An operation
 * whose outcome is unknown (crashed client, end of the run, timeout) is "pending":
 * return_time = LINCHECK_PENDING. A pending operation may take effect at any point
 * after its invocation or not at all; its status and read value are ignored (a
 * pending GET constrains nothing and is skipped).
 *
 * Memory: lincheck_create allocates the op array (capacity ops); lincheck_check
 * allocates its scratch per call and frees it before returning. The memo of one
 * key of m ops takes about states * (8 * ceil(m / 64) + 24) bytes, capped at 1 GiB
 * (beyond: LINCHECK_UNKNOWN). Valid histories need few states (about one per op);
 * refuting a violation may visit many. Not thread-safe.
 */
#ifndef BFTKV_TESTS_SIM_LINCHECK_H
#define BFTKV_TESTS_SIM_LINCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LINCHECK_PENDING UINT64_MAX

enum lincheck_kind {
    LINCHECK_PUT = 1, /* same numbering as enum wire_op */
    LINCHECK_GET = 2,
    LINCHECK_DEL = 3,
};

enum lincheck_verdict {
    LINCHECK_OK = 0,        /* every key is linearizable */
    LINCHECK_VIOLATION = 1, /* some key is not (the first such key is reported) */
    LINCHECK_UNKNOWN = 2,   /* no violation found, but some key exceeded the budget */
};

/* One operation of the history. */
struct lincheck_op {
    uint64_t key;         /* key id */
    uint8_t kind;         /* enum lincheck_kind */
    int status;           /* 0 or BFTKV_E_NOT_FOUND (GET of an absent key, DEL of an
                             absent key); PUT is always 0. Ignored when pending. */
    uint64_t value;       /* PUT: the value id written (!= 0); GET: the value id read
                             (0 = NOT_FOUND); DEL: unused (0) */
    uint64_t invoke_time;
    uint64_t return_time; /* >= invoke_time, or LINCHECK_PENDING */
    uint32_t client;      /* for printing only */
};

/* Default budget per key (lincheck_set_budget). */
#define LINCHECK_DEFAULT_MAX_STATES (1u << 20)
#define LINCHECK_DEFAULT_MAX_STEPS (64ull << 20)

/* The outcome of lincheck_check. */
struct lincheck_result {
    int verdict;             /* enum lincheck_verdict */
    uint64_t key;            /* VIOLATION/UNKNOWN: the first such key (in key order) */
    uint32_t key_ops;        /* ops of that key */
    uint32_t deepest;        /* VIOLATION: most ops of that key ever linearized together */
    uint32_t stuck_op;       /* VIOLATION: id (lincheck_add order) of an op that could not
                                be placed at the deepest point: the earliest-returning op
                                left, or UINT32_MAX */
    const char *reason;      /* short static text */
    uint32_t keys_checked;
    uint32_t keys_unknown;
    uint32_t keys_violating;
    uint64_t states;         /* configurations stored, summed over keys */
};

struct lincheck;

/* capacity: most ops that will be added; NULL on allocation failure. */
struct lincheck *lincheck_create(uint32_t capacity);
void lincheck_destroy(struct lincheck *lc);

/* Forget every op (keeps the allocation and the budget). */
void lincheck_reset(struct lincheck *lc);

/* Per-key search budget: stored configurations and search steps. */
void lincheck_set_budget(struct lincheck *lc, uint64_t max_states, uint64_t max_steps);

/* Record a complete (or pending) op. Its id is its index in insertion order, i.e.
 * lincheck_count() before the call. 0, BFTKV_E_FULL at capacity, BFTKV_E_INVAL for
 * a malformed op (bad kind, PUT of value 0, return before invoke, a status other
 * than 0/NOT_FOUND on a returned op, GET status inconsistent with its value). */
int lincheck_add(struct lincheck *lc, const struct lincheck_op *op);

/* Two-step recording, convenient for a simulator: invoke records a pending op and
 * gives its id; complete fills in the result later. An op never completed stays
 * pending. value is the PUT value (ignored for GET/DEL). */
int lincheck_invoke(struct lincheck *lc, uint64_t key, uint8_t kind, uint64_t value, uint64_t invoke_time,
                    uint32_t client, uint32_t *id);
int lincheck_complete(struct lincheck *lc, uint32_t id, int status, uint64_t value_read, uint64_t return_time);

uint32_t lincheck_count(const struct lincheck *lc);
const struct lincheck_op *lincheck_get(const struct lincheck *lc, uint32_t id);

/* Check the whole history. Returns the verdict (also in res->verdict, res may be
 * NULL). BFTKV_E_NOMEM if scratch memory could not be allocated. */
int lincheck_check(struct lincheck *lc, struct lincheck_result *res);

/* Check only the ops of one key. */
int lincheck_check_key(struct lincheck *lc, uint64_t key, struct lincheck_result *res);

/* Print the ops of one key, sorted by invocation time, one per line, marking
 * mark_op (an op id, or UINT32_MAX for none): the reproducible failure report. */
void lincheck_print_key(const struct lincheck *lc, uint64_t key, uint32_t mark_op, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_TESTS_SIM_LINCHECK_H */
