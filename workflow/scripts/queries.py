"""Query the teacher: the inputs the students will be trained on and the teacher's outputs."""

import _study

from expand_and_cluster.store import read_network

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
teacher = read_network(snakemake.input.teacher)
x = _study.query_inputs(snakemake.params.spec, teacher.n_inputs)
y = teacher(x)
log.info(
    "%d queries of %d inputs; teacher outputs %d, variance %.4g", *x.shape, y.shape[1], y.var()
)
_study.write_queries(snakemake.output[0], x, y)
