/* integ_garbage: a bounded burst of hostile datagrams at one replica:
 * malformed, truncated, replayed and unauthenticated datagrams.
 *
 * Loads the cluster config and one allowed client's key, builds one well-formed,
 * correctly authenticated REQUEST, and then sends, round robin, datagrams that
 * the replica must drop with a counted reason or handle harmlessly: random bytes,
 * the valid request truncated, with a flipped MAC byte, with a wrong version, an
 * unknown type, another group, reserved flags set, an empty key, from a client id
 * outside the allow-list, a forged PREPARE from another replica with a zero
 * authenticator, the valid request replayed byte for byte, an authenticated
 * stats request (engine/wire_admin.h) replayed, the valid request followed by junk in the
 * same datagram, and now and then a maximal datagram of junk. It only sends to the configured replica's address
 * (127.0.0.1 in the tests), paces itself so the kernel's socket buffer does not drop what the replica should count, and
 * stops after --count datagrams. The test script checks the replica's stats before and after.
 *
 *   integ_garbage --config FILE --client C --replica I [--count N]
 *
 * Prints one line per kind with how many were sent. Exit 0, or 2 on a bad
 * argument, config or key.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/auth.h"
#include "engine/wire.h"
#include "engine/wire_admin.h"
#include "cluster/cluster.h"

#define GARBAGE_COUNT_DEFAULT 4000u
#define GARBAGE_COUNT_MAX 100000u
#define GARBAGE_PACE_EVERY 32u     /* datagrams between pauses */
#define GARBAGE_PACE_US 2000u      /* the pause: lets the replica drain its socket */
#define GARBAGE_BIG_EVERY 97u      /* one maximal junk datagram in so many */
#define GARBAGE_BUF (BFTKV_DATAGRAM_MAX + 1u)

enum garbage_kind {
    GARBAGE_RANDOM,
    GARBAGE_TRUNCATED,
    GARBAGE_BAD_MAC,
    GARBAGE_BAD_VERSION,
    GARBAGE_BAD_TYPE,
    GARBAGE_BAD_GROUP,
    GARBAGE_BAD_FLAGS,
    GARBAGE_EMPTY_KEY,
    GARBAGE_UNKNOWN_CLIENT,
    GARBAGE_FORGED_PREPARE,
    GARBAGE_REPLAY,
    GARBAGE_TRAILING_JUNK,
    GARBAGE_ADMIN_REPLAY,
    GARBAGE_KIND_COUNT,
};

static const char *const garbage_kind_names[GARBAGE_KIND_COUNT] = {
    "random bytes",       "truncated request",      "flipped MAC byte",   "wrong version",
    "unknown type",       "another group",          "reserved flags set", "empty key",
    "unknown client id",  "forged PREPARE",         "replayed request",   "request + trailing junk",
    "replayed admin request",
};

struct garbage {
    int fd;
    struct sockaddr_storage to;
    socklen_t tolen;
    const struct bftkv_config *cfg;
    uint16_t client;
    uint16_t replica;
    uint8_t valid[2048]; /* the authenticated request */
    size_t valid_len;
    uint8_t admin[ADMIN_REQUEST_MAX]; /* an authenticated stats request */
    size_t admin_len;
    uint8_t buf[GARBAGE_BUF];
    uint64_t sent[GARBAGE_KIND_COUNT + 1]; /* + big junk */
};

static uint32_t garbage_rand(uint32_t bound)
{
    return bound == 0 ? 0 : randombytes_uniform(bound);
}

static void garbage_send(struct garbage *g, const uint8_t *p, size_t len)
{
    /* Best effort: a full socket buffer (EAGAIN, ENOBUFS) just loses this one. */
    (void)sendto(g->fd, p, len, MSG_DONTWAIT, (const struct sockaddr *)&g->to, g->tolen);
    uint8_t sink[2048];
    while (recv(g->fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        /* replies to the valid and replayed requests: ignored */
    }
}

static size_t garbage_request(struct garbage *g, uint8_t *out, size_t cap, uint16_t client, const char *key,
                              const struct auth_ctx *auth)
{
    static const char value[] = "integ-garbage";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct wire_request rq = {
        .client = client,
        .lane = 0,
        .timestamp = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
        .op = WIRE_OP_PUT,
        .klen = (uint16_t)strlen(key),
        .vlen = (uint32_t)(sizeof value - 1),
        .key = (const uint8_t *)key,
        .value = (const uint8_t *)value,
    };
    size_t auth_off = 0;
    size_t len = wire_encode_request(out, cap, g->cfg->group, g->cfg->n, 0, &rq, &auth_off);
    if (len != 0 && auth != NULL) {
        auth_authenticator_fill(auth, out, len, auth_off);
    }
    return len;
}

/* Build and send one datagram of the given kind. */
static void garbage_one(struct garbage *g, enum garbage_kind kind)
{
    uint8_t *b = g->buf;
    size_t len = g->valid_len;
    memcpy(b, g->valid, len);
    switch (kind) {
    case GARBAGE_RANDOM:
        len = 1u + garbage_rand(2000u);
        randombytes_buf(b, len);
        break;
    case GARBAGE_TRUNCATED:
        len = 1u + garbage_rand((uint32_t)g->valid_len - 1u);
        break;
    case GARBAGE_BAD_MAC:
        /* in the target's own entry of the authenticator: the others it never reads */
        b[len - 16u * g->cfg->n + 16u * g->replica + garbage_rand(16u)] ^= (uint8_t)(1u + garbage_rand(255u));
        break;
    case GARBAGE_BAD_VERSION:
        b[2] = (uint8_t)(WIRE_VERSION + 1u + garbage_rand(200u));
        break;
    case GARBAGE_BAD_TYPE:
        b[3] = (uint8_t)(WIRE_TYPE_MAX + 3u + garbage_rand(200u)); /* past the admin types too */
        break;
    case GARBAGE_BAD_GROUP:
        b[4] = (uint8_t)(b[4] + 1u + garbage_rand(200u));
        break;
    case GARBAGE_BAD_FLAGS:
        b[30] = (uint8_t)(1u + garbage_rand(255u));
        break;
    case GARBAGE_EMPTY_KEY: /* klen = 0: body offset 4 */
        b[WIRE_HEADER_SIZE + 4u] = 0;
        b[WIRE_HEADER_SIZE + 5u] = 0;
        break;
    case GARBAGE_UNKNOWN_CLIENT: {
        /* Allowed ids are 0..clients-1: take one past them, well formed, with a
         * random authenticator (nobody shares a key with it). */
        uint16_t stranger = (uint16_t)(g->cfg->clients + garbage_rand(BFTKV_CLIENTS_MAX - g->cfg->clients));
        len = garbage_request(g, b, GARBAGE_BUF, stranger, "integ-stranger", NULL);
        randombytes_buf(b + len - 16u * g->cfg->n, 16u * g->cfg->n);
        break;
    }
    case GARBAGE_FORGED_PREPARE: {
        uint8_t digest[32];
        randombytes_buf(digest, sizeof digest);
        uint16_t from = (uint16_t)((g->replica + 1u) % g->cfg->n);
        len = wire_encode_digest_msg(b, GARBAGE_BUF, WIRE_PREPARE, g->cfg->group, from, g->cfg->n, 0,
                                     1u + garbage_rand(100u), digest, NULL);
        break; /* authenticator left zero */
    }
    case GARBAGE_REPLAY:
        break; /* the valid request again, byte for byte */
    case GARBAGE_ADMIN_REPLAY: /* answered the first time only (engine/wire_admin.h nonces) */
        memcpy(b, g->admin, g->admin_len);
        len = g->admin_len;
        break;
    case GARBAGE_TRAILING_JUNK: {
        size_t junk = 1u + garbage_rand(300u);
        randombytes_buf(b + len, junk);
        len += junk;
        break;
    }
    case GARBAGE_KIND_COUNT:
        return;
    }
    garbage_send(g, b, len);
    g->sent[kind]++;
}

static int garbage_usage(void)
{
    fprintf(stderr, "usage: integ_garbage --config FILE --client C --replica I [--count N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    long client = -1, replica = -1, count = GARBAGE_COUNT_DEFAULT;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--config") == 0) {
            config = argv[i + 1];
        } else if (strcmp(argv[i], "--client") == 0) {
            client = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--replica") == 0) {
            replica = strtol(argv[i + 1], NULL, 10);
        } else if (strcmp(argv[i], "--count") == 0) {
            count = strtol(argv[i + 1], NULL, 10);
        } else {
            return garbage_usage();
        }
    }
    if (config == NULL || client < 0 || client >= (long)BFTKV_CLIENTS_MAX || replica < 0 || count < 1
        || count > (long)GARBAGE_COUNT_MAX || argc % 2 != 1) {
        return garbage_usage();
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "integ_garbage: sodium_init failed\n");
        return 2;
    }

    char err[BFTKV_CONFIG_ERR_MAX];
    struct bftkv_config *cfg = NULL;
    struct auth_keypair kp;
    struct auth_ctx auth;
    static struct garbage g;
    if (bftkv_config_load(config, &cfg, err, sizeof err) != 0
        || bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, (uint16_t)client, &kp, err, sizeof err) != 0
        || bftkv_key_auth_init(cfg, BFTKV_CONFIG_CLIENT, (uint16_t)client, &kp, &auth, err, sizeof err) != 0) {
        fprintf(stderr, "integ_garbage: %s\n", err);
        bftkv_config_free(cfg);
        return 2;
    }
    if (replica >= cfg->n
        || bftkv_config_replica_sockaddr(cfg, (uint16_t)replica, &g.to, &g.tolen, err, sizeof err) != 0) {
        fprintf(stderr, "integ_garbage: replica %ld: %s\n", replica, replica >= cfg->n ? "not in the group" : err);
        auth_destroy(&auth);
        bftkv_config_free(cfg);
        return 2;
    }
    g.cfg = cfg;
    g.client = (uint16_t)client;
    g.replica = (uint16_t)replica;
    g.fd = socket(g.to.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (g.fd < 0) {
        fprintf(stderr, "integ_garbage: socket: %s\n", strerror(errno));
        return 2;
    }
    g.valid_len = garbage_request(&g, g.valid, sizeof g.valid, g.client, "integ-garbage-probe", &auth);
    if (g.valid_len == 0) {
        fprintf(stderr, "integ_garbage: request does not fit\n");
        return 2;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    g.admin_len = wire_admin_request_encode(g.admin, sizeof g.admin, &auth, cfg->group, ADMIN_CMD_STATS,
                                       (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    if (g.admin_len == 0) {
        fprintf(stderr, "integ_garbage: admin request does not fit\n");
        return 2;
    }
    garbage_send(&g, g.valid, g.valid_len); /* once as it should be */

    for (long i = 0; i < count; i++) {
        if ((uint64_t)i % GARBAGE_BIG_EVERY == GARBAGE_BIG_EVERY - 1u) {
            randombytes_buf(g.buf, BFTKV_DATAGRAM_MAX);
            garbage_send(&g, g.buf, BFTKV_DATAGRAM_MAX);
            g.sent[GARBAGE_KIND_COUNT]++;
        } else {
            garbage_one(&g, (enum garbage_kind)((uint64_t)i % GARBAGE_KIND_COUNT));
        }
        if ((uint64_t)i % GARBAGE_PACE_EVERY == GARBAGE_PACE_EVERY - 1u) {
            usleep(GARBAGE_PACE_US);
        }
    }
    for (unsigned k = 0; k < GARBAGE_KIND_COUNT; k++) {
        printf("%-24s %" PRIu64 "\n", garbage_kind_names[k], g.sent[k]);
    }
    printf("%-24s %" PRIu64 "\n", "maximal junk datagram", g.sent[GARBAGE_KIND_COUNT]);
    close(g.fd);
    auth_destroy(&auth);
    bftkv_config_free(cfg);
    return 0;
}
