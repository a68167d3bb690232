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
#include "replica_harness.h"

static struct rh_cluster C;
static uint8_t g_big[BFTKV_VALUE_MAX];

static void cluster_up(uint16_t clients, struct rh_tune *t)
{
    rh_init(&C, 4, 1, clients, rh_tune_apply, t);
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(C.bad_replies, 0);
    rh_fini(&C);
    return 0;
}

static void submit(uint16_t client, uint16_t lane, uint64_t ts, uint8_t op, const char *key, const void *val,
                   size_t vlen, uint8_t rflags, uint16_t to)
{
    rh_submit(&C, client, lane, ts, op, key, val, vlen, rflags, to);
}

static const struct pbft_replica_stats *st(uint16_t i)
{
    return pbft_replica_stats(C.r[i]);
}

/* ---- Random faults ----------------------------------------------------------------
 * Seeded runs of random traffic on a random schedule: reordering, loss,
 * duplication, bit flips, and one Byzantine replica -- a backup on odd seeds,
 * the primary on even ones -- whose messages are rewritten (another seq, view or
 * digest) and re-authenticated with its own keys, so different replicas see
 * different PRE-PREPAREs for one seq. Nothing may crash, and the correct
 * replicas must never execute different batches at one sequence number. */

struct chaos {
    uint64_t rng;
    uint16_t byz; /* the Byzantine replica */
    uint32_t mutated, flipped, dropped, duplicated;
};

static uint64_t chaos_next(struct chaos *x)
{
    uint64_t z = (x->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
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
    /* Loss and damage only where they cannot stall the correct replicas (the
     * normal case has no retransmission of protocol messages; the view change
     * of the next issue brings it): on the Byzantine replica's links, and loss of requests
     * (clients retransmit). A request damaged on its way to the primary would
     * stall its batch at the backups (they cannot authenticate it), so requests
     * are only lost, never damaged. */
    bool byz = m->from == x->byz || m->to == x->byz;
    if (!byz && m->from != RH_FROM_CLIENT)
        return false;
    if (roll < 10) {
        x->dropped++;
        return true;
    }
    if (roll < 15 && byz) {
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

static void test_random_faults(void **state)
{
    (void)state;
    uint64_t executed = 0;
    /* BFTKV_REPLICA_SEEDS=N runs N seeds instead of 12 (a longer hunt). */
    const char *env = getenv("BFTKV_REPLICA_SEEDS");
    uint64_t seeds = env != NULL ? strtoull(env, NULL, 10) : 12u;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        struct rh_tune t = { .k = 4, .l = 8, .w = 3, .lanes = 2, .batch_requests = 6 };
        cluster_up(6, &t);
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
        rh_run(&C);
        /* Safety among the correct replicas: one batch per sequence number. */
        for (uint16_t a = 0; a < 4; a++) {
            for (uint16_t b = (uint16_t)(a + 1); b < 4; b++) {
                if (a == x.byz || b == x.byz)
                    continue;
                size_t k = C.nexecs[a] < C.nexecs[b] ? C.nexecs[a] : C.nexecs[b];
                for (size_t i = 0; i < k; i++) {
                    assert_int_equal(C.execs[a][i].seq, C.execs[b][i].seq);
                    assert_memory_equal(C.execs[a][i].digest, C.execs[b][i].digest, 32);
                }
            }
        }
        assert_true(x.mutated > 0 && x.flipped > 0);
        executed += st(1)->requests_executed;
        rh_fini(&C);
    }
    rh_init(&C, 4, 1, 1, NULL, NULL); /* for the teardown */
    /* Progress is not guaranteed here: the schedule may deliver a PRE-PREPARE
     * before the checkpoint that moves a backup's high watermark past it, and a
     * message beyond the window is discarded (TOCS 2002 §4.3) with nothing to
     * resend it until the view change of the next issue. Most seeds get far. */
    assert_true(executed > seeds * 10u);
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
        submit(client, lane, *ts, WIRE_OP_GET, key, NULL, 0, 0, 0);
    else
        submit(client, lane, *ts, WIRE_OP_PUT, key, "0123456789abcdef", 16, 0, 0);
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
    rh_init(&C, 4, 1, 64, rh_tune_apply, &t);
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
    const struct pbft_replica_stats *s = st(0);
    printf("n=4 f=1, %s: %llu requests committed and answered in %.3f s (%.3f s CPU): %.0f requests/s "
           "(%.0f per CPU second); %llu batches, avg batch %.1f, %llu messages delivered\n",
           gets ? "GET" : "PUT", (unsigned long long)b.completed, secs, cpu, (double)b.completed / secs,
           (double)b.completed / cpu, (unsigned long long)s->batches_executed,
           (double)s->batch_requests_total / (double)s->batches_executed, (unsigned long long)C.delivered);
    int rc = b.completed == target && C.bad_replies == 0 ? 0 : 1;
    free(b.ts);
    free(b.votes);
    rh_fini(&C);
    return rc;
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0)
        return 1;
    if (argc >= 3 && strcmp(argv[1], "--bench") == 0)
        return bench_run(strtoull(argv[2], NULL, 10), argc == 4 && strcmp(argv[3], "get") == 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_random_faults, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
