/* A node's answers to map discovery (server/node_map.h). */
#include "server/node_map.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/log.h"

int node_map_server_init(struct node_map_server *m, const struct cluster_map *map)
{
    memset(m, 0, sizeof *m);
    uint8_t *bytes = NULL;
    size_t len = 0;
    int rc = cluster_map_signed(map, &bytes, &len);
    if (rc != 0)
        return rc;
    BFTKV_ASSERT(len <= CLUSTER_MAP_SIGNED_SIZE_MAX);
    rc = admin_guard_init(&m->guard, map->clients);
    if (rc != 0) {
        free(bytes);
        return rc;
    }
    m->notice_ns = calloc(map->clients > 0 ? map->clients : 1u, sizeof *m->notice_ns);
    if (m->notice_ns == NULL) {
        admin_guard_free(&m->guard);
        free(bytes);
        return BFTKV_E_NOMEM;
    }
    m->map = map;
    m->signed_map = bytes;
    m->len = (uint32_t)len;
    return 0;
}

void node_map_server_free(struct node_map_server *m)
{
    free(m->signed_map);
    free(m->notice_ns);
    admin_guard_free(&m->guard);
    memset(m, 0, sizeof *m);
}

static size_t node_map_drop(struct node_map_server *m, enum node_map_drop d)
{
    m->dropped[d]++;
    return 0;
}

size_t node_map_answer(struct node_map_server *m, const uint8_t *msg, size_t len, bool alone, uint64_t now_ns)
{
    struct wire_map_request rq;
    if (!alone || !wire_map_request_check(msg, len, &rq) || rq.offset >= m->len)
        return node_map_drop(m, NODE_MAP_DROP_MALFORMED);
    if (rq.client >= m->map->clients || !m->map->client[rq.client].allowed)
        return node_map_drop(m, NODE_MAP_DROP_UNKNOWN_CLIENT);
    /* The cheap checks passed: spend one of this second's verifications. */
    if (now_ns - m->verify_window_start_ns >= 1000000000u || now_ns < m->verify_window_start_ns) {
        m->verify_window_start_ns = now_ns;
        m->verify_window = 0;
    }
    if (m->verify_window >= NODE_MAP_VERIFIES_PER_SEC)
        return node_map_drop(m, NODE_MAP_DROP_VERIFY_RATE);
    m->verify_window++;
    if (!wire_map_request_verify(msg, len, m->map->client[rq.client].ed25519))
        return node_map_drop(m, NODE_MAP_DROP_BAD_SIGNATURE);
    if (rq.epoch > m->map->params.epoch && rq.epoch > m->newest_seen) {
        m->newest_seen = rq.epoch;
        log_warn("client %u holds map epoch %llu, newer than this node's %llu: this node runs an old map", rq.client,
                 (unsigned long long)rq.epoch, (unsigned long long)m->map->params.epoch);
    }
    struct admin_request guard_rq = {.client = rq.client, .nonce = rq.nonce, .command = 0};
    enum admin_drop d = admin_guard_admit(&m->guard, &guard_rq, now_ns);
    if (d != ADMIN_OK)
        return node_map_drop(m, d == ADMIN_DROP_RATE ? NODE_MAP_DROP_RATE : NODE_MAP_DROP_REPLAY);
    size_t n = wire_map_reply_encode(m->reply, sizeof m->reply, m->map->params.epoch, &rq, m->signed_map, m->len);
    BFTKV_ASSERT(n > 0); /* offset below len, reply buffer of the largest chunk */
    m->answered++;
    return n;
}

size_t node_map_refuse(struct node_map_server *m, const uint8_t *msg, size_t len, uint64_t now_ns)
{
    if (len < WIRE_HEADER_SIZE || msg[3] != WIRE_REQUEST)
        return 0; /* only a client's request is answered; a replica's message is another map's business */
    struct wire_header h;
    wire_header_read(msg, &h);
    if (h.sender >= m->map->clients || !m->map->client[h.sender].allowed) {
        m->notices_limited++;
        return 0;
    }
    uint64_t *last = &m->notice_ns[h.sender];
    if (*last != 0 && now_ns >= *last && now_ns - *last < (uint64_t)NODE_MAP_NOTICE_INTERVAL_MS * 1000000u) {
        m->notices_limited++;
        return 0;
    }
    if (now_ns - m->notice_window_start_ns >= 1000000000u || now_ns < m->notice_window_start_ns) {
        m->notice_window_start_ns = now_ns;
        m->notice_window = 0;
    }
    if (m->notice_window >= NODE_MAP_NOTICES_PER_SEC) {
        m->notices_limited++;
        return 0;
    }
    m->notice_window++;
    *last = now_ns == 0 ? 1u : now_ns;
    struct wire_map_notice n = {.group = h.group, .epoch = m->map->params.epoch, .timestamp = h.seq};
    size_t r = wire_map_notice_encode(m->notice, sizeof m->notice, &n);
    BFTKV_ASSERT(r == WIRE_MAP_NOTICE_SIZE);
    m->notices++;
    return r;
}
