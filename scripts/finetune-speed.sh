#!/usr/bin/env bash
# The speed figures of README "Transfer fine-tuning", measured side by side:
# ROUNDS rounds (default 5), each of them
#   - `bench model --masks-from UP` for the AC/DC and GMP upstreams (the
#     dense and the sparse step of the same layer densities, alternating);
#   - `finetune --mode full` from each upstream (dense, AC/DC, GMP) for
#     STEPS training steps (default 30), its per-step times from the
#     metrics' step events (Trainer::step: forward, loss, backward, masks,
#     optimizer).
# Interleaving the runs shares the machine's drift among them; epoch means
# of runs an hour apart on a shared host differ by more than the 10% being
# checked. Each run's first WARMUP steps (default 3; kernel choices are
# timed there) are left out; the figures are medians over all rounds.
# Needs the upstream runs of scripts/transfer-study.sh in OUT (default
# runs/transfer-study); writes OUT/speed/ and OUT/speed.md.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${BIN:-build/release/sparsetrain}"
data="${SPARSETRAIN_DATA_DIR:-../shared/data}"
out="${OUT:-runs/transfer-study}"
rounds="${ROUNDS:-5}"
steps="${STEPS:-30}"
warmup="${WARMUP:-3}"
speed="$out/speed"
rm -rf "$speed"
mkdir -p "$speed"
for r in $(seq 1 "$rounds"); do
  echo "== round $r of $rounds"
  for up in acdc90 gmp90; do
    "$bin" bench model --masks-from "$out/up-$up" --batch 128 --threads 2 --steps "$steps" \
      --warmup "$warmup" >"$speed/bench-$up-$r.txt"
  done
  for up in dense acdc90 gmp90; do
    "$bin" finetune --checkpoint "$out/up-$up" --mode full --classes 5-9 --epochs 1 \
      --train-limit $((steps * 128)) --test-limit 500 --lr 0.01 --lr-schedule cosine \
      --data-dir "$data" --threads 2 --no-progress --log-every 1 --out "$speed/full-$up-$r" \
      --metrics "$speed/full-$up-$r.jsonl" >"$speed/full-$up-$r.log" 2>&1
  done
done

python3 - "$speed" "$rounds" "$warmup" <<'EOF' | tee "$out/speed.md"
import glob, json, os, re, statistics, sys
speed, rounds, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def finetune_ms(up):
    ms = []
    for r in range(1, rounds + 1):
        events = [json.loads(l) for l in open(os.path.join(speed, f"full-{up}-{r}.jsonl"))]
        ms += [e["ms"] for e in events if e.get("event") == "step" and e["step"] >= warmup]
    return statistics.median(ms), len(ms)

def bench_ms(up):
    dense, sparse = [], []
    for r in range(1, rounds + 1):
        text = open(os.path.join(speed, f"bench-{up}-{r}.txt")).read()
        d, s = re.search(r"^step\s+([\d.]+)\s+([\d.]+)", text, re.M).groups()
        dense.append(float(d))
        sparse.append(float(s))
    return statistics.median(dense), statistics.median(sparse)

dense_ft, n = finetune_ms("dense")
print(f"{rounds} rounds; medians of {n} fine-tuning steps per backbone and of the rounds' "
      "bench model medians (batch 128, 2 threads)\n")
print("| backbone | finetune --mode full step ms | bench model sparse step ms | "
      "finetune / bench | bench model dense step ms | speed-up over dense fine-tuning |")
print("|---|---|---|---|---|---|")
print(f"| dense | {dense_ft:.1f} | - | - | - | 1.00x |")
for up in ["acdc90", "gmp90"]:
    ft, _ = finetune_ms(up)
    bd, bs = bench_ms(up)
    print(f"| {up} | {ft:.1f} | {bs:.1f} | {ft / bs:.3f} | {bd:.1f} | {dense_ft / ft:.2f}x |")
EOF
