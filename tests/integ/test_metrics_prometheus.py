#!/usr/bin/env python3
"""integ_metrics_prometheus: a real Prometheus (Debian's `prometheus`) scrapes a
running 4-replica group with the example configuration of tools/deploy/
(prometheus.yml with its rules file, the targets rewritten to this cluster's
metrics ports, a 1 s interval): every target becomes healthy, the rules load,
and after a write load a PromQL query returns each replica's executed-request
counter, equal to that replica's admin stats once quiet (not across replicas: one
that fell behind and caught up by state transfer executed fewer requests itself). Exit 77 (skipped)
when prometheus is not installed. Prometheus listens on 127.0.0.1 at the port
after the cluster's metrics ports and is stopped by its pid.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, Load, check, log, run_test, wait_until  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
DEPLOY = os.path.join(REPO, "tools", "deploy")


def api(port, path, **params):
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as r:
        d = json.load(r)
    check(d.get("status") == "success", f"{path}: {d}")
    return d["data"]


def body():
    prom = shutil.which("prometheus")
    if prom is None:
        print("prometheus is not installed (Debian: prometheus): skipped")
        sys.exit(77)
    c = Cluster("metrics-prom", 4, settings=["client_lanes 16"], clients=4)
    targets, replica_of = [], {}
    with open(c.conf) as f:
        for line in f:
            w = line.split("#")[0].split()
            if len(w) == 3 and w[0] == "metrics_listen":
                targets.append(w[2])
                replica_of[w[2]] = int(w[1])
    check(len(targets) == 4, f"metrics_listen lines: {targets}")
    web_port = c.base_port + 8
    work = tempfile.mkdtemp(prefix="bftkv-integ-prom-")
    with open(os.path.join(DEPLOY, "prometheus.yml")) as f:
        conf = f.read()
    conf = re.sub(r"targets: \[.*\]", "targets: [" + ", ".join(f'"{t}"' for t in targets) + "]", conf)
    conf = conf.replace("scrape_interval: 5s", "scrape_interval: 1s").replace("scrape_timeout: 2s", "scrape_timeout: 1s")
    conf = conf.replace("evaluation_interval: 15s", "evaluation_interval: 1s")
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write(conf)
    shutil.copy(os.path.join(DEPLOY, "bftkv-alerts.yml"), work)
    c.start()
    logf = open(os.path.join(work, "prometheus.log"), "w")
    p = subprocess.Popen([prom, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
                          f"--web.listen-address=127.0.0.1:{web_port}"], stdout=logf, stderr=subprocess.STDOUT,
                         cwd=work)
    log(f"prometheus pid {p.pid} on 127.0.0.1:{web_port}, targets {targets}")
    try:
        def ready():
            try:
                return api(web_port, "targets")
            except OSError:
                return None
        wait_until("prometheus answers", ready, 30)

        def all_up():
            act = api(web_port, "targets")["activeTargets"]
            health = sorted((t["labels"]["instance"], t["health"], t.get("lastError", "")) for t in act)
            return len(act) == 4 and all(h == "up" for _, h, _ in health) and health
        log(f"targets: {wait_until('every target up', all_up, 30)}")
        groups = api(web_port, "rules")["groups"]
        check(groups and len(groups[0]["rules"]) == 8, f"the 8 alerting rules loaded: {groups}")

        load = Load(c, client=1, writers=4, keys=64, seconds=3.0)
        rc, result = load.wait()
        check(rc == 0, f"integ_load exit {rc}")

        check(result["acks"] > 0 and result["errors"] == 0, f"the load: {result}")
        first = {i: c.stats(i)["requests_executed"] for i in range(4)}
        check(max(first.values()) >= result["acks"], f"the stats count the load's writes: {first}, {result}")

        def executed():
            want = {i: c.stats(i)["requests_executed"] for i in range(4)}
            res = api(web_port, "query", query='bftkv_requests_executed_total{job="bftkv"}')["result"]
            got = {replica_of.get(r["metric"]["instance"]): float(r["value"][1]) for r in res}
            return got == want and got
        vals = wait_until("each replica's executed counter in Prometheus equals its admin stats'", executed, 20)
        log(f"bftkv_requests_executed_total per replica: {vals}")
        res = api(web_port, "query", query='sum(up{job="bftkv"})')["result"]
        check(float(res[0]["value"][1]) == 4, f"up: {res}")
        firing = [a for a in api(web_port, "alerts")["alerts"] if a["state"] == "firing"]
        check(not any(a["labels"]["alertname"] in ("BftkvSafetyViolation", "BftkvReplicaDown") for a in firing),
              f"no safety or down alert: {firing}")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
        logf.close()
    shutil.rmtree(work, ignore_errors=True)
    c.stop()


if __name__ == "__main__":
    run_test(body, budget_s=120)
