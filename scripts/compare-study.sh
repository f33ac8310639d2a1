#!/usr/bin/env bash
# The compare study of README "Comparing models" (after Liebenwein et al.
# 2021, Iofinova et al. 2023, Hooker et al. 2019 and Boggust et al. 2022):
#   models:  ResNet-20 on CIFAR-10 with the 6-epoch recipes of recipes/
#            (the 30-epoch ones scaled by 0.2): dense, AC/DC 90% and GMP 90%,
#            seeds 0, 1 and 2 each (SEEDS="0 1" for fewer);
#   pruned:  the dense seed-0 model pruned one-shot by global magnitude to
#            10, 20, 30, 40, 50, 70, 80, 90 and 95% (`sparsetrain prune`, no retraining),
#            for the prune-potential curves;
#   compare: `sparsetrain compare` of dense (reference) against AC/DC and
#            GMP on the 10,000 held-out images, and of the dense model
#            against its pruned copies (OUT/compare, OUT/potential).
# About an hour on a quiet 2-core machine. Runs go to runs/compare-study/
# (OUT overrides); a finished step is kept and a stopped one resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN: a sparsetrain binary to use instead of building one.
source scripts/steps.sh
study_setup runs/compare-study
extra=()
read -r -a seeds <<<"${SEEDS:-0 1 2}"
for seed in "${seeds[@]}"; do
  for kind in dense acdc90 gmp90; do
    run_step "$kind-s$seed" train --recipe "recipes/resnet20_cifar10_${kind}_6ep.yaml" --seed "$seed"
  done
done
for s in 10 20 30 40 50 70 80 90 95; do
  if [[ ! -f $out/pruned$s/checkpoint.safetensors ]]; then
    "$bin" prune --checkpoint "$out/dense-s0" --sparsity "0.$s" --out "$out/pruned$s" \
      --data-dir "$data" --threads 2 --no-eval
  fi
done
[[ ${TRAIN_ONLY:-0} == 1 ]] && exit 0

runs() {  # KIND: the runs of every seed, comma-separated
  local list=() seed
  for seed in "${seeds[@]}"; do list+=("$out/$1-s$seed"); done
  (IFS=,; echo "${list[*]}")
}
# The 3 + 3 timing of the README (dense against AC/DC), then all three
# recipes, then the prune-potential family; each prints its table.
for step in timing study potential; do
  [[ -f $out/$step/report.html ]] && { echo "== $step: done before, kept"; continue; }
  case $step in
    timing) groups=(--model-group "dense=$(runs dense)" --model-group "acdc90=$(runs acdc90)") ;;
    study) groups=(--model-group "dense=$(runs dense)" --model-group "acdc90=$(runs acdc90)"
                   --model-group "gmp90=$(runs gmp90)") ;;
    potential) groups=(--model-group "dense=$out/dense-s0")
               for s in 10 20 30 40 50 70 80 90 95; do groups+=(--model-group "pruned$s=$out/pruned$s"); done ;;
  esac
  echo "== $step: sparsetrain compare ${groups[*]}"
  start=$SECONDS
  "$bin" compare "${groups[@]}" --data-dir "$data" --threads 2 --out "$out/$step" 2>&1 |
    tee "$out/$step.log"
  echo "$step: $((SECONDS - start)) s wall" | tee -a "$out/$step.log"
  # The page as a browser shows it (headless Chromium, 1280 pixels wide).
  if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,9000 \
      --screenshot="$out/$step/report.png" "file://$(realpath "$out/$step/report.html")" 2>/dev/null
  fi
done
