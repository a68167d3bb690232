#!/usr/bin/env bash
# admin_cli_test: `bftkv admin init`, `show-map` and `resign` (tools/cli/admin.c,
# docs/operations.md "A deployment map").
#
#   test_admin_cli.sh BFTKV
#
# init writes the admin key (0600) and its public key, a key per node and
# client (0600), the signed map and its JSON; show-map verifies it and prints
# the JSON, whose every field is checked against the arguments and the key
# files; a map with one byte changed, a truncated map and a map checked with
# another deployment's admin key are refused with exit 4 and no output; init
# never overwrites a deployment; resign gives the same map at another epoch,
# verified first with the key that signs it, and overwrites nothing; usage errors exit 2 and write nothing. No
# process is started and no port is opened (ports are only numbers in the map).
set -u
BFTKV=$1
tmp=$(mktemp -d /tmp/bftkv-admin-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# expect CODE DESCRIPTION -- COMMAND...: run it, check the exit code.
expect() {
  local want=$1 what=$2; shift 3
  "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [[ $got -ne $want ]]; then
    fail "$what: exit $got, want $want; stderr: $(head -c 300 "$tmp/err")"
  fi
}

# ---- init ----------------------------------------------------------------------------------
d=$tmp/dep
expect 0 "init" -- "$BFTKV" admin init --nodes 7 --rf 4 --partitions 16 --dir "$d" --clients 3 \
  --base-port 32100 --epoch 5
grep -q "7 nodes, R = 4, f = 1, 16 partitions, 3 clients, epoch 5" "$tmp/out" || fail "init summary: $(cat "$tmp/out")"
for f in admin.key keys/node-0.key keys/node-6.key keys/client-0.key keys/client-2.key; do
  [[ "$(stat -c %a "$d/$f" 2>/dev/null)" == "600" ]] || fail "$f: mode $(stat -c %a "$d/$f" 2>&1), want 600"
done
[[ ! -e "$d/keys/node-7.key" && ! -e "$d/keys/client-3.key" ]] || fail "init wrote keys beyond --nodes/--clients"
for f in admin.pub map.bin map.json; do [[ -s "$d/$f" ]] || fail "init wrote no $f"; done
pub=$(grep -v '^#' "$d/admin.pub")
[[ "$pub" =~ ^[0-9a-f]{64}$ ]] || fail "admin.pub: $(cat "$d/admin.pub")"
grep -q "ed25519=$pub" "$d/admin.key" || fail "admin.pub is not the public key of admin.key"

# ---- show-map --------------------------------------------------------------------------------
expect 0 "show-map" -- "$BFTKV" admin show-map "$d/map.bin" --admin-pub "$d/admin.pub"
cmp -s "$tmp/out" "$d/map.json" || fail "show-map differs from map.json"
python3 - "$tmp/out" "$d" <<'EOF' || fail "show-map JSON"
import json, re, sys
m = json.load(open(sys.argv[1]))
d = sys.argv[2]
def check(cond, what):
    if not cond:
        print("  " + what)
        sys.exit(1)
check(m["version"] == 1 and m["epoch"] == 5 and m["f"] == 1 and m["rf"] == 4, "header fields")
check(m["partitions"] == 16 and m["placement"]["algorithm"] == "rendezvous", "partitions, placement")
check([n["id"] for n in m["nodes"]] == list(range(7)), "node ids")
for n in m["nodes"]:
    check(n["host"] == "127.0.0.1" and n["port"] == 32100 + n["id"], f"node {n['id']} address")
    text = open(f"{d}/keys/node-{n['id']}.key").read()
    check(f"x25519={n['x25519']} ed25519={n['ed25519']}" in text, f"node {n['id']} keys vs its key file")
check([c["id"] for c in m["clients"]] == [0, 1, 2], "client ids")
for c in m["clients"]:
    text = open(f"{d}/keys/client-{c['id']}.key").read()
    check(f"x25519={c['x25519']} ed25519={c['ed25519']}" in text, f"client {c['id']} keys vs its key file")
sets = m["partition_replicas"]
check(len(sets) == 16, "16 replica sets")
for s in sets:
    check(len(s) == 4 and len(set(s)) == 4 and all(0 <= i < 7 for i in s), f"replica set {s}")
load = [sum(i in s for s in sets) for i in range(7)]
check(sum(load) == 64 and min(load) >= 1, f"every node holds replicas: {load}")
EOF

# ---- refused maps: exit 4, nothing on stdout ------------------------------------------------------
size=$(stat -c %s "$d/map.bin")
for at in 0 9 20 40 $((size / 2)) $((size - 65)) $((size - 1)); do
  python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[int(sys.argv[2])] ^= 1; \
open(sys.argv[3], 'wb').write(b)" "$d/map.bin" "$at" "$tmp/bad.bin"
  expect 4 "map with byte $at changed" -- "$BFTKV" admin show-map "$tmp/bad.bin" --admin-pub "$d/admin.pub"
  [[ ! -s "$tmp/out" ]] || fail "byte $at changed: show-map printed $(head -c 100 "$tmp/out")"
  grep -q "signature does not verify" "$tmp/err" || fail "byte $at changed: message $(cat "$tmp/err")"
done
head -c $((size - 1)) "$d/map.bin" > "$tmp/short.bin"
expect 4 "truncated map" -- "$BFTKV" admin show-map "$tmp/short.bin" --admin-pub "$d/admin.pub"
[[ ! -s "$tmp/out" ]] || fail "truncated map printed something"
: > "$tmp/empty.bin"
expect 4 "empty map" -- "$BFTKV" admin show-map "$tmp/empty.bin" --admin-pub "$d/admin.pub"
expect 0 "a second deployment" -- "$BFTKV" admin init --nodes 4 --rf 4 --partitions 1 --dir "$tmp/other"
expect 4 "another admin's key" -- "$BFTKV" admin show-map "$d/map.bin" --admin-pub "$tmp/other/admin.pub"
[[ ! -s "$tmp/out" ]] || fail "another admin's key: show-map printed something"
expect 4 "a missing map" -- "$BFTKV" admin show-map "$tmp/none.bin" --admin-pub "$d/admin.pub"
echo "not a key" > "$tmp/bad.pub"
expect 2 "a bad admin.pub" -- "$BFTKV" admin show-map "$d/map.bin" --admin-pub "$tmp/bad.pub"

# ---- the single-group shape: M = R = 4, P = 1 ------------------------------------------------------
expect 0 "show-map of M = R = 4, P = 1" -- "$BFTKV" admin show-map "$tmp/other/map.bin" --admin-pub \
  "$tmp/other/admin.pub"
python3 -c "import json, sys; m = json.load(open(sys.argv[1])); \
sys.exit(0 if m['partitions'] == 1 and sorted(m['partition_replicas'][0]) == [0, 1, 2, 3] and m['f'] == 1 else 1)" \
  "$tmp/out" || fail "M = R = 4, P = 1: partition 0 is not every node"

# ---- resign: the same map at another epoch ------------------------------------------------------------
expect 0 "resign at epoch 9" -- "$BFTKV" admin resign "$d/map.bin" --admin-key "$d/admin.key" --epoch 9 \
  --out "$tmp/e9.bin"
expect 0 "show-map of the resigned map" -- "$BFTKV" admin show-map "$tmp/e9.bin" --admin-pub "$d/admin.pub"
python3 - "$tmp/out" "$d/map.json" <<'EOF' || fail "resigned map: not the same map at epoch 9"
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
sys.exit(0 if a.pop("epoch") == 9 and b.pop("epoch") == 5 and a == b else 1)
EOF
expect 4 "resign over an existing file" -- "$BFTKV" admin resign "$d/map.bin" --admin-key "$d/admin.key" \
  --epoch 10 --out "$tmp/e9.bin"
expect 4 "resign with another admin's key" -- "$BFTKV" admin resign "$d/map.bin" --admin-key \
  "$tmp/other/admin.key" --epoch 10 --out "$tmp/e10.bin"
grep -q "signature does not verify" "$tmp/err" || fail "resign with another key: message $(cat "$tmp/err")"
[[ ! -e "$tmp/e10.bin" ]] || fail "resign with another admin's key wrote a map"
expect 2 "resign without --epoch" -- "$BFTKV" admin resign "$d/map.bin" --admin-key "$d/admin.key" \
  --out "$tmp/e11.bin"

# ---- init never overwrites ---------------------------------------------------------------------------
sum_before=$(cat "$d/admin.key" "$d/map.bin" | md5sum)
expect 4 "init over a deployment" -- "$BFTKV" admin init --nodes 4 --rf 4 --partitions 1 --dir "$d"
grep -q "holds a deployment already" "$tmp/err" || fail "init over a deployment: message $(cat "$tmp/err")"
[[ "$(cat "$d/admin.key" "$d/map.bin" | md5sum)" == "$sum_before" ]] || fail "init over a deployment changed it"

# ---- usage errors: exit 2, nothing written ---------------------------------------------------------
u=$tmp/usage
expect 2 "no admin command" -- "$BFTKV" admin
expect 2 "unknown admin command" -- "$BFTKV" admin frob
expect 2 "P not a power of two" -- "$BFTKV" admin init --nodes 7 --rf 4 --partitions 12 --dir "$u"
expect 2 "R below 3f+1" -- "$BFTKV" admin init --nodes 7 --rf 4 --f 2 --partitions 4 --dir "$u"
expect 2 "R above M" -- "$BFTKV" admin init --nodes 3 --rf 4 --partitions 4 --dir "$u"
expect 2 "no --dir" -- "$BFTKV" admin init --nodes 4 --rf 4 --partitions 4
expect 2 "ports beyond 65535" -- "$BFTKV" admin init --nodes 4 --rf 4 --partitions 4 --base-port 65534 --dir "$u"
expect 2 "a value missing" -- "$BFTKV" admin init --nodes 4 --rf 4 --partitions
expect 2 "show-map without --admin-pub" -- "$BFTKV" admin show-map "$d/map.bin"
[[ ! -e "$u" ]] || fail "a usage error created $u"
expect 0 "admin --help" -- "$BFTKV" admin --help
grep -q "usage: bftkv \[OPTIONS\] admin" "$tmp/out" || fail "admin --help: $(head -c 200 "$tmp/out")"
expect 0 "admin init --help" -- "$BFTKV" admin init --nodes 4 --dir "$u" --help
[[ ! -e "$u" ]] || fail "admin init --help created $u"

if [[ $failures -ne 0 ]]; then
  echo "admin_cli_test: $failures failure(s)"
  exit 1
fi
echo "admin_cli_test: ok"
