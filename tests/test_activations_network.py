"""Activations, their symmetry identities, the MLP type and its Zarr round trip."""

import numpy as np
import pytest
import torch

from expand_and_cluster.activations import ACTIVATIONS, Symmetry, get_activation
from expand_and_cluster.errors import InputError
from expand_and_cluster.network import MLP, torch_forward
from expand_and_cluster.store import read_network, write_network
from expand_and_cluster.teachers import synthetic_teacher

Z = np.linspace(-4, 4, 101)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_numpy_and_torch_agree(name):
    act = get_activation(name)
    np.testing.assert_allclose(
        act.numpy(Z), act.torch(torch.tensor(Z)).numpy(), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_symmetry_class_identity_holds(name):
    act = get_activation(name)
    f = act.numpy
    sym = act.symmetry
    if sym is Symmetry.ODD:
        np.testing.assert_allclose(f(-Z), -f(Z), atol=1e-12)
    elif sym is Symmetry.ODD_CONSTANT:
        np.testing.assert_allclose(f(-Z), 1 - f(Z), atol=1e-12)
    elif sym.needs_linear_term:
        # f(z) - f(-z) is linear in z (slope 1, or 1 - slope for leaky_relu).
        slope = np.polyfit(Z, f(Z) - f(-Z), 1)[0]
        np.testing.assert_allclose(f(Z) - f(-Z), slope * Z, atol=1e-9)
        if sym.has_positive_scaling:
            np.testing.assert_allclose(f(3.0 * Z), 3.0 * f(Z), atol=1e-12)
    else:
        assert sym is Symmetry.NONE and name == "g"
        assert not np.allclose(f(-Z), -f(Z)) and not np.allclose(f(-Z), 1 - f(Z))


def test_unknown_activation_lists_valid_names():
    with pytest.raises(
        ValueError, match="relu, leaky_relu, sigmoid, tanh, softplus, gelu, silu, g"
    ):
        get_activation("swish")


def test_forward_numpy_matches_torch_with_skip(rng):
    net = MLP(
        [rng.normal(size=(5, 3)), rng.normal(size=(4, 5)), rng.normal(size=(2, 4))],
        [rng.normal(size=5), rng.normal(size=4), rng.normal(size=2)],
        "gelu",
        skip_weight=rng.normal(size=(2, 3)),
    )
    x = rng.normal(size=(7, 3))
    expected = torch_forward(net.torch_parameters(), torch.tensor(x), "gelu").numpy()
    np.testing.assert_allclose(net(x), expected, rtol=1e-12)
    assert net.widths == [3, 5, 4, 2] and net.hidden_widths == [5, 4]


def test_mlp_rejects_mismatched_shapes(rng):
    with pytest.raises(InputError, match="layer 1"):
        MLP([rng.normal(size=(5, 3)), rng.normal(size=(2, 4))], [np.zeros(5), np.zeros(2)], "tanh")
    net = MLP(
        [rng.normal(size=(5, 3)), rng.normal(size=(2, 5))], [np.zeros(5), np.zeros(2)], "tanh"
    )
    with pytest.raises(InputError, match=r"inputs must be \(samples, 3\)"):
        net(np.zeros((4, 4)))


def test_network_store_round_trip(tmp_path, rng):
    net = MLP(
        [rng.normal(size=(4, 6)), rng.normal(size=(1, 4))],
        [rng.normal(size=4), rng.normal(size=1)],
        "relu",
        rng.normal(size=(1, 6)),
    )
    write_network(tmp_path / "n.zarr", net, {"seed": 3})
    back = read_network(tmp_path / "n.zarr")
    assert back.activation == "relu" and back.widths == [6, 4, 1]
    for a, b in zip(
        net.weights + net.biases + [net.skip_weight],
        back.weights + back.biases + [back.skip_weight],
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sizes", ["6,5,1", "8,6,6,2", "4,3,3"])
@pytest.mark.parametrize("name", ["tanh", "relu", "sigmoid", "g"])
def test_synthetic_teacher_neurons_all_matter(sizes, name):
    teacher = synthetic_teacher(sizes, name, seed=5)
    assert teacher.widths == [int(s) for s in sizes.split(",")]
    x = np.random.default_rng(0).standard_normal((4000, teacher.n_inputs))
    h = x
    for w, b in zip(teacher.weights[:-1], teacher.biases[:-1], strict=True):
        pre = h @ w.T + b
        # Every neuron's pre-activation varies by 1 to 2 standard deviations around a
        # mean within half a standard deviation of 0: none is dead or saturated.
        assert np.all((pre.std(0) > 0.9) & (pre.std(0) < 2.2))
        assert np.all(np.abs(pre.mean(0)) < 0.6 * pre.std(0))
        vec = np.concatenate([w, b[:, None]], 1)
        unit = vec / np.linalg.norm(vec, axis=1, keepdims=True)
        cos = np.abs(unit @ unit.T)[np.triu_indices(len(vec), 1)]
        assert np.all(cos < np.cos(np.radians(30)))
        h = get_activation(name).numpy(pre)
    assert np.all(np.abs(teacher.weights[-1]) >= 0.5)
    np.testing.assert_array_equal(
        teacher.weights[0], synthetic_teacher(sizes, name, seed=5).weights[0]
    )
    assert not np.array_equal(teacher.weights[0], synthetic_teacher(sizes, name, seed=6).weights[0])
