/* A node serves the deployment map it verified at start to discovering
 * clients (docs/design.md §6.4; the messages are engine/wire_map.h). One per
 * protocol thread, owned by that thread alone: no lock.
 *
 * A MAP-REQUEST is answered only when it is the only message of its datagram,
 * its client is in the node's map's allow-list, its signature verifies with
 * that client's Ed25519 key and its nonce is above the last one answered for
 * the client (server/admin.h's guard, which also caps the replies at
 * ADMIN_REPLIES_PER_SEC). Signature checks are capped too
 * (NODE_MAP_VERIFIES_PER_SEC): a flood of forged requests costs the node at
 * most that many verifications a second, and costs discovery through this
 * node its answers (a client tries its other seeds).
 *
 * A request carries the epoch of the map its client holds. A verified request
 * whose epoch is above the node's own says the node runs an old map (a
 * client has seen a newer one): the node logs it once per newer epoch
 * (newest_seen). It keeps serving its own map, which such a client refuses.
 *
 * Refusals (docs/design.md §6.3). A client's REQUEST for a group the node
 * does not host is answered with a MAP-NOTICE carrying the node's epoch
 * (engine/wire_map.h), so a client routing with an older map learns that a
 * newer one exists. The notice is unauthenticated and smaller than the
 * REQUEST; it goes only to a client id in the node's allow-list, at most once
 * per NODE_MAP_NOTICE_INTERVAL_MS per client id and NODE_MAP_NOTICES_PER_SEC
 * in all: a spoofed flood of such REQUESTs reflects at most that many 32-byte
 * datagrams a second, and never more bytes than it sent.
 */
#ifndef BFTKV_SERVER_NODE_MAP_H
#define BFTKV_SERVER_NODE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "engine/wire_map.h"
#include "server/admin.h"

#define NODE_MAP_VERIFIES_PER_SEC 400u
#define NODE_MAP_NOTICE_INTERVAL_MS 1000u
#define NODE_MAP_NOTICES_PER_SEC 100u

enum node_map_drop {
    NODE_MAP_DROP_MALFORMED,      /* not a MAP-REQUEST, or not alone in its datagram, or offset past the end */
    NODE_MAP_DROP_UNKNOWN_CLIENT, /* not in the allow-list of the node's map */
    NODE_MAP_DROP_VERIFY_RATE,    /* over NODE_MAP_VERIFIES_PER_SEC */
    NODE_MAP_DROP_BAD_SIGNATURE,
    NODE_MAP_DROP_REPLAY,         /* nonce not above the last answered */
    NODE_MAP_DROP_RATE,           /* over ADMIN_REPLIES_PER_SEC */
    NODE_MAP_DROP_COUNT
};

struct node_map_server {
    const struct cluster_map *map; /* the node's, verified; outlives this */
    uint8_t *signed_map;           /* map->body || map->sig */
    uint32_t len;
    struct admin_guard guard;
    uint64_t verify_window_start_ns;
    uint32_t verify_window;
    uint64_t answered;
    uint64_t newest_seen;          /* the highest epoch a verified request held, if above the map's */
    uint64_t dropped[NODE_MAP_DROP_COUNT];
    uint8_t reply[WIRE_MAP_REPLY_MAX];
    /* Refusals (node_map_refuse). */
    uint64_t *notice_ns;           /* [map->clients]: the last notice to each client (0: none) */
    uint64_t notice_window_start_ns;
    uint32_t notice_window;
    uint64_t notices;              /* sent */
    uint64_t notices_limited;      /* not sent: an unknown client or over a rate */
    uint8_t notice[WIRE_MAP_NOTICE_SIZE];
};

/* 0; BFTKV_E_INVAL (a map never verified), BFTKV_E_NOMEM. */
int node_map_server_init(struct node_map_server *m, const struct cluster_map *map);
void node_map_server_free(struct node_map_server *m);

/* The MAP-REQUEST msg (len bytes; alone: its datagram had only it) at now_ns
 * (monotonic): the size of the reply in m->reply to send back to its source,
 * or 0 when it is dropped (its reason counted). */
size_t node_map_answer(struct node_map_server *m, const uint8_t *msg, size_t len, bool alone, uint64_t now_ns);

/* The message msg (len bytes, one framed message) named a group this node
 * does not host: when it is a REQUEST of a client in the allow-list and the
 * rates allow, the size of the MAP-NOTICE in m->notice to send back to its
 * source; else 0 (counted in notices_limited when a REQUEST). */
size_t node_map_refuse(struct node_map_server *m, const uint8_t *msg, size_t len, uint64_t now_ns);

#endif /* BFTKV_SERVER_NODE_MAP_H */
