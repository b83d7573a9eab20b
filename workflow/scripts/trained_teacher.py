"""Train one classifier on its image data set and write its network store, with its
training and test accuracy in the attributes."""

import logging

import _study

from expand_and_cluster.data import ImageSource, teacher_images
from expand_and_cluster.datasets import flatten
from expand_and_cluster.store import write_network
from expand_and_cluster.teachers import classification_accuracy, train_teacher

log = logging.getLogger("study.trained_teacher")


def main(spec: dict, out: str) -> None:
    x, labels, x_test, test_labels = teacher_images(ImageSource(**spec["images"]))
    x, x_test = flatten(x), flatten(x_test)
    teacher = train_teacher(
        x, labels, spec["sizes"][1:-1], spec["activation"], spec["seed"], **spec["train"]
    )
    accuracy = {
        "train_accuracy": classification_accuracy(teacher, x, labels),
        "test_accuracy": classification_accuracy(teacher, x_test, test_labels),
    }
    log.info(
        "teacher %s: widths %s, %d training images, accuracy %s",
        spec["id"],
        teacher.widths,
        len(x),
        accuracy,
    )
    write_network(out, teacher, {"kind": "teacher", "teacher": spec, **accuracy})


if __name__ == "__main__":
    snakemake = globals()["snakemake"]  # injected by Snakemake
    _study.start(snakemake, torch_threads=True)
    main(snakemake.params.spec, snakemake.output[0])
