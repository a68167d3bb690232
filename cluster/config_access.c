/* What an application may read of a parsed config: the accessors of
 * include/bftkv/config.h, which keep struct bftkv_config opaque outside this
 * tree (its members are in cluster/cluster.h). Each takes a config that
 * bftkv_config_load or bftkv_config_parse returned; NULL is a programmer's bug.
 */
#include "cluster/cluster.h"

#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"

const char *bftkv_config_name(const struct bftkv_config *cfg)
{
    BFTKV_ASSERT(cfg != NULL);
    return cfg->name;
}

uint16_t bftkv_config_group(const struct bftkv_config *cfg)
{
    BFTKV_ASSERT(cfg != NULL);
    return cfg->group;
}

uint16_t bftkv_config_replicas(const struct bftkv_config *cfg)
{
    BFTKV_ASSERT(cfg != NULL);
    return cfg->n;
}

uint16_t bftkv_config_faults(const struct bftkv_config *cfg)
{
    BFTKV_ASSERT(cfg != NULL);
    return cfg->f;
}

bool bftkv_config_client_allowed(const struct bftkv_config *cfg, uint16_t id)
{
    BFTKV_ASSERT(cfg != NULL);
    return id < cfg->clients && cfg->client[id].allowed;
}

int bftkv_config_replica_address(const struct bftkv_config *cfg, uint16_t id, char *host, size_t hostlen,
                                 uint16_t *port)
{
    BFTKV_ASSERT(cfg != NULL);
    if (id >= cfg->n || host == NULL || port == NULL)
        return BFTKV_E_INVAL;
    size_t len = strnlen(cfg->replica[id].host, sizeof cfg->replica[id].host);
    if (len >= hostlen)
        return BFTKV_E_RANGE;
    memcpy(host, cfg->replica[id].host, len + 1u);
    *port = cfg->replica[id].port;
    return 0;
}

uint32_t bftkv_config_client_timeout_ms(const struct bftkv_config *cfg)
{
    BFTKV_ASSERT(cfg != NULL);
    return cfg->client_timeout_ms;
}

uint16_t bftkv_config_client_lanes(const struct bftkv_config *cfg)
{
    BFTKV_ASSERT(cfg != NULL);
    return cfg->client_lanes;
}
