/* Unit tests of the key files (cluster/keys.c): writing and loading a key file, its
 * permission and format checks with errors naming file and line, and loading an
 * identity from a cluster directory whose config lists the public halves of the
 * generated keys. Files go to a fresh mkdtemp directory under /tmp
 * (config_fixture.c), removed at the end of each test. Run by test_config.c's
 * main().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

#include "cluster/cluster.h"
#include "bftkv/errors.h"
#include "engine/pbft.h"
#include "store/store.h"
#include "config_fixture.h"

/* ---- Key files ------------------------------------------------------------------------ */

void test_key_files(void **state)
{
    (void)state;
    dir_make();
    char path[PATH_MAX], err[BFTKV_CONFIG_ERR_MAX];
    uint8_t seed[32], back[32];
    snprintf(path, sizeof path, "%s/replica-0.key", g_dir);

    mode_t old_umask = umask(0077 | 0200); /* even a hostile umask leaves the key readable */
    assert_int_equal(bftkv_key_generate(path, seed, err, sizeof err), 0);
    umask(old_umask);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    memset(back, 0, sizeof back);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), 0);
    assert_memory_equal(seed, back, 32);

    /* The file's comment names the public keys. */
    char x[65], ed[65], text[BFTKV_KEY_FILE_MAX + 1];
    bftkv_key_public(seed, x, ed);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    assert_non_null(strstr(text, x));
    assert_non_null(strstr(text, ed));

    /* Never overwritten. */
    uint8_t seed2[32];
    assert_int_equal(bftkv_key_generate(path, seed2, err, sizeof err), BFTKV_E_IO);
    assert_non_null(strstr(err, "refusing to overwrite"));
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), 0);
    assert_memory_equal(seed, back, 32);
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/link.key", g_dir);
    assert_int_equal(symlink("/tmp/bftkv-does-not-exist", link), 0);
    assert_int_equal(bftkv_key_generate(link, seed2, err, sizeof err), BFTKV_E_IO);
    assert_int_equal(lstat("/tmp/bftkv-does-not-exist", &st), -1);

    /* Modes open to group or others are refused, naming the mode. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "permissions 0644 are too open"));
    assert_non_null(strstr(err, path));
    assert_int_equal(chmod(path, 0620), 0);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "permissions 0620"));
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), 0);

    /* Not a regular file; missing. */
    assert_int_equal(chmod(g_dir, 0700), 0);
    assert_int_equal(bftkv_key_load(g_dir, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "not a regular file"));
    snprintf(path, sizeof path, "%s/none.key", g_dir);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_IO);
    assert_non_null(strstr(err, "No such file"));

    /* Contents. */
    snprintf(path, sizeof path, "%s/hand.key", g_dir);
    static const char good_hex[] = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    snprintf(text, sizeof text, "# written by hand\r\n\n  %s  \r\n# end\n", good_hex);
    file_write(path, text, 0600);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), 0);
    assert_int_equal(back[0], 0x00);
    assert_int_equal(back[31], 0xff);
    file_write(path, "# nothing\n\n", 0600);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "no key in the file"));
    snprintf(text, sizeof text, "# c\n%.63sg\n", good_hex);
    file_write(path, text, 0600);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "hand.key:2: bad key line (expected 64 hex digits)"));
    snprintf(text, sizeof text, "%.62s\n", good_hex);
    file_write(path, text, 0600);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "hand.key:1: bad key line"));
    snprintf(text, sizeof text, "%s\n%s\n", good_hex, good_hex);
    file_write(path, text, 0600);
    assert_int_equal(bftkv_key_load(path, back, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "hand.key:2: a second key line (the key is at line 1)"));
    dir_remove_tree(g_dir);
}

/* A cluster directory made with the key functions: its config lists the public
 * halves of the generated keys; loading an identity checks them. */
void test_identity(void **state)
{
    (void)state;
    dir_make();
    char path[PATH_MAX], keydir[128], err[BFTKV_CONFIG_ERR_MAX];
    snprintf(keydir, sizeof keydir, "%s/keys", g_dir);
    assert_int_equal(mkdir(keydir, 0700), 0);

    size_t cap = 8192, len = 0;
    char *conf = malloc(cap);
    assert_non_null(conf);
    len += (size_t)snprintf(conf + len, cap - len, "f 1\nkey_dir keys\n");
    uint8_t seed[32];
    char x[65], ed[65];
    for (unsigned i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/replica-%u.key", keydir, i);
        assert_int_equal(bftkv_key_generate(path, seed, err, sizeof err), 0);
        bftkv_key_public(seed, x, ed);
        len += (size_t)snprintf(conf + len, cap - len, "replica %u 127.0.0.1:%u x25519=%s ed25519=%s\n", i,
                                7100 + i, x, ed);
    }
    snprintf(path, sizeof path, "%s/client-1.key", keydir);
    assert_int_equal(bftkv_key_generate(path, seed, err, sizeof err), 0);
    bftkv_key_public(seed, x, ed);
    len += (size_t)snprintf(conf + len, cap - len, "client 1 x25519=%s ed25519=%s\n", x, ed);
    /* Client 2 has a low-order X25519 key (all zeros): no secret can be shared with it. */
    len += (size_t)snprintf(conf + len, cap - len, "client 2 x25519=%064d ed25519=%s\n", 0, ed);
    snprintf(path, sizeof path, "%s/cluster.conf", g_dir);
    file_write(path, conf, 0644);
    free(conf);

    struct bftkv_config *cfg = NULL;
    assert_int_equal(bftkv_config_load(path, &cfg, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, ":8: ed25519 key of client 2 is also the key of client 1 (line 7)"));

    /* Rewrite client 2 with its own ed25519 key. */
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    char *ed2 = strstr(strstr(buf, "client 2"), "ed25519=") + 8;
    ed2[0] = ed2[0] == 'a' ? 'b' : 'a';
    rewind(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    fclose(fp);
    int rc = bftkv_config_load(path, &cfg, err, sizeof err);
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);

    struct auth_keypair kp;
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_REPLICA, 2, &kp, err, sizeof err), 0);
    assert_memory_equal(kp.x_pk, cfg->replica[2].x25519, 32);
    assert_memory_equal(kp.sign_pk, cfg->replica[2].ed25519, 32);

    /* A replica refuses to start with a low-order client key, naming the line. */
    struct auth_ctx a;
    assert_int_equal(bftkv_key_auth_init(cfg, BFTKV_CONFIG_REPLICA, 2, &kp, &a, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "cluster.conf:8: the x25519 key of client 2 is a low-order point"));

    struct auth_keypair ckp;
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, 1, &ckp, err, sizeof err), 0);
    assert_int_equal(bftkv_key_auth_init(cfg, BFTKV_CONFIG_CLIENT, 1, &ckp, &a, err, sizeof err), 0);
    auth_destroy(&a);

    /* Not in the group, not in the allow-list, no key file. */
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_REPLICA, 4, &kp, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "replica 4 is not in the group (replica ids are 0..3)"));
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, 0, &kp, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "client 0 is not in the allow-list"));
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_CLIENT, 2, &kp, err, sizeof err), BFTKV_E_IO);
    assert_non_null(strstr(err, "client-2.key: No such file"));

    /* Replica 3's key file replaced by another key: the mismatch is named. */
    char path3[PATH_MAX], other[PATH_MAX];
    snprintf(path3, sizeof path3, "%s/replica-3.key", keydir);
    snprintf(other, sizeof other, "%s/other.key", keydir);
    assert_int_equal(bftkv_key_generate(other, seed, err, sizeof err), 0);
    assert_int_equal(rename(other, path3), 0);
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_REPLICA, 3, &kp, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "replica-3.key: the key does not match replica 3 in "));
    assert_non_null(strstr(err, "cluster.conf:6"));

    /* A key file readable by others is refused through the identity path too. */
    snprintf(path, sizeof path, "%s/replica-0.key", keydir);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(bftkv_key_identity_load(cfg, BFTKV_CONFIG_REPLICA, 0, &kp, err, sizeof err), BFTKV_E_CONFIG);
    assert_non_null(strstr(err, "permissions 0640 are too open"));

    bftkv_config_free(cfg);
    dir_remove_tree(g_dir);
}
