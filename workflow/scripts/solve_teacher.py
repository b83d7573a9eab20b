"""Synthetic teachers' whole pipelines in one process, one teacher after another (config
keys jobs.one_per_teacher and jobs.teachers_per_job): per teacher the teacher, its queries,
and per expansion the training jobs, the gathered students, and per gamma/beta the
recovery and its evaluation. Each step is the per-step rule's own ``main``, writing the
same files; the step's wall time and the process's peak memory so far go to the per-step
rule's benchmark file, in Snakemake's format, so that the timings table reads either mode
alike.
"""

import contextlib
import logging
import resource
import time
from collections.abc import Iterator
from pathlib import Path

import _study
import evaluate
import gather_students
import queries
import recover
import synthetic_teacher
import train_students

log = logging.getLogger("study.solve_teacher")


@contextlib.contextmanager
def benchmarked(path: str) -> Iterator[None]:
    """Time the step inside and write its benchmark file (seconds, peak RSS in MB)."""
    t0 = time.perf_counter()
    yield
    seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    clock = time.strftime("%H:%M:%S", time.gmtime(seconds))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(f"s\th:m:s\tmax_rss\n{seconds:.4f}\t{clock}\t{peak_mb:.2f}\n")


def main(plans: list[dict], n_students: int, train: dict, evaluation: dict) -> None:
    for plan in plans:
        solve(plan, n_students, train, evaluation)


def solve(plan: dict, n_students: int, train: dict, evaluation: dict) -> None:
    """One teacher's pipeline (:func:`teacher_job` in workflow/rules/common.smk)."""
    synthetic_teacher.main(plan["spec"], plan["teacher"])
    queries.main(plan["teacher"], plan["design"], plan["outputs"], plan["queries"])
    for expansion in plan["expansions"]:
        for job in expansion["training"]:
            with benchmarked(job["benchmark"]):
                train_students.main(
                    plan["queries"],
                    plan["activation"],
                    expansion["widths"],
                    n_students,
                    train,
                    job["seed"],
                    job["attrs"],
                    job["checkpoint"],
                    job["out"],
                    job["label"],
                )
        seeds = [job["seed"] for job in expansion["training"]]
        stores = [job["out"] for job in expansion["training"]]
        gather_students.main(stores, seeds, expansion["students"], expansion["gather_attrs"])
        for rec in expansion["recoveries"]:
            with benchmarked(rec["benchmark"]):
                recover.main(
                    expansion["students"],
                    plan["queries"],
                    plan["activation"],
                    rec["settings"],
                    rec["labels"],
                    {"store": rec["store"], "summary": rec["summary"]},
                )
            evaluate.main(
                rec["summary"],
                rec["store"],
                plan["teacher"],
                plan["queries"],
                expansion["students"],
                plan["heldout"],
                expansion["widths"],
                evaluation,
                rec["metrics"],
            )
    log.info("teacher %s: every expansion recovered and evaluated", plan["spec"]["id"])


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake, torch_threads=True)
    p = snakemake.params
    main(p.plans, p.n_students, p.train, p.evaluation)
