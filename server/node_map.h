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
 */
#ifndef BFTKV_SERVER_NODE_MAP_H
#define BFTKV_SERVER_NODE_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "engine/wire_map.h"
#include "server/admin.h"

#define NODE_MAP_VERIFIES_PER_SEC 400u

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
};

/* 0; BFTKV_E_INVAL (a map never verified), BFTKV_E_NOMEM. */
int node_map_server_init(struct node_map_server *m, const struct cluster_map *map);
void node_map_server_free(struct node_map_server *m);

/* The MAP-REQUEST msg (len bytes; alone: its datagram had only it) at now_ns
 * (monotonic): the size of the reply in m->reply to send back to its source,
 * or 0 when it is dropped (its reason counted). */
size_t node_map_answer(struct node_map_server *m, const uint8_t *msg, size_t len, bool alone, uint64_t now_ns);

#endif /* BFTKV_SERVER_NODE_MAP_H */
