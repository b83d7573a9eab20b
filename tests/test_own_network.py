"""The user's own network: every bad input is one line (exit 2, nothing run from the file, no
output left), the output folder is claimed, locked and resumable, auto widths, standardising,
and a torch Module as the teacher of ``recover``."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper
from test_sources import FAST, write_keras_h5

from expand_and_cluster import cli
from expand_and_cluster.cli import main
from expand_and_cluster.export import to_torch
from expand_and_cluster.reconstruct import RecoverySettings, recover
from expand_and_cluster.store import read_network, write_network
from expand_and_cluster.students import TrainSettings
from expand_and_cluster.teachers import synthetic_teacher

TEACHER = synthetic_teacher("4,3,1", "tanh", 0)


def run(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


def refused(capsys, tmp_path, *args, fragments=()):
    out = tmp_path / "out"
    code, err = run(capsys, "recover", *args, "--out", out)
    assert code == 2, err
    assert err[-1].startswith("ecluster: error:") and "Traceback" not in "\n".join(err)
    for fragment in fragments:
        assert fragment in err[-1], err[-1]
    assert not out.exists() and not (tmp_path / ".out.partial").exists()  # nothing half-written
    return err[-1]


# -- bad model files -----------------------------------------------------------------------


def _state(tmp_path, module, name="m.pt"):
    torch.save(module.state_dict(), tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize(
    ("module", "fragment"),
    [
        (torch.nn.Sequential(torch.nn.Conv1d(1, 3, 3), torch.nn.Tanh()), "convolution"),
        (
            torch.nn.Sequential(
                torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 1)
            ),
            "batch norm",
        ),
        (
            torch.nn.Sequential(
                torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 1)
            ),
            "norm layer",
        ),
        (torch.nn.MultiheadAttention(4, 2), "attention"),
    ],
    ids=["conv", "batchnorm", "layernorm", "attention"],
)
def test_layers_that_are_not_linear_are_named(capsys, tmp_path, module, fragment):
    path = _state(tmp_path, module)
    message = refused(
        capsys, tmp_path, "--teacher", path, "--activation", "tanh", fragments=[fragment]
    )
    assert "Linear" in message  # what is supported


def test_pickle_and_full_module_files_are_never_unpickled(capsys, tmp_path):
    marker = tmp_path / "ran"

    class Bomb:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "bomb.pt").write_bytes(pickle.dumps({"0.weight": Bomb()}))
    refused(
        capsys,
        tmp_path,
        "--teacher",
        tmp_path / "bomb.pt",
        "--activation",
        "tanh",
        fragments=["never run"],
    )
    assert not marker.exists()
    torch.save(to_torch(TEACHER), tmp_path / "full.pt")
    refused(
        capsys, tmp_path, "--teacher", tmp_path / "full.pt", "--activation", "tanh",
        fragments=["full module", "state_dict()"],
    )  # fmt: skip


def test_activation_outside_the_registry_and_mixed_activations(capsys, tmp_path):
    path = _state(tmp_path, to_torch(TEACHER))
    refused(capsys, tmp_path, "--teacher", path, "--activation", "elu", fragments=["'elu'", "tanh"])
    refused(capsys, tmp_path, "--teacher", path, fragments=["--activation"])  # not stated
    net = synthetic_teacher("4,3,3,1", "tanh", 0)
    write_keras_h5(tmp_path / "mixed.h5", net)
    import h5py

    with h5py.File(tmp_path / "mixed.h5", "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][2]["config"]["activation"] = "relu"
        f.attrs["model_config"] = json.dumps(config)
    refused(
        capsys,
        tmp_path,
        "--teacher",
        tmp_path / "mixed.h5",
        fragments=["different activations", "relu, tanh"],
    )
    config["config"]["layers"][2] = {"class_name": "BatchNormalization", "config": {"name": "bn"}}
    with h5py.File(tmp_path / "mixed.h5", "r+") as f:
        f.attrs["model_config"] = json.dumps(config)
    refused(
        capsys,
        tmp_path,
        "--teacher",
        tmp_path / "mixed.h5",
        fragments=["'bn'", "BatchNormalization"],
    )


def _onnx(path, inputs, nodes):
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])]
    )
    import onnx

    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_onnx_inputs_must_be_one_float_matrix(capsys, tmp_path):
    ints = [helper.make_tensor_value_info("x", TensorProto.INT64, [None, 4])]
    _onnx(
        tmp_path / "int.onnx", ints, [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)]
    )
    refused(
        capsys,
        tmp_path,
        "--teacher",
        tmp_path / "int.onnx",
        "--activation",
        "tanh",
        fragments=["int64", "one float matrix"],
    )
    two = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, 4]) for n in "ab"]
    _onnx(tmp_path / "two.onnx", two, [helper.make_node("Add", ["a", "b"], ["y"])])
    refused(
        capsys,
        tmp_path,
        "--teacher",
        tmp_path / "two.onnx",
        "--activation",
        "tanh",
        fragments=["a (float", "b (float"],
    )
    image = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1, 4, 4])]
    _onnx(tmp_path / "conv.onnx", image, [helper.make_node("Identity", ["x"], ["y"])])
    refused(
        capsys,
        tmp_path,
        "--teacher",
        tmp_path / "conv.onnx",
        "--activation",
        "tanh",
        fragments=["rank 4"],
    )


def test_skops_file_of_another_estimator(capsys, tmp_path):
    import skops.io as sio
    from sklearn.linear_model import Ridge

    sio.dump(Ridge().fit(np.eye(3), np.arange(3.0)), tmp_path / "ridge.skops")
    refused(
        capsys, tmp_path, "--teacher", tmp_path / "ridge.skops", fragments=["Ridge", "MLPRegressor"]
    )


# -- bad pairs files -----------------------------------------------------------------------


def test_bad_pairs_files(capsys, tmp_path):
    x = np.random.default_rng(0).normal(size=(10, 2))
    np.savez(tmp_path / "short.npz", x=x, y=np.zeros(9))
    refused(capsys, tmp_path, "--pairs", tmp_path / "short.npz", "--activation", "tanh", "--student-widths", "4",
            fragments=["as many rows"])  # fmt: skip
    y = np.zeros(10)
    y[3] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=y)
    refused(capsys, tmp_path, "--pairs", tmp_path / "nan.npz", "--activation", "tanh", "--student-widths", "4",
            fragments=["NaN", "row 3"])  # fmt: skip
    (tmp_path / "text.csv").write_text("x0,x1,y0\n1,2,3\n1,oops,3\n")
    refused(capsys, tmp_path, "--pairs", tmp_path / "text.csv", "--activation", "tanh", "--student-widths", "4",
            fragments=["x1", "not numeric"])  # fmt: skip
    (tmp_path / "names.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    refused(capsys, tmp_path, "--pairs", tmp_path / "names.csv", "--activation", "tanh", "--student-widths", "4",
            fragments=["x0, x1", "--output-columns"])  # fmt: skip


def test_fewer_pairs_than_student_parameters_is_a_warning(capsys, tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 4))
    np.savez(tmp_path / "few.npz", x=x, y=TEACHER(x))
    out = tmp_path / "out"
    code, _ = run(capsys, "recover", "--pairs", tmp_path / "few.npz", "--activation", "tanh", "--student-widths", "12",
                  "--max-epochs", "50", "--finetune-max-iterations", "10", "--out", out)  # fmt: skip
    assert code == 0
    warnings = json.loads((out / "metrics.json").read_text())["warnings"]
    assert any("only 24 queries for students of 73 parameters" in w for w in warnings), warnings


def test_auto_widths_that_reach_the_cap_are_refused(capsys, tmp_path):
    write_network(tmp_path / "t.zarr", TEACHER)
    message = refused(
        capsys, tmp_path, "--teacher", tmp_path / "t.zarr", "--student-widths", "auto", "--auto-start-width", "2",
        "--auto-max-width", "3", "--queries", "gaussian:300", "--max-epochs", "20", "--finetune-max-iterations", "5",
        fragments=["cap of 3", "--auto-max-width"],
    )  # fmt: skip
    assert "1 rounds" in message


# -- the output folder ----------------------------------------------------------------------


def test_out_that_cannot_be_written_fails_at_once(capsys, tmp_path):
    write_network(tmp_path / "t.zarr", TEACHER)
    (tmp_path / "file").write_text("x")
    for out, fragment in [
        (tmp_path / "file" / "o", "which is a file"),
        ("/proc/o", "cannot write"),
    ]:
        start = time.perf_counter()
        code, err = run(capsys, "recover", "--teacher", tmp_path / "t.zarr", "--out", out)
        assert code == 2 and fragment in err[-1] and time.perf_counter() - start < 1.0


def test_second_run_on_the_same_out_names_the_holder(capsys, tmp_path):
    write_network(tmp_path / "t.zarr", TEACHER)
    partial = tmp_path / ".out.partial"
    partial.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (partial / "lock").write_text(str(holder.pid))
        code, err = run(
            capsys, "recover", "--teacher", tmp_path / "t.zarr", "--out", tmp_path / "out"
        )
        assert code == 2 and f"pid {holder.pid}" in err[-1]
        code, err = run(
            capsys,
            "recover",
            "--teacher",
            tmp_path / "t.zarr",
            "--resume",
            "--out",
            tmp_path / "out",
        )
        assert code == 2 and f"pid {holder.pid}" in err[-1]
    finally:
        holder.kill()
        holder.wait()
    assert partial.exists()  # another run's folder is left alone
    code, err = run(capsys, "recover", "--teacher", tmp_path / "t.zarr", "--out", tmp_path / "out")
    assert code == 2 and "resume with --resume or remove" in err[-1]  # its holder is gone


def test_two_runs_started_together_on_one_out_leave_one_complete_result(tmp_path):
    """Two real processes race for one --out: one finishes, the other is refused with one
    line (whichever way the race goes), and the folder holds one complete recovery."""
    write_network(tmp_path / "t.zarr", TEACHER)
    args = ["recover", "--teacher", str(tmp_path / "t.zarr"), "--queries", "gaussian:300"]
    command = [sys.executable, "-m", "expand_and_cluster.cli", *args, *FAST]
    command += ["--out", str(tmp_path / "out")]
    runs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((r.wait(timeout=300), r.stderr.read()) for r in runs)
    (ok, _), (refused, message) = results
    assert (ok, refused) == (0, 2), results
    last = message.strip().splitlines()[-1]
    assert last.startswith("ecluster: error: ") and ("--out" in last or "output directory" in last)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["widths"]
    assert not (tmp_path / ".out.partial").exists()


def test_ctrl_c_says_how_to_resume(capsys, tmp_path, monkeypatch):
    write_network(tmp_path / "t.zarr", TEACHER)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "recover", interrupted)
    code, err = run(
        capsys,
        "recover",
        "--teacher",
        tmp_path / "t.zarr",
        "--queries",
        "gaussian:100",
        "--out",
        tmp_path / "out",
    )
    assert code == 130 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("ecluster: interrupted; resume with: ecluster recover")
    assert err[-1].endswith("--resume")
    assert (tmp_path / ".out.partial").is_dir() and not (
        tmp_path / ".out.partial" / "lock"
    ).exists()


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint(tmp_path, caplog):
    write_network(tmp_path / "t.zarr", TEACHER)
    args = ["recover", "--teacher", str(tmp_path / "t.zarr"), "--queries", "gaussian:1000", *FAST,
            "--max-epochs", "4000", "--checkpoint-every", "200", "--out", str(tmp_path / "out")]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "expand_and_cluster.cli", *args], env=env, stderr=subprocess.DEVNULL
    )
    checkpoint = tmp_path / ".out.partial" / "students.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists() and not (tmp_path / "out").exists()
    caplog.set_level("INFO")
    assert main(args) == 2  # the incomplete run is named, not overwritten
    assert main([*args, "--resume"]) == 0
    assert "resumed from" in caplog.text
    assert read_network(tmp_path / "out" / "network.zarr").hidden_widths == [3]
    assert not (tmp_path / ".out.partial").exists()
    assert not list((tmp_path / "out").glob("*.pt")) and not (tmp_path / "out" / "lock").exists()


# -- widths, inputs and the Python API ------------------------------------------------------


@pytest.mark.slow
def test_auto_widths_recover_a_6_5_1_teacher(tmp_path, caplog):
    teacher = synthetic_teacher("6,5,1", "tanh", 0)
    torch.save(to_torch(teacher).state_dict(), tmp_path / "m.pt")
    caplog.set_level("INFO")
    out = tmp_path / "out"
    code = main(["recover", "--teacher", str(tmp_path / "m.pt"), "--activation", "tanh", "--student-widths", "auto",
                 "--auto-start-width", "16", "--queries", "gaussian:1500", *FAST, "--out", str(out)])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["widths"] == [5] and max(metrics["angles_deg"][0]) < 1.0
    rounds = len(metrics["auto_width_rounds"])
    assert f"auto widths: converged in {rounds} rounds" in caplog.text


def test_standardised_file_queries_give_a_network_on_raw_inputs(tmp_path):
    rng = np.random.default_rng(0)
    raw = 5.0 + 3.0 * rng.normal(size=(1250, 4))  # far from zero mean, unit variance
    np.save(tmp_path / "inputs.npy", raw)
    shifted = synthetic_teacher("4,3,1", "tanh", 0)
    # A teacher that expects such raw inputs: the synthetic one after undoing the shift.
    w0 = shifted.weights[0] / 3.0
    teacher = type(shifted)(
        [w0, shifted.weights[1]],
        [shifted.biases[0] - w0 @ np.full(4, 5.0), shifted.biases[1]],
        "tanh",
    )
    torch.save(to_torch(teacher).state_dict(), tmp_path / "m.pt")
    out = tmp_path / "out"
    code = main(["recover", "--teacher", str(tmp_path / "m.pt"), "--activation", "tanh", "--queries",
                 f"file:{tmp_path / 'inputs.npy'}", "--standardise", *FAST, "--out", str(out)])  # fmt: skip
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "exact" and metrics["n_test"] == 250
    network = read_network(out / "network.zarr")
    assert np.max(np.abs(network(raw) - teacher(raw))) < 1e-3


def test_recover_takes_a_torch_module():
    teacher = to_torch(TEACHER, "float32")
    x = np.random.default_rng(0).normal(size=(1000, 4))
    settings = RecoverySettings(train=TrainSettings(batch_size=None, lr=0.03, max_epochs=1500))
    settings.finetune.max_iterations = 100
    recovery, _ = recover(x, teacher, "tanh", [12], settings)
    assert recovery.widths == [3]
    assert teacher[0].weight.dtype == torch.float32  # the user's module is left as it was


def test_white_box_and_black_box_metrics_share_one_schema():
    from expand_and_cluster.evaluate import (
        LABEL_KEYS,
        EvaluationSettings,
        blackbox_metrics,
        recovery_metrics,
    )

    labels = dict.fromkeys(LABEL_KEYS)
    summary = {**labels, "n_students": 2, "status": "ok", "reason": None, "diagnostics": None}
    x = np.random.default_rng(0).normal(size=(20, 4))
    args = (np.ones(2), np.zeros(2), [12], x, TEACHER(x), x)
    white = recovery_metrics(summary, TEACHER, TEACHER, *args, EvaluationSettings())
    black = blackbox_metrics(summary, TEACHER, *args, TEACHER(x), EvaluationSettings())
    assert set(white) == set(black)
    assert black["status"] == "unverified" and "no weight comparison" in black["verification"]
    assert white["status"] == "exact" and black["relative_rmse"] == 0.0
