#!/usr/bin/env python3
"""integ_netfault_*: a group under real network faults. Each replica runs in its
own network namespace, the load (bftkv-bench) in another, all on one bridge
(tests/integ/netns.py); faults are nftables drop rules at the receiving replica
and, for loss and delay, netq (tests/integ/netq.c) behind an NFQUEUE rule.

    test_netfault.py --scenario S --n N [--seed X]

Scenarios (the fault starts 1 s into the load and is healed before the load
ends, so service after the heal is measured under load):

  primary-partition  the primary cut from every other replica (both ways) for
                     2.5 s; the clients still reach it
  split              no side has a quorum: {0,1}|{2,3} at N=4, {0,1,2}|{3..6} at
                     N=7, for 2 s
  oneway-primary     the primary still sends to the replicas but receives nothing
                     from them, for 2.5 s
  cut-link           only the link between replicas 0 and 1, both ways, for 5 s,
                     under 2000-byte values: every request reaches every
                     replica, so backup 1 watches requests that the others
                     order without it (before the lagging-backup rule of
                     engine/viewchange.c it suspected the primary and sat alone
                     in view 1 after the heal)
  lone-backup        backup 1 cut from every other replica (both ways) for 2 s,
                     under 2000-byte values, the clients still reaching it: it
                     watches requests it cannot see ordered, suspects the
                     primary and moves alone to view 1; after the heal the
                     primary steps down to it (docs/design.md §5.5.1)
  flapping           3 cycles: the current primary isolated for 0.8-1.4 s,
                     then whole for 0.8-1.4 s (durations drawn from the seed)
  loss               30% loss and 5 +- 5 ms delay on every replica-to-replica
                     packet (clients' links untouched), for 4 s

Checks, each able to fail on its own, all reported before the verdict:

  1. linearizable: build/bftkv-lincheck accepts the --history of the run;
  2. nothing acknowledged lost: the --final-read GETs of every touched key all
     returned (so the check in 1 sees every key's last value);
  3. every replica back in the group's view after the heal, and still there
     once the load is over: each answers stats
     with the view most active replicas hold, not in a view change, holding
     state, within BACK_BOUND_S of the heal (the load goes on for 2 s after
     the heal, then one `bftkv put` per poll keeps the group busy, since a
     remedy may need progress to notice a replica left behind);
  4. the replicas converge: same last_executed and state digest once quiet.

The time from the heal to "every replica back" is measured by polling every
replica's stats from the clients' namespace (one `bftkv stats` per replica, a
round takes ~20-60 ms on the loaded 2-core CI machine), and printed; it is only
held to the generous BACK_BOUND_S (10 s), since polling and this script's own
scheduling are in it. The tight bound of docs/design.md §5.5.1 is checked on the
replicas' own clocks instead: in the first poll that finds every replica back,
each replica's view_active_since_ns (CLOCK_MONOTONIC, the clock this script
reads too) says when it entered that view, and the last of them must come within
2 x the largest view-change timeout in force + T of the moment the heal began
(the simulator's rejoin bound). The servers run with request_timeout_ms 200
(REQUEST_TIMEOUT_MS below). Also printed per run: ops/s, each replica's
viewchanges and request_timeouts, client timeouts, netq's counts.

Exit 77 (ctest: skipped) where network namespaces, nft (and, for loss,
iptables and netq) are unavailable.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import netns  # noqa: E402
from integ import BUILD, TestFailure, check, log, run, run_test, spawn, text  # noqa: E402

SCENARIOS = ("primary-partition", "split", "oneway-primary", "cut-link", "lone-backup", "flapping", "loss")
FAULT_START_S = 1.0     # into the load
FAULT_S = {"primary-partition": 2.5, "split": 2.0, "oneway-primary": 2.5, "cut-link": 5.0, "lone-backup": 2.0,
           "flapping": 7.0, "loss": 4.0}  # how long each fault lasts (flapping: at most)
AFTER_HEAL_S = 2.0      # of load after the heal
BACK_BOUND_S = 10.0     # heal -> every replica back in the group's view (see the opening comment)
# T, the servers' request_timeout_ms: 200, not the default 50, so that the tight
# rejoin bound (2 x the view-change timeout + T, at least 600 ms) leaves room for
# the scheduling delays of a loaded 2-core CI machine (one such run at T = 50
# measured 191 ms against 150); the simulator checks the same bound at the
# default T on a simulated clock, where nothing else runs.
REQUEST_TIMEOUT_MS = 200
REQUEST_TIMEOUT_NS = REQUEST_TIMEOUT_MS * 1_000_000
CONVERGE_BOUND_S = 10.0
POLL_S = 0.05
LOSS_PCT, DELAY_MS, JITTER_MS = 30, 5, 5
# cut-link: values above the inline limit (BFTKV_INLINE_REQUEST_MAX, 1 KiB), so
# every request travels to every replica from the start and the cut-off backup
# watches them (engine/viewchange.c, request timers): the path by which a backup
# that cannot hear the primary comes to suspect it.
SCENARIO_BENCH_ARGS = {"cut-link": ["--value-size", "2000"], "lone-backup": ["--value-size", "2000"]}
BENCH_ARGS = ["--threads", "4", "--clients", "32", "--keys", "200", "--read-ratio", "0.4", "--del-ratio", "0.1",
              "--warmup", "0", "--final-read", "--format", "json"]


def group_view(sts):
    """The view most replicas that are not in a view change hold (ties: the
    highest), or None."""
    views = Counter(s["view"] for s in sts if s and not s["in_viewchange"])
    if not views:
        return None
    top = max(views.values())
    return max(v for v, k in views.items() if k == top)


def rejoin_time(sts, healed):
    """(ms from the heal until the last replica entered the view the snapshot
    shows them all in -- read from each replica's own CLOCK_MONOTONIC stamp,
    view_active_since_ns, so polling and scheduling of this script do not count
    -- 0 when none had to; the bound: 2 x the largest view-change timeout in
    force + T, the simulator's rejoin bound). Counting from the heal is the
    strict reading: a replica may have had to wait for the group to form the
    view (after a split without quorum), and that wait counts too."""
    healed_ns = int(healed * 1e9)
    since = [s["engine"].get("view_active_since_ns", 0) for s in sts]
    rejoin = max([0] + [t - healed_ns for t in since if t > healed_ns]) / 1e6
    bound = (2 * max(s["engine"]["viewchange_timeout_ns"] for s in sts) + REQUEST_TIMEOUT_NS) / 1e6
    return rejoin, bound


def all_stats(c):
    return [c.stats(i, timeout_ms=300) for i in range(c.n)]


def outsiders(sts):
    """Replicas not back in the group's view: [(i, why)]."""
    gv = group_view(sts)
    out = []
    for i, s in enumerate(sts):
        if s is None:
            out.append((i, "no stats answer"))
        elif gv is None or s["view"] != gv or s["in_viewchange"] or not s["holds_state"]:
            out.append((i, f"view {s['view']}{' (in a view change)' if s['in_viewchange'] else ''}"
                           f"{'' if s['holds_state'] else ' holding no state'}, group view {gv}"))
    return out


class Run:
    def __init__(self, c, net, scenario, seed, fault_s, bench_args):
        self.c, self.net, self.scenario, self.seed = c, net, scenario, seed
        self.fault_s, self.bench_args = fault_s, bench_args
        self.rng = random.Random(seed)
        self.tmp = c.dir  # removed with the cluster (kept with BFTKV_INTEG_KEEP=1)
        self.hist = os.path.join(self.tmp, "history.jsonl")
        self.out = os.path.join(self.tmp, "bench.json")
        self.duration_s = FAULT_START_S + fault_s + AFTER_HEAL_S
        self.t0 = None
        self.netq_counts = []

    def at(self, t):
        """Sleep until t seconds after the load started."""
        left = self.t0 + t - time.monotonic()
        if left > 0:
            time.sleep(left)

    def primary(self):
        gv = group_view(all_stats(self.c))
        check(gv is not None, "no replica outside a view change answers stats")
        return gv % self.c.n

    def start_bench(self):
        cmd = self.net.exec_argv() + [os.path.join(BUILD, "bftkv-bench"), "--config", self.c.conf,
                                      "--duration", f"{self.duration_s:g}", "--seed", str(self.seed),
                                      "--history", self.hist, "--out", self.out] + BENCH_ARGS + self.bench_args
        self.errlog = open(os.path.join(self.tmp, "bench.err"), "wb")
        self.bench = spawn(cmd, stdout=subprocess.DEVNULL, stderr=self.errlog)
        self.t0 = time.monotonic()
        log(f"bench: {self.duration_s:g} s of load, seed {self.seed}")

    def fault(self):
        """Inject the scenario's fault(s); returns the time of the (last) heal."""
        net, n, s = self.net, self.c.n, self.scenario
        self.at(FAULT_START_S)
        if s == "primary-partition":
            p = self.primary()
            log(f"fault: primary {p} cut from every other replica")
            net.isolate(p)
            self.at(FAULT_START_S + self.fault_s)
        elif s == "split":
            a, b = list(range(n // 2)), list(range(n // 2, n))
            log(f"fault: split {a} | {b}")
            net.split(a, b)
            self.at(FAULT_START_S + self.fault_s)
        elif s == "oneway-primary":
            p = self.primary()
            log(f"fault: primary {p} receives nothing from the replicas (still sends)")
            for j in range(n):
                if j != p:
                    net.block(p, j)
            self.at(FAULT_START_S + self.fault_s)
        elif s == "cut-link":
            log("fault: link 0 <-> 1 cut")
            net.cut(0, 1)
            self.at(FAULT_START_S + self.fault_s)
        elif s == "lone-backup":
            b = (self.primary() + 1) % n
            log(f"fault: backup {b} cut from every other replica")
            net.isolate(b)
            self.at(FAULT_START_S + self.fault_s)
        elif s == "flapping":
            t = FAULT_START_S
            for cycle in range(3):
                p = self.primary()
                on, off = self.rng.uniform(0.8, 1.4), self.rng.uniform(0.8, 1.4)
                log(f"fault: cycle {cycle}: primary {p} isolated for {on:.2f} s")
                net.isolate(p)
                t += on
                self.at(t)
                if cycle < 2:
                    log(f"fault: cycle {cycle}: whole for {off:.2f} s")
                    net.heal()
                    t += off
                    self.at(t)
        elif s == "loss":
            log(f"fault: {LOSS_PCT}% loss, {DELAY_MS} +- {JITTER_MS} ms delay on every replica link")
            net.loss(LOSS_PCT, DELAY_MS, JITTER_MS, seconds=30, seed=self.seed)
            self.at(FAULT_START_S + self.fault_s)
        healed = time.monotonic()  # when the heal starts: the bound counts from here
        self.netq_counts = net.heal()
        log(f"heal at {healed - self.t0:.2f} s into the load (took {1000 * (time.monotonic() - healed):.0f} ms)")
        return healed

    def wait_back(self, healed):
        """Seconds from the heal until every replica is back, or None (after
        BACK_BOUND_S) with the last outsiders."""
        last, probes = None, 0
        while time.monotonic() - healed < BACK_BOUND_S:
            sts = all_stats(self.c)
            last = outsiders(sts)
            if not last:
                self.back_sts = sts
                return time.monotonic() - healed, None
            if self.bench.poll() is not None:  # the load is over: keep the group busy
                self.c.cli("put", f"netfault-probe-{probes % 8}", "x", timeout_ms=1000)
                probes += 1
            time.sleep(POLL_S)
        return None, last

    def wait_converged(self):
        deadline = time.monotonic() + CONVERGE_BOUND_S
        last = None
        while time.monotonic() < deadline:
            sts = all_stats(self.c)
            if all(sts):
                last = sorted({(s["last_executed"], s["state_digest"][:16]) for s in sts})
                if len(last) == 1:
                    return True, last
            time.sleep(0.2)
        return False, last

    def finish_bench(self):
        try:
            rc = self.bench.wait(self.duration_s + 60)
        except subprocess.TimeoutExpired:
            raise TestFailure("bftkv-bench still running 60 s after its duration")
        self.errlog.close()
        with open(os.path.join(self.tmp, "bench.err"), errors="replace") as f:
            err = f.read().splitlines()
        for line in err[-12:]:
            log(f"  bench: {line}")
        check(rc == 0, f"bftkv-bench exit {rc}")
        with open(self.out) as f:
            return json.load(f)["benchmarks"][0]


def final_reads_ok(path):
    """(final reads, of which returned ok, the keys touched)."""
    with open(path) as f:
        ops = [json.loads(x) for x in f if x.strip()][1:]
    finals = [o for o in ops if o["phase"] == "final"]
    touched = {o["key"] for o in ops if o["phase"] != "final"}
    return len(finals), sum(o["outcome"] == "ok" for o in finals), len(touched)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=SCENARIOS, required=True)
    ap.add_argument("--n", type=int, choices=(4, 7), required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fault-s", type=float, help="how long the fault lasts (default: the scenario's)")
    ap.add_argument("--bench-arg", action="append", default=[], help="one more bftkv-bench argument (repeatable)")
    a = ap.parse_args()
    why = netns.unavailable(need_loss=a.scenario == "loss")
    if why:
        print(f"SKIP: {why}", flush=True)
        sys.exit(77)
    fault_s = a.fault_s or FAULT_S[a.scenario]
    bench_args = SCENARIO_BENCH_ARGS.get(a.scenario, []) + a.bench_arg
    test = f"netfault-{a.scenario}-n{a.n}"

    def body():
        net = netns.Net(test, a.n)
        net.up()
        c = netns.NetCluster(test, net, settings=[f"request_timeout_ms {REQUEST_TIMEOUT_MS}"])
        c.start()
        r = Run(c, net, a.scenario, a.seed, fault_s, bench_args)
        r.start_bench()
        healed = r.fault()
        back_s, left = r.wait_back(healed)
        res = r.finish_bench()
        problems = []
        if back_s is None:
            problems.append(f"not every replica back in the group's view {BACK_BOUND_S:g} s after the heal: "
                            + "; ".join(f"replica {i}: {why}" for i, why in left))
        converged, digests = r.wait_converged()
        if not converged:
            problems.append(f"replicas not converged {CONVERGE_BOUND_S:g} s after the load: "
                            f"(last_executed, digest) {digests}")
        sts = all_stats(c)
        left = outsiders(sts)
        if back_s is not None and left:
            problems.append("a replica back after the heal left the group's view again: "
                            + "; ".join(f"replica {i}: {why}" for i, why in left))
        lc = run([os.path.join(BUILD, "bftkv-lincheck"), r.hist], timeout=120)
        for line in (text(lc.stdout) + text(lc.stderr)).splitlines()[:12]:
            log(f"  lincheck: {line}")
        if lc.returncode != 0:
            problems.append(f"bftkv-lincheck exit {lc.returncode} (0: linearizable)")
        finals, finals_ok, touched = final_reads_ok(r.hist)
        if finals != touched or finals_ok != finals:
            problems.append(f"final reads: {finals_ok} of {finals} ok for {touched} touched keys")
        log(f"result {test}: {res['items_per_second']:.0f} ops/s, client timeouts {res['timeouts']}, "
            f"p50 {res['p50'] / 1e6:.2f} ms, p99 {res['p99'] / 1e6:.2f} ms, ops {res['iterations']}")
        log(f"result {test}: heal -> every replica back: "
            + (f"{back_s * 1000:.0f} ms" if back_s is not None else f"NOT within {BACK_BOUND_S:g} s"))
        if back_s is not None:
            rejoin_ms, bound_ms = rejoin_time(r.back_sts, healed)
            log(f"result {test}: heal -> last replica to enter the group's view (its own clock): {rejoin_ms:.0f} ms"
                f" (bound {bound_ms:.0f} ms = 2 x the view-change timeout + T)")
            if rejoin_ms > bound_ms:
                problems.append(f"a replica entered the group's view {rejoin_ms:.0f} ms after the heal, "
                                f"over the bound {bound_ms:.0f} ms")
        for i, s in enumerate(sts):
            if s:
                log(f"result {test}: replica {i}: view {s['view']}{' (in a view change)' if s['in_viewchange'] else ''}"
                    f", viewchanges {s['viewchanges']}, request_timeouts {s['engine']['request_timeouts']}"
                    f", state_transfers {s['state_transfers']}, last_executed {s['last_executed']}")
            else:
                log(f"result {test}: replica {i}: no stats answer")
        for q in r.netq_counts:
            log(f"result {test}: netq {q}")
        log(f"result {test}: linearizable {'yes' if lc.returncode == 0 else 'NO'}, final reads "
            f"{finals_ok}/{finals} ok for {touched} keys")
        check(not problems, "\n  ".join([""] + problems))
        c.stop()

    run_test(body, budget_s=int(FAULT_START_S + fault_s + AFTER_HEAL_S) + 60)


if __name__ == "__main__":
    main()
