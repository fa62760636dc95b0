"""Repeated reflow and the collapse-avoiding reflows of Zhu et al. (arXiv 2412.08175).

``ReflowSpec`` is the engine's step for reflow. Generation 1 is 1-rectified flow trained on the real
data (independent noise-data pairing), shared by every scheme; generation g >= 2 is g-rectified
flow: a flow trained for ``train_steps`` (fine-tuned from generation g - 1, or from scratch with
``init="scratch"``) on pairs (z, x) that generation g - 1 (the "teacher") makes, one scheme per run:

- ``reflow``: synthetic pairs only, (z, Phi(z)) from the teacher's forward ODE (Liu et al.).
  Trained on nothing but its own outputs, the flow collapses over generations, Zhu et al. say.
- ``rca`` (real-data-augmented reflow; "RA" in their v2): real pairs (Phi^{-1}(x), x) from running
  the flow backwards on the real data, mixed into every mini-batch at ``real_ratio`` with the
  synthetic pairs; the real pairs are re-inverted with the network in training every ``refresh``
  steps (0: once per generation, with the teacher).
- ``ocar`` (online reflow; "ORA" in v2, "ORAS" with ``stochastic=True``): both kinds of pairs made
  afresh for every mini-batch (fresh noise carried forward, fresh real draws inverted, with small
  noise and jittered steps if stochastic) by the teacher, so no fixed pair set is memorised.
  Making them with the network in training instead fed its own errors back at every step and
  diverged in our 2-D runs (W2 0.2 -> 10 in five generations), so the teacher is frozen.
- ``independent``: the null run: no teacher and no pairs, each round continues 1-RF on the real
  data (fresh noise paired independently with real items) for the same steps. Whatever changes
  here comes from more training, not from reflow.

Seeds, persistence, resume and sweeps are ``mcollapse.engine``'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ._checks import check_choice, check_int
from .engine import RunSpec
from .models.rectified_flow import METHODS

SCHEMES = ("reflow", "rca", "ocar", "independent")


@dataclass(frozen=True)
class ReflowSpec(RunSpec):
    """One reflow run; validated on construction. See the module docstring for the schemes.

    ``n_real``: real items (generation 1's training set, and the items RCA / OCAR invert);
    ``n_pairs``: synthetic pairs made per generation (reflow, RCA); ``pair_steps`` and
    ``pair_method`` (Euler or Heun): the ODE solver of every pair-making ODE (forward and
    backward); ``stochastic``: noisy, jittered inversion (Zhu et al.'s ORAS with ``ocar``).
    """

    scheme: str
    n_real: int
    n_pairs: int = 0
    train_steps: int = 1000
    real_ratio: float = 0.0
    refresh: int = 0
    pair_steps: int = 50
    stochastic: bool = False
    pair_method: str = field(default="euler", kw_only=True)
    init: str = field(default="finetune", kw_only=True)
    n_eval: int = field(default=500, kw_only=True)

    STAGES: ClassVar[tuple[str, ...]] = ("real", "train", "sample", "pairs", "batches")

    def validate(self):
        check_choice("scheme", self.scheme, SCHEMES)
        check_choice("pair_method", self.pair_method, METHODS)
        for name, low in [("n_real", 1), ("n_pairs", 0), ("train_steps", 1), ("refresh", 0),
                          ("pair_steps", 1), ("n_eval", 1)]:  # fmt: skip
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))
        r = self.real_ratio
        if isinstance(r, bool) or not isinstance(r, int | float) or not 0.0 <= r <= 1.0:
            raise ValueError(f"real_ratio must be a number in [0, 1], got {r!r}")
        object.__setattr__(self, "real_ratio", float(r))
        if not isinstance(self.stochastic, bool):
            raise ValueError(f"stochastic must be True or False, got {self.stochastic!r}")
        plain = self.scheme in ("reflow", "independent")
        if plain and (self.real_ratio != 0 or self.refresh != 0):
            raise ValueError(
                f"real_ratio and refresh must be 0 for scheme={self.scheme!r} (no inverted real"
                f" pairs), got {self.real_ratio} and {self.refresh}"
            )
        if not plain and not 0 < self.real_ratio < 1:
            raise ValueError(
                f"real_ratio must be in (0, 1) for scheme={self.scheme!r}, got {self.real_ratio}"
            )
        if self.scheme in ("ocar", "independent") and (self.n_pairs != 0 or self.refresh != 0):
            raise ValueError(
                f"n_pairs and refresh must be 0 for scheme={self.scheme!r} (no pair set is made"
                f" in advance), got {self.n_pairs} and {self.refresh}"
            )
        if self.scheme in ("reflow", "rca") and self.generations > 1 and self.n_pairs < 1:
            raise ValueError(f"n_pairs must be >= 1 for scheme={self.scheme!r}, got {self.n_pairs}")

    @property
    def n_first(self) -> int:
        return self.n_real

    def cost(self) -> float:
        """Network evaluations per mini-batch item and round: 3 to train (forward and backward),
        plus the teacher's ODE for OCAR's fresh synthetic share (and for ORAS's real share)."""
        evals = self.pair_steps * (2 if self.pair_method == "heun" else 1)
        per_item = 3.0
        if self.scheme == "ocar":
            per_item += evals * (1 - self.real_ratio + (self.real_ratio if self.stochastic else 0))
        return (self.generations - 1) * self.train_steps * per_item

    def train(self, t, model, ctx) -> dict:
        """Generation t from the pairs of generation t - 1; counts are the pair draws trained on."""
        teacher = ctx.model(t - 1)
        pairs = None
        if self.scheme in ("reflow", "rca"):
            pairs = teacher.generate_pairs(self.n_pairs, ctx.generator("pairs"), self.pair_steps,
                                           self.pair_method)  # fmt: skip
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
    """``batch(generator) -> (x0, x1)`` for one round of one scheme; counts what it hands out.

    OCAR's pairs are fresh for every mini-batch but come from a frozen teacher, so they are made
    ``chunk`` mini-batches at a time: one long ODE solve instead of many short ones (the same pairs
    in distribution, several times faster for a small network). Deterministic inversion by a frozen
    teacher maps a real item to the same noise every time, so it is done once per round.
    """

    def __init__(self, spec: ReflowSpec, teacher, student, real: torch.Tensor, synthetic,
                 generator, chunk: int = 64):  # fmt: skip
        self.spec, self.teacher, self.student, self.real = spec, teacher, student, real
        self.n_real, self.n_synthetic = compose_batch(student.batch_size, spec.real_ratio)
        if spec.scheme == "independent":  # every item real, with fresh independent noise
            self.n_real, self.n_synthetic = student.batch_size, 0
        self.counts = {"real": 0, "synthetic": 0}
        self.synthetic = synthetic  # (z, x) made before the round, or None (OCAR)
        self.chunk = check_int("chunk", chunk, minimum=1)
        self.online_real = spec.scheme == "ocar" and spec.stochastic
        self.inverted = None
        self.calls = 0
        self._queue: list[tuple[torch.Tensor, torch.Tensor]] = []
        if spec.scheme == "rca" or (spec.scheme == "ocar" and not spec.stochastic):
            self._invert_all(generator)

    def _invert(self, model, x, generator):
        s = self.spec
        return model.invert(x, s.pair_steps, s.pair_method, s.stochastic, generator)

    def _invert_all(self, generator, model=None):
        self.inverted = self._invert(model or self.teacher, self.real, generator)

    def _real_pairs(self, generator, n):
        idx = torch.randint(len(self.real), (n,), generator=generator)
        x1 = self.real[idx]
        x0 = self._invert(self.teacher, x1, generator) if self.online_real else self.inverted[idx]
        return x0, x1

    def _online(self, generator):
        """The next OCAR mini-batch, from a queue refilled ``chunk`` mini-batches at a time."""
        if not self._queue:  # never more than the round still needs (self.calls counts this one)
            s = self.spec
            k = max(1, min(self.chunk, s.train_steps - self.calls + 1))
            real = self._real_pairs(generator, k * self.n_real) if self.n_real else None
            synthetic = None
            if self.n_synthetic:
                z = torch.randn((k * self.n_synthetic, *self.teacher.shape), generator=generator)
                synthetic = (z, self.teacher.generate(z, s.pair_steps, s.pair_method))
            for i in range(k):
                parts = []
                if real is not None:
                    parts.append([p[i * self.n_real : (i + 1) * self.n_real] for p in real])
                if synthetic is not None:
                    n = self.n_synthetic
                    parts.append([p[i * n : (i + 1) * n] for p in synthetic])
                self._queue.append(tuple(torch.cat([p[j] for p in parts]) for j in (0, 1)))
            self._queue.reverse()
        return self._queue.pop()

    def __call__(self, generator):
        s = self.spec
        if s.scheme == "rca" and s.refresh and self.calls and self.calls % s.refresh == 0:
            self._invert_all(generator, self.student)
        self.calls += 1
        self.counts["real"] += self.n_real
        self.counts["synthetic"] += self.n_synthetic
        if s.scheme == "ocar":
            return self._online(generator)
        if s.scheme == "independent":
            x1 = self.real[torch.randint(len(self.real), (self.n_real,), generator=generator)]
            return torch.randn(x1.shape, generator=generator), x1
        parts = [self._real_pairs(generator, self.n_real)] if self.n_real else []
        if self.n_synthetic:
            z, x = self.synthetic
            idx = torch.randint(len(z), (self.n_synthetic,), generator=generator)
            parts.append((z[idx], x[idx]))
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def steps_sweep(model, z: torch.Tensor, score, steps=(1, 2, 4, 8, 16)) -> dict[int, float]:
    """{number of Euler steps: score(samples from z)}: few-step quality of one flow."""
    return {n: v for (_, n), v in solver_sweep(model, z, score, {"euler": steps}).items()}


def solver_sweep(model, z: torch.Tensor, score, grid) -> dict[tuple[str, int], float]:
    """{(method, steps): score(samples from z)} for ``grid`` {method: [steps, ...]}: how accurate
    an ODE solver must be before its samples (and so the pairs it makes) stop changing."""
    out = {}
    for method, counts in grid.items():
        check_choice("method", method, METHODS)
        for n in counts:
            n = check_int("steps", n, minimum=1)
            out[(method, n)] = float(score(model.generate(z, n, method)))
    return out


def converged_solver(grid) -> tuple[str, int]:
    """The most accurate solver of ``grid``: the most steps of the highest-order method in it."""
    method = "heun" if "heun" in grid else check_choice("method", next(iter(grid)), METHODS)
    return method, max(grid[method])
