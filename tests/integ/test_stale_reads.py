#!/usr/bin/env python3
"""integ_stale_reads: `bftkv get --stale` reads one replica, and says what that
costs (docs/design.md §5.3 "Stale reads", include/bftkv/client.h
BFTKV_CLIENT_STALE_READS).

A 4-replica group (f = 1), durability none, holds k = v.

  1. `get --stale k` reads v.
  2. Replica 2 restarts Byzantine (wrong-result: a quarter of its replies carry
     a fabricated result with a valid MAC). Client 2's stale reads ask replica
     2 first (each handle's lanes start at (client + lane) mod n): among 40 of
     them at least one answers something other than v -- one replica's answer
     is taken as is, which is why stale reads are never the default -- while
     every ordered get of the same client reads v (f + 1 matching replies).
  3. Replicas 1, 2 and 3 are killed: an ordered get fails (no quorum), and a
     stale read of client 1 (asking replica 1 first) moves past the dead
     replicas to replica 0 and reads v.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import EXIT_OK, EXIT_UNAVAILABLE, Cluster, check, log, run_test, wait_until  # noqa: E402

BYZ = 2


def body():
    c = Cluster("stale-reads", 4)
    c.start()
    c.must("put", "k", "v")
    rc, out, err = c.cli("get", "--stale", "k")
    check(rc == EXIT_OK and out == b"v", f"get --stale k: exit {rc}, {out!r}, {err.strip()}")

    c.restart(BYZ, byzantine="wrong-result", byzantine_seed=11)
    wait_until(f"replica {BYZ} holds state", lambda: (c.stats(BYZ) or {}).get("holds_state") is True, 30)
    answers = {}
    for _ in range(40):
        rc, out, err = c.cli("get", "--stale", "k", client=BYZ)
        key = out.decode(errors="replace") if rc == EXIT_OK else f"exit {rc}"
        answers[key] = answers.get(key, 0) + 1
    log(f"client {BYZ}'s 40 stale reads (replica {BYZ} first, Byzantine wrong-result): {answers}")
    check(set(answers) != {"v"}, "a Byzantine replica's fabricated answers were never taken by a stale read")
    for _ in range(5):
        rc, out, err = c.cli("get", "k", client=BYZ)
        check(rc == EXIT_OK and out == b"v", f"ordered get k: exit {rc}, {out!r}, {err.strip()}")
    s = c.stats(BYZ).get("byzantine_stats", {})
    log(f"replica {BYZ} byzantine_stats {s}")

    for i in (1, 2, 3):
        c.kill(i)
    rc, out, err = c.cli("get", "k", timeout_ms=2000)
    check(rc == EXIT_UNAVAILABLE, f"ordered get with 3 of 4 replicas down: exit {rc}, want {EXIT_UNAVAILABLE}")
    rc, out, err = c.cli("get", "--stale", "k", client=1, timeout_ms=10000)
    check(rc == EXIT_OK and out == b"v", f"get --stale k with only replica 0 up: exit {rc}, {out!r}, {err.strip()}")


if __name__ == "__main__":
    run_test(body, budget_s=120)
