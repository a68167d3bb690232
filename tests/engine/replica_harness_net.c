/* The network of the replica test cluster (struct rh_net in replica_harness.h):
 * what happens to a message between an outbox and the replica it is for. In
 * order: a copy is recorded; the fixed rules drop it (partitions, silence,
 * deafness, types, link cuts); one roll of the cluster's generator loses or
 * duplicates it; a crash-restart due at this point of the workload happens;
 * the test's own filter may drop it; and it may be held until rh_release. */
#include "replica_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
    fprintf(stderr, "replica_harness_net: %s\n", what);
    abort();
}

static bool bit(uint64_t set, uint32_t i)
{
    return i < 64u && ((set >> i) & 1u) != 0;
}

static uint64_t msg_seq(const struct rh_msg *m)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)m->bytes[16 + i] << (8u * i);
    return v;
}

static void record(struct rh_net *net, const struct rh_msg *m)
{
    free(net->recorded);
    net->recorded = malloc(m->len);
    if (net->recorded == NULL)
        die("malloc");
    memcpy(net->recorded, m->bytes, m->len);
    net->recorded_len = m->len;
}

/* The fixed rules: true drops. */
static bool ruled_out(const struct rh_net *net, const struct rh_msg *m, uint8_t type)
{
    bool from_replica = m->from != RH_FROM_CLIENT;
    if (bit(net->isolated, m->to) || (from_replica && bit(net->isolated, m->from)))
        return true;
    if (bit(net->deaf, m->to))
        return true;
    if (!from_replica)
        return false;
    return bit(net->silent, m->from) || bit(net->drop_types, type)
           || (bit(net->keep_to_mask_types, type) && !bit(net->keep_to, m->to))
           || (m->from < RH_REPLICAS_MAX && bit(net->cut[m->from], m->to)
               && (net->cut_types == 0 || bit(net->cut_types, type)))
           || (type == WIRE_PREPREPARE && net->drop_pp_seq != 0 && msg_seq(m) == net->drop_pp_seq);
}

static void hold(struct rh_net *net, const struct rh_msg *m)
{
    if (net->nheld == net->held_cap) {
        net->held_cap = net->held_cap ? 2u * net->held_cap : 16u;
        net->held = realloc(net->held, net->held_cap * sizeof *net->held);
        if (net->held == NULL)
            die("realloc");
    }
    struct rh_msg *h = &net->held[net->nheld++];
    *h = *m;
    h->bytes = malloc(m->len);
    if (h->bytes == NULL)
        die("malloc");
    memcpy(h->bytes, m->bytes, m->len);
}

bool rh_net_drops(struct rh_cluster *c, struct rh_msg *m)
{
    struct rh_net *net = &c->net;
    uint8_t type = rh_msg_type(m);
    bool from_replica = m->from != RH_FROM_CLIENT;
    if (from_replica && net->record_type != 0 && type == net->record_type && m->from == net->record_from)
        record(net, m);
    if (ruled_out(net, m, type)) {
        c->dropped++;
        return true;
    }
    uint64_t roll = rh_rand(c) % 100u;
    if (roll < net->loss_pct) {
        c->dropped++;
        return true;
    }
    if (roll >= 100u - net->dup_pct)
        rh_inject(c, m->from, m->to, m->bytes, m->len);
    if (c->restart_at_ops != 0 && c->ops_done >= c->restart_at_ops && m->to != c->restart_who) {
        c->restart_at_ops = 0;
        c->restart_le = rh_stats(c, c->restart_who)->last_executed;
        rh_restart(c, c->restart_who);
    }
    if (c->filter != NULL && c->filter(c, m, c->filter_arg))
        return true;
    if (from_replica && bit(net->hold_types, type) && (net->hold_to == 0 || bit(net->hold_to, m->to))) {
        hold(net, m);
        return true;
    }
    return false;
}

bool rh_net_loses_reply(struct rh_cluster *c, uint16_t replica)
{
    if (bit(c->net.isolated, replica) || (!c->net.spare_replies && rh_rand(c) % 100u < c->net.loss_pct)) {
        c->dropped++;
        return true;
    }
    return false;
}

void rh_release(struct rh_cluster *c)
{
    struct rh_net *net = &c->net;
    for (size_t i = 0; i < net->nheld; i++) {
        rh_inject(c, net->held[i].from, net->held[i].to, net->held[i].bytes, net->held[i].len);
        free(net->held[i].bytes);
    }
    net->nheld = 0;
}

void rh_net_clear(struct rh_cluster *c)
{
    struct rh_net *net = &c->net;
    for (size_t i = 0; i < net->nheld; i++)
        free(net->held[i].bytes);
    free(net->held);
    free(net->recorded);
    memset(net, 0, sizeof *net);
}
