#!/usr/bin/env python3
"""integ_deployment_route: a routing handle serves every partition of a
deployment (M = 4 nodes, R = 4, P = 16, on 127.0.0.1) with one I/O thread and
one socket (client/client_route.c, client/client_loop.c).

integ_route opens the deployment's config and checks that the open added one
thread and two sockets (the socket and its wake-up socket) for the 16
partitions, and that the close took them away; then puts (sync and async) and
gets two keys of every partition for 3 rounds, and every partition's handle must
have completed all of its requests without a timeout. Every node hosts every
partition here, so a node's replies of different partitions share datagrams.

  --threads K   the nodes run protocol_threads K (partition p on the node's
                port + (p mod K) * M): replies come from K addresses per node.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import INTEG_BIN, Cluster, check, log, run, run_test, text  # noqa: E402

M, R, P = 4, 4, 16
THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv[1:] else 1


def body():
    c = Cluster("route", M, deployment=(R, P), settings=(f"protocol_threads {THREADS}",))
    c.start()
    r = run([os.path.join(INTEG_BIN, "integ_route"), "--config", c.conf, "--client", "1", "--rounds", "3"],
            timeout=90.0)
    out = text(r.stdout)
    log(out.strip())
    check(r.returncode == 0, f"integ_route exit {r.returncode}:\n{text(r.stderr)}")
    check(f'"partitions": {P}' in out and '"threads_added": 1' in out and '"sockets_added": 2' in out,
          f"integ_route said: {out}")
    # The CLI opens a routing handle too: a short-lived one.
    c.must("put", "route-cli-key", "route-cli-value")
    got = c.must("get", "route-cli-key")
    check(got == b"route-cli-value", f"get route-cli-key: {got!r}")


if __name__ == "__main__":
    run_test(body, budget_s=110)
