"""The study's tables (CSV and Markdown): one row per recovery, a summary per activation and
expansion, and the timings (training and recovery seconds from Snakemake's benchmark files)."""

import csv
from pathlib import Path

import _study

from expand_and_cluster import tables
from expand_and_cluster.store import read_json

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
out = snakemake.output
metrics = [read_json(path) for path in snakemake.input.metrics]


def benchmark(path):
    """Seconds and peak memory of one job from its Snakemake benchmark file."""
    with open(path) as f:
        row = next(csv.DictReader(f, delimiter="\t"))
    rss = row.get("max_rss", "NA")
    return {
        "seconds": float(row["s"]),
        "max_rss_mb": None if rss in ("NA", "-", "") else float(rss),
    }


# Benchmark paths end in .../{teacher}/{expansion}/{seed or recovery}.tsv
training = [
    {"teacher": Path(p).parts[-3], "expansion": Path(p).parts[-2], **benchmark(p)}
    for p in snakemake.input.train_benchmarks
]
recovery = [
    {
        "teacher": Path(p).parts[-3],
        "expansion": Path(p).parts[-2],
        "recovery": Path(p).stem,
        **benchmark(p),
    }
    for p in snakemake.input.recover_benchmarks
]
tables.write_table(
    tables.recovery_rows(metrics),
    tables.RECOVERY_COLUMNS,
    out.recoveries_csv,
    out.recoveries_md,
    "Recoveries (one row per teacher x expansion x gamma/beta)",
)
tables.write_table(
    tables.summary_rows(metrics),
    tables.SUMMARY_COLUMNS,
    out.summary_csv,
    out.summary_md,
    "Exact recoveries per activation and expansion",
)
tables.write_table(
    tables.timing_rows(training, recovery),
    tables.TIMING_COLUMNS,
    out.timings_csv,
    out.timings_md,
    "Timings (seconds; from Snakemake's benchmark files)",
)
log.info("tables from %d recoveries", len(metrics))
