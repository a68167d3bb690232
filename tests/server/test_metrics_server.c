/* The metrics snapshot and endpoint of a running replica, in one process
 * (server/metrics.h, server/metrics_http.h; test_server_fixture.h's cluster):
 *
 *   - a reader thread asks for snapshots back to back while a client runs 200
 *     PUTs: every operation completes, the reads are answered (fresh), and the
 *     executed-request count they show never goes down and ends at the admin
 *     stats' value;
 *   - the HTTP endpoint on a free loopback port serves that text (200, the
 *     exposition content type), 404 elsewhere, and stops cleanly;
 *   - in both thread layouts. Labelled stress: under TSan it checks the
 *     hand-over between the protocol thread and the reader.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "bftkv/errors.h"
#include "common/log.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "tests/server/test_server_fixture.h"

#define OPS 200u
#define READS_MAX 100000u /* the reader's bound */

struct reader {
    struct server *s;
    atomic_bool stop;
    uint64_t reads, fresh, stale;
    double last_executed;
    bool went_down;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    static struct metrics_snapshot snap;
    while (!atomic_load(&r->stop) && r->reads < READS_MAX) {
        int rc = server_metrics_read(r->s, &snap, METRICS_FRESH_WAIT_MS);
        r->reads++;
        if (rc == BFTKV_E_NO_STATE)
            continue;
        rc == 0 ? r->fresh++ : r->stale++;
        double v = snap.scalar[METRICS_REQ_EXECUTED];
        if (v < r->last_executed)
            r->went_down = true;
        r->last_executed = v;
    }
    return NULL;
}

/* GET path from 127.0.0.1:port; the whole answer into buf (NUL-terminated). */
static size_t http_get(uint16_t port, const char *path, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[128];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    size_t len = 0;
    for (;;) {
        assert_true(len + 1 < cap);
        ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
        assert_true(k >= 0);
        if (k == 0)
            break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    close(fd);
    return len;
}

static void run_layout(const char *threads)
{
    struct fx_cluster c;
    fx_cluster_write(&c, 4, 1, threads, NULL);
    fx_cluster_start(&c);
    struct fx_client cl;
    fx_client_open(&cl, &c, 0, 1, false);

    struct reader r = {.s = c.srv[0]};
    atomic_init(&r.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
    char key[32], val[32];
    for (uint32_t i = 0; i < OPS; i++) {
        snprintf(key, sizeof key, "m%u", i % 40u);
        snprintf(val, sizeof val, "v%u", i);
        int status = 1;
        assert_int_equal(fx_client_op(&cl, WIRE_OP_PUT, key, val, &status, NULL, 0, NULL), 0);
        assert_int_equal(status, 0);
    }
    atomic_store(&r.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    print_message("%s: %llu reads during %u PUTs (%llu fresh, %llu stale)\n", threads,
                  (unsigned long long)r.reads, OPS, (unsigned long long)r.fresh, (unsigned long long)r.stale);
    assert_true(r.fresh > 0);
    assert_false(r.went_down);

    /* Quiet now: a fresh snapshot shows what the admin stats show. */
    static char json[ADMIN_JSON_MAX + 1];
    assert_int_equal(fx_stats(&c, 0, json, sizeof json), 0);
    uint64_t executed = fx_json_u64(json, "requests_executed");
    assert_true(executed >= OPS);
    static struct metrics_snapshot snap;
    /* The reader's last snapshot answers for METRICS_SAMPLE_INTERVAL_NS: wait
     * past it, then the read is a new sample. */
    usleep(METRICS_SAMPLE_INTERVAL_NS / 1000u + 10000u);
    assert_int_equal(server_metrics_read(c.srv[0], &snap, 1000), 0);
    assert_true(snap.scalar[METRICS_REQ_EXECUTED] == (double)executed);
    assert_true(snap.scalar[METRICS_REPLICAS] == 4.0);

    /* The endpoint on a free port. */
    struct metrics_http *h = NULL;
    char err[256] = "";
    int rc = metrics_http_start(c.srv[0], "127.0.0.1", 0, &h, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    uint16_t port = metrics_http_port(h);
    assert_true(port != 0);
    static char body[256 * 1024];
    size_t len = http_get(port, "/metrics", body, sizeof body);
    assert_true(len > 0);
    assert_non_null(strstr(body, "HTTP/1.1 200"));
    assert_non_null(strstr(body, "text/plain; version=0.0.4"));
    char want[96];
    snprintf(want, sizeof want, "\nbftkv_requests_executed_total{partition=\"0\"} %llu\n",
             (unsigned long long)executed);
    assert_non_null(strstr(body, want));
    http_get(port, "/other", body, sizeof body);
    assert_non_null(strstr(body, "HTTP/1.1 404"));
    metrics_http_stop(h);

    fx_client_close(&cl);
    fx_cluster_destroy(&c);
}

static void test_single(void **state)
{
    (void)state;
    run_layout("single");
}

static void test_staged(void **state)
{
    (void)state;
    run_layout("staged auth_workers=2");
}

int main(void)
{
    log_level_set(LOG_LEVEL_WARN);
    log_name_set("test_metrics_server");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),
        cmocka_unit_test(test_staged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
