#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: builds the release and
# the asan (address + undefined-behaviour sanitizer) presets and runs ctest
# on both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
status=0
for preset in release asan; do
  echo "=== build: $preset"
  scripts/build.sh "$preset"
  echo "=== test: $preset"
  ctest --preset "$preset" -j "${JOBS:-$(nproc)}" || status=1
done
exit $status
