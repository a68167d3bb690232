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

With --deployment, on M = 5 nodes hosting P = 8 partitions of R = 4: one row
per node and partition it hosts, exactly the map's replica sets; one node
killed: exit 5, its rows say no answer; a second node killed: exit 3, and the
summary counts as below quorum exactly the partitions that hold both.
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


def deployment_body():
    M, R, P = 5, 4, 8
    c = Cluster("status-deployment", M, deployment=(R, P))
    c.start()
    with open(os.path.join(c.dir, "map.json"), encoding="utf-8") as fp:
        sets = json.load(fp)["partition_replicas"]

    def status_rows():
        rc, out, err = c.cli("--json", "status", timeout=30, timeout_ms=1000)
        lines = [json.loads(x) for x in out.splitlines()]
        check(lines and lines[-1].get("summary") is True and lines[-1]["exit"] == rc, f"summary: {out[-300:]}")
        return rc, lines[:-1], lines[-1]

    rc, rows, summary = wait_until("status exits 0 on the deployment", lambda: (lambda r: r if r[0] == 0 else None)(
        status_rows()), 20)
    by_part = {}
    for r in rows:
        by_part.setdefault(r["partition"], set()).add(r["node"])
    check(by_part == {p: set(s) for p, s in enumerate(sets)}, f"rows per partition {by_part}, map {sets}")
    check(summary["partitions"] == P and summary["replicas"] == P * R, f"summary {summary}")

    c.kill(1)
    rc, rows, summary = status_rows()
    check(rc == 5, f"exit {rc} with node 1 down (expected 5)")
    dead = [r for r in rows if r["node"] == 1]
    check(dead and all(not r["answered"] and not r["healthy"] for r in dead), f"node 1's rows: {dead}")
    check(all(r["healthy"] for r in rows if r["node"] != 1), "the other nodes' rows healthy")

    c.kill(3)
    rc, rows, summary = status_rows()
    both = sum(1 for s in sets if 1 in s and 3 in s)
    log(f"nodes 1 and 3 down: {both} of {P} partitions hold both; summary {summary}")
    check(summary["partitions_below_quorum"] == both, f"below quorum {summary['partitions_below_quorum']}, want {both}")
    check(rc == (3 if both else 5), f"exit {rc}")
    rc, out, err = c.cli("status", timeout=30, timeout_ms=1000)
    check(f"{both} below quorum" in out.decode(), f"the table's summary line: {out.decode()[-200:]}")
    c.stop()


if __name__ == "__main__":
    run_test(deployment_body if "--deployment" in sys.argv[1:] else body, budget_s=90)
