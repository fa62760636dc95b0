"""Tests for mcollapse.gaussian: exact samplers against brute force, closed forms against
simulation, and the loops' qualitative claims.

Statistical tests use fixed seeds. Means are compared with closed forms within ``N_SE`` Monte-Carlo
standard errors; distributions are compared with two-sample Kolmogorov-Smirnov tests at
``KS_P``. Each statistical check is sized so that the mistake it guards against (a biased
estimator, a wrong degree of freedom, a missing factor) moves the statistic by many standard
errors.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats

from mcollapse import gaussian as G

N_SE = 4.0  # tolerance, in Monte-Carlo standard errors
KS_P = 1e-3  # smallest acceptable KS p-value


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def assert_mean_matches(samples, expected, se=None, label=""):
    """|mean(samples) - expected| < N_SE * SE, SE the sample standard error unless given."""
    samples = np.asarray(samples, dtype=float)
    assert np.isfinite(samples).all(), f"{label}: non-finite samples"
    if se is None:
        se = samples.std(ddof=1) / np.sqrt(samples.size)
    mean = samples.mean()
    assert abs(mean - expected) < N_SE * se, (
        f"{label}: mean {mean:.6g} vs closed form {float(expected):.6g} (SE {se:.3g})"
    )


def assert_same_law(a, b, label=""):
    """Two-sample KS test: the samples are not distinguishable at level KS_P."""
    p = stats.ks_2samp(a, b).pvalue
    assert p > KS_P, f"{label}: KS p-value {p:.2g}"


def random_spd(dim, rng):
    """A well-conditioned random symmetric positive-definite matrix."""
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def repeated(mean, cov, chains):
    """``chains`` copies of N(mean, cov), with the scale moved into log_scale."""
    model = G.GaussianFits.from_cov(np.tile(mean, (chains, 1)), np.tile(cov, (chains, 1, 1)))
    return model.renormalised()


def scatter_trace_of_points(x):
    """tr sum_i (x_i - xbar)(x_i - xbar)^T for points x of shape (chains, n, d)."""
    return ((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=(1, 2))


# --------------------------------------------------------------------------------------------
# 1. The exact 1-D sampler against brute force
# --------------------------------------------------------------------------------------------


def test_simulate_1d_matches_brute_force():
    """The chi-square shortcut must have the same law as drawing M points and refitting."""
    m, gens, chains = 10, 3, 5000
    exact = G.simulate_1d(m, gens, chains, seed=101)
    brute = G.simulate_1d_brute_force(m, gens, chains, seed=202)
    for key, t in [("var", 1), ("var", 3), ("mean", 1), ("mean", 3)]:
        assert_same_law(exact[key][:, t], brute[key][:, t], f"{key} at generation {t}")


@pytest.mark.parametrize("m", [5, 10])
def test_simulate_1d_steps_are_student_t(m):
    """Sample mean and variance are independent: sqrt(M) step / sd_new ~ t(M - 1) every step.

    Catches a step drawn with the wrong variance (e.g. the new one), which the marginal checks miss.
    """
    run = G.simulate_1d(m, 3, 20_000, seed=40 + m)
    for t in (1, 3):
        step = run["mean"][:, t] - run["mean"][:, t - 1]
        t_stat = np.sqrt(m) * step / np.sqrt(run["var"][:, t])
        p = stats.kstest(t_stat, stats.t(df=m - 1).cdf).pvalue
        assert p > KS_P, f"generation {t}: KS p-value {p:.2g}"


def test_simulate_1d_column_zero_is_truth_and_sigma_scales():
    """Column 0 is N(0, sigma^2); sigma only rescales (same seed: var scales by sigma^2)."""
    a = G.simulate_1d(10, 4, 50, seed=3)
    b = G.simulate_1d(10, 4, 50, seed=3, sigma=2.5)
    np.testing.assert_array_equal(a["mean"][:, 0], 0.0)
    np.testing.assert_array_equal(a["var"][:, 0], 1.0)
    np.testing.assert_allclose(b["var"], 2.5**2 * a["var"], rtol=1e-12)
    np.testing.assert_allclose(b["mean"], 2.5 * a["mean"], rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# 2-3. The exact d-dimensional sufficient statistics against brute force
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "bias"),
    [("standard", 1.0), ("standard", 0.7), ("spd", 1.0), ("spd", 0.7)],
)
def test_exact_fit_matches_brute_force(start, bias):
    """fit(draw_stats(...)) (Bartlett factor) must match np.cov on drawn points, in law."""
    d, n, chains = 3, 8, 4000
    if start == "standard":
        model = G.GaussianFits.standard(chains, d)
    else:
        rng = np.random.default_rng(11)
        model = repeated(rng.standard_normal(d), 3.0 * random_spd(d, rng), chains)
    exact = G.fit([G.draw_stats(model, n, np.random.default_rng(12), bias)])
    brute = G.fit_brute_force(model, n, np.random.default_rng(13), bias)
    assert_same_law(exact.log_det, brute.log_det, "log_det")
    assert_same_law(exact.trace, brute.trace, "trace")
    assert_same_law(exact.mean[:, 0], brute.mean[:, 0], "mean[0]")


def test_two_exact_generations_match_brute_force():
    """Chaining the exact step (through renormalised factors) still matches brute force."""
    d, n, chains = 3, 8, 4000
    exact = brute = G.GaussianFits.standard(chains, d)
    rng_exact, rng_brute = np.random.default_rng(21), np.random.default_rng(22)
    for _ in range(2):
        exact = G.fit([G.draw_stats(exact, n, rng_exact, 0.7)])
        brute = G.fit_brute_force(brute, n, rng_brute, 0.7)
    assert_same_law(exact.log_det, brute.log_det, "log_det")
    assert_same_law(exact.trace, brute.trace, "trace")
    assert_same_law(exact.mean[:, 0], brute.mean[:, 0], "mean[0]")


def test_fit_of_points_equals_numpy_mean_and_cov():
    """One batch (QR path) and a merge of batches (Chan's formula) reproduce np.mean / np.cov."""
    d, chains = 4, 6
    rng = np.random.default_rng(31)
    model = repeated(rng.standard_normal(d), random_spd(d, rng), chains)
    x = G.draw_points(model, 17, rng)
    want_mean = x.mean(axis=1)
    want_cov = np.stack([np.cov(xi, rowvar=False, ddof=1) for xi in x])
    single = G.fit([G.points_stats(x)])
    merged = G.fit([G.points_stats(x[:, :5]), G.points_stats(x[:, 5:9]), G.points_stats(x[:, 9:])])
    for got in (single, merged):
        np.testing.assert_allclose(got.mean, want_mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got.cov, want_cov, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.log_det, np.linalg.slogdet(want_cov)[1], rtol=1e-10)
        np.testing.assert_allclose(got.trace, np.trace(want_cov, axis1=1, axis2=2), rtol=1e-10)


def test_renormalised_keeps_the_distribution():
    """Moving scale into log_scale must change neither cov, log_det nor log_trace."""
    rng = np.random.default_rng(41)
    model = G.GaussianFits.from_cov(
        rng.standard_normal((3, 4)), np.stack([random_spd(4, rng) * 1e-6 for _ in range(3)])
    )
    moved = model.renormalised()
    np.testing.assert_allclose(moved.cov, model.cov, rtol=1e-10)
    np.testing.assert_allclose(moved.log_det, model.log_det, rtol=1e-12)
    np.testing.assert_allclose(moved.log_trace, model.log_trace, rtol=1e-12)
    np.testing.assert_allclose(
        np.log(np.diagonal(moved.chol, axis1=1, axis2=2)).mean(axis=1), 0.0, atol=1e-12
    )


def test_draw_stats_with_fewer_samples_than_dimensions():
    """dof < dim (singular Wishart): the scatter's law must still match actual points."""
    d, n, chains = 5, 3, 5000
    rng = np.random.default_rng(51)
    model = repeated(rng.standard_normal(d), random_spd(d, rng), chains)
    exact = G.draw_stats(model, n, np.random.default_rng(52), bias=0.8)
    points = G.draw_points(model, n, np.random.default_rng(53), bias=0.8)
    exact_trace = np.trace(exact.scatter, axis1=1, axis2=2)
    assert_same_law(exact_trace, scatter_trace_of_points(points), "scatter trace")
    assert_same_law(exact.mean[:, 0], points.mean(axis=1)[:, 0], "mean[0]")
    # The scatter of 3 points has rank 2; a fit to it alone would be singular and is refused.
    assert (np.linalg.matrix_rank(exact.scatter[:20]) == n - 1).all()
    with pytest.raises(ValueError, match="at least dim \\+ 1 = 6 samples"):
        G.fit([exact])


# --------------------------------------------------------------------------------------------
# 4. 1-D closed forms
# --------------------------------------------------------------------------------------------


def test_unbiased_variance_is_a_martingale():
    """E[var_n] = 1: the ddof=1 estimator keeps the mean; ddof=0 would give ((M-1)/M)^n."""
    m, chains = 10, 200_000
    var = G.simulate_1d(m, 20, chains, seed=61)["var"]
    for t in (10, 20):
        # Exact SE from E[var_n^2] = (1 + 2 / (M - 1))^n; the sample SD is unreliable in this tail.
        se = np.sqrt(((1 + 2 / (m - 1)) ** t - 1) / chains)
        assert_mean_matches(var[:, t], 1.0, se=se, label=f"E var_{t}")
        biased = ((m - 1) / m) ** t
        assert abs(biased - 1.0) > 10 * N_SE * se  # the test can tell the two apart


@functools.cache
def _1d_run(m):
    return G.simulate_1d(m, 20, 50_000, seed=70 + m)


@pytest.mark.parametrize("m", [10, 100])
@pytest.mark.parametrize("n", [1, 5, 20])
def test_expected_w2_squared_1d(m, n):
    """E[W2^2] to the truth = n/M + 2(1 - c4^n): checks the mean's random walk and E[sigma]."""
    run = _1d_run(m)
    w2 = G.w2_squared_1d(run["mean"][:, n], run["var"][:, n])
    assert_mean_matches(w2, G.expected_w2_squared_1d(n, m), label=f"W2^2, M={m}, n={n}")


def test_c4_matches_simulated_standard_deviation():
    """c4(M) = E[s] / sigma for the sample SD of M normal draws."""
    rng = np.random.default_rng(75)
    for m in (2, 5, 30):
        s = rng.standard_normal((100_000, m)).std(axis=1, ddof=1)
        assert_mean_matches(s, G.c4(m), label=f"c4({m})")


@pytest.mark.parametrize("m", [10, 100])
@pytest.mark.parametrize("n", [1, 5, 20])
def test_sample_variance_identity(m, n):
    """One sample per run at generation n has variance 1 + n/M over runs (law of total variance)."""
    run = _1d_run(m)
    rng = np.random.default_rng(80 + n)
    x = run["mean"][:, n] + np.sqrt(run["var"][:, n]) * rng.standard_normal(run["var"].shape[0])
    centred_sq = (x - x.mean()) ** 2
    # SE of a variance estimate: sqrt((mu4 - sigma^4) / N), i.e. the SE of the mean of centred_sq.
    se = centred_sq.std(ddof=1) / np.sqrt(x.size)
    estimate = np.var(x, ddof=1)
    want = G.sample_variance_identity(n, m)
    assert abs(estimate - want) < N_SE * se, f"var {estimate:.4g} vs {want:.4g} (SE {se:.2g})"


@pytest.mark.parametrize("m", [10, 100])
def test_expected_log_var_1d(m):
    """E[log var_n] = n (psi((M-1)/2) + log(2/(M-1))): the per-run downward drift."""
    run = _1d_run(m)
    for n in (1, 5, 20):
        log_var = np.log(run["var"][:, n])
        assert_mean_matches(log_var, G.expected_log_var_1d(n, m), label=f"E log var_{n}")
    assert G.expected_log_var_1d(1, m) < 0


# --------------------------------------------------------------------------------------------
# 5. Per-run collapse and tail mass
# --------------------------------------------------------------------------------------------


def test_each_run_collapses_while_the_average_variance_does_not():
    """Almost every run's variance goes to 0 although the average over runs stays at 1."""
    m, chains = 10, 2000
    var = G.simulate_1d(m, 1000, chains, seed=91)["var"]
    assert np.median(var[:, 1000]) < 1e-10
    se = np.sqrt(((1 + 2 / (m - 1)) ** 5 - 1) / chains)
    assert_mean_matches(var[:, 5], 1.0, se=se, label="E var_5")


def test_tail_mass():
    """tail_mass is P(|X| > k); a collapsed fit keeps almost none of the original's tails."""
    np.testing.assert_allclose(G.tail_mass(0.0, 1.0, 3.0), 2 * stats.norm.sf(3.0), rtol=1e-12)
    np.testing.assert_allclose(G.tail_mass(0.0, 1.0), 2 * stats.norm.sf(3.0), rtol=1e-12)
    # Against a direct Monte-Carlo probability for a shifted, scaled Gaussian.
    rng = np.random.default_rng(95)
    x = 0.7 + 1.5 * rng.standard_normal(400_000)
    hit = np.abs(x) > 2.0
    assert_mean_matches(hit, G.tail_mass(0.7, 1.5**2, 2.0), label="tail mass MC")
    np.testing.assert_allclose(G.tail_mass(0.7, 2.0), G.tail_mass(-0.7, 2.0), rtol=1e-12)

    run = G.simulate_1d(10, 200, 5000, seed=96)
    collapsed = G.tail_mass(run["mean"][:, 200], run["var"][:, 200])
    assert np.median(collapsed) < 1e-3 * G.tail_mass(0.0, 1.0)


def test_log_tail_mass_agrees_and_does_not_underflow():
    """log_tail_mass is log(tail_mass) where that is representable, and finite far beyond it."""
    mean, var = np.array([0.0, 0.7, -2.5, 4.0]), np.array([1.0, 0.5, 0.2, 2.0])
    np.testing.assert_allclose(G.log_tail_mass(mean, var), np.log(G.tail_mass(mean, var)))
    far = G.log_tail_mass(0.1, 1e-6)
    assert G.tail_mass(0.1, 1e-6) == 0.0 and np.isfinite(far) and far < -1e6


def test_simulate_1d_fresh_is_the_null_without_feedback():
    """Every generation is a fit to fresh samples of the truth: same law each time, independent."""
    m, gens, chains = 10, 6, 20_000
    run = G.simulate_1d_fresh(m, gens, chains, seed=92)
    np.testing.assert_array_equal(run["var"][:, 0], 1.0)
    np.testing.assert_array_equal(run["mean"][:, 0], 0.0)
    for t in (1, gens):
        p = stats.kstest((m - 1) * run["var"][:, t], stats.chi2(m - 1).cdf).pvalue
        assert p > KS_P, f"var_{t}: KS p-value {p:.2g}"
        p = stats.kstest(np.sqrt(m) * run["mean"][:, t], stats.norm.cdf).pvalue
        assert p > KS_P, f"mean_{t}: KS p-value {p:.2g}"
    # No feedback: generation 1 says nothing about the last (the loop's correlation is about 0.6).
    corr = np.corrcoef(np.log(run["var"][:, 1]), np.log(run["var"][:, gens]))[0, 1]
    assert abs(corr) < N_SE / np.sqrt(chains)
    loop = G.simulate_1d(m, gens, chains, seed=93)
    assert np.corrcoef(np.log(loop["var"][:, 1]), np.log(loop["var"][:, gens]))[0, 1] > 0.3


def test_tail_claims_hold_on_the_loop_and_fail_on_the_null():
    """The notebook's two tail claims, in the notebook's form, must fail without feedback.

    (1) the median run loses its tail mass faster than its variance (excess < -4 SE) and (2) the
    share of runs keeping less tail mass than the original grows (gain > 4 SE), from generation 1
    to generation 100 at M = 100. Re-fitting fresh samples of the truth each generation keeps
    every generation's law the same, so neither may hold there.
    """
    m, gens, chains = 100, 100, 4000
    verdicts = {}
    for name, simulate, seed in (("loop", G.simulate_1d, 97), ("null", G.simulate_1d_fresh, 98)):
        run = simulate(m, gens, chains, seed=seed)
        s = G.tail_collapse_statistics(run["mean"], run["var"], 1, gens, seed=99)
        verdicts[name] = (
            s["excess"] < -N_SE * s["excess_se"],
            s["share_gain"] > N_SE * s["share_gain_se"],
        )
    assert verdicts == {"loop": (True, True), "null": (False, False)}


def test_share_below_original():
    """Generation 0 is the original itself (never below it); a collapsed fit at 0 always is."""
    mean = np.array([[0.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    var = np.array([[1.0, 1e-4, 1e-4], [1.0, 2.0, 0.5]])
    np.testing.assert_allclose(G.share_below_original(mean, var), [0.0, 0.5, 0.5])


def test_median_slope_and_its_bootstrap_error():
    """Exact on straight lines; on random walks the bootstrap SE is near sqrt(pi/2) SD / sqrt(n)."""
    lines = np.arange(11.0)[None, :] * np.array([[1.0], [2.0], [3.0]])
    slope, _ = G.median_slope(lines, 2, 10, seed=1)
    assert slope == pytest.approx(2.0)
    rng = np.random.default_rng(94)
    walks = np.cumsum(rng.standard_normal((4000, 101)), axis=1)
    slope, se = G.median_slope(walks, 50, 100, seed=2)
    want = np.sqrt(np.pi / 2) * np.sqrt(50) / 50 / np.sqrt(4000)  # increments' median, roughly
    assert 0.7 * want < se < 1.6 * want
    assert abs(slope) < N_SE * se


# --------------------------------------------------------------------------------------------
# 6. d-dimensional closed forms on the fully synthetic loop
# --------------------------------------------------------------------------------------------

D, N = 10, 100


@functools.cache
def _fully_synthetic(bias):
    return G.simulate_fully_synthetic(D, N, 20, 2000, seed=int(100 * bias), bias=bias, w2=False)


@pytest.mark.parametrize("bias", [1.0, 0.8])
def test_expected_trace_ratio(bias):
    """E[tr S_t] / d = lam^(t-1): the unbiased covariance is a martingale, shrunk by lam."""
    run = _fully_synthetic(bias)
    np.testing.assert_allclose(run["log_trace"][:, 0], np.log(D), rtol=1e-12)
    for t in (1, 2, 5, 10, 20):
        ratio = np.exp(run["log_trace"][:, t]) / D
        assert_mean_matches(ratio, G.expected_trace_ratio(t, bias), label=f"trace ratio t={t}")


@pytest.mark.parametrize("bias", [1.0, 0.8])
def test_expected_log_det(bias):
    """E[log det S_t] = drift(1) + (t-1) drift(lam): Bartlett's E log det of a Wishart."""
    run = _fully_synthetic(bias)
    for t in (1, 2, 5, 10, 20):
        got = run["log_det"][:, t]
        assert_mean_matches(got, G.expected_log_det(t, D, N, bias), label=f"log det t={t}")
    np.testing.assert_array_equal(run["log_det"][:, 0], 0.0)


@pytest.mark.parametrize("bias", [1.0, 0.8])
def test_expected_det_ratio(bias):
    """E[det S_t] = prod_i (n-i)/(n-1) per generation times lam^d per biased one."""
    run = G.simulate_fully_synthetic(D, N, 3, 20_000, seed=111, bias=bias, w2=False)
    for t in (1, 2, 3):
        det = np.exp(run["log_det"][:, t])
        want = G.expected_det_ratio(t, D, N, bias)
        assert_mean_matches(det, want, label=f"det ratio t={t}")
        assert want < 1  # the determinant shrinks in expectation, unlike the trace


def test_log_det_drift_is_negative_and_agrees_with_1d():
    """The log det drifts down even at lam = 1; in 1-D it is the 1-D log-variance drift."""
    for d, n in [(1, 2), (1, 10), (10, 11), (10, 100), (50, 1000)]:
        assert G.log_det_drift(d, n) < 0
        assert G.log_det_drift(d, n, 0.5) < G.log_det_drift(d, n)
    for m in (3, 10, 100):
        np.testing.assert_allclose(G.log_det_drift(1, m), G.expected_log_var_1d(1, m), rtol=1e-12)
        np.testing.assert_allclose(G.expected_det_ratio(7, 1, m), 1.0, rtol=1e-12)
    np.testing.assert_allclose(G.log_det_drift(D, N, 0.8) - G.log_det_drift(D, N), D * np.log(0.8))


def test_lyapunov_exponents_closed_form():
    """psi(nu/2) + log(2/nu) on top (about -0.0101 at n = 100, in any dimension); the exponents
    fall with i, sum to the log-det drift, shift by log(lam), and the top one is E log(chi2/nu)."""
    top = G.top_lyapunov_exponent(N)
    assert top == pytest.approx(-0.010135, abs=5e-6)
    exponents = G.lyapunov_exponents(D, N)
    assert exponents[0] == pytest.approx(top, rel=1e-12) and (np.diff(exponents) < 0).all()
    np.testing.assert_allclose(exponents.sum(), G.log_det_drift(D, N), rtol=1e-12)
    np.testing.assert_allclose(G.lyapunov_exponents(3, N)[0], top, rtol=1e-12)
    np.testing.assert_allclose(G.top_lyapunov_exponent(N, 0.8) - top, np.log(0.8), rtol=1e-12)
    np.testing.assert_allclose(G.lyapunov_exponents(1, N), G.expected_log_var_1d(1, N))
    draws = np.log(np.random.default_rng(115).chisquare(N - 1, 400_000) / (N - 1))
    assert_mean_matches(draws, top, label="E log(chi2/nu)")
    assert top > G.log_det_drift(D, N) / D + 0.04  # far slower than log det per dimension


@pytest.mark.parametrize("bias", [1.0, 0.8])
def test_median_log_trace_falls_at_the_top_lyapunov_exponent(bias):
    """The median run's log trace falls at the top exponent, not at the log-det rate per dimension."""
    d, n, gens, chains = 5, 20, 400, 400
    run = G.simulate_fully_synthetic(d, n, gens, chains, seed=116, bias=bias, w2=False)
    slope, se = G.median_slope(run["log_trace"], gens // 2, gens, seed=117)
    top = G.top_lyapunov_exponent(n, bias)
    assert abs(slope - top) < N_SE * se, f"slope {slope:.4g} vs {top:.4g} (SE {se:.2g})"
    per_dimension = G.log_det_drift(d, n, bias) / d
    assert abs(slope - per_dimension) > 10 * N_SE * se


def test_long_run_log_det_is_stable():
    """1000 generations of Cholesky products stay finite and E log det stays on the line."""
    run = G.simulate_fully_synthetic(D, N, 1000, 200, seed=121, w2=False)
    for key in ("log_det", "log_trace", "mean_norm2"):
        assert np.isfinite(run[key]).all(), key
    assert_mean_matches(run["log_det"][:, 1000], G.expected_log_det(1000, D, N), label="t=1000")


def test_strong_bias_long_run_does_not_underflow():
    """At lam = 0.5 det S falls to ~exp(-15000); log_scale must carry it without underflow."""
    run = G.simulate_fully_synthetic(D, N, 2000, 100, seed=131, bias=0.5, w2=False)
    for key in ("log_det", "log_trace", "mean_norm2"):
        assert np.isfinite(run[key]).all(), key
    last = run["log_det"][:, 2000]
    assert last.max() < 2 * np.log(np.finfo(float).tiny)  # far outside a float's range
    assert_mean_matches(last, G.expected_log_det(2000, D, N, 0.5), label="t=2000, lam=0.5")
    assert_mean_matches(
        np.exp(run["log_trace"][:, 5]) / D, G.expected_trace_ratio(5, 0.5), label="trace t=5"
    )


# --------------------------------------------------------------------------------------------
# 7. Wasserstein-2 distances
# --------------------------------------------------------------------------------------------


def test_w2_reduces_to_the_1d_formula():
    """For d = 1 both W2 functions equal mean^2 + (sqrt(var) - 1)^2."""
    rng = np.random.default_rng(141)
    mean = rng.standard_normal(50)
    var = rng.exponential(size=50)
    want = G.w2_squared_1d(mean, var)
    model = G.GaussianFits.from_cov(mean[:, None], var[:, None, None])
    np.testing.assert_allclose(G.w2_squared_to_standard(model), want, rtol=1e-10, atol=1e-12)
    got = G.gaussian_w2_squared(
        mean[:, None], var[:, None, None], np.zeros((50, 1)), np.ones((50, 1, 1))
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(G.w2_squared_1d(0.3, 4.0, sigma=2.0), 0.09, rtol=1e-12)


def test_w2_identity_symmetry_and_general_case():
    """W2(P, P) = 0, W2(P, Q) = W2(Q, P), and the to-standard shortcut equals the general form."""
    rng = np.random.default_rng(142)
    d, k = 4, 20
    m1, m2 = rng.standard_normal((k, d)), rng.standard_normal((k, d))
    c1 = np.stack([random_spd(d, rng) for _ in range(k)])
    c2 = np.stack([random_spd(d, rng) for _ in range(k)])
    np.testing.assert_allclose(G.gaussian_w2_squared(m1, c1, m1, c1), 0.0, atol=1e-9)
    forward, backward = G.gaussian_w2_squared(m1, c1, m2, c2), G.gaussian_w2_squared(m2, c2, m1, c1)
    np.testing.assert_allclose(forward, backward, rtol=1e-9)
    assert (forward > 0).all()
    model = G.GaussianFits.from_cov(m1, c1).renormalised()
    eye = np.broadcast_to(np.eye(d), (k, d, d))
    np.testing.assert_allclose(
        G.w2_squared_to_standard(model),
        G.gaussian_w2_squared(m1, c1, np.zeros((k, d)), eye),
        rtol=1e-9,
    )


def test_w2_commuting_covariances():
    """Diagonal covariances commute: W2^2 = |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2."""
    rng = np.random.default_rng(143)
    k, d = 10, 5
    a, b = rng.exponential(size=(k, d)), rng.exponential(size=(k, d))
    m1, m2 = rng.standard_normal((k, d)), rng.standard_normal((k, d))
    want = ((m1 - m2) ** 2).sum(axis=1) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum(axis=1)
    got = G.gaussian_w2_squared(m1, a[:, :, None] * np.eye(d), m2, b[:, :, None] * np.eye(d))
    np.testing.assert_allclose(got, want, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# 8. The synthetic-augmented loop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [1.0, 0.8])
@pytest.mark.parametrize("n_synthetic", [0, 50, 400])
def test_augmented_expected_trace(bias, n_synthetic):
    """Mean tr S_t matches the exact linear recursion, given each chain's real-data trace."""
    d, n_real, gens, chains = 5, 100, 20, 2000
    run = G.simulate_augmented(
        d, n_real, n_synthetic, gens, chains, seed=150 + n_synthetic, bias=bias
    )
    tr_real = np.exp(run["real_log_trace"])
    np.testing.assert_allclose(run["log_trace"][:, 1], run["real_log_trace"], rtol=1e-12)
    assert_mean_matches(tr_real, d, label="E tr of the real fit")
    # The recursion is linear and homogeneous in tr_real: E[tr S_t | real] = a_t tr_real.
    slope = G.augmented_expected_trace(1.0, n_real, n_synthetic, gens, bias)
    for t in range(1, gens + 1):
        trace = np.exp(run["log_trace"][:, t])
        residual = trace - slope[t - 1] * tr_real
        se = residual.std(ddof=1) / np.sqrt(chains)
        want = G.augmented_expected_trace(tr_real.mean(), n_real, n_synthetic, gens, bias)[t - 1]
        assert abs(trace.mean() - want) < N_SE * se + 1e-12 * want, f"t={t}"
    if n_synthetic == 0:  # nothing new is ever added: every generation is the real fit
        first = np.broadcast_to(run["log_trace"][:, [1]], (chains, gens))
        np.testing.assert_allclose(run["log_trace"][:, 1:], first, rtol=1e-12)


def test_augmented_recursion_properties():
    """The recursion starts at tr_real, and lam < 1 pulls it below tr_real (but not to 0)."""
    s = G.augmented_expected_trace(5.0, 100, 100, 200, bias=1.0)
    assert s[0] == 5.0 and s.shape == (200,)
    s_biased = G.augmented_expected_trace(5.0, 100, 100, 200, bias=0.5)
    assert s_biased[-1] < s_biased[0] and s_biased[-1] > 0.4 * 5.0


def test_augmented_stays_bounded_while_fully_synthetic_collapses():
    """Keeping the real data anchors log det; replacing it lets log det fall linearly."""
    d, n, gens, chains = 5, 100, 100, 200
    augmented = G.simulate_augmented(d, n, n, gens, chains, seed=161)
    synthetic = G.simulate_fully_synthetic(d, n, gens, chains, seed=162, w2=False)
    assert augmented["log_det"][:, gens].mean() > -1
    assert synthetic["log_det"][:, gens].mean() < -10


# --------------------------------------------------------------------------------------------
# 9. Replace vs accumulate vs accumulate-subsample
# --------------------------------------------------------------------------------------------


def test_pool_accumulate_bounds_the_collapse():
    """accumulate keeps log det bounded, replace collapses, accumulate_subsample lies between."""
    d, n, gens, chains = 10, 100, 100, 100
    last = {
        pool: G.simulate_pool(d, n, gens, chains, seed=171, pool=pool)["log_det"][:, gens].mean()
        for pool in G.POOLS
    }
    assert last["accumulate"] > -1.5
    assert last["replace"] < -40
    assert last["replace"] < last["accumulate_subsample"] < last["accumulate"]


def test_pool_replace_is_the_fully_synthetic_loop():
    """pool='replace' must be exactly simulate_fully_synthetic with the same seed."""
    a = G.simulate_pool(4, 12, 6, 30, seed=181, pool="replace")
    b = G.simulate_fully_synthetic(4, 12, 6, 30, seed=181)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_pool_accumulate_matches_refitting_the_whole_pool():
    """The running-statistics accumulate loop equals refitting all points, in law (KS)."""
    d, n, gens, chains = 3, 8, 3, 3000
    exact = G.simulate_pool(d, n, gens, chains, seed=191, pool="accumulate")
    rng = np.random.default_rng(192)
    points = G.draw_points(G.GaussianFits.standard(chains, d), n, rng)
    model = G.fit([G.points_stats(points)])
    for _ in range(1, gens):
        points = np.concatenate([points, G.draw_points(model, n, rng)], axis=1)
        model = G.fit([G.points_stats(points)])
    assert_same_law(exact["log_det"][:, gens], model.log_det, "log_det")
    assert_same_law(exact["log_trace"][:, gens], model.log_trace, "log_trace")
    assert_same_law(exact["mean_norm2"][:, gens], (model.mean**2).sum(axis=1), "|mean|^2")


# --------------------------------------------------------------------------------------------
# 10. Gerstgrasser et al.'s regression loop
# --------------------------------------------------------------------------------------------

REG_D, REG_ROWS, REG_ITERS = 10, 100, 30


@functools.cache
def _regression(pool):
    return G.simulate_regression(REG_D, REG_ROWS, REG_ITERS, 10_000, seed=201, pool=pool)


@pytest.mark.parametrize("pool", ["replace", "accumulate"])
def test_regression_matches_closed_forms(pool):
    """Mean test error = sigma^2 d / (T - d - 1) times n (replace) or sum 1/k^2 (accumulate)."""
    errors = _regression(pool)
    closed = G.regression_error_replace if pool == "replace" else G.regression_error_accumulate
    for k in (1, 5, 30):
        assert_mean_matches(errors[:, k - 1], closed(k, REG_D, REG_ROWS), label=f"{pool} k={k}")


def test_regression_accumulate_is_bounded_replace_is_not():
    """Accumulating stays below (pi^2/6) d/(T-d-1); replacing passes it by iteration 5."""
    bound = np.pi**2 / 6 * REG_D / (REG_ROWS - REG_D - 1)
    closed = G.regression_error_accumulate(np.arange(1, 1001), REG_D, REG_ROWS)
    assert (closed < bound).all() and closed[-1] > 0.99 * bound
    accumulate = _regression("accumulate")
    assert (accumulate.mean(axis=0) < bound).all()
    replace = _regression("replace")[:, 4]
    assert replace.mean() - N_SE * replace.std(ddof=1) / np.sqrt(replace.size) > bound


def test_regression_noise_var_scales_error():
    """The error is linear in the noise variance (same seed, same design and noise draws)."""
    a = G.simulate_regression(3, 10, 4, 20, seed=211, noise_var=1.0, pool="accumulate")
    b = G.simulate_regression(3, 10, 4, 20, seed=211, noise_var=4.0, pool="accumulate")
    np.testing.assert_allclose(b, 4.0 * a, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# 11. Determinism and seeding
# --------------------------------------------------------------------------------------------

SIMULATORS = {
    "1d": lambda s: G.simulate_1d(10, 5, 20, s),
    "1d_brute": lambda s: G.simulate_1d_brute_force(10, 5, 20, s),
    "1d_fresh": lambda s: G.simulate_1d_fresh(10, 5, 20, s),
    "fully_synthetic": lambda s: G.simulate_fully_synthetic(3, 8, 5, 20, s, bias=0.9),
    "augmented": lambda s: G.simulate_augmented(3, 8, 6, 5, 20, s, bias=0.9),
    "replace": lambda s: G.simulate_pool(3, 8, 5, 20, s, pool="replace"),
    "accumulate": lambda s: G.simulate_pool(3, 8, 5, 20, s, pool="accumulate"),
    "accumulate_subsample": lambda s: G.simulate_pool(3, 8, 5, 20, s, pool="accumulate_subsample"),
    "regression_replace": lambda s: {"e": G.simulate_regression(3, 8, 5, 20, s)},
    "regression_accumulate": lambda s: {
        "e": G.simulate_regression(3, 8, 5, 20, s, pool="accumulate")
    },
}


@pytest.mark.parametrize("name", SIMULATORS)
def test_simulators_are_deterministic(name):
    """Same seed (int or Generator) gives identical arrays; another seed differs; no global RNG."""
    sim = SIMULATORS[name]
    global_state = np.random.get_state()[1].copy()  # noqa: NPY002
    a, b, c = sim(5), sim(5), sim(6)
    from_generator = sim(np.random.default_rng(5))
    from_seed_sequence = sim(np.random.SeedSequence(5))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(a[key], from_generator[key])
        np.testing.assert_array_equal(a[key], from_seed_sequence[key])
        assert np.isfinite(a[key]).all()
    assert any(not np.array_equal(a[key][..., 1:], c[key][..., 1:]) for key in a)
    # A shared Generator advances between calls.
    rng = np.random.default_rng(5)
    first, second = sim(rng), sim(rng)
    assert any(not np.array_equal(first[key][..., 1:], second[key][..., 1:]) for key in a)
    np.testing.assert_array_equal(np.random.get_state()[1], global_state)  # noqa: NPY002


# --------------------------------------------------------------------------------------------
# 12. Input validation
# --------------------------------------------------------------------------------------------

BAD_INPUTS = [
    (lambda: G.simulate_1d(10, 0, 5, 1), r"generations must be an integer in \[1, inf\], got 0"),
    (lambda: G.simulate_1d(1, 3, 5, 1), r"n_samples must be an integer in \[2, inf\], got 1"),
    (lambda: G.simulate_1d(10, 3, 0, 1), r"chains must be an integer in \[1, inf\], got 0"),
    (lambda: G.simulate_1d(10.0, 3, 5, 1), r"n_samples must be an integer, got 10\.0"),
    (lambda: G.simulate_1d(10, 3, 5, None), r"seed must be .*got None"),
    (lambda: G.simulate_1d(10, 3, 5, 1, sigma=0.0), r"sigma must be a finite number > 0"),
    (lambda: G.simulate_1d_brute_force(10, 0, 5, 1), r"generations must be an integer in \[1"),
    (lambda: G.simulate_1d_fresh(1, 3, 5, 1), r"n_samples must be an integer in \[2, inf\], got 1"),
    (lambda: G.simulate_1d_fresh(10, 3, 5, 1, sigma=-1.0), r"sigma must be a finite number > 0"),
    (
        lambda: G.tail_collapse_statistics(np.zeros((3, 4)), np.ones((3, 4)), 2, 2),
        r"late must be an integer in \[3, inf\], got 2",
    ),
    (lambda: G.median_slope(np.zeros((3, 4)), 3, 1), r"stop must be an integer in \[4, inf\]"),
    (lambda: G.top_lyapunov_exponent(1), r"n_samples must be an integer in \[2, inf\], got 1"),
    (lambda: G.top_lyapunov_exponent(10, bias=0), r"bias must be a number in \(0, 1\]"),
    (lambda: G.lyapunov_exponents(5, 5), r"n_samples must be an integer in \[6, inf\], got 5"),
    (lambda: G.simulate_1d(True, 3, 5, 1), r"n_samples must be an integer, got True"),
    (
        lambda: G.simulate_fully_synthetic(3, 8, 3, 5, 1, bias=0),
        r"bias must be a number in \(0, 1\]",
    ),
    (
        lambda: G.simulate_fully_synthetic(3, 8, 3, 5, 1, bias=1.5),
        r"bias must be a number in \(0, 1\], got 1\.5",
    ),
    (
        lambda: G.simulate_fully_synthetic(-1, 8, 3, 5, 1),
        r"dim must be an integer in \[1, inf\], got -1",
    ),
    (
        lambda: G.simulate_fully_synthetic(3, 8, 3, 0, 1),
        r"chains must be an integer in \[1, inf\], got 0",
    ),
    (
        lambda: G.simulate_fully_synthetic(5, 5, 3, 5, 1),
        r"n_samples must be an integer in \[6, inf\], got 5",
    ),
    (lambda: G.simulate_fully_synthetic(3, 8, 0, 5, 1), r"generations must be an integer in \[1"),
    (lambda: G.simulate_fully_synthetic(3, 8, 3, 5, None), r"seed must be"),
    (
        lambda: G.simulate_augmented(5, 5, 10, 3, 5, 1),
        r"n_real must be an integer in \[6, inf\], got 5",
    ),
    (
        lambda: G.simulate_augmented(3, 8, -1, 3, 5, 1),
        r"n_synthetic must be an integer in \[0, inf\], got -1",
    ),
    (lambda: G.simulate_augmented(3, 8, 2.5, 3, 5, 1), r"n_synthetic must be an integer, got 2\.5"),
    (
        lambda: G.simulate_pool(3, 8, 3, 5, 1, pool="bogus"),
        r"pool must be one of 'replace', 'accumulate', 'accumulate_subsample'; got 'bogus'",
    ),
    (lambda: G.simulate_pool(4, 4, 3, 5, 1), r"n_samples must be an integer in \[5, inf\], got 4"),
    (
        lambda: G.simulate_regression(3, 4, 3, 5, 1),
        r"n_rows must be an integer in \[5, inf\], got 4",
    ),
    (
        lambda: G.simulate_regression(3, 8, 0, 5, 1),
        r"iterations must be an integer in \[1, inf\], got 0",
    ),
    (
        lambda: G.simulate_regression(3, 8, 3, 5, 1, pool="accumulate_subsample"),
        r"pool must be one of 'replace', 'accumulate'",
    ),
    (
        lambda: G.simulate_regression(3, 8, 3, 5, 1, noise_var=-1.0),
        r"noise_var must be a finite number > 0",
    ),
    (
        lambda: G.augmented_expected_trace(1.0, 100, 10, 5, bias=0),
        r"bias must be a number in \(0, 1\]",
    ),
    (lambda: G.augmented_expected_trace(1.0, 100, 10, 0), r"generations must be an integer in \[1"),
    (lambda: G.expected_trace_ratio(3, bias=1.2), r"bias must be a number in \(0, 1\]"),
    (lambda: G.log_det_drift(5, 5), r"n_samples must be an integer in \[6, inf\], got 5"),
    (lambda: G.expected_det_ratio(2, 0, 5), r"dim must be an integer in \[1, inf\], got 0"),
    (
        lambda: G.fit([G.draw_stats(G.GaussianFits.standard(2, 2), 1, np.random.default_rng(0))]),
        r"at least dim \+ 1 = 3 samples in total",
    ),
]


@pytest.mark.parametrize(("call", "message"), BAD_INPUTS)
def test_bad_input_raises_value_error(call, message):
    """Bad parameters fail early with a message naming the parameter and the allowed range."""
    with pytest.raises(ValueError, match=message):
        call()


def test_numpy_integers_are_accepted():
    """numpy integer types are valid integer parameters (only bool and non-integers are not)."""
    a = G.simulate_fully_synthetic(np.int64(3), np.int32(8), np.int64(2), np.int16(4), 1)
    b = G.simulate_fully_synthetic(3, 8, 2, 4, 1)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_regression_closed_forms_start_at_zero_error():
    """Before any fit (iteration 0) both closed forms give 0; arrays and scalars agree."""
    assert G.regression_error_replace(0, 10, 100) == 0.0
    assert G.regression_error_accumulate(0, 10, 100) == 0.0
    both = G.regression_error_accumulate([0, 1, 5], 10, 100)
    assert both[0] == 0.0
    assert both[2] == pytest.approx(G.regression_error_accumulate(5, 10, 100))


# --------------------------------------------------------------------------------------------
# Growing sample sizes (Shumailov et al.: bounded error needs superlinear growth)
# --------------------------------------------------------------------------------------------


def test_schedule_of_sample_sizes_matches_brute_force():
    """A per-generation schedule M_t drives the exact sampler exactly as it drives refitting."""
    schedule = np.array([3, 5, 8, 12])
    exact = G.simulate_1d(schedule, 4, 20_000, seed=401)
    brute = G.simulate_1d_brute_force(schedule, 4, 20_000, seed=402)
    for t in (1, 4):
        assert_same_law(exact["var"][:, t], brute["var"][:, t], f"var_{t}")
        assert_same_law(exact["mean"][:, t], brute["mean"][:, t], f"mean_{t}")


def test_constant_schedule_equals_a_single_sample_size():
    """The closed forms agree whether M is given once or once per generation."""
    gens = np.arange(0, 21)
    for fn in (G.expected_w2_squared_1d, G.sample_variance_identity, G.expected_log_var_1d):
        np.testing.assert_allclose(fn(gens, 10), fn(gens, np.full(20, 10)))


def test_growing_sample_sizes_against_closed_form_and_the_superlinear_bound():
    """E[W2^2] = sum 1/M_i + 2(1 - prod c4(M_i)): linear for constant M, logarithmic for M_i
    proportional to i, bounded (by its infinite sum) only for superlinear growth."""
    g = 400
    i = np.arange(1, g + 1)
    quadratic = 10 * i**2
    run = G.simulate_1d(quadratic, g, 50_000, seed=403)
    w2 = G.w2_squared_1d(run["mean"], run["var"])
    for t in (1, 10, g):
        assert_mean_matches(
            w2[:, t], float(G.expected_w2_squared_1d(t, quadratic)), label=f"W2 {t}"
        )
    constant = G.expected_w2_squared_1d([10, g], 10)
    linear = G.expected_w2_squared_1d([10, g], 10 * i)
    bounded = G.expected_w2_squared_1d([10, g], quadratic)
    assert constant[1] / constant[0] > 20  # grows like n
    assert 1.5 < linear[1] / linear[0] < 3  # grows like log n
    assert bounded[1] / bounded[0] < 1.1  # converges
    far = np.arange(1, 4001)
    assert G.expected_w2_squared_1d(4000, 10 * far**2) < 1.01 * bounded[1]  # a finite limit
    assert G.expected_w2_squared_1d(4000, 10 * far) > linear[1] + 0.2  # while log growth goes on


@pytest.mark.parametrize(
    "schedule", [np.array([10, 10]), np.array([10, 1, 10]), np.array([10.0, 10.0, 10.0])]
)
def test_bad_schedules_are_rejected(schedule):
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2 or a sequence of 3"):
        G.simulate_1d(schedule, 3, 10, seed=0)


def test_skipping_per_generation_w2_keeps_every_other_number_and_the_last_w2():
    """w2=False computes W2 for the last generation only; nothing else changes."""
    full = G.simulate_augmented(3, 20, 30, 6, 50, seed=5, bias=0.9)
    lean = G.simulate_augmented(3, 20, 30, 6, 50, seed=5, bias=0.9, w2=False)
    assert "w2_squared" not in lean
    for key in ("log_det", "log_trace", "mean_norm2", "real_log_trace"):
        np.testing.assert_array_equal(lean[key], full[key])
    np.testing.assert_allclose(lean["final_w2_squared"], full["w2_squared"][:, -1])
    synthetic = G.simulate_fully_synthetic(3, 20, 6, 50, seed=5)
    lean = G.simulate_fully_synthetic(3, 20, 6, 50, seed=5, w2=False)
    np.testing.assert_allclose(lean["final_w2_squared"], synthetic["w2_squared"][:, -1])
