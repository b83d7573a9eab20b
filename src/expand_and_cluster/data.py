"""Query inputs: synthetic input distributions, the bundled digits, and the query
design (which inputs the students are trained on, which fresh inputs evaluate them).

A query design is a dict: ``distribution`` (gaussian, uniform, or dataset: the bundled
digits images), ``n`` (number of inputs), ``seed``, and for ``dataset`` the
``test_fraction`` of images held out."""

from __future__ import annotations

import re

import numpy as np

from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng

DISTRIBUTIONS = ("gaussian", "uniform")


def sample_inputs(distribution: str, n: int, d: int, seed: int, key: str = "queries") -> np.ndarray:
    """``n`` inputs of dimension ``d`` with zero mean and unit variance per coordinate.

    ``gaussian`` is N(0, I); ``uniform`` is uniform on [-sqrt(3), sqrt(3)]^d.
    """
    if n < 1 or d < 1:
        raise InputError(f"need at least one sample and one input dimension; got n={n}, d={d}")
    rng = numpy_rng(seed, "inputs", distribution, key)
    if distribution == "gaussian":
        return rng.standard_normal((n, d))
    if distribution == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=(n, d))
    raise InputError(f"unknown input distribution {distribution!r}: choose one of {DISTRIBUTIONS}")


def parse_query_spec(spec: str) -> tuple[str, int]:
    """``"gaussian:20000"`` -> ``("gaussian", 20000)``."""
    name, _, count = spec.partition(":")
    # str.isdigit accepts superscripts and other scripts' digits; a count is ASCII.
    if name not in DISTRIBUTIONS or not re.fullmatch("[0-9]+", count) or int(count) < 1:
        raise InputError(
            f"bad query spec {spec!r}: write DISTRIBUTION:COUNT with DISTRIBUTION one of "
            f"{', '.join(DISTRIBUTIONS)}, e.g. gaussian:20000"
        )
    return name, int(count)


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per feature that give zero mean and unit variance (constant features
    are only centred)."""
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 0, std, 1.0)


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per feature (constant features are only centred)."""
    shift, scale = standardisation(x)
    return (x - shift) / scale


# scikit-learn's bundled 8x8 digits: how many images (an upper bound on dataset queries).
DIGITS_IMAGES = 1797


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (DIGITS_IMAGES images): standardised pixels and
    labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return standardise(bunch.data.astype(np.float64)), bunch.target.astype(np.int64)


def query_inputs(design: dict, n_inputs: int) -> np.ndarray:
    """The inputs the students are trained on."""
    if design["distribution"] == "dataset":
        return dataset_split(design)[0]
    return sample_inputs(design["distribution"], design["n"], n_inputs, design["seed"], "queries")


def heldout_inputs(design: dict, n_inputs: int) -> np.ndarray:
    """Fresh inputs for evaluation: the same distribution, another random stream (never the
    queries), or the held-out images."""
    if design["distribution"] == "dataset":
        return dataset_split(design)[1]
    return sample_inputs(design["distribution"], design["n"], n_inputs, design["seed"], "held-out")


def dataset_split(design: dict) -> tuple[np.ndarray, np.ndarray]:
    """For queries "dataset": (query images, held-out images), a seeded split of the
    bundled digits."""
    images, _ = load_digits()
    order = numpy_rng(design["seed"], "dataset-split").permutation(len(images))
    n_test = max(1, round(design["test_fraction"] * len(images)))
    return images[order[n_test:]], images[order[:n_test]]
