/* The invariant check behind store_test_verify() (store_internal.h): a test hook,
 * not part of the store's API.
 *
 * It walks every shard table under the shard's read lock and recomputes what the
 * store maintains incrementally: each entry's hash, shard and LtHash seed, the
 * linear-probing invariant that no empty slot lies between an entry and its home
 * slot (which deletion by back-shifting must keep), the entry count, and the
 * shard's LtHash accumulator; and what the live snapshots keep of each shard
 * (records within the layout, retired entries they can see). It changes nothing. The allocation-failure hook,
 * store_test_fail_alloc_after(), stays in store.c beside the allocation budget it
 * sets.
 */
#include <stdatomic.h>
#include <string.h>

#include "bftkv/errors.h"
#include "store/store_internal.h"

static bool table_verify(const struct store *s, uint32_t shard, const struct table *t,
                         struct store_test_stats *stats)
{
    struct lthash acc;
    lthash_zero(&acc);
    uint64_t seen = 0;
    for (uint64_t i = 0; i <= t->mask; i++) {
        const struct slot *sl = &t->slots[i];
        if (sl->e == NULL) {
            continue;
        }
        seen++;
        const struct entry *e = sl->e;
        if (store_key_hash(s, entry_key(e), e->klen) != sl->hash ||
            ((uint32_t)(sl->hash >> STORE_SHARD_SHIFT) & s->shard_mask) != shard) {
            return false;
        }
        uint64_t home = sl->hash & t->mask;
        uint64_t dist = (i - home) & t->mask;
        for (uint64_t d = 0; d < dist; d++) {
            if (t->slots[(home + d) & t->mask].e == NULL) {
                return false; /* a probe from home would stop before reaching it */
            }
        }
        stats->entries++;
        stats->sum_displacement += dist;
        if (dist > stats->max_displacement) {
            stats->max_displacement = dist;
        }
        uint8_t seed[LTHASH_SEED_SIZE];
        lthash_entry_seed(seed, entry_key(e), e->klen, entry_value(e), e->vlen);
        if (memcmp(seed, e->seed, sizeof seed) != 0 || e->gen == 0 || e->gen > s->epoch) {
            return false;
        }
        lthash_add_seed(&acc, seed);
    }
    stats->slots += t->mask + 1;
    return seen == t->count && t->count <= t->mask && lthash_equal(&acc, &t->acc);
}

/* An undo map (store_internal.h): its count, every record a slot of the layout
 * (cap slots) reachable from its home without crossing an empty record, no slot
 * twice, and an array of at least twice the records of its snapshot and the
 * `older` ones of the older snapshots. */
static bool undo_verify(const struct undo_map *m, uint64_t cap, uint64_t older)
{
    if (m->recs == NULL) {
        return m->count == 0;
    }
    if (((m->mask + 1) & m->mask) != 0 || 2u * (m->count + older) > m->mask + 1) {
        return false;
    }
    uint64_t n = 0;
    for (uint64_t j = 0; j <= m->mask; j++) {
        uint64_t index1 = m->recs[j].index1;
        if (index1 == 0) {
            continue;
        }
        if (index1 > cap || undo_find(m, index1 - 1) != &m->recs[j]) {
            return false; /* outside the layout, unreachable, or shadowed by a twin */
        }
        n++;
    }
    return n == m->count;
}

/* What the live snapshots keep of shard i: every record within its layout, every
 * retired entry one it can see (gen <= its id, docs/design.md §3.4). */
static bool snapshots_verify(const struct store *s, uint32_t i, struct store_test_stats *stats)
{
    uint64_t older = 0; /* records of the snapshots older than p */
    for (const struct store_snapshot *p = s->oldest; p != NULL; p = p->newer) {
        const struct snap_shard *ss = &p->sh[i];
        if (ss->id != p->id || ss->id >= s->epoch || (p->newer != NULL && p->newer->id <= p->id)) {
            return false;
        }
        if (!undo_verify(&ss->undo, ss->cap, older)) {
            return false;
        }
        /* The writers' rule for the newest, kept by every release for all. */
        if (ss->undo_older != older) {
            return false;
        }
        older += ss->undo.count;
        stats->undo_records += ss->undo.count;
        if (ss->retired_room != (ss->retired != NULL ? STORE_RETIRED_BLOCK - ss->retired->n : 0)) {
            return false; /* the mirror of the first block's fill */
        }
        for (const struct retired_block *b = ss->retired; b != NULL; b = b->next) {
            for (uint64_t k = 0; k < b->n; k++) {
                if (b->r[k].gen > ss->id || b->r[k].e->gen != b->r[k].gen) {
                    return false;
                }
                stats->retired_entries++;
            }
        }
        for (const struct table *t = ss->dropped; t != NULL; t = t->dropped_next) {
            for (uint64_t j = 0; j <= t->mask; j++) {
                if (t->slots[j].e != NULL) {
                    if (t->slots[j].e->gen > ss->id) {
                        return false;
                    }
                    stats->retired_entries++;
                }
            }
        }
        if (ss->frozen) {
            if (ss->base_cap != ss->cap) {
                return false;
            }
            stats->frozen_layouts++;
        }
    }
    /* The writers record for the newest snapshot, and the mirrors show its
     * undo array while it records. */
    const struct shard *sh = &s->shards[i];
    const struct snap_shard *ns = s->newest != NULL ? &s->newest->sh[i] : NULL;
    bool records = ns != NULL && !ns->frozen && ns->undo.recs != NULL;
    return sh->snap == ns && sh->undo_recs == (records ? ns->undo.recs : NULL) &&
           sh->undo_mask == (records ? ns->undo.mask : 0);
}

int store_test_verify(struct store *s, struct store_test_stats *stats)
{
    struct store_test_stats local = {0};
    bool ok = true;
    store_snap_mutex_lock();
    for (const struct store_snapshot *p = s->oldest; p != NULL; p = p->newer) {
        local.live_snapshots++;
        ok = ok && p->store == s;
    }
    for (uint32_t i = 0; i < s->nshards && ok; i++) {
        struct shard *sh = &s->shards[i];
        shard_read_lock(sh);
        const struct table *t = sh->table;
        if (t != NULL) {
            ok = table_verify(s, i, t, &local);
        }
        ok = ok && atomic_load(&sh->count) == (t != NULL ? t->count : 0);
        /* The lookup mirrors (store_internal.h) match the table. */
        ok = ok && sh->slots == (t != NULL ? t->slots : NULL) && sh->mask == (t != NULL ? t->mask : 0);
        ok = ok && snapshots_verify(s, i, &local);
        shard_read_unlock(sh);
    }
    store_snap_mutex_unlock();
    if (stats != NULL) {
        *stats = local;
    }
    return ok ? 0 : BFTKV_E_CORRUPT;
}
