/* What the wire codec's files (engine/wire*.c) share and nobody else needs: the
 * little-endian field helpers (engine/wire_le.h) and the one function that frames
 * a message around the body an encoder writes.
 */
#ifndef BFTKV_ENGINE_WIRE_INTERNAL_H
#define BFTKV_ENGINE_WIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/wire.h"
#include "engine/wire_le.h"

/* Frame a message of body_len body bytes (which the caller writes at
 * buf + WIRE_HEADER_SIZE, before or after this call) and an authentication
 * area of auth_len bytes: writes the header (flags 0), zeroes the authentication
 * area and sets *auth_off (when not NULL) to its offset. Returns the message's
 * size, or 0 (nothing written) when it does not fit cap or body_len does not
 * fit the header's field. */
size_t wire_frame(uint8_t *buf, size_t cap, uint8_t type, uint16_t group, uint16_t sender, uint64_t view,
                  uint64_t seq, uint64_t body_len, uint16_t auth_len, size_t *auth_off);

#endif /* BFTKV_ENGINE_WIRE_INTERNAL_H */
