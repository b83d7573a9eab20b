"""How recovery degrades with imperfect outputs (teachers.synthetic.outputs): the table
per activation x output transform and the degradation curves."""

import logging

import _study

from expand_and_cluster import figures, tables
from expand_and_cluster.store import read_json

log = logging.getLogger("study.robustness")


def main(metrics_files: list[str], settings: dict, out: dict[str, str]) -> None:
    metrics = [read_json(path) for path in metrics_files]
    tables.write_table(
        tables.robustness_rows(metrics),
        tables.ROBUSTNESS_COLUMNS,
        out["table_csv"],
        out["table_md"],
        "Imperfect outputs: recovery per activation and output transform",
    )
    figures.save(figures.robustness_figure(metrics), out["figure"], settings["dpi"])
    log.info("robustness table and figure from %d recoveries", len(metrics))


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    main(list(snakemake.input.metrics), snakemake.params.settings, dict(snakemake.output.items()))
