"""LC-PFN's learning-curve prior: the rejection sampler against an independent NumPy sampler
written from the paper's specification, the NumPyro model's density against SciPy's, and the
PFN prior built on it."""

import warnings

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import stats

from bayeskit.core.errors import ConfigError
from bayeskit.models.learning_curves import (
    EPOCHS,
    learning_curve_model,
    mean_curve,
    predictive_log_lik,
    sample_curves,
)


def reference_curves(n, seed):
    """Admissible noiseless curves by plain rejection, NumPy, from the paper's spec (not our code)."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, EPOCHS + 1)
    out = []
    while sum(len(o) for o in out) < n:
        m = 20_000
        w = rng.uniform(0, 1, (m, 3))
        c1, a1, alpha = rng.uniform(0, 1.25, m), rng.uniform(-0.6, 0.6, m), rng.lognormal(0, 2, m)
        c2, a2 = rng.uniform(0, 1, m), rng.uniform(-0.5, 0.5, m)
        a3, b3, k3, d3 = rng.uniform(0, 1, m), rng.uniform(0, 2, m), rng.lognormal(-2, 1, m), rng.lognormal(0, 0.5, m)
        with np.errstate(all="ignore"):
            f = (w[:, :1] * (c1[:, None] - a1[:, None] * t ** -alpha[:, None])
                 + w[:, 1:2] * (c2[:, None] - a2[:, None] / np.log(t + 1))
                 + w[:, 2:] * (a3[:, None] - (a3 - b3)[:, None] * np.exp(-k3[:, None] * t ** d3[:, None])))
        ok = (f[:, -1] > f[:, 0]) & np.all((f >= 0) & (f <= 1), 1) & np.all(np.isfinite(f), 1)
        out.append(f[ok])
    return np.concatenate(out)[:n]


@pytest.fixture(scope="module")
def ours():
    y, f = jax.jit(lambda k: sample_curves(k, 20_000))(jax.random.key(0))
    return np.asarray(y), np.asarray(f)


def test_every_curve_passes_the_rejection_step(ours):
    _, f = ours
    assert np.all(f[:, -1] > f[:, 0]) and np.all((f >= 0) & (f <= 1)) and np.all(np.isfinite(f))


@pytest.mark.parametrize("epoch", [1, 10, 100])
def test_curves_follow_the_papers_prior(ours, epoch):
    """Two-sample KS test of f(epoch) against the reference sampler; the bound is the 0.1% critical
    value (1.95 √((n+m)/(nm))), so a sampler that is right fails 1 run in 1,000 (and the seeds are fixed)."""
    _, f = ours
    ref = reference_curves(50_000, seed=1)
    n, m = len(f), len(ref)
    assert stats.ks_2samp(f[:, epoch - 1], ref[:, epoch - 1]).statistic < 1.95 * np.sqrt((n + m) / (n * m))


def test_observation_noise_is_lognormal(ours):
    """log σ ~ N(−4, 1): the per-curve residual sd, logged, has mean −4 and sd 1 (4 standard errors;
    the sd of 100 residuals estimates σ to about 7%, a spread far below the tolerance)."""
    y, f = ours
    log_sd = np.log((y - f).std(axis=1, ddof=1))
    assert abs(log_sd.mean() + 4) < 4 * log_sd.std() / np.sqrt(len(log_sd)) + 0.01
    assert abs(log_sd.std() - 1) < 0.03


def test_model_density_is_the_truncated_prior_times_the_likelihood():
    t = np.arange(1.0, 11.0)
    params = {"pow3.c": 0.8, "pow3.a": 0.3, "pow3.alpha": 0.7, "ilog2.c": 0.5, "ilog2.a": 0.2, "janoschek.a": 0.6,
              "janoschek.beta": 0.1, "janoschek.k": 0.2, "janoschek.delta": 1.1}
    w = np.array([0.5, 0.3, 0.2])
    values = {"weights": w, "log_sigma": -3.0, **params}
    f = 0.5 * (0.8 - 0.3 * t ** -0.7) + 0.3 * (0.5 - 0.2 / np.log(t + 1)) + 0.2 * (0.6 - 0.5 * np.exp(-0.2 * t ** 1.1))
    y = f + 0.01 * np.sin(t)
    expected = (stats.norm.logpdf(y, f, np.exp(-3.0)).sum() + stats.norm.logpdf(-3.0, -4, 1)
                + stats.uniform.logpdf(0.8, 0, 1.25) + stats.uniform.logpdf(0.3, -0.6, 1.2)
                + stats.lognorm.logpdf(0.7, 2.0) + stats.uniform.logpdf(0.5, 0, 1) + stats.uniform.logpdf(0.2, -0.5, 1)
                + stats.uniform.logpdf(0.6, 0, 1) + stats.uniform.logpdf(0.1, 0, 2)
                + stats.lognorm.logpdf(0.2, 1.0, scale=np.exp(-2)) + stats.lognorm.logpdf(1.1, 0.5))
    got, _ = log_density(learning_curve_model, (t,), {"y": y}, values)
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(mean_curve(t, w, params)), f, rtol=1e-12)
    # a curve that falls over the epochs is outside the truncated prior
    falling = dict(values, **{"pow3.a": -0.3, "ilog2.a": -0.2, "janoschek.a": 0.1, "janoschek.beta": 0.6})
    assert np.isneginf(float(log_density(learning_curve_model, (t,), {"y": y}, falling)[0]))


def test_the_pfn_prior_returns_curves_in_epoch_order():
    from bayeskit.engines.pfn import LearningCurvePrior

    prior = LearningCurvePrior()
    x, y = prior.sample(jax.random.key(1), 4, 60)
    assert x.shape == (4, 60, 1) and y.shape == (4, 60)
    np.testing.assert_array_equal(np.asarray(x[2, :, 0]), np.arange(1, 61))
    with pytest.raises(ConfigError, match="num_points"):
        prior.sample(jax.random.key(1), 4, 101)
    with pytest.raises(ConfigError, match="epochs"):
        LearningCurvePrior(epochs=1)


def test_the_model_carries_its_dataset_prior():
    # the truncation is a factor, which running the model forward would ignore: the model function
    # names the prior that draws admissible curves (what bk.PFN trains on), and refuses what it cannot take
    from bayeskit.models.priors import LearningCurvePrior

    assert learning_curve_model.dataset_prior(x_dim=1) == LearningCurvePrior()
    with pytest.raises(ConfigError, match="inputs"):
        learning_curve_model.dataset_prior(x_dim=1, inputs=object())
    with pytest.raises(ConfigError, match="priors"):
        learning_curve_model.dataset_prior(x_dim=1, priors={"weights": None})
    with pytest.raises(ConfigError, match="x_dim"):
        learning_curve_model.dataset_prior(x_dim=2)


@pytest.fixture(scope="module")
def lc_tiny():
    pytest.importorskip("torch")
    import bayeskit as bk

    return bk.pfn.pretrained("lc-tiny")


def test_shipped_lc_pfn_extrapolates_a_curve_through_fit(lc_tiny):
    import bayeskit as bk

    y, f = sample_curves(jax.random.key(7), 1)
    t = np.arange(1.0, EPOCHS + 1)
    post = bk.fit(learning_curve_model, {"X": t[:20], "y": np.asarray(y[0, :20])}, engine=bk.PFN(network=lc_tiny))
    pred = post.predict({"X": t[20:]})
    lo, hi = pred.interval(0.9)
    assert pred.mean.shape == (80,) and np.all(lo < pred.mean) and np.all(pred.mean < hi)
    # the bar head's borders come from prior curves, all in about [0, 1]
    assert np.all(pred.mean > -0.1) and np.all(pred.mean < 1.1)
    assert bk.PFN().prior_for(bk.NumPyroModel(learning_curve_model), 1).__class__.__name__ == "LearningCurvePrior"
    with pytest.raises(ConfigError, match="name"):
        bk.pfn.pretrained("lc-huge")


def test_lc_pfn_predicts_after_its_context_and_refuses_before(lc_tiny, tmp_path):
    # LC-PFN is trained with queries after the context only: at an observed epoch it answered a flat
    # ~0.37 whatever was observed (0.109 observed at epoch 1). Now its defaults are the epochs after the
    # last observed one, and an earlier epoch is refused by name.
    import bayeskit as bk
    from bayeskit.core.errors import DataError
    from bayeskit.engines.pfn.training import load

    t = np.arange(1.0, 16.0)
    y = 0.109 + 0.5 * (1 - np.exp(-t / 5))  # rises from 0.19 to 0.58 by epoch 15
    post = bk.fit(learning_curve_model, {"X": t, "y": y}, engine=bk.PFN(network=lc_tiny))
    assert post.extrapolates
    np.testing.assert_array_equal(post.future_inputs()[:, 0], np.arange(16.0, EPOCHS + 1))
    pred = post.predict()
    assert pred.mean.shape == (EPOCHS - 15,)
    # conditioned on the curve: epoch 16 continues from the last observation (0.584), not the prior's 0.37
    assert abs(pred.mean[0] - y[-1]) < 0.05
    draws = post.sample(50)
    assert set(draws) == {"y_future"} and draws["y_future"].shape == (50, EPOCHS - 15)
    assert post.groups(20)["constant_data"]["X_future"].shape == (EPOCHS - 15, 1)
    with pytest.raises(DataError, match=r"predicts inputs after the last observed one \(15\) only.*2 at or before"):
        post.predict({"X": np.array([1.0, 15.0, 30.0])})
    # the contract travels with the network's file
    lc_tiny.save(tmp_path / "lc.pfn")
    assert load(tmp_path / "lc.pfn").queries == "after"


@pytest.mark.parametrize("cutoff", [pytest.param(10, marks=pytest.mark.slow), 20,
                                    pytest.param(40, marks=pytest.mark.slow), pytest.param(80, marks=pytest.mark.slow)])
def test_shipped_lc_pfn_is_calibrated_on_its_prior(lc_tiny, cutoff):
    """Averaged over curves from the prior, the exact posterior predictive's 90% intervals cover 90%
    of the held-out epochs. The shipped network's coverage (measured 0.89-0.94) must be within 0.05:
    the approximation error of a 3,000-step network, far below what a misaligned one (inputs not
    standardised, context and queries swapped) gives. 400 curves: 4 SE of the mean is below 0.05."""
    import torch

    y = np.asarray(sample_curves(jax.random.key(99), 400)[0])
    t = np.broadcast_to(np.arange(1.0, EPOCHS + 1)[None, :, None], (400, EPOCHS, 1))
    logits = lc_tiny.logits(t[:, :cutoff], y[:, :cutoff], t[:, cutoff:])
    u = lc_tiny.bar.cdf(logits, torch.tensor(y[:, cutoff:])).numpy()
    per_curve = ((u > 0.05) & (u < 0.95)).mean(axis=1)
    assert abs(per_curve.mean() - 0.9) < 0.05
    assert 4 * per_curve.std() / np.sqrt(400) < 0.05


@pytest.mark.slow
def test_shipped_lc_pfn_predicts_as_well_as_nuts_on_the_same_prior(lc_tiny):
    """The paper's comparison at cutoff 20 on 6 curves from the prior: held-out log-likelihood per
    epoch of the PFN's one forward pass against NUTS (4 chains × 500 draws) on the same model. Both
    approximate the same Bayes predictive, so neither should be far behind; the PFN must not trail
    by more than 0.25 nats per epoch (measured on 10 curves: −0.10 ± 0.08 at cutoff 20, +0.07 ± 0.17
    at cutoff 10), a margin that a network extrapolating wrongly (a flat or a linear continuation)
    misses by far."""
    import bayeskit as bk

    y = np.asarray(sample_curves(jax.random.key(2027), 6)[0])
    t, n = np.arange(1.0, EPOCHS + 1), 20
    nuts = bk.NUTS(chains=4, warmup=500, draws=500, init="sample", progress=False)
    diffs = []
    for i in range(len(y)):
        data = {"X": t[:n], "y": y[i, :n]}
        lp_pfn = bk.fit(learning_curve_model, data, engine=bk.PFN(network=lc_tiny)).predict({"X": t[n:]}).log_prob(
            y[i, n:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # divergences at the truncation's edge are expected
            draws = bk.fit(learning_curve_model, data, engine=nuts, seed=i).sample(2000)
        lp_nuts = np.asarray(predictive_log_lik(draws, t[n:], y[i, n:]))
        diffs.append(lp_pfn.mean() - lp_nuts.mean())
    assert np.mean(diffs) > -0.25


def test_predictive_log_lik_is_the_mixture_over_draws():
    draws = {k: v for k, v in zip(["weights", "log_sigma"], [np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.4]]),
                                                             np.array([-3.0, -4.5])], strict=True)}
    params = {"pow3.c": [0.8, 0.7], "pow3.a": [0.3, 0.1], "pow3.alpha": [0.7, 2.0], "ilog2.c": [0.5, 0.6],
              "ilog2.a": [0.2, 0.3], "janoschek.a": [0.6, 0.5], "janoschek.beta": [0.1, 0.2],
              "janoschek.k": [0.2, 0.1], "janoschek.delta": [1.1, 0.9]}
    draws.update({k: np.asarray(v) for k, v in params.items()})
    t, y = np.arange(30.0, 35.0), np.linspace(0.6, 0.7, 5)
    f = [np.asarray(mean_curve(t, draws["weights"][s], {k: v[s] for k, v in params.items()})) for s in range(2)]
    dens = [stats.norm.pdf(y, f[s], np.exp(draws["log_sigma"][s])) for s in range(2)]
    np.testing.assert_allclose(np.asarray(predictive_log_lik(draws, t, y)), np.log((dens[0] + dens[1]) / 2),
                               rtol=1e-10)
