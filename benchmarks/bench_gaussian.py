"""Benchmark: one generation of the d-dimensional Gaussian loop, exact sampler vs brute force.

The exact sampler draws the mean and a Bartlett-factored Wishart scatter, so its cost does not
depend on the sample size n; brute force draws n points per chain and refits them.
Prints a table; asserts nothing (timings belong here, not in unit tests).
"""

from __future__ import annotations

import time

import numpy as np

from mcollapse import gaussian as G


def best_of(fn, repeats=3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    chains, dim = 1000, 10
    rng = np.random.default_rng(0)
    truth = G.GaussianFits.standard(chains, dim)
    print(f"one generation, {chains} chains, d = {dim} (best of 3)")
    print(f"{'n':>7} {'exact [ms]':>11} {'brute force [ms]':>17} {'speed-up':>9}")
    for n in (100, 1_000, 10_000):
        exact = best_of(lambda n=n: G.fit([G.draw_stats(truth, n, rng)]))
        brute = best_of(lambda n=n: G.fit_brute_force(truth, n, rng))
        print(f"{n:>7} {exact * 1e3:>11.1f} {brute * 1e3:>17.1f} {brute / exact:>8.0f}x")
    start = time.perf_counter()
    G.simulate_fully_synthetic(dim, 100, 1000, chains, 0, w2=False)
    print(
        f"fully synthetic loop, {chains} chains x 1000 generations: {time.perf_counter() - start:.1f} s"
    )
    start = time.perf_counter()
    G.simulate_1d(10, 2000, 10_000, 0)
    print(f"1-D recursion, 10000 chains x 2000 generations: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
