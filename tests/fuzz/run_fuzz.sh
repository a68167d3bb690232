#!/usr/bin/env bash
# One libFuzzer target for a bounded time over the repository's corpus: the
# ctest fuzz_<name> (label fuzz, tests/fuzz/CMakeLists.txt).
#
#   run_fuzz.sh FUZZER CORPUS_DIR WORK_DIR SECONDS
#
# New inputs go to WORK_DIR/new (emptied first, so runs are independent), the
# repository's corpus is only read, and a crash leaves its input in WORK_DIR
# (crash-*, leak-*, timeout-*) with a non-zero exit: copy it to CORPUS_DIR as a
# regression seed once fixed.
set -euo pipefail
fuzzer=$1
corpus=$2
work=$3
seconds=$4
rm -rf "$work"
mkdir -p "$work/new"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 \
  -print_final_stats=1 -artifact_prefix="$work/" "$work/new" "$corpus"
