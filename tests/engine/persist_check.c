/* The disk of a durable replica and the persist-before-send check (persist_check.h). */
#include "persist_check.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "engine/wire_le.h"

/* Per seq, the latest record; a replica votes only inside its log window, so a
 * table over twice the largest window never confuses two live seqs. */
#define DISK_SEQS 4096u
_Static_assert(DISK_SEQS >= 2u * BFTKV_LOG_WINDOW_MAX, "the disk's seq table covers any log window");

struct disk_seq {
    uint64_t seq, view1; /* view1 = view + 1; 0: none */
    uint8_t digest[32];
};

struct persist_disk {
    struct disk_seq pp[DISK_SEQS], prepared[DISK_SEQS];
    uint64_t viewchange_view1, newview_view1, committed_max, stable_max;
    /* Every record's bytes, in order: u16 kind | u32 len | bytes. */
    uint8_t *log;
    size_t log_len, log_cap;
    uint64_t log_records;
    size_t log_last;  /* where the last whole record starts */
    size_t torn_at;   /* torn: where the torn record starts (log_len is past it) */
    bool torn, accept_torn;
    bool log_failed; /* out of memory: the disk lost a record */
    /* Snapshots (engine/pbft.h "A snapshot"): [0] the newest whole one. */
    struct disk_snap {
        uint64_t seq;     /* 0: none */
        uint8_t *bytes;   /* the CHECKPOINT record, then the chunks */
        size_t rec_len, len, cap;
    } snap[2];
};

struct persist_disk *persist_disk_new(void)
{
    return calloc(1, sizeof(struct persist_disk));
}

void persist_disk_free(struct persist_disk *d)
{
    if (d != NULL) {
        free(d->log);
        free(d->snap[0].bytes);
        free(d->snap[1].bytes);
    }
    free(d);
}

static bool snap_put(struct disk_snap *s, const void *p, size_t len)
{
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 65536u;
        while (cap < s->len + len)
            cap *= 2u;
        uint8_t *nb = realloc(s->bytes, cap);
        if (nb == NULL)
            return false;
        s->bytes = nb;
        s->cap = cap;
    }
    memcpy(s->bytes + s->len, p, len);
    s->len += len;
    return true;
}

/* A chunk on disk: u8 part | u8 flags | le32 shards | le32 data_len | data. */
#define SNAP_CHUNK_HEAD 10u

int persist_disk_snapshot(struct persist_disk *d, const struct pbft_replica *r, uint16_t n, const uint8_t *rec,
                          size_t len)
{
    uint64_t seq = pbft_persist_checkpoint_seq(n, rec, len);
    if (seq == 0 || seq <= d->snap[0].seq)
        return 0;
    struct disk_snap s = {0};
    uint8_t *data = malloc(WIRE_STATE_DATA_MAX);
    int rc = data != NULL && snap_put(&s, rec, len) ? 0 : BFTKV_E_NOMEM;
    s.rec_len = len;
    struct wire_state_pos pos = {.part = WIRE_PART_STORE, .shard = 0, .cursor = 0};
    while (rc == 0) {
        struct wire_state st;
        rc = pbft_replica_state_chunk(r, seq, &pos, data, &st);
        if (rc != 0)
            break;
        uint8_t head[SNAP_CHUNK_HEAD];
        head[0] = st.from.part;
        head[1] = st.flags;
        le32_store(head + 2, st.shards);
        le32_store(head + 6, st.data_len);
        if (!snap_put(&s, head, sizeof head) || !snap_put(&s, st.data, st.data_len))
            rc = BFTKV_E_NOMEM;
        else if (st.flags & WIRE_STATE_LAST)
            break;
        pos = st.next;
    }
    free(data);
    if (rc != 0) {
        free(s.bytes);
        return rc;
    }
    free(d->snap[1].bytes);
    d->snap[1] = d->snap[0];
    s.seq = seq;
    d->snap[0] = s;
    return 0;
}

uint64_t persist_disk_snapshot_seq(const struct persist_disk *d)
{
    return d->snap[0].seq;
}

int persist_disk_snapshot_restore(const struct persist_disk *d, struct pbft_replica *r)
{
    const struct disk_snap *s = &d->snap[0];
    if (s->seq == 0)
        return BFTKV_E_NOT_FOUND;
    int rc = pbft_replica_recover_snapshot(r, s->bytes, s->rec_len);
    for (size_t at = s->rec_len; rc == 0 && at < s->len;) {
        struct wire_state st = {0};
        st.kind = WIRE_STATE_CHUNK;
        st.from.part = s->bytes[at];
        st.flags = s->bytes[at + 1];
        st.shards = le32_load(s->bytes + at + 2);
        st.data_len = le32_load(s->bytes + at + 6);
        st.data = s->bytes + at + SNAP_CHUNK_HEAD;
        rc = pbft_replica_recover_snapshot_chunk(r, &st);
        at += SNAP_CHUNK_HEAD + st.data_len;
    }
    return rc != 0 ? rc : pbft_replica_recover_snapshot_end(r);
}

static bool log_room(struct persist_disk *d, size_t need)
{
    if (need <= d->log_cap)
        return true;
    size_t cap = d->log_cap ? d->log_cap : 65536u;
    while (cap < need)
        cap *= 2u;
    uint8_t *nb = realloc(d->log, cap);
    if (nb == NULL) {
        d->log_failed = true;
        return false;
    }
    d->log = nb;
    d->log_cap = cap;
    return true;
}

/* The torn record before an append: cut (appends go on where it starts), or
 * with the bug, made whole with zeros. */
static void torn_settle(struct persist_disk *d)
{
    d->torn = false;
    if (!d->accept_torn) {
        d->log_len = d->torn_at;
        return;
    }
    size_t whole = d->torn_at + 6u + le32_load(d->log + d->torn_at + 2);
    if (!log_room(d, whole))
        return;
    memset(d->log + d->log_len, 0, whole - d->log_len);
    d->log_last = d->torn_at;
    d->log_len = whole;
    d->log_records++;
}

void persist_disk_tear(struct persist_disk *d)
{
    if (d->log_records == 0 || d->torn || d->log_failed)
        return;
    uint32_t len = le32_load(d->log + d->log_last + 2);
    size_t part = 6u + len / 2u;
    if (!log_room(d, d->log_len + part))
        return;
    memcpy(d->log + d->log_len, d->log + d->log_last, part);
    d->torn_at = d->log_len;
    d->log_len += part;
    d->torn = true;
}

void persist_disk_accept_torn(struct persist_disk *d, bool accept)
{
    d->accept_torn = accept;
}

static void log_append(struct persist_disk *d, uint16_t kind, const uint8_t *p, size_t len)
{
    if (d->torn)
        torn_settle(d);
    size_t need = d->log_len + 6u + len;
    if (!log_room(d, need))
        return;
    d->log_last = d->log_len;
    uint8_t *at = d->log + d->log_len;
    at[0] = (uint8_t)kind;
    at[1] = (uint8_t)(kind >> 8);
    le32_store(at + 2, (uint32_t)len);
    memcpy(at + 6, p, len);
    d->log_len = need;
    d->log_records++;
}

int persist_disk_replay(const struct persist_disk *d, persist_record_fn fn, void *arg)
{
    if (d->log_failed)
        return BFTKV_E_NOMEM;
    size_t end = d->torn ? d->torn_at : d->log_len;
    for (size_t at = 0; at < end;) {
        uint16_t kind = (uint16_t)(d->log[at] | d->log[at + 1] << 8);
        uint32_t len = le32_load(d->log + at + 2);
        int rc = fn(arg, kind, d->log + at + 6, len);
        if (rc != 0)
            return rc;
        at += 6u + len;
    }
    if (!d->torn || !d->accept_torn)
        return 0; /* the torn tail is cut */
    /* The bug: the torn record, its missing bytes read as zeros. */
    uint32_t len = le32_load(d->log + d->torn_at + 2);
    uint8_t *whole = calloc(len ? len : 1u, 1);
    if (whole == NULL)
        return BFTKV_E_NOMEM;
    memcpy(whole, d->log + d->torn_at + 6, d->log_len - d->torn_at - 6u);
    int rc = fn(arg, (uint16_t)(d->log[d->torn_at] | d->log[d->torn_at + 1] << 8), whole, len);
    free(whole);
    return rc;
}

uint64_t persist_disk_records(const struct persist_disk *d)
{
    return d->log_records;
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

static bool decode(const struct wire_limits *lim, const uint8_t *bytes, size_t len, struct wire_msg *m)
{
    size_t used = 0;
    return wire_decode(bytes, len, lim, m, &used, NULL) == 0;
}

static const char *record_apply(struct persist_disk *d, uint16_t n, const struct wire_limits *lim, uint16_t kind,
                                const uint8_t *p, size_t len)
{
    struct wire_msg m;
    switch (kind) {
    case PBFT_PERSIST_PREPREPARE:
        if (!decode(lim, p, len, &m) || m.h.type != WIRE_PREPREPARE)
            return "a PREPREPARE record that is not a PRE-PREPARE";
        seq_put(d->pp, m.h.view, m.h.seq, m.u.batch.digest);
        return NULL;
    case PBFT_PERSIST_PREPARED:
        if (len != 48)
            return "a PREPARED record of the wrong size";
        seq_put(d->prepared, le64_load(p), le64_load(p + 8), p + 16);
        return NULL;
    case PBFT_PERSIST_COMMITTED:
        if (len != 40)
            return "a COMMITTED record of the wrong size";
        if (le64_load(p) > d->committed_max)
            d->committed_max = le64_load(p);
        return NULL;
    case PBFT_PERSIST_VIEW_CHANGE:
        if (!decode(lim, p, len, &m) || m.h.type != WIRE_VIEW_CHANGE)
            return "a VIEW_CHANGE record that is not a VIEW-CHANGE";
        if (m.h.view + 1u > d->viewchange_view1)
            d->viewchange_view1 = m.h.view + 1u;
        return NULL;
    case PBFT_PERSIST_NEW_VIEW:
        if (!decode(lim, p, len, &m) || m.h.type != WIRE_NEW_VIEW)
            return "a NEW_VIEW record that is not a NEW-VIEW";
        d->newview_view1 = m.h.view + 1u;
        return NULL;
    case PBFT_PERSIST_CHECKPOINT: {
        /* le64 seq | le64 senders | n signed CHECKPOINTs (engine/persist.c). */
        if (n == 0 || len < 16u || (len - 16u) % n != 0)
            return "a CHECKPOINT record that is not a seq, senders and n CHECKPOINTs";
        uint64_t seq = le64_load(p), bits = le64_load(p + 8);
        size_t one = (len - 16u) / n;
        for (uint16_t j = 0; j < n; j++) {
            if ((bits & (1ull << j)) == 0)
                continue;
            if (!decode(lim, p + 16u + (size_t)j * one, one, &m) || m.h.type != WIRE_CHECKPOINT || m.h.seq != seq)
                return "a CHECKPOINT record with a message that is not the CHECKPOINT it names";
        }
        if (seq > d->stable_max)
            d->stable_max = seq;
        return NULL;
    }
    case PBFT_PERSIST_REQUEST:
        return decode(lim, p, len, &m) && m.h.type == WIRE_REQUEST ? NULL : "a REQUEST record that is not a REQUEST";
    case PBFT_PERSIST_HOLDS_STATE:
        return len == 1 && p[0] <= 1 ? NULL : "a HOLDS_STATE record that is not one byte 0 or 1";
    default:
        return "a record of an unknown kind";
    }
}

static const char *message_check(const struct persist_disk *d, uint16_t who, const struct wire_limits *lim,
                                 const uint8_t *bytes, size_t len, bool *replies, uint64_t *view, uint64_t *seq)
{
    struct wire_msg m;
    if (!decode(lim, bytes, len, &m))
        return "a message that does not decode (an outbox entry over the wrong bytes)";
    *view = m.h.view;
    *seq = m.h.seq;
    if (m.h.type == WIRE_REPLY) {
        *replies = true;
        return NULL;
    }
    if (m.h.sender != who)
        return NULL; /* relayed: another replica's message */
    switch (m.h.type) {
    case WIRE_PREPREPARE:
        return seq_has(d->pp, m.h.view, m.h.seq, m.u.batch.digest) ? NULL : "PRE-PREPARE sent before its record";
    case WIRE_PREPARE:
        return seq_has(d->pp, m.h.view, m.h.seq, m.u.batch.digest) ? NULL : "PREPARE sent before its PRE-PREPARE record";
    case WIRE_COMMIT:
        return seq_has(d->prepared, m.h.view, m.h.seq, m.u.batch.digest) ? NULL
                                                                           : "COMMIT sent before its PREPARED record";
    case WIRE_VIEW_CHANGE:
        return d->viewchange_view1 >= m.h.view + 1u ? NULL : "VIEW-CHANGE sent before its record";
    case WIRE_NEW_VIEW:
        return d->newview_view1 == m.h.view + 1u ? NULL : "NEW-VIEW sent before its record";
    default:
        return NULL;
    }
}

const char *persist_disk_outbox(struct persist_disk *d, uint16_t who, uint16_t n, const struct wire_limits *lim,
                                const struct pbft_out *o, uint64_t last_executed, uint64_t counts[PERSIST_KINDS],
                                uint64_t *view, uint64_t *seq)
{
    *view = 0;
    *seq = 0;
    for (uint32_t k = 0; k < o->nmsgs; k++) {
        const struct pbft_out_msg *om = &o->msgs[k];
        if (om->dest_kind != PBFT_DEST_PERSIST)
            continue;
        counts[om->dest_id < PERSIST_KINDS ? om->dest_id : 0]++;
        const char *why = record_apply(d, n, lim, om->dest_id, pbft_out_bytes(o, om), om->len);
        if (why != NULL)
            return why;
        log_append(d, om->dest_id, pbft_out_bytes(o, om), om->len);
    }
    bool replies = false;
    for (uint32_t k = 0; k < o->nmsgs; k++) {
        const struct pbft_out_msg *om = &o->msgs[k];
        if (om->dest_kind == PBFT_DEST_PERSIST)
            continue;
        const char *why = message_check(d, who, lim, pbft_out_bytes(o, om), om->len, &replies, view, seq);
        if (why != NULL)
            return why;
    }
    if (replies && last_executed > d->committed_max && last_executed > d->stable_max) {
        *seq = last_executed;
        return "replies sent before the batch's COMMITTED record";
    }
    return NULL;
}
