#!/usr/bin/env python3
"""integ_durability_crash_load[_async]: every replica of the group killed at once
under load (docs/design.md §5.6.2, the durability issue's acceptance test).

A 4-replica group (f = 1) with `durability sync` (or, --async, `async`; with
--staged, the staged thread layout) runs bftkv-bench for 8 s (PUTs,
GETs and DELs on 300 keys, --history, --final-read). About 2.5 s in, all four
replicas are killed with SIGKILL at once and started again without --init: each
rebuilds itself from its write-ahead log (its log says so). The bench's clients
keep retrying through the outage. Then:

  - the bench's history is complete and bftkv-lincheck accepts it: every
    operation the bench saw acknowledged is in a linearizable order, and the
    final read of every key (part of the history) returns what the last
    acknowledged write left, so no acknowledged write was lost;
  - batches executed after the restart (the group serves again);
  - every replica holds state and counted the records it recovered.

With --deployment the same on a partitioned deployment (M = R = 4, P = 8,
durability sync): the four nodes killed at once, each partition replica of each
node rebuilt from its own log (data/partition-P/replica-I/wal/), every node's log
saying so once per partition it hosts.

With `async` the log is written but not synced before the messages leave: a
killed process loses nothing (the page cache keeps what it wrote), which is what
this checks; a power cut may lose the last moments before the kernel wrote them
back (docs/operations.md, "Durability"), which no test on a live kernel can cut.
"""

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import BUILD, Cluster, check, history_load, kill_all, log, outcome_counts, run, run_test  # noqa: E402

KEYS = 300
MODE = "async" if "--async" in sys.argv[1:] else "sync"
STAGED = "--staged" in sys.argv[1:]  # the staged thread layout (docs/config.md `threads`)
DEPLOY = (4, 8) if "--deployment" in sys.argv[1:] else None  # (R, P) on 4 nodes


def body():
    c = Cluster(f"durability-load-{MODE}{'-deploy' if DEPLOY else ''}", 4, clients=4, durability=MODE,
                settings=("threads staged auth_workers=1",) if STAGED else (), deployment=DEPLOY)
    c.start()
    bench = os.path.join(BUILD, "bftkv-bench")
    checker = os.path.join(BUILD, "bftkv-lincheck")
    for exe in (bench, checker):
        check(os.access(exe, os.X_OK), f"{exe} is not built")
    tmp = tempfile.mkdtemp(prefix="bftkv-durability-load-")
    hist = os.path.join(tmp, "history.jsonl")
    cmd = [bench, "--config", c.conf, "--cluster-dir", c.dir, "--duration", "8", "--warmup", "0", "--final-read",
           "--del-ratio", "0.1", "--read-ratio", "0.4", "--keys", str(KEYS), "--history", hist]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(2.5)
    check(p.poll() is None, "the bench ended before the crash")
    crash_at = time.monotonic()
    kill_all(c)
    c.start()
    back_at = time.monotonic()
    log(f"all four back after {back_at - crash_at:.2f} s")
    first = c.stats(0)
    check(first is not None, "replica 0 answers stats after the restart")
    recovered_le = first["last_executed"]
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        check(False, "the bench did not finish within 90 s")
    for line in err.decode(errors="replace").splitlines()[-15:]:
        log(f"  bench: {line}")
    check(p.returncode == 0, f"bftkv-bench exit {p.returncode}")
    _, ops = history_load(hist)
    outcomes = outcome_counts(ops)
    log(f"history: {len(ops)} operations, outcomes {outcomes}")
    check(outcomes.get("ok", 0) > 0, "no operation succeeded")
    finals = [o for o in ops if o.get("phase") == "final" or o.get("final")]
    log(f"final reads: {len(finals)}")
    last = c.stats(0)["last_executed"]
    log(f"replica 0 executed up to {recovered_le} right after its recovery, {last} at the end")
    check(last > recovered_le, "nothing was executed after the restart: the group did not serve again")
    for i in range(c.n):
        s = c.stats(i)
        check(s is not None and s["holds_state"], f"replica {i} does not hold state after the crash")
        check(s["wal"]["recovered_records"] > 0, f"replica {i}: recovered nothing: {s['wal']}")
        with open(os.path.join(c.dir, "logs", f"replica-{i}.log"), errors="replace") as fp:
            said = fp.read().count("recovered from the write-ahead log")
        want = DEPLOY[1] if DEPLOY else 1  # M = R: every node hosts every partition
        check(said >= want, f"replica {i}'s log says it recovered {said} times, want {want} (one per partition)")
    r = run([checker, hist], timeout=120)
    res = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    for line in res.splitlines()[:20]:
        log(f"  lincheck: {line}")
    check(r.returncode == 0, f"bftkv-lincheck exit {r.returncode} (want 0: linearizable, nothing acknowledged lost)")
    os.unlink(hist)
    os.rmdir(tmp)
    c.stop()


if __name__ == "__main__":
    run_test(body, budget_s=150)
