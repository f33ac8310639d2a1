#!/usr/bin/env bash
# README "Data-parallel training over MPI": the issue's acceptance figures.
#   1. LeNet-5, AC/DC 95% on MNIST (recipes/lenet5_mnist_acdc95.yaml, seeds
#      SEEDS, default "0 1"): one process of 2 threads against 2 ranks of 1
#      thread (mpirun -np 2).
#   2. ResNet-20 on CIFAR-10 (40 steps of batch 128), dense and 90% sparse
#      (static magnitude masks, compressed): median step time and the floats
#      all-reduced per step, 1 rank x 2 threads against 2 ranks x 1 thread.
# About 8 minutes on a quiet 2-core machine. mpirun runs as root only with
# OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-build/release/sparsetrain}"
data="${DATA_DIR:-../shared/data}"
out="${OUT:-runs/mpi-scaling}"
mpirun=(mpirun --oversubscribe -np 2)
rm -rf "$out" && mkdir -p "$out"

accuracy() { sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$1"; }
epoch1() {  # FIELD of the first epoch row in a metrics file
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("event") == "epoch":
        v = r.get(sys.argv[2], "-")
        print(f"{v:.1f}" if isinstance(v, float) else v)
        break' "$1" "$2"
}

seeds="${SEEDS:-0 1}"
echo "LeNet-5, AC/DC 95%, MNIST, 20 epochs (recipes/lenet5_mnist_acdc95.yaml), seeds $seeds"
for seed in $seeds; do
  "$bin" train --recipe recipes/lenet5_mnist_acdc95.yaml --seed "$seed" --threads 2 --no-progress \
    --data-dir "$data" --out "$out/lenet-1x2-s$seed" >"$out/lenet-1x2-s$seed.txt" 2>/dev/null
  "${mpirun[@]}" "$bin" train --recipe recipes/lenet5_mnist_acdc95.yaml --seed "$seed" \
    --no-progress --data-dir "$data" --out "$out/lenet-2x1-s$seed" >"$out/lenet-2x1-s$seed.txt" \
    2>/dev/null
  echo "  seed $seed: 1 process x 2 threads $(accuracy "$out/lenet-1x2-s$seed.txt")%," \
    "2 ranks x 1 thread $(accuracy "$out/lenet-2x1-s$seed.txt")%"
done

echo
echo "ResNet-20, CIFAR-10, batch 128, 40 steps: median step (ms) and floats all-reduced per step"
printf '  %-12s %-22s %-22s %s\n' model "1 rank x 2 threads" "2 ranks x 1 thread" "all-reduced per step"
for sparsity in 0 0.9; do
  args=(train --model resnet20 --dataset cifar10 --data-dir "$data" --train-limit 5120
        --test-limit 500 --epochs 1 --sparsity "$sparsity" --no-progress --force)
  "$bin" "${args[@]}" --threads 2 --out "$out/r20-$sparsity-1x2" \
    --metrics "$out/r20-$sparsity-1x2.jsonl" >/dev/null 2>&1
  "${mpirun[@]}" "$bin" "${args[@]}" --out "$out/r20-$sparsity-2x1" \
    --metrics "$out/r20-$sparsity-2x1.jsonl" >/dev/null 2>&1
  name=$([ "$sparsity" = 0 ] && echo dense || echo "90% sparse")
  printf '  %-12s %-22s %-22s %s of %s dense floats\n' "$name" \
    "$(epoch1 "$out/r20-$sparsity-1x2.jsonl" step_ms_median)" \
    "$(epoch1 "$out/r20-$sparsity-2x1.jsonl" step_ms_median)" \
    "$(epoch1 "$out/r20-$sparsity-2x1.jsonl" allreduce_floats_per_step)" \
    "$(epoch1 "$out/r20-$sparsity-2x1.jsonl" allreduce_dense_floats_per_step)"
done
