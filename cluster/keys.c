/* Secret key files, and a principal's identity checked against the config file
 * (cluster/cluster.h has the file format and the rules).
 *
 * A seed is the whole secret of a principal, so the file handling is strict: a
 * key file others can read is refused rather than used (ssh's rule), a new key
 * never replaces an old one, and every buffer that held the seed in clear is
 * wiped before it is released. The public halves derived from a loaded seed are
 * compared with the config's, so a key file copied to the wrong replica or a
 * config edited by hand fails at start-up with a message saying which, instead
 * of as a silent stream of MAC failures.
 */
#include "cluster/cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "cluster/config_internal.h"

/* ---- Loading ------------------------------------------------------------------- */

/* One key line among comments and blank lines; text is len bytes, terminated. */
static int key_text_parse(const char *path, char *text, size_t len, uint8_t seed[32], char *err, size_t errlen)
{
    uint32_t line = 0, key_line = 0;
    char *s = text;
    if (memchr(text, '\0', len) != NULL) {
        errbuf_put(err, errlen, "%s: NUL byte in the file (is this a key file?)", path);
        return BFTKV_E_CONFIG;
    }
    while (*s != '\0') {
        line++;
        char *nl = strchr(s, '\n');
        char *end = nl != NULL ? nl : s + strlen(s);
        char *next = nl != NULL ? nl + 1 : end;
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
            end--;
        size_t n = (size_t)(end - s);
        if (n == 0 || *s == '#') {
            s = next;
            continue;
        }
        if (key_line != 0) {
            errbuf_put(err, errlen, "%s:%u: a second key line (the key is at line %u)", path, line, key_line);
            return BFTKV_E_CONFIG;
        }
        if (!config_hex_decode(s, n, seed)) {
            sodium_memzero(seed, 32);
            errbuf_put(err, errlen, "%s:%u: bad key line (expected 64 hex digits)", path, line);
            return BFTKV_E_CONFIG;
        }
        key_line = line;
        s = next;
    }
    if (key_line == 0) {
        errbuf_put(err, errlen, "%s: no key in the file (expected a line of 64 hex digits)", path);
        return BFTKV_E_CONFIG;
    }
    return 0;
}

int bftkv_key_load(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err, size_t errlen)
{
    if (path == NULL || seed == NULL) {
        errbuf_put(err, errlen, "key file: invalid argument");
        return BFTKV_E_INVAL;
    }
    /* O_NONBLOCK: a FIFO planted at path must not hang start-up; fstat rejects it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        errbuf_put(err, errlen, "%s: %s", path, strerror(errno));
        return BFTKV_E_IO;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        errbuf_put(err, errlen, "%s: %s", path, strerror(errno));
        rc = BFTKV_E_IO;
    } else if (!S_ISREG(st.st_mode)) {
        errbuf_put(err, errlen, "%s: not a regular file", path);
        rc = BFTKV_E_CONFIG;
    } else if ((st.st_mode & 077) != 0) {
        errbuf_put(err, errlen,
                "%s: permissions %04o are too open: a secret key must be accessible by its owner only "
                "(chmod 600 %s)",
                path, (unsigned)(st.st_mode & 07777), path);
        rc = BFTKV_E_CONFIG;
    } else if (st.st_uid != geteuid() && st.st_uid != 0) {
        errbuf_put(err, errlen, "%s: owned by uid %u, not by the current user (uid %u) or root", path,
                (unsigned)st.st_uid, (unsigned)geteuid());
        rc = BFTKV_E_CONFIG;
    } else if (st.st_size > (off_t)BFTKV_KEY_FILE_MAX) {
        errbuf_put(err, errlen, "%s: larger than %u bytes: not a key file", path, BFTKV_KEY_FILE_MAX);
        rc = BFTKV_E_CONFIG;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }

    char text[BFTKV_KEY_FILE_MAX + 1];
    size_t len;
    rc = config_fd_read(fd, text, BFTKV_KEY_FILE_MAX, &len, path, err, errlen);
    close(fd);
    text[len] = '\0';
    uint8_t tmp[32];
    if (rc == 0)
        rc = key_text_parse(path, text, len, tmp, err, errlen);
    if (rc == 0)
        memcpy(seed, tmp, 32);
    sodium_memzero(tmp, sizeof tmp);
    sodium_memzero(text, sizeof text);
    return rc;
}

int bftkv_key_parse(const char *text, size_t len, const char *name, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err,
                    size_t errlen)
{
    if ((text == NULL && len > 0) || seed == NULL) {
        errbuf_put(err, errlen, "key file: invalid argument");
        return BFTKV_E_INVAL;
    }
    if (name == NULL)
        name = "key file";
    if (len > BFTKV_KEY_FILE_MAX) {
        errbuf_put(err, errlen, "%s: larger than %u bytes: not a key file", name, BFTKV_KEY_FILE_MAX);
        return BFTKV_E_CONFIG;
    }
    char copy[BFTKV_KEY_FILE_MAX + 1];
    if (len > 0)
        memcpy(copy, text, len);
    copy[len] = '\0';
    uint8_t tmp[32];
    int rc = key_text_parse(name, copy, len, tmp, err, errlen);
    if (rc == 0)
        memcpy(seed, tmp, 32);
    sodium_memzero(tmp, sizeof tmp);
    sodium_memzero(copy, sizeof copy);
    return rc;
}

/* ---- Generating ------------------------------------------------------------------ */

static int seed_draw(uint8_t seed[32])
{
    size_t got = 0;
    for (int tries = 0; got < 32 && tries < 100; tries++) {
        ssize_t r = getrandom(seed + got, 32 - got, 0);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0)
            got += (size_t)r;
    }
    return got == 32 ? 0 : -EAGAIN;
}

void bftkv_key_public(const uint8_t seed[BFTKV_KEY_SEED_SIZE], char x25519_hex[65], char ed25519_hex[65])
{
    struct auth_keypair kp;
    auth_keypair_from_seed(&kp, seed);
    config_hex_encode(x25519_hex, kp.x_pk);
    config_hex_encode(ed25519_hex, kp.sign_pk);
    sodium_memzero(&kp, sizeof kp);
}

int bftkv_key_generate(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err, size_t errlen)
{
    if (path == NULL || seed == NULL) {
        errbuf_put(err, errlen, "key file: invalid argument");
        return BFTKV_E_INVAL;
    }
    uint8_t tmp[32];
    int e = seed_draw(tmp);
    if (e != 0) {
        errbuf_put(err, errlen, "%s: cannot draw random bytes: %s", path, strerror(-e));
        return BFTKV_E_IO;
    }
    /* O_EXCL with O_CREAT also refuses a symlink at path, dangling or not. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        e = errno;
        sodium_memzero(tmp, sizeof tmp);
        errbuf_put(err, errlen, "%s: %s%s", path, strerror(e),
                e == EEXIST ? " (refusing to overwrite a key file)" : "");
        return BFTKV_E_IO;
    }

    char x[65], ed[65], hex[65], text[512];
    bftkv_key_public(tmp, x, ed);
    config_hex_encode(hex, tmp);
    int len = snprintf(text, sizeof text,
                       "# bftkv secret key: keep it private (mode 0600), never copy it into a config file.\n"
                       "# Its public keys, for the config file: x25519=%s ed25519=%s\n"
                       "%s\n",
                       x, ed, hex);
    BFTKV_ASSERT(len > 0);
    BFTKV_ASSERT((size_t)len < sizeof text);

    /* fchmod: the umask may have cleared bits of 0600; the key must stay readable. */
    int rc = fchmod(fd, 0600) == 0 ? 0 : -errno;
    size_t done = 0;
    for (int tries = 0; rc == 0 && done < (size_t)len && tries < 100; tries++) {
        ssize_t w = write(fd, text + done, (size_t)len - done);
        if (w < 0 && errno != EINTR)
            rc = -errno;
        else if (w > 0)
            done += (size_t)w;
    }
    if (rc == 0 && done < (size_t)len)
        rc = -EIO;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    sodium_memzero(hex, sizeof hex);
    sodium_memzero(text, sizeof text);
    if (rc != 0) {
        unlink(path);
        sodium_memzero(tmp, sizeof tmp);
        errbuf_put(err, errlen, "%s: %s", path, strerror(-rc));
        return BFTKV_E_IO;
    }
    memcpy(seed, tmp, 32);
    sodium_memzero(tmp, sizeof tmp);
    return 0;
}

/* ---- Identity ---------------------------------------------------------------------- */

/* The public keys cfg lists for (role, id) and the line that lists them. */
struct listed {
    const uint8_t *x25519;
    const uint8_t *ed25519;
    uint32_t line;
};

/* Whether cfg lists (role, id), and if so its keys into *out (out may be NULL).
 * BFTKV_E_INVAL for a NULL cfg (the caller passes NULL for any NULL argument:
 * "what: invalid argument") or an unknown role, BFTKV_E_CONFIG for an id not in
 * the group or the allow-list; each with a message. */
static int listed_keys(const char *what, const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                       struct listed *out, char *err, size_t errlen)
{
    struct listed l;
    if (cfg == NULL) {
        errbuf_put(err, errlen, "%s: invalid argument", what);
        return BFTKV_E_INVAL;
    }
    if (role == BFTKV_CONFIG_REPLICA) {
        if (id >= cfg->n) {
            errbuf_put(err, errlen, "%s: replica %u is not in the group (replica ids are 0..%u)", cfg->name, id,
                    cfg->n - 1u);
            return BFTKV_E_CONFIG;
        }
        l = (struct listed){cfg->replica[id].x25519, cfg->replica[id].ed25519, cfg->replica[id].line};
    } else if (role == BFTKV_CONFIG_CLIENT) {
        if (id >= cfg->clients || !cfg->client[id].allowed) {
            errbuf_put(err, errlen, "%s: client %u is not in the allow-list (no 'client %u' line)", cfg->name, id, id);
            return BFTKV_E_CONFIG;
        }
        l = (struct listed){cfg->client[id].x25519, cfg->client[id].ed25519, cfg->client[id].line};
    } else {
        errbuf_put(err, errlen, "%s: invalid role", cfg->name);
        return BFTKV_E_INVAL;
    }
    if (out != NULL)
        *out = l;
    return 0;
}

int bftkv_key_identity_load(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                            struct auth_keypair *kp, char *err, size_t errlen)
{
    struct listed listed;
    int rc = listed_keys("identity", kp == NULL ? NULL : cfg, role, id, &listed, err, errlen);
    if (rc != 0)
        return rc;
    char path[BFTKV_CONFIG_PATH_MAX + 32];
    if (bftkv_config_key_path(cfg, role, id, path, sizeof path) != 0) {
        errbuf_put(err, errlen, "%s: key_dir too long", cfg->name);
        return BFTKV_E_CONFIG;
    }
    uint8_t seed[32];
    rc = bftkv_key_load(path, seed, err, errlen);
    if (rc != 0)
        return rc;
    auth_keypair_from_seed(kp, seed);
    sodium_memzero(seed, sizeof seed);

    bool x_ok = sodium_memcmp(kp->x_pk, listed.x25519, 32) == 0;
    bool ed_ok = sodium_memcmp(kp->sign_pk, listed.ed25519, 32) == 0;
    if (!x_ok || !ed_ok) {
        char have[65], want[65];
        config_hex_encode(have, x_ok ? kp->sign_pk : kp->x_pk);
        config_hex_encode(want, x_ok ? listed.ed25519 : listed.x25519);
        errbuf_put(err, errlen,
                "%s: the key does not match %s %u in %s:%u (its %s public key is %.16s..., the config says "
                "%.16s...): wrong key file, or a config from another cluster",
                path, config_role_name(role), id, cfg->name, listed.line, x_ok ? "ed25519" : "x25519", have, want);
        sodium_memzero(kp, sizeof *kp);
        return BFTKV_E_CONFIG;
    }
    return 0;
}

/* After auth_init_* failed with BFTKV_E_INVAL: name the peer whose X25519 key
 * yields no shared secret (pairwise_key_derive in engine/auth.c). */
static int low_order_report(const struct bftkv_config *cfg, const struct auth_keypair *kp, bool clients_too,
                            char *err, size_t errlen)
{
    uint8_t q[32];
    for (uint16_t j = 0; j < cfg->n; j++) {
        if (crypto_scalarmult(q, kp->x_sk, cfg->replica[j].x25519) != 0 || sodium_is_zero(q, 32)) {
            errbuf_put(err, errlen, "%s:%u: the x25519 key of replica %u is a low-order point (no secret can be "
                    "shared with it)", cfg->name, cfg->replica[j].line, j);
            return BFTKV_E_CONFIG;
        }
    }
    for (uint16_t c = 0; clients_too && c < cfg->clients; c++) {
        if (!cfg->client[c].allowed)
            continue;
        if (crypto_scalarmult(q, kp->x_sk, cfg->client[c].x25519) != 0 || sodium_is_zero(q, 32)) {
            errbuf_put(err, errlen, "%s:%u: the x25519 key of client %u is a low-order point (no secret can be "
                    "shared with it)", cfg->name, cfg->client[c].line, c);
            return BFTKV_E_CONFIG;
        }
    }
    sodium_memzero(q, sizeof q);
    errbuf_put(err, errlen, "%s: cannot set up authentication", cfg->name);
    return BFTKV_E_CONFIG;
}

int bftkv_key_auth_init(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                        const struct auth_keypair *kp, struct auth_ctx *a, char *err, size_t errlen)
{
    int rc = listed_keys("authentication", kp == NULL || a == NULL ? NULL : cfg, role, id, NULL, err, errlen);
    if (rc != 0)
        return rc;

    struct auth_public replicas[BFTKV_REPLICAS_MAX];
    for (uint16_t j = 0; j < cfg->n; j++) {
        memcpy(replicas[j].x_pk, cfg->replica[j].x25519, 32);
        memcpy(replicas[j].sign_pk, cfg->replica[j].ed25519, 32);
    }
    if (role == BFTKV_CONFIG_CLIENT) {
        rc = auth_init_client(a, id, cfg->n, kp, replicas);
        return rc == BFTKV_E_INVAL ? low_order_report(cfg, kp, false, err, errlen) : rc;
    }

    /* Sizing: clients * (64 + 1) bytes, at most 260 KiB, freed before returning. */
    struct auth_public *clients = calloc(cfg->clients, sizeof *clients);
    bool *known = calloc(cfg->clients, sizeof *known);
    if (clients == NULL || known == NULL) {
        free(clients);
        free(known);
        errbuf_put(err, errlen, "%s: out of memory", cfg->name);
        return BFTKV_E_NOMEM;
    }
    for (uint16_t c = 0; c < cfg->clients; c++) {
        known[c] = cfg->client[c].allowed;
        memcpy(clients[c].x_pk, cfg->client[c].x25519, 32);
        memcpy(clients[c].sign_pk, cfg->client[c].ed25519, 32);
    }
    rc = auth_init_replica(a, id, cfg->n, kp, replicas, clients, known, cfg->clients);
    free(clients);
    free(known);
    if (rc == BFTKV_E_INVAL)
        return low_order_report(cfg, kp, true, err, errlen);
    if (rc == BFTKV_E_NOMEM)
        errbuf_put(err, errlen, "%s: out of memory", cfg->name);
    return rc;
}
