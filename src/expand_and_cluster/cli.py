"""The ``ecluster`` command: make a synthetic teacher, or recover a network from its outputs."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

from expand_and_cluster.activations import ACTIVATIONS
from expand_and_cluster.data import parse_query_spec, sample_inputs
from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import compare_networks
from expand_and_cluster.reconstruct import RecoverySettings, recover
from expand_and_cluster.store import read_network, write_json, write_network, write_recovery
from expand_and_cluster.students import TrainSettings
from expand_and_cluster.teachers import parse_sizes, synthetic_teacher

log = logging.getLogger("ecluster")
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
    rec.add_argument("--students", type=int, default=10, help="number of students N (default 10)")
    rec.add_argument(
        "--expansion", type=float, default=4.0, help="student width / teacher width (default 4)"
    )
    rec.add_argument(
        "--student-widths",
        help="hidden widths of the students, e.g. 16 or 32,32 (overrides --expansion)",
    )
    rec.add_argument(
        "--gamma",
        type=float,
        default=0.5,
        help="fraction of students that must share a neuron (default 0.5)",
    )
    rec.add_argument(
        "--beta-deg",
        type=float,
        default=60.0,
        help="largest median angle inside a kept cluster (default 60)",
    )
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--max-epochs", type=int, default=TrainSettings.max_epochs)
    rec.add_argument("--dtype", choices=["float32", "float64"], default=TrainSettings.dtype)
    rec.add_argument("--device", default="auto", help="auto (CUDA if present), cpu or cuda")
    rec.add_argument("--out", required=True, type=Path, help="output directory (new or empty)")
    rec.set_defaults(run=_recover)
    return parser


def _teacher(args: argparse.Namespace) -> None:
    _check_new_store(args.out)
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
    else:
        if not args.expansion > 0:
            raise InputError(f"--expansion must be positive; got {args.expansion}")
        widths = [max(1, math.ceil(args.expansion * w)) for w in teacher.hidden_widths]
    if len(widths) != len(teacher.hidden_widths):
        raise InputError(
            f"--student-widths gives {len(widths)} hidden layers but the teacher has {len(teacher.hidden_widths)}"
        )
    settings = RecoverySettings(
        n_students=args.students,
        gamma=args.gamma,
        beta_deg=args.beta_deg,
        seed=args.seed,
        train=TrainSettings(max_epochs=args.max_epochs, dtype=args.dtype, device=args.device),
    )
    settings.validate()
    t0 = time.perf_counter()
    x = sample_inputs(distribution, count, teacher.n_inputs, args.seed, "queries")
    recovery, students = recover(x, teacher, teacher.activation, widths, settings)
    seconds = time.perf_counter() - t0
    x_test = sample_inputs(distribution, HELD_OUT_SAMPLES, teacher.n_inputs, args.seed, "held-out")
    metrics = compare_networks(recovery.network, teacher, x_test)
    metrics.update(
        seconds=seconds,
        student_widths=widths,
        n_students=args.students,
        student_loss=[float(v) for v in students.final_loss],
        finetune_loss=recovery.finetune.loss_after,
        pruned=[rec.pruned for rec in recovery.layers],
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_network(args.out / "network.zarr", recovery.network, {"kind": "recovered"})
    write_recovery(args.out / "diagnostics.zarr", recovery)
    write_json(args.out / "diagnostics.json", recovery.diagnostics())
    write_json(args.out / "metrics.json", metrics)
    print(
        f"recovered hidden widths {metrics['widths']} (teacher {metrics['teacher_widths']}), "
        f"RMSE {metrics['rmse']:.2e}, {seconds:.0f} s; results in {args.out}"
    )


def _check_new_store(path: Path) -> None:
    if path.exists():
        raise InputError(f"{path} already exists: choose another --out or remove it")


if __name__ == "__main__":
    sys.exit(main())
