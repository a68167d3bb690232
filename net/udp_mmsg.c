/* The fallback backend of the UDP transport (net/udp.h): sendmmsg and recvmmsg,
 * for kernels or sandboxes where io_uring is missing or forbidden (docs/design.md §6).
 *
 * Sends are synchronous: sendmmsg copies every datagram into the kernel before it
 * returns, so a flush gives every buffer back to the pool at once. The socket is
 * blocking with SO_SNDTIMEO set by udp.c, so a full socket buffer makes a flush
 * wait (bounded) rather than drop. Receives wait in poll(2) and then drain with
 * recvmmsg(MSG_DONTWAIT) into the receive buffers, at most rx_count datagrams per
 * call.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "net/udp_internal.h"

/* Datagrams per recvmmsg/sendmmsg call: the kernel caps vlen at UIO_MAXIOV (1024). */
#define NET_UDP_MMSG_BATCH 1024u

/* How many times a flush retries a sendmmsg interrupted before it sent anything. */
#define NET_UDP_MMSG_EINTR_RETRIES 8

int net_udp_mmsg_open(struct net_udp *u)
{
    struct net_udp_mmsg *m = &u->mm;
    m->rx_mm = calloc(u->rx_count, sizeof(*m->rx_mm));
    m->rx_iov = calloc(u->rx_count, sizeof(*m->rx_iov));
    m->rx_names = calloc(u->rx_count, sizeof(*m->rx_names));
    m->tx_mm = calloc(u->tx_count, sizeof(*m->tx_mm));
    if (!m->rx_mm || !m->rx_iov || !m->rx_names || !m->tx_mm)
        return BFTKV_E_NOMEM;
    for (uint32_t i = 0; i < u->rx_count; i++) {
        m->rx_iov[i].iov_base = u->rx_mem + (size_t)i * u->rx_stride;
        m->rx_iov[i].iov_len = u->rx_payload;
        struct msghdr *h = &m->rx_mm[i].msg_hdr;
        h->msg_name = &m->rx_names[i];
        h->msg_iov = &m->rx_iov[i];
        h->msg_iovlen = 1;
    }
    return 0;
}

void net_udp_mmsg_close(struct net_udp *u)
{
    struct net_udp_mmsg *m = &u->mm;
    free(m->rx_mm);
    free(m->rx_iov);
    free(m->rx_names);
    free(m->tx_mm);
    memset(m, 0, sizeof(*m));
}

int net_udp_mmsg_send(struct net_udp *u)
{
    struct net_udp_mmsg *m = &u->mm;
    uint32_t n = u->tx_pending;
    for (uint32_t i = 0; i < n; i++) {
        struct net_udp_tx *t = &u->tx[u->tx_order[i]];
        t->iov.iov_base = t->buf;
        t->iov.iov_len = t->len;
        struct msghdr *h = &m->tx_mm[i].msg_hdr;
        memset(h, 0, sizeof(*h));
        h->msg_name = &t->dst;
        h->msg_namelen = t->dlen;
        h->msg_iov = &t->iov;
        h->msg_iovlen = 1;
        m->tx_mm[i].msg_len = 0;
    }
    /* Each pass either sends at least one datagram or fails exactly one (the
     * first unsent), so the loop ends after at most n passes plus the retries. */
    uint32_t done = 0;
    int eintr = 0;
    while (done < n) {
        uint32_t vlen = n - done < NET_UDP_MMSG_BATCH ? n - done : NET_UDP_MMSG_BATCH;
        int r = sendmmsg(u->fd, &m->tx_mm[done], vlen, 0);
        if (r > 0) {
            for (uint32_t i = done; i < done + (uint32_t)r; i++)
                net_udp_tx_complete(u, u->tx_order[i], (int)m->tx_mm[i].msg_len);
            done += (uint32_t)r;
            continue;
        }
        if (r < 0 && errno == EINTR && eintr++ < NET_UDP_MMSG_EINTR_RETRIES)
            continue;
        /* The first datagram of the batch failed (EMSGSIZE, EAGAIN after the send
         * timeout, EPERM by a firewall, ...): UDP drops it, the rest goes on. */
        net_udp_tx_complete(u, u->tx_order[done], r < 0 ? -errno : -EIO);
        done++;
    }
    return (int)n;
}

int net_udp_mmsg_poll(struct net_udp *u, int timeout_ms, net_rx_fn *fn, void *arg)
{
    struct net_udp_mmsg *m = &u->mm;
    if (timeout_ms != 0) {
        struct pollfd p = {.fd = u->fd, .events = POLLIN};
        int r = poll(&p, 1, timeout_ms < 0 ? -1 : timeout_ms);
        if (r == 0 || (r < 0 && errno == EINTR))
            return 0;
        if (r < 0)
            return BFTKV_E_IO;
    }
    uint32_t delivered = 0;
    uint32_t budget = u->rx_count;
    while (budget > 0) {
        uint32_t vlen = budget < NET_UDP_MMSG_BATCH ? budget : NET_UDP_MMSG_BATCH;
        for (uint32_t i = 0; i < vlen; i++) {
            struct msghdr *h = &m->rx_mm[i].msg_hdr;
            h->msg_namelen = sizeof(struct sockaddr_storage);
            h->msg_flags = 0;
        }
        int r = recvmmsg(u->fd, m->rx_mm, vlen, MSG_DONTWAIT, NULL);
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                net_udp_count(&u->stats.rx_errors, 1);
                if (delivered == 0)
                    return BFTKV_E_IO;
            }
            break;
        }
        for (uint32_t i = 0; i < (uint32_t)r; i++) {
            const struct msghdr *h = &m->rx_mm[i].msg_hdr;
            if (h->msg_flags & MSG_TRUNC) {
                net_udp_count(&u->stats.rx_truncated, 1);
                continue;
            }
            net_udp_rx_deliver(u, &m->rx_names[i], h->msg_namelen, m->rx_iov[i].iov_base, m->rx_mm[i].msg_len,
                               fn, arg);
            delivered++;
        }
        budget -= (uint32_t)r;
        if ((uint32_t)r < vlen)
            break; /* drained */
    }
    return (int)delivered;
}
