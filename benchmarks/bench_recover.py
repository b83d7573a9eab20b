"""Benchmark 2b: ``ecluster recover`` with defaults on a 4,4,1 tanh teacher, end to end.

Two fresh processes, as a user runs them: ``ecluster teacher --sizes 4,4,1 --activation
tanh --seed 3 --out T``, then ``ecluster recover --teacher T --out D`` (timed: wall clock of
the process, start-up included; peak resident set size from its own rusage).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Result, run_child

TARGET_S = 120.0


def ecluster() -> list[str]:
    exe = shutil.which("ecluster")
    return [exe] if exe else [sys.executable, "-m", "expand_and_cluster.cli"]


def run() -> list[Result]:
    name = "2b `ecluster recover` with defaults on a 4,4,1 tanh teacher, end to end"
    with tempfile.TemporaryDirectory() as tmp:
        teacher, out = Path(tmp) / "T.zarr", Path(tmp) / "D"
        code, log, _, _ = run_child(
            [
                *ecluster(),
                "teacher",
                "--sizes",
                "4,4,1",
                "--activation",
                "tanh",
                "--seed",
                "3",
                "--out",
                str(teacher),
            ]
        )
        if code != 0:
            return [
                Result(
                    name, f"teacher failed (exit {code}): {log[-300:]}", f"< {TARGET_S:g} s", False
                )
            ]
        code, log, wall, peak = run_child(
            [*ecluster(), "recover", "--teacher", str(teacher), "--out", str(out)], timeout=1800
        )
        if code != 0:
            return [
                Result(
                    name,
                    f"failed (exit {code}) after {wall:.0f} s: {log[-300:]}",
                    f"< {TARGET_S:g} s",
                    False,
                )
            ]
        metrics = json.loads((out / "metrics.json").read_text())
    return [
        Result(
            name,
            f"{wall:.1f} s (peak RSS {peak / 1e9:.2f} GB; "
            f"recovered widths {metrics.get('widths')}, "
            f"RMSE {metrics.get('rmse', float('nan')):.1e})",
            f"< {TARGET_S:g} s",
            wall < TARGET_S,
        )
    ]


if __name__ == "__main__":
    for r in run():
        print(r.line())
