/* Unit tests of a durable replica's recovery (engine/recover.c; engine/pbft.h,
 * "Recovery" and "A snapshot"), on the replica harness, whose disks keep every
 * record and the two newest snapshots (replica_harness_disk.c):
 *
 *  - A replica rebuilt from its records alone, from the group's first batch,
 *    has executed exactly what it had, to the same store digest and the same
 *    checkpoint; then it asks for the next view (a VIEW-CHANGE for the view after
 *    the highest it took part in, whose record comes first).
 *  - The same from its newest snapshot and the records.
 *  - A snapshot with one byte of its state changed is refused (CORRUPT), and so
 *    is one whose proof lost a signature; a replay then still works from the
 *    records alone.
 *  - A record that does not decode is CORRUPT.
 *  - A replica restarted with empty memory on a wiped disk records that it is
 *    unsure before anything else; rebuilt from those records before anyone
 *    vouched for it, it comes back unsure (what it voted before is in none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "engine/pbft.h"
#include "engine/replica_internal.h"
#include "persist_check.h"
#include "replica_harness.h"

#define MS RH_MS

static struct rh_cluster C;

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0);
    return 0;
}

/* A loaded durable group of 4 whose checkpoints moved (K = 16). */
static void loaded(void)
{
    struct rh_tune t = {.k = 16, .l = 32, .w = 4, .durable = true};
    rh_init_loaded(&C, 4, 1, 8, 21, &t);
    rh_workload(&C, 1500, 300, 24);
    assert_true(rh_advance(&C, 60000 * MS, MS, rh_workload_done));
    assert_true(C.r[1]->low >= 32);
}

struct fresh {
    struct store *store;
    struct pbft_replica *r;
    struct pbft_out out;
};

/* Replica i again, empty, with its config: what a restart creates. */
static void fresh_open(struct fresh *f, uint16_t i)
{
    assert_int_equal(store_create_like(C.store[i], &f->store), 0);
    assert_int_equal(pbft_replica_create(&C.cfg[i], &C.rauth[i], f->store, &f->r), 0);
    assert_int_equal(pbft_out_init(&f->out, PBFT_OUT_MIN_BYTES * 4u, PBFT_OUT_MIN_MSGS), 0);
}

static void fresh_close(struct fresh *f)
{
    pbft_replica_destroy(f->r);
    store_destroy(f->store);
    pbft_out_free(&f->out);
}

static int feed(void *arg, uint16_t kind, const uint8_t *rec, size_t len)
{
    struct fresh *f = arg;
    return pbft_replica_recover_record(f->r, kind, rec, len, &f->out);
}


/* f rebuilt what replica i has: execution, store, stable checkpoint; then done
 * asks for a view above every one i took part in. */
static void same_as(struct fresh *f, uint16_t i)
{
    assert_int_equal(f->r->last_executed, C.r[i]->last_executed);
    assert_int_equal(f->r->low, C.r[i]->low);
    uint8_t a[LTHASH_DIGEST_SIZE], b[LTHASH_DIGEST_SIZE];
    store_digest_bytes(f->store, a);
    store_digest_bytes(C.store[i], b);
    assert_memory_equal(a, b, sizeof a);
    pbft_out_reset(&f->out);
    pbft_replica_recover_done(f->r, C.now_ns, &f->out);
    assert_true(pbft_replica_in_viewchange(f->r));
    assert_int_equal(pbft_replica_view(f->r), pbft_replica_view(C.r[i]) + 1u);
    assert_int_equal(pbft_replica_stats(f->r)->holds_state, 1);
    /* Its VIEW-CHANGE's record, then the VIEW-CHANGE. */
    bool record = false, sent = false;
    for (uint32_t k = 0; k < f->out.nmsgs; k++) {
        const struct pbft_out_msg *om = &f->out.msgs[k];
        if (om->dest_kind == PBFT_DEST_PERSIST && om->dest_id == PBFT_PERSIST_VIEW_CHANGE)
            record = !sent;
        if (om->dest_kind == PBFT_DEST_ALL_REPLICAS) {
            struct wire_msg m;
            rh_decode(&C, pbft_out_bytes(&f->out, om), om->len, &m);
            sent = sent || m.h.type == WIRE_VIEW_CHANGE;
        }
    }
    assert_true(record && sent);
}

static void test_from_records(void **state)
{
    (void)state;
    loaded();
    struct fresh f;
    fresh_open(&f, 1);
    assert_int_equal(persist_disk_replay(C.disk[1], feed, &f), 0);
    const struct pbft_recovery_stats *rs = pbft_replica_recovery_stats(f.r);
    assert_int_equal(rs->executed, C.r[1]->last_executed);
    assert_int_equal(rs->gap_seq, 0);
    assert_int_equal(rs->snapshot_seq, 0);
    assert_true(rs->checkpoints >= 2);
    same_as(&f, 1);
    fresh_close(&f);
}

static void test_from_snapshot(void **state)
{
    (void)state;
    loaded();
    uint64_t snap = persist_disk_snapshot_seq(C.disk[2]);
    assert_true(snap >= 16 && snap <= C.r[2]->low);
    struct fresh f;
    fresh_open(&f, 2);
    assert_int_equal(persist_disk_snapshot_restore(C.disk[2], f.r), 0);
    assert_int_equal(f.r->last_executed, snap);
    assert_int_equal(persist_disk_replay(C.disk[2], feed, &f), 0);
    const struct pbft_recovery_stats *rs = pbft_replica_recovery_stats(f.r);
    assert_int_equal(rs->snapshot_seq, snap);
    assert_int_equal(rs->executed, C.r[2]->last_executed - snap); /* only what follows it */
    same_as(&f, 2);
    fresh_close(&f);
}

static void test_corrupt_snapshot_refused(void **state)
{
    (void)state;
    loaded();
    uint64_t snap = persist_disk_snapshot_seq(C.disk[3]);
    assert_true(snap >= 16);
    /* The record of that checkpoint and its first chunk, taken again here. */
    const struct pbft_replica *r = C.r[3];
    uint8_t *data = malloc(WIRE_STATE_DATA_MAX);
    assert_non_null(data);
    struct wire_state_pos pos = {.part = WIRE_PART_STORE, .shard = 0, .cursor = 0};
    struct wire_state st;
    assert_int_equal(pbft_replica_state_chunk(r, r->low, &pos, data, &st), 0);
    const struct replica_ckpt *ck = NULL;
    for (uint32_t i = 0; i < r->ckpt_count; i++)
        if (r->ckpts[i].seq == r->low)
            ck = &r->ckpts[i];
    assert_non_null(ck);
    size_t rec_len = 16u + (size_t)r->cfg.n * r->ckpt_msg_len;
    uint8_t *rec = calloc(1, rec_len);
    assert_non_null(rec);
    for (int b = 0; b < 8; b++) {
        rec[b] = (uint8_t)(r->low >> (8 * b));
        rec[8 + b] = (uint8_t)(ck->bits >> (8 * b));
    }
    for (uint16_t j = 0; j < r->cfg.n; j++)
        if (ck->bits & (1ull << j))
            memcpy(rec + 16u + (size_t)j * r->ckpt_msg_len, ck->msgs + (size_t)j * r->ckpt_msg_len, r->ckpt_msg_len);
    assert_int_equal(pbft_persist_checkpoint_seq(r->cfg.n, rec, rec_len), r->low);

    /* A changed byte of the state: the digest check at the end refuses it. */
    struct fresh f;
    fresh_open(&f, 3);
    assert_int_equal(pbft_replica_recover_snapshot(f.r, rec, rec_len), 0);
    int rc = 0;
    bool changed = false;
    for (;;) {
        if (!changed && st.data_len > 8) {
            data[st.data_len - 1] ^= 0x01; /* the last byte of a value */
            changed = true;
        }
        rc = pbft_replica_recover_snapshot_chunk(f.r, &st);
        if (rc != 0 || (st.flags & WIRE_STATE_LAST))
            break;
        pos = st.next;
        assert_int_equal(pbft_replica_state_chunk(r, r->low, &pos, data, &st), 0);
    }
    assert_true(changed);
    if (rc == 0)
        rc = pbft_replica_recover_snapshot_end(f.r);
    assert_int_equal(rc, BFTKV_E_CORRUPT);
    assert_int_equal(f.r->last_executed, 0); /* nothing installed */
    /* The records alone still rebuild it. */
    assert_int_equal(persist_disk_replay(C.disk[3], feed, &f), 0);
    same_as(&f, 3);
    fresh_close(&f);

    /* A proof with too few valid signatures: refused before any chunk. */
    fresh_open(&f, 3);
    uint32_t valid = 0;
    for (uint16_t j = 0; j < r->cfg.n; j++) {
        if (!(ck->bits & (1ull << j)))
            continue;
        if (valid++ < (uint32_t)r->cfg.f + 1u) /* leave fewer than q good ones */
            rec[16u + (size_t)j * r->ckpt_msg_len + r->ckpt_msg_len - 1u] ^= 0x80; /* in the signature */
    }
    assert_int_equal(pbft_replica_recover_snapshot(f.r, rec, rec_len), BFTKV_E_CORRUPT);
    fresh_close(&f);
    free(rec);
    free(data);
}

static void test_bad_record(void **state)
{
    (void)state;
    loaded();
    struct fresh f;
    fresh_open(&f, 0);
    uint8_t junk[48] = {1, 2, 3};
    assert_int_equal(pbft_replica_recover_record(f.r, PBFT_PERSIST_PREPREPARE, junk, sizeof junk, &f.out),
                     BFTKV_E_CORRUPT);
    assert_int_equal(pbft_replica_recover_record(f.r, PBFT_PERSIST_PREPARED, junk, 47, &f.out), BFTKV_E_CORRUPT);
    assert_int_equal(pbft_replica_recover_record(f.r, 99, junk, sizeof junk, &f.out), BFTKV_E_CORRUPT);
    fresh_close(&f);
}

static void test_unsure_restart_stays_unsure(void **state)
{
    (void)state;
    loaded();
    /* Replica 3 loses its memory and its disk, and restarts empty. */
    persist_disk_free(C.disk[3]);
    C.disk[3] = NULL;
    rh_restart(&C, 3);
    assert_int_equal(rh_stats(&C, 3)->holds_state, 0);
    rh_tick(&C, C.now_ns + 1u); /* its first outbox: the HOLDS_STATE record */
    assert_true(C.disk[3] != NULL);
    assert_true(C.disk_records[PBFT_PERSIST_HOLDS_STATE] >= 1);
    struct fresh f;
    fresh_open(&f, 3);
    assert_int_equal(persist_disk_replay(C.disk[3], feed, &f), 0);
    pbft_out_reset(&f.out);
    pbft_replica_recover_done(f.r, C.now_ns, &f.out);
    assert_int_equal(pbft_replica_recovery_stats(f.r)->unsure_restart, 1);
    assert_int_equal(pbft_replica_stats(f.r)->holds_state, 0);
    fresh_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_from_records, teardown),
        cmocka_unit_test_teardown(test_from_snapshot, teardown),
        cmocka_unit_test_teardown(test_corrupt_snapshot_refused, teardown),
        cmocka_unit_test_teardown(test_bad_record, teardown),
        cmocka_unit_test_teardown(test_unsure_restart_stays_unsure, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
