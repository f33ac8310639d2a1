#!/usr/bin/env bash
# The examples and pictures of README "Attribution probes": every probe on a
# dense and a 90%-sparse LeNet-5 (MNIST) and ResNet-20 (CIFAR-10), the
# memory of integrated gradients at 50 and 1,000 steps, and the
# overinterpretation table. Models it does not find in runs/ it trains:
#   runs/lenet5-dense, runs/lenet5-gmp90     5 epochs each, a minute or two
#   runs/resnet20-dense30, runs/resnet20-acdc90
#                                            the 30-epoch recipes, about half
#                                            an hour each on 2 quiet cores
# Outputs go to runs/probes/ (the logs as NAME.txt), the contact sheets to
# docs/images/probes/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/steps.sh
study_setup runs/probes
pictures=docs/images/probes
mkdir -p "$pictures"

train() {  # NAME ARGS...: train runs/NAME unless its checkpoint is there
  local name=$1
  shift
  if [[ ! -f runs/$name/checkpoint.safetensors ]]; then
    "$bin" train "$@" --threads 2 --seed 0 --data-dir "$data" --no-progress --out "runs/$name"
  fi
}
train lenet5-dense --model lenet5 --dataset mnist --epochs 5
train lenet5-gmp90 --model lenet5 --dataset mnist --epochs 5 --sparsity-method gmp --sparsity 0.9
train resnet20-dense30 --recipe recipes/resnet20_cifar10_dense_30ep.yaml
train resnet20-acdc90 --recipe recipes/resnet20_cifar10_acdc90_30ep.yaml

probe() {  # NAME PROBE ARGS...: runs/probes/NAME/, its log NAME.txt, its sheet
  local name=$1 probe=$2
  shift 2
  "$bin" probe "$probe" "$@" --threads 2 --out "$out/$name" 2>&1 | tee "$out/$name.txt"
  cp "$out/$name/$probe-sheet.png" "$pictures/$name.png"
}
lenet=(--checkpoint dense=runs/lenet5-dense --checkpoint gmp90=runs/lenet5-gmp90)
resnet=(--checkpoint dense=runs/resnet20-dense30 --checkpoint acdc90=runs/resnet20-acdc90)
probe lenet5-saliency saliency "${lenet[@]}" --indices 0-2
probe lenet5-ig integrated-gradients "${lenet[@]}" --indices 0-2 --steps 256
probe lenet5-sis sis "${lenet[@]}" --indices 0-2 --remove-per-iter 1
probe lenet5-smoothgrad smoothgrad "${lenet[@]}" --indices 0-2
probe lenet5-spade spade "${lenet[@]}" --indices 0-2
probe resnet20-saliency saliency "${resnet[@]}" --indices 0-3
probe resnet20-ig integrated-gradients "${resnet[@]}" --indices 0-3
probe resnet20-smoothgrad smoothgrad "${resnet[@]}" --indices 0-3
probe resnet20-sis sis "${resnet[@]}" --indices 0-3
probe resnet20-spade spade "${resnet[@]}" --indices 0-3

# Integrated gradients' memory: the same internal batch at 50 and 1,000 steps.
for steps in 50 1000; do
  /usr/bin/time -f "maximum resident set %M KiB, %e s" "$bin" probe integrated-gradients \
    --checkpoint runs/resnet20-acdc90 --indices 0 --steps "$steps" --internal-batch 32 \
    --threads 2 --out "$out/ig-memory-$steps" 2>&1 | tee "$out/ig-memory-$steps.txt"
done

# The overinterpretation test: the first 100 test images reduced to 5% of
# their pixels (backward selection, then the exact selection on 20).
for model in dense30 acdc90; do
  "$bin" probe sis --checkpoint "runs/resnet20-$model" --indices 0 --keep 0.05 --images 100 \
    --threads 2 --out "$out/overinterpretation-$model" 2>&1 |
    tee "$out/overinterpretation-$model.txt"
  "$bin" probe sis --checkpoint "runs/resnet20-$model" --indices 0 --keep 0.05 --images 20 \
    --exact true --remove-per-iter 32 --threads 2 --out "$out/overinterpretation-exact-$model" \
    2>&1 | tee "$out/overinterpretation-exact-$model.txt"
done
