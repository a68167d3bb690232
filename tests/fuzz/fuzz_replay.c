/* The stand-alone driver of every fuzz target (tests/fuzz/fuzz.h), for builds
 * without libFuzzer: a main() that feeds LLVMFuzzerTestOneInput() the target's
 * built-in seeds, every corpus file named on the command line (a directory:
 * every file in it), then N mutations of those inputs drawn from a fixed-seed
 * PRNG (the mutations libFuzzer starts with: bit flips, interesting values,
 * truncation, deletion, insertion, splicing another input). Deterministic for
 * a given --seed, so a failure in CI replays exactly.
 *
 *   fuzz_<name>_replay [--mutations N] [--seed S] [FILE|DIR...]
 *   fuzz_<name>_replay --write-seeds DIR
 *
 * Exit 0 when every input ran without a failed check; a failed check aborts.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"
#include "common/mix64.h"

#define REPLAY_INPUTS_MAX 4096u
#define REPLAY_FILE_MAX (1u << 20)
#define MUTANT_CAP (256u * 1024u)

struct input {
    uint8_t *bytes;
    size_t len;
};

static struct input inputs[REPLAY_INPUTS_MAX];
static size_t ninputs;

static void input_add(const uint8_t *bytes, size_t len)
{
    FUZZ_CHECK(ninputs < REPLAY_INPUTS_MAX && len <= MUTANT_CAP);
    struct input *in = &inputs[ninputs++];
    in->bytes = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(in->bytes != NULL);
    if (len > 0)
        memcpy(in->bytes, bytes, len);
    in->len = len;
}

/* One input in a heap buffer of exactly its size: an over-read is an ASan report. */
static void run_one(const uint8_t *bytes, size_t len)
{
    uint8_t *copy = malloc(len > 0 ? len : 1);
    FUZZ_CHECK(copy != NULL);
    if (len > 0)
        memcpy(copy, bytes, len);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
}

/* ---- Mutations -------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    return bftkv_splitmix64(&rng_state);
}

static size_t rng_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rng_next() % n);
}

/* One mutation in place; returns the new length (<= MUTANT_CAP). */
static size_t mutate(uint8_t *b, size_t len)
{
    static const uint32_t interesting[] = {0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x400, 0x401,
                                           0x7FFF, 0x8000, 0xFFFF, 0x10000, 0xF000, 0xF001,
                                           0x7FFFFFFF, 0x80000000u, 0xFFFFFFFFu};
    if (len == 0) {
        b[0] = (uint8_t)rng_next();
        return 1;
    }
    size_t pos = rng_below(len);
    switch (rng_below(8)) {
    case 0: /* flip a bit */
        b[pos] ^= (uint8_t)(1u << rng_below(8));
        return len;
    case 1: /* random byte */
        b[pos] = (uint8_t)rng_next();
        return len;
    case 2: { /* an interesting 1, 2 or 4-byte little-endian value */
        uint32_t v = interesting[rng_below(sizeof interesting / sizeof interesting[0])];
        size_t w = (size_t)1 << rng_below(3);
        for (size_t i = 0; i < w && pos + i < len; i++)
            b[pos + i] = (uint8_t)(v >> (8 * i));
        return len;
    }
    case 3: /* truncate */
        return rng_below(len + 1);
    case 4: { /* delete a run */
        size_t n = 1 + rng_below(16);
        if (n > len - pos)
            n = len - pos;
        memmove(b + pos, b + pos + n, len - pos - n);
        return len - n;
    }
    case 5: { /* insert a run of random bytes */
        size_t n = 1 + rng_below(16);
        if (len + n > MUTANT_CAP)
            return len;
        memmove(b + pos + n, b + pos, len - pos);
        for (size_t i = 0; i < n; i++)
            b[pos + i] = (uint8_t)rng_next();
        return len + n;
    }
    case 6: { /* append another input (several messages in one datagram, lines) */
        const struct input *o = &inputs[rng_below(ninputs)];
        if (len + o->len > MUTANT_CAP)
            return len;
        memcpy(b + len, o->bytes, o->len);
        return len + o->len;
    }
    default: { /* copy a chunk over another place */
        size_t from = rng_below(len);
        size_t n = 1 + rng_below(32);
        if (n > len - from)
            n = len - from;
        if (n > len - pos)
            n = len - pos;
        memmove(b + pos, b + from, n);
        return len;
    }
    }
}

static void run_mutations(long count, uint64_t seed)
{
    uint8_t *mutant = malloc(MUTANT_CAP);
    FUZZ_CHECK(mutant != NULL);
    rng_state = seed;
    for (long t = 0; t < count && ninputs > 0; t++) {
        const struct input *s = &inputs[rng_below(ninputs)];
        memcpy(mutant, s->bytes, s->len);
        size_t len = s->len;
        size_t k = 1 + rng_below(6);
        for (size_t i = 0; i < k; i++)
            len = mutate(mutant, len);
        run_one(mutant, len);
    }
    free(mutant);
}

/* ---- Corpus files ------------------------------------------------------------------ */

static int load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "fuzz_%s_replay: %s: %s\n", fuzz_target_name, path, strerror(errno));
        return 1;
    }
    uint8_t *data = malloc(REPLAY_FILE_MAX);
    FUZZ_CHECK(data != NULL);
    size_t n = fread(data, 1, REPLAY_FILE_MAX, f);
    fclose(f);
    run_one(data, n);
    if (n <= MUTANT_CAP && ninputs < REPLAY_INPUTS_MAX)
        input_add(data, n); /* larger ones are replayed but not mutated */
    free(data);
    return 0;
}

static int load_path(const char *path, long *files)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "fuzz_%s_replay: %s: %s\n", fuzz_target_name, path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*files)++;
        return load_file(path);
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        fprintf(stderr, "fuzz_%s_replay: %s: %s\n", fuzz_target_name, path, strerror(errno));
        return 1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char sub[4096];
        int w = snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        if (w < 0 || (size_t)w >= sizeof sub)
            continue;
        rc |= load_path(sub, files);
    }
    closedir(dir);
    return rc;
}

static int write_seeds(const char *dir)
{
    for (size_t i = 0; i < ninputs; i++) {
        char path[4096];
        int w = snprintf(path, sizeof path, "%s/seed-%02zu", dir, i);
        if (w < 0 || (size_t)w >= sizeof path)
            return 1;
        FILE *f = fopen(path, "wb");
        if (f == NULL || fwrite(inputs[i].bytes, 1, inputs[i].len, f) != inputs[i].len) {
            fprintf(stderr, "fuzz_%s_replay: %s: %s\n", fuzz_target_name, path, strerror(errno));
            if (f != NULL)
                fclose(f);
            return 1;
        }
        fclose(f);
    }
    printf("fuzz_%s_replay: wrote %zu seeds to %s\n", fuzz_target_name, ninputs, dir);
    return 0;
}

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    fuzz_seeds(input_add);
    size_t builtin = ninputs;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--write-seeds") == 0)
            return write_seeds(argv[i + 1]);
    for (size_t i = 0; i < builtin; i++)
        run_one(inputs[i].bytes, inputs[i].len);
    long mutations = 20000;
    uint64_t seed = 1;
    long files = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mutations") == 0 && i + 1 < argc) {
            mutations = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--mutations N] [--seed S] [--write-seeds DIR] [FILE|DIR...]\n", argv[0]);
            return 0;
        } else {
            rc |= load_path(argv[i], &files);
        }
    }
    if (rc != 0)
        return rc;
    run_mutations(mutations, seed);
    printf("fuzz_%s_replay: %zu built-in seeds, %ld corpus files and %ld mutations (seed %llu) ran without a "
           "failure\n",
           fuzz_target_name, builtin, files, mutations, (unsigned long long)seed);
    for (size_t i = 0; i < ninputs; i++)
        free(inputs[i].bytes);
    return 0;
}
