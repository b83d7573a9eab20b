"""Compare one recovery with its teacher on fresh held-out inputs; write its metrics JSON."""

import logging

import _study

from expand_and_cluster.data import heldout_inputs
from expand_and_cluster.evaluate import EvaluationSettings, recovery_metrics
from expand_and_cluster.outputs import output_metrics
from expand_and_cluster.store import (
    network_attrs,
    read_input_mask,
    read_json,
    read_network,
    read_queries,
    read_students,
    write_json,
)

log = logging.getLogger("study.evaluate")


def main(
    summary_file: str,
    store: str,
    teacher_store: str,
    queries: str,
    students_store: str,
    heldout: dict,
    student_widths: list[int],
    settings: dict,
    out: str,
) -> None:
    summary = read_json(summary_file)
    teacher = read_network(teacher_store)
    students = read_students(students_store)
    x, y = read_queries(queries)
    network = read_network(store) if summary["status"] == "ok" else None
    metrics = recovery_metrics(
        summary,
        teacher,
        network,
        students.loss,
        students.failed,
        student_widths,
        x,
        y,
        heldout_inputs(heldout, teacher.n_inputs),
        EvaluationSettings(**settings),
        students=(students.weights, students.biases),
        teacher_test_accuracy=network_attrs(teacher_store).get("test_accuracy"),
        input_mask=None if network is None else read_input_mask(store),
    )
    # What the students saw (the queries file) against the exact teacher's outputs.
    metrics.update(output_metrics(teacher(x), y))
    if network is None:
        log.info("recovery failed: %s", summary["reason"])
    else:
        log.info(
            "widths %s (teacher %s), missing %s, excess %s, RMSE %.3e: %s",
            metrics["widths"],
            metrics["teacher_widths"],
            metrics["missing"],
            metrics["excess"],
            metrics["rmse"],
            metrics["status"],
        )
    write_json(out, metrics)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    i, p = snakemake.input, snakemake.params
    main(
        i.summary,
        i.store,
        i.teacher,
        i.queries,
        i.students,
        p.heldout,
        p.student_widths,
        p.settings,
        snakemake.output[0],
    )
