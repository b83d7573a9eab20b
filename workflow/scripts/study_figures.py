"""The study's figures: identifiability against expansion and activation, and the
expansion-1 control (students' final loss against the recovered network's)."""

import _study

from expand_and_cluster import figures
from expand_and_cluster.store import read_json

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
metrics = [read_json(path) for path in snakemake.input.metrics]
dpi = snakemake.params.settings["dpi"]
figures.save(figures.identifiability_figure(metrics), snakemake.output.identifiability, dpi)
figures.save(figures.expansion_control_figure(metrics), snakemake.output.expansion_control, dpi)
log.info("study figures from %d recoveries", len(metrics))
