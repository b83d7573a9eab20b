"""A multi-layer perceptron as plain arrays: one activation on every hidden layer, a linear
output layer, and an optional linear skip term from the input to the output."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from expand_and_cluster.activations import get_activation
from expand_and_cluster.errors import InputError


@dataclass
class MLP:
    """``weights[l]`` is ``(out, in)`` and ``biases[l]`` is ``(out,)``; the last layer is linear.

    ``skip_weight`` (``(n_outputs, n_inputs)``), when present, adds ``x @ skip_weight.T`` to
    the output: the linear component that even+linear activations need.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activation: str
    skip_weight: np.ndarray | None = None

    def __post_init__(self) -> None:
        get_activation(self.activation)
        self.weights = [np.ascontiguousarray(w, dtype=np.float64) for w in self.weights]
        self.biases = [np.ascontiguousarray(b, dtype=np.float64) for b in self.biases]
        if self.skip_weight is not None:
            self.skip_weight = np.ascontiguousarray(self.skip_weight, dtype=np.float64)
        self.validate()

    def validate(self) -> None:
        """Shapes chain from layer to layer and every number is finite."""
        if not self.weights or len(self.weights) != len(self.biases):
            raise InputError(
                f"an MLP needs one bias per weight matrix and at least one layer; got "
                f"{len(self.weights)} weight matrices and {len(self.biases)} bias vectors"
            )
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if w.ndim != 2 or b.shape != (w.shape[0],):
                raise InputError(
                    f"layer {layer}: weight must be (out, in) and bias (out,); got weight "
                    f"{w.shape} and bias {b.shape}"
                )
            if layer and w.shape[1] != self.weights[layer - 1].shape[0]:
                raise InputError(
                    f"layer {layer}: weight {w.shape} takes {w.shape[1]} inputs but layer "
                    f"{layer - 1} has {self.weights[layer - 1].shape[0]} outputs"
                )
            if not (np.isfinite(w).all() and np.isfinite(b).all()):
                raise InputError(f"layer {layer}: weights or biases contain NaN or inf")
        if self.skip_weight is not None:
            expected = (self.n_outputs, self.n_inputs)
            if self.skip_weight.shape != expected or not np.isfinite(self.skip_weight).all():
                raise InputError(
                    f"skip_weight must be finite with shape {expected}; got {self.skip_weight.shape}"
                )

    @property
    def widths(self) -> list[int]:
        """All layer sizes, input first: ``[n_inputs, hidden..., n_outputs]``."""
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def hidden_widths(self) -> list[int]:
        return self.widths[1:-1]

    @property
    def n_inputs(self) -> int:
        return self.widths[0]

    @property
    def n_outputs(self) -> int:
        return self.widths[-1]

    def without_neurons(self, layer: int, neurons: list[int] | np.ndarray) -> MLP:
        """The network without hidden ``layer``'s ``neurons`` (their incoming weights, bias
        and outgoing weights removed; nothing refitted)."""
        weights, biases = list(self.weights), list(self.biases)
        weights[layer] = np.delete(weights[layer], neurons, axis=0)
        biases[layer] = np.delete(biases[layer], neurons)
        weights[layer + 1] = np.delete(weights[layer + 1], neurons, axis=1)
        return MLP(weights, biases, self.activation, self.skip_weight)

    def hidden_activations(self, x: np.ndarray) -> list[np.ndarray]:
        """The post-activation outputs of every hidden layer on inputs ``x`` (samples, in)."""
        f = get_activation(self.activation).numpy
        h, out = np.asarray(x, dtype=np.float64), []
        for w, b in zip(self.weights[:-1], self.biases[:-1], strict=True):
            h = f(h @ w.T + b)
            out.append(h)
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Forward pass in numpy, float64: ``(samples, in) -> (samples, out)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise InputError(f"inputs must be (samples, {self.n_inputs}); got {x.shape}")
        hidden = self.hidden_activations(x)
        h = hidden[-1] if hidden else x
        y = h @ self.weights[-1].T + self.biases[-1]
        if self.skip_weight is not None:
            y = y + x @ self.skip_weight.T
        return y

    def torch_parameters(
        self, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"
    ) -> TorchMLPParameters:
        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(a, dtype=dtype, device=device)

        return TorchMLPParameters(
            weights=[tensor(w) for w in self.weights],
            biases=[tensor(b) for b in self.biases],
            skip_weight=None if self.skip_weight is None else tensor(self.skip_weight),
        )

    @classmethod
    def from_torch(cls, params: TorchMLPParameters, activation: str) -> MLP:
        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().to(torch.float64).numpy().copy()

        return cls(
            weights=[array(w) for w in params.weights],
            biases=[array(b) for b in params.biases],
            activation=activation,
            skip_weight=None if params.skip_weight is None else array(params.skip_weight),
        )


def on_raw_inputs(network: MLP, shift: np.ndarray, scale: np.ndarray) -> MLP:
    """The network that takes raw inputs, from one trained on ``(x - shift) / scale``: the
    shift and scale move into the first layer (and the skip term)."""
    w0 = network.weights[0] / scale
    biases = [network.biases[0] - w0 @ shift, *network.biases[1:]]
    skip = network.skip_weight
    if skip is not None:
        skip = skip / scale
        biases[-1] = biases[-1] - skip @ shift
    return MLP([w0, *network.weights[1:]], biases, network.activation, skip)


@dataclass
class TorchMLPParameters:
    """The same network as torch tensors, for training; see :func:`torch_forward`."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    skip_weight: torch.Tensor | None = None

    def all(self) -> list[torch.Tensor]:
        extra = [] if self.skip_weight is None else [self.skip_weight]
        return [*self.weights, *self.biases, *extra]


def torch_forward(params: TorchMLPParameters, x: torch.Tensor, activation: str) -> torch.Tensor:
    """Forward pass in torch, ``(samples, in) -> (samples, out)``."""
    f = get_activation(activation).torch
    h = x
    for w, b in zip(params.weights[:-1], params.biases[:-1], strict=True):
        h = f(torch.addmm(b, h, w.T))
    y = torch.addmm(params.biases[-1], h, params.weights[-1].T)
    if params.skip_weight is not None:
        y = y + x @ params.skip_weight.T
    return y
