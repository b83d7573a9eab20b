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


# L-BFGS's own stops within a run of log_every iterations: the largest entry of the
# MSE's gradient (absolute), and an iteration that changes the loss (relative to its value
# at the start of the run) or moves every weight by less than CHANGE_TOLERANCE, i.e. one
# that float64 no longer resolves. They end a recovery's fine-tuning near an MSE of 1e-19
# to 1e-27 on the default study, where the polish goes on to what float64 allows.
GRADIENT_TOLERANCE = 1e-14
CHANGE_TOLERANCE = 1e-18
# The loss is divided by its value whenever it has fallen below RESCALE_BELOW of the last
# scale (see finetune_network): far enough that curvature pairs (y.s, about twice a step's
# loss decrease) stay well above torch's 1e-10, rare enough that the memory is kept.
RESCALE_BELOW = 1e-4


def finetune_network(
    network: MLP,
    x: np.ndarray,
    y: np.ndarray,
    settings: FinetuneSettings,
    *,
    floor: bool = False,
) -> tuple[MLP, FinetuneResult]:
    """Minimise the MSE of every weight of ``network`` (skip term included) on ``(x, y)``.
    If the loss does not improve, or becomes NaN, the network is returned unchanged.

    ``floor``: drop L-BFGS's own tolerances, so that only ``settings`` (the iteration
    budget and ``min_improvement``, relative to the loss) end the run: a polish down to
    what float64 and the data allow (:func:`expand_and_cluster.precision.polish`)."""
    t0 = time.perf_counter()
    device = resolve_device(settings.device)
    xt = torch.as_tensor(x, dtype=torch.float64, device=device)
    yt = torch.as_tensor(y, dtype=torch.float64, device=device).reshape(len(x), -1)
    params = network.torch_parameters(torch.float64, device)
    tensors = params.all()
    for p in tensors:
        p.requires_grad_(True)

    def loss_value() -> torch.Tensor:
        return (torch_forward(params, xt, network.activation) - yt).pow(2).mean()

    with torch.no_grad():
        before = loss_value().item()

    # torch's L-BFGS keeps a curvature pair only when y.s > 1e-10 (absolute), which an MSE
    # below about 1e-8 seldom gives: without its memory it crawls on as gradient descent
    # (measured: 1,900 iterations from 1e-9 to 1e-12). So the loss is divided by a scale,
    # its value when the optimiser is built, and the gradient tolerance by the same scale.
    # A new optimiser (the pairs change scale with the loss) is built only once the loss
    # has fallen below RESCALE_BELOW of it: rebuilt every log_every iterations, the memory
    # of a large problem is lost each time (MNIST g-16 x4: MSE 2.2e-6 after 2,000
    # iterations, 4e-7 with the memory kept). The change tolerance stays as it is: torch
    # applies it to the step in the weights too, which the scale does not change (divided,
    # it ended runs after one short first step: 9.5e-13 where 1e-21 was reachable).
    # L-BFGS ending a run early (its tolerances) is trusted only from an optimiser built at
    # the current loss: with the memory and scale of a loss 100 times higher it can end a
    # run too soon (sigmoid-2-2-1-s1 x4: 1.2e-9 where a new optimiser reaches 1e-27). With
    # ``floor`` no early end is trusted (there it means a failed line search or the
    # evaluation budget, not convergence): the next run starts afresh, and only
    # min_improvement stops (trusting them, the polish of the default study's recoveries
    # stopped at MSEs up to 7.5e-19, where float64 allows 2e-28 or less).
    def optimizer(scale: float) -> torch.optim.LBFGS:
        return torch.optim.LBFGS(
            tensors,
            lr=1.0,
            max_iter=settings.log_every,
            history_size=settings.history_size,
            tolerance_grad=0.0 if floor else GRADIENT_TOLERANCE / scale,
            tolerance_change=0.0 if floor else CHANGE_TOLERANCE,
            line_search_fn="strong_wolfe",
        )

    scale, opt = 1.0, None

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = loss_value() / scale
        loss.backward()
        return loss

    done, current, cut_short = 0, before, False
    while done < settings.max_iterations and current > 0:
        # A run cut short is followed by a fresh optimiser (or ends the fine-tuning, below).
        fresh = opt is None or cut_short or current < scale * RESCALE_BELOW
        if fresh:
            scale = current
            opt = optimizer(scale)
        # The last run stops at the budget (runs cut short shift the count off log_every).
        opt.param_groups[0]["max_iter"] = min(settings.log_every, settings.max_iterations - done)
        start = opt.state[opt._params[0]].get("n_iter", 0)
        opt.step(closure)
        iterations = done + opt.state[opt._params[0]]["n_iter"] - start
        with torch.no_grad():
            latest = loss_value().item()
        log.info("fine-tune: iteration %d, loss %.3e", iterations, latest)
        cut_short = iterations - done < opt.param_groups[0]["max_iter"]
        improved = latest < current * (1 - settings.min_improvement)
        stalled = not improved or (cut_short and fresh and not floor)
        done, current = iterations, latest
        if stalled or not np.isfinite(latest):
            break
    if not (np.isfinite(current) and current <= before):
        log.warning(
            "fine-tuning did not improve the loss (%.3e -> %.3e); keeping the network as it was",
            before,
            current,
        )
        return network, FinetuneResult(before, before, done, time.perf_counter() - t0)
    for p in tensors:
        p.requires_grad_(False)
    tuned = MLP.from_torch(params, network.activation)
    return tuned, FinetuneResult(before, current, done, time.perf_counter() - t0)
