#!/usr/bin/env python3
"""integ_deployment_history: a partitioned deployment (M = 7 nodes, R = 4,
P = 16 on 127.0.0.1) under bftkv-bench load with --history --final-read,
checked by build/bftkv-lincheck (per-key linearizability), through two faults
of the node that is the primary of the most partitions:

  1. kill -9 of that node 3 s into a 10 s run: every partition it was a replica
     of changes view or carries on without it; the history (final reads
     included) must be linearizable, so nothing acknowledged is lost, and
     operations must complete after the kill;
  2. that node restarted as a Byzantine node (--byzantine mix: it drops and
     corrupts per message, in every partition it hosts at once) for a second
     6 s run, with the same checks.

A partition that stopped serving would leave the bench's handles on its keys
timing out: the run's completed operations after the fault and the bench's
exit status show it.
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from test_deployment_discover import PLACEMENT_KEY, siphash24  # noqa: E402
from integ import BUILD, Cluster, check, history_load, log, outcome_counts, run, run_test, spawn  # noqa: E402

M, R, P = 7, 4, 16
KEYS = 400


def bench_cmd(c, hist, seconds, prefill, out):
    # --prefill: the second run's history starts with a write of every key, so
    # what the first run left is overwritten before its reads (each history is
    # checked on its own).
    return [os.path.join(BUILD, "bftkv-bench"), "--config", c.conf, "--cluster-dir", c.dir, "--duration",
            str(seconds), "--warmup", "0", "--final-read", "--read-ratio", "0.4", "--keys", str(KEYS),
            "--clients", "16", "--history", hist, "--format", "json", "--out", out] + (["--prefill"] if prefill else [])


def partitions_check(out, what):
    """The bench's per-partition throughput (a deployment's JSON): one figure
    per partition, each above zero (every partition served during the run), and
    together the run's throughput."""
    with open(out, encoding="utf-8") as fp:
        r = json.load(fp)["benchmarks"][0]
    per = r.get("partition_items_per_second")
    check(r.get("partitions") == P and per is not None and len(per) == P,
          f"{what}: the bench reports {r.get('partitions')} partitions, {per}")
    log(f"{what}: ops/s per partition {[round(x) for x in per]}")
    check(all(x > 0 for x in per), f"{what}: a partition served nothing: {per}")
    check(abs(sum(per) - r["items_per_second"]) <= 0.01 * r["items_per_second"] + 1,
          f"{what}: partitions sum to {sum(per):.0f} ops/s, the run {r['items_per_second']:.0f}")


def history_check(hist, fault_ns, what):
    _, ops = history_load(hist)
    outcomes = outcome_counts(ops)
    after = [o for o in ops if o["outcome"] == "ok" and o["phase"] != "final" and o["invoke_ns"] > fault_ns]
    log(f"{what}: {len(ops)} ops, outcomes {outcomes}, {len(after)} completed ok after the fault")
    check(after, f"{what}: no operation completed after the fault")
    # Every partition kept serving: each has operations completed after the
    # fault (a key's partition as cluster/placement.c computes it).
    per = {}
    for o in after:
        p = siphash24(PLACEMENT_KEY, b"k" + o["key"].encode()) & (P - 1)  # cluster/placement.c
        per[p] = per.get(p, 0) + 1
    log(f"{what}: ok operations after the fault per partition {dict(sorted(per.items()))}")
    check(sorted(per) == list(range(P)), f"{what}: partitions without an operation after the fault: "
          f"{sorted(set(range(P)) - set(per))}")
    finals = [o for o in ops if o["phase"] == "final"]
    check(finals and all(o["outcome"] == "ok" for o in finals), f"{what}: a final read failed")
    r = run([os.path.join(BUILD, "bftkv-lincheck"), hist], timeout=120)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    for line in out.splitlines()[:10]:
        log(f"  lincheck: {line}")
    check(r.returncode == 0, f"{what}: bftkv-lincheck exit {r.returncode} (want 0: linearizable)")


def timed_run(c, tmp, name, seconds, fault_at_s, fault, prefill=False):
    """The bench for `seconds` with fault() called fault_at_s into it; returns
    the history's path and the fault's time on the bench's clock (CLOCK_MONOTONIC)."""
    hist = os.path.join(tmp, f"{name}.jsonl")
    out = os.path.join(tmp, f"{name}.json")
    p = spawn(bench_cmd(c, hist, seconds, prefill, out))
    time.sleep(fault_at_s)
    fault_ns = time.monotonic_ns()
    fault()
    try:
        p.wait(seconds + 60)
    except Exception:  # noqa: BLE001
        p.kill()
        raise
    check(p.returncode == 0, f"{name}: bftkv-bench exit {p.returncode}")
    partitions_check(out, name)
    os.unlink(out)
    return hist, fault_ns


def body():
    for exe in ("bftkv-bench", "bftkv-lincheck"):
        check(os.access(os.path.join(BUILD, exe), os.X_OK), f"{exe} is not built")
    c = Cluster("deployment-history", M, deployment=(R, P))
    c.start()
    with open(os.path.join(c.dir, "map.json"), encoding="utf-8") as fp:
        sets = json.load(fp)["partition_replicas"]
    first = [s[0] for s in sets]
    victim = max(range(M), key=first.count)
    log(f"node {victim}: primary of {first.count(victim)} partitions, replica of {sum(victim in s for s in sets)}")
    tmp = tempfile.mkdtemp(prefix="bftkv-deployment-history-")
    hist, at = timed_run(c, tmp, "kill", 10, 3.0, lambda: c.kill(victim))
    history_check(hist, at, "kill -9")
    hist2, at2 = timed_run(c, tmp, "byzantine", 6, 0.5,
                           lambda: c.restart(victim, byzantine="mix", byzantine_seed=7), prefill=True)
    history_check(hist2, at2, "byzantine")
    st = c.stats(victim)  # its replica of the first partition it hosts
    check(st is not None and st.get("byzantine") == "mix", f"node {victim} does not run mix: {st and st.get('byzantine')}")
    b = st.get("byzantine_stats", {})
    log(f"node {victim} (first partition) byzantine_stats {b}")
    check(b.get("dropped", 0) + b.get("corrupted", 0) > 0, f"node {victim} lied about nothing: {b}")
    for h in (hist, hist2):
        os.unlink(h)
    os.rmdir(tmp)


if __name__ == "__main__":
    run_test(body, budget_s=200)
