"""Seeding in one place: every random stream derives from one integer seed plus a purpose key.

Streams are independent of each other and of how many there are, so adding a student or a
layer never changes the random numbers another one got.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from expand_and_cluster.errors import InputError


def _entropy(seed: int, keys: tuple[str | int, ...]) -> list[int]:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(f"seed must be a non-negative integer; got {seed!r}")
    return [int(seed)] + [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]


def numpy_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A numpy generator for the stream ``(seed, *keys)``."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(seed, keys)))


def torch_generator(seed: int, *keys: str | int) -> torch.Generator:
    """A CPU torch generator for the stream ``(seed, *keys)``."""
    state = np.random.SeedSequence(_entropy(seed, keys)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))
