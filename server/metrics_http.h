/* The HTTP endpoint that serves a replica's metrics (server/metrics.h) in the
 * Prometheus text exposition format: GET /metrics on the address of the
 * config's `metrics_listen` (docs/config.md), from a thread of its own
 * (server/metrics_http.c says what a hostile client can and cannot do).
 */
#ifndef BFTKV_SERVER_METRICS_HTTP_H
#define BFTKV_SERVER_METRICS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Limits of the endpoint: open connections (beyond it none is accepted), seconds of
 * silence before a connection is closed, buffer bytes per connection. */
#define METRICS_HTTP_CONNECTIONS_MAX 128u
#define METRICS_HTTP_TIMEOUT_S 10u
#define METRICS_HTTP_CONN_MEMORY (16u * 1024u)

struct server;
struct metrics_http;

/* Listen on host:port (a name or an address; port 0: any free port, see
 * metrics_http_port) and serve s's metrics until metrics_http_stop. Call after
 * server_start, with the stop signals already blocked (the daemon's thread
 * inherits the mask). 0; BFTKV_E_CONFIG (host does not resolve), BFTKV_E_IO
 * (cannot listen), BFTKV_E_NOMEM; err gets a message. */
int metrics_http_start(struct server *s, const char *host, uint16_t port, struct metrics_http **out, char *err,
                       size_t errlen);

/* The same for the count replicas of a deployment node (server/node.c): one
 * endpoint, each series labelled with its partition (metrics_render_set). */
int metrics_http_start_set(struct server *const *servers, unsigned count, const char *host, uint16_t port,
                           struct metrics_http **out, char *err, size_t errlen);

/* The port it listens on. */
uint16_t metrics_http_port(const struct metrics_http *h);

/* Stop the daemon (its thread joined, connections closed) and free it; before
 * server_destroy. NULL is a no-op. */
void metrics_http_stop(struct metrics_http *h);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_SERVER_METRICS_HTTP_H */
