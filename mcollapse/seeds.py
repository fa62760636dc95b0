"""Named random streams: one seed gives every experiment its own independent, stable stream.

Keying streams by name (not by the order they are drawn) means adding an experiment to a notebook
does not change the numbers of the others.
"""

from __future__ import annotations

import zlib

import numpy as np

from ._checks import check_int


def seed_sequence(seed: int, *names: str) -> np.random.SeedSequence:
    """A SeedSequence for ``seed`` and a path of names, e.g. ``seed_sequence(7, "mad", "0.9")``."""
    seed = check_int("seed", seed, minimum=0)
    keys = [zlib.crc32(str(name).encode()) for name in names]
    return np.random.SeedSequence([seed, *keys])


def stream(seed: int, *names: str) -> np.random.Generator:
    """A numpy Generator for ``seed`` and a path of names."""
    return np.random.default_rng(seed_sequence(seed, *names))
