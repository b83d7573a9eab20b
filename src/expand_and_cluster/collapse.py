"""One hidden layer of the cluster phase: canonicalise every student's neurons, cluster
them, choose a representative per kept cluster, and collapse each cluster into one neuron
whose outgoing weights every student's members share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from expand_and_cluster.activations import Symmetry
from expand_and_cluster.cluster import LayerClusters, cluster_layer
from expand_and_cluster.errors import InputError
from expand_and_cluster.students import TrainResult
from expand_and_cluster.symmetry import (
    align_signs,
    canonicalise_neurons,
    masked_neuron_vectors,
    neuron_vectors,
    outgoing_after_flip,
)


@dataclass(eq=False)
class LayerRecovery:
    """What happened at one hidden layer."""

    clusters: LayerClusters
    features: np.ndarray  # canonical vectors of all healthy students' neurons (clustered)
    scales: np.ndarray  # removed scale of each neuron (norms for relu-like classes, else 1)
    student_of: np.ndarray  # student index (into the full ensemble) of each neuron
    representative_student: np.ndarray  # per kept cluster
    width: int  # width after clustering (before pruning)
    retrain: TrainResult | None = None  # retraining of the students after this layer (deep nets)
    # Below the last hidden layer (deep nets): per student, the median over its next layer's
    # neurons of the fraction of their pre-activations' variance the projection leaves out.
    projection_residual: list[float] | None = None
    # Even+linear classes below the last hidden layer: neurons (of `width`) turned to the
    # orientation the next layer needs (orient_for_next_layer).
    flipped_for_next_layer: list[int] = field(default_factory=list)
    pruned: list[int] = field(default_factory=list)  # neurons (of `width`) pruned at this layer
    # Even+linear classes: what the collapse left out (see collapse_layer); None otherwise.
    linear_dropped_by_collapse: dict | None = None
    # Pruned neurons (of `width`) that only a linear function of the layer's input explains:
    # at the last hidden layer the input-to-output skip term absorbs it, below it the
    # pruning drops it (expand_and_cluster.prune.prune_network).
    linear_absorbed_by_skip: list[int] = field(default_factory=list)
    linear_dropped_by_pruning: list[int] = field(default_factory=list)
    # With an input mask (first layer): the full vectors [w; b] divided by the same scales,
    # which the collapse takes as incoming vectors (``features`` hold the masked part only).
    incoming: np.ndarray | None = None
    input_mask: np.ndarray | None = None  # the inputs the clustering compared (first layer)


def cluster_students_layer(
    weight: np.ndarray,
    bias: np.ndarray,
    losses: np.ndarray,
    student_ids: np.ndarray,
    n_total: int,
    symmetry: Symmetry,
    gamma: float,
    beta_deg: float,
    cut_rule: str,
    input_mask: np.ndarray | None = None,
    input_mean: np.ndarray | None = None,
) -> LayerRecovery:
    """Cluster one hidden layer of the healthy students.

    ``weight`` is ``(N, out, in)`` and ``bias`` ``(N, out)`` for the N healthy students,
    ``losses`` their final losses, ``student_ids`` each one's index in the full ensemble,
    and ``n_total`` the number of students trained, failed ones included (gamma is a
    fraction of these).

    With ``input_mask`` (boolean, one per input; the first layer), the neurons are
    clustered on the canonical form of their masked vectors
    (:func:`~expand_and_cluster.symmetry.masked_neuron_vectors`, left-out inputs folded into
    the bias at ``input_mean``): weights on left-out inputs are not determined by the data,
    so they would split clusters and, for positive-scaling classes, make students' scales
    disagree; the scale is the masked vector's norm. The full vectors divided by the same
    scales are kept for the collapse (``incoming``), so the recovered neurons keep a weight
    for every input."""
    n, width = weight.shape[:2]
    vectors = neuron_vectors(weight, bias).reshape(n * width, -1)
    incoming = None
    if input_mask is None:
        features, scales = canonicalise_neurons(vectors, symmetry)
    else:
        if np.shape(input_mask) != (weight.shape[2],):
            raise InputError(
                f"input mask of {np.size(input_mask)} entries for a layer of "
                f"{weight.shape[2]} inputs"
            )
        masked = masked_neuron_vectors(weight, bias, input_mask, input_mean)
        features, scales = canonicalise_neurons(masked.reshape(n * width, -1), symmetry)
        incoming = vectors / scales[:, None]
    local_student = np.repeat(np.arange(n), width)
    clusters = cluster_layer(features, local_student, n_total, symmetry, gamma, beta_deg, cut_rule)
    if len(clusters.kept) == 0:
        raise InputError(
            f"no cluster passed the filters ({clusters.summary()}): the students did not agree "
            "on any neuron; train longer, lower gamma or raise beta"
        )
    # Each cluster's neuron comes from the lowest-loss student that has a member in it.
    representative = np.array(
        [min(local_student[clusters.members[c]], key=lambda s: losses[s]) for c in clusters.kept]
    )
    return LayerRecovery(
        clusters=clusters,
        features=features,
        scales=scales,
        student_of=student_ids[local_student],
        representative_student=student_ids[representative],
        width=len(clusters.kept),
        incoming=incoming,
        input_mask=None if input_mask is None else np.asarray(input_mask, dtype=bool),
    )


def collapse_layer(
    rec: LayerRecovery,
    next_weight: np.ndarray,
    student_ids: np.ndarray,
    symmetry: Symmetry,
    slope: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One neuron per kept cluster: the representative student's member (averaged over its
    duplicates, signs aligned) as incoming vector; for every student, the sum of its
    members' outgoing weights (scale and sign undone) as its outgoing weights.

    For even+linear classes (``f(-z) = f(z) - 2 m z``, ``m = slope``) a member flipped
    against its representative leaves ``-2 m a z`` out (``a`` its outgoing weights): a
    linear function of the layer's input that, at the last hidden layer, the skip term
    makes up for. (Below it, the reconstruction replaces these outgoing weights by
    :func:`project_next_layer`, which leaves nothing out.) How much was left out is recorded in
    ``rec.linear_dropped_by_collapse``: the flipped members, and per student the norm of
    the linear map left out relative to the norm of the student's collapsed outgoing weights.

    With an input mask (``rec.incoming``), signs are aligned on the masked vectors that were
    clustered and the incoming vector is the representative's full ``[w; b]`` (every input's
    weight), divided by the same scale.

    Returns ``(weight (K, in), bias (K,), next weights (N, next, K), next-bias shift (N, next))``.
    """
    n, n_next, width = next_weight.shape
    local_student = np.searchsorted(student_ids, rec.student_of)
    unit_index = np.tile(np.arange(width), n)
    kept = rec.clusters.kept
    vectors = rec.features if rec.incoming is None else rec.incoming
    incoming = np.empty((len(kept), vectors.shape[1]))
    out_weights = np.zeros((n, n_next, len(kept)))
    shift = np.zeros((n, n_next))
    dropped = np.zeros((n, n_next, vectors.shape[1]))
    n_flipped = 0
    for slot, (c, rep) in enumerate(zip(kept, rec.representative_student, strict=True)):
        members = rec.clusters.members[c]
        students = local_student[members]
        own = rec.student_of[members] == rep
        signs = align_signs(rec.features[members], rec.features[members[own][0]], symmetry)
        incoming[slot] = (vectors[members[own]] * signs[own, None]).mean(axis=0)
        outgoing = next_weight[students, :, unit_index[members]] * rec.scales[members, None]
        flipped, bias_shift = outgoing_after_flip(outgoing, signs, symmetry)
        np.add.at(out_weights[:, :, slot], students, flipped)
        np.add.at(shift, students, bias_shift)
        if symmetry.needs_linear_term:
            flip = signs < 0
            n_flipped += int(flip.sum())
            lost = -2 * slope * outgoing[flip, :, None] * incoming[slot][None, None, :]
            np.add.at(dropped, students[flip], lost)
    if symmetry.needs_linear_term:
        size = np.linalg.norm(dropped.reshape(n, -1), axis=1)
        size /= np.maximum(np.linalg.norm(out_weights.reshape(n, -1), axis=1), 1e-300)
        rec.linear_dropped_by_collapse = {
            "flipped_members": n_flipped,
            "relative_size_per_student": [float(v) for v in size],
        }
    return incoming[:, :-1], incoming[:, -1], out_weights, shift


def project_next_layer(
    shared: np.ndarray,
    student_pre_activations: list[np.ndarray],
    precision: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Every student's next layer expressed in the shared reconstructed layer: the least-
    squares weights and bias that map ``shared`` (samples, K: the reconstructed layer's
    activations on the queries) to each student's own next-layer pre-activations (samples,
    next), computed with the student's original layers.

    A student that implements the unknown network has, for each of that network's neurons
    in the next layer, a pre-activation that is a combination of the unknown network's
    neurons below (which the reconstructed layer holds) and a constant, whatever the student
    does with its own excess neurons (duplicates, mirrored pairs of even+linear activations
    with the linear part carried by neurons held in their linear range): the projection
    recovers it exactly and, unlike summing the members' outgoing weights, leaves out
    nothing a retraining has to make up for.

    Combinations of the reconstructed neurons that change their output by less than
    ``precision`` (relative; the students' own error) are left out of the fit (a truncated
    least squares on normalised columns): the students cannot determine them, and each
    student would otherwise take a different arbitrary amount of them, which splits its
    clusters (measured, leaky_relu 8,5,4,2 seed 0: two excess first-layer neurons, both in
    their linear range, are one such combination, singular value 1e-6 of the largest; with
    it, one of the teacher's layer-2 neurons split into clusters too small to keep, width
    [5, 3]; without it, exact at 0.00 degrees).

    Returns ``(weights (N, next, K), biases (N, next), residual per student)``: the residual
    is the median over the student's next-layer neurons of the fraction of a pre-activation's
    variance left unexplained (large for the student's own excess neurons)."""
    targets = np.concatenate(student_pre_activations, axis=1)
    coef, unexplained = _truncated_fit(shared, targets, precision)
    n_next = student_pre_activations[0].shape[1]
    coef = coef.reshape(len(coef), len(student_pre_activations), n_next)
    weights = np.transpose(coef[:-1], (1, 2, 0))
    residual = [float(np.median(r)) for r in unexplained.reshape(-1, n_next)]
    return weights, coef[-1], residual


def orient_for_next_layer(
    pre_activations: np.ndarray,
    student_pre_activations: list[np.ndarray],
    activation: Callable[[np.ndarray], np.ndarray],
    precision: float = 0.0,
) -> np.ndarray:
    """Even+linear classes below the last hidden layer: the orientation (sign of ``[w; b]``)
    of each reconstructed neuron that lets the next layer be a plain combination of them.

    ``f(-z) = f(z) - 2 m z``: a neuron taken in the orientation opposite to the unknown
    network's (the representative student's own choice) leaves a linear function of the
    layer's input in the next layer's pre-activations, which no weight on the neurons can
    fit and a plain MLP has no place for. Measured (leaky_relu 8,5,4,3,2 seed 0): one of
    five first-layer neurons mirrored; its students' next layers projected onto it left
    their errors high, layer 2 clustered into 4 neurons (one kept by only 5 of 10 students)
    and the mirrored neuron was then pruned, width [4, 4, 4] for [5, 4, 3].

    ``pre_activations`` are the reconstructed neurons' (samples, K); the students' next
    layers as in :func:`project_next_layer`. A neuron is flipped when that lowers what the
    projection leaves unexplained (summed over every student's next-layer neurons), one
    neuron at a time until no flip helps. Returns the signs (K,), 1 or -1."""
    targets = np.concatenate(student_pre_activations, axis=1)
    signs = np.ones(pre_activations.shape[1])

    def unexplained(trial: np.ndarray) -> float:
        return float(
            np.sum(_truncated_fit(activation(pre_activations * trial), targets, precision)[1])
        )

    # A flip must lower the sum by more than the students' own error can (precision**2 per
    # target), so that a neuron the next layer does not use keeps its orientation.
    tolerance = targets.shape[1] * max(precision**2, float(np.finfo(np.float64).eps))
    best = unexplained(signs)
    improved = True
    while improved:
        improved = False
        for k in range(len(signs)):
            trial = signs.copy()
            trial[k] = -trial[k]
            value = unexplained(trial)
            if value < best - tolerance:
                signs, best, improved = trial, value, True
    return signs


def _truncated_fit(
    shared: np.ndarray, targets: np.ndarray, precision: float
) -> tuple[np.ndarray, np.ndarray]:
    """Least squares of ``targets`` on ``shared`` and a constant, leaving out combinations
    of normalised columns below ``precision`` (see :func:`project_next_layer`). Returns the
    coefficients (K + 1, targets; the constant's last) and each target's unexplained
    fraction of its variance."""
    design = np.concatenate([shared, np.ones((len(shared), 1))], axis=1)
    scale = np.linalg.norm(design, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    cutoff = max(precision, np.finfo(np.float64).eps * max(design.shape))
    coef, *_ = np.linalg.lstsq(design / scale, targets, rcond=cutoff)
    coef /= scale[:, None]
    unexplained = np.mean((design @ coef - targets) ** 2, axis=0)
    unexplained /= np.maximum(np.var(targets, axis=0), 1e-300)
    return coef, unexplained
