"""Parameter checks that fail early, with a message naming the parameter, its value and what is allowed."""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not an integer in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    low = "-inf" if minimum is None else minimum
    high = "inf" if maximum is None else maximum
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value}")
    return value


def check_bias(name: str, value) -> float:
    """The sampling bias lambda of MAD: a number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value <= 1.0:
        raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    return float(value)


def check_positive(name: str, value, allow_zero: bool = False) -> float:
    """A finite real number > 0 (or >= 0 with ``allow_zero``)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        allowed = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return float(value)


def check_image_shape(name: str, value, divisible_by: int = 1) -> tuple[int, int, int]:
    """(channels, height, width) of positive integers, height and width divisible as a network's
    down-sampling needs; a ValueError naming the parameter otherwise."""
    ok = (
        isinstance(value, tuple | list)
        and len(value) == 3
        and all(isinstance(s, numbers.Integral) and s >= 1 for s in value)
        and value[1] % divisible_by == 0
        and value[2] % divisible_by == 0
    )
    if not ok:
        rule = f" with height and width divisible by {divisible_by}" if divisible_by > 1 else ""
        raise ValueError(f"{name} must be (channels, height, width){rule}, got {value!r}")
    return tuple(int(s) for s in value)


def check_items(name: str, x, shape: tuple[int, ...]):
    """A float tensor of N >= 1 items of ``shape`` (a model's input), or a ValueError naming it."""
    import torch

    if not isinstance(x, torch.Tensor) or tuple(x.shape[1:]) != tuple(shape) or len(x) == 0:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(
            f"{name} must be a tensor of shape (N >= 1, {', '.join(map(str, shape))}), got {got}"
        )
    return x.float()


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    """One of a fixed set of strings."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def as_generator(seed) -> np.random.Generator:
    """Accept a seed, a SeedSequence or a Generator; never touch numpy's global state."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ValueError("seed must be an int, a numpy SeedSequence or a numpy Generator, got None")
    return np.random.default_rng(seed)
