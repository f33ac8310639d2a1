"""README "Data-parallel training over MPI": when does the sparse all-reduce
pay? An alpha-beta model of one data-parallel step of a ResNet-50-sized
network (25.6M parameters), dense against 90% sparse, on N nodes joined by
25 Gbit/s Ethernet.

    python3 scripts/mpi_cost_model.py [--sparse-ms-per-sample X] [--dense-ms-per-sample Y] ...

Compute: the per-sample step time measured here on ResNet-20 (2 threads,
scripts/mpi-scaling.sh) scaled by the ratio of the two networks'
multiply-adds (ResNet-50 at 224x224: 4.1 G; ResNet-20 at 32x32: 41 M), for a
node of this machine's size and for one with 32 times its compute.
All-reduce (ring, alpha-beta): alpha * log2(N) + 2 (N - 1) / N * bytes / beta,
the bytes being the stored gradient entries (dense: every parameter; 90%
sparse: the nonzeros of the pruned layers plus the dense first and last
layers, BatchNorm and biases, as sparsetrain sends them). The step time is
compute + all-reduce (no overlap: the reduction that overlaps backward only
makes it smaller); efficiency is compute / step.
"""
import argparse
import math

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--sparse-ms-per-sample", type=float, default=0.0,
               help="measured ResNet-20 90%%-sparse step ms / batch (required)")
p.add_argument("--dense-ms-per-sample", type=float, default=0.0,
               help="measured ResNet-20 dense step ms / batch (required)")
p.add_argument("--batch-per-node", type=int, default=32)
p.add_argument("--alpha-us", type=float, default=50.0, help="latency per message step (us)")
p.add_argument("--gbit", type=float, default=25.0, help="link bandwidth (Gbit/s)")
args = p.parse_args()
if args.sparse_ms_per_sample <= 0 or args.dense_ms_per_sample <= 0:
    p.error("give the measured --sparse-ms-per-sample and --dense-ms-per-sample")

flop_ratio = 4.1e9 / 41e6
# ResNet-50: 25.557M parameters; conv1 9,408 and fc 2,049,000 stay dense
# (first and last layer), BatchNorm 53,120; the rest are pruned conv weights.
params = 25_557_032
dense_kept = 9_408 + 2_049_000 + 53_120
pruned = params - dense_kept
floats = {"dense": params, "90% sparse": dense_kept + round(0.1 * pruned)}
beta = args.gbit * 1e9 / 8  # bytes / s


def allreduce_s(nbytes, n):
    return args.alpha_us * 1e-6 * math.log2(n) + 2 * (n - 1) / n * nbytes / beta


print(f"ResNet-50-sized step, {args.batch_per_node} samples per node, "
      f"{args.gbit:g} Gbit/s, alpha {args.alpha_us:g} us")
print(f"all-reduced per step: dense {4 * floats['dense'] / 1e6:.1f} MB, "
      f"90% sparse {4 * floats['90% sparse'] / 1e6:.1f} MB")
for node, speedup in (("a node like this one (2 cores)", 1), ("a node with 32x its compute", 32)):
    print(f"\n{node}:")
    print(f"{'nodes':>6} {'gradients':>11} {'compute ms':>11} {'all-reduce ms':>14} "
          f"{'step ms':>9} {'efficiency':>11} {'samples/s':>10}")
    for n in (8, 32, 128):
        for kind, ms in (("dense", args.dense_ms_per_sample), ("90% sparse", args.sparse_ms_per_sample)):
            compute = ms * flop_ratio * args.batch_per_node / speedup / 1e3
            comm = allreduce_s(4 * floats[kind], n)
            step = compute + comm
            print(f"{n:>6} {kind:>11} {compute * 1e3:>11.1f} {comm * 1e3:>14.1f} "
                  f"{step * 1e3:>9.1f} {compute / step:>10.0%} "
                  f"{n * args.batch_per_node / step:>10.0f}")
