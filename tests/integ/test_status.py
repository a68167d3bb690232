#!/usr/bin/env python3
"""integ_status: `bftkv status`, the deployment's health in one command
(tools/cli/status.c), on a 4-replica group:

- all up: exit 0, every row healthy, the --json lines parse (one object per
  replica, then a summary whose exit matches);
- after some writes: every replica at the same last executed, digests agree;
- one replica killed: exit 5 (degraded: a quorum still healthy), its row says
  no answer, --json says answered false;
- restarted and caught up (tools/cluster restart waits for it): exit 0 again;
- two replicas killed: exit 3 (fewer than q = 3 healthy).
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, check, log, run_test, wait_until  # noqa: E402


def status(c, *extra):
    rc, out, err = c.cli("status", *extra, timeout=30, timeout_ms=1000)
    return rc, out.decode(), err


def status_json(c):
    rc, out, err = status(c, "--json")
    lines = [json.loads(x) for x in out.splitlines()]
    check(len(lines) == c.n + 1, f"{c.n} replica objects and a summary: {out}")
    check(lines[-1].get("summary") is True and lines[-1]["exit"] == rc, f"summary {lines[-1]} (exit {rc})")
    rows = {x["replica"]: x for x in lines[:-1]}
    check(sorted(rows) == list(range(c.n)), "one object per replica")
    return rc, rows


def body():
    c = Cluster("status", 4, clients=4)
    c.start()
    rc, out, err = status(c)
    log("status, all up:\n" + out)
    check(rc == 0, f"exit {rc} with every replica up: {err}")
    rows = [x for x in out.splitlines() if re.match(r"^\d+ +\S+:\d+ ", x)]
    check(len(rows) == 4 and all(x.endswith(" ok") for x in rows), "four healthy rows")
    for i in range(20):
        c.must("put", f"s{i}", f"v{i}")

    def settled():
        rc, rows = status_json(c)
        return rc == 0 and all(r["digest"] == "agrees" and r["behind"] == 0 for r in rows.values()) and rows
    rows = wait_until("every replica at the same point, digests agreeing", settled, 20)
    check(len({r["last_executed"] for r in rows.values()}) == 1, "one last_executed")

    c.kill(3)
    rc, out, err = status(c)
    log("status, replica 3 killed:\n" + out)
    check(rc == 5, f"exit {rc} with one replica down (expected 5: degraded)")
    row3 = [x for x in out.splitlines() if re.match(r"^3 +\S+:\d+ ", x)]
    check(row3 and row3[0].endswith("no answer"), f"row of replica 3: {row3}")
    rc, rows = status_json(c)
    check(rc == 5 and rows[3]["answered"] is False and not rows[3]["healthy"], f"--json: {rows[3]}")
    check(all(rows[i]["healthy"] for i in range(3)), "the others healthy")

    c.restart(3)
    rc = wait_until("status exits 0 after the rejoin", lambda: status(c)[0] == 0 or None, 30)
    rc, out, err = status(c)
    log("status, replica 3 back:\n" + out)
    check(rc == 0, f"exit {rc}")

    c.kill(1)
    c.kill(3)
    rc, out, err = status(c)
    log("status, replicas 1 and 3 killed:\n" + out)
    check(rc == 3, f"exit {rc} with two of four down (expected 3: fewer than a quorum healthy)")
    c.stop()


if __name__ == "__main__":
    run_test(body, budget_s=90)
