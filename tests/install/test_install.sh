#!/usr/bin/env bash
# install_test: `cmake --install` of a normal build, and programs built against it.
#
#   test_install.sh BUILD_DIR SOURCE_DIR VERSION CC
#
# Installs the whole build into a temporary prefix and checks the layout the
# README's "Install" section promises (CLI, server, both libraries, headers,
# bftkv.pc, the systemd unit naming the installed server, the docs); builds
# install_client.c with `pkg-config --cflags --libs bftkv` alone and runs it
# (shared library), then again linked to libbftkv.a with `pkg-config --static`;
# runs the installed binaries; checks DESTDIR staging; and builds the same
# program against the build tree through build/lib/pkgconfig/bftkv-uninstalled.pc.
# Needs no cluster and no network. Everything is written under one temporary
# directory, removed on exit.
set -u
BUILD=$1 SRC=$2 VERSION=$3 CC=$4
APP_SRC="$SRC/tests/install/install_client.c"
CFLAGS=(-std=c17 -Wall -Wextra -Wpedantic -Werror)

tmp=$(mktemp -d /tmp/bftkv-install-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
have() { [[ -e "$1" ]] || fail "not installed: ${1#"$prefix"/}"; }

# ---- cmake --install into a prefix ----------------------------------------------------
prefix="$tmp/prefix"
if ! cmake --install "$BUILD" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
  echo "FAIL: cmake --install: $(tail -n 5 "$tmp/install.log")"; exit 1
fi
pc=$(find "$prefix" -name bftkv.pc -path '*/pkgconfig/*' | head -n1)
[[ -n "$pc" ]] || { echo "FAIL: no bftkv.pc installed"; cat "$tmp/install.log"; exit 1; }
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir bftkv)
includedir=$(pkg-config --variable=includedir bftkv)
[[ "$(cd "$libdir" 2>/dev/null && pwd -P)" == "$(cd "$prefix" && pwd -P)"/* ]] || fail "libdir $libdir is outside the prefix"
[[ "$(pkg-config --modversion bftkv)" == "$VERSION" ]] || fail "bftkv.pc version $(pkg-config --modversion bftkv), want $VERSION"

for f in bftkv bftkv-server; do
  have "$prefix/bin/$f"
  [[ -x "$prefix/bin/$f" ]] || fail "bin/$f is not executable"
done
for f in libbftkv.so libbftkv.so.0 libbftkv.a; do have "$libdir/$f"; done
for f in client.h config.h errors.h limits.h; do have "$includedir/bftkv/$f"; done
unit="$prefix/lib/systemd/system/bftkv-server@.service"
have "$unit"
if [[ -f "$unit" ]]; then
  grep -qx "ExecStart=$prefix/bin/bftkv-server --config /etc/bftkv/cluster.conf --id %i" "$unit" \
    || fail "the unit does not start the installed server: $(grep ExecStart= "$unit")"
  grep -qx "Documentation=file://$prefix/share/doc/bftkv/operations.md" "$unit" \
    || fail "the unit's Documentation= is not the installed docs: $(grep Documentation= "$unit")"
  ! grep -q /usr/local "$unit" || fail "the unit still names /usr/local: $(grep -n /usr/local "$unit")"
fi
for f in README.md design.md operations.md config.md benchmarks.md; do have "$prefix/share/doc/bftkv/$f"; done

# ---- the installed binaries run ---------------------------------------------------------
"$prefix/bin/bftkv" --help >"$tmp/out" 2>&1 && grep -q "Exit codes" "$tmp/out" || fail "bftkv --help: $(head -c 300 "$tmp/out")"
"$prefix/bin/bftkv-server" --help >"$tmp/out" 2>&1 && grep -q "usage: bftkv-server" "$tmp/out" \
  || fail "bftkv-server --help: $(head -c 300 "$tmp/out")"

# ---- an application: shared, then static -----------------------------------------------
# run_app NAME LD_LIBRARY_PATH: run the program (no cluster: a missing config).
run_app() {
  LD_LIBRARY_PATH="$2" "$tmp/$1" "$tmp/no-such-dir/cluster.conf" >"$tmp/$1.out" 2>&1 \
    || fail "$1 failed: $(cat "$tmp/$1.out")"
}
# shellcheck disable=SC2046 # pkg-config's output is a list of words
if "$CC" "${CFLAGS[@]}" -o "$tmp/app_shared" "$APP_SRC" $(pkg-config --cflags --libs bftkv) 2>"$tmp/cc.err"; then
  run_app app_shared "$libdir"
  LD_LIBRARY_PATH="$libdir" ldd "$tmp/app_shared" | grep -q "libbftkv.so.0 => $libdir/libbftkv.so.0" \
    || fail "app_shared does not load the installed libbftkv.so.0: $(LD_LIBRARY_PATH="$libdir" ldd "$tmp/app_shared")"
else
  fail "building with pkg-config --cflags --libs bftkv: $(head -c 800 "$tmp/cc.err")"
fi
static_libs=$(pkg-config --static --libs bftkv | sed "s|-lbftkv\b|$libdir/libbftkv.a|")
# shellcheck disable=SC2046,SC2086
if "$CC" "${CFLAGS[@]}" -o "$tmp/app_static" "$APP_SRC" $(pkg-config --cflags bftkv) $static_libs 2>"$tmp/cc.err"; then
  run_app app_static ""
  ! ldd "$tmp/app_static" | grep -q libbftkv || fail "app_static loads a shared libbftkv"
else
  fail "building with pkg-config --static against libbftkv.a: $(head -c 800 "$tmp/cc.err")"
fi

# ---- DESTDIR staging keeps the final paths ------------------------------------------------
stage="$tmp/stage"
if DESTDIR="$stage" cmake --install "$BUILD" --prefix /opt/bftkv >"$tmp/stage.log" 2>&1; then
  for f in bin/bftkv-server lib/systemd/system/bftkv-server@.service share/doc/bftkv/README.md include/bftkv/client.h; do
    [[ -e "$stage/opt/bftkv/$f" ]] || fail "DESTDIR install lacks /opt/bftkv/$f"
  done
  grep -q "^ExecStart=/opt/bftkv/bin/bftkv-server " "$stage/opt/bftkv/lib/systemd/system/bftkv-server@.service" 2>/dev/null \
    || fail "the DESTDIR-staged unit does not name /opt/bftkv/bin/bftkv-server"
else
  fail "DESTDIR=... cmake --install: $(tail -n 5 "$tmp/stage.log")"
fi

# ---- the build tree as a package (bftkv-uninstalled.pc) -----------------------------------
PKG_CONFIG_PATH="$BUILD/lib/pkgconfig"
pkg-config --cflags bftkv | grep -q -- "-I$SRC/include" || fail "build-tree cflags: $(pkg-config --cflags bftkv)"
# shellcheck disable=SC2046
if "$CC" "${CFLAGS[@]}" -o "$tmp/app_tree" "$APP_SRC" $(pkg-config --cflags --libs bftkv) 2>"$tmp/cc.err"; then
  run_app app_tree "$BUILD/lib"
else
  fail "building against the build tree: $(head -c 800 "$tmp/cc.err")"
fi

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
cat "$tmp/app_shared.out"
echo "install_test: all checks passed"
