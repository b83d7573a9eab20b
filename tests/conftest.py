import numpy as np
import pytest

from expand_and_cluster.activations import ACTIVATIONS, Symmetry


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


SYMMETRIES = list(Symmetry)
ACTIVATION_NAMES = list(ACTIVATIONS)


@pytest.fixture(scope="session")
def test_study(tmp_path_factory):
    """config/test.yaml run once with --cores 2 into a temporary directory (results/ stays
    untouched); shared by the study's tests, which read it and run variants beside it."""
    from study_runner import snakemake

    workdir = tmp_path_factory.mktemp("study")
    result = snakemake(
        "--cores", "2", "--configfile", "config/test.yaml", "--directory", str(workdir)
    )
    return workdir, result
