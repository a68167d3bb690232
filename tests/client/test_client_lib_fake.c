/* The in-process fake cluster of the client library's tests (see
 * test_client_lib_fake.h): real config and key files, engine replicas behind
 * loopback UDP sockets, one pump thread.
 */
#include "tests/client/test_client_lib_fake.h"

#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "engine/wire.h"
#include "cluster/cluster.h"

#define FAKE_POLL_MAX_MS 20 /* the pump notices fake_stop within this */

static uint64_t fake_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- The pump ------------------------------------------------------------------------ */

/* Send what replica i's outbox holds (resuming a step that ran out of room). */
static void fake_drain(struct fake_cluster *fc, uint16_t i)
{
    struct fake_replica *fr = &fc->rep[i];
    for (;;) {
        for (uint32_t k = 0; k < fr->out.nmsgs; k++) {
            const struct pbft_out_msg *m = &fr->out.msgs[k];
            const uint8_t *p = fr->out.buf + m->off;
            if (m->dest_kind == PBFT_DEST_REPLICA && m->dest_id < fc->n && m->dest_id != i) {
                (void)net_udp_queue(fr->udp, &fc->addr[m->dest_id], fc->alen[m->dest_id], p, m->len);
            } else if (m->dest_kind == PBFT_DEST_ALL_REPLICAS) {
                for (uint16_t j = 0; j < fc->n; j++) {
                    if (j != i) {
                        (void)net_udp_queue(fr->udp, &fc->addr[j], fc->alen[j], p, m->len);
                    }
                }
            } else if (m->dest_kind == PBFT_DEST_CLIENT && m->dest_id < fc->clients
                       && fc->client_alen[i][m->dest_id] != 0) {
                (void)net_udp_queue(fr->udp, &fc->client_addr[i][m->dest_id], fc->client_alen[i][m->dest_id], p,
                                    m->len);
            }
        }
        bool more = fr->out.more;
        pbft_out_reset(&fr->out);
        if (!more) {
            return;
        }
        pbft_replica_resume(fr->r, fake_now_ns(), &fr->out);
    }
}

struct fake_rx {
    struct fake_cluster *fc;
    uint16_t i;
};

static void fake_on_datagram(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                             size_t len)
{
    struct fake_rx *rx = arg;
    struct fake_cluster *fc = rx->fc;
    size_t off = 0;
    while (off < len) {
        size_t mlen = len - off;
        if (mlen >= WIRE_HEADER_SIZE) {
            struct wire_header h;
            wire_header_read(data + off, &h);
            size_t want = WIRE_HEADER_SIZE + (size_t)h.body_len + h.auth_len;
            mlen = want < mlen ? want : mlen;
            if (h.type == WIRE_REQUEST && h.sender < fc->clients) {
                fc->client_addr[rx->i][h.sender] = *src; /* a test fake: no check of the MAC first */
                fc->client_alen[rx->i][h.sender] = srclen;
            }
        }
        struct pbft_event ev = { .kind = PBFT_EV_RECEIVE, .now_ns = fake_now_ns(), .msg = data + off, .len = mlen };
        pbft_replica_step(fc->rep[rx->i].r, &ev, &fc->rep[rx->i].out);
        fake_drain(fc, rx->i);
        atomic_fetch_add(&fc->steps, 1);
        off += mlen;
    }
}

static void *fake_pump(void *arg)
{
    struct fake_cluster *fc = arg;
    struct pollfd pfd[FAKE_REPLICAS_MAX];
    while (!atomic_load(&fc->stop)) {
        uint64_t now = fake_now_ns(), deadline = UINT64_MAX;
        for (uint16_t i = 0; i < fc->n; i++) {
            pfd[i] = (struct pollfd){ .fd = net_udp_fd(fc->rep[i].udp), .events = POLLIN };
            uint64_t d = pbft_replica_next_deadline(fc->rep[i].r);
            deadline = d < deadline ? d : deadline;
        }
        int timeout = FAKE_POLL_MAX_MS;
        if (deadline <= now) {
            timeout = 0;
        } else if (deadline - now < (uint64_t)FAKE_POLL_MAX_MS * 1000000u) {
            timeout = (int)((deadline - now + 999999u) / 1000000u);
        }
        (void)poll(pfd, fc->n, timeout);
        for (uint16_t i = 0; i < fc->n; i++) {
            if ((pfd[i].revents & POLLIN) != 0) {
                struct fake_rx rx = { .fc = fc, .i = i };
                (void)net_udp_poll(fc->rep[i].udp, 0, fake_on_datagram, &rx);
            }
        }
        now = fake_now_ns();
        for (uint16_t i = 0; i < fc->n; i++) {
            if (pbft_replica_next_deadline(fc->rep[i].r) <= now) {
                struct pbft_event ev = { .kind = PBFT_EV_TICK, .now_ns = now };
                pbft_replica_step(fc->rep[i].r, &ev, &fc->rep[i].out);
                fake_drain(fc, i);
            }
        }
        for (uint16_t i = 0; i < fc->n; i++) {
            (void)net_udp_flush(fc->rep[i].udp);
        }
    }
    return NULL;
}

void fake_start(struct fake_cluster *fc)
{
    if (fc->running) {
        return;
    }
    atomic_store(&fc->stop, false);
    if (pthread_create(&fc->pump, NULL, fake_pump, fc) != 0) {
        fprintf(stderr, "fake: cannot start the pump thread\n");
        abort();
    }
    fc->running = true;
}

void fake_stop(struct fake_cluster *fc)
{
    if (!fc->running) {
        return;
    }
    atomic_store(&fc->stop, true);
    pthread_join(fc->pump, NULL);
    fc->running = false;
}

/* ---- Set-up --------------------------------------------------------------------------- */

/* Generate key_dir/<role>-<id>.key and append "x25519=.. ed25519=.." to line. */
static int fake_key(struct fake_cluster *fc, const char *role, uint16_t id, char *line, size_t cap)
{
    char path[256], err[BFTKV_CONFIG_ERR_MAX], x[65], ed[65];
    uint8_t seed[BFTKV_KEY_SEED_SIZE];
    snprintf(path, sizeof path, "%s/keys/%s-%u.key", fc->dir, role, id);
    int rc = bftkv_key_generate(path, seed, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "fake: %s\n", err);
        return rc;
    }
    bftkv_key_public(seed, x, ed);
    size_t used = strlen(line);
    snprintf(line + used, cap - used, " x25519=%s ed25519=%s\n", x, ed);
    return 0;
}

static int fake_write_config(struct fake_cluster *fc, const char *extra)
{
    char line[512];
    FILE *fp = fopen(fc->conf, "w");
    if (fp == NULL) {
        fprintf(stderr, "fake: %s: %s\n", fc->conf, strerror(errno));
        return BFTKV_E_IO;
    }
    int rc = 0;
    fprintf(fp, "# written by the client library's fake cluster\nf %u\n", fc->f);
    for (uint16_t i = 0; i < fc->n && rc == 0; i++) {
        snprintf(line, sizeof line, "replica %u 127.0.0.1:%u", i, net_udp_local_port(fc->rep[i].udp));
        rc = fake_key(fc, "replica", i, line, sizeof line);
        fputs(line, fp);
    }
    for (uint16_t i = 0; i < fc->clients && rc == 0; i++) {
        snprintf(line, sizeof line, "client %u", i);
        rc = fake_key(fc, "client", i, line, sizeof line);
        fputs(line, fp);
    }
    fprintf(fp, "key_dir keys\n%s\n", extra != NULL ? extra : "");
    if (fclose(fp) != 0 && rc == 0) {
        rc = BFTKV_E_IO;
    }
    return rc;
}

static int fake_replica_init(struct fake_cluster *fc, uint16_t i)
{
    struct fake_replica *fr = &fc->rep[i];
    char err[BFTKV_CONFIG_ERR_MAX];
    struct auth_keypair kp;
    int rc = bftkv_key_identity_load(fc->cfg, BFTKV_CONFIG_REPLICA, i, &kp, err, sizeof err);
    if (rc == 0) {
        rc = bftkv_key_auth_init(fc->cfg, BFTKV_CONFIG_REPLICA, i, &kp, &fr->auth, err, sizeof err);
    }
    if (rc != 0) {
        fprintf(stderr, "fake: %s\n", err);
        return rc;
    }
    struct pbft_replica_config rc_cfg;
    struct store_config sc = { .shards = fc->cfg->store_shards };
    if ((rc = bftkv_config_fill_replica(fc->cfg, i, &rc_cfg)) != 0 || (rc = store_create(&sc, &fr->store)) != 0
        || (rc = pbft_replica_create(&rc_cfg, &fr->auth, fr->store, &fr->r)) != 0
        || (rc = pbft_out_init(&fr->out, PBFT_OUT_MIN_BYTES, PBFT_OUT_MIN_MSGS)) != 0) {
        fprintf(stderr, "fake: replica %u: %s\n", i, bftkv_strerror(rc));
        return rc;
    }
    return 0;
}

int fake_create(struct fake_cluster *fc, uint16_t n, uint16_t f, uint16_t clients, const char *extra)
{
    memset(fc, 0, sizeof *fc);
    if (n == 0 || n > FAKE_REPLICAS_MAX || clients == 0 || clients > FAKE_CLIENTS_MAX) {
        return BFTKV_E_INVAL;
    }
    fc->n = n;
    fc->f = f;
    fc->clients = clients;
    snprintf(fc->dir, sizeof fc->dir, "/tmp/bftkv-clib-XXXXXX");
    char keys[96];
    if (mkdtemp(fc->dir) == NULL) {
        fprintf(stderr, "fake: mkdtemp: %s\n", strerror(errno));
        return BFTKV_E_IO;
    }
    snprintf(fc->conf, sizeof fc->conf, "%s/cluster.conf", fc->dir);
    snprintf(keys, sizeof keys, "%s/keys", fc->dir);
    if (mkdir(keys, 0700) != 0) {
        return BFTKV_E_IO;
    }
    for (uint16_t i = 0; i < n; i++) {
        struct net_udp_config uc = { .host = "127.0.0.1", .backend = NET_BACKEND_MMSG, .rx_buffers = 64,
                                     .tx_datagrams = 32, .rcvbuf_bytes = 4 << 20, .sndbuf_bytes = 4 << 20 };
        int rc = net_udp_open(&uc, &fc->rep[i].udp);
        if (rc != 0) {
            fprintf(stderr, "fake: replica %u socket: %s\n", i, bftkv_strerror(rc));
            return rc;
        }
        fc->alen[i] = sizeof fc->addr[i];
        net_udp_local_addr(fc->rep[i].udp, &fc->addr[i], &fc->alen[i]);
    }
    int rc = fake_write_config(fc, extra);
    if (rc != 0) {
        return rc;
    }
    char err[BFTKV_CONFIG_ERR_MAX];
    rc = bftkv_config_load(fc->conf, &fc->cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "fake: %s\n", err);
        return rc;
    }
    for (uint16_t i = 0; i < n && rc == 0; i++) {
        rc = fake_replica_init(fc, i);
    }
    return rc;
}

static int fake_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    (void)remove(path); /* best effort: go on with the rest */
    return 0;
}

void fake_destroy(struct fake_cluster *fc)
{
    fake_stop(fc);
    for (uint16_t i = 0; i < fc->n; i++) {
        struct fake_replica *fr = &fc->rep[i];
        pbft_replica_destroy(fr->r);
        store_destroy(fr->store);
        pbft_out_free(&fr->out);
        auth_destroy(&fr->auth);
        net_udp_close(fr->udp);
    }
    bftkv_config_free(fc->cfg);
    if (fc->dir[0] != '\0') {
        (void)nftw(fc->dir, fake_rm, 8, FTW_DEPTH | FTW_PHYS); /* rm -rf: config, keys/ */
    }
    memset(fc, 0, sizeof *fc);
}
