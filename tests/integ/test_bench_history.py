#!/usr/bin/env python3
"""integ_bench_history: bftkv-bench's --history on a fresh 4-replica cluster,
checked by build/bftkv-lincheck (the simulator's per-key linearizability
checker reading the bench's format, docs/benchmarks.md "The history").

2 s of load without warm-up (--warmup 0), PUTs, GETs and DELs (--del-ratio 0.1)
on 300 keys, then --final-read. The history must be complete and well formed:
a header with the seed, every operation with an outcome (ok, fail, unknown), no
warm-up operations, unique PUT values carrying the run's tag, one client never
overlapping itself nor going on after an unknown outcome, a final read of every
key the load touched. Then:

  (default)   bftkv-lincheck accepts the history (exit 0);
  --mutate    one GET is made to return the value of a PUT on its key that was
              invoked only after the GET had returned (a read from the future),
              and bftkv-lincheck must reject it (exit 1) naming that key;
  --prefill   the bench writes every key once before the load (--prefill): the
              history must hold exactly one "prefill" PUT per key, each returned
              before the first operation of the load, the load's GETs must read
              prefill values, and bftkv-lincheck accepts the whole history.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import BUILD, Cluster, check, history_load, log, run, run_test  # noqa: E402

MUTATE = "--mutate" in sys.argv[1:]
PREFILL = "--prefill" in sys.argv[1:]
KEYS = 300


def check_history(head, ops):
    check(head["bftkv_bench_history"] == 1, "header version 1")
    check(isinstance(head["seed"], int), "header seed")
    check(head["warmup_s"] == 0 and head["final_read"] is True and head["prefill"] is PREFILL, "header options")
    check(head["ops"] == len(ops), f"header says {head['ops']} operations, the file has {len(ops)}")
    kinds = {"put": 0, "get": 0, "del": 0}
    outcomes = {"ok": 0, "fail": 0, "unknown": 0}
    values = set()
    for o in ops:
        kinds[o["op"]] += 1
        outcomes[o["outcome"]] += 1
        phases = ("prefill", "measure", "after", "final") if PREFILL else ("measure", "after", "final")
        check(o["phase"] in phases, f"phase {o['phase']} in a run without warm-up")
        if o["op"] == "put":
            v = o["value"]
            check(len(v) == 16 and v.startswith(head["run_tag"]), f"put value {v} carries the run tag")
            check(v not in values, f"put value {v} written twice")
            values.add(v)
        if o["outcome"] == "ok":
            check(o["return_ns"] is not None and o["return_ns"] >= o["invoke_ns"], "ok op returned")
    log(f"history: {len(ops)} ops {kinds}, outcomes {outcomes}")
    check(all(kinds.values()), f"every kind of operation ran: {kinds}")
    # A client is sequential and ends with an unknown outcome.
    by_client = {}
    for o in ops:
        by_client.setdefault(o["client"], []).append(o)
    for c, lst in by_client.items():
        lst.sort(key=lambda o: o["invoke_ns"])
        for a, b in zip(lst, lst[1:]):
            check(a["outcome"] != "unknown", f"client {c} invoked again after an unknown outcome")
            check(a["return_ns"] is not None and a["return_ns"] <= b["invoke_ns"], f"client {c} overlaps itself")
    touched = {o["key"] for o in ops if o["phase"] != "final"}
    finals = [o for o in ops if o["phase"] == "final"]
    check({o["key"] for o in finals} == touched and len(finals) == len(touched),
          f"{len(finals)} final reads for {len(touched)} touched keys")
    check(all(o["op"] == "get" for o in finals), "final reads are GETs")
    if PREFILL:
        check_prefill(ops)


def check_prefill(ops):
    """One PUT of every key in phase prefill, all returned ok before the load's
    first invocation; some GET of the load read a value the prefill wrote."""
    pre = [o for o in ops if o["phase"] == "prefill"]
    load = [o for o in ops if o["phase"] in ("measure", "after")]
    keys = sorted(o["key"] for o in pre)
    log(f"prefill: {len(pre)} writes of {len(set(keys))} keys")
    check(all(o["op"] == "put" for o in pre), "prefill operations are PUTs")
    check(len(keys) == KEYS and len(set(keys)) == KEYS, f"{len(pre)} prefill PUTs on {len(set(keys))} keys, want {KEYS}")
    check(all(o["outcome"] == "ok" for o in pre), "every prefill PUT returned ok")
    first = min(o["invoke_ns"] for o in load)
    check(max(o["return_ns"] for o in pre) <= first, "the prefill ended before the load began")
    prefilled = {o["value"] for o in pre}
    read = [o for o in load if o["op"] == "get" and o["outcome"] == "ok" and o["value"] in prefilled]
    log(f"load GETs that read a prefill value: {len(read)}")
    check(read, "no GET of the load read a value the prefill wrote")


def mutate(ops):
    """A GET returning (ok) a value, and a PUT on its key invoked after the GET
    returned: the GET now claims that PUT's value. Returns the key."""
    puts = {}
    for o in ops:
        if o["op"] == "put":
            puts.setdefault(o["key"], []).append(o)
    for g in ops:
        if g["op"] != "get" or g["outcome"] != "ok" or g["result"] != "ok":
            continue
        later = [p for p in puts.get(g["key"], []) if p["invoke_ns"] > g["return_ns"]]
        if later:
            log(f"mutant: get of {g['key']} returned {g['value']}, now {later[0]['value']} (written later)")
            g["value"] = later[0]["value"]
            return g["key"]
    raise AssertionError("no GET followed by a PUT of its key: cannot build the mutant")


def body():
    c = Cluster("bench-history", 4, clients=4)
    c.start()
    bench = os.path.join(BUILD, "bftkv-bench")
    checker = os.path.join(BUILD, "bftkv-lincheck")
    for exe in (bench, checker):
        check(os.access(exe, os.X_OK), f"{exe} is not built")
    tmp = tempfile.mkdtemp(prefix="bftkv-bench-history-")
    hist = os.path.join(tmp, "history.jsonl")
    r = run([bench, "--config", c.conf, "--cluster-dir", c.dir, "--duration", "2", "--warmup", "0",
             "--final-read", "--del-ratio", "0.1", "--read-ratio", "0.4", "--keys", str(KEYS), "--history", hist]
            + (["--prefill"] if PREFILL else []), timeout=60)
    err = r.stderr.decode(errors="replace")
    for line in err.splitlines():
        log(f"  bench: {line}")
    check(r.returncode == 0, f"bftkv-bench exit {r.returncode}")
    head, ops = history_load(hist)
    check_history(head, ops)
    if MUTATE:
        key = mutate(ops)
        with open(hist, "w") as f:
            for o in [head] + ops:
                f.write(json.dumps(o, separators=(",", ":")) + "\n")
    r = run([checker, hist], timeout=60)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    for line in out.splitlines()[:20]:
        log(f"  lincheck: {line}")
    if MUTATE:
        check(r.returncode == 1, f"bftkv-lincheck exit {r.returncode} on the mutant (want 1: not linearizable)")
        check(f"key {key}" in out, f"the report names key {key}")
    else:
        check(r.returncode == 0, f"bftkv-lincheck exit {r.returncode} (want 0: linearizable)")
    os.unlink(hist)
    os.rmdir(tmp)
    c.stop()


if __name__ == "__main__":
    run_test(body, budget_s=80)
