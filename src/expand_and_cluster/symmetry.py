"""Canonical form of neuron vectors ``[w; b]`` per symmetry class, and its inverse.

Scale: for the positive-scaling class (relu, leaky_relu) only the direction of ``[w; b]``
is identifiable, so vectors are divided by their norm and the norm is moved into the
outgoing weights (``f(c z) = c f(z)``), which leaves the function unchanged.

Sign: for every class but ``none``, ``v`` and ``-v`` are the same neuron. Instead of fixing
the sign from one input coordinate (which splits a neuron whose weight on that coordinate
is near zero into two half-clusters), the sign is left free during clustering, where the
distance between two neurons is ``min(|u - v|, |u + v|)``, and each cluster's members are
then aligned to the cluster's representative with :func:`align_signs`.
"""

from __future__ import annotations

import numpy as np

from expand_and_cluster.activations import Symmetry


def neuron_vectors(weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Rows ``[w; b]``: ``(..., out, in)`` and ``(..., out)`` -> ``(..., out, in + 1)``."""
    return np.concatenate([weight, bias[..., None]], axis=-1)


def masked_neuron_vectors(
    weight: np.ndarray, bias: np.ndarray, mask: np.ndarray, mean: np.ndarray | None = None
) -> np.ndarray:
    """Rows ``[w[mask]; b + w[~mask] . mean[~mask]]``: the part of ``[w; b]`` the data
    determine when only the inputs in ``mask`` vary. A weight on an input left out
    (:mod:`expand_and_cluster.masks`) is not determined, only its product with the input's
    value is, and the bias absorbs that: folding the left-out inputs at their ``mean`` over
    the queries gives the bias a neuron has on them (exact for constant inputs; ``mean``
    None: zero, the bias alone). Shapes as :func:`neuron_vectors`."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (weight.shape[-1],):
        raise ValueError(f"input mask of shape {mask.shape} for weights of shape {weight.shape}")
    folded = bias
    if mean is not None and not mask.all():
        folded = bias + weight[..., ~mask] @ np.asarray(mean, dtype=np.float64)[~mask]
    # C order as neuron_vectors gives (boolean indexing of the last axis may not), so that
    # norms sum in the same order and a mask that keeps every input changes no bit.
    return np.ascontiguousarray(np.concatenate([weight[..., mask], folded[..., None]], axis=-1))


def canonicalise_neurons(vectors: np.ndarray, symmetry: Symmetry) -> tuple[np.ndarray, np.ndarray]:
    """Remove the scale symmetry: returns ``(canonical vectors, scales)`` with
    ``vectors = scales[:, None] * canonical``. Scales are 1 unless the class has positive
    scaling, where they are the norms (a zero vector keeps scale 1)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if not symmetry.has_positive_scaling:
        return vectors.copy(), np.ones(len(vectors))
    norms = np.linalg.norm(vectors, axis=1)
    scales = np.where(norms > 0, norms, 1.0)
    return vectors / scales[:, None], scales


def align_signs(vectors: np.ndarray, reference: np.ndarray, symmetry: Symmetry) -> np.ndarray:
    """The sign (+1 or -1) that brings each vector closest to ``reference``; all +1 for a
    class without the sign symmetry."""
    if not symmetry.has_sign_flip:
        return np.ones(len(vectors))
    return np.where(vectors @ reference >= 0, 1.0, -1.0)


def outgoing_after_flip(
    outgoing: np.ndarray, signs: np.ndarray, symmetry: Symmetry
) -> tuple[np.ndarray, np.ndarray]:
    """Undo sign flips on the outgoing side: ``(outgoing weights, next-layer bias shifts)``,
    both ``(neurons, next)`` for ``outgoing`` of that shape.

    A neuron whose vector is ``s * v`` computes ``f(s z)`` with ``z = v . [h; 1]``:

    - odd: ``f(-z) = -f(z)``, so its outgoing weights are multiplied by ``s``;
    - odd_constant: ``f(-z) = 1 - f(z)``, so outgoing weights are multiplied by ``s`` and a
      flipped neuron's outgoing weights move into the next layer's bias;
    - even+linear and none: outgoing weights are kept; for even+linear the linear leftover
      ``-a z`` is absorbed by the linear skip term or by retraining.
    """
    outgoing = np.asarray(outgoing, dtype=np.float64)
    signs = np.asarray(signs, dtype=np.float64)[:, None]
    if not symmetry.flips_outgoing:
        return outgoing.copy(), np.zeros_like(outgoing)
    shift = outgoing * (signs < 0) if symmetry is Symmetry.ODD_CONSTANT else np.zeros_like(outgoing)
    return outgoing * signs, shift


def angle_deg(u: np.ndarray, v: np.ndarray, symmetry: Symmetry) -> np.ndarray:
    """Angle in degrees between rows of ``u`` and ``v`` (broadcast), ignoring the sign for
    classes with the sign symmetry."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    nu, nv = np.linalg.norm(u, axis=-1), np.linalg.norm(v, axis=-1)
    cos = np.sum(u * v, axis=-1) / np.maximum(nu * nv, 1e-300)
    if symmetry.has_sign_flip:
        cos = np.abs(cos)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
