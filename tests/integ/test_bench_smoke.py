#!/usr/bin/env python3
"""integ_bench_smoke: bftkv-bench for 2 s against a 4-replica cluster;
its JSON must parse and carry, in Google Benchmark's layout, a benchmark with
throughput (items_per_second > 0), p50/p99 latencies, CPU and datagrams per
operation, and no errors, and its context says the default workload: 16-byte
fresh values, no prefill. Then --load-points 0.5: one entry for the closed-loop
peak and one for the open loop at half of it, named <label>/peak and
<label>/load50, the second offered half the first's throughput. Then
--value-size 0 --prefill: the context labels the run 0/0 and reports every key
written once before it.
"""

import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import BUILD, Cluster, check, log, run, run_test  # noqa: E402


def body():
    c = Cluster("bench-smoke", 4, settings=["client_lanes 16"], clients=4)
    c.start()
    bench = os.path.join(BUILD, "bftkv-bench")
    check(os.access(bench, os.X_OK), f"{bench} is not built")
    out = os.path.join(tempfile.mkdtemp(prefix="bftkv-bench-smoke-"), "r.json")
    r = run([bench, "--config", c.conf, "--cluster-dir", c.dir, "--duration", "2", "--warmup", "0.5",
             "--clients", "16", "--read-ratio", "0.5", "--format", "json", "--out", out], timeout=30)
    check(r.returncode == 0, f"bftkv-bench exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    with open(out) as f:
        d = json.load(f)
    log(f"context N={d['context']['N']} f={d['context']['f']}")
    b = d["benchmarks"][0]
    log(f"{b['name']}: {b['items_per_second']:.0f} ops/s p50 {b['p50']} ns p99 {b['p99']} ns")
    check(d["context"]["N"] == 4, "context N")
    check(b["run_type"] == "iteration" and b["time_unit"] == "ns", "layout")
    check(b["items_per_second"] > 0 and b["iterations"] > 0, "throughput")
    check(0 < b["p50"] <= b["p90"] <= b["p99"] <= b["p999"], "percentiles")
    check(b["cpu_per_op_us"] is not None and b["cpu_per_op_us"] > 0, "cpu per op")
    check(b["datagrams_per_op"] is not None and b["datagrams_per_op"] > 0, "datagrams per op")
    check(b["errors"] == 0, f"{b['errors']} errors")
    ctx = d["context"]
    log(f"values {ctx['values']} ({ctx['workload']}), value_size {ctx['value_size']}, prefill {ctx['prefill']}")
    check(ctx["value_size"] == 16 and ctx["values"] == "fresh", "default: 16-byte fresh values")
    check(ctx["prefill"] is False, "default: no prefill")

    r = run([bench, "--config", c.conf, "--cluster-dir", c.dir, "--duration", "1", "--warmup", "0.3",
             "--clients", "16", "--load-points", "0.5", "--label", "smoke", "--format", "json", "--out", out],
            timeout=30)
    check(r.returncode == 0, f"bftkv-bench --load-points exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    with open(out) as f:
        d = json.load(f)
    names = [b["name"] for b in d["benchmarks"]]
    log(f"load points: {names}")
    check(names == ["smoke/peak", "smoke/load50"], f"phase names {names}")
    peak, half = d["benchmarks"]
    check(peak["mode"] == "closed" and half["mode"] == "open", "phase modes")
    check(abs(half["offered_rate"] - peak["items_per_second"] / 2) <= 1, "load point offered half the peak")
    check(half["items_per_second"] > 0 and 0 < half["p50"] <= half["p99"], "load point measured")
    check(d["context"]["load_points"] == [0.5], "context load_points")

    r = run([bench, "--config", c.conf, "--cluster-dir", c.dir, "--duration", "0.5", "--warmup", "0.2",
             "--clients", "16", "--value-size", "0", "--prefill", "--keys", "2000", "--format", "json", "--out", out],
            timeout=30)
    check(r.returncode == 0, f"bftkv-bench --prefill exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    with open(out) as f:
        ctx = json.load(f)["context"]
    log(f"0/0 run: {ctx['workload']}; prefill {ctx['prefill_keys']} keys in {ctx['prefill_s']} s")
    check(ctx["value_size"] == 0 and ctx["values"] == "0/0" and "change nothing" in ctx["workload"], "0/0 labelled")
    check(ctx["prefill"] is True and ctx["prefill_keys"] == 2000, "prefill of every key")
    check(ctx["prefill_complete"] is True and ctx["prefill_failed"] == 0, "prefill complete, nothing failed")
    os.unlink(out)
    os.rmdir(os.path.dirname(out))
    c.stop()


if __name__ == "__main__":
    run_test(body, budget_s=60)
