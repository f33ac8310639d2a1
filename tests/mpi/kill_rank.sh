#!/usr/bin/env bash
# A rank killed in the middle of a data-parallel run: the run stops (no rank
# left waiting) well within the collective time-out, the checkpoint on disk
# still loads, and `--resume` finishes the run with another number of ranks,
# reaching the accuracy of the same run done in one process.
#   kill_rank.sh SPARSETRAIN MPIRUN DATA_DIR
set -euo pipefail
bin="$1"
mpirun="$2"
data="$3"
work="$(mktemp -d "${TMPDIR:-/tmp}/sparsetrain-kill-rank.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 20 "$f" >&2; done; exit 1; }

args=(train --model lenet5 --dataset mnist --data-dir "$data" --epochs 3 --test-limit 2000
      --seed 5 --kernels auto-fixed --no-progress)
timeout=20

# 1. Two ranks; rank 1 is killed once the first epoch's checkpoint is on disk.
"$mpirun" --oversubscribe -np 2 "$bin" "${args[@]}" --out "$work/run" --mpi-timeout "$timeout" \
  >"$work/killed.log" 2>&1 &
launcher=$!
for _ in $(seq 1 3000); do
  [ -f "$work/run/checkpoint.safetensors" ] && break
  kill -0 "$launcher" 2>/dev/null || fail "the run ended before its first checkpoint"
  sleep 0.1
done
[ -f "$work/run/checkpoint.safetensors" ] || fail "no checkpoint after 300 s"
rank1=""
for pid in $(pgrep -f -- "--out $work/run" || true); do
  if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1'; then
    rank1=$pid
  fi
done
[ -n "$rank1" ] || fail "rank 1's process not found"
kill -9 "$rank1"
killed_at=$(date +%s)
status=0
wait "$launcher" || status=$?
took=$(( $(date +%s) - killed_at ))
echo "rank 1 (pid $rank1) killed: the run ended with status $status after $took s"
[ "$status" -ne 0 ] || fail "the run reported success after losing a rank"
[ "$took" -le "$((timeout + 30))" ] || fail "the run took $took s to stop (time-out $timeout s)"

# 2. The checkpoint on disk is intact: it loads and evaluates.
"$bin" eval --checkpoint "$work/run" --data-dir "$data" --limit 2000 >"$work/eval.log" 2>&1 ||
  fail "the checkpoint left by the killed run does not load"
grep -E "accuracy" "$work/eval.log" | head -n 1

# 3. Resumed with four ranks, the run finishes.
"$mpirun" --oversubscribe -np 4 "$bin" train --resume "$work/run" --no-progress \
  >"$work/resumed.log" 2>&1 || fail "resuming with 4 ranks failed"
grep -q "resumed at step" "$work/resumed.log" || fail "the run did not resume"
resumed=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$work/resumed.log")

# 4. The same run in one process, uninterrupted.
"$bin" "${args[@]}" --out "$work/alone" --threads 2 >"$work/alone.log" 2>&1 ||
  fail "the single-process run failed"
alone=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$work/alone.log")
echo "final test accuracy: resumed with 4 ranks $resumed%, one process $alone%"
awk -v a="$resumed" -v b="$alone" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.5) }' ||
  fail "the resumed run's accuracy $resumed% is not within 0.5 points of $alone%"
echo "PASS"
