"""How far to trust each recovered neuron when there is no teacher to compare with.

Four numbers per neuron, each from what the recovery already has:

- support: the fraction of healthy students with a member in the neuron's cluster;
- spread: the median and 90th-percentile angle of the cluster's members to the neuron's
  representative (the vector the recovered neuron started from);
- stability: how often the neuron reappears when the clustering is redone on bootstrap
  resamples of the students (only the clustering is repeated, so this is cheap);
- contribution: how much of the outputs' variance is lost on held-out queries when the
  neuron is removed and what it feeds refitted
  (:func:`expand_and_cluster.prune.neuron_contributions`).

and the flags they raise (:data:`FLAGS`). A flag is a reason to doubt a neuron, not a
verdict: on the synthetic teachers, how well the flags pick out the neurons that match no
teacher neuron is measured over a whole study (README, "How far to trust each recovered
neuron").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from expand_and_cluster.activations import Symmetry
from expand_and_cluster.cluster import cluster_layer
from expand_and_cluster.collapse import LayerRecovery
from expand_and_cluster.evaluate import MATCH_DEG
from expand_and_cluster.network import MLP
from expand_and_cluster.prune import neuron_contributions
from expand_and_cluster.seeding import numpy_rng
from expand_and_cluster.symmetry import align_signs, angle_deg

# The radius of a neuron: how far from its representative another student's neuron may
# lie and still count as support for it, and a resample's cluster as the same neuron. It is
# the 90th-percentile angle of its own members, and at least the angle at which the
# evaluation counts a teacher neuron as recovered.
MIN_RADIUS_DEG = MATCH_DEG
# Fewer students than halfway between the clustering's minimum (gamma) and all of them.
LOW_SUPPORT_FRACTION = 0.5
# A neuron is unstable when it reappears in fewer than three resamples in four (the line
# of clusterwise bootstrap stability for a valid, stable cluster; Hennig 2007, "Cluster-wise
# assessment of cluster stability"): the clustering keeps it by chance of which students
# were trained. A neuron held by exactly the gamma * N students the filter requires
# reappears in about 60% of the resamples (a binomial draw reaches its mean about that
# often); one held by every student, in all of them.
UNSTABLE_BELOW = 0.75
# Two recovered neurons this close (degrees, symmetry-aware) are near duplicates: often a
# pair of student neurons with large, opposite outgoing weights that act as one unit.
NEAR_DUPLICATE_DEG = 5.0

FLAGS = {
    "low_support": "support below halfway between gamma and 1",
    "unstable": f"reappears in fewer than {UNSTABLE_BELOW:.0%} of the bootstrap resamples",
    "negligible": "removing it loses less than the outputs' noise floor on held-out queries",
    "near_duplicate": f"within {NEAR_DUPLICATE_DEG:g} degrees of another recovered neuron",
}


def representative_vectors(
    features: np.ndarray,
    student_of: np.ndarray,
    members: list[np.ndarray],
    representative_student: np.ndarray,
    symmetry: Symmetry,
) -> np.ndarray:
    """Per cluster, the canonical vector its recovered neuron started from: the mean of
    the representative student's members, signs aligned (as the collapse takes it)."""
    vectors = []
    for rows, student in zip(members, representative_student, strict=True):
        own = rows[student_of[rows] == student]
        signs = align_signs(features[own], features[own[0]], symmetry)
        vectors.append((features[own] * signs[:, None]).mean(axis=0))
    return np.array(vectors)


def cluster_spread(
    features: np.ndarray, members: np.ndarray, representative: np.ndarray, symmetry: Symmetry
) -> tuple[float, float]:
    """Median and 90th-percentile angle (degrees) of a cluster's members to its
    representative vector."""
    angles = angle_deg(features[members], representative[None, :], symmetry)
    return float(np.median(angles)), float(np.percentile(angles, 90))


def neuron_members(
    features: np.ndarray,
    members: list[np.ndarray],
    representatives: np.ndarray,
    radius_deg: np.ndarray,
    symmetry: Symmetry,
) -> list[np.ndarray]:
    """For each cluster, the rows of ``features`` that stand for its neuron: its members,
    and any other neuron of the layer within its radius of its representative. A cut can
    split one neuron's members over two clusters a few degrees apart (pruning then merges
    them; measured at expansion 4 on the default study, where such a real neuron's own
    cluster held only 5 to 7 of 10 students)."""
    angles = angle_deg(features[None, :, :], representatives[:, None, :], symmetry)
    return [
        np.union1d(rows, np.flatnonzero(near))
        for rows, near in zip(members, angles <= radius_deg[:, None], strict=True)
    ]


def bootstrap_stability(
    features: np.ndarray,
    student_of: np.ndarray,
    representatives: np.ndarray,
    radius_deg: np.ndarray,
    n_total: int,
    symmetry: Symmetry,
    gamma: float,
    beta_deg: float,
    cut_rule: str,
    resamples: int,
    seed: int,
) -> np.ndarray:
    """For each neuron (its representative vector and radius), the fraction of
    ``resamples`` bootstrap resamples of the students in which it reappears: the resample's
    clustering (the recovery's settings) keeps a cluster whose members lie, in median,
    within the neuron's radius of its representative. Students are drawn as many times as
    there are, with replacement; one drawn twice counts as two.

    Angles rather than shared members decide: at expansion 4 a student holds several
    copies of one neuron, which a resample's cut may spread over a kept cluster and
    clusters of too few students (measured on the default study: real neurons then shared
    half their members with a kept cluster in only 0 to 70% of the resamples)."""
    students = np.unique(student_of)
    rows_of = {s: np.flatnonzero(student_of == s) for s in students}
    rng = numpy_rng(seed, "confidence-bootstrap")
    angles = angle_deg(features[None, :, :], representatives[:, None, :], symmetry)
    found = np.zeros(len(representatives))
    for _ in range(resamples):
        draw = rng.choice(students, size=len(students), replace=True)
        rows = np.concatenate([rows_of[s] for s in draw])
        local = np.repeat(np.arange(len(draw)), [len(rows_of[s]) for s in draw])
        clusters = cluster_layer(
            features[rows], local, n_total, symmetry, gamma, beta_deg, cut_rule
        )
        medians = np.array(
            [np.median(angles[:, rows[clusters.members[c]]], axis=1) for c in clusters.kept]
        ).reshape(len(clusters.kept), len(representatives))
        found += (medians <= radius_deg[None, :]).any(axis=0)
    return found / max(resamples, 1)


def near_duplicates(
    weight: np.ndarray, bias: np.ndarray, symmetry: Symmetry
) -> tuple[np.ndarray, np.ndarray]:
    """Per neuron of a layer, the angle (degrees, symmetry-aware) to the closest other
    neuron of the same layer (inf for a layer of one) and whether it is within
    :data:`NEAR_DUPLICATE_DEG`."""
    vectors = np.concatenate([weight, bias[:, None]], axis=1)
    angles = angle_deg(vectors[:, None, :], vectors[None, :, :], symmetry)
    np.fill_diagonal(angles, np.inf)
    closest = angles.min(axis=1)
    return closest, closest < NEAR_DUPLICATE_DEG


def neuron_flags(
    support: float,
    stability: float | None,
    contribution: float,
    near: bool,
    gamma: float,
    noise_floor: float,
) -> list[str]:
    """The :data:`FLAGS` a neuron raises (stability None: not measured). Every kept
    cluster has support of at least ``gamma``, so support is low below
    ``gamma + LOW_SUPPORT_FRACTION * (1 - gamma)``."""
    flags = []
    if support < gamma + LOW_SUPPORT_FRACTION * (1 - gamma):
        flags.append("low_support")
    if stability is not None and stability < UNSTABLE_BELOW:
        flags.append("unstable")
    if contribution < noise_floor:
        flags.append("negligible")
    if near:
        flags.append("near_duplicate")
    return flags


def flag_summary(confidence: list[list[dict[str, Any]]] | None) -> dict[str, int] | None:
    """How many recovered neurons raise each flag, and how many raise any."""
    if confidence is None:
        return None
    neurons = [n for layer in confidence for n in layer]
    summary = {flag: sum(flag in n["flags"] for n in neurons) for flag in FLAGS}
    return {**summary, "any": sum(bool(n["flags"]) for n in neurons), "neurons": len(neurons)}


def neuron_confidence(
    layers: list[LayerRecovery],
    network: MLP,
    x: np.ndarray,
    y: np.ndarray,
    n_total: int,
    n_healthy: int,
    symmetry: Symmetry,
    clustering: dict[str, Any],
    resamples: int,
    noise_floor: float,
    seed: int,
) -> list[list[dict[str, Any]]]:
    """Per hidden layer, per neuron of the recovered ``network`` (after pruning), its
    confidence numbers and flags as JSON-ready data. ``layers`` are the recovery's
    clusterings (the pruned neurons' clusters are skipped), ``clustering`` the
    ``gamma``, ``beta_deg`` and ``cut_rule`` they used, ``noise_floor`` the outputs' noise floor
    (:func:`expand_and_cluster.prune.noise_floor`): a contribution below it, or below
    what the refits themselves leave unexplained, is negligible."""
    contributions, residual = neuron_contributions(network, x, y, seed)
    negligible_below = max(noise_floor, residual)
    result = []
    for number, rec in enumerate(layers):
        c = rec.clusters
        survivors = np.setdiff1d(np.arange(rec.width), rec.pruned)
        clusters = c.kept[survivors]
        members = [c.members[k] for k in clusters]
        representatives = representative_vectors(
            rec.features, rec.student_of, members, rec.representative_student[survivors], symmetry
        )
        spread = np.array(
            [
                cluster_spread(rec.features, m, r, symmetry)
                for m, r in zip(members, representatives, strict=True)
            ]
        ).reshape(len(clusters), 2)
        radius = np.maximum(spread[:, 1], MIN_RADIUS_DEG)
        own = neuron_members(rec.features, members, representatives, radius, symmetry)
        support = np.array([len(np.unique(rec.student_of[rows])) for rows in own]) / n_healthy
        stability = [None] * len(clusters)
        if resamples:
            local = np.searchsorted(np.unique(rec.student_of), rec.student_of)
            stability = bootstrap_stability(
                rec.features,
                local,
                representatives,
                radius,
                n_total,
                symmetry,
                resamples=resamples,
                seed=seed,
                **clustering,
            ).tolist()
        closest, near = near_duplicates(network.weights[number], network.biases[number], symmetry)
        neurons = []
        for i, k in enumerate(clusters):
            contribution = float(contributions[number][i])
            neurons.append(
                {
                    "neuron": i,
                    "cluster": int(k),
                    "support": float(support[i]),
                    "spread_median_deg": float(spread[i, 0]),
                    "spread_p90_deg": float(spread[i, 1]),
                    "stability": stability[i],
                    "contribution": contribution,
                    "closest_neuron_deg": float(closest[i]) if np.isfinite(closest[i]) else None,
                    "flags": neuron_flags(
                        float(support[i]),
                        stability[i],
                        contribution,
                        bool(near[i]),
                        clustering["gamma"],
                        negligible_below,
                    ),
                }
            )
        result.append(neurons)
    return result
