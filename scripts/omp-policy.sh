#!/usr/bin/env bash
# README "OpenMP's waiting policy": the same work under OMP_WAIT_POLICY=passive
# and under libgomp's default spinning (GOMP_SPINCOUNT=300000, its documented
# default), on a quiet machine and next to other busy processes.
#   - LeNet-5 training steps (median ms of a dense epoch and of a 95%-sparse
#     compressed one, 20,000 MNIST images each), the median of REPS runs:
#     quiet, next to one and two `yes` processes, two trainings at once;
#   - a ResNet-20 step (bench model, batch 128, 90% sparse): quiet, next to
#     one `yes` process;
#   - with CTEST=1, the whole test suite (ctest -j2) under each policy.
# PARTS (default "lenet resnet") picks the parts. About 12 minutes on a quiet
# 2-core machine (5 more with CTEST=1). Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-build/release/sparsetrain}"
data="${DATA_DIR:-../shared/data}"
reps="${REPS:-3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/sparsetrain-omp-policy.XXXXXX")"
hogs=()
cleanup() { for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# with_policy POLICY CMD...: passive, or spinning (libgomp's default).
with_policy() {
  local policy="$1"
  shift
  if [ "$policy" = passive ]; then
    env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive "$@"
  else
    env -u OMP_WAIT_POLICY GOMP_SPINCOUNT=300000 "$@"
  fi
}
start_hogs() { for _ in $(seq 1 "$1"); do yes >/dev/null & hogs+=("$!"); done; }
stop_hogs() { for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; done; hogs=(); }

# lenet_steps POLICY TAG: "dense_ms compressed_ms" of one short run.
lenet_steps() {
  with_policy "$1" "$bin" train --model lenet5 --dataset mnist --data-dir "$data" \
    --sparsity-method acdc --sparsity 0.95 --compress-epochs 1 --epochs 2 --train-limit 20000 \
    --test-limit 1000 --threads 2 --kernels auto-fixed --no-progress --force \
    --out "$work/$2" --metrics "$work/$2.jsonl" >/dev/null 2>&1
  python3 - "$work/$2.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
ms = {r["epoch"]: r["step_ms_median"] for r in rows if r.get("event") == "epoch"}
print(f"{ms[1]:.2f} {ms[2]:.2f}")
PY
}
median_pair() {
  python3 -c '
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print(" ".join(f"{statistics.median(c):.2f}" for c in zip(*rows)))'
}

parts="${PARTS:-lenet resnet}"
if [[ " $parts " == *" lenet "* ]]; then
echo "LeNet-5 step, median ms (dense epoch / compressed 95% epoch), median of $reps runs"
printf '%-32s %-20s %-20s\n' "machine" "passive" "spinning"
for scenario in quiet "1 busy process" "2 busy processes" "2 trainings at once"; do
  line=$(printf '%-32s' "$scenario")
  for policy in passive spinning; do
    for r in $(seq 1 "$reps"); do
      case "$scenario" in
        "1 busy process") start_hogs 1 ;;
        "2 busy processes") start_hogs 2 ;;
      esac
      if [ "$scenario" = "2 trainings at once" ]; then
        lenet_steps "$policy" "other-$r" >/dev/null &
        other=$!
        lenet_steps "$policy" "run-$r"
        wait "$other"
      else
        lenet_steps "$policy" "run-$r"
      fi
      stop_hogs
    done >"$work/rows"
    line+=$(printf ' %-20s' "$(median_pair <"$work/rows" | sed 's| | / |')")
  done
  echo "$line"
done
echo
fi

if [[ " $parts " == *" resnet "* ]]; then
echo "ResNet-20 step, batch 128, 90% sparse (bench model): ms dense / sparse"
for scenario in quiet "1 busy process"; do
  line=$(printf '%-32s' "$scenario")
  for policy in passive spinning; do
    [ "$scenario" = quiet ] || start_hogs 1
    json=$(with_policy "$policy" "$bin" bench model --model resnet20 --batch 128 --sparsity 0.9 \
      --threads 2 --json 2>/dev/null)
    stop_hogs
    line+=$(printf ' %-20s' "$(python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print("%.1f / %.1f" % (j["dense_step_ms"], j["sparse_step_ms"]))' "$json")")
  done
  echo "$line"
done
echo
fi

if [ "${CTEST:-0}" = 1 ]; then
  echo "The test suite (ctest -j2): seconds"
  for policy in passive spinning; do
    t0=$(date +%s.%N)
    with_policy "$policy" ctest --test-dir build/release -j2 >"$work/ctest.log" 2>&1 ||
      echo "  (some tests failed under $policy: $(grep -c 'Failed' "$work/ctest.log"))"
    echo "  $policy: $(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")"
  done
fi
