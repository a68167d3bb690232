/* AES-256-CTR keystreams for the LtHash expansion (lthash_internal.h), written
 * with the AES instructions instead of going through OpenSSL's EVP.
 *
 * Why not EVP: an expansion needs a fresh key every time, and in OpenSSL 3.0
 * re-keying a context (EVP_EncryptInit_ex2 with a NULL cipher, or _ex with a
 * fetched one) asks the provider for the key and IV lengths through OSSL_PARAM
 * lists -- a string compare per parameter name -- before it runs the key
 * schedule: ~200-300 ns of a ~500 ns expansion, and the `strcmp` seen on the
 * replicas' profile (docs/benchmarks.md). Here the key schedule is 13
 * AESKEYGENASSIST steps and the keystream is the encryption of the counter
 * blocks 0..127 (big-endian, the zero IV), so the bytes are exactly EVP's; the
 * unit tests compare both on many keys and against `openssl enc` known answers.
 *
 * AES-256 key expansion (FIPS-197 §5.2, Nk = 8): round keys w[0..14] of 16 bytes,
 * w[0..1] the key; an even w[i] is w[i-2] folded (each word XORed into the next)
 * XOR SubWord(RotWord(last word of w[i-1])) XOR Rcon; an odd w[i] the same with
 * SubWord only and no Rcon. AESKEYGENASSIST computes both forms of the last
 * words; the shuffle picks the one needed.
 *
 * Both functions are compiled for their instruction sets only (target
 * attributes); lthash.c calls them after checking the CPU. Blocks are
 * interleaved (8 with AES-NI, 16 in 8 ymm registers with VAES) so the
 * instructions' latency overlaps.
 */
#include "store/lthash_internal.h"

#include "common/assert.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define AES256_ROUNDS 14
#define AES_BLOCK 16u
#define KS_BLOCKS (LTHASH_KEYSTREAM_BYTES / AES_BLOCK)

_Static_assert(KS_BLOCKS == 128, "the counter stays in the last byte");

#define AES_TARGET __attribute__((target("aes,sse4.1")))
#define VAES_TARGET __attribute__((target("aes,sse4.1,avx2,vaes")))

/* k XOR (k << 32) XOR (k << 64) XOR (k << 96): each word XORed into the next. */
AES_TARGET static inline __m128i key_fold(__m128i k)
{
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    k = _mm_xor_si128(k, _mm_slli_si128(k, 4));
    return _mm_xor_si128(k, _mm_slli_si128(k, 4));
}

/* AESKEYGENASSIST takes its round constant as an immediate: one macro per form. */
#define KEY_EVEN(w, i, rcon)                                                                                          \
    (w)[i] = _mm_xor_si128(key_fold((w)[(i) - 2]), _mm_shuffle_epi32(_mm_aeskeygenassist_si128((w)[(i) - 1], rcon), \
                                                                      0xff))
#define KEY_ODD(w, i)                                                                                                 \
    (w)[i] = _mm_xor_si128(key_fold((w)[(i) - 2]), _mm_shuffle_epi32(_mm_aeskeygenassist_si128((w)[(i) - 1], 0), 0xaa))
/* An even round key and the odd one after it. */
#define KEY_PAIR(w, i, rcon)                                                                                          \
    do {                                                                                                              \
        KEY_EVEN(w, i, rcon);                                                                                         \
        KEY_ODD(w, (i) + 1);                                                                                          \
    } while (0)

AES_TARGET static void aes256_key_schedule(__m128i w[AES256_ROUNDS + 1], const uint8_t key[LTHASH_SEED_SIZE])
{
    w[0] = _mm_loadu_si128((const __m128i *)(const void *)key);
    w[1] = _mm_loadu_si128((const __m128i *)(const void *)(key + AES_BLOCK));
    KEY_PAIR(w, 2, 0x01);
    KEY_PAIR(w, 4, 0x02);
    KEY_PAIR(w, 6, 0x04);
    KEY_PAIR(w, 8, 0x08);
    KEY_PAIR(w, 10, 0x10);
    KEY_PAIR(w, 12, 0x20);
    KEY_EVEN(w, 14, 0x40); /* w[15] would be past the last round */
}

/* The counter block i < 256 is fifteen zero bytes and then i: in a register's
 * little-endian lanes, i << 56 in the high 64 bits. */
#define CTR_STEP(n) ((long long)((unsigned long long)(n) << 56))

/* Counter mode over the KS_BLOCKS blocks, eight registers at a time: the
 * registers' counter blocks are XORed with round key 0, go through rounds 1..13
 * and the last one, and are stored. Both widths run this same loop -- a __m128i
 * holds one block (AES-NI), a __m256i two (VAES) -- so it is one macro: T is the
 * register type, PER_REG the blocks in one, and the rest the intrinsics of that
 * width. k[] are the round keys as T, ctr the first counters, step PER_REG
 * counters further. */
#define KEYSTREAM_CTR(T, PER_REG, XOR, ADD, ENC, ENCLAST, STORE, out, k, ctr, step)                                 \
    for (unsigned b = 0; b < KS_BLOCKS; b += 8u * (PER_REG)) {                                                      \
        T x[8];                                                                                                     \
        _Pragma("GCC unroll 8") for (unsigned j = 0; j < 8; j++)                                                    \
        {                                                                                                           \
            x[j] = XOR(ctr, (k)[0]);                                                                                \
            ctr = ADD(ctr, step);                                                                                   \
        }                                                                                                           \
        _Pragma("GCC unroll 13") for (unsigned r = 1; r < AES256_ROUNDS; r++)                                       \
        {                                                                                                           \
            _Pragma("GCC unroll 8") for (unsigned j = 0; j < 8; j++) x[j] = ENC(x[j], (k)[r]);                      \
        }                                                                                                           \
        _Pragma("GCC unroll 8") for (unsigned j = 0; j < 8; j++)                                                    \
            STORE((T *)(void *)((out) + AES_BLOCK * (b + (PER_REG) * j)), ENCLAST(x[j], (k)[AES256_ROUNDS]));       \
    }

AES_TARGET void lthash_keystream_aesni(uint8_t out[LTHASH_KEYSTREAM_BYTES], const uint8_t key[LTHASH_SEED_SIZE])
{
    __m128i w[AES256_ROUNDS + 1];
    aes256_key_schedule(w, key);
    const __m128i one = _mm_set_epi64x(CTR_STEP(1), 0);
    __m128i ctr = _mm_setzero_si128();
    KEYSTREAM_CTR(__m128i, 1u, _mm_xor_si128, _mm_add_epi64, _mm_aesenc_si128, _mm_aesenclast_si128,
                  _mm_storeu_si128, out, w, ctr, one);
}

VAES_TARGET void lthash_keystream_vaes(uint8_t out[LTHASH_KEYSTREAM_BYTES], const uint8_t key[LTHASH_SEED_SIZE])
{
    __m128i w[AES256_ROUNDS + 1];
    aes256_key_schedule(w, key);
    __m256i k[AES256_ROUNDS + 1];
#pragma GCC unroll 15
    for (unsigned r = 0; r <= AES256_ROUNDS; r++) {
        k[r] = _mm256_broadcastsi128_si256(w[r]);
    }
    /* Two blocks per register: counters (i, i+1) in the (low, high) lanes. */
    const __m256i two = _mm256_set_epi64x(CTR_STEP(2), 0, CTR_STEP(2), 0);
    __m256i ctr = _mm256_set_epi64x(CTR_STEP(1), 0, 0, 0);
    KEYSTREAM_CTR(__m256i, 2u, _mm256_xor_si256, _mm256_add_epi64, _mm256_aesenc_epi128, _mm256_aesenclast_epi128,
                  _mm256_storeu_si256, out, k, ctr, two);
}

#else /* no AES instructions known to this file: lthash.c never picks these */

void lthash_keystream_aesni(uint8_t out[LTHASH_KEYSTREAM_BYTES], const uint8_t key[LTHASH_SEED_SIZE])
{
    (void)out;
    (void)key;
    BFTKV_ASSERT(0);
}

void lthash_keystream_vaes(uint8_t out[LTHASH_KEYSTREAM_BYTES], const uint8_t key[LTHASH_SEED_SIZE])
{
    (void)out;
    (void)key;
    BFTKV_ASSERT(0);
}

#endif
