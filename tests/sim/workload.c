/* The clients' closed-loop workload and the history it records (see workload.h). */
#include "tests/sim/workload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/wire.h"

void workload_key_bytes(uint32_t name, char out[8], size_t *klen)
{
    int len = snprintf(out, 8, "k%u", name);
    BFTKV_ASSERT(len > 0 && len < 8);
    *klen = (size_t)len;
}

/* Key i of the key space by its name number (the history knows keys by i). */
static uint32_t key_name(const struct workload *wl, uint32_t key)
{
    return wl->cfg.key_names != NULL ? wl->cfg.key_names[key] : key;
}

/* The history's logical clock, one tick per invocation and completion. */
static uint64_t clock_tick(struct workload *wl)
{
    uint64_t t = ++wl->clock;
    if (wl->cfg.clock_ns != NULL && t < wl->cfg.clock_cap)
        wl->cfg.clock_ns[t] = cluster_now(wl->cl);
    return t;
}

static bool key_serves(const struct workload *wl, uint32_t key, unsigned what)
{
    return wl->cfg.key_ops == NULL || (wl->cfg.key_ops[key] & what) != 0;
}

static uint8_t pad_byte(uint64_t id, uint32_t i)
{
    return (uint8_t)(id * 31u + i * 7u + 1u);
}

static void value_bytes(const struct workload *wl, uint64_t id, uint8_t *out)
{
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(id >> (8 * i));
    for (uint32_t i = 8; i < wl->cfg.value_bytes; i++)
        out[i] = pad_byte(id, i);
}

uint64_t workload_value_id(const struct workload *wl, const uint8_t *v, uint32_t vlen)
{
    if (vlen != wl->cfg.value_bytes || !v)
        return WORKLOAD_GARBAGE_ID;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id |= (uint64_t)v[i] << (8 * i);
    for (uint32_t i = 8; i < vlen; i++)
        if (v[i] != pad_byte(id, i))
            return WORKLOAD_GARBAGE_ID;
    uint64_t client = (id >> 32);
    uint64_t counter = id & 0xFFFFFFFFu;
    if (client == 0 || client > wl->cfg.clients || counter == 0)
        return WORKLOAD_GARBAGE_ID;
    return id;
}

int workload_init(struct workload *wl, const struct workload_config *cfg, struct cluster *cl,
                  struct lincheck *lc, struct checkers *ck, uint64_t seed)
{
    memset(wl, 0, sizeof(*wl));
    BFTKV_ASSERT(cfg->value_bytes >= WORKLOAD_VALUE_MIN && cfg->keys > 0 && cfg->inflight > 0 &&
                 cfg->inflight <= PBFT_LANES_MAX);
    wl->cfg = *cfg;
    wl->cl = cl;
    wl->lc = lc;
    wl->ck = ck;
    wl->c = calloc(cfg->clients, sizeof(*wl->c));
    wl->vbuf = malloc(cfg->value_bytes);
    if (!wl->c || !wl->vbuf) {
        workload_destroy(wl);
        return BFTKV_E_NOMEM;
    }
    struct prng root;
    prng_seed(&root, seed);
    for (uint16_t i = 0; i < cfg->clients; i++)
        prng_fork(&wl->c[i].rng, &root, i);
    wl->regular_total = (uint64_t)cfg->clients * cfg->requests;
    for (uint32_t k = 0; k < cfg->keys; k++)
        wl->final_total += key_serves(wl, k, WORKLOAD_KEY_READ);
    return 0;
}

void workload_destroy(struct workload *wl)
{
    free(wl->c);
    free(wl->vbuf);
    wl->c = NULL;
    wl->vbuf = NULL;
}

/* Submit one operation from client i; false if the client refused it. */
static bool submit(struct workload *wl, uint16_t i, uint8_t op, uint32_t key, bool final_read)
{
    struct workload_client *c = &wl->c[i];
    char k[8];
    size_t klen;
    workload_key_bytes(key_name(wl, key), k, &klen);
    uint64_t id = 0;
    size_t vlen = 0;
    if (op == WIRE_OP_PUT) {
        id = ((uint64_t)(i + 1u) << 32) | (uint64_t)(++c->counter);
        value_bytes(wl, id, wl->vbuf);
        vlen = wl->cfg.value_bytes;
    }
    int lane = cluster_client_submit(wl->cl, i, op, k, klen, op == WIRE_OP_PUT ? wl->vbuf : NULL, vlen);
    if (lane < 0) {
        wl->submit_errors++;
        return false;
    }
    BFTKV_ASSERT((uint32_t)lane < PBFT_LANES_MAX && !c->lane_busy[lane]);
    uint32_t op_id;
    int rc = lincheck_invoke(wl->lc, key, op, id, clock_tick(wl), i, &op_id);
    BFTKV_ASSERT(rc == 0);
    c->lane_busy[lane] = true;
    c->lane_op[lane] = op_id;
    c->lane_final[lane] = final_read;
    c->inflight++;
    if (!final_read)
        c->issued++;
    return true;
}

static void submit_regular(struct workload *wl, uint16_t i)
{
    struct workload_client *c = &wl->c[i];
    while (c->issued < wl->cfg.requests && c->inflight < wl->cfg.inflight) {
        uint64_t roll = prng_below(&c->rng, 100);
        uint8_t op = roll < wl->cfg.put_percent                        ? WIRE_OP_PUT
                     : roll < wl->cfg.put_percent + wl->cfg.get_percent ? WIRE_OP_GET
                                                                        : WIRE_OP_DEL;
        uint32_t key = (uint32_t)prng_below(&c->rng, wl->cfg.keys);
        if (op == WIRE_OP_GET && !key_serves(wl, key, WORKLOAD_KEY_READ))
            op = WIRE_OP_PUT;
        else if (op != WIRE_OP_GET && !key_serves(wl, key, WORKLOAD_KEY_WRITE))
            op = WIRE_OP_GET;
        if (!submit(wl, i, op, key, false))
            return;
    }
}

void workload_start(struct workload *wl)
{
    for (uint16_t i = 0; i < wl->cfg.clients; i++)
        submit_regular(wl, i);
}

static void submit_final(struct workload *wl)
{
    struct workload_client *c = &wl->c[0];
    while (wl->final_next_key < wl->cfg.keys && c->inflight < wl->cfg.inflight) {
        if (!key_serves(wl, wl->final_next_key, WORKLOAD_KEY_READ)) {
            wl->final_next_key++;
            continue;
        }
        if (!submit(wl, 0, WIRE_OP_GET, wl->final_next_key, true))
            return;
        wl->final_next_key++;
    }
}

void workload_start_final(struct workload *wl)
{
    if (wl->final_started)
        return;
    wl->final_started = true;
    submit_final(wl);
}

/* A client's operation ended (a result, or a refusal that counts): the next
 * final read, or the client's next regular operation. */
static void completion_next(struct workload *wl, uint16_t client, bool final_read)
{
    if (final_read) {
        wl->final_done++;
        submit_final(wl);
        return;
    }
    wl->c[client].completed++;
    wl->regular_done++;
    submit_regular(wl, client);
    if (wl->final_started && client == 0)
        submit_final(wl);
}

/* A refusal: the operation stays pending in the history (see workload.h). It
 * counts as progress only when the group must refuse; a final read that was
 * refused while the group recovers is asked again. */
static void no_state_complete(struct workload *wl, uint16_t client, const struct lincheck_op *op, bool final_read)
{
    wl->no_state++;
    if (wl->refuse)
        wl->last_completion_ns = cluster_now(wl->cl);
    if (final_read && !wl->refuse) {
        if (!submit(wl, 0, WIRE_OP_GET, (uint32_t)op->key, true))
            checkers_violation(wl->ck, "client 0 could not ask the final read of key %llu again",
                               (unsigned long long)op->key);
        return;
    }
    completion_next(wl, client, final_read);
}

void workload_on_complete(void *arg, uint16_t client, const struct pbft_completion *cp)
{
    struct workload *wl = arg;
    BFTKV_ASSERT(client < wl->cfg.clients);
    struct workload_client *c = &wl->c[client];
    if (cp->lane >= PBFT_LANES_MAX || !c->lane_busy[cp->lane]) {
        checkers_violation(wl->ck, "client %u completed lane %u which had no operation", client, cp->lane);
        return;
    }
    uint32_t op_id = c->lane_op[cp->lane];
    c->lane_busy[cp->lane] = false;
    c->inflight--;
    const struct lincheck_op *op = lincheck_get(wl->lc, op_id);
    bool final_read = c->lane_final[cp->lane];
    if (cp->op != op->kind) {
        checkers_violation(wl->ck, "client %u lane %u completed op %u but op %u was submitted", client, cp->lane,
                           cp->op, op->kind);
        return;
    }
    int status = cp->status;
    if (wl->refuse && op->invoke_time > wl->refuse_clock && status != BFTKV_E_NO_STATE)
        checkers_violation(wl->ck,
                           "client %u: %s on key %llu completed with status %d (%s) while fewer than q replicas "
                           "hold state: the group served without its state",
                           client, op->kind == WIRE_OP_PUT ? "PUT" : op->kind == WIRE_OP_GET ? "GET" : "DEL",
                           (unsigned long long)op->key, status, bftkv_errname(status));
    if (status == BFTKV_E_NO_STATE && wl->no_state_ok) {
        no_state_complete(wl, client, op, final_read);
        return;
    }
    uint64_t value = 0;
    bool ok = status == 0 || status == BFTKV_E_NOT_FOUND;
    if (op->kind == WIRE_OP_PUT && status != 0)
        ok = false;
    if (op->kind == WIRE_OP_GET && status == 0)
        value = workload_value_id(wl, cp->value, cp->vlen);
    if (!ok) {
        /* Correct replicas never answer these operations with another status,
         * and a correct client accepts only f+1 matching answers. */
        checkers_violation(wl->ck, "client %u: %s on key %llu completed with status %d (%s)", client,
                           op->kind == WIRE_OP_PUT ? "PUT" : op->kind == WIRE_OP_GET ? "GET" : "DEL",
                           (unsigned long long)op->key, status, bftkv_errname(status));
    } else {
        int rc = lincheck_complete(wl->lc, op_id, status, value, clock_tick(wl));
        BFTKV_ASSERT(rc == 0);
    }
    wl->completed++;
    wl->last_completion_ns = cluster_now(wl->cl);
    completion_next(wl, client, final_read);
}

void workload_restart_down(struct workload *wl, bool no_state_ok, bool refuse)
{
    wl->no_state_ok = no_state_ok;
    wl->refuse = refuse;
    wl->refuse_clock = wl->clock;
}

bool workload_regular_done(const struct workload *wl)
{
    return wl->regular_done == wl->regular_total;
}

bool workload_final_done(const struct workload *wl)
{
    return wl->final_started && wl->final_done == wl->final_total;
}

bool workload_key_of(void *arg, uint16_t client, uint16_t lane, char *key, size_t cap, size_t *klen)
{
    const struct workload *wl = arg;
    if (client >= wl->cfg.clients || lane >= PBFT_LANES_MAX || !wl->c[client].lane_busy[lane] || cap < 8)
        return false;
    const struct lincheck_op *op = lincheck_get(wl->lc, wl->c[client].lane_op[lane]);
    workload_key_bytes(key_name(wl, (uint32_t)op->key), key, klen);
    return true;
}
