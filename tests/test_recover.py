"""End to end: synthetic teachers recovered from their outputs on Gaussian queries."""

import numpy as np
import pytest

from expand_and_cluster import ACTIVATIONS, RecoverySettings, TrainSettings, recover
from expand_and_cluster.data import sample_inputs
from expand_and_cluster.evaluate import (
    EvaluationSettings,
    compare_networks,
    recovery_labels,
    recovery_metrics,
)
from expand_and_cluster.network import MLP
from expand_and_cluster.reconstruct import reconstruct, recovery_summary, teacher_outputs
from expand_and_cluster.teachers import synthetic_teacher

# Small but honest: 4000 queries, 10 students 4x wider than the teacher, 1000 epochs.
QUERIES = 4000
SETTINGS = dict(train=TrainSettings(max_epochs=1000))


def run(teacher: MLP, seed: int = 0, **overrides):
    x = sample_inputs("gaussian", QUERIES, teacher.n_inputs, seed=seed)
    settings = RecoverySettings(seed=seed, **{**SETTINGS, **overrides})
    recovery, students = recover(
        x, teacher, teacher.activation, [4 * w for w in teacher.hidden_widths], settings
    )
    metrics = compare_networks(
        recovery.network,
        teacher,
        sample_inputs("gaussian", 5000, teacher.n_inputs, seed, "held-out"),
    )
    return recovery, students, metrics


def assert_exact(metrics, max_angle=1.0):
    assert metrics["widths"] == metrics["teacher_widths"], metrics
    for layer in metrics["angles_deg"]:
        assert all(a is not None and a < max_angle for a in layer), metrics
    assert (
        metrics["missing"] == [0] * len(metrics["widths"])
        and metrics["excess"] == metrics["missing"]
    )


# One teacher per activation, 4 to 6 inputs and 3 to 5 hidden neurons.
SHAPES = {
    "relu": "4,3,1",
    "leaky_relu": "5,4,1",
    "sigmoid": "6,5,1",
    "tanh": "4,4,1",
    "softplus": "5,3,1",
    "gelu": "6,4,1",
    "silu": "4,5,1",
    "g": "5,5,1",
}


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_each_activation_recovers_width_and_angles(activation):
    teacher = synthetic_teacher(SHAPES[activation], activation, seed=11)
    recovery, students, metrics = run(teacher)
    assert_exact(metrics)
    assert metrics["rmse"] < 1e-2 * np.std(
        teacher(sample_inputs("gaussian", 2000, teacher.n_inputs, 0))
    )
    # Nothing dropped silently: every clustered neuron is in one reported cluster.
    clusters = recovery.layers[0].clusters
    assert clusters.n_members.sum() == students.students.n_students * 4 * teacher.hidden_widths[0]


def test_deep_teacher_both_widths_exact():
    # Deep students learn more slowly: the library's default budget, not the shortened one.
    teacher = synthetic_teacher("5,4,3,1", "tanh", seed=2)
    recovery, students, metrics = run(teacher, train=TrainSettings(), retrain=TrainSettings())
    assert_exact(metrics)
    # Both ways between layers were tried (auto), and layer 2 was clustered in the
    # reconstructed basis of layer 1 that the kept one reports.
    between = recovery.diagnostics()["between_layers"]
    assert set(between["fine_tuned_mse"]) == {"project", "retrain"}
    assert recovery.layers[0].projection_residual is not None
    assert (recovery.layers[0].retrain is not None) == (between["used"] == "retrain")
    # The paper's collapse (kept for comparison) on the same students: retrained from the
    # summed outgoing weights, nothing projected; it recovers this teacher too.
    x = sample_inputs("gaussian", QUERIES, teacher.n_inputs, seed=0)
    weights, biases = students.students.numpy()
    collapsed = reconstruct(
        weights,
        biases,
        students.final_loss,
        students.failed,
        x,
        teacher_outputs(teacher, x),
        "tanh",
        RecoverySettings(between_layers="collapse", **SETTINGS, retrain=TrainSettings()),
    )
    assert_exact(
        compare_networks(
            collapsed.network,
            teacher,
            sample_inputs("gaussian", 5000, teacher.n_inputs, 0, "held-out"),
        )
    )
    assert collapsed.diagnostics()["between_layers"]["used"] == "collapse"
    assert collapsed.layers[0].projection_residual is None
    assert collapsed.layers[0].retrain is not None


def test_multi_output_teacher():
    teacher = synthetic_teacher("5,4,3", "g", seed=4)
    _, _, metrics = run(teacher)
    assert_exact(metrics)


def test_neuron_with_zero_first_input_weight_is_recovered():
    teacher = synthetic_teacher("4,4,1", "sigmoid", seed=7)
    teacher.weights[0][1, 0] = 0.0  # the reference code's canonical coordinate
    _, _, metrics = run(teacher)
    assert_exact(metrics)


def test_even_linear_skip_term_single_output():
    """A softplus teacher plus a linear term from input to output, one output: the skip
    term is fitted by least squares and fine-tuned with the network."""
    teacher = synthetic_teacher("4,3,1", "softplus", seed=8)
    teacher.skip_weight = np.array([[0.7, -0.4, 0.2, 0.5]])
    recovery, _, metrics = run(teacher)
    assert_exact(metrics)
    assert recovery.network.skip_weight.shape == (1, 4)
    assert metrics["rmse"] < 1e-3


def test_same_seed_same_result_and_other_seed_differs():
    teacher = synthetic_teacher("4,3,1", "tanh", seed=1)
    fast = dict(n_students=4, train=TrainSettings(max_epochs=20, dtype="float64"))
    x = sample_inputs("gaussian", 500, 4, 0)
    a, sa = recover(
        x, teacher, "tanh", [6], RecoverySettings(seed=3, min_explained_variance=0, **fast)
    )
    b, sb = recover(
        x, teacher, "tanh", [6], RecoverySettings(seed=3, min_explained_variance=0, **fast)
    )
    _c, sc = recover(
        x, teacher, "tanh", [6], RecoverySettings(seed=4, min_explained_variance=0, **fast)
    )
    np.testing.assert_array_equal(sa.final_loss, sb.final_loss)
    for wa, wb in zip(a.network.weights, b.network.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(sa.final_loss, sc.final_loss)


def test_finetune_stops_when_a_block_of_iterations_barely_improves_or_at_the_budget():
    """min_improvement: L-BFGS stops after the first block of log_every iterations that
    lowers the loss by less than that fraction; the default goes on while it moves, and
    never past max_iterations."""
    from expand_and_cluster.finetune import FinetuneSettings, finetune_network

    rng = np.random.default_rng(0)
    teacher = synthetic_teacher("3,4,1", "tanh", 0)
    x = rng.normal(size=(200, 3))
    start = MLP(
        [w + 0.3 * rng.normal(size=w.shape) for w in teacher.weights],
        [b + 0.3 * rng.normal(size=b.shape) for b in teacher.biases],
        "tanh",
    )
    base = {"max_iterations": 200, "log_every": 10}
    _, patient = finetune_network(start, x, teacher(x), FinetuneSettings(**base))
    _, hasty = finetune_network(
        start, x, teacher(x), FinetuneSettings(**base, min_improvement=0.999)
    )
    assert hasty.iterations % 10 == 0 and hasty.loss_after < hasty.loss_before
    assert patient.iterations > hasty.iterations and patient.loss_after < hasty.loss_after
    # A budget that is not a multiple of log_every: the last block stops at the budget.
    _, capped = finetune_network(
        start, x, teacher(x), FinetuneSettings(max_iterations=25, log_every=10)
    )
    assert capped.iterations == 25 and patient.loss_after < capped.loss_after < capped.loss_before


def test_a_zero_output_teacher_neuron_is_silent_and_the_functional_width_exact():
    """A teacher neuron whose outgoing weight is 0 cannot be seen in the outputs: the
    students hold the other three, the recovery has width 3, and the evaluation reports the
    neuron silent, the functional width exact and the functional status exact, while the
    nominal status stays inexact (no real loss hidden)."""
    teacher = synthetic_teacher("4,4,1", "tanh", seed=3)
    teacher.weights[1][0, 2] = 0.0
    recovery, students, _ = run(teacher)
    x = sample_inputs("gaussian", QUERIES, teacher.n_inputs, seed=0)
    summary = recovery_summary(
        recovery_labels("t", "synthetic", "tanh", [4, 4, 1], 4.0, 0.5, 60.0),
        10,
        recovery,
        None,
    )
    metrics = recovery_metrics(
        summary,
        teacher,
        recovery.network,
        students.final_loss,
        students.failed,
        [16],
        x,
        teacher(x),
        sample_inputs("gaussian", 5000, teacher.n_inputs, 0, "held-out"),
        EvaluationSettings(),
    )
    assert metrics["silent_neurons"] == [[2]]
    assert (metrics["widths"], metrics["teacher_widths_functional"]) == ([3], [3])
    assert metrics["status"] == "inexact"
    assert metrics["status_functional"] == "exact"
    # Every recovered neuron is real and none is flagged.
    assert all(not n["flags"] for n in metrics["neuron_confidence"][0])
