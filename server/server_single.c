/* The single-thread layout (config `threads single`, server/server.h): one thread
 * runs every stage in turn,
 *
 *     timers -> poll (each datagram: framing, admin, address book, engine step,
 *     outbox queued on the transport) -> one flush for the whole batch
 *
 * so everything the engine produced while handling one batch of received
 * datagrams leaves in as few datagrams as coalescing allows. Right for a small
 * machine, where threads would only contend for the same cores.
 */
#include <pthread.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/log.h"
#include "server/server_internal.h"

static void single_out_replicas(struct server *s, uint64_t replicas, const uint8_t *msg, size_t len)
{
    while (replicas != 0) {
        unsigned r = (unsigned)__builtin_ctzll(replicas);
        replicas &= replicas - 1u;
        int rc = net_udp_queue(s->udp, &s->replica_addr[r], s->replica_alen[r], msg, len);
        if (rc != 0)
            log_debug("send to replica %u: %s", r, bftkv_strerror(rc));
    }
}

static void single_out_addr(struct server *s, const struct sockaddr_storage *addr, socklen_t alen,
                            const uint8_t *msg, size_t len)
{
    int rc = net_udp_queue(s->udp, addr, alen, msg, len);
    if (rc != 0)
        log_debug("send to a client: %s", bftkv_strerror(rc));
}

static void single_rx(void *arg, const struct sockaddr_storage *src, socklen_t srclen, const uint8_t *data,
                      size_t len)
{
    struct server *s = arg;
    server_count(s, SERVER_CTR_datagrams_received, 1);
    server_datagram_step(s, src, srclen, data, len);
}

static void *single_main(void *arg)
{
    struct server *s = arg;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        int wait_ms = server_timers_run(s);
        if (net_udp_pending(s->udp) > 0)
            wait_ms = 0; /* a tick produced messages: send them first */
        if (wait_ms > 0)
            server_clock_stale(s); /* the poll may wait: the first message reads the clock */
        int got = net_udp_poll(s->udp, wait_ms, single_rx, s);
        if (got < 0) {
            log_error("receive failed: %s", bftkv_strerror(got));
            atomic_store_explicit(&s->failed, true, memory_order_release);
            break;
        }
        if (net_udp_pending(s->udp) > 0) {
            /* Nothing ran since the last step's clock read but the poll's
             * return: that read starts the flush. */
            uint64_t t0 = server_clock_now(s);
            int rc = net_udp_flush(s->udp);
            if (rc < 0)
                log_warn("flush failed: %s", bftkv_strerror(rc));
            server_count(s, SERVER_CTR_flushes, 1);
            server_hist_record(s, SERVER_STAGE_FLUSH, 0, (int64_t)(server_clock_read(s) - t0));
        }
    }
    return NULL;
}

int server_single_start(struct server *s)
{
    s->out_replicas = single_out_replicas;
    s->out_addr = single_out_addr;
    if (pthread_create(&s->single_thread, NULL, single_main, s) != 0)
        return BFTKV_E_IO;
    pthread_setname_np(s->single_thread, "bftkv-replica");
    return 0;
}

void server_single_join(struct server *s)
{
    pthread_join(s->single_thread, NULL);
}
