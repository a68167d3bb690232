/* Fuzzing map discovery's decoders (engine/wire_map.c) and a node's answers to
 * them (server/node_map.c), as a node and a client meet them.
 *
 * The input is one message:
 *   - wire_map_request_check: an accepted request lies in its exact size;
 *     when its signature verifies with the fuzz client's key (it is client 1
 *     of the node's map) its client re-encodes it to the same bytes (Ed25519
 *     signatures are deterministic); node_map_answer then answers it only
 *     alone, from an allowed client with a verified signature and an offset
 *     inside the map, and what it answers is the node's map from that offset;
 *   - wire_map_reply_check: an accepted reply's chunk lies inside it and
 *     inside [0, total), total within the bound given; a reply whose chunk is
 *     as long as the node would send re-encodes to the same bytes.
 * A signature is a wall no fuzzer climbs, so each input runs twice: as given,
 * and with a request's signature recomputed by the fuzz client.
 */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "cluster/cluster.h"
#include "common/log.h"
#include "engine/auth.h"
#include "engine/wire_map.h"
#include "server/node_map.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "map";

#define FUZZ_CLIENT 1u
#define FUZZ_TOTAL_MAX 4096u

static struct auth_keypair fuzz_client;
static struct cluster_map *fuzz_map_held;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0);
    log_level_set(LOG_LEVEL_ERROR); /* a node's warning of a newer epoch, once per input: not wanted here */
    uint8_t seed[32] = {0x3A, 0x9};
    auth_keypair_from_seed(&fuzz_client, seed);
    uint32_t ids[4] = {0, 1, 2, 3};
    struct bftkv_config_replica node[4];
    memset(node, 0, sizeof node);
    for (unsigned i = 0; i < 4; i++) {
        strcpy(node[i].host, "127.0.0.1");
        node[i].port = (uint16_t)(7000u + i);
        memset(node[i].x25519, (int)(0x10u + i), 32);
        memset(node[i].ed25519, (int)(0x20u + i), 32);
    }
    struct bftkv_config_client cl[3];
    memset(cl, 0, sizeof cl);
    cl[FUZZ_CLIENT].allowed = true;
    memcpy(cl[FUZZ_CLIENT].x25519, fuzz_client.x_pk, 32);
    memcpy(cl[FUZZ_CLIENT].ed25519, fuzz_client.sign_pk, 32);
    struct cluster_map_params pa = {.epoch = 3, .f = 1, .rf = 4, .partitions = 8,
                                    .placement = CLUSTER_PLACEMENT_RENDEZVOUS};
    struct cluster_map *built = NULL;
    char err[256];
    FUZZ_CHECK(cluster_map_build(&pa, ids, node, 4, cl, 3, &built, err, sizeof err) == 0);
    uint8_t admin_seed[32] = {0x77}, admin_pk[32], admin_sk[64], *bytes = NULL;
    size_t len = 0;
    cluster_map_admin_keypair(admin_seed, admin_pk, admin_sk);
    FUZZ_CHECK(cluster_map_sign(built, admin_sk, &bytes, &len) == 0);
    FUZZ_CHECK(cluster_map_open(bytes, len, admin_pk, &fuzz_map_held, err, sizeof err) == 0);
    free(bytes);
    cluster_map_free(built);
    return 0;
}

static void request_run(const uint8_t *msg, size_t size)
{
    struct wire_map_request rq;
    if (!wire_map_request_check(msg, size, &rq))
        return;
    FUZZ_CHECK(size == WIRE_MAP_REQUEST_SIZE);
    bool signed_ok = wire_map_request_verify(msg, size, fuzz_client.sign_pk);
    if (signed_ok) {
        uint8_t again[WIRE_MAP_REQUEST_SIZE];
        FUZZ_CHECK(wire_map_request_encode(again, sizeof again, &rq, fuzz_client.sign_sk) == size);
        FUZZ_CHECK(memcmp(again, msg, size) == 0);
    }
    static struct node_map_server m; /* a reply buffer of 48 KiB: not on the stack */
    FUZZ_CHECK(node_map_server_init(&m, fuzz_map_held) == 0);
    for (int alone = 0; alone < 2; alone++) {
        size_t r = node_map_answer(&m, msg, size, alone == 1, 1000000000u + (uint64_t)alone);
        bool answerable = alone == 1 && rq.client == FUZZ_CLIENT && signed_ok && rq.offset < m.len && rq.nonce > 0;
        FUZZ_CHECK((r > 0) == answerable);
        if (r > 0) {
            struct wire_map_reply rep;
            FUZZ_CHECK(wire_map_reply_check(m.reply, r, CLUSTER_MAP_SIGNED_SIZE_MAX, &rep));
            FUZZ_CHECK(rep.nonce == rq.nonce && rep.offset == rq.offset && rep.total == m.len && rep.epoch == 3);
            FUZZ_CHECK(memcmp(rep.chunk, m.signed_map + rq.offset, rep.chunk_len) == 0);
        }
    }
    node_map_server_free(&m);
}

static void reply_run(const uint8_t *msg, size_t size)
{
    struct wire_map_reply rep;
    if (!wire_map_reply_check(msg, size, FUZZ_TOTAL_MAX, &rep))
        return;
    FUZZ_CHECK(rep.total <= FUZZ_TOTAL_MAX && rep.offset < rep.total && rep.chunk_len > 0);
    FUZZ_CHECK(rep.chunk_len <= rep.total - rep.offset && rep.chunk_len <= WIRE_MAP_CHUNK_MAX);
    FUZZ_CHECK(rep.chunk == msg + WIRE_HEADER_SIZE + WIRE_MAP_REPLY_PREFIX
               && size == WIRE_HEADER_SIZE + WIRE_MAP_REPLY_PREFIX + rep.chunk_len);
    if (rep.chunk_len == rep.total - rep.offset) {
        static uint8_t whole[FUZZ_TOTAL_MAX], again[WIRE_MAP_REPLY_MAX];
        memset(whole, 0, rep.total);
        memcpy(whole + rep.offset, rep.chunk, rep.chunk_len);
        struct wire_map_request rq = {.client = 0, .epoch = 0, .nonce = rep.nonce, .offset = rep.offset};
        size_t n = wire_map_reply_encode(again, sizeof again, rep.epoch, &rq, whole, rep.total);
        FUZZ_CHECK(n == size && memcmp(again, msg, size) == 0);
    }
}

/* A MAP-NOTICE re-encodes to itself; a node refuses with one only a REQUEST
 * of an allowed client (docs/design.md §6.3). */
static void notice_run(const uint8_t *msg, size_t size)
{
    struct wire_map_notice n;
    if (wire_map_notice_check(msg, size, &n)) {
        uint8_t again[WIRE_MAP_NOTICE_SIZE];
        FUZZ_CHECK(size == WIRE_MAP_NOTICE_SIZE && n.epoch > 0);
        FUZZ_CHECK(wire_map_notice_encode(again, sizeof again, &n) == size && memcmp(again, msg, size) == 0);
    }
    static struct node_map_server m;
    FUZZ_CHECK(node_map_server_init(&m, fuzz_map_held) == 0);
    size_t r = node_map_refuse(&m, msg, size, 1000000000u);
    bool refusable = size >= WIRE_HEADER_SIZE && msg[3] == WIRE_REQUEST
                     && (uint16_t)(msg[6] | msg[7] << 8) < fuzz_map_held->clients
                     && fuzz_map_held->client[(uint16_t)(msg[6] | msg[7] << 8)].allowed;
    FUZZ_CHECK((r > 0) == refusable);
    if (r > 0) {
        FUZZ_CHECK(wire_map_notice_check(m.notice, r, &n) && n.epoch == 3);
        FUZZ_CHECK(node_map_refuse(&m, msg, size, 1000000001u) == 0); /* one a second per client */
    }
    node_map_server_free(&m);
}

/* Sign a request as the fuzz client would (framing permitting). */
static void signature_fix(uint8_t *msg, size_t size)
{
    if (size != WIRE_MAP_REQUEST_SIZE)
        return;
    size_t signed_len = WIRE_HEADER_SIZE + WIRE_MAP_REQUEST_BODY;
    crypto_sign_detached(msg + signed_len, NULL, msg, signed_len, fuzz_client.sign_sk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    for (int pass = 0; pass < 2; pass++) {
        if (size > 0)
            memcpy(copy, data, size);
        if (pass == 1)
            signature_fix(copy, size);
        request_run(copy, size);
        reply_run(copy, size);
        notice_run(copy, size);
    }
    free(copy);
    return 0;
}

/* ---- Seeds ---------------------------------------------------------------------------- */

void fuzz_seeds(fuzz_seed_add_fn add)
{
    uint8_t b[WIRE_MAP_REPLY_MAX];
    struct wire_map_request rq = {.client = FUZZ_CLIENT, .epoch = 2, .nonce = 1000, .offset = 0};
    size_t n = wire_map_request_encode(b, sizeof b, &rq, fuzz_client.sign_sk);
    FUZZ_CHECK(n > 0);
    add(b, n);
    static const uint8_t part[40] = {1, 2, 3, 4, 5};
    rq.offset = 24;
    n = wire_map_reply_encode(b, sizeof b, 3, &rq, part, sizeof part);
    FUZZ_CHECK(n > 0);
    add(b, n);
    struct wire_map_notice notice = {.group = 5, .epoch = 3, .timestamp = 77};
    n = wire_map_notice_encode(b, sizeof b, &notice);
    FUZZ_CHECK(n > 0);
    add(b, n);
}
