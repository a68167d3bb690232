/* An application of the installed libbftkv, built by test_install.sh with only
 * `pkg-config --cflags --libs bftkv` (and once more against libbftkv.a with
 * `pkg-config --static`). No cluster is needed: it checks that the public
 * headers compile on their own, that the library links and loads, and that its
 * calls answer as include/bftkv/errors.h, client.h and config.h say (a config
 * opened from text, the opaque config's accessors, struct_size refused when
 * missing).
 *
 *   install_client MISSING_CONFIG_PATH
 *
 * Prints one line per check and exits 0 when all hold.
 */
#include <bftkv/client.h>
#include <bftkv/config.h>
#include <bftkv/errors.h>
#include <bftkv/limits.h>

#include <stdio.h>
#include <string.h>

/* 64 hex digits: well-formed public keys nobody holds, one per principal
 * (the parser refuses a key pair shared by two). */
#define HEX64(d) d d d d d d d d d d d d d d d d d d d d d d d d d d d d d d d d

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

    /* A config held in memory: parsed, read through accessors, and refused with
     * the parser's message when bad. */
    static const char conf[] = "f 0\n"
                               "replica 0 127.0.0.1:7999 x25519=" HEX64("01") " ed25519=" HEX64("02") "\n"
                               "client 0 x25519=" HEX64("03") " ed25519=" HEX64("04") "\n"
                               "key_dir /nonexistent/keys\n";
    struct bftkv_config *cfg = NULL;
    rc = bftkv_config_parse(conf, sizeof conf - 1, "inline.conf", &cfg, err, sizeof err);
    expect(rc == 0 && cfg != NULL, "bftkv_config_parse of a config in memory");
    if (cfg != NULL) {
        expect(bftkv_config_replicas(cfg) == 1 && bftkv_config_faults(cfg) == 0, "config accessors");
        expect(bftkv_config_client_allowed(cfg, 0) && !bftkv_config_client_allowed(cfg, 1),
               "bftkv_config_client_allowed");
        bftkv_config_free(cfg);
    }
    rc = bftkv_client_open_text(conf, sizeof conf - 1, "inline.conf", 0, &opt, &c);
    printf("open_text = %d (%s): %s\n", rc, bftkv_errname(rc), err);
    expect(rc == BFTKV_E_IO && c == NULL, "bftkv_client_open_text without its key file fails with BFTKV_E_IO");
    rc = bftkv_client_open_text("f x\n", 4, "bad.conf", 0, &opt, &c);
    expect(rc == BFTKV_E_CONFIG && strstr(err, "bad.conf:1:") != NULL, "bad config text: the parser's message");
    struct bftkv_client_options zero;
    memset(&zero, 0, sizeof zero);
    expect(bftkv_client_open_text(conf, sizeof conf - 1, "inline.conf", 0, &zero, &c) == BFTKV_E_INVAL,
           "options without struct_size are refused");
    bftkv_client_close(NULL); /* a no-op */
    return failures == 0 ? 0 : 1;
}
