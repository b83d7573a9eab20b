"""Imperfect teacher outputs (expand_and_cluster.outputs): each transform's statistics, the
exact outputs untouched, reproducible noise, one-line errors, the precision read back from
the values, and the robustness table and figure built on them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from expand_and_cluster.errors import InputError
from expand_and_cluster.evaluate import applied_output_error
from expand_and_cluster.outputs import (
    output_precision,
    output_transform_id,
    parse_output_transform,
    transform_order,
    transform_outputs,
)


def outputs(rows: int, seed: int = 0) -> np.ndarray:
    """Two output columns of different scale and offset, magnitudes 1e-3 to 1e3 (inside
    every format's normal range, so relative errors are bounded)."""
    rng = np.random.default_rng(seed)
    magnitude = 10.0 ** rng.uniform(-3, 3, size=(rows, 2))
    return np.where(rng.random((rows, 2)) < 0.5, -1, 1) * magnitude * [1.0, 7.0] + [0.0, 2.5]


def total_variance(y: np.ndarray) -> float:
    return float(y.var(axis=0).sum())


def test_none_returns_the_outputs_bit_for_bit():
    y = outputs(1000)
    seen = transform_outputs(y, "none", 5)
    assert seen is y
    np.testing.assert_array_equal(seen, outputs(1000))


def test_noise_has_the_requested_relative_spread_per_column():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((100_000, 2)) * [1.0, 20.0] + [3.0, -1.0]
    level = 0.01
    noise = transform_outputs(y, "noise:0.01", seed=7) - y
    relative = noise / (level * y.std(axis=0))
    np.testing.assert_allclose(relative.std(axis=0), 1.0, atol=0.02)  # 100k draws: 0.2 % s.e.
    np.testing.assert_allclose(relative.mean(axis=0), 0.0, atol=0.02)
    assert abs(np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]) < 0.02  # independent columns
    assert applied_output_error(y[:, 1], y[:, 1] + noise[:, 1]) == pytest.approx(level, rel=0.02)


def test_the_same_seed_gives_the_same_noise():
    y = outputs(500)
    first = transform_outputs(y, "noise:1e-3", seed=3)
    np.testing.assert_array_equal(first, transform_outputs(y, "noise:0.001", seed=3))
    assert not np.array_equal(first, transform_outputs(y, "noise:1e-3", seed=4))
    # One output per row (a 1-D array) is one column.
    flat = transform_outputs(y[:, 0], "noise:1e-3", seed=3)
    assert flat.shape == (500,)
    assert np.std(flat - y[:, 0]) / y[:, 0].std() == pytest.approx(1e-3, rel=0.1)


@pytest.mark.parametrize("digits", [1, 2, 3, 5, 7, 15])
def test_digits_rounds_to_k_significant_digits(digits):
    y = outputs(20_000)
    seen = transform_outputs(y, f"digits:{digits}", seed=0)
    text = [f"{v:.{digits - 1}e}" for v in seen.ravel()]
    assert all(float(t) == v for t, v in zip(text, seen.ravel(), strict=True))
    relative = np.abs(seen - y) / np.abs(y)
    # Half a unit in the K-th digit, plus the float64 representation of the decimal.
    half_unit = 0.5 * 10.0 ** (1 - digits)
    assert relative.max() <= half_unit * (1 + 1e-12) + 2**-52
    if digits <= 3:  # reached (just below 1.5 x 10^e): the rounding is not finer than asked
        assert relative.max() > 0.9 * half_unit / (1 + half_unit)


@pytest.mark.parametrize(
    ("spec", "dtype", "roundoff"),
    [("float16", torch.float16, 2.0**-11), ("bfloat16", torch.bfloat16, 2.0**-8)],
)
def test_casts_are_torch_round_trips_within_the_unit_roundoff(spec, dtype, roundoff):
    y = outputs(50_000)
    seen = transform_outputs(y, spec, seed=0)
    expected = torch.from_numpy(y).to(dtype).to(torch.float64).numpy()
    np.testing.assert_array_equal(seen, expected)
    relative = np.abs(seen - y) / np.abs(y)
    # torch casts through float32 (a float32 model's outputs cast to 16 bits): the first
    # rounding adds at most float32's unit roundoff.
    assert relative.max() <= roundoff + 2.0**-23
    assert relative.max() > 0.9 * roundoff


def test_float16_outside_its_range_is_refused():
    with pytest.raises(InputError, match=r"exceed the format's range \(65504\)"):
        transform_outputs(np.array([[1.0], [7e4]]), "float16", seed=0)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("gauss:0.1", "unknown output transform 'gauss:0.1'"),
        ("noise:0", "the noise level S must be a number > 0"),
        ("noise:-1e-3", "the noise level S must be a number > 0"),
        ("noise:abc", "the noise level S must be a number > 0"),
        ("noise:inf", "the noise level S must be a number > 0"),
        ("noise", "unknown output transform 'noise'"),
        ("digits:0", "K must be an integer from 1 to 15"),
        ("digits:16", "K must be an integer from 1 to 15"),
        ("digits:2.5", "K must be an integer from 1 to 15"),
        ("float16:2", "unknown output transform 'float16:2'"),
        ("Float16", "unknown output transform 'Float16'"),
    ],
)
def test_a_bad_spec_is_one_line_naming_it_and_the_accepted_forms(spec, fragment):
    with pytest.raises(InputError) as error:
        transform_outputs(outputs(10), spec, seed=0)
    message = str(error.value)
    assert fragment in message and "\n" not in message
    assert "accepted: none, noise:S, digits:K, float16, bfloat16" in message


def test_one_transform_has_one_name_and_id():
    assert parse_output_transform("noise:1e-3").spec == "noise:0.001"
    assert parse_output_transform("digits:04").spec == "digits:4"
    assert output_transform_id("none") == ""  # the exact teachers keep their ids
    assert output_transform_id("noise:1e-6") == "-onoise1e-06"
    assert output_transform_id("digits:3") == "-odigits3"
    assert output_transform_id("bfloat16") == "-obfloat16"
    specs = ["float16", "digits:2", "noise:0.1", "none", "digits:7", "noise:1e-6", "bfloat16"]
    assert sorted(specs, key=transform_order) == [
        "none",
        "noise:1e-6",
        "noise:0.1",
        "digits:7",
        "digits:2",
        "float16",
        "bfloat16",
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("digits:2", "digits:2"),
        ("digits:3", "digits:3"),
        ("digits:5", "digits:5"),
        ("digits:7", "digits:7"),
        ("float16", "float16"),
        # bfloat16 values (within float16's range) are float16 values too: the coarser wins.
        ("bfloat16", "bfloat16"),
    ],
)
def test_precision_recognises_each_quantiser_and_its_noise_floor(spec, expected):
    y = outputs(20_000, seed=2)
    seen = transform_outputs(y, spec, seed=0)
    name, floor = output_precision(seen)
    assert name == expected
    empirical = np.mean((seen - y) ** 2) * 2 / total_variance(seen)  # mean over 2 columns
    assert empirical / 2 < floor < 2 * empirical


def test_precision_of_float32_float64_and_noisy_outputs():
    y = outputs(20_000, seed=3)
    single = y.astype(np.float32).astype(np.float64)
    name, floor = output_precision(single)
    empirical = np.mean((single - y) ** 2) * 2 / total_variance(single)
    assert name == "float32" and empirical / 2 < floor < 2 * empirical
    for exact_or_noisy in (y, transform_outputs(y, "noise:1e-3", seed=0)):
        name, floor = output_precision(exact_or_noisy)
        # Noise is not visible in the values: the floor is float64's rounding alone.
        assert name == "float64" and floor < 1e-30


def test_precision_of_integers_constants_and_bad_values():
    # Integers are exact in every format; the coarsest grid they lie on is 2 digits: steps
    # of 0.1 at 1, 2, 3 and of 1 at 17, 42, over the variance 244.4.
    name, floor = output_precision(np.array([[1.0], [2.0], [3.0], [17.0], [42.0]]))
    assert name == "digits:2" and floor == pytest.approx((3 * 0.01 + 2) / 12 / 5 / 244.4)
    # Constant outputs: no variance to resolve, the floor is infinite.
    assert output_precision(np.full((10, 2), 0.3))[1] == np.inf
    with pytest.raises(InputError, match="finite outputs"):
        output_precision(np.array([1.0, np.nan]))


def test_output_error_is_the_rmse_over_the_exact_outputs_spread():
    exact = np.array([[0.0], [2.0], [4.0]])  # std sqrt(8/3)
    assert applied_output_error(exact, exact) == 0.0
    assert applied_output_error(exact, exact + 0.5) == pytest.approx(0.5 / np.sqrt(8 / 3))
    assert applied_output_error(np.ones(3), np.ones(3) + 1e-9) == np.inf


# -- the robustness table and figure -------------------------------------------------------


def fake_metrics(activation, spec, error, status, widths=(4,), angle=0.1, seed=0):
    """The keys of a synthetic recovery's metrics that the robustness outputs read."""
    return {
        "teacher": f"{activation}-5-4-1{output_transform_id(spec)}-s{seed}",
        "kind": "synthetic",
        "activation": activation,
        "expansion": 4,
        "gamma": 0.5,
        "beta_deg": 60,
        "teacher_outputs": spec,
        "teacher_output_error": error,
        "status": status,
        "teacher_widths": [4],
        "widths": None if widths is None else list(widths),
        "angle_median_deg": angle,
        "exact_angle_deg": 1.0,
    }


def test_robustness_rows_group_per_activation_and_transform_mildest_first():
    from expand_and_cluster.tables import ROBUSTNESS_COLUMNS, robustness_rows

    metrics = [
        fake_metrics("tanh", "noise:0.1", 0.1, "inexact", widths=(6,), angle=5.0),
        fake_metrics("tanh", "noise:0.1", 0.11, "failed", widths=None, angle=None, seed=1),
        fake_metrics("tanh", "none", 0.0, "exact", angle=0.01),
        fake_metrics("tanh", "digits:3", 3e-4, "exact", angle=0.2),
        fake_metrics("tanh", "digits:3", 5e-4, "approximate", angle=1.5, seed=1),
        fake_metrics("relu", "float16", 2e-4, "exact"),
        {**fake_metrics("tanh", "none", 0.0, "exact"), "kind": "digits"},  # not synthetic
    ]
    rows = robustness_rows(metrics)
    assert all(list(row) == list(ROBUSTNESS_COLUMNS) for row in rows)
    assert [(r["activation"], r["teacher_outputs"]) for r in rows] == [
        ("relu", "float16"),
        ("tanh", "none"),
        ("tanh", "noise:0.1"),
        ("tanh", "digits:3"),
    ]
    relu, none, noisy, rounded = rows
    assert none["problems"] == "1" and none["fraction_exact"] == "1.00"
    assert none["output_error"] == "0" and none["width_error"] == "0.000"
    # Width error: |6 - 4| / 4 and 1 for the failed recovery; median angle of the one angle.
    assert noisy["width_error"] == "0.750" and noisy["failed"] == "1"
    assert noisy["inexact"] == "1" and noisy["angle_median_deg"] == "5"
    assert noisy["output_error"] == "0.105" and noisy["fraction_exact"] == "0.00"
    assert rounded["fraction_exact"] == "0.50" and rounded["angle_median_deg"] == "0.85"
    assert relu["exact"] == "1" and relu["expansion"] == "4"


def test_robustness_figure_draws_three_panels():
    from expand_and_cluster.figures import robustness_figure

    metrics = [
        fake_metrics(act, spec, error, status)
        for act in ("tanh", "g")
        for spec, error, status in [
            ("none", 0.0, "exact"),
            ("noise:0.01", 0.01, "exact"),
            ("digits:2", 0.02, "inexact"),
            ("bfloat16", 2e-3, "exact"),
        ]
    ]
    fig = robustness_figure(metrics)
    assert len(fig.axes) == 3
    assert fig.axes[0].get_xscale() == "log"
    # One line per activation in each panel; the exact outputs a decade left of 2e-3.
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and lines[0].get_xdata()[0] == pytest.approx(2e-4)
    assert len(robustness_figure([]).axes) == 1  # a message, not an empty grid
