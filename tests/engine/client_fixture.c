/* The client tests' fixture (client_fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "client_fixture.h"
#include "keys_fixture.h"

const struct wire_limits lim = { .group = GROUP, .n = NREP, .clients_max = NCLIENTS };

struct auth_keypair rkp[NREP], ckp[NCLIENTS];
struct auth_public rpub[NREP], cpub[NCLIENTS];
struct auth_ctx rctx[NREP], cctx[NCLIENTS];
struct pbft_out out;
uint8_t g_msg[BFTKV_DATAGRAM_MAX];
uint8_t g_big[BFTKV_VALUE_MAX + 1];

int group_setup(void **state)
{
    (void)state;
    keys_fixture_make(rkp, rpub, KEYS_FIXTURE_REPLICAS, NREP);
    keys_fixture_make(ckp, cpub, KEYS_FIXTURE_CLIENTS, NCLIENTS);
    bool known[NCLIENTS] = { true, true, true };
    for (uint16_t i = 0; i < NREP; i++) {
        if (auth_init_replica(&rctx[i], i, NREP, &rkp[i], rpub, cpub, known, NCLIENTS) != 0) {
            return -1;
        }
    }
    for (uint16_t c = 0; c < NCLIENTS; c++) {
        if (auth_init_client(&cctx[c], c, NREP, &ckp[c], rpub) != 0) {
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof g_big; i++) {
        g_big[i] = (uint8_t)(i * 7u + 3u);
    }
    return pbft_out_init(&out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS);
}

int group_teardown(void **state)
{
    (void)state;
    for (unsigned i = 0; i < NREP; i++) {
        auth_destroy(&rctx[i]);
    }
    for (unsigned c = 0; c < NCLIENTS; c++) {
        auth_destroy(&cctx[c]);
    }
    pbft_out_free(&out);
    return 0;
}

/* ---- Fixture helpers ------------------------------------------------------------- */

struct pbft_client_config cfg_default(void)
{
    struct pbft_client_config cfg;
    memset(&cfg, 0, sizeof cfg);
    pbft_client_config_defaults(&cfg);
    cfg.group = GROUP;
    cfg.id = ME;
    cfg.n = NREP;
    cfg.f = F;
    cfg.lanes = 4;
    cfg.retransmit_timeout_ns = TIMEOUT_NS;
    cfg.timestamp_base = BASE_TS;
    cfg.readonly_fast_path = false;
    return cfg;
}

struct pbft_client *client_new(const struct pbft_client_config *cfg)
{
    struct pbft_client *c = NULL;
    assert_int_equal(pbft_client_create(cfg, &cctx[cfg->id], &c), 0);
    assert_non_null(c);
    pbft_out_reset(&out);
    return c;
}

/* The i-th message of the outbox, decoded as a REQUEST and checked by replica r's
 * authenticator entry. */
struct wire_msg out_request(uint32_t i)
{
    assert_true(i < out.nmsgs);
    struct wire_msg m;
    size_t used = 0;
    assert_int_equal(wire_decode(out.buf + out.msgs[i].off, out.msgs[i].len, &lim, &m, &used, NULL), 0);
    assert_int_equal(used, out.msgs[i].len);
    assert_int_equal(m.h.type, WIRE_REQUEST);
    for (unsigned r = 0; r < NREP; r++) {
        assert_true(auth_authenticator_check(&rctx[r], &m));
    }
    return m;
}



uint32_t reply_deliver(struct pbft_client *c, const struct reply_spec *s, uint64_t now,
                              struct pbft_completion *done, uint32_t cap)
{
    uint8_t digest[32];
    wire_result_digest(digest, s->status, s->result, s->rlen);
    struct wire_reply rp = {
        .client = s->client,
        .lane = s->lane,
        .status = s->status,
        .rflags = s->readonly ? WIRE_REPLY_READONLY : 0u,
        .result_len = s->rlen,
        .result_digest = digest,
        .result = s->full ? (s->sent != NULL ? s->sent : (s->result != NULL ? s->result : "")) : NULL,
        .epoch = s->epoch,
    };
    size_t auth_off = 0;
    size_t len = wire_encode_reply(g_msg, sizeof g_msg, GROUP, s->replica, s->view, s->ts, &rp, &auth_off);
    assert_true(len > 0);
    auth_reply_fill(&rctx[s->replica], g_msg, len, auth_off, s->client);
    if (s->bad_mac) {
        g_msg[auth_off + 3] ^= 0x40;
    }
    struct pbft_event ev = { .kind = PBFT_EV_RECEIVE, .now_ns = now, .msg = g_msg, .len = len };
    return pbft_client_step(c, &ev, &out, done, cap);
}

uint32_t tick(struct pbft_client *c, uint64_t now, struct pbft_completion *done, uint32_t cap)
{
    struct pbft_event ev = { .kind = PBFT_EV_TICK, .now_ns = now };
    return pbft_client_step(c, &ev, &out, done, cap);
}

struct reply_spec spec(uint16_t replica, uint16_t lane, uint64_t ts, const char *result, bool full)
{
    return (struct reply_spec){
        .replica = replica,
        .client = ME,
        .lane = lane,
        .ts = ts,
        .status = 0,
        .result = result,
        .rlen = result != NULL ? (uint32_t)strlen(result) : 0u,
        .full = full,
    };
}

int submit(struct pbft_client *c, uint8_t op, const char *key, const char *value)
{
    return pbft_client_submit(c, 0, op, key, strlen(key), value, value != NULL ? strlen(value) : 0, &out);
}
