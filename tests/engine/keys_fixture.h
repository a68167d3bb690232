/* Key pairs from fixed seeds for the principals of a test group: the replica
 * harness (replica_harness.c) and the client fixture (client_fixture.c) make
 * their keys here, so every run signs and MACs with the same keys. (test_auth.c
 * keeps its own seeds: deriving keys from them is what it tests.) Test code. */
#ifndef BFTKV_TESTS_KEYS_FIXTURE_H
#define BFTKV_TESTS_KEYS_FIXTURE_H

#include <stdint.h>

#include "engine/auth.h"

#define KEYS_FIXTURE_REPLICAS 1u /* `who` of keys_fixture_make */
#define KEYS_FIXTURE_CLIENTS 2u

/* kp[0..count) and their public halves, for principals 0..count-1 of kind
 * `who` (KEYS_FIXTURE_REPLICAS or KEYS_FIXTURE_CLIENTS). */
void keys_fixture_make(struct auth_keypair *kp, struct auth_public *pub, uint8_t who, uint16_t count);

#endif /* BFTKV_TESTS_KEYS_FIXTURE_H */
