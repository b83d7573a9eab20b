"""Draw one synthetic teacher and write its network store."""

import _study

from expand_and_cluster.store import write_network
from expand_and_cluster.teachers import synthetic_teacher

snakemake = globals()["snakemake"]  # injected by Snakemake
log = _study.start(snakemake)
spec = snakemake.params.spec
teacher = synthetic_teacher(spec["sizes"], spec["activation"], spec["seed"], spec["inputs"])
log.info("teacher %s: widths %s, activation %s", spec["id"], teacher.widths, teacher.activation)
write_network(snakemake.output[0], teacher, {"kind": "teacher", "teacher": spec})
