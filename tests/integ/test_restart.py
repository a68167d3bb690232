#!/usr/bin/env python3
"""integ_restart_*: restarts never lose or invent data (docs/operations.md,
"Restarts and the data directory" and "Changing the group").

Three scenarios on a 4-replica group (f = 1) holding 150 acknowledged keys:

  rolling      The documented rolling change: a new client's line is added to
               the config, then every replica is restarted in turn with
               `tools/cluster restart` (which returns only once the replica has
               caught up): with the default durability (sync: each comes back
               from its disk), and with --durability none (each comes back
               empty and fetches the state). Afterwards every key reads back its value, every
               replica is at the same last executed seq and state digest, and
               the new client writes and reads.
  idle-primary (durability none) The primary is restarted (empty memory) on an idle group: it
               must reach the others' last executed seq within 5 s without any
               new write.
  more-than-f  (durability none) One replica (f) is killed and restarted: q = 3 replicas still
               hold state, so it rejoins and every key reads back its value.
               Then two replicas (more than f: fewer than q keep their memory)
               are killed and restarted at once: the group must refuse
               (BFTKV_E_NO_STATE) and never answer an agreed "key not found" for
               an acknowledged write; stats and the log say why. Then a third,
               and last the fourth: empty replicas still refuse.

    test_restart.py --scenario rolling|idle-primary|more-than-f [--durability default|none]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (EXIT_NOT_FOUND, EXIT_OK, Cluster, check, log, run_test, wait_until)  # noqa: E402

KEYS = 150
IDLE_CATCHUP_S = 5.0


def fill(c):
    log(f"write {KEYS} keys")
    for i in range(1, KEYS + 1):
        c.must("put", f"key{i}", f"val{i}")


def all_readable(c, what):
    for i in range(1, KEYS + 1):
        got = c.must("get", f"key{i}")
        check(got == f"val{i}".encode(), f"{what}: key{i} reads {got!r}, expected val{i}")


def same_state(c, ids):
    st = {i: c.stats(i) for i in ids}
    if any(s is None for s in st.values()):
        return False
    return st if len({(s["last_executed"], s["state_digest"]) for s in st.values()}) == 1 else False


def rolling(c):
    fill(c)
    new_id = 5  # tools/cluster create: clients 0..3 for applications, 4 for its own stats
    rc, out, err = c.cli("keygen", os.path.join(c.dir, "keys", f"client-{new_id}.key"))
    check(rc == 0, f"keygen: exit {rc}: {err}")
    pub = " ".join(w for w in out.decode().split() if w.startswith(("x25519=", "ed25519=")))
    with open(c.conf, "a", encoding="utf-8") as fp:
        fp.write(f"client {new_id} {pub}\n")
    log(f"client {new_id} added to the config; rolling restart 1, 2, 3, 0")
    for i in (1, 2, 3, 0):
        c.restart(i)  # tools/cluster restart: returns once replica i has caught up
        s = c.stats(i)
        check(s is not None and s["holds_state"] is True, f"replica {i} after its restart: {s}")
        check(s["engine"]["state_transfer_bad_digest"] == 0,
              f"replica {i}: {s['engine']['state_transfer_bad_digest']} fetched states failed their digest")
    all_readable(c, "after the rolling restart")
    st = wait_until("every replica at the same last_executed and digest", lambda: same_state(c, range(4)), 15)
    log("replicas: " + ", ".join(f"r{i} exec {s['last_executed']}" for i, s in st.items()))
    c.must("put", "from-new-client", "hello", client=new_id)
    check(c.must("get", "from-new-client", client=new_id) == b"hello", "the new client reads its write")
    check(c.must("get", "key1", client=new_id) == b"val1", "the new client reads an old key")


def idle_primary(c):
    fill(c)
    p = c.primary()
    others = [i for i in range(4) if i != p]
    top = max(c.stats(i)["last_executed"] for i in others)
    log(f"restart the primary {p} on the idle group (others at {top})")
    c.tool("restart", c.dir, str(p), "--no-wait")
    t0 = time.monotonic()

    def caught_up():
        s = c.stats(p)
        return s if s is not None and s["holds_state"] and s["last_executed"] >= top else False

    s = wait_until(f"replica {p} at last_executed {top}", caught_up, IDLE_CATCHUP_S)
    log(f"replica {p} caught up in {time.monotonic() - t0:.2f} s: exec {s['last_executed']}")
    check(max(c.stats(i)["last_executed"] for i in others) == top, "the idle group executed something meanwhile")
    all_readable(c, "after the primary's restart")


def refused(c, args):
    rc, out, err = c.cli(*args, timeout_ms=3000)
    check(rc not in (EXIT_OK, EXIT_NOT_FOUND),
          f"bftkv {' '.join(args)} with 3 of 4 replicas empty: exit {rc}, stdout {out[:60]!r}: it served a "
          f"store it does not hold")
    check("refuses to serve" in err or "no answer" in err, f"bftkv {' '.join(args)}: unclear error {err.strip()!r}")


def more_than_f(c):
    fill(c)
    log("kill -9 replica 1 and restart it (empty memory): q replicas still hold state")
    c.kill(1)
    c.tool("restart", c.dir, "1", "--no-wait")
    c.dead.discard(1)
    st = wait_until("all four at the same state", lambda: same_state(c, range(4)), 15)
    check(all(s["holds_state"] for s in st.values()), f"holds_state: {[s['holds_state'] for s in st.values()]}")
    all_readable(c, "after restarting f replicas")
    c.must("put", "after", "recovery")

    for victims in ((1, 2), (3,), (0,)):
        log(f"kill -9 replica(s) {victims} and restart (empty memory): fewer than q hold state")
        for i in victims:
            c.kill(i)
        for i in victims:
            c.tool("restart", c.dir, str(i), "--no-wait")
            c.dead.discard(i)
        time.sleep(1.0)
        for k in ("key1", f"key{KEYS}", "after"):
            refused(c, ("get", k))
        refused(c, ("put", "key1", "overwritten"))
        for i in victims:
            s = c.stats(i)
            check(s is not None and s["holds_state"] is False, f"replica {i} claims state it cannot have: {s}")
        with open(os.path.join(c.dir, "logs", f"replica-{victims[0]}.log"), errors="replace") as fp:
            check("holds no certified state" in fp.read(), f"replica {victims[0]}'s log does not say it holds no state")
    check(all(c.stats(i)["holds_state"] is False for i in range(4)), "a replica claims state after a whole-group loss")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", required=True, choices=("rolling", "idle-primary", "more-than-f"))
    ap.add_argument("--durability", choices=("default", "none"), default="default",
                    help="rolling: tools/cluster's default (sync) or none; the others always run with none")
    a = ap.parse_args()
    body = {"rolling": rolling, "idle-primary": idle_primary, "more-than-f": more_than_f}[a.scenario]
    durability = None if a.scenario == "rolling" and a.durability == "default" else "none"

    def run():
        c = Cluster(f"restart-{a.scenario}", 4, durability=durability)
        c.start()
        body(c)

    run_test(run, budget_s=150)


if __name__ == "__main__":
    main()
