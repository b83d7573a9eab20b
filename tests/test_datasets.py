"""Image data sets: files built here byte by byte, read back exactly; every broken file is
refused with a message naming it; downloads from file:// mirrors; the real 5k MNIST subset."""

import ast
import gzip
import hashlib
import logging
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from expand_and_cluster import datasets
from expand_and_cluster.datasets import (
    download_dataset,
    downsample,
    flatten,
    has_split,
    holdout_split,
    load_images,
)
from expand_and_cluster.errors import InputError

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
MNIST_5K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-5k"


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes: magic 0 0 8 ndim, big-endian sizes, the data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def mnist_like(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 images whose pixels cover 0..255, and labels 0..9 repeated."""
    images = (np.arange(n * 28 * 28) * 7 % 256).astype(np.uint8).reshape(n, 28, 28)
    return images, np.arange(n, dtype=np.uint8) % 10


def write_idx(root: Path, images, labels, gz: bool = True, prefix: str = "train") -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):  # fmt: skip
        data = idx_bytes(array)
        if gz:
            (root / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (root / name).write_bytes(data)


def sha256s(root: Path) -> dict[str, str]:
    """Every file's checksum, in the form data.checksums takes."""
    return {
        p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.iterdir()
        if p.is_file()
    }


def refusal(func, *args, **kwargs) -> str:
    """The message of the InputError that ``func(*args, **kwargs)`` raises: one line."""
    with pytest.raises(InputError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def mnist_gz(tmp_path):
    images, labels = mnist_like()
    write_idx(tmp_path / "gz", images, labels)
    return tmp_path / "gz", images, labels


def test_idx_images_and_labels_read_back_exactly_from_gzip_and_raw_files(mnist_gz, tmp_path):
    root, images, labels = mnist_gz
    x, y = load_images("mnist", root, checksums=sha256s(root))
    assert x.shape == (30, 1, 28, 28) and x.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], images / 255.0)
    np.testing.assert_array_equal(y, np.arange(30) % 10)
    assert x[0, 0, 0, :3].tolist() == [0.0, 7 / 255, 14 / 255]
    assert x.min() == 0.0 and x.max() == 1.0

    write_idx(tmp_path / "raw", images, labels, gz=False)
    x_raw, y_raw = load_images("fashion_mnist", tmp_path / "raw")  # raw: structure only
    np.testing.assert_array_equal(x_raw, x)
    np.testing.assert_array_equal(y_raw, y)


def test_the_published_checksum_refuses_a_file_that_is_not_the_published_one(mnist_gz):
    root, _, _ = mnist_gz
    message = refusal(load_images, "mnist", root)
    digest = md5(root / f"{IMAGES}.gz")
    assert message.startswith(f"{root / IMAGES}.gz: md5 {digest} but the published MNIST file has f68b3c2dcbeaaa9fbdd348bbdeb94873: ")  # fmt: skip
    assert message.endswith("give its checksum in data.checksums")


def test_a_wrong_checksum_in_the_override_names_the_file(mnist_gz):
    root, _, _ = mnist_gz
    checksums = sha256s(root) | {f"{LABELS}.gz": "md5:" + "0" * 32}
    digest = md5(root / f"{LABELS}.gz")
    message = refusal(load_images, "mnist", root, checksums=checksums)
    assert message.startswith(f"{root / LABELS}.gz: md5 {digest} but data.checksums has {'0' * 32}")  # fmt: skip
    checksums = sha256s(root) | {f"{LABELS}.gz": "crc:1234"}
    message = refusal(load_images, "mnist", root, checksums=checksums)
    assert f"gives {LABELS}.gz the checksum 'crc:1234', which is not one: write md5:<32" in message


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"not a gzip file at all", lambda data: data[: len(data) // 2]],
    ids=["not-gzip", "cut-gzip"],
)
def test_a_corrupt_gzip_is_refused_with_its_name(mnist_gz, damage):
    root, _, _ = mnist_gz
    path = root / f"{IMAGES}.gz"
    path.write_bytes(damage(path.read_bytes()))
    message = refusal(load_images, "mnist", root, checksums=sha256s(root))
    assert message.startswith(f"{path}: corrupt gzip")


def test_a_truncated_idx_file_and_a_cut_header_are_refused(tmp_path):
    images, labels = mnist_like()
    write_idx(tmp_path, images, labels, gz=False)
    path = tmp_path / IMAGES
    path.write_bytes(path.read_bytes()[:-100])
    message = refusal(load_images, "mnist", tmp_path)
    assert message.startswith(f"{path}: IDX header says shape (30, 28, 28) (23520 bytes of data) but the file holds 23420")  # fmt: skip
    path.write_bytes(path.read_bytes()[:10])
    assert refusal(load_images, "mnist", tmp_path).startswith(f"{path}: IDX header cut short")
    path.write_bytes(b"PK\x03\x04 a zip file")
    assert refusal(load_images, "mnist", tmp_path).startswith(f"{path} is not an IDX file")


def test_image_and_label_counts_must_match(tmp_path):
    images, labels = mnist_like()
    write_idx(tmp_path, images, labels[:29], gz=False)
    message = refusal(load_images, "mnist", tmp_path)
    assert message.startswith(f"{tmp_path / LABELS}: 29 labels but {IMAGES} holds 30 images")


def test_a_labels_file_in_place_of_the_images_is_refused(tmp_path):
    _, labels = mnist_like()
    write_idx(tmp_path, labels, labels, gz=False)
    message = refusal(load_images, "mnist", tmp_path)
    assert message.startswith(f"{tmp_path / IMAGES}: holds uint8 values of shape (30,), not MNIST")


def cifar_batch(n: int, start: int) -> tuple[np.ndarray, np.ndarray, bytes]:
    """n 3x32x32 images with distinct values per channel, labels, and the binary records."""
    images = ((np.arange(n * 3072) + start) % 256).astype(np.uint8).reshape(n, 3, 32, 32)
    labels = ((np.arange(n) + start) % 10).astype(np.uint8)
    records = np.concatenate([labels[:, None], images.reshape(n, -1)], axis=1)
    return images, labels, records.tobytes()


def write_cifar(root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Five training batches of 2 images and a test batch of 3: (train x, y, test x, y)."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    train = [cifar_batch(2, 11 * i) for i in range(5)]
    for i, (_, _, data) in enumerate(train, start=1):
        (folder / f"data_batch_{i}.bin").write_bytes(data)
    test_images, test_labels, data = cifar_batch(3, 99)
    (folder / "test_batch.bin").write_bytes(data)
    train_images = np.concatenate([b[0] for b in train])
    return train_images, np.concatenate([b[1] for b in train]), test_images, test_labels


def test_cifar_binary_batches_read_back_channel_major(tmp_path):
    train_images, _, test_images, _ = write_cifar(tmp_path)
    x, y = load_images("cifar10", tmp_path)
    assert x.shape == (10, 3, 32, 32)
    np.testing.assert_array_equal(x, train_images / 255.0)
    assert y.tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    # The first record's bytes after its label are the red plane, then green, then blue.
    assert x[0, 1, 0, 0] == (1024 % 256) / 255 and x[2, 0, 0, 0] == 11 / 255
    x_test, y_test = load_images("cifar10", tmp_path, "test")
    np.testing.assert_array_equal(x_test, test_images / 255.0)
    assert y_test.tolist() == [9, 0, 1]


def test_a_truncated_cifar_batch_is_refused_with_its_name(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-bin" / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    message = refusal(load_images, "cifar10", tmp_path)
    assert message.startswith(f"{path}: 6145 bytes is not a whole number of 3073-byte")


def test_cifar_python_version_is_refused_and_pickle_is_never_imported(tmp_path):
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x04 a pickle")
    message = refusal(load_images, "cifar10", tmp_path)
    assert "pickled" in message and "never loaded" in message
    assert "cifar-10-binary.tar.gz" in message and str(tmp_path) in message

    tree = ast.parse(Path(datasets.__file__).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}  # fmt: skip
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "pickle" not in imported and "numpy" in imported


def test_missing_files_name_what_is_expected_and_how_to_get_it(tmp_path):
    assert refusal(load_images, "svhn", tmp_path) == "unknown data set 'svhn': choose one of mnist, fashion_mnist, cifar10, digits"  # fmt: skip
    nope = tmp_path / "nope"
    assert refusal(load_images, "mnist", nope) == (
        f"MNIST data directory {nope} does not exist: it should hold {IMAGES}.gz, {LABELS}.gz; "
        f"get them with the study's `download` rule or download_dataset('mnist', '{nope}') "
        "from a machine with internet, or set data.root to the folder that holds them"
    )
    message = refusal(load_images, "cifar10", None)
    assert message.startswith("no CIFAR-10 data directory given: set data.root")
    images, labels = mnist_like()
    write_idx(tmp_path, images, labels, gz=False)
    (tmp_path / LABELS).unlink()
    message = refusal(load_images, "mnist", tmp_path)
    assert message.startswith(f"{tmp_path} lacks {LABELS}.gz of MNIST (train split): get them with the study's `download` rule")  # fmt: skip
    message = refusal(load_images, "mnist", tmp_path, "validation")
    assert message == "unknown split 'validation': choose one of train, test"


def test_an_absent_test_split_says_so_and_points_to_a_holdout(tmp_path):
    images, labels = mnist_like()
    write_idx(tmp_path, images, labels, gz=False)
    assert has_split("mnist", tmp_path, "train") and not has_split("mnist", tmp_path, "test")
    assert not has_split("mnist", None, "train")
    message = refusal(load_images, "mnist", tmp_path, "test")
    assert message.startswith(f"{tmp_path} holds no MNIST test split (no t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz): hold out")  # fmt: skip
    write_idx(tmp_path, images[:4], labels[:4], prefix="t10k")
    assert has_split("mnist", tmp_path, "test")
    assert load_images("mnist", tmp_path, "test", checksums=sha256s(tmp_path))[0].shape == (4, 1, 28, 28)  # fmt: skip


def test_a_file_without_a_published_checksum_is_logged_once(tmp_path, caplog):
    images, labels = mnist_like()
    write_idx(tmp_path, images, labels, gz=False)
    with caplog.at_level(logging.INFO, logger="expand_and_cluster.datasets"):
        load_images("mnist", tmp_path)
        load_images("mnist", tmp_path)
        load_images("mnist", tmp_path, checksums=sha256s(tmp_path))  # named: nothing to log
    notes = [r.getMessage() for r in caplog.records if "no published checksum" in r.getMessage()]
    note = "no published checksum exists for this file; only its structure is checked"
    assert notes == [f"{tmp_path / IMAGES}: {note}", f"{tmp_path / LABELS}: {note}"]


@pytest.fixture
def mirror(tmp_path):
    """A file:// mirror of MNIST-like train and test files, and their md5 checksums."""
    images, labels = mnist_like()
    write_idx(tmp_path / "mirror", images, labels)
    write_idx(tmp_path / "mirror", images[:5], labels[:5], prefix="t10k")
    sums = {p.name: "md5:" + md5(p) for p in (tmp_path / "mirror").iterdir()}
    return tmp_path / "mirror", sums


def test_download_from_a_file_mirror_fills_an_empty_directory_and_verifies(mirror, tmp_path):
    source, sums = mirror
    root = tmp_path / "data" / "mnist"
    paths = download_dataset("mnist", root, urls=[source.as_uri()], checksums=sums)
    assert [p.name for p in paths] == [f"{IMAGES}.gz", f"{LABELS}.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # fmt: skip
    assert sorted(p.name for p in root.iterdir()) == sorted(sums)  # no temporary file left
    assert all(md5(p) == sums[p.name][4:] for p in paths)
    x, y = load_images("mnist", root, checksums=sums)
    assert x.shape == (30, 1, 28, 28) and y[:12].tolist() == [*range(10), 0, 1]
    # Present and verified: kept, even with no mirror that could serve it.
    assert download_dataset("mnist", root, urls=[], checksums=sums) == paths


def test_a_mirror_serving_a_wrong_file_is_rejected_and_leaves_nothing(mirror, tmp_path):
    source, sums = mirror
    root = tmp_path / "empty"
    # Without the override the published md5s apply, and these files are not the published ones.
    gone = (tmp_path / "gone").as_uri()
    message = refusal(download_dataset, "mnist", root, urls=[source.as_uri(), gone])
    assert f"{source.as_uri()}/{IMAGES}.gz: served a file with md5 {sums[IMAGES + '.gz'][4:]} but the published MNIST file has f68b3c2dcbeaaa9fbdd348bbdeb94873" in message  # fmt: skip
    assert f"; {gone}/{IMAGES}.gz: <urlopen error [Errno 2] No such file or directory" in message
    assert message.endswith(f"copy the files by hand into {root}")
    assert list(root.iterdir()) == []
    # A bad first mirror falls through to a good second one.
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in sums:
        (bad / name).write_bytes(b"wrong")
    paths = download_dataset("mnist", root, urls=[bad.as_uri(), source.as_uri()], checksums=sums)
    assert len(paths) == 4 and all(md5(p) == sums[p.name][4:] for p in paths)


def test_a_present_file_with_a_wrong_checksum_is_not_overwritten(mirror, tmp_path):
    source, sums = mirror
    root = tmp_path / "data"
    root.mkdir()
    (root / f"{IMAGES}.gz").write_bytes(b"a subset of my own")
    path = root / f"{IMAGES}.gz"
    message = refusal(download_dataset, "mnist", root, urls=[source.as_uri()], checksums=sums)
    assert message.startswith(
        f"{path}: md5 {md5(path)} but data.checksums has {sums[path.name][4:]}"
    )
    assert (root / f"{IMAGES}.gz").read_bytes() == b"a subset of my own"


def test_cifar_download_extracts_the_binary_archive(tmp_path):
    train_images, _, _, test_labels = write_cifar(tmp_path / "build")
    source = tmp_path / "mirror"
    source.mkdir()
    archive = source / "cifar-10-binary.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    root = tmp_path / "cifar"
    sums = {archive.name: "md5:" + md5(archive)}
    paths = download_dataset("cifar10", root, urls=[source.as_uri()], checksums=sums)
    assert [p.name for p in paths] == [*(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin"]  # fmt: skip
    np.testing.assert_array_equal(load_images("cifar10", root)[0], train_images / 255.0)
    assert load_images("cifar10", root, "test")[1].tolist() == test_labels.tolist()
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-bin", archive.name]


def test_downsample_averages_blocks_and_flatten_keeps_channel_order():
    images = np.arange(2 * 1 * 4 * 4, dtype=np.float64).reshape(2, 1, 4, 4)
    small = downsample(images, 2)
    assert small.shape == (2, 1, 2, 2)
    assert small[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]  # e.g. (0 + 1 + 4 + 5) / 4
    assert small[1, 0, 1, 1] == (26 + 27 + 30 + 31) / 4
    assert downsample(np.zeros((3, 1, 28, 28)), 2).shape == (3, 1, 14, 14)
    assert np.array_equal(downsample(images, 1), images)
    with pytest.raises(InputError, match="cannot downsample 4x4 images by 3"):
        downsample(images, 3)
    flat = flatten(np.arange(24).reshape(2, 3, 2, 2))
    assert flat.shape == (2, 12) and flat[1, :5].tolist() == [12, 13, 14, 15, 16]


def test_holdout_split_is_seeded_disjoint_and_complete():
    train, test = holdout_split(100, 0.2, seed=3)
    assert len(train) == 80 and len(test) == 20
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(100))
    again_train, again_test = holdout_split(100, 0.2, seed=3)
    assert np.array_equal(again_test, test) and np.array_equal(again_train, train)
    assert not np.array_equal(holdout_split(100, 0.2, seed=4)[1], test)
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        holdout_split(100, 1.0, seed=3)
    with pytest.raises(InputError, match="leaves an empty part"):
        holdout_split(2, 0.1, seed=3)


def test_digits_are_the_bundled_8x8_images_in_the_unit_interval():
    x, y = load_images("digits", None)
    assert x.shape == (1797, 1, 8, 8) and x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert has_split("digits", None, "train") and not has_split("digits", None, "test")
    with pytest.raises(InputError, match="digits data set has no test split"):
        load_images("digits", None, "test")


def published_sha256s() -> dict[str, str]:
    """The subset's sha256s as shared/data/README.md lists them."""
    lines = (MNIST_5K.parent / "README.md").read_text().splitlines()
    pairs = [line.removeprefix("- ").split() for line in lines if line.startswith("- train-")]
    return {name: f"sha256:{digest}" for name, digest in pairs}


@pytest.mark.skipif(not MNIST_5K.is_dir(), reason=f"the real MNIST subset is not at {MNIST_5K}")
def test_the_real_5k_mnist_subset():
    checksums = published_sha256s()
    assert len(checksums) == 2
    x, y = load_images("mnist", MNIST_5K, checksums=checksums)
    assert x.shape == (5000, 1, 28, 28) and x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y).tolist() == [500] * 10
    assert not has_split("mnist", MNIST_5K, "test")
    # A subset, not the published files: the published md5 refuses it.
    path = MNIST_5K / f"{IMAGES}.gz"
    message = refusal(load_images, "mnist", MNIST_5K)
    assert message.startswith(f"{path}: md5 {md5(path)} but the published MNIST file has f68b3c2dcbeaaa9fbdd348bbdeb94873")  # fmt: skip
