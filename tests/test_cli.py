"""The ecluster command: round trip, and one clear error (exit 2, no traceback) per bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from expand_and_cluster.cli import main
from expand_and_cluster.network import MLP
from expand_and_cluster.store import read_network, write_network


class Result:
    def __init__(self, returncode, stderr):
        self.returncode, self.stderr = returncode, stderr


@pytest.fixture
def ecluster(capsys):
    """Run the command in-process (a subprocess per case would mostly time imports)."""

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        return Result(code, capsys.readouterr().err)

    return run


def test_user_error_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "expand_and_cluster.cli",
            "teacher",
            "--sizes",
            "4,3,1",
            "--activation",
            "swish",
            "--out",
            str(tmp_path / "t.zarr"),
        ],
        capture_output=True,
        text=True,
    )
    assert_user_error(result, "swish")


def test_teacher_then_recover_round_trip(tmp_path):
    teacher = tmp_path / "teacher.zarr"
    assert (
        main(
            [
                "teacher",
                "--sizes",
                "4,3,1",
                "--activation",
                "tanh",
                "--seed",
                "3",
                "--out",
                str(teacher),
            ]
        )
        == 0
    )
    out = tmp_path / "run"
    code = main(
        [
            "recover",
            "--teacher",
            str(teacher),
            "--queries",
            "gaussian:3000",
            "--max-epochs",
            "800",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["teacher_widths"] == [3] and metrics["widths"] == [3]
    assert all(a < 1.0 for a in metrics["angles_deg"][0])
    assert metrics["status"] == "exact" and metrics["student_widths"] == [12]
    assert read_network(out / "network.zarr").hidden_widths == [3]
    assert read_network(out / "recovery.zarr").hidden_widths == [3]
    summary = json.loads((out / "recovery.json").read_text())
    clusters = summary["diagnostics"]["layers"][0]["clusters"]
    assert sum(c["members"] for c in clusters) == 10 * 12  # every student neuron reported


@pytest.fixture(scope="module")
def teacher_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("t") / "teacher.zarr"
    assert main(["teacher", "--sizes", "4,3,1", "--activation", "tanh", "--out", str(path)]) == 0
    return path


def assert_user_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("ecluster: error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]


def test_unknown_activation(ecluster, tmp_path):
    assert_user_error(
        ecluster(
            "teacher", "--sizes", "4,3,1", "--activation", "swish", "--out", tmp_path / "t.zarr"
        ),
        "swish",
        "relu, leaky_relu",
    )


def test_bad_sizes(ecluster, tmp_path):
    assert_user_error(
        ecluster(
            "teacher", "--sizes", "4,-3,1", "--activation", "tanh", "--out", tmp_path / "t.zarr"
        ),
        "positive",
    )


def test_mismatched_student_widths(ecluster, teacher_store, tmp_path):
    assert_user_error(
        ecluster(
            "recover",
            "--teacher",
            teacher_store,
            "--student-widths",
            "12,12",
            "--out",
            tmp_path / "o",
        ),
        "hidden layers",
    )


def test_gamma_times_n_below_two(ecluster, teacher_store, tmp_path):
    assert_user_error(
        ecluster("recover", "--teacher", teacher_store, "--gamma", "0.1", "--out", tmp_path / "o"),
        "gamma * N",
    )


@pytest.mark.filterwarnings("ignore:overflow encountered in matmul:RuntimeWarning")
def test_nan_teacher_outputs(ecluster, tmp_path):
    # Finite weights whose outputs overflow to inf - inf = NaN (the overflow is the point).
    huge = MLP(
        [np.full((2, 2), 1e200), np.array([[1e200, -1e200]])], [np.zeros(2), np.zeros(1)], "relu"
    )
    write_network(tmp_path / "huge.zarr", huge)
    assert_user_error(
        ecluster("recover", "--teacher", tmp_path / "huge.zarr", "--out", tmp_path / "o"),
        "NaN or inf",
    )


def test_missing_and_malformed_teacher_store(ecluster, teacher_store, tmp_path):
    assert_user_error(
        ecluster("recover", "--teacher", tmp_path / "none.zarr", "--out", tmp_path / "o"),
        "does not exist",
    )
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "zarr.json").write_text("{not json")
    assert_user_error(
        ecluster("recover", "--teacher", tmp_path / "junk.zarr", "--out", tmp_path / "o"),
        "junk.zarr",
    )
    # A store with a layer's weights removed.
    import shutil

    broken = tmp_path / "broken.zarr"
    shutil.copytree(teacher_store, broken)
    shutil.rmtree(broken / "layer1" / "weight")
    assert_user_error(
        ecluster("recover", "--teacher", broken, "--out", tmp_path / "o"), "broken.zarr", "weight"
    )


def test_corrupted_chunk_is_refused(ecluster, teacher_store, tmp_path):
    import shutil

    broken = tmp_path / "corrupt.zarr"
    shutil.copytree(teacher_store, broken)
    chunk = next(
        p
        for p in (broken / "layer0" / "weight").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    )
    chunk.write_bytes(b"\x00garbage" * 3)
    assert_user_error(
        ecluster("recover", "--teacher", broken, "--out", tmp_path / "o"), "corrupt.zarr"
    )


def test_output_directory_with_other_content(ecluster, teacher_store, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert_user_error(ecluster("recover", "--teacher", teacher_store, "--out", out), "not empty")
    assert (out / "notes.txt").read_text() == "keep me"


def test_bad_query_spec(ecluster, teacher_store, tmp_path):
    assert_user_error(
        ecluster(
            "recover", "--teacher", teacher_store, "--queries", "cauchy:10", "--out", tmp_path / "o"
        ),
        "gaussian:20000",
    )


def test_teacher_outputs_are_transformed_before_the_students_and_recorded(ecluster, tmp_path):
    """--teacher-outputs degrades the outputs of a model or of a pairs file before the
    students see them; metrics.json (and recovery.json's labels) record the transform, the
    error it applied and the precision read back from the values."""
    teacher = tmp_path / "teacher.zarr"
    assert main(["teacher", "--sizes", "3,2,1", "--activation", "tanh", "--out", str(teacher)]) == 0
    quick = ["--students", "4", "--max-epochs", "60", "--finetune-max-iterations", "20"]
    model = tmp_path / "model"
    result = ecluster(
        "recover", "--teacher", teacher, "--queries", "gaussian:400", *quick,
        "--teacher-outputs", "digits:3", "--out", model,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((model / "metrics.json").read_text())
    assert metrics["teacher_outputs"] == "digits:3"
    assert metrics["teacher_output_precision"]["format"] == "digits:3"
    # Rounding to 3 digits: about 1e-3 of the outputs' spread, far from float64's 1e-16.
    assert 1e-4 < metrics["teacher_output_error"] < 1e-2
    assert json.loads((model / "recovery.json").read_text())["teacher_outputs"] == "digits:3"

    net = read_network(teacher)
    x = np.random.default_rng(0).standard_normal((500, 3))
    np.savez(tmp_path / "pairs.npz", x=x, y=net(x))
    pairs = tmp_path / "pairs"
    result = ecluster(
        "recover", "--pairs", tmp_path / "pairs.npz", "--activation", "tanh",
        "--student-widths", "8", *quick, "--teacher-outputs", "float16", "--out", pairs,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((pairs / "metrics.json").read_text())
    assert metrics["teacher_outputs"] == "float16" and metrics["status"] == "unverified"
    assert metrics["teacher_output_precision"]["format"] == "float16"
    assert 1e-5 < metrics["teacher_output_error"] < 2.0**-11


def test_bad_teacher_outputs_spec(ecluster, teacher_store, tmp_path):
    out = tmp_path / "o"
    assert_user_error(
        ecluster(
            "recover", "--teacher", teacher_store, "--teacher-outputs", "digits:20", "--out", out
        ),
        "K must be an integer from 1 to 15",
        "accepted: none, noise:S",
    )
    assert not out.exists()
