/* Key pairs from fixed seeds (keys_fixture.h). */
#include "keys_fixture.h"

void keys_fixture_make(struct auth_keypair *kp, struct auth_public *pub, uint8_t who, uint16_t count)
{
    uint8_t seed[32];
    for (uint16_t id = 0; id < count; id++) {
        for (unsigned i = 0; i < sizeof seed; i++)
            seed[i] = (uint8_t)(who * 31u + id * 13u + i * 7u);
        auth_keypair_from_seed(&kp[id], seed);
        auth_public_of(&pub[id], &kp[id]);
    }
}
