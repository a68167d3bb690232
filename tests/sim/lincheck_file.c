/* bftkv-lincheck: checks a bftkv-bench history file (bftkv-bench --history FILE)
 * for linearizability with the simulator's per-key checker (lincheck.h).
 *
 *     build/bftkv-lincheck FILE      exit 0 linearizable, 1 violation, 2 unusable
 *                                    input, 3 undecided (a key passed the budget)
 *
 * The format is docs/benchmarks.md "The history": an optional header object, then
 * one flat JSON object per operation. What each outcome means for the check:
 *
 *   ok       the operation took effect once, between invoke_ns and return_ns, and
 *            returned "result" (a GET's "value", or not_found)
 *   fail     it did not take effect: left out
 *   unknown  it may have taken effect at any point after invoke_ns, or never: a
 *            pending operation (a pending GET constrains nothing)
 *
 * Every key starts absent. A PUT's value names the write (16 hex digits); two PUTs
 * of one value make the history uncheckable (exit 2). A GET that read bytes no
 * write of the run produced ("invalid:...") or a value no PUT of the history wrote
 * is a violation: nothing could have written it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "tests/sim/lincheck.h"

#define LF_FIELDS_MAX 32u
#define LF_REPORT_OPS_MAX 400u /* ops of the failing key printed at most */

enum lf_exit { LF_OK = 0, LF_VIOLATION = 1, LF_BAD = 2, LF_UNDECIDED = 3 };

/* One field of a flat JSON object: a string (unescaped in place), a number or a
 * literal (true, false, null) as its text. */
struct lf_field {
    const char *name;
    const char *text;
    bool is_string;
};

struct lf_object {
    struct lf_field f[LF_FIELDS_MAX];
    uint32_t n;
};

/* ---- A flat JSON object, parsed in place ---------------------------------------------- */

static char *lf_skip(char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
        p++;
    }
    return p;
}

/* The string at *pp (after its opening quote): unescaped in place and terminated. */
static char *lf_string(char **pp)
{
    char *start = *pp, *w = *pp, *p = *pp;
    while (*p != '"') {
        if (*p == '\0') {
            return NULL;
        }
        if (*p == '\\') {
            p++;
            switch (*p) {
            case '"':
            case '\\':
            case '/':
                *w++ = *p++;
                continue;
            case 'n':
                *w++ = '\n', p++;
                continue;
            case 't':
                *w++ = '\t', p++;
                continue;
            default:
                return NULL; /* the bench writes no other escapes */
            }
        }
        *w++ = *p++;
    }
    *pp = p + 1;
    *w = '\0';
    return start;
}

static bool lf_parse(char *line, struct lf_object *o)
{
    o->n = 0;
    char *p = lf_skip(line);
    if (*p++ != '{') {
        return false;
    }
    p = lf_skip(p);
    if (*p == '}') {
        return true;
    }
    for (;;) {
        if (*p++ != '"' || o->n >= LF_FIELDS_MAX) {
            return false;
        }
        struct lf_field *f = &o->f[o->n++];
        if ((f->name = lf_string(&p)) == NULL) {
            return false;
        }
        p = lf_skip(p);
        if (*p++ != ':') {
            return false;
        }
        p = lf_skip(p);
        f->is_string = *p == '"';
        if (f->is_string) {
            p++;
            if ((f->text = lf_string(&p)) == NULL) {
                return false;
            }
        } else {
            f->text = p;
            while (*p != '\0' && *p != ',' && *p != '}' && *p != ' ') {
                p++;
            }
            if (p == f->text) {
                return false;
            }
        }
        char *end = p;
        p = lf_skip(p);
        char c = *p;
        if (!f->is_string) {
            *end = '\0'; /* after reading the separator */
        }
        if (c == '}') {
            return *lf_skip(p + 1) == '\0';
        }
        if (c != ',') {
            return false;
        }
        p = lf_skip(p + 1);
    }
}

static const struct lf_field *lf_get(const struct lf_object *o, const char *name)
{
    for (uint32_t i = 0; i < o->n; i++) {
        if (strcmp(o->f[i].name, name) == 0) {
            return &o->f[i];
        }
    }
    return NULL;
}

static bool lf_u64(const struct lf_field *f, uint64_t *out)
{
    if (f == NULL || f->is_string || f->text[0] < '0' || f->text[0] > '9') {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(f->text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool lf_is(const struct lf_field *f, const char *s)
{
    return f != NULL && f->is_string && strcmp(f->text, s) == 0;
}

static bool lf_hex64(const char *s, uint64_t *out)
{
    if (strlen(s) != 16) {
        return false;
    }
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return false;
        }
        x = x << 4 | (uint64_t)d;
    }
    *out = x;
    return true;
}

/* ---- Names: keys (string -> dense id) and written values (a set) ------------------------ */

struct lf_names {
    char **name;     /* [count] */
    uint64_t *table; /* id + 1, 0 = empty; open addressing */
    uint64_t count, cap, size;
};

static uint64_t lf_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    }
    return h;
}

/* The id of name, added if new; UINT64_MAX when out of memory. */
static uint64_t lf_names_id(struct lf_names *t, const char *name)
{
    if (2u * (t->count + 1u) > t->size) {
        uint64_t size = t->size ? 2u * t->size : 1024u;
        uint64_t *table = calloc(size, sizeof *table);
        char **names = realloc(t->name, (size / 2u) * sizeof *names);
        if (table == NULL || names == NULL) {
            free(table);
            if (names != NULL) {
                t->name = names;
            }
            return UINT64_MAX;
        }
        t->name = names;
        for (uint64_t i = 0; i < t->count; i++) {
            uint64_t j = lf_hash(names[i]) & (size - 1u);
            while (table[j] != 0) {
                j = (j + 1u) & (size - 1u);
            }
            table[j] = i + 1u;
        }
        free(t->table);
        t->table = table;
        t->size = size;
    }
    uint64_t j = lf_hash(name) & (t->size - 1u);
    while (t->table[j] != 0) {
        if (strcmp(t->name[t->table[j] - 1u], name) == 0) {
            return t->table[j] - 1u;
        }
        j = (j + 1u) & (t->size - 1u);
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return UINT64_MAX;
    }
    t->name[t->count] = copy;
    t->table[j] = ++t->count;
    return t->count - 1u;
}

static void lf_names_free(struct lf_names *t)
{
    for (uint64_t i = 0; i < t->count; i++) {
        free(t->name[i]);
    }
    free(t->name);
    free(t->table);
}

/* A set of 64-bit values (the PUTs' write ids): open addressing, 0 = empty. */
struct lf_set {
    uint64_t *v;
    uint64_t count, size;
};

static uint64_t lf_mix(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static bool lf_set_has(const struct lf_set *s, uint64_t v)
{
    if (s->size == 0) {
        return false;
    }
    for (uint64_t j = lf_mix(v) & (s->size - 1u); s->v[j] != 0; j = (j + 1u) & (s->size - 1u)) {
        if (s->v[j] == v) {
            return true;
        }
    }
    return false;
}

/* Add v (!= 0): 1 added, 0 already there, -1 out of memory. */
static int lf_set_add(struct lf_set *s, uint64_t v)
{
    if (lf_set_has(s, v)) {
        return 0;
    }
    if (2u * (s->count + 1u) > s->size) {
        uint64_t size = s->size ? 2u * s->size : 1024u;
        uint64_t *t = calloc(size, sizeof *t);
        if (t == NULL) {
            return -1;
        }
        for (uint64_t i = 0; i < s->size; i++) {
            if (s->v[i] != 0) {
                uint64_t j = lf_mix(s->v[i]) & (size - 1u);
                while (t[j] != 0) {
                    j = (j + 1u) & (size - 1u);
                }
                t[j] = s->v[i];
            }
        }
        free(s->v);
        s->v = t;
        s->size = size;
    }
    uint64_t j = lf_mix(v) & (s->size - 1u);
    while (s->v[j] != 0) {
        j = (j + 1u) & (s->size - 1u);
    }
    s->v[j] = v;
    s->count++;
    return 1;
}

/* ---- Reading the history ------------------------------------------------------------------ */

struct lf_history {
    struct lincheck *lc;
    struct lf_names keys;
    struct lf_set written;
    uint64_t lines, ok, fail, unknown, invalid_reads;
    uint64_t next_invalid; /* ids for reads of invalid bytes: counting down from UINT64_MAX */
    bool header; /* a header with the run's seed */
    uint64_t seed;
};

static int lf_bad(const char *path, uint64_t line, const char *what)
{
    fprintf(stderr, "bftkv-lincheck: %s:%" PRIu64 ": %s\n", path, line, what);
    return LF_BAD;
}

/* An id that no PUT wrote, for a GET that read no value of the run. */
static uint64_t lf_invalid_id(struct lf_history *h)
{
    while (lf_set_has(&h->written, h->next_invalid)) {
        h->next_invalid--;
    }
    return h->next_invalid--;
}

/* One operation line into h->lc (or counted and left out). */
static int lf_op(struct lf_history *h, const struct lf_object *o, const char *path, uint64_t line)
{
    const struct lf_field *op = lf_get(o, "op"), *key = lf_get(o, "key"), *val = lf_get(o, "value");
    const struct lf_field *outcome = lf_get(o, "outcome"), *result = lf_get(o, "result");
    struct lincheck_op x;
    memset(&x, 0, sizeof x);
    x.kind = lf_is(op, "put") ? LINCHECK_PUT : lf_is(op, "get") ? LINCHECK_GET : lf_is(op, "del") ? LINCHECK_DEL : 0;
    if (x.kind == 0) {
        return lf_bad(path, line, "\"op\" is not put, get or del");
    }
    if (key == NULL || !key->is_string) {
        return lf_bad(path, line, "no \"key\" string");
    }
    uint64_t client = 0;
    if (lf_u64(lf_get(o, "client"), &client)) {
        x.client = (uint32_t)client;
    }
    if (!lf_u64(lf_get(o, "invoke_ns"), &x.invoke_time)) {
        return lf_bad(path, line, "no \"invoke_ns\" number");
    }
    if (x.kind == LINCHECK_PUT) {
        if (val == NULL || !val->is_string || !lf_hex64(val->text, &x.value) || x.value == 0) {
            return lf_bad(path, line, "a put's \"value\" must be 16 hex digits, not all zero");
        }
        int added = lf_set_add(&h->written, x.value);
        if (added < 0) {
            return lf_bad(path, line, "out of memory");
        }
        if (added == 0) {
            return lf_bad(path, line, "two puts write this value: values must be unique to check a history");
        }
    }
    if (lf_is(outcome, "fail")) {
        h->fail++;
        return 0; /* it did not take effect */
    }
    bool ok = lf_is(outcome, "ok");
    if (!ok && !lf_is(outcome, "unknown")) {
        return lf_bad(path, line, "\"outcome\" is not ok, fail or unknown");
    }
    if (!ok) {
        h->unknown++;
        x.return_time = LINCHECK_PENDING;
    } else {
        h->ok++;
        if (!lf_u64(lf_get(o, "return_ns"), &x.return_time)) {
            return lf_bad(path, line, "an ok operation needs a \"return_ns\" number");
        }
        bool found = lf_is(result, "ok");
        if (!found && !lf_is(result, "not_found")) {
            return lf_bad(path, line, "an ok operation's \"result\" is ok or not_found");
        }
        if (x.kind == LINCHECK_PUT && !found) {
            return lf_bad(path, line, "a put returns ok");
        }
        x.status = found ? 0 : BFTKV_E_NOT_FOUND;
        if (x.kind == LINCHECK_GET && found) {
            if (val == NULL || !val->is_string) {
                return lf_bad(path, line, "a get that found its key needs a \"value\" string");
            }
            if (strncmp(val->text, "invalid:", 8) == 0) {
                x.value = lf_invalid_id(h);
                h->invalid_reads++;
            } else if (!lf_hex64(val->text, &x.value) || x.value == 0) {
                return lf_bad(path, line, "a get's \"value\" is 16 hex digits (not all zero) or invalid:...");
            }
        }
    }
    uint64_t k = lf_names_id(&h->keys, key->text);
    if (k == UINT64_MAX) {
        return lf_bad(path, line, "out of memory");
    }
    x.key = k;
    int rc = lincheck_add(h->lc, &x);
    if (rc != 0) {
        return lf_bad(path, line, rc == BFTKV_E_FULL ? "more operations than lines?" : "malformed operation "
                                                                                       "(return before invoke?)");
    }
    return 0;
}

static int lf_read(struct lf_history *h, const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "bftkv-lincheck: %s: %s\n", path, strerror(errno));
        return LF_BAD;
    }
    char *line = NULL;
    size_t cap = 0;
    uint64_t lines = 0;
    while (getline(&line, &cap, fp) >= 0) {
        lines++;
    }
    if (lines > UINT32_MAX - 1u) {
        fclose(fp);
        free(line);
        return lf_bad(path, lines, "too many lines");
    }
    h->lc = lincheck_create((uint32_t)lines);
    if (h->lc == NULL) {
        fclose(fp);
        free(line);
        return lf_bad(path, 0, "out of memory");
    }
    rewind(fp);
    int rc = 0;
    struct lf_object o;
    for (uint64_t n = 1; rc == 0 && getline(&line, &cap, fp) >= 0; n++) {
        if (*lf_skip(line) == '\0') {
            continue;
        }
        if (!lf_parse(line, &o)) {
            rc = lf_bad(path, n, "not a flat JSON object");
            break;
        }
        if (lf_get(&o, "bftkv_bench_history") != NULL) {
            uint64_t version = 0;
            if (n != 1 || !lf_u64(lf_get(&o, "bftkv_bench_history"), &version) || version != 1) {
                rc = lf_bad(path, n, "a header line comes first and has \"bftkv_bench_history\":1");
            }
            h->header = lf_u64(lf_get(&o, "seed"), &h->seed);
            continue;
        }
        rc = lf_op(h, &o, path, n);
        h->lines++;
    }
    free(line);
    fclose(fp);
    return rc;
}

/* ---- The report ------------------------------------------------------------------------------ */

struct lf_sorted {
    uint64_t time;
    uint32_t id;
};

static int lf_sorted_cmp(const void *a, const void *b)
{
    const struct lf_sorted *x = a, *y = b;
    if (x->time != y->time) {
        return x->time < y->time ? -1 : 1;
    }
    return x->id < y->id ? -1 : x->id > y->id;
}

/* The ops of the failing key by invocation, times relative to the first. */
static void lf_print_key(const struct lf_history *h, uint64_t key, uint32_t mark)
{
    uint32_t n = lincheck_count(h->lc), k = 0;
    struct lf_sorted *s = malloc(((size_t)n + 1u) * sizeof *s);
    if (s == NULL) {
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct lincheck_op *op = lincheck_get(h->lc, i);
        if (op->key == key) {
            s[k++] = (struct lf_sorted){.time = op->invoke_time, .id = i};
        }
    }
    qsort(s, k, sizeof *s, lf_sorted_cmp);
    uint64_t t0 = k > 0 ? s[0].time : 0;
    fprintf(stderr, "key %s: %u operations (checked ones; fail outcomes left out), by invocation, ns from the "
                    "first:\n", h->keys.name[key], k);
    for (uint32_t i = 0; i < k && i < LF_REPORT_OPS_MAX; i++) {
        const struct lincheck_op *op = lincheck_get(h->lc, s[i].id);
        const char *kind = op->kind == LINCHECK_PUT ? "put" : op->kind == LINCHECK_GET ? "get" : "del";
        fprintf(stderr, "%s client %u %s", s[i].id == mark ? "=>" : "  ", op->client, kind);
        if (op->kind == LINCHECK_PUT) {
            fprintf(stderr, " %016" PRIx64, op->value);
        }
        if (op->return_time == LINCHECK_PENDING) {
            fprintf(stderr, " [%" PRIu64 ", unknown outcome]\n", op->invoke_time - t0);
            continue;
        }
        fprintf(stderr, " [%" PRIu64 ", %" PRIu64 "] -> ", op->invoke_time - t0, op->return_time - t0);
        if (op->kind == LINCHECK_GET && op->status == 0) {
            bool written = lf_set_has(&h->written, op->value);
            fprintf(stderr, "%016" PRIx64 "%s\n", op->value, written ? "" : " (no put of this history wrote it)");
        } else {
            fprintf(stderr, "%s\n", op->status == 0 ? "ok" : "not_found");
        }
    }
    if (k > LF_REPORT_OPS_MAX) {
        fprintf(stderr, "  ... %u more\n", k - LF_REPORT_OPS_MAX);
    }
    free(s);
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bftkv-lincheck FILE   (a bftkv-bench --history file)\n"
                        "exit 0 linearizable, 1 violation, 2 unusable input, 3 undecided (budget)\n");
        return LF_BAD;
    }
    const char *path = argv[1];
    struct lf_history h;
    memset(&h, 0, sizeof h);
    h.next_invalid = UINT64_MAX;
    int rc = lf_read(&h, path);
    if (rc == 0) {
        struct lincheck_result res;
        int v = lincheck_check(h.lc, &res);
        if (v < 0) {
            fprintf(stderr, "bftkv-lincheck: %s\n", bftkv_strerror(v));
            rc = LF_BAD;
        } else {
            printf("bftkv-lincheck %s", path);
            if (h.header) {
                printf(" (seed %" PRIu64 ")", h.seed);
            }
            printf(": %" PRIu64 " operations (ok %" PRIu64 ", fail %" PRIu64 ", unknown %" PRIu64 ") on %" PRIu64
                   " keys, %" PRIu64 " reads of invalid bytes: ",
                   h.lines, h.ok, h.fail, h.unknown, h.keys.count, h.invalid_reads);
            if (v == LINCHECK_OK) {
                printf("linearizable\n");
                rc = LF_OK;
            } else if (v == LINCHECK_VIOLATION) {
                printf("NOT linearizable: key %s (%u keys violate)\n", h.keys.name[res.key], res.keys_violating);
                fflush(stdout);
                lf_print_key(&h, res.key, res.stuck_op);
                if (h.invalid_reads > 0) {
                    fprintf(stderr, "bftkv-lincheck: %" PRIu64 " GETs read bytes that no write of this run "
                                    "produced: was the store fresh? (every key is taken to start absent)\n",
                            h.invalid_reads);
                }
                rc = LF_VIOLATION;
            } else {
                printf("undecided: key %s: %s\n", h.keys.name[res.key], res.reason);
                rc = LF_UNDECIDED;
            }
        }
    }
    lincheck_destroy(h.lc);
    lf_names_free(&h.keys);
    free(h.written.v);
    return rc;
}
