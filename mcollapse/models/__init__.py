"""Generative models. Every model implements the same small protocol, so the loop engine
(``mcollapse.loops``) never needs to know a model's internals.

``ClassGaussianMixture`` (``reference.py``) is the cheap, honest reference: no training loop, and
what a self-consuming loop does to it is the Gaussian theory of ``mcollapse.gaussian``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .reference import ClassGaussianMixture


@runtime_checkable
class GenerativeModel(Protocol):
    """x: float32 (N, ...) items (points or NCHW images); y: int64 (N,) labels."""

    def fit(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> None: ...

    def sample(
        self, n: int, bias: float, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


__all__ = ["ClassGaussianMixture", "GenerativeModel"]
