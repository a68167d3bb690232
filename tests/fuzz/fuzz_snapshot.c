/* Fuzzing snapshot restore (store/store_snapshot.c): a store's state served
 * chunk by chunk from positions a peer names, and rebuilt from the chunks
 * elsewhere, as state transfer does (engine/statetransfer_serve.c serves,
 * engine/statetransfer.c restores).
 *
 * The input is a program: puts and deletes of short keys on a store with a
 * shard count and table size the first byte picks, snapshots taken in between,
 * and probes: (shard, cursor) positions as an untrusted FETCH would name them.
 * Checked:
 *   - a snapshot keeps the state of its instant (digest, count) whatever is
 *     written after it;
 *   - a probed position is served only if store_snapshot_cursor_valid() says so
 *     (the encoder asserts on any other), and then gives whole records that
 *     restore, and a cursor that moved forward and is valid again;
 *   - every shard encoded from cursor 0 with a chunk size the input picks, each
 *     chunk restored (store_restore_chunk) into a store of another shard count,
 *     rebuilds the snapshot: the same state digest and count; each call makes
 *     progress and the walk ends.
 * tests/fuzz/fuzz.h says how it is built and run.
 */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "store/store.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "snapshot";

#define FUZZ_OPS_MAX 1024u
#define FUZZ_PROBES_MAX 16u
#define FUZZ_KEY_MAX 16u
#define FUZZ_RECORD_MAX (STORE_RECORD_HEADER_SIZE + FUZZ_KEY_MAX + 255u)
#define FUZZ_CHUNK_MAX 8192u

/* An op byte modulo OP_KINDS; puts are the most frequent, a snapshot (which
 * sums every shard's digest) the rarest. */
enum fuzz_op { OP_PUT = 0, OP_PUT2, OP_DEL, OP_SNAPSHOT, OP_PROBE, OP_PUT3, OP_PUT4, OP_DEL2, OP_KINDS };

struct probe {
    uint32_t shard;
    uint64_t cursor;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0);
    return 0;
}

/* A chunk must restore into a fresh store. */
static void chunk_restores(const uint8_t *buf, size_t len)
{
    struct store *t = NULL;
    FUZZ_CHECK(store_create(&(struct store_config){.shards = 1, .initial_slots = 0}, &t) == 0);
    FUZZ_CHECK(store_restore_chunk(t, buf, len) == 0);
    store_destroy(t);
}

static void probe_serve(const struct store_snapshot *snap, const struct probe *p, uint8_t *buf, size_t cap)
{
    if (!store_snapshot_cursor_valid(snap, p->shard, p->cursor))
        return;
    uint64_t cursor = p->cursor;
    size_t len = SIZE_MAX;
    bool done = false;
    FUZZ_CHECK(store_snapshot_shard_encode(snap, p->shard, &cursor, buf, cap, &len, &done) == 0);
    FUZZ_CHECK(len <= cap && cursor >= p->cursor);
    FUZZ_CHECK(store_snapshot_cursor_valid(snap, p->shard, cursor));
    chunk_restores(buf, len);
}

/* Every shard of snap, cap bytes a chunk, restored into a store of other_shards. */
static void transfer_check(const struct store_snapshot *snap, uint32_t other_shards, uint8_t *buf, size_t cap)
{
    struct store *dst = NULL;
    FUZZ_CHECK(store_create(&(struct store_config){.shards = other_shards, .initial_slots = 0}, &dst) == 0);
    for (uint32_t sh = 0; sh < store_snapshot_shard_count(snap); sh++) {
        uint64_t cursor = 0;
        bool done = false;
        for (uint32_t calls = 0; !done; calls++) {
            FUZZ_CHECK(calls <= FUZZ_OPS_MAX + 1u); /* each chunk holds a record at least, or ends */
            uint64_t before = cursor;
            size_t len = 0;
            FUZZ_CHECK(store_snapshot_shard_encode(snap, sh, &cursor, buf, cap, &len, &done) == 0);
            FUZZ_CHECK(done || (len > 0 && cursor > before));
            FUZZ_CHECK(store_restore_chunk(dst, buf, len) == 0);
        }
    }
    struct lthash a, b;
    store_snapshot_digest(snap, &a);
    store_digest(dst, &b);
    FUZZ_CHECK(lthash_equal(&a, &b));
    FUZZ_CHECK(store_count(dst) == store_snapshot_count(snap));
    store_destroy(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t shards = 1u << (data[0] % 7u);           /* 1..64 */
    uint32_t slots = 1u << ((data[0] >> 3) % 5u);     /* 1..16 per shard: rehashes early */
    size_t cap = FUZZ_RECORD_MAX + (size_t)data[1] * 29u; /* 531..7926 bytes a chunk */
    struct store *s = NULL;
    FUZZ_CHECK(store_create(&(struct store_config){.shards = shards, .initial_slots = slots}, &s) == 0);
    struct store_snapshot *snap = NULL;
    struct lthash snap_digest;
    uint64_t snap_count = 0;
    struct probe probes[FUZZ_PROBES_MAX];
    uint32_t nprobes = 0;
    size_t pos = 2;
    for (uint32_t ops = 0; ops < FUZZ_OPS_MAX && pos < size; ops++) {
        uint8_t op = data[pos++] % OP_KINDS;
        if (op == OP_SNAPSHOT) {
            store_snapshot_release(snap);
            FUZZ_CHECK(store_snapshot_take(s, &snap) == 0);
            store_digest(s, &snap_digest);
            snap_count = store_count(s);
            continue;
        }
        if (op == OP_PROBE) {
            if (size - pos < 3)
                break;
            if (nprobes < FUZZ_PROBES_MAX)
                probes[nprobes++] = (struct probe){.shard = data[pos] % (shards + 1u),
                                                   .cursor = (uint64_t)data[pos + 1] | (uint64_t)data[pos + 2] << 8};
            pos += 3;
            continue;
        }
        if (size - pos < 2)
            break;
        bool del = op == OP_DEL || op == OP_DEL2;
        size_t klen = 1u + data[pos] % FUZZ_KEY_MAX, vlen = del ? 0u : data[pos + 1];
        pos += 2;
        if (size - pos < klen + vlen)
            break;
        const uint8_t *key = data + pos;
        if (del) {
            int rc = store_del(s, key, klen);
            FUZZ_CHECK(rc == 0 || rc == BFTKV_E_NOT_FOUND);
        } else {
            FUZZ_CHECK(store_put(s, key, klen, key + klen, vlen) == 0);
        }
        pos += klen + vlen;
    }
    if (snap == NULL) {
        FUZZ_CHECK(store_snapshot_take(s, &snap) == 0);
        store_digest(s, &snap_digest);
        snap_count = store_count(s);
    }
    struct lthash now;
    store_snapshot_digest(snap, &now);
    FUZZ_CHECK(lthash_equal(&now, &snap_digest) && store_snapshot_count(snap) == snap_count);
    FUZZ_CHECK(store_snapshot_shard_count(snap) == shards);

    uint8_t *buf = malloc(FUZZ_CHUNK_MAX);
    FUZZ_CHECK(buf != NULL);
    for (uint32_t i = 0; i < nprobes; i++)
        probe_serve(snap, &probes[i], buf, cap);
    transfer_check(snap, shards == 1u ? 8u : shards / 2u, buf, cap);
    free(buf);
    store_snapshot_release(snap);
    store_destroy(s);
    return 0;
}

/* ---- Seeds ---------------------------------------------------------------------------- */

void fuzz_seeds(fuzz_seed_add_fn add)
{
    static const uint8_t seed_small[] = {
        0x0A, 3,                                   /* 4 shards, 2 slots, cap 618 */
        OP_PUT, 1, 2, 'k', '1', 'v', '1',          /* put "k1" = "v1" (klen 1 + 1, vlen 2) */
        OP_PUT2, 0, 1, 'a', 'b',                   /* put "a" = "b" */
        OP_SNAPSHOT,
        OP_PUT, 0, 0, 'c',                         /* put "c" = "" after the snapshot */
        OP_DEL, 0, 0, 'a',                         /* del "a" after the snapshot */
        OP_PROBE, 1, 0, 0, OP_PROBE, 3, 2, 0, OP_PROBE, 4, 0xFF, 0xFF, /* (shard, cursor lo, hi) */
    };
    add(seed_small, sizeof seed_small);
    /* Many keys on one shard, no snapshot op: taken at the end. */
    uint8_t b[2048];
    size_t n = 0;
    b[n++] = 0x00; /* 1 shard, 1 slot */
    b[n++] = 0;    /* the smallest chunks */
    for (uint8_t i = 0; i < 60 && n + 8 < sizeof b; i++) {
        b[n++] = OP_PUT;
        b[n++] = 1;  /* klen 2 */
        b[n++] = 3;  /* vlen 3 */
        b[n++] = 'k';
        b[n++] = i;
        b[n++] = 'v';
        b[n++] = i;
        b[n++] = (uint8_t)(i * 7u);
    }
    b[n++] = OP_PROBE;
    b[n++] = 0;
    b[n++] = 5;
    b[n++] = 0;
    add(b, n);
}
