/* Authentication: deterministic key pairs, pairwise MAC keys, MAC authenticators
 * for the normal-case messages and Ed25519 signatures for the ones third parties
 * must be able to check (engine/auth.h, docs/design.md §5.2).
 *
 * An authenticator (TOCS 2002 §3.2) holds one 16-byte SipHash-2-4 MAC per replica.
 * The MACed body is the whole body, or for PRE-PREPARE and REPLY only its fixed
 * part, because the digest it carries binds the rest (see mac_body_span). A MACed
 * body of at most AUTH_MAC_DIRECT_MAX (64) bytes -- PREPARE, COMMIT, PRE-PREPARE,
 * REPLY, small REQUESTs -- is MACed in place: SipHash over header || body, straight
 * from the message buffer. A larger one is hashed first and each MAC covers the 64
 * bytes header[32] || BLAKE2b-256(body), so a body of tens of kilobytes is hashed
 * once per message and not once per receiver. (A BLAKE2b call costs ~175 ns even
 * for 32 bytes, SipHash ~1 ns per byte: hashing a small body first only cost time.)
 * The header fixes type and body_len, hence which of the two forms a MAC covers,
 * so no input of one form can be confused with one of the other.
 * The header, auth_len included, is MACed as encoded: a receiver that accepts a MAC
 * accepts exactly the framing the sender chose.
 *
 * libsodium must have been initialised by the process (sodium_init() in main) before
 * any function here runs; this file does not call it, because sodium_init() may
 * open the OS random device and engine/ does no I/O (tools/check-engine-symbols).
 * Only the seeded, deterministic key-generation calls are used for the same reason.
 * Secrets on the stack are wiped with sodium_memzero before returning.
 */
#include "engine/auth.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bftkv/errors.h"
#include "common/assert.h"

_Static_assert(AUTH_KEY_SIZE == crypto_shorthash_siphashx24_KEYBYTES, "SipHash-2-4 key");
_Static_assert(BFTKV_MAC_SIZE == crypto_shorthash_siphashx24_BYTES, "SipHash-2-4 with 128-bit output");
_Static_assert(crypto_scalarmult_BYTES == 32u && crypto_scalarmult_SCALARBYTES == 32u, "X25519");
_Static_assert(crypto_sign_PUBLICKEYBYTES == 32u && crypto_sign_SECRETKEYBYTES == 64u, "Ed25519");
_Static_assert(crypto_sign_SEEDBYTES == 32u, "Ed25519 seed");
_Static_assert(crypto_generichash_blake2b_PERSONALBYTES == 16u, "BLAKE2b personalisation");

/* The MAC input of a hashed body: the header as encoded, then the body's digest. */
#define AUTH_MAC_HASHED (WIRE_HEADER_SIZE + BFTKV_DIGEST_SIZE)
/* MACed bodies up to this many bytes are MACed in place, not hashed first. */
#define AUTH_MAC_DIRECT_MAX 64u

/* BLAKE2b of in with a personalisation string (zero-padded to 16 bytes), so keys
 * drawn from one seed for different purposes are independent. */
static void hash_personal(uint8_t *out, size_t outlen, const uint8_t *in, size_t inlen, const char *personal)
{
    uint8_t pers[crypto_generichash_blake2b_PERSONALBYTES] = {0};
    size_t plen = strlen(personal);
    BFTKV_ASSERT(plen <= sizeof pers);
    memcpy(pers, personal, plen);
    crypto_generichash_blake2b_salt_personal(out, outlen, in, inlen, NULL, 0, NULL, pers);
}

void auth_keypair_from_seed(struct auth_keypair *kp, const uint8_t seed[32])
{
    hash_personal(kp->x_sk, sizeof kp->x_sk, seed, 32, "bftkv-x25519");
    int rc = crypto_scalarmult_base(kp->x_pk, kp->x_sk);
    BFTKV_ASSERT(rc == 0); /* fails only for an all-zero result, impossible from the base point */

    uint8_t sign_seed[crypto_sign_SEEDBYTES];
    hash_personal(sign_seed, sizeof sign_seed, seed, 32, "bftkv-ed25519");
    rc = crypto_sign_seed_keypair(kp->sign_pk, kp->sign_sk, sign_seed);
    BFTKV_ASSERT(rc == 0);
    sodium_memzero(sign_seed, sizeof sign_seed);
}

void auth_public_of(struct auth_public *pub, const struct auth_keypair *kp)
{
    memcpy(pub->x_pk, kp->x_pk, sizeof pub->x_pk);
    memcpy(pub->sign_pk, kp->sign_pk, sizeof pub->sign_pk);
}

/* k(a,b) = BLAKE2b-128(X25519(sk_a, pk_b) || pk_lo || pk_hi, personal "bftkv-mac-v1"),
 * the same at both ends. BFTKV_E_INVAL when pk_b is a low-order point (all-zero
 * shared secret): such a key would be known to everyone. */
static int pairwise_key_derive(uint8_t key[AUTH_KEY_SIZE], const struct auth_keypair *self,
                               const uint8_t peer_pk[32])
{
    uint8_t in[3 * 32];
    if (crypto_scalarmult(in, self->x_sk, peer_pk) != 0 || sodium_is_zero(in, 32)) {
        sodium_memzero(in, sizeof in);
        return BFTKV_E_INVAL;
    }
    bool self_lo = memcmp(self->x_pk, peer_pk, 32) <= 0;
    memcpy(in + 32, self_lo ? self->x_pk : peer_pk, 32);
    memcpy(in + 64, self_lo ? peer_pk : self->x_pk, 32);
    hash_personal(key, AUTH_KEY_SIZE, in, sizeof in, "bftkv-mac-v1");
    sodium_memzero(in, sizeof in);
    return 0;
}

/* Shared by replica and client contexts: own keys, the replicas' keys. args_ok:
 * the caller's own checks of its arguments passed. On failure *a is left
 * destroyed (all zero). */
static int ctx_replicas_init(struct auth_ctx *a, bool is_client, uint16_t id, uint16_t n,
                             const struct auth_keypair *self, const struct auth_public *replicas, bool args_ok)
{
    memset(a, 0, sizeof *a);
    if (!args_ok || n == 0 || n > BFTKV_REPLICAS_MAX)
        return BFTKV_E_INVAL;
    a->is_client = is_client;
    a->self = id;
    a->n = n;
    memcpy(a->sign_sk, self->sign_sk, sizeof a->sign_sk);
    for (uint16_t j = 0; j < n; j++) {
        memcpy(a->replica_sign_pk[j], replicas[j].sign_pk, 32);
        int rc = pairwise_key_derive(a->replica_keys[j], self, replicas[j].x_pk);
        if (rc != 0) {
            auth_destroy(a);
            return rc;
        }
    }
    return 0;
}

int auth_init_replica(struct auth_ctx *a, uint16_t id, uint16_t n, const struct auth_keypair *self,
                      const struct auth_public *replicas, const struct auth_public *clients,
                      const bool *known, uint16_t nclients)
{
    BFTKV_ASSERT(a != NULL);
    BFTKV_ASSERT(self != NULL);
    BFTKV_ASSERT(replicas != NULL);
    bool args_ok = id < n && nclients <= BFTKV_CLIENTS_MAX && (nclients == 0 || clients != NULL);
    int rc = ctx_replicas_init(a, false, id, n, self, replicas, args_ok);
    if (rc != 0) {
        return rc;
    }
    if (nclients == 0) {
        return 0;
    }
    /* Sizing: nclients * (AUTH_KEY_SIZE + 1) bytes, at most 4096 * 17 = 68 KiB. */
    a->client_keys = calloc(nclients, sizeof *a->client_keys);
    a->client_known = calloc(nclients, sizeof *a->client_known);
    if (a->client_keys == NULL || a->client_known == NULL) {
        auth_destroy(a);
        return BFTKV_E_NOMEM;
    }
    a->clients = nclients;
    for (uint16_t c = 0; c < nclients; c++) {
        if (known != NULL && !known[c]) {
            continue; /* not in the allow-list: its public key may be anything */
        }
        rc = pairwise_key_derive(a->client_keys[c], self, clients[c].x_pk);
        if (rc != 0) {
            auth_destroy(a);
            return rc;
        }
        a->client_known[c] = 1;
    }
    return 0;
}

int auth_init_client(struct auth_ctx *a, uint16_t id, uint16_t n, const struct auth_keypair *self,
                     const struct auth_public *replicas)
{
    BFTKV_ASSERT(a != NULL);
    BFTKV_ASSERT(self != NULL);
    BFTKV_ASSERT(replicas != NULL);
    return ctx_replicas_init(a, true, id, n, self, replicas, true);
}

void auth_destroy(struct auth_ctx *a)
{
    if (a->client_keys != NULL) {
        sodium_memzero(a->client_keys, (size_t)a->clients * sizeof *a->client_keys);
    }
    free(a->client_keys);
    free(a->client_known);
    sodium_memzero(a, sizeof *a);
}

bool auth_client_known(const struct auth_ctx *a, uint16_t c)
{
    return !a->is_client && c < a->clients && a->client_known[c] != 0;
}

/* ---- MACs ------------------------------------------------------------------------- */

/* How many leading body bytes a MAC covers (in place or through their digest,
 * mac_input_build). A PRE-PREPARE's entries and a REPLY's result are bound through
 * the digest the fixed part carries (D, the result digest), which wire_decode()
 * checks before any MAC is checked; hashing them again would cost a second pass
 * over up to 64 KiB per message. This is the paper's shape too: the authenticator
 * of a pre-prepare covers <PRE-PREPARE, v, n, d> and the batch rides alongside
 * (TOCS 2002 §4.2). */
static size_t mac_body_span(uint8_t type, const uint8_t *raw, size_t body_len)
{
    size_t fixed = WIRE_REPLY_FIXED;
    switch (type) {
    case WIRE_PREPREPARE:
        return body_len < WIRE_PP_FIXED ? body_len : WIRE_PP_FIXED;
    case WIRE_REPLY:
        /* The sender's map epoch, when the reply carries one, is MACed with the
         * fixed part (docs/design.md §6.3): a client acts on it. */
        if (body_len >= WIRE_REPLY_FIXED + WIRE_REPLY_EPOCH_SIZE
            && (raw[WIRE_HEADER_SIZE + WIRE_REPLY_RFLAGS_OFF] & WIRE_REPLY_EPOCH) != 0)
            fixed += WIRE_REPLY_EPOCH_SIZE;
        return body_len < fixed ? body_len : fixed;
    default:
        return body_len;
    }
}

/* What one MAC covers: the message's first WIRE_HEADER_SIZE + span bytes when the
 * MACed span is small, else header || BLAKE2b-256(span) built in buf. The same for
 * every receiver, so a sender builds it once per message. */
struct mac_input {
    const uint8_t *p;
    size_t len;
    uint8_t buf[AUTH_MAC_HASHED];
};

/* raw: a message's header, followed by its body (wire_msg guarantees it). */
static void mac_input_build(struct mac_input *in, uint8_t type, const uint8_t *raw, size_t body_len)
{
    size_t span = mac_body_span(type, raw, body_len);
    if (span <= AUTH_MAC_DIRECT_MAX) {
        in->p = raw;
        in->len = WIRE_HEADER_SIZE + span;
        return;
    }
    memcpy(in->buf, raw, WIRE_HEADER_SIZE);
    wire_digest(in->buf + WIRE_HEADER_SIZE, raw + WIRE_HEADER_SIZE, span);
    in->p = in->buf;
    in->len = sizeof in->buf;
}

/* The MAC input of a message we encoded ourselves (fill side). The MACs are written
 * after the body, outside the bytes an in-place input covers. */
static void mac_input_of_encoded(struct mac_input *in, const uint8_t *msg, size_t auth_off)
{
    struct wire_header h;
    wire_header_read(msg, &h);
    BFTKV_ASSERT(h.body_len == auth_off - WIRE_HEADER_SIZE); /* the caller's auth_off is ours */
    mac_input_build(in, h.type, msg, h.body_len);
}

/* The MAC input of a decoded message. */
static void mac_input_of_decoded(struct mac_input *in, const struct wire_msg *m)
{
    BFTKV_ASSERT(m->body == m->raw + WIRE_HEADER_SIZE);
    mac_input_build(in, m->h.type, m->raw, m->h.body_len);
}

static void mac_compute(uint8_t out[BFTKV_MAC_SIZE], const struct mac_input *in, const uint8_t key[AUTH_KEY_SIZE])
{
    crypto_shorthash_siphashx24(out, in->p, in->len, key);
}

/* Constant time, like sodium_memcmp: the two 64-bit halves are XORed and ORed, no
 * data-dependent branch before the single test (sodium_memcmp's byte loop through
 * volatile pointers cost ~2% of a simulator run). */
static bool mac_verify(const uint8_t mac[BFTKV_MAC_SIZE], const struct mac_input *in,
                       const uint8_t key[AUTH_KEY_SIZE])
{
    uint8_t want[BFTKV_MAC_SIZE];
    mac_compute(want, in, key);
    uint64_t w[2], g[2];
    memcpy(w, want, sizeof w);
    memcpy(g, mac, sizeof g);
    uint64_t diff = (w[0] ^ g[0]) | (w[1] ^ g[1]);
    return diff == 0;
}

bool auth_encoded_mac_check(const uint8_t *msg, size_t auth_off, const uint8_t mac[BFTKV_MAC_SIZE],
                            const uint8_t key[AUTH_KEY_SIZE])
{
    struct mac_input in;
    mac_input_of_encoded(&in, msg, auth_off);
    return mac_verify(mac, &in, key);
}

void auth_authenticator_fill(const struct auth_ctx *a, uint8_t *msg, size_t msg_len, size_t auth_off)
{
    BFTKV_ASSERT(auth_off >= WIRE_HEADER_SIZE);
    BFTKV_ASSERT(auth_off + (size_t)a->n * BFTKV_MAC_SIZE <= msg_len);
    struct mac_input in;
    mac_input_of_encoded(&in, msg, auth_off);
    for (uint16_t j = 0; j < a->n; j++) {
        mac_compute(msg + auth_off + (size_t)j * BFTKV_MAC_SIZE, &in, a->replica_keys[j]);
    }
}

bool auth_authenticator_check(const struct auth_ctx *a, const struct wire_msg *m)
{
    if (a->is_client) {
        return false; /* clients receive only REPLY (auth_reply_check) */
    }
    const uint8_t *key;
    switch (m->h.type) {
    case WIRE_REQUEST:
        if (!auth_client_known(a, m->h.sender)) {
            return false;
        }
        key = a->client_keys[m->h.sender];
        break;
    case WIRE_PREPREPARE:
    case WIRE_PREPARE:
    case WIRE_COMMIT:
    case WIRE_STATUS: /* catch-up (engine/wire_catchup.c) */
    case WIRE_FETCH:
    case WIRE_STATE:
        if (m->h.sender >= a->n) {
            return false;
        }
        key = a->replica_keys[m->h.sender];
        break;
    default:
        return false;
    }
    if (m->h.auth_len != (size_t)a->n * BFTKV_MAC_SIZE) {
        return false; /* decoded with other limits than this group's */
    }
    struct mac_input in;
    mac_input_of_decoded(&in, m);
    return mac_verify(m->auth + (size_t)a->self * BFTKV_MAC_SIZE, &in, key);
}

void auth_reply_fill(const struct auth_ctx *a, uint8_t *msg, size_t msg_len, size_t auth_off, uint16_t client)
{
    BFTKV_ASSERT(!a->is_client);
    BFTKV_ASSERT(auth_client_known(a, client)); /* replies go only to authenticated clients */
    BFTKV_ASSERT(auth_off >= WIRE_HEADER_SIZE);
    BFTKV_ASSERT(auth_off + BFTKV_MAC_SIZE <= msg_len);
    struct mac_input in;
    mac_input_of_encoded(&in, msg, auth_off);
    mac_compute(msg + auth_off, &in, a->client_keys[client]);
}

bool auth_reply_check(const struct auth_ctx *a, const struct wire_msg *m)
{
    if (!a->is_client || m->h.type != WIRE_REPLY || m->u.reply.client != a->self || m->h.sender >= a->n
        || m->h.auth_len != BFTKV_MAC_SIZE) {
        return false;
    }
    struct mac_input in;
    mac_input_of_decoded(&in, m);
    return mac_verify(m->auth, &in, a->replica_keys[m->h.sender]);
}

/* ---- The signature memo (auth.h) ---------------------------------------------------- */

struct memo_slot {
    uint8_t key[BFTKV_DIGEST_SIZE];
    bool used;
    bool valid;
};

struct auth_sig_memo {
    uint32_t mask; /* slots - 1 */
    struct memo_slot *slots;
};

/* The slot for a signed message, and its key: the digest of everything the
 * outcome depends on. A later message with the same slot index replaces it. */
static struct memo_slot *memo_find(struct auth_sig_memo *memo, uint8_t key[BFTKV_DIGEST_SIZE], const uint8_t *pk,
                                   const uint8_t *msg, size_t msg_len, const uint8_t *sig)
{
    crypto_generichash_blake2b_state st;
    crypto_generichash_blake2b_init(&st, NULL, 0, BFTKV_DIGEST_SIZE);
    crypto_generichash_blake2b_update(&st, pk, 32);
    crypto_generichash_blake2b_update(&st, msg, msg_len);
    crypto_generichash_blake2b_update(&st, sig, WIRE_SIG_SIZE);
    crypto_generichash_blake2b_final(&st, key, BFTKV_DIGEST_SIZE);
    uint32_t index;
    memcpy(&index, key, sizeof index);
    return &memo->slots[index & memo->mask];
}

struct auth_sig_memo *auth_sig_memo_create(uint32_t entries)
{
    BFTKV_ASSERT(entries > 0);
    BFTKV_ASSERT(entries <= (1u << 24));
    uint32_t slots = 1;
    while (slots < entries)
        slots <<= 1;
    struct auth_sig_memo *memo = calloc(1, sizeof *memo);
    if (memo == NULL)
        return NULL;
    memo->slots = calloc(slots, sizeof *memo->slots);
    if (memo->slots == NULL) {
        free(memo);
        return NULL;
    }
    memo->mask = slots - 1u;
    return memo;
}

void auth_sig_memo_destroy(struct auth_sig_memo *memo)
{
    if (memo == NULL)
        return;
    free(memo->slots);
    free(memo);
}

/* ---- Signatures ------------------------------------------------------------------- */

void auth_sign(const struct auth_ctx *a, uint8_t *msg, size_t msg_len, size_t auth_off)
{
    BFTKV_ASSERT(!a->is_client);
    BFTKV_ASSERT(auth_off >= WIRE_HEADER_SIZE);
    BFTKV_ASSERT(auth_off + WIRE_SIG_SIZE <= msg_len);
    int rc = crypto_sign_detached(msg + auth_off, NULL, msg, auth_off, a->sign_sk);
    BFTKV_ASSERT(rc == 0);
}

bool auth_signature_check(const struct auth_ctx *a, const struct wire_msg *m)
{
    if (m->h.type != WIRE_CHECKPOINT && m->h.type != WIRE_VIEW_CHANGE && m->h.type != WIRE_NEW_VIEW) {
        return false;
    }
    if (m->h.sender >= a->n || m->h.auth_len != WIRE_SIG_SIZE) {
        return false;
    }
    const uint8_t *pk = a->replica_sign_pk[m->h.sender];
    size_t signed_len = WIRE_HEADER_SIZE + (size_t)m->h.body_len;
    if (a->sig_memo == NULL)
        return crypto_sign_verify_detached(m->auth, m->raw, signed_len, pk) == 0;
    uint8_t key[BFTKV_DIGEST_SIZE];
    struct memo_slot *s = memo_find(a->sig_memo, key, pk, m->raw, signed_len, m->auth);
    if (s->used && sodium_memcmp(s->key, key, sizeof key) == 0)
        return s->valid;
    bool valid = crypto_sign_verify_detached(m->auth, m->raw, signed_len, pk) == 0;
    memcpy(s->key, key, sizeof key);
    s->used = true;
    s->valid = valid;
    return valid;
}
