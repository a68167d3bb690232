/* Endpoint addresses for the UDP transport (net/udp.h): parsing "host:port" as
 * the config file and the command line write it, formatting for logs and stats,
 * and comparison. Numeric addresses only: a replica group is configured by
 * address, and name resolution has no place in a server's start-up path that must
 * fail fast and clearly. An IPv6 scope may be an interface name or number.
 */
#include "net/udp.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "bftkv/errors.h"

/* A decimal port: 1-5 digits, 0..65535, nothing else. */
static int net_addr_port_parse(const char *s, uint16_t *port)
{
    uint32_t v = 0;
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 5)
            return BFTKV_E_INVAL;
        v = v * 10u + (uint32_t)(s[n] - '0');
    }
    if (n == 0 || v > 65535u)
        return BFTKV_E_INVAL;
    *port = (uint16_t)v;
    return 0;
}

static int net_addr_scope_parse(const char *s, uint32_t *scope)
{
    if (*s == '\0')
        return BFTKV_E_INVAL;
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9' && v <= UINT32_MAX; p++)
        v = v * 10u + (uint64_t)(*p - '0');
    if (*p == '\0' && v <= UINT32_MAX) {
        *scope = (uint32_t)v;
        return 0;
    }
    unsigned idx = if_nametoindex(s);
    if (idx == 0)
        return BFTKV_E_INVAL;
    *scope = idx;
    return 0;
}

int net_addr_from_host(const char *host, uint16_t port, struct sockaddr_storage *out, socklen_t *len)
{
    if (!host || !out || !len)
        return BFTKV_E_INVAL;
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *s4 = (struct sockaddr_in *)out;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    size_t n = strlen(host);
    if (n >= sizeof(buf))
        return BFTKV_E_INVAL;
    memcpy(buf, host, n + 1);
    uint32_t scope = 0;
    char *pct = strchr(buf, '%');
    if (pct) {
        *pct = '\0';
        if (net_addr_scope_parse(pct + 1, &scope) != 0)
            return BFTKV_E_INVAL;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET6, buf, &s6->sin6_addr) != 1) {
        memset(out, 0, sizeof(*out));
        return BFTKV_E_INVAL;
    }
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    s6->sin6_scope_id = scope;
    *len = sizeof(*s6);
    return 0;
}

int net_addr_parse(const char *hostport, struct sockaddr_storage *out, socklen_t *len)
{
    if (!hostport || !out || !len)
        return BFTKV_E_INVAL;
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 16];
    size_t n = strlen(hostport);
    if (n == 0 || n >= sizeof(buf))
        return BFTKV_E_INVAL;
    memcpy(buf, hostport, n + 1);

    char *host = buf;
    char *port;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (!close || close[1] != ':')
            return BFTKV_E_INVAL;
        *close = '\0';
        host = buf + 1;
        port = close + 2;
        if (!strchr(host, ':'))
            return BFTKV_E_INVAL; /* brackets are for IPv6 only */
    } else {
        char *colon = strrchr(buf, ':');
        if (!colon || strchr(buf, ':') != colon)
            return BFTKV_E_INVAL; /* IPv6 needs brackets: "[::1]:7000" */
        *colon = '\0';
        port = colon + 1;
    }
    uint16_t p;
    if (net_addr_port_parse(port, &p) != 0)
        return BFTKV_E_INVAL;
    int rc = net_addr_from_host(host, p, out, len);
    if (rc != 0)
        return rc;
    if (buf[0] != '[' && out->ss_family != AF_INET)
        return BFTKV_E_INVAL;
    return 0;
}

int net_addr_format(const struct sockaddr_storage *addr, socklen_t len, char *buf, size_t cap)
{
    if (!addr || !buf || cap == 0)
        return BFTKV_E_INVAL;
    buf[0] = '\0';
    char host[INET6_ADDRSTRLEN];
    int n;
    if (addr->ss_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)addr;
        if (!inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host)))
            return BFTKV_E_INVAL;
        n = snprintf(buf, cap, "%s:%u", host, (unsigned)ntohs(s4->sin_port));
    } else if (addr->ss_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
        if (!inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host)))
            return BFTKV_E_INVAL;
        if (s6->sin6_scope_id != 0)
            n = snprintf(buf, cap, "[%s%%%u]:%u", host, (unsigned)s6->sin6_scope_id,
                         (unsigned)ntohs(s6->sin6_port));
        else
            n = snprintf(buf, cap, "[%s]:%u", host, (unsigned)ntohs(s6->sin6_port));
    } else {
        return BFTKV_E_INVAL;
    }
    if (n < 0 || (size_t)n >= cap) {
        buf[0] = '\0';
        return BFTKV_E_BUF_TOO_SMALL;
    }
    return 0;
}

bool net_addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a, *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a, *y = (const struct sockaddr_in6 *)b;
        return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id
               && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}
