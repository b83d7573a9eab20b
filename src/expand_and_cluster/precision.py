"""How precisely a recovered network equals its teacher: parameters after undoing the
symmetries, and outputs on fresh inputs; and the polish that pushes a recovery to the
precision its queries allow.

Angles (:mod:`expand_and_cluster.evaluate`) say which neuron is which; they do not say
how many digits of each weight are right. The peers report worst-case errors instead, and
both anchors this module is measured against are absolute:

- the cryptanalytic bar (Carlini, Jagielski, Mironov, CRYPTO 2020): the largest absolute
  output difference ``max |f(x) - f_hat(x)|`` over 100,000 inputs ``x ~ N(0, I)``, 2^-25
  on a 784-128-1 ReLU network of about 100,000 parameters (2^-40.4 on one of about 4,000),
  from chosen queries;
- Sequencing the Neurome (Goldfeder et al., 2024): the largest absolute parameter
  difference after alignment below 1e-4, from actively chosen queries.

A recovery's parameters are only comparable with the teacher's after its neurons are put
in the teacher's order and its sign flips and scalings undone (:func:`align_to_teacher`).
"""

from __future__ import annotations

import numpy as np

from expand_and_cluster.activations import Symmetry, get_activation, linear_slope
from expand_and_cluster.evaluate import MATCH_DEG, match_layers
from expand_and_cluster.finetune import FinetuneResult, FinetuneSettings, finetune_network
from expand_and_cluster.network import MLP

# The two published anchors (both absolute; see the module docstring).
CRYPTANALYTIC_OUTPUT_ERROR = 2.0**-25
NEUROME_PARAMETER_ERROR = 1e-4

# "Until it stops improving": a budget that is not what stops a polish, and a stall test
# that lets a slow, steady descent go on (1e-6 of the loss per 100 iterations).
POLISH_ITERATIONS = 100_000
POLISH_MIN_IMPROVEMENT = 1e-6


class AlignmentError(ValueError):
    """The recovered network cannot be put onto the teacher neuron for neuron; the message
    says why (other widths, an unmatched neuron, a flip no parameter can absorb)."""


def align_to_teacher(recovered: MLP, teacher: MLP) -> MLP:
    """The recovered network rewritten, by its activation's exact symmetries only, so that
    each of its parameters sits where the teacher's counterpart does: hidden neurons in
    the teacher's order (the one-to-one matching of
    :func:`~expand_and_cluster.evaluate.match_layers`), each neuron's incoming ``[w; b]``
    with the teacher's sign and, for the positive-scaling class (relu), the teacher's
    norm, and the outgoing side compensated so that the function is unchanged:

    - odd (tanh): a flipped neuron's outgoing weights flip;
    - odd_constant (sigmoid): they flip and move into the next layer's bias;
    - even+linear (softplus, gelu, silu, relu, leaky_relu): outgoing weights stay and the
      linear leftover ``-2 m z`` goes into the input-to-output skip term, which holds it
      only in a network with one hidden layer;
    - positive scaling (relu): incoming ``[w; b]`` divided by ``c`` (its norm over the
      teacher's) and outgoing weights multiplied by it.

    Raises :class:`AlignmentError` when the widths differ, when a teacher neuron has no
    recovered neuron within MATCH_DEG, or when an even+linear neuron of a network with
    several hidden layers is flipped; ValueError when the activations differ."""
    if recovered.widths != teacher.widths:
        raise AlignmentError(
            f"recovered widths {recovered.widths} differ from the teacher's {teacher.widths}: "
            "no one-to-one alignment"
        )
    layers = match_layers(recovered, teacher)
    for index, layer in enumerate(layers):
        if layer.missing:
            raise AlignmentError(
                f"hidden layer {index}: {layer.missing} teacher neuron(s) have no recovered "
                f"neuron within {MATCH_DEG} degrees"
            )
    symmetry = get_activation(teacher.activation).symmetry
    weights = [w.copy() for w in recovered.weights]
    biases = [b.copy() for b in recovered.biases]
    skip = None if recovered.skip_weight is None else recovered.skip_weight.copy()
    for index, layer in enumerate(layers):
        order = np.argsort(np.array(layer.teacher_of))  # recovered neuron per teacher neuron
        sign, scale = layer.sign[order], layer.scale[order]
        flipped = sign < 0
        outgoing = weights[index + 1][:, order]
        weights[index] = weights[index][order] * (sign / scale)[:, None]
        biases[index] = biases[index][order] * sign / scale
        weights[index + 1] = outgoing * scale * (sign if symmetry.flips_outgoing else 1.0)
        if symmetry is Symmetry.ODD_CONSTANT:
            # sigmoid(-z) = 1 - sigmoid(z)
            biases[index + 1] = biases[index + 1] + outgoing[:, flipped].sum(axis=1)
        if symmetry.needs_linear_term and flipped.any():
            if len(layers) > 1:
                raise AlignmentError(
                    f"hidden layer {index}: {int(flipped.sum())} neuron(s) flipped against "
                    f"the teacher's; for {teacher.activation} a flip leaves a linear term "
                    "that only the skip term of a one-hidden-layer network holds"
                )
            # a c f(-z) = a c f(z) - 2 m a c z, with z = [w; b] . [x; 1] (aligned w, b)
            leftover = -2.0 * linear_slope(teacher.activation) * weights[1][:, flipped]
            skip = (0.0 if skip is None else skip) + leftover @ weights[0][flipped]
            biases[1] = biases[1] + leftover @ biases[0][flipped]
    return MLP(weights, biases, recovered.activation, skip)


def parameter_error(recovered: MLP, teacher: MLP) -> dict[str, object]:
    """The largest parameter error of ``recovered`` after :func:`align_to_teacher`:
    ``max_abs`` (the largest absolute difference over every weight, bias and the skip
    term; Sequencing the Neurome's measure) and ``max_relative`` (each tensor's largest
    absolute difference over the teacher tensor's largest magnitude, the largest over
    tensors: comparable across teachers of different weight scales). A tensor the teacher
    holds at zero (the skip term of a teacher without one) is taken relative to the
    teacher's largest parameter. ``per_tensor`` gives both per tensor, by name
    (``layer0.weight``, ..., ``skip.weight``). Raises as :func:`align_to_teacher`."""
    aligned = align_to_teacher(recovered, teacher)
    pairs = {}
    for index, (w, t_w, b, t_b) in enumerate(
        zip(aligned.weights, teacher.weights, aligned.biases, teacher.biases, strict=True)
    ):
        pairs[f"layer{index}.weight"] = (w, t_w)
        pairs[f"layer{index}.bias"] = (b, t_b)
    if aligned.skip_weight is not None or teacher.skip_weight is not None:
        zero = np.zeros((teacher.n_outputs, teacher.n_inputs))
        pairs["skip.weight"] = (
            zero if aligned.skip_weight is None else aligned.skip_weight,
            zero if teacher.skip_weight is None else teacher.skip_weight,
        )
    largest = max(float(np.abs(t).max()) for _, t in pairs.values())
    per_tensor = {}
    for name, (a, t) in pairs.items():
        error = float(np.abs(a - t).max())
        reference = float(np.abs(t).max()) or largest
        per_tensor[name] = {"max_abs": error, "max_relative": error / reference}
    return {
        "max_abs": max(v["max_abs"] for v in per_tensor.values()),
        "max_relative": max(v["max_relative"] for v in per_tensor.values()),
        "per_tensor": per_tensor,
    }


def output_error(recovered: MLP, teacher: MLP, x: np.ndarray) -> dict[str, float]:
    """The largest output error on inputs ``x``: ``max_abs`` is ``max |f(x) - f_hat(x)|``
    over every sample and output (the cryptanalytic papers' measure), ``max_relative`` the
    same over the standard deviation of the teacher's outputs on ``x`` (``output_std``),
    so that teachers of different output scales compare; and the ``rmse``."""
    y = teacher(x)
    diff = recovered(x) - y
    max_abs, std = float(np.abs(diff).max()), float(y.std())
    return {
        "max_abs": max_abs,
        "max_relative": max_abs / std if std > 0 else float("inf"),
        "output_std": std,
        "rmse": float(np.sqrt(np.mean(diff**2))),
    }


def polish(
    network: MLP,
    x: np.ndarray,
    y: np.ndarray,
    max_iterations: int = POLISH_ITERATIONS,
    min_improvement: float = POLISH_MIN_IMPROVEMENT,
) -> tuple[MLP, FinetuneResult]:
    """Fine-tune ``network`` on ``(x, y)`` until the loss stops improving: the recovery's
    own float64 L-BFGS (:func:`~expand_and_cluster.finetune.finetune_network`) without its
    own tolerances (``floor``), which end a recovery's fine-tuning near an MSE of 1e-19
    to 1e-27 on the default study; it stops when 100 iterations lower the loss by less
    than ``min_improvement`` of it (at the float64 floor the loss no longer moves at all),
    or after ``max_iterations``. What is left is the precision the queries and float64 allow."""
    settings = FinetuneSettings(max_iterations=max_iterations, min_improvement=min_improvement)
    return finetune_network(network, x, y, settings, floor=True)
