"""Pool the per-seed student stores of one teacher x expansion into one store (seed dimension)."""

import logging

import _study

from expand_and_cluster.store import gather_students

log = logging.getLogger("study.gather_students")


def main(stores: list[str], seeds: list[int], out: str, attrs: dict) -> None:
    gather_students(stores, seeds, out, attrs)
    log.info("gathered %d seed store(s) into %s", len(seeds), out)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    main(list(snakemake.input), snakemake.params.seeds, snakemake.output[0], snakemake.params.attrs)
