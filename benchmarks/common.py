"""Shared helpers: the result line every benchmark prints, timing, and peak memory."""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One benchmark line: ``figure`` is what was measured, ``target`` what it must reach;
    ``passed`` is None for figures that are reported without a target."""

    name: str
    figure: str
    target: str
    passed: bool | None
    detail: str = ""

    def line(self) -> str:
        verdict = {True: "PASS", False: "FALLS SHORT", None: "INFO"}[self.passed]
        text = f"{self.name}: {self.figure} | target {self.target} | {verdict}"
        return text + (f"  [{self.detail}]" if self.detail else "")


def best_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The fastest of ``repeats`` timed calls (seconds), after ``warmup`` untimed ones.
    The minimum is the figure least disturbed by other processes on the machine."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_child(
    args: list[str], timeout: float | None = None, env: dict | None = None
) -> tuple[int, str, float, float]:
    """Run ``args`` as a fresh process; return (exit code, stdout + stderr, wall seconds,
    peak resident set size in bytes of that process, from its own ``wait4`` rusage)."""
    with tempfile.TemporaryFile(mode="w+") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT
        )
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        out = log.read()
    return proc.returncode, out, wall, usage.ru_maxrss * 1024


def child_peak_rss() -> int:
    """This process's own peak resident set size in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def machine_note() -> str:
    """Cores, torch threads and the load average: figures on a shared machine depend on it."""
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}, load average {load:.1f}"
    )
