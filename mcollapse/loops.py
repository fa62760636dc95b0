"""Loops of composed items: fully synthetic, synthetic augmented and fresh data (MAD, section 2).

``LoopSpec`` is the engine's step for these loops: generation t > 1 trains on a training set
composed of real items and samples of earlier generations, as the spec says; everything else
(seeds, persistence, resume, sweeps) is ``mcollapse.engine``'s. Provenance of a training item:
0 = real, s = sampled by generation s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ._checks import check_choice, check_int
from .engine import RunSpec

KINDS = ("fully_synthetic", "synthetic_augmented", "fresh_data")
POOLS = ("previous", "accumulate", "accumulate_subsample")


@dataclass(frozen=True)
class LoopSpec(RunSpec):
    """What a loop does: its kind, real and synthetic sizes and synthetic pool. Validated on construction.

    ``n_initial`` real items train generation 1; later generations train on ``n_real`` real items
    (the fixed first draw for ``synthetic_augmented``, fresh items each generation for
    ``fresh_data``: see ``fresh_draw``) and ``n_synthetic`` items from the ``synthetic_pool``.
    """

    kind: str
    n_initial: int
    n_real: int = 0
    n_synthetic: int = 0
    synthetic_pool: str = "previous"

    STAGES: ClassVar[tuple[str, ...]] = ("real", "train", "sample", "subsample")

    def validate(self):
        check_choice("kind", self.kind, KINDS)
        for name in ("n_initial", "n_real", "n_synthetic"):
            low = 1 if name == "n_initial" else 0
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=low))
        check_choice("synthetic_pool", self.synthetic_pool, POOLS)
        kind = self.kind
        if kind == "fully_synthetic" and self.n_real != 0:
            raise ValueError(f"n_real must be 0 for kind='fully_synthetic', got {self.n_real}")
        if kind != "fully_synthetic" and self.n_real < 1:
            raise ValueError(f"n_real must be >= 1 for kind={kind!r}, got {self.n_real}")
        if kind != "fresh_data" and self.n_synthetic < 1:
            raise ValueError(f"n_synthetic must be >= 1 for kind={kind!r}, got {self.n_synthetic}")
        if self.n_synthetic == 0 and self.n_eval == 0:
            raise ValueError(
                "n_eval must be >= 1 when n_synthetic is 0 (nothing to evaluate), got 0"
            )

    @property
    def n_first(self) -> int:
        return self.n_initial

    @property
    def n_first_draw(self) -> int:
        return max(self.n_initial, self.n_real)

    @property
    def n_draw(self) -> int:
        """Items each generation samples: the first n_synthetic feed the next, all are evaluated."""
        return max(self.n_synthetic, self.n_eval)

    def identity(self) -> dict:
        ident = super().identity()
        if self.kind == "fresh_data":  # how fresh items are drawn decides the numbers too
            ident["fresh_draws"] = "disjoint blocks of a finite source"
        return ident

    def train(self, t, model, ctx) -> dict:
        x, y, prov = compose(self, t, ctx)
        model.fit(x, y, generator=ctx.generator("train"))
        by = dict(zip(*(v.tolist() for v in torch.unique(prov, return_counts=True)), strict=True))
        n_real = by.get(0, 0)
        return {"real": n_real, "synthetic": len(prov) - n_real,
                "by_provenance": {str(k): v for k, v in by.items()}}  # fmt: skip


def compose(spec: LoopSpec, t: int, ctx):
    """Generation t's training set (x, y, provenance), real items first, then by provenance."""
    parts = []
    if spec.kind == "fresh_data":
        parts.append((*fresh_draw(spec, t, ctx), 0))
    elif spec.kind == "synthetic_augmented":
        x, y = ctx.initial()
        parts.append((x[: spec.n_real], y[: spec.n_real], 0))
    first = t - 1 if spec.synthetic_pool == "previous" else 1
    pool = [(g.samples[0][: spec.n_synthetic], g.samples[1][: spec.n_synthetic], g.generation)
            for g in ctx.history[first - 1 : t - 1]]  # fmt: skip
    if spec.synthetic_pool == "accumulate_subsample":
        px, py = (torch.cat([p[i] for p in pool]) for i in (0, 1))
        pp = torch.cat([torch.full((len(p[0]),), p[2], dtype=torch.int16) for p in pool])
        order = torch.randperm(len(px), generator=ctx.generator("subsample"))
        keep = order[: spec.n_synthetic].sort().values
        pool = [(px[keep], py[keep], pp[keep])]
    parts += pool
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    prov = [p[2] if torch.is_tensor(p[2]) else torch.full((len(p[0]),), p[2]) for p in parts]
    return x, y, torch.cat(prov).to(torch.int16)


def fresh_draw(spec: LoopSpec, t: int, ctx):
    """Generation t's fresh real items (t >= 2).

    From a finite source (one with ``len``, such as a ``data.Pool``) they are block t - 1 of a
    random permutation of the whole source, so no two generations share a real item while the
    source lasts (``len // n_real`` generations); then a new permutation starts. Independent
    draws from a finite pool would reuse most items within a few generations, and "fresh" data
    would not be fresh. An unlimited source (a ``data.Toy``) is simply drawn anew.
    """
    if not hasattr(ctx.source, "__len__"):
        return ctx.draw(spec.n_real)
    size = len(ctx.source)
    per_pass = size // spec.n_real
    rounds, block = divmod(t - 2, per_pass)
    x, y = ctx.source.sample(size, generator=ctx.generator("fresh_pass", rounds))
    items = slice(block * spec.n_real, (block + 1) * spec.n_real)
    return x[items], y[items]


def label_drift(spec: LoopSpec, real_labels, num_classes: int, chains: int, seed: int = 0):
    """The labels-only null of a class-conditional loop: the class shares that resampling the
    labels alone produces, as if every image were perfect.

    A class-conditional model draws each generation's labels from its training set's class
    frequencies, so the shares random-walk (Wright-Fisher drift) however good the images are. Each
    chain composes labels as ``spec`` composes items (the real labels, then the synthetic pool) and
    draws ``spec.n_draw`` labels per generation. Returns the share of the rarest class among each
    generation's labels, shape ``(chains, spec.generations)``: the band against which a loop's own
    rarest-class share is read.
    """
    chains = check_int("chains", chains, minimum=1)
    labels = np.asarray(real_labels)
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"real_labels must lie in [0, {num_classes}), got {labels.min()}..{labels.max()}"
        )
    rng = np.random.default_rng(seed)
    n_syn = min(spec.n_synthetic, spec.n_draw)
    fed: list[np.ndarray] = []  # per generation, the counts of the labels the next one trains on
    shares = np.empty((chains, spec.generations))
    for t in range(1, spec.generations + 1):
        train = np.zeros((chains, num_classes))
        if t == 1:
            train += np.bincount(labels[: spec.n_first], minlength=num_classes)
        else:
            if spec.kind == "synthetic_augmented":
                train += np.bincount(labels[: spec.n_real], minlength=num_classes)
            elif spec.kind == "fresh_data":
                p_real = np.bincount(labels, minlength=num_classes) / len(labels)
                train += rng.multinomial(spec.n_real, p_real, size=chains)
            pool = fed[t - 2 :] if spec.synthetic_pool == "previous" else fed
            pool = sum(pool)
            if spec.synthetic_pool == "accumulate_subsample":
                pool = np.stack([rng.multivariate_hypergeometric(c, spec.n_synthetic)
                                 for c in pool.astype(np.int64)])  # fmt: skip
            train += pool
        p = train / train.sum(1, keepdims=True)
        first = rng.multinomial(n_syn, p)
        rest = rng.multinomial(spec.n_draw - n_syn, p)
        fed.append(first)
        shares[:, t - 1] = (first + rest).min(1) / spec.n_draw
    return shares
