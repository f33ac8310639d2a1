#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: builds the release and
# the asan (address + undefined-behaviour sanitizer) presets and runs ctest
# on both, then runs every fuzz target for FUZZ_SECONDS (default 20) each
# (scripts/fuzz.sh; FUZZ_SECONDS=0 skips them).
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
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  echo "=== fuzz: every target for ${FUZZ_SECONDS:-20} s"
  scripts/fuzz.sh "${FUZZ_SECONDS:-20}" || status=1
fi
exit $status
