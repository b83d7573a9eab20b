"""Query augmentations: new inputs made from a teacher's training images, for teachers with
more parameters than training images (Beiser, Martinelli, Gerstner, Brea, 2025).

Both work on images ``(n, channels, height, width)`` in the teacher's normalised pixel
space and return new images of the same shape; every random choice comes from ``seed``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from expand_and_cluster.errors import InputError
from expand_and_cluster.seeding import numpy_rng


def composition_samples(
    images: np.ndarray, n: int, patch: int, seed: int, rotate: bool = False
) -> np.ndarray:
    """``n`` new images, each tiled from ``patch`` x ``patch`` pixel patches (the last row
    and column of patches are smaller when ``patch`` does not divide the image) taken at
    the same position in independently drawn source images. With ``rotate`` each new
    image is then turned by an angle drawn uniformly from [0, 360) degrees (bilinear,
    corners filled with the source images' mean background value)."""
    _check_images(images, n)
    _, _, height, width = images.shape
    if not 1 <= patch <= min(height, width):
        raise InputError(
            f"composition patch size {patch} must be between 1 and the image size "
            f"{height}x{width}: e.g. composition:4 for 4x4-pixel patches"
        )
    rng = numpy_rng(seed, "composition")
    out = np.empty((n, *images.shape[1:]))
    for top in range(0, height, patch):
        for left in range(0, width, patch):
            source = rng.integers(len(images), size=n)
            window = (slice(None), slice(top, top + patch), slice(left, left + patch))
            out[(slice(None), *window)] = images[(source, *window)]
    if rotate:
        background = float(images[:, :, 0, 0].mean())
        angles = rng.uniform(0.0, 360.0, size=n)
        for i, angle in enumerate(angles):
            out[i] = ndimage.rotate(
                out[i], angle, axes=(1, 2), reshape=False, order=1, cval=background
            )
    return out


def noise_overlays(images: np.ndarray, n: int, amplitude: float, seed: int) -> np.ndarray:
    """``n`` new images: a randomly drawn training image plus i.i.d. uniform noise per
    pixel, in [0, amplitude] for the first half and in [-amplitude, 0] for the second
    (the follow-up's biased overlays: one-signed noise moves every pixel the same way)."""
    _check_images(images, n)
    if not amplitude > 0:
        raise InputError(f"noise amplitude must be positive; got {amplitude}: e.g. noise:1")
    rng = numpy_rng(seed, "noise-overlay")
    base = images[rng.integers(len(images), size=n)]
    noise = rng.uniform(0.0, amplitude, size=base.shape)
    sign = np.where(np.arange(n) < (n + 1) // 2, 1.0, -1.0)
    return base + sign[:, None, None, None] * noise


def _check_images(images: np.ndarray, n: int) -> None:
    if images.ndim != 4 or len(images) == 0:
        raise InputError(
            f"augmentations need images (n, channels, height, width); got shape {images.shape}"
        )
    if n < 1:
        raise InputError(f"need at least one augmented image; got n={n}")
