"""Pool the per-seed student stores of one teacher x expansion into one store (seed dimension)."""

import _study

from expand_and_cluster.store import gather_students

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
seeds = snakemake.params.seeds
gather_students(list(snakemake.input), seeds, snakemake.output[0], snakemake.params.attrs)
log.info("gathered %d seed store(s) into %s", len(seeds), snakemake.output[0])
