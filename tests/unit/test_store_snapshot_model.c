/* Unit tests of snapshots that cost O(changes) (store/store_snapshot.c,
 * docs/design.md §3.4): many snapshots live at once under interleaved puts,
 * overwrites, deletes, re-inserts, resizes, clears and swaps, released in random
 * order, each checked against a model (a plain array of the contents, copied
 * when the snapshot was taken) through its count, digest, visitor, chunked
 * encoding and a restore; and the cost of a write after a snapshot, measured by
 * the store's own allocation counter and its bookkeeping (store_test_verify). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"
#include "store/store.h"
#include "store/store_internal.h"
#include "tests/test_scale.h"

#define MODEL_KEYS 400u
#define MODEL_VALUE_MAX 40u
#define MODEL_LIVE_MAX 6u
#define MODEL_STEPS 6000u
#define RECORD_HEADER 6u

/* A small chunk: many encode calls per shard, so cursors cross writes. */
#define SMALL_CHUNK 96u

struct model {
    bool present[MODEL_KEYS];
    uint8_t vlen[MODEL_KEYS];
    uint8_t val[MODEL_KEYS][MODEL_VALUE_MAX];
};

struct held {
    struct store_snapshot *snap;
    struct model m; /* the contents when taken */
};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t key_of(char *buf, uint32_t i)
{
    int n = snprintf(buf, 32, "mk-%u", i);
    assert_true(n > 0 && n < 32);
    return (size_t)n;
}

/* The key id of a key written by key_of, or MODEL_KEYS when it is none. */
static uint32_t key_id(const uint8_t *key, size_t klen)
{
    char buf[32];
    if (klen < 4 || klen >= sizeof buf || memcmp(key, "mk-", 3) != 0) {
        return MODEL_KEYS;
    }
    memcpy(buf, key, klen);
    buf[klen] = '\0';
    unsigned long id = strtoul(buf + 3, NULL, 10);
    return id < MODEL_KEYS ? (uint32_t)id : MODEL_KEYS;
}

static void model_digest(const struct model *m, struct lthash *out)
{
    lthash_zero(out);
    for (uint32_t i = 0; i < MODEL_KEYS; i++) {
        if (m->present[i]) {
            char key[32];
            size_t klen = key_of(key, i);
            uint8_t seed[LTHASH_SEED_SIZE];
            lthash_entry_seed(seed, key, klen, m->val[i], m->vlen[i]);
            lthash_add_seed(out, seed);
        }
    }
}

static uint64_t model_count(const struct model *m)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < MODEL_KEYS; i++) {
        n += m->present[i];
    }
    return n;
}

/* One record of a snapshot, checked against the model and marked seen. */
static void record_check(const struct model *m, bool *seen, const uint8_t *key, size_t klen, const uint8_t *val,
                         size_t vlen)
{
    uint32_t id = key_id(key, klen);
    assert_true(id < MODEL_KEYS);
    assert_true(m->present[id]);
    assert_false(seen[id]); /* each key once */
    seen[id] = true;
    assert_int_equal(vlen, m->vlen[id]);
    if (vlen > 0) {
        assert_memory_equal(val, m->val[id], vlen);
    }
}

struct visit_ctx {
    const struct model *m;
    bool seen[MODEL_KEYS];
    uint64_t n;
};

static int visit_check(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct visit_ctx *c = arg;
    record_check(c->m, c->seen, key, klen, val, vlen);
    c->n++;
    return 0;
}

/* Everything a snapshot shows equals the model: count, digest, the visitor, and
 * the chunked encoding, which is also restored into an empty twin store. */
static void snapshot_check(const struct held *h)
{
    assert_int_equal(store_snapshot_count(h->snap), model_count(&h->m));
    struct lthash want;
    struct lthash got;
    model_digest(&h->m, &want);
    store_snapshot_digest(h->snap, &got);
    assert_true(lthash_equal(&got, &want));

    struct visit_ctx vc = {.m = &h->m, .n = 0};
    memset(vc.seen, 0, sizeof vc.seen);
    uint32_t shards = store_snapshot_shard_count(h->snap);
    for (uint32_t sh = 0; sh < shards; sh++) {
        assert_int_equal(store_snapshot_shard_foreach(h->snap, sh, visit_check, &vc), 0);
    }
    assert_int_equal(vc.n, model_count(&h->m));

    struct store *twin = NULL;
    struct store_config cfg = {shards, 0};
    assert_int_equal(store_create(&cfg, &twin), 0);
    bool seen[MODEL_KEYS] = {false};
    uint64_t records = 0;
    for (uint32_t sh = 0; sh < shards; sh++) {
        uint64_t cursor = 0;
        bool done = false;
        while (!done) {
            assert_true(store_snapshot_cursor_valid(h->snap, sh, cursor));
            uint8_t buf[SMALL_CHUNK];
            size_t len = 0;
            assert_int_equal(store_snapshot_shard_encode(h->snap, sh, &cursor, buf, sizeof buf, &len, &done), 0);
            for (size_t off = 0; off < len;) {
                size_t klen = (size_t)buf[off] | (size_t)buf[off + 1] << 8;
                size_t vlen = (size_t)buf[off + 2] | (size_t)buf[off + 3] << 8 | (size_t)buf[off + 4] << 16 |
                              (size_t)buf[off + 5] << 24;
                record_check(&h->m, seen, buf + off + RECORD_HEADER, klen, buf + off + RECORD_HEADER + klen, vlen);
                off += RECORD_HEADER + klen + vlen;
                records++;
            }
            assert_int_equal(store_restore_chunk(twin, buf, len), 0);
        }
    }
    assert_int_equal(records, model_count(&h->m));
    store_digest(twin, &got);
    assert_true(lthash_equal(&got, &want));
    store_destroy(twin);
}

/* The live store equals the model. */
static void live_check(struct store *s, const struct model *m)
{
    assert_int_equal(store_count(s), model_count(m));
    struct lthash want;
    struct lthash got;
    model_digest(m, &want);
    store_digest(s, &got);
    assert_true(lthash_equal(&got, &want));
}

static void release_at(struct held *live, unsigned *nlive, unsigned at)
{
    store_snapshot_release(live[at].snap);
    live[at] = live[*nlive - 1];
    (*nlive)--;
}

/* One seeded run of random writes with up to MODEL_LIVE_MAX snapshots live. */
static void model_run(uint64_t seed, uint32_t shards)
{
    struct store_config cfg = {shards, 4}; /* tiny tables: many resizes */
    struct store *s = NULL;
    assert_int_equal(store_create(&cfg, &s), 0);
    struct store *spare = NULL; /* a twin to swap with: its contents are the empty model */
    assert_int_equal(store_create_like(s, &spare), 0);
    static struct model m;
    static struct held live[MODEL_LIVE_MAX];
    memset(&m, 0, sizeof m);
    unsigned nlive = 0;
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 1;

    const uint64_t steps = test_iters(MODEL_STEPS, 750);
    for (unsigned step = 0; step < steps; step++) {
        uint64_t r = rng_next(&rng);
        uint32_t id = (uint32_t)(r % MODEL_KEYS);
        /* Early on grow the key set; later mostly churn within it. */
        unsigned op = (unsigned)((r >> 20) % 100);
        char key[32];
        size_t klen = key_of(key, id);
        if (op < 55) {
            uint8_t vlen = (uint8_t)((r >> 32) % (MODEL_VALUE_MAX + 1));
            for (unsigned j = 0; j < vlen; j++) {
                m.val[id][j] = (uint8_t)(r >> (j % 8)) ^ (uint8_t)step;
            }
            m.vlen[id] = vlen;
            m.present[id] = true;
            assert_int_equal(store_put(s, key, klen, m.val[id], vlen), 0);
        } else if (op < 85) {
            int rc = store_del(s, key, klen);
            assert_int_equal(rc, m.present[id] ? 0 : BFTKV_E_NOT_FOUND);
            m.present[id] = false;
        } else if (op < 93) {
            if (nlive == MODEL_LIVE_MAX) {
                release_at(live, &nlive, (unsigned)((r >> 40) % nlive));
            }
            assert_int_equal(store_snapshot_take(s, &live[nlive].snap), 0);
            live[nlive].m = m;
            nlive++;
        } else if (op < 97) {
            if (nlive > 0) {
                unsigned at = (unsigned)((r >> 40) % nlive);
                snapshot_check(&live[at]);
                release_at(live, &nlive, at);
            }
        } else if (op < 99) {
            /* Swap contents with the empty twin and back: the snapshots move with
             * the tables and come back, unchanged. */
            assert_int_equal(store_swap(s, spare), 0);
            assert_int_equal(store_count(s), 0);
            assert_int_equal(store_swap(s, spare), 0);
        } else if ((r >> 50) % 8 == 0) {
            store_clear(s);
            memset(&m, 0, sizeof m);
        }
        if (step % 500 == 499) {
            live_check(s, &m);
            for (unsigned k = 0; k < nlive; k++) {
                snapshot_check(&live[k]);
            }
            assert_int_equal(store_test_verify(s, NULL), 0);
        }
    }
    for (unsigned k = 0; k < nlive; k++) {
        snapshot_check(&live[k]);
    }
    /* Release the rest in random order; after the last nothing is kept. */
    while (nlive > 0) {
        release_at(live, &nlive, (unsigned)(rng_next(&rng) % nlive));
        for (unsigned k = 0; k < nlive; k++) {
            snapshot_check(&live[k]);
        }
        assert_int_equal(store_test_verify(s, NULL), 0);
    }
    struct store_test_stats st;
    assert_int_equal(store_test_verify(s, &st), 0);
    assert_int_equal(st.live_snapshots, 0);
    assert_int_equal(st.undo_records + st.retired_entries + st.frozen_layouts, 0);
    live_check(s, &m);
    store_destroy(spare);
    store_destroy(s);
}

static void test_many_snapshots_one_shard(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        model_run(seed, 1);
    }
}

static void test_many_snapshots_many_shards(void **state)
{
    (void)state;
    for (uint64_t seed = 11; seed <= 13; seed++) {
        model_run(seed, 8);
    }
}

/* Snapshots whose store was destroyed, released newest first: the store stays
 * allocated until the last one goes, and each reads its own contents to the end. */
static void test_destroyed_store_released_out_of_order(void **state)
{
    (void)state;
    struct store_config cfg = {2, 4};
    struct store *s = NULL;
    assert_int_equal(store_create(&cfg, &s), 0);
    static struct held h[3];
    static struct model m;
    memset(&m, 0, sizeof m);
    for (unsigned k = 0; k < 3; k++) {
        for (uint32_t id = 0; id < 50; id++) {
            char key[32];
            size_t klen = key_of(key, (id * 7 + k) % MODEL_KEYS);
            uint32_t kid = (id * 7 + k) % MODEL_KEYS;
            m.vlen[kid] = 3;
            memcpy(m.val[kid], k == 0 ? "aaa" : k == 1 ? "bbb" : "ccc", 3);
            m.present[kid] = true;
            assert_int_equal(store_put(s, key, klen, m.val[kid], 3), 0);
        }
        assert_int_equal(store_snapshot_take(s, &h[k].snap), 0);
        h[k].m = m;
    }
    store_destroy(s);
    store_snapshot_release(h[2].snap);
    snapshot_check(&h[0]);
    store_snapshot_release(h[0].snap);
    snapshot_check(&h[1]);
    store_snapshot_release(h[1].snap); /* frees the store */
}

/* ---- The cost of a write after a snapshot -------------------------------------------- */

static uint64_t allocs_since(const struct store_test_allocs *before, uint64_t *bytes)
{
    struct store_test_allocs now;
    store_test_allocs_get(&now);
    *bytes = now.bytes - before->bytes;
    return now.calls - before->calls;
}

/* Fill one shard with n keys and return it; its table then holds 32K slots. */
static struct store *filled_store(uint32_t n)
{
    struct store_config cfg = {1, 32768};
    struct store *s = NULL;
    assert_int_equal(store_create(&cfg, &s), 0);
    for (uint32_t i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "cost-%u", i);
        assert_int_equal(store_put(s, key, (size_t)klen, "v", 1), 0);
    }
    return s;
}

/* After a snapshot, an overwrite, a delete and an insert each allocate a bounded
 * few bytes (the new entry and one slot's record), not a copy of the table, and
 * keep exactly the one entry they supersede: nothing else is touched. */
static void test_write_after_snapshot_is_o1(void **state)
{
    (void)state;
    const uint32_t n = 20000; /* below 3/4 of 32K: no resize */
    struct store *s = filled_store(n);
    struct store_snapshot *snap = NULL;
    struct store_test_allocs before;
    uint64_t bytes = 0;

    store_test_allocs_get(&before);
    assert_int_equal(store_snapshot_take(s, &snap), 0);
    assert_int_equal(allocs_since(&before, &bytes), 1); /* the snapshot alone */
    assert_true(bytes < 1024u);

    store_test_allocs_get(&before);
    assert_int_equal(store_put(s, "cost-7", 6, "new", 3), 0);
    uint64_t calls = allocs_since(&before, &bytes);
    /* The entry, room for the 2 KiB accumulator, the undo map's first array (16
     * records of 16 bytes) and a block for superseded entries; the table is 32K
     * slots of 16 bytes (512 KiB). */
    assert_true(calls <= 4);
    assert_true(bytes < 4096u);

    /* A delete records every slot its backward shift writes: the undo array
     * may double a few times for a long run (the hash key, and so the run, is
     * random per store; under 4 KiB up to 63 writes), still nothing like the
     * table. */
    store_test_allocs_get(&before);
    assert_int_equal(store_del(s, "cost-8", 6), 0);
    calls = allocs_since(&before, &bytes);
    assert_true(bytes < 4096u);

    store_test_allocs_get(&before);
    assert_int_equal(store_put(s, "cost-new", 8, "x", 1), 0);
    calls = allocs_since(&before, &bytes);
    assert_true(bytes < 1024u);

    struct store_test_stats st;
    assert_int_equal(store_test_verify(s, &st), 0);
    assert_int_equal(st.live_snapshots, 1);
    assert_int_equal(st.retired_entries, 2); /* the overwritten and the deleted entry */
    assert_true(st.undo_records >= 3 && st.undo_records < 64); /* the slots changed */
    assert_int_equal(st.frozen_layouts, 0);

    /* A second write to the same key records nothing more and keeps nothing: the
     * entry it supersedes was written after the snapshot. */
    assert_int_equal(store_put(s, "cost-7", 6, "newer", 5), 0);
    struct store_test_stats st2;
    assert_int_equal(store_test_verify(s, &st2), 0);
    assert_int_equal(st2.retired_entries, st.retired_entries);
    assert_int_equal(st2.undo_records, st.undo_records);

    /* Releasing the only snapshot frees what it kept. */
    store_snapshot_release(snap);
    assert_int_equal(store_test_verify(s, &st), 0);
    assert_int_equal(st.retired_entries + st.undo_records + st.live_snapshots, 0);
    store_destroy(s);
}

/* Without any snapshot a write records and keeps nothing. */
static void test_write_without_snapshot_keeps_nothing(void **state)
{
    (void)state;
    struct store *s = filled_store(1000);
    struct store_snapshot *snap = NULL;
    assert_int_equal(store_snapshot_take(s, &snap), 0);
    store_snapshot_release(snap);
    assert_int_equal(store_put(s, "cost-1", 6, "w", 1), 0);
    assert_int_equal(store_del(s, "cost-2", 6), 0);
    struct store_test_stats st;
    assert_int_equal(store_test_verify(s, &st), 0);
    assert_int_equal(st.retired_entries + st.undo_records + st.frozen_layouts, 0);
    store_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_snapshots_one_shard),
        cmocka_unit_test(test_many_snapshots_many_shards),
        cmocka_unit_test(test_destroyed_store_released_out_of_order),
        cmocka_unit_test(test_write_after_snapshot_is_o1),
        cmocka_unit_test(test_write_without_snapshot_keeps_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
