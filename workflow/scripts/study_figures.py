"""The study's figures: identifiability against expansion and activation, and the
expansion-1 control (students' final loss against the recovered network's)."""

import json

import _study

from expand_and_cluster import figures

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
metrics = []
for path in snakemake.input.metrics:
    with open(path) as f:
        metrics.append(json.load(f))
dpi = snakemake.params.settings["dpi"]
figures.save(figures.identifiability_figure(metrics), snakemake.output.identifiability, dpi)
figures.save(figures.expansion_control_figure(metrics), snakemake.output.expansion_control, dpi)
log.info("study figures from %d recoveries", len(metrics))
