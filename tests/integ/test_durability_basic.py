#!/usr/bin/env python3
"""integ_durability_*: a whole-group crash with and without the write-ahead log
(docs/design.md §5.6.2, docs/config.md `durability`).

A 4-replica group (f = 1) takes 60 acknowledged writes through the CLI (puts,
overwrites of some keys, deletes of others); then every replica is killed with
SIGKILL at once and all four are started again without --init.

  sync   `durability sync`, the default (tools/cluster create is given no
         --durability; the config's default with a data_dir): every replica
         rebuilds itself from its log (its log says so, its stats count the
         recovered records and it holds state); every acknowledged write reads back its last value, every
         deleted key reads "not found", and the group takes new writes.
  none   `durability none`: the replicas come back with empty memory, and the
         group refuses to serve (BFTKV_E_NO_STATE, docs/design.md §5.6.1)
         instead of answering from an empty store.

With `sync`, one replica's log is then damaged (a byte of its first record
flipped, valid records after it): that replica must not trust it: its log says
the write-ahead log is corrupt and that it rejoins as an empty member, the log
is kept aside (wal.corrupt), and it catches up from its peers (their log, or
state transfer) and holds state again; every acknowledged write still reads
back.

    test_durability_basic.py --scenario sync|none
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (EXIT_NOT_FOUND, EXIT_OK, Cluster, check, kill_all, log, run_test, wait_until)  # noqa: E402

KEYS = 40


def write(c):
    """The acknowledged writes; returns what each key must read (None: deleted)."""
    want = {}
    log(f"write {KEYS} keys, overwrite 10, delete 10")
    for i in range(1, KEYS + 1):
        c.must("put", f"key{i}", f"val{i}")
        want[f"key{i}"] = f"val{i}".encode()
    for i in range(1, 11):
        c.must("put", f"key{i}", f"new{i}")
        want[f"key{i}"] = f"new{i}".encode()
    for i in range(11, 21):
        c.must("del", f"key{i}")
        want[f"key{i}"] = None
    return want


def scenario_sync(c):
    want = write(c)
    before = {i: c.stats(i) for i in range(c.n)}
    for i, s in before.items():
        check(s is not None and s["durability"] == "sync", f"replica {i}: durability {s and s.get('durability')}")
        check(s["wal"]["records"] > 0 and s["wal"]["durable_lsn"] == s["wal"]["last_lsn"],
              f"replica {i}: log {s['wal']}: every record appended is durable once its round is over")
    kill_all(c)
    c.start()
    for i in range(c.n):
        with open(os.path.join(c.dir, "logs", f"replica-{i}.log"), errors="replace") as fp:
            check("recovered from the write-ahead log" in fp.read(), f"replica {i}'s log does not say it recovered")
    st = wait_until("every replica holds state", lambda: all((s := c.stats(i)) and s["holds_state"]
                                                              for i in range(c.n)), 20)
    check(st, "holds state")
    for i in range(c.n):
        s = c.stats(i)
        check(s["wal"]["recovered_records"] > 0, f"replica {i}: recovered nothing: {s['wal']}")
    log("every acknowledged write reads back")
    for k, v in sorted(want.items()):
        if v is None:
            c.must("get", k, expect=EXIT_NOT_FOUND)
        else:
            got = c.must("get", k)
            check(got == v, f"{k} reads {got!r} after the whole-group crash, expected {v!r}")
    c.must("put", "after", "crash")
    check(c.must("get", "after") == b"crash", "a write after the recovery reads back")
    corrupt_one(c, 3, want)


def corrupt_one(c, i, want):
    c.kill(i)
    wal = os.path.join(c.dir, "data", f"replica-{i}", "wal")
    seg = os.path.join(wal, sorted(x for x in os.listdir(wal) if x.startswith("wal-"))[0])
    log(f"flip a byte of the first record of {seg}")
    with open(seg, "r+b") as fp:
        fp.seek(64 + 32)  # the segment header, the record header: the first payload byte
        b = fp.read(1)
        fp.seek(64 + 32)
        fp.write(bytes([b[0] ^ 0xFF]))
    c.restart(i)  # returns once it holds state again and caught up
    with open(os.path.join(c.dir, "logs", f"replica-{i}.log"), errors="replace") as fp:
        text = fp.read().split("tools/cluster:")[-1]  # this start's lines
    check("corrupt" in text and wal in text and "rejoins as an EMPTY member" in text,
          f"replica {i}: the log does not say the write-ahead log is corrupt and that it rejoins empty: {text!r}")
    check(os.path.isdir(wal + ".corrupt"), "the corrupt log is not kept aside for inspection")
    s = c.stats(i)
    top = max(c.stats(j)["last_executed"] for j in range(c.n) if j != i)
    check(s is not None and s["holds_state"] and s["last_executed"] >= top - 1,
          f"replica {i} did not catch up from its peers: {s and (s['holds_state'], s['last_executed'])}, others {top}")
    for k, v in sorted(want.items()):
        if v is not None:
            check(c.must("get", k) == v, f"{k} after replica {i} rejoined empty")


def scenario_none(c):
    write(c)
    s = c.stats(0)
    check(s is not None and s["durability"] == "none" and "wal" not in s, f"replica 0: {s and s.get('durability')}")
    kill_all(c)
    c.start()
    time.sleep(1.0)
    for args in (("get", "key30"), ("get", "key1"), ("put", "key30", "overwritten")):
        rc, out, err = c.cli(*args, timeout_ms=3000)
        check(rc not in (EXIT_OK, EXIT_NOT_FOUND),
              f"bftkv {' '.join(args)} after a whole-group crash without a log: exit {rc}, stdout {out[:60]!r}: "
              f"it served a store it does not hold")
        check("refuses to serve" in err or "no answer" in err, f"bftkv {' '.join(args)}: unclear error {err.strip()!r}")
    for i in range(c.n):
        s = c.stats(i)
        check(s is not None and s["holds_state"] is False, f"replica {i} claims state it cannot have: {s}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True, choices=("sync", "none"))
    a = ap.parse_args()

    def run():
        # sync is tools/cluster's default (and the config's, with a data_dir):
        # the scenario takes it without naming it.
        c = Cluster(f"durability-{a.scenario}", 4, durability=None if a.scenario == "sync" else a.scenario)
        c.start()
        (scenario_sync if a.scenario == "sync" else scenario_none)(c)

    run_test(run, budget_s=110)


if __name__ == "__main__":
    main()
