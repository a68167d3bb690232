/* Prometheus metrics of a replica (config `metrics_listen`, docs/operations.md
 * "Monitoring"): a snapshot of every counter and gauge the stats have, taken on
 * the protocol thread, and its rendering in the Prometheus text exposition
 * format (version 0.0.4) for the HTTP endpoint (server/metrics_http.c).
 *
 * Threads. The engine's stats may only be read by the thread that steps it
 * (server/server.h), so the HTTP side never reads them: it asks for a snapshot
 * (an atomic counter), and the protocol thread, between two steps
 * (server_timers_run), samples everything into the shared snapshot under a
 * mutex it only ever *tries* to take: when the HTTP side holds it (copying the
 * last snapshot out), the protocol thread goes on and samples at its next loop
 * iteration. So the protocol thread never waits for the HTTP side; the HTTP side
 * waits at most METRICS_FRESH_WAIT_MS for a fresh snapshot and otherwise serves
 * the last one, whose age it reports (bftkv_metrics_snapshot_age_seconds: a
 * protocol thread that stopped answering shows as a growing age). However many
 * scrapes come, the protocol thread samples at most once per
 * METRICS_SAMPLE_INTERVAL_NS; within it the last snapshot answers.
 *
 * The list of metrics is server/metrics_table.h; nothing here names one.
 */
#ifndef BFTKV_SERVER_METRICS_H
#define BFTKV_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/wire.h"
#include "engine/wire_admin.h"
#include "server/metrics_table.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How long a scrape waits for the protocol thread's fresh snapshot before it
 * serves the previous one (the thread looks at least every SERVER_POLL_MS_MAX). */
#define METRICS_FRESH_WAIT_MS 100
/* The protocol thread samples at most once per this interval, however many
 * scrapes ask: a scrape within it gets the last snapshot. */
#define METRICS_SAMPLE_INTERVAL_NS (50u * 1000u * 1000u)

enum metrics_scalar {
#define METRICS_SCALAR_ENUM(id, name, type, scope, when, help, value) METRICS_##id,
    METRICS_SCALARS(METRICS_SCALAR_ENUM)
#undef METRICS_SCALAR_ENUM
    METRICS_SCALAR_COUNT
};

#define METRICS_COUNT_ONE(...) +1
/* Drop reasons: the decoder's, the list's, then the admin protocol's (its
 * unknown_client folded into the decoder's, as in the stats JSON). */
#define METRICS_DROP_COUNT (WIRE_DROP_COUNT METRICS_DROP_REASONS(METRICS_COUNT_ONE) + (ADMIN_DROP_COUNT - 2))
#define METRICS_BYZ_COUNT (0 METRICS_BYZ_ACTIONS(METRICS_COUNT_ONE))

/* Stages with a latency summary (server_internal.h enum server_stage). */
#define METRICS_STAGE_MAX 8
/* The summary's quantiles. */
#define METRICS_QUANTILE_COUNT 5

struct metrics_stage {
    bool present;
    uint64_t count;
    double sum_s; /* count x the histogram's mean */
    double quantile_s[METRICS_QUANTILE_COUNT];
    double max_s;
};

struct metrics_snapshot {
    uint64_t gen;      /* the request it answered (0: never taken) */
    uint64_t taken_ns; /* CLOCK_MONOTONIC when it was taken */
    uint16_t replica;
    uint16_t partition; /* today the config's group */
    bool has_wal, has_snap, has_byz;
    double scalar[METRICS_SCALAR_COUNT];
    uint64_t drops[METRICS_DROP_COUNT];
    uint64_t byz[METRICS_BYZ_COUNT];
    struct metrics_stage stage[METRICS_STAGE_MAX];
    /* build_info's labels */
    char backend[8];
    char threads[8];
    char durability[8];
    char byzantine[24];
};

/* The quantiles of every summary (0.5, 0.9, 0.99, 0.999, 1). */
extern const double metrics_quantiles[METRICS_QUANTILE_COUNT];

/* The label value of drop reason i (< METRICS_DROP_COUNT), of Byzantine action
 * i, of stage i (NULL: no such stage). */
const char *metrics_drop_reason(unsigned i);
const char *metrics_byz_action(unsigned i);
const char *metrics_stage_name(unsigned i);

/* Render snap in the text exposition format into buf (cap bytes). age_s: how
 * old the snapshot is. Returns the length, or 0 when cap is too small. */
size_t metrics_render(const struct metrics_snapshot *snap, double age_s, char *buf, size_t cap);
/* The same for the count replicas one process hosts (a deployment node): each
 * family once, every series labelled with its partition; build_info from
 * snaps[0] (its replica label: the node id); age_s the oldest snapshot's. */
size_t metrics_render_set(const struct metrics_snapshot *snaps, unsigned count, double age_s, char *buf, size_t cap);

/* Print the metrics reference (a Markdown table of every family) to fp: the
 * text of docs/operations.md between its "metrics-reference" markers. */
void metrics_reference_write(FILE *fp);

/* ---- The server's side (server/metrics_sample.c) -------------------------------- */

struct server;
struct server_metrics;

/* Allocate / free the shared snapshot of s (server_create / server_destroy). */
int server_metrics_create(struct server *s);
void server_metrics_destroy(struct server *s);

/* Protocol thread, between steps: sample when asked (never waits). */
void server_metrics_poll(struct server *s);

/* Any other thread: ask for a fresh snapshot, wait up to wait_ms for it, and copy
 * the newest into *out. 0 (fresh), BFTKV_E_TIMEOUT (*out is an older one: the
 * protocol thread did not answer in time), BFTKV_E_NO_STATE (no snapshot yet). */
int server_metrics_read(struct server *s, struct metrics_snapshot *out, int wait_ms);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_SERVER_METRICS_H */
