"""The ease-of-identifiability axis, the success-rate table and the ease figure, on planted
metrics; and the per-student angles to the teacher that the axis is computed from."""

from __future__ import annotations

import numpy as np
import pytest

from expand_and_cluster.evaluate import MATCH_DEG, student_teacher_angles
from expand_and_cluster.figures import ease_figure
from expand_and_cluster.identifiability import Ease, ease, ease_rows, success_rows
from expand_and_cluster.teachers import synthetic_teacher


def test_ease_is_the_support_of_the_hardest_teacher_neuron():
    # 4 students x 2 teacher neurons; the third student failed in training.
    angles = [[1.0, 5.0], [2.0, 50.0], None, [3.0, MATCH_DEG]]
    score = ease(angles)
    assert score.support == pytest.approx(0.5)  # neuron 1: students 0 and 3
    assert score.mean_support == pytest.approx((3 / 4 + 2 / 4) / 2)
    # An unassigned teacher neuron (a student narrower than the teacher) is not held.
    assert ease([[1.0, None], [1.0, 2.0]]).support == pytest.approx(0.5)
    assert ease([None, None]) == Ease(0.0, 0.0)
    assert ease(None) == Ease(None, None)


def test_student_teacher_angles_see_through_the_symmetries():
    teacher = synthetic_teacher("4,3,1", "tanh", 0)
    w0, b0 = teacher.weights[0], teacher.biases[0]
    order = [2, 0, 1]
    # Student 0: the teacher with its neurons permuted and one sign-flipped (tanh is odd);
    # student 1: random; student 2: failed.
    flip = np.array([1.0, -1.0, 1.0])[:, None]
    first = np.stack([w0[order] * flip, np.random.default_rng(0).normal(size=w0.shape), w0])
    first_b = np.stack([b0[order] * flip[:, 0], np.zeros(3), b0])
    out = np.stack([teacher.weights[1]] * 3)
    out_b = np.stack([teacher.biases[1]] * 3)
    angles = student_teacher_angles(
        teacher, [first, out], [first_b, out_b], np.array([False, False, True])
    )
    assert np.allclose(angles[0], 0.0, atol=1e-6)
    assert max(angles[1]) > MATCH_DEG
    assert angles[2] is None


def test_student_teacher_angles_over_the_input_mask():
    """A student that differs from the teacher only in its weights on an input the mask
    leaves out (a pixel constant over the queries) holds the teacher exactly over the mask."""
    teacher = synthetic_teacher("4,3,1", "tanh", 0)
    first = teacher.weights[0].copy()
    first[:, 3] += 0.5
    args = ([first[None], teacher.weights[1][None]], [b[None] for b in teacher.biases])
    mask = np.array([True, True, True, False])
    everywhere = student_teacher_angles(teacher, *args, np.array([False]))
    masked = student_teacher_angles(teacher, *args, np.array([False]), mask, np.zeros(4))
    assert min(everywhere[0]) > 5.0
    assert np.allclose(masked[0], 0.0, atol=1e-6)


def _metrics(teacher, activation, expansion, status, angles):
    return {
        "teacher": teacher,
        "kind": "synthetic",
        "activation": activation,
        "sizes": [4, 2, 1],
        "expansion": expansion,
        "recovery_id": "g0.5-b60",
        "gamma": 0.5,
        "beta_deg": 60,
        "status": status,
        "angles_deg": [[0.1, 0.2]] if status != "failed" else None,
        "student_teacher_angles_deg": angles,
    }


EASY = [[1.0, 1.0]] * 4
HARD = [[1.0, 40.0]] * 3 + [[1.0, 2.0]]
NEVER = [[50.0, 60.0]] * 4
METRICS = [
    _metrics("tanh-a", "tanh", 1, "exact", EASY),
    _metrics("tanh-a", "tanh", 4, "exact", None),
    _metrics("relu-b", "relu", 1, "inexact", HARD),
    _metrics("relu-b", "relu", 4, "exact", None),
    _metrics("relu-c", "relu", 1, "failed", NEVER),
    _metrics("relu-c", "relu", 4, "approximate", None),
]


def test_ease_rows_order_the_problems_and_show_every_expansion():
    rows, columns = ease_rows(METRICS)
    assert columns[-2:] == ("status_x1", "status_x4")
    assert [r["teacher"] for r in rows] == ["tanh-a", "relu-b", "relu-c"]
    assert [r["ease"] for r in rows] == ["1.00", "0.25", "0.00"]
    assert rows[1]["mean_support"] == "0.62"
    assert [r["status_x4"] for r in rows] == ["exact", "exact", "approximate"]


def test_success_rows_count_and_percent_per_activation_and_overall():
    rows = {(r["expansion"], r["activation"]): r for r in success_rows(METRICS)}
    overall = rows[("4", "all")]
    assert overall["problems"] == "3"
    assert (overall["exact"], overall["exact_pct"]) == ("2", "66.7")
    assert (overall["approximate"], overall["approximate_pct"]) == ("1", "33.3")
    relu = rows[("1", "relu")]
    assert (relu["inexact"], relu["failed"], relu["failed_pct"]) == ("1", "1", "50.0")
    # "all" follows the activations of each expansion.
    keys = list(rows)
    assert keys.index(("1", "all")) == keys.index(("1", "tanh")) + 1


def test_ease_figure_draws_three_panels():
    fig = ease_figure(METRICS)
    top, middle, bottom = fig.axes
    assert len(top.collections) == 2  # one marker set per activation
    assert [t.get_text() for t in middle.get_yticklabels()] == ["x1", "x4"]
    assert len(bottom.lines) == 2 + 1  # one distribution per expansion, and the 1-degree line
