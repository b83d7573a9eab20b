"""Each setting declared once: a dataclass field with its default, its help and its bounds.

The settings dataclasses (``TrainSettings``, ``FinetuneSettings``, ``RecoverySettings``)
declare every field with :func:`setting`. From that one declaration come

- the check of every value (:func:`check_settings`, called by each class's
  ``__post_init__``): type, finite, within bounds, one of the choices;
- the ``ecluster`` flags (:func:`add_arguments`, :func:`from_arguments`);
- the study schema's entries (:func:`json_schema`): ``config/schema.yaml`` holds the same
  text, and a test checks that the two agree (the file stays readable on its own).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any

from expand_and_cluster.errors import InputError

_NUMBER_TYPES = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}


def setting(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    exclusive_maximum: float | None = None,
    choices: Sequence[Any] | None = None,
    pattern: str | None = None,
    flag: str | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with its help text and the bounds every value must respect.
    ``flag`` renames the command-line flag (default: ``--field-name``)."""
    metadata = {
        "help": help,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "exclusive_maximum": exclusive_maximum,
        "choices": None if choices is None else tuple(choices),
        "pattern": pattern,
        "flag": flag,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def scalar_fields(cls: type) -> list[dataclasses.Field]:
    """The fields declared with :func:`setting` that hold one value (not a nested class)."""
    return [
        f
        for f in dataclasses.fields(cls)
        if "help" in f.metadata and _base_type(f) in _NUMBER_TYPES
    ]


def _base_type(f: dataclasses.Field) -> str:
    """``"int | None"`` -> ``"int"`` (annotations are strings here)."""
    return str(f.type).replace(" | None", "").strip()


def _nullable(f: dataclasses.Field) -> bool:
    return "None" in str(f.type)


def check_settings(obj: Any, where: str = "") -> None:
    """Refuse any field of ``obj`` that is of the wrong type, not finite, out of bounds or
    not one of its choices, with one line naming ``where + field`` and what is allowed."""
    for f in scalar_fields(type(obj)):
        _check_value(f, getattr(obj, f.name), f"{where}{f.name}")


def _check_value(f: dataclasses.Field, value: Any, name: str) -> None:
    meta, kind = f.metadata, _base_type(f)
    if value is None:
        if _nullable(f):
            return
        raise InputError(f"{name} must be set; got None")
    if kind == "str":
        if not isinstance(value, str):
            raise InputError(f"{name} must be a string; got {value!r}")
    elif kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"{name} must be true or false; got {value!r}")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{name} must be an integer; got {value!r}")
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"{name} must be a number; got {value!r}")
        if not math.isfinite(value):
            raise InputError(f"{name} must be a finite number; got {value!r}")
    if meta["choices"] is not None and value not in meta["choices"]:
        allowed = ", ".join(map(str, meta["choices"]))
        raise InputError(f"{name} must be one of {allowed}; got {value!r}")
    if meta["pattern"] is not None and not re.fullmatch(meta["pattern"], value):
        raise InputError(f"{name}: {value!r} is not allowed ({f.metadata['help']})")
    bounds = (
        ("minimum", lambda v, b: v >= b, ">="),
        ("maximum", lambda v, b: v <= b, "<="),
        ("exclusive_minimum", lambda v, b: v > b, ">"),
        ("exclusive_maximum", lambda v, b: v < b, "<"),
    )
    for key, ok, sign in bounds:
        bound = meta[key]
        if bound is not None and not ok(value, bound):
            raise InputError(f"{name} must be {sign} {bound:g}; got {value!r}")


def json_schema(cls: type, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON-schema object of ``cls``'s scalar settings, as in ``config/schema.yaml``.
    ``defaults`` overrides field defaults (e.g. the retraining's shorter budget)."""
    instance = cls(**(defaults or {}))
    properties = {}
    for f in scalar_fields(cls):
        meta = f.metadata
        entry: dict[str, Any] = {"description": meta["help"]}
        if meta["choices"] is not None:
            entry["enum"] = list(meta["choices"])
        else:
            kind = _NUMBER_TYPES[_base_type(f)]
            entry["type"] = [kind, "null"] if _nullable(f) else kind
        for key, name in (
            ("minimum", "minimum"),
            ("maximum", "maximum"),
            ("exclusive_minimum", "exclusiveMinimum"),
            ("exclusive_maximum", "exclusiveMaximum"),
            ("pattern", "pattern"),
        ):
            if meta[key] is not None:
                entry[name] = meta[key]
        entry["default"] = getattr(instance, f.name)
        properties[f.name] = entry
    return {"type": "object", "additionalProperties": False, "properties": properties}


# -- the command line ------------------------------------------------------------------------


def _flag(f: dataclasses.Field, prefix: str) -> str:
    return f.metadata["flag"] or f"--{prefix}{f.name.replace('_', '-')}"


def _dest(f: dataclasses.Field, prefix: str) -> str:
    return _flag(f, prefix)[2:].replace("-", "_")


def _parse_optional_int(text: str) -> int | None:
    if text.lower() in ("none", "full"):
        return None
    return _parse_int(text)


def _parse_int(text: str) -> int:
    # int() accepts "１２" and "1_000"; a plain ASCII number is what a user means.
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}")
    return int(text)


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    prefix: str = "",
    title: str | None = None,
    defaults: dict[str, Any] | None = None,
    skip: Sequence[str] = (),
) -> None:
    """One ``--prefix-field-name`` flag per scalar setting of ``cls``, with its help and
    default (``defaults`` overrides the class's, as in :func:`json_schema`)."""
    instance = cls(**(defaults or {}))
    group = parser.add_argument_group(title) if title else parser
    for f in scalar_fields(cls):
        if f.name in skip:
            continue
        kind = _base_type(f)
        default = getattr(instance, f.name)
        options: dict[str, Any] = {"default": default, "dest": _dest(f, prefix)}
        if f.metadata["choices"] is not None:
            options["choices"] = f.metadata["choices"]
        elif kind == "int":
            options["type"] = _parse_optional_int if _nullable(f) else _parse_int
        elif kind == "float":
            options["type"] = _parse_float
        shown = "full batch" if default is None else default
        group.add_argument(
            _flag(f, prefix), help=f"{f.metadata['help']} (default: {shown})", **options
        )


def from_arguments(cls: type, args: argparse.Namespace, prefix: str = "", **more: Any) -> Any:
    """The ``cls`` instance that the flags of :func:`add_arguments` describe (checked)."""
    values = {
        f.name: getattr(args, _dest(f, prefix))
        for f in scalar_fields(cls)
        if hasattr(args, _dest(f, prefix))
    }
    return cls(**values, **more)
