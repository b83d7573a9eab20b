"""Teachers from the user's own files, chosen by file type, each as one :class:`TeacherSource`.

- the project's Zarr network store (``.zarr``);
- a PyTorch state dict (``.pt``/``.pth``, read with ``torch.load(weights_only=True)`` only)
  or a ``.safetensors`` file: Linear layers from the tensors, the activation from the user;
- an ONNX model: queried through onnxruntime; a plain MLP graph's weights are also read;
- a Keras model of Dense layers in HDF5 (``.h5``, ``.hdf5``, legacy ``.keras``), read with
  h5py (no TensorFlow);
- a scikit-learn ``MLPRegressor``/``MLPClassifier`` saved with skops (never a pickle);
- input/output pairs (:func:`read_pairs`): no model at all.

Nothing from a file is executed: pickles are refused, skops loads only the scikit-learn
types listed in :data:`SKOPS_TYPES`, ONNX graphs run in onnxruntime. Weights, when a file
has them, serve the evaluation only; the recovery sees the outputs on queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from expand_and_cluster.activations import ACTIVATIONS, LEAKY_RELU_SLOPE, get_activation
from expand_and_cluster.errors import InputError
from expand_and_cluster.network import MLP

# Framework spellings of the registry's activations (lower-cased).
ACTIVATION_ALIASES = {
    **{name: name for name in ACTIVATIONS},
    "leakyrelu": "leaky_relu",
    "logistic": "sigmoid",
    "swish": "silu",
}
SUPPORTED = "an MLP of Linear (Dense) layers with one elementwise activation"
# What a scikit-learn MLP's skops file may ask to load beyond skops' default-trusted types.
SKOPS_TYPES = (
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
    "sklearn.preprocessing._label.LabelBinarizer",
)
# Rows of a pairs file kept aside to measure the fit.
HELD_OUT_FRACTION = 0.2
_BATCH = 65536


@dataclass
class TeacherSource:
    """A network to recover: ``query`` maps inputs ``(samples, n_inputs)`` to float64
    outputs; what the file states (activation, hidden widths, readable weights) or None."""

    query: Callable[[np.ndarray], np.ndarray]
    n_inputs: int
    n_outputs: int
    kind: str
    activation: str | None = None
    hidden_widths: list[int] | None = None
    network: MLP | None = None  # readable weights, for the evaluation only
    notes: list[str] = field(default_factory=list)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.query(x)


def registry_activation(name: str, where: str) -> str:
    """A framework's activation name as the registry's, or an InputError naming both."""
    key = str(name).lower().replace("-", "_")
    if key not in ACTIVATION_ALIASES:
        raise InputError(
            f"{where}: activation {name!r} is not supported: use one of {', '.join(ACTIVATIONS)}"
        )
    return ACTIVATION_ALIASES[key]


def open_teacher(path: str | Path, activation: str | None = None) -> TeacherSource:
    """The teacher in ``path``, by its type; ``activation`` for formats that do not state it
    (and checked against those that do)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"teacher {path} does not exist")
    suffix = path.suffix.lower()
    readers = {
        ".zarr": _from_store,
        ".pt": _from_torch_file,
        ".pth": _from_torch_file,
        ".safetensors": _from_safetensors,
        ".onnx": _from_onnx,
        ".h5": _from_keras,
        ".hdf5": _from_keras,
        ".keras": _from_keras,
        ".skops": _from_skops,
    }
    if suffix not in readers:
        raise InputError(
            f"teacher {path}: unknown file type {suffix or '(none)'!r}: use a network store "
            "(.zarr), a PyTorch state dict (.pt, .pth), .safetensors, .onnx, Keras HDF5 (.h5, "
            ".keras) or a scikit-learn MLP saved with skops (.skops); or --pairs FILE"
        )
    if activation is not None:
        activation = registry_activation(activation, "--activation")
    source = readers[suffix](path, activation)
    if activation and source.activation and source.activation != activation:
        raise InputError(
            f"{path} states activation {source.activation!r} but --activation is "
            f"{activation!r}: drop --activation or correct it"
        )
    source.activation = source.activation or activation
    return source


def from_network(network: MLP, kind: str, notes: list[str] | None = None) -> TeacherSource:
    return TeacherSource(
        network,
        network.n_inputs,
        network.n_outputs,
        kind,
        network.activation,
        network.hidden_widths,
        network,
        notes or [],
    )


def _from_store(path: Path, activation: str | None) -> TeacherSource:
    from expand_and_cluster.store import read_network

    return from_network(read_network(path), "network store")


def _need_activation(path: Path, activation: str | None) -> str:
    if activation is None:
        raise InputError(
            f"{path} does not state its activation: give --activation, one of "
            f"{', '.join(ACTIVATIONS)}"
        )
    return activation


# -- PyTorch state dicts and safetensors ---------------------------------------------------


def _from_torch_file(path: Path, activation: str | None) -> TeacherSource:
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        text = str(e)
        found = re.search(r"GLOBAL ([\w.]+)", text)
        name = found.group(1) if found else ""
        if "torch.nn.modules" in text or name.startswith("torch.nn"):
            raise InputError(
                f"{path} holds a full module ({name or 'pickled nn.Module'}), not a state "
                "dict, and loading it would run code: save torch.save(model.state_dict(), "
                "PATH) and give --activation"
            ) from None
        raise InputError(
            f"{path} is not a weights-only PyTorch state dict (it needs pickle"
            f"{' to build ' + name if name else ''}, which is never run): save "
            "torch.save(model.state_dict(), PATH) or use .safetensors"
        ) from None
    if isinstance(state, dict) and len(state) == 1:
        inner = next(iter(state.values()))
        state = inner if isinstance(inner, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(
            f"{path} is not a state dict of tensors: save torch.save(model.state_dict(), PATH)"
        )
    arrays = {k: v.detach().to(torch.float64).numpy() for k, v in state.items()}
    network = mlp_from_state_dict(arrays, _need_activation(path, activation), str(path))
    return from_network(network, "pytorch state dict")


def _from_safetensors(path: Path, activation: str | None) -> TeacherSource:
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            arrays = {k: f.get_tensor(k).to(torch.float64).numpy() for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"cannot read {path} as safetensors: {e}") from None
    stated = metadata.get("activation")
    if stated is not None:
        stated = registry_activation(stated, f"{path} metadata")
        if activation and stated != activation:
            raise InputError(
                f"{path} states activation {stated!r} but --activation is {activation!r}"
            )
    network = mlp_from_state_dict(arrays, stated or _need_activation(path, activation), str(path))
    source = from_network(network, "safetensors")
    source.activation = stated  # None when the file does not say
    return source


def _natural_key(text: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


def mlp_from_state_dict(state: dict[str, np.ndarray], activation: str, where: str) -> MLP:
    """An MLP from a state dict of Linear layers (``0.weight, 0.bias, 2.weight, ...`` or
    named layers, in natural order), plus an optional bias-free ``skip.weight``."""
    for key, value in state.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ("running_mean", "running_var", "num_batches_tracked"):
            raise InputError(
                f"{where}: {key!r} belongs to a batch norm layer; only {SUPPORTED} is supported"
            )
        if "in_proj" in key or "attn" in key.lower():
            raise InputError(
                f"{where}: {key!r} belongs to an attention layer; only {SUPPORTED} is supported"
            )
        if leaf == "weight" and value.ndim > 2:
            raise InputError(
                f"{where}: {key!r} has shape {value.shape}, a convolution; only {SUPPORTED} is supported"
            )
        if leaf not in ("weight", "bias"):
            raise InputError(
                f"{where}: tensor {key!r} is not a Linear layer's weight or bias; only "
                f"{SUPPORTED} is supported"
            )
    prefixes = sorted({k.rsplit(".", 1)[0] if "." in k else "" for k in state}, key=_natural_key)
    skip = state.get("skip.weight")
    weights, biases = [], []
    for prefix in prefixes:
        if prefix == "skip":
            continue
        dot = f"{prefix}." if prefix else ""
        w, b = state.get(f"{dot}weight"), state.get(f"{dot}bias")
        if w is None or b is None:
            raise InputError(f"{where}: layer {prefix!r} needs both a weight and a bias")
        if w.ndim != 2:
            raise InputError(
                f"{where}: layer {prefix!r} has a {w.ndim}-D weight, a norm layer; only "
                f"{SUPPORTED} is supported"
            )
        weights.append(w)
        biases.append(b)
    for i in range(1, len(weights)):
        if weights[i].shape[1] != weights[i - 1].shape[0]:
            raise InputError(
                f"{where}: layer {prefixes[i]!r} takes {weights[i].shape[1]} inputs but the layer "
                f"before it gives {weights[i - 1].shape[0]}: the layers do not form one MLP"
            )
    if len(weights) < 2:
        raise InputError(
            f"{where}: need at least one hidden layer; found {len(weights)} Linear layer(s)"
        )
    return MLP(weights, biases, activation, skip)


# -- ONNX ------------------------------------------------------------------------------------

# Operators that make a graph something other than an MLP, with what they are.
_ONNX_REFUSED = {
    "Conv": "a convolution",
    "ConvTranspose": "a convolution",
    "BatchNormalization": "a batch norm",
    "LayerNormalization": "a layer norm",
    "InstanceNormalization": "an instance norm",
    "GroupNormalization": "a group norm",
    "Attention": "attention",
    "MultiHeadAttention": "attention",
    "LSTM": "a recurrent layer",
    "GRU": "a recurrent layer",
    "RNN": "a recurrent layer",
    "MaxPool": "pooling",
    "AveragePool": "pooling",
    "Softmax": "a softmax",
}
_ONNX_CHAIN = ("Gemm", "MatMul", "Add", "Identity", "Flatten", "Dropout")
_ONNX_ACTIVATIONS = {
    "Relu": "relu",
    "LeakyRelu": "leaky_relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softplus": "softplus",
    "Gelu": "gelu",
}


def _from_onnx(path: Path, activation: str | None) -> TeacherSource:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises its own DecodeError
        raise InputError(f"cannot read {path} as ONNX: {e}") from None
    graph = model.graph
    initialisers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialisers]
    floats = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}
    shape = (
        [
            d.dim_value if d.HasField("dim_value") else None
            for d in inputs[0].type.tensor_type.shape.dim
        ]
        if len(inputs) == 1
        else []
    )
    if (
        len(inputs) != 1
        or inputs[0].type.tensor_type.elem_type not in floats
        or len(shape) != 2
        or not shape[1]
    ):
        described = ", ".join(
            f"{i.name} ({TensorProto.DataType.Name(i.type.tensor_type.elem_type).lower()}, rank "
            f"{len(i.type.tensor_type.shape.dim)})"
            for i in inputs
        )
        raise InputError(
            f"{path}: the graph's inputs are {described or 'none'}; only one float matrix "
            "(samples, features) with a fixed feature count is supported"
        )
    for node in graph.node:
        if node.op_type in _ONNX_REFUSED:
            raise InputError(
                f"{path}: node {node.name or node.op_type!r} is {_ONNX_REFUSED[node.op_type]} "
                f"({node.op_type}); only {SUPPORTED} is supported"
            )
        if node.op_type == "Dropout" and len(node.input) >= 3 and node.input[2]:
            raise InputError(
                f"{path}: node {node.name!r} is dropout in training mode; export in eval mode"
            )
    # An activation op names the activation only in a plain chain: Sigmoid inside
    # x * sigmoid(x) is part of SiLU. Such graphs are queried without a stated activation.
    chain = all(n.op_type in _ONNX_CHAIN or n.op_type in _ONNX_ACTIVATIONS for n in graph.node)
    kinds = {_ONNX_ACTIVATIONS[n.op_type] for n in graph.node if n.op_type in _ONNX_ACTIVATIONS}
    if chain and len(kinds) > 1:
        raise InputError(
            f"{path}: the graph uses different activations ({', '.join(sorted(kinds))}); "
            f"only {SUPPORTED} is supported"
        )
    props = {p.key: p.value for p in model.metadata_props}
    stated = next(iter(kinds)) if chain and kinds else None
    if "activation" in props:
        stated = registry_activation(props["activation"], f"{path} metadata")
    n_inputs, dtype = shape[1], floats[inputs[0].type.tensor_type.elem_type]
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = inputs[0].name

    # A graph exported without a dynamic batch axis takes exactly shape[0] rows: pad.
    batch = shape[0] or _BATCH

    def query(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=dtype)
        parts = []
        for i in range(0, len(x), batch):
            chunk = x[i : i + batch]
            if shape[0] and len(chunk) < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - len(chunk), n_inputs), dtype)])
            parts.append(session.run(None, {name: chunk})[0][: min(batch, len(x) - i)])
        return np.concatenate(parts).astype(np.float64).reshape(len(x), -1)

    n_outputs = query(np.zeros((1, n_inputs))).shape[1]
    network = _onnx_mlp(graph, numpy_helper, stated or activation)
    notes = ["queried through onnxruntime"]
    notes.append("plain MLP graph: weights read for the evaluation" if network else "black box")
    return TeacherSource(
        query,
        n_inputs,
        n_outputs,
        "onnx",
        stated,
        None if network is None else network.hidden_widths,
        network,
        notes,
    )


def _onnx_mlp(graph, numpy_helper, activation: str | None) -> MLP | None:
    """The weights of a chain Gemm/MatMul(+Add) -> activation -> ... -> Gemm/MatMul(+Add), or
    None when the graph is anything else (it is then only queried)."""
    if activation is None:
        return None
    init = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in graph.initializer}
    weights: list[np.ndarray] = []
    biases: list[np.ndarray] = []
    for node in graph.node:
        op, ins = node.op_type, list(node.input)
        if op == "Gemm":
            attrs = {a.name: a for a in node.attribute}
            w = init.get(ins[1])
            if w is None:
                return None
            w = w if attrs.get("transB") and attrs["transB"].i else w.T
            weights.append(w)
            biases.append(
                init.get(ins[2], np.zeros(w.shape[0])) if len(ins) > 2 else np.zeros(w.shape[0])
            )
        elif op == "MatMul" and ins[1] in init:
            weights.append(init[ins[1]].T)
            biases.append(np.zeros(weights[-1].shape[0]))
        elif op == "Add" and weights and (ins[0] in init or ins[1] in init):
            b = init[ins[1] if ins[1] in init else ins[0]]
            biases[-1] = biases[-1] + b.reshape(-1)
        elif op in _ONNX_ACTIVATIONS or op in ("Identity", "Flatten", "Dropout"):
            if op == "LeakyRelu":
                alpha = next((a.f for a in node.attribute if a.name == "alpha"), 0.01)
                if abs(alpha - LEAKY_RELU_SLOPE) > 1e-6:
                    return None
        else:
            return None
    try:
        return MLP(weights, biases, activation) if len(weights) >= 2 else None
    except InputError:
        return None


# -- Keras HDF5 ------------------------------------------------------------------------------

_KERAS_PASS = ("InputLayer", "Dropout")  # no effect at inference


def _from_keras(path: Path, activation: str | None) -> TeacherSource:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError:
        raise InputError(
            f"{path} is not an HDF5 file: only Keras models saved as HDF5 (.h5, legacy .keras) "
            "are read; save with model.save('model.h5')"
        ) from None
    with f:
        raw = f.attrs.get("model_config")
        if raw is None or "model_weights" not in f:
            raise InputError(
                f"{path}: no Keras model_config and model_weights; not a Keras HDF5 model"
            )
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        layers = config.get("config", {})
        layers = layers.get("layers", []) if isinstance(layers, dict) else layers
        dense: list[tuple[str, str]] = []  # (layer name, activation)
        for layer in layers:
            kind, cfg = layer.get("class_name"), layer.get("config", {})
            if kind == "Dense":
                dense.append((cfg["name"], str(cfg.get("activation", "linear"))))
            elif kind == "Activation" and dense and dense[-1][1] == "linear":
                dense[-1] = (dense[-1][0], str(cfg.get("activation")))
            elif kind not in _KERAS_PASS:
                raise InputError(
                    f"{path}: layer {cfg.get('name', '?')!r} is {kind}; only {SUPPORTED} "
                    "(Dense layers) is supported"
                )
        if len(dense) < 2:
            raise InputError(f"{path}: need at least two Dense layers; found {len(dense)}")
        if dense[-1][1] != "linear":
            raise InputError(
                f"{path}: the output layer {dense[-1][0]!r} has activation {dense[-1][1]!r}; "
                "only a linear output layer is supported"
            )
        hidden = {registry_activation(a, f"{path} layer {n!r}") for n, a in dense[:-1]}
        if len(hidden) > 1:
            raise InputError(
                f"{path}: hidden layers use different activations ({', '.join(sorted(hidden))}); "
                f"only {SUPPORTED} is supported"
            )
        weights, biases = [], []
        for name, _ in dense:
            found: dict[str, np.ndarray] = {}
            f["model_weights"][name].visititems(
                lambda key, obj, found=found: (
                    found.__setitem__(key.rsplit("/", 1)[-1].split(":")[0], obj[()])
                    if hasattr(obj, "shape")
                    else None
                )
            )
            if "kernel" not in found:
                raise InputError(f"{path}: no kernel for Dense layer {name!r}")
            kernel = np.asarray(found["kernel"], dtype=np.float64)
            weights.append(kernel.T)  # Keras kernels are (in, out)
            biases.append(
                np.asarray(found.get("bias", np.zeros(kernel.shape[1])), dtype=np.float64)
            )
    return from_network(MLP(weights, biases, hidden.pop()), "keras hdf5")


# -- scikit-learn via skops ------------------------------------------------------------------


def _from_skops(path: Path, activation: str | None) -> TeacherSource:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as e:  # a damaged zip or schema
        raise InputError(f"cannot read {path} as a skops file: {e}") from None
    other = [t for t in untrusted if t not in SKOPS_TYPES]
    if other:
        raise InputError(
            f"{path} needs types that are not a scikit-learn MLP's ({', '.join(other)}); "
            "only MLPRegressor and MLPClassifier are supported, and nothing else is loaded"
        )
    model = sio.load(path, trusted=list(untrusted))
    kind = type(model).__name__
    if kind not in ("MLPRegressor", "MLPClassifier"):
        raise InputError(
            f"{path} holds a {kind}; only scikit-learn MLPRegressor and MLPClassifier are supported"
        )
    act = registry_activation(model.activation, f"{path} (scikit-learn activation)")
    weights = [np.asarray(c, dtype=np.float64).T for c in model.coefs_]
    biases = [np.asarray(b, dtype=np.float64) for b in model.intercepts_]
    if kind == "MLPRegressor":
        network = MLP(weights, biases, act)
        return TeacherSource(
            lambda x: np.asarray(model.predict(x), dtype=np.float64).reshape(len(x), -1),
            network.n_inputs,
            network.n_outputs,
            "scikit-learn MLPRegressor",
            act,
            network.hidden_widths,
            network,
        )
    # Probabilities only: softmax's inverse is the logits up to a per-sample constant, which
    # the output bias absorbs once centred. Binary (logistic) outputs give +-logit/2.
    w_out, b_out = weights[-1], biases[-1]
    if model.out_activation_ == "logistic":
        w_out, b_out = np.vstack([-w_out, w_out]) / 2, np.concatenate([-b_out, b_out]) / 2
    else:
        w_out, b_out = w_out - w_out.mean(axis=0), b_out - b_out.mean()
    network = MLP([*weights[:-1], w_out], [*biases[:-1], b_out], act)

    def query(x: np.ndarray) -> np.ndarray:
        logp = np.log(np.clip(model.predict_proba(x), 1e-300, None))
        return logp - logp.mean(axis=1, keepdims=True)

    return TeacherSource(
        query,
        network.n_inputs,
        network.n_outputs,
        "scikit-learn MLPClassifier",
        act,
        network.hidden_widths,
        network,
        ["classifier: recovered from centred log-probabilities"],
    )


# -- input/output pairs and query files -----------------------------------------------------


def _table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise InputError("reading .parquet needs pyarrow: pip install pyarrow") from None
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise InputError(f"cannot read {path}: {e}") from None


def _numeric(table, path: Path) -> np.ndarray:
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    bad = [
        str(c)
        for c in table.columns
        if not is_numeric_dtype(table[c].dtype) or is_bool_dtype(table[c].dtype)
    ]
    if bad:
        raise InputError(
            f"{path}: column(s) {', '.join(bad)} are not numeric; only numeric columns are supported"
        )
    return table.to_numpy(dtype=np.float64)


def read_pairs(
    path: str | Path, output_columns: list[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and outputs from ``.npz`` (arrays ``x`` and ``y``) or ``.csv``/``.parquet``
    (columns ``x0, x1, ...`` and ``y0, y1, ...``, or ``output_columns`` as outputs and all
    others as inputs). Rows with NaN, mismatched lengths and text columns are refused."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"pairs file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data or "y" not in data:
                    raise InputError(
                        f"{path} must hold arrays 'x' and 'y'; has {', '.join(data.files)}"
                    )
                x, y = data["x"], data["y"]
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {path} as .npz of numbers: {e}") from None
        if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)):
            raise InputError(f"{path}: x and y must be numeric; got {x.dtype} and {y.dtype}")
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        x = x[:, None] if x.ndim == 1 else x
        y = y[:, None] if y.ndim == 1 else y
        if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
            raise InputError(
                f"{path}: x {x.shape} and y {y.shape} must be matrices with as many rows"
            )
    elif suffix in (".csv", ".parquet"):
        table = _table(path)
        columns = [str(c) for c in table.columns]
        if output_columns:
            missing = [c for c in output_columns if c not in columns]
            if missing:
                raise InputError(
                    f"{path}: no column(s) {', '.join(missing)}; it has {', '.join(columns)}"
                )
            outs = list(output_columns)
            ins = [c for c in columns if c not in outs]
        else:
            ins = [c for c in columns if re.fullmatch(r"x\d+", c)]
            outs = [c for c in columns if re.fullmatch(r"y\d+", c)]
            other = [c for c in columns if c not in ins and c not in outs]
            if other or not ins or not outs:
                raise InputError(
                    f"{path}: name input columns x0, x1, ... and output columns y0, y1, ... "
                    f"(or give --output-columns); found {', '.join(columns)}"
                )
        x, y = _numeric(table[ins], path), _numeric(table[outs], path)
    else:
        raise InputError(f"pairs file {path}: use .npz (x, y), .csv or .parquet")
    bad = np.flatnonzero(~(np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)))
    if len(bad):
        raise InputError(
            f"{path}: {len(bad)} row(s) contain NaN or inf (first: row {bad[0]}); remove them"
        )
    if len(x) < 2:
        raise InputError(f"{path}: need at least 2 rows; got {len(x)}")
    return x, y


def split_pairs(
    x: np.ndarray, y: np.ndarray, seed: int, fraction: float = HELD_OUT_FRACTION
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A seeded split into (x_train, y_train, x_test, y_test); the test part measures the fit."""
    from expand_and_cluster.seeding import numpy_rng

    order = numpy_rng(seed, "pairs-split").permutation(len(x))
    n_test = max(1, round(fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def read_inputs(path: str | Path) -> np.ndarray:
    """The user's own query inputs from ``.npy``, ``.npz`` (array ``x``, or its only array) or
    ``.csv`` (numeric columns with a header)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"query file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            x = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                if "x" not in data and len(data.files) != 1:
                    raise InputError(f"{path} must hold an array 'x'; has {', '.join(data.files)}")
                x = data["x" if "x" in data else data.files[0]]
        elif suffix == ".csv":
            return _checked_inputs(_numeric(_table(path), path), path)
        else:
            raise InputError(f"query file {path}: use .npy, .npz or .csv")
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {path} as numbers: {e}") from None
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"{path}: inputs must be numeric; got {x.dtype}")
    return _checked_inputs(np.asarray(x, dtype=np.float64), path)


def _checked_inputs(x: np.ndarray, path: Path) -> np.ndarray:
    x = x[:, None] if x.ndim == 1 else x
    if x.ndim != 2 or len(x) == 0:
        raise InputError(
            f"{path}: inputs must be a non-empty (samples, features) matrix; got {x.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise InputError(f"{path}: {len(bad)} row(s) contain NaN or inf (first: row {bad[0]})")
    return x


def module_outputs(module, x: np.ndarray) -> np.ndarray:
    """A ``torch.nn.Module``'s outputs on ``x``, under no_grad, in float64 when its parameters
    allow it (a copy is converted; the user's module is left as it is)."""
    import contextlib
    import copy

    import torch

    params = list(module.parameters())
    dtype = params[0].dtype if params else torch.float64
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        # A module that cannot be copied or converted keeps its dtype.
        with contextlib.suppress(Exception):
            module, dtype = copy.deepcopy(module).double(), torch.float64
    device = params[0].device if params else torch.device("cpu")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            y = module(torch.as_tensor(x, dtype=dtype, device=device))
    finally:
        module.train(was_training)
    return y.detach().cpu().to(torch.float64).numpy().reshape(len(x), -1)


def activation_of(name: str) -> str:
    """``name`` checked against the registry (for sources that state their activation)."""
    return get_activation(registry_activation(name, "activation")).name
