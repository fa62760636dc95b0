"""Evaluators measured against exact values."""

import torch

from mcollapse import data
from mcollapse.evaluation import RosenbrockTails


def test_rosenbrock_tails_of_the_real_density_are_the_exact_masses():
    x, _ = data.source("rosenbrock").sample(200_000, torch.Generator().manual_seed(0))
    measured = RosenbrockTails()(x, None, None, 1)
    for name, exact in RosenbrockTails.REAL.items():
        se = (exact * (1 - exact) / len(x)) ** 0.5
        assert abs(measured[name] - exact) < 4 * se, (name, measured[name], exact)


def test_rosenbrock_tails_of_a_narrowed_density_are_smaller():
    x, _ = data.source("rosenbrock").sample(50_000, torch.Generator().manual_seed(1))
    narrow = torch.stack([0.7 * x[:, 0], 0.49 * x[:, 0] ** 2 + 0.7 * (x[:, 1] - x[:, 0] ** 2)], 1)
    measured = RosenbrockTails()(narrow, None, None, 1)
    assert all(measured[k] < 0.5 * v for k, v in RosenbrockTails.REAL.items()), measured
