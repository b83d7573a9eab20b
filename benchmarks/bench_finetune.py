"""Benchmark 7: the recovery's fine-tuning (``finetune.finetune_network``, scipy's compiled
L-BFGS-B on torch's loss and gradient) against torch's own ``torch.optim.LBFGS`` (history
50, strong Wolfe line search, as the fine-tuning used until 2026-12-05) on the same start.

The start is what a suite recovery at expansion 4 fine-tunes before pruning: the 8
neurons of a tanh 2,8,1 teacher, each held three times (the copies 0.01 apart, outgoing
weights split among them), on 2,000 Gaussian queries: 24 hidden neurons, 97 parameters.
torch runs 500 iterations with its tolerances off; the figure is the time ours needs to
reach the same loss (the fewest iterations, in steps of 25, best of three timings) against
torch's, and the detail the time per iteration of each.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.common import Result, best_time
from expand_and_cluster.data import sample_inputs
from expand_and_cluster.finetune import FinetuneSettings, finetune_network
from expand_and_cluster.network import MLP, torch_forward
from expand_and_cluster.teachers import synthetic_teacher

ITERATIONS = 500
STEP = 25
COPIES = 3
TARGET = 1.5


def start_network() -> tuple[MLP, np.ndarray, np.ndarray]:
    teacher = synthetic_teacher("2,8,1", "tanh", 0)
    x = sample_inputs("gaussian", 2000, 2, seed=0)
    rng = np.random.default_rng(0)
    w, b = teacher.weights, teacher.biases
    start = MLP(
        [
            np.concatenate([w[0] + 0.01 * rng.normal(size=w[0].shape) for _ in range(COPIES)]),
            np.concatenate([w[1] / COPIES] * COPIES, axis=1),
        ],
        [np.concatenate([b[0] + 0.01 * rng.normal(size=b[0].shape) for _ in range(COPIES)]), b[1]],
        "tanh",
    )
    return start, x, teacher(x)


def torch_lbfgs(network: MLP, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """The baseline: torch's LBFGS for ITERATIONS iterations; its final MSE and iterations."""
    params = network.torch_parameters(torch.float64)
    tensors = params.all()
    for t in tensors:
        t.requires_grad_(True)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.LBFGS(
        tensors,
        lr=1.0,
        max_iter=ITERATIONS,
        max_eval=20 * ITERATIONS,  # as the fine-tuning allows: iterations, not evaluations, end it
        history_size=50,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch_forward(params, xt, network.activation) - yt).pow(2).mean()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        loss = (torch_forward(params, xt, network.activation) - yt).pow(2).mean().item()
    return loss, opt.state[opt._params[0]]["n_iter"]


def run() -> list[Result]:
    network, x, y = start_network()
    theirs: dict = {}

    def run_theirs() -> None:
        loss, iterations = torch_lbfgs(network, x, y)
        theirs.update(loss=loss, iterations=iterations)

    theirs_s = best_time(run_theirs, repeats=3)

    def ours(iterations: int) -> float:
        settings = FinetuneSettings(max_iterations=iterations, min_improvement=1e-300)
        return finetune_network(network, x, y, settings, floor=True)[1].loss_after

    # The fewest iterations (in steps of STEP) with which ours reaches torch's final loss.
    needed = next(
        (k for k in range(STEP, ITERATIONS + 1, STEP) if ours(k) <= theirs["loss"]), ITERATIONS
    )
    ours_s = best_time(lambda: ours(needed), repeats=3)
    reached = ours(needed)
    speedup = theirs_s / ours_s
    return [
        Result(
            "7 fine-tuning (scipy L-BFGS-B) vs torch.optim.LBFGS: time to torch's loss after "
            f"{ITERATIONS} iterations, 24-neuron tanh 2,8,1 start",
            f"{speedup:.2f}x ({ours_s:.2f} vs {theirs_s:.2f} s)",
            f">= {TARGET:g}x",
            speedup >= TARGET and reached <= theirs["loss"],
            f"torch: MSE {theirs['loss']:.1e} in {theirs['iterations']} iterations "
            f"({1e3 * theirs_s / theirs['iterations']:.2f} ms each); ours: {reached:.1e} in "
            f"{needed} ({1e3 * ours_s / needed:.2f} ms each)",
        )
    ]


if __name__ == "__main__":
    for r in run():
        print(r.line())
