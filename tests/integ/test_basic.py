#!/usr/bin/env python3
"""integ_basic_n4 / integ_basic_n7 / integ_single: put, get and del through the
CLI against a real cluster of N replicas (N = 1: the unreplicated single server).

Checks: a put is read back exactly (no trailing newline when stdout is not a
terminal); overwrite; del, then get and del of the missing key exit 1 with a
message; a 60 KiB value (BFTKV_VALUE_MAX) of random bytes from stdin comes back
byte for byte, one byte more is refused; an empty value; every replica answers
stats and they all execute the same requests to the same state digest. Then f
replicas are killed (-9; the primary first): the get still prints the value (the
issue's "Done when") and a put still succeeds after the view change. With N = 1
the replica is restarted instead, with empty memory: it holds no state and no
peer can vouch for it, so it refuses get and put (BFTKV_E_NO_STATE) instead of
serving an empty store.

    test_basic.py --n N
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (EXIT_NOT_FOUND, EXIT_OK, Cluster, check, log, run_test, wait_until)  # noqa: E402

VALUE_MAX = 60 * 1024


def same_state(c):
    """All live replicas at the same last_executed and state digest (or False)."""
    st = [c.stats(i) for i in c.live()]
    if any(s is None for s in st):
        return False
    seen = {(s["last_executed"], s["state_digest"]) for s in st}
    return seen if len(seen) == 1 else False


def body(n):
    f = (n - 1) // 3
    c = Cluster(f"basic-n{n}", n)
    c.start()

    log("put/get/overwrite")
    c.must("put", "k", "v")
    check(c.must("get", "k") == b"v", "get k after put k v")
    c.must("put", "k", "v2")
    check(c.must("get", "k") == b"v2", "get k after overwrite")

    log("del and the missing key")
    c.must("put", "gone", "soon")
    c.must("del", "gone")
    rc, out, err = c.cli("get", "gone")
    check(rc == EXIT_NOT_FOUND and out == b"" and err.strip(),
          f"get of a deleted key: exit {rc} stdout {out!r} stderr {err!r} (want 1, nothing, a message)")
    c.must("del", "gone", expect=EXIT_NOT_FOUND)
    c.must("get", "never-written", expect=EXIT_NOT_FOUND)

    log("a 60 KiB value from stdin, one byte more, an empty value")
    big = os.urandom(VALUE_MAX)
    c.must("put", "big", "-", input=big)
    got = c.must("get", "big")
    check(got == big, f"60 KiB value: got {len(got)} bytes, equal={got == big}")
    rc, _, err = c.cli("put", "too-big", "-", input=big + b"x")
    check(rc != 0, f"a value of {VALUE_MAX + 1} bytes was accepted (exit {rc})")
    check(err.strip(), "a refused value gets a message on stderr")
    c.must("put", "empty", "-", input=b"")
    check(c.must("get", "empty") == b"", "empty value")

    log("every replica reaches the same state")
    wait_until("same last_executed and state digest on every replica", lambda: same_state(c), 15)
    s0 = c.stats(0)
    for key in ("replica", "view", "last_executed", "low_watermark", "state_digest", "requests_executed",
                "batches_executed", "avg_batch", "viewchanges", "state_transfers", "datagrams_received",
                "datagrams_sent", "drops", "backend", "stages"):
        check(key in s0, f"stats JSON lacks '{key}': {sorted(s0)}")
    check(s0["requests_executed"] >= 7, f"requests_executed {s0['requests_executed']} < 7 (5 puts, 2 dels)")

    if n == 1:
        # Its store was in memory only: restarted, it holds nothing and no peer
        # can vouch for it, so it must refuse rather than serve an empty store
        # (an agreed "key not found" for an acknowledged write).
        log("restart the single server: empty memory, so it refuses")
        c.tool("restart", c.dir, "0", "--no-wait")
        for args in (("get", "k"), ("put", "k", "again")):
            rc, out, err = c.cli(*args)
            check(rc not in (EXIT_OK, EXIT_NOT_FOUND), f"bftkv {' '.join(args)} after losing the store: exit {rc}, "
                  f"stdout {out[:80]!r}: it served an empty store")
            check("refuses to serve" in err, f"bftkv {' '.join(args)}: the error does not say why: {err.strip()!r}")
        s = c.stats(0)
        check(s is not None and s["holds_state"] is False, f"stats do not say it holds no state: {s}")
        check(s["engine"]["requests_refused_no_state"] >= 2, f"refusals not counted: {s['engine']}")
        return

    victims = [c.primary()]
    victims += [i for i in range(n) if i not in victims][: f - 1]
    for i in victims:
        c.kill(i)
    log(f"{len(victims)} replica(s) down: get k")
    check(c.must("get", "k") == b"v2", "get k with f replicas down")
    check(c.must("get", "big") == big, "get big with f replicas down")
    log("put after the view change")
    c.must("put", "after", "kill")
    check(c.must("get", "after") == b"kill", "get after the view change")
    views = [c.stats(i)["view"] for i in c.live()]
    check(min(views) > 0, f"no view change after killing the primary: views {views}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    a = ap.parse_args()
    run_test(lambda: body(a.n), budget_s=100)


if __name__ == "__main__":
    main()
