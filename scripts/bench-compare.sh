#!/usr/bin/env bash
# Compares two builds of sparsetrain on the issue's no-regression benchmarks,
# run alternately (A B A B ...) so drift of the machine hits both alike, and
# prints the median of each side and their ratio.
#   scripts/bench-compare.sh OLD_BINARY NEW_BINARY [ROUNDS]
# e.g. a worktree of the previous commit built to /tmp/base:
#   scripts/bench-compare.sh /tmp/base/build/release/sparsetrain build/release/sparsetrain 7
set -euo pipefail
old="$1"
new="$2"
rounds="${3:-5}"
export OMP_WAIT_POLICY=passive
cases=(
  "model|bench model --model resnet20 --batch 128 --sparsity 0.9 --threads 2 --json"
  "conv|bench conv --cin 64 --cout 64 --hw 32 --k 3 --batch 32 --sparsity 0.9 --threads 2 --json"
  "linear|bench linear --in 768 --out 3072 --batch 256 --sparsity 0.9 --threads 2 --json"
)
# The sparse side's milliseconds per step (model) or per three passes
# (conv, linear), and the dense side's, from one --json object.
extract() {
  python3 -c '
import json, sys
j = json.load(sys.stdin)
def total(v):
    return v["total"] if isinstance(v, dict) else v
for side in ("sparse", "dense"):
    print(total(j[side + "_ms"] if side + "_ms" in j else j[side + "_step_ms"]), end=" ")
print()'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-7s %-6s %12s %12s %12s %12s %9s\n' case side "old sparse" "new sparse" "old dense" "new dense" "new/old"
for entry in "${cases[@]}"; do
  name="${entry%%|*}"
  args="${entry#*|}"
  : >"/tmp/bench-compare-$name-old" >"/tmp/bench-compare-$name-new"
  for ((r = 0; r < rounds; ++r)); do
    # shellcheck disable=SC2086
    "$old" $args 2>/dev/null | extract >>"/tmp/bench-compare-$name-old"
    # shellcheck disable=SC2086
    "$new" $args 2>/dev/null | extract >>"/tmp/bench-compare-$name-new"
  done
  os="$(cut -d' ' -f1 "/tmp/bench-compare-$name-old" | median)"
  ns="$(cut -d' ' -f1 "/tmp/bench-compare-$name-new" | median)"
  od="$(cut -d' ' -f2 "/tmp/bench-compare-$name-old" | median)"
  nd="$(cut -d' ' -f2 "/tmp/bench-compare-$name-new" | median)"
  printf '%-7s %-6s %12.3f %12.3f %12.3f %12.3f %8.3fx\n' "$name" ms "$os" "$ns" "$od" "$nd" \
    "$(awk -v a="$ns" -v b="$os" 'BEGIN { print a / b }')"
done
