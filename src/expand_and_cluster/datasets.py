"""Image data sets: reading, verifying, downloading, preprocessing.

``DATASETS`` names the data sets (MNIST, Fashion-MNIST, CIFAR-10 and scikit-learn's bundled
8x8 digits) with their files, image shapes, classes, mirrors and published checksums.
``load_images`` reads one split as float images in [0, 1], shaped (n, channels, height,
width); every file it reads is checked against a checksum before it is parsed, and every
format problem is an ``InputError`` that names the file and the fix. ``download_dataset``
fetches the published files; ``downsample``, ``flatten`` and ``holdout_split`` prepare the
images for a teacher.

Why not torchvision: torchvision 0.28.0 from PyPI fails to import beside the local CPU build
of torch 2.13.0 ("RuntimeError: operator torchvision::nms does not exist": its _C.so links
CUDA torch libraries), and its CIFAR-10 reader loads the pickled python version, which this
project never unpickles (unpickling runs code). Here CIFAR-10 is read from its binary
version, and the IDX files are parsed with numpy.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
import os
import re
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
_BLOCK = 1 << 20  # files are hashed in 1 MiB blocks, so a large archive never sits in memory


@dataclass(frozen=True)
class ImageDataset:
    """One data set: where its files are, what its images look like, where to get it.

    ``files`` maps a split to the files ``load_images`` reads, relative to the data
    directory; for the IDX format each may also be gzipped (``NAME.gz``, preferred).
    ``downloads`` are the files ``download_dataset`` fetches from each base URL in ``urls``,
    and ``published`` holds their published checksums (``"md5:<hex>"``).
    """

    name: str
    title: str  # how messages name it
    format: str  # "idx", "cifar" (the binary version) or "sklearn" (bundled, no files)
    files: Mapping[str, tuple[str, ...]]
    shape: tuple[int, int, int]  # (channels, height, width)
    classes: int
    train_images: int  # in the published training split (an upper bound before any job runs)
    urls: tuple[str, ...] = ()
    downloads: tuple[str, ...] = ()
    published: Mapping[str, str] = field(default_factory=dict)


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DOWNLOADS = tuple(f"{name}.gz" for split in SPLITS for name in _IDX_FILES[split])
_CIFAR_DIR = "cifar-10-batches-bin"
_CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
_CIFAR_RECORD = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue planes


def _md5s(digests: tuple[str, ...]) -> dict[str, str]:
    return {name: f"md5:{digest}" for name, digest in zip(_IDX_DOWNLOADS, digests, strict=True)}


DATASETS: dict[str, ImageDataset] = {
    "mnist": ImageDataset(
        name="mnist",
        title="MNIST",
        format="idx",
        files=_IDX_FILES,
        shape=(1, 28, 28),
        classes=10,
        train_images=60_000,
        urls=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        downloads=_IDX_DOWNLOADS,
        # The published files' md5s, as torchvision lists them.
        published=_md5s(
            (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            )
        ),
    ),
    "fashion_mnist": ImageDataset(
        name="fashion_mnist",
        title="Fashion-MNIST",
        format="idx",
        files=_IDX_FILES,
        shape=(1, 28, 28),
        classes=10,
        train_images=60_000,
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        downloads=_IDX_DOWNLOADS,
        published=_md5s(
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            )
        ),
    ),
    "cifar10": ImageDataset(
        name="cifar10",
        title="CIFAR-10",
        format="cifar",
        files={
            "train": tuple(f"{_CIFAR_DIR}/data_batch_{i}.bin" for i in range(1, 6)),
            "test": (f"{_CIFAR_DIR}/test_batch.bin",),
        },
        shape=(3, 32, 32),
        classes=10,
        train_images=50_000,
        urls=("https://www.cs.toronto.edu/~kriz/",),
        downloads=(_CIFAR_ARCHIVE,),
        published={_CIFAR_ARCHIVE: "md5:c32a1d4ab5d03f1284b67883e8d87530"},
    ),
    "digits": ImageDataset(
        name="digits",
        title="digits",
        format="sklearn",
        files={},
        shape=(1, 8, 8),
        classes=10,
        train_images=1797,
    ),
}

# What marks CIFAR-10's pickled python version in a data directory.
_PICKLED_CIFAR = ("cifar-10-batches-py", "cifar-10-python.tar.gz", "data_batch_1")


def get_dataset(name: str) -> ImageDataset:
    """The registry entry ``name``, or an InputError listing the choices."""
    if name not in DATASETS:
        raise InputError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}")


# ---------------------------------------------------------------------------------------------
# Checksums


def file_digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


_CHECKSUM = re.compile(r"(md5):([0-9a-f]{32})|(sha256):([0-9a-f]{64})")


def _parse_checksum(file: str, text: str) -> tuple[str, str]:
    """``"md5:<hex>"`` -> ``("md5", "<hex>")``."""
    match = _CHECKSUM.fullmatch(str(text).strip().lower())
    if match is None:
        raise InputError(
            f"data.checksums gives {file} the checksum {text!r}, which is not one: write "
            "md5:<32 hex digits> or sha256:<64 hex digits>"
        )
    algorithm, digest = (g for g in match.groups() if g is not None)
    return algorithm, digest


def _expected_checksum(
    spec: ImageDataset, file: str, checksums: Mapping[str, str] | None
) -> tuple[str, str] | None:
    """(checksum, whose) for a file name: the caller's checksum wins over the published one."""
    if checksums and file in checksums:
        return checksums[file], "data.checksums"
    if file in spec.published:
        return spec.published[file], f"the published {spec.title} file"
    return None


def _mismatch(path: Path, expected: tuple[str, str]) -> str | None:
    """None when the file has the ``(checksum, whose)`` checksum, else what differs."""
    checksum, whose = expected
    algorithm, digest = _parse_checksum(path.name, checksum)
    actual = file_digest(path, algorithm)
    return None if actual == digest else f"{algorithm} {actual} but {whose} has {digest}"


def verify_file(path: Path, spec: ImageDataset, checksums: Mapping[str, str] | None = None) -> None:
    """Check a file against its checksum (the caller's, else the published one).

    A file with neither has its structure checked by the reader only; that is logged once.
    """
    expected = _expected_checksum(spec, path.name, checksums)
    if expected is None:
        _note_unverified(path)
        return
    wrong = _mismatch(path, expected)
    if wrong is None:
        return
    if expected[1] == "data.checksums":
        raise InputError(
            f"{path}: {wrong}: the file is corrupt or not the one data.checksums describes; "
            "replace the file or correct data.checksums"
        )
    raise InputError(
        f"{path}: {wrong}: the file is corrupt or not the published one; delete it and "
        "download again, or, for a subset you made yourself, give its checksum in "
        "data.checksums"
    )


@functools.cache
def _note_unverified(path: Path) -> None:
    # Cached so that a file read many times (one teacher per job) is mentioned once.
    log.info("%s: no published checksum exists for this file; only its structure is checked", path)


# ---------------------------------------------------------------------------------------------
# File formats

# IDX element types: the third byte of the magic number.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when its name ends in ``.gz``."""
    try:
        if path.suffix != ".gz":
            return path.read_bytes()
        with gzip.open(path, "rb") as f:
            return f.read()
    # BadGzipFile is an OSError, so it must be caught first; EOFError is a cut gzip stream.
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise InputError(f"{path}: corrupt gzip ({e}); delete it and download again") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e}") from None


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into an array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_TYPES:
        raise InputError(
            f"{path} is not an IDX file (bad magic number); delete it and download again"
        )
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise InputError(f"{path}: IDX header cut short; the file is truncated, download it again")
    shape = struct.unpack(f">{ndim}I", raw[4:offset])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise InputError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file "
            f"holds {len(raw) - offset}: it is truncated or corrupt; delete it and download again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape)


def _read_idx_pair(
    spec: ImageDataset, images_path: Path, labels_path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 1, h, w), labels) from an IDX images file and its labels file."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != spec.shape[1:]:
        raise InputError(
            f"{images_path}: holds {images.dtype} values of shape {images.shape}, not "
            f"{spec.title} images ({spec.shape[1]}x{spec.shape[2]} bytes); is it the right file?"
        )
    if labels.ndim != 1:
        raise InputError(
            f"{labels_path}: shape {labels.shape} is not a list of labels; is it the right file?"
        )
    if len(labels) != len(images):
        raise InputError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} holds {len(images)} "
            "images: the two files are not a pair; download both again"
        )
    _check_labels(spec, labels_path, labels)
    return images[:, None], labels


def _check_labels(spec: ImageDataset, path: Path, labels: np.ndarray) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= spec.classes):
        raise InputError(
            f"{path}: labels outside 0..{spec.classes - 1}, so not a {spec.title} file; is it "
            "the right file?"
        )


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 3, 32, 32), labels) from a batch of CIFAR-10's binary version."""
    path = Path(path)
    raw = _read_bytes(path)
    if not raw or len(raw) % _CIFAR_RECORD:
        raise InputError(
            f"{path}: {len(raw)} bytes is not a whole number of {_CIFAR_RECORD}-byte CIFAR-10 "
            "records: the file is truncated or corrupt; delete it and download again"
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
    return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]


def _read_cifar(spec: ImageDataset, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, labels) of CIFAR-10 batches, in order."""
    images, labels = [], []
    for path in paths:
        batch_images, batch_labels = read_cifar_batch(path)
        _check_labels(spec, path, batch_labels)
        images.append(batch_images)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


# ---------------------------------------------------------------------------------------------
# Finding the files


def _candidates(spec: ImageDataset, file: str) -> tuple[str, ...]:
    # The gzipped IDX file comes first: it is the one with a published checksum.
    return (f"{file}.gz", file) if spec.format == "idx" else (file,)


def _locate(spec: ImageDataset, root: Path, split: str) -> tuple[list[Path], list[str]]:
    """(the split's files found under ``root``, the names of those missing)."""
    found, missing = [], []
    for file in spec.files[split]:
        names = _candidates(spec, file)
        present = [root / name for name in names if (root / name).is_file()]
        if present:
            found.append(present[0])
        else:
            missing.append(names[0])
    return found, missing


def has_split(name: str, root: str | Path | None, split: str) -> bool:
    """Whether the data directory ``root`` holds every file of the split."""
    spec = get_dataset(name)
    _check_split(split)
    if spec.format == "sklearn":
        return split == "train"  # scikit-learn's digits come as one set
    return root is not None and not _locate(spec, Path(root), split)[1]


def _how_to_get(spec: ImageDataset, root: Path) -> str:
    return (
        f"get them with the study's `download` rule or download_dataset({spec.name!r}, "
        f"{str(root)!r}) from a machine with internet, or set data.root to the folder that "
        "holds them"
    )


def _split_files(spec: ImageDataset, root: str | Path | None, split: str) -> list[Path]:
    """The split's files under ``root``, or an InputError saying what is missing and why."""
    names = ", ".join(_candidates(spec, f)[0] for f in spec.files[split])
    if root is None:
        raise InputError(
            f"no {spec.title} data directory given: set data.root to the folder that holds {names}"
        )
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            f"{spec.title} data directory {root} does not exist: it should hold {names}; "
            f"{_how_to_get(spec, root)}"
        )
    found, missing = _locate(spec, root, split)
    if not missing:
        return found
    if spec.format == "cifar":
        _refuse_pickled_cifar(root)
    if split == "test" and has_split(spec.name, root, "train"):
        raise InputError(
            f"{root} holds no {spec.title} test split (no {', '.join(missing)}): hold out part "
            "of the training images instead (holdout_split), or add the test files there"
        )
    raise InputError(
        f"{root} lacks {', '.join(missing)} of {spec.title} ({split} split): "
        f"{_how_to_get(spec, root)}"
    )


def _refuse_pickled_cifar(root: Path) -> None:
    """CIFAR-10's python version is a set of pickles: say so, and name the version to get."""
    present = [name for name in _PICKLED_CIFAR if (root / name).exists()]
    if present:
        raise InputError(
            f"{root / present[0]} is CIFAR-10's python version, which is pickled and is never "
            f"loaded (unpickling can run code): download {_CIFAR_ARCHIVE} (the binary version) "
            f"and extract it into {root}"
        )


# ---------------------------------------------------------------------------------------------
# Loading


def load_images(
    name: str,
    root: str | Path | None,
    split: str = "train",
    checksums: dict[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One split of a data set: float64 images (n, channels, height, width) in [0, 1] and
    int64 labels.

    ``root`` is the folder that holds the data set's files (ignored for ``digits``).
    ``checksums`` maps a file name to ``"md5:<hex>"`` or ``"sha256:<hex>"`` and overrides the
    published checksum; every file is verified before it is parsed.
    """
    spec = get_dataset(name)
    _check_split(split)
    if spec.format == "sklearn":
        return _load_digits(split)
    paths = _split_files(spec, root, split)
    for path in paths:
        verify_file(path, spec, checksums)
    if spec.format == "idx":
        images, labels = _read_idx_pair(spec, *paths)
    else:
        images, labels = _read_cifar(spec, paths)
    return images.astype(np.float64) / 255.0, labels.astype(np.int64)


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits (one set: its pixels run from 0 to 16)."""
    if split != "train":
        raise InputError(
            "the digits data set has no test split: hold out part of it instead (holdout_split)"
        )
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    return bunch.data.reshape(-1, 1, 8, 8) / 16.0, bunch.target.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Downloading


def download_dataset(
    name: str,
    root: str | Path,
    urls: list[str] | None = None,
    checksums: dict[str, str] | None = None,
) -> list[Path]:
    """Fetch the data set's missing files into ``root`` and return the files ``load_images``
    reads.

    Each file is tried from each base URL in turn (``urls`` overrides the published mirrors;
    ``file://`` works), written under a temporary name and renamed only once its checksum
    (``checksums`` overrides the published one) is right, so a cut download never leaves a
    half file. A file already present is kept when its checksum is right and refused
    otherwise. CIFAR-10's archive is extracted (``tarfile``'s ``data`` filter).
    """
    spec = get_dataset(name)
    if spec.format == "sklearn":
        return []  # bundled with scikit-learn
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for file in spec.downloads:
        target = root / file
        if target.is_file():
            verify_file(target, spec, checksums)
        else:
            _fetch(spec, file, root, list(urls or spec.urls), checksums)
    if spec.format == "cifar" and not all(has_split(name, root, s) for s in SPLITS):
        _extract(root / _CIFAR_ARCHIVE, spec, root)
    return [path for split in SPLITS for path in _locate(spec, root, split)[0]]


def _fetch(
    spec: ImageDataset, file: str, root: Path, urls: list[str], checksums: Mapping[str, str] | None
) -> None:
    """Download ``file`` from the first mirror that serves it with the right checksum."""
    expected = _expected_checksum(spec, file, checksums)
    errors = []
    for base in urls:
        url = f"{base.rstrip('/')}/{file}"
        error = _fetch_one(url, root / file, expected)
        if error is None:
            log.info("downloaded %s", url)
            return
        errors.append(f"{url}: {error}")
    raise InputError(
        f"cannot download {spec.title} file {file}: {'; '.join(errors) or 'no mirror given'}; "
        f"copy the files by hand into {root}"
    )


def _fetch_one(url: str, target: Path, expected: tuple[str, str] | None) -> str | None:
    """Download ``url`` to ``target``: None on success, else why not (nothing is left)."""
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    part = Path(part)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            while block := response.read(_BLOCK):
                out.write(block)
        if expected is not None:
            wrong = _mismatch(part, expected)
            if wrong is not None:
                return f"served a file with {wrong}"
        os.replace(part, target)
        return None
    # URLError, HTTPError and timeouts are OSErrors; a malformed URL is a ValueError.
    except (OSError, ValueError) as e:
        return str(e)
    finally:
        part.unlink(missing_ok=True)


def _extract(archive: Path, spec: ImageDataset, root: Path) -> None:
    """Extract the files ``load_images`` reads from a tar archive into ``root``; they are
    extracted beside it first and moved into place, so a cut extraction leaves no half file."""
    wanted = [file for split in SPLITS for file in spec.files[split]]
    with tempfile.TemporaryDirectory(dir=root, prefix=".extract.") as tmp:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise InputError(
                f"{archive}: cannot extract ({e}); delete it and download again"
            ) from None
        for file in wanted:
            source, target = Path(tmp) / file, root / file
            if not source.is_file():
                raise InputError(
                    f"{archive} has no {file}: it is not {_CIFAR_ARCHIVE}; delete it and download again"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)


# ---------------------------------------------------------------------------------------------
# Preprocessing


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Average pooling over ``factor`` x ``factor`` blocks: (n, c, h, w) -> (n, c, h/f, w/f)."""
    if images.ndim != 4:
        raise InputError(
            f"downsample takes images shaped (n, channels, height, width); got {images.shape}"
        )
    n, c, h, w = images.shape
    if not isinstance(factor, int | np.integer) or factor < 1 or h % factor or w % factor:
        raise InputError(
            f"cannot downsample {h}x{w} images by {factor!r}: the factor must be a positive "
            "integer that divides both the height and the width"
        )
    return images.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def flatten(images: np.ndarray) -> np.ndarray:
    """(n, c, h, w) -> (n, c*h*w), one input vector per image (channel-major); n may be 0
    (a teacher trained on every image has no test images)."""
    return images.reshape(len(images), int(np.prod(images.shape[1:])))


def holdout_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) of ``n`` items, a seeded random ``test_fraction`` held out
    (for data sets without a test split). Both keep the items' order."""
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie strictly between 0 and 1; got {test_fraction}")
    n_test = round(test_fraction * n)
    if not 0 < n_test < n:
        raise InputError(
            f"holding out {test_fraction} of {n} items leaves an empty part: use more items or "
            "another fraction"
        )
    order = numpy_rng(seed, "holdout").permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])
