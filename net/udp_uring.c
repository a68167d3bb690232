/* The io_uring backend of the UDP transport (net/udp.h, docs/design.md §6).
 *
 * Two rings, one per half, so that a send thread and a receive thread never share
 * a submission queue:
 *
 *   rx ring  one multishot RECVMSG with IOSQE_BUFFER_SELECT over a provided-buffer
 *            ring (group NET_UDP_BGID) of rx_count buffers. The kernel writes each
 *            datagram into a free buffer as io_uring_recvmsg_out | source address |
 *            payload and posts one CQE naming the buffer; net_udp_poll() delivers
 *            it and puts the buffer back on the ring. The kernel ends the multishot
 *            (a CQE without IORING_CQE_F_MORE) when it runs out of buffers
 *            (ENOBUFS), on error or cancellation; poll then re-arms it after the
 *            buffers it just consumed are back. The CQ holds 2 * rx_count entries:
 *            every data CQE holds a buffer until it is reaped, so at most rx_count
 *            of them plus the final one can be waiting.
 *   tx ring  one SENDMSG per datagram, all submitted by one io_uring_enter; the
 *            SQ and twice as many CQ entries as the pool has buffers, so neither
 *            can overflow. UDP sends complete inline almost always, so a flush
 *            reaps its completions right after submitting; the rest are reaped by
 *            later flushes, or waited for when the pool runs dry.
 *
 * The multishot receive runs its kernel work (the copy of each datagram into a
 * buffer) as task work of the thread that submitted it; with COOP_TASKRUN that
 * work waits for the thread's next entry into the kernel instead of interrupting
 * it, so a busy receiver takes its datagrams in batches. When another thread
 * polls, poll cancels the old receive and arms a new one from its own thread (the
 * old one may be busy elsewhere, asleep or gone); open arms the first one, so a
 * receive half opened and polled on the same thread never moves.
 *
 * Support is checked at open: io_uring_setup may fail (ENOSYS: no io_uring or a
 * seccomp filter; EPERM: sysctl kernel.io_uring_disabled or seccomp), buffer rings
 * need Linux 5.19, multishot RECVMSG 6.0 (an older kernel answers the first
 * submission with EINVAL). Each becomes BFTKV_E_UNSUPPORTED with a reason, and
 * udp.c falls back or fails.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "net/udp_internal.h"

#define NET_UDP_BGID 0            /* the provided-buffer group of the rx ring */
#define NET_UDP_TAG_RX UINT64_C(0xFFFFFFFFFFFF0001)     /* user_data of the multishot receive */
#define NET_UDP_TAG_CANCEL UINT64_C(0xFFFFFFFFFFFF0002) /* user_data of its cancel */
#define NET_UDP_RX_SQ_ENTRIES 4u

static struct __kernel_timespec net_udp_ts(int ms)
{
    struct __kernel_timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long long)(ms % 1000) * 1000000LL};
    return ts;
}

static void net_udp_why(char *why, size_t cap, const char *what, int err)
{
    const char *hint = "";
    if (err == ENOSYS)
        hint = ", kernel without io_uring or a seccomp filter";
    else if (err == EPERM && strcmp(what, "io_uring_setup") == 0)
        hint = ", sysctl kernel.io_uring_disabled or a seccomp filter";
    else if (err == EPERM)
        hint = ", a seccomp filter";
    else if (err == EINVAL)
        hint = ", kernel too old";
    snprintf(why, cap, "%s: %s%s", what, strerror(err), hint);
}

static int net_udp_ring_init(struct io_uring *ring, uint32_t sq, uint32_t cq)
{
    /* COOP_TASKRUN (Linux 5.19): completions that need the task's context (a
     * datagram for the multishot receive) do not interrupt it with an IPI; they
     * wait for its next entry into the kernel, which the TASKRUN flag prompts
     * liburing to make. A sleeping task is still woken. SUBMIT_ALL (5.18): a
     * failing SQE does not stop the rest of the batch. Older kernels get fewer
     * flags. */
    static const unsigned flag_sets[] = {
        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_CQSIZE,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]) && rc == -EINVAL; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i];
        p.cq_entries = cq;
        rc = io_uring_queue_init_params(sq, ring, &p);
    }
    return rc;
}

/* ---- receive half ---------------------------------------------------------------- */

/* A free entry of the rx SQ, submitting what it holds when it is full. */
static struct io_uring_sqe *net_udp_rx_sqe(struct net_udp_uring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->rx_ring);
    if (!sqe) {
        (void)io_uring_submit(&r->rx_ring);
        sqe = io_uring_get_sqe(&r->rx_ring);
    }
    BFTKV_ASSERT(sqe != NULL); /* the rx SQ holds at most an arm and a cancel */
    return sqe;
}

static void net_udp_rx_arm(struct net_udp *u)
{
    struct net_udp_uring *r = &u->ur;
    struct io_uring_sqe *sqe = net_udp_rx_sqe(r);
    io_uring_prep_recvmsg_multishot(sqe, u->fd, &r->rx_msg, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = NET_UDP_BGID;
    io_uring_sqe_set_data64(sqe, NET_UDP_TAG_RX);
    r->armed = true;
    r->armer = pthread_self();
}

static void net_udp_rx_cancel(struct net_udp *u)
{
    struct net_udp_uring *r = &u->ur;
    struct io_uring_sqe *sqe = net_udp_rx_sqe(r);
    io_uring_prep_cancel64(sqe, NET_UDP_TAG_RX, 0);
    io_uring_sqe_set_data64(sqe, NET_UDP_TAG_CANCEL);
    r->cancelling = true;
}

/* Reap up to budget CQEs of the rx ring: deliver datagrams, give buffers back,
 * note the end of the multishot. Returns the datagrams delivered. */
static uint32_t net_udp_rx_reap(struct net_udp *u, uint32_t budget, net_rx_fn *fn, void *arg)
{
    struct net_udp_uring *r = &u->ur;
    struct io_uring *ring = &r->rx_ring;
    const int mask = io_uring_buf_ring_mask(r->br_entries);
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned seen = 0;
    int returned = 0;
    uint32_t delivered = 0;

    io_uring_for_each_cqe(ring, head, cqe)
    {
        if (seen >= budget)
            break;
        seen++;
        if (cqe->user_data == NET_UDP_TAG_CANCEL || cqe->user_data == LIBURING_UDATA_TIMEOUT)
            continue; /* the cancel's own result (the receive reports its end itself), or the
                       * timeout liburing adds to a wait on kernels without EXT_ARG */
        BFTKV_ASSERT(cqe->user_data == NET_UDP_TAG_RX);
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            r->armed = false;
            r->cancelling = false;
        }
        if (cqe->res < 0) {
            if (cqe->res == -ENOBUFS)
                net_udp_count(&u->stats.rx_nobufs, 1);
            else if (cqe->res != -ECANCELED)
                net_udp_count(&u->stats.rx_errors, 1);
        }
        if (!(cqe->flags & IORING_CQE_F_BUFFER))
            continue;
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        BFTKV_ASSERT(bid < u->rx_count); /* the kernel hands out only the ids we gave it */
        uint8_t *buf = u->rx_mem + (size_t)bid * u->rx_stride;
        if (cqe->res >= 0) {
            struct io_uring_recvmsg_out *o = io_uring_recvmsg_validate(buf, cqe->res, &r->rx_msg);
            if (!o) {
                net_udp_count(&u->stats.rx_errors, 1);
            } else if (o->flags & MSG_TRUNC) {
                net_udp_count(&u->stats.rx_truncated, 1);
            } else {
                socklen_t namelen = o->namelen <= sizeof(struct sockaddr_storage)
                                        ? (socklen_t)o->namelen
                                        : (socklen_t)sizeof(struct sockaddr_storage);
                const uint8_t *payload = io_uring_recvmsg_payload(o, &r->rx_msg);
                size_t len = io_uring_recvmsg_payload_length(o, cqe->res, &r->rx_msg);
                net_udp_rx_deliver(u, (const struct sockaddr_storage *)io_uring_recvmsg_name(o), namelen,
                                   payload, len, fn, arg);
                delivered++;
            }
        }
        io_uring_buf_ring_add(r->br, buf, u->rx_stride, (unsigned short)bid, mask, returned++);
    }
    if (returned > 0)
        io_uring_buf_ring_advance(r->br, returned);
    io_uring_cq_advance(ring, seen);
    return delivered;
}

int net_udp_uring_poll(struct net_udp *u, int timeout_ms, net_rx_fn *fn, void *arg)
{
    struct net_udp_uring *r = &u->ur;
    struct io_uring *ring = &r->rx_ring;

    if (r->armed && !r->cancelling && !pthread_equal(r->armer, pthread_self()))
        net_udp_rx_cancel(u); /* re-armed from this thread once the old one ends */
    if (!r->armed) {
        net_udp_rx_arm(u);
        net_udp_count(&u->stats.rx_rearms, 1);
    }

    struct io_uring_cqe *cqe = NULL;
    int rc;
    if (timeout_ms == 0) {
        rc = io_uring_sq_ready(ring) ? io_uring_submit(ring) : 0;
        /* Enter the kernel only when it holds completions for us: task work that
         * COOP_TASKRUN deferred (IORING_SQ_TASKRUN) or overflowed CQEs. */
        unsigned kflags = IO_URING_READ_ONCE(*ring->sq.kflags);
        if (rc >= 0 && io_uring_cq_ready(ring) == 0 && (kflags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)))
            rc = io_uring_get_events(ring);
    } else {
        struct __kernel_timespec ts = net_udp_ts(timeout_ms);
        rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, timeout_ms < 0 ? NULL : &ts, NULL);
        if (rc == -ETIME || rc == -EINTR)
            rc = 0;
    }
    if (rc < 0)
        return BFTKV_E_IO;

    uint32_t delivered = net_udp_rx_reap(u, u->rx_count, fn, arg);

    if (!r->armed) {
        /* The multishot ended (ENOBUFS, cancel, error). Its buffers are back on
         * the ring now; arm again so datagrams keep flowing between polls. */
        net_udp_rx_arm(u);
        net_udp_count(&u->stats.rx_rearms, 1);
        if (io_uring_submit(ring) < 0)
            return delivered > 0 ? (int)delivered : BFTKV_E_IO;
    }
    return (int)delivered;
}

/* ---- send half ------------------------------------------------------------------- */

static uint32_t net_udp_tx_reap(struct net_udp *u)
{
    struct net_udp_uring *r = &u->ur;
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&r->tx_ring, head, cqe)
    {
        seen++;
        if (cqe->user_data == LIBURING_UDATA_TIMEOUT)
            continue; /* liburing's own wait timeout on kernels without EXT_ARG */
        BFTKV_ASSERT(cqe->user_data < u->tx_count);
        BFTKV_ASSERT(r->tx_inflight > 0);
        net_udp_tx_complete(u, (uint32_t)cqe->user_data, cqe->res);
        r->tx_inflight--;
    }
    io_uring_cq_advance(&r->tx_ring, seen);
    return seen;
}

int net_udp_uring_reclaim(struct net_udp *u, int wait_ms)
{
    struct net_udp_uring *r = &u->ur;
    if (io_uring_sq_ready(&r->tx_ring))
        (void)io_uring_submit(&r->tx_ring); /* leftovers of a batch cut short by an error */
    if (net_udp_tx_reap(u) > 0 || r->tx_inflight == 0 || wait_ms == 0)
        return 0;
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = net_udp_ts(wait_ms);
    int rc = io_uring_wait_cqe_timeout(&r->tx_ring, &cqe, &ts);
    (void)net_udp_tx_reap(u);
    return rc == 0 ? 0 : net_udp_errno_code(rc);
}

int net_udp_uring_send(struct net_udp *u)
{
    struct net_udp_uring *r = &u->ur;
    uint32_t n = u->tx_pending;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = u->tx_order[i];
        struct net_udp_tx *t = &u->tx[idx];
        t->iov.iov_base = t->buf;
        t->iov.iov_len = t->len;
        memset(&t->mh, 0, sizeof(t->mh));
        t->mh.msg_name = &t->dst;
        t->mh.msg_namelen = t->dlen;
        t->mh.msg_iov = &t->iov;
        t->mh.msg_iovlen = 1;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->tx_ring);
        /* The SQ has tx_count entries and every buffer is in at most one SQE. */
        BFTKV_ASSERT(sqe != NULL);
        io_uring_prep_sendmsg(sqe, u->fd, &t->mh, 0);
        io_uring_sqe_set_data64(sqe, idx);
        r->tx_inflight++;
    }
    int rc = io_uring_submit(&r->tx_ring);
    (void)net_udp_tx_reap(u);
    if (rc < 0)
        return BFTKV_E_IO; /* the SQEs stay queued; reclaim submits them later */
    return (int)n;
}

/* ---- open and close -------------------------------------------------------------- */

/* Arm the receive once and see whether the kernel refuses it outright: a kernel
 * without multishot RECVMSG fails the SQE at submission, so its CQE is already
 * there when io_uring_submit returns. */
static int net_udp_rx_probe(struct net_udp *u, char *why, size_t why_cap)
{
    struct net_udp_uring *r = &u->ur;
    net_udp_rx_arm(u);
    int rc = io_uring_submit(&r->rx_ring);
    if (rc < 0) {
        net_udp_why(why, why_cap, "io_uring_enter", -rc);
        return rc == -ENOSYS || rc == -EPERM || rc == -EINVAL ? BFTKV_E_UNSUPPORTED : BFTKV_E_IO;
    }
    struct io_uring_cqe *cqe;
    if (io_uring_peek_cqe(&r->rx_ring, &cqe) == 0 && cqe->user_data == NET_UDP_TAG_RX
        && !(cqe->flags & IORING_CQE_F_MORE) && cqe->res < 0) {
        int err = -cqe->res;
        io_uring_cqe_seen(&r->rx_ring, cqe);
        r->armed = false;
        net_udp_why(why, why_cap, "multishot recvmsg", err);
        return err == EINVAL || err == EOPNOTSUPP || err == EPERM ? BFTKV_E_UNSUPPORTED : BFTKV_E_IO;
    }
    return 0; /* armed; a datagram that already arrived stays in the CQ for poll */
}

int net_udp_uring_open(struct net_udp *u, char *why, size_t why_cap)
{
    struct net_udp_uring *r = &u->ur;
    int rc = net_udp_ring_init(&r->tx_ring, net_udp_pow2_at_least(u->tx_count),
                               2u * net_udp_pow2_at_least(u->tx_count));
    if (rc < 0) {
        net_udp_why(why, why_cap, "io_uring_setup", -rc);
        return rc == -ENOSYS || rc == -EPERM ? BFTKV_E_UNSUPPORTED : net_udp_errno_code(rc);
    }
    r->tx_ring_up = true;
    rc = net_udp_ring_init(&r->rx_ring, NET_UDP_RX_SQ_ENTRIES, 2u * net_udp_pow2_at_least(u->rx_count));
    if (rc < 0) {
        net_udp_why(why, why_cap, "io_uring_setup", -rc);
        return rc == -ENOSYS || rc == -EPERM ? BFTKV_E_UNSUPPORTED : net_udp_errno_code(rc);
    }
    r->rx_ring_up = true;

    /* The buffer ring: page aligned, br_entries slots of 16 bytes. */
    r->br_entries = net_udp_pow2_at_least(u->rx_count);
    long page = sysconf(_SC_PAGESIZE);
    size_t ps = page > 0 ? (size_t)page : 4096u;
    r->br_bytes = ((size_t)r->br_entries * sizeof(struct io_uring_buf) + ps - 1u) / ps * ps;
    void *br = mmap(NULL, r->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED) {
        r->br = NULL;
        net_udp_why(why, why_cap, "buffer ring memory", errno);
        return BFTKV_E_NOMEM;
    }
    r->br = br;
    io_uring_buf_ring_init(r->br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uint64_t)(uintptr_t)r->br;
    reg.ring_entries = r->br_entries;
    reg.bgid = NET_UDP_BGID;
    rc = io_uring_register_buf_ring(&r->rx_ring, &reg, 0);
    if (rc < 0) {
        net_udp_why(why, why_cap, "provided-buffer ring", -rc);
        return rc == -EINVAL || rc == -ENOSYS || rc == -EPERM ? BFTKV_E_UNSUPPORTED : net_udp_errno_code(rc);
    }
    r->buf_ring_up = true;
    const int mask = io_uring_buf_ring_mask(r->br_entries);
    for (uint32_t i = 0; i < u->rx_count; i++)
        io_uring_buf_ring_add(r->br, u->rx_mem + (size_t)i * u->rx_stride, u->rx_stride, (unsigned short)i,
                              mask, (int)i);
    io_uring_buf_ring_advance(r->br, (int)u->rx_count);

    memset(&r->rx_msg, 0, sizeof(r->rx_msg));
    r->rx_msg.msg_namelen = sizeof(struct sockaddr_storage);
    r->rx_msg.msg_controllen = 0;
    return net_udp_rx_probe(u, why, why_cap);
}

void net_udp_uring_close(struct net_udp *u)
{
    struct net_udp_uring *r = &u->ur;
    /* Let the kernel finish with our memory: sends in flight complete, the
     * receive is cancelled and reports its end. Both waits are bounded. */
    for (int i = 0; i < 8 && r->tx_ring_up && r->tx_inflight > 0; i++)
        (void)net_udp_uring_reclaim(u, NET_UDP_CLOSE_WAIT_MS / 8);
    if (r->rx_ring_up && r->armed) {
        if (!r->cancelling)
            net_udp_rx_cancel(u);
        (void)io_uring_submit(&r->rx_ring);
        for (int i = 0; i < 8 && r->armed; i++) {
            struct io_uring_cqe *cqe;
            struct __kernel_timespec ts = net_udp_ts(NET_UDP_CLOSE_WAIT_MS / 8);
            if (io_uring_wait_cqe_timeout(&r->rx_ring, &cqe, &ts) != 0)
                break;
            unsigned head;
            unsigned seen = 0;
            io_uring_for_each_cqe(&r->rx_ring, head, cqe)
            {
                if (cqe->user_data == NET_UDP_TAG_RX && !(cqe->flags & IORING_CQE_F_MORE))
                    r->armed = false;
                seen++;
            }
            io_uring_cq_advance(&r->rx_ring, seen);
        }
    }
    if (r->buf_ring_up)
        (void)io_uring_unregister_buf_ring(&r->rx_ring, NET_UDP_BGID);
    if (r->rx_ring_up)
        io_uring_queue_exit(&r->rx_ring);
    if (r->tx_ring_up)
        io_uring_queue_exit(&r->tx_ring);
    if (r->br)
        munmap(r->br, r->br_bytes);
    memset(r, 0, sizeof(*r));
}
