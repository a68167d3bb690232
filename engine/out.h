/* Appending to the outbox (engine/out.c): the engine's side of struct pbft_out
 * (engine/pbft.h), shared by the replica and the client state machines. The
 * runtime or the simulator only drains and resets it.
 */
#ifndef BFTKV_ENGINE_OUT_H
#define BFTKV_ENGINE_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pbft.h"

bool pbft_out_room(const struct pbft_out *o, size_t bytes, uint32_t msgs);
/* Where the next message is encoded; *cap receives the bytes available. */
uint8_t *pbft_out_tail(struct pbft_out *o, size_t *cap);
/* Record the len bytes just encoded at the tail as one message. */
void pbft_out_commit(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, size_t len);
/* List len bytes at p (engine memory unchanged until the next step) as an entry
 * without copying them; false (nothing appended) when no entry is free. */
bool pbft_out_ref(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, const uint8_t *p, size_t len);
/* Copy a complete message in; false (nothing appended) when it does not fit. */
bool pbft_out_copy(struct pbft_out *o, uint8_t dest_kind, uint16_t dest_id, const uint8_t *msg, size_t len);


#endif /* BFTKV_ENGINE_OUT_H */
