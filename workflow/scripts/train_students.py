"""Train one job's students (one teacher x expansion x seed) and write their store.

Training checkpoints to ``params.checkpoint``; a job killed mid-run resumes from there when
the study is re-run (``snakemake --rerun-incomplete``). The checkpoint goes once the store
is written.
"""

from pathlib import Path

import _study

from expand_and_cluster.store import write_students
from expand_and_cluster.students import TrainSettings, init_students, train_students

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake, torch_threads=True)
p = snakemake.params
x, y = _study.read_queries(snakemake.input.queries)
settings = TrainSettings(**p.settings)
seed = int(snakemake.wildcards.seed)
widths = [x.shape[1], *p.widths, y.shape[1]]
label = f"{snakemake.wildcards.teacher} {snakemake.wildcards.expansion} seed {seed}"
log.info("%s: %d students of widths %s on %d queries", label, p.n_students, widths, len(x))
students = init_students(widths, p.n_students, p.activation, seed, settings.torch_dtype)
result = train_students(students, x, y, settings, seed, checkpoint=p.checkpoint, label=label)
weights, biases = result.students.numpy()
attrs = {**p.attrs, "epochs": result.epochs, "stop_reason": result.stop_reason}
write_students(
    snakemake.output[0],
    weights,
    biases,
    result.final_loss,
    result.failed,
    result.loss_history,
    result.history_epochs,
    attrs,
)
log.info("%s: %.1f s of training, written to %s", label, result.seconds, snakemake.output[0])
Path(p.checkpoint).unlink(missing_ok=True)
