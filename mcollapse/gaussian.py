"""Gaussian model collapse: exact samplers, the loops of the papers, and their closed forms.

A Gaussian fitted by the unbiased mean and covariance of n samples from N(mu, S) has sufficient
statistics with known laws: the sample mean is N(mu, S / n), the scatter matrix is
Wishart(S, n - 1), and the two are independent. Drawing those directly (a chi-square in 1-D, the
Bartlett decomposition in d dimensions) simulates a self-consuming loop exactly at a cost that does
not grow with n, so thousands of chains run for thousands of generations in seconds.

Every function here is vectorised over independent chains (the first axis) and takes a seed or a
``numpy.random.Generator``; none touches numpy's global random state.

Papers: Shumailov et al., arXiv 2305.17493 / Nature 631 (2024); Alemohammad et al. (MAD),
arXiv 2307.01850; Gerstgrasser et al., arXiv 2404.01413; Kazdan et al., arXiv 2410.16713;
Bertrand et al., ICLR 2024.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ._checks import as_generator, check_bias, check_choice, check_int, check_positive

POOLS = ("replace", "accumulate", "accumulate_subsample")


# --------------------------------------------------------------------------------------------
# Shumailov et al.: the 1-D recursion
# --------------------------------------------------------------------------------------------


def c4(n_samples):
    """E[s] / sigma for the unbiased sample standard deviation s of n normal samples."""
    n = np.asarray(n_samples, dtype=float)
    return np.exp(
        0.5 * np.log(2.0 / (n - 1)) + special.gammaln(n / 2) - special.gammaln((n - 1) / 2)
    )


def sample_sizes(n_samples, generations: int) -> np.ndarray:
    """Per-generation sample sizes M_1..M_G: one int for all generations, or a schedule of G ints.

    Shumailov et al. allow M_i to vary: the error stays bounded only if sum_i 1/M_i converges,
    i.e. if the sample size grows superlinearly.
    """
    g = check_int("generations", generations, minimum=1)
    if np.ndim(n_samples) == 0:
        return np.full(g, check_int("n_samples", n_samples, minimum=2))
    sizes = np.asarray(n_samples)
    if sizes.shape != (g,) or not np.issubdtype(sizes.dtype, np.integer) or sizes.min() < 2:
        raise ValueError(
            f"n_samples must be an integer >= 2 or a sequence of {g} such integers (one per"
            f" generation); got shape {sizes.shape}, dtype {sizes.dtype}"
        )
    return sizes.astype(np.int64)


def simulate_1d(n_samples, generations: int, chains: int, seed, sigma: float = 1.0) -> dict:
    """Fit N(mu, sigma^2) by the unbiased mean and variance of M_t draws, repeatedly.

    Exact: mu_t ~ N(mu_{t-1}, var_{t-1} / M_t) and var_t ~ var_{t-1} chi2(M_t - 1) / (M_t - 1),
    independent. ``n_samples`` is one M or a schedule (see ``sample_sizes``). Returns arrays
    ``mean`` and ``var`` of shape (chains, generations + 1); column 0 is the truth.
    """
    m = sample_sizes(n_samples, generations)
    c = check_int("chains", chains, minimum=1)
    sigma = check_positive("sigma", sigma)
    rng = as_generator(seed)
    g = len(m)
    z = rng.standard_normal((c, g))
    ratio = rng.chisquare(m - 1, size=(c, g)) / (m - 1)
    var = sigma**2 * np.concatenate([np.ones((c, 1)), np.cumprod(ratio, axis=1)], axis=1)
    steps = np.sqrt(var[:, :-1] / m) * z
    mean = np.concatenate([np.zeros((c, 1)), np.cumsum(steps, axis=1)], axis=1)
    return {"mean": mean, "var": var}


def simulate_1d_brute_force(n_samples, generations: int, chains: int, seed) -> dict:
    """The same recursion by drawing M_t points and refitting; for cross-checks."""
    m = sample_sizes(n_samples, generations)
    c = check_int("chains", chains, minimum=1)
    rng = as_generator(seed)
    mean, var = np.zeros((c, len(m) + 1)), np.ones((c, len(m) + 1))
    for t, size in enumerate(m):
        x = mean[:, t, None] + np.sqrt(var[:, t, None]) * rng.standard_normal((c, size))
        mean[:, t + 1] = x.mean(axis=1)
        var[:, t + 1] = x.var(axis=1, ddof=1)
    return {"mean": mean, "var": var}


def _cumulative(per_generation: np.ndarray, generation) -> np.ndarray:
    """sum_{i <= n} of a per-generation quantity, evaluated at each n in ``generation``."""
    n = np.asarray(generation, dtype=int)
    return np.concatenate([[0.0], np.cumsum(per_generation)])[n]


def _schedule(generation, n_samples) -> np.ndarray:
    """Sample sizes covering generations 1..max(generation); a schedule may run longer."""
    last = max(int(np.max(generation)), 1)
    if np.ndim(n_samples) == 0:
        return sample_sizes(n_samples, last)
    sizes = sample_sizes(n_samples, len(n_samples))
    if len(sizes) < last:
        raise ValueError(
            f"n_samples must give a sample size for every generation up to {last}; "
            f"the schedule has {len(sizes)}"
        )
    return sizes


def expected_w2_squared_1d(generation, n_samples, sigma: float = 1.0):
    """Exact E[W2^2] between the generation-n fit and N(0, sigma^2) for the 1-D recursion.

    E[mu_n^2] = sigma^2 sum_i 1/M_i (the variance estimate is a martingale) and
    E[sigma_n] = sigma prod_i c4(M_i), so E[W2^2] = sigma^2 (sum 1/M_i + 2 (1 - prod c4(M_i))),
    which is about (3/2) sigma^2 n / M for a constant M and n << M.
    """
    m = _schedule(generation, n_samples)
    inverse = _cumulative(1.0 / m, generation)
    shrink = np.exp(_cumulative(np.log(c4(m)), generation))
    return sigma**2 * (inverse + 2.0 * (1.0 - shrink))


def w2_squared_1d(mean, var, sigma: float = 1.0):
    """W2^2 between N(mean, var) and N(0, sigma^2)."""
    return mean**2 + (np.sqrt(var) - sigma) ** 2


def sample_variance_identity(generation, n_samples):
    """Var of one sample of generation n over all runs: 1 + sum_{i <= n} 1/M_i."""
    return 1.0 + _cumulative(1.0 / _schedule(generation, n_samples), generation)


def expected_log_var_1d(generation, n_samples):
    """E[log sigma_n^2] = sum_i E[log(chi2_{M_i-1} / (M_i-1))] < 0: each run's variance drifts to 0."""
    m = _schedule(generation, n_samples).astype(float)
    return _cumulative(special.digamma((m - 1) / 2) + np.log(2 / (m - 1)), generation)


def tail_mass(mean, var, threshold: float = 3.0):
    """P(|X| > threshold) for X ~ N(mean, var): the mass a fit keeps in the original's tails."""
    sd = np.sqrt(var)
    return stats.norm.sf((threshold - mean) / sd) + stats.norm.cdf((-threshold - mean) / sd)


def log_tail_mass(mean, var, threshold: float = 3.0):
    """log P(|X| > threshold) for X ~ N(mean, var); finite where ``tail_mass`` underflows to 0."""
    sd = np.sqrt(var)
    return np.logaddexp(
        stats.norm.logsf((threshold - mean) / sd), stats.norm.logcdf((-threshold - mean) / sd)
    )


def simulate_1d_fresh(n_samples, generations: int, chains: int, seed, sigma: float = 1.0) -> dict:
    """The null of the 1-D recursion: every generation is fitted to M_t fresh samples of the truth.

    Nothing is fed back, so the fits of different generations are independent:
    mu_t ~ N(0, sigma^2 / M_t) and var_t ~ sigma^2 chi2(M_t - 1) / (M_t - 1). A claim that the
    self-consuming loop collapses must fail on this loop. Returns what ``simulate_1d`` returns.
    """
    m = sample_sizes(n_samples, generations)
    c = check_int("chains", chains, minimum=1)
    sigma = check_positive("sigma", sigma)
    rng = as_generator(seed)
    mean = sigma * rng.standard_normal((c, len(m))) / np.sqrt(m)
    var = sigma**2 * rng.chisquare(m - 1, size=(c, len(m))) / (m - 1)
    return {
        "mean": np.concatenate([np.zeros((c, 1)), mean], axis=1),
        "var": np.concatenate([np.full((c, 1), sigma**2), var], axis=1),
    }


def share_below_original(mean, var, threshold: float = 3.0, sigma: float = 1.0):
    """Share of runs (axis 0) whose fit keeps less mass beyond ``threshold`` than N(0, sigma^2)."""
    original = log_tail_mass(0.0, sigma**2, threshold)
    return (log_tail_mass(mean, var, threshold) < original).mean(axis=0)


def tail_collapse_statistics(
    mean, var, early: int, late: int, threshold: float = 3.0, n_boot: int = 400, seed=0
) -> dict:
    """Do the tails vanish first? Two statistics of runs (axis 0) between two generations.

    ``tail_drop`` = log(median tail mass at ``late`` / median at ``early``), ``var_drop`` the same
    for the variance, and ``excess`` = tail_drop - var_drop: negative when the median run loses its
    tails faster than its variance; ``excess_se`` is its bootstrap standard error (runs resampled
    jointly at both generations). ``share_below_early`` / ``share_below_late`` are the shares of
    runs keeping less tail mass than the original, ``share_gain`` their difference and
    ``share_gain_se`` the standard error of two independent proportions (conservative: the same
    runs at two generations are positively correlated). On a loop without feedback
    (``simulate_1d_fresh``) both ``excess`` and ``share_gain`` are 0 within noise.
    """
    early = check_int("early", early, minimum=0)
    late = check_int("late", late, minimum=early + 1)
    n_boot = check_int("n_boot", n_boot, minimum=2)
    mean, var = np.asarray(mean, dtype=float), np.asarray(var, dtype=float)
    cols = [early, late]
    log_tail = log_tail_mass(mean[:, cols], var[:, cols], threshold)
    log_var = np.log(var[:, cols])

    def drops(idx):
        t, v = np.median(log_tail[idx], axis=0), np.median(log_var[idx], axis=0)
        return t[1] - t[0], v[1] - v[0]

    chains = len(log_tail)
    tail_drop, var_drop = drops(slice(None))
    rng = as_generator(seed)
    boot = [np.subtract(*drops(rng.integers(0, chains, chains))) for _ in range(n_boot)]
    below = (log_tail < log_tail_mass(0.0, 1.0, threshold)).mean(axis=0)
    return {
        "tail_drop": float(tail_drop),
        "var_drop": float(var_drop),
        "excess": float(tail_drop - var_drop),
        "excess_se": float(np.std(boot, ddof=1)),
        "share_below_early": float(below[0]),
        "share_below_late": float(below[1]),
        "share_gain": float(below[1] - below[0]),
        "share_gain_se": float(np.sqrt((below * (1 - below)).sum() / chains)),
    }


def median_slope(values, start: int, stop: int, n_boot: int = 400, seed=0) -> tuple[float, float]:
    """Slope per generation of the median over runs (axis 0 of ``values``) between two generations,
    (median[stop] - median[start]) / (stop - start), and its bootstrap standard error (runs
    resampled jointly at both generations)."""
    start = check_int("start", start, minimum=0)
    stop = check_int("stop", stop, minimum=start + 1)
    n_boot = check_int("n_boot", n_boot, minimum=2)
    ends = np.asarray(values, dtype=float)[:, [start, stop]]

    def slope(x):
        lo, hi = np.median(x, axis=0)
        return (hi - lo) / (stop - start)

    rng = as_generator(seed)
    boot = [slope(ends[rng.integers(0, len(ends), len(ends))]) for _ in range(n_boot)]
    return float(slope(ends)), float(np.std(boot, ddof=1))


# --------------------------------------------------------------------------------------------
# d-dimensional fits: exact sufficient statistics
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GaussianFits:
    """A batch of fitted Gaussians N(mean, cov), cov = exp(2 log_scale) chol chol^T.

    Keeping the Cholesky factor (and its scale in log form) lets a collapsing covariance shrink by
    hundreds of orders of magnitude without underflow or a failed factorisation.
    """

    mean: np.ndarray  # (chains, d)
    chol: np.ndarray  # (chains, d, d), lower triangular, positive diagonal
    log_scale: np.ndarray  # (chains,)

    @property
    def dim(self) -> int:
        return self.mean.shape[1]

    @property
    def cov(self) -> np.ndarray:
        scale = np.exp(2 * self.log_scale)[:, None, None]
        return scale * self.chol @ np.swapaxes(self.chol, 1, 2)

    @property
    def log_det(self) -> np.ndarray:
        diag = np.diagonal(self.chol, axis1=1, axis2=2)
        return 2 * np.log(diag).sum(axis=1) + 2 * self.dim * self.log_scale

    @property
    def log_trace(self) -> np.ndarray:
        return np.log((self.chol**2).sum(axis=(1, 2))) + 2 * self.log_scale

    @property
    def trace(self) -> np.ndarray:
        return np.exp(self.log_trace)

    @classmethod
    def standard(cls, chains: int, dim: int) -> GaussianFits:
        """``chains`` copies of N(0, I_d), the truth of every Gaussian experiment here."""
        eye = np.broadcast_to(np.eye(dim), (chains, dim, dim)).copy()
        return cls(np.zeros((chains, dim)), eye, np.zeros(chains))

    @classmethod
    def from_cov(cls, mean: np.ndarray, cov: np.ndarray) -> GaussianFits:
        return cls(mean, np.linalg.cholesky(cov), np.zeros(mean.shape[0]))

    def renormalised(self) -> GaussianFits:
        """Move the geometric mean of the factor's diagonal into ``log_scale``."""
        shift = np.log(np.diagonal(self.chol, axis1=1, axis2=2)).mean(axis=1)
        return GaussianFits(
            self.mean, self.chol * np.exp(-shift)[:, None, None], self.log_scale + shift
        )


def bartlett_factor(dof, dim: int, chains: int, rng: np.random.Generator) -> np.ndarray:
    """A (chains, d, d) with A A^T ~ Wishart(I_d, dof): chi on the diagonal, N(0, 1) below (Bartlett).

    ``dof`` is one integer or one per chain. For dof < d the Wishart matrix is singular; A is then
    the lower-trapezoidal factor of the same law (the R of a QR of a dof x d normal matrix,
    transposed): chi_{dof - i} on the first dof diagonal entries and zero columns from dof on.
    """
    dof = np.broadcast_to(np.asarray(dof), (chains,))
    a = np.tril(rng.standard_normal((chains, dim, dim)), k=-1)
    i = np.arange(dim)
    keep = i < dof[:, None]  # (chains, d): columns that exist
    a[:, i, i] = np.sqrt(rng.chisquare(np.where(keep, dof[:, None] - i, 1)))
    return a * keep[:, None, :]


@dataclass(frozen=True)
class SampleStats:
    """Sufficient statistics of a batch of samples: count, mean, and a factor F of the scatter
    matrix sum (x - mean)(x - mean)^T = F F^T (F stored at scale exp(log_scale))."""

    count: int
    mean: np.ndarray  # (chains, d)
    factor: np.ndarray  # (chains, d, k)
    log_scale: np.ndarray  # (chains,)

    @property
    def scatter(self) -> np.ndarray:
        scale = np.exp(2 * self.log_scale)[:, None, None]
        return scale * self.factor @ np.swapaxes(self.factor, 1, 2)


def draw_stats(model: GaussianFits, n, rng: np.random.Generator, bias=1.0) -> SampleStats:
    """Sufficient statistics of ``n`` samples drawn from N(mean, bias * cov), exactly.

    ``bias`` is MAD's lambda: sampling from a shrunk covariance, as truncation or guidance do.
    ``n`` and ``bias`` are scalars or one value per chain (a batch of different loops).
    """
    chains, d = model.mean.shape
    z = rng.standard_normal((chains, d, 1))
    step = (np.sqrt(bias / np.asarray(n)) * np.exp(model.log_scale))[:, None]
    mean = model.mean + step * (model.chol @ z)[..., 0]
    factor = model.chol @ bartlett_factor(np.asarray(n) - 1, d, chains, rng)
    return SampleStats(n, mean, factor, model.log_scale + 0.5 * np.log(bias))


def draw_points(
    model: GaussianFits, n: int, rng: np.random.Generator, bias: float = 1.0
) -> np.ndarray:
    """``n`` actual samples per chain from N(mean, bias * cov): shape (chains, n, d)."""
    chains, d = model.mean.shape
    z = rng.standard_normal((chains, n, d))
    scale = np.sqrt(bias) * np.exp(model.log_scale)[:, None, None]
    return model.mean[:, None, :] + scale * z @ np.swapaxes(model.chol, 1, 2)


def points_stats(x: np.ndarray) -> SampleStats:
    """Sufficient statistics of actual points x of shape (chains, n, d)."""
    mean = x.mean(axis=1)
    centred = x - mean[:, None, :]
    return SampleStats(x.shape[1], mean, np.swapaxes(centred, 1, 2), np.zeros(x.shape[0]))


def fit(parts: list[SampleStats]) -> GaussianFits:
    """Unbiased mean and covariance of the union of several batches (Chan et al.'s merge).

    A single batch needs no factorisation: its Cholesky factor follows from the scatter factor's
    QR decomposition (or directly, for a Bartlett factor, which is already lower triangular).
    Counts may be scalars or one per chain; a batch of count 0 adds nothing.
    """
    total = sum(np.asarray(p.count) for p in parts)
    dim = parts[0].mean.shape[1]
    if np.any(total < dim + 1):
        raise ValueError(
            f"a fit needs at least dim + 1 = {dim + 1} samples in total (a non-singular covariance),"
            f" got {np.min(total)}"
        )
    if len(parts) == 1:
        p = parts[0]
        chol = _lower_factor(p.factor)
        return GaussianFits(p.mean, chol, p.log_scale - 0.5 * np.log(total - 1)).renormalised()
    counts = [np.asarray(p.count, dtype=float) for p in parts]
    mean = sum(c[..., None] * p.mean for c, p in zip(counts, parts, strict=True)) / total[..., None]
    scatter = sum(p.scatter for p in parts)
    for c, p in zip(counts, parts, strict=True):
        diff = p.mean - mean
        scatter = scatter + c[..., None, None] * diff[:, :, None] * diff[:, None, :]
    return GaussianFits.from_cov(mean, scatter / (total[..., None, None] - 1)).renormalised()


def _lower_factor(factor: np.ndarray) -> np.ndarray:
    """Lower-triangular L with positive diagonal and L L^T = F F^T."""
    d, k = factor.shape[1:]
    if (
        k == d
        and not np.triu(factor, 1).any()
        and (np.diagonal(factor, axis1=1, axis2=2) > 0).all()
    ):
        return factor
    r = np.linalg.qr(np.swapaxes(factor, 1, 2), mode="r")  # F^T = Q R, so F F^T = R^T R
    lower = np.swapaxes(r[:, :d, :], 1, 2)
    signs = np.sign(np.diagonal(lower, axis1=1, axis2=2))
    signs[signs == 0] = 1.0
    return lower * signs[:, None, :]


def fit_brute_force(
    model: GaussianFits, n: int, rng: np.random.Generator, bias: float = 1.0
) -> GaussianFits:
    """Draw n points and refit with np.mean / np.cov (ddof=1); the reference for the exact sampler."""
    x = draw_points(model, n, rng, bias)
    mean = x.mean(axis=1)
    cov = np.stack([np.cov(xi, rowvar=False, ddof=1).reshape(x.shape[2], x.shape[2]) for xi in x])
    return GaussianFits.from_cov(mean, cov)


def w2_squared_to_standard(model: GaussianFits) -> np.ndarray:
    """W2^2 between each fit N(m, S) and the truth N(0, I): |m|^2 + tr S + d - 2 tr S^(1/2)."""
    eig = np.clip(np.linalg.eigvalsh(model.cov), 0.0, None)
    return (model.mean**2).sum(axis=1) + (eig + 1.0 - 2.0 * np.sqrt(eig)).sum(axis=1)


def gaussian_w2_squared(mean1, cov1, mean2, cov2) -> np.ndarray:
    """W2^2 between N(mean1, cov1) and N(mean2, cov2), batched over a leading axis.

    |m1 - m2|^2 + tr C1 + tr C2 - 2 tr (C2^(1/2) C1 C2^(1/2))^(1/2).
    """
    root2 = _psd_sqrt(cov2)
    cross = _psd_sqrt(root2 @ cov1 @ root2)
    mean_term = ((np.asarray(mean1) - np.asarray(mean2)) ** 2).sum(axis=-1)
    trace = np.trace(cov1, axis1=-2, axis2=-1) + np.trace(cov2, axis1=-2, axis2=-1)
    return mean_term + trace - 2 * np.trace(cross, axis1=-2, axis2=-1)


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    eig, vec = np.linalg.eigh(cov)
    return (vec * np.sqrt(np.clip(eig, 0.0, None))[..., None, :]) @ np.swapaxes(vec, -1, -2)


# --------------------------------------------------------------------------------------------
# Loops
# --------------------------------------------------------------------------------------------


def _summary(model: GaussianFits, w2: bool = True) -> dict:
    out = {
        "log_det": model.log_det,
        "log_trace": model.log_trace,
        "mean_norm2": (model.mean**2).sum(axis=1),
    }
    if w2:
        out["w2_squared"] = w2_squared_to_standard(model)
    return out


def _finish(rows: list[dict], final: GaussianFits, w2: bool) -> dict:
    """Stacked per-generation summaries; without per-generation W2, the last generation's W2."""
    out = _stack(rows)
    if not w2:
        out["final_w2_squared"] = w2_squared_to_standard(final)
    return out


def _stack(rows: list[dict]) -> dict:
    """List of per-generation summaries -> dict of arrays (chains, generations + 1)."""
    return {k: np.stack([r[k] for r in rows], axis=1) for k in rows[0]}


def _check_loop(dim, n_samples, generations, chains, bias, size_name="n_samples"):
    d = check_int("dim", dim, minimum=1)
    n = check_int(size_name, n_samples, minimum=max(2, d + 1))  # a non-singular fit needs n > d
    g = check_int("generations", generations, minimum=1)
    c = check_int("chains", chains, minimum=1)
    return d, n, g, c, check_bias("bias", bias)


def simulate_fully_synthetic(dim, n_samples, generations, chains, seed, bias=1.0, w2=True) -> dict:
    """MAD's fully synthetic Gaussian loop: generation t fits n samples of N(mu_{t-1}, bias S_{t-1}).

    Generation 0 is the truth N(0, I); generation 1 is the fit to n real samples. Returns arrays of
    shape (chains, generations + 1): log_det, log_trace, mean_norm2 and w2_squared. W2 needs an
    eigendecomposition per chain and generation; with ``w2=False`` it is computed for the last
    generation only, returned as ``final_w2_squared`` of shape (chains,).
    """
    d, n, g, c, lam = _check_loop(dim, n_samples, generations, chains, bias)
    rng = as_generator(seed)
    model = GaussianFits.standard(c, d)
    rows = [_summary(model, w2)]
    for t in range(1, g + 1):
        model = fit([draw_stats(model, n, rng, 1.0 if t == 1 else lam)])
        rows.append(_summary(model, w2))
    return _finish(rows, model, w2)


def simulate_augmented(
    dim, n_real, n_synthetic, generations, chains, seed, bias=1.0, w2=True
) -> dict:
    """MAD's synthetic-augmented loop: a fixed real set plus n_synthetic samples of the last fit.

    Generation 1 fits the n_real real samples alone; every later generation fits the same real
    samples together with fresh synthetic samples from N(mu_{t-1}, bias S_{t-1}). Also Bertrand et
    al.'s retraining on real + ratio x synthetic (n_synthetic = ratio * n_real). Returns what
    ``simulate_fully_synthetic`` returns, plus ``real_log_trace`` (the real set's own fit).
    """
    d, nr, g, c, lam = _check_loop(dim, n_real, generations, chains, bias, "n_real")
    ns = check_int("n_synthetic", n_synthetic, minimum=0)
    rng = as_generator(seed)
    truth = GaussianFits.standard(c, d)
    real = draw_stats(truth, nr, rng)
    model = fit([real])
    real_log_trace = model.log_trace
    rows = [_summary(truth, w2), _summary(model, w2)]
    for _ in range(2, g + 1):
        parts = [real] + ([draw_stats(model, ns, rng, lam)] if ns > 0 else [])
        model = fit(parts)
        rows.append(_summary(model, w2))
    return {**_finish(rows, model, w2), "real_log_trace": real_log_trace}


def augmented_expected_trace(tr_real, n_real, n_synthetic, generations, bias=1.0) -> np.ndarray:
    """E[tr S_t] of the augmented loop, given the real set's unbiased covariance trace ``tr_real``.

    With s_t = E tr S_t and m_t = E|mu_t - real mean|^2 the pooled fit gives the exact linear
    recursion (N = n_r + n_s):
        s_{t+1} = [(n_r - 1) tr_real + (n_s - 1) lam s_t + (n_r n_s / N)(m_t + lam s_t / n_s)] / (N - 1)
        m_{t+1} = (n_s / N)^2 (m_t + lam s_t / n_s),
    starting from s_1 = tr_real, m_1 = 0. Returns s_1..s_G, shape (generations,).
    """
    nr = check_int("n_real", n_real, minimum=2)
    ns = check_int("n_synthetic", n_synthetic, minimum=0)
    g = check_int("generations", generations, minimum=1)
    lam = check_bias("bias", bias)
    if ns == 0:
        return np.full(g, float(tr_real))
    n_total = nr + ns
    s, m, out = float(tr_real), 0.0, [float(tr_real)]
    for _ in range(g - 1):
        between = m + lam * s / ns
        s = ((nr - 1) * tr_real + (ns - 1) * lam * s + nr * ns / n_total * between) / (n_total - 1)
        m = (ns / n_total) ** 2 * between
        out.append(s)
    return np.array(out)


def simulate_pool(dim, n_samples, generations, chains, seed, pool="replace") -> dict:
    """Replace vs accumulate vs accumulate-subsample (Gerstgrasser et al.; Kazdan et al.).

    Every generation draws n new samples from the latest fit. ``replace`` fits those alone;
    ``accumulate`` fits the whole pool (the n real samples and all synthetic samples so far);
    ``accumulate_subsample`` fits n samples drawn without replacement from that pool. The first
    two run on exact statistics; the subsample needs the actual points (it re-uses them).
    """
    d, n, g, c, _ = _check_loop(dim, n_samples, generations, chains, 1.0)
    check_choice("pool", pool, POOLS)
    if pool == "replace":
        return simulate_fully_synthetic(d, n, g, c, seed)
    rng = as_generator(seed)
    truth = GaussianFits.standard(c, d)
    rows = [_summary(truth)]
    if pool == "accumulate_subsample":
        points = np.empty((c, g * n, d))
        points[:, :n] = draw_points(truth, n, rng)
        model = fit([points_stats(points[:, :n])])
        rows.append(_summary(model))
        for t in range(1, g):
            points[:, t * n : (t + 1) * n] = draw_points(model, n, rng)
            size = (t + 1) * n
            pick = np.argpartition(rng.random((c, size)), n - 1, axis=1)[:, :n]
            subset = np.take_along_axis(points[:, :size], pick[:, :, None], axis=1)
            model = fit([points_stats(subset)])
            rows.append(_summary(model))
        return _stack(rows)
    pooled = draw_stats(truth, n, rng)
    model = fit([pooled])
    rows.append(_summary(model))
    for _ in range(1, g):
        model = fit([pooled, draw_stats(model, n, rng)])
        pooled = _as_stats(model, pooled.count + n)
        rows.append(_summary(model))
    return _stack(rows)


def _as_stats(model: GaussianFits, count: int) -> SampleStats:
    """The running statistics of a pool of ``count`` points whose unbiased fit is ``model``."""
    return SampleStats(count, model.mean, model.chol * np.sqrt(count - 1), model.log_scale)


# --------------------------------------------------------------------------------------------
# Closed forms for the d-dimensional loop
# --------------------------------------------------------------------------------------------


def _biased_steps(generation):
    """Generation t >= 1 is fitted to t - 1 biased samplings (generation 1 saw real data)."""
    return np.clip(np.asarray(generation, dtype=float) - 1.0, 0.0, None)


def expected_trace_ratio(generation, bias=1.0):
    """E[tr S_t] / tr S_true = lam^(t - 1) for t >= 1: the unbiased covariance is a martingale,
    shrunk by lam at every biased sampling. (MAD count the first fit as t = 0 and write lam^t.)"""
    return check_bias("bias", bias) ** _biased_steps(generation)


def log_det_drift(dim, n_samples, bias=1.0) -> float:
    """E[log det S_t - log det S_{t-1}] = d log(lam / nu) + sum_i [psi((nu - i + 1) / 2) + log 2].

    nu = n - 1 (needs nu >= d). Negative even at lam = 1: log det falls linearly in t.
    """
    d = check_int("dim", dim, minimum=1)
    n = check_int("n_samples", n_samples, minimum=d + 1)
    lam = check_bias("bias", bias)
    nu = n - 1
    i = np.arange(1, d + 1)
    return float(d * np.log(lam / nu) + (special.digamma((nu - i + 1) / 2) + np.log(2)).sum())


def expected_log_det(generation, dim, n_samples, bias=1.0):
    """E[log det S_t] - log det S_true for the fully synthetic loop (generation 0 is the truth)."""
    t = np.asarray(generation, dtype=float)
    first = np.minimum(t, 1.0) * log_det_drift(dim, n_samples)
    return first + _biased_steps(t) * log_det_drift(dim, n_samples, bias) + 0.0  # no -0.0


def lyapunov_exponents(dim, n_samples, bias=1.0) -> np.ndarray:
    """The d Lyapunov exponents of the fully synthetic loop's covariance, largest first:
    log(lam) + psi((nu - i + 1) / 2) + log(2 / nu) for i = 1..d, nu = n - 1.

    S_t = (lam / nu) L W_t L^T, with L L^T = S_{t-1} and W_t ~ Wishart(I, nu) independent of the
    past: S_t is a product of i.i.d. random matrices, and (1/t) log of its i-th eigenvalue tends to
    the i-th exponent almost surely. They sum to ``log_det_drift``. These are rates of S (a
    variance); the rates of its Cholesky factor (a standard deviation) are half as large.
    """
    d = check_int("dim", dim, minimum=1)
    n = check_int("n_samples", n_samples, minimum=d + 1)
    lam = check_bias("bias", bias)
    nu = n - 1
    i = np.arange(1, d + 1)
    return np.log(lam) + special.digamma((nu - i + 1) / 2) + np.log(2 / nu)


def top_lyapunov_exponent(n_samples, bias=1.0) -> float:
    """The largest exponent, log(lam) + E log(chi2_nu / nu) = log(lam) + psi(nu/2) + log(2/nu),
    nu = n - 1, whatever the dimension: the almost-sure rate of log lambda_max(S_t) and log tr S_t.

    For a fixed direction u, u^T S_t u = u^T S_{t-1} u * lam chi2_nu / nu exactly (W_t is rotation
    invariant), so log u^T S_t u is a random walk with this drift; u^T S u <= lambda_max <= tr S <=
    d lambda_max puts the trace on the same rate. Negative for every lam <= 1 (Jensen), so the
    largest eigenvalue, hence S_t itself, tends to 0 almost surely. At lam = 1, n = 100: about
    -0.0101 per generation, while log det falls by log_det_drift(10, 100) / 10 = -0.0576 per
    generation and dimension at d = 10.
    """
    n = check_int("n_samples", n_samples, minimum=2)
    lam = check_bias("bias", bias)
    nu = n - 1
    return float(np.log(lam) + special.digamma(nu / 2) + np.log(2 / nu))


def expected_det_ratio(generation, dim, n_samples, bias=1.0):
    """E[det S_t] / det S_true = prod_i (n - i) / (n - 1) per generation, times lam^d per biased one."""
    d = check_int("dim", dim, minimum=1)
    n = check_int("n_samples", n_samples, minimum=d + 1)
    lam = check_bias("bias", bias)
    per_step = np.prod((n - np.arange(1, d + 1)) / (n - 1))
    t = np.asarray(generation, dtype=float)
    return per_step**t * (lam**d) ** _biased_steps(t)


# --------------------------------------------------------------------------------------------
# Gerstgrasser et al.: linear regression with a fixed design
# --------------------------------------------------------------------------------------------


def simulate_regression(
    dim, n_rows, iterations, chains, seed, noise_var=1.0, pool="replace"
) -> np.ndarray:
    """Test error ||w_n - w*||^2 of OLS retrained on its own labels, per iteration.

    The design X (n_rows x dim, rows N(0, I)) is drawn once per chain and kept. Iteration 1 fits
    real labels X w* + noise. Later iterations label X with the previous fit plus fresh noise and
    either fit those labels alone (``replace``) or all labelled copies so far (``accumulate``;
    the stacked normal equations n X^T X w = X^T sum_k y_k). Returns (chains, iterations).
    """
    d = check_int("dim", dim, minimum=1)
    t_rows = check_int("n_rows", n_rows, minimum=d + 2)
    it = check_int("iterations", iterations, minimum=1)
    c = check_int("chains", chains, minimum=1)
    check_positive("noise_var", noise_var)
    check_choice("pool", pool, ("replace", "accumulate"))
    rng = as_generator(seed)
    x = rng.standard_normal((c, t_rows, d))
    w_true = rng.standard_normal((c, d))
    gram = np.swapaxes(x, 1, 2) @ x
    w, label_sum, errors = w_true, np.zeros((c, d)), []
    for k in range(1, it + 1):
        y = (x @ w[..., None])[..., 0] + np.sqrt(noise_var) * rng.standard_normal((c, t_rows))
        xty = (np.swapaxes(x, 1, 2) @ y[..., None])[..., 0]
        if pool == "replace":
            w = np.linalg.solve(gram, xty[..., None])[..., 0]
        else:
            label_sum = label_sum + xty
            w = np.linalg.solve(k * gram, label_sum[..., None])[..., 0]
        errors.append(((w - w_true) ** 2).sum(axis=1))
    return np.stack(errors, axis=1)


def regression_error_replace(iteration, dim, n_rows, noise_var=1.0):
    """E test error after n replace iterations: n sigma^2 d / (T - d - 1)."""
    return np.asarray(iteration, dtype=float) * noise_var * dim / (n_rows - dim - 1)


def regression_error_accumulate(iteration, dim, n_rows, noise_var=1.0):
    """E test error after n accumulate iterations: sigma^2 d / (T - d - 1) sum_{k<=n} 1/k^2."""
    n = np.atleast_1d(np.asarray(iteration, dtype=int))
    partial = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n.max() + 1) ** 2)])[n]
    out = noise_var * dim / (n_rows - dim - 1) * partial
    return out if np.ndim(iteration) else float(out[0])
