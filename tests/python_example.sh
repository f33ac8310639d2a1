#!/usr/bin/env bash
# Installs the built library and Python module into a temporary prefix and
# runs examples/python/train_lenet5.py against that installed copy with
# Debian's interpreter.
#   tests/python_example.sh BUILD_DIR DATA_DIR
set -euo pipefail
source "$(dirname "$0")/install_copy.sh" "$@"
site="$(find "$work/prefix" -name _sparsetrain*.so -printf '%h')"
out="$(cd "$work" && PYTHONPATH="$(dirname "$site")" /usr/bin/python3 \
  "$src/examples/python/train_lenet5.py" "$data" "$work/out")"
grep -v '^epoch .*: batch' <<<"$out"
# Four epochs of AC/DC to 95% must have learned (the exact figure depends on
# the timed kernel choices), and every step of the example must have run.
acc="$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' <<<"$out")"
awk -v a="$acc" 'BEGIN { exit !(a > 95.0) }'
grep -q '^predicted \[' <<<"$out"
grep -q 'completeness error' <<<"$out"
[[ -s "$work/out/integrated-gradients-0.png" && -s "$work/out/model.safetensors" ]]
