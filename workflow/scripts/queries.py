"""Query the teacher: the inputs the students will be trained on and the teacher's outputs,
as the students see them (exact, or transformed: teachers.synthetic.outputs)."""

import logging

import _study

from expand_and_cluster.data import query_inputs
from expand_and_cluster.evaluate import applied_output_error
from expand_and_cluster.outputs import transform_outputs
from expand_and_cluster.store import read_network, write_queries

log = logging.getLogger("study.queries")


def main(teacher_store: str, design: dict, outputs: dict, out: str) -> None:
    teacher = read_network(teacher_store)
    x = query_inputs(design, teacher.n_inputs)
    exact = teacher(x)
    y = transform_outputs(exact, outputs["spec"], outputs["seed"])
    log.info(
        "%d queries of %d inputs; teacher outputs %d, variance %.4g", *x.shape, y.shape[1], y.var()
    )
    log.info(
        "outputs as the students see them: %s (relative error %.3g)",
        outputs["spec"],
        applied_output_error(exact, y),
    )
    write_queries(out, x, y)


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    p = snakemake.params
    main(snakemake.input.teacher, p.design, p.outputs, snakemake.output[0])
