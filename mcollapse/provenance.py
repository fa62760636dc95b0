"""Provenance: telling synthetic items from real ones, and curating a training pool with it.

Scraped training data arrives without labels saying which items a model made. A detector of
synthetic items (logistic regression in the feature network's space, trained on real items vs
samples of the first model) gives each item a probability p_synthetic; a curator then drops the
items above a threshold, or weights each item by (1 - p_synthetic)^beta as Drayson et al. (EMNLP
2025) propose. ``CuratedLoopSpec`` runs such a loop; its ``oracle`` curation uses the engine's own
provenance records (0 = real, t = made by generation t), the best any detector could do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from ._checks import check_choice, check_int, check_positive
from .loops import LoopSpec, compose
from .metrics import as_points

CURATIONS = ("none", "drop", "weight", "oracle")


class SyntheticDetector:
    """p(synthetic | item) from a logistic regression on standardised features.

    ``featurize`` maps items to feature vectors (the digits classifier's ``features`` in the
    notebook); None uses the flattened items themselves."""

    def __init__(self, featurize=None, c: float = 1.0):
        self.featurize, self.c = featurize, check_positive("c", c)
        self._clf = None

    def _features(self, x) -> np.ndarray:
        return as_points(self.featurize(x) if self.featurize is not None else x)

    def fit(self, real, synthetic, seed: int = 0) -> SyntheticDetector:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        a, b = self._features(real), self._features(synthetic)
        for name, p in (("real", a), ("synthetic", b)):
            check_int(f"number of {name} items", len(p), minimum=2)
        x = np.concatenate([a, b])
        y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
        self._clf = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.c, max_iter=2000, random_state=check_int("seed", seed, minimum=0) % 2**32))  # fmt: skip
        self._clf.fit(x, y)
        return self

    def p_synthetic(self, x) -> np.ndarray:
        """Probability that each item is synthetic, in [0, 1]."""
        if self._clf is None:
            raise ValueError("the detector must be fitted (fit(real, synthetic)) before scoring")
        return self._clf.predict_proba(self._features(x))[:, 1]

    def auc(self, real, synthetic) -> float:
        """ROC AUC of the detector on (held-out) real vs synthetic items."""
        from sklearn.metrics import roc_auc_score

        p = np.concatenate([self.p_synthetic(real), self.p_synthetic(synthetic)])
        y = np.concatenate([np.zeros(len(real)), np.ones(len(synthetic))])
        return float(roc_auc_score(y, p))


def curation_weights(p_synthetic, method: str, threshold: float = 0.5, beta: float = 1.0):
    """Training weights in [0, 1] from p_synthetic: ``none`` keeps all (1), ``drop`` keeps the items
    with p <= threshold (1) and drops the rest (0), ``weight`` gives (1 - p)^beta (Drayson et al.),
    non-increasing in p."""
    check_choice("method", method, ("none", "drop", "weight"))
    p = np.asarray(p_synthetic, dtype=float)
    if p.ndim != 1 or (p.size and (p.min() < 0 or p.max() > 1)):
        raise ValueError("p_synthetic must be a 1-D array of probabilities in [0, 1]")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    beta = check_positive("beta", beta)
    if method == "none":
        return np.ones_like(p)
    if method == "drop":
        return (p <= threshold).astype(float)
    return (1 - p) ** beta


def oracle_weights(provenance) -> np.ndarray:
    """1 for real items (provenance 0), 0 for every synthetic one: the engine's own records."""
    prov = provenance.numpy() if torch.is_tensor(provenance) else np.asarray(provenance)
    return (prov == 0).astype(float)


def apply_weights(x, y, provenance, weights, generator: torch.Generator):
    """The training set a weighted pool becomes for a model without per-item weights.

    Items of weight 0 go; when the rest all weigh 1 they are kept as they are; otherwise as many
    items as have positive weight are drawn with replacement with probability proportional to their
    weight (the same expected loss as weighting it). Returns (x, y, provenance)."""
    w = torch.as_tensor(np.asarray(weights, dtype=float))
    if w.shape != (len(x),) or bool((w < 0).any()) or bool((w > 1).any()):
        raise ValueError(f"weights must be one number in [0, 1] per item ({len(x)})")
    keep = torch.nonzero(w > 0).ravel()
    if len(keep) == 0:
        raise ValueError("weights drop every item: nothing left to train on")
    if bool((w[keep] == 1).all()):
        index = keep
    else:
        index = torch.multinomial(w, len(keep), replacement=True, generator=generator)
    return x[index], y[index], provenance[index]


@dataclass(frozen=True)
class CuratedLoopSpec(LoopSpec):
    """A synthetic-augmented loop whose pool (``n_real`` real items, ``n_synthetic`` samples of the
    synthetic pool) reaches the model unlabelled and is curated first.

    ``curation``: ``none``, ``drop`` (p_synthetic > ``threshold``), ``weight`` ((1 - p)^``beta``)
    or ``oracle`` (the provenance records). The detector trains on the real items of generation 1's
    draw that are not in the pool (items ``n_real`` to ``n_initial``) against as many samples of
    generation 1, in the feature space of the ``dataset``'s classifier."""

    curation: str = "none"
    threshold: float = 0.5
    beta: float = 1.0
    dataset: str = "digits"

    STAGES: ClassVar[tuple[str, ...]] = ("real", "train", "sample", "subsample", "curate")

    def validate(self):
        super().validate()
        check_choice("curation", self.curation, CURATIONS)
        if self.kind != "synthetic_augmented":
            raise ValueError(
                f"kind must be 'synthetic_augmented' for a curated loop, got {self.kind!r}"
            )
        if self.curation in ("drop", "weight") and self.n_initial - self.n_real < 2:
            raise ValueError(
                "n_initial must exceed n_real by at least 2 (the detector's real items),"
                f" got n_initial={self.n_initial}, n_real={self.n_real}"
            )
        if not 0 <= self.threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold!r}")
        check_positive("beta", self.beta)

    def detector(self, ctx) -> SyntheticDetector:
        """The detector of this run: real items n_real..n_initial of the first draw vs as many
        samples of generation 1."""
        from . import features

        real = ctx.initial()[0][self.n_real : self.n_initial]
        fake = ctx.history[0].samples[0][: len(real)]
        net = features.feature_net(self.dataset)
        return SyntheticDetector(net.features).fit(real, fake, seed=ctx.seed("curate"))

    def train(self, t, model, ctx) -> dict:
        x, y, prov = compose(self, t, ctx)
        if self.curation == "oracle":
            w = oracle_weights(prov)
        elif self.curation == "none":
            w = np.ones(len(x))
        else:
            p = self.detector(ctx).p_synthetic(x)
            w = curation_weights(p, self.curation, self.threshold, self.beta)
        x, y, prov = apply_weights(x, y, prov, w, ctx.generator("curate"))
        model.fit(x, y, generator=ctx.generator("train"))
        by = dict(zip(*(v.tolist() for v in torch.unique(prov, return_counts=True)), strict=True))
        n_real = by.get(0, 0)
        return {"real": n_real, "synthetic": len(prov) - n_real,
                "by_provenance": {str(k): v for k, v in by.items()}}  # fmt: skip
