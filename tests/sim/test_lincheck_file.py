#!/usr/bin/env python3
"""lincheck_file_test: build/bftkv-lincheck on small hand-written bftkv-bench
histories, one per rule of the format (docs/benchmarks.md "The history"): ok
operations took effect within their interval, fail ones never, unknown ones
maybe (at any point after their invocation); every key starts absent; a read of
a value no PUT wrote is a violation; duplicate PUT values or malformed lines make
the file unusable (exit 2). Each case states the exit code it must get.

    test_lincheck_file.py BUILD/bftkv-lincheck
"""

import json
import os
import subprocess
import sys
import tempfile

A, B = "00000a0000000001", "00000a0000000002"


def op(kind, key, t0, t1, outcome="ok", result="ok", value=None, client=0):
    return {"client": client, "op": kind, "key": key, "value": value, "phase": "measure",
            "invoke_ns": t0, "return_ns": t1, "outcome": outcome, "result": result}


HEAD = {"bftkv_bench_history": 1, "seed": 1, "run_tag": "00000"}
CASES = [
    ("read after write", 0, [op("put", "k", 0, 10, value=A), op("get", "k", 20, 30, value=A)]),
    ("read before the write", 1, [op("get", "k", 0, 10, value=A), op("put", "k", 20, 30, value=A)]),
    ("concurrent read may see the write", 0, [op("put", "k", 0, 30, value=A), op("get", "k", 10, 20, value=A)]),
    ("stale read", 1, [op("put", "k", 0, 10, value=A), op("put", "k", 20, 30, value=B),
                       op("get", "k", 40, 50, value=A)]),
    ("unknown put may take effect", 0, [op("put", "k", 0, None, "unknown", "TIMEOUT", A),
                                        op("get", "k", 20, 30, value=A)]),
    ("unknown put may not take effect", 0, [op("put", "k", 0, None, "unknown", "TIMEOUT", A),
                                            op("get", "k", 20, 30, result="not_found")]),
    ("unknown put takes effect after its invocation only", 1,
     [op("get", "k", 0, 10, value=A), op("put", "k", 20, None, "unknown", "TIMEOUT", A)]),
    ("failed put does not take effect", 1, [op("put", "k", 0, 5, "fail", "FULL", A),
                                            op("get", "k", 20, 30, value=A)]),
    ("failed put, absent key", 0, [op("put", "k", 0, 5, "fail", "FULL", A),
                                   op("get", "k", 20, 30, result="not_found")]),
    ("delete", 0, [op("put", "k", 0, 10, value=A), op("del", "k", 20, 30),
                   op("get", "k", 40, 50, result="not_found")]),
    ("read after delete", 1, [op("put", "k", 0, 10, value=A), op("del", "k", 20, 30),
                              op("get", "k", 40, 50, value=A)]),
    ("unknown delete may take effect", 0, [op("put", "k", 0, 10, value=A),
                                           op("del", "k", 20, None, "unknown", "CANCELLED"),
                                           op("get", "k", 40, 50, result="not_found")]),
    ("delete of an absent key says not_found", 1, [op("del", "k", 0, 10)]),
    ("delete of an absent key", 0, [op("del", "k", 0, 10, result="not_found")]),
    ("keys are independent", 1, [op("put", "k1", 0, 10, value=A), op("get", "k2", 20, 30, value=A)]),
    ("invalid bytes", 1, [op("put", "k", 0, 10, value=A), op("get", "k", 20, 30, value="invalid:0123456789abcdef")]),
    ("two puts of one value", 2, [op("put", "k", 0, 10, value=A), op("put", "k", 20, 30, value=A)]),
    ("ok without a return", 2, [op("put", "k", 0, None, value=A)]),
    ("unknown outcome word", 2, [op("put", "k", 0, 10, "maybe", value=A)]),
]


def main():
    checker = sys.argv[1]
    failed = 0
    with tempfile.TemporaryDirectory(prefix="bftkv-lincheck-file-") as d:
        path = os.path.join(d, "h.jsonl")
        for name, want, ops in CASES:
            with open(path, "w") as f:
                for o in [HEAD] + ops:
                    f.write(json.dumps(o) + "\n")
            r = subprocess.run([checker, path], capture_output=True, text=True, timeout=30)
            ok = r.returncode == want
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {r.returncode}, want {want}")
            if not ok:
                print(r.stdout + r.stderr)
        with open(path, "w") as f:
            f.write(json.dumps(HEAD) + "\n{not json\n")
        r = subprocess.run([checker, path], capture_output=True, text=True, timeout=30)
        failed += r.returncode != 2
        print(f"{'ok  ' if r.returncode == 2 else 'FAIL'} malformed line: exit {r.returncode}, want 2")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
