/* bftkv_client_replica_stats (include/bftkv/client.h): a replica's stats for an
 * application or the CLI, without a handle. The client's secret key is loaded
 * from the config's key_dir and checked against its client line
 * (net/keys.h), then the admin exchange of net/admin_client.c runs on a socket
 * of its own. No lane is leased: an admin request carries no timestamp, so it
 * cannot disturb the requests of the handles of the same client id.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/client.h"
#include "bftkv/errors.h"
#include "common/assert.h"
#include "net/admin.h"
#include "net/config.h"
#include "net/keys.h"

BFTKV_STATIC_ASSERT(BFTKV_CLIENT_REPLICA_STATS_MAX >= ADMIN_JSON_MAX + 1u, "the public room holds any stats");

#define ADMIN_ERR(err, errlen, ...)                                                 \
    do {                                                                            \
        if ((err) != NULL && (errlen) > 0) {                                        \
            snprintf((err), (errlen), __VA_ARGS__);                                 \
        }                                                                           \
    } while (0)

int bftkv_client_replica_stats(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica,
                               int timeout_ms, char *json, size_t cap, size_t *len, char *err, size_t errlen)
{
    ADMIN_ERR(err, errlen, "%s", "");
    if (cfg == NULL || json == NULL || len == NULL || timeout_ms < 0
        || (uint32_t)timeout_ms > BFTKV_CONFIG_TIMEOUT_MS_MAX) {
        ADMIN_ERR(err, errlen, "replica stats: bad arguments");
        return BFTKV_E_INVAL;
    }
    if (replica >= cfg->n) {
        ADMIN_ERR(err, errlen, "stats: no replica %u in %s (replicas 0..%u)", replica, cfg->name, cfg->n - 1u);
        return BFTKV_E_INVAL;
    }
    if (sodium_init() < 0) {
        ADMIN_ERR(err, errlen, "replica stats: libsodium cannot initialise");
        return BFTKV_E_IO;
    }
    struct auth_keypair kp;
    struct auth_ctx auth;
    int rc = bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, client_id, &kp, err, errlen);
    if (rc == 0) {
        rc = bftkv_key_auth_init(cfg, BFTKV_CONFIG_CLIENT, client_id, &kp, &auth, err, errlen);
    }
    sodium_memzero(&kp, sizeof kp);
    if (rc != 0) {
        return rc;
    }
    uint32_t wait_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : cfg->client_timeout_ms;
    rc = bftkv_admin_stats(cfg, &auth, replica, wait_ms, json, cap, len);
    auth_destroy(&auth);
    return rc;
}
