"""Even+linear activations (relu, leaky_relu, gelu, silu, softplus) in deep networks.

``f(z) = e(z) + m z`` with ``e`` even, so a pair of neurons ``f(z), f(-z)`` carries the
linear term ``2 m z``. The pruning hands such a term to the input-to-output skip term at
the last hidden layer; below it the network has no place for one: the students' next layer
is projected on the reconstructed one, which needs none, or (after a retraining) the
pruning drops it (issue 16)."""

import time

import numpy as np
import pytest

from expand_and_cluster import RecoverySettings, TrainSettings, recover
from expand_and_cluster import prune as prune_module
from expand_and_cluster.activations import get_activation, linear_slope
from expand_and_cluster.collapse import orient_for_next_layer, project_next_layer
from expand_and_cluster.data import sample_inputs
from expand_and_cluster.evaluate import compare_networks, linear_terms
from expand_and_cluster.finetune import FinetuneResult, FinetuneSettings
from expand_and_cluster.network import MLP
from expand_and_cluster.prune import _drop_one_rise, greedy_prune, prune_network
from expand_and_cluster.teachers import synthetic_teacher


def _layer(rng, n_in, n_out):
    return rng.standard_normal((n_out, n_in)), 0.5 * rng.standard_normal(n_out)


def test_linear_slope_of_each_even_linear_activation():
    for name in ("relu", "softplus", "gelu", "silu"):
        assert linear_slope(name) == pytest.approx(0.5)
    assert linear_slope("leaky_relu") == pytest.approx((1 + 0.01) / 2)


def test_drop_one_rise_is_zero_for_an_exact_duplicate():
    """A planted duplicate relu neuron (a positive multiple of another): the pseudo-inverse
    formula reported a rise of half the target variance; the ridge fit reports ~0."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 6))
    w, b = _layer(rng, 6, 4)
    h = np.maximum(np.concatenate([x @ w.T + b, 2 * (x @ w[:1].T + b[:1])], axis=1), 0)
    y = h @ rng.standard_normal((3, 5)).T
    design = np.concatenate([h, np.ones((len(h), 1))], axis=1)
    rise = _drop_one_rise(design, y)[:5] / np.var(y, axis=0).sum()
    assert rise[0] < 1e-8 and rise[4] < 1e-8
    assert rise[1:4].min() > 1e-3
    assert len(greedy_prune(design, y, 5, 1e-4)) == 1


def _pair_network(activation, rng, deep):
    """Hidden layer 1: four neurons plus the flip of neuron 0 (a linear pair)."""
    w1, b1 = _layer(rng, 6, 4)
    w1, b1 = np.vstack([w1, -w1[:1]]), np.concatenate([b1, -b1[:1]])
    if deep:
        w2, b2 = _layer(rng, 5, 3)
        return MLP([w1, w2, rng.standard_normal((2, 3))], [b1, b2, np.zeros(2)], activation)
    return MLP([w1, rng.standard_normal((2, 5))], [b1, np.zeros(2)], activation)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "silu", "softplus"])
def test_linear_term_below_the_last_layer_is_dropped_and_reported(activation):
    """Below the last hidden layer the network has no place for a linear term: a pair
    f(z), f(-z) planted in layer 1 loses one neuron, its linear part is dropped (not spread
    over the other neurons: they keep their exact outgoing weights) and reported."""
    rng = np.random.default_rng(1)
    net = _pair_network(activation, rng, deep=True)
    x = rng.standard_normal((4000, 6))
    pruned_net, pruned, linear = prune_network(net, x, net(x), 1e-4)
    pair = [i for i in pruned[0] if i in (0, 4)]
    assert len(pair) == 1 and linear[0] == pair and pruned[1] == [] and linear[1] == []
    kept = [i for i in range(5) if i not in pruned[0]]
    others = [k for k, i in enumerate(kept) if i not in (0, 4)]
    np.testing.assert_allclose(
        pruned_net.weights[1][:, others], net.weights[1][:, [kept[k] for k in others]], atol=1e-8
    )


def test_always_active_neuron_in_a_lower_layer_is_dropped():
    """The students' way of carrying a linear term: a relu neuron active on every query
    (linear on the data). It goes, and the teacher-like neurons keep their weights."""
    rng = np.random.default_rng(4)
    w1, b1 = _layer(rng, 6, 4)
    w1, b1 = np.vstack([w1, 0.3 * w1[1]]), np.concatenate([b1, [50.0]])
    w2, b2 = _layer(rng, 5, 3)
    net = MLP([w1, w2, rng.standard_normal((2, 3))], [b1, b2, np.zeros(2)], "relu")
    x = rng.standard_normal((4000, 6))
    _, pruned, linear = prune_network(net, x, net(x), 1e-4)
    assert pruned == [[4], []] and linear == [[4], []]


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "silu", "softplus"])
def test_linear_pair_at_the_last_layer_goes_to_the_skip_term(activation):
    """At the last hidden layer of a shallow network the skip term takes the linear term:
    one neuron of the pair goes, the skip term appears, the function is unchanged, and the
    neuron is reported as absorbed."""
    rng = np.random.default_rng(2)
    net = _pair_network(activation, rng, deep=False)
    x = rng.standard_normal((4000, 6))
    pruned_net, pruned, linear = prune_network(net, x, net(x), 1e-4)
    pair = [i for i in pruned[0] if i in (0, 4)]
    assert len(pair) == 1 and pair[0] in linear[0] and set(linear[0]) <= set(pruned[0])
    assert pruned_net.skip_weight is not None
    _assert_same_function(pruned_net, net, x)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "silu", "softplus"])
def test_a_linear_pair_above_the_first_layer_is_folded_into_one_neuron(activation):
    """A layer-2 teacher neuron held as its mirror ``f(-z)`` plus a neuron ``f(z + 100)``
    that is linear on the queries (with slope 1) and carries the linear part: ``f(z) =
    f(-z) + 2 m z``. This is relu 8,5,4,2 seed 1's excess neuron. The drop-one test
    cannot remove either (each carries what no other neuron can); the fold makes them
    one neuron, reports it pruned (not as a linear part dropped or given to the skip
    term), and keeps the function."""
    rng = np.random.default_rng(6)
    (w1, b1), (w2, b2) = _layer(rng, 6, 5), _layer(rng, 5, 4)
    w3 = rng.standard_normal((2, 4))
    slope, shift = linear_slope(activation), 100.0
    w2x = np.vstack([w2, w2[1]])
    b2x = np.concatenate([b2, [b2[1] + shift]])
    w2x[1], b2x[1] = -w2[1], -b2[1]
    w3x = np.hstack([w3, 2 * slope * w3[:, 1:2]])
    b3x = -2 * slope * shift * w3[:, 1]
    net = MLP([w1, w2x, w3x], [b1, b2x, b3x], activation)
    teacher = MLP([w1, w2, w3], [b1, b2, np.zeros(2)], activation)
    x = rng.standard_normal((4000, 6))
    np.testing.assert_allclose(net(x), teacher(x), atol=1e-9)
    pruned_net, pruned, linear = prune_network(net, x, net(x), 1e-4)
    assert pruned_net.hidden_widths == [5, 4]
    assert pruned == [[], [4]] and linear == [[], []]
    np.testing.assert_allclose(pruned_net(x), teacher(x), atol=1e-8)


def _assert_same_function(pruned_net, net, x):
    """Within what the pruning tolerates (1e-4 of the output variance), and when nothing
    else was pruned, to rounding."""
    y = net(x)
    assert np.mean((pruned_net(x) - y) ** 2) < 1e-4 * np.var(y, axis=0).sum()


def test_duplicate_in_a_lower_layer_is_pruned_without_changing_the_function():
    rng = np.random.default_rng(3)
    w1, b1 = _layer(rng, 6, 4)
    w1, b1 = np.vstack([w1, 3 * w1[2:3]]), np.concatenate([b1, 3 * b1[2:3]])
    w2, b2 = _layer(rng, 5, 3)
    net = MLP([w1, w2, rng.standard_normal((1, 3))], [b1, b2, np.zeros(1)], "relu")
    x = rng.standard_normal((4000, 6))
    pruned_net, pruned, _ = prune_network(net, x, net(x), 1e-4)
    assert len([i for i in pruned[0] if i in (2, 4)]) == 1
    _assert_same_function(pruned_net, net, x)


def test_drop_one_test_runs_again_after_the_merges(monkeypatch):
    """A fine-tune in the merging step can leave a neuron that the others explain (relu
    8,5,4,3,2 seed 1: two always-active last-layer neurons, 1e-11 of the variance each).
    Here the merge of neuron 1 also turns neuron 3 into a copy of neuron 0: the drop-one
    test that follows removes one of the two, and every removal comes back in the
    numbering of the network given."""
    rng = np.random.default_rng(5)
    w1, b1 = _layer(rng, 3, 5)
    net = MLP([w1, rng.standard_normal((1, 5))], [b1, np.zeros(1)], "tanh")
    x = rng.standard_normal((2000, 3))
    merges = []

    def merge_once(network, result, *_):
        if merges:
            return network, result, [[]]
        merged = network.without_neurons(0, [1])
        merged.weights[0][2], merged.biases[0][2] = network.weights[0][0], network.biases[0][0]
        merges.append(1)
        return merged, result, [[1]]

    monkeypatch.setattr(prune_module, "_prune_with_finetune", merge_once)
    monkeypatch.setattr(
        prune_module, "finetune_network", lambda n, *_: (n, FinetuneResult(0.0, 0.0, 0, 0.0))
    )
    pruned_net, _, pruned, linear = prune_module.prune_and_finetune(
        net, x, net(x), 1e-4, FinetuneSettings()
    )
    assert pruned in ([[0, 1]], [[1, 3]]) and linear == [[]] and pruned_net.hidden_widths == [3]
    kept = [i for i in range(5) if i not in pruned[0]]
    np.testing.assert_array_equal(pruned_net.weights[0][1:], net.weights[0][kept][1:])


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "silu", "softplus"])
def test_projection_recovers_the_next_layer_of_a_student_with_a_linear_pair(activation):
    """A student's layer 1 holds the teacher's neurons, neuron 0 as its mirror ``f(-z)``,
    an excess neuron held in its linear range that carries the linear part ``2 m z`` the
    mirror lacks, and a neuron its layer 2 does not use; its layer 2 computes the teacher's
    pre-activations exactly. Projected on the teacher's layer 1 (the reconstructed one),
    its layer 2 is the teacher's, to rounding, with nothing left unexplained; the collapse
    (summed outgoing weights) would have dropped the linear part."""
    rng = np.random.default_rng(7)
    f = get_activation(activation).numpy
    (w1, b1), (w2, b2) = _layer(rng, 6, 5), _layer(rng, 5, 4)
    m, shift = linear_slope(activation), 100.0
    x = rng.standard_normal((3000, 6))
    z0 = x @ w1[0] + b1[0]
    # f(z0) = f(-z0) + 2 m z0, and z0 = f(z0 + shift) - shift (linear range, slope 1).
    student = np.stack(
        [f(-z0), *f(x @ w1[1:].T + b1[1:]).T, f(z0 + shift), f(x @ w1[2] - b1[0])], axis=1
    )
    w2s = np.hstack([w2, 2 * m * w2[:, :1], np.zeros((4, 1))])
    b2s = b2 - 2 * m * shift * w2[:, 0]
    pre = student @ w2s.T + b2s
    shared = f(x @ w1.T + b1)
    np.testing.assert_allclose(pre, shared @ w2.T + b2, atol=1e-9)
    weights, biases, residual = project_next_layer(shared, [pre, 2 * pre])
    np.testing.assert_allclose(weights[0], w2, atol=1e-8)
    np.testing.assert_allclose(biases[0], b2, atol=1e-8)
    np.testing.assert_allclose(weights[1], 2 * w2, atol=1e-8)
    assert max(residual) < 1e-20


def test_projection_leaves_out_what_the_students_cannot_determine():
    """Two reconstructed neurons in their linear range differ by a combination 1e-7 of the
    largest; two students that compute the same next layer up to their own error (1e-5)
    get next-layer vectors that agree within 0.01 degrees when the projection is told that
    precision, and tens of degrees apart without it (their clusters would split)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 4))
    v = rng.standard_normal(4)
    shared = np.column_stack([np.tanh(x @ rng.standard_normal((4, 3))), x @ v + 10, x @ v + 10])
    shared[:, 4] += 1e-7 * rng.standard_normal(len(x))
    pre = shared[:, :4] @ rng.standard_normal((4, 2))
    students = [pre + 1e-5 * rng.standard_normal(pre.shape) for _ in range(2)]

    def disagreement(precision):
        weights, biases, _ = project_next_layer(shared, students, precision)
        vectors = np.concatenate([weights, biases[:, :, None]], axis=2)
        cos = np.sum(vectors[0] * vectors[1], axis=1) / np.prod(
            np.linalg.norm(vectors, axis=2), axis=0
        )
        return np.degrees(np.arccos(np.clip(cos, -1, 1))).max()

    assert disagreement(1e-5) < 0.01
    assert disagreement(0.0) > 10


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "gelu", "silu", "softplus"])
def test_orientation_turns_mirrored_neurons_back_for_the_next_layer(activation):
    """The reconstructed layer holds the teacher's five neurons, two of them as their
    mirrors ``f(-z)`` (the representative students' own orientation), and a neuron the
    next layer does not use. Two students compute the teacher's next layer. Projected as
    they are, a linear function of the input is left over that no weight can fit; turned
    by orient_for_next_layer, exactly the two mirrors flip, the unused neuron keeps its
    orientation, and the projection gives the teacher's next layer to rounding."""
    rng = np.random.default_rng(11)
    f = get_activation(activation).numpy
    (w1, b1), (w2, b2) = _layer(rng, 6, 5), _layer(rng, 5, 4)
    x = rng.standard_normal((3000, 6))
    unused = rng.standard_normal(7)
    z = np.column_stack([x @ w1.T + b1, x @ unused[:6] + unused[6]])
    representative = np.array([-1.0, 1.0, 1.0, -1.0, 1.0, 1.0])
    pre = f(z[:, :5]) @ w2.T + b2
    students = [pre, 3 * pre]

    _, _, mirrored = project_next_layer(f(z * representative), students)
    assert min(mirrored) > 1e-4
    signs = orient_for_next_layer(z * representative, students, f)
    np.testing.assert_array_equal(signs * representative, [1, 1, 1, 1, 1, 1])
    weights, biases, residual = project_next_layer(f(z * representative * signs), students)
    np.testing.assert_allclose(weights[0], np.hstack([w2, np.zeros((4, 1))]), atol=1e-7)
    np.testing.assert_allclose(biases[1], 3 * b2, atol=1e-7)
    assert max(residual) < 1e-18


# A deep teacher per even+linear symmetry class, recovered exactly (widths exact, every
# angle below 1 degree); 4000 queries, 2000 epochs. relu 5,4,3,1 seed 1 is the case where
# a lower-layer neuron carrying a linear term had to be dropped (before: widths [5, 3]).
# (relu 4,3,2,1 seed 0 is not used: its students disagree, clusters 6-14 degrees wide.)
DEEP = {"even_linear": ("silu", "4,3,2,1", 0), "positive_scaling": ("relu", "5,4,3,1", 1)}
# The relu students stop short (losses up to 1e-3 of the variance): projected alone, their
# network leaves an RMSE of 5e-2 with width [8, 3]; between_layers auto also retrains them.


@pytest.mark.parametrize("case", list(DEEP))
def test_deep_even_linear_teacher_recovered_exactly(case):
    activation, sizes, seed = DEEP[case]
    t0 = time.perf_counter()
    teacher = synthetic_teacher(sizes, activation, seed=seed)
    x = sample_inputs("gaussian", 4000, teacher.n_inputs, seed=seed)
    settings = RecoverySettings(seed=seed, train=TrainSettings(max_epochs=2000))
    recovery, _ = recover(x, teacher, activation, [4 * w for w in teacher.hidden_widths], settings)
    metrics = compare_networks(
        recovery.network,
        teacher,
        sample_inputs("gaussian", 5000, teacher.n_inputs, seed, "held-out"),
    )
    assert metrics["widths"] == metrics["teacher_widths"], (metrics, recovery.diagnostics())
    for layer in metrics["angles_deg"]:
        assert all(a is not None and a < 1.0 for a in layer), metrics
    # The diagnostics say how the next layers were put in the reconstructed basis and what
    # happened to linear terms at every layer: below the last, the next layer was projected
    # (both ways start so; its residual per student is reported) and nothing was dropped.
    diagnostics = recovery.diagnostics()
    between = diagnostics["between_layers"]
    assert set(between["fine_tuned_mse"]) == {"project", "retrain"}
    *lower, last = diagnostics["layers"]
    for layer, rec in zip(lower, recovery.layers, strict=False):
        assert layer["linear_dropped_by_collapse"] is None
        assert len(layer["projection_residual_per_student"]) == settings.n_students
        assert (rec.retrain is not None) == (between["used"] == "retrain")
        assert all(0 <= k < rec.width for k in layer["flipped_for_next_layer"])
    turned = [t["turned_for_next_layer"] for t in linear_terms(diagnostics)]
    assert turned == [layer["flipped_for_next_layer"] for layer in diagnostics["layers"]]
    assert last["linear_dropped_by_collapse"] is not None
    for layer in [*lower, last]:
        assert "linear_absorbed_by_skip" in layer and "linear_dropped_by_pruning" in layer
    print(f"{case}: {time.perf_counter() - t0:.1f} s")
