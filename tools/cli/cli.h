/* What the files of the `bftkv` command line share (tools/cli/): its exit
 * codes, which scripts rely on (main.c's header comment lists them), and the
 * admin commands of tools/cli/admin.c and `status` (tools/cli/status.c).
 */
#ifndef BFTKV_TOOLS_CLI_H
#define BFTKV_TOOLS_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum cli_exit {
    EXIT_OK = 0,
    EXIT_NOT_FOUND = 1,
    EXIT_USAGE = 2,
    EXIT_UNAVAILABLE = 3,
    EXIT_OTHER = 4,
    EXIT_UNHEALTHY = 5, /* status: some replica unhealthy, a quorum healthy */
};

/* `bftkv admin --help`: the admin commands, their arguments and defaults. */
extern const char cli_admin_help[];

/* `bftkv admin ARGS...` (args[0] the admin command): an exit code. */
int cli_admin(char **args, int nargs, bool json);

/* `bftkv [--json] status [--json] [--max-behind N]` (tools/cli/status.c): the
 * whole deployment's health; EXIT_OK, EXIT_UNHEALTHY or EXIT_UNAVAILABLE. */
int cli_status(const char *config, uint16_t client, int timeout_ms, bool json, char **args, int nargs);

/* `bftkv log-level REPLICA LEVEL` (tools/cli/log_level.c): EXIT_OK when the
 * replica obeyed, EXIT_OTHER when it refused, EXIT_UNAVAILABLE, EXIT_USAGE. */
int cli_log_level(const char *config, uint16_t client, int timeout_ms, bool json_out, const char *replica_arg,
                  const char *level);

/* Output for scripts (tools/cli/output.c). cli_json_string prints s as a JSON
 * string (escaped; the caller checks cli_utf8_valid first);
 * cli_json_bytes_field prints "name":"text" when s is valid UTF-8, else
 * "name_base64":"..." (so a field never loses bytes). */
bool cli_utf8_valid(const uint8_t *s, size_t len);
void cli_json_string(FILE *fp, const uint8_t *s, size_t len);
void cli_json_bytes_field(FILE *fp, const char *name, const uint8_t *s, size_t len);
void cli_hex(FILE *fp, const uint8_t *s, size_t len);
void cli_base64(FILE *fp, const uint8_t *s, size_t len);

#endif /* BFTKV_TOOLS_CLI_H */
