"""Benchmark 2a: student training, small shape.

4 inputs, N = 20 students of width 16, 1 output, 10,000 samples, float64, full batch: one
epoch of ``train_students`` against the same training written as N separate
``torch.nn.Sequential`` models, each with its own ``torch.optim.Adam``, stepped in a Python
loop (what a user would write). Both run the same epochs on the same data in this
process; ours is the whole ``train_students`` call divided by its epochs, set-up and the
final loss pass included.
"""

from __future__ import annotations

import torch

from benchmarks.common import Result, best_time
from expand_and_cluster.students import TrainSettings, init_students, train_students

N, IN, HIDDEN, OUT, SAMPLES, EPOCHS = 20, 4, 16, 1, 10_000, 20
# The 8x target was retired (issue "The identifiability suite on one CPU"): the activation's
# own arithmetic bounds any batching near 3.5x on a CPU. The line stays, as INFO, with that
# floor beside the figure, so that a regression still shows.


def data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(SAMPLES, IN, generator=gen, dtype=torch.float64)
    w = torch.randn(IN, OUT, generator=gen, dtype=torch.float64)
    return x, torch.tanh(x @ w)


def loop_epoch_seconds(x: torch.Tensor, y: torch.Tensor, repeats: int = 3) -> float:
    torch.manual_seed(0)
    models = [
        torch.nn.Sequential(
            torch.nn.Linear(IN, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, OUT)
        ).double()
        for _ in range(N)
    ]
    optims = [torch.optim.Adam(m.parameters(), lr=1e-3) for m in models]

    def epochs() -> None:
        for _ in range(EPOCHS):
            for model, opt in zip(models, optims, strict=True):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()

    return best_time(epochs, repeats, warmup=0) / EPOCHS


def ours_epoch_seconds(x: torch.Tensor, y: torch.Tensor, repeats: int = 3) -> float:
    settings = TrainSettings(
        max_epochs=EPOCHS, batch_size=None, dtype="float64", device="cpu", log_every=10**6
    )
    students = init_students([IN, HIDDEN, OUT], N, "tanh", seed=0, dtype=torch.float64)
    return (
        best_time(lambda: train_students(students, x, y, settings, seed=0), repeats, warmup=0)
        / EPOCHS
    )


def activation_floor_seconds(x: torch.Tensor) -> float:
    """The elementwise work both sides must do per epoch, whatever the batching: tanh of
    every hidden pre-activation and its derivative (N x 16 x 10,000 values), timed both as
    one tensor and as N per-student tensors (the cheaper of the two)."""
    z = torch.randn(N, HIDDEN, len(x), dtype=torch.float64)
    g = torch.randn_like(z)

    def whole() -> None:
        torch.ops.aten.tanh_backward(g, torch.tanh(z))

    def pieces() -> None:
        for k in range(N):
            torch.ops.aten.tanh_backward(g[k], torch.tanh(z[k]))

    return min(best_time(whole, 3), best_time(pieces, 3))


def run() -> list[Result]:
    x, y = data()
    ours_warm = ours_epoch_seconds(x, y, repeats=1)  # warm-up of both paths
    loop = loop_epoch_seconds(x, y)
    ours = min(ours_warm, ours_epoch_seconds(x, y))
    floor = activation_floor_seconds(x)
    speedup = loop / ours
    return [
        Result(
            "2a one epoch, 20 students 4-16-1, 10,000 samples, float64, full batch: "
            "speed-up over a loop of nn.Sequential",
            f"{speedup:.1f}x (loop {loop * 1e3:.1f} ms, ours {ours * 1e3:.1f} ms per epoch, "
            f"{torch.get_num_threads()} threads); the activation's floor allows at most "
            f"{loop / floor:.1f}x",
            "none (retired 8x; shown beside its floor)",
            None,
            f"tanh and its derivative alone take {floor * 1e3:.1f} ms per epoch on either side, "
            f"so no batching can beat the loop by more than {loop / floor:.1f}x here",
        )
    ]


if __name__ == "__main__":
    for r in run():
        print(r.line())
