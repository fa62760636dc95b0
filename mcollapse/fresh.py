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


# --------------------------------------------------------------------------------------------
# Closed forms of the stationary law (ours): n_e at lambda = 1, the threshold for lambda < 1
# --------------------------------------------------------------------------------------------


def stationary_moments(n_real, n_synthetic, bias=1.0) -> dict:
    """The long-run moments of the loop ``fresh_step`` implements, from its recursion (ours).

    Pooling n_r fresh draws of N(0, I) with n_s draws of N(mu, lambda S), n = n_r + n_s, gives

        mu' = (n_r xbar_r + n_s xbar_s) / n,
        (n - 1) S' = scatter_r + scatter_s + (n_r n_s / n) (xbar_r - xbar_s)(xbar_r - xbar_s)^T,

    with xbar_s = mu + N(0, lambda S / n_s) and E scatter_s = lambda (n_s - 1) S. By symmetry
    E[mu mu^T] = v I and E[S] = s I, and taking expectations gives two linear equations that the
    stationary law satisfies exactly (rho = n_s / n, the previous model's weight):

        v = rho^2 v + (n_r + lambda n_s s) / n^2,
        (n - 1) s = (n_r - 1) + lambda (n_s - 1) s + n_s / n + lambda n_r s / n + (n_r n_s / n) v.

    At lambda = 1 they solve to s = 1 + n_s v / (n - 1) and 1 / v = n - n_s^2 / (n - 1), i.e.
    v = 1 / (n_r (1 + rho_e)) with rho_e = n_s (n_r - 1) / (n_r (n - 1)) ~ rho: the mean of the loop
    is as good as that of n_r (1 + rho_e) < 2 n_r real samples. Returns ``mean_sq`` (v, so that
    E|mu|^2 = d v), ``scale`` (s) and ``dof``: the degrees of freedom k_e of the Wishart whose
    scaled fluctuation matches that of the stationary S to second order (by the same recursion
    for E||S - s I||_F^2, dropping the between-batch term's O(1/n) part):

        k_e = s^2 (n - 1)^2 (1 - lambda^2 rho_1^2) / ((n_r - 1) + lambda^2 (n_s - 1) s^2),

    rho_1 = (n_s - 1) / (n - 1); with no synthetic data k_e = n_r - 1, a fit to n_r samples.
    Arguments broadcast; every result has their broadcast shape.
    """
    nr, ns, lam = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (n_real, n_synthetic, bias))
    )
    if (nr < 2).any() or (ns < 0).any() or not ((lam > 0) & (lam <= 1)).all():
        raise ValueError(
            "need n_real >= 2, n_synthetic >= 0 and bias in (0, 1];"
            f" got n_real {nr.min()}, n_synthetic {ns.min()}, bias {lam.min()}..{lam.max()}"
        )
    n = nr + ns
    rho = ns / n
    ms = np.maximum(ns - 1, 0.0)  # the synthetic scatter's degrees of freedom (none for <= 1 draw)
    cross = np.where(ns > 0, lam * nr / n, 0.0)
    # a11 s + a12 v = b1 ;  a21 s + a22 v = b2
    a11 = (n - 1) - lam * ms - cross
    a12 = -nr * ns / n
    b1 = (nr - 1) + ns / n
    a21 = -lam * ns / n**2
    a22 = 1 - rho**2
    b2 = nr / n**2
    det = a11 * a22 - a12 * a21
    s = (b1 * a22 - a12 * b2) / det
    v = (a11 * b2 - a21 * b1) / det
    rho1 = ms / (n - 1)
    dof = s**2 * (n - 1) ** 2 * (1 - lam**2 * rho1**2) / ((nr - 1) + lam**2 * ms * s**2)
    return {"mean_sq": v, "scale": s, "dof": dof}


def unbiased_ratio(n_real, n_synthetic) -> np.ndarray:
    """n_e / n_r of the loop's mean at lambda = 1, exactly: 1 + n_s (n_r - 1) / (n_r (n_r + n_s - 1)).

    It rises with n_s towards 2 - 1 / n_r and never reaches 2: pooling with an unbiased previous
    model at most doubles what the fresh data is worth (see ``stationary_moments``).
    """
    nr, ns = np.asarray(n_real, dtype=float), np.asarray(n_synthetic, dtype=float)
    return 1 + ns * (nr - 1) / (nr * (nr + ns - 1))


def reference_spread(reference: dict, dim, n) -> np.ndarray:
    """E sum_i (sqrt(e_i) - 1)^2 for a fit to n real samples (real-valued n), read off ``reference``
    (its W2^2 minus the exact mean part d / n), interpolated in log-log; beyond its largest size it
    falls like 1 / (n - 1), as the spread of a Wishart does."""
    sizes = np.asarray(reference["sizes"], dtype=float)
    spread = np.asarray(reference["mean"], dtype=float) - dim / sizes
    if (spread <= 0).any():
        raise ValueError("reference: its distances must exceed the mean part dim / n")
    n = np.asarray(n, dtype=float)
    inside = np.exp(np.interp(np.log(n), np.log(sizes), np.log(spread)))
    beyond = spread[-1] * (sizes[-1] - 1) / np.maximum(n - 1, 1e-300)
    return np.where(n > sizes[-1], beyond, inside)


def closed_form_distance(dim, n_real, n_synthetic, bias, reference: dict) -> np.ndarray:
    """Long-run E W2^2 of the loop (ours): d v + d (sqrt(s) - 1)^2 + sqrt(s) R(k_e + 1).

    v, s and k_e are ``stationary_moments``; R(n) is the covariance part of a fit to n real samples
    (``reference_spread``). The mean part is exact; the covariance part treats the stationary S as
    s times a Wishart(I, k_e) / k_e, which matches its mean and fluctuation (to second order) and
    keeps the curvature of the square root. ``reference`` is ``reference_curve(dim, ...)``.
    """
    d = check_int("dim", dim, minimum=1)
    m = stationary_moments(n_real, n_synthetic, bias)
    root = np.sqrt(m["scale"])
    return (
        d * m["mean_sq"] + d * (root - 1) ** 2 + root * reference_spread(reference, d, m["dof"] + 1)
    )


def closed_form_ratio(dim, n_real, n_synthetic, bias, reference: dict) -> np.ndarray:
    """n_e / n_r from ``closed_form_distance``, read through the same reference as the simulation."""
    distance = closed_form_distance(dim, n_real, n_synthetic, bias, reference)
    return effective_sample_size(distance, reference)["n_e"] / np.asarray(n_real, dtype=float)


def harm_threshold(dim, n_real, bias, reference: dict, n_max=1e7) -> np.ndarray:
    """The n_s above which synthetic data hurts (closed-form n_e / n_r < 1), for each n_r and bias.

    For lambda < 1 a little synthetic data helps (its variance gain is first order in
    rho = n_s / n, its bias (1 - lambda) rho enters W2^2 squared), and past a threshold the bias
    wins. Found as the crossing of ``closed_form_ratio`` with 1 after its maximum, on a log grid
    of n_s up to ``n_max`` refined by bisection; NaN where it never crosses (lambda = 1).
    Arguments broadcast.
    """
    from scipy.optimize import brentq

    nr_all, lam_all = np.broadcast_arrays(np.asarray(n_real), np.asarray(bias, dtype=float))
    out = np.full(nr_all.shape, np.nan)
    for idx in np.ndindex(nr_all.shape):
        nr, lam = float(nr_all[idx]), float(lam_all[idx])
        if lam >= 1:
            continue
        grid = np.geomspace(max(1.0, dim + 1 - nr), n_max, 400)
        gap = closed_form_ratio(dim, nr, grid, lam, reference) - 1
        below = np.flatnonzero((gap < 0) & (np.arange(len(gap)) > np.argmax(gap)))
        if below.size == 0:
            continue
        j = below[0]
        if j == 0:
            out[idx] = grid[0]
            continue
        lo, hi = math.log(grid[j - 1]), math.log(grid[j])
        out[idx] = math.exp(brentq(_ratio_gap, lo, hi, args=(dim, nr, lam, reference), xtol=1e-6))
    return out


def _ratio_gap(log_ns, dim, nr, lam, reference):
    return float(closed_form_ratio(dim, nr, math.exp(log_ns), lam, reference)) - 1


def harm_threshold_limit(dim, bias) -> np.ndarray:
    """``harm_threshold`` as n_r grows without bound (ours, to leading order in rho = n_s / n_r):

        n_s* -> [4 (2 - lambda) + (d + 1)(1/2 + 3 lambda / 2 - lambda^2)] / (1 - lambda)^2.

    Balancing the squared bias d (1 - lambda)^2 rho^2 / 4 against the variance gain (of the mean,
    d (2 - lambda) rho / n_r, and of the covariance, d (d + 1)(1/2 + 3 lambda / 2 - lambda^2) rho /
    (4 n_r)) fixes rho n_r = n_s: the threshold levels off at a number of synthetic samples that
    grows linearly with the dimension d and like (1 - lambda)^-2 as the bias vanishes.
    """
    d = np.asarray(dim, dtype=float)
    lam = np.asarray(bias, dtype=float)
    with np.errstate(divide="ignore"):
        return (4 * (2 - lam) + (d + 1) * (0.5 + 1.5 * lam - lam**2)) / (1 - lam) ** 2


def boundary_mismatch(simulated, closed, n_synthetic) -> np.ndarray:
    """Per row, the factor (>= 1) between a simulated boundary (``admissible_boundary``) and a
    closed-form threshold (``harm_threshold``) on the grid ``n_synthetic``.

    A simulated 0 (harm already at the grid's smallest n_s > 0) agrees with any threshold below that
    n_s, and a simulated NaN (no harm within the grid) with any threshold above its largest n_s;
    beyond those, the factor is how far the threshold lies outside. NaN where ``closed`` is NaN.
    """
    ns = np.asarray(n_synthetic, dtype=float)
    low, high = ns[ns > 0].min(), ns.max()
    sim, cf = np.asarray(simulated, dtype=float), np.asarray(closed, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.maximum(sim / cf, cf / sim)
        out = np.where(sim == 0, np.maximum(1.0, cf / low), inside)
        out = np.where(np.isnan(sim), np.maximum(1.0, high / cf), out)
    return np.where(np.isnan(cf), np.nan, out)


# --------------------------------------------------------------------------------------------
# Forgetting the start (Khelifa et al.): the squared bias decays like (1 - alpha)^(2t)
# --------------------------------------------------------------------------------------------


def simulate_forgetting(
    dim, n_real, n_synthetic, generations, chains, seed, offset, bias=1.0
) -> dict:
    """The loop started far from the truth, at N(offset * 1, I_d) (generation 0).

    Since E xbar_s = mu and E xbar_r = 0, E mu_t = (1 - alpha)^t mu_0 exactly, alpha = n_r / n:
    the squared bias |E mu_t|^2 = (1 - alpha)^(2t) |mu_0|^2, whatever lambda. Returns, of shape
    (chains, generations + 1): ``along``, mu_t . mu_0 / |mu_0|^2 (the start's share left, mean
    (1 - alpha)^t), and ``mean_sq``, |mu_t|^2 (whose excess over its stationary level also holds
    the covariance's transient, which decays like (1 - alpha)^t but starts small).
    """
    d = check_int("dim", dim, minimum=1)
    nr = check_int("n_real", n_real, minimum=2)
    ns = check_int("n_synthetic", n_synthetic, minimum=0)
    if nr + ns < d + 1:
        raise ValueError(f"n_real + n_synthetic must be >= dim + 1 = {d + 1}, got {nr + ns}")
    g = check_int("generations", generations, minimum=1)
    c = check_int("chains", chains, minimum=2)
    offset = check_positive("offset", offset)
    lam = check_bias("bias", bias)
    rng = as_generator(seed)
    start = GaussianFits.standard(c, d)
    model = dataclasses.replace(start, mean=np.full((c, d), offset))
    u = model.mean[0] / (offset**2 * d)
    along, mean_sq = [model.mean @ u], [(model.mean**2).sum(axis=1)]
    for _ in range(g):
        model = fresh_step(model, nr, ns, lam, rng)
        along.append(model.mean @ u)
        mean_sq.append((model.mean**2).sum(axis=1))
    return {"along": np.stack(along, axis=1), "mean_sq": np.stack(mean_sq, axis=1)}


def start_bias_decay(n_real, n_synthetic, generations) -> np.ndarray:
    """(1 - alpha)^(2t) for t = 0..generations, alpha = n_r / (n_r + n_s): what is left of the
    start's squared bias (Khelifa et al., arXiv 2602.16601)."""
    rho = float(n_synthetic) / (float(n_real) + float(n_synthetic))
    return rho ** (2 * np.arange(check_int("generations", generations, minimum=0) + 1))


def forgetting_rate(along, generation: int) -> tuple[float, float]:
    """The squared bias's decay per generation measured at ``generation`` t, with its standard error.

    ``along`` is ``simulate_forgetting``'s (chains independent): the rate is m^(2/t), m the mean
    share left at t, and its SE (2 / t) rate se(m) / m by the delta method.
    """
    along = np.asarray(along, dtype=float)
    t = check_int("generation", generation, minimum=1, maximum=along.shape[1] - 1)
    m = along[:, t].mean()
    se = along[:, t].std(ddof=1) / math.sqrt(along.shape[0])
    if m <= 0:
        raise ValueError(
            f"the mean share left at generation {t} is {m:.3g} <= 0: pick an earlier t"
        )
    rate = m ** (2 / t)
    return rate, 2 / t * rate * se / m


# --------------------------------------------------------------------------------------------
# The weight on fresh real data (He, Xu and Cheng): 1 / phi for equal sample sizes
# --------------------------------------------------------------------------------------------

GOLDEN_WEIGHT = (math.sqrt(5) - 1) / 2  # 1 / phi = 0.618...


def weighted_mean_mse(weight, n_real, n_synthetic) -> np.ndarray:
    """Stationary E (mu - mu*)^2, in units of sigma^2 / n_r, of the weighted loop (ours):

        mu' = w xbar_r + (1 - w) xbar_s,  xbar_r ~ N(mu*, sigma^2 / n_r),  xbar_s ~ N(mu, sigma^2 / n_s):

    the error e' = w eps_r + (1 - w)(e + eps_s) has M = (w^2 / n_r + (1 - w)^2 / n_s) / (1 - (1 - w)^2)
    (sigma^2 known, 0 < w <= 1). With n_s = n_r the minimum is at w^2 + w - 1 = 0, w = 1 / phi, where
    M = 1 / phi: the loop is worth phi = 1.618 times its fresh data, against 1.5 for pooling (w = 1/2)
    and 1 for fresh data alone (w = 1).
    """
    w = np.asarray(weight, dtype=float)
    if ((w <= 0) | (w > 1)).any():
        raise ValueError(f"weight must be in (0, 1], got {w.min()}..{w.max()}")
    k = float(n_real) / float(n_synthetic)
    return (w**2 + k * (1 - w) ** 2) / (1 - (1 - w) ** 2)


def optimal_weight(n_real, n_synthetic) -> float:
    """The w minimising ``weighted_mean_mse``: k w^2 + w - 1 = 0, k = n_s / n_r (1 / phi at k = 1)."""
    k = check_positive("n_synthetic", float(n_synthetic)) / check_positive("n_real", float(n_real))
    return (math.sqrt(1 + 4 * k) - 1) / (2 * k)


def simulate_weighted_mean(
    weights, n_real, n_synthetic, chains, seed, settle=10.0, window=60.0
) -> dict:
    """The weighted loop simulated exactly (sample means drawn from their laws), sigma = 1.

    Every weight runs ``chains`` chains from the truth for ``settle`` memories 1 / (1 - (1 - w)^2)
    (of the smallest weight), then averages n_r (mu - mu*)^2 over ``window`` more. Chain i draws
    the same noise for every weight (common random numbers), so differences between weights are
    paired within a chain and far more precise than either value. Returns ``mean`` and ``se``
    (across chains of their time averages) per weight, in units of sigma^2 / n_r, and ``per_chain``
    (weights, chains).
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 1 or ((w <= 0) | (w > 1)).any():
        raise ValueError(f"weights must be a 1-D array in (0, 1], got {w}")
    nr = check_int("n_real", n_real, minimum=1)
    ns = check_int("n_synthetic", n_synthetic, minimum=1)
    c = check_int("chains", chains, minimum=2)
    rng = as_generator(seed)
    tau = 1 / (1 - (1 - w.min()) ** 2)
    burn = math.ceil(check_positive("settle", settle) * tau)
    span = math.ceil(check_positive("window", window) * tau)
    mu = np.zeros((len(w), c))
    total = np.zeros_like(mu)
    for t in range(burn + span):
        real = rng.standard_normal(c) / math.sqrt(nr)
        synthetic = mu + rng.standard_normal(c) / math.sqrt(ns)
        mu = w[:, None] * real + (1 - w[:, None]) * synthetic
        if t >= burn:
            total += mu**2
    per_chain = nr * total / span
    return {
        "mean": per_chain.mean(axis=1),
        "se": per_chain.std(axis=1, ddof=1) / math.sqrt(c),
        "per_chain": per_chain,
    }


def weighted_argmin(weights, per_chain, n_boot=400, seed=0) -> tuple[float, float]:
    """The weight minimising the simulated MSE, with a bootstrap standard error over chains.

    ``weights`` is a fine, sorted grid and ``per_chain`` is ``simulate_weighted_mean``'s; the minimum
    is the vertex of the parabola through the grid minimum and its two neighbours (so its precision
    is not limited by the grid), and the bootstrap resamples chains (the independent units).
    """
    w = np.asarray(weights, dtype=float)
    per_chain = np.asarray(per_chain, dtype=float)
    if w.ndim != 1 or len(w) < 3 or np.any(np.diff(w) <= 0) or per_chain.shape[0] != len(w):
        raise ValueError(
            "weights must be a sorted 1-D grid of >= 3 values, one per row of per_chain"
        )

    def vertex(mse):
        j = int(np.clip(np.argmin(mse), 1, len(w) - 2))
        c = np.polyfit(w[j - 1 : j + 2], mse[j - 1 : j + 2], 2)
        return float(np.clip(-c[1] / (2 * c[0]), w[j - 1], w[j + 1])) if c[0] > 0 else float(w[j])

    rng = as_generator(seed)
    chains = per_chain.shape[1]
    boot = [
        vertex(per_chain[:, rng.integers(0, chains, chains)].mean(axis=1)) for _ in range(n_boot)
    ]
    return vertex(per_chain.mean(axis=1)), float(np.std(boot, ddof=1))
