/* Shared fixture of the wire codec tests (test_wire.c, test_wire_drop.c): the
 * group's limits, scratch buffers, message builders and decode expectations.
 * Every builder produces a valid message of group GROUP with NREP replicas. */
#ifndef BFTKV_TESTS_ENGINE_WIRE_FIXTURE_H
#define BFTKV_TESTS_ENGINE_WIRE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/wire.h"

#define GROUP 7u
#define NREP 4u
#define NCLIENTS 16u
#define BUF_CAP (2u * BFTKV_DATAGRAM_MAX)

extern const struct wire_limits lim;

/* Scratch buffers: large enough for a maximal message. */
extern uint8_t g_buf[BUF_CAP];
extern uint8_t g_ents[BUF_CAP];
extern uint8_t g_big[BUF_CAP];

void put16(uint8_t *p, uint16_t v);
void put32(uint8_t *p, uint32_t v);

/* splitmix64: a fixed-seed local generator, so every trial replays. */
extern uint64_t rng_state;
uint64_t rng_next(void);
size_t rng_below(size_t n);

size_t make_request(uint8_t *buf, size_t cap, uint16_t client, uint64_t ts, uint8_t op, const char *key,
                    const char *value, uint8_t rflags);
size_t make_preprepare(uint8_t *buf, size_t cap);
size_t make_digest_msg(uint8_t *buf, size_t cap, uint8_t type);
size_t make_reply(uint8_t *buf, size_t cap, const char *result);

int decode_exact(const uint8_t *bytes, size_t len, struct wire_msg *m, size_t *consumed,
                 struct wire_drop_counters *drops);
uint64_t drops_total(const struct wire_drop_counters *d);
size_t expect_drop(const uint8_t *bytes, size_t len, enum wire_drop reason);
void expect_ok(const uint8_t *bytes, size_t len, struct wire_msg *m);

void header_patch(uint8_t *buf, void (*patch)(struct wire_header *h, uint32_t arg), uint32_t arg);
void set_type(struct wire_header *h, uint32_t v);
void set_group(struct wire_header *h, uint32_t v);
void set_sender(struct wire_header *h, uint32_t v);
void set_auth_len(struct wire_header *h, uint32_t v);
void set_body_len(struct wire_header *h, uint32_t v);
void set_flags(struct wire_header *h, uint32_t v);

size_t raw_request(uint8_t *buf, uint8_t op, uint8_t rflags, uint16_t klen, uint32_t vlen, uint32_t body_len);
void pp_fix_digest(uint8_t *buf);
size_t pp_from_entries(uint8_t *buf, const uint8_t *ents, uint32_t elen, uint16_t count);

/* The drop-reason tests (test_wire_drop.c), run by test_wire.c's main. */
void test_drop_truncated(void **state);
void test_drop_header(void **state);
void test_drop_digest_msg_length(void **state);
void test_drop_request_fields(void **state);
void test_drop_reply_fields(void **state);
void test_drop_preprepare(void **state);

#endif /* BFTKV_TESTS_ENGINE_WIRE_FIXTURE_H */
