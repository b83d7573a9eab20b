"""Teacher networks: synthetic ones drawn from a seed, and ones trained on a labelled data set."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import torch

from expand_and_cluster.activations import get_activation
from expand_and_cluster.data import sample_inputs
from expand_and_cluster.errors import InputError
from expand_and_cluster.network import MLP, torch_forward
from expand_and_cluster.resources import MemoryEstimate, check_memory
from expand_and_cluster.seeding import numpy_rng, torch_generator

log = logging.getLogger(__name__)

# Teacher neurons are at least this far apart (in angle between [w; b], sign ignored), so
# that no two of them are near-duplicates that no method could tell apart.
MIN_TEACHER_ANGLE_DEG = 30.0
_CALIBRATION_SAMPLES = 4096


def parse_sizes(text: str | list[int]) -> list[int]:
    """``"6,5,1"`` (or ``[6, 5, 1]``) -> ``[6, 5, 1]``: inputs, hidden widths..., outputs."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    try:
        sizes = [int(p) for p in parts]
    except (TypeError, ValueError):
        raise InputError(
            f"bad sizes {text!r}: write comma-separated positive integers such as 6,5,1"
        ) from None
    if len(sizes) < 3 or min(sizes) < 1:
        raise InputError(
            f"bad sizes {text!r}: need inputs, at least one hidden width and outputs, all "
            "positive (e.g. 6,5,1)"
        )
    return sizes


def synthetic_teacher(
    sizes: list[int] | str, activation: str, seed: int, input_distribution: str = "gaussian"
) -> MLP:
    """A random teacher in which every hidden neuron matters.

    Each neuron's pre-activation, measured on samples of the input distribution, has a
    standard deviation drawn from U(1, 2) and a mean within half a standard deviation of 0,
    so no neuron is dead, saturated or linear over the inputs; neurons are at least
    ``MIN_TEACHER_ANGLE_DEG`` apart; output weights are at least 0.5 in magnitude.
    """
    sizes = parse_sizes(sizes)
    act = get_activation(activation)
    check_teacher_memory(sizes)
    rng = numpy_rng(seed, "teacher")
    h = sample_inputs(input_distribution, _CALIBRATION_SAMPLES, sizes[0], seed, "calibration")
    weights, biases = [], []
    for width in sizes[1:-1]:
        w, b = _calibrated_layer(h, width, rng)
        weights.append(w)
        biases.append(b)
        h = act.numpy(h @ w.T + b)
    n_out = sizes[-1]
    magnitude = rng.uniform(0.5, 1.5, size=(n_out, sizes[-2]))
    weights.append(magnitude * rng.choice([-1.0, 1.0], size=magnitude.shape))
    biases.append(rng.uniform(-0.5, 0.5, size=n_out))
    return MLP(weights, biases, activation)


def check_teacher_memory(sizes: list[int], what: str | None = None) -> None:
    """Refuse a synthetic teacher that cannot fit in this machine's memory, before drawing
    it, naming the figure and the knob (its sizes)."""
    check_memory(
        teacher_memory(sizes),
        what or f"a synthetic teacher of sizes {sizes}",
        knob="narrower layers (--sizes; teachers.synthetic sizes)",
    )


def teacher_memory(sizes: list[int]) -> MemoryEstimate:
    """Peak memory of drawing a synthetic teacher: its weights and the calibration samples'
    pre-activations and activations of its widest layer (float64)."""
    parameters = sum(i * o + o for i, o in itertools.pairwise(sizes))
    calibration = 3 * _CALIBRATION_SAMPLES * max(sizes) * 8
    return MemoryEstimate(0.0, float(8 * parameters + calibration), 0.0, 0.0)


def _calibrated_layer(h: np.ndarray, width: int, rng: np.random.Generator):
    """``width`` neurons on inputs ``h``: pre-activation std in U(1, 2), mean within half a std
    of 0, and pairwise angles (sign ignored) of at least MIN_TEACHER_ANGLE_DEG."""
    mean, spread = h.mean(axis=0), h.std(axis=0)
    cos_limit = np.cos(np.radians(MIN_TEACHER_ANGLE_DEG))
    units: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    for _ in range(1000 * width):
        if len(rows) == width:
            break
        direction = rng.standard_normal(h.shape[1]) / np.where(spread > 0, spread, 1.0)
        std = rng.uniform(1.0, 2.0)
        w = direction * std / ((h - mean) @ direction).std()
        b = -mean @ w + rng.uniform(-0.5, 0.5) * std
        candidate = np.append(w, b)
        unit = candidate / np.linalg.norm(candidate)
        if all(abs(unit @ u) < cos_limit for u in units):
            units.append(unit)
            rows.append(candidate)
    if len(rows) < width:
        raise InputError(
            f"cannot draw {width} teacher neurons at least {MIN_TEACHER_ANGLE_DEG} degrees apart "
            f"from {h.shape[1]} inputs: use fewer hidden neurons or more inputs"
        )
    layer = np.array(rows)
    return layer[:, :-1], layer[:, -1]


TEACHER_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def classification_accuracy(network: MLP, x: np.ndarray, labels: np.ndarray) -> float | None:
    """Fraction of ``x`` whose largest output is the label; None without samples."""
    if len(x) == 0:
        return None
    return float(np.mean(network(x).argmax(axis=1) == labels))


def train_teacher(
    x: np.ndarray,
    labels: np.ndarray,
    hidden_widths: list[int],
    activation: str,
    seed: int,
    epochs: int = 200,
    lr: float = 1e-2,
    batch_size: int = 128,
    optimizer: str = "adam",
) -> MLP:
    """A classifier trained with cross-entropy on ``(x, labels)``: the teacher of a
    data-set experiment. Its outputs (logits) are what the students imitate.

    ``optimizer`` is ``adam`` or ``sgd`` (plain SGD without momentum, as the paper's MNIST
    teachers: lr 0.1, batch 128)."""
    if optimizer not in TEACHER_OPTIMIZERS:
        raise InputError(
            f"unknown teacher optimizer {optimizer!r}: choose one of {TEACHER_OPTIMIZERS}"
        )
    if x.ndim != 2 or labels.shape != (x.shape[0],):
        raise InputError(
            f"need x (samples, in) and labels (samples,); got {x.shape} and {labels.shape}"
        )
    n_classes = int(labels.max()) + 1
    sizes = [x.shape[1], *hidden_widths, n_classes]
    gen = torch_generator(seed, "trained-teacher")
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / np.sqrt(fan_in)
        weights.append(
            (torch.rand(fan_out, fan_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        )
        biases.append((torch.rand(fan_out, generator=gen, dtype=torch.float64) * 2 - 1) * bound)
    net = MLP([w.numpy() for w in weights], [b.numpy() for b in biases], activation)
    params = net.torch_parameters()
    for p in params.all():
        p.requires_grad_(True)
    opt = TEACHER_OPTIMIZERS[optimizer](params.all(), lr=lr)
    xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(labels)
    for epoch in range(epochs):
        order = torch.randperm(len(xt), generator=torch_generator(seed, "teacher-order", epoch))
        for start in range(0, len(xt), batch_size):
            idx = order[start : start + batch_size]
            loss = torch.nn.functional.cross_entropy(
                torch_forward(params, xt[idx], activation), yt[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (epoch + 1) % max(1, epochs // 5) == 0:
            with torch.no_grad():
                logits = torch_forward(params, xt, activation)
                acc = (logits.argmax(1) == yt).double().mean().item()
            log.info(
                "teacher epoch %d/%d: loss %.4f, train accuracy %.3f",
                epoch + 1,
                epochs,
                loss.item(),
                acc,
            )
    return MLP.from_torch(params, activation)
