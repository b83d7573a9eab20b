"""Per-neuron confidence (support, stability, contribution, near duplicates), the noise
floor that sets the pruning threshold, and silent teacher neurons."""

import numpy as np
import pytest

from expand_and_cluster import prune as prune_module
from expand_and_cluster.activations import get_activation
from expand_and_cluster.cluster import cluster_layer
from expand_and_cluster.confidence import (
    MIN_RADIUS_DEG,
    UNSTABLE_BELOW,
    bootstrap_stability,
    cluster_spread,
    near_duplicates,
    neuron_members,
    representative_vectors,
)
from expand_and_cluster.evaluate import (
    EvaluationSettings,
    functional_teacher,
    recovery_labels,
    recovery_metrics,
    silent_neurons,
)
from expand_and_cluster.finetune import FinetuneResult, FinetuneSettings
from expand_and_cluster.network import MLP
from expand_and_cluster.prune import (
    NOISE_FLOOR_FACTOR,
    fit_output_layer,
    neuron_contributions,
    noise_floor,
    prune_network,
    prune_to_noise_floor,
    pruning_threshold,
)
from expand_and_cluster.reconstruct import recovery_summary

TANH = get_activation("tanh").symmetry


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _planted(seed=0):
    """Ten students' canonical vectors (6 dims): neuron A in every student, neuron B in
    students 0-4 only, both tight (0.01 noise); every student also has two random ones,
    orthogonal to A and B."""
    rng = np.random.default_rng(seed)
    a, b = np.eye(6)[:2]
    features, students = [], []
    for s in range(10):
        rows = [a, b] if s < 5 else [a]
        others = rng.standard_normal((2, 6))
        others[:, :2] = 0
        rows = [*rows, *_unit(others)]
        features += [r + 0.01 * rng.standard_normal(6) for r in rows]
        students += [s] * len(rows)
    return np.array(features), np.array(students), a, b


def _cluster_of(features, clusters, vector):
    """The kept cluster whose members lie closest to ``vector``."""
    cos = np.abs(_unit(features) @ vector)
    return max(clusters.kept, key=lambda c: np.median(cos[clusters.members[c]]))


def test_support_counts_the_students_holding_a_neuron():
    """A neuron in every student has support 1, one in half of them 0.5."""
    features, students, a, b = _planted()
    clusters = cluster_layer(features, students, 10, TANH, gamma=0.3)
    members = [clusters.members[_cluster_of(features, clusters, v)] for v in (a, b)]
    reps = representative_vectors(
        features, students, members, np.array([students[m[0]] for m in members]), TANH
    )
    own = neuron_members(features, members, reps, np.array([10.0, 10.0]), TANH)
    support = [len(np.unique(students[rows])) / 10 for rows in own]
    np.testing.assert_allclose(support, [1.0, 0.5])


def _with_junk(seed):
    """Neuron A (tight) in all 10 students; junk in students 5-9 only (exactly the
    gamma * N = 5 that the filter requires), scattered about 20 degrees around one
    direction."""
    rng = np.random.default_rng(seed)
    a, junk = np.eye(6)[:2]
    features, students = [], []
    for s in range(10):
        features.append(a + 0.01 * rng.standard_normal(6))
        students.append(s)
        if s >= 5:
            features.append(_unit(junk + 0.4 * _unit(rng.standard_normal(6))))
            students.append(s)
    return np.array(features), np.array(students), a, junk


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_junk_cluster_is_unstable_and_a_real_one_stable(seed):
    """The junk cluster is kept, but a resample of the students holds 5 of its students
    only about 60% of the time (binomial), and its scattered members do not always form a
    kept cluster when it does; the real neuron reappears in every resample."""
    features, students, a, junk = _with_junk(seed)
    clusters = cluster_layer(features, students, 10, TANH, gamma=0.5)
    found = [_cluster_of(features, clusters, v) for v in (a, junk)]
    assert [clusters.n_students[c] for c in found] == [10, 5]
    members = [clusters.members[c] for c in found]
    reps = representative_vectors(
        features, students, members, np.array([students[m[0]] for m in members]), TANH
    )
    spread = [cluster_spread(features, m, r, TANH)[1] for m, r in zip(members, reps, strict=True)]
    radius = np.maximum(spread, MIN_RADIUS_DEG)
    stability = bootstrap_stability(
        features, students, reps, radius, 10, TANH, 0.5, 60.0, "gap", 100, 0
    )
    assert stability[0] >= 0.95
    assert stability[1] < UNSTABLE_BELOW


def test_a_neuron_split_over_two_clusters_stays_stable():
    """The cut can split one neuron's members over two clusters (seed 0 does): counted
    with the neurons within its radius, it still has support 1 and reappears."""
    features, students, a, _ = _with_junk(0)
    clusters = cluster_layer(features, students, 10, TANH, gamma=0.5)
    halves = [c for c in clusters.kept if np.abs(features[clusters.members[c]] @ a).min() > 0.9]
    assert len(halves) == 2
    members = [clusters.members[halves[0]]]
    reps = representative_vectors(features, students, members, students[members[0][:1]], TANH)
    own = neuron_members(features, members, reps, np.array([10.0]), TANH)
    assert len(np.unique(students[own[0]])) == 10
    stability = bootstrap_stability(
        features, students, reps, np.array([10.0]), 10, TANH, 0.5, 60.0, "gap", 100, 0
    )
    assert stability[0] >= 0.95


def test_near_duplicates():
    w = np.array([[1.0, 0.0], [np.cos(0.03), np.sin(0.03)], [0.0, 1.0]])
    closest, near = near_duplicates(w, np.zeros(3), TANH)
    np.testing.assert_allclose(closest[:2], np.degrees(0.03) / np.sqrt(1), rtol=1e-6)
    assert near.tolist() == [True, True, False]


def _independent_teacher(out_weights):
    """y = sum_i a_i tanh(x_i): neuron i's contribution is a_i^2 / sum a^2 exactly (the
    inputs are independent, so no other neuron can stand in for it)."""
    k = len(out_weights)
    return MLP([np.eye(k), np.array([out_weights])], [np.zeros(k), np.zeros(1)], "tanh")


def test_contributions_are_each_neurons_share_of_the_variance():
    a = np.array([1.0, 0.5, 0.0])
    teacher = _independent_teacher(a)
    x = np.random.default_rng(0).standard_normal((20000, 3))
    (contributions,), residual = neuron_contributions(teacher, x, teacher(x))
    np.testing.assert_allclose(contributions, a**2 / np.sum(a**2), rtol=0.05, atol=1e-12)
    assert residual < 1e-25


def test_noise_floor_and_pruning_threshold():
    y = np.random.default_rng(0).standard_normal((1000, 2)) * [1.0, 2.0]
    variance = np.sum(np.var(y, axis=0))
    # Students' losses are means over outputs: 1e-6 of each output's mean variance; the
    # best student sets the floor (stuck students do not raise it).
    floor = noise_floor(y, np.array([3e-6, 2e-6, np.inf, 1e-3]) * variance / 2)
    assert floor == pytest.approx(2e-6)
    assert pruning_threshold(floor, "noise_floor", 1e-4) == pytest.approx(NOISE_FLOOR_FACTOR * 2e-6)
    assert pruning_threshold(1.0, "noise_floor", 1e-4) == 1e-4  # capped
    assert pruning_threshold(floor, "fixed", 1e-4) == 1e-4
    assert noise_floor(np.ones((10, 1)), np.array([0.1])) == np.inf


def test_a_small_real_neuron_survives_exact_outputs():
    """A neuron explaining 3e-5 of the variance (the wine teacher had one at 6e-5): pruned
    at the fixed 1e-4, kept when the threshold follows students that fit to 1e-7."""
    teacher = _independent_teacher(np.array([1.0, 0.8, np.sqrt(3e-5 * 1.64)]))
    x = np.random.default_rng(0).standard_normal((5000, 3))
    y = teacher(x)
    network, _ = fit_output_layer(teacher.weights[:1], teacher.biases[:1], "tanh", x, y)
    floor = noise_floor(y, np.full(10, 1e-7 * np.var(y)))
    _, kept, _ = prune_network(network, x, y, pruning_threshold(floor, "noise_floor", 1e-4))
    _, fixed, _ = prune_network(network, x, y, pruning_threshold(floor, "fixed", 1e-4))
    assert kept == [[]]
    assert fixed == [[2]]


def test_pruning_is_redone_at_the_noise_floor_when_it_removed_something_real():
    teacher = _independent_teacher(np.array([1.0, 0.8, np.sqrt(3e-5 * 1.64)]))
    x = np.random.default_rng(0).standard_normal((3000, 3))
    y = teacher(x)
    network, _ = fit_output_layer(teacher.weights[:1], teacher.biases[:1], "tanh", x, y)
    settings = FinetuneSettings(max_iterations=200)
    floor = 1e-7  # students that fit the outputs to 1e-7 of their variance
    (kept, result, pruned, _), used = prune_to_noise_floor(
        network, x, y, 1e-4, floor, "noise_floor", settings
    )
    assert (kept.hidden_widths, pruned, used) == ([3], [[]], pytest.approx(1e-6))
    assert result.loss_after < 1e-20
    (fixed, _, pruned, _), used = prune_to_noise_floor(
        network, x, y, 1e-4, floor, "fixed", settings
    )
    assert (fixed.hidden_widths, pruned, used) == ([2], [[2]], 1e-4)


def test_pruning_is_not_redone_when_the_floor_leaves_the_threshold_where_it_was(monkeypatch):
    """A first pruning that removed 3 neurons and left 2e-4 of the variance unexplained is
    redone at the noise floor of students at 1e-7, but not of students at 1e-3: their
    threshold is capped at min_explained_variance, so a re-run could only repeat it."""
    y = np.random.default_rng(0).standard_normal((100, 1))
    variance = float(np.var(y))
    calls = []

    def first_pruning(network, x, y, threshold, finetune, merge_tolerance=None, resolution=0):
        calls.append(threshold)
        result = FinetuneResult(1.0, 2e-4 * variance, 10, 0.0)
        return network, result, [[0, 1, 2]], [[]]

    monkeypatch.setattr(prune_module, "prune_and_finetune", first_pruning)
    settings = FinetuneSettings(max_iterations=200)
    for floor, thresholds in ((1e-7, [1e-4, 1e-6]), (1e-3, [1e-4])):
        calls.clear()
        prune_to_noise_floor(None, y, y, 1e-4, floor, "noise_floor", settings)
        assert calls == pytest.approx(thresholds)


def test_a_merge_removes_one_of_two_near_duplicates_within_the_students_resolution(
    monkeypatch,
):
    """The suite's relu 32,4,1 seed 0 at expansion 4 kept two neurons 2.6 degrees apart for
    one teacher neuron. Here neurons 0 and 3 are 1 degree apart and share an outgoing
    weight; neuron 2 is real but small. The trial removal is one of the pair, and a
    stand-in fine-tuning fits it to 1e-12 (far above twice the 1e-30 before): kept when
    the students fit only to 1e-10, refused when they fit exactly."""
    rng = np.random.default_rng(2)
    w, b = rng.standard_normal((3, 4)), 0.5 * rng.standard_normal(3)
    tilt = np.radians(1.0)
    twin = np.cos(tilt) * np.append(w[0], b[0]) + np.sin(tilt) * np.append(w[1], b[1])
    net = MLP(
        [np.vstack([w, twin[:4]]), np.array([[0.5, -1.0, 0.2, 0.5]])],
        [np.append(b, twin[4]), np.zeros(1)],
        "relu",
    )
    x = rng.standard_normal((500, 4))
    y = net(x)

    def stand_in(network, *_, **__):
        rows = np.concatenate([network.weights[0], network.biases[0][:, None]], axis=1)
        kept = [any(np.allclose(r, np.append(w[k], b[k])) for r in rows) for k in range(3)]
        one_of_pair = kept[0] or any(np.allclose(r, twin) for r in rows)
        loss = 1e-12 if kept[1] and kept[2] and one_of_pair else 1e-2
        return network, FinetuneResult(1.0, loss, 1, 0.0)

    monkeypatch.setattr(prune_module, "finetune_network", stand_in)
    before = FinetuneResult(1.0, 1e-30, 1, 0.0)
    merge = prune_module._prune_with_finetune
    merged, result, removed = merge(net, before, x, y, 1e-4, FinetuneSettings(), 1e-10)
    assert merged.hidden_widths == [3] and removed in ([[0]], [[3]])
    assert result.loss_after == 1e-12
    exact, _, removed = merge(net, before, x, y, 1e-4, FinetuneSettings(), 0.0)
    assert exact.hidden_widths == [4] and removed == [[]]


def test_merges_are_held_to_the_fit_before_the_first_merge_not_to_the_last(monkeypatch):
    """The MNIST study's deep teacher lost neurons in a chain of merges, each within twice
    the loss of the one before (6.0e-3 up to 3.6e-2). Here a stand-in fine-tuning fits
    each removal 1.6 times worse than one neuron more: the first merge is kept (1.6e-12
    against 1e-12 before), the second refused (2.56e-12 is over twice 1e-12, though
    within twice the 1.6e-12 of the first merge)."""
    rng = np.random.default_rng(3)
    w1, b1 = rng.standard_normal((4, 3)), rng.standard_normal(4)
    net = MLP([w1, rng.standard_normal((1, 4))], [b1, np.zeros(1)], "tanh")
    x = rng.standard_normal((500, 3))
    tried = []

    def stand_in(network, *_, **__):
        tried.append(network.hidden_widths[0])
        loss = 1e-12 * 1.6 ** (4 - network.hidden_widths[0])
        return network, FinetuneResult(1.0, loss, 1, 0.0)

    monkeypatch.setattr(prune_module, "finetune_network", stand_in)
    before = FinetuneResult(1.0, 1e-12, 1, 0.0)
    merge = prune_module._prune_with_finetune
    merged, result, removed = merge(net, before, x, net(x), 1e-4, FinetuneSettings())
    assert merged.hidden_widths == [3] and len(removed[0]) == 1
    assert result.loss_after == pytest.approx(1.6e-12) and tried == [3, 2]
    # The bound is the best fit before the merges, also when it is given apart.
    tried.clear()
    again = merge(net, before, x, net(x), 1e-4, FinetuneSettings(), 0.0, 0.7e-12)[0]
    assert again.hidden_widths == [4] and tried == [3]


def test_a_zero_output_teacher_neuron_is_silent_and_the_functional_width_exact():
    teacher = _independent_teacher(np.array([1.0, 0.7, 0.0, 0.4]))
    x = np.random.default_rng(0).standard_normal((2000, 4))
    silent, contribution = silent_neurons(teacher, x, error_fraction=0.0)
    assert silent == [[2]]
    assert abs(contribution[0][2]) < 1e-20
    assert min(contribution[0][i] for i in (0, 1, 3)) > 0.05
    # An exact recovery of what the outputs can tell: the three neurons that speak.
    recovered = functional_teacher(teacher, silent)
    labels = recovery_labels("t", "synthetic", "tanh", [4, 4, 1], 4.0, 0.5, 60.0)
    summary = {**recovery_summary(labels, 10, None, None), "status": "ok", "diagnostics": None}
    metrics = recovery_metrics(
        summary,
        teacher,
        recovered,
        np.full(10, 1e-8),
        np.zeros(10, bool),
        [16],
        x,
        teacher(x),
        x,
        EvaluationSettings(),
    )
    assert metrics["silent_neurons"] == [[2]]
    assert metrics["teacher_widths"] == [4]
    assert metrics["teacher_widths_functional"] == [3]
    assert metrics["status"] == "inexact"  # nominally one neuron short
    assert metrics["exact_widths_functional"] is True
    assert metrics["status_functional"] == "exact"


def test_noisy_outputs_raise_the_silence_floor():
    """With outputs 1e-3 of their variance off, a neuron explaining 1e-5 is silent."""
    teacher = _independent_teacher(np.array([1.0, np.sqrt(1e-5 * 1.0)]))
    x = np.random.default_rng(0).standard_normal((4000, 2))
    assert silent_neurons(teacher, x, error_fraction=0.0)[0] == [[]]
    assert silent_neurons(teacher, x, error_fraction=1e-3)[0] == [[1]]
