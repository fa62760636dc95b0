"""Remedies for collapse, each testable on the same fully synthetic baseline.

Regularisation (weight decay, dropout) is a model option (``models.vae.VAE``); keeping real data
(fixed, accumulated, fresh) is a loop option (``loops.LoopSpec``). This module adds what is
neither:

* ``Ensemble``: K models of one family trained on the same data from different initial weights;
  sampling draws each item from a member chosen uniformly, i.e. from the mixture of the members;
* ``Augmented``: a model trained on its items plus randomly shifted copies of them (data
  augmentation, the usual advice against over-fitting);
* self-correction (Gillman et al., ICML 2024): before the next generation trains on them, each
  synthetic item is moved a fraction ``strength`` of the way toward the nearest k-means centre of
  its class, the centres fitted on the real data (the "expert" that knows what a digit looks like).
  ``CorrectedLoopSpec`` runs that loop; an unconditional model's items get their class from the
  digits classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from ._checks import check_bias, check_choice, check_int
from .features import random_shift
from .loops import LoopSpec, compose
from .models.protocol import Recorded


def _families() -> dict:
    from .models.flow import NormalizingFlow
    from .models.vae import VAE
    from .models.wgan_gp import WGANGP

    return {"VAE": VAE, "WGANGP": WGANGP, "NormalizingFlow": NormalizingFlow}


def _member(family: str, settings: dict, device, **extra):
    families = _families()
    check_choice("family", family, families)
    if not isinstance(settings, dict):
        raise ValueError(f"settings must be a dict of constructor arguments, got {settings!r}")
    return families[family](**{**settings, **extra}, device=device, progress=False)


def _seeds(generator: torch.Generator, n: int) -> list[int]:
    return torch.randint(0, 2**62, (n,), generator=generator).tolist()


class Ensemble(Recorded):
    """K members of ``family`` (constructor ``settings``; member i with ``init_seed`` = i), each
    fitted on the whole training set with its own seed; samples come from the uniform mixture."""

    def __init__(self, family: str = "VAE", settings: dict | None = None, *, members: int = 3,
                 device=None, progress: bool = False):  # fmt: skip
        self.k = check_int("members", members, minimum=1)
        settings = dict(settings or {})
        settings.pop("init_seed", None)
        self.members = [_member(family, settings, device, init_seed=i) for i in range(self.k)]
        self.finetunes = all(getattr(m, "finetunes", True) for m in self.members)

    def fit(self, x, y, generator: torch.Generator) -> None:
        for m, s in zip(self.members, _seeds(generator, self.k), strict=True):
            m.fit(x, y, generator=torch.Generator().manual_seed(s))

    @torch.no_grad()
    def sample(self, n: int, bias: float, generator: torch.Generator):
        """n items; item j from member ``choice[j]``, the choices uniform and independent."""
        n = check_int("n", n, minimum=1)
        choice = torch.randint(0, self.k, (n,), generator=generator)
        x = y = None
        for i, m in enumerate(self.members):
            idx = torch.nonzero(choice == i).ravel()
            if len(idx) == 0:
                continue
            xi, yi = m.sample(len(idx), bias, generator=generator)
            if x is None:
                x = torch.empty((n, *xi.shape[1:]), dtype=xi.dtype)
                y = torch.empty(n, dtype=yi.dtype)
            x[idx], y[idx] = xi.cpu(), yi.cpu()
        self.last_choice = choice
        return x, y

    def state_dict(self) -> dict:
        return {f"member_{i}": m.state_dict() for i, m in enumerate(self.members)}

    def load_state_dict(self, state: dict) -> None:
        expected = {f"member_{i}" for i in range(self.k)}
        if not isinstance(state, dict) or set(state) != expected:
            raise ValueError(f"state must be a dict with keys {sorted(expected)}")
        for i, m in enumerate(self.members):
            m.load_state_dict(state[f"member_{i}"])


def shift_images(x: torch.Tensor, shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by a random whole number of pixels in [-shift, shift] along each axis, the
    uncovered border filled with the background (-1). Same shape."""
    shift = check_int("shift", shift, minimum=1)
    if x.ndim != 4:
        raise ValueError(f"x must be images (N, C, H, W), got shape {tuple(x.shape)}")
    return random_shift(x, shift, generator)


class Augmented(Recorded):
    """A ``family`` model trained on its items plus ``copies`` randomly shifted copies of each
    (shifts up to ``shift`` pixels); sampling is the inner model's."""

    def __init__(self, family: str = "VAE", settings: dict | None = None, *, shift: int = 1,
                 copies: int = 1, device=None, progress: bool = False):  # fmt: skip
        self.shift = check_int("shift", shift, minimum=1)
        self.copies = check_int("copies", copies, minimum=1)
        self.inner = _member(family, dict(settings or {}), device)
        self.finetunes = getattr(self.inner, "finetunes", True)

    def augment(self, x, y, generator: torch.Generator):
        """The items and ``copies`` shifted copies of them (labels repeated)."""
        xs = [x] + [shift_images(x, self.shift, generator) for _ in range(self.copies)]
        return torch.cat(xs), y.repeat(self.copies + 1)

    def fit(self, x, y, generator: torch.Generator) -> None:
        self.inner.fit(*self.augment(x, y, generator), generator=generator)

    def sample(self, n: int, bias: float, generator: torch.Generator):
        return self.inner.sample(n, bias, generator=generator)

    def state_dict(self) -> dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.inner.load_state_dict(state)


# --------------------------------------------------------------------------------------------
# Self-correction (Gillman et al. 2024)
# --------------------------------------------------------------------------------------------


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 50) -> torch.Tensor:
    """k centres of the rows of ``x`` (N, d) by Lloyd's algorithm from a k-means++ start."""
    x = x.reshape(len(x), -1).double()
    k = check_int("k", k, minimum=1, maximum=len(x))
    centres = [x[torch.randint(0, len(x), (1,), generator=generator)].squeeze(0)]
    for _ in range(k - 1):
        d2 = torch.cdist(x, torch.stack(centres)).min(1).values ** 2
        p = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / len(x))
        centres.append(x[torch.multinomial(p, 1, generator=generator)].squeeze(0))
    c = torch.stack(centres)
    for _ in range(check_int("iters", iters, minimum=1)):
        assign = torch.cdist(x, c).argmin(1)
        new = torch.stack(
            [x[assign == j].mean(0) if (assign == j).any() else c[j] for j in range(k)]
        )
        if torch.allclose(new, c):
            break
        c = new
    return c.float()


class SelfCorrector:
    """Moves items toward the nearest of ``k`` k-means centres of their class, fitted on real
    items (pixel space): x -> x + strength (c - x)."""

    def __init__(self, x_real, y_real, k: int = 6, seed: int = 0):
        self.k = check_int("k", k, minimum=1)
        g = torch.Generator().manual_seed(check_int("seed", seed, minimum=0))
        self.shape = tuple(x_real.shape[1:])
        self.centres = {}
        for c in torch.unique(y_real).tolist():
            members = x_real[y_real == c]
            self.centres[c] = kmeans(members, min(self.k, len(members)), g)

    def nearest(self, x, y) -> torch.Tensor:
        """The nearest centre of each item's class, shaped like ``x``."""
        flat = x.reshape(len(x), -1).float()
        out = torch.empty_like(flat)
        for c in torch.unique(y).tolist():
            if c not in self.centres:
                raise ValueError(f"class {c} has no centres (classes: {sorted(self.centres)})")
            idx = torch.nonzero(y == c).ravel()
            cent = self.centres[c]
            out[idx] = cent[torch.cdist(flat[idx], cent).argmin(1)]
        return out.reshape(x.shape)

    def correct(self, x, y, strength: float) -> torch.Tensor:
        """x + strength (nearest centre - x); strength in (0, 1]."""
        strength = check_bias("strength", strength)
        return x + strength * (self.nearest(x, y) - x)


@dataclass(frozen=True)
class CorrectedLoopSpec(LoopSpec):
    """A loop whose synthetic items are self-corrected before training (Gillman et al.): moved a
    fraction ``strength`` toward the nearest of ``centres`` k-means centres of their class, fitted
    on generation 1's real draw. Items' classes are read by the ``dataset``'s classifier when
    ``classes="classifier"`` (unconditional models), else taken from the model's labels."""

    strength: float = 0.5
    centres: int = 6
    classes: str = "classifier"
    dataset: str = "digits"

    STAGES: ClassVar[tuple[str, ...]] = ("real", "train", "sample", "subsample", "correct")

    def validate(self):
        super().validate()
        check_bias("strength", self.strength)
        check_int("centres", self.centres, minimum=1)
        check_choice("classes", self.classes, ("classifier", "labels"))

    def train(self, t, model, ctx) -> dict:
        from . import features

        x, y, prov = compose(self, t, ctx)
        synthetic = prov > 0
        real_x, real_y = ctx.initial()
        corrector = SelfCorrector(real_x[: self.n_initial], real_y[: self.n_initial],
                                  self.centres, ctx.seed("correct", 1))  # fmt: skip
        xs = x[synthetic]
        ys = (
            features.feature_net(self.dataset).predict(xs)
            if self.classes == "classifier"
            else y[synthetic]
        )
        x = x.clone()
        x[synthetic] = corrector.correct(xs, ys, self.strength)
        model.fit(x, y, generator=ctx.generator("train"))
        by = dict(zip(*(v.tolist() for v in torch.unique(prov, return_counts=True)), strict=True))
        n_real = by.get(0, 0)
        return {"real": n_real, "synthetic": len(prov) - n_real,
                "by_provenance": {str(k): v for k, v in by.items()}}  # fmt: skip
