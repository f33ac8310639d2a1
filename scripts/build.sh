#!/usr/bin/env bash
# Configures and builds one CMake preset (release, debug or asan).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-release}"
jobs="${JOBS:-$(nproc)}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$jobs"
