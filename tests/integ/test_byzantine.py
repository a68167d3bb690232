#!/usr/bin/env python3
"""integ_byzantine: one replica in `mix` Byzantine mode under load, and no
client sees a wrong value.

A 4-replica group (f = 1); before any load, one replica is restarted with
`--byzantine mix` (per message it drops, corrupts a MAC or a digest -- a REPLY's
result included -- or behaves: engine/byzantine.h). integ_load runs with
--verify-gets: each writer reads its own keys while writing and compares every
GET with the last acknowledged PUT; at the end every key is read back. No read may
be wrong, no acknowledged write lost, writes must progress, and the three honest
replicas must end with the same state. It runs three times, each in a fresh
group: a backup in `mix` mode, the primary in `mix` mode, and a backup in
`wrong-result` mode (every REPLY it sends carries a made-up, well-authenticated
result: the client must outvote it).

A run passes only if the liar really lied: its `bftkv stats` names the mode and
its byzantine_stats (server/byzantine.c) count the lies -- in `mix` mode dropped
and corrupted messages, and the honest replicas dropped some of them for a bad
MAC (drops.bad_auth); in `wrong-result` mode fabricated replies.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, Load, check, drops_of, log, run_test, wait_until  # noqa: E402

SETTINGS = ("client_lanes 16",)
LOAD_S = 6.0


def one(name, liar, mode, seed=None):
    c = Cluster(name, 4, settings=SETTINGS)
    c.start()
    c.restart(liar, byzantine=mode, byzantine_seed=seed)
    load = Load(c, client=1, writers=4, keys=24, seconds=LOAD_S, verify_gets=True)
    rc, res = load.wait()
    log(f"replica {liar} byzantine: load result {res}")
    check(res["wrong"] == 0, f"{res['wrong']} reads returned a wrong value with replica {liar} byzantine")
    check(res["lost"] == 0, f"{res['lost']} acknowledged writes lost with replica {liar} byzantine")
    check(res["acks"] > 0 and res["gets"] > 0, f"no progress with replica {liar} byzantine: {res}")
    check(rc == 0, f"integ_load exit {rc} (errors {res['errors']})")
    honest = [i for i in range(c.n) if i != liar]

    def honest_agree():
        st = {i: c.stats(i) for i in honest}
        if any(s is None for s in st.values()):
            return False
        return st if len({(s["last_executed"], s["state_digest"]) for s in st.values()}) == 1 else False

    st = wait_until("the honest replicas at the same last_executed and state digest", honest_agree, 20)
    log("honest replicas: " + ", ".join(
        f"r{i} view {s['view']} exec {s['last_executed']} viewchanges {s['viewchanges']} "
        f"drops {sum(s.get('drops', {}).values())}" for i, s in st.items()))
    check_lied(c, liar, mode, st)
    c.stop()


def check_lied(c, liar, mode, honest_stats):
    """The liar misbehaved for real, and in mix mode the honest replicas saw it."""
    s = c.stats(liar)
    check(s is not None, f"replica {liar} ({mode}) does not answer stats")
    check(s.get("byzantine") == mode, f"replica {liar} runs byzantine mode {s.get('byzantine')!r}, not {mode!r}")
    b = s.get("byzantine_stats")
    check(isinstance(b, dict), f"replica {liar} reports no byzantine_stats: {sorted(s)}")
    log(f"replica {liar} ({mode}) byzantine_stats {b}")
    if mode == "mix":
        check(b["dropped"] > 0, f"replica {liar} in mix mode dropped nothing: {b}")
        check(b["corrupted"] > 0, f"replica {liar} in mix mode corrupted nothing: {b}")
        bad_auth = {i: drops_of(st, "bad_auth") for i, st in honest_stats.items()}
        log(f"honest replicas' bad_auth drops: {bad_auth}")
        check(sum(bad_auth.values()) > 0,
              f"no honest replica dropped a message with a bad MAC while replica {liar} corrupted {b['corrupted']}")
    elif mode == "wrong-result":
        check(b["fabricated"] > 0, f"replica {liar} in wrong-result mode fabricated no reply: {b}")
    else:
        raise AssertionError(f"no evidence check for mode {mode}")


def body():
    one("byz-backup", 3, "mix")
    one("byz-primary", 0, "mix")
    one("byz-liar", 2, "wrong-result")


if __name__ == "__main__":
    run_test(body, budget_s=110)
