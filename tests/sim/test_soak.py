#!/usr/bin/env python3
"""soak_test: tools/soak runs bftkv-sim in chunks, keeps its progress, resumes
where it stopped, and reports a failing seed with its replay command.

  1. 4:1 and d7:4:16, 20 seeds each in chunks of 10: exit 0, the state file
     says 20 done and the next seed is 21 for both.
  2. The same state, --seeds 30: it says it resumed at seed 21, runs exactly
     21..30 of each, and ends with 30 done.
  3. An injected bug (--bug client_f_replies, found by plain --faults all at
     seed 2): exit 1, the failing seeds listed with a replay command that
     carries the bug flag, and the failures kept in the state.

    test_soak.py TOOLS_SOAK BUILD_DIR
"""

import json
import os
import subprocess
import sys
import tempfile


def fail(msg):
    print(f"FAIL: {msg}")
    sys.exit(1)


def soak(tool, build, *args):
    env = dict(os.environ, BFTKV_BUILD=build)
    p = subprocess.run([sys.executable, tool] + list(args), capture_output=True, text=True, timeout=300, env=env)
    return p.returncode, p.stdout + p.stderr


def main():
    tool, build = sys.argv[1], sys.argv[2]
    d = tempfile.mkdtemp(prefix="bftkv-soak-test-")
    state = os.path.join(d, "state.json")
    base = ["--configs", "4:1,d7:4:16", "--chunk", "10", "--first", "1", "--state", state,
            "--sim-args", "--requests 20"]
    rc, out = soak(tool, build, *base, "--seeds", "20")
    print(out)
    if rc != 0:
        fail(f"a clean soak exited {rc}")
    with open(state) as fp:
        st = json.load(fp)
    for key in ("4:1 --requests 20", "d7:4:16 --requests 20"):
        if st.get(key, {}).get("done") != 20 or st[key]["next"] != 21 or st[key]["failures"]:
            fail(f"state of {key}: {st.get(key)}")

    rc, out = soak(tool, build, *base, "--seeds", "30")
    print(out)
    if rc != 0 or out.count("resumed at seed 21") != 2 or out.count("seeds 21..30 ") != 2 or "seeds 1..10" in out:
        fail("the second run did not resume at 21 and run exactly 21..30 of each")
    with open(state) as fp:
        st = json.load(fp)
    if any(st[k]["done"] != 30 for k in st):
        fail(f"after resuming: {st}")

    state2 = os.path.join(d, "bug.json")
    rc, out = soak(tool, build, "--configs", "4:1", "--seeds", "10", "--chunk", "10", "--first", "1", "--state",
                   state2, "--sim-args", "--bug client_f_replies")
    print(out)
    if rc != 1:
        fail(f"a soak that found failures exited {rc}")
    if "FAIL seed" not in out or "replay: " not in out or "--bug client_f_replies" not in out.split("replay: ")[1]:
        fail("no failing seed with its replay command")
    with open(state2) as fp:
        st = json.load(fp)
    if not st["4:1 --bug client_f_replies"]["failures"]:
        fail("the failures are not kept in the state")
    print("PASS")


if __name__ == "__main__":
    main()
