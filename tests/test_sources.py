"""Each teacher source, written by the test in its format, is recovered by ``ecluster recover``:
exact widths and every angle below 1 degree when the weights are readable, held-out relative
RMSE below 1e-3 from pairs alone."""

import json
import warnings

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from expand_and_cluster.cli import main
from expand_and_cluster.export import to_torch
from expand_and_cluster.sources import open_teacher
from expand_and_cluster.teachers import synthetic_teacher

# Small and quick: full-batch training of 10 students on 1,000 queries (about 10 s each).
FAST = [
    "--batch-size", "none", "--lr", "0.03", "--max-epochs", "1500", "--finetune-max-iterations", "100"
]  # fmt: skip
QUERIES = ["--queries", "gaussian:1000"]


@pytest.fixture(scope="module")
def teacher():
    return synthetic_teacher("4,3,1", "tanh", 0)


def recover(tmp_path, *args):
    out = tmp_path / "run"
    code = main(["recover", *map(str, args), *FAST, "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    print(
        f"{metrics['kind']}: widths {metrics['widths']}, max angle {metrics['angle_max_deg']}, "
        f"relative RMSE {metrics['relative_rmse']:.1e}"
    )
    return metrics, out


def assert_exact(metrics):
    assert metrics["widths"] == metrics["teacher_widths"] == [3]
    assert max(metrics["angles_deg"][0]) < 1.0, metrics["angles_deg"]
    assert metrics["status"] == "exact"


def write_keras_h5(path, net, activation="tanh"):
    """The layout Keras writes for a Sequential of Dense layers (model.save('m.h5'))."""
    names = [f"dense_{i}" for i in range(len(net.weights))]
    layers = [{"class_name": "InputLayer", "config": {"name": "input_1"}}]
    for i, name in enumerate(names):
        act = "linear" if i == len(names) - 1 else activation
        layers.append(
            {
                "class_name": "Dense",
                "config": {"name": name, "units": int(net.weights[i].shape[0]), "activation": act},
            }
        )
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(
            {"class_name": "Sequential", "config": {"name": "m", "layers": layers}}
        )
        group = f.create_group("model_weights")
        for name, w, b in zip(names, net.weights, net.biases, strict=True):
            inner = group.create_group(name).create_group(name)
            inner["kernel:0"] = w.T
            inner["bias:0"] = b


def test_state_dict(tmp_path, teacher):
    torch.save(to_torch(teacher).state_dict(), tmp_path / "model.pt")
    metrics, out = recover(
        tmp_path, "--teacher", tmp_path / "model.pt", "--activation", "tanh", *QUERIES
    )
    assert_exact(metrics)
    assert metrics["verification"].startswith("the teacher's weights were read")
    assert {p.name for p in out.iterdir()} >= {
        "network.onnx",
        "network.safetensors",
        "network.zarr",
    }


def test_safetensors(tmp_path, teacher):
    state = {k: v.contiguous() for k, v in to_torch(teacher).state_dict().items()}
    save_file(state, tmp_path / "model.safetensors")  # no activation in its metadata
    metrics, _ = recover(
        tmp_path, "--teacher", tmp_path / "model.safetensors", "--activation", "tanh", *QUERIES
    )
    assert_exact(metrics)


def test_onnx_exported_from_sequential(tmp_path, teacher):
    model = to_torch(teacher, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(2, 4),
            tmp_path / "model.onnx",
            input_names=["x"],
            dynamic_axes={"x": {0: "n"}},
            dynamo=False,
        )
    source = open_teacher(tmp_path / "model.onnx")
    assert source.activation == "tanh" and source.network is not None  # read from the graph
    metrics, _ = recover(tmp_path, "--teacher", tmp_path / "model.onnx", *QUERIES)
    # A float32 teacher: its outputs carry float32 rounding, so angles are float32-accurate.
    assert_exact(metrics)


def test_keras_hdf5(tmp_path, teacher):
    write_keras_h5(tmp_path / "model.h5", teacher)
    metrics, _ = recover(tmp_path, "--teacher", tmp_path / "model.h5", *QUERIES)
    assert_exact(metrics)


@pytest.mark.slow
def test_skops_regressor(tmp_path):
    import skops.io as sio
    from sklearn.neural_network import MLPRegressor

    net = synthetic_teacher("4,3,1", "tanh", 0)
    model = MLPRegressor(hidden_layer_sizes=(3,), activation="tanh", max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(np.zeros((4, 4)), np.zeros(4))
    model.coefs_ = [w.T.copy() for w in net.weights]
    model.intercepts_ = [b.copy() for b in net.biases]
    sio.dump(model, tmp_path / "model.skops")
    metrics, _ = recover(tmp_path, "--teacher", tmp_path / "model.skops", *QUERIES)
    assert_exact(metrics)


@pytest.mark.slow
def test_skops_classifier_recovers_from_log_probabilities(tmp_path):
    import skops.io as sio
    from sklearn.neural_network import MLPClassifier

    net = synthetic_teacher("4,3,3", "tanh", 0)
    model = MLPClassifier(hidden_layer_sizes=(3,), activation="tanh", max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 3)
    model.coefs_ = [w.T.copy() for w in net.weights]
    model.intercepts_ = [b.copy() for b in net.biases]
    sio.dump(model, tmp_path / "model.skops")
    metrics, _ = recover(tmp_path, "--teacher", tmp_path / "model.skops", *QUERIES)
    assert_exact(metrics)
    assert "centred log-probabilities" in " ".join(metrics["source"]["notes"])


@pytest.mark.parametrize("kind", ["npz", "csv"])
def test_pairs(tmp_path, teacher, kind):
    x = np.random.default_rng(5).standard_normal((1250, 4))
    y = teacher(x)
    if kind == "npz":
        path = tmp_path / "pairs.npz"
        np.savez(path, x=x, y=y)
    else:
        path = tmp_path / "pairs.csv"
        columns = {f"x{i}": x[:, i] for i in range(4)} | {"y0": y[:, 0]}
        pd.DataFrame(columns).to_csv(path, index=False, float_format="%.17g")
    metrics, _ = recover(
        tmp_path, "--pairs", path, "--activation", "tanh", "--student-widths", "12"
    )
    assert metrics["status"] == "unverified" and metrics["widths"] == [3]
    assert metrics["relative_rmse"] < 1e-3, metrics["relative_rmse"]
    assert "no weight comparison was possible" in metrics["verification"]
    assert metrics["angles_deg"] is None and metrics["n_test"] == 250


def test_parquet_pairs_and_named_output_columns(tmp_path):
    from expand_and_cluster.sources import read_pairs

    table = pd.DataFrame(
        {"age": [1.0, 2.0, 3.0], "dose": [0.5, 0.1, 0.2], "effect": [3.0, 2.0, 1.0]}
    )
    table.to_parquet(tmp_path / "p.parquet")
    x, y = read_pairs(tmp_path / "p.parquet", ["effect"])
    assert x.shape == (3, 2) and y[:, 0].tolist() == [3.0, 2.0, 1.0]


def test_onnx_graph_that_is_not_a_plain_mlp_is_a_black_box(tmp_path):
    net = synthetic_teacher("4,3,1", "silu", 0)  # torch writes SiLU as Sigmoid and Mul
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            to_torch(net, "float32"), torch.zeros(2, 4), tmp_path / "m.onnx", dynamo=False
        )
    source = open_teacher(tmp_path / "m.onnx", "silu")
    assert source.network is None and source.hidden_widths is None and "black box" in source.notes
    x = np.random.default_rng(0).normal(size=(5, 4))
    assert np.allclose(source(x), net(x), atol=1e-5)
