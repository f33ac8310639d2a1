#!/usr/bin/env bash
# Builds the libFuzzer targets (the `fuzz` preset: clang with address and UB
# sanitizers), makes their seed corpora from real files, and runs each one
# for SECONDS (default 60) with a memory cap and a per-input time limit. Any
# finding (a crash, a sanitizer report, an exception other than
# sparsetrain::Error, an input over the caps) stops that target with its
# input saved in build/fuzz/findings/, and the script exits 1.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_checkpoint fuzz_checkpoint_header fuzz_recipe fuzz_datasets
                                 fuzz_model_file)

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j"$(nproc)"
build=build/fuzz
corpus="$build/corpus"
findings="$build/findings"
mkdir -p "$findings"

# Seeds: a small dense and a small compressed run's checkpoints, the shipped
# recipes and model files, and tiny valid dataset files (made by the script, so the corpus
# does not depend on the data folder).
if [[ ! -d "$corpus" ]]; then
  mkdir -p "$corpus"/{fuzz_checkpoint,fuzz_checkpoint_header,fuzz_recipe,fuzz_datasets,fuzz_model_file}
  seeds="$(mktemp -d)"
  trap 'rm -rf "$seeds"' EXIT
  python3 scripts/fuzz_seeds.py "$seeds/data" "$corpus/fuzz_datasets"
  for run in dense:0 sparse:0.8; do
    name="${run%%:*}"
    ASAN_OPTIONS=detect_leaks=0 "$build/sparsetrain" train --model mlp --dataset mnist \
      --data-dir "$seeds/data" --epochs 1 --batch-size 2 --sparsity "${run#*:}" \
      --no-progress --out "$seeds/$name" >/dev/null
    cp "$seeds/$name/checkpoint.safetensors" "$corpus/fuzz_checkpoint/$name.safetensors"
    cp "$seeds/$name/checkpoint.safetensors" "$corpus/fuzz_checkpoint_header/$name.safetensors"
  done
  cp recipes/*.yaml "$corpus/fuzz_recipe/"
  cp graphs/*.yaml "$corpus/fuzz_model_file/"
fi

status=0
for t in "${targets[@]}"; do
  echo "== $t (${seconds} s)"
  if ! ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 "$build/tests/fuzz/$t" \
      "$corpus/$t" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=2048 \
      -timeout=10 -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/$t-" \
      2>"$build/$t.log"; then
    status=1
    echo "FINDING in $t: see $build/$t.log and $findings/"
    tail -30 "$build/$t.log"
  fi
  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|cov: ' "$build/$t.log" | tail -3
done
exit "$status"
