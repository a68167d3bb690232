/* The disks of durable replicas in the replica harness: persist_check.h's check on
 * every drained outbox, fatal on a violation (the test aborts with the replica,
 * the message and what was missing). The disks outlive rh_restart and are freed by
 * rh_fini. */
#include <stdio.h>
#include <stdlib.h>

#include "persist_check.h"
#include "replica_harness.h"

_Static_assert(RH_DISK_KINDS == PERSIST_KINDS, "the harness counts every record kind");

void rh_disk_outbox(struct rh_cluster *c, uint16_t who, const struct pbft_out *o)
{
    if (!c->cfg[who].durable)
        return;
    if (c->disk[who] == NULL && (c->disk[who] = persist_disk_new()) == NULL)
        abort();
    uint64_t view, seq;
    const char *why = persist_disk_outbox(c->disk[who], who, c->n, &c->lim, o,
                                          pbft_replica_stats(c->r[who])->last_executed, c->disk_records, &view, &seq);
    if (why != NULL) {
        fprintf(stderr, "replica_harness: replica %u: %s (view %llu, seq %llu)\n", who, why,
                (unsigned long long)view, (unsigned long long)seq);
        abort();
    }
    /* A CHECKPOINT record: the runtime's snapshot of that checkpoint, taken here at once. */
    for (uint32_t i = 0; i < o->nmsgs; i++) {
        const struct pbft_out_msg *om = &o->msgs[i];
        if (om->dest_kind == PBFT_DEST_PERSIST && om->dest_id == PBFT_PERSIST_CHECKPOINT
            && persist_disk_snapshot(c->disk[who], c->r[who], c->n, pbft_out_bytes(o, om), om->len) != 0)
            abort();
    }
}

void rh_disk_free(struct rh_cluster *c)
{
    for (uint16_t i = 0; i < RH_REPLICAS_MAX; i++) {
        persist_disk_free(c->disk[i]);
        c->disk[i] = NULL;
    }
}
