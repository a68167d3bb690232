/* The cluster configuration file's grammar (include/bftkv/config.h states it,
 * docs/config.md documents every directive).
 *
 * The parser reads the text line by line into a struct bftkv_config whose tuning
 * fields start at the engine's defaults. Each line is checked on its own as it is
 * read: syntax, ranges, duplicates. What needs the whole file (every replica id
 * present, f against n, distinct addresses and keys, the log window against the
 * checkpoint interval) is cluster/config_check.c's, still naming the line to blame.
 * The first error stops the parse: one precise message beats a cascade. Nothing
 * here prints; messages go to the caller's buffer.
 *
 * Directives live in one table (name, handler, field, range), so adding one is
 * one line there plus its documentation.
 */
#include "cluster/cluster.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>

#include "bftkv/errors.h"
#include "common/assert.h"
#include "common/errbuf.h"
#include "engine/pbft.h"
#include "cluster/config_internal.h"

#define CONFIG_TOKENS_MAX 8u

struct directive;
typedef int (*directive_fn)(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok);

struct directive {
    const char *name;
    directive_fn handle;
    size_t offset;  /* field of struct bftkv_config for the generic handlers */
    uint8_t width;  /* its size: 2 or 4 bytes */
    uint32_t min;
    uint32_t max;
    bool once;
};

/* ---- Messages ------------------------------------------------------------------- */

int config_fail(struct config_parser *p, uint32_t line, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return BFTKV_E_CONFIG;
    char msg[BFTKV_CONFIG_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(p->err, p->errlen, "%s:%u: %s", p->name, line, msg);
    else
        snprintf(p->err, p->errlen, "%s: %s", p->name, msg);
    return BFTKV_E_CONFIG;
}

/* ---- Values ----------------------------------------------------------------------- */

/* Decimal digits only (no sign, no spaces); false on anything else or overflow. */
static bool parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10u)
            return false;
        v = v * 10u + d;
    }
    *out = v;
    return true;
}

/* A byte count: digits with an optional K, M or G suffix (powers of 1024). */
static bool parse_size(const char *s, uint64_t *out)
{
    char digits[24];
    size_t len = strlen(s);
    uint64_t mul = 1;
    if (len > 0) {
        switch (s[len - 1]) {
        case 'k': case 'K': mul = 1024u; break;
        case 'm': case 'M': mul = 1024u * 1024u; break;
        case 'g': case 'G': mul = 1024u * 1024u * 1024u; break;
        default: break;
        }
    }
    if (mul > 1)
        len--;
    if (len == 0 || len >= sizeof digits)
        return false;
    memcpy(digits, s, len);
    digits[len] = '\0';
    uint64_t v;
    if (!parse_u64(digits, &v) || v > UINT64_MAX / mul)
        return false;
    *out = v * mul;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool config_hex_decode(const char *s, size_t len, uint8_t out[32])
{
    if (len != 64)
        return false;
    for (size_t i = 0; i < 32; i++) {
        int hi = hex_digit(s[2 * i]), lo = hex_digit(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

void config_hex_encode(char out[65], const uint8_t in[32])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15u];
    }
    out[64] = '\0';
}

/* A number of the directive's range, with the message naming both. */
static int value_number(struct config_parser *p, const struct directive *d, const char *s, bool size, uint32_t *out)
{
    uint64_t v;
    if (!(size ? parse_size(s, &v) : parse_u64(s, &v)))
        return config_fail(p, p->line, "bad number '%s' for %s (expected %s%u..%u)", s, d->name,
                    size ? "bytes, with an optional K/M/G suffix, " : "", d->min, d->max);
    if (v < d->min || v > d->max)
        return config_fail(p, p->line, "%s %s out of range (%u..%u)", d->name, s, d->min, d->max);
    *out = (uint32_t)v;
    return 0;
}

static void field_store(struct bftkv_config *cfg, const struct directive *d, uint32_t v)
{
    uint8_t *at = (uint8_t *)cfg + d->offset;
    if (d->width == 2) {
        uint16_t v16 = (uint16_t)v;
        memcpy(at, &v16, sizeof v16);
    } else {
        BFTKV_ASSERT(d->width == 4);
        memcpy(at, &v, sizeof v);
    }
}

static int want_one_value(struct config_parser *p, const struct directive *d, unsigned ntok)
{
    if (ntok != 2)
        return config_fail(p, p->line, "'%s' takes one value, got %u", d->name, ntok - 1u);
    return 0;
}

/* ---- Generic directives ---------------------------------------------------------- */

/* The directive's one value, a number (size: a byte count) in its range, into its field. */
static int number_store(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok, bool size)
{
    uint32_t v = 0;
    int rc = want_one_value(p, d, ntok);
    rc = rc ? rc : value_number(p, d, tok[1], size, &v);
    if (rc == 0)
        field_store(p->cfg, d, v);
    return rc;
}

static int dir_number(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    return number_store(p, d, tok, ntok, false);
}

static int dir_size(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    return number_store(p, d, tok, ntok, true);
}

static int dir_onoff(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    if (rc)
        return rc;
    bool v;
    if (strcmp(tok[1], "on") == 0)
        v = true;
    else if (strcmp(tok[1], "off") == 0)
        v = false;
    else
        return config_fail(p, p->line, "%s takes 'on' or 'off', not '%s'", d->name, tok[1]);
    *(bool *)((uint8_t *)p->cfg + d->offset) = v;
    return 0;
}

static int dir_store_shards(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = dir_number(p, d, tok, ntok);
    uint32_t v = p->cfg->store_shards;
    if (rc == 0 && (v & (v - 1u)) != 0)
        rc = config_fail(p, p->line, "store_shards %u is not a power of two", v);
    return rc;
}

/* ---- The group and its members --------------------------------------------------- */

static int dir_group(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = dir_number(p, d, tok, ntok);
    if (rc == 0 && p->block_line != 0)
        rc = config_fail(p, p->line, "'group' must come before the group's f and replica lines (line %u)",
                    p->block_line);
    return rc;
}

static int dir_f(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = dir_number(p, d, tok, ntok);
    if (rc == 0 && p->block_line == 0)
        p->block_line = p->line;
    return rc;
}

/* x25519=HEX ed25519=HEX, in either order, each once. */
static int parse_keys(struct config_parser *p, char **tok, unsigned ntok, uint8_t x[32], uint8_t ed[32])
{
    bool have_x = false, have_ed = false;
    for (unsigned i = 0; i < ntok; i++) {
        const char *t = tok[i];
        const char *which;
        uint8_t *dst;
        bool *have;
        if (strncmp(t, "x25519=", 7) == 0) {
            which = "x25519", dst = x, have = &have_x, t += 7;
        } else if (strncmp(t, "ed25519=", 8) == 0) {
            which = "ed25519", dst = ed, have = &have_ed, t += 8;
        } else {
            return config_fail(p, p->line, "unknown attribute '%s' (expected x25519=HEX and ed25519=HEX)", t);
        }
        if (*have)
            return config_fail(p, p->line, "%s given twice", which);
        if (!config_hex_decode(t, strlen(t), dst))
            return config_fail(p, p->line, "bad hex key for %s (expected 64 hex digits, got %zu characters)", which,
                        strlen(t));
        *have = true;
    }
    if (!have_x || !have_ed)
        return config_fail(p, p->line, "missing %s=HEX", have_x ? "ed25519" : "x25519");
    return 0;
}

static bool host_name_valid(const char *h)
{
    size_t len = strlen(h);
    if (len == 0 || len > BFTKV_CONFIG_HOST_MAX || h[0] == '.' || h[0] == '-')
        return false;
    for (const char *c = h; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                  *c == '-' || *c == '_';
        if (!ok)
            return false;
    }
    return true;
}

bool config_host_valid(const char *host)
{
    size_t len = strlen(host);
    uint8_t bin[16];
    if (len == 0 || len > BFTKV_CONFIG_HOST_MAX)
        return false;
    if (strchr(host, ':') != NULL)
        return inet_pton(AF_INET6, host, bin) == 1;
    if (strspn(host, "0123456789.") == len)
        return inet_pton(AF_INET, host, bin) == 1;
    return host_name_valid(host);
}

/* HOST:PORT or [IPV6]:PORT into the replica's host and port. */
int config_address_parse(struct config_parser *p, const char *s, char host_out[BFTKV_CONFIG_HOST_MAX + 1],
                         uint16_t *port_out)
{
    const char *host = s, *colon;
    size_t hlen;
    bool v6 = false;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return config_fail(p, p->line, "bad address '%s' (expected [IPV6]:PORT)", s);
        host = s + 1, hlen = (size_t)(close - host), colon = close + 1, v6 = true;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return config_fail(p, p->line, "bad address '%s' (expected HOST:PORT)", s);
        if (memchr(s, ':', (size_t)(colon - s)) != NULL)
            return config_fail(p, p->line, "bad address '%s' (an IPv6 address goes in brackets: [::1]:7000)", s);
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen > BFTKV_CONFIG_HOST_MAX)
        return config_fail(p, p->line, "bad address '%s' (host name empty or longer than %u)", s,
                           BFTKV_CONFIG_HOST_MAX);
    memcpy(host_out, host, hlen);
    host_out[hlen] = '\0';

    uint8_t bin[16];
    if (v6) {
        if (inet_pton(AF_INET6, host_out, bin) != 1)
            return config_fail(p, p->line, "bad IPv6 address '%s'", host_out);
    } else if (strspn(host_out, "0123456789.") == hlen) {
        if (inet_pton(AF_INET, host_out, bin) != 1)
            return config_fail(p, p->line, "bad IPv4 address '%s'", host_out);
    } else if (!host_name_valid(host_out)) {
        return config_fail(p, p->line, "bad host name '%s'", host_out);
    }

    uint64_t port;
    if (!parse_u64(colon + 1, &port) || port < 1 || port > 65535)
        return config_fail(p, p->line, "bad port '%s' (expected 1..65535)", colon + 1);
    *port_out = (uint16_t)port;
    return 0;
}

/* The words of a replica or client line: as many as usage shows, the first
 * after the directive an id below max. */
static int member_id(struct config_parser *p, char **tok, unsigned ntok, const char *usage, unsigned words,
                     uint32_t max, uint16_t *id)
{
    if (ntok != words)
        return config_fail(p, p->line, "expected: %s", usage);
    uint64_t v;
    if (!parse_u64(tok[1], &v) || v >= max)
        return config_fail(p, p->line, "bad %s id '%s' (expected 0..%u)", tok[0], tok[1], max - 1u);
    *id = (uint16_t)v;
    return 0;
}

static int dir_replica(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    (void)d;
    uint16_t id;
    int rc = member_id(p, tok, ntok, "replica ID HOST:PORT x25519=HEX ed25519=HEX", 5, BFTKV_REPLICAS_MAX, &id);
    if (rc)
        return rc;
    struct bftkv_config_replica *r = &p->cfg->replica[id];
    if (r->line != 0)
        return config_fail(p, p->line, "replica %u defined twice (first at line %u)", id, r->line);
    rc = config_address_parse(p, tok[2], r->host, &r->port);
    rc = rc ? rc : parse_keys(p, tok + 3, 2, r->x25519, r->ed25519);
    if (rc)
        return rc;
    r->line = p->line;
    p->cfg->n++;
    if (p->block_line == 0)
        p->block_line = p->line;
    return 0;
}

static int dir_client(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    (void)d;
    uint16_t id;
    int rc = member_id(p, tok, ntok, "client ID x25519=HEX ed25519=HEX", 4, BFTKV_CLIENTS_MAX, &id);
    if (rc)
        return rc;
    struct bftkv_config_client *c = &p->cfg->client[id];
    if (c->allowed)
        return config_fail(p, p->line, "client %u defined twice (first at line %u)", id, c->line);
    rc = parse_keys(p, tok + 2, 2, c->x25519, c->ed25519);
    if (rc)
        return rc;
    c->allowed = true;
    c->line = p->line;
    p->cfg->clients_allowed++;
    if (id + 1u > p->cfg->clients)
        p->cfg->clients = (uint16_t)(id + 1u);
    return 0;
}

/* admin_client ID: a client (of a client line, checked once the file is read)
 * that may change a replica's settings at run time. */
static int dir_admin_client(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    (void)d;
    uint16_t id;
    int rc = member_id(p, tok, ntok, "admin_client ID", 2, BFTKV_CLIENTS_MAX, &id);
    if (rc)
        return rc;
    struct bftkv_config_client *c = &p->cfg->client[id];
    if (c->admin_line != 0)
        return config_fail(p, p->line, "admin_client %u given twice (first at line %u)", id, c->admin_line);
    c->admin_line = p->line;
    return 0;
}

/* ---- Paths and enumerations -------------------------------------------------------- */

/* v joined to the file's directory unless absolute, into out
 * (BFTKV_CONFIG_PATH_MAX + 1 bytes). */
static int path_join(struct config_parser *p, const struct directive *d, const char *v, char *out)
{
    size_t vlen = strlen(v);
    while (vlen > 1 && v[vlen - 1] == '/')
        vlen--; /* "keys/" and "keys" are the same directory */
    size_t cap = BFTKV_CONFIG_PATH_MAX + 1u;
    int len;
    if (v[0] == '/' || p->base_dir[0] == '\0')
        len = snprintf(out, cap, "%.*s", (int)vlen, v);
    else if (strcmp(p->base_dir, "/") == 0)
        len = snprintf(out, cap, "/%.*s", (int)vlen, v);
    else
        len = snprintf(out, cap, "%s/%.*s", p->base_dir, (int)vlen, v);
    if (len < 0 || (size_t)len >= cap)
        return config_fail(p, p->line, "%s path longer than %u bytes", d->name, BFTKV_CONFIG_PATH_MAX);
    return 0;
}

/* A directory path (key_dir, data_dir), relative to the file's directory. */
static int dir_path(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    if (rc)
        return rc;
    char *out = strcmp(d->name, "key_dir") == 0 ? p->cfg->key_dir : p->cfg->data_dir;
    return path_join(p, d, tok[1], out);
}

/* deployment_map PATH: the signed map, read and verified when the file is
 * loaded (cluster/deployment.c), not by the parser. */
static int dir_deployment_map(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    return rc ? rc : path_join(p, d, tok[1], p->cfg->deployment_map);
}

/* deployment_seeds HOST:PORT[,HOST:PORT...]: nodes a client asks for the map
 * (client/client_discover.c), in the order given. */
static int dir_deployment_seeds(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    for (char *s = tok[1], *next; rc == 0 && s != NULL; s = next) {
        next = strchr(s, ',');
        if (next != NULL)
            *next++ = '\0';
        if (p->cfg->seeds == BFTKV_CONFIG_SEEDS_MAX)
            return config_fail(p, p->line, "deployment_seeds: more than %u addresses", BFTKV_CONFIG_SEEDS_MAX);
        rc = config_address_parse(p, s, p->cfg->seed[p->cfg->seeds].host, &p->cfg->seed[p->cfg->seeds].port);
        p->cfg->seed[p->cfg->seeds++].line = p->line;
    }
    return rc;
}

/* map_cache PATH: where a discovering client keeps the last map it accepted. */
static int dir_map_cache(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    return rc ? rc : path_join(p, d, tok[1], p->cfg->map_cache);
}

/* admin_pub HEX (64 hex digits) or admin_pub PATH (an admin.pub file, read
 * with the map). */
static int dir_admin_pub(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    if (rc)
        return rc;
    if (strlen(tok[1]) == 64 && config_hex_decode(tok[1], 64, p->cfg->admin_pub)) {
        p->cfg->admin_pub_set = true;
        return 0;
    }
    return path_join(p, d, tok[1], p->cfg->admin_pub_path);
}

static const char *const threads_names[] = {
    [BFTKV_CONFIG_THREADS_SINGLE] = "single",
    [BFTKV_CONFIG_THREADS_STAGED] = "staged",
};

static const char *const log_level_names[] = {
    [BFTKV_CONFIG_LOG_ERROR] = "error",
    [BFTKV_CONFIG_LOG_WARN] = "warn",
    [BFTKV_CONFIG_LOG_INFO] = "info",
    [BFTKV_CONFIG_LOG_DEBUG] = "debug",
};

static const char *const durability_names[] = {
    [BFTKV_CONFIG_DURABILITY_NONE] = "none",
    [BFTKV_CONFIG_DURABILITY_ASYNC] = "async",
    [BFTKV_CONFIG_DURABILITY_SYNC] = "sync",
};

const char *config_role_name(enum bftkv_config_role role)
{
    return role == BFTKV_CONFIG_REPLICA ? "replica" : "client";
}

const char *bftkv_config_threads_name(enum bftkv_config_threads t)
{
    return (unsigned)t < sizeof threads_names / sizeof threads_names[0] ? threads_names[t] : "?";
}

const char *bftkv_config_log_level_name(enum bftkv_config_log_level l)
{
    return (unsigned)l < sizeof log_level_names / sizeof log_level_names[0] ? log_level_names[l] : "?";
}

const char *bftkv_config_durability_name(enum bftkv_config_durability d)
{
    return (unsigned)d < sizeof durability_names / sizeof durability_names[0] ? durability_names[d] : "?";
}

static int dir_threads(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    (void)d;
    static const char usage[] = "expected: threads single, or threads staged [auth_workers=N]";
    if (ntok < 2 || ntok > 3)
        return config_fail(p, p->line, "%s", usage);
    if (strcmp(tok[1], "single") == 0) {
        if (ntok != 2)
            return config_fail(p, p->line, "threads single takes no options (auth_workers is for 'staged')");
        p->cfg->threads = BFTKV_CONFIG_THREADS_SINGLE;
        p->cfg->auth_workers = 1;
        return 0;
    }
    if (strcmp(tok[1], "staged") != 0)
        return config_fail(p, p->line, "unknown thread layout '%s' (%s)", tok[1], usage);
    uint64_t w = 1;
    if (ntok == 3) {
        if (strncmp(tok[2], "auth_workers=", 13) != 0)
            return config_fail(p, p->line, "unknown option '%s' (%s)", tok[2], usage);
        if (!parse_u64(tok[2] + 13, &w) || w < 1 || w > BFTKV_CONFIG_AUTH_WORKERS_MAX)
            return config_fail(p, p->line, "bad auth_workers '%s' (expected 1..%u)", tok[2] + 13,
                        BFTKV_CONFIG_AUTH_WORKERS_MAX);
    }
    p->cfg->threads = BFTKV_CONFIG_THREADS_STAGED;
    p->cfg->auth_workers = (uint16_t)w;
    return 0;
}

static int dir_log_level(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    if (rc)
        return rc;
    for (unsigned i = 0; i < sizeof log_level_names / sizeof log_level_names[0]; i++) {
        if (strcmp(tok[1], log_level_names[i]) == 0) {
            p->cfg->log_level = (enum bftkv_config_log_level)i;
            return 0;
        }
    }
    return config_fail(p, p->line, "unknown log_level '%s' (expected error, warn, info or debug)", tok[1]);
}

/* durability none | async | sync; whether it needs a data_dir is checked once
 * the whole file is read (config_check). */
static int dir_durability(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    int rc = want_one_value(p, d, ntok);
    if (rc)
        return rc;
    for (unsigned i = 0; i < sizeof durability_names / sizeof durability_names[0]; i++) {
        if (strcmp(tok[1], durability_names[i]) == 0) {
            p->cfg->durability = (enum bftkv_config_durability)i;
            return 0;
        }
    }
    return config_fail(p, p->line, "unknown durability '%s' (expected none, async or sync)", tok[1]);
}

static int dir_metrics_listen(struct config_parser *p, const struct directive *d, char **tok, unsigned ntok)
{
    (void)d;
    return config_metrics_listen(p, tok, ntok);
}

/* ---- The table ---------------------------------------------------------------------- */

#define FIELD(f) offsetof(struct bftkv_config, f), (uint8_t)sizeof(((struct bftkv_config *)0)->f)
#define NOFIELD 0, 0

static const struct directive directives[D_COUNT] = {
    [D_GROUP] = {"group", dir_group, FIELD(group), 0, UINT16_MAX, true},
    [D_F] = {"f", dir_f, FIELD(f), 0, BFTKV_FAULTS_MAX, true},
    [D_REPLICA] = {"replica", dir_replica, NOFIELD, 0, 0, false},
    [D_CLIENT] = {"client", dir_client, NOFIELD, 0, 0, false},
    [D_KEY_DIR] = {"key_dir", dir_path, NOFIELD, 0, 0, true},
    [D_BATCH_MAX_REQUESTS] = {"batch_max_requests", dir_number, FIELD(batch_max_requests), 1,
                              BFTKV_BATCH_REQUESTS_MAX, true},
    [D_BATCH_MAX_BYTES] = {"batch_max_bytes", dir_size, FIELD(batch_max_bytes), 1, BFTKV_BATCH_BYTES_MAX, true},
    [D_WINDOW] = {"window", dir_number, FIELD(window), 1, BFTKV_WINDOW_MAX, true},
    [D_CHECKPOINT_INTERVAL] = {"checkpoint_interval", dir_number, FIELD(checkpoint_interval), 1,
                               BFTKV_CHECKPOINT_INTERVAL_MAX, true},
    [D_LOG_WINDOW] = {"log_window", dir_number, FIELD(log_window), 2, BFTKV_LOG_WINDOW_MAX, true},
    [D_REQUEST_TIMEOUT_MS] = {"request_timeout_ms", dir_number, FIELD(request_timeout_ms), 1,
                              BFTKV_CONFIG_TIMEOUT_MS_MAX, true},
    [D_RETRANSMIT_MS] = {"retransmit_ms", dir_number, FIELD(retransmit_ms), 1, BFTKV_CONFIG_TIMEOUT_MS_MAX, true},
    [D_CLIENT_LANES] = {"client_lanes", dir_number, FIELD(client_lanes), 1, PBFT_LANES_MAX, true},
    [D_READONLY_FAST_PATH] = {"readonly_fast_path", dir_onoff, FIELD(readonly_fast_path), 0, 1, true},
    [D_CLIENT_TIMEOUT_MS] = {"client_timeout_ms", dir_number, FIELD(client_timeout_ms), 1,
                             BFTKV_CONFIG_TIMEOUT_MS_MAX, true},
    [D_THREADS] = {"threads", dir_threads, NOFIELD, 0, 0, true},
    [D_SNAPSHOT_LOG_BYTES] = {"snapshot_log_bytes", dir_size, FIELD(snapshot_log_bytes),
                              BFTKV_CONFIG_SNAPSHOT_LOG_MIN, BFTKV_CONFIG_SNAPSHOT_LOG_MAX, true},
    [D_SOCKET_RCVBUF] = {"socket_rcvbuf", dir_size, FIELD(socket_rcvbuf), BFTKV_CONFIG_SOCKET_BUFFER_MIN,
                         BFTKV_CONFIG_SOCKET_BUFFER_MAX, true},
    [D_SOCKET_SNDBUF] = {"socket_sndbuf", dir_size, FIELD(socket_sndbuf), BFTKV_CONFIG_SOCKET_BUFFER_MIN,
                         BFTKV_CONFIG_SOCKET_BUFFER_MAX, true},
    [D_STORE_SHARDS] = {"store_shards", dir_store_shards, FIELD(store_shards), 1, BFTKV_STORE_SHARDS_MAX, true},
    [D_TEST_MODES] = {"test_modes", dir_onoff, FIELD(test_modes), 0, 1, true},
    [D_LOG_LEVEL] = {"log_level", dir_log_level, NOFIELD, 0, 0, true},
    [D_DATA_DIR] = {"data_dir", dir_path, NOFIELD, 0, 0, true},
    [D_DURABILITY] = {"durability", dir_durability, NOFIELD, 0, 0, true},
    [D_DEPLOYMENT_MAP] = {"deployment_map", dir_deployment_map, NOFIELD, 0, 0, true},
    [D_ADMIN_PUB] = {"admin_pub", dir_admin_pub, NOFIELD, 0, 0, true},
    [D_PROTOCOL_THREADS] = {"protocol_threads", dir_number, FIELD(protocol_threads), 1,
                            BFTKV_CONFIG_PROTOCOL_THREADS_MAX, true},
    [D_METRICS_LISTEN] = {"metrics_listen", dir_metrics_listen, NOFIELD, 0, 0, false},
    [D_ADMIN_CLIENT] = {"admin_client", dir_admin_client, NOFIELD, 0, 0, false},
    [D_DEPLOYMENT_SEEDS] = {"deployment_seeds", dir_deployment_seeds, NOFIELD, 0, 0, true},
    [D_MAP_CACHE] = {"map_cache", dir_map_cache, NOFIELD, 0, 0, true},
};

/* ---- Lines --------------------------------------------------------------------------- */

/* Split line (modified in place) into words; a '#' starts a comment. */
static int line_split(struct config_parser *p, char *line, char **tok, unsigned *ntok)
{
    char *hash = strchr(line, '#');
    if (hash != NULL)
        *hash = '\0';
    unsigned n = 0;
    char *s = line;
    for (;;) {
        s += strspn(s, " \t");
        if (*s == '\0')
            break;
        if (n == CONFIG_TOKENS_MAX)
            return config_fail(p, p->line, "too many words (a directive has at most %u)", CONFIG_TOKENS_MAX);
        tok[n++] = s;
        s += strcspn(s, " \t");
        if (*s != '\0')
            *s++ = '\0';
    }
    *ntok = n;
    return 0;
}

static int line_handle(struct config_parser *p, char *line, size_t len)
{
    if (memchr(line, '\0', len) != NULL)
        return config_fail(p, p->line, "NUL byte in the line (is this a text file?)");
    char *tok[CONFIG_TOKENS_MAX];
    unsigned ntok = 0;
    int rc = line_split(p, line, tok, &ntok);
    if (rc || ntok == 0)
        return rc;
    for (unsigned i = 0; i < D_COUNT; i++) {
        const struct directive *d = &directives[i];
        if (strcmp(tok[0], d->name) != 0)
            continue;
        if (d->once && p->seen[i] != 0)
            return config_fail(p, p->line, "'%s' given twice (first at line %u)", d->name, p->seen[i]);
        rc = d->handle(p, d, tok, ntok);
        if (rc == 0)
            p->seen[i] = p->line;
        return rc;
    }
    return config_fail(p, p->line, "unknown directive '%s'", tok[0]);
}

/* ---- Parse, new, free ---------------------------------------------------------------- */

_Static_assert(BFTKV_CONFIG_CLIENT_LANES_DEFAULT >= 1 && BFTKV_CONFIG_CLIENT_LANES_DEFAULT <= PBFT_LANES_MAX,
               "the default client_lanes is in its range");

static void config_defaults(struct bftkv_config *cfg)
{
    struct pbft_replica_config r;
    struct pbft_client_config c;
    memset(&r, 0, sizeof r);
    memset(&c, 0, sizeof c);
    pbft_replica_config_defaults(&r);
    pbft_client_config_defaults(&c);
    config_tuning_from_engine(cfg, &r);
    cfg->retransmit_ms = (uint32_t)(c.retransmit_timeout_ns / 1000000u);
    cfg->client_lanes = BFTKV_CONFIG_CLIENT_LANES_DEFAULT; /* the engine's default is 1 (the simulator's) */
    cfg->readonly_fast_path = c.readonly_fast_path;
    cfg->client_timeout_ms = BFTKV_CONFIG_CLIENT_TIMEOUT_MS_DEFAULT;
    cfg->threads = BFTKV_CONFIG_THREADS_SINGLE;
    cfg->auth_workers = 1;
    cfg->socket_rcvbuf = BFTKV_CONFIG_SOCKET_BUFFER_DEFAULT;
    cfg->snapshot_log_bytes = BFTKV_CONFIG_SNAPSHOT_LOG_DEFAULT;
    cfg->socket_sndbuf = BFTKV_CONFIG_SOCKET_BUFFER_DEFAULT;
    cfg->store_shards = BFTKV_STORE_SHARDS_DEFAULT;
    cfg->test_modes = false;
    cfg->log_level = BFTKV_CONFIG_LOG_INFO;
    cfg->durability = BFTKV_CONFIG_DURABILITY_NONE; /* unless a durability line says otherwise */
    cfg->protocol_threads = 1;
}

struct bftkv_config *bftkv_config_new(void)
{
    struct bftkv_config *cfg = calloc(1, sizeof *cfg);
    if (cfg != NULL)
        config_defaults(cfg);
    return cfg;
}

void bftkv_config_free(struct bftkv_config *cfg)
{
    free(cfg);
}

int config_parse_text(const char *text, size_t len, const char *name, const char *base_dir,
                      struct bftkv_config **out, char *err, size_t errlen)
{
    struct config_parser p;
    memset(&p, 0, sizeof p);
    p.name = name, p.base_dir = base_dir, p.err = err, p.errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len > BFTKV_CONFIG_FILE_MAX)
        return config_fail(&p, 0, "file larger than %u bytes", BFTKV_CONFIG_FILE_MAX);

    p.cfg = bftkv_config_new();
    if (p.cfg == NULL) {
        errbuf_put(err, errlen, "%s: out of memory", name);
        return BFTKV_E_NOMEM;
    }
    snprintf(p.cfg->name, sizeof p.cfg->name, "%s", name);

    char buf[BFTKV_CONFIG_LINE_MAX + 1];
    int rc = 0;
    size_t pos = 0;
    while (rc == 0 && pos < len) {
        p.line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t llen = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        size_t next = pos + llen + (nl != NULL ? 1u : 0u);
        if (llen > 0 && text[pos + llen - 1] == '\r')
            llen--;
        if (llen > BFTKV_CONFIG_LINE_MAX) {
            rc = config_fail(&p, p.line, "line longer than %u bytes", BFTKV_CONFIG_LINE_MAX);
            break;
        }
        memcpy(buf, text + pos, llen);
        buf[llen] = '\0';
        rc = line_handle(&p, buf, llen);
        pos = next;
    }

    rc = rc ? rc : config_check(&p);
    if (rc) {
        bftkv_config_free(p.cfg);
        return rc;
    }
    *out = p.cfg;
    return 0;
}

int bftkv_config_parse(const char *text, size_t len, const char *name, struct bftkv_config **out, char *err,
                       size_t errlen)
{
    if (name == NULL)
        name = "config";
    if ((text == NULL && len > 0) || out == NULL) {
        errbuf_put(err, errlen, "%s: invalid argument", name);
        return BFTKV_E_INVAL;
    }
    *out = NULL;
    /* The directory part of name, textually: "a/b/cluster.conf" -> "a/b". */
    char base[BFTKV_CONFIG_PATH_MAX + 1];
    const char *slash = strrchr(name, '/');
    size_t blen = slash == NULL ? 0 : (slash == name ? 1u : (size_t)(slash - name));
    if (blen >= sizeof base) {
        errbuf_put(err, errlen, "%s: path too long", name);
        return BFTKV_E_CONFIG;
    }
    memcpy(base, name, blen);
    base[blen] = '\0';
    return config_parse_text(text != NULL ? text : "", len, name, base, out, err, errlen);
}

