"""Cluster the gathered students of one teacher x expansion with one gamma/beta setting.

The teacher is a black box here: only the queries and its outputs are used. When the
students do not allow a recovery (the library raises InputError: no cluster kept, too few
healthy students...), the failure and its reason are recorded instead of a network, so the
study goes on and the tables say what happened.
"""

import logging

import _study

from expand_and_cluster.errors import InputError
from expand_and_cluster.reconstruct import RecoverySettings, reconstruct, recovery_summary
from expand_and_cluster.store import (
    read_queries,
    read_students,
    write_failed_recovery,
    write_json,
    write_recovery,
)

log = logging.getLogger("study.recover")


def main(
    students_store: str, queries: str, activation: str, settings: dict, labels: dict, out: dict
) -> None:
    students = read_students(students_store)
    x, y = read_queries(queries)
    # from_dict: the retraining's own defaults fill what the config leaves out.
    recovery_settings = RecoverySettings.from_dict({"n_students": students.n_students, **settings})
    log.info(
        "%s %s: %d students (%d failed in training), gamma %g, beta %g deg",
        labels["teacher"],
        labels["expansion_id"],
        students.n_students,
        int(students.failed.sum()),
        recovery_settings.gamma,
        recovery_settings.beta_deg,
    )
    try:
        recovery = reconstruct(
            students.weights,
            students.biases,
            students.loss,
            students.failed,
            x,
            y,
            activation,
            recovery_settings,
        )
    except InputError as e:
        log.warning("recovery failed: %s", e)
        write_failed_recovery(out["store"], str(e))
        summary = recovery_summary(labels, students.n_students, None, str(e))
    else:
        log.info("recovered hidden widths %s in %.1f s", recovery.widths, recovery.seconds)
        write_recovery(
            out["store"], recovery, {"labels": labels, "n_students": students.n_students}
        )
        summary = recovery_summary(labels, students.n_students, recovery, None)
    write_json(out["summary"], summary)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake, torch_threads=True)
    p, o = snakemake.params, snakemake.output
    main(
        snakemake.input.students,
        snakemake.input.queries,
        p.activation,
        p.settings,
        p.labels,
        {"store": o.store, "summary": o.summary},
    )
