"""`bk.prior_predictive`: draws of θ ~ p(θ) and ỹ ~ p(y | θ), and ArviZ's prior groups."""

from __future__ import annotations

import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest

import bayeskit as bk


def regression(x, y=None):
    a = numpyro.sample("a", dist.Normal(0, 10))
    b = numpyro.sample("b", dist.Normal(0, 10))
    s = numpyro.sample("s", dist.HalfNormal(2))
    with numpyro.plate("n", x.shape[0]):
        numpyro.sample("y", dist.Normal(a + b * x, s), obs=y)


X = np.linspace(0, 1, 5)
Y = 1 + 2 * X


def test_prior_draws_have_the_priors_moments():
    """a ~ N(0, 10): mean within 4 SE (0.45) and sd within 5% (about 4 SE of an sd from 8,000 draws).
    ỹ_i = a + b x_i + s ε has mean 0 and variance 100 + 100 x_i² + E[s²] = 104 + 100 x_i² (HalfNormal(2):
    E[s²] = 4); within 8% (the sample variance of this normal mixture, about 4 SE)."""
    pp = bk.prior_predictive(regression, {"x": X, "y": Y}, n=8000, seed=0)
    assert list(pp.prior) == ["a", "b", "s"] and list(pp.predictive) == ["y"]
    a = pp.prior["a"]
    assert a.shape == (8000,) and abs(a.mean()) < 4 * 10 / np.sqrt(8000) and abs(a.std() / 10 - 1) < 0.05
    y = pp.predictive["y"]
    assert y.shape == (8000, 5)
    np.testing.assert_allclose(y.var(0) / (104 + 100 * X**2), 1, atol=0.08)
    # the observations were not conditioned on: they are kept for the comparison only
    np.testing.assert_array_equal(pp.observed_data["y"], Y)
    np.testing.assert_array_equal(pp.constant_data["x"], X)


def test_prior_groups_join_a_posteriors_inference_data(tmp_path):
    import arviz as az
    import matplotlib

    matplotlib.use("Agg")
    pp = bk.prior_predictive(regression, {"x": X, "y": Y}, n=200, seed=1)
    idata = pp.to_arviz()
    assert set(idata.groups()) == {"prior", "prior_predictive", "observed_data", "constant_data"}
    assert idata.prior["a"].dims == ("chain", "draw") and idata.prior_predictive["y"].shape == (1, 200, 5)
    post = bk.fit(regression, {"x": X, "y": Y}, bk.NUTS(chains=2, warmup=200, draws=200, progress=False), seed=0)
    full = post.to_arviz()
    full.extend(idata)
    assert {"posterior", "log_likelihood", "prior", "prior_predictive"} <= set(full.groups())
    az.plot_ppc(full, group="prior", num_pp_samples=20)  # ArviZ's prior predictive check runs on it


def test_prior_predictive_is_pure_in_its_seed_and_names_bad_input():
    a = bk.prior_predictive(regression, {"x": X}, n=10, seed=3)
    b = bk.prior_predictive(regression, {"x": X}, n=10, seed=3)
    np.testing.assert_array_equal(a.predictive["y"], b.predictive["y"])
    assert a.observed_data == {}
    with pytest.raises(bk.ConfigError, match="`n` must be an int >= 1"):
        bk.prior_predictive(regression, {"x": X}, n=0)
    with pytest.raises(bk.ModelError, match="runs a NumPyro model forward"):
        from bayeskit.models.state_space import LinearGaussian

        bk.prior_predictive(LinearGaussian.scalar(a=0.9, c=1.0, q=1.0, r=1.0), {"y": Y})
