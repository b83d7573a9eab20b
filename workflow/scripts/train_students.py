"""Train one job's students (one teacher x expansion x seed) and write their store.

Training checkpoints to ``checkpoint``; a job killed mid-run resumes from there when the
study is re-run (``snakemake --rerun-incomplete``). The checkpoint goes once the store is
written.
"""

import logging
from pathlib import Path

import _study

from expand_and_cluster.reconstruct import expand
from expand_and_cluster.store import read_queries, write_students
from expand_and_cluster.students import TrainSettings

log = logging.getLogger("study.train_students")


def main(
    queries: str,
    activation: str,
    widths: list[int],
    n_students: int,
    settings: dict,
    seed: int,
    attrs: dict,
    checkpoint: str,
    out: str,
    label: str,
) -> None:
    x, y = read_queries(queries)
    result = expand(
        x, y, activation, widths, n_students, TrainSettings(**settings), seed, checkpoint, label
    )
    weights, biases = result.students.numpy()
    write_students(
        out,
        weights,
        biases,
        result.final_loss,
        result.failed,
        result.loss_history,
        result.history_epochs,
        {**attrs, "epochs": result.epochs, "stop_reason": result.stop_reason},
    )
    log.info("%s: %.1f s of training, written to %s", label, result.seconds, out)
    Path(checkpoint).unlink(missing_ok=True)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake, torch_threads=True)
    p, w = snakemake.params, snakemake.wildcards
    main(
        snakemake.input.queries,
        p.activation,
        p.widths,
        p.n_students,
        p.settings,
        int(w.seed),
        p.attrs,
        p.checkpoint,
        snakemake.output[0],
        label=p.label,
    )
