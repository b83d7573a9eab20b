"""How much memory a recovery will need, from its sizes alone, checked before any work.

A request that cannot fit (a million-neuron student, 300 million queries, 100,000
students) is refused in the first second with the figure, the machine's available memory
and the setting to turn, instead of failing hours later. The figures are estimates of the
largest arrays each phase holds at once, not exact accounting; the clustering's, which
dominates large recoveries, is checked against the peak measured in benchmark 3c
(``tests/test_hostile_input.py``).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

from expand_and_cluster.errors import InputError
from expand_and_cluster.student_polish import CHUNK, HISTORY

GB = 1e9
# Bytes per element of the training dtypes.
_ITEM = {"float32": 4, "float64": 8}
# Peak RSS of the clustering (distances, linkage, labels) over its square distance matrix,
# measured in benchmark 3c at 20,480 neurons (3.87 GB for a 3.36 GB matrix).
_CLUSTERING_OVERHEAD = 1.2
# Rows evaluated at once outside training (students' final losses, fine-tuning works on all).
_EVAL_CHUNK = 8192


@dataclass
class MemoryEstimate:
    """Bytes held at the peak of each phase; ``total`` is the largest phase plus the
    queries, which stay in memory throughout."""

    queries: float
    training: float
    clustering: float
    finetuning: float

    @property
    def total(self) -> float:
        return self.queries + max(self.training, self.clustering, self.finetuning)

    def largest(self) -> str:
        phases = {
            "queries": self.queries,
            "training": self.training,
            "clustering": self.clustering,
            "finetuning": self.finetuning,
        }
        return max(phases, key=phases.__getitem__)


def estimate_recovery_memory(
    n_queries: int,
    n_inputs: int,
    n_outputs: int,
    student_widths: list[int],
    n_students: int,
    batch_size: int | None,
    dtype: str = "float32",
) -> MemoryEstimate:
    """Peak memory of one recovery (or one training job, with its ``n_students``)."""
    item = _ITEM[dtype]
    widths = [n_inputs, *student_widths, n_outputs]
    per_student = sum(i * o + o for i, o in itertools.pairwise(widths))
    # float64 inputs and outputs, their copy in the training dtype, and a shuffled copy.
    queries = n_queries * (n_inputs + n_outputs) * (8 + 2 * item)
    batch = min(n_queries, batch_size or n_queries)
    hidden = sum(student_widths) + n_outputs
    # Parameters with gradient and two Adam moments, a float64 copy for clustering, and
    # per step each layer's pre-activation, activation and gradient for every student.
    parameters = n_students * per_student * (4 * item + 8)
    activations = 3 * n_students * hidden * max(batch, min(n_queries, _EVAL_CHUNK)) * item
    neurons = n_students * max(student_widths)
    clustering = _CLUSTERING_OVERHEAD * 8 * neurons**2 + neurons * (max(widths[:-2]) + 1) * 8 * 4
    # Deep networks: every student's next-layer pre-activations on every query, projected by
    # least squares (expand_and_cluster.collapse.project_next_layer: targets, fit, residual).
    if len(student_widths) > 1:
        clustering += 3 * n_queries * n_students * max(student_widths[1:]) * 8
    # Fine-tuning holds the collapsed network's activations on every query in float64; its
    # widths are at most the students'.
    finetuning = 4 * n_queries * hidden * 8
    # A polish of the students (expand_and_cluster.student_polish) holds every student's
    # layers on a chunk of queries in float64, and its curvature memory.
    polishing = 3 * n_students * min(n_queries, CHUNK) * hidden * 8
    polishing += 2 * HISTORY * n_students * per_student * 8
    finetuning = max(finetuning, polishing)
    return MemoryEstimate(float(queries), float(parameters + activations), clustering, finetuning)


def available_memory() -> float:
    """Bytes this process can still allocate without swapping (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


# What to turn when each phase is the one that does not fit, as flags and config keys.
KNOBS = {
    "queries": "fewer queries (--queries DISTRIBUTION:COUNT; queries.n)",
    "training": (
        "fewer or narrower students, or a smaller batch (--students, --student-widths, "
        "--batch-size; students.per_job, students.expansions, students.train.batch_size)"
    ),
    "clustering": (
        "fewer or narrower students: the distance matrix grows with (students x width)^2 "
        "(--students, --student-widths; students.seeds x students.per_job, students.expansions)"
    ),
    "finetuning": "fewer queries or narrower students (--queries, --student-widths; queries.n)",
}


def check_memory(
    estimate: MemoryEstimate, what: str, available: float | None = None, knob: str | None = None
) -> None:
    """Refuse ``what`` when its estimate exceeds the available memory: one line with the
    figure, the machine's available memory and the setting to turn (``knob``, or the one
    of the phase that does not fit)."""
    available = available_memory() if available is None else available
    if estimate.total <= available:
        return
    phase = estimate.largest()
    raise InputError(
        f"{what} needs about {estimate.total / GB:.1f} GB of memory ({phase}: "
        f"{getattr(estimate, phase) / GB:.1f} GB), more than the {available / GB:.1f} GB "
        f"available on this machine: use {knob or KNOBS[phase]}"
    )
