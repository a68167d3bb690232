/* One handle's share of the I/O loop (client_internal.h has the design; the loop
 * itself, its socket and its sleep are client_loop.c's, shared by the partitions
 * of a routing handle).
 *
 * Each time the loop visits a handle, before it sleeps: expire async requests
 * whose time is up, move queued requests onto free lanes (pbft_client_submit),
 * queue the outbox on the socket (every message of the iteration to one replica
 * rides in one datagram, docs/design.md §6). Between visits the loop steps the
 * engine with each received message of the handle's group and with a tick when
 * its deadline is due, handing completions back as they come.
 *
 * Replies for lanes this handle does not hold (another handle of the same client
 * id holds them: the replicas send every reply of a client id to the address of
 * its newest request) are passed on to their holder (client_session.c).
 *
 * What each replica was heard to say -- an authenticated reply, a reply that
 * failed authentication, an answer to a status probe -- is noted for the message
 * of a failed call (client_diag.c). When a request goes unanswered past its
 * first retransmission, replicas silent for that long get a status probe (an
 * authenticated admin STATS request, engine/wire_admin.h), at most once per
 * CLIENT_PROBE_INTERVAL_MS: their answer tells a replica that is up but cannot
 * make progress from one that is down, or refuses this client.
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
#include "engine/wire_admin.h"
#include "client/client_internal.h"
#include "engine/wire_map.h"

/* Status probes: one round at most this often. */
#define CLIENT_PROBE_INTERVAL_MS 500u

uint64_t client_io_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Sending ---------------------------------------------------------------------------- */

/* Move every outbox message into the transport's open datagrams (net_udp_flush
 * sends them). A message the transport refuses is lost like a dropped datagram:
 * the engine retransmits.
 *
 * The handle's first REQUEST goes to every replica, whatever the engine asked. A
 * replica answers a client at the source address of the client's latest
 * authenticated REQUEST it received itself (server/server.h, "address book"), and a
 * backup receives nothing from a client that talks only to the primary: without
 * this, every backup's reply would be lost until the first retransmission
 * (retransmit_ms, 100 ms by default), and a short-lived client like the CLI would
 * wait that long for every write. One broadcast teaches every replica the
 * handle's address; a backup that gets the small request relays it to the
 * primary once, which drops the duplicate (engine/request.c). */
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
                (void)net_udp_queue(c->io->udp, &c->replica_addr[j], c->replica_addrlen[j], p, m->len);
            }
        } else if (m->dest_kind == PBFT_DEST_REPLICA && m->dest_id < c->n) {
            (void)net_udp_queue(c->io->udp, &c->replica_addr[m->dest_id], c->replica_addrlen[m->dest_id], p, m->len);
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
        client_ops_slot_free(c, idx);
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
    client_ops_async_unlink(c, idx);
    client_ops_slot_free(c, idx);
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
        BFTKV_ASSERT(d->lane < c->lanes);
        BFTKV_ASSERT(c->lane_slot[d->lane] != CLIENT_NONE);
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
    struct pbft_event ev = { .kind = kind, .now_ns = client_io_now_ns(), .msg = msg, .len = len };
    uint32_t n = pbft_client_step(c->engine, &ev, &c->out, c->done, c->lanes);
    if (n > 0) {
        io_complete(c, n);
    }
    if (c->out.more) {
        io_send_outbox(c); /* the postponed rest goes at the next tick, due at once */
    }
}

/* ---- Receiving --------------------------------------------------------------------------- */

/* The replica whose configured address src is, or -1. */
static int io_replica_of(const struct bftkv_client *c, const struct sockaddr_storage *src)
{
    for (uint16_t j = 0; j < c->n; j++) {
        if (net_addr_equal(src, &c->replica_addr[j])) {
            return j;
        }
    }
    return -1;
}

/* Replies the engine turned away: every drop reason, and ignored replies. */
static uint64_t io_engine_rejects(const struct pbft_client_stats *es)
{
    uint64_t k = es->replies_ignored;
    for (uint32_t i = 0; i < WIRE_DROP_COUNT; i++) {
        k += es->drops.count[i];
    }
    return k;
}

/* REPLY body: client u16 | lane u16 | status i16 | ... (engine/wire.h). */
static uint16_t io_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

/* A REPLY from a replica for a lane of our client id that another handle holds:
 * pass it on to that handle (only replies straight from a replica, so a passed-on
 * one is never passed on again). Returns whether it was. */
static bool io_forward(struct bftkv_client *c, const struct wire_header *h, int replica, const uint8_t *msg,
                       size_t mlen)
{
    if (replica < 0 || h->type != WIRE_REPLY || mlen < WIRE_HEADER_SIZE + 4u) {
        return false;
    }
    const uint8_t *body = msg + WIRE_HEADER_SIZE;
    uint16_t lane = io_le16(body + 2);
    if (io_le16(body) != c->id || (lane >= c->lane_base && lane - c->lane_base < c->lanes)
        || lane >= PBFT_LANES_MAX) {
        return false;
    }
    struct sockaddr_storage to;
    socklen_t tolen = 0;
    if (client_session_owner(&c->lease, lane, &to, &tolen) == 0) {
        (void)net_udp_queue(c->io->udp, &to, tolen, msg, mlen);
        c->forwarded++;
        c->io->flush_now = true;
    }
    return true; /* not ours either way: the engine would only ignore it */
}

/* An ADMIN-REPLY: the answer to a status probe, or junk. */
static void io_on_admin_reply(struct bftkv_client *c, int replica, const uint8_t *msg, size_t mlen)
{
    uint16_t sender = 0;
    uint64_t nonce = 0;
    const uint8_t *json = NULL;
    size_t jlen = 0;
    uint64_t now = client_io_now_ns();
    if (wire_admin_reply_check(&c->auth, c->group, msg, mlen, &sender, &nonce, &json, &jlen) && sender < c->n) {
        c->heard_io[sender].probe_ns = now;
        c->heard_dirty = true;
    } else if (replica >= 0) {
        c->heard_io[replica].bad_auth_ns = now;
        c->heard_dirty = true;
    }
}

/* Step one message and note what its sender was heard to say. */
static void io_on_message(struct bftkv_client *c, const struct wire_header *h, int replica, const uint8_t *msg,
                          size_t mlen)
{
    if (h->type != WIRE_REPLY) {
        io_step(c, PBFT_EV_RECEIVE, msg, mlen);
        return;
    }
    const struct pbft_client_stats *es = pbft_client_stats(c->engine);
    uint64_t rejects = io_engine_rejects(es);
    uint64_t bad_auth = es->drops.count[WIRE_DROP_BAD_AUTH];
    io_step(c, PBFT_EV_RECEIVE, msg, mlen);
    uint64_t now = client_io_now_ns();
    if (io_engine_rejects(es) == rejects && h->sender < c->n && mlen >= WIRE_HEADER_SIZE + 6u) {
        /* authenticated by the engine (auth_reply_check): h->sender is who sent it */
        uint16_t from = 0;
        uint64_t epoch = pbft_client_epoch_seen(c->engine, &from);
        if (epoch > atomic_load_explicit(&c->io->epoch_hint, memory_order_relaxed))
            client_epoch_hint(c, from, epoch);
        c->heard_io[h->sender].reply_ns = now;
        c->heard_io[h->sender].reply_status = (int16_t)io_le16(msg + WIRE_HEADER_SIZE + 4);
        c->heard_dirty = true;
    } else if (es->drops.count[WIRE_DROP_BAD_AUTH] != bad_auth && replica >= 0) {
        c->heard_io[replica].bad_auth_ns = now;
        c->heard_dirty = true;
    }
}

/* One message of a datagram (client_loop.c splits datagrams and picks the
 * handle by the header's group). A message too short for a header goes to the
 * engine as it is, which drops and counts it. */
void client_io_on_message(struct bftkv_client *c, const struct sockaddr_storage *src, const struct wire_header *h,
                          const uint8_t *msg, size_t mlen)
{
    int replica = io_replica_of(c, src);
    if (mlen >= WIRE_HEADER_SIZE && h->type == WIRE_ADMIN_REPLY) {
        io_on_admin_reply(c, replica, msg, mlen);
    } else if (mlen >= WIRE_HEADER_SIZE && h->type == WIRE_MAP_NOTICE) {
        /* A node refused a request of ours (engine/wire_map.h): unauthenticated,
         * so taken only from a replica address of this group, and only as a
         * reason to fetch the map (client/client_epoch.c). */
        struct wire_map_notice n;
        if (replica >= 0 && wire_map_notice_check(msg, mlen, &n) && n.group == c->group) {
            atomic_fetch_add_explicit(&c->io->notices, 1u, memory_order_relaxed);
            if (n.epoch > atomic_load_explicit(&c->io->epoch_hint, memory_order_relaxed))
                client_epoch_hint(c, (uint16_t)replica, n.epoch);
        }
    } else if (mlen < WIRE_HEADER_SIZE || !io_forward(c, h, replica, msg, mlen)) {
        io_on_message(c, h, replica, msg, mlen);
    }
}

/* ---- After a retransmission: status probes -------------------------------------- */

static uint64_t io_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A request went unanswered past a retransmission: probe the replicas that have
 * sent no authenticated reply for that long (at most one round per
 * CLIENT_PROBE_INTERVAL_MS). The nonce is the wall clock in ns, as the admin
 * protocol asks (engine/wire_admin.h), and grows from round to round. */
static void io_probe(struct bftkv_client *c, uint64_t now)
{
    if (c->probe_round_ns != 0 && now - c->probe_round_ns < (uint64_t)CLIENT_PROBE_INTERVAL_MS * 1000000u) {
        return;
    }
    uint64_t nonce = io_wall_ns();
    c->probe_nonce = nonce > c->probe_nonce ? nonce : c->probe_nonce + 1u;
    size_t len = wire_admin_request_encode(c->probe_msg, ADMIN_REQUEST_MAX, &c->auth, c->group, ADMIN_CMD_STATS,
                                      c->probe_nonce);
    if (len == 0) {
        return;
    }
    c->probe_round_ns = now;
    uint64_t quiet = c->retransmit_ns;
    for (uint16_t j = 0; j < c->n; j++) {
        struct client_heard *h = &c->heard_io[j];
        if (h->reply_ns != 0 && now - h->reply_ns < quiet) {
            continue;
        }
        (void)net_udp_queue(c->io->udp, &c->replica_addr[j], c->replica_addrlen[j], c->probe_msg, len);
        h->probe_sent_ns = now;
        c->heard_dirty = true;
        c->probes++;
    }
}

/* Called before the outbox is sent: the engine's tick may have queued
 * retransmissions. */
static void io_after_retransmit(struct bftkv_client *c, uint64_t now)
{
    uint64_t retransmits = pbft_client_stats(c->engine)->retransmissions;
    if (retransmits == c->retransmits_seen) {
        return;
    }
    c->retransmits_seen = retransmits;
    io_probe(c, now);
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
        client_ops_async_unlink(c, idx);
        c->stats.timeouts++;
        if (s->state == SLOT_QUEUED) {
            client_ops_fifo_remove(c, idx); /* O(queue), on this rare path only */
            client_ops_slot_free(c, idx);
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
        BFTKV_ASSERT((uint32_t)lane < c->lanes);
        BFTKV_ASSERT(c->lane_slot[lane] == CLIENT_NONE);
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
    c->stats.readonly_timeouts = es->readonly_timeouts;
    c->stats.readonly_resends = es->readonly_resends;
    c->stats.readonly_retries = es->readonly_retries;
    c->stats.stale_reads = es->stale_submitted;
    c->stats.stale_moves = es->stale_moves;
    c->stats.replies_dropped = dropped;
    c->stats.replies_forwarded = c->forwarded;
    c->stats.probes_sent = c->probes;
    if (c->heard_dirty) {
        memcpy(c->heard, c->heard_io, (size_t)c->n * sizeof c->heard[0]);
        c->heard_dirty = false;
    }
}

bool client_io_visit(struct bftkv_client *c, uint64_t now)
{
    struct client_call calls[CLIENT_BATCH_MAX];
    pthread_mutex_lock(&c->mu);
    uint32_t k = io_expire(c, now, calls, 0);
    k = io_start_queued(c, now, calls, k);
    io_mirror_stats(c);
    bool more = k == CLIENT_BATCH_MAX || (c->fifo_len > 0 && c->in_flight < c->lanes);
    pthread_mutex_unlock(&c->mu);
    io_calls(calls, k);
    io_after_retransmit(c, now);
    io_send_outbox(c);
    /* When the loop must come back: the engine's next deadline (it moved with
     * the submissions), or the first async request's timeout. Submitters read it
     * under mu (client_loop_ready). */
    uint64_t key = pbft_client_next_deadline(c->engine);
    pthread_mutex_lock(&c->mu);
    if (c->async_head != CLIENT_NONE && c->slots[c->async_head].deadline_ns < key) {
        key = c->slots[c->async_head].deadline_ns;
    }
    c->io_key_ns = key;
    pthread_mutex_unlock(&c->mu);
    return more;
}

void client_io_tick(struct bftkv_client *c, uint64_t now)
{
    if (pbft_client_next_deadline(c->engine) <= now) {
        io_step(c, PBFT_EV_TICK, NULL, 0);
    }
}
