/* Byzantine behaviours of faulty replicas (see faults.h): each is a send filter
 * that sees one message and one destination, and sends whatever it chooses. */
#include "tests/sim/faults.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/auth.h"
#include "store/store.h"

/* A fabricated value: 8 bytes no client ever writes (client ids are small). */
#define FAULT_EVIL_BYTES 8u

static const char *const fault_names[FAULT_COUNT] = {
    [FAULT_NONE] = "none",
    [FAULT_SILENT] = "silent",
    [FAULT_DROP] = "drop",
    [FAULT_CORRUPT_MAC] = "corrupt-mac",
    [FAULT_CORRUPT_DIGEST] = "corrupt-digest",
    [FAULT_WRONG_RESULT] = "wrong-result",
    [FAULT_REPLAY] = "replay",
    [FAULT_MIX] = "mix",
    [FAULT_STALE_READ] = "stale-read",
    [FAULT_EQUIVOCATE] = "equivocate",
    [FAULT_SLOW] = "slow",
    [FAULT_BOGUS_VC] = "bogus-vc",
    [FAULT_LYING_STATE] = "lying-state",
};

const char *fault_name(enum fault_behaviour b)
{
    return (unsigned)b < FAULT_COUNT ? fault_names[b] : "?";
}

int fault_parse(const char *s)
{
    for (int i = 0; i < FAULT_COUNT; i++)
        if (strcmp(s, fault_names[i]) == 0)
            return i;
    return -1;
}

int faults_init(struct faults *fs, uint16_t n, uint16_t f)
{
    memset(fs, 0, sizeof(*fs));
    BFTKV_ASSERT(n <= BFTKV_REPLICAS_MAX);
    fs->n = n;
    fs->f = f;
    return 0;
}

/* The scratch buffers are needed only once some replica is faulty. */
static void scratch_alloc(struct faults *fs)
{
    if (fs->scratch)
        return;
    fs->scratch = malloc(BFTKV_DATAGRAM_MAX);
    fs->entries = malloc(BFTKV_DATAGRAM_MAX);
    fs->list = malloc(BFTKV_BATCH_REQUESTS_MAX * sizeof(*fs->list));
    fs->vc = malloc(3u * (BFTKV_LOG_WINDOW_MAX + 1u) * sizeof(*fs->vc));
    BFTKV_ASSERT(fs->scratch && fs->entries && fs->list && fs->vc);
}

void faults_destroy(struct faults *fs)
{
    for (uint16_t i = 0; i < BFTKV_REPLICAS_MAX; i++) {
        struct fault_replica *fr = fs->rep[i];
        if (!fr)
            continue;
        for (uint32_t j = 0; j < FAULT_REPLAY_RING; j++)
            free(fr->ring[j].buf);
        for (uint32_t j = 0; j < FAULT_EQUIV_RING; j++)
            free(fr->eq[j].msg);
        free(fr);
    }
    free(fs->scratch);
    free(fs->entries);
    free(fs->list);
    free(fs->vc);
    memset(fs, 0, sizeof(*fs));
}

void faults_set(struct faults *fs, uint16_t id, enum fault_behaviour b, uint64_t seed)
{
    BFTKV_ASSERT(id < fs->n && b > FAULT_NONE && b < FAULT_COUNT && fs->rep[id] == NULL);
    scratch_alloc(fs);
    struct fault_replica *fr = calloc(1, sizeof(*fr));
    BFTKV_ASSERT(fr != NULL);
    fs->rep[id] = fr;
    fs->faulty[id] = true;
    fr->fs = fs;
    fr->id = id;
    fr->behaviour = (uint8_t)b;
    prng_seed(&fr->rng, seed);
    fr->drop_percent = (double)prng_range(&fr->rng, 10, 90);
    fr->stale_delay_ns = prng_range(&fr->rng, 1000000, 10000000);
    uint64_t t = fs->request_timeout_ns ? fs->request_timeout_ns : 50000000u;
    fr->slow_delay_ns = t / 100u * prng_range(&fr->rng, 60, 95);
    if (b == FAULT_EQUIVOCATE) {
        /* A non-empty proper subset of the backups gets the B version. */
        uint16_t backups = (uint16_t)(fs->n - 1);
        uint64_t bits;
        do {
            bits = prng_next(&fr->rng);
            uint16_t count = 0;
            for (uint16_t r = 1; r < fs->n; r++)
                count = (uint16_t)(count + ((bits >> (r % 64)) & 1u));
            if (count > 0 && count < backups)
                break;
        } while (true);
        for (uint16_t r = 1; r < fs->n; r++)
            fr->b_group[r] = ((bits >> (r % 64)) & 1u) != 0;
    }
}

/* ---- Helpers ---------------------------------------------------------------------- */

static void pass(struct cluster *cl, uint32_t from, uint32_t to, const uint8_t *msg, uint32_t len)
{
    cluster_send(cl, from, to, msg, len);
}

static bool header_ok(const uint8_t *msg, uint32_t len, struct wire_header *h)
{
    if (len < WIRE_HEADER_SIZE)
        return false;
    wire_header_read(msg, h);
    return (uint64_t)WIRE_HEADER_SIZE + h->body_len + h->auth_len == len;
}

/* Flip one byte of the authenticator or signature. */
static bool corrupt_mac(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                        const uint8_t *msg, uint32_t len)
{
    struct wire_header h;
    if (!header_ok(msg, len, &h) || h.auth_len == 0)
        return false;
    uint8_t *s = fr->fs->scratch;
    memcpy(s, msg, len);
    uint32_t at = len - h.auth_len + (uint32_t)prng_below(&fr->rng, h.auth_len);
    s[at] ^= (uint8_t)(1u + prng_below(&fr->rng, 255));
    fr->fs->stats.corrupted++;
    pass(cl, from, to, s, len);
    return true;
}

/* A reply with a made-up result, correctly digested and MACed for its client:
 * either a value no client ever wrote or NOT_FOUND. */
static bool fabricate_reply(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                            const uint8_t *msg, uint32_t len, bool not_found)
{
    struct wire_limits lim = cluster_wire_limits(cl);
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &lim, &m, &used, NULL) != 0 || m.h.type != WIRE_REPLY)
        return false;
    static const uint8_t evil[FAULT_EVIL_BYTES] = {0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE};
    struct wire_reply rp = m.u.reply;
    uint8_t digest[32];
    if (not_found) {
        rp.status = (int16_t)BFTKV_E_NOT_FOUND;
        rp.result = evil; /* non-NULL with length 0: a full, empty result */
        rp.result_len = 0;
    } else {
        rp.status = 0;
        rp.result = evil;
        rp.result_len = sizeof(evil);
    }
    wire_result_digest(digest, rp.status, rp.result, rp.result_len);
    rp.result_digest = digest;
    size_t auth_off;
    size_t n = wire_encode_reply(fr->fs->scratch, BFTKV_DATAGRAM_MAX, m.h.group, m.h.sender, m.h.view, m.h.seq,
                                 &rp, &auth_off);
    BFTKV_ASSERT(n > 0);
    auth_reply_fill(cluster_replica_auth(cl, fr->id), fr->fs->scratch, n, auth_off, rp.client);
    fr->fs->stats.fabricated++;
    pass(cl, from, to, fr->fs->scratch, (uint32_t)n);
    return true;
}

/* The most-lagging correct replica other than the accomplices: the state a
 * stale answer must match. */
static int lagging_victim(const struct fault_replica *fr, struct cluster *cl)
{
    int best = -1;
    uint64_t best_exec = UINT64_MAX;
    for (uint16_t r = 0; r < fr->fs->n; r++) {
        if (fr->fs->faulty[r] || fr->fs->accomplice[r] || !cluster_replica(cl, r))
            continue;
        uint64_t e = pbft_replica_stats(cluster_replica(cl, r))->last_executed;
        if (e < best_exec) {
            best_exec = e;
            best = r;
        }
    }
    return best;
}

/* stale-read: answer a read-only GET with what the most-lagging correct replica
 * holds for the key, correctly digested and MACed. */
static bool stale_reply(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                        const uint8_t *msg, uint32_t len)
{
    struct faults *fs = fr->fs;
    struct wire_limits lim = cluster_wire_limits(cl);
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &lim, &m, &used, NULL) != 0 || m.h.type != WIRE_REPLY)
        return false;
    char key[BFTKV_KEY_MAX];
    size_t klen = 0;
    int victim = lagging_victim(fr, cl);
    if (!fs->key_of || victim < 0 || !fs->key_of(fs->key_arg, m.u.reply.client, m.u.reply.lane, key, sizeof key, &klen))
        return fabricate_reply(fr, cl, from, to, msg, len, true);
    struct wire_reply rp = m.u.reply;
    size_t vlen = 0;
    int rc = store_get(cluster_store(cl, (uint16_t)victim), key, klen, fs->entries, BFTKV_DATAGRAM_MAX, &vlen);
    if (rc != 0 && rc != BFTKV_E_NOT_FOUND)
        return false;
    rp.status = (int16_t)rc;
    rp.result = fs->entries; /* non-NULL: a full result (empty for NOT_FOUND) */
    rp.result_len = rc == 0 ? (uint32_t)vlen : 0;
    uint8_t digest[32];
    wire_result_digest(digest, rp.status, rp.result, rp.result_len);
    rp.result_digest = digest;
    size_t auth_off;
    size_t n = wire_encode_reply(fs->scratch, BFTKV_DATAGRAM_MAX, m.h.group, m.h.sender, m.h.view, m.h.seq, &rp,
                                 &auth_off);
    BFTKV_ASSERT(n > 0);
    auth_reply_fill(cluster_replica_auth(cl, fr->id), fs->scratch, n, auth_off, rp.client);
    fs->stats.fabricated++;
    pass(cl, from, to, fs->scratch, (uint32_t)n);
    return true;
}

/* PREPARE, COMMIT or CHECKPOINT with digest d instead of its own, re-authenticated. */
static void send_with_digest(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                             const uint8_t *msg, uint32_t len, const struct wire_header *h, const uint8_t d[32])
{
    uint8_t *s = fr->fs->scratch;
    memcpy(s, msg, len);
    memcpy(s + WIRE_HEADER_SIZE, d, 32);
    size_t auth_off = WIRE_HEADER_SIZE + h->body_len;
    memset(s + auth_off, 0, h->auth_len);
    if (h->type == WIRE_CHECKPOINT)
        auth_sign(cluster_replica_auth(cl, fr->id), s, len, auth_off);
    else
        auth_authenticator_fill(cluster_replica_auth(cl, fr->id), s, len, auth_off);
    pass(cl, from, to, s, len);
}

static bool corrupt_digest(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                           const uint8_t *msg, uint32_t len)
{
    struct wire_header h;
    if (!header_ok(msg, len, &h))
        return false;
    switch (h.type) {
    case WIRE_PREPARE:
    case WIRE_COMMIT:
    case WIRE_CHECKPOINT: {
        if (h.body_len < 32)
            return false;
        uint8_t d[32];
        for (int i = 0; i < 4; i++) {
            uint64_t x = prng_next(&fr->rng);
            memcpy(d + 8 * i, &x, 8);
        }
        fr->fs->stats.corrupted++;
        send_with_digest(fr, cl, from, to, msg, len, &h, d);
        return true;
    }
    case WIRE_PREPREPARE: {
        /* The wrong D, authenticated: decoders must notice D is not the digest
         * of the entries. */
        if (h.body_len < 32)
            return false;
        uint8_t *s = fr->fs->scratch;
        memcpy(s, msg, len);
        s[WIRE_HEADER_SIZE + prng_below(&fr->rng, 32)] ^= 0x5A;
        size_t auth_off = WIRE_HEADER_SIZE + h.body_len;
        auth_authenticator_fill(cluster_replica_auth(cl, fr->id), s, len, auth_off);
        fr->fs->stats.corrupted++;
        pass(cl, from, to, s, len);
        return true;
    }
    case WIRE_REPLY:
        return fabricate_reply(fr, cl, from, to, msg, len, prng_below(&fr->rng, 2) == 0);
    default:
        return false;
    }
}

static void replay_record(struct fault_replica *fr, uint32_t to, const uint8_t *msg, uint32_t len)
{
    uint32_t i = fr->ring_next;
    fr->ring_next = (fr->ring_next + 1) % FAULT_REPLAY_RING;
    if (fr->ring_len < FAULT_REPLAY_RING)
        fr->ring_len++;
    if (fr->ring[i].cap < len) {
        free(fr->ring[i].buf);
        fr->ring[i].buf = malloc(len);
        BFTKV_ASSERT(fr->ring[i].buf != NULL);
        fr->ring[i].cap = len;
    }
    memcpy(fr->ring[i].buf, msg, len);
    fr->ring[i].len = len;
    fr->ring[i].to = to;
}

static void replay_some(struct fault_replica *fr, struct cluster *cl, uint32_t from)
{
    if (fr->ring_len == 0 || !prng_percent(&fr->rng, 25.0))
        return;
    uint32_t i = (uint32_t)prng_below(&fr->rng, fr->ring_len);
    uint32_t to = fr->ring[i].to;
    if (prng_below(&fr->rng, 2) == 0) {
        /* To some other replica: authenticators carry a MAC for every replica,
         * so an old broadcast verifies anywhere. */
        to = (uint32_t)prng_below(&fr->rng, fr->fs->n);
        if (to == from)
            to = fr->ring[i].to;
    }
    fr->fs->stats.replayed++;
    pass(cl, from, to, fr->ring[i].buf, fr->ring[i].len);
}

/* ---- Equivocation ------------------------------------------------------------------ */

/* The B version of a PRE-PREPARE: the same entries in reverse order, so the same
 * requests execute in another order (a different batch digest, and a different
 * state whenever two of them touch one key). NULL when the batch has fewer than
 * two entries (nothing to reorder). */
static const uint8_t *equivocal_preprepare(struct fault_replica *fr, struct cluster *cl, const uint8_t *msg,
                                           uint32_t len, uint32_t *out_len)
{
    struct wire_header h;
    if (!header_ok(msg, len, &h))
        return NULL;
    uint32_t slot = (uint32_t)(h.seq % FAULT_EQUIV_RING);
    if (fr->eq[slot].valid && fr->eq[slot].seq == h.seq && fr->eq[slot].view == h.view) {
        *out_len = fr->eq[slot].len;
        return fr->eq[slot].len ? fr->eq[slot].msg : NULL;
    }
    struct wire_limits lim = cluster_wire_limits(cl);
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &lim, &m, &used, NULL) != 0)
        return NULL;
    fr->eq[slot].valid = true;
    fr->eq[slot].seq = h.seq;
    fr->eq[slot].view = h.view;
    fr->eq[slot].len = 0;
    memcpy(fr->eq[slot].da, m.u.batch.digest, 32);
    if (m.u.batch.count < 2)
        return NULL;
    uint32_t off = 0;
    uint32_t k = 0;
    struct wire_batch_entry e;
    while (k < BFTKV_BATCH_REQUESTS_MAX && wire_batch_next(&m, &off, &e) == 1)
        fr->fs->list[k++] = e;
    size_t at = 0;
    for (uint32_t i = k; i-- > 0;) {
        const struct wire_batch_entry *x = &fr->fs->list[i];
        size_t w = x->kind == WIRE_ENTRY_INLINE
                       ? wire_entry_inline(fr->fs->entries + at, BFTKV_DATAGRAM_MAX - at, x->bytes, x->len)
                       : wire_entry_digest(fr->fs->entries + at, BFTKV_DATAGRAM_MAX - at, x->request_digest,
                                           x->client, x->lane, x->timestamp);
        BFTKV_ASSERT(w > 0);
        at += w;
    }
    size_t auth_off;
    size_t n = wire_encode_preprepare(fr->fs->scratch, BFTKV_DATAGRAM_MAX, h.group, h.sender, lim.n, h.view,
                                      h.seq, fr->fs->entries, (uint32_t)at, (uint16_t)k, &auth_off);
    BFTKV_ASSERT(n > 0);
    auth_authenticator_fill(cluster_replica_auth(cl, fr->id), fr->fs->scratch, n, auth_off);
    if (fr->eq[slot].cap < n) {
        free(fr->eq[slot].msg);
        fr->eq[slot].msg = malloc(n);
        BFTKV_ASSERT(fr->eq[slot].msg != NULL);
        fr->eq[slot].cap = (uint32_t)n;
    }
    memcpy(fr->eq[slot].msg, fr->fs->scratch, n);
    fr->eq[slot].len = (uint32_t)n;
    memcpy(fr->eq[slot].db, fr->fs->scratch + WIRE_HEADER_SIZE, 32);
    *out_len = (uint32_t)n;
    return fr->eq[slot].msg;
}

/* ---- Bogus VIEW-CHANGE and NEW-VIEW ------------------------------------------------- */

static void random_digest(struct fault_replica *fr, uint8_t d[32])
{
    for (int i = 0; i < 4; i++) {
        uint64_t x = prng_next(&fr->rng);
        memcpy(d + 8 * i, &x, 8);
    }
}

/* The digest a lying VIEW-CHANGE claims for seq: an equivocating primary's B
 * batch when it has one (a real batch some backups pre-prepared), else random
 * (bogus-vc); false to leave the entry alone. */
static bool claimed_digest(struct fault_replica *fr, uint64_t seq, uint8_t d[32])
{
    if (fr->behaviour == FAULT_EQUIVOCATE) {
        uint32_t slot = (uint32_t)(seq % FAULT_EQUIV_RING);
        if (!fr->eq[slot].valid || fr->eq[slot].seq != seq || fr->eq[slot].len == 0)
            return false;
        memcpy(d, fr->eq[slot].db, 32);
        return true;
    }
    random_digest(fr, d);
    return true;
}

/* Rewrite a VIEW-CHANGE (see bogus-vc in faults.h) and send it, re-signed. */
static bool bogus_view_change(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                              const uint8_t *msg, uint32_t len)
{
    struct faults *fs = fr->fs;
    struct wire_limits lim = cluster_wire_limits(cl);
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &lim, &m, &used, NULL) != 0 || m.h.type != WIRE_VIEW_CHANGE || m.h.view == 0)
        return false;
    uint32_t cap = BFTKV_LOG_WINDOW_MAX + 1u;
    if (m.u.vc.ncp > cap || m.u.vc.np > cap || m.u.vc.nq > cap)
        return false;
    struct wire_vc_entry *cp = fs->vc, *p = fs->vc + cap, *q = fs->vc + 2u * cap;
    for (uint32_t i = 0; i < m.u.vc.ncp; i++)
        wire_vc_checkpoint(&m, i, &cp[i]);
    for (uint32_t i = 0; i < m.u.vc.np; i++) {
        wire_vc_prepared(&m, i, &p[i]);
        uint8_t d[32];
        if (claimed_digest(fr, p[i].seq, d)) {
            memcpy(p[i].digest, d, 32);
            p[i].view = m.h.view - 1u;
        }
    }
    for (uint32_t i = 0; i < m.u.vc.nq; i++) {
        wire_vc_preprepared(&m, i, &q[i]);
        if (i > 0 && q[i - 1].seq == q[i].seq)
            continue; /* the first Q entry of a seq carries the claim */
        for (uint32_t j = 0; j < m.u.vc.np; j++) {
            if (p[j].seq == q[i].seq) {
                memcpy(q[i].digest, p[j].digest, 32);
                q[i].view = p[j].view;
                break;
            }
        }
    }
    if (fr->behaviour == FAULT_BOGUS_VC && m.u.vc.ncp > 0 && cp[m.u.vc.ncp - 1].seq > 0 &&
        prng_below(&fr->rng, 2) == 0)
        random_digest(fr, cp[m.u.vc.ncp - 1].digest);
    /* Q's digests must stay distinct within a seq (the encoder asserts the
     * wire's rules): give up on a rewrite that breaks that. */
    for (uint32_t i = 1; i < m.u.vc.nq; i++)
        for (uint32_t j = i; j-- > 0 && q[j].seq == q[i].seq;)
            if (memcmp(q[j].digest, q[i].digest, 32) == 0)
                return false;
    size_t auth_off;
    size_t n = wire_encode_view_change(fs->scratch, BFTKV_DATAGRAM_MAX, m.h.group, m.h.sender, m.h.view,
                                       m.h.seq, cp, m.u.vc.ncp, p, m.u.vc.np, q, m.u.vc.nq, &auth_off);
    if (n == 0)
        return false;
    auth_sign(cluster_replica_auth(cl, fr->id), fs->scratch, n, auth_off);
    fs->stats.corrupted++;
    pass(cl, from, to, fs->scratch, (uint32_t)n);
    return true;
}

/* A NEW-VIEW with one choice replaced by a random digest, re-signed. */
static bool bogus_new_view(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                           const uint8_t *msg, uint32_t len)
{
    struct faults *fs = fr->fs;
    struct wire_limits lim = cluster_wire_limits(cl);
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &lim, &m, &used, NULL) != 0 || m.h.type != WIRE_NEW_VIEW || m.u.nv.nch == 0)
        return false;
    const uint8_t *d;
    uint8_t xf;
    wire_nv_choice(&m, (uint32_t)prng_below(&fr->rng, m.u.nv.nch), &d, &xf);
    size_t off = (size_t)(d - msg);
    memcpy(fs->scratch, msg, len);
    random_digest(fr, fs->scratch + off);
    size_t auth_off = WIRE_HEADER_SIZE + m.h.body_len;
    memset(fs->scratch + auth_off, 0, m.h.auth_len);
    auth_sign(cluster_replica_auth(cl, fr->id), fs->scratch, len, auth_off);
    fs->stats.corrupted++;
    pass(cl, from, to, fs->scratch, len);
    return true;
}

/* A STATE chunk of store records with one value byte flipped, re-MACed. */
static bool lying_state(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                        const uint8_t *msg, uint32_t len)
{
    struct faults *fs = fr->fs;
    struct wire_limits lim = cluster_wire_limits(cl);
    struct wire_msg m;
    size_t used;
    if (wire_decode(msg, len, &lim, &m, &used, NULL) != 0 || m.h.type != WIRE_STATE || m.u.state.data_len == 0)
        return false;
    /* Walk the data as store records (le16 klen | le32 vlen | key | value); lie
     * only when it parses exactly, in the last byte of the first value. */
    const uint8_t *d = m.u.state.data;
    uint32_t dl = m.u.state.data_len, at = 0;
    int64_t target = -1;
    while (at < dl) {
        if (dl - at < 6)
            return false;
        uint32_t klen = (uint32_t)d[at] | (uint32_t)d[at + 1] << 8;
        uint32_t vlen = (uint32_t)d[at + 2] | (uint32_t)d[at + 3] << 8 | (uint32_t)d[at + 4] << 16 |
                        (uint32_t)d[at + 5] << 24;
        if (klen == 0 || (uint64_t)klen + vlen > dl - at - 6)
            return false;
        if (vlen > 0 && target < 0)
            target = (int64_t)(at + 6 + klen + vlen - 1);
        at += 6 + klen + vlen;
    }
    if (target < 0)
        return false;
    size_t off = (size_t)(d - msg) + (size_t)target;
    memcpy(fs->scratch, msg, len);
    fs->scratch[off] ^= 0x01;
    size_t auth_off = WIRE_HEADER_SIZE + m.h.body_len;
    memset(fs->scratch + auth_off, 0, m.h.auth_len);
    auth_authenticator_fill(cluster_replica_auth(cl, fr->id), fs->scratch, len, auth_off);
    fs->stats.corrupted++;
    pass(cl, from, to, fs->scratch, len);
    return true;
}

static void equivocate(struct fault_replica *fr, struct cluster *cl, uint32_t from, uint32_t to,
                       const uint8_t *msg, uint32_t len)
{
    struct wire_header h;
    if (len > 3 && msg[3] == WIRE_VIEW_CHANGE && bogus_view_change(fr, cl, from, to, msg, len))
        return;
    if (to >= fr->fs->n || !fr->b_group[to] || !header_ok(msg, len, &h)) {
        pass(cl, from, to, msg, len);
        return;
    }
    if (h.type == WIRE_PREPREPARE) {
        uint32_t blen;
        const uint8_t *b = equivocal_preprepare(fr, cl, msg, len, &blen);
        if (b) {
            fr->fs->stats.equivocated++;
            pass(cl, from, to, b, blen);
            return;
        }
    } else if ((h.type == WIRE_PREPARE || h.type == WIRE_COMMIT) && h.body_len >= 32) {
        uint32_t slot = (uint32_t)(h.seq % FAULT_EQUIV_RING);
        if (fr->eq[slot].valid && fr->eq[slot].seq == h.seq && fr->eq[slot].view == h.view &&
            fr->eq[slot].len > 0 && memcmp(msg + WIRE_HEADER_SIZE, fr->eq[slot].da, 32) == 0) {
            send_with_digest(fr, cl, from, to, msg, len, &h, fr->eq[slot].db);
            return;
        }
    }
    pass(cl, from, to, msg, len);
}

/* ---- The filter ------------------------------------------------------------------- */

static void fault_filter(void *arg, struct cluster *cl, uint32_t from, uint32_t to, const uint8_t *msg,
                         uint32_t len)
{
    struct fault_replica *fr = arg;
    struct faults *fs = fr->fs;
    uint8_t type = len > 3 ? msg[3] : 0;
    switch (fr->behaviour) {
    case FAULT_SILENT:
        fs->stats.dropped++;
        return;
    case FAULT_DROP:
        if (prng_percent(&fr->rng, fr->drop_percent)) {
            fs->stats.dropped++;
            return;
        }
        pass(cl, from, to, msg, len);
        return;
    case FAULT_CORRUPT_MAC:
        if (prng_percent(&fr->rng, 60.0) && corrupt_mac(fr, cl, from, to, msg, len))
            return;
        pass(cl, from, to, msg, len);
        return;
    case FAULT_CORRUPT_DIGEST:
        if (corrupt_digest(fr, cl, from, to, msg, len))
            return;
        pass(cl, from, to, msg, len);
        return;
    case FAULT_WRONG_RESULT:
        if (type == WIRE_REPLY && fabricate_reply(fr, cl, from, to, msg, len, prng_below(&fr->rng, 4) == 0))
            return;
        pass(cl, from, to, msg, len);
        return;
    case FAULT_REPLAY:
        pass(cl, from, to, msg, len);
        replay_some(fr, cl, from);
        replay_record(fr, to, msg, len);
        return;
    case FAULT_MIX: {
        uint64_t roll = prng_below(&fr->rng, 100);
        if (roll < 50) {
            fs->stats.dropped++;
            return;
        }
        if (roll < 80) {
            bool done = prng_below(&fr->rng, 2) == 0 ? corrupt_mac(fr, cl, from, to, msg, len)
                                                     : corrupt_digest(fr, cl, from, to, msg, len);
            if (done)
                return;
        }
        pass(cl, from, to, msg, len);
        return;
    }
    case FAULT_STALE_READ:
        /* Votes go to the accomplices and to the other members of the coalition. */
        if ((type == WIRE_PREPARE || type == WIRE_COMMIT) && to < fs->n && !fs->accomplice[to] && !fs->faulty[to]) {
            fs->stats.dropped++;
            return;
        }
        if (type == WIRE_REPLY && len >= WIRE_HEADER_SIZE + WIRE_REPLY_FIXED &&
            (msg[WIRE_HEADER_SIZE + 6] & WIRE_REPLY_READONLY) != 0 && stale_reply(fr, cl, from, to, msg, len))
            return;
        pass(cl, from, to, msg, len);
        return;
    case FAULT_EQUIVOCATE:
        equivocate(fr, cl, from, to, msg, len);
        return;
    case FAULT_LYING_STATE:
        if (type == WIRE_STATE && lying_state(fr, cl, from, to, msg, len))
            return;
        pass(cl, from, to, msg, len);
        return;
    case FAULT_BOGUS_VC:
        if (type == WIRE_VIEW_CHANGE && bogus_view_change(fr, cl, from, to, msg, len))
            return;
        if (type == WIRE_NEW_VIEW && prng_below(&fr->rng, 2) == 0 && bogus_new_view(fr, cl, from, to, msg, len))
            return;
        pass(cl, from, to, msg, len);
        return;
    default:
        pass(cl, from, to, msg, len);
        return;
    }
}

void faults_set_key_lookup(struct faults *fs, fault_key_fn fn, void *arg)
{
    fs->key_of = fn;
    fs->key_arg = arg;
}

void faults_set_request_timeout(struct faults *fs, uint64_t timeout_ns)
{
    fs->request_timeout_ns = timeout_ns;
}

bool faults_any(const struct faults *fs, enum fault_behaviour b)
{
    for (uint16_t r = 0; r < fs->n; r++)
        if (fs->rep[r] && fs->rep[r]->behaviour == b)
            return true;
    return false;
}

enum cluster_net_verdict faults_net_adversary(void *arg, uint32_t from, uint32_t to, const uint8_t *msg,
                                              uint32_t len, uint64_t *delay_ns)
{
    struct faults *fs = arg;
    if (from < fs->n && to < fs->n && fs->rep[from] && fs->rep[from]->behaviour == FAULT_SLOW) {
        *delay_ns = fs->rep[from]->slow_delay_ns;
        return CLUSTER_NET_PASS;
    }
    if (from >= fs->n || to >= fs->n || len <= 3 || (msg[3] != WIRE_PREPARE && msg[3] != WIRE_COMMIT) ||
        !fs->accomplice[from] || fs->accomplice[to] || fs->faulty[to])
        return CLUSTER_NET_PASS;
    for (uint16_t r = 0; r < fs->n; r++) {
        const struct fault_replica *fr = fs->rep[r];
        if (fr && fr->behaviour == FAULT_STALE_READ && *delay_ns < fr->stale_delay_ns)
            *delay_ns = fr->stale_delay_ns;
    }
    return CLUSTER_NET_PASS;
}

void faults_attach(struct faults *fs, struct cluster *cl)
{
    fs->cl = cl;
    uint16_t chosen = 0;
    for (uint16_t r = 1; r < fs->n && chosen < fs->f; r++) {
        if (!fs->faulty[r]) {
            fs->accomplice[r] = true;
            chosen++;
        }
    }
    for (uint16_t r = 0; r < fs->n; r++)
        if (fs->faulty[r])
            cluster_set_send_filter(cl, r, fault_filter, fs->rep[r]);
}
