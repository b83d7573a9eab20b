"""The input mask of the first layer: which inputs carry signal (expand_and_cluster.masks),
clustering on the masked vectors, and the masked angles to the teacher."""

import json

import numpy as np
import pytest

from expand_and_cluster import RecoverySettings
from expand_and_cluster.cli import main
from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import compare_networks
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.masks import MASK_METHODS, input_mask
from expand_and_cluster.network import MLP
from expand_and_cluster.reconstruct import reconstruct
from expand_and_cluster.store import read_input_mask, write_network, write_recovery
from expand_and_cluster.teachers import synthetic_teacher

# -- which inputs carry signal -------------------------------------------------------------


def test_constant_drops_exactly_the_planted_constant_columns():
    x = np.random.default_rng(0).normal(size=(500, 12))
    x[:, 2] = 0.0
    x[:, 5] = 3.7
    x[:, 9] = -1e6
    x[:, 10] = 1.0 + 1e-15 * np.arange(500) % 3  # rounding noise: constant
    x[:, 11] *= 1e-6  # small but real spread: kept
    mask = input_mask(x, "constant")
    assert mask.dtype == bool and mask.shape == (12,)
    assert mask.sum() == 8
    assert np.flatnonzero(~mask).tolist() == [2, 5, 9, 10]


def test_none_keeps_every_input_and_unknown_methods_are_refused():
    x = np.zeros((10, 3))
    assert input_mask(x, "none").all()  # no look at the data at all
    assert MASK_METHODS == ("none", "constant", "informative")
    with pytest.raises(InputError, match="one of none, constant, informative"):
        input_mask(x, "boruta")


def test_all_constant_inputs_are_refused_with_the_method_and_the_fix():
    x = np.tile([1.0, 0.0, -2.0], (50, 1))
    for method in ("constant", "informative"):
        with pytest.raises(InputError, match=rf"input mask '{method}'.*--input-mask none"):
            input_mask(x, method, np.zeros(50))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_informative_keeps_what_y_depends_on_and_drops_planted_noise(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 9))
    x[:, 8] = 0.5  # constant
    # y depends on inputs 0, 1, 2 (nonlinearly on two of them); 3..7 are pure noise.
    y = np.tanh(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.8 * x[:, 2]
    mask = input_mask(x, "informative", y, seed=seed)
    assert np.flatnonzero(mask).tolist() == [0, 1, 2]
    # Several outputs: the teacher's predicted class (argmax), here set by inputs 0 and 1.
    scores = np.stack([x[:, 0] + x[:, 1], -x[:, 0], 0.3 * x[:, 1] - 0.5], axis=1)
    mask = input_mask(x, "informative", scores, seed=seed)
    assert np.flatnonzero(mask).tolist() == [0, 1]


def test_informative_is_seeded_and_refuses_outputs_that_ignore_the_inputs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 6))
    y = np.sin(x[:, 0]) + x[:, 3]
    a, b = input_mask(x, "informative", y, 7), input_mask(x, "informative", y, 7)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match=r"input mask 'informative'.*--input-mask constant"):
        input_mask(x, "informative", np.full(1500, 0.3), 0)
    with pytest.raises(InputError, match="needs the teacher's outputs"):
        input_mask(x, "informative")


# -- clustering on the masked vectors --------------------------------------------------------

# Four extra inputs that are constant over the queries (one at zero, three not).
CONSTANT = np.array([0.0, 0.5, -1.0, 2.0])
N_STUDENTS = 8
FAST = dict(n_students=N_STUDENTS, finetune=FinetuneSettings(max_iterations=0))


def padded_teacher(activation: str) -> MLP:
    """A 6,4,1 teacher with four constant inputs appended: random weights on them, its bias
    shifted so that it computes the 6-input teacher on the queries."""
    core = synthetic_teacher("6,4,1", activation, seed=3)
    silent = np.random.default_rng(0).normal(size=(4, 4))
    weight = np.concatenate([core.weights[0], silent], axis=1)
    bias = core.biases[0] - silent @ CONSTANT
    return MLP([weight, core.weights[1]], [bias, core.biases[1]], activation)


def queries(n: int, seed: int) -> np.ndarray:
    z = np.random.default_rng(seed).normal(size=(n, 6))
    return np.concatenate([z, np.tile(CONSTANT, (n, 1))], axis=1)


def hand_built_students(teacher: MLP, seed: int = 0):
    """Students that hold the teacher's neurons (up to a little noise, sign flips for tanh,
    positive scales for relu), one of them twice with its outgoing weight split, plus one
    neuron that feeds nothing; each with its own random weights on the constant inputs and
    the bias that compensates, as training leaves them: the data do not determine them."""
    act = teacher.activation
    (w_t, a_t), (b_t, c_t) = teacher.weights, teacher.biases
    weights, biases, outgoing = [], [], []
    for k in range(N_STUDENTS):
        rng = np.random.default_rng(100 * seed + k)
        twice = int(rng.integers(4))
        rows, out = [], []
        for i in [0, 1, 2, 3, twice]:
            silent = rng.normal(size=4)
            w = np.concatenate([w_t[i, :6], silent])
            b = b_t[i] + (w_t[i, 6:] - silent) @ CONSTANT
            sign = rng.choice([-1.0, 1.0]) if act == "tanh" else 1.0
            scale = rng.uniform(0.5, 2.0) if act == "relu" else 1.0
            rows.append(sign * scale * (np.append(w, b) + 1e-4 * rng.normal(size=11)))
            out.append((0.5 if i == twice else 1.0) * sign * a_t[0, i] / scale)
        rows.append(rng.normal(size=11))
        out.append(0.0)
        order = rng.permutation(len(rows))
        rows, out = np.array(rows)[order], np.array(out)[order]
        weights.append(rows[:, :-1])
        biases.append(rows[:, -1])
        outgoing.append(out[None, :])
    return (
        [np.stack(weights), np.stack(outgoing)],
        [np.stack(biases), np.tile(c_t, (N_STUDENTS, 1))],
    )


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_masked_clustering_recovers_the_teacher_that_constant_inputs_hide(activation):
    teacher = padded_teacher(activation)
    weights, biases = hand_built_students(teacher)
    x = queries(1000, 1)
    y = teacher(x)
    losses, failed = np.zeros(N_STUDENTS), np.zeros(N_STUDENTS, dtype=bool)
    x_test = queries(1000, 2)

    masked = reconstruct(
        weights, biases, losses, failed, x, y, activation,
        RecoverySettings(input_mask="constant", **FAST),
    )  # fmt: skip
    assert masked.widths == [4]
    assert kept_angles(masked).max() < 0.1  # the clusters are as tight as the students
    assert masked.diagnostics()["input_mask"] == {"method": "constant", "kept": 6, "total": 10}
    np.testing.assert_array_equal(masked.input_mask, [True] * 6 + [False] * 4)
    # Every input keeps its weight, and the network computes the teacher on the queries.
    assert masked.network.n_inputs == 10
    rmse = np.sqrt(np.mean((masked.network(x_test) - teacher(x_test)) ** 2))
    assert rmse < 1e-3 * teacher(x_test).std()
    metrics = compare_networks(masked.network, teacher, x_test, masked.input_mask, x.mean(0))
    assert metrics["first_layer_angle_deg_masked"]["max"] < 0.1
    # Over all inputs the angles say nothing: the weights on constant inputs are arbitrary.
    assert metrics["first_layer_angle_deg"]["median"] > 10

    # Without the mask the arbitrary weights blur the clusters, and the width is wrong.
    plain = reconstruct(weights, biases, losses, failed, x, y, activation, RecoverySettings(**FAST))
    assert plain.widths != [4]
    assert kept_angles(plain).min() > 20
    assert plain.diagnostics()["input_mask"] == {"method": "none", "kept": 10, "total": 10}
    assert plain.input_mask is None
    assert compare_networks(plain.network, teacher, x_test)["first_layer_angle_deg_masked"] is None


def kept_angles(recovery) -> np.ndarray:
    """The median angles (degrees) inside the first layer's kept clusters."""
    c = recovery.layers[0].clusters
    return c.median_angle_deg[c.kept]


def test_a_mask_that_keeps_every_input_changes_nothing():
    """On queries where every input varies, the constant mask keeps all of them and the
    recovery is bit-identical to the unmasked one."""
    teacher = padded_teacher("relu")
    weights, biases = hand_built_students(teacher)
    x = np.random.default_rng(4).normal(size=(500, 10))
    args = (weights, biases, np.zeros(N_STUDENTS), np.zeros(N_STUDENTS, bool), x, teacher(x))
    plain = reconstruct(*args, "relu", RecoverySettings(**FAST))
    masked = reconstruct(*args, "relu", RecoverySettings(input_mask="constant", **FAST))
    assert masked.input_mask.all()
    for a, b in zip(plain.network.weights + plain.network.biases,
                    masked.network.weights + masked.network.biases, strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_the_mask_is_stored_with_the_recovery(tmp_path):
    teacher = padded_teacher("tanh")
    weights, biases = hand_built_students(teacher)
    x = queries(500, 1)
    args = (weights, biases, np.zeros(N_STUDENTS), np.zeros(N_STUDENTS, bool), x, teacher(x))
    masked = reconstruct(*args, "tanh", RecoverySettings(input_mask="constant", **FAST))
    write_recovery(tmp_path / "masked.zarr", masked)
    np.testing.assert_array_equal(read_input_mask(tmp_path / "masked.zarr"), masked.input_mask)
    plain = reconstruct(*args, "tanh", RecoverySettings(**FAST))
    write_recovery(tmp_path / "plain.zarr", plain)
    assert read_input_mask(tmp_path / "plain.zarr") is None


# -- end to end: trained students, the command line, the metrics ----------------------------


def test_ecluster_recover_with_input_mask_reports_masked_angles(tmp_path):
    """Students trained on queries with four constant inputs: ``--input-mask constant``
    recovers the teacher's width, the first layer's angles over the varying inputs are
    small, and the mask is in the diagnostics, the metrics and the recovery store."""
    teacher = padded_teacher("tanh")
    write_network(tmp_path / "t.zarr", teacher)
    np.save(tmp_path / "q.npy", queries(1250, 1))  # 1000 queries, 250 held out
    out = tmp_path / "run"
    args = ["--students", "8", "--batch-size", "full", "--lr", "0.03", "--max-epochs", "1500"]
    args += ["--dtype", "float64", "--finetune-max-iterations", "100", "--student-widths", "16"]
    files = ["--teacher", str(tmp_path / "t.zarr"), "--queries", f"file:{tmp_path / 'q.npy'}"]
    code = main(["recover", *files, *args, "--input-mask", "constant", "--out", str(out)])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["widths"] == [4]
    assert metrics["input_mask"] == {"method": "constant", "kept": 6, "total": 10}
    assert metrics["first_layer_angle_deg_masked"]["max"] < 1.0
    # Over every input the angles are those of weights the data never determined.
    assert metrics["first_layer_angle_deg"]["median"] > 10
    summary = json.loads((out / "recovery.json").read_text())
    assert summary["diagnostics"]["input_mask"] == metrics["input_mask"]
    np.testing.assert_array_equal(read_input_mask(out / "recovery.zarr"), [True] * 6 + [False] * 4)
