#!/usr/bin/env python3
"""integ_log_level: a replica's logs are key=value lines, and its log level
changes while it runs (docs/operations.md "Logs").

A 4-replica group; tools/cluster names its own client (the tools identity) in
an admin_client line.

  - `bftkv --client TOOLS log-level 1 debug` is obeyed ({"log_level":"debug",
    "was":"info"}, exit 0); replica 1 then logs debug lines (a stats request
    answered), which it did not before.
  - Client 0, no admin_client, is refused (exit 4, the answer says why, the
    replica logs a warning) and the level stays debug.
  - Back to info; a bad level name is a usage error (exit 2).
  - Every line of replica 1's log (after tools/cluster's own "===" markers)
    parses strictly as logfmt: ts, level, proc, node, partition, [view], msg.
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import EXIT_OK, EXIT_OTHER, EXIT_USAGE, Cluster, check, log, run_test  # noqa: E402

LINE = re.compile(r'^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(error|warn|info|debug) proc=\S+'
                  r'( node=\d+ partition=\d+( view=\d+)?)? msg="((?:[^"\\]|\\["\\nt]|\\x[0-9a-f]{2})*)"$')


def replica_log(c, i):
    with open(os.path.join(c.dir, "logs", f"replica-{i}.log"), encoding="utf-8", errors="replace") as fp:
        return fp.read()


def tools_client(c):
    with open(c.conf, encoding="utf-8") as fp:
        m = re.search(r"^admin_client (\d+)$", fp.read(), re.M)
    check(m is not None, "tools/cluster wrote no admin_client line")
    return int(m.group(1))


def body():
    c = Cluster("log-level", 4)
    c.start()
    admin = tools_client(c)
    c.must("put", "k", "v")
    c.stats(1)
    check("level=debug" not in replica_log(c, 1), "replica 1 logged debug lines at level info")

    rc, out, err = c.cli("log-level", "1", "debug", client=admin)
    check(rc == EXIT_OK, f"log-level 1 debug as client {admin}: exit {rc}, {err.strip()}")
    check(json.loads(out) == {"log_level": "debug", "was": "info"}, f"answer {out!r}")
    c.stats(1)  # answered at debug: "stats sent to client ..."
    text = replica_log(c, 1)
    check("level=debug" in text, "no debug line after the level was set to debug")
    check(f'msg="log level debug (was info), set by client {admin}"' in text, "the change is not logged")

    rc, out, err = c.cli("log-level", "1", "error", client=0)
    check(rc == EXIT_OTHER and "refused" in err, f"client 0 (no admin_client): exit {rc}, {err.strip()}")
    check(json.loads(out)["log_level"] == "debug" and "error" in json.loads(out), f"refusal {out!r}")
    check("level=warn" in replica_log(c, 1) and "it is no admin_client" in replica_log(c, 1),
          "the refusal is not logged")

    rc, out, err = c.cli("--json", "log-level", "1", "info", client=admin)
    res = json.loads(out)
    check(rc == EXIT_OK and res["ok"] is True and res["answer"] == {"log_level": "info", "was": "debug"},
          f"--json log-level 1 info: exit {rc}, {out!r}")
    rc, out, err = c.cli("log-level", "1", "loud", client=admin)
    check(rc == EXIT_USAGE and "expected error, warn, info or debug" in err, f"a bad level: exit {rc}, {err.strip()}")

    lines = [ln for ln in replica_log(c, 1).splitlines() if not ln.startswith("=== ")]
    bad = [ln for ln in lines if not LINE.match(ln)]
    log(f"replica 1: {len(lines)} log lines, {len(bad)} not logfmt")
    check(lines and not bad, f"lines that are not logfmt: {bad[:3]}")
    check(any(" node=1 partition=0 view=" in ln for ln in lines), "no line carries the replica's view")


if __name__ == "__main__":
    run_test(body, budget_s=90)
