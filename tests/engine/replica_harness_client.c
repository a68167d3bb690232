/* The closed-loop clients of the replica test cluster (replica_harness.h): each
 * client has one PUT outstanding, sent to the primary it believes in (to every
 * replica when large), done on f+1 replies that match in status and result
 * digest (TOCS 2002 §4.1), then the next; one that waits longer than
 * client_timeout_ns sends its request again to every replica. Keys are drawn
 * from the cluster's seeded generator, values follow (client, timestamp). */
#include "replica_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
    fprintf(stderr, "replica_harness_client: %s\n", what);
    abort();
}

/* The primary of the highest view a reachable replica is in. */
static uint16_t primary_now(struct rh_cluster *c)
{
    uint64_t v = 0;
    for (uint16_t i = 0; i < c->n; i++) {
        if (!((c->net.isolated >> i) & 1u) && pbft_replica_view(c->r[i]) > v)
            v = pbft_replica_view(c->r[i]);
    }
    return (uint16_t)(v % c->n);
}

static void client_submit(struct rh_cluster *c, uint16_t k)
{
    struct rh_client *cl = &c->cl[k];
    static uint8_t value[RH_VALUE_MAX];
    char key[16];
    cl->ts++;
    snprintf(key, sizeof key, "key-%u", (unsigned)(rh_rand(c) % c->keys));
    for (uint32_t i = 0; i < c->value_len; i++)
        value[i] = (uint8_t)(k * 31u + cl->ts * 7u + i);
    cl->len = rh_request(c, cl->buf, sizeof cl->buf, k, 0, cl->ts, WIRE_OP_PUT, key, value, c->value_len, 0);
    cl->busy = true;
    cl->voted = 0;
    cl->sent_ns = c->now_ns;
    c->ops_issued++;
    /* A large request goes to every replica (docs/design.md §5.3). */
    bool large = cl->len - (size_t)c->n * BFTKV_MAC_SIZE > BFTKV_INLINE_REQUEST_MAX;
    rh_send(c, large ? UINT16_MAX : primary_now(c), cl->buf, cl->len);
}

void rh_client_reply(struct rh_cluster *c, const struct rh_reply *rp)
{
    struct rh_client *cl = &c->cl[rp->client];
    if (!cl->busy || rp->timestamp != cl->ts)
        return;
    cl->voted |= 1ull << rp->replica;
    cl->status[rp->replica] = rp->status;
    memcpy(cl->digest[rp->replica], rp->digest, 32);
    uint32_t same = 0;
    for (uint16_t i = 0; i < c->n; i++) {
        if ((cl->voted >> i & 1u) && cl->status[i] == rp->status && memcmp(cl->digest[i], rp->digest, 32) == 0)
            same++;
    }
    if (same < (uint32_t)c->f + 1u)
        return;
    if (rp->status != 0)
        die("a PUT failed");
    cl->busy = false;
    c->ops_done++;
    if (c->ops_issued < c->ops_target)
        client_submit(c, rp->client);
}

void rh_clients_tick(struct rh_cluster *c)
{
    for (uint16_t k = 0; k < c->clients; k++) {
        struct rh_client *cl = &c->cl[k];
        if (cl->busy && c->now_ns - cl->sent_ns >= c->client_timeout_ns) {
            rh_send(c, UINT16_MAX, cl->buf, cl->len); /* to everyone (TOCS 2002 §4.1) */
            cl->sent_ns = c->now_ns;
        }
    }
}

void rh_workload(struct rh_cluster *c, uint32_t ops, uint32_t keys, uint32_t value_len)
{
    if (value_len > RH_VALUE_MAX)
        die("value too large");
    c->ops_target = c->ops_issued + ops;
    c->keys = keys;
    c->value_len = value_len;
    for (uint16_t k = 0; k < c->clients && c->ops_issued < c->ops_target; k++) {
        if (!c->cl[k].busy)
            client_submit(c, k);
    }
}

bool rh_workload_done(struct rh_cluster *c)
{
    return c->ops_done >= c->ops_target;
}
