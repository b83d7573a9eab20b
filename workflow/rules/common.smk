"""Helpers of the study: config validation, the teacher table, path patterns and input
functions. Rule files hold rules only; everything computed lives here."""

import functools
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import asdict, fields
from types import SimpleNamespace

import jsonschema
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

try:
    import expand_and_cluster  # noqa: F401
except ImportError:  # a checkout whose package is not installed (e.g. conda deployment)
    sys.path.insert(0, os.path.join(workflow.basedir, "src"))

from expand_and_cluster.data import (
    ImageSource,
    image_sizes,
    query_count,
    query_design as make_query_design,
)
from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import (
    EvaluationSettings,
    expansion_id,
    recovery_id,
    recovery_labels as make_recovery_labels,
)
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.outputs import output_transform_id, parse_output_transform
from expand_and_cluster.reconstruct import RecoverySettings
from expand_and_cluster.resources import check_memory, estimate_recovery_memory
from expand_and_cluster.students import TrainSettings
from expand_and_cluster.teachers import check_teacher_memory
from expand_and_cluster.students import student_widths as expanded_widths


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


def check_plain_data(cfg, limit=100_000):
    """Before the schema walks it: refuse NaN and infinite numbers anywhere (JSON schema
    bounds let NaN through), one part of the config repeated by a YAML alias (nested aliases
    make a small file expand to billions of values), and configs of more than ``limit``
    values."""
    seen, stack, count = set(), [(cfg, "(top level)")], 0
    while stack:
        value, key = stack.pop()
        count += 1
        if count > limit:
            raise WorkflowError(
                f"invalid configuration: more than {limit} values; a study config is a few "
                "hundred (see config/README.md)"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise WorkflowError(
                f"invalid configuration: config key {key} is {value}; it must be a finite "
                "number (see config/README.md)"
            )
        if isinstance(value, dict | list):
            if id(value) in seen:
                raise WorkflowError(
                    f"invalid configuration: config key {key} repeats another part of the "
                    "config (a YAML alias); write its values out (see config/README.md)"
                )
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            prefix = "" if key == "(top level)" else f"{key}."
            stack.extend((item, f"{prefix}{name}") for name, item in items)


def validate_config(cfg):
    """Validate ``cfg`` against config/schema.yaml and fill in the defaults; any problem
    stops the run before a job starts, with a message that names the key."""
    check_plain_data(cfg)
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


def sizes_id(sizes):
    return "-".join(str(s) for s in sizes)


def distribution_id(design):
    """The query design's part of a teacher id: none for the default (gaussian);
    ``composition:4:rotate`` -> ``-composition4rotate``."""
    return "" if design == "gaussian" else f"-{design.replace(':', '')}"


def subset_id(n_train):
    """A teacher trained on a subset of its data set's images: ``-n500``; none for all."""
    return "" if n_train is None else f"-n{n_train}"


def data_files(cfg, dataset):
    """Where ``dataset``'s files are (the config's data section; default data/<dataset>)."""
    if dataset == "digits":
        return {"root": None, "checksums": None}
    files = cfg["data"][dataset]
    return {
        "root": files["root"] or os.path.join("data", dataset),
        "checksums": files["checksums"] or None,
    }


def parse_widths(text):
    return [int(part) for part in str(text).split(",")]


def build_teachers(cfg):
    """Teacher id -> spec, from the validated config. Ids carry the teacher's identity:
    synthetic ``{activation}-{sizes}[-{inputs}][-o{outputs}]-s{seed}`` (e.g. ``tanh-5-4-1-s0``,
    ``tanh-5-4-1-onoise0.001-s0`` for noisy outputs), trained
    ``{dataset}-{activation}-{hidden}[-{queries}]-s{seed}`` (e.g. ``digits-relu-12-s0``,
    ``mnist-n500-g-16-train-s0`` for a teacher trained on 500 images); the query design
    and the output transform appear only when they are not the defaults (gaussian, none)."""
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
        transforms = output_transforms(group["outputs"])
        for act in group["activations"]:
            for text in group["sizes"]:
                sizes = parse_widths(text)
                for seed in group["seeds"]:
                    dist = group["inputs"]
                    for oid, transform in transforms.items():
                        add(
                            {
                                "id": f"{act}-{sizes_id(sizes)}{distribution_id(dist)}{oid}-s{seed}",
                                "kind": "synthetic",
                                "activation": act,
                                "sizes": sizes,
                                "seed": seed,
                                "inputs": dist,
                                "query_label": dist,
                                "expansions": cfg["students"]["expansions"],
                                "queries": {"distribution": dist, "n": queries["n"], "seed": seed},
                                # Only when transformed: the exact teachers' specs (and the
                                # provenance and hashes made from them) stay as they were.
                                **({"outputs": transform} if oid else {}),
                            }
                        )
    for group in cfg["teachers"]["trained"]:
        dataset = group["dataset"]
        images = {
            "dataset": dataset,
            "downsample": group["downsample"],
            "n_train": group["images"],
            "test_fraction": group["test_fraction"],
            **data_files(cfg, dataset),
        }
        n_queries = group["n_queries"] or queries["n"]
        for act in group["activations"]:
            for text in group["hidden"]:
                hidden = parse_widths(text)
                for seed in group["seeds"]:
                    source = ImageSource(**images, seed=seed)
                    for design in group["queries"]:
                        add(
                            {
                                "id": f"{dataset}{subset_id(group['images'])}-{act}-"
                                f"{sizes_id(hidden)}{distribution_id(design)}-s{seed}",
                                "kind": "trained",
                                "activation": act,
                                "sizes": image_sizes(source, hidden),
                                "seed": seed,
                                "train": {
                                    key: group[key]
                                    for key in ("optimizer", "epochs", "lr", "batch_size")
                                },
                                "images": asdict(source),
                                "query_label": design,
                                "expansions": group["expansions"] or cfg["students"]["expansions"],
                                "students": group["students"],  # null: the students section's
                                "recovery": group["recovery"],  # null: the recovery section's
                                "queries": checked_config(
                                    "teachers.trained.queries",
                                    lambda: make_query_design(
                                        design, source, n_queries, seed, cfg["data"]
                                    ),
                                ),
                            }
                        )
    if not teachers:
        raise WorkflowError(
            "config: no teachers: list at least one group under teachers.synthetic or "
            "teachers.trained"
        )
    return teachers


def output_transforms(specs):
    """Teacher id part -> canonical spec of a synthetic group's ``outputs`` (one line per
    bad spec, naming the accepted forms; two spellings of one transform are refused)."""
    key = "teachers.synthetic.outputs"
    for spec in specs:
        checked_config(key, lambda: parse_output_transform(spec))
    ids = unique_ids(specs, output_transform_id, key)
    return {oid: parse_output_transform(spec).spec for oid, spec in ids.items()}


def checked_config(key, make):
    """``make()``, with a library InputError turned into a one-line config error."""
    try:
        return make()
    except InputError as e:
        raise WorkflowError(
            f"invalid configuration: config key {key}: {e} (see config/README.md)"
        ) from None


def group_students(students, own):
    """The students of a teacher group: the students section's seeds, per_job and train,
    with the group's own (teachers.trained[].students) on top, train key by key; and N,
    the students a recovery pools (seeds x per_job)."""
    own = own or {}
    seeds = list(own.get("seeds", students["seeds"]))
    per_job = own.get("per_job", students["per_job"])
    return {
        "seeds": seeds,
        "per_job": per_job,
        "train": {**students["train"], **own.get("train", {})},
        "n_students": len(seeds) * per_job,
    }


# Keys of the recovery section that are settings blocks of their own, merged key by key.
NESTED_RECOVERY_KEYS = {"retrain": TrainSettings, "finetune": FinetuneSettings}
# Keys of the recovery section that fan out over recoveries; a group cannot set them.
RECOVERY_FACTORS = ("gammas", "betas_deg")


def group_recovery(recovery, own):
    """The recovery settings of a teacher group: the recovery section's, with the group's
    own (teachers.trained[].recovery) on top, retrain and finetune key by key. gammas and
    betas_deg stay the section's: they name every teacher's recoveries."""
    own = own or {}
    return {
        **recovery,
        **own,
        **{key: {**recovery[key], **own.get(key, {})} for key in NESTED_RECOVERY_KEYS},
    }


def check_settings(cfg):
    """Build every settings object of the library from the config, so that the library's
    own declarations (type, finite, bounds; gamma * N >= 2) check each value before any job
    starts; a problem stops the run with the config key named."""
    students, rec = cfg["students"], cfg["recovery"]
    for expansion in students["expansions"]:
        checked_config("students.expansions", lambda: expanded_widths([1], expansion))
    blocks = {"students": (None, None)}
    blocks.update(
        (f"teachers.trained[{i}]", (group["students"], group["recovery"]))
        for i, group in enumerate(cfg["teachers"]["trained"])
        if group["students"] or group["recovery"]
    )
    for where, (own_students, own_recovery) in blocks.items():
        key = f"{where}.students" if own_students else "students"
        chosen = group_students(students, own_students)
        unknown_keys(
            chosen["train"], field_names(TrainSettings), f"{key}.train", "those of students.train"
        )
        checked_config(f"{key}.train", lambda: TrainSettings(**chosen["train"]))
        recovery_key = f"{where}.recovery" if own_recovery else "recovery"
        if own_recovery:
            check_group_recovery(own_recovery, recovery_key)
        recovery = group_recovery(rec, own_recovery)
        for gamma in rec["gammas"]:
            for beta in rec["betas_deg"]:
                options = {
                    "n_students": chosen["n_students"],
                    **recovery_options(gamma, beta, recovery),
                }
                checked_config(
                    f"{recovery_key} (gammas, betas_deg; N = {key}.seeds x {key}.per_job)",
                    lambda: RecoverySettings.from_dict(options),
                )
    checked_config("evaluation", lambda: EvaluationSettings(**cfg["evaluation"]))


def field_names(settings_class):
    return {f.name for f in fields(settings_class)}


def unknown_keys(values, allowed, key, allowed_text):
    """Refuse keys of ``values`` not in ``allowed``, naming ``key`` and what is allowed."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise WorkflowError(
            f"invalid configuration: unknown config key(s) {', '.join(map(repr, unknown))} "
            f"under {key}; allowed keys: {allowed_text} (see config/README.md)"
        )


def check_group_recovery(own, key):
    """A group's recovery block holds keys of the recovery section (not its gammas and
    betas_deg), and retrain / finetune keys of those blocks."""
    # N, the students' training, gamma and beta come from other sections.
    not_settable = {"n_students", "train", "gamma", "beta_deg"}
    allowed = field_names(RecoverySettings) - not_settable
    section = f"the recovery section's, without {' and '.join(RECOVERY_FACTORS)}"
    unknown_keys(own, allowed, key, f"{', '.join(sorted(allowed))} ({section})")
    for block, settings_class in NESTED_RECOVERY_KEYS.items():
        values = own.get(block, {})
        if not isinstance(values, dict):
            raise WorkflowError(
                f"invalid configuration: config key {key}.{block} must be a mapping of "
                f"recovery.{block} keys (see config/README.md)"
            )
        unknown_keys(
            values, field_names(settings_class), f"{key}.{block}", f"those of recovery.{block}"
        )


def check_job_memory(cfg, teachers):
    """Every teacher and recovery job must fit in this machine's memory (estimated from
    the sizes alone, before any job starts); the message names the figure and the knob."""
    for tid, spec in teachers.items():
        chosen = group_students(cfg["students"], spec.get("students"))
        n_students, train = chosen["n_students"], chosen["train"]
        sizes = spec["sizes"]
        key = f"teachers (teacher {tid})"
        checked_config(key, lambda: check_teacher_memory(sizes, f"teacher {tid}"))
        n_queries = query_count(spec["queries"])
        for expansion in spec["expansions"]:
            widths = expanded_widths(sizes[1:-1], expansion)
            estimate = estimate_recovery_memory(
                n_queries,
                sizes[0],
                sizes[-1],
                widths,
                n_students,
                train["batch_size"],
                train["dtype"],
            )
            what = f"teacher {tid} at expansion {expansion:g} ({n_students} students)"
            checked_config(key, lambda: check_memory(estimate, what))


def recovery_options(gamma, beta_deg, recovery):
    """expand_and_cluster.reconstruct.RecoverySettings.from_dict's data, except n_students
    (the gathered store knows it): one gamma and beta, and every other key of ``recovery``
    (a recovery section, :func:`group_recovery`)."""
    return {
        "gamma": gamma,
        "beta_deg": beta_deg,
        **{key: value for key, value in recovery.items() if key not in RECOVERY_FACTORS},
    }


def unique_ids(values, make_id, key):
    """id -> value for config values whose ids must not collide (two values, one path)."""
    ids = {}
    for value in values:
        vid = make_id(value)
        if vid in ids:
            raise WorkflowError(
                f"invalid configuration: config key {key}: {ids[vid]!r} and {value!r} both "
                f"get the id {vid!r} (their results would share one folder); keep one of them"
            )
        ids[vid] = value
    return ids


TEACHERS = build_teachers(config)
check_settings(config)
check_job_memory(config, TEACHERS)
SYNTHETIC = sorted(t for t, s in TEACHERS.items() if s["kind"] == "synthetic")
TRAINED = sorted(t for t, s in TEACHERS.items() if s["kind"] == "trained")
# Some teacher's outputs reach its students transformed: the study gets the robustness
# table and figure.
TRANSFORMED_OUTPUTS = any("outputs" in s for s in TEACHERS.values())
# Image data sets with files (digits are bundled) that a teacher or a query design reads.
DATASETS_USED = sorted(
    {s["images"]["dataset"] for s in TEACHERS.values() if s["kind"] == "trained"}
    | {s["queries"]["dataset"] for s in TEACHERS.values() if "dataset" in s["queries"]} - {"digits"}
)
# Every expansion of the study (a trained teacher group may set its own), by id; one
# teacher's are teacher_expansions(teacher).
# Synthetic teachers all have students.expansions (one job per teacher lists its outputs
# from these).
SYNTHETIC_EXPANSIONS = list(
    unique_ids(config["students"]["expansions"], expansion_id, "students.expansions")
)
EXPANSIONS = unique_ids(
    list(dict.fromkeys(e for spec in TEACHERS.values() for e in spec["expansions"])),
    expansion_id,
    "teachers.trained.expansions (with students.expansions)",
)
# The students section's seeds: every synthetic teacher's (a trained group may set its own:
# teacher_students).
SEEDS = list(config["students"]["seeds"])
RECOVERIES = {
    rid: {"gamma": g, "beta_deg": b}
    for rid, (g, b) in unique_ids(
        [(g, b) for g in config["recovery"]["gammas"] for b in config["recovery"]["betas_deg"]],
        lambda gb: recovery_id(*gb),
        "recovery.gammas / recovery.betas_deg",
    ).items()
}


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


def teacher_expansions(teacher):
    """The expansion ids of one teacher (its group's, or students.expansions)."""
    return [expansion_id(e) for e in TEACHERS[teacher]["expansions"]]


def per_expansion(pattern, seeds=False, **more):
    """``pattern`` (with {study}, {teacher}, {expansion}) for every teacher and each of its
    expansions (with ``seeds``, and each of its students' seeds for {seed}), and every
    value of ``more``."""
    return [
        path
        for teacher in sorted(TEACHERS)
        for path in expand(
            pattern,
            study=STUDY,
            teacher=teacher,
            expansion=teacher_expansions(teacher),
            **({"seed": teacher_students(teacher)["seeds"]} if seeds else {}),
            **more,
        )
    ]


def recovery_targets(pattern):
    """``pattern`` (with {study}, {teacher}, {expansion}, {recovery}) for every recovery."""
    return per_expansion(pattern, recovery=list(RECOVERIES))


def final_targets():
    per_recovery = config["figures"]["per_recovery"]
    return [
        *expand(rules.tables.output, study=STUDY),
        *expand(rules.study_figures.output, study=STUDY),
        *(recovery_targets(rules.recovery_figures.output) if per_recovery else []),
        *(expand(rules.robustness.output, study=STUDY) if TRANSFORMED_OUTPUTS else []),
    ]


# -- input functions and params --------------------------------------------------------------


# Keys of a teacher's spec that say how the teacher is studied, not what it is.
STUDY_KEYS = ("expansions", "students", "recovery")


def teacher_spec(wildcards):
    """What the teacher is: its spec without :data:`STUDY_KEYS`, so that its provenance,
    its jobs' params and its training jobs' hashes do not change (and nothing re-runs)
    when an expansion is added or its group's students or recovery settings change."""
    return {k: v for k, v in TEACHERS[wildcards.teacher].items() if k not in STUDY_KEYS}


def output_transform(wildcards):
    """What the students see of the teacher's outputs (expand_and_cluster.outputs
    .transform_outputs): the transform's spec and its seed, the teacher's."""
    spec = TEACHERS[wildcards.teacher]
    return {"spec": spec.get("outputs", "none"), "seed": spec["seed"]}


def query_design(wildcards):
    """The inputs the students are trained on (expand_and_cluster.data.query_inputs)."""
    return TEACHERS[wildcards.teacher]["queries"]


def heldout_design(wildcards):
    """Fresh inputs for evaluation (expand_and_cluster.data.heldout_inputs): the queries'
    distribution with another random stream, or the teacher's held-out images."""
    return {**query_design(wildcards), "n": config["queries"]["n_test"]}


def activation(wildcards):
    return TEACHERS[wildcards.teacher]["activation"]


def student_widths(wildcards):
    rho = EXPANSIONS[wildcards.expansion]
    return expanded_widths(TEACHERS[wildcards.teacher]["sizes"][1:-1], rho)


def config_hash(*parts):
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def teacher_students(teacher):
    """One teacher's students: seeds, per_job and train (:func:`group_students`)."""
    return group_students(config["students"], TEACHERS[teacher].get("students"))


def students_per_job(wildcards):
    return teacher_students(wildcards.teacher)["per_job"]


def student_training(wildcards):
    """The training settings of one teacher's students (expand_and_cluster.students
    .TrainSettings)."""
    return teacher_students(wildcards.teacher)["train"]


def student_seeds(wildcards):
    return teacher_students(wildcards.teacher)["seeds"]


def student_attrs(wildcards):
    """Provenance of one training job (JSON only; no clock times)."""
    spec = teacher_spec(wildcards)
    chosen = teacher_students(wildcards.teacher)
    train, per_job = chosen["train"], chosen["per_job"]
    return {
        "study": STUDY,
        "teacher": wildcards.teacher,
        "activation": spec["activation"],
        "teacher_sizes": spec["sizes"],
        "expansion": EXPANSIONS[wildcards.expansion],
        "student_widths": student_widths(wildcards),
        "seed": int(wildcards.seed),
        "students_per_job": per_job,
        "train_settings": train,
        "config_hash": config_hash(spec, train, per_job),
    }


def training_checkpoint(wildcards):
    """Where a training job keeps its resumable state: outside its output (Snakemake deletes
    an incomplete output) and named by the job's settings, so that a changed config never
    resumes a stale state."""
    digest = student_attrs(wildcards)["config_hash"]
    return "results/{study}/checkpoints/{teacher}/{expansion}/seed{seed}-{digest}.pt".format(
        study=wildcards.study,
        teacher=wildcards.teacher,
        expansion=wildcards.expansion,
        seed=wildcards.seed,
        digest=digest,
    )


def training_label(wildcards):
    """How a training job names itself in the logs."""
    return f"{wildcards.teacher} {wildcards.expansion} seed {wildcards.seed}"


def seed_stores(wildcards):
    return expand(rules.train_students.output[0], seed=student_seeds(wildcards), **wildcards)


def gather_attrs(wildcards):
    chosen = teacher_students(wildcards.teacher)
    return {"n_seeds": len(chosen["seeds"]), "students_per_job": chosen["per_job"]}


def recovery_settings(wildcards):
    """One recovery's settings: its gamma and beta, and its teacher group's recovery
    section (:func:`group_recovery`)."""
    own = TEACHERS[wildcards.teacher].get("recovery")
    recovery = group_recovery(config["recovery"], own)
    return recovery_options(**RECOVERIES[wildcards.recovery], recovery=recovery)


def recovery_labels(wildcards):
    """The recovery's labels; a trained teacher's kind is its data set (digits, mnist...)."""
    spec = TEACHERS[wildcards.teacher]
    return make_recovery_labels(
        wildcards.teacher,
        spec["images"]["dataset"] if spec["kind"] == "trained" else spec["kind"],
        spec["activation"],
        spec["sizes"],
        EXPANSIONS[wildcards.expansion],
        **RECOVERIES[wildcards.recovery],
        queries=spec["query_label"],
        teacher_outputs=output_transform(wildcards)["spec"],
    )


def all_metrics(wildcards):
    return recovery_targets(rules.evaluate.output[0])


def train_benchmarks(wildcards):
    return per_expansion(rules.train_students.benchmark, seeds=True)


def recover_benchmarks(wildcards):
    return recovery_targets(rules.recover.benchmark)


def figure_settings(wildcards):
    return config["figures"]


# -- one job per teacher (jobs.one_per_teacher) ----------------------------------------------


def teacher_groups(teachers, size):
    """The jobs of jobs.one_per_teacher, as job name -> the teachers it runs. With one
    teacher per job that is one rule for all of them, with the {teacher} wildcard (name
    "{teacher}", teachers None); larger groups (jobs.teachers_per_job) of consecutive
    teachers are named by their members joined with '+', a rule each."""
    if size == 1:
        return {"{teacher}": None}
    groups = [teachers[i : i + size] for i in range(0, len(teachers), size)]
    return {"+".join(group): group for group in groups}


def group_files(pattern, teachers, **factors):
    """``pattern`` (a rule's output, flags dropped) for each of ``teachers`` (None: the
    {teacher} wildcard) and every value of ``factors``, with {study} left in place: the
    files of one job."""
    teachers = ["{teacher}"] if teachers is None else teachers
    return expand(str(pattern), teacher=teachers, allow_missing=True, **factors)


def group_plans(teachers, wildcards):
    """The plan (:func:`teacher_job`) of each of ``teachers`` (None: the {teacher}
    wildcard's), in order, with its held-out design for the evaluation."""
    teachers = [wildcards.teacher] if teachers is None else teachers
    jobs = [SimpleNamespace(study=wildcards.study, teacher=teacher) for teacher in teachers]
    return [{**teacher_job(job), "heldout": heldout_design(job)} for job in jobs]


def teacher_job(wildcards):
    """One synthetic teacher's whole pipeline as data, step by step: the same parameters
    and files the per-step rules get, from the same helpers."""
    here = {"study": wildcards.study, "teacher": wildcards.teacher}

    def at(pattern, **more):
        return expand(str(pattern), **here, **more)[0]

    def step(**more):
        return SimpleNamespace(**here, **more)

    def training(eid, seed):
        job = step(expansion=eid, seed=str(seed))
        return {
            "seed": seed,
            "attrs": student_attrs(job),
            "checkpoint": training_checkpoint(job),
            "label": training_label(job),
            "out": at(rules.train_students.output[0], expansion=eid, seed=seed),
            "benchmark": at(rules.train_students.benchmark, expansion=eid, seed=seed),
        }

    def recovery(eid, rid):
        job = step(expansion=eid, recovery=rid)
        return {
            "settings": recovery_settings(job),
            "labels": recovery_labels(job),
            "store": at(rules.recover.output.store, expansion=eid, recovery=rid),
            "summary": at(rules.recover.output.summary, expansion=eid, recovery=rid),
            "metrics": at(rules.evaluate.output[0], expansion=eid, recovery=rid),
            "benchmark": at(rules.recover.benchmark, expansion=eid, recovery=rid),
        }

    return {
        "spec": teacher_spec(step()),
        "teacher": at(rules.synthetic_teacher.output[0]),
        "design": query_design(step()),
        "queries": at(rules.queries.output[0]),
        "outputs": output_transform(step()),
        "activation": activation(step()),
        "expansions": [
            {
                "widths": student_widths(step(expansion=eid)),
                "training": [training(eid, seed) for seed in student_seeds(step())],
                "gather_attrs": gather_attrs(step(expansion=eid)),
                "students": at(rules.gather_students.output[0], expansion=eid),
                "recoveries": [recovery(eid, rid) for rid in RECOVERIES],
            }
            for eid in teacher_expansions(wildcards.teacher)
        ],
    }
