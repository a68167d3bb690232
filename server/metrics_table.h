/* The one list of a replica's Prometheus metrics (server/metrics.h): every
 * metric's name, type, scope, help text and where its value comes from.
 *
 * Everything else is generated from these lists: the sampler (server/
 * metrics_sample.c) expands the value expressions on the protocol thread, the
 * renderer (server/metrics.c) the names, types and help texts, and the metrics
 * reference in docs/operations.md is printed from them (a test compares the two,
 * tests/server/test_metrics_reference.c), so the code and the documentation
 * cannot drift apart.
 *
 * Names follow the Prometheus conventions: the `bftkv_` prefix, `_total` on
 * counters, base units (seconds, bytes). The value expressions are evaluated
 * where the sampler has these in scope: `s` (struct server), `es` (the engine's
 * pbft_replica_stats), `us` (the transport's net_udp_stats), `ws` (wal_stats,
 * durable replicas), `ss` (server_snap_stats, durable replicas), `bs`
 * (server_byz_stats, with a Byzantine test mode), `now_ns` (CLOCK_MONOTONIC).
 *
 * Columns of METRICS_SCALARS: id, name, type (COUNTER or GAUGE), scope
 * (PARTITION: the series carries a `partition` label, today the config's group;
 * NODE: the process's), when it is present (ALWAYS, WAL, SNAP), help, value.
 */
#ifndef BFTKV_SERVER_METRICS_TABLE_H
#define BFTKV_SERVER_METRICS_TABLE_H

#define METRICS_NS_TO_S(ns) ((double)(ns) / 1e9)

/* clang-format off */
#define METRICS_SCALARS(X)                                                                                     \
    /* The protocol: the engine's view of its partition. */                                                    \
    X(VIEW, "bftkv_view", GAUGE, PARTITION, ALWAYS, "The view the replica is in (its primary is view mod n).",  \
      pbft_replica_view(s->replica))                                                                           \
    X(PRIMARY, "bftkv_primary", GAUGE, PARTITION, ALWAYS, "1 when this replica is the primary of its view.",   \
      pbft_replica_is_primary(s->replica) ? 1 : 0)                                                             \
    X(IN_VIEWCHANGE, "bftkv_in_viewchange", GAUGE, PARTITION, ALWAYS,                                          \
      "1 while the replica is moving to a new view.", pbft_replica_in_viewchange(s->replica) ? 1 : 0)          \
    X(VIEW_ACTIVE, "bftkv_view_active_seconds", GAUGE, PARTITION, ALWAYS,                                      \
      "Time since the replica entered its current view (0 while moving to one).",                              \
      es->view_active_since_ns && now_ns > es->view_active_since_ns                                            \
          ? METRICS_NS_TO_S(now_ns - es->view_active_since_ns) : 0)                                            \
    X(HOLDS_STATE, "bftkv_holds_state", GAUGE, PARTITION, ALWAYS,                                              \
      "1 when the replica's state is certified; 0 while a restarted replica takes no part in ordering.",       \
      es->holds_state)                                                                                         \
    X(LAST_EXECUTED, "bftkv_last_executed_seq", GAUGE, PARTITION, ALWAYS,                                      \
      "The sequence number of the last batch executed.", es->last_executed)                                    \
    X(LOW_WATERMARK, "bftkv_low_watermark_seq", GAUGE, PARTITION, ALWAYS,                                      \
      "The last stable checkpoint's sequence number (the log's low watermark).", es->low_watermark)            \
    X(KEYS, "bftkv_store_keys", GAUGE, PARTITION, ALWAYS, "Entries in the store.", store_count(s->store))      \
    X(REPLICAS, "bftkv_replicas", GAUGE, PARTITION, ALWAYS, "Replicas in the group (n).", s->n)                \
    X(FAULTS, "bftkv_faults_tolerated", GAUGE, PARTITION, ALWAYS, "Faulty replicas the group tolerates (f).",  \
      s->cfg->f)                                                                                               \
    X(REQ_RECEIVED, "bftkv_requests_received_total", COUNTER, PARTITION, ALWAYS,                               \
      "Client requests the engine admitted.", es->requests_received)                                           \
    X(REQ_EXECUTED, "bftkv_requests_executed_total", COUNTER, PARTITION, ALWAYS,                               \
      "Client requests executed.", es->requests_executed)                                                      \
    X(REQ_DUPLICATE, "bftkv_requests_duplicate_total", COUNTER, PARTITION, ALWAYS,                             \
      "Requests answered again from the reply cache.", es->requests_duplicate)                                 \
    X(REQ_READONLY, "bftkv_readonly_answered_total", COUNTER, PARTITION, ALWAYS,                               \
      "Reads answered on the read-only path, without ordering.", es->readonly_answered)                        \
    X(REQ_NO_STATE, "bftkv_requests_refused_no_state_total", COUNTER, PARTITION, ALWAYS,                       \
      "Requests refused because the replica holds no certified state.", es->requests_refused_no_state)         \
    X(BATCHES_PROPOSED, "bftkv_batches_proposed_total", COUNTER, PARTITION, ALWAYS,                            \
      "Batches this replica proposed as primary.", es->batches_proposed)                                       \
    X(BATCHES_EXECUTED, "bftkv_batches_executed_total", COUNTER, PARTITION, ALWAYS,                            \
      "Batches executed.", es->batches_executed)                                                               \
    X(BATCH_REQUESTS, "bftkv_batched_requests_total", COUNTER, PARTITION, ALWAYS,                              \
      "Requests in executed batches (its rate over the batches' rate is the average batch).",                  \
      es->batch_requests_total)                                                                                \
    X(CHECKPOINTS, "bftkv_checkpoints_stable_total", COUNTER, PARTITION, ALWAYS,                               \
      "Checkpoints that became stable.", es->checkpoints_stable)                                               \
    X(POOL_EVICTED, "bftkv_request_pool_evicted_total", COUNTER, PARTITION, ALWAYS,                            \
      "Unpinned large requests evicted from the pool for room.", es->pool_evicted)                             \
    X(POOL_WAITS, "bftkv_request_pool_waits_total", COUNTER, PARTITION, ALWAYS,                                \
      "PRE-PREPAREs that waited for the large-request pool's window.", es->pool_waits)                         \
    X(POOL_RELAYED, "bftkv_request_pool_relayed_total", COUNTER, PARTITION, ALWAYS,                            \
      "Large requests relayed to a replica that lacked them.", es->pool_relayed)                               \
    X(PP_UNVOUCHED, "bftkv_preprepares_unvouched_total", COUNTER, PARTITION, ALWAYS,                           \
      "PRE-PREPAREs holding a request whose client MAC failed here, accepted only once f PREPAREs matched.",    \
      es->pp_unvouched)                                                                                        \
    X(RETRANSMISSIONS, "bftkv_retransmissions_total", COUNTER, PARTITION, ALWAYS,                              \
      "PRE-PREPARE, PREPARE and COMMIT messages sent again by the timer.", es->retransmissions)                 \
    X(REPAIRS, "bftkv_repairs_sent_total", COUNTER, PARTITION, ALWAYS,                                         \
      "Votes sent again to a peer that retransmitted one for a slot committed here.", es->repairs_sent)        \
    X(STATUS_SENT, "bftkv_status_sent_total", COUNTER, PARTITION, ALWAYS, "STATUS messages sent.",             \
      es->status_sent)                                                                                         \
    X(STATUS_ANSWERED, "bftkv_status_answered_total", COUNTER, PARTITION, ALWAYS,                              \
      "STATUS messages answered with log messages or a proof.", es->status_answered)                           \
    /* State transfer. */                                                                                      \
    X(XFER, "bftkv_state_transfers_total", COUNTER, PARTITION, ALWAYS, "Fetched states installed.",            \
      es->state_transfers)                                                                                     \
    X(XFER_BAD_DIGEST, "bftkv_state_transfer_bad_digest_total", COUNTER, PARTITION, ALWAYS,                    \
      "Fetched states whose digest did not match the certified one.", es->state_transfer_bad_digest)           \
    X(XFER_RESTARTS, "bftkv_state_transfer_restarts_total", COUNTER, PARTITION, ALWAYS,                        \
      "State transfers restarted with another server or target.", es->state_transfer_restarts)                 \
    X(XFER_BAD_CHUNKS, "bftkv_state_transfer_bad_chunks_total", COUNTER, PARTITION, ALWAYS,                    \
      "State chunks no correct server sends.", es->state_transfer_bad_chunks)                                  \
    X(XFER_UNKNOWN_CLIENT, "bftkv_state_transfer_unknown_client_total", COUNTER, PARTITION, ALWAYS,            \
      "Fetched states naming a client this config lacks.", es->state_transfer_unknown_client)                  \
    X(XFER_LAST_FAILURE, "bftkv_state_transfer_last_failure", GAUGE, PARTITION, ALWAYS,                        \
      "Why the last failed state transfer failed (engine/pbft.h enum pbft_xfer_failure; 0: none yet).",        \
      es->state_transfer_failure)                                                                              \
    X(CHUNKS_RECEIVED, "bftkv_state_chunks_received_total", COUNTER, PARTITION, ALWAYS,                        \
      "State chunks received.", es->state_chunks_received)                                                     \
    X(CHUNKS_SERVED, "bftkv_state_chunks_served_total", COUNTER, PARTITION, ALWAYS,                            \
      "State chunks served to other replicas.", es->state_chunks_served)                                       \
    X(FETCH_TIMEOUTS, "bftkv_state_fetch_timeouts_total", COUNTER, PARTITION, ALWAYS,                          \
      "State fetches that timed out.", es->state_fetch_timeouts)                                               \
    X(ENGINE_SNAPSHOTS, "bftkv_store_snapshots_taken_total", COUNTER, PARTITION, ALWAYS,                       \
      "Copy-on-write store snapshots taken at checkpoints.", es->snapshots_taken)                              \
    X(ENGINE_SNAPSHOT_FAILURES, "bftkv_store_snapshot_failures_total", COUNTER, PARTITION, ALWAYS,             \
      "Store snapshots that failed (out of memory).", es->snapshot_failures)                                   \
    X(VIEWS_ADOPTED, "bftkv_views_adopted_total", COUNTER, PARTITION, ALWAYS,                                  \
      "Views a restarted replica joined on f+1 reports.", es->views_adopted)                                   \
    /* View changes. */                                                                                        \
    X(VIEWCHANGES, "bftkv_viewchanges_total", COUNTER, PARTITION, ALWAYS,                                      \
      "Views entered through a NEW-VIEW.", es->viewchanges)                                                    \
    X(REQUEST_TIMEOUTS, "bftkv_request_timeouts_total", COUNTER, PARTITION, ALWAYS,                            \
      "Watched requests that waited longer than the view-change timeout.", es->request_timeouts)               \
    X(WATCH_COMPACTIONS, "bftkv_watch_compactions_total", COUNTER, PARTITION, ALWAYS,                          \
      "Scans of a full queue of watched requests.", es->watch_compactions)                                     \
    X(VC_TIMEOUTS, "bftkv_viewchange_timeouts_total", COUNTER, PARTITION, ALWAYS,                              \
      "View changes that saw no valid NEW-VIEW in time.", es->viewchange_timeouts)                             \
    X(VC_JOINS, "bftkv_viewchange_joins_total", COUNTER, PARTITION, ALWAYS,                                    \
      "Higher views joined on f+1 VIEW-CHANGEs.", es->viewchange_joins)                                        \
    X(VC_SENT, "bftkv_viewchange_sent_total", COUNTER, PARTITION, ALWAYS,                                      \
      "VIEW-CHANGE messages sent, retransmissions included.", es->viewchange_sent)                             \
    X(NV_REJECTED, "bftkv_newview_rejected_total", COUNTER, PARTITION, ALWAYS,                                 \
      "NEW-VIEWs whose choices differ from this replica's.", es->newview_rejected)                             \
    X(NV_CONFLICTS, "bftkv_newview_conflicts_total", COUNTER, PARTITION, ALWAYS,                               \
      "NEW-VIEWs that chose another batch than one executed here: a safety violation (alert on any).",         \
      es->newview_conflicts)                                                                                   \
    X(STEPDOWNS, "bftkv_stepdowns_total", COUNTER, PARTITION, ALWAYS,                                          \
      "Primary stepped down to the view of a replica alone in it.", es->stepdowns)                             \
    X(STEPDOWNS_DEFERRED, "bftkv_stepdowns_deferred_total", COUNTER, PARTITION, ALWAYS,                        \
      "Step-downs deferred: that replica caused one too recently.", es->stepdowns_deferred)                    \
    X(STEPDOWN_JOINS, "bftkv_stepdown_joins_total", COUNTER, PARTITION, ALWAYS,                                \
      "Backup joined the view change its primary asked for.", es->stepdown_joins)                              \
    X(MISBEHAVING_PRIMARY, "bftkv_primary_misbehaviour_views_total", COUNTER, PARTITION, ALWAYS,               \
      "Views whose primary sent a message no correct primary sends.", es->primary_misbehaviour_views)          \
    X(VC_TIMEOUT, "bftkv_viewchange_timeout_seconds", GAUGE, PARTITION, ALWAYS,                                \
      "The view-change timeout now (it adapts).", METRICS_NS_TO_S(es->viewchange_timeout_ns))                  \
    /* The node: transport and runtime. */                                                                     \
    X(DGRAMS_RECEIVED, "bftkv_datagrams_received_total", COUNTER, NODE, ALWAYS,                                \
      "UDP datagrams received.", us->datagrams_received)                                                       \
    X(DGRAMS_SENT, "bftkv_datagrams_sent_total", COUNTER, NODE, ALWAYS, "UDP datagrams sent.",                 \
      us->datagrams_sent)                                                                                      \
    X(BYTES_RECEIVED, "bftkv_received_bytes_total", COUNTER, NODE, ALWAYS, "UDP payload bytes received.",      \
      us->bytes_received)                                                                                      \
    X(BYTES_SENT, "bftkv_sent_bytes_total", COUNTER, NODE, ALWAYS, "UDP payload bytes sent.", us->bytes_sent)  \
    X(MSGS_RECEIVED, "bftkv_messages_received_total", COUNTER, NODE, ALWAYS,                                   \
      "Messages handed to the engine.", server_counter_get(s, SERVER_CTR_messages_received))                   \
    X(MSGS_SENT, "bftkv_messages_sent_total", COUNTER, NODE, ALWAYS,                                           \
      "Messages handed to the transport, per destination.", server_counter_get(s, SERVER_CTR_messages_sent))   \
    X(MSGS_COALESCED, "bftkv_messages_coalesced_total", COUNTER, NODE, ALWAYS,                                 \
      "Messages that shared a datagram with an earlier one.", us->messages_coalesced)                          \
    X(POOL_FLUSHES, "bftkv_transport_pool_flushes_total", COUNTER, NODE, ALWAYS,                               \
      "Transport flushes forced by a full send pool.", us->pool_flushes)                                       \
    X(ADMIN_ANSWERED, "bftkv_admin_answered_total", COUNTER, NODE, ALWAYS, "Admin requests answered.",         \
      server_counter_get(s, SERVER_CTR_admin_answered))                                                        \
    X(ROUNDS, "bftkv_engine_steps_total", COUNTER, NODE, ALWAYS, "Engine steps (receive and tick).",           \
      server_counter_get(s, SERVER_CTR_rounds))                                                                \
    X(TICKS, "bftkv_engine_ticks_total", COUNTER, NODE, ALWAYS, "Timer steps of the engine.",                  \
      server_counter_get(s, SERVER_CTR_ticks))                                                                 \
    X(FLUSHES, "bftkv_transport_flushes_total", COUNTER, NODE, ALWAYS, "Transport flushes.",                   \
      server_counter_get(s, SERVER_CTR_flushes))                                                               \
    X(AUTH_WORKERS, "bftkv_auth_workers", GAUGE, NODE, ALWAYS,                                                 \
      "Authentication threads (staged layout; 0 for single).",                                                 \
      s->cfg->threads == BFTKV_CONFIG_THREADS_STAGED ? s->hist_count[SERVER_STAGE_AUTH] : 0u)                  \
    X(UPTIME, "bftkv_uptime_seconds", GAUGE, NODE, ALWAYS, "Time since the replica started serving.",          \
      s->start_ns && now_ns > s->start_ns ? METRICS_NS_TO_S(now_ns - s->start_ns) : 0)                         \
    /* The write-ahead log (durable replicas). */                                                              \
    X(WAL_RECORDS, "bftkv_wal_records_total", COUNTER, PARTITION, WAL, "Records appended to the log.",         \
      ws->records)                                                                                             \
    X(WAL_COMMITS, "bftkv_wal_commits_total", COUNTER, PARTITION, WAL, "Log commits that wrote something.",    \
      ws->commits)                                                                                             \
    X(WAL_EARLY, "bftkv_wal_early_commits_total", COUNTER, PARTITION, WAL,                                     \
      "Log commits started before the end of a loop iteration (a full buffer).",                               \
      server_counter_get(s, SERVER_CTR_wal_early_commits))                                                     \
    X(WAL_HOLD_WAITS, "bftkv_wal_hold_waits_total", COUNTER, PARTITION, WAL,                                   \
      "Waits for the oldest log commit with every hold slot or send batch taken.",                             \
      server_counter_get(s, SERVER_CTR_wal_hold_waits))                                                        \
    X(WAL_SLOT_WAITS, "bftkv_wal_slot_waits_total", COUNTER, PARTITION, WAL,                                   \
      "Log commits that waited for the oldest one (every slot in flight).", ws->slot_waits)                    \
    X(WAL_SYNCS, "bftkv_wal_syncs_total", COUNTER, PARTITION, WAL, "fdatasync calls on the log.", ws->syncs)   \
    X(WAL_BYTES, "bftkv_wal_written_bytes_total", COUNTER, PARTITION, WAL,                                     \
      "Bytes written to the log files (padding included).", ws->bytes)                                         \
    X(WAL_SEGMENTS, "bftkv_wal_segments_created_total", COUNTER, PARTITION, WAL,                               \
      "Log segments created since the start.", ws->segments)                                                   \
    X(WAL_REMOVED, "bftkv_wal_segments_removed_total", COUNTER, PARTITION, WAL,                                \
      "Log segments removed below a snapshot.", ws->removed)                                                   \
    X(WAL_LAST_LSN, "bftkv_wal_last_lsn", GAUGE, PARTITION, WAL, "The last record's log sequence number.",     \
      wal_last_lsn(s->wal))                                                                                    \
    X(WAL_DURABLE_LSN, "bftkv_wal_durable_lsn", GAUGE, PARTITION, WAL,                                         \
      "The last record a sync made durable (0 under async).", wal_durable_lsn(s->wal))                         \
    X(WAL_RECOVERED, "bftkv_wal_recovered_records", GAUGE, PARTITION, WAL,                                     \
      "Records the start-up recovered from the log.", s->wal_rec.records)                                      \
    /* Snapshot files (durable replicas). */                                                                   \
    X(SNAP_WRITTEN, "bftkv_snapshots_written_total", COUNTER, PARTITION, SNAP, "Snapshot files completed.",    \
      ss->written)                                                                                             \
    X(SNAP_BYTES, "bftkv_snapshot_written_bytes_total", COUNTER, PARTITION, SNAP,                              \
      "Bytes of the completed snapshot files.", ss->bytes)                                                     \
    X(SNAP_LAST_SEQ, "bftkv_snapshot_last_seq", GAUGE, PARTITION, SNAP,                                        \
      "The newest complete snapshot's checkpoint (0: none).", ss->last_seq)                                    \
    X(SNAP_LAST_BYTES, "bftkv_snapshot_last_bytes", GAUGE, PARTITION, SNAP,                                    \
      "The newest complete snapshot's size.", ss->last_bytes)                                                  \
    X(SNAP_LAST_DURATION, "bftkv_snapshot_last_duration_seconds", GAUGE, PARTITION, SNAP,                      \
      "The newest complete snapshot's time from its checkpoint to its rename.",                                \
      METRICS_NS_TO_S(ss->last_duration_ns))                                                                   \
    X(SNAP_IN_PROGRESS, "bftkv_snapshot_in_progress_seq", GAUGE, PARTITION, SNAP,                              \
      "The checkpoint of the snapshot being written (0: none).", ss->in_progress_seq)                          \
    X(SNAP_ABANDONED, "bftkv_snapshots_abandoned_total", COUNTER, PARTITION, SNAP,                             \
      "Snapshots abandoned: a newer checkpoint released the state first.", ss->abandoned)                      \
    X(SNAP_FAILURES, "bftkv_snapshot_write_failures_total", COUNTER, PARTITION, SNAP,                          \
      "Snapshots the writer could not write (disk full, I/O).", ss->failures)                                  \
    X(SNAP_CHUNKS, "bftkv_snapshot_chunks_total", COUNTER, PARTITION, SNAP,                                    \
      "Snapshot chunks handed to the writer.", ss->chunks)                                                     \
    X(SNAP_STEP_TIME, "bftkv_snapshot_step_seconds_total", COUNTER, PARTITION, SNAP,                           \
      "Protocol-thread time spent encoding snapshot chunks.", METRICS_NS_TO_S(ss->step_ns))                    \
    X(SNAP_LOG_TIME, "bftkv_snapshot_log_seconds_total", COUNTER, PARTITION, SNAP,                             \
      "Protocol-thread time spent starting log segments and cutting the log.", METRICS_NS_TO_S(ss->log_ns))    \
    X(SNAP_LOG_CUTS, "bftkv_snapshot_log_cuts_total", COUNTER, PARTITION, SNAP,                                \
      "Log cuts that removed segments below a snapshot.", ss->log_cuts)                                        \
    X(SNAP_RECORDS_AGAIN, "bftkv_snapshot_records_again_total", COUNTER, PARTITION, SNAP,                      \
      "VIEW-CHANGE and NEW-VIEW records appended again above a log cut.", ss->records_again)                   \
    X(SNAP_RECOVERED_SEQ, "bftkv_snapshot_recovered_seq", GAUGE, PARTITION, SNAP,                              \
      "The snapshot the start-up recovered from (0: none).", ss->recovered_seq)                                \
    X(SNAP_REFUSED, "bftkv_snapshots_refused_total", COUNTER, PARTITION, SNAP,                                 \
      "Snapshot files refused at start-up.", ss->refused)

/* Drop reasons beyond the decoder's (enum wire_drop, named in lower case): the
 * label value of bftkv_dropped_messages_total{reason} and its value. */
#define METRICS_DROP_REASONS(X)                                                                                \
    X("stale", es->dropped_stale)                                                                              \
    X("conflict", es->dropped_conflict)                                                                        \
    X("full", es->dropped_full)                                                                                \
    X("bad_datagram", server_counter_get(s, SERVER_CTR_bad_datagram))                                          \
    X("rx_ring_full", server_counter_get(s, SERVER_CTR_rx_ring_full))                                          \
    X("tx_ring_full", server_counter_get(s, SERVER_CTR_tx_ring_full))                                          \
    X("reply_no_address", server_counter_get(s, SERVER_CTR_reply_no_address))                                  \
    X("auth_dropped", server_counter_get(s, SERVER_CTR_auth_dropped))                                          \
    X("datagram_excess_replica", server_counter_get(s, SERVER_CTR_dgram_excess_replica))                       \
    X("datagram_excess_client", server_counter_get(s, SERVER_CTR_dgram_excess_client))                         \
    X("datagram_excess_admin", server_counter_get(s, SERVER_CTR_dgram_excess_admin))                           \
    X("rx_truncated", us->rx_truncated)                                                                        \
    X("send_errors", us->send_errors)

/* What a Byzantine test mode did: bftkv_byzantine_actions_total{action}. */
#define METRICS_BYZ_ACTIONS(X)                                                                                 \
    X("dropped", bs->rewriter.dropped)                                                                         \
    X("corrupted", bs->rewriter.corrupted)                                                                     \
    X("fabricated", bs->rewriter.fabricated)                                                                   \
    X("replayed", bs->rewriter.replayed)                                                                       \
    X("equivocated", bs->rewriter.equivocated)                                                                 \
    X("held", bs->held)                                                                                        \
    X("held_full", bs->held_full)
/* clang-format on */

#endif /* BFTKV_SERVER_METRICS_TABLE_H */
