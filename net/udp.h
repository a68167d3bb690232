/* The UDP transport of bftkv (docs/design.md §6): one bound socket, coalescing sends,
 * batched receives, over io_uring or, where io_uring is unavailable, over
 * recvmmsg/sendmmsg.
 *
 * Sending. net_udp_queue() appends one complete protocol message to the open
 * datagram for its destination; a message never straddles two datagrams, so the
 * receiver walks a datagram message by message (engine/wire.h: every message says
 * its own length). Many small messages to one endpoint thus cost one datagram,
 * which is what the datagram budget of docs/design.md §6 asks for. net_udp_flush() hands
 * every open datagram to the kernel: io_uring — one SENDMSG per datagram, all in
 * one io_uring_enter; fallback — sendmmsg in batches. Datagram buffers come from a
 * pool allocated by net_udp_open(); when the pool is exhausted net_udp_queue()
 * flushes first. Nothing on these paths calls malloc.
 *
 * Receiving. net_udp_poll() waits for datagrams and passes each to a callback.
 * io_uring: one multishot RECVMSG, armed once, fills buffers of a provided-buffer
 * ring; a buffer goes back to the ring after its callback; the receive is re-armed
 * whenever the kernel ends it (no IORING_CQE_F_MORE, e.g. ENOBUFS when every
 * buffer was in use). Fallback: poll(2) then recvmmsg. Datagrams longer than a
 * receive buffer are counted (rx_truncated) and dropped, never delivered cut.
 *
 * Delivery order and loss are UDP's: datagrams may be lost, duplicated or
 * reordered, and a failed send is counted (send_errors) and dropped, not retried.
 *
 * Threads. A net_udp has two independent halves that share only the socket: the
 * send half (net_udp_queue, net_udp_flush, net_udp_pending) and the receive half
 * (net_udp_poll). Each half must be used by one thread at a time; the two halves
 * may run on two different threads concurrently (each has its own ring, pool and
 * counters). A receive callback may use the send half of the same instance when
 * its thread is the only sender. net_udp_stats() may be called from any thread.
 * net_udp_open() and net_udp_close() must not race with anything.
 */
#ifndef BFTKV_NET_UDP_H
#define BFTKV_NET_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bftkv/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

enum net_backend {
    NET_BACKEND_AUTO = 0,  /* io_uring when the kernel allows it, else mmsg (one log line) */
    NET_BACKEND_URING = 1, /* io_uring or fail with BFTKV_E_UNSUPPORTED */
    NET_BACKEND_MMSG = 2,  /* recvmmsg/sendmmsg */
};

/* Defaults and bounds of the pools (a zero field in the config means default).
 * Memory per instance is about rx_buffers * (rx_buffer_bytes + 192) plus
 * tx_datagrams * BFTKV_DATAGRAM_MAX: 16.5 MiB + 4 MiB with the defaults. */
#define NET_UDP_RX_BUFFERS_DEFAULT 256u
#define NET_UDP_RX_BUFFERS_MAX 32768u  /* io_uring buffer rings hold at most 2^15 */
#define NET_UDP_TX_DATAGRAMS_DEFAULT 64u
#define NET_UDP_TX_DATAGRAMS_MAX 4096u
#define NET_UDP_RX_BUFFER_BYTES_MIN 512u

/* Room for a formatted address: "[" IPv6 "%" scope "]:" port and the NUL. */
#define NET_ADDR_STRLEN 72u

struct net_udp_config {
    const char *host;          /* numeric IPv4 or IPv6 address to bind; NULL = "127.0.0.1" */
    uint16_t port;             /* 0 = an ephemeral port: see net_udp_local_port() */
    enum net_backend backend;
    uint32_t rx_buffers;       /* receive buffers; 0 = NET_UDP_RX_BUFFERS_DEFAULT */
    uint32_t rx_buffer_bytes;  /* datagrams up to this size arrive whole (at least; buffers are
                                * rounded up to 64 bytes); NET_UDP_RX_BUFFER_BYTES_MIN..65535,
                                * 0 = BFTKV_DATAGRAM_MAX */
    uint32_t tx_datagrams;     /* pooled send buffers of BFTKV_DATAGRAM_MAX bytes; 0 = default */
    int sndbuf_bytes;          /* SO_SNDBUF; 0 = leave the system default */
    int rcvbuf_bytes;          /* SO_RCVBUF; 0 = leave the system default */
};

/* Counters since open. Each has one writer (the send or the receive half) and is
 * stored with relaxed atomics, so any thread may read a snapshot. */
struct net_udp_stats {
    /* send half */
    uint64_t messages_queued;    /* messages accepted by net_udp_queue() */
    uint64_t messages_coalesced; /* of those, messages that rode in an already open datagram */
    uint64_t datagrams_sent;     /* datagrams the kernel accepted whole */
    uint64_t bytes_sent;
    uint64_t send_errors;        /* datagrams refused or cut by the kernel: dropped */
    uint64_t pool_flushes;       /* flushes forced by an exhausted send pool */
    /* receive half */
    uint64_t datagrams_received; /* delivered to the callback */
    uint64_t bytes_received;
    uint64_t rx_truncated;       /* longer than rx_buffer_bytes: dropped */
    uint64_t rx_nobufs;          /* io_uring: multishot ended for lack of buffers */
    uint64_t rx_rearms;          /* io_uring: multishot receive re-submitted */
    uint64_t rx_errors;          /* other receive errors */
};

/* A received datagram: src and data are valid during the call only. */
typedef void net_rx_fn(void *arg, const struct sockaddr_storage *src, socklen_t srclen,
                       const uint8_t *data, size_t len);

struct net_udp;

/* Bind a socket to cfg->host:cfg->port and set up the backend. Returns 0 and
 * *out, or: BFTKV_E_INVAL (bad config field, unparsable host), BFTKV_E_CONFIG
 * (address in use or not local; logged with the address), BFTKV_E_NOMEM,
 * BFTKV_E_UNSUPPORTED (backend URING forced where io_uring, provided-buffer rings
 * or multishot recvmsg are unavailable; the reason is logged), BFTKV_E_IO. AUTO
 * falls back to mmsg whenever io_uring cannot be set up, with one line on stderr:
 * "bftkv: io_uring unavailable (REASON): using recvmmsg/sendmmsg". The caller
 * owns *out and releases it with net_udp_close(). */
int net_udp_open(const struct net_udp_config *cfg, struct net_udp **out);

/* Flush nothing, cancel the pending receive, wait (bounded) for sends in flight,
 * free everything. Open datagrams not yet flushed are discarded. NULL is a no-op. */
void net_udp_close(struct net_udp *u);

/* "uring" or "mmsg": the backend actually in use. */
const char *net_udp_backend_name(const struct net_udp *u);
enum net_backend net_udp_backend(const struct net_udp *u);

/* The bound port (host order) and address. */
uint16_t net_udp_local_port(const struct net_udp *u);
int net_udp_local_addr(const struct net_udp *u, struct sockaddr_storage *out, socklen_t *len);

/* The socket, for tests and for diagnostics. Do not read or write it directly. */
int net_udp_fd(const struct net_udp *u);

/* Append one complete message (len bytes, copied) to the open datagram for dst,
 * or start a new datagram when it would pass BFTKV_DATAGRAM_MAX or dst has none.
 * Returns 0, or BFTKV_E_RANGE (len > BFTKV_DATAGRAM_MAX: a message never spans
 * datagrams), BFTKV_E_INVAL (len 0, or dst not of the socket's address family),
 * or an error of the flush it had to do when the pool was exhausted. Nothing is
 * sent before net_udp_flush() unless the pool runs out. */
int net_udp_queue(struct net_udp *u, const struct sockaddr_storage *dst, socklen_t dlen, const void *msg,
                  size_t len);

/* Send every open datagram, in the order they were started (so messages to one
 * destination leave in queue order). Returns the number of datagrams handed to
 * the kernel (>= 0) or BFTKV_E_IO when the submission itself failed. Errors of
 * single datagrams are counted in send_errors, not returned. */
int net_udp_flush(struct net_udp *u);

/* Datagrams queued and not yet flushed. */
uint32_t net_udp_pending(const struct net_udp *u);

/* Wait up to timeout_ms (0: do not wait; < 0: no limit) for datagrams and call
 * fn(arg, ...) for each, at most rx_buffers of them per call. Returns the number
 * delivered (0 on timeout or signal) or BFTKV_E_IO. fn must not call
 * net_udp_poll() or net_udp_close() on the same instance; it may queue and flush. */
int net_udp_poll(struct net_udp *u, int timeout_ms, net_rx_fn *fn, void *arg);

void net_udp_stats(const struct net_udp *u, struct net_udp_stats *out);

/* ---- Addresses ------------------------------------------------------------------
 * Numeric only (no name resolution): "127.0.0.1:7000", "[::1]:7000",
 * "[fe80::1%2]:7000". Port 0..65535. */
int net_addr_parse(const char *hostport, struct sockaddr_storage *out, socklen_t *len);

/* Build an address from a numeric host (no brackets) and a port. */
int net_addr_from_host(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len);

/* Format as net_addr_parse() reads it into buf (cap >= NET_ADDR_STRLEN is always
 * enough). Returns 0, BFTKV_E_INVAL (unknown family) or BFTKV_E_BUF_TOO_SMALL. */
int net_addr_format(const struct sockaddr_storage *addr, socklen_t len, char *buf, size_t cap);

/* Same endpoint (family, address, port, IPv6 scope)? */
bool net_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_NET_UDP_H */
