"""The claims cell: each notebook ends by testing the papers' statements on the numbers it computed.

Every claim prints PASS or FAIL with its measured value, the threshold and the margin, so a reader
sees how close each result came; ``assert_all`` then fails the notebook (and CI) if any did not
hold. Effects of trained models are judged over seeds (``over_seeds``): a single run proves
nothing, and an effect the seeds do not support is reported as "not reproduced at this scale"
rather than asserted.
"""

from __future__ import annotations

import operator

import numpy as np

_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class Claims:
    """An ordered list of checked claims, plus the effects reported as not reproduced."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool]] = []
        self.not_reproduced: list[str] = []

    def check(self, text: str, ok) -> bool:
        """Record a claim and whether it holds (for structural checks with no single number)."""
        ok = bool(ok)
        self.results.append((text, ok))
        print(("PASS  " if ok else "FAIL  ") + text)
        return ok

    def compare(self, text: str, value: float, op: str, threshold: float, basis: str = "") -> bool:
        """Claim ``value op threshold``; print both and the margin (positive when the claim holds)."""
        if op not in _OPS:
            raise ValueError(f"op={op!r}: expected one of {sorted(_OPS)}")
        value, threshold = float(value), float(threshold)
        margin = value - threshold if op in (">", ">=") else threshold - value
        detail = f": {_fmt(value)} {op} {_fmt(threshold)} (margin {margin:+.3g}"
        detail += f"; {basis})" if basis else ")"
        return self.check(text + detail, _OPS[op](value, threshold))

    def mean_matches(self, text: str, samples, expected: float, n_se: float = 4.0) -> bool:
        """Claim that the mean of ``samples`` is within ``n_se`` standard errors of ``expected``."""
        samples = np.asarray(samples, dtype=float)
        mean = samples.mean()
        se = samples.std(ddof=1) / np.sqrt(samples.size)
        detail = (
            f": simulation {_fmt(mean)} ± {se:.2g}, closed form {_fmt(expected)},"
            f" |difference| {abs(mean - expected):.2g} < {n_se:g} SE = {n_se * se:.2g}"
        )
        return self.check(text + detail, abs(mean - expected) < n_se * se)

    def over_seeds(self, text: str, effects, n_se: float = 2.0, expected: bool = True) -> bool:
        """Judge an effect measured once per seed; positive values mean the effect is present.

        The effect is reproduced when its mean exceeds ``n_se`` standard errors across seeds, or
        when every seed shows it. Pass paired effects (a difference within each seed) where two
        loops share generation 1. With ``expected`` the claim fails if the seeds do not show the
        effect; without it the result is only reported, as reproduced or "not reproduced at this
        scale", and nothing is asserted.
        """
        effects = _per_seed(effects)
        mean = effects.mean()
        se = effects.std(ddof=1) / np.sqrt(effects.size)
        shown = _shown(effects, n_se)
        detail = (
            f": mean effect {_fmt(mean)} vs {n_se:g} SE = {_fmt(n_se * se)} (margin"
            f" {mean - n_se * se:+.3g}); {int(np.sum(effects > 0))} / {effects.size} seeds show it"
            f" [{', '.join(_fmt(e) for e in effects)}]"
        )
        if expected:
            return self.check(text + detail, shown)
        tag = "SEEN  " if shown else "NOT REPRODUCED AT THIS SCALE  "
        print(tag + text + detail)
        if not shown:
            self.not_reproduced.append(text)
        return shown

    def verdict(self, text: str, baseline, remedy, n_se: float = 2.0) -> str:
        """Report (not assert) what a remedy does to a degradation, from per-seed changes of the
        same metric (positive = worse) in the baseline loop and the remedy's loop; see ``verdict``."""
        found = verdict(baseline, remedy, n_se)
        b, r = _per_seed(baseline), _per_seed(remedy)
        print(f"VERDICT  {text}: {found.upper()} (change per seed: baseline"
              f" [{', '.join(_fmt(e) for e in b)}], remedy [{', '.join(_fmt(e) for e in r)}])")  # fmt: skip
        return found

    @property
    def failed(self) -> list[str]:
        return [text for text, ok in self.results if not ok]

    def assert_all(self) -> None:
        """Print the tally; raise AssertionError naming every claim that failed."""
        print(f"\n{len(self.results) - len(self.failed)} / {len(self.results)} claims hold")
        if self.not_reproduced:
            print(
                f"{len(self.not_reproduced)} effect(s) not reproduced at this scale (not asserted)"
            )
        if not self.results:
            raise AssertionError("no claims were checked")
        if self.failed:
            raise AssertionError("claims that failed:\n" + "\n".join(self.failed))


def _per_seed(effects) -> np.ndarray:
    effects = np.asarray(effects, dtype=float).ravel()
    if effects.size < 2:
        raise ValueError(f"effects: need at least 2 seeds, got {effects.size}")
    return effects


def _shown(effects: np.ndarray, n_se: float) -> bool:
    """The standard's test: the mean exceeds n_se standard errors, or every seed is positive."""
    se = effects.std(ddof=1) / np.sqrt(effects.size)
    return bool(effects.mean() > n_se * se) or bool(np.all(effects > 0))


def verdict(baseline, remedy, n_se: float = 2.0) -> str:
    """What a remedy does to a degradation, judged over seeds by the claim standard.

    ``baseline`` and ``remedy``: per-seed changes of one metric (positive = worse), paired by seed.
    "no degradation to prevent" when the baseline does not degrade; "prevents" when the remedy does
    not degrade and does significantly better than the baseline; "slows" when it degrades, but
    significantly less; "does not change" when it is not significantly better; "inconclusive" when
    it neither degrades nor differs from the baseline significantly.
    """
    b, r = _per_seed(baseline), _per_seed(remedy)
    if b.shape != r.shape:
        raise ValueError(
            f"baseline and remedy need one value per seed each, got {b.size} and {r.size}"
        )
    if not _shown(b, n_se):
        return "no degradation to prevent"
    better = _shown(b - r, n_se)
    if _shown(r, n_se):
        return "slows" if better else "does not change"
    return "prevents" if better else "inconclusive"


def per_seed_change(records, metric: str, first: int, last: int, log: bool = False, **where):
    """``metric`` at generation ``last`` minus at ``first``, one value per seed (in seed order), for
    the engine's tidy records matching ``where`` (e.g. ``run="fully synthetic"``); with ``log``, the
    log of their ratio. The per-seed effects that ``Claims.over_seeds`` judges."""
    from .plotting import select

    gens, values, _ = select(records, metric, **where)
    at = {g: i for i, g in enumerate(gens)}
    for name, g in (("first", first), ("last", last)):
        if g not in at:
            raise ValueError(f"{name}={g}: the records have generations {list(gens)}")
    a, b = values[:, at[first]], values[:, at[last]]
    return np.log(b / a) if log else b - a
