"""Benchmark 5: the identifiability suite (``snakemake --cores all --configfile
config/suite.yaml``), from the benchmark files its last run left: the wall time against the
30-minute target, and where the time went.

Each job runs one teacher or a group of them (``jobs.one_per_teacher``,
``jobs.teachers_per_job``); its ``solve_teacher`` benchmark file holds the job's seconds,
and the job writes each training and recovery step's seconds to the per-step rules'
benchmark files. So a job's time splits into training, recovery, and the
rest: the fixed cost of a job (interpreter start and imports, the teacher, its queries,
gathering the students, evaluation and Zarr writes). The wall time is the span from the
first job's start to the last job's end (file time minus job seconds).
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench_study import study_benchmark_files, summarise, teacher_job_split
from benchmarks.common import ROOT, Result

CONFIG = "config/suite.yaml"
COMMAND = f"snakemake --cores all --configfile {CONFIG}"
TARGET_S = 30 * 60


def run(results: Path | None = None) -> list[Result]:
    results = results or ROOT / "results"
    jobs = study_benchmark_files(configfile=CONFIG)
    study = jobs[0].relative_to(results).parts[0] if jobs else "suite"
    summary = summarise(results, jobs).get(study)
    name = f"5 identifiability suite ({CONFIG}): wall time"
    target = f"<= {TARGET_S / 60:.0f} min on 2 cores"
    if summary is None or len(summary["rules"].get("solve_teacher", [])) < len(jobs):
        done = 0 if summary is None else len(summary["rules"].get("solve_teacher", []))
        return [
            Result(
                name,
                f"{done} of {len(jobs)} teacher jobs measured: run `{COMMAND}` in {ROOT}, then "
                "this benchmark again",
                target,
                None,
            )
        ]
    rules = summary["rules"]
    # From the first teacher job's start to the last job's end.
    span = summary["end"] - summary["start"]
    return [
        Result(
            name,
            f"{span / 60:.1f} min ({span:.0f} s) for {len(rules['solve_teacher'])} jobs",
            target,
            span <= TARGET_S,
        ),
        teacher_job_split(results, study, rules["solve_teacher"], label="5"),
    ]


if __name__ == "__main__":
    for r in run():
        print(r.line())
