#!/usr/bin/env bash
# Installs the built library into a temporary prefix, builds examples/embed
# against it with find_package(sparsetrain) out of tree, and runs it.
#   tests/embed_example.sh BUILD_DIR DATA_DIR
set -euo pipefail
source "$(dirname "$0")/install_copy.sh" "$@"
cmake -S "$src/examples/embed" -B "$work/app" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/app" >/dev/null
out="$(OMP_WAIT_POLICY=passive "$work/app/embed_app" "$data")"
echo "$out"
# The app trains for one pass over 12,000 images: it must have learned.
acc="$(echo "$out" | sed -n 's/^test accuracy \([0-9.]*\)%.*/\1/p')"
awk -v a="$acc" 'BEGIN { exit !(a > 85.0) }'
