"""Compare one recovery with its teacher on fresh held-out inputs; write its metrics JSON.

The metrics hold no clock times, so the same configuration gives the same bytes.
"""

import _study
import numpy as np

from expand_and_cluster.evaluate import compare_networks
from expand_and_cluster.store import read_json, read_network, read_students, write_json

snakemake = globals()["snakemake"]  # injected by Snakemake


def status(comparison, angles, exact_angle_deg):
    """exact: the teacher's widths and every teacher neuron within exact_angle_deg of its
    match; approximate: the teacher's widths and every teacher neuron matched (within the
    library's matching angle) but not that closely; inexact: wrong widths or unmatched
    neurons."""
    complete = comparison["exact_widths"] and not any(comparison["missing"])
    if complete and not any(comparison["excess"]):
        return "exact" if max(angles, default=0.0) <= exact_angle_deg else "approximate"
    return "inexact"


log = _study.start(snakemake)
p = snakemake.params
summary = read_json(snakemake.input.summary)
teacher = read_network(snakemake.input.teacher)
students = read_students(snakemake.input.students)
x, y = _study.read_queries(snakemake.input.queries)
x_test = _study.heldout_inputs(p.heldout, teacher.n_inputs)
losses = [None if np.isnan(v) else float(v) for v in students.loss]
metrics = {
    **p.labels,
    "teacher_widths": teacher.hidden_widths,
    "student_widths": p.student_widths,
    "n_students": students.n_students,
    "students_failed": int(students.failed.sum()),
    "student_loss": losses,
    "student_loss_median": float(np.nanmedian(students.loss))
    if any(v is not None for v in losses)
    else None,
    "n_queries": len(x),
    "n_test": len(x_test),
    "exact_angle_deg": p.settings["exact_angle_deg"],
    "recovery_status": summary["status"],
    "reason": summary["reason"],
    # Failed students excluded from clustering, and other warnings of the recovery.
    "warnings": (summary["diagnostics"] or {}).get("warnings", []),
}
if summary["status"] == "ok":
    network = read_network(snakemake.input.store)
    comparison = compare_networks(network, teacher, x_test)
    angles = [a for layer in comparison["angles_deg"] for a in layer if a is not None]
    metrics.update(
        comparison,
        recovered_loss=float(np.mean((network(x) - y) ** 2)),
        teacher_output_std=float(teacher(x_test).std()),
        angle_median_deg=float(np.median(angles)) if angles else None,
        angle_max_deg=float(np.max(angles)) if angles else None,
        status=status(comparison, angles, p.settings["exact_angle_deg"]),
    )
    log.info(
        "widths %s (teacher %s), missing %s, excess %s, RMSE %.3e: %s",
        comparison["widths"],
        comparison["teacher_widths"],
        comparison["missing"],
        comparison["excess"],
        comparison["rmse"],
        metrics["status"],
    )
else:
    metrics.update(
        widths=None,
        angles_deg=None,
        missing=None,
        excess=None,
        rmse=None,
        exact_widths=False,
        recovered_loss=None,
        teacher_output_std=float(teacher(x_test).std()),
        angle_median_deg=None,
        angle_max_deg=None,
        status="failed",
    )
    log.info("recovery failed: %s", summary["reason"])
write_json(snakemake.output[0], metrics)
