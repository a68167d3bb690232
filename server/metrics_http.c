/* The HTTP endpoint of a replica's metrics (config `metrics_listen`,
 * server/metrics_http.h): libmicrohttpd serves GET /metrics from its own
 * thread, with the text of server/metrics.c built from a snapshot the protocol
 * thread hands over (server/metrics.h says how it never waits for this side).
 *
 * What a slow or hostile client can do: hold one of METRICS_HTTP_CONNECTIONS_MAX
 * connections for METRICS_HTTP_TIMEOUT_S seconds of silence at most, with at
 * most METRICS_HTTP_CONN_MEMORY bytes of buffers; beyond the limit the daemon
 * accepts nothing (new connections wait in the kernel's listen backlog until a
 * slot frees). It can make scrapes slow or fail, never the protocol: the one
 * polling thread of the daemon is the only thread that runs this file, and its
 * messages go to the log at debug level only.
 * Read-only: every method but GET and HEAD is answered 405, every path but
 * /metrics 404; nothing served is secret (counters, gauges, the build).
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "bftkv/errors.h"
#include "common/errbuf.h"
#include "common/log.h"
#include "server/metrics.h"
#include "server/metrics_http.h"

/* The exposition text's room: about 200 series of at most ~200 bytes with
 * their HELP and TYPE lines fit in a quarter of it. */
#define METRICS_TEXT_MAX (256u * 1024u)

struct metrics_http {
    struct MHD_Daemon *daemon;
    struct server **servers; /* the process's replicas: one, or a deployment node's */
    unsigned count;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                               size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return respond(c, status, "text/plain; charset=utf-8", (char *)text, strlen(text), MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
    (void)version, (void)upload_data, (void)con_cls;
    struct metrics_http *h = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n");
    if (*upload_data_size != 0)
        return respond_text(c, MHD_HTTP_BAD_REQUEST, "no body expected\n");
    if (strcmp(url, "/metrics") != 0)
        return respond_text(c, MHD_HTTP_NOT_FOUND, "only GET /metrics\n");

    struct metrics_snapshot *snap = calloc(h->count, sizeof *snap);
    size_t cap = METRICS_TEXT_MAX * (size_t)(1u + (h->count - 1u) / 2u);
    char *text = malloc(cap);
    if (snap == NULL || text == NULL) {
        free(snap);
        free(text);
        return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
    }
    uint64_t oldest = UINT64_MAX;
    for (unsigned k = 0; k < h->count; k++) {
        /* Each replica's protocol thread samples its own (a node's replicas of
         * one thread sample in one loop iteration): the waits overlap. */
        if (server_metrics_read(h->servers[k], &snap[k], METRICS_FRESH_WAIT_MS) == BFTKV_E_NO_STATE) {
            free(snap);
            free(text);
            return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no snapshot yet\n");
        }
        oldest = snap[k].taken_ns < oldest ? snap[k].taken_ns : oldest;
    }
    uint64_t now = now_ns();
    double age_s = now > oldest ? (double)(now - oldest) / 1e9 : 0.0;
    size_t len = metrics_render_set(snap, h->count, age_s, text, cap);
    free(snap);
    if (len == 0) {
        free(text);
        log_warn("metrics: the exposition text does not fit %zu bytes", cap);
        return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "metrics text too large\n");
    }
    return respond(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len, MHD_RESPMEM_MUST_FREE);
}

/* libmicrohttpd's messages at debug level: what a client does wrong (a request
 * cut short, a timeout) must not let it fill the replica's log. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    log_debug("metrics endpoint: %s", line);
}

int metrics_http_start(struct server *s, const char *host, uint16_t port, struct metrics_http **out, char *err,
                       size_t errlen)
{
    return metrics_http_start_set(&s, 1, host, port, out, err, errlen);
}

int metrics_http_start_set(struct server *const *servers, unsigned count, const char *host, uint16_t port,
                           struct metrics_http **out, char *err, size_t errlen)
{
    if (count == 0)
        return BFTKV_E_INVAL;
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    int g = getaddrinfo(host, service, &hints, &ai);
    if (g != 0 || ai == NULL) {
        errbuf_put(err, errlen, "metrics_listen %s:%u: cannot resolve '%s': %s", host, port, host, gai_strerror(g));
        return BFTKV_E_CONFIG;
    }
    struct metrics_http *h = calloc(1, sizeof *h);
    if (h != NULL)
        h->servers = malloc(count * sizeof *h->servers);
    if (h == NULL || h->servers == NULL) {
        free(h);
        freeaddrinfo(ai);
        return BFTKV_E_NOMEM;
    }
    memcpy(h->servers, servers, count * sizeof *h->servers);
    h->count = count;
    /* poll(2), not epoll: libmicrohttpd 0.9.75 (Debian 12) in epoll mode, at
     * the connection limit, sometimes takes the EPOLLIN of connections the
     * clients closed and never reads them (strace: epoll_wait reports 32 of
     * 128 closes, no recv follows), so every slot stays taken until the 10 s
     * timeout and the endpoint serves nothing meanwhile; 3 to 5 rounds in 8
     * of tests/integ/test_metrics.py's limit check, 0 in 12 with poll. At
     * METRICS_HTTP_CONNECTIONS_MAX descriptors poll's cost is nothing. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, port, NULL, NULL, handle, h,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first: it covers the rest */
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_HTTP_CONNECTIONS_MAX,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_HTTP_TIMEOUT_S,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)METRICS_HTTP_CONN_MEMORY,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (h->daemon == NULL) {
        free(h->servers);
        free(h);
        errbuf_put(err, errlen, "metrics_listen %s:%u: cannot listen (address in use or not local?)", host, port);
        return BFTKV_E_IO;
    }
    *out = h;
    return 0;
}

uint16_t metrics_http_port(const struct metrics_http *h)
{
    const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return i != NULL ? i->port : 0;
}

void metrics_http_stop(struct metrics_http *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->daemon);
    free(h->servers);
    free(h);
}
