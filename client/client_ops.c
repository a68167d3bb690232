/* The API half of the client library: bftkv_put/get/get_alloc/del (sync),
 * bftkv_submit (async) and bftkv_client_stats, plus the slot bookkeeping both
 * halves use (client_lib_internal.h has the design).
 *
 * A call validates its arguments before taking anything, so a bad key or value
 * never costs a slot, a lock or a datagram. It then takes a free slot (a sync
 * call waits for one until its deadline; an async one returns BFTKV_E_FULL unless
 * the handle blocks), fills it and pushes it on the FIFO. A sync call borrows the
 * caller's key, value and result buffer: they stay valid because the caller waits,
 * and a caller that stops waiting (timeout) withdraws its slot under mu, after
 * which the I/O thread no longer reads or writes them. An async call copies key
 * and value into the slot (or a heap copy for large values).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "client/client_internal.h"

BFTKV_STATIC_ASSERT((int)BFTKV_OP_PUT == (int)WIRE_OP_PUT && (int)BFTKV_OP_GET == (int)WIRE_OP_GET
                        && (int)BFTKV_OP_DEL == (int)WIRE_OP_DEL,
                    "the API's op codes are the wire's");

/* ---- Slots (mu held) ------------------------------------------------------------------ */

void client_ops_slot_free(struct bftkv_client *c, uint32_t idx)
{
    struct client_slot *s = &c->slots[idx];
    BFTKV_ASSERT(s->state != SLOT_FREE);
    free(s->heap);
    s->heap = NULL;
    s->state = SLOT_FREE;
    s->next = c->free_head;
    c->free_head = idx;
    pthread_cond_signal(&c->room);
}

void client_ops_async_unlink(struct bftkv_client *c, uint32_t idx)
{
    struct client_slot *s = &c->slots[idx];
    if (s->prev != CLIENT_NONE) {
        c->slots[s->prev].next = s->next;
    } else {
        c->async_head = s->next;
    }
    if (s->next != CLIENT_NONE) {
        c->slots[s->next].prev = s->prev;
    } else {
        c->async_tail = s->prev;
    }
    s->next = s->prev = CLIENT_NONE;
}

/* Insert an async slot by deadline. Deadlines are call time + the handle's
 * timeout, so a new slot almost always goes last; one that waited for room (its
 * call began earlier) may go a little further forward. */
static void async_insert(struct bftkv_client *c, uint32_t idx)
{
    struct client_slot *s = &c->slots[idx];
    uint32_t after = c->async_tail;
    while (after != CLIENT_NONE && c->slots[after].deadline_ns > s->deadline_ns) {
        after = c->slots[after].prev;
    }
    s->prev = after;
    s->next = after != CLIENT_NONE ? c->slots[after].next : c->async_head;
    if (after != CLIENT_NONE) {
        c->slots[after].next = idx;
    } else {
        c->async_head = idx;
    }
    if (s->next != CLIENT_NONE) {
        c->slots[s->next].prev = idx;
    } else {
        c->async_tail = idx;
    }
}

void client_ops_fifo_remove(struct bftkv_client *c, uint32_t idx)
{
    uint32_t i = 0;
    while (i < c->fifo_len && c->fifo[(c->fifo_head + i) % c->nslots] != idx) {
        i++;
    }
    BFTKV_ASSERT(i < c->fifo_len);
    for (; i + 1u < c->fifo_len; i++) {
        c->fifo[(c->fifo_head + i) % c->nslots] = c->fifo[(c->fifo_head + i + 1u) % c->nslots];
    }
    c->fifo_len--;
}

/* Take a free slot, waiting on room until deadline_ns when wait is set. Returns
 * the index, or CLIENT_NONE (queue full, or closing). */
static uint32_t slot_take(struct bftkv_client *c, bool wait, uint64_t deadline_ns)
{
    while (c->free_head == CLIENT_NONE && wait && !c->closing) {
        uint64_t now = client_io_now_ns();
        if (now >= deadline_ns) {
            break;
        }
        struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
                               .tv_nsec = (long)(deadline_ns % 1000000000u) };
        pthread_cond_timedwait(&c->room, &c->mu, &ts);
    }
    if (c->free_head == CLIENT_NONE || c->closing) {
        return CLIENT_NONE;
    }
    uint32_t idx = c->free_head;
    struct client_slot *s = &c->slots[idx];
    BFTKV_ASSERT(s->state == SLOT_FREE);
    c->free_head = s->next;
    s->next = s->prev = CLIENT_NONE;
    s->heap = NULL;
    s->status = 0;
    s->rlen = 0;
    s->alloc = NULL;
    s->cb = NULL;
    s->arg = NULL;
    return idx;
}

/* Queue a filled slot; returns whether the caller must wake the I/O thread
 * (client_loop_ready): it sleeps, and a lane is free for the request or the
 * request's deadline (async) comes before the thread would wake by itself. With
 * every lane busy the loop visits the handle anyway when a completion frees one. */
static bool slot_enqueue(struct bftkv_client *c, uint32_t idx)
{
    BFTKV_ASSERT(c->fifo_len < c->nslots);
    c->fifo[(c->fifo_head + c->fifo_len) % c->nslots] = idx;
    c->fifo_len++;
    c->slots[idx].state = SLOT_QUEUED;
    c->stats.submitted++;
    bool lane_free = c->in_flight < c->lanes;
    uint64_t deadline = c->slots[idx].deadline_ns;
    if (!lane_free && deadline >= c->io_key_ns) {
        return false;
    }
    return client_loop_ready(c, lane_free, deadline);
}

/* The request a slot carries: the caller's bytes (sync) or the slot's copy (async). */
static void slot_request_set(struct client_slot *s, const void *key, size_t klen, const void *val, size_t vlen)
{
    s->key = key;
    s->klen = klen;
    s->val = val;
    s->vlen = vlen;
}

/* An operation is checked by the engine's rule (pbft_request_check) before it is
 * queued; from the I/O thread's own callbacks it would wait for itself. */
static bool on_io_thread(const struct bftkv_client *c)
{
    return client_loop_on_thread(c->io);
}

/* ---- Synchronous ----------------------------------------------------------------------- */

struct sync_call {
    uint8_t op;
    uint8_t kind;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    void *buf;
    size_t cap;
    size_t rlen;
    void *alloc;
};

/* Wait for slot idx to be done or for the deadline; mu held. Returns the result,
 * or BFTKV_E_TIMEOUT after withdrawing the slot. */
static int sync_wait(struct bftkv_client *c, uint32_t idx, uint64_t deadline_ns, struct sync_call *sc)
{
    struct client_slot *s = &c->slots[idx];
    struct timespec ts = { .tv_sec = (time_t)(deadline_ns / 1000000000u),
                           .tv_nsec = (long)(deadline_ns % 1000000000u) };
    while (s->state != SLOT_DONE && client_io_now_ns() < deadline_ns) {
        pthread_cond_timedwait(&s->cond, &c->mu, &ts);
    }
    if (s->state == SLOT_DONE) {
        int rc = s->status;
        sc->rlen = s->rlen;
        sc->alloc = s->alloc;
        client_ops_slot_free(c, idx);
        return rc;
    }
    /* Give up. A queued slot leaves the queue now; one on a lane is freed by the
     * I/O thread when its late result comes, and from now on nothing reads the
     * caller's key and value or writes its buffer. */
    if (s->state == SLOT_QUEUED) {
        client_ops_fifo_remove(c, idx);
        client_ops_slot_free(c, idx);
    } else {
        BFTKV_ASSERT(s->state == SLOT_ACTIVE);
        s->state = SLOT_ABANDONED;
    }
    c->stats.timeouts++;
    return BFTKV_E_TIMEOUT;
}

static int sync_run(struct bftkv_client *c, struct sync_call *sc)
{
    if (c == NULL) {
        return BFTKV_E_INVAL;
    }
    client_diag_clear();
    uint64_t start_ns = client_io_now_ns();
    int rc = pbft_request_check(sc->op, sc->key, sc->klen, sc->val, sc->vlen);
    if (rc == 0 && on_io_thread(c)) {
        rc = BFTKV_E_INVAL; /* from a callback: it would wait for itself */
    }
    if (rc != 0) {
        client_diag_record(c, sc->op, rc, start_ns);
        return rc;
    }
    uint64_t deadline_ns = start_ns + c->timeout_ns;
    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        client_diag_record(c, sc->op, BFTKV_E_CANCELLED, start_ns);
        return BFTKV_E_CANCELLED;
    }
    c->waiters++;
    uint32_t idx = slot_take(c, true, deadline_ns);
    if (idx == CLIENT_NONE) {
        rc = c->closing ? BFTKV_E_CANCELLED : BFTKV_E_FULL;
        c->stats.queue_full += rc == BFTKV_E_FULL ? 1u : 0u;
    } else {
        struct client_slot *s = &c->slots[idx];
        s->kind = sc->kind;
        s->op = sc->op;
        slot_request_set(s, sc->key, sc->klen, sc->val, sc->vlen);
        s->buf = sc->buf;
        s->cap = sc->cap;
        s->deadline_ns = UINT64_MAX; /* the caller times itself out (sync_wait) */
        if (slot_enqueue(c, idx)) {
            pthread_mutex_unlock(&c->mu);
            client_loop_wake(c->io);
            pthread_mutex_lock(&c->mu);
        }
        rc = sync_wait(c, idx, deadline_ns, sc);
    }
    if (rc != 0 && rc != BFTKV_E_NOT_FOUND && rc != BFTKV_E_BUF_TOO_SMALL) {
        client_diag_record(c, sc->op, rc, start_ns); /* reads c->heard: mu held */
    }
    c->waiters--;
    if (c->closing && c->waiters == 0) {
        pthread_cond_signal(&c->drained);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int bftkv_put(struct bftkv_client *c, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (c != NULL && c->part != NULL)
        c = client_route(c, key, klen);
    struct sync_call sc = { .op = BFTKV_OP_PUT, .kind = KIND_SYNC_BUF, .key = key, .klen = klen, .val = val,
                            .vlen = vlen };
    return sync_run(c, &sc);
}

int bftkv_del(struct bftkv_client *c, const void *key, size_t klen)
{
    if (c != NULL && c->part != NULL)
        c = client_route(c, key, klen);
    struct sync_call sc = { .op = BFTKV_OP_DEL, .kind = KIND_SYNC_BUF, .key = key, .klen = klen };
    return sync_run(c, &sc);
}

int bftkv_get(struct bftkv_client *c, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen)
{
    if (c != NULL && c->part != NULL)
        c = client_route(c, key, klen);
    if (vlen == NULL || (buf == NULL && cap > 0)) {
        return BFTKV_E_INVAL;
    }
    struct sync_call sc = { .op = BFTKV_OP_GET, .kind = KIND_SYNC_BUF, .key = key, .klen = klen, .buf = buf,
                            .cap = cap };
    int rc = sync_run(c, &sc);
    if (rc == 0 || rc == BFTKV_E_BUF_TOO_SMALL) {
        *vlen = sc.rlen;
    }
    return rc;
}

int bftkv_get_alloc(struct bftkv_client *c, const void *key, size_t klen, void **val, size_t *vlen)
{
    if (c != NULL && c->part != NULL)
        c = client_route(c, key, klen);
    if (val == NULL || vlen == NULL) {
        return BFTKV_E_INVAL;
    }
    *val = NULL;
    struct sync_call sc = { .op = BFTKV_OP_GET, .kind = KIND_SYNC_ALLOC, .key = key, .klen = klen };
    int rc = sync_run(c, &sc);
    if (rc == 0) {
        *val = sc.alloc;
        *vlen = sc.rlen;
    } else {
        free(sc.alloc);
    }
    return rc;
}

void bftkv_free(void *p)
{
    free(p);
}

/* ---- Asynchronous -------------------------------------------------------------------- */

/* Copy key and value into the slot (inline, or one heap block). mu held; the heap
 * block, if any, was allocated by the caller beforehand (heap). */
static void async_copy(struct client_slot *s, const void *key, size_t klen, const void *val, size_t vlen,
                       uint8_t *heap)
{
    uint8_t *dst = heap != NULL ? heap : s->data;
    memcpy(dst, key, klen);
    if (vlen > 0) {
        memcpy(dst + klen, val, vlen);
    }
    s->heap = heap;
    slot_request_set(s, dst, klen, vlen > 0 ? dst + klen : NULL, vlen);
}

int bftkv_submit(struct bftkv_client *c, int op, const void *key, size_t klen, const void *val, size_t vlen,
                 bftkv_callback *cb, void *arg)
{
    if (c == NULL || cb == NULL) {
        return BFTKV_E_INVAL;
    }
    if (c->part != NULL)
        c = client_route(c, key, klen);
    /* op is the caller's int: one that is no enum bftkv_op is refused before
     * the engine's check narrows it. */
    int rc = op < 0 || op > UINT8_MAX ? BFTKV_E_INVAL : pbft_request_check((uint8_t)op, key, klen, val, vlen);
    if (rc != 0) {
        return rc;
    }
    uint8_t *heap = NULL;
    if (klen + vlen > CLIENT_SLOT_INLINE) {
        heap = malloc(klen + vlen);
        if (heap == NULL) {
            return BFTKV_E_NOMEM;
        }
    }
    bool block = (c->flags & BFTKV_CLIENT_SUBMIT_BLOCK) != 0 && !on_io_thread(c);
    uint64_t now = client_io_now_ns();
    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        free(heap);
        return BFTKV_E_CANCELLED;
    }
    c->waiters++;
    uint32_t idx = slot_take(c, block, now + c->timeout_ns);
    bool wake = false;
    if (idx == CLIENT_NONE) {
        rc = c->closing ? BFTKV_E_CANCELLED : BFTKV_E_FULL;
        c->stats.queue_full += rc == BFTKV_E_FULL ? 1u : 0u;
    } else {
        struct client_slot *s = &c->slots[idx];
        s->kind = KIND_ASYNC;
        s->op = (uint8_t)op;
        s->cb = cb;
        s->arg = arg;
        s->deadline_ns = now + c->timeout_ns; /* from the call, room waited for included */
        async_copy(s, key, klen, val, vlen, heap);
        heap = NULL;
        async_insert(c, idx);
        wake = slot_enqueue(c, idx) && !on_io_thread(c);
    }
    c->waiters--;
    if (c->closing && c->waiters == 0) {
        pthread_cond_signal(&c->drained);
    }
    pthread_mutex_unlock(&c->mu);
    free(heap);
    if (wake) {
        client_loop_wake(c->io);
    }
    return rc;
}

/* ---- Stats ------------------------------------------------------------------------------ */

/* The stats of the first version of the struct end with readonly_retries: a
 * program can know no fewer (include/bftkv/client.h, "ABI"). */
#define CLIENT_STATS_SIZE_0 (offsetof(struct bftkv_client_stats, readonly_retries) + sizeof(uint64_t))
BFTKV_STATIC_ASSERT(CLIENT_STATS_SIZE_0 <= sizeof(struct bftkv_client_stats), "fields are only appended");
/* A struct_size beyond this is garbage, not a newer header. */
#define CLIENT_STATS_SIZE_LIMIT 4096u

int bftkv_client_stats(struct bftkv_client *c, struct bftkv_client_stats *out)
{
    if (c == NULL || out == NULL || out->struct_size < CLIENT_STATS_SIZE_0
        || out->struct_size > CLIENT_STATS_SIZE_LIMIT) {
        return BFTKV_E_INVAL;
    }
    struct bftkv_client_stats st;
    if (c->part != NULL) {
        client_route_stats(c, &st);
        size_t rsize = out->struct_size < sizeof st ? out->struct_size : sizeof st;
        size_t want = out->struct_size;
        st.struct_size = rsize;
        memcpy(out, &st, rsize);
        memset((unsigned char *)out + rsize, 0, want - rsize);
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    st = c->stats;
    st.in_flight = c->in_flight;
    st.queued = c->fifo_len;
    pthread_mutex_unlock(&c->mu);
    client_loop_datagrams(c->io, &st.datagrams_sent, &st.datagrams_received);
    /* Up to the caller's size; a newer program's fields this library lacks read 0. */
    size_t size = out->struct_size;
    size_t known = size < sizeof st ? size : sizeof st;
    st.struct_size = known;
    memcpy(out, &st, known);
    memset((unsigned char *)out + known, 0, size - known);
    return 0;
}
