#!/usr/bin/env bash
# Sets everything up and runs the main job: trains LeNet-5 on MNIST for one
# epoch and prints the per-epoch table and the final test accuracy.
# Extra arguments go to `sparsetrain train` (e.g. --epochs 3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release sparsetrain
exec build/release/sparsetrain train --model lenet5 --dataset mnist --epochs 1 \
  --data-dir "${SPARSETRAIN_DATA_DIR:-../shared/data}" --out runs/lenet5-mnist \
  --metrics runs/lenet5-mnist/metrics.jsonl "$@"
