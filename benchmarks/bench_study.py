"""Benchmark 4: the default study (``snakemake --cores all``), per rule, from the rules'
``benchmark:`` files (``results/<study>/benchmarks/<rule>/...tsv``).

Nothing is computed here: this reads what the last study run left. Only the benchmark
files of the jobs the current config defines count (Snakemake lists them in a dry run), so
files left by an earlier config, with other teachers or sizes, are not mixed in. Per rule:
jobs, summed and largest job seconds, largest peak RSS; for the study: how many of its jobs
were measured, the summed job seconds and the span from the first job's start to the last
job's end (file time minus job seconds), which is about the wall time of the run when the
study ran in one go.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.common import ROOT, Result

COMMAND = "snakemake --cores all"
TARGET = "slowest step visible"


def study_benchmark_files(root: Path = ROOT, configfile: str | None = None) -> list[Path]:
    """The ``benchmark:`` file of every job of a config's study (default: the default
    study's), from a dry run of all its jobs (``snakemake -n --forceall``)."""
    snakemake = Path(sys.executable).with_name("snakemake")
    extra = [] if configfile is None else ["--configfile", configfile]
    proc = subprocess.run(
        [str(snakemake) if snakemake.exists() else "snakemake", "-n", "--forceall", *extra],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"`snakemake -n --forceall` failed in {root}: {proc.stderr[-500:]}")
    marker = "benchmark: "
    return [
        root / line.split(marker, 1)[1].strip()
        for line in proc.stdout.splitlines()
        if line.strip().startswith(marker)
    ]


def read_tsv(path: Path) -> dict[str, float]:
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows:
        return {}
    row = rows[-1]

    def num(key: str) -> float:
        try:
            return float(row.get(key, "nan"))
        except ValueError:
            return float("nan")

    return {"s": num("s"), "max_rss": num("max_rss")}


def summarise(results: Path, paths: list[Path]) -> dict[str, dict]:
    """Per study under ``results``: its rules' (seconds, peak RSS, file) per job, and the
    span of the jobs, from the benchmark files among ``paths`` that exist."""
    studies: dict[str, dict] = {}
    for path in sorted(p for p in paths if p.is_file()):
        parts = path.relative_to(results).parts  # study, "benchmarks", rule, ...
        study, rule = parts[0], parts[2] if len(parts) > 3 else path.stem
        values = read_tsv(path)
        if not values:
            continue
        mtime = path.stat().st_mtime
        st = studies.setdefault(
            study, {"rules": defaultdict(list), "start": float("inf"), "end": 0.0}
        )
        st["rules"][rule].append((values["s"], values["max_rss"], str(path.relative_to(results))))
        st["start"] = min(st["start"], mtime - values["s"])
        st["end"] = max(st["end"], mtime)
    return studies


def teacher_job_split(results: Path, study: str, jobs: list[tuple], label: str = "4") -> Result:
    """One-job-per-teacher studies (``jobs.one_per_teacher``): the ``solve_teacher`` jobs'
    seconds split into training and recovery (the per-step benchmark files each job
    writes) and the rest (process start and imports, teacher, queries, gathering,
    evaluation, writes). A job of several teachers (jobs.teachers_per_job) is named by
    them joined with '+'."""
    teachers = [t for _, _, path in jobs for t in Path(path).stem.split("+")]
    bench = results / study / "benchmarks"

    def seconds(rule: str) -> float:
        return sum(read_tsv(p)["s"] for t in teachers for p in (bench / rule / t).glob("**/*.tsv"))

    total = sum(s for s, _, _ in jobs)
    training, recovery = seconds("train_students"), seconds("recover")
    recoveries = sum(len(list((bench / "recover" / t).glob("**/*.tsv"))) for t in teachers)
    rest = total - training - recovery
    return Result(
        f"{label} study {study!r}, rule solve_teacher: where the time went",
        f"{total:.0f} s in {len(jobs)} jobs of {len(teachers)} teachers ({recoveries} "
        "recoveries): training "
        f"{100 * training / total:.0f}%, "
        f"recovery {100 * recovery / total:.0f}%, the rest (process start and imports, "
        f"teacher, queries, gathering, evaluation, writes) {100 * rest / total:.0f}% "
        f"({rest / len(jobs):.1f} s per job, {rest / len(teachers):.1f} s per teacher)",
        TARGET,
        None,
    )


def run(results: Path | None = None, paths: list[Path] | None = None) -> list[Result]:
    """``paths``: the study's benchmark files (default: those of the default config)."""
    results = results or ROOT / "results"
    paths = study_benchmark_files() if paths is None else paths
    studies = summarise(results, paths)
    if not studies:
        return [
            Result(
                "4 default study: per-rule wall time",
                f"no study run found (none of its {len(paths)} jobs' benchmark files under "
                f"{results}); run `{COMMAND}` in {ROOT}, then this benchmark again",
                TARGET,
                None,
            )
        ]
    out = []
    for study, st in studies.items():
        rules = st["rules"]
        total = sum(s for jobs in rules.values() for s, _, _ in jobs)
        span = st["end"] - st["start"]
        for rule, jobs in sorted(rules.items(), key=lambda kv: -sum(j[0] for j in kv[1])):
            secs = [j[0] for j in jobs]
            slowest = max(jobs, key=lambda j: j[0])
            rss = max(j[1] for j in jobs)
            out.append(
                Result(
                    f"4 study {study!r}, rule {rule}",
                    f"{len(jobs)} jobs, {sum(secs):.1f} s in all "
                    f"({100 * sum(secs) / total:.0f}% of job time), "
                    f"slowest job {slowest[0]:.1f} s ({slowest[2]}), peak RSS {rss:.0f} MB",
                    TARGET,
                    None,
                )
            )
        if "solve_teacher" in rules:
            out.append(teacher_job_split(results, study, rules["solve_teacher"]))
        measured = sum(len(j) for j in rules.values())
        expected = sum(1 for p in paths if p.relative_to(results).parts[0] == study)
        missing = (
            f"; {expected - measured} not run yet: run `{COMMAND}` for the whole study"
            if measured < expected
            else ""
        )
        out.append(
            Result(
                f"4 study {study!r}: all rules",
                f"{measured} of its {expected} jobs measured, {total:.1f} s of job time, "
                f"about {span:.0f} s wall from first start to last end{missing}",
                TARGET,
                None,
            )
        )
    return out


if __name__ == "__main__":
    for r in run():
        print(r.line())
