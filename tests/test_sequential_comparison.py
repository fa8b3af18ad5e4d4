"""Comparing state-space models by one-step-ahead log predictive densities
(`bayeskit.diagnostics.compare_sequential`), against the exact answers of the Kalman filter.

For a linear-Gaussian model the Kalman filter gives log p(y_t | y_{0:t−1}) = log N(y_t | C m_t|t−1,
C P_t|t−1 Cᵀ + R) exactly, so the particle estimates (their sum, their spread over time, the
difference between a right and a wrong model) can be held to the Monte Carlo standard errors the
comparison itself reports.
"""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

import bayeskit as bk
from bayeskit.core.errors import ConfigError, DataError
from bayeskit.diagnostics import compare_sequential, sequential_elpd
from bayeskit.models.state_space import LinearGaussian
from bayeskit.models.state_space.kalman import kalman_filter

TRUE = LinearGaussian.scalar(a=0.9, c=1.0, q=1.0, r=1.0)
WRONG = LinearGaussian.scalar(a=0.9, c=1.0, q=1.0, r=9.0)  # observation noise sd 3 instead of 1
T, N, RUNS = 50, 256, 40


def exact_one_step(model, ys):
    """log p(y_t | y_{0:t−1}) (T,) of a scalar linear-Gaussian model, from the Kalman predictions."""
    _, _, _, m_pred, P_pred = kalman_filter(model, ys)
    c, r = float(model.C[0, 0]), float(model.R[0, 0])
    mean, var = c * np.asarray(m_pred)[:, 0], c * c * np.asarray(P_pred)[:, 0, 0] + r
    return norm.logpdf(ys[:, 0], mean, np.sqrt(var))


def simulate(seed=2):
    """y (T, 1) from TRUE: x_0 ~ N(0, 1), x_t+1 = 0.9 x_t + N(0, 1), y_t = x_t + N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = np.empty(T)
    x[0] = rng.normal()
    for t in range(1, T):
        x[t] = 0.9 * x[t - 1] + rng.normal()
    return (x + rng.normal(size=T))[:, None]


@pytest.fixture(scope="module")
def fits():
    ys = simulate()
    engine = bk.ParticleFilter(n_particles=N, runs=RUNS, keep_particles=False, progress=False)
    posts = {"true": bk.fit(TRUE, data={"y": ys}, engine=engine, seed=0),
             "wrong": bk.fit(WRONG, data={"y": ys}, engine=engine, seed=1)}
    exact = {"true": exact_one_step(TRUE, ys), "wrong": exact_one_step(WRONG, ys)}
    return ys, posts, exact


def test_one_step_log_densities_are_the_filter_increments(fits):
    ys, posts, exact = fits
    post = posts["true"]
    assert post.one_step_log_densities.shape == (RUNS, T)
    np.testing.assert_allclose(post.one_step_log_densities.sum(1), post.log_likelihood_runs, rtol=1e-12)
    # the exact one-step densities sum to the Kalman log-likelihood (checks the oracle itself)
    np.testing.assert_allclose(exact["true"].sum(), float(kalman_filter(TRUE, ys)[0]), rtol=1e-10)


def test_elpd_matches_the_kalman_filter(fits):
    """The reported elpd (log of the mean over runs of p̂(y)) is within 4 of its own Monte Carlo
    standard errors of the exact log p(y), for the right and the wrong model. Its spread over time
    (se) is within 3% of the exact one's (the per-step terms carry a Monte Carlo error of about
    0.02 against a spread of about 0.4 over time; over 30 seeds the largest gap was 0.9%). Each
    pooled one-step term is within 0.15 of the exact one (the per-run increments have sd below 0.2
    here, so 0.15 is over 4 standard errors of a term pooled over 40 runs even with the run
    weights' effective number halved; over 30 seeds the largest gap was 0.05). The mean over runs
    of log p̂(y) is low by sd²/2, as the particle-filter CLT says (within 4 standard errors of the
    mean of logs). Over 30 seeds, (elpd − exact) / mcse had mean 0.04 and sd 0.96: the reported
    Monte Carlo error is the right size."""
    _, posts, exact = fits
    for name, post in posts.items():
        result = sequential_elpd(post)
        truth = exact[name]
        assert result.runs == RUNS and result.n_obs == T and result.sd_runs < 1
        assert abs(result.elpd - truth.sum()) < 4 * result.mcse, (name, result, truth.sum())
        se_exact = np.sqrt(T * np.var(truth))
        assert abs(result.se - se_exact) < 0.03 * se_exact, (name, result.se, se_exact)
        assert np.max(np.abs(result.pointwise - truth)) < 0.15, name
        np.testing.assert_allclose(result.pointwise.sum(), result.elpd, rtol=1e-12)
        jensen = truth.sum() - result.sd_runs**2 / 2
        assert abs(result.mean_log - jensen) < 4 * result.sd_runs / np.sqrt(RUNS), (name, result.mean_log, jensen)
        # from step 30 on: log p(y_30:49 | y_0:29), the ratio of two pooled estimates, and its own mcse
        later = sequential_elpd(post, start=30)
        assert later.n_obs == T - 30 and later.mcse > 0
        assert abs(later.elpd - truth[30:].sum()) < 4 * later.mcse, (name, later, truth[30:].sum())
        np.testing.assert_allclose(later.pointwise, result.pointwise)


def test_a_wrong_observation_noise_loses_clearly(fits):
    """The wrong model (observation sd 3, truth 1) ranks second; its elpd_diff is within 4 Monte
    Carlo standard errors of the exact difference, its dse within 3% of the exact paired one, and
    the difference is over 4 dse (so the data, not the particle noise, decide)."""
    _, posts, exact = fits
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning about Monte Carlo error here
        table = compare_sequential(posts)
    assert list(table.index) == ["true", "wrong"] and list(table["rank"]) == [0, 1]
    d_exact = exact["true"] - exact["wrong"]
    wrong = table.loc["wrong"]
    assert abs(wrong["elpd_diff"] - d_exact.sum()) < 4 * wrong["mcse_diff"], (wrong, d_exact.sum())
    dse_exact = np.sqrt(T * np.var(d_exact))
    assert abs(wrong["dse"] - dse_exact) < 0.03 * dse_exact, (wrong["dse"], dse_exact)
    assert wrong["elpd_diff"] > 4 * wrong["dse"]
    assert not table["warning"].any()
    assert set(table.columns) >= {"elpd", "se", "elpd_diff", "dse", "mcse", "mcse_diff", "runs", "sd_runs"}
    np.testing.assert_allclose(table.attrs["pointwise"]["true"], sequential_elpd(posts["true"]).pointwise)


def test_warnings_when_monte_carlo_error_is_large():
    """Arrays (runs, T) are accepted as they are. Two models 0.2 apart in elpd with a Monte Carlo
    error near 1 warn that the ranking may be noise; a spread of log p̂(y) over runs above 1, or a
    single run, warn as well."""
    rng = np.random.default_rng(0)
    base = rng.normal(-1.0, 1.0, size=T)
    runs_a = base + rng.normal(0.0, 0.5 / np.sqrt(T), size=(5, T))  # sd of log p̂(y) over runs about 0.5
    runs_b = base - 0.2 / T + rng.normal(0.0, 0.5 / np.sqrt(T), size=(5, T))
    with pytest.warns(UserWarning, match="ranking may be particle noise"):
        table = compare_sequential({"a": runs_a, "b": runs_b})
    assert table["warning"].iloc[1]
    with pytest.warns(UserWarning, match="varies by sd"):
        compare_sequential({"a": runs_a, "b": base + 50 * (runs_a - base) / np.sqrt(T)})
    with pytest.warns(UserWarning, match="one filter run"):
        table = compare_sequential({"a": runs_a, "single": base - 1.0})
    assert np.isnan(table.loc["single", "mcse"])


def test_unobserved_steps_do_not_count():
    """Steps marked unobserved (``missing="skip"``: their increments are 0) are left out of se."""
    rng = np.random.default_rng(1)
    L = rng.normal(-1.0, 0.5, size=(4, 10))
    observed = np.ones(10, bool)
    observed[[2, 5]] = False
    L[:, ~observed] = 0.0
    result = sequential_elpd(SimpleNamespace(one_step_log_densities=L, observed=observed))
    assert result.n_obs == 8 and np.all(result.pointwise[~observed] == 0.0)
    e = result.pointwise[observed]
    assert result.se == pytest.approx(np.sqrt(8 * np.var(e)))


def test_bad_input_names_the_argument(fits):
    ys, posts, _ = fits
    post = posts["true"]
    with pytest.raises(DataError, match=r"`posteriors`: 'short' has 40 time steps but 'true' has 50"):
        compare_sequential({"true": post, "short": post.one_step_log_densities[:, :40]})
    other = SimpleNamespace(one_step_log_densities=post.one_step_log_densities, observed=post.observed, ys=ys + 1.0)
    with pytest.raises(DataError, match="fitted to different observations"):
        compare_sequential({"true": post, "other": other})
    with pytest.raises(ConfigError, match=r"`posteriors\['draws'\]` must be a posterior with `one_step_log_densities`"):
        compare_sequential({"true": post, "draws": object()})
    with pytest.raises(ConfigError, match="refit it"):
        compare_sequential({"true": post, "loaded": SimpleNamespace(one_step_log_densities=None)})
    with pytest.raises(ConfigError, match="at least two models"):
        compare_sequential({"true": post})
    with pytest.raises(ConfigError, match="must be a dict"):
        compare_sequential([post, post])
    with pytest.raises(DataError, match="non-finite"):
        sequential_elpd(np.full((2, T), -np.inf))
    with pytest.raises(ConfigError, match=r"`start` must be an int in \[0, 49\]"):
        compare_sequential(posts, start=T)
    with pytest.raises(ConfigError, match="`warn` must be a bool"):
        compare_sequential(posts, warn="yes")
