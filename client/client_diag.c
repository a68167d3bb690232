/* Why a call failed, in words (bftkv_client_last_error, include/bftkv/client.h).
 *
 * A timeout alone says nothing a user can act on. The I/O thread notes what each
 * replica was heard to say (client_io.c: authenticated replies and their
 * status, replies that failed authentication, answers to status probes); when a
 * sync call fails, its thread turns that into one line: how many replicas
 * answered during the call, which did not, and for each kind of silence its
 * likely causes. A replica that answers a probe but not the request is up and
 * accepts this client's key, so the group cannot order: fewer than a quorum of
 * q = ceil((n+f+1)/2) replicas work (TOCS 2002 §4.2: certificates need q). One
 * that answers nothing is down or unreachable, or refuses this client: a
 * replica drops a request it cannot authenticate (client id not in its
 * allow-list, or another public key for that id) without a word.
 *
 * The line is kept per thread (like errno), tagged with the handle's serial
 * number, so threads do not overwrite each other's and a closed handle's line is
 * never shown for another one.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "engine/pbft.h"
#include "client/client_internal.h"

static _Thread_local struct {
    uint64_t serial; /* the handle's; 0: nothing recorded */
    int rc;
    char msg[BFTKV_CLIENT_ERROR_MAX];
} diag_last;

/* Appends with snprintf semantics: never past the end, *off saturates at cap. */
struct diag_buf {
    char *p;
    size_t cap;
    size_t off;
};

static void diag_add(struct diag_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void diag_add(struct diag_buf *b, const char *fmt, ...)
{
    if (b->off >= b->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p + b->off, b->cap - b->off, fmt, ap);
    va_end(ap);
    if (k > 0) {
        b->off += (size_t)k < b->cap - b->off ? (size_t)k : b->cap - b->off;
    }
}

/* "replica 2" or "replicas 0, 1, 3" for the bits of mask. */
static void diag_list(struct diag_buf *b, uint64_t mask)
{
    diag_add(b, "replica%s", __builtin_popcountll(mask) > 1 ? "s" : "");
    const char *sep = " ";
    for (uint32_t j = 0; j < 64; j++) {
        if ((mask >> j) & 1u) {
            diag_add(b, "%s%u", sep, j);
            sep = ", ";
        }
    }
}

static const char *diag_op_name(uint8_t op)
{
    return op == BFTKV_OP_PUT ? "put" : op == BFTKV_OP_GET ? "get" : op == BFTKV_OP_DEL ? "del" : "call";
}

static void diag_timeout(const struct bftkv_client *c, struct diag_buf *b, uint64_t start_ns)
{
    uint64_t answered = 0, probed = 0, bad = 0, silent = 0, refused = 0;
    bool probe_sent = false;
    for (uint16_t j = 0; j < c->n; j++) {
        const struct client_heard *h = &c->heard[j];
        uint64_t bit = (uint64_t)1 << j;
        probe_sent = probe_sent || h->probe_sent_ns >= start_ns;
        if (h->reply_ns >= start_ns) {
            answered |= bit;
            refused |= h->reply_status != 0 && h->reply_status != BFTKV_E_NOT_FOUND ? bit : 0u;
        } else if (h->bad_auth_ns >= start_ns) {
            bad |= bit;
        } else if (h->probe_ns >= start_ns) {
            probed |= bit;
        } else {
            silent |= bit;
        }
    }
    uint32_t q = pbft_quorum(c->n, c->f);
    diag_add(b, "%u of %u replicas answered", __builtin_popcountll(answered), c->n);
    if (answered != 0) {
        diag_add(b, " (");
        diag_list(b, answered);
        diag_add(b, ")");
    }
    diag_add(b, "; a result needs %u matching answers, ordering needs %u working replicas", c->f + 1u, q);
    uint32_t working = (uint32_t)__builtin_popcountll(answered | probed);
    if (working < q && (probed | silent | bad) != 0) {
        diag_add(b, ", and only %u seem to work", working);
    }
    for (uint16_t j = 0; j < c->n; j++) {
        if ((refused >> j) & 1u) {
            diag_add(b, "; replica %u answered %s", j, bftkv_errname(c->heard[j].reply_status));
        }
    }
    if (probed != 0) {
        diag_add(b, "; ");
        diag_list(b, probed);
        diag_add(b, " answered a status probe but not the request (up, and accepting this client)");
    }
    if (bad != 0) {
        diag_add(b, "; ");
        diag_list(b, bad);
        diag_add(b, " sent answers that failed authentication: this config's keys are not theirs (another "
                    "cluster's config, or a wrong key file for client %u)",
                 c->id);
    }
    if (silent != 0) {
        diag_add(b, "; no answer at all from ");
        diag_list(b, silent);
        diag_add(b, ": down or unreachable, or client %u is not in their allow-list, or their public key for "
                    "client %u is not this client's key",
                 c->id, c->id);
        if (!probe_sent) {
            diag_add(b, " (no status probe went out: the call ended before the first retransmission)");
        }
    }
}

void client_diag_record(struct bftkv_client *c, uint8_t op, int rc, uint64_t start_ns)
{
    BFTKV_ASSERT(rc < 0);
    struct diag_buf b = { .p = diag_last.msg, .cap = sizeof diag_last.msg, .off = 0 };
    diag_last.msg[0] = '\0';
    diag_last.serial = c->serial;
    diag_last.rc = rc;
    const char *name = diag_op_name(op);
    switch (rc) {
    case BFTKV_E_TIMEOUT:
        diag_add(&b, "%s: no result within %llu ms: ", name, (unsigned long long)(c->timeout_ns / 1000000u));
        diag_timeout(c, &b, start_ns);
        break;
    case BFTKV_E_FULL:
        diag_add(&b, "%s: the handle's queue stayed full for %llu ms", name,
                 (unsigned long long)(c->timeout_ns / 1000000u));
        break;
    default:
        diag_add(&b, "%s: %s", name, bftkv_strerror(rc));
        break;
    }
}

void client_diag_clear(void)
{
    diag_last.serial = 0;
    diag_last.rc = 0;
    diag_last.msg[0] = '\0';
}

int bftkv_client_last_error(struct bftkv_client *c, char *buf, size_t len)
{
    if (c == NULL || (buf == NULL && len > 0)) {
        return BFTKV_E_INVAL;
    }
    for (uint32_t p = 0; c->part != NULL && p < c->parts; p++) {
        int rc = bftkv_client_last_error(c->part[p], buf, len);
        if (rc != 0 || p + 1 == c->parts)
            return rc;
    }
    bool mine = diag_last.serial == c->serial && diag_last.rc != 0;
    if (len > 0) {
        snprintf(buf, len, "%s", mine ? diag_last.msg : "");
    }
    return mine ? diag_last.rc : 0;
}
