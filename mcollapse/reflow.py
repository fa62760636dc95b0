"""Repeated reflow and the collapse-avoiding reflows of Zhu et al. (arXiv 2412.08175).

``ReflowSpec`` is the engine's step for reflow. Generation 1 is 1-rectified flow trained on the real
data (independent noise-data pairing), shared by every scheme; generation g >= 2 is g-rectified
flow: a flow trained for ``train_steps`` (fine-tuned from generation g - 1, or from scratch with
``init="scratch"``) on pairs (z, x) that generation g - 1 (the "teacher") makes, one scheme per run:

- ``reflow``: synthetic pairs only, (z, Phi(z)) from the teacher's forward ODE (Liu et al.).
  Trained on nothing but its own outputs, the flow collapses over generations (Zhu et al.).
- ``rca`` (real-data-augmented reflow; "RA" in their v2): real pairs (Phi^{-1}(x), x) from running
  the flow backwards on the real data, mixed into every mini-batch at ``real_ratio`` with the
  synthetic pairs; the real pairs are re-inverted with the network in training every ``refresh``
  steps (0: once per generation, with the teacher).
- ``ocar`` (online reflow; "ORA"): both kinds of pairs made afresh for every mini-batch (fresh noise
  carried forward, fresh real draws inverted) by the teacher, so no fixed pair set is memorised.
  Making them with the network in training instead fed its own errors back at every step and
  diverged in our 2-D runs (W2 0.2 -> 10 in five generations), so the teacher is frozen.

Seeds, persistence, resume and sweeps are ``mcollapse.engine``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ._checks import check_choice, check_int
from .engine import RunSpec

SCHEMES = ("reflow", "rca", "ocar")


@dataclass(frozen=True)
class ReflowSpec(RunSpec):
    """One reflow run; validated on construction. See the module docstring for the schemes.

    ``n_real``: real items (generation 1's training set, and the items RCA / OCAR invert);
    ``n_pairs``: synthetic pairs made per generation (reflow, RCA); ``pair_steps``: Euler steps of
    every pair-making ODE (forward and backward); ``stochastic``: noisy, jittered inversion.
    """

    scheme: str
    n_real: int
    n_pairs: int = 0
    train_steps: int = 1000
    real_ratio: float = 0.0
    refresh: int = 0
    pair_steps: int = 50
    stochastic: bool = False
    init: str = field(default="finetune", kw_only=True)
    n_eval: int = field(default=500, kw_only=True)

    STAGES: ClassVar[tuple[str, ...]] = ("real", "train", "sample", "pairs", "batches")

    def validate(self):
        check_choice("scheme", self.scheme, SCHEMES)
        for name, low in [("n_real", 1), ("n_pairs", 0), ("train_steps", 1), ("refresh", 0),
                          ("pair_steps", 1), ("n_eval", 1)]:  # fmt: skip
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))
        r = self.real_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r <= 1.0:
            raise ValueError(f"real_ratio must be a number in [0, 1], got {r!r}")
        object.__setattr__(self, "real_ratio", float(r))
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"stochastic must be True or False, got {self.stochastic!r}")
        if self.scheme == "reflow" and (self.real_ratio != 0 or self.refresh != 0):
            raise ValueError(
                f"real_ratio and refresh must be 0 for scheme='reflow' (no real pairs), got"
                f" {self.real_ratio} and {self.refresh}"
            )
        if self.scheme != "reflow" and not 0 < self.real_ratio < 1:
            raise ValueError(
                f"real_ratio must be in (0, 1) for scheme={self.scheme!r}, got {self.real_ratio}"
            )
        if self.scheme == "ocar" and (self.n_pairs != 0 or self.refresh != 0):
            raise ValueError(
                f"n_pairs and refresh must be 0 for scheme='ocar' (pairs are made online), got"
                f" {self.n_pairs} and {self.refresh}"
            )
        if self.scheme != "ocar" and self.generations > 1 and self.n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1 for scheme={self.scheme!r}, got {self.n_pairs}")

    @property
    def n_first(self) -> int:
        return self.n_real

    def train(self, t, model, ctx) -> dict:
        """Generation t from the pairs of generation t - 1; counts are the pair draws trained on."""
        teacher = ctx.model(t - 1)
        pairs = None
        if self.scheme != "ocar":
            pairs = teacher.generate_pairs(self.n_pairs, ctx.generator("pairs"), self.pair_steps,
                                           "euler")  # fmt: skip
        real = ctx.initial()[0][: self.n_real].float()
        batches = PairBatches(self, teacher, model, real, pairs, ctx.generator("batches"))
        model.train_batches(batches, self.train_steps, ctx.generator("train"),
                            desc=f"{self.scheme} generation {t}")  # fmt: skip
        return dict(batches.counts)


def compose_batch(n: int, real_ratio: float) -> tuple[int, int]:
    """(real, synthetic) items of a mini-batch of n: round(real_ratio n) real, at least one of each
    kind when 0 < real_ratio < 1 and n >= 2."""
    n = check_int("n", n, minimum=1)
    k = int(round(real_ratio * n))
    if 0 < real_ratio < 1 and n >= 2:
        k = min(max(k, 1), n - 1)
    return k, n - k


class PairBatches:
    """``batch(generator) -> (x0, x1)`` for one round of one scheme; counts what it hands out."""

    def __init__(
        self, spec: ReflowSpec, teacher, student, real: torch.Tensor, synthetic, generator
    ):
        self.spec, self.teacher, self.student, self.real = spec, teacher, student, real
        self.n_real, self.n_synthetic = compose_batch(student.batch_size, spec.real_ratio)
        self.counts = {"real": 0, "synthetic": 0}
        self.synthetic = synthetic  # (z, x) made before the round, or None (OCAR)
        self.inverted = None
        self.calls = 0
        if spec.scheme == "rca":
            self._invert_all(generator)

    def _invert(self, model, x, generator):
        s = self.spec
        return model.invert(x, s.pair_steps, "euler", s.stochastic, generator)

    def _invert_all(self, generator, model=None):
        self.inverted = self._invert(model or self.teacher, self.real, generator)

    def __call__(self, generator):
        s, teacher = self.spec, self.teacher
        if s.scheme == "rca" and s.refresh and self.calls and self.calls % s.refresh == 0:
            self._invert_all(generator, self.student)
        self.calls += 1
        parts = []
        if self.n_real:
            idx = torch.randint(len(self.real), (self.n_real,), generator=generator)
            x1 = self.real[idx]
            x0 = self._invert(teacher, x1, generator) if s.scheme == "ocar" else self.inverted[idx]
            parts.append((x0, x1))
        if self.n_synthetic:
            if s.scheme == "ocar":
                z = torch.randn((self.n_synthetic, *teacher.shape), generator=generator)
                parts.append((z, teacher.generate(z, s.pair_steps, "euler")))
            else:
                z, x = self.synthetic
                idx = torch.randint(len(z), (self.n_synthetic,), generator=generator)
                parts.append((z[idx], x[idx]))
        self.counts["real"] += self.n_real
        self.counts["synthetic"] += self.n_synthetic
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def steps_sweep(model, z: torch.Tensor, score, steps=(1, 2, 4, 8, 16)) -> dict[int, float]:
    """{number of Euler steps: score(samples from z)}: few-step quality of one flow."""
    return {int(s): float(score(model.generate(z, int(s), "euler"))) for s in steps}
