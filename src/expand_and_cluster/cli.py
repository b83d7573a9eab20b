"""The ``ecluster`` command: make a synthetic teacher, recover a network from its outputs
(the user's own model file or input/output pairs), or export a stored network.

Every setting of a recovery is a flag generated from its declaration in the library
(:mod:`expand_and_cluster.settings`), so the flags, their defaults and the study's schema
cannot drift apart. ``ecluster recover`` writes the same files, in the same formats, as
one recovery of the study: ``recovery.zarr``, ``recovery.json``, ``metrics.json``, plus the
bare network in ``network.zarr``, ``network.safetensors`` and ``network.onnx``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from expand_and_cluster.activations import ACTIVATIONS
from expand_and_cluster.auto_widths import AutoWidthSettings, recover_auto_widths
from expand_and_cluster.data import (
    heldout_inputs,
    parse_query_spec,
    query_inputs,
    standardisation,
)
from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import (
    EvaluationSettings,
    blackbox_metrics,
    recovery_labels,
    recovery_metrics,
)
from expand_and_cluster.export import FORMATS, export
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.network import on_raw_inputs
from expand_and_cluster.outputs import (
    OUTPUT_TRANSFORMS,
    output_metrics,
    parse_output_transform,
    transform_outputs,
)
from expand_and_cluster.reconstruct import (
    RETRAIN_DEFAULTS,
    RecoverySettings,
    check_recovery_memory,
    recover,
    recovery_summary,
)
from expand_and_cluster.settings import add_arguments, from_arguments
from expand_and_cluster.sources import (
    HELD_OUT_FRACTION,
    TeacherSource,
    open_teacher,
    read_inputs,
    read_pairs,
    registry_activation,
    split_pairs,
)
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
    except KeyboardInterrupt:
        words = list(sys.argv[1:] if argv is None else argv)
        again = " ".join(shlex.quote(str(w)) for w in words)
        resume = "" if "--resume" in words or words[:1] != ["recover"] else " --resume"
        print(f"ecluster: interrupted; resume with: ecluster {again}{resume}", file=sys.stderr)
        return 130
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
        type=Path,
        help="the unknown network, queried as a black box: a network store (.zarr), PyTorch "
        "state dict (.pt, .pth), .safetensors, .onnx, Keras HDF5 (.h5, .keras) or a "
        "scikit-learn MLP saved with skops (.skops)",
    )
    rec.add_argument(
        "--pairs",
        type=Path,
        help="no model, only input/output pairs: .npz (x, y), .csv or .parquet (columns "
        f"x0.. and y0.., or --output-columns); {round(HELD_OUT_FRACTION * 100)}%% held out",
    )
    rec.add_argument("--output-columns", help="the output columns of a .csv/.parquet --pairs file")
    rec.add_argument(
        "--activation",
        help=f"the teacher's activation when its file does not state it: {', '.join(ACTIVATIONS)}",
    )
    rec.add_argument(
        "--hidden-layers",
        type=int,
        help="number of hidden layers when the teacher's file does not state it",
    )
    rec.add_argument(
        "--queries",
        default="gaussian:20000",
        help="gaussian:COUNT, uniform:COUNT or file:PATH (.npy, .npz, .csv; "
        f"{round(HELD_OUT_FRACTION * 100)}%% held out) (default gaussian:20000)",
    )
    rec.add_argument(
        "--teacher-outputs",
        default="none",
        help="degrade the outputs before the students see them, to measure what the recovery "
        "tolerates (the comparison with a readable teacher stays exact): "
        + "; ".join(f"{form} {what}" for form, what in OUTPUT_TRANSFORMS.items())
        + " (default none)",
    )
    rec.add_argument(
        "--standardise",
        action="store_true",
        help="train on standardised queries; the recovered network still takes raw inputs",
    )
    rec.add_argument(
        "--expansion", type=float, default=4.0, help="student width / teacher width (default 4)"
    )
    rec.add_argument(
        "--student-widths",
        help="hidden widths of the students, e.g. 16 or 32,32 (overrides --expansion), or "
        "auto: double them until they are 4x the recovered widths",
    )
    rec.add_argument("--out", required=True, type=Path, help="output directory (new or empty)")
    rec.add_argument(
        "--resume", action="store_true", help="continue the interrupted run of this --out"
    )
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
    add_arguments(rec, AutoWidthSettings, prefix="auto-", title="--student-widths auto")
    rec.set_defaults(run=_recover)

    exp = sub.add_parser("export", help="write a stored network as ONNX or safetensors")
    exp.add_argument("network", type=Path, help="network store (.zarr)")
    exp.add_argument("--to", required=True, choices=FORMATS, help="format")
    exp.add_argument("--out", type=Path, help="file to write (default: next to the store)")
    exp.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    exp.set_defaults(run=_export)
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
    out = _check_out(args.out)
    partial = out.parent / f".{out.name}.partial"
    _check_lock(partial / "lock", out)
    if partial.exists() and not args.resume:
        raise InputError(
            f"an incomplete run of --out {out} left {partial}: resume with --resume or "
            f"remove {partial}"
        )
    if args.resume and not partial.exists():
        raise InputError(f"--resume: no incomplete run to resume at {partial}")
    settings = recovery_settings(args)
    outputs = parse_output_transform(args.teacher_outputs).spec
    evaluation = from_arguments(EvaluationSettings, args)
    auto = from_arguments(AutoWidthSettings, args, prefix="auto-")
    source, pairs = _source(args)
    activation = source.activation or (
        registry_activation(args.activation, "--activation") if args.activation else None
    )
    if activation is None:
        raise InputError(
            f"the teacher ({source.kind}) does not state its activation: give --activation, one "
            f"of {', '.join(ACTIVATIONS)}"
        )
    widths, expansion = _student_widths(args, source)
    design, x, x_test, y, y_test = _queries(args, source, pairs, settings.seed)
    # Refuse what cannot fit before anything is sampled or written.
    first = widths or [auto.start_width] * _n_hidden(args, source)
    check_recovery_memory(design["n"], source.n_inputs, source.n_outputs, first, settings)
    with _claim(partial, out, resumed=args.resume) as claim:
        if x is None:
            x = query_inputs(design, source.n_inputs)
            x_test = heldout_inputs({**design, "n": HELD_OUT_SAMPLES}, source.n_inputs)
        if y is None:
            y = source.query(x)
            y_test = source.query(x_test)
        # Every output the user holds, degraded in one draw seeded by --seed.
        exact = y
        y, y_test = np.split(
            transform_outputs(np.concatenate([y, y_test]), outputs, settings.seed), [len(y)]
        )
        shift, scale = standardisation(x) if args.standardise else (0.0, 1.0)
        xs = (x - shift) / scale
        t0 = time.perf_counter()
        rounds = None
        if widths is None:
            result = recover_auto_widths(
                xs, y, activation, _n_hidden(args, source), settings, auto, claim
            )
            recovery, students, widths, rounds = (
                result.recovery,
                result.students,
                result.student_widths,
                result.rounds,
            )
        else:
            recovery, students = recover(
                xs, y, activation, widths, settings, claim / "students.pt", source.hidden_widths
            )
        seconds = time.perf_counter() - t0
        if source.hidden_widths is None:
            # The teacher's widths are unknown: the expansion is measured against the
            # recovered widths, the best estimate of them.
            expansion = min(s / max(r, 1) for s, r in zip(widths, recovery.widths, strict=True))
            source.notes.append(
                f"the teacher's widths are unknown: expansion {expansion:g} is the students' "
                "widths over the recovered ones"
            )
        elif expansion is None:
            expansion = min(s / t for s, t in zip(widths, source.hidden_widths, strict=True))
        if args.standardise:
            recovery.network = on_raw_inputs(recovery.network, shift, scale)
        labels = recovery_labels(
            str(args.teacher or args.pairs),
            source.kind,
            activation,
            [source.n_inputs, *(source.hidden_widths or []), source.n_outputs],
            expansion,
            settings.gamma,
            settings.beta_deg,
            teacher_outputs=outputs,
        )
        summary = recovery_summary(labels, settings.n_students, recovery, None)
        origin = {"kind": source.kind, "notes": source.notes}
        if source.network is not None:
            metrics = recovery_metrics(
                summary,
                source.network,
                recovery.network,
                students.final_loss,
                students.failed,
                widths,
                x,
                y,
                x_test,
                evaluation,
                origin,
                rounds,
                # Students trained on standardised inputs live in another input space.
                students=None if args.standardise else students.students.numpy(),
                input_mask=recovery.input_mask,
            )
        else:
            metrics = blackbox_metrics(
                summary,
                recovery.network,
                students.final_loss,
                students.failed,
                widths,
                x,
                y,
                x_test,
                y_test,
                evaluation,
                source.hidden_widths,
                origin,
                rounds,
                input_mask=recovery.input_mask,
            )
        metrics.update(output_metrics(exact, y))
        for note in source.notes:
            log.info("note: %s", note)
        write_network(claim / "network.zarr", recovery.network, {"kind": "recovered"})
        write_recovery(claim / "recovery.zarr", recovery, {"labels": labels})
        write_json(claim / "recovery.json", summary)
        write_json(claim / "metrics.json", metrics)
        export(recovery.network, "safetensors", claim / "network.safetensors")
        export(recovery.network, "onnx", claim / "network.onnx")
        _publish(claim, out)
    rmse = "n/a" if metrics["rmse"] is None else f"{metrics['rmse']:.2e}"
    print(
        f"recovered hidden widths {metrics['widths']} (teacher "
        f"{metrics['teacher_widths'] or 'unknown'}): {metrics['status']}, RMSE {rmse}, "
        f"{seconds:.0f} s; {_flag_line(summary)}; results in {out}"
    )


def _flag_line(summary: dict) -> str:
    """How many recovered neurons raise a confidence flag, and which flags."""
    flags = (summary.get("diagnostics") or {}).get("flags")
    if not flags:
        return "no neuron confidence"
    raised = ", ".join(f"{k} {v}" for k, v in flags.items() if k not in ("any", "neurons") and v)
    detail = f" ({raised}; per neuron in metrics.json, neuron_confidence)" if raised else ""
    return f"{flags['any']} of {flags['neurons']} recovered neurons flagged{detail}"


def _check_out(out: Path) -> Path:
    """--out must be creatable and writable, and new or empty: checked before any work."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a directory: choose another --out")
    if out.is_dir() and any(out.iterdir()):
        raise InputError(
            f"output directory {out} exists and is not empty: choose a new --out or empty it"
        )
    parent = out.absolute().parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError(f"--out {out} lies under {ancestor}, which is a file")
            if str(ancestor).startswith(("/proc", "/sys")) or not os.access(ancestor, os.W_OK):
                raise InputError(f"--out {out}: cannot write in {ancestor}; choose another --out")
            break
    return out


@contextlib.contextmanager
def _claim(partial: Path, out: Path, resumed: bool):
    """The hidden folder a run writes into, locked by a file naming its pid: a second run
    with the same --out is refused; a failed fresh run leaves nothing, an interrupted one
    leaves the folder (with its checkpoints) for --resume."""
    fresh = not partial.exists()
    try:
        partial.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {partial}: {e.strerror}") from None
    lock = partial / "lock"
    # The lock appears with its pid already in it (written aside, then hard-linked, which
    # fails when the lock exists): a second run never reads a lock that is still empty.
    mine = partial / f"lock.{os.getpid()}"
    mine.write_text(str(os.getpid()))
    try:
        try:
            os.link(mine, lock)
        except FileExistsError:
            _check_lock(lock, out)
            lock.unlink(missing_ok=True)  # left by a killed run
            os.link(mine, lock)
    except FileExistsError:
        raise InputError(f"--out {out} was claimed by another run a moment ago") from None
    finally:
        mine.unlink()
    if resumed:
        log.info("resuming the incomplete run in %s", partial)
    try:
        yield partial
    except InputError:
        if fresh:
            shutil.rmtree(partial, ignore_errors=True)
        else:
            lock.unlink(missing_ok=True)
        raise
    except BaseException:
        lock.unlink(missing_ok=True)
        raise


def _check_lock(lock: Path, out: Path) -> None:
    """Refuse when another live process holds ``lock`` (its pid is the file's content)."""
    try:
        holder = lock.read_text().strip()
    except OSError:
        return
    if holder.isdigit() and _alive(int(holder)):
        raise InputError(
            f"--out {out} is being written by another run (pid {holder}, lock {lock}): wait "
            "for it or choose another --out"
        )


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _publish(partial: Path, out: Path) -> None:
    """Drop checkpoints and lock, then rename the folder into place in one step."""
    for checkpoint in partial.glob("students*.pt"):
        checkpoint.unlink()
    (partial / "lock").unlink(missing_ok=True)
    if out.is_dir():
        out.rmdir()  # empty, checked at the start
    partial.rename(out)


def _source(args: argparse.Namespace) -> tuple[TeacherSource, tuple | None]:
    if (args.teacher is None) == (args.pairs is None):
        raise InputError("give exactly one of --teacher MODEL_FILE and --pairs FILE")
    if args.teacher is not None:
        if args.output_columns:
            raise InputError("--output-columns applies to --pairs only")
        return open_teacher(args.teacher, args.activation), None
    columns = args.output_columns.split(",") if args.output_columns else None
    x, y = read_pairs(args.pairs, columns)
    source = TeacherSource(_no_query, x.shape[1], y.shape[1], "pairs", None, None, None)
    source.notes.append(
        f"input/output pairs only: {round(HELD_OUT_FRACTION * 100)}% of the rows held out to "
        "measure the fit"
    )
    return source, (x, y)


def _no_query(x):
    raise InputError("a pairs file cannot be queried on new inputs")


def _n_hidden(args: argparse.Namespace, source: TeacherSource) -> int:
    if args.hidden_layers is not None:
        if args.hidden_layers < 1:
            raise InputError(f"--hidden-layers must be at least 1; got {args.hidden_layers}")
        if source.hidden_widths and args.hidden_layers != len(source.hidden_widths):
            raise InputError(
                f"--hidden-layers {args.hidden_layers} but the teacher has "
                f"{len(source.hidden_widths)} hidden layers"
            )
        return args.hidden_layers
    if source.hidden_widths:
        return len(source.hidden_widths)
    raise InputError(
        f"the teacher ({source.kind}) does not state its number of hidden layers: give "
        "--hidden-layers K"
    )


def _student_widths(args: argparse.Namespace, source: TeacherSource):
    """(widths, expansion), or (None, None) for --student-widths auto."""
    if args.student_widths == "auto":
        _n_hidden(args, source)
        return None, None
    if args.student_widths:
        widths = parse_sizes(f"1,{args.student_widths},1")[1:-1]
        known = source.hidden_widths
        if known and len(widths) != len(known):
            raise InputError(
                f"--student-widths gives {len(widths)} hidden layers but the teacher has "
                f"{len(known)}"
            )
        if args.hidden_layers is not None and args.hidden_layers != len(widths):
            raise InputError(
                f"--student-widths gives {len(widths)} hidden layers but --hidden-layers is "
                f"{args.hidden_layers}"
            )
        expansion = None if not known else min(s / t for s, t in zip(widths, known, strict=True))
        return widths, expansion
    if source.hidden_widths:
        return student_widths(source.hidden_widths, args.expansion), args.expansion
    raise InputError(
        f"the teacher's widths are unknown ({source.kind}): give --student-widths W[,W...] "
        "or --student-widths auto with --hidden-layers K"
    )


def _queries(args: argparse.Namespace, source: TeacherSource, pairs, seed: int):
    """(design, x, x_test, y, y_test): arrays that are known now; the rest (sampled
    queries, teacher outputs) is None until the memory check has passed."""
    if pairs is not None:
        x, y, x_test, y_test = split_pairs(*pairs, seed)
        return {"distribution": "pairs", "n": len(x), "seed": seed}, x, x_test, y, y_test
    if args.queries.startswith("file:"):
        rows = read_inputs(args.queries[5:])
        if rows.shape[1] != source.n_inputs:
            raise InputError(
                f"{args.queries[5:]} has {rows.shape[1]} columns but the teacher takes "
                f"{source.n_inputs} inputs"
            )
        x, _, x_test, _ = split_pairs(rows, rows, seed)
        return {"distribution": "file", "n": len(x), "seed": seed}, x, x_test, None, None
    distribution, count = parse_query_spec(args.queries)
    return {"distribution": distribution, "n": count, "seed": seed}, None, None, None, None


def _export(args: argparse.Namespace) -> None:
    network = read_network(args.network)
    target = args.out or args.network.with_suffix(f".{args.to}")
    if target.exists():
        raise InputError(f"{target} already exists: choose another --out or remove it")
    export(network, args.to, target, args.dtype)
    print(f"{args.network} written as {args.to} ({args.dtype}) to {target}")


if __name__ == "__main__":
    sys.exit(main())
