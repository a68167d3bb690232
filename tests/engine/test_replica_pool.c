/* Unit tests of the large-request pool (engine/request_pool.c) and of the
 * rules the pre-prepare phase keeps for it (engine/preprepare.c): four replicas
 * (n = 4, f = 1) on the FIFO pump of replica_harness.c, requests of 30,000-byte
 * values (59 chunks each), sent by hand-rolled clients.
 *
 * Checked, each against the liveness bug it guards (the invariant is stated at
 * replica_request_pool_create):
 *  - the primary closes a batch at B = pool_batch_chunks chunks of large
 *    requests (it used to charge a DIGEST entry its 44 bytes only, so a batch
 *    could name more than the backups' pool holds), and a backlog executes
 *    everywhere with nothing refused, evicted or left pinned;
 *  - a pinned request at the oldest end of a full pool does not stop eviction
 *    (a byte FIFO gave up at a pinned head): a request that a stalled
 *    PRE-PREPARE waits for is stored by evicting the unpinned ones, while an
 *    arrival nobody waits for is refused until they are older than T;
 *  - a replica that lacks a request of a batch the others commit gets it from
 *    them before they execute it (the client, done, retransmits no more);
 *  - a client retransmission (WIRE_REQ_FULL_ALL) keeps the request's digest, so
 *    it unblocks a stalled PRE-PREPARE, and so does the primary's relay of a
 *    batch's requests with its PRE-PREPARE's retransmission;
 *  - eviction for a wanted request skips the requests a stalled batch in the
 *    window already holds (else they would be missing next);
 *  - the primary's pending queue pins at most Q = pool_queue_chunks, so a
 *    backup keeps more than the primary queued and a queue never crowds out a
 *    request a stalled batch needs;
 *  - a PRE-PREPARE with large requests beyond last_executed + pool_window waits
 *    and is accepted as soon as execution catches up (no tick needed), while
 *    one with inlined requests only does not wait;
 *  - a PRE-PREPARE naming more than B chunks (a faulty primary) is refused;
 *  - an executed request is held until a stable checkpoint covers its batch:
 *    arrivals nobody waits for never evict it (they evicted executed requests
 *    first, and a group with fewer than q replicas up to date then stalled for
 *    good, its laggards finding nobody to fetch the requests from), and it
 *    moves to the done list, evicted first, once the checkpoint is stable.
 *
 * The log is short (K = 4, L = 8) so that the pool, C = L*B + Q + R chunks,
 * fills with a few dozen requests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/replica_internal.h"
#include "replica_harness.h"

#define VALUE_BYTES 30000u
#define REQUEST_CHUNKS 59u /* a 30,000-byte PUT with a short key: 30,1xx bytes */
#define MS 1000000ull

static struct rh_cluster C;
static uint8_t g_val[BFTKV_VALUE_MAX];
static uint8_t g_msg[BFTKV_DATAGRAM_MAX];

/* ---- Helpers ------------------------------------------------------------------------ */

struct pool_tune {
    uint32_t window;
    uint32_t batch_bytes;
};

static void pool_tune_apply(struct pbft_replica_config *cfg, void *arg)
{
    const struct pool_tune *t = arg;
    cfg->window = t->window;
    cfg->batch_max_bytes = t->batch_bytes;
    cfg->checkpoint_interval = 4;
    cfg->log_window = 8;
    cfg->request_timeout_ns = 100u * MS; /* T: the pool's age for eviction */
}

static void cluster_up(uint16_t clients, uint32_t window, uint32_t batch_bytes)
{
    struct pool_tune t = { .window = window, .batch_bytes = batch_bytes };
    rh_init(&C, 4, 1, clients, 0, pool_tune_apply, &t);
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}

static const struct pbft_replica_stats *st(uint16_t i)
{
    return rh_stats(&C, i);
}

/* A PUT of VALUE_BYTES (a large request) by `client` with timestamp ts, its
 * value unique to (client, ts); encoded into buf (g_msg if NULL). */
static size_t big_request(uint8_t *buf, uint16_t client, uint64_t ts, uint8_t rflags)
{
    for (uint32_t i = 0; i < VALUE_BYTES; i++)
        g_val[i] = (uint8_t)(i * 7u + client * 13u + ts);
    char key[16];
    snprintf(key, sizeof key, "big%u", (unsigned)client);
    return rh_request(&C, buf != NULL ? buf : g_msg, BFTKV_DATAGRAM_MAX, client, 0, ts, WIRE_OP_PUT, key, g_val,
                      VALUE_BYTES, rflags);
}

static void big_send(uint16_t client, uint64_t ts, uint16_t to)
{
    size_t len = big_request(NULL, client, ts, 0);
    rh_send(&C, to, g_msg, len);
}

/* The request digest of an encoded request. */
static void digest_of(const uint8_t *msg, size_t len, uint8_t d[32])
{
    struct wire_msg m;
    rh_decode(&C, msg, len, &m);
    wire_request_digest(d, &m);
}

static uint32_t big_index(uint16_t replica, uint16_t client, uint64_t ts)
{
    uint8_t buf[BFTKV_DATAGRAM_MAX], d[32];
    size_t len = big_request(buf, client, ts, 0);
    digest_of(buf, len, d);
    return replica_request_pool_find(C.r[replica], d);
}

/* Nothing pinned, nothing stalled, and the chunks add up. */
static void pool_idle(uint16_t i)
{
    const struct pbft_replica *r = C.r[i];
    assert_int_equal(r->stalled, 0);
    assert_int_equal(r->pool_slot_chunks, 0);
    assert_int_equal(r->pool_pend_chunks, 0);
    assert_int_equal(r->pool_chunks_free + r->pool_chunks_unpinned, r->pool_chunks);
}

/* Chunks of the executed requests replica i keeps for laggards: the done list
 * (a stable checkpoint covers their batches: evicted first), or the held list
 * (not yet: never evicted). */
static uint32_t list_chunks(uint16_t i, bool held)
{
    const struct pbft_replica *r = C.r[i];
    uint32_t c = 0;
    for (uint32_t e = held ? r->pool_held_old : r->pool_done_old; e != UINT32_MAX; e = r->pool[e].next) {
        assert_true(r->pool[e].live && r->pool[e].done && r->pool[e].held == held && r->pool[e].refs == 0);
        c += replica_request_pool_entry_chunks(r, e);
    }
    return c;
}

static uint32_t done_chunks(uint16_t i)
{
    return list_chunks(i, false);
}

static uint32_t held_chunks(uint16_t i)
{
    return list_chunks(i, true);
}

/* COMMITs to replica `victim` wait in the network until held_release. */
static void hold_commits(uint16_t victim)
{
    C.net.hold_types = 1u << WIRE_COMMIT;
    C.net.hold_to = 1ull << victim;
}

static void held_release(void)
{
    C.net.hold_types = 0;
    rh_release(&C);
}

/* ---- The batch budget --------------------------------------------------------------- */

struct pp_watch {
    uint32_t max_digests; /* most DIGEST entries in one PRE-PREPARE of the primary */
    uint32_t pps;
};

static bool watch_pps(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    struct pp_watch *w = arg;
    if (m->from != 0 || m->to != 1 || rh_msg_type(m) != WIRE_PREPREPARE)
        return false;
    struct wire_msg pp;
    size_t used = 0;
    assert_int_equal(wire_decode(m->bytes, m->len, &c->lim, &pp, &used, NULL), 0);
    uint32_t off = 0, digests = 0;
    struct wire_batch_entry e;
    while (wire_batch_next(&pp, &off, &e))
        digests += e.kind == WIRE_ENTRY_DIGEST;
    if (digests > w->max_digests)
        w->max_digests = digests;
    w->pps++;
    return false;
}

static void test_pool_batch_budget(void **state)
{
    (void)state;
    /* W = 2 and 56 KiB batches: B = 224 chunks, so at most 3 requests of 59
     * chunks per batch, though their DIGEST entries (49 bytes each) would fit
     * a thousand times over. */
    cluster_up(9, 2, 56u * 1024u);
    const struct pbft_replica *p = C.r[0];
    assert_int_equal(p->pool_batch_chunks, 224);
    assert_int_equal(p->pool_window, 4);
    assert_int_equal(p->pool_queue_chunks, 2u * 224u);
    assert_int_equal(p->pool_chunks, 8u * 224u + 2u * 224u + REPLICA_POOL_REQUEST_CHUNKS);
    struct pp_watch w = { 0, 0 };
    C.filter = watch_pps;
    C.filter_arg = &w;
    for (uint16_t k = 0; k < 9; k++)
        big_send(k, 1, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(w.max_digests, p->pool_batch_chunks / REQUEST_CHUNKS);
    assert_true(w.pps >= 4); /* 1 at once, then 3, 3 and 2 */
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->requests_executed, 9);
        assert_int_equal(st(i)->dropped_full, 0);
        assert_int_equal(st(i)->pool_evicted, 0);
        assert_int_equal(st(i)->pool_relayed, 0);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
        /* Executed requests stay for laggards: seqs 1..4, covered by the
         * stable checkpoint at 4, so on the done list only. */
        assert_int_equal(C.r[i]->low, 4);
        assert_int_equal(held_chunks(i), 0);
        assert_int_equal(C.r[i]->pool_chunks_free + done_chunks(i), C.r[i]->pool_chunks);
        assert_int_equal(done_chunks(i), 9u * REQUEST_CHUNKS);
    }
}

/* ---- Eviction, relay and the pinned head --------------------------------------------- */

/* Requests that only replica 1 gets (a faulty client's, or ones the primary
 * refused), from clients *next on, until the pool has no room for one more
 * (executed requests that a stable checkpoint covers make room first; held
 * ones never do); returns how many. */
static uint16_t fill_unpinned(uint16_t *next)
{
    uint16_t k = 0;
    while (C.r[1]->pool_chunks_free >= REQUEST_CHUNKS || C.r[1]->pool_done_old != UINT32_MAX) {
        big_send((*next)++, 1, 1);
        rh_run(&C);
        k++;
    }
    return k;
}

static void test_pool_pinned_oldest_never_blocks(void **state)
{
    (void)state;
    /* Small batches: B = 125 chunks (one request of the largest size), W = 2:
     * the window w = 4, Q = 250 and C = 8 * 125 + 250 + 125 = 1,375 chunks. */
    cluster_up(32, 2, 4096);
    struct pbft_replica *r1 = C.r[1];
    assert_int_equal(r1->pool_chunks, 1375);
    hold_commits(1);

    /* A (client 0) commits without replica 1: there it stays pinned by the
     * accepted PRE-PREPARE of seq 1, the oldest entry of the pool. */
    big_send(0, 1, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(st(0)->last_executed, 1);
    assert_int_equal(st(1)->last_executed, 0);
    uint32_t a = big_index(1, 0, 1);
    assert_true(a != UINT32_MAX);
    assert_int_equal(r1->pool[a].refs, 1);

    /* Young, unpinned requests fill the rest (clients 1..22). */
    uint16_t next = 1;
    uint16_t junk = fill_unpinned(&next);
    assert_int_equal(junk, (1375u - REQUEST_CHUNKS) / REQUEST_CHUNKS);
    assert_int_equal(st(1)->dropped_full, 0);

    /* R to everyone: replica 1 has no room for an arrival nobody waits for
     * (the unpinned ones are younger than T), the primary orders R at seq 2,
     * replica 1 stalls on it, and the others commit and -- about to execute --
     * relay R to replica 1, which has sent them nothing for seq 2. Now R is
     * wanted: stored by evicting the oldest unpinned request (client 1's),
     * never the pinned A that is older. */
    uint16_t rc = next++;
    big_send(rc, 1, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(st(1)->dropped_full, 1);
    assert_true(st(0)->pool_relayed >= 1 && st(2)->pool_relayed >= 1 && st(3)->pool_relayed >= 1);
    assert_int_equal(st(1)->pool_evicted, 1);
    assert_int_equal(big_index(1, 1, 1), UINT32_MAX);
    assert_true(big_index(1, rc, 1) != UINT32_MAX);
    assert_int_equal(r1->pool[a].refs, 1);
    assert_int_equal(r1->stalled, 0);
    struct replica_slot *s2 = replica_slot_find(r1, 2);
    assert_non_null(s2);
    assert_true(s2->has_pp && s2->sent_prepare);

    /* The held COMMITs arrive: replica 1 executes both batches. */
    held_release();
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->last_executed, 2);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
    }
    /* The never-ordered requests but one remain, evictable, and the two
     * executed ones are held (no checkpoint is stable yet). */
    assert_int_equal(held_chunks(1), 2u * REQUEST_CHUNKS);
    assert_int_equal(done_chunks(1), 0);
    assert_int_equal(r1->pool_chunks_unpinned, (uint32_t)(junk + 1u) * REQUEST_CHUNKS);

    /* Fill up again; the next arrival nobody waits for is refused while the
     * others are younger than T, and evicts the oldest of them (client 2's)
     * once they are older. */
    fill_unpinned(&next);
    uint16_t late = next++;
    big_send(late, 1, 1);
    rh_run(&C);
    assert_int_equal(st(1)->dropped_full, 2);
    assert_int_equal(big_index(1, late, 1), UINT32_MAX);
    C.now_ns += r1->cfg.request_timeout_ns;
    big_send(late, 1, 1);
    rh_run(&C);
    assert_true(big_index(1, late, 1) != UINT32_MAX);
    assert_int_equal(st(1)->pool_evicted, 2);
    assert_int_equal(big_index(1, 2, 1), UINT32_MAX);
    assert_true(big_index(1, 3, 1) != UINT32_MAX);
    pool_idle(1);
}

/* ---- Client retransmission ------------------------------------------------------------ */

struct lossy {
    bool drop_first; /* client 0's first request to replica 1 */
};

/* With replica 2 down (C.net.isolated): no quorum without replica 1. */
static bool lose(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    struct lossy *l = arg;
    if (l->drop_first && m->from == RH_FROM_CLIENT && m->to == 1) {
        l->drop_first = false;
        return true;
    }
    return false;
}

static void test_pool_retransmission_keeps_digest(void **state)
{
    (void)state;
    cluster_up(2, 2, 4096);
    uint8_t first[BFTKV_DATAGRAM_MAX], d1[32], d2[32];
    size_t len1 = big_request(first, 0, 1, 0);
    size_t len2 = big_request(NULL, 0, 1, WIRE_REQ_FULL_ALL);
    /* Other bytes (flag, MACs), the same request: the same digest. */
    assert_memory_not_equal(first, g_msg, len1 < len2 ? len1 : len2);
    digest_of(first, len1, d1);
    digest_of(g_msg, len2, d2);
    assert_memory_equal(d1, d2, 32);

    struct lossy l = { .drop_first = true };
    C.net.isolated = 1u << 2;
    C.filter = lose;
    C.filter_arg = &l;
    rh_send(&C, UINT16_MAX, first, len1);
    rh_run(&C);
    /* Replica 1 never got it and stalls; without it no quorum, nobody executes. */
    assert_int_equal(C.r[1]->stalled, 1);
    assert_int_equal(st(0)->last_executed, 0);
    /* The client times out and sends it to everyone, asking for full results. */
    rh_send(&C, UINT16_MAX, g_msg, len2);
    rh_run(&C);
    const struct rh_reply *rp[8];
    assert_int_equal(rh_replies_for(&C, 0, 1, rp, 8), 3);
    for (uint16_t i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        assert_int_equal(st(i)->last_executed, 1);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
    }
}

/* The primary's retransmission of the PRE-PREPARE (catchup.c) can bring the
 * request instead: replica_request_pool_relay_slot sends it to the backups it has no
 * PREPARE or COMMIT from. */
static void test_pool_relay_slot(void **state)
{
    (void)state;
    cluster_up(2, 2, 4096);
    struct lossy l = { .drop_first = true };
    C.net.isolated = 1u << 2;
    C.filter = lose;
    C.filter_arg = &l;
    big_send(0, 1, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(C.r[1]->stalled, 1);
    struct replica_slot *s = replica_slot_find(C.r[0], 1);
    assert_non_null(s);
    struct pbft_out o;
    assert_int_equal(pbft_out_init(&o, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS), 0);
    assert_true(replica_request_pool_relay_slot(C.r[0], s, &o));
    /* Replica 3 prepared: copies for replicas 1 and 2 only. */
    assert_int_equal(o.nmsgs, 2);
    for (uint32_t k = 0; k < o.nmsgs; k++) {
        assert_int_equal(o.msgs[k].dest_kind, PBFT_DEST_REPLICA);
        assert_true(o.msgs[k].dest_id == 1 || o.msgs[k].dest_id == 2);
        rh_inject(&C, 0, o.msgs[k].dest_id, o.buf + o.msgs[k].off, o.msgs[k].len);
    }
    pbft_out_free(&o);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        assert_int_equal(st(i)->last_executed, 1);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
    }
}

/* ---- The pool window ------------------------------------------------------------------- */

static void test_pool_window_wait(void **state)
{
    (void)state;
    /* W = 1: a PRE-PREPARE naming large requests may take its references only
     * up to last_executed + 2. */
    cluster_up(5, 1, 4096);
    struct pbft_replica *r1 = C.r[1];
    assert_int_equal(r1->pool_window, 2);
    hold_commits(1);
    for (uint16_t k = 1; k <= 3; k++) {
        big_send(k, 1, UINT16_MAX);
        rh_run(&C);
    }
    /* Replica 1 executes nothing (its COMMITs are held): seqs 1 and 2 are
     * accepted, seq 3 waits though its request is there. */
    assert_int_equal(st(0)->last_executed, 3);
    assert_int_equal(st(1)->last_executed, 0);
    assert_int_equal(st(1)->pool_waits, 1);
    assert_int_equal(r1->stalled, 1);
    assert_true(replica_slot_find(r1, 2)->has_pp);
    assert_false(replica_slot_find(r1, 3)->has_pp);
    assert_true(r1->pool_slot_chunks <= r1->pool_window * r1->pool_batch_chunks);
    /* A batch of inlined requests only takes nothing from the pool: no wait. */
    rh_submit(&C, 4, 0, 1, WIRE_OP_PUT, "small", "v", 1, 0, 0);
    rh_run(&C);
    assert_int_equal(st(0)->last_executed, 4);
    assert_true(replica_slot_find(r1, 4)->has_pp);
    /* The COMMITs arrive: executing seqs 1 and 2 opens the window and seq 3 is
     * accepted at once, in the same step (no tick), then executes. */
    held_release();
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->last_executed, 4);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
    }
}

/* ---- A stalled batch keeps what it has ------------------------------------------------ */

struct keep_filter {
    uint8_t y[BFTKV_DATAGRAM_MAX]; /* Y's first copy: replica 1 never gets it */
    size_t y_len;
};

/* With replica 2 down (C.net.isolated): no quorum without replica 1. */
static bool keep_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    const struct keep_filter *k = arg;
    return m->from == RH_FROM_CLIENT && m->to == 1 && m->len == k->y_len && memcmp(m->bytes, k->y, m->len) == 0;
}

static void test_pool_keeps_stalled_batch(void **state)
{
    (void)state;
    /* W = 1, B = 125: C = 8 * 125 + 125 + 125 = 1,250 chunks. */
    cluster_up(32, 1, 4096);
    struct pbft_replica *r1 = C.r[1];
    static struct keep_filter k;
    k.y_len = big_request(k.y, 2, 1, 0);
    C.net.isolated = 1u << 2;
    C.filter = keep_filter;
    C.filter_arg = &k;
    /* P goes out at once as seq 1; X and Y queue behind it and become seq 2. */
    big_send(0, 1, UINT16_MAX);
    big_send(1, 1, UINT16_MAX);
    rh_send(&C, UINT16_MAX, k.y, k.y_len);
    rh_run(&C);
    assert_int_equal(st(1)->last_executed, 1);
    /* Replica 1 holds X and waits for Y at seq 2; without it nobody executes
     * seq 2, so nobody relays Y. */
    assert_int_equal(r1->stalled, 1);
    uint32_t x = big_index(1, 1, 1);
    assert_true(x != UINT32_MAX);
    assert_int_equal(r1->pool[x].refs, 0);
    /* Requests that nothing names fill the pool behind X, the oldest unpinned
     * one (P, executed, is held). */
    uint16_t junk = 3;
    while (r1->pool_chunks_free >= REQUEST_CHUNKS || r1->pool_done_old != UINT32_MAX) {
        big_send(junk++, 1, 1);
        rh_run(&C);
    }
    assert_int_equal(r1->pool_old, x);
    /* Y comes back (the client's retransmission): it is wanted and evicts the
     * oldest unpinned request that no stalled batch names -- not X, which
     * would stall seq 2 again. */
    size_t len = big_request(NULL, 2, 1, WIRE_REQ_FULL_ALL);
    rh_send(&C, UINT16_MAX, g_msg, len);
    rh_run(&C);
    assert_int_equal(st(1)->pool_evicted, 1);
    assert_int_equal(big_index(1, 3, 1), UINT32_MAX);
    assert_int_equal(r1->stalled, 0);
    for (uint16_t i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        assert_int_equal(st(i)->last_executed, 2);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
    }
}

/* ---- The primary's queue ------------------------------------------------------------- */

static void test_pool_queue_cap(void **state)
{
    (void)state;
    /* W = 1, B = 125: the pending queue pins at most Q = 125 chunks. */
    cluster_up(4, 1, 4096);
    struct pbft_replica *p = C.r[0];
    assert_int_equal(p->pool_queue_chunks, 125);
    /* Hold the primary's batch in flight: replica 2 and 3 never answer, so
     * seq 1 does not commit and later requests stay queued. */
    C.net.isolated = (1u << 2) | (1u << 3);
    big_send(0, 1, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(p->pool_slot_chunks, REQUEST_CHUNKS);
    /* Two more queue (118 chunks); the third would pass Q: refused, and the
     * client retransmits later. */
    for (uint16_t k = 1; k <= 3; k++)
        big_send(k, 1, UINT16_MAX);
    rh_run(&C);
    assert_int_equal(p->pool_pend_chunks, 2u * REQUEST_CHUNKS);
    assert_int_equal(p->pend_count, 2);
    assert_int_equal(st(0)->dropped_full, 1);
    assert_int_equal(big_index(0, 3, 1), UINT32_MAX);
    /* The same cap holds for a new primary's requeue (newview.c). */
    uint32_t idx = big_index(1, 3, 1);
    assert_true(idx != UINT32_MAX);
    assert_true(replica_request_pending_store_pooled(C.r[1], idx));
    assert_true(replica_request_pending_store_pooled(C.r[1], big_index(1, 2, 1)));
    assert_false(replica_request_pending_store_pooled(C.r[1], big_index(1, 1, 1)));
    assert_int_equal(C.r[1]->pool_pend_chunks, 2u * REQUEST_CHUNKS);
}

/* ---- A faulty primary --------------------------------------------------------------------- */

/* A PRE-PREPARE from replica 0 for (view 0, seq 1) naming the requests of
 * clients 1..k by digest, injected at replica 1. */
static void forged_pp(uint16_t k)
{
    uint8_t entries[1024], buf[BFTKV_DATAGRAM_MAX], d[32];
    uint32_t used = 0;
    for (uint16_t c = 1; c <= k; c++) {
        size_t len = big_request(buf, c, 1, 0);
        digest_of(buf, len, d);
        size_t w = wire_entry_digest(entries + used, sizeof entries - used, d, c, 0, 1);
        assert_true(w > 0);
        used += (uint32_t)w;
    }
    size_t auth_off = 0;
    size_t len = wire_encode_preprepare(g_msg, sizeof g_msg, C.group, 0, C.n, 0, 1, entries, used, k, &auth_off);
    assert_true(len > 0);
    auth_authenticator_fill(&C.rauth[0], g_msg, len, auth_off);
    rh_inject(&C, 0, 1, g_msg, len);
}

static bool only_to_1(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    (void)arg;
    return m->to != 1 || m->from != 0; /* replica 1 hears the forged batch, nothing else */
}

static void test_pool_budget_enforced(void **state)
{
    (void)state;
    cluster_up(4, 2, 4096);
    struct pbft_replica *r1 = C.r[1];
    assert_int_equal(r1->pool_batch_chunks, REPLICA_POOL_REQUEST_CHUNKS);
    for (uint16_t c = 1; c <= 3; c++)
        big_send(c, 1, 1);
    rh_run(&C);
    C.filter = only_to_1;
    /* Three requests: 177 chunks > B. A correct primary never sends that. */
    forged_pp(3);
    rh_run(&C);
    assert_int_equal(st(1)->drops.count[WIRE_DROP_BAD_LENGTH], 1);
    struct replica_slot *s = replica_slot_find(r1, 1);
    assert_true(s == NULL || !s->has_digest);
    assert_int_equal(r1->pool_slot_chunks, 0);
    /* Two: 118 chunks, accepted and pinned. */
    forged_pp(2);
    rh_run(&C);
    s = replica_slot_find(r1, 1);
    assert_non_null(s);
    assert_true(s->has_pp);
    assert_int_equal(r1->pool_slot_chunks, 2u * REQUEST_CHUNKS);
}

/* ---- Executed requests are held until a stable checkpoint --------------------------- */

static void test_pool_held_until_stable(void **state)
{
    (void)state;
    /* W = 1, B = 125: C = 8 * 125 + 125 + 125 = 1,250 chunks; K = 4. */
    cluster_up(40, 1, 4096);
    struct pbft_replica *r1 = C.r[1];
    /* Clients 0..2: seq 1 (client 0's) and seq 2 (clients 1 and 2). */
    for (uint16_t k = 0; k < 3; k++)
        big_send(k, 1, UINT16_MAX);
    rh_run(&C);
    for (uint16_t i = 0; i < 4; i++)
        assert_int_equal(st(i)->last_executed, 2);
    assert_int_equal(r1->low, 0);
    assert_int_equal(held_chunks(1), 3u * REQUEST_CHUNKS);
    assert_int_equal(done_chunks(1), 0);

    /* Requests nobody orders fill replica 1's pool; once they are older than
     * T the next arrival evicts the oldest of them, never an executed one: a
     * replica that has not executed seqs 1 and 2 can still fetch them here. */
    uint16_t next = 3;
    uint16_t junk = fill_unpinned(&next);
    assert_int_equal(junk, (1250u - 3u * REQUEST_CHUNKS) / REQUEST_CHUNKS);
    C.now_ns += r1->cfg.request_timeout_ns;
    for (uint16_t k = 0; k < 3; k++) {
        big_send(next++, 1, 1);
        rh_run(&C);
    }
    assert_int_equal(st(1)->pool_evicted, 3);
    assert_int_equal(big_index(1, 3, 1), UINT32_MAX);
    for (uint16_t k = 0; k < 3; k++)
        assert_true(big_index(1, k, 1) != UINT32_MAX);
    assert_int_equal(held_chunks(1), 3u * REQUEST_CHUNKS);

    /* Seqs 3 and 4 (clients 0 and 1 again): the checkpoint at 4 becomes
     * stable, and every executed request moves to the done list. */
    for (uint16_t k = 0; k < 2; k++) {
        big_send(k, 2, UINT16_MAX);
        rh_run(&C);
    }
    for (uint16_t i = 0; i < 4; i++) {
        assert_int_equal(st(i)->last_executed, 4);
        assert_int_equal(C.r[i]->low, 4);
        assert_int_equal(held_chunks(i), 0);
        assert_true(rh_logs_same(&C, 0, i));
        pool_idle(i);
    }
    assert_int_equal(done_chunks(0), 5u * REQUEST_CHUNKS);
    /* The next arrival evicts an executed request first. */
    uint64_t evicted = st(1)->pool_evicted;
    uint32_t done = done_chunks(1);
    assert_true(done > 0);
    while (r1->pool_chunks_free >= REQUEST_CHUNKS) {
        big_send(next++, 1, 1);
        rh_run(&C);
    }
    big_send(next++, 1, 1);
    rh_run(&C);
    assert_int_equal(st(1)->pool_evicted, evicted);
    assert_true(done_chunks(1) < done);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_pool_batch_budget, teardown),
        cmocka_unit_test_teardown(test_pool_pinned_oldest_never_blocks, teardown),
        cmocka_unit_test_teardown(test_pool_retransmission_keeps_digest, teardown),
        cmocka_unit_test_teardown(test_pool_relay_slot, teardown),
        cmocka_unit_test_teardown(test_pool_window_wait, teardown),
        cmocka_unit_test_teardown(test_pool_keeps_stalled_batch, teardown),
        cmocka_unit_test_teardown(test_pool_queue_cap, teardown),
        cmocka_unit_test_teardown(test_pool_budget_enforced, teardown),
        cmocka_unit_test_teardown(test_pool_held_until_stable, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
