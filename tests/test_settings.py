"""Each setting declared once: the CLI flags, the dataclasses and the study schema agree,
and the library owns every derived value that the study and the CLI share."""

import math

import pytest
import yaml
from study_runner import REPO, snakemake, write_config

from expand_and_cluster.cli import _parser, recovery_settings
from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import EvaluationSettings, expansion_id, recovery_id
from expand_and_cluster.finetune import FinetuneSettings
from expand_and_cluster.reconstruct import RETRAIN_DEFAULTS, RecoverySettings
from expand_and_cluster.settings import json_schema, scalar_fields
from expand_and_cluster.students import TrainSettings, student_widths

SCHEMA = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())


def _recover_args(*more):
    return _parser().parse_args(["recover", "--teacher", "t.zarr", "--out", "o", *more])


def test_every_cli_default_is_the_dataclass_default():
    args = _recover_args()
    assert recovery_settings(args) == RecoverySettings()
    assert recovery_settings(args).retrain == TrainSettings(**RETRAIN_DEFAULTS)
    assert args.exact_angle_deg == EvaluationSettings().exact_angle_deg


@pytest.mark.parametrize(
    ("path", "cls", "defaults"),
    [
        (("$defs", "train"), TrainSettings, None),
        (("$defs", "retrain"), TrainSettings, RETRAIN_DEFAULTS),
        (("$defs", "finetune"), FinetuneSettings, None),
        (("properties", "evaluation"), EvaluationSettings, None),
    ],
)
def test_schema_section_is_the_dataclass_declaration(path, cls, defaults):
    section = SCHEMA[path[0]][path[1]]
    assert section["properties"] == json_schema(cls, defaults)["properties"]


def test_schema_recovery_scalars_and_lists_follow_recovery_settings():
    recovery = SCHEMA["properties"]["recovery"]["properties"]
    declared = json_schema(RecoverySettings)["properties"]
    for name in ("cut_rule", "seed", "min_explained_variance", "input_mask", "polish_iterations"):
        assert recovery[name] == declared[name]
    for listed, field in (("gammas", "gamma"), ("betas_deg", "beta_deg")):
        bounds = {k: v for k, v in declared[field].items() if k not in ("description", "default")}
        assert recovery[listed]["items"] == bounds
        assert recovery[listed]["default"] == [declared[field]["default"]]
    # Every scalar the study sets has a schema entry (n_students comes from seeds x per_job).
    study_keys = {f.name for f in scalar_fields(RecoverySettings)} - {"n_students"}
    assert study_keys <= set(recovery) | {"gamma", "beta_deg"}


def test_input_mask_flag_follows_its_declaration():
    assert recovery_settings(_recover_args()).input_mask == "none"
    assert recovery_settings(_recover_args("--input-mask", "informative")).input_mask == (
        "informative"
    )
    with pytest.raises(SystemExit):  # argparse refuses a method that is not a choice
        _recover_args("--input-mask", "boruta")
    with pytest.raises(InputError, match="input_mask must be one of none, constant"):
        RecoverySettings(input_mask="boruta")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--lr", "nan", "lr must be a finite number"),
        ("--lr", "0", "lr must be > 0"),
        ("--gamma", "1.5", "gamma must be <= 1"),
        ("--beta-deg", "inf", "beta_deg must be a finite number"),
        ("--finetune-history-size", "0", "history_size must be >= 1"),
    ],
)
def test_bad_values_are_refused_by_the_declaration(flag, value, message):
    with pytest.raises(InputError, match=message):
        recovery_settings(_recover_args(flag, value))


def test_student_widths_round_up_only_beyond_float_error():
    # 2.2 * 25 is 55.000000000000007 in floating point: 55 neurons, not 56.
    assert 2.2 * 25 > 55
    assert student_widths([25], 2.2) == [55]
    assert student_widths([5, 4], 1.5) == [8, 6]
    assert student_widths([3], 0.01) == [1]
    for bad in (0, -1, math.inf, math.nan):
        with pytest.raises(InputError, match="expansion"):
            student_widths([3], bad)


def test_cli_and_study_give_the_same_student_widths(tmp_path, monkeypatch):
    """Expansion 2.2 on a width-25 teacher: 55 student neurons from ecluster and from the
    study (one training epoch is enough to see the widths)."""
    import numpy as np

    from expand_and_cluster import cli
    from expand_and_cluster.network import MLP
    from expand_and_cluster.store import read_students, write_network

    teacher = MLP([np.ones((25, 3)), np.ones((1, 25))], [np.zeros(25), np.zeros(1)], "tanh")
    write_network(tmp_path / "t.zarr", teacher)
    seen = {}

    def fake_recover(x, y, activation, widths, settings, *args, **kwargs):
        seen["widths"] = widths
        raise InputError("stop here")

    monkeypatch.setattr(cli, "recover", fake_recover)
    cli.main(
        [
            "recover",
            "--teacher",
            str(tmp_path / "t.zarr"),
            "--expansion",
            "2.2",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert seen["widths"] == [55]

    config = write_config(
        tmp_path / "widths.yaml",
        {
            "study": "widths",
            "teachers": {"synthetic": [{"activations": ["tanh"], "sizes": ["3,25,1"]}]},
            "queries": {"n": 64},
            "students": {"expansions": [2.2], "per_job": 4, "train": {"max_epochs": 1}},
        },
    )
    store = "results/widths/tanh-3-25-1-s0/students/x2.2/seed0.zarr"
    snakemake("--cores", "1", "--configfile", str(config), "--directory", str(tmp_path), store)
    students = read_students(tmp_path / store)
    assert students.attrs["student_widths"] == [55]
    assert students.weights[0].shape == (4, 55, 3)


def test_ids_are_short_and_distinct():
    assert expansion_id(4) == "x4" and expansion_id(0.5) == "x0.5" and expansion_id(2.2) == "x2.2"
    assert expansion_id(2) != expansion_id(2.0000001)
    assert recovery_id(0.5, 60) == "g0.5-b60"
