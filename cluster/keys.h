/* Secret key files and a principal's identity (docs/design.md §5.2).
 *
 * A principal (replica or client) is one 32-byte secret seed: engine/auth.c
 * derives its X25519 and Ed25519 key pairs from it, and the config file carries
 * the public halves. The seed lives in its own file, key_dir/replica-<id>.key or
 * key_dir/client-<id>.key (include/bftkv/config.h):
 *
 *     # comment lines and blank lines are allowed anywhere
 *     <64 hex digits>
 *
 * Like ssh with its private keys, loading refuses a file that is not a regular
 * file, that group or others may read or write (mode & 077), or that belongs to
 * another user (root aside). Generating writes mode 0600 and never overwrites.
 *
 * Not part of the public API: the server, the CLI, the cluster tool and the
 * client library use it. Every function writes a one-line message into err
 * (errlen bytes; err may be NULL) when it fails and prints nothing. The caller
 * must have called sodium_init() (the key pairs come from libsodium).
 */
#ifndef BFTKV_CLUSTER_KEYS_H
#define BFTKV_CLUSTER_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/auth.h"
#include "cluster/config.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BFTKV_KEY_SEED_SIZE 32u
#define BFTKV_KEY_FILE_MAX 4096u /* bytes: the seed line and a few comments */

/* Read the seed from a key file. 0; BFTKV_E_IO when the file cannot be opened or
 * read; BFTKV_E_CONFIG when its type, mode, owner or contents are wrong. seed is
 * written only on success. */
int bftkv_key_load(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err, size_t errlen);

/* Parse the text of a key file (len bytes, need not be terminated; at most
 * BFTKV_KEY_FILE_MAX): the rules of bftkv_key_load() on contents, without the
 * file's checks. name is used in messages. 0, BFTKV_E_CONFIG (bad contents) or
 * BFTKV_E_INVAL (NULL arguments); seed is written only on success. */
int bftkv_key_parse(const char *text, size_t len, const char *name, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err,
                    size_t errlen);

/* Draw a seed from the kernel (getrandom) and write it to a new file at path, mode
 * 0600 (O_EXCL: an existing file is never overwritten, even by a symlink). The
 * file's comments name the public keys. 0, or BFTKV_E_IO with nothing left behind. */
int bftkv_key_generate(const char *path, uint8_t seed[BFTKV_KEY_SEED_SIZE], char *err, size_t errlen);

/* The public keys of a seed as the config file spells them (64 lower-case hex
 * digits and a terminator each). */
void bftkv_key_public(const uint8_t seed[BFTKV_KEY_SEED_SIZE], char x25519_hex[65], char ed25519_hex[65]);

/* Load the secret key of replica or client id from cfg's key_dir and derive its
 * key pairs into kp, after checking that their public halves are the ones cfg
 * lists for that id. 0; BFTKV_E_CONFIG (id not in the group or the allow-list,
 * keys that do not match, a bad file), BFTKV_E_IO. */
int bftkv_key_identity_load(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                            struct auth_keypair *kp, char *err, size_t errlen);

/* Initialise the authentication state of replica or client id (engine/auth.h)
 * from cfg's public keys and the principal's own key pairs (from
 * bftkv_key_identity_load). A replica gets every allowed client's key; ids
 * without a client line stay unknown. 0; BFTKV_E_CONFIG (a peer's X25519 key is a
 * low-order point: no secret can be shared with it; the message names the line),
 * BFTKV_E_NOMEM. The caller destroys it with auth_destroy. */
int bftkv_key_auth_init(const struct bftkv_config *cfg, enum bftkv_config_role role, uint16_t id,
                        const struct auth_keypair *kp, struct auth_ctx *a, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_CLUSTER_KEYS_H */
