"""The linear denoising autoencoder view of reflow collapse (Zhu et al., arXiv 2412.08175).

A linear DAE W trained on data of covariance S to undo noise N(0, sigma^2 I) minimises
E ||W (x + e) - x||^2; its closed form is W = S (S + sigma^2 I)^{-1}, with eigenvalues
s / (s + sigma^2) < 1. Its outputs W (x + e) have covariance W (S + sigma^2 I) W^T = S^2 (S + sigma^2)^{-1}:
retrained on them, each eigenvalue of the data follows

    s_{t+1} = s_t^2 / (s_t + sigma^2),

so the data covariance, and with it the operator norm ||W_t|| = s_t / (s_t + sigma^2), shrinks round
after round to 0 (geometrically, by a factor s_t / (s_t + sigma^2) <= ||W_0|| < 1 per round, then
faster). With a fraction ``alpha`` of the training set drawn afresh from the real data each round the
mixture has covariance

    s_{t+1} = alpha s_0 + (1 - alpha) s_t^2 / (s_t + sigma^2) >= alpha s_0,

bounded away from 0, and so is ||W_t|| >= alpha s_0 / (alpha s_0 + sigma^2).

``recursion`` iterates these closed forms; ``simulate`` trains the DAE by least squares on finite
samples and generates with it, which is what the closed form must match.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_int, check_positive


def _check(eigenvalues, sigma2, generations, real_fraction):
    s0 = np.atleast_1d(np.asarray(eigenvalues, dtype=float))
    if s0.ndim != 1 or not np.all(np.isfinite(s0)) or np.any(s0 <= 0):
        raise ValueError(f"eigenvalues must be finite numbers > 0, got {eigenvalues!r}")
    sigma2 = check_positive("sigma2", sigma2)
    generations = check_int("generations", generations, minimum=0)
    alpha = check_positive("real_fraction", real_fraction, allow_zero=True)
    if alpha > 1:
        raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction!r}")
    return s0, sigma2, generations, alpha


def recursion(eigenvalues, sigma2: float, generations: int, real_fraction: float = 0.0) -> dict:
    """Closed-form eigenvalues per round: ``data`` (generations + 1, d) of the training covariance,
    ``dae`` (generations + 1, d) of W_t, ``norm`` (generations + 1,) the operator norm of W_t."""
    s0, sigma2, generations, alpha = _check(eigenvalues, sigma2, generations, real_fraction)
    s = [s0]
    for _ in range(generations):
        s.append(alpha * s0 + (1 - alpha) * s[-1] ** 2 / (s[-1] + sigma2))
    data = np.array(s)
    dae = data / (data + sigma2)
    return {"data": data, "dae": dae, "norm": dae.max(axis=1)}


def norm_floor(eigenvalues, sigma2: float, real_fraction: float) -> float:
    """The lower bound alpha s_max / (alpha s_max + sigma^2) of ||W_t|| with a real fraction."""
    s0, sigma2, _, alpha = _check(eigenvalues, sigma2, 0, real_fraction)
    return float(alpha * s0.max() / (alpha * s0.max() + sigma2))


def fit_dae(x: np.ndarray, sigma2: float, rng) -> np.ndarray:
    """Least-squares linear DAE on one noisy copy of x (n, d): argmin_W ||(x + e) W^T - x||^2."""
    noisy = x + np.sqrt(sigma2) * rng.standard_normal(x.shape)
    solution, *_ = np.linalg.lstsq(noisy, x, rcond=None)
    return solution.T


def simulate(eigenvalues, sigma2: float, generations: int, n: int, real_fraction: float = 0.0,
             seed=0) -> dict:  # fmt: skip
    """The loop with finite samples: each round fits W_t by least squares on n items, makes the
    next round's synthetic items as W_t (x + e) on its own training items, and mixes in
    round(real_fraction n) fresh real items. Returns the same keys as ``recursion``, measured
    (eigenvalues of the training covariance, of the symmetric part of W_t, its spectral norm)."""
    s0, sigma2, generations, alpha = _check(eigenvalues, sigma2, generations, real_fraction)
    n = check_int("n", n, minimum=2 * len(s0))
    rng = as_generator(seed)
    k = int(round(alpha * n))

    def real(m):
        return rng.standard_normal((m, len(s0))) * np.sqrt(s0)

    x = real(n)
    data, dae, norm = [], [], []
    for t in range(generations + 1):
        data.append(np.sort(np.linalg.eigvalsh(x.T @ x / n))[::-1])
        w = fit_dae(x, sigma2, rng)
        dae.append(np.sort(np.linalg.eigvalsh((w + w.T) / 2))[::-1])
        norm.append(np.linalg.norm(w, 2))
        if t < generations:
            synthetic = (x + np.sqrt(sigma2) * rng.standard_normal(x.shape)) @ w.T
            keep = rng.permutation(n)[: n - k]
            x = np.concatenate([real(k), synthetic[keep]])
    return {"data": np.array(data), "dae": np.array(dae), "norm": np.array(norm)}
