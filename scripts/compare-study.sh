#!/usr/bin/env bash
# The compare study of README "Comparing models" (after Liebenwein et al.
# 2021, Iofinova et al. 2023, Hooker et al. 2019 and Boggust et al. 2022):
#   models:  ResNet-20 on CIFAR-10 with the 6-epoch recipes of recipes/
#            (the 30-epoch ones scaled by 0.2): dense, AC/DC 90% and GMP 90%,
#            seeds 0, 1 and 2 each;
#   pruned:  the dense seed-0 model pruned one-shot by global magnitude to
#            50, 70, 80, 90 and 95% (`sparsetrain prune`, no retraining),
#            for the prune-potential curves;
#   compare: `sparsetrain compare` of dense (reference) against AC/DC and
#            GMP on the 10,000 held-out images, and of the dense model
#            against its pruned copies (OUT/compare, OUT/potential).
# About an hour on a quiet 2-core machine. Runs go to runs/compare-study/
# (OUT overrides); a finished step is kept and a stopped one resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN: a sparsetrain binary to use instead of building one.
if [[ -z ${BIN:-} ]]; then
  scripts/install-deps.sh
  scripts/build.sh release sparsetrain
fi
bin="${BIN:-build/release/sparsetrain}"
data="${SPARSETRAIN_DATA_DIR:-../shared/data}"
out="${OUT:-runs/compare-study}"
mkdir -p "$out"

source scripts/steps.sh
extra=()
for seed in 0 1 2; do
  for kind in dense acdc90 gmp90; do
    run_step "$kind-s$seed" train --recipe "recipes/resnet20_cifar10_${kind}_6ep.yaml" --seed "$seed"
  done
done
for s in 50 70 80 90 95; do
  if [[ ! -f $out/pruned$s/checkpoint.safetensors ]]; then
    "$bin" prune --checkpoint "$out/dense-s0" --sparsity "0.$s" --out "$out/pruned$s" \
      --data-dir "$data" --threads 2 --no-eval
  fi
done
[[ ${TRAIN_ONLY:-0} == 1 ]] && exit 0

runs() { echo "$out/$1-s0,$out/$1-s1,$out/$1-s2"; }
# The 3 + 3 timing of the README (dense against AC/DC), then all three
# recipes, then the prune-potential family; each prints its table.
for step in timing study potential; do
  [[ -f $out/$step/report.html ]] && { echo "== $step: done before, kept"; continue; }
  case $step in
    timing) groups=(--model-group "dense=$(runs dense)" --model-group "acdc90=$(runs acdc90)") ;;
    study) groups=(--model-group "dense=$(runs dense)" --model-group "acdc90=$(runs acdc90)"
                   --model-group "gmp90=$(runs gmp90)") ;;
    potential) groups=(--model-group "dense=$out/dense-s0")
               for s in 50 70 80 90 95; do groups+=(--model-group "pruned$s=$out/pruned$s"); done ;;
  esac
  echo "== $step: sparsetrain compare ${groups[*]}"
  start=$SECONDS
  "$bin" compare "${groups[@]}" --data-dir "$data" --threads 2 --out "$out/$step" 2>&1 |
    tee "$out/$step.log"
  echo "$step: $((SECONDS - start)) s wall" | tee -a "$out/$step.log"
done
