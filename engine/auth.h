/* Authentication: pairwise MAC keys, MAC authenticators, Ed25519 signatures
 * (docs/design.md §5.2).
 *
 * Every principal (replica or client) has an X25519 key pair and an Ed25519 key
 * pair. The MAC key shared by principals a and b is derived without a handshake:
 *
 *     k(a,b) = BLAKE2b-128(X25519(sk_a, pk_b) || pk_lo || pk_hi, personal "bftkv-mac-v1")
 *
 * (pk_lo/pk_hi: the two X25519 public keys in byte order, so both ends compute the
 * same key). The MAC is SipHash-2-4 with 128-bit output (libsodium
 * crypto_shorthash_siphashx24), chosen by the micro benchmarks (docs/benchmarks.md).
 *
 * An authenticator (TOCS 2002 §3.2) is a vector of N MACs, entry j for replica j,
 * each over
 *
 *     header[32] || body                when body is at most 64 bytes
 *     header[32] || BLAKE2b-256(body)   when body is longer
 *
 * so a large body is hashed once per message and each MAC then costs a 64-byte
 * SipHash, while a small one costs no hash at all. The header (type, body_len and
 * auth_len included) is part of the MACed bytes and decides which form applies.
 * For PRE-PREPARE and REPLY, "body" here is only the fixed part (D | count;
 * client .. result digest), so their MACs always take the first form: the digest
 * in it binds the rest, and wire_decode() checks that binding, so check MACs only
 * on decoded messages. A REPLY carries one MAC, for its client. CHECKPOINT (and later
 * VIEW-CHANGE, NEW-VIEW) carry an Ed25519 signature over header || body, so a
 * third party can check them.
 *
 * No I/O and no randomness here: key pairs come from 32-byte seeds the caller
 * supplies (cluster/keys.c draws them from the OS for `bftkv keygen` and
 * `tools/cluster create`; the simulator from its seed).
 * The process must call sodium_init() before using this module; engine/ never
 * calls it, because it may open the OS random device.
 */
#ifndef BFTKV_ENGINE_AUTH_H
#define BFTKV_ENGINE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bftkv/limits.h"
#include "engine/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AUTH_KEY_SIZE 16u

struct auth_keypair {
    uint8_t x_pk[32];
    uint8_t x_sk[32];
    uint8_t sign_pk[32];
    uint8_t sign_sk[64];
};

/* What a principal publishes (in the config file). */
struct auth_public {
    uint8_t x_pk[32];
    uint8_t sign_pk[32];
};

/* Deterministic key pairs from a 32-byte seed (X25519 and Ed25519 derived from
 * domain-separated hashes of the seed). */
void auth_keypair_from_seed(struct auth_keypair *kp, const uint8_t seed[32]);
void auth_public_of(struct auth_public *pub, const struct auth_keypair *kp);

struct auth_sig_memo; /* see auth_sig_memo_create */

/* Per-principal authentication state. Owned by one replica or one client; all
 * memory is inside the struct or allocated once by auth_init_*. */
struct auth_ctx {
    bool is_client;
    uint16_t self;          /* replica id or client id */
    uint16_t n;             /* replicas */
    uint16_t clients;       /* size of client_keys (replicas only) */
    uint8_t sign_sk[64];
    uint8_t replica_keys[BFTKV_REPLICAS_MAX][AUTH_KEY_SIZE];
    uint8_t replica_sign_pk[BFTKV_REPLICAS_MAX][32];
    uint8_t (*client_keys)[AUTH_KEY_SIZE]; /* replicas: one per allowed client */
    uint8_t *client_known;                 /* replicas: 1 if client id is allowed */
    struct auth_sig_memo *sig_memo;        /* NULL, or a memo of signature checks (not owned) */
};

/* A replica: its keys, every replica's public keys, and the allowed clients'
 * public keys (clients[c] for client id c; known[c] false marks an id that is not
 * in the allow-list). 0, BFTKV_E_INVAL or BFTKV_E_NOMEM. */
int auth_init_replica(struct auth_ctx *a, uint16_t id, uint16_t n, const struct auth_keypair *self,
                      const struct auth_public *replicas, const struct auth_public *clients,
                      const bool *known, uint16_t nclients);

/* A client: its id, keys and the replicas' public keys. */
int auth_init_client(struct auth_ctx *a, uint16_t id, uint16_t n, const struct auth_keypair *self,
                     const struct auth_public *replicas);

void auth_destroy(struct auth_ctx *a);

/* Fill the authenticator of an encoded message msg (msg_len bytes, the
 * authenticator area at auth_off, auth_len = n * 16) with one MAC per replica. */
void auth_authenticator_fill(const struct auth_ctx *a, uint8_t *msg, size_t msg_len, size_t auth_off);

/* Check the entry for ourselves in a decoded message's authenticator. The sender
 * is m->h.sender: a replica for replica-to-replica types, a client for REQUEST
 * (an unknown client fails). An INLINE request inside a PRE-PREPARE is checked the
 * same way, on the decoded inner REQUEST. */
bool auth_authenticator_check(const struct auth_ctx *a, const struct wire_msg *m);

/* REPLY: a single MAC for the client m->reply.client. */
void auth_reply_fill(const struct auth_ctx *a, uint8_t *msg, size_t msg_len, size_t auth_off, uint16_t client);
bool auth_reply_check(const struct auth_ctx *a, const struct wire_msg *m);

/* One MAC over a message msg encoded with its body ending at auth_off, keyed by
 * key: for the types the engine does not decode (the admin protocol,
 * engine/wire_admin.h), whose MAC input is built as for every other type. */
bool auth_encoded_mac_check(const uint8_t *msg, size_t auth_off, const uint8_t mac[BFTKV_MAC_SIZE],
                            const uint8_t key[AUTH_KEY_SIZE]);

/* CHECKPOINT and other signed types: Ed25519 over header || body. */
void auth_sign(const struct auth_ctx *a, uint8_t *msg, size_t msg_len, size_t auth_off);
bool auth_signature_check(const struct auth_ctx *a, const struct wire_msg *m);

/* A memo of signature checks, for an embedding that runs several replicas in one
 * thread (the simulator): there every signed CHECKPOINT, VIEW-CHANGE and NEW-VIEW
 * is verified once per receiver, at ~86 us per Ed25519 verification here -- a
 * fifth of a --faults all simulation. The memo maps
 *
 *     BLAKE2b-256(signer's public key || header || body || signature)
 *
 * to the verification's outcome, so each distinct signed message is verified
 * once per process. It changes no result, only the cost: verification is a
 * deterministic function of exactly those bytes, and the key is collision
 * resistant (a corrupted byte anywhere is a different key, verified afresh).
 * Direct-mapped with `entries` slots (rounded up to a power of two), allocated
 * here, once. Not thread-safe: give it only to contexts used by one thread. Set
 * auth_ctx.sig_memo to use it; auth_destroy does not free it. NULL on ENOMEM. */
struct auth_sig_memo *auth_sig_memo_create(uint32_t entries);
void auth_sig_memo_destroy(struct auth_sig_memo *memo);

/* Is client id c allowed (replicas)? */
bool auth_client_known(const struct auth_ctx *a, uint16_t c);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_ENGINE_AUTH_H */
