"""Draw one synthetic teacher and write its network store."""

import logging

import _study

from expand_and_cluster.store import write_network
from expand_and_cluster.teachers import synthetic_teacher

log = logging.getLogger("study.synthetic_teacher")


def main(spec: dict, out: str) -> None:
    teacher = synthetic_teacher(spec["sizes"], spec["activation"], spec["seed"], spec["inputs"])
    log.info("teacher %s: widths %s, activation %s", spec["id"], teacher.widths, teacher.activation)
    write_network(out, teacher, {"kind": "teacher", "teacher": spec})


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake)
    main(snakemake.params.spec, snakemake.output[0])
