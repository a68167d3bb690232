#!/usr/bin/env python3
"""integ_garbage: a replica survives a burst of hostile datagrams and counts them.

integ_garbage (tests/integ/integ_garbage.c) sends a bounded burst of random,
truncated, wrongly authenticated, malformed, forged, replayed and oversized
datagrams to one replica over 127.0.0.1. Afterwards the replica must still run
and answer stats, its drop counters must have risen (in total and for the
reasons the burst aims at), and the group must still serve put and get.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from integ import (INTEG_BIN, Cluster, check, drops_of, drops_total, log, run, run_test, text)  # noqa: E402

COUNT = 6000
TARGET = 1

# Each of these is aimed at by one kind of datagram of the burst. The runtime
# checks a datagram's framing first (server/server.h: random bytes, truncation, a
# wrong magic or version, trailing junk count as "bad_datagram"); the engine's
# decoder and authentication count the rest by wire reason (engine/wire.h), the
# admin protocol its replays.
EXPECTED = (
    ("bad_datagram", "truncated", "bad_magic", "bad_version"),
    ("bad_type",),
    ("bad_group",),
    ("bad_auth",),
    ("bad_field",),
    ("unknown_client", "bad_sender"),
    ("admin_replay",),
)


def body():
    c = Cluster("garbage", 4)
    c.start()
    c.must("put", "k", "v")
    pid = c.pid(TARGET)
    before = c.stats(TARGET)
    check(before is not None, "stats before the burst")

    log(f"{COUNT} hostile datagrams to replica {TARGET} (pid {pid})")
    r = run([os.path.join(INTEG_BIN, "integ_garbage"), "--config", c.conf, "--client", "3",
             "--replica", str(TARGET), "--count", str(COUNT)], timeout=60)
    check(r.returncode == 0, f"integ_garbage: exit {r.returncode}: {text(r.stderr)}")
    print(text(r.stdout), end="")

    check(os.path.exists(f"/proc/{pid}"), f"replica {TARGET} (pid {pid}) died")
    after = c.stats(TARGET)
    check(after is not None, f"replica {TARGET} no longer answers stats")
    total = drops_total(after) - drops_total(before)
    log(f"drops +{total}: {after.get('drops')}")
    check(total >= COUNT // 4, f"drop counters rose by {total} only, for {COUNT} hostile datagrams")
    for reasons in EXPECTED:
        rise = drops_of(after, *reasons) - drops_of(before, *reasons)
        check(rise > 0, f"no {'/'.join(reasons)} drop counted")
    check(after["datagrams_received"] > before["datagrams_received"], "datagrams_received did not rise")

    log("the group still serves")
    c.must("put", "k", "v2")
    check(c.must("get", "k") == b"v2", "get after the burst")
    for i in range(c.n):
        check(c.stats(i) is not None, f"replica {i} answers stats")


if __name__ == "__main__":
    run_test(body, budget_s=80)
