"""The ``ecluster`` command: make a synthetic teacher, or recover a network from its outputs.

Every setting of a recovery is a flag generated from its declaration in the library
(:mod:`expand_and_cluster.settings`), so the flags, their defaults and the study's schema
cannot drift apart. ``ecluster recover`` writes the same files, in the same formats, as
one recovery of the study: ``recovery.zarr``, ``recovery.json``, ``metrics.json``, plus the
bare network in ``network.zarr``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from expand_and_cluster.activations import ACTIVATIONS
from expand_and_cluster.data import heldout_inputs, parse_query_spec, query_inputs
from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import EvaluationSettings, recovery_labels, recovery_metrics
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.reconstruct import (
    RETRAIN_DEFAULTS,
    RecoverySettings,
    recover,
    recovery_summary,
)
from expand_and_cluster.settings import add_arguments, from_arguments
from expand_and_cluster.store import (
    read_network,
    write_json,
    write_network,
    write_recovery,
)
from expand_and_cluster.students import TrainSettings, student_widths
from expand_and_cluster.teachers import parse_sizes, synthetic_teacher

log = logging.getLogger("ecluster")
# As many fresh inputs as the study's default queries.n_test.
HELD_OUT_SAMPLES = 10_000


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    try:
        args.run(args)
    except InputError as e:
        print(f"ecluster: error: {e}", file=sys.stderr)
        return 2
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecluster", description=__doc__)
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    teacher = sub.add_parser("teacher", help="write a synthetic teacher network")
    teacher.add_argument("--sizes", required=True, help="inputs,hidden...,outputs, e.g. 6,5,1")
    teacher.add_argument("--activation", required=True, help=f"one of {', '.join(ACTIVATIONS)}")
    teacher.add_argument("--seed", type=int, default=0)
    teacher.add_argument(
        "--inputs", default="gaussian", help="input distribution the neurons are calibrated on"
    )
    teacher.add_argument("--out", required=True, type=Path, help="network store to write (.zarr)")
    teacher.set_defaults(run=_teacher)

    rec = sub.add_parser("recover", help="recover a network from its outputs on queries")
    rec.add_argument(
        "--teacher",
        required=True,
        type=Path,
        help="network store of the unknown network, queried as a black box",
    )
    rec.add_argument(
        "--queries", default="gaussian:20000", help="DISTRIBUTION:COUNT (default gaussian:20000)"
    )
    rec.add_argument(
        "--expansion", type=float, default=4.0, help="student width / teacher width (default 4)"
    )
    rec.add_argument(
        "--student-widths",
        help="hidden widths of the students, e.g. 16 or 32,32 (overrides --expansion)",
    )
    rec.add_argument("--out", required=True, type=Path, help="output directory (new or empty)")
    add_arguments(rec, RecoverySettings, title="recovery")
    add_arguments(rec, TrainSettings, title="student training")
    add_arguments(
        rec,
        TrainSettings,
        prefix="retrain-",
        title="retraining between hidden layers (deep networks)",
        defaults=RETRAIN_DEFAULTS,
    )
    add_arguments(rec, FinetuneSettings, prefix="finetune-", title="fine-tuning")
    add_arguments(rec, EvaluationSettings, title="evaluation against the teacher")
    rec.set_defaults(run=_recover)
    return parser


def recovery_settings(args: argparse.Namespace) -> RecoverySettings:
    """The :class:`RecoverySettings` that ``ecluster recover``'s flags describe."""
    return from_arguments(
        RecoverySettings,
        args,
        train=from_arguments(TrainSettings, args),
        retrain=from_arguments(TrainSettings, args, prefix="retrain-"),
        finetune=from_arguments(FinetuneSettings, args, prefix="finetune-"),
    )


def _teacher(args: argparse.Namespace) -> None:
    if args.out.exists():
        raise InputError(f"{args.out} already exists: choose another --out or remove it")
    net = synthetic_teacher(args.sizes, args.activation, args.seed, args.inputs)
    write_network(args.out, net, {"seed": args.seed, "inputs": args.inputs, "kind": "teacher"})
    print(f"teacher {net.widths} ({net.activation}) written to {args.out}")


def _recover(args: argparse.Namespace) -> None:
    if args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        raise InputError(
            f"output directory {args.out} exists and is not empty: choose a new --out or empty it"
        )
    teacher = read_network(args.teacher)
    distribution, count = parse_query_spec(args.queries)
    if args.student_widths:
        widths = parse_sizes(f"1,{args.student_widths},1")[1:-1]
        expansion = min(s / t for s, t in zip(widths, teacher.hidden_widths, strict=False))
    else:
        widths, expansion = student_widths(teacher.hidden_widths, args.expansion), args.expansion
    if len(widths) != len(teacher.hidden_widths):
        raise InputError(
            f"--student-widths gives {len(widths)} hidden layers but the teacher has {len(teacher.hidden_widths)}"
        )
    settings = recovery_settings(args)
    evaluation = from_arguments(EvaluationSettings, args)
    design = {"distribution": distribution, "n": count, "seed": settings.seed}
    t0 = time.perf_counter()
    x = query_inputs(design, teacher.n_inputs)
    recovery, students = recover(x, teacher, teacher.activation, widths, settings)
    seconds = time.perf_counter() - t0
    labels = recovery_labels(
        str(args.teacher),
        "cli",
        teacher.activation,
        teacher.widths,
        expansion,
        settings.gamma,
        settings.beta_deg,
    )
    summary = recovery_summary(labels, settings.n_students, recovery, None)
    x_test = heldout_inputs({**design, "n": HELD_OUT_SAMPLES}, teacher.n_inputs)
    metrics = recovery_metrics(
        summary,
        teacher,
        recovery.network,
        students.final_loss,
        students.failed,
        widths,
        x,
        teacher(x),
        x_test,
        evaluation,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_network(args.out / "network.zarr", recovery.network, {"kind": "recovered"})
    write_recovery(args.out / "recovery.zarr", recovery, {"labels": labels})
    write_json(args.out / "recovery.json", summary)
    write_json(args.out / "metrics.json", metrics)
    print(
        f"recovered hidden widths {metrics['widths']} (teacher {metrics['teacher_widths']}): "
        f"{metrics['status']}, RMSE {metrics['rmse']:.2e}, {seconds:.0f} s; results in {args.out}"
    )


if __name__ == "__main__":
    sys.exit(main())
