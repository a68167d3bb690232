"""integ: what the integration tests share (tests/integ/test_*.py).

Each test creates its own cluster with tools/cluster in a fresh temporary
directory, on ports nobody else holds, runs real bftkv-server processes on
127.0.0.1, drives them with the `bftkv` CLI and the helper programs of this
folder, and always stops what it started: `run_test` stops every cluster and
kills every helper process on success, on failure, on its own time budget
(SIGALRM, set below ctest's TIMEOUT) and on SIGTERM/SIGINT/SIGHUP. Processes are
signalled by pid only. On failure the tail of every replica log is printed;
BFTKV_INTEG_KEEP=1 keeps the directory.

Environment (set by tests/integ/CMakeLists.txt): BFTKV_BUILD the build directory
(bftkv-server, bftkv), BFTKV_INTEG_BIN the folder of the helper programs,
BFTKV_INTEG_PORT the test's first candidate base port.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
BUILD = os.path.abspath(os.environ.get("BFTKV_BUILD") or os.path.join(REPO, "build"))
INTEG_BIN = os.environ.get("BFTKV_INTEG_BIN") or os.path.join(BUILD, "tests", "integ")
CLUSTER = os.path.join(REPO, "tools", "cluster")
CLI = os.path.join(BUILD, "bftkv")
T0 = time.monotonic()

# CLI exit codes (bftkv --help).
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_OTHER = 0, 1, 2, 3, 4

_clusters = []
_procs = []


class TestFailure(Exception):
    pass


def log(msg):
    print(f"[{time.monotonic() - T0:6.2f}s] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def text(b):
    return b.decode(errors="replace") if isinstance(b, (bytes, bytearray)) else str(b)


def run(cmd, input=None, timeout=30.0, env=None):
    """Run a command to completion (bounded); returns CompletedProcess with bytes."""
    e = dict(os.environ, BFTKV_BUILD=BUILD)
    if env:
        e.update(env)
    try:
        return subprocess.run(cmd, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                              capture_output=True, timeout=timeout, env=e)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"{' '.join(cmd)}: no exit within {timeout:g} s")


def spawn(cmd, **kw):
    """Start a helper process in the background; run_test kills it (by pid) at
    the end if it still runs."""
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, **kw)
    _procs.append(p)
    return p


def _ports_free(base, count):
    """UDP (the replicas) and TCP (their metrics endpoints) both free."""
    for port in range(base, base + count):
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            try:
                with socket.socket(socket.AF_INET, kind) as s:
                    if kind == socket.SOCK_STREAM:  # as the endpoint binds: TIME_WAIT does not hold a port
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def pick_base_port(count):
    """The test's base port (BFTKV_INTEG_PORT), or a shifted one when something
    (another build's test run, another cluster) holds one of the ports."""
    base = int(os.environ.get("BFTKV_INTEG_PORT", "27000"))
    for k in range(40):
        cand = base + 997 * k
        if cand + count < 65000 and _ports_free(cand, count):
            return cand
    raise TestFailure(f"no free range of {count} UDP ports near {base}")


def kill_all(c):
    """SIGKILL every replica of cluster c at once (a power cut of the group), and
    wait until each process is gone."""
    pids = {i: c.pid(i) for i in range(c.n)}
    log(f"SIGKILL every replica at once: {pids}")
    for pid in pids.values():
        os.kill(pid, 9)

    def gone():
        for pid in pids.values():
            try:
                with open(f"/proc/{pid}/stat") as fp:
                    if fp.read().rsplit(")", 1)[1].split()[0] != "Z":
                        return False
            except OSError:
                pass
        return True

    wait_until("every replica gone", gone, 10)


class Cluster:
    """A cluster made by tools/cluster in a temporary directory."""

    def __init__(self, name, n, settings=(), clients=4, f=None, hosts=None, durability="none", deployment=None):
        """durability: the config's (docs/config.md). The tests default to none,
        the in-memory mode whose restart rules (rejoin empty, refuse without q
        replicas holding state) most of them check; None passes no --durability
        (tools/cluster's default, sync). deployment (R, P): n nodes hosting P
        partitions of R replicas each (tools/cluster create --nodes); "replica
        i" is then node i."""
        self.name = name
        self.n = n
        self.dir = tempfile.mkdtemp(prefix=f"bftkv-integ-{name}-")
        _clusters.append(self)
        # A deployment's node listens on K ports (protocol_threads K: port + t * n);
        # a group's replicas, then their metrics ports (tools/cluster).
        threads = next((int(x.split()[1]) for x in settings if x.split()[:1] == ["protocol_threads"]), 1)
        self.base_port = pick_base_port(n * threads + n if deployment is not None else 2 * n)
        cmd = [CLUSTER, "create", self.dir, "--base-port", str(self.base_port), "--clients", str(clients)]
        if deployment is None:
            cmd += ["--n", str(n)]
        else:
            cmd += ["--nodes", str(n), "--rf", str(deployment[0]), "--partitions", str(deployment[1])]
        if durability is not None:
            cmd += ["--durability", durability]
        if f is not None:
            cmd += ["--f", str(f)]
        if hosts is not None:
            cmd += ["--hosts", ",".join(hosts)]
        for s in settings:
            cmd += ["--set", s]
        self.tool(*cmd[1:])
        self.conf = os.path.join(self.dir, "cluster.conf")
        self.dead = set()

    def tool(self, *args, timeout=60.0):
        r = run([CLUSTER] + list(args), timeout=timeout)
        if r.returncode != 0:
            raise TestFailure(f"tools/cluster {' '.join(args)}: status {r.returncode}\n"
                              f"{text(r.stdout)}{text(r.stderr)}")
        return text(r.stdout)

    def start(self):
        log(f"start {self.n} replica(s) in {self.dir} (ports {self.base_port}..)")
        self.tool("start", self.dir)

    def stop(self):
        self.tool("stop", self.dir)

    def kill(self, i):
        log(f"kill -9 replica {i}")
        self.tool("kill", self.dir, str(i))
        self.dead.add(i)

    def restart(self, i, byzantine=None, byzantine_seed=None):
        log(f"restart replica {i}" + (f" --byzantine {byzantine}" if byzantine else ""))
        args = ["restart", self.dir, str(i)] + (["--byzantine", byzantine] if byzantine else [])
        if byzantine_seed is not None:
            args += ["--byzantine-seed", str(byzantine_seed)]
        self.tool(*args)
        self.dead.discard(i)

    def pid(self, i):
        return int(self.tool("pid", self.dir, str(i)).strip())

    def cli(self, *args, input=None, client=None, config=None, timeout=30.0, timeout_ms=None):
        """Run `bftkv` against this cluster: (exit status, stdout bytes, stderr text)."""
        cmd = [CLI, "--config", config or self.conf]
        if client is not None:
            cmd += ["--client", str(client)]
        if timeout_ms is not None:
            cmd += ["--timeout", str(timeout_ms)]
        r = run(cmd + list(args), input=input, timeout=timeout)
        return r.returncode, r.stdout, text(r.stderr)

    def must(self, *args, input=None, expect=EXIT_OK, **kw):
        rc, out, err = self.cli(*args, input=input, **kw)
        check(rc == expect, f"bftkv {' '.join(args)}: exit {rc}, expected {expect}; stderr: {err.strip()!r}; "
                            f"stdout: {out[:200]!r}")
        return out

    def stats(self, i, timeout_ms=3000):
        """Replica i's stats as a dict, or None when it does not answer."""
        rc, out, err = self.cli("stats", str(i), timeout_ms=timeout_ms)
        if rc != 0:
            return None
        try:
            return json.loads(text(out))
        except ValueError:
            raise TestFailure(f"bftkv stats {i}: not JSON: {out[:300]!r}")

    def live(self):
        return [i for i in range(self.n) if i not in self.dead]

    def primary(self):
        """The primary of the highest view a live replica reports."""
        views = [s["view"] for s in (self.stats(i) for i in self.live()) if s]
        check(views, "no replica answers stats")
        return max(views) % self.n

    def log_tail(self, i, lines=30):
        try:
            with open(os.path.join(self.dir, "logs", f"replica-{i}.log"), errors="replace") as fp:
                return fp.read().splitlines()[-lines:]
        except OSError:
            return ["(no log)"]

    def cleanup(self, ok):
        try:
            self.tool("stop", self.dir, timeout=40.0)
        except Exception as e:  # noqa: BLE001 - report and go on cleaning
            print(f"cleanup of {self.dir}: {e}", file=sys.stderr)
            ok = False
        if not ok:
            for i in range(self.n):
                print(f"--- {self.name}: replica {i} log tail", file=sys.stderr)
                for ln in self.log_tail(i):
                    print(f"  | {ln}", file=sys.stderr)
        if os.environ.get("BFTKV_INTEG_KEEP") == "1":
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Load:
    """integ_load (tests/integ/integ_load.c) running in the background against a
    cluster: K writers for T seconds, every acknowledged write remembered and
    read back at the end. Its progress lines are echoed as they come."""

    def __init__(self, cluster, client=1, writers=4, keys=32, seconds=8.0, verify_gets=False, prefix=""):
        cmd = [os.path.join(INTEG_BIN, "integ_load"), "--config", cluster.conf, "--client", str(client),
               "--writers", str(writers), "--keys", str(keys), "--seconds", str(seconds)]
        if verify_gets:
            cmd.append("--verify-gets")
        if prefix:
            cmd += ["--prefix", prefix]
        self.seconds = seconds
        self.result = None
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        log(f"load: {writers} writers x {keys} keys for {seconds:g} s as client {client}")

    def _read(self):
        for raw in self.proc.stdout:
            line = text(raw).rstrip("\n")
            if line.startswith("result "):
                self.result = json.loads(line[len("result "):])
            log(f"  load: {line}")

    def mark(self):
        """Count the writes acknowledged from now on apart (SIGUSR1)."""
        self.proc.send_signal(signal.SIGUSR1)

    def wait(self, extra_s=40.0):
        """Wait for the end (bounded: T + extra_s); returns (exit status, result)."""
        try:
            rc = self.proc.wait(self.seconds + extra_s)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"integ_load still running {extra_s:g} s after its {self.seconds:g} s")
        self.reader.join(5)
        check(self.result is not None, f"integ_load exited {rc} without a result line")
        return rc, self.result


def history_load(path):
    """A bftkv-bench --history file: (its header, its operations), each line one
    JSON object, the first the header."""
    with open(path) as f:
        lines = [json.loads(x) for x in f if x.strip()]
    check(lines and "bftkv_bench_history" in lines[0], "the history starts with its header")
    return lines[0], lines[1:]


def outcome_counts(ops):
    """{"ok": n, "fail": n, "unknown": n} of a history's operations."""
    counts = {}
    for o in ops:
        counts[o.get("outcome")] = counts.get(o.get("outcome"), 0) + 1
    return counts


def drops_total(stats):
    return sum(int(v) for v in stats.get("drops", {}).values())


def drops_of(stats, *names):
    """The sum of the named drop counters, names compared case-insensitively."""
    want = {n.lower() for n in names}
    return sum(int(v) for k, v in stats.get("drops", {}).items() if k.lower() in want)


def wait_until(what, cond, timeout_s, every_s=0.25):
    """Poll cond() until it returns a true value (returned), or fail after the bound."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(every_s)
    raise TestFailure(f"{what}: not reached within {timeout_s:g} s (last: {last!r})")


def _on_signal(signum, _frame):
    raise TestFailure(f"signal {signum}: stopping")


def run_test(body, budget_s):
    """Run body() under a time budget and clean up whatever happens. ctest passes
    the test's TIMEOUT (tests/integ/CMakeLists.txt, sized for a loaded machine) in
    BFTKV_INTEG_TIMEOUT_S: the budget grows to 20 s below it, so that the test
    stops itself and its processes before ctest kills it."""
    limit = os.environ.get("BFTKV_INTEG_TIMEOUT_S", "")
    if limit.isdigit():
        budget_s = max(budget_s, int(limit) - 20)

    def on_alarm(_s, _f):
        raise TestFailure(f"over the test's own budget of {budget_s} s")
    signal.signal(signal.SIGALRM, on_alarm)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    signal.alarm(budget_s)
    ok = False
    try:
        for exe in (CLI, os.path.join(BUILD, "bftkv-server")):
            check(os.access(exe, os.X_OK), f"{exe} is not built")
        body()
        ok = True
    except TestFailure as e:
        print(f"FAIL: {e}", file=sys.stderr)
    except Exception:  # noqa: BLE001 - any bug of the test is a failure too
        traceback.print_exc()
    finally:
        signal.alarm(0)
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)  # finish cleaning up
        for p in _procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for c in _clusters:
            c.cleanup(ok)
    log("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)
