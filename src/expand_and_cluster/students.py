"""N student networks of one architecture, trained together as batched tensors.

Layer ``l`` of all students is one tensor ``weights[l]`` of shape ``(N, out, in)`` and one
``biases[l]`` of shape ``(N, out)``. The loss is the sum of the per-student MSEs, so students
never influence each other; each student also has its own learning-rate schedule
(reduce-on-plateau) and stops on its own when its learning rate reaches the minimum.
Students whose loss becomes NaN or inf are frozen and marked failed.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from expand_and_cluster.activations import get_activation
from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import torch_generator
from expand_and_cluster.settings import check_settings, setting

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}

# Data sets up to this size are shuffled with one copy per epoch (batches are then slices).
_SHUFFLE_COPY_BYTES = 1 << 30
# Training steps below this many FLOPs (forward and backward) run on one CPU thread.
_SMALL_STEP_FLOPS = 5e7


DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"


@dataclass
class TrainSettings:
    """How students are trained. Defaults follow the paper: Adam at 1e-3, reduce-on-plateau
    by 1/sqrt(10), stop when the learning rate reaches 1e-7."""

    lr: float = setting(1e-3, "Adam learning rate at the start.", exclusive_minimum=0)
    batch_size: int | None = setting(
        512, "Mini-batch size; null (none on the command line) trains full-batch.", minimum=1
    )
    max_epochs: int = setting(
        2000,
        "Hard cap on epochs (students also stop when their learning rate reaches min_lr).",
        minimum=1,
    )
    patience: int = setting(
        50, "Epochs without improvement before a student's learning rate drops.", minimum=1
    )
    cooldown: int = setting(0, "Epochs after a drop before patience counts again.", minimum=0)
    factor: float = setting(
        1.0 / math.sqrt(10.0),
        "Learning-rate drop factor (reduce on plateau).",
        exclusive_minimum=0,
        exclusive_maximum=1,
    )
    min_lr: float = setting(
        1e-7, "A student stops when its learning rate falls below this.", exclusive_minimum=0
    )
    # float32 trains about twice as fast on CPU; the final fine-tuning of the recovered
    # network is float64 either way.
    dtype: str = setting("float32", "Training precision.", choices=tuple(DTYPES))
    device: str = setting(
        "auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N.", pattern=DEVICE_PATTERN
    )
    log_every: int = setting(
        100, "Epochs between progress lines in the log and loss-history entries.", minimum=1
    )
    checkpoint_every: int = setting(
        500,
        "Epochs between checkpoints of a training job (a killed job resumes from its last one).",
        minimum=1,
    )

    def __post_init__(self) -> None:
        check_settings(self)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def student_widths(teacher_widths: list[int], expansion: float) -> list[int]:
    """The students' hidden widths: ``expansion`` times the teacher's, rounded up (at
    least 1). ``2.2 * 25`` is 55, not 56: the product is rounded up only beyond float
    error."""
    if isinstance(expansion, bool) or not isinstance(expansion, int | float):
        raise InputError(f"expansion must be a number; got {expansion!r}")
    if not (math.isfinite(expansion) and expansion > 0):
        raise InputError(f"expansion must be a positive finite number; got {expansion!r}")
    return [max(1, math.ceil(expansion * w - 1e-9)) for w in teacher_widths]


_logged_device: str | None = None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is CUDA when present, else CPU; the choice is logged once per process."""
    global _logged_device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}: use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device cuda was asked for but no CUDA GPU is available: use auto or cpu")
    if _logged_device != str(device):
        log.info("training on %s", device)
        _logged_device = str(device)
    return device


class _SingleOutput(torch.autograd.Function):
    """``b + w @ h`` for a layer of one neuron (``w``: ``(N, 1, in)``), as ``baddbmm``, with
    the gradient of ``h`` taken as a broadcast product: it is an outer product (a batched
    matrix product with inner size 1, which is slow), and each element is the same single
    product either way."""

    @staticmethod
    def forward(ctx, b: torch.Tensor, w: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w, h)
        return torch.baddbmm(b[:, :, None], w, h)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        w, h = ctx.saved_tensors
        grad_b = grad.sum(2) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad, h.transpose(1, 2)) if ctx.needs_input_grad[1] else None
        grad_h = w.transpose(1, 2) * grad if ctx.needs_input_grad[2] else None
        return grad_b, grad_w, grad_h


@dataclass
class StudentEnsemble:
    """``weights[l]``: ``(N, out, in)``; ``biases[l]``: ``(N, out)``; optional ``skip``:
    ``(N, n_outputs, n_inputs)`` linear term from input to output."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    activation: str
    skip: torch.Tensor | None = None

    @property
    def n_students(self) -> int:
        return self.weights[0].shape[0]

    @property
    def widths(self) -> list[int]:
        return [self.weights[0].shape[2]] + [w.shape[1] for w in self.weights]

    def parameters(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases, *([] if self.skip is None else [self.skip])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(samples, in)`` -> ``(N, samples, out)`` (a transposed view of
        :meth:`_forward_t`)."""
        return self._forward_t(x).transpose(1, 2)

    def _forward_t(self, x: torch.Tensor) -> torch.Tensor:
        """``(samples, in)`` -> ``(N, out, samples)``, feature-major.

        The first layer of all students is one matrix product ``(N*out, in) @ (in, samples)``
        (x is shared, so no per-student copy of it is made), and every later tensor is
        contiguous ``(N, features, samples)``, so the backward pass needs no copies either:
        the first layer's weight gradient is again one product ``(N*out, samples) @ (samples, in)``.
        """
        f = get_activation(self.activation).torch
        n = self.n_students
        w0, b0 = self.weights[0], self.biases[0]
        xt = x.t()
        h = torch.addmm(b0.reshape(-1, 1), w0.reshape(-1, w0.shape[2]), xt).view(n, w0.shape[1], -1)
        for w, b in zip(self.weights[1:], self.biases[1:], strict=True):
            if w.shape[1] == 1 and torch.is_grad_enabled():
                h = _SingleOutput.apply(b, w, f(h))
            else:
                h = torch.baddbmm(b[:, :, None], w, f(h))
        if self.skip is not None:
            s = self.skip
            h = torch.addmm(h.reshape(-1, h.shape[2]), s.reshape(-1, s.shape[2]), xt).view(h.shape)
        return h

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-student MSE over samples and outputs, shape ``(N,)``."""
        return (self._forward_t(x) - y.t()).pow(2).mean(dim=(1, 2))

    def to(self, device: torch.device, dtype: torch.dtype) -> StudentEnsemble:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.detach().to(device=device, dtype=dtype).contiguous()

        return StudentEnsemble(
            [move(w) for w in self.weights],
            [move(b) for b in self.biases],
            self.activation,
            None if self.skip is None else move(self.skip),
        )

    def numpy(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().to(torch.float64).numpy().copy()

        return [array(w) for w in self.weights], [array(b) for b in self.biases]


def init_students(
    widths: list[int],
    n_students: int,
    activation: str,
    seed: int,
    dtype: torch.dtype = torch.float64,
) -> StudentEnsemble:
    """Fresh students, PyTorch-Linear style: weights and biases uniform in +-1/sqrt(fan_in).

    The scale depends only on each layer's own fan-in (not on N), and student ``k`` draws
    from its own random stream, so adding students never changes the others.
    """
    get_activation(activation)
    if n_students < 1 or len(widths) < 2 or min(widths) < 1:
        raise InputError(
            f"need at least one student and positive widths; got N={n_students}, widths={widths}"
        )
    weights = [torch.empty(n_students, o, i, dtype=dtype) for i, o in itertools.pairwise(widths)]
    biases = [torch.empty(n_students, o, dtype=dtype) for o in widths[1:]]
    for k in range(n_students):
        gen = torch_generator(seed, "student-init", k)
        for w, b in zip(weights, biases, strict=True):
            bound = 1.0 / math.sqrt(w.shape[2])
            w[k] = (torch.rand(w.shape[1:], generator=gen, dtype=dtype) * 2 - 1) * bound
            b[k] = (torch.rand(b.shape[1:], generator=gen, dtype=dtype) * 2 - 1) * bound
    return StudentEnsemble(weights, biases, activation)


@dataclass
class TrainResult:
    students: StudentEnsemble
    final_loss: np.ndarray  # (N,) MSE on all training data at the end, NaN for failed students
    loss_history: np.ndarray  # (N, entries): epoch-mean loss every `log_every` epochs
    history_epochs: np.ndarray  # (entries,) the epoch of each history entry
    failed: np.ndarray  # (N,) bool: loss became NaN or inf
    epochs: int  # epochs run
    seconds: float
    stop_reason: str


@dataclass
class _Schedule:
    """Per-student reduce-on-plateau state (threshold 0, like the paper)."""

    lr: torch.Tensor
    best: torch.Tensor
    bad_epochs: torch.Tensor
    cooldown_left: torch.Tensor
    stopped: torch.Tensor
    failed: torch.Tensor

    @classmethod
    def fresh(cls, n: int, lr: float, device: torch.device) -> _Schedule:
        return cls(
            lr=torch.full((n,), lr, dtype=torch.float64, device=device),
            best=torch.full((n,), math.inf, dtype=torch.float64, device=device),
            bad_epochs=torch.zeros(n, dtype=torch.int64, device=device),
            cooldown_left=torch.zeros(n, dtype=torch.int64, device=device),
            stopped=torch.zeros(n, dtype=torch.bool, device=device),
            failed=torch.zeros(n, dtype=torch.bool, device=device),
        )

    def step(self, epoch_loss: torch.Tensor, settings: TrainSettings) -> None:
        newly_failed = ~torch.isfinite(epoch_loss) & ~self.failed
        self.failed |= newly_failed
        improved = epoch_loss < self.best
        self.best = torch.where(improved, epoch_loss, self.best)
        in_cooldown = self.cooldown_left > 0
        self.cooldown_left = (self.cooldown_left - 1).clamp(min=0)
        self.bad_epochs = torch.where(improved | in_cooldown, 0, self.bad_epochs + 1)
        reduce = self.bad_epochs > settings.patience
        self.lr = torch.where(reduce, self.lr * settings.factor, self.lr)
        self.cooldown_left = torch.where(reduce, settings.cooldown, self.cooldown_left)
        self.bad_epochs = torch.where(reduce, 0, self.bad_epochs)
        # Stop once the learning rate has fallen below the minimum (with a little slack
        # for rounding, as PyTorch's scheduler does).
        self.stopped |= self.lr < settings.min_lr * (1 - 1e-6)
        self.stopped |= self.failed

    @property
    def active(self) -> torch.Tensor:
        return ~self.stopped


class _BatchedAdam:
    """Adam whose learning rate is a per-student tensor: ``lr[k]`` scales student ``k``.

    All parameters (each ``(N, ...)``) are views into one flat buffer (see
    :func:`_flat_parameters`), and so are the moments, so a step is a fixed handful of
    in-place operations over one buffer however many layers there are, with no
    temporaries. The arithmetic is exactly the per-tensor one:
    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    ``p -= (m * (lr_k / c1)) / (sqrt(v / c2) + eps)``.
    """

    def __init__(self, params: list[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.flat = _flat_base(params)
        if self.flat is None:  # not views of one buffer: copy the values into one
            self.flat, views = _flat_parameters(params)
            with torch.no_grad():
                for p, q in zip(params, views, strict=True):
                    p.set_(q)
        self.m_flat = torch.zeros_like(self.flat)
        self.v_flat = torch.zeros_like(self.flat)
        self.m = _views_like(self.m_flat, params)
        self.v = _views_like(self.v_flat, params)
        n = params[0].shape[0]
        device = self.flat.device
        # The student of every element of the flat buffer, to expand lr[k] to elements.
        self._student = torch.cat(
            [torch.arange(n, device=device).repeat_interleave(p.numel() // n) for p in params]
        )
        self._num = torch.empty_like(self.flat)
        self._denom = torch.empty_like(self.flat)
        self.grad_flat = torch.empty_like(self.flat)
        self.betas, self.eps, self.steps = betas, eps, 0

    @torch.no_grad()
    def step(self, lr: torch.Tensor, grads: list[torch.Tensor] | None = None) -> None:
        """One step with ``grads`` (default: each parameter's ``.grad``); NaN and inf
        gradients count as 0."""
        grads = [p.grad for p in self.params] if grads is None else grads
        g = self.grad_flat
        torch.cat([t.reshape(-1) for t in grads], out=g)
        g.nan_to_num_(0.0, 0.0, 0.0)
        self.steps += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.steps, 1 - b2**self.steps
        m, v, num, denom = self.m_flat, self.v_flat, self._num, self._denom
        m.mul_(b1).add_(g, alpha=1 - b1)
        v.mul_(b2).addcmul_(g, g, value=1 - b2)
        torch.div(v, c2, out=denom).sqrt_().add_(self.eps)
        torch.index_select((lr / c1).to(self.flat.dtype), 0, self._student, out=num)
        num.mul_(m)
        self.flat.addcdiv_(num, denom, value=-1.0)

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"adam_m_{i}": m.clone() for i, m in enumerate(self.m)}
        out.update({f"adam_v_{i}": v.clone() for i, v in enumerate(self.v)})
        out["adam_steps"] = torch.tensor(self.steps)
        return out

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for i in range(len(self.params)):
            self.m[i].copy_(state[f"adam_m_{i}"])
            self.v[i].copy_(state[f"adam_v_{i}"])
        self.steps = int(state["adam_steps"])


def _views_like(flat: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Consecutive views of ``flat`` with the shapes of ``params``."""
    views, offset = [], 0
    for p in params:
        views.append(flat[offset : offset + p.numel()].view(p.shape))
        offset += p.numel()
    return views


def _flat_parameters(params: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One new contiguous buffer holding ``params`` one after the other, and views into it
    shaped like them."""
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    return flat, _views_like(flat, params)


def _flat_base(params: list[torch.Tensor]) -> torch.Tensor | None:
    """The buffer ``params`` are consecutive contiguous views of, if they are."""
    base = params[0]._base
    if base is None or base.ndim != 1 or not base.is_contiguous():
        return None
    offset = 0
    for p in params:
        at = base.storage_offset() + offset
        if p._base is not base or not p.is_contiguous() or p.storage_offset() != at:
            return None
        offset += p.numel()
    return base if offset == base.numel() else None


def _step_flops(students: StudentEnsemble, batch: int) -> float:
    """Multiply-adds of a forward and backward pass over ``batch`` samples, times two."""
    sizes = sum(w[0].numel() for w in students.weights)
    if students.skip is not None:
        sizes += students.skip[0].numel()
    return 6.0 * students.n_students * batch * sizes


def _train_step(
    students: StudentEnsemble,
    trainable: list[torch.Tensor],
    adam: _BatchedAdam,
    xb: torch.Tensor,
    yb: torch.Tensor,
    active: torch.Tensor,
    lr: torch.Tensor,
) -> torch.Tensor:
    """One optimiser step of all students on the batch ``(xb, yb)``: forward, backward,
    Adam. ``active`` masks students out of the loss, ``lr`` is per student (0 for
    inactive ones). Returns the per-student losses on the batch (detached)."""
    per_student = students.losses(xb, yb)
    total = torch.where(active, per_student, 0.0).sum()
    grads = torch.autograd.grad(total, trainable)
    adam.step(lr, grads)
    return per_student.detach()


def train_students(
    students: StudentEnsemble,
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    settings: TrainSettings,
    seed: int,
    frozen_layers: int = 0,
    checkpoint: str | Path | None = None,
    label: str = "students",
) -> TrainResult:
    """Train all students on ``(x, y)`` until each one's learning rate reaches ``min_lr``
    (or ``max_epochs``). The first ``frozen_layers`` layers are not trained.

    With ``checkpoint``, the full training state is saved there every
    ``settings.checkpoint_every`` epochs (atomically) and training resumes from it when
    it exists; the result is the same as an uninterrupted run.
    """
    device, dtype = resolve_device(settings.device), settings.torch_dtype
    x, y = _as_tensor(x, device, dtype), _as_tensor(y, device, dtype)
    if y.ndim == 1:
        y = y[:, None]
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise InputError(
            f"inputs (samples, in) and outputs (samples, out) must match; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[1] != students.widths[0] or y.shape[1] != students.widths[-1]:
        raise InputError(
            f"students take {students.widths[0]} inputs and give {students.widths[-1]} outputs, "
            f"but the data has {x.shape[1]} inputs and {y.shape[1]} outputs"
        )
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise InputError(
            "training inputs or outputs contain NaN or inf: check the teacher's outputs"
        )
    students = students.to(device, dtype)
    n = students.n_students
    # The trained parameters become consecutive views of one buffer, so that the
    # optimiser steps them all at once.
    skip = [] if students.skip is None else [students.skip]
    _, trainable = _flat_parameters(
        [*students.weights[frozen_layers:], *students.biases[frozen_layers:], *skip]
    )
    n_trained = len(students.weights) - frozen_layers
    students = StudentEnsemble(
        [*students.weights[:frozen_layers], *trainable[:n_trained]],
        [*students.biases[:frozen_layers], *trainable[n_trained : 2 * n_trained]],
        students.activation,
        None if students.skip is None else trainable[-1],
    )
    for p in trainable:
        p.requires_grad_(True)
    adam = _BatchedAdam(trainable)
    schedule = _Schedule.fresh(n, settings.lr, device)
    history: list[np.ndarray] = []
    history_epochs: list[int] = []
    start_epoch, seconds_before = 0, 0.0
    if checkpoint is not None and Path(checkpoint).exists():
        start_epoch, seconds_before, history, history_epochs = _load_checkpoint(
            Path(checkpoint), students, adam, schedule
        )
        log.info("%s: resumed from %s at epoch %d", label, checkpoint, start_epoch)

    n_samples = x.shape[0]
    batch = n_samples if settings.batch_size is None else min(settings.batch_size, n_samples)
    t0 = time.perf_counter()
    epoch, stop_reason = start_epoch, "max_epochs"
    # Shuffle the whole data set once per epoch when it is small enough to copy, so that
    # every batch is a contiguous slice; otherwise gather each batch.
    shuffle_all = (x.numel() + y.numel()) * x.element_size() <= _SHUFFLE_COPY_BYTES
    # Small steps are all per-operation overhead, where a thread pool only adds
    # synchronisation (and long stalls when other processes hold the cores): one thread.
    threads = torch.get_num_threads()
    if device.type == "cpu" and _step_flops(students, batch) < _SMALL_STEP_FLOPS:
        torch.set_num_threads(1)
    try:
        while epoch < settings.max_epochs:
            active = schedule.active
            if not active.any():
                stop_reason = "all students reached min_lr or failed"
                break
            lr = torch.where(active, schedule.lr, 0.0)
            order = (
                None
                if batch == n_samples
                else torch.randperm(
                    n_samples, generator=torch_generator(seed, "data-order", epoch)
                ).to(device)
            )
            if order is not None and shuffle_all:
                xe, ye = x.index_select(0, order), y.index_select(0, order)
            epoch_loss = torch.zeros(n, dtype=torch.float64, device=device)
            for start in range(0, n_samples, batch):
                if order is None:
                    xb, yb = x, y
                elif shuffle_all:
                    xb, yb = xe[start : start + batch], ye[start : start + batch]
                else:
                    idx = order[start : start + batch]
                    xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                per_student = _train_step(students, trainable, adam, xb, yb, active, lr)
                epoch_loss += per_student.to(torch.float64) * (len(xb) / n_samples)
            newly_failed = ~torch.isfinite(epoch_loss) & ~schedule.failed
            schedule.step(epoch_loss, settings)
            for k in torch.nonzero(newly_failed).flatten().tolist():
                log.warning(
                    "%s: student %d failed at epoch %d (loss %s); it is frozen and excluded",
                    label,
                    k,
                    epoch,
                    epoch_loss[k].item(),
                )
            epoch += 1
            if epoch % settings.log_every == 0 or epoch == settings.max_epochs:
                history.append(epoch_loss.cpu().numpy())
                history_epochs.append(epoch)
                finite = epoch_loss[torch.isfinite(epoch_loss)]
                log.info(
                    "%s: epoch %d, loss median %.3e, min %.3e, %d/%d active, lr median %.1e",
                    label,
                    epoch,
                    finite.median().item() if len(finite) else float("nan"),
                    finite.min().item() if len(finite) else float("nan"),
                    int(schedule.active.sum()),
                    n,
                    schedule.lr.median().item(),
                )
            if checkpoint is not None and epoch % settings.checkpoint_every == 0:
                seconds = seconds_before + time.perf_counter() - t0
                _save_checkpoint(
                    Path(checkpoint),
                    epoch,
                    seconds,
                    students,
                    adam,
                    schedule,
                    history,
                    history_epochs,
                )
    finally:
        torch.set_num_threads(threads)

    for p in trainable:
        p.requires_grad_(False)
        p.grad = None
    # Hand back tensors of their own, not views into the optimiser's buffer.
    students = StudentEnsemble(
        [w.detach().clone() for w in students.weights],
        [b.detach().clone() for b in students.biases],
        students.activation,
        None if students.skip is None else students.skip.detach().clone(),
    )
    with torch.no_grad():
        final = _losses_in_chunks(students, x, y).cpu().numpy()
    final[schedule.failed.cpu().numpy()] = np.nan
    seconds = seconds_before + time.perf_counter() - t0
    log.info(
        "%s: stopped after %d epochs (%s) in %.1f s; final loss median %.3e",
        label,
        epoch,
        stop_reason,
        seconds,
        np.nanmedian(final) if np.isfinite(final).any() else float("nan"),
    )
    return TrainResult(
        students=students,
        final_loss=final,
        loss_history=np.stack(history, axis=1) if history else np.zeros((n, 0)),
        history_epochs=np.array(history_epochs, dtype=np.int64),
        failed=schedule.failed.cpu().numpy(),
        epochs=epoch,
        seconds=seconds,
        stop_reason=stop_reason,
    )


def _losses_in_chunks(
    students: StudentEnsemble, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192
) -> torch.Tensor:
    total = torch.zeros(students.n_students, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        total += students.losses(xb, yb).to(torch.float64) * len(xb)
    return total / x.shape[0]


def _as_tensor(
    a: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _save_checkpoint(
    path, epoch, seconds, students, adam, schedule, history, history_epochs
) -> None:
    """Write to a temporary file and rename it, so a kill mid-write never leaves a
    half-written checkpoint behind."""
    state = {f"param_{i}": p.detach().clone() for i, p in enumerate(students.parameters())}
    state.update(adam.state())
    state.update({f"schedule_{k}": v for k, v in asdict(schedule).items()})
    state["epoch"] = torch.tensor(epoch)
    state["seconds"] = torch.tensor(seconds, dtype=torch.float64)
    state["history"] = torch.tensor(
        np.stack(history, axis=1) if history else np.zeros((students.n_students, 0))
    )
    state["history_epochs"] = torch.tensor(history_epochs, dtype=torch.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _load_checkpoint(path, students, adam, schedule):
    try:
        state = torch.load(path, map_location=students.weights[0].device, weights_only=True)
    except Exception as e:  # a torn or foreign file: refuse it, never unpickle
        raise InputError(
            f"checkpoint {path} cannot be read ({e}): delete it to restart training"
        ) from None
    params = students.parameters()
    if any(
        f"param_{i}" not in state or state[f"param_{i}"].shape != p.shape
        for i, p in enumerate(params)
    ):
        raise InputError(
            f"checkpoint {path} does not match these students' shapes: delete it to restart training"
        )
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(state[f"param_{i}"])
    adam.load(state)
    for name in ("lr", "best", "bad_epochs", "cooldown_left", "stopped", "failed"):
        setattr(schedule, name, state[f"schedule_{name}"])
    history = list(state["history"].numpy().T)
    return int(state["epoch"]), float(state["seconds"]), history, state["history_epochs"].tolist()
