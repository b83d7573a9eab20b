"""Reliability of the library: kill-and-resume, atomic checkpoints, no unpickling, failed
students isolated, damaged stores refused."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from expand_and_cluster import RecoverySettings, TrainSettings
from expand_and_cluster.data import sample_inputs
from expand_and_cluster.errors import InputError
from expand_and_cluster.reconstruct import expand, reconstruct
from expand_and_cluster.store import gather_students, read_students, write_students
from expand_and_cluster.students import init_students, train_students
from expand_and_cluster.teachers import synthetic_teacher

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from expand_and_cluster.data import sample_inputs
    from expand_and_cluster.students import TrainSettings, init_students, train_students
    from expand_and_cluster.teachers import synthetic_teacher
    import logging; logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    out, checkpoint = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    teacher = synthetic_teacher("4,3,1", "tanh", seed=1)
    x = sample_inputs("gaussian", 2000, 4, seed=1)
    settings = TrainSettings(dtype="float64", max_epochs=1500, patience=10_000, log_every=50, checkpoint_every=50)
    result = train_students(init_students([4, 8, 1], 4, "tanh", 5), x, teacher(x), settings, seed=5, checkpoint=checkpoint)
    w, b = result.students.numpy()
    np.savez(out, *w, *b, loss=result.final_loss, history=result.loss_history)
    """
)


def train_in_process(tmp_path, out, checkpoint=None):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    args = [sys.executable, str(script), str(out)] + ([str(checkpoint)] if checkpoint else [])
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_training_killed_with_sigkill_resumes_identically(tmp_path):
    reference = train_in_process(tmp_path, tmp_path / "reference.npz")
    assert reference.wait(timeout=600) == 0, reference.stdout.read()

    checkpoint = tmp_path / "ckpt" / "students.pt"
    victim = train_in_process(tmp_path, tmp_path / "resumed.npz", checkpoint)
    deadline = time.time() + 300
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert checkpoint.exists() and not (tmp_path / "resumed.npz").exists()

    resumed = train_in_process(tmp_path, tmp_path / "resumed.npz", checkpoint)
    log = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, log
    epoch = int(log.split("at epoch ")[1].split()[0])
    assert 0 < epoch < 1500  # resumed mid-run, not from epoch 0
    a, b = np.load(tmp_path / "reference.npz"), np.load(tmp_path / "resumed.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def short_training(checkpoint, max_epochs):
    teacher = synthetic_teacher("4,3,1", "tanh", seed=1)
    x = sample_inputs("gaussian", 500, 4, seed=1)
    settings = TrainSettings(
        dtype="float64", max_epochs=max_epochs, patience=10_000, log_every=10, checkpoint_every=10
    )
    return train_students(
        init_students([4, 6, 1], 3, "tanh", 2),
        x,
        teacher(x),
        settings,
        seed=2,
        checkpoint=checkpoint,
    )


def test_torn_checkpoint_write_is_never_loaded(tmp_path, caplog):
    checkpoint = tmp_path / "students.pt"
    short_training(checkpoint, 20)
    # A kill during the next write leaves only a partial temporary file behind.
    checkpoint.with_name(checkpoint.name + ".tmp").write_bytes(b"PK\x03\x04 half a checkpoint")
    with caplog.at_level("INFO"):
        resumed = short_training(checkpoint, 30)
    assert "at epoch 20" in caplog.text
    assert resumed.epochs == 30
    # A damaged checkpoint itself is refused with the fix, never half-loaded.
    checkpoint.write_bytes(b"garbage")
    with pytest.raises(InputError, match="delete it"):
        short_training(checkpoint, 40)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickle_based_files_are_refused_not_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "students.pt"
    torch.save({"payload": _Payload()}, checkpoint)
    with pytest.raises(InputError, match="cannot be read"):
        short_training(checkpoint, 20)
    assert not (tmp_path / "PWNED").exists()


def test_failed_student_is_isolated_and_reported(tmp_path):
    teacher = synthetic_teacher("4,3,1", "tanh", seed=1)
    x = sample_inputs("gaussian", 2000, 4, seed=1)
    settings = TrainSettings(max_epochs=1000)
    clean = train_students(init_students([4, 12, 1], 6, "tanh", 0), x, teacher(x), settings, seed=0)
    students = init_students([4, 12, 1], 6, "tanh", 0)
    students.weights[1][2] = 1e30  # student 2's loss overflows at once
    result = train_students(students, x, teacher(x), settings, seed=0)
    assert result.failed.tolist() == [False, False, True, False, False, False]
    assert np.isnan(result.final_loss[2])
    # The others never notice: bit for bit what they are without the failure.
    healthy = [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(result.final_loss[healthy], clean.final_loss[healthy])
    for w, w_clean in zip(result.students.numpy()[0], clean.students.numpy()[0], strict=True):
        np.testing.assert_array_equal(w[healthy], w_clean[healthy])

    w, b = result.students.numpy()
    store = tmp_path / "s.zarr"
    write_students(
        store,
        w,
        b,
        result.final_loss,
        result.failed,
        result.loss_history,
        result.history_epochs,
        {"seed": 0},
    )
    back = read_students(store)
    assert back.failed.tolist() == result.failed.tolist()
    recovery = reconstruct(
        back.weights,
        back.biases,
        back.loss,
        back.failed,
        x,
        teacher(x),
        "tanh",
        RecoverySettings(n_students=6),
    )
    assert recovery.excluded_students == [2]
    assert "excluded" in recovery.diagnostics()["warnings"][0]
    assert recovery.widths == [3]
    assert 2 not in recovery.layers[0].student_of


def test_too_few_healthy_students_is_a_clear_error():
    teacher = synthetic_teacher("4,3,1", "tanh", seed=1)
    x = sample_inputs("gaussian", 300, 4, seed=1)
    w = [np.full((4, 6, 4), np.nan), np.full((4, 1, 6), np.nan)]
    b = [np.zeros((4, 6)), np.zeros((4, 1))]
    failed = np.array([True, True, True, False])
    with pytest.raises(InputError, match="only 1 of 4 students"):
        reconstruct(
            w,
            b,
            np.array([np.nan] * 3 + [1e-6]),
            failed,
            x,
            teacher(x),
            "tanh",
            RecoverySettings(n_students=4),
        )


@pytest.fixture
def student_store(tmp_path):
    teacher = synthetic_teacher("4,3,1", "tanh", seed=1)
    x = sample_inputs("gaussian", 300, 4, seed=1)
    trained = expand(x, teacher(x), "tanh", [6], 3, TrainSettings(max_epochs=5), seed=0)
    w, b = trained.students.numpy()
    path = tmp_path / "students.zarr"
    write_students(
        path,
        w,
        b,
        trained.final_loss,
        trained.failed,
        trained.loss_history,
        trained.history_epochs,
        {"seed": 0},
    )
    return path


def test_student_store_round_trip_and_gather(student_store, tmp_path):
    one = read_students(student_store)
    assert [w.shape for w in one.weights] == [(3, 6, 4), (3, 1, 6)]
    gather_students([student_store, student_store], [0, 1], tmp_path / "g.zarr")
    both = read_students(tmp_path / "g.zarr")
    assert both.n_students == 6 and both.seed.tolist() == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(both.weights[0][3:], one.weights[0])


def test_damaged_student_stores_are_refused(student_store, tmp_path):
    missing = tmp_path / "missing.zarr"
    shutil.copytree(student_store, missing)
    shutil.rmtree(missing / "layer1" / "bias")
    with pytest.raises(InputError, match=r"missing\.zarr.*'bias'"):
        read_students(missing)

    corrupt = tmp_path / "corrupt.zarr"
    shutil.copytree(student_store, corrupt)
    chunk = next(
        p
        for p in (corrupt / "layer0" / "weight").rglob("*")
        if p.is_file() and p.name != "zarr.json"
    )
    chunk.write_bytes(b"not a chunk")
    with pytest.raises(InputError, match=r"corrupt\.zarr"):
        read_students(corrupt)

    # An unwritten chunk reads back as NaN: refused for a healthy student.
    holed = tmp_path / "holed.zarr"
    shutil.copytree(student_store, holed)
    chunk = next(
        p for p in (holed / "layer0" / "weight").rglob("*") if p.is_file() and p.name != "zarr.json"
    )
    chunk.unlink()
    with pytest.raises(InputError, match=r"holed\.zarr.*NaN"):
        read_students(holed)

    with pytest.raises(InputError, match="shapes"):
        other = tmp_path / "other.zarr"
        w = [np.zeros((3, 5, 4)), np.zeros((3, 1, 5))]
        write_students(
            other,
            w,
            [np.zeros((3, 5)), np.zeros((3, 1))],
            np.zeros(3),
            np.zeros(3, bool),
            np.zeros((3, 0)),
            np.zeros(0),
            {"seed": 1},
        )
        gather_students([student_store, other], [0, 1], tmp_path / "g.zarr")
