"""MAD's fresh-data loop on Gaussians, and the effective sample size of synthetic data.

Every generation fits the unbiased mean and covariance of ``n_real`` fresh samples of the truth
N(0, I_d) pooled with ``n_synthetic`` samples of the previous fit, drawn with bias lambda (from
N(mu, lambda S)); generation 1 fits ``n_initial`` real samples alone (Alemohammad et al., MAD,
arXiv 2307.01850, section 5). Fresh real data pulls every generation back towards the truth, so
the loop forgets its start and settles into a stationary law whose expected distance to the truth
depends on (n_real, n_synthetic, lambda) only.

The distance is the squared 2-Wasserstein distance to the truth, W2^2 = |m|^2 + tr(S + I - 2 S^1/2):
for Gaussians it is the Frechet distance, the quantity FID measures in a feature space. The
*effective sample size* n_e of a loop is the number of real samples whose fit alone has the same
expected distance; synthetic data is worth adding when n_e / n_real >= 1.

Everything runs on the exact samplers of ``mcollapse.gaussian`` (a cost independent of the sample
sizes), vectorised over chains and over the cells of a grid, and split into seeded chunks that
joblib spreads over the available cores.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from ._checks import as_generator, check_bias, check_int, check_positive
from .gaussian import GaussianFits, SampleStats, draw_stats, fit, w2_squared_to_standard


def simulate_fresh(
    dim, n_real, n_synthetic, generations, chains, seed, n_initial, bias=1.0
) -> dict:
    """MAD's fresh-data loop: W2^2 to the truth per chain and generation.

    Returns ``w2_squared`` and ``log_trace`` of shape (chains, generations + 1); column 0 is the
    truth. ``n_initial`` may be at most ``dim`` (MAD's n_ini = 100 in d = 100): the first fit is
    then singular, which sampling from it handles; the pooled fits after it are not.
    """
    d = check_int("dim", dim, minimum=1)
    nr = check_int("n_real", n_real, minimum=1)
    ns = check_int("n_synthetic", n_synthetic, minimum=0)
    if nr + ns < d + 1:
        raise ValueError(
            f"n_real + n_synthetic must be >= dim + 1 = {d + 1} (a non-singular fit), got {nr + ns}"
        )
    g = check_int("generations", generations, minimum=1)
    c = check_int("chains", chains, minimum=1)
    n0 = check_int("n_initial", n_initial, minimum=2)
    lam = check_bias("bias", bias)
    rng = as_generator(seed)
    truth = GaussianFits.standard(c, d)
    model = fit_any(draw_stats(truth, n0, rng))
    rows = [_distances(truth), _distances(model)]
    for _ in range(2, g + 1):
        model = fresh_step(model, nr, ns, lam, rng)
        rows.append(_distances(model))
    return {k: np.stack([r[k] for r in rows], axis=1) for k in rows[0]}


def _distances(model: GaussianFits) -> dict:
    return {"w2_squared": w2_squared_to_standard(model), "log_trace": model.log_trace}


def fit_any(stats: SampleStats) -> GaussianFits:
    """The unbiased fit of one batch, singular or not (a singular one keeps its scatter factor)."""
    if np.all(np.asarray(stats.count) > stats.mean.shape[1]):
        return fit([stats])
    return GaussianFits(stats.mean, stats.factor, stats.log_scale - 0.5 * np.log(stats.count - 1))


def fresh_step(model: GaussianFits, n_real, n_synthetic, bias, rng) -> GaussianFits:
    """One generation: fit n_real fresh draws of N(0, I) pooled with n_synthetic draws of the model.

    Sizes and bias are scalars or one per chain; a chain with n_synthetic = 0 refits real data only.
    """
    truth = GaussianFits.standard(*model.mean.shape)
    real = draw_stats(truth, n_real, rng)
    synthetic = draw_stats(model, np.maximum(n_synthetic, 1), rng, bias)  # 1 draw: zero scatter
    return fit([real, dataclasses.replace(synthetic, count=n_synthetic)])


# --------------------------------------------------------------------------------------------
# The stationary distance over a grid of (n_real, n_synthetic, lambda)
# --------------------------------------------------------------------------------------------


def memory(n_real, n_synthetic):
    """Generations per e-fold of the start's influence: 1 / (1 - rho), rho = n_s / (n_r + n_s).

    rho is the weight of the previous model in every pooled fit; the mean forgets its start like
    rho^t (the covariance, shrunk by lambda too, at least as fast).
    """
    return (np.asarray(n_real, float) + np.asarray(n_synthetic, float)) / np.asarray(n_real, float)


def stationary_distance(
    dim, n_real, n_synthetic, bias, chains, seed, settle=6.0, window=3.0, evaluations=12,
    chunk_cells=16, n_jobs=-1, progress=True,
) -> dict:  # fmt: skip
    """E[W2^2] of the fresh-data loop once it has forgotten its start, with its Monte-Carlo error.

    ``n_real``, ``n_synthetic`` and ``bias`` broadcast to one grid shape; every cell runs
    ``chains`` chains from the truth for ``settle`` memories (see ``memory``), then averages W2^2
    over ``evaluations`` generations spread across ``window`` more. The chains are independent, so
    ``se`` is the standard error across chains of their time averages. Cells are sorted by memory
    and run in chunks of ``chunk_cells`` (each chunk as long as its slowest cell needs, with its own
    seed), spread over ``n_jobs`` processes: the numbers do not depend on ``n_jobs``. ``seed`` is
    an int or a numpy SeedSequence.

    Returns ``mean``, ``se`` and ``generations`` (run per cell), each of the grid's shape.
    """
    d = check_int("dim", dim, minimum=1)
    nr, ns, lam = np.broadcast_arrays(*(np.asarray(v) for v in (n_real, n_synthetic, bias)))
    shape = nr.shape
    nr, ns, lam = (v.ravel() for v in (nr, ns, lam))
    _check_cells(d, nr, ns, lam)
    c = check_int("chains", chains, minimum=2)
    if not isinstance(seed, np.random.SeedSequence):
        seed = np.random.SeedSequence([check_int("seed", seed, minimum=0), d, c])
    settle = check_positive("settle", settle)
    window = check_positive("window", window)
    evaluations = check_int("evaluations", evaluations, minimum=1)
    chunk_cells = check_int("chunk_cells", chunk_cells, minimum=1)
    order = np.argsort(memory(nr, ns), kind="stable")
    chunks = [order[i : i + chunk_cells] for i in range(0, len(order), chunk_cells)]
    fresh_copy = np.random.SeedSequence(seed.entropy, spawn_key=seed.spawn_key)  # spawn mutates
    streams = fresh_copy.spawn(len(chunks))
    jobs = (
        delayed(_stationary_chunk)(d, nr[k], ns[k], lam[k], c, s, settle, window, evaluations)
        for k, s in zip(chunks, streams, strict=True)
    )
    runs = Parallel(n_jobs=n_jobs, return_as="generator")(jobs)
    mean, se, gens = (np.empty(len(nr)) for _ in range(3))
    for k, (m, e, g) in zip(
        chunks, tqdm(runs, total=len(chunks), desc="stationary W2", disable=not progress),
        strict=True,
    ):  # fmt: skip
        mean[k], se[k], gens[k] = m, e, g
    return {
        "mean": mean.reshape(shape),
        "se": se.reshape(shape),
        "generations": gens.reshape(shape),
    }


def _check_cells(d, nr, ns, lam):
    for name, v, low in (("n_real", nr, 1), ("n_synthetic", ns, 0)):
        if not np.issubdtype(v.dtype, np.integer) or v.min(initial=low) < low:
            raise ValueError(f"{name} must hold integers >= {low}, got {v}")
    if (nr + ns).min(initial=d + 1) < d + 1:
        raise ValueError(
            f"n_real + n_synthetic must be >= dim + 1 = {d + 1} in every cell (a non-singular fit),"
            f" got a cell with {(nr + ns).min()}"
        )
    if not np.issubdtype(lam.dtype, np.number) or not ((lam > 0) & (lam <= 1)).all():
        raise ValueError(f"bias must hold numbers in (0, 1], got {lam}")


def _stationary_chunk(d, nr, ns, lam, chains, stream, settle, window, evaluations):
    """Run one chunk of cells; returns per-cell (mean, se, generations)."""
    rng = np.random.default_rng(stream)
    tau = memory(nr, ns).max()
    burn = math.ceil(settle * tau)
    span = max(math.ceil(window * tau), evaluations)
    marks = set(burn + np.linspace(0, span, evaluations).round().astype(int))
    cells = len(nr)
    per = (np.repeat(nr, chains), np.repeat(ns, chains), np.repeat(lam, chains))
    model = GaussianFits.standard(cells * chains, d)
    total = np.zeros(cells * chains)
    for t in range(1, burn + span + 1):
        model = fresh_step(model, *per, rng)
        if t in marks:
            total += w2_squared_to_standard(model)
    per_chain = (total / len(marks)).reshape(cells, chains)
    se = per_chain.std(axis=1, ddof=1) / math.sqrt(chains)
    return per_chain.mean(axis=1), se, np.full(cells, burn + span)


# --------------------------------------------------------------------------------------------
# The effective sample size
# --------------------------------------------------------------------------------------------


def real_fit_distance(dim, sizes, chains, seed) -> dict:
    """E[W2^2] between N(0, I_d) and the unbiased fit to n of its samples, for each n in ``sizes``.

    W2^2 = |m|^2 + sum_i (sqrt(e_i) - 1)^2 over the eigenvalues e_i of S. E|m|^2 = d / n is exact;
    the eigenvalue term is estimated by Monte Carlo on the exact sampler. Sizes from 2 on (a fit to
    n <= d samples is singular but has a distance). Returns ``sizes``, ``mean`` and ``se``.
    """
    d = check_int("dim", dim, minimum=1)
    sizes = np.asarray(sizes)
    if sizes.ndim != 1 or not np.issubdtype(sizes.dtype, np.integer) or sizes.min(initial=2) < 2:
        raise ValueError(f"sizes must be a 1-D array of integers >= 2, got {sizes}")
    c = check_int("chains", chains, minimum=2)
    rng = as_generator(seed)
    truth = GaussianFits.standard(c, d)
    mean, se = [], []
    for n in sizes:
        eig = np.clip(np.linalg.eigvalsh(fit_any(draw_stats(truth, int(n), rng)).cov), 0.0, None)
        spread = ((np.sqrt(eig) - 1.0) ** 2).sum(axis=1)
        mean.append(d / n + spread.mean())
        se.append(spread.std(ddof=1) / math.sqrt(c))
    return {"sizes": sizes, "mean": np.array(mean), "se": np.array(se)}


def reference_curve(dim, n_max, chains, seed, points=48) -> dict:
    """``real_fit_distance`` on ``points`` log-spaced sizes from 2 to ``n_max``: what n_e inverts."""
    n_max = check_int("n_max", n_max, minimum=3)
    points = check_int("points", points, minimum=2)
    sizes = np.unique(np.geomspace(2, n_max, points).round().astype(np.int64))
    return real_fit_distance(dim, sizes, chains, seed)


def effective_sample_size(distance, reference: dict, se=None) -> dict:
    """n_e: the real sample size whose fit alone has expected distance ``distance``.

    The reference's log distance falls with log n; it is made monotone (a running minimum) and
    interpolated linearly in log-log, then read backwards. ``se`` (the distance's standard error)
    gives the band ``low``, ``high`` for distance +- 2 se. Distances outside the reference's range
    are clipped to its ends and flagged in ``censored``: -1 (fewer than its smallest size), +1 (more
    than its largest).
    """
    sizes = np.log(np.asarray(reference["sizes"], dtype=float))
    curve = np.log(np.minimum.accumulate(np.asarray(reference["mean"], dtype=float)))
    curve = curve - 1e-12 * np.arange(len(curve))  # strictly decreasing for the inverse
    distance = np.asarray(distance, dtype=float)
    if (distance <= 0).any() or not np.isfinite(distance).all():
        raise ValueError("distance must hold finite numbers > 0")
    se = np.zeros_like(distance) if se is None else np.asarray(se, dtype=float)

    def invert(value):
        return np.exp(np.interp(np.log(value), curve[::-1], sizes[::-1]))

    censored = np.where(np.log(distance) > curve[0], -1, 0) + np.where(
        np.log(distance) < curve[-1], 1, 0
    )
    return {
        "n_e": invert(distance),
        "low": invert(distance + 2 * se),  # a larger distance is worth fewer samples
        "high": invert(np.maximum(distance - 2 * se, 1e-300)),
        "censored": censored,
    }


def admissible_boundary(n_synthetic, ratio, high=None) -> np.ndarray:
    """Per row of ``ratio`` (n_e / n_r over the columns ``n_synthetic``), the n_s above which
    synthetic data hurts: where the ratio crosses 1, interpolated in log n_s. NaN where it never
    does, 0 where it hurts already at the smallest n_s > 0.

    With ``high`` (the ratio's upper band, same shape) a column hurts only if even ``high`` < 1, so
    Monte-Carlo noise around 1 (where n_s << n_r and the synthetic data hardly matters) is not
    read as a boundary. Columns with n_s = 0 are skipped: there n_e = n_r by definition.
    """
    ns = np.asarray(n_synthetic, dtype=float)
    ratio = np.atleast_2d(np.asarray(ratio, dtype=float))
    high = ratio if high is None else np.atleast_2d(np.asarray(high, dtype=float))
    keep = ns > 0
    ns, ratio, high = ns[keep], ratio[:, keep], high[:, keep]
    out = np.full(len(ratio), np.nan)
    for i, (row, upper) in enumerate(zip(ratio, high, strict=True)):
        hurts = np.flatnonzero(upper < 1)
        if hurts.size == 0:
            continue
        j = hurts[0]
        if j == 0:
            out[i] = 0.0
            continue
        lo, hi = np.log(ns[j - 1]), np.log(ns[j])
        frac = np.clip((row[j - 1] - 1) / (row[j - 1] - row[j]), 0.0, 1.0)
        out[i] = math.exp(lo + frac * (hi - lo))
    return out
