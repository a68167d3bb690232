#!/usr/bin/env bash
# public_api_test: the installed interface stands on its own (include/bftkv/).
#
#   test_public_api.sh SOURCE_DIR CC CXX LIBBFTKV_SO
#
#   1. Each header of include/bftkv/ compiles alone, first in its translation
#      unit, with only include/ on the include path, as C17 and as C++17, with
#      -Werror and the project's warnings: it includes what it uses and needs no
#      internal header.
#   2. No public header names a type of the library's internals (engine/,
#      net/, store/: pbft_, auth_, wire_, net_, store_).
#   3. libbftkv.so exports exactly the functions the headers declare: each
#      declared function is exported (none forgotten in client/libbftkv.map),
#      and nothing else is (no internal function leaks).
# Needs no cluster and no network.
set -u
SRC=$1 CC=$2 CXX=$3 SO=$4
INC="$SRC/include"
CWARN=(-std=c17 -Wall -Wextra -Wpedantic -Werror -Wconversion -Wstrict-prototypes -Wmissing-prototypes -Wshadow)
# C++ without -Wshadow: bftkv_client_stats names both a struct and a function,
# which C++ calls hiding (harmless: C++ callers write "struct bftkv_client_stats").
XXWARN=(-std=c++17 -Wall -Wextra -Wpedantic -Werror -Wconversion)

tmp=$(mktemp -d /tmp/bftkv-public-api.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

headers=("$INC"/bftkv/*.h)
[[ ${#headers[@]} -ge 4 ]] || fail "expected at least 4 public headers, found ${#headers[@]}"

# ---- 1. each header alone, C and C++ ---------------------------------------------------
for h in "${headers[@]}"; do
  name=bftkv/$(basename "$h")
  printf '#include <%s>\n#include <%s> /* twice: the guard holds */\n' "$name" "$name" >"$tmp/alone.c"
  cp "$tmp/alone.c" "$tmp/alone.cc"
  before=$failures
  "$CC" "${CWARN[@]}" -I"$INC" -fsyntax-only "$tmp/alone.c" 2>"$tmp/cc.err" \
    || fail "$name does not compile alone as C: $(head -c 600 "$tmp/cc.err")"
  "$CXX" "${XXWARN[@]}" -I"$INC" -fsyntax-only "$tmp/alone.cc" 2>"$tmp/cc.err" \
    || fail "$name does not compile alone as C++: $(head -c 600 "$tmp/cc.err")"
  [[ $failures -eq $before ]] && echo "ok: $name compiles alone (C17, C++17)"
done

# ---- 2. no internal type named ---------------------------------------------------------
if grep -nE '\b(struct|enum) (pbft|auth|wire|net|store|client_|server|admin)_' "${headers[@]}" >"$tmp/internal"; then
  fail "public headers name internal types: $(cat "$tmp/internal")"
else
  echo "ok: no internal type in the public headers"
fi

# ---- 3. the exports are the declared functions -----------------------------------------
# A declaration: an identifier bftkv_* followed by "(" at the start of a
# prototype line (return type first), outside comments, macros and typedefs.
sed -e 's|/\*.*\*/||g' "${headers[@]}" | grep -v '^ *\*\|^ */\*\|^#\|^typedef' \
  | grep -oE '^[a-z][a-z0-9_ ]*[ *]bftkv_[a-z0-9_]+\(' | grep -oE 'bftkv_[a-z0-9_]+\($' | tr -d '(' | sort -u >"$tmp/declared"
nm -D --defined-only "$SO" | awk '$2 == "T" || $2 == "W" { sub(/@.*/, "", $3); print $3 }' | sort -u >"$tmp/exported"
[[ -s "$tmp/declared" ]] || fail "found no declared function (the pattern is broken)"
missing=$(comm -23 "$tmp/declared" "$tmp/exported")
extra=$(comm -13 "$tmp/declared" "$tmp/exported")
[[ -z "$missing" ]] || fail "declared but not exported by $(basename "$SO"): $missing"
[[ -z "$extra" ]] || fail "exported but not declared in include/bftkv/: $extra"
[[ -z "$missing" && -z "$extra" ]] && echo "ok: $(wc -l <"$tmp/declared") functions declared, the same exported"

if [[ $failures -ne 0 ]]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "public_api_test: all checks passed"
