/* Snapshots of the store: taking and releasing them, and what a write records so
 * that each live snapshot keeps its point-in-time contents (store.h,
 * docs/design.md §3.4 and §5.6). Reading a snapshot is store_encode.c.
 *
 * Generations. The store has an epoch, the generation of the entries written now.
 * Taking a snapshot gives it the current epoch as its id and starts the next one,
 * under every shard's read lock at once (one point in time, O(shards), no entry
 * copied). A snapshot of id k sees the entries of gen <= k that were not
 * superseded when it was taken.
 *
 * What a write records, for the newest live snapshot only (the shard's snap),
 * O(1) per write:
 *   - the value of each slot before its first change since that snapshot (an
 *     undo map from slot index to the entry the slot held);
 *   - the shard's LtHash accumulator before its first change;
 *   - the entry it supersedes, when its gen <= that snapshot's id: some live
 *     snapshot may see it, so it joins that snapshot's retired blocks, as an
 *     (entry, gen) pair, instead of being freed;
 *   - the slot array a resize replaces, or the whole table store_clear drops:
 *     that snapshot's layout from then on ("frozen"); later writes record no
 *     more slots for it.
 * A snapshot reads slot i of a shard as: its own record of i, else the record of
 * the next newer snapshot, and so on, up to the first frozen array (whose slot
 * it then reads) or the live table. Older snapshots need no records of their
 * own for later changes: any slot that changed after the next newer one was
 * taken is recorded there.
 *
 * Release, in any order, O(shards + what it and its older neighbour recorded):
 * its records move to the next older live snapshot, which reads through it,
 * except where that one has its own (older) record or a frozen layout; the
 * larger of the two undo arrays receives them, and has room (store_internal.h);
 * a frozen array and dropped tables move likewise; its retired entries move
 * there when that snapshot can see them (gen <= its id, read from the pair) and
 * are freed otherwise, whole blocks relinked, so a release allocates nothing and
 * reads no entry. The oldest snapshot's records and retired entries are freed
 * (its undo array in one free): nothing newer can see what was superseded
 * before it was taken.
 *
 * Locks. A store-wide mutex serialises take, release, swap, destroy and reading
 * a snapshot. The shard locks protect what writers change: the live table and
 * the newest snapshot's records of that shard. Entries a snapshot can see are
 * never freed while it is live, so a reader may use them after unlocking.
 */
#include "store/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "store/store_internal.h"

/* The smallest array of an undo map: 16 records, four cache lines. */
#define UNDO_RECORDS_MIN 16u

static pthread_mutex_t store_snap_mutex = PTHREAD_MUTEX_INITIALIZER;

void store_snap_mutex_lock(void)
{
    int rc = pthread_mutex_lock(&store_snap_mutex);
    BFTKV_ASSERT(rc == 0);
}

void store_snap_mutex_unlock(void)
{
    int rc = pthread_mutex_unlock(&store_snap_mutex);
    BFTKV_ASSERT(rc == 0);
}

/* ---- Undo maps: slot index -> the entry it held when the snapshot was taken ---------- */

/* The record of index1 in m (which has an array), or the empty one where it
 * would go. The capacity rule (store_internal.h) leaves an empty record. */
static struct undo_rec *undo_probe(const struct undo_map *m, uint64_t index1)
{
    uint64_t j = undo_home(m->mask, index1);
    for (;;) {
        struct undo_rec *r = &m->recs[j];
        if (r->index1 == index1 || r->index1 == 0) {
            return r;
        }
        j = (j + 1) & m->mask;
    }
}

const struct undo_rec *undo_find(const struct undo_map *m, uint64_t index)
{
    if (m->recs == NULL) {
        return NULL;
    }
    const struct undo_rec *r = undo_probe(m, index + 1);
    return r->index1 != 0 ? r : NULL;
}

/* Put (index1, e) into m, which has room: a new record, or, when m has one for
 * that slot, its entry replaced if `replace` (the incoming record is older). */
static void undo_put(struct undo_map *m, uint64_t index1, struct entry *e, bool replace)
{
    struct undo_rec *r = undo_probe(m, index1);
    if (r->index1 == 0) {
        r->index1 = index1;
        r->e = e;
        m->count++;
        BFTKV_ASSERT(m->count * 2u <= m->mask + 1);
    } else if (replace) {
        r->e = e;
    }
}

/* A new array of `cap` records (a power of two) with m's records in it. 0 or
 * BFTKV_E_NOMEM, and then m is unchanged. */
static int undo_resize(struct undo_map *m, uint64_t cap)
{
    struct undo_rec *recs = store_calloc(cap, sizeof *recs);
    if (recs == NULL) {
        return BFTKV_E_NOMEM;
    }
    struct undo_map grown = {.recs = recs, .mask = cap - 1, .count = 0};
    for (uint64_t j = 0; m->recs != NULL && j <= m->mask; j++) {
        if (m->recs[j].index1 != 0) {
            undo_put(&grown, m->recs[j].index1, m->recs[j].e, false);
        }
    }
    BFTKV_ASSERT(grown.count == m->count);
    free(m->recs);
    *m = grown;
    return 0;
}

static void undo_free(struct undo_map *m)
{
    free(m->recs); /* the records hold no memory of their own */
    *m = (struct undo_map){NULL, 0, 0};
}

/* Move src's records into dst where dst has none for that slot (dst's own
 * record is older, so it wins); src ends empty. The larger array receives the
 * records and the other is freed: no allocation. It has room for both, since an
 * array holds at least twice the records of its snapshot and of all older ones
 * (store_internal.h), and src's snapshot is the next newer of dst's. O(the
 * smaller array). */
static void undo_merge_into(struct undo_map *dst, struct undo_map *src)
{
    if (src->recs == NULL) {
        return;
    }
    if (dst->recs == NULL) {
        *dst = *src;
        *src = (struct undo_map){NULL, 0, 0};
        return;
    }
    struct undo_map *into = src->mask > dst->mask ? src : dst;
    struct undo_map *from = into == src ? dst : src;
    bool replace = from == dst; /* dst's records are the older ones */
    for (uint64_t j = 0; j <= from->mask; j++) {
        if (from->recs[j].index1 != 0) {
            undo_put(into, from->recs[j].index1, from->recs[j].e, replace);
        }
    }
    free(from->recs);
    *dst = *into;
    *src = (struct undo_map){NULL, 0, 0};
}

/* ---- What a write records (store_internal.h), under the shard write lock ------------- */

static bool snap_records(const struct shard *sh)
{
    return sh->snap != NULL && !sh->snap->frozen;
}

int snap_reserve(struct shard *sh, uint64_t slots)
{
    struct snap_shard *ss = sh->snap;
    if (ss == NULL) {
        return 0;
    }
    if (!ss->acc_saved && ss->acc_mem == NULL) {
        ss->acc_mem = store_aligned_alloc(sizeof(struct lthash));
        if (ss->acc_mem == NULL) {
            return BFTKV_E_NOMEM;
        }
        ss->acc = ss->acc_mem;
    }
    if (ss->retired_room == 0) { /* the mirror: the block's header stays unread */
        struct retired_block *b = store_malloc(sizeof *b);
        if (b == NULL) {
            return BFTKV_E_NOMEM;
        }
        b->n = 0;
        b->next = ss->retired;
        ss->retired = b;
        ss->retired_room = STORE_RETIRED_BLOCK;
    }
    if (ss->frozen) {
        return 0;
    }
    /* The capacity rule of store_internal.h, with the records to come. */
    uint64_t want = 2u * (ss->undo_older + ss->undo.count + slots);
    uint64_t cap = ss->undo.recs != NULL ? ss->undo.mask + 1 : 0;
    if (want <= cap) {
        return 0;
    }
    cap = cap != 0 ? cap : UNDO_RECORDS_MIN;
    while (cap < want) {
        cap *= 2;
    }
    int rc = undo_resize(&ss->undo, cap);
    shard_snap_set(sh, ss); /* the mirrors follow the new array */
    return rc;
}

void snap_save_slot(struct shard *sh, uint64_t i)
{
    if (!snap_records(sh)) {
        return;
    }
    struct snap_shard *ss = sh->snap;
    BFTKV_ASSERT(ss->undo.recs != NULL); /* snap_reserve made room */
    struct undo_rec *r = undo_probe(&ss->undo, i + 1);
    if (r->index1 != 0) {
        return; /* changed before since this snapshot: the record has its value */
    }
    r->index1 = i + 1;
    r->e = sh->slots[i].e;
    ss->undo.count++;
    /* snap_reserve counted this change */
    BFTKV_ASSERT(2u * (ss->undo_older + ss->undo.count) <= ss->undo.mask + 1);
}

void snap_save_acc(struct shard *sh)
{
    struct snap_shard *ss = sh->snap;
    if (ss == NULL || ss->acc_saved) {
        return;
    }
    BFTKV_ASSERT(ss->acc != NULL); /* snap_reserve made room */
    if (sh->table != NULL) {
        *ss->acc = sh->table->acc;
    } else {
        lthash_zero(ss->acc);
    }
    ss->acc_saved = true;
}

bool snap_retire(struct shard *sh, struct entry *e)
{
    struct snap_shard *ss = sh->snap;
    if (ss == NULL || e->gen > ss->id) {
        return false; /* written after the newest snapshot: nobody sees it */
    }
    struct retired_block *b = ss->retired;
    BFTKV_ASSERT(b != NULL);
    BFTKV_ASSERT(ss->retired_room > 0); /* snap_reserve made room */
    uint64_t k = STORE_RETIRED_BLOCK - ss->retired_room--;
    b->r[k] = (struct retired){e, e->gen};
    b->n = k + 1; /* stores only: the header's line is not waited for */
    return true;
}

/* Free the entries of t's slots that no snapshot of id `id` or older can see
 * (gen > id), and empty their slots. A slot such a snapshot still reads holds
 * an entry it sees, so no reader meets the hole. */
static void table_drop_unseen(struct table *t, uint64_t id)
{
    for (uint64_t j = 0; j <= t->mask; j++) {
        struct entry *e = t->slots[j].e;
        if (e != NULL && e->gen > id) {
            free(e);
            t->slots[j].e = NULL;
        }
    }
}

bool snap_drop_table(struct shard *sh, struct table *t)
{
    struct snap_shard *ss = sh->snap;
    if (ss == NULL) {
        return false;
    }
    table_drop_unseen(t, ss->id);
    if (!ss->acc_saved) {
        free(ss->acc_mem); /* room reserved by a write that failed, if any */
        ss->acc_mem = NULL;
        ss->acc = &t->acc;
        ss->acc_saved = true;
    }
    if (!ss->frozen) {
        ss->frozen = true;
        ss->base = t->slots;
        ss->base_cap = t->mask + 1;
        ss->base_owned = false;
        shard_snap_set(sh, ss); /* it records no more */
    }
    t->dropped_next = ss->dropped;
    ss->dropped = t;
    return true;
}

bool snap_freeze(struct shard *sh, struct slot *slots, uint64_t cap)
{
    struct snap_shard *ss = sh->snap;
    if (ss == NULL || ss->frozen) {
        return false;
    }
    ss->frozen = true;
    ss->base = slots;
    ss->base_cap = cap;
    ss->base_owned = true;
    shard_snap_set(sh, ss); /* it records no more */
    return true;
}

/* ---- Taking and releasing --------------------------------------------------------------- */

/* A shard's part of a new snapshot: its epoch and the shard's size when taken,
 * and the records of the older live snapshots (sh->snap, the newest of them,
 * and its own older ones); nothing recorded, frozen or kept yet. */
static void snap_shard_init(struct snap_shard *ss, uint64_t id, const struct shard *sh)
{
    const struct snap_shard *prev = sh->snap;
    *ss = (struct snap_shard){
        .id = id,
        .count = sh->table != NULL ? sh->table->count : 0,
        .cap = sh->table != NULL ? sh->table->mask + 1 : 0,
        .undo_older = prev != NULL ? prev->undo_older + prev->undo.count : 0,
    };
}

int store_snapshot_take(struct store *s, struct store_snapshot **out)
{
    size_t bytes = sizeof(struct store_snapshot) + (size_t)s->nshards * sizeof(struct snap_shard);
    struct store_snapshot *snap = store_aligned_alloc(bytes); /* sh[] in whole cache lines */
    if (snap == NULL) {
        return BFTKV_E_NOMEM;
    }
    snap->nshards = s->nshards;

    store_snap_mutex_lock();
    snap->store = s;
    snap->id = s->epoch;
    /* Every shard's read lock at once: no writer runs while the epoch moves, so
     * each write is before the snapshot or after it. Locks go in index order and
     * a writer holds one lock at a time, so this cannot deadlock. Readers are
     * never blocked. */
    for (uint32_t i = 0; i < s->nshards; i++) {
        shard_read_lock(&s->shards[i]);
    }
    for (uint32_t i = 0; i < s->nshards; i++) {
        struct shard *sh = &s->shards[i];
        snap_shard_init(&snap->sh[i], snap->id, sh);
        shard_snap_set(sh, &snap->sh[i]);
    }
    s->epoch++;
    for (uint32_t i = 0; i < s->nshards; i++) {
        shard_read_unlock(&s->shards[i]);
    }
    snap->older = s->newest;
    snap->newer = NULL;
    if (s->newest != NULL) {
        s->newest->newer = snap;
    } else {
        s->oldest = snap;
    }
    s->newest = snap;
    store_snap_mutex_unlock();
    *out = snap;
    return 0;
}

/* Keep in b the entries a snapshot of id `id` can see; free the others (all of
 * them with id 0: no snapshot is left). The entries themselves are not read. */
static void retired_filter(struct retired_block *b, uint64_t id)
{
    uint64_t kept = 0;
    for (uint64_t k = 0; k < b->n; k++) {
        if (b->r[k].gen <= id) {
            b->r[kept++] = b->r[k];
        } else {
            free(b->r[k].e);
        }
    }
    b->n = kept;
}

/* Hand what ss keeps of one shard to ps, the next older live snapshot (NULL when
 * ss is the oldest), keeping only what ps can see. Under the shard write lock. */
static void snap_shard_pass_on(struct snap_shard *ss, struct snap_shard *ps)
{
    uint64_t id = ps != NULL ? ps->id : 0;
    ss->retired_room = 0;
    while (ss->retired != NULL) {
        struct retired_block *b = ss->retired;
        ss->retired = b->next;
        retired_filter(b, id);
        if (b->n == 0) {
            free(b);
        } else if (ps->retired == NULL) {
            b->next = NULL;
            ps->retired = b;
            ps->retired_room = STORE_RETIRED_BLOCK - b->n;
        } else {
            b->next = ps->retired->next; /* behind the block ps fills */
            ps->retired->next = b;
        }
    }
    while (ss->dropped != NULL) {
        struct table *t = ss->dropped;
        ss->dropped = t->dropped_next;
        table_drop_unseen(t, id);
        if (ps != NULL) {
            t->dropped_next = ps->dropped;
            ps->dropped = t;
        } else {
            free(t->slots);
            free(t);
        }
    }
    if (ps != NULL && !ps->frozen) {
        /* ps read through ss: ss's records and layout are now its own. */
        undo_merge_into(&ps->undo, &ss->undo);
        if (ss->frozen) {
            ps->frozen = true;
            ps->base = ss->base;
            ps->base_cap = ss->base_cap;
            ps->base_owned = ss->base_owned;
            ss->base_owned = false;
        }
    }
    if (ps != NULL && !ps->acc_saved && ss->acc_saved) {
        /* In ss's own block, or in a dropped table that ps has now. */
        free(ps->acc_mem);
        ps->acc_mem = ss->acc_mem;
        ps->acc = ss->acc;
        ps->acc_saved = true;
        ss->acc_mem = NULL;
    }
    free(ss->acc_mem);
    ss->acc_mem = NULL;
    ss->acc = NULL;
    undo_free(&ss->undo);
    if (ss->base_owned) {
        free(ss->base);
    }
    ss->base = NULL;
    ss->base_owned = false;
}

void store_snapshot_release(struct store_snapshot *snap)
{
    if (snap == NULL) {
        return;
    }
    store_snap_mutex_lock();
    struct store *s = snap->store;
    struct store_snapshot *older = snap->older;
    for (uint32_t i = 0; i < snap->nshards; i++) {
        struct shard *sh = &s->shards[i];
        if (snap->newer != NULL && i + 1 < snap->nshards && snap->sh[i + 1].retired != NULL) {
            /* The next shard's first retired block, cold since its snapshot was
             * the newest: asked for now, read after this shard. Only a newest
             * snapshot's part changes under a writer's lock, so this read races
             * with none. */
            __builtin_prefetch(snap->sh[i + 1].retired);
            __builtin_prefetch((const char *)snap->sh[i + 1].retired + STORE_CACHE_LINE);
        }
        shard_write_lock(sh);
        snap_shard_pass_on(&snap->sh[i], older != NULL ? &older->sh[i] : NULL);
        /* The newest may have changed, or received the records of snap. */
        shard_snap_set(sh, sh->snap == &snap->sh[i] ? (older != NULL ? &older->sh[i] : NULL) : sh->snap);
        /* The newer snapshots' count of the records older than theirs: snap's
         * are gone, and its older neighbour now holds at most those of both. */
        uint64_t below = older != NULL ? older->sh[i].undo_older + older->sh[i].undo.count : 0;
        for (struct store_snapshot *p = snap->newer; p != NULL; p = p->newer) {
            p->sh[i].undo_older = below;
            below += p->sh[i].undo.count;
        }
        shard_write_unlock(sh);
    }
    if (older != NULL) {
        older->newer = snap->newer;
    } else {
        s->oldest = snap->newer;
    }
    if (snap->newer != NULL) {
        snap->newer->older = older;
    } else {
        s->newest = older;
    }
    bool free_store = s->destroyed && s->oldest == NULL;
    store_snap_mutex_unlock();
    if (free_store) {
        store_free(s); /* store_destroy() left it to its last snapshot */
    }
    free(snap);
}

void store_snapshots_adopt(struct store *s)
{
    for (struct store_snapshot *p = s->oldest; p != NULL; p = p->newer) {
        p->store = s;
    }
}
