#!/usr/bin/env python3
"""integ_catchup: a replica killed and restarted with empty memory catches up.

A 4-replica group with a short checkpoint interval (so stable checkpoints pass
the restarted replica's empty state quickly) runs a write load. Replica 2 is
killed with SIGKILL, the load goes on without it, replica 2 is started again
with empty memory while the load still runs, and after the load ends every
replica must reach the same last_executed and the same state digest (state
transfer of the stable checkpoint, then the log after it). Then replica 3 is
killed, so the group's progress needs replica 2: a put and a get must still work.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, Load, check, log, run_test, wait_until  # noqa: E402

SETTINGS = ("client_lanes 16", "checkpoint_interval 16")
VICTIM = 2
CATCHUP_BOUND_S = 30


def agreed(c):
    """The restarted replica holds the same (last_executed, state digest) as a
    quorum q of replicas, itself included; no two replicas that executed the same
    prefix disagree on its digest (safety). A correct replica may still be behind:
    one that timed out alone (e.g. CPU-starved under load) waits in its view
    change, and PBFT forbids it to go back to the old view; it can only follow
    the stable checkpoints by state transfer until the next view change
    (TOCS 2002 §4.5.2), so requiring all four to be equal would test more than the
    protocol promises."""
    st = {i: c.stats(i) for i in range(c.n)}
    if any(s is None for s in st.values()):
        return False
    by_exec = {}
    for s in st.values():
        by_exec.setdefault(s["last_executed"], set()).add(s["state_digest"])
    check(all(len(d) == 1 for d in by_exec.values()),
          "replicas that executed the same prefix disagree on its digest: "
          + ", ".join(f"r{i}: exec {s['last_executed']} digest {s['state_digest'][:12]}" for i, s in st.items()))
    quorum = (c.n + (c.n - 1) // 3 + 2) // 2          # q = ceil((n + f + 1) / 2)
    victim = (st[VICTIM]["last_executed"], st[VICTIM]["state_digest"])
    same = [i for i, s in st.items() if (s["last_executed"], s["state_digest"]) == victim]
    top = max(s["last_executed"] for s in st.values())
    if len(same) < quorum or victim[0] != top:
        log("  " + ", ".join(f"r{i}: view {s['view']} exec {s['last_executed']} digest {s['state_digest'][:12]}"
                             for i, s in st.items()))
        return False
    return st


def body():
    c = Cluster("catchup", 4, settings=SETTINGS)
    c.start()
    load = Load(c, client=1, writers=4, keys=48, seconds=8.0)
    time.sleep(2.0)
    c.kill(VICTIM)
    time.sleep(2.5)
    c.restart(VICTIM)
    rc, res = load.wait()
    log(f"load result: {res}")
    check(rc == 0 and res["wrong"] == 0 and res["lost"] == 0, f"load failed: exit {rc} {res}")

    log(f"wait (<= {CATCHUP_BOUND_S} s) until replica {VICTIM} has the others' state")
    st = wait_until(f"replica {VICTIM} at the same last_executed and state digest as a quorum, the highest", lambda: agreed(c),
                    CATCHUP_BOUND_S, every_s=0.5)
    s = st[VICTIM]
    log(f"replica {VICTIM}: last_executed {s['last_executed']} digest {s['state_digest'][:16]} "
        f"state_transfers {s['state_transfers']}")
    check(s["state_transfers"] >= 1, f"replica {VICTIM} caught up without a state transfer? {s}")

    c.kill(3)
    log("replica 3 down: the group now needs replica 2")
    c.must("put", "after-catchup", "yes")
    check(c.must("get", "after-catchup") == b"yes", "get after the catch-up")


if __name__ == "__main__":
    run_test(body, budget_s=100)
