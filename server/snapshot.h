/* Snapshot files of a durable replica, and the cutting of its write-ahead log
 * below them (docs/design.md §5.6.2).
 *
 * When the log takes a CHECKPOINT record (a stable checkpoint and its proof),
 * the runtime may start a snapshot of that checkpoint: the file
 * data_dir/replica-<id>/snap/snapshot-<seq, 16 hex digits>.bin, written under
 * a temporary name, synced, renamed, and the directory synced. On disk:
 *
 *   header   magic "BFTKVSNP" | version u32 | reserved u32 | seq u64 | group u16 |
 *            replica u16 | n u16 | pad u16 | record_len u32 | pad u32 |
 *            the CHECKPOINT record (the proof), padded to 8
 *   chunks   part u8 | flags u8 | pad u16 | shards u32 | shard u32 | data_len u32 |
 *            cursor u64 | data, padded to 8 -- each as pbft_replica_state_chunk
 *            handed it out, store first, reply cache last (flags LAST on it)
 *   trailer  magic "BFTKVSNE" | chunks u64 | bytes before the trailer u64 |
 *            BLAKE2b-256 over everything before it
 *
 * The chunks come from the engine between steps, a bounded number per loop
 * iteration (a big store never stalls the loop); a writer thread hashes and
 * writes them, so no file I/O runs on the protocol thread. A newer stable
 * checkpoint may release the state being written (NOT_FOUND): that file is
 * abandoned and the newest checkpoint's started. The two newest complete
 * snapshots are kept; once the older of them is durable, the log's segments
 * whose records all name seqs at or below it go (wal_drop_before), after the
 * newest VIEW_CHANGE and NEW_VIEW records were appended again above the cut.
 *
 * Start-up (server_snap_recover): the newest snapshot whose checksum holds and
 * which the engine accepts goes in before the log is replayed; a refused one
 * is renamed *.bad and the next older one tried.
 *
 * Threads: everything here runs on the protocol thread, except the writer.
 */
#ifndef BFTKV_SERVER_SNAPSHOT_H
#define BFTKV_SERVER_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct pbft_replica_config;

#define SNAP_MAGIC "BFTKVSNP"
#define SNAP_TRAILER_MAGIC "BFTKVSNE"
#define SNAP_VERSION 1u
#define SNAP_HEADER_BYTES 40u
#define SNAP_CHUNK_HEADER_BYTES 24u
#define SNAP_TRAILER_BYTES 56u
#define SNAP_HASH_BYTES 32u

struct server_snap_stats {
    uint64_t written;          /* complete snapshot files */
    uint64_t bytes;            /* their bytes, all together */
    uint64_t last_seq;         /* the newest complete one's checkpoint (0: none) */
    uint64_t last_bytes;
    uint64_t last_duration_ns; /* its start (the CHECKPOINT record) to its rename */
    uint64_t abandoned;        /* a newer checkpoint released the state first */
    uint64_t failures;         /* the writer could not write one (disk full, I/O) */
    uint64_t in_progress_seq;  /* 0: none */
    uint64_t chunks;           /* handed to the writer */
    uint64_t step_ns;          /* protocol thread time encoding chunks */
    uint64_t log_ns;           /* protocol thread time starting segments and cutting the log */
    uint64_t recovered_seq;    /* the snapshot the start-up recovered from (0: none) */
    uint64_t refused;          /* snapshots refused at start-up */
    uint64_t log_cuts;         /* wal_drop_before calls that removed segments */
    uint64_t records_again;    /* VIEW_CHANGE / NEW_VIEW records appended again above a cut */
};

/* Creates data_dir/replica-<id>/snap and the writer thread; founding (!keep)
 * removes every earlier snapshot file first. 0 or an error with err. */
int server_snap_open(struct server *s, bool keep, char *err, size_t errlen);
void server_snap_close(struct server *s);

/* durability none: earlier snapshot files go (they are not this run's). */
int server_snap_forget(const char *data_dir, uint16_t id, char *err, size_t errlen);

/* Start-up of a restarted replica, before the log is replayed: the newest
 * usable snapshot goes into the engine (s->replica, created again from rcfg
 * after a refusal). *seq_out: its seq, or 0 when none was usable. 0, or an
 * error (out of memory, the engine could not be created). */
int server_snap_recover(struct server *s, struct pbft_replica_config *rcfg, uint64_t *seq_out, char *err,
                        size_t errlen);

/* Every record the log holds, in lsn order: the replay's and each append's
 * (server_wal_append; replayed: read back at start-up). Tracks the seqs each stretch of the log names, the
 * newest VIEW_CHANGE and NEW_VIEW records, and starts a snapshot at a
 * CHECKPOINT record. */
void server_snap_record(struct server *s, uint64_t lsn, uint16_t type, const uint8_t *bytes, uint32_t len,
                        bool replayed);

/* Protocol thread, once per loop iteration between steps: advances the
 * snapshot being written, starts a log segment after a CHECKPOINT record,
 * cuts the log below the older kept snapshot. Returns the ms the loop may wait
 * at most before calling again. */
int server_snap_step(struct server *s);

/* The first lsn of the log in wal_dir (its oldest segment's), 0 when it has
 * none: above 1, the log was cut below a snapshot. */
uint64_t server_snap_log_first_lsn(const char *wal_dir);

void server_snap_stats_get(const struct server *s, struct server_snap_stats *out);

#endif /* BFTKV_SERVER_SNAPSHOT_H */
