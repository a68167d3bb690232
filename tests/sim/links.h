/* The link shapes: network faults that cut some links and leave the others
 * working, the ones a real network produces and a node-set partition does not
 * (tests/sim/README.md "Faults"):
 *
 *   cut-link  one link between two replicas is cut both ways; every other link
 *             works, so the group goes on while the two cannot talk;
 *   one-way   a replica that can send but hears nothing ("deaf"), one whose
 *             messages reach nobody while it hears everything ("mute"), or a
 *             single link cut in one direction only (a -> b lost, b -> a works);
 *   flap      a partition -- one replica alone, or the replicas split in two
 *             halves neither of which holds a quorum -- that comes and goes
 *             several times.
 *
 * All of them end before GST: the run's GST moves to the end of the last one
 * when it would come earlier, so the heal is when the last shape ends. Half the
 * time the replica singled out is replica 0, the primary of view 0. A plan is
 * drawn from its own PRNG stream (simrun.c), so drawing it shifts no other draw
 * of the seed.
 */
#ifndef BFTKV_SIM_LINKS_H
#define BFTKV_SIM_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "tests/sim/netsim.h"
#include "common/prng.h"

/* Link shapes per seed: 1, or 2 one seed in three. */
#define LINKS_MAX 2u

enum link_kind {
    LINK_CUT = 1,
    LINK_ONEWAY = 2,
    LINK_FLAP = 4,
    LINK_ANY = 7,
};

enum link_variant {
    LINK_V_NONE = 0,
    LINK_V_DEAF,    /* one-way: nothing reaches replica a */
    LINK_V_MUTE,    /* one-way: nothing from replica a arrives */
    LINK_V_ONE,     /* one-way: a -> b lost, b -> a works */
    LINK_V_ALONE,   /* flap: replica a alone */
    LINK_V_HALVES,  /* flap: floor(n/2) replicas against the rest */
};

struct link_fault {
    uint8_t kind;     /* one enum link_kind bit */
    uint8_t variant;  /* enum link_variant */
    uint16_t a, b;    /* the replicas singled out (b: cut-link and one-way link only) */
    uint64_t start_ns;
    uint64_t end_ns;
    uint64_t on_ns;   /* flap: in force for on_ns, then healed for off_ns */
    uint64_t off_ns;
    uint64_t side_seed; /* flap halves: which nodes go to which side */
};

struct link_plan {
    uint32_t count;
    struct link_fault f[LINKS_MAX];
    uint64_t end_ns; /* when the last one ends */
};

/* Draw a plan of the kinds in the mask for n replicas. */
void link_plan_draw(struct link_plan *p, struct prng *rng, uint16_t n, uint32_t kinds);

/* Add the plan's partitions to the network (nodes: replicas 0..n-1, then the
 * clients). false when the network has no room for them. */
bool link_plan_apply(const struct link_plan *p, struct netsim *ns, uint16_t n, uint32_t nodes);

/* Append the plan to a scenario line, e.g. " links: cut 0-2@5-180ms". */
size_t link_plan_describe(const struct link_plan *p, char *buf, size_t cap, size_t at);

/* Parse a mode name: "links" (every kind), "cut-link", "one-way", "flap"; 0 when
 * it is none of them. */
uint32_t link_kinds_parse(const char *name, size_t len);

#endif /* BFTKV_SIM_LINKS_H */
