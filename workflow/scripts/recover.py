"""Cluster the gathered students of one teacher x expansion with one gamma/beta setting.

The teacher is a black box here: only the queries and its outputs are used. When the
students do not allow a recovery (the library raises InputError: no cluster kept, too few
healthy students...), the failure and its reason are recorded instead of a network, so the
study goes on and the tables say what happened.
"""

import _study
import xarray as xr

from expand_and_cluster.errors import InputError
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.reconstruct import RecoverySettings, reconstruct
from expand_and_cluster.store import read_students, write_json, write_recovery
from expand_and_cluster.students import TrainSettings

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake, torch_threads=True)
p = snakemake.params
students = read_students(snakemake.input.students)
x, y = _study.read_queries(snakemake.input.queries)
options = dict(p.settings)
settings = RecoverySettings(
    n_students=students.n_students,
    retrain=TrainSettings(**options.pop("retrain")),
    finetune=FinetuneSettings(**options.pop("finetune")),
    **options,
)
settings.validate()  # a bad gamma/beta is a configuration error: stop here
log.info(
    "%s %s: %d students (%d failed in training), gamma %g, beta %g deg",
    p.labels["teacher"],
    p.labels["expansion_id"],
    students.n_students,
    int(students.failed.sum()),
    settings.gamma,
    settings.beta_deg,
)
summary = {**p.labels, "n_students": students.n_students}
try:
    recovery = reconstruct(
        students.weights,
        students.biases,
        students.loss,
        students.failed,
        x,
        y,
        p.activation,
        settings,
    )
except InputError as e:
    log.warning("recovery failed: %s", e)
    summary.update(status="failed", reason=str(e), widths=None, diagnostics=None)
    # An empty store that says why, so that the output exists and readers can tell.
    xr.Dataset(attrs={"kind": "failed_recovery", "reason": str(e)}).to_zarr(
        snakemake.output.store, mode="w", zarr_format=3, consolidated=False
    )
else:
    log.info("recovered hidden widths %s in %.1f s", recovery.widths, recovery.seconds)
    summary.update(
        status="ok", reason=None, widths=recovery.widths, diagnostics=recovery.diagnostics()
    )
    write_recovery(
        snakemake.output.store, recovery, {"labels": p.labels, "n_students": students.n_students}
    )
write_json(snakemake.output.summary, summary)
