"""Benchmark 1: student training, compute-bound shape.

784 inputs, N = 8 students of width 256, 10 outputs, batch 512, float32, CPU: the FLOP/s
of a full training step (forward, backward, Adam: ``students._train_step``, the step
``train_students`` runs per batch) as a fraction of the FLOP/s of a plain 2048 x 2048
float32 matrix product, both measured in this process with the same thread setting.

FLOPs counted (2 m n k per product, only the products actually done):
forward 2 N B (I H + H O); weight gradients 2 N B (I H + H O); input gradient of the
second layer 2 N B H O (none for the first layer: the data needs no gradient).
Elementwise work (tanh, Adam) is not counted.
"""

from __future__ import annotations

import torch

from benchmarks.common import Result, best_time
from expand_and_cluster.students import (
    StudentEnsemble,
    _BatchedAdam,
    _flat_parameters,
    _train_step,
    init_students,
)

N, IN, HIDDEN, OUT, BATCH, SAMPLES = 8, 784, 256, 10, 512, 8192
TARGET = 0.5


def step_flops() -> int:
    return 2 * N * BATCH * (2 * IN * HIDDEN + 3 * HIDDEN * OUT)


def peak_flops(repeats: int = 5) -> float:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(2048, 2048, generator=gen)
    b = torch.randn(2048, 2048, generator=gen)
    return 2 * 2048**3 / best_time(lambda: a @ b, repeats, warmup=2)


def training_step(steps: int = 10, repeats: int = 5) -> float:
    """Seconds per step: best of ``repeats`` blocks of ``steps`` steps on successive
    batches of resident data (slices, as train_students takes them)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(SAMPLES, IN, generator=gen)
    y = torch.randn(SAMPLES, OUT, generator=gen)
    students = init_students([IN, HIDDEN, OUT], N, "tanh", seed=0, dtype=torch.float32)
    _, params = _flat_parameters([*students.weights, *students.biases])
    students = StudentEnsemble(params[:2], params[2:], "tanh")
    for p in params:
        p.requires_grad_(True)
    adam = _BatchedAdam(params)
    active = torch.ones(N, dtype=torch.bool)
    lr = torch.full((N,), 1e-3, dtype=torch.float64)
    batches = [(x[s : s + BATCH], y[s : s + BATCH]) for s in range(0, SAMPLES, BATCH)]

    def block() -> None:
        for i in range(steps):
            xb, yb = batches[i % len(batches)]
            _train_step(students, params, adam, xb, yb, active, lr)

    return best_time(block, repeats, warmup=1) / steps


def run() -> list[Result]:
    peak_before = peak_flops()
    seconds = training_step()
    peak = max(peak_before, peak_flops())  # the better peak: the conservative ratio
    achieved = step_flops() / seconds
    fraction = achieved / peak
    return [
        Result(
            "1 training step 784-256x8-10, batch 512, float32: FLOP/s / 2048^2 matmul FLOP/s",
            f"{fraction:.2f} ({achieved / 1e9:.1f} of {peak / 1e9:.1f} GFLOP/s; "
            f"{seconds * 1e3:.1f} ms/step, {torch.get_num_threads()} threads)",
            f">= {TARGET}",
            fraction >= TARGET,
        )
    ]


if __name__ == "__main__":
    for r in run():
        print(r.line())
