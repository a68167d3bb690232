/* What the files of the `bftkv` command line share (tools/cli/): its exit
 * codes, which scripts rely on (main.c's header comment lists them), and the
 * admin commands of tools/cli/admin.c.
 */
#ifndef BFTKV_TOOLS_CLI_H
#define BFTKV_TOOLS_CLI_H

enum cli_exit {
    EXIT_OK = 0,
    EXIT_NOT_FOUND = 1,
    EXIT_USAGE = 2,
    EXIT_UNAVAILABLE = 3,
    EXIT_OTHER = 4,
};

/* `bftkv admin --help`: the admin commands, their arguments and defaults. */
extern const char cli_admin_help[];

/* `bftkv admin ARGS...` (args[0] the admin command): an exit code. */
int cli_admin(char **args, int nargs);

#endif /* BFTKV_TOOLS_CLI_H */
