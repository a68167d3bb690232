/* Agreement and checkpoint checkers (see checkers.h): per sequence number, the
 * first digest a correct replica reports is the reference every other correct
 * replica must match. */
#include "tests/sim/checkers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"

#define CHECKERS_EXEC_INITIAL 4096u
#define CHECKERS_CP_INITIAL 64u

int checkers_init(struct checkers *ck, uint16_t n, const bool *faulty)
{
    memset(ck, 0, sizeof(*ck));
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    ck->n = n;
    for (uint16_t i = 0; i < n; i++)
        ck->faulty[i] = faulty ? faulty[i] : false;
    ck->exec_cap = CHECKERS_EXEC_INITIAL;
    ck->exec_digest = malloc(ck->exec_cap * 32);
    ck->exec_by = calloc(ck->exec_cap, sizeof(*ck->exec_by));
    ck->cp_cap = CHECKERS_CP_INITIAL;
    ck->cp_seq = malloc(ck->cp_cap * sizeof(*ck->cp_seq));
    ck->cp_digest = malloc(ck->cp_cap * 32);
    ck->cp_by = calloc(ck->cp_cap, sizeof(*ck->cp_by));
    if (!ck->exec_digest || !ck->exec_by || !ck->cp_seq || !ck->cp_digest || !ck->cp_by) {
        checkers_destroy(ck);
        return BFTKV_E_NOMEM;
    }
    return 0;
}

void checkers_destroy(struct checkers *ck)
{
    free(ck->exec_digest);
    free(ck->exec_by);
    free(ck->cp_seq);
    free(ck->cp_digest);
    free(ck->cp_by);
    ck->exec_digest = NULL;
    ck->exec_by = NULL;
    ck->cp_seq = NULL;
    ck->cp_digest = NULL;
    ck->cp_by = NULL;
}

void checkers_violation(struct checkers *ck, const char *fmt, ...)
{
    if (ck->safety++ > 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ck->first, sizeof(ck->first), fmt, ap);
    va_end(ap);
}

static void hex8(char out[17], const uint8_t *d)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[16] = 0;
}

static void exec_grow(struct checkers *ck, uint64_t seq)
{
    size_t cap = ck->exec_cap;
    while (cap <= seq)
        cap *= 2;
    ck->exec_digest = realloc(ck->exec_digest, cap * 32);
    ck->exec_by = realloc(ck->exec_by, cap * sizeof(*ck->exec_by));
    BFTKV_ASSERT(ck->exec_digest && ck->exec_by);
    memset(ck->exec_by + ck->exec_cap, 0, (cap - ck->exec_cap) * sizeof(*ck->exec_by));
    ck->exec_cap = cap;
}

void checkers_on_exec(struct checkers *ck, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    if (replica >= ck->n) {
        checkers_violation(ck, "exec hook: replica id %u out of range", replica);
        return;
    }
    if (ck->faulty[replica])
        return;
    if (seq <= ck->last_exec[replica] && ck->executed_batches[replica] > 0) {
        checkers_violation(ck, "order: replica %u executed seq %llu after seq %llu", replica,
                           (unsigned long long)seq, (unsigned long long)ck->last_exec[replica]);
        return;
    }
    ck->last_exec[replica] = seq;
    ck->executed_batches[replica]++;
    if (seq >= ck->exec_cap)
        exec_grow(ck, seq);
    if (ck->exec_by[seq] == 0) {
        memcpy(ck->exec_digest[seq], digest, 32);
        ck->exec_by[seq] = (uint16_t)(replica + 1);
        return;
    }
    if (memcmp(ck->exec_digest[seq], digest, 32) != 0) {
        char a[17], b[17];
        hex8(a, ck->exec_digest[seq]);
        hex8(b, digest);
        checkers_violation(ck, "agreement: at seq %llu replica %u executed batch %s.. but replica %u executed %s..",
                           (unsigned long long)seq, ck->exec_by[seq] - 1, a, replica, b);
    }
}

/* ---- Checkpoints: open addressing on seq ------------------------------------------- */

static size_t cp_slot(const struct checkers *ck, uint64_t seq)
{
    size_t mask = ck->cp_cap - 1;
    size_t i = (size_t)(seq * 0x9E3779B97F4A7C15ull) & mask;
    while (ck->cp_by[i] != 0 && ck->cp_seq[i] != seq)
        i = (i + 1) & mask;
    return i;
}

static void cp_grow(struct checkers *ck)
{
    size_t old_cap = ck->cp_cap;
    uint64_t *old_seq = ck->cp_seq;
    uint8_t(*old_digest)[32] = ck->cp_digest;
    uint16_t *old_by = ck->cp_by;
    ck->cp_cap = old_cap * 2;
    ck->cp_seq = malloc(ck->cp_cap * sizeof(*ck->cp_seq));
    ck->cp_digest = malloc(ck->cp_cap * 32);
    ck->cp_by = calloc(ck->cp_cap, sizeof(*ck->cp_by));
    BFTKV_ASSERT(ck->cp_seq && ck->cp_digest && ck->cp_by);
    for (size_t i = 0; i < old_cap; i++) {
        if (old_by[i] == 0)
            continue;
        size_t j = cp_slot(ck, old_seq[i]);
        ck->cp_seq[j] = old_seq[i];
        memcpy(ck->cp_digest[j], old_digest[i], 32);
        ck->cp_by[j] = old_by[i];
    }
    free(old_seq);
    free(old_digest);
    free(old_by);
}

void checkers_on_checkpoint(struct checkers *ck, uint16_t replica, uint64_t seq, const uint8_t digest[32])
{
    if (replica >= ck->n || ck->faulty[replica])
        return;
    ck->checkpoints++;
    if (2 * (ck->cp_len + 1) > ck->cp_cap)
        cp_grow(ck);
    size_t i = cp_slot(ck, seq);
    if (ck->cp_by[i] == 0) {
        ck->cp_seq[i] = seq;
        memcpy(ck->cp_digest[i], digest, 32);
        ck->cp_by[i] = (uint16_t)(replica + 1);
        ck->cp_len++;
        return;
    }
    if (memcmp(ck->cp_digest[i], digest, 32) != 0) {
        char a[17], b[17];
        hex8(a, ck->cp_digest[i]);
        hex8(b, digest);
        checkers_violation(ck, "checkpoint: at seq %llu replica %u has state %s.. but replica %u has %s..",
                           (unsigned long long)seq, ck->cp_by[i] - 1, a, replica, b);
    }
}

uint64_t checkers_max_executed(const struct checkers *ck)
{
    uint64_t m = 0;
    for (uint16_t i = 0; i < ck->n; i++)
        if (!ck->faulty[i] && ck->last_exec[i] > m)
            m = ck->last_exec[i];
    return m;
}
