"""Compare a recovered network with the teacher, neuron by neuron and layer by layer; a
recovery's identity (labels), status and metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from expand_and_cluster.activations import Symmetry, get_activation
from expand_and_cluster.network import MLP
from expand_and_cluster.prune import NOISE_FLOOR_FACTOR, neuron_contributions
from expand_and_cluster.settings import check_settings, setting
from expand_and_cluster.symmetry import angle_deg, masked_neuron_vectors, neuron_vectors

# A teacher neuron counts as recovered when its match is within this angle.
MATCH_DEG = 10.0


@dataclass
class LayerComparison:
    teacher_width: int
    recovered_width: int
    angles_deg: list[float | None]  # per teacher neuron; None where missing
    missing: int  # teacher neurons without a match within MATCH_DEG
    excess: int  # recovered neurons that match no teacher neuron
    # Per teacher neuron, the angle to its assigned neuron however large (None: unassigned).
    assigned_deg: list[float | None]
    # Per recovered neuron, the teacher neuron it matches within MATCH_DEG (None: excess).
    teacher_of: list[int | None]
    # Per recovered neuron, the symmetry that maps it onto its teacher neuron in the
    # teacher's basis: its vector is about ``sign * scale`` times the teacher's (sign 1
    # without the sign symmetry, scale 1 without positive scaling; both 1 when excess).
    # Deeper layers are compared through these; expand_and_cluster.precision undoes them.
    sign: np.ndarray
    scale: np.ndarray


def compare_networks(
    recovered: MLP,
    teacher: MLP,
    x_test: np.ndarray,
    input_mask: np.ndarray | None = None,
    input_mean: np.ndarray | None = None,
) -> dict:
    """Per hidden layer: widths, angles between each teacher neuron's ``[w; b]`` and its
    one-to-one match (Hungarian assignment on angles, symmetry-aware), missing and excess
    neurons; and the RMSE of the recovered network against the teacher on ``x_test``.

    With ``input_mask`` (one bool per input, the recovery's), neurons are matched over the
    masked inputs (:func:`match_layers` with the mask): weights on the inputs it leaves out
    are not determined by the queries, so no method could recover them and they do not
    decide a recovery's status. ``first_layer_angle_deg`` is the median and largest angle,
    over the first layer's teacher neurons, to the recovered neuron each is assigned however
    large, over every input (None when no neuron is assigned);
    ``first_layer_angle_deg_masked`` is the same over the masked inputs (None without a
    mask)."""
    unmasked = match_layers(recovered, teacher)
    layers = unmasked
    if input_mask is not None:
        layers = match_layers(recovered, teacher, input_mask, input_mean)
    rmse = float(np.sqrt(np.mean((recovered(x_test) - teacher(x_test)) ** 2)))
    return {
        "widths": recovered.hidden_widths,
        "teacher_widths": teacher.hidden_widths,
        "angles_deg": [c.angles_deg for c in layers],
        "assigned_angles_deg": [c.assigned_deg for c in layers],
        "missing": [c.missing for c in layers],
        "excess": [c.excess for c in layers],
        "teacher_of": [c.teacher_of for c in layers],
        "rmse": rmse,
        "exact_widths": recovered.hidden_widths == teacher.hidden_widths,
        "first_layer_angle_deg": _angle_summary(unmasked[0].assigned_deg) if unmasked else None,
        "first_layer_angle_deg_masked": None
        if input_mask is None or not layers
        else _angle_summary(layers[0].assigned_deg),
    }


def _angle_summary(angles: list[float | None]) -> dict[str, float] | None:
    """Median and largest of the angles that are not None; None when none is."""
    values = [a for a in angles if a is not None]
    if not values:
        return None
    return {"median": float(np.median(values)), "max": float(np.max(values))}


def match_layers(
    recovered: MLP,
    teacher: MLP,
    input_mask: np.ndarray | None = None,
    input_mean: np.ndarray | None = None,
) -> list[LayerComparison]:
    """Each hidden layer's teacher neurons matched one-to-one to the recovered network's
    within MATCH_DEG. Deeper layers are compared after mapping the recovered network's
    previous-layer neurons onto the teacher's (permutation, sign and scale of the previous
    match).

    With ``input_mask`` (one bool per input) the first layer is compared on the masked
    vectors (:func:`~expand_and_cluster.symmetry.masked_neuron_vectors`, the left-out
    inputs folded into the bias at ``input_mean``, e.g. the queries' mean; None: zero), and
    deeper layers through that matching."""
    if recovered.activation != teacher.activation:
        raise ValueError(f"activations differ: {recovered.activation} vs {teacher.activation}")
    if len(recovered.hidden_widths) != len(teacher.hidden_widths):
        raise ValueError("recovered and teacher networks have different numbers of hidden layers")
    symmetry = get_activation(teacher.activation).symmetry
    if input_mask is not None and np.shape(input_mask) != (teacher.n_inputs,):
        raise ValueError(
            f"input mask of {np.size(input_mask)} entries for a teacher of {teacher.n_inputs} inputs"
        )
    layers: list[LayerComparison] = []
    # column_map: recovered previous-layer unit j ~ factor[j] * teacher unit target[j]
    target = np.arange(teacher.n_inputs)
    factor = np.ones(teacher.n_inputs)
    for t_w, t_b, r_w, r_b in zip(
        teacher.weights[:-1],
        teacher.biases[:-1],
        recovered.weights[:-1],
        recovered.biases[:-1],
        strict=True,
    ):
        mapped_w = np.zeros((r_w.shape[0], t_w.shape[1]))
        mapped_b = r_b.copy()
        for j in range(r_w.shape[1]):
            if target[j] < 0:
                continue
            mapped_w[:, target[j]] += r_w[:, j] * factor[j]
            if symmetry is Symmetry.ODD_CONSTANT and factor[j] < 0:
                mapped_b += r_w[:, j]
        if input_mask is not None and not layers:
            t_vec = masked_neuron_vectors(t_w, t_b, input_mask, input_mean)
            r_vec = masked_neuron_vectors(mapped_w, mapped_b, input_mask, input_mean)
        else:
            t_vec, r_vec = neuron_vectors(t_w, t_b), neuron_vectors(mapped_w, mapped_b)
        angles = angle_deg(t_vec[:, None, :], r_vec[None, :, :], symmetry)
        rows, cols = linear_sum_assignment(angles)
        per_teacher: list[float | None] = [None] * len(t_vec)
        assigned: list[float | None] = [None] * len(t_vec)
        next_target = np.full(len(r_vec), -1)
        sign, scale = np.ones(len(r_vec)), np.ones(len(r_vec))
        for i, j in zip(rows, cols, strict=True):
            assigned[i] = float(angles[i, j])
            if angles[i, j] > MATCH_DEG:
                continue
            per_teacher[i] = float(angles[i, j])
            next_target[j] = i
            if symmetry.has_sign_flip:
                sign[j] = np.sign(t_vec[i] @ r_vec[j]) or 1.0
            if symmetry.has_positive_scaling:
                scale[j] = np.linalg.norm(r_vec[j]) / np.linalg.norm(t_vec[i])
        matched = sum(a is not None for a in per_teacher)
        layers.append(
            LayerComparison(
                len(t_vec),
                len(r_vec),
                per_teacher,
                len(t_vec) - matched,
                len(r_vec) - matched,
                assigned,
                [None if t < 0 else int(t) for t in next_target],
                sign,
                scale,
            )
        )
        target = next_target
        factor = (sign if symmetry.flips_outgoing else 1.0) * scale
    return layers


def student_teacher_angles(
    teacher: MLP,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    failed: np.ndarray,
    input_mask: np.ndarray | None = None,
    input_mean: np.ndarray | None = None,
) -> list[list[float | None] | None]:
    """Per student (``weights[l]``: ``(students, out, in)``) and teacher hidden neuron (all
    layers in order), the angle between the teacher neuron and the student neuron assigned
    to it (symmetry-aware; deeper layers through the matches of the layer below, which need
    MATCH_DEG); None for a teacher neuron left without one, and for a failed student. At
    expansion 1, how often students hold a teacher neuron within MATCH_DEG measures how
    benign the landscape is at the teacher's own width (the ease axis,
    :mod:`expand_and_cluster.identifiability`). With the recovery's ``input_mask``, the
    first layer is compared over the masked inputs, as the recovery is
    (:func:`match_layers`)."""
    angles: list[list[float | None] | None] = []
    for k, bad in enumerate(np.asarray(failed, dtype=bool)):
        student_weights = [np.asarray(w[k], dtype=np.float64) for w in weights]
        student_biases = [np.asarray(b[k], dtype=np.float64) for b in biases]
        if bad or not all(np.isfinite(w).all() for w in student_weights):
            angles.append(None)
            continue
        student = MLP(student_weights, student_biases, teacher.activation)
        layers = match_layers(student, teacher, input_mask, input_mean)
        angles.append([a for layer in layers for a in layer.assigned_deg])
    return angles


# -- a recovery's identity, status and metrics (one schema for the study and the CLI) --------

STATUSES = ("exact", "approximate", "inexact", "failed")


@dataclass
class EvaluationSettings:
    """How a recovered network is judged against a known teacher."""

    exact_angle_deg: float = setting(
        1.0,
        "A recovery is exact when its hidden widths are the teacher's and every teacher "
        "neuron is within this angle (degrees) of its recovered neuron.",
        exclusive_minimum=0,
        maximum=90,
    )

    def __post_init__(self) -> None:
        check_settings(self)


def number_id(value: float) -> str:
    """4 -> "4", 0.5 -> "0.5", 2.2 -> "2.2": short and path-safe; values that differ in the
    first 15 significant digits get different ids."""
    return format(value, ".15g")


def expansion_id(expansion: float) -> str:
    return f"x{number_id(expansion)}"


def recovery_id(gamma: float, beta_deg: float) -> str:
    return f"g{number_id(gamma)}-b{number_id(beta_deg)}"


def recovery_labels(
    teacher: str,
    kind: str,
    activation: str,
    sizes: list[int],
    expansion: float,
    gamma: float,
    beta_deg: float,
    queries: str | None = None,
    teacher_outputs: str = "none",
) -> dict[str, Any]:
    """What identifies a recovery in its summary, its metrics and the tables; ``queries``
    names the query design (expand_and_cluster.data.query_design), ``teacher_outputs`` the
    transform of the outputs the students saw (expand_and_cluster.outputs)."""
    return {
        "teacher": teacher,
        "kind": kind,
        "queries": queries,
        "teacher_outputs": teacher_outputs,
        "activation": activation,
        "sizes": list(sizes),
        "expansion": expansion,
        "expansion_id": expansion_id(expansion),
        "recovery_id": recovery_id(gamma, beta_deg),
        "gamma": gamma,
        "beta_deg": beta_deg,
    }


def applied_output_error(exact: np.ndarray, seen: np.ndarray) -> float:
    """The error a transform actually applied: the RMSE of ``seen`` minus ``exact`` over
    the standard deviation of ``exact`` (0 for identical outputs; inf when ``exact`` is
    constant and ``seen`` is not)."""
    exact = np.asarray(exact, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((np.asarray(seen, dtype=np.float64) - exact) ** 2)))
    std = float(np.std(exact)) if np.ptp(exact) > 0 else 0.0  # constant: no spread
    return rmse / std if std > 0 else (math.inf if rmse > 0 else 0.0)


def silent_neurons(
    teacher: MLP, x: np.ndarray, error_fraction: float
) -> tuple[list[list[int]], list[list[float]]]:
    """Per hidden layer, the teacher's silent neurons and every neuron's contribution on
    inputs ``x`` (:func:`expand_and_cluster.prune.neuron_contributions` with the teacher's
    own outputs). A neuron is silent when it contributes less than NOISE_FLOOR_FACTOR
    times the outputs' noise floor: ``error_fraction``, the fraction of the output variance
    by which the outputs the students saw differ from the teacher's (0 for exact outputs),
    or the refits' own float64 residual when that is larger. No method can identify a
    silent neuron from these outputs (one with outgoing weights 0 is the extreme case), so
    it is reported apart from a missed one."""
    contributions, residual = neuron_contributions(teacher, x, teacher(x))
    floor = NOISE_FLOOR_FACTOR * max(error_fraction, residual)
    return (
        [np.flatnonzero(c < floor).tolist() for c in contributions],
        [c.tolist() for c in contributions],
    )


def functional_teacher(teacher: MLP, silent: list[list[int]]) -> MLP:
    """The teacher without its silent neurons: what its outputs can tell."""
    for layer, neurons in enumerate(silent):
        if neurons and len(neurons) < teacher.hidden_widths[layer]:
            teacher = teacher.without_neurons(layer, neurons)
    return teacher


def recovery_status(comparison: dict, exact_angle_deg: float) -> str:
    """exact: the teacher's widths and every teacher neuron within ``exact_angle_deg`` of
    its match; approximate: the teacher's widths and every teacher neuron matched (within
    MATCH_DEG) but not that closely; inexact: wrong widths or unmatched neurons. (A
    recovery that produced no network is ``failed``.)"""
    complete = comparison["exact_widths"] and not any(comparison["missing"])
    if complete and not any(comparison["excess"]):
        angles = [a for layer in comparison["angles_deg"] for a in layer if a is not None]
        return "exact" if max(angles, default=0.0) <= exact_angle_deg else "approximate"
    return "inexact"


def recovery_metrics(
    summary: dict[str, Any],
    teacher: MLP,
    network: MLP | None,
    student_loss: np.ndarray,
    student_failed: np.ndarray,
    student_widths: list[int],
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    settings: EvaluationSettings,
    source: dict[str, Any] | None = None,
    auto_width_rounds: list[dict] | None = None,
    students: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
    teacher_test_accuracy: float | None = None,
    input_mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """The metrics of one recovery (``metrics.json``), from its summary
    (:func:`expand_and_cluster.reconstruct.recovery_summary`), the teacher, the recovered
    network (None when the recovery failed), the students' final losses, the queries and
    fresh held-out inputs; with the students' ``(weights, biases)``, how far each
    student is from holding the teacher (:func:`student_teacher_angles`); a trained
    teacher's test accuracy is carried into the tables; with the recovery's ``input_mask``
    (:func:`expand_and_cluster.store.read_input_mask`), the first layer's angles over the
    masked inputs too (left-out inputs folded into the bias at the queries' mean, as the
    clustering did). No clock times: the same results give the same bytes."""
    metrics = _shared_metrics(
        summary,
        teacher.hidden_widths,
        student_loss,
        student_failed,
        student_widths,
        len(x),
        len(x_test),
        settings,
        float(teacher(x_test).std()),
        WEIGHTS_COMPARED,
        source,
        auto_width_rounds,
        input_mask,
    )
    mean = None if input_mask is None else np.asarray(x, dtype=np.float64).mean(axis=0)
    metrics["student_teacher_angles_deg"] = (
        None
        if students is None
        else student_teacher_angles(teacher, *students, student_failed, input_mask, mean)
    )
    metrics["teacher_test_accuracy"] = teacher_test_accuracy
    # The error the outputs the students saw carry (a teacher_outputs transform), as a
    # fraction of the output variance: the floor below which a teacher neuron is silent.
    error = applied_output_error(teacher(x), np.reshape(y, (len(x), -1))) ** 2
    silent, contribution = silent_neurons(teacher, x_test, error)
    functional = functional_teacher(teacher, silent)
    metrics.update(
        teacher_contribution=contribution,
        silent_neurons=silent,
        teacher_widths_functional=functional.hidden_widths,
    )
    if network is None:
        metrics.update(
            widths=None,
            angles_deg=None,
            assigned_angles_deg=None,
            missing=None,
            excess=None,
            rmse=None,
            relative_rmse=None,
            neuron_support=None,
            exact_widths=False,
            recovered_loss=None,
            angle_median_deg=None,
            angle_max_deg=None,
            first_layer_angle_deg=None,
            first_layer_angle_deg_masked=None,
            teacher_of=None,
            status="failed",
            exact_widths_functional=False,
            status_functional="failed",
        )
        return metrics
    comparison = compare_networks(network, teacher, x_test, input_mask, mean)
    angles = [a for layer in comparison["angles_deg"] for a in layer if a is not None]
    judged = comparison
    if functional.hidden_widths != teacher.hidden_widths:
        judged = compare_networks(network, functional, x_test, input_mask, mean)
    metrics.update(
        comparison,
        exact_widths_functional=judged["exact_widths"],
        status_functional=recovery_status(judged, settings.exact_angle_deg),
        relative_rmse=_ratio(comparison["rmse"], metrics["teacher_output_std"]),
        neuron_support=neuron_support(summary),
        recovered_loss=float(np.mean((network(x) - y) ** 2)),
        angle_median_deg=float(np.median(angles)) if angles else None,
        angle_max_deg=float(np.max(angles)) if angles else None,
        status=recovery_status(comparison, settings.exact_angle_deg),
    )
    return metrics


WEIGHTS_COMPARED = "the teacher's weights were read: neuron-by-neuron comparison"
NO_WEIGHTS = (
    "no weight comparison was possible (the teacher's weights are not readable): "
    "held-out outputs only"
)
# A recovery judged on held-out outputs alone.
UNVERIFIED = "unverified"


def _ratio(a: float | None, b: float) -> float | None:
    return None if a is None else float(a / b) if b > 0 else float("inf") if a > 0 else 0.0


def neuron_support(summary: dict[str, Any]) -> list[list[float]] | None:
    """Per hidden layer, the fraction of students that share each kept cluster (the
    clustering's evidence for each recovered neuron, before pruning)."""
    diagnostics = summary.get("diagnostics")
    if not diagnostics:
        return None
    n = summary["n_students"]
    return [
        [c["students"] / n for c in layer["clusters"] if c["status"] == "kept"]
        for layer in diagnostics["layers"]
    ]


def blackbox_metrics(
    summary: dict[str, Any],
    network: MLP | None,
    student_loss: np.ndarray,
    student_failed: np.ndarray,
    student_widths: list[int],
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    settings: EvaluationSettings,
    teacher_widths: list[int] | None = None,
    source: dict[str, Any] | None = None,
    auto_width_rounds: list[dict] | None = None,
    input_mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """The metrics of a recovery whose teacher's weights are unknown: the schema of
    :func:`recovery_metrics` with the weight comparison left empty, the held-out RMSE
    (absolute and relative to the outputs' standard deviation), the recovered widths, each
    neuron's support in the clustering, the size of the ``input_mask`` (when there was
    one), and status ``unverified`` (or ``failed``)."""
    y_test = np.asarray(y_test, dtype=np.float64).reshape(len(x_test), -1)
    std = float(y_test.std())
    rmse = None if network is None else float(np.sqrt(np.mean((network(x_test) - y_test) ** 2)))
    widths = None if network is None else network.hidden_widths
    shared = _shared_metrics(
        summary,
        teacher_widths,
        student_loss,
        student_failed,
        student_widths,
        len(x),
        len(x_test),
        settings,
        std,
        NO_WEIGHTS,
        source,
        auto_width_rounds,
        input_mask,
    )
    return {
        **shared,
        "widths": widths,
        "student_teacher_angles_deg": None,
        "teacher_test_accuracy": None,
        "angles_deg": None,
        "assigned_angles_deg": None,
        "missing": None,
        "excess": None,
        "rmse": rmse,
        "relative_rmse": _ratio(rmse, std),
        "neuron_support": neuron_support(summary),
        "exact_widths": None
        if teacher_widths is None or widths is None
        else widths == teacher_widths,
        "recovered_loss": None
        if network is None
        else float(np.mean((network(x) - np.asarray(y).reshape(len(x), -1)) ** 2)),
        "angle_median_deg": None,
        "angle_max_deg": None,
        "first_layer_angle_deg": None,
        "first_layer_angle_deg_masked": None,
        "teacher_of": None,
        "teacher_contribution": None,
        "silent_neurons": None,
        "teacher_widths_functional": None,
        "exact_widths_functional": None,
        "status": "failed" if network is None else UNVERIFIED,
        "status_functional": "failed" if network is None else UNVERIFIED,
    }


def _shared_metrics(
    summary: dict[str, Any],
    teacher_widths: list[int] | None,
    student_loss: np.ndarray,
    student_failed: np.ndarray,
    student_widths: list[int],
    n_queries: int,
    n_test: int,
    settings: EvaluationSettings,
    output_std: float,
    verification: str,
    source: dict[str, Any] | None,
    auto_width_rounds: list[dict] | None,
    input_mask: np.ndarray | None = None,
) -> dict[str, Any]:
    """The keys of ``metrics.json`` that do not depend on whether the teacher's weights
    are known (one schema for the white-box and the black-box metrics)."""
    losses = [None if not np.isfinite(v) else float(v) for v in student_loss]
    finite = [v for v in losses if v is not None]
    return {
        **{key: summary[key] for key in LABEL_KEYS},
        "teacher_widths": teacher_widths,
        "student_widths": list(student_widths),
        "n_students": len(losses),
        "students_failed": int(np.asarray(student_failed, dtype=bool).sum()),
        "student_loss": losses,
        "student_loss_median": float(np.median(finite)) if finite else None,
        "n_queries": n_queries,
        "n_test": n_test,
        "exact_angle_deg": settings.exact_angle_deg,
        "recovery_status": summary["status"],
        "reason": summary["reason"],
        # Failed students excluded from clustering, and other warnings of the recovery.
        "warnings": (summary["diagnostics"] or {}).get("warnings", []),
        "teacher_output_std": output_std,
        "verification": verification,
        # Where the teacher came from (ecluster recover) and the --student-widths auto search.
        "source": source,
        "auto_width_rounds": auto_width_rounds,
        "linear_terms": linear_terms(summary["diagnostics"]),
        # Per recovered neuron: support, spread, stability, contribution, flags.
        "neuron_confidence": neuron_confidence(summary["diagnostics"]),
        "noise": (summary["diagnostics"] or {}).get("noise"),
        "input_mask": mask_size(summary["diagnostics"], input_mask),
        # Deep teachers: how the next layers reached the reconstructed basis, and each way's
        # fine-tuned MSE (RecoverySettings.between_layers).
        "between_layers": (summary["diagnostics"] or {}).get("between_layers"),
        # Students polished because their error hid what the network left unexplained
        # (RecoverySettings.polish_iterations); None when they were not.
        "student_polish": (summary["diagnostics"] or {}).get("student_polish"),
    }


def neuron_confidence(diagnostics: dict | None) -> list[list[dict[str, Any]]] | None:
    """Per hidden layer, each recovered neuron's confidence numbers and flags
    (:func:`expand_and_cluster.confidence.neuron_confidence`); None for a failed recovery."""
    if not diagnostics:
        return None
    return [layer.get("neurons") for layer in diagnostics["layers"]]


def mask_size(diagnostics: dict | None, input_mask: np.ndarray | None) -> dict[str, Any] | None:
    """The input mask the first layer was clustered on: its method (from the recovery's
    diagnostics), how many inputs it kept, of how many; None without a mask."""
    if input_mask is None:
        return None
    method = ((diagnostics or {}).get("input_mask") or {}).get("method")
    mask = np.asarray(input_mask, dtype=bool)
    return {"method": method, "kept": int(mask.sum()), "total": int(mask.size)}


def linear_terms(diagnostics: dict | None) -> list[dict[str, Any]] | None:
    """Per hidden layer (even+linear activations), the linear terms the recovery left out
    or handed to the skip term: below the last hidden layer, the reconstructed neurons turned
    to the orientation their next layer needs (``flipped_for_next_layer``; a mirrored one
    would leave a linear term there); members the collapse flipped and the largest relative
    size of the linear map it dropped for a student (``linear_dropped_by_collapse``), and the
    pruned neurons only a linear function explained: at the last hidden layer taken over by
    the input-to-output skip term (``linear_absorbed_by_skip``), below it dropped
    (``linear_dropped_by_pruning``).
    None for a failed recovery."""
    if not diagnostics:
        return None
    result = []
    for layer in diagnostics["layers"]:
        dropped = layer.get("linear_dropped_by_collapse")
        result.append(
            {
                "turned_for_next_layer": layer.get("flipped_for_next_layer", []),
                "flipped_members": None if dropped is None else dropped["flipped_members"],
                "dropped_by_collapse_max": None
                if dropped is None
                else max(dropped["relative_size_per_student"], default=0.0),
                "absorbed_by_skip": layer.get("linear_absorbed_by_skip", []),
                "dropped_by_pruning": layer.get("linear_dropped_by_pruning", []),
            }
        )
    return result


LABEL_KEYS = (
    "teacher",
    "kind",
    "queries",
    "teacher_outputs",
    "activation",
    "sizes",
    "expansion",
    "expansion_id",
    "recovery_id",
    "gamma",
    "beta_deg",
)
