"""Train one teacher on scikit-learn's bundled digits and write its network store."""

import logging

import _study
import numpy as np

from expand_and_cluster.data import load_digits
from expand_and_cluster.store import write_network
from expand_and_cluster.teachers import train_teacher

log = logging.getLogger("study.digits_teacher")


def main(spec: dict, out: str) -> None:
    x, labels = load_digits()
    teacher = train_teacher(
        x,
        labels,
        spec["sizes"][1:-1],
        spec["activation"],
        spec["seed"],
        epochs=spec["epochs"],
        lr=spec["lr"],
        batch_size=spec["batch_size"],
    )
    accuracy = float(np.mean(teacher(x).argmax(axis=1) == labels))
    log.info("teacher %s: widths %s, training accuracy %.4f", spec["id"], teacher.widths, accuracy)
    write_network(out, teacher, {"kind": "teacher", "teacher": spec, "train_accuracy": accuracy})


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake, torch_threads=True)
    main(snakemake.params.spec, snakemake.output[0])
