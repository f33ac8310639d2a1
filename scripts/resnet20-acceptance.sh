#!/usr/bin/env bash
# The sparsity methods' long measurements on ResNet-20 / CIFAR-10 (train on
# data batches 1-4, test on batch 5), one after another, 2 threads:
#   1. dense, 30 epochs (recipes/resnet20_cifar10_dense_30ep.yaml), with a
#      snapshot at epoch 20 for the retraining runs below;
#   2. AC/DC at 90%, 30 epochs (recipes/resnet20_cifar10_acdc90_30ep.yaml);
#   3. GMP to 90%, 30 epochs (recipes/resnet20_cifar10_gmp90.yaml);
#   4. one-shot global magnitude pruning of run 1 to 90%;
#   5. 10 epochs of fine-tuning of 4, and 10 of learning-rate rewinding
#      (the last 10 epochs of run 1's schedule replayed).
# About an hour on a quiet 2-core machine; nothing else should run meanwhile,
# since runs 1 and 2 are compared on wall time. Everything goes to
# runs/acceptance/ (a log and metrics per run) and the summary to
# runs/acceptance/summary.txt. Steps whose output exists already are skipped,
# so an interrupted sequence continues where it stopped; delete the folder
# to start over. Extra arguments go to every `sparsetrain train`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release sparsetrain
bin=build/release/sparsetrain
data="${SPARSETRAIN_DATA_DIR:-../shared/data}"
out=runs/acceptance
mkdir -p "$out"

source scripts/steps.sh
train() { run_step "$1" train "${@:2}"; }
extra=("$@")

train dense30 --recipe recipes/resnet20_cifar10_dense_30ep.yaml --save-epochs 20
train acdc90 --recipe recipes/resnet20_cifar10_acdc90_30ep.yaml
train gmp90 --recipe recipes/resnet20_cifar10_gmp90.yaml
if [[ ! -f $out/dense30-p90/checkpoint.safetensors ]]; then
  rm -rf "$out/dense30-p90"
  "$bin" prune --checkpoint "$out/dense30" --sparsity 0.9 --distribution global \
    --data-dir "$data" --out "$out/dense30-p90" 2>&1 | tee "$out/dense30-p90.log"
fi
train finetune10 --init-from "$out/dense30-p90" --retrain finetune --epochs 10
train lr-rewind10 --init-from "$out/dense30-p90" --retrain lr-rewind --epochs 10

# Per run: the final test accuracy, the sum of the table's per-epoch seconds
# (training steps) and the whole command's wall time (evaluation included).
{
  printf '%-12s %9s %10s %8s\n' run "test acc" "epochs s" "wall s"
  for name in dense30 acdc90 gmp90 finetune10 lr-rewind10; do
    log=$out/$name.log
    acc=$(grep -E '^ +[0-9]+ ' "$log" | tail -1 | awk '{print $4}')
    secs=$(grep -E '^ +[0-9]+ ' "$log" | awk '{s += $6} END {printf "%.1f", s}')
    printf '%-12s %9s %10s %8s\n' "$name" "$acc" "$secs" "$(cat "$out/$name.wall" 2>/dev/null || echo -)"
  done
} | tee "$out/summary.txt"
