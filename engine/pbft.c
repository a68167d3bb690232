/* What replicas and clients of a group agree on before any message: the quorum
 * size and the replica's default parameters (engine/pbft.h). Apart from the
 * replica's files, so a client (libbftkv) links them without the replica.
 */
#include "engine/catchup.h"
#include "engine/pbft.h"

/* Defaults (docs/design.md §5). K = 128 batches between checkpoints keeps the signing
 * cost (one Ed25519 signature and n-1 verifications) far below one per batch;
 * L = 2K lets the primary run a full checkpoint interval ahead of the last
 * stable checkpoint while the next one collects its quorum. W = 8 batches in
 * flight covers the pipeline: a batch needs three message delays (pre-prepare,
 * prepare, commit) before it executes, and new requests keep arriving meanwhile;
 * with 8 in flight a backlog is cut into batches as soon as one executes, so the
 * batches grow by themselves under load (no batching timer) while a lone
 * request still goes out at once. */
void pbft_replica_config_defaults(struct pbft_replica_config *cfg)
{
    cfg->lanes = 1;
    cfg->checkpoint_interval = 128;
    cfg->log_window = 256;
    cfg->window = 8;
    cfg->batch_max_requests = BFTKV_BATCH_REQUESTS_MAX;
    cfg->batch_max_bytes = BFTKV_BATCH_BYTES_MAX;
    cfg->request_timeout_ns = 50u * 1000u * 1000u;
    cfg->retransmit_ns = CATCHUP_RETRANSMIT_DEFAULT_NS;
    cfg->restarted = false;
    cfg->durable = false;
    cfg->bugs = 0;
    cfg->map_epoch = 0; /* no map epoch in REPLYs (not a deployment's partition) */
}

uint16_t pbft_quorum(uint16_t n, uint16_t f)
{
    return (uint16_t)(((uint32_t)n + f + 2u) / 2u);
}
