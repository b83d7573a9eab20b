"""Cluster the neurons of all students in one layer, and decide which clusters are teacher
neurons.

1. Distances between all canonical vectors, through BLAS (sign ignored where the
   activation has the sign symmetry).
2. Average-linkage hierarchical clustering (scipy).
3. The cut: after each merge, count the clusters that hold at least ``ceil(gamma * N)``
   distinct students; cut at the last merge of the first run where that count is largest.
   One pass over the merges, tracking each cluster's students as a bit set.
4. Filters: a cluster is kept if enough distinct students share it and its median pairwise
   angle is at most ``beta``. Every cluster at the cut is reported with its fate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import linkage

from expand_and_cluster.activations import Symmetry
from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng

KEPT = "kept"
TOO_FEW_STUDENTS = "too_few_students"
UNALIGNED = "unaligned"

# Clusters larger than this get their median angle from a fixed random sample of pairs.
_MAX_ANGLE_PAIRS = 200_000


def min_students(gamma: float, n_students: int) -> int:
    """How many distinct students must share a cluster: ``ceil(gamma * N)``, at least 2."""
    if not 0 < gamma <= 1:
        raise InputError(f"gamma must be in (0, 1]; got {gamma}")
    needed = math.ceil(gamma * n_students - 1e-9)
    if needed < 2:
        raise InputError(
            f"gamma * N = {gamma} * {n_students} < 2: a cluster shared by one student says "
            "nothing; raise gamma or train more students"
        )
    return needed


def condensed_distances(features: np.ndarray, sign_invariant: bool, block: int = 2048) -> np.ndarray:
    """Pairwise Euclidean distances in scipy's condensed order, computed blockwise as
    ``|u|^2 + |v|^2 - 2 u.v`` with BLAS. With ``sign_invariant``, ``u.v`` is replaced by
    ``|u.v|``, which gives ``min(|u - v|, |u + v|)``."""
    x = np.ascontiguousarray(features, dtype=np.float64)
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    out = np.empty(n * (n - 1) // 2)
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        gram = x[start:stop] @ x[start:].T
        if sign_invariant:
            np.abs(gram, out=gram)
        d2 = sq[start:stop, None] + sq[None, start:] - 2.0 * gram
        np.maximum(d2, 0.0, out=d2)
        np.sqrt(d2, out=d2)
        for row in range(start, stop):
            offset = row * (2 * n - row - 1) // 2
            local = row - start
            out[offset : offset + n - row - 1] = d2[local, local + 1 :]
    return out


@dataclass
class LayerClusters:
    """The clustering of one layer. Neuron ``i`` belongs to cluster ``labels[i]``; the
    per-cluster arrays are indexed by cluster id ``0..n_clusters-1`` (largest first)."""

    labels: np.ndarray  # (neurons,)
    members: list[np.ndarray]  # neuron indices per cluster
    n_members: np.ndarray
    n_students: np.ndarray  # distinct students per cluster
    median_angle_deg: np.ndarray  # NaN for single-member clusters
    status: np.ndarray  # KEPT, TOO_FEW_STUDENTS or UNALIGNED
    linkage: np.ndarray  # scipy linkage matrix (neurons - 1, 4)
    cut_index: int  # merges 0..cut_index are applied at the cut
    cut_height: float
    big_cluster_counts: np.ndarray  # (neurons - 1,) clusters with enough students after each merge
    min_students: int
    beta_deg: float

    @property
    def kept(self) -> np.ndarray:
        return np.flatnonzero(self.status == KEPT)

    def summary(self) -> dict[str, int]:
        return {s: int((self.status == s).sum()) for s in (KEPT, TOO_FEW_STUDENTS, UNALIGNED)}


def cluster_count_curve(merges: np.ndarray, student_of: np.ndarray, needed: int) -> np.ndarray:
    """After each merge of ``merges`` (a scipy linkage), the number of clusters holding at
    least ``needed`` distinct students. One pass; students of a cluster form a bit set."""
    n = len(student_of)
    students = [1 << int(s) for s in student_of] + [0] * (n - 1)
    counts = np.empty(n - 1, dtype=np.int64)
    count = 0
    for i, (a, b) in enumerate(merges[:, :2].astype(np.int64)):
        merged = students[a] | students[b]
        students[n + i] = merged
        count += (
            (merged.bit_count() >= needed)
            - (students[a].bit_count() >= needed)
            - (students[b].bit_count() >= needed)
        )
        counts[i] = count
    return counts


CUT_RULES = ("gap", "paper")


def choose_cut(counts: np.ndarray, heights: np.ndarray | None = None, rule: str = "gap") -> int:
    """Which merge to cut after, within the first run of merges where ``counts`` is largest.

    ``paper``: the last merge of the run (the paper's rule; it lets neurons that sit
    between clusters join them). ``gap``: the merge followed by the largest relative jump
    in merge height inside the run, i.e. where the clusters are complete and before the
    next, much more distant neurons join (the last merge if the run has one merge)."""
    if rule not in CUT_RULES:
        raise InputError(f"unknown cut rule {rule!r}: choose one of {', '.join(CUT_RULES)}")
    best = counts.max()
    first = int(np.argmax(counts == best))
    below = np.flatnonzero(counts[first:] != best)
    last = first + int(below[0]) - 1 if len(below) else len(counts) - 1
    if rule == "paper" or heights is None or last == first:
        return last
    run = np.maximum(heights[first : last + 2], 1e-300)  # the run plus the merge after it
    return first + int(np.argmax(run[1:] / run[:-1]))


def labels_at_cut(merges: np.ndarray, n: int, cut_index: int) -> np.ndarray:
    """Cluster label (the id of its top merge, or the leaf) of every leaf when merges
    ``0..cut_index`` are applied."""
    label = np.arange(2 * n - 1)
    pairs = merges[: cut_index + 1, :2].astype(np.int64)
    for i in range(cut_index, -1, -1):  # top-down, so each child inherits its root
        a, b = pairs[i]
        label[a] = label[n + i]
        label[b] = label[n + i]
    return label[:n]


def median_pairwise_angle_deg(vectors: np.ndarray, symmetry: Symmetry, seed: int = 0) -> float:
    """Median angle over all pairs of rows (a fixed random sample of pairs for huge
    clusters), sign ignored for classes with the sign symmetry."""
    m = len(vectors)
    if m < 2:
        return float("nan")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    if m * (m - 1) // 2 <= _MAX_ANGLE_PAIRS:
        i, j = np.triu_indices(m, k=1)
    else:
        rng = numpy_rng(seed, "angle-pairs", m)
        i, j = rng.integers(0, m, size=(2, _MAX_ANGLE_PAIRS))
        keep = i != j
        i, j = i[keep], j[keep]
    cos = np.einsum("ij,ij->i", unit[i], unit[j])
    if symmetry.has_sign_flip:
        cos = np.abs(cos)
    return float(np.degrees(np.median(np.arccos(np.clip(cos, -1.0, 1.0)))))


def cluster_layer(
    features: np.ndarray,
    student_of: np.ndarray,
    n_students: int,
    symmetry: Symmetry,
    gamma: float = 0.5,
    beta_deg: float = 60.0,
    cut_rule: str = "gap",
) -> LayerClusters:
    """Cluster canonical neuron vectors ``features`` (neurons, dim); ``student_of`` gives
    each neuron's student (0..n_students-1)."""
    features = np.asarray(features, dtype=np.float64)
    student_of = np.asarray(student_of, dtype=np.int64)
    if features.ndim != 2 or student_of.shape != (len(features),):
        raise InputError(f"features must be (neurons, dim) with one student index each; got {features.shape} and {student_of.shape}")
    if len(features) < 2:
        raise InputError("need at least two neurons to cluster")
    if not np.isfinite(features).all():
        raise InputError("neuron vectors contain NaN or inf: exclude failed students first")
    if not 0 < beta_deg <= 180:
        raise InputError(f"beta must be in (0, 180] degrees; got {beta_deg}")
    needed = min_students(gamma, n_students)
    merges = linkage(condensed_distances(features, symmetry.has_sign_flip), method="average")
    counts = cluster_count_curve(merges, student_of, needed)
    cut = choose_cut(counts, merges[:, 2], cut_rule)
    raw = labels_at_cut(merges, len(features), cut)
    roots, labels, sizes = np.unique(raw, return_inverse=True, return_counts=True)
    order = np.argsort(-sizes, kind="stable")  # largest clusters first
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels = rank[labels]
    members = [np.flatnonzero(labels == c) for c in range(len(roots))]
    n_members = np.array([len(m) for m in members])
    n_distinct = np.array([len(np.unique(student_of[m])) for m in members])
    angles = np.array([median_pairwise_angle_deg(features[m], symmetry) for m in members])
    status = np.where(n_distinct < needed, TOO_FEW_STUDENTS, np.where(angles > beta_deg, UNALIGNED, KEPT))
    return LayerClusters(
        labels=labels,
        members=members,
        n_members=n_members,
        n_students=n_distinct,
        median_angle_deg=angles,
        status=status.astype(str),
        linkage=merges,
        cut_index=cut,
        cut_height=float(merges[cut, 2]),
        big_cluster_counts=counts,
        min_students=needed,
        beta_deg=beta_deg,
    )
