"""Planted clusters per symmetry class: noisy copies of known neurons with random signs
and scales, plus junk neurons; and the one-pass cut search against a brute-force one."""

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from expand_and_cluster.activations import Symmetry
from expand_and_cluster.cluster import (
    KEPT,
    TOO_FEW_STUDENTS,
    choose_cut,
    cluster_count_curve,
    cluster_layer,
    condensed_distances,
    min_students,
)
from expand_and_cluster.errors import InputError
from expand_and_cluster.symmetry import canonicalise_neurons

N_STUDENTS, K, DIM = 10, 5, 7


def planted_layer(symmetry, rng, zero_first=False, junk_per_student=3, noise=1e-3):
    """Each student holds a noisy copy of each of K neurons (random sign where the class
    allows it, random positive scale for relu-like classes) plus junk neurons."""
    teacher = rng.normal(size=(K, DIM))
    if zero_first:
        teacher[0, 0] = 0.0
    vectors, student_of, origin = [], [], []
    for s in range(N_STUDENTS):
        for k in range(K):
            v = teacher[k] + noise * rng.normal(size=DIM)
            if symmetry.has_sign_flip and rng.random() < 0.5:
                v = -v
            if symmetry.has_positive_scaling:
                v = v * rng.uniform(0.2, 5.0)
            vectors.append(v)
            student_of.append(s)
            origin.append(k)
        for _ in range(junk_per_student):
            vectors.append(rng.normal(size=DIM) * 2)
            student_of.append(s)
            origin.append(-1)
    order = rng.permutation(len(vectors))
    return teacher, np.array(vectors)[order], np.array(student_of)[order], np.array(origin)[order]


@pytest.mark.parametrize("symmetry", list(Symmetry))
@pytest.mark.parametrize("zero_first", [False, True])
def test_planted_clusters_are_recovered_exactly(symmetry, zero_first, rng):
    _, vectors, student_of, origin = planted_layer(symmetry, rng, zero_first)
    features, scales = canonicalise_neurons(vectors, symmetry)
    np.testing.assert_allclose(features * scales[:, None], vectors)
    result = cluster_layer(features, student_of, N_STUDENTS, symmetry, gamma=0.5, beta_deg=60)
    kept = [set(result.members[c].tolist()) for c in result.kept]
    planted = [set(np.flatnonzero(origin == k).tolist()) for k in range(K)]
    assert sorted(map(sorted, kept)) == sorted(map(sorted, planted))
    # Nothing is lost silently: every neuron is in exactly one reported cluster.
    assert sum(result.n_members) == len(vectors)
    assert set(np.concatenate(result.members).tolist()) == set(range(len(vectors)))
    assert all(s in (KEPT, TOO_FEW_STUDENTS) for s in result.status)
    assert np.all(result.median_angle_deg[result.kept] < 1.0)


def test_zero_first_weight_would_split_under_first_coordinate_sign(rng):
    """The reference code fixes the sign by coordinate 0; a neuron with w[0] = 0 then
    splits into two half-clusters. Our sign-invariant distance keeps it whole."""
    _, vectors, student_of, origin = planted_layer(Symmetry.ODD, rng, zero_first=True, noise=1e-2)
    reference_style = vectors * np.sign(vectors[:, :1])
    split = cluster_layer(
        reference_style, student_of, N_STUDENTS, Symmetry.NONE, gamma=0.75, beta_deg=60
    )
    ours = cluster_layer(vectors, student_of, N_STUDENTS, Symmetry.ODD, gamma=0.75, beta_deg=60)
    first = set(np.flatnonzero(origin == 0).tolist())
    assert first in [set(ours.members[c].tolist()) for c in ours.kept]
    assert first not in [set(split.members[c].tolist()) for c in split.kept]


def test_duplicates_of_one_student_do_not_make_a_cluster(rng):
    """Ten near-identical neurons of a single student are one student, not ten."""
    _, vectors, student_of, _ = planted_layer(Symmetry.NONE, rng, junk_per_student=0)
    dup = rng.normal(size=DIM) * 3 + 1e-4 * rng.normal(size=(10, DIM))
    result = cluster_layer(
        np.vstack([vectors, dup]),
        np.concatenate([student_of, np.zeros(10, int)]),
        N_STUDENTS,
        Symmetry.NONE,
    )
    dup_ids = set(range(len(vectors), len(vectors) + 10))
    fates = {result.status[result.labels[i]] for i in dup_ids}
    assert fates == {TOO_FEW_STUDENTS}
    assert len(result.kept) == K


def test_beta_filter_drops_loose_clusters(rng):
    # Five students share a loose blob (angles around 50 degrees): kept at beta 60,
    # reported unaligned at beta 20.
    base = rng.normal(size=DIM)
    loose = base + 0.8 * np.linalg.norm(base) / np.sqrt(DIM) * rng.normal(size=(N_STUDENTS, DIM))
    students = np.arange(N_STUDENTS)
    wide = cluster_layer(loose, students, N_STUDENTS, Symmetry.NONE, gamma=0.5, beta_deg=179)
    assert len(wide.kept) == 1
    angle = wide.median_angle_deg[wide.kept[0]]
    narrow = cluster_layer(
        loose, students, N_STUDENTS, Symmetry.NONE, gamma=0.5, beta_deg=angle - 1
    )
    assert len(narrow.kept) == 0 and "unaligned" in set(narrow.status)


def test_condensed_distances_match_scipy(rng):
    x = rng.normal(size=(300, 9))
    np.testing.assert_allclose(condensed_distances(x, False, block=64), pdist(x), atol=1e-10)
    flipped = np.minimum(
        pdist(x),
        np.array([np.linalg.norm(x[i] + x[j]) for i in range(300) for j in range(i + 1, 300)]),
    )
    np.testing.assert_allclose(condensed_distances(x, True, block=100), flipped, atol=1e-10)


def test_one_pass_cut_matches_fcluster_per_height(rng):
    """The union of bit sets gives the same count curve as one fcluster call per merge
    (the paper's procedure), here with one neuron per student per cluster."""
    _, vectors, student_of, _ = planted_layer(Symmetry.NONE, rng, noise=0.05)
    merges = linkage(pdist(vectors), "average")
    needed = min_students(0.5, N_STUDENTS)
    ours = cluster_count_curve(merges, student_of, needed)
    brute = []
    for h in merges[:, 2]:
        labels = fcluster(merges, t=h, criterion="distance")
        brute.append(sum(len(set(student_of[labels == c])) >= needed for c in np.unique(labels)))
    np.testing.assert_array_equal(ours, brute)
    counts = np.array([0, 1, 3, 3, 3, 2, 3, 1])
    heights = np.array([0.1, 0.2, 0.3, 0.31, 2.0, 2.1, 2.2, 3.0])
    assert choose_cut(counts, heights, "paper") == 4
    assert choose_cut(counts, heights, "gap") == 3  # 0.31 -> 2.0 is the big jump
    assert choose_cut(np.array([1, 2, 2]), rule="paper") == 2


def test_gamma_checks():
    assert min_students(0.5, 10) == 5 and min_students(0.75, 10) == 8 and min_students(1.0, 3) == 3
    with pytest.raises(InputError, match="gamma \\* N"):
        min_students(0.1, 10)
    with pytest.raises(InputError, match="gamma must be in"):
        min_students(1.5, 10)


@pytest.mark.parametrize("n", [2, 3, 50, 700])
def test_linkage_is_scipys_average_linkage_bit_for_bit(n, rng):
    """Our vectorised nearest-neighbour chain gives scipy's merges and heights exactly,
    ties included (repeated points make ties)."""
    from scipy.spatial.distance import squareform

    from expand_and_cluster.cluster import _average_linkage, _square_distances

    x = rng.normal(size=(n, 5))
    if n > 10:
        x[n // 2 :: 7] = x[0]  # exact duplicates: tied distances
    square = squareform(pdist(x))
    np.fill_diagonal(square, np.inf)
    np.testing.assert_array_equal(_average_linkage(square), linkage(pdist(x), "average"))
    # From our BLAS distances (equal to pdist up to rounding) the tree is the same.
    ours = _average_linkage(_square_distances(x, False))
    np.testing.assert_array_equal(ours[:, [0, 1, 3]], linkage(pdist(x), "average")[:, [0, 1, 3]])
    np.testing.assert_allclose(
        ours[:, 2], linkage(pdist(x), "average")[:, 2], rtol=1e-12, atol=1e-12
    )
