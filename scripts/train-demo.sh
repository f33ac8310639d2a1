#!/usr/bin/env bash
# Sets everything up and runs the main job: installs the packages, builds,
# gets MNIST when no searched place has it (`sparsetrain data fetch mnist
# --if-missing`: $SPARSETRAIN_DATA, ~/.cache/sparsetrain/data, ../shared/data),
# then trains a sparse LeNet-5 on MNIST with AC/DC at 95% sparsity
# (recipes/lenet5_mnist_acdc95.yaml: 20 epochs, about a minute on 2 cores) and
# prints the run's set-up, the per-epoch table with each phase and sparsity,
# and the final test accuracy.
# Extra arguments go to `sparsetrain train` and override the recipe (e.g.
# --threads 1, --seed 3 or --data-dir DIR). Each run replaces the previous
# one in runs/lenet5-mnist-acdc95 (--force).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release sparsetrain
build/release/sparsetrain data fetch mnist --if-missing
exec build/release/sparsetrain train --recipe recipes/lenet5_mnist_acdc95.yaml \
  --out runs/lenet5-mnist-acdc95 --metrics runs/lenet5-mnist-acdc95/metrics.jsonl --force "$@"
