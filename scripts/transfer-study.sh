#!/usr/bin/env bash
# The laptop-scale transfer study of README "Transfer fine-tuning" (after
# Iofinova et al. 2022, "How well do sparse ImageNet models transfer?"):
#   upstream:   ResNet-20 on CIFAR-10 classes 0-4 (airplane, automobile,
#               bird, cat, deer), 30 epochs each: dense, AC/DC 90%, GMP 90%
#               (the recipes of recipes/, with --classes 0-4);
#   downstream: classes 5-9 (dog, frog, horse, ship, truck) from each
#               upstream with `finetune --mode full` (DOWN_EPOCHS epochs,
#               cosine lr from DOWN_LR, masks fixed) and `--mode
#               linear-probe` (30 epochs of the head on cached features),
#               and `--mode sparse-head` on the dense and AC/DC backbones;
#   speed:      scripts/finetune-speed.sh: `finetune --mode full` steps of
#               every upstream and `bench model --masks-from` of the sparse
#               ones, interleaved in rounds (OUT/speed.md).
# Test sets: the held-out classes of data_batch_5 (no test_batch here), so
# 5,000 images per task. About an hour and a half on a quiet 2-core machine. Runs go
# to runs/transfer-study/ (OUT overrides), the table to
# runs/transfer-study/table.md; steps whose checkpoint exists are skipped,
# so an interrupted study continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
# BIN: a sparsetrain binary to use instead of building one.
source scripts/steps.sh
study_setup runs/transfer-study
down_epochs="${DOWN_EPOCHS:-10}"
down_lr="${DOWN_LR:-0.01}"
extra=()
for up in dense acdc90 gmp90; do
  case $up in
    dense) recipe=recipes/resnet20_cifar10_dense_30ep.yaml ;;
    acdc90) recipe=recipes/resnet20_cifar10_acdc90_30ep.yaml ;;
    gmp90) recipe=recipes/resnet20_cifar10_gmp90.yaml ;;
  esac
  run_step "up-$up" train --recipe "$recipe" --classes 0-4
done
for up in dense acdc90 gmp90; do
  run_step "full-$up" finetune --checkpoint "$out/up-$up" --mode full --classes 5-9 \
    --epochs "$down_epochs" --lr "$down_lr" --lr-schedule cosine
  run_step "probe-$up" finetune --checkpoint "$out/up-$up" --mode linear-probe --classes 5-9 \
    --epochs 30 --lr 0.05 --lr-schedule cosine --feature-cache "$out/features"
done
for up in dense acdc90; do
  run_step "head-$up" finetune --checkpoint "$out/up-$up" --mode sparse-head --classes 5-9 \
    --feature-cache "$out/features"
done
if [[ ! -f $out/speed.md ]]; then
  BIN="$bin" OUT="$out" scripts/finetune-speed.sh
fi

# The table: final test accuracy of every run and the sum of its epochs'
# seconds; then the speed figures.
python3 - "$out" <<'EOF' | tee "$out/table.md"
import json, os, sys
out = sys.argv[1]

def run(name):
    path = os.path.join(out, name + ".metrics.jsonl")
    if not os.path.exists(path):
        return None
    events = [json.loads(line) for line in open(path)]
    epochs = [e for e in events if e.get("event") == "epoch"]
    end = [e for e in events if e.get("event") == "end"]
    if not end:
        return None
    return {"acc": 100 * end[-1]["test_accuracy"],
            "seconds": sum(e["seconds"] for e in epochs),
            "nonzero": end[-1]["params_nonzero"]}

def cell(r, key, fmt):
    return fmt.format(r[key]) if r and r.get(key) is not None else "-"

print("| upstream (classes 0-4) | upstream acc | upstream s | full fine-tuning acc | full s "
      "| linear probe acc | probe s | sparse head acc | head nonzero |")
print("|---|---|---|---|---|---|---|---|---|")
for up in ["dense", "acdc90", "gmp90"]:
    u, f, p, h = run("up-" + up), run("full-" + up), run("probe-" + up), run("head-" + up)
    head_nz = "-"
    report = os.path.join(out, "head-" + up, "sparse_head.json")
    if os.path.exists(report):
        r = json.load(open(report))
        point = r["path"][r["chosen_point"] - 1]
        head_nz = "{} of {}".format(point["nonzero"], r["features"] * r["classes"])
    print("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
        up, cell(u, "acc", "{:.2f}%"), cell(u, "seconds", "{:.0f}"), cell(f, "acc", "{:.2f}%"),
        cell(f, "seconds", "{:.0f}"), cell(p, "acc", "{:.2f}%"),
        cell(p, "seconds", "{:.1f}"), cell(h, "acc", "{:.2f}%"), head_nz))
EOF
echo
cat "$out/speed.md"
