#!/usr/bin/env python3
"""integ_operations_*: the procedures of docs/operations.md, exactly as written
there (tools/cluster's default durability, sync, unless said), each checked
for lost data.

  local        "A local cluster": create, start, put, get, status, kill the
               primary, get, restart it (returns once caught up), stop.
  found        "Deploying ... 5. Start" and "Restarts": `bftkv-server --init-only`
               on every replica, then starts without flags found the group;
               a start without a marker, and --init over a marker, are refused
               (exit 2, naming the file).
  replace      "Changing the group": replacing a replica's machine. Replica 2's
               key file and address move to a machine whose data directory is
               empty; a plain restart is refused (no marker), --join rejoins,
               and every replica ends caught up with no key lost.
  refound      "Restarts", durability none: a whole-group stop and start
               leaves a group that refuses (NO_STATE), never an empty store; founding anew on
               purpose (stop, remove every marker, start with --init) gives an
               empty group that serves.

    test_operations.py --scenario local|found|replace|refound
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (BUILD, CLUSTER, EXIT_NOT_FOUND, EXIT_OK, Cluster, check, log, run, run_test,  # noqa: E402
                   wait_until)

KEYS = 40
SERVER = os.path.join(BUILD, "bftkv-server")


def fill(c, prefix="key"):
    for i in range(1, KEYS + 1):
        c.must("put", f"{prefix}{i}", f"val{i}")


def readable(c, what, prefix="key"):
    for i in range(1, KEYS + 1):
        got = c.must("get", f"{prefix}{i}")
        check(got == f"val{i}".encode(), f"{what}: {prefix}{i} reads {got!r}")


def status_lines(c):
    r = run([CLUSTER, "status", c.dir])
    return r.returncode, r.stdout.decode(errors="replace").splitlines()


def all_caught_up(c):
    rc, lines = status_lines(c)
    return lines if rc == 0 and len(lines) == c.n and all(ln.endswith(": caught up") for ln in lines) else False


def marker(c, i):
    return os.path.join(c.dir, "data", f"replica-{i}", "marker")


def local(c):
    c.start()
    c.must("put", "k", "v")
    check(c.must("get", "k") == b"v", "get k")
    wait_until("status: every replica caught up", lambda: all_caught_up(c), 10)
    p = c.primary()
    c.kill(p)
    check(c.must("get", "k") == b"v", f"get k with the primary {p} killed")
    c.restart(p)  # tools/cluster restart: returns once it caught up
    rc, lines = status_lines(c)
    check(rc == 0 and lines[p].endswith(": caught up"), f"status after the restart: {lines}")
    c.stop()


def server(c, i, *flags):
    return subprocess.run([SERVER, "--config", c.conf, "--id", str(i)] + list(flags), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=30)


def found(c):
    r = server(c, 0)
    check(r.returncode == 2 and b"no marker" in r.stderr, f"a start without a marker: exit {r.returncode}, "
          f"{r.stderr!r}")
    for i in range(c.n):
        r = server(c, i, "--init-only")
        check(r.returncode == 0, f"--init-only {i}: exit {r.returncode}, {r.stderr!r}")
        with open(marker(c, i)) as fp:
            check("state fresh" in fp.read(), f"replica {i}'s marker is not fresh")
    r = server(c, 1, "--init")
    check(r.returncode == 2 and b"exists" in r.stderr, f"--init over a marker: exit {r.returncode}, {r.stderr!r}")
    c.start()  # markers exist: no flag, and the fresh markers found the group
    for i in range(c.n):
        with open(marker(c, i)) as fp:
            check("state started" in fp.read(), f"replica {i}'s marker was not marked started")
    fill(c)
    readable(c, "after founding with --init-only")
    s = c.stats(0)
    check(s["holds_state"] is True, f"a founder holds no state: {s}")


def replace(c):
    c.start()
    fill(c)
    victim = 2
    log(f"replica {victim}'s machine is replaced: its key file and address move, its data directory does not")
    c.kill(victim)
    os.unlink(marker(c, victim))  # the new machine's disk: no marker
    r = run([CLUSTER, "restart", c.dir, str(victim), "--no-wait"])
    check(r.returncode != 0 and b"--join" in r.stderr, f"a restart without marker was not refused: {r.stderr!r}")
    c.tool("restart", c.dir, str(victim), "--join")  # returns once caught up
    c.dead.discard(victim)
    wait_until("status: every replica caught up", lambda: all_caught_up(c), 20)
    readable(c, "after replacing a machine")
    c.must("put", "after", "replace")
    check(c.must("get", "after") == b"replace", "a write after the replacement")
    s = c.stats(victim)
    check(s["holds_state"] is True, f"the new machine holds no state: {s}")


def refound(c):
    c.start()
    fill(c)
    c.stop()
    c.start()  # markers exist: every replica rejoins with empty memory
    for k in ("key1", f"key{KEYS}"):
        rc, out, err = c.cli("get", k, timeout_ms=3000)
        check(rc not in (EXIT_OK, EXIT_NOT_FOUND) and "refuses to serve" in err,
              f"get {k} after a whole-group restart: exit {rc}, {out[:40]!r}, {err.strip()!r}")
    rc, lines = status_lines(c)
    check(all("holds no state" in ln for ln in lines), f"status does not say the replicas hold no state: {lines}")
    log("found anew on purpose: stop, remove every marker, start with --init")
    c.stop()
    for i in range(c.n):
        os.unlink(marker(c, i))
    c.start()
    c.must("get", "key1", expect=EXIT_NOT_FOUND)
    fill(c, prefix="new")
    readable(c, "in the new group", prefix="new")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True, choices=("local", "found", "replace", "refound"))
    a = ap.parse_args()
    body = {"local": local, "found": found, "replace": replace, "refound": refound}[a.scenario]

    def go():
        # The procedures as written: tools/cluster's default durability (sync),
        # except "Restarts"' whole-group stop of an in-memory group.
        body(Cluster(f"ops-{a.scenario}", 4, durability="none" if a.scenario == "refound" else None))

    run_test(go, budget_s=150)


if __name__ == "__main__":
    main()
