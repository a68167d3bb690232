// Cryptography micro benchmarks (docs/design.md §5.2): the numbers behind
// the choice of MAC for authenticators, of hash for request/batch digests, and the
// cost of the Ed25519 signatures and X25519 key agreement used off the fast path.
//
// MACs (argument: message bytes; 48 is an authenticator's header + digest):
//   BM_MacSipHashX24           SipHash-2-4, 128-bit output (crypto_shorthash_siphashx24)
//   BM_MacBlake2b128 / 256     keyed BLAKE2b, 32-byte key, 16- / 32-byte output
//   BM_MacHmacSha256Evp        OpenSSL 3 EVP_MAC "HMAC"/SHA256, context keyed once
//                              and reset per message with EVP_MAC_init(ctx, NULL..)
//   BM_MacHmacSha256Sodium     crypto_auth_hmacsha256 (re-derives the pads per call)
//   BM_MacHmacSha256SodiumState  same, from a precomputed keyed state (copy per call)
//   BM_MacPoly1305             crypto_onetimeauth, for reference (one-time key!)
// Hashes (argument: bytes): SHA-256 via a reused EVP_MD_CTX and via libsodium,
// BLAKE2b-256 via crypto_generichash.
// Public key: Ed25519 sign / verify of 64 bytes, X25519 scalar multiplication.
//
// libsodium must be initialised (sodium_init) before any of these run: main does.
#include <benchmark/benchmark.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <vector>

#include "bench_util.h"

namespace {

std::vector<uint8_t> message(int64_t n) {
    std::vector<uint8_t> m(static_cast<size_t>(n));
    for (size_t i = 0; i < m.size(); i++) m[i] = static_cast<uint8_t>(i * 131u + 7u);
    return m;
}

void set_counters(benchmark::State &st, int64_t bytes) {
    st.SetItemsProcessed(st.iterations());
    st.SetBytesProcessed(st.iterations() * bytes);
}

// The loop of the MAC and hash benchmarks: fn(out, m) over a message of
// range(0) bytes into an OutBytes buffer the optimiser must keep.
template <size_t OutBytes, typename Fn>
void over_message(benchmark::State &st, Fn fn) {
    const auto m = message(st.range(0));
    uint8_t out[OutBytes];
    for (auto _ : st) {
        fn(out, m);
        benchmark::DoNotOptimize(out);
    }
    set_counters(st, st.range(0));
}

// A random key of KeyBytes for a keyed benchmark.
template <size_t KeyBytes>
std::array<uint8_t, KeyBytes> random_key() {
    std::array<uint8_t, KeyBytes> key;
    randombytes_buf(key.data(), key.size());
    return key;
}

using Message = std::vector<uint8_t>;

// ---- MACs ---------------------------------------------------------------------

void BM_MacSipHashX24(benchmark::State &st) {
    const auto key = random_key<crypto_shorthash_siphashx24_KEYBYTES>();
    over_message<crypto_shorthash_siphashx24_BYTES>(
        st, [&](uint8_t *out, const Message &m) { crypto_shorthash_siphashx24(out, m.data(), m.size(), key.data()); });
}

template <size_t OutBytes>
void BM_MacBlake2b(benchmark::State &st) {
    static_assert(OutBytes >= crypto_generichash_BYTES_MIN && OutBytes <= crypto_generichash_BYTES_MAX, "");
    const auto key = random_key<crypto_generichash_KEYBYTES>();  // 32 bytes
    over_message<OutBytes>(st, [&](uint8_t *out, const Message &m) {
        crypto_generichash(out, OutBytes, m.data(), m.size(), key.data(), key.size());
    });
}

void BM_MacBlake2b128(benchmark::State &st) { BM_MacBlake2b<16>(st); }
void BM_MacBlake2b256(benchmark::State &st) { BM_MacBlake2b<32>(st); }

void BM_MacHmacSha256Evp(benchmark::State &st) {
    const auto key = random_key<32>();
    EVP_MAC *mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX *ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end(),
    };
    if (ctx == nullptr || EVP_MAC_init(ctx, key.data(), key.size(), params) != 1) {
        st.SkipWithError("EVP_MAC HMAC-SHA256 unavailable");
        EVP_MAC_CTX_free(ctx);
        EVP_MAC_free(mac);
        return;
    }
    int failures = 0;
    over_message<32>(st, [&](uint8_t *out, const Message &m) {
        size_t outlen = 0;
        // Re-initialising with no key resets the context to the keyed state.
        failures += EVP_MAC_init(ctx, nullptr, 0, nullptr) != 1;
        failures += EVP_MAC_update(ctx, m.data(), m.size()) != 1;
        failures += EVP_MAC_final(ctx, out, &outlen, 32) != 1;
    });
    if (failures != 0) st.SkipWithError("EVP_MAC call failed");
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
}

void BM_MacHmacSha256Sodium(benchmark::State &st) {
    const auto key = random_key<crypto_auth_hmacsha256_KEYBYTES>();
    over_message<crypto_auth_hmacsha256_BYTES>(
        st, [&](uint8_t *out, const Message &m) { crypto_auth_hmacsha256(out, m.data(), m.size(), key.data()); });
}

void BM_MacHmacSha256SodiumState(benchmark::State &st) {
    const auto key = random_key<crypto_auth_hmacsha256_KEYBYTES>();
    crypto_auth_hmacsha256_state keyed;
    crypto_auth_hmacsha256_init(&keyed, key.data(), key.size());
    over_message<crypto_auth_hmacsha256_BYTES>(st, [&](uint8_t *out, const Message &m) {
        crypto_auth_hmacsha256_state s = keyed;
        crypto_auth_hmacsha256_update(&s, m.data(), m.size());
        crypto_auth_hmacsha256_final(&s, out);
    });
}

void BM_MacPoly1305(benchmark::State &st) {
    const auto key = random_key<crypto_onetimeauth_KEYBYTES>();
    over_message<crypto_onetimeauth_BYTES>(
        st, [&](uint8_t *out, const Message &m) { crypto_onetimeauth(out, m.data(), m.size(), key.data()); });
}

// ---- Hashes -------------------------------------------------------------------

void BM_HashSha256Evp(benchmark::State &st) {
    EVP_MD *md = EVP_MD_fetch(nullptr, "SHA256", nullptr);  // explicit fetch: no lookup per call
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (md == nullptr || ctx == nullptr) {
        st.SkipWithError("EVP SHA256 unavailable");
        EVP_MD_CTX_free(ctx);
        EVP_MD_free(md);
        return;
    }
    int failures = 0;
    over_message<EVP_MAX_MD_SIZE>(st, [&](uint8_t *out, const Message &m) {
        unsigned int outlen = 0;
        failures += EVP_DigestInit_ex(ctx, md, nullptr) != 1;
        failures += EVP_DigestUpdate(ctx, m.data(), m.size()) != 1;
        failures += EVP_DigestFinal_ex(ctx, out, &outlen) != 1;
    });
    if (failures != 0) st.SkipWithError("EVP_Digest call failed");
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
}

void BM_HashSha256Sodium(benchmark::State &st) {
    over_message<crypto_hash_sha256_BYTES>(
        st, [](uint8_t *out, const Message &m) { crypto_hash_sha256(out, m.data(), m.size()); });
}

void BM_HashBlake2b256(benchmark::State &st) {
    over_message<32>(
        st, [](uint8_t *out, const Message &m) { crypto_generichash(out, 32, m.data(), m.size(), nullptr, 0); });
}

// ---- Signatures and key agreement (CHECKPOINT, VIEW-CHANGE, NEW-VIEW; keys) -----

void BM_Ed25519Sign(benchmark::State &st) {
    auto m = message(st.range(0));
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    uint8_t sig[crypto_sign_BYTES];
    uint64_t i = 0;
    for (auto _ : st) {
        std::memcpy(m.data(), &i, sizeof i);  // a different message each time
        i++;
        crypto_sign_detached(sig, nullptr, m.data(), m.size(), sk);
        benchmark::DoNotOptimize(sig);
    }
    set_counters(st, st.range(0));
}

void BM_Ed25519Verify(benchmark::State &st) {
    const auto m = message(st.range(0));
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    crypto_sign_keypair(pk, sk);
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, nullptr, m.data(), m.size(), sk);
    int failures = 0;
    for (auto _ : st) {
        failures += crypto_sign_verify_detached(sig, m.data(), m.size(), pk) != 0;
    }
    if (failures != 0) st.SkipWithError("Ed25519 verification failed");
    set_counters(st, st.range(0));
}

// One static Diffie-Hellman: what deriving a pairwise MAC key costs (plus a KDF).
void BM_X25519ScalarMult(benchmark::State &st) {
    uint8_t sk[crypto_scalarmult_SCALARBYTES];
    uint8_t peer_sk[crypto_scalarmult_SCALARBYTES];
    uint8_t peer_pk[crypto_scalarmult_BYTES];
    randombytes_buf(sk, sizeof sk);
    randombytes_buf(peer_sk, sizeof peer_sk);
    crypto_scalarmult_base(peer_pk, peer_sk);
    uint8_t shared[crypto_scalarmult_BYTES];
    int failures = 0;
    for (auto _ : st) {
        failures += crypto_scalarmult(shared, sk, peer_pk) != 0;
        benchmark::DoNotOptimize(shared);
    }
    if (failures != 0) st.SkipWithError("crypto_scalarmult failed");
    st.SetItemsProcessed(st.iterations());
}

void mac_sizes(benchmark::internal::Benchmark *b) { b->Arg(48)->Arg(256)->Arg(1024); }
void hash_sizes(benchmark::internal::Benchmark *b) { b->Arg(64)->Arg(1024)->Arg(65536); }

BENCHMARK(BM_MacSipHashX24)->Apply(mac_sizes);
BENCHMARK(BM_MacBlake2b128)->Apply(mac_sizes);
BENCHMARK(BM_MacBlake2b256)->Apply(mac_sizes);
BENCHMARK(BM_MacHmacSha256Evp)->Apply(mac_sizes);
BENCHMARK(BM_MacHmacSha256Sodium)->Apply(mac_sizes);
BENCHMARK(BM_MacHmacSha256SodiumState)->Apply(mac_sizes);
BENCHMARK(BM_MacPoly1305)->Apply(mac_sizes);

BENCHMARK(BM_HashSha256Evp)->Apply(hash_sizes);
BENCHMARK(BM_HashSha256Sodium)->Apply(hash_sizes);
BENCHMARK(BM_HashBlake2b256)->Apply(hash_sizes);

BENCHMARK(BM_Ed25519Sign)->Arg(64);
BENCHMARK(BM_Ed25519Verify)->Arg(64);
BENCHMARK(BM_X25519ScalarMult);

}  // namespace
