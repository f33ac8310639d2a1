"""Per-step time of a training loop written in Python (Trainer.step on NumPy
batches) against the command line's own loop, for README "Python".

    PYTHONPATH=build/release/python python3 bench/python_step.py DATA_DIR CLI_METRICS

Runs the recipe recipes/lenet5_mnist_acdc95.yaml step by step for its first
two epochs (dense, then compressed at 95%) and prints the median step time
of each beside the command line's (step_ms_median of the same epochs in
CLI_METRICS, the --metrics file of `sparsetrain train` with that recipe).
"""
import json
import pathlib
import sys
import time

import numpy as np

import sparsetrain as st

data_dir, cli_metrics = sys.argv[1], sys.argv[2]
recipe = pathlib.Path(__file__).resolve().parents[1] / "recipes" / "lenet5_mnist_acdc95.yaml"
st.set_num_threads(2)
train = st.Dataset.load("mnist", data_dir, "train")
test = st.Dataset.load("mnist", data_dir, "test")
trainer = st.Trainer(recipe=recipe.read_text(), train=train, test=test)

batch = 50
steps_per_epoch = len(train) // batch
# The whole training set as NumPy arrays, as a Python loop over in-memory
# data has it; each step takes views of it (no copy on the Python side).
images, labels = train.samples(0, len(train))
rng = np.random.default_rng(0)
times = {1: [], 2: []}
for epoch in (1, 2):
    for i in rng.permutation(steps_per_epoch):
        x = images[i * batch:(i + 1) * batch]
        y = labels[i * batch:(i + 1) * batch]
        t0 = time.perf_counter()
        trainer.step(x, y)
        times[epoch].append(1e3 * (time.perf_counter() - t0))

cli = {}
with open(cli_metrics, encoding="utf-8") as lines:
    for line in lines:
        row = json.loads(line)
        if "epoch" in row and "step_ms_median" in row:
            cli[row["epoch"]] = row["step_ms_median"]
print("epoch  phase        python step (ms)  CLI step (ms)  python / CLI")
for epoch, phase in ((1, "dense"), (2, "compressed")):
    p = float(np.median(times[epoch]))
    print(f"{epoch:5d}  {phase:11s}  {p:16.3f}  {cli[epoch]:13.3f}  {p / cli[epoch]:12.3f}")
