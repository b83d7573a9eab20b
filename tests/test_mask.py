"""The input mask of the first layer: which inputs carry signal (expand_and_cluster.masks),
clustering on the masked vectors, and the masked angles to the teacher."""

import numpy as np
import pytest

from expand_and_cluster.errors import InputError
from expand_and_cluster.masks import MASK_METHODS, input_mask

# -- which inputs carry signal -------------------------------------------------------------


def test_constant_drops_exactly_the_planted_constant_columns():
    x = np.random.default_rng(0).normal(size=(500, 12))
    x[:, 2] = 0.0
    x[:, 5] = 3.7
    x[:, 9] = -1e6
    x[:, 10] = 1.0 + 1e-15 * np.arange(500) % 3  # rounding noise: constant
    x[:, 11] *= 1e-6  # small but real spread: kept
    mask = input_mask(x, "constant")
    assert mask.dtype == bool and mask.shape == (12,)
    assert mask.sum() == 8
    assert np.flatnonzero(~mask).tolist() == [2, 5, 9, 10]


def test_none_keeps_every_input_and_unknown_methods_are_refused():
    x = np.zeros((10, 3))
    assert input_mask(x, "none").all()  # no look at the data at all
    assert MASK_METHODS == ("none", "constant", "informative")
    with pytest.raises(InputError, match="one of none, constant, informative"):
        input_mask(x, "boruta")


def test_all_constant_inputs_are_refused_with_the_method_and_the_fix():
    x = np.tile([1.0, 0.0, -2.0], (50, 1))
    for method in ("constant", "informative"):
        with pytest.raises(InputError, match=rf"input mask '{method}'.*--input-mask none"):
            input_mask(x, method, np.zeros(50))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_informative_keeps_what_y_depends_on_and_drops_planted_noise(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3000, 9))
    x[:, 8] = 0.5  # constant
    # y depends on inputs 0, 1, 2 (nonlinearly on two of them); 3..7 are pure noise.
    y = np.tanh(2 * x[:, 0]) + 0.5 * x[:, 1] ** 2 + 0.8 * x[:, 2]
    mask = input_mask(x, "informative", y, seed=seed)
    assert np.flatnonzero(mask).tolist() == [0, 1, 2]
    # Several outputs: the teacher's predicted class (argmax), here set by inputs 0 and 1.
    scores = np.stack([x[:, 0] + x[:, 1], -x[:, 0], 0.3 * x[:, 1] - 0.5], axis=1)
    mask = input_mask(x, "informative", scores, seed=seed)
    assert np.flatnonzero(mask).tolist() == [0, 1]


def test_informative_is_seeded_and_refuses_outputs_that_ignore_the_inputs():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 6))
    y = np.sin(x[:, 0]) + x[:, 3]
    a, b = input_mask(x, "informative", y, 7), input_mask(x, "informative", y, 7)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match=r"input mask 'informative'.*--input-mask constant"):
        input_mask(x, "informative", np.full(1500, 0.3), 0)
    with pytest.raises(InputError, match="needs the teacher's outputs"):
        input_mask(x, "informative")
