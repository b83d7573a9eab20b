"""The paper's clustering procedure, written as its reference implementation does it
(code digest sections 1.6 and 3.2), for comparison only; it is not part of the library.

1. ``pdist`` (Euclidean) on all neurons, average linkage.
2. For every merge height ``h``: ``fcluster(Z, t=h, criterion="distance")`` and count the
   clusters with at least ``int(gamma * N)`` members with ``np.unique(..., return_counts=True)``,
   as the reference does (n - 1 calls, each O(n log n)).
3. Take the maximum count, walk along the first run of merges at that maximum, and cut at
   the merge height of its last index.
4. Keep the clusters with at least ``int(gamma * N)`` members at that cut.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist


def paper_clusters(
    features: np.ndarray, gamma: float, n_students: int
) -> tuple[list[np.ndarray], float]:
    """Kept clusters (each a sorted array of neuron indices) and the cut height."""
    min_size = int(gamma * n_students)
    merges = linkage(pdist(features), method="average")
    heights = merges[:, 2]
    counts = np.empty(len(heights), dtype=np.int64)
    for i, h in enumerate(heights):
        labels = fcluster(merges, t=h, criterion="distance")
        _, sizes = np.unique(labels, return_counts=True)  # as the reference counts them
        counts[i] = np.count_nonzero(sizes >= min_size)
    best = counts.max()
    last = int(np.argmax(counts == best))
    while last + 1 < len(counts) and counts[last + 1] == best:
        last += 1
    labels = fcluster(merges, t=heights[last], criterion="distance")
    sizes = np.bincount(labels)
    kept = [np.flatnonzero(labels == c) for c in np.flatnonzero(sizes >= min_size)]
    return kept, float(heights[last])
