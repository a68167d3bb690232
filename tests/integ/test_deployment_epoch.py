#!/usr/bin/env python3
"""integ_deployment_epoch: an open client learns of a newer deployment map from
the replies of its ordinary requests, and no node brings it back to an older
one (docs/design.md §6.3; docs/operations.md "A new map epoch").

An M = 4, R = 4, P = 8 deployment at epoch 1 (tools/cluster create --nodes).
integ_epoch opens one routing handle through a discovering client's file (two
seeds, admin.pub, map_cache) and keeps it open for the whole test; each round
it puts and gets two keys of every partition and prints the handle's map
counters (bftkv_client_stats). Round A: epoch 1, no fetch.

The operator makes epoch 2 with `bftkv admin resign` (the same nodes and
placement) and restarts the nodes on it one at a time, each once every
partition it hosts holds state again (`bftkv status --json`), as
docs/operations.md tells. Round B, through the same open handle: every
operation succeeds, the replies carried epoch 2, the handle fetched the map
once and now routes with epoch 2, and its map_cache holds the new map byte for
byte.

Then node 3 is restarted from the old map (epoch 1). Round C: every operation
still succeeds and the handle keeps epoch 2 with no further fetch (a claim of
an older epoch starts nothing); a new client whose map_cache holds epoch 2 and
whose only seed is node 3 refuses its map (exit 4, "older than the held
epoch 2").

Then a map that moves partitions: epoch 3 with P = 4 (made by integ_epoch
--remap), node 3 restarted on it. Round D: node 3 answers the requests for
the groups it no longer hosts (4..7) with MAP-NOTICEs, the handle fetches
epoch 3 from it and caches it but keeps routing with epoch 2 (pending 3: it
does not re-open partitions while open), and every operation still completes
through the other three replicas of each group. Round E: no further fetch.

Last, a node's refusal: a REQUEST for a group no node hosts (group 99), sent
by hand as client 0, is answered with a 32-byte MAP-NOTICE carrying the
node's epoch, the group and the request's timestamp; a second one within a
second gets nothing (one notice per client per second), and the node's log
counts both when it stops.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (CLI, EXIT_OTHER, INTEG_BIN, Cluster, check, log, run, run_test, text,  # noqa: E402
                   wait_until)

M, R, P = 4, 4, 8
WIRE_MAGIC, WIRE_VERSION, WIRE_REQUEST, WIRE_MAP_NOTICE = 0xB7F1, 1, 1, 16


def write_client(d, cluster_dir, seeds):
    """A discovering client's directory (docs/operations.md "Several nodes",
    step 4) with map_cache. Returns the config's path."""
    os.makedirs(os.path.join(d, "keys"), mode=0o700)
    shutil.copy(os.path.join(cluster_dir, "keys", "client-0.key"), os.path.join(d, "keys", "client-0.key"))
    os.chmod(os.path.join(d, "keys", "client-0.key"), 0o600)
    shutil.copy(os.path.join(cluster_dir, "admin.pub"), os.path.join(d, "admin.pub"))
    conf = os.path.join(d, "client.conf")
    with open(conf, "w", encoding="utf-8") as fp:
        fp.write(f"deployment_seeds {','.join(seeds)}\nadmin_pub admin.pub\nkey_dir keys\n"
                 "map_cache map-cache.bin\n")
    return conf


class Handle:
    """integ_epoch: one routing handle kept open, driven line by line."""

    def __init__(self, conf):
        self.p = subprocess.Popen([os.path.join(INTEG_BIN, "integ_epoch"), "--config", conf, "--client", "0"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)

    def round(self, tag):
        self.p.stdin.write(f"round {tag}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        check(line.startswith("epoch "), f"integ_epoch: {line!r} (exit {self.p.poll()})")
        got = json.loads(line[len("epoch "):])
        log(f"round {tag}: {got}")
        return got

    def close(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.flush()
            self.p.wait(timeout=30)
        finally:
            if self.p.poll() is None:
                self.p.kill()
                self.p.wait()
        err = self.p.stderr.read()
        if err.strip():
            log(f"integ_epoch stderr: {err.strip()}")
        return self.p.returncode


def node_caught_up(c, node):
    """Does every replica of `node` answer, hold state and stand level with its
    partition's most advanced replica (bftkv status --json)?"""
    rc, out, _ = c.cli("status", "--json", timeout=30.0)
    rows = [json.loads(x) for x in text(out).splitlines() if x.strip().startswith("{")]
    mine = [x for x in rows if not x.get("summary") and x.get("node") == node]
    return len(mine) > 0 and all(x.get("answered") and x.get("holds_state") and x.get("behind") == 0 for x in mine)


def started_epoch(c, node):
    """The map epoch named by the node's last start line in its log."""
    lines = [x for x in c.log_tail(node, 400) if "map epoch" in x]
    return lines[-1].split("map epoch ", 1)[1].split(")", 1)[0] if lines else None


def restart_on(c, node, map_bytes):
    """Restart `node` from the map DIR/map.bin holds then (map_bytes), and wait
    until it caught up in every partition it hosts."""
    with open(os.path.join(c.dir, "map.bin"), "wb") as fp:
        fp.write(map_bytes)
    c.restart(node)
    wait_until(f"node {node} holds state in every partition", lambda: node_caught_up(c, node), 60.0)


def notice_probe(port, group, ts, wait_s):
    """Send client 0's REQUEST for `group` to 127.0.0.1:port (its authenticator
    zeros: a node that does not host the group checks none); the answer or None."""
    key, val = b"k", b"v"
    body = struct.pack("<HBBHI", 0, 1, 0, len(key), len(val)) + key + val
    auth = bytes(4 * 16)
    hdr = struct.pack("<HBBHHQQIHH", WIRE_MAGIC, WIRE_VERSION, WIRE_REQUEST, group, 0, 0, ts, len(body), len(auth), 0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(wait_s)
        s.sendto(hdr + body + auth, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            return None
        return data
    finally:
        s.close()


def body():
    c = Cluster("epoch", M, deployment=(R, P))
    c.start()
    work = tempfile.mkdtemp(prefix="bftkv-integ-epoch-clients-")
    h = None
    try:
        conf = write_client(os.path.join(work, "handle"), c.dir,
                            [f"127.0.0.1:{c.base_port + 1}", f"127.0.0.1:{c.base_port + 2}"])
        h = Handle(conf)
        a = h.round("A")
        check(a["failed"] == 0 and a["ok"] == 2 * P, f"round A: {a}")
        check(a["map_epoch"] == 1 and a["claimed"] == 1 and a["fetches"] == 0, f"round A: {a}")

        # The operator: epoch 2, the same nodes and placement, then each node
        # restarted on it in turn.
        with open(os.path.join(c.dir, "map.bin"), "rb") as fp:
            map1 = fp.read()
        map2_path = os.path.join(work, "map-epoch2.bin")
        r = run([CLI, "admin", "resign", os.path.join(c.dir, "map.bin"), "--admin-key",
                 os.path.join(c.dir, "admin.key"), "--epoch", "2", "--out", map2_path])
        check(r.returncode == 0, f"admin resign: {text(r.stderr)}")
        with open(map2_path, "rb") as fp:
            map2 = fp.read()
        for node in range(M):
            restart_on(c, node, map2)
        for node in range(M):
            check(started_epoch(c, node) == "2", f"node {node} started on epoch {started_epoch(c, node)}")

        b = h.round("B")
        check(b["failed"] == 0 and b["ok"] == 2 * P, f"round B: {b}")
        check(b["map_epoch"] == 2 and b["claimed"] == 2, f"round B: the handle routes with {b}")
        check(b["fetches"] == 1 and b["fetch_failures"] == 0 and b["pending"] == 0, f"round B: {b}")
        with open(os.path.join(work, "handle", "map-cache.bin"), "rb") as fp:
            check(fp.read() == map2, "map_cache does not hold the epoch-2 map")

        # A node started from the old map cannot take the client back.
        restart_on(c, 3, map1)
        with open(os.path.join(c.dir, "map.bin"), "wb") as fp:
            fp.write(map2)
        check(started_epoch(c, 3) == "1", f"node 3 started on epoch {started_epoch(c, 3)}")
        cc = h.round("C")
        check(cc["failed"] == 0 and cc["ok"] == 2 * P, f"round C: {cc}")
        check(cc["map_epoch"] == 2 and cc["claimed"] == 2 and cc["fetches"] == 1, f"round C: {cc}")
        stale = write_client(os.path.join(work, "stale"), c.dir, [f"127.0.0.1:{c.base_port + 3}"])
        shutil.copy(map2_path, os.path.join(work, "stale", "map-cache.bin"))
        rc, _, err = c.cli("put", "stale-key", "v", config=stale, client=0)
        check(rc == EXIT_OTHER and "serves epoch 1, older than the held epoch 2" in err,
              f"a client holding epoch 2 with node 3 as its seed: exit {rc}, {err.strip()!r}")
        log(f"refused as expected (exit {rc}): {err.strip()}")

        # A map that moves partitions: epoch 3 with P = 4 (integ_epoch --remap; no
        # `bftkv admin` command makes one yet), node 3 restarted on it. Node 3 no
        # longer hosts groups 4..7: it answers the client's requests for them with
        # MAP-NOTICEs; the client fetches epoch 3 from it, caches it, and keeps
        # routing with epoch 2 (it does not re-open partitions while open); the
        # other three replicas of each group complete every call.
        map3_path = os.path.join(work, "map-epoch3.bin")
        r = run([os.path.join(INTEG_BIN, "integ_epoch"), "--remap", map2_path, "--admin-key",
                 os.path.join(c.dir, "admin.key"), "--partitions", "4", "--epoch", "3", "--out", map3_path])
        check(r.returncode == 0, f"integ_epoch --remap: {text(r.stderr)}")
        with open(map3_path, "rb") as fp:
            map3 = fp.read()
        restart_on(c, 3, map3)
        with open(os.path.join(c.dir, "map.bin"), "wb") as fp:
            fp.write(map2)
        d = h.round("D")
        check(d["failed"] == 0 and d["ok"] == 2 * P, f"round D: {d}")
        check(d["notices"] >= 1 and d["claimed"] == 3 and d["fetches"] == 2 and d["fetch_failures"] == 0,
              f"round D: {d}")
        check(d["map_epoch"] == 2 and d["pending"] == 3, f"round D: routes with {d}")
        with open(os.path.join(work, "handle", "map-cache.bin"), "rb") as fp:
            check(fp.read() == map3, "map_cache does not hold the epoch-3 map")
        e = h.round("E")
        check(e["failed"] == 0 and e["fetches"] == 2 and e["pending"] == 3, f"round E: {e}")
        check(h.close() == 0, "integ_epoch did not exit 0")
        h = None

        # A request for a group no node hosts: one notice, then the rate.
        got = notice_probe(c.base_port, 99, 4242, 3.0)
        check(got is not None and len(got) == 32, f"no MAP-NOTICE for group 99: {got!r}")
        magic, ver, typ, group, sender, view, seq, blen, alen, flags = struct.unpack("<HBBHHQQIHH", got)
        check((magic, ver, typ, group, sender, view, seq, blen, alen, flags)
              == (WIRE_MAGIC, WIRE_VERSION, WIRE_MAP_NOTICE, 99, 0, 2, 4242, 0, 0, 0), f"notice {got.hex()}")
        check(notice_probe(c.base_port, 99, 4243, 0.5) is None, "a second notice within the second")
        log("MAP-NOTICE for group 99: epoch 2, timestamp 4242; the second request within a second got none")
        c.stop()
        tail = c.log_tail(0, 20)
        check(any("requests for groups not hosted (thread 0): 1 answered with the map epoch, 1 not" in x
                  for x in tail), f"node 0's log: {tail}")
    finally:
        if h is not None:
            h.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_test(body, budget_s=220)
