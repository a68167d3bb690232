/* Unit tests of the view change's decision rule and wire format: the NEW-VIEW
 * selection rule (engine/newview.c; TOCS 2002 §4.5) on hand-made VIEW-CHANGEs
 * (checkpoint, A1, A2, B) including the injected PBFT_BUG_NEWVIEW_IGNORE_A2, and
 * the checks of the VIEW-CHANGE/NEW-VIEW codec (engine/wire_viewchange.c). Run by
 * test_viewchange.c's main() on the shared cluster of viewchange_fixture.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "engine/viewchange.h"
#include "replica_harness.h"
#include "viewchange_fixture.h"

/* ---- The selection rule on hand-made VIEW-CHANGEs --------------------------------------- */

struct viewchange_spec {
    uint16_t from;
    uint64_t h;
    struct wire_view_change_entry cp[4], p[4], q[8];
    uint16_t ncp, np, nq;
};

static uint8_t g_vcbuf[6][WIRE_VIEW_CHANGE_MAX];
static struct wire_msg g_vcm[6];

static void digest_of(uint8_t d[32], char tag)
{
    memset(d, tag, 32);
}

static void spec_p(struct viewchange_spec *s, uint64_t seq, uint64_t view, char tag, bool also_q)
{
    struct wire_view_change_entry *e = &s->p[s->np++];
    e->seq = seq;
    e->view = view;
    digest_of(e->digest, tag);
    if (also_q)
        s->q[s->nq++] = *e;
}

static void spec_cp(struct viewchange_spec *s, uint64_t seq, char tag)
{
    struct wire_view_change_entry *e = &s->cp[s->ncp++];
    e->seq = seq;
    e->view = 0;
    if (seq == 0)
        memset(e->digest, 0, 32);
    else
        digest_of(e->digest, tag);
}

static const struct wire_msg *spec_build(int k, const struct viewchange_spec *s, uint64_t view)
{
    size_t len = view_change_build(g_vcbuf[k], sizeof g_vcbuf[k], s->from, view, s->h, s->cp, s->ncp, s->p, s->np,
                                s->q, s->nq);
    rh_decode(&C, g_vcbuf[k], len, &g_vcm[k]);
    return &g_vcm[k];
}

void test_selection_rules(void **state)
{
    (void)state;
    struct rh_tune t;
    memset(&t, 0, sizeof t);
    t.bugs[0] = PBFT_BUG_NEWVIEW_IGNORE_A2;
    up(4, 1, &t);
    static uint8_t choices[BFTKV_LOG_WINDOW_MAX][32];
    struct replica_nv_result res;
    uint8_t d[32], dB[32];
    digest_of(d, 'd');
    digest_of(dB, 'B');

    /* m1, m2 prepared d at (1, view 0); Byzantine mB claims dB at (1, view 1). */
    struct viewchange_spec m1 = { .from = 1 }, m2 = { .from = 2 }, m3 = { .from = 3 }, mB = { .from = 0 };
    spec_cp(&m1, 0, 0);
    spec_cp(&m2, 0, 0);
    spec_cp(&m3, 0, 0);
    spec_cp(&mB, 0, 0);
    spec_p(&m1, 1, 0, 'd', true);
    spec_p(&m2, 1, 0, 'd', true);
    spec_p(&mB, 1, 1, 'B', true);
    const struct wire_msg *set[4] = { spec_build(0, &m1, 2), spec_build(1, &m2, 2), spec_build(2, &mB, 2), NULL };
    /* Neither passes: d fails A1 (mB's later view), dB fails A2 (one Q), not B. */
    assert_false(replica_newview_select(C.r[1], set, 3, &res, choices));
    /* Skipping A2 (the bug), the Byzantine claim wins. */
    assert_true(replica_newview_select(C.r[0], set, 3, &res, choices));
    assert_int_equal(res.nch, 1);
    assert_memory_equal(choices[0], dB, 32);
    /* With a third correct message (no P at 1), d passes A1 and A2. */
    set[3] = spec_build(3, &m3, 2);
    assert_true(replica_newview_select(C.r[1], set, 4, &res, choices));
    assert_int_equal(res.h, 0);
    assert_int_equal(res.nch, 1);
    assert_memory_equal(choices[0], d, 32);
    /* Fewer than q messages: no choice. */
    assert_false(replica_newview_select(C.r[1], set, 2, &res, choices));

    /* Gaps are null (B), the tail after the last A choice is not listed. */
    struct viewchange_spec g[3] = { { .from = 1 }, { .from = 2 }, { .from = 3 } };
    for (int i = 0; i < 3; i++) {
        spec_cp(&g[i], 0, 0);
        spec_p(&g[i], 1, 0, 'x', true);
        spec_p(&g[i], 3, 0, 'y', true);
    }
    g[0].q[g[0].nq++] = (struct wire_view_change_entry){ .seq = 5, .view = 0 }; /* pre-prepared only */
    const struct wire_msg *gs[3] = { spec_build(0, &g[0], 1), spec_build(1, &g[1], 1), spec_build(2, &g[2], 1) };
    assert_true(replica_newview_select(C.r[1], gs, 3, &res, choices));
    assert_int_equal(res.nch, 3);
    uint8_t x[32], y[32];
    digest_of(x, 'x');
    digest_of(y, 'y');
    assert_memory_equal(choices[0], x, 32);
    assert_memory_equal(choices[1], g_null, 32);
    assert_memory_equal(choices[2], y, 32);
    /* A prepared null batch is an A choice too: the list reaches it. */
    struct viewchange_spec z[3] = { { .from = 1 }, { .from = 2 }, { .from = 3 } };
    for (int i = 0; i < 3; i++) {
        spec_cp(&z[i], 0, 0);
        struct wire_view_change_entry *e = &z[i].p[z[i].np++];
        e->seq = 2;
        e->view = 0;
        memcpy(e->digest, g_null, 32);
        z[i].q[z[i].nq++] = *e;
    }
    const struct wire_msg *zs[3] = { spec_build(0, &z[0], 1), spec_build(1, &z[1], 1), spec_build(2, &z[2], 1) };
    assert_true(replica_newview_select(C.r[1], zs, 3, &res, choices));
    assert_int_equal(res.nch, 2);
    assert_memory_equal(choices[0], g_null, 32);
    assert_memory_equal(choices[1], g_null, 32);

    /* The checkpoint: the highest that f+1 hold and q are at or below (K = 128). */
    struct viewchange_spec k[3] = { { .from = 1, .h = 128 }, { .from = 2 }, { .from = 3 } };
    spec_cp(&k[0], 128, 'X');
    spec_cp(&k[0], 256, 'Y');
    spec_cp(&k[1], 0, 0);
    spec_cp(&k[1], 128, 'X');
    spec_cp(&k[2], 0, 0);
    spec_p(&k[2], 100, 0, 'o', true); /* below h*: ignored */
    spec_p(&k[1], 130, 0, 'n', true);
    spec_p(&k[2], 130, 0, 'n', true);
    spec_p(&k[0], 130, 0, 'n', true);
    const struct wire_msg *ks[3] = { spec_build(0, &k[0], 1), spec_build(1, &k[1], 1), spec_build(2, &k[2], 1) };
    assert_true(replica_newview_select(C.r[1], ks, 3, &res, choices));
    assert_int_equal(res.h, 128);
    uint8_t X[32];
    digest_of(X, 'X');
    assert_memory_equal(res.h_digest, X, 32);
    assert_int_equal(res.nch, 2);
    assert_memory_equal(choices[0], g_null, 32);
    uint8_t nd[32];
    digest_of(nd, 'n');
    assert_memory_equal(choices[1], nd, 32);
    /* Only one message holds 128, and the initial state is below k[0]'s
     * checkpoint: no checkpoint qualifies yet. */
    k[1].ncp = 1;
    ks[1] = spec_build(1, &k[1], 1);
    assert_false(replica_newview_select(C.r[1], ks, 3, &res, choices));
}

/* ---- The codec -------------------------------------------------------------------------- */

void test_codec(void **state)
{
    (void)state;
    up(4, 1, NULL);
    struct wire_view_change_entry cp[2] = { { .seq = 128 }, { .seq = 256 } }, p[2], q[3];
    memset(cp[0].digest, 1, 32);
    memset(cp[1].digest, 2, 32);
    p[0] = (struct wire_view_change_entry){ .seq = 130, .view = 4 };
    p[1] = (struct wire_view_change_entry){ .seq = 131, .view = 3 };
    q[0] = (struct wire_view_change_entry){ .seq = 130, .view = 4 };
    q[1] = (struct wire_view_change_entry){ .seq = 130, .view = 2 };
    q[2] = (struct wire_view_change_entry){ .seq = 131, .view = 3 };
    memset(q[1].digest, 7, 32);
    size_t len = view_change_build(g_msg, sizeof g_msg, 2, 5, 128, cp, 2, p, 2, q, 3);
    assert_int_equal(len, WIRE_HEADER_SIZE + WIRE_VIEW_CHANGE_FIXED + 2 * 40 + 5 * 48 + 64);
    struct wire_msg m;
    rh_decode(&C, g_msg, len, &m);
    assert_int_equal(m.u.view_change.ncp, 2);
    assert_int_equal(m.u.view_change.np, 2);
    assert_int_equal(m.u.view_change.nq, 3);
    struct wire_view_change_entry e;
    wire_view_change_checkpoint(&m, 1, &e);
    assert_int_equal(e.seq, 256);
    assert_memory_equal(e.digest, cp[1].digest, 32);
    wire_view_change_preprepared(&m, 1, &e);
    assert_int_equal(e.seq, 130);
    assert_int_equal(e.view, 2);
    assert_true(auth_signature_check(&C.rauth[0], &m));

    /* Shapes the decoder refuses: each patched copy drops as BAD_FIELD. */
    struct wire_drop_counters drops;
    size_t used;
    const size_t body = WIRE_HEADER_SIZE;
    const size_t p0 = body + WIRE_VIEW_CHANGE_FIXED + 2 * 40; /* first P entry */
    const size_t q0 = p0 + 2 * 48;
    struct {
        size_t off;
        uint8_t val;
    } patches[] = {
        { body + 6, 1 },     /* pad */
        { p0 + 8, 5 },       /* P view = the message's view */
        { p0 + 48, 130 },    /* P seqs not increasing */
        { q0 + 48 + 16, 0 }, /* Q: same digest twice at one seq (q[1] = q[0]'s) */
        { body + WIRE_VIEW_CHANGE_FIXED, 0 }, /* C seq below h */
    };
    for (size_t i = 0; i < sizeof patches / sizeof patches[0]; i++) {
        uint8_t copy[1024];
        memcpy(copy, g_msg, len);
        if (i == 3)
            memcpy(copy + q0 + 48 + 16, copy + q0 + 16, 32);
        else
            copy[patches[i].off] = patches[i].val;
        memset(&drops, 0, sizeof drops);
        assert_int_equal(wire_decode(copy, len, &C.lim, &m, &used, &drops), BFTKV_E_CORRUPT);
        assert_int_equal(drops.count[WIRE_DROP_BAD_FIELD], 1);
    }
    /* A third Q entry for one seq. */
    q[2].seq = 130;
    memset(q[2].digest, 9, 32);
    len = wire_encode_view_change(g_msg, sizeof g_msg, 3, 2, 5, 128, cp, 2, p, 0, q, 2, NULL);
    assert_true(len > 0);
    {
        uint8_t copy[1024];
        size_t l2 = view_change_build(copy, sizeof copy, 2, 5, 128, cp, 2, p, 0, q, 2);
        /* Append a third entry by hand: grow nq and body_len. */
        memcpy(g_msg, copy, l2 - 64);
        uint8_t *b = g_msg + WIRE_HEADER_SIZE;
        b[4] = 3;
        uint8_t *e3 = g_msg + l2 - 64;
        memset(e3, 0, 48);
        e3[0] = 130;
        memset(e3 + 16, 9, 32);
        uint32_t bl = (uint32_t)(l2 - 64 - WIRE_HEADER_SIZE + 48);
        memcpy(g_msg + 24, &bl, 4);
        memset(g_msg + l2 - 64 + 48, 0, 64);
        memset(&drops, 0, sizeof drops);
        assert_int_equal(wire_decode(g_msg, l2 + 48, &C.lim, &m, &used, &drops), BFTKV_E_CORRUPT);
        assert_int_equal(drops.count[WIRE_DROP_BAD_FIELD], 1);
    }

    /* NEW-VIEW: round trip and refusals. */
    uint16_t ids[3] = { 0, 2, 3 };
    uint8_t vd[3][32], ch[2][32], xf[2] = { 0, WIRE_NV_NEED };
    memset(vd, 5, sizeof vd);
    memset(ch, 6, sizeof ch);
    uint8_t ck[32];
    memset(ck, 4, 32);
    size_t auth_off = 0;
    len = wire_encode_new_view(g_msg, sizeof g_msg, C.group, 1, 5, 256, ck, ids, (const uint8_t(*)[32])vd, 3,
                               (const uint8_t(*)[32])ch, xf, 2, &auth_off);
    assert_int_equal(len, WIRE_HEADER_SIZE + WIRE_NV_FIXED + 3 * 34 + 2 * 33 + 64);
    rh_decode(&C, g_msg, len, &m);
    uint16_t id;
    const uint8_t *dp;
    wire_nv_view_change(&m, 2, &id, &dp);
    assert_int_equal(id, 3);
    wire_nv_choice(&m, 1, &dp, &xf[0]);
    assert_int_equal(xf[0], WIRE_NV_NEED);
    const size_t v0 = WIRE_HEADER_SIZE + WIRE_NV_FIXED;
    size_t nv_bad[] = { v0 + 34, v0 + 2 * 34 /* id 4 >= n */, v0 + 3 * 34 + 32 /* flag */ };
    uint8_t nv_val[] = { 0, 4, 2 };
    for (size_t i = 0; i < 3; i++) {
        uint8_t copy[1024];
        memcpy(copy, g_msg, len);
        copy[nv_bad[i]] = nv_val[i];
        memset(&drops, 0, sizeof drops);
        assert_int_equal(wire_decode(copy, len, &C.lim, &m, &used, &drops), BFTKV_E_CORRUPT);
        assert_int_equal(drops.count[WIRE_DROP_BAD_FIELD], 1);
    }
    /* A truncated body: BAD_LENGTH. */
    {
        uint8_t copy[1024];
        memcpy(copy, g_msg, len);
        uint32_t bl = WIRE_NV_FIXED + 3 * 34 + 2 * 33 - 1;
        memcpy(copy + 24, &bl, 4);
        memset(&drops, 0, sizeof drops);
        assert_int_equal(wire_decode(copy, len - 1, &C.lim, &m, &used, &drops), BFTKV_E_CORRUPT);
        assert_int_equal(drops.count[WIRE_DROP_BAD_LENGTH], 1);
    }
}
