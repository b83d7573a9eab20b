"""N student networks of one architecture, trained together as batched tensors.

Layer ``l`` of all students is one tensor ``weights[l]`` of shape ``(N, out, in)`` and one
``biases[l]`` of shape ``(N, out)``. The loss is the sum of the per-student MSEs, so students
never influence each other; each student also has its own learning-rate schedule
(reduce-on-plateau) and stops on its own when its learning rate reaches the minimum.
Students whose loss becomes NaN or inf are frozen and marked failed.
"""

from __future__ import annotations

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

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class TrainSettings:
    """How students are trained. Defaults follow the paper: Adam at 1e-3, reduce-on-plateau
    by 1/sqrt(10), stop when the learning rate reaches 1e-7."""

    lr: float = 1e-3
    batch_size: int | None = 512  # None trains full-batch
    max_epochs: int = 20000
    patience: int = 50  # epochs without improvement before the learning rate drops
    cooldown: int = 0  # epochs after a drop before patience counts again
    factor: float = 1.0 / math.sqrt(10.0)
    min_lr: float = 1e-7
    dtype: str = "float64"
    device: str = "auto"
    log_every: int = 100  # epochs between progress lines and loss-history entries
    checkpoint_every: int = 500  # epochs between checkpoints (when a checkpoint path is given)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"dtype must be one of {', '.join(DTYPES)}; got {self.dtype!r}")
        if self.batch_size is not None and self.batch_size < 1:
            raise InputError(f"batch_size must be positive or None (full batch); got {self.batch_size}")
        for name in ("lr", "min_lr", "factor"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive; got {getattr(self, name)}")
        if not self.factor < 1:
            raise InputError(f"factor must be below 1; got {self.factor}")
        for name in ("max_epochs", "log_every", "checkpoint_every", "patience"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1; got {getattr(self, name)}")

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


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
        """``(samples, in)`` -> ``(N, samples, out)``."""
        f = get_activation(self.activation).torch
        n = self.n_students
        # (N, samples, out) stays contiguous, which keeps the activation functions fast.
        h = torch.baddbmm(self.biases[0][:, None, :], x.expand(n, *x.shape), self.weights[0].transpose(1, 2))
        for w, b in zip(self.weights[1:], self.biases[1:], strict=True):
            h = torch.baddbmm(b[:, None, :], f(h), w.transpose(1, 2))
        if self.skip is not None:
            h = torch.baddbmm(h, x.expand(n, *x.shape), self.skip.transpose(1, 2))
        return h

    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-student MSE over samples and outputs, shape ``(N,)``."""
        return (self.forward(x) - y).pow(2).mean(dim=(1, 2))

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
    widths: list[int], n_students: int, activation: str, seed: int, dtype: torch.dtype = torch.float64
) -> StudentEnsemble:
    """Fresh students, PyTorch-Linear style: weights and biases uniform in +-1/sqrt(fan_in).

    The scale depends only on each layer's own fan-in (not on N), and student ``k`` draws
    from its own random stream, so adding students never changes the others.
    """
    get_activation(activation)
    if n_students < 1 or len(widths) < 2 or min(widths) < 1:
        raise InputError(f"need at least one student and positive widths; got N={n_students}, widths={widths}")
    weights = [torch.empty(n_students, o, i, dtype=dtype) for i, o in zip(widths[:-1], widths[1:], strict=True)]
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
    """Adam whose learning rate is a per-student tensor: ``lr[k]`` scales student ``k``."""

    def __init__(self, params: list[torch.Tensor], betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = params
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.betas, self.eps, self.steps = betas, eps, 0

    @torch.no_grad()
    def step(self, lr: torch.Tensor) -> None:
        self.steps += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.steps, 1 - b2**self.steps
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            g = p.grad
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            scale = (lr / c1).to(p.dtype).view(-1, *([1] * (p.ndim - 1)))
            p.addcdiv_(m * scale, (v / c2).sqrt_().add_(self.eps), value=-1.0)

    def state(self) -> dict[str, torch.Tensor]:
        out = {f"adam_m_{i}": m for i, m in enumerate(self.m)}
        out.update({f"adam_v_{i}": v for i, v in enumerate(self.v)})
        out["adam_steps"] = torch.tensor(self.steps)
        return out

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for i in range(len(self.params)):
            self.m[i].copy_(state[f"adam_m_{i}"])
            self.v[i].copy_(state[f"adam_v_{i}"])
        self.steps = int(state["adam_steps"])


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
        raise InputError(f"inputs (samples, in) and outputs (samples, out) must match; got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[1] != students.widths[0] or y.shape[1] != students.widths[-1]:
        raise InputError(
            f"students take {students.widths[0]} inputs and give {students.widths[-1]} outputs, "
            f"but the data has {x.shape[1]} inputs and {y.shape[1]} outputs"
        )
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise InputError("training inputs or outputs contain NaN or inf: check the teacher's outputs")
    students = students.to(device, dtype)
    n = students.n_students
    trainable = [*students.weights[frozen_layers:], *students.biases[frozen_layers:]]
    if students.skip is not None:
        trainable.append(students.skip)
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
    while epoch < settings.max_epochs:
        if not schedule.active.any():
            stop_reason = "all students reached min_lr or failed"
            break
        order = (
            None
            if batch == n_samples
            else torch.randperm(n_samples, generator=torch_generator(seed, "data-order", epoch)).to(device)
        )
        epoch_loss = torch.zeros(n, dtype=torch.float64, device=device)
        for start in range(0, n_samples, batch):
            if order is None:
                xb, yb = x, y
            else:
                idx = order[start : start + batch]
                xb, yb = x[idx], y[idx]
            per_student = students.losses(xb, yb)
            total = torch.where(schedule.active, per_student, 0.0).sum()
            for p in trainable:
                p.grad = None
            total.backward()
            with torch.no_grad():
                for p in trainable:
                    p.grad.nan_to_num_(0.0, 0.0, 0.0)
            adam.step(torch.where(schedule.active, schedule.lr, 0.0))
            epoch_loss += per_student.detach().to(torch.float64) * (len(xb) / n_samples)
        newly_failed = ~torch.isfinite(epoch_loss) & ~schedule.failed
        schedule.step(epoch_loss, settings)
        for k in torch.nonzero(newly_failed).flatten().tolist():
            log.warning("%s: student %d failed at epoch %d (loss %s); it is frozen and excluded", label, k, epoch, epoch_loss[k].item())
        epoch += 1
        if epoch % settings.log_every == 0 or epoch == settings.max_epochs:
            history.append(epoch_loss.cpu().numpy())
            history_epochs.append(epoch)
            finite = epoch_loss[torch.isfinite(epoch_loss)]
            log.info(
                "%s: epoch %d, loss median %.3e, min %.3e, %d/%d active, lr median %.1e",
                label, epoch,
                finite.median().item() if len(finite) else float("nan"),
                finite.min().item() if len(finite) else float("nan"),
                int(schedule.active.sum()), n, schedule.lr.median().item(),
            )
        if checkpoint is not None and epoch % settings.checkpoint_every == 0:
            _save_checkpoint(Path(checkpoint), epoch, seconds_before + time.perf_counter() - t0,
                             students, adam, schedule, history, history_epochs)

    for p in trainable:
        p.requires_grad_(False)
        p.grad = None
    with torch.no_grad():
        final = _losses_in_chunks(students, x, y).cpu().numpy()
    final[schedule.failed.cpu().numpy()] = np.nan
    seconds = seconds_before + time.perf_counter() - t0
    log.info("%s: stopped after %d epochs (%s) in %.1f s; final loss median %.3e",
             label, epoch, stop_reason, seconds, np.nanmedian(final) if np.isfinite(final).any() else float("nan"))
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


def _losses_in_chunks(students: StudentEnsemble, x: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    total = torch.zeros(students.n_students, dtype=torch.float64, device=x.device)
    for start in range(0, x.shape[0], chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        total += students.losses(xb, yb).to(torch.float64) * len(xb)
    return total / x.shape[0]


def _as_tensor(a: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype)
    return torch.as_tensor(np.asarray(a), dtype=dtype, device=device)


def _save_checkpoint(path, epoch, seconds, students, adam, schedule, history, history_epochs) -> None:
    """Write to a temporary file and rename it, so a kill mid-write never leaves a
    half-written checkpoint behind."""
    state = {f"param_{i}": p.detach() for i, p in enumerate(students.parameters())}
    state.update(adam.state())
    state.update({f"schedule_{k}": v for k, v in asdict(schedule).items()})
    state["epoch"] = torch.tensor(epoch)
    state["seconds"] = torch.tensor(seconds, dtype=torch.float64)
    state["history"] = torch.tensor(np.stack(history, axis=1) if history else np.zeros((students.n_students, 0)))
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
        raise InputError(f"checkpoint {path} cannot be read ({e}): delete it to restart training") from None
    params = students.parameters()
    if any(f"param_{i}" not in state or state[f"param_{i}"].shape != p.shape for i, p in enumerate(params)):
        raise InputError(f"checkpoint {path} does not match these students' shapes: delete it to restart training")
    with torch.no_grad():
        for i, p in enumerate(params):
            p.copy_(state[f"param_{i}"])
    adam.load(state)
    for name in ("lr", "best", "bad_epochs", "cooldown_left", "stopped", "failed"):
        setattr(schedule, name, state[f"schedule_{name}"])
    history = list(state["history"].numpy().T)
    return int(state["epoch"]), float(state["seconds"]), history, state["history_epochs"].tolist()


