/* Fuzzing the secret key file parser (cluster/keys.c).
 *
 * The input is a key file's contents (any bytes). bftkv_key_parse() must refuse
 * it with BFTKV_E_CONFIG and a terminated message, or accept it and give the
 * seed its one key line spells; and bftkv_key_load() on a file holding the same
 * bytes (mode 0600, ours) must agree with it: same verdict, same seed. An
 * accepted seed written back as the canonical one-line file parses to itself.
 * tests/fuzz/fuzz.h says how it is built and run.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "cluster/cluster.h"
#include "tests/fuzz/fuzz.h"

const char fuzz_target_name[] = "keyfile";

/* The "file": an in-memory file (memfd) named by its /proc path, so each run
 * costs no disk I/O; loading sees a regular file of mode 0600, ours. */
static int fuzz_key_fd = -1;
static char fuzz_key_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_CHECK(sodium_init() >= 0);
    fuzz_key_fd = memfd_create("fuzz_keyfile", MFD_CLOEXEC);
    FUZZ_CHECK(fuzz_key_fd >= 0);
    FUZZ_CHECK(fchmod(fuzz_key_fd, 0600) == 0);
    snprintf(fuzz_key_path, sizeof fuzz_key_path, "/proc/self/fd/%d", fuzz_key_fd);
    return 0;
}

/* bftkv_key_load on a private file holding data. */
static int load_via_file(const uint8_t *data, size_t size, uint8_t seed[32])
{
    FUZZ_CHECK(ftruncate(fuzz_key_fd, 0) == 0);
    FUZZ_CHECK(size == 0 || pwrite(fuzz_key_fd, data, size, 0) == (ssize_t)size);
    char err[256];
    return bftkv_key_load(fuzz_key_path, seed, err, sizeof err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t seed[32], seed2[32], loaded[32];
    memset(seed, 0xA5, sizeof seed);
    char err[256];
    memset(err, 'x', sizeof err);
    int rc = bftkv_key_parse((const char *)data, size, "fuzz.key", seed, err, sizeof err);
    int lrc = load_via_file(data, size, loaded);
    FUZZ_CHECK(rc == lrc);
    if (rc != 0) {
        FUZZ_CHECK(rc == BFTKV_E_CONFIG);
        FUZZ_CHECK(memchr(err, '\0', sizeof err) != NULL && err[0] != '\0');
        for (size_t i = 0; i < sizeof seed; i++)
            FUZZ_CHECK(seed[i] == 0xA5); /* untouched */
        return 0;
    }
    FUZZ_CHECK(memcmp(seed, loaded, sizeof seed) == 0);
    char line[66];
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        line[2 * i] = digits[seed[i] >> 4];
        line[2 * i + 1] = digits[seed[i] & 15u];
    }
    line[64] = '\n';
    FUZZ_CHECK(bftkv_key_parse(line, 65, "canonical.key", seed2, err, sizeof err) == 0);
    FUZZ_CHECK(memcmp(seed, seed2, sizeof seed) == 0);
    char x[65], ed[65];
    bftkv_key_public(seed, x, ed);
    FUZZ_CHECK(strlen(x) == 64 && strlen(ed) == 64);
    return 0;
}

static const char *const fuzz_keyfile_seeds[] = {
    "# bftkv secret key of replica 0 (keep private)\n"
    "# x25519 public: 0000000000000000000000000000000000000000000000000000000000000000\n"
    "\n"
    "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n",
    "  \tfedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210 \r\n# trailing comment\n",
    "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
};

void fuzz_seeds(fuzz_seed_add_fn add)
{
    for (size_t i = 0; i < sizeof fuzz_keyfile_seeds / sizeof fuzz_keyfile_seeds[0]; i++)
        add((const uint8_t *)fuzz_keyfile_seeds[i], strlen(fuzz_keyfile_seeds[i]));
}
