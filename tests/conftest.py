import numpy as np
import pytest

from expand_and_cluster.activations import ACTIVATIONS, Symmetry


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


SYMMETRIES = list(Symmetry)
ACTIVATION_NAMES = list(ACTIVATIONS)
