"""The Expand-and-Cluster study: teachers -> queries -> students (one job per seed) ->
gathered students -> recovery (per gamma/beta) -> evaluation -> tables, figures, report.

Run `snakemake --cores all` for the default study (config/config.yaml); see README.md and
config/README.md. `rule all` must stay in this file: a default target set in an included
file is ignored.
"""

import os

from snakemake.utils import min_version

min_version("9.0")


# Found from the Snakefile's folder, so that `--directory` elsewhere still reads it.
configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Snakemake counts GPUs but never assigns them. A local scope makes `--resources gpu=N`
# cap a workstation at N concurrent training jobs without throttling a cluster executor.
resource_scopes:
    gpu="local",


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/teachers.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/recovery.smk"
include: "workflow/rules/report.smk"


if config["jobs"]["one_per_teacher"]:

    include: "workflow/rules/teacher_jobs.smk"


rule all:
    default_target: True
    input:
        final_targets(),
