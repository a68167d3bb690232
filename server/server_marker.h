/* The group marker: how a replica knows whether it founds a group or rejoins one
 * (docs/design.md "Restarts", docs/operations.md "Restarts and the data directory").
 *
 * The store lives in memory, so a replica process that starts again has lost it.
 * Before this file existed such a start was indistinguishable from the first
 * start of a new group: when more than f replicas restarted, the group agreed on
 * an empty store and served it. The marker, a small text file at
 * data_dir/replica-<id>/marker, records that this replica belongs to group G
 * (n, f) and whether it has ever run:
 *
 *     bftkv-marker 1
 *     group 0
 *     replica 2
 *     n 4
 *     f 1
 *     state started            (fresh: initialised, never run yet)
 *     initialised 2026-12-07T01:30:00Z
 *
 * --init founds: it writes the marker (refusing one that exists) and the replica
 * starts as a member of a new, empty group. A start without --init needs the
 * marker: `fresh` starts as a founder once (the marker becomes `started` before
 * the replica sends anything), `started` rejoins with `restarted` set, so the
 * replica takes no part in ordering until q replicas holding state vouch for
 * it. --join writes a `started` marker where none is (a replacement machine) and
 * rejoins the same way. The file is written to a temporary name, synced, renamed
 * and its directory synced, so a crash leaves the old marker or the new one.
 */
#ifndef BFTKV_SERVER_MARKER_H
#define BFTKV_SERVER_MARKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/cluster.h"

enum server_start_mode {
    SERVER_START_REJOIN = 0, /* no flag: the marker must exist */
    SERVER_START_INIT = 1,   /* --init: found a new group here */
    SERVER_START_INIT_ONLY = 2, /* --init-only: write a fresh marker, do not run */
    SERVER_START_JOIN = 3,   /* --join: join an existing group with empty memory */
};

/* Check or write the marker of replica id for mode. On success *restarted tells
 * whether the replica must rejoin (it ran before, or joins an existing group).
 * 0; BFTKV_E_CONFIG with a one-line message in err (no data_dir in the config,
 * no marker, a marker of another group or shape, --init over an existing
 * marker, a malformed marker naming its line); BFTKV_E_IO with the path and the
 * system's reason. */
int server_marker_open(const struct bftkv_config *cfg, uint16_t id, enum server_start_mode mode, bool *restarted,
                       char *err, size_t errlen);

#endif /* BFTKV_SERVER_MARKER_H */
