"""Compare a recovered network with the teacher, neuron by neuron and layer by layer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from expand_and_cluster.activations import Symmetry, get_activation
from expand_and_cluster.network import MLP
from expand_and_cluster.symmetry import angle_deg, neuron_vectors

# A teacher neuron counts as recovered when its match is within this angle.
MATCH_DEG = 10.0


@dataclass
class LayerComparison:
    teacher_width: int
    recovered_width: int
    angles_deg: list[float | None]  # per teacher neuron; None where missing
    missing: int  # teacher neurons without a match within MATCH_DEG
    excess: int  # recovered neurons that match no teacher neuron


def compare_networks(recovered: MLP, teacher: MLP, x_test: np.ndarray) -> dict:
    """Per hidden layer: widths, angles between each teacher neuron's ``[w; b]`` and its
    one-to-one match (Hungarian assignment on angles, symmetry-aware), missing and excess
    neurons; and the RMSE of the recovered network against the teacher on ``x_test``.

    Deeper layers are compared after mapping the recovered network's previous-layer
    neurons onto the teacher's (permutation, sign and scale of the previous match)."""
    if recovered.activation != teacher.activation:
        raise ValueError(f"activations differ: {recovered.activation} vs {teacher.activation}")
    if len(recovered.hidden_widths) != len(teacher.hidden_widths):
        raise ValueError("recovered and teacher networks have different numbers of hidden layers")
    symmetry = get_activation(teacher.activation).symmetry
    layers: list[LayerComparison] = []
    # column_map: recovered previous-layer unit j ~ factor[j] * teacher unit target[j]
    target = np.arange(teacher.n_inputs)
    factor = np.ones(teacher.n_inputs)
    for t_w, t_b, r_w, r_b in zip(
        teacher.weights[:-1],
        teacher.biases[:-1],
        recovered.weights[:-1],
        recovered.biases[:-1],
        strict=True,
    ):
        mapped_w = np.zeros((r_w.shape[0], t_w.shape[1]))
        mapped_b = r_b.copy()
        for j in range(r_w.shape[1]):
            if target[j] < 0:
                continue
            mapped_w[:, target[j]] += r_w[:, j] * factor[j]
            if symmetry is Symmetry.ODD_CONSTANT and factor[j] < 0:
                mapped_b += r_w[:, j]
        t_vec, r_vec = neuron_vectors(t_w, t_b), neuron_vectors(mapped_w, mapped_b)
        angles = angle_deg(t_vec[:, None, :], r_vec[None, :, :], symmetry)
        rows, cols = linear_sum_assignment(angles)
        per_teacher: list[float | None] = [None] * len(t_vec)
        next_target = np.full(len(r_vec), -1)
        next_factor = np.ones(len(r_vec))
        for i, j in zip(rows, cols, strict=True):
            if angles[i, j] > MATCH_DEG:
                continue
            per_teacher[i] = float(angles[i, j])
            next_target[j] = i
            cos_sign = np.sign(t_vec[i] @ r_vec[j]) or 1.0
            scale = (
                np.linalg.norm(r_vec[j]) / np.linalg.norm(t_vec[i])
                if symmetry.has_positive_scaling
                else 1.0
            )
            next_factor[j] = (cos_sign if symmetry.flips_outgoing else 1.0) * scale
        matched = sum(a is not None for a in per_teacher)
        layers.append(
            LayerComparison(
                len(t_vec), len(r_vec), per_teacher, len(t_vec) - matched, len(r_vec) - matched
            )
        )
        target, factor = next_target, next_factor
    rmse = float(np.sqrt(np.mean((recovered(x_test) - teacher(x_test)) ** 2)))
    return {
        "widths": recovered.hidden_widths,
        "teacher_widths": teacher.hidden_widths,
        "angles_deg": [c.angles_deg for c in layers],
        "missing": [c.missing for c in layers],
        "excess": [c.excess for c in layers],
        "rmse": rmse,
        "exact_widths": recovered.hidden_widths == teacher.hidden_widths,
    }
