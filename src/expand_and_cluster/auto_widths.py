"""Student widths for a network of unknown width: start modest and double the students until
they are at least ``MIN_EXPANSION`` times the width they recover (and that width has held
for two rounds), or refuse at a width cap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expand_and_cluster.errors import InputError
from expand_and_cluster.reconstruct import Recovery, RecoverySettings, recover
from expand_and_cluster.settings import check_settings, setting
from expand_and_cluster.students import TrainResult

log = logging.getLogger(__name__)

# E&C needs students several times wider than the network (the paper's default is 4).
MIN_EXPANSION = 4


@dataclass
class AutoWidthSettings:
    """How ``--student-widths auto`` searches."""

    start_width: int = setting(
        8,
        "Students' width per hidden layer in the first round of --student-widths auto.",
        minimum=1,
    )
    max_width: int = setting(
        512,
        "Widest students --student-widths auto tries before refusing.",
        minimum=1,
    )

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class AutoWidthResult:
    recovery: Recovery
    students: TrainResult
    student_widths: list[int]
    rounds: list[dict]  # per round: student widths and recovered widths


def converged(student_widths: list[int], recovered: list[int], previous: list[int] | None) -> bool:
    """Students at least MIN_EXPANSION times wider than what they recovered, and the same
    widths recovered by the round before (narrow students can under-recover and look wide)."""
    wide = all(MIN_EXPANSION * r <= s for r, s in zip(recovered, student_widths, strict=True))
    return wide and previous == recovered


def recover_auto_widths(
    x: np.ndarray,
    y: np.ndarray | Callable[[np.ndarray], np.ndarray],
    activation: str,
    n_hidden: int,
    settings: RecoverySettings,
    auto: AutoWidthSettings,
    checkpoint_dir: str | Path | None = None,
) -> AutoWidthResult:
    """Recover with doubling student widths until :func:`converged`; each round is logged
    and checkpointed (``students-wW.pt`` in ``checkpoint_dir``) so a killed search resumes."""
    if n_hidden < 1:
        raise InputError(f"--hidden-layers must be at least 1; got {n_hidden}")
    width, rounds, previous = auto.start_width, [], None
    while True:
        widths = [width] * n_hidden
        checkpoint = (
            None if checkpoint_dir is None else Path(checkpoint_dir) / f"students-w{width}.pt"
        )
        recovery, students = recover(x, y, activation, widths, settings, checkpoint)
        rounds.append({"student_widths": widths, "recovered_widths": recovery.widths})
        log.info(
            "auto widths, round %d: students %s recovered %s", len(rounds), widths, recovery.widths
        )
        if converged(widths, recovery.widths, previous):
            log.info(
                "auto widths: converged in %d rounds (students %s, %.1fx the recovered %s)",
                len(rounds),
                widths,
                width / max(recovery.widths),
                recovery.widths,
            )
            return AutoWidthResult(recovery, students, widths, rounds)
        if 2 * width > auto.max_width:
            raise InputError(
                f"--student-widths auto reached the cap of {auto.max_width} neurons per layer "
                f"after {len(rounds)} rounds without converging (last: students {widths} "
                f"recovered {recovery.widths}; need students >= {MIN_EXPANSION}x the recovered "
                "widths, twice in a row): raise --auto-max-width or give --student-widths"
            )
        previous, width = recovery.widths, 2 * width
