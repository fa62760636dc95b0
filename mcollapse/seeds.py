"""Named random streams: one seed gives every experiment its own independent, stable stream.

Keying streams by name (not by the order they are drawn) means adding an experiment to a notebook
does not change the numbers of the others.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from ._checks import check_int


def seed_sequence(seed: int, *names: str) -> np.random.SeedSequence:
    """A SeedSequence for ``seed`` and a path of names, e.g. ``seed_sequence(7, "mad", "0.9")``."""
    seed = check_int("seed", seed, minimum=0)
    keys = [zlib.crc32(str(name).encode()) for name in names]
    return np.random.SeedSequence([seed, *keys])


def stream(seed: int, *names: str) -> np.random.Generator:
    """A numpy Generator for ``seed`` and a path of names."""
    return np.random.default_rng(seed_sequence(seed, *names))


def derive(seed: int, *names: str) -> int:
    """A 64-bit integer seed for ``seed`` and a path of names (for APIs that take an int)."""
    return int(seed_sequence(seed, *names).generate_state(1, np.uint64)[0])


def torch_generator(seed: int, *names: str, device=None) -> torch.Generator:
    """A torch Generator for ``seed`` and a path of names, e.g. a held-out test draw."""
    return torch.Generator(device or "cpu").manual_seed(derive(seed, *names))


def run_seeds(seed: int, n: int) -> list[int]:
    """The seeds of n independent runs starting at ``seed``: ``seed, seed + 1, ...``. Each run
    derives all its streams from its own seed by name, so neighbouring seeds share nothing."""
    seed, n = check_int("seed", seed, minimum=0), check_int("n", n, minimum=1)
    return list(range(seed, seed + n))
