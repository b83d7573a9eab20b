"""Which input coordinates carry signal: the mask of the first layer.

A student's weight on an input that never varies over the queries (an MNIST border pixel)
is not determined by the data: only its product with the input's constant value is, and the
bias absorbs that. Such weights keep whatever the initialisation gave them, so students
disagree on them although they hold the same neuron. The mask leaves those coordinates out
of the first layer's clustering distances (and out of the angles to the teacher); the
recovered network still keeps a weight for every input (:mod:`expand_and_cluster.collapse`).

Methods (:data:`MASK_METHODS`):

- ``none``: every coordinate is kept (the default; recoveries are unchanged);
- ``constant``: coordinates whose spread over the queries is zero (or negligible) are left
  out;
- ``informative``: the constant ones are left out, then those that tell nothing about the
  teacher's outputs: scikit-learn's mutual-information estimates
  (:func:`sklearn.feature_selection.mutual_info_regression` on a single output,
  :func:`~sklearn.feature_selection.mutual_info_classif` on the teacher's predicted class
  ``y.argmax(1)`` for several outputs), kept above a threshold relative to the largest and
  above the estimates of shuffled copies of some coordinates (Boruta's "shadow features",
  in one round). The paper used the ``boruta`` package; it is not used here: it fits random
  forests over many rounds (minutes on 784 pixels, where this takes seconds) and would add
  a dependency for what scikit-learn, already one, estimates directly.
"""

from __future__ import annotations

import numpy as np

from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng

MASK_METHODS = ("none", "constant", "informative")

# A coordinate is constant when its standard deviation over the queries is at most this
# fraction of the largest one (or of 1, whichever is larger). Float64 rounding of values of
# order one leaves spreads of about 1e-16: 1e-12 is well above that noise and far below any
# spread a student could learn a weight from. Relative to the largest spread so that the
# inputs' units do not matter; never below 1e-12 itself, so that data whose spreads are all
# tiny do not call rounding noise a signal.
CONSTANT_STD = 1e-12

# "informative": a coordinate is kept when its mutual information with the outputs is above
# this fraction of the largest coordinate's. The k-nearest-neighbour estimator gives a
# coordinate independent of the outputs a few hundredths of a nat on a few thousand rows,
# while the coordinates a network depends on get tenths: 5% of the largest sits between.
MI_RELATIVE = 0.05
# ... and above the largest estimate of this many shuffled copies of coordinates (independent
# of the outputs by construction: the estimator's noise floor on these data). As many copies
# whatever the number of inputs, so that a few-input network gets as safe a floor.
SHADOWS = 20
# Rows the mutual information is estimated on (a seeded subsample): the estimator is
# O(rows log rows) per coordinate, and a few thousand rows separate signal from noise.
MAX_ROWS = 2000


def input_mask(
    x: np.ndarray, method: str, y: np.ndarray | None = None, seed: int = 0
) -> np.ndarray:
    """Boolean ``(d,)``: True for the coordinates of the queries ``x`` (samples, d) that
    carry signal by ``method`` (one of :data:`MASK_METHODS`); ``informative`` needs the
    teacher's outputs ``y`` (samples,) or (samples, outputs) and is seeded by ``seed``."""
    if method not in MASK_METHODS:
        raise InputError(
            f"input mask method must be one of {', '.join(MASK_METHODS)}; got {method!r}"
        )
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"input mask: need queries (samples, inputs); got shape {x.shape}")
    if method == "none":
        return np.ones(x.shape[1], dtype=bool)
    std = x.std(axis=0)
    keep = std > CONSTANT_STD * max(1.0, float(std.max(initial=0.0)))
    if not keep.any():
        raise InputError(
            f"input mask {method!r}: every input is constant over the {len(x)} queries, so "
            "none carries signal; query inputs that vary (or use --input-mask none)"
        )
    if method == "informative":
        if y is None:
            raise InputError("input mask 'informative' needs the teacher's outputs y")
        keep = _informative(x, np.asarray(y, dtype=np.float64), keep, seed)
    return keep


def _informative(x: np.ndarray, y: np.ndarray, varying: np.ndarray, seed: int) -> np.ndarray:
    """The varying coordinates whose mutual information with ``y`` clears both thresholds
    (:data:`MI_RELATIVE` of the largest, and the largest of the shuffled copies)."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    y = y.reshape(len(y), -1)
    if len(y) != len(x):
        raise InputError(f"input mask: {len(x)} queries but {len(y)} outputs")
    rng = numpy_rng(seed, "input-mask")
    rows = np.sort(rng.permutation(len(x))[:MAX_ROWS])
    columns = np.flatnonzero(varying)
    data = x[np.ix_(rows, columns)]
    # Shadows: shuffled copies of some varying coordinates keep their distribution but lose
    # any link to the outputs.
    chosen = rng.choice(len(columns), size=SHADOWS, replace=len(columns) < SHADOWS)
    shadows = np.stack([rng.permutation(data[:, c]) for c in chosen], axis=1)
    design = np.concatenate([data, shadows], axis=1)
    state = int(rng.integers(2**31 - 1))
    if y.shape[1] == 1:
        mi = mutual_info_regression(design, y[rows, 0], random_state=state)
    else:
        mi = mutual_info_classif(design, y[rows].argmax(axis=1), random_state=state)
    signal, noise = mi[: len(columns)], mi[len(columns) :]
    threshold = max(MI_RELATIVE * float(signal.max(initial=0.0)), float(noise.max(initial=0.0)))
    keep = np.zeros_like(varying)
    keep[columns[signal > threshold]] = True
    if not keep.any():
        raise InputError(
            f"input mask 'informative': no input's mutual information with the outputs "
            f"clears the noise level ({threshold:.3g} nats on {len(rows)} queries); the "
            "outputs may not depend on the inputs, or use --input-mask constant"
        )
    return keep
