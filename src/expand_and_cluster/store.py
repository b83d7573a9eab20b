"""Zarr (v3, through xarray) formats: the only module that knows them.

- Network store (teacher or recovered): root attrs (``kind="network"``, ``activation``,
  ``widths``, provenance); groups ``layer0..layerL`` with ``weight (out, in)`` and
  ``bias (out)``; optional group ``skip`` with ``weight (out, in)``.
- Student store (one training job): root ``loss (student)``, ``failed (student)``,
  ``loss_history (student, checkpoint)``, ``history_epoch (checkpoint)``; groups ``layer{l}``
  with ``weight (student, out, in)`` and ``bias (student, out)``, chunked by student.
- Gathered student store: the same with a leading ``seed`` dimension.
- Recovery store: a network store plus groups ``clusters{l}`` per hidden layer (with an
  input mask, ``clusters0``'s ``features`` are the masked vectors that were clustered), and,
  when the first layer was clustered on an input mask, a group ``input_mask`` with
  ``keep (in)`` (bool) and attr ``method`` (added within format version 1: a store without
  the group is a recovery without a mask); a failed recovery's store holds only root attrs
  (``kind="failed_recovery"``, ``reason``).
- Query file (``.npz``, no pickle): ``x`` (samples, inputs), ``y`` (samples, outputs).

Attributes are JSON only. Nothing is ever unpickled. Every reader checks what it reads
and names the store and the problem when something is wrong.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from expand_and_cluster.errors import InputError
from expand_and_cluster.network import MLP

FORMAT_VERSION = 1
_ZARR = {"zarr_format": 3, "consolidated": False}
# Stores are read as raw numbers: CF attributes a store may carry (units "days since ...",
# scale_factor, _FillValue) must never turn weights into dates or rescale them.
_RAW = {"decode_cf": False, "mask_and_scale": False, "decode_times": False}


def provenance(**extra: Any) -> dict[str, Any]:
    """Library versions (no clock times: identical inputs give identical stores)."""
    info = {
        "expand_and_cluster": version("expand-and-cluster"),
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "numpy", "zarr", "xarray")},
    }
    return {**info, **extra}


def _open(path: str | Path, group: str | None = None) -> xr.Dataset:
    path = Path(path)
    if not path.exists():
        raise InputError(f"store {path} does not exist")
    try:
        return xr.open_zarr(path, group=group, chunks=None, **_ZARR, **_RAW)
    except Exception as e:
        where = f"group {group!r} of " if group else ""
        raise InputError(f"cannot read {where}store {path}: {type(e).__name__}: {e}") from None


def _load(
    ds: xr.Dataset, name: str, path: Path, group: str | None, allow_nan: bool = False
) -> np.ndarray:
    """Array ``name`` of ``ds``, refused with the store and the problem named when it is
    missing, cannot be decoded, or (unless ``allow_nan``: failed students, checked by the
    caller) holds NaN or inf."""
    where = f"{path}" + (f" (group {group})" if group else "")
    if name not in ds:
        raise InputError(
            f"store {where} has no array {name!r}: it is incomplete or not an Expand-and-Cluster store"
        )
    try:
        values = ds[name].values
    except Exception as e:  # a corrupted or truncated chunk fails to decode
        raise InputError(
            f"store {where}: array {name!r} cannot be read ({type(e).__name__}: {e}); the store is corrupted, re-create it"
        ) from None
    if not allow_nan and values.dtype.kind == "f" and not np.isfinite(values).all():
        raise InputError(
            f"store {where}: array {name!r} contains NaN or inf (a missing or corrupted chunk, or a diverged network)"
        )
    return values


def _write_group(ds: xr.Dataset, path: Path, group: str | None, first: bool) -> None:
    ds.to_zarr(path, group=group, mode="w" if first else "a", **_ZARR)


# -- networks -------------------------------------------------------------------------------


def write_network(path: str | Path, network: MLP, attrs: dict[str, Any] | None = None) -> None:
    path = Path(path)
    root = xr.Dataset(
        attrs={
            "kind": "network",
            "format_version": FORMAT_VERSION,
            "activation": network.activation,
            "widths": network.widths,
            "has_skip": network.skip_weight is not None,
            "n_layers": len(network.weights),
            "provenance": provenance(),
            **(attrs or {}),
        }
    )
    _write_group(root, path, None, first=True)
    for layer, (w, b) in enumerate(zip(network.weights, network.biases, strict=True)):
        _write_group(_layer_dataset(w, b), path, f"layer{layer}", first=False)
    if network.skip_weight is not None:
        skip = xr.Dataset({"weight": (("out", "in"), network.skip_weight)})
        _write_group(skip, path, "skip", first=False)


def _layer_dataset(w: np.ndarray, b: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"weight": (("out", "in"), w), "bias": (("out",), b)})


def read_network(path: str | Path) -> MLP:
    """Read and check a network store (teacher or recovered)."""
    path = Path(path)
    root = _open(path)
    attrs = root.attrs
    for key in ("activation", "n_layers"):
        if key not in attrs:
            raise InputError(
                f"{path} is not a network store (attribute {key!r} missing): write it with `ecluster teacher` or expand_and_cluster.store.write_network"
            )
    _check_attr(path, attrs, "activation", str)
    _check_attr(path, attrs, "n_layers", int)
    _check_attr(path, attrs, "has_skip", bool, required=False)
    weights, biases = [], []
    for layer in range(attrs["n_layers"]):
        group = f"layer{layer}"
        ds = _open(path, group)
        weights.append(_load(ds, "weight", path, group))
        biases.append(_load(ds, "bias", path, group))
    skip = _load(_open(path, "skip"), "weight", path, "skip") if attrs.get("has_skip") else None
    try:
        return MLP(weights, biases, attrs["activation"], skip)
    except (InputError, ValueError) as e:
        raise InputError(f"network store {path}: {e}") from None


def _check_attr(path: Path, attrs: Any, key: str, kind: type, required: bool = True) -> None:
    """Refuse an attribute of the wrong type (a string for n_layers, a list for the
    activation), naming the store and the key."""
    if key not in attrs and not required:
        return
    value = attrs[key]
    wrong_bool = kind is int and isinstance(value, bool)
    if not isinstance(value, kind) or wrong_bool or (kind is int and value < 1):
        raise InputError(
            f"store {path}: attribute {key!r} is {value!r}, expected {'a positive integer' if kind is int else kind.__name__}: the store is damaged or not written by expand_and_cluster"
        )


def network_attrs(path: str | Path) -> dict[str, Any]:
    return dict(_open(path).attrs)


# -- students -------------------------------------------------------------------------------


def write_students(
    path: str | Path,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    final_loss: np.ndarray,
    failed: np.ndarray,
    loss_history: np.ndarray,
    history_epochs: np.ndarray,
    attrs: dict[str, Any],
) -> None:
    """One training job's students: ``weights[l]`` is ``(student, out, in)``."""
    path = Path(path)
    root = xr.Dataset(
        {
            "loss": (("student",), np.asarray(final_loss, dtype=np.float64)),
            "failed": (("student",), np.asarray(failed, dtype=bool)),
            "loss_history": (("student", "checkpoint"), np.asarray(loss_history, dtype=np.float64)),
            "history_epoch": (("checkpoint",), np.asarray(history_epochs, dtype=np.int64)),
        },
        attrs={
            "kind": "students",
            "format_version": FORMAT_VERSION,
            "n_layers": len(weights),
            "provenance": provenance(),
            **attrs,
        },
    )
    # A failed student's loss and history may be NaN; keep them but mark them.
    _write_group(root, path, None, first=True)
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        ds = xr.Dataset({"weight": (("student", "out", "in"), w), "bias": (("student", "out"), b)})
        encoding = {"weight": {"chunks": (1, *w.shape[1:])}, "bias": {"chunks": (1, b.shape[1])}}
        ds.to_zarr(path, group=f"layer{layer}", mode="a", encoding=encoding, **_ZARR)


@dataclass
class StudentStore:
    """Students read back from a per-job or gathered store, flattened over seeds:
    ``weights[l]`` is ``(students, out, in)`` and ``seed[i]`` is student ``i``'s job seed."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    loss: np.ndarray
    failed: np.ndarray
    loss_history: np.ndarray
    history_epoch: np.ndarray
    seed: np.ndarray
    attrs: dict[str, Any]

    @property
    def n_students(self) -> int:
        return len(self.loss)


def read_students(path: str | Path) -> StudentStore:
    """Read and check a student store (per-job or gathered). Failed students may hold NaN;
    any other non-finite number means the store is damaged and is refused."""
    path = Path(path)
    root = _open(path)
    if root.attrs.get("kind") not in ("students", "gathered_students"):
        raise InputError(f"{path} is not a student store (kind={root.attrs.get('kind')!r})")
    gathered = root.attrs["kind"] == "gathered_students"

    def flat(a: np.ndarray) -> np.ndarray:
        # Explicit sizes: a history with no entries (every student failed before the
        # first log line) has size 0, where -1 cannot be inferred.
        return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:]) if gathered else a

    failed = flat(_load(root, "failed", path, None)).astype(bool)
    loss = flat(_load(root, "loss", path, None, allow_nan=True))
    history = flat(_load(root, "loss_history", path, None, allow_nan=True))
    seeds = root["seed"].values if gathered else np.array([root.attrs.get("seed", 0)])
    per_seed = len(loss) // len(seeds)
    weights, biases = [], []
    _check_attr(path, root.attrs, "n_layers", int)
    for layer in range(root.attrs["n_layers"]):
        group = f"layer{layer}"
        ds = _open(path, group)
        w = flat(_load(ds, "weight", path, group, allow_nan=True))
        b = flat(_load(ds, "bias", path, group, allow_nan=True))
        if len(w) != len(loss) or len(b) != len(loss):
            raise InputError(
                f"store {path} (group {group}): {len(w)} students' weights but {len(loss)} losses"
            )
        if weights and w.shape[2] != weights[-1].shape[1]:
            raise InputError(
                f"store {path} (group {group}): weight {w.shape} does not take layer {layer - 1}'s {weights[-1].shape[1]} outputs"
            )
        weights.append(w)
        biases.append(b)
    for name, arrays in (("weight", weights), ("bias", biases), ("loss", [loss])):
        for a in arrays:
            bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1) & ~failed
            if bad.any():
                raise InputError(
                    f"store {path}: {name} of healthy student(s) {np.flatnonzero(bad).tolist()} contains NaN or inf (a missing or corrupted chunk?)"
                )
    return StudentStore(
        weights,
        biases,
        loss,
        failed,
        history,
        _load(root, "history_epoch", path, None, allow_nan=True),
        np.repeat(seeds, per_seed),
        dict(root.attrs),
    )


def gather_students(
    paths: list[str | Path], seeds: list[int], out: str | Path, attrs: dict[str, Any] | None = None
) -> None:
    """Combine per-job student stores (one per seed, same architecture) into one store with
    a leading ``seed`` dimension. Every input is checked first; a missing or damaged one
    stops the gather with its name."""
    if len(paths) != len(seeds) or not paths:
        raise InputError(f"need one store per seed; got {len(paths)} stores for {len(seeds)} seeds")
    parts = [read_students(p) for p in paths]
    first = parts[0]
    for p, part in zip(paths, parts, strict=True):
        shapes = [w.shape for w in part.weights]
        if (
            shapes != [w.shape for w in first.weights]
            or part.loss_history.shape != first.loss_history.shape
        ):
            raise InputError(
                f"store {p} holds students of shapes {shapes}, unlike {paths[0]} ({[w.shape for w in first.weights]}): gather only one architecture"
            )
    root = xr.Dataset(
        {
            "loss": (("seed", "student"), np.stack([p.loss for p in parts])),
            "failed": (("seed", "student"), np.stack([p.failed for p in parts])),
            "loss_history": (
                ("seed", "student", "checkpoint"),
                np.stack([p.loss_history for p in parts]),
            ),
            "history_epoch": (("checkpoint",), first.history_epoch),
        },
        coords={"seed": np.asarray(seeds, dtype=np.int64)},
        attrs={
            **{k: v for k, v in first.attrs.items() if k != "seed"},
            "kind": "gathered_students",
            "seeds": [int(s) for s in seeds],
            **(attrs or {}),
        },
    )
    out = Path(out)
    _write_group(root, out, None, first=True)
    for layer in range(len(first.weights)):
        w = np.stack([p.weights[layer] for p in parts])
        b = np.stack([p.biases[layer] for p in parts])
        ds = xr.Dataset(
            {
                "weight": (("seed", "student", "out", "in"), w),
                "bias": (("seed", "student", "out"), b),
            }
        )
        encoding = {"weight": {"chunks": (1, *w.shape[1:])}, "bias": {"chunks": (1, *b.shape[1:])}}
        ds.to_zarr(out, group=f"layer{layer}", mode="a", encoding=encoding, **_ZARR)


# -- recoveries -----------------------------------------------------------------------------

STATUS_CODES = ("kept", "too_few_students", "unaligned")


def write_recovery(path: str | Path, recovery: Any, attrs: dict[str, Any] | None = None) -> None:
    """The recovered network plus, per hidden layer, every cluster and its fate."""
    path = Path(path)
    write_network(path, recovery.network, {"kind": "recovery", **(attrs or {})})
    for layer, rec in enumerate(recovery.layers):
        c = rec.clusters
        ds = xr.Dataset(
            {
                "features": (("neuron", "dim"), rec.features.astype(np.float32)),
                "label": (("neuron",), c.labels),
                "student": (("neuron",), rec.student_of),
                "linkage": (("merge", "linkage_column"), c.linkage),
                "big_cluster_count": (("merge",), c.big_cluster_counts),
                "n_members": (("cluster",), c.n_members),
                "n_students": (("cluster",), c.n_students),
                "median_angle_deg": (("cluster",), c.median_angle_deg),
                "status": (
                    ("cluster",),
                    np.array([STATUS_CODES.index(s) for s in c.status], dtype=np.int8),
                ),
            },
            attrs={
                "status_codes": list(STATUS_CODES),
                "cut_index": c.cut_index,
                "cut_height": c.cut_height,
                "min_students": c.min_students,
                "beta_deg": c.beta_deg,
                "recovered_width": rec.width,
            },
        )
        _write_group(ds, path, f"clusters{layer}", first=False)
    if recovery.input_mask is not None:
        mask = xr.Dataset(
            {"keep": (("in",), np.asarray(recovery.input_mask, dtype=bool))},
            attrs={"method": recovery.input_mask_method},
        )
        _write_group(mask, path, "input_mask", first=False)


def read_input_mask(path: str | Path) -> np.ndarray | None:
    """The input mask a recovery's first layer was clustered on (bool, one per input), or
    None when it compared every input (no ``input_mask`` group, or a failed recovery)."""
    path = Path(path)
    if not (path / "input_mask").is_dir():
        return None
    ds = _open(path, "input_mask")
    keep = _load(ds, "keep", path, "input_mask")
    if keep.dtype != bool or keep.ndim != 1:
        raise InputError(
            f"store {path} (group input_mask): keep is {keep.dtype} of shape {keep.shape}, "
            "expected one bool per input: the store is damaged"
        )
    return keep


def write_failed_recovery(path: str | Path, reason: str) -> None:
    """An empty recovery store that says why no network was recovered, so that the output
    exists and readers can tell."""
    root = xr.Dataset(
        attrs={"kind": "failed_recovery", "format_version": FORMAT_VERSION, "reason": reason}
    )
    _write_group(root, Path(path), None, first=True)


def read_clusters(path: str | Path, layer: int) -> xr.Dataset:
    """The cluster diagnostics of one hidden layer of a recovery store."""
    ds = _open(path, f"clusters{layer}")
    for name in ("features", "label", "linkage", "status", "median_angle_deg", "n_students"):
        _load(ds, name, Path(path), f"clusters{layer}", allow_nan=True)
    return ds.load()


def read_json(path: str | Path) -> Any:
    """The data of a JSON file written by :func:`write_json`."""
    return json.loads(Path(path).read_text())


def write_json(path: str | Path, data: Any) -> None:
    """JSON with sorted keys and a trailing newline, so equal data gives equal bytes."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


# -- queries --------------------------------------------------------------------------------


def write_queries(path: str | Path, x: np.ndarray, y: np.ndarray) -> None:
    """The query inputs ``x`` and the teacher's outputs ``y`` (both float64)."""
    with open(path, "wb") as f:
        np.savez(f, x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64))


def read_queries(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``(x, y)`` of a query file, checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"cannot read query file {path} ({e}): delete it and re-run") from None
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(
            f"query file {path} holds x {x.shape} and y {y.shape}: delete it and re-run"
        )
    return x, y
