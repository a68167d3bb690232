/* What the files of the `bftkv` command line share (tools/cli/): its exit
 * codes, which scripts rely on (main.c's header comment lists them), and the
 * admin commands of tools/cli/admin.c and `status` (tools/cli/status.c).
 */
#ifndef BFTKV_TOOLS_CLI_H
#define BFTKV_TOOLS_CLI_H

#include <stdint.h>

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
int cli_admin(char **args, int nargs);

/* `bftkv status [--json] [--max-behind N]` (tools/cli/status.c): the whole
 * deployment's health; EXIT_OK, EXIT_UNHEALTHY or EXIT_UNAVAILABLE. */
int cli_status(const char *config, uint16_t client, int timeout_ms, char **args, int nargs);

#endif /* BFTKV_TOOLS_CLI_H */
