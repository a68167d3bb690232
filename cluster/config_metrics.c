/* The metrics_listen directive (docs/config.md): where a replica serves its
 * Prometheus metrics over HTTP (server/metrics_http.h).
 *
 *   metrics_listen HOST:PORT      every replica (one per machine: each binds
 *                                 the same address on its own host)
 *   metrics_listen ID HOST:PORT   replica ID only (several replicas on one
 *                                 machine need one line each); overrides the
 *                                 file-wide line for that replica
 *
 * Off by default: without any line no replica listens. The address is taken as
 * written; tools/cluster writes a loopback one per replica. The endpoint is
 * read-only and serves nothing secret, but an operator who names a public
 * address exposes the replica's counters to whoever can reach it.
 */
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "cluster/config_internal.h"

static const char usage[] = "expected: metrics_listen HOST:PORT, or metrics_listen REPLICA_ID HOST:PORT";

int config_metrics_listen(struct config_parser *p, char **tok, unsigned ntok)
{
    struct bftkv_config *cfg = p->cfg;
    if (ntok == 2) {
        if (cfg->metrics_line != 0)
            return config_fail(p, p->line, "'metrics_listen HOST:PORT' given twice (first at line %u)",
                               cfg->metrics_line);
        int rc = config_address_parse(p, tok[1], cfg->metrics_host, &cfg->metrics_port);
        if (rc)
            return rc;
        cfg->metrics_line = p->line;
        return 0;
    }
    if (ntok != 3)
        return config_fail(p, p->line, "%s", usage);
    unsigned long id = 0;
    const char *s = tok[1];
    if (s[0] == '\0' || strspn(s, "0123456789") != strlen(s) || strlen(s) > 5 ||
        (id = strtoul(s, NULL, 10)) >= BFTKV_REPLICAS_MAX)
        return config_fail(p, p->line, "bad replica id '%s' in metrics_listen (expected 0..%u)", s,
                           BFTKV_REPLICAS_MAX - 1u);
    struct bftkv_config_replica *r = &cfg->replica[id];
    if (r->metrics_line != 0)
        return config_fail(p, p->line, "metrics_listen for replica %lu given twice (first at line %u)", id,
                           r->metrics_line);
    int rc = config_address_parse(p, tok[2], r->metrics_host, &r->metrics_port);
    if (rc)
        return rc;
    r->metrics_line = p->line;
    return 0;
}

int config_metrics_check(struct config_parser *p)
{
    const struct bftkv_config *cfg = p->cfg;
    for (unsigned id = cfg->n; id < BFTKV_REPLICAS_MAX; id++)
        if (cfg->replica[id].metrics_line != 0)
            return config_fail(p, cfg->replica[id].metrics_line,
                               "metrics_listen for replica %u, which is not in the group (n = %u)", id, cfg->n);
    return 0;
}

bool bftkv_config_metrics_address(const struct bftkv_config *cfg, uint16_t id, const char **host, uint16_t *port)
{
    /* A deployment's file: id is a node id (below BFTKV_REPLICAS_MAX: the
     * ID form's range), which its node checks against the map. */
    bool deployment = cfg != NULL && cfg->deployment_map[0] != '\0';
    if (cfg == NULL || id >= BFTKV_REPLICAS_MAX || (!deployment && id >= cfg->n))
        return false;
    const struct bftkv_config_replica *r = &cfg->replica[id];
    if (r->metrics_port != 0) {
        *host = r->metrics_host, *port = r->metrics_port;
        return true;
    }
    if (cfg->metrics_port != 0) {
        *host = cfg->metrics_host, *port = cfg->metrics_port;
        return true;
    }
    return false;
}
