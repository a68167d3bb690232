/* The replica's replay and rate guard for admin requests (server/admin.h). */
#include "server/admin.h"

#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"

int admin_guard_init(struct admin_guard *g, uint16_t clients)
{
    memset(g, 0, sizeof *g);
    g->last_nonce = calloc(clients ? clients : 1u, sizeof *g->last_nonce);
    if (g->last_nonce == NULL)
        return BFTKV_E_NOMEM;
    g->clients = clients;
    return 0;
}

void admin_guard_free(struct admin_guard *g)
{
    free(g->last_nonce);
    memset(g, 0, sizeof *g);
}

enum admin_drop admin_guard_admit(struct admin_guard *g, const struct admin_request *rq, uint64_t now_ns)
{
    if (rq->client >= g->clients || rq->nonce <= g->last_nonce[rq->client])
        return ADMIN_DROP_REPLAY;
    if (now_ns - g->window_start_ns >= 1000000000u || now_ns < g->window_start_ns) {
        g->window_start_ns = now_ns;
        g->window_replies = 0;
    }
    if (g->window_replies >= ADMIN_REPLIES_PER_SEC)
        return ADMIN_DROP_RATE;
    g->window_replies++;
    g->last_nonce[rq->client] = rq->nonce;
    return ADMIN_OK;
}
