"""Trains a 95%-sparse LeNet-5 with AC/DC on MNIST from Python, then explains
a test image with integrated gradients and saves the picture.

    PYTHONPATH=build/release/python python3 examples/python/train_lenet5.py \
        ../shared/data /tmp/lenet5-py [RECIPE]

Without RECIPE, a 4-epoch run; recipes/lenet5_mnist_acdc95.yaml is the
20-epoch run of the README's first command.
"""
import pathlib
import sys

import numpy as np

import sparsetrain as st

data_dir = sys.argv[1] if len(sys.argv) > 1 else ""
out_dir = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "lenet5-py")
recipe = (pathlib.Path(sys.argv[3]).read_text() if len(sys.argv) > 3 else """
model: lenet5
epochs: 4
batch_size: 50
optimizer: {name: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 5.0e-4}
lr_schedule: {name: cosine}
sparsity: {method: acdc, target: 0.95}
""")

st.set_num_threads(2)
train = st.Dataset.load("mnist", data_dir, "train")
test = st.Dataset.load("mnist", data_dir, "test")
print(f"sparsetrain {st.__version__}: {len(train)} training and {len(test)} test images")

# The built-in run: the recipe's model, schedule and sparsity, its table.
trainer = st.Trainer(recipe=recipe, train=train, test=test)
accuracy = trainer.run(print=True)
model = trainer.model
info = model.info
print(f"test accuracy {100 * accuracy:.2f}%, {info['nonzero']} of {info['parameters']} "
      f"parameters nonzero")

# NumPy in and out: the first eight test images.
images, labels = test.samples(0, 8)
predicted = model.predict(images).argmax(axis=1)
print("labels   ", labels.tolist())
print("predicted", predicted.tolist())

# Integrated gradients of test image 0 for its predicted class.
ig = model.probe("integrated-gradients", test, [0], steps=32)
sample, title, attribution = ig.maps[0]
result = ig.json["samples"][0]
row, col = np.unravel_index(np.abs(attribution).argmax(), attribution.shape)
print(f"{title} for class {result['target']}: score {result['score']:.4f}, baseline "
      f"{result['baseline_score']:.4f}, attributions sum to {result['attribution_sum']:.4f} "
      f"(completeness error {result['completeness_error']:.1e}); strongest pixel ({row}, {col})")
ig.write(str(out_dir))
model.save(str(out_dir / "model.safetensors"))
print(f"wrote {out_dir}/integrated-gradients-0.png and {out_dir}/model.safetensors")
