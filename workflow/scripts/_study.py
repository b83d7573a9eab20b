"""What every script of the study shares: logging into the rule's log, torch threads, the
query files, and the held-out inputs. Imported by the scripts in this folder (Snakemake puts
the folder on ``sys.path``); it never computes anything the library owns.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

# Under `--software-deployment-method conda` the environment holds the dependencies only;
# the package itself then comes from this checkout's src/.
try:
    import expand_and_cluster  # noqa: F401
except ImportError:  # pragma: no cover - exercised only in conda environments
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from expand_and_cluster.data import load_digits, sample_inputs
from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng


def start(snakemake, torch_threads: bool = False) -> logging.Logger:
    """Send every log record (the library's progress lines included) to the rule's log file
    and return the script's logger. With ``torch_threads``, torch uses the rule's threads."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.FileHandler(snakemake.log[0], mode="w")],
        force=True,
    )
    logging.captureWarnings(True)
    logger = logging.getLogger(f"study.{snakemake.rule}")
    if torch_threads:
        import torch

        torch.set_num_threads(snakemake.threads)
        logger.info("torch uses %d thread(s)", snakemake.threads)
    logger.info("wildcards: %s", dict(snakemake.wildcards))
    return logger


# -- queries -------------------------------------------------------------------------------
# A query file is a plain .npz (no pickle): ``x`` (samples, inputs), ``y`` (samples, outputs).


def write_queries(path: str, x: np.ndarray, y: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.savez(f, x=np.asarray(x, dtype=np.float64), y=np.asarray(y, dtype=np.float64))


def read_queries(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y = data["x"], data["y"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"cannot read query file {path} ({e}): delete it and re-run") from None
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise InputError(
            f"query file {path} holds x {x.shape} and y {y.shape}: delete it and re-run"
        )
    return x, y


def dataset_split(spec: dict) -> tuple[np.ndarray, np.ndarray]:
    """For digits queries "dataset": (query images, held-out images), a seeded split."""
    images, _ = load_digits()
    order = numpy_rng(spec["seed"], "dataset-split").permutation(len(images))
    n_test = max(1, round(spec["test_fraction"] * len(images)))
    return images[order[n_test:]], images[order[:n_test]]


def query_inputs(spec: dict, n_inputs: int) -> np.ndarray:
    """The inputs the students are trained on."""
    if spec["distribution"] == "dataset":
        return dataset_split(spec)[0]
    return sample_inputs(spec["distribution"], spec["n"], n_inputs, spec["seed"], "queries")


def heldout_inputs(spec: dict, n_inputs: int) -> np.ndarray:
    """Fresh inputs for evaluation: the same distribution, another random stream (never the
    queries), or the held-out images."""
    if spec["distribution"] == "dataset":
        return dataset_split(spec)[1]
    return sample_inputs(spec["distribution"], spec["n"], n_inputs, spec["seed"], "held-out")
