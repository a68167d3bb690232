#!/usr/bin/env python3
"""integ_primary_kill: kill -9 of the primary under a steady write load.

A 4-replica group runs integ_load (4 writers sharing one handle with 16 lanes).
A few seconds in, the primary is killed with SIGKILL and the load is marked.
Writes must continue after the view change (writes acknowledged after the mark
> 0), the surviving replicas must be in a later view, and at the end integ_load
reads every key back: each must hold its last acknowledged value (no
acknowledged write lost, no wrong value).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import Cluster, Load, check, log, run_test  # noqa: E402

SETTINGS = ("client_lanes 16",)
LOAD_S = 9.0
KILL_AT_S = 3.0


def body():
    c = Cluster("primary-kill", 4, settings=SETTINGS)
    c.start()
    primary = c.primary()
    view0 = c.stats(primary)["view"]
    load = Load(c, client=1, writers=4, keys=32, seconds=LOAD_S)
    time.sleep(KILL_AT_S)
    c.kill(primary)
    load.mark()
    rc, res = load.wait()
    log(f"load result: {res}")
    check(res["acks"] > 0, "no write acknowledged at all")
    check(res["acks_after_mark"] > 0, f"no write acknowledged after the primary (replica {primary}) was killed")
    check(res["wrong"] == 0, f"{res['wrong']} reads returned a wrong value")
    check(res["lost"] == 0, f"{res['lost']} acknowledged writes not readable at the end")
    check(rc == 0, f"integ_load exit {rc} (errors {res['errors']})")
    views = {i: c.stats(i)["view"] for i in c.live()}
    log(f"views after the kill: {views} (was {view0})")
    check(min(views.values()) > view0, f"no view change: views {views}, before {view0}")
    check(all(v % c.n != primary for v in views.values()), f"the dead replica {primary} is still primary")


if __name__ == "__main__":
    run_test(body, budget_s=90)
