/* View-change additions to the replica test cluster (vc_harness.h). */
#include "vc_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
    fprintf(stderr, "vc_harness: %s\n", what);
    abort();
}

static uint64_t msg_seq(const struct rh_msg *m)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++)
        v |= (uint64_t)m->bytes[16 + i] << (8u * i);
    return v;
}

static bool vh_filter_fn(struct rh_cluster *c, const struct rh_msg *m, void *arg)
{
    (void)c;
    struct vh_filter *f = arg;
    uint8_t type = rh_msg_type(m);
    bool from_replica = m->from != RH_FROM_CLIENT;
    if (from_replica && type == f->record_type && m->from == f->record_from && f->record_type != 0) {
        free(f->recorded);
        f->recorded = malloc(m->len);
        if (f->recorded == NULL)
            die("malloc");
        memcpy(f->recorded, m->bytes, m->len);
        f->recorded_len = m->len;
    }
    bool drop = (from_replica && (f->silent >> m->from) & 1u) || ((f->deaf >> m->to) & 1u)
                || (from_replica && type < 32 && (f->drop_types >> type) & 1u)
                || (from_replica && type < 32 && (f->keep_to_mask_types >> type) & 1u && !((f->keep_to >> m->to) & 1u))
                || (from_replica && m->from < 64 && m->to < 64 && (f->cut[m->from] >> m->to) & 1u
                    && (f->cut_types == 0 || (type < 32 && (f->cut_types >> type) & 1u)))
                || (from_replica && type == WIRE_PREPREPARE && f->drop_pp_seq != 0 && msg_seq(m) == f->drop_pp_seq);
    if (drop) {
        f->dropped++;
        return true;
    }
    if (from_replica && type < 32 && (f->hold_types >> type) & 1u) {
        if (f->nheld == f->held_cap) {
            f->held_cap = f->held_cap ? 2u * f->held_cap : 16u;
            f->held = realloc(f->held, f->held_cap * sizeof *f->held);
            if (f->held == NULL)
                die("realloc");
        }
        struct rh_msg *h = &f->held[f->nheld++];
        *h = *m;
        h->bytes = malloc(m->len);
        if (h->bytes == NULL)
            die("malloc");
        memcpy(h->bytes, m->bytes, m->len);
        return true;
    }
    return false;
}

void vh_release(struct rh_cluster *c, struct vh_filter *f)
{
    uint32_t types = f->hold_types;
    f->hold_types = 0;
    for (size_t i = 0; i < f->nheld; i++) {
        rh_inject(c, f->held[i].from, f->held[i].to, f->held[i].bytes, f->held[i].len);
        free(f->held[i].bytes);
    }
    f->nheld = 0;
    rh_run(c);
    f->hold_types = types;
}

void vh_filter_install(struct rh_cluster *c, struct vh_filter *f)
{
    c->filter = vh_filter_fn;
    c->filter_arg = f;
}

void vh_filter_fini(struct vh_filter *f)
{
    for (size_t i = 0; i < f->nheld; i++)
        free(f->held[i].bytes);
    free(f->held);
    f->held = NULL;
    f->nheld = f->held_cap = 0;
    free(f->recorded);
    f->recorded = NULL;
    f->recorded_len = 0;
}

void vh_tick_run(struct rh_cluster *c, uint64_t t)
{
    rh_tick(c, t);
    rh_run(c);
}

uint64_t vh_advance(struct rh_cluster *c, uint64_t until, uint64_t step)
{
    rh_run(c);
    uint64_t t = c->now_ns;
    while (t < until) {
        t = t + step < until ? t + step : until;
        vh_tick_run(c, t);
    }
    return t;
}

size_t vh_view_change(struct rh_cluster *c, uint8_t *buf, size_t cap, uint16_t from, uint64_t view, uint64_t h,
                      const struct wire_vc_entry *cp, uint16_t ncp, const struct wire_vc_entry *p, uint16_t np,
                      const struct wire_vc_entry *q, uint16_t nq)
{
    size_t auth_off = 0;
    size_t len = wire_encode_view_change(buf, cap, c->group, from, view, h, cp, ncp, p, np, q, nq, &auth_off);
    if (len == 0)
        die("wire_encode_view_change");
    auth_sign(&c->rauth[from], buf, len, auth_off);
    return len;
}

void vh_resign(struct rh_cluster *c, uint16_t from, uint8_t *msg, size_t len)
{
    struct wire_header h;
    wire_header_read(msg, &h);
    size_t auth_off = WIRE_HEADER_SIZE + (size_t)h.body_len;
    if (auth_off + WIRE_SIG_SIZE != len)
        die("vh_resign: not a signed message");
    auth_sign(&c->rauth[from], msg, len, auth_off);
}

void vh_decode(const struct rh_cluster *c, const uint8_t *buf, size_t len, struct wire_msg *m)
{
    size_t used = 0;
    if (wire_decode(buf, len, &c->lim, m, &used, NULL) != 0 || used != len)
        die("vh_decode");
}

const uint8_t *vh_exec_digest(const struct rh_cluster *c, uint16_t replica, uint64_t seq)
{
    for (size_t i = 0; i < c->nexecs[replica]; i++) {
        if (c->execs[replica][i].seq == seq)
            return c->execs[replica][i].digest;
    }
    return NULL;
}
