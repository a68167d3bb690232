/* Random faults and the throughput pump for the PBFT replica, on the in-memory
 * cluster of replica_harness.c (n = 4, f = 1).
 *
 *   test_replica_random                  seeded random-fault runs (ctest replica_random_test)
 *   BFTKV_REPLICA_SEEDS=N test_replica_random   more seeds
 *   test_replica_random --bench N [get]  committed requests per second at n = 4 (PUTs,
 *                                        or ordered GETs to leave out the store's writes)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/replica_internal.h"
#include "replica_harness.h"
#include "common/mix64.h"

static struct rh_cluster C;
static uint8_t g_big[BFTKV_VALUE_MAX];

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    return 0;
}


/* ---- Random faults ----------------------------------------------------------------
 * Seeded runs of random traffic on a random schedule: reordering, loss,
 * duplication, bit flips, and one Byzantine replica -- a backup on odd seeds,
 * the primary on even ones -- whose messages are rewritten (another seq, view or
 * digest) and re-authenticated with its own keys, so different replicas see
 * different PRE-PREPAREs for one seq. Nothing may crash, the correct replicas
 * must never execute different batches at one sequence number, and once the
 * schedule is done every operation completes. */

struct chaos {
    uint64_t rng;
    uint16_t byz; /* the Byzantine replica */
    uint32_t mutated, flipped, dropped, duplicated;
};

static uint64_t chaos_next(struct chaos *x)
{
    return bftkv_splitmix64(&x->rng);
}

static void chaos_byzantine(struct rh_cluster *c, struct chaos *x, const struct rh_msg *m)
{
    struct wire_header h;
    wire_header_read(m->bytes, &h);
    uint8_t *p = m->bytes;
    switch (chaos_next(x) % 3) {
    case 0: /* another seq: header offset 16 */
        p[16] = (uint8_t)(p[16] + 1u + chaos_next(x) % 3u);
        break;
    case 1: /* another view: header offset 8 */
        p[8] ^= 1;
        break;
    default: /* another digest */
        p[WIRE_HEADER_SIZE + chaos_next(x) % 32u] ^= 0x10;
        break;
    }
    size_t auth_off = WIRE_HEADER_SIZE + h.body_len;
    if (h.type == WIRE_CHECKPOINT)
        auth_sign(&c->rauth[x->byz], p, m->len, auth_off);
    else
        auth_authenticator_fill(&c->rauth[x->byz], p, m->len, auth_off);
    x->mutated++;
}

static bool chaos_filter(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    struct chaos *x = arg;
    uint64_t roll = chaos_next(x) % 100u;
    uint8_t t = rh_msg_type(m);
    if (m->from == x->byz && t >= WIRE_PREPREPARE && t <= WIRE_CHECKPOINT && t != WIRE_REPLY && roll < 40) {
        chaos_byzantine(c, x, m);
        return false;
    }
    if (roll < 5) {
        rh_inject(c, m->from, m->to, m->bytes, m->len);
        x->duplicated++;
        return false;
    }
    /* Loss (5%) and damage (one bit, 5%) on every link, requests included:
     * replicas retransmit (TOCS 2002 §5.2), clients retransmit requests (§4.1)
     * and a view change (§4.4) replaces a primary that stalls. */
    if (roll < 10) {
        x->dropped++;
        return true;
    }
    if (roll < 15) {
        m->bytes[chaos_next(x) % m->len] ^= (uint8_t)(1u << (chaos_next(x) % 8u));
        x->flipped++;
    }
    return false;
}

struct chaos_lane {
    uint64_t ts;
    bool busy;
    uint8_t need;
    uint32_t voted; /* replicas that answered ts */
};

static struct chaos_lanes {
    struct chaos_lane l[6][2];
} lanes;

static void chaos_reply(struct rh_cluster *c, const struct rh_reply *rp, void *arg)
{
    (void)c;
    struct chaos_lanes *ls = arg;
    struct chaos_lane *l = &ls->l[rp->client][rp->lane];
    if (!l->busy || rp->timestamp != l->ts)
        return;
    l->voted |= 1u << rp->replica;
    if (__builtin_popcount(l->voted) >= l->need)
        l->busy = false;
}

/* Bound on the settling rounds of a seed (each a 30 ms tick). */
#define SETTLE_ROUNDS_MAX 3000u

static void test_random_faults(void **state)
{
    (void)state;
    uint64_t executed = 0;
    uint32_t settle_max = 0;
    /* BFTKV_REPLICA_SEEDS=N runs N seeds instead of 12 (a longer hunt). */
    const char *env = getenv("BFTKV_REPLICA_SEEDS");
    uint64_t seeds = env != NULL ? strtoull(env, NULL, 10) : 12u;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        /* A tick advances 30 ms per ~50 deliveries while hundreds of messages
         * wait in the queue: the network's delay is well above the default view
         * change timer T = 50 ms, so use a T above it (the timeouts would double
         * up to it anyway, after some needless view changes). */
        struct rh_tune t = { .k = 4, .l = 8, .w = 3, .lanes = 2, .batch_requests = 6,
                             .request_timeout_ns = 200u * 1000u * 1000u };
        rh_init(&C, 4, 1, 6, 0, rh_tune_apply, &t);
        struct chaos x = { .rng = seed, .byz = seed % 2 ? 3 : 0 };
        C.filter = chaos_filter;
        C.filter_arg = &x;
        static uint8_t last[6][2][2200];
        size_t last_len[6][2] = { { 0 } };
        memset(&lanes, 0, sizeof lanes);
        C.on_reply = chaos_reply;
        C.reply_arg = &lanes;
        for (int step = 0; step < 2500; step++) {
            uint64_t roll = chaos_next(&x) % 100u;
            if (roll < 12) {
                uint16_t client = (uint16_t)(chaos_next(&x) % 6u), lane = (uint16_t)(chaos_next(&x) % 2u);
                struct chaos_lane *l = &lanes.l[client][lane];
                uint8_t *buf = last[client][lane];
                if (l->busy) {
                    /* A retransmission: the same bytes, to everyone (TOCS 2002 §4.1). */
                    if (chaos_next(&x) % 4u == 0)
                        rh_send(&C, UINT16_MAX, buf, last_len[client][lane]);
                    continue;
                }
                uint64_t kind = chaos_next(&x) % 10u;
                char key[8];
                snprintf(key, sizeof key, "k%u", (unsigned)(chaos_next(&x) % 5u));
                uint16_t to = 0;
                uint64_t tsn = ++l->ts;
                size_t len;
                l->need = 2; /* f + 1 */
                if (kind < 2) {
                    len = rh_request(&C, buf, 2200, client, lane, tsn, WIRE_OP_PUT, key, g_big, 2000, 0);
                    to = UINT16_MAX; /* large: to every replica */
                } else if (kind == 2) {
                    len = rh_request(&C, buf, 2200, client, lane, tsn, WIRE_OP_GET, key, NULL, 0, WIRE_REQ_READONLY);
                    to = UINT16_MAX;
                    l->need = 3; /* q */
                } else {
                    uint8_t op = kind < 7 ? WIRE_OP_PUT : kind < 9 ? WIRE_OP_GET : WIRE_OP_DEL;
                    len = rh_request(&C, buf, 2200, client, lane, tsn, op, key, op == WIRE_OP_PUT ? "v" : NULL,
                                     op == WIRE_OP_PUT ? 1 : 0, 0);
                }
                last_len[client][lane] = len;
                l->busy = true;
                l->voted = 0;
                rh_send(&C, to, buf, len);
            } else if (roll < 14) {
                rh_tick(&C, C.now_ns + 30u * 1000u * 1000u);
            } else {
                rh_step_pick(&C, chaos_next(&x));
            }
        }
        /* Liveness: the faults go on, time advances and the clients keep
         * retransmitting (TOCS 2002 §4.1); retransmission, STATUS and state
         * transfer (§5.2-5.3) and view changes (§4.4) must complete every
         * operation. (Not that every correct replica catches up: a Byzantine
         * primary can leave one correct backup alone in a view change while the
         * other two and itself go on, and with no request left nothing moves
         * the others to a new view.) */
        uint32_t rounds = 0;
        for (;;) {
            rh_run(&C);
            bool busy = false;
            for (uint16_t k = 0; k < 6; k++) {
                for (uint16_t ln = 0; ln < 2; ln++) {
                    if (lanes.l[k][ln].busy) {
                        rh_send(&C, UINT16_MAX, last[k][ln], last_len[k][ln]);
                        busy = true;
                    }
                }
            }
            if (!busy)
                break;
            if (++rounds == SETTLE_ROUNDS_MAX) {
                for (uint16_t a = 0; a < 4; a++) {
                    const struct pbft_replica_stats *s = rh_stats(&C, a);
                    print_message("  r%u%s: view %llu%s exec %llu low %llu retx %llu status %llu/%llu st %llu "
                                  "vc %llu\n", (unsigned)a, a == x.byz ? " (byz)" : "",
                                  (unsigned long long)pbft_replica_view(C.r[a]),
                                  pbft_replica_in_viewchange(C.r[a]) ? " (changing)" : "",
                                  (unsigned long long)s->last_executed, (unsigned long long)s->low_watermark,
                                  (unsigned long long)s->retransmissions, (unsigned long long)s->status_sent,
                                  (unsigned long long)s->status_answered, (unsigned long long)s->state_transfers,
                                  (unsigned long long)s->viewchanges);
                }
                fail_msg("seed %llu: operations still pending after %u rounds of 30 ms", (unsigned long long)seed,
                         (unsigned)rounds);
            }
            rh_tick(&C, C.now_ns + 30u * 1000u * 1000u);
        }
        settle_max = rounds > settle_max ? rounds : settle_max;
        /* Safety among the correct replicas: one batch per sequence number (a
         * state transfer skips the batches its state covers: compare the
         * sequence numbers both executed). */
        assert_true(rh_agree(&C, 0xFu & ~(1u << x.byz)));
        assert_true(x.mutated > 0 && x.flipped > 0);
        executed += rh_stats(&C, 1)->requests_executed;
        assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    }
    rh_init(&C, 4, 1, 1, 0, NULL, NULL); /* for the teardown */
    print_message("  %llu seeds: %llu requests executed, settled within %u rounds\n", (unsigned long long)seeds,
                  (unsigned long long)executed, (unsigned)settle_max);
    assert_true(executed > seeds * 10u);
}

/* ---- Random large requests: the pool stays live ------------------------------------
 * Seeded runs of closed-loop clients whose requests are often large (values of
 * 1.1 to 30 KB, sent to every replica) on a random schedule -- each delivery
 * picks a random queued message -- with 10% of the client messages lost and the
 * clients retransmitting (to every replica, WIRE_REQ_FULL_ALL) whenever the
 * network goes quiet. The pools are small (W = 1..3, batches of 1.2 to 56 KiB),
 * so arrivals are refused, batches wait for requests, and replicas relay them
 * to one another (engine/request.c). Every operation must complete, the
 * replicas must agree on every batch, and one that reached the end holds no
 * reference to the pool. (A replica that lacks a request the others executed
 * without it and that reached it only before its PRE-PREPARE -- possible on this
 * schedule, not with bounded delays -- catches up by state transfer, not here.) */

#define POOL_CLIENTS 8u
#define POOL_LANES 4u
#define POOL_OPS 4u /* per lane */

struct pool_tune {
    uint32_t window, batch_bytes;
};

static void pool_tune_apply(struct pbft_replica_config *cfg, void *arg)
{
    const struct pool_tune *t = arg;
    cfg->window = t->window;
    cfg->batch_max_bytes = t->batch_bytes;
    cfg->checkpoint_interval = 32;
    cfg->log_window = 64;
    cfg->lanes = POOL_LANES;
    cfg->request_timeout_ns = 1000u * 1000u * 1000u; /* no tick here: no timer fires */
}


struct pool_lane {
    uint64_t ts;
    bool busy;
    uint32_t voted;
    uint8_t key[8];
    uint32_t vlen;
    uint8_t op;
};

static struct pool_lane pool_lanes[POOL_CLIENTS][POOL_LANES];

static void pool_reply(struct rh_cluster *c, const struct rh_reply *rp, void *arg)
{
    (void)arg;
    struct pool_lane *l = &pool_lanes[rp->client][rp->lane];
    if (!l->busy || rp->timestamp != l->ts)
        return;
    l->voted |= 1u << rp->replica;
    if ((uint32_t)__builtin_popcount(l->voted) >= c->f + 1u)
        l->busy = false;
}

static bool pool_lossy(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    struct chaos *x = arg;
    return m->from == RH_FROM_CLIENT && chaos_next(x) % 10u == 0;
}

/* (Re)send a lane's request: the value is a function of (client, lane, ts). */
static void pool_send(uint16_t client, uint16_t lane, uint8_t rflags)
{
    struct pool_lane *l = &pool_lanes[client][lane];
    for (uint32_t i = 0; i < l->vlen; i++)
        g_big[i] = (uint8_t)(i + client * 7u + lane * 11u + l->ts * 13u);
    static uint8_t buf[BFTKV_DATAGRAM_MAX];
    size_t len = rh_request(&C, buf, sizeof buf, client, lane, l->ts, l->op, (const char *)l->key,
                            l->op == WIRE_OP_PUT ? g_big : NULL, l->op == WIRE_OP_PUT ? l->vlen : 0, rflags);
    bool large = len - 4u * BFTKV_MAC_SIZE > BFTKV_INLINE_REQUEST_MAX;
    rh_send(&C, large || rflags != 0 ? UINT16_MAX : 0, buf, len);
}

static void test_random_large_pool(void **state)
{
    (void)state;
    const char *env = getenv("BFTKV_POOL_SEEDS");
    uint64_t seeds = env != NULL ? strtoull(env, NULL, 10) : 6u;
    static const uint32_t batch_bytes[] = { 1200, 4096, 16384, 56u * 1024u };
    uint64_t relayed = 0, refused = 0;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        struct chaos x = { .rng = seed * 1000003u };
        struct pool_tune t = { .window = 1u + (uint32_t)(chaos_next(&x) % 3u),
                               .batch_bytes = batch_bytes[chaos_next(&x) % 4u] };
        rh_init(&C, 4, 1, POOL_CLIENTS, 0, pool_tune_apply, &t);
        C.filter = pool_lossy;
        C.filter_arg = &x;
        C.on_reply = pool_reply;
        memset(pool_lanes, 0, sizeof pool_lanes);
        uint32_t issued = 0, rounds = 0;
        for (;;) {
            bool idle = true;
            for (uint16_t k = 0; k < POOL_CLIENTS; k++) {
                for (uint16_t ln = 0; ln < POOL_LANES; ln++) {
                    struct pool_lane *l = &pool_lanes[k][ln];
                    idle = idle && !l->busy;
                    if (l->busy || l->ts == POOL_OPS || chaos_next(&x) % 2u != 0)
                        continue;
                    l->ts++;
                    l->busy = true;
                    l->voted = 0;
                    snprintf((char *)l->key, sizeof l->key, "k%u", (unsigned)(chaos_next(&x) % 5u));
                    uint64_t roll = chaos_next(&x) % 10u;
                    l->op = roll < 8 ? WIRE_OP_PUT : WIRE_OP_GET;
                    l->vlen = roll < 7 ? 1100u + (uint32_t)(chaos_next(&x) % 29000u) : 1u + (uint32_t)(roll * 7u);
                    pool_send(k, ln, 0);
                    issued++;
                    idle = false;
                }
            }
            if (idle && issued == POOL_CLIENTS * POOL_LANES * POOL_OPS)
                break;
            for (int step = 0; step < 64 && rh_step_pick(&C, chaos_next(&x)); step++)
                ;
            if (C.q_len == 0) {
                /* Quiet: every waiting client retransmits (TOCS 2002 §4.1). */
                assert_true(++rounds < 200);
                for (uint16_t k = 0; k < POOL_CLIENTS; k++)
                    for (uint16_t ln = 0; ln < POOL_LANES; ln++)
                        if (pool_lanes[k][ln].busy)
                            pool_send(k, ln, WIRE_REQ_FULL_ALL);
            }
        }
        rh_run(&C);
        /* Agreement on every seq two replicas executed (no state transfer here,
         * but compare by seq all the same). */
        assert_true(rh_agree(&C, 0xF));
        uint64_t last = rh_stats(&C, 0)->last_executed;
        uint32_t at_end = 0;
        for (uint16_t a = 0; a < 4; a++) {
            relayed += rh_stats(&C, a)->pool_relayed;
            refused += rh_stats(&C, a)->dropped_full;
            if (rh_stats(&C, a)->last_executed < last)
                continue;
            at_end++;
            assert_int_equal(C.r[a]->pool_slot_chunks, 0);
            assert_int_equal(C.r[a]->pool_pend_chunks, 0);
        }
        assert_true(at_end >= 3u); /* a quorum executed everything */
        assert_int_equal(rh_fini(&C), 0); /* no bad reply */
    }
    rh_init(&C, 4, 1, 1, 0, NULL, NULL); /* for the teardown */
    /* The runs exercised what they are for. */
    assert_true(relayed > 0 && refused > 0);
}

/* ---- Throughput (not a test: test_replica_random --bench N) ------------------------------- */

struct bench {
    uint16_t clients, lanes;
    uint64_t *ts;       /* per (client, lane): outstanding timestamp */
    uint8_t *votes;     /* replies seen for it */
    uint64_t completed;
    uint64_t target;
    uint64_t next_key;
    bool gets;          /* ordered GETs instead of PUTs: the cost without the store's writes */
};

static void bench_issue(struct bench *b, uint16_t client, uint16_t lane)
{
    char key[24];
    uint64_t *ts = &b->ts[client * b->lanes + lane];
    (*ts)++;
    b->votes[client * b->lanes + lane] = 0;
    snprintf(key, sizeof key, "key%llu", (unsigned long long)(b->next_key++ % 100000u));
    if (b->gets)
        rh_submit(&C, client, lane, *ts, WIRE_OP_GET, key, NULL, 0, 0, 0);
    else
        rh_submit(&C, client, lane, *ts, WIRE_OP_PUT, key, "0123456789abcdef", 16, 0, 0);
}

static void bench_reply(struct rh_cluster *c, const struct rh_reply *rp, void *arg)
{
    struct bench *b = arg;
    uint32_t i = (uint32_t)rp->client * b->lanes + rp->lane;
    if (rp->timestamp != b->ts[i])
        return;
    if (++b->votes[i] == c->f + 1u) {
        b->completed++;
        if (b->completed + (uint64_t)b->clients * b->lanes <= b->target)
            bench_issue(b, rp->client, rp->lane);
    }
}

static int bench_run(uint64_t target, bool gets)
{
    struct rh_tune t = { .lanes = 16 };
    rh_init(&C, 4, 1, 64, 0, rh_tune_apply, &t);
    struct bench b = { .clients = 64, .lanes = 16, .target = target, .gets = gets };
    b.ts = calloc((size_t)b.clients * b.lanes, sizeof *b.ts);
    b.votes = calloc((size_t)b.clients * b.lanes, 1);
    C.on_reply = bench_reply;
    C.reply_arg = &b;
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (uint16_t k = 0; k < b.clients; k++)
        for (uint16_t l = 0; l < b.lanes; l++)
            bench_issue(&b, k, l);
    rh_run(&C);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
    const struct pbft_replica_stats *s = rh_stats(&C, 0);
    printf("n=4 f=1, %s: %llu requests committed and answered in %.3f s (%.3f s CPU): %.0f requests/s "
           "(%.0f per CPU second); %llu batches, avg batch %.1f, %llu messages delivered\n",
           gets ? "GET" : "PUT", (unsigned long long)b.completed, secs, cpu, (double)b.completed / secs,
           (double)b.completed / cpu, (unsigned long long)s->batches_executed,
           (double)s->batch_requests_total / (double)s->batches_executed, (unsigned long long)C.delivered);
    bool completed = b.completed == target;
    free(b.ts);
    free(b.votes);
    return completed && rh_fini(&C) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if (argc >= 3 && strcmp(argv[1], "--bench") == 0)
        return bench_run(strtoull(argv[2], NULL, 10), argc == 4 && strcmp(argv[3], "get") == 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_random_faults, teardown),
        cmocka_unit_test_teardown(test_random_large_pool, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
