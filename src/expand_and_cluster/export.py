"""A recovered network in the formats other tools load: a ``torch.nn.Sequential``, its state
dict as safetensors, and an ONNX graph of standard operators only.

The state dict's keys are those of the Sequential: ``0.weight, 0.bias, 2.weight, ...``
(Linear, activation, Linear, ...), plus ``skip.weight`` for the linear input-output term
when the network has one. :mod:`expand_and_cluster.sources` reads the same layout back.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from expand_and_cluster.activations import LEAKY_RELU_SLOPE, get_activation
from expand_and_cluster.errors import InputError
from expand_and_cluster.network import MLP

FORMATS = ("onnx", "safetensors")
ONNX_OPSET = 17
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class G(nn.Module):
    """g(x) = sigmoid(4x) + softplus(x), the registry's activation without symmetry."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return get_activation("g").torch(x)


def activation_module(name: str) -> nn.Module:
    """The ``torch.nn`` module of a registry activation."""
    get_activation(name)
    return {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(LEAKY_RELU_SLOPE),
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "softplus": nn.Softplus,
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "g": G,
    }[name]()


class SkipSequential(nn.Sequential):
    """A Sequential MLP plus a bias-free linear term from the input to the output; the skip
    is registered as ``skip`` so that the state dict keys stay ``0.weight, ..., skip.weight``."""

    def __init__(self, *layers: nn.Module, skip: nn.Linear) -> None:
        super().__init__(*layers)
        self.n_layers = len(layers)
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i in range(self.n_layers):
            h = self[i](h)
        return h + self.skip(x)


def to_torch(network: MLP, dtype: str = "float64") -> nn.Sequential:
    """``network`` as a ``torch.nn.Sequential`` (Linear, activation, ..., Linear) computing the
    same function; a :class:`SkipSequential` when it has a linear skip term."""
    if dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        linear = nn.Linear(w.shape[1], w.shape[0], dtype=_DTYPES[dtype])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if i < len(network.weights) - 1:
            layers.append(activation_module(network.activation))
    if network.skip_weight is None:
        return nn.Sequential(*layers).eval()
    skip = nn.Linear(network.n_inputs, network.n_outputs, bias=False, dtype=_DTYPES[dtype])
    with torch.no_grad():
        skip.weight.copy_(torch.from_numpy(network.skip_weight))
    return SkipSequential(*layers, skip=skip).eval()


def write_safetensors(path: str | Path, network: MLP, dtype: str = "float64") -> None:
    """The state dict of :func:`to_torch`'s Sequential, with the activation in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in to_torch(network, dtype).state_dict().items()}
    save_file(state, str(path), metadata={"activation": network.activation, "format": "pt"})


def to_onnx(network: MLP, dtype: str = "float64"):
    """``network`` as an ONNX model (opset 17) built from standard operators only: input ``x``
    (samples, in), output ``y`` (samples, out). Float64 avoids the operators onnxruntime
    lacks in double precision (Softplus, Erf) by exact rewrites."""
    from onnx import TensorProto, helper, numpy_helper

    if dtype not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}: choose one of {', '.join(_DTYPES)}")
    np_dtype = np.float32 if dtype == "float32" else np.float64
    elem = TensorProto.FLOAT if dtype == "float32" else TensorProto.DOUBLE
    nodes, inits = [], []
    counter = iter(range(10**9))

    def const(value, name: str | None = None) -> str:
        name = name or f"c{next(counter)}"
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=np_dtype), name))
        return name

    def op(kind: str, *inputs: str, **attrs) -> str:
        out = f"t{next(counter)}"
        nodes.append(helper.make_node(kind, list(inputs), [out], **attrs))
        return out

    def softplus(z: str) -> str:
        # relu(z) + log(1 + exp(-|z|)): stable, and in operators that exist for doubles.
        return op(
            "Add",
            op("Relu", z),
            op("Log", op("Add", const(1.0), op("Exp", op("Neg", op("Abs", z))))),
        )

    def activation(z: str) -> str:
        name = network.activation
        if name == "relu":
            return op("Relu", z)
        if name == "leaky_relu":
            # max(z, slope z), not LeakyRelu: its alpha attribute is a float32.
            return op("Max", z, op("Mul", z, const(LEAKY_RELU_SLOPE)))
        if name == "sigmoid":
            return op("Sigmoid", z)
        if name == "tanh":
            return op("Tanh", z)
        if name == "softplus":
            return softplus(z)
        if name == "silu":
            return op("Mul", z, op("Sigmoid", z))
        if name == "g":
            return op("Add", op("Sigmoid", op("Mul", z, const(4.0))), softplus(z))
        if name == "gelu":
            return op("Mul", z, normal_cdf(z))
        raise InputError(f"no ONNX form for activation {name!r}")

    def normal_cdf(z: str) -> str:
        if dtype == "float32":
            scaled = op("Mul", z, const(1 / math.sqrt(2.0)))
            return op("Mul", const(0.5), op("Add", const(1.0), op("Erf", scaled)))
        # Phi(z) = erfc(-z / sqrt 2) / 2, with erfc from its Chebyshev fit (Numerical
        # Recipes 3, 'Erf'; absolute error below 5e-16), since onnxruntime has no double Erf.
        a = op("Mul", op("Abs", z), const(1 / math.sqrt(2.0)))
        t = op("Div", const(2.0), op("Add", const(2.0), a))
        ty = op("Sub", op("Mul", const(4.0), t), const(2.0))
        d, dd = const(0.0), const(0.0)
        for c in reversed(_ERFC_CHEB[1:]):
            d, dd = op("Add", op("Sub", op("Mul", ty, d), dd), const(c)), d
        inner = op(
            "Add",
            op("Mul", const(0.5), op("Add", const(_ERFC_CHEB[0]), op("Mul", ty, d))),
            op("Neg", dd),
        )
        half_tail = op(
            "Mul", const(0.5), op("Mul", t, op("Exp", op("Sub", inner, op("Mul", a, a))))
        )
        negative = op("Less", z, const(0.0))
        return op("Where", negative, half_tail, op("Sub", const(1.0), half_tail))

    h = "x"
    for i, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        h = op("Gemm", h, const(w, f"layer{i}.weight"), const(b, f"layer{i}.bias"), transB=1)
        if i < len(network.weights) - 1:
            h = activation(h)
    if network.skip_weight is not None:
        h = op("Add", h, op("MatMul", "x", const(network.skip_weight.T, "skip.weight_t")))
    nodes.append(helper.make_node("Identity", [h], ["y"]))
    graph = helper.make_graph(
        nodes,
        "expand_and_cluster",
        [helper.make_tensor_value_info("x", elem, ["samples", network.n_inputs])],
        [helper.make_tensor_value_info("y", elem, ["samples", network.n_outputs])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    model.doc_string = f"activation={network.activation}"
    helper.set_model_props(model, {"activation": network.activation})
    return model


def write_onnx(path: str | Path, network: MLP, dtype: str = "float64") -> None:
    import onnx

    model = to_onnx(network, dtype)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def export(network: MLP, fmt: str, path: str | Path, dtype: str = "float64") -> Path:
    """Write ``network`` as ``fmt`` (onnx or safetensors) to ``path``."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    path = Path(path)
    (write_onnx if fmt == "onnx" else write_safetensors)(path, network, dtype)
    return path


# Numerical Recipes 3rd ed., section 6.2.2: Chebyshev coefficients of erfc.
_ERFC_CHEB = (
    -1.3026537197817094, 6.4196979235649026e-1, 1.9476473204185836e-2, -9.561514786808631e-3,
    -9.46595344482036e-4, 3.66839497852761e-4, 4.2523324806907e-5, -2.0278578112534e-5,
    -1.624290004647e-6, 1.303655835580e-6, 1.5626441722e-8, -8.5238095915e-8,
    6.529054439e-9, 5.059343495e-9, -9.91364156e-10, -2.27365122e-10, 9.6467911e-11,
    2.394038e-12, -6.886027e-12, 8.94487e-13, 3.13092e-13, -1.12708e-13, 3.81e-16,
    7.106e-15, -1.523e-15, -9.4e-17, 1.21e-16, -2.8e-17,
)  # fmt: skip
