"""The Python module against the runtime: gradients of sparse layers against
finite differences, training that learns, errors as Python exceptions, hooks
that see tensors and stop a step when they raise, probes and checkpoints."""
import os

import numpy as np
import pytest

import sparsetrain as st

DATA = os.environ.get("SPARSETRAIN_TEST_DATA_DIR", "../shared/data")
SOURCE = os.environ.get("SPARSETRAIN_SOURCE_DIR", ".")


@pytest.fixture(scope="module")
def mnist():
    return st.Dataset.load("mnist", DATA, "train"), st.Dataset.load("mnist", DATA, "test")


def directional_check(model, x, seed):
    """d/de sum(w * logits(x + e v)) at 0 by central differences (in double
    over float32 passes) against <input_gradient(x, w), v>. Noise on the
    images first: MNIST's flat background makes max-pooling ties, where the
    function has no derivative."""
    rng = np.random.default_rng(seed)
    x = x + rng.normal(0, 0.1, x.shape).astype(np.float32)
    w = rng.standard_normal((x.shape[0], model.info["classes"])).astype(np.float32)
    grad = model.input_gradient(x, w)
    for _ in range(3):
        v = rng.standard_normal(x.shape).astype(np.float32)
        # Small enough to stay within one linear piece of ReLU and max pooling
        # for almost every unit (the rest is the tolerance).
        eps = 1e-4
        f = lambda e: float(np.sum(w.astype(np.float64) * model.predict(x + e * v)))  # noqa: E731
        numeric = (f(eps) - f(-eps)) / (2 * eps)
        analytic = float(np.sum(grad.astype(np.float64) * v))
        assert numeric == pytest.approx(analytic, rel=5e-2, abs=5e-2)


def test_sparse_linear_and_conv_gradients_match_finite_differences(mnist):
    _, test = mnist
    x, _ = test.samples(0, 4)
    mlp = st.Model("mlp", (1, 28, 28), 10, seed=1)
    mlp.prune(0.9)  # compressed: the sparse linear kernels
    assert mlp.info["nonzero"] < 0.2 * mlp.info["parameters"]
    directional_check(mlp, x, 0)
    lenet = st.Model("lenet5", (1, 28, 28), 10, seed=2)
    lenet.prune(0.9)  # conv2 and the linear layers sparse
    directional_check(lenet, x, 1)


def test_training_from_python_learns(mnist):
    train, test = mnist
    model = st.Model("lenet5", (1, 28, 28), 10, seed=0)
    trainer = st.Trainer(model, "batch_size: 50\nsparsity: {method: static, target: 0.9}\n",
                         train, test)
    losses = []
    for step in range(80):
        x, y = train.samples(step * 50, 50)
        losses.append(trainer.step(x, y))
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:10])
    small = st.Dataset(*test.samples(0, 1000), classes=10)
    accuracy, loss = trainer.model.evaluate(small)
    assert accuracy > 0.6  # chance: 0.1
    assert np.isfinite(loss)


def test_errors_raise_with_the_runtimes_message(mnist, tmp_path):
    _, test = mnist
    with pytest.raises(st.Error, match="unknown model 'lenet7'"):
        st.Model("lenet7")
    with pytest.raises(st.Error, match="no such file"):
        st.Model("nowhere/net.yaml")
    model = st.Model("mlp")
    with pytest.raises(ValueError, match="images holds 392 elements"):
        model.predict(np.zeros((1, 1, 28, 14), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        model.predict(np.zeros((28, 28), np.float32))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(st.Error, match="bad.safetensors"):
        st.Model.load(str(bad))
    with pytest.raises(st.Error, match="mind-reading"):
        model.probe("mind-reading", test, [0])
    with pytest.raises(st.Error, match="epochs"):
        st.Trainer(model, "epochs: 0\n", test, test)
    with pytest.raises(ValueError, match="split"):
        st.Dataset.load("mnist", DATA, "validation")


def test_hooks_see_tensors_and_a_raising_hook_stops_the_step(mnist):
    train, test = mnist
    model = st.Model("lenet5", seed=3)
    seen = []
    hook = model.add_hook("after_forward", "fc*", lambda e: seen.append((e["node"], e["output"])))
    x, y = test.samples(0, 2)
    logits = model.predict(x)
    assert [n for n, _ in seen] == ["fc1", "fc2", "fc3"]
    np.testing.assert_array_equal(seen[-1][1], logits)
    hook.remove()
    seen.clear()
    model.predict(x)
    assert seen == []

    trainer = st.Trainer(model, "batch_size: 2\n", test, test)

    def boom(event):
        raise KeyError("boom in " + event["node"])

    raising = trainer.model.add_hook("after_backward", "conv1", boom)
    with pytest.raises(KeyError, match="boom in conv1"):
        trainer.step(x, y)
    raising.remove()
    assert np.isfinite(trainer.step(x, y))  # the next step runs


def test_builder_probe_and_checkpoint_round_trip(mnist, tmp_path):
    _, test = mnist
    model = st.Model.begin((1, 28, 28), 10)
    model.add("flatten", "flatten")
    model.add("fc1", "linear", out_features=64)
    model.add("relu", "relu")
    model.add("fc2", "linear", out_features="classes", prunable=False)
    model.finish(seed=4)
    model.prune(0.8)
    x, _ = test.samples(0, 3)
    before = model.predict(x)
    path = str(tmp_path / "model.safetensors")
    model.save(path)
    back = st.Model.load(path)
    np.testing.assert_array_equal(back.predict(x), before)
    assert back.info["nonzero"] == model.info["nonzero"]

    yaml = os.path.join(SOURCE, "graphs", "lenet5.yaml")
    from_file = st.Model(yaml, (1, 28, 28), 10, seed=5)
    zoo = st.Model("lenet5", (1, 28, 28), 10, seed=5)
    np.testing.assert_array_equal(from_file.predict(x), zoo.predict(x))

    result = zoo.probe("saliency", test, [0, 1], mode="gradient")
    maps = result.maps
    assert [m[0] for m in maps] == [0, 1]
    assert maps[0][2].shape == (28, 28)
    assert np.abs(maps[0][2]).sum() > 0
    assert isinstance(result.json, dict)
    result.write(str(tmp_path / "probe"))
    assert (tmp_path / "probe" / "saliency-0.png").stat().st_size > 0
