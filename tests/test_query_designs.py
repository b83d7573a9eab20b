"""Query designs for teachers trained on images: the teacher's own images, another data
set's, composition samples and noise overlays; shapes, value ranges, seeds, and that
composition samples really mix patches of different images."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from expand_and_cluster.augment import composition_samples, noise_overlays
from expand_and_cluster.data import (
    NORMALISATION,
    ImageSource,
    heldout_inputs,
    image_sizes,
    query_count,
    query_design,
    query_inputs,
    teacher_images,
)
from expand_and_cluster.datasets import flatten
from expand_and_cluster.errors import InputError
from expand_and_cluster.teachers import classification_accuracy, train_teacher

MNIST_5K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-5k"
MNIST_5K_SHA256 = {
    "train-images-idx3-ubyte.gz": "sha256:92844db5e7e28e7ac93429ac2dd6e8d22ec59066bbf2251eff103e4a123109f1",
    "train-labels-idx1-ubyte.gz": "sha256:b2c2ef9d45711d55574171c373912175ea8ca30fa004a5671f96a03787772fdd",
}


def write_mnist(root: Path, n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small MNIST-format training split (random 28x28 bytes, labels 0..9) in ``root``."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    for name, array in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        (root / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))
    return images, labels


def source_for(root: Path, **more) -> ImageSource:
    """An MNIST source on generated files (their own checksums: they are not the published)."""
    import hashlib

    checksums = {
        p.name: "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()
    }
    return ImageSource("mnist", str(root), checksums, **more)


def stack(rows: int = 8, size: int = 8) -> np.ndarray:
    """Images whose every pixel is its image's index: a composed image shows where each
    patch came from."""
    return np.broadcast_to(np.arange(rows, dtype=float)[:, None, None, None], (rows, 1, size, size))


def test_composition_tiles_same_position_patches_from_different_images():
    images = stack(rows=50, size=8)
    out = composition_samples(images, n=20, patch=4, seed=3)
    assert out.shape == (20, 1, 8, 8)
    # Each 4x4 patch is uniform (one source image), and a sample mixes several sources.
    patches = out.reshape(20, 2, 4, 2, 4).transpose(0, 1, 3, 2, 4).reshape(20, 4, 16)
    assert np.all(patches.min(axis=2) == patches.max(axis=2))
    sources = patches[:, :, 0]
    assert np.mean([len(set(s)) > 1 for s in sources]) > 0.9
    np.testing.assert_array_equal(out, composition_samples(images, n=20, patch=4, seed=3))
    assert not np.array_equal(out, composition_samples(images, n=20, patch=4, seed=4))


def test_composition_of_real_pixels_keeps_each_pixel_from_a_source_at_its_position():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(30, 1, 7, 7))
    out = composition_samples(images, n=10, patch=3, seed=1)  # 3 does not divide 7
    for sample in out:
        for r in range(7):
            for c in range(7):
                assert np.any(np.isclose(images[:, 0, r, c], sample[0, r, c]))


def test_rotated_composition_keeps_shape_and_value_range():
    images = np.random.default_rng(1).uniform(0, 1, size=(20, 1, 10, 10))
    out = composition_samples(images, n=5, patch=5, seed=0, rotate=True)
    assert out.shape == (5, 1, 10, 10)
    assert out.min() >= -1e-12 and out.max() <= 1 + 1e-12


def test_noise_overlays_are_one_signed_halves():
    images = np.zeros((10, 1, 4, 4))
    out = noise_overlays(images, n=9, amplitude=0.5, seed=2)
    assert out.shape == (9, 1, 4, 4)
    assert np.all(out[:5] >= 0) and np.all(out[:5] <= 0.5)
    assert np.all(out[5:] <= 0) and np.all(out[5:] >= -0.5)
    assert 0.2 < out[:5].mean() < 0.3  # uniform on [0, 0.5]: mean 0.25
    np.testing.assert_array_equal(out, noise_overlays(images, n=9, amplitude=0.5, seed=2))


def test_bad_augmentation_arguments_are_refused():
    images = stack()
    with pytest.raises(InputError, match="patch size 9"):
        composition_samples(images, 3, patch=9, seed=0)
    with pytest.raises(InputError, match="amplitude must be positive"):
        noise_overlays(images, 3, amplitude=0.0, seed=0)
    with pytest.raises(InputError, match=r"\(n, channels, height, width\)"):
        noise_overlays(images[:, 0], 3, amplitude=1.0, seed=0)


def test_teacher_images_hold_out_a_seeded_test_share_and_normalise(tmp_path):
    raw, labels = write_mnist(tmp_path / "mnist", n=60)
    source = source_for(tmp_path / "mnist", downsample=2, test_fraction=0.25, seed=1)
    x, y, x_test, y_test = teacher_images(source)
    assert x.shape == (45, 1, 14, 14) and x_test.shape == (15, 1, 14, 14)
    # Downsampled by 2x2 averages of pixels / 255, then MNIST's normalisation.
    everything = np.concatenate([x, x_test])
    mean, std = NORMALISATION["mnist"]
    pooled = raw.reshape(60, 14, 2, 14, 2).mean(axis=(2, 4)) / 255.0
    expected = np.sort(((pooled - mean[0]) / std[0]).reshape(60, -1), axis=0)
    np.testing.assert_allclose(np.sort(everything.reshape(60, -1), axis=0), expected)
    assert sorted(np.concatenate([y, y_test]).tolist()) == sorted(labels.tolist())
    again = teacher_images(source)
    np.testing.assert_array_equal(x, again[0])
    everything = teacher_images(source_for(tmp_path / "mnist", test_fraction=0))
    assert everything[0].shape == (60, 1, 28, 28) and flatten(everything[2]).shape == (0, 784)
    subset = teacher_images(source_for(tmp_path / "mnist", test_fraction=0.25, n_train=10))
    assert subset[0].shape == (10, 1, 28, 28)
    with pytest.raises(InputError, match="n_train 100 but only 45"):
        teacher_images(source_for(tmp_path / "mnist", test_fraction=0.25, n_train=100))


def test_query_designs_on_an_image_teacher(tmp_path):
    write_mnist(tmp_path / "mnist", n=60)
    source = source_for(tmp_path / "mnist", downsample=2, test_fraction=0.25)
    assert image_sizes(source, [16]) == [196, 16, 10]
    train, _, test, _ = teacher_images(source)
    for text, n_queries in (
        ("train", 45),
        ("composition:4", 100),
        ("composition:3:rotate", 100),
        ("noise:1", 100),
        ("gaussian", 100),
    ):
        design = query_design(text, source, 100, seed=0)
        x = query_inputs(design, 196)
        assert x.shape == (n_queries, 196), text
        assert query_count(design) >= len(x)
        np.testing.assert_array_equal(x, query_inputs(design, 196))
        if text != "gaussian":
            # Augmented sets start with the teacher's own training images.
            np.testing.assert_array_equal(x[:45], train.reshape(45, -1))
            np.testing.assert_array_equal(
                heldout_inputs({**design, "n": 1000}, 196), test.reshape(15, -1)
            )


def test_another_data_sets_images_are_resized_and_split(tmp_path):
    write_mnist(tmp_path / "mnist", n=20)
    source = source_for(tmp_path / "mnist", downsample=2, test_fraction=0.2)
    design = query_design("digits", source, 5000, seed=0)
    queries, held_out = query_inputs(design, 196), heldout_inputs({**design, "n": 10**6}, 196)
    # 1797 digits, 20% held out, none in both.
    assert queries.shape == (1797 - 359, 196) and held_out.shape == (359, 196)
    assert not set(map(bytes, queries)) & set(map(bytes, held_out))
    # Upscaled digits keep their blank corners (pixel 0, normalised like MNIST's
    # background) and their ink (up to pixel 1) in the middle.
    mean, std = NORMALISATION["mnist"]
    background = -mean[0] / std[0]
    images = queries.reshape(-1, 14, 14)
    assert np.mean(np.isclose(images[:, 0, 0], background, atol=0.05)) > 0.9
    assert images[:, 5:9, 5:9].max() > 2.0


def test_bad_query_designs_name_the_fix(tmp_path):
    write_mnist(tmp_path / "mnist", n=20)
    source = source_for(tmp_path / "mnist")
    for text in ("composition", "noise:x", "svhn", "train:2"):
        with pytest.raises(InputError, match="bad query design"):
            query_design(text, source, 10, 0)
    with pytest.raises(InputError, match="needs a teacher trained on images"):
        query_design("train", None, 10, 0)
    digits = ImageSource("digits")
    with pytest.raises(InputError, match="digits teachers take gaussian, uniform or train"):
        query_design("composition:2", digits, 10, 0)


def test_sgd_teacher_learns_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 3
    labels = np.repeat(np.arange(3), 100)
    x = centres[labels] + rng.normal(size=(300, 5)) * 0.3
    teacher = train_teacher(x, labels, [8], "tanh", 0, epochs=20, lr=0.1, optimizer="sgd")
    assert teacher.widths == [5, 8, 3]
    assert classification_accuracy(teacher, x, labels) > 0.98
    assert classification_accuracy(teacher, x[:0], labels[:0]) is None
    with pytest.raises(InputError, match="unknown teacher optimizer"):
        train_teacher(x, labels, [8], "tanh", 0, epochs=1, optimizer="lbfgs")


@pytest.mark.skipif(not MNIST_5K.is_dir(), reason=f"the 5k MNIST subset is not at {MNIST_5K}")
def test_real_mnist_subset_teacher_images():
    source = ImageSource("mnist", str(MNIST_5K), MNIST_5K_SHA256, downsample=2, seed=0)
    x, y, x_test, y_test = teacher_images(source)
    assert x.shape == (4000, 1, 14, 14) and x_test.shape == (1000, 1, 14, 14)
    assert np.bincount(np.concatenate([y, y_test])).tolist() == [500] * 10
    # MNIST's normalisation gives about zero mean and unit spread on its images.
    assert abs(x.mean()) < 0.1 and 0.8 < x.std() < 1.1


def trained_metrics(network, teacher, expansion, mask=None, silent=()):
    """recovery_metrics of ``network`` against ``teacher`` labelled as an MNIST recovery,
    on queries whose ``silent`` inputs are always 0 (an MNIST border pixel)."""
    from expand_and_cluster.evaluate import EvaluationSettings, recovery_labels, recovery_metrics

    labels = recovery_labels(
        "mnist-tanh-3-train-s0", "mnist", "tanh", teacher.widths, expansion, 0.5, 60, "train"
    )
    summary = {**labels, "n_students": 2, "status": "ok", "reason": None, "diagnostics": None}
    x = np.random.default_rng(0).normal(size=(200, 6))
    x[:, list(silent)] = 0.0
    return recovery_metrics(
        summary, teacher, network, np.array([1e-4, 4e-4]), np.zeros(2), [12], x, teacher(x), x,
        EvaluationSettings(), teacher_test_accuracy=0.91, input_mask=mask,
    )  # fmt: skip


def test_trained_table_reports_overhead_angles_and_rmse():
    from expand_and_cluster.figures import trained_teachers_figure
    from expand_and_cluster.network import MLP
    from expand_and_cluster.tables import trained_rows
    from expand_and_cluster.teachers import synthetic_teacher

    teacher = synthetic_teacher("6,3,2", "tanh", 0)
    # One excess neuron with no outgoing weight: the function is the teacher's.
    w, b = teacher.weights, teacher.biases
    extra = MLP(
        [np.vstack([w[0], np.ones((1, 6))]), np.hstack([w[1], np.zeros((2, 1))])],
        [np.append(b[0], 0.0), b[1]],
        "tanh",
    )
    mask = np.array([True] * 4 + [False] * 2)
    rows = trained_rows(
        [trained_metrics(teacher, teacher, 1), trained_metrics(extra, teacher, 4, mask)]
    )
    exact, wider = rows
    assert exact["dataset"] == "mnist" and exact["queries"] == "train"
    assert exact["overhead_pct"] == "+0.0" and exact["status"] == "exact"
    assert float(exact["first_layer_angle_max_deg"]) < 1e-6
    assert exact["masked_angle_median_deg"] == "" and exact["mask_kept"] == ""
    assert exact["student_rmse_median"] == "0.0158"  # sqrt of the median loss 2.5e-4
    assert exact["recovered_rmse"] == "0" and exact["teacher_test_accuracy"] == "0.91"
    assert wider["recovered_widths"] == "4" and wider["overhead_pct"] == "+33.3"
    assert wider["mask_kept"] == "4/6" and float(wider["masked_angle_max_deg"]) < 1e-6
    assert wider["status"] == "inexact"
    synthetic = {**trained_metrics(teacher, teacher, 1), "kind": "synthetic"}
    assert trained_rows([synthetic]) == []
    fig = trained_teachers_figure([trained_metrics(teacher, teacher, 1)])
    assert len(fig.axes) == 2


def test_with_a_mask_weights_on_silent_inputs_do_not_decide_the_status():
    from expand_and_cluster.network import MLP
    from expand_and_cluster.teachers import synthetic_teacher

    teacher = synthetic_teacher("6,3,2", "tanh", 0)
    w = [v.copy() for v in teacher.weights]
    w[0][:, 4:] += 3.0  # inputs 4 and 5 are always 0: the queries cannot see these weights
    recovered = MLP(w, teacher.biases, "tanh")
    mask = np.array([True] * 4 + [False] * 2)
    with_mask = trained_metrics(recovered, teacher, 4, mask, silent=(4, 5))
    assert with_mask["status"] == "exact" and with_mask["missing"] == [0]
    assert with_mask["first_layer_angle_deg_masked"]["max"] < 1e-4  # float64 arccos near 1
    assert with_mask["first_layer_angle_deg"]["median"] > 10  # over every input
    without = trained_metrics(recovered, teacher, 4, silent=(4, 5))
    assert without["status"] == "inexact"
