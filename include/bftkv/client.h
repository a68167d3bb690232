/* The bftkv client library, libbftkv: what applications link to use a cluster
 * (docs/design.md §6). Build against it with `pkg-config --cflags --libs bftkv`.
 *
 * A handle (struct bftkv_client) is one session of a client of the cluster's
 * allow-list: it reads the cluster config file, loads its secret key
 * (key_dir/client-<id>.key, mode 0600), leases lanes (see "Sessions"), binds one
 * UDP socket and runs one I/O thread that drives the PBFT
 * client (TOCS 2002 §4.1): it sends each request to the primary (a GET, with the
 * config's readonly_fast_path on, to every replica), retransmits with backoff
 * when no answer comes, and accepts a result only when f+1 replicas agree (2f+1
 * on the read-only path). Results are linearizable even when up to f replicas
 * lie.
 *
 * Operations
 *   - bftkv_put / bftkv_get / bftkv_get_alloc / bftkv_del are synchronous: they
 *     return once the replicas have agreed on the result, or with BFTKV_E_TIMEOUT
 *     after the handle's timeout.
 *   - bftkv_submit is asynchronous: it returns at once and the callback reports
 *     the result later. Many requests are in flight at a time: as many as the
 *     handle leased lanes (at most the config's client_lanes, at most 64), the rest wait in the
 *     handle's queue (bounded by queue_max: queued + in flight).
 *   - Limits are checked before anything is sent: keys are 1..BFTKV_KEY_MAX bytes
 *     (BFTKV_E_KEY_EMPTY, BFTKV_E_KEY_TOO_LARGE), values 0..BFTKV_VALUE_MAX bytes
 *     (BFTKV_E_VALUE_TOO_LARGE).
 *   - Every function returns 0 or a negative BFTKV_E_* code (bftkv/errors.h;
 *     bftkv_strerror() gives its message). A result the replicas agreed on is
 *     returned as is: BFTKV_E_NOT_FOUND for a GET or DEL of a missing key.
 *
 * Timeouts and the outcome of a write. A request that times out (BFTKV_E_TIMEOUT)
 * may still execute later: the handle keeps retransmitting it in the background
 * until the replicas answer (its lane stays busy until then) and discards that
 * late answer. Like any network store, a timed-out PUT or DEL has an unknown
 * outcome; read the key to find out.
 *
 * Threads. Every function may be called from any thread at the same time, except
 * bftkv_client_close, which must be called once, after every other call on the
 * handle has been made (calls already waiting inside the handle when close starts
 * return BFTKV_E_CANCELLED; calls that start later are undefined behaviour).
 * Inside: API calls put their request into the handle's queue (a mutex and
 * condition variables) and wake the I/O thread; the I/O thread alone touches the
 * socket and the protocol state, and copies results to the waiting caller.
 * Callbacks run on the I/O thread: they must not block (no sync call, no close;
 * a sync call made from a callback returns BFTKV_E_INVAL), and may call
 * bftkv_submit (which then never blocks: BFTKV_E_FULL when the queue is full).
 *
 * Sessions: one client id, many handles. The replicas keep one reply slot and one
 * "last timestamp" per (client id, lane) and drop a request whose timestamp is
 * not newer than the last, so two handles sending on one lane of a client id
 * would lose each other's requests. Each handle therefore LEASES the lanes it
 * uses: a contiguous run of the config's client_lanes lanes, held through lock
 * files (flock) in a per-user session directory ($BFTKV_RUNTIME_DIR, else
 * $XDG_RUNTIME_DIR/bftkv, else /tmp/bftkv-<uid>; created mode 0700, refused unless
 * owned by this user and closed to others' writes), one file per lane, named by
 * the group id, the client id, a fingerprint of the client's public keys and the
 * lane number. What is guaranteed:
 *   - Handles that share a client id and a session directory (every process of
 *     one user on one machine, by default) never use the same lane at the same
 *     time, and do not disturb each other's requests; any number of them may be
 *     open, up to client_lanes at once (one lane each).
 *   - A lease ends when its handle is closed or its process dies (the kernel
 *     drops the locks): a crashed process's lanes are free at once.
 *   - The timestamps of a handle exceed those of every earlier holder of its
 *     lanes: they start at the larger of the wall-clock time in ns and the last
 *     timestamp recorded in the lanes' files, and count up. (A crashed holder
 *     recorded only its first timestamp; it sent fewer requests than nanoseconds
 *     passed, so the wall clock covers it unless the clock is stepped back.)
 *   - The replicas send the replies of each (client id, lane) to the address of
 *     the newest request on that lane, so each handle gets the replies of the
 *     lanes it leased. Should one still get a reply for a lane it does not hold,
 *     it passes it on to the lane's holder (found in the lane's file), which
 *     checks it as any reply (it is authenticated for the client id).
 *   - Admin calls (`bftkv stats`, the status probes of a failed call, see
 *     bftkv_client_last_error) lease nothing and touch no lane.
 * Handles on DIFFERENT machines sharing a client id do not see each other's lock
 * files: they must not share lanes (give each machine a disjoint range with
 * lane_first and lane_count; each lane's replies then go to the machine that
 * uses it), or simpler, use one client id per machine.
 *
 * ABI: how this interface grows. libbftkv.so.0 keeps working for programs built
 * against an older client.h:
 *   - The structs the caller fills or the library fills (bftkv_client_options,
 *     bftkv_client_stats) begin with size_t struct_size, the size of the struct
 *     as the caller's program knows it. bftkv_client_options_init (or
 *     BFTKV_CLIENT_OPTIONS_INIT) sets it for options; the caller sets it to
 *     sizeof before bftkv_client_stats. New fields are only ever appended, so
 *     the library reads an older program's options up to its struct_size (the
 *     fields it lacks take their defaults) and fills an older program's stats
 *     up to its struct_size. A library older than the program refuses options
 *     it does not know that are not zero (BFTKV_E_UNSUPPORTED) and leaves stats
 *     fields it does not know zero, saying how much it filled in struct_size.
 *   - The config a handle is opened from is opaque (include/bftkv/config.h).
 *   - Functions are only ever added; a changed signature gets a new name.
 * Only the functions declared in include/bftkv/ are exported.
 */
#ifndef BFTKV_CLIENT_H
#define BFTKV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "bftkv/errors.h"
#include "bftkv/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bftkv_client;
struct bftkv_config; /* include/bftkv/config.h */

/* Operations of bftkv_submit (the values are the wire's op codes). */
enum bftkv_op {
    BFTKV_OP_PUT = 1,
    BFTKV_OP_GET = 2,
    BFTKV_OP_DEL = 3,
};

/* The UDP transport under the handle. */
enum bftkv_backend {
    BFTKV_BACKEND_MMSG = 0,  /* poll + recvmmsg/sendmmsg: the default (fast to set up; a
                                client sends few datagrams per system call anyway) */
    BFTKV_BACKEND_URING = 1, /* io_uring; bftkv_client_open fails with BFTKV_E_UNSUPPORTED
                                where the kernel refuses it */
    BFTKV_BACKEND_AUTO = 2,  /* io_uring when available, else mmsg (with one line on stderr) */
};

/* Option flags. */
enum bftkv_client_flag {
    /* bftkv_submit waits (up to timeout_ms) for room in a full queue instead of
     * returning BFTKV_E_FULL at once. Never from a callback. */
    BFTKV_CLIENT_SUBMIT_BLOCK = 1u << 0,
    /* Stale reads: every GET of the handle reads ONE replica's current state,
     * without ordering and without a quorum (the next replica when it does not
     * answer in time or holds no state). Faster and available while a single
     * replica answers, but the value may be STALE (that replica may lag behind
     * acknowledged writes) and WRONG if that replica is faulty: it is not
     * linearizable and not Byzantine-fault-tolerant. Never the default; PUT and
     * DEL are unaffected (docs/design.md §5.3, "Stale reads"). */
    BFTKV_CLIENT_STALE_READS = 1u << 1,
};

#define BFTKV_CLIENT_QUEUE_DEFAULT 1024u /* queue_max when 0 */
#define BFTKV_CLIENT_QUEUE_MAX 65536u

/* Options of bftkv_client_open. Start from bftkv_client_options_init (or
 * BFTKV_CLIENT_OPTIONS_INIT) and set what you need: every zero field means "the
 * default". A struct that only zero-initialised lacks struct_size and is
 * refused (BFTKV_E_INVAL, without a message: the library cannot trust err). */
struct bftkv_client_options {
    size_t struct_size;  /* sizeof(struct bftkv_client_options) as the program was
                            built with (see "ABI" above); set by the init */
    int timeout_ms;      /* per operation, from the call to its result (queueing
                            included); 0 = the config's client_timeout_ms */
    uint16_t lanes;      /* requests in flight at a time: the lanes to lease
                            (see "Sessions" and lane_first below); 0 = every lane
                            of the range; at most the config's client_lanes */
    uint32_t queue_max;  /* requests accepted and not yet completed, queued or in
                            flight (a timed-out request keeps its place while its
                            lane still retransmits it); 0 = BFTKV_CLIENT_QUEUE_DEFAULT;
                            at most BFTKV_CLIENT_QUEUE_MAX. Memory: about 2.2 KiB each. */
    uint32_t flags;      /* enum bftkv_client_flag */
    int backend;         /* enum bftkv_backend */
    const char *bind_host; /* numeric local address to bind; NULL = the loopback
                              address when replica 0 is on loopback, else the
                              wildcard address, of replica 0's address family */
    char *err;           /* if not NULL: bftkv_client_open writes a one-line message
                            here when it fails ("cluster.conf:7: ...") */
    size_t errlen;       /* bytes at err; 512 is always enough */
    /* Sessions (see "Sessions" above). The handle leases `lanes` lanes (0: every
     * lane of its range) of the range lane_first .. lane_first + lane_count - 1 of
     * the config's client_lanes (lane_count 0: up to the last lane): the first
     * free contiguous run of that length, else the longest free run (at least
     * one lane; bftkv_client_stats says how many it got). */
    uint16_t lane_first;
    uint16_t lane_count;
    int session_wait_ms; /* every lane of the range leased: wait up to this long for
                            one to be released; 0 = fail at once with
                            BFTKV_E_SESSION_BUSY */
};

/* Every field zero (every default) and struct_size set. */
void bftkv_client_options_init(struct bftkv_client_options *opt);
#define BFTKV_CLIENT_OPTIONS_INIT { .struct_size = sizeof(struct bftkv_client_options) }

/* Open a handle for client client_id of the cluster described by the config file
 * at config_path. opt may be NULL (defaults). 0 and *out, or: BFTKV_E_IO (the
 * config or key file cannot be read), BFTKV_E_CONFIG (bad config, key file
 * refused, client_id not in the allow-list, replicas of mixed address families),
 * BFTKV_E_INVAL (bad options, or a lane range the config does not have),
 * BFTKV_E_SESSION_BUSY (every lane of the range is leased by other handles, also
 * after session_wait_ms), BFTKV_E_IO (also: the session directory is unusable),
 * BFTKV_E_UNSUPPORTED (BFTKV_BACKEND_URING forced where unavailable), BFTKV_E_NOMEM. Nothing is printed (but see
 * BFTKV_BACKEND_AUTO); the message goes to opt->err. */
int bftkv_client_open(const char *config_path, uint16_t client_id, const struct bftkv_client_options *opt,
                      struct bftkv_client **out);

/* The same, from a config already parsed (bftkv_config_load or
 * bftkv_config_parse): the handle keeps nothing of cfg, which the caller may
 * free once this returns. BFTKV_E_INVAL for a NULL cfg; other errors as above,
 * BFTKV_E_IO only for the key file or the session directory. */
int bftkv_client_open_config(const struct bftkv_config *cfg, uint16_t client_id,
                             const struct bftkv_client_options *opt, struct bftkv_client **out);

/* The same, from the text of a config file held in memory (len bytes, need not
 * be terminated): for an application that gets its config from elsewhere than
 * a file. name stands for the file in messages; a relative key_dir is taken
 * relative to name's directory part (the working directory when name has
 * none), so give key_dir as an absolute path unless name is a real path.
 * Errors as bftkv_client_open_config, and BFTKV_E_CONFIG for bad text. */
int bftkv_client_open_text(const char *text, size_t len, const char *name, uint16_t client_id,
                           const struct bftkv_client_options *opt, struct bftkv_client **out);

/* Stop the I/O thread, fail what is still queued or in flight with
 * BFTKV_E_CANCELLED (async callbacks are invoked on the calling thread, before
 * close returns; sync callers waiting in other threads return), and free the
 * handle. Requests already sent may still execute at the replicas. NULL is a
 * no-op. Never from a callback. */
void bftkv_client_close(struct bftkv_client *c);

/* ---- Synchronous operations ------------------------------------------------------ */

/* Insert or replace. 0, a limit error, BFTKV_E_TIMEOUT, BFTKV_E_FULL (the queue
 * stayed full until the timeout), BFTKV_E_CANCELLED. */
int bftkv_put(struct bftkv_client *c, const void *key, size_t klen, const void *val, size_t vlen);

/* Read into the caller's buffer (cap bytes; buf may be NULL when cap is 0). On
 * success *vlen is the value's length. BFTKV_E_NOT_FOUND when absent;
 * BFTKV_E_BUF_TOO_SMALL when cap is less than the value's length, with *vlen set
 * to that length and buf untouched (the value was fetched and dropped: call
 * again with a larger buffer, or use bftkv_get_alloc). */
int bftkv_get(struct bftkv_client *c, const void *key, size_t klen, void *buf, size_t cap, size_t *vlen);

/* Read into a new buffer: on success *val holds *vlen bytes (plus a terminating
 * NUL byte not counted in *vlen, so text values can be used as C strings) and the
 * caller releases it with bftkv_free. *val is NULL after a failure. */
int bftkv_get_alloc(struct bftkv_client *c, const void *key, size_t klen, void **val, size_t *vlen);

/* Remove. 0 when the key was there, BFTKV_E_NOT_FOUND when not. */
int bftkv_del(struct bftkv_client *c, const void *key, size_t klen);

/* Release what bftkv_get_alloc returned. NULL is a no-op. */
void bftkv_free(void *p);

/* ---- Asynchronous operations ----------------------------------------------------- */

/* The result of a submitted operation, called once per accepted submission on the
 * handle's I/O thread (or, for requests cancelled by close, on the closing thread).
 * status as for the sync call of the same op. val/vlen: a GET's value when status
 * is 0 (else NULL, 0); val is valid during the call only. */
typedef void bftkv_callback(void *arg, int status, const void *val, size_t vlen);

/* Queue an operation: op is enum bftkv_op; val/vlen only for PUT (NULL, 0 for
 * GET and DEL). key and val are copied before bftkv_submit returns (into the
 * queue entry, or a heap copy when together they pass 2 KiB). Returns 0 when queued
 * (cb will be called exactly once, with BFTKV_E_TIMEOUT if no result came within
 * timeout_ms), or at once, without calling cb: a limit error, BFTKV_E_INVAL,
 * BFTKV_E_FULL (the queue is full: see BFTKV_CLIENT_SUBMIT_BLOCK),
 * BFTKV_E_NOMEM. */
int bftkv_submit(struct bftkv_client *c, int op, const void *key, size_t klen, const void *val, size_t vlen,
                 bftkv_callback *cb, void *arg);

/* ---- Introspection ----------------------------------------------------------------- */

/* Set struct_size to sizeof(struct bftkv_client_stats) before the call (see
 * "ABI" above); the library fills the fields it knows up to that size, zeroes
 * the rest, and sets struct_size to the bytes it filled. */
struct bftkv_client_stats {
    size_t struct_size;
    uint64_t submitted;        /* operations accepted (sync and async) */
    uint64_t completed;        /* results the replicas agreed on (NOT_FOUND included) */
    uint64_t timeouts;         /* operations failed with BFTKV_E_TIMEOUT */
    uint64_t late_results;     /* results that arrived after their operation timed out */
    uint64_t queue_full;       /* submissions refused with BFTKV_E_FULL */
    uint64_t retransmissions;  /* requests sent again after retransmit_ms (with backoff) */
    uint64_t readonly_fallbacks; /* GETs retried through ordering */
    uint64_t replies_dropped;  /* replies that failed to decode or authenticate */
    uint64_t datagrams_sent;
    uint64_t datagrams_received;
    uint32_t in_flight;        /* requests on a lane now */
    uint32_t queued;           /* requests waiting for a lane now */
    uint16_t lanes;            /* lanes leased ... */
    uint16_t lane_base;        /* ... from this one: lane_base .. lane_base + lanes - 1 */
    uint64_t replies_forwarded; /* replies for another handle's lane passed on to it */
    uint64_t probes_sent;      /* status probes sent to replicas that stayed silent */
    uint64_t readonly_timeouts; /* read-only fallbacks after a wait that was no grace (of readonly_fallbacks) */
    uint64_t readonly_resends;  /* read-only rounds that asked the replicas yet to answer again */
    uint64_t readonly_retries;  /* second read-only rounds (fresh timestamp) instead of ordering */
    uint64_t stale_reads;       /* GETs sent as stale reads (BFTKV_CLIENT_STALE_READS) ... */
    uint64_t stale_moves;       /* ... asks moved on to the next replica */
    /* A deployment's routing handle (0 for a handle on one group): */
    uint64_t map_epoch;         /* the epoch of the map it routes with */
    uint64_t map_epoch_claimed; /* the highest epoch a node's reply or refusal claimed */
    uint64_t map_fetches;       /* fetches of a newer map those claims caused ... */
    uint64_t map_fetch_failures; /* ... that found none newer (a lying or lagging claim) */
    uint64_t map_notices;       /* refusals received: a node hosts no longer a group asked of it */
    uint64_t map_epoch_pending; /* a newer accepted map not routed with yet: its placement
                                   differs (the next open takes it, from map_cache) */
};

/* A snapshot of the handle's counters. 0, or BFTKV_E_INVAL (also when
 * out->struct_size is smaller than the first version of the struct). */
int bftkv_client_stats(struct bftkv_client *c, struct bftkv_client_stats *out);

/* Room for any stats text of bftkv_client_replica_stats, its NUL included. */
#define BFTKV_CLIENT_REPLICA_STATS_MAX (60u * 1024u)

/* Ask replica `replica` of cfg's group for its stats (one JSON object; the keys
 * are in docs/operations.md "Reading stats"), as client client_id, whose secret key is
 * loaded from cfg's key_dir. Needs no handle and leases no lane: the admin
 * request is authenticated for the replica and answered at most a few hundred
 * times a second per replica. The text goes to json (cap bytes, terminated;
 * BFTKV_CLIENT_REPLICA_STATS_MAX always suffices), its length to *len.
 * timeout_ms 0: the config's client_timeout_ms. 0; BFTKV_E_INVAL (no such
 * replica, bad arguments) or BFTKV_E_IO / BFTKV_E_CONFIG (the key file), each
 * with a message in err; BFTKV_E_TIMEOUT (no authentic answer in time: the
 * replica is down, unreachable, or does not know this client's key),
 * BFTKV_E_BUF_TOO_SMALL, or an error of the socket, with err "". */
int bftkv_client_replica_stats(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica,
                               int timeout_ms, char *json, size_t cap, size_t *len, char *err, size_t errlen);

/* Set replica `replica`'s log level ("error", "warn", "info" or "debug") at run
 * time, as client client_id, the same exchange as bftkv_client_replica_stats.
 * The replica obeys only a client its config names in an `admin_client ID` line
 * (docs/config.md). json receives its answer: {"log_level":"debug","was":"info"},
 * or {"error":"...","log_level":"info"} when it refused. BFTKV_E_INVAL for an
 * unknown level name, BFTKV_E_UNSUPPORTED on a deployment's file; otherwise as
 * bftkv_client_replica_stats. */
int bftkv_client_replica_log_level(const struct bftkv_config *cfg, uint16_t client_id, uint16_t replica,
                                   const char *level, int timeout_ms, char *json, size_t cap, size_t *len, char *err,
                                   size_t errlen);

/* Room for any message of bftkv_client_last_error, its NUL included. */
#define BFTKV_CLIENT_ERROR_MAX 1024u

/* Why the calling thread's most recent synchronous call (put, get, get_alloc,
 * del) on c failed, as one line of text in buf (len bytes, truncated to fit;
 * BFTKV_CLIENT_ERROR_MAX always suffices). Returns that call's error code, or 0
 * with buf set to "" when it succeeded (or no sync call was made on c by this
 * thread). Each thread keeps its own: other threads' calls do not change it.
 *
 * After BFTKV_E_TIMEOUT the line says how many replicas answered the call and
 * which did not, and names the likely causes: a replica that answered nothing
 * but a status probe (an authenticated admin request the handle sends to silent
 * replicas when a request goes unanswered past its first retransmission) is up
 * and accepts this client but cannot order requests (too few replicas working);
 * one that answered nothing at all is down or unreachable, or this client id is
 * not in its allow-list, or its public key for this client id is not this
 * client's key; one whose answers failed authentication holds other keys than
 * this client's config. After an error the replicas agreed on (BFTKV_E_NO_STATE,
 * ...) it is that error's message. */
int bftkv_client_last_error(struct bftkv_client *c, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* BFTKV_CLIENT_H */
