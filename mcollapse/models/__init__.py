"""Generative models. Every model implements the same small protocol (``protocol.py``), so the
run engine (``mcollapse.engine``) never needs to know a model's internals.

``ClassGaussianMixture`` (``reference.py``) is the cheap, honest reference: no training loop, and
what a self-consuming loop does to it is the Gaussian theory of ``mcollapse.gaussian``.
"""

from __future__ import annotations

from .protocol import GenerativeModel, Recorded
from .reference import ClassGaussianMixture

__all__ = ["ClassGaussianMixture", "GenerativeModel", "Recorded"]
