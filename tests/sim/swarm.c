/* The swarm draw of all mode (see swarm.h): which fault classes a seed turns
 * on, how strong, and the long isolating partition. */
#include "tests/sim/swarm.h"

#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "engine/byzantine.h"
#include "tests/sim/faults.h"
#include "tests/sim/scenario.h"

#define MS 1000000ull
/* Its own stream: drawing the classes shifts no other draw of the seed. */
#define SWARM_STREAM 0x5A7A4Dull
/* The isolating partition starts once batches flow and acknowledged writes exist. */
#define ISO_START_MIN_NS (1ull * MS)
#define ISO_START_MAX_NS (20ull * MS)

/* The modes a random backup draws today (faults.h), and a faulty primary's. */
static uint32_t backup_modes(void)
{
    uint32_t m = 0;
    for (uint32_t b = FAULT_RANDOM_FIRST; b <= FAULT_RANDOM_LAST; b++)
        m |= 1u << b;
    return m | 1u << BYZ_BOGUS_VIEW_CHANGE | 1u << BYZ_LYING_STATE;
}

static const uint32_t primary_modes =
    1u << BYZ_SILENT | 1u << BYZ_DROP | 1u << BYZ_EQUIVOCATE | 1u << BYZ_SLOW;

static uint32_t popcount32(uint32_t x)
{
    uint32_t c = 0;
    for (; x; x &= x - 1u)
        c++;
    return c;
}

/* The k-th set bit of m (k < popcount(m)). */
static uint32_t nth_bit(uint32_t m, uint32_t k)
{
    for (uint32_t b = 0; b < 32; b++) {
        if ((m >> b & 1u) == 0)
            continue;
        if (k-- == 0)
            return b;
    }
    BFTKV_ASSERT(!"nth_bit: k out of range");
    return 0;
}

/* Each mode of `all` in the subset with probability 1/2, never none. */
static uint32_t draw_subset(struct prng *rng, uint32_t all)
{
    uint32_t m = 0;
    for (uint32_t b = 0; b < 32; b++)
        if ((all >> b & 1u) != 0 && prng_below(rng, 2) == 0)
            m |= 1u << b;
    if (m == 0)
        m = 1u << nth_bit(all, (uint32_t)prng_below(rng, popcount32(all)));
    return m;
}

void swarm_draw(struct swarm *sw, uint64_t seed, uint16_t n, uint16_t f, uint64_t request_timeout_ns)
{
    memset(sw, 0, sizeof(*sw));
    struct prng rng;
    prng_seed(&rng, seed ^ prng_mix64(SWARM_STREAM));
    sw->on = true;
    sw->net = prng_below(&rng, 2) == 0;
    sw->links = prng_below(&rng, 4) == 0;
    sw->byz = f > 0 && prng_below(&rng, 4) != 0;
    sw->crash = f > 0 && prng_below(&rng, 4) == 0;
    sw->restart = prng_below(&rng, 4) == 0;
    sw->isolate = n >= 2 && prng_below(&rng, 3) != 0;

    static const uint32_t loss[3] = {30, 100, 300}, dup[3] = {0, 10, 100};
    sw->loss_max_tenths = loss[prng_below(&rng, 3)];
    sw->dup_max_tenths = dup[prng_below(&rng, 3)];
    sw->partitions_max = prng_below(&rng, 2) == 0 ? 0 : 2;

    sw->behaviours = draw_subset(&rng, backup_modes());
    sw->primary_behaviours = draw_subset(&rng, primary_modes);
    static const uint32_t primary_pct[3] = {0, 67, 100};
    sw->primary_percent = primary_pct[prng_below(&rng, 3)];

    static const uint32_t ro[4] = {0, 50, 50, 100};
    sw->readonly_percent = ro[prng_below(&rng, 4)];
    sw->window_one = prng_below(&rng, 4) == 0;
    sw->short_log = prng_below(&rng, 4) == 0;

    if (sw->isolate) {
        /* The primary of view 1 alone twice as often as each other kind: it is
         * the one that makes a view change fail and another follow. */
        static const uint8_t kinds[6] = {SWARM_ISO_PRIMARY,   SWARM_ISO_NEXT,   SWARM_ISO_NEXT,
                                         SWARM_ISO_PRIMARIES, SWARM_ISO_BACKUP, SWARM_ISO_SOME};
        sw->iso_kind = kinds[prng_below(&rng, 6)];
        sw->iso_start_ns = prng_range(&rng, ISO_START_MIN_NS, ISO_START_MAX_NS);
        sw->iso_end_ns = sw->iso_start_ns + prng_range(&rng, request_timeout_ns / 2, 5 * request_timeout_ns);
        switch (sw->iso_kind) {
        case SWARM_ISO_PRIMARY:
            sw->iso_cut[0] = true;
            break;
        case SWARM_ISO_NEXT:
            sw->iso_cut[1 % n] = true;
            break;
        case SWARM_ISO_PRIMARIES:
            sw->iso_cut[0] = true;
            sw->iso_cut[1 % n] = true;
            break;
        case SWARM_ISO_BACKUP:
            sw->iso_cut[n > 1 ? prng_range(&rng, 1, n - 1u) : 0] = true;
            break;
        default: {
            uint16_t k = f > 0 ? (uint16_t)prng_range(&rng, 1, f) : 1;
            for (uint16_t c = 0; c < k;) {
                uint16_t r = (uint16_t)prng_below(&rng, n);
                if (!sw->iso_cut[r]) {
                    sw->iso_cut[r] = true;
                    c++;
                }
            }
            break;
        }
        }
    }
}

uint8_t swarm_behaviour(const struct swarm *sw, struct prng *rng, bool primary)
{
    uint32_t m = primary ? sw->primary_behaviours : sw->behaviours;
    BFTKV_ASSERT(m != 0);
    return (uint8_t)nth_bit(m, (uint32_t)prng_below(rng, popcount32(m)));
}

void swarm_place(const struct swarm *sw, struct scenario *s, struct prng *rng, uint16_t n, uint16_t f)
{
    uint16_t ncrash = sw->crash && s->gst_ns > 2 * MS ? (uint16_t)prng_range(rng, 1, f) : 0;
    uint16_t count = sw->byz && ncrash < f ? (uint16_t)prng_range(rng, 1, f - ncrash) : 0;
    for (uint16_t c = 0; c < ncrash;) {
        uint16_t r = (uint16_t)prng_below(rng, n);
        if (s->crash[r])
            continue;
        s->crash[r] = true;
        s->crash_at[r] = prng_below(rng, s->gst_ns / 2);
        uint64_t back = s->crash_at[r] + prng_range(rng, 1 * MS, 60 * MS);
        s->restart_at[r] = back < s->gst_ns ? back : s->gst_ns - 1;
        c++;
    }
    uint16_t k = 0;
    if (count > 0 && prng_below(rng, 100) < sw->primary_percent) {
        uint16_t primaries = count >= 2 && prng_below(rng, 2) == 0 ? 2 : 1;
        for (uint16_t r = 0; r < primaries; r++) {
            if (s->crash[r])
                continue;
            s->faulty[r] = true;
            s->behaviour[r] = swarm_behaviour(sw, rng, r == 0);
            k++;
        }
    }
    uint16_t free_backups = 0;
    for (uint16_t r = 1; r < n; r++)
        if (!s->faulty[r] && !s->crash[r])
            free_backups++;
    if (count - k > free_backups)
        count = (uint16_t)(k + free_backups);
    while (k < count) {
        uint16_t r = (uint16_t)prng_range(rng, 1, n - 1u);
        if (s->faulty[r] || s->crash[r])
            continue;
        s->faulty[r] = true;
        s->behaviour[r] = swarm_behaviour(sw, rng, false);
        k++;
    }
}

size_t swarm_describe(const struct swarm *sw, char *buf, size_t cap, size_t at)
{
    if (!sw->on || at >= cap)
        return at;
    static const char *const iso[SWARM_ISO_KINDS] = {"primary", "next", "primaries", "backup", "some"};
    int k = snprintf(buf + at, cap - at, " swarm:%s%s%s%s%s%s ro=%u%%%s%s", sw->net ? " net" : "",
                     sw->links ? " links" : "", sw->byz ? " byz" : "", sw->crash ? " crash" : "",
                     sw->restart ? " restart" : "", sw->isolate ? " iso" : "", sw->readonly_percent,
                     sw->window_one ? " W1" : "", sw->short_log ? " short-log" : "");
    if (k < 0)
        return at;
    at = at + (size_t)k >= cap ? cap - 1 : at + (size_t)k;
    if (sw->isolate && at < cap) {
        k = snprintf(buf + at, cap - at, " iso=%s@%llu-%llums", iso[sw->iso_kind % SWARM_ISO_KINDS],
                     (unsigned long long)(sw->iso_start_ns / MS), (unsigned long long)(sw->iso_end_ns / MS));
        if (k > 0)
            at = at + (size_t)k >= cap ? cap - 1 : at + (size_t)k;
    }
    return at;
}
