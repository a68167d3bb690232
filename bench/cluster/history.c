/* bftkv-bench's operation history (--history FILE): a record of every operation
 * the bench invoked, for a linearizability checker (build/bftkv-lincheck, the
 * simulator's per-key checker; docs/benchmarks.md "The history" is the format).
 *
 * A record is reserved when an operation is invoked (before bftkv_submit, so an
 * operation whose result never comes is still there) and completed by its
 * callback, or at once when bftkv_submit refuses it. Warm-up, the measured window,
 * requests submitted as the window closed, late returns and final reads are all
 * recorded and marked. Every PUT writes a value that carries a write id unique to
 * the run (16 hex digits, then bytes derived from the id), so the value a GET
 * returns names the write it reads, or is recognisably no value of this run; and
 * without a history too, every PUT writes a value the key did not hold.
 *
 * Two passes over keys run through the same handles and slots, unmeasured:
 * --prefill, before the load, one PUT of every key (phase "prefill", so a checker
 * that takes every key to start absent sees the writes the load's GETs read);
 * --final-read, after the load has drained, one GET of every key the run touched
 * (phase "final").
 */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/assert.h"

/* A write id: 20 bits of run tag (from the seed), 6 bits of handle, 38 bits of
 * that handle's write counter (starting at 1, so no id is 0). */
#define BENCH_ID_HANDLE_SHIFT 38u
#define BENCH_ID_TAG_SHIFT 44u
#define BENCH_RUN_TAG_MASK 0xfffffull
_Static_assert(BENCH_THREADS_MAX <= (1u << (BENCH_ID_TAG_SHIFT - BENCH_ID_HANDLE_SHIFT)), "handle fits its bits");

/* Seconds the final reads may take beyond the client timeout. */
#define BENCH_FINAL_READ_S 30u

int bench_history_init(struct bench *b)
{
    b->run_tag = bench_mix64(b->seed) & BENCH_RUN_TAG_MASK;
    b->value_len = b->value_size;
    if (b->history_path == NULL) {
        return 0;
    }
    if (b->value_len < BENCH_TOKEN_LEN) {
        b->value_len = BENCH_TOKEN_LEN; /* a value must name its write */
    }
    /* The prefill's records come first, the load's next, the final reads last. */
    uint64_t prefills = b->prefill ? b->keys : 0;
    uint64_t finals = b->final_read ? (b->keys < BENCH_HISTORY_MAX ? b->keys : BENCH_HISTORY_MAX) : 0;
    BFTKV_ASSERT(prefills <= BENCH_HISTORY_MAX); /* main.c refuses more keys: the final reads then fit too */
    b->history_load_cap = prefills + BENCH_HISTORY_MAX;
    b->history_cap = b->history_load_cap + finals;
    b->history = calloc(b->history_cap, sizeof *b->history); /* pages are touched as records fill */
    if (b->history == NULL) {
        return BFTKV_E_NOMEM;
    }
    if (b->final_read) {
        b->touched = calloc((b->keys + 63u) / 64u, sizeof *b->touched);
        if (b->touched == NULL) {
            return BFTKV_E_NOMEM;
        }
    }
    return 0;
}

void bench_history_free(struct bench *b)
{
    free(b->history);
    free(b->touched);
    free(b->final_keys);
    b->history = NULL;
    b->touched = NULL;
    b->final_keys = NULL;
}

uint64_t bench_write_id(struct bench *b, uint32_t h)
{
    uint64_t seq = atomic_fetch_add_explicit(&b->write_seq[h], 1, memory_order_relaxed) + 1u;
    return (b->run_tag << BENCH_ID_TAG_SHIFT) | ((uint64_t)h << BENCH_ID_HANDLE_SHIFT) |
           (seq & ((1ull << BENCH_ID_HANDLE_SHIFT) - 1u));
}

/* The filler word for bytes 8w..8w+7 of a value with write id id. */
static uint64_t bench_value_word(uint64_t id, size_t w)
{
    return bench_mix64(id ^ ((uint64_t)w * 0x9e3779b97f4a7c15ull));
}

void bench_value_fill(const struct bench *b, uint64_t id, uint8_t *out)
{
    size_t len = b->value_len;
    if (len < BENCH_TOKEN_LEN) {
        /* Too short to name the write (never with --history): bytes of a bijective
         * hash of the id, so values of 8 bytes and more are still unique in the run
         * and shorter ones collide with probability 256^-len. */
        for (size_t i = 0; i < len; i += 8) {
            uint64_t w = bench_value_word(id, i / 8);
            memcpy(out + i, &w, len - i < 8 ? len - i : 8);
        }
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < BENCH_TOKEN_LEN; i++) {
        out[i] = (uint8_t)hex[(id >> (4u * (BENCH_TOKEN_LEN - 1u - i))) & 15u];
    }
    for (size_t i = BENCH_TOKEN_LEN; i < len; i += 8) {
        uint64_t w = bench_value_word(id, i / 8);
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(out + i, &w, n);
    }
}

/* The write id a value of this run's format carries: every byte must be what
 * bench_value_fill writes for it. */
static bool bench_value_id(const struct bench *b, const uint8_t *val, size_t vlen, uint64_t *id)
{
    if (vlen != b->value_len || vlen < BENCH_TOKEN_LEN) {
        return false;
    }
    uint64_t x = 0;
    for (size_t i = 0; i < BENCH_TOKEN_LEN; i++) {
        uint8_t c = val[i];
        uint64_t d = c >= '0' && c <= '9' ? (uint64_t)(c - '0') : c >= 'a' && c <= 'f' ? (uint64_t)(c - 'a' + 10) : 16;
        if (d > 15) {
            return false;
        }
        x = x << 4 | d;
    }
    for (size_t i = BENCH_TOKEN_LEN; i < vlen; i += 8) {
        uint64_t w = bench_value_word(x, i / 8);
        size_t n = vlen - i < 8 ? vlen - i : 8;
        if (memcmp(val + i, &w, n) != 0) {
            return false;
        }
    }
    *id = x;
    return x != 0;
}

bool bench_history_invoke(struct bench *b, struct bench_slot *s, uint64_t invoke_ns)
{
    uint64_t limit = s->pass == &b->final_pass ? b->history_cap : b->history_load_cap;
    uint64_t i = atomic_load(&b->history_used);
    do {
        if (i >= limit) {
            if (!atomic_exchange(&b->history_full, true)) {
                fprintf(stderr, "bftkv-bench: the history is full (%" PRIu64 " operations): no more requests\n",
                        limit);
            }
            s->record = BENCH_NO_RECORD;
            return false;
        }
    } while (!atomic_compare_exchange_weak(&b->history_used, &i, i + 1u));
    struct bench_record *r = &b->history[i];
    r->key_index = s->key_index;
    r->value = s->op == BFTKV_OP_PUT ? s->write_id : 0;
    r->invoke_ns = invoke_ns;
    r->return_ns = 0;
    r->client = s->client;
    r->status = 0;
    r->op = (uint8_t)s->op;
    r->flags = s->pass != NULL ? s->pass->record_flag : 0;
    s->record = i;
    return true;
}

bool bench_history_return(struct bench *b, const struct bench_slot *s, int status, const void *val, size_t vlen,
                          uint64_t return_ns, bool refused)
{
    if (s->record == BENCH_NO_RECORD) {
        return false;
    }
    struct bench_record *r = &b->history[s->record];
    r->return_ns = return_ns;
    r->status = (int16_t)status;
    r->flags |= (uint8_t)(BENCH_REC_RETURNED | (refused ? BENCH_REC_REFUSED : 0));
    if (r->op == BFTKV_OP_GET && status == 0) {
        uint64_t id = 0;
        if (val != NULL && bench_value_id(b, val, vlen, &id)) {
            r->value = id;
        } else {
            r->value = bench_fnv1a(val, val != NULL ? vlen : 0);
            r->flags |= BENCH_REC_INVALID;
        }
    }
    return !refused && status != 0 && status != BFTKV_E_NOT_FOUND;
}

const char *bench_record_outcome(const struct bench_record *r)
{
    if ((r->flags & BENCH_REC_RETURNED) == 0) {
        return "unknown";
    }
    if ((r->flags & BENCH_REC_REFUSED) != 0) {
        return "fail"; /* bftkv_submit refused it: nothing was sent */
    }
    if (r->status == 0 || r->status == BFTKV_E_NOT_FOUND) {
        return "ok";
    }
    return "unknown"; /* a timeout or a cancelled request may still execute */
}

/* ---- Passes over keys: --prefill and --final-read ------------------------------------------- */

static uint64_t bench_pass_deadline(const struct bench_pass *p)
{
    return p->start_ns + (uint64_t)p->limit_s * 1000000000ull;
}

void bench_pass_next(struct bench_slot *s, int status)
{
    struct bench_pass *p = s->pass;
    BFTKV_ASSERT(p != NULL);
    if (status != 0 && status != BFTKV_E_NOT_FOUND) {
        atomic_fetch_add(&p->failed, 1);
    }
    for (;;) {
        uint64_t i = atomic_fetch_add(&p->next, 1);
        if (i >= p->count || bench_now_ns() > bench_pass_deadline(p)) {
            atomic_store(&s->busy, false);
            atomic_fetch_sub(&p->active, 1);
            return;
        }
        bench_slot_set(s, p->op, p->keys != NULL ? p->keys[i] : i);
        s->start_ns = bench_now_ns();
        int rc = bench_slot_submit(s);
        if (rc == 0) {
            return;
        }
        atomic_fetch_add(&p->failed, 1); /* refused (recorded as such): the next key */
    }
}

/* Run pass p on every handle's free slots (at most one per lane) and wait for it:
 * until every slot left it, bounded by its time limit plus the client timeout. */
static void bench_pass_run(struct bench *b, struct bench_pass *p)
{
    atomic_store(&p->next, 0);
    atomic_store(&p->active, 0);
    atomic_store(&p->failed, 0);
    p->start_ns = bench_now_ns();
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        uint32_t started = 0;
        for (uint32_t i = 0; i < h->nslots && started < h->lanes; i++) {
            struct bench_slot *s = &h->slots[i];
            if (atomic_load(&s->busy)) {
                continue; /* still waiting for a result: not reused */
            }
            s->pass = p;
            started++;
            atomic_fetch_add(&p->active, 1);
            bench_pass_next(s, 0);
        }
    }
    uint64_t hard_end = bench_pass_deadline(p) + (uint64_t)b->cfg->client_timeout_ms * 1000000ull + 1000000000ull;
    while (atomic_load(&p->active) > 0 && bench_now_ns() < hard_end) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    p->end_ns = bench_now_ns();
    uint64_t issued = atomic_load(&p->next);
    p->complete = issued >= p->count && atomic_load(&p->active) == 0;
    if (!p->complete) {
        fprintf(stderr, "bftkv-bench: %s: %" PRIu64 " of %" PRIu64 " keys issued within %u s\n", p->name,
                issued < p->count ? issued : p->count, p->count, p->limit_s);
    }
}

/* Seconds --prefill may take to issue its PUTs: 100k keys take 1-5 s on the
 * 2-core machine (docs/benchmarks.md); a bigger --keys is cut short, said. */
#define BENCH_PREFILL_S 120u

int bench_prefill(struct bench *b)
{
    struct bench_pass *p = &b->prefill_pass;
    *p = (struct bench_pass){.name = "prefill", .op = BFTKV_OP_PUT, .record_flag = BENCH_REC_PREFILL,
                             .limit_s = BENCH_PREFILL_S, .keys = NULL, .count = b->keys};
    fprintf(stderr, "bftkv-bench: prefill: writing each of the %" PRIu64 " keys once (not measured)\n", b->keys);
    bench_pass_run(b, p);
    uint64_t left = atomic_load(&p->active);
    for (uint32_t t = 0; t < b->threads; t++) {
        struct bench_handle *h = &b->handle[t];
        for (uint32_t i = 0; i < h->nslots; i++) {
            h->slots[i].pass = NULL; /* back to the load, as the same logical client */
        }
    }
    double secs = (double)(p->end_ns - p->start_ns) / 1e9;
    fprintf(stderr, "bftkv-bench: prefill: %" PRIu64 " keys in %.1f s, %" PRIu64 " failed or unknown\n",
            atomic_load(&p->next) < p->count ? atomic_load(&p->next) : p->count, secs, atomic_load(&p->failed));
    if (left > 0) {
        fprintf(stderr, "bftkv-bench: prefill: %" PRIu64 " requests still outstanding: no load\n", left);
        return 1;
    }
    return 0;
}

int bench_final_read(struct bench *b)
{
    if (b->touched == NULL) {
        return 0;
    }
    uint64_t words = (b->keys + 63u) / 64u, n = 0;
    for (uint64_t w = 0; w < words; w++) {
        n += (uint64_t)__builtin_popcountll(atomic_load(&b->touched[w]));
    }
    b->final_keys = malloc((n > 0 ? n : 1u) * sizeof *b->final_keys);
    if (b->final_keys == NULL) {
        return 1;
    }
    uint64_t count = 0;
    for (uint64_t k = 0; k < b->keys; k++) {
        if (atomic_load(&b->touched[k / 64u]) & (1ull << (k % 64u))) {
            b->final_keys[count++] = k;
        }
    }
    struct bench_pass *p = &b->final_pass;
    *p = (struct bench_pass){.name = "final read", .op = BFTKV_OP_GET, .record_flag = BENCH_REC_FINAL,
                             .limit_s = BENCH_FINAL_READ_S, .keys = b->final_keys, .count = count};
    bench_pass_run(b, p);
    return p->complete ? 0 : 1;
}

/* ---- The file ------------------------------------------------------------------------------ */

static const char *bench_record_phase(const struct bench *b, const struct bench_record *r, uint64_t ms)
{
    if ((r->flags & BENCH_REC_FINAL) != 0) {
        return "final";
    }
    if ((r->flags & BENCH_REC_PREFILL) != 0) {
        return "prefill";
    }
    if (ms == 0 || r->invoke_ns < ms) {
        return "warmup";
    }
    return r->invoke_ns > b->measure_end_ns ? "after" : "measure";
}

static const char *bench_op_name(uint8_t op)
{
    return op == BFTKV_OP_PUT ? "put" : op == BFTKV_OP_GET ? "get" : "del";
}

int bench_history_write(struct bench *b)
{
    FILE *fp = fopen(b->history_path, "w");
    if (fp == NULL) {
        fprintf(stderr, "bftkv-bench: %s: cannot write\n", b->history_path);
        return 1;
    }
    uint64_t n = atomic_load(&b->history_used);
    uint64_t ms = atomic_load(&b->measure_start_ns);
    bool full = atomic_load(&b->history_full);
    fprintf(fp,
            "{\"bftkv_bench_history\":1,\"seed\":%" PRIu64 ",\"run_tag\":\"%05" PRIx64 "\",\"keys\":%" PRIu64
            ",\"key_size\":%zu,\"value_size\":%zu,\"read_ratio\":%.4f,\"del_ratio\":%.4f,\"mode\":\"%s\","
            "\"readonly\":%s,\"warmup_s\":%.3f,\"duration_s\":%.3f,\"window_start_ns\":%" PRIu64
            ",\"window_end_ns\":%" PRIu64 ",\"prefill\":%s,\"final_read\":%s,\"ops\":%" PRIu64
            ",\"load_stopped_early\":%s}\n",
            b->seed, b->run_tag, b->keys, b->key_size, b->value_len, b->read_ratio, b->del_ratio,
            b->rate > 0 ? "open" : "closed", b->readonly ? "true" : "false", b->warmup, b->duration, ms,
            b->measure_end_ns, b->prefill ? "true" : "false", b->final_read ? "true" : "false", n,
            full ? "true" : "false");
    char key[BFTKV_KEY_MAX + 1];
    uint64_t count[4] = {0}, ok = 0, fail = 0, unknown = 0, late = 0, invalid = 0, prefills = 0;
    for (uint64_t i = 0; i < n; i++) {
        const struct bench_record *r = &b->history[i];
        bench_key_format(b, r->key_index, (uint8_t *)key);
        key[b->key_size] = '\0';
        const char *phase = bench_record_phase(b, r, ms);
        const char *outcome = bench_record_outcome(r);
        fprintf(fp, "{\"client\":%u,\"op\":\"%s\",\"key\":\"%s\",\"value\":", r->client, bench_op_name(r->op), key);
        if (r->op == BFTKV_OP_PUT || (r->op == BFTKV_OP_GET && (r->flags & BENCH_REC_RETURNED) != 0 &&
                                      (r->flags & BENCH_REC_REFUSED) == 0 && r->status == 0)) {
            fprintf(fp, (r->flags & BENCH_REC_INVALID) != 0 ? "\"invalid:%016" PRIx64 "\"" : "\"%016" PRIx64 "\"",
                    r->value);
        } else {
            fputs("null", fp);
        }
        fprintf(fp, ",\"phase\":\"%s\",\"invoke_ns\":%" PRIu64 ",\"return_ns\":", phase, r->invoke_ns);
        if ((r->flags & BENCH_REC_RETURNED) != 0) {
            fprintf(fp, "%" PRIu64, r->return_ns);
        } else {
            fputs("null", fp);
        }
        const char *result = (r->flags & BENCH_REC_RETURNED) == 0 ? "no_return"
                             : r->status == 0                     ? "ok"
                             : r->status == BFTKV_E_NOT_FOUND     ? "not_found"
                                                                  : bftkv_errname(r->status);
        fprintf(fp, ",\"outcome\":\"%s\",\"result\":\"%s\"", outcome, result);
        bool is_late = strcmp(phase, "measure") == 0 && (r->flags & BENCH_REC_RETURNED) != 0 &&
                       r->return_ns > b->measure_end_ns;
        if (is_late) {
            fputs(",\"late\":true", fp);
        }
        fputs("}\n", fp);
        count[r->op & 3u]++;
        ok += outcome[0] == 'o';
        fail += outcome[0] == 'f';
        unknown += outcome[0] == 'u';
        late += is_late;
        invalid += (r->flags & BENCH_REC_INVALID) != 0;
        prefills += (r->flags & BENCH_REC_PREFILL) != 0;
    }
    fprintf(stderr,
            "bftkv-bench: history %s: %" PRIu64 " operations (%" PRIu64 " put, %" PRIu64 " get, %" PRIu64
            " del; %" PRIu64 " prefill writes, %" PRIu64 " final reads): ok %" PRIu64 ", fail %" PRIu64
            ", unknown %" PRIu64 ", late %" PRIu64 "%s\n",
            b->history_path, n, count[BFTKV_OP_PUT], count[BFTKV_OP_GET], count[BFTKV_OP_DEL], prefills,
            b->final_pass.count, ok, fail, unknown, late,
            full ? "; INCOMPLETE: the history filled up and the load stopped early" : "");
    if (invalid > 0) {
        fprintf(stderr, "bftkv-bench: history: %" PRIu64 " GETs returned a value this run did not write\n",
                invalid);
    }
    return fclose(fp) == 0 ? 0 : 1;
}
