"""Tail cutting on Zipf data: why synthetic data breaks scaling laws (Dohmatob et al., ICML 2024).

Dohmatob, Feng, Yang, Charton and Kempe (*A tale of tails: model collapse as a change of scaling
laws*, arXiv 2402.07043) study the simplest learner that has a scaling law: items i = 1, 2, ...
arrive with Zipf probabilities p_i ∝ i^-β (β > 1), each has a fixed answer, and the learner
memorises every answer it has seen (Hutter's model). Its test error after T training samples is
the probability mass of the items it has not seen, E(T) = Σ p_i (1 - q_i)^T when training items
are drawn from q, which for q = p falls like T^-(1 - 1/β).

Generated data loses the tail: a model that only ever emits the k most frequent items trains the
next learner on p cut at rank k. Then E(T) stops falling at the tail mass Σ_{i>k} p_i, whatever
T; mixing a fraction π of clean data back in restores the decline, delayed (about E((π T))).
Everything here is exact (the expectation in closed form) and checked against simulation.
"""

from __future__ import annotations

import numpy as np

from ._checks import as_generator, check_int, check_positive


def zipf_probs(n_items: int, beta: float) -> np.ndarray:
    """p_i ∝ i^-β for i = 1..n_items (a finite support standing in for the infinite one)."""
    n_items = check_int("n_items", n_items, minimum=1)
    beta = check_positive("beta", beta)
    if beta <= 1:
        raise ValueError(f"beta must be > 1 (a normalisable Zipf law), got {beta}")
    p = np.arange(1, n_items + 1, dtype=float) ** -beta
    return p / p.sum()


def training_distribution(p: np.ndarray, cutoff: int | None = None, clean_fraction=0.0):
    """Where training items come from: π p + (1 - π) (p cut at rank ``cutoff``, renormalised)."""
    p = np.asarray(p, dtype=float)
    pi = check_positive("clean_fraction", clean_fraction, allow_zero=True)
    if pi > 1:
        raise ValueError(f"clean_fraction must be in [0, 1], got {clean_fraction}")
    if cutoff is None:
        return p.copy()
    k = check_int("cutoff", cutoff, minimum=1, maximum=len(p))
    cut = np.where(np.arange(len(p)) < k, p, 0.0)
    return pi * p + (1 - pi) * cut / cut.sum()


def tail_mass(p: np.ndarray, cutoff: int) -> float:
    """Σ_{i > cutoff} p_i: the error floor of a learner that never sees the tail."""
    return float(np.asarray(p)[check_int("cutoff", cutoff, minimum=0) :].sum())


def expected_error(p: np.ndarray, q: np.ndarray, sizes) -> np.ndarray:
    """E(T) = Σ_i p_i (1 - q_i)^T for each T in ``sizes``: test mass of items never seen."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    sizes = np.atleast_1d(np.asarray(sizes, dtype=float))
    if np.any(sizes < 0):
        raise ValueError(f"sizes must be >= 0, got {sizes.min()}")
    log1m = np.log1p(-np.minimum(q, 1 - 1e-16))
    return np.array([float(np.sum(p * np.exp(t * log1m))) for t in sizes])


def simulated_error(p: np.ndarray, q: np.ndarray, sizes, repeats: int, seed) -> np.ndarray:
    """(repeats, len(sizes)): the memoriser's test error on draws of T items from q."""
    rng = as_generator(seed)
    repeats = check_int("repeats", repeats, minimum=1)
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    out = np.empty((repeats, len(np.atleast_1d(sizes))))
    for j, t in enumerate(np.atleast_1d(sizes)):
        t = check_int("sizes", int(t), minimum=0)
        for r in range(repeats):  # one training set at a time: memory stays at one count vector
            out[r, j] = p[rng.multinomial(t, q / q.sum()) == 0].sum()
    return out


def scaling_exponent(beta: float) -> float:
    """The clean memoriser's error decays like T^-c with c = 1 - 1/β."""
    return 1.0 - 1.0 / check_positive("beta", beta)


def log_slope(sizes, errors) -> float:
    """Least-squares slope of log error against log T."""
    return float(np.polyfit(np.log(sizes), np.log(errors), 1)[0])


def simulated_slope(sizes, errors, n_boot: int = 400, seed=0) -> tuple[float, float]:
    """``log_slope`` of the mean simulated error, with a bootstrap standard error.

    ``errors`` is ``simulated_error``'s (repeats, len(sizes)): the training sets are independent,
    so the bootstrap resamples them (rows) and refits the slope of their mean.
    """
    sizes = np.asarray(sizes, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if errors.ndim != 2 or errors.shape[1] != len(sizes) or len(sizes) < 2 or errors.shape[0] < 2:
        raise ValueError(
            "errors must be (repeats >= 2, len(sizes)) and sizes hold at least 2 values;"
            f" got errors {errors.shape}, {len(sizes)} sizes"
        )
    n_boot = check_int("n_boot", n_boot, minimum=2)
    rng = as_generator(seed)
    boot = [
        log_slope(sizes, errors[rng.integers(0, len(errors), len(errors))].mean(axis=0))
        for _ in range(n_boot)
    ]
    return log_slope(sizes, errors.mean(axis=0)), float(np.std(boot, ddof=1))
