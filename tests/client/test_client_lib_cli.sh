#!/usr/bin/env bash
# cli_test: the `bftkv` command line (tools/cli/main.c) and the installed library.
#
#   test_client_lib_cli.sh BFTKV FAKESERVER LIBBFTKV_SO BUILD_DIR SOURCE_DIR INSTALL(0|1)
#
# Usage errors, --help, COMMAND --help and help COMMAND (exit 0, no config read, no
# file written), --version (CMake's project version), keygen (refuses a path like
# an option; file mode 0600, output format, never overwrites),
# then put/get/del and their exit codes against an in-process fake cluster
# (client_lib_fakeserver, 127.0.0.1 only), stdin values and the value limit, the
# timeout exit code and message (naming the silent replicas) once the cluster is gone, the symbols libbftkv.so exports, and
# (INSTALL=1, not in sanitizer builds) `cmake --install --component client` into a
# temporary prefix plus a program built with `pkg-config --cflags --libs bftkv`
# that runs against the fake cluster. Every process started here is stopped by PID on exit.
set -u
BFTKV=$1 FAKESERVER=$2 LIBSO=$3 BUILD=$4 SRC=$5 INSTALL=$6

tmp=$(mktemp -d /tmp/bftkv-cli-test.XXXXXX)
fake_pid=""
cleanup() {
  if [[ -n "$fake_pid" ]] && kill -0 "$fake_pid" 2>/dev/null; then
    kill -TERM "$fake_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$fake_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$fake_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# expect CODE DESCRIPTION -- COMMAND...: run it (stdin from /dev/null), check the exit code.
expect() {
  local want=$1 what=$2; shift 3
  "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [[ $got -ne $want ]]; then
    fail "$what: exit $got, want $want; stderr: $(head -c 300 "$tmp/err")"
  fi
}

# ---- usage ----------------------------------------------------------------------------
expect 0 "--help" -- "$BFTKV" --help
grep -q "Exit codes" "$tmp/out" || fail "--help does not list the exit codes"
grep -q "1  key not found" "$tmp/out" || fail "--help does not document exit code 1"
expect 0 "help command" -- "$BFTKV" help
expect 2 "no command" -- "$BFTKV"
expect 2 "unknown command" -- "$BFTKV" frobnicate
grep -q "unknown command 'frobnicate'" "$tmp/err" || fail "unknown command message: $(cat "$tmp/err")"
expect 2 "unknown option" -- "$BFTKV" --frob get k
expect 2 "missing argument" -- "$BFTKV" put onlykey
expect 2 "bad client id" -- "$BFTKV" --client abc get k
expect 2 "client id out of range" -- "$BFTKV" --client 4096 get k
expect 2 "bad timeout" -- "$BFTKV" --timeout 0 get k
expect 2 "missing config" -- "$BFTKV" --config "$tmp/none.conf" get k
grep -q "$tmp/none.conf" "$tmp/err" || fail "missing config message does not name the file: $(cat "$tmp/err")"
(cd "$tmp" && BFTKV_CONFIG= "$BFTKV" get k </dev/null >/dev/null 2>"$tmp/err"); rc=$?
[[ $rc -eq 2 ]] && grep -q "cluster.conf" "$tmp/err" || fail "default ./cluster.conf: exit $rc, $(cat "$tmp/err")"

# ---- COMMAND --help, help COMMAND, --version: print, exit 0, touch nothing --------------------
# Run in an empty directory with no config: nothing may be read, created or contacted.
mkdir "$tmp/empty"
for cmd in put get del stats keygen admin help; do
  (cd "$tmp/empty" && BFTKV_CONFIG= "$BFTKV" "$cmd" --help </dev/null >"$tmp/out" 2>"$tmp/err"); rc=$?
  [[ $rc -eq 0 ]] || fail "$cmd --help: exit $rc, stderr $(head -c 300 "$tmp/err")"
  grep -q "usage: bftkv \[OPTIONS\] $cmd" "$tmp/out" || fail "$cmd --help: no usage line: $(head -c 300 "$tmp/out")"
  [[ ! -s "$tmp/err" ]] || fail "$cmd --help wrote to stderr: $(head -c 300 "$tmp/err")"
  (cd "$tmp/empty" && BFTKV_CONFIG= "$BFTKV" "$cmd" -h </dev/null >/dev/null 2>&1) || fail "$cmd -h: exit $?"
  (cd "$tmp/empty" && BFTKV_CONFIG= "$BFTKV" help "$cmd" </dev/null >"$tmp/out" 2>&1) || fail "help $cmd: exit $?"
  grep -q "usage: bftkv \[OPTIONS\] $cmd" "$tmp/out" || fail "help $cmd: no usage line"
done
[[ -z "$(ls -A "$tmp/empty")" ]] || fail "COMMAND --help created files: $(ls -A "$tmp/empty")"
expect 2 "help of an unknown command" -- "$BFTKV" help frobnicate
expect 0 "--version" -- "$BFTKV" --version
grep -Eqx 'bftkv [0-9]+\.[0-9]+\.[0-9]+' "$tmp/out" || fail "--version output: $(cat "$tmp/out")"
want_version=$(sed -n 's/^project(bftkv VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
grep -qx "bftkv $want_version" "$tmp/out" || fail "--version is not CMake's project version $want_version: $(cat "$tmp/out")"
# keygen refuses a path that looks like an option, and writes nothing
(cd "$tmp/empty" && "$BFTKV" keygen -x </dev/null >/dev/null 2>"$tmp/err"); rc=$?
[[ $rc -eq 2 ]] || fail "keygen -x: exit $rc, want 2"
grep -q "./-x" "$tmp/err" || fail "keygen -x message does not suggest ./-x: $(cat "$tmp/err")"
[[ -z "$(ls -A "$tmp/empty")" ]] || fail "keygen -x created files: $(ls -A "$tmp/empty")"
(cd "$tmp/empty" && "$BFTKV" keygen -- ./-named.key </dev/null >/dev/null 2>&1) || fail "keygen -- ./-named.key: exit $?"
[[ -f "$tmp/empty/-named.key" ]] || fail "keygen ./-named.key wrote no file"
rm -f "$tmp/empty/-named.key"

# ---- keygen -----------------------------------------------------------------------------
expect 0 "keygen" -- "$BFTKV" keygen "$tmp/k1.key"
grep -Eqx 'x25519=[0-9a-f]{64} ed25519=[0-9a-f]{64}' "$tmp/out" || fail "keygen output: $(cat "$tmp/out")"
[[ "$(stat -c %a "$tmp/k1.key")" == "600" ]] || fail "keygen mode $(stat -c %a "$tmp/k1.key"), want 600"
cp "$tmp/out" "$tmp/k1.pub"
expect 4 "keygen over an existing file" -- "$BFTKV" keygen "$tmp/k1.key"
cmp -s "$tmp/k1.pub" <("$BFTKV" keygen "$tmp/k2.key") && fail "two keygens gave the same keys"

# ---- against a cluster ------------------------------------------------------------------
"$FAKESERVER" --seconds 120 >"$tmp/fake.out" 2>"$tmp/fake.err" &
fake_pid=$!
for _ in $(seq 100); do [[ -s "$tmp/fake.out" ]] && break; sleep 0.1; done
conf=$(head -n1 "$tmp/fake.out")
if [[ -z "$conf" ]]; then
  fail "the fake cluster did not start: $(cat "$tmp/fake.err")"
  echo "$failures failure(s)"; exit 1
fi
kv() { "$BFTKV" --config "$conf" "$@"; }

expect 0 "put" -- kv put greeting hello
expect 0 "get" -- kv get greeting
[[ "$(od -An -c "$tmp/out" | tr -s ' ')" == " h e l l o" ]] || fail "get printed '$(cat "$tmp/out")' (no newline when not a terminal)"
expect 1 "get of a missing key" -- kv get missing-key
[[ "$(cat "$tmp/err")" == "bftkv: key not found" ]] || fail "missing key message: '$(cat "$tmp/err")'"
[[ ! -s "$tmp/out" ]] || fail "get of a missing key printed something"
expect 0 "del" -- kv del greeting
expect 1 "del of a missing key" -- kv del greeting
expect 1 "get after del" -- kv get greeting
expect 0 "value starting with a dash" -- kv put dash -x
expect 0 "get it" -- kv get dash
[[ "$(cat "$tmp/out")" == "-x" ]] || fail "dash value: '$(cat "$tmp/out")'"
BFTKV_CONFIG=$conf "$BFTKV" --client 2 get dash >"$tmp/out" 2>"$tmp/err" </dev/null \
  && [[ "$(cat "$tmp/out")" == "-x" ]] || fail "\$BFTKV_CONFIG and --client 2: $(cat "$tmp/err")"

head -c 1000 /dev/urandom >"$tmp/bin"
kv put binary - <"$tmp/bin" 2>"$tmp/err" || fail "put from stdin: $(cat "$tmp/err")"
kv get binary >"$tmp/got" 2>"$tmp/err" </dev/null && cmp -s "$tmp/bin" "$tmp/got" || fail "binary value differs"
head -c 61440 /dev/zero >"$tmp/max"
kv put max - <"$tmp/max" 2>"$tmp/err" || fail "put of BFTKV_VALUE_MAX bytes: $(cat "$tmp/err")"
kv get max </dev/null | cmp -s - "$tmp/max" || fail "maximal value differs"
head -c 61441 /dev/zero >"$tmp/over"
kv put over - <"$tmp/over" >/dev/null 2>"$tmp/err"; rc=$?
[[ $rc -eq 2 ]] && grep -q "longer than the limit" "$tmp/err" || fail "oversized stdin value: exit $rc, $(cat "$tmp/err")"
kv put empty - </dev/null 2>"$tmp/err" || fail "empty value: $(cat "$tmp/err")"
expect 0 "get of an empty value" -- kv get empty
[[ ! -s "$tmp/out" ]] || fail "empty value printed bytes"
expect 2 "key too large" -- kv put "$(head -c 1025 /dev/zero | tr '\0' k)" v
expect 2 "empty key" -- kv put "" v
expect 2 "client not allowed" -- kv --client 9 get k 2>/dev/null
expect 2 "stats of a replica not in the config" -- kv stats 9

if [[ "$INSTALL" == "1" ]]; then
  prefix="$tmp/prefix"
  if cmake --install "$BUILD" --prefix "$prefix" --component client >"$tmp/install.log" 2>&1; then
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib64/pkgconfig:$prefix/lib/x86_64-linux-gnu/pkgconfig"
    for f in client.h errors.h limits.h config.h; do
      [[ -f "$prefix/include/bftkv/$f" ]] || fail "installed headers lack bftkv/$f"
    done
    if cc -std=c17 -Wall -Wextra -Werror -o "$tmp/app" "$SRC/tests/client/test_client_lib_pkgconfig.c" \
        $(pkg-config --cflags --libs bftkv) 2>"$tmp/cc.err"; then
      libdir=$(pkg-config --variable=libdir bftkv)
      LD_LIBRARY_PATH="$libdir" "$tmp/app" "$conf" >"$tmp/out" 2>"$tmp/err" \
        || fail "the pkg-config program failed: $(cat "$tmp/out" "$tmp/err")"
      LD_LIBRARY_PATH="$libdir" ldd "$tmp/app" | grep -q "libbftkv.so.0" || fail "the program is not linked to libbftkv.so.0"
    else
      fail "building against the installed library: $(head -c 600 "$tmp/cc.err")"
    fi
  else
    fail "cmake --install: $(tail -n 5 "$tmp/install.log")"
  fi
fi

# The cluster gone (its config and keys kept): a timeout, exit 3.
cp -a "$(dirname "$conf")" "$tmp/gone"
conf="$tmp/gone/cluster.conf"
kill -TERM "$fake_pid"; wait "$fake_pid" 2>/dev/null; fake_pid=""
# (How long it took is not checked: no timing assertions in tests.)
expect 3 "get with no replica running" -- kv --timeout 300 get binary
grep -q "300 ms" "$tmp/err" || fail "timeout message: $(cat "$tmp/err")"
grep -q "no answer at all from replicas 0, 1, 2, 3" "$tmp/err" || fail "timeout message names no replica: $(cat "$tmp/err")"

# ---- the shared library exports the public API only ------------------------------------------
bad=$(nm -D --defined-only "$LIBSO" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^bftkv_' | grep -v '^BFTKV_')
[[ -z "$bad" ]] || fail "libbftkv.so exports non-API symbols: $(echo $bad | head -c 300)"
nm -D --defined-only "$LIBSO" | grep -q ' bftkv_submit' || fail "libbftkv.so lacks bftkv_submit"
nm -D --defined-only "$LIBSO" | grep -q ' bftkv_client_last_error' || fail "libbftkv.so lacks bftkv_client_last_error"

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "cli_test: all checks passed"
