/* Rendering a replica's metrics snapshot in the Prometheus text exposition
 * format, version 0.0.4 (server/metrics.h), and printing the metrics reference
 * of docs/operations.md; both walk the one list of server/metrics_table.h.
 *
 * Families, in this order: the scalars of the table, then
 *   bftkv_dropped_messages_total{reason}  counter, every reason always present
 *   bftkv_stage_latency_seconds{stage}    summary (quantiles, _sum, _count)
 *   bftkv_stage_latency_max_seconds{stage} gauge
 *   bftkv_byzantine_actions_total{action} counter, only with a test mode
 *   bftkv_build_info{...} 1               gauge
 *   bftkv_metrics_snapshot_age_seconds    gauge
 * PARTITION-scoped series carry partition="<group>"; every series of a
 * partition-scoped family does, so a process hosting several partitions can
 * print one series per partition under the same family.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "common/assert.h"
#include "server/metrics.h"

#ifndef BFTKV_VERSION_STRING
#define BFTKV_VERSION_STRING "unknown"
#endif

enum metrics_type { METRICS_TYPE_COUNTER, METRICS_TYPE_GAUGE, METRICS_TYPE_SUMMARY };
enum metrics_scope { METRICS_SCOPE_NODE, METRICS_SCOPE_PARTITION };
enum metrics_when { METRICS_WHEN_ALWAYS, METRICS_WHEN_WAL, METRICS_WHEN_SNAP };

struct metrics_family {
    const char *name;
    enum metrics_type type;
    enum metrics_scope scope;
    enum metrics_when when;
    const char *help;
};

static const struct metrics_family scalars[METRICS_SCALAR_COUNT] = {
#define METRICS_SCALAR_DEF(id, name, type, scope, when, help, value)                                           \
    [METRICS_##id] = {name, METRICS_TYPE_##type, METRICS_SCOPE_##scope, METRICS_WHEN_##when, help},
    METRICS_SCALARS(METRICS_SCALAR_DEF)
#undef METRICS_SCALAR_DEF
};

/* The labelled families after the scalars (label, help), in this order. */
enum { FAM_DROPS, FAM_STAGE, FAM_STAGE_MAX, FAM_BYZ, FAM_BUILD, FAM_AGE, FAM_COUNT };

static const struct {
    const char *name, *type, *label, *help;
} labelled[FAM_COUNT] = {
    {"bftkv_dropped_messages_total", "counter", "reason",
     "Messages and datagrams dropped, by reason (decoder, engine, runtime, transport, admin protocol)."},
    {"bftkv_stage_latency_seconds", "summary", "stage",
     "Time per runtime stage since the start (HDR histogram; quantiles 0.5, 0.9, 0.99, 0.999, 1)."},
    {"bftkv_stage_latency_max_seconds", "gauge", "stage", "The longest time of a runtime stage since the start."},
    {"bftkv_byzantine_actions_total", "counter", "action",
     "What a Byzantine test mode did (only with test_modes and --byzantine)."},
    {"bftkv_build_info", "gauge", "version, replica, backend, threads, durability, byzantine",
     "Always 1; the labels say what runs."},
    {"bftkv_metrics_snapshot_age_seconds", "gauge", NULL,
     "Age of the snapshot served: above 0.1 s the protocol thread did not answer the scrape in time."},
};

const double metrics_quantiles[METRICS_QUANTILE_COUNT] = {0.5, 0.9, 0.99, 0.999, 1.0};

static const char *const stage_names[METRICS_STAGE_MAX] = {
    "rx_queue", "auth", "step", "tx_queue", "flush", "wal",
};

static const char *const byz_names[METRICS_BYZ_COUNT] = {
#define METRICS_BYZ_NAME(name, value) name,
    METRICS_BYZ_ACTIONS(METRICS_BYZ_NAME)
#undef METRICS_BYZ_NAME
};

static const char *const extra_drop_names[] = {
#define METRICS_DROP_NAME(name, value) name,
    METRICS_DROP_REASONS(METRICS_DROP_NAME)
#undef METRICS_DROP_NAME
};
#define EXTRA_DROPS (sizeof extra_drop_names / sizeof extra_drop_names[0])

/* The decoder's reason names in lower case, made once (they are constants). */
static char wire_drop_lower[WIRE_DROP_COUNT][32];
static pthread_once_t wire_drop_once = PTHREAD_ONCE_INIT;

static void wire_drop_lower_init(void)
{
    for (int r = 0; r < WIRE_DROP_COUNT; r++) {
        const char *n = wire_drop_name((enum wire_drop)r);
        size_t i = 0;
        for (; n[i] != '\0' && i < sizeof wire_drop_lower[r] - 1; i++)
            wire_drop_lower[r][i] = (char)tolower((unsigned char)n[i]);
        wire_drop_lower[r][i] = '\0';
    }
}

const char *metrics_drop_reason(unsigned i)
{
    BFTKV_ASSERT(i < METRICS_DROP_COUNT);
    if (i < WIRE_DROP_COUNT) {
        pthread_once(&wire_drop_once, wire_drop_lower_init);
        return wire_drop_lower[i];
    }
    i -= WIRE_DROP_COUNT;
    if (i < EXTRA_DROPS)
        return extra_drop_names[i];
    i -= (unsigned)EXTRA_DROPS;
    /* the admin reasons after ADMIN_OK, without unknown_client */
    unsigned d = ADMIN_DROP_MALFORMED + i;
    if (d >= ADMIN_DROP_UNKNOWN_CLIENT)
        d++;
    return wire_admin_drop_name((enum admin_drop)d);
}

const char *metrics_byz_action(unsigned i)
{
    BFTKV_ASSERT(i < METRICS_BYZ_COUNT);
    return byz_names[i];
}

const char *metrics_stage_name(unsigned i)
{
    return i < METRICS_STAGE_MAX ? stage_names[i] : NULL;
}

/* ---- The exposition format -------------------------------------------------------- */

struct text_out {
    char *p;
    size_t cap, len;
    bool full;
};

static void out_put(struct text_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_put(struct text_out *o, const char *fmt, ...)
{
    if (o->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->full = true;
        return;
    }
    o->len += (size_t)n;
}

/* A label value: backslash, double quote and newline escaped (the format's rule). */
static void out_label_value(struct text_out *o, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\' || *v == '"')
            out_put(o, "\\%c", *v);
        else if (*v == '\n')
            out_put(o, "\\n");
        else
            out_put(o, "%c", *v);
    }
}

static void out_header(struct text_out *o, const char *name, const char *type, const char *help)
{
    /* Help texts of the table hold no backslash or newline (checked by the
     * reference test), so they go out as they are. */
    out_put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A value: integers exactly (counters stay below 2^53), others with 16 digits. */
static void out_value(struct text_out *o, double v)
{
    out_put(o, " %.16g\n", v);
}

/* name{partition="p",label="value"} or the subset that applies. */
static void out_series(struct text_out *o, const char *name, const char *suffix, const struct metrics_snapshot *m,
                       bool partition, const char *label, const char *value)
{
    out_put(o, "%s%s", name, suffix);
    if (!partition && label == NULL)
        return;
    out_put(o, "{");
    if (partition)
        out_put(o, "partition=\"%u\"%s", m->partition, label != NULL ? "," : "");
    if (label != NULL) {
        out_put(o, "%s=\"", label);
        out_label_value(o, value);
        out_put(o, "\"");
    }
    out_put(o, "}");
}

static bool scalar_present(const struct metrics_snapshot *m, enum metrics_when w)
{
    return w == METRICS_WHEN_ALWAYS || (w == METRICS_WHEN_WAL && m->has_wal) || (w == METRICS_WHEN_SNAP && m->has_snap);
}

/* Several snapshots (a deployment node's hosted replicas): every series
 * carries its partition, so none repeats another. */
static void render_stages(struct text_out *o, const struct metrics_snapshot *ms, unsigned count)
{
    bool part = count > 1;
    out_header(o, labelled[FAM_STAGE].name, labelled[FAM_STAGE].type, labelled[FAM_STAGE].help);
    for (unsigned k = 0; k < count; k++) {
        const struct metrics_snapshot *m = &ms[k];
        for (unsigned st = 0; st < METRICS_STAGE_MAX; st++) {
            const struct metrics_stage *g = &m->stage[st];
            if (!g->present)
                continue;
            for (unsigned q = 0; q < METRICS_QUANTILE_COUNT; q++) {
                out_put(o, "%s{", labelled[FAM_STAGE].name);
                if (part)
                    out_put(o, "partition=\"%u\",", m->partition);
                out_put(o, "stage=\"%s\",quantile=\"%g\"}", stage_names[st], metrics_quantiles[q]);
                out_value(o, g->quantile_s[q]);
            }
            out_series(o, labelled[FAM_STAGE].name, "_sum", m, part, "stage", stage_names[st]);
            out_value(o, g->sum_s);
            out_series(o, labelled[FAM_STAGE].name, "_count", m, part, "stage", stage_names[st]);
            out_value(o, (double)g->count);
        }
    }
    out_header(o, labelled[FAM_STAGE_MAX].name, labelled[FAM_STAGE_MAX].type, labelled[FAM_STAGE_MAX].help);
    for (unsigned k = 0; k < count; k++) {
        for (unsigned st = 0; st < METRICS_STAGE_MAX; st++) {
            if (!ms[k].stage[st].present)
                continue;
            out_series(o, labelled[FAM_STAGE_MAX].name, "", &ms[k], part, "stage", stage_names[st]);
            out_value(o, ms[k].stage[st].max_s);
        }
    }
}

size_t metrics_render(const struct metrics_snapshot *m, double age_s, char *buf, size_t cap)
{
    return metrics_render_set(m, 1, age_s, buf, cap);
}

size_t metrics_render_set(const struct metrics_snapshot *ms, unsigned count, double age_s, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0 || count == 0)
        return 0;
    struct text_out o = {.p = buf, .cap = cap, .len = 0, .full = false};
    static const char *const type_names[] = {"counter", "gauge", "summary"};
    bool part = count > 1; /* every series labelled with its partition */
    for (unsigned i = 0; i < METRICS_SCALAR_COUNT; i++) {
        const struct metrics_family *f = &scalars[i];
        bool header = false;
        for (unsigned k = 0; k < count; k++) {
            if (!scalar_present(&ms[k], f->when))
                continue;
            if (!header)
                out_header(&o, f->name, type_names[f->type], f->help);
            header = true;
            out_series(&o, f->name, "", &ms[k], part || f->scope == METRICS_SCOPE_PARTITION, NULL, NULL);
            out_value(&o, ms[k].scalar[i]);
        }
    }
    out_header(&o, labelled[FAM_DROPS].name, labelled[FAM_DROPS].type, labelled[FAM_DROPS].help);
    for (unsigned k = 0; k < count; k++) {
        for (unsigned r = 0; r < METRICS_DROP_COUNT; r++) {
            out_series(&o, labelled[FAM_DROPS].name, "", &ms[k], part, "reason", metrics_drop_reason(r));
            out_value(&o, (double)ms[k].drops[r]);
        }
    }
    render_stages(&o, ms, count);
    bool byz_header = false;
    for (unsigned k = 0; k < count; k++) {
        if (!ms[k].has_byz)
            continue;
        if (!byz_header)
            out_header(&o, labelled[FAM_BYZ].name, labelled[FAM_BYZ].type, labelled[FAM_BYZ].help);
        byz_header = true;
        for (unsigned a = 0; a < METRICS_BYZ_COUNT; a++) {
            out_series(&o, labelled[FAM_BYZ].name, "", &ms[k], part, "action", byz_names[a]);
            out_value(&o, (double)ms[k].byz[a]);
        }
    }
    const struct metrics_snapshot *m = &ms[0]; /* the process's: build, layout, mode */
    out_header(&o, labelled[FAM_BUILD].name, labelled[FAM_BUILD].type, labelled[FAM_BUILD].help);
    out_put(&o, "%s{version=\"%s\",replica=\"%u\",backend=\"", labelled[FAM_BUILD].name, BFTKV_VERSION_STRING,
            m->replica);
    out_label_value(&o, m->backend);
    out_put(&o, "\",threads=\"");
    out_label_value(&o, m->threads);
    out_put(&o, "\",durability=\"");
    out_label_value(&o, m->durability);
    out_put(&o, "\",byzantine=\"");
    out_label_value(&o, m->byzantine);
    out_put(&o, "\"} 1\n");
    out_header(&o, labelled[FAM_AGE].name, labelled[FAM_AGE].type, labelled[FAM_AGE].help);
    out_put(&o, "%s", labelled[FAM_AGE].name);
    out_value(&o, age_s);
    return o.full ? 0 : o.len;
}

/* ---- The reference ------------------------------------------------------------------- */

void metrics_reference_write(FILE *fp)
{
    static const char *const type_names[] = {"counter", "gauge", "summary"};
    static const char *const when_names[] = {"", " (durable replicas)", " (durable replicas)"};
    fprintf(fp, "| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for (unsigned i = 0; i < METRICS_SCALAR_COUNT; i++) {
        const struct metrics_family *f = &scalars[i];
        fprintf(fp, "| `%s` | %s | %s | %s%s |\n", f->name, type_names[f->type],
                f->scope == METRICS_SCOPE_PARTITION ? "partition" : "", f->help, when_names[f->when]);
    }
    for (unsigned i = 0; i < FAM_COUNT; i++)
        fprintf(fp, "| `%s` | %s | %s | %s |\n", labelled[i].name, labelled[i].type,
                labelled[i].label != NULL ? labelled[i].label : "", labelled[i].help);
    fprintf(fp, "\nValues of `reason`:");
    for (unsigned r = 0; r < METRICS_DROP_COUNT; r++)
        fprintf(fp, "%s `%s`", r == 0 ? "" : ",", metrics_drop_reason(r));
    fprintf(fp, ".\n\nValues of `stage`:");
    for (unsigned st = 0; st < METRICS_STAGE_MAX && stage_names[st] != NULL; st++)
        fprintf(fp, "%s `%s`", st == 0 ? "" : ",", stage_names[st]);
    fprintf(fp, " (rx_queue, auth and tx_queue in the staged layout only, wal on durable replicas only).\n"
                "\nValues of `action`:");
    for (unsigned a = 0; a < METRICS_BYZ_COUNT; a++)
        fprintf(fp, "%s `%s`", a == 0 ? "" : ",", byz_names[a]);
    fprintf(fp, ".\n");
}
