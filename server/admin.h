/* The server's side of the admin protocol (engine/wire_admin.h has its
 * messages): the replay and rate guard a replica puts in front of its answers.
 * The server runtime (server/server.c, server/server_staged.c) checks an ADMIN
 * message with wire_admin_request_check, admits it here and answers with the stats
 * JSON (server/server_stats.c).
 */
#ifndef BFTKV_SERVER_ADMIN_H
#define BFTKV_SERVER_ADMIN_H

#include <stdint.h>

#include "engine/wire_admin.h"

/* Replica: the replay and rate guard. Memory: 8 bytes per client id. */
struct admin_guard {
    uint64_t *last_nonce; /* per client id: the last nonce answered */
    uint16_t clients;
    uint64_t window_start_ns;
    uint32_t window_replies;
};

int admin_guard_init(struct admin_guard *g, uint16_t clients);
void admin_guard_free(struct admin_guard *g);
/* May rq be answered at now_ns (monotonic)? ADMIN_OK records it as answered;
 * else ADMIN_DROP_REPLAY or ADMIN_DROP_RATE. */
enum admin_drop admin_guard_admit(struct admin_guard *g, const struct admin_request *rq, uint64_t now_ns);

#endif /* BFTKV_SERVER_ADMIN_H */
