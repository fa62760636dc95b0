"""The tail-cutting demonstration of Dohmatob et al.: closed forms against simulation."""

import numpy as np
import pytest

from mcollapse import zipf


def test_expected_error_matches_simulation():
    p = zipf.zipf_probs(2_000, 1.5)
    q = zipf.training_distribution(p, cutoff=100, clean_fraction=0.2)
    sizes = [10, 300, 5_000]
    sim = zipf.simulated_error(p, q, sizes, repeats=400, seed=1)
    exact = zipf.expected_error(p, q, sizes)
    se = sim.std(0, ddof=1) / np.sqrt(len(sim))
    assert np.all(np.abs(sim.mean(0) - exact) < 4 * se)


def test_clean_error_follows_the_scaling_law():
    beta = 2.0
    p = zipf.zipf_probs(1_000_000, beta)
    sizes = np.logspace(2, 4, 5)
    slope = zipf.log_slope(sizes, zipf.expected_error(p, p, sizes))
    assert slope == pytest.approx(-zipf.scaling_exponent(beta), abs=0.03)


def test_cut_tail_plateaus_and_clean_data_recovers():
    p = zipf.zipf_probs(200_000, 1.8)
    k = 1_000
    cut = zipf.training_distribution(p, cutoff=k)
    mix = zipf.training_distribution(p, cutoff=k, clean_fraction=0.1)
    big = [1e7, 1e8, 1e9]
    floor = zipf.tail_mass(p, k)
    e_cut = zipf.expected_error(p, cut, big)
    e_mix = zipf.expected_error(p, mix, big)
    assert np.allclose(e_cut, floor, rtol=1e-6)  # more data does not help at all
    assert e_mix[-1] < 0.2 * floor and np.all(np.diff(e_mix) < 0)  # it scales again
    assert np.all(zipf.expected_error(p, p, big) <= e_mix)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: zipf.zipf_probs(10, 1.0), "beta must be > 1"),
        (lambda: zipf.zipf_probs(0, 2.0), "n_items"),
        (lambda: zipf.training_distribution(np.ones(5) / 5, cutoff=6), "cutoff"),
        (lambda: zipf.training_distribution(np.ones(5) / 5, 2, clean_fraction=2), "clean_frac"),
        (lambda: zipf.expected_error(np.ones(2) / 2, np.ones(2) / 2, [-1]), "sizes"),
    ],
)
def test_bad_parameters_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
