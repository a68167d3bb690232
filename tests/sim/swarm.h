/* Swarm testing for all mode (docs/design.md §5.7, tests/sim/README.md "The
 * swarm draw"): each seed first draws WHICH fault classes are on and how strong
 * they are, then simrun.c draws the scenario within them.
 *
 * One random draw over every fault at once spreads each seed thin: a bug that
 * needs an equivocating primary AND two view changes in a row AND the liar's
 * VIEW-CHANGE in the new primary's set shows once in thousands of seeds, because
 * every other fault of the seed gets in its way (a crash, a silent backup, a
 * short partition that heals before any timer fires). A seed with few classes
 * on, each strong, reaches such shapes often; across seeds every combination
 * comes up, the old one (everything on) included.
 *
 * The classes, each on or off per seed:
 *
 *   net       loss, duplication, jitter and short partitions until GST, with a
 *             drawn ceiling per seed (loss up to 3, 10 or 30%, duplication up to
 *             0, 1 or 10%, 0..2 partitions);
 *   links     the link shapes (links.h);
 *   byz       1..f Byzantine replicas whose behaviours come from a drawn subset
 *             of engine/byzantine.h's modes (at least one); the primary of view 0
 *             is among them never, two seeds in three, or always (drawn), and
 *             then behaves as one of a drawn subset of silent, drop, equivocate,
 *             slow; with a lying state server among them, the network holds
 *             the correct replicas' STATE messages SWARM_STATE_DELAY_NS (the
 *             state race: a fetching replica asks the liar first);
 *   crash     1..f replicas crash before GST and come back empty (or, durable,
 *             from their disks), counting toward f;
 *   restart   the restart shape (restarts.h);
 *   isolate   one long partition (T/2 .. 5T, T the request timeout) that cuts off
 *             the primary of view 0 alone, the primary of view 1 alone, the two
 *             together, one backup alone, or 1..f replicas drawn, while the
 *             clients stay with the rest (two seeds in three; the primary of
 *             view 1 alone twice as often as each other kind); it heals at a drawn moment and GST
 *             moves to the heal. Cutting off the primary of view 1 while view 0
 *             stalls makes the first view change fail and a second one follow
 *             (the shape an equivocating primary's lying VIEW-CHANGE needs: it
 *             claims its B batches prepared in the view just below the new one);
 *             a backup cut off long enough falls behind the log window and
 *             fetches a state (the shape a lying state server needs).
 *
 * and three knobs: the share of read-only clients (0, 50 or 100%: the stale-read
 * attack needs read-only GETs), one batch in flight (W = 1) in one seed in four,
 * and a short log (checkpoint interval 16 or 32, log window 2K) in one seed in
 * four, so that a replica cut off for a while fetches a state rather than the
 * missing batches.
 *
 * The draw comes from its own PRNG stream, so the seeds of every other mode
 * (none, net, byzantine, restart, links) and of all mode with --faulty,
 * --behaviour or --no-swarm replay exactly as before it existed.
 */
#ifndef BFTKV_SIM_SWARM_H
#define BFTKV_SIM_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "common/prng.h"

enum swarm_isolation {
    SWARM_ISO_PRIMARY = 0,   /* the primary of view 0 alone */
    SWARM_ISO_NEXT = 1,      /* the primary of view 1 alone */
    SWARM_ISO_PRIMARIES = 2, /* the primaries of views 0 and 1 together */
    SWARM_ISO_BACKUP = 3,    /* one backup alone */
    SWARM_ISO_SOME = 4,      /* 1..f replicas drawn */
    SWARM_ISO_KINDS = 5,
};

/* The state race: with a lying state server among the faulty replicas, the
 * network holds the correct replicas' STATE messages this long (faults.h), so
 * that a replica fetching a state asks the liar first; without it the liar is
 * the first server one time in n - 1, and the shape came once in ~750 seeds. */
#define SWARM_STATE_DELAY_NS 2000000ull

struct swarm {
    bool on;
    bool net, links, byz, crash, restart, isolate;
    uint32_t behaviours;         /* bit (1 << enum byz_mode) per mode a backup may draw */
    uint32_t primary_behaviours; /* the same for a faulty primary of view 0 */
    uint32_t primary_percent;    /* chance the primary of view 0 is faulty */
    uint32_t loss_max_tenths;    /* net: loss drawn in [0, this] tenths of a percent */
    uint32_t dup_max_tenths;
    uint32_t partitions_max;
    uint32_t readonly_percent;   /* clients on the read-only path */
    bool window_one;             /* one batch in flight */
    bool short_log;              /* checkpoint interval 16 or 32, log window 2K */
    uint8_t iso_kind;            /* enum swarm_isolation */
    uint64_t iso_start_ns;
    uint64_t iso_end_ns;
    bool iso_cut[BFTKV_REPLICAS_MAX];
};

/* Draw the classes and strengths of seed for n replicas tolerating f. */
void swarm_draw(struct swarm *sw, uint64_t seed, uint16_t n, uint16_t f, uint64_t request_timeout_ns);

/* A behaviour for a faulty replica (primary: the primary of view 0) from the
 * seed's subsets. */
uint8_t swarm_behaviour(const struct swarm *sw, struct prng *rng, bool primary);

struct scenario;

/* The crash and byz classes: crash 1..f replicas before GST (s->gst_ns > 2 ms)
 * and make 1..f - crashed replicas Byzantine, the primary of view 0 among them
 * with the seed's chance (and with two or more, half the time the primary of
 * view 1 too: consecutive faulty primaries). */
void swarm_place(const struct swarm *sw, struct scenario *s, struct prng *rng, uint16_t n, uint16_t f);

/* Append the classes to a scenario line, e.g. " swarm: net,byz,iso". */
size_t swarm_describe(const struct swarm *sw, char *buf, size_t cap, size_t at);

#endif /* BFTKV_SIM_SWARM_H */
