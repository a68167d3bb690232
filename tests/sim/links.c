/* The link shapes (see links.h): drawing a plan, turning it into the network's
 * partitions, and describing it on the scenario line. */
#include "tests/sim/links.h"

#include <stdio.h>
#include <string.h>

#include "common/assert.h"

#define MS 1000000ull

/* Timing. Every shape starts in the first 30 ms. A cut or one-way link lasts
 * 20..250 ms: from well under the request timeout T = 50 ms (nothing notices)
 * to several T (a replica cut off from the primary suspects it while the rest
 * of the group goes on). A flap is in force 5..40 ms, healed 5..40 ms, 3..6
 * times. */
#define LINK_START_MAX_NS (30ull * MS)
#define LINK_DURATION_MIN_NS (20ull * MS)
#define LINK_DURATION_MAX_NS (250ull * MS)
#define FLAP_PHASE_MIN_NS (5ull * MS)
#define FLAP_PHASE_MAX_NS (40ull * MS)
#define FLAP_CYCLES_MIN 3u
#define FLAP_CYCLES_MAX 6u

/* Replica 0 (the primary of view 0) half the time, else any. */
static uint16_t draw_replica(struct prng *rng, uint16_t n)
{
    return prng_below(rng, 2) == 0 ? 0 : (uint16_t)prng_below(rng, n);
}

static uint16_t draw_other(struct prng *rng, uint16_t n, uint16_t a)
{
    uint16_t b = (uint16_t)prng_below(rng, n - 1u);
    return b >= a ? (uint16_t)(b + 1u) : b;
}

static uint8_t draw_kind(struct prng *rng, uint32_t kinds)
{
    uint8_t opts[3];
    uint32_t k = 0;
    for (uint32_t bit = LINK_CUT; bit <= LINK_FLAP; bit <<= 1)
        if (kinds & bit)
            opts[k++] = (uint8_t)bit;
    BFTKV_ASSERT(k > 0);
    return opts[prng_below(rng, k)];
}

void link_plan_draw(struct link_plan *p, struct prng *rng, uint16_t n, uint32_t kinds)
{
    BFTKV_ASSERT(n >= 2);
    memset(p, 0, sizeof(*p));
    p->count = prng_below(rng, 3) == 0 ? 2u : 1u;
    for (uint32_t i = 0; i < p->count; i++) {
        struct link_fault *lf = &p->f[i];
        lf->kind = draw_kind(rng, kinds);
        lf->start_ns = prng_below(rng, LINK_START_MAX_NS);
        lf->a = draw_replica(rng, n);
        switch (lf->kind) {
        case LINK_CUT:
            lf->b = draw_other(rng, n, lf->a);
            lf->end_ns = lf->start_ns + prng_range(rng, LINK_DURATION_MIN_NS, LINK_DURATION_MAX_NS);
            break;
        case LINK_ONEWAY:
            lf->variant = (uint8_t)(LINK_V_DEAF + prng_below(rng, 3));
            if (lf->variant == LINK_V_ONE)
                lf->b = draw_other(rng, n, lf->a);
            lf->end_ns = lf->start_ns + prng_range(rng, LINK_DURATION_MIN_NS, LINK_DURATION_MAX_NS);
            break;
        default: {
            lf->variant = prng_below(rng, 2) == 0 ? LINK_V_ALONE : LINK_V_HALVES;
            lf->on_ns = prng_range(rng, FLAP_PHASE_MIN_NS, FLAP_PHASE_MAX_NS);
            lf->off_ns = prng_range(rng, FLAP_PHASE_MIN_NS, FLAP_PHASE_MAX_NS);
            uint64_t cycles = prng_range(rng, FLAP_CYCLES_MIN, FLAP_CYCLES_MAX);
            /* It ends as its last in-force phase does. */
            lf->end_ns = lf->start_ns + cycles * (lf->on_ns + lf->off_ns) - lf->off_ns;
            lf->side_seed = prng_next(rng);
            break;
        }
        }
        if (lf->end_ns > p->end_ns)
            p->end_ns = lf->end_ns;
    }
}

bool link_plan_apply(const struct link_plan *p, struct netsim *ns, uint16_t n, uint32_t nodes)
{
    for (uint32_t i = 0; i < p->count; i++) {
        const struct link_fault *lf = &p->f[i];
        enum netsim_cut_kind kind = lf->kind == LINK_CUT      ? NETSIM_CUT_LINK
                                    : lf->kind == LINK_ONEWAY ? NETSIM_CUT_ONEWAY
                                                              : NETSIM_CUT_SPLIT;
        uint8_t *cut = netsim_partition_add_kind(ns, kind, lf->start_ns, lf->end_ns, lf->on_ns, lf->off_ns);
        if (!cut)
            return false;
        switch (lf->variant) {
        case LINK_V_DEAF: /* every node (clients too) sends, a receives nothing */
            memset(cut, 1, nodes);
            cut[lf->a] = 2;
            break;
        case LINK_V_MUTE:
            memset(cut, 2, nodes);
            cut[lf->a] = 1;
            break;
        case LINK_V_ALONE:
            cut[lf->a] = 1;
            break;
        case LINK_V_HALVES: {
            struct prng side;
            prng_seed(&side, lf->side_seed);
            for (uint16_t placed = 0; placed < n / 2u;) {
                uint16_t r = (uint16_t)prng_below(&side, n);
                if (!cut[r]) {
                    cut[r] = 1;
                    placed++;
                }
            }
            for (uint32_t nd = n; nd < nodes; nd++)
                cut[nd] = (uint8_t)prng_below(&side, 2);
            break;
        }
        default: /* a cut link, or one link cut one way: a's messages to b are lost */
            cut[lf->a] = 1;
            cut[lf->b] = 2;
            break;
        }
    }
    return true;
}

size_t link_plan_describe(const struct link_plan *p, char *buf, size_t cap, size_t at)
{
    for (uint32_t i = 0; i < p->count && at < cap; i++) {
        const struct link_fault *lf = &p->f[i];
        char what[96];
        switch (lf->variant) {
        case LINK_V_DEAF:
            snprintf(what, sizeof(what), "deaf %u", lf->a);
            break;
        case LINK_V_MUTE:
            snprintf(what, sizeof(what), "mute %u", lf->a);
            break;
        case LINK_V_ONE:
            snprintf(what, sizeof(what), "one-way %u>%u", lf->a, lf->b);
            break;
        case LINK_V_ALONE:
            snprintf(what, sizeof(what), "flap alone %u on=%llums off=%llums", lf->a,
                     (unsigned long long)(lf->on_ns / MS), (unsigned long long)(lf->off_ns / MS));
            break;
        case LINK_V_HALVES:
            snprintf(what, sizeof(what), "flap halves on=%llums off=%llums", (unsigned long long)(lf->on_ns / MS),
                     (unsigned long long)(lf->off_ns / MS));
            break;
        default:
            snprintf(what, sizeof(what), "cut %u-%u", lf->a, lf->b);
            break;
        }
        int k = snprintf(buf + at, cap - at, "%s%s@%llu-%llums", i == 0 ? " links: " : ", ", what,
                         (unsigned long long)(lf->start_ns / MS), (unsigned long long)(lf->end_ns / MS));
        if (k < 0)
            break;
        at = at + (size_t)k >= cap ? cap - 1 : at + (size_t)k;
    }
    return at;
}

uint32_t link_kinds_parse(const char *name, size_t len)
{
    static const struct {
        const char *name;
        uint32_t kinds;
    } names[] = {{"links", LINK_ANY}, {"cut-link", LINK_CUT}, {"one-way", LINK_ONEWAY}, {"flap", LINK_FLAP}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && strncmp(name, names[i].name, len) == 0)
            return names[i].kinds;
    return 0;
}
