"""Helpers of the study: config validation, the teacher table, path patterns and input
functions. Rule files hold rules only; everything computed lives here."""

import hashlib
import json
import math
import re

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def config_error_message(error):
    """One line for a schema violation, naming the key and what is allowed."""
    path = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        where = f"under {path}" if error.absolute_path else "at the top level"
        return (
            f"unknown config key(s) {', '.join(map(repr, unknown))} {where}; "
            f"allowed keys: {', '.join(allowed)} (see config/README.md)"
        )
    return f"config key {path}: {error.message} (see config/README.md)"


def validate_config(cfg):
    """Validate ``cfg`` against config/schema.yaml and fill in the defaults; any problem
    stops the run before a job starts, with a message that names the key."""
    try:
        validate(cfg, schema="../../config/schema.yaml")
    except WorkflowError as e:
        cause = e.__cause__ or e.__context__
        if not isinstance(cause, jsonschema.ValidationError):
            raise
        raise WorkflowError(f"invalid configuration: {config_error_message(cause)}") from None


validate_config(config)

STUDY = config["study"]


# -- identities ------------------------------------------------------------------------------


def number_id(value):
    """4 -> "4", 0.5 -> "0.5", 1.5 -> "1.5": short, unique and path-safe."""
    return f"{value:g}"


def sizes_id(sizes):
    return "-".join(str(s) for s in sizes)


def distribution_id(distribution):
    """The input distribution's part of a teacher id: none for the default (gaussian)."""
    return "" if distribution == "gaussian" else f"-{distribution}"


def parse_widths(text):
    return [int(part) for part in str(text).split(",")]


def build_teachers(cfg):
    """Teacher id -> spec, from the validated config. Ids carry the teacher's identity:
    synthetic ``{activation}-{sizes}[-{inputs}]-s{seed}`` (e.g. ``tanh-5-4-1-s0``), digits
    ``digits-{activation}-{hidden}[-{queries}]-s{seed}`` (e.g. ``digits-relu-12-s0``);
    the input distribution appears only when it is not the default (gaussian)."""
    teachers = {}

    def add(spec):
        tid = spec["id"]
        if tid in teachers and teachers[tid] != spec:
            raise WorkflowError(
                f"config: teacher {tid} is defined twice with different settings "
                f"({teachers[tid]} vs {spec}); give the groups different seeds or sizes"
            )
        teachers[tid] = spec

    queries = cfg["queries"]
    for group in cfg["teachers"]["synthetic"]:
        for act in group["activations"]:
            for text in group["sizes"]:
                sizes = parse_widths(text)
                for seed in group["seeds"]:
                    dist = group["inputs"]
                    add(
                        {
                            "id": f"{act}-{sizes_id(sizes)}{distribution_id(dist)}-s{seed}",
                            "kind": "synthetic",
                            "activation": act,
                            "sizes": sizes,
                            "seed": seed,
                            "inputs": dist,
                            "queries": {"distribution": dist, "n": queries["n"], "seed": seed},
                        }
                    )
    for group in cfg["teachers"]["digits"]:
        for act in group["activations"]:
            for text in group["hidden"]:
                hidden = parse_widths(text)
                for seed in group["seeds"]:
                    dist = group["queries"]
                    add(
                        {
                            "id": f"digits-{act}-{sizes_id(hidden)}{distribution_id(dist)}-s{seed}",
                            "kind": "digits",
                            "activation": act,
                            "sizes": [64, *hidden, 10],
                            "seed": seed,
                            "epochs": group["epochs"],
                            "lr": group["lr"],
                            "batch_size": group["batch_size"],
                            "queries": {
                                "distribution": dist,
                                "n": queries["n"],
                                "seed": seed,
                                "test_fraction": queries["dataset_test_fraction"],
                            },
                        }
                    )
    if not teachers:
        raise WorkflowError(
            "config: no teachers: list at least one group under teachers.synthetic or "
            "teachers.digits"
        )
    return teachers


def check_gamma(cfg):
    """gamma * N must be at least 2 students for every gamma (else clustering says nothing)."""
    n = len(cfg["students"]["seeds"]) * cfg["students"]["per_job"]
    for gamma in cfg["recovery"]["gammas"]:
        if math.ceil(gamma * n - 1e-9) < 2:
            raise WorkflowError(
                f"config: recovery.gammas contains {gamma}, but gamma * N = {gamma} * {n} "
                "students is below 2; raise gamma or train more students "
                "(students.seeds x students.per_job)"
            )


TEACHERS = build_teachers(config)
check_gamma(config)
SYNTHETIC = sorted(t for t, s in TEACHERS.items() if s["kind"] == "synthetic")
DIGITS = sorted(t for t, s in TEACHERS.items() if s["kind"] == "digits")
EXPANSIONS = {f"x{number_id(e)}": e for e in config["students"]["expansions"]}
SEEDS = list(config["students"]["seeds"])
RECOVERIES = {
    f"g{number_id(g)}-b{number_id(b)}": {"gamma": g, "beta_deg": b}
    for g in config["recovery"]["gammas"]
    for b in config["recovery"]["betas_deg"]
}
FIGURE_KINDS = ["similarity", "dendrogram", "cluster_angles", "alignment"]


def alternatives(names):
    """A regex that matches exactly one of ``names`` (and nothing when there are none)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    study=re.escape(STUDY),
    teacher=alternatives(TEACHERS),
    expansion=alternatives(EXPANSIONS),
    seed=r"\d+",
    recovery=alternatives(RECOVERIES),


# -- paths (one level per factor) ------------------------------------------------------------


def recovery_targets(pattern, **more):
    """``pattern`` (with {study}, {teacher}, {expansion}, {recovery}) for every recovery."""
    return expand(
        pattern,
        study=STUDY,
        teacher=sorted(TEACHERS),
        expansion=list(EXPANSIONS),
        recovery=list(RECOVERIES),
        **more,
    )


def final_targets():
    return [
        *expand(
            "results/{study}/tables/{table}.{ext}",
            study=STUDY,
            table=["recoveries", "summary", "timings"],
            ext=["csv", "md"],
        ),
        *expand(
            "results/{study}/figures/{figure}.png",
            study=STUDY,
            figure=["identifiability", "expansion_control"],
        ),
        *recovery_targets(
            "results/{study}/{teacher}/recovery/{expansion}/{recovery}/figures/{kind}.png",
            kind=FIGURE_KINDS,
        ),
    ]


# -- input functions and params --------------------------------------------------------------


def teacher_spec(wildcards):
    return TEACHERS[wildcards.teacher]


def query_spec(wildcards):
    return TEACHERS[wildcards.teacher]["queries"]


def heldout_spec(wildcards):
    """Fresh inputs for evaluation: the queries' distribution with another random stream
    (or, for digits queries "dataset", the held-out images)."""
    spec = dict(TEACHERS[wildcards.teacher]["queries"])
    spec["n"] = config["queries"]["n_test"]
    return spec


def activation(wildcards):
    return TEACHERS[wildcards.teacher]["activation"]


def student_widths(wildcards):
    """Hidden widths of the students: expansion x the teacher's, rounded up."""
    rho = EXPANSIONS[wildcards.expansion]
    return [math.ceil(rho * w - 1e-9) for w in TEACHERS[wildcards.teacher]["sizes"][1:-1]]


def config_hash(*parts):
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def student_attrs(wildcards):
    """Provenance of one training job (JSON only; no clock times)."""
    spec = TEACHERS[wildcards.teacher]
    train = config["students"]["train"]
    return {
        "study": STUDY,
        "teacher": wildcards.teacher,
        "activation": spec["activation"],
        "teacher_sizes": spec["sizes"],
        "expansion": EXPANSIONS[wildcards.expansion],
        "student_widths": student_widths(wildcards),
        "seed": int(wildcards.seed),
        "students_per_job": config["students"]["per_job"],
        "train_settings": train,
        "config_hash": config_hash(spec, train, config["students"]["per_job"]),
    }


def training_checkpoint(wildcards):
    """Where a training job keeps its resumable state: outside its output (Snakemake deletes
    an incomplete output) and named by the job's settings, so that a changed config never
    resumes a stale state."""
    digest = student_attrs(wildcards)["config_hash"]
    return "results/{study}/checkpoints/{teacher}/{expansion}/seed{seed}-{digest}.pt".format(
        digest=digest, **wildcards
    )


def seed_stores(wildcards):
    return expand(
        "results/{study}/{teacher}/students/{expansion}/seed{seed}.zarr",
        seed=SEEDS,
        **wildcards,
    )


def gather_attrs(wildcards):
    return {"n_seeds": len(SEEDS), "students_per_job": config["students"]["per_job"]}


def recovery_settings(wildcards):
    """Keyword arguments of expand_and_cluster.reconstruct.RecoverySettings, except
    n_students (the gathered store knows it)."""
    rec = config["recovery"]
    return {
        **RECOVERIES[wildcards.recovery],
        "cut_rule": rec["cut_rule"],
        "seed": rec["seed"],
        "min_explained_variance": rec["min_explained_variance"],
        "retrain": rec["retrain"],
        "finetune": rec["finetune"],
    }


def recovery_labels(wildcards):
    """What identifies a recovery in the metrics and tables."""
    spec = TEACHERS[wildcards.teacher]
    return {
        "teacher": wildcards.teacher,
        "kind": spec["kind"],
        "activation": spec["activation"],
        "sizes": spec["sizes"],
        "expansion": EXPANSIONS[wildcards.expansion],
        "expansion_id": wildcards.expansion,
        "recovery_id": wildcards.recovery,
        **RECOVERIES[wildcards.recovery],
    }


def all_metrics(wildcards):
    return recovery_targets(
        "results/{study}/{teacher}/recovery/{expansion}/{recovery}/metrics.json"
    )


def train_benchmarks(wildcards):
    return expand(
        "results/{study}/benchmarks/train_students/{teacher}/{expansion}/seed{seed}.tsv",
        study=STUDY,
        teacher=sorted(TEACHERS),
        expansion=list(EXPANSIONS),
        seed=SEEDS,
    )


def recover_benchmarks(wildcards):
    return recovery_targets(
        "results/{study}/benchmarks/recover/{teacher}/{expansion}/{recovery}.tsv"
    )


def figure_settings(wildcards):
    return config["figures"]
