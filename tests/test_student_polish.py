"""Polishing students (batched L-BFGS) and the recovery that calls for it."""

import numpy as np
import pytest

from expand_and_cluster import RecoverySettings, TrainSettings
from expand_and_cluster.data import sample_inputs
from expand_and_cluster.evaluate import compare_networks, recovery_status
from expand_and_cluster.reconstruct import EXACT_FIT, expand, reconstruct
from expand_and_cluster.student_polish import polish_students
from expand_and_cluster.teachers import synthetic_teacher


def _students_near(teacher, n, spread, seed):
    """``n`` copies of ``teacher`` with every weight moved by ``spread`` times noise."""
    rng = np.random.default_rng(seed)
    weights = [
        np.stack([w + spread * rng.standard_normal(w.shape) for _ in range(n)])
        for w in teacher.weights
    ]
    biases = [
        np.stack([b + spread * rng.standard_normal(b.shape) for _ in range(n)])
        for b in teacher.biases
    ]
    return weights, biases


@pytest.mark.parametrize("activation", ["softplus", "tanh"])
def test_polish_takes_students_near_the_teacher_to_it(activation):
    teacher = synthetic_teacher("3,4,2", activation, 0)
    x = sample_inputs("gaussian", 1000, 3, 0, "queries")
    y = teacher(x)
    weights, biases = _students_near(teacher, 4, 0.05, 1)
    start = np.array(
        [np.mean((_student(weights, biases, k, activation)(x) - y) ** 2) for k in range(4)]
    )
    w, b, losses = polish_students(weights, biases, activation, x, y, 400)
    assert start.min() > 1e-4
    assert losses.max() < 1e-12 * np.var(y)
    for k in range(4):
        # The reported loss is the polished student's, and it sits on the teacher.
        np.testing.assert_allclose(
            np.mean((_student(w, b, k, activation)(x) - y) ** 2), losses[k], rtol=1e-6, atol=1e-30
        )
        np.testing.assert_allclose(w[0][k], teacher.weights[0], atol=1e-4)


def test_students_are_polished_independently():
    """A student's polish does not depend on which others are polished with it."""
    teacher = synthetic_teacher("3,4,1", "softplus", 1)
    x = sample_inputs("gaussian", 500, 3, 1, "queries")
    y = teacher(x)
    weights, biases = _students_near(teacher, 3, 0.1, 2)
    together = polish_students(weights, biases, "softplus", x, y, 30)
    alone = polish_students(
        [w[1:2] for w in weights], [b[1:2] for b in biases], "softplus", x, y, 30
    )
    np.testing.assert_allclose(together[0][0][1], alone[0][0][0], rtol=1e-9, atol=1e-12)
    assert together[2][1] == pytest.approx(alone[2][0], rel=1e-9)


def test_a_student_at_the_minimum_stays_there():
    teacher = synthetic_teacher("3,4,1", "tanh", 0)
    x = sample_inputs("gaussian", 500, 3, 0, "queries")
    weights = [w[None] for w in teacher.weights]
    biases = [b[None] for b in teacher.biases]
    w, _, losses = polish_students(weights, biases, "tanh", x, teacher(x), 50)
    np.testing.assert_array_equal(w[0], weights[0])
    assert losses[0] < 1e-28


def _student(weights, biases, k, activation):
    from expand_and_cluster.network import MLP

    return MLP([w[k] for w in weights], [b[k] for b in biases], activation)


def test_recovery_polishes_students_whose_error_hides_a_neuron():
    """softplus 2,2,1 seed 1 (a problem of the suite): with 2 inputs its neurons are nearly
    linear over the queries, and after 700 epochs the students' error (3e-5 of the
    variance) hides what one teacher neuron adds beyond the other (3e-6): the recovery
    keeps one neuron. The fine-tuned network fits better than every student but not
    exactly, so the students are polished and recovered again: exact."""
    teacher = synthetic_teacher("2,2,1", "softplus", 1)
    x = sample_inputs("gaussian", 2000, 2, 1, "queries")
    y = teacher(x)
    train = TrainSettings(lr=3e-3, max_epochs=700, log_every=700, checkpoint_every=700)
    students = expand(x, y, "softplus", [8], 10, train, 0)
    weights, biases = students.students.numpy()
    x_test = sample_inputs("gaussian", 5000, 2, 1, "held-out")
    results = {}
    for iterations in (0, 300):
        settings = RecoverySettings(
            n_students=10, confidence_resamples=0, polish_iterations=iterations
        )
        recovery = reconstruct(
            weights, biases, students.final_loss, students.failed, x, y, "softplus", settings
        )
        results[iterations] = (recovery, compare_networks(recovery.network, teacher, x_test))
    plain, plain_cmp = results[0]
    unexplained = plain.finetune.loss_after / np.var(teacher(x))
    assert EXACT_FIT < unexplained < plain.noise["floor"]
    assert plain.polish is None and recovery_status(plain_cmp, 1.0) == "inexact"
    kept, kept_cmp = results[300]
    assert recovery_status(kept_cmp, 1.0) == "exact"
    assert kept.polish["kept"] and kept.polish["iterations"] == 300
    before, after = kept.polish["student_loss_median"]
    assert after < 1e-3 * before
    assert kept.diagnostics()["student_polish"] == kept.polish
