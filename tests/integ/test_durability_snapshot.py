#!/usr/bin/env python3
"""integ_durability_snapshot_*: snapshot files and the cut log of a durable
replica under load (docs/design.md §5.6.2, docs/operations.md "Durability").

Each scenario runs a 4-replica group (f = 1) with `durability sync` and
bftkv-bench (PUTs, GETs and DELs on 300 keys, --history, --final-read); at the
end bftkv-lincheck must accept the history: every acknowledged write reads back.

  torn      replica 1 is killed (SIGKILL), its last log segment cut in the
            middle of its last record; restarted, its log says the tail was
            cut, it recovers, holds state and catches up.
  corrupt   once replica 1 has written two snapshots it is killed and one byte
            of its newest snapshot flipped; restarted, its log names the refused
            file and the older snapshot it recovered from (or says it rejoined
            empty).
  full      replica 1's data directory is a 10 MiB tmpfs in a private mount
            namespace (the whole test runs in it: `unshare -m`; skipped, exit
            77, where that is impossible); under load its disk fills, it stops
            saying the disk is full, the other three keep serving; the tmpfs
            grown, it starts again without flags and recovers from its disk.
  bounded   a long run: after many checkpoints every replica's wal directory
            holds at most a few segments and its snap directory two snapshots.
  backup    the backup and restore of docs/operations.md "Durability", exactly
            as written there: replica 1 stopped, its data directory copied, it
            started again; later its data directory wiped and the copy put back,
            started without flags: it recovers from the copy and catches up.

    test_durability_snapshot.py --scenario torn|corrupt|full|bounded|backup
"""

import argparse
import glob
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import BUILD, CLUSTER, Cluster, check, log, run, run_test, wait_until  # noqa: E402

KEYS = 300
VICTIM = 1


def bench_start(c, seconds, hist):
    cmd = [os.path.join(BUILD, "bftkv-bench"), "--config", c.conf, "--cluster-dir", c.dir, "--duration",
           str(seconds), "--warmup", "0", "--final-read", "--del-ratio", "0.1", "--read-ratio", "0.4", "--keys",
           str(KEYS), "--history", hist]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def bench_finish(c, p, hist, budget_s=120):
    try:
        out, err = p.communicate(timeout=budget_s)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        check(False, f"the bench did not finish within {budget_s} s")
    for line in err.decode(errors="replace").splitlines()[-6:]:
        log(f"  bench: {line}")
    check(p.returncode == 0, f"bftkv-bench exit {p.returncode}")
    with open(hist) as f:
        ops = [json.loads(x) for x in f if x.strip()][1:]
    outcomes = {}
    for o in ops:
        outcomes[o.get("outcome")] = outcomes.get(o.get("outcome"), 0) + 1
    log(f"history: {len(ops)} operations, outcomes {outcomes}")
    check(outcomes.get("ok", 0) > 0, "no operation succeeded")
    r = run([os.path.join(BUILD, "bftkv-lincheck"), hist], timeout=180)
    res = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    for line in res.splitlines()[:8]:
        log(f"  lincheck: {line}")
    check(r.returncode == 0, f"bftkv-lincheck exit {r.returncode} (want 0: linearizable, nothing acknowledged lost)")


def replica_dir(c, i):
    return os.path.join(c.dir, "data", f"replica-{i}")


def replica_log(c, i):
    with open(os.path.join(c.dir, "logs", f"replica-{i}.log"), errors="replace") as fp:
        return fp.read()


def snapshots(c, i):
    return sorted(glob.glob(os.path.join(replica_dir(c, i), "snap", "snapshot-*.bin")))


def segments(c, i):
    return sorted(glob.glob(os.path.join(replica_dir(c, i), "wal", "wal-*.log")))


def caught_up(c, i):
    """Replica i holds state and executed at least what the others had."""
    others = [c.stats(j) for j in range(c.n) if j != i and j not in c.dead]
    mine = c.stats(i)
    if mine is None or not mine["holds_state"] or not all(others):
        return False
    return mine["last_executed"] >= min(o["last_executed"] for o in others)


def cut_last_record(path):
    """Truncates a log segment in the middle of its last record (server/wal.h:
    a 64-byte segment header, then records of a 32-byte header -- len u32,
    type u16, flags u16, lsn u64, checksum -- and the payload padded to 8)."""
    with open(path, "rb") as fp:
        data = fp.read()
    off, last, lsn = 64, None, None
    while off + 32 <= len(data):
        ln, _typ, _fl, rl = struct.unpack_from("<IHHQ", data, off)
        if ln == 0 and rl == 0:
            break
        if lsn is not None and rl != lsn + 1:
            break
        size = 32 + ((ln + 7) & ~7)
        if off + size > len(data):
            break
        last, lsn = (off, size), rl
        off += size
    check(last is not None, f"{path}: no record to cut")
    cut = last[0] + last[1] // 2
    with open(path, "r+b") as fp:
        fp.truncate(cut)
    log(f"cut {os.path.basename(path)} at {cut}: in the middle of its last record (lsn {lsn}, {last[1]} bytes at "
        f"{last[0]})")


def kill_victim(c):
    pid = c.pid(VICTIM)
    c.kill(VICTIM)
    wait_until(f"replica {VICTIM} gone", lambda: not os.path.exists(f"/proc/{pid}/stat")
               or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10)


def torn(c, hist):
    c.start()
    p = bench_start(c, 10, hist)
    time.sleep(3)
    kill_victim(c)
    segs = segments(c, VICTIM)
    check(segs, "replica 1 has no log segment")
    cut_last_record(segs[-1])
    c.restart(VICTIM)  # returns once it caught up
    text = replica_log(c, VICTIM)
    check("ended in a torn record" in text, "replica 1's log does not say the tail was cut")
    check("recovered from the write-ahead log" in text, "replica 1's log does not say it recovered")
    bench_finish(c, p, hist)
    wait_until("replica 1 caught up", lambda: caught_up(c, VICTIM), 30)


def corrupt(c, hist):
    c.start()
    p = bench_start(c, 12, hist)
    wait_until("replica 1 wrote two snapshots", lambda: len(snapshots(c, VICTIM)) >= 2, 20)
    kill_victim(c)
    snaps = snapshots(c, VICTIM)
    check(len(snaps) >= 2, f"replica 1 keeps {len(snaps)} snapshot(s)")
    newest = snaps[-1]
    with open(newest, "r+b") as fp:
        size = os.fstat(fp.fileno()).st_size
        fp.seek(size // 2)
        b = fp.read(1)
        fp.seek(size // 2)
        fp.write(bytes([b[0] ^ 0x01]))
    log(f"flipped one byte of {os.path.basename(newest)} at {size // 2}")
    c.restart(VICTIM)
    text = replica_log(c, VICTIM)
    name = os.path.basename(newest)
    check(f"{name} refused: checksum mismatch" in text, f"replica 1's log does not refuse {name}")
    older = os.path.basename(snaps[-2])
    check(f"recovering from snapshot {os.path.join(replica_dir(c, VICTIM), 'snap', older)}" in text
          or "rejoins as an EMPTY member" in text, "replica 1's log names neither the older snapshot nor a rejoin")
    s = c.stats(VICTIM)
    log(f"replica 1 after the restart: snapshots {s['snapshots']}")
    bench_finish(c, p, hist)
    wait_until("replica 1 caught up", lambda: caught_up(c, VICTIM), 30)


def full(c, hist):
    d = replica_dir(c, VICTIM)
    os.makedirs(d, exist_ok=True)
    r = run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", d])
    if r.returncode != 0:
        log(f"SKIPPED: cannot mount a tmpfs in the private mount namespace: {r.stderr.decode(errors='replace')}")
        c.stop()
        sys.exit(77)
    try:
        c.start()
        p = bench_start(c, 15, hist)
        pid = c.pid(VICTIM)

        def victim_stopped():
            try:
                with open(f"/proc/{pid}/stat") as fp:
                    return fp.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return True

        wait_until("replica 1 stops on its full disk", victim_stopped, 60)
        c.dead.add(VICTIM)
        text = replica_log(c, VICTIM)
        check("the disk is full" in text, "replica 1's log does not say its disk is full")
        check("stops rather than acknowledge what it cannot persist" in text, "replica 1 does not say it stops")
        before = c.stats(0)["last_executed"]
        time.sleep(2)
        check(p.poll() is None, "the bench ended before the others served on")
        check(c.stats(0)["last_executed"] > before, "the other three did not keep serving")
        # docs/operations.md: make room (here: grow the filesystem), start it again without flags.
        r = run(["mount", "-o", "remount,size=256m", d])
        check(r.returncode == 0, f"remount of the tmpfs: {r.stderr!r}")
        c.restart(VICTIM)  # returns once it caught up
        check("recovered from the write-ahead log" in replica_log(c, VICTIM), "replica 1 did not recover from its disk")
        bench_finish(c, p, hist)
        wait_until("replica 1 caught up", lambda: caught_up(c, VICTIM), 30)
        c.stop()
    finally:
        run(["umount", "-l", d])


def bounded(c, hist):
    c.start()
    p = bench_start(c, 10, hist)
    bench_finish(c, p, hist)
    k = 0
    for i in range(c.n):
        s = c.stats(i)
        segs, snaps = segments(c, i), snapshots(c, i)
        log(f"replica {i}: stable checkpoint {s['low_watermark']}, {s['snapshots']['written']} snapshot(s) "
            f"written, {s['wal']['segments_dropped']} segment(s) dropped; on disk {len(segs)} segment(s), "
            f"{len(snaps)} snapshot(s)")
        k = max(k, s["snapshots"]["written"])
        check(s["wal"]["segments_dropped"] > 0, f"replica {i} never cut its log")
        check(len(segs) <= 8, f"replica {i}'s wal directory holds {len(segs)} segments")
        check(len(snaps) <= 2, f"replica {i} keeps {len(snaps)} snapshots")
    check(k >= 5, f"too few snapshots for a long run ({k})")


# The procedure of docs/operations.md "Durability", with DATA = the replica's
# data directory and BACKUP = where the copy goes.
def backup_take(c, i, data, backup):
    cmds = [
        f"{CLUSTER} stop {c.dir} {i}",
        f"cp -a {data} {backup}",
        f"{CLUSTER} restart {c.dir} {i}",
    ]
    for cmd in cmds:
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=60)
        check(r.returncode == 0, f"{cmd}: exit {r.returncode} {r.stderr!r}")


def backup_restore(data, backup):
    for cmd in [f"rm -rf {data}", f"mkdir -p {data}", f"cp -r {backup}/. {data}/"]:
        r = subprocess.run(["sh", "-c", cmd], capture_output=True, timeout=60)
        check(r.returncode == 0, f"{cmd}: exit {r.returncode} {r.stderr!r}")


def backup(c, hist):
    c.start()
    p = bench_start(c, 10, hist)
    wait_until("replica 1 wrote a snapshot", lambda: len(snapshots(c, VICTIM)) >= 1, 20)
    copy = tempfile.mkdtemp(prefix="bftkv-backup-")
    data = replica_dir(c, VICTIM)
    backup_take(c, VICTIM, data, os.path.join(copy, "replica-1"))
    log(f"backup of replica 1 taken: {os.listdir(os.path.join(copy, 'replica-1', 'snap'))}")
    time.sleep(3)
    kill_victim(c)
    backup_restore(data, os.path.join(copy, "replica-1"))
    log("replica 1's data directory wiped and the backup put back")
    c.restart(VICTIM)  # a start without flags
    text = replica_log(c, VICTIM)
    check("recovering from snapshot" in text, "replica 1 did not recover from the restored snapshot")
    bench_finish(c, p, hist)
    wait_until("replica 1 caught up", lambda: caught_up(c, VICTIM), 30)
    shutil.rmtree(copy, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True, choices=("torn", "corrupt", "full", "bounded", "backup"))
    a = ap.parse_args()
    if a.scenario == "full" and os.environ.get("BFTKV_INTEG_MOUNTNS") != "1":
        # The whole test in a private mount namespace, so the tmpfs is ours alone.
        env = dict(os.environ, BFTKV_INTEG_MOUNTNS="1")
        try:
            probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
        except OSError as e:
            print(f"SKIPPED: unshare is not available: {e}", flush=True)
            sys.exit(77)
        if probe.returncode != 0:
            print(f"SKIPPED: no private mount namespace (unshare -m: {probe.stderr.decode(errors='replace').strip()};"
                  " needs root)", flush=True)
            sys.exit(77)
        r = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable] + sys.argv, env=env)
        sys.exit(r.returncode)
    for exe in ("bftkv-bench", "bftkv-lincheck"):
        check(os.access(os.path.join(BUILD, exe), os.X_OK), f"{exe} is not built")
    fn = {"torn": torn, "corrupt": corrupt, "full": full, "bounded": bounded, "backup": backup}[a.scenario]

    def body():
        # Snapshots every 1 MiB of log (the default is 16 MiB): a short run
        # writes several, and cuts the log below them.
        c = Cluster(f"snap-{a.scenario}", 4, clients=4, durability="sync", settings=("snapshot_log_bytes 1048576",))
        tmp = tempfile.mkdtemp(prefix="bftkv-snap-")
        hist = os.path.join(tmp, "history.jsonl")
        fn(c, hist)
        shutil.rmtree(tmp, ignore_errors=True)
        c.stop()

    run_test(body, budget_s=int(os.environ.get("BFTKV_INTEG_TIMEOUT_S", "200")) - 20)


if __name__ == "__main__":
    main()
