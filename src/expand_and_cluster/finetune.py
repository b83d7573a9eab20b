"""Fine-tuning, the last step of a recovery: full-batch L-BFGS of every weight in float64.

The recovered network starts next to a minimum, where a quasi-Newton method converges in
a few hundred iterations to a precision that Adam reaches only after many thousands of
epochs (the "polish" of small-network teacher-student studies; this project calls the step
fine-tuning throughout).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize

from expand_and_cluster.network import MLP, torch_forward
from expand_and_cluster.settings import check_settings, setting
from expand_and_cluster.students import DEVICE_PATTERN, resolve_device

log = logging.getLogger(__name__)


@dataclass
class FinetuneSettings:
    """The final fine-tuning of the recovered network (float64 L-BFGS on every weight)."""

    max_iterations: int = setting(
        2000, "L-BFGS iterations in all (0 skips fine-tuning).", minimum=0
    )
    history_size: int = setting(50, "L-BFGS history size.", minimum=1)
    # GPUs are slow at float64, and recovery jobs declare no GPU.
    device: str = setting(
        "cpu",
        "Device of the float64 fine-tuning: cpu, auto, cuda or cuda:N.",
        pattern=DEVICE_PATTERN,
    )
    log_every: int = setting(
        100, "L-BFGS iterations between progress lines (and stall checks).", minimum=1
    )
    min_improvement: float = setting(
        1e-9,
        "Stop when log_every iterations lower the loss by less than this fraction of it.",
        exclusive_minimum=0,
        exclusive_maximum=1,
    )

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class FinetuneResult:
    loss_before: float
    loss_after: float
    iterations: int
    seconds: float


# L-BFGS-B's own stop, the largest entry of the MSE's gradient (absolute; the objective is
# divided by its starting value, so the tolerance is too). Together with a line search
# that no longer finds a lower loss (float64 no longer resolves a step), it ends a
# recovery's fine-tuning at an MSE of 1e-29 to 2e-26 on the default study's exact
# recoveries, where the polish goes on to what float64 allows (2e-31 to 4e-29).
GRADIENT_TOLERANCE = 1e-14
# Function evaluations allowed per iteration on average (line searches included).
EVALUATIONS_PER_ITERATION = 20


class _Stop(Exception):
    """Raised by the progress check to end a run of L-BFGS-B that has stalled."""


def finetune_network(
    network: MLP,
    x: np.ndarray,
    y: np.ndarray,
    settings: FinetuneSettings,
    *,
    floor: bool = False,
) -> tuple[MLP, FinetuneResult]:
    """Minimise the MSE of every weight of ``network`` (skip term included) on ``(x, y)``
    by L-BFGS in float64. If the loss does not improve, or becomes NaN, the network is
    returned unchanged.

    ``floor``: drop L-BFGS's own gradient tolerance, so that only ``settings`` (the
    iteration budget and ``min_improvement``, relative to the loss) and a line search that
    no longer finds a lower loss end the run: a polish down to what float64 and the data
    allow (:func:`expand_and_cluster.precision.polish`).

    The optimiser is scipy's compiled L-BFGS-B (no bounds), the loss and gradient torch's.
    Measured reason, against torch's ``LBFGS`` (strong Wolfe, the same history), which this
    step used before: from a suite-like start it reaches torch's loss after 500 iterations
    in 100, 4.5 times sooner (benchmark 7), and replayed on the suite's students the 45
    slowest recoveries took 397 s instead of 892 s. L-BFGS-B also tests its curvature pairs
    relative to their size, so the loss needs no rescaling as it falls (torch's absolute
    1e-10 dropped every pair below an MSE of about 1e-8)."""
    t0 = time.perf_counter()
    device = resolve_device(settings.device)
    xt = torch.as_tensor(x, dtype=torch.float64, device=device)
    yt = torch.as_tensor(y, dtype=torch.float64, device=device).reshape(len(x), -1)
    params = network.torch_parameters(torch.float64, device)
    tensors = params.all()
    sizes = [t.numel() for t in tensors]

    def load(theta: np.ndarray) -> None:
        flat = torch.as_tensor(theta, dtype=torch.float64, device=device)
        with torch.no_grad():
            for t, part in zip(tensors, torch.split(flat, sizes), strict=True):
                t.copy_(part.view_as(t))

    def loss_value() -> torch.Tensor:
        return (torch_forward(params, xt, network.activation) - yt).pow(2).mean()

    with torch.no_grad():
        before = loss_value().item()
    theta = torch.cat([t.reshape(-1) for t in tensors]).cpu().numpy()

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        load(flat)
        for t in tensors:
            t.requires_grad_(True)
        loss = loss_value() / scale
        gradients = torch.autograd.grad(loss, tensors)
        for t in tensors:
            t.requires_grad_(False)
        value = loss.item()
        if not np.isfinite(value):
            # L-BFGS-B accepts no step to a non-finite loss: it backs off or ends the run.
            return float("inf"), np.zeros_like(flat)
        return value, torch.cat([g.reshape(-1) for g in gradients]).cpu().numpy()

    done, current, best = 0, before, theta
    checked = before  # the loss at the last progress line

    def progress(intermediate_result: optimize.OptimizeResult) -> None:
        nonlocal done, current, best, checked
        done += 1
        current = float(intermediate_result.fun) * scale
        best = intermediate_result.x.copy()
        if done % settings.log_every == 0 or done == settings.max_iterations:
            log.info("fine-tune: iteration %d, loss %.3e", done, current)
        if done % settings.log_every == 0:
            if not current < checked * (1 - settings.min_improvement):
                raise _Stop
            checked = current

    # A run that ends on its own (gradient tolerance, or a line search that fails) is
    # followed by a fresh one while it still lowered the loss: its curvature memory and
    # scale came from a higher loss, which can end a run too soon (sigmoid-2-2-1-s1 x4:
    # 1.2e-9 where a fresh start reaches 1e-27).
    while done < settings.max_iterations and current > 0:
        # The objective is the loss over its value at the start of the run: L-BFGS-B's
        # numbers then start near 1 whatever the problem's scale.
        scale, start = current, current
        try:
            optimize.minimize(
                objective,
                best,
                jac=True,
                method="L-BFGS-B",
                callback=progress,
                options={
                    "maxcor": settings.history_size,
                    "maxiter": settings.max_iterations - done,
                    "maxfun": EVALUATIONS_PER_ITERATION * (settings.max_iterations - done),
                    "ftol": 0.0,
                    "gtol": 0.0 if floor else GRADIENT_TOLERANCE / scale,
                },
            )
        except _Stop:
            break
        if not current < start * (1 - settings.min_improvement):
            break
    if not (np.isfinite(current) and current <= before):
        log.warning(
            "fine-tuning did not improve the loss (%.3e -> %.3e); keeping the network as it was",
            before,
            current,
        )
        return network, FinetuneResult(before, before, done, time.perf_counter() - t0)
    load(best)
    tuned = MLP.from_torch(params, network.activation)
    return tuned, FinetuneResult(before, current, done, time.perf_counter() - t0)
