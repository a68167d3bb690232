/* The I/O thread of a client handle (client_lib_internal.h has the design).
 *
 * One loop, like Redis's ae: before sleeping, expire async requests whose time is
 * up, move queued requests onto free lanes (pbft_client_submit), send the outbox
 * (every message of the iteration to one replica rides in one datagram, DESIGN §5
 * "The datagram budget"); then sleep in net_udp_poll until a datagram arrives, a
 * submitter wakes us, or the next deadline (a retransmission, or an async
 * request's timeout) is due; then step the engine with each received message and
 * with a tick when due, handing completions back as they come.
 *
 * Completions are handed back in batches: under mu the I/O thread writes sync
 * results (into the caller's buffer) and collects async callbacks; it calls the
 * callbacks after releasing mu, so a callback may submit, and before the next
 * engine call, so a GET's value (which points into the engine client) is still
 * valid during the callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/wire.h"
#include "net/client_lib_internal.h"

uint64_t client_lib_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void client_lib_wake(struct bftkv_client *c)
{
    static const uint8_t byte = 0;
    /* Failure (a full socket buffer) is harmless: the thread has datagrams to read. */
    (void)send(c->wake_fd, &byte, sizeof byte, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ---- Sending ---------------------------------------------------------------------------- */

/* Move every outbox message into the transport's open datagrams (net_udp_flush
 * sends them). A message the transport refuses is lost like a dropped datagram:
 * the engine retransmits.
 *
 * The handle's first REQUEST goes to every replica, whatever the engine asked. A
 * replica answers a client at the source address of the client's latest
 * authenticated REQUEST it received itself (net/server.h, "address book"), and a
 * backup receives nothing from a client that talks only to the primary: without
 * this, every backup's reply would be lost until the first retransmission
 * (retransmit_ms, 100 ms by default), and a short-lived client like the CLI would
 * wait that long for every write. One broadcast teaches every replica the
 * handle's address; a backup that gets the small request relays it to the
 * primary once, which drops the duplicate (engine/replica_request.c). */
static void io_send_outbox(struct bftkv_client *c)
{
    for (uint32_t i = 0; i < c->out.nmsgs; i++) {
        const struct pbft_out_msg *m = &c->out.msgs[i];
        const uint8_t *p = c->out.buf + m->off;
        bool to_all = m->dest_kind == PBFT_DEST_ALL_REPLICAS;
        if (!c->announced && m->len >= WIRE_HEADER_SIZE) {
            struct wire_header h;
            wire_header_read(p, &h);
            if (h.type == WIRE_REQUEST) {
                c->announced = true;
                to_all = true;
            }
        }
        if (to_all) {
            for (uint16_t j = 0; j < c->n; j++) {
                (void)net_udp_queue(c->udp, &c->replica_addr[j], c->replica_addrlen[j], p, m->len);
            }
        } else if (m->dest_kind == PBFT_DEST_REPLICA && m->dest_id < c->n) {
            (void)net_udp_queue(c->udp, &c->replica_addr[m->dest_id], c->replica_addrlen[m->dest_id], p, m->len);
        }
    }
    pbft_out_reset(&c->out);
}

/* ---- Completions (mu held) ---------------------------------------------------------------- */

static void io_sync_result(struct client_slot *s, int status, const uint8_t *val, size_t vlen)
{
    if (status == 0 && s->op == BFTKV_OP_GET) {
        if (s->kind == KIND_SYNC_ALLOC) {
            s->alloc = malloc(vlen + 1u);
            if (s->alloc == NULL) {
                status = BFTKV_E_NOMEM;
            } else {
                if (vlen > 0) {
                    memcpy(s->alloc, val, vlen);
                }
                ((uint8_t *)s->alloc)[vlen] = 0;
            }
        } else if (vlen > s->cap) {
            status = BFTKV_E_BUF_TOO_SMALL; /* the caller's buffer stays untouched */
        } else if (vlen > 0) {
            memcpy(s->buf, val, vlen);
        }
        s->rlen = vlen;
    }
    s->status = status;
    s->state = SLOT_DONE;
    pthread_cond_signal(&s->cond);
}

/* Finish slot idx (on a lane, or failed to start) with status and, for a GET,
 * the value (valid until the next engine call). Async callbacks go to calls. */
static void io_finish(struct bftkv_client *c, uint32_t idx, int status, const uint8_t *val, size_t vlen,
                      struct client_call *calls, uint32_t *k)
{
    struct client_slot *s = &c->slots[idx];
    if (s->state == SLOT_ABANDONED) {
        c->stats.late_results++; /* its caller had given up: drop the result */
        client_lib_slot_free(c, idx);
        return;
    }
    BFTKV_ASSERT(s->state == SLOT_ACTIVE || s->state == SLOT_QUEUED);
    if (s->kind != KIND_ASYNC) {
        io_sync_result(s, status, val, vlen);
        return;
    }
    BFTKV_ASSERT(*k < CLIENT_BATCH_MAX);
    bool value = status == 0 && s->op == BFTKV_OP_GET;
    calls[(*k)++] = (struct client_call){ .cb = s->cb,
                                          .arg = s->arg,
                                          .status = status,
                                          .val = value ? val : NULL,
                                          .vlen = value ? vlen : 0 };
    client_lib_async_unlink(c, idx);
    client_lib_slot_free(c, idx);
}

static void io_calls(const struct client_call *calls, uint32_t k)
{
    for (uint32_t i = 0; i < k; i++) {
        calls[i].cb(calls[i].arg, calls[i].status, calls[i].val, calls[i].vlen);
    }
}

/* The engine reported n completions in c->done. */
static void io_complete(struct bftkv_client *c, uint32_t n)
{
    struct client_call calls[CLIENT_BATCH_MAX];
    uint32_t k = 0;
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < n; i++) {
        const struct pbft_completion *d = &c->done[i];
        BFTKV_ASSERT(d->lane < c->lanes && c->lane_slot[d->lane] != CLIENT_NONE);
        uint32_t idx = c->lane_slot[d->lane];
        c->lane_slot[d->lane] = CLIENT_NONE;
        c->in_flight--;
        c->stats.completed++;
        io_finish(c, idx, d->status, d->value, d->vlen, calls, &k);
    }
    pthread_mutex_unlock(&c->mu);
    io_calls(calls, k);
}

static void io_step(struct bftkv_client *c, uint8_t kind, const uint8_t *msg, size_t len)
{
    struct pbft_event ev = { .kind = kind, .now_ns = client_lib_now_ns(), .msg = msg, .len = len };
    uint32_t n = pbft_client_step(c->engine, &ev, &c->out, c->done, c->lanes);
    if (n > 0) {
        io_complete(c, n);
    }
    if (c->out.more) {
        io_send_outbox(c); /* the postponed rest goes at the next tick, due at once */
    }
}

/* ---- Receiving --------------------------------------------------------------------------- */

/* A datagram: a wake-up (from our own wake socket), or messages back to back
 * (engine/wire.h), each stepped on its own. A message whose declared length runs
 * past the datagram goes to the engine as it is, which drops and counts it. */
static void io_on_datagram(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                           size_t len)
{
    struct bftkv_client *c = arg;
    (void)srclen;
    if (net_addr_equal(src, &c->wake_src)) {
        c->io_wakeups++;
        return;
    }
    size_t off = 0;
    while (off < len) {
        size_t mlen = len - off;
        if (mlen >= WIRE_HEADER_SIZE) {
            struct wire_header h;
            wire_header_read(data + off, &h);
            size_t want = WIRE_HEADER_SIZE + (size_t)h.body_len + h.auth_len;
            mlen = want < mlen ? want : mlen;
        }
        io_step(c, PBFT_EV_RECEIVE, data + off, mlen);
        off += mlen;
    }
}

/* ---- The loop ---------------------------------------------------------------------------- */

/* Async requests past their deadline fail with BFTKV_E_TIMEOUT (mu held). */
static uint32_t io_expire(struct bftkv_client *c, uint64_t now, struct client_call *calls, uint32_t k)
{
    while (c->async_head != CLIENT_NONE && k < CLIENT_BATCH_MAX) {
        uint32_t idx = c->async_head;
        struct client_slot *s = &c->slots[idx];
        if (s->deadline_ns > now) {
            break;
        }
        calls[k++] = (struct client_call){ .cb = s->cb, .arg = s->arg, .status = BFTKV_E_TIMEOUT };
        client_lib_async_unlink(c, idx);
        c->stats.timeouts++;
        if (s->state == SLOT_QUEUED) {
            client_lib_fifo_remove(c, idx); /* O(queue), on this rare path only */
            client_lib_slot_free(c, idx);
        } else {
            BFTKV_ASSERT(s->state == SLOT_ACTIVE);
            s->state = SLOT_ABANDONED; /* freed when its late result comes */
        }
    }
    return k;
}

/* Move queued requests onto free lanes (mu held: a sync caller's key and value
 * are read here, and it cannot withdraw them meanwhile). */
static uint32_t io_start_queued(struct bftkv_client *c, uint64_t now, struct client_call *calls, uint32_t k)
{
    while (c->fifo_len > 0 && c->in_flight < c->lanes && k < CLIENT_BATCH_MAX) {
        uint32_t idx = c->fifo[c->fifo_head];
        c->fifo_head = (c->fifo_head + 1u) % c->nslots;
        c->fifo_len--;
        struct client_slot *s = &c->slots[idx];
        BFTKV_ASSERT(s->state == SLOT_QUEUED);
        int lane = pbft_client_submit(c->engine, now, s->op, s->key, s->klen, s->val, s->vlen, &c->out);
        if (lane == BFTKV_E_AGAIN) {
            io_send_outbox(c);
            lane = pbft_client_submit(c->engine, now, s->op, s->key, s->klen, s->val, s->vlen, &c->out);
        }
        if (lane < 0) {
            io_finish(c, idx, lane, NULL, 0, calls, &k); /* validated already: should not happen */
            continue;
        }
        BFTKV_ASSERT((uint32_t)lane < c->lanes && c->lane_slot[lane] == CLIENT_NONE);
        s->state = SLOT_ACTIVE;
        s->lane = (uint16_t)lane;
        c->lane_slot[lane] = idx;
        c->in_flight++;
        free(s->heap); /* the engine copied the request */
        s->heap = NULL;
    }
    return k;
}

/* The engine's counters, mirrored for bftkv_client_stats (mu held). */
static void io_mirror_stats(struct bftkv_client *c)
{
    const struct pbft_client_stats *es = pbft_client_stats(c->engine);
    uint64_t dropped = 0;
    for (uint32_t i = 0; i < WIRE_DROP_COUNT; i++) {
        dropped += es->drops.count[i];
    }
    c->stats.retransmissions = es->retransmissions;
    c->stats.readonly_fallbacks = es->readonly_fallbacks;
    c->stats.replies_dropped = dropped;
    c->wakeups_seen = c->io_wakeups;
}

static int io_timeout_ms(uint64_t deadline_ns, uint64_t now)
{
    if (deadline_ns <= now) {
        return 0;
    }
    uint64_t ms = (deadline_ns - now + 999999u) / 1000000u;
    return ms > CLIENT_IDLE_POLL_MS ? CLIENT_IDLE_POLL_MS : (int)ms;
}

void *client_lib_io_main(void *arg)
{
    struct bftkv_client *c = arg;
    struct client_call calls[CLIENT_BATCH_MAX];
    for (;;) {
        uint64_t now = client_lib_now_ns();
        pthread_mutex_lock(&c->mu);
        if (c->closing) {
            pthread_mutex_unlock(&c->mu);
            break;
        }
        c->io_sleeping = false;
        uint32_t k = io_expire(c, now, calls, 0);
        k = io_start_queued(c, now, calls, k);
        io_mirror_stats(c);
        pthread_mutex_unlock(&c->mu);
        io_calls(calls, k);
        io_send_outbox(c);
        (void)net_udp_flush(c->udp);

        /* Sleep until a datagram, a wake-up or the next deadline. Submitters wake
         * us only when we could start their request (a lane is free) or must fail
         * it sooner than we would wake anyway; with every lane busy the next
         * completion arrives as a datagram. */
        uint64_t deadline = pbft_client_next_deadline(c->engine);
        pthread_mutex_lock(&c->mu);
        bool busy = k == CLIENT_BATCH_MAX || c->closing || (c->fifo_len > 0 && c->in_flight < c->lanes);
        if (c->async_head != CLIENT_NONE && c->slots[c->async_head].deadline_ns < deadline) {
            deadline = c->slots[c->async_head].deadline_ns;
        }
        c->io_sleeping = !busy;
        c->sleep_until_ns = deadline;
        pthread_mutex_unlock(&c->mu);
        int timeout_ms = busy ? 0 : io_timeout_ms(deadline, client_lib_now_ns());
        if (net_udp_poll(c->udp, timeout_ms, io_on_datagram, c) < 0) {
            struct timespec pause = { .tv_sec = 0, .tv_nsec = 1000000 }; /* do not spin on a broken socket */
            nanosleep(&pause, NULL);
        }
        if (pbft_client_next_deadline(c->engine) <= client_lib_now_ns()) {
            io_step(c, PBFT_EV_TICK, NULL, 0);
        }
    }
    return NULL;
}
