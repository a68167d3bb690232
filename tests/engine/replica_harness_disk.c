/* The disk of a durable replica in the replica harness (engine/pbft.h, "Ordering
 * contract"; docs/design.md §9): the records its outboxes list, and the check,
 * outbox by outbox, that every message it sends itself depends only on records
 * listed in that outbox or an earlier one:
 *
 *   its PRE-PREPARE(v, n, D) or PREPARE(v, n, D)   a PREPREPARE record of (v, n, D)
 *   its COMMIT(v, n, D)                            a PREPARED record of (v, n, D)
 *   its VIEW-CHANGE(v)                             a VIEW_CHANGE record of v or later
 *   its NEW-VIEW(v)                                a NEW_VIEW record of v
 *   replies                                        last_executed covered by a
 *                                                  COMMITTED or CHECKPOINT record
 *
 * A violation aborts the test with the replica, the message and what was missing.
 * The disk outlives rh_restart (it is the disk) and is freed by rh_fini.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/wire_le.h"
#include "replica_harness.h"

#define DISK_SEQS 4096u

struct disk_seq {
    uint64_t seq, view1; /* view1 = view + 1; 0: none */
    uint8_t digest[32];
};

struct rh_disk {
    struct disk_seq pp[DISK_SEQS], prepared[DISK_SEQS];
    uint64_t viewchange_view1, newview_view1, committed_max, stable_max;
};

static _Noreturn void violation(uint16_t who, const char *what, uint64_t view, uint64_t seq)
{
    fprintf(stderr, "replica_harness: replica %u sent %s (view %llu, seq %llu) before persisting what it depends on\n",
            who, what, (unsigned long long)view, (unsigned long long)seq);
    abort();
}

static struct rh_disk *disk_of(struct rh_cluster *c, uint16_t who)
{
    if (c->disk[who] == NULL) {
        c->disk[who] = calloc(1, sizeof *c->disk[who]);
        if (c->disk[who] == NULL)
            abort();
    }
    return c->disk[who];
}

static void seq_put(struct disk_seq *tab, uint64_t view, uint64_t seq, const uint8_t *d)
{
    struct disk_seq *e = &tab[seq % DISK_SEQS];
    if (e->seq == seq && e->view1 > view + 1u)
        return; /* a later view's record stands */
    e->seq = seq;
    e->view1 = view + 1u;
    memcpy(e->digest, d, 32);
}

static bool seq_has(const struct disk_seq *tab, uint64_t view, uint64_t seq, const uint8_t *d)
{
    const struct disk_seq *e = &tab[seq % DISK_SEQS];
    return e->seq == seq && e->view1 == view + 1u && memcmp(e->digest, d, 32) == 0;
}

static bool decode(const struct rh_cluster *c, const uint8_t *bytes, size_t len, struct wire_msg *m)
{
    size_t used = 0;
    return wire_decode(bytes, len, &c->lim, m, &used, NULL) == 0;
}

static void record_apply(struct rh_cluster *c, uint16_t who, uint16_t kind, const uint8_t *p, size_t len)
{
    struct rh_disk *d = disk_of(c, who);
    struct wire_msg m;
    c->disk_records[kind < RH_DISK_KINDS ? kind : 0]++;
    switch (kind) {
    case PBFT_PERSIST_PREPREPARE:
        if (!decode(c, p, len, &m) || m.h.type != WIRE_PREPREPARE)
            violation(who, "a PREPREPARE record that is not a PRE-PREPARE", 0, 0);
        seq_put(d->pp, m.h.view, m.h.seq, m.u.batch.digest);
        break;
    case PBFT_PERSIST_PREPARED:
        if (len != 48)
            violation(who, "a PREPARED record of the wrong size", 0, 0);
        seq_put(d->prepared, le64_load(p), le64_load(p + 8), p + 16);
        break;
    case PBFT_PERSIST_COMMITTED:
        if (len != 40)
            violation(who, "a COMMITTED record of the wrong size", 0, 0);
        if (le64_load(p) > d->committed_max)
            d->committed_max = le64_load(p);
        break;
    case PBFT_PERSIST_VIEW_CHANGE:
        if (!decode(c, p, len, &m) || m.h.type != WIRE_VIEW_CHANGE)
            violation(who, "a VIEW_CHANGE record that is not a VIEW-CHANGE", 0, 0);
        if (m.h.view + 1u > d->viewchange_view1)
            d->viewchange_view1 = m.h.view + 1u;
        break;
    case PBFT_PERSIST_NEW_VIEW:
        if (!decode(c, p, len, &m) || m.h.type != WIRE_NEW_VIEW)
            violation(who, "a NEW_VIEW record that is not a NEW-VIEW", 0, 0);
        d->newview_view1 = m.h.view + 1u;
        break;
    case PBFT_PERSIST_CHECKPOINT: {
        size_t one = len / c->n;
        for (uint16_t j = 0; j < c->n; j++) {
            if (decode(c, p + (size_t)j * one, one, &m) && m.h.type == WIRE_CHECKPOINT && m.h.seq > d->stable_max)
                d->stable_max = m.h.seq;
        }
        break;
    }
    case PBFT_PERSIST_REQUEST:
        break;
    default:
        violation(who, "a record of an unknown kind", 0, kind);
    }
}

static void message_check(struct rh_cluster *c, uint16_t who, const uint8_t *bytes, size_t len, bool *replies)
{
    struct rh_disk *d = disk_of(c, who);
    struct wire_msg m;
    if (!decode(c, bytes, len, &m))
        return;
    if (m.h.type == WIRE_REPLY) {
        *replies = true;
        return;
    }
    if (m.h.sender != who)
        return; /* relayed: another replica's message */
    switch (m.h.type) {
    case WIRE_PREPREPARE:
    case WIRE_PREPARE:
        if (!seq_has(d->pp, m.h.view, m.h.seq, m.u.batch.digest))
            violation(who, m.h.type == WIRE_PREPARE ? "PREPARE" : "PRE-PREPARE", m.h.view, m.h.seq);
        break;
    case WIRE_COMMIT:
        if (!seq_has(d->prepared, m.h.view, m.h.seq, m.u.batch.digest))
            violation(who, "COMMIT", m.h.view, m.h.seq);
        break;
    case WIRE_VIEW_CHANGE:
        if (d->viewchange_view1 < m.h.view + 1u)
            violation(who, "VIEW-CHANGE", m.h.view, 0);
        break;
    case WIRE_NEW_VIEW:
        if (d->newview_view1 != m.h.view + 1u)
            violation(who, "NEW-VIEW", m.h.view, 0);
        break;
    default:
        break;
    }
}

void rh_disk_outbox(struct rh_cluster *c, uint16_t who, const struct pbft_out *o)
{
    if (!c->cfg[who].durable)
        return;
    for (uint32_t k = 0; k < o->nmsgs; k++) {
        const struct pbft_out_msg *om = &o->msgs[k];
        if (om->dest_kind == PBFT_DEST_PERSIST)
            record_apply(c, who, om->dest_id, pbft_out_bytes(o, om), om->len);
    }
    bool replies = false;
    for (uint32_t k = 0; k < o->nmsgs; k++) {
        const struct pbft_out_msg *om = &o->msgs[k];
        if (om->dest_kind != PBFT_DEST_PERSIST)
            message_check(c, who, pbft_out_bytes(o, om), om->len, &replies);
    }
    const struct rh_disk *d = disk_of(c, who);
    uint64_t le = pbft_replica_stats(c->r[who])->last_executed;
    if (replies && le > d->committed_max && le > d->stable_max)
        violation(who, "replies", pbft_replica_view(c->r[who]), le);
}

void rh_disk_free(struct rh_cluster *c)
{
    for (uint16_t i = 0; i < RH_REPLICAS_MAX; i++) {
        free(c->disk[i]);
        c->disk[i] = NULL;
    }
}
