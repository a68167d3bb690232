/* The PBFT replica: creation (every pool allocated here, with its sizing
 * formula), the step function that decodes one message and dispatches it to the
 * file of its protocol phase, ticks, and the log-slot helpers shared by those
 * files (docs/design.md §5; TOCS 2002 §4).
 *
 * One step = one event: a received message is decoded once (wire_decode,
 * validating every field; here, or by the caller, pbft.h), its own
 * authentication is checked once (replica_msg_authentic, which the handlers
 * call after their cheaper filters, and which a caller's verification
 * replaces), it is dispatched by type, and then replica_progress() runs
 * whatever the state change made possible: execute committed batches in order,
 * answer parked read-only requests, and at the primary cut new batches. Nothing
 * here allocates, reads a clock or does I/O; time comes in the event.
 */
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/invariants.h"
#include "engine/replica_internal.h"

uint16_t replica_primary_of(const struct pbft_replica *r, uint64_t view)
{
    return (uint16_t)(view % r->cfg.n);
}

bool replica_is_primary(const struct pbft_replica *r)
{
    return replica_primary_of(r, r->view) == r->cfg.id;
}

void replica_drop(struct pbft_replica *r, enum wire_drop reason)
{
    r->stats.drops.count[reason]++;
}

/* ---- Log slots ----------------------------------------------------------------- */

static void slot_reset(struct pbft_replica *r, struct replica_slot *s, uint64_t seq)
{
    /* unvouched goes with stalled: the memset below clears both. */
    if (s->stalled) {
        BFTKV_ASSERT(r->stalled > 0);
        r->stalled--;
    }
    replica_slot_release(r, s); /* an old seq discarded unexecuted (view change) */
    uint8_t(*prep)[BFTKV_DIGEST_SIZE] = s->prep_digest;
    uint8_t(*commit)[BFTKV_DIGEST_SIZE] = s->commit_digest;
    uint8_t *pp = s->pp;
    memset(s, 0, sizeof *s);
    s->prep_digest = prep;
    s->commit_digest = commit;
    s->pp = pp;
    s->seq = seq;
    s->view = r->view;
}

struct replica_slot *replica_slot_get(struct pbft_replica *r, uint64_t seq)
{
    BFTKV_ASSERT(replica_in_window(r, seq));
    struct replica_slot *s = &r->slots[seq % r->cfg.log_window];
    if (s->seq != seq)
        slot_reset(r, s, seq);
    if (seq > r->cu.max_seen)
        r->cu.max_seen = seq; /* catch-up (catchup.c): work above last_executed is known */
    return s;
}

struct replica_slot *replica_slot_find(struct pbft_replica *r, uint64_t seq)
{
    if (!replica_in_window(r, seq))
        return NULL;
    struct replica_slot *s = &r->slots[seq % r->cfg.log_window];
    return s->seq == seq ? s : NULL;
}

void replica_slot_release(struct pbft_replica *r, struct replica_slot *s)
{
    if (!s->pool_refs || s->executed || s->pp_len == 0) {
        s->pool_refs = false;
        return;
    }
    uint32_t off = 0;
    const uint8_t *d;
    while (replica_slot_digest_next(s, &off, &d)) {
        uint32_t idx = replica_request_pool_find(r, d);
        BFTKV_ASSERT(idx != UINT32_MAX); /* referenced, so still there */
        replica_request_pool_unref(r, idx);
    }
    s->pool_refs = false;
}

bool replica_slot_digest_next(const struct replica_slot *s, uint32_t *off, const uint8_t **digest)
{
    struct wire_batch_entry e;
    if (s->pp_msg.u.batch.named == 0)
        return false;
    while (wire_batch_next(&s->pp_msg, off, &e)) {
        if (e.kind == WIRE_ENTRY_DIGEST) {
            *digest = e.request_digest;
            return true;
        }
    }
    return false;
}

/* ---- Creation ------------------------------------------------------------------- */

static bool config_valid(const struct pbft_replica_config *c, const struct auth_ctx *a)
{
    if (c->n == 0 || c->n > BFTKV_REPLICAS_MAX || (uint32_t)c->n < 3u * c->f + 1u || c->id >= c->n)
        return false;
    if (c->clients == 0 || c->clients > BFTKV_CLIENTS_MAX || c->lanes == 0 || c->lanes > PBFT_LANES_MAX)
        return false;
    uint32_t k = c->checkpoint_interval, l = c->log_window;
    if (k == 0 || k > BFTKV_CHECKPOINT_INTERVAL_MAX || l < 2u * k || l % k != 0 || l > BFTKV_LOG_WINDOW_MAX)
        return false;
    if (c->window == 0 || c->window > BFTKV_WINDOW_MAX || c->window > l)
        return false;
    if (c->batch_max_requests == 0 || c->batch_max_requests > BFTKV_BATCH_REQUESTS_MAX)
        return false;
    /* An empty batch must take the largest inlined request: entry framing plus a
     * request of BFTKV_INLINE_REQUEST_MAX with its authenticator. */
    uint32_t inline_max = WIRE_PP_ENTRY_FIXED + BFTKV_INLINE_REQUEST_MAX + (uint32_t)c->n * BFTKV_MAC_SIZE;
    if (c->batch_max_bytes < inline_max || c->batch_max_bytes > BFTKV_BATCH_BYTES_MAX)
        return false;
    if (a == NULL || a->is_client || a->self != c->id || a->n != c->n || a->clients < c->clients)
        return false;
    return true;
}

int pbft_replica_create(const struct pbft_replica_config *cfg, const struct auth_ctx *auth,
                        struct store *store, struct pbft_replica **out)
{
    if (cfg == NULL || store == NULL || out == NULL || !config_valid(cfg, auth))
        return BFTKV_E_INVAL;
    BFTKV_ASSERT(wire_auth_len(WIRE_CHECKPOINT, cfg->n) == WIRE_SIG_SIZE);
    _Static_assert(LTHASH_DIGEST_SIZE == BFTKV_DIGEST_SIZE, "state digest halves are 32 bytes");

    struct pbft_replica *r = calloc(1, sizeof *r);
    if (r == NULL)
        return BFTKV_E_NOMEM;
    r->cfg = *cfg;
    r->auth = auth;
    r->store = store;
    r->limits.group = cfg->group;
    r->limits.n = cfg->n;
    r->limits.clients_max = cfg->clients;
    r->quorum = pbft_quorum(cfg->n, cfg->f);
    r->next_seq = 1;
    r->view = 0;
    r->view_active = true;

    uint32_t n = cfg->n, l = cfg->log_window, w = cfg->window;
    /* One PRE-PREPARE: header, D and count, at most batch_max_bytes of entries,
     * the authenticator (n MACs). */
    r->pp_cap = WIRE_HEADER_SIZE + WIRE_PP_FIXED + cfg->batch_max_bytes + n * BFTKV_MAC_SIZE;
    BFTKV_ASSERT(r->pp_cap <= BFTKV_DATAGRAM_MAX);
    r->ckpt_msg_len = WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE + WIRE_SIG_SIZE;

    bool ok = true;
    /* The log: L slots, each with a PRE-PREPARE buffer (pp_cap) and one PREPARE
     * and one COMMIT digest per sender (2 * n * 32). For the defaults at n = 4:
     * 256 * (57,474 + 216 + 256) bytes, about 14.8 MB, touched only as it is used.
     * One allocation holds every slot's PRE-PREPARE buffer and one every slot's
     * digests: 3 L separate ones (L of them large) made creating a replica cost
     * ~1.1 M instructions, now ~55 K, which a simulator seed pays N times. Slot 0
     * points at the start of both (pbft_replica_destroy frees them through it). */
    r->slots = calloc(l, sizeof *r->slots);
    uint8_t *pp_all = r->slots != NULL ? malloc((size_t)l * r->pp_cap) : NULL;
    uint8_t(*digest_all)[BFTKV_DIGEST_SIZE] = pp_all != NULL ? calloc((size_t)l * 2u * n, BFTKV_DIGEST_SIZE) : NULL;
    ok = digest_all != NULL;
    for (uint32_t i = 0; ok && i < l; i++) {
        r->slots[i].pp = pp_all + (size_t)i * r->pp_cap;
        r->slots[i].prep_digest = digest_all + (size_t)i * 2u * n;
        r->slots[i].commit_digest = digest_all + ((size_t)i * 2u + 1u) * n;
    }
    if (!ok) {
        free(pp_all);
    }

    /* Reply cache and seen timestamps: one entry of each per (client, lane),
     * clients * lanes * (112 + 8) bytes (4,096 clients with one lane: 480 KiB);
     * block hashes: one per client id (exec.c, replica_exec_rc_digest). */
    r->rc_entries = (uint32_t)cfg->clients * cfg->lanes;
    r->rc_blocks = cfg->clients;
    r->rc = ok ? calloc(r->rc_entries, sizeof *r->rc) : NULL;
    r->seen_ts = ok ? calloc(r->rc_entries, sizeof *r->seen_ts) : NULL;
    r->rc_dirty = ok ? malloc(r->rc_blocks) : NULL;
    r->rc_used = ok ? calloc(r->rc_blocks, 1) : NULL;
    r->rc_block_hash = ok ? calloc(r->rc_blocks, BFTKV_DIGEST_SIZE) : NULL;
    r->rc_scratch = ok ? malloc((size_t)cfg->lanes * REPLICA_RC_ENTRY_WIRE) : NULL;
    ok = ok && r->rc && r->seen_ts && r->rc_dirty && r->rc_used && r->rc_block_hash && r->rc_scratch;
    if (ok)
        memset(r->rc_dirty, 1, r->rc_blocks);

    /* Pending requests at the primary: descriptors for one request per (client,
     * lane) -- all that correct clients can have outstanding -- and at least
     * enough to fill the pipeline twice: max(2 * W * batch_max_requests,
     * min(clients * lanes, 65536)); bytes for two full pipelines of batches,
     * 2 * W * batch_max_bytes (default 917,504). Beyond that: dropped_full, and
     * clients retransmit. */
    uint32_t per_client = r->rc_entries < 65536u ? r->rc_entries : 65536u;
    r->pend_cap = 2u * w * cfg->batch_max_requests;
    if (r->pend_cap < per_client)
        r->pend_cap = per_client;
    r->pend_ring.cap = 2u * w * cfg->batch_max_bytes;
    /* Not zeroed: an entry is read only between its push (request.c clears it
     * there) and its pop. */
    r->pend = ok ? malloc((size_t)r->pend_cap * sizeof *r->pend) : NULL;
    r->pend_buf = ok ? malloc(r->pend_ring.cap) : NULL;
    ok = ok && r->pend && r->pend_buf;

    /* Large requests: sized, with the invariant they keep, in replica_request_pool_create
     * (request_pool.c; default about 30 MB, touched only as it is used). */
    ok = ok && replica_request_pool_create(r);

    /* Parked read-only requests: one per (client, lane) that can have a read
     * outstanding, between 16 and 1024, each with a key of up to BFTKV_KEY_MAX. */
    uint32_t ro = r->rc_entries;
    r->ro_cap = ro < 16u ? 16u : ro > 1024u ? 1024u : ro;
    r->ro = ok ? calloc(r->ro_cap, sizeof *r->ro) : NULL;
    r->ro_keys = ok ? malloc((size_t)r->ro_cap * BFTKV_KEY_MAX) : NULL;
    ok = ok && r->ro && r->ro_keys;

    /* Checkpoints for seq in [h, h+L]: L/K + 1 records, each with one digest and
     * one signed message per sender (n * (32 + ckpt_msg_len)). */
    r->ckpt_count = l / cfg->checkpoint_interval + 1u;
    r->ckpts = ok ? calloc(r->ckpt_count, sizeof *r->ckpts) : NULL;
    ok = ok && r->ckpts;
    for (uint32_t i = 0; ok && i < r->ckpt_count; i++) {
        r->ckpts[i].digest = calloc(n, BFTKV_DIGEST_SIZE);
        r->ckpts[i].msgs = calloc(n, r->ckpt_msg_len);
        ok = r->ckpts[i].digest != NULL && r->ckpts[i].msgs != NULL;
    }

    r->value_buf = ok ? malloc(BFTKV_VALUE_MAX) : NULL;
    ok = ok && r->value_buf;
    r->exec_hints = ok ? calloc(BFTKV_BATCH_REQUESTS_MAX, sizeof *r->exec_hints) : NULL;
    ok = ok && r->exec_hints;

    /* Catch-up: snapshots, staging store and reply cache (statetransfer.c). */
    ok = ok && replica_statetransfer_create(r);
    /* View change: stored VIEW-CHANGEs, NEW-VIEW, watched requests (viewchange.c). */
    ok = ok && replica_viewchange_create(r);

    if (!ok) {
        pbft_replica_destroy(r);
        return BFTKV_E_NOMEM;
    }
    *out = r;
    return 0;
}

void pbft_replica_destroy(struct pbft_replica *r)
{
    if (r == NULL)
        return;
    if (r->slots != NULL) {
        free(r->slots[0].pp); /* every slot's buffer and digests: one allocation each */
        free(r->slots[0].prep_digest);
    }
    if (r->ckpts != NULL) {
        for (uint32_t i = 0; i < r->ckpt_count; i++) {
            free(r->ckpts[i].digest);
            free(r->ckpts[i].msgs);
        }
    }
    replica_statetransfer_destroy(r);
    replica_viewchange_destroy(r);
    free(r->slots);
    free(r->ckpts);
    free(r->rc);
    free(r->seen_ts);
    free(r->rc_dirty);
    free(r->rc_used);
    free(r->rc_block_hash);
    free(r->rc_scratch);
    free(r->pend);
    free(r->pend_buf);
    replica_request_pool_destroy(r);
    free(r->ro);
    free(r->ro_keys);
    free(r->value_buf);
    free(r->exec_hints);
    free(r);
}

void pbft_replica_set_hooks(struct pbft_replica *r, pbft_exec_hook on_exec, pbft_checkpoint_hook on_checkpoint,
                            void *arg)
{
    r->on_exec = on_exec;
    r->on_checkpoint = on_checkpoint;
    r->hook_arg = arg;
}

/* ---- Stepping ------------------------------------------------------------------- */

static void replica_more(struct pbft_replica *r, struct pbft_out *out)
{
    out->more = true;
    r->resume_needed = true;
}

void replica_progress(struct pbft_replica *r, struct pbft_out *out)
{
    for (;;) {
        /* A replica that lacks a large request of a batch about to execute
         * gets it from those that execute it (request_pool.c). */
        if (!replica_request_pool_relay(r, out) || !replica_exec_run(r, out) || !replica_exec_readonly_drain(r, out)) {
            replica_more(r, out);
            return;
        }
        /* Execution moves the large-request pool's window up: a PRE-PREPARE
         * that waited for it may be accepted now (preprepare.c). */
        bool retried = r->stalled > 0 && r->pool_retry_exec != r->last_executed;
        if (retried) {
            r->pool_retry_exec = r->last_executed;
            replica_preprepare_stalled_retry(r, out);
        }
        /* The new primary's PRE-PREPAREs of chosen batches go before new ones. */
        if (!replica_viewchange_progress(r, out)) {
            replica_more(r, out);
            return;
        }
        uint64_t proposed = r->next_seq;
        replica_preprepare_batch_try(r, out);
        if (out->more) {
            r->resume_needed = true;
            return;
        }
        /* With n = 1 (the unreplicated baseline) a new batch commits at once:
         * go round again to execute it. */
        struct replica_slot *next = replica_slot_find(r, r->last_executed + 1u);
        if ((r->next_seq == proposed && !retried) || next == NULL || !next->committed)
            return;
    }
}

/* Dispatch one decoded message to the file of its phase. While it is handled,
 * r->rx_authentic names it if the caller verified its authentication
 * (replica_msg_authentic then skips that one check), and nothing otherwise. */
static void replica_dispatch(struct pbft_replica *r, const struct wire_msg *m, bool authenticated,
                             struct pbft_out *out)
{
    BFTKV_ASSERT(r->rx_authentic == NULL);
    bool normal_case = m->h.type == WIRE_PREPREPARE || m->h.type == WIRE_PREPARE || m->h.type == WIRE_COMMIT;
    if (normal_case && m->h.view != r->view)
        replica_catchup_view_mismatch(r, m, out);
    r->rx_authentic = authenticated ? m : NULL;
    bool handled = true;
    switch (m->h.type) {
    case WIRE_REQUEST:
        replica_request_receive(r, m, out);
        break;
    case WIRE_PREPREPARE:
        if (m->h.view < r->view)
            replica_newview_batch_receive(r, m, out); /* a batch a NEW-VIEW chose */
        else
            replica_preprepare_receive(r, m, out);
        break;
    case WIRE_PREPARE:
        replica_prepare_receive(r, m, out);
        break;
    case WIRE_COMMIT:
        replica_commit_receive(r, m, out);
        break;
    case WIRE_CHECKPOINT:
        replica_checkpoint_receive(r, m, out);
        break;
    case WIRE_STATUS:
        replica_status_receive(r, m, out);
        break;
    case WIRE_FETCH:
        replica_fetch_receive(r, m, out);
        break;
    case WIRE_STATE:
        replica_state_receive(r, m, out);
        break;
    case WIRE_VIEW_CHANGE:
        replica_view_change_receive(r, m, out);
        break;
    case WIRE_NEW_VIEW:
        replica_new_view_receive(r, m, out);
        break;
    default:
        /* REPLY is for clients. */
        replica_drop(r, WIRE_DROP_BAD_TYPE);
        handled = false;
        break;
    }
    r->rx_authentic = NULL;
    if (handled)
        replica_progress(r, out);
}

/* A received message: decoded here from raw bytes, or decoded by the caller
 * (pbft.h, struct pbft_event, states what each form promises). */
static void replica_receive(struct pbft_replica *r, const struct pbft_event *ev, struct pbft_out *out)
{
    const struct wire_msg *d = ev->decoded;
    if (d != NULL) {
        /* The caller's contract (pbft.h): wire_decode accepted it with our limits. */
        BFTKV_ASSERT(d->raw != NULL);
        BFTKV_ASSERT(d->h.group == r->cfg.group);
        BFTKV_ASSERT(d->h.type >= WIRE_REQUEST);
        BFTKV_ASSERT(d->h.type <= WIRE_TYPE_MAX);
        BFTKV_ASSERT(d->raw_len == WIRE_HEADER_SIZE + (size_t)d->h.body_len + d->h.auth_len);
        replica_dispatch(r, d, ev->authenticated, out);
        return;
    }
    BFTKV_ASSERT(!ev->authenticated); /* only a decoded message can come verified */
    if (ev->msg == NULL)
        return;
    struct wire_msg m;
    size_t consumed = 0;
    if (wire_decode(ev->msg, ev->len, &r->limits, &m, &consumed, &r->stats.drops) != 0)
        return;
    replica_dispatch(r, &m, false, out);
}

/* ---- Authentication ------------------------------------------------------------ */

/* CHECKPOINT, VIEW-CHANGE and NEW-VIEW are signed, because third parties check
 * them (docs/design.md §5.2); every other message a replica receives carries an
 * authenticator. */
static bool replica_type_signed(uint8_t type)
{
    return type == WIRE_CHECKPOINT || type == WIRE_VIEW_CHANGE || type == WIRE_NEW_VIEW;
}

bool replica_msg_authentic(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m == r->rx_authentic)
        return true; /* the caller verified exactly this check (pbft.h) */
    bool ok = replica_type_signed(m->h.type) ? auth_signature_check(r->auth, m) : auth_authenticator_check(r->auth, m);
    if (!ok)
        replica_drop(r, WIRE_DROP_BAD_AUTH);
    return ok;
}

bool replica_msg_from_peer(struct pbft_replica *r, const struct wire_msg *m)
{
    if (m->h.sender == r->cfg.id) {
        replica_drop(r, WIRE_DROP_BAD_SENDER);
        return false;
    }
    return replica_msg_authentic(r, m);
}

/* Stalled PRE-PREPAREs are retried whenever a large request arrives; the tick
 * retries them too, every half request timeout, in case the pool changed
 * otherwise (an eviction, a retransmission that raced the pre-prepare). */
static uint64_t stall_retry_interval(const struct pbft_replica *r)
{
    return r->cfg.request_timeout_ns / 2u + 1u;
}

static void replica_tick(struct pbft_replica *r, struct pbft_out *out)
{
    if (r->stalled > 0 && r->now_ns >= r->stall_retry_ns) {
        replica_preprepare_stalled_retry(r, out);
        r->stall_retry_ns = r->now_ns + stall_retry_interval(r);
    }
    replica_request_fetch_tick(r, out); /* large requests stalled PRE-PREPAREs lack */
    replica_catchup_tick(r, out); /* retransmission, STATUS, state transfer */
    replica_viewchange_tick(r, out); /* request and NEW-VIEW timers */
    replica_progress(r, out);
}

/* The end of every step and resume: the request-fetch timer, the counters the
 * stats command prints, and in builds with PBFT_INVARIANTS (Debug, sanitizers)
 * the whole-replica invariant check (docs/design.md §5.9). */
static void step_finish(struct pbft_replica *r, struct pbft_out *out)
{
    BFTKV_ASSERT(r->rx_authentic == NULL); /* a caller's verification lasts one dispatch */
    replica_persist_flush(r, out); /* records still due (persist.c): not behind a message */
    replica_request_fetch_arm(r);
    r->stats.last_executed = r->last_executed;
    r->stats.low_watermark = r->low;
    r->stats.viewchange_timeout_ns = replica_viewchange_timeout(r);
    r->stats.view_active_since_ns = r->view_active ? r->view_start_ns : 0;
#ifdef PBFT_INVARIANTS
    replica_invariants_assert(r);
#endif
}

void pbft_replica_step(struct pbft_replica *r, const struct pbft_event *ev, struct pbft_out *out)
{
    BFTKV_ASSERT(r != NULL);
    BFTKV_ASSERT(ev != NULL);
    BFTKV_ASSERT(out != NULL);
    BFTKV_ASSERT(!r->resume_needed); /* pbft.h: resume until more is false first */
    if (ev->now_ns > r->now_ns)
        r->now_ns = ev->now_ns;
    bool had_stall = r->stalled > 0;
    if (ev->kind == PBFT_EV_RECEIVE) {
        replica_receive(r, ev, out);
    } else {
        BFTKV_ASSERT(ev->kind == PBFT_EV_TICK);
        replica_tick(r, out);
    }
    if (!had_stall && r->stalled > 0)
        r->stall_retry_ns = r->now_ns + stall_retry_interval(r);
    step_finish(r, out);
}

void pbft_replica_resume(struct pbft_replica *r, uint64_t now_ns, struct pbft_out *out)
{
    BFTKV_ASSERT(r != NULL);
    BFTKV_ASSERT(out != NULL);
    if (now_ns > r->now_ns)
        r->now_ns = now_ns;
    r->resume_needed = false;
    replica_progress(r, out);
    step_finish(r, out);
}

uint64_t pbft_replica_next_deadline(const struct pbft_replica *r)
{
    uint64_t d = r->stalled > 0 ? r->stall_retry_ns : UINT64_MAX;
    uint64_t cu = replica_catchup_deadline(r);
    uint64_t viewchange = replica_viewchange_deadline(r);
    uint64_t rf = replica_request_fetch_deadline(r);
    d = cu < d ? cu : d;
    d = rf < d ? rf : d;
    return viewchange < d ? viewchange : d;
}

const struct pbft_replica_stats *pbft_replica_stats(const struct pbft_replica *r)
{
    return &r->stats;
}

uint64_t pbft_replica_view(const struct pbft_replica *r)
{
    return r->view;
}

bool pbft_replica_is_primary(const struct pbft_replica *r)
{
    return replica_is_primary(r);
}

bool pbft_replica_in_viewchange(const struct pbft_replica *r)
{
    return !r->view_active;
}

uint64_t pbft_replica_viewchange_timeout_ns(const struct pbft_replica *r)
{
    return replica_viewchange_timeout(r);
}
