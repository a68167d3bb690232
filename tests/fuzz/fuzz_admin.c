/* Fuzzing the admin protocol's decoders (engine/wire_admin.c) and the server's framing
 * check (server_framing_ok, server/server.c), as a replica and a client meet them.
 *
 * The input is one datagram. Its framing is checked the way the server does
 * (messages back to back, magic and version, lengths exactly filling it); then
 * each message, or the whole input when the framing is refused, goes through
 *   - wire_admin_request_check as replica 1 of a group of four: an accepted request
 *     is re-encoded by its client (client 3 is ours) to the same bytes, and
 *     goes through the replay and rate guard (admin_guard_admit), whose answers
 *     must keep its promises: nonces per client strictly increase, at most
 *     ADMIN_REPLIES_PER_SEC answers a second;
 *   - wire_admin_reply_check as client 3: an accepted reply's JSON lies inside it,
 *     and the replica that sent it re-encodes it to the same bytes.
 * A MAC is a wall no fuzzer climbs, so each input runs twice: as given, and
 * with the MACs of ADMIN messages from client 3 and of ADMIN-REPLYs for it
 * recomputed. tests/fuzz/fuzz.h says how it is built and run.
 */
#include <stdbool.h>
#include <string.h>

#include <sodium.h>

#include "engine/auth.h"
#include "engine/wire.h"
#include "server/admin.h"
#include "server/server_internal.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "admin";

#define FUZZ_GROUP 9u
#define FUZZ_N 4u
#define FUZZ_CLIENTS 8u
#define FUZZ_CLIENT 3u
#define FUZZ_UNKNOWN_CLIENT 5u
#define FUZZ_REPLICA 1u
#define FUZZ_STEP_NS 3000000u /* between two messages of a datagram, for the rate guard */

static struct auth_ctx fuzz_replicas[FUZZ_N], fuzz_client;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0);
    struct auth_keypair kp[FUZZ_N + FUZZ_CLIENTS];
    struct auth_public pub[FUZZ_N + FUZZ_CLIENTS];
    bool known[FUZZ_CLIENTS];
    for (unsigned i = 0; i < FUZZ_N + FUZZ_CLIENTS; i++) {
        uint8_t seed[32] = {(uint8_t)i, 0xAD};
        auth_keypair_from_seed(&kp[i], seed);
        auth_public_of(&pub[i], &kp[i]);
    }
    for (unsigned c = 0; c < FUZZ_CLIENTS; c++)
        known[c] = c != FUZZ_UNKNOWN_CLIENT;
    for (uint16_t r = 0; r < FUZZ_N; r++)
        FUZZ_CHECK(auth_init_replica(&fuzz_replicas[r], r, FUZZ_N, &kp[r], pub, pub + FUZZ_N, known, FUZZ_CLIENTS)
                   == 0);
    FUZZ_CHECK(auth_init_client(&fuzz_client, FUZZ_CLIENT, FUZZ_N, &kp[FUZZ_N + FUZZ_CLIENT], pub) == 0);
    return 0;
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *lo, size_t len)
{
    return p >= lo && n <= len && (size_t)(p - lo) <= len - n;
}

struct guard_run {
    struct admin_guard guard;
    uint64_t last_ok[FUZZ_CLIENTS];
    uint64_t now_ns;
    uint32_t answered;
};

static void request_check(struct guard_run *g, const uint8_t *msg, size_t size)
{
    struct admin_request rq;
    enum admin_drop d = wire_admin_request_check(&fuzz_replicas[FUZZ_REPLICA], FUZZ_GROUP, msg, size, &rq);
    FUZZ_CHECK(d >= ADMIN_OK && d < ADMIN_DROP_COUNT && d != ADMIN_DROP_REPLAY && d != ADMIN_DROP_RATE);
    if (d != ADMIN_OK)
        return;
    struct wire_header h;
    wire_header_read(msg, &h);
    FUZZ_CHECK(size == WIRE_HEADER_SIZE + ADMIN_REQUEST_BODY + FUZZ_N * BFTKV_MAC_SIZE);
    FUZZ_CHECK(rq.client == h.sender && rq.client < FUZZ_CLIENTS && rq.client != FUZZ_UNKNOWN_CLIENT);
    FUZZ_CHECK(rq.nonce == h.seq
               && (rq.command == ADMIN_CMD_STATS
                   || (rq.command >= ADMIN_CMD_LOG_LEVEL && rq.command < ADMIN_CMD_LOG_LEVEL + ADMIN_LOG_LEVELS)));
    if (rq.client == FUZZ_CLIENT && h.view == 0) {
        /* Its client encodes the same request; only the MACs for the other
         * replicas may differ (this replica checks its own). */
        uint8_t again[ADMIN_REQUEST_MAX];
        size_t n = wire_admin_request_encode(again, sizeof again, &fuzz_client, FUZZ_GROUP, rq.command, rq.nonce);
        size_t mac_at = WIRE_HEADER_SIZE + ADMIN_REQUEST_BODY + FUZZ_REPLICA * BFTKV_MAC_SIZE;
        FUZZ_CHECK(n == size && memcmp(again, msg, WIRE_HEADER_SIZE + ADMIN_REQUEST_BODY) == 0);
        FUZZ_CHECK(memcmp(again + mac_at, msg + mac_at, BFTKV_MAC_SIZE) == 0);
    }
    g->now_ns += FUZZ_STEP_NS;
    d = admin_guard_admit(&g->guard, &rq, g->now_ns);
    FUZZ_CHECK(d == ADMIN_OK || d == ADMIN_DROP_REPLAY || d == ADMIN_DROP_RATE);
    if (d == ADMIN_OK) {
        FUZZ_CHECK(rq.nonce > g->last_ok[rq.client]);
        g->last_ok[rq.client] = rq.nonce;
        g->answered++;
        uint64_t elapsed_s = (g->now_ns - FUZZ_STEP_NS) / 1000000000u;
        FUZZ_CHECK(g->answered <= ADMIN_REPLIES_PER_SEC * (elapsed_s + 1u));
    } else if (d == ADMIN_DROP_REPLAY) {
        FUZZ_CHECK(rq.nonce <= g->last_ok[rq.client]);
    }
}

static void reply_check(const uint8_t *msg, size_t size)
{
    uint16_t sender = UINT16_MAX;
    uint64_t nonce = 0;
    const uint8_t *json = NULL;
    size_t json_len = SIZE_MAX;
    if (!wire_admin_reply_check(&fuzz_client, FUZZ_GROUP, msg, size, &sender, &nonce, &json, &json_len))
        return;
    FUZZ_CHECK(sender < FUZZ_N && json_len <= ADMIN_JSON_MAX && inside(json, json_len, msg, size));
    struct wire_header h;
    wire_header_read(msg, &h);
    struct admin_request rq = {.client = FUZZ_CLIENT, .nonce = nonce, .command = ADMIN_CMD_STATS};
    uint8_t *again = malloc(ADMIN_REPLY_MAX);
    FUZZ_CHECK(again != NULL);
    size_t n = wire_admin_reply_encode(again, ADMIN_REPLY_MAX, &fuzz_replicas[sender], FUZZ_GROUP, h.view, &rq,
                                  (const char *)json, json_len);
    FUZZ_CHECK(n == size && memcmp(again, msg, size) == 0);
    free(again);
}

/* Recompute the MACs a fuzzer cannot: client 3's authenticator on an ADMIN, a
 * replica's MAC for client 3 on an ADMIN-REPLY (framing permitting). */
static void macs_fix(uint8_t *msg, size_t size)
{
    if (size < WIRE_HEADER_SIZE)
        return;
    struct wire_header h;
    wire_header_read(msg, &h);
    if ((uint64_t)WIRE_HEADER_SIZE + h.body_len + h.auth_len != size)
        return;
    if (h.type == WIRE_ADMIN && h.sender == FUZZ_CLIENT && h.auth_len == FUZZ_N * BFTKV_MAC_SIZE)
        auth_authenticator_fill(&fuzz_client, msg, size, size - h.auth_len);
    else if (h.type == WIRE_ADMIN_REPLY && h.sender < FUZZ_N && h.auth_len == BFTKV_MAC_SIZE)
        auth_reply_fill(&fuzz_replicas[h.sender], msg, size, size - h.auth_len, FUZZ_CLIENT);
}

static void datagram_run(uint8_t *buf, size_t len, bool fix)
{
    struct guard_run g;
    memset(&g, 0, sizeof g);
    FUZZ_CHECK(admin_guard_init(&g.guard, FUZZ_CLIENTS) == 0);
    uint32_t count = UINT32_MAX;
    if (!server_framing_ok(buf, len, &count)) {
        if (fix)
            macs_fix(buf, len);
        request_check(&g, buf, len);
        reply_check(buf, len);
        admin_guard_free(&g.guard);
        return;
    }
    size_t off = 0;
    uint32_t k = 0;
    while (off < len) {
        FUZZ_CHECK(len - off >= WIRE_HEADER_SIZE);
        struct wire_header h;
        wire_header_read(buf + off, &h);
        FUZZ_CHECK(buf[off] == (WIRE_MAGIC & 0xFFu) && buf[off + 2] == WIRE_VERSION);
        size_t size = WIRE_HEADER_SIZE + (size_t)h.body_len + h.auth_len;
        FUZZ_CHECK(size <= len - off);
        if (fix)
            macs_fix(buf + off, size);
        request_check(&g, buf + off, size);
        reply_check(buf + off, size);
        off += size;
        k++;
    }
    FUZZ_CHECK(k == count && count >= 1);
    admin_guard_free(&g.guard);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size > 0 ? size : 1);
    FUZZ_CHECK(copy != NULL);
    for (int pass = 0; pass < 2; pass++) {
        if (size > 0)
            memcpy(copy, data, size);
        datagram_run(copy, size, pass == 1);
    }
    free(copy);
    return 0;
}

/* ---- Seeds ---------------------------------------------------------------------------- */

void fuzz_seeds(fuzz_seed_add_fn add)
{
    uint8_t b[4096], multi[4096];
    size_t mlen = 0;
    for (uint64_t nonce = 1; nonce <= 3; nonce++) {
        size_t n = wire_admin_request_encode(b, sizeof b, &fuzz_client, FUZZ_GROUP, ADMIN_CMD_STATS, 1000u * nonce);
        FUZZ_CHECK(n > 0);
        if (nonce == 1)
            add(b, n);
        memcpy(multi + mlen, b, n);
        mlen += n;
    }
    static const char json[] = "{\"replica\":2,\"view\":7,\"drops\":{\"bad_auth\":0}}";
    struct admin_request rq = {.client = FUZZ_CLIENT, .nonce = 2000, .command = ADMIN_CMD_STATS};
    size_t n = wire_admin_reply_encode(b, sizeof b, &fuzz_replicas[2], FUZZ_GROUP, 7, &rq, json, sizeof json - 1);
    FUZZ_CHECK(n > 0);
    add(b, n);
    memcpy(multi + mlen, b, n);
    mlen += n;
    add(multi, mlen);
}
