#!/usr/bin/env python3
"""integ_sessions: many `bftkv` processes of one client id at once.

Twenty shell-like loops run `bftkv put` concurrently, 50 puts each, all with the
default options: the same client id (0, no --client), the config's timeout. Each
run leases a lane of client 0 of its own (include/bftkv/client.h, "Sessions"), so
none disturbs another: every put must succeed (exit 0), and afterwards every key
must read back its value. Before sessions, runs sharing a client id shared lane
0, and the replicas dropped the older of two concurrent requests: about one put
in 80 timed out and was lost.

The cluster has client_lanes 64 (the runs need at most 20 lanes at a time).
"""

import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import CLI, Cluster, check, log, run, run_test, text  # noqa: E402

LOOPS = 20
PUTS = 50
SETTINGS = ("client_lanes 64",)


def body():
    c = Cluster("sessions", 4, settings=SETTINGS)
    c.start()
    c.must("put", "warm-up", "1")
    failures = []
    lock = threading.Lock()

    def loop(l, op):
        for i in range(PUTS):
            key, val = f"k{l}-{i}", f"v{l}-{i}"
            args = ["put", key, val] if op == "put" else ["get", key]
            r = run([CLI, "--config", c.conf] + args, timeout=60.0)
            ok = r.returncode == 0 and (op == "put" or r.stdout == val.encode())
            if not ok:
                with lock:
                    failures.append(f"{op} {key}: exit {r.returncode}, stdout {r.stdout[:60]!r}, "
                                    f"stderr {text(r.stderr).strip()[:400]!r}")

    for op in ("put", "get"):
        log(f"{LOOPS} concurrent loops x {PUTS} `bftkv {op}`, client 0, default options")
        threads = [threading.Thread(target=loop, args=(l, op), daemon=True) for l in range(LOOPS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(200)
            check(not t.is_alive(), f"a {op} loop still runs after 200 s")
        log(f"{op}: {len(failures)} failure(s)")
        for f in failures[:10]:
            log(f"  {f}")
        check(not failures, f"{len(failures)} of {LOOPS * PUTS} `bftkv {op}` runs failed, first: {failures[0]}"
              if failures else "")


if __name__ == "__main__":
    run_test(body, budget_s=280)
