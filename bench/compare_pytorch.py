#!/usr/bin/python3
"""Dense ResNet-20 training step (batch 128, forward + backward + SGD):
sparsetrain against PyTorch on this machine, measured side by side.

Rounds alternate between the two, each side in its own process so that one
side's idle OpenMP threads never compete with the other (each round:
sparsetrain's Google Benchmark for the step, then a PyTorch process that warms
up and times the same number of steps), so load from elsewhere on the machine
hits both alike. Each side runs with its own default OpenMP wait policy
(sparsetrain's program: passive; PyTorch: the OpenMP default), which
--ours-policy / --torch-policy change. Reports the median step time of each
and the ratio.

    /usr/bin/python3 bench/compare_pytorch.py --threads 2 --rounds 5
(needs Debian's python3-torch: apt-get install python3-torch)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet20(nn.Module):
    """The same network as sparsetrain's resnet20 (272,474 parameters)."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for stage, width in enumerate((16, 32, 64)):
            for b in range(3):
                layers.append(Block(cin, width, 2 if stage > 0 and b == 0 else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def torch_steps(model, opt, x, y, steps):
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def torch_worker(threads, batch, steps):
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = ResNet20()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    torch_steps(model, opt, x, y, 5)  # warm-up
    print(json.dumps(torch_steps(model, opt, x, y, steps)))


def env_with(policy):
    env = dict(os.environ)
    if policy != "default":
        env["OMP_WAIT_POLICY"] = policy
    else:
        env.pop("OMP_WAIT_POLICY", None)
    return env


def theirs_steps(threads, batch, steps, policy):
    out = subprocess.run(
        [sys.executable, __file__, "--torch-worker", f"--threads={threads}", f"--batch={batch}",
         f"--steps={steps}"],
        check=True, capture_output=True, text=True, env=env_with(policy)).stdout
    return json.loads(out)


def ours_steps(binary, threads, steps, policy):
    out = subprocess.run(
        [str(binary), f"--threads={threads}", "--benchmark_filter=BM_resnet20",
         f"--benchmark_repetitions={steps}", "--benchmark_min_time=0",
         "--benchmark_format=json"],
        check=True, capture_output=True, text=True, env=env_with(policy)).stdout
    runs = json.loads(out)["benchmarks"]
    return [r["real_time"] / 1e3 for r in runs if r.get("run_type") == "iteration"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10, help="steps per round and side")
    ap.add_argument("--binary", default=str(Path(__file__).resolve().parent.parent / "build/release/bench/bench_train_step"))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ours-policy", choices=["passive", "active", "default"], default="passive",
                    help="OMP_WAIT_POLICY of sparsetrain (default: passive, as its program runs)")
    ap.add_argument("--torch-policy", choices=["passive", "active", "default"], default="default",
                    help="OMP_WAIT_POLICY of PyTorch (default: unset, OpenMP's default)")
    ap.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.torch_worker:
        torch_worker(args.threads, args.batch, args.steps)
        return
    if args.batch != 128:
        sys.exit("bench_train_step measures batch 128; --batch must be 128")

    ours, theirs = [], []
    for r in range(args.rounds):
        ours += ours_steps(args.binary, args.threads, args.steps, args.ours_policy)
        theirs += theirs_steps(args.threads, args.batch, args.steps, args.torch_policy)
    o, t = statistics.median(ours), statistics.median(theirs)
    result = {"model": "resnet20", "batch": args.batch, "threads": args.threads,
              "sparsetrain_step_ms": round(o * 1e3, 2), "pytorch_step_ms": round(t * 1e3, 2),
              "pytorch_version": torch.__version__, "speedup_vs_pytorch": round(t / o, 3),
              "steps_each": len(ours), "ours_omp_wait_policy": args.ours_policy,
              "torch_omp_wait_policy": args.torch_policy}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"ResNet-20 training step, batch {args.batch}, {args.threads} threads, "
              f"median of {len(ours)} steps each, interleaved in {args.rounds} rounds")
        print(f"  sparsetrain        {o * 1e3:8.1f} ms   (OMP_WAIT_POLICY {args.ours_policy})")
        print(f"  PyTorch {torch.__version__}  {t * 1e3:8.1f} ms   (OMP_WAIT_POLICY {args.torch_policy})")
        print(f"  sparsetrain is {t / o:.2f}x the speed of PyTorch")


if __name__ == "__main__":
    main()
