"""Expand-and-Cluster end to end: the settings, the :class:`Recovery` result, and the
entry points ``expand`` (train students), ``reconstruct`` (the cluster phase on trained
students) and ``recover`` (both).

The cluster phase goes layer by layer (:mod:`expand_and_cluster.collapse` does one layer):
once layer ``l`` is reconstructed, every student's layer ``l`` is replaced by the shared
reconstructed neurons (frozen), its layer ``l + 1`` is rewired to them, and the students are
retrained (:func:`retrain_above`) so that layer ``l + 1`` lives in a shared basis before it
is clustered. The output layer is then fitted by least squares, and pruning alternates with
fine-tuning (:mod:`expand_and_cluster.prune`).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from expand_and_cluster.activations import get_activation, linear_slope
from expand_and_cluster.cluster import CUT_RULES, min_students
from expand_and_cluster.collapse import (
    LayerRecovery,
    cluster_students_layer,
    collapse_layer,
    orient_for_next_layer,
    project_next_layer,
)
from expand_and_cluster.confidence import flag_summary, neuron_confidence
from expand_and_cluster.errors import InputError
from expand_and_cluster.finetune import FinetuneResult, FinetuneSettings
from expand_and_cluster.masks import MASK_METHODS, input_mask
from expand_and_cluster.network import MLP
from expand_and_cluster.prune import (
    NOISE_FLOOR_FACTOR,
    PRUNING_RULES,
    fit_output_layer,
    last_hidden_activations,
    noise_floor,
    prune_to_noise_floor,
    pruning_threshold,
)
from expand_and_cluster.resources import check_memory, estimate_recovery_memory
from expand_and_cluster.settings import check_settings, setting
from expand_and_cluster.student_polish import polish_students
from expand_and_cluster.students import (
    StudentEnsemble,
    TrainResult,
    TrainSettings,
    init_students,
    train_students,
)

log = logging.getLogger(__name__)

# The retraining between hidden layers (deep networks) starts next to a minimum, so it gets
# a shorter budget; like fine-tuning it runs on the CPU (recovery jobs declare no GPU).
RETRAIN_DEFAULTS: dict[str, Any] = {"max_epochs": 1000, "device": "cpu"}


# A fine-tuned network that leaves less than this fraction of the outputs' variance
# unexplained fits them exactly: float32's resolution (eps^2), the students' precision and
# often the outputs'. Measured on the suite's 2-input problems: every exact recovery ended
# below 1e-17, every one that missed a neuron the students could not resolve above 9e-8.
EXACT_FIT = float(np.finfo(np.float32).eps) ** 2

# How a deep network's next layer reaches the reconstructed layer's basis (RecoverySettings).
# project: least squares, no training; retrain: the layers above retrained from the
# projection; collapse: retrained from the collapse (the paper's way, for comparison).
BETWEEN_LAYERS = ("auto", "project", "retrain", "collapse")
AUTO_BETWEEN_LAYERS = ("project", "retrain")


def _default_retrain() -> TrainSettings:
    return TrainSettings(**RETRAIN_DEFAULTS)


@dataclass
class RecoverySettings:
    """Everything that decides a recovery besides the data."""

    n_students: int = setting(
        10, "Number of students N trained and clustered together.", minimum=2, flag="--students"
    )
    gamma: float = setting(
        0.5,
        "Fraction of the students that must share a neuron (gamma * N >= 2).",
        exclusive_minimum=0,
        maximum=1,
    )
    beta_deg: float = setting(
        60.0,
        "Largest median angle (degrees) inside a kept cluster (the paper's pi/3).",
        exclusive_minimum=0,
        maximum=180,
    )
    cut_rule: str = setting(
        "gap",
        "Where to cut the dendrogram (expand_and_cluster.cluster.choose_cut).",
        choices=CUT_RULES,
    )
    seed: int = setting(
        0,
        "Seed of the students (ecluster recover) and of the retraining between layers.",
        minimum=0,
    )
    min_explained_variance: float = setting(
        1e-4,
        "A neuron is pruned when the others explain all but this fraction of the outputs' "
        "variance without it (with pruning noise_floor: at most this fraction).",
        minimum=0,
        exclusive_maximum=1,
    )
    pruning: str = setting(
        "noise_floor",
        "How low the pruning threshold may go: noise_floor (prune at min_explained_variance; "
        "when the fine-tuned network then leaves more than "
        f"{NOISE_FLOOR_FACTOR:g} times the outputs' noise floor (the best healthy student's "
        "error) unexplained, but no more than the pruned neurons could explain, prune again "
        "at that level, so that a small real neuron survives outputs the students fit well) "
        "or fixed (min_explained_variance only) (expand_and_cluster.prune.prune_to_noise_floor).",
        choices=PRUNING_RULES,
    )
    confidence_resamples: int = setting(
        20,
        "Bootstrap resamples of the students that measure each recovered neuron's stability "
        "(0: not measured) (expand_and_cluster.confidence).",
        minimum=0,
    )
    input_mask: str = setting(
        "none",
        "Inputs left out of the first layer's clustering: none; constant (inputs that do not "
        "vary over the queries); informative (also those that tell nothing about the outputs) "
        "(expand_and_cluster.masks).",
        choices=MASK_METHODS,
    )
    between_layers: str = setting(
        "auto",
        "Deep networks: how the students' next layer is put in the basis of the reconstructed "
        "layer below before it is clustered. project: least squares of each student's own "
        "next-layer pre-activations on the reconstructed layer (exact for a student that "
        "implements the network, and fast). retrain: project, then retrain the layers above "
        "with the reconstructed layer frozen (settings in retrain; forgives students that "
        "stopped short). collapse: the paper's way, for comparison: each student's outgoing "
        "weights summed over its members of each cluster, then retrain as above. auto: "
        "project and retrain, keeping the smaller network of those that leave at most "
        "min_explained_variance of the outputs' variance unexplained after fine-tuning, else "
        "the better fit (expand_and_cluster.collapse.project_next_layer, collapse_layer).",
        choices=BETWEEN_LAYERS,
    )
    polish_iterations: int = setting(
        300,
        "When the fine-tuned network fits the queries better than every student but not "
        "exactly, the students' own error hides what is left: the students are polished by "
        "this many iterations of full-batch L-BFGS and the recovery is redone on them, the "
        "better fit kept (0: never) (expand_and_cluster.student_polish).",
        minimum=0,
    )
    train: TrainSettings = field(default_factory=TrainSettings)
    retrain: TrainSettings = field(default_factory=_default_retrain)  # between_layers retrain/auto
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        check_settings(self)
        min_students(self.gamma, self.n_students)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RecoverySettings:
        """From plain data (a config section), with ``train``, ``retrain`` and ``finetune``
        as dicts; what a dict leaves out keeps its default (the retraining's included)."""
        values = dict(values)
        for key, make in (
            ("train", TrainSettings),
            ("retrain", lambda **v: TrainSettings(**{**RETRAIN_DEFAULTS, **v})),
            ("finetune", FinetuneSettings),
        ):
            if isinstance(values.get(key), dict):
                values[key] = make(**values[key])
        return cls(**values)


@dataclass
class Recovery:
    network: MLP
    layers: list[LayerRecovery]
    output_fit_mse: float  # MSE right after the least-squares output fit, before fine-tuning
    finetune: FinetuneResult
    seconds: float
    excluded_students: list[int] = field(default_factory=list)  # failed (NaN/inf) students
    # Why the result may not be trusted (too few queries, narrow students, constant output).
    warnings: list[str] = field(default_factory=list)
    # The inputs the first layer's clustering compared (expand_and_cluster.masks); None: all.
    input_mask: np.ndarray | None = None
    input_mask_method: str = "none"
    # The outputs' noise floor and the pruning threshold it set (fractions of the variance).
    noise: dict[str, Any] = field(default_factory=dict)
    # Per hidden layer, per recovered neuron: support, spread, stability, contribution and
    # flags (expand_and_cluster.confidence.neuron_confidence).
    confidence: list[list[dict[str, Any]]] | None = None
    # Deep networks: how the next layers were put in the reconstructed basis ("used") and
    # the fine-tuned MSE of each way tried (RecoverySettings.between_layers).
    between_layers: dict[str, Any] | None = None
    # When the students' error hid what the network left unexplained: their polish
    # (RecoverySettings.polish_iterations), its effect, and whether its recovery was kept.
    polish: dict[str, Any] | None = None

    @property
    def widths(self) -> list[int]:
        return self.network.hidden_widths

    def diagnostics(self) -> dict:
        """Every cluster of every layer with its fate, as JSON-ready data."""
        layers = []
        for rec in self.layers:
            c = rec.clusters
            layers.append(
                {
                    "cut_height": c.cut_height,
                    "min_students": c.min_students,
                    "beta_deg": c.beta_deg,
                    "summary": c.summary(),
                    "clusters": [
                        {
                            "id": i,
                            "members": int(c.n_members[i]),
                            "students": int(c.n_students[i]),
                            "median_angle_deg": None
                            if np.isnan(c.median_angle_deg[i])
                            else float(c.median_angle_deg[i]),
                            "status": str(c.status[i]),
                        }
                        for i in range(len(c.members))
                    ],
                    "representative_students": rec.representative_student.tolist(),
                    "width_after_clustering": rec.width,
                    "pruned": rec.pruned,
                    "linear_dropped_by_collapse": rec.linear_dropped_by_collapse,
                    "projection_residual_per_student": rec.projection_residual,
                    "flipped_for_next_layer": rec.flipped_for_next_layer,
                    "linear_dropped_by_pruning": rec.linear_dropped_by_pruning,
                    "linear_absorbed_by_skip": rec.linear_absorbed_by_skip,
                    "neurons": None if self.confidence is None else self.confidence[len(layers)],
                }
            )
        warnings = list(self.warnings)
        if self.excluded_students:
            warnings.append(
                f"{len(self.excluded_students)} student(s) failed (loss NaN or inf) and were "
                f"excluded from clustering: {self.excluded_students}"
            )
        total = self.network.n_inputs
        kept = total if self.input_mask is None else int(np.sum(self.input_mask))
        return {
            "warnings": warnings,
            "excluded_students": self.excluded_students,
            "input_mask": {"method": self.input_mask_method, "kept": kept, "total": total},
            "noise": self.noise,
            "flags": flag_summary(self.confidence),
            "between_layers": self.between_layers,
            "student_polish": self.polish,
            "layers": layers,
            "output_fit_mse": self.output_fit_mse,
            "finetune": {
                "loss_before": self.finetune.loss_before,
                "loss_after": self.finetune.loss_after,
                "iterations": self.finetune.iterations,
            },
            "widths": self.widths,
        }


def recovery_summary(
    labels: dict[str, Any], n_students: int, recovery: Recovery | None, reason: str | None
) -> dict[str, Any]:
    """The summary of one recovery (``recovery.json``): what identifies it, whether a
    network was recovered (``status`` ok/failed, and why not), its widths and diagnostics.
    Written the same way by the study and by ``ecluster recover``."""
    if recovery is None:
        return {
            **labels,
            "n_students": n_students,
            "status": "failed",
            "reason": reason,
            "widths": None,
            "diagnostics": None,
        }
    return {
        **labels,
        "n_students": n_students,
        "status": "ok",
        "reason": None,
        "widths": recovery.widths,
        "diagnostics": recovery.diagnostics(),
    }


def expand(
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    student_widths: list[int],
    n_students: int,
    train: TrainSettings,
    seed: int,
    checkpoint: str | Path | None = None,
    label: str = "students",
) -> TrainResult:
    """The expansion phase: train ``n_students`` students of hidden widths
    ``student_widths`` on ``(x, y)``, seeded by ``seed`` (with ``checkpoint``, a killed
    run resumes where it stopped)."""
    x, y = _as_data(x, y)
    _check_data(x, y, student_widths)
    widths = [x.shape[1], *student_widths, y.shape[1]]
    log.info("%s: %d students of widths %s (%s)", label, n_students, widths, activation)
    students = init_students(widths, n_students, activation, seed, train.torch_dtype)
    return train_students(students, x, y, train, seed, checkpoint=checkpoint, label=label)


def reconstruct(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    losses: np.ndarray,
    failed: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    settings: RecoverySettings,
    teacher_widths: list[int] | None = None,
) -> Recovery:
    """The cluster phase on trained students (``weights[l]``: ``(students, out, in)``):
    cluster layer by layer, collapse, fit the output layer, prune and fine-tune. With
    ``teacher_widths`` (when known), students no wider than the teacher are warned about.
    With ``settings.input_mask`` other than none, the first layer is clustered on the inputs
    that carry signal in the queries (:func:`expand_and_cluster.masks.input_mask`)."""
    t0 = time.perf_counter()
    x, y = _as_data(x, y)
    mask = None
    if settings.input_mask != "none":
        mask = input_mask(x, settings.input_mask, y, settings.seed)
        log.info(
            "input mask %s: %d of %d inputs compared in the first layer",
            settings.input_mask,
            int(mask.sum()),
            len(mask),
        )
    student_widths = [w.shape[1] for w in weights[:-1]]
    warnings = trust_warnings(x, y, student_widths, teacher_widths)
    act = get_activation(activation)
    n_total = len(losses)
    losses = np.where(np.asarray(failed, dtype=bool), np.inf, np.asarray(losses, dtype=np.float64))
    healthy = np.flatnonzero(np.isfinite(losses))
    needed = min_students(settings.gamma, n_total)
    if len(healthy) < needed:
        raise InputError(
            f"only {len(healthy)} of {n_total} students trained without NaN/inf loss, fewer "
            f"than the {needed} that gamma={settings.gamma} requires: lower the learning "
            "rate, or train more students"
        )
    excluded = np.setdiff1d(np.arange(n_total), healthy).tolist()
    if excluded:
        log.warning("%d failed student(s) excluded from clustering: %s", len(excluded), excluded)
    # Students' losses below their machine epsilon squared are rounding (noise_floor).
    resolution = float(np.finfo(np.result_type(weights[0], np.float32)).eps) ** 2
    weights = [np.asarray(w, dtype=np.float64)[healthy] for w in weights]
    biases = [np.asarray(b, dtype=np.float64)[healthy] for b in biases]
    deep = len(weights) > 2
    ways = (
        AUTO_BETWEEN_LAYERS
        if settings.between_layers == "auto" and deep
        else [settings.between_layers]
    )

    def cluster_phase(
        weights: list[np.ndarray],
        biases: list[np.ndarray],
        student_losses: np.ndarray,
        resolution: float,
    ) -> tuple[_PhaseResult, dict[str, float], float]:
        """The kept pass of the cluster phase, each way's fine-tuned MSE, and the floor."""
        floor = noise_floor(y, student_losses, resolution)
        phase = _ClusterPhase(weights, biases, student_losses, healthy, n_total, x, y, activation)
        results = [phase.run(way, settings, mask, floor) for way in ways]
        tried = {r.between_layers: r.finetune.loss_after for r in results}
        return _best_fit(results, y, settings.min_explained_variance), tried, floor

    result, tried, floor = cluster_phase(weights, biases, losses[healthy], resolution)
    polish = None
    unexplained = _unexplained(result, y)
    if settings.polish_iterations and EXACT_FIT < unexplained < floor:
        log.info(
            "the network leaves %.1e of the output variance unexplained, less than any student "
            "(%.1e) but not nothing: polishing the students and recovering again",
            unexplained,
            floor,
        )
        polished = polish_students(weights, biases, activation, x, y, settings.polish_iterations)
        again = cluster_phase(*polished, float(np.finfo(np.float64).eps) ** 2)
        unexplained_again = _unexplained(again[0], y)
        polish = {
            "iterations": settings.polish_iterations,
            "student_loss_median": [
                float(np.median(losses[healthy])),
                float(np.median(polished[2])),
            ],
            "unexplained": [unexplained, unexplained_again],
            "kept": unexplained_again < unexplained,
        }
        log.info("recovery on the polished students %s", "kept" if polish["kept"] else "not kept")
        if polish["kept"]:
            result, tried, floor = again
    if len(tried) > 1:
        log.info(
            "between layers: kept the %s network (fine-tuned MSE %s)", result.between_layers, tried
        )
    layers, network, fit_mse, finetune = (
        result.layers,
        result.network,
        result.fit_mse,
        result.finetune,
    )
    pruned, linear, used = result.pruned, result.linear, result.threshold_used
    for rec, explained in zip(layers[:-1], linear[:-1], strict=True):
        rec.linear_dropped_by_pruning = explained
    layers[-1].linear_absorbed_by_skip = linear[-1]
    for number, (rec, removed) in enumerate(zip(layers, pruned, strict=True), 1):
        rec.pruned = removed
        if removed:
            log.info(
                "layer %d: pruned %d neuron(s) that explained almost nothing: %s",
                number,
                len(removed),
                removed,
            )
    confidence = neuron_confidence(
        layers,
        network,
        x,
        y,
        n_total,
        len(healthy),
        act.symmetry,
        {"gamma": settings.gamma, "beta_deg": settings.beta_deg, "cut_rule": settings.cut_rule},
        settings.confidence_resamples,
        floor,
        settings.seed,
    )
    seconds = time.perf_counter() - t0
    log.info("recovered hidden widths %s in %.1f s", network.hidden_widths, seconds)
    return Recovery(
        network,
        layers,
        fit_mse,
        finetune,
        seconds,
        excluded,
        warnings,
        mask,
        settings.input_mask,
        {
            "floor": floor,
            "pruning": settings.pruning,
            "pruning_threshold": pruning_threshold(
                floor, settings.pruning, settings.min_explained_variance
            ),
            "pruning_threshold_used": used,
        },
        confidence,
        {"used": result.between_layers, "fine_tuned_mse": tried} if deep else None,
        polish,
    )


def _best_fit(
    results: list[_PhaseResult], y: np.ndarray, min_explained_variance: float
) -> _PhaseResult:
    """Of the networks the ways between layers gave: those that leave at most
    ``min_explained_variance`` of the outputs' variance unexplained fit (the pruning's own
    standard for a neuron the network needs); the smallest of them, else the best fit."""
    fitting = [r for r in results if _unexplained(r, y) <= min_explained_variance]
    if fitting:
        return min(fitting, key=lambda r: (sum(r.network.hidden_widths), _unexplained(r, y)))
    return min(results, key=lambda r: _unexplained(r, y))


def _unexplained(result: _PhaseResult, y: np.ndarray) -> float:
    """The fraction of the outputs' variance the fine-tuned network leaves unexplained."""
    variance = max(float(np.sum(np.var(y, axis=0))), 1e-300)
    return result.finetune.loss_after * y.shape[1] / variance


def _pre_activations(
    weights: list[np.ndarray], biases: list[np.ndarray], layer: int, activation: str, x: np.ndarray
) -> list[np.ndarray]:
    """Per student (``weights[l]``: ``(N, out, in)``), the pre-activations of its hidden
    ``layer`` on ``x``, one student at a time (memory of one student's layers)."""
    return [
        last_hidden_activations(
            [w[s] for w in weights[:layer]], [b[s] for b in biases[:layer]], activation, x
        )
        @ weights[layer][s].T
        + biases[layer][s]
        for s in range(len(weights[0]))
    ]


@dataclass
class _PhaseResult:
    """One pass of the cluster phase: the layers, the network, and its pruning."""

    between_layers: str
    layers: list[LayerRecovery]
    network: MLP
    fit_mse: float
    finetune: FinetuneResult
    pruned: list[list[int]]
    linear: list[list[int]]
    threshold_used: float


@dataclass
class _ClusterPhase:
    """The healthy students (as trained) and the data a cluster phase runs on."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    losses: np.ndarray
    healthy: np.ndarray
    n_total: int
    x: np.ndarray
    y: np.ndarray
    activation: str

    def run(
        self, between_layers: str, settings: RecoverySettings, mask: np.ndarray | None, floor: float
    ) -> _PhaseResult:
        """Cluster layer by layer and collapse (a deep network's next layer put in the
        reconstructed layer's basis as ``between_layers`` says), fit the output layer by
        least squares, then prune and fine-tune."""
        act = get_activation(self.activation)
        x, y = self.x, self.y
        weights, biases = list(self.weights), list(self.biases)
        layers: list[LayerRecovery] = []
        n_hidden = len(weights) - 1
        # The students' own precision: the best one's relative error (noise_floor).
        precision = float(np.sqrt(floor)) if np.isfinite(floor) else 0.0
        for layer in range(n_hidden):
            rec = cluster_students_layer(
                weights[layer],
                biases[layer],
                self.losses,
                self.healthy,
                self.n_total,
                act.symmetry,
                settings.gamma,
                settings.beta_deg,
                settings.cut_rule,
                mask if layer == 0 else None,
                x.mean(axis=0) if layer == 0 and mask is not None else None,
            )
            log.info(
                "layer %d: %d neurons recovered (%s)", layer + 1, rec.width, rec.clusters.summary()
            )
            slope = linear_slope(self.activation) if act.symmetry.needs_linear_term else 0.5
            w_new, b_new, out_new, shift = collapse_layer(
                rec, weights[layer + 1], self.healthy, act.symmetry, slope
            )
            # The last hidden layer feeds the output, which is fitted by least squares below.
            below_last = layer < n_hidden - 1
            if below_last and between_layers == "collapse":
                weights[layer + 1] = out_new
                biases[layer + 1] = biases[layer + 1] + shift
            elif below_last:
                pre = _pre_activations(self.weights, self.biases, layer + 1, self.activation, x)
                below = last_hidden_activations(
                    [w[0] for w in weights[:layer]],
                    [b[0] for b in biases[:layer]],
                    self.activation,
                    x,
                )
                z = below @ w_new.T + b_new
                if act.symmetry.needs_linear_term:
                    signs = orient_for_next_layer(z, pre, act.numpy, precision)
                    w_new, b_new, z = w_new * signs[:, None], b_new * signs, z * signs
                    rec.flipped_for_next_layer = np.flatnonzero(signs < 0).tolist()
                weights[layer + 1], biases[layer + 1], rec.projection_residual = project_next_layer(
                    act.numpy(z), pre, precision
                )
                rec.linear_dropped_by_collapse = None  # the projection used the students as trained
            weights[layer] = np.repeat(w_new[None], len(self.healthy), axis=0)
            biases[layer] = np.repeat(b_new[None], len(self.healthy), axis=0)
            if below_last and between_layers != "project":
                rec.retrain = retrain_above(weights, biases, layer, self.activation, x, y, settings)
                weights, biases = rec.retrain.students.numpy()
            layers.append(rec)

        hidden_w = [w[0] for w in weights[:n_hidden]]
        hidden_b = [b[0] for b in biases[:n_hidden]]
        network, fit_mse = fit_output_layer(hidden_w, hidden_b, self.activation, x, y)
        log.info("output layer fitted by least squares: MSE %.3e", fit_mse)
        (network, finetune, pruned, linear), used = prune_to_noise_floor(
            network,
            x,
            y,
            settings.min_explained_variance,
            floor,
            settings.pruning,
            settings.finetune,
        )
        return _PhaseResult(
            between_layers, layers, network, fit_mse, finetune, pruned, linear, used
        )


def trust_warnings(
    x: np.ndarray,
    y: np.ndarray,
    student_widths: list[int],
    teacher_widths: list[int] | None = None,
) -> list[str]:
    """Reasons not to trust a recovery from these data, each logged as a warning: fewer
    queries than a student has parameters (students can fit them without learning the
    network: the paper's failure regime), students not wider than the teacher (E&C needs
    overparameterised students), outputs that are (nearly) constant (they tell nothing)."""
    widths = [x.shape[1], *student_widths, y.shape[1]]
    parameters = sum(i * o + o for i, o in itertools.pairwise(widths))
    warnings = []
    if len(x) < parameters:
        warnings.append(
            f"only {len(x)} queries for students of {parameters} parameters each: they can "
            "fit the queries without learning the network; use more queries"
        )
    if teacher_widths is not None and any(
        s <= t for s, t in zip(student_widths, teacher_widths, strict=False)
    ):
        warnings.append(
            f"students of hidden widths {student_widths} are not wider than the teacher's "
            f"{teacher_widths}: E&C needs wider students (expansion 4 is the default)"
        )
    scale = max(1.0, float(np.abs(y).max(initial=0.0)))
    if len(y) < 2 or float(y.std(axis=0).max()) <= 1e-9 * scale:
        warnings.append(
            "the teacher's outputs are constant (or nearly) on these queries: they tell "
            "nothing about its neurons; query a wider input range"
        )
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def retrain_above(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    layer: int,
    activation: str,
    x: np.ndarray,
    y: np.ndarray,
    settings: RecoverySettings,
) -> TrainResult:
    """Retrain every student with its layers up to ``layer`` frozen (they now hold the
    shared reconstructed neurons), so that the next layer settles in that shared basis."""
    rewired = StudentEnsemble(
        [torch.tensor(w) for w in weights], [torch.tensor(b) for b in biases], activation
    )
    return train_students(
        rewired,
        x,
        y,
        settings.retrain,
        settings.seed,
        frozen_layers=layer + 1,
        label=f"retrain after layer {layer + 1}",
    )


def recover(
    x: np.ndarray,
    y: np.ndarray | Callable[[np.ndarray], np.ndarray],
    activation: str,
    student_widths: list[int],
    settings: RecoverySettings | None = None,
    checkpoint: str | Path | None = None,
    teacher_widths: list[int] | None = None,
) -> tuple[Recovery, TrainResult]:
    """Expand-and-Cluster end to end from queries ``x`` (samples, in) and the unknown
    network's outputs ``y`` (or a ``torch.nn.Module`` or callable that computes them),
    given its activation and the students' hidden widths (one per hidden layer, wider than
    the unknown network's, e.g. 4x). Returns the recovery (network, widths, diagnostics) and the trained students.
    A request that cannot fit in memory is refused before any work."""
    settings = settings or RecoverySettings()
    settings.validate()
    get_activation(activation)
    x = np.asarray(x, dtype=np.float64)
    y = teacher_outputs(y, x)
    y_columns = 1 if np.ndim(y) == 1 else np.shape(y)[1]
    check_recovery_memory(len(x), x.shape[1], y_columns, student_widths, settings)
    trained = expand(
        x,
        y,
        activation,
        student_widths,
        settings.n_students,
        settings.train,
        settings.seed,
        checkpoint,
    )
    weights, biases = trained.students.numpy()
    recovery = reconstruct(
        weights,
        biases,
        trained.final_loss,
        trained.failed,
        x,
        y,
        activation,
        settings,
        teacher_widths,
    )
    return recovery, trained


def teacher_outputs(
    teacher: np.ndarray | Callable[[np.ndarray], np.ndarray], x: np.ndarray
) -> np.ndarray:
    """Outputs given as an array, or computed by a ``torch.nn.Module`` (under no_grad, in
    float64 when it allows) or any callable on ``x``."""
    if isinstance(teacher, torch.nn.Module):
        from expand_and_cluster.sources import module_outputs

        return module_outputs(teacher, x)
    if callable(teacher):
        return np.asarray(teacher(x), dtype=np.float64)
    return teacher


def check_recovery_memory(
    n_queries: int,
    n_inputs: int,
    n_outputs: int,
    student_widths: list[int],
    settings: RecoverySettings,
) -> None:
    """Refuse a recovery whose estimated memory exceeds what this machine has available
    (:mod:`expand_and_cluster.resources`), naming the figure and the setting to turn."""
    estimate = estimate_recovery_memory(
        n_queries,
        n_inputs,
        n_outputs,
        student_widths,
        settings.n_students,
        settings.train.batch_size,
        settings.train.dtype,
    )
    check_memory(
        estimate,
        f"a recovery with {settings.n_students} students of hidden widths {student_widths} "
        f"on {n_queries} queries",
    )


def _as_data(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return x, (y[:, None] if y.ndim == 1 else y)


def _check_data(x: np.ndarray, y: np.ndarray, student_widths: list[int]) -> None:
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(
            f"need inputs (samples, in) and outputs (samples, out) with as many samples; got {x.shape} and {y.shape}"
        )
    if len(x) == 0 or x.shape[1] == 0 or y.shape[1] == 0:
        raise InputError(
            f"need at least one query, one input and one output; got inputs {x.shape} and outputs {y.shape}"
        )
    if not np.isfinite(x).all():
        raise InputError("query inputs contain NaN or inf")
    if not np.isfinite(y).all():
        raise InputError(
            "teacher outputs contain NaN or inf: the teacher is unusable on these queries; check it or the query range"
        )
    if not student_widths or min(student_widths) < 1:
        raise InputError(
            f"student_widths needs one positive width per hidden layer; got {student_widths}"
        )
