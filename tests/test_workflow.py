"""The Snakemake study: configuration checks, the paper-scale DAG, an end-to-end run of
config/test.yaml in a temporary directory, the student store round trip, and the rerun
rules (a finished study re-runs nothing; a new gamma re-runs recovery, never training).
Kill-and-resume, determinism across core counts, concurrent studies and failed students
are in test_workflow_reliability.py."""

from __future__ import annotations

import itertools
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from study_runner import REPO, job_counts, snakemake, write_config

from expand_and_cluster.activations import ACTIVATIONS
from expand_and_cluster.store import gather_students, read_students, write_students

pytestmark = [
    pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake is not installed"),
    # Snakemake leaves a .snakemake_timestamp file inside directory() outputs (the stores).
    pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp:UserWarning"),
]


# -- configuration -------------------------------------------------------------------------

# A small trained-teacher group for the configuration checks.
DIGITS_GROUP = {"dataset": "digits", "activations": ["relu"], "hidden": ["3"]}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"students": {"per_jobs": 3}}, r"unknown config key\(s\) 'per_jobs' under students"),
        ({"studies": "x"}, r"unknown config key\(s\) 'studies' at the top level"),
        (
            {"students": {"train": {"max_epochs": "many"}}},
            r"students\.train\.max_epochs: 'many' is not of type 'integer'",
        ),
        (
            {"recovery": {"gammas": [1.5]}},
            r"recovery\.gammas\.0: 1\.5 is greater than the maximum of 1",
        ),
        (
            {"teachers": {"synthetic": [{"activations": ["relux"], "sizes": ["4,3,1"]}]}},
            r"teachers\.synthetic\.0\.activations\.0: 'relux' is not one of \['relu'",
        ),
        (
            {"recovery": {"gammas": [0]}},
            r"recovery\.gammas\.0: 0 is less than or equal to the minimum of 0",
        ),
        (
            {"teachers": {"synthetic": [{"activations": ["tanh"], "sizes": ["4;3;1"]}]}},
            r"teachers\.synthetic\.0\.sizes\.0: '4;3;1' does not match",
        ),
        (
            {"teachers": {"synthetic": [{"activations": ["tanh"], "sizes": ["4,-3,1"]}]}},
            r"teachers\.synthetic\.0\.sizes\.0: '4,-3,1' does not match",
        ),
        (
            {"students": {"per_job": -2}},
            r"students\.per_job: -2 is less than the minimum of 1",
        ),
        (
            {"students": {"expansions": ["four"]}},
            r"students\.expansions\.0: 'four' is not of type 'number'",
        ),
        # NaN passes every numeric bound of a JSON schema: refused before the schema runs.
        (
            {"students": {"train": {"lr": float("nan")}}},
            r"config key students\.train\.lr is nan; it must be a finite number",
        ),
        (
            {"evaluation": {"exact_angle_deg": float("nan")}},
            r"config key evaluation\.exact_angle_deg is nan",
        ),
        ({"students": {"expansions": [float("inf")]}}, r"students\.expansions\.0 is inf"),
        # Two values, one id: their results would share a folder.
        (
            {"students": {"expansions": [2, 2.000000000000001]}},
            r"students\.expansions: 2 and 2\.000000000000001 both get the id 'x2'",
        ),
        (
            {"recovery": {"gammas": [0.5, 0.5000000000000001]}},
            r"recovery\.gammas / recovery\.betas_deg: .* both get the id 'g0\.5-b60'",
        ),
        # A bad output transform, and two spellings of one: one line each, before any job.
        (
            {
                "teachers": {
                    "synthetic": [
                        {"activations": ["tanh"], "sizes": ["4,3,1"], "outputs": ["noise:-1"]}
                    ]
                }
            },
            r"teachers\.synthetic\.outputs: output transform 'noise:-1': the noise level S "
            r"must be a number > 0; accepted: none, noise:S, digits:K, float16, bfloat16",
        ),
        (
            {
                "teachers": {
                    "synthetic": [
                        {
                            "activations": ["tanh"],
                            "sizes": ["4,3,1"],
                            "outputs": ["noise:0.1", "noise:1e-1"],
                        }
                    ]
                }
            },
            r"teachers\.synthetic\.outputs: 'noise:0\.1' and 'noise:1e-1' both get the id "
            r"'-onoise0\.1'",
        ),
        # A trained group's own students: their train keys are students.train's.
        (
            {"teachers": {"trained": [{**DIGITS_GROUP, "students": {"train": {"max_epoch": 5}}}]}},
            r"unknown config key\(s\) 'max_epoch' under teachers\.trained\[0\]\.students\.train",
        ),
        (
            {"teachers": {"trained": [{**DIGITS_GROUP, "students": {"seeds": [0], "per_job": 2}}]}},
            r"N = teachers\.trained\[0\]\.students\.seeds x .*gamma \* N",
        ),
        # A trained group's own recovery settings: the recovery section's keys, but not the
        # gammas and betas that name every teacher's recoveries; values checked as there.
        (
            {"teachers": {"trained": [{**DIGITS_GROUP, "recovery": {"gammas": [0.5]}}]}},
            r"unknown config key\(s\) 'gammas' under teachers\.trained\[0\]\.recovery; "
            r"allowed keys: .*between_layers",
        ),
        (
            {
                "teachers": {
                    "trained": [{**DIGITS_GROUP, "recovery": {"retrain": {"max_epoch": 5}}}]
                }
            },
            r"unknown config key\(s\) 'max_epoch' under "
            r"teachers\.trained\[0\]\.recovery\.retrain",
        ),
        (
            {"teachers": {"trained": [{**DIGITS_GROUP, "recovery": {"polish_iterations": -1}}]}},
            r"teachers\.trained\[0\]\.recovery .*polish_iterations",
        ),
        # Sizes that cannot fit: refused from the sizes alone, with the figure and the knob.
        (
            {"teachers": {"synthetic": [{"activations": ["tanh"], "sizes": ["3,3000000000,1"]}]}},
            r"teacher tanh-3-3000000000-1-s0 needs .* GB of memory",
        ),
    ],
)
def test_invalid_config_stops_before_any_job_and_names_the_key(tmp_path, override, expected):
    bad = write_config(tmp_path / "bad.yaml", override)
    result = snakemake("-n", "--configfile", str(bad), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid configuration" in output
    assert re.search(expected, output), output
    assert not (tmp_path / "results").exists()


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    # Nested aliases: 9 levels of 10 copies would be a billion values once walked.
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    bad = tmp_path / "bomb.yaml"
    bad.write_text("\n".join(lines) + "\n")
    result = snakemake("-n", "--configfile", str(bad), "--directory", str(tmp_path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "repeats another part of the config (a YAML alias)" in output, output[-2000:]
    assert not (tmp_path / "results").exists()


def test_too_few_students_for_gamma_is_a_config_error(tmp_path):
    bad = write_config(
        tmp_path / "bad.yaml",
        {"students": {"seeds": [0], "per_job": 2}, "recovery": {"gammas": [0.5]}},
    )
    result = snakemake("-n", "--configfile", str(bad), "--directory", str(tmp_path), check=False)
    assert result.returncode != 0
    assert "gamma * N" in result.stdout + result.stderr


def test_schema_lists_exactly_the_library_activations():
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert schema["$defs"]["activation"]["enum"] == list(ACTIVATIONS)


def test_config_files_are_complete_and_valid(tmp_path):
    """Every shipped config spells out every section (a --configfile is merged over
    config.yaml, so a missing section would silently come from the default study)."""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    for name in (
        "config.yaml",
        "test.yaml",
        "paper.yaml",
        "suite.yaml",
        "mnist.yaml",
        "robustness.yaml",
    ):
        data = yaml.safe_load((REPO / "config" / name).read_text())
        assert set(data) == set(schema["properties"]), name


# -- the paper-scale DAG ---------------------------------------------------------------------


def test_paper_config_builds_its_dag(tmp_path):
    result = snakemake(
        "-n", "--quiet", "rules", "--configfile", "config/paper.yaml", "--directory", str(tmp_path)
    )
    counts = job_counts(result.stdout + result.stderr)
    assert counts["synthetic_teacher"] == 150
    # The MNIST experiments: 10 teachers (and query designs) at expansions 1/2/4/8, the deep
    # teacher at expansion 3 only; a training job per seed of the group's own students:
    # 4 seeds, tanh 2, the deep teacher 2 (N = 50), the follow-up's 3 (N = 30).
    assert counts["trained_teacher"] == 11
    assert counts["train_students"] == 150 * 4 * 4 + (5 * 4 + 4 * 3 + 2) * 4 + 1 * 2
    recoveries = 150 * 4 + 10 * 4 + 1
    assert counts["recover"] == counts["evaluate"] == counts["recovery_figures"] == recoveries
    assert counts["tables"] == 1


def test_suite_config_runs_its_teachers_in_groups_of_five(tmp_path):
    """config/suite.yaml: jobs.teachers_per_job 5 puts the 150 teachers in 30 jobs (a rule
    each), every teacher in exactly one, each job's benchmark file named by its teachers."""
    result = snakemake("-n", "--configfile", "config/suite.yaml", "--directory", str(tmp_path))
    counts = job_counts(result.stdout + result.stderr)
    assert counts == {
        **{f"solve_teacher_{k}": 1 for k in range(30)},
        "tables": 1,
        "study_figures": 1,
        "all": 1,
    }
    marker = "benchmark: results/suite/benchmarks/solve_teacher/"
    groups = [
        line.strip().removeprefix(marker).removesuffix(".tsv").split("+")
        for line in result.stdout.splitlines()
        if line.strip().startswith(marker)
    ]
    teachers = [t for group in groups for t in group]
    assert len(groups) == 30 and all(len(group) == 5 for group in groups)
    assert len(set(teachers)) == len(teachers) == 150
    assert {t.split("-")[0] for t in teachers} == {"tanh", "sigmoid", "relu", "softplus", "g"}


def test_robustness_config_fans_out_over_the_output_transforms(tmp_path):
    """config/robustness.yaml: 3 activations x 2 seeds x 15 output transforms, one job per
    teacher, and the robustness table and figure (which no other study asks for)."""
    result = snakemake(
        "-n", "--quiet", "rules", "--configfile", "config/robustness.yaml", "--directory",
        str(tmp_path),
    )  # fmt: skip
    counts = job_counts(result.stdout + result.stderr)
    assert counts == {
        "solve_teacher": 90,
        "robustness": 1,
        "tables": 1,
        "study_figures": 1,
        "all": 1,
    }


# -- the student store -----------------------------------------------------------------------


def _fake_students(rng, n=3, widths=(4, 6, 2)):
    weights = [rng.standard_normal((n, o, i)) for i, o in itertools.pairwise(widths)]
    biases = [rng.standard_normal((n, o)) for o in widths[1:]]
    return weights, biases


def test_student_store_round_trip_and_gather(tmp_path):
    rng = np.random.default_rng(0)
    paths, parts = [], []
    for seed in (3, 5):
        weights, biases = _fake_students(rng)
        loss = rng.random(3)
        failed = np.array([False, True, False])
        loss[1] = np.nan
        history = rng.random((3, 4))
        path = tmp_path / f"seed{seed}.zarr"
        attrs = {
            "seed": seed,
            "activation": "tanh",
            "config_hash": "abc",
            "train_settings": {"lr": 0.001},
        }
        write_students(path, weights, biases, loss, failed, history, np.arange(1, 5) * 10, attrs)
        back = read_students(path)
        for a, b in zip(weights + biases, back.weights + back.biases, strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(back.loss, loss)
        np.testing.assert_array_equal(back.failed, failed)
        np.testing.assert_array_equal(back.loss_history, history)
        assert back.attrs["seed"] == seed and back.attrs["train_settings"] == {"lr": 0.001}
        paths.append(path)
        parts.append((weights, biases))
    gathered = tmp_path / "gathered.zarr"
    gather_students(paths, [3, 5], gathered, {"n_seeds": 2})
    pooled = read_students(gathered)
    assert pooled.n_students == 6
    np.testing.assert_array_equal(pooled.seed, [3, 3, 3, 5, 5, 5])
    for layer in range(2):
        np.testing.assert_array_equal(
            pooled.weights[layer], np.concatenate([parts[0][0][layer], parts[1][0][layer]])
        )
    assert pooled.attrs["seeds"] == [3, 5] and pooled.attrs["n_seeds"] == 2


# -- end to end ------------------------------------------------------------------------------


@pytest.mark.slow
def test_test_study_runs_every_rule(test_study):
    workdir, result = test_study
    done = job_counts(result.stdout + result.stderr)
    expected_rules = {
        "synthetic_teacher",
        "trained_teacher",
        "queries",
        "train_students",
        "gather_students",
        "recover",
        "evaluate",
        "recovery_figures",
        "tables",
        "study_figures",
    }
    assert expected_rules <= set(done), done
    out = workdir / "results" / "test"
    csv = (out / "tables" / "recoveries.csv").read_text().splitlines()
    assert csv[0].startswith("teacher,activation,sizes,expansion,N,students_failed,gamma,beta_deg")
    assert len(csv) == 1 + 2  # 2 teachers x 1 expansion x 1 gamma/beta
    for row in csv[1:]:
        assert row.split(",")[-1] in ("exact", "approximate", "inexact", "failed")
    for figure in ("identifiability", "expansion_control"):
        assert (out / "figures" / f"{figure}.png").stat().st_size > 0
    recovery = out / "tanh-3-2-1-s0" / "recovery" / "x2" / "g0.5-b60"
    for kind in ("similarity", "dendrogram", "cluster_angles", "alignment"):
        assert (recovery / "figures" / f"{kind}.png").stat().st_size > 0
    metrics = json.loads((recovery / "metrics.json").read_text())
    assert metrics["n_students"] == 4 and metrics["teacher_widths"] == [2]
    log = (out / "logs" / "train_students" / "tanh-3-2-1-s0" / "x2" / "seed0.log").read_text()
    assert "epoch 30, loss median" in log  # training progress is in the job's log


@pytest.mark.slow
def test_gathered_store_pools_the_seed_jobs(test_study):
    workdir, _ = test_study
    students = workdir / "results" / "test" / "tanh-3-2-1-s0" / "students"
    pooled = read_students(students / "x2.zarr")
    seeds = [read_students(students / "x2" / f"seed{k}.zarr") for k in (0, 1)]
    assert pooled.n_students == 4
    np.testing.assert_array_equal(pooled.seed, [0, 0, 1, 1])
    np.testing.assert_array_equal(pooled.weights[0], np.concatenate([s.weights[0] for s in seeds]))
    attrs = seeds[1].attrs
    assert (
        attrs["seed"] == 1
        and attrs["teacher"] == "tanh-3-2-1-s0"
        and attrs["student_widths"] == [4]
    )
    assert len(attrs["config_hash"]) == 16 and "torch" in attrs["provenance"]


def modification_times(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.slow
def test_finished_study_reruns_nothing_and_touches_no_file(test_study):
    workdir, _ = test_study
    results = workdir / "results"
    before = modification_times(results)
    result = snakemake(
        "--cores", "2", "--configfile", "config/test.yaml", "--directory", str(workdir)
    )
    assert "Nothing to be done" in result.stdout + result.stderr
    assert modification_times(results) == before


@pytest.mark.slow
def test_tables_are_deterministic(test_study):
    """Re-evaluating every recovery (and everything downstream) gives the same bytes."""
    workdir, _ = test_study
    tables = workdir / "results" / "test" / "tables"
    before = {p.name: p.read_bytes() for p in tables.glob("*") if not p.name.startswith("timings")}
    snakemake(
        "--cores",
        "1",
        "--configfile",
        "config/test.yaml",
        "--directory",
        str(workdir),
        "--forcerun",
        "evaluate",
    )
    after = {p.name: p.read_bytes() for p in tables.glob("*") if not p.name.startswith("timings")}
    assert before == after


@pytest.mark.slow
def test_new_gamma_reruns_recovery_but_not_training(test_study, tmp_path):
    workdir, _ = test_study
    override = write_config(
        tmp_path / "gamma.yaml", {"recovery": {"gammas": [0.75], "betas_deg": [45]}}
    )
    result = snakemake(
        "-n", "--configfile", "config/test.yaml", str(override), "--directory", str(workdir)
    )
    counts = job_counts(result.stdout + result.stderr)
    assert counts.get("recover") == 2 and counts.get("evaluate") == 2
    for upstream in (
        "synthetic_teacher",
        "trained_teacher",
        "queries",
        "train_students",
        "gather_students",
    ):
        assert upstream not in counts, counts
    assert "g0.75-b45" in result.stdout + result.stderr


@pytest.mark.slow
def test_new_expansion_trains_only_its_students(test_study, tmp_path):
    """Adding an expansion leaves the teachers, their queries and the other expansion's
    students as they are (a teacher's spec lists its expansions, but they are not part of
    what the teacher is)."""
    workdir, _ = test_study
    override = write_config(tmp_path / "x4.yaml", {"students": {"expansions": [2, 4]}})
    result = snakemake(
        "-n", "--configfile", "config/test.yaml", str(override), "--directory", str(workdir)
    )
    counts = job_counts(result.stdout + result.stderr)
    # 2 teachers x 2 seeds at the new expansion, nothing at expansion 2.
    assert counts.get("train_students") == 4 and counts.get("recover") == 2, counts
    assert not {"synthetic_teacher", "trained_teacher", "queries"} & set(counts), counts


@pytest.mark.slow
@pytest.mark.parametrize(
    "changed",
    [
        {"finetune": {"max_iterations": 7}},
        # Every key of the section reaches the recovery (these two once did not).
        {"polish_iterations": 0},
        {"between_layers": "retrain"},
    ],
)
def test_changed_recovery_settings_rerun_recovery_but_not_training(test_study, tmp_path, changed):
    workdir, _ = test_study
    override = write_config(tmp_path / "recovery.yaml", {"recovery": changed})
    result = snakemake(
        "-n", "--configfile", "config/test.yaml", str(override), "--directory", str(workdir)
    )
    output = result.stdout + result.stderr
    counts = job_counts(output)
    assert counts.get("recover") == 2
    assert "train_students" not in counts and "gather_students" not in counts
    assert "params changed" in output.lower() or "params" in output.lower()


@pytest.mark.slow
def test_trained_group_with_its_own_students_reruns_only_its_teacher(test_study, tmp_path):
    """teachers.trained[].students: the digits group trains N = 1 seed x 3 students for 7
    epochs; only its teacher's training and what follows re-run, with those settings, and
    the synthetic teacher (the students section's) is left as it was."""
    workdir = tmp_path / "study"
    shutil.copytree(test_study[0], workdir)
    group = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["teachers"]["trained"][0]
    own = {"seeds": [0], "per_job": 3, "train": {"max_epochs": 7}}
    override = write_config(
        tmp_path / "own.yaml", {"teachers": {"trained": [{**group, "students": own}]}}
    )
    study = workdir / "results" / "test"
    synthetic = study / "tanh-3-2-1-s0"
    before = modification_times(synthetic)
    result = snakemake(
        "--cores", "2", "--configfile", "config/test.yaml", str(override), "-d", str(workdir)
    )
    counts = job_counts(result.stdout + result.stderr)
    assert counts.get("train_students") == 1 and counts.get("recover") == 1, counts
    assert "trained_teacher" not in counts and "synthetic_teacher" not in counts, counts
    assert modification_times(synthetic) == before
    students = study / "digits-relu-3-train-s0" / "students"
    pooled = read_students(students / "x2.zarr")
    assert pooled.n_students == 3 and pooled.attrs["n_seeds"] == 1
    attrs = read_students(students / "x2" / "seed0.zarr").attrs
    assert attrs["train_settings"]["max_epochs"] == 7 and attrs["epochs"] <= 7
    assert attrs["train_settings"]["lr"] == 0.01  # the students section's, not replaced
    metrics = study / "digits-relu-3-train-s0" / "recovery" / "x2" / "g0.5-b60" / "metrics.json"
    assert json.loads(metrics.read_text())["n_students"] == 3


@pytest.mark.slow
def test_trained_group_with_its_own_recovery_settings_reruns_only_its_recovery(
    test_study, tmp_path
):
    """teachers.trained[].recovery: the digits group recovers with a constant-input mask
    and no bootstrap of its neurons; only its recovery and what follows re-run, with those
    settings, and the synthetic teacher (the recovery section's) is left as it was."""
    workdir = tmp_path / "study"
    shutil.copytree(test_study[0], workdir)
    group = yaml.safe_load((REPO / "config" / "test.yaml").read_text())["teachers"]["trained"][0]
    own = {"input_mask": "constant", "confidence_resamples": 0}
    override = write_config(
        tmp_path / "own.yaml", {"teachers": {"trained": [{**group, "recovery": own}]}}
    )
    study = workdir / "results" / "test"
    synthetic = study / "tanh-3-2-1-s0"
    recovery = study / "digits-relu-3-train-s0" / "recovery" / "x2" / "g0.5-b60"
    before = json.loads((recovery / "recovery.json").read_text())["diagnostics"]
    synthetic_times = modification_times(synthetic)
    result = snakemake(
        "--cores", "2", "--configfile", "config/test.yaml", str(override), "-d", str(workdir)
    )
    counts = job_counts(result.stdout + result.stderr)
    assert counts.get("recover") == 1, counts
    assert not {"train_students", "gather_students", "trained_teacher"} & set(counts), counts
    assert modification_times(synthetic) == synthetic_times
    after = json.loads((recovery / "recovery.json").read_text())["diagnostics"]
    assert before["input_mask"]["method"] == "none" and after["input_mask"]["method"] == "constant"
    # No bootstrap: no neuron's stability is measured.
    stability = {
        when: [n["stability"] for layer in d["layers"] for n in layer["neurons"]]
        for when, d in (("before", before), ("after", after))
    }
    assert stability["before"] and None not in stability["before"]
    assert stability["after"] and set(stability["after"]) == {None}


@pytest.mark.slow
def test_one_job_per_teacher_writes_the_same_results(test_study, tmp_path):
    """jobs.one_per_teacher runs synthetic teachers' steps in one job, with the per-step
    rules' own code: the same students, recovery and metrics as one job per step, also for
    a teacher that runs after another in a shared job (jobs.teachers_per_job: g-3-2-1-s0,
    then tanh-3-2-1-s0); the per-recovery figures can be left out."""
    workdir, _ = test_study
    synthetic = {"activations": ["g", "tanh"], "sizes": ["3,2,1"], "seeds": [0]}
    override = write_config(
        tmp_path / "per_teacher.yaml",
        {
            "teachers": {"synthetic": [{**synthetic, "inputs": "gaussian"}], "trained": []},
            "jobs": {"one_per_teacher": True, "teachers_per_job": 2},
            "figures": {"per_recovery": False},
        },
    )
    alone = tmp_path / "alone"
    result = snakemake(
        "--cores", "2", "--configfile", "config/test.yaml", str(override), "--directory", str(alone)
    )
    counts = job_counts(result.stdout + result.stderr)
    assert counts.get("solve_teacher_0") == 1 and "recovery_figures" not in counts, counts
    assert "g-3-2-1-s0" in (alone / "results" / "test" / "tables" / "recoveries.csv").read_text()
    assert not {"synthetic_teacher", "train_students", "recover", "evaluate"} & set(counts)
    teacher = "tanh-3-2-1-s0"
    ours, theirs = (w / "results" / "test" / teacher for w in (alone, workdir))
    for path in ("students/x2/seed1.zarr", "students/x2.zarr"):
        a, b = read_students(ours / path), read_students(theirs / path)
        for layer in range(len(a.weights)):
            np.testing.assert_array_equal(a.weights[layer], b.weights[layer])
        np.testing.assert_array_equal(a.loss, b.loss)
    recovery = Path("recovery/x2/g0.5-b60/metrics.json")
    assert json.loads((ours / recovery).read_text()) == json.loads((theirs / recovery).read_text())
    assert not (ours / recovery.parent / "figures").exists()
    tables = alone / "results" / "test" / "tables"
    row = next(r for r in (tables / "recoveries.csv").read_text().splitlines() if teacher in r)
    assert row in (workdir / "results" / "test" / "tables" / "recoveries.csv").read_text()
    timing = next(r for r in (tables / "timings.csv").read_text().splitlines() if teacher in r)
    assert timing.startswith(f"{teacher},x2,2,") and float(timing.split(",")[-1]) > 0


@pytest.mark.slow
def test_cli_and_study_write_one_metrics_schema(test_study, tmp_path):
    """`ecluster recover` and the study's recover/evaluate steps write summaries and metrics
    with the same keys, so the study's tables take a recovery made either way."""
    from expand_and_cluster import tables
    from expand_and_cluster.cli import main

    workdir, _ = test_study
    recovery = workdir / "results" / "test" / "tanh-3-2-1-s0" / "recovery" / "x2" / "g0.5-b60"
    teacher, out = tmp_path / "teacher.zarr", tmp_path / "run"
    main(["teacher", "--sizes", "3,2,1", "--activation", "tanh", "--out", str(teacher)])
    args = ["--queries", "gaussian:1000", "--students", "4", "--max-epochs", "300"]
    assert main(["recover", "--teacher", str(teacher), *args, "--out", str(out)]) == 0
    for name in ("recovery.json", "metrics.json"):
        study = json.loads((recovery / name).read_text())
        cli = json.loads((out / name).read_text())
        assert set(cli) == set(study), name
    cli_metrics = json.loads((out / "metrics.json").read_text())
    study_metrics = json.loads((recovery / "metrics.json").read_text())
    rows = tables.recovery_rows([study_metrics, cli_metrics])
    cli_row = next(r for r in rows if r["teacher"] == str(teacher))
    assert cli_row["N"] == "4" and cli_row["teacher_widths"] == "2"
    assert cli_row["status"] in tables.STATUSES
    assert tables.summary_rows([cli_metrics])[0]["problems"] == "1"


@pytest.mark.slow
def test_output_transforms_reach_the_students_in_both_job_modes(tmp_path):
    """teachers.synthetic.outputs: the exact teacher keeps its id and its queries are the
    teacher's outputs bit for bit (as before the key existed); a transformed teacher gets
    ``-o<spec>`` in its id, the same inputs and the transformed outputs, whether its steps
    are jobs of their own or one job per teacher; its metrics carry the transform."""
    from expand_and_cluster.data import query_inputs
    from expand_and_cluster.outputs import transform_outputs
    from expand_and_cluster.store import network_attrs, read_network, read_queries

    override = {
        "teachers": {
            "synthetic": [
                {"activations": ["tanh"], "sizes": ["3,2,1"], "outputs": ["none", "float16"]}
            ],
            "trained": [],
        }
    }
    config = write_config(tmp_path / "outputs.yaml", override)
    exact, rounded = "tanh-3-2-1-s0", "tanh-3-2-1-ofloat16-s0"
    per_step = tmp_path / "per_step"
    targets = [f"results/test/{t}/queries.npz" for t in (exact, rounded)]
    snakemake(
        "--cores", "2", *targets, "--configfile", "config/test.yaml", str(config),
        "--directory", str(per_step),
    )  # fmt: skip
    results = per_step / "results" / "test"
    teacher = read_network(results / exact / "teacher.zarr")
    assert "outputs" not in network_attrs(results / exact / "teacher.zarr")["teacher"]
    design = {"distribution": "gaussian", "n": 300, "seed": 0}
    x, y = read_queries(results / exact / "queries.npz")
    np.testing.assert_array_equal(x, query_inputs(design, 3))
    np.testing.assert_array_equal(y, teacher(x))
    x16, y16 = read_queries(results / rounded / "queries.npz")
    np.testing.assert_array_equal(x16, x)
    np.testing.assert_array_equal(y16, transform_outputs(teacher(x), "float16", seed=0))
    assert not np.array_equal(y16, y)

    per_teacher = write_config(tmp_path / "per_teacher.yaml", {"jobs": {"one_per_teacher": True}})
    alone = tmp_path / "alone"
    snakemake(
        "--cores", "2", f"results/test/{rounded}/recovery/x2/g0.5-b60/metrics.json",
        "--configfile", "config/test.yaml", str(config), str(per_teacher),
        "--directory", str(alone),
    )  # fmt: skip
    solved = alone / "results" / "test" / rounded
    np.testing.assert_array_equal(read_queries(solved / "queries.npz")[1], y16)
    metrics = json.loads((solved / "recovery" / "x2" / "g0.5-b60" / "metrics.json").read_text())
    assert metrics["teacher_outputs"] == "float16"
    assert metrics["teacher_output_precision"]["format"] == "float16"
    assert 1e-5 < metrics["teacher_output_error"] < 2.0**-11
