/* Unit tests of the client library (include/bftkv/client.h) against the
 * in-process fake cluster (test_client_lib_fake.h): real config and key files,
 * real UDP on 127.0.0.1, engine replicas pumped by one thread of this process.
 *
 * Groups: n=4 (f=1) with the read-only fast path on (the default) and off, and
 * the unreplicated n=1. Covered: sync put/get/del and their results, missing keys,
 * BUF_TOO_SMALL, limits rejected before anything is sent, maximal key and value,
 * 1000 async requests from 4 threads at once, callbacks that submit, a blocking
 * full queue, timeouts with every replica stopped (and recovery after: late
 * results discarded), a full queue, and close with requests in flight. Every wait
 * is bounded (WAIT_MS).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "tests/client/test_client_lib_fake.h"

#define WAIT_MS 90000 /* a bound, not a speed: ASan on a machine at load 10 took 20 s a phase */
#define THREADS 4
#define PER_THREAD 250
#define EXTRA_COMMON "client_lanes 64\nrequest_timeout_ms 2000\nretransmit_ms 100\n"

static struct fake_cluster g_fc;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static struct bftkv_client *client_open_lanes(uint16_t id, int timeout_ms, uint32_t queue_max, uint32_t flags,
                                              uint16_t lanes);

static struct bftkv_client *client_open(uint16_t id, int timeout_ms, uint32_t queue_max, uint32_t flags)
{
    return client_open_lanes(id, timeout_ms, queue_max, flags, 0);
}

static struct bftkv_client *client_open_lanes(uint16_t id, int timeout_ms, uint32_t queue_max, uint32_t flags,
                                              uint16_t lanes)
{
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.timeout_ms = timeout_ms;
    opt.queue_max = queue_max;
    opt.flags = flags;
    opt.lanes = lanes;
    opt.err = err;
    opt.errlen = sizeof err;
    struct bftkv_client *c = NULL;
    int rc = bftkv_client_open(g_fc.conf, id, &opt, &c);
    if (rc != 0) {
        fprintf(stderr, "open: %s (%s)\n", bftkv_strerror(rc), err);
    }
    assert_int_equal(rc, 0);
    assert_non_null(c);
    return c;
}

static struct bftkv_client_stats stats_of(struct bftkv_client *c)
{
    struct bftkv_client_stats s = { .struct_size = sizeof s };
    assert_int_equal(bftkv_client_stats(c, &s), 0);
    return s;
}

/* ---- A countdown the async tests wait on --------------------------------------------- */

struct latch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t left;
};

static void latch_init(struct latch *l, uint32_t n)
{
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->left = n;
}

static void latch_down(struct latch *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->left == 0) { /* a callback made twice (cmocka cannot fail from another thread) */
        fprintf(stderr, "latch: more callbacks than requests\n");
        abort();
    }
    if (--l->left == 0) {
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
}

/* Wait (bounded) until the count reaches zero; true if it did. */
static bool latch_wait(struct latch *l, int ms)
{
    int64_t end = now_ms() + ms;
    pthread_mutex_lock(&l->mu);
    while (l->left > 0 && now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    bool ok = l->left == 0;
    pthread_mutex_unlock(&l->mu);
    return ok;
}

static void latch_destroy(struct latch *l)
{
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
}

/* ---- Sync ------------------------------------------------------------------------------ */

static void check_value(struct bftkv_client *c, const char *key, const void *want, size_t want_len)
{
    uint8_t buf[256];
    size_t vlen = 12345;
    int rc = bftkv_get(c, key, strlen(key), buf, sizeof buf, &vlen);
    assert_int_equal(rc, 0);
    assert_int_equal(vlen, want_len);
    if (want_len > 0) {
        assert_memory_equal(buf, want, want_len);
    }
}

static void test_sync_put_get_del(void **state)
{
    (void)state;
    struct bftkv_client *c = client_open(0, 0, 0, 0);
    assert_int_equal(bftkv_put(c, "alpha", 5, "one", 3), 0);
    check_value(c, "alpha", "one", 3);
    assert_int_equal(bftkv_put(c, "alpha", 5, "two!", 4), 0);
    check_value(c, "alpha", "two!", 4);
    assert_int_equal(bftkv_del(c, "alpha", 5), 0);
    size_t vlen = 0;
    uint8_t buf[16];
    assert_int_equal(bftkv_get(c, "alpha", 5, buf, sizeof buf, &vlen), BFTKV_E_NOT_FOUND);
    assert_int_equal(bftkv_del(c, "alpha", 5), BFTKV_E_NOT_FOUND);
    assert_int_equal(bftkv_get(c, "never-written", 13, buf, sizeof buf, &vlen), BFTKV_E_NOT_FOUND);

    /* An empty value is a value; binary keys with zero bytes are keys. */
    assert_int_equal(bftkv_put(c, "empty", 5, NULL, 0), 0);
    check_value(c, "empty", "", 0);
    const uint8_t bkey[4] = { 0, 1, 0, 2 };
    assert_int_equal(bftkv_put(c, bkey, sizeof bkey, "b", 1), 0);
    assert_int_equal(bftkv_get(c, bkey, sizeof bkey, buf, sizeof buf, &vlen), 0);
    assert_int_equal(vlen, 1);
    assert_int_equal(bftkv_get(c, bkey, 3, buf, sizeof buf, &vlen), BFTKV_E_NOT_FOUND);

    /* get_alloc: a NUL-terminated copy. */
    assert_int_equal(bftkv_put(c, "text", 4, "hello", 5), 0);
    void *v = NULL;
    assert_int_equal(bftkv_get_alloc(c, "text", 4, &v, &vlen), 0);
    assert_int_equal(vlen, 5);
    assert_string_equal((const char *)v, "hello");
    bftkv_free(v);
    v = (void *)1;
    assert_int_equal(bftkv_get_alloc(c, "nothing", 7, &v, &vlen), BFTKV_E_NOT_FOUND);
    assert_null(v);

    struct bftkv_client_stats s = stats_of(c);
    assert_int_equal(s.timeouts, 0);
    assert_int_equal(s.retransmissions, 0); /* every replica knew where to answer at once */
    assert_true(s.completed >= 14);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.queued, 0);
    bftkv_client_close(c);
}

static void test_buf_too_small(void **state)
{
    (void)state;
    struct bftkv_client *c = client_open(1, 0, 0, 0);
    uint8_t val[100];
    for (size_t i = 0; i < sizeof val; i++) {
        val[i] = (uint8_t)(i * 7u);
    }
    assert_int_equal(bftkv_put(c, "hundred", 7, val, sizeof val), 0);
    uint8_t buf[10];
    memset(buf, 0xAA, sizeof buf);
    size_t vlen = 0;
    assert_int_equal(bftkv_get(c, "hundred", 7, buf, sizeof buf, &vlen), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(vlen, 100);
    for (size_t i = 0; i < sizeof buf; i++) {
        assert_int_equal(buf[i], 0xAA); /* untouched */
    }
    vlen = 0;
    assert_int_equal(bftkv_get(c, "hundred", 7, NULL, 0, &vlen), BFTKV_E_BUF_TOO_SMALL);
    assert_int_equal(vlen, 100);
    uint8_t big[100];
    assert_int_equal(bftkv_get(c, "hundred", 7, big, sizeof big, &vlen), 0);
    assert_memory_equal(big, val, sizeof val);
    /* bad arguments */
    assert_int_equal(bftkv_get(c, "hundred", 7, NULL, 5, &vlen), BFTKV_E_INVAL);
    assert_int_equal(bftkv_get(c, "hundred", 7, big, sizeof big, NULL), BFTKV_E_INVAL);
    bftkv_client_close(c);
}

static void nop_cb(void *arg, int status, const void *val, size_t vlen)
{
    (void)arg, (void)status, (void)val, (void)vlen;
    fail_msg("callback of a refused submission");
}

static void test_limits_before_sending(void **state)
{
    (void)state;
    struct bftkv_client *c = client_open(2, 0, 0, 0);
    static uint8_t key[BFTKV_KEY_MAX + 1];
    static uint8_t val[BFTKV_VALUE_MAX + 1];
    memset(key, 'k', sizeof key);
    for (size_t i = 0; i < sizeof val; i++) {
        val[i] = (uint8_t)(i ^ (i >> 8));
    }
    struct bftkv_client_stats before = stats_of(c);
    size_t vlen;
    assert_int_equal(bftkv_put(c, key, BFTKV_KEY_MAX + 1, "v", 1), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(bftkv_put(c, key, 0, "v", 1), BFTKV_E_KEY_EMPTY);
    assert_int_equal(bftkv_put(c, key, 1, val, BFTKV_VALUE_MAX + 1), BFTKV_E_VALUE_TOO_LARGE);
    assert_int_equal(bftkv_get(c, key, BFTKV_KEY_MAX + 1, NULL, 0, &vlen), BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(bftkv_del(c, key, 0), BFTKV_E_KEY_EMPTY);
    assert_int_equal(bftkv_put(c, NULL, 3, "v", 1), BFTKV_E_INVAL);
    assert_int_equal(bftkv_put(c, key, 3, NULL, 1), BFTKV_E_INVAL);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_PUT, key, BFTKV_KEY_MAX + 1, "v", 1, nop_cb, NULL),
                     BFTKV_E_KEY_TOO_LARGE);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_PUT, key, 1, val, BFTKV_VALUE_MAX + 1, nop_cb, NULL),
                     BFTKV_E_VALUE_TOO_LARGE);
    assert_int_equal(bftkv_submit(c, 9, key, 1, NULL, 0, nop_cb, NULL), BFTKV_E_INVAL);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, key, 1, "v", 1, nop_cb, NULL), BFTKV_E_INVAL);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, key, 1, NULL, 0, NULL, NULL), BFTKV_E_INVAL);
    struct bftkv_client_stats after = stats_of(c);
    assert_int_equal(after.submitted, before.submitted);
    assert_int_equal(after.datagrams_sent, before.datagrams_sent); /* nothing went out */

    /* The maxima themselves work: a large request travels to every replica. */
    assert_int_equal(bftkv_put(c, key, BFTKV_KEY_MAX, val, BFTKV_VALUE_MAX), 0);
    void *got = NULL;
    assert_int_equal(bftkv_get_alloc(c, key, BFTKV_KEY_MAX, &got, &vlen), 0);
    assert_int_equal(vlen, BFTKV_VALUE_MAX);
    assert_memory_equal(got, val, BFTKV_VALUE_MAX);
    bftkv_free(got);
    bftkv_client_close(c);
}

/* ---- Async, many threads ------------------------------------------------------------------ */

struct expect {
    struct latch *latch;
    atomic_uint *bad;
    int status;     /* wanted */
    uint8_t value[64];
    size_t vlen;    /* wanted, for a GET with status 0 */
    bool check_value;
};

static void expect_cb(void *arg, int status, const void *val, size_t vlen)
{
    struct expect *e = arg;
    bool ok = status == e->status;
    if (ok && e->check_value) {
        ok = vlen == e->vlen && (vlen == 0 || memcmp(val, e->value, vlen) == 0);
    }
    if (!ok) {
        if (atomic_fetch_add(e->bad, 1) < 5) {
            fprintf(stderr, "async: status %d (%s), want %d; vlen %zu want %zu\n", status, bftkv_strerror(status),
                    e->status, vlen, e->vlen);
        }
    }
    latch_down(e->latch);
}

struct async_phase {
    struct bftkv_client *c;
    uint32_t thread;
    int op;
    struct expect *ex; /* PER_THREAD entries */
    struct latch *latch;
    atomic_uint *bad;
    int phase;         /* 0 put, 1 get, 2 del odd, 3 get after del */
};

static void key_of(char *key, size_t cap, uint32_t t, uint32_t i)
{
    snprintf(key, cap, "async-%u-%u", t, i);
}

static size_t value_of(uint8_t *v, uint32_t t, uint32_t i)
{
    size_t len = 1u + (t * 31u + i) % 60u;
    for (size_t k = 0; k < len; k++) {
        v[k] = (uint8_t)(t * 97u + i * 13u + k);
    }
    return len;
}

static void *async_thread(void *arg)
{
    struct async_phase *p = arg;
    for (uint32_t i = 0; i < PER_THREAD; i++) {
        char key[32];
        key_of(key, sizeof key, p->thread, i);
        struct expect *e = &p->ex[i];
        *e = (struct expect){ .latch = p->latch, .bad = p->bad };
        int op = BFTKV_OP_GET;
        uint8_t val[64];
        size_t vlen = value_of(val, p->thread, i);
        bool deleted = (i % 2u) == 1u;
        switch (p->phase) {
        case 0:
            op = BFTKV_OP_PUT;
            break;
        case 1:
            e->check_value = true;
            memcpy(e->value, val, vlen);
            e->vlen = vlen;
            break;
        case 2:
            op = deleted ? BFTKV_OP_DEL : BFTKV_OP_GET;
            e->check_value = !deleted;
            memcpy(e->value, val, vlen);
            e->vlen = vlen;
            break;
        default:
            e->status = deleted ? BFTKV_E_NOT_FOUND : 0;
            e->check_value = !deleted;
            memcpy(e->value, val, vlen);
            e->vlen = vlen;
            break;
        }
        int rc = bftkv_submit(p->c, op, key, strlen(key), op == BFTKV_OP_PUT ? val : NULL,
                              op == BFTKV_OP_PUT ? vlen : 0, expect_cb, e);
        if (rc != 0) {
            fprintf(stderr, "submit: %s\n", bftkv_strerror(rc));
            atomic_fetch_add(p->bad, 1);
            latch_down(p->latch);
        }
    }
    return NULL;
}

static void test_async_1000_from_4_threads(void **state)
{
    (void)state;
    struct bftkv_client *c = client_open(3, 60000, 0, 0);
    static struct expect ex[THREADS][PER_THREAD];
    for (int phase = 0; phase < 4; phase++) {
        struct latch latch;
        atomic_uint bad = 0;
        latch_init(&latch, THREADS * PER_THREAD);
        pthread_t th[THREADS];
        struct async_phase ap[THREADS];
        int64_t t0 = now_ms();
        for (uint32_t t = 0; t < THREADS; t++) {
            ap[t] = (struct async_phase){ .c = c, .thread = t, .ex = ex[t], .latch = &latch, .bad = &bad,
                                          .phase = phase };
            assert_int_equal(pthread_create(&th[t], NULL, async_thread, &ap[t]), 0);
        }
        for (uint32_t t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
        }
        bool done = latch_wait(&latch, WAIT_MS);
        fprintf(stderr, "async phase %d: %u requests in %lld ms\n", phase, THREADS * PER_THREAD,
                (long long)(now_ms() - t0));
        assert_true(done);
        assert_int_equal(atomic_load(&bad), 0);
        latch_destroy(&latch);
    }
    struct bftkv_client_stats s = stats_of(c);
    assert_int_equal(s.submitted, 4u * THREADS * PER_THREAD);
    assert_int_equal(s.completed, 4u * THREADS * PER_THREAD);
    assert_int_equal(s.timeouts, 0);
    fprintf(stderr, "async: %llu datagrams sent, %llu received for %llu requests; %llu retransmissions\n",
            (unsigned long long)s.datagrams_sent, (unsigned long long)s.datagrams_received,
            (unsigned long long)s.submitted, (unsigned long long)s.retransmissions);
    bftkv_client_close(c);
}

/* A callback that submits the next request of a chain, and finds sync calls refused. */
struct chain {
    struct bftkv_client *c;
    struct latch latch;
    atomic_uint step;
    atomic_uint bad;
};

static void chain_cb(void *arg, int status, const void *val, size_t vlen)
{
    struct chain *ch = arg;
    (void)val, (void)vlen;
    if (status != 0 || bftkv_put(ch->c, "x", 1, "y", 1) != BFTKV_E_INVAL) {
        atomic_fetch_add(&ch->bad, 1);
    }
    unsigned k = atomic_fetch_add(&ch->step, 1) + 1;
    if (k < 10) {
        char key[16];
        snprintf(key, sizeof key, "chain-%u", k);
        if (bftkv_submit(ch->c, BFTKV_OP_PUT, key, strlen(key), "c", 1, chain_cb, ch) != 0) {
            atomic_fetch_add(&ch->bad, 1);
        }
    }
    latch_down(&ch->latch);
}

static void test_callback_submits(void **state)
{
    (void)state;
    struct chain ch = { .c = client_open(0, 0, 0, 0) };
    latch_init(&ch.latch, 10);
    assert_int_equal(bftkv_submit(ch.c, BFTKV_OP_PUT, "chain-0", 7, "c", 1, chain_cb, &ch), 0);
    assert_true(latch_wait(&ch.latch, WAIT_MS));
    assert_int_equal(atomic_load(&ch.bad), 0);
    check_value(ch.c, "chain-9", "c", 1);
    bftkv_client_close(ch.c);
    latch_destroy(&ch.latch);
}

static void count_cb(void *arg, int status, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    struct expect *e = arg;
    if (status != e->status) {
        atomic_fetch_add(e->bad, 1);
    }
    latch_down(e->latch);
}

static void test_submit_blocks_when_full(void **state)
{
    (void)state;
    struct bftkv_client *c = client_open(1, 0, 4, BFTKV_CLIENT_SUBMIT_BLOCK);
    struct latch latch;
    atomic_uint bad = 0;
    latch_init(&latch, 200);
    struct expect e = { .latch = &latch, .bad = &bad, .status = 0 };
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof key, "blk-%d", i);
        assert_int_equal(bftkv_submit(c, BFTKV_OP_PUT, key, strlen(key), "b", 1, count_cb, &e), 0);
    }
    assert_true(latch_wait(&latch, WAIT_MS));
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(stats_of(c).queue_full, 0);
    bftkv_client_close(c);
    latch_destroy(&latch);
}

/* ---- Replicas stopped ------------------------------------------------------------------- */

static void test_timeout_then_recovery(void **state)
{
    (void)state;
    const int timeout = 300;
    struct bftkv_client *c = client_open(2, timeout, 0, 0);
    assert_int_equal(bftkv_put(c, "before", 6, "1", 1), 0);
    fake_stop(&g_fc);

    int64_t t0 = now_ms();
    uint8_t buf[8];
    size_t vlen;
    assert_int_equal(bftkv_get(c, "before", 6, buf, sizeof buf, &vlen), BFTKV_E_TIMEOUT);
    int64_t took = now_ms() - t0;
    fprintf(stderr, "sync get with every replica stopped: BFTKV_E_TIMEOUT after %lld ms (timeout %d)\n",
            (long long)took, timeout);
    assert_true(took >= timeout - 5); /* no upper bound: a loaded machine may be late */
    assert_int_equal(bftkv_put(c, "late-sync", 9, "s", 1), BFTKV_E_TIMEOUT);

    struct latch latch;
    atomic_uint bad = 0;
    latch_init(&latch, 1);
    struct expect e = { .latch = &latch, .bad = &bad, .status = BFTKV_E_TIMEOUT };
    t0 = now_ms();
    assert_int_equal(bftkv_submit(c, BFTKV_OP_PUT, "late-async", 10, "a", 1, count_cb, &e), 0);
    assert_true(latch_wait(&latch, WAIT_MS));
    took = now_ms() - t0;
    assert_true(took >= timeout - 5); /* no upper bound: a loaded machine may be late */
    assert_int_equal(atomic_load(&bad), 0);
    latch_destroy(&latch);
    struct bftkv_client_stats s = stats_of(c);
    assert_int_equal(s.timeouts, 3);
    assert_int_equal(s.in_flight, 3); /* abandoned, still retransmitted */

    /* Replicas back: new requests work, and the abandoned ones finish in the
     * background (their results discarded) — a timed-out write may still happen. */
    fake_start(&g_fc);
    assert_int_equal(bftkv_put(c, "after", 5, "2", 1), 0);
    int64_t end = now_ms() + WAIT_MS;
    while (stats_of(c).late_results < 3 && now_ms() < end) {
        sleep_ms(20);
    }
    s = stats_of(c);
    assert_int_equal(s.late_results, 3);
    assert_int_equal(s.in_flight, 0);
    check_value(c, "late-async", "a", 1);
    check_value(c, "late-sync", "s", 1);
    bftkv_client_close(c);
}

static void test_queue_full(void **state)
{
    (void)state;
    struct bftkv_client *c = client_open(3, 5000, 8, 0);
    fake_stop(&g_fc);
    struct latch latch;
    atomic_uint bad = 0;
    latch_init(&latch, 8);
    struct expect e = { .latch = &latch, .bad = &bad, .status = BFTKV_E_CANCELLED };
    for (int i = 0; i < 8; i++) {
        assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, "q", 1, NULL, 0, count_cb, &e), 0);
    }
    assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, "q", 1, NULL, 0, nop_cb, NULL), BFTKV_E_FULL);
    assert_int_equal(stats_of(c).queue_full, 1);
    bftkv_client_close(c); /* the 8 callbacks run here, with BFTKV_E_CANCELLED */
    assert_true(latch_wait(&latch, 0));
    assert_int_equal(atomic_load(&bad), 0);
    latch_destroy(&latch);
    fake_start(&g_fc);
}

static void done_or_cancelled_cb(void *arg, int status, const void *val, size_t vlen)
{
    (void)val, (void)vlen;
    struct expect *e = arg;
    if (status != 0 && status != BFTKV_E_CANCELLED) {
        atomic_fetch_add(e->bad, 1);
    }
    latch_down(e->latch);
}

/* A blocking submit into a full queue gives up with BFTKV_E_FULL after the
 * timeout; the queued requests time out on their own. */
static void test_submit_block_times_out(void **state)
{
    (void)state;
    const int timeout = 300;
    struct bftkv_client *c = client_open(2, timeout, 2, BFTKV_CLIENT_SUBMIT_BLOCK);
    fake_stop(&g_fc);
    struct latch latch;
    atomic_uint bad = 0;
    latch_init(&latch, 2);
    struct expect e = { .latch = &latch, .bad = &bad, .status = BFTKV_E_TIMEOUT };
    int64_t t0 = now_ms();
    assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, "b", 1, NULL, 0, count_cb, &e), 0);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, "b", 1, NULL, 0, count_cb, &e), 0);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_GET, "b", 1, NULL, 0, nop_cb, NULL), BFTKV_E_FULL);
    int64_t took = now_ms() - t0;
    assert_true(took >= timeout - 5); /* no upper bound: a loaded machine may be late */
    assert_true(latch_wait(&latch, WAIT_MS));
    assert_int_equal(atomic_load(&bad), 0);
    bftkv_client_close(c);
    latch_destroy(&latch);
    fake_start(&g_fc);
}

/* Requests that time out while queued (every lane held by an abandoned request)
 * leave the queue at once: a dead cluster yields timeouts, never a full queue. */
static void test_timeouts_free_queue_slots(void **state)
{
    (void)state;
    const int timeout = 150;
    struct bftkv_client *c = client_open_lanes(3, timeout, 3, 0, 1); /* one slot stays with the abandoned GET */
    fake_stop(&g_fc);
    uint8_t buf[8];
    size_t vlen;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(bftkv_get(c, "dead", 4, buf, sizeof buf, &vlen), BFTKV_E_TIMEOUT);
    }
    struct latch latch;
    atomic_uint bad = 0;
    latch_init(&latch, 2);
    struct expect e = { .latch = &latch, .bad = &bad, .status = BFTKV_E_TIMEOUT };
    int64_t t0 = now_ms();
    assert_int_equal(bftkv_submit(c, BFTKV_OP_DEL, "dead", 4, NULL, 0, count_cb, &e), 0);
    assert_int_equal(bftkv_submit(c, BFTKV_OP_DEL, "dead", 4, NULL, 0, count_cb, &e), 0);
    assert_true(latch_wait(&latch, WAIT_MS));
    /* Timed out although the lane is busy (the I/O thread is woken for the
     * deadline). How late is not checked: no timing assertions in tests. */
    fprintf(stderr, "queued requests timed out after %lld ms (timeout %d)\n", (long long)(now_ms() - t0), timeout);
    assert_int_equal(atomic_load(&bad), 0);
    struct bftkv_client_stats s = stats_of(c);
    assert_int_equal(s.timeouts, 7);
    assert_int_equal(s.queued, 0);
    assert_int_equal(s.in_flight, 1); /* the first GET, still retransmitted */
    assert_int_equal(s.queue_full, 0);
    assert_int_equal(bftkv_put(c, "dead", 4, "x", 1), BFTKV_E_TIMEOUT);
    bftkv_client_close(c);
    latch_destroy(&latch);
    fake_start(&g_fc);
}

struct waiter {
    struct bftkv_client *c;
    int rc;
};

static void *sync_waiter(void *arg)
{
    struct waiter *w = arg;
    uint8_t buf[8];
    size_t vlen;
    w->rc = bftkv_get(w->c, "w", 1, buf, sizeof buf, &vlen);
    return NULL;
}

static void test_close_with_requests_in_flight(void **state)
{
    (void)state;
    /* Async requests racing with close: each callback exactly once. */
    struct bftkv_client *c = client_open(0, 5000, 0, 0);
    struct latch latch;
    atomic_uint bad = 0;
    latch_init(&latch, 500);
    struct expect ok = { .latch = &latch, .bad = &bad };
    for (int i = 0; i < 500; i++) {
        char key[32];
        snprintf(key, sizeof key, "close-%d", i);
        assert_int_equal(bftkv_submit(c, BFTKV_OP_PUT, key, strlen(key), "z", 1, done_or_cancelled_cb, &ok), 0);
    }
    bftkv_client_close(c);
    assert_true(latch_wait(&latch, 0)); /* all 500 reported, each once */
    assert_int_equal(atomic_load(&bad), 0);
    latch_destroy(&latch);

    /* A sync caller waiting inside the handle returns BFTKV_E_CANCELLED. */
    fake_stop(&g_fc);
    struct waiter w = { .c = client_open(1, 20000, 0, 0), .rc = 1 };
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sync_waiter, &w), 0);
    int64_t end = now_ms() + WAIT_MS;
    for (;;) {
        struct bftkv_client_stats s = stats_of(w.c);
        if (s.in_flight + s.queued > 0 || now_ms() > end) {
            break;
        }
        sleep_ms(1);
    }
    int64_t t0 = now_ms();
    bftkv_client_close(w.c);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, BFTKV_E_CANCELLED);
    fprintf(stderr, "close with a sync caller waiting: %lld ms\n", (long long)(now_ms() - t0));
    fake_start(&g_fc);
}

static void test_open_errors(void **state)
{
    (void)state;
    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    struct bftkv_client *c = (struct bftkv_client *)&opt;
    assert_int_equal(bftkv_client_open("/nonexistent/cluster.conf", 0, &opt, &c), BFTKV_E_IO);
    assert_null(c);
    assert_non_null(strstr(err, "/nonexistent/cluster.conf"));
    assert_int_equal(bftkv_client_open(g_fc.conf, 7, &opt, &c), BFTKV_E_CONFIG); /* not in the allow-list */
    assert_non_null(strstr(err, "client 7"));
    opt.lanes = 65;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &opt, &c), BFTKV_E_INVAL);
    opt.lanes = 0;
    opt.timeout_ms = -1;
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, &opt, &c), BFTKV_E_INVAL);
    assert_int_equal(bftkv_client_open(g_fc.conf, 0, NULL, NULL), BFTKV_E_INVAL);
    bftkv_client_close(NULL);
    assert_string_equal(bftkv_errname(BFTKV_E_CANCELLED), "CANCELLED");
}

/* ---- Groups -------------------------------------------------------------------------------- */

static int setup_n4(void **state)
{
    (void)state;
    if (fake_create(&g_fc, 4, 1, 4, EXTRA_COMMON) != 0) {
        return -1;
    }
    fake_start(&g_fc);
    return 0;
}

static int setup_n4_ordered_reads(void **state)
{
    (void)state;
    if (fake_create(&g_fc, 4, 1, 4, EXTRA_COMMON "readonly_fast_path off\n") != 0) {
        return -1;
    }
    fake_start(&g_fc);
    return 0;
}

static int setup_n1(void **state)
{
    (void)state;
    if (fake_create(&g_fc, 1, 0, 4, EXTRA_COMMON) != 0) {
        return -1;
    }
    fake_start(&g_fc);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_destroy(&g_fc);
    return 0;
}

int main(void)
{
    if (sodium_init() < 0) {
        return 1;
    }
    const struct CMUnitTest n4[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_sync_put_get_del),
        cmocka_unit_test(test_buf_too_small),
        cmocka_unit_test(test_limits_before_sending),
        cmocka_unit_test(test_async_1000_from_4_threads),
        cmocka_unit_test(test_callback_submits),
        cmocka_unit_test(test_submit_blocks_when_full),
        cmocka_unit_test(test_timeout_then_recovery),
        cmocka_unit_test(test_queue_full),
        cmocka_unit_test(test_submit_block_times_out),
        cmocka_unit_test(test_timeouts_free_queue_slots),
        cmocka_unit_test(test_close_with_requests_in_flight),
    };
    const struct CMUnitTest ordered[] = {
        cmocka_unit_test(test_sync_put_get_del),
        cmocka_unit_test(test_buf_too_small),
        cmocka_unit_test(test_async_1000_from_4_threads),
    };
    const struct CMUnitTest single[] = {
        cmocka_unit_test(test_sync_put_get_del),
        cmocka_unit_test(test_limits_before_sending),
        cmocka_unit_test(test_async_1000_from_4_threads),
    };
    int failed = cmocka_run_group_tests_name("client_lib_n4", n4, setup_n4, teardown);
    failed += cmocka_run_group_tests_name("client_lib_n4_ordered_reads", ordered, setup_n4_ordered_reads, teardown);
    failed += cmocka_run_group_tests_name("client_lib_n1", single, setup_n1, teardown);
    return failed == 0 ? 0 : 1;
}
