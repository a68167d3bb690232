#!/usr/bin/env python3
"""integ_deployment: a partitioned deployment, M = 7 nodes, R = 4, P = 16, on
127.0.0.1 (tools/cluster create --nodes; docs/design.md §6.3).

Each node hosts a replica of every partition the map places on it. Puts and
gets through the CLI of 128 keys (spread over the 16 partitions by the key
hash: the chance that one partition gets none is below 1e-3) read back what was
written. Then integ_load (4 writers over 256 keys, every acknowledged write
remembered) runs while the node that is the primary of the most partitions is
killed with SIGKILL: writes must still be acknowledged after the kill in every
partition (a partition that stopped serving would leave its writers timing out:
integ_load exits non-zero), no read returns a wrong value and every
acknowledged write reads back at the end. Finally the CLI puts and gets again.

  --threads K   the nodes run protocol_threads K (partition p on thread p mod K,
                its own socket on the node's port + (p mod K) * M).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, Load, check, log, run_test  # noqa: E402
from test_metrics import metrics_ports, scrape  # noqa: E402

M, R, P = 7, 4, 16
THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv[1:] else 1
LOAD_S = 10.0
KILL_AT_S = 3.0


def put_get_round(c, tag, count):
    for k in range(count):
        c.must("put", f"{tag}-key-{k}", f"{tag}-value-{k}")
    for k in range(count):
        out = c.must("get", f"{tag}-key-{k}")
        check(out == f"{tag}-value-{k}".encode(), f"get {tag}-key-{k}: {out!r}")


def node_metrics(c, sets, node):
    """Scrape node's /metrics (tools/cluster writes metrics_listen per node),
    parsed strictly: one series per hosted partition of each family, and
    nothing of a partition it does not host. Returns {partition: executed}."""
    ports = metrics_ports(c.conf)
    check(node in ports, f"no metrics_listen for node {node}: {ports}")
    (types, series), _ = scrape(ports[node])
    hosted = {str(p) for p, s in enumerate(sets) if node in s}
    parts = {dict(lab).get("partition") for (name, lab) in series if name != "bftkv_build_info"
             and name != "bftkv_metrics_snapshot_age_seconds"}
    check(parts == hosted, f"node {node}'s series name partitions {sorted(parts)}, it hosts {sorted(hosted)}")
    executed = {dict(lab)["partition"]: v for (name, lab), v in series.items() if name == "bftkv_requests_executed_total"}
    check(set(executed) == hosted, f"requests_executed per partition: {executed}")
    return executed


def body():
    c = Cluster("deployment", M, deployment=(R, P), settings=(f"protocol_threads {THREADS}",))
    c.start()
    with open(os.path.join(c.dir, "map.json"), encoding="utf-8") as fp:
        m = json.load(fp)
    sets = m["partition_replicas"]
    check(len(sets) == P and all(len(s) == R for s in sets), f"map: {sets}")
    scrape_before = node_metrics(c, sets, 0)
    put_get_round(c, "before", 128)
    log("128 keys put and read back across the partitions")
    scrape_after = node_metrics(c, sets, 0)
    grew = [p for p in scrape_after if scrape_after[p] > scrape_before[p]]
    log(f"node 0's metrics: requests executed grew in partitions {grew}")
    check(grew, "node 0's requests_executed counters did not move")

    # The node that is replica 0 (the primary of view 0) of the most partitions.
    first = [s[0] for s in sets]
    victim = max(range(M), key=first.count)
    log(f"node {victim} is the primary of {first.count(victim)} partitions and a replica of "
        f"{sum(victim in s for s in sets)}")
    load = Load(c, client=1, writers=4, keys=256, seconds=LOAD_S)
    time.sleep(KILL_AT_S)
    c.kill(victim)
    load.mark()
    rc, res = load.wait()
    log(f"load result: {res}")
    check(res["acks"] > 0, "no write acknowledged at all")
    check(res["acks_after_mark"] > 0, f"no write acknowledged after node {victim} was killed")
    check(res["wrong"] == 0, f"{res['wrong']} reads returned a wrong value")
    check(res["lost"] == 0, f"{res['lost']} acknowledged writes not readable at the end")
    check(rc == 0, f"integ_load exit {rc} (errors {res['errors']}): some partition stopped serving?")
    put_get_round(c, "after", 64)
    log("64 more keys put and read back with a node down")


if __name__ == "__main__":
    run_test(body, budget_s=150)
