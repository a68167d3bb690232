/* Every limit of bftkv, in one header, related by static assertions.
 *
 * A limit is a promise to the user (a key of BFTKV_KEY_MAX bytes is accepted, one
 * byte more gets BFTKV_E_KEY_TOO_LARGE) and a sizing input for the pools allocated
 * at start-up. When you change one, the assertions at the bottom say which others
 * must move with it.
 */
#ifndef BFTKV_LIMITS_H
#define BFTKV_LIMITS_H

/* ---- Keys and values (docs/design.md §3) --------------------------------------------- */

/* Keys are 1..BFTKV_KEY_MAX bytes, arbitrary bytes, no terminator. */
#define BFTKV_KEY_MAX 1024u

/* Values are 0..BFTKV_VALUE_MAX bytes. One PUT must fit one datagram with its
 * header and a full authenticator (see the assertion below): values of more than
 * one datagram would need client-side chunking, which bftkv does not do. */
#define BFTKV_VALUE_MAX (60u * 1024u)

/* ---- Transport (docs/design.md §6) --------------------------------------------------- */

/* Largest UDP payload over IPv4: 65535 - 20 (IP) - 8 (UDP). */
#define BFTKV_DATAGRAM_MAX 65507u

/* Room reserved in every datagram for the message header and per-request framing. */
#define BFTKV_HEADER_RESERVE 128u

/* A MAC in an authenticator: SipHash-2-4 with 128-bit output (docs/benchmarks.md). */
#define BFTKV_MAC_SIZE 16u

/* Messages one datagram may carry into a replica, per sender kind (server/server.c
 * counts what is dropped beyond them as datagram_excess_*). A datagram of
 * 65,507 bytes holds up to 2,047 back-to-back 32-byte headers; each message
 * costs a decode and usually a MAC check, so a sender gets no more than a
 * correct one ever puts in one datagram:
 *   replica: every message of a replica (and a REQUEST it relays) is at least
 *            a header, a 32-byte digest and a MAC per replica, 128 bytes at
 *            n = 4, so 511 fill a datagram; groups of n >= 4 never reach 512;
 *   client:  one REQUEST per lane in flight (PBFT_LANES_MAX = 64, asserted in
 *            server/server.c), and a client's retransmission waits its timeout;
 *   admin:   one stats request per datagram (client/client_admin.c). */
#define BFTKV_DGRAM_REPLICA_MSGS_MAX 512u
#define BFTKV_DGRAM_CLIENT_MSGS_MAX 64u
#define BFTKV_DGRAM_ADMIN_MSGS_MAX 1u

/* ---- Group shape (docs/design.md §5) ------------------------------------------------- */

/* Replicas per group; N >= 3f+1. 64 covers every sweep (N up to 13) with room. */
#define BFTKV_REPLICAS_MAX 64u
#define BFTKV_FAULTS_MAX ((BFTKV_REPLICAS_MAX - 1u) / 3u)

/* Authenticator: one MAC per replica. */
#define BFTKV_AUTHENTICATOR_MAX (BFTKV_REPLICAS_MAX * BFTKV_MAC_SIZE)

/* Clients in a group's allow-list; each has one reply-cache entry per replica. */
#define BFTKV_CLIENTS_MAX 4096u

/* ---- Deployments (docs/design.md §6.2) ---------------------------------------------- */

/* Nodes of a deployment map (each a bftkv-server hosting replicas of many
 * partitions) and its partitions P, a power of two. The map's placement table
 * holds P * R node indexes: 4096 * 64 * 2 bytes = 512 KiB at the maxima. */
#define BFTKV_NODES_MAX 1024u
#define BFTKV_PARTITIONS_MAX 4096u

/* ---- Batching and the log (docs/design.md §5) ---------------------------------------- */

/* Requests per batch (one sequence number). */
#define BFTKV_BATCH_REQUESTS_MAX 1024u

/* Bytes of inlined requests in one PRE-PREPARE; the rest of the datagram carries
 * the header, digests of non-inlined requests and the authenticator. */
#define BFTKV_BATCH_BYTES_MAX (56u * 1024u)

/* A request at most this large is inlined in the PRE-PREPARE; a larger one travels
 * from the client to every replica and the batch carries its digest. */
#define BFTKV_INLINE_REQUEST_MAX 1024u

/* Batches in flight (pipeline window W) and the log window L = high - low watermark.
 * L is bounded by the VIEW-CHANGE message, which carries up to 3 entries per
 * sequence number of the window (one prepared, two pre-prepared: TOCS 2002 §4.5.1)
 * and must fit one datagram: engine/wire.h asserts WIRE_VIEW_CHANGE_MAX <=
 * BFTKV_DATAGRAM_MAX. 256 is the largest power of two that fits. */
#define BFTKV_WINDOW_MAX 64u
#define BFTKV_CHECKPOINT_INTERVAL_MAX 128u
#define BFTKV_LOG_WINDOW_MAX (2u * BFTKV_CHECKPOINT_INTERVAL_MAX)

/* ---- Store (docs/design.md §3) ------------------------------------------------------- */

/* Shards of the store: a power of two. */
#define BFTKV_STORE_SHARDS_DEFAULT 256u
#define BFTKV_STORE_SHARDS_MAX 65536u

/* ---- Digests ------------------------------------------------------------------ */

/* Digests of requests, batches and replies: BLAKE2b-256. */
#define BFTKV_DIGEST_SIZE 32u

/* ---- Relations ---------------------------------------------------------------- */

#ifdef __cplusplus
#define BFTKV_STATIC_ASSERT static_assert
#else
#define BFTKV_STATIC_ASSERT _Static_assert
#endif

BFTKV_STATIC_ASSERT(BFTKV_HEADER_RESERVE + BFTKV_AUTHENTICATOR_MAX + BFTKV_KEY_MAX + BFTKV_VALUE_MAX
                   <= BFTKV_DATAGRAM_MAX,
               "a maximal PUT must fit one datagram with header and authenticator");
BFTKV_STATIC_ASSERT(BFTKV_HEADER_RESERVE + BFTKV_AUTHENTICATOR_MAX + BFTKV_BATCH_BYTES_MAX
                   + BFTKV_BATCH_REQUESTS_MAX * 4u <= BFTKV_DATAGRAM_MAX,
               "a full PRE-PREPARE must fit one datagram");
BFTKV_STATIC_ASSERT(BFTKV_INLINE_REQUEST_MAX <= BFTKV_BATCH_BYTES_MAX,
               "an inlined request must fit an empty batch");
BFTKV_STATIC_ASSERT(BFTKV_WINDOW_MAX <= BFTKV_LOG_WINDOW_MAX,
               "the pipeline window must fit inside the log window");
BFTKV_STATIC_ASSERT((BFTKV_STORE_SHARDS_DEFAULT & (BFTKV_STORE_SHARDS_DEFAULT - 1u)) == 0,
               "store shards must be a power of two");
BFTKV_STATIC_ASSERT((BFTKV_STORE_SHARDS_MAX & (BFTKV_STORE_SHARDS_MAX - 1u)) == 0,
               "store shards must be a power of two");
BFTKV_STATIC_ASSERT(BFTKV_STORE_SHARDS_DEFAULT <= BFTKV_STORE_SHARDS_MAX, "default within max");
BFTKV_STATIC_ASSERT((BFTKV_PARTITIONS_MAX & (BFTKV_PARTITIONS_MAX - 1u)) == 0,
               "partitions must be a power of two");
BFTKV_STATIC_ASSERT(BFTKV_REPLICAS_MAX <= BFTKV_NODES_MAX && BFTKV_NODES_MAX <= 65535u,
                    "a partition's replicas are distinct nodes; node indexes fit 16 bits");
BFTKV_STATIC_ASSERT(3u * BFTKV_FAULTS_MAX + 1u <= BFTKV_REPLICAS_MAX, "N >= 3f+1 at the maxima");
BFTKV_STATIC_ASSERT(BFTKV_DGRAM_ADMIN_MSGS_MAX >= 1u && BFTKV_DGRAM_CLIENT_MSGS_MAX >= 1u,
                    "every sender kind gets at least one message through");
BFTKV_STATIC_ASSERT(BFTKV_VALUE_MAX < (1u << 24), "value lengths fit 24 bits on the wire");
BFTKV_STATIC_ASSERT(BFTKV_KEY_MAX < (1u << 16), "key lengths fit 16 bits on the wire");

#endif /* BFTKV_LIMITS_H */
