#!/usr/bin/env python3
"""integ_deployment_discover: a client that knows one seed address and the
admin's public key only (docs/design.md §6.4; docs/config.md "A client that
discovers"; docs/operations.md "A deployment map").

An M = 7, R = 4, P = 16 deployment is started with tools/cluster. The test
writes a client directory holding client 0's key, admin.pub and a config file
with `deployment_seeds` (one node's address), `admin_pub` and `key_dir`: no map
file, no node key, no replica line. Through that file the CLI puts and gets
four keys of every one of the 16 partitions (the keys are chosen with the
placement hash, SipHash-2-4 under the public key "bftkv-placement", computed
here and checked against the SipHash paper's test vector first).

Refusals, each with its exit code and message: a client whose admin_pub is
another deployment's refuses the seed's map (its signature does not verify);
a client whose map_cache holds this deployment's map re-signed at epoch 2
(`bftkv admin resign`) refuses the seeds' epoch-1 map as older. A client with
map_cache and no cache takes the map and caches it byte for byte. A seed that
does not answer is passed over for the next one.

Then node 6 is replaced as docs/operations.md tells for a node on its own
machine: its process killed, a directory of its own holding only cluster.conf,
map.bin, admin.pub and keys/node-6.key, and `bftkv-server --config
that/cluster.conf --id 6 --join`; the discovering client, with node 6 as its
only seed, puts and gets across every partition again.

Last, node 6 and the node sharing the most partitions with it are down: a
put to a partition holding both (2 of its R = 4 replicas left, f = 1) fails
with a timeout (exit 3) while every other partition serves puts and gets.
"""

import json
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (CLI, BUILD, EXIT_OK, EXIT_OTHER, EXIT_UNAVAILABLE, Cluster, check, log, run,  # noqa: E402
                   run_test, spawn, text)

M, R, P = 7, 4, 16
PER_PARTITION = 4
MASK = (1 << 64) - 1


def siphash24(key, data):
    """SipHash-2-4 (Aumasson and Bernstein), 64-bit output, as libsodium's
    crypto_shorthash."""
    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & MASK

    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]

    def rounds(n):
        for _ in range(n):
            v[0] = (v[0] + v[1]) & MASK
            v[1] = rotl(v[1], 13) ^ v[0]
            v[0] = rotl(v[0], 32)
            v[2] = (v[2] + v[3]) & MASK
            v[3] = rotl(v[3], 16) ^ v[2]
            v[0] = (v[0] + v[3]) & MASK
            v[3] = rotl(v[3], 21) ^ v[0]
            v[2] = (v[2] + v[1]) & MASK
            v[1] = rotl(v[1], 17) ^ v[2]
            v[2] = rotl(v[2], 32)

    tail = len(data) & 7
    for off in range(0, len(data) - tail, 8):
        (m,) = struct.unpack_from("<Q", data, off)
        v[3] ^= m
        rounds(2)
        v[0] ^= m
    last = (len(data) & 0xFF) << 56
    for i in range(tail):
        last |= data[len(data) - tail + i] << (8 * i)
    v[3] ^= last
    rounds(2)
    v[0] ^= last
    v[2] ^= 0xFF
    rounds(4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


PLACEMENT_KEY = b"bftkv-placement\0"  # cluster/placement.c: a 16-byte key from the 15-character string


def partition(key):
    return siphash24(PLACEMENT_KEY, b"k" + key.encode()) & (P - 1)


def keys_per_partition(tag):
    """PER_PARTITION keys of each partition."""
    got = {p: [] for p in range(P)}
    i = 0
    while any(len(v) < PER_PARTITION for v in got.values()):
        k = f"{tag}-{i}"
        p = partition(k)
        if len(got[p]) < PER_PARTITION:
            got[p].append(k)
        i += 1
    return [k for p in range(P) for k in got[p]]


def write_client(d, cluster_dir, seeds, admin_pub=None, cache=False):
    """A discovering client's directory: keys/client-0.key, admin.pub and
    client.conf. Returns the config's path."""
    os.makedirs(os.path.join(d, "keys"), mode=0o700)
    shutil.copy(os.path.join(cluster_dir, "keys", "client-0.key"), os.path.join(d, "keys", "client-0.key"))
    os.chmod(os.path.join(d, "keys", "client-0.key"), 0o600)
    shutil.copy(admin_pub or os.path.join(cluster_dir, "admin.pub"), os.path.join(d, "admin.pub"))
    lines = [f"deployment_seeds {','.join(seeds)}", "admin_pub admin.pub", "key_dir keys"]
    if cache:
        lines.append("map_cache map-cache.bin")
    conf = os.path.join(d, "client.conf")
    with open(conf, "w", encoding="utf-8") as fp:
        fp.write("\n".join(lines) + "\n")
    return conf


def put_get_all(c, conf, tag):
    keys = keys_per_partition(tag)
    check(sorted({partition(k) for k in keys}) == list(range(P)), "keys do not cover every partition")
    for k in keys:
        c.must("put", k, f"v-{k}", config=conf, client=0)
    for k in keys:
        out = c.must("get", k, config=conf, client=0)
        check(out == f"v-{k}".encode(), f"get {k}: {out!r}")
    log(f"{len(keys)} keys, {PER_PARTITION} in each of the {P} partitions, put and read back through {conf}")


def expect_refusal(c, conf, code, needle):
    rc, out, err = c.cli("put", "refused-key", "x", config=conf, client=0)
    check(rc == code, f"put through {conf}: exit {rc}, expected {code}; stderr {err.strip()!r}")
    check(needle in err, f"put through {conf}: stderr {err.strip()!r} lacks {needle!r}")
    log(f"refused as expected (exit {rc}): {err.strip()}")


def body():
    # The SipHash of the paper's test vector: key 00..0f, message 00..0e.
    check(siphash24(bytes(range(16)), bytes(range(15))) == 0xa129ca6149be45e5, "siphash24 is wrong")
    c = Cluster("discover", M, deployment=(R, P))
    c.start()
    work = tempfile.mkdtemp(prefix="bftkv-integ-discover-clients-")
    try:
        seed = f"127.0.0.1:{c.base_port + 3}"

        # One seed, the admin public key, the client's own key: nothing else.
        conf = write_client(os.path.join(work, "one-seed"), c.dir, [seed])
        names = sorted(os.listdir(os.path.join(work, "one-seed", "keys")))
        check(names == ["client-0.key"], f"the client directory holds keys {names}")
        put_get_all(c, conf, "one-seed")

        # Another deployment's admin key: the seed's map does not verify.
        other = os.path.join(work, "other-admin")
        r = run([CLI, "admin", "init", "--nodes", "4", "--rf", "4", "--partitions", "1", "--dir", other])
        check(r.returncode == 0, f"admin init: {text(r.stderr)}")
        conf = write_client(os.path.join(work, "other-key"), c.dir, [seed],
                            admin_pub=os.path.join(other, "admin.pub"))
        expect_refusal(c, conf, EXIT_OTHER, "the signature does not verify with the admin public key; refusing it")

        # map_cache: taken and cached byte for byte when nothing is held...
        conf = write_client(os.path.join(work, "cache"), c.dir, [seed], cache=True)
        c.must("put", "cache-key", "cache-value", config=conf, client=0)
        with open(os.path.join(c.dir, "map.bin"), "rb") as a, \
                open(os.path.join(work, "cache", "map-cache.bin"), "rb") as b:
            check(a.read() == b.read(), "map_cache does not hold the seed's map")
        # ...and a held epoch 2 refuses the seeds' epoch-1 map as older.
        newer = os.path.join(work, "map-epoch2.bin")
        r = run([CLI, "admin", "resign", os.path.join(c.dir, "map.bin"), "--admin-key",
                 os.path.join(c.dir, "admin.key"), "--epoch", "2", "--out", newer])
        check(r.returncode == 0, f"admin resign: {text(r.stderr)}")
        conf = write_client(os.path.join(work, "stale"), c.dir, [seed, f"127.0.0.1:{c.base_port + 5}"], cache=True)
        shutil.copy(newer, os.path.join(work, "stale", "map-cache.bin"))
        expect_refusal(c, conf, EXIT_OTHER, "it serves epoch 1, older than the held epoch 2; refusing it")
        with open(newer, "rb") as a, open(os.path.join(work, "stale", "map-cache.bin"), "rb") as b:
            check(a.read() == b.read(), "the refused map replaced the cache")

        # A seed that does not answer, then one that does; then none that does.
        dead = f"127.0.0.1:{c.base_port + 90}"
        conf = write_client(os.path.join(work, "in-turn"), c.dir, [dead, seed])
        c.must("put", "in-turn-key", "v", config=conf, client=0)
        conf = write_client(os.path.join(work, "dead"), c.dir, [dead])
        expect_refusal(c, conf, EXIT_UNAVAILABLE, f"seed {dead}: no answer")

        # Node 6 on "its own machine": its own directory, the four files only.
        c.kill(6)
        node = os.path.join(work, "node-6")
        os.makedirs(os.path.join(node, "keys"), mode=0o700)
        for f in ("map.bin", "admin.pub"):
            shutil.copy(os.path.join(c.dir, f), os.path.join(node, f))
        shutil.copy(os.path.join(c.dir, "keys", "node-6.key"), os.path.join(node, "keys", "node-6.key"))
        os.chmod(os.path.join(node, "keys", "node-6.key"), 0o600)
        with open(os.path.join(node, "cluster.conf"), "w", encoding="utf-8") as fp:
            fp.write("deployment_map map.bin\nadmin_pub admin.pub\nkey_dir keys\ndata_dir data\n")
        log_fp = open(os.path.join(work, "node-6.log"), "wb")
        proc = spawn([os.path.join(BUILD, "bftkv-server"), "--config", os.path.join(node, "cluster.conf"),
                      "--id", "6", "--join"], stdout=log_fp, stderr=log_fp)
        conf = write_client(os.path.join(work, "node6-seed"), c.dir, [f"127.0.0.1:{c.base_port + 6}"])
        try:
            put_get_all(c, conf, "node6-seed")
            check(proc.poll() is None, "node 6 exited")
        finally:
            proc.terminate()
            rc = proc.wait(10)
            log_fp.close()
            with open(os.path.join(work, "node-6.log"), errors="replace") as fp:
                lines = fp.read().splitlines()
            log("node 6 (own directory) log tail: " + " | ".join(lines[-5:]))
        check(rc == 0, f"node 6 exit {rc} on SIGTERM")
        check(any("map epoch 1)" in ln for ln in lines), "node 6's log does not name its map's epoch")
        served = [ln for ln in lines if "map discovery (thread 0):" in ln]
        check(served and int(served[-1].split()[-2]) > 0, f"node 6 answered no map request: {served}")

        # Two nodes down: the partitions holding both have 2 of R = 4 replicas
        # left (f = 1) and stop; every other partition serves on.
        with open(os.path.join(c.dir, "map.json"), encoding="utf-8") as fp:
            sets = json.load(fp)["partition_replicas"]
        other_down = max((n for n in range(M) if n != 6), key=lambda n: sum(6 in s and n in s for s in sets))
        c.kill(other_down)
        down = [p for p in range(P) if 6 in sets[p] and other_down in sets[p]]
        check(down, "no partition holds both stopped nodes")
        keys = keys_per_partition("two-down")
        conf = write_client(os.path.join(work, "two-down"), c.dir, [seed])
        tried = set()
        for k in keys:
            p = partition(k)
            if p in down and p in tried:
                continue  # one timeout per stopped partition is enough
            tried.add(p)
            if p in down:
                rc, out, err = c.cli("put", k, "x", config=conf, client=0, timeout_ms=1500)
                check(rc == EXIT_UNAVAILABLE and "no result within 1500 ms" in err,
                      f"put {k} (partition {p}, nodes 6 and {other_down} down): exit {rc}, {err.strip()!r}")
            else:
                c.must("put", k, f"v-{k}", config=conf, client=0)
                check(c.must("get", k, config=conf, client=0) == f"v-{k}".encode(), f"get {k}")
        log(f"nodes 6 and {other_down} down: partitions {down} time out (exit 3), the other "
            f"{P - len(down)} serve")
    finally:
        if os.environ.get("BFTKV_INTEG_KEEP") != "1":
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run_test(body, budget_s=150)
