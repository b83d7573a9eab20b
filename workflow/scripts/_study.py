"""What every script of the study shares: the package import under conda, and logging into
the rule's log. Imported by the scripts in this folder (Snakemake puts the folder on
``sys.path``); it computes nothing: the library owns every value and format.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

# Under `--software-deployment-method conda` the environment holds the dependencies only;
# the package itself then comes from this checkout's src/.
try:
    import expand_and_cluster  # noqa: F401
except ImportError:  # pragma: no cover - exercised only in conda environments
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))


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
