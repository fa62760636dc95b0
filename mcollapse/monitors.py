"""Early warning: monitors computed on one generation's output before the next trains on it.

A practitioner retraining on scraped data cannot wait for FID to explode; they want a number that
moves *before* the damage is done. Each generation's samples are scored by cheap monitors:

* the k-nearest-neighbour (Kozachenko-Leonenko) entropy of the set in feature space: Shi et al.
  (NeurIPS 2025) report that its fall predicts the slide of a self-consuming loop to memorisation;
* the AUC of a cross-validated real-vs-synthetic detector (0.5: indistinguishable from real data);
* what the image evaluator already gives: precision, recall and per-class shares.

Collapse is defined by a rule stated up front (``CollapseRule``: FID above ``fid_factor`` times its
generation-1 value, or recall below ``recall_factor`` times its generation-1 value). A ``Monitor``
has a threshold relative to generation 1; its lead time is the generations of warning it gives
before the rule fires, and an alarm in a loop where the rule never fires is a false alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import digamma, gammaln

from . import metrics
from ._checks import check_choice, check_int, check_positive
from .evaluation import ImageEvaluator

DIRECTIONS = ("below", "above")
MODES = ("difference", "ratio")


def knn_entropy(x, k: int = 3) -> float:
    """Kozachenko-Leonenko estimate of the differential entropy (nats) of the points ``x`` (N, d).

    H = psi(N) - psi(k) + log V_d + (d / N) sum_i log eps_i, with eps_i the distance from point i to
    its k-th nearest neighbour and V_d the volume of the unit d-ball. Consistent for any density;
    a set that shrinks toward a few modes (or duplicates) has smaller neighbour distances, so its
    entropy falls. Duplicate points (eps = 0) are given the smallest positive distance found.
    """
    k = check_int("k", k, minimum=1)
    a = metrics.as_points(x)
    n, d = a.shape
    check_int("number of points", n, minimum=k + 1)
    t = torch.from_numpy(a)
    dist = torch.cdist(t, t)
    dist.fill_diagonal_(math.inf)
    eps = dist.kthvalue(k, dim=1).values.numpy()
    positive = eps[eps > 0]
    if positive.size == 0:
        return -math.inf
    eps = np.where(eps > 0, eps, positive.min())
    log_ball = (d / 2) * math.log(math.pi) - gammaln(d / 2 + 1)
    return float(digamma(n) - digamma(k) + log_ball + d * np.mean(np.log(eps)))


def detector_auc(real, synthetic, folds: int = 5, seed: int = 0, c: float = 1.0) -> float:
    """Cross-validated ROC AUC of a logistic-regression detector of ``synthetic`` vs ``real``
    points (standardised features): 0.5 when the two sets cannot be told apart, 1 when they are
    separated. Every item is scored by a detector that did not train on it."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    folds = check_int("folds", folds, minimum=2)
    c = check_positive("c", c)
    a, b = metrics.as_points(real), metrics.as_points(synthetic)
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"real and synthetic must have the same dimension, got {a.shape[1]}, {b.shape[1]}"
        )
    for name, p in (("real", a), ("synthetic", b)):
        check_int(f"number of {name} points", len(p), minimum=folds)
    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(len(a)), np.ones(len(b))])
    scores = np.empty(len(x))
    split = StratifiedKFold(folds, shuffle=True, random_state=check_int("seed", seed, minimum=0))
    for train, test in split.split(x, y):
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        clf.fit(x[train], y[train])
        scores[test] = clf.predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


class MonitorEvaluator(ImageEvaluator):
    """The image evaluator plus the monitors: ``entropy`` (k-NN, in the feature network's space),
    ``detector_auc`` (real held-out images vs the first ``n`` samples, in the same space) and
    ``share_<c>`` for every class. Same signature as every evaluator of ``mcollapse.evaluation``."""

    def __init__(self, ref, n: int | None = None, k: int = 3, folds: int = 5, **kwargs):
        super().__init__(ref, n=n, **kwargs)
        self.k = check_int("k", k, minimum=1)
        self.folds = check_int("folds", folds, minimum=2)

    def identity(self) -> dict:
        return {**super().identity(), "type": "MonitorEvaluator", "k": self.k, "folds": self.folds}

    def __call__(self, x, y, model, generation) -> dict[str, float]:
        out = super().__call__(x, y, model, generation)
        n = len(x) if self.n is None else self.n
        feats = self.ref.net.features(x[:n].float())
        out["entropy"] = knn_entropy(feats, self.k)
        if getattr(self, "_real", None) is None:  # the reference's features, computed once
            self._real = self.ref.net.features(self.ref.x)
        out["detector_auc"] = detector_auc(self._real, feats, self.folds)
        shares = metrics.class_shares(x, self.ref.net)
        out.update({f"share_{c}": float(s) for c, s in enumerate(shares)})
        return out


# --------------------------------------------------------------------------------------------
# Rules, alarms and lead times
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CollapseRule:
    """Collapse, stated before looking: FID above ``fid_factor`` x its generation-1 value, or
    recall below ``recall_factor`` x its generation-1 value. None leaves a part out (a recall that
    starts low is too noisy to judge by a ratio)."""

    fid_factor: float | None = 2.0
    recall_factor: float | None = 0.8

    def __post_init__(self):
        if self.fid_factor is None and self.recall_factor is None:
            raise ValueError("fid_factor and recall_factor cannot both be None (no rule left)")
        if self.fid_factor is not None and check_positive("fid_factor", self.fid_factor) <= 1:
            raise ValueError(f"fid_factor must be > 1 or None, got {self.fid_factor}")
        r = self.recall_factor
        if r is not None and not 0 < check_positive("recall_factor", r) < 1:
            raise ValueError(f"recall_factor must be in (0, 1) or None, got {r}")

    def first(self, fid, recall) -> int | None:
        """The first generation (1-based) at which the rule fires, or None."""
        fid, recall = np.asarray(fid, float), np.asarray(recall, float)
        if fid.shape != recall.shape or fid.ndim != 1 or fid.size < 1:
            raise ValueError(
                f"fid and recall must be 1-D series of equal length, got {fid.shape}, {recall.shape}"
            )
        fired = np.zeros(fid.shape, dtype=bool)
        if self.fid_factor is not None:
            fired |= fid > self.fid_factor * fid[0]
        if self.recall_factor is not None:
            fired |= recall < self.recall_factor * recall[0]
        return int(np.argmax(fired)) + 1 if fired.any() else None

    def __str__(self) -> str:
        parts = []
        if self.fid_factor is not None:
            parts.append(f"FID > {self.fid_factor:g} x generation 1")
        if self.recall_factor is not None:
            parts.append(f"recall < {self.recall_factor:g} x generation 1")
        return ", or ".join(parts)


@dataclass(frozen=True)
class Monitor:
    """An alarm on one metric's series: it fires at the first generation t >= 2 whose value, compared
    with generation 1's (``mode``: difference v_t - v_1 or ratio v_t / v_1), lies ``direction``
    the ``threshold``."""

    metric: str
    direction: str
    threshold: float
    mode: str = "difference"
    label: str = ""

    def __post_init__(self):
        check_choice("direction", self.direction, DIRECTIONS)
        check_choice("mode", self.mode, MODES)
        if not np.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")

    def first(self, values) -> int | None:
        """The first generation (1-based, >= 2) at which the alarm fires, or None."""
        v = np.asarray(values, float)
        if v.ndim != 1 or v.size < 1:
            raise ValueError(f"values must be a 1-D series, got shape {v.shape}")
        rel = v - v[0] if self.mode == "difference" else v / v[0]
        fired = rel < self.threshold if self.direction == "below" else rel > self.threshold
        fired[0] = False
        return int(np.argmax(fired)) + 1 if fired.any() else None

    def __str__(self) -> str:
        rel = f"{self.metric} - gen 1" if self.mode == "difference" else f"{self.metric} / gen 1"
        return self.label or f"{rel} {'<' if self.direction == 'below' else '>'} {self.threshold:g}"


def lead_time(alarm: int | None, collapse: int | None) -> int | None:
    """Generations of warning: collapse generation minus alarm generation (negative: late);
    None when either never happened."""
    return None if alarm is None or collapse is None else collapse - alarm


def warning_table(series: dict, monitors, rule: CollapseRule) -> list[dict]:
    """One row per (loop, seed, monitor): the generation the rule fires, the alarm's generation,
    the lead time and whether the alarm is false (the rule never fires in that run).

    ``series``: {(loop, seed): {metric: values by generation}} holding ``fid``, ``recall`` and
    every monitor's metric."""
    rows = []
    for (loop, seed), by_metric in series.items():
        collapse = rule.first(by_metric["fid"], by_metric["recall"])
        for m in monitors:
            if m.metric not in by_metric:
                raise ValueError(f"monitor metric {m.metric!r} missing for {loop!r}, seed {seed}")
            alarm = m.first(by_metric[m.metric])
            rows.append({"loop": loop, "seed": seed, "monitor": str(m), "collapse": collapse,
                         "alarm": alarm, "lead_time": lead_time(alarm, collapse),
                         "false_alarm": collapse is None and alarm is not None})  # fmt: skip
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Per monitor: collapsing runs, how many it warned at least one generation ahead, the mean lead
    time over them, and false alarms among the runs that did not collapse."""
    out = []
    for name in dict.fromkeys(r["monitor"] for r in rows):
        mine = [r for r in rows if r["monitor"] == name]
        collapsing = [r for r in mine if r["collapse"] is not None]
        calm = [r for r in mine if r["collapse"] is None]
        leads = [r["lead_time"] for r in collapsing if r["lead_time"] is not None]
        out.append({
            "monitor": name, "collapsing_runs": len(collapsing),
            "warned_ahead": sum(1 for x in leads if x >= 1),
            "mean_lead": float(np.mean(leads)) if leads else float("nan"),
            "calm_runs": len(calm), "false_alarms": sum(r["false_alarm"] for r in calm),
        })  # fmt: skip
    return out
