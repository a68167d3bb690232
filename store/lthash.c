/* LtHash16 with 1024 lanes: the store's incremental multiset hash (lthash.h).
 *
 * An entry is hashed once to a 32-byte BLAKE2b seed; the seed, as an AES-256 key,
 * is expanded by AES-256-CTR (zero IV) into 2048 bytes, read as 1024 little-endian
 * 16-bit lanes, and added to (or subtracted from) an accumulator lane by lane
 * modulo 2^16. The lane loops are plain uint16_t loops so gcc turns them into SIMD
 * adds (paddw/vpaddw); the expansion buffer lives on the stack.
 *
 * The expansion uses the AES instructions directly where the CPU has them
 * (lthash_aes.c: VAES, else AES-NI; ~0.2 us per 2 KiB with VAES, key schedule
 * included), else OpenSSL's EVP interface (~0.45 us, most of the difference being
 * EVP's per-key setup; docs/benchmarks.md). All give the same bytes
 * (lthash_internal.h). EVP needs a cipher context, which OpenSSL 3 only hands out
 * on the heap: each thread that uses it allocates one on its first expansion and
 * frees it when the thread exits (a pthread key destructor). That is the only
 * allocation here.
 */
#include "store/lthash.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#include "common/assert.h"
#include "store/lthash_internal.h"

#define LTHASH_BYTES (LTHASH_LANES * 2u)

_Static_assert(sizeof(struct lthash) == LTHASH_BYTES, "lanes are packed");
_Static_assert(crypto_generichash_BYTES == LTHASH_SEED_SIZE, "BLAKE2b-256 seed");

/* sodium_init() selects the SIMD implementations; it is idempotent and
 * thread-safe but takes a lock, so it runs once per process. A relaxed flag is
 * enough: sodium_init() publishes its own state, and a thread that sees the flag
 * late just calls it once more. */
static atomic_bool lthash_sodium_ready;

static void lthash_init_once(void)
{
    if (BFTKV_LIKELY(atomic_load_explicit(&lthash_sodium_ready, memory_order_relaxed))) {
        return;
    }
    const int rc = sodium_init();
    BFTKV_ASSERT(rc >= 0);
    atomic_store_explicit(&lthash_sodium_ready, true, memory_order_relaxed);
}

void lthash_zero(struct lthash *h)
{
    memset(h->lanes, 0, sizeof h->lanes);
}

void lthash_entry_seed(uint8_t seed[LTHASH_SEED_SIZE], const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    BFTKV_ASSERT(klen <= UINT32_MAX);
    BFTKV_ASSERT(key != NULL || klen == 0);
    BFTKV_ASSERT(val != NULL || vlen == 0);
    lthash_init_once();

    /* The key length goes first so (key, value) splits are unambiguous:
     * ("ab", "c") and ("a", "bc") hash different bytes. */
    const uint8_t len_le[4] = {(uint8_t)klen, (uint8_t)(klen >> 8), (uint8_t)(klen >> 16),
                               (uint8_t)(klen >> 24)};
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, LTHASH_SEED_SIZE);
    crypto_generichash_update(&st, len_le, sizeof len_le);
    if (klen > 0) {
        crypto_generichash_update(&st, key, klen);
    }
    if (vlen > 0) {
        crypto_generichash_update(&st, val, vlen);
    }
    crypto_generichash_final(&st, seed, LTHASH_SEED_SIZE);
}

/* The keystream of AES-256-CTR is the encryption of zeros. */
static const uint8_t lthash_zeros[LTHASH_BYTES];

/* One EVP context per thread, set up for AES-256-CTR once; each expansion only
 * installs a new key and IV. The pthread key frees it at thread exit. */
static pthread_once_t xof_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t xof_key;
static _Thread_local EVP_CIPHER_CTX *xof_ctx;

static void xof_ctx_free(void *p)
{
    EVP_CIPHER_CTX_free(p);
}

static void xof_key_create(void)
{
    const int rc = pthread_key_create(&xof_key, xof_ctx_free);
    BFTKV_ASSERT(rc == 0);
}

/* Failing to allocate a few hundred bytes once per thread is fatal: there is no
 * digest without it, and the store's callers cannot continue without digests. */
static EVP_CIPHER_CTX *xof_ctx_get(void)
{
    if (BFTKV_LIKELY(xof_ctx != NULL)) {
        return xof_ctx;
    }
    int rc = pthread_once(&xof_key_once, xof_key_create);
    BFTKV_ASSERT(rc == 0);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    BFTKV_ASSERT(ctx != NULL);
    rc = EVP_EncryptInit_ex2(ctx, EVP_aes_256_ctr(), NULL, NULL, NULL);
    BFTKV_ASSERT(rc == 1);
    BFTKV_ASSERT(EVP_CIPHER_CTX_get_key_length(ctx) == (int)LTHASH_SEED_SIZE); /* the full seed is the key */
    BFTKV_ASSERT(EVP_CIPHER_CTX_get_iv_length(ctx) == 16);
    rc = pthread_setspecific(xof_key, ctx);
    BFTKV_ASSERT(rc == 0);
    xof_ctx = ctx;
    return ctx;
}

static void expand_evp(struct lthash *out, const uint8_t seed[LTHASH_SEED_SIZE])
{
    static const uint8_t zero_iv[16];
    EVP_CIPHER_CTX *ctx = xof_ctx_get();

    /* The keystream is written straight into the lanes; on a little-endian host
     * that already is the lane encoding. A 32-byte key: with a 128-bit key, two
     * entries' expansions would collide after ~2^64 entries (birthday). */
    uint8_t *bytes = (uint8_t *)out->lanes;
    int len = 0;
    int rc = EVP_EncryptInit_ex2(ctx, NULL, seed, zero_iv, NULL);
    BFTKV_ASSERT(rc == 1);
    rc = EVP_EncryptUpdate(ctx, bytes, &len, lthash_zeros, (int)LTHASH_BYTES);
    BFTKV_ASSERT(rc == 1);
    BFTKV_ASSERT(len == (int)LTHASH_BYTES); /* CTR mode: no buffering */
}

bool lthash_impl_available(enum lthash_impl impl)
{
    switch (impl) {
    case LTHASH_IMPL_EVP:
        return true;
#if (defined(__x86_64__) || defined(__i386__)) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    case LTHASH_IMPL_AESNI:
        return __builtin_cpu_supports("aes") && __builtin_cpu_supports("sse4.1");
    case LTHASH_IMPL_VAES:
#if defined(__clang__) && __clang_major__ < 15
        /* clang 14 (Debian 12's, the fuzzing build) cannot ask for "vaes": the
         * AES-NI code computes the same lanes. */
        return false;
#else
        /* "avx2" also means the OS saves the ymm registers. */
        return __builtin_cpu_supports("vaes") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("aes");
#endif
#endif
    default:
        return false;
    }
}

/* Chosen once per process; a relaxed atomic, since every thread that races to
 * choose picks the same value. LTHASH_IMPL_COUNT: not chosen yet. */
static _Atomic int lthash_impl_chosen = LTHASH_IMPL_COUNT;

enum lthash_impl lthash_impl_current(void)
{
    int impl = atomic_load_explicit(&lthash_impl_chosen, memory_order_relaxed);
    if (BFTKV_LIKELY(impl != LTHASH_IMPL_COUNT)) {
        return (enum lthash_impl)impl;
    }
    impl = lthash_impl_available(LTHASH_IMPL_VAES)    ? LTHASH_IMPL_VAES
           : lthash_impl_available(LTHASH_IMPL_AESNI) ? LTHASH_IMPL_AESNI
                                                      : LTHASH_IMPL_EVP;
    atomic_store_explicit(&lthash_impl_chosen, impl, memory_order_relaxed);
    return (enum lthash_impl)impl;
}

void lthash_impl_set(enum lthash_impl impl)
{
    BFTKV_ASSERT(lthash_impl_available(impl));
    atomic_store_explicit(&lthash_impl_chosen, (int)impl, memory_order_relaxed);
}

const char *lthash_impl_name(enum lthash_impl impl)
{
    switch (impl) {
    case LTHASH_IMPL_EVP:
        return "evp";
    case LTHASH_IMPL_AESNI:
        return "aesni";
    case LTHASH_IMPL_VAES:
        return "vaes";
    default:
        return "?";
    }
}

void lthash_expand_impl(enum lthash_impl impl, struct lthash *out, const uint8_t seed[LTHASH_SEED_SIZE])
{
    uint8_t *bytes = (uint8_t *)out->lanes;
    switch (impl) {
    case LTHASH_IMPL_VAES:
        lthash_keystream_vaes(bytes, seed);
        break;
    case LTHASH_IMPL_AESNI:
        lthash_keystream_aesni(bytes, seed);
        break;
    default:
        expand_evp(out, seed);
        break;
    }
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    for (size_t i = 0; i < LTHASH_LANES; i++) {
        out->lanes[i] = (uint16_t)(bytes[2 * i] | (bytes[2 * i + 1] << 8));
    }
#endif
}

void lthash_expand(struct lthash *out, const uint8_t seed[LTHASH_SEED_SIZE])
{
    lthash_expand_impl(lthash_impl_current(), out, seed);
}

/* ThreadSanitizer would instrument each of the 3072 lane accesses of one add,
 * which makes every store write ~50x slower in TSan builds. The lane loops are
 * left uninstrumented there and report the whole ranges instead, once per call:
 * the same race detection at two checks per add. */
#if defined(__SANITIZE_THREAD__)
void __tsan_read_range(void *addr, unsigned long size);
void __tsan_write_range(void *addr, unsigned long size);
#define LANES_NO_TSAN __attribute__((no_sanitize("thread")))
#define LANES_TSAN_RANGES(d, s)                                                    \
    do {                                                                           \
        __tsan_read_range((void *)(s), LTHASH_BYTES);                              \
        __tsan_write_range((void *)(d), LTHASH_BYTES);                             \
    } while (0)
#else
#define LANES_NO_TSAN
#define LANES_TSAN_RANGES(d, s) ((void)(d), (void)(s))
#endif

/* The lane loops take restrict parameters: gcc's -O2 (very-cheap) vectoriser will
 * not emit a runtime overlap check, and restrict on function parameters is what
 * it trusts. */
LANES_NO_TSAN static void lanes_add(uint16_t *restrict d, const uint16_t *restrict s)
{
    for (size_t i = 0; i < LTHASH_LANES; i++) {
        d[i] = (uint16_t)(d[i] + s[i]);
    }
}

LANES_NO_TSAN static void lanes_sub(uint16_t *restrict d, const uint16_t *restrict s)
{
    for (size_t i = 0; i < LTHASH_LANES; i++) {
        d[i] = (uint16_t)(d[i] - s[i]);
    }
}

/* d - o + n in one pass over d: a replace reads and writes the accumulator once. */
LANES_NO_TSAN static void lanes_sub_add(uint16_t *restrict d, const uint16_t *restrict o, const uint16_t *restrict n)
{
    for (size_t i = 0; i < LTHASH_LANES; i++) {
        d[i] = (uint16_t)(d[i] - o[i] + n[i]);
    }
}

void lthash_add(struct lthash *h, const struct lthash *o)
{
    BFTKV_ASSERT(h != o); /* the lanes must not overlap (restrict) */
    LANES_TSAN_RANGES(h->lanes, o->lanes);
    lanes_add(h->lanes, o->lanes);
}

void lthash_sub(struct lthash *h, const struct lthash *o)
{
    BFTKV_ASSERT(h != o);
    LANES_TSAN_RANGES(h->lanes, o->lanes);
    lanes_sub(h->lanes, o->lanes);
}

void lthash_add_seed(struct lthash *h, const uint8_t seed[LTHASH_SEED_SIZE])
{
    struct lthash v;
    lthash_expand(&v, seed);
    lthash_add(h, &v);
}

void lthash_sub_seed(struct lthash *h, const uint8_t seed[LTHASH_SEED_SIZE])
{
    struct lthash v;
    lthash_expand(&v, seed);
    lthash_sub(h, &v);
}

void lthash_replace_seed(struct lthash *h, const uint8_t old_seed[LTHASH_SEED_SIZE], const struct lthash *add)
{
    BFTKV_ASSERT(h != add);
    struct lthash v;
    lthash_expand(&v, old_seed);
#if defined(__SANITIZE_THREAD__)
    __tsan_read_range((void *)v.lanes, LTHASH_BYTES);
#endif
    LANES_TSAN_RANGES(h->lanes, add->lanes);
    lanes_sub_add(h->lanes, v.lanes, add->lanes);
}

bool lthash_equal(const struct lthash *a, const struct lthash *b)
{
    return memcmp(a->lanes, b->lanes, sizeof a->lanes) == 0;
}

void lthash_digest(const struct lthash *h, uint8_t out[LTHASH_DIGEST_SIZE])
{
    lthash_init_once();
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    crypto_generichash(out, LTHASH_DIGEST_SIZE, (const uint8_t *)h->lanes, LTHASH_BYTES, NULL, 0);
#else
    uint8_t bytes[LTHASH_BYTES];
    for (size_t i = 0; i < LTHASH_LANES; i++) {
        bytes[2 * i] = (uint8_t)h->lanes[i];
        bytes[2 * i + 1] = (uint8_t)(h->lanes[i] >> 8);
    }
    crypto_generichash(out, LTHASH_DIGEST_SIZE, bytes, LTHASH_BYTES, NULL, 0);
#endif
}
