/* The client's side of the admin protocol (engine/wire_admin.h has its
 * messages): one blocking exchange asking a replica for its stats, which
 * bftkv_client_replica_stats (include/bftkv/client.h), the cluster bench and the
 * tests call.
 */
#ifndef BFTKV_CLIENT_ADMIN_H
#define BFTKV_CLIENT_ADMIN_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"
#include "engine/auth.h"
#include "engine/wire_admin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Ask replica `replica` of cfg for its stats JSON, as the client whose context
 * is `client` (bftkv_key_auth_init with BFTKV_CONFIG_CLIENT, cluster/cluster.h). Opens
 * its own UDP socket (recvmmsg backend, an ephemeral port on the loopback address
 * when the replica's is a loopback one, else on the wildcard address), sends the
 * request, retransmits with a new nonce every ADMIN_RETRANSMIT_MS, and waits up to
 * timeout_ms in all. On success writes the JSON and a terminating NUL into buf
 * (cap bytes; ADMIN_JSON_MAX + 1 always suffices) and its length without the NUL
 * into *len. 0; BFTKV_E_TIMEOUT (no valid answer in time: replica down, wrong
 * keys, or this client not allowed), BFTKV_E_BUF_TOO_SMALL (*len = the JSON's
 * length), BFTKV_E_INVAL (bad replica id or arguments), BFTKV_E_CONFIG (address
 * does not resolve), BFTKV_E_NOMEM, BFTKV_E_IO. Prints nothing. Blocking;
 * thread-safe (no shared state). */
#define ADMIN_RETRANSMIT_MS 200u
int bftkv_admin_stats(const struct bftkv_config *cfg, const struct auth_ctx *client, uint16_t replica,
                      uint32_t timeout_ms, char *buf, size_t cap, size_t *len);
/* The same exchange for any admin command (engine/wire_admin.h). */
int bftkv_admin_exchange(const struct bftkv_config *cfg, const struct auth_ctx *client, uint16_t replica,
                         uint8_t command, uint32_t timeout_ms, char *buf, size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_CLIENT_ADMIN_H */
