"""What the students see of the teacher's outputs: exact, or degraded as a user's outputs
often are (a service that answers in float16, values rounded to K significant digits,
noisy measurements), and how precise a given set of outputs is.

A transform is named by a spec string (:data:`OUTPUT_TRANSFORMS`); the study and
``ecluster recover --teacher-outputs`` apply it with :func:`transform_outputs` to the
teacher's outputs before the students see them, so that the method's tolerance to each kind
of imperfection can be measured against the exact teacher. :func:`output_precision` works
the other way round: from the values alone, how they were quantised and the noise floor
that implies, e.g. for a pruning threshold that should not remove what the outputs can
still resolve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import applied_output_error, number_id
from expand_and_cluster.seeding import numpy_rng

# Accepted spec forms -> what each does to the outputs y (one column per output).
OUTPUT_TRANSFORMS = {
    "none": "the exact outputs",
    "noise:S": "plus Gaussian noise of standard deviation S (> 0) times each output "
    "column's standard deviation",
    "digits:K": "each value rounded to K significant digits (1 <= K <= 15)",
    "float16": "cast to IEEE half precision and back",
    "bfloat16": "cast to bfloat16 and back",
}
# The most decimal digits a float64 holds for certain (DBL_DIG): any decimal of at most this
# many significant digits survives a round trip through float64, so rounding is idempotent.
MAX_DIGITS = 15

# Float formats (torch dtype, bits of precision p, smallest normal exponent), coarsest first.
_FLOATS = {
    "bfloat16": (torch.bfloat16, 8, -126),
    "float16": (torch.float16, 11, -14),
    "float32": (torch.float32, 24, -126),
    "float64": (torch.float64, 53, -1022),
}


@dataclass(frozen=True)
class OutputTransform:
    """A parsed transform: ``kind`` (none, noise, digits, float16, bfloat16) and its
    parameter (the relative noise level S, the number of digits K; None for the others)."""

    kind: str
    value: float | int | None = None

    @property
    def spec(self) -> str:
        """The canonical spec (``noise:0.001`` and ``noise:1e-3`` are both ``noise:0.001``),
        so that one transform has one name in labels and ids."""
        return self.kind if self.value is None else f"{self.kind}:{number_id(self.value)}"


def parse_output_transform(spec: str) -> OutputTransform:
    """The transform ``spec`` names; InputError (one line naming the problem and the
    accepted forms) for anything else."""
    accepted = f"accepted: {', '.join(OUTPUT_TRANSFORMS)}"
    text = str(spec)
    kind, _, value = text.partition(":")
    if kind in ("none", "float16", "bfloat16") and text == kind:
        return OutputTransform(kind)
    if kind == "noise" and value:
        try:
            level = float(value)
        except ValueError:
            level = math.nan
        if not (math.isfinite(level) and level > 0):
            raise InputError(
                f"output transform {text!r}: the noise level S must be a number > 0; {accepted}"
            )
        return OutputTransform("noise", level)
    if kind == "digits" and value:
        if not value.isdigit() or not 1 <= int(value) <= MAX_DIGITS:
            raise InputError(
                f"output transform {text!r}: K must be an integer from 1 to {MAX_DIGITS}; "
                f"{accepted}"
            )
        return OutputTransform("digits", int(value))
    raise InputError(f"unknown output transform {text!r}; {accepted}")


def transform_order(spec: str) -> tuple[int, float]:
    """Sort key of specs: by family in :data:`OUTPUT_TRANSFORMS`' order, then from the
    mildest to the harshest (noise:1e-6 before noise:0.1, digits:7 before digits:2)."""
    transform = parse_output_transform(spec)
    families = [form.partition(":")[0] for form in OUTPUT_TRANSFORMS]
    severity = -transform.value if transform.kind == "digits" else transform.value or 0
    return families.index(transform.kind), severity


def output_transform_id(spec: str) -> str:
    """The transform's part of a teacher id: none for the exact outputs, so existing ids
    stay; ``noise:0.001`` -> ``-onoise0.001``, ``float16`` -> ``-ofloat16``."""
    transform = parse_output_transform(spec)
    return "" if transform.kind == "none" else f"-o{transform.spec.replace(':', '')}"


def transform_outputs(y: np.ndarray, spec: str, seed: int) -> np.ndarray:
    """``y`` (rows x outputs, or one output per row) as the students would see it after
    the transform ``spec``, in float64. ``none`` returns ``y`` itself, untouched (bit for
    bit). The noise is drawn from the stream ``(seed, "teacher-outputs")``
    (:func:`expand_and_cluster.seeding.numpy_rng`, a numpy default_rng), independent of the
    queries' stream of the same seed, so the same seed gives the same noise."""
    transform = parse_output_transform(spec)
    if transform.kind == "none":
        return y
    values = np.asarray(y, dtype=np.float64)
    if transform.kind == "noise":
        columns = values.reshape(len(values), -1)
        scale = transform.value * _column_std(columns)
        noise = numpy_rng(seed, "teacher-outputs").standard_normal(columns.shape) * scale
        return (columns + noise).reshape(values.shape)
    if transform.kind == "digits":
        return round_digits(values, transform.value)
    out = _cast(values, transform.kind)
    if not np.isfinite(out).all():
        largest = torch.finfo(_FLOATS[transform.kind][0]).max
        raise InputError(
            f"output transform {spec!r}: outputs as large as {np.abs(values).max():.4g} "
            f"exceed the format's range ({largest:.5g}); scale the outputs first"
        )
    return out


def _column_std(columns: np.ndarray) -> np.ndarray:
    """Each column's standard deviation, exactly 0 for a constant column (whose computed
    spread is rounding residue: it must not scale noise or divide a floor)."""
    return np.where(np.ptp(columns, axis=0) > 0, columns.std(axis=0), 0.0)


def round_digits(values: np.ndarray, digits: int) -> np.ndarray:
    """Each value rounded to ``digits`` significant digits (1 to 15), correctly: through
    its decimal text, as printing it with that many digits would, so that rounding twice
    changes nothing (:func:`output_precision` relies on it)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    rounded = [float(f"{v:.{digits - 1}e}") for v in flat.tolist()]
    return np.array(rounded, dtype=np.float64).reshape(np.shape(values))


def _cast(values: np.ndarray, name: str) -> np.ndarray:
    """A round trip through the float format ``name``, with torch's casts (which go through
    float32, as a float32 model's outputs cast to 16 bits would)."""
    dtype = _FLOATS[name][0]
    return torch.from_numpy(np.ascontiguousarray(values)).to(dtype).to(torch.float64).numpy()


def _ulp(values: np.ndarray, name: str) -> np.ndarray:
    """The spacing of the float format ``name`` at each value's magnitude (the subnormal
    spacing below its smallest normal number, and at zero)."""
    _, precision, min_exponent = _FLOATS[name]
    _, exponent = np.frexp(np.abs(values))  # |v| = m 2^e with m in [0.5, 1)
    exponent = np.where(values == 0, min_exponent, np.maximum(exponent - 1, min_exponent))
    return np.ldexp(1.0, exponent - (precision - 1))


def _decimal_step(values: np.ndarray, digits: int) -> np.ndarray:
    """The step of the ``digits``-significant-digit grid at each value: 10^(e - K + 1) with
    e the value's decimal exponent; 0 at zero (a rounded value is 0 only when it was 0)."""
    magnitude = np.abs(values)
    safe = np.where(magnitude > 0, magnitude, 1.0)
    exponent = np.floor(np.log10(safe))
    # log10 can miss a power of ten by an ulp: put each value in its decade.
    exponent += safe >= 10.0 ** (exponent + 1)
    exponent -= safe < 10.0**exponent
    return np.where(magnitude > 0, 10.0 ** (exponent - digits + 1), 0.0)


def _significant_digits(value: float) -> int:
    """The fewest significant decimal digits that give ``value`` back (Python's shortest
    repr); 0 for zero."""
    mantissa = repr(abs(value)).split("e")[0].replace(".", "")
    return len(mantissa.strip("0"))


def output_precision(y: np.ndarray) -> tuple[str, float]:
    """How the outputs ``y`` were quantised, judged from the values alone, and the noise
    floor that implies as a fraction of their total variance (the sum over output columns of
    each column's variance).

    The candidates are the grids ``bfloat16``, ``float16``, ``digits:K`` (the smallest K
    from 1 to 15 that changes no value; larger K are finer) and ``float32``; ``float64``
    always fits. Of those on which every value lies, the coarsest (largest floor) is
    returned: values seldom land on a coarse grid by chance, while every value of a coarse
    grid also lies on finer ones (bfloat16 values within float16's range are exact float16
    values; small integers are exact in every format and with few digits), so checking a
    fixed order would name a finer grid than the one used. The floor of a grid with step
    q(v) at each value v is the variance of rounding errors spread evenly over each step,
    mean(q^2 / 12) over the rows, summed over the columns like the total variance it is
    divided by (q: the format's ulp at v; 10^(e - K + 1) for K digits, e the decimal
    exponent of v). Noise added to float64 values is not visible in the values
    and reads as ``float64``. Constant outputs (total variance 0) have floor ``inf``: no
    signal to resolve. Non-finite values raise InputError."""
    values = np.asarray(y, dtype=np.float64)
    if values.size == 0 or not np.isfinite(values).all():
        raise InputError("output_precision needs finite outputs (no NaN or inf), at least one")
    columns = values.reshape(len(values), -1)
    variance = float(np.sum(_column_std(columns) ** 2))

    def floor(step: np.ndarray) -> float:
        noise = float(np.mean(step.reshape(columns.shape) ** 2 / 12, axis=0).sum())
        return noise / variance if variance > 0 else math.inf

    def fits(name: str) -> bool:
        return np.array_equal(_cast(values, name), values)

    candidates = {name: _ulp(values, name) for name in ("bfloat16", "float16") if fits(name)}
    digits = max(_significant_digits(v) for v in values.ravel().tolist())
    for k in range(max(digits, 1), MAX_DIGITS + 1):
        if np.array_equal(round_digits(values, k), values):
            candidates[f"digits:{k}"] = _decimal_step(values, k)
            break
    if fits("float32"):
        candidates["float32"] = _ulp(values, "float32")
    candidates["float64"] = _ulp(values, "float64")
    floors = {name: floor(step) for name, step in candidates.items()}
    # The coarsest grid; among equal floors (constant outputs) the first of the order above.
    return max(floors.items(), key=lambda item: item[1])


def output_metrics(exact: np.ndarray, seen: np.ndarray) -> dict[str, object]:
    """The keys ``metrics.json`` gets about the outputs the students saw (the study's
    evaluate step and ``ecluster recover`` alike): the error applied to the exact outputs
    (:func:`expand_and_cluster.evaluate.applied_output_error`) and the precision read from
    the seen values (:func:`output_precision`)."""
    name, noise_floor = output_precision(seen)
    return {
        "teacher_output_error": applied_output_error(exact, seen),
        "teacher_output_precision": {"format": name, "noise_floor": noise_floor},
    }
