"""Benchmark 4: the default study (``snakemake --cores all``), per rule, from the rules'
``benchmark:`` files (``results/<study>/benchmarks/<rule>/...tsv``).

Nothing is launched here: this reads what the last study run left. Per rule: jobs, summed
and largest job seconds, largest peak RSS; per study: the summed job seconds and the span
from the first job's start to the last job's end (file time minus job seconds), which is
about the wall time of the run when the study ran in one go.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from benchmarks.common import ROOT, Result

COMMAND = "snakemake --cores all"


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


def summarise(results: Path) -> dict[str, dict]:
    studies: dict[str, dict] = {}
    for path in sorted(results.glob("*/benchmarks/**/*.tsv")):
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


def run(results: Path | None = None) -> list[Result]:
    results = results or ROOT / "results"
    studies = summarise(results)
    if not studies:
        return [
            Result(
                "4 default study: per-rule wall time",
                f"no study run found (no benchmark .tsv under {results}); run `{COMMAND}` in "
                f"{ROOT}, then this benchmark again",
                "slowest step visible",
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
                    "slowest step visible",
                    None,
                )
            )
        out.append(
            Result(
                f"4 study {study!r}: all rules",
                f"{sum(len(j) for j in rules.values())} jobs, {total:.1f} s of job time, "
                f"about {span:.0f} s wall from first start to last end",
                "slowest step visible",
                None,
            )
        )
    return out


if __name__ == "__main__":
    for r in run():
        print(r.line())
