/* The deployment map as JSON, for operators (`bftkv admin show-map`; docs/
 * design.md §6.2). A rendering only: the signed binary encoding is the map, and
 * nothing parses this text back. Every field of the map appears, the public
 * keys in hex as a config file spells them, and the derived placement as each
 * partition's replica set by node id, best first. Hosts are checked on decode
 * (letters, digits, '.', '-', '_', ':'), so no string here needs escaping; the
 * writer escapes anyway rather than rely on that.
 */
#include <inttypes.h>
#include <stdio.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "cluster/config_internal.h"
#include "common/assert.h"

static void json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static void json_keys(FILE *fp, const uint8_t x25519[32], const uint8_t ed25519[32])
{
    char x[65], ed[65];
    config_hex_encode(x, x25519);
    config_hex_encode(ed, ed25519);
    fprintf(fp, "\"x25519\": \"%s\", \"ed25519\": \"%s\"", x, ed);
}

int cluster_map_json_write(const struct cluster_map *map, FILE *fp)
{
    BFTKV_ASSERT(map != NULL && fp != NULL);
    const struct cluster_map_params *pa = &map->params;
    fprintf(fp, "{\n  \"version\": %u,\n  \"epoch\": %" PRIu64 ",\n  \"f\": %u,\n  \"rf\": %u,\n",
            CLUSTER_MAP_VERSION, pa->epoch, pa->f, pa->rf);
    fprintf(fp, "  \"partitions\": %" PRIu32 ",\n", pa->partitions);
    fprintf(fp, "  \"placement\": {\"algorithm\": \"%s\", \"hash\": \"siphash24\", \"vnodes\": %" PRIu32 "},\n",
            cluster_map_placement_name(pa->placement), pa->vnodes);
    fprintf(fp, "  \"nodes\": [\n");
    for (uint16_t i = 0; i < map->m; i++) {
        const struct bftkv_config_replica *n = &map->node[i];
        fprintf(fp, "    {\"id\": %" PRIu32 ", \"host\": ", map->node_id[i]);
        json_string(fp, n->host);
        fprintf(fp, ", \"port\": %u, ", n->port);
        json_keys(fp, n->x25519, n->ed25519);
        fprintf(fp, "}%s\n", i + 1u < map->m ? "," : "");
    }
    fprintf(fp, "  ],\n  \"clients\": [\n");
    uint16_t left = map->clients_allowed;
    for (uint16_t c = 0; c < map->clients; c++) {
        const struct bftkv_config_client *cl = &map->client[c];
        if (!cl->allowed)
            continue;
        fprintf(fp, "    {\"id\": %u, ", c);
        json_keys(fp, cl->x25519, cl->ed25519);
        fprintf(fp, "}%s\n", --left > 0 ? "," : "");
    }
    fprintf(fp, "  ],\n  \"partition_replicas\": [\n");
    for (uint32_t p = 0; p < pa->partitions; p++) {
        const uint16_t *set = cluster_map_partition_replicas(map, p);
        fprintf(fp, "    [");
        for (uint16_t k = 0; k < pa->rf; k++)
            fprintf(fp, "%s%" PRIu32, k > 0 ? ", " : "", map->node_id[set[k]]);
        fprintf(fp, "]%s\n", p + 1u < pa->partitions ? "," : "");
    }
    fprintf(fp, "  ]\n}\n");
    return ferror(fp) ? BFTKV_E_IO : 0;
}
