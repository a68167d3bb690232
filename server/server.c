/* The server runtime's core (server/server.h): building a replica from the config,
 * and the protocol side both thread layouts share -- a datagram's messages
 * through the engine, the address book, the outbox to destinations (through the
 * Byzantine filter when one is set), admin requests, timers.
 *
 * Everything here that touches the engine runs on the protocol thread (the one
 * thread of the single layout); see server_internal.h for who writes what.
 */
#include "server/server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "common/log.h"
#include "cluster/cluster.h"
#include "server/metrics.h"
#include "server/server_internal.h"
#include "server/snapshot.h"

BFTKV_STATIC_ASSERT(BFTKV_DGRAM_CLIENT_MSGS_MAX == PBFT_LANES_MAX, "a client's budget: one REQUEST per lane");
BFTKV_STATIC_ASSERT(BFTKV_DGRAM_REPLICA_MSGS_MAX * (WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + 4u * BFTKV_MAC_SIZE)
                        > BFTKV_DATAGRAM_MAX,
                    "no correct replica of a group of n >= 4 fills its per-datagram budget");

uint64_t server_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The stage histograms keep 2 significant figures (1% relative error: 128
 * slots per doubling, 30 KiB a histogram) where the bench's keep 3 (0.1%,
 * 216 KiB). A step is recorded for every message, and a node hosting P
 * partitions records into P times the histograms: at P = 64 the slot writes
 * missed the cache so often that recording was ~10% of a node's samples. */
#define SERVER_HIST_SIGFIGS 2

void server_hist_record(struct server *s, enum server_stage st, uint16_t k, int64_t value)
{
    BFTKV_ASSERT(k < s->hist_count[st]);
    struct server_hist *h = &s->hist[st][k];
    pthread_mutex_lock(&h->mu);
    hdr_record_value(h->h, value);
    pthread_mutex_unlock(&h->mu);
}

/* ---- Creation ----------------------------------------------------------------------- */

static int server_hists_create(struct server *s, uint16_t workers)
{
    for (int st = 0; st < SERVER_STAGE_COUNT; st++) {
        uint16_t k = st == SERVER_STAGE_AUTH ? workers : 1u;
        s->hist[st] = calloc(k, sizeof *s->hist[st]);
        if (s->hist[st] == NULL)
            return BFTKV_E_NOMEM;
        s->hist_count[st] = k;
        for (uint16_t i = 0; i < k; i++) {
            pthread_mutex_init(&s->hist[st][i].mu, NULL);
            int rc = hdr_init(1, 60000000000LL, SERVER_HIST_SIGFIGS, &s->hist[st][i].h);
            if (rc != 0)
                return rc;
        }
    }
    return hdr_init(1, 60000000000LL, SERVER_HIST_SIGFIGS, &s->merge);
}

/* Resolve every replica's address, and the numeric form of our own to bind. */
static int server_addresses_resolve(struct server *s, char *err, size_t errlen)
{
    for (uint16_t r = 0; r < s->n; r++) {
        int rc = bftkv_config_replica_sockaddr(s->cfg, r, &s->replica_addr[r], &s->replica_alen[r], err, errlen);
        if (rc != 0)
            return rc;
    }
    int g = getnameinfo((const struct sockaddr *)&s->replica_addr[s->id], s->replica_alen[s->id], s->bind_host,
                        sizeof s->bind_host, NULL, 0, NI_NUMERICHOST);
    if (g != 0) {
        errbuf_put(err, errlen, "%s: cannot format the address of replica %u: %s", s->cfg->name, s->id,
                   gai_strerror(g));
        return BFTKV_E_CONFIG;
    }
    s->bind_port = s->cfg->replica[s->id].port;
    return 0;
}

/* A line's view field (common/log.h): read on the protocol thread only, which
 * alone sets this replica's context. */
static unsigned long long server_log_view(const void *arg)
{
    const struct server *s = arg;
    return s->replica != NULL ? (unsigned long long)pbft_replica_view(s->replica) : 0;
}

int server_create(const struct server_options *opt, struct server **out, char *err, size_t errlen)
{
    if (opt == NULL || opt->cfg == NULL || opt->keys == NULL || out == NULL)
        return BFTKV_E_INVAL;
    const struct bftkv_config *cfg = opt->cfg;
    if (opt->id >= cfg->n) {
        errbuf_put(err, errlen, "%s: replica %u is not in the group", cfg->name, opt->id);
        return BFTKV_E_CONFIG;
    }
    if (opt->byzantine != BYZ_NONE && !cfg->test_modes) {
        errbuf_put(err, errlen, "%s: --byzantine needs 'test_modes on' in the config (replica %u)", cfg->name,
                   opt->id);
        return BFTKV_E_CONFIG;
    }
    struct server *s = calloc(1, sizeof *s);
    if (s == NULL)
        return BFTKV_E_NOMEM;
    s->cfg = cfg;
    s->id = opt->id;
    s->n = cfg->n;
    s->backend_asked = opt->backend;
    s->lim = (struct wire_limits){.group = cfg->group, .n = cfg->n, .clients_max = cfg->clients};
    atomic_init(&s->stop, false);
    atomic_init(&s->failed, false);
    for (int i = 0; i < SERVER_CTR_COUNT; i++)
        atomic_init(&s->ctr[i], 0);
    for (int i = 0; i < WIRE_DROP_COUNT; i++)
        atomic_init(&s->rx_drops[i], 0);
    for (int i = 0; i < ADMIN_DROP_COUNT; i++)
        atomic_init(&s->admin_drops[i], 0);

    int rc = bftkv_key_auth_init(cfg, BFTKV_CONFIG_REPLICA, s->id, opt->keys, &s->auth, err, errlen);
    if (rc != 0)
        goto fail;
    s->auth_ready = true;
    rc = server_addresses_resolve(s, err, errlen);
    if (rc != 0)
        goto fail;
    struct store_config sc = {.shards = cfg->store_shards, .initial_slots = 0};
    rc = store_create(&sc, &s->store);
    if (rc != 0)
        goto fail;
    struct pbft_replica_config rcfg;
    rc = bftkv_config_fill_replica(cfg, s->id, &rcfg);
    /* A durable replica is created holding state; server_durable_open makes it
     * unsure again when its log has nothing to rebuild it from. */
    rcfg.durable = cfg->durability != BFTKV_CONFIG_DURABILITY_NONE;
    rcfg.restarted = opt->restarted && !rcfg.durable;
    if (rc == 0)
        rc = pbft_replica_create(&rcfg, &s->auth, s->store, &s->replica);
    s->log_ctx = (struct log_ctx){.node = s->id, .partition = cfg->group, .view = server_log_view, .arg = s};
    if (rc != 0) {
        errbuf_put(err, errlen, "%s: the engine refused the configuration of replica %u", cfg->name, s->id);
        goto fail;
    }
    rc = pbft_out_init(&s->out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS);
    if (rc != 0)
        goto fail;
    rc = rcfg.durable ? server_durable_open(s, &rcfg, opt->restarted, err, errlen)
                      : server_durable_forget(s, err, errlen);
    if (rc != 0)
        goto fail;
    s->seen_holds_state = rcfg.restarted ? 0u : 1u;
    s->lanes = rcfg.lanes;
    s->book = calloc((size_t)(cfg->clients ? cfg->clients : 1u) * s->lanes, sizeof *s->book);
    s->book_ts = calloc((size_t)(cfg->clients ? cfg->clients : 1u) * s->lanes, sizeof *s->book_ts);
    s->admin_msg = malloc(ADMIN_REPLY_MAX);
    s->json = malloc(ADMIN_JSON_MAX + 1u);
    if (s->book == NULL || s->book_ts == NULL || s->admin_msg == NULL || s->json == NULL) {
        rc = BFTKV_E_NOMEM;
        goto fail;
    }
    rc = admin_guard_init(&s->admin, cfg->clients);
    if (rc != 0)
        goto fail;
    uint16_t workers = cfg->threads == BFTKV_CONFIG_THREADS_STAGED && cfg->auth_workers > 0 ? cfg->auth_workers : 1u;
    rc = server_hists_create(s, workers);
    rc = rc ? rc : server_metrics_create(s);
    if (rc != 0)
        goto fail;
    if (opt->byzantine != BYZ_NONE) {
        struct byz_context bc;
        byz_context_live(&bc, s->n, cfg->f, s->id, &s->auth, &s->lim, rcfg.request_timeout_ns);
        rc = server_byz_create(opt->byzantine, opt->byzantine_seed, &bc, &s->byz);
        if (rc != 0) {
            errbuf_put(err, errlen, "%s: --byzantine %s refused for replica %u (n=%u): %s", cfg->name,
                       byz_mode_name(opt->byzantine), s->id, s->n, bftkv_strerror(rc));
            goto fail;
        }
    }
    *out = s;
    return 0;
fail:
    server_destroy(s);
    return rc;
}

int server_start(struct server *s)
{
    BFTKV_ASSERT(!s->started);
    const struct bftkv_config *cfg = s->cfg;
    struct net_udp_config uc = {
        .host = s->bind_host,
        .port = s->bind_port,
        .backend = s->backend_asked,
        .sndbuf_bytes = (int)cfg->socket_sndbuf,
        .rcvbuf_bytes = (int)cfg->socket_rcvbuf,
    };
    int rc = net_udp_open(&uc, &s->udp);
    if (rc != 0) {
        log_error("cannot open the UDP socket on %s:%u: %s", s->bind_host, s->bind_port, bftkv_strerror(rc));
        return rc;
    }
    s->start_ns = server_now_ns();
    s->deadline_ns = 0;
    s->started = true;
    bool staged = cfg->threads == BFTKV_CONFIG_THREADS_STAGED;
    rc = staged ? server_staged_start(s) : server_single_start(s);
    if (rc != 0) {
        log_error("cannot start the threads: %s", bftkv_strerror(rc));
        s->joined = true;
        return rc;
    }
    char threads[48];
    if (staged)
        snprintf(threads, sizeof threads, "staged auth_workers=%u", (unsigned)s->hist_count[SERVER_STAGE_AUTH]);
    else
        snprintf(threads, sizeof threads, "single");
    log_info("started: replica %u of n=%u f=%u (group %u), %s:%u, backend %s, threads %s%s%s", s->id, s->n,
             cfg->f, cfg->group, s->bind_host, server_port(s), net_udp_backend_name(s->udp), threads,
             s->byz ? ", BYZANTINE " : "", s->byz ? byz_mode_name(server_byz_mode(s->byz)) : "");
    return 0;
}

void server_stop(struct server *s)
{
    if (s == NULL || !s->started || s->joined)
        return;
    atomic_store_explicit(&s->stop, true, memory_order_release);
    if (s->cfg->threads == BFTKV_CONFIG_THREADS_STAGED)
        server_staged_join(s);
    else
        server_single_join(s);
    s->joined = true;
    const struct pbft_replica_stats *st = pbft_replica_stats(s->replica);
    log_info("stopped: replica %u, view %llu, last executed %llu, %llu requests executed", s->id,
             (unsigned long long)pbft_replica_view(s->replica), (unsigned long long)st->last_executed,
             (unsigned long long)st->requests_executed);
}

void server_destroy(struct server *s)
{
    if (s == NULL)
        return;
    server_stop(s);
    server_staged_free(s);
    net_udp_close(s->udp);
    server_byz_destroy(s->byz);
    for (int st = 0; st < SERVER_STAGE_COUNT; st++) {
        for (uint16_t i = 0; s->hist[st] != NULL && i < s->hist_count[st]; i++) {
            hdr_destroy(s->hist[st][i].h);
            pthread_mutex_destroy(&s->hist[st][i].mu);
        }
        free(s->hist[st]);
    }
    hdr_destroy(s->merge);
    server_metrics_destroy(s);
    admin_guard_free(&s->admin);
    free(s->json);
    free(s->admin_msg);
    free(s->book);
    free(s->book_ts);
    server_single_free(s);
    server_durable_close(s);
    if (s->out.buf != NULL)
        pbft_out_free(&s->out);
    pbft_replica_destroy(s->replica);
    store_destroy(s->store);
    if (s->auth_ready)
        auth_destroy(&s->auth);
    free(s);
}

bool server_failed(const struct server *s)
{
    return atomic_load_explicit(&s->failed, memory_order_acquire);
}

uint16_t server_port(const struct server *s)
{
    return s->udp ? net_udp_local_port(s->udp) : 0;
}

const char *server_backend_name(const struct server *s)
{
    return s->udp ? net_udp_backend_name(s->udp) : "none";
}

/* ---- Framing -------------------------------------------------------------------------- */

bool server_framing_ok(const uint8_t *data, size_t len, uint32_t *count)
{
    uint32_t k = 0;
    size_t off = 0;
    if (len == 0)
        return false;
    while (off < len) {
        if (len - off < WIRE_HEADER_SIZE)
            return false;
        const uint8_t *m = data + off;
        if ((uint16_t)(m[0] | (m[1] << 8)) != WIRE_MAGIC || m[2] != WIRE_VERSION)
            return false;
        size_t size = server_msg_size(m);
        if (size > len - off)
            return false;
        off += (size_t)size;
        k++;
    }
    *count = k;
    return true;
}

/* ---- Outbox to destinations ------------------------------------------------------------ */

/* The Byzantine filter's send function, and the plain path: one message to one
 * replica or client. */
static void server_dest_send(void *arg, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    struct server *s = arg;
    if (kind == PBFT_DEST_REPLICA) {
        if (id >= s->n || id == s->id)
            return;
        s->out_replicas(s, (uint64_t)1 << id, msg, len);
        server_count(s, SERVER_CTR_messages_sent, 1);
        return;
    }
    BFTKV_ASSERT(kind == PBFT_DEST_CLIENT);
    /* A REPLY (the engine's only message to clients) goes to where its lane's
     * requests came from. */
    uint16_t lane = wire_reply_lane(msg, len);
    const struct server_peer *p = id < s->cfg->clients && lane < s->lanes ? &s->book[(size_t)id * s->lanes + lane]
                                                                          : NULL;
    if (p == NULL || p->alen == 0) {
        server_count(s, SERVER_CTR_reply_no_address, 1);
        return;
    }
    s->out_addr(s, &p->addr, p->alen, msg, len);
    server_count(s, SERVER_CTR_messages_sent, 1);
}

static void server_dest_filter(struct server *s, uint8_t kind, uint16_t id, const uint8_t *msg, size_t len)
{
    if (s->byz != NULL)
        server_byz_filter(s->byz, kind, id, msg, len, server_now_ns(), server_dest_send, s);
    else
        server_dest_send(s, kind, id, msg, len);
}

/* Send what the outbox holds, in its order, and empty it. A durable replica's
 * records go to the write-ahead log first; its messages stay in the process
 * until a commit that covers them completed (server/server_durable.c), and none
 * goes anywhere once the log failed. */
static void server_outbox_drain(struct server *s)
{
    struct pbft_out *o = &s->out;
    if (s->wal_failed != 0) {
        pbft_out_reset(o);
        return;
    }
    /* Records first: then a message handed over anywhere in the outbox waits
     * for a commit that covers all of its outbox's records, even when a full
     * buffer commits before the outbox's end (pbft.h: a record may sit after
     * the first message that depends on it in the same outbox). */
    for (uint32_t i = 0; s->wal != NULL && i < o->nmsgs; i++) {
        const struct pbft_out_msg *om = &o->msgs[i];
        if (om->dest_kind != PBFT_DEST_PERSIST)
            continue;
        BFTKV_ASSERT(om->ext != NULL || (size_t)om->off + om->len <= o->used);
        server_wal_append(s, om->dest_id, pbft_out_bytes(o, om), om->len);
        if (s->wal_failed != 0) {
            pbft_out_reset(o);
            return;
        }
    }
    uint64_t others = (s->n >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << s->n) - 1u)) & ~((uint64_t)1 << s->id);
    for (uint32_t i = 0; i < o->nmsgs; i++) {
        const struct pbft_out_msg *om = &o->msgs[i];
        BFTKV_ASSERT(om->ext != NULL || (size_t)om->off + om->len <= o->used);
        const uint8_t *bytes = pbft_out_bytes(o, om);
        switch (om->dest_kind) {
        case PBFT_DEST_PERSIST:
            BFTKV_ASSERT(s->wal != NULL); /* only a durable engine lists records: appended above */
            break;
        case PBFT_DEST_REPLICA:
            server_dest_filter(s, PBFT_DEST_REPLICA, om->dest_id, bytes, om->len);
            break;
        case PBFT_DEST_ALL_REPLICAS:
            if (s->byz != NULL) {
                for (uint16_t r = 0; r < s->n; r++)
                    if (r != s->id)
                        server_dest_filter(s, PBFT_DEST_REPLICA, r, bytes, om->len);
            } else if (others != 0) {
                s->out_replicas(s, others, bytes, om->len);
                server_count(s, SERVER_CTR_messages_sent, (uint64_t)__builtin_popcountll(others));
            }
            break;
        case PBFT_DEST_CLIENT:
            server_dest_filter(s, PBFT_DEST_CLIENT, om->dest_id, bytes, om->len);
            break;
        default:
            BFTKV_ASSERT(!"unknown outbox destination kind");
        }
    }
    pbft_out_reset(o);
}

/* Log the engine's view changes and state transfers as they happen (info). */
static void server_engine_log(struct server *s)
{
    uint64_t v = pbft_replica_view(s->replica);
    bool changing = pbft_replica_in_viewchange(s->replica);
    if (v != s->seen_view || changing != s->seen_in_viewchange) {
        if (changing)
            log_info("%sview change to view %llu under way", s->log_prefix, (unsigned long long)v);
        else
            log_info("%sview %llu active, primary %u", s->log_prefix, (unsigned long long)v, (unsigned)(v % s->n));
        s->seen_view = v;
        s->seen_in_viewchange = changing;
    }
    const struct pbft_replica_stats *st = pbft_replica_stats(s->replica);
    if (st->state_transfers != s->seen_transfers) {
        log_info("%sstate transfer done: state installed, last executed %llu",
                 s->log_prefix, (unsigned long long)st->last_executed);
        s->seen_transfers = st->state_transfers;
    }
    if (st->holds_state != s->seen_holds_state) {
        if (st->holds_state)
            log_info("%sholds state again (q replicas holding state vouched for it): takes part in ordering, "
                     "last executed %llu", s->log_prefix, (unsigned long long)st->last_executed);
        else
            log_warn("%sunsure of its state: takes no part in ordering until q replicas holding state vouch for "
                     "it, last executed %llu", s->log_prefix, (unsigned long long)st->last_executed);
        s->seen_holds_state = st->holds_state;
    }
    /* Failed transfers and refused requests: at most one line per 10 s each. */
    uint64_t failed = st->state_transfer_bad_digest + st->state_transfer_bad_chunks + st->state_transfer_unknown_client;
    uint64_t now = s->clock_ns; /* read at the end of the step just logged */
    if (failed != s->seen_xfer_failed && now >= s->xfer_log_ns) {
        log_warn("%sstate transfer of checkpoint %llu from replica %llu failed: %s (%llu failed so far; retrying "
                 "with backoff)",
                 s->log_prefix, (unsigned long long)st->state_transfer_failure_seq,
                 (unsigned long long)st->state_transfer_failure_server,
                 pbft_xfer_failure_name(st->state_transfer_failure), (unsigned long long)failed);
        s->seen_xfer_failed = failed;
        s->xfer_log_ns = now + SERVER_LOG_INTERVAL_NS;
    }
    if (!st->holds_state && st->requests_refused_no_state != s->seen_refused && now >= s->refused_log_ns) {
        log_warn("%sholds no certified state (restarted with empty memory): %llu requests refused with NO_STATE; "
                 "waiting for q = %u other replicas holding state to answer",
                 s->log_prefix, (unsigned long long)st->requests_refused_no_state, (unsigned)pbft_quorum(s->n, s->cfg->f));
        s->seen_refused = st->requests_refused_no_state;
        s->refused_log_ns = now + SERVER_LOG_INTERVAL_NS;
    }
}

/* One engine step (receive or tick) with its outbox sent, resumed until done.
 * The clock is read once, at the end: the STEP histogram is the time from the
 * event's time -- for a received message the previous step's end, or the first
 * read after a wait -- so it includes the message's decoding and address-book
 * work, which ran since then. */
/* The outbox of a step drained, and the step resumed until it is done. */
static void server_outbox_settle(struct server *s)
{
    bool more = s->out.more;
    server_outbox_drain(s);
    while (more) {
        pbft_replica_resume(s->replica, server_now_ns(), &s->out);
        more = s->out.more;
        server_outbox_drain(s);
    }
}

static void server_engine_step(struct server *s, const struct pbft_event *ev)
{
    uint64_t t0 = ev->now_ns;
    pbft_replica_step(s->replica, ev, &s->out);
    server_outbox_settle(s);
    server_count(s, SERVER_CTR_rounds, 1);
    server_hist_record(s, SERVER_STAGE_STEP, 0, (int64_t)(server_clock_read(s) - t0));
    server_engine_log(s);
}

void server_recovery_finish(struct server *s)
{
    log_ctx_set(&s->log_ctx);
    if (!s->recovering)
        return;
    s->recovering = false;
    pbft_replica_recover_done(s->replica, server_clock_read(s), &s->out);
    server_outbox_settle(s);
    server_durable_recovered(s);
    server_engine_log(s);
}

/* ---- Address book ---------------------------------------------------------------------- */

bool server_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *src, socklen_t srclen)
{
    if (a->ss_family != src->ss_family)
        return false;
    if (src->ss_family == AF_INET && srclen >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)src;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (src->ss_family == AF_INET6 && srclen >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)src;
        return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
    }
    return false;
}

bool server_src_is_replica(const struct server *s, const struct sockaddr_storage *src, socklen_t srclen)
{
    for (uint16_t r = 0; r < s->n; r++)
        if (server_addr_same(&s->replica_addr[r], src, srclen))
            return true;
    return false;
}

/* Learn where client c's replies go from one of its REQUESTs. Three rules keep
 * one message from taking them elsewhere:
 *   - only a request the engine admits (pbft_replica_request_admissible: a
 *     configured lane, a timestamp a correct client can send, the client's
 *     MAC) teaches anything: a request the engine refuses right after must not
 *     steer the replies of the ones it accepts;
 *   - only a newer request moves the address: its timestamp must be above the
 *     last one learnt on its (client, lane), the engine's own test of a new
 *     request (TOCS 2002 §4.1), so a replayed old request from elsewhere
 *     cannot steal the replies; and since the book keeps one timestamp per
 *     lane, as the engine's reply cache does, no request moves it further than
 *     the engine moves the client (an absurd timestamp blocks its own lane
 *     here exactly as it does in the engine, not the client's other lanes);
 *   - a REQUEST from a replica's address is one that replica relays
 *     (request.c), not the client's own: its source says nothing
 *     about where the client is.
 * The MAC check of an admissible request is the one authentication of that
 * REQUEST: sm->authenticated tells the engine it was made (unless the auth
 * stage made it before, which the check here then skips). */
static void server_book_learn(struct server *s, const struct sockaddr_storage *src, socklen_t srclen,
                              int8_t *from_replica, struct server_msg *sm)
{
    const struct wire_msg *m = &sm->u.wire;
    if (!pbft_replica_request_admissible(s->replica, m, !sm->authenticated))
        return; /* the engine counts the reason when it sees the message */
    sm->authenticated = true;
    if (srclen > (socklen_t)sizeof(struct sockaddr_storage))
        return;
    if (*from_replica < 0)
        *from_replica = server_src_is_replica(s, src, srclen) ? 1 : 0;
    if (*from_replica != 0)
        return;
    const struct wire_request *rq = &m->u.request;
    BFTKV_ASSERT(rq->client < s->cfg->clients);
    BFTKV_ASSERT(rq->lane < s->lanes); /* admissible */
    uint64_t *ts = &s->book_ts[(size_t)rq->client * s->lanes + rq->lane];
    if (rq->timestamp <= *ts)
        return;
    *ts = rq->timestamp;
    struct server_peer *p = &s->book[(size_t)rq->client * s->lanes + rq->lane];
    memcpy(&p->addr, src, srclen);
    p->alen = srclen;
}

/* ---- Per-datagram message budget ----------------------------------------------------------- */

void server_budget_init(struct server_budget *b)
{
    b->left[SERVER_SENDER_REPLICA] = BFTKV_DGRAM_REPLICA_MSGS_MAX;
    b->left[SERVER_SENDER_CLIENT] = BFTKV_DGRAM_CLIENT_MSGS_MAX;
    b->left[SERVER_SENDER_ADMIN] = BFTKV_DGRAM_ADMIN_MSGS_MAX;
    b->from_replica = -1;
}

bool server_budget_take(struct server *s, struct server_budget *b, const struct sockaddr_storage *src,
                        socklen_t srclen, uint8_t type)
{
    static const enum server_counter excess[SERVER_SENDER_COUNT] = {
        [SERVER_SENDER_REPLICA] = SERVER_CTR_dgram_excess_replica,
        [SERVER_SENDER_CLIENT] = SERVER_CTR_dgram_excess_client,
        [SERVER_SENDER_ADMIN] = SERVER_CTR_dgram_excess_admin,
    };
    enum server_sender k = SERVER_SENDER_REPLICA;
    if (type == WIRE_ADMIN) {
        k = SERVER_SENDER_ADMIN;
    } else if (type == WIRE_REQUEST) {
        if (b->from_replica < 0)
            b->from_replica = server_src_is_replica(s, src, srclen) ? 1 : 0;
        k = b->from_replica != 0 ? SERVER_SENDER_REPLICA : SERVER_SENDER_CLIENT;
    }
    if (b->left[k] == 0) {
        server_count(s, excess[k], 1);
        return false;
    }
    b->left[k]--;
    return true;
}

/* ---- Admin ----------------------------------------------------------------------------- */

/* An admin request server_msg_decode checked (its MAC included): the replay and
 * rate guard, then the stats JSON. */
/* ADMIN_CMD_LOG_LEVEL + L (engine/wire_admin.h): the process's log level, set
 * for an admin_client of the config only; the answer's JSON in s->json. */
static size_t server_admin_log_level(struct server *s, const struct admin_request *rq)
{
    enum log_level want = (enum log_level)(rq->command - ADMIN_CMD_LOG_LEVEL);
    enum log_level was = log_level_get();
    int n;
    if (rq->client >= BFTKV_CLIENTS_MAX || s->cfg->client[rq->client].admin_line == 0) {
        log_warn("client %u asked for log level %s: refused, it is no admin_client of %s", rq->client,
                 log_level_name(want), s->cfg->name);
        n = snprintf(s->json, ADMIN_JSON_MAX + 1u,
                     "{\"error\":\"client %u is no admin_client of this replica's config\",\"log_level\":\"%s\"}",
                     rq->client, log_level_name(was));
    } else {
        log_level_set(want);
        log_write(want < LOG_LEVEL_INFO ? want : LOG_LEVEL_INFO, "log level %s (was %s), set by client %u",
                  log_level_name(want), log_level_name(was), rq->client);
        n = snprintf(s->json, ADMIN_JSON_MAX + 1u, "{\"log_level\":\"%s\",\"was\":\"%s\"}", log_level_name(want),
                     log_level_name(was));
    }
    return n > 0 ? (size_t)n : 0;
}

static void server_admin_handle(struct server *s, const struct sockaddr_storage *src, socklen_t srclen,
                                const struct admin_request *rq)
{
    enum admin_drop d = admin_guard_admit(&s->admin, rq, server_now_ns());
    if (d != ADMIN_OK) {
        atomic_fetch_add_explicit(&s->admin_drops[d], 1, memory_order_relaxed);
        return;
    }
    size_t jl;
    if (rq->command == ADMIN_CMD_STATS) {
        jl = server_stats_json(s, s->json, ADMIN_JSON_MAX + 1u);
        if (jl == 0) {
            log_warn("stats JSON longer than %u bytes: not sent", ADMIN_JSON_MAX);
            return;
        }
    } else {
        jl = server_admin_log_level(s, rq);
    }
    size_t n = wire_admin_reply_encode(s->admin_msg, ADMIN_REPLY_MAX, &s->auth, s->cfg->group,
                                  pbft_replica_view(s->replica), rq, s->json, jl);
    BFTKV_ASSERT(n > 0);
    s->out_addr(s, src, srclen, s->admin_msg, n);
    server_count(s, SERVER_CTR_admin_answered, 1);
    log_debug("stats sent to client %u", rq->client);
}

/* ---- A message, decoded once ------------------------------------------------------------ */

static void server_rx_drop(struct server *s, enum wire_drop reason)
{
    atomic_fetch_add_explicit(&s->rx_drops[reason], 1, memory_order_relaxed);
}

/* The engine's check of a decoded message's own authentication (replica.c,
 * replica_msg_authentic), made here with the same context, so the engine can
 * skip it. */
static bool server_msg_authenticate(struct server *s, struct server_msg *sm)
{
    const struct wire_msg *m = &sm->u.wire;
    bool ok;
    switch (m->h.type) {
    case WIRE_REQUEST:
        if (!auth_client_known(&s->auth, m->h.sender)) {
            server_count(s, SERVER_CTR_unknown_client, 1);
            return false;
        }
        ok = auth_authenticator_check(&s->auth, m);
        break;
    case WIRE_PREPREPARE:
    case WIRE_PREPARE:
    case WIRE_COMMIT:
    case WIRE_STATUS:
    case WIRE_FETCH:
    case WIRE_STATE:
        ok = auth_authenticator_check(&s->auth, m);
        break;
    case WIRE_CHECKPOINT:
    case WIRE_VIEW_CHANGE:
    case WIRE_NEW_VIEW:
        ok = auth_signature_check(&s->auth, m);
        break;
    default:
        server_rx_drop(s, WIRE_DROP_BAD_TYPE); /* REPLY: a client's */
        return false;
    }
    if (!ok)
        server_rx_drop(s, WIRE_DROP_BAD_AUTH);
    sm->authenticated = ok;
    return ok;
}

bool server_msg_decode(struct server *s, const uint8_t *msg, size_t size, bool authenticate,
                       struct server_msg *out)
{
    BFTKV_ASSERT(size >= WIRE_HEADER_SIZE); /* framed (server_framing_ok) */
    out->type = msg[3];
    out->authenticated = false;
    if (out->type == WIRE_ADMIN) {
        enum admin_drop d = wire_admin_request_check(&s->auth, s->cfg->group, msg, size, &out->u.admin);
        if (d != ADMIN_OK)
            atomic_fetch_add_explicit(&s->admin_drops[d], 1, memory_order_relaxed);
        return d == ADMIN_OK;
    }
    struct wire_drop_counters drops;
    memset(&drops, 0, sizeof drops);
    size_t used = 0;
    if (wire_decode(msg, size, &s->lim, &out->u.wire, &used, &drops) != 0) {
        for (int r = 0; r < WIRE_DROP_COUNT; r++)
            if (drops.count[r] != 0)
                atomic_fetch_add_explicit(&s->rx_drops[r], drops.count[r], memory_order_relaxed);
        return false;
    }
    BFTKV_ASSERT(used == size);
    return !authenticate || server_msg_authenticate(s, out);
}

void server_msg_handle(struct server *s, const struct sockaddr_storage *src, socklen_t srclen,
                       int8_t *from_replica, struct server_msg *m)
{
    log_ctx_set(&s->log_ctx);
    if (m->type == WIRE_ADMIN) {
        server_admin_handle(s, src, srclen, &m->u.admin);
        return;
    }
    if (m->u.wire.h.type == WIRE_REQUEST)
        server_book_learn(s, src, srclen, from_replica, m);
    struct pbft_event ev = {.kind = PBFT_EV_RECEIVE,
                            .now_ns = server_clock_now(s),
                            .decoded = &m->u.wire,
                            .authenticated = m->authenticated};
    server_count(s, SERVER_CTR_messages_received, 1);
    server_engine_step(s, &ev);
}

/* ---- A datagram; timers ------------------------------------------------------------------ */

void server_datagram_step(struct server *s, const struct sockaddr_storage *src, socklen_t srclen,
                          const uint8_t *data, size_t len)
{
    uint32_t count = 0;
    if (!server_framing_ok(data, len, &count)) {
        server_count(s, SERVER_CTR_bad_datagram, 1);
        return;
    }
    struct server_budget budget;
    server_budget_init(&budget);
    size_t off = 0;
    while (off < len) {
        const uint8_t *msg = data + off;
        size_t size = server_msg_size(msg);
        off += size;
        if (!server_budget_take(s, &budget, src, srclen, msg[3]))
            continue;
        /* The engine checks the authentication of what it receives after its
         * cheaper filters (a stale PREPARE costs no MAC); only a REQUEST's is
         * checked here, once, by the address book (server_book_learn). */
        struct server_msg m;
        if (server_msg_decode(s, msg, size, false, &m))
            server_msg_handle(s, src, srclen, &budget.from_replica, &m);
    }
}

int server_timers_run(struct server *s)
{
    log_ctx_set(&s->log_ctx);
    uint64_t now = server_clock_read(s); /* once per loop iteration */
    uint64_t d = pbft_replica_next_deadline(s->replica);
    if (now >= d) {
        struct pbft_event ev = {.kind = PBFT_EV_TICK, .now_ns = now};
        server_count(s, SERVER_CTR_ticks, 1);
        server_engine_step(s, &ev);
        d = pbft_replica_next_deadline(s->replica);
        now = s->clock_ns; /* the step's end */
    }
    if (s->byz != NULL) {
        /* slow's held messages (server/byzantine.h) are due on this clock too. */
        uint64_t held = server_byz_flush(s->byz, now, server_dest_send, s);
        d = held < d ? held : d;
    }
    s->deadline_ns = d;
    server_metrics_poll(s); /* a scrape's snapshot, if one asked (server/metrics.h) */
    /* Between steps: the snapshot file's next chunks (server/snapshot.h). */
    int snap_ms = server_snap_step(s);
    if (d <= now)
        return snap_ms < 1 ? snap_ms : 1; /* ticked and still due: do not spin, look again in 1 ms */
    uint64_t wait_ms = (d - now + 999999u) / 1000000u;
    if (wait_ms > (uint64_t)snap_ms)
        wait_ms = (uint64_t)snap_ms;
    return wait_ms > (uint64_t)SERVER_POLL_MS_MAX ? SERVER_POLL_MS_MAX : (int)wait_ms;
}
