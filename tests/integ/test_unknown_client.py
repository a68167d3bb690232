#!/usr/bin/env python3
"""integ_unknown_client: a client the group does not know is refused.

The cluster is created with clients 0..3 and client 2's line is then removed
from its config, so the replicas start with an allow-list {0, 1, 3} (ids may
have gaps). The strangers use their own copy of the config that the replicas
never see:

  - client 2 (an id inside the table but not allowed), with its own key;
  - client 9 (an id past the table);
  - client 1 with a key that is not client 1's (an impostor).

Each must fail with exit 3 (timeout/unavailable: the replicas drop its requests
silently and never answer), and the replicas' drop counters must rise
(UNKNOWN_CLIENT, BAD_SENDER or BAD_AUTH); the real client 1 still works.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (CLI, EXIT_UNAVAILABLE, Cluster, check, drops_of, drops_total, log, run,  # noqa: E402
                   run_test, text)

STRANGER_TIMEOUT_MS = 1500


def keygen(path):
    r = run([CLI, "keygen", path])
    check(r.returncode == 0, f"bftkv keygen {path}: exit {r.returncode} {text(r.stderr)}")
    m = re.search(r"x25519=[0-9a-fA-F]{64}\s+ed25519=[0-9a-fA-F]{64}", text(r.stdout))
    check(m, f"bftkv keygen printed no key pair: {text(r.stdout)!r}")
    return m.group(0)


def body():
    c = Cluster("unknown-client", 4)
    with open(c.conf) as fp:
        lines = fp.read().splitlines()
    client2 = [ln for ln in lines if ln.startswith("client 2 ")]
    check(len(client2) == 1, "client 2 line in the created config")
    with open(c.conf, "w") as fp:
        fp.write("\n".join(ln for ln in lines if not ln.startswith("client 2 ")) + "\n")
    c.start()
    c.must("put", "k", "v", client=1)

    # The strangers' config: same group, plus client 2 (its real key), client 9,
    # and an impostor's key for client 1; a short client timeout.
    keydir = os.path.join(c.dir, "stranger-keys")
    os.mkdir(keydir, 0o700)
    pub9 = keygen(os.path.join(keydir, "client-9.key"))
    pub1 = keygen(os.path.join(keydir, "client-1.key"))
    os.link(os.path.join(c.dir, "keys", "client-2.key"), os.path.join(keydir, "client-2.key"))
    stranger = []
    for ln in lines:
        if ln.startswith("key_dir "):
            ln = "key_dir stranger-keys"
        elif ln.startswith("client 1 "):
            ln = f"client 1 {pub1}"
        stranger.append(ln)
    stranger += [f"client 9 {pub9}", f"client_timeout_ms {STRANGER_TIMEOUT_MS}"]
    sconf = os.path.join(c.dir, "stranger.conf")
    with open(sconf, "w") as fp:
        fp.write("\n".join(stranger) + "\n")

    cases = (
        (2, ("unknown_client", "bad_auth"), "client 2, not in the allow-list"),
        (9, ("bad_sender", "unknown_client", "bad_auth"), "client 9, past every allowed id"),
        (1, ("bad_auth",), "an impostor with client 1's id and another key"),
    )
    for cid, reasons, what in cases:
        before = [c.stats(i) for i in range(c.n)]
        log(f"{what}: put and get")
        for args in (("put", "stranger", "x"), ("get", "k")):
            rc, out, err = c.cli(*args, client=cid, config=sconf)
            check(rc == EXIT_UNAVAILABLE,
                  f"{what}: bftkv {' '.join(args)} exit {rc} (want 3), stdout {out[:100]!r}, stderr {err.strip()!r}")
        after = [c.stats(i) for i in range(c.n)]
        rise = sum(drops_of(a, *reasons) - drops_of(b, *reasons) for a, b in zip(after, before))
        total = sum(drops_total(a) - drops_total(b) for a, b in zip(after, before))
        detail = {}
        for a, b in zip(after, before):
            for k, v in a.get("drops", {}).items():
                if v - b.get("drops", {}).get(k, 0):
                    detail[k] = detail.get(k, 0) + v - b["drops"].get(k, 0)
        log(f"{what}: drops {'/'.join(reasons)} +{rise} (all reasons +{total}: {detail})")
        check(rise > 0, f"{what}: no {'/'.join(reasons)} drop counted; drops now "
                        f"{[a.get('drops') for a in after]}")

    c.must("get", "stranger", client=1, expect=1)
    check(c.must("get", "k", client=1) == b"v", "the real client 1 still works")


if __name__ == "__main__":
    run_test(body, budget_s=80)
