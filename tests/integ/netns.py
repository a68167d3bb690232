"""netns: a bftkv group whose replicas each live in a network namespace of their
own, and the network faults the tests of test_netfault.py (and tools/netfault)
inject between them.

Topology. One namespace per replica (NAME-r0 .. NAME-rN-1), one for the clients
(NAME-c: bftkv-bench, the `bftkv` CLI, stats), each joined by a veth pair to a
bridge in a hub namespace (NAME-hub). Replica i has 10.78.0.(10 + i)/24, the
clients 10.78.0.100/24; the addresses exist inside the namespaces only, never on
the host, and the host's own network is untouched. A namespace per replica
rather than per-port rules on loopback: a fault is then a rule about an address
at the receiving end, exactly as a real link would lose a packet, and the
replicas' sockets, routes and send paths are the ordinary ones.

NAME is bftkv-TEST-PID: unique per test and per process, so parallel ctest runs
never collide; namespaces of the same TEST whose PID is gone (a run killed by
SIGKILL) are removed, with any process still inside them, before a new run
creates its own. Everything is deleted at the end, whatever happened.

Faults, all on packets arriving at a replica (its namespace's input hook), so a
sender never sees an error it would not see on a real network:

    block(i, j)   replica i no longer receives from replica j (one way)
    cut(i, j)     both ways
    isolate(i)    cut i from every other replica (the clients still reach it)
    split(A, B)   cut every link between the groups A and B
    loss(...)     every packet from another replica (and, with clients=True,
                  from the clients) goes through netq (tests/integ/netq.c):
                  dropped with a probability, the rest delayed
    heal()        remove every rule and stop netq

Drops are nftables rules (table inet bftkv_fault); loss and delay an iptables
NFQUEUE rule (iptables-nft, the xt NFQUEUE target: this kernel has no nft
queue statement and no netem) with --queue-bypass, so traffic flows unharmed
whenever netq is not running.

Needs root, `ip netns`, nft; loss also iptables and the netq binary.
`unavailable()` says what is missing; the tests then exit 77 (skipped).
"""

import concurrent.futures
import os
import shutil
import signal
import subprocess
import threading
import time

from integ import BUILD, CLI, INTEG_BIN, Cluster, TestFailure, check, log, run, text

SUBNET = "10.78.0"
CLIENT_ADDR = f"{SUBNET}.100"
NETQ = os.path.join(INTEG_BIN, "netq")
NFT_TABLE = "inet bftkv_fault"
IP_TIMEOUT_S = 10.0


def replica_addr(i):
    return f"{SUBNET}.{10 + i}"


def _ip(*args, check_rc=True):
    r = run(["ip"] + list(args), timeout=IP_TIMEOUT_S)
    if check_rc and r.returncode != 0:
        raise TestFailure(f"ip {' '.join(args)}: status {r.returncode}: {text(r.stderr).strip()}")
    return r


def _in_ns(ns, cmd, input=None, check_rc=True):
    r = run(["ip", "netns", "exec", ns] + cmd, input=input, timeout=IP_TIMEOUT_S)
    if check_rc and r.returncode != 0:
        raise TestFailure(f"in {ns}: {' '.join(cmd)}: status {r.returncode}: {text(r.stderr).strip()}")
    return r


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ns_list():
    r = run(["ip", "netns", "list"], timeout=IP_TIMEOUT_S)
    return [ln.split()[0] for ln in text(r.stdout).splitlines() if ln.strip()]


def _ns_delete(ns):
    """Kill what still runs inside ns (only our own tests' processes live in a
    namespace of our prefix), then delete it."""
    r = run(["ip", "netns", "pids", ns], timeout=IP_TIMEOUT_S)
    for word in text(r.stdout).split():
        try:
            os.kill(int(word), signal.SIGKILL)
        except (ValueError, ProcessLookupError):
            pass
    run(["ip", "netns", "del", ns], timeout=IP_TIMEOUT_S)


def unavailable(need_loss=False):
    """None when this machine can run the network-fault tests, else why not."""
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_SYS_ADMIN"
    tools = ["ip", "nft"] + (["iptables"] if need_loss else [])
    for t in tools:
        if shutil.which(t) is None:
            return f"{t} is not installed (tools/deps)"
    if need_loss and not os.access(NETQ, os.X_OK):
        return f"{NETQ} is not built (libnetfilter_queue missing at configure time: tools/deps)"
    probe = f"bftkv-probe-{os.getpid()}"
    r = run(["ip", "netns", "add", probe], timeout=IP_TIMEOUT_S)
    if r.returncode != 0:
        return f"ip netns add: {text(r.stderr).strip()}"
    try:
        r = _in_ns(probe, ["nft", "-f", "-"], input=f"table {NFT_TABLE} {{ }}\n".encode(), check_rc=False)
        if r.returncode != 0:
            return f"nft in a namespace: {text(r.stderr).strip()}"
        if need_loss:
            r = _in_ns(probe, ["iptables", "-w", "-A", "INPUT", "-s", "10.0.0.1", "-j", "NFQUEUE",
                               "--queue-num", "0", "--queue-bypass"], check_rc=False)
            if r.returncode != 0:
                return f"iptables NFQUEUE in a namespace: {text(r.stderr).strip()}"
    finally:
        run(["ip", "netns", "del", probe], timeout=IP_TIMEOUT_S)
    return None


class Netq:
    """One netq process in a namespace, its output lines collected."""

    def __init__(self, ns, seconds, loss_pct, delay_ms, jitter_ms, seed):
        cmd = ["ip", "netns", "exec", ns, NETQ, "--queue", "0", "--seconds", f"{seconds:g}",
               "--loss", f"{loss_pct:g}", "--delay-ms", f"{delay_ms:g}", "--jitter-ms", f"{jitter_ms:g}",
               "--seed", str(seed)]
        self.ns = ns
        self.lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(text(raw).strip())

    def wait_ready(self, timeout_s=5.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any('"ready"' in ln for ln in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise TestFailure(f"netq in {self.ns} not ready: {self.lines}")

    def stop(self):
        """SIGTERM (it accepts what it holds, prints its counts); the counts line."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.reader.join(2)
        done = [ln for ln in self.lines if '"done"' in ln]
        return done[-1] if done else None


class Net:
    """The namespaces of one test run, and the faults between them."""

    def __init__(self, test, n):
        self.prefix = f"bftkv-{test}-"
        self.name = f"{self.prefix}{os.getpid()}"
        self.n = n
        self.hub = f"{self.name}-hub"
        self.replica_ns = [f"{self.name}-r{i}" for i in range(n)]
        self.client_ns = f"{self.name}-c"
        self.created = []
        self.netqs = []
        self.blocked = set()  # (i, j): i does not receive from j

    def remove_stale(self):
        for ns in _ns_list():
            if not ns.startswith(self.prefix):
                continue
            pid = ns[len(self.prefix):].split("-", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                log(f"removing stale namespace {ns}")
                _ns_delete(ns)

    def up(self):
        try:
            self._up()
        except BaseException:
            self.down()
            raise

    def _up(self):
        self.remove_stale()
        _ip("netns", "add", self.hub)
        self.created.append(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        ends = [(ns, f"r{i}", replica_addr(i)) for i, ns in enumerate(self.replica_ns)]
        ends.append((self.client_ns, "c", CLIENT_ADDR))
        for ns, port, addr in ends:
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        for ns in self.replica_ns:
            _in_ns(ns, ["nft", "-f", "-"], input=(
                f"table {NFT_TABLE} {{\n  chain input {{ type filter hook input priority 0; policy accept; }}\n}}\n"
            ).encode())
        log(f"namespaces {self.name}-{{hub,c,r0..r{self.n - 1}}}: replicas {replica_addr(0)}.., "
            f"clients {CLIENT_ADDR}")

    def down(self):
        for q in self.netqs:
            q.stop()
        self.netqs = []
        for ns in reversed(self.created):
            _ns_delete(ns)
        self.created = []

    def exec_argv(self, ns=None):
        return ["ip", "netns", "exec", ns or self.client_ns]

    # ---- Faults -----------------------------------------------------------------

    def _apply(self, i):
        """Rewrite replica i's input chain from self.blocked."""
        srcs = sorted(replica_addr(j) for (a, j) in self.blocked if a == i)
        script = f"flush chain {NFT_TABLE} input\n"
        if srcs:
            script += f"add rule {NFT_TABLE} input ip saddr {{ {', '.join(srcs)} }} drop\n"
        _in_ns(self.replica_ns[i], ["nft", "-f", "-"], input=script.encode())

    def _apply_all(self, ks):
        """_apply for every replica in ks at once (one `ip netns exec nft` each,
        run in parallel so a heal or a split lands within a few ms everywhere,
        not one replica after another)."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(ks)) as ex:
            for f in [ex.submit(self._apply, k) for k in ks]:
                f.result()

    def block(self, i, j):
        self.blocked.add((i, j))
        self._apply(i)

    def cut(self, i, j):
        self.blocked |= {(i, j), (j, i)}
        self._apply_all([i, j])

    def isolate(self, i):
        for j in range(self.n):
            if j != i:
                self.blocked |= {(i, j), (j, i)}
        self._apply_all(range(self.n))

    def split(self, a, b):
        for i in a:
            for j in b:
                self.blocked |= {(i, j), (j, i)}
        self._apply_all(range(self.n))

    def loss(self, pct, delay_ms, jitter_ms, seconds, seed, clients=False):
        """pct % loss and delay_ms +- jitter_ms on every packet a replica receives
        from another replica (clients=True: from the clients too, and on what the
        clients receive), for at most `seconds` (netq's own bound)."""
        targets = list(enumerate(self.replica_ns)) + ([(self.n, self.client_ns)] if clients else [])
        for k, ns in targets:
            q = Netq(ns, seconds, pct, delay_ms, jitter_ms, seed * 1000 + k)
            self.netqs.append(q)
            q.wait_ready()
            srcs = [replica_addr(j) for j in range(self.n) if j != k]
            if clients and k < self.n:
                srcs.append(CLIENT_ADDR)
            _in_ns(ns, ["iptables", "-w", "-A", "INPUT", "-s", ",".join(srcs), "-j", "NFQUEUE",
                        "--queue-num", "0", "--queue-bypass"])

    def heal(self):
        """Every link whole again; returns netq's counts (one JSON line per netq)."""
        self.blocked = set()
        self._apply_all(range(self.n))
        counts = []
        if self.netqs:
            with concurrent.futures.ThreadPoolExecutor(max_workers=self.n + 1) as ex:
                for f in [ex.submit(_in_ns, ns, ["iptables", "-w", "-F", "INPUT"], None, False)
                          for ns in self.replica_ns + [self.client_ns]]:
                    f.result()
            counts = [q.stop() for q in self.netqs]
            self.netqs = []
        return counts


class NetCluster(Cluster):
    """A tools/cluster directory whose replicas this class starts itself, each in
    its own namespace (tools/cluster start binds and polls from the host's
    network, where these addresses do not exist). The CLI runs in the clients'
    namespace as the config's tools identity (client C of tools/cluster create),
    so it never shares a client id with bftkv-bench's handles."""

    def __init__(self, name, net, settings=(), clients=12):
        self.net = net
        self.procs = {}
        super().__init__(name, net.n, settings=settings, clients=clients,
                         hosts=[replica_addr(i) for i in range(net.n)])
        self.tools_client = clients

    def start(self, timeout_s=30.0):
        log(f"start {self.n} replica(s) in {self.dir}, one per namespace")
        server = os.path.join(BUILD, "bftkv-server")
        for i in range(self.n):
            with open(os.path.join(self.dir, "logs", f"replica-{i}.log"), "ab") as logf:
                self.procs[i] = subprocess.Popen(
                    self.net.exec_argv(self.net.replica_ns[i]) + [server, "--config", self.conf, "--id", str(i),
                                                                  "--init"],
                    stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        for i in range(self.n):
            while self.stats(i, timeout_ms=500) is None:
                check(self.procs[i].poll() is None, f"replica {i} exited with status {self.procs[i].returncode}")
                check(time.monotonic() < deadline, f"replica {i} does not answer stats within {timeout_s:g} s")
                time.sleep(0.1)

    def cli(self, *args, input=None, client=None, config=None, timeout=30.0, timeout_ms=None):
        cmd = self.net.exec_argv() + [CLI, "--config", config or self.conf, "--client",
                                      str(self.tools_client if client is None else client)]
        if timeout_ms is not None:
            cmd += ["--timeout", str(timeout_ms)]
        r = run(cmd + list(args), input=input, timeout=timeout)
        return r.returncode, r.stdout, text(r.stderr)

    def pid(self, i):
        return self.procs[i].pid

    def kill(self, i):
        raise NotImplementedError("NetCluster replicas are not restarted")

    def restart(self, i, byzantine=None):
        raise NotImplementedError("NetCluster replicas are not restarted")

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        for i, p in self.procs.items():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                print(f"replica {i} (pid {p.pid}) ignored SIGTERM: SIGKILL", flush=True)
                p.kill()
                p.wait(5)

    def cleanup(self, ok):
        try:
            self.stop()
        except Exception as e:  # noqa: BLE001 - report and go on cleaning
            print(f"stopping the replicas of {self.dir}: {e}", flush=True)
            ok = False
        try:
            self.net.down()
        except Exception as e:  # noqa: BLE001
            print(f"deleting the namespaces of {self.net.name}: {e}", flush=True)
        super().cleanup(ok)  # tools/cluster stop finds nothing running; logs, directory
