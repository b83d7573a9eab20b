"""Careless and hostile input: every mistake is one clear error before any work is done,
and nothing is silently changed (issue: hostile and careless input)."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from expand_and_cluster.cli import main
from expand_and_cluster.data import parse_query_spec, sample_inputs
from expand_and_cluster.errors import InputError
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.network import MLP
from expand_and_cluster.prune import _original_indices
from expand_and_cluster.reconstruct import RecoverySettings, recover, trust_warnings
from expand_and_cluster.resources import GB, estimate_recovery_memory
from expand_and_cluster.store import read_network, write_network
from expand_and_cluster.students import TrainSettings
from expand_and_cluster.teachers import synthetic_teacher

# -- crashes after the work was done ---------------------------------------------------------


def test_original_indices_of_a_second_round_beyond_the_first_rounds_largest():
    assert _original_indices([0, 1, 2], [4]) == [0, 1, 2, 7]


@given(
    st.integers(1, 30).flatmap(
        lambda n: st.tuples(
            st.just(n),
            st.lists(st.integers(0, n - 1), unique=True, max_size=n - 1),
        )
    ),
    st.data(),
)
def test_original_indices_agree_with_removing_twice(sizes, data):
    n, first = sizes
    survivors = [i for i in range(n) if i not in first]
    second = data.draw(st.lists(st.integers(0, len(survivors) - 1), unique=True))
    expected = sorted([*first, *(survivors[j] for j in second)])
    assert _original_indices(first, second) == expected


def test_recover_on_no_queries_is_one_clear_error():
    teacher = synthetic_teacher("3,2,1", "tanh", 0)
    x = sample_inputs("gaussian", 10, 3, 0)
    with pytest.raises(InputError, match="at least one query"):
        recover(x[:0], teacher(x)[:0], "tanh", [8], RecoverySettings(n_students=4))


# -- warnings when a result cannot be trusted ------------------------------------------------


def test_trust_warnings_name_each_reason():
    x = np.random.default_rng(0).standard_normal((50, 4))
    narrow = trust_warnings(x, x[:, :1] * 2.0, [3], teacher_widths=[3])
    assert any("not wider than the teacher" in w for w in narrow)
    few = trust_warnings(x, x[:, :1], [64])  # 4*64+64+64+1 parameters > 50 queries
    assert any("only 50 queries" in w for w in few)
    constant = trust_warnings(x, np.full((50, 1), 3.0), [8])
    assert any("constant" in w for w in constant)
    assert trust_warnings(x, x[:, :1], [8]) == []


# -- sizes that cannot fit ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "phase"),
    [
        (["--student-widths", "1000000"], "clustering"),
        (["--students", "100000"], "clustering"),
        (["--queries", "gaussian:300000000"], "queries"),
        (["--student-widths", "20000"], "clustering"),
    ],
)
def test_a_request_that_cannot_fit_is_refused_in_seconds(tmp_path, capsys, args, phase):
    teacher = tmp_path / "t.zarr"
    write_network(teacher, synthetic_teacher("4,3,1", "tanh", 0))
    start = time.perf_counter()
    code = main(["recover", "--teacher", str(teacher), *args, "--out", str(tmp_path / "o")])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and elapsed < 2.0, (code, elapsed)
    assert "GB of memory" in err and "available on this machine" in err and phase in err
    assert not (tmp_path / "o").exists()


def test_huge_synthetic_teacher_is_refused_before_drawing_it(tmp_path, capsys):
    start = time.perf_counter()
    code = main(
        [
            "teacher",
            "--sizes",
            "3,1000000,1",
            "--activation",
            "tanh",
            "--out",
            str(tmp_path / "t.zarr"),
        ]
    )
    assert code == 2 and time.perf_counter() - start < 2.0
    assert "GB of memory" in capsys.readouterr().err


def test_memory_estimate_matches_the_measured_clustering_peak():
    # Benchmark 3c: 20,480 neurons of 785 inputs peaked at 3.87 GB.
    estimate = estimate_recovery_memory(20_000, 784, 10, [1024], 20, 512)
    assert 3.5 * GB < estimate.clustering < 5.0 * GB
    # At this size a polish of the students is larger still: 20 curvature pairs of 813,066
    # float64 weights for each of 20 students (5.2 GB), and their layers on 8,192 queries.
    assert 9.0 * GB < estimate.finetuning < 9.5 * GB


# -- stores are read as raw numbers ----------------------------------------------------------


def _set_array_attrs(store, group, array, attrs):
    meta_path = store / group / array / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta.setdefault("attributes", {}).update(attrs)
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "attrs",
    [
        {"units": "days since 2000-01-01", "calendar": "standard"},
        {"scale_factor": 2.0, "add_offset": 1.0},
    ],
)
def test_cf_attributes_never_change_the_weights(tmp_path, attrs):
    network = synthetic_teacher("4,3,1", "tanh", 0)
    store = tmp_path / "n.zarr"
    write_network(store, network)
    _set_array_attrs(store, "layer0", "weight", attrs)
    read = read_network(store)
    np.testing.assert_array_equal(read.weights[0], network.weights[0])
    assert read.weights[0].dtype == np.float64


def test_a_fill_value_attribute_is_refused_with_the_store_named(tmp_path):
    # xarray cannot even parse a float _FillValue attribute of a Zarr v3 array: the store is
    # refused, never read with masked weights.
    store = tmp_path / "n.zarr"
    write_network(store, synthetic_teacher("4,3,1", "tanh", 0))
    _set_array_attrs(store, "layer0", "weight", {"_FillValue": 0.5})
    with pytest.raises(InputError, match=r"n\.zarr.*fill_value"):
        read_network(store)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("n_layers", "2", "attribute 'n_layers' is '2'"),
        ("n_layers", True, "attribute 'n_layers' is True"),
        ("activation", ["tanh"], "attribute 'activation' is ['tanh']"),
    ],
)
def test_store_attribute_of_the_wrong_type_is_named(tmp_path, key, value, expected):
    store = tmp_path / "n.zarr"
    write_network(store, synthetic_teacher("4,3,1", "tanh", 0))
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"][key] = value
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=r"n\.zarr") as error:
        read_network(store)
    assert expected in str(error.value)


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--seed", "-1"], "seed must be >= 0"),
        (["--expansion", "inf"], "expansion must be a positive finite number"),
        (["--expansion", "nan"], "expansion must be a positive finite number"),
        (["--queries", "gaussian:²"], "bad query spec"),
        (["--device", "mps"], "device"),
        (["--device", "meta"], "device"),
        (["--student-widths", "0"], "positive"),
        (["--lr", "nan"], "lr must be a finite number"),
    ],
)
def test_bad_cli_value_is_one_line(tmp_path, capsys, args, fragment):
    teacher = tmp_path / "t.zarr"
    write_network(teacher, synthetic_teacher("4,3,1", "tanh", 0))
    code = main(["recover", "--teacher", str(teacher), *args, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert fragment in err.strip().splitlines()[-1]


def test_negative_teacher_seed_is_one_line(tmp_path, capsys):
    code = main(
        ["teacher", "--sizes", "4,3,1", "--activation", "tanh", "--seed", "-1", "--out", "x"]
    )
    assert code == 2 and "seed must be a non-negative integer" in capsys.readouterr().err


# -- property-based: the settings' declarations ---------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False, width=64)
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    lr=ANY_FLOAT,
    factor=ANY_FLOAT,
    max_epochs=st.integers(-5, 10**6),
    batch_size=st.one_of(st.none(), st.integers(-5, 10**6)),
    dtype=st.sampled_from(["float32", "float64", "float16", ""]),
)
def test_train_settings_accept_exactly_the_declared_space(
    lr, factor, max_epochs, batch_size, dtype
):
    valid = (
        math.isfinite(lr)
        and lr > 0
        and math.isfinite(factor)
        and 0 < factor < 1
        and max_epochs >= 1
        and (batch_size is None or batch_size >= 1)
        and dtype in ("float32", "float64")
    )
    values = {
        "lr": lr,
        "factor": factor,
        "max_epochs": max_epochs,
        "batch_size": batch_size,
        "dtype": dtype,
    }
    if valid:
        assert TrainSettings(**values).lr == lr
    else:
        with pytest.raises(InputError) as error:
            TrainSettings(**values)
        assert "\n" not in str(error.value)


@settings(max_examples=200)
@given(gamma=ANY_FLOAT, beta=ANY_FLOAT, n=st.integers(-3, 50))
def test_recovery_settings_accept_exactly_the_declared_space(gamma, beta, n):
    valid = (
        math.isfinite(gamma)
        and 0 < gamma <= 1
        and math.isfinite(beta)
        and 0 < beta <= 180
        and n >= 2
        and math.ceil(gamma * n - 1e-9) >= 2
    )
    if valid:
        RecoverySettings(n_students=n, gamma=gamma, beta_deg=beta)
    else:
        with pytest.raises(InputError) as error:
            RecoverySettings(n_students=n, gamma=gamma, beta_deg=beta)
        assert "\n" not in str(error.value)


@settings(max_examples=100)
@given(st.integers(-5, 10**6), st.integers(-5, 500))
def test_finetune_settings_bounds(iterations, history):
    if iterations >= 0 and history >= 1:
        FinetuneSettings(max_iterations=iterations, history_size=history)
    else:
        with pytest.raises(InputError):
            FinetuneSettings(max_iterations=iterations, history_size=history)


@given(st.text(max_size=30))
def test_query_spec_parses_or_says_how(spec):
    try:
        name, count = parse_query_spec(spec)
    except InputError as e:
        assert "gaussian:20000" in str(e)
    else:
        assert spec == f"{name}:{count}" or spec.lstrip(f"{name}:").lstrip("0") == str(count)
        assert count >= 1


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=2),
    st.sampled_from(["n_layers", "activation", "has_skip"]),
    st.one_of(st.text(max_size=5), st.integers(-2, 3), st.lists(st.integers(), max_size=2)),
)
def test_damaged_store_attributes_are_refused_or_read_correctly(tmp_path_factory, w, key, value):
    store = tmp_path_factory.mktemp("s") / "n.zarr"
    network = MLP([np.array([w]), np.ones((1, 1))], [np.zeros(1), np.zeros(1)], "tanh")
    write_network(store, network)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"][key] = value
    (store / "zarr.json").write_text(json.dumps(meta))
    try:
        read = read_network(store)
    except InputError as e:
        assert "n.zarr" in str(e) and "\n" not in str(e)
    else:
        np.testing.assert_array_equal(read.weights[0], network.weights[0])


# -- property-based: the command line, end to end on tiny sizes ------------------------------

# Per flag: values the CLI must accept, then values it must refuse.
CLI_VALUES = {
    "--lr": (["0.01", "0.05"], ["0", "-1", "nan", "inf", "x"]),
    "--students": (["3", "4"], ["0", "1", "-2", "two"]),
    "--gamma": (["0.5", "1"], ["0", "1.5", "nan"]),
    "--queries": (["gaussian:200", "uniform:200"], ["gaussian:0", "cauchy:9", "200"]),
    "--expansion": (["2", "3"], ["0", "-1", "inf"]),
}
CLI_FLAGS = {
    flag: st.sampled_from(valid) | st.sampled_from(invalid)
    for flag, (valid, invalid) in CLI_VALUES.items()
}


# derandomize: the same draws on every run (a CI run once drew a valid combination whose
# students, trained 20 epochs, agree on no neuron at gamma 1: the refusal below).
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(values=st.fixed_dictionaries(CLI_FLAGS))
# Most draws hold at least one invalid value; these two run end to end, the third is
# refused because its students agree on no neuron.
@example(
    values={
        "--lr": "0.01",
        "--students": "3",
        "--gamma": "1",
        "--queries": "gaussian:200",
        "--expansion": "2",
    }
)
@example(
    values={
        "--lr": "0.05",
        "--students": "4",
        "--gamma": "0.5",
        "--queries": "gaussian:200",
        "--expansion": "2",
    }
)
@example(
    values={
        "--lr": "0.01",
        "--students": "3",
        "--gamma": "1",
        "--queries": "uniform:200",
        "--expansion": "3",
    }
)
def test_drawn_cli_arguments_run_or_give_exactly_one_line(tmp_path_factory, capsys, values):
    """Valid draws run to a result, or (students trained 20 epochs may agree on no
    neuron) are refused with the one line that says so and what to change; a draw with
    any invalid value is refused with one line (exit 2, no traceback)."""
    tmp = tmp_path_factory.mktemp("cli")
    teacher = tmp / "t.zarr"
    write_network(teacher, synthetic_teacher("3,2,1", "tanh", 0))
    flags = [item for flag, value in values.items() for item in (flag, value)]
    tiny = ["--max-epochs", "20", "--finetune-max-iterations", "5", "--retrain-max-epochs", "5"]
    capsys.readouterr()
    try:
        code = main(["recover", "--teacher", str(teacher), *flags, *tiny, "--out", str(tmp / "o")])
    except SystemExit as e:  # argparse refuses what is not a number, with its usage line
        code = e.code
    err = capsys.readouterr().err
    if all(value in CLI_VALUES[flag][0] for flag, value in values.items()):
        if code == 0:
            assert json.loads((tmp / "o" / "metrics.json").read_text())["status"]
        else:
            assert code == 2 and "Traceback" not in err, err
            last = err.strip().splitlines()[-1]
            assert last.startswith("ecluster: error: no cluster passed the filters"), err
            assert last.endswith("train longer, lower gamma or raise beta"), err
    else:
        assert code == 2, err
        assert "Traceback" not in err
        assert re.match(r"ecluster( recover)?: error: ", err.strip().splitlines()[-1]), err
        assert not (tmp / "o").exists()
