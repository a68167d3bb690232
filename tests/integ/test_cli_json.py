#!/usr/bin/env python3
"""integ_cli_json: `bftkv --json` on every command that prints a result (put,
get, del, stats, status, keygen, log-level, admin init, show-map, resign): every line of stdout is one JSON object that
parses, with the command, the outcome and the exit code the process returns;
a binary value round-trips through value (encoding base64); text stays text;
not found and an unanswered stats are results too (ok false). Then --hex and
--base64: get prints the value encoded on one line, decodable to its bytes.
"""

import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, check, log, run_test  # noqa: E402


def j(c, *args, input=None, timeout_ms=None, expect=0, client=None):
    rc, out, err = c.cli("--json", *args, input=input, timeout_ms=timeout_ms, client=client)
    lines = out.decode().splitlines()
    check(len(lines) >= 1, f"bftkv --json {' '.join(args)}: no output (exit {rc}; {err.strip()})")
    objs = [json.loads(x) for x in lines]  # each line one object, or the test fails here
    check(rc == expect, f"bftkv --json {' '.join(args)}: exit {rc}, expected {expect}; {err.strip()}")
    check(objs[-1]["exit"] == rc, f"the object's exit {objs[-1]} is the process's {rc}")
    log(f"bftkv --json {' '.join(args)} -> {lines[-1][:160]}")
    return objs


def body():
    c = Cluster("cli-json", 4, clients=4)
    c.start()
    o = j(c, "put", "greeting", 'héllo "world"\n')[0]
    check(o == {"command": "put", "key": "greeting", "ok": True, "exit": 0}, f"put: {o}")
    o = j(c, "get", "greeting")[0]
    check(o["found"] and o["encoding"] == "utf8" and o["value"] == 'héllo "world"\n' and o["length"] == 15,
          f"get text: {o}")
    blob = bytes(range(256))
    check(j(c, "put", "blob", "-", input=blob)[0]["ok"], "put binary from stdin")
    o = j(c, "get", "blob")[0]
    check(o["encoding"] == "base64" and base64.b64decode(o["value"]) == blob, "binary value round trip (base64)")
    o = j(c, "get", "nothing", expect=1)[0]
    check(o["ok"] is False and o["found"] is False, f"not found: {o}")
    o = j(c, "del", "greeting")[0]
    check(o["ok"] and o["found"], f"del: {o}")
    o = j(c, "del", "greeting", expect=1)[0]
    check(o["found"] is False, f"del again: {o}")
    o = j(c, "stats", "2")[0]
    check(o["ok"] and o["stats"]["replica"] == 2 and "drops" in o["stats"], "stats embeds the replica's object")
    objs = j(c, "status")
    check(len(objs) == 5 and objs[-1]["summary"] and all(x["healthy"] for x in objs[:4]), f"status: {objs[-1]}")
    key = os.path.join(c.dir, "extra.key")
    o = j(c, "keygen", key)[0]
    check(o["path"] == key and len(o["x25519"]) == 64 and len(o["ed25519"]) == 64, f"keygen: {o}")
    with open(c.conf, encoding="utf-8") as fp:
        admin = int(next(ln.split()[1] for ln in fp if ln.startswith("admin_client ")))
    o = j(c, "log-level", "2", "debug", client=admin)[0]
    check(o["ok"] and o["answer"] == {"log_level": "debug", "was": "info"}, f"log-level: {o}")
    o = j(c, "log-level", "2", "info", client=0, expect=4)[0]
    check(o["ok"] is False and "error" in o["answer"], f"log-level refused: {o}")
    d = os.path.join(c.dir, "deploy")
    o = j(c, "admin", "init", "--nodes", "4", "--rf", "4", "--partitions", "2", "--dir", d)[0]
    check(o["command"] == "admin init" and o["ok"] and o["dir"] == d and o["partitions"] == 2, f"admin init: {o}")
    pub = os.path.join(d, "admin.pub")
    o = j(c, "admin", "show-map", os.path.join(d, "map.bin"), "--admin-pub", pub)[0]
    check(o["ok"] and len(o["map"]["nodes"]) == 4 and o["map"]["epoch"] == 1, f"admin show-map: {o}")
    out2 = os.path.join(d, "map2.bin")
    o = j(c, "admin", "resign", os.path.join(d, "map.bin"), "--admin-key", os.path.join(d, "admin.key"), "--epoch",
          "2", "--out", out2)[0]
    check(o["ok"] and o["epoch"] == 2 and o["out"] == out2, f"admin resign: {o}")
    o = j(c, "admin", "init", "--nodes", "4", "--rf", "4", "--partitions", "2", "--dir", d, expect=4)[0]
    check(o == {"command": "admin init", "ok": False, "exit": 4}, f"admin init over a deployment: {o}")

    rc, out, err = c.cli("--hex", "get", "blob")
    check(rc == 0 and bytes.fromhex(out.decode().strip()) == blob, "--hex")
    rc, out, err = c.cli("--base64", "get", "blob")
    check(rc == 0 and base64.b64decode(out.decode().strip()) == blob, "--base64")
    rc, out, err = c.cli("--json", "--hex", "get", "blob")
    o = json.loads(out.decode())
    check(o["encoding"] == "hex" and bytes.fromhex(o["value"]) == blob, "--json --hex")

    c.kill(3)
    o = j(c, "stats", "3", timeout_ms=500, expect=3)[0]
    check(o["ok"] is False and "error" in o, f"stats of a dead replica: {o}")
    objs = j(c, "status", timeout_ms=500, expect=5)
    check(objs[3]["answered"] is False, f"status with replica 3 down: {objs[3]}")
    c.stop()


if __name__ == "__main__":
    run_test(body, budget_s=90)
