"""Expand-and-Cluster end to end: train students, cluster layer by layer, collapse clusters
into neurons, fit the output layer, fine-tune.

Deep networks are handled layer by layer: once layer ``l`` is reconstructed, every student's
layer ``l`` is replaced by the shared reconstructed neurons (frozen), its layer ``l + 1`` is
rewired to them, and the students are retrained so that layer ``l + 1`` lives in a shared
basis before it is clustered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from expand_and_cluster.activations import Symmetry, get_activation
from expand_and_cluster.cluster import LayerClusters, cluster_layer, min_students
from expand_and_cluster.errors import InputError
from expand_and_cluster.finetune import FinetuneResult, FinetuneSettings, finetune_network
from expand_and_cluster.network import MLP
from expand_and_cluster.students import (
    StudentEnsemble,
    TrainResult,
    TrainSettings,
    init_students,
    train_students,
)
from expand_and_cluster.symmetry import (
    align_signs,
    canonicalise_neurons,
    neuron_vectors,
    outgoing_after_flip,
)

log = logging.getLogger(__name__)

# Hidden-layer pruning regresses on at most this many queries (it only needs to tell
# "explains something" from "explains nothing").
_PRUNE_SAMPLES = 5000


def _default_retrain() -> TrainSettings:
    return TrainSettings(max_epochs=1000)


@dataclass
class RecoverySettings:
    """Everything that decides a recovery besides the data. ``gamma``: the fraction of
    students that must share a neuron; ``beta_deg``: the largest median angle inside a
    kept cluster (the paper's pi/3)."""

    n_students: int = 10
    gamma: float = 0.5
    beta_deg: float = 60.0
    cut_rule: str = "gap"  # or "paper"; see expand_and_cluster.cluster.choose_cut
    seed: int = 0
    train: TrainSettings = field(default_factory=TrainSettings)
    retrain: TrainSettings = field(default_factory=_default_retrain)  # deep layers
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    # A neuron of the last hidden layer is pruned when the others explain all but this
    # fraction of what it feeds without it (see prune_network).
    min_explained_variance: float = 1e-4

    def validate(self) -> None:
        if not 0 <= self.min_explained_variance < 1:
            raise InputError(
                f"min_explained_variance must be in [0, 1); got {self.min_explained_variance}"
            )
        if self.n_students < 2:
            raise InputError(f"n_students must be at least 2; got {self.n_students}")
        min_students(self.gamma, self.n_students)
        if not 0 < self.beta_deg <= 180:
            raise InputError(f"beta_deg must be in (0, 180]; got {self.beta_deg}")


@dataclass(eq=False)
class LayerRecovery:
    """What happened at one hidden layer."""

    clusters: LayerClusters
    features: np.ndarray  # canonical vectors of all healthy students' neurons
    scales: np.ndarray  # removed scale of each neuron (norms for relu-like classes, else 1)
    student_of: np.ndarray  # student index (into the full ensemble) of each neuron
    representative_student: np.ndarray  # per kept cluster
    width: int  # width after clustering (before pruning)
    retrain: TrainResult | None = None  # retraining of the students after this layer (deep nets)
    pruned: list[int] = field(default_factory=list)  # neurons (of `width`) pruned at this layer


@dataclass
class Recovery:
    network: MLP
    layers: list[LayerRecovery]
    output_fit_mse: float  # MSE right after the least-squares output fit, before fine-tuning
    finetune: FinetuneResult
    seconds: float
    excluded_students: list[int] = field(default_factory=list)  # failed (NaN/inf) students

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
                }
            )
        warnings = []
        if self.excluded_students:
            warnings.append(
                f"{len(self.excluded_students)} student(s) failed (loss NaN or inf) and were "
                f"excluded from clustering: {self.excluded_students}"
            )
        return {
            "warnings": warnings,
            "excluded_students": self.excluded_students,
            "layers": layers,
            "output_fit_mse": self.output_fit_mse,
            "finetune": {
                "loss_before": self.finetune.loss_before,
                "loss_after": self.finetune.loss_after,
                "iterations": self.finetune.iterations,
            },
            "widths": self.widths,
        }


def expand(
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    student_widths: list[int],
    settings: RecoverySettings,
    checkpoint: str | Path | None = None,
    seed: int | None = None,
) -> TrainResult:
    """The expansion phase: train ``settings.n_students`` students of hidden widths
    ``student_widths`` on ``(x, y)``."""
    x, y = _as_data(x, y)
    _check_data(x, y, student_widths)
    seed = settings.seed if seed is None else seed
    widths = [x.shape[1], *student_widths, y.shape[1]]
    log.info("expand: %d students of widths %s (%s)", settings.n_students, widths, activation)
    students = init_students(
        widths, settings.n_students, activation, seed, settings.train.torch_dtype
    )
    return train_students(students, x, y, settings.train, seed, checkpoint=checkpoint)


def reconstruct(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    losses: np.ndarray,
    failed: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    activation: str,
    settings: RecoverySettings,
) -> Recovery:
    """The cluster phase on trained students (``weights[l]``: ``(students, out, in)``):
    cluster layer by layer, collapse, fit the output layer, fine-tune, prune."""
    t0 = time.perf_counter()
    x, y = _as_data(x, y)
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
    weights = [np.asarray(w, dtype=np.float64)[healthy] for w in weights]
    biases = [np.asarray(b, dtype=np.float64)[healthy] for b in biases]
    layers: list[LayerRecovery] = []
    n_hidden = len(weights) - 1
    for layer in range(n_hidden):
        rec = _reconstruct_layer(
            weights[layer], biases[layer], losses[healthy], healthy, n_total, act.symmetry, settings
        )
        log.info(
            "layer %d: %d neurons recovered (%s)", layer + 1, rec.width, rec.clusters.summary()
        )
        w_new, b_new, out_new, shift = _collapse(rec, weights[layer + 1], healthy, act.symmetry)
        weights[layer] = np.repeat(w_new[None], len(healthy), axis=0)
        biases[layer] = np.repeat(b_new[None], len(healthy), axis=0)
        weights[layer + 1] = out_new
        biases[layer + 1] = biases[layer + 1] + shift
        if layer < n_hidden - 1:
            rewired = StudentEnsemble(
                [torch.tensor(w) for w in weights], [torch.tensor(b) for b in biases], activation
            )
            rec.retrain = train_students(
                rewired,
                x,
                y,
                settings.retrain,
                settings.seed,
                frozen_layers=layer + 1,
                label=f"retrain after layer {layer + 1}",
            )
            weights, biases = rec.retrain.students.numpy()
        layers.append(rec)

    hidden_w = [w[0] for w in weights[:n_hidden]]
    hidden_b = [b[0] for b in biases[:n_hidden]]
    network, fit_mse = fit_output_layer(hidden_w, hidden_b, activation, x, y)
    log.info("output layer fitted by least squares: MSE %.3e", fit_mse)
    # Prune, polish, and prune again: duplicates that were a little apart before
    # polishing coincide after it.
    network, pruned = prune_network(network, x, y, settings.min_explained_variance)
    network, finetune = finetune_network(network, x, y, settings.finetune)
    network, pruned_again = prune_network(network, x, y, settings.min_explained_variance)
    if any(pruned_again):
        network, finetune = finetune_network(network, x, y, settings.finetune)
    network, finetune, pruned_polished = _prune_with_polish(network, finetune, x, y, settings)
    for number, (rec, first, second, third) in enumerate(
        zip(layers, pruned, pruned_again, pruned_polished, strict=True), 1
    ):
        rec.pruned = _original_indices(_original_indices(first, second), third)
        if rec.pruned:
            log.info(
                "layer %d: pruned %d neuron(s) that explained almost nothing: %s",
                number,
                len(rec.pruned),
                rec.pruned,
            )
    seconds = time.perf_counter() - t0
    log.info("recovered hidden widths %s in %.1f s", network.hidden_widths, seconds)
    return Recovery(network, layers, fit_mse, finetune, seconds, excluded)


def recover(
    x: np.ndarray,
    y: np.ndarray | Callable[[np.ndarray], np.ndarray],
    activation: str,
    student_widths: list[int],
    settings: RecoverySettings | None = None,
    checkpoint: str | Path | None = None,
) -> tuple[Recovery, TrainResult]:
    """Expand-and-Cluster end to end from queries ``x`` (samples, in) and the unknown
    network's outputs ``y`` (or a callable that computes them), given its activation and
    the students' hidden widths (one per hidden layer, wider than the unknown network's,
    e.g. 4x). Returns the recovery (network, widths, diagnostics) and the trained students."""
    settings = settings or RecoverySettings()
    settings.validate()
    get_activation(activation)
    x = np.asarray(x, dtype=np.float64)
    y = y(x) if callable(y) else y
    trained = expand(x, y, activation, student_widths, settings, checkpoint)
    weights, biases = trained.students.numpy()
    recovery = reconstruct(
        weights, biases, trained.final_loss, trained.failed, x, y, activation, settings
    )
    return recovery, trained


def _as_data(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return x, (y[:, None] if y.ndim == 1 else y)


def _check_data(x: np.ndarray, y: np.ndarray, student_widths: list[int]) -> None:
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(
            f"need inputs (samples, in) and outputs (samples, out) with as many samples; got {x.shape} and {y.shape}"
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


def _select(ensemble: StudentEnsemble, keep: np.ndarray) -> StudentEnsemble:
    idx = torch.as_tensor(keep)
    return StudentEnsemble(
        [w[idx] for w in ensemble.weights], [b[idx] for b in ensemble.biases], ensemble.activation
    )


def _reconstruct_layer(
    weight: np.ndarray,  # (N, out, in) of the healthy students
    bias: np.ndarray,  # (N, out)
    losses: np.ndarray,  # (N,)
    student_ids: np.ndarray,  # (N,) index of each healthy student in the full ensemble
    n_total: int,  # students trained, failed ones included (gamma is a fraction of these)
    symmetry: Symmetry,
    settings: RecoverySettings,
) -> LayerRecovery:
    n, width = weight.shape[:2]
    features, scales = canonicalise_neurons(
        neuron_vectors(weight, bias).reshape(n * width, -1), symmetry
    )
    local_student = np.repeat(np.arange(n), width)
    clusters = cluster_layer(
        features,
        local_student,
        n_total,
        symmetry,
        settings.gamma,
        settings.beta_deg,
        settings.cut_rule,
    )
    if len(clusters.kept) == 0:
        raise InputError(
            f"no cluster passed the filters ({clusters.summary()}): the students did not agree "
            "on any neuron; train longer, lower gamma or raise beta"
        )
    # Each cluster's neuron comes from the lowest-loss student that has a member in it.
    representative = np.array(
        [min(local_student[clusters.members[c]], key=lambda s: losses[s]) for c in clusters.kept]
    )
    return LayerRecovery(
        clusters=clusters,
        features=features,
        scales=scales,
        student_of=student_ids[local_student],
        representative_student=student_ids[representative],
        width=len(clusters.kept),
    )


def _collapse(
    rec: LayerRecovery, next_weight: np.ndarray, student_ids: np.ndarray, symmetry: Symmetry
):
    """One neuron per kept cluster: the representative student's member (averaged over its
    duplicates, signs aligned) as incoming vector; for every student, the sum of its
    members' outgoing weights (scale and sign undone) as its outgoing weights.

    Returns ``(weight (K, in), bias (K,), next weights (N, next, K), next-bias shift (N, next))``.
    """
    n, n_next, width = next_weight.shape
    local_student = np.searchsorted(student_ids, rec.student_of)
    unit_index = np.tile(np.arange(width), n)
    kept = rec.clusters.kept
    incoming = np.empty((len(kept), rec.features.shape[1]))
    out_weights = np.zeros((n, n_next, len(kept)))
    shift = np.zeros((n, n_next))
    for slot, (c, rep) in enumerate(zip(kept, rec.representative_student, strict=True)):
        members = rec.clusters.members[c]
        students = local_student[members]
        own = rec.student_of[members] == rep
        signs = align_signs(rec.features[members], rec.features[members[own][0]], symmetry)
        incoming[slot] = (rec.features[members[own]] * signs[own, None]).mean(axis=0)
        outgoing = next_weight[students, :, unit_index[members]] * rec.scales[members, None]
        flipped, bias_shift = outgoing_after_flip(outgoing, signs, symmetry)
        np.add.at(out_weights[:, :, slot], students, flipped)
        np.add.at(shift, students, bias_shift)
    return incoming[:, :-1], incoming[:, -1], out_weights, shift


def fit_output_layer(hidden_w, hidden_b, activation, x, y) -> tuple[MLP, float]:
    """Least squares for the output weights and bias (and, for even+linear classes, the
    linear skip term) on top of fixed hidden layers; returns the network and its MSE."""
    sym = get_activation(activation).symmetry
    h = _last_hidden(hidden_w, hidden_b, activation, x)
    design = _design(h, x, sym)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    k = h.shape[1]
    skip = coef[k + 1 :].T if sym.needs_linear_term else None
    net = MLP([*hidden_w, coef[:k].T], [*hidden_b, coef[k]], activation, skip)
    return net, float(np.mean((design @ coef - y) ** 2))


def _last_hidden(hidden_w, hidden_b, activation, x) -> np.ndarray:
    """Output of the last of the given hidden layers (``x`` itself if there are none)."""
    f = get_activation(activation).numpy
    h = x
    for w, b in zip(hidden_w, hidden_b, strict=True):
        h = f(h @ w.T + b)
    return h


def _design(h: np.ndarray, x: np.ndarray, symmetry: Symmetry) -> np.ndarray:
    """Columns: last hidden layer, a constant, and the inputs for even+linear classes."""
    parts = [h, np.ones((len(h), 1))] + ([x] if symmetry.needs_linear_term else [])
    return np.concatenate(parts, axis=1)


def prune_network(
    network: MLP, x: np.ndarray, y: np.ndarray, min_explained_variance: float
) -> tuple[MLP, list[list[int]]]:
    """Remove hidden neurons that explain (almost) nothing of what they feed, top-down.

    The last hidden layer is judged by the output, every lower layer by the
    pre-activations of the (already pruned) layer above; what a layer feeds is then
    refitted by least squares on the kept neurons (:func:`greedy_prune`). Returns the
    pruned network and, per hidden layer, the removed neuron indices."""
    sym = get_activation(network.activation).symmetry
    f = get_activation(network.activation).numpy
    weights, biases = list(network.weights), list(network.biases)
    skip = network.skip_weight
    n_hidden = len(weights) - 1
    pruned: list[list[int]] = [[] for _ in range(n_hidden)]
    for layer in reversed(range(n_hidden)):
        inputs = network.hidden_activations(x)[layer - 1] if layer else x
        if layer < n_hidden - 1:
            inputs = inputs[:_PRUNE_SAMPLES]
        h = f(inputs @ weights[layer].T + biases[layer])
        if layer == n_hidden - 1:
            targets, below = y, x  # the output; the skip term is linear in the input
        else:
            targets, below = h @ weights[layer + 1].T + biases[layer + 1], inputs
        design = _design(h, below, sym)
        pruned[layer] = greedy_prune(design, targets, h.shape[1], min_explained_variance)
        if not pruned[layer]:
            continue
        keep = np.setdiff1d(np.arange(h.shape[1]), pruned[layer])
        columns = np.concatenate([keep, np.arange(h.shape[1], design.shape[1])])
        coef, *_ = np.linalg.lstsq(design[:, columns], targets, rcond=None)
        weights[layer], biases[layer] = weights[layer][keep], biases[layer][keep]
        weights[layer + 1], biases[layer + 1] = coef[: len(keep)].T, coef[len(keep)]
        if layer == n_hidden - 1 and sym.needs_linear_term:
            skip = coef[len(keep) + 1 :].T
        network = MLP(weights, biases, network.activation, skip)
    return network, pruned


def greedy_prune(
    design: np.ndarray, targets: np.ndarray, n_candidates: int, min_explained_variance: float
) -> list[int]:
    """Which of the first ``n_candidates`` columns of ``design`` to drop.

    Repeatedly drop the column whose removal raises the least-squares error of
    ``targets`` least, while that rise is below ``min_explained_variance`` times the
    targets' total variance. A duplicated neuron (its twin takes over) and a neuron with
    no net effect both go; a neuron that carries a share no other neuron can, stays."""
    if min_explained_variance <= 0:
        return []
    tolerance = min_explained_variance * float(np.sum(np.var(targets, axis=0)))
    alive = list(range(n_candidates))
    extra = list(range(n_candidates, design.shape[1]))
    pruned: list[int] = []
    while len(alive) > 1:
        rise = _drop_one_rise(design[:, alive + extra], targets)[: len(alive)]
        weakest = int(np.argmin(rise))
        if rise[weakest] >= tolerance:
            break
        pruned.append(alive.pop(weakest))
    return sorted(pruned)


def _prune_with_polish(network: MLP, finetune: FinetuneResult, x, y, settings: RecoverySettings):
    """Try removing each hidden layer's least important neuron and polishing again; keep
    the removal when the polished network still explains all but ``min_explained_variance``
    of the output variance and fits no worse than (twice) before. This catches what the drop-one test cannot: one neuron of the
    unknown network shared by two recovered neurons a few degrees apart, which only a
    re-polish merges."""
    tolerance = settings.min_explained_variance * float(np.sum(np.var(y, axis=0)))
    pruned: list[list[int]] = [[] for _ in network.hidden_widths]
    if settings.min_explained_variance <= 0:
        return network, finetune, pruned
    for layer in range(len(network.hidden_widths)):
        while network.hidden_widths[layer] > 1:
            weakest = int(np.argmin(_importance(network, x, layer)))
            trial = _without_neuron(network, layer, weakest)
            trial, result = finetune_network(trial, x, y, settings.finetune)
            # A merged duplicate polishes to the same loss or lower; a lost neuron does not.
            if not (result.loss_after < tolerance and result.loss_after <= 2 * finetune.loss_after):
                break
            network, finetune = trial, result
            pruned[layer].append(weakest)
            log.info(
                "layer %d: neuron %d removed; the polished network still fits (MSE %.2e)",
                layer + 1,
                weakest,
                result.loss_after,
            )
    return network, finetune, [_sequential_to_original(p) for p in pruned]


def _importance(network: MLP, x: np.ndarray, layer: int) -> np.ndarray:
    """Each neuron's contribution to what it feeds: outgoing weight norm times the spread
    of its activation."""
    h = network.hidden_activations(x[:_PRUNE_SAMPLES])[layer]
    return np.linalg.norm(network.weights[layer + 1], axis=0) * h.std(axis=0)


def _without_neuron(network: MLP, layer: int, neuron: int) -> MLP:
    weights, biases = list(network.weights), list(network.biases)
    weights[layer] = np.delete(weights[layer], neuron, axis=0)
    biases[layer] = np.delete(biases[layer], neuron)
    weights[layer + 1] = np.delete(weights[layer + 1], neuron, axis=1)
    return MLP(weights, biases, network.activation, network.skip_weight)


def _sequential_to_original(removed: list[int]) -> list[int]:
    """Indices removed one at a time (each numbered after the previous removals), in the
    numbering before any."""
    result: list[int] = []
    for index in removed:
        result = _original_indices(result, [index])
    return result


def _original_indices(first: list[int], second: list[int]) -> list[int]:
    """Indices removed by two pruning rounds, in the numbering before the first."""
    survivors = [i for i in range(max([*first, *second, -1]) + len(second) + 1) if i not in first]
    return sorted([*first, *(survivors[j] for j in second)])


def _drop_one_rise(design: np.ndarray, y: np.ndarray) -> np.ndarray:
    """For each column, how much the mean squared least-squares residual (summed over
    outputs) rises when that column is left out: ``coef_j^2 / (G^-1)_jj / n``."""
    gram = design.T @ design
    inverse = np.linalg.pinv(gram)
    coef = inverse @ (design.T @ y)
    diag = np.maximum(np.diag(inverse), 1e-300)
    return (coef**2).sum(axis=1) / diag / len(design)
