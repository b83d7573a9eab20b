"""Query inputs: synthetic input distributions, the images of trained teachers, and the
query design (which inputs the students are trained on, which fresh inputs evaluate them).

A query design is a dict made by :func:`query_design`: ``distribution`` (gaussian,
uniform, train, images, composition or noise), ``n`` (number of queries), ``seed``, and for image designs the teacher's
``source`` (an :class:`ImageSource` as a dict) and the design's own arguments."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np

from expand_and_cluster import datasets
from expand_and_cluster.augment import composition_samples, noise_overlays
from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng

DISTRIBUTIONS = ("gaussian", "uniform")


def sample_inputs(distribution: str, n: int, d: int, seed: int, key: str = "queries") -> np.ndarray:
    """``n`` inputs of dimension ``d`` with zero mean and unit variance per coordinate.

    ``gaussian`` is N(0, I); ``uniform`` is uniform on [-sqrt(3), sqrt(3)]^d.
    """
    if n < 1 or d < 1:
        raise InputError(f"need at least one sample and one input dimension; got n={n}, d={d}")
    rng = numpy_rng(seed, "inputs", distribution, key)
    if distribution == "gaussian":
        return rng.standard_normal((n, d))
    if distribution == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=(n, d))
    raise InputError(f"unknown input distribution {distribution!r}: choose one of {DISTRIBUTIONS}")


def parse_query_spec(spec: str) -> tuple[str, int]:
    """``"gaussian:20000"`` -> ``("gaussian", 20000)``."""
    name, _, count = spec.partition(":")
    # str.isdigit accepts superscripts and other scripts' digits; a count is ASCII.
    if name not in DISTRIBUTIONS or not re.fullmatch("[0-9]+", count) or int(count) < 1:
        raise InputError(
            f"bad query spec {spec!r}: write DISTRIBUTION:COUNT with DISTRIBUTION one of "
            f"{', '.join(DISTRIBUTIONS)}, e.g. gaussian:20000"
        )
    return name, int(count)


def standardisation(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per feature that give zero mean and unit variance (constant features
    are only centred)."""
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 0, std, 1.0)


def standardise(x: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per feature (constant features are only centred)."""
    shift, scale = standardisation(x)
    return (x - shift) / scale


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 images): pixels standardised per pixel and
    labels."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return standardise(bunch.data.astype(np.float64)), bunch.target.astype(np.int64)


# -- image teachers and their query designs ----------------------------------------------------

# Each image data set's input normalisation (mean, std per channel), as the paper's teachers
# were trained (digest section 2.2). Images of another data set shown to a teacher go through
# the teacher's own normalisation: they are queries to its input pipeline. Digits keep their
# per-pixel standardisation over the bundled images.
NORMALISATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "fashion_mnist": ((0.5,), (0.5,)),
    "cifar10": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


@dataclass(frozen=True)
class ImageSource:
    """A trained teacher's images: which data set and where its files are, how they are
    downsampled, and which of them the teacher is trained on.

    When the data set ships no test split (the bundled digits, a subset such as the 5k
    MNIST images), ``test_fraction`` of the images are held out by a seeded draw;
    ``n_train`` keeps only the first ``n_train`` training images of a seeded permutation
    (a teacher with more parameters than training images)."""

    dataset: str
    root: str | None = None
    checksums: dict[str, str] | None = None
    downsample: int = 1
    n_train: int | None = None
    test_fraction: float = 0.2
    seed: int = 0


def teacher_images(source: ImageSource) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train images, train labels, test images, test labels)``, images prepared as the
    teacher sees them: ``(n, channels, height, width)``, downsampled and normalised."""
    if source.dataset == "digits":
        x, labels = load_digits()
        images = x.reshape(-1, 1, 8, 8)
        train, test = _holdout(len(images), source)
    else:
        images, labels = datasets.load_images(
            source.dataset, source.root, "train", source.checksums
        )
        if datasets.has_split(source.dataset, source.root, "test"):
            test_images, test_labels = datasets.load_images(
                source.dataset, source.root, "test", source.checksums
            )
            images = np.concatenate([images, test_images])
            labels = np.concatenate([labels, test_labels])
            n_train = len(images) - len(test_images)
            train, test = np.arange(n_train), np.arange(n_train, len(images))
        else:
            train, test = _holdout(len(images), source)
        images = prepare_images(images, source)
    if source.n_train is not None:
        if source.n_train > len(train):
            raise InputError(
                f"{source.dataset}: n_train {source.n_train} but only {len(train)} training "
                "images: lower the teacher group's images key"
            )
        keep = numpy_rng(source.seed, "teacher-subset").permutation(len(train))[: source.n_train]
        train = train[np.sort(keep)]
    return images[train], labels[train], images[test], labels[test]


def image_sizes(source: ImageSource, hidden: list[int]) -> list[int]:
    """Layer sizes of a teacher of ``source``'s images, from the data set's registry entry
    (no file is read): flattened prepared inputs, ``hidden``, one output per class."""
    spec = datasets.DATASETS[source.dataset]
    channels, height, width = spec.shape
    if height % source.downsample or width % source.downsample:
        raise InputError(
            f"{source.dataset} images are {height}x{width}: downsample must divide both "
            f"(got {source.downsample})"
        )
    inputs = channels * (height // source.downsample) * (width // source.downsample)
    return [inputs, *hidden, spec.classes]


def query_count(design: dict) -> int:
    """An upper bound on the number of queries of ``design``, from the sizes alone (the
    memory check before any job runs)."""
    if design["distribution"] in ("train", "composition", "noise"):
        source = ImageSource(**design["source"])
        train = source.n_train or datasets.DATASETS[source.dataset].train_images
        return max(train, design["n"]) if design["distribution"] != "train" else train
    return design["n"]


def _holdout(n: int, source: ImageSource) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices, in the data set's order; no test images at fraction 0."""
    if source.test_fraction == 0:
        return np.arange(n), np.arange(0)
    train, test = datasets.holdout_split(n, source.test_fraction, source.seed)
    return np.sort(train), np.sort(test)


def prepare_images(images: np.ndarray, source: ImageSource) -> np.ndarray:
    """Raw images in [0, 1] -> as ``source``'s teacher sees them: downsampled, normalised."""
    if source.downsample > 1:
        images = datasets.downsample(images, source.downsample)
    mean, std = NORMALISATION[source.dataset]
    if images.shape[1] != len(mean):
        raise InputError(
            f"{images.shape[1]}-channel images cannot be shown to a {source.dataset} teacher "
            f"({len(mean)} channels): choose images of a data set with as many channels"
        )
    return (images - np.reshape(mean, (1, -1, 1, 1))) / np.reshape(std, (1, -1, 1, 1))


def other_images(
    dataset: str, root: str | None, checksums: dict[str, str] | None, source: ImageSource
) -> np.ndarray:
    """Another data set's images (train and test split together) prepared for ``source``'s
    teacher: resized (bilinear) to the teacher's raw image size, then downsampled and
    normalised like the teacher's own images."""
    import torch

    images, _ = datasets.load_images(dataset, root, "train", checksums)
    if datasets.has_split(dataset, root, "test"):
        images = np.concatenate([images, datasets.load_images(dataset, root, "test", checksums)[0]])
    target = datasets.DATASETS[source.dataset].shape
    if images.shape[1:] != target:
        if images.shape[1] != target[0]:
            raise InputError(
                f"{dataset} images have {images.shape[1]} channels but {source.dataset} "
                f"teachers see {target[0]}: query with images of a data set with as many channels"
            )
        resized = torch.nn.functional.interpolate(
            torch.from_numpy(images), size=target[1:], mode="bilinear", antialias=True
        )
        images = resized.numpy()
    return prepare_images(images, source)


def query_design(
    text: str, source: ImageSource | None, n: int, seed: int, data: dict | None = None
) -> dict:
    """A query design from its config text: ``gaussian``, ``uniform``, ``train`` (the
    teacher's training images), a data set's name (its images, out of distribution),
    ``composition:P[:rotate]`` (the training images plus composition samples of PxP-pixel
    patches up to ``n`` queries), ``noise:A`` (the training images plus biased noise
    overlays of amplitude A up to ``n``). ``data`` maps data set names to their ``root``
    and ``checksums``."""
    name, _, arguments = text.partition(":")
    design: dict = {"n": n, "seed": seed}
    if name in DISTRIBUTIONS and not arguments:
        return {"distribution": name, **design}
    if source is None:
        raise InputError(
            f"query design {text!r} needs a teacher trained on images; synthetic teachers "
            f"take {' or '.join(DISTRIBUTIONS)}"
        )
    design["source"] = asdict(source)
    if name == "train" and not arguments:
        return {"distribution": "train", **design}
    if source.dataset not in NORMALISATION:
        raise InputError(
            f"query design {text!r} needs a teacher of {', '.join(NORMALISATION)} images; "
            f"{source.dataset} teachers take gaussian, uniform or train"
        )
    if name in datasets.DATASETS and not arguments:
        other = (data or {}).get(name, {})
        return {"distribution": "images", "dataset": name, **other, **design}
    if name == "composition" and re.fullmatch(r"[0-9]+(:rotate)?", arguments):
        patch, _, rotate = arguments.partition(":")
        return {
            "distribution": "composition",
            "patch": int(patch),
            "rotate": bool(rotate),
            **design,
        }
    if name == "noise" and re.fullmatch(r"[0-9]*\.?[0-9]+([eE]-?[0-9]+)?", arguments):
        return {"distribution": "noise", "amplitude": float(arguments), **design}
    raise InputError(
        f"bad query design {text!r}: write gaussian, uniform, train, a data set's name "
        f"({', '.join(datasets.DATASETS)}), composition:PATCH[:rotate] or noise:AMPLITUDE"
    )


def query_inputs(design: dict, n_inputs: int) -> np.ndarray:
    """The inputs the students are trained on, flattened ``(n, n_inputs)``."""
    kind = design["distribution"]
    if kind in DISTRIBUTIONS:
        return sample_inputs(kind, design["n"], n_inputs, design["seed"], "queries")
    source = ImageSource(**design["source"])
    if kind == "images":
        return datasets.flatten(_ood_split(design, source)[0][: design["n"]])
    train = teacher_images(source)[0]
    extra = design["n"] - len(train)
    if kind == "train" or extra <= 0:
        return datasets.flatten(train)
    if kind == "composition":
        new = composition_samples(train, extra, design["patch"], design["seed"], design["rotate"])
    else:
        new = noise_overlays(train, extra, design["amplitude"], design["seed"])
    return datasets.flatten(np.concatenate([train, new]))


def heldout_inputs(design: dict, n_inputs: int) -> np.ndarray:
    """Fresh inputs for evaluation, never the queries: another random stream of the same
    distribution; for image teachers the teacher's test images; for another data set's
    images, its held-out share (up to ``n``)."""
    kind = design["distribution"]
    if kind in DISTRIBUTIONS:
        return sample_inputs(kind, design["n"], n_inputs, design["seed"], "held-out")
    source = ImageSource(**design["source"])
    if kind == "images":
        return datasets.flatten(_ood_split(design, source)[1][: design["n"]])
    test = teacher_images(source)[2]
    if len(test) == 0:
        raise InputError(
            f"{source.dataset} teacher has no held-out images (test_fraction 0): set a "
            "test_fraction above 0 or use gaussian queries"
        )
    return datasets.flatten(test[: design["n"]])


def _ood_split(design: dict, source: ImageSource) -> tuple[np.ndarray, np.ndarray]:
    """Another data set's images for ``source``'s teacher, split by a seeded draw into
    queries and held-out images (the teacher's ``test_fraction`` of them, at least one)."""
    images = other_images(design["dataset"], design.get("root"), design.get("checksums"), source)
    order = numpy_rng(design["seed"], "ood-queries").permutation(len(images))
    n_held = max(1, round(source.test_fraction * len(images)))
    return images[order[n_held:]], images[order[:n_held]]
