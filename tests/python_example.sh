#!/usr/bin/env bash
# Installs the built library and Python module into a temporary prefix and
# runs examples/python/train_lenet5.py against that installed copy with
# Debian's interpreter.
#   tests/python_example.sh BUILD_DIR DATA_DIR
set -euo pipefail
build="$1"
data="$2"
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cmake --install "$build" --prefix "$work/prefix" >/dev/null
site="$(find "$work/prefix" -name _sparsetrain*.so -printf '%h')"
out="$(cd "$work" && PYTHONPATH="$(dirname "$site")" /usr/bin/python3 \
  "$src/examples/python/train_lenet5.py" "$data" "$work/out")"
grep -v '^epoch .*: batch' <<<"$out"
# The recipe's 20 epochs end at the README's accuracy, bit for bit as the
# command line's run (same seed, same code).
grep -q '^final test accuracy: 98.40% (10000 images)' <<<"$out"
grep -q '^predicted \[7, 2, 1, 0, 4, 1, 4, 9\]' <<<"$out"
[[ -s "$work/out/integrated-gradients-0.png" && -s "$work/out/model.safetensors" ]]
