/* The stats JSON of a replica: the body of an admin reply (engine/wire_admin.h), built
 * with snprintf into a fixed buffer, every write bounds-checked.
 *
 * Keys (one object, all numbers integers unless said):
 *   replica, group, n, f, view, primary (bool), in_viewchange (bool),
 *   last_executed, low_watermark, state_digest (64 hex digits: store_digest_bytes),
 *   keys (entries in the store), requests_received, requests_executed,
 *   requests_duplicate, readonly_answered, batches_proposed, batches_executed,
 *   avg_batch (real: requests per executed batch), checkpoints_stable,
 *   viewchanges, state_transfers, datagrams_received, datagrams_sent,
 *   messages_received, messages_sent, bytes_received, bytes_sent,
 *   datagrams_per_request (real: datagrams sent and received per executed
 *   request), backend ("uring" | "mmsg"), threads ("single" | "staged"),
 *   auth_workers, uptime_ms, byzantine (mode name, "none" normally),
 *   drops: {reason: count} -- the decoder's reasons in lower case (the engine's
 *     counts plus the runtime's decoding and auth stage's, server_msg_decode), "stale", "conflict", "full" (engine),
 *     the runtime's ("bad_datagram", "rx_ring_full", "tx_ring_full",
 *     "reply_no_address", "unknown_client" (engine, auth stage and admin
 *     together), "auth_dropped", "datagram_excess_replica",
 *     "datagram_excess_client", "datagram_excess_admin"), the transport's ("rx_truncated",
 *     "send_errors"), the admin protocol's ("admin_malformed", "admin_bad_auth",
 *     "admin_replay", "admin_rate_limited"),
 *   engine: {every other pbft_replica_stats counter by its field name},
 *   runtime: {admin_answered, rounds, ticks, flushes, pool_flushes, messages_coalesced},
 *   durability ("none" | "async" | "sync"),
 *   wal: {records, commits, early_commits, syncs, bytes, segments, last_lsn,
 *     durable_lsn (the last lsn a sync made durable: 0 under async),
 *     recovered_records, segments_dropped} (durable replicas only; server/server_durable.c),
 *   snapshots: {written, bytes, last_seq, last_bytes, last_duration_us,
 *     in_progress_seq, abandoned, failures, chunks, step_us and log_us (protocol thread
 *     time: chunks, segments and cuts),
 *     log_cuts, records_again, recovered_seq, refused} (durable replicas only;
 *     server/snapshot.h),
 *   byzantine_stats: {dropped, corrupted, fabricated, replayed, equivocated, held,
 *     held_full} (only with a mode; server/byzantine.h),
 *   stages: {stage: {count, p50_ns, p99_ns, max_ns}} for the stages of the
 *     layout: single: step, flush; staged: rx_queue, auth, step, tx_queue, flush;
 *     and wal (one log commit) for a durable replica.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "server/server_internal.h"
#include "server/snapshot.h"

struct json_out {
    char *p;
    size_t cap;
    size_t len;
    bool full;
};

static void json_put(struct json_out *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void json_put(struct json_out *j, const char *fmt, ...)
{
    if (j->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->p + j->len, j->cap - j->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= j->cap - j->len) {
        j->full = true;
        return;
    }
    j->len += (size_t)n;
}

static void json_u64(struct json_out *j, const char *key, uint64_t v)
{
    json_put(j, "\"%s\":%" PRIu64 ",", key, v);
}

/* Drop the comma after the last member of an object. */
static void json_close(struct json_out *j, char c)
{
    if (!j->full && j->len > 0 && j->p[j->len - 1] == ',')
        j->len--;
    json_put(j, "%c,", c);
}

static const char *const stage_names[SERVER_STAGE_COUNT] = {
    [SERVER_STAGE_RX_QUEUE] = "rx_queue",
    [SERVER_STAGE_AUTH] = "auth",
    [SERVER_STAGE_STEP] = "step",
    [SERVER_STAGE_TX_QUEUE] = "tx_queue",
    [SERVER_STAGE_WAL] = "wal",
    [SERVER_STAGE_FLUSH] = "flush",
};

/* Merge a stage's histograms (each under its owner's mutex) and print it. */
static void json_stage(struct json_out *j, struct server *s, enum server_stage st)
{
    hdr_reset(s->merge);
    for (uint16_t k = 0; k < s->hist_count[st]; k++) {
        pthread_mutex_lock(&s->hist[st][k].mu);
        hdr_add(s->merge, s->hist[st][k].h);
        pthread_mutex_unlock(&s->hist[st][k].mu);
    }
    json_put(j, "\"%s\":{\"count\":%" PRId64 ",\"p50_ns\":%" PRId64 ",\"p99_ns\":%" PRId64 ",\"max_ns\":%" PRId64 "},",
             stage_names[st], hdr_total_count(s->merge), hdr_value_at_percentile(s->merge, 50.0),
             hdr_value_at_percentile(s->merge, 99.0), hdr_max(s->merge));
}

static void json_drops(struct json_out *j, struct server *s, const struct pbft_replica_stats *es,
                       const struct net_udp_stats *us)
{
    json_put(j, "\"drops\":{");
    for (int r = 0; r < WIRE_DROP_COUNT; r++) {
        char name[32];
        const char *n = wire_drop_name((enum wire_drop)r);
        size_t i = 0;
        for (; n[i] != '\0' && i < sizeof name - 1; i++)
            name[i] = (char)tolower((unsigned char)n[i]);
        name[i] = '\0';
        uint64_t v = es->drops.count[r] + atomic_load_explicit(&s->rx_drops[r], memory_order_relaxed);
        if (r == WIRE_DROP_UNKNOWN_CLIENT)
            v += server_counter_get(s, SERVER_CTR_unknown_client)
                 + atomic_load_explicit(&s->admin_drops[ADMIN_DROP_UNKNOWN_CLIENT], memory_order_relaxed);
        json_u64(j, name, v);
    }
    json_u64(j, "stale", es->dropped_stale);
    json_u64(j, "conflict", es->dropped_conflict);
    json_u64(j, "full", es->dropped_full);
    json_u64(j, "bad_datagram", server_counter_get(s, SERVER_CTR_bad_datagram));
    json_u64(j, "rx_ring_full", server_counter_get(s, SERVER_CTR_rx_ring_full));
    json_u64(j, "tx_ring_full", server_counter_get(s, SERVER_CTR_tx_ring_full));
    json_u64(j, "reply_no_address", server_counter_get(s, SERVER_CTR_reply_no_address));
    json_u64(j, "auth_dropped", server_counter_get(s, SERVER_CTR_auth_dropped));
    json_u64(j, "datagram_excess_replica", server_counter_get(s, SERVER_CTR_dgram_excess_replica));
    json_u64(j, "datagram_excess_client", server_counter_get(s, SERVER_CTR_dgram_excess_client));
    json_u64(j, "datagram_excess_admin", server_counter_get(s, SERVER_CTR_dgram_excess_admin));
    json_u64(j, "rx_truncated", us->rx_truncated);
    json_u64(j, "send_errors", us->send_errors);
    for (int d = ADMIN_DROP_MALFORMED; d < ADMIN_DROP_COUNT; d++)
        if (d != ADMIN_DROP_UNKNOWN_CLIENT)
            json_u64(j, wire_admin_drop_name((enum admin_drop)d),
                     atomic_load_explicit(&s->admin_drops[d], memory_order_relaxed));
    json_close(j, '}');
}

static void json_engine(struct json_out *j, const struct pbft_replica_stats *es)
{
    json_put(j, "\"engine\":{");
#define ENGINE_FIELD(f) json_u64(j, #f, es->f)
    ENGINE_FIELD(batch_requests_total);
    ENGINE_FIELD(pool_evicted);
    ENGINE_FIELD(pool_waits);
    ENGINE_FIELD(pool_relayed);
    ENGINE_FIELD(pp_unvouched);
    ENGINE_FIELD(retransmissions);
    ENGINE_FIELD(status_sent);
    ENGINE_FIELD(status_answered);
    ENGINE_FIELD(state_transfer_bad_digest);
    ENGINE_FIELD(state_transfer_restarts);
    ENGINE_FIELD(state_transfer_bad_chunks);
    ENGINE_FIELD(state_transfer_unknown_client);
    ENGINE_FIELD(state_transfer_failure);
    ENGINE_FIELD(requests_refused_no_state);
    ENGINE_FIELD(state_chunks_received);
    ENGINE_FIELD(state_chunks_served);
    ENGINE_FIELD(state_fetch_timeouts);
    ENGINE_FIELD(snapshots_taken);
    ENGINE_FIELD(snapshot_failures);
    ENGINE_FIELD(views_adopted);
    ENGINE_FIELD(request_timeouts);
    ENGINE_FIELD(watch_compactions);
    ENGINE_FIELD(viewchange_timeouts);
    ENGINE_FIELD(viewchange_joins);
    ENGINE_FIELD(stepdowns);
    ENGINE_FIELD(stepdowns_deferred);
    ENGINE_FIELD(stepdown_joins);
    ENGINE_FIELD(viewchange_timeout_ns);
    ENGINE_FIELD(repairs_sent);
    ENGINE_FIELD(view_active_since_ns);
    ENGINE_FIELD(primary_misbehaviour_views);
    ENGINE_FIELD(viewchange_sent);
    ENGINE_FIELD(newview_rejected);
    ENGINE_FIELD(newview_conflicts);
#undef ENGINE_FIELD
    json_close(j, '}');
}

size_t server_stats_json(struct server *s, char *buf, size_t cap)
{
    if (buf == NULL || cap == 0)
        return 0;
    struct json_out j = {.p = buf, .cap = cap, .len = 0, .full = false};
    const struct pbft_replica_stats *es = pbft_replica_stats(s->replica);
    struct net_udp_stats us;
    memset(&us, 0, sizeof us);
    if (s->udp != NULL)
        net_udp_stats(s->udp, &us);
    uint8_t digest[LTHASH_DIGEST_SIZE];
    store_digest_bytes(s->store, digest);
    char hex[2 * LTHASH_DIGEST_SIZE + 1];
    for (size_t i = 0; i < sizeof digest; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    bool staged = s->cfg->threads == BFTKV_CONFIG_THREADS_STAGED;
    uint64_t dgrams = us.datagrams_sent + us.datagrams_received;

    json_put(&j, "{");
    json_u64(&j, "replica", s->id);
    json_u64(&j, "group", s->cfg->group);
    json_u64(&j, "n", s->n);
    json_u64(&j, "f", s->cfg->f);
    json_u64(&j, "view", pbft_replica_view(s->replica));
    json_put(&j, "\"primary\":%s,", pbft_replica_is_primary(s->replica) ? "true" : "false");
    json_put(&j, "\"in_viewchange\":%s,", pbft_replica_in_viewchange(s->replica) ? "true" : "false");
    json_u64(&j, "last_executed", es->last_executed);
    json_put(&j, "\"holds_state\":%s,", es->holds_state ? "true" : "false");
    json_u64(&j, "low_watermark", es->low_watermark);
    json_put(&j, "\"state_digest\":\"%s\",", hex);
    json_u64(&j, "keys", store_count(s->store));
    json_u64(&j, "requests_received", es->requests_received);
    json_u64(&j, "requests_executed", es->requests_executed);
    json_u64(&j, "requests_duplicate", es->requests_duplicate);
    json_u64(&j, "readonly_answered", es->readonly_answered);
    json_u64(&j, "batches_proposed", es->batches_proposed);
    json_u64(&j, "batches_executed", es->batches_executed);
    json_put(&j, "\"avg_batch\":%.2f,",
             es->batches_executed ? (double)es->batch_requests_total / (double)es->batches_executed : 0.0);
    json_u64(&j, "checkpoints_stable", es->checkpoints_stable);
    json_u64(&j, "viewchanges", es->viewchanges);
    json_u64(&j, "state_transfers", es->state_transfers);
    json_u64(&j, "datagrams_received", us.datagrams_received);
    json_u64(&j, "datagrams_sent", us.datagrams_sent);
    json_u64(&j, "messages_received", server_counter_get(s, SERVER_CTR_messages_received));
    json_u64(&j, "messages_sent", server_counter_get(s, SERVER_CTR_messages_sent));
    json_u64(&j, "bytes_received", us.bytes_received);
    json_u64(&j, "bytes_sent", us.bytes_sent);
    json_put(&j, "\"datagrams_per_request\":%.3f,",
             es->requests_executed ? (double)dgrams / (double)es->requests_executed : 0.0);
    json_put(&j, "\"backend\":\"%s\",", s->udp ? net_udp_backend_name(s->udp) : "none");
    json_put(&j, "\"threads\":\"%s\",", staged ? "staged" : "single");
    json_u64(&j, "auth_workers", staged ? s->hist_count[SERVER_STAGE_AUTH] : 0u);
    json_u64(&j, "uptime_ms", s->start_ns ? (server_now_ns() - s->start_ns) / 1000000u : 0u);
    json_put(&j, "\"byzantine\":\"%s\",", s->byz ? byz_mode_name(server_byz_mode(s->byz)) : "none");
    json_drops(&j, s, es, &us);
    json_engine(&j, es);
    json_put(&j, "\"runtime\":{");
    json_u64(&j, "admin_answered", server_counter_get(s, SERVER_CTR_admin_answered));
    json_u64(&j, "rounds", server_counter_get(s, SERVER_CTR_rounds));
    json_u64(&j, "ticks", server_counter_get(s, SERVER_CTR_ticks));
    json_u64(&j, "flushes", server_counter_get(s, SERVER_CTR_flushes));
    json_u64(&j, "pool_flushes", us.pool_flushes);
    json_u64(&j, "messages_coalesced", us.messages_coalesced);
    json_close(&j, '}');
    json_put(&j, "\"durability\":\"%s\",", bftkv_config_durability_name(s->cfg->durability));
    if (s->wal != NULL) {
        struct wal_stats ws;
        wal_stats_get(s->wal, &ws);
        json_put(&j, "\"wal\":{");
        json_u64(&j, "records", ws.records);
        json_u64(&j, "commits", ws.commits);
        json_u64(&j, "early_commits", server_counter_get(s, SERVER_CTR_wal_early_commits));
        json_u64(&j, "syncs", ws.syncs);
        json_u64(&j, "bytes", ws.bytes);
        json_u64(&j, "segments", ws.segments);
        json_u64(&j, "last_lsn", wal_last_lsn(s->wal));
        json_u64(&j, "durable_lsn", wal_durable_lsn(s->wal));
        json_u64(&j, "recovered_records", s->wal_rec.records);
        json_u64(&j, "segments_dropped", ws.removed);
        json_close(&j, '}');
    }
    if (s->snap != NULL) {
        struct server_snap_stats ss;
        server_snap_stats_get(s, &ss);
        json_put(&j, "\"snapshots\":{");
        json_u64(&j, "written", ss.written);
        json_u64(&j, "bytes", ss.bytes);
        json_u64(&j, "last_seq", ss.last_seq);
        json_u64(&j, "last_bytes", ss.last_bytes);
        json_u64(&j, "last_duration_us", ss.last_duration_ns / 1000u);
        json_u64(&j, "in_progress_seq", ss.in_progress_seq);
        json_u64(&j, "abandoned", ss.abandoned);
        json_u64(&j, "failures", ss.failures);
        json_u64(&j, "chunks", ss.chunks);
        json_u64(&j, "step_us", ss.step_ns / 1000u);
        json_u64(&j, "log_us", ss.log_ns / 1000u);
        json_u64(&j, "log_cuts", ss.log_cuts);
        json_u64(&j, "records_again", ss.records_again);
        json_u64(&j, "recovered_seq", ss.recovered_seq);
        json_u64(&j, "refused", ss.refused);
        json_close(&j, '}');
    }
    if (s->byz != NULL) {
        struct server_byz_stats bs;
        server_byz_stats_get(s->byz, &bs);
        json_put(&j,
                 "\"byzantine_stats\":{\"dropped\":%" PRIu64 ",\"corrupted\":%" PRIu64 ",\"fabricated\":%" PRIu64
                 ",\"replayed\":%" PRIu64 ",\"equivocated\":%" PRIu64 ",\"held\":%" PRIu64 ",\"held_full\":%" PRIu64
                 "},",
                 bs.rewriter.dropped, bs.rewriter.corrupted, bs.rewriter.fabricated, bs.rewriter.replayed,
                 bs.rewriter.equivocated, bs.held, bs.held_full);
    }
    json_put(&j, "\"stages\":{");
    if (staged) {
        json_stage(&j, s, SERVER_STAGE_RX_QUEUE);
        json_stage(&j, s, SERVER_STAGE_AUTH);
    }
    json_stage(&j, s, SERVER_STAGE_STEP);
    if (staged)
        json_stage(&j, s, SERVER_STAGE_TX_QUEUE);
    json_stage(&j, s, SERVER_STAGE_FLUSH);
    if (s->wal != NULL)
        json_stage(&j, s, SERVER_STAGE_WAL);
    json_close(&j, '}');
    /* The outer object: its last member ends in "}," -- close it. */
    if (!j.full && j.len > 0 && j.p[j.len - 1] == ',')
        j.len--;
    json_put(&j, "}");
    if (j.full)
        return 0;
    return j.len;
}
