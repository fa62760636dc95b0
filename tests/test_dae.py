"""The linear-DAE recursion: closed forms against least-squares simulation, collapse without real
data, a floor with a real fraction."""

import numpy as np
import pytest

from mcollapse import dae

EIGS = [4.0, 2.0, 1.0, 0.5]


def test_one_step_matches_the_matrix_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    cov = a @ a.T + 0.1 * np.eye(3)
    sigma2 = 0.7
    w = cov @ np.linalg.inv(cov + sigma2 * np.eye(3))  # the optimal linear DAE
    out = w @ (cov + sigma2 * np.eye(3)) @ w.T  # covariance of W (x + e)
    s = np.linalg.eigvalsh(cov)
    step = dae.recursion(s, sigma2, 1)
    assert np.allclose(np.sort(np.linalg.eigvalsh(out)), np.sort(step["data"][1]))
    assert np.allclose(np.sort(np.linalg.eigvalsh(w)), np.sort(step["dae"][0]))
    assert np.allclose(step["data"][1], s**2 / (s + sigma2))


def test_least_squares_dae_is_the_closed_form():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200_000, 4)) * np.sqrt(EIGS)
    w = dae.fit_dae(x, 1.0, rng)
    assert np.allclose(w, np.diag(np.array(EIGS) / (np.array(EIGS) + 1.0)), atol=0.01)


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_simulation_matches_the_recursion(alpha):
    closed = dae.recursion(EIGS, 1.0, 6, alpha)
    sim = dae.simulate(EIGS, 1.0, 6, n=100_000, real_fraction=alpha, seed=2)
    assert np.allclose(sim["norm"], closed["norm"], atol=0.01)
    assert np.allclose(sim["dae"], closed["dae"], atol=0.01)
    big = closed["data"] > 0.05  # tiny eigenvalues drown in sampling noise
    assert np.allclose(sim["data"][big], closed["data"][big], rtol=0.05)


def test_synthetic_only_collapses_and_a_real_fraction_keeps_a_floor():
    alone = dae.recursion(EIGS, 1.0, 10)
    assert np.all(np.diff(alone["norm"]) < 0)
    assert alone["norm"][-1] < 1e-10
    ratios = alone["data"][1:] / alone["data"][:-1]  # each round scales s by s / (s + sigma^2)
    assert np.allclose(ratios, alone["dae"][:-1])
    assert np.all(ratios <= alone["norm"][0] + 1e-12)  # at least geometric, at rate ||W_0||
    mixed = dae.recursion(EIGS, 1.0, 200, real_fraction=0.2)
    floor = dae.norm_floor(EIGS, 1.0, 0.2)
    assert floor == pytest.approx(0.8 / 1.8)
    assert np.all(mixed["norm"] >= floor - 1e-12)
    assert abs(mixed["norm"][-1] - mixed["norm"][-2]) < 1e-9  # a fixed point, above the floor
    assert dae.recursion(EIGS, 1.0, 5, real_fraction=1.0)["norm"] == pytest.approx([0.8] * 6)


@pytest.mark.parametrize(
    "args, match",
    [
        (([1.0, -1.0], 1.0, 3), "eigenvalues"),
        ((EIGS, 0.0, 3), "sigma2"),
        ((EIGS, 1.0, -1), "generations"),
        ((EIGS, 1.0, 3, 1.5), "real_fraction"),
    ],
)
def test_bad_parameters_raise(args, match):
    with pytest.raises(ValueError, match=match):
        dae.recursion(*args)
    with pytest.raises(ValueError, match="n must"):
        dae.simulate(EIGS, 1.0, 2, n=3)
