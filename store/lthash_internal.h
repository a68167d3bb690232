/* Internals of LtHash (lthash.h), shared by lthash.c, lthash_aes.c and the unit
 * tests: the AES-256-CTR keystream implementations behind lthash_expand().
 *
 * An expansion is the AES-256-CTR keystream of the seed (as the key) with a zero
 * 128-bit big-endian counter, 2048 bytes. Three implementations give the same
 * bytes: OpenSSL's EVP (portable; every expansion re-keys a cipher context, which
 * in OpenSSL 3.0 queries the key and IV lengths through OSSL_PARAM lists, ~40% of
 * an expansion), and two written here with the AES instructions (AES-NI one block
 * per instruction, VAES two), whose key schedule is a few instructions. The first
 * expansion picks the fastest the CPU offers; the tests force each in turn and
 * compare it with EVP.
 */
#ifndef BFTKV_STORE_LTHASH_INTERNAL_H
#define BFTKV_STORE_LTHASH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "store/lthash.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LTHASH_KEYSTREAM_BYTES (LTHASH_LANES * 2u)

enum lthash_impl {
    LTHASH_IMPL_EVP,   /* OpenSSL EVP AES-256-CTR */
    LTHASH_IMPL_AESNI, /* AES-NI, 8 blocks interleaved */
    LTHASH_IMPL_VAES,  /* VAES on 256-bit registers (+ AVX2), 16 blocks interleaved */
    LTHASH_IMPL_COUNT
};

/* Whether this CPU (and OS) runs impl. EVP always does. */
bool lthash_impl_available(enum lthash_impl impl);

/* The implementation lthash_expand() uses (chosen on first use). */
enum lthash_impl lthash_impl_current(void);

/* Make lthash_expand() use impl from now on (it must be available): for the
 * micro benchmark's before/after comparisons. Not for use while other threads
 * expand (they may keep the old choice for a while; both give the same bytes). */
void lthash_impl_set(enum lthash_impl impl);

/* "evp", "aesni", "vaes". */
const char *lthash_impl_name(enum lthash_impl impl);

/* Expand with a given implementation, which must be available. For tests and
 * the micro benchmark; lthash_expand() is the API. */
void lthash_expand_impl(enum lthash_impl impl, struct lthash *out, const uint8_t seed[LTHASH_SEED_SIZE]);

/* The keystreams of lthash_aes.c; the CPU must have the instructions. */
void lthash_keystream_aesni(uint8_t out[LTHASH_KEYSTREAM_BYTES], const uint8_t key[LTHASH_SEED_SIZE]);
void lthash_keystream_vaes(uint8_t out[LTHASH_KEYSTREAM_BYTES], const uint8_t key[LTHASH_SEED_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_STORE_LTHASH_INTERNAL_H */
