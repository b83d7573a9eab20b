"""Reliability of the study as a whole: a training job killed with SIGKILL resumes from its
checkpoint, --cores 1 and --cores 2 and two studies running at once give the same bits,
and a failed student is excluded, reported, and does not stop the study."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from study_runner import REPO, snakemake, snakemake_command, write_config

from expand_and_cluster.store import read_students, write_students

pytestmark = [
    pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake is not installed"),
    pytest.mark.filterwarnings("ignore:Object at .snakemake_timestamp:UserWarning"),
    pytest.mark.slow,
]


def without_key(value, key: str):
    """``value`` with every dict entry named ``key`` removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_key(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [without_key(v, key) for v in value]
    return value


def store_contents(store: Path) -> dict[str, object]:
    """Every file of a Zarr store: chunks as raw bytes, metadata parsed with the study's name
    taken out (it is the one attribute that differs between two studies' stores)."""
    contents = {}
    for path in sorted(store.rglob("*")):
        if not path.is_file() or path.name == ".snakemake_timestamp":
            continue
        name = str(path.relative_to(store))
        if path.name == "zarr.json":
            contents[name] = without_key(json.loads(path.read_text()), "study")
        else:
            contents[name] = path.read_bytes()
    return contents


def study_data(results: Path) -> dict[str, object]:
    """What a study computed: every Zarr store, query file, recovery summary, metrics file and
    table (not logs, timings or figures), keyed by its path inside the study's folder."""
    data = {}
    for path in sorted(results.rglob("*")):
        name = str(path.relative_to(results))
        if path.suffix == ".zarr" and path.is_dir():
            data[name] = store_contents(path)
        elif (path.suffix in (".npz", ".json") and ".zarr" not in name) or (
            path.parent.name == "tables" and not path.name.startswith("timings")
        ):
            data[name] = path.read_bytes()
    return data


def test_cores_and_concurrent_studies_give_identical_bits(test_study):
    """Two studies (a, b) running at once in the same folder with --cores 1 each compute
    exactly what the test study computed alone with --cores 2."""
    workdir, _ = test_study
    runs = [
        subprocess.Popen(
            snakemake_command(
                "--cores",
                "1",
                "--configfile",
                "config/test.yaml",
                "--config",
                f"study={name}",
                "--directory",
                str(workdir),
            ),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in ("a", "b")
    ]
    for run in runs:
        output = run.communicate(timeout=900)[0]
        assert run.returncode == 0, output
    reference = study_data(workdir / "results" / "test")
    assert sum(name.endswith(".zarr") for name in reference) >= 10
    for name in ("a", "b"):
        assert study_data(workdir / "results" / name) == reference, f"study {name} differs"


def test_different_seeds_give_different_students(test_study):
    workdir, _ = test_study
    students = workdir / "results" / "test" / "tanh-3-2-1-s0" / "students" / "x2"
    seed0, seed1 = (read_students(students / f"seed{k}.zarr") for k in (0, 1))
    assert not np.array_equal(seed0.weights[0], seed1.weights[0])
    assert not np.array_equal(seed0.loss, seed1.loss)


RESUME_STUDY = {
    "study": "resume",
    "teachers": {
        "synthetic": [{"activations": ["tanh"], "sizes": ["4,3,1"], "seeds": [1]}],
        "trained": [],
    },
    "queries": {"n": 1000},
    "students": {
        "expansions": [2],
        "seeds": [0],
        "per_job": 4,
        "train": {
            "dtype": "float64",
            "batch_size": 250,
            "max_epochs": 1000,
            "patience": 10_000,
            "log_every": 20,
            "checkpoint_every": 20,
        },
    },
}
RESUME_STORE = "results/resume/tanh-4-3-1-s1/students/x2/seed0.zarr"


def test_killed_training_job_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL to snakemake and its job at once (a node going down), then `snakemake --unlock`
    and `snakemake --rerun-incomplete`: the job goes on from its last checkpoint and ends
    with exactly the weights of an uninterrupted run (CPU, float64)."""
    config = write_config(tmp_path / "resume.yaml", RESUME_STUDY)
    args = ("--cores", "1", RESUME_STORE, "--configfile", str(config))
    reference, victim = tmp_path / "reference", tmp_path / "victim"
    snakemake(*args, "--directory", str(reference))

    run = subprocess.Popen(
        snakemake_command(*args, "--directory", str(victim)),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the job dies with it
    )
    checkpoints = victim / "results" / "resume" / "checkpoints"
    deadline = time.time() + 300
    while not any(checkpoints.rglob("*.pt")) and time.time() < deadline and run.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert any(checkpoints.rglob("*.pt")), "the job was killed before its first checkpoint"
    assert not (victim / RESUME_STORE).exists(), "the job finished before it was killed"

    snakemake("--unlock", *args, "--directory", str(victim))
    snakemake(*args, "--rerun-incomplete", "--directory", str(victim))
    log = (victim / "results/resume/logs/train_students/tanh-4-3-1-s1/x2/seed0.log").read_text()
    epoch = int(re.search(r"resumed from \S+ at epoch (\d+)", log).group(1))
    assert 0 < epoch < 1000
    assert store_contents(victim / RESUME_STORE) == store_contents(reference / RESUME_STORE)
    assert not any(checkpoints.rglob("*.pt")), "the checkpoint outlived the finished job"


def test_failed_student_is_excluded_and_reported(test_study, tmp_path):
    """A training job whose store marks one student failed (its loss went NaN): the study
    completes, the recovery clusters the others, and the tables say what happened."""
    workdir = tmp_path / "study"
    shutil.copytree(test_study[0], workdir, symlinks=True)
    seed_store = workdir / "results/test/tanh-3-2-1-s0/students/x2/seed1.zarr"
    s = read_students(seed_store)
    s.weights[0][0] = np.nan
    s.loss[0], s.failed[0] = np.nan, True
    write_students(
        seed_store, s.weights, s.biases, s.loss, s.failed, s.loss_history, s.history_epoch, s.attrs
    )
    # What the training job would have written; the gather (and all after it) must redo.
    snakemake(
        "--cores",
        "2",
        "--configfile",
        "config/test.yaml",
        "--directory",
        str(workdir),
        "--forcerun",
        "gather_students",
    )
    recovery = workdir / "results/test/tanh-3-2-1-s0/recovery/x2/g0.5-b60"
    metrics = json.loads((recovery / "metrics.json").read_text())
    assert metrics["students_failed"] == 1 and metrics["student_loss"][2] is None
    assert metrics["status"] != "failed"
    assert "excluded from clustering: [2]" in metrics["warnings"][0]
    summary = json.loads((recovery / "recovery.json").read_text())
    assert summary["diagnostics"]["excluded_students"] == [2]
    table = (workdir / "results/test/tables/recoveries.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| tanh-3-2-1-s0"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == "1"  # students_failed
    assert "excluded from clustering" in cells[-2]  # notes


def test_study_whose_every_student_diverges_finishes_with_failed_rows(tmp_path):
    """lr 1e30: every student of every job diverges. The study still finishes; the tables
    hold a `failed` row per recovery instead of the study stopping in the gather."""
    config = yaml.safe_load((REPO / "config/test.yaml").read_text())
    config["study"] = "diverged"
    config["teachers"]["trained"] = []
    config["students"]["train"]["lr"] = 1.0e30
    configfile = write_config(tmp_path / "diverged.yaml", config)
    snakemake("--cores", "2", "--configfile", str(configfile), "--directory", str(tmp_path))
    tables = tmp_path / "results/diverged/tables"
    rows = list(csv.DictReader((tables / "recoveries.csv").open()))
    assert [(r["teacher"], r["status"]) for r in rows] == [("tanh-3-2-1-s0", "failed")]
    assert rows[0]["students_failed"] == "4"
