"""Tables from stored results: one row per recovery (from the metrics JSON files), a summary
per activation and expansion, and the timings. Written as CSV and as Markdown.

Rows are sorted and numbers formatted with fixed precision, so the same results give
byte-identical tables. Timings are kept apart (they differ from run to run).
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from expand_and_cluster.confidence import FLAGS
from expand_and_cluster.evaluate import STATUSES
from expand_and_cluster.outputs import transform_order

RECOVERY_COLUMNS = (
    "teacher",
    "activation",
    "sizes",
    "expansion",
    "N",
    "students_failed",
    "gamma",
    "beta_deg",
    "teacher_widths",
    "recovered_widths",
    "missing",
    "excess",
    "angle_median_deg",
    "angle_max_deg",
    "rmse",
    "student_loss_median",
    "recovered_loss",
    "notes",
    "status",
)
SUMMARY_COLUMNS = (
    "kind",
    "activation",
    "expansion",
    "gamma",
    "beta_deg",
    "problems",
    "exact",
    "approximate",
    "inexact",
    "failed",
    "fraction_exact",
    "student_loss_median",
)
TRAINED_COLUMNS = (
    "teacher",
    "dataset",
    "queries",
    "activation",
    "expansion",
    "teacher_test_accuracy",
    "teacher_widths",
    "recovered_widths",
    "overhead_pct",
    "first_layer_angle_median_deg",
    "first_layer_angle_max_deg",
    "masked_angle_median_deg",
    "masked_angle_max_deg",
    "mask_kept",
    "student_rmse_median",
    "recovered_rmse",
    "heldout_rmse",
    "status",
    "teacher_widths_functional",
    "status_functional",
)
NEURON_COLUMNS = (
    "teacher",
    "activation",
    "expansion",
    "gamma",
    "beta_deg",
    "layer",
    "neuron",
    "support",
    "spread_median_deg",
    "spread_p90_deg",
    "stability",
    "contribution",
    "closest_neuron_deg",
    "flags",
    "teacher_neuron",
)
FLAG_COLUMNS = (
    "expansion",
    "recoveries",
    "neurons",
    "excess",
    "flagged",
    "flagged_excess",
    "precision",
    "recall",
    *FLAGS,
)
ROBUSTNESS_COLUMNS = (
    "activation",
    "expansion",
    "gamma",
    "beta_deg",
    "teacher_outputs",
    "output_error",
    "problems",
    *STATUSES,
    "fraction_exact",
    "angle_median_deg",
    "width_error",
)
TIMING_COLUMNS = (
    "teacher",
    "expansion",
    "training_jobs",
    "training_s",
    "training_max_rss_mb",
    "recovery",
    "recovery_s",
)


def _natural_key(text: str) -> list:
    """``tanh-10-...`` after ``tanh-9-...``: digits compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _widths(values: Sequence[int] | None) -> str:
    return "" if values is None else ",".join(str(v) for v in values)


def _number(value: float | None, digits: int = 3) -> str:
    """Fixed significant digits in scientific-or-plain form; empty for missing values."""
    if value is None:
        return ""
    return f"{value:.{digits}g}"


def _notes(m: dict[str, Any]) -> str:
    """Why a recovery failed, or what it warned about (failed students excluded...), and
    the teacher's silent neurons with the status judged without them."""
    notes = [m["reason"]] if m.get("reason") else []
    if any(m.get("silent_neurons") or []):
        notes.append(
            f"silent teacher neurons {m['silent_neurons']} (per layer): functional widths "
            f"{_widths(m['teacher_widths_functional'])}, functional status "
            f"{m['status_functional']}"
        )
    return "; ".join(notes + list(m.get("warnings") or []))


def _sort_key(m: dict[str, Any]) -> tuple:
    return (
        m["kind"] != "synthetic",
        _natural_key(m["teacher"]),
        float(m["expansion"]),
        m["gamma"],
        m["beta_deg"],
    )


def recovery_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per recovery, from the metrics written by the study's evaluate step."""
    rows = []
    for m in sorted(metrics, key=_sort_key):
        rows.append(
            {
                "teacher": m["teacher"],
                "activation": m["activation"],
                "sizes": _widths(m["sizes"]),
                "expansion": f"{float(m['expansion']):g}",
                "N": str(m["n_students"]),
                "students_failed": str(m["students_failed"]),
                "gamma": f"{m['gamma']:g}",
                "beta_deg": f"{m['beta_deg']:g}",
                "teacher_widths": _widths(m["teacher_widths"]),
                "recovered_widths": _widths(m["widths"]),
                "missing": _widths(m["missing"]),
                "excess": _widths(m["excess"]),
                "angle_median_deg": _number(m["angle_median_deg"], 2),
                "angle_max_deg": _number(m["angle_max_deg"], 2),
                "rmse": _number(m["rmse"]),
                "student_loss_median": _number(m["student_loss_median"]),
                "recovered_loss": _number(m["recovered_loss"]),
                "notes": _notes(m),
                "status": m["status"],
            }
        )
    return rows


def trained_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per recovery of a teacher trained on a data set (the paper's MNIST table):
    recovered widths and their overhead over the teacher's, first-layer angles to the
    teacher over every input and over the input mask's, and the RMSE on the queries of the
    median student and of the recovered network (the held-out RMSE against the teacher
    beside it)."""
    rows = []
    for m in sorted(metrics, key=_sort_key):
        if m["kind"] == "synthetic":
            continue
        # Angles to the assigned neuron however large, so that a poor match shows its size.
        first = m.get("first_layer_angle_deg") or {}
        masked = m.get("first_layer_angle_deg_masked") or {}
        mask = m.get("input_mask")
        losses = [v for v in m["student_loss"] if v is not None]
        widths = m["widths"]
        rows.append(
            {
                "teacher": m["teacher"],
                "dataset": m["kind"],
                "queries": m.get("queries") or "",
                "activation": m["activation"],
                "expansion": f"{float(m['expansion']):g}",
                "teacher_test_accuracy": _number(m.get("teacher_test_accuracy")),
                "teacher_widths": _widths(m["teacher_widths"]),
                "recovered_widths": _widths(widths),
                "overhead_pct": ""
                if widths is None or len(widths) != len(m["teacher_widths"])
                else ",".join(
                    f"{100 * (w - t) / t:+.1f}"
                    for w, t in zip(widths, m["teacher_widths"], strict=True)
                ),
                "first_layer_angle_median_deg": _number(first.get("median"), 2),
                "first_layer_angle_max_deg": _number(first.get("max"), 2),
                "masked_angle_median_deg": _number(masked.get("median"), 2),
                "masked_angle_max_deg": _number(masked.get("max"), 2),
                "mask_kept": f"{mask['kept']}/{mask['total']}" if mask else "",
                "student_rmse_median": _number(
                    float(np.sqrt(statistics.median(losses))) if losses else None
                ),
                "recovered_rmse": _number(
                    None if m["recovered_loss"] is None else float(np.sqrt(m["recovered_loss"]))
                ),
                "heldout_rmse": _number(m["rmse"]),
                "status": m["status"],
                "teacher_widths_functional": _widths(m.get("teacher_widths_functional")),
                "status_functional": m.get("status_functional") or "",
            }
        )
    return rows


def _recovered_neurons(m: dict[str, Any]):
    """``(layer, confidence, teacher neuron)`` per recovered neuron of a recovery; the
    teacher neuron is None for an excess neuron and ``"?"`` when the teacher's weights
    were not compared."""
    confidence = m.get("neuron_confidence") or []
    teacher_of = m.get("teacher_of")
    for layer, neurons in enumerate(confidence):
        for n in neurons or []:
            match = "?" if teacher_of is None else teacher_of[layer][n["neuron"]]
            yield layer, n, match


def neuron_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """One row per recovered neuron: its confidence numbers and flags
    (:mod:`expand_and_cluster.confidence`), and the teacher neuron it matches (``excess``
    when none; empty when the teacher's weights were not compared)."""
    rows = []
    for m in sorted(metrics, key=_sort_key):
        for layer, n, match in _recovered_neurons(m):
            rows.append(
                {
                    "teacher": m["teacher"],
                    "activation": m["activation"],
                    "expansion": f"{float(m['expansion']):g}",
                    "gamma": f"{m['gamma']:g}",
                    "beta_deg": f"{m['beta_deg']:g}",
                    "layer": str(layer + 1),
                    "neuron": str(n["neuron"]),
                    "support": f"{n['support']:.2f}",
                    "spread_median_deg": _number(n["spread_median_deg"], 2),
                    "spread_p90_deg": _number(n["spread_p90_deg"], 2),
                    "stability": "" if n["stability"] is None else f"{n['stability']:.2f}",
                    "contribution": _number(n["contribution"], 2),
                    "closest_neuron_deg": _number(n["closest_neuron_deg"], 2),
                    "flags": ",".join(n["flags"]),
                    "teacher_neuron": {None: "excess", "?": ""}.get(match, str(match)),
                }
            )
    return rows


def flag_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Per expansion (and over all), how well the flags pick out the recovered neurons that
    match no teacher neuron: precision (the flagged that are excess) and recall (the
    excess that are flagged), with how often each flag is raised. Only recoveries whose
    teacher's weights were compared count."""
    groups: dict[str, list[tuple[list[str], bool]]] = defaultdict(list)
    recoveries: dict[str, int] = defaultdict(int)
    for m in metrics:
        neurons = [(n["flags"], match is None) for _, n, match in _recovered_neurons(m)]
        if not neurons or any(match == "?" for *_, match in _recovered_neurons(m)):
            continue
        for key in (f"{float(m['expansion']):g}", "all"):
            groups[key] += neurons
            recoveries[key] += 1
    rows = []
    for key in sorted(groups, key=lambda k: (k == "all", float(k) if k != "all" else 0.0)):
        neurons = groups[key]
        flagged = sum(bool(f) for f, _ in neurons)
        excess = sum(e for _, e in neurons)
        both = sum(bool(f) and e for f, e in neurons)
        rows.append(
            {
                "expansion": key,
                "recoveries": str(recoveries[key]),
                "neurons": str(len(neurons)),
                "excess": str(excess),
                "flagged": str(flagged),
                "flagged_excess": str(both),
                "precision": f"{both / flagged:.2f}" if flagged else "",
                "recall": f"{both / excess:.2f}" if excess else "",
                **{flag: str(sum(flag in f for f, _ in neurons)) for flag in FLAGS},
            }
        )
    return rows


def width_error(m: dict[str, Any]) -> float:
    """How far a recovery's hidden widths are from the teacher's: the summed absolute
    difference over the teacher's total width (1 for a failed recovery: no neuron)."""
    teacher = m["teacher_widths"]
    if m["widths"] is None:
        return 1.0
    return sum(abs(r - t) for r, t in zip(m["widths"], teacher, strict=True)) / sum(teacher)


def robustness_points(metrics: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The synthetic recoveries per activation x expansion x gamma/beta x output transform
    (``teacher_outputs``), mildest transform first, as numbers: the error the transform
    applied to the outputs (``output_error``, the median over the group of each queries'
    RMSE against the exact outputs over their standard deviation), the count of each status,
    the fraction recovered exactly, the median over recoveries of the median angle of the
    matched teacher neurons (None when none matched), and the mean :func:`width_error`."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for m in metrics:
        if m["kind"] == "synthetic":
            setting = (m["activation"], float(m["expansion"]), m["gamma"], m["beta_deg"])
            groups[(*setting, m["teacher_outputs"])].append(m)
    points = []
    for key in sorted(groups, key=lambda k: (*k[:-1], transform_order(k[-1]))):
        activation, expansion, gamma, beta_deg, spec = key
        ms = groups[key]
        counts = {s: sum(m["status"] == s for m in ms) for s in STATUSES}
        angles = [m["angle_median_deg"] for m in ms if m["angle_median_deg"] is not None]
        points.append(
            {
                "activation": activation,
                "expansion": expansion,
                "gamma": gamma,
                "beta_deg": beta_deg,
                "teacher_outputs": spec,
                "output_error": statistics.median(m["teacher_output_error"] for m in ms),
                "problems": len(ms),
                **counts,
                "fraction_exact": counts["exact"] / len(ms),
                "angle_median_deg": statistics.median(angles) if angles else None,
                "width_error": statistics.mean(width_error(m) for m in ms),
            }
        )
    return points


def robustness_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """:func:`robustness_points` as table rows: how recovery degrades as the outputs the
    students see get noisier or coarser."""
    return [
        {
            "activation": p["activation"],
            "expansion": f"{p['expansion']:g}",
            "gamma": f"{p['gamma']:g}",
            "beta_deg": f"{p['beta_deg']:g}",
            "teacher_outputs": p["teacher_outputs"],
            "output_error": _number(p["output_error"]),
            "problems": str(p["problems"]),
            **{s: str(p[s]) for s in STATUSES},
            "fraction_exact": f"{p['fraction_exact']:.2f}",
            "angle_median_deg": _number(p["angle_median_deg"], 2),
            "width_error": f"{p['width_error']:.3f}",
        }
        for p in robustness_points(metrics)
    ]


def summary_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Per kind x activation x expansion x gamma x beta: how many problems were recovered
    exactly, approximately (right widths, some neuron not within the exact angle),
    inexactly (wrong widths or unmatched neurons) or not at all."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for m in metrics:
        key = (
            m["kind"] != "synthetic",
            m["kind"],
            m["activation"],
            float(m["expansion"]),
            m["gamma"],
            m["beta_deg"],
        )
        groups[key].append(m)
    rows = []
    for key in sorted(groups):
        _, kind, act, expansion, gamma, beta = key
        ms = groups[key]
        counts = {s: sum(m["status"] == s for m in ms) for s in STATUSES}
        losses = [m["student_loss_median"] for m in ms if m["student_loss_median"] is not None]
        rows.append(
            {
                "kind": kind,
                "activation": act,
                "expansion": f"{expansion:g}",
                "gamma": f"{gamma:g}",
                "beta_deg": f"{beta:g}",
                "problems": str(len(ms)),
                **{s: str(c) for s, c in counts.items()},
                "fraction_exact": f"{counts['exact'] / len(ms):.2f}",
                "student_loss_median": _number(statistics.median(losses) if losses else None),
            }
        )
    return rows


def timing_rows(
    training: Iterable[dict[str, Any]], recovery: Iterable[dict[str, Any]]
) -> list[dict[str, str]]:
    """Training entries ``{teacher, expansion, seconds, max_rss_mb}`` (one per training job)
    are summed per teacher x expansion; recovery entries ``{teacher, expansion, recovery,
    seconds}`` give one row each."""
    train: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for t in training:
        train[(t["teacher"], t["expansion"])].append(t)
    rows = []
    for r in sorted(
        recovery,
        key=lambda r: (_natural_key(r["teacher"]), _natural_key(r["expansion"]), r["recovery"]),
    ):
        jobs = train.get((r["teacher"], r["expansion"]), [])
        rss = [j["max_rss_mb"] for j in jobs if j.get("max_rss_mb") is not None]
        rows.append(
            {
                "teacher": r["teacher"],
                "expansion": r["expansion"],
                "training_jobs": str(len(jobs)),
                "training_s": f"{sum(j['seconds'] for j in jobs):.1f}",
                "training_max_rss_mb": f"{max(rss):.0f}" if rss else "",
                "recovery": r["recovery"],
                "recovery_s": f"{r['seconds']:.1f}",
            }
        )
    return rows


def read_benchmark(path: str | Path) -> dict[str, float | None]:
    """Seconds and peak memory of one job from its Snakemake ``benchmark:`` file (TSV)."""
    with open(path) as f:
        row = next(csv.DictReader(f, delimiter="\t"))
    rss = row.get("max_rss", "NA")
    return {
        "seconds": float(row["s"]),
        "max_rss_mb": None if rss in ("NA", "-", "") else float(rss),
    }


def to_csv(rows: Sequence[dict[str, str]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_markdown(
    rows: Sequence[dict[str, str]], columns: Sequence[str], title: str | None = None
) -> str:
    """A GitHub-flavoured Markdown table (pipes in cells are escaped)."""

    def cell(value: str) -> str:
        return str(value).replace("|", "\\|")

    lines = [f"# {title}", ""] if title else []
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_table(
    rows: Sequence[dict[str, str]],
    columns: Sequence[str],
    csv_path: str | Path,
    md_path: str | Path,
    title: str | None = None,
) -> None:
    Path(csv_path).write_text(to_csv(rows, columns))
    Path(md_path).write_text(to_markdown(rows, columns, title))
