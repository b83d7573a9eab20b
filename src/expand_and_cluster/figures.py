"""Figures from stored results: the clustering of one recovery (the paper's Fig. 3 trio), its
alignment with the teacher, and the study-level figures.

Everything is drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``, no
pyplot), so no global state is touched and no display is needed. Inputs are what the store
and the metrics JSON hold: :func:`expand_and_cluster.store.read_clusters` datasets and
metrics dicts.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from scipy.cluster.hierarchy import dendrogram, leaves_list
from scipy.spatial.distance import squareform

from expand_and_cluster.cluster import condensed_distances
from expand_and_cluster.identifiability import ranked_problems
from expand_and_cluster.outputs import parse_output_transform
from expand_and_cluster.tables import robustness_points

STATUS_COLOURS = {"kept": "tab:green", "too_few_students": "tab:blue", "unaligned": "tab:red"}
STATUS_LABELS = {"kept": "kept", "too_few_students": "too few students", "unaligned": "unaligned"}
ABOVE_CUT_COLOUR = "0.65"
CUT_COLOUR = "tab:orange"
# Angles are computed in float64; below about 1e-6 degrees they are rounding noise, and 0 has
# no place on a log axis: smaller angles are drawn at this floor.
ANGLE_FLOOR_DEG = 1e-7
# Bars in the cluster-angle chart (the largest clusters; the rest are counted in the title).
MAX_BARS = 60
# Dendrograms with more leaves are drawn truncated to this many leaves.
MAX_DENDROGRAM_LEAVES = 2000


def save(fig: Figure, path: str | Path, dpi: int = 100) -> None:
    """Write ``fig`` as PNG (or whatever the suffix says)."""
    fig.savefig(path, dpi=dpi)


def message_figure(title: str, text: str) -> Figure:
    """A figure that only says something, e.g. why a recovery has no clusters to show."""
    fig = Figure(figsize=(6, 2.5))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, _wrap(text, 80), ha="center", va="center", fontsize=9, transform=ax.transAxes)
    return fig


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width)) or text


def _status_names(layer: xr.Dataset) -> np.ndarray:
    codes = list(layer.attrs["status_codes"])
    return np.array([codes[int(c)] for c in layer["status"].values])


def _legend_patches() -> list[Patch]:
    return [Patch(color=c, label=STATUS_LABELS[s]) for s, c in STATUS_COLOURS.items()]


# -- one recovery: the Fig. 3 trio ------------------------------------------------------------


def similarity_figure(
    layers: list[xr.Dataset], sign_invariant: bool, max_neurons: int = 5000
) -> Figure:
    """Distances between the canonical incoming vectors of all students' neurons, one panel
    per hidden layer, rows and columns in dendrogram order: teacher neurons show as dark
    blocks on the diagonal. Layers with more than ``max_neurons`` neurons are not drawn
    (the matrix is quadratic); the panel says so."""
    fig = Figure(figsize=(4.2 * len(layers), 4.0))
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(1, len(layers), i + 1)
        n = layer.sizes["neuron"]
        if n > max_neurons:
            ax.set_axis_off()
            ax.text(
                0.5,
                0.5,
                f"{n} neurons: similarity matrix not drawn\n"
                f"(more than max_similarity_neurons = {max_neurons})",
                ha="center",
                va="center",
                fontsize=9,
                transform=ax.transAxes,
            )
            ax.set_title(f"hidden layer {i + 1}")
            continue
        order = leaves_list(layer["linkage"].values)
        features = layer["features"].values.astype(np.float64)[order]
        matrix = squareform(condensed_distances(features, sign_invariant))
        image = ax.imshow(matrix, cmap="viridis_r", interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="distance")
        ax.set_title(f"hidden layer {i + 1}: {n} neurons")
        ax.set_xlabel("neuron (dendrogram order)")
        ax.set_ylabel("neuron (dendrogram order)")
    fig.suptitle(
        "Similarity of the students' neurons" + (" (sign ignored)" if sign_invariant else "")
    )
    fig.tight_layout()
    return fig


def _link_colours(layer: xr.Dataset) -> dict[int, str]:
    """Colour of every merge (scipy node id): above the cut grey, below it the colour of
    the fate of the cluster it belongs to."""
    merges = layer["linkage"].values
    n = len(merges) + 1
    labels = layer["label"].values
    status = _status_names(layer)
    cut = int(layer.attrs["cut_index"])
    first_leaf = np.empty(2 * n - 1, dtype=np.int64)
    first_leaf[:n] = np.arange(n)
    colours = {}
    for i, (a, _) in enumerate(merges[:, :2].astype(np.int64)):
        first_leaf[n + i] = first_leaf[a]
        if i <= cut:
            colours[n + i] = STATUS_COLOURS[status[labels[first_leaf[n + i]]]]
        else:
            colours[n + i] = ABOVE_CUT_COLOUR
    return colours


def dendrogram_figure(layers: list[xr.Dataset]) -> Figure:
    """Average-linkage dendrogram per hidden layer with the cut height; branches below the
    cut are coloured by their cluster's fate."""
    fig = Figure(figsize=(6.5, 3.2 * len(layers)))
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(len(layers), 1, i + 1)
        merges = layer["linkage"].values
        colours = _link_colours(layer)
        n = len(merges) + 1
        truncate = (
            {"truncate_mode": "lastp", "p": MAX_DENDROGRAM_LEAVES}
            if n > MAX_DENDROGRAM_LEAVES
            else {}
        )
        dendrogram(
            merges,
            ax=ax,
            no_labels=True,
            link_color_func=lambda k, colours=colours: colours.get(k, ABOVE_CUT_COLOUR),
            **truncate,
        )
        height = float(layer.attrs["cut_height"])
        ax.axhline(height, color=CUT_COLOUR, linestyle="--", linewidth=1.2)
        note = f", truncated to {MAX_DENDROGRAM_LEAVES} leaves" if truncate else ""
        ax.set_title(f"hidden layer {i + 1}: {n} neurons, cut at {height:.3g}{note}", fontsize=10)
        ax.set_ylabel("merge distance")
        handles = [
            *_legend_patches(),
            Line2D([], [], color=CUT_COLOUR, linestyle="--", label="cut"),
        ]
        ax.legend(handles=handles, fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def cluster_angles_figure(
    layers: list[xr.Dataset], final_widths: list[int] | None = None
) -> Figure:
    """Median pairwise angle inside each cluster at the cut (largest clusters first)
    against beta, coloured by fate; the label on each bar is its number of distinct
    students (at least ``min_students`` are needed). ``final_widths`` (the recovered widths
    after pruning) are quoted in the titles when given."""
    fig = Figure(figsize=(7.0, 3.0 * len(layers)))
    for i, layer in enumerate(layers):
        ax = fig.add_subplot(len(layers), 1, i + 1)
        angles = layer["median_angle_deg"].values
        status = _status_names(layer)
        students = layer["n_students"].values
        multi = np.flatnonzero(layer["n_members"].values > 1)
        shown = multi[:MAX_BARS]
        ax.bar(
            np.arange(len(shown)),
            angles[shown],
            color=[STATUS_COLOURS[s] for s in status[shown]],
            edgecolor="none",
        )
        for x, c in enumerate(shown):
            ax.text(x, angles[c], str(students[c]), ha="center", va="bottom", fontsize=6)
        beta = float(layer.attrs["beta_deg"])
        ax.axhline(beta, color="k", linestyle="--", linewidth=1.0, label=f"beta = {beta:g} deg")
        singletons = int((layer["n_members"].values == 1).sum())
        hidden = len(multi) - len(shown)
        extra = f"; {hidden} smaller clusters not shown" if hidden else ""
        kept = int((status == "kept").sum())
        final = f" ({final_widths[i]} after pruning)" if final_widths is not None else ""
        ax.set_title(
            f"hidden layer {i + 1}: {kept} kept{final} of {len(multi)} clusters with 2+ "
            f"members, {singletons} single neurons; needs {int(layer.attrs['min_students'])} "
            f"students{extra}",
            fontsize=9,
        )
        ax.set_ylabel("median angle (deg)")
        ax.set_xlabel("cluster (largest first)")
        ax.set_ylim(
            0, max(beta * 1.25, float(np.nanmax(angles[shown])) * 1.1 if len(shown) else 1.0)
        )
        ax.legend(
            handles=[*_legend_patches(), Line2D([], [], color="k", linestyle="--", label="beta")],
            fontsize=8,
        )
    fig.tight_layout()
    return fig


def alignment_figure(metrics: dict[str, Any]) -> Figure:
    """Angle between each teacher neuron and its match in the recovered network (log scale),
    per hidden layer; unmatched teacher neurons ("missing") and recovered neurons that
    match no teacher neuron ("excess") are marked."""
    if metrics.get("angles_deg") is None:
        return message_figure("No recovered network", f"recovery failed: {metrics.get('reason')}")
    layers = metrics["angles_deg"]
    fig = Figure(figsize=(6.0, 2.8 * len(layers)))
    for i, angles in enumerate(layers):
        ax = fig.add_subplot(len(layers), 1, i + 1)
        n = len(angles)
        found = [j for j, a in enumerate(angles) if a is not None]
        missing = [j for j, a in enumerate(angles) if a is None]
        heights = [max(angles[j], ANGLE_FLOOR_DEG) for j in found]
        ax.bar(found, heights, color="tab:green", label="teacher neuron (matched)")
        top = 180.0
        if missing:
            ax.bar(missing, [top] * len(missing), color="tab:red", alpha=0.4, label="missing")
        excess = int(metrics["excess"][i])
        if excess:
            ax.bar(
                np.arange(n, n + excess),
                [top] * excess,
                color="none",
                edgecolor="tab:purple",
                hatch="//",
                label="excess (recovered, no teacher match)",
            )
        ax.set_yscale("log")
        ax.set_ylim(ANGLE_FLOOR_DEG / 2, top * 2)
        ax.set_xlim(-0.6, n + excess - 0.4)
        ax.set_xticks(range(n + excess))
        ax.set_xticklabels([str(j) for j in range(n)] + ["+"] * excess, fontsize=7)
        ax.set_ylabel("angle to teacher (deg)")
        ax.set_xlabel("teacher neuron")
        ax.set_title(
            f"hidden layer {i + 1}: teacher {metrics['teacher_widths'][i]} neurons, recovered "
            f"{metrics['widths'][i]}",
            fontsize=10,
        )
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        f"{metrics.get('teacher', '')}  RMSE on held-out inputs {metrics['rmse']:.2e}", fontsize=10
    )
    fig.tight_layout()
    return fig


# -- the study ---------------------------------------------------------------------------------


def _by_expansion(metrics: list[dict[str, Any]], key: str) -> dict[Any, dict[float, list[dict]]]:
    groups: dict[Any, dict[float, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for m in metrics:
        groups[m[key]][float(m["expansion"])].append(m)
    return groups


def matched_angles(metrics: list[dict[str, Any]]) -> list[float]:
    """The angle of every matched teacher neuron to its recovered neuron, over ``metrics``."""
    return [a for m in metrics for layer in (m["angles_deg"] or []) for a in layer if a is not None]


def identifiability_figure(metrics: list[dict[str, Any]]) -> Figure:
    """Synthetic problems: (left) the fraction recovered exactly (status ``exact`` in the
    metrics: right widths, every teacher neuron close to its match) against the expansion factor, per activation; (right) the angle of every
    matched teacher neuron, per activation and expansion (log scale)."""
    synthetic = [m for m in metrics if m.get("kind") == "synthetic"]
    fig = Figure(figsize=(10.0, 4.0))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    if not synthetic:
        for ax in (left, right):
            ax.set_axis_off()
            ax.text(
                0.5, 0.5, "no synthetic teachers in this study", ha="center", transform=ax.transAxes
            )
        return fig
    groups = _by_expansion(synthetic, "activation")
    activations = sorted(groups)
    expansions = sorted({float(m["expansion"]) for m in synthetic})
    colours = {a: f"C{i}" for i, a in enumerate(activations)}
    offsets = np.linspace(-0.08, 0.08, len(activations)) if len(activations) > 1 else [0.0]
    for act, offset in zip(activations, offsets, strict=True):
        xs = sorted(groups[act])
        fractions = [np.mean([m["status"] == "exact" for m in groups[act][x]]) for x in xs]
        counts = [len(groups[act][x]) for x in xs]
        left.plot(
            np.log2(xs) + offset,
            fractions,
            "o-",
            color=colours[act],
            label=f"{act} ({counts[0]} problems)",
        )
        for x in xs:
            angles = matched_angles(groups[act][x])
            if angles:
                jitter = np.linspace(-0.05, 0.05, len(angles))
                right.scatter(
                    np.log2(x) + offset + jitter,
                    np.maximum(angles, ANGLE_FLOOR_DEG),
                    s=8,
                    color=colours[act],
                    alpha=0.7,
                )
    overall = [
        np.mean([m["status"] == "exact" for m in synthetic if float(m["expansion"]) == x])
        for x in expansions
    ]
    left.plot(np.log2(expansions), overall, "k--", linewidth=1, label="all")
    for ax in (left, right):
        ax.set_xticks(np.log2(expansions))
        ax.set_xticklabels([f"{x:g}" for x in expansions])
        ax.set_xlabel("expansion (student width / teacher width)")
    left.set_ylim(-0.05, 1.05)
    left.set_ylabel("fraction recovered exactly")
    left.set_title(f"{len({m['teacher'] for m in synthetic})} synthetic teachers", fontsize=10)
    left.legend(fontsize=7)
    right.set_yscale("log")
    right.set_ylim(ANGLE_FLOOR_DEG / 2, 180)
    right.set_ylabel("angle to teacher neuron (deg)")
    right.set_title("matched teacher neurons", fontsize=10)
    right.legend(
        handles=[
            Line2D([], [], marker="o", linestyle="", color=colours[a], label=a) for a in activations
        ],
        fontsize=7,
    )
    fig.tight_layout()
    return fig


def expansion_control_figure(metrics: list[dict[str, Any]]) -> Figure:
    """Per teacher, the median final training loss of its students at every expansion (a
    vertical bar spans the best to the worst student), and the loss of the network
    recovered from the widest students, on the same queries (log scale; lines join one
    teacher's points). Students as wide as the teacher (expansion 1) are the control: they
    tend to stop at higher loss."""
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    first_setting = sorted({m["recovery_id"] for m in metrics})[:1]
    metrics = [m for m in metrics if m["recovery_id"] in first_setting]
    expansions = sorted({float(m["expansion"]) for m in metrics})
    if not metrics:
        ax.set_axis_off()
        return fig
    widest = expansions[-1]
    categories = [f"students x{x:g}" for x in expansions] + [f"recovered from x{widest:g}"]
    by_teacher: dict[str, dict[str, float]] = defaultdict(dict)
    spread: dict[str, dict[str, tuple[float, float]]] = defaultdict(dict)
    kinds = {}
    for m in metrics:
        kinds[m["teacher"]] = m["kind"]
        if m["student_loss_median"] is not None:
            category = f"students x{float(m['expansion']):g}"
            by_teacher[m["teacher"]][category] = m["student_loss_median"]
            losses = [v for v in m["student_loss"] if v is not None]
            spread[m["teacher"]][category] = (min(losses), max(losses))
        if float(m["expansion"]) == widest and m.get("recovered_loss") is not None:
            by_teacher[m["teacher"]][categories[-1]] = m["recovered_loss"]
    floor = 1e-20
    markers = {"synthetic": "o"}  # trained teachers: squares
    for i, (teacher, values) in enumerate(sorted(by_teacher.items())):
        xs = [j for j, c in enumerate(categories) if c in values]
        ys = [max(values[categories[j]], floor) for j in xs]
        jitter = (i / max(1, len(by_teacher) - 1) - 0.5) * 0.3
        ax.plot(np.array(xs) + jitter, ys, "-", color="0.8", linewidth=0.6, zorder=1)
        for j in xs:
            if categories[j] in spread[teacher]:
                lo, hi = spread[teacher][categories[j]]
                ax.vlines(
                    j + jitter,
                    max(lo, floor),
                    max(hi, floor),
                    color=f"C{j}",
                    alpha=0.35,
                    linewidth=1,
                    zorder=1,
                )
        ax.scatter(
            np.array(xs) + jitter,
            ys,
            s=14,
            zorder=2,
            marker=markers.get(kinds[teacher], "s"),
            color=[f"C{j}" for j in xs],
        )
    ax.set_yscale("log")
    ax.set_xticks(range(len(categories)))
    ax.set_xticklabels(categories)
    ax.set_ylabel("final training loss (MSE on the queries)")
    ax.set_title(
        f"{len(by_teacher)} teachers; students: median (bar: best to worst student)"
        + (f"; recovery {first_setting[0]}" if first_setting else ""),
        fontsize=9,
    )
    ax.legend(
        handles=[
            Line2D([], [], marker=mk, linestyle="", color="0.3", label=k)
            for k, mk in markers.items()
            if k in kinds.values()
        ],
        fontsize=8,
    )
    fig.tight_layout()
    return fig


RECOVERY_COLOURS = {
    "exact": "tab:green",
    "approximate": "tab:olive",
    "inexact": "tab:red",
    "failed": "black",
}
ACTIVATION_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")


def ease_figure(metrics: list[dict[str, Any]]) -> Figure:
    """Synthetic problems ordered along the ease axis (easiest left): (top) each problem's
    ease, the share of its expansion-1 students that hold its hardest teacher neuron;
    (middle) its recovery status at every expansion, one row per expansion, the activation
    by marker; (bottom) the distribution of every matched teacher neuron's angle to its
    recovered neuron, per expansion (cumulative, log scale)."""
    synthetic = [m for m in metrics if m.get("kind") == "synthetic"]
    fig = Figure(figsize=(11.0, 8.0))
    top, middle, bottom = (fig.add_subplot(3, 1, k) for k in (1, 2, 3))
    if not synthetic:
        for ax in (top, middle, bottom):
            ax.set_axis_off()
        top.text(0.5, 0.5, "no synthetic teachers in this study", ha="center")
        return fig
    problems = ranked_problems(synthetic)
    expansions = sorted({float(m["expansion"]) for m in synthetic})
    activations = sorted({p.activation for p in problems})
    markers = {
        a: ACTIVATION_MARKERS[i % len(ACTIVATION_MARKERS)] for i, a in enumerate(activations)
    }
    ranks = np.arange(1, len(problems) + 1)
    ease_values = np.array([np.nan if p.ease.support is None else p.ease.support for p in problems])
    top.plot(ranks, ease_values, "-", color="0.6", linewidth=0.8)
    for act in activations:
        mine = [i for i, p in enumerate(problems) if p.activation == act]
        top.scatter(ranks[mine], ease_values[mine], marker=markers[act], s=16, label=act)
    top.set_ylim(-0.05, 1.05)
    top.set_ylabel("ease: support of the\nhardest teacher neuron\n(expansion-1 students)")
    top.set_title(
        f"{len(problems)} synthetic problems, easiest left"
        + ("" if 1.0 in expansions else " (no expansion 1 in this study: ease undefined)"),
        fontsize=10,
    )
    top.legend(fontsize=7, ncol=len(activations))
    for j, x in enumerate(expansions):
        for i, p in enumerate(problems):
            if p.status(x):
                middle.scatter(
                    ranks[i],
                    j,
                    marker=markers[p.activation],
                    s=18,
                    color=RECOVERY_COLOURS.get(p.status(x), "0.5"),
                )
        exact = np.mean([p.status(x) == "exact" for p in problems])
        middle.text(len(problems) + 1, j, f" {100 * exact:.0f}% exact", va="center", fontsize=8)
    middle.set_yticks(range(len(expansions)))
    middle.set_yticklabels([f"x{x:g}" for x in expansions])
    middle.set_ylim(-0.6, len(expansions) - 0.4)
    middle.set_xlim(0, len(problems) + 1 + 0.12 * len(problems))
    top.set_xlim(middle.get_xlim())
    middle.set_ylabel("expansion")
    middle.set_xlabel("problem, ordered by ease")
    middle.legend(
        handles=[Patch(color=c, label=s) for s, c in RECOVERY_COLOURS.items()],
        fontsize=7,
        ncol=4,
        loc="upper left",
    )
    for x in expansions:
        angles = np.sort(
            np.maximum(
                matched_angles([m for m in synthetic if float(m["expansion"]) == x]),
                ANGLE_FLOOR_DEG,
            )
        )
        if len(angles):
            bottom.step(
                angles, np.arange(1, len(angles) + 1) / len(angles), where="post", label=f"x{x:g}"
            )
    bottom.axvline(1.0, color="0.5", linestyle=":", linewidth=1)
    bottom.set_xscale("log")
    bottom.set_xlim(ANGLE_FLOOR_DEG / 2, 180)
    bottom.set_xlabel("angle of a matched teacher neuron to its recovered neuron (deg)")
    bottom.set_ylabel("fraction of\nteacher neurons")
    bottom.legend(fontsize=7, title="expansion", title_fontsize=7)
    fig.tight_layout()
    return fig


def trained_teachers_figure(metrics: list[dict[str, Any]]) -> Figure:
    """Teachers trained on a data set (the paper's MNIST summary), one row per teacher and
    query design, labelled teacher / recovered / student widths per hidden layer. Left: each
    expansion's students' RMSE on the queries (dots) and the RMSE of the network recovered
    from the widest students (star). Right: the median angle of each hidden layer's teacher
    neurons to their recovered neurons (the digit is the layer; over the input mask's inputs
    when the recovery had one), against the exact-recovery angle."""
    first_setting = sorted({m["recovery_id"] for m in metrics})[:1]
    trained = [m for m in metrics if m["kind"] != "synthetic" and m["recovery_id"] in first_setting]
    if not trained:
        return message_figure("Teachers trained on a data set", "this study has none")
    by_teacher: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in trained:
        by_teacher[m["teacher"]].append(m)
    teachers = sorted(by_teacher, reverse=True)  # the first teacher on top
    fig = Figure(figsize=(12, 0.4 * len(teachers) + 2))
    left, right = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    expansions = sorted({float(m["expansion"]) for m in trained})
    labels = []
    for row, teacher in enumerate(teachers):
        ms = sorted(by_teacher[teacher], key=lambda m: float(m["expansion"]))
        for j, m in enumerate(ms):
            rmse = np.sqrt(np.maximum([v for v in m["student_loss"] if v is not None], 1e-24))
            colour = f"C{expansions.index(float(m['expansion']))}"
            left.scatter(rmse, np.full(len(rmse), row + 0.12 * j), s=10, color=colour, alpha=0.7)
        widest = ms[-1]
        labels.append(f"{teacher}  {_widths_label(widest)}")
        if widest.get("recovered_loss") is not None:
            recovered = np.sqrt(max(widest["recovered_loss"], 1e-24))  # log axis: no zero
            left.scatter(recovered, row, marker="*", s=90, color="k")
        for layer, angle in enumerate(_layer_medians(widest)):
            if angle is not None:
                right.scatter(
                    max(angle, ANGLE_FLOOR_DEG), row, marker=f"${layer + 1}$", s=50, color="k"
                )
    left.set_xscale("log")
    left.set_yticks(range(len(teachers)))
    left.set_yticklabels(labels, fontsize=7)
    left.set_xlabel("RMSE on the queries")
    left.legend(
        handles=[
            Line2D([], [], marker="o", linestyle="", color=f"C{i}", label=f"students x{x:g}")
            for i, x in enumerate(expansions)
        ]
        + [Line2D([], [], marker="*", linestyle="", color="k", label="recovered")],
        fontsize=7,
    )
    left.set_title("teacher / recovered / student widths per hidden layer", fontsize=9)
    exact = trained[0]["exact_angle_deg"]
    right.axvline(exact, color="0.6", linewidth=0.8, label=f"exact ({exact:g} deg)")
    right.set_xscale("log")
    right.set_xlabel("median angle to the teacher's neurons (deg)")
    right.set_title("digit = hidden layer", fontsize=9)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _widths_label(m: dict[str, Any]) -> str:
    """``32 / 34 / 128`` per hidden layer: teacher, recovered, student widths."""
    recovered = m["widths"] or ["-"] * len(m["teacher_widths"])
    return ", ".join(
        f"{t}/{r}/{s}"
        for t, r, s in zip(m["teacher_widths"], recovered, m["student_widths"], strict=True)
    )


def _layer_medians(m: dict[str, Any]) -> list[float | None]:
    """Median angle of each hidden layer's teacher neurons to their assigned recovered
    neurons, however large (None when none)."""
    out = []
    for layer in m.get("assigned_angles_deg") or [[] for _ in m["teacher_widths"]]:
        matched = [a for a in layer if a is not None]
        out.append(float(np.median(matched)) if matched else None)
    return out


# Markers of the output transforms' families in the robustness figure.
TRANSFORM_MARKERS = {"none": "*", "noise": "o", "digits": "s", "float16": "^", "bfloat16": "v"}


def robustness_figure(metrics: list[dict[str, Any]]) -> Figure:
    """How recovery degrades with the outputs' imperfection: the fraction of synthetic
    problems recovered exactly, the median angle of the matched teacher neurons and the
    width error (:func:`expand_and_cluster.tables.robustness_points`), against the error the
    transform applied to the outputs (log axis). One line per activation (and recovery
    setting when there are several), markers by transform family; the exact outputs (error
    0, no place on a log axis) are drawn a decade left of the mildest transform."""
    points = robustness_points(metrics)
    if not points:
        return message_figure("Imperfect outputs", "no synthetic recoveries in this study")
    errors = [p["output_error"] for p in points if p["output_error"] > 0]
    exact_x = min(errors, default=1.0) / 10
    settings = sorted({(p["expansion"], p["gamma"], p["beta_deg"]) for p in points})
    activations = sorted({p["activation"] for p in points})
    fig = Figure(figsize=(13.5, 4.2))
    axes = fig.subplots(1, 3, sharex=True)
    panels = {
        "fraction_exact": "fraction recovered exactly",
        "angle_median_deg": "median angle of matched teacher neurons (deg)",
        "width_error": "width error: sum |recovered - teacher| / teacher",
    }
    for i, act in enumerate(activations):
        for j, setting in enumerate(settings):
            line = sorted(
                (
                    p
                    for p in points
                    if p["activation"] == act
                    and (p["expansion"], p["gamma"], p["beta_deg"]) == setting
                ),
                key=lambda p: p["output_error"],
            )
            if not line:
                continue
            xs = [p["output_error"] or exact_x for p in line]
            label = act
            if len(settings) > 1:
                label += " x{:g} g{:g} b{:g}".format(*setting)
            for ax, key in zip(axes, panels, strict=True):
                ys = [np.nan if p[key] is None else p[key] for p in line]
                if key == "angle_median_deg":
                    ys = np.maximum(ys, ANGLE_FLOOR_DEG)
                linestyle = ("-", "--", ":", "-.")[j % 4]
                ax.plot(xs, ys, linestyle, color=f"C{i}", linewidth=1, label=label)
                for x, y, p in zip(xs, ys, line, strict=True):
                    family = parse_output_transform(p["teacher_outputs"]).kind
                    ax.scatter(x, y, marker=TRANSFORM_MARKERS[family], s=30, color=f"C{i}")
    for ax, ylabel in zip(axes, panels.values(), strict=True):
        ax.set_xscale("log")
        ax.axvspan(exact_x / 2, exact_x * 2, color="0.92", zorder=0)
        ax.set_xlabel("output error: RMSE(seen - exact) / std(exact)")
        ax.set_ylabel(ylabel, fontsize=9)
    axes[0].set_ylim(-0.05, 1.05)
    axes[0].legend(fontsize=7, title="activation", title_fontsize=7)
    exact_angle = metrics[0]["exact_angle_deg"]
    axes[1].axhline(exact_angle, color="0.6", linewidth=0.8, linestyle=":")
    axes[1].set_yscale("log")
    axes[1].set_ylim(ANGLE_FLOOR_DEG / 2, 180)
    axes[1].set_title(f"dotted: exact angle ({exact_angle:g} deg)", fontsize=9)
    axes[2].legend(
        handles=[
            Line2D([], [], marker=marker, linestyle="", color="0.3", label=family)
            for family, marker in TRANSFORM_MARKERS.items()
        ],
        fontsize=7,
        title=f"transform (none: exact, drawn at {exact_x:.0e})",
        title_fontsize=7,
    )
    axes[0].set_title(f"{sum(p['problems'] for p in points)} synthetic recoveries", fontsize=9)
    fig.tight_layout()
    return fig
