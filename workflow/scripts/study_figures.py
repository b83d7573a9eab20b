"""The study's figures: identifiability against expansion and activation, the
expansion-1 control (students' final loss against the recovered network's), the
problems ordered along the ease-of-identifiability axis, and the teachers trained on a
data set (RMSE of students and recovered network, widths, per-layer angles)."""

import logging

import _study

from expand_and_cluster import figures
from expand_and_cluster.store import read_json

log = logging.getLogger("study.study_figures")


def main(metrics_files: list[str], settings: dict, out: dict[str, str]) -> None:
    metrics = [read_json(path) for path in metrics_files]
    dpi = settings["dpi"]
    figures.save(figures.identifiability_figure(metrics), out["identifiability"], dpi)
    figures.save(figures.expansion_control_figure(metrics), out["expansion_control"], dpi)
    figures.save(figures.ease_figure(metrics), out["ease"], dpi)
    figures.save(figures.trained_teachers_figure(metrics), out["trained"], dpi)
    log.info("study figures from %d recoveries", len(metrics))


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    main(list(snakemake.input.metrics), snakemake.params.settings, dict(snakemake.output.items()))
