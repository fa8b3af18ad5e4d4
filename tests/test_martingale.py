"""Martingale posteriors (`bk.MartingalePosterior`) checked against exact answers.

* a conjugate predictive's mean functional after N forward draws has the exact law
  N(m_n, v_n − v_{n+N}) (Doob's martingale), which tends to the Bayesian posterior N(m_n, v_n);
* the Pólya urn with α = 0 is the Bayesian bootstrap: Dirichlet(1, …, 1) weights on the data;
  with α > 0 the mean functional of a DP(c, G) has mean E_G[Y] and variance Var_G[Y] / (c + 1);
* the copula recursion equals an independent float64 implementation of Fong, Holmes & Walker's
  update; its density is the derivative of its cdf; and it is a martingale: E[p_N(y) | data] = p_n(y).

Tolerances: Kolmogorov–Smirnov tests at the 0.1% level (a fixed seed makes each outcome fixed; the
level says how unlikely a pass-by-luck of a wrong law would be), moments within 4 Monte Carlo
standard errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import bayeskit as bk

mt = bk.martingale


@pytest.fixture(scope="module")
def y20():
    return np.random.default_rng(0).normal(1.0, 1.3, 20)


def engine(**settings):
    return bk.MartingalePosterior(progress=False, **settings)


# -- conjugate predictives -------------------------------------------------------------------------
def test_normal_mean_has_the_exact_finite_horizon_law_and_the_posterior_variance(y20):
    rule = mt.NormalNormal(loc=0.0, scale=2.0, noise=1.3)
    n, N, B = 20, 10_000, 4000
    post = bk.fit(rule, {"y": y20}, engine=engine(horizon=N, draws=B), seed=0)
    theta = post.draws["mean"][0]
    exact = rule.exact_posterior({"y": y20})
    m_n, v_n = float(exact.mean), float(exact.variance)
    v_end = 1 / (1 / 2.0**2 + (n + N) / 1.3**2)
    assert stats.kstest(theta, stats.norm(m_n, math.sqrt(v_n - v_end)).cdf).pvalue > 1e-3
    # the variance after 10^4 forward draws is the posterior's within Monte Carlo error (it misses
    # v_{n+N} / v_n = 0.2% of it, far below the 4-SE band of 9%)
    assert abs(theta.var(ddof=1) - v_n) < 4 * v_n * math.sqrt(2 / (B - 1))
    assert abs(theta.mean() - m_n) < 4 * math.sqrt(v_n / B)


@pytest.mark.parametrize("rule, data", [
    (mt.BetaBernoulli(a=2.0, b=3.0), {"y": (np.random.default_rng(1).random(30) < 0.3).astype(float)}),
    # 10 s (Poisson draws are rejection loops, slow under vmap); the conjugate path is the same as beta-Bernoulli's
    pytest.param(mt.GammaPoisson(a=2.0, b=0.5), {"y": np.random.default_rng(2).poisson(3.0, 25).astype(float)},
                 marks=pytest.mark.slow),
    # 5 s (Student-t draws are rejection loops); the conjugate path runs in the default tier through
    # NormalNormal and beta-Bernoulli: this adds the Student-t predictive
    pytest.param(mt.NormalInverseGamma(loc=0.0, kappa=0.5, concentration=2.0, rate=2.0),
                 {"y": np.random.default_rng(3).normal(2.0, 1.5, 15)}, marks=pytest.mark.slow),
], ids=["beta-bernoulli", "gamma-poisson", "normal-inverse-gamma"])
def test_conjugate_mean_functional_is_the_bayesian_posterior(rule, data):
    # N = 2,000 forward draws leave out n / (n + N) ≈ 1% of the posterior variance: far below what a KS
    # test of 1,000 draws can see (it would take a 10% change of scale)
    post = bk.fit(rule, data, engine=engine(horizon=2000, draws=1000), seed=1)
    theta = post.draws["mean"][0]
    exact = rule.exact_posterior(data)
    assert stats.kstest(theta, lambda t: _cdf(exact, t)).pvalue > 1e-3


def _cdf(d, t):
    """The cdf of a NumPyro Beta, Gamma or Student-t (scipy's, with its parameters)."""
    name = type(d).__name__
    if name == "Beta":
        return stats.beta(float(d.concentration1), float(d.concentration0)).cdf(t)
    if name == "Gamma":
        return stats.gamma(float(d.concentration), scale=1 / float(d.rate)).cdf(t)
    return stats.t(float(d.df), float(d.loc), float(d.scale)).cdf(t)


def test_truncation_estimate_matches_the_exact_missing_variance(y20):
    rule = mt.NormalNormal(loc=0.0, scale=2.0, noise=1.3)
    n, N, B = 20, 60, 4000
    with pytest.warns(bk.ConvergenceWarning, match=r"horizon N = 60 misses about \d+% of the posterior variance"):
        post = bk.fit(rule, {"y": y20}, engine=engine(horizon=N, draws=B), seed=2)
    v = lambda k: 1 / (1 / 2.0**2 + k / 1.3**2)  # noqa: E731 - posterior variance after k observations
    exact = (v(n + N // 2) - v(n + N)) / (v(n) - v(n + N))
    # a ratio of two sample variances of B draws: relative SE about 2 / sqrt(B) = 3%; 4 SE
    assert post.truncation["mean"] == pytest.approx(exact, rel=4 * 2 / math.sqrt(B))
    assert post.problems()


# -- the Pólya urn ---------------------------------------------------------------------------------
def test_polya_urn_without_mass_is_the_bayesian_bootstrap(y20):
    B = 2000
    post = bk.fit(mt.PolyaUrn(alpha=0.0), {"y": y20}, engine=engine(horizon=5000, draws=B), seed=3)
    weights = np.random.default_rng(4).dirichlet(np.ones(20), B)
    assert stats.ks_2samp(post.draws["mean"][0], weights @ y20).pvalue > 1e-3


def test_polya_urn_with_mass_matches_the_dirichlet_process_moments(y20):
    import numpyro.distributions as dist

    alpha, B = 3.0, 1000
    post = bk.fit(mt.PolyaUrn(alpha=alpha, base=dist.Normal(0.0, 2.0)), {"y": y20},
                  engine=engine(horizon=2000, draws=B), seed=4)
    theta = post.draws["mean"][0]
    c = alpha + 20
    mean_g = (alpha * 0.0 + y20.sum()) / c  # G = (α N(0, 4) + Σ δ_y) / c
    var_g = (alpha * 4.0 + np.sum(y20**2)) / c - mean_g**2
    var = var_g / (c + 1)  # Var of ∫ y dP for P ~ DP(c, G)
    assert abs(theta.mean() - mean_g) < 4 * math.sqrt(var / B)
    assert abs(theta.var(ddof=1) - var) < 4 * var * math.sqrt(2 / (B - 1))


def test_polya_urn_regression_is_the_bayesian_bootstrap_of_least_squares():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(25, 2))
    y = 1.0 + X @ np.array([0.5, -1.0]) + rng.standard_normal(25)
    B = 1000
    post = bk.fit(mt.PolyaUrn(), {"X": X, "y": y}, engine=engine(functional=mt.coefficients, horizon=2000,
                                                                  draws=B), seed=5)
    design = np.column_stack([np.ones(25), X])
    direct = []
    for w in rng.dirichlet(np.ones(25), B):
        root = np.sqrt(w)[:, None]
        direct.append(np.linalg.lstsq(root * design, root[:, 0] * y, rcond=None)[0])
    direct = np.array(direct)
    for j in range(3):
        assert stats.ks_2samp(post.draws["coefficients"][0][:, j], direct[:, j]).pvalue > 1e-3


# -- the copula predictive -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bimodal():
    rng = np.random.default_rng(6)
    return np.concatenate([rng.normal(-2.0, 0.5, 30), rng.normal(1.5, 1.0, 50)])


def _reference_copula(z, order, grid, rho):
    """Fong, Holmes & Walker's update in float64 NumPy, written from the paper's formulas."""
    from scipy.stats import norm

    def log_c(u, v):
        a, b = norm.ppf(u), norm.ppf(v)
        return -0.5 * np.log(1 - rho**2) - (rho**2 * (a**2 + b**2) - 2 * rho * a * b) / (2 * (1 - rho**2))

    def h(u, v):
        return norm.cdf((norm.ppf(u) - rho * norm.ppf(v)) / np.sqrt(1 - rho**2))

    P_data, p_data = norm.cdf(z), norm.pdf(z)
    P_grid, p_grid = norm.cdf(grid), norm.pdf(grid)
    prequential = 0.0
    for i, j in enumerate(order, start=1):
        alpha = (2 - 1 / i) / (i + 1)
        v = P_data[j]
        prequential += np.log(p_data[j])
        p_data = (1 - alpha + alpha * np.exp(log_c(P_data, v))) * p_data
        p_grid = (1 - alpha + alpha * np.exp(log_c(P_grid, v))) * p_grid
        P_data = (1 - alpha) * P_data + alpha * h(P_data, v)
        P_grid = (1 - alpha) * P_grid + alpha * h(P_grid, v)
    return prequential, P_grid, p_grid


def test_copula_recursion_matches_the_papers_update(bimodal):
    from bayeskit.models.predictive import copula

    z = (bimodal - bimodal.mean()) / bimodal.std()
    order = np.random.default_rng(7).permutation(z.size)
    grid = np.linspace(-3, 3, 41)
    total, (lower, upper, logp) = copula.condition_sequence(0.8, None, z, None, order, grid, None)
    ref_total, ref_P, ref_p = _reference_copula(z, order, grid, 0.8)
    # both float64: agreement to rounding, 1e-9 relative
    np.testing.assert_allclose(float(total), ref_total, rtol=1e-9)
    np.testing.assert_allclose(np.asarray(lower[0]), ref_P, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(upper[0]), 1 - ref_P, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(np.exp(np.asarray(logp[0])), ref_p, rtol=1e-9)


def test_copula_density_is_the_derivative_of_its_cdf(bimodal):
    grid = np.linspace(bimodal.min() - 2, bimodal.max() + 2, 1001)
    P = mt.CopulaDensity(rho=0.85, grid=grid).condition({"y": bimodal}, 10)
    dist = mt.CopulaDensity().distribution(P)
    cdf, pdf = np.asarray(dist.cdf_values), np.asarray(dist.pdf_values)
    slope = np.diff(cdf) / np.diff(grid)
    mid = 0.5 * (pdf[1:] + pdf[:-1])
    # central differences on a grid of spacing 0.009: error h² p''/8 ≈ 4e-5 of the peak density
    np.testing.assert_allclose(slope, mid, atol=1e-4 * pdf.max())
    # and it is a density: total mass on the grid within the tails' mass left outside
    assert abs(np.trapezoid(pdf, grid) - (cdf[-1] - cdf[0])) < 1e-4


def test_copula_bandwidth_maximises_the_prequential_likelihood(bimodal):
    fitted = mt.CopulaDensity().condition({"y": bimodal}, 10)
    rho = float(fitted.rho)
    for other in (rho - 0.05, rho + 0.05):
        held = mt.CopulaDensity(rho=min(other, 0.99)).condition({"y": bimodal}, 10)
        assert float(held.prequential) <= float(fitted.prequential) + 1e-6


def test_copula_density_is_a_martingale(bimodal):
    B = 250
    rule = mt.CopulaDensity(rho=0.85, grid=60)
    post = bk.fit(rule, {"y": bimodal}, engine=engine(functional=mt.Density(), horizon=300, draws=B), seed=8)
    draws = post.draws["density"][0]
    p_n = np.exp(np.asarray(post.predictive.log_prob(post.predictive.grid)))
    se = draws.std(axis=0, ddof=1) / math.sqrt(B)
    # where the data are: far in the tails the update factor c_ρ(u, V) is so heavy-tailed (its mean 1
    # rests on V's rare extremes) that a sample mean over finitely many draws stays below it, and its
    # standard error does not say so
    live = p_n > 0.01 * p_n.max()
    assert live.sum() > 20
    assert np.all(np.abs(draws.mean(axis=0) - p_n)[live] < 4 * se[live])
    # and the draws vary: the posterior is not the predictive repeated
    assert draws.std(axis=0).max() > 0.01


def test_copula_regression_mean_is_a_martingale():
    rng = np.random.default_rng(9)
    X = rng.uniform(-2, 2, (30, 1))
    y = np.sin(2 * X[:, 0]) + 0.3 * rng.standard_normal(30)
    B = 100
    rule = mt.CopulaRegression(rho=0.7, rho_x=0.95, grid=30, x_eval=np.linspace(-1.5, 1.5, 7), orderings=3)
    post = bk.fit(rule, {"X": X, "y": y}, engine=engine(horizon=120, draws=B), seed=9)
    draws = post.draws["mean"][0]
    assert draws.shape == (B, 7)
    m_n = np.asarray(post.predictive.mean)
    se = draws.std(axis=0, ddof=1) / math.sqrt(B)
    assert np.all(np.abs(draws.mean(axis=0) - m_n) < 4 * se)
    # the conditional mean follows the signal (an estimator, not an exact law: a loose check)
    assert np.corrcoef(m_n, np.sin(2 * np.linspace(-1.5, 1.5, 7)))[0, 1] > 0.9


# -- the engine --------------------------------------------------------------------------------------
def test_draws_do_not_depend_on_the_chunking(y20):
    a = bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(horizon=300, draws=50), seed=10)
    b = bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(horizon=300, draws=50, chunk=7), seed=10)
    np.testing.assert_array_equal(a.draws["mean"], b.draws["mean"])


def test_functionals_name_their_variables(y20):
    post = bk.fit(mt.NormalNormal(), {"y": y20}, engine=engine(
        functional=lambda P: {"centre": P.mean, "q90": P.icdf(0.9)}, horizon=50, draws=20), seed=0)
    assert set(post.draws) == {"centre", "q90"}

    def spread(P):
        return P.icdf(0.9) - P.icdf(0.1)

    post = bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(functional=spread, horizon=50, draws=20), seed=0)
    assert set(post.draws) == {"spread"}
    post = bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(functional=mt.Quantile([0.1, 0.9]), horizon=50,
                                                           draws=20), seed=0)
    assert post.draws["quantile"].shape == (1, 20, 2)
    assert np.all(post.draws["quantile"][0, :, 0] <= post.draws["quantile"][0, :, 1])


def test_default_engine_and_horizon(y20):
    assert isinstance(bk.core.fit.default_engine(mt.PolyaUrn()), bk.MartingalePosterior)
    assert bk.MartingalePosterior().horizon_for(20) == 1000
    assert bk.MartingalePosterior().horizon_for(100) == 5000
    assert bk.MartingalePosterior().horizon_for(10_000) == 20_000


@pytest.mark.parametrize("make, match", [
    (lambda: bk.MartingalePosterior(functional=3), "`functional` must be a function"),
    (lambda: bk.MartingalePosterior(horizon=1), "`horizon` must be None or an int >= 2"),
    (lambda: bk.MartingalePosterior(draws=0), "`draws` must be an int >= 1"),
    (lambda: mt.PolyaUrn(alpha=-1.0), "`alpha` must be a finite number >= 0"),
    (lambda: mt.PolyaUrn(alpha=1.0), "`base`"),
    (lambda: mt.CopulaDensity(rho=1.0), "`rho` must be a finite number in \\(0, 1\\)"),
    (lambda: mt.CopulaDensity(grid=[0.0, -1.0]), "`grid` must be an int"),
    (lambda: mt.CopulaRegression(rho_x=1.5), "`rho_x` must be None or numbers in \\(0, 1\\)"),
    (lambda: mt.NormalNormal(scale=0.0), "`scale` must be a finite number > 0"),
], ids=["functional", "horizon", "draws", "alpha", "base", "rho", "grid", "rho_x", "scale"])
def test_bad_settings_are_named(make, match):
    with pytest.raises(bk.ConfigError, match=match):
        make()


@pytest.mark.parametrize("rule, data, match", [
    (mt.PolyaUrn(), {"x": [1.0]}, "must be a dict with key 'y'"),
    (mt.NormalNormal(), {"y": [1.0, np.nan]}, "non-finite"),
    (mt.BetaBernoulli(), {"y": [0.0, 2.0]}, "only 0 and 1"),
    (mt.GammaPoisson(), {"y": [1.5]}, "non-negative integers"),
    (mt.CopulaDensity(), {"y": [1.0, 1.0, 1.0]}, "constant"),
    (mt.CopulaRegression(), {"y": [1.0, 2.0]}, "needs inputs 'X'"),
    (mt.PolyaUrn(), {"X": np.ones((3, 1)), "y": np.ones(4)}, "one row per observation"),
], ids=["keys", "nan", "bernoulli", "poisson", "constant", "no-inputs", "rows"])
def test_bad_data_is_named(rule, data, match):
    with pytest.raises(bk.DataError, match=match):
        bk.fit(rule, data, engine=engine(horizon=10, draws=2))


def test_a_functional_the_predictive_lacks_is_named(y20):
    with pytest.raises(bk.ModelError, match="an empirical law .* has no density"):
        bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(functional=mt.Density(at=[0.0]), horizon=10, draws=2))


def test_a_grid_functional_on_a_rule_without_a_grid_asks_for_points(y20):
    with pytest.raises(bk.ModelError, match=r"`CDF\(\)` without `at` .* Empirical has none: pass the points"):
        bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(functional=mt.CDF(), horizon=10, draws=2))
    post = bk.fit(mt.PolyaUrn(), {"y": y20}, engine=engine(functional=mt.CDF(at=[0.0, 1.0]), horizon=10, draws=2))
    assert post.draws["cdf"].shape == (1, 2, 2)


def test_a_new_number_of_draws_compiles_nothing(y20):
    from bayeskit.core import cache

    bk.fit(mt.NormalNormal(), {"y": y20}, engine=engine(horizon=100, draws=30), seed=0)
    before = len(cache._PROGRAMS)
    bk.fit(mt.NormalNormal(loc=1.0), {"y": y20 + 1}, engine=engine(horizon=100, draws=70), seed=0)
    assert len(cache._PROGRAMS) == before
