"""The study's tables (CSV and Markdown): one row per recovery, a summary per activation and
expansion, and the timings (training and recovery seconds from Snakemake's benchmark files)."""

import logging
from pathlib import Path

import _study

from expand_and_cluster import identifiability, tables
from expand_and_cluster.store import read_json

log = logging.getLogger("study.tables")


def main(
    metrics_files: list[str],
    train_benchmarks: list[str],
    recover_benchmarks: list[str],
    out: dict[str, str],
) -> None:
    metrics = [read_json(path) for path in metrics_files]
    # Benchmark paths end in .../{teacher}/{expansion}/{seed or recovery}.tsv
    training = [
        {
            "teacher": Path(p).parts[-3],
            "expansion": Path(p).parts[-2],
            **tables.read_benchmark(p),
        }
        for p in train_benchmarks
    ]
    recovery = [
        {
            "teacher": Path(p).parts[-3],
            "expansion": Path(p).parts[-2],
            "recovery": Path(p).stem,
            **tables.read_benchmark(p),
        }
        for p in recover_benchmarks
    ]
    tables.write_table(
        tables.recovery_rows(metrics),
        tables.RECOVERY_COLUMNS,
        out["recoveries_csv"],
        out["recoveries_md"],
        "Recoveries (one row per teacher x expansion x gamma/beta)",
    )
    tables.write_table(
        tables.summary_rows(metrics),
        tables.SUMMARY_COLUMNS,
        out["summary_csv"],
        out["summary_md"],
        "Exact recoveries per activation and expansion",
    )
    tables.write_table(
        tables.timing_rows(training, recovery),
        tables.TIMING_COLUMNS,
        out["timings_csv"],
        out["timings_md"],
        "Timings (seconds; from Snakemake's benchmark files)",
    )
    tables.write_table(
        identifiability.success_rows(metrics),
        identifiability.SUCCESS_COLUMNS,
        out["success_csv"],
        out["success_md"],
        "Success rates per expansion and activation (counts and percentages)",
    )
    rows, columns = identifiability.ease_rows(metrics)
    tables.write_table(
        rows,
        columns,
        out["ease_csv"],
        out["ease_md"],
        "Problems ordered by ease of identifiability (easiest first), status per expansion",
    )
    tables.write_table(
        tables.trained_rows(metrics),
        tables.TRAINED_COLUMNS,
        out["trained_csv"],
        out["trained_md"],
        "Teachers trained on a data set: widths, overhead, first-layer angles, RMSE",
    )
    tables.write_table(
        tables.neuron_rows(metrics),
        tables.NEURON_COLUMNS,
        out["neurons_csv"],
        out["neurons_md"],
        "Recovered neurons: support, spread, stability, contribution, flags",
    )
    tables.write_table(
        tables.flag_rows(metrics),
        tables.FLAG_COLUMNS,
        out["flags_csv"],
        out["flags_md"],
        "How well the flags pick out excess neurons (teachers with known weights)",
    )
    log.info("tables from %d recoveries", len(metrics))


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    i = snakemake.input
    main(
        list(i.metrics),
        list(i.train_benchmarks),
        list(i.recover_benchmarks),
        dict(snakemake.output.items()),
    )
