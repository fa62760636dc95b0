"""Benchmark: the stationary distance of the fresh-data Gaussian loop over a grid (notebook 04).

Times one n_r x n_s map at d = 10 with 1 process and with every core (joblib over seeded chunks;
the numbers are the same either way), and one curve of MAD's d = 100 setting.
Prints a table; asserts nothing (timings belong here, not in unit tests).
"""

from __future__ import annotations

import os
import time

import numpy as np

from mcollapse import fresh


def main() -> None:
    grid = np.unique(np.geomspace(100, 10_000, 9).round().astype(np.int64))
    cells = len(grid) ** 2
    print(f"stationary W2^2 over a {len(grid)} x {len(grid)} (n_r x n_s) grid, d = 10, lambda = 0.85,"
          f" 64 chains per cell; {os.cpu_count()} cores")  # fmt: skip
    out = {}
    for jobs in (1, -1):
        start = time.perf_counter()
        out[jobs] = fresh.stationary_distance(
            10, grid[:, None], grid[None, :], 0.85, 64, 0, n_jobs=jobs, progress=False
        )
        seconds = time.perf_counter() - start
        print(f"  n_jobs = {jobs:2d}: {seconds:6.1f} s ({cells / seconds:5.1f} cells/s)")
    same = np.array_equal(out[1]["mean"], out[-1]["mean"])
    print(f"  identical numbers with 1 and all processes: {same}")
    start = time.perf_counter()
    fresh.simulate_fresh(100, 100, 900, 50, 200, 0, n_initial=100)
    print(f"MAD's curve, d = 100, 200 chains x 50 generations: {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
