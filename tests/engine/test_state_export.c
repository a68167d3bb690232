/* Unit tests of pbft_replica_state_chunk (engine/statetransfer_serve.c): the state
 * of a kept checkpoint, chunk by chunk, for a durable replica's snapshot file
 * (docs/design.md §9). After a loaded run on the replica harness:
 *
 *  - the chunks of the stable checkpoint h, restored into an empty store like
 *    the replica's, give exactly the store digest of its snapshot of h, and the
 *    reply-cache chunks hold exactly the entries its copy of the cache has;
 *  - the state digest is the one its CHECKPOINT for h signed;
 *  - a checkpoint it keeps no state of is BFTKV_E_NOT_FOUND, a position it did
 *    not hand out BFTKV_E_INVAL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "engine/replica_internal.h"
#include "replica_harness.h"

#define MS RH_MS

static struct rh_cluster C;

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(rh_fini(&C), 0);
    return 0;
}

static void test_chunks_restore_the_checkpoint(void **state)
{
    (void)state;
    struct rh_tune t = {.k = 16, .l = 32, .w = 4};
    rh_init_loaded(&C, 4, 1, 8, 11, &t);
    rh_workload(&C, 1500, 400, 24);
    assert_true(rh_advance(&C, 60000 * MS, MS, rh_workload_done));
    const struct pbft_replica *r = C.r[1];
    uint64_t h = r->low;
    assert_true(h >= 16);
    const struct replica_snap *snap = &r->cu.snaps[(h / r->cfg.checkpoint_interval) % r->cu.nsnaps];
    assert_int_equal(snap->seq, h);

    struct store *restored = NULL;
    assert_int_equal(store_create_like(C.store[1], &restored), 0);
    uint8_t *data = malloc(WIRE_STATE_DATA_MAX);
    assert_non_null(data);
    struct wire_state_pos pos = {.part = WIRE_PART_STORE, .shard = 0, .cursor = 0};
    struct wire_state st;
    uint64_t chunks = 0, rc_entries = 0;
    for (;;) {
        assert_int_equal(pbft_replica_state_chunk(r, h, &pos, data, &st), 0);
        assert_int_equal(st.kind, WIRE_STATE_CHUNK);
        assert_memory_equal(st.digest, snap->digest, BFTKV_DIGEST_SIZE);
        if (st.from.part == WIRE_PART_STORE) {
            assert_int_equal(store_restore_chunk(restored, st.data, st.data_len), 0);
        } else {
            assert_int_equal(st.from.part, WIRE_PART_RCACHE);
            uint32_t off = 0;
            struct wire_rc_entry e;
            while (wire_rc_entry_next(&st, &off, &e) == 1)
                rc_entries++;
        }
        chunks++;
        if (st.flags & WIRE_STATE_LAST)
            break;
        pos = st.next;
        assert_true(chunks < 100000);
    }
    assert_int_equal(st.next.part, WIRE_PART_END);
    /* The store part is the snapshot's store, to the digest. */
    struct lthash want;
    store_snapshot_digest(snap->snap, &want);
    uint8_t want_bytes[LTHASH_DIGEST_SIZE], got[LTHASH_DIGEST_SIZE];
    lthash_digest(&want, want_bytes);
    store_digest_bytes(restored, got);
    assert_memory_equal(got, want_bytes, LTHASH_DIGEST_SIZE);
    assert_int_equal(store_count(restored), store_snapshot_count(snap->snap));
    assert_true(store_count(restored) > 0);
    /* The reply-cache part holds every entry the copy of the cache holds. */
    uint64_t held = 0;
    for (uint32_t i = 0; i < r->rc_entries; i++)
        held += snap->rc[i].timestamp != 0;
    assert_int_equal(rc_entries, held);
    assert_true(held > 0);
    /* The digest is the one its CHECKPOINT for h carries. */
    const struct replica_ckpt *ck = &r->ckpts[(h / r->cfg.checkpoint_interval) % r->ckpt_count];
    assert_int_equal(ck->seq, h);
    assert_memory_equal(ck->own_digest, snap->digest, BFTKV_DIGEST_SIZE);

    /* Not kept, and not a position it handed out. */
    assert_int_equal(pbft_replica_state_chunk(r, h + 1, &pos, data, &st), BFTKV_E_NOT_FOUND);
    assert_int_equal(pbft_replica_state_chunk(r, 0, &pos, data, &st), BFTKV_E_NOT_FOUND);
    struct wire_state_pos bad = {.part = WIRE_PART_STORE, .shard = 1u << 20, .cursor = 0};
    assert_int_equal(pbft_replica_state_chunk(r, h, &bad, data, &st), BFTKV_E_INVAL);
    free(data);
    store_destroy(restored);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_chunks_restore_the_checkpoint, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
