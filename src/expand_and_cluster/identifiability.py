"""The ease-of-identifiability axis and the success rates of a study of many problems.

The paper orders its 150 synthetic problems along an "ease of identifiability" axis whose
definition it does not give. Ours says how benign a problem's loss landscape is at the
teacher's own width, measured on the students before any clustering, so that it does not
presuppose whether E&C then succeeds:

    ease = the smallest, over the teacher's hidden neurons, of the fraction of expansion-1
           students (as wide as the teacher) that hold a neuron within MATCH_DEG (10
           degrees) of it (expand_and_cluster.evaluate.student_teacher_angles).

It is the support of the teacher's hardest neuron among students of the teacher's own
width: at 1 every such student finds every teacher neuron; at 0 some teacher neuron is never
found without overparameterisation. It is also the quantity E&C's gamma rule compares with
(a cluster needs members from a fraction gamma of the students), so expansion 1 can recover
a problem only where its ease reaches about gamma. Ties (many problems sit at 0) are broken
by ``mean_support``, the same fraction averaged over the teacher's neurons. It needs the
teacher's weights, so it exists for synthetic and trained teachers, not for black-box
recoveries. README.md, "The ease-of-identifiability axis", discusses the alternatives (a
loss threshold; the smallest expansion that recovers).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from expand_and_cluster.evaluate import MATCH_DEG, STATUSES


@dataclass(frozen=True)
class Ease:
    """One problem's place on the ease axis (``None`` where it cannot be computed)."""

    support: float | None  # of the teacher's hardest neuron among expansion-1 students
    mean_support: float | None  # averaged over the teacher's neurons

    def sort_key(self) -> tuple[float, float]:
        """Easiest first; problems without a score last."""
        if self.support is None or self.mean_support is None:
            return (1.0, 1.0)
        return (-self.support, -self.mean_support)


def ease(angles: Sequence[Sequence[float | None] | None] | None) -> Ease:
    """The ease of one problem from its expansion-1 students' angles to each teacher
    neuron (:func:`expand_and_cluster.evaluate.student_teacher_angles`; a failed student,
    None, holds no teacher neuron)."""
    if not angles:
        return Ease(None, None)
    held = [a for a in angles if a is not None]
    if not held:  # every student failed
        return Ease(0.0, 0.0)
    n_neurons = len(held[0])
    support = [
        sum(a[j] is not None and a[j] <= MATCH_DEG for a in held) / len(angles)
        for j in range(n_neurons)
    ]
    return Ease(min(support), statistics.fmean(support))


def _one_setting(metrics: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metrics of the study's first recovery setting (gamma, beta): the students, and so
    the ease, are the same for every setting."""
    metrics = list(metrics)
    first = min((m["recovery_id"] for m in metrics), default=None)
    return [m for m in metrics if m["recovery_id"] == first]


def ease_by_teacher(metrics: Iterable[dict[str, Any]]) -> dict[str, Ease]:
    """Every teacher's ease, from its expansion-1 metrics (None without expansion 1)."""
    scores: dict[str, Ease] = {}
    for m in _one_setting(metrics):
        if float(m["expansion"]) == 1.0:
            scores[m["teacher"]] = ease(m.get("student_teacher_angles_deg"))
        else:
            scores.setdefault(m["teacher"], Ease(None, None))
    return scores


SUCCESS_COLUMNS = (
    "kind",
    "expansion",
    "activation",
    "gamma",
    "beta_deg",
    "problems",
    *(f"{s}{suffix}" for s in STATUSES for suffix in ("", "_pct")),
)


def success_rows(metrics: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Per kind x expansion x recovery setting, the count and percentage of problems in
    each status, for every activation and for all of them together ("all")."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for m in metrics:
        setting = (m["kind"] != "synthetic", m["kind"], float(m["expansion"]))
        setting += (m["gamma"], m["beta_deg"])
        groups[(*setting, 0, m["activation"])].append(m)
        groups[(*setting, 1, "all")].append(m)
    rows = []
    for key in sorted(groups):
        _, kind, expansion, gamma, beta, _, activation = key
        ms = groups[key]
        row = {
            "kind": kind,
            "expansion": f"{expansion:g}",
            "activation": activation,
            "gamma": f"{gamma:g}",
            "beta_deg": f"{beta:g}",
            "problems": str(len(ms)),
        }
        for status in STATUSES:
            count = sum(m["status"] == status for m in ms)
            row[status] = str(count)
            row[f"{status}_pct"] = f"{100 * count / len(ms):.1f}"
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Problem:
    """One teacher of a study: its ease and its metrics per expansion (first setting)."""

    teacher: str
    ease: Ease
    runs: dict[float, dict[str, Any]]

    @property
    def activation(self) -> str:
        return next(iter(self.runs.values()))["activation"]

    def status(self, expansion: float) -> str:
        return self.runs[expansion]["status"] if expansion in self.runs else ""


def ranked_problems(metrics: Iterable[dict[str, Any]]) -> list[Problem]:
    """The study's problems, easiest first (first recovery setting)."""
    metrics = _one_setting(metrics)
    scores = ease_by_teacher(metrics)
    by_teacher: dict[str, dict[float, dict[str, Any]]] = defaultdict(dict)
    for m in metrics:
        by_teacher[m["teacher"]][float(m["expansion"])] = m
    order = sorted(by_teacher, key=lambda t: (scores[t].sort_key(), t))
    return [Problem(t, scores[t], by_teacher[t]) for t in order]


def ease_columns(expansions: Iterable[float]) -> tuple[str, ...]:
    return (
        "rank",
        "teacher",
        "activation",
        "sizes",
        "ease",
        "mean_support",
        *(f"status_x{x:g}" for x in sorted(expansions)),
    )


def ease_rows(metrics: Iterable[dict[str, Any]]) -> tuple[list[dict[str, str]], tuple[str, ...]]:
    """One row per problem, easiest first: its ease and its status at every expansion
    (first recovery setting); and the table's columns."""
    problems = ranked_problems(metrics)
    expansions = sorted({x for p in problems for x in p.runs})
    rows = []
    for rank, p in enumerate(problems, start=1):
        support, mean = p.ease.support, p.ease.mean_support
        rows.append(
            {
                "rank": str(rank),
                "teacher": p.teacher,
                "activation": p.activation,
                "sizes": ",".join(str(s) for s in next(iter(p.runs.values()))["sizes"]),
                "ease": "" if support is None else f"{support:.2f}",
                "mean_support": "" if mean is None else f"{mean:.2f}",
                **{f"status_x{x:g}": p.status(x) for x in expansions},
            }
        )
    return rows, ease_columns(expansions)
