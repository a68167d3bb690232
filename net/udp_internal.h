/* What the UDP transport's files share: the net_udp object, the send pool and
 * destination map kept by udp.c, and the two backends (udp_uring.c, udp_mmsg.c)
 * that move the bytes. Not a public header: only net/udp*.c include it.
 *
 * The send half owns tx, tx_free, tx_order, map and the send counters; the
 * receive half owns rx_mem, the receive counters and each backend's rx fields.
 * Neither half reads the other's fields after open, which is what lets two
 * threads drive them concurrently (net/udp.h, "Threads").
 */
#ifndef BFTKV_NET_UDP_INTERNAL_H
#define BFTKV_NET_UDP_INTERNAL_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "net/udp.h"

/* The map slot of a sealed datagram, and an empty map slot. */
#define NET_UDP_NONE UINT32_MAX

/* How long a send may wait for the kernel to give a pooled buffer back (the pool
 * is exhausted and every buffer is in flight) and how long close waits for the
 * kernel to finish with the rings. */
#define NET_UDP_TX_WAIT_MS 1000
#define NET_UDP_CLOSE_WAIT_MS 1000

/* Room in front of every io_uring receive buffer for struct io_uring_recvmsg_out
 * and the source address; the payload follows. */
#define NET_UDP_RX_HEADROOM (sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage))

/* One pooled datagram under construction or in flight. The msghdr and iovec live
 * here because io_uring reads them until the send completes. */
struct net_udp_tx {
    uint8_t *buf;    /* BFTKV_DATAGRAM_MAX bytes, inside net_udp.tx_mem */
    uint32_t len;    /* bytes of messages so far */
    uint32_t slot;   /* map slot pointing here while the datagram is open, else NET_UDP_NONE */
    struct sockaddr_storage dst;
    socklen_t dlen;
    struct iovec iov;
    struct msghdr mh;
};

/* A destination, normalised so equal endpoints compare equal with memcmp. */
struct net_udp_key {
    uint16_t family;
    uint16_t port;     /* network order, as in the sockaddr */
    uint32_t scope;    /* IPv6 scope id, 0 for IPv4 */
    uint8_t addr[16];  /* IPv4 in the first 4 bytes */
};

struct net_udp_slot {
    struct net_udp_key key;
    uint32_t tx;       /* the open datagram for key, or NET_UDP_NONE: empty slot */
};

struct net_udp_uring {
    struct io_uring rx_ring;           /* multishot RECVMSG only */
    struct io_uring tx_ring;           /* SENDMSG only */
    bool rx_ring_up, tx_ring_up, buf_ring_up;
    struct io_uring_buf_ring *br;      /* provided-buffer ring, mmap'd, page aligned */
    size_t br_bytes;
    uint32_t br_entries;               /* power of two >= rx_count */
    struct msghdr rx_msg;              /* the layout the kernel writes into each buffer */
    bool armed;                        /* a multishot RECVMSG is live */
    bool cancelling;                   /* a cancel of it is in flight */
    pthread_t armer;                   /* the thread that submitted it (its task runs the work) */
    uint32_t tx_inflight;              /* SENDMSGs submitted and not yet reaped */
};

struct net_udp_mmsg {
    struct mmsghdr *rx_mm;             /* rx_count entries */
    struct iovec *rx_iov;
    struct sockaddr_storage *rx_names;
    struct mmsghdr *tx_mm;             /* tx_count entries */
};

struct net_udp {
    int fd;
    int family;
    enum net_backend backend;          /* URING or MMSG after open */
    struct sockaddr_storage local;
    socklen_t local_len;
    uint16_t port;

    /* receive half */
    uint32_t rx_count;                 /* buffers */
    uint32_t rx_payload;               /* largest datagram received whole (>= the config's) */
    uint32_t rx_stride;                /* bytes per buffer: headroom + payload, 64-aligned */
    uint8_t *rx_mem;                   /* rx_count * rx_stride, mmap'd */
    size_t rx_mem_bytes;
    bool in_poll;

    /* send half */
    uint32_t tx_count;
    uint8_t *tx_mem;                   /* tx_count * BFTKV_DATAGRAM_MAX, mmap'd */
    size_t tx_mem_bytes;
    struct net_udp_tx *tx;
    uint32_t *tx_free;                 /* stack of free tx indices */
    uint32_t tx_free_count;
    uint32_t *tx_order;                /* open datagrams in the order they were started */
    uint32_t tx_pending;
    struct net_udp_slot *map;          /* open addressing, capacity map_mask + 1 >= 2 * tx_count */
    uint32_t map_mask;

    struct net_udp_stats stats;        /* see net_udp_count() */

    struct net_udp_uring ur;
    struct net_udp_mmsg mm;
};

/* Add n to a counter. Each counter has one writer, so a plain read and a relaxed
 * store suffice; the store is atomic so that net_udp_stats() may run elsewhere. */
static inline void net_udp_count(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
}

static inline uint32_t net_udp_pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

/* udp.c: a send finished with result res (bytes or -errno): count it and return
 * the buffer to the pool. */
void net_udp_tx_complete(struct net_udp *u, uint32_t idx, int res);

/* udp.c: count a received datagram and hand it to the callback. */
void net_udp_rx_deliver(struct net_udp *u, const struct sockaddr_storage *src, socklen_t srclen,
                        const uint8_t *data, size_t len, net_rx_fn *fn, void *arg);

/* udp.c: -errno to a BFTKV code at the transport's edge. */
int net_udp_errno_code(int err);

/* udp_uring.c. open returns 0, BFTKV_E_UNSUPPORTED with a reason in why (the
 * kernel lacks or forbids what we need), or another code. */
int net_udp_uring_open(struct net_udp *u, char *why, size_t why_cap);
void net_udp_uring_close(struct net_udp *u);
int net_udp_uring_send(struct net_udp *u);
int net_udp_uring_reclaim(struct net_udp *u, int wait_ms);
int net_udp_uring_poll(struct net_udp *u, int timeout_ms, net_rx_fn *fn, void *arg);

/* udp_mmsg.c */
int net_udp_mmsg_open(struct net_udp *u);
void net_udp_mmsg_close(struct net_udp *u);
int net_udp_mmsg_send(struct net_udp *u);
int net_udp_mmsg_poll(struct net_udp *u, int timeout_ms, net_rx_fn *fn, void *arg);

#endif /* BFTKV_NET_UDP_INTERNAL_H */
