#!/usr/bin/env bash
# README "Python": the recipe recipes/lenet5_mnist_acdc95.yaml (seed 0)
# trained by the command line and by examples/python/train_lenet5.py, their
# per-epoch tables compared column by column (the timing columns left out),
# then the per-step time of a loop written in Python against the command
# line's (bench/python_step.py). About four minutes on a quiet 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-build/release/sparsetrain}"
data="${DATA_DIR:-../shared/data}"
out="${OUT:-runs/python-vs-cli}"
rm -rf "$out" && mkdir -p "$out"
"$bin" train --recipe recipes/lenet5_mnist_acdc95.yaml --seed 0 --threads 2 --no-progress \
  --data-dir "$data" --out "$out/cli" --metrics "$out/cli.jsonl" >"$out/cli.txt" 2>/dev/null
PYTHONPATH=build/release/python /usr/bin/python3 examples/python/train_lenet5.py "$data" \
  "$out/python" recipes/lenet5_mnist_acdc95.yaml >"$out/python.txt"
# Epoch rows without their seconds and samples/s columns.
rows() { awk '$1 ~ /^[0-9]+$/ && NF >= 10 { $6 = ""; $7 = ""; print }' "$1"; }
if diff <(rows "$out/cli.txt") <(rows "$out/python.txt") >"$out/table.diff"; then
  echo "per-epoch tables: identical in every column but the timings ($(rows "$out/cli.txt" | wc -l) epochs)"
else
  echo "per-epoch tables differ:"; cat "$out/table.diff"
fi
grep '^final test accuracy' "$out/cli.txt" | sed 's/^/command line: /'
grep '^final test accuracy' "$out/python.txt" | sed 's/^/python:       /'
PYTHONPATH=build/release/python /usr/bin/python3 bench/python_step.py "$data" "$out/cli.jsonl"
