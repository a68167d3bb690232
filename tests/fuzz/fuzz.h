/* What every fuzz target of tests/fuzz/ provides, and the check they share.
 *
 * A target is one file, tests/fuzz/fuzz_<name>.c, built two ways
 * (tests/fuzz/CMakeLists.txt):
 *   fuzz_<name>         libFuzzer (BFTKV_SANITIZE=fuzzer, clang, ASan + UBSan):
 *                       libFuzzer's main() calls the two LLVMFuzzer* functions;
 *   fuzz_<name>_replay  any compiler: tests/fuzz/fuzz_replay.c's main() runs the
 *                       target's built-in seeds, every corpus file it is given
 *                       and N fixed-seed mutations of them through the same
 *                       LLVMFuzzerTestOneInput(), as a unit ctest; --write-seeds
 *                       DIR writes the built-in seeds (tests/fuzz/corpus/<name>
 *                       holds them).
 * A target checks what the code under test promises with FUZZ_CHECK, which
 * aborts: libFuzzer and the replay ctest report an abort as a failure.
 */
#ifndef BFTKV_TESTS_FUZZ_FUZZ_H
#define BFTKV_TESTS_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The target's built-in seeds: valid inputs, each handed to add(). */
typedef void (*fuzz_seed_add_fn)(const uint8_t *bytes, size_t len);
void fuzz_seeds(fuzz_seed_add_fn add);

/* The target's name, for messages ("wire", "config", ...). */
extern const char fuzz_target_name[];

#define FUZZ_CHECK(cond)                                                                                 \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            fprintf(stderr, "fuzz_%s: check failed: %s (%s:%d)\n", fuzz_target_name, #cond, __FILE__, \
                    __LINE__);                                                                           \
            abort();                                                                                     \
        }                                                                                                \
    } while (0)

#endif /* BFTKV_TESTS_FUZZ_FUZZ_H */
