/* The deployment map (docs/design.md §6.2): its canonical encoding, the
 * admin's signature over it, and the rule by which a node or client takes a
 * newer map. cluster/cluster.h declares the API; cluster/deploymap_json.c
 * renders a map for operators.
 *
 * The encoding is the map: a map is built by encoding what the caller gives and
 * decoding it again, so a built map and a received one pass the same checks,
 * and two maps are the same map exactly when their encodings are equal (every
 * list is in increasing id order and every reserved byte is zero, so one map
 * has one encoding). That is what lets the acceptance rule compare bytes.
 * Decoding trusts nothing: a signed map can still come from a buggy admin tool,
 * and the fuzz target (tests/fuzz/fuzz_deploymap.c) feeds it arbitrary bytes.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "cluster/config_internal.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "engine/wire_le.h"

/* Injected bugs, for tests only (tests/cluster/CMakeLists.txt compiles this file
 * into a test with one of them defined, to show that the acceptance tests fail
 * when the rule of docs/design.md §6.2 breaks); no build of the library defines
 * them:
 *   CLUSTER_MAP_BUG_UNSIGNED  cluster_map_open takes a map whose signature does
 *                             not verify with the admin key
 *   CLUSTER_MAP_BUG_STALE     cluster_map_accept takes an older epoch as newer */
static const uint8_t map_magic[8] = {'B', 'F', 'T', 'K', 'V', 'M', 'A', 'P'};

_Static_assert(CLUSTER_MAP_SIG_SIZE == crypto_sign_BYTES, "the signature is one Ed25519 signature");
_Static_assert(CLUSTER_MAP_HEADER_SIZE == 8 + 2 + 2 + 8 + 2 + 2 + 4 + 1 + 1 + 4 + 2 + 2, "header layout");

void cluster_map_free(struct cluster_map *map)
{
    if (map == NULL)
        return;
    free(map->node_id);
    free(map->node);
    free(map->client);
    free(map->replicas);
    free(map->body);
    free(map);
}

const char *cluster_map_placement_name(enum cluster_map_placement placement)
{
    switch (placement) {
    case CLUSTER_PLACEMENT_RENDEZVOUS:
        return "rendezvous";
    case CLUSTER_PLACEMENT_RING:
        return "ring";
    }
    return "unknown";
}

/* ---- Decoding ---------------------------------------------------------------------- */

struct map_reader {
    const uint8_t *p;
    size_t len;
    size_t at;
    char *err;
    size_t errlen;
};

/* n bytes at the cursor, or NULL (with the message) when the input ends first. */
static const uint8_t *rd_take(struct map_reader *r, size_t n, const char *what)
{
    if (r->len - r->at < n) {
        errbuf_put(r->err, r->errlen, "deployment map: truncated at byte %zu (%s needs %zu bytes, %zu left)", r->at,
                   what, n, r->len - r->at);
        return NULL;
    }
    const uint8_t *p = r->p + r->at;
    r->at += n;
    return p;
}

/* A message about the map and BFTKV_E_CORRUPT. */
__attribute__((format(printf, 2, 3))) static int map_bad(struct map_reader *r, const char *fmt, ...)
{
    char msg[BFTKV_CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    errbuf_vput(msg, sizeof msg, fmt, ap);
    va_end(ap);
    errbuf_put(r->err, r->errlen, "deployment map: %s", msg);
    return BFTKV_E_CORRUPT;
}

static int header_decode(struct map_reader *r, struct cluster_map *map, uint16_t *clients_listed)
{
    const uint8_t *h = rd_take(r, CLUSTER_MAP_HEADER_SIZE, "the header");
    if (h == NULL)
        return BFTKV_E_CORRUPT;
    if (memcmp(h, map_magic, sizeof map_magic) != 0)
        return map_bad(r, "no BFTKVMAP magic: not a deployment map");
    uint16_t version = le16_load(h + 8);
    if (version != CLUSTER_MAP_VERSION) {
        errbuf_put(r->err, r->errlen, "deployment map: format version %u, this build reads version %u", version,
                   CLUSTER_MAP_VERSION);
        return BFTKV_E_VERSION;
    }
    if (le16_load(h + 10) != 0 || h[29] != 0)
        return map_bad(r, "reserved bytes are not zero");
    struct cluster_map_params *pa = &map->params;
    pa->epoch = le64_load(h + 12);
    pa->f = le16_load(h + 20);
    pa->rf = le16_load(h + 22);
    pa->partitions = le32_load(h + 24);
    uint8_t placement = h[28];
    pa->vnodes = le32_load(h + 30);
    map->m = le16_load(h + 34);
    *clients_listed = le16_load(h + 36);

    if (map->m == 0 || map->m > BFTKV_NODES_MAX)
        return map_bad(r, "%u nodes (expected 1..%u)", map->m, BFTKV_NODES_MAX);
    if (pa->rf == 0 || pa->rf > BFTKV_REPLICAS_MAX || pa->rf > map->m)
        return map_bad(r, "replication factor %u (expected 1..%u and at most the %u nodes)", pa->rf,
                       BFTKV_REPLICAS_MAX, map->m);
    if ((uint32_t)pa->f * 3u + 1u > pa->rf)
        return map_bad(r, "f = %u needs a replication factor of at least 3f+1 = %u, the map has %u", pa->f,
                       (unsigned)pa->f * 3u + 1u, pa->rf);
    if (pa->partitions == 0 || pa->partitions > BFTKV_PARTITIONS_MAX ||
        (pa->partitions & (pa->partitions - 1u)) != 0)
        return map_bad(r, "%u partitions (expected a power of two, 1..%u)", pa->partitions, BFTKV_PARTITIONS_MAX);
    if (placement == CLUSTER_PLACEMENT_RENDEZVOUS) {
        if (pa->vnodes != 0)
            return map_bad(r, "rendezvous placement with a parameter of %u (expected 0)", pa->vnodes);
    } else if (placement == CLUSTER_PLACEMENT_RING) {
        if (pa->vnodes == 0 || pa->vnodes > CLUSTER_MAP_RING_VNODES_MAX)
            return map_bad(r, "ring placement with %u points per node (expected 1..%u)", pa->vnodes,
                           CLUSTER_MAP_RING_VNODES_MAX);
    } else {
        return map_bad(r, "unknown placement algorithm %u", placement);
    }
    pa->placement = (enum cluster_map_placement)placement;
    if (*clients_listed == 0 || *clients_listed > BFTKV_CLIENTS_MAX)
        return map_bad(r, "%u clients (expected 1..%u)", *clients_listed, BFTKV_CLIENTS_MAX);
    return 0;
}

static int nodes_decode(struct map_reader *r, struct cluster_map *map)
{
    for (uint16_t i = 0; i < map->m; i++) {
        const uint8_t *h = rd_take(r, 7, "a node's id, port and host length");
        if (h == NULL)
            return BFTKV_E_CORRUPT;
        uint32_t id = le32_load(h);
        uint16_t port = le16_load(h + 4);
        uint8_t hlen = h[6];
        if (i > 0 && id <= map->node_id[i - 1])
            return map_bad(r, "node id %u after node id %u (ids must increase)", id, map->node_id[i - 1]);
        if (port == 0)
            return map_bad(r, "node %u: port 0", id);
        if (hlen == 0 || hlen > BFTKV_CONFIG_HOST_MAX)
            return map_bad(r, "node %u: host of %u bytes (expected 1..%u)", id, hlen, BFTKV_CONFIG_HOST_MAX);
        const uint8_t *host = rd_take(r, hlen, "a node's host");
        const uint8_t *keys = host != NULL ? rd_take(r, 64, "a node's keys") : NULL;
        if (keys == NULL)
            return BFTKV_E_CORRUPT;
        struct bftkv_config_replica *n = &map->node[i];
        memcpy(n->host, host, hlen);
        n->host[hlen] = '\0';
        if (memchr(host, '\0', hlen) != NULL || !config_host_valid(n->host))
            return map_bad(r, "node %u: the host is not an IPv4 or IPv6 address or a host name", id);
        n->port = port;
        memcpy(n->x25519, keys, 32);
        memcpy(n->ed25519, keys + 32, 32);
        n->line = 0;
        map->node_id[i] = id;
    }
    return 0;
}

static int clients_decode(struct map_reader *r, struct cluster_map *map, uint16_t listed)
{
    int prev = -1;
    for (uint16_t i = 0; i < listed; i++) {
        const uint8_t *c = rd_take(r, CLUSTER_MAP_CLIENT_SIZE, "a client");
        if (c == NULL)
            return BFTKV_E_CORRUPT;
        uint16_t id = le16_load(c);
        if ((int)id <= prev)
            return map_bad(r, "client id %u after client id %d (ids must increase)", id, prev);
        if (id >= BFTKV_CLIENTS_MAX)
            return map_bad(r, "client id %u (expected below %u)", id, BFTKV_CLIENTS_MAX);
        struct bftkv_config_client *cl = &map->client[id];
        cl->allowed = true;
        memcpy(cl->x25519, c + 2, 32);
        memcpy(cl->ed25519, c + 34, 32);
        cl->line = 0;
        prev = id;
    }
    map->clients = (uint16_t)(prev + 1);
    map->clients_allowed = listed;
    return 0;
}

struct key_ref {
    uint8_t key[32];
    uint32_t id;
    bool node;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    return memcmp(x->key, y->key, sizeof x->key);
}

struct addr_ref {
    const struct bftkv_config_replica *n;
    uint32_t id;
};

static int addr_ref_cmp(const void *a, const void *b)
{
    const struct addr_ref *x = a, *y = b;
    int c = strcmp(x->n->host, y->n->host);
    if (c != 0)
        return c;
    return (int)x->n->port - (int)y->n->port;
}

/* One node per address, one principal per public key (cluster/config_check.c's
 * rules for a config file). Sorting keeps this O(k log k). */
static int distinct_check(struct map_reader *r, const struct cluster_map *map)
{
    size_t cap = (size_t)map->m + map->clients_allowed;
    struct key_ref *keys = malloc(cap * sizeof *keys);
    struct addr_ref *addrs = malloc((size_t)map->m * sizeof *addrs);
    int rc = 0;
    if (keys == NULL || addrs == NULL) {
        errbuf_put(r->err, r->errlen, "deployment map: out of memory");
        rc = BFTKV_E_NOMEM;
    }
    for (uint16_t i = 0; rc == 0 && i < map->m; i++)
        addrs[i] = (struct addr_ref){.n = &map->node[i], .id = map->node_id[i]};
    if (rc == 0)
        qsort(addrs, map->m, sizeof *addrs, addr_ref_cmp);
    for (uint16_t i = 1; rc == 0 && i < map->m; i++)
        if (addr_ref_cmp(&addrs[i - 1], &addrs[i]) == 0)
            rc = map_bad(r, "nodes %u and %u share the address %s port %u", addrs[i - 1].id, addrs[i].id,
                         addrs[i].n->host, addrs[i].n->port);
    for (int kind = 0; rc == 0 && kind < 2; kind++) {
        size_t k = 0;
        for (uint16_t i = 0; i < map->m; i++) {
            memcpy(keys[k].key, kind == 0 ? map->node[i].x25519 : map->node[i].ed25519, 32);
            keys[k].id = map->node_id[i], keys[k].node = true;
            k++;
        }
        for (uint16_t c = 0; c < map->clients; c++) {
            if (!map->client[c].allowed)
                continue;
            memcpy(keys[k].key, kind == 0 ? map->client[c].x25519 : map->client[c].ed25519, 32);
            keys[k].id = c, keys[k].node = false;
            k++;
        }
        BFTKV_ASSERT(k == cap);
        qsort(keys, k, sizeof *keys, key_ref_cmp);
        for (size_t i = 1; rc == 0 && i < k; i++)
            if (memcmp(keys[i - 1].key, keys[i].key, 32) == 0)
                rc = map_bad(r, "%s %u and %s %u share an %s key: each needs its own key pair",
                             keys[i - 1].node ? "node" : "client", keys[i - 1].id, keys[i].node ? "node" : "client",
                             keys[i].id, kind == 0 ? "x25519" : "ed25519");
    }
    free(keys);
    free(addrs);
    return rc;
}

static int placement_derive(struct map_reader *r, struct cluster_map *map)
{
    const struct cluster_map_params *pa = &map->params;
    map->replicas = malloc((size_t)pa->partitions * pa->rf * sizeof *map->replicas);
    if (map->replicas == NULL) {
        errbuf_put(r->err, r->errlen, "deployment map: out of memory");
        return BFTKV_E_NOMEM;
    }
    int rc = pa->placement == CLUSTER_PLACEMENT_RING
                 ? cluster_placement_ring(map->node_id, map->m, pa->partitions, pa->rf, pa->vnodes, map->replicas)
                 : cluster_placement_rendezvous(map->node_id, map->m, pa->partitions, pa->rf, map->replicas);
    if (rc == BFTKV_E_NOMEM) {
        errbuf_put(r->err, r->errlen, "deployment map: out of memory");
        return rc;
    }
    BFTKV_ASSERT(rc == 0); /* every parameter was checked above */
    return 0;
}

int cluster_map_decode(const uint8_t *body, size_t len, struct cluster_map **out, char *err, size_t errlen)
{
    if (body == NULL || out == NULL) {
        errbuf_put(err, errlen, "deployment map: invalid argument");
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    struct map_reader r = {.p = body, .len = len, .err = err, .errlen = errlen};
    if (len > CLUSTER_MAP_SIZE_MAX)
        return map_bad(&r, "%zu bytes, more than the largest map (%u)", len, CLUSTER_MAP_SIZE_MAX);
    struct cluster_map *map = calloc(1, sizeof *map);
    if (map == NULL) {
        errbuf_put(err, errlen, "deployment map: out of memory");
        return BFTKV_E_NOMEM;
    }
    uint16_t listed = 0;
    int rc = header_decode(&r, map, &listed);
    if (rc == 0) {
        map->node_id = calloc(map->m, sizeof *map->node_id);
        map->node = calloc(map->m, sizeof *map->node);
        map->client = calloc(BFTKV_CLIENTS_MAX, sizeof *map->client);
        map->body = malloc(len);
        if (map->node_id == NULL || map->node == NULL || map->client == NULL || map->body == NULL) {
            errbuf_put(err, errlen, "deployment map: out of memory");
            rc = BFTKV_E_NOMEM;
        }
    }
    rc = rc != 0 ? rc : nodes_decode(&r, map);
    rc = rc != 0 ? rc : clients_decode(&r, map, listed);
    if (rc == 0 && r.at != len)
        rc = map_bad(&r, "%zu bytes after the last client", len - r.at);
    rc = rc != 0 ? rc : distinct_check(&r, map);
    rc = rc != 0 ? rc : placement_derive(&r, map);
    if (rc != 0) {
        cluster_map_free(map);
        return rc;
    }
    memcpy(map->body, body, len);
    map->body_len = len;
    *out = map;
    return 0;
}

/* ---- Building ------------------------------------------------------------------------ */

struct node_ord {
    uint32_t id;
    uint16_t at; /* index in the caller's arrays */
};

static int node_ord_cmp(const void *a, const void *b)
{
    const struct node_ord *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int cluster_map_build(const struct cluster_map_params *params, const uint32_t *node_id,
                      const struct bftkv_config_replica *node, uint16_t m, const struct bftkv_config_client *client,
                      uint16_t clients, struct cluster_map **out, char *err, size_t errlen)
{
    if (params == NULL || node_id == NULL || node == NULL || client == NULL || out == NULL) {
        errbuf_put(err, errlen, "deployment map: invalid argument");
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    if (m == 0 || m > BFTKV_NODES_MAX || clients > BFTKV_CLIENTS_MAX) {
        errbuf_put(err, errlen, "deployment map: %u nodes and %u client ids (expected 1..%u and at most %u)", m,
                   clients, BFTKV_NODES_MAX, BFTKV_CLIENTS_MAX);
        return BFTKV_E_INVAL;
    }
    uint16_t listed = 0;
    for (uint16_t c = 0; c < clients; c++)
        listed = (uint16_t)(listed + (client[c].allowed ? 1u : 0u));
    size_t cap = CLUSTER_MAP_HEADER_SIZE + (size_t)m * CLUSTER_MAP_NODE_SIZE_MAX + (size_t)listed * CLUSTER_MAP_CLIENT_SIZE;
    uint8_t *buf = malloc(cap);
    struct node_ord *ord = malloc((size_t)m * sizeof *ord);
    if (buf == NULL || ord == NULL) {
        free(buf);
        free(ord);
        errbuf_put(err, errlen, "deployment map: out of memory");
        return BFTKV_E_NOMEM;
    }
    for (uint16_t i = 0; i < m; i++)
        ord[i] = (struct node_ord){.id = node_id[i], .at = i};
    qsort(ord, m, sizeof *ord, node_ord_cmp);

    uint8_t *h = buf;
    memcpy(h, map_magic, sizeof map_magic);
    le16_store(h + 8, CLUSTER_MAP_VERSION);
    le16_store(h + 10, 0);
    le64_store(h + 12, params->epoch);
    le16_store(h + 20, params->f);
    le16_store(h + 22, params->rf);
    le32_store(h + 24, params->partitions);
    h[28] = (uint8_t)params->placement;
    h[29] = 0;
    le32_store(h + 30, params->vnodes);
    le16_store(h + 34, m);
    le16_store(h + 36, listed);
    size_t at = CLUSTER_MAP_HEADER_SIZE;
    int rc = 0;
    for (uint16_t i = 0; i < m && rc == 0; i++) {
        const struct bftkv_config_replica *n = &node[ord[i].at];
        size_t hlen = strnlen(n->host, sizeof n->host);
        if (hlen == 0 || hlen > BFTKV_CONFIG_HOST_MAX) {
            errbuf_put(err, errlen, "deployment map: node %u: empty or unterminated host", ord[i].id);
            rc = BFTKV_E_INVAL;
            break;
        }
        le32_store(buf + at, ord[i].id);
        le16_store(buf + at + 4, n->port);
        buf[at + 6] = (uint8_t)hlen;
        memcpy(buf + at + 7, n->host, hlen);
        at += 7u + hlen;
        memcpy(buf + at, n->x25519, 32);
        memcpy(buf + at + 32, n->ed25519, 32);
        at += 64u;
    }
    for (uint16_t c = 0; c < clients && rc == 0; c++) {
        if (!client[c].allowed)
            continue;
        le16_store(buf + at, c);
        memcpy(buf + at + 2, client[c].x25519, 32);
        memcpy(buf + at + 34, client[c].ed25519, 32);
        at += CLUSTER_MAP_CLIENT_SIZE;
    }
    free(ord);
    if (rc == 0) {
        BFTKV_ASSERT(at <= cap);
        rc = cluster_map_decode(buf, at, out, err, errlen);
        if (rc == BFTKV_E_CORRUPT || rc == BFTKV_E_VERSION)
            rc = BFTKV_E_INVAL; /* the caller's parameters, not damaged bytes */
    }
    free(buf);
    return rc;
}

int cluster_map_from_config(const struct bftkv_config *cfg, uint64_t epoch, struct cluster_map **out, char *err,
                            size_t errlen)
{
    if (cfg == NULL || out == NULL) {
        errbuf_put(err, errlen, "deployment map: invalid argument");
        return BFTKV_E_INVAL;
    }
    uint32_t ids[BFTKV_REPLICAS_MAX];
    for (uint16_t i = 0; i < cfg->n; i++)
        ids[i] = i;
    struct cluster_map_params params = {
        .epoch = epoch,
        .f = cfg->f,
        .rf = cfg->n,
        .partitions = 1,
        .placement = CLUSTER_PLACEMENT_RENDEZVOUS,
        .vnodes = 0,
    };
    return cluster_map_build(&params, ids, cfg->replica, cfg->n, cfg->client, cfg->clients, out, err, errlen);
}

/* ---- Signing, verifying, accepting --------------------------------------------------- */

void cluster_map_admin_keypair(const uint8_t seed[BFTKV_KEY_SEED_SIZE], uint8_t pk[32], uint8_t sk[64])
{
    struct auth_keypair kp;
    auth_keypair_from_seed(&kp, seed);
    memcpy(pk, kp.sign_pk, 32);
    memcpy(sk, kp.sign_sk, 64);
    sodium_memzero(&kp, sizeof kp);
}

int cluster_map_sign(const struct cluster_map *map, const uint8_t admin_sk[64], uint8_t **out, size_t *len)
{
    BFTKV_ASSERT(map != NULL && map->body != NULL && out != NULL && len != NULL);
    uint8_t *buf = malloc(map->body_len + CLUSTER_MAP_SIG_SIZE);
    if (buf == NULL)
        return BFTKV_E_NOMEM;
    memcpy(buf, map->body, map->body_len);
    int rc = crypto_sign_detached(buf + map->body_len, NULL, map->body, map->body_len, admin_sk);
    BFTKV_ASSERT(rc == 0);
    *out = buf;
    *len = map->body_len + CLUSTER_MAP_SIG_SIZE;
    return 0;
}

int cluster_map_verify(const uint8_t *signed_map, size_t len, const uint8_t admin_pk[32])
{
    if (signed_map == NULL || admin_pk == NULL)
        return BFTKV_E_INVAL;
    if (len < CLUSTER_MAP_HEADER_SIZE + CLUSTER_MAP_SIG_SIZE || len > CLUSTER_MAP_SIGNED_SIZE_MAX)
        return BFTKV_E_CORRUPT;
    size_t body_len = len - CLUSTER_MAP_SIG_SIZE;
    if (crypto_sign_verify_detached(signed_map + body_len, signed_map, body_len, admin_pk) != 0)
        return BFTKV_E_AUTH;
    return 0;
}

int cluster_map_open(const uint8_t *signed_map, size_t len, const uint8_t admin_pk[32], struct cluster_map **out,
                     char *err, size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    int rc = cluster_map_verify(signed_map, len, admin_pk);
#ifdef CLUSTER_MAP_BUG_UNSIGNED
    if (rc == BFTKV_E_AUTH)
        rc = 0;
#endif
    if (rc == BFTKV_E_AUTH) {
        errbuf_put(err, errlen, "deployment map: the signature does not verify with the admin public key");
        return rc;
    }
    if (rc != 0) {
        errbuf_put(err, errlen, "deployment map: %zu bytes: %s", len,
                   rc == BFTKV_E_CORRUPT ? "too short or too long to be a signed map" : "invalid argument");
        return rc;
    }
    rc = cluster_map_decode(signed_map, len - CLUSTER_MAP_SIG_SIZE, out, err, errlen);
    if (rc == 0) {
        memcpy((*out)->sig, signed_map + len - CLUSTER_MAP_SIG_SIZE, CLUSTER_MAP_SIG_SIZE);
        (*out)->has_sig = true;
    }
    return rc;
}

int cluster_map_signed(const struct cluster_map *map, uint8_t **out, size_t *len)
{
    if (map == NULL || !map->has_sig || out == NULL || len == NULL)
        return BFTKV_E_INVAL;
    uint8_t *buf = malloc(map->body_len + CLUSTER_MAP_SIG_SIZE);
    if (buf == NULL)
        return BFTKV_E_NOMEM;
    memcpy(buf, map->body, map->body_len);
    memcpy(buf + map->body_len, map->sig, CLUSTER_MAP_SIG_SIZE);
    *out = buf;
    *len = map->body_len + CLUSTER_MAP_SIG_SIZE;
    return 0;
}

/* What a candidate that verified and decoded is to the holder of current. */
static enum cluster_map_verdict map_compare(const struct cluster_map *current, const struct cluster_map *cand)
{
#ifdef CLUSTER_MAP_BUG_STALE
    if (current == NULL || cand->params.epoch != current->params.epoch)
        return CLUSTER_MAP_NEWER;
#endif
    if (current == NULL || cand->params.epoch > current->params.epoch)
        return CLUSTER_MAP_NEWER;
    if (cand->params.epoch < current->params.epoch)
        return CLUSTER_MAP_STALE;
    bool same = cand->body_len == current->body_len && memcmp(cand->body, current->body, cand->body_len) == 0;
    return same ? CLUSTER_MAP_SAME : CLUSTER_MAP_CONFLICT;
}

int cluster_map_accept(const struct cluster_map *current, const uint8_t *signed_map, size_t len,
                       const uint8_t admin_pk[32], struct cluster_map **out, enum cluster_map_verdict *verdict,
                       char *err, size_t errlen)
{
    BFTKV_ASSERT(out != NULL);
    *out = NULL;
    enum cluster_map_verdict v = CLUSTER_MAP_BAD;
    struct cluster_map *cand = NULL;
    int rc = cluster_map_open(signed_map, len, admin_pk, &cand, err, errlen);
    if (rc == 0) {
        v = map_compare(current, cand);
        unsigned long long got = cand->params.epoch, have = current != NULL ? current->params.epoch : 0;
        if (v == CLUSTER_MAP_STALE) {
            errbuf_put(err, errlen, "deployment map: epoch %llu is older than the current epoch %llu", got, have);
            rc = BFTKV_E_RANGE;
        } else if (v == CLUSTER_MAP_CONFLICT) {
            /* Both carry the admin's signature: only the admin key can have made
             * them, so it is compromised or its tool is broken (docs/design.md §6.2). */
            errbuf_put(err, errlen,
                       "deployment map: two different maps signed for epoch %llu: the admin key is compromised "
                       "or was misused",
                       got);
            rc = BFTKV_E_AUTH;
        }
        if (v == CLUSTER_MAP_NEWER) {
            *out = cand;
            cand = NULL;
        }
    }
    cluster_map_free(cand);
    if (verdict != NULL)
        *verdict = v;
    return rc;
}

/* ---- Lookups --------------------------------------------------------------------------- */

uint32_t cluster_map_key_partition(const struct cluster_map *map, const void *key, size_t len)
{
    BFTKV_ASSERT(map != NULL);
    return cluster_key_partition(key, len, map->params.partitions);
}

const uint16_t *cluster_map_partition_replicas(const struct cluster_map *map, uint32_t p)
{
    BFTKV_ASSERT(map != NULL && p < map->params.partitions);
    return map->replicas + (size_t)p * map->params.rf;
}

int cluster_map_node_index(const struct cluster_map *map, uint32_t node_id)
{
    BFTKV_ASSERT(map != NULL);
    uint16_t lo = 0, hi = map->m; /* node_id[] increases */
    while (lo < hi) {
        uint16_t mid = (uint16_t)(lo + (hi - lo) / 2u);
        if (map->node_id[mid] < node_id)
            lo = (uint16_t)(mid + 1u);
        else
            hi = mid;
    }
    return lo < map->m && map->node_id[lo] == node_id ? (int)lo : BFTKV_E_NOT_FOUND;
}
