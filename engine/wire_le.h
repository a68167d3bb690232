/* Little-endian loads and stores for the wire codec (engine/wire*.c): one copy
 * of the helpers every body encoder and decoder uses. memcpy-based, so they are
 * safe on unaligned fields and compile to single moves on x86-64. Internal to
 * engine/; not part of any public header. */
#ifndef BFTKV_ENGINE_WIRE_LE_H
#define BFTKV_ENGINE_WIRE_LE_H

#include <stdint.h>
#include <string.h>

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define WIRE_LE_SWAP(bits, v) __builtin_bswap##bits(v)
#else
#define WIRE_LE_SWAP(bits, v) (v)
#endif

/* le16_load, le16_store, le32_... and le64_...: one definition for the three widths. */
#define WIRE_LE_DEFINE(bits)                                                \
    static inline uint##bits##_t le##bits##_load(const uint8_t *p)          \
    {                                                                       \
        uint##bits##_t v;                                                   \
        memcpy(&v, p, sizeof v);                                            \
        return (uint##bits##_t)WIRE_LE_SWAP(bits, v);                       \
    }                                                                       \
    static inline void le##bits##_store(uint8_t *p, uint##bits##_t v)       \
    {                                                                       \
        v = (uint##bits##_t)WIRE_LE_SWAP(bits, v);                          \
        memcpy(p, &v, sizeof v);                                            \
    }

WIRE_LE_DEFINE(16)
WIRE_LE_DEFINE(32)
WIRE_LE_DEFINE(64)

#endif /* BFTKV_ENGINE_WIRE_LE_H */
