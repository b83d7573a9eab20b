"""Activation functions by name, in numpy and torch, and the symmetry class of each.

The symmetry class says which transformations of a neuron's incoming vector ``[w; b]``
leave the network's function unchanged (up to terms that other parameters absorb):

- ``odd`` (tanh): ``f(-z) = -f(z)``; flip ``[w; b]`` and the outgoing weights.
- ``odd_constant`` (sigmoid): ``f(-z) = 1 - f(z)``; as ``odd``, plus a constant moved into
  the next layer's bias.
- ``even_linear`` (softplus, gelu, silu): ``f(-z) = f(z) - 2 m z`` (``m = 1/2``; 1.01/2
  for leaky_relu, see :func:`linear_slope`); flip ``[w; b]`` only, the linear leftover is
  absorbed by a linear skip term (last hidden layer) or left to retraining and fine-tuning
  (lower layers, where the network has no linear term).
- ``even_linear_positive_scaling`` (relu, leaky_relu): as ``even_linear``, and also
  ``f(c z) = c f(z)`` for ``c > 0``, so only the direction of ``[w; b]`` is identifiable.
- ``none`` (g = sigmoid(4x) + softplus(x)): no symmetry beyond permutation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from scipy.special import erf, expit

from expand_and_cluster.errors import InputError

LEAKY_RELU_SLOPE = 0.01


class Symmetry(StrEnum):
    ODD = "odd"
    ODD_CONSTANT = "odd_constant"
    EVEN_LINEAR = "even_linear"
    EVEN_LINEAR_POSITIVE_SCALING = "even_linear_positive_scaling"
    NONE = "none"

    @property
    def has_sign_flip(self) -> bool:
        """Whether ``[w; b] -> -[w; b]`` is a symmetry (possibly with compensation)."""
        return self is not Symmetry.NONE

    @property
    def has_positive_scaling(self) -> bool:
        return self is Symmetry.EVEN_LINEAR_POSITIVE_SCALING

    @property
    def needs_linear_term(self) -> bool:
        """Even+linear classes leave a linear function behind when a neuron is flipped."""
        return self in (Symmetry.EVEN_LINEAR, Symmetry.EVEN_LINEAR_POSITIVE_SCALING)

    @property
    def flips_outgoing(self) -> bool:
        """Odd classes compensate a flipped neuron by flipping its outgoing weights."""
        return self in (Symmetry.ODD, Symmetry.ODD_CONSTANT)


@dataclass(frozen=True)
class Activation:
    name: str
    numpy: Callable[[np.ndarray], np.ndarray]
    torch: Callable[[torch.Tensor], torch.Tensor]
    symmetry: Symmetry


def _g_numpy(x: np.ndarray) -> np.ndarray:
    return expit(4.0 * x) + np.logaddexp(0.0, x)


def _g_torch(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(4.0 * x) + torch.nn.functional.softplus(x)


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation(
            "relu",
            lambda x: np.maximum(x, 0.0),
            torch.relu,
            Symmetry.EVEN_LINEAR_POSITIVE_SCALING,
        ),
        Activation(
            "leaky_relu",
            lambda x: np.where(x > 0, x, LEAKY_RELU_SLOPE * x),
            lambda x: torch.nn.functional.leaky_relu(x, LEAKY_RELU_SLOPE),
            Symmetry.EVEN_LINEAR_POSITIVE_SCALING,
        ),
        Activation("sigmoid", expit, torch.sigmoid, Symmetry.ODD_CONSTANT),
        Activation("tanh", np.tanh, torch.tanh, Symmetry.ODD),
        Activation(
            "softplus",
            lambda x: np.logaddexp(0.0, x),
            torch.nn.functional.softplus,
            Symmetry.EVEN_LINEAR,
        ),
        Activation(
            "gelu",
            lambda x: 0.5 * x * (1.0 + erf(x / math.sqrt(2.0))),
            torch.nn.functional.gelu,
            Symmetry.EVEN_LINEAR,
        ),
        Activation("silu", lambda x: x * expit(x), torch.nn.functional.silu, Symmetry.EVEN_LINEAR),
        Activation("g", _g_numpy, _g_torch, Symmetry.NONE),
    )
}


def linear_slope(name: str) -> float:
    """``m`` of an even+linear activation ``f(z) = e(z) + m z`` (``e`` even), so that
    ``f(-z) = f(z) - 2 m z``: 1/2 for relu, softplus, gelu, silu; (1 + slope)/2 for
    leaky_relu. Read off the function itself: ``m = (f(1) - f(-1)) / 2``."""
    f = get_activation(name).numpy
    return float(f(np.array(1.0)) - f(np.array(-1.0))) / 2.0


def get_activation(name: str) -> Activation:
    """The activation called ``name``; an InputError lists the valid names otherwise."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        valid = ", ".join(ACTIVATIONS)
        raise InputError(f"unknown activation {name!r}: choose one of {valid}") from None
