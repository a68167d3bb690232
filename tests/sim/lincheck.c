/* Per-key linearizability checking of key-value histories (see lincheck.h).
 *
 * For one key the history becomes a time-ordered doubly linked list of call and
 * return entries (Wing & Gong 1993). The search walks the list from its head: at a
 * call it tries to linearize that op now (apply it to the register; a GET or DEL
 * must agree with the current value); if that succeeds and the resulting
 * configuration (bitset of linearized ops, register value) is new, the op's two
 * entries are lifted out of the list and the walk restarts from the head. Reaching
 * a return entry means that op's linearization point would be after its return: the
 * search backtracks (pops the last linearized op, puts its entries back, and tries
 * the next call after it). Lowe's memoization (2017) stores every configuration
 * reached, so no configuration is expanded twice: the cost is bounded by the number
 * of distinct configurations, not of interleavings.
 *
 * Pending ops return "at infinity": their return entries sort last, so when the
 * walk reaches one, every completed op has been linearized and the remaining
 * pending ops simply never took effect — success.
 *
 * The configuration hash is incremental: a Zobrist hash of the linearized set
 * (XOR of a fixed pseudo-random word per op) mixed with the register value, so a
 * step costs O(1) except on a hash hit, where the bitsets are compared.
 */
#include "tests/sim/lincheck.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/mix64.h"

/* Memory for the memo of one key: states * (8 * ceil(m / 64) + 16) bytes for a key of
 * m ops, plus the table (8 bytes per state). Past this the key is "unknown". */
#define LINCHECK_MEMO_BYTES_MAX (1ull << 30)

struct lincheck {
    struct lincheck_op *ops;
    uint32_t count;
    uint32_t cap;
    uint64_t max_states;
    uint64_t max_steps;
};

/* ---- Recording ------------------------------------------------------------------ */

struct lincheck *lincheck_create(uint32_t capacity)
{
    struct lincheck *lc = calloc(1, sizeof *lc);
    if (lc == NULL) {
        return NULL;
    }
    lc->ops = calloc(capacity > 0 ? capacity : 1u, sizeof *lc->ops);
    if (lc->ops == NULL) {
        free(lc);
        return NULL;
    }
    lc->cap = capacity;
    lc->max_states = LINCHECK_DEFAULT_MAX_STATES;
    lc->max_steps = LINCHECK_DEFAULT_MAX_STEPS;
    return lc;
}

void lincheck_destroy(struct lincheck *lc)
{
    if (lc == NULL) {
        return;
    }
    free(lc->ops);
    free(lc);
}

void lincheck_reset(struct lincheck *lc)
{
    lc->count = 0;
}

void lincheck_set_budget(struct lincheck *lc, uint64_t max_states, uint64_t max_steps)
{
    lc->max_states = max_states > 0 ? max_states : 1;
    if (lc->max_states > UINT32_MAX - 1u) {
        lc->max_states = UINT32_MAX - 1u; /* the memo table stores 32-bit record indices */
    }
    lc->max_steps = max_steps > 0 ? max_steps : 1;
}

uint32_t lincheck_count(const struct lincheck *lc)
{
    return lc->count;
}

const struct lincheck_op *lincheck_get(const struct lincheck *lc, uint32_t id)
{
    return id < lc->count ? &lc->ops[id] : NULL;
}

static bool op_valid(const struct lincheck_op *op)
{
    if (op->kind != LINCHECK_PUT && op->kind != LINCHECK_GET && op->kind != LINCHECK_DEL) {
        return false;
    }
    if (op->kind == LINCHECK_PUT && op->value == 0) {
        return false;
    }
    if (op->return_time == LINCHECK_PENDING) {
        return true;
    }
    if (op->return_time < op->invoke_time) {
        return false;
    }
    if (op->status != 0 && op->status != BFTKV_E_NOT_FOUND) {
        return false;
    }
    switch (op->kind) {
    case LINCHECK_PUT:
        return op->status == 0;
    case LINCHECK_GET:
        return (op->status == 0) == (op->value != 0);
    default:
        return true;
    }
}

int lincheck_add(struct lincheck *lc, const struct lincheck_op *op)
{
    if (!op_valid(op)) {
        return BFTKV_E_INVAL;
    }
    if (lc->count >= lc->cap) {
        return BFTKV_E_FULL;
    }
    lc->ops[lc->count++] = *op;
    return 0;
}

int lincheck_invoke(struct lincheck *lc, uint64_t key, uint8_t kind, uint64_t value, uint64_t invoke_time,
                    uint32_t client, uint32_t *id)
{
    struct lincheck_op op = {
        .key = key,
        .kind = kind,
        .status = 0,
        .value = kind == LINCHECK_PUT ? value : 0,
        .invoke_time = invoke_time,
        .return_time = LINCHECK_PENDING,
        .client = client,
    };
    uint32_t at = lc->count;
    int rc = lincheck_add(lc, &op);
    if (rc == 0 && id != NULL) {
        *id = at;
    }
    return rc;
}

int lincheck_complete(struct lincheck *lc, uint32_t id, int status, uint64_t value_read, uint64_t return_time)
{
    if (id >= lc->count || lc->ops[id].return_time != LINCHECK_PENDING || return_time == LINCHECK_PENDING) {
        return BFTKV_E_INVAL;
    }
    struct lincheck_op op = lc->ops[id];
    op.status = status;
    op.return_time = return_time;
    if (op.kind == LINCHECK_GET) {
        op.value = value_read;
    }
    if (!op_valid(&op)) {
        return BFTKV_E_INVAL;
    }
    lc->ops[id] = op;
    return 0;
}

/* ---- The search for one key ----------------------------------------------------- */

/* Scratch for one key of m ops (after dropping pending GETs). Entries 0..2m-1 are
 * the calls and returns; 2m is the head sentinel, 2m+1 the tail sentinel. */
struct search {
    const struct lincheck_op **op; /* [m] */
    uint32_t *id;                  /* [m] op ids, for the report */
    uint32_t m;
    uint32_t words;                /* bitset words: ceil(m / 64) */
    /* entries */
    uint32_t *next, *prev;         /* [2m+2] */
    uint32_t *local;               /* [2m] op of the entry */
    uint8_t *is_call;              /* [2m] */
    uint32_t *match;               /* [2m] call -> its return */
    /* the DFS */
    uint64_t *lin;                 /* [words] */
    uint32_t *stack_entry;         /* [m] */
    uint64_t *stack_state;         /* [m] */
    /* memo: records of (words bitset + value) in slab, open-addressed table */
    uint64_t *slab;
    uint64_t *rec_hash;
    uint64_t nrec, rec_cap;
    uint32_t *table;               /* record index + 1, 0 = empty */
    uint64_t table_size;           /* power of two */
};

struct entry_sort {
    uint64_t time;
    uint32_t is_return; /* calls before returns at equal times: overlap */
    uint32_t local;
};

static int entry_cmp(const void *a, const void *b)
{
    const struct entry_sort *x = a, *y = b;
    if (x->time != y->time) {
        return x->time < y->time ? -1 : 1;
    }
    if (x->is_return != y->is_return) {
        return x->is_return < y->is_return ? -1 : 1;
    }
    return x->local < y->local ? -1 : (x->local > y->local ? 1 : 0);
}

static uint64_t mix64(uint64_t x)
{
    return bftkv_mix64(x);
}

static uint64_t config_hash(uint64_t zobrist, uint64_t value)
{
    return zobrist ^ mix64(value ^ 0xA5A5A5A55A5A5A5Aull);
}

static bool memo_grow(struct search *s, uint64_t max_states)
{
    uint64_t rec_words = (uint64_t)s->words + 1u;
    uint64_t new_cap = s->rec_cap == 0 ? 1024u : s->rec_cap * 2u;
    if (new_cap > max_states) {
        new_cap = max_states;
    }
    if (new_cap * rec_words * sizeof(uint64_t) > LINCHECK_MEMO_BYTES_MAX) {
        new_cap = LINCHECK_MEMO_BYTES_MAX / (rec_words * sizeof(uint64_t));
    }
    if (new_cap <= s->rec_cap) {
        return false;
    }
    uint64_t *slab = realloc(s->slab, (size_t)(new_cap * rec_words * sizeof *slab));
    if (slab == NULL) {
        return false;
    }
    s->slab = slab;
    uint64_t *rh = realloc(s->rec_hash, (size_t)(new_cap * sizeof *rh));
    if (rh == NULL) {
        return false;
    }
    s->rec_hash = rh;
    s->rec_cap = new_cap;
    /* table at most half full */
    uint64_t size = s->table_size == 0 ? 2048u : s->table_size;
    while (size < new_cap * 2u) {
        size *= 2u;
    }
    if (size != s->table_size) {
        uint32_t *t = calloc((size_t)size, sizeof *t);
        if (t == NULL) {
            return false;
        }
        for (uint64_t r = 0; r < s->nrec; r++) {
            uint64_t i = s->rec_hash[r] & (size - 1u);
            while (t[i] != 0) {
                i = (i + 1u) & (size - 1u);
            }
            t[i] = (uint32_t)(r + 1u);
        }
        free(s->table);
        s->table = t;
        s->table_size = size;
    }
    return true;
}

enum memo_result { MEMO_NEW, MEMO_SEEN, MEMO_FULL };

/* Insert the configuration (s->lin, value) unless present. */
static enum memo_result memo_insert(struct search *s, uint64_t hash, uint64_t value, uint64_t max_states)
{
    uint64_t rec_words = (uint64_t)s->words + 1u;
    if (s->table_size > 0) {
        uint64_t i = hash & (s->table_size - 1u);
        while (s->table[i] != 0) {
            uint64_t r = s->table[i] - 1u;
            const uint64_t *rec = s->slab + r * rec_words;
            if (s->rec_hash[r] == hash && rec[0] == value
                && memcmp(rec + 1, s->lin, (size_t)s->words * sizeof *s->lin) == 0) {
                return MEMO_SEEN;
            }
            i = (i + 1u) & (s->table_size - 1u);
        }
    }
    if (s->nrec >= s->rec_cap && !memo_grow(s, max_states)) {
        return MEMO_FULL;
    }
    uint64_t r = s->nrec++;
    uint64_t *rec = s->slab + r * rec_words;
    rec[0] = value;
    memcpy(rec + 1, s->lin, (size_t)s->words * sizeof *s->lin);
    s->rec_hash[r] = hash;
    uint64_t i = hash & (s->table_size - 1u);
    while (s->table[i] != 0) {
        i = (i + 1u) & (s->table_size - 1u);
    }
    s->table[i] = (uint32_t)(r + 1u);
    return MEMO_NEW;
}

/* The sequential specification: apply op to the register value. */
static bool register_apply(uint64_t value, const struct lincheck_op *op, uint64_t *out)
{
    bool pending = op->return_time == LINCHECK_PENDING;
    switch (op->kind) {
    case LINCHECK_PUT:
        *out = op->value;
        return true;
    case LINCHECK_GET:
        *out = value;
        return value == op->value;
    default: /* DEL: OK iff present */
        *out = 0;
        if (pending) {
            return true;
        }
        return op->status == 0 ? value != 0 : value == 0;
    }
}

static void list_lift(struct search *s, uint32_t e)
{
    uint32_t r = s->match[e];
    s->next[s->prev[e]] = s->next[e];
    s->prev[s->next[e]] = s->prev[e];
    s->next[s->prev[r]] = s->next[r];
    s->prev[s->next[r]] = s->prev[r];
}

static void list_unlift(struct search *s, uint32_t e)
{
    uint32_t r = s->match[e];
    s->next[s->prev[r]] = r;
    s->prev[s->next[r]] = r;
    s->next[s->prev[e]] = e;
    s->prev[s->next[e]] = e;
}

struct key_outcome {
    int verdict;
    uint32_t deepest;
    uint32_t stuck_op;
    const char *reason;
};

static void search_run(struct search *s, uint64_t max_states, uint64_t max_steps, struct key_outcome *o)
{
    uint32_t m = s->m;
    uint32_t head = 2u * m, tail = 2u * m + 1u;
    uint64_t value = 0; /* absent */
    uint64_t zob = 0;
    uint32_t depth = 0;
    uint64_t steps = 0;
    bool blocked_seen = false;
    uint32_t stuck_depth = 0;

    o->deepest = 0;
    o->stuck_op = UINT32_MAX;
    memset(s->lin, 0, (size_t)s->words * sizeof *s->lin);

    uint32_t e = s->next[head];
    for (;;) {
        if (e == tail) {
            o->verdict = LINCHECK_OK;
            return;
        }
        if (++steps > max_steps) {
            o->verdict = LINCHECK_UNKNOWN;
            o->reason = "search step budget exhausted";
            return;
        }
        uint32_t l = s->local[e];
        if (s->is_call[e]) {
            uint64_t nv;
            if (register_apply(value, s->op[l], &nv)) {
                s->lin[l / 64u] |= 1ull << (l % 64u);
                uint64_t nz = zob ^ mix64(l);
                enum memo_result mr = memo_insert(s, config_hash(nz, nv), nv, max_states);
                if (mr == MEMO_NEW) {
                    s->stack_entry[depth] = e;
                    s->stack_state[depth] = value;
                    depth++;
                    if (depth > o->deepest) {
                        o->deepest = depth;
                    }
                    value = nv;
                    zob = nz;
                    list_lift(s, e);
                    e = s->next[head];
                    continue;
                }
                s->lin[l / 64u] &= ~(1ull << (l % 64u));
                if (mr == MEMO_FULL) {
                    o->verdict = LINCHECK_UNKNOWN;
                    o->reason = "configuration budget exhausted";
                    return;
                }
            }
            e = s->next[e];
            continue;
        }
        /* A return entry whose call is still in the list. */
        if (s->op[l]->return_time == LINCHECK_PENDING) {
            o->verdict = LINCHECK_OK; /* only pending ops are left: they never took effect */
            return;
        }
        if (!blocked_seen || depth > stuck_depth) {
            o->stuck_op = s->id[l]; /* the earliest-returning op left at the deepest point */
            stuck_depth = depth;
            blocked_seen = true;
        }
        if (depth == 0) {
            o->verdict = LINCHECK_VIOLATION;
            o->reason = "no linearization: some op can be placed neither before nor after the others";
            return;
        }
        depth--;
        uint32_t back = s->stack_entry[depth];
        uint32_t bl = s->local[back];
        value = s->stack_state[depth];
        zob ^= mix64(bl);
        s->lin[bl / 64u] &= ~(1ull << (bl % 64u));
        list_unlift(s, back);
        e = s->next[back];
    }
}

/* Check the ops ids[0..k) (all of one key). */
static int key_check(const struct lincheck *lc, const uint32_t *ids, uint32_t k, struct key_outcome *o,
                     uint64_t *states)
{
    struct search s;
    memset(&s, 0, sizeof s);
    int rc = BFTKV_E_NOMEM;
    struct entry_sort *es = NULL;

    o->verdict = LINCHECK_OK;
    o->deepest = 0;
    o->stuck_op = UINT32_MAX;
    o->reason = "linearizable";

    s.op = malloc((k + 1u) * sizeof *s.op);
    s.id = malloc((k + 1u) * sizeof *s.id);
    if (s.op == NULL || s.id == NULL) {
        goto out;
    }
    for (uint32_t i = 0; i < k; i++) {
        const struct lincheck_op *op = &lc->ops[ids[i]];
        if (op->kind == LINCHECK_GET && op->return_time == LINCHECK_PENDING) {
            continue; /* constrains nothing */
        }
        s.op[s.m] = op;
        s.id[s.m] = ids[i];
        s.m++;
    }
    if (s.m == 0) {
        rc = 0;
        goto out;
    }
    uint32_t m = s.m;
    s.words = (m + 63u) / 64u;
    s.next = malloc((2u * m + 2u) * sizeof *s.next);
    s.prev = malloc((2u * m + 2u) * sizeof *s.prev);
    s.local = malloc(2u * m * sizeof *s.local);
    s.is_call = malloc(2u * m * sizeof *s.is_call);
    s.match = malloc(2u * m * sizeof *s.match);
    s.lin = malloc(s.words * sizeof *s.lin);
    s.stack_entry = malloc(m * sizeof *s.stack_entry);
    s.stack_state = malloc(m * sizeof *s.stack_state);
    es = malloc(2u * m * sizeof *es);
    if (s.next == NULL || s.prev == NULL || s.local == NULL || s.is_call == NULL || s.match == NULL
        || s.lin == NULL || s.stack_entry == NULL || s.stack_state == NULL || es == NULL) {
        goto out;
    }
    for (uint32_t i = 0; i < m; i++) {
        es[2u * i] = (struct entry_sort){ .time = s.op[i]->invoke_time, .is_return = 0, .local = i };
        es[2u * i + 1u] = (struct entry_sort){ .time = s.op[i]->return_time, .is_return = 1, .local = i };
    }
    qsort(es, 2u * m, sizeof *es, entry_cmp);
    uint32_t *call_at = s.stack_entry; /* scratch: entry index of each op's call */
    for (uint32_t j = 0; j < 2u * m; j++) {
        s.local[j] = es[j].local;
        s.is_call[j] = es[j].is_return == 0;
        if (s.is_call[j]) {
            call_at[es[j].local] = j;
        } else {
            s.match[call_at[es[j].local]] = j;
        }
    }
    uint32_t head = 2u * m, tail = 2u * m + 1u;
    s.next[head] = 0;
    s.prev[0] = head;
    for (uint32_t j = 0; j + 1u < 2u * m; j++) {
        s.next[j] = j + 1u;
        s.prev[j + 1u] = j;
    }
    s.next[2u * m - 1u] = tail;
    s.prev[tail] = 2u * m - 1u;
    s.next[tail] = tail;
    s.prev[head] = head;

    search_run(&s, lc->max_states, lc->max_steps, o);
    *states += s.nrec;
    rc = 0;
out:
    free(es);
    free(s.op);
    free(s.id);
    free(s.next);
    free(s.prev);
    free(s.local);
    free(s.is_call);
    free(s.match);
    free(s.lin);
    free(s.stack_entry);
    free(s.stack_state);
    free(s.slab);
    free(s.rec_hash);
    free(s.table);
    return rc;
}

/* ---- Whole histories -------------------------------------------------------------- */

struct op_sort {
    uint64_t key;
    uint64_t time;
    uint32_t id;
};

static int op_sort_cmp(const void *a, const void *b)
{
    const struct op_sort *x = a, *y = b;
    if (x->key != y->key) {
        return x->key < y->key ? -1 : 1;
    }
    if (x->time != y->time) {
        return x->time < y->time ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

static void result_note(struct lincheck_result *r, uint64_t key, uint32_t k, const struct key_outcome *o)
{
    r->keys_checked++;
    if (o->verdict == LINCHECK_VIOLATION) {
        r->keys_violating++;
        if (r->verdict != LINCHECK_VIOLATION) {
            r->verdict = LINCHECK_VIOLATION;
            r->key = key;
            r->key_ops = k;
            r->deepest = o->deepest;
            r->stuck_op = o->stuck_op;
            r->reason = o->reason;
        }
    } else if (o->verdict == LINCHECK_UNKNOWN) {
        r->keys_unknown++;
        if (r->verdict == LINCHECK_OK) {
            r->verdict = LINCHECK_UNKNOWN;
            r->key = key;
            r->key_ops = k;
            r->deepest = o->deepest;
            r->stuck_op = UINT32_MAX;
            r->reason = o->reason;
        }
    }
}

static int check_filtered(struct lincheck *lc, bool one_key, uint64_t only_key, struct lincheck_result *res)
{
    struct lincheck_result local;
    struct lincheck_result *r = res != NULL ? res : &local;
    memset(r, 0, sizeof *r);
    r->verdict = LINCHECK_OK;
    r->stuck_op = UINT32_MAX;
    r->reason = "linearizable";

    struct op_sort *os = malloc(((size_t)lc->count + 1u) * sizeof *os);
    uint32_t *ids = malloc(((size_t)lc->count + 1u) * sizeof *ids);
    if (os == NULL || ids == NULL) {
        free(os);
        free(ids);
        return BFTKV_E_NOMEM;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < lc->count; i++) {
        if (one_key && lc->ops[i].key != only_key) {
            continue;
        }
        os[n++] = (struct op_sort){ .key = lc->ops[i].key, .time = lc->ops[i].invoke_time, .id = i };
    }
    qsort(os, n, sizeof *os, op_sort_cmp);
    int rc = 0;
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && os[j].key == os[i].key) {
            ids[j - i] = os[j].id;
            j++;
        }
        struct key_outcome o;
        rc = key_check(lc, ids, j - i, &o, &r->states);
        if (rc != 0) {
            break;
        }
        result_note(r, os[i].key, j - i, &o);
        i = j;
    }
    free(os);
    free(ids);
    return rc != 0 ? rc : r->verdict;
}

int lincheck_check(struct lincheck *lc, struct lincheck_result *res)
{
    return check_filtered(lc, false, 0, res);
}

int lincheck_check_key(struct lincheck *lc, uint64_t key, struct lincheck_result *res)
{
    return check_filtered(lc, true, key, res);
}

/* ---- Reports ---------------------------------------------------------------------- */

static const char *kind_name(uint8_t kind)
{
    switch (kind) {
    case LINCHECK_PUT:
        return "PUT";
    case LINCHECK_GET:
        return "GET";
    case LINCHECK_DEL:
        return "DEL";
    default:
        return "?";
    }
}

void lincheck_print_key(const struct lincheck *lc, uint64_t key, uint32_t mark_op, FILE *f)
{
    struct op_sort *os = malloc(((size_t)lc->count + 1u) * sizeof *os);
    if (os == NULL) {
        return;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < lc->count; i++) {
        if (lc->ops[i].key == key) {
            os[n++] = (struct op_sort){ .key = key, .time = lc->ops[i].invoke_time, .id = i };
        }
    }
    qsort(os, n, sizeof *os, op_sort_cmp);
    fprintf(f, "key %llu: %u ops (invoke, return) sorted by invocation\n", (unsigned long long)key, n);
    for (uint32_t i = 0; i < n; i++) {
        const struct lincheck_op *op = &lc->ops[os[i].id];
        fprintf(f, "%s op %u client %u %s", os[i].id == mark_op ? "=>" : "  ", os[i].id, op->client,
                kind_name(op->kind));
        if (op->kind == LINCHECK_PUT) {
            fprintf(f, " %llu", (unsigned long long)op->value);
        }
        if (op->return_time == LINCHECK_PENDING) {
            fprintf(f, " [%llu, pending]\n", (unsigned long long)op->invoke_time);
            continue;
        }
        fprintf(f, " [%llu, %llu] -> ", (unsigned long long)op->invoke_time, (unsigned long long)op->return_time);
        if (op->kind == LINCHECK_GET && op->status == 0) {
            fprintf(f, "%llu\n", (unsigned long long)op->value);
        } else {
            fprintf(f, "%s\n", op->status == 0 ? "OK" : "NOT_FOUND");
        }
    }
    free(os);
}
