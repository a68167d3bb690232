/* LtHash: the store's incremental, order-independent state digest (docs/design.md §3.2, §5.4;
 * Bellare–Micciancio 1997, Lewi et al. 2019).
 *
 * The digest of a set of (key, value) entries is the lane-wise sum, modulo 2^16,
 * of one 1024-lane vector per entry. An entry's vector is an extendable-output
 * hash of the entry: BLAKE2b-256 over (le32 key length, key, value) gives a
 * 32-byte seed, and AES-256-CTR keyed by the whole seed (zero IV) expands it to
 * 2048 bytes (the keystream, i.e. the encryption of 2048 zero bytes). Adding an
 * entry adds its vector; removing it subtracts; so the digest costs O(changes),
 * is equal for equal contents whatever the order of operations, and a put
 * followed by a del of the same entry returns it exactly to where it was.
 *
 * Why not a plain sum of 256-bit hashes (AdHash-256): Wagner's generalised
 * birthday attack finds colliding multisets of chosen entries in far fewer than
 * 2^128 steps. LtHash16 with 1024 lanes is the parameter set Lewi et al. analyse
 * at ~200 bits of security against that attack (lattice short-vector hardness).
 *
 * The seed is kept per store entry so that removing or replacing an entry does
 * not rehash its key and value, only re-expands the 32-byte seed.
 *
 * Why AES-256-CTR: with AES-NI/VAES it expands a seed about twice as fast as
 * ChaCha20 (docs/benchmarks.md, "Simulator and engine hot path"), and the
 * expansion is most of the cost of a store write. The key is the full 32-byte
 * seed: an AES-128 key would make two entries' expansions collide after ~2^64
 * entries (birthday bound), below the security the lane count buys.
 *
 * Every function is thread-safe: each thread keeps its own OpenSSL cipher
 * context (lthash.c). The first call runs sodium_init() so libsodium's vectorised
 * BLAKE2b is selected; the results do not depend on which implementation runs.
 */
#ifndef BFTKV_STORE_LTHASH_H
#define BFTKV_STORE_LTHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifdef __cplusplus
#define LTHASH_ALIGNAS(n) alignas(n)
#else
#define LTHASH_ALIGNAS(n) _Alignas(n)
#endif

#define LTHASH_LANES 1024u
#define LTHASH_SEED_SIZE 32u
#define LTHASH_DIGEST_SIZE 32u

struct lthash {
    LTHASH_ALIGNAS(64) uint16_t lanes[LTHASH_LANES];
};

/* The empty set. */
void lthash_zero(struct lthash *h);

/* The 32-byte seed of one entry (unambiguous: the key length is hashed first). */
void lthash_entry_seed(uint8_t seed[LTHASH_SEED_SIZE], const void *key, size_t klen, const void *val,
                       size_t vlen);

/* The 1024-lane vector of one entry: AES-256-CTR keystream (key = seed, IV = 16
 * zero bytes, counter = the IV as a 128-bit big-endian integer), 2048 bytes read
 * as little-endian u16 lanes. Lets a writer expand a new entry
 * before taking a lock and only add the lanes under it. */
void lthash_expand(struct lthash *out, const uint8_t seed[LTHASH_SEED_SIZE]);

/* Add or remove one entry, given its seed. */
void lthash_add_seed(struct lthash *h, const uint8_t seed[LTHASH_SEED_SIZE]);
void lthash_sub_seed(struct lthash *h, const uint8_t seed[LTHASH_SEED_SIZE]);

/* Replace one entry by another: h -= the vector of old_seed, h += add (an
 * expanded vector), in one pass over h's lanes; the same lanes as
 * lthash_sub_seed then lthash_add. add must not be h. */
void lthash_replace_seed(struct lthash *h, const uint8_t old_seed[LTHASH_SEED_SIZE], const struct lthash *add);

/* Combine digests of disjoint sets (shards): h += o, h -= o. */
void lthash_add(struct lthash *h, const struct lthash *o);
void lthash_sub(struct lthash *h, const struct lthash *o);

bool lthash_equal(const struct lthash *a, const struct lthash *b);

/* A short commitment to the full state: BLAKE2b-256 of the lanes in little-endian
 * order. This is what CHECKPOINT messages carry; the full 2 KiB vector stays local. */
void lthash_digest(const struct lthash *h, uint8_t out[LTHASH_DIGEST_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_STORE_LTHASH_H */
