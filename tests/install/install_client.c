/* An application of the installed libbftkv, built by test_install.sh with only
 * `pkg-config --cflags --libs bftkv` (and once more against libbftkv.a with
 * `pkg-config --static`). No cluster is needed: it checks that the public
 * headers compile on their own, that the library links and loads, and that its
 * calls answer as include/bftkv/errors.h and client.h say.
 *
 *   install_client MISSING_CONFIG_PATH
 *
 * Prints one line per check and exits 0 when all hold.
 */
#include <bftkv/client.h>
#include <bftkv/errors.h>
#include <bftkv/limits.h>

#include <stdio.h>
#include <string.h>

static int failures;

static void expect(int ok, const char *what)
{
    printf("%s: %s\n", ok ? "ok" : "FAILED", what);
    failures += !ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: install_client MISSING_CONFIG_PATH\n");
        return 2;
    }
    printf("strerror(NOT_FOUND) = \"%s\"\n", bftkv_strerror(BFTKV_E_NOT_FOUND));
    expect(strcmp(bftkv_strerror(BFTKV_E_NOT_FOUND), "key not found") == 0, "bftkv_strerror");
    expect(strcmp(bftkv_errname(BFTKV_E_SESSION_BUSY), "SESSION_BUSY") == 0, "bftkv_errname");
    printf("BFTKV_KEY_MAX = %u, BFTKV_VALUE_MAX = %u\n", (unsigned)BFTKV_KEY_MAX, (unsigned)BFTKV_VALUE_MAX);
    expect(BFTKV_KEY_MAX == 1024u, "limits.h: BFTKV_KEY_MAX");

    char err[512] = "";
    struct bftkv_client_options opt;
    bftkv_client_options_init(&opt);
    opt.err = err;
    opt.errlen = sizeof err;
    struct bftkv_client *c = NULL;
    int rc = bftkv_client_open(argv[1], 1, &opt, &c);
    printf("open(%s) = %d (%s): %s\n", argv[1], rc, bftkv_errname(rc), err);
    expect(rc == BFTKV_E_IO && c == NULL, "bftkv_client_open of a missing config fails with BFTKV_E_IO");
    expect(strstr(err, argv[1]) != NULL, "its message names the file");
    bftkv_client_close(NULL); /* a no-op */
    return failures == 0 ? 0 : 1;
}
