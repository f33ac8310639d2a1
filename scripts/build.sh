#!/usr/bin/env bash
# Configures and builds one CMake preset (release, debug or asan), optionally
# only the given targets: scripts/build.sh release sparsetrain
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
shift || true
jobs="${JOBS:-$(nproc)}"
cmake --preset "$preset" >/dev/null
if [ "$#" -gt 0 ]; then
  cmake --build --preset "$preset" -j "$jobs" --target "$@"
else
  cmake --build --preset "$preset" -j "$jobs"
fi
