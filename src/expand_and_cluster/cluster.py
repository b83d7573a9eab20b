"""Cluster the neurons of all students in one layer, and decide which clusters are teacher
neurons.

1. Distances between all canonical vectors, through BLAS (sign ignored where the
   activation has the sign symmetry).
2. Average-linkage hierarchical clustering: scipy's nearest-neighbour-chain algorithm,
   bit for bit, on a square distance matrix (see ``_average_linkage``).
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

from expand_and_cluster.activations import Symmetry
from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng

KEPT = "kept"
TOO_FEW_STUDENTS = "too_few_students"
UNALIGNED = "unaligned"

# Clusters larger than this get their median angle from a fixed random sample of pairs.
_MAX_ANGLE_PAIRS = 200_000
# Rows per block of the distance computation: small enough that the elementwise passes over
# a block (rows x neurons) mostly hit the cache (a fifth less time than 2048 at n = 8,000).
_DISTANCE_BLOCK_ROWS = 512


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


def _distance_blocks(
    x: np.ndarray, sign_invariant: bool, block: int, into: np.ndarray | None = None
):
    """Yield ``(start, stop, d)`` for row blocks: ``d[i - start, j - start]`` is the distance
    between rows ``i`` (``start <= i < stop``) and ``j`` (``j >= start``), meaningful for
    ``j > i``. ``d`` is ``into[start:stop, start:]`` when ``into`` (n, n) is given, else a
    new array."""
    n = len(x)
    sq = np.einsum("ij,ij->i", x, x)
    buf = np.empty(min(block, n) * n)
    for start in range(0, n - 1, block):
        stop = min(start + block, n)
        out = None if into is None else into[start:stop, start:]
        gram = np.matmul(x[start:stop], x[start:].T, out=out)
        if sign_invariant:
            np.abs(gram, out=gram)
        # (|u|^2 + |v|^2) - 2 u.v: the same operations as the plain expression, in place.
        total = buf[: gram.size].reshape(gram.shape)
        np.add(sq[start:stop, None], sq[None, start:], out=total)
        np.multiply(gram, 2.0, out=gram)
        np.subtract(total, gram, out=gram)
        np.maximum(gram, 0.0, out=gram)
        np.sqrt(gram, out=gram)
        yield start, stop, gram


def condensed_distances(
    features: np.ndarray, sign_invariant: bool, block: int = _DISTANCE_BLOCK_ROWS
) -> np.ndarray:
    """Pairwise Euclidean distances in scipy's condensed order, computed blockwise as
    ``|u|^2 + |v|^2 - 2 u.v`` with BLAS. With ``sign_invariant``, ``u.v`` is replaced by
    ``|u.v|``, which gives ``min(|u - v|, |u + v|)``."""
    x = np.ascontiguousarray(features, dtype=np.float64)
    n = len(x)
    out = np.empty(n * (n - 1) // 2)
    for start, stop, d in _distance_blocks(x, sign_invariant, block):
        offset = start * (2 * n - start - 1) // 2  # the block's rows follow one another
        for local in range(stop - start):
            length = n - start - local - 1
            out[offset : offset + length] = d[local, local + 1 :]
            offset += length
    return out


def _square_distances(
    features: np.ndarray, sign_invariant: bool, block: int = _DISTANCE_BLOCK_ROWS
) -> np.ndarray:
    """The values of :func:`condensed_distances` as a symmetric ``(n, n)`` matrix with
    ``+inf`` on the diagonal (the input of :func:`_average_linkage`)."""
    x = np.ascontiguousarray(features, dtype=np.float64)
    n = len(x)
    out = np.empty((n, n))
    for _ in _distance_blocks(x, sign_invariant, block, into=out):
        pass
    # Copy the upper triangle (the condensed values) onto the lower one, in tiles small
    # enough for the transposed reads to stay in cache.
    tile = 256
    for i in range(0, n, tile):
        ie = min(i + tile, n)
        diagonal = out[i:ie, i:ie]
        np.copyto(diagonal, diagonal.T.copy(), where=np.tri(ie - i, k=-1, dtype=bool))
        for j in range(ie, n, tile):
            je = min(j + tile, n)
            out[j:je, i:ie] = out[i:ie, j:je].T
    np.fill_diagonal(out, np.inf)
    return out


def _average_linkage(dist: np.ndarray) -> np.ndarray:
    """scipy's average linkage (``linkage(condensed, "average")``), bit for bit, from a
    square distance matrix with +inf on the diagonal, which it overwrites.

    The same nearest-neighbour-chain algorithm as scipy's ``nn_chain`` (the same ties, the
    same update ``(n_x d_xi + n_y d_yi) / (n_x + n_y)``), but with rows of a square matrix
    so that every scan and update is a vectorised operation over contiguous memory:
    - a dropped cluster's column is not cleared; a scan that lands on one clears the dropped
      entries of that row and scans again;
    - the matrix is compacted (dropped rows and columns removed, order kept) whenever half
      of its clusters are gone.
    """
    n = len(dist)
    merges = np.empty((n - 1, 4))
    if n < 2:
        return merges
    size = [1] * n  # by original index; 0 once dropped
    slot = list(range(n))  # compact position -> original index, increasing
    pos = list(range(n))  # original index -> compact position (for live clusters)
    m = n  # compact size
    live = n
    first = 0  # lowest live original index
    tmp = np.empty(n)
    dead = np.zeros(n, dtype=bool)  # by compact position
    chain: list[int] = []
    inf, multiply, add, divide = np.inf, np.multiply, np.add, np.divide
    for k in range(n - 1):
        if not chain:
            while size[first] == 0:
                first += 1
            chain.append(first)
        while True:
            x = chain[-1]
            row = dist[pos[x], :m]
            j = row.argmin()
            if not size[slot[j]]:  # a dropped cluster's stale entry: clear them all, scan again
                np.putmask(row, dead[:m], inf)
                j = row.argmin()
            best = row[j]
            if len(chain) > 1:
                prev = chain[-2]
                d_prev = row[pos[prev]]
                if not best < d_prev:  # scipy keeps the previous chain element on ties
                    y, best = prev, d_prev
                    break
            y = slot[j]
            chain.append(y)
        del chain[-2:]
        if x > y:
            x, y = y, x
        nx, ny = size[x], size[y]
        merges[k] = (x, y, best, nx + ny)
        size[x] = 0
        size[y] = nx + ny
        live -= 1
        cx, cy = pos[x], pos[y]
        dead[cx] = True
        rx, ry = dist[cx, :m], dist[cy, :m]
        t = tmp[:m]
        multiply(rx, nx, out=t)
        multiply(ry, ny, out=ry)
        add(t, ry, out=ry)
        divide(ry, nx + ny, out=ry)  # inf on the diagonal and at x: both rows hold inf there
        dist[:m, cy] = ry
        if live <= m // 2 and m > 256:
            keep = np.array([c for c in range(m) if size[slot[c]]])
            # Row chunks in increasing order: rows written never lie after rows still read.
            for lo in range(0, len(keep), 256):
                rows = keep[lo : lo + 256]
                dist[lo : lo + len(rows), : len(keep)] = dist[np.ix_(rows, keep)]
            slot = [slot[c] for c in keep.tolist()]
            m = len(keep)
            dead[:m] = False
            for c, s in enumerate(slot):
                pos[s] = c
    order = np.argsort(merges[:, 2], kind="mergesort")
    merges = merges[order]
    _relabel(merges, n)
    return merges


def _relabel(merges: np.ndarray, n: int) -> None:
    """scipy's ``label``: cluster ids in merge order, sizes, smaller id first."""
    parent = list(range(2 * n - 1))
    sizes = [1] * (2 * n - 1)
    pairs = merges[:, :2].astype(np.int64).tolist()
    for i, (a, b) in enumerate(pairs):
        ra = a
        while parent[ra] != ra:
            ra = parent[ra]
        while parent[a] != ra:
            parent[a], a = ra, parent[a]
        rb = b
        while parent[rb] != rb:
            rb = parent[rb]
        while parent[b] != rb:
            parent[b], b = rb, parent[b]
        if ra > rb:
            ra, rb = rb, ra
        new = n + i
        parent[ra] = parent[rb] = new
        sizes[new] = sizes[ra] + sizes[rb]
        merges[i, 0], merges[i, 1], merges[i, 3] = ra, rb, sizes[new]


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


def median_pairwise_angle_deg(vectors: np.ndarray, symmetry: Symmetry) -> float:
    """Median angle over all pairs of rows (a fixed random sample of pairs for huge
    clusters), sign ignored for classes with the sign symmetry."""
    m = len(vectors)
    if m < 2:
        return float("nan")
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-300)
    if m * (m - 1) // 2 <= _MAX_ANGLE_PAIRS:
        i, j = np.triu_indices(m, k=1)
    else:
        rng = numpy_rng(0, "angle-pairs", m)  # fixed: the same cluster, the same angle
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
        raise InputError(
            f"features must be (neurons, dim) with one student index each; got {features.shape} and {student_of.shape}"
        )
    if len(features) < 2:
        raise InputError("need at least two neurons to cluster")
    if not np.isfinite(features).all():
        raise InputError("neuron vectors contain NaN or inf: exclude failed students first")
    if not 0 < beta_deg <= 180:
        raise InputError(f"beta must be in (0, 180] degrees; got {beta_deg}")
    needed = min_students(gamma, n_students)
    # scipy's linkage(condensed_distances(...), "average"), bit for bit, in less time.
    merges = _average_linkage(_square_distances(features, symmetry.has_sign_flip))
    counts = cluster_count_curve(merges, student_of, needed)
    cut = choose_cut(counts, merges[:, 2], cut_rule)
    raw = labels_at_cut(merges, len(features), cut)
    roots, labels, sizes = np.unique(raw, return_inverse=True, return_counts=True)
    order = np.argsort(-sizes, kind="stable")  # largest clusters first
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    labels = rank[labels]
    n_members = sizes[order]
    # Members of each cluster in increasing index order: one stable sort, then split.
    members = np.split(np.argsort(labels, kind="stable"), np.cumsum(n_members)[:-1])
    # Distinct students per cluster: count the distinct (cluster, student) pairs.
    pairs = np.unique(labels * (int(student_of.max()) + 1) + student_of)
    n_distinct = np.bincount(pairs // (int(student_of.max()) + 1), minlength=len(roots))
    angles = np.full(len(roots), np.nan)
    for c in np.flatnonzero(n_members > 1):
        angles[c] = median_pairwise_angle_deg(features[members[c]], symmetry)
    status = np.where(
        n_distinct < needed, TOO_FEW_STUDENTS, np.where(angles > beta_deg, UNALIGNED, KEPT)
    )
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
