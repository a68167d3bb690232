#!/usr/bin/env python3
"""integ_byzantine_modes: one list of Byzantine modes.

bftkv-server prints its --byzantine modes in --help from the engine's name table
(engine/byzantine.h), and names them all when it refuses an unknown one;
tools/cluster keeps its own list for its --byzantine choices. This checks that
the three agree, in order, and that the server accepts every listed mode's name
past argument parsing (it then stops at the missing --config, exit 2, with no
complaint about the mode). No cluster is started.
"""

import os
import re
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import BUILD, CLUSTER, check, log, run, run_test  # noqa: E402


def cluster_modes():
    loader = SourceFileLoader("bftkv_tools_cluster", CLUSTER)
    mod = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return list(mod.BYZANTINE_MODES)


def help_modes(server):
    r = run([server, "--help"], timeout=10)
    check(r.returncode == 0, f"bftkv-server --help exit {r.returncode}")
    lines = r.stdout.decode().splitlines()
    at = [i for i, x in enumerate(lines) if "MODE is one of" in x]
    check(len(at) == 1, "--help introduces the modes once ('MODE is one of')")
    modes = []
    for x in lines[at[0] + 1:]:
        if not x.startswith(" " * 25):
            break
        modes += x.split()
    return modes


def body():
    server = os.path.join(BUILD, "bftkv-server")
    check(os.access(server, os.X_OK), f"{server} is not built")
    tool = cluster_modes()
    helped = help_modes(server)
    log(f"tools/cluster: {tool}")
    log(f"bftkv-server --help: {helped}")
    check(len(helped) >= 12, f"--help lists {len(helped)} modes, want the simulator's 12 at least")
    check(tool == helped, "tools/cluster's BYZANTINE_MODES differs from bftkv-server --help")
    r = run([server, "--byzantine", "no-such-mode"], timeout=10)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 2, f"an unknown mode: exit {r.returncode}, want 2")
    m = re.search(r"unknown mode 'no-such-mode' \(([^)]*)\)", err)
    check(m is not None, f"the refusal names the modes: {err.strip()}")
    check(m.group(1).split(", ") == helped, f"the refusal's list {m.group(1)} differs from --help")
    for mode in helped:
        r = run([server, "--byzantine", mode], timeout=10)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2 and "unknown mode" not in err, f"--byzantine {mode}: exit {r.returncode}: {err}")


if __name__ == "__main__":
    run_test(body, budget_s=40)
