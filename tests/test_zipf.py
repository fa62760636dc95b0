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


# The notebook's claims, judged on simulated training sets; each must fail for its null.


def test_simulated_slope_follows_the_scaling_law_and_fails_without_the_tail():
    beta = 1.5
    p = zipf.zipf_probs(20_000, beta)
    sizes = np.array([100, 300, 1_000, 3_000])
    clean = zipf.simulated_error(p, p, sizes, repeats=30, seed=2)
    slope, se = zipf.simulated_slope(sizes, clean, n_boot=200, seed=3)
    assert abs(slope + zipf.scaling_exponent(beta)) < 4 * se, (slope, se)
    closed = zipf.log_slope(sizes, zipf.expected_error(p, p, sizes))
    assert abs(slope - closed) < 4 * se
    # the null: data with the tail cut at rank 30 stop improving, and the claim fails
    cut = zipf.simulated_error(p, zipf.training_distribution(p, cutoff=30), sizes, 30, seed=4)
    slope_cut, se_cut = zipf.simulated_slope(sizes, cut, n_boot=200, seed=5)
    assert abs(slope_cut + zipf.scaling_exponent(beta)) > 4 * se_cut, (slope_cut, se_cut)


def test_simulated_plateau_is_the_tail_mass_and_clean_data_do_not_plateau():
    p = zipf.zipf_probs(20_000, 1.5)
    k, sizes = 100, [10**5, 10**6]
    floor = zipf.tail_mass(p, k)
    cut = zipf.simulated_error(p, zipf.training_distribution(p, cutoff=k), sizes, 10, seed=6)
    assert cut[:, 1].mean() / cut[:, 0].mean() > 0.95  # a decade more data: no gain
    np.testing.assert_allclose(cut[:, 1], floor, rtol=1e-9)  # exactly the mass never sampled
    # the null: without tail cutting the error keeps falling far below that floor
    clean = zipf.simulated_error(p, p, sizes, 10, seed=7)
    assert clean[:, 1].mean() / clean[:, 0].mean() < 0.95 and clean[:, 1].max() < 0.5 * floor
    # clean data mixed back in: the simulation follows the closed form below the plateau
    q = zipf.training_distribution(p, cutoff=k, clean_fraction=0.1)
    mix = zipf.simulated_error(p, q, sizes, 40, seed=8)
    exact = zipf.expected_error(p, q, sizes)
    se = mix.std(0, ddof=1) / np.sqrt(len(mix))
    assert np.all(np.abs(mix.mean(0) - exact) < 4 * se) and exact[1] < 0.5 * floor


def test_simulated_slope_rejects_bad_shapes():
    with pytest.raises(ValueError, match="errors must be"):
        zipf.simulated_slope([1, 2, 3], np.ones((4, 2)))
