/* Fuzzing state-transfer chunks as the receiver meets them (engine/wire_catchup.c,
 * store/store_snapshot.c; engine/statetransfer.c applies them).
 *
 * The input is a chunk's data, behind one control byte that picks the part
 * (store records or reply-cache entries) and the positions the chunk spans,
 * and one that moves its start. It is wrapped in a STATE message and decoded
 * like any datagram, and checked against what the receiver relies on:
 *   - store records: store_restore_chunk() accepts exactly what the decoder
 *     accepts (it validates again: the bytes came from another replica); what
 *     it accepts leaves the store as the same puts one by one would (the same
 *     state digest and count); what it refuses changes nothing;
 *   - reply-cache entries: wire_rc_entry_next() walks exactly the data, indexes
 *     increasing inside the chunk's span, a result carried iff short and then
 *     matching its digest; the entries re-encode (wire_rc_entry_put) to the
 *     same bytes; and they are applied to a reply cache the way
 *     statetransfer.c does (an index beyond the cache refuses the chunk).
 * tests/fuzz/fuzz.h says how it is built and run.
 */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/wire.h"
#include "store/store.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "chunk";

#define FUZZ_GROUP 2u
#define FUZZ_N 4u
#define FUZZ_SHARDS 4u
#define FUZZ_RC_ENTRIES 256u /* reply-cache entries of the receiver: clients * lanes */
#define FUZZ_CTRL_RCACHE 0x01u /* control byte: part RCACHE (else STORE) */
#define FUZZ_CTRL_ENDS 0x02u   /* the chunk ends its part */

static const struct wire_limits fuzz_lim = {.group = FUZZ_GROUP, .n = FUZZ_N, .clients_max = 16};

/* One reply-cache entry as the receiver keeps it (engine/replica_internal.h). */
struct rc_model {
    uint64_t timestamp;
    int16_t status;
    uint8_t op;
    uint32_t result_len;
    bool cached;
    uint8_t digest[BFTKV_DIGEST_SIZE];
    uint8_t result[WIRE_RC_RESULT_MAX];
};

static uint8_t *fuzz_msg; /* one maximal datagram */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0);
    fuzz_msg = malloc(BFTKV_DATAGRAM_MAX);
    FUZZ_CHECK(fuzz_msg != NULL);
    return 0;
}

static struct store *store_new(void)
{
    struct store_config sc = {.shards = FUZZ_SHARDS, .initial_slots = 2};
    struct store *s = NULL;
    FUZZ_CHECK(store_create(&sc, &s) == 0);
    /* Not empty: a refused chunk must leave these as they are. */
    FUZZ_CHECK(store_put(s, "kept", 4, "1", 1) == 0);
    FUZZ_CHECK(store_put(s, "also", 4, "", 0) == 0);
    return s;
}

static void store_chunk_check(const uint8_t *data, size_t len, bool decoded)
{
    struct store *s = store_new(), *ref = store_new();
    uint8_t before[32], after[32], want[32];
    store_digest_bytes(s, before);
    uint64_t count = store_count(s);
    int rc = store_restore_chunk(s, data, len);
    if (rc != 0) {
        FUZZ_CHECK(rc == BFTKV_E_CORRUPT && !decoded);
        store_digest_bytes(s, after);
        FUZZ_CHECK(memcmp(before, after, sizeof before) == 0 && store_count(s) == count);
    } else {
        /* The decoder refuses an empty chunk that does not end its part; the
         * store has nothing to refuse in it. */
        FUZZ_CHECK(decoded || len == 0);
        size_t off = 0;
        while (off < len) {
            uint32_t klen = (uint32_t)data[off] | (uint32_t)data[off + 1] << 8;
            uint32_t vlen = (uint32_t)data[off + 2] | (uint32_t)data[off + 3] << 8 | (uint32_t)data[off + 4] << 16
                            | (uint32_t)data[off + 5] << 24;
            const uint8_t *key = data + off + STORE_RECORD_HEADER_SIZE;
            FUZZ_CHECK(store_put(ref, key, klen, key + klen, vlen) == 0);
            off += STORE_RECORD_HEADER_SIZE + klen + vlen;
        }
        FUZZ_CHECK(off == len);
        store_digest_bytes(s, after);
        store_digest_bytes(ref, want);
        FUZZ_CHECK(memcmp(after, want, sizeof want) == 0 && store_count(s) == store_count(ref));
    }
    store_destroy(s);
    store_destroy(ref);
}

static void rc_chunk_check(const struct wire_state *st)
{
    static struct rc_model cache[FUZZ_RC_ENTRIES];
    uint8_t *again = malloc(st->data_len > 0 ? st->data_len : 1u);
    FUZZ_CHECK(again != NULL);
    uint64_t lo = st->from.cursor;
    uint64_t hi = st->next.part == WIRE_PART_RCACHE ? st->next.cursor : (uint64_t)UINT32_MAX + 1u;
    uint32_t off = 0, prev = 0;
    size_t alen = 0;
    bool fits = true;
    struct wire_rc_entry e;
    while (wire_rc_entry_next(st, &off, &e)) {
        FUZZ_CHECK(off > prev && off <= st->data_len);
        FUZZ_CHECK(e.key >= lo && e.key < hi && e.timestamp > 0);
        FUZZ_CHECK(e.op >= WIRE_OP_PUT && e.op <= WIRE_OP_DEL && e.result_len <= BFTKV_VALUE_MAX);
        FUZZ_CHECK((e.result != NULL) == (e.result_len <= WIRE_RC_RESULT_MAX));
        if (e.result != NULL) {
            uint8_t d[BFTKV_DIGEST_SIZE];
            wire_result_digest(d, e.status, e.result, e.result_len);
            FUZZ_CHECK(memcmp(d, e.digest, sizeof d) == 0);
        }
        size_t w = wire_rc_entry_put(again + alen, st->data_len - alen, &e);
        FUZZ_CHECK(w == off - prev);
        alen += w;
        fits = fits && e.key < FUZZ_RC_ENTRIES;
        lo = (uint64_t)e.key + 1u;
        prev = off;
    }
    FUZZ_CHECK(off == st->data_len && alen == st->data_len);
    FUZZ_CHECK(alen == 0 || memcmp(again, st->data, alen) == 0);
    free(again);
    if (!fits)
        return; /* statetransfer.c: another client configuration; the chunk is refused */
    off = 0;
    while (wire_rc_entry_next(st, &off, &e)) {
        struct rc_model *m = &cache[e.key];
        m->timestamp = e.timestamp;
        m->status = e.status;
        m->op = e.op;
        m->result_len = e.result_len;
        m->cached = e.result != NULL;
        memcpy(m->digest, e.digest, BFTKV_DIGEST_SIZE);
        if (e.result != NULL && e.result_len > 0)
            memcpy(m->result, e.result, e.result_len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t ctrl = data[0], move = data[1];
    const uint8_t *chunk = data + 2;
    size_t len = size - 2;
    if (len > WIRE_STATE_DATA_MAX)
        len = WIRE_STATE_DATA_MAX;
    uint8_t digest[BFTKV_DIGEST_SIZE];
    memset(digest, 0x5A, sizeof digest);
    struct wire_state st = {.digest = digest, .kind = WIRE_STATE_CHUNK, .flags = 0, .shards = FUZZ_SHARDS,
                            .data = chunk, .data_len = (uint32_t)len};
    if (ctrl & FUZZ_CTRL_RCACHE) {
        st.from = (struct wire_state_pos){.part = WIRE_PART_RCACHE, .shard = 0, .cursor = move};
        st.next = ctrl & FUZZ_CTRL_ENDS ? (struct wire_state_pos){.part = WIRE_PART_END}
                                        : (struct wire_state_pos){.part = WIRE_PART_RCACHE, .cursor = move + 200u};
    } else {
        st.from = (struct wire_state_pos){.part = WIRE_PART_STORE, .shard = move % FUZZ_SHARDS, .cursor = move};
        st.next = ctrl & FUZZ_CTRL_ENDS || move % FUZZ_SHARDS == FUZZ_SHARDS - 1u
                      ? (struct wire_state_pos){.part = WIRE_PART_RCACHE}
                      : (struct wire_state_pos){.part = WIRE_PART_STORE, .shard = move % FUZZ_SHARDS + 1u};
    }
    size_t n = wire_encode_state(fuzz_msg, BFTKV_DATAGRAM_MAX, FUZZ_GROUP, 1, FUZZ_N, 0, 64, &st, NULL);
    FUZZ_CHECK(n > 0);
    struct wire_msg m;
    size_t used = 0;
    bool decoded = wire_decode(fuzz_msg, n, &fuzz_lim, &m, &used, NULL) == 0;
    FUZZ_CHECK(!decoded || (used == n && m.h.type == WIRE_STATE && m.u.state.data_len == len));
    if (st.from.part == WIRE_PART_STORE) {
        store_chunk_check(chunk, len, decoded);
    } else if (decoded) {
        rc_chunk_check(&m.u.state);
    }
    return 0;
}

/* ---- Seeds ---------------------------------------------------------------------------- */

static size_t rc_put(uint8_t *buf, size_t cap, uint32_t index, uint64_t ts, uint8_t op, const char *result,
                     uint32_t result_len)
{
    uint8_t d[BFTKV_DIGEST_SIZE];
    wire_result_digest(d, 0, result, result != NULL ? result_len : 0u);
    struct wire_rc_entry e = {.key = index, .timestamp = ts, .status = 0, .op = op, .result_len = result_len,
                              .digest = d, .result = (const uint8_t *)result};
    size_t n = wire_rc_entry_put(buf, cap, &e);
    FUZZ_CHECK(n > 0);
    return n;
}

void fuzz_seeds(fuzz_seed_add_fn add)
{
    /* Store records from a real snapshot encoding. */
    struct store *s = NULL;
    struct store_config sc = {.shards = 1, .initial_slots = 0};
    FUZZ_CHECK(store_create(&sc, &s) == 0);
    FUZZ_CHECK(store_put(s, "alpha", 5, "one", 3) == 0);
    FUZZ_CHECK(store_put(s, "b", 1, "", 0) == 0);
    FUZZ_CHECK(store_put(s, "gamma", 5, "a somewhat longer value", 23) == 0);
    struct store_snapshot *snap = NULL;
    FUZZ_CHECK(store_snapshot_take(s, &snap) == 0);
    uint8_t b[2048];
    uint64_t cursor = 0;
    size_t len = 0;
    bool done = false;
    b[0] = FUZZ_CTRL_ENDS;
    b[1] = 0;
    FUZZ_CHECK(store_snapshot_shard_encode(snap, 0, &cursor, b + 2, sizeof b - 2, &len, &done) == 0 && done);
    add(b, len + 2);
    b[0] = 0;
    b[1] = 1;
    add(b, len + 2);
    store_snapshot_release(snap);
    store_destroy(s);

    /* Reply-cache entries: an empty result, a short one, one carried by digest only. */
    b[0] = FUZZ_CTRL_RCACHE | FUZZ_CTRL_ENDS;
    b[1] = 3;
    len = 2;
    len += rc_put(b + len, sizeof b - len, 3, 1000, WIRE_OP_PUT, "", 0);
    len += rc_put(b + len, sizeof b - len, 17, 2000, WIRE_OP_GET, "hello", 5);
    len += rc_put(b + len, sizeof b - len, 190, 3000, WIRE_OP_GET, NULL, 100);
    add(b, len);
    b[0] = FUZZ_CTRL_RCACHE;
    add(b, len);
}
