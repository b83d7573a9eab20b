"""Polish trained students: full-batch L-BFGS in float64 of all of them at once.

Adam brings students near the teacher; on some problems it then crawls. With 2 inputs a
softplus neuron is nearly linear over the queries, and students fit the sum of the linear
parts long before the small curved parts that tell the neurons apart (measured on the
suite's softplus 2,4,1 seed 0 at expansion 4: after 700 epochs the students' loss was
still falling by a quarter every 100 epochs, at 5e-4 of the output variance; a teacher
neuron there explains 8e-7 of it beyond what the others do, which no student resolves).
A quasi-Newton method follows such flat valleys: 300 iterations took the same students to
7e-7 and their recovery to exact.

Each student keeps its own curvature memory, direction and step (a backtracking Armijo
line search), so students never influence each other, as in training; the whole
ensemble is one forward and backward pass per iteration (over chunks of the queries), and
a step that some students must shorten is re-evaluated for those students only. torch's
own ``LBFGS`` would run one optimiser per student (ten times the per-iteration overhead;
31 s where this takes 5 s on the students above) or one line search shared by all
(students at losses three orders apart: 500 iterations took the median only from 5e-4 to
1e-5).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from expand_and_cluster.students import StudentEnsemble

log = logging.getLogger(__name__)

# Curvature pairs kept per student.
HISTORY = 20
# Queries per forward and backward pass (the gradient is summed over chunks): bounds the
# memory of the layers' values, which full-batch L-BFGS would hold for every query.
CHUNK = 8192
# Sufficient decrease of the Armijo condition; the step is halved until it holds, at most
# MAX_HALVINGS times (then the student has converged as far as float64 resolves).
ARMIJO = 1e-4
MAX_HALVINGS = 40


def polish_students(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    activation: str,
    x: np.ndarray,
    y: np.ndarray,
    iterations: int,
    label: str = "students",
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """``iterations`` of batched L-BFGS on every student's MSE over ``(x, y)``
    (``weights[l]``: ``(N, out, in)``). Returns the polished weights and biases (float64)
    and each student's final MSE."""
    t0 = time.perf_counter()
    n = len(weights[0])
    params = [*weights, *biases]
    shapes = [p.shape[1:] for p in params]
    sizes = [math.prod(s) for s in shapes]
    theta = torch.cat([torch.as_tensor(p, dtype=torch.float64).reshape(n, -1) for p in params], 1)
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64).reshape(len(x), -1)
    n_layers = len(weights)

    def ensemble(flat: torch.Tensor) -> StudentEnsemble:
        split = torch.split(flat, sizes, 1)
        parts = [q.reshape(len(flat), *s) for q, s in zip(split, shapes, strict=True)]
        return StudentEnsemble(parts[:n_layers], parts[n_layers:], activation)

    def loss_and_gradient(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = flat.detach().requires_grad_(True)
        losses = torch.zeros(len(flat), dtype=torch.float64)
        gradient = torch.zeros_like(flat)
        for start in range(0, len(xt), CHUNK):
            xb, yb = xt[start : start + CHUNK], yt[start : start + CHUNK]
            part = ensemble(flat).losses(xb, yb) * (len(xb) / len(xt))
            (g,) = torch.autograd.grad(part.sum(), flat)
            losses += part.detach()
            gradient += g
        return losses, gradient

    loss, gradient = loss_and_gradient(theta)
    start = loss.clone()
    s_hist = torch.zeros(HISTORY, *theta.shape, dtype=torch.float64)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(HISTORY, n, dtype=torch.float64)  # 0: an unused or skipped pair
    scale = torch.ones(n, dtype=torch.float64)  # the initial inverse Hessian, per student
    active = torch.isfinite(loss) & (loss > 0)
    done = 0
    while done < iterations and active.any():
        direction = -_two_loop(gradient, s_hist, y_hist, rho, scale, done)
        slope = (gradient * direction).sum(1)
        uphill = slope >= 0  # a stale memory: fall back to steepest descent
        direction[uphill] = -gradient[uphill]
        slope = (gradient * direction).sum(1)
        # The first step has no curvature yet: at most a unit move in the weights.
        step = torch.ones(n, dtype=torch.float64)
        if done == 0:
            step = torch.clamp(1.0 / gradient.abs().sum(1).clamp(min=1e-300), max=1.0)
        step = torch.where(active, step, 0.0)
        new_loss, new_gradient = loss_and_gradient(theta + step[:, None] * direction)
        accepted = ~active | (new_loss <= loss + ARMIJO * step * slope)
        for _ in range(MAX_HALVINGS):
            if accepted.all():
                break
            shorten = torch.nonzero(~accepted).flatten()
            step[shorten] *= 0.5
            trial = theta[shorten] + step[shorten, None] * direction[shorten]
            new_loss[shorten], new_gradient[shorten] = loss_and_gradient(trial)
            accepted[shorten] = new_loss[shorten] <= loss[shorten] + ARMIJO * (
                step[shorten] * slope[shorten]
            )
        # A student whose step cannot lower its loss has converged as far as float64 goes.
        active &= accepted & (new_loss < loss)
        step = torch.where(active, step, 0.0)
        moved = step[:, None] * direction
        theta = theta + moved
        change = torch.where(active[:, None], new_gradient - gradient, 0.0)
        loss = torch.where(active, new_loss, loss)
        gradient = torch.where(active[:, None], new_gradient, gradient)
        curvature = (moved * change).sum(1)
        # Keep a pair only where it carries curvature (y.s > 0), as L-BFGS must.
        good = active & (curvature > 1e-12 * moved.norm(dim=1) * change.norm(dim=1))
        slot = done % HISTORY
        s_hist[slot], y_hist[slot] = moved, change
        rho[slot] = torch.where(good, 1.0 / torch.where(good, curvature, 1.0), 0.0)
        scale = torch.where(good, curvature / (change * change).sum(1).clamp(min=1e-300), scale)
        done += 1
    polished = ensemble(theta)
    w, b = polished.numpy()
    final = loss.numpy().copy()
    log.info(
        "%s: polished by L-BFGS for %d iterations in %.1f s: loss median %.3e -> %.3e",
        label,
        done,
        time.perf_counter() - t0,
        float(np.median(start.numpy())),
        float(np.median(final)),
    )
    return w, b, final


def _two_loop(
    gradient: torch.Tensor,
    s_hist: torch.Tensor,
    y_hist: torch.Tensor,
    rho: torch.Tensor,
    scale: torch.Tensor,
    stored: int,
) -> torch.Tensor:
    """The L-BFGS product of the inverse Hessian estimate and ``gradient``, per student
    (the two-loop recursion over the ``stored`` newest pairs; a pair with ``rho`` 0 is
    skipped)."""
    q = gradient.clone()
    order = [(stored - 1 - j) % HISTORY for j in range(min(stored, HISTORY))]
    alphas = {}
    for i in order:
        alphas[i] = rho[i] * (s_hist[i] * q).sum(1)
        q -= alphas[i][:, None] * y_hist[i]
    r = scale[:, None] * q
    for i in reversed(order):
        beta = rho[i] * (y_hist[i] * r).sum(1)
        r += s_hist[i] * (alphas[i] - beta)[:, None]
    return r
