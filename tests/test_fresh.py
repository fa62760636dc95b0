"""The fresh-data Gaussian loop, its stationary distance and the effective sample size (MAD §5)."""

import numpy as np
import pytest
from scipy import stats

from mcollapse import fresh as F
from mcollapse import gaussian as G


def ks_same(a, b, name, alpha=1e-3):
    p = stats.ks_2samp(a, b).pvalue
    assert p > alpha, f"{name}: KS p = {p:.2g}"


# --------------------------------------------------------------------------------------------
# The exact step against drawing points
# --------------------------------------------------------------------------------------------


def test_fresh_step_matches_refitting_drawn_points():
    """One generation on exact statistics has the law of np.mean / np.cov of the drawn points."""
    d, nr, ns, lam, chains = 4, 7, 12, 0.7, 4000
    rng = np.random.default_rng(1)
    a = rng.standard_normal((d, d))
    start = G.GaussianFits.from_cov(
        np.tile(rng.standard_normal(d), (chains, 1)), np.tile(a @ a.T + np.eye(d), (chains, 1, 1))
    )
    exact = F.fresh_step(start, nr, ns, lam, np.random.default_rng(2))
    draws = np.random.default_rng(3)
    real = draws.standard_normal((chains, nr, d))
    synthetic = G.draw_points(start, ns, draws, lam)
    points = np.concatenate([real, synthetic], axis=1)
    brute_cov = np.stack([np.cov(p, rowvar=False) for p in points])
    ks_same(np.trace(exact.cov, axis1=1, axis2=2), np.trace(brute_cov, axis1=1, axis2=2), "trace")
    ks_same(exact.log_det, np.linalg.slogdet(brute_cov)[1], "log det")
    ks_same(exact.mean[:, 0], points.mean(axis=1)[:, 0], "mean[0]")


def test_per_chain_sizes_match_separate_runs_in_law():
    """A batch mixing two cells gives each cell the law it has when run alone."""
    d, chains = 3, 3000
    start = G.GaussianFits.standard(2 * chains, d)
    nr = np.repeat([5, 40], chains)
    ns = np.repeat([30, 0], chains)
    lam = np.repeat([0.6, 1.0], chains)
    mixed = F.fresh_step(start, nr, ns, lam, np.random.default_rng(4))
    for i, (r, s, b) in enumerate([(5, 30, 0.6), (40, 0, 1.0)]):
        alone = F.fresh_step(G.GaussianFits.standard(chains, d), r, s, b, np.random.default_rng(5))
        part = slice(i * chains, (i + 1) * chains)
        ks_same(mixed.trace[part], alone.trace, f"trace, cell {i}")


def test_bartlett_factor_with_one_dof_per_chain():
    """E tr(A A^T) = d dof; rank min(dof, d); a column-padded factor for dof < d."""
    d, chains = 5, 20_000
    dof = np.repeat([2, 5, 30], chains)
    a = G.bartlett_factor(dof, d, 3 * chains, np.random.default_rng(6))
    assert a.shape == (3 * chains, d, d)
    trace = (a**2).sum(axis=(1, 2)).reshape(3, chains)
    np.testing.assert_allclose(trace.mean(axis=1), [2 * d, 5 * d, 30 * d], rtol=0.02)
    ranks = np.linalg.matrix_rank(a[:: chains // 4][:12])
    assert set(ranks[:4]) == {2} and set(ranks[4:8]) == {5}


def test_a_batch_of_count_zero_adds_nothing():
    rng = np.random.default_rng(7)
    model = G.GaussianFits.standard(50, 3)
    real = G.draw_stats(model, 20, rng)
    other = G.draw_stats(model, 9, rng)
    zero = G.SampleStats(0, other.mean, 0 * other.factor, other.log_scale)
    np.testing.assert_allclose(G.fit([real, zero]).cov, G.fit([real]).cov, rtol=1e-10)
    np.testing.assert_allclose(G.fit([real, zero]).mean, real.mean, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# (a) the initial model is forgotten
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("nr", "ns", "bias"), [(20, 80, 1.0), (30, 60, 0.8)])
def test_the_limit_does_not_depend_on_the_initial_sample(nr, ns, bias):
    """n_initial = 3 (a singular first fit in d = 5) and 2,000 end at the same distance."""
    d, chains, gens = 5, 600, 60  # 60 generations = 12 to 20 memories
    runs = {
        n0: F.simulate_fresh(d, nr, ns, gens, chains, seed, n_initial=n0, bias=bias)["w2_squared"]
        for n0, seed in ((3, 11), (2000, 12))
    }
    first = {n0: w[:, 1].mean() for n0, w in runs.items()}
    assert first[3] > 10 * first[2000]  # the starts really differ
    tail = {n0: w[:, -20:].mean(axis=1) for n0, w in runs.items()}  # one time average per chain
    diff = tail[3].mean() - tail[2000].mean()
    se = np.sqrt(tail[3].var(ddof=1) / chains + tail[2000].var(ddof=1) / chains)
    assert abs(diff) < 4 * se, (diff, se)


def test_simulate_fresh_without_synthetic_data_is_a_fresh_fit_every_generation():
    d, nr, chains = 3, 25, 4000
    w = F.simulate_fresh(d, nr, 0, 4, chains, 13, n_initial=25)["w2_squared"]
    reference = F.real_fit_distance(d, np.array([nr]), 40_000, 14)
    assert w[:, 0].max() == 0.0  # generation 0 is the truth
    for t in range(1, 5):
        se = w[:, t].std() / np.sqrt(chains) + reference["se"][0]
        assert abs(w[:, t].mean() - reference["mean"][0]) < 4 * se


# --------------------------------------------------------------------------------------------
# (b) the effective sample size
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 10, 100])
def test_real_fit_distance_in_one_dimension_is_the_closed_form(n):
    """d = 1: E W2^2 = 1/n + E(s - 1)^2 = 1/n + 2 (1 - c4(n))."""
    r = F.real_fit_distance(1, np.array([n]), 200_000, 15)
    exact = 1 / n + 2 * (1 - G.c4(n))
    assert abs(r["mean"][0] - exact) < 4 * r["se"][0]


@pytest.fixture(scope="module")
def reference():
    return F.reference_curve(4, 50_000, 4000, 16)


def test_effective_sample_size_inverts_the_reference(reference):
    inner = slice(1, -1)
    n_e = F.effective_sample_size(reference["mean"][inner], reference)
    np.testing.assert_allclose(n_e["n_e"], reference["sizes"][inner], rtol=1e-6)
    assert (n_e["censored"] == 0).all()
    out = F.effective_sample_size([reference["mean"][0] * 2, reference["mean"][-1] / 2], reference)
    assert list(out["censored"]) == [-1, 1]
    np.testing.assert_allclose(out["n_e"], reference["sizes"][[0, -1]])


def test_effective_sample_size_is_n_real_without_synthetic_data(reference):
    nr = np.array([20, 300])
    st = F.stationary_distance(4, nr, 0, 1.0, 200, 17, progress=False, n_jobs=1)
    n_e = F.effective_sample_size(st["mean"], reference, st["se"])
    np.testing.assert_allclose(n_e["n_e"] / nr, 1.0, atol=0.06)
    assert (n_e["low"] <= nr).all() and (n_e["high"] >= nr).all()


def test_biased_synthetic_data_hurts_above_a_threshold(reference):
    """lambda < 1: a little synthetic data helps, a lot hurts (n_e / n_r < 1); lambda = 1: never."""
    nr, ns = 50, np.array([0, 10, 5000])
    ratio = {}
    for bias in (0.7, 1.0):
        st = F.stationary_distance(4, nr, ns, bias, 64, 18, progress=False, n_jobs=1)
        ratio[bias] = F.effective_sample_size(st["mean"], reference, st["se"])["n_e"] / nr
    assert ratio[0.7][1] > 0.95 and ratio[0.7][2] < 0.5, ratio
    assert ratio[1.0][2] > 1.0, ratio
    boundary = F.admissible_boundary(ns, np.stack([ratio[0.7], ratio[1.0]]))
    assert 10 < boundary[0] < 5000 and np.isnan(boundary[1])


def test_stationary_distance_is_reproducible_and_independent_of_processes():
    args = (3, np.array([10, 40]), np.array([[0], [30], [300]]), 0.8, 16, 19)
    one = F.stationary_distance(*args, chunk_cells=2, n_jobs=1, progress=False)
    two = F.stationary_distance(*args, chunk_cells=2, n_jobs=2, progress=False)
    assert one["mean"].shape == (3, 2)
    np.testing.assert_array_equal(one["mean"], two["mean"])
    np.testing.assert_array_equal(one["se"], two["se"])
    # each cell ran for at least its own settle + window memories
    assert (one["generations"] >= 9 * F.memory(args[1], args[2])).all()


def test_admissible_boundary_interpolates_in_log_n_synthetic():
    ns = np.array([0, 100, 1000, 10000])  # the n_s = 0 column is ignored: n_e = n_r there
    ratio = np.array([[0.9, 1.2, 0.8, 0.1], [1.0, 1.5, 1.2, 1.1], [1.0, 0.5, 0.2, 0.1]])
    b = F.admissible_boundary(ns, ratio)
    np.testing.assert_allclose(b[0], 100 * 10 ** (0.2 / 0.4))
    assert np.isnan(b[1]) and b[2] == 0.0
    # a dip below 1 that is within noise (upper band above 1) is not a boundary
    noisy = np.array([[1.0, 0.98, 1.1, 0.3]])
    assert F.admissible_boundary(ns, noisy)[0] == 0.0
    b = F.admissible_boundary(ns, noisy, high=noisy + 0.05)
    np.testing.assert_allclose(b[0], 1000 * 10 ** (0.1 / 0.8))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.simulate_fresh(5, 2, 3, 3, 2, 0, n_initial=10), "n_real \\+ n_synthetic"),
        (lambda: F.simulate_fresh(5, 20, 3, 3, 2, 0, n_initial=1), "n_initial must be"),
        (lambda: F.simulate_fresh(5, 20, 3, 3, 2, 0, n_initial=10, bias=1.5), "bias must be"),
        (lambda: F.stationary_distance(2, 10, -1, 1.0, 4, 0), "n_synthetic must hold integers"),
        (lambda: F.stationary_distance(2, 10.5, 1, 1.0, 4, 0), "n_real must hold integers"),
        (lambda: F.stationary_distance(2, 10, 1, 0.0, 4, 0), "bias must hold numbers in"),
        (lambda: F.stationary_distance(5, 2, 1, 1.0, 4, 0), "dim \\+ 1 = 6 in every cell"),
        (lambda: F.real_fit_distance(2, np.array([1, 5]), 4, 0), "sizes must be"),
        (lambda: F.effective_sample_size([-1.0], {"sizes": [2, 3], "mean": [2, 1]}), "distance"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------------------------
# (c) closed forms of the stationary law, against the exact simulation
# --------------------------------------------------------------------------------------------


def stationary_time_averages(d, nr, ns, lam, chains, seed):
    """|mu|^2 / d and tr S / d averaged over generations 6-16 memories in, one value per chain."""
    rng = np.random.default_rng(seed)
    model = G.GaussianFits.standard(chains, d)
    tau = float(F.memory(nr, ns))
    burn, span = int(6 * tau), int(10 * tau)
    mean_sq, scale = np.zeros(chains), np.zeros(chains)
    for t in range(burn + span):
        model = F.fresh_step(model, nr, ns, lam, rng)
        if t >= burn:
            mean_sq += (model.mean**2).sum(axis=1) / d / span
            scale += model.trace / d / span
    return mean_sq, scale


@pytest.mark.parametrize(("nr", "ns", "bias"), [(10, 30, 1.0), (10, 30, 0.7), (5, 200, 0.9)])
def test_stationary_moments_match_the_exact_simulation(nr, ns, bias):
    """E|mu|^2 = d v and E S = s I solve the recursion's linear moment equations exactly."""
    mean_sq, scale = stationary_time_averages(3, nr, ns, bias, 2000, 31)
    m = F.stationary_moments(nr, ns, bias)
    for name, sim, exact in (("v", mean_sq, m["mean_sq"]), ("s", scale, m["scale"])):
        se = sim.std(ddof=1) / np.sqrt(len(sim))
        assert abs(sim.mean() - exact) < 4 * se, (name, sim.mean(), exact, se)


def test_unbiased_ratio_is_the_mean_part_and_stays_below_two():
    nr, ns = np.array([[2], [10], [100], [10_000]]), np.array([0, 1, 100, 10**4, 10**7])
    ratio = F.unbiased_ratio(nr, ns)
    np.testing.assert_allclose(ratio, 1 / (nr * F.stationary_moments(nr, ns, 1.0)["mean_sq"]))
    np.testing.assert_allclose(ratio[:, 0], 1.0)
    assert (ratio < 2).all() and (np.diff(ratio, axis=1) > 0).all()
    np.testing.assert_allclose(ratio[:, -1], 2 - 1 / nr[:, 0], rtol=2e-3)
    # the committed maps' 1.5 (n_r = n_s) and 2.0 (n_s = 100 n_r) are 1 + rho_e
    np.testing.assert_allclose(
        F.unbiased_ratio([10_000, 100], [10_000, 10_000]), [1.5, 1.98], atol=0.01
    )


def test_without_synthetic_data_the_closed_form_is_a_fit_to_n_real(reference):
    m = F.stationary_moments(np.array([20, 300]), 0, 0.7)
    np.testing.assert_allclose(m["scale"], 1.0)
    np.testing.assert_allclose(m["dof"], [19, 299])
    ratio = F.closed_form_ratio(4, np.array([20, 300]), 0, 0.7, reference)
    np.testing.assert_allclose(ratio, 1.0, rtol=1e-5)


def test_closed_form_distance_matches_the_simulated_maps(reference):
    """The mean part is exact; the covariance part to second order: within 3% here (n_r >= 12 d)."""
    nr, ns = 50, np.array([10, 60, 600, 5000])
    for bias in (1.0, 0.7):
        st = F.stationary_distance(4, nr, ns, bias, 64, 21, progress=False, n_jobs=1)
        closed = F.closed_form_distance(4, nr, ns, bias, reference)
        assert (np.abs(st["mean"] - closed) < 4 * st["se"] + 0.03 * closed).all(), (
            bias,
            st,
            closed,
        )


def test_harm_threshold_separates_help_from_harm(reference):
    """Half the closed-form threshold still helps in simulation; twice it hurts."""
    nr, bias = 50, 0.7
    threshold = float(F.harm_threshold(4, nr, bias, reference))
    assert 10 < threshold < 5000  # where the simulated boundary of the test above lies
    ns = np.array([round(threshold / 2), round(2 * threshold)])
    st = F.stationary_distance(4, nr, ns, bias, 64, 22, progress=False, n_jobs=1)
    n_e = F.effective_sample_size(st["mean"], reference, st["se"])
    assert n_e["low"][0] > nr and n_e["high"][1] < nr, n_e
    assert np.isnan(F.harm_threshold(4, nr, 1.0, reference))


def test_harm_threshold_levels_off_at_its_limit():
    """As n_r grows the threshold tends to harm_threshold_limit, linear in d (an exact reference)."""
    d = 10
    sizes = np.geomspace(2, 1e9, 400)
    asymptotic = {"sizes": sizes, "mean": d / sizes + d * (d + 1) / (4 * (sizes - 1))}
    for bias in (0.7, 0.85):
        limit = float(F.harm_threshold_limit(d, bias))
        found = F.harm_threshold(d, np.array([1e4, 1e6]), bias, asymptotic, n_max=1e8)
        assert found[0] < found[1] and found[1] == pytest.approx(limit, rel=0.01)
    lim = F.harm_threshold_limit(np.array([10, 100, 1000]), 0.8)  # linear in d
    slope = (0.5 + 1.5 * 0.8 - 0.8**2) / 0.2**2
    np.testing.assert_allclose(np.diff(lim) / np.diff([10, 100, 1000]), slope)


def test_boundary_mismatch_reads_zero_and_nan_as_beyond_the_grid():
    ns = np.array([0, 100, 1000, 10000])
    sim = np.array([200.0, 0.0, 0.0, np.nan, np.nan, 300.0])
    closed = np.array([100.0, 50.0, 400.0, 20_000.0, 5000.0, np.nan])
    out = F.boundary_mismatch(sim, closed, ns)
    np.testing.assert_allclose(out[:5], [2.0, 1.0, 4.0, 1.0, 2.0])
    assert np.isnan(out[5])


# --------------------------------------------------------------------------------------------
# (d) forgetting the start at (1 - alpha)^2 per generation (Khelifa et al.)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("nr", "ns", "bias"), [(10, 10, 1.0), (10, 30, 0.8), (10, 90, 1.0)])
def test_the_start_bias_decays_at_one_minus_alpha_squared(nr, ns, bias):
    rho = ns / (nr + ns)
    t = int(np.ceil(np.log(0.1) / np.log(rho)))  # where a tenth of the start is left
    run = F.simulate_forgetting(3, nr, ns, t, 2000, 41, offset=3.0, bias=bias)
    along = run["along"]
    np.testing.assert_allclose(along[:, 0], 1.0)
    se = along.std(axis=0, ddof=1) / np.sqrt(len(along))
    assert (np.abs(along.mean(axis=0) - rho ** np.arange(t + 1))[1:] < 4 * se[1:]).all()
    rate, rate_se = F.forgetting_rate(along, t)
    assert abs(rate - rho**2) < 4 * rate_se, (rate, rate_se, rho**2)
    assert abs(rate - rho) > 20 * rate_se  # the test tells (1 - alpha)^2 from (1 - alpha)
    np.testing.assert_allclose(F.start_bias_decay(nr, ns, t), rho ** (2 * np.arange(t + 1)))


def test_without_fresh_data_nothing_is_forgotten_in_the_mean():
    """The null: with n_r -> 0 the mean's start never decays (rate 1), so the rate claim fails."""
    run = F.simulate_forgetting(3, 2, 4000, 10, 2000, 42, offset=3.0)
    rate, rate_se = F.forgetting_rate(run["along"], 10)
    rho = 4000 / 4002
    assert rate > 0.99 and abs(rate - rho**2) < 4 * rate_se
    assert abs(rate - (10 / 40) ** 2) > 100 * rate_se


# --------------------------------------------------------------------------------------------
# (e) the weight on fresh real data (He, Xu and Cheng): 1 / phi
# --------------------------------------------------------------------------------------------


def test_golden_weight_minimises_the_stationary_mse():
    assert F.optimal_weight(50, 50) == pytest.approx(F.GOLDEN_WEIGHT, abs=1e-12)
    assert F.weighted_mean_mse(F.GOLDEN_WEIGHT, 50, 50) == pytest.approx(F.GOLDEN_WEIGHT)
    w = np.linspace(0.01, 1, 100_001)
    assert w[np.argmin(F.weighted_mean_mse(w, 7, 7))] == pytest.approx(F.GOLDEN_WEIGHT, abs=1e-5)
    for nr, ns in ((10, 30), (30, 10)):
        best = w[np.argmin(F.weighted_mean_mse(w, nr, ns))]
        assert best == pytest.approx(F.optimal_weight(nr, ns), abs=1e-5)
    np.testing.assert_allclose(F.weighted_mean_mse([0.5, 1.0], 9, 9), [2 / 3, 1.0])


def test_weighted_mean_simulation_matches_the_closed_form_and_finds_the_minimum():
    w = np.round(np.arange(0.3, 1.0001, 0.01), 4)
    sim = F.simulate_weighted_mean(w, 50, 50, 2000, 43)
    exact = F.weighted_mean_mse(w, 50, 50)
    z = (sim["mean"] - exact) / sim["se"]
    assert np.abs(z).max() < 4.5 and abs(z.mean()) < 3, z
    best, se = F.weighted_argmin(w, sim["per_chain"], n_boot=200, seed=1)
    assert abs(best - F.GOLDEN_WEIGHT) < 4 * se + 0.002, (best, se)
    # the null: pooling (w = 1/2) is worse, by many paired standard errors
    at = {round(x, 2): i for i, x in enumerate(w)}
    diff = sim["per_chain"][at[0.5]] - sim["per_chain"][at[0.62]]
    assert diff.mean() > 10 * diff.std(ddof=1) / np.sqrt(len(diff))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: F.stationary_moments(1, 3, 1.0), "need n_real >= 2"),
        (lambda: F.stationary_moments(5, 3, 1.2), "bias in"),
        (lambda: F.simulate_forgetting(3, 1, 3, 3, 2, 0, offset=1.0), "n_real must be"),
        (lambda: F.simulate_forgetting(3, 5, 3, 3, 2, 0, offset=-1.0), "offset must be"),
        (lambda: F.forgetting_rate(np.ones((4, 3)), 3), "generation must be"),
        (lambda: F.forgetting_rate(-np.ones((4, 3)), 2), "pick an earlier t"),
        (lambda: F.weighted_mean_mse(0.0, 5, 5), "weight must be"),
        (lambda: F.simulate_weighted_mean([0.5, 1.2], 5, 5, 4, 0), "weights must be"),
        (lambda: F.weighted_argmin([0.5, 0.4, 0.6], np.ones((3, 2))), "sorted"),
    ],
)
def test_closed_form_helpers_reject_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()
