#!/usr/bin/env bash
# Sets everything up and runs the main job: trains a sparse LeNet-5 on MNIST
# with AC/DC at 95% sparsity (recipes/lenet5_mnist_acdc95.yaml: 20 epochs,
# about a minute on 2 cores) and prints the run's set-up, the per-epoch table
# with each phase and sparsity, and the final test accuracy.
# Extra arguments go to `sparsetrain train` and override the recipe (e.g.
# --threads 1 or --seed 3).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release sparsetrain
exec build/release/sparsetrain train --recipe recipes/lenet5_mnist_acdc95.yaml \
  --data-dir "${SPARSETRAIN_DATA_DIR:-../shared/data}" --out runs/lenet5-mnist-acdc95 \
  --metrics runs/lenet5-mnist-acdc95/metrics.jsonl "$@"
