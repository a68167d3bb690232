/* Fuzzing the wire decoder (engine/wire.c), the first code to touch network bytes.
 *
 * LLVMFuzzerTestOneInput() treats its input as one datagram and decodes it the
 * way a receiver does: message after message, following *consumed, iterating the
 * entries of every PRE-PREPARE it accepts and decoding the inline requests, and
 * checking the decoder's promises (accepted messages lie inside the datagram,
 * every rejection counts exactly one drop reason). A PRE-PREPARE's batch digest
 * is a wall no fuzzer climbs, so each input is decoded twice: as given, and with
 * the digest D of every PRE-PREPARE recomputed, which lets mutations reach the
 * paths behind the digest check.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt):
 *   fuzz_wire         clang + libFuzzer + ASan/UBSan, for real fuzzing runs;
 *   fuzz_wire_replay  any compiler (BFTKV_FUZZ_REPLAY): a main() that replays
 *                     corpus files or directories given as arguments, or else
 *                     built-in valid seeds and N mutations of them drawn from a
 *                     fixed-seed PRNG. It is a ctest (label unit), so every CI
 *                     run exercises the decoder; --write-seeds DIR writes the
 *                     seeds as a starting corpus for fuzz_wire.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/auth.h"
#include "engine/wire.h"

#define FUZZ_GROUP 1u
#define FUZZ_N 4u
#define FUZZ_CLIENTS 16u

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct wire_limits fuzz_lim = {.group = FUZZ_GROUP, .n = FUZZ_N, .clients_max = FUZZ_CLIENTS};

/* Replica 1 and client 3 of a group built from fixed seeds: accepted messages are
 * also run through the MAC checks (which must stay inside the message). */
static struct auth_ctx fuzz_replica, fuzz_client;

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "fuzz_wire: check failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

static uint64_t drops_total(const struct wire_drop_counters *d)
{
    uint64_t t = 0;
    for (int i = 0; i < WIRE_DROP_COUNT; i++) {
        t += d->count[i];
    }
    return t;
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

/* What an accepted message promises; touches every byte it points at. */
static void accepted_check(const struct wire_msg *m, const uint8_t *buf, size_t len, size_t consumed)
{
    FUZZ_CHECK(m->raw == buf && m->raw_len == consumed && consumed <= len);
    FUZZ_CHECK(consumed == WIRE_HEADER_SIZE + (size_t)m->h.body_len + m->h.auth_len);
    FUZZ_CHECK(m->h.auth_len == wire_auth_len(m->h.type, FUZZ_N));
    uint8_t d[32];
    wire_digest(d, m->raw, m->raw_len);
    if (m->h.type == WIRE_REPLY) {
        (void)auth_reply_check(&fuzz_client, m);
    } else if (m->h.type != WIRE_CHECKPOINT && m->h.type != WIRE_VIEW_CHANGE
               && m->h.type != WIRE_NEW_VIEW) { /* Ed25519 verify: too slow to fuzz here */
        (void)auth_authenticator_check(&fuzz_replica, m);
    }
    switch (m->h.type) {
    case WIRE_REQUEST:
        FUZZ_CHECK(m->h.sender < FUZZ_CLIENTS);
        FUZZ_CHECK(inside(m->u.request.key, m->u.request.klen, buf, consumed));
        FUZZ_CHECK(m->u.request.vlen == 0 || inside(m->u.request.value, m->u.request.vlen, buf, consumed));
        wire_request_digest(d, m);
        break;
    case WIRE_REPLY:
        FUZZ_CHECK(m->u.reply.client < FUZZ_CLIENTS);
        if (m->u.reply.result != NULL) {
            FUZZ_CHECK(inside(m->u.reply.result, m->u.reply.result_len, buf, consumed));
        }
        break;
    case WIRE_PREPREPARE: {
        uint32_t off = 0;
        uint32_t n = 0;
        struct wire_batch_entry e;
        while (wire_batch_next(m, &off, &e)) {
            n++;
            FUZZ_CHECK(inside(e.bytes, e.len, buf, consumed));
            if (e.kind == WIRE_ENTRY_INLINE) {
                struct wire_msg inner;
                size_t used = 0;
                FUZZ_CHECK(wire_decode(e.bytes, e.len, &fuzz_lim, &inner, &used, NULL) == 0);
                FUZZ_CHECK(used == e.len && inner.h.type == WIRE_REQUEST);
                FUZZ_CHECK(inner.h.sender == e.client && inner.h.seq == e.timestamp);
                (void)auth_authenticator_check(&fuzz_replica, &inner);
            } else {
                FUZZ_CHECK(e.kind == WIRE_ENTRY_DIGEST && e.len == WIRE_PP_DIGEST_ENTRY);
                FUZZ_CHECK(e.client < FUZZ_CLIENTS);
            }
        }
        FUZZ_CHECK(n == m->u.batch.count && off == m->u.batch.entries_len);
        break;
    }
    case WIRE_VIEW_CHANGE: {
        struct wire_vc_entry e;
        size_t sets = (size_t)m->u.vc.ncp * WIRE_VC_CKPT_ENTRY + ((size_t)m->u.vc.np + m->u.vc.nq) * WIRE_VC_PQ_ENTRY;
        FUZZ_CHECK(inside(m->u.vc.cp, sets, buf, consumed));
        for (uint32_t i = 0; i < m->u.vc.ncp; i++) {
            wire_vc_checkpoint(m, i, &e);
            FUZZ_CHECK(e.seq >= m->h.seq);
        }
        for (uint32_t i = 0; i < m->u.vc.np; i++) {
            wire_vc_prepared(m, i, &e);
            FUZZ_CHECK(e.seq > m->h.seq && e.view < m->h.view);
        }
        for (uint32_t i = 0; i < m->u.vc.nq; i++) {
            wire_vc_preprepared(m, i, &e);
            FUZZ_CHECK(e.seq > m->h.seq && e.view < m->h.view);
        }
        break;
    }
    case WIRE_NEW_VIEW: {
        uint16_t id;
        const uint8_t *dp;
        uint8_t xf;
        FUZZ_CHECK(inside(m->u.nv.ckpt_digest, 32, buf, consumed));
        for (uint32_t i = 0; i < m->u.nv.nvc; i++) {
            wire_nv_vc(m, i, &id, &dp);
            FUZZ_CHECK(id < FUZZ_N && inside(dp, 32, buf, consumed));
        }
        for (uint32_t i = 0; i < m->u.nv.nch; i++) {
            wire_nv_choice(m, i, &dp, &xf);
            FUZZ_CHECK((xf & ~(unsigned)WIRE_NV_NEED) == 0 && inside(dp, 32, buf, consumed));
        }
        break;
    }
    case WIRE_FETCH: /* a state FETCH, or a REQUEST-FETCH (part REQUEST) */
        FUZZ_CHECK(m->h.body_len == WIRE_FETCH_BODY && m->h.seq > 0 && inside(m->u.fetch.digest, 32, buf, consumed));
        FUZZ_CHECK(m->u.fetch.count >= 1 && m->u.fetch.count <= WIRE_FETCH_CHUNKS_MAX);
        if (m->u.fetch.pos.part == WIRE_PART_REQUEST)
            FUZZ_CHECK(m->u.fetch.count == 1 && m->u.fetch.pos.shard == 0 && m->u.fetch.pos.cursor == 0);
        else
            FUZZ_CHECK(m->u.fetch.pos.part == WIRE_PART_STORE || m->u.fetch.pos.part == WIRE_PART_RCACHE);
        break;
    default:
        FUZZ_CHECK(m->h.type == WIRE_PREPARE || m->h.type == WIRE_COMMIT || m->h.type == WIRE_CHECKPOINT);
        FUZZ_CHECK(m->h.body_len == 32);
        break;
    }
}

static void pp_digest_fix(uint8_t *buf, size_t len)
{
    if (len < WIRE_HEADER_SIZE) {
        return;
    }
    struct wire_header h;
    wire_header_read(buf, &h);
    if (h.type != WIRE_PREPREPARE || h.body_len < WIRE_PP_FIXED
        || (uint64_t)WIRE_HEADER_SIZE + h.body_len > len) {
        return;
    }
    uint8_t *b = buf + WIRE_HEADER_SIZE;
    wire_digest(b, b + WIRE_PP_FIXED, h.body_len - WIRE_PP_FIXED);
}

static void datagram_walk(uint8_t *buf, size_t len, bool fix_digests)
{
    struct wire_drop_counters drops = {0};
    size_t pos = 0;
    while (pos < len) {
        if (fix_digests) {
            pp_digest_fix(buf + pos, len - pos);
        }
        struct wire_msg m;
        size_t consumed = 0;
        uint64_t before = drops_total(&drops);
        int rc = wire_decode(buf + pos, len - pos, &fuzz_lim, &m, &consumed, &drops);
        FUZZ_CHECK(consumed <= len - pos);
        if (rc == 0) {
            FUZZ_CHECK(drops_total(&drops) == before);
            accepted_check(&m, buf + pos, len - pos, consumed);
        } else {
            FUZZ_CHECK(rc == BFTKV_E_CORRUPT);
            FUZZ_CHECK(drops_total(&drops) == before + 1);
        }
        if (consumed == 0) {
            break;
        }
        pos += consumed;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (sodium_init() < 0) {
        abort();
    }
    struct auth_keypair kp[FUZZ_N + FUZZ_CLIENTS];
    struct auth_public pub[FUZZ_N + FUZZ_CLIENTS];
    for (unsigned i = 0; i < FUZZ_N + FUZZ_CLIENTS; i++) {
        uint8_t seed[32] = {(uint8_t)i, 0xF0};
        auth_keypair_from_seed(&kp[i], seed);
        auth_public_of(&pub[i], &kp[i]);
    }
    FUZZ_CHECK(auth_init_replica(&fuzz_replica, 1, FUZZ_N, &kp[1], pub, pub + FUZZ_N, NULL, FUZZ_CLIENTS) == 0);
    FUZZ_CHECK(auth_init_client(&fuzz_client, 3, FUZZ_N, &kp[FUZZ_N + 3], pub) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Heap copies of exactly size bytes: an over-read is an ASan report. */
    uint8_t *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    datagram_walk(copy, size, false);
    if (size > 0) {
        memcpy(copy, data, size);
    }
    datagram_walk(copy, size, true);
    free(copy);
    return 0;
}

#ifdef BFTKV_FUZZ_REPLAY
/* ---- Stand-alone replay driver (no libFuzzer) ------------------------------------- */

#include <dirent.h>
#include <errno.h>
#include <sys/stat.h>

#define SEEDS_MAX 24
#define SEED_CAP 4096u

struct seed {
    uint8_t bytes[SEED_CAP];
    size_t len;
};

static struct seed seeds[SEEDS_MAX];
static int nseeds;

static size_t seed_request(uint8_t *buf, size_t cap, uint16_t client, uint8_t op, const char *key,
                           const char *value, uint8_t rflags)
{
    struct wire_request rq = {
        .client = client, .lane = 2, .timestamp = 1000u + client, .op = op, .rflags = rflags,
        .klen = (uint16_t)strlen(key), .vlen = value != NULL ? (uint32_t)strlen(value) : 0u,
        .key = (const uint8_t *)key, .value = (const uint8_t *)value,
    };
    size_t auth_off = 0;
    size_t n = wire_encode_request(buf, cap, FUZZ_GROUP, FUZZ_N, 3, &rq, &auth_off);
    FUZZ_CHECK(n > 0);
    return n;
}

static struct seed *seed_new(void)
{
    FUZZ_CHECK(nseeds < SEEDS_MAX);
    return &seeds[nseeds++];
}

static void seeds_build(void)
{
    struct seed *s;
    uint8_t d[32];
    memset(d, 0x42, sizeof d);

    s = seed_new();
    s->len = seed_request(s->bytes, SEED_CAP, 1, WIRE_OP_PUT, "key", "value", 0);
    s = seed_new();
    s->len = seed_request(s->bytes, SEED_CAP, 15, WIRE_OP_GET, "k", NULL, WIRE_REQ_READONLY);
    s = seed_new();
    s->len = seed_request(s->bytes, SEED_CAP, 0, WIRE_OP_DEL, "gone", NULL, WIRE_REQ_FULL_ALL);

    /* PRE-PREPARE: two inline requests and a digest entry; and a null batch. */
    uint8_t ents[2048];
    uint8_t req[512];
    size_t off = 0;
    size_t rl = seed_request(req, sizeof req, 4, WIRE_OP_PUT, "alpha", "one", 0);
    off += wire_entry_inline(ents + off, sizeof ents - off, req, (uint32_t)rl);
    off += wire_entry_digest(ents + off, sizeof ents - off, d, 7, 1, 99);
    rl = seed_request(req, sizeof req, 5, WIRE_OP_GET, "beta", NULL, 0);
    off += wire_entry_inline(ents + off, sizeof ents - off, req, (uint32_t)rl);
    s = seed_new();
    s->len = wire_encode_preprepare(s->bytes, SEED_CAP, FUZZ_GROUP, 1, FUZZ_N, 2, 10, ents, (uint32_t)off, 3,
                                    NULL);
    s = seed_new();
    s->len = wire_encode_preprepare(s->bytes, SEED_CAP, FUZZ_GROUP, 0, FUZZ_N, 2, 11, NULL, 0, 0, NULL);

    const uint8_t types[] = {WIRE_PREPARE, WIRE_COMMIT, WIRE_CHECKPOINT};
    for (size_t t = 0; t < sizeof types; t++) {
        s = seed_new();
        s->len = wire_encode_digest_msg(s->bytes, SEED_CAP, types[t], FUZZ_GROUP, 2, FUZZ_N, 2, 10, d, NULL);
    }

    uint8_t rd[32];
    wire_result_digest(rd, 0, "result", 6);
    struct wire_reply rp = {.client = 3, .lane = 2, .status = 0, .rflags = 0, .result_len = 6,
                            .result_digest = rd, .result = (const uint8_t *)"result"};
    s = seed_new();
    s->len = wire_encode_reply(s->bytes, SEED_CAP, FUZZ_GROUP, 1, 2, 1003, &rp, NULL);
    rp.result = NULL;
    s = seed_new();
    s->len = wire_encode_reply(s->bytes, SEED_CAP, FUZZ_GROUP, 1, 2, 1003, &rp, NULL);

    /* VIEW-CHANGE (C, P, Q) and NEW-VIEW (signature areas left zero). */
    struct wire_vc_entry cp[2] = {{.seq = 128}, {.seq = 256}};
    struct wire_vc_entry pq[3] = {{.seq = 130, .view = 1}, {.seq = 130, .view = 0}, {.seq = 131, .view = 1}};
    memset(pq[1].digest, 7, 32);
    s = seed_new();
    s->len = wire_encode_view_change(s->bytes, SEED_CAP, FUZZ_GROUP, 2, 3, 128, cp, 2, pq, 1, pq, 3, NULL);
    uint16_t ids[3] = {0, 1, 3};
    uint8_t vd[3][32], ch[2][32], xf[2] = {0, WIRE_NV_NEED};
    memset(vd, 5, sizeof vd);
    memset(ch, 6, sizeof ch);
    s = seed_new();
    s->len = wire_encode_new_view(s->bytes, SEED_CAP, FUZZ_GROUP, 3, 3, 256, d, ids, (const uint8_t(*)[32])vd, 3,
                                  (const uint8_t(*)[32])ch, xf, 2, NULL);

    /* REQUEST-FETCH: a large request by digest (FETCH, part REQUEST). */
    s = seed_new();
    s->len = wire_encode_request_fetch(s->bytes, SEED_CAP, FUZZ_GROUP, 1, FUZZ_N, 2, 10, d, NULL);

    /* A datagram of several messages. */
    s = seed_new();
    s->len = 0;
    for (int i = 0; i < nseeds - 1 && i < 6; i += 2) {
        FUZZ_CHECK(s->len + seeds[i].len <= SEED_CAP);
        memcpy(s->bytes + s->len, seeds[i].bytes, seeds[i].len);
        s->len += seeds[i].len;
    }
    for (int i = 0; i < nseeds; i++) {
        FUZZ_CHECK(seeds[i].len > 0);
    }
}

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

#define MUTANT_CAP (2u * SEED_CAP)

/* One mutation in place; returns the new length (<= MUTANT_CAP). */
static size_t mutate(uint8_t *b, size_t len)
{
    static const uint32_t interesting[] = {0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x400, 0x401,
                                           0x7FFF, 0x8000, 0xFFFF, 0x10000, 0xF000, 0xF001,
                                           0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu};
    if (len == 0) {
        b[0] = (uint8_t)rng_next();
        return 1;
    }
    size_t pos = rng_below(len);
    switch (rng_below(8)) {
    case 0: /* flip a bit */
        b[pos] ^= (uint8_t)(1u << rng_below(8));
        return len;
    case 1: /* random byte */
        b[pos] = (uint8_t)rng_next();
        return len;
    case 2: { /* an interesting 1, 2 or 4-byte little-endian value */
        uint32_t v = interesting[rng_below(sizeof interesting / sizeof interesting[0])];
        size_t w = (size_t)1 << rng_below(3);
        for (size_t i = 0; i < w && pos + i < len; i++) {
            b[pos + i] = (uint8_t)(v >> (8 * i));
        }
        return len;
    }
    case 3: /* truncate */
        return rng_below(len + 1);
    case 4: { /* delete a run */
        size_t n = 1 + rng_below(16);
        if (n > len - pos) {
            n = len - pos;
        }
        memmove(b + pos, b + pos + n, len - pos - n);
        return len - n;
    }
    case 5: { /* insert a run of random bytes */
        size_t n = 1 + rng_below(16);
        if (len + n > MUTANT_CAP) {
            return len;
        }
        memmove(b + pos + n, b + pos, len - pos);
        for (size_t i = 0; i < n; i++) {
            b[pos + i] = (uint8_t)rng_next();
        }
        return len + n;
    }
    case 6: { /* append another seed (multi-message datagrams) */
        const struct seed *o = &seeds[rng_below((size_t)nseeds)];
        if (len + o->len > MUTANT_CAP) {
            return len;
        }
        memcpy(b + len, o->bytes, o->len);
        return len + o->len;
    }
    default: { /* copy a chunk over another place */
        size_t from = rng_below(len);
        size_t n = 1 + rng_below(32);
        if (n > len - from) {
            n = len - from;
        }
        if (n > len - pos) {
            n = len - pos;
        }
        memmove(b + pos, b + from, n);
        return len;
    }
    }
}

static int run_mutations(long count, uint64_t seed)
{
    static uint8_t mutant[MUTANT_CAP];
    rng_state = seed;
    for (int i = 0; i < nseeds; i++) {
        LLVMFuzzerTestOneInput(seeds[i].bytes, seeds[i].len);
    }
    for (long t = 0; t < count; t++) {
        const struct seed *s = &seeds[rng_below((size_t)nseeds)];
        memcpy(mutant, s->bytes, s->len);
        size_t len = s->len;
        size_t k = 1 + rng_below(6);
        for (size_t i = 0; i < k; i++) {
            len = mutate(mutant, len);
        }
        LLVMFuzzerTestOneInput(mutant, len);
    }
    printf("fuzz_wire_replay: %d seeds and %ld mutations (seed %llu) decoded without a failure\n", nseeds,
           count, (unsigned long long)seed);
    return 0;
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz_wire_replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    static uint8_t data[1u << 20];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    LLVMFuzzerTestOneInput(data, n);
    return 0;
}

static int replay_path(const char *path, long *files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_wire_replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*files)++;
        return replay_file(path);
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        fprintf(stderr, "fuzz_wire_replay: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char sub[4096];
        int w = snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        if (w < 0 || (size_t)w >= sizeof sub) {
            continue;
        }
        rc |= replay_path(sub, files);
    }
    closedir(dir);
    return rc;
}

static int write_seeds(const char *dir)
{
    for (int i = 0; i < nseeds; i++) {
        char path[4096];
        int w = snprintf(path, sizeof path, "%s/seed-%02d", dir, i);
        if (w < 0 || (size_t)w >= sizeof path) {
            return 1;
        }
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(seeds[i].bytes, 1, seeds[i].len, f) != seeds[i].len) {
            fprintf(stderr, "fuzz_wire_replay: %s: %s\n", path, strerror(errno));
            if (f != NULL) {
                fclose(f);
            }
            return 1;
        }
        fclose(f);
    }
    printf("fuzz_wire_replay: wrote %d seeds to %s\n", nseeds, dir);
    return 0;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    seeds_build();
    long mutations = 20000;
    uint64_t seed = 1;
    long files = 0;
    int rc = 0;
    bool replayed = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) {
            mutations = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--write-seeds") == 0 && i + 1 < argc) {
            return write_seeds(argv[++i]);
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--mutations N] [--seed S] [--write-seeds DIR] [FILE|DIR...]\n", argv[0]);
            return 0;
        } else {
            replayed = true;
            rc |= replay_path(argv[i], &files);
        }
    }
    if (replayed) {
        printf("fuzz_wire_replay: replayed %ld files\n", files);
        return rc;
    }
    return run_mutations(mutations, seed);
}
#endif /* BFTKV_FUZZ_REPLAY */
