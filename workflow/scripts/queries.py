"""Query the teacher: the inputs the students will be trained on and the teacher's outputs."""

import logging

import _study

from expand_and_cluster.data import query_inputs
from expand_and_cluster.store import read_network, write_queries

log = logging.getLogger("study.queries")


def main(teacher_store: str, design: dict, out: str) -> None:
    teacher = read_network(teacher_store)
    x = query_inputs(design, teacher.n_inputs)
    y = teacher(x)
    log.info(
        "%d queries of %d inputs; teacher outputs %d, variance %.4g", *x.shape, y.shape[1], y.var()
    )
    write_queries(out, x, y)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    main(snakemake.input.teacher, snakemake.params.design, snakemake.output[0])
