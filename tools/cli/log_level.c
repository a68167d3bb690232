/* `bftkv log-level REPLICA LEVEL` (tools/cli/cli.h): set a replica's log level
 * while it runs, through the admin channel (bftkv_client_replica_log_level).
 * The replica obeys an admin_client of its config only and answers with JSON,
 * which is printed as is ({"log_level":"debug","was":"info"}, or
 * {"error":...}); with --json it is wrapped as every command's result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/client.h"
#include "bftkv/config.h"
#include "cli.h"

int cli_log_level(const char *config, uint16_t client, int timeout_ms, bool json_out, const char *replica_arg,
                  const char *level)
{
    char *end = NULL;
    unsigned long replica = strtoul(replica_arg, &end, 10);
    if (replica_arg[0] < '0' || replica_arg[0] > '9' || *end != '\0' || replica >= BFTKV_REPLICAS_MAX) {
        fprintf(stderr, "bftkv: log-level: '%s' is not a replica id\n", replica_arg);
        return EXIT_USAGE;
    }
    char err[512];
    struct bftkv_config *cfg = NULL;
    int rc = bftkv_config_load(config, &cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "bftkv: %s\n", err);
        return EXIT_USAGE;
    }
    static char json[BFTKV_CLIENT_REPLICA_STATS_MAX];
    size_t len = 0;
    int wait_ms = timeout_ms > 0 ? timeout_ms : (int)bftkv_config_client_timeout_ms(cfg);
    rc = bftkv_client_replica_log_level(cfg, client, (uint16_t)replica, level, wait_ms, json, sizeof json, &len, err,
                                        sizeof err);
    bftkv_config_free(cfg);
    int code;
    if (rc != 0 && err[0] != '\0') {
        fprintf(stderr, "bftkv: %s\n", err); /* the level, the replica id, the key file */
        code = EXIT_USAGE;
    } else if (rc == BFTKV_E_TIMEOUT) {
        fprintf(stderr, "bftkv: log-level: replica %lu did not answer within %d ms\n", replica, wait_ms);
        code = EXIT_UNAVAILABLE;
    } else if (rc != 0) {
        fprintf(stderr, "bftkv: log-level: %s\n", bftkv_strerror(rc));
        code = EXIT_OTHER;
    } else {
        code = strstr(json, "\"error\"") != NULL ? EXIT_OTHER : EXIT_OK;
        if (code != EXIT_OK)
            fprintf(stderr, "bftkv: log-level: replica %lu refused: %.*s\n", replica, (int)len, json);
    }
    if (json_out) {
        printf("{\"command\":\"log-level\",\"replica\":%lu,\"ok\":%s,", replica, code == EXIT_OK ? "true" : "false");
        if (rc == 0)
            printf("\"answer\":%.*s,", (int)len, json);
        else
            printf("\"error\":\"%s\",", bftkv_strerror(rc));
        printf("\"exit\":%d}\n", code);
    } else if (rc == 0) {
        printf("%.*s\n", (int)len, json);
    }
    if (fflush(stdout) != 0)
        return EXIT_OTHER;
    return code;
}
