/* The in-process cluster and client of the server runtime's tests
 * (test_server_fixture.h). */
#include "tests/server/test_server_fixture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "cluster/cluster.h"

uint64_t fx_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t fx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* n free UDP ports on 127.0.0.1: bind port 0 n times at once, then release. */
static void fx_ports_pick(uint16_t *ports, uint16_t n)
{
    int fds[BFTKV_REPLICAS_MAX];
    for (uint16_t i = 0; i < n; i++) {
        fds[i] = socket(AF_INET, SOCK_DGRAM, 0);
        assert_true(fds[i] >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        assert_int_equal(bind(fds[i], (struct sockaddr *)&a, sizeof a), 0);
        socklen_t len = sizeof a;
        assert_int_equal(getsockname(fds[i], (struct sockaddr *)&a, &len), 0);
        ports[i] = ntohs(a.sin_port);
    }
    for (uint16_t i = 0; i < n; i++)
        close(fds[i]);
}

static void fx_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void fx_appendf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < cap - *len);
    *len += (size_t)k;
}

/* Generate a key file and append its public keys to the config text. */
static void fx_key_make(struct fx_cluster *c, const char *role, uint16_t id, char *text, size_t cap, size_t *len)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/keys/%s-%u.key", c->dir, role, id);
    uint8_t seed[BFTKV_KEY_SEED_SIZE];
    int rc = bftkv_key_generate(path, seed, err, sizeof err);
    if (rc != 0)
        fail_msg("key %s: %s", path, err);
    char x[65], ed[65];
    bftkv_key_public(seed, x, ed);
    fx_appendf(text, cap, len, " x25519=%s ed25519=%s\n", x, ed);
}

void fx_cluster_write(struct fx_cluster *c, uint16_t n, uint16_t f, const char *threads, const char *extra)
{
    memset(c, 0, sizeof *c);
    assert_true(sodium_init() >= 0);
    snprintf(c->dir, sizeof c->dir, "/tmp/bftkv-srvtest-XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    char keys[128];
    snprintf(keys, sizeof keys, "%s/keys", c->dir);
    assert_int_equal(mkdir(keys, 0700), 0);
    c->n = n;
    uint16_t ports[BFTKV_REPLICAS_MAX];
    fx_ports_pick(ports, n);
    size_t cap = 64 * 1024, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    fx_appendf(text, cap, &len, "# written by test_server_fixture.c\nf %u\n", f);
    for (uint16_t i = 0; i < n; i++) {
        fx_appendf(text, cap, &len, "replica %u 127.0.0.1:%u", i, ports[i]);
        fx_key_make(c, "replica", i, text, cap, &len);
    }
    for (uint16_t i = 0; i < FX_CLIENTS; i++) {
        if (i == FX_UNKNOWN_CLIENT)
            continue;
        fx_appendf(text, cap, &len, "client %u", i);
        fx_key_make(c, "client", i, text, cap, &len);
    }
    fx_appendf(text, cap, &len, "key_dir keys\nthreads %s\ntest_modes on\nlog_level warn\n%s\n", threads,
               extra ? extra : "");
    snprintf(c->conf, sizeof c->conf, "%s/cluster.conf", c->dir);
    FILE *fp = fopen(c->conf, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    free(text);
    char err[BFTKV_CONFIG_ERR_MAX];
    int rc = bftkv_config_load(c->conf, &c->cfg, err, sizeof err);
    if (rc != 0)
        fail_msg("config: %s", err);
}

void fx_replica_start(struct fx_cluster *c, uint16_t i, enum byz_mode byz)
{
    char err[BFTKV_CONFIG_ERR_MAX] = "";
    struct auth_keypair kp;
    int rc = bftkv_key_identity_load(c->cfg, BFTKV_CONFIG_REPLICA, i, &kp, err, sizeof err);
    if (rc != 0)
        fail_msg("replica %u key: %s", i, err);
    struct server_options opt = {
        .cfg = c->cfg,
        .id = i,
        .backend = NET_BACKEND_AUTO,
        .keys = &kp,
        .byzantine = byz,
        .byzantine_seed = 1000u + i,
    };
    rc = server_create(&opt, &c->srv[i], err, sizeof err);
    if (rc != 0)
        fail_msg("replica %u: %s (%s)", i, bftkv_strerror(rc), err);
    assert_int_equal(server_start(c->srv[i]), 0);
}

void fx_cluster_start(struct fx_cluster *c)
{
    for (uint16_t i = 0; i < c->n; i++)
        fx_replica_start(c, i, BYZ_NONE);
}

static void fx_unlink(const char *dir, const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

void fx_cluster_destroy(struct fx_cluster *c)
{
    for (uint16_t i = 0; i < c->n; i++) {
        server_destroy(c->srv[i]);
        c->srv[i] = NULL;
    }
    bftkv_config_free(c->cfg);
    c->cfg = NULL;
    char keys[128], name[64];
    snprintf(keys, sizeof keys, "%s/keys", c->dir);
    for (uint16_t i = 0; i < c->n; i++) {
        snprintf(name, sizeof name, "replica-%u.key", i);
        fx_unlink(keys, name);
    }
    for (uint16_t i = 0; i < FX_CLIENTS; i++) {
        snprintf(name, sizeof name, "client-%u.key", i);
        fx_unlink(keys, name);
    }
    rmdir(keys);
    fx_unlink(c->dir, "cluster.conf");
    rmdir(c->dir);
}

/* ---- Client ------------------------------------------------------------------------------- */

static void fx_client_drain(struct fx_client *cl)
{
    struct pbft_out *o = &cl->out;
    for (uint32_t i = 0; i < o->nmsgs; i++) {
        const struct pbft_out_msg *m = &o->msgs[i];
        const uint8_t *bytes = o->buf + m->off;
        for (uint16_t r = 0; r < cl->c->n; r++) {
            if (m->dest_kind == PBFT_DEST_ALL_REPLICAS || (m->dest_kind == PBFT_DEST_REPLICA && m->dest_id == r))
                assert_int_equal(net_udp_queue(cl->udp, &cl->raddr[r], cl->ralen[r], bytes, m->len), 0);
        }
    }
    pbft_out_reset(o);
    if (net_udp_pending(cl->udp) > 0)
        assert_true(net_udp_flush(cl->udp) >= 0);
}

static uint32_t fx_client_gather(struct fx_client *cl, uint32_t k)
{
    for (uint32_t i = 0; i < k; i++) {
        const struct pbft_completion *d = &cl->done[i];
        assert_true(d->lane < PBFT_LANES_MAX);
        cl->lane_done[d->lane] = true;
        cl->lane_status[d->lane] = d->status;
        cl->lane_vlen[d->lane] = d->vlen;
        if (d->vlen > 0 && d->value != NULL)
            memcpy(cl->lane_value[d->lane], d->value, d->vlen);
    }
    cl->completed += k;
    return k;
}

struct fx_rx {
    struct fx_client *cl;
    uint32_t got;
};

static void fx_client_rx(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                         size_t len)
{
    (void)src;
    (void)srclen;
    struct fx_rx *rx = arg;
    struct fx_client *cl = rx->cl;
    size_t off = 0;
    while (len - off >= WIRE_HEADER_SIZE) {
        struct wire_header h;
        wire_header_read(data + off, &h);
        size_t size = WIRE_HEADER_SIZE + (size_t)h.body_len + h.auth_len;
        if (size > len - off)
            return;
        struct pbft_event ev = {.kind = PBFT_EV_RECEIVE, .now_ns = fx_now_ns(), .msg = data + off, .len = size};
        uint32_t k = pbft_client_step(cl->pc, &ev, &cl->out, cl->done, PBFT_LANES_MAX);
        rx->got += fx_client_gather(cl, k);
        fx_client_drain(cl);
        off += size;
    }
}

void fx_client_open(struct fx_client *cl, struct fx_cluster *c, uint16_t id, uint16_t lanes, bool stranger)
{
    memset(cl, 0, sizeof *cl);
    cl->c = c;
    cl->id = id;
    char err[256] = "";
    struct auth_keypair kp;
    if (stranger) {
        uint8_t seed[32];
        randombytes_buf(seed, sizeof seed);
        auth_keypair_from_seed(&kp, seed);
        struct auth_public pubs[BFTKV_REPLICAS_MAX];
        for (uint16_t r = 0; r < c->n; r++) {
            memcpy(pubs[r].x_pk, c->cfg->replica[r].x25519, 32);
            memcpy(pubs[r].sign_pk, c->cfg->replica[r].ed25519, 32);
        }
        assert_int_equal(auth_init_client(&cl->auth, id, c->n, &kp, pubs), 0);
    } else {
        int rc = bftkv_key_identity_load(c->cfg, BFTKV_CONFIG_CLIENT, id, &kp, err, sizeof err);
        if (rc == 0)
            rc = bftkv_key_auth_init(c->cfg, BFTKV_CONFIG_CLIENT, id, &kp, &cl->auth, err, sizeof err);
        if (rc != 0)
            fail_msg("client %u: %s", id, err);
    }
    struct pbft_client_config cc;
    pbft_client_config_defaults(&cc);
    cc.group = c->cfg->group;
    cc.id = id;
    cc.n = c->cfg->n;
    cc.f = c->cfg->f;
    cc.lanes = lanes;
    cc.retransmit_timeout_ns = (uint64_t)c->cfg->retransmit_ms * 1000000u;
    cc.readonly_fast_path = c->cfg->readonly_fast_path;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cc.timestamp_base = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    assert_int_equal(pbft_client_create(&cc, &cl->auth, &cl->pc), 0);
    assert_int_equal(pbft_out_init(&cl->out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS), 0);
    for (uint16_t l = 0; l < PBFT_LANES_MAX; l++) {
        cl->lane_value[l] = malloc(BFTKV_VALUE_MAX);
        assert_non_null(cl->lane_value[l]);
    }
    struct net_udp_config uc = {
        .host = "127.0.0.1", .port = 0, .backend = NET_BACKEND_MMSG, .rx_buffers = 64, .tx_datagrams = 8,
        .rcvbuf_bytes = 4 * 1024 * 1024,
    };
    assert_int_equal(net_udp_open(&uc, &cl->udp), 0);
    for (uint16_t r = 0; r < c->n; r++)
        assert_int_equal(bftkv_config_replica_sockaddr(c->cfg, r, &cl->raddr[r], &cl->ralen[r], NULL, 0), 0);
}

void fx_client_close(struct fx_client *cl)
{
    net_udp_close(cl->udp);
    pbft_out_free(&cl->out);
    pbft_client_destroy(cl->pc);
    auth_destroy(&cl->auth);
    for (uint16_t l = 0; l < PBFT_LANES_MAX; l++)
        free(cl->lane_value[l]);
    memset(cl, 0, sizeof *cl);
}

int fx_client_submit(struct fx_client *cl, uint8_t op, const void *key, size_t klen, const void *val, size_t vlen)
{
    for (int tries = 0; tries < 4; tries++) {
        int lane = pbft_client_submit(cl->pc, fx_now_ns(), op, key, klen, val, vlen, &cl->out);
        if (lane == BFTKV_E_AGAIN) {
            fx_client_drain(cl);
            continue;
        }
        if (lane >= 0)
            cl->lane_done[lane] = false; /* sent by the next fx_client_run: requests share datagrams */
        return lane;
    }
    return BFTKV_E_AGAIN;
}

uint32_t fx_client_run(struct fx_client *cl, uint32_t wait_ms, bool until_any)
{
    uint64_t end = fx_now_ns() + (uint64_t)wait_ms * 1000000u;
    struct fx_rx rx = {.cl = cl, .got = 0};
    for (;;) {
        fx_client_drain(cl);
        uint64_t now = fx_now_ns();
        uint64_t dl = pbft_client_next_deadline(cl->pc);
        if (now >= dl) {
            struct pbft_event ev = {.kind = PBFT_EV_TICK, .now_ns = now};
            rx.got += fx_client_gather(cl, pbft_client_step(cl->pc, &ev, &cl->out, cl->done, PBFT_LANES_MAX));
            fx_client_drain(cl);
            dl = pbft_client_next_deadline(cl->pc);
        }
        if ((until_any && rx.got > 0) || now >= end)
            break;
        uint64_t until = dl < end ? dl : end;
        int ms = until > now ? (int)((until - now + 999999u) / 1000000u) : 0;
        if (ms > 10)
            ms = 10;
        assert_true(net_udp_poll(cl->udp, ms, fx_client_rx, &rx) >= 0);
    }
    return rx.got;
}

int fx_client_op(struct fx_client *cl, uint8_t op, const char *key, const char *val, int *status, char *val_out,
                 size_t cap, size_t *vlen)
{
    int lane = fx_client_submit(cl, op, key, strlen(key), val, val ? strlen(val) : 0);
    assert_true(lane >= 0);
    uint64_t end = fx_now_ms() + FX_OP_TIMEOUT_MS;
    while (!cl->lane_done[lane]) {
        uint64_t now = fx_now_ms();
        if (now >= end)
            return BFTKV_E_TIMEOUT;
        fx_client_run(cl, (uint32_t)(end - now), true);
    }
    *status = cl->lane_status[lane];
    if (val_out != NULL) {
        size_t n = cl->lane_vlen[lane];
        assert_true(n < cap);
        memcpy(val_out, cl->lane_value[lane], n);
        val_out[n] = '\0';
        if (vlen)
            *vlen = n;
    }
    return 0;
}

int fx_stats(struct fx_cluster *c, uint16_t r, char *buf, size_t cap)
{
    /* Through the public call (include/bftkv/client.h), as the CLI and an
     * application ask; a failure other than silence is the test's bug. */
    char err[256] = "";
    size_t len = 0;
    int rc = bftkv_client_replica_stats(c->cfg, 0, r, 3000, buf, cap, &len, err, sizeof err);
    if (err[0] != '\0')
        fail_msg("stats client: %s", err);
    if (rc == 0)
        assert_int_equal(strlen(buf), len);
    return rc;
}

uint64_t fx_json_u64(const char *json, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (p == NULL)
        return UINT64_MAX;
    p += strlen(pat);
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p || errno != 0)
        return UINT64_MAX;
    return v;
}
